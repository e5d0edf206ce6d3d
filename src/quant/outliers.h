/* Leave-one-out outlier-aware fitting (docs/method.md step 8). */
#ifndef SPQR_QUANT_OUTLIERS_H
#define SPQR_QUANT_OUTLIERS_H

#include <stdint.h>

#include "quant/stats.h"

#include <math.h>

/* For one row x[0..gc) of a group with weights dg: marks as likely outliers
 * the values whose removal from the plain min-max fit lowers the row's
 * error sum_c ((qdq(x_c) - x_c) / dg_c)^2 by more than cfg->tau, and writes
 * xmod = x with those values replaced by the mean of the others.
 * scratch holds >= 3 * (gc + 1) doubles. Returns the number replaced. */
int32_t spqr_loo_replace(const spqr_fit_cfg *cfg, const double *x, const double *dg, int32_t gc,
                         double *scratch, double *xmod);

/* Its body, inlined into the engine's ISA variants (gptq.c), which compile
 * the same code for AVX2: one source, so the results are the same bytes. */
static inline __attribute__((always_inline)) int32_t spqr_loo_replace_inline(const spqr_fit_cfg *cfg, const double *x,
                                                                            const double *dg, int32_t gc,
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
                lo = spqr_dmin(lo, x[c]);
                hi = spqr_dmax(hi, x[c]);
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

/* spqr_fit_row's body (stats.h), here because it calls the leave-one-out fit. */
static inline __attribute__((always_inline)) void spqr_fit_row_inline(const spqr_fit_cfg *cfg, const double *x,
                                                                      const double *dg, int32_t gc, double *scratch,
                                                                      double *s, double *z) {
    const double *v = x;
    if (cfg->loo) {
        double *xmod = scratch + 3 * ((size_t)gc + 1);
        spqr_loo_replace_inline(cfg, x, dg, gc, scratch, xmod);
        v = xmod;
    }
    double xmin = v[0], xmax = v[0];
    for (int32_t c = 1; c < gc; c++) {
        xmin = spqr_dmin(xmin, v[c]);
        xmax = spqr_dmax(xmax, v[c]);
    }
    spqr_minmax_fit(xmin, xmax, cfg->maxq, cfg->sym, cfg->round_zero, s, z);
}

#endif
