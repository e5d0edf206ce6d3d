/* Properties of spqr_quantize_layer that hold whatever the data: blocking
 * and threads are speed devices only, RTN is plain rounding, GPTQ and
 * outliers lower the Hessian-weighted error, act_order commutes with a
 * column permutation, dead inputs are dropped, the reference kernels compute
 * W_hat x, and bad input is rejected with the right status. */
#include "spqr.h"
#include "quant/gptq.h"
#include "quant/outliers.h"
#include "test_util.h"

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- data */

/* H = X^T X / n, X = Z A (mixing matrix A = I + N/sqrt(cols)) with column
 * scales spread by `spread` (0 = equal scales); n = 3 cols samples. */
static float *make_hessian(int32_t cols, unsigned long long seed, double spread) {
    test_rng rng = {seed * 2654435761ull + 11};
    const int32_t n = 3 * cols;
    double *A = malloc(sizeof(double) * (size_t)cols * cols), *X = malloc(sizeof(double) * (size_t)n * cols);
    double *z = malloc(sizeof(double) * (size_t)cols), *sc = malloc(sizeof(double) * (size_t)cols);
    for (int32_t j = 0; j < cols; j++) sc[j] = exp(spread * test_rng_normal(&rng));
    for (int32_t i = 0; i < cols; i++)
        for (int32_t j = 0; j < cols; j++) A[i * cols + j] = (i == j) + test_rng_normal(&rng) / sqrt((double)cols);
    for (int32_t k = 0; k < n; k++) {
        for (int32_t i = 0; i < cols; i++) z[i] = test_rng_normal(&rng);
        for (int32_t j = 0; j < cols; j++) {
            double acc = 0;
            for (int32_t i = 0; i < cols; i++) acc += z[i] * A[i * cols + j];
            X[(size_t)k * cols + j] = acc * sc[j];
        }
    }
    float *H = test_gram(X, n, cols);
    free(A);
    free(X);
    free(z);
    free(sc);
    return H;
}

static float *make_weight(int32_t rows, int32_t cols, unsigned long long seed, int planted) {
    test_rng rng = {seed * 7919ull + 5};
    float *W = malloc(sizeof(float) * (size_t)rows * cols);
    for (int32_t i = 0; i < rows * cols; i++) W[i] = 0.05f * test_rng_normal(&rng);
    for (int k = 0; k < planted; k++)
        W[test_rng_next(&rng) % (unsigned long long)(rows * cols)] = (k & 1) ? 0.5f + 0.01f * k : -0.6f;
    return W;
}

/* tr(dW H dW^T) / tr(W H W^T), naive double loops: independent of the engine's dsyrk. */
static double rel_error(const float *W, const float *Wh, const float *H, int32_t rows, int32_t cols) {
    double num = 0, den = 0;
    for (int32_t r = 0; r < rows; r++)
        for (int32_t i = 0; i < cols; i++) {
            double a = (double)Wh[r * cols + i] - W[r * cols + i], w = W[r * cols + i];
            double ha = 0, hw = 0;
            for (int32_t j = 0; j < cols; j++) {
                double h = H[i * cols + j];
                ha += h * ((double)Wh[r * cols + j] - W[r * cols + j]);
                hw += h * W[r * cols + j];
            }
            num += a * ha;
            den += w * hw;
        }
    return num / den;
}

typedef struct {
    float *What;
    uint8_t *mask;
    spqr_tensor *t;
    spqr_quant_report rep;
    spqr_status st;
    spqr_err err;
} result;

static result quantize(const float *W, int32_t rows, int32_t cols, const float *H, const spqr_quant_params *p,
                       int32_t threads) {
    result r;
    memset(&r, 0, sizeof r);
    r.What = malloc(sizeof(float) * (size_t)rows * cols);
    r.mask = malloc((size_t)rows * cols);
    r.st = spqr_quantize_layer(W, rows, cols, H, p, threads, NULL, &r.t, r.What, r.mask, &r.rep, &r.err);
    if (r.st != SPQR_OK) fprintf(stderr, "quantize: %s\n", r.err.msg);
    return r;
}

static void result_free(result *r) {
    free(r->What);
    free(r->mask);
    spqr_tensor_free(r->t);
}

static double max_abs(const float *a, size_t n) {
    double m = 0;
    /* compares, not fmax: GCC 12.2's aarch64 vectorizer crashes on fmax reductions of widened floats at -O3 (same
     * NaN-skipping result); likewise below */
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i]) > m) m = fabs((double)a[i]);
    return m;
}

/* ---------------------------------------------------------------- tests */

