/* How fast can a batch (prompt) kernel be on this CPU, from its arithmetic
 * alone? One step of the 256-bit batch kernels (src/kernels/spqr_kernel_i8_256.h,
 * group tile) is 8 rows x 16 columns x 1 input = 128 multiply-adds; one step of
 * an fp32 GEMM (what the fp16 path runs after widening) is 16 FMAs for the
 * same 128. This times each step's instructions with no loads and no
 * dependencies between steps (two steps unrolled, every accumulator its
 * own), so the result is the issue limit of the execution pipes: a floor on
 * cycles per 128 multiply-adds, and the ratio of the floors is the most a
 * batch kernel can gain over the fp32 GEMM on this CPU. The clock is a
 * dependent scalar add chain (one per cycle); the ratios do not depend on it.
 *
 *   bench_vector_pipes [ITERS=50000000]
 *
 * x86-64 only (inline assembly of the instructions the kernels use); the
 * AVX-VNNI row is skipped on CPUs without it. */
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"

#if defined(__x86_64__)
#include <cpuid.h>

/* 12 accumulators / destinations, sources in ymm14 and ymm15 */
#define CLOBBERS                                                                                                   \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", \
        "xmm14", "xmm15", "cc"
#define PRE "vpxor %%xmm14,%%xmm14,%%xmm14\n vpxor %%xmm15,%%xmm15,%%xmm15\n"

/* fp32 GEMM: 16 FMAs per 128 multiply-adds, 12 independent accumulators,
 * 48 FMAs per iteration = 3 steps */
static double run_fma(long iters) {
    long n = iters;
    const double t = spqr_now_s();
#define F(r) "vfmadd231ps %%ymm14,%%ymm15,%%ymm" #r "\n"
#define F12 F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11)
    __asm__ volatile(PRE "1:\n" F12 F12 F12 F12 "dec %0\n jnz 1b\n" : "+r"(n) : : CLOBBERS);
#undef F12
#undef F
    return (spqr_now_s() - t) / 3.0; /* per step of 16 */
}

/* avx2i8 step, two steps per iteration: 4 vpmaddubsw (codes x int8 inputs),
 * 3 vpaddw (16-bit sums), vpmaddwd (widen), vcvtdq2ps, vmulps (the input's
 * tile scale), 2 FMAs (zero and scale of the group) */
static double run_avx2i8(long iters) {
    long n = iters;
    const double t = spqr_now_s();
#define STEP(a, b, c, f, g)                                                                                          \
    "vpmaddubsw %%ymm14,%%ymm15,%%ymm12\n vpmaddubsw %%ymm14,%%ymm15,%%ymm13\n"                                      \
    "vpmaddubsw %%ymm14,%%ymm15,%%ymm12\n vpmaddubsw %%ymm14,%%ymm15,%%ymm13\n"                                      \
    "vpaddw %%ymm14,%%ymm" #a ",%%ymm" #a "\n vpaddw %%ymm14,%%ymm" #b ",%%ymm" #b "\n vpaddw %%ymm14,%%ymm" #c      \
    ",%%ymm" #c "\n"                                                                                                 \
    "vpmaddwd %%ymm14,%%ymm15,%%ymm12\n vcvtdq2ps %%ymm14,%%ymm13\n vmulps %%ymm14,%%ymm15,%%ymm12\n"                \
    "vfmadd231ps %%ymm14,%%ymm15,%%ymm" #f "\n vfmadd231ps %%ymm14,%%ymm15,%%ymm" #g "\n"
    __asm__ volatile(PRE "1:\n" STEP(0, 1, 2, 3, 4) STEP(5, 6, 7, 8, 9) "dec %0\n jnz 1b\n" : "+r"(n) : : CLOBBERS);
#undef STEP
    return (spqr_now_s() - t) / 2.0;
}

