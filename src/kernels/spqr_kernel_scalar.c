/* Scalar path over the runtime layout: plain C, the yardstick the SIMD
 * paths are tested against. Per row: each group's products are summed in
 * fp32 in column order (the code at an outlier position is 0), group sums
 * are added in order, then each outlier adds (value - s * (0 - z)) * x. */
#include "format/tensor.h"
#include "kernels/kernels.h"

void spqri_kt_matmul_scalar(const spqr_ktensor *kt, const kt_input *in, int32_t rt0, int32_t rt1, float *Y) {
    float s[KT_R], z[KT_R];
    float acc[64][KT_R]; /* [input][row of the tile]; in->n <= 64 */
    const int32_t gpad = kt->ct_per_group * KT_C;
    for (int32_t rt = rt0; rt < rt1; rt++) {
        for (int32_t n = 0; n < in->n; n++)
            for (int i = 0; i < KT_R; i++) acc[n][i] = 0.0f;
        for (int32_t g = 0; g < kt->n_groups; g++) {
            spqri_kt_stats_scalar(kt, rt, g, s, z);
            for (int i = 0; i < KT_R; i++) {
                const int32_t r = rt * KT_R + i;
                if (r >= kt->rows) break;
                for (int32_t n = 0; n < in->n; n++) {
                    const float *xp = in->xp + (size_t)n * kt->padcols + (size_t)g * gpad;
                    float part = 0.0f;
                    for (int32_t k = 0; k < kt->ct_per_group; k++) {
                        const int32_t ct = g * kt->ct_per_group + k;
                        const uint32_t *blk = kt_block(kt, rt, ct);
                        for (int cc = 0; cc < KT_C; cc++) {
                            const uint32_t q = kt_block_code_of(kt, blk, i, (ct & 1) * KT_C + cc);
                            part += spqr_weight_dq(s[i], q, z[i]) * xp[k * KT_C + cc]; /* padding: x = 0 */
                        }
                    }
                    acc[n][i] += part;
                }
            }
        }
        for (int32_t o = kt->o_ptr[rt]; o < kt->o_ptr[rt + 1]; o++) {
            const int32_t i = kt->o_row[o], c = kt->o_col[o], g = c / kt->groupsize;
            spqri_kt_stats_scalar(kt, rt, g, s, z);
            const float d = spqr_fp16_to_fp32(kt->o_val[o]) - spqr_weight_dq(s[i], kt_code_at(kt, rt * KT_R + i, c), z[i]);
            for (int32_t n = 0; n < in->n; n++) acc[n][i] += d * in->xq[(size_t)n * kt->cols + c];
        }
        for (int32_t n = 0; n < in->n; n++)
            for (int i = 0; i < KT_R && rt * KT_R + i < kt->rows; i++) Y[(size_t)n * kt->rows + rt * KT_R + i] = acc[n][i];
    }
}

static int supported(const spqr_cpu *cpu) { return (void)cpu, 1; }

/* The batch layout's xqt is filled but unused here: one preparation for all exact paths. */
const spqr_kernel_ops spqri_kt_ops_scalar = {"scalar", SPQR_KERNEL_SCALAR, 1, supported, spqri_kt_scratch_exact, spqri_kt_prepare_exact,
                                       spqri_kt_matmul_scalar, spqri_kt_matmul_scalar, NULL, 0};
