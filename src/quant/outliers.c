/* Leave-one-out outlier-aware fitting.
 *
 * The definition: for each k, refit the plain quantizer (min-max, no
 * round_zero, no fp16) on the row without x_k and sum the weighted squared
 * errors of the other gc-1 values. Done literally that costs O(gc^2) qdq
 * evaluations per row. But a min-max fit depends only on (min, max), and
 * leaving x_k out changes them only when x_k is the row's UNIQUE minimum or
 * UNIQUE maximum. For every other k the leave-one-out fit is the full-row
 * fit, so its error is the full-row error terms summed over c != k, taken
 * here as prefix[k] + suffix[k+1]. Only the (at most two) unique extremes
 * are refitted. The sums are the definition's; only their association
 * differs, at the 1-ulp level. */
#include "quant/outliers.h"

int32_t spqr_loo_replace(const spqr_fit_cfg *cfg, const double *x, const double *dg, int32_t gc,
                         double *scratch, double *xmod) {
    return spqr_loo_replace_inline(cfg, x, dg, gc, scratch, xmod);
}
