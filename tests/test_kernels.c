/* Fast SpQR kernels (src/kernels/spqr_kernel*): every path this CPU runs,
 * on random packed tensors of every wbits 2..8 and awkward shapes, against
 *  - spqr_tensor_dequantize: the kernel layout dequantizes bit-identically;
 *  - a double-precision y = W x from those exact weights: each output within
 *    1e-5 * sum_j |w_j x_j| (the documented tolerance);
 *  - spqr_matvec_ref / spqr_matmul_ref (ENGINE's reference kernels);
 *  - itself with 1 and 2 threads: identical bits. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/tensor.h"
#include "kernels/spqr_kernel.h"
#include "spqr.h"
#include "test_tensor_util.h"
#include "test_util.h"

typedef struct {
    int32_t rows, cols, wbits, gs, qs, qz, qqgs;
    double outlier_share; /* probability of an outlier per weight */
    int perm;
    int dup_outliers;     /* add duplicated (r, c) CSR entries */
} cfg;

/* A packed tensor with random codes, statistics, outliers and perm. */
static spqr_tensor *random_tensor(const cfg *c, test_rng *rng) {
    return test_packed_random(c->rows, c->cols, c->wbits, c->gs, c->qs, c->qz, c->qqgs, c->outlier_share, c->perm,
                              c->dup_outliers ? TEST_DUP_FIRST : TEST_DUP_NONE, 0, rng);
}

static const spqr_kernel_path PATHS[] = {SPQR_KERNEL_SCALAR, SPQR_KERNEL_AVX2, SPQR_KERNEL_AVX512, SPQR_KERNEL_AVX512_VNNI,
                                         SPQR_KERNEL_NEON, SPQR_KERNEL_NEON_DOTPROD, SPQR_KERNEL_AVX2_I8, SPQR_KERNEL_AVX_VNNI,
                                         SPQR_KERNEL_VNNI_256};
#define N_PATHS ((int)(sizeof PATHS / sizeof PATHS[0]))

/* Paths that round activations to int8 (checked against W x^ and the int8 bound). */
static int int8_path(spqr_kernel_path p) {
    return p == SPQR_KERNEL_AVX512_VNNI || p == SPQR_KERNEL_NEON_DOTPROD || p == SPQR_KERNEL_AVX2_I8 || p == SPQR_KERNEL_AVX_VNNI ||
           p == SPQR_KERNEL_VNNI_256;
}

