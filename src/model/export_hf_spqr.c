/* spqr export --to hf-spqr: transformers' SpQR format (quant_method
 * "spqr"), which its integration loads onto a GPU with the authors'
 * spqr_quant kernels. Layout: src/format/hf_spqr.h, docs/format.md. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "format/hf_spqr.h"
#include "format/spqr_file.h"
#include "model/arch.h"
#include "model/export.h"
#include "model/export_common.h"

typedef struct {
    spqr_st_writer *w;
    void **bufs;
    int32_t n_bufs, cap;
} out_state;

static void *keep(out_state *o, size_t bytes) {
    if (o->n_bufs == o->cap) {
        int32_t cap = o->cap ? 2 * o->cap : 64;
        void **b = realloc(o->bufs, (size_t)cap * sizeof *b);
        if (!b) return NULL;
        o->bufs = b;
        o->cap = cap;
    }
    void *p = malloc(bytes ? bytes : 1);
    if (p) o->bufs[o->n_bufs++] = p;
    return p;
}

/* A tensor the format keeps in 16 bits (embedding, norms, head, any linear
 * we hold dense): fp16, as transformers' SpQR quantizer requires. */
static spqr_status add_fp16(const spqr_archive *a, int32_t i, out_state *o, spqr_err *err) {
    const char *name = spqr_archive_name(a, i);
    const spqr_st_tensor *d = spqr_archive_dense_at(a, i);
    const spqr_tensor *p = spqr_archive_packed_at(a, i);
    int64_t shape[SPQR_MAX_DIMS] = {0};
    int32_t ndim = d ? d->ndim : 2;
    uint64_t numel = d ? (uint64_t)d->numel : (uint64_t)p->rows * (uint64_t)p->cols;
    if (d) memcpy(shape, d->shape, sizeof shape);
    else shape[0] = p->rows, shape[1] = p->cols;
    float *tmp = malloc((numel ? numel : 1) * sizeof *tmp);
    uint16_t *h = keep(o, numel * sizeof *h);
    if (!tmp || !h) {
        free(tmp);
        return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory converting %s", name);
    }
    spqr_status st = d ? spqr_st_tensor_to_f32(d, tmp, err) : spqr_tensor_dequantize(p, tmp, err);
    for (uint64_t k = 0; k < numel && !st; k++) {
        h[k] = spqr_fp32_to_fp16(tmp[k]);
        if (isinf(spqr_fp16_to_fp32(h[k])))
            st = spqr_err_set(err, SPQR_ERR_NUMERIC, "%s: value %g does not fit in fp16, which hf-spqr requires", name,
                              (double)tmp[k]);
    }
    free(tmp);
    if (st) return spqr_err_prefix(err, st, "%s", name);
    return spqr_st_writer_add(o->w, name, SPQR_DTYPE_F16, ndim, shape, h, err);
}

/* One module of the format from n_parts quantized tensors stacked by rows
 * (one, or the blocks of a fused module such as Phi-3's qkv_proj): the
 * layout is row-tile-major, so the blocks' dense words, CSR rows and values
 * follow one another; they must share one column permutation. */
