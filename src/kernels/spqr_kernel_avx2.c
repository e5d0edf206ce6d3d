/* AVX2 + FMA + F16C path: the AVX-512 scheme on two ymm halves (rows 0-7,
 * 8-15) of each code-block dword vector: per column, AND (or shift) the
 * field out of the dword lanes, convert, FMA with the pre-scaled x (four
 * accumulators per half: one FMA chain per column would wait on latency).
 * Statistics are decoded in registers as on AVX-512 (a broadcast 16-byte
 * load, pshufb into dword lanes, variable shift, mask; vcvtph2ps), with the
 * second-level fp16 pairs of 16 groups converted at once; the arithmetic is
 * the reference's, s2 * (code - z2) without FMA. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <string.h>

#include "format/tensor.h"
#include "kernels/kernels.h"
#include "kernels/stat_avx2.h"

#define T256 KT_T256
#define INLINE KT_INLINE

/* Statistic decoding state of one call: the shared tables (stat_avx2.h),
 * the in-place field masks, and for a bilevel part with one second-level
 * pair per row tile the pairs of the current 16 groups as fp32 (s2, z2). */
typedef struct {
    kt_st256 t;
    __m256i fm[KT_BC]; /* AND mask of block column j's field in place (x pre-scaled), built at run time */
    float pf[2][32] __attribute__((aligned(32))); /* [part][group % 16][s2, z2] */
    __m256 sz[16][2][2];                          /* decoded s, z of 16 groups: [group % 16][part][half] */
} st_ctx;

typedef kt_rt256 rt_ctx;
#define rt_begin kt_rtile_begin

T256 INLINE void st_init(const spqr_ktensor *kt, st_ctx *sc) {
    kt_st256_init(kt, &sc->t);
    /* masks come from memory: as immediates GCC 12 rebuilds each one per
     * column (movabs + vmovq + vpbroadcastq), 3 uops per 8 weights */
    for (int j = 0; j < KT_BC; j++)
        sc->fm[j] = _mm256_set1_epi32((int)(((1u << kt->wbits) - 1u) << kt_field_shift(kt->wbits, j)));
}

/* Converts the second-level pairs of groups g..g+15 (g % 16 == 0) of the
 * row tile to fp32, exactly (fp16 -> fp32 is exact), never reading past
 * the pair array. */
T256 INLINE void st_pairs(const spqr_ktensor *kt, st_ctx *sc, const rt_ctx *rc, int32_t g) {
    const int32_t n = kt->n_groups - g < 16 ? kt->n_groups - g : 16;
    for (int p = 0; p < 2; p++) {
        if (!rc->pp[p]) continue;
        const uint16_t *src = rc->pp[p] + (size_t)g * 2;
        uint16_t tmp[32];
        if (n < 16) {
            memset(tmp, 0, sizeof tmp);
            memcpy(tmp, src, (size_t)n * 4);
            src = tmp;
        }
        for (int k = 0; k < 4; k++)
            _mm256_store_ps(sc->pf[p] + 8 * k, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 8 * k))));
    }
}

T256 INLINE void stats256(const spqr_ktensor *kt, const st_ctx *sc, const rt_ctx *rc, int32_t g, __m256 s[2], __m256 z[2]) {
    const uint8_t *blk = rc->st + (size_t)g * kt->stat_bytes;
    const int k = 2 * (g & 15);
    kt_stat16_256(kt, &sc->t, rc, blk, g, 0, rc->pp[0] ? sc->pf[0] + k : NULL, s);
    kt_stat16_256(kt, &sc->t, rc, blk + kt->sb_bytes, g, 1, rc->pp[1] ? sc->pf[1] + k : NULL, z);
}

/* Block column j's codes of rows 8*half..8*half+7 as fp32 (times 2^shift
 * with the in-place masks fm where kt_xscale says so; exact without). */
T256 INLINE __m256 field8(const uint32_t *blk, const int B, const int j, const int half, const __m256i *fm) {
    const int d = kt_field_dword(B, j), s = kt_field_shift(B, j);
    const __m256i v = _mm256_load_si256((const __m256i *)(blk + d * KT_R + 8 * half));
    const __m256i m = _mm256_set1_epi32((int)((1u << B) - 1u));
    __m256i f;
    if (s + B < 32) f = fm ? _mm256_and_si256(v, _mm256_load_si256(fm + j))
                               : (s ? _mm256_and_si256(_mm256_srli_epi32(v, s), m) : _mm256_and_si256(v, m));
    else if (s + B == 32) f = _mm256_srli_epi32(v, s);
    else {
        const __m256i w = _mm256_load_si256((const __m256i *)(blk + (d + 1) * KT_R + 8 * half));
        f = _mm256_and_si256(_mm256_or_si256(_mm256_srli_epi32(v, s), _mm256_slli_epi32(w, 32 - s)), m);
    }
    return _mm256_cvtepi32_ps(f);
}

