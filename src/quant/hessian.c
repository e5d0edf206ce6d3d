/* Permutation, damping, inverse Cholesky factor, relative error. */
#include "quant/hessian.h"

#include "core/error.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>

typedef struct { double key; int32_t idx; } perm_item;

static int perm_cmp(const void *a, const void *b) {
    const perm_item *x = a, *y = b;
    if (x->key != y->key) return x->key > y->key ? -1 : 1; /* descending diag */
    return (x->idx > y->idx) - (x->idx < y->idx);           /* ties: lower index first */
}

spqr_status spqr_perm_compute(const float *H, int32_t cols, spqr_perm_mode mode, int32_t *perm, spqr_err *err) {
    for (int32_t j = 0; j < cols; j++) perm[j] = j;
    if (mode != SPQR_PERM_ACT_ORDER) return SPQR_OK;
    perm_item *it = malloc((size_t)cols * sizeof *it);
    if (!it) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory sorting %d columns", cols);
    for (int32_t j = 0; j < cols; j++) {
        it[j].key = (double)H[(size_t)j * (size_t)cols + (size_t)j];
        it[j].idx = j;
    }
    qsort(it, (size_t)cols, sizeof *it, perm_cmp);
    for (int32_t j = 0; j < cols; j++) perm[j] = it[j].idx;
    free(it);
    return SPQR_OK;
}

spqr_status spqr_hessian_prepare(const float *H, int32_t cols, const int32_t *perm, float percdamp,
                                 int32_t n_threads, double *U, double *d, uint8_t *dead, int32_t *n_dead,
                                 spqr_err *err) {
    const size_t n = (size_t)cols;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int32_t i = 0; i < cols; i++) {
        const float *hrow = H + (size_t)perm[i] * n;
        double *urow = U + (size_t)i * n;
        for (int32_t j = 0; j < cols; j++) urow[j] = (double)hrow[perm[j]];
    }
    double abs_sum = 0.0;
    int32_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        double h = U[i * n + i];
        dead[i] = h == 0.0;
        nd += dead[i];
        abs_sum += fabs(h);
    }
    *n_dead = nd;
    /* Reference order: damping first (the mean includes dead columns as 0), then the dead fix. */
    const double damp = (double)percdamp * (abs_sum / (double)n);
    for (size_t i = 0; i < n; i++) {
        if (percdamp > 0) U[i * n + i] += damp;
        if (dead[i]) U[i * n + i] = 1.0;
    }
    /* The buffer is symmetric, so its column-major view is the same matrix:
     * column-major 'L' routines leave row-major upper triangles. */
    lapack_int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', cols, U, cols);
    if (info > 0)
        return spqr_err_set(err, SPQR_ERR_NUMERIC,
                            "Hessian is not positive definite after damping (leading minor %d of %d; "
                            "raise percdamp)", (int)info, cols);
    if (info < 0) return spqr_err_set(err, SPQR_ERR_NUMERIC, "Cholesky of the Hessian failed (info %d)", (int)info);
    info = LAPACKE_dpotri(LAPACK_COL_MAJOR, 'L', cols, U, cols);
    if (info != 0)
        return spqr_err_set(err, SPQR_ERR_NUMERIC, "inverting the damped Hessian failed (info %d)", (int)info);
    /* inverse is in the row-major upper triangle: mirror it to the lower one */
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 64)
    for (int32_t i = 0; i < cols; i++)
        for (int32_t j = i + 1; j < cols; j++) U[(size_t)j * n + (size_t)i] = U[(size_t)i * n + (size_t)j];
    info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', cols, U, cols);
    if (info != 0)
        return spqr_err_set(err, SPQR_ERR_NUMERIC,
                            "inverse Hessian is not positive definite (info %d): Hessian too ill-conditioned, "
                            "raise percdamp", (int)info);
    for (size_t j = 0; j < n; j++) d[j] = U[j * n + j];
    return SPQR_OK;
}

/* <H_perm, S> over the upper triangle of the symmetric S = A^T A. */
static double trace_upper(const float *H, const double *S, int32_t cols, const int32_t *perm) {
    const size_t n = (size_t)cols;
    double tr = 0.0;
    for (size_t i = 0; i < n; i++) {
        const float *hi = H + (size_t)perm[i] * n;
        const double *si = S + i * n;
        double acc = (double)hi[perm[i]] * si[i];
        for (size_t j = i + 1; j < n; j++)
            acc += ((double)hi[perm[j]] + (double)H[(size_t)perm[j] * n + (size_t)perm[i]]) * si[j];
        tr += acc;
    }
    return tr;
}

double spqr_rel_hessian_error(const float *W, const float *H, int32_t rows, int32_t cols, const int32_t *perm,
                              double *Wp_hat, double *S, int32_t n_threads) {
    const size_t n = (size_t)cols;
    double *A = Wp_hat;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int32_t r = 0; r < rows; r++) {
        const float *w = W + (size_t)r * n;
        double *a = A + (size_t)r * n;
        for (size_t j = 0; j < n; j++) a[j] -= (double)w[perm[j]];
    }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, cols, rows, 1.0, A, cols, 0.0, S, cols);
    const double num = trace_upper(H, S, cols, perm);
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int32_t r = 0; r < rows; r++) {
        const float *w = W + (size_t)r * n;
        double *a = A + (size_t)r * n;
        for (size_t j = 0; j < n; j++) a[j] = (double)w[perm[j]];
    }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, cols, rows, 1.0, A, cols, 0.0, S, cols);
    const double den = trace_upper(H, S, cols, perm);
    if (den == 0.0) return num == 0.0 ? 0.0 : INFINITY;
    return num / den;
}
