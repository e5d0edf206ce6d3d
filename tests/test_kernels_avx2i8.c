/* The avx2i8 kernel path (src/kernels/spqr_kernel_avx2i8.c): int8
 * activations on AVX2. On random packed tensors of every wbits 2..8 and
 * awkward shapes (rows, cols, groupsize not multiples of 16; no outliers
 * and 30% outliers; act-order perm and identity; 16-bit and bilevel
 * statistics of 1..8 bits), one token and batches 1..9 (and 70) against
 *  - W x^ in double, x^ = each input rounded to int8 per column tile by the
 *    documented rule: within 1e-5 * sum_j |w_j x^_j|;
 *  - W x in double within the int8 bound sum_j |w_j| a_tile(j) / 2;
 *  - itself with 1 and 2 threads, and matvec_multi: identical bits.
 * Codes at their maximum with activations at +-127 check that no 16-bit
 * sum saturates (vpmaddubsw for 7 and 8 bits). The input preparation is
 * checked bit for bit against spqri_kt_prepare_i8_ref (and the word layout
 * against spqri_kt_avx2i8_words_ref). Skipped, with a note, without AVX2. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/tensor.h"
#include "kernels/cpu.h"
#include "kernels/spqr_kernel.h"
#include "spqr.h"
#include "test_tensor_util.h"
#include "test_util.h"

typedef struct {
    int32_t rows, cols, wbits, gs, qs, qz, qqgs;
    double outlier_share;
    int perm;
    int extreme; /* 1: every code 2^B - 1, inputs of one sign (saturation check) */
} cfg;

static spqr_tensor *random_tensor(const cfg *c, test_rng *rng) {
    return test_packed_random(c->rows, c->cols, c->wbits, c->gs, c->qs, c->qz, c->qqgs, c->outlier_share, c->perm,
                              TEST_DUP_NONE, c->extreme, rng);
}

static int runs;

/* avx2i8 and its 256-bit VNNI twins (same source, vpdpwssd / vpdpbusd for
 * vpmaddwd + vpaddd / vpmaddubsw): each that this CPU runs is checked
 * against the references, and the twins against avx2i8 bit for bit (the
 * integer dots are exact, the fp32 steps the same). */
static const spqr_kernel_path PATHS[3] = {SPQR_KERNEL_AVX2_I8, SPQR_KERNEL_VNNI_256, SPQR_KERNEL_AVX_VNNI};
static int twin_runs;

