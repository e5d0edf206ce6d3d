/* spqr_quantize_layer: the SpQR / GPTQ column loop (docs/method.md step 9)
 * and the assembly of its outputs.
 *
 * Layout: W is copied to double Wp [rows][cols] in permuted column order and
 * updated in place; after column j is processed Wp[:, j] holds W_hat (an fp32
 * or fp16 value held in a double).
 *
 * Threads: rows interact only through the second level of the statistics,
 * which couples the beta2 rows of a chunk. Each thread therefore owns a
 * fixed slice of whole chunks and runs the block on it alone (fits,
 * leave-one-out, quantization, in-block updates): one parallel region per
 * block, no barrier inside. The lazy-batch updates are fp32 sgemms on the
 * caller's OpenBLAS threads, as the Cholesky: their results may depend on
 * OpenBLAS's thread count in the last bits (the parallel Cholesky's
 * blocking), so the engine leaves it fixed by the caller and its output
 * does not depend on n_threads.
 *
 * Lazy batch without H^-1: with H = R R^T (R upper, U = R^-1 the factor
 * GPTQ uses), the errors of the done columns are E = D R for D = W - W_hat,
 * and since R U = I is block upper triangular, E[:, :b0] U[:b0, J] =
 * -D[:, :b0] R[:b0, J] U[J, J] for the columns J = [b0, e). So a block
 * starts from its original weights, W_cur[:, J] = W[:, J] + (D[:, :b0]
 * R[:b0, J]) U[J, J]: one sgemm (fp32 D and R, as the PyTorch reference's
 * fp32 updates) and a small triangular multiply by U[J, J], the inverse of
 * R's diagonal block. The prep needs only the Cholesky (C^3/3 flops), not
 * the inverse (another C^3/3), and the sgemm's output is R x 128, not the
 * whole trailing matrix. W_cur is computed afresh from W, never
 * accumulated, so a column may get it twice (below).
 *
 * Blocking: a group is fitted on weights that have received the updates of
 * every earlier column, as in the unblocked loop. A group starting inside a
 * block and reaching past its end would see columns whose in-block updates
 * are still pending, so such a block is ended early at that group start; a
 * group starting at the block's start and longer than it gets W_cur of all
 * its columns first (and the next block recomputes its own). */
#include "spqr.h"

#include "core/clock.h"
#include "core/error.h"
#include "format/tensor.h"
#include "quant/gptq.h"
#include "quant/hessian.h"
#include "quant/outliers.h"
#include "quant/params.h"
#include "quant/stats.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Everything the loop needs, allocated up front. */
typedef struct layer {
    int32_t rows, cols, g, bs, nt, gptq;
    spqr_fit_cfg cfg;
    double *Wp;        /* [rows][cols] permuted weights, updated in place */
    float *R;          /* [cols][cols] upper triangular, R R^T = H (permuted, damped) */
    int R_borrowed;    /* R is a quant_hprep's (read only, not freed) */
    double *Ub;        /* [ub][ub] U = R^-1 on the current columns J (upper triangle) */
    float *Ubf;        /* [ub][ub] the same in fp32, for the strmm */
    int32_t ub;        /* the most columns J can have: bs, or g when bs < g < cols */
    double *d;         /* [cols] diag(U) = 1 / diag(R) */
    float *D;          /* [rows][cols] GPTQ: W - W_hat of the done columns, W of the others */
    float *T;          /* [rows][ub] the lazy-batch products */
    double *esum;      /* [rows] sum of the row's squared scaled errors (GPTQ; the error's numerator) */
    uint8_t *q;        /* [rows][cols] codes (permuted) */
    uint8_t *mask;     /* [rows][cols] outlier flags (permuted) */
    double *s, *z;     /* [rows] first-level statistics of the current group */
    float *sdq, *zdq;  /* [rows] their stored (dequantized) values */
    uint8_t *scode, *zcode; /* [n_groups][rows] second-level codes, packed at the end */
    double *scratch;   /* [nt][4 * (g + 1)] leave-one-out scratch */
    spqr_tensor *t;
    double t_blocks, t_update; /* seconds in the column blocks and in the lazy-batch sgemms */
    int avx2;          /* run_block_rows_avx2 (the same results, faster) */
} layer;

/* Fits group gi (columns [j0, j1)) on the current weights of rows [r0, r1).
 * r0 is a multiple of the second-level chunk size, so the slice's chunks
 * are whole and the stored statistics equal those of an all-rows fit. */
