/* The forward pass over a chunk of tokens, for every family of model/arch.h:
 *   x = embed(tokens) (* sqrt(hidden) in Gemma)
 *   per layer: x += no(Wo · attn(rope(nq(Wq·n(x) + bq)), rope(nk(Wk·n(x) + bk)), Wv·n(x) + bv))
 *              x += nf(Wdown · (act(Wgate·n'(x)) * (Wup·n'(x))))
 *   logits = cap(lm_head · n(x))
 * n = RMSNorm (times 1 + w in Gemma); nq, nk per-head norms (Qwen3); no, nf
 * norms of the sublayer outputs (Gemma 2); act = silu or tanh-GELU; biases
 * where the family has them (Qwen2); attention over a sliding window on the
 * layers the config says; cap = soft-capping (Gemma 2), off elsewhere.
 * A chunk of B > 1 tokens goes through spqri_linear_matmul (sgemm); B = 1 (decode)
 * through spqri_linear_matvec. K and V are written straight into the cache.
 * With several threads one token runs all its layers in one parallel region
 * (a team): one thread does the small serial steps and prepares each
 * product, all of them claim its chunks, and they meet at spinning barriers
 * (core/team.h) instead of forking and joining ~5 times per layer. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <string.h>

#include "core/error.h"
#include "core/team.h"
#include "model/session.h"

/* What the threads of a decode step share (one region per token). */
typedef struct decode_team {
    spqr_team team;
    linear_job job;              /* the product being run */
    _Atomic int32_t next_head;   /* attention: the next head to claim */
    spqr_status st;              /* the leader's failure, read by all after a barrier */
} decode_team;

/* One thread's view of it; NULL outside a team (each product then forks
 * and joins on its own). Thread 0 leads: it runs every serial step. */
typedef struct team_ctx {
    decode_team *d;
    int32_t tid;
} team_ctx;

#define LEAD(tc) (!(tc) || (tc)->tid == 0)

/* 1 when a team splits these k products of one input between its threads:
 * at least s->team_split_min multiply-adds (session.h), else the leader
 * runs them alone. */
static int team_splits(const spqr_session *s, const spqr_linear *const *lins, int32_t k) {
    int64_t w = 0;
    for (int32_t i = 0; i < k; i++) w += (int64_t)lins[i]->rows * lins[i]->cols;
    return w >= s->team_split_min;
}

/* out = x / rms(x) * (off + w), statistics in double like HF's fp32 mean of
 * x^2; off is 1 for Gemma's (1 + w) norms, else 0. out may be x. */
static void rmsnorm(float *out, const float *x, const float *w, int32_t n, float eps, float off) {
    double ss = 0.0;
    for (int32_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + (double)eps));
    for (int32_t i = 0; i < n; i++) out[i] = (off + w[i]) * (x[i] * scale);
}

/* rmsnorm over each of the n rows of X (row length d, row stride ld). */
static void rmsnorm_rows(float *X, int32_t n, int32_t d, size_t ld, const float *w, float eps, float off) {
    for (int32_t i = 0; i < n; i++) rmsnorm(X + (size_t)i * ld, X + (size_t)i * ld, w, d, eps, off);
}

/* Y[i][0..rows) += bias for the B rows of Y (stride ld); no-op without bias. */
static void add_bias(float *Y, int32_t B, int32_t rows, size_t ld, const float *bias) {
    if (!bias) return;
    for (int32_t i = 0; i < B; i++)
        for (int32_t j = 0; j < rows; j++) Y[(size_t)i * ld + j] += bias[j];
}

/* Soft-capping (Gemma 2): v -> cap * tanh(v / cap). */
static void softcap(float *v, size_t n, float cap) {
    for (size_t i = 0; i < n; i++) v[i] = cap * tanhf(v[i] / cap);
}

/* hb = act(hb) * hb2: silu, or GELU with the tanh approximation
 * (transformers' gelu_pytorch_tanh). */
