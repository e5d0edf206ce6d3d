/* The kernel layout built by spqr_ktensor_from_tensor (kernels/spqr_kernel.h),
 * field by field, against the packed tensor it came from, on random tensors
 * of every wbits 2..8 and awkward shapes (rows % 16 != 0, cols not a
 * multiple of 16 or of the group size, groups of 1, 5, 24, 40, 100 columns,
 * fp16 and 2..8-bit statistics, qq groups of 7, duplicated outliers):
 *  - codes: the whole array equals one assembled code by code from
 *    spqr_bits_get with the documented padding (padded rows and columns 0),
 *    with the code 0 at every outlier, and kt_code_at agrees everywhere;
 *  - statistics: the whole array equals one packed bit by bit, and
 *    spqri_kt_stats_scalar returns exactly spqr_tensor_scale / spqr_tensor_zero;
 *  - outliers: per row tile, the brute-force list of the last CSR entry of
 *    every (row, column), in (column, row) order, with o_corr exactly
 *    value - s * (0 - z). */
#include <stdint.h>
#include <stdlib.h>

#include "format/tensor.h"
#include "kernels/spqr_kernel.h"
#include "spqr.h"
#include "test_tensor_util.h"
#include "test_util.h"

typedef struct {
    int32_t rows, cols, wbits, gs, qs, qz, qqgs;
    double outlier_share;
    int perm, dup;
} cfg;

static uint16_t h(float f) { return spqr_fp32_to_fp16(f); }

static void random_codes(uint8_t *dst, uint64_t n, int bits, test_rng *rng) {
    uint8_t *v = malloc(n ? n : 1);
    for (uint64_t i = 0; i < n; i++) v[i] = (uint8_t)(test_rng_next(rng) % (1u << bits));
    spqr_bits_pack(v, n, bits, dst);
    free(v);
}

static spqr_tensor *random_tensor(const cfg *c, test_rng *rng) {
    const int32_t gs = c->gs > 0 ? c->gs : c->cols, n_groups = (c->cols + gs - 1) / gs;
    /* CSR columns out of order, and a later duplicate of one entry */
    spqr_tensor *t = test_packed_alloc(c->rows, c->cols, c->wbits, gs, c->qs, c->qz, c->qqgs, c->perm, c->outlier_share, 1,
                                       c->dup ? TEST_DUP_RANDOM : TEST_DUP_NONE, rng);
    random_codes(t->codes, (uint64_t)c->rows * c->cols, c->wbits, rng);
    const uint64_t ns = (uint64_t)n_groups * c->rows;
    const int64_t n2 = (int64_t)n_groups * t->n_qgroups;
    if (c->qs) {
        random_codes(t->scale_codes, ns, c->qs, rng);
        for (int64_t i = 0; i < 2 * n2; i++) t->scale_q2[i] = h(i % 2 ? -test_rng_uniform(rng) : 0.01f * test_rng_uniform(rng));
    } else {
        for (uint64_t i = 0; i < ns; i++) t->scale_f16[i] = h(0.05f * test_rng_normal(rng));
    }
    if (c->qz) {
        random_codes(t->zero_codes, ns, c->qz, rng);
        for (int64_t i = 0; i < 2 * n2; i++) t->zero_q2[i] = h(test_rng_normal(rng));
    } else {
        for (uint64_t i = 0; i < ns; i++) t->zero_f16[i] = h(8.0f * test_rng_uniform(rng));
    }
    if (c->perm) {
        for (int32_t j = 0; j < c->cols; j++) t->perm[j] = j;
        for (int32_t j = c->cols - 1; j > 0; j--) {
            const int32_t k = (int32_t)(test_rng_next(rng) % (uint64_t)(j + 1)), x = t->perm[j];
            t->perm[j] = t->perm[k];
            t->perm[k] = x;
        }
    }
    return t;
}

