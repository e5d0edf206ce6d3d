/* Runtime layout of the fast SpQR kernels (built from a spqr_tensor at load
 * time) and the per-path row-tile workers. See docs/kernels.md.
 *
 * Tiling: rows in row tiles of 16 (a SIMD register of fp32 lanes = one
 * second-level group when qq_groupsize = 16); the permuted columns of each
 * first-level group g are cut into ct_per_group column tiles of 16 (the last
 * one zero-padded), so padded column pc = g * 16 * ct_per_group + k.
 *
 * Codes: padded columns are taken 32 at a time (a code block = two column
 * tiles, possibly of two groups). Per (row tile, block): wbits vectors of 16
 * uint32 lanes, uint32 blk[d][i] (d = 0..wbits-1, lane i = row i of the
 * tile), 64 * wbits bytes = exactly the stored bits, tile-contiguous in
 * streaming order. Row i's wbits dwords form one 32*wbits-bit little-endian
 * string in which column j (0..31) of the block holds its code at bits
 * [j*wbits, (j+1)*wbits). A field inside one dword is taken with one AND of
 * the dword lanes (x pre-scaled by 2^-shift, see kt_xscale), a field at the
 * top of a dword with one shift, a field straddling two dwords (odd wbits)
 * with two shifts and a ternary-logic op; then int->fp32 and one FMA per 16
 * weights. The code at an outlier position is stored as 0 (the outlier's
 * value replaces it in every product and in dequantization, so the code is
 * dead there); the kernels then correct by (value - s * (0 - z)) * x.
 *
 * Byte-aligned w3 (kt->planar, built while the path's ops ask for it,
 * kernels.h planar3): the same 3 dwords per row and block hold a bit
 * permutation of that string in which 24 of the 32 codes sit in place in
 * bytes, so the 4 codes of 4 columns (a vpmaddubsw operand, column c of
 * the 4 in byte c of the row's dword) are one AND away. With the block's
 * column 16h + 4k + c: dword k / 2 (h = 0, k = 0..3) or dword 2 (h = 1,
 * k = 0, 1) byte c holds the code at bits [3 (k % 2), 3 (k % 2) + 3);
 * h = 1, k = 2 and 3 (8 codes) are split: low 2 bits at bits 6-7 of
 * byte c of dword 0 (k = 2) or dword 1 (k = 3), high bit at bit 6 (k = 2)
 * or 7 (k = 3) of byte c of dword 2. spqri_kt_set_planar converts between
 * the two in place.
 *
 * Statistics, per (row tile, group), stat_bytes each: the scale part then
 * the zero part; a bilevel part holds the 16 rows' qq-bit codes (LSB-first,
 * 2 * qq_bits bytes), a 16-bit part the 16 rows' fp16 values (32 bytes).
 * Second-level pairs (s2h, z2h) are kept as [qgroup][group] so a row tile
 * walks them contiguously. Exactly the stored bits: nothing is pre-decoded.
 *
 * Outliers, per row tile, sorted by (row, permuted column), with row
 * pointers: column (uint16), fp16 value, row within the tile (uint8). The SIMD paths
 * read, instead of the fp16 value, its product correction o_corr =
 * value - s * (0 - z) (fp32, the exact expression they used to evaluate per
 * call: s and z depend on the weights only); the one-token kernels read
 * column + correction (6 bytes) row by row into register accumulators. */
#ifndef SPQR_KERNELS_SPQR_KERNEL_H
#define SPQR_KERNELS_SPQR_KERNEL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "spqr.h"

#define KT_R 16  /* rows per row tile */
#define KT_C 16  /* columns per column tile */
#define KT_BC 32 /* columns per code block (two column tiles) */
#define KT_XOPS 4 /* int8 activation dwords per column tile: columns 4k..4k+3 in dword k */

