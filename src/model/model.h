/* Internal layout of a loaded model: every linear layer behind the one
 * spqr_linear interface, norms and biases widened to fp32 (they are tiny).
 * Which slots a family fills, and what they are called, is model/arch.h's. */
#ifndef SPQR_MODEL_MODEL_H
#define SPQR_MODEL_MODEL_H

#include "model/arch.h"
#include "model/linear.h"
#include "spqr.h"

typedef struct spqr_layer {
    union {
        spqr_linear lin[ARCH_N_LIN]; /* indexed by arch_lin_slot */
        struct {
            spqr_linear wq;           /* [n_heads*head_dim][hidden] */
            spqr_linear wk, wv;       /* [n_kv_heads*head_dim][hidden] */
            spqr_linear wo;           /* [hidden][n_heads*head_dim] */
            spqr_linear w_gate, w_up; /* [intermediate][hidden] */
            spqr_linear w_down;       /* [hidden][intermediate] */
        };
    };
    const float *bias[ARCH_N_LIN];   /* [rows] added after the product, or NULL */
    union {
        const float *norm[ARCH_N_NORM]; /* indexed by arch_norm_slot; NULL: the family has none */
        struct {
            const float *attn_norm;   /* [hidden] before attention */
            const float *ffn_norm;    /* [hidden] before the MLP */
        };
    };
} spqr_layer;

struct spqr_model {
    spqr_config cfg;          /* bos/eos resolved: config.json first, else tokenizer */
    model_hparams hp;         /* the family (hp.arch) and its own hyperparameters */
    float embed_scale;        /* embeddings are multiplied by it (1 unless the family scales them) */
    spqr_tokenizer *tok;
    spqr_safetensors **files; /* memory-mapped shards the linears point into */
    int32_t n_files;
    spqr_linear embed;        /* [vocab][hidden], used by row lookup */
    spqr_linear lm_head;      /* [vocab][hidden]; = embed when tied */
    const float *final_norm;  /* [hidden] */
    spqr_layer *layers;       /* [n_layers] */
    float *norm_storage;      /* owns all norm and bias vectors: per layer, then the final norm */
    size_t n_norm_floats;     /* floats in norm_storage */
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
    uint8_t *archive_used;          /* while loading a .spqr: which archive tensors the model bound */
};

/* emb[hidden] = embedding row of token, times m->embed_scale. The one
 * embedding lookup of the forward pass and the calibration pipeline. */
spqr_status spqri_model_embed(const spqr_model *m, int32_t token, float *emb, spqr_err *err);

/* *view = m restricted to one layer, layers[l] of the array layers (m->layers
 * or a substitute of the same length): a session on view runs that layer as
 * its layer 0, attending as layer l of m does (sliding or not). The view
 * shares everything with m and owns nothing; do not free it. */
void spqri_model_layer_view(spqr_model *view, const spqr_model *m, spqr_layer *layers, int32_t l);

/* Frees what a partly or fully built model owns (NULL-safe). */
void spqri_model_free_contents(spqr_model *m);

#endif