static void glu(float *hb, const float *hb2, size_t n, arch_act act) {
    if (act == ARCH_ACT_GELU_TANH) {
        const float k = 0.7978845608028654f; /* sqrt(2 / pi) */
        for (size_t j = 0; j < n; j++) {
            const float g = hb[j];
            hb[j] = 0.5f * g * (1.0f + tanhf(k * (g + 0.044715f * g * g * g))) * hb2[j];
        }
        return;
    }
    for (size_t j = 0; j < n; j++) {
        const float g = hb[j];
        hb[j] = g / (1.0f + expf(-g)) * hb2[j];
    }
}

void spqri_model_layer_view(spqr_model *view, const spqr_model *m, spqr_layer *layers, int32_t l) {
    *view = *m;
    view->cfg.n_layers = 1;
    view->layers = layers + l;
    memset(view->hp.slides, 0, sizeof view->hp.slides);
    view->hp.slides[0] = (uint8_t)arch_layer_slides(&m->hp, l);
}

spqr_status spqri_model_embed(const spqr_model *m, int32_t token, float *emb, spqr_err *err) {
    spqr_status st = spqri_linear_row(&m->embed, token, emb, err);
    if (st || m->embed_scale == 1.0f) return st;
    for (int32_t j = 0; j < m->cfg.hidden_size; j++) emb[j] *= m->embed_scale;
    return SPQR_OK;
}

/* Rotate-half RoPE on n_heads consecutive head vectors at position pos. */
static void rope(float *v, int32_t n_heads, int32_t head_dim, const float *cos_p, const float *sin_p) {
    const int32_t half = head_dim / 2;
    for (int32_t h = 0; h < n_heads; h++) {
        float *hv = v + (size_t)h * head_dim;
        for (int32_t i = 0; i < half; i++) {
            float a = hv[i], b = hv[i + half];
            hv[i] = a * cos_p[i] - b * sin_p[i];
            hv[i + half] = b * cos_p[i] + a * sin_p[i];
        }
    }
}

/* Bytes per cached element. */
static size_t kv_es(const spqr_session *s) { return s->kv_f16 ? 2 : 4; }

/* Position pos of kv head kvh in a layer's cache (keys or values). */
static char *kv_row(const spqr_session *s, const void *layer, int32_t kvh, int32_t pos) {
    return (char *)layer + ((size_t)kvh * s->max_ctx + pos) * (size_t)s->m->cfg.head_dim * kv_es(s);
}

/* The B tokens' keys and values [B][kvd] into a layer's cache (kc, vc: the
 * layer's), head-major ([n_kv_heads][max_ctx][hd]): a head's positions are
 * one contiguous stream for attention (token-major, a 7B head read 512
 * bytes per 16 KB: a page per position). An fp16 cache rounds them here. */
static void kv_store(spqr_session *s, void *kc, void *vc, const float *k, const float *v, int32_t p0, int32_t B) {
    const int32_t hd = s->m->cfg.head_dim, nkv = s->m->cfg.n_kv_heads;
    const spqr_dense_ops *ops = spqri_linear_ops(&s->lin);
    for (int32_t h = 0; h < nkv; h++)
        for (int32_t i = 0; i < B; i++) {
            const size_t src = ((size_t)i * nkv + h) * hd;
            char *dk = kv_row(s, kc, h, p0 + i), *dv = kv_row(s, vc, h, p0 + i);
            if (s->kv_f16) {
                ops->narrow_f16(k + src, (uint16_t *)dk, (size_t)hd);
                ops->narrow_f16(v + src, (uint16_t *)dv, (size_t)hd);
            } else {
                memcpy(dk, k + src, (size_t)hd * sizeof(float));
                memcpy(dv, v + src, (size_t)hd * sizeof(float));
            }
        }
}

/* Positions [lo, hi) of kv head kvh of a layer's cache (keys or values) as
 * fp32 rows of head_dim, for sgemm (prompt): the cache itself (fp32), or
 * widened into the thread's scratch w (fp16). Returns the row of position lo. */