struct spqr_ktensor {
    int32_t rows, cols, wbits, groupsize, n_groups;
    int32_t qs_bits, qz_bits, qq_groupsize, n_qgroups; /* qq bits 0 = fp16 statistic */
    int32_t n_rtiles, ct_per_group, n_ctiles, padcols;
    int32_t n_cblocks;       /* ceil(n_ctiles / 2) code blocks per row tile */
    int32_t blk_u32;         /* 16 * wbits: uint32 words per code block */
    int32_t sb_bytes, zb_bytes, stat_bytes; /* per (row tile, group) */
    int32_t q2_aligned;      /* qq_groupsize % 16 == 0: one second-level pair per row tile */
    uint32_t *codes;         /* [n_rtiles][n_cblocks][wbits][16], 64-byte aligned */
    uint8_t *stats;          /* [n_rtiles][n_groups][stat_bytes] + 16 bytes slack */
    uint16_t *s_pair;        /* [n_qgroups][n_groups][2] or NULL */
    uint16_t *z_pair;        /* [n_qgroups][n_groups][2] or NULL */
    int32_t *perm;           /* [cols] or NULL (identity) */
    int32_t *o_ptr;          /* [n_rtiles + 1] */
    uint16_t *o_col;         /* [nnz] permuted column */
    uint16_t *o_val;         /* [nnz] fp16 (dequantize, scalar path) */
    float *o_corr;           /* [nnz] fp32 value - s * (0 - z): the product correction (SIMD paths) */
    uint8_t *o_row;          /* [nnz] row within the tile */
    int32_t *o_rptr;         /* [n_rtiles * 16 + 1] row r's outliers are [o_rptr[r], o_rptr[r + 1]) */
    int64_t nnz;
    /* byte-shuffle tables that move the 16 rows' qq-bit codes into dword
     * lanes (SIMD statistic decode), for the scale [0] and zero [1] part */
    uint8_t st_idx[2][64];
    uint32_t st_sh[2][16];
    int32_t planar;          /* codes in the byte-aligned w3 layout (see the top) */
    spqr_kernel_path path;   /* resolved, never AUTO */
    const struct spqr_kernel_ops *ops; /* path's operations (kernels/kernels.h) */
    uint64_t stream_bytes;   /* bytes a matvec reads from the weight arrays */
};

/* 64-byte aligned allocation of n bytes (rounded up; never NULL for n = 0
 * unless out of memory); free() releases it. */
static inline void *kt_alloc64(size_t n) {
    const size_t sz = (n + 63) / 64 * 64;
    return aligned_alloc(64, sz ? sz : 64);
}

/* Where column j (0..31) of a code block lives for wbits B: dword d, bit
 * shift s; a field with s + B > 32 straddles dwords d and d + 1. */
static inline int kt_field_dword(int B, int j) { return (j * B) >> 5; }
static inline int kt_field_shift(int B, int j) { return (j * B) & 31; }

/* Factor the matvec's x is pre-scaled by for block column j: 2^-s for a
 * field taken in place by an AND (the int->fp32 value is code * 2^s, an
 * exact power-of-two scaling), 1 for a field shifted down. */
static inline float kt_xscale(int B, int j) {
    const int s = kt_field_shift(B, j);
    return s + B < 32 ? 1.0f / (float)(1u << s) : 1.0f;
}

/* Block of row tile rt holding padded column tile ct. */
static inline const uint32_t *kt_block(const spqr_ktensor *kt, int32_t rt, int32_t ct) {
    return kt->codes + ((size_t)rt * (size_t)kt->n_cblocks + (size_t)(ct >> 1)) * (size_t)kt->blk_u32;
}

/* Calls KERNEL(args..., B) with B the literal wbits (2..7; 8 otherwise), so
 * each always-inline SIMD kernel body is compiled once per width with its
 * field offsets and masks constant. B must be KERNEL's last parameter. */
#define KT_WBITS_DISPATCH(wbits, KERNEL, ...)               \
    do {                                                   \
        switch (wbits) {                                   \
        case 2: KERNEL(__VA_ARGS__, 2); break;             \
        case 3: KERNEL(__VA_ARGS__, 3); break;             \
        case 4: KERNEL(__VA_ARGS__, 4); break;             \
        case 5: KERNEL(__VA_ARGS__, 5); break;             \
        case 6: KERNEL(__VA_ARGS__, 6); break;             \
        case 7: KERNEL(__VA_ARGS__, 7); break;             \
        default: KERNEL(__VA_ARGS__, 8); break;            \
        }                                                  \
    } while (0)

/* Code of lane i, block column j (packed layout). */
static inline uint32_t kt_block_code(const uint32_t *blk, int B, int i, int j) {
    const int d = kt_field_dword(B, j), s = kt_field_shift(B, j);
    uint64_t v = blk[d * KT_R + i];
    if (s + B > 32) v |= (uint64_t)blk[(d + 1) * KT_R + i] << 32;
    return (uint32_t)(v >> s) & ((1u << B) - 1u);
}

/* Bit position (dword * 32 + bit) of bit b of block column j's code in
 * the byte-aligned w3 layout. */
