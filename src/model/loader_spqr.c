/* Loads a .spqr file as a model: config and tokenizer from the file's
 * sections, dense tensors (norms; the embedding and lm_head when they were
 * not quantized) and packed linears (the lm_head and the embedding too when
 * quantized) used in place from the mapping. Packed linears get the fast
 * kernels' layout (spqr_ktensor); nothing is expanded to fp32: a packed
 * embedding is looked up one dequantized row at a time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "format/spqr_file.h"
#include "io/finite.h"
#include "model/bind.h"
#include "model/config.h"
#include "model/model.h"
#include "model/model_path.h"
#include "model/special_ids.h"

/* Marks name's archive tensor as bound (load() refuses what stays unmarked). */
static void mark_used(spqr_model *m, const char *name) {
    const int32_t i = spqrf_archive_index(m->archive, name);
    if (m->archive_used && i >= 0) m->archive_used[i] = 1;
}

static spqr_status dense_linear(spqr_model *m, const char *name, int32_t rows, int32_t cols, spqr_linear *lin,
                                spqr_err *err) {
    const spqr_st_tensor *t = spqr_archive_find_dense(m->archive, name);
    if (!t) return spqr_err_set(err, SPQR_ERR_FORMAT, "dense tensor %s is missing from the .spqr file", name);
    mark_used(m, name);
    if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor %s does not have the shape [%d, %d] the config implies",
                            name, rows, cols);
    spqr_linear_kind kind;
    spqr_status st = spqri_linear_kind_of_dtype(t->dtype, name, &kind, err);
    if (!st) *lin = (spqr_linear){kind, rows, cols, t->data, NULL, NULL}; /* the archive aligns arrays to 64 bytes */
    return st;
}

/* A packed linear, or dense when the file stores it so (a layer left
 * unquantized). fast = 0: no kernel layout (an embedding only looked up). */
static spqr_status some_linear(spqr_model *m, const char *name, int32_t rows, int32_t cols, int fast,
                               spqr_linear *lin, spqr_err *err) {
    const spqr_tensor *t = spqr_archive_find_packed(m->archive, name);
    if (!t) return dense_linear(m, name, rows, cols, lin, err);
    mark_used(m, name);
    if (t->rows != rows || t->cols != cols)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "packed tensor %s is [%d, %d] but the config implies [%d, %d]",
                            name, t->rows, t->cols, rows, cols);
    spqr_ktensor *kt = NULL;
    if (fast) {
        spqr_status st = spqr_ktensor_from_tensor(t, SPQR_KERNEL_AUTO, &kt, err);
        if (st) return spqr_err_prefix(err, st, "%s", name);
        m->ktensors[m->n_ktensors++] = kt;
    }
    *lin = (spqr_linear){SPQR_LINEAR_PACKED, rows, cols, NULL, t, kt};
    return SPQR_OK;
}

static spqr_status any_linear(spqr_model *m, const char *name, int32_t rows, int32_t cols, spqr_linear *lin,
                              spqr_err *err) {
    return some_linear(m, name, rows, cols, 1, lin, err);
}

static spqr_status vec(spqr_model *m, const char *name, int32_t n, float *dst, spqr_err *err) {
    const spqr_st_tensor *t = spqr_archive_find_dense(m->archive, name);
    if (!t) return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor %s is missing from the .spqr file", name);
    mark_used(m, name);
    if (t->ndim != 1 || t->shape[0] != n)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor %s does not have the shape [%d]", name, n);
    return spqr_st_tensor_to_f32(t, dst, err);
}

