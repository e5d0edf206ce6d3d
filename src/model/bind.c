#include "model/bind.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

spqr_status model_bind_layers(spqr_model *m, model_bind_linear_fn linear, model_bind_norm_fn norm, spqr_err *err) {
    const spqr_config *c = &m->cfg;
    const int32_t H = c->hidden_size, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    const int32_t I = c->intermediate_size;
    char name[256];
    spqr_status st;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    /* [2 * n_layers + 1][hidden]: attn/ffn norm per layer, then the final norm */
    m->norm_storage = malloc(((size_t)2 * c->n_layers + 1) * H * sizeof(float));
    if (!m->layers || !m->norm_storage) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    for (int32_t l = 0; l < c->n_layers; l++) {
        spqr_layer *L = &m->layers[l];
        const struct { const char *suffix; int32_t rows, cols; spqr_linear *lin; } lins[7] = {
            {"self_attn.q_proj", qd, H, &L->wq},   {"self_attn.k_proj", kvd, H, &L->wk},
            {"self_attn.v_proj", kvd, H, &L->wv},  {"self_attn.o_proj", H, qd, &L->wo},
            {"mlp.gate_proj", I, H, &L->w_gate},   {"mlp.up_proj", I, H, &L->w_up},
            {"mlp.down_proj", H, I, &L->w_down},
        };
        for (int k = 0; k < 7; k++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, lins[k].suffix);
            if ((st = linear(m, name, lins[k].rows, lins[k].cols, lins[k].lin, err))) return st;
        }
        float *an = m->norm_storage + (size_t)(2 * l) * H, *fn = an + H;
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        if ((st = norm(m, name, an, err))) return st;
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        if ((st = norm(m, name, fn, err))) return st;
        L->attn_norm = an;
        L->ffn_norm = fn;
    }
    float *final = m->norm_storage + (size_t)2 * c->n_layers * H;
    if ((st = norm(m, "model.norm.weight", final, err))) return st;
    m->final_norm = final;
    return SPQR_OK;
}

spqr_status model_check_unused(const spqr_model *m, const char *name, spqr_err *err) {
    static const char inv_freq[] = ".rotary_emb.inv_freq";
    const size_t n = strlen(name), k = sizeof inv_freq - 1;
    if (n >= k && !strcmp(name + n - k, inv_freq)) return SPQR_OK;
    if (m->cfg.tie_word_embeddings && !strcmp(name, "lm_head.weight")) return SPQR_OK;
    char nb[200];
    const char *shown = spqr_printable(name, nb, sizeof nb);
    static const char layers[] = "model.layers.";
    const char *p = strncmp(name, layers, sizeof layers - 1) ? NULL : name + sizeof layers - 1;
    long long layer = 0;
    int digits = 0;
    for (; p && digits < 12 && *p >= '0' && *p <= '9'; p++, digits++) layer = 10 * layer + (*p - '0');
    if (p && digits && *p == '.' && layer >= m->cfg.n_layers)
        return spqr_err_set(err, SPQR_ERR_FORMAT,
                            "tensor %s is not used by a %d-layer model (num_hidden_layers in config.json)", shown,
                            m->cfg.n_layers);
    return spqr_err_set(err, SPQR_ERR_FORMAT,
                        "tensor %s is not used by the model (not a weight of a Llama-family model)", shown);
}
