/* Internal layout of a loaded model: every linear layer behind the one
 * spqr_linear interface, norms widened to fp32 (they are tiny). */
#ifndef SPQR_MODEL_MODEL_H
#define SPQR_MODEL_MODEL_H

#include "model/linear.h"
#include "spqr.h"

typedef struct spqr_layer {
    const float *attn_norm;   /* [hidden] input_layernorm */
    const float *ffn_norm;    /* [hidden] post_attention_layernorm */
    spqr_linear wq;           /* [n_heads*head_dim][hidden] */
    spqr_linear wk, wv;       /* [n_kv_heads*head_dim][hidden] */
    spqr_linear wo;           /* [hidden][n_heads*head_dim] */
    spqr_linear w_gate, w_up; /* [intermediate][hidden] */
    spqr_linear w_down;       /* [hidden][intermediate] */
} spqr_layer;

struct spqr_model {
    spqr_config cfg;          /* bos/eos resolved: config.json first, else tokenizer */
    spqr_tokenizer *tok;
    spqr_safetensors **files; /* memory-mapped shards the linears point into */
    int32_t n_files;
    spqr_linear embed;        /* [vocab][hidden], used by row lookup */
    spqr_linear lm_head;      /* [vocab][hidden]; = embed when tied */
    const float *final_norm;  /* [hidden] */
    spqr_layer *layers;       /* [n_layers] */
    float *norm_storage;      /* owns all norm vectors */
    void **owned;             /* copies of misaligned tensors */
    int32_t n_owned;
    /* The source texts, kept so a quantized copy can carry them verbatim. */
    char *config_json;        /* config.json bytes, NUL-terminated */
    size_t config_len;
    char *tokenizer_json;     /* tokenizer.json bytes, NUL-terminated */
    size_t tokenizer_len;
    struct spqr_model_chat *chat; /* chat template + its bos/eos strings, or NULL (model/chat.c) */
    spqr_archive *archive;    /* .spqr file the tensors point into, or NULL */
    spqr_ktensor **ktensors;  /* fast layouts of the packed linears (owned) */
    int32_t n_ktensors;
    /* While the HF loader binds: every checkpoint tensor sorted by name
     * (loader.c builds it once over all shards and frees it after binding). */
    struct hf_tensor_ref *tindex;
    int32_t n_tindex;
};

/* Frees what a partly or fully built model owns (NULL-safe). */
void model_free_contents(spqr_model *m);

#endif
