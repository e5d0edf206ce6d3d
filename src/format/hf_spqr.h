/* The tensors of transformers' SpQR format (quant_method "spqr", the
 * authors' spqr_quant QuantizedLinear), docs/format.md "The Hugging Face
 * SpQR layout". One configuration only: 3-bit weights, 16x16 tiles
 * (beta1 = beta2 = 16), 3-bit first-level statistics with fp16 second-level
 * pairs per tile, fp16 outliers in CSR, a column permutation. */
#ifndef SPQR_FORMAT_HF_SPQR_H
#define SPQR_FORMAT_HF_SPQR_H

#include <stdint.h>

#include "spqr.h"

#define HF_SPQR_BITS 3
#define HF_SPQR_BETA 16
#define HF_SPQR_FRAG_SHIFT 54 /* 3 * (16 + 2): after the two statistics and sixteen codes */

/* The one supported configuration, in one line for refusals. */
#define HF_SPQR_SUPPORTED "hf-spqr holds only 3-bit weights with beta1 = beta2 = 16 and 3-bit statistics (--recipe paper-w3), rows and columns multiples of 16, at most 32768 columns"

/* NULL when t is in the supported configuration, else a short reason. */
const char *spqri_hf_spqr_unsupported(const spqr_tensor *t);

/* Element counts of the four tensors of a [rows, cols] linear with nnz outliers. */
static inline int64_t hf_spqr_dense_words(int32_t rows, int32_t cols) {
    return (int64_t)(rows / HF_SPQR_BETA) * (cols / HF_SPQR_BETA) * HF_SPQR_BETA;
}

/* The format's decode of one dense weight, in half precision as its
 * kernel computes it: s = ss*(sq - sz), z = zs*(zq - zz), w = s*(q - z),
 * every operation rounded to fp16. Returns w as float. */
float spqri_hf_spqr_decode_weight(uint16_t ss, uint16_t sz, uint16_t zs, uint16_t zz, uint32_t sq, uint32_t zq, uint32_t q);

/* Encodes t (supported configuration) into caller-allocated arrays:
 * dense_weights [hf_spqr_dense_words], row_offsets [rows + 1],
 * col_vals [t->nnz], in_perm [cols / 2]. Codes at outlier positions are
 * ours to choose (our format ignores them): each gets the code whose
 * decoded weight w leaves an fp16-exact rest o - w (the nearest such; the
 * nearest code when none does), and the stored value is that rest, which
 * the format adds: the format then holds our outlier exactly. */
spqr_status spqri_hf_spqr_encode(const spqr_tensor *t, int64_t *dense_weights, int32_t *row_offsets, int32_t *col_vals,
                           int32_t *in_perm, spqr_err *err);

/* The format's decode of a whole tensor into W [rows][cols] in ORIGINAL
 * column order: the dense weight by spqri_hf_spqr_decode_weight, plus the fp16
 * outlier value in fp32 (the kernel's sum); CSR only. Validates every
 * array first (sizes, offsets monotone and within col_vals, columns and
 * permutation in range, the second-level bytes of a row pair equal). */
spqr_status spqri_hf_spqr_decode(int32_t rows, int32_t cols, const int64_t *dense_weights, int64_t n_dense,
                           const int32_t *row_offsets, int64_t n_offsets, const int32_t *col_vals, int64_t n_colvals,
                           const int32_t *in_perm, int64_t n_perm, float *W, spqr_err *err);

/* Import: the same arrays (validated as by spqri_hf_spqr_decode) as our packed
 * tensor: codes, statistic codes, second-level pairs and permutation
 * unchanged; each outlier becomes the format's weight there, the decoded
 * dense weight plus the stored value, rounded to fp16 (our outliers replace
 * the weight). A column repeated within a row is refused. Its
 * dequantization differs from spqri_hf_spqr_decode only by the fp32-vs-fp16
 * evaluation of s, z and w at the non-outlier positions. */
spqr_status spqri_hf_spqr_to_tensor(int32_t rows, int32_t cols, const int64_t *dense_weights, int64_t n_dense,
                              const int32_t *row_offsets, int64_t n_offsets, const int32_t *col_vals, int64_t n_colvals,
                              const int32_t *in_perm, int64_t n_perm, spqr_tensor **out, spqr_err *err);

#endif
