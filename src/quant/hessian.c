/* Permutation, damping, inverse Cholesky factor, relative error. */
#include "quant/hessian.h"

#include "core/error.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>

int spqri_blas_threads(int n) {
    const int prev = openblas_get_num_threads();
    if (n >= 1 && n != prev) openblas_set_num_threads(n);
    return prev;
}

/* Columns per panel of spqri_hessian_window: a fixed split, so the bytes
 * do not depend on the thread count. */
#define HESS_PANEL 256

void spqri_hessian_window(float *G, const float *X, int32_t cols, int32_t B, int32_t n_threads) {
    const int32_t np = (cols + HESS_PANEL - 1) / HESS_PANEL;
    const int prev = spqri_blas_threads(1);
    /* Panel p owns G[0:j1][j0:j1] (the upper triangle's columns j0..j1-1): its
     * diagonal block by ssyrk, the rows above by sgemm; the widest panels
     * (the last) first. */
#pragma omp parallel for num_threads(n_threads > 1 ? n_threads : 1) schedule(dynamic, 1) if (n_threads > 1 && np > 1)
    for (int32_t i = 0; i < np; i++) {
        const int32_t j0 = (np - 1 - i) * HESS_PANEL, w = cols - j0 < HESS_PANEL ? cols - j0 : HESS_PANEL;
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, w, B, 1.0f, X + j0, cols, 0.0f,
                    G + (size_t)j0 * cols + j0, cols);
        if (j0 > 0)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, j0, w, B, 1.0f, X, cols, X + j0, cols, 0.0f, G + j0,
                        cols);
    }
    spqri_blas_threads(prev);
}

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

/* a[0..n) reversed in place. */
static void reverse_flat_f(float *a, size_t n, int32_t n_threads) {
    const int64_t half = (int64_t)(n / 2);
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t i = 0; i < half; i++) {
        const float t = a[i];
        a[i] = a[n - 1 - (size_t)i];
        a[n - 1 - (size_t)i] = t;
    }
}

static void reverse_flat_d(double *a, size_t n, int32_t n_threads) {
    const int64_t half = (int64_t)(n / 2);
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t i = 0; i < half; i++) {
        const double t = a[i];
        a[i] = a[n - 1 - (size_t)i];
        a[n - 1 - (size_t)i] = t;
    }
}

/* H = R R^T with R upper (the "reversed" Cholesky GPTQ needs: U = R^-1 is
 * the upper Cholesky factor of H^-1): the Cholesky factor of the
 * index-reversed matrix J H J = R'^T R' (R' upper) gives R = J R'^T J.
 * Reversing the flat row-major array is J . J, and the column-major view
 * of a row-major buffer is its transpose, so: reverse, potrf ('U',
 * column-major), reverse again, and the row-major upper triangle holds R.
 * Returns potrf's info (0: success, > 0: not positive definite). */
static lapack_int chol_rev_f(float *A, int32_t cols, int32_t n_threads) {
    const size_t nn = (size_t)cols * (size_t)cols;
    reverse_flat_f(A, nn, n_threads);
    const lapack_int info = LAPACKE_spotrf(LAPACK_COL_MAJOR, 'U', cols, A, cols);
    if (info == 0) reverse_flat_f(A, nn, n_threads);
    return info;
}

static lapack_int chol_rev_d(double *A, int32_t cols, int32_t n_threads) {
    const size_t nn = (size_t)cols * (size_t)cols;
    reverse_flat_d(A, nn, n_threads);
    const lapack_int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', cols, A, cols);
    if (info == 0) reverse_flat_d(A, nn, n_threads);
    return info;
}

static spqr_status chol_error(lapack_int info, int32_t cols, spqr_err *err) {
    if (info > 0)
        return spqr_err_set(err, SPQR_ERR_NUMERIC,
                            "Hessian is not positive definite after damping (trailing minor %d of %d; "
                            "raise percdamp)", (int)info, cols);
    return spqr_err_set(err, SPQR_ERR_NUMERIC, "Cholesky of the Hessian failed (info %d)", (int)info);
}