static void test_blocksize_and_threads(void) {
    const int32_t rows = 40, cols = 100;
    float *W = make_weight(rows, cols, 1, 12), *H = make_hessian(cols, 1, 0.7);
    spqr_quant_params ps[3];
    for (int i = 0; i < 3; i++) spqr_quant_params_default(&ps[i]);
    ps[1].wbits = 4;
    ps[1].qq_scale_bits = ps[1].qq_zero_bits = 0;
    ps[1].outlier_threshold = INFINITY;
    ps[1].perm = SPQR_PERM_IDENTITY;
    ps[2].groupsize = 0;
    ps[2].outlier_threshold = 0.1f;
    const int32_t bss[] = {1, 7, 16, 128, cols};
    for (int c = 0; c < 3; c++) {
        spqr_quant_params p = ps[c];
        p.blocksize = 128;
        result ref = quantize(W, rows, cols, H, &p, 2);
        CHECK(ref.st == SPQR_OK);
        if (ref.st != SPQR_OK) continue;
        const double tol = 1e-6 * max_abs(ref.What, (size_t)rows * cols);
        for (size_t b = 0; b < sizeof bss / sizeof bss[0]; b++) {
            p.blocksize = bss[b];
            result r = quantize(W, rows, cols, H, &p, 2);
            CHECK(r.st == SPQR_OK);
            if (r.st != SPQR_OK) continue;
            CHECK_MSG(r.t->codes_bytes == ref.t->codes_bytes &&
                          memcmp(r.t->codes, ref.t->codes, ref.t->codes_bytes) == 0,
                      "config %d blocksize %d: codes differ", c, bss[b]);
            CHECK_MSG(memcmp(r.mask, ref.mask, (size_t)rows * cols) == 0, "config %d blocksize %d: mask differs", c,
                      bss[b]);
            double md = 0;
            for (int32_t i = 0; i < rows * cols; i++) {
                const double d = fabs((double)r.What[i] - ref.What[i]);
                if (d > md) md = d;
            }
            CHECK_MSG(md <= tol, "config %d blocksize %d: max |dW_hat| %g", c, bss[b], md);
            result_free(&r);
        }
        /* threads: one thread gives the very same result (rows are independent) */
        p.blocksize = 128;
        result r1 = quantize(W, rows, cols, H, &p, 1);
        CHECK(r1.st == SPQR_OK && memcmp(r1.What, ref.What, sizeof(float) * (size_t)rows * cols) == 0);
        result_free(&r1);
        result_free(&ref);
    }
    free(W);
    free(H);
}

/* Brute-force RTN: per row and group of the original weights, fp16 stats. */
static void rtn_brute(const float *W, int32_t rows, int32_t cols, int32_t g, int wbits, float *out) {
    const double maxq = (1 << wbits) - 1;
    if (g == 0) g = cols;
    for (int32_t r = 0; r < rows; r++)
        for (int32_t j0 = 0; j0 < cols; j0 += g) {
            int32_t j1 = j0 + g < cols ? j0 + g : cols;
            double lo = W[r * cols + j0], hi = lo;
            for (int32_t j = j0; j < j1; j++) {
                if (W[r * cols + j] < lo) lo = W[r * cols + j];
                if (W[r * cols + j] > hi) hi = W[r * cols + j];
            }
            if (lo == hi) lo = -1, hi = 1;
            double s = (hi - lo) / maxq, z = -lo / s;
            float sf = spqr_fp16_to_fp32(spqr_fp32_to_fp16((float)s));
            float zf = spqr_fp16_to_fp32(spqr_fp32_to_fp16((float)z));
            for (int32_t j = j0; j < j1; j++) {
                double q = nearbyint((double)W[r * cols + j] / fmax((double)sf, 1e-9) + (double)zf);
                q = q < 0 ? 0 : q > maxq ? maxq : q;
                out[r * cols + j] = sf * ((float)q - zf);
            }
        }
}

static void test_rtn(void) {
    const int32_t rows = 33, cols = 45;
    float *W = make_weight(rows, cols, 2, 5), *H = make_hessian(cols, 2, 0.5);
    float *bf = malloc(sizeof(float) * rows * cols);
    const int32_t gs[] = {0, 16, 7};
    for (int wb = 2; wb <= 8; wb += 3)
        for (size_t gi = 0; gi < 3; gi++) {
            spqr_quant_params p;
            spqr_quant_params_default(&p);
            p.gptq = 0;
            p.outlier_threshold = INFINITY;
            p.perm = SPQR_PERM_IDENTITY;
            p.qq_scale_bits = p.qq_zero_bits = 0;
            p.wbits = wb;
            p.groupsize = gs[gi];
            result r = quantize(W, rows, cols, H, &p, 2);
            CHECK(r.st == SPQR_OK);
            if (r.st != SPQR_OK) continue;
            rtn_brute(W, rows, cols, gs[gi], wb, bf);
            CHECK_MSG(memcmp(bf, r.What, sizeof(float) * rows * cols) == 0, "RTN w%d g%d differs from brute force", wb,
                      gs[gi]);
            /* the engine evaluates A^T A in fp32 (docs/quantize.md, "Engine"): ~1e-7 relative */
            CHECK_NEAR(r.rep.rel_hessian_error, rel_error(W, r.What, H, rows, cols),
                       1e-9 + 1e-6 * r.rep.rel_hessian_error);
            result_free(&r);
        }
    free(bf);
    free(W);
    free(H);
}

