/* Exact dequantization from the runtime kernel layout, and the
 * matvec/matmul wrappers (input permutation, group sums, int8 activations,
 * deterministic thread split). The layout is built in spqr_kernel_build.c. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "format/tensor.h"
#include "kernels/spqr_kernel.h"

#define KT_PAR_MIN (1 << 18) /* weights x inputs below which one thread runs a product */
#define KT_NB 64 /* inputs per matmul chunk: bounds the per-thread scratch */
#define KT_CHUNK 8 /* row tiles (128 rows, 512 bytes of y) a decode thread takes at a time */

void kt_stats_scalar(const spqr_ktensor *kt, int32_t rt, int32_t g, float s[KT_R], float z[KT_R]) {
    const uint8_t *sb = kt->stats + ((size_t)rt * kt->n_groups + g) * kt->stat_bytes;
    const uint8_t *zb = sb + kt->sb_bytes;
    for (int i = 0; i < KT_R; i++) {
        const int32_t r = rt * KT_R + i;
        if (r >= kt->rows) {
            s[i] = z[i] = 0.0f;
            continue;
        }
        const size_t pi = kt->n_qgroups ? ((size_t)(r / kt->qq_groupsize) * kt->n_groups + g) * 2 : 0;
        if (kt->qs_bits) s[i] = spqr_stat_dq(kt->s_pair[pi], kt->s_pair[pi + 1], spqr_bits_get(sb, (uint64_t)i, kt->qs_bits));
        else s[i] = spqr_fp16_to_fp32((uint16_t)(sb[2 * i] | sb[2 * i + 1] << 8));
        if (kt->qz_bits) z[i] = spqr_stat_dq(kt->z_pair[pi], kt->z_pair[pi + 1], spqr_bits_get(zb, (uint64_t)i, kt->qz_bits));
        else z[i] = spqr_fp16_to_fp32((uint16_t)(zb[2 * i] | zb[2 * i + 1] << 8));
    }
}

spqr_status spqr_ktensor_dequantize(const spqr_ktensor *kt, float *W, spqr_err *err) {
    if (!kt || !W) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "ktensor or output buffer is NULL");
    float s[KT_R], z[KT_R];
    for (int32_t rt = 0; rt < kt->n_rtiles; rt++) {
        for (int32_t g = 0; g < kt->n_groups; g++) {
            kt_stats_scalar(kt, rt, g, s, z);
            const int32_t c0 = g * kt->groupsize;
            const int32_t c1 = c0 + kt->groupsize < kt->cols ? c0 + kt->groupsize : kt->cols;
            for (int i = 0; i < KT_R && rt * KT_R + i < kt->rows; i++) {
                const int32_t r = rt * KT_R + i;
                float *row = W + (size_t)r * (size_t)kt->cols;
                for (int32_t c = c0; c < c1; c++)
                    row[kt->perm ? kt->perm[c] : c] = spqr_weight_dq(s[i], kt_code_at(kt, r, c), z[i]);
            }
        }
        for (int32_t o = kt->o_ptr[rt]; o < kt->o_ptr[rt + 1]; o++) {
            const int32_t r = rt * KT_R + kt->o_row[o], c = kt->o_col[o];
            W[(size_t)r * (size_t)kt->cols + (size_t)(kt->perm ? kt->perm[c] : c)] = spqr_fp16_to_fp32(kt->o_val[o]);
        }
    }
    return SPQR_OK;
}

/* avx512vnni matvec: x rounded to int8 per column tile (scale max|x|/127,
 * round-half-even), 16 bytes per tile in column order; xq and xs are
 * replaced by x^ = scale * int8 and its group sums, so dense part and
 * outlier corrections both see x^ and the result is W x^ up to fp32
 * rounding. */
static void prepare_i8(const spqr_ktensor *kt, const float *xp, float *xs, float *xq, int32_t *xa, float *at) {
    const int32_t span = kt->groupsize < kt->cols ? kt->groupsize : kt->cols;
    for (int32_t g = 0; g < kt->n_groups; g++) xs[g] = 0.0f;
    for (int32_t t = 0; t < kt->n_ctiles; t++) {
        const float *x = xp + (size_t)t * KT_C;
        float m = 0.0f;
        int finite = 1;
        for (int c = 0; c < KT_C; c++) {
            m = fmaxf(m, fabsf(x[c]));
            finite &= isfinite(x[c]) != 0;
        }
        if (!finite) m = NAN; /* the tile's outputs become NaN, as non-finite inputs should */
        const float a = m / 127.0f, inv = m > 0.0f ? 127.0f / m : 0.0f;
        int8_t xi[KT_C];
        const int32_t g = t / kt->ct_per_group, k = t % kt->ct_per_group;
        for (int c = 0; c < KT_C; c++) {
            float v = rintf(x[c] * inv);
            v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
            xi[c] = finite ? (int8_t)v : 0;
            const int32_t off = k * KT_C + c, col = g * kt->groupsize + off;
            if (off < span && col < kt->cols) {
                const float xh = a * (float)xi[c];
                xq[col] = xh;
                xs[g] += xh;
            }
        }
        at[t] = a;
        memcpy(xa + (size_t)t * KT_XOPS, xi, sizeof xi); /* dword k = columns 4k..4k+3 */
    }
}

