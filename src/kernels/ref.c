/* Reference kernels over the packed SpQR tensor: scalar and plain, the
 * yardstick for the SIMD kernels.
 *
 * Arithmetic contract (a faster kernel must match it to be bit-identical on
 * weights, and should match the accumulation to be comparable on outputs):
 *  - statistics: s = fp16(s2) * ((float)code - fp16(z2)) in fp32 when
 *    bilevel, else the fp16 value; likewise z (format/tensor.h);
 *  - weight (permuted column j of row r, group g = j / groupsize):
 *    w = s * ((float)q - z) in fp32, no FMA; an outlier's fp16 value
 *    replaces it;
 *  - dequantize writes w to column perm[j] (original order);
 *  - matvec/matmul: y[r] = sum over permuted columns j = 0..cols-1, in that
 *    order, of (double)w * (double)x[perm[j]], accumulated in double and
 *    rounded to fp32 once at the end. */
#include "spqr.h"

#include "core/error.h"
#include "format/tensor.h"

#include <stdlib.h>

/* Dequantizes row r into wp[cols] (permuted order). */
static void dequant_row(const spqr_tensor *t, int32_t r, float *wp) {
    const uint64_t base = (uint64_t)r * (uint64_t)t->cols;
    for (int32_t g = 0; g < t->n_groups; g++) {
        const float s = spqr_tensor_scale(t, g, r), z = spqr_tensor_zero(t, g, r);
        const int32_t j0 = g * t->groupsize;
        const int32_t j1 = j0 + t->groupsize < t->cols ? j0 + t->groupsize : t->cols;
        for (int32_t j = j0; j < j1; j++)
            wp[j] = spqr_weight_dq(s, spqr_bits_get(t->codes, base + (uint64_t)j, t->wbits), z);
    }
    for (int32_t k = t->outlier_rowptr[r]; k < t->outlier_rowptr[r + 1]; k++)
        wp[t->outlier_col[k]] = spqr_fp16_to_fp32(t->outlier_val[k]);
}

static int32_t col_of(const spqr_tensor *t, int32_t j) { return t->perm ? t->perm[j] : j; }

spqr_status spqr_tensor_dequantize(const spqr_tensor *t, float *W, spqr_err *err) {
    spqr_status st = spqr_tensor_check(t, err);
    if (st != SPQR_OK) return st;
    if (!W) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "output buffer is NULL");
    float *wp = malloc((size_t)t->cols * sizeof *wp);
    if (!wp) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory dequantizing");
    for (int32_t r = 0; r < t->rows; r++) {
        dequant_row(t, r, wp);
        float *out = W + (size_t)r * (size_t)t->cols;
        for (int32_t j = 0; j < t->cols; j++) out[col_of(t, j)] = wp[j];
    }
    free(wp);
    return SPQR_OK;
}

spqr_status spqr_matmul_ref(const spqr_tensor *t, const float *X, int32_t n, float *Y, spqr_err *err) {
    spqr_status st = spqr_tensor_check(t, err);
    if (st != SPQR_OK) return st;
    if (n < 0) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "negative batch size %d", n);
    if (n > 0 && (!X || !Y)) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "input or output buffer is NULL");
    const size_t cols = (size_t)t->cols, rows = (size_t)t->rows;
    float *wp = malloc(cols * sizeof *wp);
    double *xp = malloc(cols * (n > 0 ? (size_t)n : 1) * sizeof *xp);
    if (!wp || !xp) {
        free(wp);
        free(xp);
        return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory in matmul");
    }
    /* the input is permuted once, so the weights are walked in stored order */
    for (int32_t i = 0; i < n; i++)
        for (size_t j = 0; j < cols; j++) xp[(size_t)i * cols + j] = (double)X[(size_t)i * cols + (size_t)col_of(t, (int32_t)j)];
    for (int32_t r = 0; r < t->rows; r++) {
        dequant_row(t, r, wp);
        for (int32_t i = 0; i < n; i++) {
            const double *x = xp + (size_t)i * cols;
            double acc = 0.0;
            for (size_t j = 0; j < cols; j++) acc += (double)wp[j] * x[j];
            Y[(size_t)i * rows + (size_t)r] = (float)acc;
        }
    }
    free(wp);
    free(xp);
    return SPQR_OK;
}

spqr_status spqr_matvec_ref(const spqr_tensor *t, const float *x, float *y, spqr_err *err) {
    return spqr_matmul_ref(t, x, 1, y, err);
}
