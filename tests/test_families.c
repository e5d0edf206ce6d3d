/* Every model family of src/model/arch.h against tests/fixtures/families/
 * (tiny random checkpoints with logits from an independent float64 PyTorch
 * forward, tools/family_ref.py):
 *  - the whole 40-token prompt in one chunk and token by token (the decode
 *    path, its sliding window and KV cache) both give the reference logits
 *    within TOL relative (max |d| / max |ref|; float32 noise is ~1e-6, the
 *    weakest feature, gemma's tanh GELU, moves the logits by 6.8e-5);
 *  - greedy generation: each token is the argmax of a batch forward of the
 *    prefix (the cache path agrees with the prompt path past the window);
 *  - the calibration pipeline's one-layer views run each layer exactly as
 *    the full model does (window included);
 *  - quantize (8-bit, calibration through the family's own forward) -> the
 *    .spqr holds the table's linears packed, and its norms and biases: its
 *    logits equal those of the source model with the dequantized weights
 *    swapped in, run densely (1e-4, the arithmetic contract of
 *    format/tensor.h), so nothing the family needs is lost in the file; and
 *    they stay within QTOL of the reference;
 *  - the decode team (one region per token) gives the logits of a region
 *    per product bit for bit, dense and .spqr (exact and the CPU's path);
 *  - an fp16 KV cache: layer 0's cached keys and values are exactly the
 *    fp32 cache's rounded (spqr_fp32_to_fp16), prompt and token-by-token
 *    logits stay within KV16_TOL of the reference (and differ from the fp32
 *    cache's: the rounding happened), greedy generation and the decode team
 *    hold as with fp32;
 *  - phi3: the fused tensors are bound as row blocks, quantized split; split
 *    and fused quantization with one Hessian give bit-identical weights when
 *    outliers are off (rows are independent given H; permutation, damping
 *    and dead columns come from H alone) and differ only through the
 *    outlier threshold, whose weight variance is per tensor. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model.h"
#include "model/session.h"
#include "spqr.h"
#include "test_util.h"

#define TOL 2e-5
#define KV16_TOL 2e-3 /* fp16 keys and values: 2^-11 relative each; measured 5e-5..9e-4 */
#define KV16_GEN_TOL 5e-4 /* measured up to 3.4e-5 (phi3) */
#define QTOL 0.25
#define T 40

static const char *g_fix;

static double rel_diff(const float *a, const float *ref, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - ref[i]);
        md = d > md || isnan(d) ? d : md;
        mr = fabs(ref[i]) > mr ? fabs(ref[i]) : mr;
    }
    return md / mr;
}

