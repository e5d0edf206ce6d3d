/* Allocation, validation and size accounting of the packed SpQR tensor. */
#include "format/tensor.h"

#include "core/error.h"
#include "format/spqr_file.h"

#include <stdlib.h>
#include <string.h>

static int bilevel_any(int32_t qs, int32_t qz) { return qs > 0 || qz > 0; }

spqr_status spqr_tensor_alloc(int32_t rows, int32_t cols, int32_t wbits, int32_t groupsize,
                              int32_t qq_scale_bits, int32_t qq_zero_bits, int32_t qq_groupsize,
                              int64_t nnz, int has_perm, spqr_tensor **out, spqr_err *err) {
    *out = NULL;
    if (rows < 1 || cols < 1 || wbits < 2 || wbits > 8 || groupsize < 1 || qq_scale_bits < 0 ||
        qq_scale_bits > 8 || qq_zero_bits < 0 || qq_zero_bits > 8 || nnz < 0 ||
        (bilevel_any(qq_scale_bits, qq_zero_bits) && qq_groupsize < 1))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "tensor layout out of range");
    spqr_tensor *t = calloc(1, sizeof *t);
    if (!t) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory allocating a tensor");
    t->owns_memory = 1;
    t->rows = rows;
    t->cols = cols;
    t->wbits = wbits;
    t->groupsize = groupsize;
    t->qq_scale_bits = qq_scale_bits;
    t->qq_zero_bits = qq_zero_bits;
    t->qq_groupsize = bilevel_any(qq_scale_bits, qq_zero_bits) ? qq_groupsize : 0;
    t->n_groups = (int32_t)(((int64_t)cols + groupsize - 1) / groupsize);
    t->n_qgroups = bilevel_any(qq_scale_bits, qq_zero_bits) ? (int32_t)(((int64_t)rows + qq_groupsize - 1) / qq_groupsize) : 0;
    t->nnz = nnz;
    const uint64_t n_stats = (uint64_t)t->n_groups * (uint64_t)rows;
    const size_t n_q2 = (size_t)t->n_groups * (size_t)t->n_qgroups * 2;
    int ok = 1;
    t->codes_bytes = spqr_bits_bytes((uint64_t)rows * (uint64_t)cols, wbits);
    ok &= (t->codes = calloc(t->codes_bytes ? t->codes_bytes : 1, 1)) != NULL;
    if (qq_scale_bits) {
        t->scale_codes_bytes = spqr_bits_bytes(n_stats, qq_scale_bits);
        ok &= (t->scale_codes = calloc(t->scale_codes_bytes, 1)) != NULL;
        ok &= (t->scale_q2 = calloc(n_q2, sizeof(uint16_t))) != NULL;
    } else {
        ok &= (t->scale_f16 = calloc(n_stats, sizeof(uint16_t))) != NULL;
    }
    if (qq_zero_bits) {
        t->zero_codes_bytes = spqr_bits_bytes(n_stats, qq_zero_bits);
        ok &= (t->zero_codes = calloc(t->zero_codes_bytes, 1)) != NULL;
        ok &= (t->zero_q2 = calloc(n_q2, sizeof(uint16_t))) != NULL;
    } else {
        ok &= (t->zero_f16 = calloc(n_stats, sizeof(uint16_t))) != NULL;
    }
    ok &= (t->outlier_rowptr = calloc((size_t)rows + 1, sizeof(int32_t))) != NULL;
    ok &= (t->outlier_col = calloc(nnz ? (size_t)nnz : 1, sizeof(uint16_t))) != NULL;
    ok &= (t->outlier_val = calloc(nnz ? (size_t)nnz : 1, sizeof(uint16_t))) != NULL;
    if (has_perm) ok &= (t->perm = calloc((size_t)cols, sizeof(int32_t))) != NULL;
    if (!ok) {
        spqr_tensor_free(t);
        return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory allocating a %dx%d tensor", rows, cols);
    }
    *out = t;
    return SPQR_OK;
}

void spqr_tensor_free(spqr_tensor *t) {
    if (!t) return;
    if (t->owns_memory) {
        free(t->codes);
        free(t->scale_codes);
        free(t->zero_codes);
        free(t->scale_q2);
        free(t->zero_q2);
        free(t->scale_f16);
        free(t->zero_f16);
        free(t->perm);
        free(t->outlier_rowptr);
        free(t->outlier_col);
        free(t->outlier_val);
    }
    free(t);
}

