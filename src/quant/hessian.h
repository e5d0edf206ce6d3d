/* Hessian-side preparation of a layer (docs/method.md steps 1-5) and the
 * relative Hessian-weighted error of the result. */
#ifndef SPQR_QUANT_HESSIAN_H
#define SPQR_QUANT_HESSIAN_H

#include <stdint.h>

#include "spqr.h"

/* perm[cols]: identity, or input columns by descending diag(H), ties by
 * lower index first (a stable order). */
spqr_status spqr_perm_compute(const float *H, int32_t cols, spqr_perm_mode mode, int32_t *perm, spqr_err *err);

/* From H [cols][cols] (fp32, original order) and perm: R [cols][cols]
 * (fp32, row-major) gets in its upper triangle the upper triangular R with
 * R R^T = the permuted, damped, dead-fixed Hessian (the strict lower
 * triangle is scratch); U = R^-1 is then the upper Cholesky factor of its
 * inverse that GPTQ uses (Hinv = U^T U) and d[j] = U[j][j] = 1 / R[j][j].
 * dead[j] = 1 where the permuted, undamped diag(H) is 0, *damp = the
 * lambda added to the diagonal (0 without damping). The factorization runs
 * in fp32 (spotrf, as the PyTorch reference); if fp32 loses positive
 * definiteness it is redone in double (dpotrf, then rounded to fp32) and
 * *used_double = 1. Fails with SPQR_ERR_NUMERIC if the damped Hessian is
 * not positive definite in double either. */
spqr_status spqr_hessian_prepare(const float *H, int32_t cols, const int32_t *perm, float percdamp,
                                 int32_t n_threads, float *R, double *d, uint8_t *dead, int32_t *n_dead,
                                 double *damp, int *used_double, spqr_err *err);

/* tr(dW H dW^T) / tr(W H W^T) with dW = W_hat - W, W and H original and
 * undamped. Wp_hat holds W_hat in permuted column order; S [cols][cols]
 * floats is scratch. The denominator is <H, W^T W> with W^T W from an fp32
 * ssyrk (the caller's BLAS threads) and the trace in double. The numerator:
 * with esum (GPTQ), from the GPTQ identity dW' H_d dW'^T = E E^T (E the
 * scaled errors, U H_d U^T = I; esum[r] = sum_j E[r][j]^2, dW' = dW with
 * the dead inputs of W zeroed), minus what the damping added:
 * sum_r esum[r] - sum_j c_j |dW'[:, j]|^2 with c_j = damp, or 1 for a dead
 * input; without esum (RTN), <H, dW^T dW> like the denominator. Within
 * ~1e-7 relative of the all-double reference below (docs/quantize.md,
 * "Engine"), which it falls back to when its scratch cannot be allocated
 * (NaN if the reference's cannot either). */
double spqr_rel_hessian_error(const float *W, const float *H, int32_t rows, int32_t cols, const int32_t *perm,
                              double *Wp_hat, float *S, const double *esum, double damp, const uint8_t *dead,
                              int32_t n_threads);

/* The all-double reference (the engine's evaluation before issue 16): A^T A
 * from dsyrk; A [rows][cols] aliases Wp_hat, which is destroyed. */
double spqri_rel_hessian_error_ref(const float *W, const float *H, int32_t rows, int32_t cols, const int32_t *perm,
                                   double *Wp_hat, double *S, int32_t n_threads);

/* One calibration window's Gram matrix: G [cols][cols] (upper triangle) :=
 * X^T X for X [B][cols], in fixed panels of 256 columns (ssyrk for the
 * diagonal block, sgemm above it), each a one-thread BLAS call, the panels
 * shared by n_threads OpenMP threads (the caller's BLAS count is restored).
 * The bytes do not depend on n_threads (test_hsum checks it): OpenBLAS's own
 * threaded ssyrk gave other bits with 2 threads than with 1 on its Haswell
 * and Zen kernels (AVX2 CPUs, and Zen 5, which OpenBLAS 0.3.21 runs on
 * them). The pipeline adds each window's G exactly (pipeline_comm.c). */
void spqri_hessian_window(float *G, const float *X, int32_t cols, int32_t B, int32_t n_threads);

/* Sets OpenBLAS's thread count to n (n >= 1) and returns the previous one,
 * for the caller to restore. Results of gemm, ssyrk (on some cores) and the
 * parallel Cholesky depend on the count, so the engine only ever lowers it
 * to 1 around its own parallel loops. */
int spqri_blas_threads(int n);

#endif
