/* libFuzzer target: the kernel layout builder (spqr_ktensor_from_tensor,
 * src/kernels/spqr_kernel_build.c) fed from a parsed .spqr file.
 *
 * The input is opened with spqr_archive_open_memory, with every checksum
 * recomputed first (as fuzz_spqr_file.c's second pass does: mutations would
 * otherwise never get past the CRCs). For every packed tensor the archive
 * accepts, the layout is built for the scalar path and for every SIMD path
 * the CPU runs, and checked against the reference kernels (src/kernels/ref.c),
 * as docs/kernels.md promises:
 *  - spqr_ktensor_dequantize is bit-identical to spqr_tensor_dequantize;
 *  - matvec and a 3-input matmul match spqr_matvec_ref / spqr_matmul_ref
 *    within 2e-5 * (sum_j |w_j x_j| + the terms the kernels' formulation
 *    cancels: sum_g |s z| sum_{j in g} |x_j| and |s z x_c| per outlier), plus
 *    the int8-activation bound sum_j |w_j| max|x| / 254 for avx512vnni
 *    (docs/kernels.md: 2e-5 * sum_j |w_j x_j| against the reference, which
 *    holds when the zero points are not far from the codes; fuzzed
 *    statistics put them anywhere). Rows whose weights or terms are not
 *    finite are skipped.
 * Building or running a layout for an accepted tensor must not fail (except
 * SPQR_ERR_UNSUPPORTED for a path this CPU lacks, and out-of-memory). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tests/spqr_file_fixup.h"
#include "format/spqr_file.h"
#include "format/tensor.h"
#include "fuzz_util.h"
#include "spqr.h"

#define NX 3

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    setenv("OMP_NUM_THREADS", "1", 1);
    return 0;
}

static void check_close(const char *what, spqr_kernel_path p, const spqr_tensor *t, const float *W, const float *x,
                        const float *y, const float *yref, int32_t n) {
    for (int32_t k = 0; k < n; k++)
        for (int32_t r = 0; r < t->rows; r++) {
            const float *w = W + (size_t)r * t->cols, *xk = x + (size_t)k * t->cols;
            double sabs = 0, swabs = 0, xmax = 0, canc = 0;
            for (int32_t j = 0; j < t->cols; j++) {
                sabs += fabs((double)w[j] * xk[j]);
                swabs += fabs((double)w[j]);
                if (fabs(xk[j]) > xmax) xmax = fabs(xk[j]);
            }
            /* s * (dot - z * sum(x_g)) and the outlier corrections value + s z */
            for (int32_t g = 0; g < t->n_groups; g++) {
                const double sz = fabs((double)spqr_tensor_scale(t, g, r) * spqr_tensor_zero(t, g, r));
                const int32_t c1 = (g + 1) * t->groupsize < t->cols ? (g + 1) * t->groupsize : t->cols;
                for (int32_t c = g * t->groupsize; c < c1; c++) canc += sz * fabs(xk[t->perm ? t->perm[c] : c]);
            }
            for (int32_t o = t->outlier_rowptr[r]; o < t->outlier_rowptr[r + 1]; o++) {
                const int32_t c = t->outlier_col[o], g = c / t->groupsize;
                canc += fabs((double)spqr_tensor_scale(t, g, r) * spqr_tensor_zero(t, g, r)) *
                        fabs(xk[t->perm ? t->perm[c] : c]);
            }
            if (!isfinite(sabs) || !isfinite(swabs) || !isfinite(canc) || sabs + canc > 1e30) continue;
            const double a = y[(size_t)k * t->rows + r], b = yref[(size_t)k * t->rows + r];
            double tol = 2e-5 * (sabs + canc) + 1e-30;
            if (p == SPQR_KERNEL_AVX512_VNNI) tol += swabs * xmax / 254.0 * 1.0001;
            FUZZ_ASSERT(isfinite(a) && fabs(a - b) <= tol,
                        "%s path %s input %d row %d: %.9g vs reference %.9g (tolerance %.3g), %dx%d w%d g%d", what,
                        spqr_kernel_path_name(p), k, r, a, b, tol, t->rows, t->cols, t->wbits, t->groupsize);
        }
}

