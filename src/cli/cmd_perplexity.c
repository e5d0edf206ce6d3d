/* spqr perplexity: held-out perplexity and KL divergence to a base run.
 *
 * Protocol "spqr" (default, spqr-method.md section 6): the whole text is
 * tokenized once WITHOUT a BOS token (as the training script does), cut
 * into non-overlapping windows of CTX tokens, the last partial window is
 * dropped, and every token of a window but its first is scored.
 * Protocol "llamacpp": llama.cpp's perplexity tool: BOS at the start of the
 * text and in place of the first token of every window, only the second
 * half of each window scored. Its numbers are not comparable to "spqr".
 *
 * KL files (--kl-base writes, --kl reads): the full next-token log-prob
 * distribution (fp32, whole vocabulary) of every scored position, after a
 * header that pins protocol, ctx, vocab and the evaluated tokens. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "eval/kl_file.h"
#include "io/atomic_file.h"
#include "io/outpath.h"
#include "io/file.h"
#include "spqr.h"

#define CMD "perplexity"
#define KL_MAGIC "SPQRKLB1"
#define KL_VERSION 1u
#define KL_MAX_BYTES (16ull << 30)
#define TEXT_MAX_BYTES ((size_t)1 << 31)

typedef struct kl_header {
    char magic[8];
    uint32_t version, protocol, ctx, vocab, n_windows, first;
    uint64_t n_positions;
    double ppl, ppl_stderr;
} kl_header;

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
            "  --kl-base FILE     save the log-prob distributions of every scored position (an existing\n"
            "                     file is replaced only if it is a --kl-base file; docs/safety.md)\n"
            "  --force            let --kl-base replace a file of another kind (never an input)\n"
            "  --kl FILE          compare with a saved base: mean KL(base || this), top-1 agreement\n"
            "  -v                 verbose loading\n");
}

static int fail(const char *msg) { return cli_fail(CMD, msg, 1); }

typedef struct run_state {
    spqr_atomic_file kl_af; /* --kl-base, renamed into place at the end */
    FILE *kl_out;           /* kl_af.f */
    FILE *kl_in;            /* --kl */
    spqr_kl_header base;    /* of --kl, checked by spqr_kl_read_header */
    float *base_lp;         /* [vocab] one position of the base */
    double kl_sum, kl_sum2;
    int64_t top1_agree, kl_count;
} run_state;

/* What --kl-base may replace without --force: a file with our header. */
static int is_kl_file(const uint8_t *head, size_t n) { return n >= 8 && !memcmp(head, KL_MAGIC, 8); }

static int write_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }

