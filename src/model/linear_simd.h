/* The dense linears' element conversions, scalar reference dot products and
 * the ISA-specific ones (src/model/linear_x86.c, src/model/linear_neon.c).
 * Every file is compiled on every target so linear.c needs no #ifdef: on
 * another architecture an ISA file's detection function answers 0,
 * so its kernels (plain C stand-ins there) are never picked. */
#ifndef SPQR_MODEL_LINEAR_SIMD_H
#define SPQR_MODEL_LINEAR_SIMD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "model/linear.h"

static inline float linear_u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t linear_f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* fp16 -> fp32: shift exponent+mantissa into place and rebias by
 * multiplying with 2^112 (exact for normals and subnormals); inf/nan fixed up. */
static inline float linear_h2f(uint16_t h) {
    uint32_t em = (uint32_t)(h & 0x7fffu) << 13;
    float f = linear_u2f(em) * 0x1p112f;
    uint32_t bits = em >= (0x7c00u << 13) ? (em | 0x7f800000u) : linear_f2u(f);
    return linear_u2f(bits | ((uint32_t)(h & 0x8000u) << 16));
}

static inline float linear_b2f(uint16_t h) { return linear_u2f((uint32_t)h << 16); }

/* ---- scalar reference dot products (the yardstick of the SIMD ones) ---- */

static inline float linear_dot_f32_scalar(const float *w, const float *x, int32_t n) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int32_t i = 0; i < n; i++) acc += w[i] * x[i];
    return acc;
}

static inline float linear_dot_f16_scalar(const uint16_t *w, const float *x, int32_t n) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int32_t i = 0; i < n; i++) acc += linear_h2f(w[i]) * x[i];
    return acc;
}

static inline float linear_dot_bf16_scalar(const uint16_t *w, const float *x, int32_t n) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int32_t i = 0; i < n; i++) acc += linear_b2f(w[i]) * x[i];
    return acc;
}

static inline void linear_widen_f16_scalar(const uint16_t *src, float *dst, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) dst[i] = linear_h2f(src[i]);
}

/* ---- x86 (linear_x86.c) ---- */

/* 1 when the CPU runs SPQR_ISA_AVX2 (AVX2 + FMA + F16C) or SPQR_ISA_AVX512
 * (AVX-512F); 0 for any other isa and on other architectures. */
int linear_x86_has(spqr_isa isa);
float linear_dot_f32_avx2(const float *w, const float *x, int32_t n);
float linear_dot_f16_avx2(const uint16_t *w, const float *x, int32_t n);
float linear_dot_bf16_avx2(const uint16_t *w, const float *x, int32_t n);
float linear_dot_f32_avx512(const float *w, const float *x, int32_t n);
float linear_dot_f16_avx512(const uint16_t *w, const float *x, int32_t n);
float linear_dot_bf16_avx512(const uint16_t *w, const float *x, int32_t n);
/* Four fp16 rows (stride apart) at once, each with exactly
 * linear_dot_f16_avx512's arithmetic (so the same bits): out[r] = row r's dot. */
void linear_dot4_f16_avx512(const uint16_t *w, size_t stride, const float *x, int32_t n, float out[4]);
void linear_widen_f16_avx2(const uint16_t *src, float *dst, size_t n);
void linear_widen_f16_avx512(const uint16_t *src, float *dst, size_t n);

/* ---- aarch64 (linear_neon.c) ---- */

/* 1 when the CPU has Advanced SIMD (getauxval(AT_HWCAP) & HWCAP_ASIMD); 0 elsewhere. */
int linear_neon_supported(void);
float linear_dot_f32_neon(const float *w, const float *x, int32_t n);
float linear_dot_f16_neon(const uint16_t *w, const float *x, int32_t n);
float linear_dot_bf16_neon(const uint16_t *w, const float *x, int32_t n);
void linear_widen_f16_neon(const uint16_t *src, float *dst, size_t n);

#endif
