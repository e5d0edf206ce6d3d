/* Session allocation: KV cache, RoPE tables and scratch, sized up front. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/config.h"
#include "model/session.h"

#define SESSION_MAX_BATCH 256 /* prompt chunk: big enough for sgemm efficiency */

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* Scratch of the linears' calls the forward makes (spqri_model_layer_forward's
 * groups, the LM head), one token and batches of up to B, with n_threads;
 * plus what an fp16 layer of the config's shapes would need, so a caller
 * that swaps a layer's linears for others of the same shapes (the
 * calibration pipeline) stays covered. */
static size_t linear_scratch(const spqr_model *m, int32_t B, int32_t n_threads) {
    const spqr_config *c = &m->cfg;
    const int32_t H = c->hidden_size, I = c->intermediate_size, qd = c->n_heads * c->head_dim;
    const int32_t kvd = c->n_kv_heads * c->head_dim;
    const spqr_linear probe[] = {{SPQR_LINEAR_F16, qd, H, NULL, NULL, NULL}, {SPQR_LINEAR_F16, kvd, H, NULL, NULL, NULL},
                                 {SPQR_LINEAR_F16, H, qd, NULL, NULL, NULL}, {SPQR_LINEAR_F16, I, H, NULL, NULL, NULL},
                                 {SPQR_LINEAR_F16, H, I, NULL, NULL, NULL},  {SPQR_LINEAR_F16, c->vocab_size, H, NULL, NULL, NULL}};
    size_t most = 0;
    for (int32_t n = 1; n <= B; n = n < B ? B : B + 1) {
        for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++) {
            const spqr_linear *one = &probe[i];
            most = max_sz(most, spqri_linear_scratch_size(&one, 1, n, n_threads));
        }
        const spqr_linear *head = &m->lm_head;
        if (m->lm_head.rows > 0) most = max_sz(most, spqri_linear_scratch_size(&head, 1, n, n_threads));
        for (int32_t l = 0; l < c->n_layers && m->layers; l++) {
            const spqr_layer *L = &m->layers[l];
            const spqr_linear *qkv[3] = {&L->wq, &L->wk, &L->wv}, *o = &L->wo, *gu[2] = {&L->w_gate, &L->w_up};
            const spqr_linear *down = &L->w_down;
            most = max_sz(most, spqri_linear_scratch_size(qkv, 3, n, n_threads));
            most = max_sz(most, spqri_linear_scratch_size(&o, 1, n, n_threads));
            most = max_sz(most, spqri_linear_scratch_size(gu, 2, n, n_threads));
            most = max_sz(most, spqri_linear_scratch_size(&down, 1, n, n_threads));
        }
    }
    return most;
}

static float *alloc_floats(size_t n, size_t *total) {
    *total += n * sizeof(float);
    return calloc(n ? n : 1, sizeof(float));
}

spqr_status spqr_kv_type_parse(const char *name, spqr_kv_type *out, spqr_err *err) {
    if (name && out && !strcmp(name, "f32")) *out = SPQR_KV_F32;
    else if (name && out && !strcmp(name, "f16")) *out = SPQR_KV_F16;
    else return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "KV cache type '%s': expected f32 or f16", name ? name : "(null)");
    return SPQR_OK;
}

spqr_status spqr_session_create(const spqr_model *m, int32_t max_ctx, int32_t n_threads, spqr_session **out,
                                spqr_err *err) {
    const spqr_session_opts o = {max_ctx, n_threads, SPQR_KV_F32};
    return spqr_session_create_opts(m, &o, out, err);
}