int cmd_perplexity(int argc, char **argv) {
    const char *model_dir = NULL, *text_path = NULL, *kl_base = NULL, *kl_path = NULL;
    int32_t ctx = 0, chunks = 0, batch = 0, threads = cli_default_threads();
    int json = 0, verbose = 0, force = 0, protocol = 0; /* 0 spqr, 1 llamacpp */
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
            if (!strcmp(v, "spqr")) protocol = 0;
            else if (!strcmp(v, "llamacpp")) protocol = 1;
            else { fprintf(stderr, "spqr: " CMD ": --protocol must be spqr or llamacpp, not '%s'\n", v); return 2; }
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
    cli_blas_single_thread();

    char msg[1024];
    spqr_err err = {0};
    if (kl_base) { /* the output rules (docs/safety.md), before the evaluation */
        const spqr_out_spec spec = {"--kl-base", "a spqr --kl-base file", is_kl_file, force};
        const char *inputs[] = {model_dir, text_path};
        if (spqr_out_check(kl_base, &spec, inputs, 2, &err)) return fail(err.msg);
    }
    spqr_logger logger = cli_stderr_logger(verbose);
    size_t text_len = 0;
    char *text = cli_read_file(text_path, TEXT_MAX_BYTES, &text_len, &err);
    if (!text) return fail(err.msg);
    if (text_len == 0) {
        free(text);
        snprintf(msg, sizeof msg, "text file %s is empty", text_path);
        return fail(msg);
    }
    spqr_model *m = NULL;
    if (spqr_model_load(model_dir, &logger, &m, &err)) { free(text); return fail(err.msg); }
    const spqr_config *cfg = spqr_model_config(m);
    const spqr_tokenizer *tok = spqr_model_tokenizer(m);
    const int32_t V = cfg->vocab_size;
    int rc = 1;
    int32_t *ids = NULL, n_ids = 0;
    float *logits = NULL;
    spqr_session *s = NULL;
    run_state rs = {0};
    double t0 = cli_now();

    if (ctx == 0) ctx = cfg->max_position_embeddings < 2048 ? cfg->max_position_embeddings : 2048;
    if (ctx > cfg->max_position_embeddings) {
        snprintf(msg, sizeof msg, "context %d exceeds the model's max_position_embeddings %d", ctx,
                 cfg->max_position_embeddings);
        fail(msg);
        goto done;
    }
    if (spqr_tokenizer_encode(tok, text, text_len, 0, &ids, &n_ids, &err)) { fail(err.msg); goto done; }
    /* llama.cpp adds BOS where the tokenizer does (its add_bos flag: add_bos_token / the post-processor) */
    const int32_t bos = spqr_tokenizer_adds_bos(tok) ? cfg->bos_token_id : -1;
    if (protocol == 1 && bos >= 0) { /* llama.cpp tokenizes with BOS at the start of the text */
        int32_t *t = realloc(ids, ((size_t)n_ids + 1) * sizeof *t);
        if (!t) { fail("out of memory"); goto done; }
        ids = t;
        memmove(ids + 1, ids, (size_t)n_ids * sizeof *ids);
        ids[0] = bos;
        n_ids++;
    }
    int32_t n_windows = n_ids / ctx;
    if (n_windows < 1) {
        snprintf(msg, sizeof msg, "%s has %d tokens, fewer than one window of %d tokens (use a smaller -c)",
                 text_path, n_ids, ctx);
        fail(msg);
        goto done;
    }
    if (chunks > 0 && chunks < n_windows) n_windows = chunks;
    const int32_t first = protocol == 1 ? ctx / 2 : 0; /* logits rows first..ctx-2 are scored */
    const int64_t per_window = ctx - 1 - first, n_positions = (int64_t)n_windows * per_window;
    if (per_window < 1) { /* a perplexity of no tokens is NaN, not a result */
        snprintf(msg, sizeof msg, "--protocol llamacpp scores the second half of each window: -c %d scores no token "
                 "(use -c 3 or more)", ctx);
        fail(msg);
        goto done;
    }

    if (kl_base) {
        if ((uint64_t)n_positions * V * 4 > KL_MAX_BYTES) {
            snprintf(msg, sizeof msg, "--kl-base would write %.1f GB (vocab %d x %lld positions); use --chunks",
                     (double)n_positions * V * 4 / 1e9, V, (long long)n_positions);
            fail(msg);
            goto done;
        }
        if (spqr_atomic_open(kl_base, &rs.kl_af, &err)) {
            fail(err.msg);
            goto done;
        }
        rs.kl_out = rs.kl_af.f;
        kl_header h = {{0}, KL_VERSION, (uint32_t)protocol, (uint32_t)ctx, (uint32_t)V, (uint32_t)n_windows,
                       (uint32_t)first, (uint64_t)n_positions, 0.0, 0.0};
        memcpy(h.magic, KL_MAGIC, 8);
        if (write_all(rs.kl_out, &h, sizeof h)) { fail("write error on the --kl-base file"); goto done; }
        for (int32_t w = 0; w < n_windows; w++) {
            int32_t win[1];
            for (int32_t j = 0; j < ctx; j++) {
                win[0] = protocol == 1 && j == 0 && bos >= 0 ? bos : ids[(size_t)w * ctx + j];
                if (write_all(rs.kl_out, win, 4)) { fail("write error on the --kl-base file"); goto done; }
            }
        }
    }
    if (kl_path) {
        int kfd;
        if (spqr_file_open_input(kl_path, &kfd, NULL, &err)) { fail(err.msg); goto done; }
        if (!(rs.kl_in = fdopen(kfd, "rb"))) {
            close(kfd);
            snprintf(msg, sizeof msg, "cannot open %s", kl_path);
            fail(msg);
            goto done;
        }
        /* header, size and tokens checked against this run (src/eval/kl_file.c) */
        const spqr_kl_run run = {(uint32_t)protocol, (uint32_t)ctx, (uint32_t)V, (uint32_t)n_windows, (uint32_t)first,
                                 (uint64_t)n_positions, ids, protocol == 1 && bos >= 0 ? bos : -1};
        if (spqr_kl_read_header(rs.kl_in, kl_path, &run, &rs.base, &err)) { fail(err.msg); goto done; }
        rs.base_lp = malloc((size_t)V * sizeof(float));
        if (!rs.base_lp) { fail("out of memory"); goto done; }
    }

    if (batch <= 0 || batch > ctx) batch = ctx;
    if (spqr_session_create(m, ctx, threads, &s, &err)) { fail(err.msg); goto done; }
    logits = malloc((size_t)ctx * V * sizeof(float));
    if (!logits) { fail("out of memory for the logits"); goto done; }
    int32_t *win = malloc((size_t)ctx * sizeof *win);
    if (!win) { fail("out of memory"); goto done; }

    double nll_sum = 0.0, nll_sum2 = 0.0;
    int64_t count = 0;
    double t_eval = cli_now();
    for (int32_t w = 0; w < n_windows; w++) {
        memcpy(win, ids + (size_t)w * ctx, (size_t)ctx * sizeof *win);
        if (protocol == 1 && bos >= 0) win[0] = bos;
        spqr_session_reset(s);
        /* -b: the window in calls of `batch` tokens through the KV cache (-b 1 =
         * token by token, i.e. the decode kernels, as in generation) */
        for (int32_t p0 = 0; p0 < ctx; p0 += batch) {
            const int32_t nb = ctx - p0 < batch ? ctx - p0 : batch;
            if (spqr_session_forward(s, win + p0, nb, 1, logits + (size_t)p0 * V, &err)) { free(win); fail(err.msg); goto done; }
        }
        for (int32_t j = first; j < ctx - 1; j++) {
            float *row = logits + (size_t)j * V;
            float mx = row[0];
            int32_t amax = 0;
            for (int32_t v = 1; v < V; v++)
                if (row[v] > mx) { mx = row[v]; amax = v; }
            double se = 0.0;
            for (int32_t v = 0; v < V; v++) se += exp((double)row[v] - mx);
            const double lse = mx + log(se);
            const double nll = lse - row[win[j + 1]];
            if (!isfinite(nll)) { /* NaN logits would print PPL = nan and exit 0 */
                snprintf(msg, sizeof msg, "the model's logits are not finite (window %d, position %d)", w, j);
                free(win);
                fail(msg);
                goto done;
            }
            nll_sum += nll;
            nll_sum2 += nll * nll;
            count++;
            if (rs.kl_out || rs.kl_in) /* row becomes log-probs */
                for (int32_t v = 0; v < V; v++) row[v] = (float)((double)row[v] - lse);
            if (rs.kl_out && write_all(rs.kl_out, row, (size_t)V * 4)) {
                free(win);
                fail("write error on the --kl-base file");
                goto done;
            }
            if (rs.kl_in) {
                if (spqr_kl_read_row(rs.kl_in, kl_path, (uint32_t)V, (uint64_t)rs.kl_count, rs.base_lp, &err)) {
                    free(win);
                    fail(err.msg);
                    goto done;
                }
                double kl = 0.0;
                int32_t bmax = 0;
                for (int32_t v = 0; v < V; v++) {
                    const double b = rs.base_lp[v];
                    if (b > rs.base_lp[bmax]) bmax = v;
                    kl += exp(b) * (b - row[v]);
                }
                rs.kl_sum += kl;
                rs.kl_sum2 += kl * kl;
                rs.kl_count++;
                rs.top1_agree += bmax == amax;
            }
        }
        const double el = cli_now() - t_eval;
        fprintf(stderr, "[%d/%d] ppl so far %.4f, %.1f tokens/s\n", w + 1, n_windows, exp(nll_sum / count),
                (double)(w + 1) * ctx / el);
    }
    free(win);
    const double seconds = cli_now() - t_eval;
    const double mean = nll_sum / count, ppl = exp(mean);
    /* llama.cpp's error estimate: stderr of the mean NLL, propagated through exp. */
    double var = nll_sum2 / count - mean * mean;
    const double nll_se = count > 1 && var > 0 ? sqrt(var / (count - 1)) : 0.0, ppl_se = ppl * nll_se;
    const double tps = (double)n_windows * ctx / seconds;

    if (rs.kl_out) {
        kl_header h = {{0}, KL_VERSION, (uint32_t)protocol, (uint32_t)ctx, (uint32_t)V, (uint32_t)n_windows,
                       (uint32_t)first, (uint64_t)n_positions, ppl, ppl_se};
        memcpy(h.magic, KL_MAGIC, 8);
        if (fseek(rs.kl_out, 0, SEEK_SET) || write_all(rs.kl_out, &h, sizeof h)) {
            fail("write error on the --kl-base file");
            goto done;
        }
        rs.kl_out = NULL;
        if (spqr_atomic_commit(&rs.kl_af, &err)) {
            fail(err.msg);
            goto done;
        }
    }
    double kl_mean = 0, kl_se = 0, top1 = 0;
    if (rs.kl_in) {
        kl_mean = rs.kl_sum / rs.kl_count;
        double kv = rs.kl_sum2 / rs.kl_count - kl_mean * kl_mean;
        kl_se = rs.kl_count > 1 && kv > 0 ? sqrt(kv / (rs.kl_count - 1)) : 0.0;
        top1 = 100.0 * (double)rs.top1_agree / rs.kl_count;
    }
    const char *pname = protocol ? "llamacpp" : "spqr";
    if (json) {
        printf("{\"ppl\": %.6f, \"ppl_stderr\": %.6f, \"nll\": %.8f, \"protocol\": \"%s\", \"ctx\": %d, "
               "\"windows\": %d, \"tokens\": %lld, \"seconds\": %.3f, \"tokens_per_second\": %.1f, \"threads\": %d",
               ppl, ppl_se, mean, pname, ctx, n_windows, (long long)count, seconds, tps, threads);
        if (rs.kl_in)
            printf(", \"base_ppl\": %.6f, \"kl_mean\": %.8g, \"kl_stderr\": %.8g, \"top1_agreement\": %.4f", rs.base.ppl,
                   kl_mean, kl_se, top1);
        printf("}\n");
    } else {
        printf("model %s, text %s, protocol %s, ctx %d, %d windows, %lld tokens scored, %.2f s, %.1f tokens/s\n",
               model_dir, text_path, pname, ctx, n_windows, (long long)count, seconds, tps);
        printf("PPL = %.4f ± %.4f\n", ppl, ppl_se);
        if (rs.kl_in) {
            printf("base PPL = %.4f ± %.4f (from %s)\n", rs.base.ppl, rs.base.ppl_stderr, kl_path);
            printf("mean KL(base || this) = %.6f ± %.6f nats\n", kl_mean, kl_se);
            printf("top-1 agreement = %.2f %%\n", top1);
        }
        if (kl_base) printf("saved base log-probs of %lld positions to %s\n", (long long)n_positions, kl_base);
    }
    (void)t0;
    rc = 0;
done:
    spqr_atomic_abort(&rs.kl_af); /* no-op after a commit */
    if (rs.kl_in) fclose(rs.kl_in);
    free(rs.base_lp);
    free(logits);
    free(ids);
    free(text);
    spqr_session_free(s);
    spqr_model_free(m);
    return rc;
}