spqr_status spqr_hessian_prepare(const float *H, int32_t cols, const int32_t *perm, float percdamp,
                                 int32_t n_threads, float *R, double *d, uint8_t *dead, int32_t *n_dead,
                                 double *damp_out, int *used_double, spqr_err *err) {
    const size_t n = (size_t)cols;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int32_t i = 0; i < cols; i++) {
        const float *hrow = H + (size_t)perm[i] * n;
        float *rrow = R + (size_t)i * n;
        for (int32_t j = 0; j < cols; j++) rrow[j] = hrow[perm[j]];
    }
    double abs_sum = 0.0;
    int32_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        const double h = (double)R[i * n + i];
        dead[i] = h == 0.0;
        nd += dead[i];
        abs_sum += fabs(h);
    }
    *n_dead = nd;
    /* Reference order: damping first (the mean includes dead columns as 0), then the dead fix. */
    const double damp = percdamp > 0 ? (double)percdamp * (abs_sum / (double)n) : 0.0;
    *damp_out = damp;
    for (size_t i = 0; i < n; i++) R[i * n + i] = dead[i] ? 1.0f : (float)((double)R[i * n + i] + damp);
    *used_double = 0;
    lapack_int info = chol_rev_f(R, cols, n_threads);
    if (info != 0) { /* fp32 lost positive definiteness (an ill-conditioned H): the same in double */
        double *A = malloc(n * n * sizeof(double));
        if (!A) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for the double Cholesky of the Hessian");
#pragma omp parallel for num_threads(n_threads) schedule(static)
        for (int32_t i = 0; i < cols; i++) {
            const float *hrow = H + (size_t)perm[i] * n;
            double *arow = A + (size_t)i * n;
            for (int32_t j = 0; j < cols; j++) arow[j] = (double)hrow[perm[j]];
            arow[i] = dead[i] ? 1.0 : arow[i] + damp;
        }
        if ((info = chol_rev_d(A, cols, n_threads)) != 0) {
            free(A);
            return chol_error(info, cols, err);
        }
#pragma omp parallel for num_threads(n_threads) schedule(static)
        for (int64_t i = 0; i < (int64_t)(n * n); i++) R[i] = (float)A[i];
        free(A);
        *used_double = 1;
    }
    for (size_t j = 0; j < n; j++) d[j] = 1.0 / (double)R[j * n + j];
    return SPQR_OK;
}

/* <H_perm, S> over the upper triangle of the symmetric S = A^T A: the
 * reference order (row i: its diagonal term, then j = i+1.. in order; the
 * rows' sums added in order i), which trace_upper_tiled reproduces. */
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

/* <H_perm, S> for fp32 S (upper triangle from ssyrk), summed in double in
 * trace_upper's order, cache-friendly: the strict lower triangle of S
 * (scratch) first gets Hp[j][i] = H[perm[j]][perm[i]] by row gathers (exact:
 * H is fp32), then tiles of TR rows i run over j together, reading H rows
 * perm[i] (in cache), a row piece of the lower triangle and TR row streams of
 * S. acc [cols] holds the rows' sums, added in order i at the end. */
#define TR 16
static double trace_upper_f32(const float *H, float *S, int32_t cols, const int32_t *perm, double *acc,
                              int32_t n_threads) {
    const size_t n = (size_t)cols;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int32_t j = 1; j < cols; j++) {
        const float *hj = H + (size_t)perm[j] * n;
        float *lj = S + (size_t)j * n;
        for (int32_t i = 0; i < j; i++) lj[i] = hj[perm[i]];
    }
    const int32_t nb = (cols + TR - 1) / TR;
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 4)
    for (int32_t b = 0; b < nb; b++) {
        const int32_t i0 = b * TR, m = cols - i0 < TR ? cols - i0 : TR;
        const float *hi[TR];
        const float *si[TR];
        double a[TR];
        for (int32_t l = 0; l < m; l++) {
            const int32_t i = i0 + l;
            hi[l] = H + (size_t)perm[i] * n;
            si[l] = S + (size_t)i * n;
            a[l] = (double)hi[l][perm[i]] * (double)si[l][i];
        }
        for (int32_t j = i0 + 1; j < cols; j++) {
            const int32_t pj = perm[j];
            const float *lj = S + (size_t)j * n + (size_t)i0;
            const int32_t lm = j - i0 < m ? j - i0 : m; /* lanes with i < j */
            for (int32_t l = 0; l < lm; l++) a[l] += ((double)hi[l][pj] + (double)lj[l]) * (double)si[l][j];
        }
        for (int32_t l = 0; l < m; l++) acc[i0 + l] = a[l];
    }
    double tr = 0.0;
    for (size_t i = 0; i < n; i++) tr += acc[i];
    return tr;
}