static const float *kv_rows(const spqr_session *s, const void *cache, int32_t kvh, int32_t lo, int32_t hi, float *w) {
    const char *at = kv_row(s, cache, kvh, lo);
    if (!s->kv_f16) return (const float *)at;
    spqri_linear_ops(&s->lin)->widen_f16((const uint16_t *)at, w, (size_t)(hi - lo) * s->m->cfg.head_dim);
    return w;
}

/* Head h of one token at position p0 (decode): s->att's head h from s->q's,
 * sc [p0 + 1] the thread's scores. The cached rows (fp32 or fp16) go
 * straight into the dense kernels' dot products and weighted row sum. */
static void attend_one(spqr_session *s, int32_t h, int32_t p0, const void *kc, const void *vc, int32_t window,
                       float cap, float *sc) {
    const spqr_config *c = &s->m->cfg;
    const int32_t hd = c->head_dim, group = c->n_heads / c->n_kv_heads;
    const float scale = s->m->hp.attn_scale;
    const int32_t pos = p0, kvh = h / group;
    const int32_t lo = window > 0 && pos + 1 > window ? pos + 1 - window : 0;
    const spqr_dense_ops *ops = spqri_linear_ops(&s->lin);
    const int kind = s->kv_f16 ? 1 : 0;
    const size_t es = kv_es(s);
    const char *K = kv_row(s, kc, kvh, lo), *V = kv_row(s, vc, kvh, lo);
    const float *q = s->q + (size_t)h * hd;
    int32_t t = lo;
    if (s->kv_f16 && ops->dot4_f16) /* four keys per call, each with dot[1]'s bits */
        for (; t + 4 <= pos + 1; t += 4)
            ops->dot4_f16((const uint16_t *)K + (size_t)(t - lo) * hd, (size_t)hd, q, hd, &sc[t]);
    for (; t <= pos; t++) sc[t] = ops->dot[kind](K + (size_t)(t - lo) * hd * es, q, hd);
    float mx = -INFINITY;
    for (t = lo; t <= pos; t++) {
        sc[t] *= scale;
        if (cap > 0) softcap(&sc[t], 1, cap);
        if (sc[t] > mx) mx = sc[t];
    }
    float sum = 0.0f;
    for (int32_t t = lo; t <= pos; t++) {
        sc[t] = expf(sc[t] - mx);
        sum += sc[t];
    }
    const float inv = 1.0f / sum;
    for (int32_t t = lo; t <= pos; t++) sc[t] *= inv;
    float *o = s->att + (size_t)h * hd;
    memset(o, 0, (size_t)hd * sizeof(float));
    ops->rows_axpy[kind](sc + lo, V, pos + 1 - lo, hd, o);
}

/* Thread tid's widening scratch for an fp16 cache ([max_ctx][head_dim]), NULL for fp32. */
static float *kv_scratch(const spqr_session *s, int tid) {
    return s->kvw ? s->kvw + (size_t)tid * s->max_ctx * s->m->cfg.head_dim : NULL;
}

/* Causal GQA attention for the B tokens at positions p0..p0+B-1 of one
 * layer. One token (decode): a loop per head. Several (prompt): per head,
 * S = scale * Q K^T and O = softmax(S) V as two sgemm calls on [B][p0+B]
 * scores, the causal mask applied between them. window > 0: position p sees
 * only positions p - window + 1 .. p (sliding-window layers; the cache keeps
 * every position, the mask drops the old ones). cap > 0: soft-capped scores.
 * A prompt chunk's queries start at row i0 (the rows before it need no
 * output, see layer_forward); their outputs are s->att's rows 0..B-i0-1. */
