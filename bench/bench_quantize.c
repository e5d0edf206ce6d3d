/* spqr_quantize_layer against the arithmetic bound: each shape's engine
 * time as a ratio to ONE 4096^3 cblas_sgemm measured in the same run, just
 * before it, plus the pipeline side (calibration forward matmuls and
 * Hessian accumulation, GFLOP/s against the same sgemm).
 *
 *   bench_quantize [-shapes RxC,... | -n cols [-r rows]] [-t threads] [-s samples] [-only rtn|gptq|spqr|all]
 *                  [-tokens T] [-no-pipeline] [-removal]
 *
 * Default: the three Llama-7B shapes 4096x4096, 11008x4096, 4096x11008 (rows
 * x cols) at the 3.6bit preset (SpQR w3, beta1 = beta2 = 16, 3-bit
 * statistics, leave-one-out outliers tau 0.2, act_order, percdamp 1).
 * Data: W [rows][cols] ~ N(0, 0.02^2) with row scales spread and ~0.01%
 * planted large weights (+-0.3..0.5); H = X^T X / n with X = Z diag(c) + F G:
 * n samples (default 4096) of independent inputs with spread scales c plus 64
 * shared factors, so the inputs are correlated like a transformer's hidden
 * states. -t sets the engine's threads and OpenBLAS's around each engine
 * call (the engine uses the caller's BLAS count), and the sgemm's. The engine's phase times (debug log) go to stderr;
 * -removal also reruns each shape without one piece at a time (the error
 * evaluation, the outliers, the bilevel statistics, the GPTQ updates).
 * Targets (issue 16, 2 threads): 4096x4096 <= 4x, 11008x4096 <= 8x,
 * 4096x11008 <= 20x; pipeline >= 50% of sgemm. */
#include "core/clock.h"
#include "spqr.h"
#include "quant/hessian.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_rng.h"

static void log_fn(void *user, spqr_log_level level, const char *msg) {
    (void)user;
    (void)level;
    fprintf(stderr, "  [engine] %s\n", msg);
}

/* One engine run; returns its wall seconds (its CPU seconds in *cpu), or -1 on failure. */
static double run(const char *name, const float *W, int32_t rows, int32_t cols, const float *H,
                  const spqr_quant_params *p, int32_t threads, int with_report, double *cpu) {
    spqr_logger lg = {log_fn, NULL, SPQR_LOG_DEBUG};
    spqr_quant_report rep;
    spqr_tensor *t = NULL;
    spqr_err err = {0};
    double t0 = spqr_now_s(), c0 = spqri_cpu_s();
    rep.rel_hessian_error = NAN;
    rep.n_outliers = 0;
    const int prev = spqri_blas_threads(threads); /* the engine runs BLAS on the caller's count */
    spqr_status st =
        spqr_quantize_layer(W, rows, cols, H, p, threads, &lg, &t, NULL, NULL, with_report ? &rep : NULL, &err);
    spqri_blas_threads(prev);
    double dt = spqr_now_s() - t0, dc = spqri_cpu_s() - c0;
    *cpu = dc;
    if (st != SPQR_OK) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        return -1.0;
    }
    spqr_size_report sr;
    spqr_tensor_size(t, &sr);
    printf("  %-36s wall %6.2f s  cpu %6.2f s  rel_err %.4e  outliers %.3f%%  bits %.3f (formula %.3f)\n", name, dt, dc,
           rep.rel_hessian_error, 100.0 * (double)t->nnz / ((double)rows * cols), sr.stored_bits_per_param,
           sr.formula_bits_per_param);
    fflush(stdout);
    spqr_tensor_free(t);
    return dt;
}

/* Seconds of one n^3 sgemm on `threads` BLAS threads (after a warm-up call). */
static double sgemm_s(int32_t n, int32_t threads, double *cpu) {
    float *a = malloc(sizeof(float) * (size_t)n * n), *b = malloc(sizeof(float) * (size_t)n * n);
    float *c = malloc(sizeof(float) * (size_t)n * n);
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return -1.0;
    }
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = rng_normal();
    const int prev = spqri_blas_threads(threads);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 256, 256, 256, 1.0f, a, n, b, n, 0.0f, c, n);
    double t0 = spqr_now_s(), c0 = spqri_cpu_s();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double dt = spqr_now_s() - t0;
    *cpu = spqri_cpu_s() - c0;
    spqri_blas_threads(prev);
    free(a);
    free(b);
    free(c);
    return dt;
}

