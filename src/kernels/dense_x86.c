/* x86 dense dot products of the linear layers (AVX2 + F16C + FMA, AVX-512),
 * behind the dense ops tables spqri_dense_ops_avx2 and spqri_dense_ops_avx512. The dense
 * fp16 matvec is the decode hot path and memory-bound: these only need to
 * convert and multiply-add as fast as the weights stream in. One dot
 * product per ISA, instantiated per element kind (fp32, fp16, bf16: only
 * the load-and-widen differs); each carries its target attribute and is
 * picked at run time (kernels/cpu.h). On other architectures the tables
 * hold the scalar kernels and the detector never picks them. */
#include "kernels/dense.h"
#include "kernels/kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define T2 __attribute__((target("avx2,f16c,fma")))
#define T5 __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline))

enum { K_F32 = 0, K_F16 = 1, K_BF16 = 2 }; /* = spqr_linear_kind, the index of spqr_dense_ops.dot */


/* ---- AVX2 + F16C + FMA ---- */

T2 INLINE __m256 ld8(const void *w, int32_t i, const int k) {
    if (k == K_F32) return _mm256_loadu_ps((const float *)w + i);
    const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    if (k == K_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

T2 static float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Four accumulators: one FMA chain would wait on the FMA latency. */
T2 INLINE float dot_avx2(const void *w, const float *x, int32_t n, const int k) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int32_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(ld8(w, i, k), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(ld8(w, i + 8, k), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(ld8(w, i + 16, k), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(ld8(w, i + 24, k), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(ld8(w, i, k), _mm256_loadu_ps(x + i), a0);
    float acc = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) acc += dense_elem(w, i, k) * x[i];
    return acc;
}

T2 static float dot_f32_avx2(const void *w, const float *x, int32_t n) { return dot_avx2(w, x, n, K_F32); }
T2 static float dot_f16_avx2(const void *w, const float *x, int32_t n) { return dot_avx2(w, x, n, K_F16); }
T2 static float dot_bf16_avx2(const void *w, const float *x, int32_t n) { return dot_avx2(w, x, n, K_BF16); }

/* Two fp16 rows (stride apart), each with exactly dot_avx2's arithmetic
 * (the same four accumulators in the same order, so the same bits), x
 * loaded once for both: 8 accumulators, 4 x chunks and a widened W chunk
 * fit the 16 registers, where four rows' 16 accumulators would not. */
T2 INLINE void dot2_f16_avx2(const uint16_t *w, size_t stride, const float *x, int32_t n, float out[2]) {
    __m256 a[2][4];
    for (int r = 0; r < 2; r++) a[r][0] = a[r][1] = a[r][2] = a[r][3] = _mm256_setzero_ps();
    int32_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
        const __m256 x2 = _mm256_loadu_ps(x + i + 16), x3 = _mm256_loadu_ps(x + i + 24);
        for (int r = 0; r < 2; r++) {
            const uint16_t *wr = w + (size_t)r * stride;
            a[r][0] = _mm256_fmadd_ps(ld8(wr, i, K_F16), x0, a[r][0]);
            a[r][1] = _mm256_fmadd_ps(ld8(wr, i + 8, K_F16), x1, a[r][1]);
            a[r][2] = _mm256_fmadd_ps(ld8(wr, i + 16, K_F16), x2, a[r][2]);
            a[r][3] = _mm256_fmadd_ps(ld8(wr, i + 24, K_F16), x3, a[r][3]);
        }
    }
    for (; i + 8 <= n; i += 8)
        for (int r = 0; r < 2; r++) a[r][0] = _mm256_fmadd_ps(ld8(w + (size_t)r * stride, i, K_F16), _mm256_loadu_ps(x + i), a[r][0]);
    for (int r = 0; r < 2; r++) {
        float acc = hsum256(_mm256_add_ps(_mm256_add_ps(a[r][0], a[r][1]), _mm256_add_ps(a[r][2], a[r][3])));
        for (int32_t j = i; j < n; j++) acc += dense_elem(w + (size_t)r * stride, j, K_F16) * x[j];
        out[r] = acc;
    }
}

/* dot4 for AVX2: rows 0-1, then 2-3. With long rows x lives in L2, and
 * reading it once per row held the 4096x11008 fp16 matvec to 21-23 GB/s
 * against 30-42 for the 4096-column shapes (bench-kernel, AVX2 forced). */
T2 static void dot4_f16_avx2(const uint16_t *w, size_t stride, const float *x, int32_t n, float out[4]) {
    dot2_f16_avx2(w, stride, x, n, out);
    dot2_f16_avx2(w + 2 * stride, stride, x, n, out + 2);
}

T2 static void widen_f16_avx2(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, ld8(src, (int32_t)i, K_F16));
    for (; i < n; i++) dst[i] = dense_h2f(src[i]);
}

/* VCVTPS2PH with an immediate round-to-nearest-even: spqr_fp32_to_fp16's bits
 * (overflow to inf, subnormals kept, NaN quieted with its top payload bits) */
T2 static void narrow_f16_avx2(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    dense_narrow_f16_scalar(src + i, dst + i, n - i);
}

/* rows_axpy: a 32-column block of o in registers while a block of rows
 * passes (blocks of <= 16 KB of rows, in L1 for the hd / 32 passes), even
 * and odd rows into two sets of four accumulators (one set would wait on
 * the FMA latency); the columns past the last block of 8 in scalar. */
T2 INLINE void axpy_block_avx2(const float *a, const char *V, int32_t n, int32_t hd, float *o, const int k) {
    const size_t rs = (size_t)hd * (k == K_F32 ? 4 : 2); /* bytes per row */
    int32_t j = 0;
    for (; j + 32 <= hd; j += 32) {
        __m256 e[4], d[4];
        for (int u = 0; u < 4; u++) e[u] = _mm256_loadu_ps(o + j + 8 * u), d[u] = _mm256_setzero_ps();
        int32_t i = 0;
        for (; i + 2 <= n; i += 2) {
            const char *r0 = V + (size_t)i * rs, *r1 = r0 + rs;
            const __m256 a0 = _mm256_broadcast_ss(a + i), a1 = _mm256_broadcast_ss(a + i + 1);
            for (int u = 0; u < 4; u++) {
                e[u] = _mm256_fmadd_ps(a0, ld8(r0, j + 8 * u, k), e[u]);
                d[u] = _mm256_fmadd_ps(a1, ld8(r1, j + 8 * u, k), d[u]);
            }
        }
        if (i < n) {
            const __m256 a0 = _mm256_broadcast_ss(a + i);
            for (int u = 0; u < 4; u++) e[u] = _mm256_fmadd_ps(a0, ld8(V + (size_t)i * rs, j + 8 * u, k), e[u]);
        }
        for (int u = 0; u < 4; u++) _mm256_storeu_ps(o + j + 8 * u, _mm256_add_ps(e[u], d[u]));
    }
    for (; j + 8 <= hd; j += 8) {
        __m256 e = _mm256_loadu_ps(o + j);
        for (int32_t i = 0; i < n; i++)
            e = _mm256_fmadd_ps(_mm256_broadcast_ss(a + i), ld8(V + (size_t)i * rs, j, k), e);
        _mm256_storeu_ps(o + j, e);
    }
    for (; j < hd; j++)
        for (int32_t i = 0; i < n; i++) o[j] += a[i] * dense_elem(V, i * hd + j, k);
}
T2 INLINE void axpy_avx2(const float *a, const void *V, int32_t n, int32_t hd, float *o, const int k) {
    const size_t rs = (size_t)hd * (k == K_F32 ? 4 : 2);
    const int32_t blk = rs * 8 < 16384 ? (int32_t)(16384 / rs) : 8;
    for (int32_t i0 = 0; i0 < n; i0 += blk)
        axpy_block_avx2(a + i0, (const char *)V + (size_t)i0 * rs, n - i0 < blk ? n - i0 : blk, hd, o, k);
}
T2 static void axpy_f32_avx2(const float *a, const void *V, int32_t n, int32_t hd, float *o) {
    axpy_avx2(a, V, n, hd, o, K_F32);
}
T2 static void axpy_f16_avx2(const float *a, const void *V, int32_t n, int32_t hd, float *o) {
    axpy_avx2(a, V, n, hd, o, K_F16);
}

/* ---- AVX-512 ---- */

T5 INLINE __m512 ld16(const void *w, int32_t i, const int k) {
    if (k == K_F32) return _mm512_loadu_ps((const float *)w + i);
    const __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + i));
    if (k == K_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

T5 INLINE float dot_avx512(const void *w, const float *x, int32_t n, const int k) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int32_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(ld16(w, i, k), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(ld16(w, i + 16, k), _mm512_loadu_ps(x + i + 16), a1);
        a2 = _mm512_fmadd_ps(ld16(w, i + 32, k), _mm512_loadu_ps(x + i + 32), a2);
        a3 = _mm512_fmadd_ps(ld16(w, i + 48, k), _mm512_loadu_ps(x + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(ld16(w, i, k), _mm512_loadu_ps(x + i), a0);
    float acc = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    for (; i < n; i++) acc += dense_elem(w, i, k) * x[i];
    return acc;
}

T5 static float dot_f32_avx512(const void *w, const float *x, int32_t n) { return dot_avx512(w, x, n, K_F32); }
T5 static float dot_f16_avx512(const void *w, const float *x, int32_t n) { return dot_avx512(w, x, n, K_F16); }
T5 static float dot_bf16_avx512(const void *w, const float *x, int32_t n) { return dot_avx512(w, x, n, K_BF16); }

/* Four fp16 rows at once, each with exactly dot_avx512's arithmetic (so the
 * same bits): x is loaded once for four rows. With long rows x spills out
 * of L1 (11008 inputs = 44 KB of fp32), and reading it from L2 once per
 * row held the 4096x11008 fp16 matvec to ~60% of the rate of the
 * 4096-column shapes. out[r] = row r's dot. */
T5 static void dot4_f16_avx512(const uint16_t *w, size_t stride, const float *x, int32_t n, float out[4]) {
    __m512 a[4][4];
    for (int r = 0; r < 4; r++) a[r][0] = a[r][1] = a[r][2] = a[r][3] = _mm512_setzero_ps();
    int32_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
        const __m512 x2 = _mm512_loadu_ps(x + i + 32), x3 = _mm512_loadu_ps(x + i + 48);
        for (int r = 0; r < 4; r++) {
            const uint16_t *wr = w + (size_t)r * stride;
            a[r][0] = _mm512_fmadd_ps(ld16(wr, i, K_F16), x0, a[r][0]);
            a[r][1] = _mm512_fmadd_ps(ld16(wr, i + 16, K_F16), x1, a[r][1]);
            a[r][2] = _mm512_fmadd_ps(ld16(wr, i + 32, K_F16), x2, a[r][2]);
            a[r][3] = _mm512_fmadd_ps(ld16(wr, i + 48, K_F16), x3, a[r][3]);
        }
    }
    for (; i + 16 <= n; i += 16)
        for (int r = 0; r < 4; r++)
            a[r][0] = _mm512_fmadd_ps(ld16(w + (size_t)r * stride, i, K_F16), _mm512_loadu_ps(x + i), a[r][0]);
    for (int r = 0; r < 4; r++) {
        float acc = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[r][0], a[r][1]), _mm512_add_ps(a[r][2], a[r][3])));
        for (int32_t j = i; j < n; j++) acc += dense_h2f(w[(size_t)r * stride + j]) * x[j];
        out[r] = acc;
    }
}

