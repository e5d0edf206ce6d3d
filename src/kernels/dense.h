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

#include "spqr.h"


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

/* Element i of a row of kind k (0 fp32, 1 fp16, 2 bf16 = spqr_linear_kind), exactly widened. */
static inline float dense_elem(const void *w, int32_t i, const int k) {
    if (k == 0) return ((const float *)w)[i];
    const uint16_t h = ((const uint16_t *)w)[i];
    return k == 1 ? dense_h2f(h) : dense_b2f(h);
}

/* ---- scalar reference dot products (the yardstick of the SIMD ones) ---- */

static inline float dense_dot_scalar(const void *w, const float *x, int32_t n, const int k) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int32_t i = 0; i < n; i++) acc += dense_elem(w, i, k) * x[i];
    return acc;
}
/* spqr_dense_ops.dot's signature */
static inline float dense_dot_f32_scalar(const void *w, const float *x, int32_t n) { return dense_dot_scalar(w, x, n, 0); }
static inline float dense_dot_f16_scalar(const void *w, const float *x, int32_t n) { return dense_dot_scalar(w, x, n, 1); }
static inline float dense_dot_bf16_scalar(const void *w, const float *x, int32_t n) { return dense_dot_scalar(w, x, n, 2); }

/* spqr_dense_ops.dot of the scalar kernels (also the stand-ins of an ISA
 * file compiled for another architecture, never picked there). */
#define DENSE_SCALAR_DOTS {dense_dot_f32_scalar, dense_dot_f16_scalar, dense_dot_bf16_scalar}

static inline void dense_widen_f16_scalar(const uint16_t *src, float *dst, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) dst[i] = dense_h2f(src[i]);
}

static inline void dense_widen_bf16_scalar(const uint16_t *src, float *dst, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) dst[i] = dense_b2f(src[i]);
}

static inline void dense_narrow_f16_scalar(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = spqr_fp32_to_fp16(src[i]);
}

/* o[hd] += sum_i a[i] V[i][..] in row order (spqr_dense_ops.rows_axpy's reference) */
static inline void dense_rows_axpy_scalar(const float *a, const void *V, int32_t n, int32_t hd, float *o, const int k) {
    for (int32_t i = 0; i < n; i++)
        for (int32_t j = 0; j < hd; j++) o[j] += a[i] * dense_elem(V, i * hd + j, k);
}
static inline void dense_rows_axpy_f32_scalar(const float *a, const void *V, int32_t n, int32_t hd, float *o) {
    dense_rows_axpy_scalar(a, V, n, hd, o, 0);
}
static inline void dense_rows_axpy_f16_scalar(const float *a, const void *V, int32_t n, int32_t hd, float *o) {
    dense_rows_axpy_scalar(a, V, n, hd, o, 1);
}
#define DENSE_SCALAR_AXPY {dense_rows_axpy_f32_scalar, dense_rows_axpy_f16_scalar}

#endif
