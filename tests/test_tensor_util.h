/* Random packed tensors for the kernel tests: the outlier pattern (CSR with
 * optional awkward entries) and the allocation, shared by test_kernels.c
 * and test_kernel_build.c; each test then fills codes and statistics with
 * its own distributions. */
#ifndef SPQR_TEST_TENSOR_UTIL_H
#define SPQR_TEST_TENSOR_UTIL_H

#include "format/tensor.h"
#include "spqr.h"
#include "test_util.h"

enum {
    TEST_DUP_NONE = 0,
    TEST_DUP_FIRST = 1,  /* each row with outliers repeats its first entry at its end */
    TEST_DUP_RANDOM = 2, /* ... repeats a random one of its entries */
};

/* A tensor with outliers drawn per weight with probability `share` (fp16
 * values ~ N(0, 4^2)); `swap` puts each row's first and last columns out of
 * order; `dup` adds a later duplicate (r, c) per row (TEST_DUP_*). Codes
 * and statistics are left for the caller. Exits on allocation failure. */
static inline spqr_tensor *test_packed_alloc(int32_t rows, int32_t cols, int32_t wbits, int32_t gs, int32_t qs,
                                             int32_t qz, int32_t qqgs, int perm, double share, int swap, int dup,
                                             test_rng *rng) {
    int32_t *rowptr = calloc((size_t)rows + 1, 4);
    uint16_t *col = malloc(((size_t)rows * cols + rows) * 2);
    int64_t nnz = 0;
    for (int32_t r = 0; r < rows; r++) {
        const int64_t r0 = nnz;
        for (int32_t j = 0; j < cols; j++)
            if (test_rng_uniform(rng) < share) col[nnz++] = (uint16_t)j;
        if (swap && nnz - r0 >= 2) {
            const uint16_t x = col[r0];
            col[r0] = col[nnz - 1];
            col[nnz - 1] = x;
        }
        if (dup == TEST_DUP_FIRST && nnz > r0) col[nnz] = col[r0], nnz++;
        if (dup == TEST_DUP_RANDOM && nnz > r0)
            col[nnz] = col[r0 + (int64_t)(test_rng_next(rng) % (uint64_t)(nnz - r0))], nnz++;
        rowptr[r + 1] = (int32_t)nnz;
    }
    spqr_tensor *t = NULL;
    spqr_err err;
    if (spqr_tensor_alloc(rows, cols, wbits, gs, qs, qz, qqgs, nnz, perm, &t, &err) != SPQR_OK) {
        fprintf(stderr, "alloc: %s\n", err.msg);
        exit(1);
    }
    memcpy(t->outlier_rowptr, rowptr, ((size_t)rows + 1) * 4);
    memcpy(t->outlier_col, col, (size_t)nnz * 2);
    for (int64_t k = 0; k < nnz; k++) t->outlier_val[k] = spqr_fp32_to_fp16(4.0f * test_rng_normal(rng));
    free(rowptr);
    free(col);
    return t;
}

#endif
