/* Picking a kernel path: what the CPU supports (checked at run time, so one
 * binary runs everywhere), an explicit request, or env SPQR_KERNEL. AUTO
 * picks avx512vnni where the CPU has it, as llama.cpp quantizes activations
 * for its quantized dot products: its int8 activations (one token and
 * batches) change results by a bounded, measured amount (docs/kernels.md: KL 1.2e-5 against
 * the exact path on the default model, 1% of the quantization's own KL),
 * else avx2i8 (the same int8 rule on AVX2, faster than exact avx512 too);
 * SPQR_KERNEL=exact takes the fastest path with exact fp32 activations
 * (avx512 > avx2 > neon > scalar), e.g. to measure a quantization alone.
 * On aarch64: neondot (dotprod, int8 activations, as avx512vnni) where
 * the CPU has ASIMDDP, else neon. What a CPU has comes from the one
 * detector (kernels/cpu.h); what each path needs, from its ops table. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kernels/kernels.h"

/* Every path in AUTO's order of preference: int8 activations first
 * (avx512vnni, then the 256-bit VNNI twins of avx2i8 (avxvnni, vnni256:
 * Cascade Lake has AVX512-VNNI without VBMI), then avx2i8: faster than
 * exact avx512 too), then the exact
 * ones fastest first; SPQR_KERNEL=exact takes the first exact one. */
static const spqr_kernel_ops *const ALL[] = {&spqri_kt_ops_avx512vnni, &spqri_kt_ops_avxvnni, &spqri_kt_ops_vnni256, &spqri_kt_ops_avx2i8,
                                             &spqri_kt_ops_avx512,     &spqri_kt_ops_avx2,    &spqri_kt_ops_neondot, &spqri_kt_ops_neon,
                                             &spqri_kt_ops_scalar};
#define N_ALL (sizeof ALL / sizeof ALL[0])

const spqr_kernel_ops *spqri_kt_ops_of(spqr_kernel_path p) {
    for (size_t i = 0; i < N_ALL; i++)
        if (ALL[i]->path == p) return ALL[i];
    return NULL;
}

int spqri_kt_path_supported(spqr_kernel_path p) {
    const spqr_kernel_ops *ops = spqri_kt_ops_of(p);
    const spqr_cpu cpu = spqr_cpu_detect();
    return ops && ops->supported(&cpu);
}

const char *spqr_kernel_path_name(spqr_kernel_path p) {
    if (p == SPQR_KERNEL_AUTO) return "auto";
    const spqr_kernel_ops *ops = spqri_kt_ops_of(p);
    return ops ? ops->name : "unknown";
}

/* The first supported path, of the exact ones only when exact. */
static spqr_kernel_path best(const spqr_cpu *cpu, int exact) {
    for (size_t i = 0; i < N_ALL; i++)
        if ((!exact || ALL[i]->exact) && ALL[i]->supported(cpu)) return ALL[i]->path;
    return SPQR_KERNEL_SCALAR;
}

/* AUTO -> env SPQR_KERNEL (if set) -> best supported. */
static spqr_status resolve(spqr_kernel_path req, spqr_kernel_path *out, spqr_err *err) {
    const spqr_cpu cpu = spqr_cpu_detect();
    if (req == SPQR_KERNEL_AUTO) {
        const char *env = getenv("SPQR_KERNEL");
        if (!env || !*env || !strcmp(env, "auto")) {
            *out = best(&cpu, 0);
            return SPQR_OK;
        }
        if (!strcmp(env, "exact")) req = best(&cpu, 1);
        for (size_t i = 0; i < N_ALL && req == SPQR_KERNEL_AUTO; i++)
            if (!strcmp(env, ALL[i]->name)) req = ALL[i]->path;
        if (req == SPQR_KERNEL_AUTO) {
            char names[160] = "";
            for (size_t i = N_ALL; i-- > 0;) {
                strncat(names, ALL[i]->name, sizeof names - strlen(names) - 1);
                strncat(names, ", ", sizeof names - strlen(names) - 1);
            }
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "SPQR_KERNEL='%s' is not one of %sexact, auto", env, names);
        }
    }
    const spqr_kernel_ops *ops = spqri_kt_ops_of(req);
    if (!ops) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "unknown kernel path %d", (int)req);
    if (!ops->supported(&cpu))
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "kernel path %s is not supported by this CPU", ops->name);
    *out = req;
    return SPQR_OK;
}

spqr_status spqr_ktensor_set_path(spqr_ktensor *kt, spqr_kernel_path path, spqr_err *err) {
    if (!kt) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "ktensor is NULL");
    spqr_kernel_path p = SPQR_KERNEL_SCALAR;
    spqr_status st = resolve(path, &p, err);
    if (st == SPQR_OK) {
        kt->path = p;
        kt->ops = spqri_kt_ops_of(p);
        spqri_kt_set_planar(kt, kt->ops->planar3); /* no-op while from_tensor has no codes yet */
    }
    return st;
}

spqr_kernel_path spqr_ktensor_path(const spqr_ktensor *kt) { return kt ? kt->path : SPQR_KERNEL_AUTO; }
