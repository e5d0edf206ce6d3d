/* core/team.h: the decode steps' chunks and barrier. With 2-5 threads (more than the
 * cores: a waiting thread must yield) and 20000 phases (2000 beyond the cores), after every wait
 * each thread sees every other thread's write of that phase (a slot per
 * thread holding the phase number), and nobody's write of the next phase
 * (written only after a second wait). A thread that passed early would see
 * an old value; a lost wake-up would hang (ctest's timeout). */
#include <omp.h>

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

int main(void) {
    chunks();
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
