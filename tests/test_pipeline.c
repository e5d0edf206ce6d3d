/* Whole-model quantization pipeline on the tiny GQA fixture:
 *  - quantize -> reload the .spqr -> perplexity within a tolerance of fp32;
 *  - perplexity from the packed tensors (fast kernels) equals perplexity of
 *    the dequantized weights run densely, to 1e-4 relative;
 *  - block 0's q/k/v, recomputed independently (windows re-drawn, Hessian
 *    of the attn-normed embeddings accumulated in double by brute force,
 *    spqr_quantize_layer), match the file's tensors;
 *  - cancel after block 0 -> SPQR_ERR_INTERRUPTED, the previous output file
 *    untouched, checkpoint kept; --resume finishes with a byte-identical
 *    file; a resume with other knobs starts over;
 *  - bad input gives one-line errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model.h"
#include "model/session.h"
#include "quant/calib.h"
#include "spqr.h"
#include "test_util.h"

#define NS 6
#define SEQ 48

static char g_tmp[256];

static char *read_all(const char *path, size_t max, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = malloc(max + 1);
    *len = fread(b, 1, max, f);
    b[*len] = 0;
    fclose(f);
    return b;
}

static int same_file(const char *a, const char *b) {
    size_t la, lb;
    char *x = read_all(a, 64u << 20, &la), *y = read_all(b, 64u << 20, &lb);
    int same = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

/* Perplexity over n_win windows of ctx tokens (every token but the first scored). */
static double perplexity(const spqr_model *m, const int32_t *ids, int32_t n_win, int32_t ctx) {
    spqr_session *s = NULL;
    spqr_err err;
    if (spqr_session_create(m, ctx, 2, &s, &err)) return NAN;
    const int32_t V = m->cfg.vocab_size;
    float *lg = malloc((size_t)ctx * V * sizeof(float));
    double nll = 0;
    int64_t cnt = 0;
    for (int32_t w = 0; w < n_win; w++) {
        spqr_session_reset(s);
        const int32_t *t = ids + (size_t)w * ctx;
        if (spqr_session_forward(s, t, ctx, 1, lg, &err)) { nll = NAN; break; }
        for (int32_t i = 0; i + 1 < ctx; i++) {
            const float *r = lg + (size_t)i * V;
            double mx = r[0], se = 0;
            for (int32_t v = 1; v < V; v++) mx = r[v] > mx ? r[v] : mx;
            for (int32_t v = 0; v < V; v++) se += exp(r[v] - mx);
            nll += mx + log(se) - r[t[i + 1]];
            cnt++;
        }
    }
    free(lg);
    spqr_session_free(s);
    return exp(nll / cnt);
}

typedef struct cancel_ctx {
    volatile int flag;
    int after_block;
    int events;
} cancel_ctx;

static void cancel_cb(void *user, const spqr_quantize_progress *p) {
    cancel_ctx *c = user;
    c->events++;
    if (!strcmp(p->what, "propagate") && p->block == c->after_block) c->flag = 1;
}

static void rmrf_ckpt(const char *dir) {
    char p[512];
    for (int l = 0; l < 8; l++) {
        snprintf(p, sizeof p, "%s/block_%04d.spqr", dir, l);
        unlink(p);
        snprintf(p, sizeof p, "%s/inputs_%04d.spqr", dir, l);
        unlink(p);
    }
    rmdir(dir);
}