T5 static void widen_f16_avx512(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, ld16(src, (int32_t)i, K_F16));
    for (; i < n; i++) dst[i] = dense_h2f(src[i]);
}

T5 static void narrow_f16_avx512(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    dense_narrow_f16_scalar(src + i, dst + i, n - i);
}

/* One register tile of a gemm_f16 at a fixed shape: rows [0, R) of w
 * against inputs [0, T) of x over K columns (both rows K apart), dots to
 * y[t * ldy + r]. A path instantiates its tile per shape with GEMM_TILE_FN. */
typedef void (*gemm_tile_fn)(const uint16_t *w, const float *x, int32_t K, float *y, size_t ldy);
#define GEMM_TILE_FN(attr, tile, name, R, T)                                                   \
    attr static void name(const uint16_t *w, const float *x, int32_t K, float *y, size_t ldy) { \
        tile(w, (size_t)K, x, (size_t)K, K, y, ldy, R, T);                                     \
    }

/* The gemm_f16 contract over one path's tiles, GR rows x GT inputs each:
 * Y[t][r] = sum_k X[t][k] W[r][k] for rows [0, nr) of W (fp16, row stride
 * K) and n inputs X [n][K]; Y row stride ldy. Inputs outer: GT inputs stay
 * in L2 while the nr rows stream past them (rows outer would read all of X
 * per tile of rows). tiles[t] is the GR x t tile (t = 1..GT); tiles[0] the
 * 1 x 1 tile for the last < GR rows. */
