/* BOS / EOS resolution for a loaded model. Hugging Face spreads the special
 * ids over four files: config.json (bos_token_id, eos_token_id: an int or a
 * list), generation_config.json (the eos_token_id list generate() stops
 * at; instruct models add their end-of-turn ids there), tokenizer_config.json
 * (the declared bos_token / eos_token) and tokenizer.json (added tokens
 * marked special). See docs/tokenizer.md, "Special ids". */
#include "model/special_ids.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/file.h"
#include "model/chat.h"
#include "model/config.h"
#include "tokenizer/tokenizer.h"

#define SIDE_FILE_MAX_BYTES (16u << 20) /* tokenizer_config.json with a chat template: tens of KB */

/* Reads dir/name into *text (NULL, SPQR_OK when the file does not exist). */
static spqr_status read_optional(const char *dir, const char *name, char **text, size_t *len, spqr_err *err) {
    spqr_status st = spqri_file_read_in_dir(dir, name, SIDE_FILE_MAX_BYTES, 1, text, len, err);
    return st ? spqr_err_prefix(err, st, "%s", dir) : SPQR_OK;
}


/* config_json with bos_token_id / eos_token_id set to c's resolved ids (an
 * int for one EOS id, a list for several), and with the tokenizer_config.json
 * subset under MODEL_CHAT_CONFIG_KEY when there is one (sub is consumed). */
static spqr_status store_ids(spqr_model *m, cJSON *sub, spqr_err *err) {
    const spqr_config *c = &m->cfg;
    cJSON *root = cJSON_ParseWithLength(m->config_json, m->config_len);
    if (!cJSON_IsObject(root)) { /* parsed before: only memory can fail here */
        cJSON_Delete(root);
        cJSON_Delete(sub);
        return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory (config.json)");
    }
    cJSON *bos = c->bos_token_id >= 0 ? cJSON_CreateNumber(c->bos_token_id) : cJSON_CreateNull();
    cJSON *eos = c->n_eos_token_ids == 0   ? cJSON_CreateNull()
                 : c->n_eos_token_ids == 1 ? cJSON_CreateNumber(c->eos_token_ids[0])
                                           : cJSON_CreateIntArray(c->eos_token_ids, c->n_eos_token_ids);
    char *text = NULL;
    if (bos && eos) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, "bos_token_id");
        cJSON_DeleteItemFromObjectCaseSensitive(root, "eos_token_id");
        cJSON_AddItemToObject(root, "bos_token_id", bos);
        cJSON_AddItemToObject(root, "eos_token_id", eos);
        if (sub) {
            cJSON_DeleteItemFromObjectCaseSensitive(root, MODEL_CHAT_CONFIG_KEY);
            cJSON_AddItemToObject(root, MODEL_CHAT_CONFIG_KEY, sub);
            sub = NULL;
        }
        text = cJSON_Print(root);
    } else {
        cJSON_Delete(bos);
        cJSON_Delete(eos);
    }
    cJSON_Delete(sub);
    cJSON_Delete(root);
    if (!text) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory (config.json)");
    free(m->config_json);
    m->config_json = text;
    m->config_len = strlen(text);
    return SPQR_OK;
}

/* The tokenizer_config.json subset: from dir (tokenizer_config.json,
 * chat_template.jinja) or, for a .spqr (dir NULL), from its config text.
 * *sub is NULL when there is none. */
static spqr_status read_chat_subset(spqr_model *m, const char *dir, const char *tc, size_t tc_len, cJSON **sub,
                                    spqr_err *err) {
    *sub = NULL;
    if (!dir) {
        cJSON *root = cJSON_ParseWithLength(m->config_json, m->config_len);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, MODEL_CHAT_CONFIG_KEY);
        if (cJSON_IsObject(s)) *sub = cJSON_Duplicate(s, 1);
        cJSON_Delete(root);
        return SPQR_OK;
    }
    char *jinja = NULL;
    size_t jlen = 0;
    spqr_status st = read_optional(dir, "chat_template.jinja", &jinja, &jlen, err);
    if (!st && (tc || jinja)) {
        st = spqri_model_chat_subset(tc, tc_len, jinja, sub, err);
        if (st) spqr_err_prefix(err, st, "%s", dir);
    }
    free(jinja);
    return st;
}

