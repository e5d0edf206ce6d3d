/* Golden hashes of spqr_quantize_layer's outputs, to show that an engine
 * change keeps the results bit for bit.
 *
 *   engine_golden [-t threads] > now.txt        one line per (shape, setting)
 *   engine_golden -core                         OpenBLAS's kernel family (the hashes depend on it)
 *   engine_golden [-t threads] -c golden.txt [-rel-tol R] [-rel-only]
 *       compare; exit 1 on any difference of the hashes, or a relative
 *       difference of rel_hessian_error above R (default 0: identical);
 *       -rel-only compares only rel_hessian_error (an engine whose results
 *       differ by rounding from the file's, within a stated tolerance)
 *
 * Each line hashes (FNV-1a 64) every array of the packed tensor (codes,
 * statistics, outliers, permutation), the dequantized weights and the
 * outlier mask, and prints rel_hessian_error. The layers are synthetic: W with
 * spread row scales and planted large weights, H = X^T X / n from correlated
 * inputs with one dead input. bench/results/engine-golden-8f929e8.txt holds the
 * lines of commit 8f929e8 (the double engine before issue 16),
 * engine-golden-fp32.txt those of the fp32 Cholesky engine, on this
 * machine's OpenBLAS; other BLAS builds may differ in the last bits of
 * sgemm/LAPACK. */
#include "spqr.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_rng.h"

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* W [rows][cols], H [cols][cols] (input `dead` never fires). */
static void make_layer(int32_t rows, int32_t cols, uint64_t seed, float *W, float *H) {
    rng_s = seed;
    const int32_t n = 2 * cols, nf = 8;
    float *X = malloc(sizeof(float) * (size_t)n * cols), *c = malloc(sizeof(float) * cols);
    float *F = malloc(sizeof(float) * (size_t)n * nf), *G = malloc(sizeof(float) * (size_t)nf * cols);
    for (int32_t j = 0; j < cols; j++) c[j] = expf(0.7f * rng_normal());
    for (size_t i = 0; i < (size_t)n * cols; i++) X[i] = rng_normal() * c[i % (size_t)cols];
    for (size_t i = 0; i < (size_t)n * nf; i++) F[i] = rng_normal();
    for (size_t i = 0; i < (size_t)nf * cols; i++) G[i] = 0.3f * rng_normal();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, cols, nf, 1.0f, F, nf, G, cols, 1.0f, X, cols);
    const int32_t dead = cols / 3;
    for (int32_t i = 0; i < n; i++) X[(size_t)i * cols + dead] = 0.0f;
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, cols, n, 1.0f / (float)n, X, cols, 0.0f, H, cols);
    for (int32_t i = 0; i < cols; i++)
        for (int32_t j = 0; j < i; j++) H[(size_t)i * cols + j] = H[(size_t)j * cols + i];
    for (int32_t r = 0; r < rows; r++) {
        float rs = 0.02f * expf(0.3f * rng_normal());
        for (int32_t j = 0; j < cols; j++) W[(size_t)r * cols + j] = rs * rng_normal();
    }
    for (size_t k = 0; k < (size_t)rows * cols / 500 + 1; k++)
        W[rng_next() % ((size_t)rows * cols)] = (k & 1 ? 1.0f : -1.0f) * (0.1f + 0.2f * rng_uniform());
    free(X);
    free(c);
    free(F);
    free(G);
}

typedef struct setting {
    const char *name;
    int32_t wbits, groupsize, qs, qz, qgs, blocksize, perm, gptq, sym, round_zero, simplified;
    float tau, percdamp;
} setting;