static void test_errors_ordering(void) {
    const int32_t rows = 64, cols = 96;
    float *W = make_weight(rows, cols, 3, 20), *H = make_hessian(cols, 3, 0.8);
    spqr_quant_params p;
    spqr_quant_params_default(&p);
    p.qq_scale_bits = p.qq_zero_bits = 0;
    p.outlier_threshold = INFINITY;
    p.percdamp = 0.01f;
    p.perm = SPQR_PERM_IDENTITY;
    p.gptq = 0;
    result rtn = quantize(W, rows, cols, H, &p, 2);
    p.gptq = 1;
    result gptq = quantize(W, rows, cols, H, &p, 2);
    CHECK(rtn.st == SPQR_OK && gptq.st == SPQR_OK);
    double e_rtn = rel_error(W, rtn.What, H, rows, cols), e_gptq = rel_error(W, gptq.What, H, rows, cols);
    CHECK_MSG(e_gptq < 0.9 * e_rtn, "GPTQ %g not below RTN %g", e_gptq, e_rtn);
    CHECK_NEAR(gptq.rep.rel_hessian_error, e_gptq, 1e-6 * e_gptq); /* fp32 A^T A, as above */
    printf("rel error: RTN %.4e  GPTQ %.4e\n", e_rtn, e_gptq);
    result_free(&rtn);
    result_free(&gptq);

    /* outliers (default SpQR) versus the same without */
    spqr_quant_params_default(&p);
    p.outlier_threshold = INFINITY;
    result none = quantize(W, rows, cols, H, &p, 2);
    double prev_err = none.rep.rel_hessian_error;
    (void)prev_err;
    int64_t prev_n = 0;
    const float taus[] = {1.0f, 0.5f, 0.2f, 0.1f, 0.05f};
    for (int i = 0; i < 5; i++) {
        p.outlier_threshold = taus[i];
        result r = quantize(W, rows, cols, H, &p, 2);
        CHECK(r.st == SPQR_OK);
        if (r.st != SPQR_OK) continue;
        printf("tau %.2f: %lld outliers, rel error %.4e (none: %.4e)\n", taus[i], (long long)r.rep.n_outliers,
               r.rep.rel_hessian_error, none.rep.rel_hessian_error);
        CHECK_MSG(r.rep.rel_hessian_error < none.rep.rel_hessian_error, "tau %g: outliers did not reduce the error",
                  taus[i]);
        CHECK_MSG(r.rep.n_outliers > prev_n, "tau %g: outlier count %lld did not grow past %lld", taus[i],
                  (long long)r.rep.n_outliers, (long long)prev_n);
        /* (the error need not fall monotonically between neighbouring taus: more
         * likely outliers also reshape the leave-one-out statistics) */
        prev_err = r.rep.rel_hessian_error;
        prev_n = r.rep.n_outliers;
        result_free(&r);
    }
    result_free(&none);
    free(W);
    free(H);
}

static void test_act_order_permutation(void) {
    const int32_t rows = 24, cols = 50;
    float *W = make_weight(rows, cols, 4, 6), *H = make_hessian(cols, 4, 0.9);
    /* distinct diag(H) so act_order is unambiguous */
    for (int32_t i = 0; i < cols; i++)
        for (int32_t k = 0; k < i; k++) CHECK(H[i * cols + i] != H[k * cols + k]);
    int32_t P[50];
    test_rng rng = {99};
    for (int32_t j = 0; j < cols; j++) P[j] = j;
    for (int32_t j = cols - 1; j > 0; j--) {
        int32_t k = (int32_t)(test_rng_next(&rng) % (unsigned long long)(j + 1)), t = P[j];
        P[j] = P[k];
        P[k] = t;
    }
    float *W2 = malloc(sizeof(float) * rows * cols), *H2 = malloc(sizeof(float) * cols * cols);
    for (int32_t r = 0; r < rows; r++)
        for (int32_t j = 0; j < cols; j++) W2[r * cols + j] = W[r * cols + P[j]];
    for (int32_t i = 0; i < cols; i++)
        for (int32_t j = 0; j < cols; j++) H2[i * cols + j] = H[P[i] * cols + P[j]];
    spqr_quant_params p;
    spqr_quant_params_default(&p);
    result a = quantize(W, rows, cols, H, &p, 2), b = quantize(W2, rows, cols, H2, &p, 2);
    CHECK(a.st == SPQR_OK && b.st == SPQR_OK);
    int same = 1, same_mask = 1;
    for (int32_t r = 0; r < rows; r++)
        for (int32_t j = 0; j < cols; j++) {
            same &= b.What[r * cols + j] == a.What[r * cols + P[j]];
            same_mask &= b.mask[r * cols + j] == a.mask[r * cols + P[j]];
        }
    CHECK_MSG(same, "act_order: quantize(W P, P^T H P) != quantize(W, H) P");
    CHECK(same_mask);
    CHECK(a.rep.n_outliers > 0);
    /* the stored order is by descending diag(H) */
    int desc = a.t->perm != NULL;
    for (int32_t j = 1; desc && j < cols; j++)
        desc &= H[a.t->perm[j - 1] * cols + a.t->perm[j - 1]] > H[a.t->perm[j] * cols + a.t->perm[j]];
    CHECK(desc);
    result_free(&a);
    result_free(&b);
    free(W);
    free(W2);
    free(H);
    free(H2);
}