static void run_cfg(const cfg *c, test_rng *rng, int n_batch) {
    spqr_tensor *t = random_tensor(c, rng);
    spqr_err err;
    const size_t R = (size_t)c->rows, C = (size_t)c->cols;
    float *W = malloc(R * C * 4), *W2 = malloc(R * C * 4);
    CHECK(spqr_tensor_dequantize(t, W, &err) == SPQR_OK);
    const int32_t n = n_batch;
    float *X = malloc((size_t)n * C * 4), *Yref = malloc((size_t)n * R * 4);
    float *Y1 = malloc((size_t)n * R * 4), *Y2 = malloc((size_t)n * R * 4);
    double *ye = malloc((size_t)n * R * 8), *bound = malloc((size_t)n * R * 8);
    for (size_t i = 0; i < (size_t)n * C; i++) X[i] = test_rng_normal(rng);
    for (int32_t j = 0; j < n; j++)
        for (size_t r = 0; r < R; r++) {
            double a = 0, b = 0;
            for (size_t k = 0; k < C; k++) {
                a += (double)W[r * C + k] * X[(size_t)j * C + k];
                b += fabs((double)W[r * C + k] * X[(size_t)j * C + k]);
            }
            ye[(size_t)j * R + r] = a;
            bound[(size_t)j * R + r] = 1e-5 * b + 1e-30;
        }
    CHECK(spqr_matmul_ref(t, X, n, Yref, &err) == SPQR_OK);
    /* the int8 path's inputs x^ (one per input) and the exact W x^ */
    float *xh = malloc(C * 4);
    double *hs = malloc(C * 8), *yh = malloc((size_t)n * R * 8), *bh = malloc((size_t)n * R * 8);
    double *bq = malloc((size_t)n * R * 8);
    for (int32_t j = 0; j < n; j++) {
        test_int8_input(c->cols, c->gs, t, X + (size_t)j * C, xh, hs);
        for (size_t r = 0; r < R; r++) {
            double a = 0, b = 0, q = 0;
            for (size_t k = 0; k < C; k++) {
                a += (double)W[r * C + k] * xh[k];
                b += fabs((double)W[r * C + k] * xh[k]);
                q += fabs((double)W[r * C + k]) * hs[k];
            }
            const size_t i = (size_t)j * R + r;
            yh[i] = a;
            bh[i] = 1e-5 * b + 1e-30;
            bq[i] = q * (1 + 1e-5) + bound[i];
        }
    }
    for (int pi = 0; pi < N_PATHS; pi++) {
        spqr_ktensor *kt = NULL;
        spqr_status st = spqr_ktensor_from_tensor(t, PATHS[pi], &kt, &err);
        if (st == SPQR_ERR_UNSUPPORTED) continue; /* this CPU cannot run the path */
        CHECK_MSG(st == SPQR_OK, "%s", err.msg);
        if (st != SPQR_OK) continue;
        CHECK(spqr_ktensor_path(kt) == PATHS[pi]);
        memset(W2, 0xff, R * C * 4);
        CHECK(spqr_ktensor_dequantize(kt, W2, &err) == SPQR_OK);
        CHECK_MSG(memcmp(W, W2, R * C * 4) == 0, "dequantize not bit-identical: %dx%d w%d", c->rows, c->cols, c->wbits);
        for (int nb = 1; nb <= n; nb += n - 1 > 0 ? n - 1 : 1) {
            CHECK(spqr_ktensor_matmul(kt, X, nb, Y1, 1, &err) == SPQR_OK);
            CHECK(spqr_ktensor_matmul(kt, X, nb, Y2, 2, &err) == SPQR_OK);
            CHECK_MSG(memcmp(Y1, Y2, (size_t)nb * R * 4) == 0, "1 vs 2 threads differ (%s)", spqr_kernel_path_name(PATHS[pi]));
            if (int8_path(PATHS[pi])) {
                /* W x^ up to fp32 rounding, and W x within the int8 bound (every input) */
                int bad_h = 0, bad_q = 0;
                double worst = 0;
                for (size_t i = 0; i < (size_t)nb * R; i++) {
                    const double e = fabs((double)Y1[i] - yh[i]);
                    bad_h += e > bh[i];
                    if (e / bh[i] > worst) worst = e / bh[i];
                    bad_q += fabs((double)Y1[i] - ye[i]) > bq[i];
                }
                CHECK_MSG(bad_h == 0 && bad_q == 0, "%s n=%d %dx%d w%d gs%d: %d off W x^ (worst %.2f x tol), %d off the int8 bound",
                          spqr_kernel_path_name(PATHS[pi]), nb, c->rows, c->cols, c->wbits, c->gs, bad_h, worst, bad_q);
                continue;
            }
            int bad = 0, badref = 0;
            double worst = 0;
            for (size_t i = 0; i < (size_t)nb * R; i++) {
                const double e = fabs((double)Y1[i] - ye[i]);
                if (e > bound[i]) bad++;
                if (e / bound[i] > worst) worst = e / bound[i];
                if (fabs((double)Y1[i] - (double)Yref[i]) > 2 * bound[i]) badref++;
            }
            CHECK_MSG(bad == 0 && badref == 0,
                      "%s n=%d %dx%d w%d gs%d qs%d qz%d qq%d out%.2f perm%d: %d outputs off exact, %d off ref, worst %.2f x tol",
                      spqr_kernel_path_name(PATHS[pi]), nb, c->rows, c->cols, c->wbits, c->gs, c->qs, c->qz, c->qqgs,
                      c->outlier_share, c->perm, bad, badref, worst);
        }
        if (n == 1) {
            CHECK(spqr_ktensor_matvec(kt, X, Y1, 2, &err) == SPQR_OK);
            CHECK(memcmp(Y1, Y2, R * 4) == 0);
        }
        spqr_ktensor_free(kt);
    }
    /* the reference itself within tolerance of the exact sums */
    int badref = 0;
    for (size_t i = 0; i < (size_t)n * R; i++) badref += fabs((double)Yref[i] - ye[i]) > bound[i];
    CHECK(badref == 0);
    free(xh);
    free(hs);
    free(yh);
    free(bh);
    free(bq);
    free(W);
    free(W2);
    free(X);
    free(Yref);
    free(Y1);
    free(Y2);
    free(ye);
    free(bound);
    spqr_tensor_free(t);
}

