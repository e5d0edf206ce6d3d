/* The one CPU-feature detector of the kernels: every SpQR and dense kernel
 * path says what it needs in terms of this struct, so the two kernel
 * families agree on what "AVX-512" means. */
#ifndef SPQR_KERNELS_CPU_H
#define SPQR_KERNELS_CPU_H

typedef struct spqr_cpu {
    unsigned char avx2, fma, f16c;                       /* x86-64 AVX2 generation */
    unsigned char avx512f, avx512bw, avx512vl, avx512dq; /* AVX-512 foundation + the subsets every core since Skylake-X has */
    unsigned char avx512vnni, avx512vbmi, avx512vbmi2;   /* int8 dot products and byte permutes */
    unsigned char avxvnni;                               /* VEX-coded VNNI (Alder Lake and later) */
    unsigned char neon, dotprod;                         /* aarch64 Advanced SIMD, SDOT/UDOT */
} spqr_cpu;

/* What this CPU (and OS) runs. A pure function of the machine: it reads
 * libgcc's cpuid cache (x86) or getauxval (aarch64), so callers may call it
 * whenever they pick a path; nothing is cached in a mutable global. */
spqr_cpu spqr_cpu_detect(void);

/* The feature sets the paths are built for. */
static inline int spqr_cpu_has_avx2(const spqr_cpu *c) { return c->avx2 && c->fma && c->f16c; }
static inline int spqr_cpu_has_avx512(const spqr_cpu *c) {
    return spqr_cpu_has_avx2(c) && c->avx512f && c->avx512bw && c->avx512vl && c->avx512dq;
}
/* 256-bit VNNI: VEX-coded (AVX-VNNI), or EVEX-coded (AVX512-VNNI + VL) */
static inline int spqr_cpu_has_avx_vnni(const spqr_cpu *c) { return spqr_cpu_has_avx2(c) && c->avxvnni; }
static inline int spqr_cpu_has_vnni_256(const spqr_cpu *c) { return spqr_cpu_has_avx2(c) && c->avx512vl && c->avx512vnni; }
static inline int spqr_cpu_has_avx512_vnni(const spqr_cpu *c) {
    return spqr_cpu_has_avx512(c) && c->avx512vnni && c->avx512vbmi && c->avx512vbmi2;
}

#endif
