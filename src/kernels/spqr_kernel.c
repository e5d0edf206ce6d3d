/* Exact dequantization from the runtime kernel layout, and the
 * matvec/matmul wrappers (input permutation, group sums, int8 activations,
 * deterministic thread split). The layout is built in spqr_kernel_build.c. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "format/tensor.h"
#include "kernels/kernels.h"

#define KT_PAR_MIN (1 << 18) /* weights x inputs below which one thread runs a product */
#define KT_NB 64 /* inputs per matmul chunk: bounds the per-thread scratch */
#define KT_CHUNK 8 /* row tiles (128 rows, 512 bytes of y) a decode thread takes at a time, but at the end */

void spqri_kt_stats_scalar(const spqr_ktensor *kt, int32_t rt, int32_t g, float s[KT_R], float z[KT_R]) {
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
            spqri_kt_stats_scalar(kt, rt, g, s, z);
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

/* The int8 paths' activation rule (scalar reference): x rounded to int8 per column tile (scale max|x|/127,
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

void spqri_kt_prepare_i8_ref(const spqr_ktensor *kt, const float *x, float *xp, float *xs, float *xq, int32_t *xa, float *at) {
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

/* ---- scratch ---- */

static size_t up64(size_t n) { return (n + 63) / 64 * 64; }

/* Carves the kt_input arrays of n inputs out of scratch (base NULL: only
 * sizes them), each 64-byte aligned; returns the bytes used. */
enum { SC_XP = 1, SC_X2 = 2, SC_XQT = 4, SC_I8 = 8, SC_WORDS = 16 };
static size_t carve(const spqr_ktensor *kt, int32_t n, unsigned flags, char *base, kt_input *in) {
    const size_t nn = (size_t)n, nct = (size_t)kt->n_ctiles;
    size_t off = 0;
#define TAKE(field, type, count)                                          \
    do {                                                                  \
        if (in) in->field = (type *)(void *)(base + off);                 \
        off += up64((count) * sizeof(type));                              \
    } while (0)
    if (in) *in = (kt_input){NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, n};
    if (flags & SC_XP) TAKE(xp, float, nn * (size_t)kt->padcols);
    if (flags & SC_X2) TAKE(x2, float, (size_t)kt->padcols);
    TAKE(xs, float, nn * (size_t)kt->n_groups);
    TAKE(xq, float, nn * (size_t)kt->cols);
    if (flags & SC_XQT) {
        TAKE(xqt, float, nn * (size_t)kt->cols);
        TAKE(xsg, float, nn * (size_t)kt->n_groups);
    }
    if (flags & SC_I8) {
        TAKE(xa, int32_t, nn * nct * (flags & SC_WORDS ? KT_XW : KT_XOPS));
        TAKE(at, float, nn * nct);
    }
#undef TAKE
    return off;
}

/* dst[c][i] = src[i][c] for rows i in [i0, i1) of src [..][cols], dst row
 * stride n; 16 columns at a time (column by column, 32 inputs of 4096
 * columns took 0.8 ns per value, in blocks 0.34, as 11008 columns did
 * either way). */
static void transpose_block(const float *src, int32_t cols, float *dst, int32_t n, int32_t i0, int32_t i1) {
    for (int32_t c0 = 0; c0 < cols; c0 += 16) {
        const int32_t c1 = cols - c0 < 16 ? cols : c0 + 16;
        for (int32_t i = i0; i < i1; i++) {
            const float *s = src + (size_t)i * cols;
            for (int32_t c = c0; c < c1; c++) dst[(size_t)c * n + i] = s[c];
        }
    }
}

/* The SIMD batch paths read the n inputs of an outlier's column, and the n
 * sums of a group, side by side. */
void spqri_kt_transpose_inputs(const spqr_ktensor *kt, const kt_input *in, int32_t i0, int32_t i1) {
    transpose_block(in->xq, kt->cols, (float *)in->xqt, in->n, i0, i1);
    transpose_block(in->xs, kt->n_groups, (float *)in->xsg, in->n, i0, i1);
}

size_t spqri_kt_scratch_exact(const spqr_ktensor *kt, int32_t n) {
    return carve(kt, n, SC_XP | (n == 1 ? SC_X2 : SC_XQT), NULL, NULL);
}

void spqri_kt_prepare_exact(const spqr_ktensor *kt, const float *X, int32_t n, int32_t i0, int32_t i1, void *scratch,
                      kt_input *in) {
    carve(kt, n, SC_XP | (n == 1 ? SC_X2 : SC_XQT), scratch, in);
    if (i1 <= i0) return;
    prepare(kt, X + (size_t)i0 * kt->cols, i1 - i0, (float *)in->xp + (size_t)i0 * kt->padcols, (float *)in->x2,
            (float *)in->xs + (size_t)i0 * kt->n_groups, (float *)in->xq + (size_t)i0 * kt->cols);
}

static unsigned i8_flags(int32_t n, int words) { return SC_I8 | (n > 1 ? SC_XQT : 0) | (words && n == 1 ? SC_WORDS : 0); }

size_t spqri_kt_scratch_i8(const spqr_ktensor *kt, int32_t n) { return carve(kt, n, i8_flags(n, 0), NULL, NULL); }
size_t spqri_kt_scratch_i8_words(const spqr_ktensor *kt, int32_t n) { return carve(kt, n, i8_flags(n, 1), NULL, NULL); }

void spqri_kt_prepare_i8_with(const spqr_ktensor *kt, const float *X, int32_t n, int32_t i0, int32_t i1, void *scratch,
                        kt_input *in, kt_prep_i8_fn one, int words) {
    carve(kt, n, i8_flags(n, words), scratch, in);
    /* input i's slot of the [n_ctiles][n] interleaved activations */
    for (int32_t i = i0; i < i1; i++)
        one(kt, X + (size_t)i * kt->cols, (float *)in->xs + (size_t)i * kt->n_groups, (float *)in->xq + (size_t)i * kt->cols,
            (int32_t *)in->xa + (size_t)i * KT_XOPS, (float *)in->at + i, n);
}

void spqri_kt_prepare_i8(const spqr_ktensor *kt, const float *X, int32_t n, int32_t i0, int32_t i1, void *scratch,
                   kt_input *in) {
    spqri_kt_prepare_i8_with(kt, X, n, i0, i1, scratch, in, kt->ops->prep_i8, 0);
}

static size_t chunk_of(int32_t n) { return (size_t)(n < KT_NB ? n : KT_NB); }

static size_t chunk_scratch(const spqr_ktensor *kt, int32_t n) { return up64(kt->ops->scratch_size(kt, (int32_t)chunk_of(n))); }

/* Scratch buffers of one chunk each: two (double-buffered, see
 * spqri_kt_matmul_multi_ws) when n takes more than one chunk. */
static size_t chunk_buffers(int32_t n) { return n > KT_NB ? 2 : 1; }

size_t spqri_kt_scratch_matmul(const spqr_ktensor *kt, int32_t n) {
    return n < 1 ? 0 : chunk_scratch(kt, n) * chunk_buffers(n);
}

size_t spqri_kt_scratch_matmul_multi(const spqr_ktensor *const *kts, int32_t k, int32_t n) {
    size_t total = 0;
    for (int32_t i = 0; i < k; i++) total += spqri_kt_scratch_matmul(kts[i], n);
    return total;
}

spqr_status spqri_kt_matmul_ws(const spqr_ktensor *kt, const float *X, int32_t n, float *Y, int32_t n_threads, void *ws,
                         size_t ws_bytes, spqr_err *err) {
    if (!kt) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "ktensor is NULL");
    return spqri_kt_matmul_multi_ws(&kt, 1, X, n, &Y, n_threads, ws, ws_bytes, err);
}

