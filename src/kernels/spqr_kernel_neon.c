/* aarch64 Advanced SIMD paths over the runtime layout (docs/kernels.md, NEON).
 *
 * neon (exact fp32 activations): the AVX2 scheme on four float32x4 quarters
 * (rows 0-3, 4-7, 8-11, 12-15) of each code-block dword vector: per column,
 * AND the field out of the dword lanes in place (x pre-scaled by 2^-shift,
 * kt_xscale), shift a field at the top of a dword, or shift and OR a field
 * straddling two; convert (UCVTF) and FMA with x_j. Two accumulators per
 * quarter, eight in all, so the FMA latency is covered. Statistics are
 * decoded in registers, 16 groups at a time before their codes, exactly as
 * the reference: TBL moves each row's qq-bit code into its dword lane (the
 * layout's st_idx bytes; an index >= 16 reads 0 as pshufb's 0x80 does), a
 * USHL by a negative count shifts it down, s2 * (code - z2) without FMA.
 *
 * neondot (dotprod, int8 activations): the avx512vnni design: x rounded to
 * int8 per 16-column tile (spqri_kt_prepare_i8_neon, bit-identical to
 * spqri_kt_prepare_i8_ref), exact int32 tile dots, four SDOT per 4 rows x 16
 * columns (lane i = row i, its 4 bytes = columns 4k..4k+3 of op k). Op k of
 * half h needs bits [p, p + 4B) of each row's block string (p = 16Bh + 4Bk),
 * which lie in at most two of the row's dwords: one TBL (two registers of
 * table) puts each field's two bytes into a 16-bit slot, a per-slot USHL
 * aligns it, UZP1 keeps the low bytes and an AND masks them. 8-bit codes
 * are the dword itself; they do not fit SDOT's signed bytes, so they go in
 * as code ^ 0x80 = code - 128 and each tile dot gets 128 * sum(x_tile) back.
 *
 * Speed on real ARM hardware has not been measured: this was developed and
 * tested under qemu-aarch64 (scripts/cross_test_aarch64.sh). */
#include "kernels/kernels.h"

#if defined(__aarch64__) && defined(__GNUC__)
#include <arm_neon.h>
#include <string.h>

#include "format/tensor.h"

#define INLINE static inline __attribute__((always_inline))
/* SDOT is an ARMv8.2 extension: only the int8 path's functions are built for it */
#define TDOT __attribute__((target("arch=armv8.2-a+dotprod")))

/* Statistic decoding state of one call: per part (0 scale, 1 zero) the
 * byte-shuffle and shift tables of the four quarters, the in-place field
 * masks, and the decoded statistics of the current 16 groups. */
typedef struct {
    uint8x16_t idx[2][4]; /* [part][quarter] */
    int32x4_t nsh[2][4];  /* [part][quarter] minus the bit shift: USHL by a negative count shifts right */
    uint32x4_t mask[2];   /* [part] */
    int bits[2];
    uint32_t fm[KT_BC];   /* AND mask of block column j's field in place (x pre-scaled) */
    float pf[2][32];      /* [part][group % 16][s2, z2] */
    float32x4_t sz[16][2][4]; /* decoded s, z of 16 groups: [group % 16][part][quarter] */
} st_ctx;

typedef kt_rtile rt_ctx;

static void st_init(const spqr_ktensor *kt, st_ctx *sc) {
    sc->bits[0] = kt->qs_bits;
    sc->bits[1] = kt->qz_bits;
    for (int p = 0; p < 2; p++) {
        for (int q = 0; q < 4; q++) {
            int32_t sh[4];
            for (int i = 0; i < 4; i++) sh[i] = -(int32_t)kt->st_sh[p][4 * q + i];
            sc->idx[p][q] = vld1q_u8(kt->st_idx[p] + 16 * q);
            sc->nsh[p][q] = vld1q_s32(sh);
        }
        sc->mask[p] = vdupq_n_u32((1u << sc->bits[p]) - 1u);
    }
    for (int j = 0; j < KT_BC; j++) sc->fm[j] = ((1u << kt->wbits) - 1u) << kt_field_shift(kt->wbits, j);
}