/* The fp32 evaluation (see hessian.h). Returns NaN if its scratch cannot
 * be allocated. */
static double rel_error_f32(const float *W, const float *H, int32_t rows, int32_t cols, const int32_t *perm,
                            const double *Wp_hat, float *Sf, const double *esum, double damp, const uint8_t *dead,
                            int32_t n_threads) {
    const size_t n = (size_t)cols;
    float *A = malloc((size_t)rows * n * sizeof(float));
    double *acc = malloc((n > (size_t)rows ? n : (size_t)rows) * sizeof(double));
    if (!A || !acc) {
        free(A);
        free(acc);
        return NAN;
    }
    double num;
    if (esum) {
        /* per row in column order, then the rows in order: the same sums for any thread count */
#pragma omp parallel for num_threads(n_threads) schedule(static)
        for (int32_t r = 0; r < rows; r++) {
            const float *w = W + (size_t)r * n;
            const double *wh = Wp_hat + (size_t)r * n;
            double a = 0.0;
            for (size_t j = 0; j < n; j++) {
                const double dw = wh[j] - (dead[j] ? 0.0 : (double)w[perm[j]]);
                a += (dead[j] ? 1.0 : damp) * dw * dw;
            }
            acc[r] = a;
        }
        double e2 = 0.0, dsum = 0.0;
        for (int32_t r = 0; r < rows; r++) {
            e2 += esum[r];
            dsum += acc[r];
        }
        num = e2 - dsum;
        if (num < 0.0) num = 0.0; /* the identity's rounding around an exact 0 */
    } else {
#pragma omp parallel for num_threads(n_threads) schedule(static)
        for (int32_t r = 0; r < rows; r++) {
            const float *w = W + (size_t)r * n;
            const double *wh = Wp_hat + (size_t)r * n;
            float *a = A + (size_t)r * n;
            for (size_t j = 0; j < n; j++) a[j] = (float)(wh[j] - (double)w[perm[j]]);
        }
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, cols, rows, 1.0f, A, cols, 0.0f, Sf, cols);
        num = trace_upper_f32(H, Sf, cols, perm, acc, n_threads);
    }
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int32_t r = 0; r < rows; r++) {
        const float *w = W + (size_t)r * n;
        float *a = A + (size_t)r * n;
        for (size_t j = 0; j < n; j++) a[j] = w[perm[j]];
    }
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, cols, rows, 1.0f, A, cols, 0.0f, Sf, cols);
    const double den = trace_upper_f32(H, Sf, cols, perm, acc, n_threads);
    free(A);
    free(acc);
    if (den == 0.0) return num == 0.0 ? 0.0 : INFINITY;
    return num / den;
}

/* The all-double reference: A^T A from dsyrk, A aliasing Wp_hat. */
double spqri_rel_hessian_error_ref(const float *W, const float *H, int32_t rows, int32_t cols, const int32_t *perm,
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

double spqr_rel_hessian_error(const float *W, const float *H, int32_t rows, int32_t cols, const int32_t *perm,
                              double *Wp_hat, float *S, const double *esum, double damp, const uint8_t *dead,
                              int32_t n_threads) {
    const double rel = rel_error_f32(W, H, rows, cols, perm, Wp_hat, S, esum, damp, dead, n_threads);
    if (!isnan(rel)) return rel;
    double *Sd = malloc((size_t)cols * (size_t)cols * sizeof(double));
    const double ref = Sd ? spqri_rel_hessian_error_ref(W, H, rows, cols, perm, Wp_hat, Sd, n_threads) : NAN;
    free(Sd);
    return ref;
}
