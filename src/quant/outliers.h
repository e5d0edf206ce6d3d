/* Leave-one-out outlier-aware fitting (docs/method.md step 8). */
#ifndef SPQR_QUANT_OUTLIERS_H
#define SPQR_QUANT_OUTLIERS_H

#include <stdint.h>

#include "quant/stats.h"

/* For one row x[0..gc) of a group with weights dg: marks as likely outliers
 * the values whose removal from the plain min-max fit lowers the row's
 * error sum_c ((qdq(x_c) - x_c) / dg_c)^2 by more than cfg->tau, and writes
 * xmod = x with those values replaced by the mean of the others.
 * scratch holds >= 3 * (gc + 1) doubles. Returns the number replaced. */
int32_t spqr_loo_replace(const spqr_fit_cfg *cfg, const double *x, const double *dg, int32_t gc,
                         double *scratch, double *xmod);

#endif
