/* AVX-512 path. One zmm holds the 16 rows of a row tile, one dword lane
 * per row. For each column j of a code block, the rows' codes are taken out
 * of the block's dword vectors with one AND (or one shift; two shifts and a
 * ternary-logic op for a field straddling two dwords, odd wbits only),
 * converted to fp32 and multiplied-added with x_j broadcast from memory:
 * three instructions per 16 weights, four independent accumulators. x is
 * pre-scaled by 2^-shift per block column (kt_xscale), which is exact, so
 * the AND needs no shift. Per group, dot = sum_j q_j x_j and the row sums
 * get s * (dot - z * sum(x_g)), with s and z decoded in registers from the
 * stored qq-bit codes (pshufb + variable shift) and fp16 second-level
 * pairs, exactly as the reference (s2 * (code - z2), no FMA). */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <string.h>

#include "format/tensor.h"
#include "kernels/kernels.h"

#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

typedef kt_rtile rt_ctx;
#define rt_begin kt_rtile_begin

/* One first-level statistic of 16 rows (scale or zero), bit-exact with
 * spqr_stat_dq / spqr_fp16_to_fp32. part: 0 scale, 1 zero. */
T512 INLINE __m512 stat16(const spqr_ktensor *kt, const uint8_t *blk, int bits, const uint16_t *pairs,
                          const uint16_t *pairs_rt, int32_t rt, int32_t g, int part) {
    if (!bits) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
    /* <= 16 code bytes; the stats array has 16 bytes of slack at its end */
    const __m512i b = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)blk));
    __m512i code = _mm512_shuffle_epi8(b, _mm512_loadu_si512(kt->st_idx[part]));
    code = _mm512_srlv_epi32(code, _mm512_loadu_si512(kt->st_sh[part]));
    code = _mm512_and_si512(code, _mm512_set1_epi32((1 << bits) - 1));
    const __m512 cf = _mm512_cvtepi32_ps(code);
    __m512 s2, z2;
    if (kt->q2_aligned) {
        const uint16_t *p = pairs_rt + (size_t)g * 2;
        uint32_t pr;
        memcpy(&pr, p, 4);
        const __m128 sz = _mm_cvtph_ps(_mm_cvtsi32_si128((int)pr)); /* exact fp16 -> fp32 */
        s2 = _mm512_broadcastss_ps(sz);
        z2 = _mm512_broadcastss_ps(_mm_movehdup_ps(sz));
    } else {
        float sa[KT_R], za[KT_R];
        for (int i = 0; i < KT_R; i++) {
            int32_t qg = (rt * KT_R + i) / kt->qq_groupsize;
            if (qg >= kt->n_qgroups) qg = kt->n_qgroups - 1; /* padded rows: any finite pair */
            const uint16_t *p = pairs + ((size_t)qg * kt->n_groups + g) * 2;
            sa[i] = _cvtsh_ss(p[0]);
            za[i] = _cvtsh_ss(p[1]);
        }
        s2 = _mm512_loadu_ps(sa);
        z2 = _mm512_loadu_ps(za);
    }
    return _mm512_mul_ps(s2, _mm512_sub_ps(cf, z2)); /* no FMA: same rounding as the reference */
}

T512 INLINE void stats512(const spqr_ktensor *kt, const rt_ctx *rc, int32_t g, __m512 *s, __m512 *z) {
    const uint8_t *blk = rc->st + (size_t)g * kt->stat_bytes;
    *s = stat16(kt, blk, kt->qs_bits, kt->s_pair, rc->pp[0], rc->rt, g, 0);
    *z = stat16(kt, blk + kt->sb_bytes, kt->qz_bits, kt->z_pair, rc->pp[1], rc->rt, g, 1);
}

/* Block column j's codes as fp32, times 2^shift where kt_xscale says so
 * (scaled = 1, matvec) or exactly (scaled = 0, matmul). */
T512 INLINE __m512 field(const uint32_t *blk, const int B, const int j, const int scaled) {
    const int d = kt_field_dword(B, j), s = kt_field_shift(B, j);
    const __m512i v = _mm512_load_si512(blk + d * KT_R);
    const __m512i m = _mm512_set1_epi32((int)((1u << B) - 1u));
    __m512i f;
    if (s + B < 32) f = scaled ? _mm512_and_si512(v, _mm512_set1_epi32((int)(((1u << B) - 1u) << s)))
                               : (s ? _mm512_and_si512(_mm512_srli_epi32(v, s), m) : _mm512_and_si512(v, m));
    else if (s + B == 32) f = _mm512_srli_epi32(v, s);
    else /* (v >> s | next << (32 - s)) & m */
        f = _mm512_ternarylogic_epi32(_mm512_srli_epi32(v, s),
                                      _mm512_slli_epi32(_mm512_load_si512(blk + (d + 1) * KT_R), 32 - s), m, 0xA8);
    return _mm512_cvtepi32_ps(f);
}

