/* The Hugging Face SpQR layout (docs/format.md): encoder from our packed
 * tensor and the format's own decode rule. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "format/bitpack.h"
#include "format/hf_spqr.h"
#include "format/tensor.h"

#define B HF_SPQR_BETA

const char *spqri_hf_spqr_unsupported(const spqr_tensor *t) {
    if (t->wbits != HF_SPQR_BITS) return "weights are not 3-bit";
    if (t->groupsize != B) return "beta1 (the statistics' column group) is not 16";
    if (!t->scale_codes || !t->zero_codes || t->qq_scale_bits != HF_SPQR_BITS || t->qq_zero_bits != HF_SPQR_BITS)
        return "the statistics are not 3-bit codes";
    if (t->qq_groupsize != B) return "beta2 (the statistics' row group) is not 16";
    if (t->rows <= 0 || t->rows % B || t->cols <= 0 || t->cols % B) return "rows or columns are not multiples of 16";
    if (t->cols > 32768) return "more than 32768 columns (the format's column indices are signed 16-bit)";
    return NULL;
}

/* x rounded to the nearest fp16 (ties to even), from double so that the
 * difference or product of two halves is rounded once, as the GPU does. */
static uint16_t half_rn(double x) {
    if (x == 0 || isnan(x)) return spqr_fp32_to_fp16((float)x);
    int e;
    frexp(x, &e);
    int E = e - 1 < -14 ? -14 : e - 1;
    double q = ldexp(1.0, E - 10);
    double r = nearbyint(x / q) * q;
    if (fabs(r) >= 65520.0) r = r > 0 ? INFINITY : -INFINITY;
    return spqr_fp32_to_fp16((float)r); /* exact: r is a half */
}

static double h(uint16_t v) { return (double)spqr_fp16_to_fp32(v); }

float spqri_hf_spqr_decode_weight(uint16_t ss, uint16_t sz, uint16_t zs, uint16_t zz, uint32_t sq, uint32_t zq, uint32_t q) {
    uint16_t s = half_rn(h(ss) * h(half_rn((double)sq - h(sz))));
    uint16_t z = half_rn(h(zs) * h(half_rn((double)zq - h(zz))));
    return spqr_fp16_to_fp32(half_rn(h(s) * h(half_rn((double)q - h(z)))));
}

/* The tile's second-level word: (scale, zero) pairs of both statistics. */
static uint64_t second_order(const spqr_tensor *t, int32_t g, int32_t ti) {
    size_t i = 2 * ((size_t)g * (size_t)t->n_qgroups + (size_t)ti);
    return (uint64_t)t->scale_q2[i] | (uint64_t)t->zero_q2[i] << 16 | (uint64_t)t->scale_q2[i + 1] << 32 |
           (uint64_t)t->zero_q2[i + 1] << 48;
}

static inline uint64_t word_index(int32_t cols, int32_t r, int32_t j) {
    return ((uint64_t)(r / B) * (uint64_t)(cols / B) + (uint64_t)(j / B)) * B + (uint64_t)(r % B);
}

