/* Building the runtime kernel layout (spqr_kernel.h) from a packed tensor:
 * code tiles, statistic blocks, sorted outliers with their product
 * corrections, and the int8 plan. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/error.h"
#include "format/tensor.h"
#include "kernels/kernels.h"

/* Large streamed arrays: 2 MiB aligned and advised as transparent huge
 * pages, so a matvec's stream neither misses the TLB every 4 KiB nor stops
 * the hardware prefetcher at every 4 KiB page boundary. */
static void *alloc_stream(size_t n) {
    const size_t huge = (size_t)2 << 20;
    if (n < huge / 2) return kt_alloc64(n);
    const size_t sz = (n + huge - 1) / huge * huge;
    void *p = aligned_alloc(huge, sz);
#ifdef MADV_HUGEPAGE
    if (p) madvise(p, sz, MADV_HUGEPAGE);
#endif
    return p;
}

void spqr_ktensor_free(spqr_ktensor *kt) {
    if (!kt) return;
    free(kt->codes);
    free(kt->stats);
    free(kt->s_pair);
    free(kt->z_pair);
    free(kt->perm);
    free(kt->o_ptr);
    free(kt->o_col);
    free(kt->o_val);
    free(kt->o_corr);
    free(kt->o_row);
    free(kt->o_rptr);
    free(kt);
}

/* 8 stream bytes from byte b as a little-endian word; bytes past the
 * stream's end (nbytes) read as 0. */
static inline uint64_t load64(const uint8_t *buf, size_t nbytes, size_t b) {
    uint64_t w = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (b + 8 <= nbytes) {
        memcpy(&w, buf + b, 8);
        return w;
    }
#endif
    const size_t e = b + 8 < nbytes ? b + 8 : nbytes;
    for (size_t k = b; k < e; k++) w |= (uint64_t)buf[k] << (8 * (k - b));
    return w;
}

/* Bits [pos, pos + 32) of an LSB-first stream (format/bitpack.h). */
static inline uint32_t bits32(const uint8_t *buf, size_t nbytes, uint64_t pos) {
    return (uint32_t)(load64(buf, nbytes, (size_t)(pos >> 3)) >> (pos & 7));
}

/* dst[0..dst_bytes) = stream bits [pos, pos + nbits), then zero bits. */
static inline void copy_bits(uint8_t *dst, int dst_bytes, const uint8_t *src, size_t src_bytes, uint64_t pos, int nbits) {
    for (int o = 0; o < dst_bytes; o += 4) {
        const int left = nbits - 8 * o;
        uint32_t w = left > 0 ? bits32(src, src_bytes, pos + 8 * (uint64_t)o) : 0;
        if (left < 32) w &= left > 0 ? (1u << left) - 1u : 0u;
        for (int k = 0; k < 4 && o + k < dst_bytes; k++) dst[o + k] = (uint8_t)(w >> (8 * k));
    }
}

/* Source column of padded column pc, -1 for padding. */
static int32_t padded_source(const spqr_ktensor *kt, int64_t pc) {
    const int32_t span = kt->groupsize < kt->cols ? kt->groupsize : kt->cols;
    const int64_t ct = pc / KT_C, g = ct / kt->ct_per_group;
    const int64_t off = (ct - g * kt->ct_per_group) * KT_C + pc % KT_C, c = g * kt->groupsize + off;
    return off < span && c < kt->cols ? (int32_t)c : -1;
}

/* Column maps of a tensor: colmap[pc] = source column of padded column pc
 * (-1 = padding), pad_of[c] = padded column of source column c, grp_of[c] =
 * its group. */
typedef struct {
    int32_t *colmap, *pad_of, *grp_of;
} col_maps;