#define ENGINE_INLINE static inline __attribute__((always_inline))

ENGINE_INLINE spqr_status fit_group(layer *L, int32_t gi, int32_t j0, int32_t j1, int32_t r0, int32_t r1, double *scr,
                             spqr_err *err) {
    const int32_t gc = j1 - j0, rows = L->rows;
    const size_t ld = (size_t)L->cols;
    for (int32_t r = r0; r < r1; r++)
        spqr_fit_row_inline(&L->cfg, L->Wp + (size_t)r * ld + (size_t)j0, L->d + j0, gc, scr, &L->s[r], &L->z[r]);
    spqr_tensor *t = L->t;
    const size_t so = (size_t)gi * (size_t)rows + (size_t)r0;
    const size_t qo = ((size_t)gi * (size_t)t->n_qgroups + (L->cfg.qgs ? (size_t)(r0 / L->cfg.qgs) : 0)) * 2;
    return spqr_store_stats(&L->cfg, L->s + r0, L->z + r0, r1 - r0, L->sdq + r0, L->zdq + r0,
                            L->scode ? L->scode + so : NULL, L->zcode ? L->zcode + so : NULL,
                            t->scale_q2 ? t->scale_q2 + qo : NULL, t->zero_q2 ? t->zero_q2 + qo : NULL,
                            t->scale_f16 ? t->scale_f16 + so : NULL, t->zero_f16 ? t->zero_f16 + so : NULL, err);
}

/* Quantizes columns [j0, j1) of row r (block [b0, b1)). Returns 0, or -1 if
 * an outlier does not fit in fp16. */
ENGINE_INLINE int quantize_row(const layer *L, int32_t r, int32_t j0, int32_t j1, int32_t b0, int32_t b1) {
    const size_t ld = (size_t)L->cols;
    double *w = L->Wp + (size_t)r * ld;
    uint8_t *q = L->q + (size_t)r * ld, *m = L->mask + (size_t)r * ld;
    const float sdq = L->sdq[r], zdq = L->zdq[r];
    const double maxq = L->cfg.maxq, tau = L->cfg.tau;
    for (int32_t j = j0; j < j1; j++) {
        const double wj = w[j];
        const uint32_t code = (uint32_t)spqr_code(wj, (double)sdq, (double)zdq, maxq);
        double what = (double)spqr_weight_dq(sdq, code, zdq);
        double e = (wj - what) / L->d[j];
        if (e * e > tau) { /* unstructured outlier: keep the current weight in fp16 */
            const float wf = (float)wj;
            if (fabsf(wf) > 65504.0f) return -1;
            what = (double)spqr_fp16_to_fp32(spqr_fp32_to_fp16(wf));
            e = (wj - what) / L->d[j];
            m[j] = 1;
        }
        q[j] = (uint8_t)code;
        w[j] = what;
        if (L->gptq) {
            L->esum[r] += e * e;
            const double *u = L->Ub + (size_t)(j - b0) * (size_t)L->ub; /* u[k - b0] = U[j][k] */
            for (int32_t k = j + 1; k < b1; k++) w[k] -= e * u[k - b0];
        }
    }
    return 0;
}

/* quantize_row on 4 rows at once: the same operations per row in the same
 * order, interleaved so that the four rows' division and rounding chains
 * overlap and the in-block update loads each U entry once. Returns -1, or
 * the first of the 4 rows (in processing order) whose outlier does not fit
 * in fp16. */