static void test_dead_columns(void) {
    const int32_t rows = 20, cols = 40;
    float *W = make_weight(rows, cols, 5, 0), *H = make_hessian(cols, 5, 0.3);
    const int32_t dead[] = {0, 13, 14, 39};
    for (int k = 0; k < 4; k++) {
        int32_t c = dead[k];
        for (int32_t i = 0; i < cols; i++) H[c * cols + i] = H[i * cols + c] = 0.0f;
        for (int32_t r = 0; r < rows; r++) W[r * cols + c] = 3.0f + (float)r; /* would dominate if kept */
    }
    for (int sym = 0; sym <= 1; sym++) {
        spqr_quant_params p;
        spqr_quant_params_default(&p);
        p.sym = sym;
        p.perm = sym ? SPQR_PERM_IDENTITY : SPQR_PERM_ACT_ORDER;
        result r = quantize(W, rows, cols, H, &p, 2);
        CHECK(r.st == SPQR_OK);
        if (r.st != SPQR_OK) continue;
        double worst = 0;
        int masked = 0;
        for (int k = 0; k < 4; k++)
            for (int32_t i = 0; i < rows; i++) {
                const double d = fabs((double)r.What[i * cols + dead[k]]);
                if (d > worst) worst = d;
                masked += r.mask[i * cols + dead[k]];
            }
        /* the column is zeroed, then quantized: sym has an exact zero code, asym lands within a step of 0 */
        if (sym) CHECK_MSG(worst == 0.0, "sym: dead column gives %g", worst);
        else CHECK_MSG(worst < 0.05, "asym: dead column gives %g", worst);
        CHECK(masked == 0);
        result_free(&r);
    }
    free(W);
    free(H);
}

static void test_kernels(void) {
    const int32_t rows = 29, cols = 51;
    float *W = make_weight(rows, cols, 6, 9), *H = make_hessian(cols, 6, 0.6);
    spqr_quant_params p;
    spqr_quant_params_default(&p);
    p.outlier_threshold = 0.05f;
    result r = quantize(W, rows, cols, H, &p, 2);
    CHECK(r.st == SPQR_OK && r.rep.n_outliers > 0);
    if (r.st == SPQR_OK) {
        const int32_t n = 3;
        float X[3 * 51], Y[3 * 29], y[29];
        test_rng rng = {77};
        for (int i = 0; i < n * cols; i++) X[i] = test_rng_normal(&rng);
        spqr_err err = {0};
        CHECK(spqr_matmul_ref(r.t, X, n, Y, &err) == SPQR_OK);
        for (int32_t i = 0; i < n; i++) {
            CHECK(spqr_matvec_ref(r.t, X + i * cols, y, &err) == SPQR_OK);
            CHECK(memcmp(y, Y + i * rows, sizeof y) == 0);
            for (int32_t o = 0; o < rows; o++) {
                double acc = 0, mag = 0;
                for (int32_t c = 0; c < cols; c++) {
                    acc += (double)r.What[o * cols + c] * X[i * cols + c];
                    mag += fabs((double)r.What[o * cols + c] * X[i * cols + c]);
                }
                /* double accumulation in another order, one fp32 rounding */
                CHECK_NEAR(Y[i * rows + o], acc, 1e-6 * mag + 1e-30);
            }
        }
    }
    result_free(&r);
    free(W);
    free(H);
}

/* Leave-one-out against its literal O(gc^2) definition, on values from a
 * coarse grid so that minima and maxima are often tied (the engine refits
 * only at unique extremes). */