#define rt_begin kt_rtile_begin

/* 4 fp16 -> 4 fp32 (FCVTL, exact). */
INLINE float32x4_t h4(const void *p) { return vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8((const uint8_t *)p))); }

/* The second-level pairs of groups g..g+15 (g % 16 == 0) of the row tile
 * as fp32, never reading past the pair array. */
INLINE void st_pairs(const spqr_ktensor *kt, st_ctx *sc, const rt_ctx *rc, int32_t g) {
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
        for (int k = 0; k < 8; k++) vst1q_f32(sc->pf[p] + 4 * k, h4(src + 4 * k));
    }
}

/* One first-level statistic (part p) of the 16 rows of group g as four
 * quarters, bit-exact with spqr_stat_dq / spqr_fp16_to_fp32. */
INLINE void stat16(const spqr_ktensor *kt, const st_ctx *sc, const rt_ctx *rc, const uint8_t *blk, int32_t g, int p,
                   float32x4_t out[4]) {
    if (!sc->bits[p]) {
        for (int q = 0; q < 4; q++) out[q] = h4(blk + 8 * q);
        return;
    }
    /* <= 16 code bytes; the stats array has 16 bytes of slack at its end */
    const uint8x16_t b = vld1q_u8(blk);
    float32x4_t s2[4], z2[4];
    if (rc->pp[p]) {
        s2[0] = s2[1] = s2[2] = s2[3] = vdupq_n_f32(sc->pf[p][2 * (g & 15)]);
        z2[0] = z2[1] = z2[2] = z2[3] = vdupq_n_f32(sc->pf[p][2 * (g & 15) + 1]);
    } else { /* qq_groupsize not a multiple of 16: a pair per row */
        float sa[KT_R], za[KT_R];
        kt_row_pairs(kt, rc->rt, g, p, sa, za);
        for (int q = 0; q < 4; q++) {
            s2[q] = vld1q_f32(sa + 4 * q);
            z2[q] = vld1q_f32(za + 4 * q);
        }
    }
    for (int q = 0; q < 4; q++) {
        const uint32x4_t lanes = vreinterpretq_u32_u8(vqtbl1q_u8(b, sc->idx[p][q]));
        const uint32x4_t code = vandq_u32(vshlq_u32(lanes, sc->nsh[p][q]), sc->mask[p]);
        out[q] = vmulq_f32(s2[q], vsubq_f32(vcvtq_f32_u32(code), z2[q])); /* no FMA, as the reference */
    }
}

/* Decodes the statistics of groups g..g+15 (g % 16 == 0) of the row tile
 * into sc->sz in one loop before their codes, as the AVX2 path does (there
 * the decode spilled when interleaved with the code loop). */
INLINE void st_batch(const spqr_ktensor *kt, st_ctx *sc, const rt_ctx *rc, int32_t g) {
    const int32_t n = kt->n_groups - g < 16 ? kt->n_groups - g : 16;
    st_pairs(kt, sc, rc, g);
    for (int32_t k = 0; k < n; k++) {
        const uint8_t *blk = rc->st + (size_t)(g + k) * kt->stat_bytes;
        stat16(kt, sc, rc, blk, g + k, 0, sc->sz[k][0]);
        stat16(kt, sc, rc, blk + kt->sb_bytes, g + k, 1, sc->sz[k][1]);
    }
}

/* Closes group g: y += s * (dot - z * sum(x_g)) per quarter. */
INLINE void finish_group(float xs, const st_ctx *sc, int32_t g, const float32x4_t dot[4], float32x4_t y[4]) {
    const float32x4_t(*sz)[4] = sc->sz[g & 15];
    const float32x4_t xv = vdupq_n_f32(xs);
    for (int q = 0; q < 4; q++) y[q] = vfmaq_f32(y[q], sz[0][q], vfmsq_f32(dot[q], sz[1][q], xv));
}