ENGINE_INLINE int32_t quantize_rows4(const layer *L, int32_t r, int32_t j0, int32_t j1, int32_t b0, int32_t b1) {
    const size_t ld = (size_t)L->cols;
    double *w[4];
    uint8_t *q[4], *m[4];
    float sdq[4], zdq[4];
    for (int i = 0; i < 4; i++) {
        w[i] = L->Wp + (size_t)(r + i) * ld;
        q[i] = L->q + (size_t)(r + i) * ld;
        m[i] = L->mask + (size_t)(r + i) * ld;
        sdq[i] = L->sdq[r + i];
        zdq[i] = L->zdq[r + i];
    }
    const double maxq = L->cfg.maxq, tau = L->cfg.tau;
    double *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
    for (int32_t j = j0; j < j1; j++) {
        const double dj = L->d[j];
        double e[4];
        for (int i = 0; i < 4; i++) {
            const double wj = w[i][j];
            const uint32_t code = (uint32_t)spqr_code(wj, (double)sdq[i], (double)zdq[i], maxq);
            double what = (double)spqr_weight_dq(sdq[i], code, zdq[i]);
            e[i] = (wj - what) / dj;
            if (e[i] * e[i] > tau) {
                const float wf = (float)wj;
                if (fabsf(wf) > 65504.0f) return r + i;
                what = (double)spqr_fp16_to_fp32(spqr_fp32_to_fp16(wf));
                e[i] = (wj - what) / dj;
                m[i][j] = 1;
            }
            q[i][j] = (uint8_t)code;
            w[i][j] = what;
        }
        if (L->gptq) {
            const double *u = L->Ub + (size_t)(j - b0) * (size_t)L->ub; /* u[k - b0] = U[j][k] */
            const double e0 = e[0], e1 = e[1], e2 = e[2], e3 = e[3];
            for (int i = 0; i < 4; i++) L->esum[r + i] += e[i] * e[i];
            for (int32_t k = j + 1; k < b1; k++) {
                const double uk = u[k - b0];
                w0[k] -= e0 * uk;
                w1[k] -= e1 * uk;
                w2[k] -= e2 * uk;
                w3[k] -= e3 * uk;
            }
        }
    }
    return -1;
}

/* Columns [b0, b1) for rows [r0, r1): group fits and quantization. */
ENGINE_INLINE spqr_status block_rows(layer *L, int32_t b0, int32_t b1, int32_t r0, int32_t r1, double *scr,
                                  spqr_err *err) {
    const int64_t g = L->g, cols = L->cols;
    for (int32_t s0 = b0; s0 < b1;) {
        /* 64-bit: the end of s0's group may pass INT32_MAX when g is the whole row */
        const int64_t gend = (s0 / g + 1) * g;
        const int32_t s1 = (int32_t)(gend < b1 ? gend : b1);
        if (s0 % g == 0) {
            const int32_t j1 = (int32_t)(gend < cols ? gend : cols);
            spqr_status st = fit_group(L, (int32_t)(s0 / g), s0, j1, r0, r1, scr, err);
            if (st != SPQR_OK) return st;
        }
        int32_t bad = -1, r = r0;
        for (; r + 4 <= r1 && bad < 0; r += 4) bad = quantize_rows4(L, r, s0, s1, b0, b1);
        for (; r < r1 && bad < 0; r++)
            if (quantize_row(L, r, s0, s1, b0, b1) != 0) bad = r;
        if (bad >= 0)
            return spqr_err_set(err, SPQR_ERR_NUMERIC,
                                "outlier weight of row %d in permuted columns [%d, %d) exceeds the fp16 range", bad, s0,
                                s1);
        s0 = s1;
    }
    return SPQR_OK;
}

/* block_rows compiled twice from one source: for the baseline ISA and for
 * AVX2 (4-wide division, rounding and the in-block update; no FMA, since
 * ISO C mode keeps -ffp-contract=off), so both give the same bytes. */
static spqr_status run_block_rows_ref(layer *L, int32_t b0, int32_t b1, int32_t r0, int32_t r1, double *scr,
                                      spqr_err *err) {
    return block_rows(L, b0, b1, r0, r1, scr, err);
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) static spqr_status run_block_rows_avx2(layer *L, int32_t b0, int32_t b1, int32_t r0,
                                                                       int32_t r1, double *scr, spqr_err *err) {
    return block_rows(L, b0, b1, r0, r1, scr, err);
}
#endif

static spqr_status run_block_rows(layer *L, int32_t b0, int32_t b1, int32_t r0, int32_t r1, double *scr,
                                  spqr_err *err) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (L->avx2) return run_block_rows_avx2(L, b0, b1, r0, r1, scr, err);
#endif
    return run_block_rows_ref(L, b0, b1, r0, r1, scr, err);
}

/* Columns J = [b0, e): Ub = U[J, J] (the inverse of R's diagonal block, in
 * double) and, for b0 > 0, W_cur[:, J] = W[:, J] + (D[:, :b0] R[:b0, J]) U[J, J]
 * (W[:, J] read from D, which holds W until a column is done). */