static spqr_status col_maps_make(const spqr_ktensor *kt, col_maps *m, spqr_err *err) {
    m->colmap = malloc((size_t)kt->padcols * sizeof *m->colmap);
    m->pad_of = malloc((size_t)kt->cols * sizeof *m->pad_of);
    m->grp_of = malloc((size_t)kt->cols * sizeof *m->grp_of);
    if (!m->colmap || !m->pad_of || !m->grp_of) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory building the kernel layout");
    for (int32_t pc = 0; pc < kt->padcols; pc++) {
        const int32_t c = m->colmap[pc] = padded_source(kt, pc);
        if (c >= 0) m->pad_of[c] = pc;
    }
    for (int32_t c = 0; c < kt->cols; c++) m->grp_of[c] = c / kt->groupsize;
    return SPQR_OK;
}

static void col_maps_free(col_maps *m) {
    free(m->colmap);
    free(m->pad_of);
    free(m->grp_of);
}

/* Clears the code of (row i of row tile rt, padded column pc): the outlier
 * there replaces it. */
static void clear_code(spqr_ktensor *kt, int32_t rt, int i, int32_t pc) {
    const int B = kt->wbits;
    uint32_t *blk = kt->codes + ((size_t)rt * (size_t)kt->n_cblocks + (size_t)(pc / KT_BC)) * (size_t)kt->blk_u32;
    const int j = pc % KT_BC, d = kt_field_dword(B, j), sh = kt_field_shift(B, j);
    const uint64_t m = ((1ull << B) - 1) << sh;
    blk[d * KT_R + i] &= ~(uint32_t)m;
    if (sh + B > 32) blk[(d + 1) * KT_R + i] &= ~(uint32_t)(m >> 32);
}

/* Codes, one row tile at a time: its slice of the array (n_cblocks * 64 *
 * wbits bytes) stays in cache while its 16 rows are written, each row read
 * sequentially. Row i's wbits dwords of a block are the 32 * wbits-bit
 * string of the block's 32 codes, so a block whose columns are 32
 * consecutive source columns (all blocks but a group's padded tail when
 * groupsize % 16 == 0) is a plain copy of the row's stored bits; other
 * blocks are assembled code by code from colmap. A row's codes at its
 * outliers are cleared right after it is written, while it is in cache. */
static spqr_status fill_codes(spqr_ktensor *kt, const spqr_tensor *t, const int32_t *colmap, const int32_t *pad_of,
                              spqr_err *err) {
    const int B = kt->wbits;
    const size_t nbytes = spqr_bits_bytes((uint64_t)t->rows * (uint64_t)t->cols, B);
    int32_t *bcol = malloc((size_t)kt->n_cblocks * sizeof *bcol); /* [n_cblocks] first column of a copy block or -1 */
    if (!bcol) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory building the code layout");
    for (int32_t cb = 0; cb < kt->n_cblocks; cb++) {
        const int32_t *m = colmap + (size_t)cb * KT_BC;
        int copy = (int64_t)cb * KT_BC + KT_BC <= kt->padcols && m[0] >= 0;
        for (int j = 1; copy && j < KT_BC; j++) copy = m[j] == m[0] + j;
        bcol[cb] = copy ? m[0] : -1;
    }
    const size_t tile_u32 = (size_t)kt->n_cblocks * (size_t)kt->blk_u32;
    /* row tiles are independent; threads also share the first touch of the new pages */
#pragma omp parallel for schedule(static)
    for (int32_t rt = 0; rt < kt->n_rtiles; rt++) {
        uint32_t *tile = kt->codes + (size_t)rt * tile_u32;
        memset(tile, 0, tile_u32 * sizeof *tile); /* padding codes 0 */
        for (int i = 0; i < KT_R && rt * KT_R + i < kt->rows; i++) {
            const uint64_t row0 = (uint64_t)(rt * KT_R + i) * (uint64_t)t->cols;
            for (int32_t cb = 0; cb < kt->n_cblocks; cb++) {
                uint32_t *blk = tile + (size_t)cb * (size_t)kt->blk_u32 + i;
                if (bcol[cb] >= 0) {
                    const uint64_t pos = (row0 + (uint64_t)bcol[cb]) * (uint64_t)B;
                    for (int d = 0; d < B; d++) blk[d * KT_R] = bits32(t->codes, nbytes, pos + 32 * (uint64_t)d);
                    continue;
                }
                for (int j = 0; j < KT_BC && (int64_t)cb * KT_BC + j < kt->padcols; j++) {
                    const int32_t c = colmap[(size_t)cb * KT_BC + j];
                    if (c < 0) continue;
                    const uint64_t q = spqr_bits_get(t->codes, row0 + (uint64_t)c, B);
                    const int d = kt_field_dword(B, j), sh = kt_field_shift(B, j);
                    blk[d * KT_R] |= (uint32_t)(q << sh);
                    if (sh + B > 32) blk[(d + 1) * KT_R] |= (uint32_t)(q >> (32 - sh));
                }
            }
            const int32_t r = rt * KT_R + i;
            for (int32_t k = t->outlier_rowptr[r]; k < t->outlier_rowptr[r + 1]; k++)
                clear_code(kt, rt, i, pad_of[t->outlier_col[k]]);
        }
    }
    free(bcol);
    return SPQR_OK;
}

