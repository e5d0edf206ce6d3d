/* Packed SpQR tensor: bitstream layout, dequantize == engine W_hat bit for
 * bit, size accounting. */
#include "spqr.h"
#include "format/bitpack.h"
#include "format/tensor.h"
#include "test_util.h"

#include <stdint.h>

/* ---------------------------------------------------------------- data */

/* H = X^T X / n with X = Z A: correlated inputs with spread column scales. */
static float *make_hessian(int32_t cols, unsigned long long seed) {
    test_rng rng = {seed * 2654435761ull + 1};
    const int32_t n = 3 * cols;
    double *A = malloc(sizeof(double) * (size_t)cols * cols), *X = malloc(sizeof(double) * (size_t)n * cols);
    for (int32_t i = 0; i < cols; i++)
        for (int32_t j = 0; j < cols; j++) A[i * cols + j] = (i == j) + test_rng_normal(&rng) / sqrt((double)cols);
    for (int32_t k = 0; k < n; k++) {
        double z[512];
        for (int32_t i = 0; i < cols; i++) z[i] = test_rng_normal(&rng);
        for (int32_t j = 0; j < cols; j++) {
            double acc = 0;
            for (int32_t i = 0; i < cols; i++) acc += z[i] * A[i * cols + j];
            X[(size_t)k * cols + j] = acc * (0.5 + (double)(j % 7) / 4.0);
        }
    }
    float *H = test_gram(X, n, cols);
    free(A);
    free(X);
    return H;
}

static float *make_weight(int32_t rows, int32_t cols, unsigned long long seed, int planted) {
    test_rng rng = {seed * 7919ull + 3};
    float *W = malloc(sizeof(float) * (size_t)rows * cols);
    for (int32_t i = 0; i < rows * cols; i++) W[i] = 0.05f * test_rng_normal(&rng);
    for (int k = 0; k < planted; k++) W[test_rng_next(&rng) % (unsigned long long)(rows * cols)] = (k & 1) ? 0.6f : -0.7f;
    return W;
}

/* ---------------------------------------------------------------- bitstreams */

static void test_bitstreams(void) {
    test_rng rng = {12345};
    const uint64_t counts[] = {1, 2, 7, 8, 9, 13, 64, 1001};
    for (int bits = 1; bits <= 8; bits++) {
        for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
            const uint64_t n = counts[ci];
            uint8_t *v = malloc(n), *u = malloc(n);
            for (uint64_t i = 0; i < n; i++) v[i] = (uint8_t)(test_rng_next(&rng) & ((1u << bits) - 1));
            const size_t nb = spqr_bits_bytes(n, bits);
            CHECK(nb == (n * bits + 7) / 8);
            uint8_t *buf = malloc(nb + 1);
            buf[nb] = 0xA5; /* guard: pack must not write past the stream */
            spqr_bits_pack(v, n, bits, buf);
            CHECK(buf[nb] == 0xA5);
            /* independent definition: stream bit k = bit (k % bits) of value k / bits, LSB first */
            int layout_ok = 1;
            for (uint64_t k = 0; k < (uint64_t)nb * 8; k++) {
                int got = (buf[k / 8] >> (k % 8)) & 1;
                int want = k < n * bits ? (v[k / bits] >> (k % bits)) & 1 : 0; /* padding is zero */
                if (got != want) layout_ok = 0;
            }
            CHECK_MSG(layout_ok, "bits=%d n=%llu", bits, (unsigned long long)n);
            int get_ok = 1;
            for (uint64_t i = 0; i < n; i++) get_ok &= spqr_bits_get(buf, i, bits) == v[i];
            CHECK(get_ok);
            spqr_bits_unpack(buf, 0, n, bits, u);
            CHECK(memcmp(u, v, n) == 0);
            if (n > 3) {
                spqr_bits_unpack(buf, 3, n - 3, bits, u);
                CHECK(memcmp(u, v + 3, n - 3) == 0);
            }
            free(v);
            free(u);
            free(buf);
        }
    }
}