static spqr_status start_columns(layer *L, int32_t b0, int32_t e, spqr_err *err) {
    const size_t ld = (size_t)L->cols, ub = (size_t)L->ub;
    const int32_t w = e - b0, rows = L->rows;
    for (int32_t i = 0; i < w; i++)
        for (int32_t k = 0; k < w; k++)
            L->Ub[(size_t)i * ub + (size_t)k] = k >= i ? (double)L->R[(size_t)(b0 + i) * ld + (size_t)(b0 + k)] : 0.0;
    const lapack_int info = LAPACKE_dtrtri(LAPACK_ROW_MAJOR, 'U', 'N', w, L->Ub, (lapack_int)ub);
    if (info != 0)
        return spqr_err_set(err, SPQR_ERR_NUMERIC, "inverting a diagonal block of the Cholesky factor failed (info %d)",
                            (int)info);
    if (b0 == 0) return SPQR_OK;
    for (size_t i = 0; i < (size_t)w * ub; i++) L->Ubf[i] = (float)L->Ub[i];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, w, b0, 1.0f, L->D, (int)ld, L->R + (size_t)b0, (int)ld,
                0.0f, L->T, w);
    cblas_strmm(CblasRowMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, rows, w, 1.0f, L->Ubf, (int)ub,
                L->T, w);
#pragma omp parallel for num_threads(L->nt) schedule(static)
    for (int32_t r = 0; r < rows; r++) {
        double *wr = L->Wp + (size_t)r * ld + (size_t)b0;
        const float *tr = L->T + (size_t)r * (size_t)w, *dr = L->D + (size_t)r * ld + (size_t)b0;
        for (int32_t k = 0; k < w; k++) wr[k] = (double)dr[k] + (double)tr[k];
    }
    return SPQR_OK;
}

/* Threads own fixed row slices made of whole second-level chunks: rows never
 * interact inside a block, so a block costs one parallel region and no
 * barrier (barriers are expensive when the cores are shared). */
static spqr_status run_loop(layer *L, spqr_err *err) {
    /* 64-bit: rows + unit and b0 + bs pass INT32_MAX near the largest shapes */
    const int64_t rows = L->rows, cols = L->cols, g = L->g;
    const int64_t unit = L->cfg.qgs > 0 && (L->cfg.qs || L->cfg.qz) ? L->cfg.qgs : 1;
    const int64_t n_units = (rows + unit - 1) / unit;
    const int32_t nt = (int32_t)(L->nt < n_units ? L->nt : n_units);
    for (int64_t b0 = 0; b0 < cols;) {
        int64_t b1 = b0 + L->bs < cols ? b0 + L->bs : cols;
        /* the last group start inside the block may straddle its end */
        const int64_t jl = ((b1 - 1) / g) * g;
        if (jl > b0 && (jl + g < cols ? jl + g : cols) > b1) b1 = jl;
        const double tu0 = spqr_now_s();
        spqr_status st = SPQR_OK;
        if (L->gptq) {
            /* a group starting here is fitted on all its columns: they need W_cur too (not at b0 = 0: W is W_cur) */
            const int64_t gend = b0 > 0 && b0 % g == 0 ? (b0 + g < cols ? b0 + g : cols) : b1;
            if ((st = start_columns(L, (int32_t)b0, (int32_t)(gend > b1 ? gend : b1), err)) != SPQR_OK) return st;
        }
        const double tb0 = spqr_now_s();
        L->t_update += tb0 - tu0;
#pragma omp parallel num_threads(nt)
        {
            const int32_t tid = omp_get_thread_num(), n = omp_get_num_threads();
            const int64_t u0 = n_units * tid / n, u1 = n_units * (tid + 1) / n;
            const int32_t r0 = (int32_t)(u0 * unit), r1 = (int32_t)(u1 * unit < rows ? u1 * unit : rows);
            double *scr = L->scratch + (size_t)tid * 4 * ((size_t)L->g + 1);
            spqr_err my_err = {0};
            spqr_status my = r0 < r1 ? run_block_rows(L, (int32_t)b0, (int32_t)b1, r0, r1, scr, &my_err) : SPQR_OK;
            if (my != SPQR_OK) {
#pragma omp critical(spqr_loop_err)
                if (st == SPQR_OK) {
                    st = my;
                    if (err) *err = my_err;
                }
            }
        }
        if (st != SPQR_OK) return st;
        L->t_blocks += spqr_now_s() - tb0;
        if (L->gptq && b1 < cols) {
#pragma omp parallel for num_threads(L->nt) schedule(static)
            for (int32_t r = 0; r < (int32_t)rows; r++) {
                const double *wr = L->Wp + (size_t)r * (size_t)cols;
                float *dr = L->D + (size_t)r * (size_t)cols;
                for (int32_t j = (int32_t)b0; j < (int32_t)b1; j++) dr[j] = (float)((double)dr[j] - wr[j]);
            }
        }
        b0 = b1;
    }
    return SPQR_OK;
}