static void test_loo_definition(void) {
    test_rng rng = {4242};
    const int32_t gcs[] = {1, 2, 3, 5, 16, 33};
    double x[33], dg[33], xmod[33], scratch[4 * 34], xb[33];
    int mismatches = 0, cases = 0, replaced = 0;
    for (int sym = 0; sym <= 1; sym++)
        for (size_t gi = 0; gi < sizeof gcs / sizeof gcs[0]; gi++)
            for (int trial = 0; trial < 300; trial++) {
                const int32_t gc = gcs[gi];
                spqr_fit_cfg cfg;
                memset(&cfg, 0, sizeof cfg);
                cfg.wbits = 2 + trial % 3;
                cfg.maxq = (1 << cfg.wbits) - 1;
                cfg.sym = sym;
                cfg.loo = 1;
                for (int32_t c = 0; c < gc; c++) {
                    x[c] = (trial % 4 == 0) ? 0.3 : 0.25 * (double)((int)(test_rng_next(&rng) % 9) - 4);
                    if (trial % 5 == 1) x[c] += 0.01 * test_rng_normal(&rng);
                    dg[c] = 0.5 + test_rng_uniform(&rng);
                }
                if (trial % 7 == 3) x[test_rng_next(&rng) % (unsigned)gc] = 3.0; /* a planted outlier */
                cfg.tau = 0.02 + 0.5 * test_rng_uniform(&rng);
                /* brute force */
                double lo = x[0], hi = x[0];
                for (int32_t c = 1; c < gc; c++) lo = fmin(lo, x[c]), hi = fmax(hi, x[c]);
                double s, z, base = 0;
                spqr_minmax_fit(lo, hi, cfg.maxq, sym, 0, &s, &z);
                for (int32_t c = 0; c < gc; c++) {
                    double e = (spqr_qdq(x[c], s, z, cfg.maxq) - x[c]) / dg[c];
                    base += e * e;
                }
                int likely[33], n_keep = 0;
                double keep = 0;
                for (int32_t k = 0; k < gc; k++) {
                    double loo = 0;
                    if (gc > 1) {
                        double l2 = INFINITY, h2 = -INFINITY, sk, zk;
                        for (int32_t c = 0; c < gc; c++)
                            if (c != k) l2 = fmin(l2, x[c]), h2 = fmax(h2, x[c]);
                        spqr_minmax_fit(l2, h2, cfg.maxq, sym, 0, &sk, &zk);
                        for (int32_t c = 0; c < gc; c++) {
                            if (c == k) continue;
                            double e = (spqr_qdq(x[c], sk, zk, cfg.maxq) - x[c]) / dg[c];
                            loo += e * e;
                        }
                    }
                    likely[k] = base - loo > cfg.tau;
                    if (!likely[k]) keep += x[k], n_keep++;
                }
                for (int32_t k = 0; k < gc; k++) xb[k] = likely[k] ? keep / (n_keep ? n_keep : 1) : x[k];
                int32_t nr = spqr_loo_replace(&cfg, x, dg, gc, scratch, xmod);
                int32_t nb = 0;
                for (int32_t k = 0; k < gc; k++) nb += likely[k];
                mismatches += nr != nb || memcmp(xmod, xb, sizeof(double) * (size_t)gc) != 0;
                replaced += nb;
                cases++;
            }
    CHECK_MSG(mismatches == 0, "%d of %d leave-one-out cases differ from the definition", mismatches, cases);
    CHECK(replaced > 100); /* the comparison exercised replacements */
}

