/* Dense and packed linear layers: dispatch only. The kernels live in
 * src/kernels/ behind ops tables (kernels.h): dense_*.c for fp32/fp16/bf16
 * rows, spqr_kernel*.c for the packed kind; one detector (kernels/cpu.h)
 * says what the CPU runs. Scratch comes from the caller's linear_ctx. */
#include "model/linear.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "format/tensor.h"
#include "kernels/dense.h"
#include "kernels/kernels.h"

/* ---- dispatch ---- */

/* Below this many multiply-adds a parallel region costs more than it
 * saves; on a shared machine a fork/join can cost milliseconds. */
#define LINEAR_PAR_MIN (1 << 18)

static const spqr_dense_ops *ops_of(spqr_isa isa) {
    switch (isa) {
    case SPQR_ISA_SCALAR: return &spqri_dense_ops_scalar;
    case SPQR_ISA_AVX2: return &spqri_dense_ops_avx2;
    case SPQR_ISA_AVX512: return &spqri_dense_ops_avx512;
    case SPQR_ISA_NEON: return &spqri_dense_ops_neon;
    default: return NULL;
    }
}

const spqr_dense_ops *spqri_linear_ops(const linear_ctx *c) { return ops_of(c->isa); }

int spqri_linear_isa_available(spqr_isa isa) {
    const spqr_dense_ops *ops = ops_of(isa);
    const spqr_cpu cpu = spqr_cpu_detect();
    return ops && ops->supported(&cpu);
}

spqr_isa spqri_linear_isa_best(void) {
    static const spqr_isa order[] = {SPQR_ISA_AVX512, SPQR_ISA_AVX2, SPQR_ISA_NEON};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (spqri_linear_isa_available(order[i])) return order[i];
    return SPQR_ISA_SCALAR;
}

spqr_status spqri_linear_dense_from_env(spqr_isa *isa, int *gemm_blas, spqr_err *err) {
    static const struct {
        const char *name;
        spqr_isa isa;
    } names[] = {{"scalar", SPQR_ISA_SCALAR}, {"avx2", SPQR_ISA_AVX2}, {"avx512", SPQR_ISA_AVX512}, {"neon", SPQR_ISA_NEON}};
    const char *env = getenv("SPQR_DENSE_ISA");
    *isa = spqri_linear_isa_best();
    if (env && *env && strcmp(env, "auto")) {
        size_t i = 0;
        while (i < sizeof names / sizeof names[0] && strcmp(env, names[i].name)) i++;
        if (i == sizeof names / sizeof names[0])
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "SPQR_DENSE_ISA='%.40s' is not one of scalar, avx2, avx512, neon, auto",
                                env);
        if (!spqri_linear_isa_available(names[i].isa))
            return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "SPQR_DENSE_ISA=%s: this CPU cannot run it (its best is %s)",
                                names[i].name, spqri_linear_isa_name(*isa));
        *isa = names[i].isa;
    }
    const char *gm = getenv("SPQR_DENSE_GEMM");
    *gemm_blas = gm && !strcmp(gm, "blas");
    if (gm && *gm && !*gemm_blas && strcmp(gm, "own") && strcmp(gm, "auto"))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "SPQR_DENSE_GEMM='%.40s' is not one of own, blas, auto", gm);
    return SPQR_OK;
}

const char *spqri_linear_isa_name(spqr_isa isa) {
    const spqr_dense_ops *ops = ops_of(isa);
    return isa == SPQR_ISA_AUTO ? "auto" : ops ? ops->name : "?";
}

static dense_dot_fn pick_dot(spqr_linear_kind kind, const spqr_dense_ops *ops) { return ops->dot[kind]; }

static size_t elem_size(spqr_linear_kind kind) { return kind == SPQR_LINEAR_F32 ? 4 : 2; }