spqr_status spqri_kt_matmul_multi_ws(const spqr_ktensor *const *kts, int32_t k, const float *X, int32_t n, float *const *Ys,
                               int32_t n_threads, void *ws, size_t ws_bytes, spqr_err *err) {
    if (k < 1 || k > KT_MULTI_MAX)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "matmul: %d products (1..%d)", k, KT_MULTI_MAX);
    if (!kts || !Ys) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "matmul: NULL argument");
    for (int32_t i = 0; i < k; i++)
        if (!kts[i] || !Ys[i]) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "matmul: product %d is NULL", i);
    if (n < 0) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "negative batch size %d", n);
    if (n == 0) return SPQR_OK;
    if (!X) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "input or output buffer is NULL");
    if (n == 1) return spqri_kt_matvec_multi_ws(kts, k, X, Ys, n_threads, ws, ws_bytes, err);
    const size_t need = spqri_kt_scratch_matmul_multi(kts, k, n);
    if (!ws || ws_bytes < need)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "matmul: scratch of %zu bytes, %zu needed", ws_bytes, need);
    int64_t work = 0;
    int32_t tiles = 0;
    for (int32_t i = 0; i < k; i++) {
        if (kts[i]->cols != kts[0]->cols)
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "matmul: products take %d and %d inputs", kts[0]->cols,
                                kts[i]->cols);
        work += (int64_t)kts[i]->rows * kts[i]->cols * n;
        tiles += kts[i]->n_rtiles;
    }
    if (n_threads <= 0) n_threads = omp_get_num_procs();
    if (n_threads > tiles) n_threads = tiles;
    /* Small products are not worth waking threads for (a wake-up costs
     * 10-50 us with OMP_WAIT_POLICY=passive; 2^18 weights take ~8 us): the
     * same threshold as the dense linears (src/model/linear.c). */
    if (work < KT_PAR_MIN) n_threads = 1;
    /* balanced chunks of at most KT_NB inputs: none of one input (that
     * would be the matvec's input layout) */
    const int32_t nch = (n + KT_NB - 1) / KT_NB;
    /* One parallel region for all chunks and the k products of one input
     * (q, k, v): per chunk, each thread prepares a share of the inputs and
     * transposes its own share (in->xqt, xsg), one barrier, then each takes a
     * contiguous range of all the products' row tiles, concatenated, and
     * writes its own 64-byte-aligned spans of Y. Chunks alternate between
     * two scratch buffers, so chunk c + 1's preparation cannot overwrite
     * what a slower thread still reads for chunk c: every thread has left
     * chunk c - 1's tiles (the other buffer) before anyone passes chunk c's
     * barrier. (Before: a fork, two barriers and a join per chunk, which
     * cost the default model's perplexity run 10-15% of its tokens/s with
     * OMP_WAIT_POLICY=passive.) */
