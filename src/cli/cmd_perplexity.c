/* spqr perplexity: held-out perplexity and KL divergence to a base run,
 * through spqr_model_perplexity (src/eval/perplexity.c holds the protocols
 * and the KL file format); this file parses flags and prints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "eval/kl_file.h"
#include "io/outpath.h"
#include "spqr.h"

#define CMD "perplexity"
#define TEXT_MAX_BYTES ((size_t)1 << 31)

static void usage(FILE *f) {
    fprintf(f,
            "usage: spqr perplexity MODEL_DIR -f TEXT [options]\n"
            "  -f FILE            evaluation text (UTF-8)\n"
            "  -c, --ctx N        window length in tokens (default min(2048, max_position_embeddings))\n"
            "  --chunks N         evaluate only the first N windows\n"
            "  -b, --batch N      tokens per forward call (default: the window; 1 = token by token\n"
            "                     through the KV cache, i.e. the one-token decode kernels)\n"
            "  --protocol P       spqr (default: no BOS, windows back to back, all tokens but the first\n"
            "                     of each window scored) or llamacpp (BOS per window, second half scored)\n"
            "  --json             print one JSON object instead of text\n"
            "  -t, --threads N    threads (default: all cores)\n"
            "  --kv-type T        KV cache f32 (default: exact) or f16 (as generation's default; --kl\n"
            "                     against an f32 base measures what the rounding costs)\n"
            "  --kl-base FILE     save the log-prob distributions of every scored position (an existing\n"
            "                     file is replaced only if it is a --kl-base file; docs/safety.md)\n"
            "  --force            let --kl-base replace a file of another kind (never an input)\n"
            "  --kl FILE          compare with a saved base: mean KL(base || this), top-1 agreement\n"
            "  -v                 verbose loading\n");
}

static int fail(const char *msg) { return cli_fail(CMD, msg, 1); }

static void progress(void *user, const spqr_eval_progress *p) {
    (void)user;
    fprintf(stderr, "[%d/%d] ppl so far %.4f, %.1f tokens/s\n", p->window, p->n_windows, p->ppl, p->tokens_per_s);
}

static void print_result(const spqr_eval_result *r, const char *model_dir, const char *text_path,
                         spqr_ppl_protocol protocol, int32_t threads, const char *kl_base, const char *kl_path,
                         int json) {
    const char *pname = protocol == SPQR_PPL_LLAMACPP ? "llamacpp" : "spqr";
    const double top1 = 100.0 * (double)r->top1_count / r->n_scored;
    if (json) {
        printf("{\"ppl\": %.6f, \"ppl_stderr\": %.6f, \"nll\": %.8f, \"protocol\": \"%s\", \"ctx\": %d, "
               "\"windows\": %d, \"tokens\": %lld, \"seconds\": %.3f, \"tokens_per_second\": %.1f, \"threads\": %d",
               r->ppl, r->ppl_stderr, r->nll_mean, pname, r->ctx, r->n_windows, (long long)r->n_scored, r->seconds,
               r->tokens_per_s, threads);
        if (r->has_kl)
            printf(", \"base_ppl\": %.6f, \"kl_mean\": %.8g, \"kl_stderr\": %.8g, \"top1_agreement\": %.4f",
                   r->base_ppl, r->kl_mean, r->kl_stderr, top1);
        printf("}\n");
        return;
    }
    printf("model %s, text %s, protocol %s, ctx %d, %d windows, %lld tokens scored, %.2f s, %.1f tokens/s\n",
           model_dir, text_path, pname, r->ctx, r->n_windows, (long long)r->n_scored, r->seconds, r->tokens_per_s);
    printf("PPL = %.4f ± %.4f\n", r->ppl, r->ppl_stderr);
    if (r->has_kl) {
        printf("base PPL = %.4f ± %.4f (from %s)\n", r->base_ppl, r->base_ppl_stderr, kl_path);
        printf("mean KL(base || this) = %.6f ± %.6f nats\n", r->kl_mean, r->kl_stderr);
        printf("top-1 agreement = %.2f %%\n", top1);
    }
    if (kl_base) printf("saved base log-probs of %lld positions to %s\n", (long long)r->n_scored, kl_base);
}

int cmd_perplexity(int argc, char **argv) {
    const char *model_dir = NULL, *text_path = NULL, *kl_base = NULL, *kl_path = NULL;
    int32_t ctx = 0, chunks = 0, batch = 0, threads = cli_default_threads();
    int json = 0, verbose = 0, force = 0;
    spqr_ppl_protocol protocol = SPQR_PPL_SPQR;
    spqr_kv_type kv = SPQR_KV_F32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "-f")) { if (!(text_path = cli_flag_value(CMD, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            if (!(v = cli_flag_value(CMD, argc, argv, &i)) || cli_parse_i32(CMD, a, v, 2, 1 << 20, &ctx)) return 2;
        } else if (!strcmp(a, "--chunks")) {
            if (!(v = cli_flag_value(CMD, argc, argv, &i)) || cli_parse_i32(CMD, a, v, 1, 1 << 30, &chunks)) return 2;
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch")) {
            if (!(v = cli_flag_value(CMD, argc, argv, &i)) || cli_parse_i32(CMD, a, v, 1, 1 << 20, &batch)) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!(v = cli_flag_value(CMD, argc, argv, &i)) || cli_parse_i32(CMD, a, v, 1, 1024, &threads)) return 2;
        } else if (!strcmp(a, "--protocol")) {
            if (!(v = cli_flag_value(CMD, argc, argv, &i))) return 2;
            if (!strcmp(v, "spqr")) protocol = SPQR_PPL_SPQR;
            else if (!strcmp(v, "llamacpp")) protocol = SPQR_PPL_LLAMACPP;
            else { fprintf(stderr, "spqr: " CMD ": --protocol must be spqr or llamacpp, not '%s'\n", v); return 2; }
        } else if (!strcmp(a, "--kv-type")) {
            if (!(v = cli_flag_value(CMD, argc, argv, &i)) || cli_parse_kv(CMD, a, v, &kv)) return 2;
        } else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "-v")) verbose = 1;
        else if (!strcmp(a, "--kl-base")) { if (!(kl_base = cli_flag_value(CMD, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--force")) force = 1;
        else if (!strcmp(a, "--kl")) { if (!(kl_path = cli_flag_value(CMD, argc, argv, &i))) return 2; }
        else if (a[0] == '-' && a[1]) { fprintf(stderr, "spqr: " CMD ": unknown option '%s' (see --help)\n", a); return 2; }
        else if (!model_dir) model_dir = a;
        else { fprintf(stderr, "spqr: " CMD ": unexpected argument '%s'\n", a); return 2; }
    }
    if (!model_dir) { fprintf(stderr, "spqr: " CMD ": missing MODEL_DIR (see --help)\n"); return 2; }
    if (!text_path) { fprintf(stderr, "spqr: " CMD ": missing -f TEXT (see --help)\n"); return 2; }
    if (kl_base && kl_path) { fprintf(stderr, "spqr: " CMD ": use --kl-base or --kl, not both\n"); return 2; }
    if (protocol == SPQR_PPL_LLAMACPP && ctx > 0 && ctx < 3) { /* the library says "ctx"; the user typed -c */
        char msg[160];
        snprintf(msg, sizeof msg, "--protocol llamacpp scores the second half of each window: -c %d scores no token "
                 "(use -c 3 or more)", ctx);
        return fail(msg);
    }
    cli_blas_single_thread();

    spqr_err err = {0};
    if (kl_base) { /* the output rules (docs/safety.md) with the run's inputs, before loading anything */
        const spqr_out_spec spec = {"--kl-base", "a spqr --kl-base file", spqri_kl_is_base_file, force};
        const char *inputs[] = {model_dir, text_path};
        if (spqr_out_check(kl_base, &spec, inputs, 2, &err)) return fail(err.msg);
    }
    spqr_logger logger = cli_stderr_logger(verbose);
    size_t text_len = 0;
    char *text = cli_read_file(text_path, TEXT_MAX_BYTES, &text_len, &err);
    if (!text) return fail(err.msg);
    if (text_len == 0) {
        free(text);
        char msg[1024];
        snprintf(msg, sizeof msg, "text file %s is empty", text_path);
        return fail(msg);
    }
    spqr_model *m = NULL;
    if (spqr_model_load(model_dir, &logger, &m, &err)) { free(text); return fail(err.msg); }
    spqr_eval_options o;
    spqr_eval_options_default(&o);
    o.protocol = protocol;
    o.ctx = ctx;
    o.chunks = chunks;
    o.batch = batch;
    o.n_threads = threads;
    o.kv_type = kv;
    o.kl_base_out = kl_base;
    o.overwrite = force;
    o.kl_in = kl_path;
    o.progress = progress;
    o.cancel = cli_cancel_on_signals(); /* an interrupted --kl-base run leaves no temporary */
    spqr_eval_result r;
    const int rc = spqr_model_perplexity(m, text, text_len, &o, &r, &err) ? fail(err.msg) : 0;
    if (!rc) print_result(&r, model_dir, text_path, protocol, threads, kl_base, kl_path, json);
    free(text);
    spqr_model_free(m);
    return rc;
}
