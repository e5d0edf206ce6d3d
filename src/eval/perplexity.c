/* Perplexity and KL against a saved base (spqr.h, docs/eval.md).
 *
 * Protocol SPQR_PPL_SPQR (docs/method.md section 6): the text's tokens
 * without BOS (as the training script does), cut into non-overlapping
 * windows of ctx tokens, the last partial window dropped, every token of a
 * window but its first scored. SPQR_PPL_LLAMACPP: llama.cpp's perplexity
 * tool: BOS (where the tokenizer adds one) at the start of the text and in
 * place of the first token of every window, only the second half of each
 * window scored.
 *
 * Base files (kl_file.h) hold the full next-token log-prob distribution
 * (fp32, whole vocabulary) of every scored position. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/error.h"
#include "eval/kl_file.h"
#include "io/atomic_file.h"
#include "io/file.h"
#include "io/outpath.h"
#include "spqr.h"

#define KL_MAX_BYTES (16ull << 30)

void spqr_eval_options_default(spqr_eval_options *o) {
    memset(o, 0, sizeof *o);
    o->protocol = SPQR_PPL_SPQR;
    o->n_threads = 1;
}

/* The windows as evaluated, and what a base file of this run must hold. */
typedef struct plan {
    int32_t ctx, batch, n_windows, first; /* logits rows first..ctx-2 are scored */
    int32_t window_bos;                   /* >= 0: replaces every window's first token */
    int64_t n_positions;
    spqr_kl_run run;
} plan;

/* KL accumulation against kl_in, or the rows written to kl_base_out. */
typedef struct kl_state {
    spqr_atomic_file out; /* kl_base_out, renamed into place at the end */
    FILE *in;             /* kl_in */
    spqr_kl_header base;
    float *base_lp;       /* [vocab] one position of the base */
    double sum, sum2;
    int64_t top1, count;
} kl_state;

static spqr_status make_plan(const spqr_config *cfg, const spqr_tokenizer *tok, int64_t n_ids,
                             const spqr_eval_options *o, plan *p, spqr_err *err) {
    memset(p, 0, sizeof *p);
    if (o->protocol != SPQR_PPL_SPQR && o->protocol != SPQR_PPL_LLAMACPP)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "unknown perplexity protocol %d", (int)o->protocol);
    if (o->ctx < 0 || o->ctx == 1 || o->chunks < 0 || o->batch < 0)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "ctx must be 0 or >= 2, chunks and batch >= 0");
    int32_t ctx = o->ctx;
    if (ctx == 0) ctx = cfg->max_position_embeddings < 2048 ? cfg->max_position_embeddings : 2048;
    if (ctx > cfg->max_position_embeddings)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "context %d exceeds the model's max_position_embeddings %d",
                            ctx, cfg->max_position_embeddings);
    /* llama.cpp adds BOS where the tokenizer does (its add_bos flag: add_bos_token / the post-processor) */
    const int32_t bos = spqr_tokenizer_adds_bos(tok) ? cfg->bos_token_id : -1;
    p->window_bos = o->protocol == SPQR_PPL_LLAMACPP && bos >= 0 ? bos : -1;
    const int64_t n_text = n_ids + (p->window_bos >= 0); /* llama.cpp tokenizes with BOS at the start */
    const int64_t n_windows = n_text / ctx;
    if (n_windows < 1)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG,
                            "the text has %lld tokens, fewer than one window of %d tokens (use a smaller ctx)",
                            (long long)n_text, ctx);
    p->n_windows = n_windows > INT32_MAX ? INT32_MAX : (int32_t)n_windows;
    if (o->chunks > 0 && o->chunks < p->n_windows) p->n_windows = o->chunks;
    p->ctx = ctx;
    p->batch = o->batch <= 0 || o->batch > ctx ? ctx : o->batch;
    p->first = o->protocol == SPQR_PPL_LLAMACPP ? ctx / 2 : 0;
    const int64_t per_window = ctx - 1 - p->first;
    if (per_window < 1) /* a perplexity of no tokens is NaN, not a result */
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG,
                            "protocol llamacpp scores the second half of each window: ctx %d scores no token "
                            "(use ctx 3 or more)", ctx);
    p->n_positions = (int64_t)p->n_windows * per_window;
    p->run = (spqr_kl_run){(uint32_t)o->protocol, (uint32_t)ctx, (uint32_t)cfg->vocab_size, (uint32_t)p->n_windows,
                           (uint32_t)p->first, (uint64_t)p->n_positions, NULL, p->window_bos};
    return SPQR_OK;
}