uint64_t spqri_linear_bytes(const spqr_linear *lin) {
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

/* Rows at least this long use dot4: below it x stays in L1 and streaming
 * one row at a time measured faster (bench-kernel, one core). */
#define LINEAR_DOT4_MIN 6144

/* y[r0 .. r0+3] (fewer at the end) of an fp16 linear: dot4 where four rows
 * remain, dot (the same bits per row) for the rest. */
static void rows4(const spqr_linear *lin, const spqr_dense_ops *ops, int32_t r0, const float *x, float *y) {
    const uint16_t *w = (const uint16_t *)lin->data + (size_t)r0 * lin->cols;
    if (r0 + 4 <= lin->rows) {
        ops->dot4_f16(w, (size_t)lin->cols, x, lin->cols, y + r0);
        return;
    }
    for (int32_t r = r0; r < lin->rows; r++, w += lin->cols) y[r] = ops->dot[SPQR_LINEAR_F16](w, x, lin->cols);
}

/* One token through k (1..16) dense linears of one kind taking the same
 * x: the work units are rows, or blocks of four fp16 rows of >= 6144
 * inputs (where the path has dot4; blocks never cross linears). ops is
 * available on this CPU. */
static void dense_job_init(linear_job *j, const spqr_linear *const *lins, int32_t k, const float *x, float *const *ys,
                           const spqr_dense_ops *ops, int32_t n_threads) {
    j->mode = LINEAR_JOB_DENSE;
    j->k = k;
    j->x = x;
    j->ops = ops;
    j->four = lins[0]->kind == SPQR_LINEAR_F16 && ops->dot4_f16 && lins[0]->cols >= LINEAR_DOT4_MIN;
    j->start[0] = 0;
    for (int32_t i = 0; i < k; i++) {
        j->lins[i] = lins[i];
        j->ys[i] = ys[i];
        j->start[i + 1] = j->start[i] + (j->four ? (lins[i]->rows + 3) / 4 : lins[i]->rows);
    }
    j->cut = spqri_chunks(j->start[k], LINEAR_DENSE_CHUNK, n_threads);
    j->n_chunks = j->cut.n_chunks;
}

/* Work unit u of a dense job: one row's dot, or rows4. */
static void dense_unit(const linear_job *j, int32_t u) {
    int32_t i = 0;
    while (u >= j->start[i + 1]) i++;
    const int32_t rr = u - j->start[i];
    const spqr_linear *lin = j->lins[i];
    if (j->four) rows4(lin, j->ops, 4 * rr, j->x, j->ys[i]);
    else {
        const size_t row_bytes = (size_t)lin->cols * elem_size(lin->kind);
        j->ys[i][rr] = pick_dot(lin->kind, j->ops)((const char *)lin->data + (size_t)rr * row_bytes, j->x, lin->cols);
    }
}

static void dense_matvec_multi(const spqr_linear *const *lins, int32_t k, const float *x, float *const *ys,
                               int32_t n_threads, const spqr_dense_ops *ops) {
    linear_job j;
    dense_job_init(&j, lins, k, x, ys, ops, n_threads);
    const int32_t total = j.start[k];
    int64_t weights = 0;
    for (int32_t i = 0; i < k; i++) weights += (int64_t)lins[i]->rows * lins[i]->cols;
    if (n_threads < 1) n_threads = 1;
    /* Small layers are not worth waking threads for. */
    const int par = weights >= LINEAR_PAR_MIN && n_threads > 1;
#pragma omp parallel for num_threads(n_threads) schedule(static) if (par)
    for (int32_t u = 0; u < total; u++) dense_unit(&j, u);
}

static spqr_status check_ctx(const linear_ctx *ctx, spqr_err *err) {
    if (!ctx) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "linear: no context");
    if (ctx->isa == SPQR_ISA_AUTO || !ops_of(ctx->isa))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "linear: context without dense kernels (spqri_linear_ctx_init)");
    return SPQR_OK;
}

spqr_status spqri_linear_matvec_isa(const spqr_linear *lin, const float *x, float *y, const linear_ctx *ctx, spqr_isa isa,
                              spqr_err *err) {
    spqr_status st = check_lin(lin, err);
    if (st || (st = check_ctx(ctx, err))) return st;
    if (lin->kind == SPQR_LINEAR_PACKED)
        return lin->fast ? spqri_kt_matvec_multi_ws(&lin->fast, 1, x, &y, ctx->n_threads, ctx->scratch, ctx->scratch_bytes, err)
                         : spqr_matvec_ref(lin->packed, x, y, err);
    if (isa == SPQR_ISA_AUTO) isa = ctx->isa;
    if (!spqri_linear_isa_available(isa))
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "linear: this CPU lacks %s", spqri_linear_isa_name(isa));
    dense_matvec_multi(&lin, 1, x, &y, ctx->n_threads, ops_of(isa));
    return SPQR_OK;
}

spqr_status spqri_linear_matvec(const spqr_linear *lin, const float *x, float *y, const linear_ctx *ctx, spqr_err *err) {
    return spqri_linear_matvec_isa(lin, x, y, ctx, SPQR_ISA_AUTO, err);
}

static void widen_rows(const spqr_linear *lin, const spqr_dense_ops *ops, int32_t r0, int32_t nr, float *dst) {
    const size_t count = (size_t)nr * lin->cols;
    const uint16_t *src = (const uint16_t *)lin->data + (size_t)r0 * lin->cols;
    if (lin->kind == SPQR_LINEAR_F16) ops->widen_f16(src, dst, count);
    else ops->widen_bf16(src, dst, count);
}

