/* The split-invariant Hessian sum of the pipeline (pipe_hsum,
 * src/quant/pipeline_comm.c; docs/quantize.md, "Scale-out"):
 *  - windows dealt to 1..4 "ranks" in contiguous or interleaved shares, and
 *    added in forward or reverse order, give the same H bit for bit (the
 *    ranks' int64 bins are summed as MPI_Allreduce would);
 *  - H is within 5e-7 (a few float32 ulps of the largest entry) of
 *    (2/n) sum x x^T computed in double from the same float activations,
 *    with windows whose scales span 1e-4 .. 3e2 (several bins), and as near
 *    to the float32 running mean it replaced (printed: the change it makes);
 *  - a window of zeros adds nothing; a non-finite one is refused;
 *  - each window's G (spqri_hessian_window) has the same bits on 1, 2 and
 *    4 threads and is X^T X within float rounding, so H does not depend on
 *    the thread count either. */
#include <cblas.h>
#include <math.h>

#include "quant/hessian.h"
#include "quant/pipeline.h"
void openblas_set_num_threads(int n); /* OpenBLAS's, outside the CBLAS standard */
int openblas_get_num_threads(void);
#include "test_util.h"

#define COLS 96
#define T 48
#define NW 13

static float X[NW][T][COLS];
static float G[COLS * COLS];

static const float SCALE[NW] = {1, 0.5f, 3, 1e-4f, 1, 300, 0.02f, 1, 7, 1, 0.9f, 2e-3f, 1};

/* What MPI_Allreduce(SUM) leaves on every rank: the bins of all ranks added. */
static void merge_ranks(pipe_hsum *h, int n) {
    for (int b = 0; b < HSUM_NBINS; b++)
        for (int r = 1; r < n; r++) {
            if (!h[r].bin[b]) continue;
            if (!h[0].bin[b]) h[0].bin[b] = calloc(h[0].n, sizeof(int64_t));
            for (size_t k = 0; k < h[0].n; k++) h[0].bin[b][k] += h[r].bin[b][k];
        }
}

static void gram(int w) {
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, COLS, T, 1.0f, &X[w][0][0], COLS, 0.0f, G, COLS);
}

/* H (upper triangle) with the windows dealt to n ranks. */
static void hsum_split(int n, int interleaved, int reverse, float *H) {
    pipe_hsum h[4];
    for (int r = 0; r < n; r++) spqri_hsum_init(&h[r], COLS);
    for (int k = 0; k < NW; k++) {
        const int w = reverse ? NW - 1 - k : k;
        const int r = interleaved ? w % n : (int)((int64_t)w * n / NW);
        gram(w);
        CHECK(spqri_hsum_add(&h[r], G, 2, NULL) == SPQR_OK);
    }
    merge_ranks(h, n);
    memset(H, 0, sizeof(float) * COLS * COLS);
    CHECK(spqri_hsum_finish(&h[0], NULL, (int64_t)NW * T, H, NULL) == SPQR_OK);
    for (int r = 0; r < n; r++) spqri_hsum_free(&h[r]);
}

