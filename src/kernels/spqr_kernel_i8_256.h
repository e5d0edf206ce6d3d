/* The 256-bit int8 SpQR kernels, written once and compiled per instruction
 * set by the file that includes it (I8_TARGET: the target attribute string;
 * I8_VNNI: 0 vpmaddwd + vpaddd and vpmaddubsw (spqr_kernel_avx2i8.c), 1 the
 * VEX-coded AVX-VNNI vpdpwssd / vpdpbusd (spqr_kernel_avxvnni.c), 2 their
 * EVEX-coded AVX512-VNNI + VL twins (spqr_kernel_vnni256.c)); it defines
 * static kt_matvec_i8_256 / kt_matmul_i8_256, and with I8_VNNI 0 the shared
 * input preparation. Include only from x86-64 files, once per file.
 *
 * avx2i8 path: the avx512vnni int8 design (docs/kernels.md) on AVX2 + FMA +
 * F16C, for CPUs without AVX-512 VNNI (Zen 2/3, Haswell..Alder Lake).
 * x is rounded to int8 per 16-column tile with the avx512vnni rule
 * (spqri_kt_prepare_i8_avx2, bit-identical to spqri_kt_prepare_i8_ref), tile dots are
 * exact integers, statistics and outliers as on avx512vnni.
 *
 * One-token matvec (rows 0-7 and 8-15 of a row tile in two ymm halves, one
 * dword lane per row): AVX2 has no vpmultishiftqb and no per-byte shift, so
 * the odd-width fields cannot be put into bytes cheaply; vpmaddwd instead
 * multiplies 16-bit words, and a field needs no shift at all if it lies in
 * a word: AND keeps one field in the low and one in the high word of each
 * row's dword, in place at bit r of its word (r <= 8, r + B <= 15 so the
 * word stays positive), and the activation word is x * 2^(8 - r) (|x| <=
 * 127, so <= 32512). vpmaddwd then adds 2^8 * (q0 x0 + q1 x1) per row: one
 * AND, one vpmaddwd and one vpaddd per 2 x 8 weights, eight such ops per
 * 16x8 tile. Each op reads a 32-bit *view* of the row's block string:
 * a stored dword, a vpshufb of one (any two byte pairs as its words), a
 * shift, a funnel shift of two (srl, sll, or) or a word blend of two. Which
 * views and which field pairs each width uses was searched offline for the
 * fewest instructions (PLAN below, printed by tools/avx2i8_plan.py; 25-35
 * per 16x8 tile against 48 for the exact path's AND/convert/FMA per
 * field); the activation words are laid out per call in the plan's order
 * (spqri_kt_prepare_i8_avx2, words = 1). w3 is the exception: these paths
 * keep w3 codes byte-aligned (spqr_kernel.h), and its one-token dot is an
 * AND (or two shifts and three logic ops for 8 of 32 codes) and a
 * vpmaddubsw per 4 columns on the plain int8 activations (tile_p: 13 and
 * 21 instructions per 16x8 tile for the two halves of a block, against
 * the plan's 28 and 29).
 *
 * Batches (matmul): each 16x16 code tile is unpacked once into bytes in
 * column order and dotted with every input's int8 activations by
 * vpmaddubsw (u8 code x s8 x) + vpmaddwd; pair sums are at most
 * 2 * (2^B - 1) * 127, so up to four vpmaddubsw are summed in 16 bits for
 * B <= 5, two for B = 6, one for B = 7 (32258 < 32767), and 8-bit codes are
 * split into nibbles (255 * 127 * 2 would saturate). */
#if !(defined(__x86_64__) && defined(__GNUC__))
/* not x86: the twins' ops tables stay linkable; their `supported` test is
 * false there, so these never run */
static void kt_matvec_i8_256(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    spqri_kt_matmul_scalar(kt, in, rt0, rt1, Y);
}
static void kt_matmul_i8_256(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    spqri_kt_matmul_scalar(kt, in, rt0, rt1, Y);
}
#else
#ifndef I8_TARGET
#error "define I8_TARGET and I8_VNNI before including spqr_kernel_i8_256.h (see its comment)"
#endif
#include <assert.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "format/tensor.h"
#include "kernels/kernels.h"
#include "kernels/stat_avx2.h"

#define T2I __attribute__((target(I8_TARGET)))
#if I8_VNNI == 1 /* AVX-VNNI, VEX-coded */
#define I8_DPWSSD(acc, a, b) _mm256_dpwssd_avx_epi32(acc, a, b)
#define I8_DPBUSD(acc, a, b) _mm256_dpbusd_avx_epi32(acc, a, b)
#elif I8_VNNI == 2 /* AVX512-VNNI + VL, EVEX-coded 256-bit */
#define I8_DPWSSD(acc, a, b) _mm256_dpwssd_epi32(acc, a, b)
#define I8_DPBUSD(acc, a, b) _mm256_dpbusd_epi32(acc, a, b)
#else
#define I8_DPWSSD(acc, a, b) _mm256_add_epi32(acc, _mm256_madd_epi16(a, b))
#endif
#define INLINE KT_INLINE

/* ---- the per-width plans of the one-token tile dot -------------------- */

/* A view of the row's block string (per 8-row half, d = stored dword):
 * LOAD d; SHUF d a b: low word = bytes a, a+1 of dword d, high word = bytes
 * b, b+1 (a byte past the dword reads 0); SRL/SLL d a: dword d shifted by
 * a; FUN d a: bits [32d + a, 32d + a + 32) of dwords d, d+1; BLEND d a: low
 * word of dword d, high word of dword a. */
enum { KV_LOAD, KV_SHUF, KV_SRL, KV_SLL, KV_FUN, KV_BLEND };
typedef struct {
    int8_t kind, d, a, b;
} kv_step;
/* One vpmaddwd: view v; column c0 of the tile in the low word at bit r0,
 * c1 in the high word at bit r1 (c = -1: none). */
typedef struct {
    int8_t v, c0, r0, c1, r1;
} kv_op;
typedef struct {
    int8_t nv, nop;
    kv_step v[8];
    kv_op op[KT_XW];
} kv_plan;
static_assert(sizeof(kv_step) == 4 && sizeof(kv_op) == 5, "plan entries are packed bytes");