spqr_status spqri_hf_spqr_encode(const spqr_tensor *t, int64_t *dense_weights, int32_t *row_offsets, int32_t *col_vals,
                           int32_t *in_perm, spqr_err *err) {
    const char *why = spqri_hf_spqr_unsupported(t);
    if (why) return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "%s; %s", why, HF_SPQR_SUPPORTED);
    const int32_t rows = t->rows, cols = t->cols;
    uint64_t *w = (uint64_t *)dense_weights;
    for (int32_t r = 0; r < rows; r++)
        for (int32_t g = 0; g < cols / B; g++) {
            uint64_t v = second_order(t, g, r / B);
            uint64_t word = spqr_bits_get(t->scale_codes, (uint64_t)g * rows + r, 3) |
                            (uint64_t)spqr_bits_get(t->zero_codes, (uint64_t)g * rows + r, 3) << 3;
            for (int32_t l = 0; l < B; l++)
                word |= (uint64_t)spqr_bits_get(t->codes, (uint64_t)r * cols + (uint64_t)g * B + l, 3) << (6 + 3 * l);
            word |= ((v >> (8 * ((r % B) / 2))) & 0xFF) << HF_SPQR_FRAG_SHIFT;
            w[word_index(cols, r, g * B)] = word;
        }
    for (int32_t r = 0; r <= rows; r++) row_offsets[r] = t->outlier_rowptr[r];
    for (int32_t r = 0; r < rows; r++)
        for (int32_t p = t->outlier_rowptr[r]; p < t->outlier_rowptr[r + 1]; p++) {
            int32_t j = t->outlier_col[p], g = j / B;
            size_t qi = 2 * ((size_t)g * (size_t)t->n_qgroups + (size_t)(r / B));
            uint32_t sq = spqr_bits_get(t->scale_codes, (uint64_t)g * rows + r, 3);
            uint32_t zq = spqr_bits_get(t->zero_codes, (uint64_t)g * rows + r, 3);
            double o = h(t->outlier_val[p]);
            /* Choose (code, rest): first a rest with w + v == o exactly, then
             * one with fp16(w + v) == o (what an import stores), then the
             * nearest; ties to the smallest rest. */
            uint32_t best = 0;
            uint16_t rest = 0;
            int best_score = -1;
            double best_d = INFINITY, best_v = INFINITY;
            for (uint32_t q = 0; q < 8; q++) {
                const float wq = spqri_hf_spqr_decode_weight(t->scale_q2[qi], t->scale_q2[qi + 1], t->zero_q2[qi],
                                                       t->zero_q2[qi + 1], sq, zq, q);
                const uint16_t v0 = half_rn(o - wq);
                const uint16_t cand[3] = {v0, (uint16_t)(v0 + 1), (uint16_t)(v0 - 1)};
                for (int c = 0; c < 3; c++) {
                    if ((cand[c] & 0x7C00) == 0x7C00) continue; /* inf or NaN */
                    const double sum = (double)wq + h(cand[c]), d = fabs(sum - o);
                    const int score = sum == o ? 2 : spqr_fp32_to_fp16(wq + spqr_fp16_to_fp32(cand[c])) == t->outlier_val[p];
                    const double av = fabs(h(cand[c]));
                    if (score > best_score || (score == best_score && (d < best_d || (d == best_d && av < best_v))))
                        best_score = score, best_d = d, best_v = av, best = q, rest = cand[c];
                }
            }
            uint64_t *word = &w[word_index(cols, r, j)];
            const int sh = 6 + 3 * (j % B);
            *word = (*word & ~((uint64_t)7 << sh)) | (uint64_t)best << sh;
            col_vals[p] = (int32_t)((uint32_t)rest << 16 | (uint32_t)j);
        }
    for (int32_t j = 0; j < cols; j += 2) {
        uint32_t a = t->perm ? (uint32_t)t->perm[j] : (uint32_t)j, b = t->perm ? (uint32_t)t->perm[j + 1] : (uint32_t)j + 1;
        in_perm[j / 2] = (int32_t)(a | b << 16);
    }
    return SPQR_OK;
}

/* The tile's second-level word from its 16 row words (rows 2b, 2b+1 carry byte b). */
static uint64_t tile_v(const uint64_t *tile) {
    uint64_t v = 0;
    for (int k = 0; k < B; k += 2) v |= (tile[k] >> HF_SPQR_FRAG_SHIFT) << (8 * (k / 2));
    return v;
}

/* Every check on the four arrays (shapes, CSR, columns, permutation,
 * second-level bytes, finite statistics and outliers); fills perm[cols]. */
