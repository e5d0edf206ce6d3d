/* Times the dense fp16 batched product (spqri_linear_matmul: fp32 tiles of the
 * weights in the caller's scratch, then cblas_sgemm) on one shape: best
 * wall and best process CPU time of R calls. CPU time is what to compare
 * on a shared machine (bench/results/kernels-2026-12-06.md).
 *
 *   bench_dense_matmul ROWS COLS N THREADS REPS
 *
 * -DSPQR_BENCH_INT_THREADS builds it against a tree whose spqri_linear_matmul
 * still took an int thread count (the parent of the linear_ctx change), for
 * before/after runs. */
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "model/linear.h"
#include "spqr.h"

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: bench_dense_matmul ROWS COLS N THREADS REPS\n");
        return 2;
    }
    const int rows = atoi(argv[1]), cols = atoi(argv[2]), n = atoi(argv[3]), nt = atoi(argv[4]), reps = atoi(argv[5]);
    if (rows < 1 || cols < 1 || n < 1 || nt < 1 || reps < 1) {
        fprintf(stderr, "bench_dense_matmul: every argument must be >= 1\n");
        return 2;
    }
    uint16_t *w = malloc((size_t)rows * cols * 2);
    float *x = malloc((size_t)n * cols * 4), *y = malloc((size_t)n * rows * 4);
    if (!w || !x || !y) return fprintf(stderr, "bench_dense_matmul: out of memory\n"), 1;
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        w[i] = spqr_fp32_to_fp16((float)((i * 2654435761u >> 8) % 1000) / 1000.0f - 0.5f);
    for (size_t i = 0; i < (size_t)n * cols; i++) x[i] = (float)(i % 7) - 3.0f;
    const spqr_linear lin = {SPQR_LINEAR_F16, rows, cols, w, NULL, NULL};
#ifdef SPQR_BENCH_INT_THREADS
    const int ctx = nt;
#else
    const spqr_linear *pl = &lin;
    linear_ctx c;
    if (spqri_linear_ctx_init(&c, nt, spqri_linear_scratch_size(&pl, 1, n, nt), NULL) != SPQR_OK) return 1;
    const linear_ctx *ctx = &c;
#endif
    spqr_err err;
    double best = 1e30, best_cpu = 1e30;
    for (int r = 0; r < reps; r++) {
        const double t0 = spqr_now_s(), c0 = spqri_cpu_s();
        if (spqri_linear_matmul(&lin, x, n, y, ctx, &err) != SPQR_OK) {
            fprintf(stderr, "bench_dense_matmul: %s\n", err.msg);
            return 1;
        }
        const double t = spqr_now_s() - t0, tc = spqri_cpu_s() - c0;
        best = t < best ? t : best;
        best_cpu = tc < best_cpu ? tc : best_cpu;
    }
    printf("%dx%d n=%d t=%d: best wall %.3f ms (%.1f GFLOP/s), best cpu %.3f ms\n", rows, cols, n, nt, best * 1e3,
           2.0 * rows * cols * n / best / 1e9, best_cpu * 1e3);
#ifndef SPQR_BENCH_INT_THREADS
    spqri_linear_ctx_free(&c);
#endif
    free(w);
    free(x);
    free(y);
    return 0;
}
