/* Measured output sensitivity of one linear (quant/sensitivity.h). */
#include "quant/sensitivity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/session.h"

/* Log of the sum of exp over one row of V logits, in double. */
static double log_sum_exp(const float *r, int32_t V) {
    float mx = r[0];
    for (int32_t v = 1; v < V; v++) mx = r[v] > mx ? r[v] : mx;
    double s = 0;
    for (int32_t v = 0; v < V; v++) s += exp((double)r[v] - mx);
    return mx + log(s);
}

spqr_status spqri_sens_init(quant_sens *z, const spqr_model *src, const int32_t *tok, const int64_t *starts,
                            int32_t n_win, int32_t T, int32_t n_threads, spqr_err *err) {
    memset(z, 0, sizeof *z);
    const int32_t L = src->cfg.n_layers, V = src->cfg.vocab_size;
    z->m = *src;
    z->n_win = n_win, z->T = T, z->V = V;
    z->layers = malloc((size_t)L * sizeof *z->layers);
    z->tok = malloc((size_t)n_win * T * sizeof *z->tok);
    z->base = malloc((size_t)n_win * T * V * sizeof *z->base);
    z->logits = malloc((size_t)T * V * sizeof *z->logits);
    z->base_lse = malloc((size_t)n_win * T * sizeof *z->base_lse);
    const size_t per_win = ((size_t)L + 1) * T * src->cfg.hidden_size;
    z->act = malloc((size_t)n_win * per_win * sizeof *z->act);
    if (!z->layers || !z->tok || !z->base || !z->logits || !z->base_lse || !z->act) {
        spqri_sens_free(z);
        return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for the sensitivity windows");
    }
    memcpy(z->layers, src->layers, (size_t)L * sizeof *z->layers);
    z->m.layers = z->layers;
    for (int32_t i = 0; i < n_win; i++) memcpy(z->tok + (size_t)i * T, tok + starts[i], (size_t)T * sizeof *tok);
    spqr_status st = spqr_session_create(&z->m, T, n_threads, &z->s, err);
    const int32_t Hd = src->cfg.hidden_size;
    for (int32_t i = 0; i < n_win && !st; i++) {
        float *b = z->base + (size_t)i * T * V, *a = z->act + (size_t)i * per_win;
        for (int32_t t = 0; t < T && !st; t++)
            st = spqri_model_embed(src, z->tok[(size_t)i * T + t], a + (size_t)t * Hd, err);
        spqr_session_reset(z->s);
        if (!st && !(st = spqri_session_forward_from(z->s, 0, a, T, a, b, err)))
            for (int32_t t = 0; t < T; t++) z->base_lse[(size_t)i * T + t] = log_sum_exp(b + (size_t)t * V, V);
    }
    if (st) spqri_sens_free(z);
    return st;
}

spqr_status spqri_sens_kl(quant_sens *z, int32_t block, int32_t kind, const float *W, double *kl, spqr_err *err) {
    const int32_t L = z->m.cfg.n_layers, T = z->T, V = z->V;
    spqr_linear *slot = block == L ? (kind < 0 ? &z->m.embed : &z->m.lm_head) : &z->layers[block].lin[kind];
    const spqr_linear keep = *slot;
    *slot = (spqr_linear){SPQR_LINEAR_F32, keep.rows, keep.cols, W, NULL, NULL};
    spqr_status st = SPQR_OK;
    double sum = 0;
    /* a substitute in block l leaves layers 0..l-1 as they were: rerun from l's stored inputs */
    const size_t layer_rows = (size_t)T * z->m.cfg.hidden_size, per_win = ((size_t)L + 1) * layer_rows;
    for (int32_t i = 0; i < z->n_win && !st; i++) {
        spqr_session_reset(z->s);
        st = kind < 0 ? spqr_session_forward(z->s, z->tok + (size_t)i * T, T, 1, z->logits, err)
                      : spqri_session_forward_from(z->s, block, z->act + i * per_win + (size_t)block * layer_rows, T,
                                                   NULL, z->logits, err);
        if (st) break;
        /* from the logits in double: fp32 log-probabilities would round the small differences away */
        for (int32_t t = 0; t < T; t++) {
            const float *b = z->base + ((size_t)i * T + t) * V, *q = z->logits + (size_t)t * V;
            const double lb = z->base_lse[(size_t)i * T + t], lq = log_sum_exp(q, V);
            double row = 0;
            for (int32_t v = 0; v < V; v++) {
                const double pb = (double)b[v] - lb;
                row += exp(pb) * (pb - ((double)q[v] - lq));
            }
            sum += row;
        }
    }
    *slot = keep;
    *kl = st ? 0 : sum / ((double)z->n_win * T);
    return st;
}

void spqri_sens_free(quant_sens *z) {
    if (z->s) spqr_session_free(z->s);
    free(z->layers), free(z->tok), free(z->base), free(z->logits), free(z->base_lse), free(z->act);
    memset(z, 0, sizeof *z);
}