/* Four 3-bit codes at bits 3c (c = 0..3) to bits 8c, and back: two
 * shift-and-merge steps each (a per-bit loop made the conversion 4x
 * slower than building the whole layout). */
static inline uint32_t spread4(uint32_t g) {
    const uint32_t x = (g & 0x3Fu) | (g & 0xFC0u) << 10;
    return (x & 0x00070007u) | (x & 0x00380038u) << 5;
}

static inline uint32_t gather4(uint32_t s) {
    const uint32_t x = (s & 0x00070007u) | (s >> 5 & 0x00380038u);
    return (x & 0x3Fu) | (x >> 10 & 0xFC0u);
}

/* Row i of a w3 block: packed 96-bit string <-> byte-aligned (spqr_kernel.h). */
static void w3_to_bytes(uint32_t *blk, int i) {
    const uint64_t lo = blk[i] | (uint64_t)blk[KT_R + i] << 32, hi = blk[2 * KT_R + i];
    const uint32_t s00 = spread4((uint32_t)lo & 0xFFFu), s01 = spread4((uint32_t)(lo >> 12) & 0xFFFu);
    const uint32_t s02 = spread4((uint32_t)(lo >> 24) & 0xFFFu), s03 = spread4((uint32_t)(lo >> 36) & 0xFFFu);
    const uint32_t s10 = spread4((uint32_t)(lo >> 48) & 0xFFFu), s11 = spread4((uint32_t)(lo >> 60 | hi << 4) & 0xFFFu);
    const uint32_t s12 = spread4((uint32_t)(hi >> 8) & 0xFFFu), s13 = spread4((uint32_t)(hi >> 20) & 0xFFFu);
    const uint32_t m2 = 0x03030303u, m1 = 0x01010101u;
    blk[i] = s00 | s01 << 3 | (s12 & m2) << 6;
    blk[KT_R + i] = s02 | s03 << 3 | (s13 & m2) << 6;
    blk[2 * KT_R + i] = s10 | s11 << 3 | (s12 >> 2 & m1) << 6 | (s13 >> 2 & m1) << 7;
}

static void w3_from_bytes(uint32_t *blk, int i) {
    const uint32_t d0 = blk[i], d1 = blk[KT_R + i], d2 = blk[2 * KT_R + i], m7 = 0x07070707u, m3 = 0x03030303u;
    const uint64_t g00 = gather4(d0 & m7), g01 = gather4(d0 >> 3 & m7), g02 = gather4(d1 & m7), g03 = gather4(d1 >> 3 & m7);
    const uint64_t g10 = gather4(d2 & m7), g11 = gather4(d2 >> 3 & m7);
    const uint64_t g12 = gather4((d0 >> 6 & m3) | (d2 >> 4 & 0x04040404u));
    const uint64_t g13 = gather4((d1 >> 6 & m3) | (d2 >> 5 & 0x04040404u));
    const uint64_t lo = g00 | g01 << 12 | g02 << 24 | g03 << 36 | g10 << 48 | g11 << 60;
    blk[i] = (uint32_t)lo;
    blk[KT_R + i] = (uint32_t)(lo >> 32);
    blk[2 * KT_R + i] = (uint32_t)(g11 >> 4 | g12 << 8 | g13 << 20);
}