static void attention(spqr_session *s, int32_t p0, int32_t B, int32_t i0, const void *kc, const void *vc,
                      int32_t window, float cap, const team_ctx *tc) {
    const spqr_config *c = &s->m->cfg;
    const int32_t hd = c->head_dim, nh = c->n_heads, group = c->n_heads / c->n_kv_heads;
    const int32_t qd = nh * hd;
    const float scale = s->m->hp.attn_scale;
    if (B > 1) {
        const int32_t T = p0 + B, M = B - i0; /* queries i0..B-1, outputs rows 0..M-1 */
        const int par = s->n_threads > 1 && (int64_t)M * T * hd * nh >= (1 << 18);
#pragma omp parallel for num_threads(s->n_threads) schedule(dynamic, 1) if (par)
        for (int32_t h = 0; h < nh; h++) {
            const int32_t kvh = h / group;
            const int tid = omp_get_thread_num();
            float *S = s->scores + (size_t)tid * s->max_batch * s->max_ctx; /* [M][T] */
            float *w = kv_scratch(s, tid);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, T, hd, scale, s->q + (size_t)i0 * qd + (size_t)h * hd,
                        qd, kv_rows(s, kc, kvh, 0, T, w), hd, 0.0f, S, T);
            for (int32_t i = 0; i < M; i++) {
                float *row = S + (size_t)i * T;
                const int32_t valid = p0 + i0 + i + 1; /* query i0 + i sees positions lo..p0+i0+i */
                const int32_t lo = window > 0 && valid > window ? valid - window : 0;
                if (cap > 0) softcap(row + lo, (size_t)(valid - lo), cap);
                float mx = -INFINITY, sum = 0.0f;
                for (int32_t t = lo; t < valid; t++) mx = row[t] > mx ? row[t] : mx;
                for (int32_t t = lo; t < valid; t++) {
                    row[t] = expf(row[t] - mx);
                    sum += row[t];
                }
                const float inv = 1.0f / sum;
                for (int32_t t = 0; t < lo; t++) row[t] = 0.0f;
                for (int32_t t = lo; t < valid; t++) row[t] *= inv;
                for (int32_t t = valid; t < T; t++) row[t] = 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, hd, T, 1.0f, S, T, kv_rows(s, vc, kvh, 0, T, w),
                        hd, 0.0f, s->att + (size_t)h * hd, qd);
        }
        return;
    }
    const int par = s->n_threads > 1 && (int64_t)nh * (p0 + 1) * hd >= (tc ? s->team_split_min : (1 << 18));
    if (tc && !par) { /* a team, little work: the leader alone, the threads meet at the next step */
        if (tc->tid == 0)
            for (int32_t h = 0; h < nh; h++) attend_one(s, h, p0, kc, vc, window, cap, s->scores);
        return;
    }
    if (tc) { /* a team: heads claimed one at a time */
        if (tc->tid == 0) atomic_store_explicit(&tc->d->next_head, 0, memory_order_relaxed);
        spqri_team_wait(&tc->d->team);
        float *sc = s->scores + (size_t)tc->tid * s->max_batch * s->max_ctx;
        for (int32_t h; (h = atomic_fetch_add_explicit(&tc->d->next_head, 1, memory_order_relaxed)) < nh;)
            attend_one(s, h, p0, kc, vc, window, cap, sc);
        spqri_team_wait(&tc->d->team);
        return;
    }
#pragma omp parallel for num_threads(s->n_threads) schedule(dynamic, 1) if (par)
    for (int32_t h = 0; h < nh; h++)
        attend_one(s, h, p0, kc, vc, window, cap, s->scores + (size_t)omp_get_thread_num() * s->max_batch * s->max_ctx);
}

/* Ys[i] = X W_i^T for k linears of one input. In a team (B = 1) the leader
 * prepares, then every thread runs its share; the barriers around make
 * the input complete before and the outputs complete after. */