#pragma omp parallel num_threads(n_threads) if (n_threads > 1)
    {
        const int32_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        for (int32_t c = 0; c < nch; c++) {
            const int32_t i0 = (int32_t)((int64_t)n * c / nch), m = (int32_t)((int64_t)n * (c + 1) / nch) - i0;
            const int32_t j0 = (int32_t)((int64_t)m * t / nt), j1 = (int32_t)((int64_t)m * (t + 1) / nt);
            const float *Xc = X + (size_t)i0 * kts[0]->cols;
            kt_input in[KT_MULTI_MAX];
            char *p = ws;
            for (int32_t i = 0; i < k; i++) {
                const size_t cs = chunk_scratch(kts[i], n);
                kts[i]->ops->prepare(kts[i], Xc, m, j0, j1, p + (size_t)(c & 1) * cs, &in[i]);
                if (in[i].xqt) spqri_kt_transpose_inputs(kts[i], &in[i], j0, j1);
                p += cs * chunk_buffers(n);
            }
#pragma omp barrier
            const int32_t lo = (int32_t)((int64_t)tiles * t / nt), hi = (int32_t)((int64_t)tiles * (t + 1) / nt);
            int32_t off = 0;
            for (int32_t i = 0; i < k; i++) {
                const int32_t nr = kts[i]->n_rtiles;
                const int32_t a = (lo > off ? lo : off) - off, b = (hi < off + nr ? hi : off + nr) - off;
                /* Y rows of this chunk are contiguous [m][rows] */
                if (b > a) kts[i]->ops->matmul(kts[i], &in[i], a, b, Ys[i] + (size_t)i0 * kts[i]->rows);
                off += nr;
            }
        }
    }
    return SPQR_OK;
}

/* Runs a scratch-taking product with scratch of its own (the public API). */
#define WITH_SCRATCH(bytes, call)                                                          \
    do {                                                                                   \
        const size_t nb_ = (bytes);                                                        \
        void *ws = kt_alloc64(nb_);                                                        \
        if (!ws) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for %zu bytes of kernel scratch", nb_); \
        const spqr_status st_ = (call);                                                    \
        free(ws);                                                                          \
        return st_;                                                                        \
    } while (0)

spqr_status spqr_ktensor_matmul(const spqr_ktensor *kt, const float *X, int32_t n, float *Y,
                                int32_t n_threads, spqr_err *err) {
    if (!kt) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "ktensor is NULL");
    if (n < 0) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "negative batch size %d", n);
    if (n == 0) return SPQR_OK;
    WITH_SCRATCH(spqri_kt_scratch_matmul(kt, n), spqri_kt_matmul_ws(kt, X, n, Y, n_threads, ws, nb_, err));
}

static spqr_status check_multi(const spqr_ktensor *const *kts, int32_t k, const float *x, float *const *ys,
                               spqr_err *err) {
    if (k < 1 || k > KT_MULTI_MAX)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "matvec_multi: %d products (1..%d)", k, KT_MULTI_MAX);
    if (!kts || !x || !ys) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "matvec_multi: NULL argument");
    for (int32_t i = 0; i < k; i++) {
        if (!kts[i] || !ys[i]) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "matvec_multi: product %d is NULL", i);
        if (kts[i]->cols != kts[0]->cols)
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "matvec_multi: products take %d and %d inputs", kts[0]->cols,
                                kts[i]->cols);
    }
    return SPQR_OK;
}

