/* spqr import DIR -o OUT.spqr: a checkpoint in transformers' SpQR format
 * (quant_method "spqr") as a .spqr file, without quantizing anything: the
 * codes, statistics, permutation and outliers are carried over
 * (spqri_hf_spqr_to_tensor), the 16-bit tensors stored as they are. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "format/hf_spqr.h"
#include "format/spqr_file.h"
#include "io/file.h"
#include "io/json_doc.h"
#include "model/arch.h"
#include "model/chat.h"
#include "model/bind.h"
#include "model/config.h"
#include "model/export.h"

#define TEXT_MAX ((size_t)64 << 20)
#define MAX_SHARDS 4096

typedef struct {
    spqr_safetensors **f;
    int32_t n;
} shards;

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* model.safetensors, or the shards model.safetensors.index.json names. */
static spqr_status open_shards(const char *dir, shards *s, spqr_err *err) {
    char *one = spqr_path_join(dir, "model.safetensors"), *idx = spqr_path_join(dir, "model.safetensors.index.json");
    spqr_status st = one && idx ? SPQR_OK : spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    if (!st && exists(one)) {
        s->f = calloc(1, sizeof *s->f);
        st = s->f ? spqr_safetensors_open(one, &s->f[0], err) : spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
        if (!st) s->n = 1;
    } else if (!st && exists(idx)) {
        char *text = NULL;
        size_t len = 0;
        st = spqr_file_read_text(idx, TEXT_MAX, &text, &len, err);
        const char *why = NULL;
        cJSON *root = st ? NULL : spqr_json_parse_doc(text, len, &why);
        if (!st && !root) st = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: %s", idx, why);
        const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map"), *it;
        if (!st && !cJSON_IsObject(wm)) st = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: no weight_map object", idx);
        s->f = st ? NULL : calloc(MAX_SHARDS, sizeof *s->f);
        const char **names = st ? NULL : calloc(MAX_SHARDS, sizeof *names);
        if (!st && (!s->f || !names)) st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
        const cJSON *entries = st ? NULL : wm;
        cJSON_ArrayForEach(it, entries) {
            const char *file = cJSON_GetStringValue(it);
            if (!file || strchr(file, '/') || !strcmp(file, "..") || !strcmp(file, ".")) {
                st = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: a weight_map entry is not a file name in the directory", idx);
                break;
            }
            int32_t k = 0;
            while (k < s->n && strcmp(names[k], file)) k++;
            if (k < s->n) continue;
            if (s->n == MAX_SHARDS) {
                st = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: more than %d shards", idx, MAX_SHARDS);
                break;
            }
            char *p = spqr_path_join(dir, file);
            st = p ? spqr_safetensors_open(p, &s->f[s->n], err) : spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
            free(p);
            if (st) break;
            names[s->n++] = file;
        }
        free(names);
        cJSON_Delete(root);
        free(text);
    } else if (!st) {
        st = spqr_err_set(err, SPQR_ERR_IO, "%s: neither model.safetensors nor model.safetensors.index.json", dir);
    }
    free(one);
    free(idx);
    return st;
}

static const spqr_st_tensor *find(const shards *s, const char *name) {
    for (int32_t i = 0; i < s->n; i++) {
        const spqr_st_tensor *t = spqr_safetensors_find(s->f[i], name);
        if (t) return t;
    }
    return NULL;
}

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a > b && !strcmp(s + a - b, suf);
}

static const char *const PARTS[4] = {"dense_weights", "row_offsets", "col_vals", "in_perm"};

/* One quantized linear: its four tensors, their dtypes and the config's shapes. */
/* The checkpoint's family and config: fused modules are split by them, and
 * a tensor the model would not use (a layer beyond num_hidden_layers, a
 * stray name) is refused, as the loaders refuse it. */
typedef struct {
    const model_arch *arch;
    spqr_config c;
    model_hparams hp;
} family;