/* [wbits - 2][half of the code block]; ALU counts per 16x8 tile. */
static const kv_plan PLAN[7][2] = {
    /* w2 h0: 8 ops, 25 ALU ops per 8 rows */
    {{2, 8, {{KV_LOAD, 0, 0, 0}, {KV_SHUF, 0, 1, 3}},
      {{0, 1, 2, 11, 6}, {0, 3, 6, 9, 2}, {0, 0, 0, 8, 0}, {0, 2, 4, 10, 4}, {1, 4, 0, 15, 6}, {1, 7, 6, 14, 4}, {1, 6, 4, 13, 2}, {1, 5, 2, 12, 0}}},
     /* w2 h1: 8 ops, 25 ALU ops per 8 rows */
     {2, 8, {{KV_LOAD, 1, 0, 0}, {KV_SHUF, 1, 1, 3}},
      {{0, 1, 2, 11, 6}, {0, 3, 6, 9, 2}, {0, 0, 0, 8, 0}, {0, 2, 4, 10, 4}, {1, 4, 0, 15, 6}, {1, 7, 6, 14, 4}, {1, 6, 4, 13, 2}, {1, 5, 2, 12, 0}}}},
    /* w3 h0: 8 ops, 28 ALU ops per 8 rows */
    {{3, 8, {{KV_LOAD, 0, 0, 0}, {KV_FUN, 0, 9, 0}, {KV_SHUF, 1, 0, 1}},
      {{0, 2, 6, 6, 2}, {0, 1, 3, 7, 5}, {0, 0, 0, 8, 8}, {1, 4, 3, 10, 5}, {1, 3, 0, 11, 8}, {1, 5, 6, 9, 2}, {2, 13, 7, 15, 5}, {2, 12, 4, 14, 2}}},
     /* w3 h1: 8 ops, 29 ALU ops per 8 rows */
     {4, 8, {{KV_LOAD, 2, 0, 0}, {KV_SRL, 2, 6, 0}, {KV_FUN, 1, 8, 0}, {KV_SHUF, 1, 2, 3}},
      {{0, 7, 5, 12, 4}, {0, 6, 2, 13, 7}, {0, 8, 8, 11, 1}, {1, 10, 8, 15, 7}, {1, 9, 5, 14, 4}, {2, 0, 8, 5, 7}, {3, 2, 6, 3, 1}, {3, 1, 3, 4, 4}}}},
    /* w4 h0: 8 ops, 26 ALU ops per 8 rows */
    {{4, 8, {{KV_SHUF, 1, 1, 3}, {KV_LOAD, 1, 0, 0}, {KV_LOAD, 0, 0, 0}, {KV_SHUF, 0, 1, 3}},
      {{0, 11, 4, 15, 4}, {1, 8, 0, 14, 8}, {1, 9, 4, 13, 4}, {1, 10, 8, 12, 0}, {2, 2, 8, 4, 0}, {2, 1, 4, 5, 4}, {2, 0, 0, 6, 8}, {3, 3, 4, 7, 4}}},
     /* w4 h1: 8 ops, 26 ALU ops per 8 rows */
     {4, 8, {{KV_SHUF, 3, 1, 3}, {KV_LOAD, 3, 0, 0}, {KV_LOAD, 2, 0, 0}, {KV_SHUF, 2, 1, 3}},
      {{0, 11, 4, 15, 4}, {1, 8, 0, 14, 8}, {1, 9, 4, 13, 4}, {1, 10, 8, 12, 0}, {2, 2, 8, 4, 0}, {2, 1, 4, 5, 4}, {2, 0, 0, 6, 8}, {3, 3, 4, 7, 4}}}},
    /* w5 h0: 8 ops, 32 ALU ops per 8 rows */
    {{5, 8, {{KV_FUN, 1, 20, 0}, {KV_BLEND, 2, 0, 0}, {KV_SHUF, 0, 0, 1}, {KV_LOAD, 1, 0, 0}, {KV_FUN, 0, 22, 0}},
      {{0, 11, 3, 15, 7}, {0, 12, 8, 14, 2}, {1, 13, 1, 4, 4}, {2, 1, 5, 2, 2}, {2, 0, 0, 3, 7}, {3, 7, 3, 10, 2}, {4, 5, 3, 9, 7}, {4, 6, 8, 8, 2}}},
     /* w5 h1: 8 ops, 32 ALU ops per 8 rows */
     {6, 8, {{KV_FUN, 2, 23, 0}, {KV_LOAD, 3, 0, 0}, {KV_LOAD, 4, 0, 0}, {KV_SHUF, 2, 1, 2}, {KV_SRL, 4, 4, 0}, {KV_FUN, 3, 11, 0}},
      {{0, 2, 3, 6, 7}, {0, 3, 8, 5, 2}, {1, 4, 4, 8, 8}, {2, 11, 7, 13, 1}, {2, 10, 2, 14, 6}, {3, 0, 8, 1, 5}, {4, 12, 8, 15, 7}, {5, 7, 8, 9, 2}}}},
    /* w6 h0: 8 ops, 31 ALU ops per 8 rows */
    {{6, 8, {{KV_FUN, 1, 10, 0}, {KV_LOAD, 0, 0, 0}, {KV_LOAD, 1, 0, 0}, {KV_SHUF, 2, 1, 3}, {KV_LOAD, 2, 0, 0}, {KV_FUN, 0, 6, 0}},
      {{0, 7, 0, 11, 8}, {0, 8, 6, 10, 2}, {1, 0, 0, 4, 8}, {1, 1, 6, 3, 2}, {2, 6, 4, 9, 6}, {3, 13, 6, 15, 2}, {4, 12, 8, 14, 4}, {5, 2, 6, 5, 8}}},
     /* w6 h1: 8 ops, 31 ALU ops per 8 rows */
     {6, 8, {{KV_FUN, 4, 10, 0}, {KV_LOAD, 3, 0, 0}, {KV_LOAD, 4, 0, 0}, {KV_SHUF, 5, 1, 3}, {KV_LOAD, 5, 0, 0}, {KV_FUN, 3, 6, 0}},
      {{0, 7, 0, 11, 8}, {0, 8, 6, 10, 2}, {1, 0, 0, 4, 8}, {1, 1, 6, 3, 2}, {2, 6, 4, 9, 6}, {3, 13, 6, 15, 2}, {4, 12, 8, 14, 4}, {5, 2, 6, 5, 8}}}},
    /* w7 h0: 8 ops, 35 ALU ops per 8 rows */
    {{8, 8, {{KV_SHUF, 0, 0, 1}, {KV_SHUF, 3, 0, 1}, {KV_FUN, 0, 20, 0}, {KV_LOAD, 1, 0, 0}, {KV_LOAD, 0, 0, 0}, {KV_LOAD, 2, 0, 0}, {KV_FUN, 1, 9, 0}, {KV_FUN, 2, 5, 0}},
      {{0, 1, 7, 2, 6}, {1, 14, 2, 15, 1}, {2, 4, 8, 6, 6}, {3, 5, 3, 8, 8}, {4, 0, 0, 3, 5}, {5, 10, 6, 12, 4}, {6, 7, 8, 9, 6}, {7, 11, 8, 13, 6}}},
     /* w7 h1: 8 ops, 35 ALU ops per 8 rows */
     {8, 8, {{KV_FUN, 5, 7, 0}, {KV_LOAD, 5, 0, 0}, {KV_SRL, 6, 3, 0}, {KV_FUN, 3, 22, 0}, {KV_SHUF, 3, 1, 2}, {KV_FUN, 4, 18, 0}, {KV_LOAD, 4, 0, 0}, {KV_LOAD, 6, 0, 0}},
      {{0, 9, 8, 11, 6}, {1, 7, 1, 10, 6}, {2, 13, 8, 15, 6}, {3, 2, 8, 4, 6}, {4, 0, 8, 1, 7}, {5, 6, 8, 8, 6}, {6, 3, 5, 5, 3}, {7, 12, 4, 14, 2}}}},
    /* w8 h0: 8 ops, 28 ALU ops per 8 rows */
    {{8, 8, {{KV_LOAD, 2, 0, 0}, {KV_SHUF, 0, 1, 3}, {KV_SHUF, 2, 1, 3}, {KV_SHUF, 3, 1, 3}, {KV_LOAD, 1, 0, 0}, {KV_LOAD, 0, 0, 0}, {KV_LOAD, 3, 0, 0}, {KV_SHUF, 1, 1, 3}},
      {{0, 8, 0, 10, 0}, {1, 1, 0, 3, 0}, {2, 9, 0, 11, 0}, {3, 13, 0, 15, 0}, {4, 4, 0, 6, 0}, {5, 0, 0, 2, 0}, {6, 12, 0, 14, 0}, {7, 5, 0, 7, 0}}},
     /* w8 h1: 8 ops, 28 ALU ops per 8 rows */
     {8, 8, {{KV_LOAD, 6, 0, 0}, {KV_SHUF, 4, 1, 3}, {KV_SHUF, 6, 1, 3}, {KV_SHUF, 7, 1, 3}, {KV_LOAD, 5, 0, 0}, {KV_LOAD, 4, 0, 0}, {KV_LOAD, 7, 0, 0}, {KV_SHUF, 5, 1, 3}},
      {{0, 8, 0, 10, 0}, {1, 1, 0, 3, 0}, {2, 9, 0, 11, 0}, {3, 13, 0, 15, 0}, {4, 4, 0, 6, 0}, {5, 0, 0, 2, 0}, {6, 12, 0, 14, 0}, {7, 5, 0, 7, 0}}}},
};