/* ---------------------------------------------------------------- engine vs tensor */

typedef struct { const char *name; spqr_quant_params p; } cfg;

static void check_roundtrip(const char *name, const spqr_quant_params *p, int32_t rows, int32_t cols,
                            unsigned long long seed) {
    float *W = make_weight(rows, cols, seed, rows * cols / 97 + 1);
    float *H = make_hessian(cols, seed);
    float *What = malloc(sizeof(float) * (size_t)rows * cols), *Wd = malloc(sizeof(float) * (size_t)rows * cols);
    uint8_t *mask = malloc((size_t)rows * cols);
    spqr_tensor *t = NULL;
    spqr_quant_report rep;
    spqr_err err = {0};
    spqr_status st = spqr_quantize_layer(W, rows, cols, H, p, 2, NULL, &t, What, mask, &rep, &err);
    CHECK_MSG(st == SPQR_OK, "%s: %s", name, err.msg);
    if (st == SPQR_OK) {
        st = spqr_tensor_dequantize(t, Wd, &err);
        CHECK_MSG(st == SPQR_OK, "%s: %s", name, err.msg);
        CHECK_MSG(memcmp(What, Wd, sizeof(float) * (size_t)rows * cols) == 0, "%s: dequantize != engine W_hat", name);
        /* the CSR outliers are exactly the engine's mask */
        int64_t nmask = 0;
        for (int32_t i = 0; i < rows * cols; i++) nmask += mask[i];
        CHECK_MSG(nmask == t->nnz && nmask == rep.n_outliers, "%s: mask %lld nnz %lld", name, (long long)nmask,
                  (long long)t->nnz);
        int csr_ok = 1;
        for (int32_t r = 0; r < rows; r++)
            for (int32_t k = t->outlier_rowptr[r]; k < t->outlier_rowptr[r + 1]; k++) {
                int32_t c = t->perm ? t->perm[t->outlier_col[k]] : t->outlier_col[k];
                csr_ok &= mask[r * cols + c] == 1;
                csr_ok &= spqr_fp16_to_fp32(t->outlier_val[k]) == What[r * cols + c];
            }
        CHECK_MSG(csr_ok, "%s: CSR outliers disagree with mask / W_hat", name);
        CHECK(t->rows == rows && t->cols == cols && t->wbits == p->wbits);
        CHECK((t->perm != NULL) == (p->perm == SPQR_PERM_ACT_ORDER));
        /* codes are in range and non-outlier weights decode from them */
        int codes_ok = 1;
        for (int64_t i = 0; i < (int64_t)rows * cols; i++)
            codes_ok &= spqr_bits_get(t->codes, (uint64_t)i, t->wbits) < (1u << t->wbits);
        CHECK(codes_ok);
        spqr_tensor_free(t);
    }
    free(W);
    free(H);
    free(What);
    free(Wd);
    free(mask);
}

