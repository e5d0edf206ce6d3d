#include "model/bind.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* Floats one layer's norms and biases take in norm_storage. */
static size_t layer_vec_floats(const spqr_config *c, const model_arch *a) {
    size_t n = 0;
    for (int k = 0; k < ARCH_N_NORM; k++)
        if (a->norm[k].name) n += (size_t)spqri_arch_dim_size(c, a->norm[k].dim);
    for (int k = 0; k < ARCH_N_LIN; k++)
        if (a->lin[k].name && a->lin[k].bias) n += (size_t)spqri_arch_dim_size(c, a->lin[k].rows);
    return n;
}

/* Rows [r0, r0 + rows) of a dense linear, in place. */
static spqr_linear row_block(const spqr_linear *whole, int32_t r0, int32_t rows) {
    spqr_linear v = *whole;
    const size_t es = whole->kind == SPQR_LINEAR_F32 ? 4 : 2;
    v.rows = rows;
    v.data = (const char *)whole->data + (size_t)r0 * whole->cols * es;
    return v;
}

/* Binds the slots sharing a fused tensor (the first of them is k0) as
 * consecutive row blocks of it. */
static spqr_status bind_fused(spqr_model *m, spqr_layer *L, int32_t l, int k0, model_bind_linear_fn linear,
                              spqr_err *err) {
    const model_arch *a = m->hp.arch;
    const arch_linear *f = &a->lin[k0];
    int32_t total = 0;
    for (int k = k0; k < ARCH_N_LIN; k++)
        if (a->lin[k].fused && !strcmp(a->lin[k].fused, f->fused)) total += spqri_arch_dim_size(&m->cfg, a->lin[k].rows);
    char name[256];
    snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, f->fused);
    spqr_linear whole;
    spqr_status st = linear(m, name, total, spqri_arch_dim_size(&m->cfg, f->cols), &whole, err);
    if (st) return st;
    if (whole.kind == SPQR_LINEAR_PACKED)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor %s is packed; fused tensors are stored split", name);
    int32_t r0 = 0;
    for (int k = k0; k < ARCH_N_LIN; k++)
        if (a->lin[k].fused && !strcmp(a->lin[k].fused, f->fused)) {
            const int32_t rows = spqri_arch_dim_size(&m->cfg, a->lin[k].rows);
            L->lin[k] = row_block(&whole, r0, rows);
            r0 += rows;
        }
    return SPQR_OK;
}

spqr_status spqri_model_bind_layers(spqr_model *m, model_bind_linear_fn linear, model_bind_vec_fn vec, int hf_names,
                              spqr_err *err) {
    const spqr_config *c = &m->cfg;
    const model_arch *a = m->hp.arch;
    char name[256];
    spqr_status st;
    const size_t per_layer = layer_vec_floats(c, a);
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    m->n_norm_floats = per_layer * c->n_layers + (size_t)c->hidden_size;
    m->norm_storage = malloc(m->n_norm_floats * sizeof(float));
    if (!m->layers || !m->norm_storage) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    float *v = m->norm_storage;
    for (int32_t l = 0; l < c->n_layers; l++) {
        spqr_layer *L = &m->layers[l];
        for (int k = 0; k < ARCH_N_LIN; k++) {
            const arch_linear *al = &a->lin[k];
            if (!al->name) continue;
            if (hf_names && al->fused) {
                /* the fused tensor is bound once, at its first slot */
                if (spqri_arch_fused_first(a, k) && (st = bind_fused(m, L, l, k, linear, err))) return st;
            } else {
                snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, al->name);
                if ((st = linear(m, name, spqri_arch_dim_size(c, al->rows), spqri_arch_dim_size(c, al->cols), &L->lin[k], err)))
                    return st;
            }
            if (al->bias) {
                const int32_t n = spqri_arch_dim_size(c, al->rows);
                snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, al->name);
                if ((st = vec(m, name, n, v, err))) return st;
                L->bias[k] = v;
                v += n;
            }
        }
        for (int k = 0; k < ARCH_N_NORM; k++) {
            if (!a->norm[k].name) continue;
            const int32_t n = spqri_arch_dim_size(c, a->norm[k].dim);
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, a->norm[k].name);
            if ((st = vec(m, name, n, v, err))) return st;
            L->norm[k] = v;
            v += n;
        }
    }
    if ((st = vec(m, ARCH_FINAL_NORM_NAME, c->hidden_size, v, err))) return st;
    m->final_norm = v;
    return SPQR_OK;
}

