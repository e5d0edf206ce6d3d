/* Quantization statistics: the min-max fit of one row of a group (first
 * level) and the storage of the per-row statistics, either as fp16 or
 * quantized again in beta2-row chunks (bilevel, second level).
 * Semantics: docs/method.md, steps 7 and 8. Everything here is double,
 * except the stored values, whose rounding points are stated per function. */
#ifndef SPQR_QUANT_STATS_H
#define SPQR_QUANT_STATS_H

#include <math.h>
#include <stdint.h>

#include "spqr.h"

/* Constants of one layer that the fits need. */
typedef struct spqr_fit_cfg {
    int wbits;
    double maxq;      /* 2^wbits - 1 */
    int sym;
    int round_zero;   /* effective: never with sym */
    int qs, qz;       /* second-level bits of scales / zeros; 0 = stored as fp16 */
    int qgs;          /* beta2: rows per second-level chunk */
    int loo;          /* 1: leave-one-out outlier-aware fit (tau finite, not simplified) */
    double tau;       /* absolute outlier threshold; +inf = none */
} spqr_fit_cfg;

/* fmin / fmax without the libm call (which blocks vectorization): the same
 * value for every non-NaN pair, signed zeros included (glibc returns x
 * when x and y compare equal). The engine's values are finite. */
static inline double spqr_dmin(double x, double y) { return x <= y ? x : y; }
static inline double spqr_dmax(double x, double y) { return x >= y ? x : y; }

/* Min-max rule on a range: returns scale s and zero z (reference semantics,
 * including the lossy [-1, 1] range for a constant row). */
static inline void spqr_minmax_fit(double xmin, double xmax, double maxq, int sym, int round_zero,
                                   double *s, double *z) {
    if (sym) {
        xmax = spqr_dmax(fabs(xmin), xmax);
        if (xmin < 0) xmin = -xmax;
    }
    if (xmin == xmax) {
        xmin = -1.0;
        xmax = 1.0;
    }
    *s = (xmax - xmin) / maxq;
    if (sym) *z = (maxq + 1.0) / 2.0;
    else *z = round_zero ? rint(-xmin / *s) : -xmin / *s;
}

/* Round-half-even code of x, clamped to [0, maxq], with the scale floored at 1e-9. */
static inline double spqr_code(double x, double s, double z, double maxq) {
    /* = fmax(s, 1e-9) for every s (NaN included), without a libm call */
    double q = rint(x / (s > 1e-9 ? s : 1e-9) + z);
    return q < 0.0 ? 0.0 : (q > maxq ? maxq : q);
}

/* Plain quantize-dequantize in double (leave-one-out error model). */
static inline double spqr_qdq(double x, double s, double z, double maxq) {
    return s * (spqr_code(x, s, z, maxq) - z);
}

/* First-level statistics of one row x[0..gc) of a group, dg[0..gc) the
 * group's d_j. With cfg->loo the likely outliers are first replaced by the
 * mean of the others (outliers.c). scratch holds >= 4 * (gc + 1) doubles. */
void spqr_fit_row(const spqr_fit_cfg *cfg, const double *x, const double *dg, int32_t gc, double *scratch,
                  double *s, double *z);

/* Stores the first-level vectors s[0..rows), z[0..rows) of one group and
 * returns the dequantized fp32 values the quantizer uses (sdq, zdq).
 * Bilevel (cfg->qs / cfg->qz > 0): writes the codes ([rows]) and the fp16
 * second-level pairs ([ceil(rows/qgs)][2]: scale, zero); otherwise writes
 * the fp16 values ([rows]). Pointers for the unused form may be NULL.
 * Fails with SPQR_ERR_NUMERIC if a stored value is not finite in fp16. */
spqr_status spqr_store_stats(const spqr_fit_cfg *cfg, const double *s, const double *z, int32_t rows,
                             float *sdq, float *zdq, uint8_t *scode, uint8_t *zcode, uint16_t *sq2,
                             uint16_t *zq2, uint16_t *sf16, uint16_t *zf16, spqr_err *err);

#endif