/* Opens kl_base_out (header and tokens written) or kl_in (checked against the run). */
static spqr_status kl_open(const spqr_eval_options *o, const plan *p, kl_state *k, spqr_err *err) {
    const uint32_t V = p->run.vocab;
    if (o->kl_base_out && o->kl_in)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "kl_base_out and kl_in: one or the other, not both");
    if (o->kl_base_out) {
        if ((uint64_t)p->n_positions * V * 4 > KL_MAX_BYTES)
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG,
                                "the base file would have %.1f GB (vocab %u x %lld positions); evaluate fewer chunks",
                                (double)p->n_positions * V * 4 / 1e9, V, (long long)p->n_positions);
        const spqr_out_spec spec = {"kl_base_out", "a spqr KL base file", spqri_kl_is_base_file, o->overwrite};
        spqr_status st = spqr_out_check(o->kl_base_out, &spec, NULL, 0, err);
        if (!st) st = spqr_atomic_open(o->kl_base_out, &k->out, err);
        if (!st) st = spqri_kl_write_header(k->out.f, o->kl_base_out, &p->run, 0.0, 0.0, 1, err);
        return st;
    }
    if (!o->kl_in) return SPQR_OK;
    int fd;
    spqr_status st = spqr_file_open_input(o->kl_in, &fd, NULL, err);
    if (st) return st;
    if (!(k->in = fdopen(fd, "rb"))) {
        close(fd);
        return spqr_err_set(err, SPQR_ERR_IO, "cannot open %s", o->kl_in);
    }
    /* header, size and tokens checked against this run */
    if ((st = spqri_kl_read_header(k->in, o->kl_in, &p->run, &k->base, err))) return st;
    if (!(k->base_lp = malloc((size_t)V * sizeof(float)))) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    return SPQR_OK;
}

/* Scores one logits row (the prediction of next): adds its NLL, and turns
 * the row into log-probs for the base file or the KL against the base. */
static spqr_status score_row(float *row, int32_t V, int32_t next, const spqr_eval_options *o, kl_state *k,
                             double *nll_sum, double *nll_sum2, int32_t w, int32_t j, spqr_err *err) {
    float mx = row[0];
    int32_t amax = 0;
    for (int32_t v = 1; v < V; v++)
        if (row[v] > mx) { mx = row[v]; amax = v; }
    double se = 0.0;
    for (int32_t v = 0; v < V; v++) se += exp((double)row[v] - mx);
    const double lse = mx + log(se);
    const double nll = lse - row[next];
    if (!isfinite(nll)) /* NaN logits would give ppl = nan and success */
        return spqr_err_set(err, SPQR_ERR_NUMERIC, "the model's logits are not finite (window %d, position %d)", w, j);
    *nll_sum += nll;
    *nll_sum2 += nll * nll;
    if (!k->out.f && !k->in) return SPQR_OK;
    for (int32_t v = 0; v < V; v++) row[v] = (float)((double)row[v] - lse);
    if (k->out.f) return spqri_kl_write_row(k->out.f, o->kl_base_out, (uint32_t)V, row, err);
    spqr_status st = spqri_kl_read_row(k->in, o->kl_in, (uint32_t)V, (uint64_t)k->count, k->base_lp, err);
    if (st) return st;
    double kl = 0.0;
    int32_t bmax = 0;
    for (int32_t v = 0; v < V; v++) {
        const double b = k->base_lp[v];
        if (b > k->base_lp[bmax]) bmax = v;
        kl += exp(b) * (b - row[v]);
    }
    k->sum += kl;
    k->sum2 += kl * kl;
    k->count++;
    k->top1 += bmax == amax;
    return SPQR_OK;
}

/* Mean and the standard error of the mean, from a sum and a sum of squares. */
static void mean_stderr(double sum, double sum2, int64_t n, double *mean, double *se) {
    *mean = sum / n;
    const double var = sum2 / n - *mean * *mean;
    *se = n > 1 && var > 0 ? sqrt(var / (n - 1)) : 0.0;
}