static spqr_status load(const char *path, const spqr_logger *log, spqr_model *m, spqr_err *err) {
    spqr_status st = spqr_archive_open(path, &m->archive, err);
    if (st) return st;
    /* The reader already refuses non-finite packed statistics and outliers;
     * the dense tensors (embeddings, norms, unquantized layers) get the same
     * check here, once. */
    for (int32_t i = 0; i < spqr_archive_count(m->archive); i++) {
        const spqr_st_tensor *t = spqr_archive_dense_at(m->archive, i);
        if (t && (st = spqr_st_tensor_check_finite(t, err))) return spqr_err_prefix(err, st, "%s", path);
    }
    const char *cj = spqr_archive_config_json(m->archive);
    size_t tlen = 0;
    const char *tj = spqr_archive_tokenizer(m->archive, &tlen);
    if (!cj) return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: no config section", path);
    if (!tj) return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: no tokenizer section", path);
    m->config_len = strlen(cj);
    m->tokenizer_len = tlen;
    m->config_json = malloc(m->config_len + 1);
    m->tokenizer_json = malloc(tlen + 1);
    if (!m->config_json || !m->tokenizer_json) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    memcpy(m->config_json, cj, m->config_len + 1);
    memcpy(m->tokenizer_json, tj, tlen);
    m->tokenizer_json[tlen] = 0;
    if ((st = spqri_model_config_parse(m->config_json, m->config_len, &m->cfg, &m->hp, err)))
        return spqr_err_prefix(err, st, "%s", path);
    /* the config section already carries what the side files resolved */
    if ((st = spqri_model_load_tokenizer(m, NULL, "the tokenizer section", err)))
        return spqr_err_prefix(err, st, "%s", path);
    const spqr_config *c = &m->cfg;

    const int32_t H = c->hidden_size, V = c->vocab_size;
    m->archive_used = calloc((size_t)spqr_archive_count(m->archive) + 1, 1);
    if (!m->archive_used) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    m->ktensors = calloc((size_t)c->n_layers * ARCH_N_LIN + 2, sizeof *m->ktensors); /* + embedding, head */
    if (!m->ktensors) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    /* The embedding: packed when quantized (its fast layout serves as the
     * head too when tied), else dense. */
    const int head_is_embed = c->tie_word_embeddings && !spqr_archive_find_packed(m->archive, ARCH_HEAD_NAME);
    if ((st = some_linear(m, ARCH_EMBED_NAME, V, H, head_is_embed, &m->embed, err))) return st;
    spqri_model_set_embed_scale(m);
    /* Tied embeddings: the head is the embedding (one table, dense or
     * packed), unless the file carries a packed lm_head of its own (files
     * whose embedding stayed dense), which then serves as the head. */
    if (head_is_embed) m->lm_head = m->embed;
    else if ((st = any_linear(m, ARCH_HEAD_NAME, V, H, &m->lm_head, err))) return st;
    if ((st = spqri_model_bind_layers(m, any_linear, vec, 0, err))) return st;
    /* as the checkpoint loader: a tensor the model does not use (a layer
     * beyond num_hidden_layers, a stray name) is refused, not dropped */
    for (int32_t i = 0; i < spqr_archive_count(m->archive); i++)
        if (!m->archive_used[i] && (st = spqri_model_check_unused(m, spqr_archive_name(m->archive, i), err)))
            return spqr_err_prefix(err, st, "%s", path);
    free(m->archive_used);
    m->archive_used = NULL;
    spqr_log(log, SPQR_LOG_INFO, "loaded %s: %s, %d layers, hidden %d, %d packed linears (%s kernels)", path,
             m->hp.arch->model_type, c->n_layers, H, m->n_ktensors,
             m->n_ktensors ? spqr_kernel_path_name(spqr_ktensor_path(m->ktensors[0])) : "no");
    return SPQR_OK;
}

spqr_status spqr_model_load(const char *path, const spqr_logger *log, spqr_model **out, spqr_err *err) {
    if (!path || !out) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "model_load: NULL argument");
    *out = NULL;
    spqr_model_path_kind kind;
    spqr_status st = spqr_model_path_classify(path, &kind, err);
    if (st) return st;
    if (kind == SPQR_MODEL_PATH_DIR) return spqr_model_load_hf(path, log, out, err);
    spqr_model *m = calloc(1, sizeof *m);
    if (!m) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    st = load(path, log, m, err);
    if (st) {
        spqr_model_free(m);
        return st;
    }
    *out = m;
    return SPQR_OK;
}

int32_t spqr_model_is_quantized(const spqr_model *m) { return m && m->n_ktensors > 0; }
