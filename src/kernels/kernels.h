/* The one kernel interface (docs/kernels.md, "Kernel interface"): a table of
 * operations per path, picked once from one CPU-feature detector
 * (kernels/cpu.h), and caller-owned scratch so nothing is allocated per
 * product. The SpQR wrapper (spqr_kernel.c) and the dense linears
 * (model/linear.c) only call through these tables; a new backend (GPU,
 * another ISA) is one more table here and in its own file. */
#ifndef SPQR_KERNELS_KERNELS_H
#define SPQR_KERNELS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "core/team.h"
#include "kernels/cpu.h"
#include "kernels/spqr_kernel.h"

/* ---- SpQR (packed) paths ---- */

typedef struct spqr_kernel_ops {
    const char *name;          /* as SPQR_KERNEL=, bench-kernel --path and --json print it */
    spqr_kernel_path path;
    int exact;                 /* fp32 activations (SPQR_KERNEL=exact picks the first of these) */
    int (*supported)(const spqr_cpu *cpu);
    /* Bytes of scratch prepare needs for n inputs (n = 1: the matvec). */
    size_t (*scratch_size)(const spqr_ktensor *kt, int32_t n);
    /* Points *in at its arrays for n inputs in scratch (64-byte aligned,
     * scratch_size(kt, n) bytes) and fills inputs [i0, i1) of them from X
     * [n][cols] (permuted, padded, int8 ... see kt_input), so threads can
     * share the work; in->xqt and xsg, when set, are left to spqri_kt_transpose_inputs. */
    void (*prepare)(const spqr_ktensor *kt, const float *X, int32_t n, int32_t i0, int32_t i1, void *scratch,
                    kt_input *in);
    kt_worker matvec;          /* in->n == 1 */
    kt_worker matmul;          /* in->n > 1 */
    /* int8 paths: one input's int8 activations (spqri_kt_prepare_i8_avx512's
     * contract), what spqri_kt_prepare_i8 calls; NULL on the exact paths */
    void (*prep_i8)(const spqr_ktensor *kt, const float *x, float *xs, float *xq, int32_t *xa, float *at, int32_t n);
    int planar3;               /* w3 codes in the byte-aligned layout (spqr_kernel.h) */
} spqr_kernel_ops;

/* One table per path, in the path's file. */
extern const spqr_kernel_ops spqri_kt_ops_scalar, spqri_kt_ops_avx2, spqri_kt_ops_avx2i8, spqri_kt_ops_avxvnni, spqri_kt_ops_vnni256,
    spqri_kt_ops_avx512, spqri_kt_ops_avx512vnni, spqri_kt_ops_neon, spqri_kt_ops_neondot;

/* avx2i8's prepare and one-input preparation (spqr_kernel_avx2i8.c), which
 * its VNNI twins share. */
void spqri_kt_prepare_avx2i8(const spqr_ktensor *kt, const float *X, int32_t n, int32_t i0, int32_t i1, void *scratch,
                             kt_input *in);
void spqri_kt_prep_bytes_avx2(const spqr_ktensor *kt, const float *x, float *xs, float *xq, int32_t *xa, float *at,
                              int32_t n);

/* The table of a resolved path (SCALAR .. AVX2_I8), NULL for AUTO or junk. */
const spqr_kernel_ops *spqri_kt_ops_of(spqr_kernel_path p);

/* The shared prepare steps the tables are made of (spqr_kernel.c), with
 * the ops signatures. exact: xp (+ x2 for one input, + xqt for a batch);
 * i8: xs, xq, xa, at through the path's prep_i8 (+ xqt for a batch). */
size_t spqri_kt_scratch_exact(const spqr_ktensor *kt, int32_t n);
void spqri_kt_prepare_exact(const spqr_ktensor *kt, const float *X, int32_t n, int32_t i0, int32_t i1, void *scratch,
                      kt_input *in);
size_t spqri_kt_scratch_i8(const spqr_ktensor *kt, int32_t n);
void spqri_kt_prepare_i8(const spqr_ktensor *kt, const float *X, int32_t n, int32_t i0, int32_t i1, void *scratch,
                   kt_input *in);
/* The i8 steps with another one-input preparation, and (words, one input)
 * avx2i8's KT_XW int16-pair words per tile instead of KT_XOPS. */
typedef void (*kt_prep_i8_fn)(const spqr_ktensor *kt, const float *x, float *xs, float *xq, int32_t *xa, float *at,
                              int32_t n);
size_t spqri_kt_scratch_i8_words(const spqr_ktensor *kt, int32_t n);
void spqri_kt_prepare_i8_with(const spqr_ktensor *kt, const float *X, int32_t n, int32_t i0, int32_t i1, void *scratch,
                        kt_input *in, kt_prep_i8_fn one, int words);
