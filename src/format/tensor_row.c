/* One row of a packed tensor in fp32, original column order: the embedding
 * lookup of a quantized token table. Same expressions as the reference
 * dequantization (format/tensor.h), so a looked-up row equals that row of
 * spqr_tensor_dequantize bit for bit. */
#include "format/tensor.h"

void spqr_tensor_row(const spqr_tensor *t, int32_t r, float *dst) {
    const uint64_t base = (uint64_t)r * (uint64_t)t->cols;
    for (int32_t g = 0; g < t->n_groups; g++) {
        const float s = spqr_tensor_scale(t, g, r), z = spqr_tensor_zero(t, g, r);
        const int32_t j0 = g * t->groupsize;
        const int32_t j1 = j0 + t->groupsize < t->cols ? j0 + t->groupsize : t->cols;
        if (t->perm) {
            for (int32_t j = j0; j < j1; j++)
                dst[t->perm[j]] = spqr_weight_dq(s, spqr_bits_get(t->codes, base + (uint64_t)j, t->wbits), z);
        } else {
            for (int32_t j = j0; j < j1; j++)
                dst[j] = spqr_weight_dq(s, spqr_bits_get(t->codes, base + (uint64_t)j, t->wbits), z);
        }
    }
    for (int32_t k = t->outlier_rowptr[r]; k < t->outlier_rowptr[r + 1]; k++) {
        const int32_t j = t->outlier_col[k];
        dst[t->perm ? t->perm[j] : j] = spqr_fp16_to_fp32(t->outlier_val[k]);
    }
}