static spqr_status validate(int32_t rows, int32_t cols, const int64_t *dense_weights, int64_t n_dense,
                            const int32_t *row_offsets, int64_t n_offsets, const int32_t *col_vals, int64_t n_colvals,
                            const int32_t *in_perm, int64_t n_perm, int32_t *perm, spqr_err *err) {
    if (rows <= 0 || cols <= 0 || rows % B || cols % B || cols > 32768)
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "shape [%d, %d]: %s", (int)rows, (int)cols, HF_SPQR_SUPPORTED);
    if (n_dense != hf_spqr_dense_words(rows, cols))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "dense_weights has %lld words, [%d, %d] needs %lld", (long long)n_dense,
                            (int)rows, (int)cols, (long long)hf_spqr_dense_words(rows, cols));
    if (n_offsets != (int64_t)rows + 1)
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED,
                            "row_offsets has %lld entries, not rows + 1 = %d (only CSR is supported, not PTCSR)",
                            (long long)n_offsets, (int)rows + 1);
    if (n_perm != cols / 2)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "in_perm has %lld entries, not cols / 2 = %d", (long long)n_perm, (int)cols / 2);
    if (row_offsets[0] != 0 || row_offsets[rows] != n_colvals)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "row_offsets must run from 0 to the %lld col_vals", (long long)n_colvals);
    for (int32_t r = 0; r < rows; r++)
        if (row_offsets[r + 1] < row_offsets[r])
            return spqr_err_set(err, SPQR_ERR_FORMAT, "row_offsets decrease at row %d", (int)r);
    for (int64_t p = 0; p < n_colvals; p++)
        if (((uint32_t)col_vals[p] & 0xFFFF) >= (uint32_t)cols)
            return spqr_err_set(err, SPQR_ERR_FORMAT, "col_vals: column %u is out of range",
                                (unsigned)((uint32_t)col_vals[p] & 0xFFFF));
    uint8_t *seen = calloc((size_t)cols, 1);
    if (!seen) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    spqr_status st = SPQR_OK;
    for (int32_t j = 0; j < cols && !st; j++) {
        uint32_t v = (uint32_t)in_perm[j / 2];
        perm[j] = (int32_t)(j % 2 ? v >> 16 : v & 0xFFFF);
        if (perm[j] >= cols || seen[perm[j]])
            st = spqr_err_set(err, SPQR_ERR_FORMAT, "in_perm is not a permutation of the %d columns", (int)cols);
        else seen[perm[j]] = 1;
    }
    free(seen);
    const uint64_t *w = (const uint64_t *)dense_weights;
    for (int64_t i = 0; i < n_dense && !st; i++) {
        uint64_t frag = w[i] >> HF_SPQR_FRAG_SHIFT;
        if (frag > 0xFF) st = spqr_err_set(err, SPQR_ERR_FORMAT, "dense_weights: the two top bits of a word are set");
        else if (i % 2 && frag != (w[i - 1] >> HF_SPQR_FRAG_SHIFT))
            st = spqr_err_set(err, SPQR_ERR_FORMAT, "dense_weights: rows %d and %d of a tile carry different second-level bytes",
                              (int)(i % B) - 1, (int)(i % B));
    }
    /* a non-finite second-level scale or zero would decode to NaN weights */
    for (int32_t ti = 0; ti < rows / B && !st; ti++)
        for (int32_t tj = 0; tj < cols / B && !st; tj++) {
            const uint64_t v = tile_v(w + word_index(cols, ti * B, tj * B));
            for (int k = 0; k < 4 && !st; k++)
                if (((v >> 16 * k) & 0x7C00) == 0x7C00)
                    st = spqr_err_set(err, SPQR_ERR_FORMAT,
                                      "dense_weights: the tile at rows %d, columns %d holds a non-finite fp16 statistic",
                                      (int)(ti * B), (int)(tj * B));
        }
    for (int64_t p = 0; p < n_colvals && !st; p++)
        if ((((uint32_t)col_vals[p] >> 16) & 0x7C00) == 0x7C00)
            st = spqr_err_set(err, SPQR_ERR_FORMAT, "col_vals: entry %lld holds a non-finite fp16 value", (long long)p);
    return st;
}

spqr_status spqri_hf_spqr_decode(int32_t rows, int32_t cols, const int64_t *dense_weights, int64_t n_dense,
                           const int32_t *row_offsets, int64_t n_offsets, const int32_t *col_vals, int64_t n_colvals,
                           const int32_t *in_perm, int64_t n_perm, float *W, spqr_err *err) {
    int32_t *perm = malloc((size_t)(cols > 0 ? cols : 1) * sizeof *perm);
    if (!perm) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    spqr_status st = validate(rows, cols, dense_weights, n_dense, row_offsets, n_offsets, col_vals, n_colvals, in_perm,
                              n_perm, perm, err);
    const uint64_t *w = (const uint64_t *)dense_weights;
    for (int32_t ti = 0; ti < rows / B && !st; ti++)
        for (int32_t tj = 0; tj < cols / B; tj++) {
            const uint64_t *tile = w + word_index(cols, ti * B, tj * B);
            const uint64_t v = tile_v(tile);
            for (int k = 0; k < B; k++) {
                uint32_t sq = tile[k] & 7, zq = (tile[k] >> 3) & 7;
                for (int l = 0; l < B; l++) {
                    uint32_t q = (tile[k] >> (6 + 3 * l)) & 7;
                    W[(size_t)(ti * B + k) * cols + perm[tj * B + l]] = spqri_hf_spqr_decode_weight(
                        (uint16_t)v, (uint16_t)(v >> 32), (uint16_t)(v >> 16), (uint16_t)(v >> 48), sq, zq, q);
                }
            }
        }
    for (int32_t r = 0; r < rows && !st; r++)
        for (int32_t p = row_offsets[r]; p < row_offsets[r + 1]; p++) {
            uint32_t cv = (uint32_t)col_vals[p];
            W[(size_t)r * cols + perm[cv & 0xFFFF]] += spqr_fp16_to_fp32((uint16_t)(cv >> 16));
        }
    free(perm);
    return st;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a & 0xFFFF, y = *(const uint32_t *)b & 0xFFFF;
    return (x > y) - (x < y);
}

