/* Dense and packed linear layers. The dense fp16 matvec is the decode hot
 * path: it is memory-bound, so the SIMD paths only need to convert and
 * multiply-add as fast as the weights stream in. Each ISA path is a
 * separate function compiled with a target attribute and picked at run
 * time; the scalar path is the reference they are tested against. The ISA
 * kernels live in linear_x86.c and linear_neon.c (linear_simd.h). */
#include "model/linear.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "format/tensor.h"
#include "model/linear_simd.h"

/* ---- dispatch ---- */

/* Below this many multiply-adds a parallel region costs more than it
 * saves; on a shared machine a fork/join can cost milliseconds. */
#define LINEAR_PAR_MIN (1 << 18)

spqr_isa linear_isa_best(void) {
    if (linear_x86_has(SPQR_ISA_AVX512)) return SPQR_ISA_AVX512;
    if (linear_x86_has(SPQR_ISA_AVX2)) return SPQR_ISA_AVX2;
    if (linear_neon_supported()) return SPQR_ISA_NEON;
    return SPQR_ISA_SCALAR;
}

const char *linear_isa_name(spqr_isa isa) {
    switch (isa) {
    case SPQR_ISA_AUTO: return "auto";
    case SPQR_ISA_SCALAR: return "scalar";
    case SPQR_ISA_AVX2: return "avx2+f16c";
    case SPQR_ISA_AVX512: return "avx512f";
    case SPQR_ISA_NEON: return "neon";
    }
    return "?";
}

int linear_isa_available(spqr_isa isa) {
    switch (isa) {
    case SPQR_ISA_SCALAR: return 1;
    case SPQR_ISA_AVX2:
    case SPQR_ISA_AVX512: return linear_x86_has(isa);
    case SPQR_ISA_NEON: return linear_neon_supported();
    default: return 0;
    }
}

typedef float (*dot_fn)(const void *w, const float *x, int32_t n);

static dot_fn pick_dot(spqr_linear_kind kind, spqr_isa isa) {
    static const dot_fn table[3][4] = {
        /* scalar, avx2, avx512, neon */
        {(dot_fn)linear_dot_f32_scalar, (dot_fn)linear_dot_f32_avx2, (dot_fn)linear_dot_f32_avx512,
         (dot_fn)linear_dot_f32_neon},
        {(dot_fn)linear_dot_f16_scalar, (dot_fn)linear_dot_f16_avx2, (dot_fn)linear_dot_f16_avx512,
         (dot_fn)linear_dot_f16_neon},
        {(dot_fn)linear_dot_bf16_scalar, (dot_fn)linear_dot_bf16_avx2, (dot_fn)linear_dot_bf16_avx512,
         (dot_fn)linear_dot_bf16_neon},
    };
    int col = isa == SPQR_ISA_NEON ? 3 : isa == SPQR_ISA_AVX512 ? 2 : isa == SPQR_ISA_AVX2 ? 1 : 0;
    return table[kind][col];
}

static size_t elem_size(spqr_linear_kind kind) { return kind == SPQR_LINEAR_F32 ? 4 : 2; }

uint64_t linear_bytes(const spqr_linear *lin) {
    if (lin->kind == SPQR_LINEAR_PACKED) {
        spqr_size_report r;
        spqr_tensor_size(lin->packed, &r);
        return r.stored_bytes;
    }
    return (uint64_t)lin->rows * (uint64_t)lin->cols * elem_size(lin->kind);
}

static spqr_status check_lin(const spqr_linear *lin, spqr_err *err) {
    if (!lin || lin->rows <= 0 || lin->cols <= 0) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "linear: bad shape");
    if (lin->kind == SPQR_LINEAR_PACKED ? !lin->packed : !lin->data)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "linear: no weights");
    if ((unsigned)lin->kind > SPQR_LINEAR_PACKED) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "linear: bad kind");
    return SPQR_OK;
}

/* Rows at least this long use dot4: below it x stays in L1 and one row
 * streaming at a time measured faster (4096 inputs: 23.8 vs 18.2 GB/s on
 * one core). */
#define LINEAR_DOT4_MIN 6144

/* y[r0 .. r0+3] (fewer at the end) of an fp16 linear, AVX-512: dot4 where
 * four rows remain, dot (the same bits per row) for the rest. */
static void rows4(const spqr_linear *lin, dot_fn dot, int32_t r0, const float *x, float *y) {
    const uint16_t *w = (const uint16_t *)lin->data + (size_t)r0 * lin->cols;
    if (r0 + 4 <= lin->rows) {
        linear_dot4_f16_avx512(w, (size_t)lin->cols, x, lin->cols, y + r0);
        return;
    }
    for (int32_t r = r0; r < lin->rows; r++, w += lin->cols) y[r] = dot(w, x, lin->cols);
}

#define LINEAR_MULTI_MAX 16

