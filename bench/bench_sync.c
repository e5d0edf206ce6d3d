/* What one synchronisation of a decode step costs: a parallel region per
 * step (what each product did before the decode team), an OpenMP barrier
 * inside one region, and the team's barrier (core/team.h). Each step is a
 * share of busy work for every thread, then a serial gap on thread 0 (the
 * norms, residuals and input preparation of a token), then the sync; the
 * time per step minus that of one thread doing the same work and gap is the
 * sync's price (best of three interleaved rounds). Run under each OMP_WAIT_POLICY (passive: threads sleep
 * between regions and at OpenMP barriers).
 *
 *   bench_sync [THREADS=2] [STEPS=4000] [WORK=20000] [GAP=2000] */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/team.h"

static volatile double g_sink;

/* ~4 cycles per iteration (a dependent add chain) */
static void spin_work(int32_t iters) {
    double s = 0;
    for (int32_t j = 0; j < iters; j++) s += j * 1e-9;
    if (s < 0) g_sink = s;
}

int main(int argc, char **argv) {
    const int nt = argc > 1 ? atoi(argv[1]) : 2, steps = argc > 2 ? atoi(argv[2]) : 4000;
    const int work = argc > 3 ? atoi(argv[3]) : 20000, gap = argc > 4 ? atoi(argv[4]) : 2000;
    if (nt < 1 || steps < 1 || work < 0 || gap < 0) {
        fprintf(stderr, "usage: bench_sync [THREADS >= 1] [STEPS >= 1] [WORK >= 0] [GAP >= 0]\n");
        return 2;
    }
    const char *pol = getenv("OMP_WAIT_POLICY");
    spqr_team team;
    spqri_team_init(&team, nt);
    double best[4] = {1e30, 1e30, 1e30, 1e30}; /* one thread, regions, OpenMP barriers, team barriers */
    for (int round = 0; round < 3; round++) { /* interleaved, best of three */
        double t0 = spqr_now_s();
        for (int i = 0; i < steps; i++) {
            spin_work(work);
            spin_work(gap);
        }
        double t = (spqr_now_s() - t0) / steps;
        best[0] = t < best[0] ? t : best[0];

        t0 = spqr_now_s();
        for (int i = 0; i < steps; i++) {
#pragma omp parallel num_threads(nt)
            spin_work(work / nt);
            spin_work(gap);
        }
        t = (spqr_now_s() - t0) / steps;
        best[1] = t < best[1] ? t : best[1];

        t0 = spqr_now_s();
#pragma omp parallel num_threads(nt)
        for (int i = 0; i < steps; i++) {
            spin_work(work / nt);
#pragma omp barrier
            if (omp_get_thread_num() == 0) spin_work(gap);
#pragma omp barrier
        }
        t = (spqr_now_s() - t0) / steps;
        best[2] = t < best[2] ? t : best[2];

        t0 = spqr_now_s();
#pragma omp parallel num_threads(nt)
        {
            if (omp_get_num_threads() == nt)
                for (int i = 0; i < steps; i++) {
                    spin_work(work / nt);
                    spqri_team_wait(&team);
                    if (omp_get_thread_num() == 0) spin_work(gap);
                    spqri_team_wait(&team);
                }
        }
        t = (spqr_now_s() - t0) / steps;
        best[3] = t < best[3] ? t : best[3];
    }
    spqri_team_free(&team);
    const double base = best[0], regions = best[1], omp_barriers = best[2], team_barriers = best[3];
    const double ideal = base - (double)work * (nt - 1) / nt / (work + gap) * base; /* the work split, the gap serial */
    printf("%d threads, OMP_WAIT_POLICY=%s, %d steps of work %d + serial gap %d: one thread %.1f us/step, "
           "split ideal %.1f\n", nt, pol ? pol : "(unset)", steps, work, gap, base * 1e6, ideal * 1e6);
    printf("  a region per step:          %7.1f us/step (%+.1f over ideal)\n", regions * 1e6, (regions - ideal) * 1e6);
    printf("  one region, OpenMP barriers: %7.1f us/step (%+.1f, two barriers)\n", omp_barriers * 1e6,
           (omp_barriers - ideal) * 1e6);
    printf("  one region, team barriers:   %7.1f us/step (%+.1f, two barriers)\n", team_barriers * 1e6,
           (team_barriers - ideal) * 1e6);
    return 0;
}