static void prepare(const spqr_ktensor *kt, const float *X, int32_t n, float *xp, float *x2, float *xs, float *xq);

void kt_prepare_i8_ref(const spqr_ktensor *kt, const float *x, float *xp, float *xs, float *xq, int32_t *xa, float *at) {
    prepare(kt, x, 1, xp, NULL, xs, xq);
    prepare_i8(kt, xp, xs, xq, xa, at);
}

/* Permutes and pads n inputs; group sums in fp32, in column order. */
static void prepare(const spqr_ktensor *kt, const float *X, int32_t n, float *xp, float *x2, float *xs, float *xq) {
    const int32_t gpad = kt->ct_per_group * KT_C;
    for (int32_t i = 0; i < n; i++) {
        const float *x = X + (size_t)i * kt->cols;
        float *q = xq + (size_t)i * kt->cols, *p = xp + (size_t)i * kt->padcols, *s = xs + (size_t)i * kt->n_groups;
        for (int32_t c = 0; c < kt->cols; c++) q[c] = x[kt->perm ? kt->perm[c] : c];
        memset(p, 0, (size_t)kt->padcols * sizeof *p);
        for (int32_t g = 0; g < kt->n_groups; g++) {
            const int32_t c0 = g * kt->groupsize;
            const int32_t c1 = c0 + kt->groupsize < kt->cols ? c0 + kt->groupsize : kt->cols;
            float sum = 0.0f;
            for (int32_t c = c0; c < c1; c++) {
                p[g * gpad + (c - c0)] = q[c];
                sum += q[c];
            }
            s[g] = sum;
        }
    }
    if (x2) {
        float sc[KT_BC];
        for (int j = 0; j < KT_BC; j++) sc[j] = kt_xscale(kt->wbits, j);
        for (int32_t c = 0; c < kt->padcols; c++) x2[c] = xp[c] * sc[c % KT_BC]; /* exact: powers of two */
    }
}

/* Paths with int8 activations: they read xa, at (and x^ in xq, xs) instead of xp, x2. */
static int path_i8(spqr_kernel_path p) {
    return p == SPQR_KERNEL_AVX512_VNNI || p == SPQR_KERNEL_NEON_DOTPROD || p == SPQR_KERNEL_AVX2_I8;
}

/* The int8 path's vectorized input preparation (kt_prepare_i8_avx512's contract). */
static void prepare_i8_fast(const spqr_ktensor *kt, const float *x, float *xs, float *xq, int32_t *xa, float *at,
                            int32_t n) {
    if (kt->path == SPQR_KERNEL_NEON_DOTPROD) kt_prepare_i8_neon(kt, x, xs, xq, xa, at, n);
    else if (kt->path == SPQR_KERNEL_AVX2_I8) kt_prepare_i8_avx2(kt, x, xs, xq, xa, at, n, 0);
    else kt_prepare_i8_avx512(kt, x, xs, xq, xa, at, n);
}

static kt_worker pick(const spqr_ktensor *kt, int32_t n) {
    switch (kt->path) {
    case SPQR_KERNEL_NEON: return n == 1 ? kt_matvec_neon : kt_matmul_neon;
    case SPQR_KERNEL_NEON_DOTPROD: return n == 1 ? kt_matvec_neon_dot : kt_matmul_neon_dot;
    case SPQR_KERNEL_AVX512: return n == 1 ? kt_matvec_avx512 : kt_matmul_avx512;
    case SPQR_KERNEL_AVX512_VNNI: return n == 1 ? kt_matvec_avx512_vnni : kt_matmul_avx512_vnni;
    case SPQR_KERNEL_AVX2: return n == 1 ? kt_matvec_avx2 : kt_matmul_avx2;
    case SPQR_KERNEL_AVX2_I8: return n == 1 ? kt_matvec_avx2i8 : kt_matmul_avx2i8;
    default: return kt_matmul_scalar;
    }
}

