/* core/team.h: the decode steps' chunks and barrier. With 2-5 threads (more than the
 * cores: a waiting thread must yield) and 20000 phases (2000 beyond the cores), after every wait
 * each thread sees every other thread's write of that phase (a slot per
 * thread holding the phase number), and nobody's write of the next phase
 * (written only after a second wait). A thread that passed early would see
 * an old value; a lost wake-up would hang (ctest's timeout). */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <omp.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "core/team.h"
#include "test_util.h"

#define PHASES 20000 /* 2000 where threads outnumber the cores */

/* spqri_chunks: the chunks cover [0, total) once, in order, big ones first,
 * and the single units at the end number at least n_threads * big (or all). */
static void chunks(void) {
    int ok = 1;
    for (int32_t total = 0; total <= 300; total += total < 40 ? 1 : 37)
        for (int32_t big = 1; big <= 70; big += 7)
            for (int32_t nt = 1; nt <= 5; nt++) {
                const spqr_chunks c = spqri_chunks(total, big, nt);
                int32_t next = 0, singles = 0;
                for (int32_t ch = 0; ch < c.n_chunks; ch++) {
                    int32_t lo, hi;
                    spqri_chunk_range(&c, ch, &lo, &hi);
                    ok &= lo == next && hi > lo && hi <= total && (hi - lo == 1 || hi - lo == big);
                    singles += ch >= c.n_big;
                    next = hi;
                }
                ok &= next == total && (singles == total || singles >= nt * big);
            }
    CHECK_MSG(ok, "spqri_chunks does not partition the units as promised");
}

static void *one_wait(void *team) {
    spqri_team_wait(team);
    return NULL;
}

/* A lost wake-up, made on purpose: a thread asleep in the barrier, then the
 * phase released without the broadcast (what an unordered store-load pair
 * allows). The sleeper's periodic recheck must let it out in about one nap
 * (TEAM_NAP_MS, 50 ms), not never; waited for up to 5 s. */
static void lost_wakeup(void) {
    spqr_team t;
    spqri_team_init(&t, 2);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, one_wait, &t) == 0);
    for (int i = 0; i < 5000 && atomic_load(&t.sleepers) == 0; i++) usleep(1000);
    CHECK_MSG(atomic_load(&t.sleepers) == 1, "the waiter never went to sleep");
    atomic_store(&t.arrived, 0);
    atomic_fetch_add(&t.phase, 1u); /* released, and no broadcast */
    struct timespec t0, t1, until;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    const int joined = pthread_timedjoin_np(th, NULL, &until) == 0;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    CHECK_MSG(joined, "a sleeper whose wake-up was lost did not return within 5 s");
    CHECK_MSG(s < 2.0, "it took %.2f s", s);
    if (!joined) { /* the thread is still blocked on the team: stop here rather than free it */
        fprintf(stderr, "%d passed, %d failed\n", g_test_pass, g_test_fail);
        exit(1);
    }
    spqri_team_free(&t);
}

int main(void) {
    chunks();
    lost_wakeup();
    for (int32_t n = 1; n <= 5; n++) {
        spqr_team t;
        spqri_team_init(&t, n);
        int32_t slot[8] = {0};
        const int32_t phases = n <= omp_get_num_procs() ? PHASES : PHASES / 10;
        int bad = 0, given = 0;
#pragma omp parallel num_threads(n) reduction(+ : bad)
        {
            const int32_t me = omp_get_thread_num();
#pragma omp single
            given = omp_get_num_threads();
            /* the single's barrier: given is set; the team holds n threads */
            if (given == n)
                for (int32_t p = 1; p <= phases; p++) {
                    __atomic_store_n(&slot[me], p, __ATOMIC_RELAXED);
                    spqri_team_wait(&t);
                    for (int32_t o = 0; o < n; o++) bad += __atomic_load_n(&slot[o], __ATOMIC_RELAXED) != p;
                    spqri_team_wait(&t);
                }
        }
        CHECK_MSG(given == n, "OpenMP gave %d of %d threads", given, n);
        CHECK_MSG(bad == 0, "%d threads: %d stale or early reads over %d phases", n, bad, phases);
        CHECK(atomic_load(&t.arrived) == 0 && atomic_load(&t.phase) == (n > 1 ? 2u * (uint32_t)phases : 0u));
        CHECK(atomic_load(&t.sleepers) == 0);
        spqri_team_free(&t);
    }
    TEST_SUMMARY();
}
