/* The per-layer bit allocator of --target-bits and its grid of settings. */
#include "quant/budget.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* From 2.25 to 8.25 bits per weight (statistics included) before the
 * permutation and row pointers: GPTQ-style groups of 128 or 64 with fp16
 * statistics in natural column order (w3 and w4 g128 are the gptq3 and
 * gptq4 presets, so a uniform preset is one of the allocations), and
 * SpQR-style groups of 16 with 3-bit statistics in act_order, with and
 * without outliers. */
const budget_setting spqri_budget_grid[] = {
    {"w2 g128 f16", 2, 128, 0, 0.0f, 0.01f, 0},
    {"w2 g16 q3", 2, 16, 3, 0.0f, 1.0f, 1},
    {"w3 g128 f16", 3, 128, 0, 0.0f, 0.01f, 0},
    {"w3 g64 f16", 3, 64, 0, 0.0f, 0.01f, 0},
    {"w3 g16 q3", 3, 16, 3, 0.0f, 1.0f, 1},
    {"w3 g16 q3 o0.2", 3, 16, 3, 0.2f, 1.0f, 1},
    {"w4 g128 f16", 4, 128, 0, 0.0f, 0.01f, 0},
    {"w4 g64 f16", 4, 64, 0, 0.0f, 0.01f, 0},
    {"w4 g16 q3", 4, 16, 3, 0.0f, 1.0f, 1},
    {"w5 g128 f16", 5, 128, 0, 0.0f, 0.01f, 0},
    {"w6 g128 f16", 6, 128, 0, 0.0f, 0.01f, 0},
    {"w7 g128 f16", 7, 128, 0, 0.0f, 0.01f, 0},
    {"w8 g128 f16", 8, 128, 0, 0.0f, 0.01f, 0},
};
const int32_t spqri_budget_grid_n = (int32_t)(sizeof spqri_budget_grid / sizeof spqri_budget_grid[0]);

void spqri_budget_setting_apply(const budget_setting *s, const spqr_quant_params *base, spqr_quant_params *p) {
    *p = *base;
    p->wbits = s->wbits;
    p->groupsize = s->groupsize;
    p->qq_scale_bits = p->qq_zero_bits = s->qq_bits;
    p->qq_groupsize = 16;
    p->outlier_threshold = s->tau > 0 ? s->tau : INFINITY;
    p->percdamp = s->percdamp;
    p->perm = s->act_order ? SPQR_PERM_ACT_ORDER : SPQR_PERM_IDENTITY;
    p->gptq = 1;
}

