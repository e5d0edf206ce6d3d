/* Per-block checkpoints of the quantization pipeline and the final .spqr
 * assembly. Checkpoints are .spqr archives themselves (checksummed, written
 * atomically by the archive writer), so a half-written checkpoint is never
 * mistaken for a complete one. The final file is always assembled from the
 * block checkpoints, whether a block was computed in this run or restored
 * by --resume: a resumed run therefore writes the identical file. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "format/spqr_file.h"
#include "io/atomic_file.h"
#include "io/file.h"
#include "model/model.h"
#include "quant/budget.h"
#include "quant/pipeline.h"

cJSON *spqri_pipe_record_to_json(const pipe_layer_record *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "rows", r->rows);
    cJSON_AddNumberToObject(o, "cols", r->cols);
    cJSON_AddNumberToObject(o, "outliers", (double)r->outliers);
    cJSON_AddNumberToObject(o, "rel_err", r->rel_err);
    cJSON_AddNumberToObject(o, "formula_bits", r->formula_bits);
    cJSON_AddNumberToObject(o, "stored_bits", r->stored_bits);
    cJSON_AddNumberToObject(o, "stored_bytes", (double)r->stored_bytes);
    cJSON_AddNumberToObject(o, "file_bytes", (double)r->file_bytes);
    if (r->setting >= 0 && r->setting < spqri_budget_grid_n)
        cJSON_AddStringToObject(o, "setting", spqri_budget_grid[r->setting].label);
    return o;
}

void spqri_pipe_record_name(char *out, size_t cap, const model_arch *a, int32_t block, int32_t kind) {
    if (kind == PIPE_HEAD_KIND) snprintf(out, cap, "%s", PIPE_HEAD_NAME);
    else if (kind == PIPE_EMBED_KIND) snprintf(out, cap, "%s", ARCH_EMBED_NAME);
    else snprintf(out, cap, "model.layers.%d.%s.weight", block, a->lin[kind].name);
}

void spqri_pipe_ckpt_path(char *out, size_t cap, const char *dir, const char *what, int32_t block) {
    /* fits: spqr_model_quantize refuses a dir that leaves less than 256 bytes for a name */
    char name[64];
    snprintf(name, sizeof name, "%s_%04d.spqr", what, block);
    if (spqr_path_join_into(out, cap, dir, name)) out[0] = 0;
}

