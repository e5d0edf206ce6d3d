/* Chat template of a loaded model and spqr_chat_render. */
#include "model/chat.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/json_doc.h"
#include "model/model.h"
#include "tokenizer/chat_template.h"

#define CHAT_TEMPLATE_MAX_BYTES (4u << 20)

static const char *token_text(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

spqr_status spqri_model_chat_subset(const char *tokenizer_config, size_t len, const char *jinja, cJSON **out,
                              spqr_err *err) {
    *out = NULL;
    const char *why = NULL;
    cJSON *root = tokenizer_config ? spqr_json_parse_doc(tokenizer_config, len, &why) : cJSON_CreateObject();
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer_config.json: %s", why ? why : "not a JSON object");
    }
    cJSON *sub = cJSON_CreateObject();
    spqr_status st = SPQR_OK;
    if (!sub) st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    const char *text = jinja;
    if (!st && !text && cJSON_IsArray(tpl)) { /* [{"name": "default", "template": ...}, {"name": "tool_use", ...}] */
        const cJSON *e;
        cJSON_ArrayForEach(e, tpl) {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name"), *t = cJSON_GetObjectItemCaseSensitive(e, "template");
            if (cJSON_IsString(n) && !strcmp(n->valuestring, "default") && cJSON_IsString(t)) text = t->valuestring;
        }
        if (!text) st = spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tokenizer_config.json: chat_template list has no \"default\"");
    } else if (!st && !text && tpl && !cJSON_IsNull(tpl)) {
        if (!cJSON_IsString(tpl)) st = spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer_config.json: chat_template is not a string");
        else text = tpl->valuestring;
    }
    if (!st && text && strlen(text) > CHAT_TEMPLATE_MAX_BYTES)
        st = spqr_err_set(err, SPQR_ERR_FORMAT, "chat template longer than %u bytes", CHAT_TEMPLATE_MAX_BYTES);
    if (!st && text && !cJSON_AddStringToObject(sub, "chat_template", text)) st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    static const char *const keys[3] = {"bos_token", "eos_token", "add_bos_token"};
    for (int k = 0; k < 3 && !st; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, keys[k]);
        if (!v) continue;
        cJSON *copy = k == 2 ? (cJSON_IsBool(v) ? cJSON_CreateBool(cJSON_IsTrue(v)) : NULL)
                             : cJSON_IsNull(v) ? cJSON_CreateNull()
                             : token_text(v) ? cJSON_CreateString(token_text(v)) : NULL;
        if (copy) cJSON_AddItemToObject(sub, keys[k], copy);
    }
    cJSON_Delete(root);
    if (st) {
        cJSON_Delete(sub);
        return st;
    }
    *out = sub;
    return SPQR_OK;
}

static char *dup_or_null(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

spqr_status spqri_model_chat_from_subset(const cJSON *subset, spqr_model_chat **out, spqr_err *err) {
    *out = NULL;
    spqr_model_chat *c = calloc(1, sizeof *c);
    if (!c) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    const char *t = token_text(cJSON_GetObjectItemCaseSensitive(subset, "chat_template"));
    const char *b = token_text(cJSON_GetObjectItemCaseSensitive(subset, "bos_token"));
    const char *e = token_text(cJSON_GetObjectItemCaseSensitive(subset, "eos_token"));
    c->template_text = dup_or_null(t);
    c->bos_token = dup_or_null(b);
    c->eos_token = dup_or_null(e);
    if ((t && !c->template_text) || (b && !c->bos_token) || (e && !c->eos_token)) {
        spqri_model_chat_free(c);
        return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    }
    *out = c;
    return SPQR_OK;
}

void spqri_model_chat_free(spqr_model_chat *c) {
    if (!c) return;
    free(c->template_text);
    free(c->bos_token);
    free(c->eos_token);
    free(c);
}

const char *spqr_model_chat_template(const spqr_model *m) {
    return m && m->chat ? m->chat->template_text : NULL;
}

spqr_status spqr_chat_render(const spqr_model *m, const spqr_chat_message *msgs, int32_t n,
                             int add_generation_prompt, char **out, spqr_err *err) {
    if (out) *out = NULL;
    if (!m || !out) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "chat: NULL argument");
    if (!spqr_model_chat_template(m))
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED,
                            "the model has no chat template (tokenizer_config.json has no \"chat_template\"); "
                            "use generate with a plain prompt");
    spqr_status st = spqr_chat_template_render(m->chat->template_text, msgs, n, add_generation_prompt,
                                               m->chat->bos_token, m->chat->eos_token, out, err);
    if (st == SPQR_ERR_INVALID_ARG) spqr_err_prefix(err, st, "the chat template refused the conversation");
    return st;
}
