/* A model's chat template and the token strings it renders with, from
 * tokenizer_config.json (or chat_template.jinja); a .spqr carries them in
 * its config text under "spqr_tokenizer_config" (docs/chat.md). */
#ifndef SPQR_MODEL_CHAT_H
#define SPQR_MODEL_CHAT_H

#include <cjson/cJSON.h>

#include "spqr.h"

/* The key of a .spqr config text that holds spqri_model_chat_subset's object. */
#define MODEL_CHAT_CONFIG_KEY "spqr_tokenizer_config"

typedef struct spqr_model_chat {
    char *template_text; /* NULL: no template */
    char *bos_token, *eos_token; /* NULL: undefined in the template */
} spqr_model_chat;

/* The part of tokenizer_config.json a model keeps (chat_template, bos_token,
 * eos_token, add_bos_token), with chat_template.jinja's text (jinja, may be
 * NULL) in place of chat_template when given. A list of named templates
 * keeps the one named "default". *out is a new cJSON object (caller frees). */
spqr_status spqri_model_chat_subset(const char *tokenizer_config, size_t len, const char *jinja, cJSON **out,
                              spqr_err *err);

/* Fills *out from such a subset; free with spqri_model_chat_free. */
spqr_status spqri_model_chat_from_subset(const cJSON *subset, spqr_model_chat **out, spqr_err *err);
void spqri_model_chat_free(spqr_model_chat *c);

#endif