static spqr_status import_linear(const shards *s, const char *module, const cJSON *shapes, const family *fam,
                                 spqr_archive_writer *w, spqr_err *err) {
    const spqr_st_tensor *t[4];
    char key[SPQRF_MAX_NAME + 160];
    for (int k = 0; k < 4; k++) {
        snprintf(key, sizeof key, "%s.%s", module, PARTS[k]);
        t[k] = find(s, key);
        if (!t[k]) return spqr_err_set(err, SPQR_ERR_FORMAT, "%s has no %s", module, PARTS[k]);
        if (t[k]->dtype != (k ? SPQR_DTYPE_I32 : SPQR_DTYPE_I64) || t[k]->ndim != 1)
            return spqr_err_set(err, SPQR_ERR_FORMAT, "%s is %s with %d dimensions, want a 1-D %s", key,
                                spqr_dtype_name(t[k]->dtype), (int)t[k]->ndim, k ? "I32" : "I64");
        snprintf(key, sizeof key, "%s.%s.shape", module, PARTS[k]);
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(shapes, key);
        if (!cJSON_IsNumber(n) || n->valuedouble != (double)t[k]->numel)
            return spqr_err_set(err, SPQR_ERR_FORMAT, "quantization_config.shapes[\"%s\"] does not match the tensor (%lld)",
                                key, (long long)t[k]->numel);
    }
    if (t[1]->numel - 1 > INT32_MAX || t[1]->numel < 2 || t[3]->numel > INT32_MAX / 2)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: shape out of range", module);
    const int32_t rows = (int32_t)(t[1]->numel - 1), cols = (int32_t)(t[3]->numel * 2);
    /* a fused module (Phi-3's qkv_proj) is split into its slots' blocks of
     * rows, as the .spqr stores them; one block: the module itself */
    char name[ARCH_N_LIN][SPQRF_MAX_NAME + 96];
    int32_t part_rows[ARCH_N_LIN], n_parts = 0, layer = 0, off = 0;
    if (sscanf(module, "model.layers.%d.%n", &layer, &off) == 1 && off > 0)
        for (int k = 0; k < ARCH_N_LIN; k++)
            if (fam->arch->lin[k].fused && !strcmp(module + off, fam->arch->lin[k].fused)) {
                snprintf(name[n_parts], sizeof name[0], "model.layers.%d.%s.weight", layer, fam->arch->lin[k].name);
                part_rows[n_parts++] = spqri_arch_dim_size(&fam->c, fam->arch->lin[k].rows);
            }
    if (!n_parts) {
        snprintf(name[0], sizeof name[0], "%s.weight", module);
        part_rows[n_parts++] = rows;
    }
    int64_t sum = 0;
    for (int32_t k = 0; k < n_parts; k++) sum += part_rows[k];
    if (sum != rows)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s has %d rows, its config's blocks %lld", module, (int)rows, (long long)sum);
    const int32_t *ro = t[1]->data;
    int32_t *part_ro = malloc(((size_t)rows + 1) * sizeof *part_ro);
    if (!part_ro) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    spqr_status st = SPQR_OK;
    for (int32_t k = 0, r0 = 0; k < n_parts && !st; r0 += part_rows[k++]) {
        const int32_t nr = part_rows[k];
        /* the block's CSR slice; spqri_hf_spqr_to_tensor validates the rest */
        if (nr % 16 || ro[r0] < 0 || ro[r0 + nr] < ro[r0] || ro[r0 + nr] > t[2]->numel) {
            st = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: row block %d of %d rows has bad row_offsets or is not a multiple of 16",
                              module, (int)k, (int)nr);
            break;
        }
        for (int32_t r = 0; r <= nr; r++) part_ro[r] = ro[r0 + r] - ro[r0];
        const int64_t dw0 = hf_spqr_dense_words(r0, cols);
        spqr_tensor *q = NULL;
        st = spqri_hf_spqr_to_tensor(nr, cols, (const int64_t *)t[0]->data + dw0, hf_spqr_dense_words(nr, cols), part_ro,
                                     (int64_t)nr + 1, (const int32_t *)t[2]->data + ro[r0], ro[r0 + nr] - ro[r0], t[3]->data,
                                     t[3]->numel, &q, err);
        if (st) st = spqr_err_prefix(err, st, "%s", module);
        if (!st) st = spqri_model_check_name(&fam->c, &fam->hp, name[k], 1, err);
        if (!st) st = spqr_archive_writer_add_packed(w, name[k], q, err);
        spqr_tensor_free(q);
    }
    free(part_ro);
    return st;
}