spqr_status spqri_linear_row(const spqr_linear *lin, int32_t r, float *dst, spqr_err *err) {
    spqr_status st = check_lin(lin, err);
    if (st) return st;
    if (r < 0 || r >= lin->rows) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "linear: row %d out of range", r);
    if (lin->kind == SPQR_LINEAR_PACKED) {
        spqr_tensor_row(lin->packed, r, dst); /* a quantized embedding */
        return SPQR_OK;
    }
    if (lin->kind == SPQR_LINEAR_F32) memcpy(dst, (const float *)lin->data + (size_t)r * lin->cols, (size_t)lin->cols * 4);
    else widen_rows(lin, ops_of(spqri_linear_isa_best()), r, 1, dst);
    return SPQR_OK;
}

/* Up to this many vectors, matmul is n dot products per row (memory-bound
 * like decode); above it, fp32 tiles + sgemm (compute-bound) win. */
#define LINEAR_SMALL_BATCH 8

/* Rows per tile: at least 128, and about 256 KB of fp32 weights where rows
 * are short. OpenBLAS packs X again for every sgemm call, so a tile of few
 * long rows (the 8-32 rows 256 KB held at 4096-11008 inputs) spent its time
 * repacking X (bench/results/kernels-2026-12-06.md). */
static int32_t tile_rows(int32_t cols) {
    const int32_t tr = (int32_t)((256 * 1024 / 4) / cols);
    return tr < 128 ? 128 : tr;
}

/* Rows per tile on the gemm_f16 path, which repacks nothing: short tiles
 * cost nothing there and keep a tile's rows in L2 while every input passes
 * (64 rows: 1-6% faster than 128 on AVX2, 7B shapes). */
#define GEMM_TILE_ROWS 64

/* Threads and rows per tile of a batched dense product: tiles of at most
 * tile_rows, as many as a multiple of the threads (a 704-row linear in
 * three tiles kept one of two threads idle a third of the time). */
static int32_t dense_split(const spqr_linear *lin, int32_t n, int32_t n_threads, int32_t *tr_out) {
    const int32_t rows = lin->rows, tr0 = tile_rows(lin->cols);
    if (n_threads < 1) n_threads = 1;
    if ((int64_t)rows * lin->cols * n < 8 * (int64_t)LINEAR_PAR_MIN) n_threads = 1;
    int32_t n_tiles = (rows + tr0 - 1) / tr0;
    if (n_threads > 1) n_tiles = (n_tiles + n_threads - 1) / n_threads * n_threads;
    int32_t tr = ((rows + n_tiles - 1) / n_tiles + 15) / 16 * 16; /* whole 64-byte lines of Y */
    if (tr > tr0) tr = tr0;
    n_tiles = (rows + tr - 1) / tr;
    *tr_out = tr;
    return n_threads < n_tiles ? n_threads : n_tiles;
}

/* Scratch of one linear's product of n inputs. */
static size_t scratch_one(const spqr_linear *lin, int32_t n, int32_t n_threads) {
    if (lin->kind == SPQR_LINEAR_PACKED) return lin->fast ? spqri_kt_scratch_matmul(lin->fast, n) : 0;
    if (lin->kind == SPQR_LINEAR_F32 || n <= LINEAR_SMALL_BATCH) return 0;
    int32_t tr;
    const int32_t T = dense_split(lin, n, n_threads, &tr);
    return (size_t)T * tr * lin->cols * sizeof(float);
}

