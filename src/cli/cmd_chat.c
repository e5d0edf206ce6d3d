/* spqr chat: an interactive conversation through the model's chat template.
 * Each turn renders the whole conversation, feeds only the tokens that
 * differ from what the KV cache already holds (the cache is kept between
 * turns), and streams the reply until an EOS id. Ctrl-C stops the reply and
 * returns to the prompt; Ctrl-D or /exit quits. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/gen_flags.h"
#include "spqr.h"

#define CMD "chat"
#define DEFAULT_CTX_CAP 4096 /* the KV cache of a 128K-context model would not fit memory */

static void usage(FILE *f) {
    fprintf(f,
            "usage: spqr chat MODEL [options]\n"
            "  Talk with an instruct model through its chat template (tokenizer_config.json).\n"
            "  Type a message and Enter; Ctrl-C stops a reply; /reset forgets the conversation;\n"
            "  /exit or Ctrl-D quits.\n"
            "  --system TEXT      system message\n" CLI_GEN_FLAGS_USAGE
            "  -c, --ctx N        context (default min(max_position_embeddings, %d))\n",
            DEFAULT_CTX_CAP);
}

static volatile sig_atomic_t g_interrupted = 0; /* set by SIGINT: the one global the signal handler needs */

static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

typedef struct conv {
    spqr_chat_message *msg;
    char **owned; /* [i] the malloc'ed content of msg[i], NULL for the system message */
    int32_t n, cap;
} conv;

static int conv_push(conv *c, const char *role, char *content) {
    if (c->n == c->cap) {
        int32_t cap = c->cap ? c->cap * 2 : 16;
        spqr_chat_message *m = realloc(c->msg, (size_t)cap * sizeof *m);
        if (!m) return -1;
        c->msg = m;
        char **o = realloc(c->owned, (size_t)cap * sizeof *o);
        if (!o) return -1;
        c->owned = o;
        c->cap = cap;
    }
    c->msg[c->n] = (spqr_chat_message){role, content};
    c->owned[c->n++] = content;
    return 0;
}

static void conv_truncate(conv *c, int32_t n) {
    while (c->n > n) free(c->owned[--c->n]);
}

typedef struct chat {
    const spqr_model *m;
    spqr_session *s;
    spqr_sampler *sm;
    float *logits;
    int32_t ctx, n_gen;
    int32_t *cache; /* [ctx] the tokens the session's KV cache holds */
    int32_t n_cache;
    conv conv;
    int32_t n_keep; /* messages that /reset keeps (the system message) */
    int verbose;
} chat;

/* One turn: renders, feeds what changed, streams the reply. Returns 0, or 1
 * when the turn could not run (message printed; the conversation is as before). */
static int turn(chat *C, char *line, spqr_err *err) {
    const int32_t before = C->conv.n;
    if (conv_push(&C->conv, "user", line)) {
        free(line);
        fprintf(stderr, "spqr: " CMD ": out of memory\n");
        return 1;
    }
    char *text = NULL;
    int32_t *ids = NULL, n = 0;
    if (spqr_chat_render(C->m, C->conv.msg, C->conv.n, 1, &text, err) ||
        spqr_tokenizer_encode(spqr_model_tokenizer(C->m), text, strlen(text), 0, &ids, &n, err)) {
        fprintf(stderr, "spqr: " CMD ": %s\n", err->msg);
        free(text);
        conv_truncate(&C->conv, before);
        return 1;
    }
    free(text);
    if (n + 1 > C->ctx) {
        fprintf(stderr, "spqr: " CMD ": the conversation (%d tokens) no longer fits the context of %d tokens; "
                        "/reset starts over (or use a larger -c)\n", n, C->ctx);
        free(ids);
        conv_truncate(&C->conv, before);
        return 1;
    }
    /* keep the cached prefix that the new rendering shares; feed at least one token for fresh logits */
    int32_t p = 0;
    while (p < C->n_cache && p < n && C->cache[p] == ids[p]) p++;
    if (p == n) p = n - 1;
    spqr_session_rewind(C->s, p);
    C->n_cache = p;
    if (C->verbose) fprintf(stderr, "[prompt: %d tokens, %d of them reused from the cache]\n", n, p);
    if (spqr_session_forward(C->s, ids + p, n - p, 0, C->logits, err)) {
        fprintf(stderr, "spqr: " CMD ": %s\n", err->msg);
        free(ids);
        spqr_session_reset(C->s);
        C->n_cache = 0;
        conv_truncate(&C->conv, before);
        return 1;
    }
    memcpy(C->cache + p, ids + p, (size_t)(n - p) * sizeof *ids);
    C->n_cache = n;
    free(ids);

    cli_text reply = {0};
    cli_stop why = CLI_STOP_LENGTH;
    int32_t n_done = 0, n_fed = C->n_cache;
    spqr_status st = cli_stream_reply(C->s, C->ctx, C->m, C->sm, C->logits, C->n_gen, -1, &g_interrupted, stdout,
                                      C->cache, &n_fed, C->ctx, &reply, &why, &n_done, err);
    C->n_cache = n_fed < C->ctx ? n_fed : C->ctx;
    printf("\n");
    fflush(stdout);
    if (st) {
        fprintf(stderr, "spqr: " CMD ": %s\n", err->msg);
        free(reply.p);
        spqr_session_reset(C->s);
        C->n_cache = 0;
        conv_truncate(&C->conv, before);
        return 1;
    }
    if (why == CLI_STOP_INTERRUPT) fprintf(stderr, "[reply stopped]\n");
    if (why == CLI_STOP_CONTEXT)
        fprintf(stderr, "[the context of %d tokens is full: /reset starts over, or use a larger -c]\n", C->ctx);
    /* the reply, even cut short, is what the assistant said */
    if (conv_push(&C->conv, "assistant", reply.p ? reply.p : calloc(1, 1))) {
        fprintf(stderr, "spqr: " CMD ": out of memory\n");
        return 1;
    }
    return 0;
}

