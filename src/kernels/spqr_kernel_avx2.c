/* AVX2 + FMA + F16C path: the AVX-512 scheme on two ymm halves (rows 0-7,
 * 8-15). Without mask registers, bit i of a plane word is moved to the
 * sign bit of lane i (variable shift) and selects x_c with blendv. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <string.h>

#include "format/tensor.h"
#include "kernels/spqr_kernel.h"

#define T256 __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

INLINE uint32_t tile_code(const uint16_t *m, int B, int i, int cc) {
    uint32_t q = 0;
    for (int p = 0; p < B; p++) q |= (uint32_t)((m[cc * B + p] >> i) & 1u) << p;
    return q;
}

T256 INLINE void matvec_b(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *y, const int B) {
    const int32_t gs = kt->groupsize, ctpg = kt->ct_per_group;
    const __m256i sh_lo = _mm256_setr_epi32(31, 30, 29, 28, 27, 26, 25, 24);
    const __m256i sh_hi = _mm256_setr_epi32(23, 22, 21, 20, 19, 18, 17, 16);
    const __m256 zero = _mm256_setzero_ps();
    float s[KT_R], z[KT_R];
    for (int32_t rt = rt0; rt < rt1; rt++) {
        const uint16_t *m = kt->codes + (size_t)rt * kt->n_ctiles * kt->tile_u16;
        const float *xp = in->xp;
        int32_t o = kt->o_ptr[rt];
        const int32_t oend = kt->o_ptr[rt + 1];
        __m256 ylo = zero, yhi = zero;
        float corr[KT_R] = {0};
        for (int32_t g = 0; g < kt->n_groups; g++) {
            const uint16_t *mg = m;
            __m256 alo[8], ahi[8];
            for (int p = 0; p < B; p++) alo[p] = ahi[p] = zero;
            for (int32_t k = 0; k < ctpg; k++) {
                for (int c = 0; c < KT_C; c++) {
                    const __m256 x = _mm256_set1_ps(xp[c]);
                    for (int p = 0; p < B; p++) {
                        const __m256i w = _mm256_set1_epi32(m[c * B + p]);
                        alo[p] = _mm256_add_ps(alo[p], _mm256_blendv_ps(zero, x, _mm256_castsi256_ps(_mm256_sllv_epi32(w, sh_lo))));
                        ahi[p] = _mm256_add_ps(ahi[p], _mm256_blendv_ps(zero, x, _mm256_castsi256_ps(_mm256_sllv_epi32(w, sh_hi))));
                    }
                }
                m += KT_C * B;
                xp += KT_C;
            }
            __m256 dlo = alo[B - 1], dhi = ahi[B - 1];
            const __m256 two = _mm256_set1_ps(2.0f);
            for (int p = B - 2; p >= 0; p--) {
                dlo = _mm256_fmadd_ps(dlo, two, alo[p]);
                dhi = _mm256_fmadd_ps(dhi, two, ahi[p]);
            }
            kt_stats_scalar(kt, rt, g, s, z);
            const __m256 xs = _mm256_set1_ps(in->xs[g]);
            ylo = _mm256_fmadd_ps(_mm256_loadu_ps(s), _mm256_fnmadd_ps(_mm256_loadu_ps(z), xs, dlo), ylo);
            yhi = _mm256_fmadd_ps(_mm256_loadu_ps(s + 8), _mm256_fnmadd_ps(_mm256_loadu_ps(z + 8), xs, dhi), yhi);
            while (o < oend && (int32_t)kt->o_col[o] < (g + 1) * gs) {
                const int32_t c = kt->o_col[o], i = kt->o_row[o], off = c - g * gs;
                const uint32_t q = tile_code(mg + (size_t)(off / KT_C) * KT_C * B, B, i, off % KT_C);
                corr[i] += (_cvtsh_ss(kt->o_val[o]) - spqr_weight_dq(s[i], q, z[i])) * in->xq[c];
                o++;
            }
        }
        float out[KT_R];
        _mm256_storeu_ps(out, _mm256_add_ps(ylo, _mm256_loadu_ps(corr)));
        _mm256_storeu_ps(out + 8, _mm256_add_ps(yhi, _mm256_loadu_ps(corr + 8)));
        for (int i = 0; i < KT_R && rt * KT_R + i < kt->rows; i++) y[rt * KT_R + i] = out[i];
    }
}

T256 void kt_matvec_avx2(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    switch (kt->wbits) {
    case 2: matvec_b(kt, in, rt0, rt1, Y, 2); break;
    case 3: matvec_b(kt, in, rt0, rt1, Y, 3); break;
    case 4: matvec_b(kt, in, rt0, rt1, Y, 4); break;
    case 5: matvec_b(kt, in, rt0, rt1, Y, 5); break;
    case 6: matvec_b(kt, in, rt0, rt1, Y, 6); break;
    case 7: matvec_b(kt, in, rt0, rt1, Y, 7); break;
    default: matvec_b(kt, in, rt0, rt1, Y, 8); break;
    }
}

/* Batch: a code tile is widened once into qt[16 columns][16 rows] fp32 and
 * applied to all n (<= 64) inputs. */