static spqr_status linears(spqr_session *s, const spqr_linear *const *lins, int32_t k, const float *X, int32_t B,
                           float *const *ys, const team_ctx *tc, spqr_err *err) {
    if (!tc) return spqri_linear_matmul_multi(lins, k, X, B, ys, &s->lin, err);
    decode_team *d = tc->d;
    if (!team_splits(s, lins, k)) { /* the leader alone; a failure is d->st, returned at the next barrier */
        if (tc->tid == 0 && !d->st && !(d->st = spqri_linear_job_prepare(&d->job, lins, k, X, ys, &s->lin, err)))
            spqri_linear_job_run(&d->job);
        return SPQR_OK;
    }
    if (tc->tid == 0 && !d->st) d->st = spqri_linear_job_prepare(&d->job, lins, k, X, ys, &s->lin, err);
    spqri_team_wait(&d->team);
    if (d->st) return d->st;
    spqri_linear_job_run(&d->job);
    spqri_team_wait(&d->team);
    return SPQR_OK;
}

/* x += no(W X + b) for the B rows: a sublayer's output projection (o or
 * down), its bias and output norm (Gemma 2) where it has them, added to the
 * residual stream; tc as for layer_forward. */
static spqr_status residual_out(spqr_session *s, const spqr_linear *w, const float *X, int32_t B, const float *bias,
                                const float *norm, const team_ctx *tc, spqr_err *err) {
    const spqr_config *c = &s->m->cfg;
    const int32_t H = c->hidden_size;
    const spqr_linear *lins[1] = {w};
    float *const ys[1] = {s->xb2};
    const spqr_status st = linears(s, lins, 1, X, B, ys, tc, err);
    if (st || !LEAD(tc)) return st;
    add_bias(s->xb2, B, H, (size_t)H, bias);
    if (norm) rmsnorm_rows(s->xb2, B, H, (size_t)H, norm, c->rms_norm_eps, s->m->hp.arch->norm_plus_one ? 1.0f : 0.0f);
    for (size_t j = 0; j < (size_t)B * H; j++) s->x[j] += s->xb2[j];
    return SPQR_OK;
}

/* One transformer layer l on the B tokens in s->x at positions s->pos..
 * s->pos+B-1 (s->pos is not advanced). When hooks is non-NULL, hooks->fn
 * sees the input of every linear group before it is multiplied; a non-zero
 * return stops the layer there (s->x is then only partly updated; the KV
 * cache is complete whenever the O group was reached). tc: a thread of a
 * decode team (B = 1, no hooks), else NULL; the serial steps are the
 * leader's, and every thread returns the same status. nout < B: only the
 * last nout rows' outputs are wanted (the last layer of a prompt chunk
 * whose logits are its last token's, or none): every row's K and V still
 * go into the cache, then the layer goes on with those rows alone, moved to
 * the front of s->x (llama.cpp skips the same work). */