/* Activation word of a field at bit r: x * 2^(8 - r), so every product is
 * 2^8 * q * x whatever r (tile dots are 2^8 times the integer dot). */
#define KW_SHIFT 8

/* Per call: the plan's AND masks and vpshufb controls as memory operands
 * (as immediates GCC 12 rebuilt each mask per use: movabs + vmovq +
 * vpbroadcastq). */
typedef struct {
    __m256i mask[2][KT_XW]; /* [half][op] */
    __m256i shuf[2][8];     /* [half][view], KV_SHUF views only */
} kw_ctx;

static uint32_t op_mask(int B, const kv_op *o) {
    const uint32_t m = (1u << B) - 1u;
    return (o->c0 >= 0 ? m << o->r0 : 0u) | (o->c1 >= 0 ? m << (16 + o->r1) : 0u);
}

static void kw_init(kw_ctx *cx, int B) {
    memset(cx, 0, sizeof *cx);
    for (int h = 0; h < 2; h++) {
        const kv_plan *p = &PLAN[B - 2][h];
        for (int k = 0; k < p->nop; k++) {
            const uint32_t m = op_mask(B, &p->op[k]);
            uint32_t v[8];
            for (int i = 0; i < 8; i++) v[i] = m;
            memcpy(&cx->mask[h][k], v, 32);
        }
        for (int i = 0; i < p->nv; i++) {
            if (p->v[i].kind != KV_SHUF) continue;
            uint8_t c[32];
            for (int l = 0; l < 8; l++) {
                const int base = 4 * (l & 3); /* vpshufb indexes within a 128-bit lane */
                const int src[4] = {p->v[i].a, p->v[i].a + 1, p->v[i].b, p->v[i].b + 1};
                for (int j = 0; j < 4; j++) c[4 * l + j] = (uint8_t)(src[j] < 4 ? base + src[j] : 0x80);
            }
            memcpy(&cx->shuf[h][i], c, 32);
        }
    }
}

/* Rows 8*rh..8*rh+7 of dword d of a code block. */
T2I INLINE __m256i ld8(const uint32_t *blk, int d, int rh) {
    return _mm256_load_si256((const __m256i *)(blk + d * KT_R + 8 * rh));
}

/* View i of the plan for rows 8*rh..8*rh+7. */
T2I INLINE __m256i view(const kw_ctx *cx, const uint32_t *blk, const kv_step s, const int i, const int rh, const int h) {
    const __m256i v = ld8(blk, s.d, rh);
    switch (s.kind) {
    case KV_SHUF: return _mm256_shuffle_epi8(v, _mm256_load_si256(&cx->shuf[h][i]));
    case KV_SRL: return _mm256_srli_epi32(v, s.a);
    case KV_SLL: return _mm256_slli_epi32(v, s.a);
    case KV_FUN: return _mm256_or_si256(_mm256_srli_epi32(v, s.a), _mm256_slli_epi32(ld8(blk, s.d + 1, rh), 32 - s.a));
    case KV_BLEND: return _mm256_blend_epi16(v, ld8(blk, s.a, rh), 0xAA);
    default: return v;
    }
}

/* The tile's exact dots (times 2^8), rows 0-7 in d[0], 8-15 in d[1]: half
 * h of the block, activation words xw[KT_XW]. Both 8-row halves per op, so
 * each mask and activation word is loaded once for 16 rows. The plan's ops
 * are sorted by view, so a view lives for a few ops only. Everything but
 * the loads is folded at compile time from B and h. (Two row tiles per
 * pass, each word for 32 rows, spilled: ~25% more cycles per weight.) */
T2I INLINE void tile_w(const kw_ctx *cx, const uint32_t *blk, const int32_t *xw, __m256i d[2], const int B, const int h) {
    const kv_plan *p = &PLAN[B - 2][h];
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, v0 = a0, v1 = a0;
    int cur = -1;
#pragma GCC unroll 8
    for (int k = 0; k < KT_XW; k++) {
        const kv_op o = p->op[k];
        if (o.v != cur) {
            cur = o.v;
            v0 = view(cx, blk, p->v[cur], cur, 0, h);
            v1 = view(cx, blk, p->v[cur], cur, 1, h);
        }
        const __m256i x = _mm256_set1_epi32(xw[k]), m = _mm256_load_si256(&cx->mask[h][k]);
        a0 = I8_DPWSSD(a0, _mm256_and_si256(v0, m), x);
        a1 = I8_DPWSSD(a1, _mm256_and_si256(v1, m), x);
        /* keeps the sums in order: GCC reassociated them into a tree whose
         * partial sums spilled (72 cycles per code block without this, 56
         * with it; llvm-mca -mcpu=znver3) */
        __asm__("" : "+x"(a0), "+x"(a1));
    }
    d[0] = a0;
    d[1] = a1;
}

/* Byte-aligned w3 (spqr_kernel.h): the codes of columns 16h + 4k ..
 * 16h + 4k + 3 of rows 8*rh.. in the 4 bytes of each row's dword, times
 * 8 where k is odd and the code sits at bits 3-5 (SC = 0), or always
 * times 1 (SC = 1). The in-place ones are one AND; the 8 split codes of
 * h = 1, k = 2, 3 two shifts and three logic ops. */
T2I INLINE __m256i planar_q(const uint32_t *blk, const int rh, const int h, const int k, const int SC) {
    const __m256i m7 = _mm256_set1_epi8(7);
    if (h == 0 || k < 2) {
        const __m256i v = ld8(blk, h ? 2 : k >> 1, rh);
        if (!(k & 1)) return _mm256_and_si256(v, m7);
        return SC ? _mm256_and_si256(_mm256_srli_epi32(v, 3), m7) : _mm256_and_si256(v, _mm256_set1_epi8(0x38));
    }
    const __m256i lo = _mm256_and_si256(_mm256_srli_epi32(ld8(blk, k - 2, rh), 6), _mm256_set1_epi8(3));
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi32(ld8(blk, 2, rh), k + 2), _mm256_set1_epi8(4));
    return _mm256_or_si256(lo, hi);
}