static void test_bad_input(void) {
    const int32_t rows = 8, cols = 16;
    float *W = make_weight(rows, cols, 7, 0), *H = make_hessian(cols, 7, 0.2);
    spqr_quant_params p;
    spqr_err err = {0};
    spqr_tensor *t = (spqr_tensor *)&err; /* must come back NULL on failure */
#define EXPECT(mutate, status)                                                                          \
    do {                                                                                                \
        spqr_quant_params_default(&p);                                                                  \
        mutate;                                                                                         \
        t = (spqr_tensor *)&err;                                                                        \
        spqr_status s_ = spqr_quantize_layer(W, rows, cols, H, &p, 1, NULL, &t, NULL, NULL, NULL, &err); \
        CHECK_MSG(s_ == (status) && (s_ == SPQR_OK) == (t != NULL), "%s: got %d (%s)", #mutate, (int)s_, err.msg); \
        CHECK(s_ == SPQR_OK || strlen(err.msg) > 0);                                                   \
    } while (0)
    EXPECT(p.wbits = 0, SPQR_ERR_INVALID_ARG);
    EXPECT(p.wbits = 9, SPQR_ERR_INVALID_ARG);
    EXPECT(p.groupsize = -1, SPQR_ERR_INVALID_ARG);
    EXPECT(p.qq_scale_bits = 9, SPQR_ERR_INVALID_ARG);
    EXPECT(p.qq_zero_bits = -1, SPQR_ERR_INVALID_ARG);
    EXPECT(p.qq_groupsize = 0, SPQR_ERR_INVALID_ARG);
    EXPECT(p.blocksize = 0, SPQR_ERR_INVALID_ARG);
    EXPECT(p.percdamp = -1.0f, SPQR_ERR_INVALID_ARG);
    EXPECT(p.percdamp = NAN, SPQR_ERR_INVALID_ARG);
    EXPECT(p.outlier_threshold = NAN, SPQR_ERR_INVALID_ARG);
    EXPECT(p.sym = 2, SPQR_ERR_INVALID_ARG);
    EXPECT(p.perm = (spqr_perm_mode)5, SPQR_ERR_INVALID_ARG);
    EXPECT((void)0, SPQR_OK);
    spqr_tensor_free(t);
    W[5] = NAN;
    EXPECT((void)0, SPQR_ERR_NUMERIC);
    W[5] = 0.1f;
    H[3 * cols + 7] = INFINITY;
    EXPECT((void)0, SPQR_ERR_NUMERIC);
    /* not positive definite after damping: -I + 1 * mean|diag| * I = 0 */
    memset(H, 0, sizeof(float) * cols * cols);
    for (int32_t i = 0; i < cols; i++) H[i * cols + i] = -1.0f;
    EXPECT((void)0, SPQR_ERR_NUMERIC);
    /* indefinite, no damping */
    for (int32_t i = 0; i < cols; i++) H[i * cols + i] = 1.0f;
    H[1] = H[cols] = 2.0f;
    EXPECT(p.percdamp = 0.0f, SPQR_ERR_NUMERIC);
#undef EXPECT
    CHECK(spqr_quantize_layer(NULL, rows, cols, H, &p, 1, NULL, NULL, NULL, NULL, NULL, &err) == SPQR_ERR_INVALID_ARG);
    CHECK(spqr_quantize_layer(W, 0, cols, H, &p, 1, NULL, NULL, NULL, NULL, NULL, &err) == SPQR_ERR_INVALID_ARG);
    /* uint16 outlier columns: cols > 65535 with outliers is refused before any data is read */
    spqr_quant_params_default(&p);
    float one = 1.0f;
    CHECK(spqr_quantize_layer(&one, 1, 65536, &one, &p, 1, NULL, NULL, NULL, NULL, NULL, &err) == SPQR_ERR_UNSUPPORTED);
    free(W);
    free(H);
}

/* Every numeric knob has one range (issue 11): its bounds pass, one step past
 * them, NaN and the values that overflowed (qq_groupsize 2^31-1) fail with a
 * message naming the field, its flag and the range. */
static void test_knob_ranges(void) {
    typedef struct {
        const char *field, *flag, *range;
        size_t off;
        int is_float;
        double lo, hi;
    } knob_case;
#define K(f, flag, range, is_float, lo, hi) {#f, flag, range, offsetof(spqr_quant_params, f), is_float, lo, hi}
    static const knob_case cases[] = {
        K(wbits, "--wbits", "[2, 8]", 0, 2, 8),
        K(groupsize, "--groupsize", "[0, 65536]", 0, 0, 65536),
        K(qq_scale_bits, "--qq-scale-bits", "[0, 8]", 0, 0, 8),
        K(qq_zero_bits, "--qq-zero-bits", "[0, 8]", 0, 0, 8),
        K(qq_groupsize, "--qq-groupsize", "[1, 65536]", 0, 1, 65536),
        K(outlier_threshold, "--outlier-threshold", "[0, 1e+06]", 1, 0, 1e6),
        K(percdamp, "--percdamp", "[0, 1e+06]", 1, 0, 1e6),
        K(blocksize, "--blocksize", "[1, 65536]", 0, 1, 65536),
    };
#undef K
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const knob_case *c = &cases[k];
        const double good[] = {c->lo, c->hi};
        const double bad[] = {c->lo - 1, c->hi + 1, c->is_float ? 1e30 : (double)INT32_MAX,
                              c->is_float ? NAN : (double)INT32_MIN, -INFINITY};
        for (int pass = 0; pass < 2; pass++) {
            const double *vals = pass ? bad : good;
            const int n = pass ? (c->is_float ? 5 : 4) : 2;
            for (int i = 0; i < n; i++) {
                spqr_quant_params p;
                spqr_quant_params_default(&p);
                char *at = (char *)&p + c->off;
                if (c->is_float) {
                    const float f = (float)vals[i];
                    memcpy(at, &f, sizeof f);
                } else {
                    const int32_t v = (int32_t)vals[i];
                    memcpy(at, &v, sizeof v);
                }
                spqr_err err = {0};
                const spqr_status st = spqr_quant_params_validate(&p, &err);
                if (!pass) {
                    CHECK_MSG(st == SPQR_OK, "%s = %g (a bound) rejected: %s", c->field, vals[i], err.msg);
                    continue;
                }
                CHECK_MSG(st == SPQR_ERR_INVALID_ARG, "%s = %g accepted", c->field, vals[i]);
                CHECK_MSG(strstr(err.msg, c->field) && strstr(err.msg, c->flag) && strstr(err.msg, c->range),
                          "%s = %g: message '%s' lacks the field, flag or range %s", c->field, vals[i], err.msg,
                          c->range);
            }
        }
    }
    /* +inf is the library's "no outliers", as is 0 (tested above as the lower bound) */
    spqr_quant_params p;
    spqr_quant_params_default(&p);
    p.outlier_threshold = INFINITY;
    spqr_err err = {0};
    CHECK(spqr_quant_params_validate(&p, &err) == SPQR_OK);
    p.percdamp = INFINITY;
    CHECK(spqr_quant_params_validate(&p, &err) == SPQR_ERR_INVALID_ARG && strstr(err.msg, "--percdamp"));
}

