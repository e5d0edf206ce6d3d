/* Force-included (-include) into every library source of the fuzz build
 * (fuzz/run_fuzz.sh) so that the library compiles with clang 14, whose
 * libFuzzer the targets need; the normal (gcc) build never sees it.
 *  - clang 14's __builtin_cpu_supports does not know "f16c" (gcc does):
 *    routed to spqr_fuzz_cpu_supports (fuzz/clang_compat.c);
 *  - clang checks that the shift count of _mm512_shrdi_epi32 is a constant
 *    before inlining (gcc after): the variable-count form vpshrdvd computes
 *    the same thing. */
#ifndef SPQR_FUZZ_CLANG_COMPAT_H
#define SPQR_FUZZ_CLANG_COMPAT_H
#if defined(__clang__) && !defined(SPQR_FUZZ_COMPAT_IMPL)
int spqr_fuzz_cpu_supports(const char *feature);
#define __builtin_cpu_supports(f) spqr_fuzz_cpu_supports(f)
#if defined(__x86_64__)
#include <immintrin.h>
#undef _mm512_shrdi_epi32
#define _mm512_shrdi_epi32(a, b, n) _mm512_shrdv_epi32((a), (b), _mm512_set1_epi32((int)(n)))
#endif
#endif
#endif
