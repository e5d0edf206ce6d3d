/* Chat template entry points: the render's arena and limits, error
 * unwinding, and spqr_chat_template_render. */
#include "tokenizer/chat_template.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/chat_template_internal.h"

struct ct_chunk {
    ct_chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

ct_limits spqri_ct_default_limits(void) {
    ct_limits l = {.max_output = 16u << 20, .max_memory = 256u << 20, .max_steps = 10000000, .max_depth = 200};
    return l;
}

_Noreturn void spqri_ct_fail(ct_state *S, spqr_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(S->msg, sizeof S->msg, fmt, ap);
    va_end(ap);
    S->code = code;
    longjmp(S->jmp, 1);
}

void *spqri_ct_alloc(ct_state *S, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n > S->budget - S->used) spqri_ct_fail(S, SPQR_ERR_UNSUPPORTED, "chat template: uses more than %zu bytes of memory", S->budget);
    ct_chunk *c = S->chunks;
    if (!c || c->size - c->used < n) {
        size_t size = n > (64u << 10) ? n : (64u << 10);
        c = malloc(sizeof *c + size);
        if (!c) spqri_ct_fail(S, SPQR_ERR_NOMEM, "out of memory (chat template)");
        c->size = size;
        c->used = 0;
        c->next = S->chunks;
        S->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    S->used += n;
    return p;
}

void spqri_ct_enter(ct_state *S) {
    if (++S->depth > S->lim.max_depth)
        spqri_ct_fail(S, SPQR_ERR_UNSUPPORTED, "chat template: nested deeper than %d levels", (int)S->lim.max_depth);
}

void spqri_ct_step(ct_state *S) {
    if (++S->steps > S->lim.max_steps)
        spqri_ct_fail(S, SPQR_ERR_UNSUPPORTED, "chat template: takes more than %lld steps", (long long)S->lim.max_steps);
}

static void arena_free(ct_state *S) {
    for (ct_chunk *c = S->chunks, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    S->chunks = NULL;
}

/* Everything that may longjmp runs in here, so no local of spqri_ct_render lives across setjmp. */
static void run(ct_state *S, const char *tmpl, size_t len) {
    ct_tok *toks;
    int32_t n;
    spqri_ct_lex(S, tmpl, len, &toks, &n);
    S->depth = 0;
    ct_node *prog = spqri_ct_parse(S, toks, n);
    S->depth = 0;
    spqri_ct_eval_program(S, prog);
}

spqr_status spqri_ct_render(const char *tmpl, size_t len, const ct_context *ctx, const ct_limits *lim, char **out,
                      size_t *out_len, spqr_err *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!tmpl || !ctx || (ctx->n_messages > 0 && !ctx->messages) || ctx->n_messages < 0)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "chat template: invalid arguments");
    ct_state *S = calloc(1, sizeof *S);
    if (!S) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory (chat template)");
    S->lim = lim ? *lim : spqri_ct_default_limits();
    S->budget = S->lim.max_memory;
    S->ctx = ctx;
    spqr_status st = SPQR_OK;
    if (setjmp(S->jmp) == 0) {
        run(S, tmpl, len);
        char *r = malloc(S->out_len + 1);
        if (!r) st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory (chat template)");
        else {
            if (S->out_len) memcpy(r, S->out, S->out_len);
            r[S->out_len] = 0;
            *out = r;
            if (out_len) *out_len = S->out_len;
        }
    } else {
        st = spqr_err_set(err, S->code, "%s", S->msg);
    }
    arena_free(S);
    free(S);
    return st;
}

spqr_status spqr_chat_template_render(const char *tmpl, const spqr_chat_message *msgs, int32_t n,
                                      int add_generation_prompt, const char *bos_token, const char *eos_token,
                                      char **out, spqr_err *err) {
    if (!out) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "chat template: out is NULL");
    *out = NULL;
    if (!tmpl) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "chat template: no template");
    ct_context c = {.messages = msgs, .n_messages = n, .add_generation_prompt = add_generation_prompt,
                    .bos_token = bos_token, .eos_token = eos_token};
    return spqri_ct_render(tmpl, strlen(tmpl), &c, NULL, out, NULL, err);
}