static void test_dequant_bitexact(void) {
    spqr_quant_params base;
    spqr_quant_params_default(&base);
    cfg cfgs[32];
    int nc = 0;
    cfgs[nc++] = (cfg){"spqr default", base};
    spqr_quant_params p = base;
    p.qq_scale_bits = p.qq_zero_bits = 0;
    cfgs[nc++] = (cfg){"16-bit stats", p};
    p = base;
    p.outlier_threshold = INFINITY;
    cfgs[nc++] = (cfg){"no outliers", p};
    p = base;
    p.perm = SPQR_PERM_IDENTITY;
    cfgs[nc++] = (cfg){"identity", p};
    p = base;
    p.simplified_outliers = 1;
    p.outlier_threshold = 0.05f;
    cfgs[nc++] = (cfg){"simplified", p};
    p = base;
    p.sym = 1;
    cfgs[nc++] = (cfg){"sym", p};
    p = base;
    p.round_zero = 1;
    cfgs[nc++] = (cfg){"round_zero qq>=b", p};
    p.wbits = 4;
    cfgs[nc++] = (cfg){"round_zero qq<b", p};
    p = base;
    p.qq_zero_bits = 0;
    cfgs[nc++] = (cfg){"bilevel scales only", p};
    p = base;
    p.gptq = 0;
    cfgs[nc++] = (cfg){"rtn", p};
    p = base;
    p.groupsize = 0;
    cfgs[nc++] = (cfg){"per-row", p};
    for (int32_t wb = 2; wb <= 8; wb++) {
        p = base;
        p.wbits = wb;
        p.qq_scale_bits = p.qq_zero_bits = wb; /* every qq width 2..8 too */
        cfgs[nc++] = (cfg){"wbits sweep", p};
    }
    p = base;
    p.qq_scale_bits = p.qq_zero_bits = 1;
    cfgs[nc++] = (cfg){"qq 1 bit", p};
    p.qq_groupsize = 5;
    cfgs[nc++] = (cfg){"qq 1 bit, beta2 5", p};
    /* odd shapes: cols not a multiple of 16, rows not a multiple of qq_groupsize */
    for (int i = 0; i < nc; i++) {
        check_roundtrip(cfgs[i].name, &cfgs[i].p, 37, 45, 1 + (unsigned long long)i);
        check_roundtrip(cfgs[i].name, &cfgs[i].p, 19, 33, 100 + (unsigned long long)i);
    }
}

/* ---------------------------------------------------------------- size */

static void test_size(void) {
    spqr_quant_params p;
    spqr_quant_params_default(&p);
    p.outlier_threshold = INFINITY;
    const int32_t rows = 256, cols = 256;
    float *W = make_weight(rows, cols, 7, 0), *H = make_hessian(cols, 7);
    spqr_err err = {0};
    spqr_size_report sr;
    for (int wb = 3; wb <= 4; wb++) {
        p.wbits = wb;
        spqr_tensor *t = NULL;
        CHECK(spqr_quantize_layer(W, rows, cols, H, &p, 2, NULL, &t, NULL, NULL, NULL, &err) == SPQR_OK);
        if (!t) continue;
        spqr_tensor_size(t, &sr);
        /* the notes' examples: b + 6/16 + 64/256 */
        CHECK_NEAR(sr.formula_bits_per_param, wb == 3 ? 3.625 : 4.625, 1e-12);
        /* no outliers: one u8 count per row; the permutation in u16 (format version 2) */
        uint64_t bytes = (uint64_t)rows * cols * wb / 8 + 2 * (16 * 256 * 3 / 8) + 2 * (16 * 16 * 4) +
                         1 * rows + 2 * cols;
        CHECK_MSG(sr.stored_bytes == bytes, "stored %llu want %llu", (unsigned long long)sr.stored_bytes,
                  (unsigned long long)bytes);
        CHECK(sr.overhead_bits == 8ull * (1 * rows + 2 * cols));
        CHECK_NEAR(sr.stored_bits_per_param * rows * cols, sr.formula_bits_per_param * rows * cols + sr.overhead_bits, 1e-6);
        spqr_tensor_free(t);
    }
    free(W);
    free(H);

    /* exact accounting on odd shapes, outliers, fp16 statistics, identity perm */
    spqr_quant_params cs[4];
    for (int i = 0; i < 4; i++) spqr_quant_params_default(&cs[i]);
    cs[0].outlier_threshold = 0.02f;
    cs[1].qq_scale_bits = cs[1].qq_zero_bits = 0;
    cs[1].perm = SPQR_PERM_IDENTITY;
    cs[2].wbits = 5;
    cs[2].qq_scale_bits = 7;
    cs[2].qq_zero_bits = 0;
    cs[2].groupsize = 7;
    cs[3].sym = 1;
    cs[3].qq_groupsize = 6;
    const int32_t R = 37, C = 45;
    W = make_weight(R, C, 9, 20);
    H = make_hessian(C, 9);
    for (int i = 0; i < 4; i++) {
        spqr_tensor *t = NULL;
        CHECK(spqr_quantize_layer(W, R, C, H, &cs[i], 2, NULL, &t, NULL, NULL, NULL, &err) == SPQR_OK);
        if (!t) continue;
        spqr_tensor_size(t, &sr);
        const int32_t g = cs[i].groupsize, ng = (C + g - 1) / g;
        const int32_t qs = t->qq_scale_bits, qz = t->qq_zero_bits;
        const int32_t nqg = (qs || qz) ? (R + t->qq_groupsize - 1) / t->qq_groupsize : 0;
        /* formula bits, independently: payload of every term */
        uint64_t f = (uint64_t)R * C * cs[i].wbits + 32ull * (uint64_t)t->nnz;
        f += qs ? (uint64_t)ng * R * qs + 32ull * ng * nqg : 16ull * ng * R;
        f += qz ? (uint64_t)ng * R * qz + 32ull * ng * nqg : 16ull * ng * R;
        CHECK_NEAR(sr.formula_bits_per_param * R * C, (double)f, 1e-6);
        uint64_t pad = (uint64_t)t->codes_bytes * 8 - (uint64_t)R * C * cs[i].wbits;
        if (qs) pad += (uint64_t)t->scale_codes_bytes * 8 - (uint64_t)ng * R * qs;
        if (qz) pad += (uint64_t)t->zero_codes_bytes * 8 - (uint64_t)ng * R * qz;
        CHECK(pad < 24);
        int32_t most = 0; /* row counts fit a byte here: one per row */
        for (int32_t r = 0; r < R; r++)
            if (t->outlier_rowptr[r + 1] - t->outlier_rowptr[r] > most) most = t->outlier_rowptr[r + 1] - t->outlier_rowptr[r];
        CHECK(most <= 255);
        CHECK(sr.overhead_bits == 8ull * (1 * R + (t->perm ? 2 * C : 0)) + pad);
        CHECK(sr.stored_bytes * 8 == f + sr.overhead_bits);
        CHECK(sr.overhead_bytes == (sr.overhead_bits + 7) / 8);
        if (i == 0) CHECK(t->nnz > 0);
        spqr_tensor_free(t);
    }
    free(W);
    free(H);
}

