/* Loads a Hugging Face Llama-family checkpoint directory. Weights stay in
 * the memory-mapped safetensors files; every tensor is checked against the
 * shape config.json implies before anything is used. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "io/file.h"
#include "io/finite.h"
#include "model/bind.h"
#include "model/config.h"
#include "model/model.h"
#include "model/model_path.h"

#define INDEX_MAX_BYTES (64u << 20)
#define MAX_SHARDS 4096
#define CONFIG_MAX_BYTES (4u << 20) /* as config.c */
#define TOKENIZER_MAX_BYTES (256u << 20)

/* Something of any kind is at p: opening it then says what is wrong with it
 * (a FIFO, a directory) instead of calling it missing. */
static int exists(const char *p) { struct stat s; return stat(p, &s) == 0 || errno != ENOENT; }

static spqr_status join(char *out, size_t cap, const char *dir, const char *name, spqr_err *err) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "path too long: %s/%s", dir, name);
    return SPQR_OK;
}

static spqr_status open_shard(spqr_model *m, const char *dir, const char *name, spqr_err *err) {
    char path[4096];
    spqr_status st = join(path, sizeof path, dir, name, err);
    if (st) return st;
    spqr_safetensors **nf = realloc(m->files, (size_t)(m->n_files + 1) * sizeof *nf);
    if (!nf) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    m->files = nf;
    st = spqr_safetensors_open(path, &m->files[m->n_files], err);
    if (st) return st;
    m->n_files++;
    return SPQR_OK;
}

/* A shard name from the index must be a plain file name in the directory. */
static int safe_shard_name(const char *s) {
    size_t n = strlen(s);
    return n > 0 && n < 256 && s[0] != '.' && !strchr(s, '/') && !strchr(s, '\\');
}

static spqr_status open_sharded(spqr_model *m, const char *dir, const char *index_path, spqr_err *err) {
    char *json = NULL;
    size_t len = 0;
    spqr_status st = spqr_file_read_text(index_path, INDEX_MAX_BYTES, &json, &len, err);
    if (st) return st;
    cJSON *root = cJSON_ParseWithLength(json, len);
    free(json);
    if (!root) return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: invalid JSON", index_path);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: no \"weight_map\" object", index_path);
    }
    /* Unique shard names, in order of first appearance. */
    const char **names = NULL;
    int32_t n_names = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, wm) {
        if (!cJSON_IsString(it) || !safe_shard_name(it->valuestring)) {
            st = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: weight_map entry \"%.100s\" is not a plain file name",
                              index_path, it->string ? it->string : "?");
            break;
        }
        int seen = 0;
        for (int32_t i = 0; i < n_names && !seen; i++) seen = !strcmp(names[i], it->valuestring);
        if (seen) continue;
        if (n_names >= MAX_SHARDS) { st = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: too many shards", index_path); break; }
        const char **nn = realloc(names, (size_t)(n_names + 1) * sizeof *nn);
        if (!nn) { st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory"); break; }
        names = nn;
        names[n_names++] = it->valuestring;
    }
    if (!st && n_names == 0) st = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: empty weight_map", index_path);
    for (int32_t i = 0; !st && i < n_names; i++) st = open_shard(m, dir, names[i], err);
    free(names);
    cJSON_Delete(root);
    return st;
}

static const spqr_st_tensor *find_tensor(const spqr_model *m, const char *name) {
    for (int32_t i = 0; i < m->n_files; i++) {
        const spqr_st_tensor *t = spqr_safetensors_find(m->files[i], name);
        if (t) return t;
    }
    return NULL;
}