static spqr_status layer_forward(spqr_session *s, int32_t l, int32_t B, int32_t nout, const model_layer_hooks *hooks,
                                 const team_ctx *tc, spqr_err *err) {
    const spqr_model *m = s->m;
    const spqr_config *c = &m->cfg;
    const model_hparams *hp = &m->hp;
    const int32_t H = c->hidden_size, hd = c->head_dim, half = hd / 2, n_inter = c->intermediate_size;
    const int32_t qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    const int32_t p0 = s->pos;
    const float eps = c->rms_norm_eps, off = hp->arch->norm_plus_one ? 1.0f : 0.0f;
    spqr_status st;
    const spqr_layer *L = &m->layers[l];
    const size_t layer_at = (size_t)l * s->max_ctx * kvd * kv_es(s); /* bytes */
    void *kc = (char *)s->key_cache + layer_at, *vc = (char *)s->value_cache + layer_at;
    float *knew = s->kb, *vnew = s->vb; /* [B][kvd], into the cache after RoPE */
#define HOOK(group, X, cols) \
    if (hooks && hooks->fn && hooks->fn(hooks->user, l, group, X, B, cols)) return SPQR_OK

    if (LEAD(tc))
        for (int32_t i = 0; i < B; i++)
            rmsnorm(s->xb + (size_t)i * H, s->x + (size_t)i * H, L->attn_norm, H, eps, off);
    HOOK(MODEL_GROUP_QKV, s->xb, H);
    {
        const spqr_linear *lins[3] = {&L->wq, &L->wk, &L->wv};
        float *const ys[3] = {s->q, knew, vnew};
        if ((st = linears(s, lins, 3, s->xb, B, ys, tc, err))) return st;
    }
    if (LEAD(tc)) {
        add_bias(s->q, B, qd, (size_t)qd, L->bias[ARCH_LIN_Q]);
        add_bias(knew, B, kvd, (size_t)kvd, L->bias[ARCH_LIN_K]);
        add_bias(vnew, B, kvd, (size_t)kvd, L->bias[ARCH_LIN_V]);
        if (L->norm[ARCH_NORM_Q]) rmsnorm_rows(s->q, B * c->n_heads, hd, (size_t)hd, L->norm[ARCH_NORM_Q], eps, off);
        if (L->norm[ARCH_NORM_K]) rmsnorm_rows(knew, B * c->n_kv_heads, hd, (size_t)hd, L->norm[ARCH_NORM_K], eps, off);
        for (int32_t i = 0; i < B; i++) {
            const float *cp = s->rope_cos + (size_t)(p0 + i) * half, *sp = s->rope_sin + (size_t)(p0 + i) * half;
            rope(s->q + (size_t)i * qd, c->n_heads, hd, cp, sp);
            rope(knew + (size_t)i * kvd, c->n_kv_heads, hd, cp, sp);
        }
        kv_store(s, kc, vc, knew, vnew, p0, B);
    }
    const int32_t window = arch_layer_slides(hp, l) ? hp->sliding_window : 0;
    if (nout == 0) return SPQR_OK;
    attention(s, p0, B, B - nout, kc, vc, window, hp->attn_softcap, tc);
    if (nout < B) { /* (never in a team: a team runs one token with its logits) */
        memmove(s->x, s->x + (size_t)(B - nout) * H, (size_t)nout * H * sizeof(float));
        B = nout;
    }
    HOOK(MODEL_GROUP_O, s->att, qd);
    if ((st = residual_out(s, &L->wo, s->att, B, L->bias[ARCH_LIN_O], L->norm[ARCH_NORM_ATTN_OUT], tc, err))) return st;
    if (LEAD(tc)) {
        for (int32_t i = 0; i < B; i++)
            rmsnorm(s->xb + (size_t)i * H, s->x + (size_t)i * H, L->ffn_norm, H, eps, off);
    }
    HOOK(MODEL_GROUP_GATE_UP, s->xb, H);
    {
        const spqr_linear *lins[2] = {&L->w_gate, &L->w_up};
        float *const ys[2] = {s->hb, s->hb2};
        if ((st = linears(s, lins, 2, s->xb, B, ys, tc, err))) return st;
    }
    const spqr_linear *down = &L->w_down;
    if (!tc || !team_splits(s, &down, 1)) { /* (before the leader's down alone: the leader's too) */
        if (LEAD(tc)) {
            add_bias(s->hb, B, n_inter, (size_t)n_inter, L->bias[ARCH_LIN_GATE]);
            add_bias(s->hb2, B, n_inter, (size_t)n_inter, L->bias[ARCH_LIN_UP]);
            /* a prompt chunk's rows on all threads (one exp per element: ~1% of a
             * 7B prompt's time, the other thread idle, when it ran on one) */
            const int par = !tc && B > 1 && s->n_threads > 1 && (int64_t)B * n_inter >= (1 << 16);
#pragma omp parallel for num_threads(s->n_threads) schedule(static) if (par)
            for (int32_t i = 0; i < B; i++)
                glu(s->hb + (size_t)i * n_inter, s->hb2 + (size_t)i * n_inter, (size_t)n_inter, hp->arch->act);
        }
    } else { /* each thread its share (one exp per element: the longest serial step of a 7B layer) */
        const int32_t nt = tc->d->team.n, a = (int32_t)((int64_t)n_inter * tc->tid / nt);
        const int32_t e = (int32_t)((int64_t)n_inter * (tc->tid + 1) / nt);
        const float *bg = L->bias[ARCH_LIN_GATE], *bu = L->bias[ARCH_LIN_UP];
        add_bias(s->hb + a, 1, e - a, (size_t)n_inter, bg ? bg + a : NULL);
        add_bias(s->hb2 + a, 1, e - a, (size_t)n_inter, bu ? bu + a : NULL);
        glu(s->hb + a, s->hb2 + a, (size_t)(e - a), hp->arch->act);
        spqri_team_wait(&tc->d->team);
    }
    HOOK(MODEL_GROUP_DOWN, s->hb, n_inter);
    if ((st = residual_out(s, &L->w_down, s->hb, B, L->bias[ARCH_LIN_DOWN], L->norm[ARCH_NORM_FFN_OUT], tc, err)))
        return st;
#undef HOOK
    return SPQR_OK;
}