/* 16 columns (half h of a block) into four accumulators. */
T512 INLINE void half16(const uint32_t *blk, const float *x, const int B, const int h, __m512 acc[4]) {
#pragma GCC unroll 16
    for (int c = 0; c < KT_C; c++)
        acc[c & 3] = _mm512_fmadd_ps(field(blk, B, h * KT_C + c, 1), _mm512_set1_ps(x[c]), acc[c & 3]);
}

T512 INLINE void store_rows(const spqr_ktensor *kt, int32_t rt, float *y, __m512 v) {
    const int32_t left = kt->rows - rt * KT_R;
    if (left >= KT_R) _mm512_storeu_ps(y + rt * KT_R, v);
    else _mm512_mask_storeu_ps(y + rt * KT_R, (__mmask16)((1u << left) - 1u), v);
}

/* Closes group g of row tile rt: y += s * (dot - z * sum(x_g)). */
T512 INLINE void finish_dot(const spqr_ktensor *kt, const kt_input *in, const rt_ctx *rc, int32_t g, const __m512 dot,
                            __m512 *yacc) {
    __m512 s, z;
    stats512(kt, rc, g, &s, &z);
    *yacc = _mm512_fmadd_ps(s, _mm512_fnmadd_ps(z, _mm512_set1_ps(in->xs[g]), dot), *yacc);
}

T512 INLINE void finish_group(const spqr_ktensor *kt, const kt_input *in, const rt_ctx *rc, int32_t g, const __m512 acc[4],
                              __m512 *yacc) {
    const __m512 dot = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    finish_dot(kt, in, rc, g, dot, yacc);
}

T512 INLINE void matvec_b(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *y, const int B) {
    const int32_t ctpg = kt->ct_per_group, bu = kt->blk_u32;
    for (int32_t rt = rt0; rt < rt1; rt++) {
        const uint32_t *cb = kt->codes + (size_t)rt * kt->n_cblocks * bu;
        const float *x = in->x2;
        __m512 yacc = _mm512_setzero_ps();
        const rt_ctx rc = rt_begin(kt, rt);
        kt_opf opf = kt_opf_begin(kt, rt);
        if (ctpg == 1) { /* groups of <= 16 columns: a block is two groups */
            int32_t g = 0;
            for (; g + 1 < kt->n_groups; g += 2) {
                __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
                kt_prefetch_tile(cb, 0, B);
                kt_prefetch_tile(cb, 1, B);
                kt_opf_step(&opf);
                half16(cb, x, B, 0, acc);
                finish_group(kt, in, &rc, g, acc, &yacc);
                acc[0] = acc[1] = acc[2] = acc[3] = _mm512_setzero_ps();
                half16(cb, x + KT_C, B, 1, acc);
                finish_group(kt, in, &rc, g + 1, acc, &yacc);
                cb += bu;
                x += KT_BC;
            }
            if (g < kt->n_groups) {
                __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
                half16(cb, x, B, 0, acc);
                finish_group(kt, in, &rc, g, acc, &yacc);
            }
        } else {
            int32_t t = 0;
            for (int32_t g = 0; g < kt->n_groups; g++) {
                __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
                for (int32_t k = 0; k < ctpg; k++, t++, x += KT_C) {
                    kt_prefetch_tile(cb + (size_t)(t >> 1) * bu, t, B);
                    if (t & 1) kt_opf_step(&opf);
                    if (t & 1) half16(cb + (size_t)(t >> 1) * bu, x, B, 1, acc);
                    else half16(cb + (size_t)(t >> 1) * bu, x, B, 0, acc);
                }
                finish_group(kt, in, &rc, g, acc, &yacc);
            }
        }
        store_rows(kt, rt, y, yacc);
    }
    kt_outliers_add(kt, in->xq, rt0, rt1, y);
}

T512 void spqri_kt_matvec_avx512(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    KT_WBITS_DISPATCH(kt->wbits, matvec_b, kt, in, rt0, rt1, Y);
}

/* 16 columns (half h of a block) widened to exact fp32 code vectors. */
T512 INLINE void widen16(const uint32_t *blk, const int B, const int h, __m512 qf[KT_C]) {
#pragma GCC unroll 16
    for (int c = 0; c < KT_C; c++) qf[c] = field(blk, B, h * KT_C + c, 0);
}

