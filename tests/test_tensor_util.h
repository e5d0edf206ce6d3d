/* Random packed tensors for the kernel tests: the outlier pattern (CSR with
 * optional awkward entries) and the allocation (test_kernels.c,
 * test_kernels_avx2i8.c, test_kernel_build.c); the codes and statistics of
 * test_kernels*.c (test_kernel_build.c fills its own); the int8 paths'
 * documented input rounding. */
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

/* test_packed_alloc plus random codes (all 2^wbits - 1 when extreme),
 * statistics (bilevel codes with positive scales, or fp16) and a random
 * permutation when perm: the tensors of the kernel tests. gs <= 0 = one
 * group per row. */
static inline spqr_tensor *test_packed_random(int32_t rows, int32_t cols, int32_t wbits, int32_t gs, int32_t qs,
                                              int32_t qz, int32_t qqgs, double share, int perm, int dup, int extreme,
                                              test_rng *rng) {
    if (gs <= 0) gs = cols;
    const int32_t n_groups = (cols + gs - 1) / gs;
    spqr_tensor *t = test_packed_alloc(rows, cols, wbits, gs, qs, qz, qqgs, perm, share, 0, dup, rng);
    const uint64_t n = (uint64_t)rows * cols;
    uint8_t *v = malloc(n > 1 ? n : 1);
    const uint32_t top = (1u << wbits) - 1u;
    for (uint64_t i = 0; i < n; i++) v[i] = (uint8_t)(extreme ? top : test_rng_next(rng) % (top + 1u));
    spqr_bits_pack(v, n, wbits, t->codes);
    const uint64_t ns = (uint64_t)n_groups * rows;
    uint8_t *sv = malloc(ns);
    const int32_t qmax = (int32_t)top;
    if (qs) {
        for (uint64_t i = 0; i < ns; i++) sv[i] = (uint8_t)(test_rng_next(rng) % (1u << qs));
        spqr_bits_pack(sv, ns, qs, t->scale_codes);
        for (int64_t i = 0; i < (int64_t)n_groups * t->n_qgroups; i++) {
            t->scale_q2[2 * i] = spqr_fp32_to_fp16(0.002f + 0.01f * test_rng_uniform(rng));
            t->scale_q2[2 * i + 1] = spqr_fp32_to_fp16(-1.5f * test_rng_uniform(rng)); /* scales stay positive */
        }
    } else {
        for (uint64_t i = 0; i < ns; i++) t->scale_f16[i] = spqr_fp32_to_fp16(0.01f + 0.05f * test_rng_uniform(rng));
    }
    if (qz) {
        for (uint64_t i = 0; i < ns; i++) sv[i] = (uint8_t)(test_rng_next(rng) % (1u << qz));
        spqr_bits_pack(sv, ns, qz, t->zero_codes);
        for (int64_t i = 0; i < (int64_t)n_groups * t->n_qgroups; i++) {
            t->zero_q2[2 * i] = spqr_fp32_to_fp16((float)qmax / (float)((1 << qz) - 1) * (0.5f + test_rng_uniform(rng)));
            t->zero_q2[2 * i + 1] = spqr_fp32_to_fp16(test_rng_uniform(rng) - 0.5f);
        }
    } else {
        for (uint64_t i = 0; i < ns; i++) t->zero_f16[i] = spqr_fp32_to_fp16((float)qmax * test_rng_uniform(rng));
    }
    free(sv);
    free(v);
    if (perm) {
        for (int32_t j = 0; j < cols; j++) t->perm[j] = j;
        for (int32_t j = cols - 1; j > 0; j--) {
            int32_t k = (int32_t)(test_rng_next(rng) % (uint64_t)(j + 1)), tmp = t->perm[j];
            t->perm[j] = t->perm[k];
            t->perm[k] = tmp;
        }
    }
    return t;
}

/* The int8 paths' input, rebuilt from their documented rule: per column
 * tile (16 consecutive permuted columns of one group), scale a = max|x| /
 * 127, x^ = a * clamp(rint(x * (127 / max|x|)), +-127). half_step[orig col]
 * = a / 2, the most rounding can move x. gs <= 0 = one group per row. */
static inline void test_int8_input(int32_t cols, int32_t gs, const spqr_tensor *t, const float *x, float *xh,
                                   double *half_step) {
    if (gs <= 0) gs = cols;
    for (int32_t c0 = 0; c0 < cols;) {
        const int32_t g = c0 / gs, off = c0 - g * gs;
        int32_t c1 = c0 + (16 - off % 16);
        if (c1 > (g + 1) * gs) c1 = (g + 1) * gs;
        if (c1 > cols) c1 = cols;
        float m = 0;
        for (int32_t j = c0; j < c1; j++) m = fmaxf(m, fabsf(x[t->perm ? t->perm[j] : j]));
        const float a = m / 127.0f, inv = m > 0 ? 127.0f / m : 0.0f;
        for (int32_t j = c0; j < c1; j++) {
            const int32_t col = t->perm ? t->perm[j] : j;
            float v = rintf(x[col] * inv);
            v = v > 127 ? 127 : v < -127 ? -127 : v;
            xh[col] = a * v;
            half_step[col] = 0.5 * a;
        }
        c0 = c1;
    }
}

#endif
