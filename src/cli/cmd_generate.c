/* spqr generate: streams a continuation of a prompt. Greedy at --temp 0,
 * nucleus sampling otherwise, from the sampler's own seeded RNG. A plain
 * prompt gets the model's BOS token where Hugging Face adds one
 * (spqr_tokenizer_adds_bos: add_bos_token or the post-processor); with
 * --chat the prompt is one user turn rendered through the model's chat
 * template, whose text already holds any BOS. Generation stops at any of the
 * model's EOS ids (config.json and generation_config.json). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/gen_flags.h"
#include "spqr.h"

#define CMD "generate"

static void usage(FILE *f) {
    fprintf(f,
            "usage: spqr generate MODEL_DIR -p PROMPT [options]\n"
            "  -p, --prompt TEXT  prompt\n"
            "  --chat             render PROMPT as a user turn with the model's chat template\n"
            "                     (tokenizer_config.json) and print the assistant's reply\n"
            "  --system TEXT      with --chat: a system message before the user turn\n" CLI_GEN_FLAGS_USAGE
            "  -c, --ctx N        context (default min(max_position_embeddings, prompt + N))\n");
}

static int fail(const char *msg) { return cli_fail(CMD, msg, 1); }

/* The prompt's ids: plain text (with BOS where HF adds it) or the rendered chat turn. */
static spqr_status prompt_ids(const spqr_model *m, const char *prompt, int chat, const char *system, int32_t **out,
                              int32_t *n_out, spqr_err *err) {
    const spqr_config *cfg = spqr_model_config(m);
    const spqr_tokenizer *tok = spqr_model_tokenizer(m);
    *out = NULL;
    *n_out = 0;
    if (chat) {
        spqr_chat_message msgs[2] = {{"system", system}, {"user", prompt}};
        char *text = NULL;
        spqr_status st = spqr_chat_render(m, system ? msgs : msgs + 1, system ? 2 : 1, 1, &text, err);
        if (!st) st = spqr_tokenizer_encode(tok, text, strlen(text), 0, out, n_out, err);
        free(text);
        return st;
    }
    int32_t *ids = NULL, n = 0;
    spqr_status st = spqr_tokenizer_encode(tok, prompt, strlen(prompt), 0, &ids, &n, err);
    if (st) return st;
    /* an empty prompt still needs one token to predict from: the BOS, as llama.cpp does */
    const int add_bos = cfg->bos_token_id >= 0 && (spqr_tokenizer_adds_bos(tok) || n == 0);
    int32_t *p = malloc((size_t)(n + add_bos + 1) * sizeof *p);
    if (!p) {
        free(ids);
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return SPQR_ERR_NOMEM;
    }
    if (add_bos) p[0] = cfg->bos_token_id;
    if (n) memcpy(p + add_bos, ids, (size_t)n * sizeof *ids);
    free(ids);
    *out = p;
    *n_out = n + add_bos;
    return SPQR_OK;
}

