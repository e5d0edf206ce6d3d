/* --target-bits' measured sensitivity (quant/sensitivity.h) on the tiny GQA
 * fixture:
 *  - the source's own weights in place of a linear give KL 0, and the
 *    slot is restored after each call (KL 0 again after a perturbed one);
 *  - a perturbed LM head gives the KL that this test computes itself from
 *    the logits of a separately built model copy (its own log-softmax and
 *    sum over windows and positions);
 *  - for a small perturbation the KL is quadratic in its size (x2 -> x4),
 *    the regime in which KL / tr(dW H dW^T) is one number per linear. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/session.h"
#include "quant/sensitivity.h"
#include "spqr.h"
#include "test_util.h"

static float *weights(const spqr_linear *lin) {
    float *W = malloc((size_t)lin->rows * lin->cols * sizeof *W);
    spqr_err err;
    for (int32_t r = 0; W && r < lin->rows; r++)
        if (spqri_linear_row(lin, r, W + (size_t)r * lin->cols, &err)) { free(W); return NULL; }
    return W;
}

/* W + eps * a fixed pseudo-random pattern scaled to W's rms */
static float *perturbed(const float *W, size_t n, double eps) {
    float *P = malloc(n * sizeof *P);
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)W[i] * W[i];
    const double rms = sqrt(ss / (double)n);
    uint32_t s = 12345u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        P[i] = W[i] + (float)(eps * rms * (((double)(s >> 8) / 16777216.0) * 2 - 1));
    }
    return P;
}

/* Mean KL(src || m2) over the windows, from full logits of both (long double sums). */
static double kl_reference(const spqr_model *src, const spqr_model *m2, const int32_t *tok, int32_t n_win, int32_t T) {
    const int32_t V = src->cfg.vocab_size;
    float *a = malloc((size_t)T * V * sizeof *a), *b = malloc((size_t)T * V * sizeof *b);
    spqr_session *sa = NULL, *sb = NULL;
    spqr_err err;
    CHECK(spqr_session_create(src, T, 1, &sa, &err) == SPQR_OK);
    CHECK(spqr_session_create(m2, T, 1, &sb, &err) == SPQR_OK);
    long double tot = 0;
    for (int32_t w = 0; w < n_win && sa && sb; w++) {
        spqr_session_reset(sa), spqr_session_reset(sb);
        CHECK(spqr_session_forward(sa, tok + (size_t)w * T, T, 1, a, &err) == SPQR_OK);
        CHECK(spqr_session_forward(sb, tok + (size_t)w * T, T, 1, b, &err) == SPQR_OK);
        for (int32_t t = 0; t < T; t++) {
            const float *x = a + (size_t)t * V, *y = b + (size_t)t * V;
            long double mx = x[0], my = y[0], zx = 0, zy = 0;
            for (int32_t v = 1; v < V; v++) mx = x[v] > mx ? x[v] : mx, my = y[v] > my ? y[v] : my;
            for (int32_t v = 0; v < V; v++) zx += expl(x[v] - mx), zy += expl(y[v] - my);
            for (int32_t v = 0; v < V; v++) {
                const long double lp = x[v] - mx - logl(zx), lq = y[v] - my - logl(zy);
                tot += expl(lp) * (lp - lq);
            }
        }
    }
    spqr_session_free(sa), spqr_session_free(sb);
    free(a), free(b);
    return (double)(tot / ((long double)n_win * T));
}