/* The largest groups are the same as the whole row / all rows (what the
 * engine clamps them to), and the arguments that used to overflow int or ask
 * OpenMP for 2^31 threads are refused before any data is read. */
static void test_knob_limits(void) {
    const int32_t rows = 24, cols = 40;
    float *W = make_weight(rows, cols, 11, 6), *H = make_hessian(cols, 11, 0.5);
    spqr_quant_params p, q;
    spqr_quant_params_default(&p);
    p.groupsize = 0;
    p.qq_groupsize = rows;
    p.blocksize = cols;
    q = p;
    q.groupsize = 65536;
    q.qq_groupsize = 65536;
    q.blocksize = 65536;
    result a = quantize(W, rows, cols, H, &p, 2), b = quantize(W, rows, cols, H, &q, 2);
    CHECK(a.st == SPQR_OK && b.st == SPQR_OK);
    if (a.st == SPQR_OK && b.st == SPQR_OK) {
        CHECK(memcmp(a.What, b.What, sizeof(float) * (size_t)rows * cols) == 0);
        CHECK(memcmp(a.mask, b.mask, (size_t)rows * cols) == 0);
        CHECK(a.rep.rel_hessian_error > 0 && a.rep.rel_hessian_error == b.rep.rel_hessian_error);
    }
    result_free(&a);
    result_free(&b);

    spqr_err err = {0};
    spqr_tensor *t = (spqr_tensor *)&err; /* must come back NULL */
    spqr_quant_params_default(&p);
    p.qq_groupsize = INT32_MAX; /* issue 11: 24 + 2147483647 overflowed in the second level */
    CHECK(spqr_quantize_layer(W, rows, cols, H, &p, 2, NULL, &t, NULL, NULL, NULL, &err) == SPQR_ERR_INVALID_ARG);
    CHECK(t == NULL && strstr(err.msg, "--qq-groupsize") && strstr(err.msg, "[1, 65536]"));
    spqr_quant_params_default(&p);
    CHECK(spqr_quantize_layer(W, rows, cols, H, &p, INT32_MAX, NULL, &t, NULL, NULL, NULL, &err) ==
          SPQR_ERR_INVALID_ARG);
    CHECK(t == NULL && strstr(err.msg, "n_threads"));
    /* a shape whose cols x cols doubles overflow size_t: refused from its numbers alone */
    p.outlier_threshold = INFINITY;
    float one = 1.0f;
    CHECK(spqr_quantize_layer(&one, INT32_MAX, INT32_MAX, &one, &p, 1, NULL, &t, NULL, NULL, NULL, &err) ==
          SPQR_ERR_INVALID_ARG);
    CHECK(t == NULL && strstr(err.msg, "too large"));
    free(W);
    free(H);
}

/* An outlier beyond fp16's range is refused with a line naming its row,
 * whether the row is quantized in a group of 4 rows or alone (the last
 * rows of a slice). tau is tiny, so the planted 1e6 is an outlier (at the
 * default tau the bilevel fit absorbs it: its column's variance sets tau). */
static void test_fp16_outlier_range(void) {
    const int32_t rows = 10, cols = 64;
    float *H = make_hessian(cols, 5, 0.5);
    const int32_t bad_rows[] = {2, 9};
    for (size_t k = 0; k < sizeof bad_rows / sizeof bad_rows[0]; k++) {
        float *W = make_weight(rows, cols, 6, 0);
        W[(size_t)bad_rows[k] * cols + 7] = 1e6f;
        spqr_quant_params p;
        spqr_quant_params_default(&p);
        p.outlier_threshold = 1e-6f;
        result r = quantize(W, rows, cols, H, &p, 1);
        char want[64];
        snprintf(want, sizeof want, "row %d ", (int)bad_rows[k]);
        CHECK_MSG(r.st == SPQR_ERR_NUMERIC && strstr(r.err.msg, want) && strstr(r.err.msg, "fp16"),
                  "fp16 outlier in row %d: status %d, '%s'", (int)bad_rows[k], (int)r.st, r.err.msg);
        result_free(&r);
        free(W);
    }
    free(H);
}

/* One permutation and Cholesky factor shared by the settings of the same
 * permutation mode and damping (--target-bits' measurement) gives each
 * setting's outputs bit for bit, with and without a report; a preparation
 * for other settings is refused, and an equal one is not recomputed. */
