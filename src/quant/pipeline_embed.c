/* The token embedding of a whole-model quantization (pipeline.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "format/spqr_file.h"
#include "model/model.h"
#include "quant/pipeline.h"

spqr_status spqri_pipe_quantize_embed(const spqr_model *m, const spqr_quant_params *q, int32_t n_threads,
                                const spqr_logger *log, spqr_tensor **out, pipe_layer_record *rec, double *seconds,
                                spqr_err *err) {
    const double t0 = spqr_now_s();
    const spqr_linear *e = &m->embed;
    const int32_t rows = e->rows, cols = e->cols;
    float *W = malloc((size_t)rows * cols * sizeof(float));
    float *H = calloc((size_t)cols * cols, sizeof(float));
    if (!W || !H) {
        free(W);
        free(H);
        return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for the %d x %d embedding", rows, cols);
    }
    spqr_status st = SPQR_OK;
    for (int32_t r = 0; r < rows && !st; r++) st = spqri_linear_row(e, r, W + (size_t)r * cols, err);
    for (int32_t j = 0; j < cols; j++) H[(size_t)j * cols + j] = 1.0f;
    spqr_quant_params p = *q;
    p.gptq = 0;
    p.perm = SPQR_PERM_IDENTITY;
    spqr_quant_report rep = {0};
    /* The relative error costs two rows x cols^2 products: skipped (0) on
     * tables where that would rival the quantization itself. */
    const int want_err = (double)rows * cols * cols <= 2e10;
    if (!st)
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