static int32_t argmax(const float *v, int32_t n) {
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

static spqr_status create(const spqr_model *m, int32_t ctx, int32_t nt, spqr_kv_type kv, spqr_session **s,
                          spqr_err *err) {
    return spqr_session_create_opts(m, &(spqr_session_opts){ctx, nt, kv}, s, err);
}

/* logits [T][V] of ids through one session: all at once, or one by one;
 * keep: the session is returned there (its cache) instead of freed. */
static void run_kv(const spqr_model *m, const int32_t *ids, int one_by_one, spqr_kv_type kv, float *out,
                   spqr_session **keep) {
    const int32_t V = m->cfg.vocab_size;
    spqr_session *s = NULL;
    spqr_err err = {0};
    CHECK_MSG(create(m, 64, 2, kv, &s, &err) == SPQR_OK, "%s", err.msg);
    if (!s) return;
    if (!one_by_one) CHECK_MSG(spqr_session_forward(s, ids, T, 1, out, &err) == SPQR_OK, "%s", err.msg);
    for (int32_t t = 0; one_by_one && t < T; t++)
        CHECK_MSG(spqr_session_forward(s, ids + t, 1, 0, out + (size_t)t * V, &err) == SPQR_OK, "%s", err.msg);
    if (keep) *keep = s;
    else spqr_session_free(s);
}
static void run(const spqr_model *m, const int32_t *ids, int one_by_one, float *out) {
    run_kv(m, ids, one_by_one, SPQR_KV_F32, out, NULL);
}

/* The decode team (one region per token, forward.c) against a region per
 * product: the same logits bit for bit, token by token, for 2-4 threads (4
 * on 2 cores: the barrier must let a thread without a core catch up); with
 * 2 threads every step is split (team_split_min 0), with 3-4 these tiny
 * models' steps are the leader's. */
static void team_same(const spqr_model *m, const int32_t *ids, const char *fam, const char *what, spqr_kv_type kv) {
    const int32_t V = m->cfg.vocab_size;
    float *a = malloc((size_t)V * sizeof *a), *b = malloc((size_t)V * sizeof *b);
    for (int32_t nt = 2; nt <= 4 && a && b; nt++) {
        spqr_session *st = NULL, *sr = NULL;
        spqr_err err = {0};
        CHECK(create(m, 64, nt, kv, &st, &err) == SPQR_OK && create(m, 64, nt, kv, &sr, &err) == SPQR_OK);
        if (st && sr) {
            CHECK(st->decode_mode == SESSION_DECODE_TEAM);
            st->team_split_min = nt == 2 ? 0 : SESSION_TEAM_SPLIT_MIN; /* these tiny steps split too (2 threads) */
            sr->decode_mode = SESSION_DECODE_REGIONS;
            int same = 1;
            for (int32_t t = 0; t < T; t++) {
                CHECK(spqr_session_forward(st, ids + t, 1, 0, a, &err) == SPQR_OK);
                CHECK(spqr_session_forward(sr, ids + t, 1, 0, b, &err) == SPQR_OK);
                same &= !memcmp(a, b, (size_t)V * sizeof *a);
            }
            CHECK_MSG(same, "%s %s, %d threads: the decode team's logits differ from a region per product", fam, what,
                      nt);
        }
        spqr_session_free(st);
        spqr_session_free(sr);
    }
    free(a);
    free(b);
}

/* 12 greedy tokens after an 6-token prompt, each checked against the argmax
 * of a fresh batch forward of the whole prefix. */
static void generation(const spqr_model *m, const int32_t *ids, const char *fam, spqr_kv_type kv) {
    const int32_t V = m->cfg.vocab_size, P = 6, G = 12;
    int32_t seq[32];
    memcpy(seq, ids, P * sizeof *seq);
    float *lg = malloc((size_t)V * sizeof *lg), *all = malloc((size_t)(P + G) * V * sizeof *all);
    spqr_session *s = NULL, *b = NULL;
    spqr_err err = {0};
    CHECK(create(m, 32, 1, kv, &s, &err) == SPQR_OK && create(m, 32, 2, kv, &b, &err) == SPQR_OK);
    if (!s || !b || !lg || !all) goto out;
    CHECK(spqr_session_forward(s, seq, P, 0, lg, &err) == SPQR_OK);
    int agree = 1;
    double worst = 0;
    for (int32_t g = 0; g < G; g++) {
        seq[P + g] = argmax(lg, V);
        spqr_session_reset(b);
        CHECK(spqr_session_forward(b, seq, P + g, 1, all, &err) == SPQR_OK);
        /* fp16: fp32 noise between the two paths can move a key across a
         * rounding boundary of the cache (one fp16 ulp, 2^-11) */
        const double dg = rel_diff(lg, all + (size_t)(P + g - 1) * V, (size_t)V);
        worst = dg > worst ? dg : worst;
        agree &= dg < (kv == SPQR_KV_F16 ? KV16_GEN_TOL : 1e-5);
        CHECK(spqr_session_forward(s, &seq[P + g], 1, 0, lg, &err) == SPQR_OK);
    }
    CHECK_MSG(agree, "%s: decode logits differ from the batch forward of the same prefix by %.3g (KV %s)", fam,
              worst, kv == SPQR_KV_F16 ? "f16" : "f32");
    if (kv == SPQR_KV_F16) printf("  gen %.1e", worst);
out:
    spqr_session_free(s);
    spqr_session_free(b);
    free(lg);
    free(all);
}

/* The calibration's one-layer views (spqri_model_layer_view) reproduce every
 * layer of the full model bit for bit on the 40-token prompt: a view that
 * attended with the wrong window (gemma2 alternates) would differ. */
static void layer_views(const spqr_model *m, const int32_t *ids, const char *fam) {
    const int32_t H = m->cfg.hidden_size;
    spqr_session *s = NULL, *v = NULL;
    spqr_err err = {0};
    spqr_model view;
    float *before = malloc((size_t)T * H * sizeof *before);
    CHECK(spqr_session_create(m, T, 2, &s, &err) == SPQR_OK);
    spqri_model_layer_view(&view, m, m->layers, 0);
    CHECK(spqr_session_create(&view, T, 2, &v, &err) == SPQR_OK);
    if (!s || !v || !before) goto out;
    CHECK(s->max_batch >= T);
    for (int32_t i = 0; i < T; i++) CHECK(spqri_model_embed(m, ids[i], s->x + (size_t)i * H, &err) == SPQR_OK);
    int same = 1;
    for (int32_t l = 0; l < m->cfg.n_layers; l++) {
        memcpy(before, s->x, (size_t)T * H * sizeof *before);
        CHECK(spqri_model_layer_forward(s, l, T, NULL, &err) == SPQR_OK);
        spqri_model_layer_view(&view, m, m->layers, l);
        v->pos = 0;
        memcpy(v->x, before, (size_t)T * H * sizeof *before);
        CHECK(spqri_model_layer_forward(v, 0, T, NULL, &err) == SPQR_OK);
        same &= !memcmp(v->x, s->x, (size_t)T * H * sizeof *before);
    }
    CHECK_MSG(same, "%s: a one-layer view differs from its layer in the full model", fam);
out:
    spqr_session_free(s);
    spqr_session_free(v);
    free(before);
}

/* The fp16 KV cache (see the top comment); want: the reference logits. */
static void kv16(const spqr_model *m, const int32_t *ids, const float *want, const char *fam) {
    const int32_t V = m->cfg.vocab_size, nkv = m->cfg.n_kv_heads, hd = m->cfg.head_dim;
    float *a = malloc((size_t)T * V * sizeof *a), *b = malloc((size_t)T * V * sizeof *b);
    for (int one = 0; one <= 1 && a && b; one++) {
        spqr_session *s32 = NULL, *s16 = NULL;
        run_kv(m, ids, one, SPQR_KV_F32, a, &s32);
        run_kv(m, ids, one, SPQR_KV_F16, b, &s16);
        if (!s32 || !s16) {
            spqr_session_free(s32);
            spqr_session_free(s16);
            break;
        }
        CHECK(s16->kv_f16 && !s32->kv_f16);
        /* layer 0 (the same inputs in both): every head and position, keys and values */
        size_t bad = 0;
        for (int c = 0; c < 2; c++) {
            const float *f = c ? s32->value_cache : s32->key_cache;
            const uint16_t *h = c ? s16->value_cache : s16->key_cache;
            for (int32_t k = 0; k < nkv; k++)
                for (int32_t p = 0; p < T; p++)
                    for (int32_t j = 0; j < hd; j++) {
                        const size_t i = ((size_t)k * 64 + p) * hd + j;
                        bad += h[i] != spqr_fp32_to_fp16(f[i]);
                    }
        }
        CHECK_MSG(bad == 0, "%s: %zu of layer 0's fp16 cache entries are not the fp32 ones rounded (%s)", fam, bad,
                  one ? "token by token" : "prompt");
        const double r = rel_diff(b, want, (size_t)T * V), d = rel_diff(b, a, (size_t)T * V);
        CHECK_MSG(r < KV16_TOL, "%s: KV f16 %s logits off by %.3g relative", fam, one ? "decode" : "prompt", r);
        CHECK_MSG(d > 0, "%s: KV f16 %s logits equal the fp32 cache's: nothing was rounded", fam,
                  one ? "decode" : "prompt");
        printf(one ? " %.1e)" : "  KV f16 (prompt %.1e, decode", r);
        spqr_session_free(s32);
        spqr_session_free(s16);
    }
    free(a);
    free(b);
    generation(m, ids, fam, SPQR_KV_F16);
    team_same(m, ids, fam, "dense, KV f16", SPQR_KV_F16);
}

static spqr_status quantize(const spqr_model *m, const char *out, spqr_err *err) {
    char path[512];
    snprintf(path, sizeof path, "%s/../../data/calib.txt", g_fix);
    FILE *f = fopen(path, "rb");
    char text[4001];
    size_t n = f ? fread(text, 1, 4000, f) : 0;
    if (f) fclose(f);
    text[n] = 0;
    int32_t *cal = NULL, n_cal = 0;
    spqr_status st = spqr_tokenizer_encode(m->tok, text, (int32_t)n, 0, &cal, &n_cal, err);
    if (st) return st;
    spqr_quantize_options o;
    spqr_quantize_options_default(&o);
    o.nsamples = 4;
    o.seqlen = 32;
    o.n_threads = 2;
    o.params.wbits = 8;
    o.overwrite = 1;
    spqr_quantize_summary sm;
    st = spqr_model_quantize(m, cal, n_cal, &o, out, &sm, err);
    if (!st) {
        CHECK(sm.n_kinds == 7);
        for (int k = 0; k < sm.n_kinds; k++)
            CHECK_MSG(sm.kinds[k].count == m->cfg.n_layers && !strcmp(sm.kinds[k].name, m->hp.arch->lin[k].name),
                      "kind %d: %s x %d", k, sm.kinds[k].name, sm.kinds[k].count);
    }
    free(cal);
    return st;
}

static void family(const char *fam, const spqr_safetensors *ref) {
    char path[512], name[128];
    spqr_err err = {0};
    spqr_model *m = NULL, *q = NULL;
    snprintf(path, sizeof path, "%s/families/%s", g_fix, fam);
    CHECK_MSG(spqr_model_load(path, NULL, &m, &err) == SPQR_OK, "%s: %s", fam, err.msg);
    if (!m) return;
    CHECK(!strcmp(m->hp.arch->model_type, fam));
    const int32_t V = m->cfg.vocab_size;
    snprintf(name, sizeof name, "%s.ids", fam);
    const spqr_st_tensor *ti = spqr_safetensors_find(ref, name);
    snprintf(name, sizeof name, "%s.logits", fam);
    const spqr_st_tensor *tl = spqr_safetensors_find(ref, name);
    CHECK(ti && tl && ti->shape[0] == T && tl->shape[0] == T && tl->shape[1] == V);
    if (!ti || !tl || tl->shape[1] != V) { spqr_model_free(m); return; }
    const int32_t *ids = ti->data;
    const float *want = tl->data;
    float *got = malloc((size_t)T * V * sizeof *got);

    run(m, ids, 0, got);
    double r = rel_diff(got, want, (size_t)T * V);
    CHECK_MSG(r < TOL, "%s: prompt logits off by %.3g relative", fam, r);
    printf("%-8s prompt rel %.2e", fam, r);
    run(m, ids, 1, got);
    r = rel_diff(got, want, (size_t)T * V);
    CHECK_MSG(r < TOL, "%s: token-by-token logits off by %.3g relative", fam, r);
    printf("  decode rel %.2e", r);
    generation(m, ids, fam, SPQR_KV_F32);
    layer_views(m, ids, fam);
    team_same(m, ids, fam, "dense", SPQR_KV_F32);
    kv16(m, ids, want, fam);

    char out[300];
    snprintf(out, sizeof out, "/tmp/spqr_test_families_%d_%s.spqr", (int)getpid(), fam);
    CHECK_MSG(quantize(m, out, &err) == SPQR_OK, "%s: quantize: %s", fam, err.msg);
    CHECK_MSG(spqr_model_load(out, NULL, &q, &err) == SPQR_OK, "%s: load .spqr: %s", fam, err.msg);
    if (q) {
        CHECK(q->n_ktensors == 7 * m->cfg.n_layers && spqr_model_is_quantized(q));
        for (int32_t l = 0; l < m->cfg.n_layers; l++)
            for (int k = 0; k < ARCH_N_LIN; k++) {
                CHECK(q->layers[l].lin[k].kind == SPQR_LINEAR_PACKED);
                CHECK(q->layers[l].lin[k].rows == m->layers[l].lin[k].rows);
                const float *b0 = m->layers[l].bias[k], *b1 = q->layers[l].bias[k];
                CHECK(!b0 == !b1 && (!b0 || !memcmp(b0, b1, (size_t)m->layers[l].lin[k].rows * sizeof *b0)));
            }
        run(q, ids, 0, got);
        /* the source model with the file's dequantized linears, run densely */
        spqr_model dq = *m;
        dq.layers = malloc((size_t)m->cfg.n_layers * sizeof *dq.layers);
        float **W = calloc((size_t)m->cfg.n_layers * ARCH_N_LIN, sizeof *W);
        float *dl = malloc((size_t)T * V * sizeof *dl);
        memcpy(dq.layers, m->layers, (size_t)m->cfg.n_layers * sizeof *dq.layers);
        for (int32_t l = 0; l < m->cfg.n_layers; l++)
            for (int k = 0; k < ARCH_N_LIN; k++) {
                const spqr_linear *pl = &q->layers[l].lin[k];
                float **w = &W[l * ARCH_N_LIN + k];
                *w = malloc((size_t)pl->rows * pl->cols * sizeof **w);
                CHECK(spqr_tensor_dequantize(pl->packed, *w, &err) == SPQR_OK);
                dq.layers[l].lin[k] = (spqr_linear){SPQR_LINEAR_F32, pl->rows, pl->cols, *w, NULL, NULL};
            }
        run(&dq, ids, 0, dl);
        const double rd = rel_diff(got, dl, (size_t)T * V);
        CHECK_MSG(rd < 1e-4, "%s: .spqr logits differ from the dequantized weights run densely by %.3g", fam, rd);
        printf("  .spqr vs dequantized %.1e", rd);
        for (int32_t i = 0; i < m->cfg.n_layers * ARCH_N_LIN; i++) free(W[i]);
        free(W);
        free(dl);
        free(dq.layers);
        const double rq = rel_diff(got, want, (size_t)T * V);
        CHECK_MSG(rq < QTOL, "%s: 8-bit .spqr logits off by %.3g relative", fam, rq);
        printf("  8-bit .spqr rel %.2e", rq);
        generation(q, ids, fam, SPQR_KV_F32);
        team_same(q, ids, fam, ".spqr exact", SPQR_KV_F32);
        spqr_model_free(q);
        /* and on the CPU's own (int8) path */
        spqr_model *qa = NULL;
        setenv("SPQR_KERNEL", "auto", 1);
        CHECK_MSG(spqr_model_load(out, NULL, &qa, &err) == SPQR_OK, "%s: load .spqr: %s", fam, err.msg);
        setenv("SPQR_KERNEL", "exact", 1);
        if (qa) team_same(qa, ids, fam, ".spqr auto", SPQR_KV_F32);
        if (qa) team_same(qa, ids, fam, ".spqr auto, KV f16", SPQR_KV_F16);
        spqr_model_free(qa);
    }
    printf("\n");
    unlink(out);
    free(got);
    spqr_model_free(m);
}

/* Quantizes phi3 layer 0's fused qkv_proj [q; k; v] and its three parts
 * with one Hessian; returns max |fused - split| over the dequantized weights. */
static double fused_vs_split(const spqr_model *m, int outliers) {
    const spqr_layer *L = &m->layers[0];
    const int32_t cols = L->wq.cols, rows = L->wq.rows + L->wk.rows + L->wv.rows;
    float *W = malloc((size_t)rows * cols * sizeof *W), *Wf = malloc((size_t)rows * cols * sizeof *Wf);
    float *Ws = malloc((size_t)rows * cols * sizeof *Ws), *H = calloc((size_t)cols * cols, sizeof *H);
    spqr_err err = {0};
    /* H = X^T X of a deterministic pseudo-random X [4 * cols][cols] */
    uint32_t r = 12345;
    float *X = malloc((size_t)4 * cols * cols * sizeof *X);
    for (size_t i = 0; i < (size_t)4 * cols * cols; i++) {
        r = r * 1664525u + 1013904223u;
        X[i] = (float)((r >> 8) / 16777216.0 - 0.5) * (1.0f + (float)(i % cols) / cols);
    }
    for (int32_t i = 0; i < cols; i++)
        for (int32_t j = 0; j < cols; j++) {
            double acc = 0;
            for (int32_t n = 0; n < 4 * cols; n++) acc += (double)X[(size_t)n * cols + i] * X[(size_t)n * cols + j];
            H[(size_t)i * cols + j] = (float)acc;
        }
    const spqr_linear *parts[3] = {&L->wq, &L->wk, &L->wv};
    int32_t r0 = 0;
    for (int p = 0; p < 3; p++) {
        for (int32_t i = 0; i < parts[p]->rows; i++) CHECK(spqri_linear_row(parts[p], i, W + (size_t)(r0 + i) * cols, &err) == SPQR_OK);
        r0 += parts[p]->rows;
    }
    spqr_quant_params qp;
    spqr_quant_params_default(&qp);
    if (!outliers) qp.outlier_threshold = INFINITY;
    CHECK(spqr_quantize_layer(W, rows, cols, H, &qp, 1, NULL, NULL, Wf, NULL, NULL, &err) == SPQR_OK);
    r0 = 0;
    for (int p = 0; p < 3; p++) {
        CHECK(spqr_quantize_layer(W + (size_t)r0 * cols, parts[p]->rows, cols, H, &qp, 1, NULL, NULL,
                                  Ws + (size_t)r0 * cols, NULL, NULL, &err) == SPQR_OK);
        r0 += parts[p]->rows;
    }
    double md = 0;
    for (size_t i = 0; i < (size_t)rows * cols; i++) { /* not fmax(): aarch64 gcc 12 ICEs vectorizing it */
        const double d = fabs((double)Wf[i] - Ws[i]);
        if (d > md) md = d;
    }
    free(W), free(Wf), free(Ws), free(H), free(X);
    return md;
}

int main(int argc, char **argv) {
    g_fix = argc > 1 ? argv[1] : "tests/fixtures";
    setenv("SPQR_KERNEL", "exact", 1);
    char path[512];
    snprintf(path, sizeof path, "%s/families/logits.safetensors", g_fix);
    spqr_safetensors *ref = NULL;
    spqr_err err = {0};
    CHECK_MSG(spqr_safetensors_open(path, &ref, &err) == SPQR_OK, "%s", err.msg);
    if (!ref) TEST_SUMMARY();
    for (int32_t i = 0; i < spqri_arch_count(); i++) family(spqri_arch_at(i)->model_type, ref);
    spqr_safetensors_close(ref);

    /* phi3's fused tensors become row views: q, k, v of qkv_proj in order */
    spqr_model *m = NULL;
    snprintf(path, sizeof path, "%s/families/phi3", g_fix);
    if (spqr_model_load(path, NULL, &m, &err) == SPQR_OK) {
        const spqr_layer *L = &m->layers[0];
        const size_t es = L->wq.kind == SPQR_LINEAR_F32 ? 4 : 2;
        CHECK((const char *)L->wk.data == (const char *)L->wq.data + (size_t)L->wq.rows * L->wq.cols * es);
        CHECK((const char *)L->wv.data == (const char *)L->wk.data + (size_t)L->wk.rows * L->wk.cols * es);
        CHECK((const char *)L->w_up.data == (const char *)L->w_gate.data + (size_t)L->w_gate.rows * L->w_gate.cols * es);
        const double d0 = fused_vs_split(m, 0), d1 = fused_vs_split(m, 1);
        CHECK_MSG(d0 == 0.0, "phi3 qkv without outliers: fused and split quantization differ by %g", d0);
        printf("phi3 qkv fused vs split, max |dW|: %g without outliers, %g with\n", d0, d1);
        spqr_model_free(m);
    }
    TEST_SUMMARY();
}
