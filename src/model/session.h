/* Run state of one sequence (llama2.c style): everything is allocated in
 * spqr_session_create, nothing during forward. */
#ifndef SPQR_MODEL_SESSION_H
#define SPQR_MODEL_SESSION_H

#include "model/model.h"

struct spqr_session {
    const spqr_model *m;
    int32_t max_ctx;     /* KV cache capacity in positions */
    int32_t n_threads;
    int32_t pos;         /* tokens already in the cache */
    int32_t max_batch;   /* tokens per forward chunk (sizes the scratch) */
    /* KV cache, fp32: [n_layers][max_ctx][n_kv_heads * head_dim] */
    float *key_cache, *value_cache;
    /* RoPE tables: [max_ctx][head_dim / 2] */
    float *rope_cos, *rope_sin;
    /* scratch, [max_batch][...] */
    float *x;        /* [hidden] residual stream */
    float *xb;       /* [hidden] normed input of a sublayer */
    float *xb2;      /* [hidden] sublayer output */
    float *q;        /* [n_heads * head_dim] */
    float *att;      /* [n_heads * head_dim] attention output */
    float *hb, *hb2; /* [intermediate] gate / up */
    float *scores;   /* [n_threads][max_ctx] attention weights, one row per thread */
};

#endif