static char *block_metadata(uint64_t hash, int32_t block, const model_arch *a, const pipe_layer_record rec[PIPE_KINDS]) {
    cJSON *root = cJSON_CreateObject();
    char hs[32];
    snprintf(hs, sizeof hs, "%016" PRIx64, hash);
    cJSON_AddStringToObject(root, "hash", hs);
    cJSON_AddNumberToObject(root, "block", block);
    if (rec) {
        cJSON *arr = cJSON_AddArrayToObject(root, "layers");
        for (int k = 0; k < PIPE_KINDS; k++) {
            if (!a->lin[k].name) continue;
            cJSON *o = spqri_pipe_record_to_json(&rec[k]);
            cJSON_AddNumberToObject(o, "kind", k);
            cJSON_AddItemToArray(arr, o);
        }
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

spqr_status spqri_pipe_ckpt_write_block(const char *dir, uint64_t hash, int32_t block, const model_arch *a,
                                  spqr_tensor *const tensors[PIPE_KINDS], const pipe_layer_record rec[PIPE_KINDS],
                                  spqr_err *err) {
    char path[4096], name[256];
    spqri_pipe_ckpt_path(path, sizeof path, dir, "block", block);
    char *meta = block_metadata(hash, block, a, rec);
    if (!meta) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    spqr_archive_writer *w = NULL;
    spqr_status st = spqr_archive_writer_create(path, &w, err);
    if (!st) st = spqr_archive_writer_add_metadata(w, meta, err);
    for (int k = 0; !st && k < PIPE_KINDS; k++) {
        if (!a->lin[k].name) continue;
        spqri_pipe_record_name(name, sizeof name, a, block, k);
        st = spqr_archive_writer_add_packed(w, name, tensors[k], err);
    }
    if (!st) st = spqr_archive_writer_finish(w, err);
    spqr_archive_writer_free(w);
    free(meta);
    return st ? spqr_err_prefix(err, st, "checkpoint %s", path) : SPQR_OK;
}

spqr_status spqri_pipe_ckpt_write_inputs(const char *dir, uint64_t hash, int32_t block, const float *X, int64_t n_rows,
                                   int32_t hidden, spqr_err *err) {
    char path[4096];
    spqri_pipe_ckpt_path(path, sizeof path, dir, "inputs", block);
    char *meta = block_metadata(hash, block, NULL, NULL);
    if (!meta) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    const int64_t shape[2] = {n_rows, hidden};
    spqr_archive_writer *w = NULL;
    spqr_status st = spqr_archive_writer_create(path, &w, err);
    if (!st) st = spqr_archive_writer_add_metadata(w, meta, err);
    if (!st) st = spqr_archive_writer_add_dense(w, "inputs", SPQR_DTYPE_F32, 2, shape, X, err);
    if (!st) st = spqr_archive_writer_finish(w, err);
    spqr_archive_writer_free(w);
    free(meta);
    if (st) return spqr_err_prefix(err, st, "checkpoint %s", path);
    if (block > 0) { /* only the latest inputs are needed */
        spqri_pipe_ckpt_path(path, sizeof path, dir, "inputs", block - 1);
        unlink(path);
    }
    return SPQR_OK;
}

/* Opens a checkpoint and checks that its metadata carries hash and block. */
static spqr_archive *open_checked(const char *path, uint64_t hash, int32_t block, cJSON **meta_out) {
    if (access(path, R_OK) != 0) return NULL;
    spqr_archive *a = NULL;
    if (spqr_archive_open(path, &a, NULL)) return NULL;
    const char *mj = spqr_archive_metadata_json(a);
    cJSON *root = mj ? cJSON_Parse(mj) : NULL;
    char hs[32];
    snprintf(hs, sizeof hs, "%016" PRIx64, hash);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(root, "hash");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "block");
    if (!cJSON_IsString(h) || strcmp(h->valuestring, hs) || !cJSON_IsNumber(b) || b->valuedouble != block) {
        cJSON_Delete(root);
        spqr_archive_close(a);
        return NULL;
    }
    if (meta_out) *meta_out = root;
    else cJSON_Delete(root);
    return a;
}

static int parse_records(const cJSON *root, int32_t block, const model_arch *a, pipe_layer_record rec[PIPE_KINDS]) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "layers");
    int n = 0;
    for (int k = 0; k < PIPE_KINDS; k++) n += a->lin[k].name != NULL;
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n) return 0;
    const cJSON *o = arr->child;
    for (int k = 0; k < PIPE_KINDS; k++) {
        if (!a->lin[k].name) continue;
#define NUM(key) cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, key))
        if (NUM("kind") != k) return 0;
        rec[k].block = block;
        rec[k].kind = k;
        rec[k].rows = (int32_t)NUM("rows");
        rec[k].cols = (int32_t)NUM("cols");
        rec[k].outliers = (int64_t)NUM("outliers");
        rec[k].rel_err = NUM("rel_err");
        rec[k].formula_bits = NUM("formula_bits");
        rec[k].stored_bits = NUM("stored_bits");
        rec[k].stored_bytes = (uint64_t)NUM("stored_bytes");
        rec[k].file_bytes = (uint64_t)NUM("file_bytes");
        rec[k].setting = -1;
        const char *lab = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "setting"));
        for (int32_t s = 0; lab && s < spqri_budget_grid_n; s++)
            if (!strcmp(lab, spqri_budget_grid[s].label)) rec[k].setting = s;
        if (lab && rec[k].setting < 0) return 0;
#undef NUM
        if (rec[k].rows <= 0 || rec[k].cols <= 0) return 0;
        o = o->next;
    }
    return 1;
}

int spqri_pipe_ckpt_block_ok(const char *dir, uint64_t hash, int32_t block, const model_arch *a,
                       pipe_layer_record rec[PIPE_KINDS]) {
    char path[4096];
    spqri_pipe_ckpt_path(path, sizeof path, dir, "block", block);
    cJSON *meta = NULL;
    spqr_archive *ar = open_checked(path, hash, block, &meta);
    if (!ar) return 0;
    int ok = parse_records(meta, block, a, rec);
    char name[256];
    for (int k = 0; ok && k < PIPE_KINDS; k++) {
        if (!a->lin[k].name) continue;
        spqri_pipe_record_name(name, sizeof name, a, block, k);
        const spqr_tensor *t = spqr_archive_find_packed(ar, name);
        ok = t && t->rows == rec[k].rows && t->cols == rec[k].cols;
    }
    cJSON_Delete(meta);
    spqr_archive_close(ar);
    return ok;
}

int spqri_pipe_ckpt_load_inputs(const char *dir, uint64_t hash, int32_t block, float *X, int64_t n_rows, int32_t hidden) {
    char path[4096];
    spqri_pipe_ckpt_path(path, sizeof path, dir, "inputs", block);
    spqr_archive *a = open_checked(path, hash, block, NULL);
    if (!a) return 0;
    const spqr_st_tensor *t = spqr_archive_find_dense(a, "inputs");
    int ok = t && t->dtype == SPQR_DTYPE_F32 && t->ndim == 2 && t->shape[0] == n_rows && t->shape[1] == hidden;
    if (ok) memcpy(X, t->data, (size_t)n_rows * hidden * sizeof(float));
    spqr_archive_close(a);
    return ok;
}