static void shape_str(const spqr_st_tensor *t, char *buf, size_t cap) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (int32_t d = 0; d < t->ndim && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* Finds name, checks dtype and shape ([d0] when d1 == 0, else [d0, d1]). */
static spqr_status get_checked(const spqr_model *m, const char *name, int64_t d0, int64_t d1,
                               const spqr_st_tensor **out, spqr_err *err) {
    const spqr_st_tensor *t = find_tensor(m, name);
    if (!t) return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor %s is missing from the checkpoint", name);
    if (t->dtype != SPQR_DTYPE_F32 && t->dtype != SPQR_DTYPE_F16 && t->dtype != SPQR_DTYPE_BF16)
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tensor %s has dtype %s (expected F32, F16 or BF16)", name,
                            spqr_dtype_name(t->dtype));
    int ok = d1 ? (t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == d1) : (t->ndim == 1 && t->shape[0] == d0);
    if (!ok) {
        char got[128];
        shape_str(t, got, sizeof got);
        if (d1)
            return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor %s has shape %s but config.json implies [%lld, %lld]",
                                name, got, (long long)d0, (long long)d1);
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor %s has shape %s but config.json implies [%lld]", name, got,
                            (long long)d0);
    }
    *out = t;
    return SPQR_OK;
}

static spqr_status bind_linear(spqr_model *m, const char *name, int32_t rows, int32_t cols, spqr_linear *lin,
                               spqr_err *err) {
    const spqr_st_tensor *t;
    spqr_status st = get_checked(m, name, rows, cols, &t, err);
    if (st) return st;
    lin->kind = t->dtype == SPQR_DTYPE_F32 ? SPQR_LINEAR_F32 : t->dtype == SPQR_DTYPE_F16 ? SPQR_LINEAR_F16 : SPQR_LINEAR_BF16;
    lin->rows = rows;
    lin->cols = cols;
    lin->packed = NULL;
    lin->data = t->data;
    /* safetensors does not promise alignment; vectorised loops may assume
     * element alignment, so misaligned tensors get an aligned copy. */
    size_t es = spqr_dtype_size(t->dtype);
    if ((uintptr_t)t->data % es) {
        void **no = realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *no);
        if (!no) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
        m->owned = no;
        void *copy = malloc(t->nbytes);
        if (!copy) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory copying %s", name);
        memcpy(copy, t->data, t->nbytes);
        m->owned[m->n_owned++] = copy;
        lin->data = copy;
    }
    return SPQR_OK;
}

static spqr_status load_norm(spqr_model *m, const char *name, float *dst, spqr_err *err) {
    const spqr_st_tensor *t;
    spqr_status st = get_checked(m, name, m->cfg.hidden_size, 0, &t, err);
    if (st) return st;
    return spqr_st_tensor_to_f32(t, dst, err);
}

static spqr_status bind_all(spqr_model *m, spqr_err *err) {
    const spqr_config *c = &m->cfg;
    const int32_t H = c->hidden_size, V = c->vocab_size;
    spqr_status st;
    if ((st = bind_linear(m, "model.embed_tokens.weight", V, H, &m->embed, err))) return st;
    if (c->tie_word_embeddings) {
        m->lm_head = m->embed;
    } else if ((st = bind_linear(m, "lm_head.weight", V, H, &m->lm_head, err))) {
        return st;
    }
    return model_bind_layers(m, bind_linear, load_norm, err);
}