spqr_status spqri_hf_spqr_to_tensor(int32_t rows, int32_t cols, const int64_t *dense_weights, int64_t n_dense,
                              const int32_t *row_offsets, int64_t n_offsets, const int32_t *col_vals, int64_t n_colvals,
                              const int32_t *in_perm, int64_t n_perm, spqr_tensor **out, spqr_err *err) {
    *out = NULL;
    int32_t *perm = malloc((size_t)(cols > 0 ? cols : 1) * sizeof *perm);
    if (!perm) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    spqr_status st = validate(rows, cols, dense_weights, n_dense, row_offsets, n_offsets, col_vals, n_colvals, in_perm,
                              n_perm, perm, err);
    spqr_tensor *t = NULL;
    if (!st) st = spqr_tensor_alloc(rows, cols, HF_SPQR_BITS, B, HF_SPQR_BITS, HF_SPQR_BITS, B, n_colvals, 1, &t, err);
    uint8_t *codes = st ? NULL : malloc((size_t)rows * cols), *sc = st ? NULL : malloc((size_t)rows * (cols / B));
    uint8_t *zc = st ? NULL : malloc((size_t)rows * (cols / B));
    uint32_t *row = st ? NULL : malloc(sizeof *row * (size_t)(cols + 1));
    if (!st && (!codes || !sc || !zc || !row)) st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    const uint64_t *w = (const uint64_t *)dense_weights;
    for (int32_t ti = 0; ti < rows / B && !st; ti++)
        for (int32_t tj = 0; tj < cols / B; tj++) {
            const uint64_t *tile = w + word_index(cols, ti * B, tj * B);
            const uint64_t v = tile_v(tile);
            size_t qi = 2 * ((size_t)tj * (size_t)(rows / B) + (size_t)ti);
            t->scale_q2[qi] = (uint16_t)v, t->scale_q2[qi + 1] = (uint16_t)(v >> 32);
            t->zero_q2[qi] = (uint16_t)(v >> 16), t->zero_q2[qi + 1] = (uint16_t)(v >> 48);
            for (int k = 0; k < B; k++) {
                const int32_t r = ti * B + k;
                sc[(size_t)tj * rows + r] = tile[k] & 7;
                zc[(size_t)tj * rows + r] = (tile[k] >> 3) & 7;
                for (int l = 0; l < B; l++) codes[(size_t)r * cols + tj * B + l] = (tile[k] >> (6 + 3 * l)) & 7;
            }
        }
    if (!st) {
        spqr_bits_pack(codes, (uint64_t)rows * cols, 3, t->codes);
        spqr_bits_pack(sc, (uint64_t)rows * (cols / B), 3, t->scale_codes);
        spqr_bits_pack(zc, (uint64_t)rows * (cols / B), 3, t->zero_codes);
        memcpy(t->perm, perm, (size_t)cols * sizeof *perm);
    }
    /* Our outlier replaces the weight: the format's w + v, rounded to fp16
     * once; columns sorted, a repeated column refused. */
    for (int32_t r = 0; r < rows && !st; r++) {
        const int32_t b = row_offsets[r], n = row_offsets[r + 1] - b;
        t->outlier_rowptr[r] = b;
        memcpy(row, col_vals + b, (size_t)n * sizeof *row);
        qsort(row, (size_t)n, sizeof *row, cmp_u32);
        for (int32_t i = 0; i < n && !st; i++) {
            const uint32_t c = row[i] & 0xFFFF;
            if (i && c == (row[i - 1] & 0xFFFF)) {
                st = spqr_err_set(err, SPQR_ERR_FORMAT, "col_vals: column %u appears twice in row %d", c, (int)r);
                break;
            }
            const uint64_t word = w[word_index(cols, r, (int32_t)c)];
            const uint64_t v = tile_v(w + word_index(cols, r - r % B, (int32_t)c));
            const float wq = spqri_hf_spqr_decode_weight((uint16_t)v, (uint16_t)(v >> 32), (uint16_t)(v >> 16),
                                                   (uint16_t)(v >> 48), word & 7, (word >> 3) & 7,
                                                   (word >> (6 + 3 * (c % B))) & 7);
            t->outlier_col[b + i] = (uint16_t)c;
            t->outlier_val[b + i] = spqr_fp32_to_fp16(wq + spqr_fp16_to_fp32((uint16_t)(row[i] >> 16)));
            if ((t->outlier_val[b + i] & 0x7C00) == 0x7C00)
                st = spqr_err_set(err, SPQR_ERR_FORMAT, "col_vals: the outlier at row %d, column %u is not a finite fp16",
                                  (int)r, c);
        }
    }
    if (!st) t->outlier_rowptr[rows] = row_offsets[rows];
    if (!st) st = spqr_tensor_check(t, err);
    free(codes);
    free(sc);
    free(zc);
    free(row);
    free(perm);
    if (st) spqr_tensor_free(t);
    else *out = t;
    return st;
}