void spqri_pipe_ckpt_remove_all(const char *dir, int32_t n_blocks) {
    char path[4096];
    for (int32_t l = 0; l < n_blocks; l++) {
        spqri_pipe_ckpt_path(path, sizeof path, dir, "block", l);
        unlink(path);
        spqri_pipe_ckpt_path(path, sizeof path, dir, "inputs", l);
        unlink(path);
    }
    spqri_pipe_ckpt_remove_stale(dir);
}

void spqri_pipe_ckpt_rmdir(const char *dir) { rmdir(dir); }

void spqri_pipe_ckpt_remove_stale(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char base[256], path[4096];
    while ((e = readdir(d))) {
        /* ".BASE.tmp.XXXXXX": recover BASE, then ask the writer's own rule. */
        const size_t n = strlen(e->d_name), tail = strlen(".tmp.XXXXXX");
        if (n <= tail + 1 || n - tail - 1 >= sizeof base || e->d_name[0] != '.') continue;
        memcpy(base, e->d_name + 1, n - tail - 1);
        base[n - tail - 1] = 0;
        if (!spqr_atomic_is_tmp_of(e->d_name, base)) continue;
        if (spqr_path_join_into(path, sizeof path, dir, e->d_name)) continue;
        unlink(path);
    }
    closedir(d);
}

static uint64_t ckpt_scan(const char *dir, int32_t n_blocks, int stop_at_first) {
    char path[4096];
    uint64_t bytes = 0;
    struct stat sb;
    for (int32_t l = 0; l < n_blocks; l++)
        for (int w = 0; w < 2; w++) {
            spqri_pipe_ckpt_path(path, sizeof path, dir, w ? "inputs" : "block", l);
            if (stat(path, &sb) != 0) continue;
            bytes += (uint64_t)sb.st_size;
            if (stop_at_first) return bytes ? bytes : 1;
        }
    return bytes;
}

int spqri_pipe_ckpt_any(const char *dir, int32_t n_blocks) { return ckpt_scan(dir, n_blocks, 1) > 0; }

uint64_t spqri_pipe_ckpt_bytes(const char *dir, int32_t n_blocks) { return ckpt_scan(dir, n_blocks, 0); }

int spqri_pipe_is_spqr_head(const uint8_t *head, size_t n) { return n >= 8 && !memcmp(head, SPQRF_MAGIC, 8); }

static spqr_dtype linear_dtype(const spqr_linear *l) {
    return l->kind == SPQR_LINEAR_F32 ? SPQR_DTYPE_F32 : l->kind == SPQR_LINEAR_F16 ? SPQR_DTYPE_F16 : SPQR_DTYPE_BF16;
}

/* The sections other than the packed block linears, in file order. head is
 * the packed LM head or NULL; embed the packed embedding or NULL (dense),
 * embed == head when tied and both quantized (the one table, stored under
 * the embedding's name). For spqri_pipe_fixed_file_bytes, which leaves out what
 * the allocation counts: head_alloc leaves out the head (a packed linear
 * of the allocation: no dense head either), embed_alloc the embedding's
 * section (the head's table serves as the embedding). */