size_t spqri_kt_scratch_matvec_multi(const spqr_ktensor *const *kts, int32_t k) {
    size_t total = 0;
    for (int32_t i = 0; i < k; i++) total += up64(kts[i]->ops->scratch_size(kts[i], 1));
    return total;
}

spqr_status spqri_kt_mv_prepare(kt_mv_job *j, const spqr_ktensor *const *kts, int32_t k, const float *x, float *const *ys,
                                int32_t n_threads, void *ws, size_t ws_bytes, spqr_err *err) {
    spqr_status st = check_multi(kts, k, x, ys, err);
    if (st) return st;
    const size_t need = spqri_kt_scratch_matvec_multi(kts, k);
    if (!ws || ws_bytes < need)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "matvec: scratch of %zu bytes, %zu needed", ws_bytes, need);
    char *p = ws;
    j->k = k;
    j->tiles = 0;
    for (int32_t i = 0; i < k; i++) {
        j->kts[i] = kts[i];
        j->ys[i] = ys[i];
        kts[i]->ops->prepare(kts[i], x, 1, 0, 1, p, &j->in[i]);
        p += up64(kts[i]->ops->scratch_size(kts[i], 1));
        j->tiles += kts[i]->n_rtiles;
    }
    j->cut = spqri_chunks(j->tiles, KT_CHUNK, n_threads);
    return SPQR_OK;
}

void spqri_kt_mv_chunk(const kt_mv_job *j, int32_t ch) {
    int32_t lo, hi;
    spqri_chunk_range(&j->cut, ch, &lo, &hi);
    int32_t off = 0;
    for (int32_t i = 0; i < j->k; i++) {
        const int32_t n = j->kts[i]->n_rtiles;
        const int32_t a = (lo > off ? lo : off) - off, b = (hi < off + n ? hi : off + n) - off;
        if (b > a) j->kts[i]->ops->matvec(j->kts[i], &j->in[i], a, b, j->ys[i]);
        off += n;
    }
}

spqr_status spqri_kt_matvec_multi_ws(const spqr_ktensor *const *kts, int32_t k, const float *x, float *const *ys,
                               int32_t n_threads, void *ws, size_t ws_bytes, spqr_err *err) {
    spqr_status st = check_multi(kts, k, x, ys, err);
    if (st) return st;
    int64_t weights = 0;
    int32_t tiles = 0;
    for (int32_t i = 0; i < k; i++) {
        weights += (int64_t)kts[i]->rows * kts[i]->cols;
        tiles += kts[i]->n_rtiles;
    }
    if (n_threads <= 0) n_threads = omp_get_num_procs();
    if (n_threads > tiles) n_threads = tiles;
    if (weights < KT_PAR_MIN) n_threads = 1; /* see spqri_kt_matmul_ws */
    const int32_t T = n_threads;
    kt_mv_job j;
    if ((st = spqri_kt_mv_prepare(&j, kts, k, x, ys, T, ws, ws_bytes, err))) return st;
    /* One parallel region for all k products (q, k, v share their
     * input): the row tiles of all of them, concatenated, handed out in
     * chunks of KT_CHUNK tiles to whichever thread is free. A fork/join
     * costs more than a small matvec where threads sleep between
     * regions, and on a shared machine a thread that loses its core for
     * a while no longer holds the other back (measured: docs/kernels.md,
     * "Arithmetic, paths and tolerance"). */
#pragma omp parallel for num_threads(T) schedule(dynamic, 1) if (T > 1)
    for (int32_t ch = 0; ch < j.cut.n_chunks; ch++) spqri_kt_mv_chunk(&j, ch);
    return SPQR_OK;
}

spqr_status spqr_ktensor_matvec_multi(const spqr_ktensor *const *kts, int32_t k, const float *x, float *const *ys,
                                      int32_t n_threads, spqr_err *err) {
    spqr_status st = check_multi(kts, k, x, ys, err);
    if (st) return st;
    WITH_SCRATCH(spqri_kt_scratch_matvec_multi(kts, k), spqri_kt_matvec_multi_ws(kts, k, x, ys, n_threads, ws, nb_, err));
}

spqr_status spqr_ktensor_matvec(const spqr_ktensor *kt, const float *x, float *y, int32_t n_threads,
                                spqr_err *err) {
    if (!kt) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "ktensor is NULL");
    return spqr_ktensor_matvec_multi(&kt, 1, x, &y, n_threads, err);
}
