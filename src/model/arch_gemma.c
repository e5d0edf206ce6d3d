/* Gemma (GeGLU with tanh-approximated GELU, RMSNorm with (1 + w), embeddings
 * times sqrt(hidden), tied head) and Gemma 2 (the same plus attention and
 * final logit soft-capping, norms after attention and MLP, a sliding window
 * on even layers, query_pre_attn_scalar). */
#include <cjson/cJSON.h>
#include <math.h>

#include "core/error.h"
#include "model/arch.h"

static const char *const GELU_TANH[] = {"gelu_pytorch_tanh", NULL};
/* transformers' Gemma used the tanh GELU whatever hidden_act said ("gelu" in
 * the original configs) when hidden_activation was absent. */
static const char *const GEMMA_HIDDEN_ACT[] = {"gelu", "gelu_pytorch_tanh", NULL};

static spqr_status parse_gemma(const cJSON *root, spqr_config *c, model_hparams *hp, spqr_err *err) {
    (void)c;
    (void)hp;
    spqr_status st;
    if ((st = spqri_arch_check_string(root, "hidden_activation", GELU_TANH, err))) return st;
    if ((st = spqri_arch_check_string(root, "hidden_act", GEMMA_HIDDEN_ACT, err))) return st;
    return spqri_arch_refuse_true(root, "attention_bias", err);
}

static spqr_status parse_gemma2(const cJSON *root, spqr_config *c, model_hparams *hp, spqr_err *err) {
    spqr_status st;
    if ((st = spqri_arch_check_string(root, "hidden_activation", GELU_TANH, err))) return st;
    if ((st = spqri_arch_check_string(root, "hidden_act", GELU_TANH, err))) return st;
    if ((st = spqri_arch_refuse_true(root, "attention_bias", err))) return st;
    float qpas;
    if ((st = spqri_arch_get_float(root, "query_pre_attn_scalar", 256.0, 1e-6, 1e9, &qpas, err))) return st;
    hp->attn_scale = (float)(1.0 / sqrt((double)qpas));
    /* transformers' defaults: 50 and 30; null switches the cap off */
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "attn_logit_softcapping");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "final_logit_softcapping");
    if ((st = spqri_arch_get_float(root, "attn_logit_softcapping", a ? 0.0 : 50.0, 1e-6, 1e9, &hp->attn_softcap, err)))
        return st;
    if ((st = spqri_arch_get_float(root, "final_logit_softcapping", f ? 0.0 : 30.0, 1e-6, 1e9, &hp->final_softcap, err)))
        return st;
    return spqri_arch_parse_sliding_window(root, c, hp, 4096, 1, 1, err);
}

const model_arch spqri_arch_gemma = {
    "gemma", "Gemma (GeGLU, (1 + w) RMSNorm, scaled embeddings, tied head)", ARCH_LINEARS_LLAMA(0),
    {
        [ARCH_NORM_ATTN] = {"input_layernorm", ARCH_DIM_HIDDEN},
        [ARCH_NORM_FFN] = {"post_attention_layernorm", ARCH_DIM_HIDDEN},
    },
    ARCH_ACT_GELU_TANH, 1, 1, 1, 256, 1e-6, 8192, parse_gemma,
};

const model_arch spqri_arch_gemma2 = {
    "gemma2", "Gemma 2 (soft-capping, sandwich norms, sliding window on even layers)", ARCH_LINEARS_LLAMA(0),
    {
        [ARCH_NORM_ATTN] = {"input_layernorm", ARCH_DIM_HIDDEN},
        [ARCH_NORM_FFN] = {"pre_feedforward_layernorm", ARCH_DIM_HIDDEN},
        [ARCH_NORM_ATTN_OUT] = {"post_attention_layernorm", ARCH_DIM_HIDDEN},
        [ARCH_NORM_FFN_OUT] = {"post_feedforward_layernorm", ARCH_DIM_HIDDEN},
    },
    ARCH_ACT_GELU_TANH, 1, 1, 1, 256, 1e-6, 8192, parse_gemma2,
};