int main(int argc, char **argv) {
    const char *fix = argc > 1 ? argv[1] : "tests/fixtures";
    char path[512];
    setenv("SPQR_KERNEL", "exact", 1);
    snprintf(path, sizeof path, "%s/tiny_gqa", fix);
    spqr_model *m = NULL;
    spqr_err err = {0};
    CHECK(spqr_model_load(path, NULL, &m, &err) == SPQR_OK);
    if (!m) TEST_SUMMARY();
    const int32_t V = m->cfg.vocab_size, L = m->cfg.n_layers, T = 20, n_win = 2;
    /* the windows sit at offsets 3 and 50 of a pseudo-random token stream */
    int32_t stream[80];
    uint32_t s = 99u;
    for (int i = 0; i < 80; i++) s = s * 1664525u + 1013904223u, stream[i] = (int32_t)((s >> 8) % (uint32_t)V);
    const int64_t starts[2] = {3, 50};
    int32_t tok[2 * 20];
    memcpy(tok, stream + 3, T * sizeof *tok), memcpy(tok + T, stream + 50, T * sizeof *tok);

    quant_sens z;
    CHECK(spqri_sens_init(&z, m, stream, starts, n_win, T, 2, &err) == SPQR_OK);

    /* own weights: KL 0 (the fp32 copy of fp16 values multiplies the same) */
    const spqr_linear *down = &m->layers[L - 1].w_down;
    float *Wd = weights(down), *Wh = weights(&m->lm_head);
    CHECK(Wd && Wh);
    double kl = -1;
    CHECK(spqri_sens_kl(&z, L - 1, ARCH_LIN_DOWN, Wd, &kl, &err) == SPQR_OK);
    CHECK_MSG(fabs(kl) < 1e-9, "own down_proj weights: KL %g", kl);

    /* perturbed head: against the reference computed here */
    const size_t nh = (size_t)m->lm_head.rows * m->lm_head.cols;
    float *Ph = perturbed(Wh, nh, 0.05);
    CHECK(spqri_sens_kl(&z, L, 0, Ph, &kl, &err) == SPQR_OK);
    spqr_model m2 = *m;
    m2.lm_head = (spqr_linear){SPQR_LINEAR_F32, m->lm_head.rows, m->lm_head.cols, Ph, NULL, NULL};
    const double ref = kl_reference(m, &m2, tok, n_win, T);
    CHECK_MSG(ref > 0 && fabs(kl - ref) <= 1e-5 * ref + 1e-12, "head KL %.9g, reference %.9g", kl, ref);
    /* the head slot was restored: its own weights give 0 again */
    CHECK(spqri_sens_kl(&z, L, 0, Wh, &kl, &err) == SPQR_OK);
    CHECK_MSG(fabs(kl) < 1e-9, "head restored: KL %g", kl);

    /* perturbed token embedding (kind < 0): against the reference computed here, then restored */
    float *We = weights(&m->embed);
    CHECK(We);
    const size_t ne = (size_t)m->embed.rows * m->embed.cols;
    float *Pe = perturbed(We, ne, 0.05);
    CHECK(spqri_sens_kl(&z, L, -1, Pe, &kl, &err) == SPQR_OK);
    spqr_model m3 = *m;
    m3.embed = (spqr_linear){SPQR_LINEAR_F32, m->embed.rows, m->embed.cols, Pe, NULL, NULL};
    const double ref_e = kl_reference(m, &m3, tok, n_win, T);
    CHECK_MSG(ref_e > 0 && fabs(kl - ref_e) <= 1e-5 * ref_e + 1e-12, "embedding KL %.9g, reference %.9g", kl, ref_e);
    CHECK(spqri_sens_kl(&z, L, -1, We, &kl, &err) == SPQR_OK);
    CHECK_MSG(fabs(kl) < 1e-9, "embedding restored: KL %g", kl);
    free(We), free(Pe);

    /* quadratic in a small perturbation of a block linear */
    const size_t nd = (size_t)down->rows * down->cols;
    float *P1 = perturbed(Wd, nd, 0.01), *P2 = perturbed(Wd, nd, 0.02);
    double k1 = 0, k2 = 0;
    CHECK(spqri_sens_kl(&z, L - 1, ARCH_LIN_DOWN, P1, &k1, &err) == SPQR_OK);
    CHECK(spqri_sens_kl(&z, L - 1, ARCH_LIN_DOWN, P2, &k2, &err) == SPQR_OK);
    CHECK_MSG(k1 > 0 && fabs(k2 / k1 - 4.0) < 0.2, "KL at 1%%: %g, at 2%%: %g (ratio %g, expected ~4)", k1, k2, k2 / k1);
    /* the block slot was restored too */
    CHECK(spqri_sens_kl(&z, L - 1, ARCH_LIN_DOWN, Wd, &kl, &err) == SPQR_OK);
    CHECK_MSG(fabs(kl) < 1e-9, "down_proj restored: KL %g", kl);

    spqri_sens_free(&z);
    free(Wd), free(Wh), free(Ph), free(P1), free(P2);
    spqr_model_free(m);
    TEST_SUMMARY();
}