static spqr_status import_tensors(const shards *s, const cJSON *shapes, const family *fam, spqr_archive_writer *w,
                                  int32_t *n_linear, spqr_err *err) {
    spqr_status st = SPQR_OK;
    char module[SPQRF_MAX_NAME + 64];
    for (int32_t f = 0; f < s->n && !st; f++)
        for (int32_t i = 0; i < spqr_safetensors_count(s->f[f]) && !st; i++) {
            const spqr_st_tensor *t = spqr_safetensors_at(s->f[f], i);
            int part = -1;
            for (int k = 0; k < 4 && part < 0; k++) {
                char suf[32];
                snprintf(suf, sizeof suf, ".%s", PARTS[k]);
                if (has_suffix(t->name, suf) && strlen(t->name) - strlen(suf) < sizeof module) {
                    snprintf(module, sizeof module, "%.*s", (int)(strlen(t->name) - strlen(suf)), t->name);
                    char dw[SPQRF_MAX_NAME + 96];
                    snprintf(dw, sizeof dw, "%s.dense_weights", module);
                    if (find(s, dw)) part = k;
                }
            }
            if (part == 0) {
                st = import_linear(s, module, shapes, fam, w, err);
                ++*n_linear;
            } else if (part < 0) {
                if (t->dtype != SPQR_DTYPE_F16 && t->dtype != SPQR_DTYPE_BF16 && t->dtype != SPQR_DTYPE_F32)
                    st = spqr_err_set(err, SPQR_ERR_FORMAT, "tensor %s has dtype %s, not part of a quantized linear", t->name,
                                      spqr_dtype_name(t->dtype));
                else if (!(st = spqri_model_check_name(&fam->c, &fam->hp, t->name, 1, err)))
                    st = spqr_archive_writer_add_dense(w, t->name, t->dtype, t->ndim, t->shape, t->data, err);
            }
        }
    return st;
}

/* config.json of the .spqr: the checkpoint's, without quantization_config,
 * with the tokenizer_config.json subset the loader reads (chat template,
 * declared special tokens). Checks the quantization_config first. */
static spqr_status import_config(const char *dir, char **out, cJSON **shapes_out, spqr_err *err) {
    char *text = NULL;
    size_t len = 0;
    spqr_status st = spqri_file_read_in_dir(dir, "config.json", TEXT_MAX, 0, &text, &len, err);
    if (st) return st;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s/config.json is not a JSON object", dir);
    }
    cJSON *q = cJSON_DetachItemFromObjectCaseSensitive(root, "quantization_config");
    const char *method = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(q, "quant_method"));
    const cJSON *bits = cJSON_GetObjectItemCaseSensitive(q, "bits"), *b1 = cJSON_GetObjectItemCaseSensitive(q, "beta1"),
                *b2 = cJSON_GetObjectItemCaseSensitive(q, "beta2"), *shapes = cJSON_GetObjectItemCaseSensitive(q, "shapes");
    if (!method || strcmp(method, "spqr"))
        st = spqr_err_set(err, SPQR_ERR_FORMAT, "%s is not a Hugging Face SpQR checkpoint (config.json has no quantization_config with quant_method \"spqr\")", dir);
    else if (!cJSON_IsNumber(bits) || bits->valuedouble != 3 || !cJSON_IsNumber(b1) || b1->valuedouble != 16 ||
             !cJSON_IsNumber(b2) || b2->valuedouble != 16)
        st = spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "%s: quantization_config is not bits 3, beta1 16, beta2 16; %s", dir, HF_SPQR_SUPPORTED);
    else if (!cJSON_IsObject(shapes))
        st = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: quantization_config has no shapes object", dir);
    char *tc = NULL;
    size_t tc_len = 0;
    char *tcp = st ? NULL : spqr_path_join(dir, "tokenizer_config.json");
    if (tcp && exists(tcp)) {
        st = spqr_file_read_text(tcp, TEXT_MAX, &tc, &tc_len, err);
        cJSON *sub = NULL;
        if (!st) st = spqri_model_chat_subset(tc, tc_len, NULL, &sub, err);
        if (!st) cJSON_AddItemToObject(root, MODEL_CHAT_CONFIG_KEY, sub);
    }
    free(tcp);
    free(tc);
    cJSON_DeleteItemFromObjectCaseSensitive(root, "torch_dtype");
    cJSON_AddStringToObject(root, "torch_dtype", "float16");
    *out = st ? NULL : cJSON_Print(root);
    if (!st && !*out) st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    cJSON_Delete(root);
    if (st) cJSON_Delete(q);
    else *shapes_out = q;
    return st;
}