static void run_cfg(const cfg *c, test_rng *rng, int n) {
    spqr_tensor *t = random_tensor(c, rng);
    spqr_err err;
    const size_t R = (size_t)c->rows, C = (size_t)c->cols;
    float *W = malloc(R * C * 4), *X = malloc((size_t)n * C * 4), *xh = malloc(C * 4);
    float *Y1 = malloc((size_t)n * R * 4), *Y2 = malloc((size_t)n * R * 4), *Yv = malloc(R * 4);
    double *hs = malloc(C * 8), *yh = malloc((size_t)n * R * 8), *bh = malloc((size_t)n * R * 8);
    double *ye = malloc((size_t)n * R * 8), *bq = malloc((size_t)n * R * 8);
    CHECK(spqr_tensor_dequantize(t, W, &err) == SPQR_OK);
    for (size_t i = 0; i < (size_t)n * C; i++) X[i] = c->extreme ? 1.0f + test_rng_uniform(rng) : test_rng_normal(rng);
    for (int32_t j = 0; j < n; j++) {
        test_int8_input(c->cols, c->gs, t, X + (size_t)j * C, xh, hs);
        for (size_t r = 0; r < R; r++) {
            double a = 0, b = 0, e = 0, eb = 0, q = 0;
            for (size_t k = 0; k < C; k++) {
                const double w = W[r * C + k], x = X[(size_t)j * C + k];
                a += w * xh[k];
                b += fabs(w * xh[k]);
                e += w * x;
                eb += fabs(w * x);
                q += fabs(w) * hs[k];
            }
            const size_t i = (size_t)j * R + r;
            yh[i] = a;
            bh[i] = 1e-5 * b + 1e-30;
            ye[i] = e;
            bq[i] = q * (1 + 1e-5) + 1e-5 * eb + 1e-30;
        }
    }
    float *Yref = malloc((size_t)(n + 1) * (size_t)n * R * 4); /* avx2i8's Y1 of batch nb at [nb * n * R] */
    for (int pi = 0; pi < 3; pi++) {
    const spqr_kernel_path path = PATHS[pi];
    if (pi > 0 && !spqri_kt_path_supported(path)) continue;
    spqr_ktensor *kt = NULL;
    CHECK_MSG(spqr_ktensor_from_tensor(t, path, &kt, &err) == SPQR_OK, "%s", err.msg);
    if (kt) {
        CHECK(spqr_ktensor_path(kt) == path && kt->planar == (c->wbits == 3)); /* w3: the byte-aligned layout */
        for (int nb = 1; nb <= n; nb++) {
            CHECK(spqr_ktensor_matmul(kt, X, nb, Y1, 1, &err) == SPQR_OK);
            float *yr = Yref + (size_t)nb * n * R;
            if (pi == 0) memcpy(yr, Y1, (size_t)nb * R * 4);
            else {
                CHECK_MSG(memcmp(yr, Y1, (size_t)nb * R * 4) == 0, "%s differs from avx2i8 bits, n=%d w%d %dx%d",
                          spqr_kernel_path_name(path), nb, c->wbits, c->rows, c->cols);
                twin_runs++;
            }
            CHECK(spqr_ktensor_matmul(kt, X, nb, Y2, 2, &err) == SPQR_OK);
            CHECK_MSG(memcmp(Y1, Y2, (size_t)nb * R * 4) == 0, "1 vs 2 threads differ, n=%d", nb);
            int bad_h = 0, bad_q = 0;
            double worst = 0;
            for (size_t i = 0; i < (size_t)nb * R; i++) {
                const double e = fabs((double)Y1[i] - yh[i]);
                bad_h += !(e <= bh[i]);
                if (e / bh[i] > worst) worst = e / bh[i];
                bad_q += !(fabs((double)Y1[i] - ye[i]) <= bq[i]);
            }
            CHECK_MSG(bad_h == 0 && bad_q == 0,
                      "%s n=%d %dx%d w%d gs%d qs%d qz%d qq%d out%.2f perm%d ext%d: %d off W x^ (worst %.2f x tol), %d off the "
                      "int8 bound",
                      spqr_kernel_path_name(path), nb, c->rows, c->cols, c->wbits, c->gs, c->qs, c->qz, c->qqgs, c->outlier_share, c->perm, c->extreme, bad_h,
                      worst, bad_q);
            runs++;
            if (nb == 1) { /* the matvec entry and matvec_multi: the bits of matmul n = 1 */
                CHECK(spqr_ktensor_matvec(kt, X, Yv, 2, &err) == SPQR_OK);
                CHECK(memcmp(Yv, Y1, R * 4) == 0);
                const spqr_ktensor *const ks[2] = {kt, kt};
                float *const ys[2] = {Y2, Yv};
                CHECK(spqr_ktensor_matvec_multi(ks, 2, X, ys, 2, &err) == SPQR_OK);
                CHECK(memcmp(Y2, Y1, R * 4) == 0 && memcmp(Yv, Y1, R * 4) == 0);
            }
            if (nb == 3 && n > 9) nb = n - 1; /* then the largest batch only */
        }
        spqr_ktensor_free(kt);
    }
    }
    free(Yref);
    free(W);
    free(X);
    free(xh);
    free(Y1);
    free(Y2);
    free(Yv);
    free(hs);
    free(yh);
    free(bh);
    free(ye);
    free(bq);
    spqr_tensor_free(t);
}

/* spqri_kt_prepare_i8_avx2 against spqri_kt_prepare_i8_ref: int8 codes, scales and x^
 * bit for bit (column layout, and the word layout against
 * spqri_kt_avx2i8_words_ref), group sums within fp32 rounding; partial tiles,
 * groups of several tiles, perm and identity, a NaN tile, a zero tile, an
 * inf and a value at exactly half an int8 step. */
