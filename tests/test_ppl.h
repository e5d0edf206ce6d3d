/* Perplexity of a model over n_win consecutive windows of ctx tokens of ids
 * (every token but a window's first scored), by the public session API: the
 * tests' one copy of the scoring loop (src/cli/cmd_perplexity.c is the
 * product's). NAN when a session or forward fails. */
#ifndef SPQR_TESTS_TEST_PPL_H
#define SPQR_TESTS_TEST_PPL_H

#include <math.h>
#include <stdlib.h>

#include "spqr.h"

static inline double test_perplexity(const spqr_model *m, const int32_t *ids, int32_t n_win, int32_t ctx) {
    spqr_session *s = NULL;
    spqr_err err;
    if (spqr_session_create(m, ctx, 2, &s, &err)) return NAN;
    const int32_t V = spqr_model_config(m)->vocab_size;
    float *lg = malloc((size_t)ctx * V * sizeof(float));
    double nll = 0;
    int64_t cnt = 0;
    for (int32_t w = 0; w < n_win && lg; w++) {
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
    return cnt ? exp(nll / (double)cnt) : NAN;
}

#endif
