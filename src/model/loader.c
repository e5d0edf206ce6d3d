/* Loads a Hugging Face checkpoint directory of a family in model/arch.h. Weights stay in
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
#include "format/spqr_file.h"
#include "io/file.h"
#include "io/finite.h"
#include "io/json_doc.h"
#include "model/bind.h"
#include "model/chat.h"
#include "model/config.h"
#include "model/model.h"
#include "model/model_path.h"
#include "model/special_ids.h"

#define INDEX_MAX_BYTES (64u << 20)
#define MAX_SHARDS 4096
/* weight_map entries, and tensors over all shards (each file allows as many). */
#define MAX_CHECKPOINT_TENSORS (1 << 20)
#define CONFIG_MAX_BYTES (4u << 20) /* as config.c */
#define TOKENIZER_MAX_BYTES (256u << 20)

/* Something of any kind is at p: opening it then says what is wrong with it
 * (a FIFO, a directory) instead of calling it missing. */
static int exists(const char *p) { struct stat s; return stat(p, &s) == 0 || errno != ENOENT; }

static spqr_status open_shard(spqr_model *m, const char *dir, const char *name, spqr_err *err) {
    char *path = spqr_path_join(dir, name);
    spqr_safetensors **nf = path ? realloc(m->files, (size_t)(m->n_files + 1) * sizeof *nf) : NULL;
    spqr_status st = nf ? SPQR_OK : spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    if (nf) m->files = nf;
    if (!st) st = spqr_safetensors_open(path, &m->files[m->n_files], err);
    if (!st) m->n_files++;
    free(path);
    return st;
}

/* A shard name from the index must be a plain file name in the directory. */
static int safe_shard_name(const char *s) {
    size_t n = strlen(s);
    return n > 0 && n < 256 && s[0] != '.' && !strchr(s, '/') && !strchr(s, '\\');
}

/* The HF loader's one lookup table: every tensor of every shard, sorted by
 * name, with its shard and whether the model bound it. */
typedef struct hf_tensor_ref {
    const char *name;
    const spqr_st_tensor *t;
    int32_t file; /* index into m->files */
    int32_t used;
} hf_tensor_ref;

static int cmp_ref(const void *x, const void *y) {
    const hf_tensor_ref *a = x, *b = y;
    int c = strcmp(a->name, b->name);
    return c ? c : (a->file > b->file) - (a->file < b->file);
}

/* Builds m->tindex over m->files (shard_names[i] names m->files[i]); a name
 * in two shards is an error naming it and both shards. */
static spqr_status index_tensors(spqr_model *m, const char *const *shard_names, spqr_err *err) {
    int64_t total = 0;
    for (int32_t f = 0; f < m->n_files; f++) total += spqr_safetensors_count(m->files[f]);
    if (total > MAX_CHECKPOINT_TENSORS)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "the checkpoint holds %lld tensors, more than the limit of %d",
                            (long long)total, MAX_CHECKPOINT_TENSORS);
    hf_tensor_ref *r = malloc((total ? (size_t)total : 1) * sizeof *r);
    if (!r) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    int32_t n = 0;
    for (int32_t f = 0; f < m->n_files; f++)
        for (int32_t i = 0; i < spqr_safetensors_count(m->files[f]); i++) {
            const spqr_st_tensor *t = spqr_safetensors_at(m->files[f], i);
            r[n++] = (hf_tensor_ref){t->name, t, f, 0};
        }
    qsort(r, (size_t)n, sizeof *r, cmp_ref);
    for (int32_t k = 1; k < n; k++)
        if (!strcmp(r[k].name, r[k - 1].name)) {
            char nb[200], a[100], b[100];
            spqr_status st = spqr_err_set(err, SPQR_ERR_FORMAT, "tensor %s is in two shards, %s and %s",
                                          spqr_printable(r[k].name, nb, sizeof nb),
                                          spqr_printable(shard_names[r[k - 1].file], a, sizeof a),
                                          spqr_printable(shard_names[r[k].file], b, sizeof b));
            free(r);
            return st;
        }
    m->tindex = r;
    m->n_tindex = n;
    return SPQR_OK;
}

/* One weight_map entry: tensor name -> shard file name (and that shard's
 * index in m->files once the shards are numbered). */
