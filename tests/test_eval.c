/* The evaluation API (spqr_model_perplexity*, KL base files) and the
 * sampler against independent computations: the tests' scoring loop
 * (test_ppl.h) and the PyTorch reference (fixtures/model_ppl.json), the
 * llamacpp protocol re-derived position by position from prefix-only
 * forwards, a model against itself, and sampling frequencies against the
 * softmax they should follow. Usage: test_eval <fixtures dir> */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spqr.h"
#include "test_ppl.h"
#include "test_util.h"

static char g_tmp[64];

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (f) { fputs(s, f); fclose(f); }
}

static spqr_eval_options opts(spqr_ppl_protocol proto, int32_t ctx, int32_t chunks) {
    spqr_eval_options o;
    spqr_eval_options_default(&o);
    o.protocol = proto;
    o.ctx = ctx;
    o.chunks = chunks;
    o.n_threads = 2;
    return o;
}

/* The spqr protocol = the tests' own loop = PyTorch (tools/llama_ref.py) on the fixture text. */
static void test_spqr_protocol(const spqr_model *m, const char *text, size_t len, const int32_t *ids, int32_t n,
                               const char *fix) {
    char path[512];
    snprintf(path, sizeof path, "%s/model_ppl.json", fix);
    size_t jl = 0;
    char *json = test_read_file(path, &jl);
    CHECK(json != NULL);
    const int32_t ctxs[2] = {32, 64};
    for (int c = 0; c < 2 && json; c++) {
        char key[16];
        snprintf(key, sizeof key, "\"ctx%d\"", ctxs[c]);
        const char *at = strstr(json, key);
        double want = 0;
        long long want_tok = 0;
        CHECK(at && sscanf(strstr(at, "\"ppl\":") + 6, "%lf", &want) == 1);
        CHECK(at && sscanf(strstr(at, "\"tokens_scored\":") + 16, "%lld", &want_tok) == 1);
        spqr_eval_options o = opts(SPQR_PPL_SPQR, ctxs[c], 0);
        spqr_eval_result r;
        spqr_err e = {0};
        CHECK_MSG(spqr_model_perplexity(m, text, len, &o, &r, &e) == SPQR_OK, "%s", e.msg);
        CHECK_MSG(fabs(r.ppl - want) <= 1e-4 * want, "ctx %d: ppl %.6f vs PyTorch %.6f", ctxs[c], r.ppl, want);
        CHECK(r.n_scored == want_tok);
        CHECK(r.n_windows == n / ctxs[c] && r.ctx == ctxs[c] && r.n_tokens == n && !r.has_kl);
        const double mine = test_perplexity(m, ids, r.n_windows, ctxs[c]);
        CHECK_MSG(fabs(r.ppl - mine) <= 1e-9 * mine, "ctx %d: ppl %.9f vs the tests' loop %.9f", ctxs[c], r.ppl, mine);
        CHECK_NEAR(r.nll_mean, log(r.ppl), 1e-12);
        CHECK(r.seconds > 0 && r.tokens_per_s > 0);
        /* the tokens entry point on the same ids gives the same numbers, bit for bit */
        spqr_eval_result t;
        CHECK(spqr_model_perplexity_tokens(m, ids, n, &o, &t, &e) == SPQR_OK);
        CHECK(t.ppl == r.ppl && t.ppl_stderr == r.ppl_stderr && t.n_scored == r.n_scored);
        /* token by token through the KV cache (the decode kernels) and odd batches: the same ppl */
        for (int32_t b = 1; b <= 7; b += 6) {
            o.batch = b;
            CHECK(spqr_model_perplexity_tokens(m, ids, n, &o, &t, &e) == SPQR_OK);
            CHECK_MSG(fabs(t.ppl - r.ppl) <= 1e-4 * r.ppl, "batch %d: %.6f vs %.6f", b, t.ppl, r.ppl);
        }
    }
    free(json);
}

/* llamacpp: BOS at the start of the text and as every window's first token,
 * the second half of each window scored. Re-derived here: each scored
 * position's distribution from a fresh forward of only its prefix. */
