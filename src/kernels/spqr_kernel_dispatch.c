/* Picking a kernel path: what the CPU supports (checked at run time, so one
 * binary runs everywhere), an explicit request, or env SPQR_KERNEL. AUTO
 * picks avx512vnni where the CPU has it, as llama.cpp quantizes activations
 * for its quantized dot products: its int8 activations (one token and
 * batches) change results by a bounded, measured amount (docs/kernels.md: KL 1.2e-5 against
 * the exact path on the default model, 1% of the quantization's own KL),
 * else avx2i8 (the same int8 rule on AVX2, faster than exact avx512 too);
 * SPQR_KERNEL=exact takes the fastest path with exact fp32 activations
 * (avx512 > avx2 > neon > scalar), e.g. to measure a quantization alone.
 * On aarch64 the NEON paths are chosen from getauxval(AT_HWCAP)
 * (kt_neon_hwcap): neondot (dotprod, int8 activations, as avx512vnni) where
 * the CPU has ASIMDDP, else neon. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kernels/spqr_kernel.h"

int kt_path_supported(spqr_kernel_path p) {
    switch (p) {
    case SPQR_KERNEL_SCALAR: return 1;
#if defined(__x86_64__) && defined(__GNUC__)
    case SPQR_KERNEL_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case SPQR_KERNEL_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    case SPQR_KERNEL_AVX2_I8: return kt_path_supported(SPQR_KERNEL_AVX2);
    case SPQR_KERNEL_AVX512_VNNI:
        return kt_path_supported(SPQR_KERNEL_AVX512) && __builtin_cpu_supports("avx512vnni") &&
               __builtin_cpu_supports("avx512vbmi") &&
               __builtin_cpu_supports("avx512vbmi2");
#endif
    case SPQR_KERNEL_NEON: return kt_neon_hwcap(0);
    case SPQR_KERNEL_NEON_DOTPROD: return kt_neon_hwcap(1);
    default: return 0;
    }
}

const char *spqr_kernel_path_name(spqr_kernel_path p) {
    switch (p) {
    case SPQR_KERNEL_AUTO: return "auto";
    case SPQR_KERNEL_SCALAR: return "scalar";
    case SPQR_KERNEL_AVX2: return "avx2";
    case SPQR_KERNEL_AVX512: return "avx512";
    case SPQR_KERNEL_AVX512_VNNI: return "avx512vnni";
    case SPQR_KERNEL_NEON: return "neon";
    case SPQR_KERNEL_NEON_DOTPROD: return "neondot";
    case SPQR_KERNEL_AVX2_I8: return "avx2i8";
    }
    return "unknown";
}

static spqr_kernel_path best_path(void) {
    if (kt_path_supported(SPQR_KERNEL_AVX512_VNNI)) return SPQR_KERNEL_AVX512_VNNI;
    /* int8 activations on AVX2 before exact AVX-512 (docs/kernels.md, avx2i8) */
    if (kt_path_supported(SPQR_KERNEL_AVX2_I8)) return SPQR_KERNEL_AVX2_I8;
    if (kt_path_supported(SPQR_KERNEL_AVX512)) return SPQR_KERNEL_AVX512;
    if (kt_path_supported(SPQR_KERNEL_AVX2)) return SPQR_KERNEL_AVX2;
    if (kt_path_supported(SPQR_KERNEL_NEON_DOTPROD)) return SPQR_KERNEL_NEON_DOTPROD;
    if (kt_path_supported(SPQR_KERNEL_NEON)) return SPQR_KERNEL_NEON;
    return SPQR_KERNEL_SCALAR;
}

/* AUTO -> env SPQR_KERNEL (if set) -> best supported. */
static spqr_kernel_path best_exact_path(void) {
    if (kt_path_supported(SPQR_KERNEL_AVX512)) return SPQR_KERNEL_AVX512;
    if (kt_path_supported(SPQR_KERNEL_AVX2)) return SPQR_KERNEL_AVX2;
    if (kt_path_supported(SPQR_KERNEL_NEON)) return SPQR_KERNEL_NEON;
    return SPQR_KERNEL_SCALAR;
}

static spqr_status resolve(spqr_kernel_path req, spqr_kernel_path *out, spqr_err *err) {
    if (req == SPQR_KERNEL_AUTO) {
        const char *env = getenv("SPQR_KERNEL");
        if (env && *env && strcmp(env, "auto") != 0) {
            if (!strcmp(env, "scalar")) req = SPQR_KERNEL_SCALAR;
            else if (!strcmp(env, "avx2")) req = SPQR_KERNEL_AVX2;
            else if (!strcmp(env, "avx512")) req = SPQR_KERNEL_AVX512;
            else if (!strcmp(env, "avx512vnni")) req = SPQR_KERNEL_AVX512_VNNI;
            else if (!strcmp(env, "neon")) req = SPQR_KERNEL_NEON;
            else if (!strcmp(env, "neondot")) req = SPQR_KERNEL_NEON_DOTPROD;
            else if (!strcmp(env, "avx2i8")) req = SPQR_KERNEL_AVX2_I8;
            else if (!strcmp(env, "exact")) req = best_exact_path();
            else
                return spqr_err_set(err, SPQR_ERR_INVALID_ARG,
                                    "SPQR_KERNEL='%s' is not one of scalar, avx2, avx512, avx512vnni, neon, neondot, avx2i8, exact, auto",
                                    env);
        } else {
            *out = best_path();
            return SPQR_OK;
        }
    }
    if (req < SPQR_KERNEL_SCALAR || req > SPQR_KERNEL_AVX2_I8)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "unknown kernel path %d", (int)req);
    if (!kt_path_supported(req))
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "kernel path %s is not supported by this CPU",
                            spqr_kernel_path_name(req));
    *out = req;
    return SPQR_OK;
}

spqr_status spqr_ktensor_set_path(spqr_ktensor *kt, spqr_kernel_path path, spqr_err *err) {
    if (!kt) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "ktensor is NULL");
    spqr_kernel_path p = SPQR_KERNEL_SCALAR;
    spqr_status st = resolve(path, &p, err);
    if (st == SPQR_OK) kt->path = p;
    return st;
}

spqr_kernel_path spqr_ktensor_path(const spqr_ktensor *kt) { return kt ? kt->path : SPQR_KERNEL_AUTO; }