static spqr_status add_quantized(const char *name, const spqr_tensor *const *t, int32_t n_parts, out_state *o,
                                 cJSON *shapes, spqr_err *err) {
    size_t len = strlen(name);
    if (len <= 7 || strcmp(name + len - 7, ".weight"))
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "%s: a quantized tensor's name must end in .weight", name);
    const int32_t cols = t[0]->cols;
    int64_t rows = 0, nnz = 0;
    for (int32_t k = 0; k < n_parts; k++) {
        const char *why = spqri_hf_spqr_unsupported(t[k]);
        if (why) return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "%s: %s; %s", name, why, HF_SPQR_SUPPORTED);
        if (t[k]->cols != cols || !t[k]->perm != !t[0]->perm ||
            (t[k]->perm && memcmp(t[k]->perm, t[0]->perm, (size_t)cols * sizeof *t[0]->perm)))
            return spqr_err_set(err, SPQR_ERR_UNSUPPORTED,
                                "%s: its fused blocks differ in columns or column permutation; the format has one per module",
                                name);
        rows += t[k]->rows;
        nnz += t[k]->nnz;
    }
    if (rows > INT32_MAX - 1 || nnz > INT32_MAX)
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "%s: too many rows or outliers for the format", name);
    int64_t n[4] = {hf_spqr_dense_words((int32_t)rows, cols), rows + 1, nnz, cols / 2};
    int64_t *dw = keep(o, (size_t)n[0] * 8);
    int32_t *ro = keep(o, (size_t)n[1] * 4), *cv = keep(o, (size_t)n[2] * 4), *ip = keep(o, (size_t)n[3] * 4);
    int32_t *part_ro = malloc(((size_t)rows + 1) * sizeof *part_ro);
    spqr_status st = dw && ro && cv && ip && part_ro ? SPQR_OK : spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory encoding %s", name);
    int64_t dw_at = 0, row_at = 0, nnz_at = 0;
    for (int32_t k = 0; k < n_parts && !st; k++) {
        st = spqri_hf_spqr_encode(t[k], dw + dw_at, part_ro, cv + nnz_at, ip, err);
        if (st) break;
        for (int32_t r = 0; r < t[k]->rows; r++) ro[row_at + r] = (int32_t)(part_ro[r] + nnz_at);
        dw_at += hf_spqr_dense_words(t[k]->rows, cols);
        row_at += t[k]->rows;
        nnz_at += t[k]->nnz;
    }
    free(part_ro);
    if (st) return spqr_err_prefix(err, st, "%s", name);
    ro[rows] = (int32_t)nnz;
    static const char *const parts[4] = {"dense_weights", "row_offsets", "col_vals", "in_perm"};
    const void *data[4] = {dw, ro, cv, ip};
    char key[SPQRF_MAX_NAME + 32];
    for (int k = 0; k < 4 && !st; k++) {
        snprintf(key, sizeof key, "%.*s.%s", (int)(len - 7), name, parts[k]);
        st = spqr_st_writer_add(o->w, key, k ? SPQR_DTYPE_I32 : SPQR_DTYPE_I64, 1, &n[k], data[k], err);
        snprintf(key, sizeof key, "%.*s.%s.shape", (int)(len - 7), name, parts[k]);
        if (!st && !cJSON_AddNumberToObject(shapes, key, (double)n[k])) st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    }
    return st;
}

static spqr_status build(const spqr_archive *a, out_state *o, cJSON *quant, const volatile int *cancel, spqr_err *err) {
    cJSON *shapes = cJSON_AddObjectToObject(quant, "shapes");
    cJSON *skip = cJSON_AddArrayToObject(quant, "modules_to_not_convert");
    if (!shapes || !skip) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    int32_t n_quant = 0, has_head = 0;
    const model_arch *arch = spqri_export_arch(a);
    spqr_status st = spqr_st_writer_set_metadata(o->w, "format", "pt", err);
    for (int32_t i = 0; i < spqr_archive_count(a) && !st; i++) {
        if (cancel && *cancel) return spqr_err_set(err, SPQR_ERR_INTERRUPTED, "export interrupted");
        const char *name = spqr_archive_name(a, i);
        const spqr_tensor *p = spqr_archive_packed_at(a, i);
        /* The embedding is no linear, and transformers' SpQR loaders keep the head in 16 bits. */
        /* a fused family's blocks go out as its module (Phi-3: qkv_proj,
         * gate_up_proj), which transformers' integration replaces */
        char fname[SPQRF_MAX_NAME + 32];
        int32_t part[ARCH_N_LIN], n_parts = 0;
        int first = 1;
        const int fused = spqri_export_fused(a, arch, i, &first, fname, sizeof fname, part, &n_parts, err);
        if (fused < 0) return err->code;
        if (fused && !first) continue;
        if (fused) {
            const spqr_tensor *t[ARCH_N_LIN];
            for (int32_t k = 0; k < n_parts; k++)
                if (!(t[k] = spqr_archive_packed_at(a, part[k])))
                    return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "%s: block %s is not quantized; hf-spqr needs all of a fused module's blocks quantized",
                                        fname, spqr_archive_name(a, part[k]));
            st = add_quantized(fname, t, n_parts, o, shapes, err);
            n_quant++;
            continue;
        }
        if (p && strcmp(name, ARCH_EMBED_NAME) && strcmp(name, ARCH_HEAD_NAME)) {
            st = add_quantized(name, &p, 1, o, shapes, err);
            n_quant++;
            continue;
        }
        st = add_fp16(a, i, o, err);
        if (!st && !cJSON_AddItemToArray(skip, cJSON_CreateString(name))) st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
        has_head |= !strcmp(name, ARCH_HEAD_NAME);
    }
    if (!st && !n_quant) st = spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "the file holds no quantized linear to export as hf-spqr");
    /* a tied head is still an nn.Linear that the integration would replace */
    if (!st && !has_head && !cJSON_AddItemToArray(skip, cJSON_CreateString(ARCH_HEAD_NAME)))
        st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    return st;
}

