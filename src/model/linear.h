/* One interface for every linear layer of the model, y = W x with
 * W [rows = out][cols = in]. Model code never looks at the storage kind:
 * this file only dispatches to the kernels' ops tables (kernels/kernels.h),
 * so a new kind or backend plugs in there. */
#ifndef SPQR_MODEL_LINEAR_H
#define SPQR_MODEL_LINEAR_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "spqr.h"

typedef enum spqr_linear_kind {
    SPQR_LINEAR_F32 = 0,    /* dense row-major fp32 */
    SPQR_LINEAR_F16 = 1,    /* dense row-major IEEE fp16 */
    SPQR_LINEAR_BF16 = 2,   /* dense row-major bfloat16 */
    SPQR_LINEAR_PACKED = 3  /* spqr_tensor: fast kernels when `fast` is set, else reference */
} spqr_linear_kind;

typedef struct spqr_linear {
    spqr_linear_kind kind;
    int32_t rows, cols;
    const void *data;            /* dense kinds: [rows][cols], usually memory-mapped */
    const spqr_tensor *packed;   /* SPQR_LINEAR_PACKED */
    const spqr_ktensor *fast;    /* optional fast-kernel layout of packed (else reference kernels) */
} spqr_linear;

/* Which instruction set the dense fp16/bf16 dot products use. AUTO picks
 * the best one the CPU supports at run time (kernels/cpu.h, the detector
 * the SpQR paths use too); the others exist for tests. */
typedef enum spqr_isa {
    SPQR_ISA_AUTO = 0,
    SPQR_ISA_SCALAR = 1,
    SPQR_ISA_AVX2 = 2,    /* AVX2 + F16C + FMA */
    SPQR_ISA_AVX512 = 3,  /* AVX-512 F/BW/VL/DQ (as SPQR_KERNEL_AVX512) */
    SPQR_ISA_NEON = 4     /* aarch64 Advanced SIMD (fp16 widened with FCVTL) */
} spqr_isa;

/* The best ISA this CPU runs (no environment). */
spqr_isa spqri_linear_isa_best(void);
/* 1 when this CPU runs isa (SCALAR always; AUTO is not an isa here). */
int spqri_linear_isa_available(spqr_isa isa);
const char *spqri_linear_isa_name(spqr_isa isa);

/* The dense kernels a context runs: the CPU's best, or a narrower ISA named
 * by SPQR_DENSE_ISA=scalar|avx2|avx512|neon|auto (to measure what an
 * AVX2-only CPU runs on a wider one), and whether fp16 batches take the
 * path's own GEMM tiles or widen to fp32 for sgemm (SPQR_DENSE_GEMM=blas,
 * for A/B runs; own|auto the default). A name it does not know is
 * SPQR_ERR_INVALID_ARG, an ISA this CPU lacks SPQR_ERR_UNSUPPORTED. */
spqr_status spqri_linear_dense_from_env(spqr_isa *isa, int *gemm_blas, spqr_err *err);

/* What a linear call may use: threads, the dense kernels, and scratch it
 * owns for the call (nothing is allocated during a product; a session owns
 * one of these for its whole life). Settings are read once, at init. */
typedef struct linear_ctx {
    int32_t n_threads;
    spqr_isa isa;          /* dense kernels (never AUTO once initialised) */
    int gemm_blas;         /* fp16 batches: widen + sgemm instead of the path's GEMM */
    void *scratch;         /* 64-byte aligned, scratch_bytes long */
    size_t scratch_bytes;
} linear_ctx;

/* Scratch bytes spqri_linear_matmul_multi(lins, k, n inputs) needs with n_threads
 * (k = 1: spqri_linear_matmul / spqri_linear_matvec). */
size_t spqri_linear_scratch_size(const spqr_linear *const *lins, int32_t k, int32_t n, int32_t n_threads);
/* A context with scratch_bytes of scratch (free with spqri_linear_ctx_free). */
spqr_status spqri_linear_ctx_init(linear_ctx *c, int32_t n_threads, size_t scratch_bytes, spqr_err *err);
void spqri_linear_ctx_free(linear_ctx *c);
/* The dense kernels c runs (the fp16 KV cache's conversions too). */
const spqr_dense_ops *spqri_linear_ops(const linear_ctx *c);