static void test_prepare(test_rng *rng) {
    const cfg cs[5] = {{16, 203, 3, 16, 3, 3, 16, 0.0, 1, 0}, {16, 150, 5, 32, 2, 4, 16, 0.0, 1, 0},
                       {16, 100, 7, 0, 0, 0, 0, 0.0, 0, 0}, {16, 300, 4, 24, 3, 3, 16, 0.0, 1, 0},
                       {16, 77, 8, 20, 3, 3, 16, 0.0, 0, 0}};
    spqr_err err;
    for (int ci = 0; ci < 5; ci++) {
        spqr_tensor *t = random_tensor(&cs[ci], rng);
        spqr_ktensor *kt = NULL;
        CHECK(spqr_ktensor_from_tensor(t, SPQR_KERNEL_AVX2_I8, &kt, &err) == SPQR_OK);
        if (!kt) {
            spqr_tensor_free(t);
            continue;
        }
        const int32_t C = kt->cols, G = kt->n_groups, T = kt->n_ctiles;
        for (int rep = 0; rep < 2; rep++) {
            float *x = malloc((size_t)C * 4), *xp = kt_alloc64((size_t)kt->padcols * 4);
            float *xs[3], *xq[3], *at[3];
            int32_t *xa[3];
            for (int k = 0; k < 3; k++) {
                xs[k] = malloc((size_t)G * 4);
                xq[k] = malloc((size_t)C * 4);
                at[k] = malloc((size_t)T * 4);
                xa[k] = calloc((size_t)T * KT_XW, 4);
            }
            for (int32_t j = 0; j < C; j++) x[j] = test_rng_normal(rng) * (j % 7 == 0 ? 30.0f : 1.0f);
            for (int32_t j = 0; j < 16 && j < C; j++) x[t->perm ? t->perm[j] : j] = 0.0f; /* first tile all zero */
            if (rep == 0) x[C / 2] = NAN;
            else x[C / 2] = INFINITY;
            /* a tile whose max is 127 and holds +-0.5, +-1.5, 2.5: round half to even */
            if (C > 40) {
                const int32_t c0 = 32;
                const float v[6] = {127.0f, 0.5f, -0.5f, 1.5f, -2.5f, -127.0f};
                for (int k = 0; k < 6 && c0 + k < C; k++) x[t->perm ? t->perm[c0 + k] : c0 + k] = v[k];
            }
            spqri_kt_prepare_i8_ref(kt, x, xp, xs[0], xq[0], xa[0], at[0]);
            spqri_kt_prepare_i8_avx2(kt, x, xs[1], xq[1], xa[1], at[1], 1, 0);
            spqri_kt_prepare_i8_avx2(kt, x, xs[2], xq[2], xa[2], at[2], 1, 1);
            CHECK_MSG(memcmp(xa[0], xa[1], (size_t)T * KT_XOPS * 4) == 0, "cfg %d: int8 codes differ", ci);
            int32_t *xw = calloc((size_t)T * KT_XW, 4);
            spqri_kt_avx2i8_words_ref(kt, xa[0], xw);
            CHECK_MSG(memcmp(xw, xa[2], (size_t)T * KT_XW * 4) == 0, "cfg %d: activation words differ", ci);
            free(xw);
            for (int k = 1; k < 3; k++) {
                CHECK_MSG(memcmp(at[0], at[k], (size_t)T * 4) == 0, "cfg %d: scales differ", ci);
                int xbad = 0, bad = 0, nan = 0;
                for (int32_t j = 0; j < C; j++)
                    xbad += memcmp(&xq[0][j], &xq[k][j], 4) && !(isnan(xq[0][j]) && isnan(xq[k][j]));
                CHECK_MSG(xbad == 0, "cfg %d: x^ differs at %d inputs", ci, xbad);
                for (int32_t g = 0; g < G; g++) {
                    if (isnan(xs[0][g]) || isnan(xs[k][g])) {
                        nan += isnan(xs[0][g]) && isnan(xs[k][g]);
                        bad += isnan(xs[0][g]) != isnan(xs[k][g]);
                        continue;
                    }
                    double mag = 0;
                    const int32_t c1 = (g + 1) * kt->groupsize < C ? (g + 1) * kt->groupsize : C;
                    for (int32_t j = g * kt->groupsize; j < c1; j++) mag += fabs(xq[0][j]);
                    bad += fabs((double)xs[0][g] - xs[k][g]) > 1e-6 * mag + 1e-30;
                }
                CHECK_MSG(bad == 0 && nan == 1, "cfg %d: %d group sums off, %d NaN groups (want 1)", ci, bad, nan);
            }
            CHECK(at[0][0] == 0.0f && xa[0][0] == 0); /* the all-zero tile */
            free(x);
            free(xp);
            for (int k = 0; k < 3; k++) {
                free(xs[k]);
                free(xq[k]);
                free(at[k]);
                free(xa[k]);
            }
        }
        spqr_ktensor_free(kt);
        spqr_tensor_free(t);
    }
}