spqr_status spqri_model_layer_forward(spqr_session *s, int32_t l, int32_t B, const model_layer_hooks *hooks,
                                      spqr_err *err) {
    return layer_forward(s, l, B, B, hooks, NULL, err);
}

/* logits_out = cap(lm_head · n(x)) of every one of the B rows of s->x (all)
 * or of the last ([V]); tc as for layer_forward. */
static spqr_status head_forward(spqr_session *s, int32_t B, int all, float *logits_out, const team_ctx *tc,
                                spqr_err *err) {
    const spqr_model *m = s->m;
    const spqr_config *c = &m->cfg;
    const int32_t H = c->hidden_size, r0 = all ? 0 : B - 1, nb = all ? B : 1;
    const float off = m->hp.arch->norm_plus_one ? 1.0f : 0.0f;
    if (LEAD(tc))
        for (int32_t i = 0; i < nb; i++)
            rmsnorm(s->xb + (size_t)i * H, s->x + (size_t)(r0 + i) * H, m->final_norm, H, c->rms_norm_eps, off);
    const spqr_linear *lins[1] = {&m->lm_head};
    float *const ys[1] = {logits_out};
    const spqr_status st = linears(s, lins, 1, s->xb, nb, ys, tc, err);
    if (!st && LEAD(tc) && m->hp.final_softcap > 0) softcap(logits_out, (size_t)nb * c->vocab_size, m->hp.final_softcap);
    return st;
}

/* Layers l0.. of one token (s->x), then its logits when logits_out is
 * non-NULL, in one parallel region of s->n_threads. */
static spqr_status decode_layers_team(spqr_session *s, int32_t l0, float *logits_out, spqr_err *err) {
    decode_team d;
    d.st = SPQR_OK;
    spqri_team_init(&d.team, s->n_threads);
#pragma omp parallel num_threads(s->n_threads)
    {
        const team_ctx tc = {&d, omp_get_thread_num()};
        if (omp_get_num_threads() != d.team.n) { /* fewer threads given (OMP_THREAD_LIMIT): one does it all */
            for (int32_t l = l0; tc.tid == 0 && l < s->m->cfg.n_layers && !d.st; l++)
                d.st = spqri_model_layer_forward(s, l, 1, NULL, err);
            if (tc.tid == 0 && logits_out && !d.st) d.st = head_forward(s, 1, 0, logits_out, NULL, err);
        } else {
            spqr_err mine; /* only the leader reports into err */
            spqr_err *e = tc.tid == 0 ? err : &mine;
            int32_t l = l0;
            while (l < s->m->cfg.n_layers && !layer_forward(s, l, 1, 1, NULL, &tc, e)) l++;
            if (l == s->m->cfg.n_layers && logits_out) head_forward(s, 1, 0, logits_out, &tc, e);
        }
    }
    spqri_team_free(&d.team);
    return d.st;
}

/* One chunk of B <= max_batch tokens starting at s->pos. logits_out: [B][V]
 * when all, else [V] for the last token; NULL = none. With tokens NULL,
 * xin [B][hidden] is layer l0's input (l0 = n_layers: the final norm's);
 * keep, when non-NULL, gets layer l's input rows at keep + l * keep_stride
 * (l = n_layers: the final norm's). One token with several threads runs as
 * a decode team, unless the session asks for a region per product. */
