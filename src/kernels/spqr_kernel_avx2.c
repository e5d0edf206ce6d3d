/* AVX2 + FMA + F16C path: the AVX-512 scheme on two ymm halves (rows 0-7,
 * 8-15) of each code-block dword vector: per column, AND (or shift) the
 * field out of the dword lanes, convert, FMA with the pre-scaled x. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <string.h>

#include "format/tensor.h"
#include "kernels/spqr_kernel.h"

#define T256 __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

/* Block column j's codes of rows 8*half..8*half+7 as fp32 (times 2^shift
 * when scaled and kt_xscale says so). */
T256 INLINE __m256 field8(const uint32_t *blk, const int B, const int j, const int half, const int scaled) {
    const int d = kt_field_dword(B, j), s = kt_field_shift(B, j);
    const __m256i v = _mm256_load_si256((const __m256i *)(blk + d * KT_R + 8 * half));
    const __m256i m = _mm256_set1_epi32((int)((1u << B) - 1u));
    __m256i f;
    if (s + B < 32) f = scaled ? _mm256_and_si256(v, _mm256_set1_epi32((int)(((1u << B) - 1u) << s)))
                               : _mm256_and_si256(_mm256_srli_epi32(v, s), m);
    else if (s + B == 32) f = _mm256_srli_epi32(v, s);
    else {
        const __m256i w = _mm256_load_si256((const __m256i *)(blk + (d + 1) * KT_R + 8 * half));
        f = _mm256_and_si256(_mm256_or_si256(_mm256_srli_epi32(v, s), _mm256_slli_epi32(w, 32 - s)), m);
    }
    return _mm256_cvtepi32_ps(f);
}

T256 INLINE void half16(const uint32_t *blk, const float *x, const int B, const int h, __m256 lo[2], __m256 hi[2]) {
#pragma GCC unroll 16
    for (int c = 0; c < KT_C; c++) {
        const __m256 xb = _mm256_set1_ps(x[c]);
        lo[c & 1] = _mm256_fmadd_ps(field8(blk, B, h * KT_C + c, 0, 1), xb, lo[c & 1]);
        hi[c & 1] = _mm256_fmadd_ps(field8(blk, B, h * KT_C + c, 1, 1), xb, hi[c & 1]);
    }
}

T256 INLINE void matvec_b(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *y, const int B) {
    const int32_t ctpg = kt->ct_per_group, bu = kt->blk_u32;
    float s[KT_R], z[KT_R];
    for (int32_t rt = rt0; rt < rt1; rt++) {
        const uint32_t *cb = kt->codes + (size_t)rt * kt->n_cblocks * bu;
        const float *x = in->x2;
        int32_t t = 0;
        __m256 ylo = _mm256_setzero_ps(), yhi = _mm256_setzero_ps();
        float corr[KT_R] = {0};
        for (int32_t g = 0; g < kt->n_groups; g++) {
            __m256 lo[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, hi[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
            for (int32_t k = 0; k < ctpg; k++, t++, x += KT_C) {
                if (t & 1) half16(cb + (size_t)(t >> 1) * bu, x, B, 1, lo, hi);
                else half16(cb + (size_t)(t >> 1) * bu, x, B, 0, lo, hi);
            }
            kt_stats_scalar(kt, rt, g, s, z);
            const __m256 xs = _mm256_set1_ps(in->xs[g]);
            ylo = _mm256_fmadd_ps(_mm256_loadu_ps(s), _mm256_fnmadd_ps(_mm256_loadu_ps(z), xs, _mm256_add_ps(lo[0], lo[1])), ylo);
            yhi = _mm256_fmadd_ps(_mm256_loadu_ps(s + 8), _mm256_fnmadd_ps(_mm256_loadu_ps(z + 8), xs, _mm256_add_ps(hi[0], hi[1])), yhi);
        }
        for (int32_t o = kt->o_ptr[rt]; o < kt->o_ptr[rt + 1]; o++) corr[kt->o_row[o]] += kt->o_corr[o] * in->xq[kt->o_col[o]];
        float out[KT_R];
        _mm256_storeu_ps(out, _mm256_add_ps(ylo, _mm256_loadu_ps(corr)));
        _mm256_storeu_ps(out + 8, _mm256_add_ps(yhi, _mm256_loadu_ps(corr + 8)));
        for (int i = 0; i < KT_R && rt * KT_R + i < kt->rows; i++) y[rt * KT_R + i] = out[i];
    }
}

T256 void kt_matvec_avx2(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    KT_WBITS_DISPATCH(kt->wbits, matvec_b, kt, in, rt0, rt1, Y);
}

/* A 16x16 code tile widened to qt[16 columns][16 rows] fp32. */
T256 INLINE void widen16(const uint32_t *blk, const int B, const int h, float qt[KT_C][KT_R]) {
#pragma GCC unroll 16
    for (int c = 0; c < KT_C; c++) {
        _mm256_store_ps(qt[c], field8(blk, B, h * KT_C + c, 0, 0));
        _mm256_store_ps(qt[c] + 8, field8(blk, B, h * KT_C + c, 1, 0));
    }
}

/* Batch: a code tile is widened once and applied to all n (<= 64) inputs. */
T256 INLINE void matmul_b(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y, const int B) {
    const int32_t ctpg = kt->ct_per_group, n = in->n;
    float qt[KT_C][KT_R] __attribute__((aligned(32)));
    float ya[64][KT_R] __attribute__((aligned(32))), ga[64][KT_R] __attribute__((aligned(32)));
    float s[KT_R], z[KT_R];
    for (int32_t rt = rt0; rt < rt1; rt++) {
        memset(ya, 0, sizeof(float) * KT_R * (size_t)n);
        for (int32_t g = 0; g < kt->n_groups; g++) {
            memset(ga, 0, sizeof(float) * KT_R * (size_t)n);
            for (int32_t k = 0; k < ctpg; k++) {
                const int32_t t = g * ctpg + k;
                if (t & 1) widen16(kt_block(kt, rt, t), B, 1, qt);
                else widen16(kt_block(kt, rt, t), B, 0, qt);
                const size_t col0 = (size_t)t * KT_C;
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
        for (int32_t o = kt->o_ptr[rt]; o < kt->o_ptr[rt + 1]; o++) {
            const int32_t c = kt->o_col[o], i = kt->o_row[o];
            const float d = kt->o_corr[o];
            for (int32_t j = 0; j < n; j++) ya[j][i] += d * in->xq[(size_t)j * kt->cols + c];
        }
        for (int32_t j = 0; j < n; j++)
            for (int i = 0; i < KT_R && rt * KT_R + i < kt->rows; i++) Y[(size_t)j * kt->rows + rt * KT_R + i] = ya[j][i];
    }
}

T256 void kt_matmul_avx2(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    KT_WBITS_DISPATCH(kt->wbits, matmul_b, kt, in, rt0, rt1, Y);
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
