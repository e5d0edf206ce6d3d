/* Wall time of spqr_quantize_layer on one large layer.
 *
 *   bench_quantize [-n cols] [-r rows] [-t threads] [-s samples] [-only rtn|gptq|spqr]
 *
 * Data: W [rows][cols] ~ N(0, 0.02^2) with row scales spread and ~0.01% planted
 * large weights (+-0.3..0.5); H = X^T X / n with X = Z diag(c) + F G: n samples
 * of independent inputs with spread scales c plus 64 shared factors, so the
 * inputs are correlated like a transformer's hidden states. BLAS threads follow
 * OPENBLAS_NUM_THREADS (the engine's dgemm/LAPACK calls); -t sets the engine's
 * OpenMP threads. Target (bench, not test): full SpQR on 4096x4096 under 60 s
 * on 2 cores. */
#include "spqr.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* process CPU time (all threads): with other jobs on the cores, wall time
 * alone overstates the engine's cost */
static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

static unsigned long long rng_s = 0x9E3779B97F4A7C15ull;
static unsigned long long rng_next(void) {
    rng_s ^= rng_s << 13;
    rng_s ^= rng_s >> 7;
    rng_s ^= rng_s << 17;
    return rng_s;
}
static float rng_uniform(void) { return (float)((rng_next() >> 40) * (1.0 / 16777216.0)); }
static float rng_normal(void) {
    float u1 = rng_uniform() + 1e-7f, u2 = rng_uniform();
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530718f * u2);
}

static void log_fn(void *user, spqr_log_level level, const char *msg) {
    (void)user;
    (void)level;
    fprintf(stderr, "  [engine] %s\n", msg);
}

static int run(const char *name, const float *W, int32_t rows, int32_t cols, const float *H,
               const spqr_quant_params *p, int32_t threads) {
    spqr_logger lg = {log_fn, NULL, SPQR_LOG_DEBUG};
    spqr_quant_report rep;
    spqr_tensor *t = NULL;
    spqr_err err = {0};
    double t0 = now_s(), c0 = cpu_s();
    spqr_status st = spqr_quantize_layer(W, rows, cols, H, p, threads, &lg, &t, NULL, NULL, &rep, &err);
    double dt = now_s() - t0, dc = cpu_s() - c0;
    if (st != SPQR_OK) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        return 1;
    }
    spqr_size_report sr;
    spqr_tensor_size(t, &sr);
    printf("%-40s wall %6.2f s  cpu %6.2f s  rel_err %.4e  outliers %.3f%%  bits %.3f (formula %.3f)\n", name, dt, dc,
           rep.rel_hessian_error, 100.0 * (double)rep.n_outliers / ((double)rows * cols), sr.stored_bits_per_param,
           sr.formula_bits_per_param);
    fflush(stdout);
    spqr_tensor_free(t);
    return 0;
}

int main(int argc, char **argv) {
    int32_t cols = 4096, rows = -1, threads = 2, samples = -1;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc) cols = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) rows = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) samples = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-only") && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr, "usage: %s [-n cols] [-r rows] [-t threads] [-s samples] [-only rtn|gptq|spqr]\n", argv[0]);
            return 2;
        }
    }
    if (rows < 0) rows = cols;
    if (samples < 0) samples = cols;
    if (cols < 16 || rows < 1 || samples < 1) {
        fprintf(stderr, "bad sizes\n");
        return 2;
    }
    const int32_t nf = 64;
    double t0 = now_s();
    float *X = malloc(sizeof(float) * (size_t)samples * cols), *F = malloc(sizeof(float) * (size_t)samples * nf);
    float *G = malloc(sizeof(float) * (size_t)nf * cols), *H = malloc(sizeof(float) * (size_t)cols * cols);
    float *W = malloc(sizeof(float) * (size_t)rows * cols), *c = malloc(sizeof(float) * (size_t)cols);
    if (!X || !F || !G || !H || !W || !c) {
        fprintf(stderr, "out of memory\n");
        return 1;
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
    for (int32_t r = 0; r < rows; r++) {
        float rs = 0.02f * expf(0.3f * rng_normal());
        for (int32_t j = 0; j < cols; j++) W[(size_t)r * cols + j] = rs * rng_normal();
    }
    const size_t n_planted = (size_t)rows * cols / 10000 + 1;
    for (size_t k = 0; k < n_planted; k++)
        W[rng_next() % ((size_t)rows * cols)] = (k & 1 ? 1.0f : -1.0f) * (0.3f + 0.2f * rng_uniform());
    free(X);
    free(F);
    free(G);
    free(c);
    printf("layer %dx%d, H from %d correlated samples (setup %.1f s), %d engine threads\n", rows, cols, samples,
           now_s() - t0, threads);

    int rc = 0;
    spqr_quant_params p;
    spqr_quant_params_default(&p);
    p.wbits = 4;
    p.groupsize = 128;
    p.qq_scale_bits = p.qq_zero_bits = 0;
    p.outlier_threshold = INFINITY;
    p.percdamp = 0.01f;
    if (!only || !strcmp(only, "rtn")) {
        p.gptq = 0;
        rc |= run("RTN w4 g128 16-bit stats", W, rows, cols, H, &p, threads);
    }
    if (!only || !strcmp(only, "gptq")) {
        p.gptq = 1;
        rc |= run("GPTQ w4 g128 16-bit stats act_order", W, rows, cols, H, &p, threads);
    }
    if (!only || !strcmp(only, "spqr")) {
        spqr_quant_params_default(&p);
        rc |= run("SpQR w3 b1=b2=16 qq3/3 LOO tau=0.2", W, rows, cols, H, &p, threads);
    }
    free(H);
    free(W);
    return rc;
}