/* H = X^T X / n (cols x cols, symmetric) from `samples` correlated inputs. */
static float *make_hessian(int32_t cols, int32_t samples) {
    const int32_t nf = 64;
    float *X = malloc(sizeof(float) * (size_t)samples * cols), *F = malloc(sizeof(float) * (size_t)samples * nf);
    float *G = malloc(sizeof(float) * (size_t)nf * cols), *H = malloc(sizeof(float) * (size_t)cols * cols);
    float *c = malloc(sizeof(float) * (size_t)cols);
    if (!X || !F || !G || !H || !c) {
        free(X);
        free(F);
        free(G);
        free(H);
        free(c);
        return NULL;
    }
    for (int32_t j = 0; j < cols; j++) c[j] = expf(0.7f * rng_normal());
    for (size_t i = 0; i < (size_t)samples * cols; i++) X[i] = rng_normal() * c[i % (size_t)cols];
    for (size_t i = 0; i < (size_t)samples * nf; i++) F[i] = rng_normal();
    for (size_t i = 0; i < (size_t)nf * cols; i++) G[i] = 0.3f * rng_normal();
    /* X += F G (shared factors correlate the inputs) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, samples, cols, nf, 1.0f, F, nf, G, cols, 1.0f, X, cols);
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, cols, samples, 1.0f / (float)samples, X, cols, 0.0f, H, cols);
    for (int32_t i = 0; i < cols; i++)
        for (int32_t j = 0; j < i; j++) H[(size_t)i * cols + j] = H[(size_t)j * cols + i];
    free(X);
    free(F);
    free(G);
    free(c);
    return H;
}

static float *make_weights(int32_t rows, int32_t cols) {
    float *W = malloc(sizeof(float) * (size_t)rows * cols);
    if (!W) return NULL;
    for (int32_t r = 0; r < rows; r++) {
        float rs = 0.02f * expf(0.3f * rng_normal());
        for (int32_t j = 0; j < cols; j++) W[(size_t)r * cols + j] = rs * rng_normal();
    }
    const size_t n_planted = (size_t)rows * cols / 10000 + 1;
    for (size_t k = 0; k < n_planted; k++)
        W[rng_next() % ((size_t)rows * cols)] = (k & 1 ? 1.0f : -1.0f) * (0.3f + 0.2f * rng_uniform());
    return W;
}

/* The pipeline's BLAS work for one calibration window of T tokens through a
 * Llama-7B block (hidden 4096, intermediate 11008): the seven linears'
 * forward sgemms in chunks of 128 tokens, `threads` windows at once each on
 * one BLAS thread (as run_block does), and the four Hessian updates
 * (cols 4096 x3, 11008) as one ssyrk per window on a single BLAS thread and
 * through spqri_hessian_window (the pipeline's) on `threads` threads.
 * Each rate is a ratio to the 4096^3 sgemm's, timed just before and just
 * after the phases (their mean), in wall and in CPU seconds: on a shared
 * machine the CPU ratio is the steadier one. */
static int pipeline_bench(int32_t T, int32_t threads) {
    const int32_t hd = 4096, ffn = 11008, chunk = 128;
    /* rows, cols of q, k, v, o, gate, up, down */
    const int32_t lin[7][2] = {{hd, hd}, {hd, hd}, {hd, hd}, {hd, hd}, {ffn, hd}, {ffn, hd}, {hd, ffn}};
    float *Wt = malloc(sizeof(float) * (size_t)ffn * hd), *X = malloc(sizeof(float) * (size_t)threads * T * ffn);
    float *Y = malloc(sizeof(float) * (size_t)threads * chunk * ffn);
    float *H1 = malloc(sizeof(float) * (size_t)ffn * ffn), *H2 = malloc(sizeof(float) * (size_t)ffn * ffn);
    if (!Wt || !X || !Y || !H1 || !H2) {
        fprintf(stderr, "out of memory for the pipeline bench\n");
        free(Wt);
        free(X);
        free(Y);
        free(H1);
        free(H2);
        return 1;
    }
    for (size_t i = 0; i < (size_t)ffn * hd; i++) Wt[i] = 0.02f * rng_normal();
    for (size_t i = 0; i < (size_t)threads * T * ffn; i++) X[i] = rng_normal();
    double sg_cpu0, sg_cpu1;
    const double sg_wall0 = sgemm_s(4096, threads, &sg_cpu0);
    const int prev = spqri_blas_threads(1);
    /* forward: `threads` windows in parallel, each chunk x each linear */
    double flops = 0.0, t0 = spqr_now_s(), c0 = spqri_cpu_s();
#pragma omp parallel num_threads(threads)
    {
        const int w = omp_get_thread_num();
        for (int32_t t = 0; t < T; t += chunk) {
            const int32_t B = T - t < chunk ? T - t : chunk;
            for (int k = 0; k < 7; k++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, lin[k][0], lin[k][1], 1.0f,
                            X + ((size_t)w * T + t) * ffn, lin[k][1], Wt, lin[k][1], 0.0f, Y + (size_t)w * chunk * ffn,
                            lin[k][0]);
        }
    }
    const double t_fwd = spqr_now_s() - t0, c_fwd = spqri_cpu_s() - c0;
    for (int k = 0; k < 7; k++) flops += 2.0 * threads * T * (double)lin[k][0] * lin[k][1];
    /* Hessians: the four groups' inputs, one ssyrk per window */
    const int32_t hcols[4] = {hd, hd, hd, ffn};
    double t_today = 0.0, t_new = 0.0, c_today = 0.0, c_new = 0.0, hflops = 0.0;
    int same = 1;
    for (int g = 0; g < 4; g++) {
        const int32_t n = hcols[g];
        memset(H1, 0, sizeof(float) * (size_t)n * n);
        memset(H2, 0, sizeof(float) * (size_t)n * n);
        t0 = spqr_now_s();
        c0 = spqri_cpu_s();
        for (int w = 0; w < threads; w++)
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, T, 1.0f, X + (size_t)w * T * n, n, 0.0f, H1, n);
        t_today += spqr_now_s() - t0;
        c_today += spqri_cpu_s() - c0;
        t0 = spqr_now_s();
        c0 = spqri_cpu_s();
        for (int w = 0; w < threads; w++)
            spqri_hessian_window(H2, X + (size_t)w * T * n, n, T, threads);
        t_new += spqr_now_s() - t0;
        c_new += spqri_cpu_s() - c0;
        hflops += (double)threads * T * (double)n * n;
        for (int32_t i = 0; i < n && same; i++)
            same = !memcmp(H1 + (size_t)i * n + i, H2 + (size_t)i * n + i, sizeof(float) * (size_t)(n - i));
    }
    spqri_blas_threads(prev);
    const double sg_wall1 = sgemm_s(4096, threads, &sg_cpu1);
    /* the sgemm's flops per wall and per CPU second, the mean of the two timings */
    const double sgf = 2.0 * 4096.0 * 4096.0 * 4096.0;
    const double sg_w = 0.5 * (sgf / sg_wall0 + sgf / sg_wall1), sg_c = 0.5 * (sgf / sg_cpu0 + sgf / sg_cpu1);
    printf("pipeline: sgemm 4096^3 before / after: %.2f / %.2f s wall, %.2f / %.2f s CPU (%.1f GFLOP/s wall, "
           "%.1f per CPU second)\n",
           sg_wall0, sg_wall1, sg_cpu0, sg_cpu1, sg_w * 1e-9, sg_c * 1e-9);
    printf("pipeline, %d windows x %d tokens: forward linears %.1f GFLOP in %.2f s wall / %.2f s CPU = %.0f%% of "
           "sgemm's wall rate, %.0f%% of its CPU rate (%d windows in parallel, 1 BLAS thread each)\n",
           threads, T, flops * 1e-9, t_fwd, c_fwd, 100.0 * flops / t_fwd / sg_w, 100.0 * flops / c_fwd / sg_c,
           threads);
    printf("pipeline Hessians (cols 4096 x3, 11008), %.1f GFLOP: ssyrk on 1 BLAS thread %.2f s wall / %.2f s CPU = "
           "%.0f%% / %.0f%% of sgemm's wall / CPU rate; spqri_hessian_window on %d threads %.2f s / %.2f s = %.0f%% / "
           "%.0f%%; upper triangles %s\n",
           hflops * 1e-9, t_today, c_today, 100.0 * hflops / t_today / sg_w, 100.0 * hflops / c_today / sg_c, threads,
           t_new, c_new, 100.0 * hflops / t_new / sg_w, 100.0 * hflops / c_new / sg_c, same ? "identical" : "DIFFER");
    free(Wt);
    free(X);
    free(Y);
    free(H1);
    free(H2);
    return same ? 0 : 1;
}