static void gemm_drive(const gemm_tile_fn *tiles, int GR, int GT, const uint16_t *W, int32_t nr, const float *X, int32_t n,
                       int32_t K, float *Y, size_t ldy) {
    for (int32_t t = 0, T; t < n; t += T) {
        T = n - t < GT ? n - t : GT;
        if (GT > 2 && n - t == GT + 1) T = GT - 1; /* two narrower tiles, not a last 1-input one */
        const float *x = X + (size_t)t * K;
        for (int32_t r = 0; r < nr; r += GR) {
            const int R = nr - r < GR ? nr - r : GR;
            const uint16_t *w = W + (size_t)r * K;
            float *y = Y + (size_t)t * ldy + r;
            if (R == GR) tiles[T](w, x, K, y, ldy);
            else
                for (int i = 0; i < R; i++)
                    for (int j = 0; j < T; j++) tiles[0](w + (size_t)i * K, x + (size_t)j * K, K, y + (size_t)j * ldy + i, ldy);
        }
    }
}

/* Register tile of the fp16 GEMM: R rows x T inputs of zmm accumulators
 * over the shared inputs (dot-product form: W rows and X rows are both
 * contiguous along k), each W chunk widened once per k step for T inputs,
 * each X chunk loaded once for R rows: R*T FMAs per R+T loads (4x6: 24 per
 * 10, 29 zmm registers; 95-105 GFLOP/s per CPU-second here, OpenBLAS
 * sgemm 50-65 on the widened tiles). The last k < 16 columns by masked loads. */
