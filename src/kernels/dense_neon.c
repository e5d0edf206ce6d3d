/* aarch64 Advanced SIMD dense dot products of the linear layers. fp16 rows
 * widen with FCVTL (vcvt_f32_f16: exact for normals, subnormals, inf and
 * NaN, part of base ARMv8 so no fp16 arithmetic extension is needed), bf16
 * rows with a 16-bit left shift, then fp32 FMAs in four accumulators (one
 * chain would wait on the FMA latency). Picked at run time by the
 * detector (kernels/cpu.h); on other architectures the file
 * compiles to plain C stand-ins. Speed on real ARM hardware has not been
 * measured (docs/kernels.md, NEON). */
#include "kernels/dense.h"
#include "kernels/kernels.h"

static int has_neon(const spqr_cpu *cpu) { return cpu->neon; }

#if defined(__aarch64__) && defined(__GNUC__)
#include <arm_neon.h>

enum { K_F32 = 0, K_F16 = 1, K_BF16 = 2 }; /* = spqr_linear_kind, the index of spqr_dense_ops.dot */

/* 4 elements of kind k -> 4 fp32, exactly. */
static inline __attribute__((always_inline)) float32x4_t ld4(const void *w, int32_t i, const int k) {
    if (k == K_F32) return vld1q_f32((const float *)w + i);
    const uint16x4_t h = vld1_u16((const uint16_t *)w + i);
    if (k == K_F16) return vcvt_f32_f16(vreinterpret_f16_u16(h));
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
}


static inline __attribute__((always_inline)) float dot_neon(const void *w, const float *x, int32_t n, const int k) {
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = vfmaq_f32(a0, ld4(w, i, k), vld1q_f32(x + i));
        a1 = vfmaq_f32(a1, ld4(w, i + 4, k), vld1q_f32(x + i + 4));
        a2 = vfmaq_f32(a2, ld4(w, i + 8, k), vld1q_f32(x + i + 8));
        a3 = vfmaq_f32(a3, ld4(w, i + 12, k), vld1q_f32(x + i + 12));
    }
    for (; i + 4 <= n; i += 4) a0 = vfmaq_f32(a0, ld4(w, i, k), vld1q_f32(x + i));
    float acc = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
    for (; i < n; i++) acc += dense_elem(w, i, k) * x[i];
    return acc;
}

static float dot_f32_neon(const void *w, const float *x, int32_t n) { return dot_neon(w, x, n, K_F32); }
static float dot_f16_neon(const void *w, const float *x, int32_t n) { return dot_neon(w, x, n, K_F16); }
static float dot_bf16_neon(const void *w, const float *x, int32_t n) { return dot_neon(w, x, n, K_BF16); }

static void widen_f16_neon(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, ld4(src, (int32_t)i, K_F16));
    for (; i < n; i++) dst[i] = dense_h2f(src[i]);
}

/* FCVTN under the default FPCR (round to nearest even, no flush to zero,
 * NaN propagation): spqr_fp32_to_fp16's bits */
static void narrow_f16_neon(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(dst + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + i))));
    dense_narrow_f16_scalar(src + i, dst + i, n - i);
}

/* rows_axpy: 16 columns of o in registers while the n rows pass, even and
 * odd rows into two sets of accumulators; the columns past the last block
 * of 4 in scalar. */
static inline __attribute__((always_inline)) void axpy_neon(const float *a, const void *V, int32_t n, int32_t hd,
                                                            float *o, const int k) {
    const size_t es = k == K_F32 ? 4 : 2;
    int32_t j = 0;
    for (; j + 16 <= hd; j += 16) {
        float32x4_t e[4], d[4];
        for (int u = 0; u < 4; u++) e[u] = vld1q_f32(o + j + 4 * u), d[u] = vdupq_n_f32(0.0f);
        int32_t i = 0;
        for (; i + 2 <= n; i += 2) {
            const char *r0 = (const char *)V + (size_t)i * hd * es, *r1 = r0 + (size_t)hd * es;
            for (int u = 0; u < 4; u++) {
                e[u] = vfmaq_n_f32(e[u], ld4(r0, j + 4 * u, k), a[i]);
                d[u] = vfmaq_n_f32(d[u], ld4(r1, j + 4 * u, k), a[i + 1]);
            }
        }
        if (i < n)
            for (int u = 0; u < 4; u++)
                e[u] = vfmaq_n_f32(e[u], ld4((const char *)V + (size_t)i * hd * es, j + 4 * u, k), a[i]);
        for (int u = 0; u < 4; u++) vst1q_f32(o + j + 4 * u, vaddq_f32(e[u], d[u]));
    }
    for (; j + 4 <= hd; j += 4) {
        float32x4_t e = vld1q_f32(o + j);
        for (int32_t i = 0; i < n; i++) e = vfmaq_n_f32(e, ld4((const char *)V + (size_t)i * hd * es, j, k), a[i]);
        vst1q_f32(o + j, e);
    }
    for (; j < hd; j++)
        for (int32_t i = 0; i < n; i++) o[j] += a[i] * dense_elem(V, i * hd + j, k);
}
static void axpy_f32_neon(const float *a, const void *V, int32_t n, int32_t hd, float *o) {
    axpy_neon(a, V, n, hd, o, K_F32);
}
static void axpy_f16_neon(const float *a, const void *V, int32_t n, int32_t hd, float *o) {
    axpy_neon(a, V, n, hd, o, K_F16);
}

const spqr_dense_ops spqri_dense_ops_neon = {"neon", has_neon, {dot_f32_neon, dot_f16_neon, dot_bf16_neon}, NULL,
                                       widen_f16_neon, dense_widen_bf16_scalar, narrow_f16_neon,
                                       {axpy_f32_neon, axpy_f16_neon}, NULL};
#else
/* Never picked here (the detector finds no NEON): the scalar kernels, so the table exists on every target. */
const spqr_dense_ops spqri_dense_ops_neon = {"neon", has_neon, DENSE_SCALAR_DOTS, NULL, dense_widen_f16_scalar,
                                       dense_widen_bf16_scalar, dense_narrow_f16_scalar, DENSE_SCALAR_AXPY, NULL};
#endif