/* The tile's exact integer dots (not scaled), byte-aligned w3 codes, half
 * h of the block, int8 activations xa[KT_XOPS] (columns 4k..4k+3 in dword
 * k): per 4 columns a vpmaddubsw (vpdpbusd with VNNI) of planar_q's
 * bytes. The products of codes times 8 (odd k; pair sums <= 2 * 56 * 127)
 * are summed and shifted down by 3 (exact: multiples of 8), the others
 * summed in 16 bits (|sum| <= 4 * 2 * 7 * 127), one vpmaddwd widens. */
T2I INLINE void tile_p(const uint32_t *blk, const int32_t *xa, __m256i d[2], const int h) {
    __m256i x[4];
    for (int k = 0; k < 4; k++) x[k] = _mm256_set1_epi32(xa[k]);
#pragma GCC unroll 2
    for (int rh = 0; rh < 2; rh++) {
#if I8_VNNI
        __m256i acc = I8_DPBUSD(_mm256_setzero_si256(), planar_q(blk, rh, h, 1, 0), x[1]);
        if (h == 0) acc = I8_DPBUSD(acc, planar_q(blk, rh, h, 3, 0), x[3]);
        acc = _mm256_srai_epi32(acc, 3);
        acc = I8_DPBUSD(acc, planar_q(blk, rh, h, 0, 0), x[0]);
        acc = I8_DPBUSD(acc, planar_q(blk, rh, h, 2, 0), x[2]);
        if (h == 1) acc = I8_DPBUSD(acc, planar_q(blk, rh, h, 3, 0), x[3]);
        d[rh] = acc;
#else
        __m256i p[4];
        for (int k = 0; k < 4; k++) p[k] = _mm256_maddubs_epi16(planar_q(blk, rh, h, k, 0), x[k]);
        const __m256i s8 = h == 0 ? _mm256_srai_epi16(_mm256_add_epi16(p[1], p[3]), 3) : _mm256_add_epi16(_mm256_srai_epi16(p[1], 3), p[3]);
        d[rh] = _mm256_madd_epi16(_mm256_add_epi16(_mm256_add_epi16(p[0], p[2]), s8), _mm256_set1_epi16(1));
#endif
    }
}

#if I8_VNNI == 0
void spqri_kt_avx2i8_words_ref(const spqr_ktensor *kt, const int32_t *xa, int32_t *xw) {
    const int B = kt->wbits < 2 ? 2 : kt->wbits > 8 ? 8 : kt->wbits;
    for (int32_t t = 0; t < kt->n_ctiles; t++) {
        const int8_t *x = (const int8_t *)(xa + (size_t)t * KT_XOPS);
        const kv_plan *p = &PLAN[B - 2][t & 1];
        for (int k = 0; k < KT_XW; k++) {
            const kv_op *o = &p->op[k];
            const int32_t lo = k < p->nop && o->c0 >= 0 ? x[o->c0] * (1 << (KW_SHIFT - o->r0)) : 0;
            const int32_t hi = k < p->nop && o->c1 >= 0 ? x[o->c1] * (1 << (KW_SHIFT - o->r1)) : 0;
            xw[(size_t)t * KT_XW + k] = (int32_t)((uint32_t)(uint16_t)lo | (uint32_t)(uint16_t)hi << 16);
        }
    }
}
#endif

/* ---- statistics -------------------------------------------------------- */

typedef kt_rt256 rt_ctx;
typedef kt_st256 st_ctx;
#define rt_begin kt_rtile_begin
#define st_init kt_st256_init

T2I INLINE void stats8x2(const spqr_ktensor *kt, const st_ctx *sc, const rt_ctx *rc, int32_t g, __m256 s[2], __m256 z[2]) {
    const uint8_t *blk = rc->st + (size_t)g * kt->stat_bytes;
    float pr[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}}; /* the row tile's (s2, z2) of group g, where it has one */
    for (int p = 0; p < 2; p++)
        if (rc->pp[p]) pr[p][0] = _cvtsh_ss(rc->pp[p][2 * g]), pr[p][1] = _cvtsh_ss(rc->pp[p][2 * g + 1]);
    kt_stat16_256(kt, sc, rc, blk, g, 0, rc->pp[0] ? pr[0] : NULL, s);
    kt_stat16_256(kt, sc, rc, blk + kt->sb_bytes, g, 1, rc->pp[1] ? pr[1] : NULL, z);
}

/* Closes group g: y += s * (dot - z * sum(x^_g)) per 8-row half. */
T2I INLINE void finish_dot(const spqr_ktensor *kt, const kt_input *in, const st_ctx *sc, const rt_ctx *rc, int32_t g,
                           const __m256 dot[2], __m256 y[2]) {
    __m256 s[2], z[2];
    stats8x2(kt, sc, rc, g, s, z);
    const __m256 X = _mm256_set1_ps(in->xs[g]);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) y[h] = _mm256_fmadd_ps(s[h], _mm256_fnmadd_ps(z[h], X, dot[h]), y[h]);
}

/* The avx512vnni route for qq bits <= 4 with one second-level pair per row
 * tile: row i's code goes to dword lane i with one broadcast dword and a
 * variable shift (rows 8-15 start at byte q), a function of a <= 3-bit code
 * is a vpermps of an 8-lane table (it reads the index's low 3 bits: no
 * mask, no int->fp32; 4-bit codes are masked and converted instead), and
 * the second-level factors of 16 groups are folded at once:
 * y += (cs - zs2) * ((s2 a 2^-8) * dot - ((z2 X s2) * cz - z2 X s2 zz2)). */
typedef struct {
    __m256i shs, shz; /* lane i: q * i */
    __m256 is, iz;    /* lane k: (float)(k mod 2^q) */
    int qs, qz;
    float zs[16] __attribute__((aligned(32))); /* zs2 */
    float sa[16] __attribute__((aligned(32))); /* s2 * a / the dots' scale */
    float zq[16] __attribute__((aligned(32))); /* z2 * X * s2 */
    float zc[16] __attribute__((aligned(32))); /* z2 * X * s2 * zz2 */
} ms_stats;

T2I INLINE void ms_init(ms_stats *m, int qs, int qz) {
    int32_t a[8], b[8];
    float fa[8], fb[8];
    for (int i = 0; i < 8; i++) {
        a[i] = qs * i;
        b[i] = qz * i;
        fa[i] = (float)(i & ((1 << qs) - 1));
        fb[i] = (float)(i & ((1 << qz) - 1));
    }
    m->shs = _mm256_loadu_si256((const __m256i *)a);
    m->shz = _mm256_loadu_si256((const __m256i *)b);
    m->is = _mm256_loadu_ps(fa);
    m->iz = _mm256_loadu_ps(fb);
    m->qs = qs;
    m->qz = qz;
}

