/* The pipeline's collective operations (include/spqr.h spqr_comm) and the
 * split-invariant Hessian sum (docs/quantize.md, "Scale-out"). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "format/tensor.h"
#include "quant/pipeline.h"

spqr_status spqri_comm_bcast(const spqr_comm *c, void *buf, size_t bytes, int32_t root, spqr_err *err) {
    if (!c || c->size <= 1 || bytes == 0) return SPQR_OK;
    if (c->bcast(c->user, buf, bytes, root))
        return spqr_err_set(err, SPQR_ERR_IO, "scale-out: broadcast of %zu bytes from rank %d failed", bytes, root);
    return SPQR_OK;
}

spqr_status spqri_comm_sum_i64(const spqr_comm *c, int64_t *buf, size_t n, spqr_err *err) {
    if (!c || c->size <= 1 || n == 0) return SPQR_OK;
    if (c->allreduce_sum_i64(c->user, buf, n))
        return spqr_err_set(err, SPQR_ERR_IO, "scale-out: sum of %zu integers failed", n);
    return SPQR_OK;
}

/* The arrays of a packed tensor, in a fixed order, with their lengths. */
static int tensor_arrays(spqr_tensor *t, void **ptr[11], size_t len[11]) {
    const size_t stats = (size_t)t->n_groups * t->rows, q2 = (size_t)t->n_groups * t->n_qgroups * 2;
    void **p[11] = {(void **)&t->codes,     (void **)&t->scale_codes, (void **)&t->zero_codes,
                    (void **)&t->scale_q2,  (void **)&t->zero_q2,     (void **)&t->scale_f16,
                    (void **)&t->zero_f16,  (void **)&t->perm,        (void **)&t->outlier_rowptr,
                    (void **)&t->outlier_col, (void **)&t->outlier_val};
    const size_t l[11] = {t->codes_bytes, t->scale_codes_bytes, t->zero_codes_bytes, q2 * 2, q2 * 2, stats * 2,
                          stats * 2, (size_t)t->cols * 4, ((size_t)t->rows + 1) * 4, (size_t)t->nnz * 2,
                          (size_t)t->nnz * 2};
    for (int i = 0; i < 11; i++) ptr[i] = p[i], len[i] = *p[i] ? l[i] : 0;
    return 11;
}

spqr_status spqri_comm_bcast_tensor(const spqr_comm *c, spqr_tensor **t, int32_t root, spqr_err *err) {
    if (!c || c->size <= 1) return SPQR_OK;
    /* layout, then which arrays the root has, then the arrays */
    int64_t hdr[8 + 11] = {0};
    if (c->rank == root) {
        const spqr_tensor *s = *t;
        const int64_t h[8] = {s->rows, s->cols, s->wbits, s->groupsize, s->qq_scale_bits, s->qq_zero_bits,
                              s->qq_groupsize, s->nnz};
        memcpy(hdr, h, sizeof h);
        void **ptr[11];
        size_t len[11];
        tensor_arrays(*t, ptr, len);
        for (int i = 0; i < 11; i++) hdr[8 + i] = *ptr[i] != NULL;
    }
    spqr_status st = spqri_comm_bcast(c, hdr, sizeof hdr, root, err);
    if (st) return st;
    if (c->rank != root) {
        *t = NULL;
        if ((st = spqr_tensor_alloc((int32_t)hdr[0], (int32_t)hdr[1], (int32_t)hdr[2], (int32_t)hdr[3], (int32_t)hdr[4],
                                    (int32_t)hdr[5], (int32_t)hdr[6], hdr[7], (int)hdr[8 + 7], t, err)))
            return st;
    }
    void **ptr[11];
    size_t len[11];
    tensor_arrays(*t, ptr, len);
    for (int i = 0; i < 11 && !st; i++) {
        if ((*ptr[i] != NULL) != (hdr[8 + i] != 0))
            st = spqr_err_set(err, SPQR_ERR_IO, "scale-out: packed tensor layouts differ between ranks");
        else st = spqri_comm_bcast(c, *ptr[i], len[i], root, err);
    }
    if (st && c->rank != root) {
        spqr_tensor_free(*t);
        *t = NULL;
    }
    return st;
}

/* Bins by the binary exponent of a window's largest diagonal entry; a bin
 * spans HSUM_BIN_BITS exponents, so a few bins cover a block's windows. */