static void test_llamacpp_brute(const spqr_model *m, const int32_t *ids, int32_t n, int32_t expect_bos) {
    const int32_t ctx = 8, chunks = 3, V = spqr_model_config(m)->vocab_size;
    const int32_t bos = spqr_tokenizer_adds_bos(spqr_model_tokenizer(m)) ? spqr_model_config(m)->bos_token_id : -1;
    CHECK(bos == expect_bos);
    int32_t *text = malloc(((size_t)n + 1) * sizeof *text), nt = 0;
    if (bos >= 0) text[nt++] = bos;
    memcpy(text + nt, ids, (size_t)n * sizeof *ids);
    nt += n;
    spqr_session *s = NULL;
    spqr_err e = {0};
    CHECK(spqr_session_create(m, ctx, 1, &s, &e) == SPQR_OK);
    float *lg = malloc((size_t)V * sizeof *lg);
    double sum = 0, sum2 = 0;
    int64_t cnt = 0;
    for (int32_t w = 0; w < chunks; w++) {
        int32_t win[8];
        memcpy(win, text + (size_t)w * ctx, sizeof win);
        if (bos >= 0) win[0] = bos;
        for (int32_t j = ctx / 2; j < ctx - 1; j++) {
            spqr_session_reset(s);
            CHECK(spqr_session_forward(s, win, j + 1, 0, lg, &e) == SPQR_OK);
            double mx = lg[0], se = 0;
            for (int32_t v = 1; v < V; v++) mx = lg[v] > mx ? lg[v] : mx;
            for (int32_t v = 0; v < V; v++) se += exp(lg[v] - mx);
            const double nll = mx + log(se) - lg[win[j + 1]];
            sum += nll;
            sum2 += nll * nll;
            cnt++;
        }
    }
    const double mean = sum / cnt, sd = sqrt((sum2 / cnt - mean * mean) / (cnt - 1));
    spqr_eval_options o = opts(SPQR_PPL_LLAMACPP, ctx, chunks);
    spqr_eval_result r;
    CHECK_MSG(spqr_model_perplexity_tokens(m, ids, n, &o, &r, &e) == SPQR_OK, "%s", e.msg);
    CHECK(r.n_scored == cnt && cnt == chunks * (ctx - 1 - ctx / 2) && r.n_windows == chunks);
    CHECK(r.n_tokens == n + (bos >= 0));
    CHECK_MSG(fabs(r.nll_mean - mean) <= 1e-5 * mean, "bos %d: nll %.9f vs brute force %.9f", bos, r.nll_mean, mean);
    CHECK_MSG(fabs(r.ppl_stderr - exp(mean) * sd) <= 1e-3 * r.ppl_stderr, "stderr %.6f vs %.6f", r.ppl_stderr,
              exp(mean) * sd);
    /* ctx 2 scores nothing under llamacpp: refused, not NaN */
    o.ctx = 2;
    CHECK(spqr_model_perplexity_tokens(m, ids, n, &o, &r, &e) == SPQR_ERR_INVALID_ARG);
    free(lg);
    free(text);
    spqr_session_free(s);
}

