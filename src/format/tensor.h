/* Internal helpers of the packed SpQR tensor (layout: include/spqr.h).
 *
 * The arithmetic that turns stored bits into weights lives here, as inline
 * functions shared by the quantization engine (src/quant) and the kernels
 * (src/kernels), so both evaluate the very same fp32 expressions and the
 * engine's W_hat equals spqr_tensor_dequantize bit for bit. The library is
 * compiled as ISO C11, where GCC does not contract a*b+c into FMA
 * (-ffp-contract=off), so these expressions round identically everywhere. */
#ifndef SPQR_FORMAT_TENSOR_H
#define SPQR_FORMAT_TENSOR_H

#include "spqr.h"
#include "format/bitpack.h"

/* A dequantized statistic from its second-level code and the fp16 pair
 * (scale s2h, zero z2h) of its beta2-row group, computed in fp32. */
static inline float spqr_stat_dq(uint16_t s2h, uint16_t z2h, uint32_t code) {
    return spqr_fp16_to_fp32(s2h) * ((float)code - spqr_fp16_to_fp32(z2h));
}

/* A dequantized weight from its code and the first-level stats, in fp32. */
static inline float spqr_weight_dq(float s, uint32_t q, float z) {
    return s * ((float)q - z);
}

/* First-level scale of (group g, row r). */
static inline float spqr_tensor_scale(const spqr_tensor *t, int32_t g, int32_t r) {
    uint64_t i = (uint64_t)g * (uint64_t)t->rows + (uint64_t)r;
    if (t->scale_codes) {
        const uint16_t *q2 = t->scale_q2 + 2 * ((size_t)g * (size_t)t->n_qgroups + (size_t)(r / t->qq_groupsize));
        return spqr_stat_dq(q2[0], q2[1], spqr_bits_get(t->scale_codes, i, t->qq_scale_bits));
    }
    return spqr_fp16_to_fp32(t->scale_f16[i]);
}

/* First-level zero of (group g, row r). */
static inline float spqr_tensor_zero(const spqr_tensor *t, int32_t g, int32_t r) {
    uint64_t i = (uint64_t)g * (uint64_t)t->rows + (uint64_t)r;
    if (t->zero_codes) {
        const uint16_t *q2 = t->zero_q2 + 2 * ((size_t)g * (size_t)t->n_qgroups + (size_t)(r / t->qq_groupsize));
        return spqr_stat_dq(q2[0], q2[1], spqr_bits_get(t->zero_codes, i, t->qq_zero_bits));
    }
    return spqr_fp16_to_fp32(t->zero_f16[i]);
}

/* dst[cols] = row r (0 <= r < rows) of the dequantized weights, original
 * column order; bit-identical to that row of spqr_tensor_dequantize. t must
 * have passed spqr_tensor_check (every tensor from a .spqr file has). */
void spqr_tensor_row(const spqr_tensor *t, int32_t r, float *dst);

/* Allocates an owning tensor with every array sized for the given layout
 * (codes and statistics zeroed, nnz outlier slots, perm if has_perm).
 * qq_*_bits = 0 selects fp16 storage for that statistic. */
spqr_status spqr_tensor_alloc(int32_t rows, int32_t cols, int32_t wbits, int32_t groupsize,
                              int32_t qq_scale_bits, int32_t qq_zero_bits, int32_t qq_groupsize,
                              int64_t nnz, int has_perm, spqr_tensor **out, spqr_err *err);

/* Full structural validation (shapes, array presence and sizes, CSR
 * monotonicity and column range, perm is a permutation), so kernels never
 * read out of bounds on a tensor that came from a hostile file. */
spqr_status spqr_tensor_check(const spqr_tensor *t, spqr_err *err);

/* A random packed tensor in the paper's layout (beta1 = beta2 = 16, 3-bit
 * statistics, a random act-order permutation): uniform codes and about
 * share * cols outliers per row at distinct increasing columns. Every
 * dequantized weight, outliers included, lies in [-amp, amp], so a model
 * built from such tensors with amp ~ 1/sqrt(cols) keeps its activations
 * finite. Deterministic in seed. For benchmarks and synthetic models. */
spqr_status spqr_tensor_random(int32_t rows, int32_t cols, int32_t wbits, double share, float amp, uint64_t seed,
                               spqr_tensor **out, spqr_err *err);

#endif