/* Stores a row tile's 16 outputs (fewer in the last tile). */
INLINE void store_tile(const spqr_ktensor *kt, int32_t rt, const float32x4_t y[4], float *out) {
    if (kt->rows - rt * KT_R >= KT_R) {
        for (int q = 0; q < 4; q++) vst1q_f32(out + rt * KT_R + 4 * q, y[q]);
        return;
    }
    float t[KT_R];
    for (int q = 0; q < 4; q++) vst1q_f32(t + 4 * q, y[q]);
    for (int i = 0; rt * KT_R + i < kt->rows; i++) out[rt * KT_R + i] = t[i];
}

/* ---- neon: exact fp32 activations ---- */

/* Block column j's codes of rows 4q..4q+3 as fp32 (times 2^shift with the
 * in-place masks fm where kt_xscale says so; exact codes without). Shift
 * counts go through USHL registers so any optimisation level compiles. */
INLINE float32x4_t field4(const uint32_t *blk, const int B, const int j, const int q, const uint32_t *fm) {
    const int d = kt_field_dword(B, j), s = kt_field_shift(B, j);
    const uint32x4_t v = vld1q_u32(blk + d * KT_R + 4 * q);
    const uint32x4_t m = vdupq_n_u32((1u << B) - 1u);
    uint32x4_t f;
    if (s + B < 32) f = fm ? vandq_u32(v, vld1q_dup_u32(fm + j)) : vandq_u32(vshlq_u32(v, vdupq_n_s32(-s)), m);
    else if (s + B == 32) f = vshlq_u32(v, vdupq_n_s32(-s));
    else {
        const uint32x4_t w = vld1q_u32(blk + (d + 1) * KT_R + 4 * q);
        f = vandq_u32(vorrq_u32(vshlq_u32(v, vdupq_n_s32(-s)), vshlq_u32(w, vdupq_n_s32(32 - s))), m);
    }
    return vcvtq_f32_u32(f);
}

/* 16 columns (half h of a block) into two accumulators per quarter. */
INLINE void half16(const uint32_t *blk, const float *x, const uint32_t *fm, const int B, const int h,
                   float32x4_t acc[4][2]) {
#pragma GCC unroll 16
    for (int c = 0; c < KT_C; c++) {
        const float xc = x[c];
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) acc[q][c & 1] = vfmaq_n_f32(acc[q][c & 1], field4(blk, B, h * KT_C + c, q, fm), xc);
    }
}

INLINE void matvec_b(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *y, st_ctx *sc,
                     const int B) {
    const int32_t ctpg = kt->ct_per_group, bu = kt->blk_u32;
    for (int32_t rt = rt0; rt < rt1; rt++) {
        const uint32_t *cb = kt->codes + (size_t)rt * kt->n_cblocks * bu;
        const float *x = in->x2;
        const rt_ctx rc = rt_begin(kt, rt);
        kt_opf opf = kt_opf_begin(kt, rt);
        float32x4_t yq[4], dot[4], acc[4][2];
        for (int q = 0; q < 4; q++) yq[q] = vdupq_n_f32(0.0f);
        int32_t t = 0;
        for (int32_t g = 0; g < kt->n_groups; g++) {
            if ((g & 15) == 0) st_batch(kt, sc, &rc, g);
            for (int q = 0; q < 4; q++) acc[q][0] = acc[q][1] = vdupq_n_f32(0.0f);
            for (int32_t k = 0; k < ctpg; k++, t++, x += KT_C) {
                const uint32_t *blk = cb + (size_t)(t >> 1) * bu;
                kt_prefetch_tile(blk, t, B);
                if (t & 1) {
                    kt_opf_step(&opf);
                    half16(blk, x, sc->fm, B, 1, acc);
                } else {
                    half16(blk, x, sc->fm, B, 0, acc);
                }
            }
            for (int q = 0; q < 4; q++) dot[q] = vaddq_f32(acc[q][0], acc[q][1]);
            finish_group(in->xs[g], sc, g, dot, yq);
        }
        store_tile(kt, rt, yq, y);
    }
    kt_outliers_add(kt, in->xq, rt0, rt1, y);
}