/* The CSR index of the last entry at (r, c), -1 if none. */
static int32_t last_outlier(const spqr_tensor *t, int32_t r, int32_t c) {
    int32_t last = -1;
    for (int32_t k = t->outlier_rowptr[r]; k < t->outlier_rowptr[r + 1]; k++)
        if (t->outlier_col[k] == c) last = k;
    return last;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void run_cfg(const cfg *c, test_rng *rng) {
    spqr_tensor *t = random_tensor(c, rng);
    spqr_ktensor *kt = NULL;
    spqr_err err;
    spqr_status st = spqr_ktensor_from_tensor(t, SPQR_KERNEL_SCALAR, &kt, &err);
    CHECK_MSG(st == SPQR_OK, "%s", err.msg);
    if (st != SPQR_OK) {
        spqr_tensor_free(t);
        return;
    }
    const int B = c->wbits;
    const int32_t gs = t->groupsize, span = gs < t->cols ? gs : t->cols;
    const int32_t ctg = (span + KT_C - 1) / KT_C, n_rt = (t->rows + KT_R - 1) / KT_R;
    const int32_t n_ct = t->n_groups * ctg, n_cb = (n_ct + 1) / 2;
    CHECK(kt->n_rtiles == n_rt && kt->ct_per_group == ctg && kt->n_cblocks == n_cb && kt->blk_u32 == KT_R * B);

    /* codes: the documented layout assembled code by code */
    const size_t codes_n = (size_t)n_rt * n_cb * KT_R * B;
    uint32_t *ref = calloc(codes_n, 4);
    int bad_at = 0;
    for (int32_t r = 0; r < t->rows; r++)
        for (int32_t g = 0; g < t->n_groups; g++)
            for (int32_t off = 0; off < span && g * gs + off < t->cols; off++) {
                const int32_t cidx = g * gs + off, ct = g * ctg + off / KT_C, j = (ct & 1) * KT_C + off % KT_C;
                const uint64_t q = last_outlier(t, r, cidx) >= 0
                                       ? 0
                                       : spqr_bits_get(t->codes, (uint64_t)r * t->cols + (uint64_t)cidx, B);
                uint32_t *blk = ref + ((size_t)(r / KT_R) * n_cb + (size_t)(ct / 2)) * KT_R * B + r % KT_R;
                const int d = (j * B) / 32, sh = (j * B) % 32;
                blk[d * KT_R] |= (uint32_t)(q << sh);
                if (sh + B > 32) blk[(d + 1) * KT_R] |= (uint32_t)(q >> (32 - sh));
                bad_at += kt_code_at(kt, r, cidx) != q;
            }
    CHECK_MSG(memcmp(ref, kt->codes, codes_n * 4) == 0, "codes differ: %dx%d w%d gs%d", c->rows, c->cols, B, c->gs);
    CHECK_MSG(bad_at == 0, "kt_code_at: %d wrong codes", bad_at);
    free(ref);

    /* statistics: the array packed bit by bit, and their fp32 values */
    const int32_t sbb = c->qs ? 2 * c->qs : 32, zbb = c->qz ? 2 * c->qz : 32;
    CHECK(kt->sb_bytes == sbb && kt->zb_bytes == zbb && kt->stat_bytes == sbb + zbb);
    const size_t stats_n = (size_t)n_rt * t->n_groups * (sbb + zbb) + 16;
    uint8_t *sref = calloc(stats_n, 1);
    int bad_s = 0;
    for (int32_t rt = 0; rt < n_rt; rt++)
        for (int32_t g = 0; g < t->n_groups; g++) {
            uint8_t *sb = sref + ((size_t)rt * t->n_groups + g) * (sbb + zbb), *zb = sb + sbb;
            float s[KT_R], z[KT_R];
            spqri_kt_stats_scalar(kt, rt, g, s, z);
            for (int i = 0; i < KT_R; i++) {
                const int32_t r = rt * KT_R + i;
                if (r >= t->rows) {
                    bad_s += s[i] != 0.0f || z[i] != 0.0f;
                    continue;
                }
                bad_s += f32_bits(s[i]) != f32_bits(spqr_tensor_scale(t, g, r));
                bad_s += f32_bits(z[i]) != f32_bits(spqr_tensor_zero(t, g, r));
                const uint64_t idx = (uint64_t)g * t->rows + (uint64_t)r;
                const uint32_t sv = c->qs ? spqr_bits_get(t->scale_codes, idx, c->qs) : t->scale_f16[idx];
                const uint32_t zv = c->qz ? spqr_bits_get(t->zero_codes, idx, c->qz) : t->zero_f16[idx];
                const int sw = c->qs ? c->qs : 16, zw = c->qz ? c->qz : 16;
                for (int k = 0; k < sw; k++)
                    if (sv >> k & 1u) sb[(i * sw + k) / 8] |= (uint8_t)(1u << ((i * sw + k) % 8));
                for (int k = 0; k < zw; k++)
                    if (zv >> k & 1u) zb[(i * zw + k) / 8] |= (uint8_t)(1u << ((i * zw + k) % 8));
            }
        }
    CHECK_MSG(memcmp(sref, kt->stats, stats_n) == 0, "stats differ: %dx%d gs%d qs%d qz%d", c->rows, c->cols, c->gs,
              c->qs, c->qz);
    CHECK_MSG(bad_s == 0, "spqri_kt_stats_scalar: %d wrong values", bad_s);
    free(sref);

    /* outliers: brute force over every (row, column) of each row tile */
    int bad_o = 0;
    int64_t o = 0;
    CHECK(kt->o_ptr[0] == 0);
    for (int32_t rt = 0; rt < n_rt; rt++) {
        for (int i = 0; i < KT_R; i++) {
            bad_o += kt->o_rptr[rt * KT_R + i] != o; /* row pointers; padded rows are empty */
            for (int32_t cidx = 0; cidx < t->cols && rt * KT_R + i < t->rows; cidx++) {
                const int32_t k = last_outlier(t, rt * KT_R + i, cidx);
                if (k < 0) continue;
                if (o >= kt->o_ptr[rt + 1]) {
                    bad_o++;
                    continue;
                }
                float s[KT_R], z[KT_R];
                spqri_kt_stats_scalar(kt, rt, cidx / gs, s, z);
                const float corr = spqr_fp16_to_fp32(t->outlier_val[k]) - s[i] * (0.0f - z[i]);
                bad_o += kt->o_col[o] != cidx || kt->o_row[o] != i || kt->o_val[o] != t->outlier_val[k] ||
                         f32_bits(kt->o_corr[o]) != f32_bits(corr);
                o++;
            }
        }
        bad_o += kt->o_ptr[rt + 1] != o;
        o = kt->o_ptr[rt + 1];
    }
    bad_o += kt->o_rptr[n_rt * KT_R] != o;
    CHECK_MSG(bad_o == 0 && kt->nnz == o, "outliers: %d mismatches (%dx%d)", bad_o, c->rows, c->cols);
    if (t->perm) CHECK(memcmp(kt->perm, t->perm, (size_t)t->cols * 4) == 0);
    else CHECK(kt->perm == NULL);
    spqr_ktensor_free(kt);
    spqr_tensor_free(t);
}

int main(void) {
    test_rng rng = {0x2545f4914f6cdd1dull};
    for (int b = 2; b <= 8; b++) {
        const int q = b > 2 ? b - 1 : 2;
        const cfg cs[] = {
            {64, 256, b, 16, 3, 3, 16, 0.01, 1, 0},  /* the paper's layout */
            {37, 203, b, 16, 3, 3, 16, 0.03, 0, 1},  /* odd shape, tail group of 11 */
            {19, 150, b, 32, 2, 4, 16, 0.05, 1, 1},
            {33, 100, b, 0, 0, 0, 0, 0.02, 0, 0},    /* per-row groups, fp16 statistics */
            {48, 300, b, 128, 0, 3, 16, 0.30, 1, 1}, /* fp16 scales, 3-bit zeros */
            {45, 96, b, 16, b, q, 7, 0.02, 1, 0},    /* qq groups of 7, wbits-bit statistics */
            {40, 64, b, 24, 6, 8, 32, 0.0, 0, 0},    /* groups of 24: blocks span groups */
            {23, 170, b, 40, 3, 3, 16, 0.03, 1, 1},  /* groups of 40: blocks of two groups' partial tiles */
            {21, 77, b, 5, 8, 2, 16, 0.04, 1, 1},    /* groups of 5: every tile padded */
            {17, 40, b, 1, 3, 0, 16, 0.02, 0, 0},    /* groups of 1 */
            {50, 1056, b, 32, 4, 4, 16, 0.01, 1, 0}, /* many whole blocks, stream tail in the last one */
            {1, 33, b, 0, 5, 5, 1, 0.5, 0, 1},       /* one row */
            {300, 17, b, 8, 3, 3, 16, 0.1, 1, 0},    /* tall and narrow */
        };
        for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) run_cfg(&cs[i], &rng);
    }
    TEST_SUMMARY();
}