/* The byte-aligned w3 layout (spqr_kernel.h) of the 256-bit int8 paths:
 * every code's bits where the layout says, against the packed layout the
 * exact avx2 path builds from the same tensor (formula written out here,
 * not the library's); dequantization bit-identical to the tensor's; and
 * spqr_ktensor_set_path switching planar <-> packed in place: the packed
 * codes byte for byte, the planar ones restored byte for byte, products
 * identical before and after. w4 stays packed on every path. */
static int planar_bits_ok(const spqr_ktensor *kp, const spqr_ktensor *kx) {
    int bad = 0;
    for (int32_t b = 0; b < kx->n_rtiles * kx->n_cblocks; b++) {
        const uint32_t *p = kp->codes + (size_t)b * kp->blk_u32, *x = kx->codes + (size_t)b * kx->blk_u32;
        for (int i = 0; i < KT_R; i++)
            for (int j = 0; j < 32; j++) {
                const uint64_t row = x[i] | (uint64_t)x[KT_R + i] << 32;
                const uint32_t q = (uint32_t)(j < 21 ? row >> (3 * j) : j == 21 ? row >> 63 | (uint64_t)x[2 * KT_R + i] << 1
                                                                           : x[2 * KT_R + i] >> (3 * j - 64)) & 7u;
                const int h = j / 16, k = (j % 16) / 4, byte = j % 4;
                uint32_t got;
                if (h == 0) got = p[(k / 2) * KT_R + i] >> (8 * byte + 3 * (k % 2)) & 7u;
                else if (k < 2) got = p[2 * KT_R + i] >> (8 * byte + 3 * k) & 7u;
                else got = (p[(k - 2) * KT_R + i] >> (8 * byte + 6) & 3u) | (p[2 * KT_R + i] >> (8 * byte + 4 + k) & 1u) << 2;
                bad += got != q;
            }
    }
    return bad;
}