spqr_status spqri_budget_allocate(int32_t n_items, const int32_t *n_opts, const uint64_t *cost, const double *err,
                            uint64_t budget, uint64_t min_cost, int64_t max_units, int32_t *choice, spqr_err *e) {
    if (n_items < 0 || max_units < 1 || (n_items > 0 && (!n_opts || !cost || !err || !choice)))
        return spqr_err_set(e, SPQR_ERR_INVALID_ARG, "spqri_budget_allocate: bad arguments");
    if (n_items == 0) return SPQR_OK;
    uint64_t min_total = 0;
    int64_t n_flat = 0;
    for (int32_t i = 0; i < n_items; i++) {
        if (n_opts[i] < 1 || n_opts[i] > 255)
            return spqr_err_set(e, SPQR_ERR_INVALID_ARG, "spqri_budget_allocate: item %d has %d options", i, n_opts[i]);
        uint64_t mn = UINT64_MAX;
        for (int32_t j = 0; j < n_opts[i]; j++) mn = cost[n_flat + j] < mn ? cost[n_flat + j] : mn;
        min_total += mn;
        n_flat += n_opts[i];
    }
    if (min_total > budget)
        return spqr_err_set(e, SPQR_ERR_INVALID_ARG,
                            "the budget of %llu bits is below the smallest allocation (%llu bits)",
                            (unsigned long long)budget, (unsigned long long)min_total);
    uint64_t q = budget / (uint64_t)max_units + (budget % (uint64_t)max_units ? 1 : 0);
    if (q < 1) q = 1;
    const int64_t cap = (int64_t)(budget / q);
    double *dp = malloc((size_t)(cap + 1) * sizeof *dp), *nx = malloc((size_t)(cap + 1) * sizeof *nx);
    uint8_t *pick = malloc((size_t)n_items * (size_t)(cap + 1));
    if (!dp || !nx || !pick) {
        free(dp), free(nx), free(pick);
        return spqr_err_set(e, SPQR_ERR_NOMEM, "out of memory for the bit allocation");
    }
    /* dp[c]: least loss of the items so far with rounded cost exactly c; kept
     * only within [lo, hi], the sums of their least and largest rounded costs
     * (outside it is infinite): the same minima as over [0, cap] in a fraction
     * of the time (the pipeline allocates before every linear) */
    dp[0] = 0;
    int64_t base = 0, lo = 0, hi = 0;
    for (int32_t i = 0; i < n_items; i++) {
        uint8_t *pk = pick + (size_t)i * (size_t)(cap + 1);
        int64_t nlo = INT64_MAX, nhi = -1;
        for (int32_t j = 0; j < n_opts[i]; j++) {
            const uint64_t cq64 = (cost[base + j] + q - 1) / q;
            if (cq64 > (uint64_t)cap || lo > hi || lo + (int64_t)cq64 > cap) continue;
            const int64_t cq = (int64_t)cq64, c1 = hi + cq < cap ? hi + cq : cap;
            nlo = lo + cq < nlo ? lo + cq : nlo, nhi = c1 > nhi ? c1 : nhi;
        }
        for (int64_t c = nlo; c <= nhi; c++) nx[c] = INFINITY, pk[c] = 0;
        for (int32_t j = 0; j < n_opts[i] && nhi >= 0; j++) {
            const uint64_t cq64 = (cost[base + j] + q - 1) / q;
            if (cq64 > (uint64_t)cap) continue;
            const int64_t cq = (int64_t)cq64, c1 = hi + cq < cap ? hi + cq : cap;
            const double ej = err[base + j];
            for (int64_t c = lo + cq; c <= c1; c++) {
                const double v = dp[c - cq] + ej;
                if (v < nx[c]) nx[c] = v, pk[c] = (uint8_t)j;
            }
        }
        double *t = dp;
        dp = nx, nx = t;
        base += n_opts[i];
        if (nhi < 0) lo = 1, hi = 0; /* nothing reachable: every later span is empty */
        else lo = nlo, hi = nhi;
    }
    /* the least loss at any cost, unless one at a cost of at least min_cost exists */
    int64_t end = -1, end_lo = -1;
    const int64_t lo_units = (int64_t)(min_cost / q);
    for (int64_t c = lo; c <= hi; c++) {
        if (!isfinite(dp[c])) continue;
        if (end < 0 || dp[c] < dp[end]) end = c;
        if (c >= lo_units && (end_lo < 0 || dp[c] < dp[end_lo])) end_lo = c;
    }
    if (end_lo >= 0) end = end_lo;
    spqr_status st = SPQR_OK;
    if (end < 0) {
        st = spqr_err_set(e, SPQR_ERR_INVALID_ARG,
                          "the budget of %llu bits leaves no allocation after rounding to units of %llu bits",
                          (unsigned long long)budget, (unsigned long long)q);
    } else {
        int64_t c = end;
        for (int32_t i = n_items - 1; i >= 0; i--) {
            base -= n_opts[i];
            const int32_t j = pick[(size_t)i * (size_t)(cap + 1) + c];
            choice[i] = j;
            c -= (int64_t)((cost[base + j] + q - 1) / q);
        }
    }
    free(dp), free(nx), free(pick);
    return st;
}
