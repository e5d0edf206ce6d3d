/* Phi-3 (mini/medium, 4k context): the Llama graph with fused qkv_proj and
 * gate_up_proj in the checkpoint. They are bound as row blocks of the fused
 * tensors (no copy) and quantized split: GPTQ/SpQR rows are independent
 * given the shared input Hessian, and the permutation, damping and dead
 * columns come from that Hessian alone, so the split result differs from a
 * fused one only in the outlier threshold, whose weight variance is taken
 * per tensor (docs/model.md). */
#include <cjson/cJSON.h>
#include <math.h>

#include "core/error.h"
#include "model/arch.h"

static const char *const SILU[] = {"silu", NULL};

static spqr_status parse_phi3(const cJSON *root, spqr_config *c, model_hparams *hp, spqr_err *err) {
    spqr_status st;
    if ((st = spqri_arch_check_string(root, "hidden_act", SILU, err))) return st;
    if ((st = spqri_arch_refuse_true(root, "attention_bias", err))) return st;
    /* top level, or (transformers 5) inside rope_parameters */
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    const cJSON *prfs[2] = {cJSON_GetObjectItemCaseSensitive(root, "partial_rotary_factor"),
                            cJSON_IsObject(rp) ? cJSON_GetObjectItemCaseSensitive(rp, "partial_rotary_factor") : NULL};
    for (int i = 0; i < 2; i++)
        if (prfs[i] && !cJSON_IsNull(prfs[i]) && !(cJSON_IsNumber(prfs[i]) && prfs[i]->valuedouble == 1.0))
            return spqr_err_set(err, SPQR_ERR_UNSUPPORTED,
                                "config.json: partial_rotary_factor other than 1.0 is not supported (only 1.0)");
    return spqri_arch_parse_sliding_window(root, c, hp, 0, 0, 0, err);
}

const model_arch spqri_arch_phi3 = {
    "phi3", "Phi-3 4k-context variants (fused qkv_proj/gate_up_proj, quantized split)",
    {
        [ARCH_LIN_Q] = {"self_attn.q_proj", ARCH_DIM_Q, ARCH_DIM_HIDDEN, MODEL_GROUP_QKV, 0, "self_attn.qkv_proj"},
        [ARCH_LIN_K] = {"self_attn.k_proj", ARCH_DIM_KV, ARCH_DIM_HIDDEN, MODEL_GROUP_QKV, 0, "self_attn.qkv_proj"},
        [ARCH_LIN_V] = {"self_attn.v_proj", ARCH_DIM_KV, ARCH_DIM_HIDDEN, MODEL_GROUP_QKV, 0, "self_attn.qkv_proj"},
        [ARCH_LIN_O] = {"self_attn.o_proj", ARCH_DIM_HIDDEN, ARCH_DIM_Q, MODEL_GROUP_O, 0, NULL},
        [ARCH_LIN_GATE] = {"mlp.gate_proj", ARCH_DIM_INTER, ARCH_DIM_HIDDEN, MODEL_GROUP_GATE_UP, 0, "mlp.gate_up_proj"},
        [ARCH_LIN_UP] = {"mlp.up_proj", ARCH_DIM_INTER, ARCH_DIM_HIDDEN, MODEL_GROUP_GATE_UP, 0, "mlp.gate_up_proj"},
        [ARCH_LIN_DOWN] = {"mlp.down_proj", ARCH_DIM_HIDDEN, ARCH_DIM_INTER, MODEL_GROUP_DOWN, 0, NULL},
    },
    {
        [ARCH_NORM_ATTN] = {"input_layernorm", ARCH_DIM_HIDDEN},
        [ARCH_NORM_FFN] = {"post_attention_layernorm", ARCH_DIM_HIDDEN},
    },
    ARCH_ACT_SILU, 0, 0, 0, 0, 1e-5, 4096, parse_phi3,
};
