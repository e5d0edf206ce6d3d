/* Hessian-side preparation of a layer (docs/method.md steps 1-5) and the
 * relative Hessian-weighted error of the result. */
#ifndef SPQR_QUANT_HESSIAN_H
#define SPQR_QUANT_HESSIAN_H

#include <stdint.h>

#include "spqr.h"

/* perm[cols]: identity, or input columns by descending diag(H), ties by
 * lower index first (a stable order). */
spqr_status spqr_perm_compute(const float *H, int32_t cols, spqr_perm_mode mode, int32_t *perm, spqr_err *err);

/* From H [cols][cols] (fp32, original order) and perm: U [cols][cols]
 * (double, row-major) gets the upper Cholesky factor of the inverse of the
 * permuted, damped, dead-fixed Hessian in its upper triangle (Hinv = U^T U;
 * the strict lower triangle is scratch), d[j] = U[j][j], dead[j] = 1 where
 * the permuted, undamped diag(H) is 0. Fails with SPQR_ERR_NUMERIC if the
 * damped Hessian or its inverse is not positive definite. */
spqr_status spqr_hessian_prepare(const float *H, int32_t cols, const int32_t *perm, float percdamp,
                                 int32_t n_threads, double *U, double *d, uint8_t *dead, int32_t *n_dead,
                                 spqr_err *err);

/* tr(dW H dW^T) / tr(W H W^T) with dW = W_hat - W, W and H original and
 * undamped, evaluated as <H, A^T A> with A^T A from dsyrk. Wp_hat holds
 * W_hat in permuted column order; A [rows][cols] and S [cols][cols] are
 * scratch (A may alias Wp_hat, which is destroyed). */
double spqr_rel_hessian_error(const float *W, const float *H, int32_t rows, int32_t cols, const int32_t *perm,
                              double *Wp_hat, double *S, int32_t n_threads);

#endif
