/* Run state of one sequence (llama2.c style): everything is allocated in
 * spqr_session_create, nothing during forward (tests/test_no_alloc.c
 * checks it): the linears' kernel scratch is the session's too. */
#ifndef SPQR_MODEL_SESSION_H
#define SPQR_MODEL_SESSION_H

#include "model/model.h"

struct spqr_session {
    const spqr_model *m;
    int32_t max_ctx;     /* KV cache capacity in positions */
    int32_t n_threads;
    int32_t pos;         /* tokens already in the cache */
    int32_t max_batch;   /* tokens per forward chunk (sizes the scratch) */
    /* KV cache, fp32 or fp16 (kv_f16): [n_layers][n_kv_heads][max_ctx][head_dim] */
    void *key_cache, *value_cache;
    int kv_f16;
    float *kvw;      /* kv_f16: [n_threads][max_ctx][head_dim], one head's keys or values widened */
    float *kb, *vb;  /* [max_batch][n_kv_heads * head_dim] new keys / values before the cache */
    /* RoPE tables: [max_ctx][head_dim / 2] */
    float *rope_cos, *rope_sin;
    /* scratch, [max_batch][...] */
    float *x;        /* [hidden] residual stream */
    float *xb;       /* [hidden] normed input of a sublayer */
    float *xb2;      /* [hidden] sublayer output */
    float *q;        /* [n_heads * head_dim] */
    float *att;      /* [n_heads * head_dim] attention output */
    float *hb, *hb2; /* [intermediate] gate / up */
    float *scores;   /* [n_threads][max_batch][max_ctx] attention weights, one block per thread */
    linear_ctx lin;  /* threads + kernel scratch of every linear call, sized for the model's linears */
    int decode_mode; /* SESSION_DECODE_*: how one token uses n_threads > 1 (forward.c) */
    int64_t team_split_min; /* a team splits a step of at least this many multiply-adds (tests: 0) */
};

/* Below this many multiply-adds a step of a decode team (a product, or
 * attention) is the leader's alone: splitting it costs two barriers, and
 * on a loaded machine every barrier waits for a thread that may have lost
 * its core (the default model's fp16 decode with two CPU hogs on the two
 * cores: 4x slower with its small products split;
 * bench/results/decode-team-2026-12-07.md). */
#define SESSION_TEAM_SPLIT_MIN ((int64_t)1 << 18)

/* TEAM (the default): one parallel region runs a token's layers and head,
 * the threads meeting at spinning barriers; REGIONS: a region per product,
 * as before 2026-12-07 (tests compare the two: the same bits). TEAM measured
 * 1.1-1.9x REGIONS per token on the default model and 0.93-1.07x on a
 * 7B-shaped .spqr (bench/results/decode-team-2026-12-07.md). */
enum { SESSION_DECODE_TEAM = 0, SESSION_DECODE_REGIONS = 1 };

/* Observer of one layer's linear inputs (calibration): X [B][cols] is the
 * input of group (q,k,v share attn-normed x; gate,up share ffn-normed x; o
 * gets the attention output; down gets act(gate)*up; model/arch.h). Return non-zero to
 * stop the layer right there. */
typedef struct model_layer_hooks {
    int (*fn)(void *user, int32_t layer, int32_t group, const float *X, int32_t B, int32_t cols);
    void *user;
} model_layer_hooks;

/* Runs layer l on the B <= max_batch rows of s->x (positions s->pos...);
 * the KV cache of layer l is written, s->pos is not advanced. */
spqr_status spqri_model_layer_forward(spqr_session *s, int32_t l, int32_t B, const model_layer_hooks *hooks,
                                spqr_err *err);

/* spqr_session_forward with every position's logits ([n][V]), from layer l0
 * on: xin [n][hidden] is layer l0's input (l0 = n_layers: the final norm's)
 * at positions s->pos..; keep, when non-NULL, [n_layers + 1][n][hidden]
 * gets each layer l >= l0's input (the last: the final norm's). Chunked as spqr_session_forward, so with the
 * same layers its logits are bit-identical to a run from the tokens. */
spqr_status spqri_session_forward_from(spqr_session *s, int32_t l0, const float *xin, int32_t n, float *keep,
                                       float *logits, spqr_err *err);

#endif