/* One token through k (1..16) dense linears of one kind taking the same
 * x, rows of all of them in one parallel loop: fp16 rows of >= 6144 inputs
 * four at a time (AVX-512; blocks never cross linears), else one dot per
 * row. isa is resolved and available. */
static void dense_matvec_multi(const spqr_linear *const *lins, int32_t k, const float *x, float *const *ys,
                               int32_t n_threads, spqr_isa isa) {
    const dot_fn dot = pick_dot(lins[0]->kind, isa);
    const int32_t cols = lins[0]->cols;
    const size_t row_bytes = (size_t)cols * elem_size(lins[0]->kind);
    const int four = lins[0]->kind == SPQR_LINEAR_F16 && isa == SPQR_ISA_AVX512 && cols >= LINEAR_DOT4_MIN;
    int32_t start[LINEAR_MULTI_MAX + 1]; /* first row (or block of 4 rows) of each linear */
    start[0] = 0;
    for (int32_t i = 0; i < k; i++) start[i + 1] = start[i] + (four ? (lins[i]->rows + 3) / 4 : lins[i]->rows);
    const int32_t total = start[k];
    int64_t weights = 0;
    for (int32_t i = 0; i < k; i++) weights += (int64_t)lins[i]->rows * cols;
    if (n_threads < 1) n_threads = 1;
    /* Small layers are not worth waking threads for. */
    const int par = weights >= LINEAR_PAR_MIN && n_threads > 1;
#pragma omp parallel for num_threads(n_threads) schedule(static) if (par)
    for (int32_t r = 0; r < total; r++) {
        int32_t i = 0;
        while (r >= start[i + 1]) i++;
        const int32_t rr = r - start[i];
        if (four) rows4(lins[i], dot, 4 * rr, x, ys[i]);
        else ys[i][rr] = dot((const char *)lins[i]->data + (size_t)rr * row_bytes, x, cols);
    }
}

spqr_status linear_matvec_isa(const spqr_linear *lin, const float *x, float *y, int32_t n_threads, spqr_isa isa,
                              spqr_err *err) {
    spqr_status st = check_lin(lin, err);
    if (st) return st;
    if (lin->kind == SPQR_LINEAR_PACKED)
        return lin->fast ? spqr_ktensor_matvec(lin->fast, x, y, n_threads, err) : spqr_matvec_ref(lin->packed, x, y, err);
    if (isa == SPQR_ISA_AUTO) isa = linear_isa_best();
    if (!linear_isa_available(isa))
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "linear: this CPU lacks %s", linear_isa_name(isa));
    dense_matvec_multi(&lin, 1, x, &y, n_threads, isa);
    return SPQR_OK;
}

spqr_status linear_matvec(const spqr_linear *lin, const float *x, float *y, int32_t n_threads, spqr_err *err) {
    return linear_matvec_isa(lin, x, y, n_threads, SPQR_ISA_AUTO, err);
}

static void widen_rows(const spqr_linear *lin, int32_t r0, int32_t nr, float *dst) {
    const size_t count = (size_t)nr * lin->cols;
    const uint16_t *src = (const uint16_t *)lin->data + (size_t)r0 * lin->cols;
    if (lin->kind == SPQR_LINEAR_F16) {
        const spqr_isa isa = linear_isa_best();
        if (isa == SPQR_ISA_AVX512) linear_widen_f16_avx512(src, dst, count);
        else if (isa == SPQR_ISA_AVX2) linear_widen_f16_avx2(src, dst, count);
        else if (isa == SPQR_ISA_NEON) linear_widen_f16_neon(src, dst, count);
        else linear_widen_f16_scalar(src, dst, count);
    } else {
#pragma omp simd
        for (size_t i = 0; i < count; i++) dst[i] = linear_b2f(src[i]);
    }
}

spqr_status linear_row(const spqr_linear *lin, int32_t r, float *dst, spqr_err *err) {
    spqr_status st = check_lin(lin, err);
    if (st) return st;
    if (r < 0 || r >= lin->rows) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "linear: row %d out of range", r);
    if (lin->kind == SPQR_LINEAR_PACKED) {
        spqr_tensor_row(lin->packed, r, dst); /* a quantized embedding */
        return SPQR_OK;
    }
    if (lin->kind == SPQR_LINEAR_F32) memcpy(dst, (const float *)lin->data + (size_t)r * lin->cols, (size_t)lin->cols * 4);
    else widen_rows(lin, r, 1, dst);
    return SPQR_OK;
}

/* Up to this many vectors, matmul is n dot products per row (memory-bound
 * like decode); above it, fp32 tiles + sgemm (compute-bound) win. */
#define LINEAR_SMALL_BATCH 8

/* Rows per tile: about 256 KB of fp32 weights, so a tile stays in L2 while
 * sgemm walks the n activations, and at least 8 rows. */
static int32_t tile_rows(int32_t cols) {
    int32_t tr = (int32_t)((256 * 1024 / 4) / cols);
    return tr < 8 ? 8 : tr;
}

