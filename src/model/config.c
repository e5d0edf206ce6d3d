/* config.json parsing: the fields every family shares here (defaults follow
 * transformers' LlamaConfig so that a checkpoint means the same thing here as
 * in PyTorch), the family's own through its parse hook (model/arch.h). */
#include "model/config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "format/spqr_file.h"
#include "io/file.h"
#include "io/json_doc.h"

#define CONFIG_MAX_BYTES (4u << 20) /* a config.json is a few KB; refuse absurd files */

/* Integer field: absent -> def (or error when required, def == INT32_MIN).
 * Must be an integral number inside [lo, hi]. */
static spqr_status get_int(const cJSON *root, const char *key, int32_t def, int32_t lo, int32_t hi,
                           int32_t *out, spqr_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        if (def == INT32_MIN) return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: missing required field \"%s\"", key);
        *out = def;
        return SPQR_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: \"%s\" must be an integer", key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: \"%s\" = %.0f is out of range [%d, %d]", key,
                            v->valuedouble, lo, hi);
    *out = (int32_t)v->valuedouble;
    return SPQR_OK;
}

static spqr_status get_float(const cJSON *root, const char *key, double def, double lo, double hi, float *out,
                             spqr_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        if (isnan(def)) return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: missing required field \"%s\"", key);
        *out = (float)def;
        return SPQR_OK;
    }
    if (!cJSON_IsNumber(v)) return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: \"%s\" must be a number", key);
    if (!(v->valuedouble >= lo && v->valuedouble <= hi))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: \"%s\" = %g is out of range [%g, %g]", key,
                            v->valuedouble, lo, hi);
    *out = (float)v->valuedouble;
    return SPQR_OK;
}

static int token_id_ok(const cJSON *v) {
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 1e9 && v->valuedouble == floor(v->valuedouble);
}

/* bos may be an int, null, or a list: the first entry is used. */
static spqr_status get_token_id(const cJSON *root, const char *key, int32_t *out, spqr_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = -1;
    if (!v || cJSON_IsNull(v)) return SPQR_OK;
    if (cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);
    if (!v) return SPQR_OK;
    if (!token_id_ok(v))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: \"%s\" must be a non-negative integer", key);
    *out = (int32_t)v->valuedouble;
    return SPQR_OK;
}

/* eos_token_id: null, an int, or a list of ints (Llama 3.1 Instruct:
 * [128001, 128008, 128009]); every id is kept, since generation must stop
 * at any of them. Appended to c's set, duplicates dropped; file names the
 * source in messages. */
static spqr_status add_eos_ids(const cJSON *root, spqr_config *c, const char *file, spqr_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id"), *e;
    if (!v || cJSON_IsNull(v)) return SPQR_OK;
    if (!cJSON_IsArray(v) && !token_id_ok(v))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: \"eos_token_id\" must be a non-negative integer or a list of them", file);
    int single = !cJSON_IsArray(v);
    for (e = single ? v : v->child; e; e = single ? NULL : e->next) {
        if (!token_id_ok(e))
            return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: \"eos_token_id\" must be a non-negative integer or a list of them", file);
        int32_t id = (int32_t)e->valuedouble;
        if (spqr_config_is_eos(c, id)) continue;
        if (c->n_eos_token_ids == SPQR_MAX_EOS_IDS)
            return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "%s: more than %d distinct eos_token_id values", file, SPQR_MAX_EOS_IDS);
        c->eos_token_ids[c->n_eos_token_ids++] = id;
    }
    c->eos_token_id = c->n_eos_token_ids ? c->eos_token_ids[0] : -1;
    return SPQR_OK;
}

int spqr_config_is_eos(const spqr_config *c, int32_t id) {
    if (!c || id < 0) return 0;
    for (int32_t i = 0; i < c->n_eos_token_ids && i < SPQR_MAX_EOS_IDS; i++)
        if (c->eos_token_ids[i] == id) return 1;
    return 0;
}

