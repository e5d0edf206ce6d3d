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

const spqr_dense_ops spqri_dense_ops_neon = {"neon", has_neon, {dot_f32_neon, dot_f16_neon, dot_bf16_neon}, NULL,
                                       widen_f16_neon, dense_widen_bf16_scalar, NULL};
#else
/* Never picked here (the detector finds no NEON): the scalar kernels, so the table exists on every target. */
const spqr_dense_ops spqri_dense_ops_neon = {"neon", has_neon, DENSE_SCALAR_DOTS, NULL, dense_widen_f16_scalar,
                                       dense_widen_bf16_scalar, NULL};
#endif
