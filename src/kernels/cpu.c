/* CPU-feature detection (kernels/cpu.h): __builtin_cpu_supports on x86-64,
 * getauxval(AT_HWCAP) on aarch64, nothing elsewhere (the scalar paths). */
#include "kernels/cpu.h"

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#elif defined(__aarch64__) && defined(__GNUC__)
#include <sys/auxv.h>
#endif

spqr_cpu spqr_cpu_detect(void) {
    spqr_cpu c;
    memset(&c, 0, sizeof c);
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init(); /* idempotent; needed when called from a constructor */
    c.avx2 = __builtin_cpu_supports("avx2") != 0;
    c.fma = __builtin_cpu_supports("fma") != 0;
    c.f16c = __builtin_cpu_supports("f16c") != 0;
    c.avx512f = __builtin_cpu_supports("avx512f") != 0;
    c.avx512bw = __builtin_cpu_supports("avx512bw") != 0;
    c.avx512vl = __builtin_cpu_supports("avx512vl") != 0;
    c.avx512dq = __builtin_cpu_supports("avx512dq") != 0;
    c.avx512vnni = __builtin_cpu_supports("avx512vnni") != 0;
    c.avx512vbmi = __builtin_cpu_supports("avx512vbmi") != 0;
    c.avx512vbmi2 = __builtin_cpu_supports("avx512vbmi2") != 0;
    /* AVX-VNNI: CPUID leaf 7 subleaf 1 EAX bit 4 (its YMM state is AVX2's, checked above) */
    unsigned a = 0, b = 0, cx = 0, d = 0;
    if (c.avx2 && __get_cpuid_max(0, NULL) >= 7 && __get_cpuid_count(7, 1, &a, &b, &cx, &d)) c.avxvnni = (a >> 4) & 1u;
#elif defined(__aarch64__) && defined(__GNUC__)
    const unsigned long hw = getauxval(AT_HWCAP);
    c.neon = (hw & HWCAP_ASIMD) != 0;
    c.dotprod = c.neon && (hw & HWCAP_ASIMDDP) != 0;
#endif
    return c;
}