void spqri_kt_set_planar(spqr_ktensor *kt, int on) {
    on = on && kt->wbits == 3;
    if (!kt->codes || on == kt->planar) return;
    const size_t n_blk = (size_t)kt->n_rtiles * (size_t)kt->n_cblocks;
    for (size_t b = 0; b < n_blk; b++) {
        uint32_t *blk = kt->codes + b * (size_t)kt->blk_u32;
        for (int i = 0; i < KT_R; i++) {
            if (on) w3_to_bytes(blk, i);
            else w3_from_bytes(blk, i);
        }
    }
    kt->planar = on;
}

/* pshufb indices and shifts that put the 16 rows' bits-bit codes (LSB-first
 * in at most 16 bytes) into dword lanes: lane i gets bytes b, b+1 of bit
 * offset i*bits, shifted right by its remainder. */
static void stat_tables(uint8_t idx[64], uint32_t sh[16], int bits) {
    for (int i = 0; i < KT_R; i++) {
        const int o = i * bits, b = o >> 3;
        idx[4 * i] = (uint8_t)(b < 16 ? b : 0x80);
        idx[4 * i + 1] = (uint8_t)(b + 1 < 16 ? b + 1 : 0x80);
        idx[4 * i + 2] = idx[4 * i + 3] = 0x80;
        sh[i] = (uint32_t)(o & 7);
    }
}

/* Statistics: a tile's 16 bilevel codes are 16 consecutive stored codes
 * ([group][row] order), so each part is one bit copy. Every byte of the
 * array is written (the trailing slack included). */
static void fill_stats(spqr_ktensor *kt, const spqr_tensor *t) {
    const uint64_t n_stats = (uint64_t)t->n_groups * (uint64_t)t->rows;
    const size_t s_bytes = kt->qs_bits ? spqr_bits_bytes(n_stats, kt->qs_bits) : 0;
    const size_t z_bytes = kt->qz_bits ? spqr_bits_bytes(n_stats, kt->qz_bits) : 0;
#pragma omp parallel for schedule(static)
    for (int32_t rt = 0; rt < kt->n_rtiles; rt++) {
        const int nr = kt->rows - rt * KT_R < KT_R ? kt->rows - rt * KT_R : KT_R;
        for (int32_t g = 0; g < kt->n_groups; g++) {
            uint8_t *sb = kt->stats + ((size_t)rt * kt->n_groups + g) * kt->stat_bytes;
            uint8_t *zb = sb + kt->sb_bytes;
            const uint64_t idx = (uint64_t)g * (uint64_t)t->rows + (uint64_t)rt * KT_R;
            if (kt->qs_bits) {
                copy_bits(sb, kt->sb_bytes, t->scale_codes, s_bytes, idx * (uint64_t)kt->qs_bits, nr * kt->qs_bits);
            } else {
                memcpy(sb, &t->scale_f16[idx], 2 * (size_t)nr);
                memset(sb + 2 * nr, 0, (size_t)(kt->sb_bytes - 2 * nr));
            }
            if (kt->qz_bits) {
                copy_bits(zb, kt->zb_bytes, t->zero_codes, z_bytes, idx * (uint64_t)kt->qz_bits, nr * kt->qz_bits);
            } else {
                memcpy(zb, &t->zero_f16[idx], 2 * (size_t)nr);
                memset(zb + 2 * nr, 0, (size_t)(kt->zb_bytes - 2 * nr));
            }
        }
    }
    memset(kt->stats + (size_t)kt->n_rtiles * kt->n_groups * kt->stat_bytes, 0, 16);
    for (int32_t qg = 0; qg < kt->n_qgroups; qg++)
        for (int32_t g = 0; g < kt->n_groups; g++)
            for (int k = 0; k < 2; k++) {
                const size_t src = ((size_t)g * t->n_qgroups + qg) * 2 + k, dst = ((size_t)qg * kt->n_groups + g) * 2 + k;
                if (kt->s_pair) kt->s_pair[dst] = t->scale_q2[src];
                if (kt->z_pair) kt->z_pair[dst] = t->zero_q2[src];
            }
}