static void test_planar(test_rng *rng) {
    const cfg cs[4] = {{37, 203, 3, 16, 3, 3, 16, 0.30, 1, 0}, {64, 256, 3, 16, 3, 3, 16, 0.01, 1, 0},
                       {19, 150, 3, 40, 0, 0, 0, 0.05, 0, 0}, {37, 203, 4, 16, 3, 3, 16, 0.05, 1, 0}};
    spqr_err err;
    for (int ci = 0; ci < 4; ci++) {
        const cfg *c = &cs[ci];
        spqr_tensor *t = random_tensor(c, rng);
        spqr_ktensor *kp = NULL, *kx = NULL;
        CHECK(spqr_ktensor_from_tensor(t, SPQR_KERNEL_AVX2_I8, &kp, &err) == SPQR_OK);
        CHECK(spqr_ktensor_from_tensor(t, SPQR_KERNEL_AVX2, &kx, &err) == SPQR_OK);
        if (!kp || !kx) {
            spqr_ktensor_free(kp);
            spqr_ktensor_free(kx);
            spqr_tensor_free(t);
            continue;
        }
        const int w3 = c->wbits == 3, n = 3;
        const size_t R = (size_t)c->rows, C = (size_t)c->cols, cb = (size_t)kx->n_rtiles * kx->n_cblocks * kx->blk_u32 * 4;
        CHECK_MSG(kp->planar == w3 && !kx->planar, "cfg %d: planar %d (avx2i8) %d (avx2)", ci, kp->planar, kx->planar);
        if (w3) CHECK_MSG(planar_bits_ok(kp, kx) == 0, "cfg %d: %d planar codes misplaced", ci, planar_bits_ok(kp, kx));
        else CHECK(memcmp(kp->codes, kx->codes, cb) == 0);
        uint32_t *planar_codes = malloc(cb);
        memcpy(planar_codes, kp->codes, cb);
        float *Wt = malloc(R * C * 4), *Wk = malloc(R * C * 4), *X = malloc((size_t)n * C * 4);
        float *Y0 = malloc((size_t)(n + 1) * R * 4), *Y1 = malloc((size_t)(n + 1) * R * 4), *Yx = malloc((size_t)n * R * 4);
        for (size_t i = 0; i < (size_t)n * C; i++) X[i] = test_rng_normal(rng);
        CHECK(spqr_tensor_dequantize(t, Wt, &err) == SPQR_OK);
        CHECK(spqr_ktensor_dequantize(kp, Wk, &err) == SPQR_OK);
        CHECK_MSG(memcmp(Wt, Wk, R * C * 4) == 0, "cfg %d: planar dequantization differs", ci);
        CHECK(spqr_ktensor_matmul(kp, X, 1, Y0, 1, &err) == SPQR_OK);
        CHECK(spqr_ktensor_matmul(kp, X, n, Y0 + R, 1, &err) == SPQR_OK); /* Y0: n = 1, then n = 3 */
        /* planar -> packed (exact avx2): the packed bytes, the exact path's products */
        CHECK(spqr_ktensor_set_path(kp, SPQR_KERNEL_AVX2, &err) == SPQR_OK && !kp->planar);
        CHECK_MSG(memcmp(kp->codes, kx->codes, cb) == 0, "cfg %d: packed codes after the switch differ", ci);
        CHECK(spqr_ktensor_dequantize(kp, Wk, &err) == SPQR_OK && memcmp(Wt, Wk, R * C * 4) == 0);
        CHECK(spqr_ktensor_matmul(kp, X, n, Y1, 1, &err) == SPQR_OK);
        CHECK(spqr_ktensor_matmul(kx, X, n, Yx, 1, &err) == SPQR_OK);
        CHECK_MSG(memcmp(Y1, Yx, (size_t)n * R * 4) == 0, "cfg %d: switched avx2 products differ", ci);
        /* -> vnni256 (planar again), -> scalar (packed), -> avx2i8: the planar bytes and products restored */
        if (spqri_kt_path_supported(SPQR_KERNEL_VNNI_256)) {
            CHECK(spqr_ktensor_set_path(kp, SPQR_KERNEL_VNNI_256, &err) == SPQR_OK && kp->planar == w3);
            CHECK(memcmp(kp->codes, planar_codes, cb) == 0);
            CHECK(spqr_ktensor_matmul(kp, X, 1, Y1, 1, &err) == SPQR_OK && memcmp(Y1, Y0, R * 4) == 0);
        }
        CHECK(spqr_ktensor_set_path(kp, SPQR_KERNEL_SCALAR, &err) == SPQR_OK && !kp->planar);
        CHECK(memcmp(kp->codes, kx->codes, cb) == 0);
        CHECK(spqr_ktensor_set_path(kp, SPQR_KERNEL_AVX2_I8, &err) == SPQR_OK && kp->planar == w3);
        CHECK_MSG(memcmp(kp->codes, planar_codes, cb) == 0, "cfg %d: planar codes not restored", ci);
        CHECK(spqr_ktensor_dequantize(kp, Wk, &err) == SPQR_OK && memcmp(Wt, Wk, R * C * 4) == 0);
        CHECK(spqr_ktensor_matmul(kp, X, 1, Y1, 1, &err) == SPQR_OK);
        CHECK(spqr_ktensor_matmul(kp, X, n, Y1 + R, 1, &err) == SPQR_OK);
        CHECK_MSG(memcmp(Y1, Y0, (size_t)(n + 1) * R * 4) == 0, "cfg %d: products after the round trip differ", ci);
        free(planar_codes);
        free(Wt);
        free(Wk);
        free(X);
        free(Y0);
        free(Y1);
        free(Yx);
        spqr_ktensor_free(kp);
        spqr_ktensor_free(kx);
        spqr_tensor_free(t);
    }
}

