/* The list of families and the config helpers their parse hooks share. */
#include "model/arch.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"

#define ARCH_ADDRESS(f) &spqri_arch_##f,
static const model_arch *const FAMILIES[] = {ARCH_FAMILIES(ARCH_ADDRESS)};
#undef ARCH_ADDRESS
#define N_FAMILIES ((int32_t)(sizeof FAMILIES / sizeof FAMILIES[0]))

const model_arch *spqri_arch_find(const char *model_type) {
    for (int32_t i = 0; model_type && i < N_FAMILIES; i++)
        if (!strcmp(FAMILIES[i]->model_type, model_type)) return FAMILIES[i];
    return NULL;
}

const char *spqri_arch_supported_list(char *buf, size_t cap) {
    size_t n = 0;
    if (cap) buf[0] = 0;
    for (int32_t i = 0; i < N_FAMILIES && n < cap; i++) {
        const int w = snprintf(buf + n, cap - n, "%s%s", i ? ", " : "", FAMILIES[i]->model_type);
        n += w > 0 ? (size_t)w : 0;
    }
    return buf;
}

int32_t spqri_arch_count(void) { return N_FAMILIES; }

const model_arch *spqri_arch_at(int32_t i) { return i >= 0 && i < N_FAMILIES ? FAMILIES[i] : NULL; }

int spqri_arch_fused_first(const model_arch *a, int k) {
    if (!a->lin[k].fused) return 0;
    for (int j = 0; j < k; j++)
        if (a->lin[j].fused && !strcmp(a->lin[j].fused, a->lin[k].fused)) return 0;
    return 1;
}

int32_t spqri_arch_dim_size(const spqr_config *c, arch_dim dim) {
    switch (dim) {
    case ARCH_DIM_HIDDEN: return c->hidden_size;
    case ARCH_DIM_Q: return c->n_heads * c->head_dim;
    case ARCH_DIM_KV: return c->n_kv_heads * c->head_dim;
    case ARCH_DIM_INTER: return c->intermediate_size;
    case ARCH_DIM_HEAD: return c->head_dim;
    }
    return 0;
}

spqr_status spqri_arch_refuse_true(const cJSON *root, const char *key, spqr_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (cJSON_IsTrue(v))
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "config.json: %s = true is not supported (only false)", key);
    return SPQR_OK;
}

spqr_status spqri_arch_check_string(const cJSON *root, const char *key, const char *const *allowed, spqr_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return SPQR_OK;
    for (int i = 0; cJSON_IsString(v) && allowed[i]; i++)
        if (!strcmp(v->valuestring, allowed[i])) return SPQR_OK;
    char list[160] = "";
    for (int i = 0; allowed[i]; i++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", allowed[i]);
    }
    return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "config.json: %s \"%.64s\" is not supported (supported: %s)", key,
                        cJSON_IsString(v) ? v->valuestring : "(not a string)", list);
}

spqr_status spqri_arch_get_float(const cJSON *root, const char *key, double def, double lo, double hi, float *out,
                           spqr_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        *out = (float)def;
        return SPQR_OK;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: \"%s\" must be a number in [%g, %g]", key, lo, hi);
    *out = (float)v->valuedouble;
    return SPQR_OK;
}

spqr_status spqri_arch_parse_sliding_window(const cJSON *root, const spqr_config *c, model_hparams *hp,
                                      int32_t default_window, int even_layers_only, int read_layer_types, spqr_err *err) {
    const cJSON *sw = cJSON_GetObjectItemCaseSensitive(root, "sliding_window");
    const cJSON *use = cJSON_GetObjectItemCaseSensitive(root, "use_sliding_window");
    const cJSON *types = read_layer_types ? cJSON_GetObjectItemCaseSensitive(root, "layer_types") : NULL;
    hp->sliding_window = 0;
    memset(hp->slides, 0, sizeof hp->slides);
    if (cJSON_IsFalse(use) || cJSON_IsNull(sw) || (!sw && !default_window)) return SPQR_OK;
    const double w = sw ? (cJSON_IsNumber(sw) ? sw->valuedouble : -1) : default_window;
    if (w != floor(w) || w < 1 || w > (1 << 30))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: \"sliding_window\" must be a positive integer or null");
    if (c->n_layers > 4096) return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "config.json: more than 4096 layers");
    /* A window that covers every position the model allows changes nothing. */
    if (w >= c->max_position_embeddings) return SPQR_OK;
    hp->sliding_window = (int32_t)w;
    if (types && !cJSON_IsNull(types)) {
        if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) != c->n_layers)
            return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: \"layer_types\" must list num_hidden_layers entries");
        int32_t l = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, types) {
            const char *s = cJSON_GetStringValue(t);
            if (s && !strcmp(s, "sliding_attention")) hp->slides[l / 8] |= (uint8_t)(1u << (l % 8));
            else if (!s || strcmp(s, "full_attention"))
                return spqr_err_set(err, SPQR_ERR_UNSUPPORTED,
                                    "config.json: layer_types entry %d is not supported (supported: "
                                    "sliding_attention, full_attention)", l);
            l++;
        }
        return SPQR_OK;
    }
    for (int32_t l = 0; l < c->n_layers; l++)
        if (!even_layers_only || l % 2 == 0) hp->slides[l / 8] |= (uint8_t)(1u << (l % 8));
    return SPQR_OK;
}
