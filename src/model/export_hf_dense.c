/* spqr export --to hf-fp16 | hf-bf16: the dequantized model as a plain
 * sharded safetensors checkpoint that any Hugging Face tool loads. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "format/spqr_file.h"
#include "io/file.h"
#include "io/outpath.h"
#include "model/arch.h"
#include "model/export.h"
#include "model/export_common.h"

/* One output tensor: an archive tensor, or the blocks of rows of a tensor
 * the family's checkpoints keep fused (Phi-3's qkv_proj, gate_up_proj),
 * stacked in slot order. */
#define MAX_PARTS ARCH_N_LIN
typedef struct {
    char name[SPQRF_MAX_NAME + 32];
    int32_t ndim;
    int64_t shape[SPQR_MAX_DIMS];
    uint64_t numel;
    int32_t shard;
    int32_t n_parts, part[MAX_PARTS];
} plan_entry;

static void tensor_shape(const spqr_archive *a, int32_t i, int32_t *ndim, int64_t shape[SPQR_MAX_DIMS], uint64_t *numel) {
    const spqr_st_tensor *d = spqr_archive_dense_at(a, i);
    memset(shape, 0, sizeof(int64_t) * SPQR_MAX_DIMS);
    if (d) {
        *ndim = d->ndim;
        memcpy(shape, d->shape, sizeof(int64_t) * SPQR_MAX_DIMS);
        *numel = (uint64_t)d->numel;
    } else {
        const spqr_tensor *p = spqr_archive_packed_at(a, i);
        *ndim = 2;
        shape[0] = p->rows;
        shape[1] = p->cols;
        *numel = (uint64_t)p->rows * (uint64_t)p->cols;
    }
}

/* Fills e for archive tensor i (parts stacked along dimension 0). */
static spqr_status plan_tensor(const spqr_archive *a, const model_arch *arch, int32_t i, plan_entry *e, int *skip,
                               spqr_err *err) {
    int first = 1;
    *skip = 0;
    const int f = spqri_export_fused(a, arch, i, &first, e->name, sizeof e->name, e->part, &e->n_parts, err);
    if (f < 0) return err->code;
    if (f) {
        if (!first) {
            *skip = 1;
            return SPQR_OK;
        }
    } else {
        snprintf(e->name, sizeof e->name, "%s", spqr_archive_name(a, i));
        e->n_parts = 1;
        e->part[0] = i;
    }
    e->numel = 0;
    for (int32_t k = 0; k < e->n_parts; k++) {
        int32_t nd;
        int64_t sh[SPQR_MAX_DIMS];
        uint64_t ne;
        tensor_shape(a, e->part[k], &nd, sh, &ne);
        if (k == 0) {
            e->ndim = nd;
            memcpy(e->shape, sh, sizeof sh);
        } else {
            if (nd != e->ndim || (nd == 2 && sh[1] != e->shape[1]))
                return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: its parts differ in shape", e->name);
            e->shape[0] += sh[0];
        }
        e->numel += ne;
    }
    return SPQR_OK;
}

/* fp32 of entry e (dense converted, packed dequantized, parts one after
 * another), then rounded to dtype. */
static spqr_status convert(const spqr_archive *a, const plan_entry *e, spqr_dtype dtype, float *tmp, uint16_t *dst,
                           spqr_err *err) {
    uint64_t at = 0;
    for (int32_t k = 0; k < e->n_parts; k++) {
        const int32_t i = e->part[k];
        const spqr_st_tensor *d = spqr_archive_dense_at(a, i);
        spqr_status st = d ? spqr_st_tensor_to_f32(d, tmp + at, err)
                           : spqr_tensor_dequantize(spqr_archive_packed_at(a, i), tmp + at, err);
        if (st) return spqr_err_prefix(err, st, "%s", spqr_archive_name(a, i));
        int32_t nd;
        int64_t sh[SPQR_MAX_DIMS];
        uint64_t ne;
        tensor_shape(a, i, &nd, sh, &ne);
        at += ne;
    }
    for (uint64_t k = 0; k < e->numel; k++) {
        dst[k] = dtype == SPQR_DTYPE_BF16 ? spqr_fp32_to_bf16(tmp[k]) : spqr_fp32_to_fp16(tmp[k]);
        if (dtype == SPQR_DTYPE_F16 && isinf(spqr_fp16_to_fp32(dst[k])))
            return spqr_err_set(err, SPQR_ERR_NUMERIC, "%s: weight %g does not fit in fp16; export hf-bf16 instead",
                                e->name, (double)tmp[k]);
    }
    return SPQR_OK;
}