spqr_status spqr_config_add_generation_eos(spqr_config *c, const char *json, size_t len, spqr_err *err) {
    const char *why = NULL;
    cJSON *root = spqr_json_parse_doc(json, len, &why);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return spqr_err_set(err, SPQR_ERR_FORMAT, "generation_config.json: %s", why ? why : "not a JSON object");
    }
    spqr_status st = add_eos_ids(root, c, "generation_config.json", err);
    cJSON_Delete(root);
    return st;
}

/* One RoPE settings object: transformers' "rope_scaling" or, from version 5,
 * "rope_parameters" (named what for messages). */
static spqr_status parse_rope_object(const cJSON *rs, const char *what, spqr_config *c, spqr_err *err) {
    if (!rs || cJSON_IsNull(rs)) return SPQR_OK;
    if (!cJSON_IsObject(rs)) return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: \"%s\" must be an object or null", what);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!type) type = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!type && !strcmp(what, "rope_parameters")) return SPQR_OK; /* theta only */
    if (!cJSON_IsString(type))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: %s has no \"rope_type\" string", what);
    if (!strcmp(type->valuestring, "default")) return SPQR_OK;
    if (strcmp(type->valuestring, "llama3") != 0)
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED,
                            "config.json: %s type \"%.64s\" is not supported (only \"default\" and \"llama3\")", what,
                            type->valuestring);
    spqr_status st;
    c->rope_scaling = SPQR_ROPE_LLAMA3;
    if ((st = get_float(rs, "factor", NAN, 1e-3, 1e6, &c->rope_factor, err))) return spqr_err_prefix(err, st, "%s", what);
    if ((st = get_float(rs, "low_freq_factor", NAN, 1e-6, 1e6, &c->rope_low_freq_factor, err)))
        return spqr_err_prefix(err, st, "%s", what);
    if ((st = get_float(rs, "high_freq_factor", NAN, 1e-6, 1e6, &c->rope_high_freq_factor, err)))
        return spqr_err_prefix(err, st, "%s", what);
    if ((st = get_int(rs, "original_max_position_embeddings", INT32_MIN, 1, 1 << 30, &c->rope_original_max_position, err)))
        return spqr_err_prefix(err, st, "%s", what);
    if (!(c->rope_high_freq_factor > c->rope_low_freq_factor))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: %s high_freq_factor must exceed low_freq_factor", what);
    return SPQR_OK;
}

/* rope_theta and the scaling: transformers 5 keeps both in "rope_parameters"
 * (which then wins over the top-level fields), earlier versions in
 * "rope_theta" and "rope_scaling". */
static spqr_status parse_rope(const cJSON *root, spqr_config *c, spqr_err *err) {
    spqr_status st;
    c->rope_scaling = SPQR_ROPE_NONE;
    c->rope_factor = 1.0f;
    c->rope_low_freq_factor = 1.0f;
    c->rope_high_freq_factor = 1.0f;
    c->rope_original_max_position = 0;
    if ((st = get_float(root, "rope_theta", 10000.0, 1.0, 1e12, &c->rope_theta, err))) return st;
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (!rp || cJSON_IsNull(rp)) return parse_rope_object(cJSON_GetObjectItemCaseSensitive(root, "rope_scaling"), "rope_scaling", c, err);
    if (!cJSON_IsObject(rp)) return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: \"rope_parameters\" must be an object or null");
    if (cJSON_GetObjectItemCaseSensitive(rp, "full_attention") || cJSON_GetObjectItemCaseSensitive(rp, "sliding_attention"))
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED,
                            "config.json: rope_parameters per layer type is not supported (only one set for all layers)");
    if ((st = get_float(rp, "rope_theta", c->rope_theta, 1.0, 1e12, &c->rope_theta, err)))
        return spqr_err_prefix(err, st, "rope_parameters");
    return parse_rope_object(rp, "rope_parameters", c, err);
}

