/* The threads of one OpenMP region meeting between the steps of a decode
 * token (ggml's pattern): a barrier that spins, then yields, and a shared
 * counter the threads claim work from. A fork/join or an OpenMP barrier
 * costs ~35-40 us where threads sleep between regions
 * (OMP_WAIT_POLICY=passive, bench/results/decode-team-2026-12-07.md), and a
 * 7B token had 160 of them; this barrier costs what the slower thread's
 * lag costs. It spins at most ~TEAM_SPIN pauses, then calls sched_yield, so
 * a thread that lost its core gets it back on a loaded machine. */
#ifndef SPQR_CORE_TEAM_H
#define SPQR_CORE_TEAM_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct spqr_team {
    _Atomic int32_t arrived; /* threads in the current barrier */
    _Atomic uint32_t phase;  /* barriers completed */
    int32_t n;               /* threads that meet */
} spqr_team;

/* n threads (before any of them waits; n <= 1: waiting returns at once). */
void spqri_team_init(spqr_team *t, int32_t n);
/* Returns once all n threads have called it for this phase; what each
 * thread wrote before is visible to every thread after. */
void spqri_team_wait(spqr_team *t);

#endif