void spqri_kt_matvec_neon(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    st_ctx sc;
    st_init(kt, &sc);
    KT_WBITS_DISPATCH(kt->wbits, matvec_b, kt, in, rt0, rt1, Y, &sc);
}

/* Batch outliers of row tile rt, row by row, four inputs at a time from the
 * transposed inputs xqt (as the AVX2 batch path). */
static void outliers_batch(const spqr_ktensor *kt, const kt_input *in, int32_t rt, float ya[][KT_R]) {
    const int32_t *rp = kt->o_rptr + (size_t)rt * KT_R, n = in->n;
    for (int i = 0; i < KT_R; i++) {
        if (rp[i + 1] == rp[i]) continue;
        int32_t j0 = 0;
        for (; j0 + 4 <= n; j0 += 4) {
            float32x4_t a = vdupq_n_f32(0.0f);
            for (int32_t o = rp[i]; o < rp[i + 1]; o++)
                a = vfmaq_n_f32(a, vld1q_f32(in->xqt + (size_t)kt->o_col[o] * n + j0), kt->o_corr[o]);
            float t[4];
            vst1q_f32(t, a);
            for (int k = 0; k < 4; k++) ya[j0 + k][i] += t[k];
        }
        for (int32_t o = rp[i]; o < rp[i + 1] && j0 < n; o++) {
            const float d = kt->o_corr[o], *xr = in->xqt + (size_t)kt->o_col[o] * n;
            for (int32_t j = j0; j < n; j++) ya[j][i] += d * xr[j];
        }
    }
}

/* Closes group g of a batch: ya[j] += s * (ga[j] - z * sum(x_j,g)), s and z
 * from spqri_kt_stats_scalar (once per row tile and group for all inputs). */
static void finish_batch(const spqr_ktensor *kt, const kt_input *in, int32_t rt, int32_t g, float ga[][KT_R],
                         float ya[][KT_R]) {
    float s[KT_R], z[KT_R];
    spqri_kt_stats_scalar(kt, rt, g, s, z);
    for (int32_t j = 0; j < in->n; j++) {
        const float32x4_t xs = vdupq_n_f32(in->xsg[(size_t)g * in->n + j]);
        for (int q = 0; q < 4; q++) {
            const float32x4_t t = vfmsq_f32(vld1q_f32(ga[j] + 4 * q), vld1q_f32(z + 4 * q), xs);
            vst1q_f32(ya[j] + 4 * q, vfmaq_f32(vld1q_f32(ya[j] + 4 * q), vld1q_f32(s + 4 * q), t));
        }
    }
}

static void store_batch(const spqr_ktensor *kt, const kt_input *in, int32_t rt, float ya[][KT_R], float *Y) {
    for (int32_t j = 0; j < in->n; j++)
        for (int i = 0; i < KT_R && rt * KT_R + i < kt->rows; i++) Y[(size_t)j * kt->rows + rt * KT_R + i] = ya[j][i];
}

/* A 16x16 code tile widened to qt[16 columns][16 rows] fp32. */
INLINE void widen16(const uint32_t *blk, const int B, const int h, float qt[KT_C][KT_R]) {
#pragma GCC unroll 16
    for (int c = 0; c < KT_C; c++)
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) vst1q_f32(qt[c] + 4 * q, field4(blk, B, h * KT_C + c, q, NULL));
}

