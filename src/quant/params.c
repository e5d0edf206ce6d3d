/* Default and validation of spqr_quant_params. */
#include "spqr.h"

#include "core/error.h"

#include <math.h>

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
    if (p->wbits < 2 || p->wbits > 8)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "wbits %d outside 2..8", p->wbits);
    if (p->groupsize < 0)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "groupsize %d is negative (0 = whole row)", p->groupsize);
    if (p->qq_scale_bits < 0 || p->qq_scale_bits > 8)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "qq_scale_bits %d outside 0..8 (0 = fp16 scales)",
                            p->qq_scale_bits);
    if (p->qq_zero_bits < 0 || p->qq_zero_bits > 8)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "qq_zero_bits %d outside 0..8 (0 = fp16 zeros)",
                            p->qq_zero_bits);
    if (p->qq_groupsize < 1)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "qq_groupsize %d < 1", p->qq_groupsize);
    if (isnan(p->outlier_threshold))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "outlier_threshold is NaN (use inf or 0 for no outliers)");
    if (!isfinite(p->percdamp) || p->percdamp < 0)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "percdamp %g must be finite and >= 0", (double)p->percdamp);
    if (p->blocksize < 1)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "blocksize %d < 1", p->blocksize);
    if (p->perm != SPQR_PERM_IDENTITY && p->perm != SPQR_PERM_ACT_ORDER)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "unknown permutation mode %d", (int)p->perm);
    if (!is_flag(p->simplified_outliers) || !is_flag(p->round_zero) || !is_flag(p->sym) || !is_flag(p->gptq))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG,
                            "simplified_outliers, round_zero, sym and gptq must each be 0 or 1");
    return SPQR_OK;
}
