/* AVX-512 path. One zmm holds the 16 rows of a row tile. A code tile is
 * read as bit-plane masks: for column c and bit p, acc_p += x_c on the rows
 * whose code has bit p set (one masked add, no unpacking); the group's
 * dot product q.x is sum_p 2^p acc_p, and the group adds
 * s * (q.x - z * sum(x)) to the row sums, with s and z decoded in
 * registers from the stored 3-bit codes and fp16 second-level pairs. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <string.h>

#include "format/tensor.h"
#include "kernels/spqr_kernel.h"

#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

/* One first-level statistic of 16 rows (scale or zero), bit-exact with
 * spqr_stat_dq / spqr_fp16_to_fp32. */
T512 INLINE __m512 stat16(const spqr_ktensor *kt, const uint8_t *blk, int bits, const uint16_t *pairs, int32_t rt,
                          int32_t g) {
    if (!bits) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
    __m512i code;
    if (bits <= 4) {
        uint64_t v;
        memcpy(&v, blk, 8); /* the stats array has 16 bytes of slack at its end */
        const __m512i b = _mm512_set1_epi64((long long)v);
        /* lane shifts bits * i: a constant per bits, so the compiler folds it */
        __m512i sh;
        switch (bits) {
        case 1: sh = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7); break;
        case 2: sh = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14); break;
        case 3: sh = _mm512_setr_epi64(0, 3, 6, 9, 12, 15, 18, 21); break;
        default: sh = _mm512_setr_epi64(0, 4, 8, 12, 16, 20, 24, 28); break;
        }
        const __m512i lo = _mm512_srlv_epi64(b, sh);
        const __m512i hi = _mm512_srlv_epi64(_mm512_srli_epi64(b, 8 * bits), sh);
        code = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(lo)), _mm512_cvtepi64_epi32(hi), 1);
        code = _mm512_and_si512(code, _mm512_set1_epi32((1 << bits) - 1));
    } else {
        int32_t c[KT_R];
        for (int i = 0; i < KT_R; i++) c[i] = (int32_t)spqr_bits_get(blk, (uint64_t)i, bits);
        code = _mm512_loadu_si512(c);
    }
    const __m512 cf = _mm512_cvtepi32_ps(code);
    __m512 s2, z2;
    if (kt->q2_aligned) {
        const uint16_t *p = pairs + ((size_t)(rt * KT_R / kt->qq_groupsize) * kt->n_groups + g) * 2;
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

T512 INLINE void stats512(const spqr_ktensor *kt, int32_t rt, int32_t g, __m512 *s, __m512 *z) {
    const uint8_t *blk = kt->stats + ((size_t)rt * kt->n_groups + g) * kt->stat_bytes;
    *s = stat16(kt, blk, kt->qs_bits, kt->s_pair, rt, g);
    *z = stat16(kt, blk + kt->sb_bytes, kt->qz_bits, kt->z_pair, rt, g);
}

/* Code of tile row i, column cc of a code tile. */
INLINE uint32_t tile_code(const uint16_t *m, int B, int i, int cc) {
    uint32_t q = 0;
    for (int p = 0; p < B; p++) q |= (uint32_t)((m[cc * B + p] >> i) & 1u) << p;
    return q;
}

T512 INLINE void store_rows(const spqr_ktensor *kt, int32_t rt, float *y, __m512 v) {
    const int32_t left = kt->rows - rt * KT_R;
    if (left >= KT_R) _mm512_storeu_ps(y + rt * KT_R, v);
    else _mm512_mask_storeu_ps(y + rt * KT_R, (__mmask16)((1u << left) - 1u), v);
}

T512 INLINE void matvec_b(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *y, const int B) {
    const int32_t gs = kt->groupsize, ctpg = kt->ct_per_group;
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int32_t rt = rt0; rt < rt1; rt++) {
        const uint16_t *m = kt->codes + (size_t)rt * kt->n_ctiles * kt->tile_u16;
        const float *xp = in->xp;
        int32_t o = kt->o_ptr[rt];
        const int32_t oend = kt->o_ptr[rt + 1];
        __m512 yacc = _mm512_setzero_ps();
        float corr[KT_R] = {0};
        for (int32_t g = 0; g < kt->n_groups; g++) {
            const uint16_t *mg = m;
            __m512 a0[8], a1[8];
            for (int p = 0; p < B; p++) a0[p] = a1[p] = _mm512_setzero_ps();
            for (int32_t k = 0; k < ctpg; k++) {
                for (int c = 0; c < KT_C; c += 2) {
                    const __m512 x0 = _mm512_set1_ps(xp[c]), x1 = _mm512_set1_ps(xp[c + 1]);
                    for (int p = 0; p < B; p++) {
                        /* even columns on the add pipes, odd ones on the FMA pipes */
                        a0[p] = _mm512_mask_add_ps(a0[p], _load_mask16((__mmask16 *)&m[c * B + p]), a0[p], x0);
                        a1[p] = _mm512_mask3_fmadd_ps(x1, one, a1[p], _load_mask16((__mmask16 *)&m[(c + 1) * B + p]));
                    }
                }
                m += KT_C * B;
                xp += KT_C;
            }
            __m512 dot = _mm512_add_ps(a0[B - 1], a1[B - 1]);
            for (int p = B - 2; p >= 0; p--)
                dot = _mm512_fmadd_ps(dot, _mm512_set1_ps(2.0f), _mm512_add_ps(a0[p], a1[p]));
            __m512 s, z;
            stats512(kt, rt, g, &s, &z);
            yacc = _mm512_fmadd_ps(s, _mm512_fnmadd_ps(z, _mm512_set1_ps(in->xs[g]), dot), yacc);
            /* lanes are picked with a permute, not through memory: a zmm store
             * followed by scalar reloads stalls store forwarding */
            while (o < oend && (int32_t)kt->o_col[o] < (g + 1) * gs) {
                const int32_t c = kt->o_col[o], i = kt->o_row[o], off = c - g * gs;
                const __m512i idx = _mm512_set1_epi32(i);
                const float si = _mm512_cvtss_f32(_mm512_permutexvar_ps(idx, s));
                const float zi = _mm512_cvtss_f32(_mm512_permutexvar_ps(idx, z));
                const uint32_t q = tile_code(mg + (size_t)(off / KT_C) * KT_C * B, B, i, off % KT_C);
                corr[i] += (_cvtsh_ss(kt->o_val[o]) - spqr_weight_dq(si, q, zi)) * in->xq[c];
                o++;
            }
        }
        store_rows(kt, rt, y, _mm512_add_ps(yacc, _mm512_loadu_ps(corr)));
    }
}