static spqr_status write_shard(const spqr_archive *a, const plan_entry *plan, int32_t n, int32_t shard,
                               spqr_dtype dtype, const char *path, const volatile int *cancel, spqr_err *err) {
    spqr_st_writer *w = NULL;
    spqr_status st = spqr_st_writer_create(&w, err);
    if (st) return st;
    uint16_t **bufs = calloc((size_t)n, sizeof *bufs);
    float *tmp = NULL;
    uint64_t tmp_cap = 0;
    if (!bufs) st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    if (!st) st = spqr_st_writer_set_metadata(w, "format", "pt", err); /* transformers requires it */
    for (int32_t i = 0; i < n && !st; i++) {
        if (plan[i].shard != shard) continue;
        if (cancel && *cancel) {
            st = spqr_err_set(err, SPQR_ERR_INTERRUPTED, "export interrupted");
            break;
        }
        if (plan[i].numel > tmp_cap) {
            free(tmp);
            tmp_cap = plan[i].numel;
            tmp = malloc(tmp_cap * sizeof *tmp);
        }
        bufs[i] = malloc((plan[i].numel ? plan[i].numel : 1) * sizeof **bufs);
        if (!bufs[i] || (!tmp && plan[i].numel)) {
            st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory converting %s", plan[i].name);
            break;
        }
        st = convert(a, &plan[i], dtype, tmp, bufs[i], err);
        if (!st) st = spqr_st_writer_add(w, plan[i].name, dtype, plan[i].ndim, plan[i].shape, bufs[i], err);
    }
    if (!st) st = spqr_st_writer_write(w, path, err);
    spqr_st_writer_free(w);
    for (int32_t i = 0; bufs && i < n; i++) free(bufs[i]);
    free(bufs);
    free(tmp);
    return st;
}

static spqr_status write_index(const char *in_path, const char *out_dir, const plan_entry *plan, int32_t n,
                               char *const *names, uint64_t total, spqr_err *err) {
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(root, "metadata");
    cJSON *map = cJSON_AddObjectToObject(root, "weight_map");
    int ok = meta && map && cJSON_AddNumberToObject(meta, "total_size", (double)total);
    for (int32_t i = 0; i < n && ok; i++) ok = cJSON_AddStringToObject(map, plan[i].name, names[plan[i].shard]) != NULL;
    char *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    spqr_status st = spqri_export_save_text(in_path, out_dir, "model.safetensors.index.json", text, err);
    free(text);
    return st;
}