static void test_env_and_errors(test_rng *rng) {
    cfg c = {20, 40, 3, 16, 3, 3, 16, 0.02, 1, 0};
    spqr_tensor *t = random_tensor(&c, rng);
    spqr_ktensor *kt = NULL;
    spqr_err err;
    spqr_status st;
    setenv("SPQR_KERNEL", "scalar", 1);
    CHECK(spqr_ktensor_from_tensor(t, SPQR_KERNEL_AUTO, &kt, &err) == SPQR_OK);
    CHECK(kt && spqr_ktensor_path(kt) == SPQR_KERNEL_SCALAR);
    spqr_ktensor_free(kt);
    kt = NULL;
    setenv("SPQR_KERNEL", "avx512vnni", 1);
    st = spqr_ktensor_from_tensor(t, SPQR_KERNEL_AUTO, &kt, &err);
    CHECK(st == SPQR_OK || st == SPQR_ERR_UNSUPPORTED);
    if (st == SPQR_OK) CHECK(spqr_ktensor_path(kt) == SPQR_KERNEL_AVX512_VNNI);
    spqr_ktensor_free(kt);
    kt = NULL;
    setenv("SPQR_KERNEL", "neondot", 1);
    st = spqr_ktensor_from_tensor(t, SPQR_KERNEL_AUTO, &kt, &err);
    CHECK(st == SPQR_OK || st == SPQR_ERR_UNSUPPORTED);
    if (st == SPQR_OK) CHECK(spqr_ktensor_path(kt) == SPQR_KERNEL_NEON_DOTPROD);
    spqr_ktensor_free(kt);
    kt = NULL;
    setenv("SPQR_KERNEL", "neon", 1);
    st = spqr_ktensor_from_tensor(t, SPQR_KERNEL_AUTO, &kt, &err);
    CHECK(st == SPQR_OK || st == SPQR_ERR_UNSUPPORTED);
    if (st == SPQR_OK) CHECK(spqr_ktensor_path(kt) == SPQR_KERNEL_NEON);
    spqr_ktensor_free(kt);
    kt = NULL;
    setenv("SPQR_KERNEL", "exact", 1); /* the fastest exact path: never an int8 one */
    CHECK(spqr_ktensor_from_tensor(t, SPQR_KERNEL_AUTO, &kt, &err) == SPQR_OK);
    CHECK(kt && !int8_path(spqr_ktensor_path(kt)));
    if (spqri_kt_path_supported(SPQR_KERNEL_NEON) && !spqri_kt_path_supported(SPQR_KERNEL_AVX2))
        CHECK(spqr_ktensor_path(kt) == SPQR_KERNEL_NEON);
    {
        spqr_ktensor *k5 = NULL;
        const int avx512 = spqr_ktensor_from_tensor(t, SPQR_KERNEL_AVX512, &k5, &err) == SPQR_OK;
        spqr_ktensor_free(k5);
        if (avx512) CHECK(spqr_ktensor_path(kt) == SPQR_KERNEL_AVX512);
    }
    spqr_ktensor_free(kt);
    kt = NULL;
    setenv("SPQR_KERNEL", "sse9", 1);
    CHECK(spqr_ktensor_from_tensor(t, SPQR_KERNEL_AUTO, &kt, &err) == SPQR_ERR_INVALID_ARG && kt == NULL);
    unsetenv("SPQR_KERNEL");
    CHECK(spqr_ktensor_from_tensor(t, (spqr_kernel_path)(SPQR_KERNEL_VNNI_256 + 1), &kt, &err) == SPQR_ERR_INVALID_ARG);
    CHECK(spqr_ktensor_from_tensor(NULL, SPQR_KERNEL_AUTO, &kt, &err) != SPQR_OK);
    CHECK(spqr_ktensor_from_tensor(t, SPQR_KERNEL_AUTO, &kt, &err) == SPQR_OK);
    CHECK(spqr_ktensor_path(kt) != SPQR_KERNEL_AUTO);
    /* AUTO = the fastest path the CPU runs: avx512vnni where it exists, neondot on an ARM CPU with dotprod */
    {
        spqr_ktensor *kv = NULL;
        const int vnni = spqr_ktensor_from_tensor(t, SPQR_KERNEL_AVX512_VNNI, &kv, &err) == SPQR_OK;
        spqr_ktensor_free(kv);
        CHECK(vnni == (spqr_ktensor_path(kt) == SPQR_KERNEL_AVX512_VNNI));
        if (spqri_kt_path_supported(SPQR_KERNEL_NEON_DOTPROD)) CHECK(spqr_ktensor_path(kt) == SPQR_KERNEL_NEON_DOTPROD);
        else if (spqri_kt_path_supported(SPQR_KERNEL_NEON)) CHECK(spqr_ktensor_path(kt) == SPQR_KERNEL_NEON);
    }
    printf("auto path on this CPU: %s, %llu stream bytes for %dx%d\n", spqr_kernel_path_name(spqr_ktensor_path(kt)),
           (unsigned long long)spqr_ktensor_bytes(kt), c.rows, c.cols);
    float y[20];
    CHECK(spqr_ktensor_matmul(kt, NULL, 1, y, 1, &err) == SPQR_ERR_INVALID_ARG);
    CHECK(spqr_ktensor_matmul(kt, y, -1, y, 1, &err) == SPQR_ERR_INVALID_ARG);
    spqr_ktensor_free(kt);
    spqr_tensor_free(t);
}

