/* spqr_tensor_random (benchmarks, synthetic models): the tensor passes the
 * structural check, weights stay in [-amp, amp], the outlier share and the
 * permutation are as asked, padding bits are zero, the same seed gives the
 * same bytes, and the fast kernel agrees with the reference on it. */
#include "format/tensor.h"
#include "test_util.h"

static int same_tensor(const spqr_tensor *a, const spqr_tensor *b) {
    return a->nnz == b->nnz && a->codes_bytes == b->codes_bytes && !memcmp(a->codes, b->codes, a->codes_bytes) &&
           !memcmp(a->scale_codes, b->scale_codes, a->scale_codes_bytes) &&
           !memcmp(a->zero_codes, b->zero_codes, a->zero_codes_bytes) &&
           !memcmp(a->perm, b->perm, (size_t)a->cols * sizeof *a->perm) &&
           !memcmp(a->outlier_col, b->outlier_col, (size_t)a->nnz * 2) &&
           !memcmp(a->outlier_val, b->outlier_val, (size_t)a->nnz * 2);
}

/* Bits past n_values * bits in the last byte of a stream. */
static int padding_zero(const uint8_t *p, size_t bytes, uint64_t n_values, int bits) {
    const uint64_t used = n_values * (uint64_t)bits;
    for (uint64_t b = used; b < (uint64_t)bytes * 8; b++)
        if (p[b / 8] >> (b % 8) & 1) return 0;
    return 1;
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    spqr_err err = {0};
    const int32_t shapes[][2] = {{64, 256}, {33, 100}, {17, 7}, {160, 1000}};
    const int32_t wb[] = {3, 4, 2, 8};
    const double shares[] = {0.01, 0.0, 0.2, 1.0};
    for (int c = 0; c < 4; c++) {
        const int32_t rows = shapes[c][0], cols = shapes[c][1], wbits = wb[c];
        const double share = shares[c];
        const float amp = 1.0f / sqrtf((float)cols);
        spqr_tensor *t = NULL, *t2 = NULL, *t3 = NULL;
        CHECK(spqr_tensor_random(rows, cols, wbits, share, amp, 7 + c, &t, &err) == SPQR_OK);
        CHECK(spqr_tensor_random(rows, cols, wbits, share, amp, 7 + c, &t2, &err) == SPQR_OK);
        CHECK(spqr_tensor_random(rows, cols, wbits, share, amp, 8 + c, &t3, &err) == SPQR_OK);
        if (!t || !t2 || !t3) break;
        CHECK(spqr_tensor_check(t, &err) == SPQR_OK);
        CHECK(t->wbits == wbits && t->groupsize == 16 && t->qq_scale_bits == 3 && t->qq_zero_bits == 3 &&
              t->qq_groupsize == 16 && t->perm);
        CHECK(same_tensor(t, t2));
        CHECK(!same_tensor(t, t3));
        const double got = (double)t->nnz / ((double)rows * cols);
        CHECK_MSG(fabs(got - share) <= 0.01 + 0.5 / cols, "share %g asked %g", got, share);
        int identity = 1;
        for (int32_t j = 0; j < cols; j++) identity &= t->perm[j] == j;
        CHECK(!identity || cols < 8);
        for (int32_t r = 0; r < rows; r++) /* strictly increasing columns per row */
            for (int32_t k = t->outlier_rowptr[r] + 1; k < t->outlier_rowptr[r + 1]; k++)
                CHECK_MSG(t->outlier_col[k] > t->outlier_col[k - 1], "row %d", r);
        const uint64_t n_stats = (uint64_t)t->n_groups * (uint64_t)rows;
        CHECK(padding_zero(t->codes, t->codes_bytes, (uint64_t)rows * cols, wbits));
        CHECK(padding_zero(t->scale_codes, t->scale_codes_bytes, n_stats, 3));
        CHECK(padding_zero(t->zero_codes, t->zero_codes_bytes, n_stats, 3));

        float *W = malloc(sizeof(float) * (size_t)rows * cols), *x = malloc(sizeof(float) * cols);
        float *y = malloc(sizeof(float) * rows), *yr = malloc(sizeof(float) * rows);
        CHECK(spqr_tensor_dequantize(t, W, &err) == SPQR_OK);
        float wmax = 0;
        int finite = 1, nonzero = 0;
        for (size_t i = 0; i < (size_t)rows * cols; i++) {
            finite &= isfinite(W[i]) != 0;
            nonzero += W[i] != 0;
            if (fabsf(W[i]) > wmax) wmax = fabsf(W[i]);
        }
        CHECK(finite);
        CHECK_MSG(wmax <= amp * 1.002f, "max |w| %g > amp %g", wmax, amp); /* fp16 rounding of the stats */
        CHECK_MSG(wmax > 0.3f * amp && nonzero > rows * cols / 2, "weights too small: max %g, %d nonzero", wmax, nonzero);
        /* the fast kernel reads the tensor as the reference does (scalar path: exact
         * fp32 activations; AUTO may round them to int8) */
        for (int32_t j = 0; j < cols; j++) x[j] = (float)((j * 37) % 11) - 5.0f;
        spqr_ktensor *kt = NULL;
        CHECK(spqr_ktensor_from_tensor(t, SPQR_KERNEL_SCALAR, &kt, &err) == SPQR_OK);
        CHECK(spqr_matvec_ref(t, x, yr, &err) == SPQR_OK);
        if (kt) {
            CHECK(spqr_ktensor_matvec(kt, x, y, 1, &err) == SPQR_OK);
            for (int32_t r = 0; r < rows; r++) {
                double bound = 0;
                for (int32_t j = 0; j < cols; j++) bound += fabs((double)W[(size_t)r * cols + j] * x[j]);
                CHECK_NEAR(y[r], yr[r], 1e-5 * bound + 1e-7);
            }
        }
        spqr_ktensor_free(kt);
        free(W), free(x), free(y), free(yr);
        spqr_tensor_free(t), spqr_tensor_free(t2), spqr_tensor_free(t3);
    }
    /* bad arguments are refused, not crashed on */
    spqr_tensor *t = NULL;
    CHECK(spqr_tensor_random(0, 16, 3, 0.01, 0.1f, 1, &t, &err) == SPQR_ERR_INVALID_ARG && !t);
    CHECK(spqr_tensor_random(16, 70000, 3, 0.01, 0.1f, 1, &t, &err) == SPQR_ERR_INVALID_ARG && !t);
    CHECK(spqr_tensor_random(16, 16, 9, 0.01, 0.1f, 1, &t, &err) == SPQR_ERR_INVALID_ARG && !t);
    CHECK(spqr_tensor_random(16, 16, 3, 1.5, 0.1f, 1, &t, &err) == SPQR_ERR_INVALID_ARG && !t);
    CHECK(spqr_tensor_random(16, 16, 3, 0.01, 0.0f, 1, &t, &err) == SPQR_ERR_INVALID_ARG && !t);
    CHECK(spqr_tensor_random(16, 16, 3, 0.01, NAN, 1, &t, &err) == SPQR_ERR_INVALID_ARG && !t);
    TEST_SUMMARY();
}