spqr_status spqr_ktensor_matmul(const spqr_ktensor *kt, const float *X, int32_t n, float *Y,
                                int32_t n_threads, spqr_err *err) {
    if (!kt) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "ktensor is NULL");
    if (n < 0) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "negative batch size %d", n);
    if (n == 0) return SPQR_OK;
    if (!X || !Y) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "input or output buffer is NULL");
    if (n == 1) return spqr_ktensor_matvec_multi(&kt, 1, X, &Y, n_threads, err);
    if (n_threads <= 0) n_threads = omp_get_num_procs();
    if (n_threads > kt->n_rtiles) n_threads = kt->n_rtiles;
    /* Small products are not worth waking threads for (a wake-up costs
     * 10-50 us with OMP_WAIT_POLICY=passive; 2^18 weights take ~8 us): the
     * same threshold as the dense linears (src/model/linear.c). */
    if ((int64_t)kt->rows * kt->cols * n < KT_PAR_MIN) n_threads = 1;
    const int32_t nb = n < KT_NB ? n : KT_NB;
    const int i8 = path_i8(kt->path); /* reads xa, at instead of xp */
    float *xp = i8 ? NULL : kt_alloc64((size_t)nb * kt->padcols * sizeof(float));
    float *xs = malloc((size_t)nb * kt->n_groups * sizeof(float));
    float *xq = malloc((size_t)nb * kt->cols * sizeof(float));
    const size_t nct = (size_t)kt->n_ctiles;
    int32_t *xa = i8 ? kt_alloc64((size_t)nb * nct * KT_XOPS * sizeof(int32_t)) : NULL;
    float *at = i8 ? malloc((size_t)nb * nct * sizeof(float)) : NULL;
    /* the SIMD batch paths read the inputs of an outlier's column side by side */
    const int tr = kt->path != SPQR_KERNEL_SCALAR;
    float *xqt = tr ? malloc((size_t)nb * kt->cols * sizeof(float)) : NULL;
    spqr_status st = SPQR_OK;
    if (!xs || !xq || (i8 ? !xa || !at : !xp) || (tr && !xqt)) {
        st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory in matmul");
        goto done;
    }
    const kt_worker work = pick(kt, n);
    for (int32_t i0 = 0; i0 < n; i0 += KT_NB) {
        const int32_t m = n - i0 < KT_NB ? n - i0 : KT_NB;
        if (i8)
            for (int32_t i = 0; i < m; i++)
                prepare_i8_fast(kt, X + (size_t)(i0 + i) * kt->cols, xs + (size_t)i * kt->n_groups,
                                xq + (size_t)i * kt->cols, xa + (size_t)i * KT_XOPS, at + i, m);
        else prepare(kt, X + (size_t)i0 * kt->cols, m, xp, NULL, xs, xq);
        if (tr)
            for (int32_t c = 0; c < kt->cols; c++)
                for (int32_t i = 0; i < m; i++) xqt[(size_t)c * m + i] = xq[(size_t)i * kt->cols + c];
        /* Y rows of this chunk are contiguous [m][rows]; workers write their own row range. */
        float *Yc = Y + (size_t)i0 * kt->rows;
        const kt_input in = {xp, NULL, xs, xq, xqt, xa, at, m};
        const int32_t T = n_threads;
#pragma omp parallel num_threads(T) if (T > 1)
        {
            const int32_t t = omp_get_thread_num(), nt = omp_get_num_threads();
            /* contiguous row-tile ranges: each thread writes 64-byte-aligned spans of y */
            const int32_t rt0 = (int32_t)((int64_t)kt->n_rtiles * t / nt);
            const int32_t rt1 = (int32_t)((int64_t)kt->n_rtiles * (t + 1) / nt);
            if (rt1 > rt0) work(kt, &in, rt0, rt1, Yc);
        }
    }
done:
    free(xqt);
    free(xa);
    free(at);
    free(xp);
    free(xs);
    free(xq);
    return st;
}

#define KT_MULTI_MAX 16 /* products per spqr_ktensor_matvec_multi call */