static void test_prepared_hessian(void) {
    const int32_t rows = 48, cols = 96;
    float *W = make_weight(rows, cols, 21, 10), *H = make_hessian(cols, 21, 1.0);
    for (int32_t j = 0; j < cols; j++) H[(size_t)j * cols + 5] = H[(size_t)5 * cols + j] = 0; /* a dead input */
    const size_t n = (size_t)rows * cols;
    float *Wp = malloc(n * sizeof(float));
    uint8_t *mp = malloc(n);
    quant_hprep hp;
    memset(&hp, 0, sizeof hp);
    const int wb[4] = {2, 3, 4, 3}, gs[4] = {16, 128, 32, 16};
    for (int mode = 0; mode < 2; mode++)
        for (int i = 0; i < 4; i++) {
            spqr_quant_params p;
            spqr_quant_params_default(&p);
            p.perm = mode ? SPQR_PERM_ACT_ORDER : SPQR_PERM_IDENTITY;
            p.percdamp = mode ? 1.0f : 0.01f;
            p.wbits = wb[i], p.groupsize = gs[i];
            p.outlier_threshold = i == 3 ? 0.2f : INFINITY;
            result ref = quantize(W, rows, cols, H, &p, 2);
            spqr_err err;
            const float *R0 = hp.R;
            CHECK(spqri_hprep_fill(&hp, H, cols, &p, 2, &err) == SPQR_OK);
            if (i > 0) CHECK_MSG(hp.R == R0, "an equal preparation was recomputed");
            for (int with_report = 0; with_report < 2 && ref.st == SPQR_OK; with_report++) {
                spqr_tensor *t = NULL;
                spqr_quant_report rep;
                memset(&rep, 0, sizeof rep);
                CHECK(spqri_quantize_layer_prepared(W, rows, cols, H, &p, 2, &hp, NULL, &t, Wp, mp,
                                                    with_report ? &rep : NULL, &err) == SPQR_OK);
                CHECK_MSG(!memcmp(Wp, ref.What, n * sizeof(float)) && !memcmp(mp, ref.mask, n),
                          "mode %d setting %d report %d: prepared output differs", mode, i, with_report);
                CHECK(t && t->nnz == ref.t->nnz);
                if (with_report)
                    CHECK(rep.rel_hessian_error == ref.rep.rel_hessian_error && rep.n_outliers == ref.rep.n_outliers);
                spqr_tensor_free(t);
            }
            CHECK(hp.n_dead == 1);
            result_free(&ref);
            /* the other mode's parameters with this preparation: refused */
            spqr_quant_params o = p;
            o.perm = mode ? SPQR_PERM_IDENTITY : SPQR_PERM_ACT_ORDER;
            spqr_tensor *t = NULL;
            CHECK(spqri_quantize_layer_prepared(W, rows, cols, H, &o, 2, &hp, NULL, &t, Wp, NULL, NULL, &err) ==
                  SPQR_ERR_INVALID_ARG && !t);
        }
    spqri_hprep_free(&hp);
    free(W), free(H), free(Wp), free(mp);
}

static void log_capture(void *user, spqr_log_level level, const char *msg) {
    (void)level;
    if (strstr(msg, "Cholesky in double")) *(int *)user = 1;
}

/* A positive definite H (smallest eigenvalue ~1e-7 of the largest) whose
 * fp32 Cholesky fails (spotrf info 3, found by search against OpenBLAS's
 * spotrf and dpotrf): without damping the engine must fall back to double,
 * say so in its debug log and give a result whose reported error matches
 * the naive one. */
static void test_cholesky_double_fallback(void) {
    const int32_t rows = 8, cols = 3;
    const float H[9] = {0.670728207f, 0.224173039f, 0.413035512f,  0.224173039f, 0.847379744f,
                        -0.281200588f, 0.413035512f, -0.281200588f, 0.481892109f};
    float *W = make_weight(rows, cols, 11, 0);
    spqr_quant_params p;
    spqr_quant_params_default(&p);
    p.percdamp = 0.0f;
    p.perm = SPQR_PERM_IDENTITY;
    p.outlier_threshold = INFINITY;
    p.groupsize = 0;
    int fell_back = 0;
    spqr_logger lg = {log_capture, &fell_back, SPQR_LOG_DEBUG};
    float What[24];
    spqr_quant_report rep;
    spqr_err err = {0};
    spqr_tensor *t = NULL;
    const spqr_status st = spqr_quantize_layer(W, rows, cols, H, &p, 1, &lg, &t, What, NULL, &rep, &err);
    CHECK_MSG(st == SPQR_OK, "fallback: %s", err.msg);
    CHECK(fell_back);
    if (st == SPQR_OK) {
        CHECK(max_abs(What, (size_t)rows * cols) < 1.0);
        const double naive = rel_error(W, What, H, rows, cols);
        CHECK_MSG(fabs(rep.rel_hessian_error - naive) <= 1e-3 * naive + 1e-9, "rel error %.9g vs naive %.9g",
                  rep.rel_hessian_error, naive);
    }
    spqr_tensor_free(t);
    free(W);
}

int main(void) {
    test_prepared_hessian();
    test_fp16_outlier_range();
    test_blocksize_and_threads();
    test_rtn();
    test_errors_ordering();
    test_act_order_permutation();
    test_dead_columns();
    test_cholesky_double_fallback();
    test_kernels();
    test_loo_definition();
    test_bad_input();
    test_knob_ranges();
    test_knob_limits();
    TEST_SUMMARY();
}