static spqr_status forward_chunk(spqr_session *s, const int32_t *tokens, const float *xin, int32_t l0, float *keep,
                                 size_t keep_stride, int32_t B, int all, float *logits_out, spqr_err *err) {
    const int team = B == 1 && !keep && s->n_threads > 1 && s->decode_mode == SESSION_DECODE_TEAM;
    const spqr_model *m = s->m;
    const spqr_config *c = &m->cfg;
    const int32_t H = c->hidden_size;
    spqr_status st;

    if (tokens) {
        for (int32_t i = 0; i < B; i++)
            if ((st = spqri_model_embed(m, tokens[i], s->x + (size_t)i * H, err))) return st;
    } else if (xin) {
        memcpy(s->x, xin, (size_t)B * H * sizeof(float));
    }

    if (team) {
        if ((st = decode_layers_team(s, l0, logits_out, err))) return st;
    } else {
        /* rows whose last-layer output is used: all, the last one's (its logits), or none */
        const int32_t nout = all || keep ? B : logits_out ? 1 : 0;
        for (int32_t l = l0; l < c->n_layers; l++) {
            if (keep) memcpy(keep + (size_t)l * keep_stride, s->x, (size_t)B * H * sizeof(float));
            if ((st = layer_forward(s, l, B, l == c->n_layers - 1 ? nout : B, NULL, NULL, err))) return st;
        }
        if (keep) memcpy(keep + (size_t)c->n_layers * keep_stride, s->x, (size_t)B * H * sizeof(float));
        /* s->x holds the nout rows now */
        if (logits_out && (st = head_forward(s, nout, all, logits_out, NULL, err))) return st;
    }
    s->pos += B;
    return SPQR_OK;
}

spqr_status spqr_session_forward(spqr_session *s, const int32_t *tokens, int32_t n, int all_logits, float *logits,
                                 spqr_err *err) {
    if (!s || (!tokens && n > 0)) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "session_forward: NULL argument");
    if (n <= 0) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "session_forward: n = %d tokens", n);
    if (n > s->max_ctx - s->pos)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG,
                            "session_forward: %d tokens at position %d exceed the context of %d", n, s->pos,
                            s->max_ctx);
    const int32_t V = s->m->cfg.vocab_size;
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "session_forward: token id %d is outside [0, %d)",
                                tokens[i], V);
    const int32_t start = s->pos;
    for (int32_t done = 0; done < n;) {
        const int32_t B = n - done < s->max_batch ? n - done : s->max_batch;
        const int last = done + B == n;
        float *lo = NULL;
        if (logits && all_logits) lo = logits + (size_t)done * V;
        else if (logits && last) lo = logits;
        spqr_status st = forward_chunk(s, tokens + done, NULL, 0, NULL, 0, B, all_logits, lo, err);
        if (st) {
            s->pos = start; /* the cache beyond start is garbage now; keep what was valid */
            return st;
        }
        done += B;
    }
    return SPQR_OK;
}

spqr_status spqri_session_forward_from(spqr_session *s, int32_t l0, const float *xin, int32_t n, float *keep,
                                       float *logits, spqr_err *err) {
    const int32_t H = s->m->cfg.hidden_size, V = s->m->cfg.vocab_size;
    if (l0 < 0 || l0 > s->m->cfg.n_layers || n <= 0 || n > s->max_ctx - s->pos)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "session_forward_from: layer %d, %d positions at %d", l0, n,
                            s->pos);
    const int32_t start = s->pos;
    for (int32_t done = 0; done < n;) {
        const int32_t B = n - done < s->max_batch ? n - done : s->max_batch;
        spqr_status st = forward_chunk(s, NULL, xin + (size_t)done * H, l0, keep ? keep + (size_t)done * H : NULL,
                                       (size_t)n * H, B, 1, logits + (size_t)done * V, err);
        if (st) {
            s->pos = start;
            return st;
        }
        done += B;
    }
    return SPQR_OK;
}