/* The folded factors of the n <= 16 groups from g on (tile t = group g). */
T2I INLINE void ms_fold(const uint16_t *sp, const uint16_t *zp, const float *xs, const float *at, int32_t n, ms_stats *m,
                        const float kd) {
    uint16_t ps[32], pz[32];
    float xv[16], av[16];
    if (n < 16) { /* never read past the arrays */
        memset(ps, 0, sizeof ps);
        memset(pz, 0, sizeof pz);
        memset(xv, 0, sizeof xv);
        memset(av, 0, sizeof av);
        memcpy(ps, sp, (size_t)n * 4);
        memcpy(pz, zp, (size_t)n * 4);
        memcpy(xv, xs, (size_t)n * 4);
        memcpy(av, at, (size_t)n * 4);
        sp = ps, zp = pz, xs = xv, at = av;
    }
    const __m256 k8 = _mm256_set1_ps(kd); /* 1 / the dots' scale */
    for (int q = 0; q < 2; q++) { /* groups 8q..8q+7 */
        const __m256 s01 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(sp + 16 * q)));
        const __m256 s23 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(sp + 16 * q + 8)));
        const __m256 z01 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(zp + 16 * q)));
        const __m256 z23 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(zp + 16 * q + 8)));
        /* even / odd elements, back in group order (shuffle_ps works per 128-bit lane) */
        const __m256 s2 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(s01, s23, 0x88)), 0xD8));
        const __m256 zs2 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(s01, s23, 0xDD)), 0xD8));
        const __m256 z2 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(z01, z23, 0x88)), 0xD8));
        const __m256 zz2 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(z01, z23, 0xDD)), 0xD8));
        const __m256 zq = _mm256_mul_ps(_mm256_mul_ps(z2, _mm256_loadu_ps(xs + 8 * q)), s2);
        _mm256_store_ps(m->zs + 8 * q, zs2);
        _mm256_store_ps(m->sa + 8 * q, _mm256_mul_ps(_mm256_mul_ps(s2, _mm256_loadu_ps(at + 8 * q)), k8));
        _mm256_store_ps(m->zq + 8 * q, zq);
        _mm256_store_ps(m->zc + 8 * q, _mm256_mul_ps(zq, zz2));
    }
}

/* Row codes of one <= 4-bit statistic part in dword lanes (rows 8*h..). */
T2I INLINE __m256i ms_code(const uint8_t *p, int q, const int h, __m256i sh) {
    int32_t w;
    memcpy(&w, p + h * q, 4); /* the stats array has 16 bytes of slack at its end */
    return _mm256_srlv_epi32(_mm256_set1_epi32(w), sh);
}

/* Closes group g from its integer tile dots d (times 2^8, or 1 planar). Q4: the codes
 * have 4 bits (a 16-value function: masked and converted, not vpermps). */
T2I INLINE void finish_ms(const spqr_ktensor *kt, const rt_ctx *rc, const ms_stats *m, int32_t g, const __m256i d[2],
                          __m256 y[2], const int Q4) {
    const uint8_t *blk = rc->st + (size_t)g * kt->stat_bytes;
    const int j = g & 15;
    const __m256 zs = _mm256_set1_ps(m->zs[j]), ts = _mm256_sub_ps(m->is, zs);
    const __m256 zq = _mm256_set1_ps(m->zq[j]), zc = _mm256_set1_ps(m->zc[j]), sa = _mm256_set1_ps(m->sa[j]);
    const __m256i m4 = _mm256_set1_epi32(15);
    /* <= 3-bit zero codes: the zero term's table (zq * k - zc, the same fp32
     * operation per code as per row), one FMA per group instead of one per half */
    const __m256 tz = _mm256_fmsub_ps(zq, m->iz, zc);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const __m256i cs = ms_code(blk, m->qs, h, m->shs), cz = ms_code(blk + kt->sb_bytes, m->qz, h, m->shz);
        const __m256 sc = Q4 && m->qs == 4 ? _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_and_si256(cs, m4)), zs)
                                           : _mm256_permutevar8x32_ps(ts, cs);
        const __m256 zp = Q4 && m->qz == 4 ? _mm256_fmsub_ps(zq, _mm256_cvtepi32_ps(_mm256_and_si256(cz, m4)), zc)
                                           : _mm256_permutevar8x32_ps(tz, cz);
        y[h] = _mm256_fmadd_ps(sc, _mm256_fmsub_ps(_mm256_cvtepi32_ps(d[h]), sa, zp), y[h]);
    }
}

T2I INLINE void store_rows(const spqr_ktensor *kt, int32_t rt, float *y, const __m256 v[2]) {
    if (kt->rows - rt * KT_R >= KT_R) {
        _mm256_storeu_ps(y + rt * KT_R, v[0]);
        _mm256_storeu_ps(y + rt * KT_R + 8, v[1]);
    } else {
        float out[KT_R];
        _mm256_storeu_ps(out, v[0]);
        _mm256_storeu_ps(out + 8, v[1]);
        for (int i = 0; rt * KT_R + i < kt->rows; i++) y[rt * KT_R + i] = out[i];
    }
}

/* ---- one-token matvec -------------------------------------------------- */

/* MS: 0 exact statistic decode (finish_dot), 1 the table route (finish_ms),
 * 2 the table route with 4-bit codes. P: byte-aligned w3 codes (tile_p on
 * int8 bytes, KT_XOPS per tile) instead of the plan (tile_w on KT_XW
 * activation words). */
T2I INLINE void dots(const kw_ctx *cx, const uint32_t *blk, const int32_t *xw, __m256i d[2], const int P, const int B,
                     const int h) {
    if (P) tile_p(blk, xw, d, h);
    else tile_w(cx, blk, xw, d, B, h);
}