/* The written file loads as a model: what the loader checks against the
 * config (tensor shapes, token ids, a missing tensor) holds before the
 * file takes its name, so import never leaves a .spqr nothing can run. */
static spqr_status loads(const char *tmp_path, void *user, spqr_err *err) {
    (void)user;
    spqr_model *m = NULL;
    spqr_err e = {0};
    const spqr_status st = spqr_model_load(tmp_path, NULL, &m, &e);
    spqr_model_free(m);
    if (!st) return SPQR_OK;
    /* the loader may name the temporary: say what the file is instead */
    const size_t n = strlen(tmp_path);
    const char *why = !strncmp(e.msg, tmp_path, n) ? e.msg + n + (e.msg[n] == ':' && e.msg[n + 1] == ' ' ? 2 : 0) : e.msg;
    return spqr_err_set(err, SPQR_ERR_FORMAT, "the imported model would not load: %s", why);
}

spqr_status spqr_import_hf_spqr(const char *dir, const char *out_path, const spqr_logger *log, spqr_err *err) {
    if (!dir || !out_path) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "import: NULL argument");
    char *config = NULL, *tok = NULL;
    size_t tok_len = 0;
    cJSON *q = NULL;
    shards s = {0};
    spqr_archive_writer *w = NULL;
    int32_t n_linear = 0;
    spqr_status st = import_config(dir, &config, &q, err);
    if (!st) st = spqri_file_read_in_dir(dir, "tokenizer.json", (size_t)SPQRF_MAX_TOKENIZER, 0, &tok, &tok_len, err);
    if (!st) st = open_shards(dir, &s, err);
    if (!st) st = spqr_archive_writer_create(out_path, &w, err);
    if (!st) st = spqr_archive_writer_add_config(w, config, err);
    if (!st) st = spqr_archive_writer_add_tokenizer(w, tok, tok_len, err);
    if (!st) st = spqr_archive_writer_add_metadata(w,
                    "{\"preset\": \"hf-spqr import\", \"quantize_head\": false, \"params\": {\"wbits\": 3, \"groupsize\": 16, "
                    "\"qq_scale_bits\": 3, \"qq_zero_bits\": 3, \"qq_groupsize\": 16}}", err);
    family fam = {0};
    if (!st && (st = spqri_model_config_parse(config, strlen(config), &fam.c, &fam.hp, err)))
        st = spqr_err_prefix(err, st, "%s", dir);
    fam.arch = fam.hp.arch;
    if (!st) st = import_tensors(&s, cJSON_GetObjectItemCaseSensitive(q, "shapes"), &fam, w, &n_linear, err);
    /* the writer's argument errors (config text that is not UTF-8, a name
     * twice: m.weight next to m.dense_weights) are faults of the directory */
    if (st == SPQR_ERR_INVALID_ARG) st = spqr_err_prefix(err, SPQR_ERR_FORMAT, "%s", dir);
    if (!st && !n_linear) st = spqr_err_set(err, SPQR_ERR_FORMAT, "%s holds no quantized linear (no *.dense_weights)", dir);
    if (!st) st = spqrf_archive_writer_finish_checked(w, loads, NULL, err);
    if (!st) spqr_log(log, SPQR_LOG_INFO, "imported %d quantized linears from %s into %s", (int)n_linear, dir, out_path);
    spqr_archive_writer_free(w);
    for (int32_t i = 0; i < s.n; i++) spqr_safetensors_close(s.f[i]);
    free(s.f);
    cJSON_Delete(q);
    free(config);
    free(tok);
    return st;
}
