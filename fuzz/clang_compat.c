/* See clang_compat.h: __builtin_cpu_supports for the fuzz build. */
#define SPQR_FUZZ_COMPAT_IMPL 1
#include <string.h>

int spqr_fuzz_cpu_supports(const char *f);
int spqr_fuzz_cpu_supports(const char *f) {
    __builtin_cpu_init();
#define F(name) if (!strcmp(f, name)) return __builtin_cpu_supports(name) != 0
    F("avx2"); F("fma"); F("avx"); F("avx512f"); F("avx512bw"); F("avx512vl"); F("avx512dq");
    F("avx512vnni"); F("avx512vbmi"); F("avx512vbmi2"); F("avx512cd"); F("sse4.2"); F("popcnt"); F("bmi2");
#undef F
    /* every CPU with AVX has F16C in practice (Ivy Bridge / Piledriver on) */
    if (!strcmp(f, "f16c")) return __builtin_cpu_supports("avx") != 0;
    return 0;
}