int main(int argc, char **argv) {
    int32_t threads = 2, samples = 4096, tokens = 512, pipeline = 1, removal = 0, n_cols = 0, r_rows = 0;
    char one_shape[48];
    const char *only = "spqr", *shapes = "4096x4096,11008x4096,4096x11008";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-shapes") && i + 1 < argc) shapes = argv[++i];
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) samples = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "-tokens") && i + 1 < argc) tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-no-pipeline")) pipeline = 0;
        else if (!strcmp(argv[i], "-removal")) removal = 1;
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) n_cols = atoi(argv[++i]); /* the old one-shape options */
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) r_rows = atoi(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: %s [-shapes RxC,...] [-t threads] [-s samples] [-only rtn|gptq|spqr|all] [-tokens T] "
                    "[-no-pipeline] [-removal]\n",
                    argv[0]);
            return 2;
        }
    }
    if (n_cols > 0 || r_rows > 0) {
        snprintf(one_shape, sizeof one_shape, "%dx%d", r_rows > 0 ? r_rows : n_cols, n_cols > 0 ? n_cols : 4096);
        shapes = one_shape;
    }
    if (threads < 1 || samples < 1 || tokens < 1) {
        fprintf(stderr, "bad -t, -s or -tokens\n");
        return 2;
    }
    const int all = !strcmp(only, "all");
    const int32_t N = 4096;
    const double gflop = 2.0 * N * N * (double)N * 1e-9;
    int rc = 0;
    float *H = NULL;
    int32_t h_cols = 0;
    for (const char *sp = shapes; *sp;) {
        int rows = 0, cols = 0, len = 0;
        if (sscanf(sp, "%dx%d%n", &rows, &cols, &len) != 2 || rows < 1 || cols < 16) {
            fprintf(stderr, "bad shape list '%s' (RxC,RxC,...)\n", shapes);
            return 2;
        }
        sp += len;
        if (*sp == ',') sp++;
        if (cols != h_cols) {
            free(H);
            double t0 = spqr_now_s();
            H = make_hessian(cols, samples);
            if (!H) {
                fprintf(stderr, "out of memory\n");
                return 1;
            }
            h_cols = cols;
            printf("H %dx%d from %d correlated samples (%.1f s)\n", cols, cols, samples, spqr_now_s() - t0);
        }
        float *W = make_weights(rows, cols);
        if (!W) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        double sg_cpu = 0.0;
        const double sg = sgemm_s(N, threads, &sg_cpu);
        printf("layer %dx%d, %d threads; sgemm %d^3 just before: %.3f s (%.1f GFLOP/s), CPU %.2f s\n", rows, cols,
               threads, N, sg, gflop / sg, sg_cpu);
        fflush(stdout);
        spqr_quant_params p;
        spqr_quant_params_default(&p);
        p.wbits = 4;
        p.groupsize = 128;
        p.qq_scale_bits = p.qq_zero_bits = 0;
        p.outlier_threshold = INFINITY;
        p.percdamp = 0.01f;
        double dt, cpu = 0.0;
        if (all || !strcmp(only, "rtn")) {
            p.gptq = 0;
            dt = run("RTN w4 g128 16-bit stats", W, rows, cols, H, &p, threads, 1, &cpu);
            rc |= dt < 0;
            printf("    ratio to sgemm: %.2fx\n", dt / sg);
        }
        if (all || !strcmp(only, "gptq")) {
            p.gptq = 1;
            dt = run("GPTQ w4 g128 16-bit stats act_order", W, rows, cols, H, &p, threads, 1, &cpu);
            rc |= dt < 0;
            printf("    ratio to sgemm: %.2fx\n", dt / sg);
        }
        if (all || !strcmp(only, "spqr")) {
            spqr_quant_params_default(&p);
            dt = run("SpQR 3.6bit (w3 16/16 qq3 LOO 0.2)", W, rows, cols, H, &p, threads, 1, &cpu);
            rc |= dt < 0;
            printf("    ratio to sgemm: %.2fx wall, %.2fx CPU  [%dx%d spqr %.2f s / sgemm %.3f s; CPU %.2f / %.2f s]\n",
                   dt / sg, cpu / sg_cpu, rows, cols, dt, sg, cpu, sg_cpu);
            if (removal) { /* by removal: the same run without one piece at a time */
                const double full = dt, full_cpu = cpu;
                dt = run("  - rel error (no report)", W, rows, cols, H, &p, threads, 0, &cpu);
                printf("    error evaluation: %.2f s wall, %.2f s CPU\n", full - dt, full_cpu - cpu);
                p.outlier_threshold = INFINITY;
                dt = run("  - outliers (no LOO, no tau)", W, rows, cols, H, &p, threads, 1, &cpu);
                printf("    leave-one-out + outlier search: %.2f s wall, %.2f s CPU\n", full - dt, full_cpu - cpu);
                p.outlier_threshold = 0.2f;
                p.qq_scale_bits = p.qq_zero_bits = 0;
                dt = run("  - bilevel stats (fp16 stats)", W, rows, cols, H, &p, threads, 1, &cpu);
                printf("    second-level statistics: %.2f s wall, %.2f s CPU\n", full - dt, full_cpu - cpu);
                spqr_quant_params_default(&p);
                p.gptq = 0;
                dt = run("  - GPTQ updates (RTN, same stats)", W, rows, cols, H, &p, threads, 1, &cpu);
                printf("    in-block + lazy-batch updates: %.2f s wall, %.2f s CPU\n", full - dt, full_cpu - cpu);
            }
        }
        fflush(stdout);
        free(W);
    }
    free(H);
    if (pipeline) rc |= pipeline_bench(tokens, threads);
    return rc;
}
