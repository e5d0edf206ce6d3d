/* The dense linears' kernels: element conversions, the scalar reference
 * dot products (the yardstick of the SIMD ones, dense_scalar.c's table) and
 * the ISA-specific ones (dense_x86.c, dense_neon.c). Every file is compiled
 * on every target so nothing above needs an #ifdef: on another
 * architecture an ISA file's kernels are plain C stand-ins that the
 * detector (kernels/cpu.h) never lets anyone pick. */
#ifndef SPQR_KERNELS_DENSE_H
#define SPQR_KERNELS_DENSE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>


static inline float dense_u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t dense_f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* fp16 -> fp32: shift exponent+mantissa into place and rebias by
 * multiplying with 2^112 (exact for normals and subnormals); inf/nan fixed up. */
static inline float dense_h2f(uint16_t h) {
    uint32_t em = (uint32_t)(h & 0x7fffu) << 13;
    float f = dense_u2f(em) * 0x1p112f;
    uint32_t bits = em >= (0x7c00u << 13) ? (em | 0x7f800000u) : dense_f2u(f);
    return dense_u2f(bits | ((uint32_t)(h & 0x8000u) << 16));
}

static inline float dense_b2f(uint16_t h) { return dense_u2f((uint32_t)h << 16); }

/* ---- scalar reference dot products (the yardstick of the SIMD ones) ---- */

static inline float dense_dot_f32_scalar(const float *w, const float *x, int32_t n) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int32_t i = 0; i < n; i++) acc += w[i] * x[i];
    return acc;
}

static inline float dense_dot_f16_scalar(const uint16_t *w, const float *x, int32_t n) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int32_t i = 0; i < n; i++) acc += dense_h2f(w[i]) * x[i];
    return acc;
}

static inline float dense_dot_bf16_scalar(const uint16_t *w, const float *x, int32_t n) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int32_t i = 0; i < n; i++) acc += dense_b2f(w[i]) * x[i];
    return acc;
}

static inline void dense_widen_f16_scalar(const uint16_t *src, float *dst, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) dst[i] = dense_h2f(src[i]);
}

static inline void dense_widen_bf16_scalar(const uint16_t *src, float *dst, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) dst[i] = dense_b2f(src[i]);
}

/* ---- x86 (dense_x86.c) ---- */

float dense_dot_f32_avx2(const float *w, const float *x, int32_t n);
float dense_dot_f16_avx2(const uint16_t *w, const float *x, int32_t n);
float dense_dot_bf16_avx2(const uint16_t *w, const float *x, int32_t n);
float dense_dot_f32_avx512(const float *w, const float *x, int32_t n);
float dense_dot_f16_avx512(const uint16_t *w, const float *x, int32_t n);
float dense_dot_bf16_avx512(const uint16_t *w, const float *x, int32_t n);
/* Four fp16 rows (stride apart) at once, each with exactly
 * dense_dot_f16_avx512's arithmetic (so the same bits): out[r] = row r's dot. */
void dense_dot4_f16_avx512(const uint16_t *w, size_t stride, const float *x, int32_t n, float out[4]);
void dense_widen_f16_avx2(const uint16_t *src, float *dst, size_t n);
void dense_widen_f16_avx512(const uint16_t *src, float *dst, size_t n);

/* ---- aarch64 (dense_neon.c) ---- */

float dense_dot_f32_neon(const float *w, const float *x, int32_t n);
float dense_dot_f16_neon(const uint16_t *w, const float *x, int32_t n);
float dense_dot_bf16_neon(const uint16_t *w, const float *x, int32_t n);
void dense_widen_f16_neon(const uint16_t *src, float *dst, size_t n);

#endif
