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
 *  - bad input gives one-line errors;
 *  - --quantize-head (tiny GQA and the tied-embeddings fixture): the file
 *    has a packed lm_head and no dense one, the block tensors are the same
 *    as without the option, ppl from the .spqr = ppl of the dequantized
 *    weights (head included) run densely (1e-4), within 5% of fp32; the
 *    head equals a quantization with an independently computed Hessian
 *    (full forward with an identity head, sum x x^T in double); an
 *    interrupted run resumes to a byte-identical file, and the option is
 *    part of the checkpoint hash. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/spqr_kernel.h"
#include "model/model.h"
#include "model/session.h"
#include "quant/calib.h"
#include "spqr.h"
#include "test_util.h"
#include "test_ppl.h"

#define NS 6
#define SEQ 48

static char g_tmp[256];

static int same_file(const char *a, const char *b) {
    size_t la, lb;
    char *x = test_read_prefix(a, 64u << 20, &la), *y = test_read_prefix(b, 64u << 20, &lb);
    int same = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
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

/* dq = m with every linear that is packed in q (blocks, and lm_head when
 * quantized) replaced by its dequantized fp32 weights; the embedding used
 * for the lookup stays m's. Buffers to free go to bufs[*nb]. */
static void dequantized_copy(const spqr_model *m, const spqr_model *q, spqr_model *dq, float **bufs, int *nb) {
    spqr_err err;
    *dq = *m;
    dq->layers = malloc((size_t)m->cfg.n_layers * sizeof *dq->layers);
    memcpy(dq->layers, m->layers, (size_t)m->cfg.n_layers * sizeof *dq->layers);
    spqr_linear *lins[7 * 8 + 1];
    const spqr_linear *ql[7 * 8 + 1];
    int n = 0;
    for (int32_t l = 0; l < m->cfg.n_layers && l < 8; l++) {
        spqr_layer *d = &dq->layers[l];
        const spqr_layer *g = &q->layers[l];
        spqr_linear *a[7] = {&d->wq, &d->wk, &d->wv, &d->wo, &d->w_gate, &d->w_up, &d->w_down};
        const spqr_linear *b[7] = {&g->wq, &g->wk, &g->wv, &g->wo, &g->w_gate, &g->w_up, &g->w_down};
        for (int k = 0; k < 7; k++) lins[n] = a[k], ql[n++] = b[k];
    }
    if (q->lm_head.kind == SPQR_LINEAR_PACKED) lins[n] = &dq->lm_head, ql[n++] = &q->lm_head;
    for (int i = 0; i < n; i++) {
        CHECK(ql[i]->kind == SPQR_LINEAR_PACKED);
        float *W = malloc((size_t)ql[i]->rows * ql[i]->cols * sizeof(float));
        CHECK(spqr_tensor_dequantize(ql[i]->packed, W, &err) == SPQR_OK);
        *lins[i] = (spqr_linear){SPQR_LINEAR_F32, ql[i]->rows, ql[i]->cols, W, NULL, NULL};
        bufs[(*nb)++] = W;
    }
}

/* 1 when the file stores lm_head.weight packed and not dense. */
static int head_is_packed_only(const char *path) {
    spqr_archive *a = NULL;
    spqr_err err;
    if (spqr_archive_open(path, &a, &err)) return 0;
    const int ok = spqr_archive_find_packed(a, "lm_head.weight") != NULL && !spqr_archive_find_dense(a, "lm_head.weight");
    spqr_archive_close(a);
    return ok;
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
    /* The ".spqr == dequantized dense" checks need exact activations: the
     * AUTO kernel of a VNNI CPU rounds activations to int8 (checked on its
     * own below, where the CPU has it). */
    const char *i8_path = spqri_kt_path_supported(SPQR_KERNEL_AVX512_VNNI) ? "avx512vnni"
                          : spqri_kt_path_supported(SPQR_KERNEL_NEON_DOTPROD) ? "neondot"
                                                                         : NULL;
    setenv("SPQR_KERNEL", "exact", 1);
    snprintf(path, sizeof path, "%s/tiny_gqa", fix);
    CHECK(spqr_model_load(path, NULL, &m, &err) == SPQR_OK);
    if (!m) TEST_SUMMARY();

    /* calibration and evaluation text: disjoint slices of data/calib.txt */
    snprintf(path, sizeof path, "%s/../../data/calib.txt", fix);
    size_t len = 0;
    char *text = test_read_prefix(path, 40000, &len);
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
    CHECK(sm.n_kinds == 7);
    for (int k = 0; k < sm.n_kinds; k++) CHECK(sm.kinds[k].count == 2 && sm.kinds[k].rel_err_mean > 0 && sm.kinds[k].rel_err_mean < 0.05);

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
    const double ppl_f = test_perplexity(m, ev, n_win, ctx);
    const double ppl_q = test_perplexity(q, ev, n_win, ctx);
    CHECK(q->lm_head.kind != SPQR_LINEAR_PACKED); /* no --quantize-head: the head stays dense */
    spqr_model dq; /* the fp32 model with every linear replaced by its dequantized weights */
    float *wbuf[256] = {0};
    int nb = 0;
    dequantized_copy(m, q, &dq, wbuf, &nb);
    const double ppl_d = test_perplexity(&dq, ev, n_win, ctx);
    printf("ppl fp32 %.6f, .spqr %.6f, dequantized dense %.6f\n", ppl_f, ppl_q, ppl_d);
    CHECK(isfinite(ppl_q) && isfinite(ppl_d));
    CHECK_NEAR(ppl_q / ppl_d, 1.0, 1e-4);
    CHECK(fabs(ppl_q / ppl_f - 1.0) < 0.03); /* 3.6-bit on a tiny random model: within 3% */
    CHECK(ppl_q != ppl_f);                   /* the weights really changed */

    /* 3. block 0 q/k/v from an independent Hessian */
    {
        const int32_t H = m->cfg.hidden_size;
        int64_t starts[NS];
        CHECK(spqri_calib_sample_windows(n_cal, NS, SEQ, o.seed, starts, &err) == SPQR_OK);
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
    /* (an older .spqr, recognised by its magic: only those are replaced without overwrite) */
    FILE *f = fopen(out_b, "wb");
    fwrite("SPQRMDL\0previous output", 1, 23, f);
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
    char *old = test_read_prefix(out_b, 1000, &lb);
    CHECK(old && lb == 23 && !memcmp(old, "SPQRMDL\0previous output", 23)); /* untouched */
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

    /* 7. --quantize-head on the GQA model (untied head) */
    {
        char out_h[300], out_r[300], ck_r[320];
        snprintf(out_h, sizeof out_h, "%s/h.spqr", g_tmp);
        snprintf(out_r, sizeof out_r, "%s/hr.spqr", g_tmp);
        snprintf(ck_r, sizeof ck_r, "%s.partial", out_r);
        spqr_quantize_options oh = o;
        oh.quantize_head = 1;
        spqr_quantize_summary sh;
        st = spqr_model_quantize(m, cal, n_cal, &oh, out_h, &sh, &err);
        CHECK_MSG(st == SPQR_OK, "%s", err.msg);
        CHECK(head_is_packed_only(out_h));
        CHECK(!head_is_packed_only(out_a));
        const int64_t VH = 300 * 72;
        CHECK(sh.head.count == 1 && sh.head.params == VH && !strcmp(sh.head.name, "lm_head"));
        CHECK(sh.head.rel_err_mean > 0 && sh.head.rel_err_mean < 0.05);
        CHECK(sh.quantized_params == sm.quantized_params + VH);
        /* the model-level average includes the head; the blocks-only one
         * equals the run without the head (same calibration, same blocks) */
        CHECK_NEAR(sh.avg_bits_stored, 8.0 * sh.quantized_bytes / sh.quantized_params, 1e-12);
        CHECK_NEAR(sh.avg_bits_stored_blocks, sm.avg_bits_stored, 1e-12);
        CHECK_NEAR(sh.avg_bits_formula_blocks, sm.avg_bits_formula, 1e-12);
        CHECK(sh.avg_bits_stored != sm.avg_bits_stored);
        CHECK(sh.dense_params == sm.dense_params - VH);
        CHECK(sh.model_params == sm.quantized_params + sm.dense_params);
        spqr_model *qh = NULL;
        st = spqr_model_load(out_h, NULL, &qh, &err);
        CHECK_MSG(st == SPQR_OK, "%s", err.msg);
        if (!qh) TEST_SUMMARY();
        CHECK(qh->lm_head.kind == SPQR_LINEAR_PACKED && qh->lm_head.fast != NULL);
        CHECK(qh->embed.kind != SPQR_LINEAR_PACKED);
        /* the block tensors are those of the run without the head */
        float *W1 = malloc(100 * 72 * sizeof(float)), *W2 = malloc(100 * 72 * sizeof(float));
        CHECK(spqr_tensor_dequantize(q->layers[1].w_down.packed, W1, &err) == SPQR_OK);
        CHECK(spqr_tensor_dequantize(qh->layers[1].w_down.packed, W2, &err) == SPQR_OK);
        CHECK(!memcmp(W1, W2, 72 * 100 * sizeof(float)));
        free(W1);
        free(W2);
        spqr_model dqh;
        dequantized_copy(m, qh, &dqh, wbuf, &nb);
        CHECK(dqh.lm_head.kind == SPQR_LINEAR_F32 && dqh.embed.data == m->embed.data);
        const double ppl_h = test_perplexity(qh, ev, n_win, ctx), ppl_hd = test_perplexity(&dqh, ev, n_win, ctx);
        printf("--quantize-head: ppl .spqr %.6f, dequantized dense %.6f (fp32 %.6f, head not quantized %.6f)\n",
               ppl_h, ppl_hd, ppl_f, ppl_q);
        CHECK(isfinite(ppl_h) && isfinite(ppl_hd));
        CHECK_NEAR(ppl_h / ppl_hd, 1.0, 1e-4);
        CHECK(fabs(ppl_h / ppl_f - 1.0) < 0.05); /* blocks and head at 3.6 bits: within 5% */
        CHECK(ppl_h != ppl_q);                    /* the head really changed */

        /* The head's Hessian, independently: the full forward of the
         * dequantized model with an identity head (rows 0..H-1) returns
         * RMSNorm(x, final_norm) of every calibration token as its logits;
         * H = 2/n sum x x^T in double; quantizing lm_head with it gives the
         * file's head (>= 99% of weights bit-identical; the forward runs in
         * other chunks than the pipeline, so a few roundings may differ). */
        {
            const int32_t H = m->cfg.hidden_size, V = m->cfg.vocab_size;
            spqr_model idm = dqh;
            float *eye = calloc((size_t)V * H, sizeof(float)), *lg = malloc((size_t)SEQ * V * sizeof(float));
            for (int32_t i = 0; i < H; i++) eye[(size_t)i * H + i] = 1.0f;
            idm.lm_head = (spqr_linear){SPQR_LINEAR_F32, V, H, eye, NULL, NULL};
            int64_t starts[NS];
            CHECK(spqri_calib_sample_windows(n_cal, NS, SEQ, o.seed, starts, &err) == SPQR_OK);
            double *Hd = calloc((size_t)H * H, sizeof(double));
            spqr_session *ss = NULL;
            CHECK(spqr_session_create(&idm, SEQ, 1, &ss, &err) == SPQR_OK);
            for (int i = 0; ss && i < NS; i++) {
                spqr_session_reset(ss);
                CHECK(spqr_session_forward(ss, cal + starts[i], SEQ, 1, lg, &err) == SPQR_OK);
                for (int t = 0; t < SEQ; t++) {
                    const float *x = lg + (size_t)t * V;
                    for (int a2 = 0; a2 < H; a2++)
                        for (int b2 = 0; b2 < H; b2++) Hd[(size_t)a2 * H + b2] += 2.0 * x[a2] * x[b2];
                }
            }
            spqr_session_free(ss);
            float *Hf = malloc((size_t)H * H * sizeof(float));
            for (size_t i = 0; i < (size_t)H * H; i++) Hf[i] = (float)(Hd[i] / (NS * SEQ));
            float *Wh = malloc((size_t)V * H * sizeof(float)), *Wr = malloc((size_t)V * H * sizeof(float)),
                  *Wg = malloc((size_t)V * H * sizeof(float));
            for (int32_t r = 0; r < V; r++) CHECK(spqri_linear_row(&m->lm_head, r, Wh + (size_t)r * H, &err) == SPQR_OK);
            CHECK(spqr_quantize_layer(Wh, V, H, Hf, &o.params, 1, NULL, NULL, Wr, NULL, NULL, &err) == SPQR_OK);
            CHECK(spqr_tensor_dequantize(qh->lm_head.packed, Wg, &err) == SPQR_OK);
            int64_t same = 0;
            for (size_t i = 0; i < (size_t)V * H; i++) same += Wr[i] == Wg[i];
            printf("lm_head from an independent Hessian: %lld of %d weights identical\n", (long long)same, V * H);
            CHECK_MSG(same >= (int64_t)V * H * 99 / 100, "lm_head: %lld of %d weights identical", (long long)same,
                      V * H);
            free(eye);
            free(lg);
            free(Hd);
            free(Hf);
            free(Wh);
            free(Wr);
            free(Wg);
        }
        free(dqh.layers);
        spqr_model_free(qh);

        /* interrupt after the last block (all blocks checkpointed, head not
         * done), resume: the head is recomputed from the checkpointed
         * outputs and the file is byte-identical */
        cancel_ctx ch = {0, 1, 0};
        spqr_quantize_options ohi = oh;
        ohi.cancel = &ch.flag;
        ohi.progress = cancel_cb;
        ohi.progress_user = &ch;
        CHECK(spqr_model_quantize(m, cal, n_cal, &ohi, out_r, NULL, &err) == SPQR_ERR_INTERRUPTED);
        CHECK(access(out_r, F_OK) != 0);
        spqr_quantize_options ohr = oh;
        ohr.resume = 1;
        spqr_quantize_summary shr;
        st = spqr_model_quantize(m, cal, n_cal, &ohr, out_r, &shr, &err);
        CHECK_MSG(st == SPQR_OK, "%s", err.msg);
        CHECK(shr.resumed_blocks == 2);
        CHECK_MSG(same_file(out_h, out_r), "--quantize-head: resumed file differs");
        /* interrupted after block 0, resumed: identical too */
        ch.flag = 0;
        ch.after_block = 0;
        unlink(out_r);
        CHECK(spqr_model_quantize(m, cal, n_cal, &ohi, out_r, NULL, &err) == SPQR_ERR_INTERRUPTED);
        st = spqr_model_quantize(m, cal, n_cal, &ohr, out_r, &shr, &err);
        CHECK(st == SPQR_OK && shr.resumed_blocks == 1);
        CHECK(same_file(out_h, out_r));
        /* the option is part of the checkpoint hash: checkpoints made with
         * the head are not reused by a run without it, and vice versa */
        ch.flag = 0;
        CHECK(spqr_model_quantize(m, cal, n_cal, &ohi, out_r, NULL, &err) == SPQR_ERR_INTERRUPTED);
        spqr_quantize_options onr = o;
        onr.resume = 1;
        st = spqr_model_quantize(m, cal, n_cal, &onr, out_r, &shr, &err);
        CHECK(st == SPQR_OK && shr.resumed_blocks == 0);
        CHECK(same_file(out_a, out_r));
        unlink(out_h);
        unlink(out_r);
        rmrf_ckpt(ck_r);
    }

    /* 8. --quantize-head with tied embeddings: the embedding stays dense for
     * the lookup, the head becomes a separate packed tensor */
    {
        spqr_model *mt = NULL;
        snprintf(path, sizeof path, "%s/tiny_tied", fix);
        CHECK(spqr_model_load(path, NULL, &mt, &err) == SPQR_OK);
        if (!mt) TEST_SUMMARY();
        CHECK(mt->cfg.tie_word_embeddings);
        int32_t *tcal = NULL, n_tcal = 0, *tev = NULL, n_tev = 0;
        CHECK(spqr_tokenizer_encode(mt->tok, text, 6000, 0, &tcal, &n_tcal, &err) == SPQR_OK);
        CHECK(spqr_tokenizer_encode(mt->tok, text + 10000, 30000, 0, &tev, &n_tev, &err) == SPQR_OK);
        char out_t[300];
        snprintf(out_t, sizeof out_t, "%s/tied.spqr", g_tmp);
        spqr_quantize_options ot = o;
        ot.quantize_head = 1;
        spqr_quantize_summary stt;
        st = spqr_model_quantize(mt, tcal, n_tcal, &ot, out_t, &stt, &err);
        CHECK_MSG(st == SPQR_OK, "%s", err.msg);
        CHECK(head_is_packed_only(out_t));
        const int64_t VH = (int64_t)mt->cfg.vocab_size * mt->cfg.hidden_size;
        CHECK(stt.head.count == 1 && stt.head.params == VH);
        CHECK(stt.model_params == stt.quantized_params + stt.dense_params - VH); /* tied: counted once */
        spqr_model *qt = NULL;
        st = spqr_model_load(out_t, NULL, &qt, &err);
        CHECK_MSG(st == SPQR_OK, "%s", err.msg);
        if (!qt) TEST_SUMMARY();
        CHECK(qt->lm_head.kind == SPQR_LINEAR_PACKED && qt->embed.kind != SPQR_LINEAR_PACKED && qt->embed.data);
        spqr_model dqt;
        dequantized_copy(mt, qt, &dqt, wbuf, &nb);
        CHECK(dqt.embed.data == mt->embed.data && dqt.lm_head.kind == SPQR_LINEAR_F32);
        const int32_t tw = n_tev / ctx < 8 ? n_tev / ctx : 8;
        const double pt = test_perplexity(qt, tev, tw, ctx), ptd = test_perplexity(&dqt, tev, tw, ctx),
                     ptf = test_perplexity(mt, tev, tw, ctx);
        printf("tied --quantize-head: ppl .spqr %.6g, dequantized dense %.6g, fp32 %.6g\n", pt, ptd, ptf);
        CHECK(isfinite(pt) && isfinite(ptd));
        CHECK_NEAR(pt / ptd, 1.0, 1e-4);
        CHECK(pt != ptf);
        if (i8_path) { /* int8 activations (AUTO on this CPU), head quantized too: within 1% (measured 0.2%) */
            setenv("SPQR_KERNEL", i8_path, 1);
            spqr_model *q8 = NULL;
            CHECK(spqr_model_load(out_t, NULL, &q8, &err) == SPQR_OK);
            if (q8) {
                const double p8 = test_perplexity(q8, tev, tw, ctx);
                printf("tied --quantize-head, int8 activations: ppl %.6g (exact %.6g)\n", p8, pt);
                CHECK(isfinite(p8) && fabs(p8 / pt - 1.0) < 0.01 && p8 != pt);
                spqr_model_free(q8);
            }
            setenv("SPQR_KERNEL", "exact", 1);
        }
        free(dqt.layers);
        spqr_model_free(qt);
        spqr_model_free(mt);
        free(tcal);
        free(tev);
        unlink(out_t);
    }

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