/* spqr_ktensor_matvec_multi: three products of one input (q, k, v-like,
 * different rows, perms and outliers) give the bits spqr_ktensor_matvec
 * gives each alone, with 1 and 2 threads, on every path; bad calls fail. */
static void test_multi(test_rng *rng) {
    const cfg cs[3] = {{64, 256, 3, 16, 3, 3, 16, 0.01, 1, 0}, {37, 256, 3, 16, 3, 3, 16, 0.05, 1, 0},
                       {300, 256, 3, 16, 3, 3, 16, 0.0, 0, 0}};
    spqr_tensor *t[3];
    for (int i = 0; i < 3; i++) t[i] = random_tensor(&cs[i], rng);
    float x[256], y1[3][300], y2[3][300];
    for (int j = 0; j < 256; j++) x[j] = test_rng_normal(rng);
    spqr_err err;
    for (int pi = 0; pi < N_PATHS; pi++) {
        spqr_ktensor *kt[3] = {NULL, NULL, NULL};
        int ok = 1;
        for (int i = 0; i < 3; i++) ok &= spqr_ktensor_from_tensor(t[i], PATHS[pi], &kt[i], &err) == SPQR_OK;
        if (ok)
            for (int th = 1; th <= 2; th++) {
                for (int i = 0; i < 3; i++) CHECK(spqr_ktensor_matvec(kt[i], x, y1[i], th, &err) == SPQR_OK);
                float *const ys[3] = {y2[0], y2[1], y2[2]};
                const spqr_ktensor *const kc[3] = {kt[0], kt[1], kt[2]};
                memset(y2, 0xff, sizeof y2);
                CHECK(spqr_ktensor_matvec_multi(kc, 3, x, ys, th, &err) == SPQR_OK);
                for (int i = 0; i < 3; i++)
                    CHECK_MSG(memcmp(y1[i], y2[i], (size_t)cs[i].rows * 4) == 0, "multi != single: %s product %d, %d threads",
                              spqr_kernel_path_name(PATHS[pi]), i, th);
            }
        if (ok && pi == 0) { /* errors */
            float *const ys[3] = {y2[0], y2[1], NULL};
            const spqr_ktensor *const kc[3] = {kt[0], kt[1], kt[2]};
            CHECK(spqr_ktensor_matvec_multi(kc, 0, x, ys, 1, &err) == SPQR_ERR_INVALID_ARG);
            CHECK(spqr_ktensor_matvec_multi(kc, 17, x, ys, 1, &err) == SPQR_ERR_INVALID_ARG);
            CHECK(spqr_ktensor_matvec_multi(kc, 3, x, ys, 1, &err) == SPQR_ERR_INVALID_ARG);
            CHECK(spqr_ktensor_matvec_multi(kc, 2, NULL, ys, 1, &err) == SPQR_ERR_INVALID_ARG);
            cfg other = cs[0];
            other.cols = 100;
            spqr_tensor *t4 = random_tensor(&other, rng);
            spqr_ktensor *k4 = NULL;
            CHECK(spqr_ktensor_from_tensor(t4, PATHS[pi], &k4, &err) == SPQR_OK);
            const spqr_ktensor *const km[2] = {kt[0], k4};
            CHECK(spqr_ktensor_matvec_multi(km, 2, x, ys, 1, &err) == SPQR_ERR_INVALID_ARG); /* 256 vs 100 inputs */
            spqr_ktensor_free(k4);
            spqr_tensor_free(t4);
        }
        for (int i = 0; i < 3; i++) spqr_ktensor_free(kt[i]);
    }
    for (int i = 0; i < 3; i++) spqr_tensor_free(t[i]);
}