typedef struct {
    const char *tensor, *shard;
    int32_t pos, shard_idx;
} wm_entry;

static int cmp_wm_shard(const void *x, const void *y) {
    const wm_entry *a = x, *b = y;
    int c = strcmp(a->shard, b->shard);
    return c ? c : (a->pos > b->pos) - (a->pos < b->pos);
}

static int cmp_wm_tensor(const void *x, const void *y) {
    const wm_entry *a = x, *b = y;
    int c = strcmp(a->tensor, b->tensor);
    return c ? c : (a->pos > b->pos) - (a->pos < b->pos);
}

typedef struct {
    int32_t pos, group;
    const char *shard;
} shard_first;

static int cmp_first(const void *x, const void *y) {
    const shard_first *a = x, *b = y;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

/* Numbers the distinct shards of wm[0..n) in order of first appearance:
 * sets every shard_idx and names[0..*n_names). Sorting makes this n log n
 * where scanning the names seen so far for every entry was quadratic. */
static spqr_status number_shards(wm_entry *wm, int32_t n, const char **names, int32_t *n_names,
                                 const char *index_path, spqr_err *err) {
    qsort(wm, (size_t)n, sizeof *wm, cmp_wm_shard);
    int32_t g = 0;
    for (int32_t k = 0; k < n; k++) {
        if (k == 0 || strcmp(wm[k].shard, wm[k - 1].shard)) g++;
        wm[k].shard_idx = g - 1; /* for now: the shard's rank by name */
    }
    if (g > MAX_SHARDS)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: %d shards, more than the limit of %d", index_path, g,
                            MAX_SHARDS);
    shard_first *first = malloc((size_t)g * sizeof *first);
    int32_t *rank = malloc((size_t)g * sizeof *rank);
    if (!first || !rank) {
        free(first);
        free(rank);
        return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    }
    for (int32_t k = 0; k < n; k++) /* within a shard the entries are in file order */
        if (k == 0 || wm[k].shard_idx != wm[k - 1].shard_idx)
            first[wm[k].shard_idx] = (shard_first){wm[k].pos, wm[k].shard_idx, wm[k].shard};
    qsort(first, (size_t)g, sizeof *first, cmp_first);
    for (int32_t r = 0; r < g; r++) {
        rank[first[r].group] = r;
        names[r] = first[r].shard;
    }
    for (int32_t k = 0; k < n; k++) wm[k].shard_idx = rank[wm[k].shard_idx];
    free(first);
    free(rank);
    *n_names = g;
    return SPQR_OK;
}

/* The weight_map must describe the shards exactly: every entry names the
 * shard that holds its tensor, and every shard tensor has an entry (a
 * disagreeing index used to be ignored, first shard winning). */
static spqr_status check_weight_map(const spqr_model *m, wm_entry *e, int32_t n, const char *const *names,
                                    const char *index_path, spqr_err *err) {
    char nb[200], a[100], b[100];
    qsort(e, (size_t)n, sizeof *e, cmp_wm_tensor);
    for (int32_t k = 1; k < n; k++)
        if (!strcmp(e[k].tensor, e[k - 1].tensor))
            return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: weight_map lists tensor %s twice", index_path,
                                spqr_printable(e[k].tensor, nb, sizeof nb));
    int32_t i = 0, j = 0; /* both sorted by name: one merge walk */
    while (i < n || j < m->n_tindex) {
        const hf_tensor_ref *r = j < m->n_tindex ? &m->tindex[j] : NULL;
        const int c = i == n ? 1 : !r ? -1 : strcmp(e[i].tensor, r->name);
        if (c < 0)
            return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: weight_map maps tensor %s to %s, which does not hold it",
                                index_path, spqr_printable(e[i].tensor, nb, sizeof nb),
                                spqr_printable(e[i].shard, a, sizeof a));
        if (c > 0)
            return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor %s of shard %s is missing from the weight_map of %s",
                                spqr_printable(r->name, nb, sizeof nb), spqr_printable(names[r->file], a, sizeof a),
                                index_path);
        if (e[i].shard_idx != r->file)
            return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: weight_map maps tensor %s to %s, but it is in %s",
                                index_path, spqr_printable(e[i].tensor, nb, sizeof nb),
                                spqr_printable(e[i].shard, a, sizeof a),
                                spqr_printable(names[r->file], b, sizeof b));
        i++;
        j++;
    }
    return SPQR_OK;
}

