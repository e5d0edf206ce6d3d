/* AVX2 statistic decoding shared by the avx2 (exact) and avx2i8 paths:
 * the 16 rows' first-level statistics of a group as two 8-row halves, in
 * registers (a broadcast 16-byte load, pshufb into dword lanes, variable
 * shift, mask; vcvtph2ps for 16-bit statistics), bit-exact with
 * spqr_stat_dq / spqr_fp16_to_fp32 (s2 * (code - z2) without FMA, as the
 * reference), and the batch outlier pass both paths end with. Include only
 * from x86-64 files. */
#ifndef SPQR_KERNELS_STAT_AVX2_H
#define SPQR_KERNELS_STAT_AVX2_H

#include <immintrin.h>

#include "kernels/spqr_kernel.h"

#define KT_T256 __attribute__((target("avx2,fma,f16c")))
#define KT_INLINE static inline __attribute__((always_inline))

/* Per part (0 scale, 1 zero): byte-shuffle and shift tables of the two
 * 8-row halves, the code mask and width (0 = 16-bit statistic). */
typedef struct {
    __m256i idx[2][2], sh[2][2], mask[2]; /* [part][half], [part] */
    int bits[2];
} kt_st256;

typedef kt_rtile kt_rt256;

KT_T256 KT_INLINE void kt_st256_init(const spqr_ktensor *kt, kt_st256 *t) {
    t->bits[0] = kt->qs_bits;
    t->bits[1] = kt->qz_bits;
    for (int p = 0; p < 2; p++) {
        for (int h = 0; h < 2; h++) {
            t->idx[p][h] = _mm256_loadu_si256((const __m256i *)(kt->st_idx[p] + 32 * h));
            t->sh[p][h] = _mm256_loadu_si256((const __m256i *)(kt->st_sh[p] + 8 * h));
        }
        t->mask[p] = _mm256_set1_epi32((1 << t->bits[p]) - 1);
    }
}

/* Part p of group g's statistics at blk. pair: the row tile's (s2, z2) of
 * this group as fp32 where it has one (rc->pp[p] set), else NULL (a pair
 * per row, read here). */
KT_T256 KT_INLINE void kt_stat16_256(const spqr_ktensor *kt, const kt_st256 *t, const kt_rt256 *rc,
                                     const uint8_t *blk, int32_t g, int p, const float *pair, __m256 out[2]) {
    if (!t->bits[p]) {
        out[0] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
        out[1] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16)));
        return;
    }
    /* <= 16 code bytes; the stats array has 16 bytes of slack at its end */
    const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)blk));
    __m256 s2[2], z2[2];
    if (pair) {
        s2[0] = s2[1] = _mm256_set1_ps(pair[0]);
        z2[0] = z2[1] = _mm256_set1_ps(pair[1]);
    } else { /* qq_groupsize not a multiple of 16: a pair per row */
        float sa[KT_R], za[KT_R];
        kt_row_pairs(kt, rc->rt, g, p, sa, za);
        s2[0] = _mm256_loadu_ps(sa);
        s2[1] = _mm256_loadu_ps(sa + 8);
        z2[0] = _mm256_loadu_ps(za);
        z2[1] = _mm256_loadu_ps(za + 8);
    }
    for (int h = 0; h < 2; h++) {
        __m256i code = _mm256_srlv_epi32(_mm256_shuffle_epi8(b, t->idx[p][h]), t->sh[p][h]);
        code = _mm256_and_si256(code, t->mask[p]);
        out[h] = _mm256_mul_ps(s2[h], _mm256_sub_ps(_mm256_cvtepi32_ps(code), z2[h])); /* no FMA, as the reference */
    }
}

/* The end of a batch over row tile rt shared by the 256-bit paths: row
 * tile rt's outliers added to the sums ya[j][i] of the n inputs, row by
 * row from the transposed inputs xqt, 32 inputs at a time in four
 * independent FMA chains (one chain of 8 inputs was bound by the FMA's
 * latency), the rest 8 at a time with the last vector masked; then the
 * sums stored to Y [n][rows]. */
KT_T256 KT_INLINE void kt_batch_outliers_store_256(const spqr_ktensor *kt, const kt_input *in, int32_t rt, int32_t n,
                                                    float (*ya)[KT_R], float *Y) {
    const int32_t *rp = kt->o_rptr + (size_t)rt * KT_R;
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int i = 0; i < KT_R; i++) {
        if (rp[i + 1] == rp[i]) continue;
        int32_t j0 = 0;
        for (; j0 + 32 <= n; j0 += 32) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int32_t o = rp[i]; o < rp[i + 1]; o++) {
                const __m256 d = _mm256_set1_ps(kt->o_corr[o]);
                const float *xr = in->xqt + (size_t)kt->o_col[o] * n + j0;
                a0 = _mm256_fmadd_ps(d, _mm256_loadu_ps(xr), a0);
                a1 = _mm256_fmadd_ps(d, _mm256_loadu_ps(xr + 8), a1);
                a2 = _mm256_fmadd_ps(d, _mm256_loadu_ps(xr + 16), a2);
                a3 = _mm256_fmadd_ps(d, _mm256_loadu_ps(xr + 24), a3);
            }
            float t[32];
            _mm256_storeu_ps(t, a0), _mm256_storeu_ps(t + 8, a1), _mm256_storeu_ps(t + 16, a2), _mm256_storeu_ps(t + 24, a3);
            for (int k = 0; k < 32; k++) ya[j0 + k][i] += t[k];
        }
        for (; j0 < n; j0 += 8) { /* the last < 32 inputs, 8 at a time, the last vector masked */
            const __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - j0), iota);
            __m256 a = _mm256_setzero_ps();
            for (int32_t o = rp[i]; o < rp[i + 1]; o++)
                a = _mm256_fmadd_ps(_mm256_set1_ps(kt->o_corr[o]), _mm256_maskload_ps(in->xqt + (size_t)kt->o_col[o] * n + j0, mk), a);
            float t[8];
            _mm256_storeu_ps(t, a);
            for (int32_t k = 0; k < 8 && j0 + k < n; k++) ya[j0 + k][i] += t[k];
        }
    }
    for (int32_t j = 0; j < n; j++)
        for (int i = 0; i < KT_R && rt * KT_R + i < kt->rows; i++) Y[(size_t)j * kt->rows + rt * KT_R + i] = ya[j][i];
}

#endif