/* The batch paths' xqt and xsg (xq and xs transposed), inputs [i0, i1). */
void spqri_kt_transpose_inputs(const spqr_ktensor *kt, const kt_input *in, int32_t i0, int32_t i1);

/* Scratch-taking products (the public spqr_ktensor_* wrap these with one
 * allocation): ws is 64-byte aligned, at least the size the matching
 * kt_scratch_* returns; a smaller one is SPQR_ERR_INVALID_ARG. */
size_t spqri_kt_scratch_matmul(const spqr_ktensor *kt, int32_t n);
spqr_status spqri_kt_matmul_ws(const spqr_ktensor *kt, const float *X, int32_t n, float *Y, int32_t n_threads, void *ws,
                         size_t ws_bytes, spqr_err *err);
/* k (1..16) products of one input X [n][cols] in one parallel region,
 * each Ys[i] as spqri_kt_matmul_ws alone would give. */
size_t spqri_kt_scratch_matmul_multi(const spqr_ktensor *const *kts, int32_t k, int32_t n);
spqr_status spqri_kt_matmul_multi_ws(const spqr_ktensor *const *kts, int32_t k, const float *X, int32_t n, float *const *Ys,
                               int32_t n_threads, void *ws, size_t ws_bytes, spqr_err *err);
size_t spqri_kt_scratch_matvec_multi(const spqr_ktensor *const *kts, int32_t k);
spqr_status spqri_kt_matvec_multi_ws(const spqr_ktensor *const *kts, int32_t k, const float *x, float *const *ys,
                               int32_t n_threads, void *ws, size_t ws_bytes, spqr_err *err);

#define KT_MULTI_MAX 16 /* products per matvec_multi call */

/* spqri_kt_matvec_multi_ws as a job that the threads of one region share
 * (a decode step, src/model/forward.c): one thread prepares the input of
 * every product (spqri_kt_mv_prepare, the same checks), then each chunk
 * (KT_CHUNK row tiles of the products' tiles, concatenated, and single
 * tiles at the end: spqri_chunks) is run once, by any thread
 * (spqri_kt_mv_chunk); which thread runs a chunk does not change its bits. */
typedef struct kt_mv_job {
    const spqr_ktensor *kts[KT_MULTI_MAX];
    kt_input in[KT_MULTI_MAX];
    float *ys[KT_MULTI_MAX];
    int32_t k, tiles;
    spqr_chunks cut; /* the tiles in chunks for n_threads (core/team.h): cut.n_chunks of them */
} kt_mv_job;
spqr_status spqri_kt_mv_prepare(kt_mv_job *j, const spqr_ktensor *const *kts, int32_t k, const float *x, float *const *ys,
                                int32_t n_threads, void *ws, size_t ws_bytes, spqr_err *err);
void spqri_kt_mv_chunk(const kt_mv_job *j, int32_t ch);

/* ---- dense (fp32 / fp16 / bf16 row-major) paths ---- */

typedef float (*dense_dot_fn)(const void *w, const float *x, int32_t n);

typedef struct spqr_dense_ops {
    const char *name;          /* spqri_linear_isa_name */
    int (*supported)(const spqr_cpu *cpu);
    dense_dot_fn dot[3];       /* [0 fp32, 1 fp16, 2 bf16] one row */
    /* Four fp16 rows (stride apart), each with dot[1]'s exact arithmetic
     * (same bits); NULL where the path has none. */
    void (*dot4_f16)(const uint16_t *w, size_t stride, const float *x, int32_t n, float out[4]);
    void (*widen_f16)(const uint16_t *src, float *dst, size_t n);
    void (*widen_bf16)(const uint16_t *src, float *dst, size_t n);
    /* fp32 -> fp16, round to nearest even: spqr_fp32_to_fp16's bits (the fp16 KV cache) */
    void (*narrow_f16)(const float *src, uint16_t *dst, size_t n);
    /* o[hd] += sum_i a[i] V[i][0..hd) over n rows hd apart, of kind [0 fp32,
     * 1 fp16]: attention's weighted sum of cached values */
    void (*rows_axpy[2])(const float *a, const void *V, int32_t n, int32_t hd, float *o);
    /* fp16 batch product Y[t][r] = sum_k X[t][k] W[r][k], rows [0, nr) of
     * W [nr][K], n inputs X [n][K], Y row stride ldy; NULL where the path
     * has none (linear.c then widens tiles to fp32 for sgemm) */
    void (*gemm_f16)(const uint16_t *W, int32_t nr, const float *X, int32_t n, int32_t K, float *Y, size_t ldy);
} spqr_dense_ops;

/* One table per dense path file (kernels/dense_*.c). */
extern const spqr_dense_ops spqri_dense_ops_scalar, spqri_dense_ops_avx2, spqri_dense_ops_avx512, spqri_dense_ops_neon;

#endif
