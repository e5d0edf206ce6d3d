/* avxvnni path: the 256-bit int8 kernels (spqr_kernel_i8_256.h) with the
 * VEX-coded AVX-VNNI vpdpwssd (one token: AND + vpdpwssd per 16 weights
 * where avx2i8 spends AND + vpmaddwd + vpaddd) and vpdpbusd (batches: no
 * 16-bit sums, no nibble split), for Alder Lake and later, Zen 5. This Zen 4
 * has no AVX-VNNI, so the VEX form is compiled and detected but runs only
 * where the CPU has it; its EVEX twin (spqr_kernel_vnni256.c) is the same
 * source and is what the tests and benchmarks execute here. */
#include "kernels/kernels.h"

#define I8_TARGET "avx2,fma,f16c,avxvnni"
#define I8_VNNI 1
#include "kernels/spqr_kernel_i8_256.h" /* non-x86: scalar stand-ins, never selected */

/* avx2i8's input preparation: the same activation words and int8 codes */
const spqr_kernel_ops spqri_kt_ops_avxvnni = {"avxvnni",           SPQR_KERNEL_AVX_VNNI,         0,
                                             spqr_cpu_has_avx_vnni, spqri_kt_scratch_i8_words, spqri_kt_prepare_avx2i8,
                                             kt_matvec_i8_256,  kt_matmul_i8_256,        spqri_kt_prep_bytes_avx2,
                                             1};
