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

static kt_worker pick(const spqr_ktensor *kt, int32_t n) {
    switch (kt->path) {
    case SPQR_KERNEL_AVX512: return n == 1 ? kt_matvec_avx512 : kt_matmul_avx512;
    case SPQR_KERNEL_AVX512_VNNI: return n == 1 ? kt_matvec_avx512_vnni : kt_matmul_avx512;
    case SPQR_KERNEL_AVX2: return n == 1 ? kt_matvec_avx2 : kt_matmul_avx2;
    default: return kt_matmul_scalar;
    }
}

spqr_status spqr_ktensor_matmul(const spqr_ktensor *kt, const float *X, int32_t n, float *Y,
                                int32_t n_threads, spqr_err *err) {
    if (!kt) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "ktensor is NULL");
    if (n < 0) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "negative batch size %d", n);
    if (n == 0) return SPQR_OK;
    if (!X || !Y) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "input or output buffer is NULL");
    if (n_threads <= 0) n_threads = omp_get_num_procs();
    if (n_threads > kt->n_rtiles) n_threads = kt->n_rtiles;
    /* Small products are not worth waking threads for (a wake-up costs
     * 10-50 us with OMP_WAIT_POLICY=passive; 2^18 weights take ~8 us): the
     * same threshold as the dense linears (src/model/linear.c). */
    if ((int64_t)kt->rows * kt->cols * n < KT_PAR_MIN) n_threads = 1;
    const int32_t nb = n < KT_NB ? n : KT_NB;
    float *xp = kt_alloc64((size_t)nb * kt->padcols * sizeof(float));
    float *xs = malloc((size_t)nb * kt->n_groups * sizeof(float));
    float *xq = malloc((size_t)nb * kt->cols * sizeof(float));
    const int i8 = n == 1 && kt->path == SPQR_KERNEL_AVX512_VNNI;
    float *x2 = n == 1 ? kt_alloc64((size_t)kt->padcols * sizeof(float)) : NULL;
    int32_t *xa = i8 ? kt_alloc64((size_t)kt->n_ctiles * KT_XOPS * sizeof(int32_t)) : NULL;
    float *at = i8 ? malloc((size_t)kt->n_ctiles * sizeof(float)) : NULL;
    spqr_status st = SPQR_OK;
    if (!xp || !xs || !xq || (n == 1 && !x2) || (i8 && (!xa || !at))) {
        st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory in matmul");
        goto done;
    }
    const kt_worker work = pick(kt, n);
    for (int32_t i0 = 0; i0 < n; i0 += KT_NB) {
        const int32_t m = n - i0 < KT_NB ? n - i0 : KT_NB;
        prepare(kt, X + (size_t)i0 * kt->cols, m, xp, x2, xs, xq);
        if (i8) prepare_i8(kt, xp, xs, xq, xa, at);
        /* Y rows of this chunk are contiguous [m][rows]; workers write their own row range. */
        float *Yc = Y + (size_t)i0 * kt->rows;
        const kt_input in = {xp, x2, xs, xq, xa, at, m};
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
    free(xa);
    free(at);
    free(x2);
    free(xp);
    free(xs);
    free(xq);
    return st;
}

spqr_status spqr_ktensor_matvec(const spqr_ktensor *kt, const float *x, float *y, int32_t n_threads,
                                spqr_err *err) {
    return spqr_ktensor_matmul(kt, x, 1, y, n_threads, err);
}