static void test_selection(test_rng *rng) {
    cfg c = {20, 40, 3, 16, 3, 3, 16, 0.02, 1, 0};
    spqr_tensor *t = random_tensor(&c, rng);
    spqr_ktensor *kt = NULL;
    spqr_err err;
    setenv("SPQR_KERNEL", "avx2i8", 1);
    CHECK(spqr_ktensor_from_tensor(t, SPQR_KERNEL_AUTO, &kt, &err) == SPQR_OK);
    CHECK(kt && spqr_ktensor_path(kt) == SPQR_KERNEL_AVX2_I8);
    CHECK(!strcmp(spqr_kernel_path_name(SPQR_KERNEL_AVX2_I8), "avx2i8"));
    spqr_ktensor_free(kt);
    kt = NULL;
    setenv("SPQR_KERNEL", "exact", 1); /* never an int8 path */
    CHECK(spqr_ktensor_from_tensor(t, SPQR_KERNEL_AUTO, &kt, &err) == SPQR_OK);
    CHECK(kt && spqr_ktensor_path(kt) != SPQR_KERNEL_AVX2_I8 && spqr_ktensor_path(kt) != SPQR_KERNEL_AVX512_VNNI);
    spqr_ktensor_free(kt);
    kt = NULL;
    unsetenv("SPQR_KERNEL");
    CHECK(spqr_ktensor_from_tensor(t, SPQR_KERNEL_AUTO, &kt, &err) == SPQR_OK);
    /* AUTO: avx512vnni where the CPU has it, else the VNNI twins, else avx2i8 */
    const spqr_kernel_path want = spqri_kt_path_supported(SPQR_KERNEL_AVX512_VNNI) ? SPQR_KERNEL_AVX512_VNNI
                                  : spqri_kt_path_supported(SPQR_KERNEL_AVX_VNNI) ? SPQR_KERNEL_AVX_VNNI
                                  : spqri_kt_path_supported(SPQR_KERNEL_VNNI_256) ? SPQR_KERNEL_VNNI_256
                                                                                  : SPQR_KERNEL_AVX2_I8;
    CHECK_MSG(kt && spqr_ktensor_path(kt) == want, "auto picked %s", kt ? spqr_kernel_path_name(spqr_ktensor_path(kt)) : "-");
    /* switching an existing layout to and from the path */
    CHECK(spqr_ktensor_set_path(kt, SPQR_KERNEL_AVX2, &err) == SPQR_OK && spqr_ktensor_path(kt) == SPQR_KERNEL_AVX2);
    CHECK(spqr_ktensor_set_path(kt, SPQR_KERNEL_AVX2_I8, &err) == SPQR_OK && spqr_ktensor_path(kt) == SPQR_KERNEL_AVX2_I8);
    CHECK(spqr_ktensor_set_path(kt, (spqr_kernel_path)(SPQR_KERNEL_VNNI_256 + 1), &err) == SPQR_ERR_INVALID_ARG);
    /* the twins: by name, refused where the CPU lacks them, AUTO's order */
    setenv("SPQR_KERNEL", "vnni256", 1);
    CHECK(spqr_ktensor_set_path(kt, SPQR_KERNEL_AUTO, &err) == (spqri_kt_path_supported(SPQR_KERNEL_VNNI_256) ? SPQR_OK : SPQR_ERR_UNSUPPORTED));
    setenv("SPQR_KERNEL", "avxvnni", 1);
    CHECK(spqr_ktensor_set_path(kt, SPQR_KERNEL_AUTO, &err) == (spqri_kt_path_supported(SPQR_KERNEL_AVX_VNNI) ? SPQR_OK : SPQR_ERR_UNSUPPORTED));
    unsetenv("SPQR_KERNEL");
    CHECK(!strcmp(spqr_kernel_path_name(SPQR_KERNEL_AVX_VNNI), "avxvnni") && !strcmp(spqr_kernel_path_name(SPQR_KERNEL_VNNI_256), "vnni256"));
    spqr_ktensor_free(kt);
    spqr_tensor_free(t);
}

/* The detector's VNNI flags against the kernel's own report (/proc/cpuinfo
 * flags avx_vnni: CPUID 7.1 EAX bit 4; avx512_vnni, avx512vl), where it
 * has one; x86-64 builds only (under qemu-aarch64 /proc/cpuinfo is the
 * x86 host's). */
static void test_detect(void) {
#if !defined(__x86_64__)
    return;
#endif
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[8192];
    int found = 0, vnni = 0, v512 = 0, vl = 0;
    while (!found && fgets(line, sizeof line, f))
        if (!strncmp(line, "flags", 5)) {
            found = 1;
            for (char *tok = strtok(strchr(line, ':') ? strchr(line, ':') + 1 : line, " \n"); tok; tok = strtok(NULL, " \n")) {
                vnni |= !strcmp(tok, "avx_vnni");
                v512 |= !strcmp(tok, "avx512_vnni");
                vl |= !strcmp(tok, "avx512vl");
            }
        }
    fclose(f);
    if (!found) return;
    const spqr_cpu c = spqr_cpu_detect();
    CHECK_MSG(c.avxvnni == vnni && c.avx512vnni == v512 && c.avx512vl == vl, "detector avxvnni %d avx512vnni %d vl %d, cpuinfo %d %d %d",
              c.avxvnni, c.avx512vnni, c.avx512vl, vnni, v512, vl);
    printf("cpuinfo: avx_vnni %d, avx512_vnni %d, avx512vl %d (detector agrees)\n", vnni, v512, vl);
}