/* 16 columns (half h of a block) into four accumulators per 8-row half. */
T256 INLINE void half16(const uint32_t *blk, const float *x, const __m256i *fm, const int B, const int h, __m256 lo[4],
                        __m256 hi[4]) {
#pragma GCC unroll 16
    for (int c = 0; c < KT_C; c++) {
        const __m256 xb = _mm256_broadcast_ss(x + c);
        lo[c & 3] = _mm256_fmadd_ps(field8(blk, B, h * KT_C + c, 0, fm), xb, lo[c & 3]);
        hi[c & 3] = _mm256_fmadd_ps(field8(blk, B, h * KT_C + c, 1, fm), xb, hi[c & 3]);
    }
}

/* Decodes the statistics of groups g..g+15 (g % 16 == 0) of the row tile
 * into sc->sz in one tight loop: interleaved with the code loop, the decode
 * competed with eight accumulators for 16 ymm registers and spilled (it took
 * a third of the time, w3 1% 4096^2). */
T256 INLINE void st_batch(const spqr_ktensor *kt, st_ctx *sc, const rt_ctx *rc, int32_t g) {
    const int32_t n = kt->n_groups - g < 16 ? kt->n_groups - g : 16;
    st_pairs(kt, sc, rc, g);
    for (int32_t k = 0; k < n; k++) stats256(kt, sc, rc, g + k, sc->sz[k][0], sc->sz[k][1]);
}

/* Closes group g: y += s * (dot - z * sum(x_g)) per half. */
T256 INLINE void finish_group(const kt_input *in, const st_ctx *sc, int32_t g, const __m256 lo[4], const __m256 hi[4],
                              __m256 *ylo, __m256 *yhi) {
    const __m256(*sz)[2] = sc->sz[g & 15];
    const __m256 xs = _mm256_broadcast_ss(in->xs + g);
    const __m256 dlo = _mm256_add_ps(_mm256_add_ps(lo[0], lo[1]), _mm256_add_ps(lo[2], lo[3]));
    const __m256 dhi = _mm256_add_ps(_mm256_add_ps(hi[0], hi[1]), _mm256_add_ps(hi[2], hi[3]));
    *ylo = _mm256_fmadd_ps(sz[0][0], _mm256_fnmadd_ps(sz[1][0], xs, dlo), *ylo);
    *yhi = _mm256_fmadd_ps(sz[0][1], _mm256_fnmadd_ps(sz[1][1], xs, dhi), *yhi);
}

#define ZERO4(a) (a)[0] = (a)[1] = (a)[2] = (a)[3] = _mm256_setzero_ps()

T256 INLINE void matvec_b(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *y, st_ctx *sc,
                          const int B) {
    const int32_t ctpg = kt->ct_per_group, bu = kt->blk_u32;
    for (int32_t rt = rt0; rt < rt1; rt++) {
        const uint32_t *cb = kt->codes + (size_t)rt * kt->n_cblocks * bu;
        const float *x = in->x2;
        const rt_ctx rc = rt_begin(kt, rt);
        kt_opf opf = kt_opf_begin(kt, rt);
        __m256 ylo = _mm256_setzero_ps(), yhi = _mm256_setzero_ps();
        __m256 lo[4], hi[4];
        int32_t g = 0;
        if (ctpg == 1) { /* groups of <= 16 columns: a block is two groups */
            for (; g + 1 < kt->n_groups; g += 2, cb += bu, x += KT_BC) {
                if ((g & 15) == 0) st_batch(kt, sc, &rc, g);
                kt_prefetch_tile(cb, 0, B);
                kt_prefetch_tile(cb, 1, B);
                kt_opf_step(&opf);
                ZERO4(lo);
                ZERO4(hi);
                half16(cb, x, sc->fm, B, 0, lo, hi);
                finish_group(in, sc, g, lo, hi, &ylo, &yhi);
                ZERO4(lo);
                ZERO4(hi);
                half16(cb, x + KT_C, sc->fm, B, 1, lo, hi);
                finish_group(in, sc, g + 1, lo, hi, &ylo, &yhi);
            }
            if (g < kt->n_groups) {
                if ((g & 15) == 0) st_batch(kt, sc, &rc, g);
                ZERO4(lo);
                ZERO4(hi);
                half16(cb, x, sc->fm, B, 0, lo, hi);
                finish_group(in, sc, g, lo, hi, &ylo, &yhi);
            }
        } else {
            int32_t t = 0;
            for (; g < kt->n_groups; g++) {
                if ((g & 15) == 0) st_batch(kt, sc, &rc, g);
                ZERO4(lo);
                ZERO4(hi);
                for (int32_t k = 0; k < ctpg; k++, t++, x += KT_C) {
                    const uint32_t *blk = cb + (size_t)(t >> 1) * bu;
                    kt_prefetch_tile(blk, t, B);
                    if (t & 1) kt_opf_step(&opf);
                    if (t & 1) half16(blk, x, sc->fm, B, 1, lo, hi);
                    else half16(blk, x, sc->fm, B, 0, lo, hi);
                }
                finish_group(in, sc, g, lo, hi, &ylo, &yhi);
            }
        }
        float out[KT_R];
        if (kt->rows - rt * KT_R >= KT_R) {
            _mm256_storeu_ps(y + rt * KT_R, ylo);
            _mm256_storeu_ps(y + rt * KT_R + 8, yhi);
        } else {
            _mm256_storeu_ps(out, ylo);
            _mm256_storeu_ps(out + 8, yhi);
            for (int i = 0; rt * KT_R + i < kt->rows; i++) y[rt * KT_R + i] = out[i];
        }
    }
    kt_outliers_add(kt, in->xq, rt0, rt1, y);
}