/* Sorts n keys by their column (bits 36..51), stably: nothing to do for
 * the usual CSR (columns ascending), an insertion sort for a short row,
 * else two 8-bit LSD counting passes through tmp. */
static void sort_by_col(uint64_t *key, uint64_t *tmp, int64_t n) {
    int64_t j = 1;
    while (j < n && key[j] >> 36 >= key[j - 1] >> 36) j++;
    if (j >= n) return;
    if (n <= 64) {
        for (; j < n; j++) {
            const uint64_t x = key[j];
            int64_t k = j;
            for (; k > 0 && key[k - 1] >> 36 > x >> 36; k--) key[k] = key[k - 1];
            key[k] = x;
        }
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        const int sh = 36 + 8 * pass;
        int64_t cnt[257] = {0};
        for (int64_t j = 0; j < n; j++) cnt[((key[j] >> sh) & 255u) + 1]++;
        for (int b = 0; b < 256; b++) cnt[b + 1] += cnt[b];
        for (int64_t j = 0; j < n; j++) tmp[cnt[(key[j] >> sh) & 255u]++] = key[j];
        uint64_t *x = key;
        key = tmp;
        tmp = x;
    }
}

/* Per row tile, sorted by (row, column), with row pointers o_rptr. A
 * duplicated (r, c) keeps the last CSR entry, as the reference's overwrite
 * does. */
static spqr_status fill_outliers(spqr_ktensor *kt, const spqr_tensor *t, spqr_err *err) {
    int64_t max_n = 1;
    for (int32_t rt = 0; rt < kt->n_rtiles; rt++) {
        const int32_t r0 = rt * KT_R, r1 = r0 + KT_R < kt->rows ? r0 + KT_R : kt->rows;
        const int64_t n = (int64_t)t->outlier_rowptr[r1] - t->outlier_rowptr[r0];
        if (n > max_n) max_n = n;
    }
    uint64_t *key = malloc(2 * (size_t)max_n * sizeof *key), *tmp = key + max_n;
    if (!key) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory sorting outliers");
    int64_t o = 0;
    kt->o_ptr[0] = 0;
    for (int32_t rt = 0; rt < kt->n_rtiles; rt++) {
        int64_t n = 0;
        for (int i = 0; i < KT_R && rt * KT_R + i < kt->rows; i++) {
            const int32_t r = rt * KT_R + i;
            const int64_t n0 = n;
            for (int32_t k = t->outlier_rowptr[r]; k < t->outlier_rowptr[r + 1]; k++)
                key[n++] = (uint64_t)t->outlier_col[k] << 36 | (uint64_t)i << 32 | (uint64_t)(uint32_t)k;
            /* a row's keys come in CSR order, so a stable sort by column
             * leaves them sorted by (column, CSR index) */
            sort_by_col(key + n0, tmp, n - n0);
        }
        int row = 0;
        for (int64_t j = 0; j < n; j++) {
            for (; row <= (int)((key[j] >> 32) & 15u); row++) kt->o_rptr[rt * KT_R + row] = (int32_t)o;
            if (j + 1 < n && key[j + 1] >> 32 == key[j] >> 32) continue; /* a later entry for the same (r, c) */
            kt->o_col[o] = (uint16_t)(key[j] >> 36);
            kt->o_row[o] = (uint8_t)((key[j] >> 32) & 15u);
            kt->o_val[o] = t->outlier_val[(uint32_t)key[j]];
            o++;
        }
        for (; row <= KT_R; row++) kt->o_rptr[rt * KT_R + row] = (int32_t)o; /* [rt+1][0] too, rewritten next tile */
        kt->o_ptr[rt + 1] = (int32_t)o;
    }
    kt->nnz = o;
    free(key);
    return SPQR_OK;
}