/* A batch's outlier corrections for row tile rt, added to ya[j] (j < n):
 * row by row, all inputs at once, corr[i][j] in zmm chunks of 16 inputs
 * from the transposed inputs xqt (a scalar multiply-add per outlier and
 * input cost as much as all the code tiles of a 16-token batch). */
T512 INLINE void outliers_batch(const spqr_ktensor *kt, const kt_input *in, int32_t rt, __m512 *ya) {
    const int32_t n = in->n;
    float corr[KT_R][64] __attribute__((aligned(64)));
    const int32_t *rp = kt->o_rptr + (size_t)rt * KT_R;
    const int32_t nv = (n + 15) / 16;
    for (int i = 0; i < KT_R; i++) {
        __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int32_t o = rp[i]; o < rp[i + 1]; o++) {
            const __m512 d = _mm512_set1_ps(kt->o_corr[o]);
            const float *xr = in->xqt + (size_t)kt->o_col[o] * n;
            for (int32_t v = 0; v < nv; v++) {
                const int32_t left = n - 16 * v;
                const __mmask16 mk = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1u);
                a[v] = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(mk, xr + 16 * v), a[v]);
            }
        }
        for (int32_t v = 0; v < nv; v++) _mm512_store_ps(corr[i] + 16 * v, a[v]);
    }
    const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32(64));
    for (int32_t j = 0; j < n; j++)
        ya[j] = _mm512_add_ps(ya[j], _mm512_i32gather_ps(_mm512_add_epi32(rows, _mm512_set1_epi32(j)), &corr[0][0], 4));
}

/* Closes group g of a batch: y_j += s * (dot_j - z * sum(x_jg)). */
T512 INLINE void batch_group(const spqr_ktensor *kt, const kt_input *in, const rt_ctx *rc, int32_t g, const __m512 *ga,
                             __m512 *ya) {
    __m512 s, z;
    stats512(kt, rc, g, &s, &z);
    for (int32_t j = 0; j < in->n; j++)
        ya[j] = _mm512_fmadd_ps(s, _mm512_fnmadd_ps(z, _mm512_set1_ps(in->xsg[(size_t)g * in->n + j]), ga[j]), ya[j]);
}

/* Adds the row tile's outliers and writes its rows of the n outputs. */
T512 INLINE void batch_store(const spqr_ktensor *kt, const kt_input *in, int32_t rt, __m512 *ya, float *Y) {
    if (kt->o_ptr[rt + 1] > kt->o_ptr[rt]) outliers_batch(kt, in, rt, ya);
    for (int32_t j = 0; j < in->n; j++) store_rows(kt, rt, Y + (size_t)j * kt->rows, ya[j]);
}

/* The batch worker of a path: per row tile, per group, TILE(kt, in, rt, t,
 * ga, first, B) adds column tile t's products to the n inputs' group sums
 * ga (first: to zero instead, the same bits without zeroing ga first,
 * which compiled to a memset per group);
 * then the group is closed (batch_group) and the tile's rows stored with
 * their outliers (batch_store). A group of one tile goes to GROUP1(kt, in,
 * &rc, g, ga, ya, B) instead, which may close it without ga. A macro
 * because the exact and the int8 path are compiled for different targets
 * (T512, T512V) and their tile functions must inline into a worker of
 * their own target. */
#define KT_BATCH_WORKER(NAME, ATTR, TILE, GROUP1)                                                          \
    ATTR INLINE void NAME(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y, \
                          const int B) {                                                                  \
        const int32_t ctpg = kt->ct_per_group, n = in->n;                                                 \
        __m512 ya[64], ga[64];                                                                            \
        for (int32_t rt = rt0; rt < rt1; rt++) {                                                          \
            for (int32_t j = 0; j < n; j++) ya[j] = _mm512_setzero_ps();                                  \
            const rt_ctx rc = rt_begin(kt, rt);                                                           \
            for (int32_t g = 0; g < kt->n_groups; g++) {                                                  \
                if (ctpg == 1) {                                                                          \
                    GROUP1(kt, in, &rc, g, ga, ya, B);                                                    \
                    continue;                                                                             \
                }                                                                                         \
                TILE(kt, in, rt, g * ctpg, ga, 1, B);                                                     \
                for (int32_t k = 1; k < ctpg; k++) TILE(kt, in, rt, g * ctpg + k, ga, 0, B);              \
                batch_group(kt, in, &rc, g, ga, ya);                                                      \
            }                                                                                             \
            batch_store(kt, in, rt, ya, Y);                                                               \
        }                                                                                                 \
    }

/* Exact batch tile: the 16x16 code tile is widened once to 16 fp32 column
 * vectors and applied to all n (<= 64) inputs. */