int cmd_chat(int argc, char **argv) {
    const char *model_dir = NULL, *system = NULL;
    cli_gen_flags g;
    cli_gen_flags_init(&g);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_gen_flag(CMD, argc, argv, &i, &g);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--system")) { if (!(system = cli_flag_value(CMD, argc, argv, &i))) return 2; }
        else if (a[0] == '-' && a[1]) { fprintf(stderr, "spqr: " CMD ": unknown option '%s' (see --help)\n", a); return 2; }
        else if (!model_dir) model_dir = a;
        else { fprintf(stderr, "spqr: " CMD ": unexpected argument '%s'\n", a); return 2; }
    }
    if (!model_dir) { fprintf(stderr, "spqr: " CMD ": missing MODEL (see --help)\n"); return 2; }
    cli_blas_single_thread();

    spqr_err err = {0};
    spqr_logger logger = cli_stderr_logger(g.verbose);
    spqr_model *m = NULL;
    if (spqr_model_load(model_dir, &logger, &m, &err)) return cli_fail(CMD, err.msg, 1);
    chat C = {.m = m, .n_gen = g.n_gen, .verbose = g.verbose};
    int rc = 1;
    char *line = NULL;
    const spqr_config *cfg = spqr_model_config(m);
    if (!spqr_model_chat_template(m)) {
        cli_fail(CMD, "the model has no chat template (tokenizer_config.json has no \"chat_template\"); "
                      "use generate with a plain prompt", 1);
        goto done;
    }
    if (g.ctx > cfg->max_position_embeddings) {
        fprintf(stderr, "spqr: " CMD ": -c %d exceeds the model's max_position_embeddings %d\n", g.ctx,
                cfg->max_position_embeddings);
        goto done;
    }
    C.ctx = g.ctx ? g.ctx : cfg->max_position_embeddings < DEFAULT_CTX_CAP ? cfg->max_position_embeddings : DEFAULT_CTX_CAP;
    if (system) {
        char *copy = strdup(system);
        if (!copy || conv_push(&C.conv, "system", copy)) { free(copy); cli_fail(CMD, "out of memory", 1); goto done; }
        C.n_keep = 1;
    }
    cli_gen_seed(&g);
    if (spqr_sampler_create(cfg->vocab_size, g.temp, g.top_p, (uint64_t)g.seed, &C.sm, &err) ||
        spqr_session_create_opts(m, &(spqr_session_opts){C.ctx, g.threads, g.kv}, &C.s, &err)) {
        cli_fail(CMD, err.msg, 1);
        goto done;
    }
    C.logits = malloc((size_t)cfg->vocab_size * sizeof *C.logits);
    C.cache = malloc((size_t)C.ctx * sizeof *C.cache);
    if (!C.logits || !C.cache) { cli_fail(CMD, "out of memory", 1); goto done; }

    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: Ctrl-C at the prompt interrupts the read */
    sigaction(SIGINT, &sa, &old);
    size_t cap = 0;
    int refused = 0, n_ok = 0, n_bad = 0;
    for (;;) {
        g_interrupted = 0;
        fputs("> ", stdout);
        fflush(stdout);
        errno = 0;
        ssize_t len = getline(&line, &cap, stdin);
        if (len < 0) {
            if (g_interrupted || errno == EINTR) { /* Ctrl-C at the prompt: a fresh prompt */
                clearerr(stdin);
                fputs("\n", stdout);
                continue;
            }
            fputs("\n", stdout); /* Ctrl-D */
            break;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            conv_truncate(&C.conv, C.n_keep);
            spqr_session_reset(C.s);
            C.n_cache = 0;
            continue;
        }
        char *msg = strdup(line);
        if (!msg) { cli_fail(CMD, "out of memory", 1); break; }
        const int bad = turn(&C, msg, &err);
        n_ok += !bad, n_bad += bad;
        if (bad && C.conv.n == C.n_keep && system) {
            refused = 1; /* the template refuses even the first turn with this system message (e.g. Gemma) */
            break;
        }
    }
    sigaction(SIGINT, &old, NULL);
    rc = refused || (n_bad > 0 && n_ok == 0); /* a script whose every turn failed (e.g. nothing fits -c) fails */
done:
    free(line);
    conv_truncate(&C.conv, 0);
    free(C.conv.msg);
    free(C.conv.owned);
    free(C.cache);
    free(C.logits);
    spqr_sampler_free(C.sm);
    spqr_session_free(C.s);
    spqr_model_free(m);
    return rc;
}