/* CSR outliers, packed streams, permutation. */
static spqr_status finish_tensor(layer *L, const int32_t *perm, int keep_perm, spqr_err *err) {
    spqr_tensor *t = L->t;
    const int32_t rows = L->rows, cols = L->cols;
    const size_t ld = (size_t)cols;
    /* per-row counts in parallel (into rowptr[r + 1]), then the prefix sum */
#pragma omp parallel for num_threads(L->nt) schedule(static)
    for (int32_t r = 0; r < rows; r++) {
        const uint8_t *m = L->mask + (size_t)r * ld;
        int32_t c = 0;
        for (int32_t j = 0; j < cols; j++) c += m[j];
        t->outlier_rowptr[r + 1] = c;
    }
    int64_t nnz = 0;
    for (int32_t r = 0; r < rows; r++) {
        const int32_t c = t->outlier_rowptr[r + 1];
        t->outlier_rowptr[r] = (int32_t)nnz;
        nnz += c;
        if (nnz > INT32_MAX) return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "more than 2^31 outliers");
    }
    t->outlier_rowptr[rows] = (int32_t)nnz;
    t->nnz = nnz;
    free(t->outlier_col);
    free(t->outlier_val);
    t->outlier_col = malloc((nnz ? (size_t)nnz : 1) * sizeof(uint16_t));
    t->outlier_val = malloc((nnz ? (size_t)nnz : 1) * sizeof(uint16_t));
    if (!t->outlier_col || !t->outlier_val) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for outliers");
#pragma omp parallel for num_threads(L->nt) schedule(static)
    for (int32_t r = 0; r < rows; r++) {
        int64_t k = t->outlier_rowptr[r];
        for (int32_t j = 0; j < cols; j++) {
            const size_t i = (size_t)r * ld + (size_t)j;
            if (!L->mask[i]) continue;
            t->outlier_col[k] = (uint16_t)j;
            /* exact: W_hat holds the fp16 value itself */
            t->outlier_val[k] = spqr_fp32_to_fp16((float)L->Wp[i]);
            k++;
        }
    }
    spqr_bits_pack(L->q, (uint64_t)rows * (uint64_t)cols, t->wbits, t->codes);
    const uint64_t n_stats = (uint64_t)t->n_groups * (uint64_t)rows;
    if (t->qq_scale_bits) spqr_bits_pack(L->scode, n_stats, t->qq_scale_bits, t->scale_codes);
    if (t->qq_zero_bits) spqr_bits_pack(L->zcode, n_stats, t->qq_zero_bits, t->zero_codes);
    if (!keep_perm) {
        free(t->perm);
        t->perm = NULL;
    } else {
        memcpy(t->perm, perm, (size_t)cols * sizeof(int32_t));
    }
    return SPQR_OK;
}

static spqr_status check_finite(const float *a, size_t n, int32_t ld, const char *name, spqr_err *err) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i]))
            return spqr_err_set(err, SPQR_ERR_NUMERIC, "%s[%zu][%zu] is %s", name, i / (size_t)ld, i % (size_t)ld,
                                isnan(a[i]) ? "NaN" : "Inf");
    return SPQR_OK;
}

static void layer_free(layer *L) {
    free(L->Wp);
    if (!L->R_borrowed) free(L->R);
    free(L->Ub);
    free(L->Ubf);
    free(L->d);
    free(L->D);
    free(L->T);
    free(L->esum);
    free(L->q);
    free(L->mask);
    free(L->s);
    free(L->z);
    free(L->sdq);
    free(L->zdq);
    free(L->scode);
    free(L->zcode);
    free(L->scratch);
    spqr_tensor_free(L->t);
}

static int32_t engine_threads(int32_t n_threads) { return n_threads > 0 ? n_threads : omp_get_num_procs(); }

/* 1 when hp holds steps 1-4 for this shape, permutation mode, damping and thread count. */
static int hprep_matches(const quant_hprep *hp, int32_t cols, const spqr_quant_params *p, int32_t nt) {
    return hp->cols == cols && hp->cols > 0 && hp->mode == p->perm && hp->percdamp == p->percdamp && hp->nt == nt;
}

