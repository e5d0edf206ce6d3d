/* avx2i8 path: the 256-bit int8 kernels (spqr_kernel_i8_256.h) with
 * vpmaddwd + vpaddd (one token) and vpmaddubsw (batches), AVX2 + FMA +
 * F16C; it also owns the input preparation the avxvnni and vnni256 twins
 * share (same activation words, same int8 codes). */
#include "kernels/kernels.h"

#define I8_TARGET "avx2,fma,f16c"
#define I8_VNNI 0
#include "kernels/spqr_kernel_i8_256.h" /* non-x86: scalar stand-ins, never selected */
#if !(defined(__x86_64__) && defined(__GNUC__))
void spqri_kt_prepare_i8_avx2(const spqr_ktensor *kt, const float *x, float *xs, float *xq, int32_t *xa, float *at,
                              int32_t n, int words) {
    (void)kt, (void)x, (void)xs, (void)xq, (void)xa, (void)at, (void)n, (void)words; /* never called: unsupported here */
}
void spqri_kt_avx2i8_words_ref(const spqr_ktensor *kt, const int32_t *xa, int32_t *xw) {
    (void)kt, (void)xa, (void)xw;
}
#endif

/* one token: the matvec's KT_XW int16-pair words; a batch: avx512vnni's layout */
static void prep_words(const spqr_ktensor *kt, const float *x, float *xs, float *xq, int32_t *xa, float *at, int32_t n) {
    spqri_kt_prepare_i8_avx2(kt, x, xs, xq, xa, at, n, 1);
}
void spqri_kt_prep_bytes_avx2(const spqr_ktensor *kt, const float *x, float *xs, float *xq, int32_t *xa, float *at,
                              int32_t n) {
    spqri_kt_prepare_i8_avx2(kt, x, xs, xq, xa, at, n, 0);
}

void spqri_kt_prepare_avx2i8(const spqr_ktensor *kt, const float *X, int32_t n, int32_t i0, int32_t i1, void *scratch,
                             kt_input *in) {
    /* the byte-aligned w3 matvec reads int8 bytes, as a batch does */
    spqri_kt_prepare_i8_with(kt, X, n, i0, i1, scratch, in, n == 1 && !kt->planar ? prep_words : spqri_kt_prep_bytes_avx2,
                             !kt->planar);
}

const spqr_kernel_ops spqri_kt_ops_avx2i8 = {"avx2i8",         SPQR_KERNEL_AVX2_I8,     0,
                                             spqr_cpu_has_avx2, spqri_kt_scratch_i8_words, spqri_kt_prepare_avx2i8,
                                             kt_matvec_i8_256,  kt_matmul_i8_256,        spqri_kt_prep_bytes_avx2,
                                             1};
