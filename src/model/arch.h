/* The architecture table: everything that differs between the model
 * families the runtime implements, in one place. A family is one
 * arch_<family>.c file holding a model_arch (tensor names and shapes, its
 * linears with their calibration groups and biases, its norms, activation,
 * attention variant) and a parse hook for its own config.json fields;
 * arch.c lists the families. The loaders, the binding, the forward pass, the
 * calibration pipeline, its checkpoints and the synthetic generator all read
 * this table instead of spelling out Llama's names (docs/model.md). */
#ifndef SPQR_MODEL_ARCH_H
#define SPQR_MODEL_ARCH_H

#include <stddef.h>
#include <stdint.h>

#include "spqr.h"

struct cJSON;

/* Slots of a layer's linears. The forward pass knows what each slot does;
 * the table says whether a family has it, its name, shape and group. */
typedef enum {
    ARCH_LIN_Q, ARCH_LIN_K, ARCH_LIN_V, ARCH_LIN_O, ARCH_LIN_GATE, ARCH_LIN_UP, ARCH_LIN_DOWN, ARCH_N_LIN
} arch_lin_slot;

/* Slots of a layer's norm vectors (NULL in the layer when the family has none). */
typedef enum {
    ARCH_NORM_ATTN,      /* before attention (input_layernorm) */
    ARCH_NORM_FFN,       /* before the MLP (post_attention_layernorm in Llama, pre_feedforward_layernorm in Gemma 2) */
    ARCH_NORM_ATTN_OUT,  /* on the attention output before the residual add (Gemma 2) */
    ARCH_NORM_FFN_OUT,   /* on the MLP output before the residual add (Gemma 2) */
    ARCH_NORM_Q,         /* per head on q before RoPE, [head_dim] (Qwen3) */
    ARCH_NORM_K,         /* per head on k before RoPE, [head_dim] (Qwen3) */
    ARCH_N_NORM
} arch_norm_slot;

/* Sizes a tensor dimension can have, resolved against the config. */
typedef enum { ARCH_DIM_HIDDEN, ARCH_DIM_Q, ARCH_DIM_KV, ARCH_DIM_INTER, ARCH_DIM_HEAD } arch_dim;

/* Calibration groups, in the order a layer uses their inputs (true-sequential
 * SpQR): q,k,v share the attention-normed x; o gets the attention output;
 * gate,up share the MLP-normed x; down gets act(gate)*up. */
enum { MODEL_GROUP_QKV = 0, MODEL_GROUP_O = 1, MODEL_GROUP_GATE_UP = 2, MODEL_GROUP_DOWN = 3, MODEL_N_GROUPS = 4 };

typedef struct arch_linear {
    const char *name;   /* "self_attn.q_proj": model.layers.N.<name>.weight (and .bias), as stored in .spqr */
    arch_dim rows, cols;
    int32_t group;      /* MODEL_GROUP_* */
    int32_t bias;       /* 1: a [rows] <name>.bias vector is added after the product */
    /* A Hugging Face checkpoint holding this linear as a block of rows of a
     * fused tensor (Phi-3's qkv_proj, gate_up_proj): that tensor's name and
     * which consecutive block (the blocks are the slots sharing fused, in
     * slot order). NULL: the tensor is stored under name. */
    const char *fused;
} arch_linear;

typedef struct arch_norm {
    const char *name;   /* model.layers.N.<name>.weight; NULL: the family has no such norm */
    arch_dim dim;
} arch_norm;

typedef enum { ARCH_ACT_SILU, ARCH_ACT_GELU_TANH } arch_act;

/* What config.json says beyond spqr_config, resolved per family. */
typedef struct model_hparams {
    const struct model_arch *arch;
    int32_t sliding_window;     /* positions a sliding layer sees (itself included); 0: none */
    uint8_t slides[4096 / 8];   /* bit l: layer l uses the sliding window */
    float attn_scale;           /* softmax scale of q.k (1/sqrt(head_dim) unless the family says) */
    float attn_softcap;         /* scores -> cap * tanh(scores / cap); 0: off (Gemma 2) */
    float final_softcap;        /* the same on the logits (Gemma 2) */
} model_hparams;

typedef struct model_arch {
    const char *model_type;     /* config.json "model_type" */
    const char *description;    /* one line for docs and messages */
    arch_linear lin[ARCH_N_LIN];
    arch_norm norm[ARCH_N_NORM];
    arch_act act;
    int32_t norm_plus_one;      /* RMSNorm multiplies by (1 + w) (Gemma) */
    int32_t embed_scale;        /* embeddings times sqrt(hidden) rounded to the weights' dtype (Gemma) */
    int32_t tie_default;        /* tie_word_embeddings when config.json omits it */
    /* transformers' defaults for fields config.json may omit */
    int32_t head_dim_default;   /* head_dim; 0: hidden_size / num_attention_heads */
    double rms_eps_default;     /* rms_norm_eps */
    int32_t max_pos_default;    /* max_position_embeddings */
    /* The family's own config.json fields: checks what the runtime does not
     * implement (one line naming the field and what is supported) and fills
     * hp. c already holds the common fields. */
    spqr_status (*parse)(const struct cJSON *root, spqr_config *c, model_hparams *hp, spqr_err *err);
} model_arch;

