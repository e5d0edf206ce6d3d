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
    const double maxq = cfg->maxq;
    double *t = scratch;                         /* [gc]     error term of each value under the full fit */
    double *pre = scratch + gc;                  /* [gc + 1] pre[k] = t_0 + ... + t_{k-1} */
    double *suf = scratch + 2 * (size_t)gc + 1;  /* [gc + 1] suf[k] = t_{gc-1} + ... + t_k */

    double xmin = x[0], xmax = x[0];
    int32_t kmin = 0, kmax = 0, nmin = 1, nmax = 1;
    for (int32_t c = 1; c < gc; c++) {
        if (x[c] < xmin) { xmin = x[c]; kmin = c; nmin = 1; }
        else if (x[c] == xmin) nmin++;
        if (x[c] > xmax) { xmax = x[c]; kmax = c; nmax = 1; }
        else if (x[c] == xmax) nmax++;
    }
    double s, z;
    spqr_minmax_fit(xmin, xmax, maxq, cfg->sym, 0, &s, &z);
    pre[0] = 0.0;
    for (int32_t c = 0; c < gc; c++) {
        double e = (spqr_qdq(x[c], s, z, maxq) - x[c]) / dg[c];
        t[c] = e * e;
        pre[c + 1] = pre[c] + t[c];
    }
    suf[gc] = 0.0;
    for (int32_t c = gc - 1; c >= 0; c--) suf[c] = suf[c + 1] + t[c];
    const double baseline = pre[gc];

    /* likely[k] is kept in xmod's sign-free slot until the mean is known */
    int32_t n_likely = 0;
    double keep_sum = 0.0;
    for (int32_t k = 0; k < gc; k++) {
        double loo;
        if (gc == 1) {
            loo = 0.0;
        } else if ((k == kmin && nmin == 1) || (k == kmax && nmax == 1)) {
            double lo = INFINITY, hi = -INFINITY;
            for (int32_t c = 0; c < gc; c++) {
                if (c == k) continue;
                lo = fmin(lo, x[c]);
                hi = fmax(hi, x[c]);
            }
            double sk, zk;
            spqr_minmax_fit(lo, hi, maxq, cfg->sym, 0, &sk, &zk);
            loo = 0.0;
            for (int32_t c = 0; c < gc; c++) {
                if (c == k) continue;
                double e = (spqr_qdq(x[c], sk, zk, maxq) - x[c]) / dg[c];
                loo += e * e;
            }
        } else {
            loo = pre[k] + suf[k + 1];
        }
        int likely = (baseline - loo) > cfg->tau;
        t[k] = likely ? 1.0 : 0.0; /* t[k] is no longer needed: reuse as the flag */
        if (likely) n_likely++;
        else keep_sum += x[k];
    }
    const int32_t n_keep = gc - n_likely;
    const double mean = keep_sum / (double)(n_keep > 0 ? n_keep : 1);
    for (int32_t k = 0; k < gc; k++) xmod[k] = t[k] != 0.0 ? mean : x[k];
    return n_likely;
}
