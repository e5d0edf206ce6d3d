/* The token embedding of a whole-model quantization (pipeline.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "format/spqr_file.h"
#include "model/model.h"
#include "quant/budget.h"
#include "quant/pipeline.h"

/* The embedding's knobs from a run's or a setting's: round-to-nearest in
 * natural order (no calibration input weighs a looked-up row's error). */
static void embed_params(const spqr_quant_params *q, spqr_quant_params *p) {
    *p = *q;
    p->gptq = 0;
    p->perm = SPQR_PERM_IDENTITY;
}

/* The embedding in fp32 and an identity Hessian for it (both the caller's to free). */
static spqr_status embed_load(const spqr_model *m, float **W, float **H, spqr_err *err) {
    const spqr_linear *e = &m->embed;
    const int32_t rows = e->rows, cols = e->cols;
    *W = malloc((size_t)rows * cols * sizeof(float));
    *H = calloc((size_t)cols * cols, sizeof(float));
    if (!*W || !*H) {
        free(*W), free(*H);
        *W = *H = NULL;
        return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for the %d x %d embedding", rows, cols);
    }
    spqr_status st = SPQR_OK;
    for (int32_t r = 0; r < rows && !st; r++) st = spqri_linear_row(e, r, *W + (size_t)r * cols, err);
    for (int32_t j = 0; j < cols; j++) (*H)[(size_t)j * cols + j] = 1.0f;
    if (st) free(*W), free(*H), *W = *H = NULL;
    return st;
}

spqr_status spqri_pipe_measure_embed(const spqr_model *m, pipe_plan *pl, int32_t item, const int32_t *tok,
                                     const int64_t *starts, int32_t n_win, int32_t T, const spqr_quant_params *base,
                                     int32_t n_threads, const spqr_logger *log, spqr_tensor **ref, spqr_err *err) {
    const int32_t rows = m->embed.rows, cols = m->embed.cols;
    float *W = NULL, *H = NULL;
    spqr_status st = embed_load(m, &W, &H, err);
    if (st) return st;
    float *D = malloc((size_t)rows * cols * sizeof(float));
    double *wt = malloc((size_t)rows * sizeof *wt);
    if (!D || !wt) st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for the %d x %d embedding", rows, cols);
    /* a row's weight: 1 + how often its token occurs in the calibration windows */
    for (int32_t r = 0; !st && r < rows; r++) wt[r] = 1.0;
    for (int32_t i = 0; !st && i < n_win; i++)
        for (int32_t t = 0; t < T; t++) {
            const int32_t v = tok[starts[i] + t];
            if (v >= 0 && v < rows) wt[v] += 1.0;
        }
    const size_t g = (size_t)spqri_budget_grid_n;
    for (int32_t s = 0; s < spqri_budget_grid_n && !st; s++) {
        spqr_quant_params q0, q;
        spqri_budget_setting_apply(&spqri_budget_grid[s], base, &q0);
        embed_params(&q0, &q);
        spqr_tensor *t = NULL;
        st = spqr_quantize_layer(W, rows, cols, H, &q, n_threads, log, &t, D, NULL, NULL, err);
        if (st) { st = spqr_err_prefix(err, st, "%s (%s)", ARCH_EMBED_NAME, spqri_budget_grid[s].label); break; }
        pl->cost[(size_t)item * g + s] = 8 * spqrf_packed_file_bytes(t, strlen(ARCH_EMBED_NAME));
        if (s == spqri_pipe_sens_setting) {
            st = spqri_pipe_plan_sens_measure(pl, item, m->cfg.n_layers, -1, D, err);
            if (!*ref) *ref = t, t = NULL;
        }
        spqr_tensor_free(t);
        double e = 0;
        for (int32_t r = 0; r < rows; r++) {
            double rs = 0;
            for (int32_t c = 0; c < cols; c++) {
                const double d = (double)W[(size_t)r * cols + c] - D[(size_t)r * cols + c];
                rs += d * d;
            }
            e += wt[r] * rs;
        }
        pl->err[(size_t)item * g + s] = e;
    }
    free(W), free(H), free(D), free(wt);
    pl->present[item] = 1;
    return st;
}

spqr_status spqri_pipe_quantize_embed(const spqr_model *m, const spqr_quant_params *q, int32_t n_threads,
                                const spqr_logger *log, spqr_tensor **out, pipe_layer_record *rec, double *seconds,
                                spqr_err *err) {
    const double t0 = spqr_now_s();
    const int32_t rows = m->embed.rows, cols = m->embed.cols;
    float *W = NULL, *H = NULL;
    spqr_status st = embed_load(m, &W, &H, err);
    if (st) return spqr_err_prefix(err, st, "%s", ARCH_EMBED_NAME);
    spqr_quant_params p;
    embed_params(q, &p);
    spqr_quant_report rep = {0};
    /* The relative error costs two rows x cols^2 products: skipped (0) on
     * tables where that would rival the quantization itself. */
    const int want_err = (double)rows * cols * cols <= 2e10;
    st = spqr_quantize_layer(W, rows, cols, H, &p, n_threads, log, out, NULL, NULL, want_err ? &rep : NULL, err);
    free(W);
    free(H);
    if (st) return spqr_err_prefix(err, st, "%s", ARCH_EMBED_NAME);
    *seconds = spqr_now_s() - t0;
    spqr_size_report sz;
    spqr_tensor_size(*out, &sz);
    *rec = (pipe_layer_record){m->cfg.n_layers, PIPE_EMBED_KIND, rows, cols, (*out)->nnz, rep.rel_hessian_error,
                               sz.formula_bits_per_param, sz.stored_bits_per_param, sz.stored_bytes,
                               spqrf_packed_file_bytes(*out, strlen(ARCH_EMBED_NAME)), -1};
    return SPQR_OK;
}

void spqri_pipe_summarize_embed(const pipe_layer_record *rec, double seconds, spqr_quantize_summary *s) {
    spqr_quantize_kind_summary *k = &s->embed;
    snprintf(k->name, sizeof k->name, "embed_tokens");
    if (rec->rows == 0) return;
    k->seconds = seconds;
    const int64_t np = (int64_t)rec->rows * rec->cols;
    k->count = 1;
    k->params = np;
    k->outliers = rec->outliers;
    k->rel_err_mean = k->rel_err_max = rec->rel_err;
    k->formula_bits = rec->formula_bits;
    k->stored_bits = 8.0 * (double)rec->stored_bytes / (double)np;
}

void spqri_pipe_summarize_dense(const spqr_model *m, const spqr_quantize_options *o, spqr_quantize_summary *s) {
    const spqr_config *c = &m->cfg;
    const int tied = c->tie_word_embeddings != 0;
    const int64_t VH = (int64_t)c->vocab_size * c->hidden_size, norms = (int64_t)m->n_norm_floats;
    /* 16-bit matrices left: the embedding unless quantized, the head unless
     * tied or quantized */
    const int embed_dense = !o->quantize_embed, head_dense = !tied && !o->quantize_head;
    const int n_dense_mat = embed_dense + head_dense;
    s->dense_params = VH * n_dense_mat + norms;
    s->dense_bytes = (uint64_t)VH * (m->embed.kind == SPQR_LINEAR_F32 ? 4 : 2) * n_dense_mat + (uint64_t)norms * 4;
    const int64_t blocks = s->quantized_params - (o->quantize_head ? VH : 0);
    s->model_params = blocks + VH * (tied ? 1 : 2) + norms;
    s->file_bits = s->model_params ? 8.0 * (double)s->file_bytes / (double)s->model_params : 0;
}