int main(void) {
    test_rng rng = {0x9e3779b97f4a7c15ull};
    for (int w = 0; w < NW; w++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < COLS; c++) {
                float v = test_rng_normal(&rng) * SCALE[w];
                if (c % 17 == 3) v *= 20; /* outlier features, as in LLM activations */
                X[w][t][c] = v;
            }
    static float H[COLS * COLS], H2[COLS * COLS], Hold[COLS * COLS];
    hsum_split(1, 0, 0, H);
    int same = 1;
    for (int n = 1; n <= 4; n++)
        for (int il = 0; il < 2; il++)
            for (int rev = 0; rev < 2; rev++) {
                hsum_split(n, il, rev, H2);
                same &= !memcmp(H, H2, sizeof H);
            }
    CHECK_MSG(same, "H depends on the split or the order of the windows");

    /* reference in double; the old float running mean over windows in order */
    static double R[COLS * COLS];
    memset(Hold, 0, sizeof Hold);
    for (int w = 0; w < NW; w++) {
        for (int t = 0; t < T; t++)
            for (int i = 0; i < COLS; i++)
                for (int j = i; j < COLS; j++) R[i * COLS + j] += (double)X[w][t][i] * X[w][t][j];
        const double n = (double)w * T, tot = n + T;
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, COLS, T, (float)(2.0 / tot), &X[w][0][0], COLS,
                    (float)(n / tot), Hold, COLS);
    }
    double mx = 0, e_new = 0, e_old = 0, d_no = 0, diag_rel = 0;
    for (int i = 0; i < COLS; i++)
        for (int j = i; j < COLS; j++) {
            const double r = R[i * COLS + j] * 2.0 / (NW * T);
            mx = fmax(mx, fabs(r));
            e_new = fmax(e_new, fabs(H[i * COLS + j] - r));
            e_old = fmax(e_old, fabs(Hold[i * COLS + j] - r));
            d_no = fmax(d_no, fabs((double)H[i * COLS + j] - Hold[i * COLS + j]));
            if (i == j) diag_rel = fmax(diag_rel, fabs((double)H[i * COLS + i] - Hold[i * COLS + i]) / Hold[i * COLS + i]);
        }
    printf("max |H - ref| / max|ref|: exact int64 sum %.3g, float running mean %.3g; "
           "max |H_new - H_old| / max|H_old| %.3g, on the diagonal %.3g relative\n",
           e_new / mx, e_old / mx, d_no / mx, diag_rel);
    /* both within a few float32 ulps of the largest entry (2^-24 = 6e-8) */
    CHECK_MSG(e_new <= 5e-7 * mx, "exact sum off the double reference by %g of the largest entry", e_new / mx);
    CHECK_MSG(d_no <= 5e-7 * mx, "exact sum and float running mean differ by %g of the largest entry", d_no / mx);

    /* zeros add nothing; NaN is refused */
    pipe_hsum h;
    spqri_hsum_init(&h, COLS);
    memset(G, 0, sizeof G);
    CHECK(spqri_hsum_add(&h, G, 1, NULL) == SPQR_OK);
    int any = 0;
    for (int b = 0; b < HSUM_NBINS; b++) any |= h.bin[b] != NULL;
    CHECK(!any);
    G[5 * COLS + 5] = NAN;
    spqr_err err = {0};
    CHECK(spqri_hsum_add(&h, G, 1, &err) == SPQR_ERR_NUMERIC);
    spqri_hsum_free(&h);

    /* spqri_hessian_window: the same bytes on 1, 2 and 4 threads (OpenBLAS's
     * own threaded ssyrk does not give them on its Haswell/Zen kernels), and
     * X^T X within float rounding of a double brute force, on a width that
     * is no multiple of its panels */
    const int bc = 700, bt = 256;
    float *bx = malloc(sizeof(float) * bc * bt), *g1 = malloc(sizeof(float) * bc * bc), *g2 = malloc(sizeof(float) * bc * bc);
    for (int i = 0; i < bc * bt; i++) bx[i] = test_rng_normal(&rng);
    openblas_set_num_threads(3); /* restored by the call */
    spqri_hessian_window(g1, bx, bc, bt, 1);
    CHECK(openblas_get_num_threads() == 3);
    double worst = 0.0;
    for (int i = 0; i < bc; i += 7)
        for (int j = i; j < bc; j += 3) {
            double ref = 0.0, mag = 0.0;
            for (int t = 0; t < bt; t++) {
                ref += (double)bx[t * bc + i] * bx[t * bc + j];
                mag += fabs((double)bx[t * bc + i] * bx[t * bc + j]);
            }
            const double e = fabs(g1[i * bc + j] - ref) / mag;
            worst = e > worst ? e : worst;
        }
    CHECK_MSG(worst < 1e-5, "hessian window off the double brute force by %g of the magnitude", worst);
    for (int th = 2; th <= 4; th *= 2) {
        memcpy(g2, g1, sizeof(float) * bc * bc);
        for (int i = 0; i < bc; i++) g2[i * bc + i] += 1.0f; /* stale data that beta 0 must overwrite */
        spqri_hessian_window(g2, bx, bc, bt, th);
        int same = 1;
        for (int i = 0; i < bc; i++) same &= !memcmp(g1 + i * bc + i, g2 + i * bc + i, sizeof(float) * (bc - i));
        CHECK_MSG(same, "hessian window with %d threads differs from 1 thread", th);
    }
    free(bx), free(g1), free(g2);
    TEST_SUMMARY();
}