spqr_status linear_matmul(const spqr_linear *lin, const float *X, int32_t n, float *Y, int32_t n_threads,
                          spqr_err *err) {
    spqr_status st = check_lin(lin, err);
    if (st) return st;
    if (n <= 0) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "linear: n = %d", n);
    if (lin->kind == SPQR_LINEAR_PACKED)
        return lin->fast ? spqr_ktensor_matmul(lin->fast, X, n, Y, n_threads, err)
                         : spqr_matmul_ref(lin->packed, X, n, Y, err);
    if (n == 1) return linear_matvec(lin, X, Y, n_threads, err);
    if (n_threads < 1) n_threads = 1;
    const int32_t rows = lin->rows, cols = lin->cols;
    if (n <= LINEAR_SMALL_BATCH) {
        /* Few vectors: widening whole tiles costs more than it saves. Each
         * row is read from memory once and stays in L1 for its n dots. */
        const dot_fn dot = pick_dot(lin->kind, linear_isa_best());
        const size_t row_bytes = (size_t)cols * elem_size(lin->kind);
        const char *base = lin->data;
        const int par = (int64_t)rows * cols * n >= LINEAR_PAR_MIN && n_threads > 1;
#pragma omp parallel for num_threads(n_threads) schedule(static) if (par)
        for (int32_t r = 0; r < rows; r++)
            for (int32_t t = 0; t < n; t++)
                Y[(size_t)t * rows + r] = dot(base + (size_t)r * row_bytes, X + (size_t)t * cols, cols);
        return SPQR_OK;
    }
    const int32_t tr = tile_rows(cols);
    const int32_t n_tiles = (rows + tr - 1) / tr;
    if (n_threads > n_tiles) n_threads = n_tiles;
    if ((int64_t)rows * cols * n < 8 * (int64_t)LINEAR_PAR_MIN) n_threads = 1;
    float *bufs = NULL;
    if (lin->kind != SPQR_LINEAR_F32) {
        bufs = malloc((size_t)n_threads * tr * cols * sizeof(float));
        if (!bufs) return spqr_err_set(err, SPQR_ERR_NOMEM, "linear: out of memory for a %d x %d tile", tr, cols);
    }
    /* Each thread widens its own tiles and runs a single-threaded sgemm on
     * them (the CLI sets OpenBLAS to one thread; parallelism is ours). */
#pragma omp parallel num_threads(n_threads) if (n_threads > 1)
    {
        float *buf = bufs ? bufs + (size_t)omp_get_thread_num() * tr * cols : NULL;
#pragma omp for schedule(dynamic, 1)
        for (int32_t t = 0; t < n_tiles; t++) {
            const int32_t r0 = t * tr, nr = rows - r0 < tr ? rows - r0 : tr;
            const float *Wt;
            if (lin->kind == SPQR_LINEAR_F32) {
                Wt = (const float *)lin->data + (size_t)r0 * cols;
            } else {
                widen_rows(lin, r0, nr, buf);
                Wt = buf;
            }
            /* Y[:, r0:r0+nr] = X[n][cols] * Wt[nr][cols]^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nr, cols, 1.0f, X, cols, Wt, cols, 0.0f, Y + r0,
                        rows);
        }
    }
    free(bufs);
    return SPQR_OK;
}

spqr_status linear_matmul_multi(const spqr_linear *const *lins, int32_t k, const float *X, int32_t n, float *const *Ys,
                                int32_t n_threads, spqr_err *err) {
    if (!lins || !Ys || k < 1 || k > LINEAR_MULTI_MAX)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "linear: %d linears in one call (1..%d)", k, LINEAR_MULTI_MAX);
    int fast = n == 1, dense = n == 1;
    for (int32_t i = 0; i < k; i++) {
        spqr_status st = check_lin(lins[i], err);
        if (st) return st;
        if (!Ys[i]) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "linear: output %d is NULL", i);
        const int same_in = lins[i]->cols == lins[0]->cols;
        fast &= same_in && lins[i]->kind == SPQR_LINEAR_PACKED && lins[i]->fast != NULL;
        dense &= same_in && lins[i]->kind != SPQR_LINEAR_PACKED && lins[i]->kind == lins[0]->kind;
    }
    if (fast && k > 1) {
        const spqr_ktensor *kts[LINEAR_MULTI_MAX];
        for (int32_t i = 0; i < k; i++) kts[i] = lins[i]->fast;
        return spqr_ktensor_matvec_multi(kts, k, X, Ys, n_threads, err);
    }
    if (dense && k > 1) {
        dense_matvec_multi(lins, k, X, Ys, n_threads, linear_isa_best());
        return SPQR_OK;
    }
    for (int32_t i = 0; i < k; i++) {
        spqr_status st = linear_matmul(lins[i], X, n, Ys[i], n_threads, err);
        if (st) return st;
    }
    return SPQR_OK;
}
