/* A program written against the installed libspqr only (spqr.h): quantizes
 * one random linear layer, loads a model (HF directory or .spqr), generates
 * a few tokens with spqr_sampler (greedy, then seeded nucleus sampling) and
 * computes perplexity with spqr_model_perplexity_tokens.
 * Usage: quantize_and_run <model> <text-file> [ctx]
 * Prints "layer rel_error=...", "generated: ...", "sampled: ...", and
 * "ppl=<value> tokens=<n> windows=<n>" (protocol SPQR_PPL_SPQR:
 * non-overlapping windows of ctx tokens, the last partial one dropped, every
 * token but the first of a window scored). Exits non-zero with the
 * library's message on failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spqr.h>

static int fail(const char *what, const spqr_err *e) {
    fprintf(stderr, "quantize_and_run: %s: %s\n", what, e->msg);
    return 1;
}

/* A 64x128 layer and the Hessian of 256 random inputs, from a fixed LCG. */
static int quantize_one_layer(void) {
    enum { R = 64, C = 128, N = 256 };
    float *W = malloc(sizeof(float) * R * C), *X = malloc(sizeof(float) * N * C), *H = calloc(C * C, sizeof(float));
    if (!W || !X || !H) return 1;
    uint32_t s = 12345;
    for (int i = 0; i < R * C + N * C; i++) {
        s = s * 1664525u + 1013904223u;
        float v = (float)((s >> 8) * (1.0 / 16777216.0)) - 0.5f;
        if (i < R * C) W[i] = v; else X[i - R * C] = v;
    }
    for (int n = 0; n < N; n++)
        for (int i = 0; i < C; i++)
            for (int j = 0; j < C; j++) H[i * C + j] += 2.0f * X[n * C + i] * X[n * C + j] / N;
    spqr_quant_params p;
    spqr_quant_params_default(&p);
    spqr_tensor *t = NULL;
    spqr_quant_report rep;
    spqr_err e = {0};
    spqr_status st = spqr_quantize_layer(W, R, C, H, &p, 1, NULL, &t, NULL, NULL, &rep, &e);
    int rc = 0;
    if (st != SPQR_OK) rc = fail("quantize layer", &e);
    else {
        printf("layer rel_error=%.6f outliers=%lld\n", rep.rel_hessian_error, (long long)rep.n_outliers);
    }
    spqr_tensor_free(t);
    free(W); free(X); free(H);
    return rc;
}

/* The prompt, then 8 tokens from sampler one at a time; prints them after label. */
static int generate(const spqr_model *m, spqr_session *s, float *logits, const char *label, float temperature,
                    float top_p, uint64_t seed) {
    const spqr_tokenizer *tok = spqr_model_tokenizer(m);
    spqr_err e = {0};
    spqr_sampler *sm = NULL;
    if (spqr_sampler_create(spqr_model_config(m)->vocab_size, temperature, top_p, seed, &sm, &e) != SPQR_OK)
        return fail("sampler", &e);
    int32_t *ids = NULL, n_ids = 0, gen[8];
    spqr_session_reset(s);
    if (spqr_tokenizer_encode(tok, "The", 3, spqr_tokenizer_adds_bos(tok), &ids, &n_ids, &e) != SPQR_OK)
        return fail("encode", &e);
    if (spqr_session_forward(s, ids, n_ids, 0, logits, &e) != SPQR_OK) return fail("forward", &e);
    for (int i = 0; i < 8; i++) {
        gen[i] = spqr_sampler_sample(sm, logits);
        if (spqr_session_forward(s, &gen[i], 1, 0, logits, &e) != SPQR_OK) return fail("forward", &e);
    }
    char *text = NULL;
    size_t text_len = 0;
    if (spqr_tokenizer_decode(tok, gen, 8, &text, &text_len, &e) != SPQR_OK) return fail("decode", &e);
    printf("%s: %s\n", label, text);
    free(text);
    free(ids);
    spqr_sampler_free(sm);
    return 0;
}

static char *read_text(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    if (buf) { buf[n] = 0; *len = (size_t)n; }
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s <model> <text-file> [ctx]\n", argv[0]);
        return 2;
    }
    int32_t ctx = argc > 3 ? atoi(argv[3]) : 32;
    printf("libspqr %s (header %d.%d.%d)\n", spqr_version(), SPQR_VERSION_MAJOR, SPQR_VERSION_MINOR,
           SPQR_VERSION_PATCH);
    if (quantize_one_layer()) return 1;

    spqr_err e = {0};
    spqr_model *m = NULL;
    if (spqr_model_load(argv[1], NULL, &m, &e) != SPQR_OK) return fail("load model", &e);
    const spqr_tokenizer *tok = spqr_model_tokenizer(m);
    int32_t *ids = NULL, n_ids = 0;
    int32_t vocab = spqr_model_config(m)->vocab_size;
    spqr_session *s = NULL;
    if (spqr_session_create(m, ctx, 1, &s, &e) != SPQR_OK) return fail("session", &e);
    float *logits = malloc(sizeof(float) * (size_t)vocab);
    if (!logits) return 1;

    if (generate(m, s, logits, "generated", 0.0f, 1.0f, 0) || generate(m, s, logits, "sampled", 0.8f, 0.9f, 42))
        return 1;

    /* perplexity over the text file */
    size_t len = 0;
    char *body = read_text(argv[2], &len);
    if (!body) { fprintf(stderr, "quantize_and_run: cannot read %s\n", argv[2]); return 1; }
    if (spqr_tokenizer_encode(tok, body, len, spqr_tokenizer_adds_bos(tok), &ids, &n_ids, &e) != SPQR_OK)
        return fail("encode", &e);
    spqr_eval_options o;
    spqr_eval_options_default(&o);
    o.ctx = ctx;
    spqr_eval_result r;
    if (spqr_model_perplexity_tokens(m, ids, n_ids, &o, &r, &e) != SPQR_OK) return fail("perplexity", &e);
    printf("ppl=%.6f tokens=%lld windows=%d\n", r.ppl, (long long)r.n_scored, r.n_windows);
    free(ids);
    free(body);
    free(logits);
    spqr_session_free(s);
    spqr_model_free(m);
    return 0;
}
