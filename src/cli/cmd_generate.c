/* spqr generate: streams a continuation of a prompt. Greedy at --temp 0,
 * nucleus sampling otherwise, from the sampler's own seeded RNG. The
 * prompt gets the model's BOS token (when it has one), as in HF generate;
 * generation stops at any of the model's EOS ids (config.json and
 * generation_config.json). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "model/sampler.h"
#include "spqr.h"

#define CMD "generate"

static void usage(FILE *f) {
    fprintf(f,
            "usage: spqr generate MODEL_DIR -p PROMPT [options]\n"
            "  -p, --prompt TEXT  prompt\n"
            "  -n N               tokens to generate (default 128)\n"
            "  --temp T           temperature, 0 = greedy (default 0.8)\n"
            "  --top-p P          nucleus sampling mass (default 0.9)\n"
            "  --seed S           RNG seed (default: from the clock, printed on stderr)\n"
            "  -t, --threads N    threads (default: all cores)\n"
            "  -c, --ctx N        context (default min(max_position_embeddings, prompt + N))\n"
            "  -v                 verbose loading\n");
}

static int fail(const char *msg) { return cli_fail(CMD, msg, 1); }

int cmd_generate(int argc, char **argv) {
    const char *model_dir = NULL, *prompt = NULL;
    int32_t n_gen = 128, threads = cli_default_threads(), ctx = 0;
    float temp = 0.8f, top_p = 0.9f;
    int64_t seed = -1;
    int verbose = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { if (!(prompt = cli_flag_value(CMD, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "-n")) {
            if (!(v = cli_flag_value(CMD, argc, argv, &i)) || cli_parse_i32(CMD, a, v, 0, 1 << 24, &n_gen)) return 2;
        } else if (!strcmp(a, "--temp")) {
            if (!(v = cli_flag_value(CMD, argc, argv, &i)) || cli_parse_f32(CMD, a, v, 0.0, 100.0, &temp)) return 2;
        } else if (!strcmp(a, "--top-p")) {
            if (!(v = cli_flag_value(CMD, argc, argv, &i)) || cli_parse_f32(CMD, a, v, 1e-6, 1.0, &top_p)) return 2;
        } else if (!strcmp(a, "--seed")) {
            if (!(v = cli_flag_value(CMD, argc, argv, &i)) || cli_parse_i64(CMD, a, v, 0, INT64_MAX, &seed)) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!(v = cli_flag_value(CMD, argc, argv, &i)) || cli_parse_i32(CMD, a, v, 1, 1024, &threads)) return 2;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            if (!(v = cli_flag_value(CMD, argc, argv, &i)) || cli_parse_i32(CMD, a, v, 1, 1 << 24, &ctx)) return 2;
        } else if (!strcmp(a, "-v")) verbose = 1;
        else if (a[0] == '-' && a[1]) { fprintf(stderr, "spqr: " CMD ": unknown option '%s' (see --help)\n", a); return 2; }
        else if (!model_dir) model_dir = a;
        else { fprintf(stderr, "spqr: " CMD ": unexpected argument '%s'\n", a); return 2; }
    }
    if (!model_dir) { fprintf(stderr, "spqr: " CMD ": missing MODEL_DIR (see --help)\n"); return 2; }
    if (!prompt) { fprintf(stderr, "spqr: " CMD ": missing -p PROMPT (see --help)\n"); return 2; }
    cli_blas_single_thread();

    char msg[1024];
    spqr_err err = {0};
    spqr_logger logger = cli_stderr_logger(verbose);
    spqr_model *m = NULL;
    if (spqr_model_load(model_dir, &logger, &m, &err)) return fail(err.msg);
    const spqr_config *cfg = spqr_model_config(m);
    const spqr_tokenizer *tok = spqr_model_tokenizer(m);
    const int32_t V = cfg->vocab_size;
    int rc = 1;
    int32_t *ids = NULL, n_ids = 0, *prompt_ids = NULL;
    float *logits = NULL;
    spqr_session *s = NULL;
    spqr_sampler sm = {0};

    if (spqr_tokenizer_encode(tok, prompt, strlen(prompt), 0, &ids, &n_ids, &err)) { fail(err.msg); goto done; }
    const int add_bos = cfg->bos_token_id >= 0;
    const int32_t n_prompt = n_ids + add_bos;
    if (n_prompt == 0) { fail("the prompt is empty and the model has no BOS token"); goto done; }
    prompt_ids = malloc((size_t)n_prompt * sizeof *prompt_ids);
    if (!prompt_ids) { fail("out of memory"); goto done; }
    if (add_bos) prompt_ids[0] = cfg->bos_token_id;
    memcpy(prompt_ids + add_bos, ids, (size_t)n_ids * sizeof *ids);
    if (ctx > cfg->max_position_embeddings) {
        snprintf(msg, sizeof msg, "-c %d exceeds the model's max_position_embeddings %d", ctx,
                 cfg->max_position_embeddings);
        fail(msg);
        goto done;
    }
    if (ctx == 0) {
        int64_t want = (int64_t)n_prompt + n_gen;
        ctx = want < cfg->max_position_embeddings ? (int32_t)want : cfg->max_position_embeddings;
    }
    if (n_prompt > ctx) {
        snprintf(msg, sizeof msg, "prompt of %d tokens does not fit the context of %d (max_position_embeddings %d)",
                 n_prompt, ctx, cfg->max_position_embeddings);
        fail(msg);
        goto done;
    }
    /* Printed only once the run can start, so an error stays the only line on stderr. */
    if (seed < 0) {
        seed = (int64_t)time(NULL);
        if (temp > 0) fprintf(stderr, "seed = %lld\n", (long long)seed);
    }
    if (spqr_sampler_init(&sm, V, temp, top_p, (uint64_t)seed, &err)) { fail(err.msg); goto done; }
    if (spqr_session_create(m, ctx, threads, &s, &err)) { fail(err.msg); goto done; }
    logits = malloc((size_t)V * sizeof *logits);
    if (!logits) { fail("out of memory"); goto done; }

    /* Echo the prompt, as llama.cpp does, so stdout reads as one text. */
    fputs(prompt, stdout);
    fflush(stdout);
    double t0 = cli_now();
    if (spqr_session_forward(s, prompt_ids, n_prompt, 0, logits, &err)) { fail(err.msg); goto done; }
    const double t_prompt = cli_now() - t0;
    int32_t prev = n_prompt > 0 ? prompt_ids[n_prompt - 1] : -1, n_done = 0, n_decoded = 0;
    char piece[256];
    double t1 = cli_now();
    while (n_done < n_gen) {
        const int32_t next = spqr_sampler_sample(&sm, logits);
        if (spqr_config_is_eos(cfg, next)) break; /* any of them: an instruct model's end of turn too */
        int32_t k = spqr_tokenizer_piece(tok, prev, next, piece, (int32_t)sizeof piece);
        if (k > 0) fwrite(piece, 1, (size_t)k, stdout);
        fflush(stdout);
        n_done++;
        prev = next;
        if (n_done == n_gen || spqr_session_pos(s) >= ctx) break;
        if (spqr_session_forward(s, &next, 1, 0, logits, &err)) { fail(err.msg); goto done; }
        n_decoded++;
    }
    const double t_gen = cli_now() - t1;
    printf("\n");
    fflush(stdout);
    fprintf(stderr, "prompt: %d tokens in %.3f s, %.1f tokens/s; generation: %d tokens, %.1f tokens/s (%d threads)\n",
            n_prompt, t_prompt, n_prompt / t_prompt, n_done, n_decoded > 0 ? n_decoded / t_gen : 0.0, threads);
    rc = 0;
done:
    spqr_sampler_free(&sm);
    free(logits);
    free(ids);
    free(prompt_ids);
    spqr_session_free(s);
    spqr_model_free(m);
    return rc;
}