/* o_corr: the code at an outlier is 0, so the dense part of a product
 * counts s * (0 - z) there; the outlier adds (value - s * (0 - z)) * x. */
static void fill_corrections(spqr_ktensor *kt, const spqr_tensor *t, const int32_t *grp_of) {
    /* the tensor's statistics of the one row (the same fp32 values
     * spqri_kt_stats_scalar reads from the layout), with the second-level pairs
     * converted once per (group, qq group) */
    int32_t pg = -1, pq = -1;
    float s2 = 0, sz2 = 0, z2 = 0, zz2 = 0;
    for (int32_t rt = 0; rt < kt->n_rtiles; rt++)
        for (int32_t o = kt->o_ptr[rt]; o < kt->o_ptr[rt + 1]; o++) {
            const int32_t g = grp_of[kt->o_col[o]], r = rt * KT_R + kt->o_row[o];
            const uint64_t idx = (uint64_t)g * (uint64_t)t->rows + (uint64_t)r;
            const int32_t qg = t->n_qgroups ? r / t->qq_groupsize : 0;
            if (t->n_qgroups && (g != pg || qg != pq)) {
                const size_t q2 = 2 * ((size_t)g * (size_t)t->n_qgroups + (size_t)qg);
                if (t->scale_codes) s2 = spqr_fp16_to_fp32(t->scale_q2[q2]), sz2 = spqr_fp16_to_fp32(t->scale_q2[q2 + 1]);
                if (t->zero_codes) z2 = spqr_fp16_to_fp32(t->zero_q2[q2]), zz2 = spqr_fp16_to_fp32(t->zero_q2[q2 + 1]);
                pg = g;
                pq = qg;
            }
            /* s2 * (code - z2): spqr_stat_dq's expression */
            const float s = t->scale_codes ? s2 * ((float)spqr_bits_get(t->scale_codes, idx, t->qq_scale_bits) - sz2)
                                           : spqr_fp16_to_fp32(t->scale_f16[idx]);
            const float z = t->zero_codes ? z2 * ((float)spqr_bits_get(t->zero_codes, idx, t->qq_zero_bits) - zz2)
                                          : spqr_fp16_to_fp32(t->zero_f16[idx]);
            kt->o_corr[o] = spqr_fp16_to_fp32(kt->o_val[o]) - spqr_weight_dq(s, 0, z);
        }
}