/* The int8 paths' vectorized input preparation (avx512vnni, neondot)
 * against its scalar reference: the same int8 codes and scales and x^ bit
 * for bit, group sums within fp32 rounding; partial tiles, groups of
 * several tiles, perms, a tile with a NaN and an all-zero tile. */
static void test_prepare_i8_path(test_rng *rng, spqr_kernel_path path) {
    const cfg cs[4] = {{16, 203, 3, 16, 3, 3, 16, 0.0, 1, 0}, {16, 150, 3, 32, 2, 4, 16, 0.0, 1, 0},
                       {16, 100, 3, 0, 0, 0, 0, 0.0, 0, 0}, {16, 300, 4, 24, 3, 3, 16, 0.0, 1, 0}};
    spqr_err err;
    for (int ci = 0; ci < 4; ci++) {
        spqr_tensor *t = random_tensor(&cs[ci], rng);
        spqr_ktensor *kt = NULL;
        if (spqr_ktensor_from_tensor(t, path, &kt, &err) != SPQR_OK) { /* CPU lacks it */
            spqr_tensor_free(t);
            return;
        }
        const int32_t C = kt->cols, G = kt->n_groups, T = kt->n_ctiles;
        float *x = malloc((size_t)C * 4), *xp = kt_alloc64((size_t)kt->padcols * 4);
        float *xs[2] = {malloc((size_t)G * 4), malloc((size_t)G * 4)}, *xq[2] = {malloc((size_t)C * 4), malloc((size_t)C * 4)};
        float *at[2] = {malloc((size_t)T * 4), malloc((size_t)T * 4)};
        int32_t *xa[2] = {calloc((size_t)T * KT_XOPS, 4), calloc((size_t)T * KT_XOPS, 4)};
        for (int32_t j = 0; j < C; j++) x[j] = test_rng_normal(rng) * (j % 7 == 0 ? 30.0f : 1.0f);
        for (int32_t j = 0; j < 16 && j < C; j++) x[t->perm ? t->perm[j] : j] = 0.0f; /* first tile all zero */
        x[C / 2] = NAN;
        spqri_kt_prepare_i8_ref(kt, x, xp, xs[0], xq[0], xa[0], at[0]);
        if (path == SPQR_KERNEL_NEON_DOTPROD) spqri_kt_prepare_i8_neon(kt, x, xs[1], xq[1], xa[1], at[1], 1);
        else spqri_kt_prepare_i8_avx512(kt, x, xs[1], xq[1], xa[1], at[1], 1);
        CHECK_MSG(memcmp(xa[0], xa[1], (size_t)T * KT_XOPS * 4) == 0, "cfg %d: int8 codes differ", ci);
        CHECK_MSG(memcmp(at[0], at[1], (size_t)T * 4) == 0, "cfg %d: scales differ", ci);
        int xbad = 0;
        for (int32_t j = 0; j < C; j++) {
            if (memcmp(&xq[0][j], &xq[1][j], 4) && !(isnan(xq[0][j]) && isnan(xq[1][j]))) {
                if (!xbad) printf("  x^[%d] %g vs %g\n", j, xq[0][j], xq[1][j]);
                xbad++;
            }
        }
        CHECK_MSG(xbad == 0, "cfg %d: x^ differs at %d inputs", ci, xbad);
        int bad = 0, nan = 0;
        for (int32_t g = 0; g < G; g++) {
            if (isnan(xs[0][g]) || isnan(xs[1][g])) {
                nan += isnan(xs[0][g]) && isnan(xs[1][g]);
                bad += isnan(xs[0][g]) != isnan(xs[1][g]);
                continue;
            }
            double mag = 0;
            const int32_t c1 = (g + 1) * kt->groupsize < C ? (g + 1) * kt->groupsize : C;
            for (int32_t j = g * kt->groupsize; j < c1; j++) mag += fabs(xq[0][j]);
            bad += fabs((double)xs[0][g] - xs[1][g]) > 1e-6 * mag + 1e-30;
        }
        CHECK_MSG(bad == 0 && nan == 1, "cfg %d: %d group sums off, %d NaN groups (want 1)", ci, bad, nan);
        CHECK(at[0][0] == 0.0f && xa[0][0] == 0); /* the all-zero tile */
        free(x);
        free(xp);
        for (int k = 0; k < 2; k++) {
            free(xs[k]);
            free(xq[k]);
            free(at[k]);
            free(xa[k]);
        }
        spqr_ktensor_free(kt);
        spqr_tensor_free(t);
    }
}