static int count_windows;
static volatile int g_cancel;
static void on_progress(void *user, const spqr_eval_progress *p) {
    int *stop_after = user;
    count_windows++;
    CHECK(p->window == count_windows && p->n_windows >= p->window && p->elapsed_s >= 0 && p->ppl > 1);
    if (*stop_after && p->window >= *stop_after) g_cancel = 1;
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static void test_kl(const spqr_model *m, const int32_t *ids, int32_t n) {
    char base[128], other[128];
    snprintf(base, sizeof base, "%s/base.kl", g_tmp);
    snprintf(other, sizeof other, "%s/notes.txt", g_tmp);
    spqr_err e = {0};
    spqr_eval_result r, k;
    for (int proto = 0; proto < 2; proto++) {
        spqr_eval_options o = opts((spqr_ppl_protocol)proto, 16, 3);
        o.kl_base_out = base;
        o.overwrite = 0;
        CHECK_MSG(spqr_model_perplexity_tokens(m, ids, n, &o, &r, &e) == SPQR_OK, "%s", e.msg);
        struct stat st;
        CHECK(stat(base, &st) == 0 && st.st_size == 56 + 4 * 3 * 16 + 4 * r.n_scored * 300);
        o.kl_base_out = NULL;
        o.kl_in = base;
        o.batch = 1; /* another kernel path, the same distributions up to rounding */
        CHECK_MSG(spqr_model_perplexity_tokens(m, ids, n, &o, &k, &e) == SPQR_OK, "%s", e.msg);
        CHECK(k.has_kl && k.base_ppl == r.ppl && k.base_ppl_stderr == r.ppl_stderr);
        CHECK_MSG(fabs(k.kl_mean) < 1e-6 && k.top1 == 1.0 && k.top1_count == k.n_scored, "self KL %g top1 %g",
                  k.kl_mean, k.top1);
        o.batch = 0;
        CHECK(spqr_model_perplexity_tokens(m, ids, n, &o, &k, &e) == SPQR_OK);
        CHECK(k.kl_mean == 0.0 && k.kl_stderr == 0.0 && k.top1 == 1.0); /* the same run: identical log-probs */
        /* a base of another run: other chunks, ctx, protocol or tokens */
        o.chunks = 2;
        CHECK(spqr_model_perplexity_tokens(m, ids, n, &o, &k, &e) == SPQR_ERR_FORMAT && strstr(e.msg, "windows"));
        o.chunks = 3;
        o.ctx = 32;
        CHECK(spqr_model_perplexity_tokens(m, ids, n, &o, &k, &e) == SPQR_ERR_FORMAT && strstr(e.msg, "context"));
        o.ctx = 16;
        o.protocol = (spqr_ppl_protocol)!proto;
        CHECK(spqr_model_perplexity_tokens(m, ids, n, &o, &k, &e) == SPQR_ERR_FORMAT && strstr(e.msg, "protocol"));
        o.protocol = (spqr_ppl_protocol)proto;
        CHECK(spqr_model_perplexity_tokens(m, ids + 1, n - 1, &o, &k, &e) == SPQR_ERR_FORMAT &&
              strstr(e.msg, "different tokens"));
        o.kl_base_out = base; /* both at once */
        CHECK(spqr_model_perplexity_tokens(m, ids, n, &o, &k, &e) == SPQR_ERR_INVALID_ARG);
    }
    /* kl_base_out replaces a file of another kind only with overwrite */
    write_text(other, "my notes\n");
    spqr_eval_options o = opts(SPQR_PPL_SPQR, 16, 2);
    o.kl_base_out = other;
    CHECK(spqr_model_perplexity_tokens(m, ids, n, &o, &r, &e) != SPQR_OK);
    size_t len = 0;
    char *kept = test_read_file(other, &len);
    CHECK(kept && !strcmp(kept, "my notes\n"));
    free(kept);
    o.overwrite = 1;
    CHECK_MSG(spqr_model_perplexity_tokens(m, ids, n, &o, &r, &e) == SPQR_OK, "%s", e.msg);
    unlink(other);
    /* cancellation between windows: SPQR_ERR_INTERRUPTED, no base file left behind */
    int stop_after = 2;
    o = opts(SPQR_PPL_SPQR, 16, 0);
    o.kl_base_out = other;
    o.cancel = &g_cancel;
    o.progress = on_progress;
    o.progress_user = &stop_after;
    count_windows = 0;
    g_cancel = 0;
    CHECK(spqr_model_perplexity_tokens(m, ids, n, &o, &r, &e) == SPQR_ERR_INTERRUPTED);
    CHECK(count_windows == 2 && !exists(other));
    stop_after = 0; /* progress once per window when not cancelled */
    count_windows = 0;
    g_cancel = 0;
    o.kl_base_out = NULL;
    CHECK(spqr_model_perplexity_tokens(m, ids, n, &o, &r, &e) == SPQR_OK && count_windows == r.n_windows);
    unlink(base);
}

static void test_bad_input(const spqr_model *m, const int32_t *ids, int32_t n) {
    spqr_err e = {0};
    spqr_eval_result r;
    spqr_eval_options o = opts(SPQR_PPL_SPQR, 32, 0);
    CHECK(spqr_model_perplexity(m, "", 0, &o, &r, &e) == SPQR_ERR_INVALID_ARG);
    CHECK(spqr_model_perplexity_tokens(m, ids, 31, &o, &r, &e) == SPQR_ERR_INVALID_ARG && strstr(e.msg, "window"));
    o.ctx = 100000;
    CHECK(spqr_model_perplexity_tokens(m, ids, n, &o, &r, &e) == SPQR_ERR_INVALID_ARG);
    o.ctx = 32;
    o.n_threads = 0;
    CHECK(spqr_model_perplexity_tokens(m, ids, n, &o, &r, &e) == SPQR_ERR_INVALID_ARG);
    o.n_threads = 1;
    o.protocol = (spqr_ppl_protocol)7;
    CHECK(spqr_model_perplexity_tokens(m, ids, n, &o, &r, &e) == SPQR_ERR_INVALID_ARG);
    o.protocol = SPQR_PPL_SPQR;
    int32_t bad[40];
    memcpy(bad, ids, sizeof bad);
    bad[5] = 300; /* the vocabulary is 0..299 */
    CHECK(spqr_model_perplexity_tokens(m, bad, 40, &o, &r, &e) == SPQR_ERR_INVALID_ARG);
    o.kl_in = "/nonexistent/base.kl";
    CHECK(spqr_model_perplexity_tokens(m, ids, n, &o, &r, &e) == SPQR_ERR_IO);
}

/* ---------------------------------------------------------------- sampler */

static void test_sampler(void) {
    enum { V = 6 };
    spqr_sampler *s = NULL, *t = NULL;
    spqr_err e = {0};
    float lg[V];
    test_rng rng = {0x1234567ull};
    /* greedy = argmax (first on ties); a tiny top-p keeps only the most likely token */
    CHECK(spqr_sampler_create(V, 0.0f, 1.0f, 1, &s, &e) == SPQR_OK);
    CHECK(spqr_sampler_create(V, 1.0f, 1e-6f, 1, &t, &e) == SPQR_OK);
    for (int it = 0; it < 200; it++) {
        int32_t best = 0;
        for (int i = 0; i < V; i++) {
            lg[i] = 4.0f * test_rng_normal(&rng);
            if (lg[i] > lg[best]) best = i;
        }
        float cp[V];
        memcpy(cp, lg, sizeof cp);
        CHECK(spqr_sampler_sample(s, lg) == best);
        CHECK(spqr_sampler_sample(t, cp) == best);
    }
    const float tie[V] = {1, 3, 3, 0, -1, 2};
    memcpy(lg, tie, sizeof lg);
    CHECK(spqr_sampler_sample(s, lg) == 1);
    spqr_sampler_free(s);
    spqr_sampler_free(t);
    /* a seed fixes the stream; another seed gives another one */
    spqr_sampler *a = NULL, *b = NULL, *c = NULL;
    CHECK(spqr_sampler_create(V, 1.0f, 0.9f, 42, &a, &e) == SPQR_OK);
    CHECK(spqr_sampler_create(V, 1.0f, 0.9f, 42, &b, &e) == SPQR_OK);
    CHECK(spqr_sampler_create(V, 1.0f, 0.9f, 43, &c, &e) == SPQR_OK);
    int same_ab = 1, same_ac = 1;
    const float flat[V] = {0, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
    for (int it = 0; it < 100; it++) {
        float x[V], y[V], z[V];
        memcpy(x, flat, sizeof x);
        memcpy(y, flat, sizeof y);
        memcpy(z, flat, sizeof z);
        const int32_t ta = spqr_sampler_sample(a, x), tb = spqr_sampler_sample(b, y), tc = spqr_sampler_sample(c, z);
        same_ab &= ta == tb;
        same_ac &= ta == tc;
    }
    CHECK(same_ab && !same_ac);
    spqr_sampler_free(a);
    spqr_sampler_free(b);
    spqr_sampler_free(c);
    /* frequencies follow softmax(logits / T) (top-p 1), and the renormalised
     * nucleus (top-p 0.6 over 0.4, 0.3, 0.2, 0.1: tokens 0 and 1 only); a
     * chi-square over N draws with df <= 5 stays below 30 (p < 1e-4) */
    const struct { float temp, top_p; float p[V]; } cases[3] = {
        {1.0f, 1.0f, {0.05f, 0.1f, 0.15f, 0.2f, 0.22f, 0.28f}},
        {0.5f, 1.0f, {0.05f, 0.1f, 0.15f, 0.2f, 0.22f, 0.28f}},
        {1.0f, 0.6f, {0.4f, 0.3f, 0.2f, 0.1f, 0.0f, 0.0f}},
    };
    const int N = 100000;
    for (int cse = 0; cse < 3; cse++) {
        double want[V], z = 0;
        for (int i = 0; i < V; i++) z += want[i] = cases[cse].p[i] > 0 ? pow(cases[cse].p[i], 1.0 / cases[cse].temp) : 0;
        for (int i = 0; i < V; i++) want[i] /= z;
        if (cse == 2) { want[0] = 4.0 / 7; want[1] = 3.0 / 7; want[2] = want[3] = 0; }
        spqr_sampler *q = NULL;
        CHECK(spqr_sampler_create(V, cases[cse].temp, cases[cse].top_p, 7 + cse, &q, &e) == SPQR_OK);
        long cnt[V] = {0};
        for (int it = 0; it < N; it++) {
            float x[V];
            for (int i = 0; i < V; i++) x[i] = cases[cse].p[i] > 0 ? logf(cases[cse].p[i]) : -INFINITY;
            const int32_t tok = spqr_sampler_sample(q, x);
            if (tok >= 0 && tok < V) cnt[tok]++;
            if (it == 0) { /* the logits became the probabilities at this temperature */
                double d = 0;
                for (int i = 0; i < V; i++)
                    d += fabs(x[i] - (cases[cse].p[i] > 0 ? pow(cases[cse].p[i], 1.0 / cases[cse].temp) / z : 0));
                CHECK_MSG(d < 1e-5, "case %d: probabilities off by %g", cse, d);
            }
        }
        double chi = 0;
        long outside = 0;
        for (int i = 0; i < V; i++) {
            if (want[i] > 0) chi += (cnt[i] - N * want[i]) * (cnt[i] - N * want[i]) / (N * want[i]);
            else outside += cnt[i];
        }
        CHECK_MSG(chi < 30 && outside == 0, "case %d: chi-square %.2f, %ld draws outside the nucleus", cse, chi, outside);
        spqr_sampler_free(q);
    }
    /* bad arguments */
    spqr_sampler *x = (spqr_sampler *)&e;
    CHECK(spqr_sampler_create(V, -1.0f, 1.0f, 1, &x, &e) == SPQR_ERR_INVALID_ARG && x == NULL);
    CHECK(spqr_sampler_create(V, NAN, 1.0f, 1, &x, &e) == SPQR_ERR_INVALID_ARG);
    CHECK(spqr_sampler_create(V, 1.0f, 0.0f, 1, &x, &e) == SPQR_ERR_INVALID_ARG);
    CHECK(spqr_sampler_create(V, 1.0f, 1.5f, 1, &x, &e) == SPQR_ERR_INVALID_ARG);
    CHECK(spqr_sampler_create(0, 1.0f, 1.0f, 1, &x, &e) == SPQR_ERR_INVALID_ARG);
    spqr_sampler_free(NULL);
}

int main(int argc, char **argv) {
    const char *fix = argc > 1 ? argv[1] : "tests/fixtures";
    snprintf(g_tmp, sizeof g_tmp, "/tmp/spqr_test_eval.XXXXXX");
    if (!mkdtemp(g_tmp)) { perror("mkdtemp"); return 1; }
    test_sampler();

    char path[512];
    snprintf(path, sizeof path, "%s/tiny_gqa", fix);
    spqr_model *m = NULL;
    spqr_err e = {0};
    CHECK_MSG(spqr_model_load(path, NULL, &m, &e) == SPQR_OK, "%s", e.msg);
    snprintf(path, sizeof path, "%s/model_text.txt", fix);
    size_t len = 0;
    char *text = test_read_file(path, &len);
    CHECK(text != NULL);
    int32_t *ids = NULL, n = 0;
    if (m && text && spqr_tokenizer_encode(spqr_model_tokenizer(m), text, len, 0, &ids, &n, &e) == SPQR_OK) {
        test_spqr_protocol(m, text, len, ids, n, fix);
        test_llamacpp_brute(m, ids, n, -1);
        test_kl(m, ids, n);
        test_bad_input(m, ids, n);
        /* the same model with a tokenizer that adds BOS (token 0): llamacpp's BOS rules */
        char dir[128], src[PATH_MAX], dst[256];
        snprintf(dir, sizeof dir, "%s/bos", g_tmp);
        mkdir(dir, 0755);
        const char *names[4] = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"};
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "%s/tiny_gqa/%s", fix, names[i]);
            snprintf(dst, sizeof dst, "%s/%s", dir, names[i]);
            CHECK(realpath(path, src) && symlink(src, dst) == 0);
        }
        snprintf(dst, sizeof dst, "%s/tokenizer_config.json", dir);
        write_text(dst, "{\"bos_token\": \"<|endoftext|>\", \"add_bos_token\": true}");
        spqr_model *mb = NULL;
        CHECK_MSG(spqr_model_load(dir, NULL, &mb, &e) == SPQR_OK, "%s", e.msg);
        if (mb) test_llamacpp_brute(mb, ids, n, 0);
        spqr_model_free(mb);
        for (int i = 0; i < 4; i++) {
            snprintf(dst, sizeof dst, "%s/%s", dir, names[i]);
            unlink(dst);
        }
        rmdir(dir);
    } else {
        CHECK_MSG(0, "setup: %s", e.msg);
    }
    free(ids);
    free(text);
    spqr_model_free(m);
    rmdir(g_tmp);
    TEST_SUMMARY();
}
