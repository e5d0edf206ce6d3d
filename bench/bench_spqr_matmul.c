/* Times the SpQR batched product (spqri_kt_matmul_ws: a prompt's linear)
 * against the dense fp16 one (spqri_linear_matmul) on the same shape, in one
 * run with alternated calls, scratch allocated once for both as in a session:
 * best wall and best process CPU time of R calls each, and their ratio.
 * Random w3 tensor, 1% outliers, beta1 = beta2 = 16 (spqr_tensor_random).
 *
 *   bench_spqr_matmul ROWS COLS N THREADS REPS [PATH [OUTLIER_SHARE]]
 *
 * PATH: a kernel path name (avx2i8, vnni256, avx512vnni, ...; default: the
 * CPU's best; "auto" names it explicitly). OUTLIER_SHARE in [0, 0.5],
 * default 0.01 (0 times the kernel without its outlier pass's work). The
 * fp16 side follows SPQR_DENSE_ISA like the CLI. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "format/tensor.h"
#include "kernels/kernels.h"
#include "model/linear.h"
#include "spqr.h"

typedef struct {
    double wall, cpu;
} best_t;

static void keep_best(best_t *b, double w, double c) {
    if (w < b->wall) b->wall = w;
    if (c < b->cpu) b->cpu = c;
}

int main(int argc, char **argv) {
    if (argc < 6 || argc > 8) {
        fprintf(stderr, "usage: bench_spqr_matmul ROWS COLS N THREADS REPS [PATH [OUTLIER_SHARE]]\n");
        return 2;
    }
    const int rows = atoi(argv[1]), cols = atoi(argv[2]), n = atoi(argv[3]), nt = atoi(argv[4]), reps = atoi(argv[5]);
    if (rows < 1 || cols < 1 || cols > 65536 || n < 1 || nt < 1 || reps < 1) {
        fprintf(stderr, "bench_spqr_matmul: every argument must be >= 1 (COLS <= 65536)\n");
        return 2;
    }
    spqr_kernel_path path = SPQR_KERNEL_AUTO;
    const double share = argc == 8 ? atof(argv[7]) : 0.01;
    if (!(share >= 0 && share <= 0.5)) return fprintf(stderr, "bench_spqr_matmul: OUTLIER_SHARE must be in [0, 0.5]\n"), 2;
    if (argc >= 7 && strcmp(argv[6], "auto")) {
        int found = 0;
        for (int k = 1; k < 32 && !found; k++)
            if (!strcmp(argv[6], spqr_kernel_path_name((spqr_kernel_path)k))) path = (spqr_kernel_path)k, found = 1;
        if (!found) return fprintf(stderr, "bench_spqr_matmul: unknown path '%s'\n", argv[6]), 2;
    }
    spqr_err err = {0};
    spqr_tensor *t = NULL;
    spqr_ktensor *kt = NULL;
    if (spqr_tensor_random(rows, cols, 3, share, 0.05f, 0x1234567ull, &t, &err) != SPQR_OK ||
        spqr_ktensor_from_tensor(t, path, &kt, &err) != SPQR_OK)
        return fprintf(stderr, "bench_spqr_matmul: %s\n", err.msg), 1;
    uint16_t *w = malloc((size_t)rows * cols * 2);
    float *x = malloc((size_t)n * cols * 4), *y = malloc((size_t)n * rows * 4);
    const size_t ks = spqri_kt_scratch_matmul(kt, n);
    void *kws = aligned_alloc(64, (ks + 63) / 64 * 64);
    if (!w || !x || !y || !kws) return fprintf(stderr, "bench_spqr_matmul: out of memory\n"), 1;
    memset(kws, 0, ks);
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        w[i] = spqr_fp32_to_fp16((float)((i * 2654435761u >> 8) % 1000) / 1000.0f - 0.5f);
    for (size_t i = 0; i < (size_t)n * cols; i++) x[i] = (float)((i * 2654435761u >> 8) % 1000) / 500.0f - 1.0f;
    const spqr_linear lin = {SPQR_LINEAR_F16, rows, cols, w, NULL, NULL}, *pl = &lin;
    linear_ctx c;
    if (spqri_linear_ctx_init(&c, nt, spqri_linear_scratch_size(&pl, 1, n, nt), &err) != SPQR_OK)
        return fprintf(stderr, "bench_spqr_matmul: %s\n", err.msg), 1;
    best_t bs = {1e30, 1e30}, bd = {1e30, 1e30};
    for (int r = 0; r < reps; r++) {
        double t0 = spqr_now_s(), c0 = spqri_cpu_s();
        if (spqri_kt_matmul_ws(kt, x, n, y, nt, kws, ks, &err) != SPQR_OK)
            return fprintf(stderr, "bench_spqr_matmul: %s\n", err.msg), 1;
        keep_best(&bs, spqr_now_s() - t0, spqri_cpu_s() - c0);
        t0 = spqr_now_s(), c0 = spqri_cpu_s();
        if (spqri_linear_matmul(&lin, x, n, y, &c, &err) != SPQR_OK)
            return fprintf(stderr, "bench_spqr_matmul: %s\n", err.msg), 1;
        keep_best(&bd, spqr_now_s() - t0, spqri_cpu_s() - c0);
    }
    const double macs = (double)rows * cols * n;
    printf("%dx%d n=%d t=%d path %s: spqr %.3f ms (%.1f GMAC/s, cpu %.3f ms), fp16 %.3f ms (%.1f GMAC/s, cpu %.3f ms), "
           "spqr x fp16 %.2f wall %.2f cpu\n",
           rows, cols, n, nt, spqr_kernel_path_name(spqr_ktensor_path(kt)), bs.wall * 1e3, macs / bs.wall / 1e9,
           bs.cpu * 1e3, bd.wall * 1e3, macs / bd.wall / 1e9, bd.cpu * 1e3, bd.wall / bs.wall, bd.cpu / bs.cpu);
    spqri_linear_ctx_free(&c);
    free(kws);
    free(w);
    free(x);
    free(y);
    spqr_ktensor_free(kt);
    spqr_tensor_free(t);
    return 0;
}
