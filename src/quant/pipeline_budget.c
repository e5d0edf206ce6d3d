/* --target-bits inside the pipeline: the measured grid of every linear and
 * its allocation, updated before each linear with what the finished ones
 * really cost, so the file meets the budget although the real pass (on
 * quantized inputs) finds a few more or fewer outliers than the measurement. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "quant/budget.h"
#include "quant/pipeline.h"
#include "quant/sensitivity.h"

/* Units of the allocation's dynamic programme: with n items the rounding
 * costs at most n / 2^17 of the budget (0.001 bits at 4 bits and 40 items;
 * 2^15 left a tiny tied model 0.027 bits short of its budget). */
#define PLAN_UNITS ((int64_t)1 << 17)

spqr_status spqri_pipe_plan_init(pipe_plan *pl, int32_t n_items, int whole_file, spqr_err *err) {
    memset(pl, 0, sizeof *pl);
    pl->n_items = n_items;
    pl->whole_file = whole_file;
    const size_t g = (size_t)spqri_budget_grid_n;
    pl->present = calloc((size_t)n_items, 1);
    pl->done = calloc((size_t)n_items, 1);
    pl->cost = calloc((size_t)n_items * g, sizeof *pl->cost);
    pl->err = calloc((size_t)n_items * g, sizeof *pl->err);
    pl->choice = calloc((size_t)n_items, sizeof *pl->choice);
    pl->sens = malloc((size_t)n_items * sizeof *pl->sens);
    if (!pl->present || !pl->done || !pl->cost || !pl->err || !pl->choice || !pl->sens) {
        spqri_pipe_plan_free(pl);
        return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for the bit allocation");
    }
    for (int32_t i = 0; i < n_items; i++) pl->sens[i] = -1; /* not measured */
    return SPQR_OK;
}

/* w3 g128 f16 (gptq3): an error large enough to measure on a few windows,
 * small enough that the KL is still quadratic in it (tr(dW H dW^T) is). */
const int32_t spqri_pipe_sens_setting = 2;

spqr_status spqri_pipe_plan_sens_init(pipe_plan *pl, const spqr_model *m, const int32_t *tok, const int64_t *starts,
                                      int32_t n_windows, int32_t T, int32_t n_threads, spqr_err *err) {
    pl->sens_ctx = malloc(sizeof *pl->sens_ctx);
    if (!pl->sens_ctx) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    /* two windows suffice: the ratios span orders of magnitude and 2 x 128 tokens
     * measure them as well as 4 x 128 (bench/results/budget_proxy.md) at half the
     * cost, which is most of what --target-bits adds to a run */
    spqr_status st = spqri_sens_init(pl->sens_ctx, m, tok, starts, n_windows < 2 ? n_windows : 2, T < 128 ? T : 128,
                                     n_threads, err);
    if (st) free(pl->sens_ctx), pl->sens_ctx = NULL;
    return st;
}

spqr_status spqri_pipe_plan_sens_measure(pipe_plan *pl, int32_t item, int32_t block, int32_t kind, const float *W,
                                         spqr_err *err) {
    return spqri_sens_kl(pl->sens_ctx, block, kind, W, &pl->sens[item], err); /* the KL until finish */
}

void spqri_pipe_plan_sens_finish(pipe_plan *pl) {
    const size_t g = (size_t)spqri_budget_grid_n;
    for (int32_t i = 0; i < pl->n_items; i++) {
        const double e_ref = pl->err[(size_t)i * g + (size_t)spqri_pipe_sens_setting];
        pl->sens[i] = pl->present[i] && pl->sens[i] > 0 && e_ref > 0 ? pl->sens[i] / e_ref : -1;
    }
    double mx = 0;
    for (int32_t i = 0; i < pl->n_items; i++) mx = pl->sens[i] > mx ? pl->sens[i] : mx;
    for (int32_t i = 0; i < pl->n_items; i++)
        if (pl->sens[i] <= 0) pl->sens[i] = mx > 0 ? mx : 1;
    if (pl->sens_ctx) spqri_sens_free(pl->sens_ctx);
    free(pl->sens_ctx);
    pl->sens_ctx = NULL;
}