T512 void kt_matvec_avx512(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    switch (kt->wbits) {
    case 2: matvec_b(kt, in, rt0, rt1, Y, 2); break;
    case 3: matvec_b(kt, in, rt0, rt1, Y, 3); break;
    case 4: matvec_b(kt, in, rt0, rt1, Y, 4); break;
    case 5: matvec_b(kt, in, rt0, rt1, Y, 5); break;
    case 6: matvec_b(kt, in, rt0, rt1, Y, 6); break;
    case 7: matvec_b(kt, in, rt0, rt1, Y, 7); break;
    default: matvec_b(kt, in, rt0, rt1, Y, 8); break;
    }
}

/* Batch: each code tile is widened once to 16 fp32 column vectors and
 * applied to all n (<= 64) inputs. */
T512 INLINE void matmul_b(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y, const int B) {
    const int32_t gs = kt->groupsize, ctpg = kt->ct_per_group, n = in->n;
    __m512 ya[64], ga[64];
    for (int32_t rt = rt0; rt < rt1; rt++) {
        const uint16_t *m = kt->codes + (size_t)rt * kt->n_ctiles * kt->tile_u16;
        for (int32_t j = 0; j < n; j++) ya[j] = _mm512_setzero_ps();
        for (int32_t g = 0; g < kt->n_groups; g++) {
            for (int32_t j = 0; j < n; j++) ga[j] = _mm512_setzero_ps();
            for (int32_t k = 0; k < ctpg; k++) {
                __m512 qf[KT_C];
                for (int c = 0; c < KT_C; c++) {
                    __m512i v = _mm512_setzero_si512();
                    for (int p = 0; p < B; p++) v = _mm512_mask_or_epi32(v, (__mmask16)m[c * B + p], v, _mm512_set1_epi32(1 << p));
                    qf[c] = _mm512_cvtepi32_ps(v);
                }
                const size_t col0 = ((size_t)g * ctpg + k) * KT_C;
                for (int32_t j = 0; j < n; j++) {
                    const float *x = in->xp + (size_t)j * kt->padcols + col0;
                    __m512 a = ga[j], b = _mm512_setzero_ps();
                    for (int c = 0; c < KT_C; c += 2) {
                        a = _mm512_fmadd_ps(qf[c], _mm512_set1_ps(x[c]), a);
                        b = _mm512_fmadd_ps(qf[c + 1], _mm512_set1_ps(x[c + 1]), b);
                    }
                    ga[j] = _mm512_add_ps(a, b);
                }
                m += KT_C * B;
            }
            __m512 s, z;
            stats512(kt, rt, g, &s, &z);
            for (int32_t j = 0; j < n; j++)
                ya[j] = _mm512_fmadd_ps(s, _mm512_fnmadd_ps(z, _mm512_set1_ps(in->xs[(size_t)j * kt->n_groups + g]), ga[j]), ya[j]);
        }
        int32_t gcur = -1;
        float sa[KT_R], za[KT_R], corr[64][KT_R];
        const int32_t o0 = kt->o_ptr[rt], o1 = kt->o_ptr[rt + 1];
        if (o1 > o0) {
            memset(corr, 0, sizeof corr);
            const uint16_t *mt = kt->codes + (size_t)rt * kt->n_ctiles * kt->tile_u16;
            for (int32_t o = o0; o < o1; o++) {
                const int32_t c = kt->o_col[o], i = kt->o_row[o], g = c / gs, off = c - g * gs;
                if (g != gcur) {
                    __m512 s, z;
                    stats512(kt, rt, g, &s, &z);
                    _mm512_storeu_ps(sa, s);
                    _mm512_storeu_ps(za, z);
                    gcur = g;
                }
                const uint32_t q = tile_code(mt + ((size_t)g * ctpg + off / KT_C) * KT_C * B, B, i, off % KT_C);
                const float d = _cvtsh_ss(kt->o_val[o]) - spqr_weight_dq(sa[i], q, za[i]);
                for (int32_t j = 0; j < n; j++) corr[j][i] += d * in->xq[(size_t)j * kt->cols + c];
            }
            for (int32_t j = 0; j < n; j++) ya[j] = _mm512_add_ps(ya[j], _mm512_loadu_ps(corr[j]));
        }
        for (int32_t j = 0; j < n; j++) store_rows(kt, rt, Y + (size_t)j * kt->rows, ya[j]);
    }
}

T512 void kt_matmul_avx512(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    switch (kt->wbits) {
    case 2: matmul_b(kt, in, rt0, rt1, Y, 2); break;
    case 3: matmul_b(kt, in, rt0, rt1, Y, 3); break;
    case 4: matmul_b(kt, in, rt0, rt1, Y, 4); break;
    case 5: matmul_b(kt, in, rt0, rt1, Y, 5); break;
    case 6: matmul_b(kt, in, rt0, rt1, Y, 6); break;
    case 7: matmul_b(kt, in, rt0, rt1, Y, 7); break;
    default: matmul_b(kt, in, rt0, rt1, Y, 8); break;
    }
}
#else
#include "kernels/spqr_kernel.h"
void kt_matvec_avx512(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    kt_matmul_scalar(kt, in, rt0, rt1, Y);
}
void kt_matmul_avx512(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    kt_matmul_scalar(kt, in, rt0, rt1, Y);
}
#endif
