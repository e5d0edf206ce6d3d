/* First-level fit of a group row and storage of the statistics. */
#include "quant/stats.h"

#include "core/error.h"
#include "format/tensor.h"
#include "quant/outliers.h"

void spqr_fit_row(const spqr_fit_cfg *cfg, const double *x, const double *dg, int32_t gc, double *scratch,
                  double *s, double *z) {
    spqr_fit_row_inline(cfg, x, dg, gc, scratch, s, z);
}

/* fp16 of a double, through fp32 as the reference's tensor library does. */
static uint16_t to_f16(double v) { return spqr_fp32_to_fp16((float)v); }

static int f16_finite(uint16_t h) { return (h & 0x7c00u) != 0x7c00u; }

/* Second level on one statistic vector v[0..rows): chunks of qgs rows, each
 * min-max fitted (asymmetric, no round_zero) with `bits` bits; the chunk's
 * scale and zero are rounded to fp16 at once, the codes are computed
 * against those fp16 values, and the dequantized statistic is evaluated in
 * fp32 by spqr_stat_dq (the same function the kernels use). */
static spqr_status second_level(const double *v, int32_t rows, int bits, int qgs, float *dq, uint8_t *codes,
                                uint16_t *q2, const char *what, spqr_err *err) {
    const double maxq2 = (double)((1 << bits) - 1);
    /* 64-bit: c0 + qgs passes INT32_MAX for a large qgs */
    for (int64_t c0 = 0, qg = 0; c0 < rows; c0 += qgs, qg++) {
        const int64_t c1 = c0 + qgs < rows ? c0 + qgs : rows;
        double cmin = v[c0], cmax = v[c0];
        for (int64_t r = c0 + 1; r < c1; r++) {
            cmin = spqr_dmin(cmin, v[r]);
            cmax = spqr_dmax(cmax, v[r]);
        }
        double s2, z2;
        spqr_minmax_fit(cmin, cmax, maxq2, 0, 0, &s2, &z2);
        uint16_t s2h = to_f16(s2), z2h = to_f16(z2);
        if (!f16_finite(s2h) || !f16_finite(z2h))
            return spqr_err_set(err, SPQR_ERR_NUMERIC,
                                "second-level %s statistic (%g, %g) overflows fp16", what, s2, z2);
        q2[2 * qg] = s2h;
        q2[2 * qg + 1] = z2h;
        const double s2d = (double)spqr_fp16_to_fp32(s2h), z2d = (double)spqr_fp16_to_fp32(z2h);
        for (int64_t r = c0; r < c1; r++) {
            uint32_t code = (uint32_t)spqr_code(v[r], s2d, z2d, maxq2);
            codes[r] = (uint8_t)code;
            dq[r] = spqr_stat_dq(s2h, z2h, code);
        }
    }
    return SPQR_OK;
}

static spqr_status fp16_level(const double *v, int32_t rows, float *dq, uint16_t *f16, const char *what,
                              spqr_err *err) {
    for (int32_t r = 0; r < rows; r++) {
        uint16_t h = to_f16(v[r]);
        if (!f16_finite(h))
            return spqr_err_set(err, SPQR_ERR_NUMERIC, "first-level %s %g of row %d overflows fp16", what, v[r], r);
        f16[r] = h;
        dq[r] = spqr_fp16_to_fp32(h);
    }
    return SPQR_OK;
}

spqr_status spqr_store_stats(const spqr_fit_cfg *cfg, const double *s, const double *z, int32_t rows,
                             float *sdq, float *zdq, uint8_t *scode, uint8_t *zcode, uint16_t *sq2,
                             uint16_t *zq2, uint16_t *sf16, uint16_t *zf16, spqr_err *err) {
    spqr_status st = cfg->qs ? second_level(s, rows, cfg->qs, cfg->qgs, sdq, scode, sq2, "scale", err)
                             : fp16_level(s, rows, sdq, sf16, "scale", err);
    if (st != SPQR_OK) return st;
    return cfg->qz ? second_level(z, rows, cfg->qz, cfg->qgs, zdq, zcode, zq2, "zero", err)
                   : fp16_level(z, rows, zdq, zf16, "zero", err);
}
