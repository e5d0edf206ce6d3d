/* The Llama forward pass over a chunk of tokens:
 *   x = embed(tokens)
 *   per layer: x += Wo · attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x))   n = RMSNorm
 *              x += Wdown · (silu(Wgate·n(x)) * (Wup·n(x)))
 *   logits = lm_head · n(x)
 * A chunk of B > 1 tokens goes through linear_matmul (sgemm); B = 1 (decode)
 * through linear_matvec. K and V are written straight into the cache. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/error.h"
#include "model/session.h"

/* out = x / rms(x) * w, statistics in double like HF's fp32 mean of x^2. */
static void rmsnorm(float *out, const float *x, const float *w, int32_t n, float eps) {
    double ss = 0.0;
    for (int32_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + (double)eps));
    for (int32_t i = 0; i < n; i++) out[i] = w[i] * (x[i] * scale);
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

/* Causal GQA attention for the B tokens at positions p0..p0+B-1 of one
 * layer. One token (decode): a loop per head. Several (prompt): per head,
 * S = scale * Q K^T and O = softmax(S) V as two sgemm calls on [B][p0+B]
 * scores, the causal mask applied between them. */
static void attention(spqr_session *s, int32_t p0, int32_t B, const float *kc, const float *vc) {
    const spqr_config *c = &s->m->cfg;
    const int32_t hd = c->head_dim, nh = c->n_heads, group = c->n_heads / c->n_kv_heads;
    const int32_t qd = nh * hd, kvd = c->n_kv_heads * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    if (B > 1) {
        const int32_t T = p0 + B;
        const int par = s->n_threads > 1 && (int64_t)B * T * hd * nh >= (1 << 18);
#pragma omp parallel for num_threads(s->n_threads) schedule(dynamic, 1) if (par)
        for (int32_t h = 0; h < nh; h++) {
            const int32_t kvh = h / group;
            float *S = s->scores + (size_t)omp_get_thread_num() * s->max_batch * s->max_ctx; /* [B][T] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, T, hd, scale, s->q + (size_t)h * hd, qd,
                        kc + (size_t)kvh * hd, kvd, 0.0f, S, T);
            for (int32_t i = 0; i < B; i++) {
                float *row = S + (size_t)i * T;
                const int32_t valid = p0 + i + 1; /* token i sees positions 0..p0+i */
                float mx = -INFINITY, sum = 0.0f;
                for (int32_t t = 0; t < valid; t++) mx = row[t] > mx ? row[t] : mx;
                for (int32_t t = 0; t < valid; t++) {
                    row[t] = expf(row[t] - mx);
                    sum += row[t];
                }
                const float inv = 1.0f / sum;
                for (int32_t t = 0; t < valid; t++) row[t] *= inv;
                for (int32_t t = valid; t < T; t++) row[t] = 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, hd, T, 1.0f, S, T, vc + (size_t)kvh * hd, kvd,
                        0.0f, s->att + (size_t)h * hd, qd);
        }
        return;
    }
    const int par = s->n_threads > 1 && (int64_t)nh * (p0 + 1) * hd >= (1 << 18);
#pragma omp parallel for num_threads(s->n_threads) schedule(dynamic, 1) if (par)
    for (int32_t h = 0; h < nh; h++) {
        const int32_t pos = p0, kvh = h / group;
        const float *q = s->q + (size_t)h * hd;
        float *sc = s->scores + (size_t)omp_get_thread_num() * s->max_batch * s->max_ctx;
        float mx = -INFINITY;
        for (int32_t t = 0; t <= pos; t++) {
            const float *k = kc + (size_t)t * kvd + (size_t)kvh * hd;
            float d = 0.0f;
#pragma omp simd reduction(+ : d)
            for (int32_t j = 0; j < hd; j++) d += q[j] * k[j];
            sc[t] = d * scale;
            if (sc[t] > mx) mx = sc[t];
        }
        float sum = 0.0f;
        for (int32_t t = 0; t <= pos; t++) {
            sc[t] = expf(sc[t] - mx);
            sum += sc[t];
        }
        const float inv = 1.0f / sum;
        float *o = s->att + (size_t)h * hd;
        memset(o, 0, (size_t)hd * sizeof(float));
        for (int32_t t = 0; t <= pos; t++) {
            const float *v = vc + (size_t)t * kvd + (size_t)kvh * hd;
            const float a = sc[t] * inv;
            for (int32_t j = 0; j < hd; j++) o[j] += a * v[j];
        }
    }
}

/* One transformer layer l on the B tokens in s->x at positions s->pos..
 * s->pos+B-1 (s->pos is not advanced). When hooks is non-NULL, hooks->fn
 * sees the input of every linear group before it is multiplied; a non-zero
 * return stops the layer there (s->x is then only partly updated; the KV
 * cache is complete whenever the O group was reached). */