/* ---------------------------------------------------------------- hostile tensors */

static void test_tensor_check(void) {
    spqr_quant_params p;
    spqr_quant_params_default(&p);
    p.outlier_threshold = 0.02f;
    float *W = make_weight(20, 40, 3, 10), *H = make_hessian(40, 3), out[800];
    spqr_tensor *t = NULL;
    spqr_err err = {0};
    CHECK(spqr_quantize_layer(W, 20, 40, H, &p, 1, NULL, &t, NULL, NULL, NULL, &err) == SPQR_OK);
    if (t && t->nnz > 0) {
        uint16_t c = t->outlier_col[0];
        t->outlier_col[0] = 40;
        CHECK(spqr_tensor_dequantize(t, out, &err) == SPQR_ERR_FORMAT);
        t->outlier_col[0] = c;
        int32_t p0 = t->perm[0];
        t->perm[0] = t->perm[1];
        CHECK(spqr_tensor_dequantize(t, out, &err) == SPQR_ERR_FORMAT);
        t->perm[0] = p0;
        t->outlier_rowptr[20] += 1;
        CHECK(spqr_matvec_ref(t, out, out, &err) == SPQR_ERR_FORMAT);
        t->outlier_rowptr[20] -= 1;
        t->codes_bytes -= 1;
        CHECK(spqr_tensor_dequantize(t, out, &err) == SPQR_ERR_FORMAT);
        t->codes_bytes += 1;
        CHECK(spqr_tensor_dequantize(t, out, &err) == SPQR_OK);
    } else {
        CHECK_MSG(0, "setup: expected outliers");
    }
    spqr_tensor_free(t);
    free(W);
    free(H);
}

int main(void) {
    test_bitstreams();
    test_dequant_bitexact();
    test_size();
    test_tensor_check();
    TEST_SUMMARY();
}