/* Batch: a code tile is widened once and applied to all n (<= 64) inputs. */
INLINE void matmul_b(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y, const int B) {
    const int32_t ctpg = kt->ct_per_group, n = in->n;
    float qt[KT_C][KT_R] __attribute__((aligned(16)));
    float ya[64][KT_R] __attribute__((aligned(16))), ga[64][KT_R] __attribute__((aligned(16)));
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
                    float32x4_t a[4];
                    for (int q = 0; q < 4; q++) a[q] = vld1q_f32(ga[j] + 4 * q);
                    for (int c = 0; c < KT_C; c++)
                        for (int q = 0; q < 4; q++) a[q] = vfmaq_n_f32(a[q], vld1q_f32(qt[c] + 4 * q), x[c]);
                    for (int q = 0; q < 4; q++) vst1q_f32(ga[j] + 4 * q, a[q]);
                }
            }
            finish_batch(kt, in, rt, g, ga, ya);
        }
        outliers_batch(kt, in, rt, ya);
        store_batch(kt, in, rt, ya, Y);
    }
}

void spqri_kt_matmul_neon(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    KT_WBITS_DISPATCH(kt->wbits, matmul_b, kt, in, rt0, rt1, Y);
}

/* ---- neondot: int8 activations, SDOT ---- */

/* TBL indices and slot shifts of the 8 ops of a block (op w = 4h + k):
 * for the 4 rows of a quarter, 16-bit slot 4r + c holds the two bytes of
 * row r's string where field c of the op starts; idx[w][0] fills slots 0-7
 * (rows 0-1), idx[w][1] slots 8-15. Index = 16 * (dword - first dword of
 * the op) + 4 * r + byte in dword; bytes past the row string, or not in the
 * op's dwords (never needed: the field's bits are), read 0. */
typedef struct {
    uint8_t idx[8][2][16];
    int16_t nsh[8][2][8];
} i8_win;

static void win_init(i8_win *w, int B) {
    for (int wi = 0; wi < 8; wi++) {
        const int p = 16 * B * (wi >> 2) + 4 * B * (wi & 3), d0 = p >> 5;
        for (int s = 0; s < 16; s++) {
            const int r = s >> 2, c = s & 3, bit = p + c * B, lb = bit >> 3;
            for (int e = 0; e < 2; e++) {
                const int b = lb + e, dd = (b >> 2) - d0;
                w->idx[wi][s >> 3][2 * (s & 7) + e] = b < 4 * B && dd >= 0 && dd < 2 ? (uint8_t)(16 * dd + 4 * r + (b & 3)) : 0xff;
            }
            w->nsh[wi][s >> 3][s & 7] = (int16_t)-(bit & 7);
        }
    }
}

/* Op k of half h, rows 4q..4q+3: lane r = row r, byte c = its code of
 * column 4k + c (code - 128 for 8-bit codes, see the file comment). */
TDOT INLINE int8x16_t op_codes(const uint32_t *blk, const i8_win *w, const int B, const int h, const int k, const int q) {
    if (B == 8) /* fields are whole bytes: the dword itself */
        return vreinterpretq_s8_u8(veorq_u8(vld1q_u8((const uint8_t *)(blk + (4 * h + k) * KT_R + 4 * q)), vdupq_n_u8(0x80)));
    const int wi = 4 * h + k, p = 16 * B * h + 4 * B * k, d0 = p >> 5, d1 = (p + 4 * B - 1) >> 5;
    const uint8x16_t t0 = vld1q_u8((const uint8_t *)(blk + d0 * KT_R + 4 * q));
    uint8x16_t lo, hi;
    if (d1 > d0) {
        const uint8x16x2_t t = {{t0, vld1q_u8((const uint8_t *)(blk + d1 * KT_R + 4 * q))}};
        lo = vqtbl2q_u8(t, vld1q_u8(w->idx[wi][0]));
        hi = vqtbl2q_u8(t, vld1q_u8(w->idx[wi][1]));
    } else {
        lo = vqtbl1q_u8(t0, vld1q_u8(w->idx[wi][0]));
        hi = vqtbl1q_u8(t0, vld1q_u8(w->idx[wi][1]));
    }
    const uint16x8_t l = vshlq_u16(vreinterpretq_u16_u8(lo), vld1q_s16(w->nsh[wi][0]));
    const uint16x8_t u = vshlq_u16(vreinterpretq_u16_u8(hi), vld1q_s16(w->nsh[wi][1]));
    const uint8x16_t f = vuzp1q_u8(vreinterpretq_u8_u16(l), vreinterpretq_u8_u16(u));
    return vreinterpretq_s8_u8(vandq_u8(f, vdupq_n_u8((uint8_t)((1u << B) - 1u))));
}