void spqri_model_set_embed_scale(spqr_model *m) {
    m->embed_scale = 1.0f;
    if (!m->hp.arch->embed_scale) return;
    /* transformers: torch.tensor(hidden_size ** 0.5, dtype=embedding dtype) */
    const float s = (float)sqrt((double)m->cfg.hidden_size);
    if (m->embed.kind == SPQR_LINEAR_BF16) m->embed_scale = spqr_bf16_to_fp32(spqr_fp32_to_bf16(s));
    else if (m->embed.kind == SPQR_LINEAR_F16) m->embed_scale = spqr_fp16_to_fp32(spqr_fp32_to_fp16(s));
    else m->embed_scale = s;
}

spqr_status spqri_model_check_unused(const spqr_model *m, const char *name, spqr_err *err) {
    return spqri_model_check_name(&m->cfg, &m->hp, name, 0, err);
}

/* 1 when name is one of the .spqr names a loader binds for c (split
 * linears; biases and norms as the family table has them). */
static int is_spqr_weight(const spqr_config *c, const model_arch *a, const char *name) {
    if (!strcmp(name, ARCH_EMBED_NAME) || !strcmp(name, ARCH_HEAD_NAME) || !strcmp(name, ARCH_FINAL_NORM_NAME)) return 1;
    int layer = -1, off = 0;
    if (sscanf(name, "model.layers.%d.%n", &layer, &off) != 1 || off == 0 || layer < 0 || layer >= c->n_layers) return 0;
    const char *rest = name + off;
    char want[256];
    for (int k = 0; k < ARCH_N_LIN; k++) {
        if (!a->lin[k].name) continue;
        snprintf(want, sizeof want, "%s.weight", a->lin[k].name);
        if (!strcmp(rest, want)) return 1;
        snprintf(want, sizeof want, "%s.bias", a->lin[k].name);
        if (a->lin[k].bias && !strcmp(rest, want)) return 1;
    }
    for (int k = 0; k < ARCH_N_NORM; k++) {
        if (!a->norm[k].name) continue;
        snprintf(want, sizeof want, "%s.weight", a->norm[k].name);
        if (!strcmp(rest, want)) return 1;
    }
    return 0;
}

spqr_status spqri_model_check_name(const spqr_config *c, const model_hparams *hp, const char *name, int known,
                                   spqr_err *err) {
    static const char inv_freq[] = ".rotary_emb.inv_freq";
    const size_t n = strlen(name), k = sizeof inv_freq - 1;
    if (n >= k && !strcmp(name + n - k, inv_freq)) return SPQR_OK;
    if (c->tie_word_embeddings && !strcmp(name, ARCH_HEAD_NAME)) return SPQR_OK;
    if (known && is_spqr_weight(c, hp->arch, name)) return SPQR_OK;
    char nb[200];
    const char *shown = spqr_printable(name, nb, sizeof nb);
    static const char layers[] = "model.layers.";
    const char *p = strncmp(name, layers, sizeof layers - 1) ? NULL : name + sizeof layers - 1;
    long long layer = 0;
    int digits = 0;
    for (; p && digits < 12 && *p >= '0' && *p <= '9'; p++, digits++) layer = 10 * layer + (*p - '0');
    if (p && digits && *p == '.' && layer >= c->n_layers)
        return spqr_err_set(err, SPQR_ERR_FORMAT,
                            "tensor %s is not used by a %d-layer model (num_hidden_layers in config.json)", shown,
                            c->n_layers);
    return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor %s is not used by the model (not a weight of a %s model)", shown,
                        hp->arch->model_type);
}

static const struct { spqr_dtype dtype; spqr_linear_kind kind; } dense_kinds[3] = {
    {SPQR_DTYPE_F32, SPQR_LINEAR_F32}, {SPQR_DTYPE_F16, SPQR_LINEAR_F16}, {SPQR_DTYPE_BF16, SPQR_LINEAR_BF16}};

spqr_status spqri_linear_kind_of_dtype(spqr_dtype dtype, const char *name, spqr_linear_kind *kind, spqr_err *err) {
    for (int i = 0; i < 3; i++)
        if (dense_kinds[i].dtype == dtype) {
            *kind = dense_kinds[i].kind;
            return SPQR_OK;
        }
    return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tensor %s has dtype %s (expected F32, F16 or BF16)", name,
                        spqr_dtype_name(dtype));
}

spqr_dtype spqri_linear_kind_dtype(spqr_linear_kind kind) {
    for (int i = 0; i < 3; i++)
        if (dense_kinds[i].kind == kind) return dense_kinds[i].dtype;
    return SPQR_DTYPE_F32;
}