spqr_status spqr_export_hf_spqr(const char *in_path, const char *out_dir, const volatile int *cancel,
                                const spqr_logger *log, spqr_err *err) {
    if (!in_path || !out_dir) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "export: NULL argument");
    spqr_archive *a = NULL;
    spqr_status st = spqr_archive_open(in_path, &a, err);
    if (st) return spqr_err_prefix(err, st, "%s", in_path);
    out_state o = {0};
    cJSON *quant = cJSON_CreateObject();
    char *config = NULL, *sub = NULL, *path = NULL;
    size_t tlen = 0;
    const char *tok = spqr_archive_tokenizer(a, &tlen);
    if (!quant) st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    if (!st && !tok) st = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: no tokenizer section", in_path);
    if (!st && (!cJSON_AddStringToObject(quant, "quant_method", "spqr") ||
                !cJSON_AddNumberToObject(quant, "bits", HF_SPQR_BITS) || !cJSON_AddNumberToObject(quant, "beta1", HF_SPQR_BETA) ||
                !cJSON_AddNumberToObject(quant, "beta2", HF_SPQR_BETA)))
        st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    if (!st) st = spqr_st_writer_create(&o.w, err);
    if (!st) st = build(a, &o, quant, cancel, err);
    if (!st) {
        st = spqri_export_config(a, "float16", quant, &config, &sub, err);
        quant = NULL; /* consumed */
    }
    const char *outs[4] = {"model.safetensors", "tokenizer.json", sub ? "tokenizer_config.json" : NULL, "config.json"};
    if (!st) st = spqri_export_check_outputs(in_path, out_dir, outs, 4, err);
    if (!st) st = spqri_export_clear_stale(in_path, out_dir, err);
    if (!st) st = spqri_export_out_path(in_path, out_dir, "model.safetensors", &path, err);
    if (!st) st = spqr_st_writer_write(o.w, path, err);
    if (!st) spqr_log(log, SPQR_LOG_INFO, "wrote %s", path);
    if (!st) st = spqri_export_save_text(in_path, out_dir, "tokenizer.json", tok, err);
    if (!st && sub) st = spqri_export_save_text(in_path, out_dir, "tokenizer_config.json", sub, err);
    if (!st) st = spqri_export_save_text(in_path, out_dir, "config.json", config, err);
    cJSON_Delete(quant);
    spqr_st_writer_free(o.w);
    for (int32_t i = 0; i < o.n_bufs; i++) free(o.bufs[i]);
    free(o.bufs);
    free(path);
    free(config);
    free(sub);
    spqr_archive_close(a);
    return st;
}
