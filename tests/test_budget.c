/* The --target-bits allocator (src/quant/budget.c) against brute force:
 * on random toy instances the dynamic programme's loss equals the least
 * loss over every combination that fits the budget, and with coarse
 * rounding it never exceeds the budget and is at least as good as every
 * combination that fits budget - n_items * q; with a minimum cost, the
 * least loss among the combinations whose cost lies between it and the
 * budget, when there is one. */
#include <sys/stat.h>
#include <unistd.h>

#include "format/spqr_file.h"
#include "format/tensor.h"
#include "quant/budget.h"
#include "quant/pipeline.h"
#include "test_util.h"

/* Size of an archive holding the first n of tensors t (names "a", "bb", "ccc", "dddd"). */
static long archive_size(const char *path, spqr_tensor *const *t, int n) {
    static const char *names[6] = {"a", "bb", "ccc", "dddd", "eeeee", "ffffff"};
    spqr_archive_writer *w = NULL;
    if (spqr_archive_writer_create(path, &w, NULL)) return -1;
    for (int i = 0; i < n; i++)
        if (spqr_archive_writer_add_packed(w, names[i], t[i], NULL)) return -1;
    if (spqr_archive_writer_finish(w, NULL)) return -1;
    spqr_archive_writer_free(w);
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* fp16 statistics, row 0 with row0 outliers, row 1 with 3, a reversed
 * permutation (as test_spqr_file's encodings) */
static spqr_tensor *encoding_tensor(int32_t rows, int32_t cols, int64_t row0) {
    spqr_tensor *t = NULL;
    const int64_t nnz = row0 + 3;
    if (spqr_tensor_alloc(rows, cols, 3, cols, 0, 0, 0, nnz, 1, &t, NULL) != SPQR_OK) return NULL;
    for (size_t i = 0; i < t->codes_bytes; i++) t->codes[i] = (uint8_t)(i * 2654435761u >> 13);
    for (int32_t i = 0; i < t->rows; i++) {
        t->scale_f16[i] = spqr_fp32_to_fp16(0.01f * (float)(i + 1));
        t->zero_f16[i] = spqr_fp32_to_fp16(3.5f);
    }
    t->outlier_rowptr[0] = 0;
    t->outlier_rowptr[1] = (int32_t)row0;
    for (int32_t i = 2; i <= t->rows; i++) t->outlier_rowptr[i] = (int32_t)nnz;
    for (int64_t k = 0; k < row0; k++) t->outlier_col[k] = (uint16_t)k;
    for (int64_t k = 0; k < 3; k++) t->outlier_col[row0 + k] = (uint16_t)(7 * k);
    for (int64_t k = 0; k < nnz; k++) t->outlier_val[k] = spqr_fp32_to_fp16((float)(k % 17) - 8.0f);
    for (int32_t j = 0; j < t->cols; j++) t->perm[j] = t->cols - 1 - j;
    return t;
}

#define MAXI 6
#define MAXO 5

typedef struct {
    int32_t n, no[MAXI];
    uint64_t cost[MAXI * MAXO];
    double err[MAXI * MAXO];
} inst;

/* Least loss over every choice with min_cost <= cost <= budget (INFINITY if none). */
static double brute_range(const inst *p, uint64_t min_cost, uint64_t budget) {
    int32_t idx[MAXI] = {0};
    double best = INFINITY;
    for (;;) {
        uint64_t c = 0;
        double e = 0;
        int32_t off = 0;
        for (int32_t i = 0; i < p->n; i++) {
            c += p->cost[off + idx[i]];
            e += p->err[off + idx[i]];
            off += p->no[i];
        }
        if (c <= budget && c >= min_cost && e < best) best = e;
        int32_t i = 0;
        while (i < p->n && ++idx[i] == p->no[i]) idx[i++] = 0;
        if (i == p->n) return best;
    }
}

static double brute(const inst *p, uint64_t budget) { return brute_range(p, 0, budget); }

static void totals(const inst *p, const int32_t *ch, uint64_t *c, double *e) {
    *c = 0, *e = 0;
    int32_t off = 0;
    for (int32_t i = 0; i < p->n; i++) {
        *c += p->cost[off + ch[i]];
        *e += p->err[off + ch[i]];
        off += p->no[i];
    }
}

int main(void) {
    /* the sensitivity is measured at gptq3's setting (pipeline_budget.c says why) */
    CHECK(spqri_pipe_sens_setting >= 0 && spqri_pipe_sens_setting < spqri_budget_grid_n &&
          !strcmp(spqri_budget_grid[spqri_pipe_sens_setting].label, "w3 g128 f16"));
    test_rng r = {0x9e3779b97f4a7c15ull};
    int exact_ok = 0, met_ok = 0, coarse_ok = 0, infeasible_ok = 0;
    for (int t = 0; t < 300; t++) {
        inst p;
        p.n = 1 + (int32_t)(test_rng_next(&r) % MAXI);
        int32_t off = 0;
        uint64_t lo = 0, hi = 0;
        for (int32_t i = 0; i < p.n; i++) {
            p.no[i] = 1 + (int32_t)(test_rng_next(&r) % MAXO);
            uint64_t mn = UINT64_MAX, mx = 0;
            for (int32_t j = 0; j < p.no[i]; j++) {
                /* not sorted, with dominated options: the allocator may not assume a convex frontier */
                p.cost[off + j] = 1 + test_rng_next(&r) % 60;
                p.err[off + j] = test_rng_uniform(&r) * 10.0;
                mn = p.cost[off + j] < mn ? p.cost[off + j] : mn;
                mx = p.cost[off + j] > mx ? p.cost[off + j] : mx;
            }
            lo += mn, hi += mx;
            off += p.no[i];
        }
        const uint64_t budget = lo + test_rng_next(&r) % (hi - lo + 1);
        int32_t ch[MAXI];
        uint64_t c;
        double e;
        /* exact: units of one bit */
        spqr_err er = {0};
        CHECK(spqri_budget_allocate(p.n, p.no, p.cost, p.err, budget, 0, 1 << 20, ch, &er) == SPQR_OK);
        totals(&p, ch, &c, &e);
        const double best = brute(&p, budget);
        if (c <= budget && fabs(e - best) <= 1e-9) exact_ok++;
        else fprintf(stderr, "instance %d: cost %llu budget %llu loss %.9g brute force %.9g\n", t,
                     (unsigned long long)c, (unsigned long long)budget, e, best);
        /* a budget to be met: the least loss among costs in [min_cost, budget] when any */
        const uint64_t min_cost = budget - test_rng_next(&r) % (budget / 4 + 1);
        CHECK(spqri_budget_allocate(p.n, p.no, p.cost, p.err, budget, min_cost, 1 << 20, ch, &er) == SPQR_OK);
        totals(&p, ch, &c, &e);
        const double in_range = brute_range(&p, min_cost, budget);
        if (isfinite(in_range) ? c >= min_cost && c <= budget && fabs(e - in_range) <= 1e-9
                               : c <= budget && fabs(e - best) <= 1e-9)
            met_ok++;
        else fprintf(stderr, "instance %d: [%llu, %llu]: cost %llu loss %.9g brute force %.9g\n", t,
                     (unsigned long long)min_cost, (unsigned long long)budget, (unsigned long long)c, e, in_range);
        /* coarse: 8 units for the whole budget */
        const int64_t units = 8;
        const uint64_t q = (budget + units - 1) / units;
        if (spqri_budget_allocate(p.n, p.no, p.cost, p.err, budget, 0, units, ch, &er) == SPQR_OK) {
            totals(&p, ch, &c, &e);
            const uint64_t slack = (uint64_t)p.n * q;
            const double bound = budget > slack ? brute(&p, budget - slack) : INFINITY;
            if (c <= budget && e <= bound + 1e-9) coarse_ok++;
            else fprintf(stderr, "coarse %d: cost %llu budget %llu loss %.9g bound %.9g\n", t,
                         (unsigned long long)c, (unsigned long long)budget, e, bound);
        } else {
            /* refused only when nothing fits after rounding up */
            if (!(budget > (uint64_t)p.n * q) || brute(&p, budget - (uint64_t)p.n * q) == INFINITY) coarse_ok++;
        }
        /* below the cheapest allocation: refused with a message naming it */
        if (lo > 0) {
            er.msg[0] = 0;
            if (spqri_budget_allocate(p.n, p.no, p.cost, p.err, lo - 1, 0, 1 << 20, ch, &er) == SPQR_ERR_INVALID_ARG &&
                strstr(er.msg, "smallest allocation"))
                infeasible_ok++;
        }
    }
    CHECK_MSG(exact_ok == 300, "%d of 300 exact allocations equal brute force", exact_ok);
    CHECK_MSG(met_ok == 300, "%d of 300 allocations with a minimum cost equal brute force", met_ok);
    CHECK_MSG(coarse_ok == 300, "%d of 300 coarse allocations within their bound", coarse_ok);
    CHECK_MSG(infeasible_ok == 300, "%d of 300 infeasible budgets refused", infeasible_ok);
    /* the bytes a packed tensor adds to a file are what the budget counts: the
     * writer's own file sizes, for layouts with and without outliers, bilevel
     * and fp16 statistics, odd sizes */
    spqr_tensor *t[6] = {0};
    CHECK(spqr_tensor_random(37, 53, 3, 0.02, 0.1f, 1, &t[0], NULL) == SPQR_OK);
    CHECK(spqr_tensor_random(64, 128, 5, 0.0, 0.1f, 2, &t[1], NULL) == SPQR_OK);
    CHECK(spqr_tensor_random(9, 300, 2, 0.1, 0.1f, 3, &t[2], NULL) == SPQR_OK);
    { /* fp16 statistics, no permutation, no outliers: a grid setting as the pipeline applies it */
        float W[20 * 40], H[40 * 40] = {0};
        for (int i = 0; i < 20 * 40; i++) W[i] = test_rng_normal(&r);
        for (int i = 0; i < 40; i++) H[i * 40 + i] = 1.0f + (float)i;
        spqr_quant_params b0, q;
        spqr_quant_params_default(&b0);
        spqri_budget_setting_apply(&spqri_budget_grid[0], &b0, &q);
        q.perm = SPQR_PERM_IDENTITY;
        CHECK(spqr_quantize_layer(W, 20, 40, H, &q, 1, NULL, &t[3], NULL, NULL, NULL, NULL) == SPQR_OK);
        CHECK(t[3] && !t[3]->perm && t[3]->scale_f16 && t[3]->nnz == 0);
    }
    /* the version-2 encodings: t[0..2] have u8 outlier counts and a u16
     * permutation; t[4] a row of 300 outliers (u16 counts); t[5] 70000
     * columns, a row of 65600 outliers (i32 row pointers, i32 permutation) */
    t[4] = encoding_tensor(3, 400, 300);
    t[5] = encoding_tensor(2, 70000, 65600);
    CHECK(t[4] && t[5]);
    {
        const uint32_t want[6] = {SPQRF_ROWS_CNT8, SPQRF_ROWS_CNT8, SPQRF_ROWS_CNT8, SPQRF_ROWS_CNT8,
                                  SPQRF_ROWS_CNT16, SPQRF_ROWS_PTR32};
        for (int i = 0; i < 6; i++) {
            if (!t[i]) continue;
            spqrf_packed_header h;
            spqrf_packed_header_for(t[i], &h);
            CHECK_MSG(spqrf_rows_encoding_of(h.flags) == want[i], "tensor %d: row encoding %u, want %u", i,
                      spqrf_rows_encoding_of(h.flags), want[i]);
            CHECK_MSG(!t[i]->perm || !!(h.flags & SPQRF_PACKED_PERM_U16) == (t[i]->cols <= 65536),
                      "tensor %d: permutation encoding", i);
        }
    }
    char path[] = "/tmp/spqr_test_budget.XXXXXX";
    const int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    long prev = archive_size(path, t, 0);
    for (int i = 0; i < 6 && t[i]; i++) {
        const long now = archive_size(path, t, i + 1);
        CHECK_MSG(prev > 0 && now - prev == (long)spqrf_packed_file_bytes(t[i], (size_t)i + 1),
                  "tensor %d adds %ld bytes, predicted %llu", i, now - prev,
                  (unsigned long long)spqrf_packed_file_bytes(t[i], (size_t)i + 1));
        prev = now;
    }
    unlink(path);
    for (int i = 0; i < 6; i++) spqr_tensor_free(t[i]);
    /* every grid setting is valid for the library */
    spqr_quant_params base, p;
    spqr_quant_params_default(&base);
    for (int32_t s = 0; s < spqri_budget_grid_n; s++) {
        spqri_budget_setting_apply(&spqri_budget_grid[s], &base, &p);
        CHECK(spqr_quant_params_validate(&p, NULL) == SPQR_OK);
    }
    TEST_SUMMARY();
}