static spqr_status parse_root(const cJSON *root, spqr_config *c, model_hparams *hp, spqr_err *err) {
    spqr_status st;
    if (!cJSON_IsObject(root)) return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: top level is not an object");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsString(mt)) return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: missing \"model_type\"");
    const model_arch *arch = spqri_arch_find(mt->valuestring);
    char list[160];
    if (!arch)
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "config.json: model_type \"%.64s\" is not supported (supported: %s)",
                            mt->valuestring, spqri_arch_supported_list(list, sizeof list));

    memset(c, 0, sizeof *c);
    memset(hp, 0, sizeof *hp);
    hp->arch = arch;
    if ((st = get_int(root, "vocab_size", INT32_MIN, 1, 1 << 24, &c->vocab_size, err))) return st;
    if ((st = get_int(root, "hidden_size", INT32_MIN, 1, 1 << 17, &c->hidden_size, err))) return st;
    if ((st = get_int(root, "intermediate_size", INT32_MIN, 1, 1 << 19, &c->intermediate_size, err))) return st;
    if ((st = get_int(root, "num_hidden_layers", INT32_MIN, 1, 4096, &c->n_layers, err))) return st;
    if ((st = get_int(root, "num_attention_heads", INT32_MIN, 1, 4096, &c->n_heads, err))) return st;
    if ((st = get_int(root, "num_key_value_heads", c->n_heads, 1, 4096, &c->n_kv_heads, err))) return st;
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(root, "head_dim");
    if ((!hd || cJSON_IsNull(hd)) && arch->head_dim_default) {
        c->head_dim = arch->head_dim_default; /* transformers' default for the family, not hidden / heads */
    } else if (!hd || cJSON_IsNull(hd)) {
        if (c->hidden_size % c->n_heads)
            return spqr_err_set(err, SPQR_ERR_FORMAT,
                                "config.json: hidden_size %d is not divisible by num_attention_heads %d (and no head_dim)",
                                c->hidden_size, c->n_heads);
        c->head_dim = c->hidden_size / c->n_heads;
    } else if ((st = get_int(root, "head_dim", INT32_MIN, 1, 1 << 14, &c->head_dim, err))) {
        return st;
    }
    if (c->head_dim % 2)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: head_dim %d must be even for RoPE", c->head_dim);
    if (c->n_heads % c->n_kv_heads)
        return spqr_err_set(err, SPQR_ERR_FORMAT,
                            "config.json: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                            c->n_heads, c->n_kv_heads);
    if ((int64_t)c->n_heads * c->head_dim > (1 << 18))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: num_attention_heads * head_dim is absurdly large");
    if ((st = get_int(root, "max_position_embeddings", arch->max_pos_default, 1, 1 << 24, &c->max_position_embeddings, err)))
        return st;
    if ((st = get_float(root, "rms_norm_eps", arch->rms_eps_default, 0.0, 1.0, &c->rms_norm_eps, err))) return st;
    if ((st = parse_rope(root, c, err))) return st;
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    if (tie && !cJSON_IsNull(tie) && !cJSON_IsBool(tie))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: \"tie_word_embeddings\" must be true, false or null");
    c->tie_word_embeddings = tie && !cJSON_IsNull(tie) ? cJSON_IsTrue(tie) : arch->tie_default;
    if ((st = get_token_id(root, "bos_token_id", &c->bos_token_id, err))) return st;
    c->eos_token_id = -1;
    if ((st = add_eos_ids(root, c, "config.json", err))) return st;

    hp->attn_scale = (float)(1.0 / sqrt((double)c->head_dim));
    return arch->parse(root, c, hp, err);
}

