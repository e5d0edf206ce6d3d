/* Finding NaN and Inf in F32 / F16 / BF16 weights: one streaming pass,
 * run once when a model is loaded so a corrupt checkpoint is refused with
 * the tensor's name instead of surfacing later as NaN perplexity or as a
 * NaN Hessian in some unrelated layer. */
#ifndef SPQR_IO_FINITE_H
#define SPQR_IO_FINITE_H

#include <stdint.h>

#include "spqr.h"

/* Index of the first NaN or +-Inf among n elements of dtype at data (no
 * alignment needed), or -1 when all are finite or dtype is not a float
 * type. Large arrays are scanned in parallel (OpenMP). */
int64_t spqr_first_nonfinite(const void *data, spqr_dtype dtype, uint64_t n);

/* SPQR_OK, or SPQR_ERR_FORMAT "tensor NAME holds NaN at element I (row R,
 * column C)" for the first non-finite element of t. */
spqr_status spqr_st_tensor_check_finite(const spqr_st_tensor *t, spqr_err *err);

#endif
