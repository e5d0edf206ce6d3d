/* Qwen2 / Qwen2.5 (Llama graph with q, k, v biases) and Qwen3 (no biases,
 * per-head RMSNorm of q and k before RoPE, explicit head_dim). */
#include <cjson/cJSON.h>

#include "core/error.h"
#include "model/arch.h"

static const char *const SILU[] = {"silu", NULL};

/* Qwen's sliding window (use_sliding_window, applied from max_window_layers
 * on) is off in every released Qwen2/2.5/3 config; it is refused rather
 * than guessed. */
static spqr_status parse_qwen_common(const cJSON *root, spqr_err *err) {
    spqr_status st;
    if ((st = spqri_arch_check_string(root, "hidden_act", SILU, err))) return st;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "use_sliding_window")))
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED,
                            "config.json: use_sliding_window = true is not supported (only false)");
    return SPQR_OK;
}

static spqr_status parse_qwen2(const cJSON *root, spqr_config *c, model_hparams *hp, spqr_err *err) {
    (void)c;
    (void)hp;
    return parse_qwen_common(root, err);
}

static spqr_status parse_qwen3(const cJSON *root, spqr_config *c, model_hparams *hp, spqr_err *err) {
    (void)c;
    (void)hp;
    spqr_status st = parse_qwen_common(root, err);
    return st ? st : spqri_arch_refuse_true(root, "attention_bias", err);
}

const model_arch spqri_arch_qwen2 = {
    "qwen2", "Qwen2, Qwen2.5 (q/k/v biases)", ARCH_LINEARS_LLAMA(1),
    {
        [ARCH_NORM_ATTN] = {"input_layernorm", ARCH_DIM_HIDDEN},
        [ARCH_NORM_FFN] = {"post_attention_layernorm", ARCH_DIM_HIDDEN},
    },
    ARCH_ACT_SILU, 0, 0, 0, 0, 1e-6, 32768, parse_qwen2,
};

const model_arch spqri_arch_qwen3 = {
    "qwen3", "Qwen3 (per-head q/k RMSNorm)", ARCH_LINEARS_LLAMA(0),
    {
        [ARCH_NORM_ATTN] = {"input_layernorm", ARCH_DIM_HIDDEN},
        [ARCH_NORM_FFN] = {"post_attention_layernorm", ARCH_DIM_HIDDEN},
        [ARCH_NORM_Q] = {"self_attn.q_norm", ARCH_DIM_HEAD},
        [ARCH_NORM_K] = {"self_attn.k_norm", ARCH_DIM_HEAD},
    },
    ARCH_ACT_SILU, 0, 0, 0, 128, 1e-6, 32768, parse_qwen3,
};