spqr_status spqr_session_create_opts(const spqr_model *m, const spqr_session_opts *o, spqr_session **out,
                                     spqr_err *err) {
    if (!m || !o || !out) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "session_create: NULL argument");
    *out = NULL;
    const int32_t max_ctx = o->max_ctx, n_threads = o->n_threads;
    if (o->kv_type != SPQR_KV_F32 && o->kv_type != SPQR_KV_F16)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "KV cache type %d is not f32 (0) or f16 (1)", (int)o->kv_type);
    const spqr_config *c = &m->cfg;
    if (max_ctx < 1 || max_ctx > c->max_position_embeddings)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "context %d is outside [1, max_position_embeddings = %d]",
                            max_ctx, c->max_position_embeddings);
    if (n_threads < 1 || n_threads > 1024)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "thread count %d is outside [1, 1024]", n_threads);
    spqr_session *s = calloc(1, sizeof *s);
    if (!s) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    s->m = m;
    s->max_ctx = max_ctx;
    s->n_threads = n_threads;
    s->decode_mode = SESSION_DECODE_TEAM;
    s->team_split_min = SESSION_TEAM_SPLIT_MIN;
    s->max_batch = max_ctx < SESSION_MAX_BATCH ? max_ctx : SESSION_MAX_BATCH;
    const size_t B = (size_t)s->max_batch, H = (size_t)c->hidden_size;
    const size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    const size_t half = (size_t)c->head_dim / 2, I = (size_t)c->intermediate_size;
    size_t total = 0;
    s->kv_f16 = o->kv_type == SPQR_KV_F16;
    const size_t kv_elems = (size_t)c->n_layers * max_ctx * kvd, kv_size = s->kv_f16 ? 2 : 4;
    s->key_cache = calloc(kv_elems ? kv_elems : 1, kv_size);
    s->value_cache = calloc(kv_elems ? kv_elems : 1, kv_size);
    total += 2 * kv_elems * kv_size;
    s->kvw = s->kv_f16 ? alloc_floats((size_t)n_threads * max_ctx * c->head_dim, &total) : NULL;
    s->rope_cos = alloc_floats((size_t)max_ctx * half, &total);
    s->rope_sin = alloc_floats((size_t)max_ctx * half, &total);
    s->x = alloc_floats(B * H, &total);
    s->xb = alloc_floats(B * H, &total);
    s->xb2 = alloc_floats(B * H, &total);
    s->q = alloc_floats(B * qd, &total);
    s->kb = alloc_floats(B * kvd, &total);
    s->vb = alloc_floats(B * kvd, &total);
    s->att = alloc_floats(B * qd, &total);
    s->hb = alloc_floats(B * I, &total);
    s->hb2 = alloc_floats(B * I, &total);
    s->scores = alloc_floats((size_t)n_threads * B * max_ctx, &total);
    const size_t lin_bytes = linear_scratch(m, s->max_batch, n_threads);
    total += lin_bytes;
    spqr_status lst = spqri_linear_ctx_init(&s->lin, n_threads, lin_bytes, err);
    if (lst && lst != SPQR_ERR_NOMEM) { /* SPQR_DENSE_ISA / SPQR_DENSE_GEMM refused: err says why */
        spqr_session_free(s);
        return lst;
    }
    float *inv_freq = malloc(half * sizeof(float));
    if (lst || !s->key_cache || !s->value_cache || (s->kv_f16 && !s->kvw) || !s->rope_cos || !s->rope_sin || !s->x ||
        !s->xb || !s->xb2 || !s->q || !s->kb || !s->vb || !s->att || !s->hb || !s->hb2 || !s->scores || !inv_freq) {
        free(inv_freq);
        spqr_session_free(s);
        return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for a session of %d positions (%.1f MB)", max_ctx,
                            total / 1e6);
    }
    /* As in HF: angle = float(pos) * inv_freq in float32, then cos/sin. */
    spqr_config_rope_inv_freq(c, inv_freq);
    for (int32_t p = 0; p < max_ctx; p++)
        for (size_t i = 0; i < half; i++) {
            float angle = (float)p * inv_freq[i];
            s->rope_cos[(size_t)p * half + i] = (float)cos((double)angle);
            s->rope_sin[(size_t)p * half + i] = (float)sin((double)angle);
        }
    free(inv_freq);
    *out = s;
    return SPQR_OK;
}

void spqr_session_free(spqr_session *s) {
    if (!s) return;
    free(s->key_cache);
    free(s->value_cache);
    free(s->kvw);
    free(s->rope_cos);
    free(s->rope_sin);
    free(s->x);
    free(s->xb);
    free(s->xb2);
    free(s->q);
    free(s->kb);
    free(s->vb);
    free(s->att);
    free(s->hb);
    free(s->hb2);
    free(s->scores);
    spqri_linear_ctx_free(&s->lin);
    free(s);
}

void spqr_session_reset(spqr_session *s) {
    if (s) s->pos = 0;
}

int32_t spqr_session_pos(const spqr_session *s) { return s ? s->pos : 0; }

void spqr_session_rewind(spqr_session *s, int32_t pos) {
    if (s && pos >= 0 && pos < s->pos) s->pos = pos; /* the cache below pos stays valid: attention is causal */
}