/* 128 * the sum of a tile's 16 int8 activations: what 8-bit codes taken as
 * code - 128 leave out of the tile dot. */
TDOT INLINE int32x4_t i8_fix(const int32_t *xa, const int B) {
    return B == 8 ? vdupq_n_s32(128 * (int32_t)vaddlvq_s8(vld1q_s8((const int8_t *)xa))) : vdupq_n_s32(0);
}

/* Exact int32 dots of a 16x16 code tile (half h of blk) with one input's
 * int8 activations of the tile (xa: 4 dwords), per quarter. */
TDOT INLINE void tile_i8(const uint32_t *blk, const int32_t *xa, const i8_win *w, const int B, const int h,
                         int32x4_t d[4]) {
    for (int q = 0; q < 4; q++) d[q] = i8_fix(xa, B);
#pragma GCC unroll 4
    for (int k = 0; k < KT_XOPS; k++) {
        const int8x16_t xv = vreinterpretq_s8_s32(vdupq_n_s32(xa[k]));
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) d[q] = vdotq_s32(d[q], op_codes(blk, w, B, h, k, q), xv);
    }
}

TDOT INLINE void matvec_i8_b(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *y,
                             st_ctx *sc, const i8_win *w, const int B) {
    const int32_t ctpg = kt->ct_per_group, bu = kt->blk_u32;
    for (int32_t rt = rt0; rt < rt1; rt++) {
        const uint32_t *cb = kt->codes + (size_t)rt * kt->n_cblocks * bu;
        const rt_ctx rc = rt_begin(kt, rt);
        kt_opf opf = kt_opf_begin(kt, rt);
        float32x4_t yq[4], gd[4];
        int32x4_t d[4];
        for (int q = 0; q < 4; q++) yq[q] = vdupq_n_f32(0.0f);
        int32_t t = 0;
        for (int32_t g = 0; g < kt->n_groups; g++) {
            if ((g & 15) == 0) st_batch(kt, sc, &rc, g);
            for (int q = 0; q < 4; q++) gd[q] = vdupq_n_f32(0.0f);
            for (int32_t k = 0; k < ctpg; k++, t++) {
                const uint32_t *blk = cb + (size_t)(t >> 1) * bu;
                const int32_t *xa = in->xa + (size_t)t * KT_XOPS;
                kt_prefetch_tile(blk, t, B);
                if (t & 1) {
                    kt_opf_step(&opf);
                    tile_i8(blk, xa, w, B, 1, d);
                } else {
                    tile_i8(blk, xa, w, B, 0, d);
                }
                /* |dot| <= 16 * 255 * 127 < 2^24: exact in fp32 */
                for (int q = 0; q < 4; q++) gd[q] = vfmaq_n_f32(gd[q], vcvtq_f32_s32(d[q]), in->at[t]);
            }
            finish_group(in->xs[g], sc, g, gd, yq);
        }
        store_tile(kt, rt, yq, y);
    }
    kt_outliers_add(kt, in->xq, rt0, rt1, y); /* xq holds x^ */
}

TDOT void spqri_kt_matvec_neon_dot(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    st_ctx sc;
    i8_win w;
    st_init(kt, &sc);
    win_init(&w, kt->wbits);
    KT_WBITS_DISPATCH(kt->wbits, matvec_i8_b, kt, in, rt0, rt1, Y, &sc, &w);
}

/* Batch: each 16x16 code tile's fields are taken out once (16 registers)
 * and dotted with every input's int8 activations. */
