/* The threads of one OpenMP region meeting between the steps of a decode
 * token (ggml's pattern): a barrier that spins for a while, then sleeps,
 * and the caller's shared counters to claim work from. A fork/join or an
 * OpenMP barrier costs ~60 us where threads sleep between regions
 * (OMP_WAIT_POLICY=passive; bench/bench_sync), and a 7B token had ~160 of
 * them; this barrier costs ~0.1 us when the threads arrive together. A
 * thread still waiting after ~TEAM_SPIN pauses sleeps on a condition
 * variable, so on a loaded machine it gives its core to the thread it waits
 * for (spinning and yielding there was 2.6-4.7x slower than a region per
 * product: bench/results/decode-team-2026-12-07.md). */
#ifndef SPQR_CORE_TEAM_H
#define SPQR_CORE_TEAM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct spqr_team {
    _Atomic int32_t arrived;  /* threads in the current barrier */
    _Atomic uint32_t phase;   /* barriers completed */
    _Atomic int32_t sleepers; /* threads asleep (or about to be) on wake */
    int32_t n;                /* threads that meet */
    pthread_mutex_t mu;
    pthread_cond_t wake;
} spqr_team;

/* n threads (before any of them waits; n <= 1: waiting returns at once). */
void spqri_team_init(spqr_team *t, int32_t n);
void spqri_team_free(spqr_team *t);
/* Returns once all n threads have called it for this phase; what each
 * thread wrote before is visible to every thread after. */
void spqri_team_wait(spqr_team *t);

/* Units [0, total) cut for claiming one chunk at a time: chunks of `big`
 * units, then the last ~n_threads * big units one at a time, so the threads
 * finish within one unit of each other (a whole big chunk apart, the first
 * to finish could wait long enough to fall asleep). */
typedef struct spqr_chunks {
    int32_t total, big, n_big, n_chunks;
} spqr_chunks;

static inline spqr_chunks spqri_chunks(int32_t total, int32_t big, int32_t n_threads) {
    spqr_chunks c = {total, big < 1 ? 1 : big, 0, 0};
    const int64_t head = (int64_t)total - (int64_t)(n_threads < 1 ? 1 : n_threads) * c.big;
    c.n_big = head > 0 ? (int32_t)(head / c.big) : 0;
    c.n_chunks = c.n_big + (total - c.n_big * c.big);
    return c;
}

/* Units [*lo, *hi) of chunk ch < c->n_chunks. */
static inline void spqri_chunk_range(const spqr_chunks *c, int32_t ch, int32_t *lo, int32_t *hi) {
    if (ch < c->n_big) {
        *lo = ch * c->big;
        *hi = *lo + c->big;
    } else {
        *lo = c->n_big * c->big + (ch - c->n_big);
        *hi = *lo + 1;
    }
}

#endif