static const setting settings[] = {
    {"spqr-w3-3.6bit", 3, 16, 3, 3, 16, 128, SPQR_PERM_ACT_ORDER, 1, 0, 0, 0, 0.2f, 1.0f},
    {"spqr-w2", 2, 16, 3, 3, 16, 128, SPQR_PERM_ACT_ORDER, 1, 0, 0, 0, 0.2f, 1.0f},
    {"spqr-w4-near-lossless", 4, 16, 3, 3, 16, 128, SPQR_PERM_ACT_ORDER, 1, 0, 0, 0, 0.2f, 1.0f},
    {"spqr-w3-identity", 3, 16, 3, 3, 16, 128, SPQR_PERM_IDENTITY, 1, 0, 0, 0, 0.2f, 1.0f},
    {"spqr-w3-no-outliers", 3, 16, 3, 3, 16, 128, SPQR_PERM_ACT_ORDER, 1, 0, 0, 0, INFINITY, 1.0f},
    {"spqr-w3-simplified", 3, 16, 3, 3, 16, 128, SPQR_PERM_ACT_ORDER, 1, 0, 0, 1, 0.2f, 1.0f},
    {"spqr-w3-g24-b40-qq24", 3, 24, 2, 4, 24, 40, SPQR_PERM_ACT_ORDER, 1, 0, 0, 0, 0.1f, 0.5f},
    {"spqr-w4-g32-qq-zero-ge", 4, 32, 3, 4, 16, 128, SPQR_PERM_ACT_ORDER, 1, 0, 1, 0, 0.2f, 1.0f},
    {"spqr-w3-round-zero", 3, 16, 3, 2, 16, 128, SPQR_PERM_ACT_ORDER, 1, 0, 1, 0, 0.2f, 1.0f},
    {"gptq4-g128", 4, 128, 0, 0, 16, 128, SPQR_PERM_IDENTITY, 1, 0, 0, 0, INFINITY, 0.01f},
    {"gptq3-g128-act", 3, 128, 0, 0, 16, 128, SPQR_PERM_ACT_ORDER, 1, 0, 0, 0, INFINITY, 0.01f},
    {"gptq2-row", 2, 0, 0, 0, 16, 64, SPQR_PERM_ACT_ORDER, 1, 0, 0, 0, INFINITY, 0.01f},
    {"gptq4-sym-g64", 4, 64, 0, 0, 16, 128, SPQR_PERM_ACT_ORDER, 1, 1, 0, 0, 0.5f, 0.1f},
    {"rtn4-g128", 4, 128, 0, 0, 16, 128, SPQR_PERM_IDENTITY, 0, 0, 0, 0, INFINITY, 1.0f},
    {"rtn3-spqr-stats", 3, 16, 3, 3, 16, 128, SPQR_PERM_ACT_ORDER, 0, 0, 0, 0, 0.2f, 1.0f},
    {"spqr-w3-b7", 3, 16, 3, 3, 16, 7, SPQR_PERM_ACT_ORDER, 1, 0, 0, 0, 0.2f, 1.0f},
};

static int32_t shapes[][2] = {{64, 256}, {200, 392}, {48, 130}, {512, 1024}};

/* -dump writes W_hat of case n to P.n.f32; -diff reads it back and prints
 * how the current W_hat differs (the measured effect of a change). */
static void dump_or_diff(const char *prefix, int write, int n, const float *W, const float *Wq, size_t count) {
    char path[512];
    snprintf(path, sizeof path, "%s.%d.f32", prefix, n);
    FILE *f = fopen(path, write ? "wb" : "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return;
    }
    if (write) {
        fwrite(Wq, sizeof(float), count, f);
    } else {
        float *old = malloc(sizeof(float) * count);
        if (old && fread(old, sizeof(float), count, f) == count) {
            double wmax = 0.0, dmax = 0.0;
            size_t nd = 0;
            for (size_t i = 0; i < count; i++) { /* not fmax(): aarch64 gcc 12 ICEs vectorizing it */
                const double w = fabs((double)W[i]), d = fabs((double)Wq[i] - (double)old[i]);
                if (w > wmax) wmax = w;
                if (d > dmax) dmax = d;
                nd += Wq[i] != old[i];
            }
            printf("  W_hat vs %s: %zu of %zu entries differ, max |dW_hat| %.3g (%.3g of max|W|)\n", path, nd, count,
                   dmax, dmax / wmax);
        }
        free(old);
    }
    fclose(f);
}

