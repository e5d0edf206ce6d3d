/* Chat templates: the Jinja subset that Hugging Face chat templates use,
 * rendered the way transformers.js (@huggingface/jinja) renders them:
 * trim_blocks and lstrip_blocks on, Python-like values, loop/namespace
 * scoping, raise_exception as an error. See docs/chat.md. */
#ifndef SPQR_TOKENIZER_CHAT_TEMPLATE_H
#define SPQR_TOKENIZER_CHAT_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

#include "spqr.h"

/* Bounds that keep a hostile template from taking unbounded time or memory. */
typedef struct ct_limits {
    size_t max_output;     /* bytes of rendered text */
    size_t max_memory;     /* bytes of the render's arena (values, AST) */
    int64_t max_steps;     /* statements + loop iterations evaluated */
    int32_t max_depth;     /* nesting of the parser and the evaluator */
} ct_limits;

/* Defaults: 16 MiB output, 256 MiB arena, 10M steps, depth 200. */
ct_limits spqri_ct_default_limits(void);

typedef struct ct_context {
    const spqr_chat_message *messages;
    int32_t n_messages;
    int add_generation_prompt;
    const char *bos_token;   /* NULL: undefined in the template */
    const char *eos_token;
    int64_t now;             /* strftime_now's time (UTC) when > 0, else the local clock */
} ct_context;

/* Renders template (len bytes) into *out (malloc'd, NUL-terminated,
 * *out_len bytes). Syntax errors, unsupported constructs and the template's
 * own raise_exception("msg") are one-line errors: SPQR_ERR_FORMAT for a
 * template that does not parse or evaluate, SPQR_ERR_INVALID_ARG with the
 * template's message for raise_exception, SPQR_ERR_UNSUPPORTED beyond the
 * limits. Never crashes, whatever the bytes. */
spqr_status spqri_ct_render(const char *tmpl, size_t len, const ct_context *ctx, const ct_limits *lim, char **out,
                      size_t *out_len, spqr_err *err);

#endif