static inline int kt_planar_pos(int j, int b) {
    const int h = j >> 4, k = (j >> 2) & 3, c = j & 3;
    if (h == 0) return 32 * (k >> 1) + 8 * c + 3 * (k & 1) + b;
    if (k < 2) return 64 + 8 * c + 3 * k + b;
    return b < 2 ? 32 * (k - 2) + 8 * c + 6 + b : 64 + 8 * c + 6 + (k - 2);
}

/* Code of lane i, block column j, in the layout kt has. */
static inline uint32_t kt_block_code_of(const spqr_ktensor *kt, const uint32_t *blk, int i, int j) {
    if (!kt->planar) return kt_block_code(blk, kt->wbits, i, j);
    uint32_t q = 0;
    for (int b = 0; b < 3; b++) {
        const int p = kt_planar_pos(j, b);
        q |= ((blk[(p >> 5) * KT_R + i] >> (p & 31)) & 1u) << b;
    }
    return q;
}

/* Padded column tile of permuted column c, and its offset in the tile. */
static inline int32_t kt_ctile_of(const spqr_ktensor *kt, int32_t c, int32_t *cc) {
    const int32_t g = c / kt->groupsize, off = c - g * kt->groupsize;
    *cc = off % KT_C;
    return g * kt->ct_per_group + off / KT_C;
}

/* The code of (row r, permuted column c) from the layout (0 at outliers). */
static inline uint32_t kt_code_at(const spqr_ktensor *kt, int32_t r, int32_t c) {
    int32_t cc;
    const int32_t ct = kt_ctile_of(kt, c, &cc);
    return kt_block_code_of(kt, kt_block(kt, r / KT_R, ct), r % KT_R, (int)((ct & 1) * KT_C + cc));
}

/* Per row tile: where its statistics and second-level pairs start (the
 * division by qq_groupsize done once per row tile, not per group). */
typedef struct {
    int32_t rt;
    const uint8_t *st;     /* stats of group 0 */
    const uint16_t *pp[2]; /* [part] pairs of group 0 for this tile's qgroup (q2_aligned), else NULL */
} kt_rtile;

static inline kt_rtile kt_rtile_begin(const spqr_ktensor *kt, int32_t rt) {
    kt_rtile c = {rt, kt->stats + (size_t)rt * kt->n_groups * kt->stat_bytes, {NULL, NULL}};
    if (kt->q2_aligned) {
        const size_t off = (size_t)(rt * KT_R / kt->qq_groupsize) * kt->n_groups * 2;
        if (kt->s_pair) c.pp[0] = kt->s_pair + off;
        if (kt->z_pair) c.pp[1] = kt->z_pair + off;
    }
    return c;
}

/* The second-level pairs of part p (0 scale, 1 zero) of the 16 rows of
 * row tile rt in group g, where they are per row (qq_groupsize not a
 * multiple of 16); padded rows get the last pair (any finite one does). */
static inline void kt_row_pairs(const spqr_ktensor *kt, int32_t rt, int32_t g, int p, float s2[KT_R], float z2[KT_R]) {
    const uint16_t *pairs = p ? kt->z_pair : kt->s_pair;
    for (int i = 0; i < KT_R; i++) {
        int32_t qg = (rt * KT_R + i) / kt->qq_groupsize;
        if (qg >= kt->n_qgroups) qg = kt->n_qgroups - 1;
        const uint16_t *q = pairs + ((size_t)qg * kt->n_groups + g) * 2;
        s2[i] = spqr_fp16_to_fp32(q[0]);
        z2[i] = spqr_fp16_to_fp32(q[1]);
    }
}

/* The fp32 statistics of the 16 rows of row tile rt in group g, computed
 * exactly as the reference does (format/tensor.h). Padded rows get 0. */
void spqri_kt_stats_scalar(const spqr_ktensor *kt, int32_t rt, int32_t g, float s[KT_R], float z[KT_R]);

/* Inputs prepared once per call by the wrapper (spqr_kernel.c):
 *   xp  [n][padcols]  permuted, zero-padded input
 *   x2  [padcols]     xp[pc] * kt_xscale(wbits, pc % 32) (n == 1 only, else NULL)
 *   xs  [n][n_groups] fp32 sum of each group's inputs
 *   xq  [n][cols]     permuted input (outlier corrections)
 *   xqt [cols][n]     the same transposed (SIMD batch paths: the n
 *                     inputs of an outlier's column side by side)
 *   xsg [n_groups][n] xs transposed (SIMD batch paths: a group's n sums
 *                     side by side; read with stride n_groups they were 64
 *                     lines in four L1 sets per group at 4096 columns)
 *   xa  [n_ctiles][n][KT_XOPS], at [n_ctiles][n]: int8 activations per
 *       column tile (its 16 bytes in column order) and their scales, the
 *       n inputs of a tile side by side
 *       (int8 paths avx512vnni, neondot, avx2i8 only; xq and xs then hold x^ = at * int8 and its group
 *       sums, and xp is not filled)
 * A worker computes row tiles [rt0, rt1) and writes Y[n][rows] there only. */