int main(void) {
    test_detect();
    if (!spqri_kt_path_supported(SPQR_KERNEL_AVX2_I8)) {
        printf("note: this CPU has no AVX2 + FMA + F16C: avx2i8 tests skipped\n");
        spqr_err err;
        spqr_ktensor *kt = NULL;
        cfg c = {16, 16, 3, 16, 3, 3, 16, 0.0, 0, 0};
        test_rng rng = {1};
        spqr_tensor *t = random_tensor(&c, &rng);
        CHECK(spqr_ktensor_from_tensor(t, SPQR_KERNEL_AVX2_I8, &kt, &err) == SPQR_ERR_UNSUPPORTED && !kt);
        spqr_tensor_free(t);
        TEST_SUMMARY();
    }
    test_rng rng = {0x5bd1e9955bd1e995ull};
    test_selection(&rng);
    test_prepare(&rng);
    test_planar(&rng);
    for (int b = 2; b <= 8; b++) {
        /* aligned shapes, 1% outliers, act-order perm: batches 1..9 */
        cfg a = {64, 256, b, 16, 3, 3, 16, 0.01, 1, 0};
        run_cfg(&a, &rng, 9);
        /* odd shapes, no outliers, identity; groups of several tiles, not multiples of 16 */
        cfg o = {37, 203, b, 16, 3, 3, 16, 0.0, 0, 0};
        run_cfg(&o, &rng, 2);
        cfg o2 = {19, 150, b, 40, 2, 4, 16, 0.05, 1, 0};
        run_cfg(&o2, &rng, 3);
        /* dense-ish outliers (30%), 16-bit statistics, groups of 24 */
        cfg d = {48, 300, b, 24, 0, 0, 0, 0.30, 1, 0};
        run_cfg(&d, &rng, 2);
        /* per-row groups */
        cfg pr = {33, 100, b, 0, 0, 0, 0, 0.01, 0, 0};
        run_cfg(&pr, &rng, 1);
        /* qq_groupsize not a multiple of 16, 5..8-bit statistic codes, 4-bit codes (the table route's int->fp32 case) */
        cfg q = {45, 96, b, 16, b, 0, 7, 0.02, 1, 0};
        run_cfg(&q, &rng, 2);
        cfg q2 = {40, 64, b, 16, 4, 4, 32, 0.0, 0, 0};
        run_cfg(&q2, &rng, 2);
        cfg q3 = {40, 64, b, 16, 1, 2, 16, 0.01, 1, 0};
        run_cfg(&q3, &rng, 2);
        /* every code at its maximum, inputs of one sign: +-127 activations (16-bit sums must not saturate) */
        cfg e = {32, 128, b, 16, 3, 3, 16, 0.0, 1, 1};
        run_cfg(&e, &rng, 3);
        cfg e2 = {20, 70, b, 35, 0, 0, 0, 0.0, 0, 1};
        run_cfg(&e2, &rng, 2);
    }
    /* a batch crossing the 64-input chunk, a single row and column, a tall matrix */
    cfg big = {50, 130, 3, 16, 3, 3, 16, 0.01, 1, 0};
    run_cfg(&big, &rng, 70);
    cfg one = {1, 1, 3, 16, 3, 3, 16, 0.5, 0, 0};
    run_cfg(&one, &rng, 1);
    cfg tall = {300, 17, 5, 8, 3, 3, 16, 0.1, 1, 0};
    run_cfg(&tall, &rng, 3);
    printf("%d avx2i8 / avxvnni / vnni256 products checked (%d of them twins against avx2i8 bits)\n", runs, twin_runs);
    if (spqri_kt_path_supported(SPQR_KERNEL_VNNI_256)) CHECK(twin_runs > 0);
    if (!spqri_kt_path_supported(SPQR_KERNEL_AVX_VNNI))
        printf("note: no AVX-VNNI (VEX) on this CPU: avxvnni compiled, detected absent, not run; vnni256 (EVEX) ran in its place\n");
    TEST_SUMMARY();
}
