/* End-to-end numeric check of `spqr quantize-matrix`: runs the CLI binary
 * on tests/fixtures/layer_cli.safetensors and compares its output file with
 * the PyTorch reference's expected_weight / expected_mask (bit for bit, see
 * tests/fixtures/README.md) and its metadata with independent recomputation.
 * Then feeds the same matrices as BF16 and checks the CLI's result equals
 * the library run on the bf16-rounded values (the F16/BF16 input path).
 *
 * The spqr binary is found next to this test binary (same CMake build dir)
 * or through $SPQR_BIN. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spqr.h"
#include "test_util.h"

static char g_bin[PATH_MAX];
static char g_dir[256];

static int find_binary(void) {
    const char *env = getenv("SPQR_BIN");
    if (env && *env) {
        snprintf(g_bin, sizeof g_bin, "%s", env);
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 16);
        if (n <= 0) return -1;
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (!slash) return -1;
        *slash = 0;
        memcpy(g_bin, self, strlen(self));
        memcpy(g_bin + strlen(self), "/spqr", 6);
    }
    return access(g_bin, X_OK);
}

/* Runs `spqr quantize-matrix in -o out [extra]`; returns the exit status. */
static int run_cli(const char *in, const char *out, const char *extra) {
    pid_t pid = fork();
    if (pid == 0) {
        if (extra) execl(g_bin, g_bin, "quantize-matrix", in, "-o", out, extra, (char *)NULL);
        else execl(g_bin, g_bin, "quantize-matrix", in, "-o", out, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static double meta_num(const spqr_safetensors *f, const char *key) {
    const char *v = spqr_safetensors_metadata(f, key);
    CHECK_MSG(v != NULL, "metadata %s missing", key);
    if (!v) return NAN;
    char *end;
    double d = strtod(v, &end);
    CHECK_MSG(*v && !*end, "metadata %s='%s' is not a number", key, v);
    return d;
}

static float *load_f32(const spqr_safetensors *f, const char *name, int64_t *numel) {
    const spqr_st_tensor *t = spqr_safetensors_find(f, name);
    CHECK_MSG(t != NULL, "tensor %s missing", name);
    if (!t) return NULL;
    float *m = malloc((size_t)t->numel * sizeof *m + 1);
    spqr_err e = {0};
    CHECK_MSG(spqr_st_tensor_to_f32(t, m, &e) == SPQR_OK, "%s", e.msg);
    *numel = t->numel;
    return m;
}

static void test_fixture(const char *fixture_dir) {
    char in[PATH_MAX], out[PATH_MAX];
    snprintf(in, sizeof in, "%s/layer_cli.safetensors", fixture_dir);
    snprintf(out, sizeof out, "%s/out.safetensors", g_dir);
    int rc = run_cli(in, out, NULL);
    CHECK_MSG(rc == 0, "spqr quantize-matrix exited %d", rc);
    if (rc != 0) return;

    spqr_safetensors *ref = NULL, *got = NULL;
    spqr_err e = {0};
    CHECK_MSG(spqr_safetensors_open(in, &ref, &e) == SPQR_OK, "%s", e.msg);
    CHECK_MSG(spqr_safetensors_open(out, &got, &e) == SPQR_OK, "%s", e.msg);
    if (!ref || !got) goto done;

    const spqr_st_tensor *w = spqr_safetensors_find(got, "weight");
    const spqr_st_tensor *m = spqr_safetensors_find(got, "outlier_mask");
    const spqr_st_tensor *ew = spqr_safetensors_find(ref, "expected_weight");
    const spqr_st_tensor *em = spqr_safetensors_find(ref, "expected_mask");
    CHECK(w && m && ew && em);
    if (!w || !m || !ew || !em) goto done;
    CHECK(w->dtype == SPQR_DTYPE_F32 && m->dtype == SPQR_DTYPE_U8);
    CHECK(w->ndim == 2 && w->shape[0] == ew->shape[0] && w->shape[1] == ew->shape[1]);
    CHECK(m->ndim == 2 && m->shape[0] == em->shape[0] && m->shape[1] == em->shape[1]);
    CHECK(spqr_safetensors_count(got) == 2);
    if (w->numel != ew->numel || m->numel != em->numel) goto done;

    int64_t n = w->numel, rows = w->shape[0], cols = w->shape[1];
    float *gw = malloc((size_t)n * 4), *rw = malloc((size_t)n * 4);
    spqr_st_tensor_to_f32(w, gw, &e);
    spqr_st_tensor_to_f32(ew, rw, &e);
    const uint8_t *gm = m->data, *rm = em->data;
    int64_t wdiff = 0, mdiff = 0, nnz = 0;
    double maxd = 0;
    for (int64_t i = 0; i < n; i++) {
        if (memcmp(&gw[i], &rw[i], 4) != 0) wdiff++;
        if (fabs((double)gw[i] - rw[i]) > maxd) maxd = fabs((double)gw[i] - rw[i]);
        if ((gm[i] != 0) != (rm[i] != 0)) mdiff++;
        CHECK(gm[i] <= 1);
        nnz += gm[i] != 0;
    }
    CHECK_MSG(wdiff == 0, "%lld of %lld weights differ from the reference (max |diff| %g)", (long long)wdiff,
              (long long)n, maxd);
    CHECK_MSG(mdiff == 0, "%lld mask entries differ from the reference", (long long)mdiff);

    /* metadata: parameters are the defaults, numbers consistent */
    spqr_quant_params p;
    spqr_quant_params_default(&p);
    CHECK(meta_num(got, "wbits") == p.wbits);
    CHECK(meta_num(got, "groupsize") == p.groupsize);
    CHECK(meta_num(got, "qq_scale_bits") == p.qq_scale_bits);
    CHECK(meta_num(got, "qq_zero_bits") == p.qq_zero_bits);
    CHECK(meta_num(got, "qq_groupsize") == p.qq_groupsize);
    CHECK((float)meta_num(got, "outlier_threshold") == p.outlier_threshold);
    CHECK((float)meta_num(got, "percdamp") == p.percdamp);
    const char *perm = spqr_safetensors_metadata(got, "perm");
    CHECK(perm && !strcmp(perm, p.perm == SPQR_PERM_ACT_ORDER ? "act_order" : "identity"));
    CHECK(meta_num(got, "outlier_count") == (double)nnz);
    double ref_nout = meta_num(ref, "n_outliers");
    CHECK_MSG(ref_nout == (double)nnz, "outliers %lld, reference %g", (long long)nnz, ref_nout);
    double rel = meta_num(got, "rel_hessian_error"), ref_rel = meta_num(ref, "rel_error");
    CHECK_MSG(fabs(rel - ref_rel) <= 1e-6 * ref_rel, "rel error %.9g vs reference %.9g", rel, ref_rel);
    CHECK(meta_num(got, "seconds") >= 0);

    /* The size formula, recomputed from the mask: the method note's nominal
     * form b + (qs+qz)/b1 + 64/(b1*b2) + 32*nnz/N, or the same terms counted
     * over the real (partial) groups of this 24x40 matrix. */
    double N = (double)n, b1 = p.groupsize, b2 = p.qq_groupsize;
    double ng = ceil(cols / b1), nq = ceil(rows / b2);
    double nominal = p.wbits + (p.qq_scale_bits + p.qq_zero_bits) / b1 + 64.0 / (b1 * b2) + 32.0 * nnz / N;
    double counted = p.wbits + (p.qq_scale_bits + p.qq_zero_bits) * ng * rows / N + 64.0 * ng * nq / N +
                     32.0 * nnz / N;
    double formula = meta_num(got, "avg_bits_formula"), measured = meta_num(got, "avg_bits_measured");
    CHECK_MSG(fabs(formula - nominal) < 1e-5 || fabs(formula - counted) < 1e-5,
              "avg_bits_formula %.6f, expected %.6f (nominal) or %.6f (counted)", formula, nominal, counted);
    /* measured counts every stored byte: never below the counted formula,
     * and the extra is at most rowptr + perm + byte padding */
    double extra_max = (32.0 * (rows + 1) + 32.0 * cols + 8.0 * 8) / N;
    CHECK_MSG(measured >= counted - 1e-5 && measured <= counted + extra_max + 1e-5,
              "avg_bits_measured %.6f outside [%.6f, %.6f]", measured, counted, counted + extra_max);
    free(gw);
    free(rw);
done:
    spqr_safetensors_close(ref);
    spqr_safetensors_close(got);
}

/* BF16 inputs: the CLI must equal the library run on the rounded values. */
static void test_bf16_input(const char *fixture_dir) {
    char in[PATH_MAX], bf[PATH_MAX], out[PATH_MAX];
    snprintf(in, sizeof in, "%s/layer_cli.safetensors", fixture_dir);
    snprintf(bf, sizeof bf, "%s/bf16.safetensors", g_dir);
    snprintf(out, sizeof out, "%s/bf16_out.safetensors", g_dir);
    spqr_safetensors *ref = NULL;
    spqr_err e = {0};
    if (spqr_safetensors_open(in, &ref, &e) != SPQR_OK) {
        CHECK_MSG(0, "%s", e.msg);
        return;
    }
    int64_t nw = 0, nh = 0;
    float *W = load_f32(ref, "weight", &nw), *H = load_f32(ref, "hessian", &nh);
    const spqr_st_tensor *tw = spqr_safetensors_find(ref, "weight");
    int32_t rows = (int32_t)tw->shape[0], cols = (int32_t)tw->shape[1];
    uint16_t *Wb = malloc((size_t)nw * 2), *Hb = malloc((size_t)nh * 2);
    for (int64_t i = 0; i < nw; i++) {
        Wb[i] = spqr_fp32_to_bf16(W[i]);
        W[i] = spqr_bf16_to_fp32(Wb[i]);
    }
    for (int64_t i = 0; i < nh; i++) {
        Hb[i] = spqr_fp32_to_bf16(H[i]);
        H[i] = spqr_bf16_to_fp32(Hb[i]);
    }
    spqr_st_writer *wr = NULL;
    spqr_st_writer_create(&wr, &e);
    int64_t sw[2] = {rows, cols}, sh[2] = {cols, cols};
    spqr_st_writer_add(wr, "hessian", SPQR_DTYPE_BF16, 2, sh, Hb, &e);
    spqr_st_writer_add(wr, "weight", SPQR_DTYPE_BF16, 2, sw, Wb, &e);
    CHECK_MSG(spqr_st_writer_write(wr, bf, &e) == SPQR_OK, "%s", e.msg);
    spqr_st_writer_free(wr);

    int rc = run_cli(bf, out, "--wbits=4");
    CHECK_MSG(rc == 0, "bf16 run exited %d", rc);
    spqr_quant_params p;
    spqr_quant_params_default(&p);
    p.wbits = 4;
    float *lw = malloc((size_t)nw * 4);
    uint8_t *lm = malloc((size_t)nw);
    spqr_quant_report rep;
    CHECK_MSG(spqr_quantize_layer(W, rows, cols, H, &p, 2, NULL, NULL, lw, lm, &rep, &e) == SPQR_OK, "%s", e.msg);
    spqr_safetensors *got = NULL;
    spqr_status os = rc == 0 ? spqr_safetensors_open(out, &got, &e) : SPQR_ERR_IO;
    CHECK_MSG(rc != 0 || os == SPQR_OK, "bf16 output: %s", e.msg);
    if (os == SPQR_OK) {
        const spqr_st_tensor *gw = spqr_safetensors_find(got, "weight");
        const spqr_st_tensor *gm = spqr_safetensors_find(got, "outlier_mask");
        CHECK(gw && gm && gw->numel == nw && gm->numel == nw);
        if (gw && gm && gw->numel == nw) {
            CHECK_MSG(memcmp(gw->data, lw, (size_t)nw * 4) == 0, "bf16: CLI weight differs from the library");
            CHECK_MSG(memcmp(gm->data, lm, (size_t)nw) == 0, "bf16: CLI mask differs from the library");
        }
        CHECK(meta_num(got, "wbits") == 4);
        CHECK(meta_num(got, "outlier_count") == (double)rep.n_outliers);
        spqr_safetensors_close(got);
    }
    free(W);
    free(H);
    free(Wb);
    free(Hb);
    free(lw);
    free(lm);
    spqr_safetensors_close(ref);
}

int main(int argc, char **argv) {
    const char *fixtures = argc > 1 ? argv[1] : "tests/fixtures";
    if (find_binary() != 0) {
        fprintf(stderr, "spqr binary not found at '%s' (set SPQR_BIN)\n", g_bin);
        return 1;
    }
    snprintf(g_dir, sizeof g_dir, "%s/spqr_test_qmf_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) return 1;
    test_fixture(fixtures);
    test_bf16_input(fixtures);
    char p[PATH_MAX];
    const char *files[] = {"out.safetensors", "bf16.safetensors", "bf16_out.safetensors"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", g_dir, files[i]);
        unlink(p);
    }
    rmdir(g_dir);
    TEST_SUMMARY();
}