spqr_status spqr_tensor_check(const spqr_tensor *t, spqr_err *err) {
    if (!t) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "tensor is NULL");
    if (t->rows < 1 || t->cols < 1)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor shape %dx%d is empty or negative", t->rows, t->cols);
    if (t->wbits < 2 || t->wbits > 8)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor wbits %d outside 2..8", t->wbits);
    if (t->groupsize < 1)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor groupsize %d < 1", t->groupsize);
    if (t->n_groups != (int32_t)(((int64_t)t->cols + t->groupsize - 1) / t->groupsize))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor n_groups %d inconsistent with cols %d / groupsize %d",
                            t->n_groups, t->cols, t->groupsize);
    if (t->qq_scale_bits < 0 || t->qq_scale_bits > 8 || t->qq_zero_bits < 0 || t->qq_zero_bits > 8)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor statistic bits outside 0..8");
    const int bilevel = bilevel_any(t->qq_scale_bits, t->qq_zero_bits);
    if (bilevel) {
        if (t->qq_groupsize < 1)
            return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor qq_groupsize %d < 1", t->qq_groupsize);
        if (t->n_qgroups != (int32_t)(((int64_t)t->rows + t->qq_groupsize - 1) / t->qq_groupsize))
            return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor n_qgroups inconsistent with rows / qq_groupsize");
    }
    const uint64_t n_stats = (uint64_t)t->n_groups * (uint64_t)t->rows;
    if (!t->codes || t->codes_bytes < spqr_bits_bytes((uint64_t)t->rows * (uint64_t)t->cols, t->wbits))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor code stream missing or too short");
    if (t->qq_scale_bits ? (!t->scale_codes || !t->scale_q2 ||
                            t->scale_codes_bytes < spqr_bits_bytes(n_stats, t->qq_scale_bits))
                         : !t->scale_f16)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor scale statistics missing or too short");
    if (t->qq_zero_bits ? (!t->zero_codes || !t->zero_q2 ||
                           t->zero_codes_bytes < spqr_bits_bytes(n_stats, t->qq_zero_bits))
                        : !t->zero_f16)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor zero statistics missing or too short");
    if (!t->outlier_rowptr) return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor outlier row pointers missing");
    if (t->nnz < 0 || t->outlier_rowptr[0] != 0 || t->outlier_rowptr[t->rows] != t->nnz)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor outlier row pointers do not span [0, nnz=%lld]",
                            (long long)t->nnz);
    if (t->nnz > 0 && (!t->outlier_col || !t->outlier_val))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor outlier arrays missing");
    for (int32_t r = 0; r < t->rows; r++) {
        if (t->outlier_rowptr[r + 1] < t->outlier_rowptr[r])
            return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor outlier row pointers decrease at row %d", r);
    }
    for (int64_t k = 0; k < t->nnz; k++) {
        if (t->outlier_col[k] >= (uint32_t)t->cols)
            return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor outlier column %u out of range (cols %d)",
                                (unsigned)t->outlier_col[k], t->cols);
    }
    if (t->perm) {
        uint8_t *seen = calloc((size_t)t->cols, 1);
        if (!seen) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory checking a permutation");
        for (int32_t j = 0; j < t->cols; j++) {
            int32_t p = t->perm[j];
            if (p < 0 || p >= t->cols || seen[p]) {
                free(seen);
                return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor perm is not a permutation (entry %d = %d)", j, p);
            }
            seen[p] = 1;
        }
        free(seen);
    }
    return SPQR_OK;
}

/* Size accounting. The formula counts, for this exact shape, the payload
 * terms of docs/method.md: b bits per weight, qq bits per first-level
 * statistic (or 16 when stored as fp16), 2 x 16 bits per second-level group
 * and 32 bits per outlier. For rows % beta2 == 0 and cols % beta1 == 0 it
 * equals b + (qs+qz)/beta1 + 2*32/(beta1*beta2) + 32*nnz/(rows*cols).
 * stored = formula + overhead exactly, where overhead is the CSR row
 * pointers, the permutation (both as the .spqr writer encodes them) and the
 * zero bits padding each bitstream to a whole byte. */
void spqr_tensor_size(const spqr_tensor *t, spqr_size_report *out) {
    memset(out, 0, sizeof *out);
    if (!t || t->rows < 1 || t->cols < 1) return;
    const uint64_t n = (uint64_t)t->rows * (uint64_t)t->cols;
    const uint64_t n_stats = (uint64_t)t->n_groups * (uint64_t)t->rows;
    const uint64_t n_q2 = (uint64_t)t->n_groups * (uint64_t)t->n_qgroups;
    uint64_t formula = n * (uint64_t)t->wbits + 32u * (uint64_t)t->nnz;
    uint64_t stored = t->codes_bytes + 4u * (uint64_t)t->nnz;
    uint64_t padding = t->codes_bytes * 8u - n * (uint64_t)t->wbits;
    if (t->qq_scale_bits) {
        formula += n_stats * (uint64_t)t->qq_scale_bits + n_q2 * 32u;
        stored += t->scale_codes_bytes + n_q2 * 4u;
        padding += t->scale_codes_bytes * 8u - n_stats * (uint64_t)t->qq_scale_bits;
    } else {
        formula += n_stats * 16u;
        stored += n_stats * 2u;
    }
    if (t->qq_zero_bits) {
        formula += n_stats * (uint64_t)t->qq_zero_bits + n_q2 * 32u;
        stored += t->zero_codes_bytes + n_q2 * 4u;
        padding += t->zero_codes_bytes * 8u - n_stats * (uint64_t)t->qq_zero_bits;
    } else {
        formula += n_stats * 16u;
        stored += n_stats * 2u;
    }
    /* The row pointers and the permutation as the writer stores them
     * (compact encodings when the values fit, docs/format.md). */
    spqrf_packed_header h;
    spqrf_packed_header_for(t, &h);
    uint64_t sizes[SPQRF_N_ARRAYS];
    const uint64_t structural = spqrf_packed_sizes(&h, SPQRF_VERSION, sizes)
                                    ? 4u * ((uint64_t)t->rows + 1) + (t->perm ? 4u * (uint64_t)t->cols : 0)
                                    : sizes[SPQRF_A_ROWPTR] + sizes[SPQRF_A_PERM];
    stored += structural;
    out->formula_bits_per_param = (double)formula / (double)n;
    out->stored_bytes = stored;
    out->stored_bits_per_param = 8.0 * (double)stored / (double)n;
    out->overhead_bits = structural * 8u + padding;
    out->overhead_bytes = (out->overhead_bits + 7) / 8;
}