void spqri_hprep_free(quant_hprep *hp) {
    free(hp->perm), free(hp->dead), free(hp->R), free(hp->d);
    memset(hp, 0, sizeof *hp);
}

spqr_status spqri_hprep_fill(quant_hprep *hp, const float *H, int32_t cols, const spqr_quant_params *p,
                             int32_t n_threads, spqr_err *err) {
    const int32_t nt = engine_threads(n_threads);
    if (hprep_matches(hp, cols, p, nt)) return SPQR_OK;
    spqri_hprep_free(hp);
    if (cols < 1 || (uint64_t)cols * (uint64_t)cols > (uint64_t)(SIZE_MAX / sizeof(double)))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "Hessian of %d columns", cols);
    spqr_status st = check_finite(H, (size_t)cols * (size_t)cols, cols, "H", err);
    if (st) return st;
    hp->perm = malloc((size_t)cols * sizeof *hp->perm);
    hp->dead = malloc((size_t)cols);
    hp->R = malloc((size_t)cols * (size_t)cols * sizeof(float));
    hp->d = malloc((size_t)cols * sizeof(double));
    if (!hp->perm || !hp->dead || !hp->R || !hp->d)
        st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for a %d-column Hessian", cols);
    if (!st) st = spqr_perm_compute(H, cols, p->perm, hp->perm, err);
    if (!st)
        st = spqr_hessian_prepare(H, cols, hp->perm, p->percdamp, nt, hp->R, hp->d, hp->dead, &hp->n_dead, &hp->damp,
                                  &hp->used_double, err);
    if (st) {
        spqri_hprep_free(hp);
        return st;
    }
    hp->cols = cols, hp->nt = nt, hp->mode = p->perm, hp->percdamp = p->percdamp;
    return SPQR_OK;
}

spqr_status spqr_quantize_layer(const float *W, int32_t rows, int32_t cols, const float *H,
                                const spqr_quant_params *p, int32_t n_threads, const spqr_logger *log,
                                spqr_tensor **out_tensor, float *out_W, uint8_t *out_mask,
                                spqr_quant_report *report, spqr_err *err) {
    return spqri_quantize_layer_prepared(W, rows, cols, H, p, n_threads, NULL, log, out_tensor, out_W, out_mask, report,
                                         err);
}

spqr_status spqri_quantize_layer_prepared(const float *W, int32_t rows, int32_t cols, const float *H,
                                          const spqr_quant_params *p, int32_t n_threads, const quant_hprep *hp,
                                          const spqr_logger *log, spqr_tensor **out_tensor, float *out_W,
                                          uint8_t *out_mask, spqr_quant_report *report, spqr_err *err) {
    if (out_tensor) *out_tensor = NULL;
    spqr_status st = spqr_quant_params_validate(p, err);
    if (st != SPQR_OK) return st;
    if (!W || !H) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "W and H must not be NULL");
    if (rows < 1 || cols < 1) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "layer shape %dx%d is empty", rows, cols);
    if (n_threads > SPQR_MAX_THREADS) /* OpenMP would try to start them all */
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "n_threads %d is above %d (<= 0 = all cores)", n_threads,
                            SPQR_MAX_THREADS);
    /* the largest buffers hold rows x cols and cols x cols doubles: refuse shapes whose sizes overflow */
    const uint64_t max_doubles = (uint64_t)(SIZE_MAX / sizeof(double));
    if ((uint64_t)rows * (uint64_t)cols > max_doubles || (uint64_t)cols * (uint64_t)cols > max_doubles)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "layer shape %dx%d is too large: its buffers overflow size_t",
                            rows, cols);
    const double thr = (double)p->outlier_threshold;
    const int outliers = isfinite(thr) && thr > 0;
    if (outliers && cols > 65535) /* checked before any data is read */
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED,
                            "outlier column indices are uint16: cols %d > 65535 needs outliers disabled", cols);
    if ((st = check_finite(W, (size_t)rows * (size_t)cols, cols, "W", err)) != SPQR_OK) return st;
    if ((st = check_finite(H, (size_t)cols * (size_t)cols, cols, "H", err)) != SPQR_OK) return st;
    const double t0 = spqr_now_s();

    layer L;
    memset(&L, 0, sizeof L);
    L.rows = rows;
    L.cols = cols;
    L.g = p->groupsize > 0 && p->groupsize < cols ? p->groupsize : cols;
    L.bs = p->blocksize < cols ? p->blocksize : cols;
    L.nt = engine_threads(n_threads);
    if (hp && !hprep_matches(hp, cols, p, L.nt))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "the prepared Hessian is for other settings");
    L.gptq = p->gptq;