/* Evaluates the plan's windows of ids (already with the protocol's leading BOS). */
static spqr_status run_windows(const spqr_model *m, const int32_t *ids, const plan *p, const spqr_eval_options *o,
                               kl_state *k, spqr_eval_result *r, spqr_err *err) {
    const int32_t V = spqr_model_config(m)->vocab_size, ctx = p->ctx;
    spqr_session *s = NULL;
    spqr_status st = spqr_session_create_opts(m, &(spqr_session_opts){ctx, o->n_threads, o->kv_type}, &s, err);
    if (st) return st;
    float *logits = malloc((size_t)ctx * V * sizeof(float));
    int32_t *win = malloc((size_t)ctx * sizeof *win);
    if (!logits || !win) st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for the logits");
    double nll_sum = 0.0, nll_sum2 = 0.0;
    const double t_eval = spqr_now_s();
    for (int32_t w = 0; w < p->n_windows && !st; w++) {
        if (o->cancel && *o->cancel) {
            st = spqr_err_set(err, SPQR_ERR_INTERRUPTED, "perplexity interrupted after %d of %d windows", w,
                              p->n_windows);
            break;
        }
        memcpy(win, ids + (size_t)w * ctx, (size_t)ctx * sizeof *win);
        if (p->window_bos >= 0) win[0] = p->window_bos;
        spqr_session_reset(s);
        /* the window in calls of `batch` tokens through the KV cache (batch 1 =
         * token by token, i.e. the decode kernels, as in generation) */
        for (int32_t p0 = 0; p0 < ctx && !st; p0 += p->batch) {
            const int32_t nb = ctx - p0 < p->batch ? ctx - p0 : p->batch;
            st = spqr_session_forward(s, win + p0, nb, 1, logits + (size_t)p0 * V, err);
        }
        for (int32_t j = p->first; j < ctx - 1 && !st; j++)
            st = score_row(logits + (size_t)j * V, V, win[j + 1], o, k, &nll_sum, &nll_sum2, w, j, err);
        r->n_scored += st ? 0 : ctx - 1 - p->first;
        if (!st && o->progress) {
            const double el = spqr_now_s() - t_eval;
            const spqr_eval_progress pr = {w + 1, p->n_windows, el, exp(nll_sum / r->n_scored),
                                           (double)(w + 1) * ctx / el};
            o->progress(o->progress_user, &pr);
        }
    }
    r->seconds = spqr_now_s() - t_eval;
    free(win);
    free(logits);
    spqr_session_free(s);
    if (st) return st;
    /* llama.cpp's error estimate: stderr of the mean NLL, propagated through exp. */
    double nll_se;
    mean_stderr(nll_sum, nll_sum2, r->n_scored, &r->nll_mean, &nll_se);
    r->ppl = exp(r->nll_mean);
    r->ppl_stderr = r->ppl * nll_se;
    r->tokens_per_s = (double)p->n_windows * ctx / r->seconds;
    return SPQR_OK;
}

spqr_status spqr_model_perplexity_tokens(const spqr_model *m, const int32_t *ids, int64_t n,
                                         const spqr_eval_options *opt, spqr_eval_result *out, spqr_err *err) {
    if (!m || !opt || !out || (!ids && n > 0) || n < 0)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "perplexity: NULL model, options, result or ids");
    memset(out, 0, sizeof *out);
    const spqr_config *cfg = spqr_model_config(m);
    plan p;
    spqr_status st = make_plan(cfg, spqr_model_tokenizer(m), n, opt, &p, err);
    if (st) return st;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= cfg->vocab_size)
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "token %lld is id %d, outside the vocabulary of %d",
                                (long long)i, ids[i], cfg->vocab_size);
    int32_t *with_bos = NULL; /* the protocol's BOS at the start of the text */
    if (p.window_bos >= 0) {
        if (!(with_bos = malloc(((size_t)n + 1) * sizeof *with_bos)))
            return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
        with_bos[0] = p.window_bos;
        memcpy(with_bos + 1, ids, (size_t)n * sizeof *ids);
        ids = with_bos;
    }
    p.run.ids = ids;
    kl_state k = {0};
    st = kl_open(opt, &p, &k, err);
    if (!st) st = run_windows(m, ids, &p, opt, &k, out, err);
    if (!st && k.out.f) {
        st = spqri_kl_write_header(k.out.f, opt->kl_base_out, &p.run, out->ppl, out->ppl_stderr, 0, err);
        if (!st) st = spqr_atomic_commit(&k.out, err);
    }
    if (!st && k.in) {
        double kl_se;
        mean_stderr(k.sum, k.sum2, k.count, &out->kl_mean, &kl_se);
        out->kl_stderr = kl_se;
        out->has_kl = 1;
        out->top1_count = k.top1;
        out->top1 = (double)k.top1 / (double)k.count;
        out->base_ppl = k.base.ppl;
        out->base_ppl_stderr = k.base.ppl_stderr;
    }
    spqr_atomic_abort(&k.out); /* no-op after a commit */
    if (k.in) fclose(k.in);
    free(k.base_lp);
    free(with_bos);
    out->n_tokens = n + (p.window_bos >= 0);
    out->n_windows = p.n_windows;
    out->ctx = p.ctx;
    return st;
}

spqr_status spqr_model_perplexity(const spqr_model *m, const char *text, size_t len, const spqr_eval_options *opt,
                                  spqr_eval_result *out, spqr_err *err) {
    if (!m || !text || !out) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "perplexity: NULL model, text or result");
    memset(out, 0, sizeof *out);
    if (len == 0) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "the text is empty");
    int32_t *ids = NULL, n = 0;
    spqr_status st = spqr_tokenizer_encode(spqr_model_tokenizer(m), text, len, 0, &ids, &n, err);
    if (!st) st = spqr_model_perplexity_tokens(m, ids, n, opt, out, err);
    free(ids);
    return st;
}