int cmd_generate(int argc, char **argv) {
    const char *model_dir = NULL, *prompt = NULL, *system = NULL;
    int chat = 0;
    cli_gen_flags g;
    cli_gen_flags_init(&g);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_gen_flag(CMD, argc, argv, &i, &g);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { if (!(prompt = cli_flag_value(CMD, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--system")) { if (!(system = cli_flag_value(CMD, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--chat")) chat = 1;
        else if (a[0] == '-' && a[1]) { fprintf(stderr, "spqr: " CMD ": unknown option '%s' (see --help)\n", a); return 2; }
        else if (!model_dir) model_dir = a;
        else { fprintf(stderr, "spqr: " CMD ": unexpected argument '%s'\n", a); return 2; }
    }
    if (!model_dir) { fprintf(stderr, "spqr: " CMD ": missing MODEL_DIR (see --help)\n"); return 2; }
    if (!prompt) { fprintf(stderr, "spqr: " CMD ": missing -p PROMPT (see --help)\n"); return 2; }
    if (system && !chat) { fprintf(stderr, "spqr: " CMD ": --system needs --chat\n"); return 2; }
    cli_blas_single_thread();

    char msg[1024];
    spqr_err err = {0};
    spqr_logger logger = cli_stderr_logger(g.verbose);
    spqr_model *m = NULL;
    if (spqr_model_load(model_dir, &logger, &m, &err)) return fail(err.msg);
    const spqr_config *cfg = spqr_model_config(m);
    const int32_t V = cfg->vocab_size;
    int rc = 1;
    int32_t *ids = NULL, n_prompt = 0, ctx = g.ctx;
    float *logits = NULL;
    spqr_session *s = NULL;
    spqr_sampler *sm = NULL;

    if (prompt_ids(m, prompt, chat, system, &ids, &n_prompt, &err)) { fail(err.msg); goto done; }
    if (n_prompt == 0) { fail("the prompt is empty and the model has no BOS token"); goto done; }
    if (ctx > cfg->max_position_embeddings) {
        snprintf(msg, sizeof msg, "-c %d exceeds the model's max_position_embeddings %d", ctx,
                 cfg->max_position_embeddings);
        fail(msg);
        goto done;
    }
    if (ctx == 0) {
        int64_t want = (int64_t)n_prompt + g.n_gen;
        ctx = want < cfg->max_position_embeddings ? (int32_t)want : cfg->max_position_embeddings;
    }
    if (n_prompt > ctx) {
        snprintf(msg, sizeof msg, "prompt of %d tokens does not fit the context of %d (max_position_embeddings %d)",
                 n_prompt, ctx, cfg->max_position_embeddings);
        fail(msg);
        goto done;
    }
    /* Printed only once the run can start, so an error stays the only line on stderr. */
    cli_gen_seed(&g);
    if (spqr_sampler_create(V, g.temp, g.top_p, (uint64_t)g.seed, &sm, &err)) { fail(err.msg); goto done; }
    if (spqr_session_create_opts(m, &(spqr_session_opts){ctx, g.threads, g.kv}, &s, &err)) { fail(err.msg); goto done; }
    if ((int64_t)n_prompt + g.n_gen > (int64_t)ctx + 1) /* the last token is sampled, never fed back */
        fprintf(stderr, "spqr: generate: note: the context holds %d tokens, so at most %d of the %d asked (-n) are generated\n",
                (int)ctx, (int)(ctx - n_prompt + 1), (int)g.n_gen);
    logits = malloc((size_t)V * sizeof *logits);
    if (!logits) { fail("out of memory"); goto done; }

    /* Echo a plain prompt, as llama.cpp does, so stdout reads as one text; a chat prints the reply only. */
    if (!chat) fputs(prompt, stdout);
    fflush(stdout);
    double t0 = cli_now();
    if (spqr_session_forward(s, ids, n_prompt, 0, logits, &err)) { fail(err.msg); goto done; }
    const double t_prompt = cli_now() - t0;
    int32_t n_done = 0, n_decoded = 0;
    cli_stop why;
    double t1 = cli_now();
    if (cli_stream_reply(s, ctx, m, sm, logits, g.n_gen, chat ? -1 : ids[n_prompt - 1], NULL, stdout, NULL,
                         &n_decoded, 0, NULL, &why, &n_done, &err)) {
        fail(err.msg);
        goto done;
    }
    const double t_gen = cli_now() - t1;
    printf("\n");
    fflush(stdout);
    fprintf(stderr, "prompt: %d tokens in %.3f s, %.1f tokens/s; generation: %d tokens, %.1f tokens/s (%d threads)\n",
            n_prompt, t_prompt, n_prompt / t_prompt, n_done, n_decoded > 0 ? n_decoded / t_gen : 0.0, g.threads);
    rc = 0;
done:
    spqr_sampler_free(sm);
    free(logits);
    free(ids);
    spqr_session_free(s);
    spqr_model_free(m);
    return rc;
}