T2I INLINE void matvec_b(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *y,
                         const kw_ctx *cx, const st_ctx *sc, ms_stats *ms, const int MS, const int P, const int B) {
    const int32_t ctpg = kt->ct_per_group, bu = kt->blk_u32, xn = P ? KT_XOPS : KT_XW;
    const float k8 = P ? 1.0f : 1.0f / (float)(1 << KW_SHIFT); /* 1 / the dots' scale */
    for (int32_t rt = rt0; rt < rt1; rt++) {
        const uint32_t *cb = kt->codes + (size_t)rt * kt->n_cblocks * bu;
        const rt_ctx rc = rt_begin(kt, rt);
        kt_opf opf = kt_opf_begin(kt, rt);
        __m256 ya[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        int32_t g = 0, t = 0;
        if (ctpg == 1) { /* groups of <= 16 columns: a block is two groups */
            const int32_t *xw = in->xa;
            for (; g + 1 < kt->n_groups; g += 2, t += 2, cb += bu, xw += 2 * xn) {
                if (MS && (g & 15) == 0) {
                    const int32_t n = kt->n_groups - g < 16 ? kt->n_groups - g : 16;
                    ms_fold(rc.pp[0] + (size_t)g * 2, rc.pp[1] + (size_t)g * 2, in->xs + g, in->at + g, n, ms, k8);
                }
                kt_prefetch_tile(cb, 0, B);
                kt_prefetch_tile(cb, 1, B);
                kt_opf_step(&opf);
                /* the statistics are a second stream, which kt_prefetch_tile does not cover */
                __builtin_prefetch(rc.st + (size_t)g * kt->stat_bytes + 512, 0, 3);
                __m256i d[2];
                dots(cx, cb, xw, d, P, B, 0);
                if (MS) finish_ms(kt, &rc, ms, g, d, ya, MS == 2);
                else {
                    const __m256 a = _mm256_set1_ps(in->at[t] * k8);
                    const __m256 f[2] = {_mm256_mul_ps(_mm256_cvtepi32_ps(d[0]), a), _mm256_mul_ps(_mm256_cvtepi32_ps(d[1]), a)};
                    finish_dot(kt, in, sc, &rc, g, f, ya);
                }
                dots(cx, cb, xw + xn, d, P, B, 1);
                if (MS) finish_ms(kt, &rc, ms, g + 1, d, ya, MS == 2);
                else {
                    const __m256 a = _mm256_set1_ps(in->at[t + 1] * k8);
                    const __m256 f[2] = {_mm256_mul_ps(_mm256_cvtepi32_ps(d[0]), a), _mm256_mul_ps(_mm256_cvtepi32_ps(d[1]), a)};
                    finish_dot(kt, in, sc, &rc, g + 1, f, ya);
                }
            }
            cb = kt->codes + (size_t)rt * kt->n_cblocks * bu;
        }
        for (; g < kt->n_groups; g++) {
            __m256 dot[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
            for (int32_t k = 0; k < ctpg; k++, t++) {
                const uint32_t *blk = cb + (size_t)(t >> 1) * bu;
                const int32_t *xw = in->xa + (size_t)t * xn;
                kt_prefetch_tile(blk, t, B);
                if (t & 1) kt_opf_step(&opf);
                __m256i d[2];
                if (t & 1) dots(cx, blk, xw, d, P, B, 1);
                else dots(cx, blk, xw, d, P, B, 0);
                const __m256 a = _mm256_set1_ps(in->at[t] * k8);
                dot[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d[0]), a, dot[0]);
                dot[1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d[1]), a, dot[1]);
            }
            finish_dot(kt, in, sc, &rc, g, dot, ya);
        }
        store_rows(kt, rt, y, ya);
    }
    kt_outliers_add(kt, in->xq, rt0, rt1, y);
}

T2I static void kt_matvec_i8_256(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    const int B = kt->wbits < 2 ? 2 : kt->wbits > 8 ? 8 : kt->wbits;
    kw_ctx cx;
    st_ctx sc;
    ms_stats m[1];
    kw_init(&cx, B);
    st_init(kt, &sc);
    const int ms_ok = kt->q2_aligned && kt->qs_bits >= 1 && kt->qs_bits <= 4 && kt->qz_bits >= 1 && kt->qz_bits <= 4;
    const int MS = !ms_ok ? 0 : kt->qs_bits == 4 || kt->qz_bits == 4 ? 2 : 1;
    if (ms_ok) ms_init(&m[0], kt->qs_bits, kt->qz_bits);
    if (kt->planar) { /* w3 only */
        if (MS == 2) matvec_b(kt, in, rt0, rt1, Y, &cx, &sc, m, 2, 1, 3);
        else if (MS == 1) matvec_b(kt, in, rt0, rt1, Y, &cx, &sc, m, 1, 1, 3);
        else matvec_b(kt, in, rt0, rt1, Y, &cx, &sc, m, 0, 1, 3);
    } else if (MS == 2) {
        KT_WBITS_DISPATCH(kt->wbits, matvec_b, kt, in, rt0, rt1, Y, &cx, &sc, m, 2, 0);
    } else if (MS == 1) {
        KT_WBITS_DISPATCH(kt->wbits, matvec_b, kt, in, rt0, rt1, Y, &cx, &sc, m, 1, 0);
    } else {
        KT_WBITS_DISPATCH(kt->wbits, matvec_b, kt, in, rt0, rt1, Y, &cx, &sc, m, 0, 0);
    }
}

/* ---- batches ----------------------------------------------------------- */

/* Half h of a code block as u8 codes in column order, rows 8*rh..: f[k]
 * holds columns 4k..4k+3 in its bytes (8-bit codes: the dwords as stored). */
T2I INLINE void tile_bytes(const uint32_t *blk, const int rh, const int B, const int h, __m256i f[4], const int P) {
    if (P) {
        for (int k = 0; k < 4; k++) f[k] = planar_q(blk, rh, h, k, 1);
        return;
    }
    if (B == 8) {
        for (int k = 0; k < 4; k++) f[k] = ld8(blk, 4 * h + k, rh);
        return;
    }
    const __m256i m = _mm256_set1_epi32((1 << B) - 1);
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        __m256i acc = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            const int j = 16 * h + 4 * k + c, d = kt_field_dword(B, j), s = kt_field_shift(B, j);
            const __m256i v = ld8(blk, d, rh);
            __m256i q;
            if (s + B <= 32) q = s ? _mm256_srli_epi32(v, s) : v;
            else q = _mm256_or_si256(_mm256_srli_epi32(v, s), _mm256_slli_epi32(ld8(blk, d + 1, rh), 32 - s));
            if (s + B != 32) q = _mm256_and_si256(q, m);
            acc = c ? _mm256_or_si256(acc, _mm256_slli_epi32(q, 8 * c)) : q;
        }
        f[k] = acc;
    }
}

/* Integer dots of the 8 rows' 16 codes f[4] (u8) with one input's 16 int8
 * activations xa[4] (columns 4k..4k+3 in dword k). */
T2I INLINE __m256i dot_bytes(const __m256i f[4], const int32_t *xa, const int B) {
#if I8_VNNI
    (void)B; /* vpdpbusd sums four u8 x s8 products in 32 bits: nothing saturates, 8-bit codes too */
    __m256i acc = _mm256_setzero_si256();
    for (int k = 0; k < 4; k++) acc = I8_DPBUSD(acc, f[k], _mm256_set1_epi32(xa[k]));
    return acc;
#endif
    const __m256i one = _mm256_set1_epi16(1);
    __m256i p[4];
    for (int k = 0; k < 4; k++) p[k] = _mm256_maddubs_epi16(f[k], _mm256_set1_epi32(xa[k]));
    if (B <= 5) /* |pair sum| <= 2 * 31 * 127: four fit in 16 bits */
        return _mm256_madd_epi16(_mm256_add_epi16(_mm256_add_epi16(p[0], p[1]), _mm256_add_epi16(p[2], p[3])), one);
    if (B == 6) /* <= 2 * 63 * 127: two */
        return _mm256_add_epi32(_mm256_madd_epi16(_mm256_add_epi16(p[0], p[1]), one),
                                _mm256_madd_epi16(_mm256_add_epi16(p[2], p[3]), one));
    return _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(p[0], one), _mm256_madd_epi16(p[1], one)),
                            _mm256_add_epi32(_mm256_madd_epi16(p[2], one), _mm256_madd_epi16(p[3], one)));
}

/* 8-bit codes: f = 16 hi + lo, each nibble's pair sums <= 2 * 15 * 127. */
T2I INLINE __m256i dot_nibbles(const __m256i lo[4], const __m256i hi[4], const int32_t *xa) {
    __m256i sl = _mm256_setzero_si256(), sh = _mm256_setzero_si256();
    for (int k = 0; k < 4; k++) {
        const __m256i x = _mm256_set1_epi32(xa[k]);
        sl = _mm256_add_epi16(sl, _mm256_maddubs_epi16(lo[k], x));
        sh = _mm256_add_epi16(sh, _mm256_maddubs_epi16(hi[k], x));
    }
    return _mm256_add_epi32(_mm256_madd_epi16(sl, _mm256_set1_epi16(1)), _mm256_madd_epi16(sh, _mm256_set1_epi16(16)));
}