/* Bytes of weight storage a matvec streams. */
uint64_t spqri_linear_bytes(const spqr_linear *lin);

/* y[rows] = W x[cols]. The decode hot path. Scratch smaller than
 * spqri_linear_scratch_size says is SPQR_ERR_INVALID_ARG. */
spqr_status spqri_linear_matvec(const spqr_linear *lin, const float *x, float *y, const linear_ctx *ctx, spqr_err *err);
spqr_status spqri_linear_matvec_isa(const spqr_linear *lin, const float *x, float *y, const linear_ctx *ctx, spqr_isa isa,
                              spqr_err *err);

/* Y[n][rows] = X[n][cols] W^T (prompt / batch path): tiles of W are widened
 * to fp32 in the scratch and multiplied with cblas_sgemm; no whole-matrix
 * fp32 copy. */
spqr_status spqri_linear_matmul(const spqr_linear *lin, const float *X, int32_t n, float *Y, const linear_ctx *ctx,
                          spqr_err *err);

/* Ys[i] = X W_i^T for k (1..16) linears taking the same input (q, k, v;
 * gate, up): one parallel region for all of them when they are all fast
 * packed (one token or a batch) or all of one dense kind (one token); a
 * fork/join per linear costs tens of microseconds where threads sleep
 * between regions. Otherwise spqri_linear_matmul one after the other. Same
 * results as that. */
spqr_status spqri_linear_matmul_multi(const spqr_linear *const *lins, int32_t k, const float *X, int32_t n, float *const *Ys,
                                const linear_ctx *ctx, spqr_err *err);

#define LINEAR_MULTI_MAX 16   /* linears per spqri_linear_matmul_multi call */
#define LINEAR_DENSE_CHUNK 64 /* dense rows (or blocks of four) a thread claims at a time */

enum { LINEAR_JOB_DONE = 0, LINEAR_JOB_PACKED = 1, LINEAR_JOB_DENSE = 2 };

/* k linears of one input for one token, shared by the threads of one
 * region (a decode step, src/model/forward.c): one thread prepares it, then
 * every thread runs it, claiming chunks (row tiles, or dense rows) from
 * `next` until none is left. */
typedef struct linear_job {
    int mode;                 /* LINEAR_JOB_*: DONE = computed by the preparation */
    int32_t k, n_chunks;
    _Atomic int32_t next;     /* the next chunk to claim */
    kt_mv_job kt;             /* PACKED: all k fast packed */
    const spqr_linear *lins[LINEAR_MULTI_MAX]; /* DENSE: all k of one dense kind */
    float *ys[LINEAR_MULTI_MAX];
    const float *x;
    const spqr_dense_ops *ops;
    int four;                 /* units are blocks of four fp16 rows */
    int32_t start[LINEAR_MULTI_MAX + 1]; /* first unit of each linear */
    spqr_chunks cut;          /* DENSE: the units in chunks (core/team.h) */
} linear_job;

/* One thread: the checks of spqri_linear_matmul_multi(lins, k, x, 1, ys)
 * and the inputs' preparation. What is not split into chunks (reference
 * kernels, mixed kinds) it computes right here on one thread. */
spqr_status spqri_linear_job_prepare(linear_job *j, const spqr_linear *const *lins, int32_t k, const float *x,
                                     float *const *ys, const linear_ctx *ctx, spqr_err *err);
/* Every thread of the region, once the preparation is visible to it (a
 * barrier between): the same bits as spqri_linear_matmul_multi. */
void spqri_linear_job_run(linear_job *j);

/* dst[cols] = row r of W in fp32 (embedding lookup); a packed W is
 * dequantized one row (spqr_tensor_row). */
spqr_status spqri_linear_row(const spqr_linear *lin, int32_t r, float *dst, spqr_err *err);

#endif