T512 INLINE void batch_tile_f32(const spqr_ktensor *kt, const kt_input *in, int32_t rt, int32_t t, __m512 *ga,
                                const int first, const int B) {
    __m512 qf[KT_C];
    if (t & 1) widen16(kt_block(kt, rt, t), B, 1, qf);
    else widen16(kt_block(kt, rt, t), B, 0, qf);
    const size_t col0 = (size_t)t * KT_C;
    for (int32_t j = 0; j < in->n; j++) {
        const float *x = in->xp + (size_t)j * kt->padcols + col0;
        __m512 a = first ? _mm512_setzero_ps() : ga[j], b = _mm512_setzero_ps();
        for (int c = 0; c < KT_C; c += 2) {
            a = _mm512_fmadd_ps(qf[c], _mm512_set1_ps(x[c]), a);
            b = _mm512_fmadd_ps(qf[c + 1], _mm512_set1_ps(x[c + 1]), b);
        }
        ga[j] = _mm512_add_ps(a, b);
    }
}

/* A one-tile group on the exact path: the general tile and close. */
T512 INLINE void batch_group1_f32(const spqr_ktensor *kt, const kt_input *in, const rt_ctx *rc, int32_t g, __m512 *ga,
                                  __m512 *ya, const int B) {
    batch_tile_f32(kt, in, rc->rt, g, ga, 1, B);
    batch_group(kt, in, rc, g, ga, ya);
}

KT_BATCH_WORKER(matmul_b, T512, batch_tile_f32, batch_group1_f32)

T512 void spqri_kt_matmul_avx512(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    KT_WBITS_DISPATCH(kt->wbits, matmul_b, kt, in, rt0, rt1, Y);
}
#define T512V \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi,avx512vbmi2,fma,f16c")))

/* int8 activations: sum_j q_ij xi_j of one 16x16 tile (half h of a block)
 * in exact int32, as four vpdpbusd (u8 code x s8 activation; dword lane i =
 * row i, its 4 bytes = columns 4k..4k+3). Op k needs bits [p, p + 4B) of
 * each row's 32B-bit block string, p = 16Bh + 4Bk: a 32-bit window holding
 * them is one of the row's dwords as stored, or a funnel shift (vpshrdd) of
 * two (no field straddles a window: the old per-field straddle ops cost 4
 * instructions each); one vpmultishiftqb then moves the op's 4 fields into
 * bytes (a qword holds rows 2i, 2i+1: its low / high dword). Consecutive
 * ops share a window where it holds both (w3: 3 windows, 1 shift per 16
 * columns). Everything but the loads is folded at compile time from B. */
T512V INLINE void tile_fields(const uint32_t *blk, const int h, const int B, __m512i f[4]) {
    const __m512i bm = _mm512_set1_epi8((char)((1 << B) - 1));
    __m512i win = _mm512_setzero_si512();
    int wp = -64; /* string bit where win's dwords start */
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        const int p = 16 * B * h + 4 * B * k, e = p + 4 * B, d = p >> 5;
        if (p < wp || e > wp + 32) {
            if ((e - 1) >> 5 == d) {
                win = _mm512_load_si512(blk + d * KT_R);
                wp = 32 * d;
            } else {
#ifdef __OPTIMIZE__
                win = _mm512_shrdi_epi32(_mm512_load_si512(blk + d * KT_R), _mm512_load_si512(blk + (d + 1) * KT_R), p & 31);
#else /* p & 31 is an immediate only once folded: unoptimized builds take the variable-count twin */
                win = _mm512_shrdv_epi32(_mm512_load_si512(blk + d * KT_R), _mm512_load_si512(blk + (d + 1) * KT_R),
                                         _mm512_set1_epi32(p & 31));
#endif
                wp = p;
            }
        }
        uint64_t ctrl = 0;
        for (int c = 0; c < 4; c++)
            ctrl |= (uint64_t)(p - wp + c * B) << (8 * c) | (uint64_t)(32 + p - wp + c * B) << (8 * (c + 4));
        /* wbits 8: the window's bytes are the fields already */
        f[k] = B == 8 ? win : _mm512_and_si512(_mm512_multishift_epi64_epi8(_mm512_set1_epi64((long long)ctrl), win), bm);
    }
}

/* The tile's int32 dots with one input's 16 int8 activations. */
T512V INLINE __m512i tile_dot(const __m512i f[4], const int32_t *xa) {
    __m512i a0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), f[0], _mm512_set1_epi32(xa[0]));
    __m512i a1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), f[1], _mm512_set1_epi32(xa[1]));
    a0 = _mm512_dpbusd_epi32(a0, f[2], _mm512_set1_epi32(xa[2]));
    a1 = _mm512_dpbusd_epi32(a1, f[3], _mm512_set1_epi32(xa[3]));
    return _mm512_add_epi32(a0, a1);
}