static spqr_status export_tensors(const spqr_archive *a, const char *in_path, const char *out_dir, spqr_dtype dtype,
                                  uint64_t max_shard_bytes, const volatile int *cancel, const spqr_logger *log,
                                  spqr_err *err) {
    const int32_t n_in = spqr_archive_count(a);
    if (n_in <= 0) return spqr_err_set(err, SPQR_ERR_FORMAT, "the .spqr file holds no tensors");
    plan_entry *plan = calloc((size_t)n_in, sizeof *plan);
    if (!plan) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    const model_arch *arch = spqri_export_arch(a);
    int32_t n = 0;
    for (int32_t i = 0; i < n_in; i++) {
        int skip = 0;
        spqr_status pst = plan_tensor(a, arch, i, &plan[n], &skip, err);
        if (pst) {
            free(plan);
            return pst;
        }
        n += !skip;
    }
    /* Greedy in file order, as save_pretrained does: a tensor larger than
     * the limit gets a shard of its own. */
    int32_t n_shards = 1;
    uint64_t in_shard = 0, total = 0;
    for (int32_t i = 0; i < n; i++) {
        uint64_t bytes = plan[i].numel * 2;
        if (in_shard > 0 && in_shard + bytes > max_shard_bytes) {
            n_shards++;
            in_shard = 0;
        }
        plan[i].shard = n_shards - 1;
        in_shard += bytes;
        total += bytes;
    }
    char **names = calloc((size_t)n_shards + 1, sizeof *names);
    spqr_status st = names ? SPQR_OK : spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    for (int32_t s = 0; s < n_shards && !st; s++) {
        char name[64];
        if (n_shards == 1) snprintf(name, sizeof name, "model.safetensors");
        else snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", (int)s + 1, (int)n_shards);
        if (!(names[s] = strdup(name))) st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    }
    /* every shard's name (and the index's) passes the output rules before the first is written */
    if (!st && n_shards > 1 && !(names[n_shards] = strdup("model.safetensors.index.json")))
        st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    if (!st) st = spqri_export_check_outputs(in_path, out_dir, (const char *const *)names, n_shards + 1, err);
    for (int32_t s = 0; s < n_shards && !st; s++) {
        const char *name = names[s];
        char *path = NULL;
        if (!st) st = spqri_export_out_path(in_path, out_dir, name, &path, err);
        if (!st) st = write_shard(a, plan, n, s, dtype, path, cancel, err);
        if (!st) spqr_log(log, SPQR_LOG_INFO, "wrote %s", path);
        free(path);
    }
    if (!st && n_shards > 1) st = write_index(in_path, out_dir, plan, n, names, total, err);
    for (int32_t s = 0; names && s <= n_shards; s++) free(names[s]);
    free(names);
    free(plan);
    return st;
}

spqr_status spqr_export_hf_dense(const char *in_path, const char *out_dir, spqr_dtype dtype,
                                 uint64_t max_shard_bytes, const volatile int *cancel, const spqr_logger *log,
                                 spqr_err *err) {
    if (!in_path || !out_dir) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "export: NULL argument");
    if (dtype != SPQR_DTYPE_F16 && dtype != SPQR_DTYPE_BF16)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "export: dtype must be F16 or BF16");
    if (max_shard_bytes == 0) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "export: shard size must be positive");
    spqr_archive *a = NULL;
    spqr_status st = spqr_archive_open(in_path, &a, err);
    if (st) return spqr_err_prefix(err, st, "%s", in_path);
    char *config = NULL, *sub = NULL;
    size_t tlen = 0;
    const char *tok = spqr_archive_tokenizer(a, &tlen);
    if (!tok) st = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: no tokenizer section", in_path);
    if (!st) st = spqri_export_config(a, dtype == SPQR_DTYPE_BF16 ? "bfloat16" : "float16", NULL, &config, &sub, err);
    const char *side[3] = {"tokenizer.json", sub ? "tokenizer_config.json" : NULL, "config.json"};
    if (!st) st = spqri_export_check_outputs(in_path, out_dir, side, 3, err);
    if (!st) st = spqri_export_clear_stale(in_path, out_dir, err);
    if (!st) st = export_tensors(a, in_path, out_dir, dtype, max_shard_bytes, cancel, log, err);
    if (!st) st = spqri_export_save_text(in_path, out_dir, "tokenizer.json", tok, err);
    if (!st && sub) st = spqri_export_save_text(in_path, out_dir, "tokenizer_config.json", sub, err);
    if (!st) st = spqri_export_save_text(in_path, out_dir, "config.json", config, err);
    free(config);
    free(sub);
    spqr_archive_close(a);
    return st;
}