T256 void kt_matmul_avx2(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    const int32_t gs = kt->groupsize, ctpg = kt->ct_per_group, n = in->n, B = kt->wbits;
    float qt[KT_C][KT_R] __attribute__((aligned(32)));
    float ya[64][KT_R] __attribute__((aligned(32))), ga[64][KT_R] __attribute__((aligned(32)));
    float s[KT_R], z[KT_R];
    for (int32_t rt = rt0; rt < rt1; rt++) {
        const uint16_t *m = kt->codes + (size_t)rt * kt->n_ctiles * kt->tile_u16;
        memset(ya, 0, sizeof(float) * KT_R * (size_t)n);
        for (int32_t g = 0; g < kt->n_groups; g++) {
            memset(ga, 0, sizeof(float) * KT_R * (size_t)n);
            for (int32_t k = 0; k < ctpg; k++) {
                for (int c = 0; c < KT_C; c++)
                    for (int i = 0; i < KT_R; i++) qt[c][i] = (float)tile_code(m, B, i, c);
                const size_t col0 = ((size_t)g * ctpg + k) * KT_C;
                for (int32_t j = 0; j < n; j++) {
                    const float *x = in->xp + (size_t)j * kt->padcols + col0;
                    __m256 lo = _mm256_load_ps(ga[j]), hi = _mm256_load_ps(ga[j] + 8);
                    for (int c = 0; c < KT_C; c++) {
                        const __m256 xb = _mm256_set1_ps(x[c]);
                        lo = _mm256_fmadd_ps(_mm256_load_ps(qt[c]), xb, lo);
                        hi = _mm256_fmadd_ps(_mm256_load_ps(qt[c] + 8), xb, hi);
                    }
                    _mm256_store_ps(ga[j], lo);
                    _mm256_store_ps(ga[j] + 8, hi);
                }
                m += KT_C * B;
            }
            kt_stats_scalar(kt, rt, g, s, z);
            for (int32_t j = 0; j < n; j++) {
                const __m256 xs = _mm256_set1_ps(in->xs[(size_t)j * kt->n_groups + g]);
                for (int h = 0; h < 2; h++) {
                    const __m256 t = _mm256_fnmadd_ps(_mm256_loadu_ps(z + 8 * h), xs, _mm256_load_ps(ga[j] + 8 * h));
                    _mm256_store_ps(ya[j] + 8 * h, _mm256_fmadd_ps(_mm256_loadu_ps(s + 8 * h), t, _mm256_load_ps(ya[j] + 8 * h)));
                }
            }
        }
        int32_t gcur = -1;
        const uint16_t *mt = kt->codes + (size_t)rt * kt->n_ctiles * kt->tile_u16;
        for (int32_t o = kt->o_ptr[rt]; o < kt->o_ptr[rt + 1]; o++) {
            const int32_t c = kt->o_col[o], i = kt->o_row[o], g = c / gs, off = c - g * gs;
            if (g != gcur) {
                kt_stats_scalar(kt, rt, g, s, z);
                gcur = g;
            }
            const uint32_t q = tile_code(mt + ((size_t)g * ctpg + off / KT_C) * KT_C * B, B, i, off % KT_C);
            const float d = _cvtsh_ss(kt->o_val[o]) - spqr_weight_dq(s[i], q, z[i]);
            for (int32_t j = 0; j < n; j++) ya[j][i] += d * in->xq[(size_t)j * kt->cols + c];
        }
        for (int32_t j = 0; j < n; j++)
            for (int i = 0; i < KT_R && rt * KT_R + i < kt->rows; i++) Y[(size_t)j * kt->rows + rt * KT_R + i] = ya[j][i];
    }
}
#else
#include "kernels/spqr_kernel.h"
void kt_matvec_avx2(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    kt_matmul_scalar(kt, in, rt0, rt1, Y);
}
void kt_matmul_avx2(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    kt_matmul_scalar(kt, in, rt0, rt1, Y);
}
#endif
