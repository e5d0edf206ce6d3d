/* Random packed tensors for benchmarks and synthetic models: real layout,
 * real sizes, meaningless values (bounded so a forward pass stays finite). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "format/tensor.h"

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}
static float rng_unif(uint64_t *s) { return (float)((rng_next(s) >> 40) * (1.0 / 16777216.0)); }

/* Random bytes, 8 per generator step (the 7B-shaped file has ~2.5 GB of codes). */
static void fill_random(uint8_t *p, size_t n, uint64_t *s) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t r = rng_next(s);
        memcpy(p + i, &r, 8);
    }
    for (; i < n; i++) p[i] = (uint8_t)rng_next(s);
}

/* Zero the bits past the end of an n_values x bits stream, so the padding
 * is what a quantizer would write. */
static void clear_padding(uint8_t *p, size_t bytes, uint64_t n_values, int32_t bits) {
    const uint64_t used = n_values * (uint64_t)bits;
    if (bytes == 0 || used >= (uint64_t)bytes * 8) return;
    const uint64_t first_byte = used / 8;
    if (used % 8) p[first_byte] &= (uint8_t)((1u << (used % 8)) - 1u);
    for (uint64_t i = first_byte + (used % 8 ? 1 : 0); i < bytes; i++) p[i] = 0;
}

spqr_status spqr_tensor_random(int32_t rows, int32_t cols, int32_t wbits, double share, float amp, uint64_t seed,
                               spqr_tensor **out, spqr_err *err) {
    *out = NULL;
    if (rows < 1 || cols < 1 || cols > 65536 || wbits < 2 || wbits > 8 || !(share >= 0 && share <= 1) ||
        !(amp > 0 && isfinite(amp)))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG,
                            "tensor_random: rows %d, cols %d (<= 65536), wbits %d (2..8), share %g ([0, 1]), amp %g (> 0)",
                            rows, cols, wbits, share, (double)amp);
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL | 1;
    int32_t *rowptr = malloc(((size_t)rows + 1) * sizeof *rowptr);
    if (!rowptr) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    const double per_row = share * cols;
    int64_t nnz = 0;
    rowptr[0] = 0;
    for (int32_t r = 0; r < rows; r++) {
        int32_t k = (int32_t)(per_row + rng_unif(&s)); /* stochastic rounding of the mean count */
        if (k > cols) k = cols;
        nnz += k;
        if (nnz > INT32_MAX) {
            free(rowptr);
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "tensor_random: too many outliers");
        }
        rowptr[r + 1] = (int32_t)nnz;
    }
    spqr_tensor *t = NULL;
    spqr_status st = spqr_tensor_alloc(rows, cols, wbits, 16, 3, 3, 16, nnz, 1, &t, err);
    if (st) {
        free(rowptr);
        return st;
    }
    memcpy(t->outlier_rowptr, rowptr, ((size_t)rows + 1) * sizeof *rowptr);
    free(rowptr);
    for (int32_t r = 0; r < rows; r++) {
        const int32_t k0 = t->outlier_rowptr[r], k = t->outlier_rowptr[r + 1] - k0;
        /* k distinct increasing columns: one per stride of cols/k, at a random offset inside it */
        for (int32_t i = 0; i < k; i++) {
            const int64_t stride = cols / k > 0 ? cols / k : 1;
            t->outlier_col[k0 + i] = (uint16_t)(((int64_t)i * cols / k + (int64_t)(rng_next(&s) % (uint64_t)stride)) % cols);
            t->outlier_val[k0 + i] = spqr_fp32_to_fp16(amp * (2.0f * rng_unif(&s) - 1.0f));
        }
    }
    const uint64_t n_stats = (uint64_t)t->n_groups * (uint64_t)rows;
    fill_random(t->codes, t->codes_bytes, &s);
    fill_random(t->scale_codes, t->scale_codes_bytes, &s);
    fill_random(t->zero_codes, t->zero_codes_bytes, &s);
    clear_padding(t->codes, t->codes_bytes, (uint64_t)rows * (uint64_t)cols, wbits);
    clear_padding(t->scale_codes, t->scale_codes_bytes, n_stats, 3);
    clear_padding(t->zero_codes, t->zero_codes_bytes, n_stats, 3);
    /* scale = s2 (code + 1) in [s2, 8 s2]; zero = z2 code in [0, 2^b - 1];
     * |w| = scale |q - zero| <= 8 s2 (2^b - 1) = amp. */
    const float qmax = (float)((1 << wbits) - 1);
    const uint16_t s2 = spqr_fp32_to_fp16(amp / (8.0f * qmax)), s2z = spqr_fp32_to_fp16(-1.0f);
    const uint16_t z2 = spqr_fp32_to_fp16(qmax / 7.0f), z2z = spqr_fp32_to_fp16(0.0f);
    for (size_t i = 0; i < (size_t)t->n_groups * (size_t)t->n_qgroups; i++) {
        t->scale_q2[2 * i] = s2;
        t->scale_q2[2 * i + 1] = s2z;
        t->zero_q2[2 * i] = z2;
        t->zero_q2[2 * i + 1] = z2z;
    }
    for (int32_t j = 0; j < cols; j++) t->perm[j] = j;
    for (int32_t j = cols - 1; j > 0; j--) { /* Fisher-Yates: a random act-order permutation */
        int32_t k = (int32_t)(rng_next(&s) % (uint64_t)(j + 1)), tmp = t->perm[j];
        t->perm[j] = t->perm[k];
        t->perm[k] = tmp;
    }
    *out = t;
    return SPQR_OK;
}