#if defined(__x86_64__) && defined(__GNUC__)
    L.avx2 = __builtin_cpu_supports("avx2");
#endif
    spqr_fit_cfg *c = &L.cfg;
    c->wbits = p->wbits;
    c->maxq = (double)((1 << p->wbits) - 1);
    c->sym = p->sym;
    c->round_zero = p->round_zero && !p->sym;
    c->qs = p->qq_scale_bits;
    /* reference rule: integer zeros with qq_zero_bits >= wbits stay fp16; sym zeros are exact constants */
    c->qz = (p->qq_zero_bits > 0 && !p->sym && !(p->round_zero && p->qq_zero_bits >= p->wbits)) ? p->qq_zero_bits : 0;
    c->qgs = p->qq_groupsize;
    c->loo = outliers && !p->simplified_outliers;
    c->tau = INFINITY;

    const size_t n = (size_t)rows * (size_t)cols;
    int32_t *perm = malloc((size_t)cols * sizeof *perm);
    uint8_t *dead = malloc((size_t)cols);
    L.Wp = malloc(n * sizeof(double));
    L.R_borrowed = hp && !report; /* the report's error evaluation uses R as scratch */
    L.R = L.R_borrowed ? hp->R : malloc((size_t)cols * (size_t)cols * sizeof(float));
    L.d = malloc((size_t)cols * sizeof(double));
    L.ub = L.g > L.bs && L.g < cols ? L.g : L.bs;
    if (L.gptq) {
        L.Ub = malloc((size_t)L.ub * (size_t)L.ub * sizeof(double));
        L.Ubf = malloc((size_t)L.ub * (size_t)L.ub * sizeof(float));
        L.D = malloc(n * sizeof(float));
        L.T = malloc((size_t)rows * (size_t)L.ub * sizeof(float));
    }
    L.esum = calloc((size_t)rows, sizeof(double));
    L.q = malloc(n);
    L.mask = calloc(n, 1);
    L.s = malloc((size_t)rows * sizeof(double));
    L.z = malloc((size_t)rows * sizeof(double));
    L.sdq = malloc((size_t)rows * sizeof(float));
    L.zdq = malloc((size_t)rows * sizeof(float));
    L.scratch = malloc((size_t)L.nt * 4 * ((size_t)L.g + 1) * sizeof(double));
    const size_t n_stats = (size_t)(((int64_t)cols + L.g - 1) / L.g) * (size_t)rows;
    if (c->qs) L.scode = malloc(n_stats);
    if (c->qz) L.zcode = malloc(n_stats);
    if (!perm || !dead || !L.Wp || !L.R || !L.d || (L.gptq && (!L.Ub || !L.Ubf || !L.D || !L.T)) || !L.esum ||
        !L.q || !L.mask || !L.s || !L.z || !L.sdq || !L.zdq || !L.scratch || (c->qs && !L.scode) || (c->qz && !L.zcode)) {
        st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory quantizing a %dx%d layer", rows, cols);
        goto done;
    }
    if ((st = spqr_tensor_alloc(rows, cols, p->wbits, L.g, c->qs, c->qz, p->qq_groupsize, 0, 1, &L.t, err)) != SPQR_OK)
        goto done;

    /* steps 1-4: permutation, dead inputs, damping, U */
    int32_t n_dead = 0;
    double damp = 0.0;
    int used_double = 0;
    if (hp) {
        memcpy(perm, hp->perm, (size_t)cols * sizeof *perm);
        memcpy(dead, hp->dead, (size_t)cols);
        memcpy(L.d, hp->d, (size_t)cols * sizeof *L.d);
        if (!L.R_borrowed) memcpy(L.R, hp->R, (size_t)cols * (size_t)cols * sizeof *L.R);
        n_dead = hp->n_dead, damp = hp->damp, used_double = hp->used_double;
    } else {
        if ((st = spqr_perm_compute(H, cols, p->perm, perm, err)) != SPQR_OK) goto done;
        if ((st = spqr_hessian_prepare(H, cols, perm, p->percdamp, L.nt, L.R, L.d, dead, &n_dead, &damp, &used_double,
                                       err)) != SPQR_OK)
            goto done;
    }
    const double t_hess = spqr_now_s();
