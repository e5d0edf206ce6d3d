/* --target-bits: choosing one quantization setting per linear so that the
 * file meets a bit budget with the least predicted loss (docs/quantize.md,
 * "Bit budgets"). The allocator is a pure function; the grid of settings it
 * chooses from is a const table. */
#ifndef SPQR_QUANT_BUDGET_H
#define SPQR_QUANT_BUDGET_H

#include <stdint.h>

#include "spqr.h"

/* One setting of the grid: the knobs it changes, and a short label for the
 * report, spqr info and the metadata ("w3 g16 q3", "w4 g128 f16 o0.2"). */
typedef struct budget_setting {
    const char *label;
    int32_t wbits, groupsize, qq_bits; /* qq_bits 0 = fp16 statistics */
    float tau;                         /* 0 = no outliers */
    float percdamp;
    int32_t act_order;                 /* 0: identity (no stored permutation) */
} budget_setting;

extern const budget_setting spqri_budget_grid[];
extern const int32_t spqri_budget_grid_n;

/* p = base with setting s applied (statistics groups of 16 rows, GPTQ). */
void spqri_budget_setting_apply(const budget_setting *s, const spqr_quant_params *base, spqr_quant_params *p);

/* Multiple-choice knapsack: item i has n_opts[i] options, option j of item i
 * at flat index off[i] + j (off[i] = n_opts[0] + ... + n_opts[i-1]) costs
 * cost[] bits and has predicted loss err[]. Chooses one option per item with
 * sum cost <= budget minimising sum err, by dynamic programming over costs
 * rounded up to units of q = ceil(budget / max_units) bits: exact when q = 1,
 * otherwise optimal among the choices whose cost is <= budget - n_items * q
 * (rounding never lets the true cost exceed the budget). With min_cost > 0
 * the least loss among the choices whose rounded cost is at least min_cost
 * (a budget to be met, not only kept), when any exists, else as with 0.
 * choice[i] gets the option index within item i. SPQR_ERR_INVALID_ARG when
 * even the cheapest options exceed the budget (message names their total),
 * SPQR_ERR_NOMEM. */
spqr_status spqri_budget_allocate(int32_t n_items, const int32_t *n_opts, const uint64_t *cost, const double *err,
                            uint64_t budget, uint64_t min_cost, int64_t max_units, int32_t *choice, spqr_err *e);

#endif