static void check_tensor(const spqr_tensor *t, uint64_t seed) {
    const size_t rc = (size_t)t->rows * (size_t)t->cols;
    float *W = malloc(rc * sizeof *W), *W2 = malloc(rc * sizeof *W2);
    float *x = malloc((size_t)NX * t->cols * sizeof *x);
    float *y = malloc((size_t)NX * t->rows * sizeof *y), *yref = malloc((size_t)NX * t->rows * sizeof *yref);
    spqr_err err;
    if (!W || !W2 || !x || !y || !yref) goto done;
    for (size_t j = 0; j < (size_t)NX * t->cols; j++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[j] = (float)((double)(seed >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
    }
    FUZZ_ASSERT(spqr_tensor_dequantize(t, W, &err) == SPQR_OK, "dequantize: %s", err.msg);
    FUZZ_ASSERT(spqr_matmul_ref(t, x, NX, yref, &err) == SPQR_OK, "matmul_ref: %s", err.msg);
    static const spqr_kernel_path paths[] = {SPQR_KERNEL_SCALAR, SPQR_KERNEL_AVX2, SPQR_KERNEL_AVX512,
                                             SPQR_KERNEL_AVX512_VNNI};
    for (size_t pi = 0; pi < sizeof paths / sizeof paths[0]; pi++) {
        spqr_ktensor *kt = NULL;
        spqr_status s = spqr_ktensor_from_tensor(t, paths[pi], &kt, &err);
        if (s == SPQR_ERR_UNSUPPORTED && pi > 0) continue;
        if (s == SPQR_ERR_NOMEM) continue;
        FUZZ_ASSERT(s == SPQR_OK && kt, "build %s: %s", spqr_kernel_path_name(paths[pi]), err.msg);
        FUZZ_ASSERT(spqr_ktensor_path(kt) == paths[pi], "path %d instead of %d", (int)spqr_ktensor_path(kt),
                    (int)paths[pi]);
        FUZZ_ASSERT(spqr_ktensor_dequantize(kt, W2, &err) == SPQR_OK, "kt dequantize: %s", err.msg);
        FUZZ_ASSERT(!memcmp(W, W2, rc * sizeof *W), "ktensor dequantize (%s) differs from the reference",
                    spqr_kernel_path_name(paths[pi]));
        s = spqr_ktensor_matvec(kt, x, y, 1, &err);
        FUZZ_ASSERT(s == SPQR_OK || s == SPQR_ERR_NOMEM, "matvec: %s", err.msg);
        if (s == SPQR_OK) check_close("matvec", paths[pi], t, W, x, y, yref, 1);
        s = spqr_ktensor_matmul(kt, x, NX, y, 1, &err);
        FUZZ_ASSERT(s == SPQR_OK || s == SPQR_ERR_NOMEM, "matmul: %s", err.msg);
        if (s == SPQR_OK) check_close("matmul", paths[pi], t, W, x, y, yref, NX);
        spqr_ktensor_free(kt);
    }
done:
    free(W);
    free(W2);
    free(x);
    free(y);
    free(yref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = NULL;
    if (posix_memalign((void **)&buf, 64, size ? size : 1)) return 0;
    if (size) memcpy(buf, data, size);
    if (size >= sizeof(spqrf_header)) {
        const uint64_t fs = size;
        memcpy(buf + offsetof(spqrf_header, file_size), &fs, sizeof fs);
        spqrf_fixup_checksums(buf, size);
    }
    spqr_archive *a = NULL;
    spqr_err err;
    err.msg[0] = 0;
    spqr_status s = spqr_archive_open_memory(buf, size, "fuzz.spqr", &a, &err);
    if (s == SPQR_OK) {
        const uint64_t seed = fuzz_hash(data, size);
        for (int32_t i = 0; i < spqr_archive_count(a); i++) {
            const spqr_tensor *t = spqr_archive_packed_at(a, i);
            if (t) check_tensor(t, seed + (uint64_t)i);
        }
        spqr_archive_close(a);
    } else {
        fuzz_check_reject(s, &err, FUZZ_BIT(SPQR_ERR_FORMAT) | FUZZ_BIT(SPQR_ERR_UNSUPPORTED));
    }
    free(buf);
    return 0;
}