TDOT INLINE void matmul_i8_b(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y,
                             const i8_win *w, const int B) {
    const int32_t ctpg = kt->ct_per_group, n = in->n;
    float ya[64][KT_R] __attribute__((aligned(16))), ga[64][KT_R] __attribute__((aligned(16)));
    for (int32_t rt = rt0; rt < rt1; rt++) {
        memset(ya, 0, sizeof(float) * KT_R * (size_t)n);
        for (int32_t g = 0; g < kt->n_groups; g++) {
            memset(ga, 0, sizeof(float) * KT_R * (size_t)n);
            for (int32_t k = 0; k < ctpg; k++) {
                const int32_t t = g * ctpg + k;
                const uint32_t *blk = kt_block(kt, rt, t);
                int8x16_t cq[KT_XOPS][4];
                for (int o = 0; o < KT_XOPS; o++)
                    for (int q = 0; q < 4; q++)
                        cq[o][q] = t & 1 ? op_codes(blk, w, B, 1, o, q) : op_codes(blk, w, B, 0, o, q);
                for (int32_t j = 0; j < n; j++) {
                    const int32_t *xa = in->xa + ((size_t)t * n + j) * KT_XOPS;
                    int32x4_t d[4];
                    for (int q = 0; q < 4; q++) d[q] = i8_fix(xa, B);
                    for (int o = 0; o < KT_XOPS; o++) {
                        const int8x16_t xv = vreinterpretq_s8_s32(vdupq_n_s32(xa[o]));
                        for (int q = 0; q < 4; q++) d[q] = vdotq_s32(d[q], cq[o][q], xv);
                    }
                    const float a = in->at[(size_t)t * n + j];
                    for (int q = 0; q < 4; q++)
                        vst1q_f32(ga[j] + 4 * q, vfmaq_n_f32(vld1q_f32(ga[j] + 4 * q), vcvtq_f32_s32(d[q]), a));
                }
            }
            finish_batch(kt, in, rt, g, ga, ya);
        }
        outliers_batch(kt, in, rt, ya); /* xqt holds x^ */
        store_batch(kt, in, rt, ya, Y);
    }
}

TDOT void spqri_kt_matmul_neon_dot(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    i8_win w;
    win_init(&w, kt->wbits);
    KT_WBITS_DISPATCH(kt->wbits, matmul_i8_b, kt, in, rt0, rt1, Y, &w);
}

/* The neondot path's inputs straight from x: the rule of the wrapper's
 * scalar prepare_i8 (spqri_kt_prepare_i8_ref) 4 lanes at a time, FRINTN being
 * rintf's round-half-even; the same int8 codes, scales and x^ bit for bit,
 * group sums in a different fp32 order. Layout as spqri_kt_prepare_i8_avx512. */
