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

#if defined(__aarch64__) && defined(__GNUC__)
#include <arm_neon.h>

/* 4 fp16 -> 4 fp32, exactly. */
static inline float32x4_t h4(const uint16_t *w) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(w))); }

static inline float32x4_t b4(const uint16_t *w) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(w), 16)); }

static inline float hsum4(float32x4_t a0, float32x4_t a1, float32x4_t a2, float32x4_t a3) {
    return vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
}

float dense_dot_f16_neon(const uint16_t *w, const float *x, int32_t n) {
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = vfmaq_f32(a0, h4(w + i), vld1q_f32(x + i));
        a1 = vfmaq_f32(a1, h4(w + i + 4), vld1q_f32(x + i + 4));
        a2 = vfmaq_f32(a2, h4(w + i + 8), vld1q_f32(x + i + 8));
        a3 = vfmaq_f32(a3, h4(w + i + 12), vld1q_f32(x + i + 12));
    }
    for (; i + 4 <= n; i += 4) a0 = vfmaq_f32(a0, h4(w + i), vld1q_f32(x + i));
    float acc = hsum4(a0, a1, a2, a3);
    for (; i < n; i++) acc += dense_h2f(w[i]) * x[i];
    return acc;
}

float dense_dot_bf16_neon(const uint16_t *w, const float *x, int32_t n) {
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = vfmaq_f32(a0, b4(w + i), vld1q_f32(x + i));
        a1 = vfmaq_f32(a1, b4(w + i + 4), vld1q_f32(x + i + 4));
        a2 = vfmaq_f32(a2, b4(w + i + 8), vld1q_f32(x + i + 8));
        a3 = vfmaq_f32(a3, b4(w + i + 12), vld1q_f32(x + i + 12));
    }
    for (; i + 4 <= n; i += 4) a0 = vfmaq_f32(a0, b4(w + i), vld1q_f32(x + i));
    float acc = hsum4(a0, a1, a2, a3);
    for (; i < n; i++) acc += dense_b2f(w[i]) * x[i];
    return acc;
}

float dense_dot_f32_neon(const float *w, const float *x, int32_t n) {
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = vfmaq_f32(a0, vld1q_f32(w + i), vld1q_f32(x + i));
        a1 = vfmaq_f32(a1, vld1q_f32(w + i + 4), vld1q_f32(x + i + 4));
        a2 = vfmaq_f32(a2, vld1q_f32(w + i + 8), vld1q_f32(x + i + 8));
        a3 = vfmaq_f32(a3, vld1q_f32(w + i + 12), vld1q_f32(x + i + 12));
    }
    for (; i + 4 <= n; i += 4) a0 = vfmaq_f32(a0, vld1q_f32(w + i), vld1q_f32(x + i));
    float acc = hsum4(a0, a1, a2, a3);
    for (; i < n; i++) acc += w[i] * x[i];
    return acc;
}

void dense_widen_f16_neon(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, h4(src + i));
    for (; i < n; i++) dst[i] = dense_h2f(src[i]);
}

#else
/* Never picked here (the detector finds no NEON); plain C so the library links. */
float dense_dot_f32_neon(const float *w, const float *x, int32_t n) { return dense_dot_f32_scalar(w, x, n); }
float dense_dot_f16_neon(const uint16_t *w, const float *x, int32_t n) { return dense_dot_f16_scalar(w, x, n); }
float dense_dot_bf16_neon(const uint16_t *w, const float *x, int32_t n) { return dense_dot_bf16_scalar(w, x, n); }
void dense_widen_f16_neon(const uint16_t *src, float *dst, size_t n) { dense_widen_f16_scalar(src, dst, n); }
#endif

static int has_neon(const spqr_cpu *cpu) { return cpu->neon; }

const spqr_dense_ops dense_ops_neon = {"neon",
                                       has_neon,
                                       {(dense_dot_fn)dense_dot_f32_neon, (dense_dot_fn)dense_dot_f16_neon,
                                        (dense_dot_fn)dense_dot_bf16_neon},
                                       NULL,
                                       dense_widen_f16_neon,
                                       dense_widen_bf16_scalar};