static spqr_status load(const char *dir, const spqr_logger *log, spqr_model *m, spqr_err *err) {
    char path[4096];
    spqr_status st;
    spqr_model_path_kind kind;
    if ((st = spqr_model_path_classify(dir, &kind, err))) return st;
    if (kind != SPQR_MODEL_PATH_DIR)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG,
                            "%s is a .spqr file (already quantized); this needs a Hugging Face checkpoint directory", dir);
    if ((st = join(path, sizeof path, dir, "config.json", err))) return st;
    if (!exists(path)) return spqr_err_set(err, SPQR_ERR_IO, "%s: no config.json in the model directory", dir);
    if ((st = spqr_file_read_text(path, CONFIG_MAX_BYTES, &m->config_json, &m->config_len, err))) return st;
    if ((st = spqr_config_parse(m->config_json, m->config_len, &m->cfg, err))) return st;

    if ((st = join(path, sizeof path, dir, "tokenizer.json", err))) return st;
    if (!exists(path)) return spqr_err_set(err, SPQR_ERR_IO, "%s: no tokenizer.json in the model directory", dir);
    if ((st = spqr_file_read_text(path, TOKENIZER_MAX_BYTES, &m->tokenizer_json, &m->tokenizer_len, err))) return st;
    if ((st = spqr_tokenizer_load_from_memory(m->tokenizer_json, m->tokenizer_len, &m->tok, err)))
        return spqr_err_prefix(err, st, "%s", path);
    int32_t tv = spqr_tokenizer_vocab_size(m->tok);
    if (tv > m->cfg.vocab_size)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer.json has %d tokens but config.json vocab_size is %d", tv,
                            m->cfg.vocab_size);
    if (m->cfg.bos_token_id < 0) m->cfg.bos_token_id = spqr_tokenizer_bos_id(m->tok);
    if (m->cfg.eos_token_id < 0) m->cfg.eos_token_id = spqr_tokenizer_eos_id(m->tok);
    if (m->cfg.bos_token_id >= m->cfg.vocab_size || m->cfg.eos_token_id >= m->cfg.vocab_size)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "bos/eos token id outside the vocabulary");

    char index[4096];
    if ((st = join(path, sizeof path, dir, "model.safetensors", err))) return st;
    if ((st = join(index, sizeof index, dir, "model.safetensors.index.json", err))) return st;
    if (exists(path)) { /* a FIFO or directory of that name is refused as such by the open */
        if ((st = open_shard(m, dir, "model.safetensors", err))) return st;
    } else if (exists(index)) {
        if ((st = open_sharded(m, dir, index, err))) return st;
    } else {
        return spqr_err_set(err, SPQR_ERR_IO, "%s: neither model.safetensors nor model.safetensors.index.json", dir);
    }
    /* Every float tensor once, before anything computes with it: a NaN or
     * Inf would otherwise surface as NaN perplexity or a NaN Hessian in
     * some later layer, far from the tensor that holds it. */
    for (int32_t f = 0; f < m->n_files; f++)
        for (int32_t i = 0; i < spqr_safetensors_count(m->files[f]); i++)
            if ((st = spqr_st_tensor_check_finite(spqr_safetensors_at(m->files[f], i), err)))
                return spqr_err_prefix(err, st, "%s", dir);
    if ((st = bind_all(m, err))) return st;
    const spqr_config *c = &m->cfg;
    spqr_log(log, SPQR_LOG_INFO,
             "loaded %s: %d layers, hidden %d, heads %d/%d x %d, mlp %d, vocab %d, %d shard(s), weights %s", dir,
             c->n_layers, c->hidden_size, c->n_heads, c->n_kv_heads, c->head_dim, c->intermediate_size,
             c->vocab_size, m->n_files, spqr_dtype_name(m->layers[0].wq.kind == SPQR_LINEAR_F32 ? SPQR_DTYPE_F32 : m->layers[0].wq.kind == SPQR_LINEAR_F16 ? SPQR_DTYPE_F16 : SPQR_DTYPE_BF16));
    return SPQR_OK;
}

spqr_status spqr_model_load_hf(const char *dir, const spqr_logger *log, spqr_model **out, spqr_err *err) {
    if (!dir || !out) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "model_load: NULL argument");
    *out = NULL;
    spqr_model *m = calloc(1, sizeof *m);
    if (!m) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    spqr_status st = load(dir, log, m, err);
    if (st) {
        spqr_model_free(m);
        return st;
    }
    *out = m;
    return SPQR_OK;
}

void model_free_contents(spqr_model *m) {
    if (!m) return;
    for (int32_t i = 0; i < m->n_files; i++) spqr_safetensors_close(m->files[i]);
    for (int32_t i = 0; i < m->n_owned; i++) free(m->owned[i]);
    for (int32_t i = 0; i < m->n_ktensors; i++) spqr_ktensor_free(m->ktensors[i]);
    free(m->ktensors);
    free(m->owned);
    free(m->files);
    free(m->layers);
    free(m->norm_storage);
    free(m->config_json);
    free(m->tokenizer_json);
    if (m->tok) spqr_tokenizer_free(m->tok);
    if (m->archive) spqr_archive_close(m->archive);
}

void spqr_model_free(spqr_model *m) {
    if (!m) return;
    model_free_contents(m);
    free(m);
}

const spqr_config *spqr_model_config(const spqr_model *m) { return &m->cfg; }
const spqr_tokenizer *spqr_model_tokenizer(const spqr_model *m) { return m->tok; }