#define HSUM_BIN_BITS 8
#define HSUM_FRAC 40 /* bits below the bin's top: |entry| < 2^39, and 2^20 windows stay below 2^59 */
#define HSUM_BMIN (-19) /* floor(-148 / 8): float's smallest exponent */

static int32_t floor_div(int32_t a, int32_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

void spqri_hsum_init(pipe_hsum *h, int32_t cols) {
    memset(h, 0, sizeof *h);
    h->cols = cols;
    h->n = (size_t)cols * ((size_t)cols + 1) / 2;
}

void spqri_hsum_free(pipe_hsum *h) {
    for (int i = 0; i < HSUM_NBINS; i++) free(h->bin[i]);
    memset(h, 0, sizeof *h);
}

static spqr_status bin_get(pipe_hsum *h, int i, spqr_err *err) {
    if (h->bin[i]) return SPQR_OK;
    h->bin[i] = calloc(h->n, sizeof(int64_t));
    if (!h->bin[i])
        return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for a %d x %d Hessian sum (%.1f MB)", h->cols, h->cols,
                            h->n * 8.0 / 1e6);
    return SPQR_OK;
}

spqr_status spqri_hsum_add(pipe_hsum *h, const float *G, int32_t n_threads, spqr_err *err) {
    const int32_t cols = h->cols;
    float d = 0;
    for (int32_t i = 0; i < cols; i++) {
        const float v = G[(size_t)i * cols + i];
        if (!isfinite(v)) return spqr_err_set(err, SPQR_ERR_NUMERIC, "non-finite calibration activations");
        d = v > d ? v : d;
    }
    if (d == 0) return SPQR_OK; /* a window of zeros adds nothing */
    int e;
    frexpf(d, &e); /* d < 2^e */
    const int32_t b = floor_div(e, HSUM_BIN_BITS), bi = b - HSUM_BMIN;
    spqr_status st = bin_get(h, bi, err);
    if (st) return st;
    /* |G_ij| <= max diag < 2^(top - 1): scaled entries stay below 2^39 */
    const double scale = ldexp(1.0, HSUM_FRAC - HSUM_BIN_BITS * (b + 1));
    int64_t *acc = h->bin[bi];
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 32) if (n_threads > 1)
    for (int32_t i = 0; i < cols; i++) {
        int64_t *a = acc + (size_t)i * cols - (size_t)i * (i - 1) / 2 - (size_t)i; /* packed row i starts at column i */
        const float *g = G + (size_t)i * cols;
        for (int32_t j = i; j < cols; j++) a[j] += (int64_t)llrint((double)g[j] * scale);
    }
    return SPQR_OK;
}

spqr_status spqri_hsum_finish(pipe_hsum *h, const spqr_comm *c, int64_t n_rows, float *H, spqr_err *err) {
    int64_t have[HSUM_NBINS];
    for (int i = 0; i < HSUM_NBINS; i++) have[i] = h->bin[i] != NULL;
    spqr_status st = spqri_comm_sum_i64(c, have, HSUM_NBINS, err);
    int top = -1;
    for (int i = 0; i < HSUM_NBINS && !st; i++) {
        if (!have[i]) continue;
        if ((st = bin_get(h, i, err)) || (st = spqri_comm_sum_i64(c, h->bin[i], h->n, err))) break;
        top = i;
    }
    if (st) return st;
    const int32_t cols = h->cols;
    if (top < 0) { /* every window was zero */
        memset(H, 0, (size_t)cols * cols * sizeof(float));
        return SPQR_OK;
    }
    /* lower bins fold into the top one, rounded to its grid, in a fixed order
     * and only after the sum over ranks, so the split cannot matter */
    int64_t *s = h->bin[top];
    for (int i = 0; i < top; i++) {
        if (!h->bin[i]) continue;
        const int sh = HSUM_BIN_BITS * (top - i);
        const int64_t *lo = h->bin[i];
        if (sh >= 62) continue;
        const int64_t half = (int64_t)1 << (sh - 1);
        for (size_t k = 0; k < h->n; k++) s[k] += (lo[k] + half) >> sh;
    }
    const double unit = ldexp(1.0, HSUM_BIN_BITS * (top + HSUM_BMIN + 1) - HSUM_FRAC), mean = 2.0 / (double)n_rows;
    size_t k = 0;
    for (int32_t i = 0; i < cols; i++)
        for (int32_t j = i; j < cols; j++) H[(size_t)i * cols + j] = (float)((double)s[k++] * unit * mean);
    return SPQR_OK;
}