#pragma omp parallel for num_threads(L.nt) schedule(static)
    for (int32_t r = 0; r < rows; r++) {
        const float *w = W + (size_t)r * (size_t)cols;
        double *wp = L.Wp + (size_t)r * (size_t)cols;
        for (int32_t j = 0; j < cols; j++) wp[j] = dead[j] ? 0.0 : (double)w[perm[j]];
        if (L.D) /* the original weights, exact in fp32, until the column is done */
            for (int32_t j = 0; j < cols; j++) L.D[(size_t)r * (size_t)cols + (size_t)j] = (float)wp[j];
    }
    /* step 5: tau = threshold * mean_j var(W[:, j]) / d_j^2 (unbiased variance over rows) */
    if (outliers) {
        double *mean = calloc((size_t)cols, sizeof(double)), *ss = calloc((size_t)cols, sizeof(double));
        if (!mean || !ss) {
            free(mean);
            free(ss);
            st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory computing the outlier scale");
            goto done;
        }
        /* each thread owns a range of columns: every column's sums run over r in order */
#pragma omp parallel num_threads(L.nt)
        {
            const int32_t tid = omp_get_thread_num(), nth = omp_get_num_threads();
            const int32_t j0 = (int32_t)((int64_t)cols * tid / nth), j1 = (int32_t)((int64_t)cols * (tid + 1) / nth);
            for (int32_t r = 0; r < rows; r++) {
                const double *w = L.Wp + (size_t)r * (size_t)cols;
                for (int32_t j = j0; j < j1; j++) mean[j] += w[j];
            }
            for (int32_t j = j0; j < j1; j++) mean[j] /= (double)rows;
            for (int32_t r = 0; r < rows; r++) {
                const double *w = L.Wp + (size_t)r * (size_t)cols;
                for (int32_t j = j0; j < j1; j++) {
                    double dv = w[j] - mean[j];
                    ss[j] += dv * dv;
                }
            }
        }
        double scale = 0.0;
        for (int32_t j = 0; j < cols; j++) {
            double var = rows > 1 ? ss[j] / (double)(rows - 1) : 0.0;
            scale += var / (L.d[j] * L.d[j]);
        }
        c->tau = thr * (scale / (double)cols);
        free(mean);
        free(ss);
    }
    const double t1 = spqr_now_s();

    if ((st = run_loop(&L, err)) != SPQR_OK) goto done;
    const double t2 = spqr_now_s();

    const int keep_perm = p->perm == SPQR_PERM_ACT_ORDER;
    if ((st = finish_tensor(&L, perm, keep_perm, err)) != SPQR_OK) goto done;
    const double t_fin = spqr_now_s();
    if (out_W || out_mask) {
#pragma omp parallel for num_threads(L.nt) schedule(static)
        for (int32_t r = 0; r < rows; r++) {
            const size_t o = (size_t)r * (size_t)cols;
            for (int32_t j = 0; j < cols; j++) {
                if (out_W) out_W[o + (size_t)perm[j]] = (float)L.Wp[o + (size_t)j];
                if (out_mask) out_mask[o + (size_t)perm[j]] = L.mask[o + (size_t)j];
            }
        }
    }
    const double t_out = spqr_now_s();
    double rel = NAN;
    if (report)
        rel = spqr_rel_hessian_error(W, H, rows, cols, perm, L.Wp, L.R, L.gptq ? L.esum : NULL, damp, dead, L.nt);
    const double t3 = spqr_now_s();
    spqr_log(log, SPQR_LOG_DEBUG,
             "quantize %dx%d: prepare %.2fs (Hessian %.2fs, weights+tau %.2fs), loop %.2fs (blocks %.2fs, "
             "lazy sgemm %.2fs), pack %.2fs, out %.2fs, error %.2fs; tau %.4g, %d dead, %lld outliers%s",
             rows, cols, t1 - t0, t_hess - t0, t1 - t_hess, t2 - t1, L.t_blocks, L.t_update, t_fin - t2, t_out - t_fin,
             t3 - t_out, c->tau, n_dead, (long long)L.t->nnz,
             used_double ? "; Cholesky in double (fp32 was not positive definite)" : "");
    if (report) {
        report->n_outliers = L.t->nnz;
        report->rel_hessian_error = rel;
        report->seconds = t3 - t0;
    }
    if (out_tensor) {
        *out_tensor = L.t;
        L.t = NULL;
    }
done:
    free(perm);
    free(dead);
    layer_free(&L);
    return st;
}