T256 void spqri_kt_matvec_avx2(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    st_ctx sc;
    st_init(kt, &sc);
    KT_WBITS_DISPATCH(kt->wbits, matvec_b, kt, in, rt0, rt1, Y, &sc);
}

/* A 16x16 code tile widened to qt[16 columns][16 rows] fp32. */
T256 INLINE void widen16(const uint32_t *blk, const int B, const int h, float qt[KT_C][KT_R]) {
#pragma GCC unroll 16
    for (int c = 0; c < KT_C; c++) {
        _mm256_store_ps(qt[c], field8(blk, B, h * KT_C + c, 0, NULL));
        _mm256_store_ps(qt[c] + 8, field8(blk, B, h * KT_C + c, 1, NULL));
    }
}

/* Batch: a code tile is widened once and applied to all n (<= 64) inputs. */
T256 INLINE void matmul_b(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y, const int B) {
    const int32_t ctpg = kt->ct_per_group, n = in->n;
    float qt[KT_C][KT_R] __attribute__((aligned(32)));
    float ya[64][KT_R] __attribute__((aligned(32))), ga[64][KT_R] __attribute__((aligned(32)));
    float s[KT_R], z[KT_R];
    for (int32_t rt = rt0; rt < rt1; rt++) {
        memset(ya, 0, sizeof(float) * KT_R * (size_t)n);
        for (int32_t g = 0; g < kt->n_groups; g++) {
            memset(ga, 0, sizeof(float) * KT_R * (size_t)n);
            for (int32_t k = 0; k < ctpg; k++) {
                const int32_t t = g * ctpg + k;
                if (t & 1) widen16(kt_block(kt, rt, t), B, 1, qt);
                else widen16(kt_block(kt, rt, t), B, 0, qt);
                const size_t col0 = (size_t)t * KT_C;
                for (int32_t j = 0; j < n; j++) {
                    const float *x = in->xp + (size_t)j * kt->padcols + col0;
                    __m256 lo = _mm256_load_ps(ga[j]), hi = _mm256_load_ps(ga[j] + 8);
                    for (int c = 0; c < KT_C; c++) {
                        const __m256 xb = _mm256_set1_ps(x[c]);
                        lo = _mm256_fmadd_ps(_mm256_load_ps(qt[c]), xb, lo);
                        hi = _mm256_fmadd_ps(_mm256_load_ps(qt[c] + 8), xb, hi);
                    }
                    _mm256_store_ps(ga[j], lo);
                    _mm256_store_ps(ga[j] + 8, hi);
                }
            }
            spqri_kt_stats_scalar(kt, rt, g, s, z);
            for (int32_t j = 0; j < n; j++) {
                const __m256 xs = _mm256_set1_ps(in->xsg[(size_t)g * in->n + j]);
                for (int h = 0; h < 2; h++) {
                    const __m256 t = _mm256_fnmadd_ps(_mm256_loadu_ps(z + 8 * h), xs, _mm256_load_ps(ga[j] + 8 * h));
                    _mm256_store_ps(ya[j] + 8 * h, _mm256_fmadd_ps(_mm256_loadu_ps(s + 8 * h), t, _mm256_load_ps(ya[j] + 8 * h)));
                }
            }
        }
        kt_batch_outliers_store_256(kt, in, rt, n, ya, Y);
    }
}

T256 void spqri_kt_matmul_avx2(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    KT_WBITS_DISPATCH(kt->wbits, matmul_b, kt, in, rt0, rt1, Y);
}
#else
#include "kernels/kernels.h"
void spqri_kt_matvec_avx2(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    spqri_kt_matmul_scalar(kt, in, rt0, rt1, Y);
}
void spqri_kt_matmul_avx2(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    spqri_kt_matmul_scalar(kt, in, rt0, rt1, Y);
}
#endif

const spqr_kernel_ops spqri_kt_ops_avx2 = {"avx2", SPQR_KERNEL_AVX2, 1, spqr_cpu_has_avx2, spqri_kt_scratch_exact, spqri_kt_prepare_exact,
                                     spqri_kt_matvec_avx2, spqri_kt_matmul_avx2, NULL, 0};
