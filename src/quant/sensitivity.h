/* --target-bits' measured sensitivity: how much one linear's quantization
 * error moves the model's output. The mean KL(source || source with one
 * linear replaced) on a few calibration windows, which the allocation
 * divides by that linear's Hessian-weighted error to weigh every setting's
 * error of it (docs/quantize.md, "Bit budgets"). */
#ifndef SPQR_QUANT_SENSITIVITY_H
#define SPQR_QUANT_SENSITIVITY_H

#include <stdint.h>

#include "model/model.h"

typedef struct quant_sens {
    spqr_model m;        /* shallow copy of the source; its own layers array takes the substitutes */
    spqr_layer *layers;  /* [n_layers] */
    spqr_session *s;
    int32_t n_win, T, V;
    int32_t *tok;        /* [n_win][T] */
    float *base;         /* [n_win][T][V] logits of the source model */
    float *act;          /* [n_win][n_layers + 1][T][hidden] its layers' inputs (the last: the final norm's),
                            so a substitute in block l reruns only layers l.. */
    double *base_lse;    /* [n_win][T] their log-sum-exp */
    float *logits;       /* [T][V] */
} quant_sens;

/* Runs the source model on n_win windows of T tokens (window i starts at
 * tok[starts[i]]) and keeps its logits and every layer's input. */
spqr_status spqri_sens_init(quant_sens *z, const spqr_model *src, const int32_t *tok, const int64_t *starts,
                            int32_t n_win, int32_t T, int32_t n_threads, spqr_err *err);

/* *kl = mean over the windows' positions of KL(source || source with linear
 * slot `kind` of block `block` replaced by W), W [rows][cols] fp32 of that
 * linear's shape; block = n_layers means the LM head, or with kind < 0 the
 * token embedding (W [vocab][hidden], its rows looked up). */
spqr_status spqri_sens_kl(quant_sens *z, int32_t block, int32_t kind, const float *W, double *kl, spqr_err *err);

void spqri_sens_free(quant_sens *z);

#endif