#define G_R 4
#define G_T 6
T5 INLINE void gemm_tile(const uint16_t *w, size_t ldw, const float *x, size_t ldx, int32_t K, float *y, size_t ldy,
                         const int R, const int T) {
    __m512 a[G_R][G_T];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) a[r][t] = _mm512_setzero_ps();
    int32_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 wv[G_R];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) wv[r] = ld16(w + (size_t)r * ldw, k, K_F16);
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) {
            const __m512 xv = _mm512_loadu_ps(x + (size_t)t * ldx + k);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) a[r][t] = _mm512_fmadd_ps(wv[r], xv, a[r][t]);
        }
    }
    if (k < K) {
        const __mmask16 m = (__mmask16)((1u << (K - k)) - 1u);
        __m512 wv[G_R];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const uint16_t *wr = w + (size_t)r * ldw + k;
            float tmp[16] = {0};
            for (int32_t j = 0; j < K - k; j++) tmp[j] = dense_h2f(wr[j]);
            wv[r] = _mm512_loadu_ps(tmp);
        }
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) {
            const __m512 xv = _mm512_maskz_loadu_ps(m, x + (size_t)t * ldx + k);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) a[r][t] = _mm512_fmadd_ps(wv[r], xv, a[r][t]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) y[(size_t)t * ldy + r] = _mm512_reduce_add_ps(a[r][t]);
}

/* 4 x 6 zmm tiles: 6 FLOPs per W byte with 6 input rows (96-264 KB of
 * fp32) in L2. */
GEMM_TILE_FN(T5, gemm_tile, g5_1x1, 1, 1)
GEMM_TILE_FN(T5, gemm_tile, g5_4x1, G_R, 1)
GEMM_TILE_FN(T5, gemm_tile, g5_4x2, G_R, 2)
GEMM_TILE_FN(T5, gemm_tile, g5_4x3, G_R, 3)
GEMM_TILE_FN(T5, gemm_tile, g5_4x4, G_R, 4)
GEMM_TILE_FN(T5, gemm_tile, g5_4x5, G_R, 5)
GEMM_TILE_FN(T5, gemm_tile, g5_4x6, G_R, G_T)
static void gemm_f16_avx512(const uint16_t *W, int32_t nr, const float *X, int32_t n, int32_t K, float *Y, size_t ldy) {
    static const gemm_tile_fn tiles[G_T + 1] = {g5_1x1, g5_4x1, g5_4x2, g5_4x3, g5_4x4, g5_4x5, g5_4x6};
    gemm_drive(tiles, G_R, G_T, W, nr, X, n, K, Y, ldy);
}

