/* How much the exact Hessian sum (docs/quantize.md, "Scale-out") changes a
 * real Hessian: block 0's q/k/v input (RMSNorm of the calibration windows'
 * embeddings, as the pipeline sees it) summed the old way (fp32 running
 * mean, window order), the new way (pipe_hsum) and in double.
 * Usage: hsum_change MODEL_DIR CALIB_TEXT [NSAMPLES 128] [SEQLEN 512] */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "model/model.h"
#include "quant/calib.h"
#include "quant/pipeline.h"

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: hsum_change MODEL_DIR CALIB_TEXT [NSAMPLES] [SEQLEN]\n"); return 2; }
    const int32_t N = argc > 3 ? atoi(argv[3]) : 128, T = argc > 4 ? atoi(argv[4]) : 512;
    spqr_err err = {0};
    spqr_model *m = NULL;
    size_t len = 0;
    char *text = NULL;
    if (spqr_file_read_text(argv[2], (size_t)1 << 30, &text, &len, &err) || spqr_model_load_hf(argv[1], NULL, &m, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    int32_t *tok = NULL, n_tok = 0;
    if (spqr_tokenizer_encode(spqr_model_tokenizer(m), text, len, 0, &tok, &n_tok, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    const int32_t H = m->cfg.hidden_size;
    int64_t *starts = malloc(sizeof(int64_t) * N);
    if (spqri_calib_sample_windows(n_tok, N, T, 0, starts, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    float *X = malloc(sizeof(float) * T * H), *G = malloc(sizeof(float) * H * H), *Hold = calloc((size_t)H * H, 4),
          *Hnew = calloc((size_t)H * H, 4), *e = malloc(sizeof(float) * H);
    double *R = calloc((size_t)H * H, sizeof(double));
    pipe_hsum hs;
    spqri_hsum_init(&hs, H);
    for (int32_t w = 0; w < N; w++) {
        for (int32_t t = 0; t < T; t++) {
            spqri_model_embed(m, tok[starts[w] + t], e, &err);
            double ss = 0;
            for (int j = 0; j < H; j++) ss += (double)e[j] * e[j];
            const float sc = (float)(1.0 / sqrt(ss / H + m->cfg.rms_norm_eps));
            for (int j = 0; j < H; j++) X[(size_t)t * H + j] = m->layers[0].attn_norm[j] * (e[j] * sc);
        }
        const double n = (double)w * T, tot = n + T; /* the old accumulation */
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, H, T, (float)(2.0 / tot), X, H, (float)(n / tot), Hold, H);
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, H, T, 1.0f, X, H, 0.0f, G, H);
        spqri_hsum_add(&hs, G, 1, &err);
        for (int32_t t = 0; t < T; t++)
            for (int a = 0; a < H; a++)
                for (int b = a; b < H; b++) R[(size_t)a * H + b] += (double)X[(size_t)t * H + a] * X[(size_t)t * H + b];
    }
    int bins = 0;
    for (int b = 0; b < HSUM_NBINS; b++) bins += hs.bin[b] != NULL;
    spqri_hsum_finish(&hs, NULL, (int64_t)N * T, Hnew, &err);
    double mx = 0, d_on = 0, e_new = 0, e_old = 0, rel_entry = 0;
    for (int a = 0; a < H; a++)
        for (int b = a; b < H; b++) {
            const size_t i = (size_t)a * H + b;
            const double r = R[i] * 2.0 / ((double)N * T);
            mx = fmax(mx, fabs(r));
            d_on = fmax(d_on, fabs((double)Hnew[i] - Hold[i]));
            e_new = fmax(e_new, fabs(Hnew[i] - r));
            e_old = fmax(e_old, fabs(Hold[i] - r));
            if (a == b) rel_entry = fmax(rel_entry, fabs((double)Hnew[i] - Hold[i]) / fabs(Hold[i]));
        }
    printf("%s, block 0 q/k/v input, %d x %d windows, %d x %d H, %d bin(s):\n", argv[1], N, T, H, H, bins);
    printf("  max |H_new - H_old| / max |H_old| = %.3g; on the diagonal, max relative %.3g\n", d_on / mx, rel_entry);
    printf("  max |H - H_double| / max |H_double|: new %.3g, old %.3g\n", e_new / mx, e_old / mx);
    return 0;
}