int main(int argc, char **argv) {
    const char *fix = argc > 1 ? argv[1] : "tests/fixtures";
    char path[512];
    snprintf(g_tmp, sizeof g_tmp, "/tmp/spqr_test_pipeline.XXXXXX");
    CHECK(mkdtemp(g_tmp) != NULL);
    spqr_err err = {0};
    spqr_model *m = NULL;
    snprintf(path, sizeof path, "%s/tiny_gqa", fix);
    CHECK(spqr_model_load(path, NULL, &m, &err) == SPQR_OK);
    if (!m) TEST_SUMMARY();

    /* calibration and evaluation text: disjoint slices of data/calib.txt */
    snprintf(path, sizeof path, "%s/../../data/calib.txt", fix);
    size_t len = 0;
    char *text = read_all(path, 40000, &len);
    CHECK(text && len > 30000);
    if (!text) TEST_SUMMARY();
    int32_t *cal = NULL, n_cal = 0, *ev = NULL, n_ev = 0;
    CHECK(spqr_tokenizer_encode(m->tok, text, 6000, 0, &cal, &n_cal, &err) == SPQR_OK);
    CHECK(spqr_tokenizer_encode(m->tok, text + 10000, 30000, 0, &ev, &n_ev, &err) == SPQR_OK);
    const int32_t ctx = 64, n_win = n_ev / ctx < 16 ? n_ev / ctx : 16;
    CHECK(n_win >= 8);

    spqr_quantize_options o;
    spqr_quantize_options_default(&o);
    o.nsamples = NS;
    o.seqlen = SEQ;
    o.seed = 7;
    o.n_threads = 2;
    o.preset = "3.6bit";
    char out_a[300], out_b[300], ck_b[320];
    snprintf(out_a, sizeof out_a, "%s/a.spqr", g_tmp);
    snprintf(out_b, sizeof out_b, "%s/b.spqr", g_tmp);
    snprintf(ck_b, sizeof ck_b, "%s.partial", out_b);

    /* 1. uninterrupted run */
    spqr_quantize_summary sm;
    spqr_status st = spqr_model_quantize(m, cal, n_cal, &o, out_a, &sm, &err);
    CHECK_MSG(st == SPQR_OK, "%s", err.msg);
    struct stat sb;
    CHECK(stat(out_a, &sb) == 0 && (uint64_t)sb.st_size == sm.file_bytes);
    CHECK(access(out_a, F_OK) == 0);
    snprintf(path, sizeof path, "%s.partial", out_a);
    CHECK(access(path, F_OK) != 0); /* checkpoints removed on success */
    CHECK(sm.quantized_params == 2LL * (72 * 72 + 2 * 24 * 72 + 72 * 72 + 3 * 100 * 72));
    CHECK(sm.avg_bits_formula > 3.6 && sm.avg_bits_formula < 4.2);
    CHECK(sm.avg_bits_stored > sm.avg_bits_formula); /* + rowptr and permutation */
    for (int k = 0; k < 7; k++) CHECK(sm.kinds[k].count == 2 && sm.kinds[k].rel_err_mean > 0 && sm.kinds[k].rel_err_mean < 0.05);

    /* 1b. the thread count does not change the result */
    {
        char out_t[300];
        snprintf(out_t, sizeof out_t, "%s/t1.spqr", g_tmp);
        spqr_quantize_options o1 = o;
        o1.n_threads = 1;
        CHECK(spqr_model_quantize(m, cal, n_cal, &o1, out_t, NULL, &err) == SPQR_OK);
        CHECK_MSG(same_file(out_a, out_t), "-t 1 and -t 2 give different files");
        unlink(out_t);
    }

    /* 2. reload; ppl close to fp32; packed == dequantized dense */
    spqr_model *q = NULL;
    st = spqr_model_load(out_a, NULL, &q, &err);
    CHECK_MSG(st == SPQR_OK, "%s", err.msg);
    if (!q) TEST_SUMMARY();
    CHECK(spqr_model_is_quantized(q) && !spqr_model_is_quantized(m));
    CHECK(q->layers[1].w_down.kind == SPQR_LINEAR_PACKED && q->layers[1].w_down.fast != NULL);
    const double ppl_f = perplexity(m, ev, n_win, ctx);
    const double ppl_q = perplexity(q, ev, n_win, ctx);
    spqr_model dq = *m; /* the fp32 model with every linear replaced by its dequantized weights */
    dq.layers = malloc((size_t)m->cfg.n_layers * sizeof *dq.layers);
    memcpy(dq.layers, m->layers, (size_t)m->cfg.n_layers * sizeof *dq.layers);
    float *wbuf[64] = {0};
    int nb = 0;
    for (int32_t l = 0; l < m->cfg.n_layers; l++) {
        spqr_linear *lins[7] = {&dq.layers[l].wq, &dq.layers[l].wk, &dq.layers[l].wv, &dq.layers[l].wo,
                                &dq.layers[l].w_gate, &dq.layers[l].w_up, &dq.layers[l].w_down};
        const spqr_linear *ql[7] = {&q->layers[l].wq, &q->layers[l].wk, &q->layers[l].wv, &q->layers[l].wo,
                                    &q->layers[l].w_gate, &q->layers[l].w_up, &q->layers[l].w_down};
        for (int k = 0; k < 7; k++) {
            float *W = malloc((size_t)lins[k]->rows * lins[k]->cols * sizeof(float));
            CHECK(spqr_tensor_dequantize(ql[k]->packed, W, &err) == SPQR_OK);
            *lins[k] = (spqr_linear){SPQR_LINEAR_F32, lins[k]->rows, lins[k]->cols, W, NULL, NULL};
            wbuf[nb++] = W;
        }
    }
    const double ppl_d = perplexity(&dq, ev, n_win, ctx);
    printf("ppl fp32 %.6f, .spqr %.6f, dequantized dense %.6f\n", ppl_f, ppl_q, ppl_d);
    CHECK(isfinite(ppl_q) && isfinite(ppl_d));
    CHECK_NEAR(ppl_q / ppl_d, 1.0, 1e-4);
    CHECK(fabs(ppl_q / ppl_f - 1.0) < 0.03); /* 3.6-bit on a tiny random model: within 3% */
    CHECK(ppl_q != ppl_f);                   /* the weights really changed */

    /* 3. block 0 q/k/v from an independent Hessian */
    {
        const int32_t H = m->cfg.hidden_size;
        int64_t starts[NS];
        CHECK(calib_sample_windows(n_cal, NS, SEQ, o.seed, starts, &err) == SPQR_OK);
        double *Hd = calloc((size_t)H * H, sizeof(double));
        float *x = malloc(H * sizeof(float)), *xn = malloc(H * sizeof(float));
        int64_t n = 0;
        for (int i = 0; i < NS; i++)
            for (int t = 0; t < SEQ; t++) {
                spqr_linear *e = &m->embed;
                CHECK(e->kind == SPQR_LINEAR_F32);
                memcpy(x, (const float *)e->data + (size_t)cal[starts[i] + t] * H, H * sizeof(float));
                double ss = 0;
                for (int j = 0; j < H; j++) ss += (double)x[j] * x[j];
                const float sc = (float)(1.0 / sqrt(ss / H + m->cfg.rms_norm_eps));
                for (int j = 0; j < H; j++) xn[j] = m->layers[0].attn_norm[j] * (x[j] * sc);
                for (int a = 0; a < H; a++)
                    for (int b = 0; b < H; b++) Hd[(size_t)a * H + b] += 2.0 * xn[a] * xn[b];
                n++;
            }
        float *Hf = malloc((size_t)H * H * sizeof(float));
        for (size_t i = 0; i < (size_t)H * H; i++) Hf[i] = (float)(Hd[i] / n);
        const spqr_linear *src[3] = {&m->layers[0].wq, &m->layers[0].wk, &m->layers[0].wv};
        const spqr_linear *got[3] = {&q->layers[0].wq, &q->layers[0].wk, &q->layers[0].wv};
        for (int k = 0; k < 3; k++) {
            const int32_t R = src[k]->rows;
            float *W1 = malloc((size_t)R * H * sizeof(float)), *W2 = malloc((size_t)R * H * sizeof(float));
            CHECK(spqr_quantize_layer(src[k]->data, R, H, Hf, &o.params, 1, NULL, NULL, W1, NULL, NULL, &err) ==
                  SPQR_OK);
            CHECK(spqr_tensor_dequantize(got[k]->packed, W2, &err) == SPQR_OK);
            int64_t same = 0;
            for (size_t i = 0; i < (size_t)R * H; i++) same += W1[i] == W2[i];
            CHECK_MSG(same >= (int64_t)R * H * 99 / 100, "block 0 linear %d: %lld of %d weights identical", k,
                      (long long)same, R * H);
            free(W1);
            free(W2);
        }
        free(Hd);
        free(Hf);
        free(x);
        free(xn);
    }

    /* 4. interrupt after block 0 with an older output in place, then resume */
    FILE *f = fopen(out_b, "wb");
    fputs("previous output", f);
    fclose(f);
    cancel_ctx cc = {0, 0, 0};
    spqr_quantize_options oi = o;
    oi.cancel = &cc.flag;
    oi.progress = cancel_cb;
    oi.progress_user = &cc;
    st = spqr_model_quantize(m, cal, n_cal, &oi, out_b, NULL, &err);
    CHECK(st == SPQR_ERR_INTERRUPTED);
    CHECK(strstr(err.msg, "--resume") != NULL && !strchr(err.msg, '\n'));
    size_t lb = 0;
    char *old = read_all(out_b, 1000, &lb);
    CHECK(old && !strcmp(old, "previous output")); /* untouched */
    free(old);
    snprintf(path, sizeof path, "%s/block_0000.spqr", ck_b);
    CHECK(access(path, F_OK) == 0);
    snprintf(path, sizeof path, "%s/block_0001.spqr", ck_b);
    CHECK(access(path, F_OK) != 0);
    spqr_quantize_options orr = o;
    orr.resume = 1;
    cc.flag = 0;
    orr.cancel = &cc.flag;
    spqr_quantize_summary sr;
    st = spqr_model_quantize(m, cal, n_cal, &orr, out_b, &sr, &err);
    CHECK_MSG(st == SPQR_OK, "%s", err.msg);
    CHECK(sr.resumed_blocks == 1);
    CHECK_MSG(same_file(out_a, out_b), "resumed file differs from the uninterrupted one");
    CHECK(access(ck_b, F_OK) != 0);

    /* 5. resume against a checkpoint made with other knobs: starts over */
    cc.flag = 0;
    cc.after_block = 0;
    oi.seed = 8;
    CHECK(spqr_model_quantize(m, cal, n_cal, &oi, out_b, NULL, &err) == SPQR_ERR_INTERRUPTED);
    orr.seed = 7;
    cc.flag = 0;
    st = spqr_model_quantize(m, cal, n_cal, &orr, out_b, &sr, &err);
    CHECK(st == SPQR_OK && sr.resumed_blocks == 0);
    CHECK(same_file(out_a, out_b));

    /* 6. bad input */
    spqr_quantize_options ob = o;
    ob.nsamples = 0;
    CHECK(spqr_model_quantize(m, cal, n_cal, &ob, out_b, NULL, &err) == SPQR_ERR_INVALID_ARG);
    ob = o;
    ob.seqlen = 100000;
    CHECK(spqr_model_quantize(m, cal, n_cal, &ob, out_b, NULL, &err) == SPQR_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "seqlen") != NULL);
    CHECK(spqr_model_quantize(m, cal, SEQ - 1, &o, out_b, NULL, &err) == SPQR_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "fewer than") != NULL);
    CHECK(spqr_model_quantize(q, cal, n_cal, &o, out_b, NULL, &err) == SPQR_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "already quantized") != NULL);
    int32_t badtok[SEQ];
    for (int i = 0; i < SEQ; i++) badtok[i] = 100000;
    CHECK(spqr_model_quantize(m, badtok, SEQ, &o, out_b, NULL, &err) == SPQR_ERR_INVALID_ARG);
    snprintf(path, sizeof path, "%s/no/such/dir/x.spqr", g_tmp);
    CHECK(spqr_model_quantize(m, cal, n_cal, &o, path, NULL, &err) == SPQR_ERR_IO);
    /* a .spqr that is not a model (a checkpoint-like file without config) */
    snprintf(path, sizeof path, "%s/notmodel.spqr", g_tmp);
    f = fopen(path, "wb");
    fputs("garbage", f);
    fclose(f);
    spqr_model *bad = NULL;
    CHECK(spqr_model_load(path, NULL, &bad, &err) != SPQR_OK && bad == NULL);

    for (int i = 0; i < nb; i++) free(wbuf[i]);
    free(dq.layers);
    spqr_model_free(q);
    spqr_model_free(m);
    free(cal);
    free(ev);
    free(text);
    unlink(out_a);
    unlink(out_b);
    unlink(path);
    rmrf_ckpt(ck_b);
    rmdir(g_tmp);
    TEST_SUMMARY();
}