typedef struct kt_input {
    const float *xp, *x2, *xs, *xq;
    const float *xqt; /* [cols][n] xq transposed (SIMD batch paths, else NULL) */
    const float *xsg; /* [n_groups][n] xs transposed (with xqt) */
    const int32_t *xa;
    const float *at;
    int32_t n;
} kt_input;

typedef void (*kt_worker)(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y);

void spqri_kt_matmul_scalar(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y);
void spqri_kt_matvec_avx2(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y);
void spqri_kt_matmul_avx2(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y);
void spqri_kt_matvec_avx512(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y);
void spqri_kt_matmul_avx512(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y);
void spqri_kt_matvec_avx512_vnni(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y);
void spqri_kt_matmul_avx512_vnni(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y);
/* The avx512vnni path's xq, xs, xa and at of one input x (the wrapper's
 * int8 rule, vectorized; xp and x2 are not needed by that path). xa and at
 * point at this input's slot of the [n_ctiles][n] interleaved arrays: tile
 * t goes to xa[t * n * KT_XOPS ..], at[t * n] (n = 1 for one token). */
void spqri_kt_prepare_i8_avx512(const spqr_ktensor *kt, const float *x, float *xs, float *xq, int32_t *xa, float *at,
                          int32_t n);
/* Its scalar reference (xp: [padcols] scratch), kept for the tests. */
void spqri_kt_prepare_i8_ref(const spqr_ktensor *kt, const float *x, float *xp, float *xs, float *xq, int32_t *xa, float *at);

/* avx2i8 path (spqr_kernel_avx2i8.c, and its VNNI twins avxvnni, vnni256):
 * the avx512vnni int8 rule on AVX2.
 * Its matvec reads, per column tile, KT_XW dwords of int16 activation
 * pairs (one per vpmaddwd of the tile, see the file) instead of the 16
 * int8 bytes; its matmul reads the avx512vnni layout. */
#define KT_XW 8
/* spqri_kt_prepare_i8_avx512's outputs with AVX2 (the same int8 codes, scales
 * and x^). words = 0: xa as avx512vnni ([n_ctiles][n][KT_XOPS], input
 * slot as there); words = 1 (n = 1, the matvec): xa [n_ctiles][KT_XW]
 * int16 pairs as spqri_kt_avx2i8_words_ref builds them. */
void spqri_kt_prepare_i8_avx2(const spqr_ktensor *kt, const float *x, float *xs, float *xq, int32_t *xa, float *at,
                        int32_t n, int words);
/* Scalar reference of the words = 1 arrangement, from the column-order
 * int8 activations xa [n_ctiles][KT_XOPS] of one input (tests). */
void spqri_kt_avx2i8_words_ref(const spqr_ktensor *kt, const int32_t *xa, int32_t *xw);
/* aarch64 (spqr_kernel_neon.c): neon (exact fp32) and neondot (dotprod,
 * int8 activations with the avx512vnni rule and input layout);
 * spqri_kt_prepare_i8_neon has spqri_kt_prepare_i8_avx512's contract. Off aarch64 the
 * functions fall back to the scalar path (never picked there). */
void spqri_kt_matvec_neon(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y);
void spqri_kt_matmul_neon(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y);
void spqri_kt_matvec_neon_dot(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y);
void spqri_kt_matmul_neon_dot(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y);
void spqri_kt_prepare_i8_neon(const spqr_ktensor *kt, const float *x, float *xs, float *xq, int32_t *xa, float *at,
                        int32_t n);

/* Software prefetch of the code stream KT_PF_BYTES ahead, 32 * B bytes
 * (half a block) per column tile, for the one-token SIMD paths. The
 * hardware prefetcher alone left the out-of-cache matvec ~25% slower than
 * in cache (w3, 7B shapes, 2 MiB pages); 2 KiB ahead closed most of that
 * gap (1 KiB: most; 4 and 8 KiB, or T1/T2 hints: no better). Prefetches past
 * the array's end are harmless. */