spqr_status spqri_linear_matmul(const spqr_linear *lin, const float *X, int32_t n, float *Y, const linear_ctx *ctx,
                          spqr_err *err) {
    spqr_status st = check_lin(lin, err);
    if (st || (st = check_ctx(ctx, err))) return st;
    if (n <= 0) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "linear: n = %d", n);
    if (lin->kind == SPQR_LINEAR_PACKED)
        return lin->fast ? spqri_kt_matmul_ws(lin->fast, X, n, Y, ctx->n_threads, ctx->scratch, ctx->scratch_bytes, err)
                         : spqr_matmul_ref(lin->packed, X, n, Y, err);
    if (n == 1) return spqri_linear_matvec(lin, X, Y, ctx, err);
    const spqr_dense_ops *ops = ops_of(ctx->isa);
    int32_t n_threads = ctx->n_threads < 1 ? 1 : ctx->n_threads;
    const int32_t rows = lin->rows, cols = lin->cols;
    if (n <= LINEAR_SMALL_BATCH) {
        /* Few vectors: widening whole tiles costs more than it saves. Each
         * row is read from memory once and stays in L1 for its n dots. */
        const dense_dot_fn dot = pick_dot(lin->kind, ops);
        const size_t row_bytes = (size_t)cols * elem_size(lin->kind);
        const char *base = lin->data;
        const int par = (int64_t)rows * cols * n >= LINEAR_PAR_MIN && n_threads > 1;
#pragma omp parallel for num_threads(n_threads) schedule(static) if (par)
        for (int32_t r = 0; r < rows; r++)
            for (int32_t t = 0; t < n; t++)
                Y[(size_t)t * rows + r] = dot(base + (size_t)r * row_bytes, X + (size_t)t * cols, cols);
        return SPQR_OK;
    }
    /* fp16: the path's own GEMM where it has one (AVX-512: 1.8-2x the
     * widen + sgemm tiles' rate, bench/results), unless the context asks
     * for the sgemm tiles (SPQR_DENSE_GEMM=blas, A/B runs) */
    void (*gemm16)(const uint16_t *, int32_t, const float *, int32_t, int32_t, float *, size_t) =
        lin->kind == SPQR_LINEAR_F16 && !ctx->gemm_blas ? ops->gemm_f16 : NULL;
    int32_t tr;
    n_threads = dense_split(lin, n, n_threads, &tr);
    if (gemm16 && tr > GEMM_TILE_ROWS) tr = GEMM_TILE_ROWS;
    const int32_t n_tiles = (rows + tr - 1) / tr;
    const size_t need = scratch_one(lin, n, ctx->n_threads);
    if (need && (!ctx->scratch || ctx->scratch_bytes < need))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "linear: scratch of %zu bytes, %zu needed", ctx->scratch_bytes,
                            need);
    float *bufs = lin->kind != SPQR_LINEAR_F32 ? ctx->scratch : NULL;
    /* Each thread widens its own tiles and runs a single-threaded sgemm on
     * them (the CLI sets OpenBLAS to one thread; parallelism is ours). */
#pragma omp parallel num_threads(n_threads) if (n_threads > 1)
    {
        float *buf = bufs ? bufs + (size_t)omp_get_thread_num() * tr * cols : NULL;
#pragma omp for schedule(dynamic, 1)
        for (int32_t t = 0; t < n_tiles; t++) {
            const int32_t r0 = t * tr, nr = rows - r0 < tr ? rows - r0 : tr;
            const float *Wt;
            if (gemm16) { /* fp16 rows straight into the register tiles: no fp32 copy, no repacking */
                gemm16((const uint16_t *)lin->data + (size_t)r0 * cols, nr, X, n, cols, Y + r0, (size_t)rows);
                continue;
            }
            if (lin->kind == SPQR_LINEAR_F32) {
                Wt = (const float *)lin->data + (size_t)r0 * cols;
            } else {
                widen_rows(lin, ops, r0, nr, buf);
                Wt = buf;
            }
            /* Y[:, r0:r0+nr] = X[n][cols] * Wt[nr][cols]^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nr, cols, 1.0f, X, cols, Wt, cols, 0.0f, Y + r0,
                        rows);
        }
    }
    return SPQR_OK;
}

/* What spqri_linear_matmul_multi does with these inputs: 1 = one packed
 * multi-product (one token or a batch), 2 = one dense multi-matvec, 0 =
 * spqri_linear_matmul each. */
static int multi_mode(const spqr_linear *const *lins, int32_t k, int32_t n) {
    if (k < 2) return 0;
    int fast = 1, dense = n == 1;
    for (int32_t i = 0; i < k; i++) {
        const int same_in = lins[i]->cols == lins[0]->cols;
        fast &= same_in && lins[i]->kind == SPQR_LINEAR_PACKED && lins[i]->fast != NULL;
        dense &= same_in && lins[i]->kind != SPQR_LINEAR_PACKED && lins[i]->kind == lins[0]->kind;
    }
    return fast ? 1 : dense ? 2 : 0;
}

size_t spqri_linear_scratch_size(const spqr_linear *const *lins, int32_t k, int32_t n, int32_t n_threads) {
    if (multi_mode(lins, k, n) == 1) {
        const spqr_ktensor *kts[LINEAR_MULTI_MAX];
        for (int32_t i = 0; i < k; i++) kts[i] = lins[i]->fast;
        return spqri_kt_scratch_matmul_multi(kts, k, n);
    }
    size_t most = 0;
    for (int32_t i = 0; i < k; i++) {
        const size_t b = scratch_one(lins[i], n, n_threads);
        most = b > most ? b : most;
    }
    return most;
}

spqr_status spqri_linear_ctx_init(linear_ctx *c, int32_t n_threads, size_t scratch_bytes, spqr_err *err) {
    c->n_threads = n_threads;
    c->scratch = NULL;
    c->scratch_bytes = 0;
    spqr_status st = spqri_linear_dense_from_env(&c->isa, &c->gemm_blas, err);
    if (st) return st;
    c->scratch_bytes = scratch_bytes;
    c->scratch = aligned_alloc(64, (scratch_bytes + 63) / 64 * 64 + 64);
    if (!c->scratch) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for %zu bytes of scratch", scratch_bytes);
    return SPQR_OK;
}

void spqri_linear_ctx_free(linear_ctx *c) {
    if (!c) return;
    free(c->scratch);
    c->scratch = NULL;
    c->scratch_bytes = 0;
}

static spqr_status check_multi_args(const spqr_linear *const *lins, int32_t k, float *const *Ys, const linear_ctx *ctx,
                                   spqr_err *err) {
    if (!lins || !Ys || k < 1 || k > LINEAR_MULTI_MAX)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "linear: %d linears in one call (1..%d)", k, LINEAR_MULTI_MAX);
    spqr_status st = check_ctx(ctx, err);
    if (st) return st;
    for (int32_t i = 0; i < k; i++) {
        if ((st = check_lin(lins[i], err))) return st;
        if (!Ys[i]) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "linear: output %d is NULL", i);
    }
    return SPQR_OK;
}

