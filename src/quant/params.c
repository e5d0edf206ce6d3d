/* Default and validation of spqr_quant_params; the knob table. */
#include "quant/params.h"

#include "core/error.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define KNOB(field, flag, is_float, inf_ok, lo, hi, note) \
    {#field, flag, offsetof(spqr_quant_params, field), is_float, inf_ok, lo, hi, note}

const spqr_knob spqr_knobs[] = {
    KNOB(wbits, "--wbits", 0, 0, 2, 8, ""),
    KNOB(groupsize, "--groupsize", 0, 0, 0, SPQR_KNOB_MAX_GROUP, " (0 = whole row)"),
    KNOB(qq_scale_bits, "--qq-scale-bits", 0, 0, 0, 8, " (0 = fp16 scales)"),
    KNOB(qq_zero_bits, "--qq-zero-bits", 0, 0, 0, 8, " (0 = fp16 zeros)"),
    KNOB(qq_groupsize, "--qq-groupsize", 0, 0, 1, SPQR_KNOB_MAX_GROUP, ""),
    /* tau is in units of the mean scaled column variance: at 1e6 no realistic error counts, use off */
    KNOB(outlier_threshold, "--outlier-threshold", 1, 1, 0, 1e6, " (0 or inf = no outliers)"),
    /* lambda is relative to mean(diag H): 1e6 already makes H a scaled identity */
    KNOB(percdamp, "--percdamp", 1, 0, 0, 1e6, ""),
    KNOB(blocksize, "--blocksize", 0, 0, 1, SPQR_KNOB_MAX_GROUP, ""),
};
const size_t spqr_n_knobs = sizeof spqr_knobs / sizeof spqr_knobs[0];

void spqr_quant_params_default(spqr_quant_params *p) {
    p->wbits = 3;
    p->groupsize = 16;
    p->qq_scale_bits = 3;
    p->qq_zero_bits = 3;
    p->qq_groupsize = 16;
    p->outlier_threshold = 0.2f;
    p->simplified_outliers = 0;
    p->percdamp = 1.0f;
    p->blocksize = 128;
    p->perm = SPQR_PERM_ACT_ORDER;
    p->round_zero = 0;
    p->sym = 0;
    p->gptq = 1;
}

static int is_flag(int32_t v) { return v == 0 || v == 1; }

spqr_status spqr_quant_params_validate(const spqr_quant_params *p, spqr_err *err) {
    if (!p) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "quantization parameters are NULL");
    for (size_t k = 0; k < spqr_n_knobs; k++) {
        const spqr_knob *kb = &spqr_knobs[k];
        const char *at = (const char *)p + kb->offset;
        double v;
        char shown[48];
        if (kb->is_float) {
            float f;
            memcpy(&f, at, sizeof f);
            v = (double)f;
            snprintf(shown, sizeof shown, "%g", v);
        } else {
            int32_t i;
            memcpy(&i, at, sizeof i);
            v = (double)i;
            snprintf(shown, sizeof shown, "%d", (int)i);
        }
        if (kb->inf_ok && v == INFINITY) continue;
        if (!(v >= kb->lo && v <= kb->hi)) /* NaN fails too */
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s (%s): %s is outside [%g, %g]%s", kb->field, kb->flag,
                                shown, kb->lo, kb->hi, kb->note);
    }
    if (p->perm != SPQR_PERM_IDENTITY && p->perm != SPQR_PERM_ACT_ORDER)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "perm (--perm): unknown permutation mode %d", (int)p->perm);
    if (!is_flag(p->simplified_outliers) || !is_flag(p->round_zero) || !is_flag(p->sym) || !is_flag(p->gptq))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG,
                            "simplified_outliers, round_zero, sym and gptq must each be 0 or 1");
    return SPQR_OK;
}