T512V INLINE __m512i tile_i8(const uint32_t *blk, const int32_t *xa, const int h, const int B) {
    __m512i f[4];
    tile_fields(blk, h, B, f);
    return tile_dot(f, xa);
}

/* Statistics for qq bits <= 4 with one second-level pair per row tile (the
 * common bilevel case). The 16 rows' codes fit one qword; one
 * vpmultishiftqb puts row i's code in the low bits of dword lane i (qword
 * k: rows 2k and 2k+1 at bit offsets bits * 2k and bits * (2k + 1)). A
 * qq-bit code takes at most 16 values, so a function of it is a table
 * lookup: vpermps of a 16-lane table by the code (it reads the index's low
 * 4 bits only: no mask, no int->fp32; lane k holds the value for code
 * k mod 2^bits). The second-level factors of 16 groups are converted and
 * folded at once (ms_fold), so a group needs one table built (see
 * finish_ms). Unlike the exact paths this does not reproduce the
 * reference's fp32 statistics bit for bit (the int8 path is checked
 * against W x^ within 1e-5 of sum |w x^|). */
T512V INLINE __m512i ms_ctrl(int bits) {
    uint64_t c[8];
    for (int k = 0; k < 8; k++) c[k] = (uint64_t)(bits * 2 * k) | (uint64_t)(bits * (2 * k + 1)) << 32;
    return _mm512_loadu_si512(c);
}

T512V INLINE __m512 ms_iota(int bits) {
    float v[16];
    for (int k = 0; k < 16; k++) v[k] = (float)(k & ((1 << bits) - 1));
    return _mm512_loadu_ps(v);
}

/* 2 * n <= 32 fp16 values to fp32 (masked: never reads past the array). */
T512V INLINE void pairs_f32(const uint16_t *p, int32_t n, float *out) {
    const __mmask32 m = n >= 16 ? 0xffffffffu : (__mmask32)((1ull << (2 * n)) - 1u);
    const __m512i h = _mm512_maskz_loadu_epi16(m, p);
    _mm512_store_ps(out, _mm512_cvtph_ps(_mm512_castsi512_si256(h)));
    _mm512_store_ps(out + 16, _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)));
}

typedef struct {
    __m512i cs, cz;                             /* multishift controls: scale, zero */
    __m512 is, iz;                              /* code values per table lane: scale, zero */
    /* per group of the current 16 (s2, zs2: the scale's second-level pair;
     * z2, zz2: the zero's; a: the tile's activation scale; X: sum(x^_g)) */
    float zs[16] __attribute__((aligned(64)));  /* zs2 */
    float sa[16] __attribute__((aligned(64)));  /* s2 * a */
    float zq[16] __attribute__((aligned(64)));  /* z2 * X * s2 */
    float zc[16] __attribute__((aligned(64)));  /* z2 * X * s2 * zz2 */
} ms_stats;

/* The folded second-level factors of the n <= 16 groups from g on, for
 * all of them at once. */
T512V INLINE void ms_fold(const uint16_t *sp, const uint16_t *zp, const float *xs, const float *at, int32_t n,
                          ms_stats *m) {
    float sv[32] __attribute__((aligned(64))), zv[32] __attribute__((aligned(64)));
    pairs_f32(sp, n, sv);
    pairs_f32(zp, n, zv);
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    const __mmask16 mk = (__mmask16)((1u << n) - 1u);
    const __m512 s2 = _mm512_permutex2var_ps(_mm512_load_ps(sv), ev, _mm512_load_ps(sv + 16));
    const __m512 zs2 = _mm512_permutex2var_ps(_mm512_load_ps(sv), od, _mm512_load_ps(sv + 16));
    const __m512 z2 = _mm512_permutex2var_ps(_mm512_load_ps(zv), ev, _mm512_load_ps(zv + 16));
    const __m512 zz2 = _mm512_permutex2var_ps(_mm512_load_ps(zv), od, _mm512_load_ps(zv + 16));
    const __m512 zq = _mm512_mul_ps(_mm512_mul_ps(z2, _mm512_maskz_loadu_ps(mk, xs)), s2);
    _mm512_store_ps(m->zs, zs2);
    _mm512_store_ps(m->sa, _mm512_mul_ps(s2, _mm512_maskz_loadu_ps(mk, at)));
    _mm512_store_ps(m->zq, zq);
    _mm512_store_ps(m->zc, _mm512_mul_ps(zq, zz2));
}

