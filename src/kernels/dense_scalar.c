/* The dense scalar path: the reference dot products of kernels/dense.h as
 * an ops table (every CPU runs it; the SIMD tables are tested against it). */
#include "kernels/dense.h"
#include "kernels/kernels.h"

static int supported(const spqr_cpu *cpu) { return (void)cpu, 1; }
static float dot_f32(const void *w, const float *x, int32_t n) { return dense_dot_f32_scalar(w, x, n); }
static float dot_f16(const void *w, const float *x, int32_t n) { return dense_dot_f16_scalar(w, x, n); }
static float dot_bf16(const void *w, const float *x, int32_t n) { return dense_dot_bf16_scalar(w, x, n); }

const spqr_dense_ops dense_ops_scalar = {"scalar", supported, {dot_f32, dot_f16, dot_bf16}, NULL,
                                         dense_widen_f16_scalar, dense_widen_bf16_scalar};
