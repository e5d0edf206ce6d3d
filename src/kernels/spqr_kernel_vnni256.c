/* vnni256 path: the avxvnni kernels (spqr_kernel_i8_256.h) with the
 * EVEX-coded AVX512-VNNI + VL 256-bit vpdpwssd / vpdpbusd: the same
 * operations as the VEX forms, so it stands in for avxvnni on this Zen 4
 * (tests, benchmarks), and serves AVX-512 VNNI CPUs without VBMI (Cascade
 * Lake), which the avx512vnni path does not run on. */
#include "kernels/kernels.h"

#define I8_TARGET "avx2,fma,f16c,avx512vnni,avx512vl"
#define I8_VNNI 2
#include "kernels/spqr_kernel_i8_256.h" /* non-x86: scalar stand-ins, never selected */

/* avx2i8's input preparation: the same activation words and int8 codes */
const spqr_kernel_ops spqri_kt_ops_vnni256 = {"vnni256",           SPQR_KERNEL_VNNI_256,         0,
                                             spqr_cpu_has_vnni_256, spqri_kt_scratch_i8_words, spqri_kt_prepare_avx2i8,
                                             kt_matvec_i8_256,  kt_matmul_i8_256,        spqri_kt_prep_bytes_avx2,
                                             1};