/* Half h of a code block, rows 8*rh..: the u8 codes f (tile_bytes) and,
 * for 8-bit codes without VNNI, split into nibbles (f low, fh high; see
 * dot_nibbles). */
T2I INLINE void tile_codes(const uint32_t *blk, const int rh, const int B, const int h, const int P, __m256i f[4],
                           __m256i fh[4]) {
    tile_bytes(blk, rh, B, h, f, P);
    if (B == 8 && !I8_VNNI) {
        const __m256i nib = _mm256_set1_epi8(15);
        for (int q = 0; q < 4; q++) {
            fh[q] = _mm256_and_si256(_mm256_srli_epi16(f[q], 4), nib);
            f[q] = _mm256_and_si256(f[q], nib);
        }
    }
}

/* One input's integer dots with tile_codes' rows (xa: its 4 activation dwords). */
T2I INLINE __m256i tile_input_dot(const __m256i f[4], const __m256i fh[4], const int32_t *xa, const int B) {
    return B == 8 && !I8_VNNI ? dot_nibbles(f, fh, xa) : dot_bytes(f, xa, B);
}

/* One group that is one 16x16 tile (t = g, half h of its block), for all
 * n inputs: ya[j] += s * (a_j * dot - z * X_j), the arithmetic of the
 * general loop below (there through ga, a store and two loads more per
 * input and half) straight into the rows. Both 8-row halves per input
 * share the activation and statistic broadcasts; the codes not kept in
 * registers are read from L1 (one half at a time, each input's broadcasts
 * twice, was 4% slower on Zen 5 with AVX-VNNI and as fast with vpmaddubsw,
 * with a longer tail of slow processes: bench/results/zen5-batch-2026-12-07.md). */
T2I INLINE void group_tile(const spqr_ktensor *kt, const rt_ctx *rc, const st_ctx *sc, const kt_input *in, int32_t g,
                            float (*ya)[KT_R], const int B, const int h, const int P) {
    const int32_t n = in->n;
    const uint32_t *blk = kt_block(kt, rc->rt, g);
    __m256 s[2], z[2];
    stats8x2(kt, sc, rc, g, s, z);
    __m256i f[2][4] __attribute__((aligned(32))), fh[2][4] __attribute__((aligned(32)));
    tile_codes(blk, 0, B, h, P, f[0], fh[0]);
    tile_codes(blk, 1, B, h, P, f[1], fh[1]);
    const __m256 sz0 = _mm256_mul_ps(s[0], z[0]), sz1 = _mm256_mul_ps(s[1], z[1]);
    const int32_t *xa = in->xa + (size_t)g * n * KT_XOPS;
    const float *at = in->at + (size_t)g * n, *xs = in->xsg + (size_t)g * n;
    for (int32_t j = 0; j < n; j++) {
        const __m256i d0 = tile_input_dot(f[0], fh[0], xa + (size_t)j * KT_XOPS, B);
        const __m256i d1 = tile_input_dot(f[1], fh[1], xa + (size_t)j * KT_XOPS, B);
        const __m256 X = _mm256_set1_ps(xs[j]), a = _mm256_set1_ps(at[j]);
        const __m256 y0 = _mm256_fnmadd_ps(sz0, X, _mm256_load_ps(ya[j]));
        const __m256 y1 = _mm256_fnmadd_ps(sz1, X, _mm256_load_ps(ya[j] + 8));
        _mm256_store_ps(ya[j], _mm256_fmadd_ps(_mm256_mul_ps(s[0], a), _mm256_cvtepi32_ps(d0), y0));
        _mm256_store_ps(ya[j] + 8, _mm256_fmadd_ps(_mm256_mul_ps(s[1], a), _mm256_cvtepi32_ps(d1), y1));
    }
}

/* Batch worker (n <= 64 inputs): per row tile and group, each 16x16 code
 * tile is unpacked once and dotted with every input; statistics once per
 * (row tile, group); outliers row by row for all inputs from the
 * transposed inputs (kt_batch_outliers_store_256). */
T2I INLINE void matmul_b(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y,
                         const st_ctx *sc, const int P, const int B) {
    const int32_t ctpg = kt->ct_per_group, n = in->n;
    float ya[64][KT_R] __attribute__((aligned(32))), ga[64][KT_R] __attribute__((aligned(32)));
    for (int32_t rt = rt0; rt < rt1; rt++) {
        memset(ya, 0, sizeof(float) * KT_R * (size_t)n);
        const rt_ctx rc = rt_begin(kt, rt);
        if (ctpg == 1) { /* a group is one tile: each input's tile dot goes straight into its rows */
            for (int32_t g = 0; g < kt->n_groups; g++)
                if (g & 1) group_tile(kt, &rc, sc, in, g, ya, B, 1, P);
                else group_tile(kt, &rc, sc, in, g, ya, B, 0, P);
            kt_batch_outliers_store_256(kt, in, rt, n, ya, Y);
            continue;
        }
        for (int32_t g = 0; g < kt->n_groups; g++) {
            memset(ga, 0, sizeof(float) * KT_R * (size_t)n);
            for (int32_t k = 0; k < ctpg; k++) {
                const int32_t t = g * ctpg + k;
                const uint32_t *blk = kt_block(kt, rt, t);
                __m256i f[2][4], fh[2][4];
                for (int rh = 0; rh < 2; rh++) {
                    if (t & 1) tile_codes(blk, rh, B, 1, P, f[rh], fh[rh]);
                    else tile_codes(blk, rh, B, 0, P, f[rh], fh[rh]);
                }
                /* the n inputs' activations of tile t lie together (xa [tile][input][4]) */
                const int32_t *xa = in->xa + (size_t)t * n * KT_XOPS;
                const float *at = in->at + (size_t)t * n;
                for (int32_t j = 0; j < n; j++) {
                    const __m256 a = _mm256_set1_ps(at[j]);
                    for (int rh = 0; rh < 2; rh++) {
                        const __m256i d = tile_input_dot(f[rh], fh[rh], xa + (size_t)j * KT_XOPS, B);
                        _mm256_store_ps(ga[j] + 8 * rh, _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), a, _mm256_load_ps(ga[j] + 8 * rh)));
                    }
                }
            }
            __m256 s[2], z[2];
            stats8x2(kt, sc, &rc, g, s, z);
            for (int32_t j = 0; j < n; j++) {
                const __m256 X = _mm256_set1_ps(in->xsg[(size_t)g * in->n + j]);
                for (int h = 0; h < 2; h++) {
                    const __m256 u = _mm256_fnmadd_ps(z[h], X, _mm256_load_ps(ga[j] + 8 * h));
                    _mm256_store_ps(ya[j] + 8 * h, _mm256_fmadd_ps(s[h], u, _mm256_load_ps(ya[j] + 8 * h)));
                }
            }
        }
        kt_batch_outliers_store_256(kt, in, rt, n, ya, Y);
    }
}

