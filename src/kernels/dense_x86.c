/* x86 dense dot products of the linear layers (AVX2 + F16C + FMA, AVX-512),
 * behind the dense ops tables dense_ops_avx2 and dense_ops_avx512. The dense
 * fp16 matvec is the decode hot path and memory-bound: these only need to
 * convert and multiply-add as fast as the weights stream in. Each function
 * carries its target attribute and is picked at run time (kernels/cpu.h);
 * on other architectures the file compiles to plain C stand-ins. */
#include "kernels/dense.h"
#include "kernels/kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* ---- AVX2 + F16C + FMA ---- */

__attribute__((target("avx2,f16c,fma"))) static float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,f16c,fma"))) float dense_dot_f16_avx2(const uint16_t *w, const float *x, int32_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int32_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i))), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8))), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 16))), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 24))), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i))), _mm256_loadu_ps(x + i), a0);
    float acc = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) acc += dense_h2f(w[i]) * x[i];
    return acc;
}

__attribute__((target("avx2,f16c,fma"))) float dense_dot_bf16_avx2(const uint16_t *w, const float *x, int32_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h0 = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + i)));
        __m256i h1 = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + i + 8)));
        a0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(h0, 16)), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(h1, 16)), _mm256_loadu_ps(x + i + 8), a1);
    }
    float acc = hsum256(_mm256_add_ps(a0, a1));
    for (; i < n; i++) acc += dense_b2f(w[i]) * x[i];
    return acc;
}

__attribute__((target("avx2,f16c,fma"))) float dense_dot_f32_avx2(const float *w, const float *x, int32_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
    }
    float acc = hsum256(_mm256_add_ps(a0, a1));
    for (; i < n; i++) acc += w[i] * x[i];
    return acc;
}

/* ---- AVX-512F ---- */

__attribute__((target("avx512f"))) float dense_dot_f16_avx512(const uint16_t *w, const float *x, int32_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int32_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i))), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i + 16))), _mm512_loadu_ps(x + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i + 32))), _mm512_loadu_ps(x + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i + 48))), _mm512_loadu_ps(x + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16)
        a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i))), _mm512_loadu_ps(x + i), a0);
    float acc = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    for (; i < n; i++) acc += dense_h2f(w[i]) * x[i];
    return acc;
}

/* Four rows at once, each with exactly dot_f16_avx512's arithmetic (so the
 * same bits): x is loaded once for four rows. With long rows x spills out
 * of L1 (11008 inputs = 44 KB of fp32), and reading it from L2 once per
 * row held the 4096x11008 fp16 matvec to ~60% of the rate of the
 * 4096-column shapes. out[r] = row r's dot. */
__attribute__((target("avx512f"))) void dense_dot4_f16_avx512(const uint16_t *w, size_t stride, const float *x, int32_t n,
                                                                float out[4]) {
    __m512 a[4][4];
    for (int r = 0; r < 4; r++) a[r][0] = a[r][1] = a[r][2] = a[r][3] = _mm512_setzero_ps();
    int32_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
        const __m512 x2 = _mm512_loadu_ps(x + i + 32), x3 = _mm512_loadu_ps(x + i + 48);
        for (int r = 0; r < 4; r++) {
            const uint16_t *wr = w + (size_t)r * stride + i;
            a[r][0] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)wr)), x0, a[r][0]);
            a[r][1] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(wr + 16))), x1, a[r][1]);
            a[r][2] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(wr + 32))), x2, a[r][2]);
            a[r][3] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(wr + 48))), x3, a[r][3]);
        }
    }
    for (; i + 16 <= n; i += 16)
        for (int r = 0; r < 4; r++)
            a[r][0] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + (size_t)r * stride + i))),
                                      _mm512_loadu_ps(x + i), a[r][0]);
    for (int r = 0; r < 4; r++) {
        float acc = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[r][0], a[r][1]), _mm512_add_ps(a[r][2], a[r][3])));
        for (int32_t j = i; j < n; j++) acc += dense_h2f(w[(size_t)r * stride + j]) * x[j];
        out[r] = acc;
    }
}

__attribute__((target("avx512f"))) float dense_dot_bf16_avx512(const uint16_t *w, const float *x, int32_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    int32_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512i h0 = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w + i)));
        __m512i h1 = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w + i + 16)));
        a0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(h0, 16)), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(h1, 16)), _mm512_loadu_ps(x + i + 16), a1);
    }
    float acc = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    for (; i < n; i++) acc += dense_b2f(w[i]) * x[i];
    return acc;
}

__attribute__((target("avx512f"))) float dense_dot_f32_avx512(const float *w, const float *x, int32_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    int32_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
    }
    float acc = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    for (; i < n; i++) acc += w[i] * x[i];
    return acc;
}

__attribute__((target("avx2,f16c,fma"))) void dense_widen_f16_avx2(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = dense_h2f(src[i]);
}

__attribute__((target("avx512f"))) void dense_widen_f16_avx512(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    for (; i < n; i++) dst[i] = dense_h2f(src[i]);
}
#else
/* Never picked here (the detector finds no x86 features); plain C so the library links. */
float dense_dot_f32_avx2(const float *w, const float *x, int32_t n) { return dense_dot_f32_scalar(w, x, n); }
float dense_dot_f16_avx2(const uint16_t *w, const float *x, int32_t n) { return dense_dot_f16_scalar(w, x, n); }
float dense_dot_bf16_avx2(const uint16_t *w, const float *x, int32_t n) { return dense_dot_bf16_scalar(w, x, n); }
float dense_dot_f32_avx512(const float *w, const float *x, int32_t n) { return dense_dot_f32_scalar(w, x, n); }
float dense_dot_f16_avx512(const uint16_t *w, const float *x, int32_t n) { return dense_dot_f16_scalar(w, x, n); }
float dense_dot_bf16_avx512(const uint16_t *w, const float *x, int32_t n) { return dense_dot_bf16_scalar(w, x, n); }
void dense_dot4_f16_avx512(const uint16_t *w, size_t stride, const float *x, int32_t n, float out[4]) {
    for (int r = 0; r < 4; r++) out[r] = dense_dot_f16_scalar(w + (size_t)r * stride, x, n);
}
void dense_widen_f16_avx2(const uint16_t *src, float *dst, size_t n) { dense_widen_f16_scalar(src, dst, n); }
void dense_widen_f16_avx512(const uint16_t *src, float *dst, size_t n) { dense_widen_f16_scalar(src, dst, n); }
#endif

const spqr_dense_ops dense_ops_avx2 = {"avx2+f16c",
                                       spqr_cpu_has_avx2,
                                       {(dense_dot_fn)dense_dot_f32_avx2, (dense_dot_fn)dense_dot_f16_avx2,
                                        (dense_dot_fn)dense_dot_bf16_avx2},
                                       NULL,
                                       dense_widen_f16_avx2,
                                       dense_widen_bf16_scalar};
const spqr_dense_ops dense_ops_avx512 = {"avx512f",
                                         spqr_cpu_has_avx512,
                                         {(dense_dot_fn)dense_dot_f32_avx512, (dense_dot_fn)dense_dot_f16_avx512,
                                          (dense_dot_fn)dense_dot_bf16_avx512},
                                         dense_dot4_f16_avx512,
                                         dense_widen_f16_avx512,
                                         dense_widen_bf16_scalar};