#define KT_PF_BYTES 2048
static inline __attribute__((always_inline)) void kt_prefetch_tile(const uint32_t *blk, int32_t t, const int B) {
    const char *p = (const char *)blk + KT_PF_BYTES + (t & 1) * 32 * B;
    for (int k = 0; k < 32 * B; k += 64) __builtin_prefetch(p + k, 0, 3);
}

/* Software prefetch of a row tile's outlier arrays (columns, corrections,
 * row pointers), spread over its main loop: they are read once, after the
 * tile's groups, and the hardware prefetcher does not run ahead of such
 * short bursts; out of cache they made a 1%-outlier matvec 40% slower than
 * an outlier-free one (in cache: 20%). kt_opf_step is called once per code
 * block; it issues at most one line of columns and two of corrections. */
typedef struct {
    const char *c, *ce, *v, *ve;
} kt_opf;

static inline kt_opf kt_opf_begin(const spqr_ktensor *kt, int32_t rt) {
    const int32_t o0 = kt->o_ptr[rt], o1 = kt->o_ptr[rt + 1];
    __builtin_prefetch(kt->o_rptr + (size_t)rt * KT_R, 0, 3);
    __builtin_prefetch(kt->o_rptr + (size_t)rt * KT_R + KT_R, 0, 3);
    kt_opf p = {(const char *)(kt->o_col + o0), (const char *)(kt->o_col + o1), (const char *)(kt->o_corr + o0),
                (const char *)(kt->o_corr + o1)};
    return p;
}

static inline __attribute__((always_inline)) void kt_opf_step(kt_opf *p) {
    if (p->c < p->ce) {
        __builtin_prefetch(p->c, 0, 3);
        p->c += 64;
    }
    if (p->v < p->ve) {
        __builtin_prefetch(p->v, 0, 3);
        __builtin_prefetch(p->v + 64, 0, 3);
        p->v += 128;
    }
}

/* Row tile rt's outlier corrections for one input, corr[i] = sum over row
 * i's outliers of o_corr * xq[col] (their code is 0, see the layout notes),
 * row by row in four register accumulators: a per-lane memory accumulator
 * was 2x slower (a load-add-store on the same 16 floats per outlier). */
static inline void kt_outlier_rows(const spqr_ktensor *kt, const float *xq, int32_t rt, float corr[KT_R]) {
    const int32_t *rp = kt->o_rptr + (size_t)rt * KT_R;
    const uint16_t *col = kt->o_col;
    const float *oc = kt->o_corr;
    for (int i = 0; i < KT_R; i++) {
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        int32_t o = rp[i];
        const int32_t e = rp[i + 1];
        for (; o + 3 < e; o += 4) {
            a0 = fmaf(oc[o], xq[col[o]], a0);
            a1 = fmaf(oc[o + 1], xq[col[o + 1]], a1);
            a2 = fmaf(oc[o + 2], xq[col[o + 2]], a2);
            a3 = fmaf(oc[o + 3], xq[col[o + 3]], a3);
        }
        for (; o < e; o++) a0 = fmaf(oc[o], xq[col[o]], a0);
        corr[i] = (a0 + a1) + (a2 + a3);
    }
}

/* Adds row tiles [rt0, rt1)'s outlier corrections to y, after their groups
 * were stored. The one-token paths call it once per chunk of row tiles
 * rather than once per tile: between two tiles' outlier passes the tile's
 * ~24 KiB of codes stream through the L1 and evict the permuted input xq
 * (16-44 KiB), so each pass gathered xq from L2; over a chunk, xq's lines
 * stay in L1 from one tile to the next (the A/B is in docs/kernels.md,
 * "Runtime layout"). y_i + corr_i is the same single fp32 add as before:
 * same bits. */
static inline void kt_outliers_add(const spqr_ktensor *kt, const float *xq, int32_t rt0, int32_t rt1, float *y) {
    for (int32_t rt = rt0; rt < rt1; rt++) {
        if (kt->o_ptr[rt + 1] == kt->o_ptr[rt]) continue;
        float corr[KT_R];
        kt_outlier_rows(kt, xq, rt, corr);
        const int32_t left = kt->rows - rt * KT_R < KT_R ? kt->rows - rt * KT_R : KT_R;
        for (int32_t i = 0; i < left; i++) y[rt * KT_R + i] += corr[i];
    }
}

/* Rewrites the codes in the byte-aligned w3 layout (on = 1) or the packed
 * one (on = 0), in place, if kt is not in it already; wbits other than 3
 * stay packed. */
void spqri_kt_set_planar(spqr_ktensor *kt, int on);

/* 1 when the CPU (and OS) can run the path. */
int spqri_kt_path_supported(spqr_kernel_path p);

#endif