/* The AVX2 twin of gemm_tile: 4 rows x 3 inputs of ymm accumulators (12),
 * with the 3 X chunks loaded first and each W chunk widened into the last
 * register just before its 3 FMAs: the 16 registers, and 4 x 16 + 3 x 32
 * bytes loaded per 12 FMAs (3 rows x 4 inputs: 3 x 16 + 4 x 32, 5% slower
 * in L1; the loads set the pace here). The last k < 8 columns through a
 * zero-padded stack copy. */
#define G2_R 4
#define G2_T 3
T2 INLINE void gemm_tile8(const uint16_t *w, size_t ldw, const float *x, size_t ldx, int32_t K, float *y, size_t ldy,
                          const int R, const int T) {
    __m256 a[G2_R][G2_T];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int t = 0; t < T; t++) a[r][t] = _mm256_setzero_ps();
    int32_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 xv[G2_T];
#pragma GCC unroll 3
        for (int t = 0; t < T; t++) xv[t] = _mm256_loadu_ps(x + (size_t)t * ldx + k);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const __m256 wv = ld8(w + (size_t)r * ldw, k, K_F16);
#pragma GCC unroll 3
            for (int t = 0; t < T; t++) a[r][t] = _mm256_fmadd_ps(wv, xv[t], a[r][t]);
        }
    }
    if (k < K) {
        __m256 xv[G2_T];
#pragma GCC unroll 3
        for (int t = 0; t < T; t++) {
            float tmp[8] = {0};
            for (int32_t j = 0; j < K - k; j++) tmp[j] = x[(size_t)t * ldx + k + j];
            xv[t] = _mm256_loadu_ps(tmp);
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            float tmp[8] = {0};
            for (int32_t j = 0; j < K - k; j++) tmp[j] = dense_h2f(w[(size_t)r * ldw + k + j]);
            const __m256 wv = _mm256_loadu_ps(tmp);
#pragma GCC unroll 3
            for (int t = 0; t < T; t++) a[r][t] = _mm256_fmadd_ps(wv, xv[t], a[r][t]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int t = 0; t < T; t++) y[(size_t)t * ldy + r] = hsum256(a[r][t]);
}

GEMM_TILE_FN(T2, gemm_tile8, g2_1x1, 1, 1)
GEMM_TILE_FN(T2, gemm_tile8, g2_4x1, G2_R, 1)
GEMM_TILE_FN(T2, gemm_tile8, g2_4x2, G2_R, 2)
GEMM_TILE_FN(T2, gemm_tile8, g2_4x3, G2_R, G2_T)
static void gemm_f16_avx2(const uint16_t *W, int32_t nr, const float *X, int32_t n, int32_t K, float *Y, size_t ldy) {
    static const gemm_tile_fn tiles[G2_T + 1] = {g2_1x1, g2_4x1, g2_4x2, g2_4x3};
    gemm_drive(tiles, G2_R, G2_T, W, nr, X, n, K, Y, ldy);
}

const spqr_dense_ops spqri_dense_ops_avx2 = {"avx2+f16c",    spqr_cpu_has_avx2, {dot_f32_avx2, dot_f16_avx2, dot_bf16_avx2},
                                       dot4_f16_avx2,  widen_f16_avx2,    dense_widen_bf16_scalar, narrow_f16_avx2,
                                       {axpy_f32_avx2, axpy_f16_avx2}, gemm_f16_avx2};
const spqr_dense_ops spqri_dense_ops_avx512 = {"avx512f",       spqr_cpu_has_avx512,
                                         {dot_f32_avx512, dot_f16_avx512, dot_bf16_avx512},
                                         dot4_f16_avx512, widen_f16_avx512, dense_widen_bf16_scalar, narrow_f16_avx512,
                                         {axpy_f32_avx2, axpy_f16_avx2}, gemm_f16_avx512};
#else
/* Never picked here (the detector finds no x86 features): the scalar
 * kernels, so the tables exist on every target. */
const spqr_dense_ops spqri_dense_ops_avx2 = {"avx2+f16c", spqr_cpu_has_avx2, DENSE_SCALAR_DOTS, NULL, dense_widen_f16_scalar,
                                       dense_widen_bf16_scalar, dense_narrow_f16_scalar, DENSE_SCALAR_AXPY, NULL};
const spqr_dense_ops spqri_dense_ops_avx512 = {"avx512f", spqr_cpu_has_avx512, DENSE_SCALAR_DOTS, NULL, dense_widen_f16_scalar,
                                         dense_widen_bf16_scalar, dense_narrow_f16_scalar, DENSE_SCALAR_AXPY, NULL};
#endif
