/* The dense scalar path: the reference dot products of kernels/dense.h as
 * an ops table (every CPU runs it; the SIMD tables are tested against it). */
#include "kernels/dense.h"
#include "kernels/kernels.h"

static int supported(const spqr_cpu *cpu) { return (void)cpu, 1; }

const spqr_dense_ops spqri_dense_ops_scalar = {"scalar", supported, DENSE_SCALAR_DOTS, NULL, dense_widen_f16_scalar,
                                         dense_widen_bf16_scalar, dense_narrow_f16_scalar, DENSE_SCALAR_AXPY, NULL};