T512V INLINE __m512i ms_code(const uint8_t *p, __m512i ctrl) {
    uint64_t q;
    memcpy(&q, p, 8); /* the stats array has 16 bytes of slack at its end */
    return _mm512_multishift_epi64_epi8(ctrl, _mm512_set1_epi64((long long)q));
}

/* Closes group g: y += s * (a * dot - z * X). With s = s2 * (cs - zs2) and
 * z = z2 * (cz - zz2), s2 is folded into the group's other factors:
 * y += (cs - zs2) * ((s2 a) * dot - ((z2 X s2) * cz - z2 X s2 zz2)), so a
 * group takes one table (cs - zs2, a subtraction) where it took two
 * (a subtraction and a multiply each): the zero's code value comes from
 * the constant table. */
T512V INLINE void finish_ms(const spqr_ktensor *kt, const rt_ctx *rc, const ms_stats *m, int32_t g,
                            const __m512i dot, __m512 *yacc) {
    const uint8_t *blk = rc->st + (size_t)g * kt->stat_bytes;
    const int j = g & 15;
    const __m512 sc = _mm512_permutexvar_ps(ms_code(blk, m->cs), _mm512_sub_ps(m->is, _mm512_set1_ps(m->zs[j])));
    const __m512 cz = _mm512_permutexvar_ps(ms_code(blk + kt->sb_bytes, m->cz), m->iz);
    const __m512 zp = _mm512_fmsub_ps(_mm512_set1_ps(m->zq[j]), cz, _mm512_set1_ps(m->zc[j]));
    *yacc = _mm512_fmadd_ps(sc, _mm512_fmsub_ps(_mm512_cvtepi32_ps(dot), _mm512_set1_ps(m->sa[j]), zp), *yacc);
}

T512V INLINE void matvec_i8_b(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *y,
                             ms_stats *ms, const int B) {
    const int32_t ctpg = kt->ct_per_group, bu = kt->blk_u32;
    for (int32_t rt = rt0; rt < rt1; rt++) {
        const uint32_t *cb = kt->codes + (size_t)rt * kt->n_cblocks * bu;
        int32_t t = 0;
        __m512 yacc = _mm512_setzero_ps();
        const rt_ctx rc = rt_begin(kt, rt);
        kt_opf opf = kt_opf_begin(kt, rt);
        int32_t g = 0;
        if (ctpg == 1 && ms) { /* groups of <= 16 columns: a block is two groups, two accumulators */
            __m512 yacc1 = _mm512_setzero_ps();
            for (; g + 1 < kt->n_groups; g += 2, t += 2) {
                if ((g & 15) == 0) {
                    const int32_t n = kt->n_groups - g < 16 ? kt->n_groups - g : 16;
                    ms_fold(rc.pp[0] + (size_t)g * 2, rc.pp[1] + (size_t)g * 2, in->xs + g, in->at + g, n, ms);
                }
                const uint32_t *blk = cb + (size_t)(t >> 1) * bu;
                const int32_t *xa = in->xa + (size_t)t * KT_XOPS;
                kt_prefetch_tile(blk, 0, B);
                kt_prefetch_tile(blk, 1, B);
                kt_opf_step(&opf);
                const __m512i i0 = tile_i8(blk, xa, 0, B), i1 = tile_i8(blk, xa + KT_XOPS, 1, B);
                finish_ms(kt, &rc, ms, g, i0, &yacc);
                finish_ms(kt, &rc, ms, g + 1, i1, &yacc1);
            }
            yacc = _mm512_add_ps(yacc, yacc1);
        } else if (ctpg == 1) {
            __m512 yacc1 = _mm512_setzero_ps();
            for (; g + 1 < kt->n_groups; g += 2, t += 2) {
                const uint32_t *blk = cb + (size_t)(t >> 1) * bu;
                const int32_t *xa = in->xa + (size_t)t * KT_XOPS;
                kt_prefetch_tile(blk, 0, B);
                kt_prefetch_tile(blk, 1, B);
                kt_opf_step(&opf);
                const __m512i i0 = tile_i8(blk, xa, 0, B), i1 = tile_i8(blk, xa + KT_XOPS, 1, B);
                finish_dot(kt, in, &rc, g, _mm512_mul_ps(_mm512_cvtepi32_ps(i0), _mm512_set1_ps(in->at[t])), &yacc);
                finish_dot(kt, in, &rc, g + 1, _mm512_mul_ps(_mm512_cvtepi32_ps(i1), _mm512_set1_ps(in->at[t + 1])), &yacc1);
            }
            yacc = _mm512_add_ps(yacc, yacc1);
        }
        for (; g < kt->n_groups; g++) {
            __m512 dot = _mm512_setzero_ps();
            for (int32_t k = 0; k < ctpg; k++, t++) {
                const uint32_t *blk = cb + (size_t)(t >> 1) * bu;
                const int32_t *xa = in->xa + (size_t)t * KT_XOPS;
                kt_prefetch_tile(blk, t, B);
                if (t & 1) kt_opf_step(&opf);
                const __m512i id = (t & 1) ? tile_i8(blk, xa, 1, B) : tile_i8(blk, xa, 0, B);
                dot = _mm512_fmadd_ps(_mm512_cvtepi32_ps(id), _mm512_set1_ps(in->at[t]), dot);
            }
            finish_dot(kt, in, &rc, g, dot, &yacc);
        }
        store_rows(kt, rt, y, yacc);
    }
    kt_outliers_add(kt, in->xq, rt0, rt1, y);
}