/* avxvnni step: 4 vpdpbusd into the dot, vcvtdq2ps, vmulps, 2 FMAs */
__attribute__((target("avxvnni"))) static double run_avxvnni(long iters) {
    long n = iters;
    const double t = spqr_now_s();
#define STEP(a, b, c, d, f, g)                                                                                       \
    "%{vex%} vpdpbusd %%ymm14,%%ymm15,%%ymm" #a "\n %{vex%} vpdpbusd %%ymm14,%%ymm15,%%ymm" #b "\n"                   \
    "%{vex%} vpdpbusd %%ymm14,%%ymm15,%%ymm" #c "\n %{vex%} vpdpbusd %%ymm14,%%ymm15,%%ymm" #d "\n"                   \
    "vcvtdq2ps %%ymm14,%%ymm12\n vmulps %%ymm14,%%ymm15,%%ymm13\n"                                                  \
    "vfmadd231ps %%ymm14,%%ymm15,%%ymm" #f "\n vfmadd231ps %%ymm14,%%ymm15,%%ymm" #g "\n"
    __asm__ volatile(PRE "1:\n" STEP(0, 1, 2, 3, 4, 5) STEP(6, 7, 8, 9, 10, 11) "dec %0\n jnz 1b\n"
                     : "+r"(n)
                     :
                     : CLOBBERS);
#undef STEP
    return (spqr_now_s() - t) / 2.0;
}

/* one dependent scalar add per cycle */
static double clock_hz(long iters) {
    long n = iters;
    const double t = spqr_now_s();
    __asm__ volatile("xor %%eax,%%eax\n 1:\n add $1,%%rax\n add $1,%%rax\n add $1,%%rax\n add $1,%%rax\n dec %0\n jnz 1b\n"
                     : "+r"(n)
                     :
                     : "rax", "cc");
    return 4.0 * (double)iters / (spqr_now_s() - t);
}

static int has_avxvnni(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return 0;
    return (a >> 4) & 1;
}

static int has_avx2_fma(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 12) & 1)) return 0; /* FMA */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b >> 5) & 1; /* AVX2 */
}

int main(int argc, char **argv) {
    const long iters = argc > 1 ? atol(argv[1]) : 50000000L;
    if (iters < 1000) {
        fprintf(stderr, "usage: bench_vector_pipes [ITERS >= 1000]\n");
        return 2;
    }
    if (!has_avx2_fma()) {
        fprintf(stderr, "bench_vector_pipes: this CPU has no AVX2 + FMA\n");
        return 2;
    }
    const int vnni = has_avxvnni();
    double best_fma = 1e30, best_i8 = 1e30, best_vnni = 1e30, hz = 0;
    for (int round = 0; round < 5; round++) { /* interleaved, best of five */
        const double h = clock_hz(iters);
        if (h > hz) hz = h;
        const double f = run_fma(iters) / (double)iters, i = run_avx2i8(iters) / (double)iters;
        if (f < best_fma) best_fma = f;
        if (i < best_i8) best_i8 = i;
        if (vnni) {
            const double v = run_avxvnni(iters) / (double)iters;
            if (v < best_vnni) best_vnni = v;
        }
    }
    printf("clock %.2f GHz (dependent scalar adds); cycles per 8x16x1 step (128 multiply-adds), best of 5:\n", hz / 1e9);
    printf("  fp32 GEMM (16 FMA)                          %5.2f\n", best_fma * hz);
    printf("  avx2i8  (4 maddubsw 3 addw maddwd cvt mul 2 FMA) %5.2f  -> at most %.2fx the fp32 GEMM\n", best_i8 * hz,
           best_fma / best_i8);
    if (vnni)
        printf("  avxvnni (4 dpbusd cvt mul 2 FMA)            %5.2f  -> at most %.2fx the fp32 GEMM\n", best_vnni * hz,
               best_fma / best_vnni);
    else
        printf("  avxvnni: this CPU has no AVX-VNNI\n");
    return 0;
}
#else
int main(void) {
    fprintf(stderr, "bench_vector_pipes: x86-64 only\n");
    return 2;
}
#endif