int main(int argc, char **argv) {
    int32_t threads = 2, n_shapes = (int32_t)(sizeof shapes / sizeof shapes[0]), n_settings = 0;
    double rel_tol = 0.0;
    int rel_only = 0;
    const char *cmp = NULL, *dump = NULL, *diff = NULL;
    for (size_t k = 0; k < sizeof settings / sizeof settings[0]; k++) n_settings++;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-c") && i + 1 < argc) cmp = argv[++i];
        else if (!strcmp(argv[i], "-rel-tol") && i + 1 < argc) rel_tol = atof(argv[++i]);
        else if (!strcmp(argv[i], "-rel-only")) rel_only = 1;
        else if (!strcmp(argv[i], "-shape") && i + 1 < argc &&
                 sscanf(argv[++i], "%dx%d", &shapes[0][0], &shapes[0][1]) == 2)
            n_shapes = 1, n_settings = 2; /* one large layer: the 3.6bit and gptq4 settings (the first and tenth) */
        else if (!strcmp(argv[i], "-dump") && i + 1 < argc) dump = argv[++i];
        else if (!strcmp(argv[i], "-first") && n_shapes == 1) n_settings = 1; /* after -shape: 3.6bit only */
        else if (!strcmp(argv[i], "-core")) { /* the BLAS kernels the hashes depend on */
            printf("%s\n", openblas_get_corename());
            return 0;
        }
        else if (!strcmp(argv[i], "-diff") && i + 1 < argc) diff = argv[++i];
        else {
            fprintf(stderr,
                    "usage: %s [-t threads] [-shape RxC [-first]] [-c golden.txt [-rel-tol R] [-rel-only]] [-dump P | -diff "
                    "P]\n",
                    argv[0]);
            return 2;
        }
    }
    FILE *gf = NULL;
    if (cmp && !(gf = fopen(cmp, "r"))) {
        fprintf(stderr, "cannot open %s\n", cmp);
        return 2;
    }
    int n_bad = 0, n = 0;
    double max_rel_diff = 0.0;
    for (int32_t si = 0; si < n_shapes; si++) {
        const int32_t rows = shapes[si][0], cols = shapes[si][1];
        float *W = malloc(sizeof(float) * (size_t)rows * cols), *H = malloc(sizeof(float) * (size_t)cols * cols);
        float *Wq = malloc(sizeof(float) * (size_t)rows * cols);
        uint8_t *mask = malloc((size_t)rows * cols);
        make_layer(rows, cols, 0x9E3779B97F4A7C15ull + si, W, H);
        for (int32_t ki = 0; ki < n_settings; ki++) {
            const setting *s = &settings[n_shapes == 1 && ki == 1 ? 9 : ki];
            spqr_quant_params p;
            spqr_quant_params_default(&p);
            p.wbits = s->wbits;
            p.groupsize = s->groupsize;
            p.qq_scale_bits = s->qs;
            p.qq_zero_bits = s->qz;
            p.qq_groupsize = s->qgs;
            p.blocksize = s->blocksize;
            p.perm = (spqr_perm_mode)s->perm;
            p.gptq = s->gptq;
            p.sym = s->sym;
            p.round_zero = s->round_zero;
            p.simplified_outliers = s->simplified;
            p.outlier_threshold = s->tau;
            p.percdamp = s->percdamp;
            spqr_tensor *t = NULL;
            spqr_quant_report rep;
            spqr_err err = {0};
            char line[320];
            double rel = NAN;
            if (spqr_quantize_layer(W, rows, cols, H, &p, threads, NULL, &t, Wq, mask, &rep, &err) != SPQR_OK) {
                snprintf(line, sizeof line, "%dx%d %s error: %.160s", rows, cols, s->name, err.msg);
            } else {
                uint64_t h = 0xcbf29ce484222325ull;
                h = fnv(h, t->codes, t->codes_bytes);
                if (t->scale_codes) h = fnv(h, t->scale_codes, t->scale_codes_bytes);
                if (t->zero_codes) h = fnv(h, t->zero_codes, t->zero_codes_bytes);
                const size_t nq2 = (size_t)t->n_groups * (size_t)t->n_qgroups * 2 * sizeof(uint16_t);
                const size_t nf16 = (size_t)t->n_groups * (size_t)rows * sizeof(uint16_t);
                if (t->scale_q2) h = fnv(h, t->scale_q2, nq2);
                if (t->zero_q2) h = fnv(h, t->zero_q2, nq2);
                if (t->scale_f16) h = fnv(h, t->scale_f16, nf16);
                if (t->zero_f16) h = fnv(h, t->zero_f16, nf16);
                if (t->perm) h = fnv(h, t->perm, (size_t)cols * sizeof(int32_t));
                h = fnv(h, t->outlier_rowptr, (size_t)(rows + 1) * sizeof(int32_t));
                h = fnv(h, t->outlier_col, (size_t)t->nnz * sizeof(uint16_t));
                h = fnv(h, t->outlier_val, (size_t)t->nnz * sizeof(uint16_t));
                h = fnv(h, Wq, sizeof(float) * (size_t)rows * cols);
                h = fnv(h, mask, (size_t)rows * cols);
                rel = rep.rel_hessian_error;
                snprintf(line, sizeof line, "%dx%d %s %016llx nnz %lld", rows, cols, s->name, (unsigned long long)h,
                         (long long)t->nnz);
                spqr_tensor_free(t);
                if (dump || diff) dump_or_diff(dump ? dump : diff, !!dump, n, W, Wq, (size_t)rows * cols);
            }
            n++;
            if (gf) {
                char want[320];
                do
                    if (!fgets(want, sizeof want, gf)) want[0] = 0;
                while (want[0] == '#'); /* comments: the BLAS core the file was made with */
                want[strcspn(want, "\n")] = 0;
                char *rs = strstr(want, " rel ");
                const double want_rel = rs ? strtod(rs + 5, NULL) : NAN;
                if (rs) *rs = 0;
                const double d = fabs(rel - want_rel) / (fabs(want_rel) > 0 ? fabs(want_rel) : 1.0);
                if (d > max_rel_diff || isnan(d)) max_rel_diff = isnan(d) ? INFINITY : d;
                if ((!rel_only && strcmp(want, line)) || !(d <= rel_tol)) {
                    n_bad++;
                    printf("DIFF %s rel %.17g\n  want %s rel %.17g\n", line, rel, want, want_rel);
                }
            } else {
                printf("%s rel %.17g\n", line, rel);
            }
            fflush(stdout);
        }
        free(W);
        free(H);
        free(Wq);
        free(mask);
    }
    if (gf) {
        fclose(gf);
        printf("%d of %d %s (rel_hessian_error within %.0e: largest relative difference %.3g)\n", n - n_bad, n,
               rel_only ? "within tolerance" : "identical", rel_tol, max_rel_diff);
    }
    return n_bad ? 1 : 0;
}