/* Applies the subset: bos/eos/add_bos_token to the tokenizer (a .spqr's
 * tokenizer.json alone does not know add_bos_token) and the chat template. */
static spqr_status apply_chat_subset(spqr_model *m, const cJSON *sub, spqr_err *err) {
    char *text = cJSON_PrintUnformatted(sub);
    if (!text) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    spqr_status st = spqr_tokenizer_apply_config(m->tok, text, strlen(text), err);
    free(text);
    if (!st) st = spqri_model_chat_from_subset(sub, &m->chat, err);
    return st;
}

spqr_status spqr_model_resolve_special_ids(spqr_model *m, const char *dir, spqr_err *err) {
    spqr_config *c = &m->cfg;
    int changed = 0;
    cJSON *sub = NULL;
    if (!dir) {
        spqr_status st = read_chat_subset(m, NULL, NULL, 0, &sub, err);
        if (!st && sub) st = apply_chat_subset(m, sub, err);
        cJSON_Delete(sub);
        sub = NULL;
        if (st) return st;
    }
    if (dir) {
        char *text = NULL;
        size_t len = 0;
        spqr_status st = read_optional(dir, "tokenizer_config.json", &text, &len, err);
        if (!st) st = read_chat_subset(m, dir, text, len, &sub, err);
        if (!st && sub) {
            st = spqri_model_chat_from_subset(sub, &m->chat, err);
            changed = 1; /* the config text a .spqr keeps must carry the subset */
        }
        if (!st && text) {
            int32_t bos = spqr_tokenizer_bos_id(m->tok), eos = spqr_tokenizer_eos_id(m->tok);
            st = spqr_tokenizer_apply_config(m->tok, text, len, err);
            if (st) spqr_err_prefix(err, st, "%s", dir);
            /* it matters for the stored ids only where config.json leaves them to the tokenizer */
            changed |= (c->bos_token_id < 0 && bos != spqr_tokenizer_bos_id(m->tok)) ||
                       (c->n_eos_token_ids == 0 && eos != spqr_tokenizer_eos_id(m->tok));
        }
        free(text);
        if (!st) st = read_optional(dir, "generation_config.json", &text, &len, err);
        if (st) {
            cJSON_Delete(sub);
            return st;
        }
        if (text) {
            int32_t n = c->n_eos_token_ids;
            st = spqr_config_add_generation_eos(c, text, len, err);
            free(text);
            if (st) {
                cJSON_Delete(sub);
                return spqr_err_prefix(err, st, "%s", dir);
            }
            changed |= c->n_eos_token_ids != n;
        }
    }
    if (c->bos_token_id < 0) c->bos_token_id = spqr_tokenizer_bos_id(m->tok);
    int32_t teos = spqr_tokenizer_eos_id(m->tok);
    if (c->n_eos_token_ids == 0 && teos >= 0) {
        c->eos_token_ids[0] = teos;
        c->n_eos_token_ids = 1;
    }
    c->eos_token_id = c->n_eos_token_ids ? c->eos_token_ids[0] : -1;
    spqr_status st = SPQR_OK;
    if (c->bos_token_id >= c->vocab_size)
        st = spqr_err_set(err, SPQR_ERR_FORMAT, "bos token id %d is outside the vocabulary (%d)", c->bos_token_id,
                          c->vocab_size);
    for (int32_t i = 0; i < c->n_eos_token_ids && !st; i++)
        if (c->eos_token_ids[i] >= c->vocab_size)
            st = spqr_err_set(err, SPQR_ERR_FORMAT, "eos token id %d is outside the vocabulary (%d)",
                              c->eos_token_ids[i], c->vocab_size);
    if (st || !changed) {
        cJSON_Delete(sub);
        return st;
    }
    return store_ids(m, sub, err);
}

spqr_status spqri_model_load_tokenizer(spqr_model *m, const char *dir, const char *what, spqr_err *err) {
    spqr_status st = spqr_tokenizer_load_from_memory(m->tokenizer_json, m->tokenizer_len, &m->tok, err);
    if (st) return spqr_err_prefix(err, st, "%s", what);
    const int32_t tv = spqr_tokenizer_vocab_size(m->tok);
    if (tv > m->cfg.vocab_size)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s has %d tokens but config.json vocab_size is %d", what, tv,
                            m->cfg.vocab_size);
    return spqr_model_resolve_special_ids(m, dir, err);
}