spqr_status spqr_ktensor_matvec_multi(const spqr_ktensor *const *kts, int32_t k, const float *x, float *const *ys,
                                      int32_t n_threads, spqr_err *err) {
    if (k < 1 || k > KT_MULTI_MAX)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "matvec_multi: %d products (1..%d)", k, KT_MULTI_MAX);
    if (!kts || !x || !ys) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "matvec_multi: NULL argument");
    int64_t weights = 0;
    int32_t tiles = 0;
    for (int32_t i = 0; i < k; i++) {
        if (!kts[i] || !ys[i]) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "matvec_multi: product %d is NULL", i);
        if (kts[i]->cols != kts[0]->cols)
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "matvec_multi: products take %d and %d inputs", kts[0]->cols,
                                kts[i]->cols);
        weights += (int64_t)kts[i]->rows * kts[i]->cols;
        tiles += kts[i]->n_rtiles;
    }
    if (n_threads <= 0) n_threads = omp_get_num_procs();
    if (n_threads > tiles) n_threads = tiles;
    if (weights < KT_PAR_MIN) n_threads = 1; /* see spqr_ktensor_matmul */
    kt_input in[KT_MULTI_MAX];
    kt_worker work[KT_MULTI_MAX];
    void *mem[KT_MULTI_MAX][6] = {{0}};
    spqr_status st = SPQR_OK;
    for (int32_t i = 0; i < k && st == SPQR_OK; i++) {
        const spqr_ktensor *kt = kts[i];
        /* the int8 path reads xa, at (and xs, xq); the others xp, x2 */
        const int i8 = path_i8(kt->path);
        float *xp = mem[i][0] = i8 ? NULL : kt_alloc64((size_t)kt->padcols * sizeof(float));
        float *xs = mem[i][1] = malloc((size_t)kt->n_groups * sizeof(float));
        float *xq = mem[i][2] = malloc((size_t)kt->cols * sizeof(float));
        float *x2 = mem[i][3] = i8 ? NULL : kt_alloc64((size_t)kt->padcols * sizeof(float));
        /* avx2i8's matvec reads KT_XW int16-pair words per tile */
        const size_t xw = kt->path == SPQR_KERNEL_AVX2_I8 ? KT_XW : KT_XOPS;
        int32_t *xa = mem[i][4] = i8 ? kt_alloc64((size_t)kt->n_ctiles * xw * sizeof(int32_t)) : NULL;
        float *at = mem[i][5] = i8 ? malloc((size_t)kt->n_ctiles * sizeof(float)) : NULL;
        if (!xs || !xq || (i8 ? !xa || !at : !xp || !x2)) {
            st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory in matvec");
            break;
        }
        if (i8 && kt->path == SPQR_KERNEL_AVX2_I8) kt_prepare_i8_avx2(kt, x, xs, xq, xa, at, 1, 1);
        else if (i8) prepare_i8_fast(kt, x, xs, xq, xa, at, 1);
        else prepare(kt, x, 1, xp, x2, xs, xq);
        in[i] = (kt_input){xp, x2, xs, xq, NULL, xa, at, 1};
        work[i] = pick(kt, 1);
    }
    if (st == SPQR_OK) {
        const int32_t T = n_threads;
        /* One parallel region for all k products (q, k, v share their
         * input): the row tiles of all of them, concatenated, handed out in
         * chunks of KT_CHUNK tiles to whichever thread is free. A fork/join
         * costs more than a small matvec where threads sleep between
         * regions, and on a shared machine a thread that loses its core for
         * a while no longer holds the other back (7B decode, A/B in one
         * window: 6.67 and 7.21 tok/s with a fixed split, 7.30 and 7.15
         * with chunks). Which thread computes a tile does not change its
         * bits. */
        const int32_t nch = (tiles + KT_CHUNK - 1) / KT_CHUNK;
#pragma omp parallel for num_threads(T) schedule(dynamic, 1) if (T > 1)
        for (int32_t ch = 0; ch < nch; ch++) {
            const int32_t lo = ch * KT_CHUNK, hi = lo + KT_CHUNK < tiles ? lo + KT_CHUNK : tiles;
            int32_t off = 0;
            for (int32_t i = 0; i < k; i++) {
                const int32_t n = kts[i]->n_rtiles;
                const int32_t a = (lo > off ? lo : off) - off, b = (hi < off + n ? hi : off + n) - off;
                if (b > a) work[i](kts[i], &in[i], a, b, ys[i]);
                off += n;
            }
        }
    }
    for (int32_t i = 0; i < k; i++) {
        free(mem[i][0]);
        free(mem[i][1]);
        free(mem[i][2]);
        free(mem[i][3]);
        free(mem[i][4]);
        free(mem[i][5]);
    }
    return st;
}

spqr_status spqr_ktensor_matvec(const spqr_ktensor *kt, const float *x, float *y, int32_t n_threads,
                                spqr_err *err) {
    if (!kt) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "ktensor is NULL");
    return spqr_ktensor_matvec_multi(&kt, 1, x, &y, n_threads, err);
}