/* Opens the shards the weight_map names, indexes their tensors and checks
 * the map against them. */
static spqr_status open_weight_map(spqr_model *m, const char *dir, const char *index_path, const cJSON *wm,
                                   spqr_err *err) {
    int32_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, wm) {
        if (n == MAX_CHECKPOINT_TENSORS)
            return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: weight_map has more than %d entries (the limit)",
                                index_path, MAX_CHECKPOINT_TENSORS);
        n++;
    }
    if (n == 0) return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: empty weight_map", index_path);
    wm_entry *e = malloc((size_t)n * sizeof *e);
    const char **names = malloc(MAX_SHARDS * sizeof *names);
    spqr_status st = e && names ? SPQR_OK : spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    int32_t k = 0;
    cJSON_ArrayForEach(it, wm) {
        if (st) break;
        if (!cJSON_IsString(it) || !safe_shard_name(it->valuestring)) {
            char nb[120];
            st = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: weight_map entry \"%s\" is not a plain file name",
                              index_path, spqr_printable(it->string, nb, sizeof nb));
            break;
        }
        e[k] = (wm_entry){it->string, it->valuestring, k, 0};
        k++;
    }
    int32_t n_names = 0;
    if (!st) st = number_shards(e, n, names, &n_names, index_path, err);
    for (int32_t i = 0; !st && i < n_names; i++) st = open_shard(m, dir, names[i], err);
    if (!st) st = index_tensors(m, names, err);
    if (!st) st = check_weight_map(m, e, n, names, index_path, err);
    free(e);
    free(names);
    return st;
}

static spqr_status open_sharded(spqr_model *m, const char *dir, const char *index_path, spqr_err *err) {
    char *json = NULL;
    size_t len = 0;
    spqr_status st = spqr_file_read_text(index_path, INDEX_MAX_BYTES, &json, &len, err);
    if (st) return st;
    const char *why = NULL;
    cJSON *root = spqr_json_parse_doc(json, len, &why);
    free(json);
    if (!root) return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: %s", index_path, why);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    st = cJSON_IsObject(wm) ? open_weight_map(m, dir, index_path, wm, err)
                            : spqr_err_set(err, SPQR_ERR_FORMAT, "%s: no \"weight_map\" object", index_path);
    cJSON_Delete(root);
    return st;
}

static const spqr_st_tensor *find_tensor(const spqr_model *m, const char *name) {
    int32_t lo = 0, hi = m->n_tindex - 1;
    while (lo <= hi) {
        const int32_t mid = lo + (hi - lo) / 2;
        const int c = strcmp(m->tindex[mid].name, name);
        if (c == 0) {
            m->tindex[mid].used = 1;
            return m->tindex[mid].t;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
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
    spqr_linear_kind kind;
    spqr_status st = spqri_linear_kind_of_dtype(t->dtype, name, &kind, err);
    if (st) return st;
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
    spqr_linear_kind kind;
    if ((st = spqri_linear_kind_of_dtype(t->dtype, name, &kind, err))) return st;
    *lin = (spqr_linear){kind, rows, cols, t->data, NULL, NULL};
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

static spqr_status load_vec(spqr_model *m, const char *name, int32_t n, float *dst, spqr_err *err) {
    const spqr_st_tensor *t;
    spqr_status st = get_checked(m, name, n, 0, &t, err);
    if (st) return st;
    return spqr_st_tensor_to_f32(t, dst, err);
}

static spqr_status bind_tensors(spqr_model *m, spqr_err *err) {
    const spqr_config *c = &m->cfg;
    const int32_t H = c->hidden_size, V = c->vocab_size;
    spqr_status st;
    if ((st = bind_linear(m, ARCH_EMBED_NAME, V, H, &m->embed, err))) return st;
    spqri_model_set_embed_scale(m);
    if (c->tie_word_embeddings) {
        m->lm_head = m->embed;
    } else if ((st = bind_linear(m, ARCH_HEAD_NAME, V, H, &m->lm_head, err))) {
        return st;
    }
    return spqri_model_bind_layers(m, bind_linear, load_vec, 1, err);
}

/* Binds the model through the tensor index (built here for a single-file
 * checkpoint, by open_sharded otherwise), then refuses any tensor it left
 * unused: fewer num_hidden_layers than the checkpoint holds must not drop
 * layers silently. */
static spqr_status bind_all(spqr_model *m, spqr_err *err) {
    static const char *const single[] = {"model.safetensors"};
    spqr_status st = m->tindex ? SPQR_OK : index_tensors(m, single, err);
    if (!st) st = bind_tensors(m, err);
    for (int32_t k = 0; !st && k < m->n_tindex; k++)
        if (!m->tindex[k].used) st = spqri_model_check_unused(m, m->tindex[k].name, err);
    free(m->tindex);
    m->tindex = NULL;
    m->n_tindex = 0;
    return st;
}

/* 1 when config.json declares transformers' SpQR format, which runs only
 * after `spqr import` (its linears have no .weight tensors). */
static int is_hf_spqr(const char *json, size_t len) {
    cJSON *root = cJSON_ParseWithLength(json, len);
    const char *m = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "quantization_config"), "quant_method"));
    int yes = m && !strcmp(m, "spqr");
    cJSON_Delete(root);
    return yes;
}