/* int8 batch tile (n <= 64 inputs): the 16x16 code tile's fields are taken
 * out once (tile_fields) and dotted with every input's activations, four
 * vpdpbusd per input (64 MACs each) where the exact path spends 16 FMAs;
 * the worker takes statistics once per (row tile, group) for all inputs,
 * as the exact path computes them. y_j += s * (sum_t a_jt dot_jt - z * sum(x^_jg)). */
T512V INLINE void batch_tile_i8(const spqr_ktensor *kt, const kt_input *in, int32_t rt, int32_t t, __m512 *ga,
                                const int first, const int B) {
    __m512i f[4];
    if (t & 1) tile_fields(kt_block(kt, rt, t), 1, B, f);
    else tile_fields(kt_block(kt, rt, t), 0, B, f);
    /* the n inputs' activations of tile t lie together (xa [tile][input][4]) */
    const int32_t *xa = in->xa + (size_t)t * in->n * KT_XOPS;
    const float *at = in->at + (size_t)t * in->n;
    for (int32_t j = 0; j < in->n; j++)
        ga[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(tile_dot(f, xa + (size_t)j * KT_XOPS)), _mm512_set1_ps(at[j]),
                                first ? _mm512_setzero_ps() : ga[j]);
}

/* A group that is one tile (groupsize 16), closed at once for every input:
 * y_j += s * (a_j * dot_j - z * sum(x^_jg)), batch_tile_i8 + batch_group's
 * operations without their pass over ga. */
T512V INLINE void batch_group_i8(const spqr_ktensor *kt, const kt_input *in, const rt_ctx *rc, int32_t g, __m512 *ga,
                                 __m512 *ya, const int B) {
    (void)ga; /* closed without it */
    __m512i f[4];
    if (g & 1) tile_fields(kt_block(kt, rc->rt, g), 1, B, f);
    else tile_fields(kt_block(kt, rc->rt, g), 0, B, f);
    __m512 s, z;
    stats512(kt, rc, g, &s, &z);
    const int32_t *xa = in->xa + (size_t)g * in->n * KT_XOPS;
    const float *at = in->at + (size_t)g * in->n, *xs = in->xsg + (size_t)g * in->n;
    for (int32_t j = 0; j < in->n; j++) {
        const __m512 d = _mm512_mul_ps(_mm512_cvtepi32_ps(tile_dot(f, xa + (size_t)j * KT_XOPS)), _mm512_set1_ps(at[j]));
        ya[j] = _mm512_fmadd_ps(s, _mm512_fnmadd_ps(z, _mm512_set1_ps(xs[j]), d), ya[j]);
    }
}

KT_BATCH_WORKER(matmul_i8_b, T512V, batch_tile_i8, batch_group_i8)

T512V void spqri_kt_matmul_avx512_vnni(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    KT_WBITS_DISPATCH(kt->wbits, matmul_i8_b, kt, in, rt0, rt1, Y);
}

/* The avx512vnni matvec's inputs straight from x (the rule of prepare_i8
 * in spqr_kernel.c, the same fp32 operations per value, so the same int8
 * codes and scales): xq = x permuted, then per column tile a = max|x| / 127,
 * int8 = clamp(rint(x * (127 / max|x|)), +-127), x^ = a * int8 written back
 * to xq, group sums of x^ in xs (a tree sum per tile rather than the
 * scalar's running sum: fp32 rounding only). One zmm per tile: the scalar
 * version (libm rintf per value) took 24 us for 4096 inputs, serial work in
 * every decode matvec. */