/* Top-level tensor names, the same in every family so far. */
#define ARCH_EMBED_NAME "model.embed_tokens.weight"
#define ARCH_HEAD_NAME "lm_head.weight"
#define ARCH_FINAL_NORM_NAME "model.norm.weight"

/* The seven linears under Llama's names, the layout most families share
 * (qkv_bias: 1 when q, k and v carry biases, as in Qwen2). */
#define ARCH_LINEARS_LLAMA(qkv_bias)                                                                               \
    {                                                                                                              \
        [ARCH_LIN_Q] = {"self_attn.q_proj", ARCH_DIM_Q, ARCH_DIM_HIDDEN, MODEL_GROUP_QKV, qkv_bias, NULL},         \
        [ARCH_LIN_K] = {"self_attn.k_proj", ARCH_DIM_KV, ARCH_DIM_HIDDEN, MODEL_GROUP_QKV, qkv_bias, NULL},        \
        [ARCH_LIN_V] = {"self_attn.v_proj", ARCH_DIM_KV, ARCH_DIM_HIDDEN, MODEL_GROUP_QKV, qkv_bias, NULL},        \
        [ARCH_LIN_O] = {"self_attn.o_proj", ARCH_DIM_HIDDEN, ARCH_DIM_Q, MODEL_GROUP_O, 0, NULL},                  \
        [ARCH_LIN_GATE] = {"mlp.gate_proj", ARCH_DIM_INTER, ARCH_DIM_HIDDEN, MODEL_GROUP_GATE_UP, 0, NULL},        \
        [ARCH_LIN_UP] = {"mlp.up_proj", ARCH_DIM_INTER, ARCH_DIM_HIDDEN, MODEL_GROUP_GATE_UP, 0, NULL},            \
        [ARCH_LIN_DOWN] = {"mlp.down_proj", ARCH_DIM_HIDDEN, ARCH_DIM_INTER, MODEL_GROUP_DOWN, 0, NULL},           \
    }

/* The family of a model_type, or NULL. */
const model_arch *spqri_arch_find(const char *model_type);
/* "llama, mistral, ..." for messages, into buf (cap bytes, truncated to fit). */
const char *spqri_arch_supported_list(char *buf, size_t cap);
/* Number of families and the i-th one (docs, tests). */
int32_t spqri_arch_count(void);
const model_arch *spqri_arch_at(int32_t i);

/* 1 when slot k is fused (lin[k].fused) and no earlier slot shares its fused
 * tensor: the slot a fused tensor is bound or written at. */
int spqri_arch_fused_first(const model_arch *a, int k);

/* The size dim stands for under c. */
int32_t spqri_arch_dim_size(const spqr_config *c, arch_dim dim);

/* 1 when layer l attends through the sliding window. */
static inline int arch_layer_slides(const model_hparams *hp, int32_t l) {
    return hp->sliding_window > 0 && l >= 0 && l < 4096 && (hp->slides[l / 8] >> (l % 8) & 1);
}

/* Helpers for the families' parse hooks (arch.c). */
/* Refuses a boolean field that is true (what: why it is not supported). */
spqr_status spqri_arch_refuse_true(const struct cJSON *root, const char *key, spqr_err *err);
/* hidden_act / hidden_activation: absent, null, or one of the names (NULL-terminated). */
spqr_status spqri_arch_check_string(const struct cJSON *root, const char *key, const char *const *allowed, spqr_err *err);
/* A number field: absent or null -> def; else in [lo, hi]. */
spqr_status spqri_arch_get_float(const struct cJSON *root, const char *key, double def, double lo, double hi, float *out,
                           spqr_err *err);
/* sliding_window (null: none; absent: default_window, 0 = none) unless
 * use_sliding_window is false; every layer slides (even_layers_only: layers
 * 0, 2, 4, ...) unless layer_types lists them and the family reads that
 * field (read_layer_types; transformers' Mistral and Phi-3 do not); a
 * window covering max_position_embeddings changes nothing and is kept as
 * none. */
spqr_status spqri_arch_parse_sliding_window(const struct cJSON *root, const spqr_config *c, model_hparams *hp,
                                      int32_t default_window, int even_layers_only, int read_layer_types, spqr_err *err);

/* The families, in the order messages list them: adding one is its
 * arch_<family>.c file plus its name here. */
#define ARCH_FAMILIES(X) X(llama) X(mistral) X(qwen2) X(qwen3) X(phi3) X(gemma) X(gemma2)
#define ARCH_DECLARE(f) extern const model_arch spqri_arch_##f;
ARCH_FAMILIES(ARCH_DECLARE)
#undef ARCH_DECLARE

#endif
