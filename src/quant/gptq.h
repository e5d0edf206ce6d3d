/* The engine with a Hessian preparation shared between calls: --target-bits'
 * measurement quantizes each linear under 13 settings of the same H, and
 * the settings with the same permutation mode and damping get the same
 * permutation and Cholesky factor (docs/quantize.md, "Bit budgets"). */
#ifndef SPQR_QUANT_GPTQ_H
#define SPQR_QUANT_GPTQ_H

#include <stdint.h>

#include "spqr.h"

/* Steps 1-4 of docs/method.md for one H, as spqr_quantize_layer computes them. */
typedef struct quant_hprep {
    int32_t cols, nt;        /* cols 0: empty */
    spqr_perm_mode mode;
    float percdamp;
    int32_t *perm;           /* [cols] */
    uint8_t *dead;           /* [cols] */
    float *R;                /* [cols][cols] (spqr_hessian_prepare) */
    double *d;               /* [cols] */
    int32_t n_dead;
    double damp;
    int used_double;         /* the Cholesky fell back to double */
} quant_hprep;

/* Fills *hp for H [cols][cols] with p's permutation mode and damping on
 * n_threads engine threads (<= 0: all cores, as spqr_quantize_layer),
 * reusing *hp when it already holds exactly that (then nothing is
 * computed). *hp starts zeroed; spqri_hprep_free releases it. */
spqr_status spqri_hprep_fill(quant_hprep *hp, const float *H, int32_t cols, const spqr_quant_params *p,
                             int32_t n_threads, spqr_err *err);
void spqri_hprep_free(quant_hprep *hp);

/* spqr_quantize_layer with steps 1-4 taken from hp (filled by
 * spqri_hprep_fill for this H, p and n_threads; otherwise refused): the
 * same outputs bit for bit. hp's R is used read-only unless a report is
 * asked for (its error evaluation needs scratch: then a copy). */
spqr_status spqri_quantize_layer_prepared(const float *W, int32_t rows, int32_t cols, const float *H,
                                          const spqr_quant_params *p, int32_t n_threads, const quant_hprep *hp,
                                          const spqr_logger *log, spqr_tensor **out_tensor, float *out_W,
                                          uint8_t *out_mask, spqr_quant_report *report, spqr_err *err);

#endif