T512V void spqri_kt_prepare_i8_avx512(const spqr_ktensor *kt, const float *x, float *xs, float *xq, int32_t *xa, float *at,
                                int32_t n) {
    const int32_t cols = kt->cols, gs = kt->groupsize, ctpg = kt->ct_per_group;
    int32_t c = 0;
    if (kt->perm)
        for (; c + 16 <= cols; c += 16)
            _mm512_storeu_ps(xq + c, _mm512_i32gather_ps(_mm512_loadu_si512(kt->perm + c), x, 4));
    for (; c < cols; c++) xq[c] = x[kt->perm ? kt->perm[c] : c];
    const __m512 lim = _mm512_set1_ps(127.0f), nlim = _mm512_set1_ps(-127.0f);
    const __m512 absm = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (int32_t g = 0; g < kt->n_groups; g++) {
        float sum = 0.0f;
        for (int32_t k = 0; k < ctpg; k++) {
            const int32_t t = g * ctpg + k, c0 = g * gs + k * KT_C;
            int32_t nv = cols - c0 < gs - k * KT_C ? cols - c0 : gs - k * KT_C;
            if (nv > KT_C) nv = KT_C;
            const __mmask16 mk = nv <= 0 ? 0 : (__mmask16)((1u << nv) - 1u);
            const __m512 v = _mm512_maskz_loadu_ps(mk, xq + (nv > 0 ? c0 : 0));
            const int finite = _mm512_fpclass_ps_mask(v, 0x99) == 0; /* no NaN, no inf */
            const float m = finite ? _mm512_reduce_max_ps(_mm512_and_ps(v, absm)) : NAN;
            const float a = m / 127.0f, inv = m > 0.0f ? 127.0f / m : 0.0f;
            __m512 q = _mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(inv)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            q = _mm512_add_ps(_mm512_max_ps(_mm512_min_ps(q, lim), nlim), _mm512_setzero_ps()); /* -0 -> +0, as (float)int8 */
            if (!finite) q = _mm512_setzero_ps();
            _mm_storeu_si128((__m128i *)(xa + (size_t)t * n * KT_XOPS), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(q)));
            at[(size_t)t * n] = a;
            const __m512 xh = _mm512_mul_ps(_mm512_set1_ps(a), q);
            if (nv > 0) {
                _mm512_mask_storeu_ps(xq + c0, mk, xh);
                sum += _mm512_reduce_add_ps(_mm512_maskz_mov_ps(mk, xh));
            }
        }
        xs[g] = sum;
    }
}

T512V void spqri_kt_matvec_avx512_vnni(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    ms_stats m, *ms = NULL;
    if (kt->q2_aligned && kt->qs_bits >= 1 && kt->qs_bits <= 4 && kt->qz_bits >= 1 && kt->qz_bits <= 4) {
        m.cs = ms_ctrl(kt->qs_bits);
        m.cz = ms_ctrl(kt->qz_bits);
        m.is = ms_iota(kt->qs_bits);
        m.iz = ms_iota(kt->qz_bits);
        ms = &m;
    }
    KT_WBITS_DISPATCH(kt->wbits, matvec_i8_b, kt, in, rt0, rt1, Y, ms);
}
#else
#include "kernels/kernels.h"
void spqri_kt_matmul_avx512_vnni(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    spqri_kt_matmul_scalar(kt, in, rt0, rt1, Y);
}
void spqri_kt_prepare_i8_avx512(const spqr_ktensor *kt, const float *x, float *xs, float *xq, int32_t *xa, float *at,
                          int32_t n) {
    (void)kt, (void)x, (void)xs, (void)xq, (void)xa, (void)at, (void)n; /* never called: the path is unsupported here */
}
void spqri_kt_matvec_avx512_vnni(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    spqri_kt_matmul_scalar(kt, in, rt0, rt1, Y);
}
void spqri_kt_matvec_avx512(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    spqri_kt_matmul_scalar(kt, in, rt0, rt1, Y);
}
void spqri_kt_matmul_avx512(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    spqri_kt_matmul_scalar(kt, in, rt0, rt1, Y);
}
#endif

const spqr_kernel_ops spqri_kt_ops_avx512 = {"avx512", SPQR_KERNEL_AVX512, 1, spqr_cpu_has_avx512, spqri_kt_scratch_exact,
                                       spqri_kt_prepare_exact, spqri_kt_matvec_avx512, spqri_kt_matmul_avx512, NULL, 0};
const spqr_kernel_ops spqri_kt_ops_avx512vnni = {"avx512vnni", SPQR_KERNEL_AVX512_VNNI, 0, spqr_cpu_has_avx512_vnni,
                                           spqri_kt_scratch_i8, spqri_kt_prepare_i8, spqri_kt_matvec_avx512_vnni, spqri_kt_matmul_avx512_vnni,
                                           spqri_kt_prepare_i8_avx512, 0};