void spqri_pipe_plan_free(pipe_plan *pl) {
    free(pl->present);
    free(pl->done);
    free(pl->cost);
    free(pl->err);
    free(pl->choice);
    free(pl->sens);
    if (pl->sens_ctx) spqri_sens_free(pl->sens_ctx);
    free(pl->sens_ctx);
    memset(pl, 0, sizeof *pl);
}

uint64_t spqri_pipe_plan_realized(const pipe_plan *pl, const pipe_layer_record *r) {
    return 8 * (pl->whole_file ? r->file_bytes : r->stored_bytes);
}

/* What an allocation of the n open items costs (cost [n][grid], as allocated). */
static uint64_t allocation_cost(const uint64_t *cost, const int32_t *choice, int32_t n) {
    uint64_t c = 0;
    for (int32_t k = 0; k < n; k++) c += cost[(size_t)k * (size_t)spqri_budget_grid_n + (size_t)choice[k]];
    return c;
}

spqr_status spqri_pipe_plan_update(pipe_plan *pl, const pipe_layer_record *rec, spqr_err *err) {
    const size_t g = (size_t)spqri_budget_grid_n;
    uint64_t spent = 0;
    int32_t n_open = 0;
    for (int32_t i = 0; i < pl->n_items; i++) {
        if (!pl->present[i]) continue;
        if (pl->done[i]) spent += spqri_pipe_plan_realized(pl, &rec[i]);
        else n_open++;
    }
    if (n_open == 0) return SPQR_OK;
    int32_t *n_opts = malloc((size_t)n_open * sizeof *n_opts), *choice = malloc((size_t)n_open * sizeof *choice);
    uint64_t *cost = malloc((size_t)n_open * g * sizeof *cost);
    double *e = malloc((size_t)n_open * g * sizeof *e);
    spqr_status st = SPQR_OK;
    if (!n_opts || !choice || !cost || !e) st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for the bit allocation");
    int32_t j = 0;
    for (int32_t i = 0; !st && i < pl->n_items; i++) {
        if (!pl->present[i] || pl->done[i]) continue;
        n_opts[j] = spqri_budget_grid_n;
        memcpy(cost + (size_t)j * g, pl->cost + (size_t)i * g, g * sizeof *cost);
        for (size_t s = 0; s < g; s++) e[(size_t)j * g + s] = pl->sens[i] * pl->err[(size_t)i * g + s];
        j++;
    }
    /* overspent: the rest gets the cheapest settings (the allocator refuses a zero budget) */
    const uint64_t left = spent < pl->budget ? pl->budget - spent : 0;
    /* the least predicted loss within the last 1/400 of the budget: coarse
     * grids of small models (1-bit steps of a few thousand weights) leave
     * their optimum 0.03 bits per parameter short otherwise */
    if (!st) st = spqri_budget_allocate(n_open, n_opts, cost, e, left, left - left / 400, PLAN_UNITS, choice, err);
    /* short by more than the slack (the last items' steps are coarse, and the
     * metadata's real numbers moved the budget after they were planned): the
     * least loss within the slack on either side, when there is one */
    if (!st && pl->slack > 0 && left > pl->slack && allocation_cost(cost, choice, n_open) + pl->slack < left) {
        int32_t *alt = malloc((size_t)n_open * sizeof *alt);
        spqr_err e2;
        if (!alt) st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for the bit allocation");
        else if (!spqri_budget_allocate(n_open, n_opts, cost, e, left + pl->slack, left - pl->slack, PLAN_UNITS, alt, &e2) &&
                 allocation_cost(cost, alt, n_open) + pl->slack >= left)
            memcpy(choice, alt, (size_t)n_open * sizeof *choice);
        free(alt);
    }
    if (st == SPQR_ERR_INVALID_ARG && spent > 0) {
        for (int32_t k = 0; k < n_open; k++) {
            choice[k] = 0;
            for (int32_t s = 1; s < spqri_budget_grid_n; s++)
                if (cost[(size_t)k * g + s] < cost[(size_t)k * g + choice[k]]) choice[k] = s;
        }
        st = SPQR_OK;
    }
    j = 0;
    for (int32_t i = 0; !st && i < pl->n_items; i++)
        if (pl->present[i] && !pl->done[i]) pl->choice[i] = choice[j++];
    free(n_opts), free(choice), free(cost), free(e);
    return st;
}
