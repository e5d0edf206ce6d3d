/* Pieces shared by the Hugging Face exporters (export_hf_*.c). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "format/spqr_file.h"
#include "io/file.h"
#include "io/outpath.h"
#include "model/arch.h"
#include "model/chat.h"
#include "model/export_common.h"


typedef struct {
    const char *text;
    size_t len;
} text_buf;

static int write_text(FILE *f, void *user, spqr_err *err) {
    (void)err;
    const text_buf *b = user;
    return fwrite(b->text, 1, b->len, f) != b->len;
}

/* Every output goes through the output rules with the .spqr as the run's
 * input, so no spelling of OUT_DIR/NAME can replace the file being read. */
spqr_status spqri_export_out_path(const char *in_path, const char *out_dir, const char *name, char **path, spqr_err *err) {
    *path = spqr_path_join(out_dir, name);
    if (!*path) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    const spqr_out_spec spec = {"exported file", "an exported file", NULL, 1};
    const char *inputs[1] = {in_path};
    spqr_status st = spqr_out_check(*path, &spec, inputs, 1, err);
    if (st) {
        free(*path);
        *path = NULL;
    }
    return st;
}

spqr_status spqri_export_save_text(const char *in_path, const char *out_dir, const char *name, const char *text,
                             spqr_err *err) {
    char *path = NULL;
    spqr_status st = spqri_export_out_path(in_path, out_dir, name, &path, err);
    if (st) return st;
    text_buf b = {text, strlen(text)};
    st = spqr_file_write_atomic(path, write_text, &b, err);
    free(path);
    return st;
}

/* The header states the rules; the config of a dequantized export has no
 * quantization_config, since the weights are plain. */
spqr_status spqri_export_config(const spqr_archive *a, const char *torch_dtype, cJSON *quant, char **config, char **sub,
                          spqr_err *err) {
    *config = *sub = NULL;
    const char *cj = spqr_archive_config_json(a);
    cJSON *root = cj ? cJSON_Parse(cj) : NULL;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        cJSON_Delete(quant);
        return spqr_err_set(err, SPQR_ERR_FORMAT, "the .spqr config is not a JSON object");
    }
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, MODEL_CHAT_CONFIG_KEY);
    if (cJSON_IsObject(s)) *sub = cJSON_Print(s);
    cJSON_DeleteItemFromObjectCaseSensitive(root, MODEL_CHAT_CONFIG_KEY);
    cJSON_DeleteItemFromObjectCaseSensitive(root, "quantization_config");
    cJSON_DeleteItemFromObjectCaseSensitive(root, "torch_dtype");
    cJSON_AddStringToObject(root, "torch_dtype", torch_dtype);
    if (quant) cJSON_AddItemToObject(root, "quantization_config", quant);
    int has_head = spqr_archive_find_dense(a, ARCH_HEAD_NAME) || spqr_archive_find_packed(a, ARCH_HEAD_NAME);
    /* a head of its own must be said untied explicitly: gemma configs omit the
     * field and their families default to tied */
    if (has_head) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, "tie_word_embeddings");
        cJSON_AddFalseToObject(root, "tie_word_embeddings");
    }
    *config = cJSON_Print(root);
    cJSON_Delete(root);
    if (!*config || (cJSON_IsObject(s) && !*sub)) {
        free(*config);
        free(*sub);
        *config = *sub = NULL;
        return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    }
    return SPQR_OK;
}


const model_arch *spqri_export_arch(const spqr_archive *a) {
    const char *cj = spqr_archive_config_json(a);
    cJSON *root = cj ? cJSON_Parse(cj) : NULL;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const model_arch *arch = cJSON_IsString(mt) ? spqri_arch_find(mt->valuestring) : NULL;
    cJSON_Delete(root);
    return arch;
}

int spqri_export_fused(const spqr_archive *a, const struct model_arch *arch, int32_t i, int *first, char *name,
                       size_t cap, int32_t *parts, int32_t *n_parts, spqr_err *err) {
    const char *t = spqr_archive_name(a, i);
    int layer = 0, off = 0;
    if (!arch || sscanf(t, "model.layers.%d.%n", &layer, &off) != 1 || off == 0) return 0;
    static const char *const suffix[2] = {".weight", ".bias"};
    for (int s = 0; s < ARCH_N_LIN; s++) {
        const arch_linear *l = &arch->lin[s];
        const size_t n = strlen(l->name);
        if (!l->fused || strncmp(t + off, l->name, n)) continue;
        for (int x = 0; x < 2; x++) {
            if (strcmp(t + off + n, suffix[x])) continue;
            *first = spqri_arch_fused_first(arch, s);
            if (!*first) return 1;
            snprintf(name, cap, "model.layers.%d.%s%s", layer, l->fused, suffix[x]);
            *n_parts = 0;
            for (int u = 0; u < ARCH_N_LIN; u++) {
                if (!arch->lin[u].fused || strcmp(arch->lin[u].fused, l->fused)) continue;
                char part[SPQRF_MAX_NAME + 32];
                snprintf(part, sizeof part, "model.layers.%d.%s%s", layer, arch->lin[u].name, suffix[x]);
                const int32_t j = spqrf_archive_index(a, part);
                if (j < 0) {
                    spqr_err_set(err, SPQR_ERR_FORMAT, "%s: its part %s is missing from the .spqr", name, part);
                    return -1;
                }
                parts[(*n_parts)++] = j;
            }
            return 1;
        }
    }
    return 0;
}

spqr_status spqri_export_check_outputs(const char *in_path, const char *out_dir, const char *const *names, int32_t n,
                                       spqr_err *err) {
    for (int32_t i = 0; i < n; i++) {
        if (!names[i]) continue;
        char *path = NULL;
        spqr_status st = spqri_export_out_path(in_path, out_dir, names[i], &path, err);
        free(path);
        if (st) return st;
    }
    return SPQR_OK;
}

/* The files of a Hugging Face checkpoint a loader would read next to ours:
 * what the exporters write, the single file or the index a loader prefers
 * over shards, and the side files transformers reads with them. */
static int is_checkpoint_file(const char *name) {
    static const char *const names[] = {"config.json",           "generation_config.json",  "model.safetensors",
                                        "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
                                        "special_tokens_map.json", "added_tokens.json"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i])) return 1;
    unsigned a, b;
    int end = 0;
    return sscanf(name, "model-%5u-of-%5u.safetensors%n", &a, &b, &end) == 2 && end > 0 && name[end] == 0;
}

spqr_status spqri_export_clear_stale(const char *in_path, const char *out_dir, spqr_err *err) {
    for (int pass = 0; pass < 2; pass++) { /* config.json first: without it nothing loads the directory */
        DIR *d = opendir(out_dir);
        if (!d) return spqr_err_set(err, SPQR_ERR_IO, "%s: %s", out_dir, strerror(errno));
        spqr_status st = SPQR_OK;
        for (struct dirent *e; !st && (e = readdir(d));) {
            if (!is_checkpoint_file(e->d_name) || (pass == 0) != !strcmp(e->d_name, "config.json")) continue;
            char *path = NULL;
            st = spqri_export_out_path(in_path, out_dir, e->d_name, &path, err);
            if (!st && unlink(path) != 0 && errno != ENOENT)
                st = spqr_err_set(err, SPQR_ERR_IO, "cannot remove the earlier %s: %s", path, strerror(errno));
            free(path);
        }
        closedir(d);
        if (st) return st;
    }
    return SPQR_OK;
}