static spqr_status write_fixed(spqr_archive_writer *w, const spqr_model *m, const char *metadata_json,
                               const spqr_tensor *head, const spqr_tensor *embed, int head_alloc, int embed_alloc,
                               spqr_err *err) {
    const spqr_config *c = &m->cfg;
    const model_arch *a = m->hp.arch;
    const int32_t H = c->hidden_size;
    spqr_status st = spqr_archive_writer_add_config(w, m->config_json, err);
    if (!st) st = spqr_archive_writer_add_tokenizer(w, m->tokenizer_json, m->tokenizer_len, err);
    if (!st) st = spqr_archive_writer_add_metadata(w, metadata_json, err);
    const int64_t emb_shape[2] = {c->vocab_size, H}, norm_shape[1] = {H};
    /* Tied and both quantized: the calibrated head is the one table. */
    const int shared = c->tie_word_embeddings && head && embed == head;
    if (!st && embed) st = spqr_archive_writer_add_packed(w, ARCH_EMBED_NAME, embed, err);
    else if (!st && !embed_alloc)
        st = spqr_archive_writer_add_dense(w, ARCH_EMBED_NAME, linear_dtype(&m->embed), 2, emb_shape,
                                           m->embed.data, err);
    if (!st && head && !shared) st = spqr_archive_writer_add_packed(w, PIPE_HEAD_NAME, head, err);
    else if (!st && !head && !c->tie_word_embeddings && !head_alloc)
        st = spqr_archive_writer_add_dense(w, ARCH_HEAD_NAME, linear_dtype(&m->lm_head), 2, emb_shape,
                                           m->lm_head.data, err);
    if (!st) st = spqr_archive_writer_add_dense(w, ARCH_FINAL_NORM_NAME, SPQR_DTYPE_F32, 1, norm_shape, m->final_norm, err);
    char name[256];
    /* Every norm and bias the family's table lists, in fp32 as loaded. */
    for (int32_t l = 0; !st && l < c->n_layers; l++) {
        const spqr_layer *L = &m->layers[l];
        for (int k = 0; !st && k < ARCH_N_NORM; k++) {
            if (!a->norm[k].name) continue;
            const int64_t shape[1] = {spqri_arch_dim_size(c, a->norm[k].dim)};
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, a->norm[k].name);
            st = spqr_archive_writer_add_dense(w, name, SPQR_DTYPE_F32, 1, shape, L->norm[k], err);
        }
        for (int k = 0; !st && k < ARCH_N_LIN; k++) {
            if (!a->lin[k].name || !a->lin[k].bias) continue;
            const int64_t shape[1] = {spqri_arch_dim_size(c, a->lin[k].rows)};
            snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, a->lin[k].name);
            st = spqr_archive_writer_add_dense(w, name, SPQR_DTYPE_F32, 1, shape, L->bias[k], err);
        }
    }
    return st;
}

/* File bytes of a metadata section of len bytes: the text, its NUL, 64-aligned, and its table entry. */
uint64_t spqri_pipe_metadata_file_bytes(size_t len) {
    return spqrf_align_up(len + 1, SPQRF_ALIGN) + sizeof(spqrf_entry) + sizeof "metadata";
}

spqr_status spqri_pipe_fixed_file_bytes(const spqr_model *m, const char *dir, const spqr_tensor *embed, int head_packed,
                                  int shared_table, size_t meta_len, uint64_t *out, spqr_err *err) {
    char path[4096];
    if (spqr_path_join_into(path, sizeof path, dir, "fixed_sections.spqr")) path[0] = 0;
    spqr_archive_writer *w = NULL;
    spqr_status st = spqr_archive_writer_create(path, &w, err);
    if (st) return st;
    st = write_fixed(w, m, "{}", NULL, shared_table ? NULL : embed, head_packed, shared_table, err);
    if (!st) st = spqr_archive_writer_finish(w, err);
    spqr_archive_writer_free(w);
    struct stat sb;
    if (!st && stat(path, &sb) != 0) st = spqr_err_set(err, SPQR_ERR_IO, "cannot stat %s", path);
    unlink(path);
    if (!st) *out = (uint64_t)sb.st_size - spqri_pipe_metadata_file_bytes(2) + spqri_pipe_metadata_file_bytes(meta_len);
    return st;
}

spqr_status spqri_pipe_write_model(const spqr_model *m, const char *dir, uint64_t hash, const char *metadata_json,
                             const spqr_tensor *head, const spqr_tensor *embed, const char *out_path,
                             spqr_err *err) {
    const spqr_config *c = &m->cfg;
    const model_arch *a = m->hp.arch;
    spqr_archive_writer *w = NULL;
    spqr_status st = spqr_archive_writer_create(out_path, &w, err);
    if (st) return st;
    st = write_fixed(w, m, metadata_json, head, embed, 0, 0, err);
    char name[256], path[4096];
    /* Packed tensors, one block checkpoint at a time. */
    for (int32_t l = 0; !st && l < c->n_layers; l++) {
        spqri_pipe_ckpt_path(path, sizeof path, dir, "block", l);
        /* Only this run's blocks: a checkpoint of another run (other knobs,
         * model or calibration) would silently mix two models. */
        spqr_archive *ar = open_checked(path, hash, l, NULL);
        if (!ar) {
            st = spqr_err_set(err, SPQR_ERR_FORMAT, "checkpoint %s is missing or belongs to another run", path);
            break;
        }
        for (int k = 0; !st && k < PIPE_KINDS; k++) {
            if (!a->lin[k].name) continue;
            spqri_pipe_record_name(name, sizeof name, a, l, k);
            const spqr_tensor *t = spqr_archive_find_packed(ar, name);
            st = t ? spqr_archive_writer_add_packed(w, name, t, err)
                   : spqr_err_set(err, SPQR_ERR_FORMAT, "checkpoint %s lacks %s", path, name);
        }
        spqr_archive_close(ar);
    }
    if (!st) st = spqr_archive_writer_finish(w, err);
    spqr_archive_writer_free(w);
    return st;
}