T2I static void kt_matmul_i8_256(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    st_ctx sc;
    st_init(kt, &sc);
    if (kt->planar) matmul_b(kt, in, rt0, rt1, Y, &sc, 1, 3); /* w3 only */
    else KT_WBITS_DISPATCH(kt->wbits, matmul_b, kt, in, rt0, rt1, Y, &sc, 0);
}

/* ---- input preparation ------------------------------------------------- */

/* spqri_kt_prepare_i8_avx512 with two ymm per tile: xq = x permuted; per column
 * tile a = max|x| / 127, int8 = clamp(rint(x * (127 / max|x|)), +-127) (the
 * same fp32 operations per value as spqri_kt_prepare_i8_ref, so the same codes),
 * x^ = a * int8 back into xq, group sums of x^ in xs (a tree sum per tile:
 * fp32 rounding only). */
#if I8_VNNI == 0
T2I void spqri_kt_prepare_i8_avx2(const spqr_ktensor *kt, const float *x, float *xs, float *xq, int32_t *xa, float *at,
                            int32_t n, int words) {
    const int32_t cols = kt->cols, gs = kt->groupsize, ctpg = kt->ct_per_group;
    const int B = kt->wbits < 2 ? 2 : kt->wbits > 8 ? 8 : kt->wbits;
    int32_t c = 0;
    if (kt->perm)
        for (; c + 8 <= cols; c += 8)
            _mm256_storeu_ps(xq + c, _mm256_i32gather_ps(x, _mm256_loadu_si256((const __m256i *)(kt->perm + c)), 4));
    for (; c < cols; c++) xq[c] = x[kt->perm ? kt->perm[c] : c];
    /* words: per half, a vpshufb puts op k's two columns in bytes 2k, 2k+1
     * (0x80: none), vpmovsxbw widens them, vpmullw scales by 2^(8 - r) */
    __m128i wsh[2] = {_mm_setzero_si128(), _mm_setzero_si128()};
    __m256i wmul[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    if (words)
        for (int h = 0; h < 2; h++) {
            const kv_plan *p = &PLAN[B - 2][h];
            uint8_t ctl[16];
            int16_t mul[16];
            for (int k = 0; k < KT_XW; k++) {
                const kv_op *o = &p->op[k];
                const int has0 = k < p->nop && o->c0 >= 0, has1 = k < p->nop && o->c1 >= 0;
                ctl[2 * k] = (uint8_t)(has0 ? o->c0 : 0x80);
                ctl[2 * k + 1] = (uint8_t)(has1 ? o->c1 : 0x80);
                mul[2 * k] = (int16_t)(has0 ? 1 << (KW_SHIFT - o->r0) : 0);
                mul[2 * k + 1] = (int16_t)(has1 ? 1 << (KW_SHIFT - o->r1) : 0);
            }
            wsh[h] = _mm_loadu_si128((const __m128i *)ctl);
            wmul[h] = _mm256_loadu_si256((const __m256i *)mul);
        }
    const __m256 lim = _mm256_set1_ps(127.0f), nlim = _mm256_set1_ps(-127.0f), inf = _mm256_set1_ps(INFINITY);
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int32_t g = 0; g < kt->n_groups; g++) {
        float sum = 0.0f;
        for (int32_t k = 0; k < ctpg; k++) {
            const int32_t t = g * ctpg + k, c0 = g * gs + k * KT_C;
            int32_t nv = cols - c0 < gs - k * KT_C ? cols - c0 : gs - k * KT_C;
            if (nv > KT_C) nv = KT_C;
            if (nv < 0) nv = 0;
            const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nv), iota);
            const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nv - 8), iota);
            const float *src = xq + (nv > 0 ? c0 : 0);
            const __m256 v0 = _mm256_maskload_ps(src, m0), v1 = _mm256_maskload_ps(src + 8, m1);
            const __m256 a0 = _mm256_and_ps(v0, absm), a1 = _mm256_and_ps(v1, absm);
            /* |v| < inf is false for inf and NaN */
            const int finite = _mm256_movemask_ps(_mm256_and_ps(_mm256_cmp_ps(a0, inf, _CMP_LT_OQ),
                                                                _mm256_cmp_ps(a1, inf, _CMP_LT_OQ))) == 0xff;
            float m = NAN;
            if (finite) {
                __m128 r = _mm_max_ps(_mm256_castps256_ps128(_mm256_max_ps(a0, a1)), _mm256_extractf128_ps(_mm256_max_ps(a0, a1), 1));
                r = _mm_max_ps(r, _mm_movehl_ps(r, r));
                r = _mm_max_ss(r, _mm_movehdup_ps(r));
                m = _mm_cvtss_f32(r);
            }
            const float a = m / 127.0f, inv = m > 0.0f ? 127.0f / m : 0.0f;
            const __m256 vi = _mm256_set1_ps(inv), zero = _mm256_setzero_ps();
            __m256 q0 = _mm256_round_ps(_mm256_mul_ps(v0, vi), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            __m256 q1 = _mm256_round_ps(_mm256_mul_ps(v1, vi), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            q0 = _mm256_add_ps(_mm256_max_ps(_mm256_min_ps(q0, lim), nlim), zero); /* -0 -> +0, as (float)int8 */
            q1 = _mm256_add_ps(_mm256_max_ps(_mm256_min_ps(q1, lim), nlim), zero);
            if (!finite) q0 = q1 = zero;
            /* 16 int8 in column order: packs works per 128-bit lane, permute4x64 restores the order */
            const __m256i p16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(_mm256_cvtps_epi32(q0), _mm256_cvtps_epi32(q1)), 0xD8);
            const __m128i b8 = _mm_packs_epi16(_mm256_castsi256_si128(p16), _mm256_extracti128_si256(p16, 1));
            if (words) {
                const __m256i w = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(_mm_shuffle_epi8(b8, wsh[t & 1])), wmul[t & 1]);
                _mm256_storeu_si256((__m256i *)(xa + (size_t)t * KT_XW), w);
            } else {
                _mm_storeu_si128((__m128i *)(xa + (size_t)t * n * KT_XOPS), b8);
            }
            at[(size_t)t * n] = a;
            const __m256 va = _mm256_set1_ps(a);
            const __m256 h0 = _mm256_mul_ps(va, q0), h1 = _mm256_mul_ps(va, q1);
            if (nv > 0) {
                _mm256_maskstore_ps(xq + c0, m0, h0);
                _mm256_maskstore_ps(xq + c0 + 8, m1, h1);
                const __m256 hs = _mm256_add_ps(_mm256_and_ps(h0, _mm256_castsi256_ps(m0)), _mm256_and_ps(h1, _mm256_castsi256_ps(m1)));
                __m128 r = _mm_add_ps(_mm256_castps256_ps128(hs), _mm256_extractf128_ps(hs, 1));
                r = _mm_add_ps(r, _mm_movehl_ps(r, r));
                r = _mm_add_ss(r, _mm_movehdup_ps(r));
                sum += _mm_cvtss_f32(r);
            }
        }
        xs[g] = sum;
    }
}
#endif /* I8_VNNI == 0 */
#endif /* x86 */