spqr_status spqri_linear_matmul_multi(const spqr_linear *const *lins, int32_t k, const float *X, int32_t n, float *const *Ys,
                                const linear_ctx *ctx, spqr_err *err) {
    spqr_status st = check_multi_args(lins, k, Ys, ctx, err);
    if (st) return st;
    const int mode = multi_mode(lins, k, n);
    if (mode == 1) {
        const spqr_ktensor *kts[LINEAR_MULTI_MAX];
        for (int32_t i = 0; i < k; i++) kts[i] = lins[i]->fast;
        return spqri_kt_matmul_multi_ws(kts, k, X, n, Ys, ctx->n_threads, ctx->scratch, ctx->scratch_bytes, err);
    }
    if (mode == 2) {
        dense_matvec_multi(lins, k, X, Ys, ctx->n_threads, ops_of(ctx->isa));
        return SPQR_OK;
    }
    for (int32_t i = 0; i < k; i++)
        if ((st = spqri_linear_matmul(lins[i], X, n, Ys[i], ctx, err))) return st;
    return SPQR_OK;
}

spqr_status spqri_linear_job_prepare(linear_job *j, const spqr_linear *const *lins, int32_t k, const float *x,
                                     float *const *ys, const linear_ctx *ctx, spqr_err *err) {
    spqr_status st = check_multi_args(lins, k, ys, ctx, err);
    if (st) return st;
    if (!x) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "linear: NULL input");
    atomic_store_explicit(&j->next, 0, memory_order_relaxed);
    j->mode = LINEAR_JOB_DONE;
    j->n_chunks = 0;
    const int mode = k == 1 ? (lins[0]->kind == SPQR_LINEAR_PACKED ? (lins[0]->fast ? 1 : 0) : 2) : multi_mode(lins, k, 1);
    if (mode == 1) {
        const spqr_ktensor *kts[LINEAR_MULTI_MAX];
        for (int32_t i = 0; i < k; i++) kts[i] = lins[i]->fast;
        if ((st = spqri_kt_mv_prepare(&j->kt, kts, k, x, ys, ctx->n_threads, ctx->scratch, ctx->scratch_bytes, err)))
            return st;
        j->mode = LINEAR_JOB_PACKED;
        j->n_chunks = j->kt.cut.n_chunks;
        return SPQR_OK;
    }
    if (mode == 2) {
        dense_job_init(j, lins, k, x, ys, ops_of(ctx->isa), ctx->n_threads);
        return SPQR_OK;
    }
    linear_ctx one = *ctx; /* the rest, one linear at a time, on this thread */
    one.n_threads = 1;
    return spqri_linear_matmul_multi(lins, k, x, 1, ys, &one, err);
}

void spqri_linear_job_run(linear_job *j) {
    if (j->mode == LINEAR_JOB_DONE) return;
    for (int32_t c; (c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < j->n_chunks;) {
        if (j->mode == LINEAR_JOB_PACKED) {
            spqri_kt_mv_chunk(&j->kt, c);
            continue;
        }
        int32_t u0, u1;
        spqri_chunk_range(&j->cut, c, &u0, &u1);
        for (int32_t u = u0; u < u1; u++) dense_unit(j, u);
    }
}