static spqr_status load(const char *dir, const spqr_logger *log, spqr_model *m, spqr_err *err) {
    spqr_status st;
    spqr_model_path_kind kind;
    if ((st = spqr_model_path_classify(dir, &kind, err))) return st;
    if (kind != SPQR_MODEL_PATH_DIR)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG,
                            "%s is a .spqr file (already quantized); this needs a Hugging Face checkpoint directory", dir);
    if ((st = spqri_file_read_in_dir(dir, "config.json", CONFIG_MAX_BYTES, 0, &m->config_json, &m->config_len, err)))
        return st;
    if (is_hf_spqr(m->config_json, m->config_len))
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED,
                            "%s is a Hugging Face SpQR checkpoint (quant_method \"spqr\"); convert it once with: spqr import %s -o OUT.spqr",
                            dir, dir);
    if ((st = spqri_model_config_parse(m->config_json, m->config_len, &m->cfg, &m->hp, err))) return st;

    if ((st = spqri_file_read_in_dir(dir, "tokenizer.json", TOKENIZER_MAX_BYTES, 0, &m->tokenizer_json,
                                     &m->tokenizer_len, err)))
        return st;
    /* The rule the .spqr writer applies, so quantize cannot fail at the end. */
    const char *why = spqrf_text_problem(SPQRF_SEC_TOKENIZER, m->tokenizer_json, m->tokenizer_len);
    if (why) return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: tokenizer.json: %s", dir, why);
    /* tokenizer_config.json and generation_config.json join in here */
    if ((st = spqri_model_load_tokenizer(m, dir, "tokenizer.json", err))) return st;

    char *one = spqr_path_join(dir, "model.safetensors"), *index = spqr_path_join(dir, "model.safetensors.index.json");
    if (!one || !index) st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    else if (exists(one)) st = open_shard(m, dir, "model.safetensors", err); /* a FIFO or directory is refused as such */
    else if (exists(index)) st = open_sharded(m, dir, index, err);
    else st = spqr_err_set(err, SPQR_ERR_IO, "%s: neither model.safetensors nor model.safetensors.index.json", dir);
    free(one);
    free(index);
    if (st) return st;
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
             "loaded %s: %s, %d layers, hidden %d, heads %d/%d x %d, mlp %d, vocab %d, %d shard(s), weights %s", dir,
             m->hp.arch->model_type, c->n_layers, c->hidden_size, c->n_heads, c->n_kv_heads, c->head_dim, c->intermediate_size,
             c->vocab_size, m->n_files, spqr_dtype_name(spqri_linear_kind_dtype(m->layers[0].wq.kind)));
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

void spqri_model_free_contents(spqr_model *m) {
    if (!m) return;
    free(m->tindex);
    free(m->archive_used);
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
    spqri_model_chat_free(m->chat);
    if (m->tok) spqr_tokenizer_free(m->tok);
    if (m->archive) spqr_archive_close(m->archive);
}

void spqr_model_free(spqr_model *m) {
    if (!m) return;
    spqri_model_free_contents(m);
    free(m);
}

const spqr_config *spqr_model_config(const spqr_model *m) { return &m->cfg; }
const spqr_tokenizer *spqr_model_tokenizer(const spqr_model *m) { return m->tok; }