spqr_status spqr_config_parse(const char *json, size_t len, spqr_config *out, spqr_err *err) {
    model_hparams hp;
    return spqri_model_config_parse(json, len, out, &hp, err);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* A key that appears twice in one object of v, or NULL (*oom set when a
 * sort buffer could not be had): Python's json (transformers) keeps the last
 * value and cJSON finds the first, so a repeated key is refused rather than
 * read differently. Objects are checked by sorting their keys. */
static const char *repeated_key(const cJSON *v, int *oom) {
    if (cJSON_IsObject(v)) {
        size_t n = 0;
        for (const cJSON *a = v->child; a; a = a->next) n++;
        const char **keys = n > 1 ? malloc(n * sizeof *keys) : NULL;
        if (n > 1 && !keys) {
            *oom = 1;
            return NULL;
        }
        size_t k = 0;
        for (const cJSON *a = v->child; a && keys; a = a->next) keys[k++] = a->string ? a->string : "";
        if (keys) qsort(keys, n, sizeof *keys, cmp_str);
        const char *dup = NULL;
        for (size_t i = 0; keys && i + 1 < n && !dup; i++)
            if (!strcmp(keys[i], keys[i + 1])) dup = keys[i];
        free(keys);
        if (dup) return dup;
    }
    for (const cJSON *a = v ? v->child : NULL; a; a = a->next) {
        const char *r = repeated_key(a, oom);
        if (r || *oom) return r;
    }
    return NULL;
}

spqr_status spqri_model_config_parse(const char *json, size_t len, spqr_config *out, model_hparams *hp_out, spqr_err *err) {
    if (!json || !out || !hp_out) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "config: NULL argument");
    /* The rule the .spqr writer applies: what loads here can be stored. */
    const char *why = spqrf_text_problem(SPQRF_SEC_CONFIG, json, len);
    if (why) return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: %s", why);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: invalid JSON");
    int oom = 0;
    const char *dup = repeated_key(root, &oom);
    if (oom) {
        cJSON_Delete(root);
        return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    }
    if (dup) {
        char nb[96];
        spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: key \"%s\" appears twice in one object", spqr_printable(dup, nb, sizeof nb));
        cJSON_Delete(root);
        return SPQR_ERR_FORMAT;
    }
    spqr_config c;
    model_hparams hp;
    spqr_status st = parse_root(root, &c, &hp, err);
    cJSON_Delete(root);
    if (st == SPQR_OK) {
        *out = c;
        *hp_out = hp;
    }
    return st;
}

spqr_status spqr_config_load(const char *path, spqr_config *out, spqr_err *err) {
    char *buf = NULL;
    size_t n = 0;
    spqr_status st = spqr_file_read_text(path, CONFIG_MAX_BYTES, &buf, &n, err);
    if (!st) st = spqr_config_parse(buf, n, out, err);
    free(buf);
    return st;
}

void spqr_config_rope_inv_freq(const spqr_config *c, float *inv_freq) {
    const int32_t half = c->head_dim / 2;
    for (int32_t i = 0; i < half; i++) {
        /* HF: 1 / theta ** (arange(0, hd, 2).float() / hd), all in float32 */
        float e = (float)(2 * i) / (float)c->head_dim;
        float f = 1.0f / powf(c->rope_theta, e);
        if (c->rope_scaling == SPQR_ROPE_LLAMA3) {
            const float factor = c->rope_factor;
            const float old_ctx = (float)c->rope_original_max_position;
            const float low_wavelen = old_ctx / c->rope_low_freq_factor;
            const float high_wavelen = old_ctx / c->rope_high_freq_factor;
            const float wavelen = (float)(2.0 * M_PI) / f;
            if (wavelen > low_wavelen) {
                f = f / factor;
            } else if (!(wavelen < high_wavelen)) { /* medium frequency: interpolate */
                float smooth = (old_ctx / wavelen - c->rope_low_freq_factor) /
                               (c->rope_high_freq_factor - c->rope_low_freq_factor);
                f = (1.0f - smooth) * f / factor + smooth * f;
            }
        }
        inv_freq[i] = f;
    }
}