spqr_status spqr_ktensor_from_tensor(const spqr_tensor *t, spqr_kernel_path path, spqr_ktensor **out,
                                     spqr_err *err) {
    if (!out) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "output pointer is NULL");
    *out = NULL;
    spqr_status st = spqr_tensor_check(t, err);
    if (st != SPQR_OK) return st;
    if (t->cols > 65536) return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "cols %d > 65536", t->cols);
    spqr_ktensor *kt = calloc(1, sizeof *kt);
    if (!kt) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    st = spqr_ktensor_set_path(kt, path, err);
    if (st != SPQR_OK) {
        free(kt);
        return st;
    }
    kt->rows = t->rows;
    kt->cols = t->cols;
    kt->wbits = t->wbits;
    kt->groupsize = t->groupsize;
    kt->n_groups = t->n_groups;
    kt->qs_bits = t->qq_scale_bits;
    kt->qz_bits = t->qq_zero_bits;
    kt->qq_groupsize = t->qq_groupsize;
    kt->n_qgroups = t->n_qgroups;
    kt->n_rtiles = (t->rows + KT_R - 1) / KT_R;
    const int32_t span = t->groupsize < t->cols ? t->groupsize : t->cols;
    kt->ct_per_group = (span + KT_C - 1) / KT_C;
    const int64_t n_ct = (int64_t)kt->n_groups * kt->ct_per_group;
    if (n_ct * KT_C > INT32_MAX / 2) {
        free(kt);
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "padded column count too large");
    }
    kt->n_ctiles = (int32_t)n_ct;
    kt->padcols = (int32_t)(n_ct * KT_C);
    kt->n_cblocks = (kt->n_ctiles + 1) / 2;
    kt->blk_u32 = KT_R * t->wbits;
    stat_tables(kt->st_idx[0], kt->st_sh[0], kt->qs_bits);
    stat_tables(kt->st_idx[1], kt->st_sh[1], kt->qz_bits);
    kt->sb_bytes = kt->qs_bits ? 2 * kt->qs_bits : 2 * KT_R;
    kt->zb_bytes = kt->qz_bits ? 2 * kt->qz_bits : 2 * KT_R;
    kt->stat_bytes = kt->sb_bytes + kt->zb_bytes;
    kt->q2_aligned = kt->n_qgroups > 0 && kt->qq_groupsize % KT_R == 0;
    const size_t codes_n = (size_t)kt->n_rtiles * (size_t)kt->n_cblocks * (size_t)kt->blk_u32;
    const size_t stats_n = (size_t)kt->n_rtiles * (size_t)kt->n_groups * (size_t)kt->stat_bytes + 16;
    const size_t pair_n = (size_t)kt->n_qgroups * (size_t)kt->n_groups * 2;
    int ok = (kt->codes = alloc_stream(codes_n * 4)) != NULL;
    ok &= (kt->stats = alloc_stream(stats_n)) != NULL;
    if (kt->qs_bits) ok &= (kt->s_pair = malloc(pair_n * 2)) != NULL;
    if (kt->qz_bits) ok &= (kt->z_pair = malloc(pair_n * 2)) != NULL;
    if (t->perm) {
        ok &= (kt->perm = malloc((size_t)t->cols * sizeof(int32_t))) != NULL;
        if (kt->perm) memcpy(kt->perm, t->perm, (size_t)t->cols * sizeof(int32_t));
    }
    const size_t nnz = t->nnz > 0 ? (size_t)t->nnz : 1;
    ok &= (kt->o_ptr = malloc(((size_t)kt->n_rtiles + 1) * sizeof(int32_t))) != NULL;
    ok &= (kt->o_col = malloc(nnz * 2)) != NULL;
    ok &= (kt->o_val = malloc(nnz * 2)) != NULL;
    ok &= (kt->o_row = malloc(nnz)) != NULL;
    ok &= (kt->o_rptr = malloc(((size_t)kt->n_rtiles * KT_R + 1) * sizeof(int32_t))) != NULL;
    ok &= (kt->o_corr = malloc(nnz * sizeof(float))) != NULL;
    if (!ok) {
        spqr_ktensor_free(kt);
        return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory building the kernel layout of a %dx%d tensor",
                            t->rows, t->cols);
    }
    /* fill_codes and fill_stats write every byte of codes and stats */
    col_maps m;
    st = col_maps_make(kt, &m, err);
    if (st == SPQR_OK) st = fill_codes(kt, t, m.colmap, m.pad_of, err);
    if (st == SPQR_OK) fill_stats(kt, t);
    if (st == SPQR_OK) st = fill_outliers(kt, t, err);
    if (st == SPQR_OK) fill_corrections(kt, t, m.grp_of);
    if (st == SPQR_OK) spqri_kt_set_planar(kt, kt->ops->planar3); /* built packed, then the path's layout */
    col_maps_free(&m);
    if (st != SPQR_OK) {
        spqr_ktensor_free(kt);
        return st;
    }
    kt->stream_bytes = (uint64_t)codes_n * 4 + (stats_n - 16) + (kt->s_pair ? pair_n * 2 : 0) +
                       (kt->z_pair ? pair_n * 2 : 0) + (uint64_t)kt->nnz * 6 + ((uint64_t)kt->n_rtiles * KT_R + 1) * 4 +
                       (kt->perm ? (uint64_t)kt->cols * 4 : 0);
    *out = kt;
    return SPQR_OK;
}

uint64_t spqr_ktensor_bytes(const spqr_ktensor *kt) { return kt ? kt->stream_bytes : 0; }
