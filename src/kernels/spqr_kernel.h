/* Runtime layout of the fast SpQR kernels (built from a spqr_tensor at load
 * time) and the per-path row-tile workers. See docs/kernels.md.
 *
 * Tiling: rows in row tiles of 16 (a SIMD register of fp32 lanes = one
 * second-level group when qq_groupsize = 16); the permuted columns of each
 * first-level group g are cut into ct_per_group column tiles of 16 (the last
 * one zero-padded), so padded column pc = g * 16 * ct_per_group + k.
 *
 * Codes, per (row tile, column tile), 32 * wbits bytes, tile-contiguous and
 * in streaming order (row tile major): bit planes, uint16 m[c][p] for
 * column c = 0..15 and bit p = 0..wbits-1, bit i of m[c][p] = bit p of the
 * code of row i. A plane word is directly an AVX-512 lane mask, so
 * sum_c q[i][c] x[c] = sum_p 2^p sum_{c: bit set} x[c] needs no unpacking.
 *
 * Statistics, per (row tile, group), stat_bytes each: the scale part then
 * the zero part; a bilevel part holds the 16 rows' qq-bit codes (LSB-first,
 * 2 * qq_bits bytes), a 16-bit part the 16 rows' fp16 values (32 bytes).
 * Second-level pairs (s2h, z2h) are kept as [qgroup][group] so a row tile
 * walks them contiguously. Exactly the stored bits: nothing is pre-decoded.
 *
 * Outliers, per row tile, sorted by (permuted column, row): column (uint16),
 * fp16 value, row within the tile (uint8); 5 bytes each. The dense part
 * counts s * (q - z) at an outlier position too; the kernel adds
 * (value - s * (q - z)) * x afterwards, so outputs equal the reference's
 * weights up to rounding. */
#ifndef SPQR_KERNELS_SPQR_KERNEL_H
#define SPQR_KERNELS_SPQR_KERNEL_H

#include <stdint.h>

#include "spqr.h"

#define KT_R 16 /* rows per row tile */
#define KT_C 16 /* columns per column tile */

struct spqr_ktensor {
    int32_t rows, cols, wbits, groupsize, n_groups;
    int32_t qs_bits, qz_bits, qq_groupsize, n_qgroups; /* qq bits 0 = fp16 statistic */
    int32_t n_rtiles, ct_per_group, n_ctiles, padcols;
    int32_t tile_u16;        /* 16 * wbits: uint16 words per code tile */
    int32_t sb_bytes, zb_bytes, stat_bytes; /* per (row tile, group) */
    int32_t q2_aligned;      /* qq_groupsize % 16 == 0: one second-level pair per row tile */
    uint16_t *codes;         /* [n_rtiles][n_ctiles][16][wbits], 64-byte aligned */
    uint8_t *stats;          /* [n_rtiles][n_groups][stat_bytes] + 16 bytes slack */
    uint16_t *s_pair;        /* [n_qgroups][n_groups][2] or NULL */
    uint16_t *z_pair;        /* [n_qgroups][n_groups][2] or NULL */
    int32_t *perm;           /* [cols] or NULL (identity) */
    int32_t *o_ptr;          /* [n_rtiles + 1] */
    uint16_t *o_col;         /* [nnz] permuted column */
    uint16_t *o_val;         /* [nnz] fp16 */
    uint8_t *o_row;          /* [nnz] row within the tile */
    int64_t nnz;
    spqr_kernel_path path;   /* resolved, never AUTO */
    uint64_t stream_bytes;   /* bytes a matvec reads from the weight arrays */
};

/* The code of (row r, permuted column c) from the plane layout. */
static inline uint32_t kt_code_at(const spqr_ktensor *kt, int32_t r, int32_t c) {
    const int32_t g = c / kt->groupsize, off = c - g * kt->groupsize;
    const int32_t ct = g * kt->ct_per_group + off / KT_C, cc = off % KT_C, rt = r / KT_R, i = r % KT_R;
    const uint16_t *m = kt->codes + ((size_t)rt * (size_t)kt->n_ctiles + (size_t)ct) * (size_t)kt->tile_u16 +
                        (size_t)cc * (size_t)kt->wbits;
    uint32_t q = 0;
    for (int p = 0; p < kt->wbits; p++) q |= (uint32_t)((m[p] >> i) & 1u) << p;
    return q;
}

/* The fp32 statistics of the 16 rows of row tile rt in group g, computed
 * exactly as the reference does (format/tensor.h). Padded rows get 0. */
void kt_stats_scalar(const spqr_ktensor *kt, int32_t rt, int32_t g, float s[KT_R], float z[KT_R]);

/* Inputs prepared once per call by the wrapper (spqr_kernel.c):
 *   xp  [n][padcols]  permuted, zero-padded input
 *   xs  [n][n_groups] fp32 sum of each group's inputs
 *   xq  [n][cols]     permuted input (outlier corrections)
 * A worker computes row tiles [rt0, rt1) and writes Y[n][rows] there only. */
typedef struct kt_input {
    const float *xp, *xs, *xq;
    int32_t n;
} kt_input;

typedef void (*kt_worker)(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y);

void kt_matmul_scalar(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y);
void kt_matvec_avx2(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y);
void kt_matmul_avx2(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y);
void kt_matvec_avx512(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y);
void kt_matmul_avx512(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y);

/* 1 when the CPU (and OS) can run the path. */
int kt_path_supported(spqr_kernel_path p);

#endif
