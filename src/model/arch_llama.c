/* Llama 1/2/3/3.1/3.2 (rope_scaling "llama3"), TinyLlama, SmolLM/SmolLM2,
 * and Mistral (the same graph with a sliding window on every layer):
 * RMSNorm, RoPE rotate-half, GQA, SwiGLU, no biases. */
#include <cjson/cJSON.h>

#include "model/arch.h"

#define LLAMA_NORMS                                                                                            \
    {                                                                                                          \
        [ARCH_NORM_ATTN] = {"input_layernorm", ARCH_DIM_HIDDEN},                                               \
        [ARCH_NORM_FFN] = {"post_attention_layernorm", ARCH_DIM_HIDDEN},                                       \
    }

static const char *const SILU[] = {"silu", NULL};

static spqr_status parse_common(const cJSON *root, spqr_err *err) {
    spqr_status st;
    if ((st = spqri_arch_check_string(root, "hidden_act", SILU, err))) return st;
    if ((st = spqri_arch_refuse_true(root, "attention_bias", err))) return st;
    return spqri_arch_refuse_true(root, "mlp_bias", err);
}

/* transformers' Llama has no sliding window: the field is ignored there too. */
static spqr_status parse_llama(const cJSON *root, spqr_config *c, model_hparams *hp, spqr_err *err) {
    (void)c;
    (void)hp;
    return parse_common(root, err);
}

static spqr_status parse_mistral(const cJSON *root, spqr_config *c, model_hparams *hp, spqr_err *err) {
    spqr_status st = parse_common(root, err);
    return st ? st : spqri_arch_parse_sliding_window(root, c, hp, 4096, 0, 0, err);
}

const model_arch spqri_arch_llama = {
    "llama", "Llama 1/2/3/3.x, TinyLlama, SmolLM/SmolLM2", ARCH_LINEARS_LLAMA(0), LLAMA_NORMS, ARCH_ACT_SILU, 0, 0, 0,
    0, 1e-6, 2048, parse_llama,
};

const model_arch spqri_arch_mistral = {
    "mistral", "Mistral (sliding-window attention on every layer)", ARCH_LINEARS_LLAMA(0), LLAMA_NORMS, ARCH_ACT_SILU, 0, 0, 0,
    0, 1e-6, 4096 * 32, parse_mistral,
};