int main(void) {
    test_rng rng = {0x9e3779b97f4a7c15ull};
    test_env_and_errors(&rng);
    test_multi(&rng);
    test_prepare_i8_path(&rng, SPQR_KERNEL_AVX512_VNNI);
    test_prepare_i8_path(&rng, SPQR_KERNEL_NEON_DOTPROD);
    for (int b = 2; b <= 8; b++) {
        /* the paper's layout, aligned shapes, ~1% outliers, act-order perm */
        cfg a = {64, 256, b, 16, 3, 3, 16, 0.01, 1, 0};
        run_cfg(&a, &rng, 1);
        run_cfg(&a, &rng, 5);
        /* odd shapes: rows % 16 != 0, cols % 16 != 0 and % groupsize != 0 */
        cfg o = {37, 203, b, 16, 3, 3, 16, 0.0, 0, 0};
        run_cfg(&o, &rng, 1);
        cfg o2 = {19, 150, b, 32, 2, 4, 16, 0.05, 1, 1};
        run_cfg(&o2, &rng, 3);
        /* per-row groups (groupsize = cols), 16-bit statistics */
        cfg pr = {33, 100, b, 0, 0, 0, 0, 0.01, 0, 0};
        run_cfg(&pr, &rng, 1);
        /* 16-bit stats with groups of 128, 30% outliers */
        cfg d = {48, 300, b, 128, 0, 0, 0, 0.30, 1, 0};
        run_cfg(&d, &rng, 2);
        /* qq_groupsize not a multiple of 16, 5..8-bit statistic codes, mixed fp16 zeros */
        cfg q = {45, 96, b, 16, b, 0, 7, 0.02, 1, 0};
        run_cfg(&q, &rng, 1);
        cfg q2 = {40, 64, b, 24, 6, 8, 32, 0.0, 0, 0};
        run_cfg(&q2, &rng, 4);
    }
    /* batches crossing the 64-input chunk, a single row, a single column */
    cfg big = {50, 130, 4, 16, 3, 3, 16, 0.01, 1, 0};
    run_cfg(&big, &rng, 70);
    /* four chunks: the batch's two scratch buffers each serve two chunks,
     * 1 vs 2 threads bit-identical and against W x (w3, one-tile groups) */
    cfg four = {64, 256, 3, 16, 3, 3, 16, 0.02, 1, 0};
    run_cfg(&four, &rng, 200);
    cfg one = {1, 1, 3, 16, 3, 3, 16, 0.5, 0, 0};
    run_cfg(&one, &rng, 1);
    cfg tall = {300, 17, 5, 8, 3, 3, 16, 0.1, 1, 0};
    run_cfg(&tall, &rng, 3);
    TEST_SUMMARY();
}