spqr_status model_layer_forward(spqr_session *s, int32_t l, int32_t B, const model_layer_hooks *hooks,
                                spqr_err *err) {
    const spqr_model *m = s->m;
    const spqr_config *c = &m->cfg;
    const int32_t H = c->hidden_size, hd = c->head_dim, half = hd / 2, n_inter = c->intermediate_size;
    const int32_t qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    const int32_t p0 = s->pos;
    spqr_status st;
    const spqr_layer *L = &m->layers[l];
    float *kc = s->key_cache + (size_t)l * s->max_ctx * kvd;
    float *vc = s->value_cache + (size_t)l * s->max_ctx * kvd;
#define HOOK(group, X, cols) \
    if (hooks && hooks->fn && hooks->fn(hooks->user, l, group, X, B, cols)) return SPQR_OK

    for (int32_t i = 0; i < B; i++)
        rmsnorm(s->xb + (size_t)i * H, s->x + (size_t)i * H, L->attn_norm, H, c->rms_norm_eps);
    HOOK(MODEL_GROUP_QKV, s->xb, H);
    {
        const spqr_linear *lins[3] = {&L->wq, &L->wk, &L->wv};
        float *const ys[3] = {s->q, kc + (size_t)p0 * kvd, vc + (size_t)p0 * kvd};
        if ((st = linear_matmul_multi(lins, 3, s->xb, B, ys, &s->lin, err))) return st;
    }
    for (int32_t i = 0; i < B; i++) {
        const float *cp = s->rope_cos + (size_t)(p0 + i) * half, *sp = s->rope_sin + (size_t)(p0 + i) * half;
        rope(s->q + (size_t)i * qd, c->n_heads, hd, cp, sp);
        rope(kc + (size_t)(p0 + i) * kvd, c->n_kv_heads, hd, cp, sp);
    }
    attention(s, p0, B, kc, vc);
    HOOK(MODEL_GROUP_O, s->att, qd);
    if ((st = linear_matmul(&L->wo, s->att, B, s->xb2, &s->lin, err))) return st;
    for (size_t j = 0; j < (size_t)B * H; j++) s->x[j] += s->xb2[j];

    for (int32_t i = 0; i < B; i++)
        rmsnorm(s->xb + (size_t)i * H, s->x + (size_t)i * H, L->ffn_norm, H, c->rms_norm_eps);
    HOOK(MODEL_GROUP_GATE_UP, s->xb, H);
    {
        const spqr_linear *lins[2] = {&L->w_gate, &L->w_up};
        float *const ys[2] = {s->hb, s->hb2};
        if ((st = linear_matmul_multi(lins, 2, s->xb, B, ys, &s->lin, err))) return st;
    }
    for (size_t j = 0; j < (size_t)B * n_inter; j++) {
        const float g = s->hb[j];
        s->hb[j] = g / (1.0f + expf(-g)) * s->hb2[j]; /* silu(gate) * up */
    }
    HOOK(MODEL_GROUP_DOWN, s->hb, n_inter);
    if ((st = linear_matmul(&L->w_down, s->hb, B, s->xb2, &s->lin, err))) return st;
    for (size_t j = 0; j < (size_t)B * H; j++) s->x[j] += s->xb2[j];
#undef HOOK
    return SPQR_OK;
}

/* One chunk of B <= max_batch tokens starting at s->pos. logits_out: [B][V]
 * when all, else [V] for the last token; NULL = none. */
static spqr_status forward_chunk(spqr_session *s, const int32_t *tokens, int32_t B, int all, float *logits_out,
                                 spqr_err *err) {
    const spqr_model *m = s->m;
    const spqr_config *c = &m->cfg;
    const int32_t H = c->hidden_size;
    spqr_status st;

    for (int32_t i = 0; i < B; i++)
        if ((st = linear_row(&m->embed, tokens[i], s->x + (size_t)i * H, err))) return st;

    for (int32_t l = 0; l < c->n_layers; l++)
        if ((st = model_layer_forward(s, l, B, NULL, err))) return st;

    if (logits_out) {
        if (all) {
            for (int32_t i = 0; i < B; i++)
                rmsnorm(s->xb + (size_t)i * H, s->x + (size_t)i * H, m->final_norm, H, c->rms_norm_eps);
            if ((st = linear_matmul(&m->lm_head, s->xb, B, logits_out, &s->lin, err))) return st;
        } else {
            rmsnorm(s->xb, s->x + (size_t)(B - 1) * H, m->final_norm, H, c->rms_norm_eps);
            if ((st = linear_matvec(&m->lm_head, s->xb, logits_out, &s->lin, err))) return st;
        }
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
        spqr_status st = forward_chunk(s, tokens + done, B, all_logits, lo, err);
        if (st) {
            s->pos = start; /* the cache beyond start is garbage now; keep what was valid */
            return st;
        }
        done += B;
    }
    return SPQR_OK;
}