void spqri_kt_prepare_i8_neon(const spqr_ktensor *kt, const float *x, float *xs, float *xq, int32_t *xa, float *at,
                        int32_t n) {
    const int32_t cols = kt->cols, gs = kt->groupsize, ctpg = kt->ct_per_group;
    for (int32_t c = 0; c < cols; c++) xq[c] = x[kt->perm ? kt->perm[c] : c];
    const float32x4_t lim = vdupq_n_f32(127.0f), nlim = vdupq_n_f32(-127.0f), big = vdupq_n_f32(3.40282347e38f);
    for (int32_t g = 0; g < kt->n_groups; g++) {
        float sum = 0.0f;
        for (int32_t k = 0; k < ctpg; k++) {
            const int32_t t = g * ctpg + k, c0 = g * gs + k * KT_C;
            int32_t nv = cols - c0 < gs - k * KT_C ? cols - c0 : gs - k * KT_C;
            if (nv > KT_C) nv = KT_C;
            float v[KT_C] = {0};
            if (nv > 0) memcpy(v, xq + c0, (size_t)nv * sizeof(float));
            float32x4_t vx[4], ab[4];
            uint32x4_t fin = vdupq_n_u32(~0u);
            for (int i = 0; i < 4; i++) {
                vx[i] = vld1q_f32(v + 4 * i);
                ab[i] = vabsq_f32(vx[i]);
                fin = vandq_u32(fin, vcleq_f32(ab[i], big)); /* false for NaN and inf */
            }
            const int finite = vminvq_u32(fin) != 0;
            const float m = finite ? vmaxvq_f32(vmaxq_f32(vmaxq_f32(ab[0], ab[1]), vmaxq_f32(ab[2], ab[3]))) : NAN;
            const float a = m / 127.0f, inv = m > 0.0f ? 127.0f / m : 0.0f;
            int32x4_t qi[4];
            float32x4_t hs = vdupq_n_f32(0.0f);
            float xh[KT_C];
            for (int i = 0; i < 4; i++) {
                const float32x4_t r = vmaxq_f32(vminq_f32(vrndnq_f32(vmulq_f32(vx[i], vdupq_n_f32(inv))), lim), nlim);
                qi[i] = finite ? vcvtq_s32_f32(r) : vdupq_n_s32(0); /* -0 -> 0, as (int8_t) */
                const float32x4_t h = vmulq_f32(vdupq_n_f32(a), vcvtq_f32_s32(qi[i]));
                vst1q_f32(xh + 4 * i, h);
                hs = vaddq_f32(hs, h);
            }
            const int16x8_t q01 = vcombine_s16(vmovn_s32(qi[0]), vmovn_s32(qi[1]));
            const int16x8_t q23 = vcombine_s16(vmovn_s32(qi[2]), vmovn_s32(qi[3]));
            vst1q_s8((int8_t *)(xa + (size_t)t * n * KT_XOPS), vcombine_s8(vmovn_s16(q01), vmovn_s16(q23)));
            at[(size_t)t * n] = a;
            if (nv > 0) {
                memcpy(xq + c0, xh, (size_t)nv * sizeof(float));
                sum += vaddvq_f32(hs); /* padded lanes hold a * 0 = 0 (NaN only where the tile is NaN anyway) */
            }
        }
        xs[g] = sum;
    }
}

#else
/* Never picked off aarch64 (the detector finds no NEON): the scalar path, so the library links. */
void spqri_kt_matvec_neon(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    spqri_kt_matmul_scalar(kt, in, rt0, rt1, Y);
}
void spqri_kt_matmul_neon(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    spqri_kt_matmul_scalar(kt, in, rt0, rt1, Y);
}
void spqri_kt_matvec_neon_dot(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    spqri_kt_matmul_scalar(kt, in, rt0, rt1, Y);
}
void spqri_kt_matmul_neon_dot(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    spqri_kt_matmul_scalar(kt, in, rt0, rt1, Y);
}
void spqri_kt_prepare_i8_neon(const spqr_ktensor *kt, const float *x, float *xs, float *xq, int32_t *xa, float *at,
                        int32_t n) {
    (void)kt, (void)x, (void)xs, (void)xq, (void)xa, (void)at, (void)n; /* never called: the path is unsupported here */
}
#endif

static int has_neon(const spqr_cpu *cpu) { return cpu->neon; }
static int has_dotprod(const spqr_cpu *cpu) { return cpu->neon && cpu->dotprod; }

const spqr_kernel_ops spqri_kt_ops_neon = {"neon", SPQR_KERNEL_NEON, 1, has_neon, spqri_kt_scratch_exact, spqri_kt_prepare_exact,
                                     spqri_kt_matvec_neon, spqri_kt_matmul_neon, NULL, 0};
const spqr_kernel_ops spqri_kt_ops_neondot = {"neondot", SPQR_KERNEL_NEON_DOTPROD, 0, has_dotprod, spqri_kt_scratch_i8, spqri_kt_prepare_i8,
                                        spqri_kt_matvec_neon_dot, spqri_kt_matmul_neon_dot, spqri_kt_prepare_i8_neon, 0};
