/* Input checks at the edges of the library: the one input-open helper
 * refuses FIFOs and devices without blocking, a model path is classified
 * (directory, .spqr, GGUF, bare safetensors, ...) with a message that names
 * the real problem, and non-finite weights are found at load and named. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/file.h"
#include "io/finite.h"
#include "model/model_path.h"
#include "spqr.h"
#include "test_util.h"

static char g_tmp[64];

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(p, 1, n, f) == n);
    fclose(f);
}

static int has(const spqr_err *e, const char *needle) {
    if (strstr(e->msg, needle)) return 1;
    fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", e->msg, needle);
    return 0;
}

static void open_input_tests(void) {
    char fifo[128], reg[128];
    snprintf(fifo, sizeof fifo, "%s/in.fifo", g_tmp);
    snprintf(reg, sizeof reg, "%s/in.txt", g_tmp);
    CHECK(mkfifo(fifo, 0600) == 0);
    write_bytes(reg, "hello", 5);
    spqr_err e = {0};
    int fd = 123;
    /* a FIFO with no writer: refused at once (alarm() in main turns a hang into a failure) */
    CHECK(spqr_file_open_input(fifo, &fd, NULL, &e) == SPQR_ERR_IO && fd == -1);
    CHECK(has(&e, "not a regular file (a FIFO)"));
    CHECK(spqr_file_open_input(g_tmp, &fd, NULL, &e) == SPQR_ERR_IO && has(&e, "(a directory)"));
    CHECK(spqr_file_open_input("/dev/null", &fd, NULL, &e) == SPQR_ERR_IO && has(&e, "(a character device)"));
    CHECK(spqr_file_open_input("/nonexistent/x", &fd, NULL, &e) == SPQR_ERR_IO && has(&e, "cannot open"));
    struct stat st;
    CHECK(spqr_file_open_input(reg, &fd, &st, &e) == SPQR_OK && fd >= 0 && st.st_size == 5);
    if (fd >= 0) {
        CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) == 0); /* reads block normally afterwards */
        close(fd);
    }
    /* every reader goes through it */
    char *txt = NULL;
    size_t len = 0;
    spqr_mapped_file m;
    CHECK(spqr_file_read_text(fifo, 100, &txt, &len, &e) == SPQR_ERR_IO && txt == NULL && has(&e, "FIFO"));
    CHECK(spqr_file_map(fifo, 0, 0, &m, &e) == SPQR_ERR_IO && has(&e, "FIFO"));
    spqr_safetensors *sf = NULL;
    CHECK(spqr_safetensors_open(fifo, &sf, &e) != SPQR_OK && sf == NULL && has(&e, "FIFO"));
    spqr_archive *a = NULL;
    CHECK(spqr_archive_open(fifo, &a, &e) != SPQR_OK && a == NULL && has(&e, "FIFO"));
    spqr_tokenizer *t = NULL;
    CHECK(spqr_tokenizer_load(fifo, &t, &e) != SPQR_OK && t == NULL && has(&e, "FIFO"));
    unlink(fifo);
    unlink(reg);
}

static void expect_class(const char *path, spqr_status code, int kind, const char *needle) {
    spqr_err e = {0};
    spqr_model_path_kind k = (spqr_model_path_kind)-1;
    spqr_status s = spqr_model_path_classify(path, &k, &e);
    CHECK_MSG(s == code, "%s: status %d, want %d (%s)", path, s, code, e.msg);
    if (code == SPQR_OK) CHECK_MSG((int)k == kind, "%s: kind %d, want %d", path, k, kind);
    if (needle) CHECK(has(&e, needle));
}

static void model_path_tests(const char *fix) {
    char p[256], dir[1100];
    snprintf(dir, sizeof dir, "%s/tiny_gqa", fix);
    expect_class(dir, SPQR_OK, SPQR_MODEL_PATH_DIR, NULL);
    snprintf(p, sizeof p, "%s/m.spqr", g_tmp);
    write_bytes(p, "SPQRMDL\0rest-of-a-header", 24);
    expect_class(p, SPQR_OK, SPQR_MODEL_PATH_SPQR, NULL);
    snprintf(p, sizeof p, "%s/m.gguf", g_tmp);
    write_bytes(p, "GGUF\3\0\0\0\0\0\0\0\0\0\0\0", 16);
    expect_class(p, SPQR_ERR_FORMAT, 0, "is a GGUF file (llama.cpp)");
    snprintf(p, sizeof p, "%s/tiny_gqa/model.safetensors", fix);
    expect_class(p, SPQR_ERR_FORMAT, 0, "bare safetensors file: pass the directory that holds it");
    snprintf(p, sizeof p, "%s/empty", g_tmp);
    write_bytes(p, "", 0);
    expect_class(p, SPQR_ERR_FORMAT, 0, "empty file");
    snprintf(p, sizeof p, "%s/junk.spqr", g_tmp);
    write_bytes(p, "not a model at all", 18);
    expect_class(p, SPQR_ERR_FORMAT, 0, "neither a .spqr file");
    snprintf(p, sizeof p, "%s/missing.spqr", g_tmp);
    expect_class(p, SPQR_ERR_IO, 0, "missing.spqr does not exist");
    expect_class("/dev/zero", SPQR_ERR_IO, 0, "/dev/zero is a character device, not a model");
    snprintf(p, sizeof p, "%s/m.fifo", g_tmp);
    CHECK(mkfifo(p, 0600) == 0);
    expect_class(p, SPQR_ERR_IO, 0, "is a FIFO, not a model");
    /* the loaders give the same answers */
    spqr_model *m = NULL;
    spqr_err e = {0};
    CHECK(spqr_model_load(p, NULL, &m, &e) == SPQR_ERR_IO && m == NULL && has(&e, "FIFO"));
    CHECK(spqr_model_load_hf(p, NULL, &m, &e) == SPQR_ERR_IO && m == NULL && has(&e, "FIFO"));
    unlink(p);
    snprintf(p, sizeof p, "%s/m.gguf", g_tmp);
    CHECK(spqr_model_load(p, NULL, &m, &e) == SPQR_ERR_FORMAT && has(&e, "GGUF"));
    snprintf(p, sizeof p, "%s/m.spqr", g_tmp);
    CHECK(spqr_model_load_hf(p, NULL, &m, &e) != SPQR_OK && has(&e, "is a .spqr file"));
    const char *names[] = {"m.spqr", "m.gguf", "empty", "junk.spqr"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", g_tmp, names[i]);
        unlink(p);
    }
}

static uint16_t f16_bits(int sign, int expo, int mant) { return (uint16_t)(sign << 15 | expo << 10 | mant); }

static void finite_tests(void) {
    /* finite extremes are not flagged */
    const float f32_ok[] = {0.0f, -0.0f, 3.4028235e38f, -3.4028235e38f, 1e-45f, -1.0f};
    CHECK(spqr_first_nonfinite(f32_ok, SPQR_DTYPE_F32, 6) == -1);
    const uint16_t f16_ok[] = {0, 0x8000, f16_bits(0, 30, 0x3ff), f16_bits(1, 30, 0x3ff), 1};
    CHECK(spqr_first_nonfinite(f16_ok, SPQR_DTYPE_F16, 5) == -1);
    const uint16_t bf16_ok[] = {0, 0x8000, 0x7f7f, 0xff7f, 0x0001, 0x3f80};
    CHECK(spqr_first_nonfinite(bf16_ok, SPQR_DTYPE_BF16, 6) == -1);
    /* 0x7c00 is +Inf in F16 but a finite number (2^121) in BF16 */
    const uint16_t h_inf = 0x7c00, b_inf = 0x7f80;
    CHECK(spqr_first_nonfinite(&h_inf, SPQR_DTYPE_F16, 1) == 0);
    CHECK(spqr_first_nonfinite(&h_inf, SPQR_DTYPE_BF16, 1) == -1);
    CHECK(spqr_first_nonfinite(&b_inf, SPQR_DTYPE_BF16, 1) == 0);
    CHECK(spqr_first_nonfinite(f32_ok, SPQR_DTYPE_I32, 6) == -1);

    /* a large array (many parallel chunks), misaligned, two bad values: the first is reported */
    const uint64_t n = 3000000;
    for (int dt = 0; dt < 3; dt++) {
        const spqr_dtype d = dt == 0 ? SPQR_DTYPE_F32 : dt == 1 ? SPQR_DTYPE_F16 : SPQR_DTYPE_BF16;
        const size_t es = d == SPQR_DTYPE_F32 ? 4 : 2;
        uint8_t *raw = calloc(n * es + 1, 1);
        CHECK(raw != NULL);
        if (!raw) return;
        for (int off = 0; off < 2; off++) {
            uint8_t *p = raw + off;
            memset(raw, 0, n * es + 1);
            CHECK(spqr_first_nonfinite(p, d, n) == -1);
            const uint32_t nan32 = 0x7fc00000u;
            const uint16_t nan16 = d == SPQR_DTYPE_F16 ? 0x7e00 : 0x7fc0;
            const uint64_t at[2] = {2876543, 2999999};
            for (int k = 1; k >= 0; k--) {
                memcpy(p + at[k] * es, es == 4 ? (const void *)&nan32 : (const void *)&nan16, es);
                CHECK_MSG(spqr_first_nonfinite(p, d, n) == (int64_t)at[k], "dtype %d offset %d: %lld", dt, off,
                          (long long)spqr_first_nonfinite(p, d, n));
            }
            CHECK(spqr_first_nonfinite(p, d, at[0]) == -1); /* n excludes it */
        }
        free(raw);
    }

    /* the message names the tensor, the kind of value and the element */
    float w[6] = {1, 2, 3, 4, -INFINITY, NAN};
    spqr_st_tensor t = {.name = "model.embed_tokens.weight", .dtype = SPQR_DTYPE_F32, .ndim = 2,
                        .shape = {2, 3}, .numel = 6, .data = w, .nbytes = sizeof w};
    spqr_err e = {0};
    CHECK(spqr_st_tensor_check_finite(&t, &e) == SPQR_ERR_FORMAT);
    CHECK(has(&e, "tensor model.embed_tokens.weight holds -Inf at element 4 (row 1, column 1)"));
    w[4] = 0;
    CHECK(spqr_st_tensor_check_finite(&t, &e) == SPQR_ERR_FORMAT && has(&e, "NaN at element 5"));
    w[5] = 0;
    CHECK(spqr_st_tensor_check_finite(&t, &e) == SPQR_OK);
}

/* A .spqr whose dense tensor holds NaN is refused at load, naming it. */
static void spqr_dense_nan_test(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/nan.spqr", g_tmp);
    uint16_t emb[8] = {0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x7e00, 0x3c00};
    const int64_t shape[2] = {2, 4};
    spqr_archive_writer *w = NULL;
    spqr_err e = {0};
    spqr_status s = spqr_archive_writer_create(path, &w, &e);
    if (!s) s = spqr_archive_writer_add_dense(w, "model.embed_tokens.weight", SPQR_DTYPE_F16, 2, shape, emb, &e);
    if (!s) s = spqr_archive_writer_finish(w, &e);
    spqr_archive_writer_free(w);
    CHECK_MSG(s == SPQR_OK, "writer: %s", e.msg);
    spqr_model *m = NULL;
    CHECK(spqr_model_load(path, NULL, &m, &e) == SPQR_ERR_FORMAT && m == NULL);
    CHECK(has(&e, "tensor model.embed_tokens.weight holds NaN at element 6 (row 1, column 2)"));
    unlink(path);
}

/* A .spqr holding every tensor of the tiny_gqa checkpoint (dense), plus
 * extra (NULL: none): loads without extra; with a tensor the model does not
 * bind (a layer beyond num_hidden_layers, a stray name) it is refused, as
 * the checkpoint loader refuses it. */
static spqr_status load_with_extra(const char *fix, const char *extra, spqr_err *e) {
    char path[600], p[600];
    snprintf(path, sizeof path, "%s/extra.spqr", g_tmp);
    char *cfg = NULL, *tok = NULL;
    size_t cl = 0, tl = 0;
    spqr_safetensors *st = NULL;
    spqr_archive_writer *w = NULL;
    snprintf(p, sizeof p, "%s/tiny_gqa/config.json", fix);
    spqr_status s = spqr_file_read_text(p, 1 << 20, &cfg, &cl, e);
    snprintf(p, sizeof p, "%s/tiny_gqa/tokenizer.json", fix);
    if (!s) s = spqr_file_read_text(p, 16 << 20, &tok, &tl, e);
    snprintf(p, sizeof p, "%s/tiny_gqa/model.safetensors", fix);
    if (!s) s = spqr_safetensors_open(p, &st, e);
    if (!s) s = spqr_archive_writer_create(path, &w, e);
    if (!s) s = spqr_archive_writer_add_config(w, cfg, e);
    if (!s) s = spqr_archive_writer_add_tokenizer(w, tok, tl, e);
    for (int32_t i = 0; !s && i < spqr_safetensors_count(st); i++) {
        const spqr_st_tensor *t = spqr_safetensors_at(st, i);
        s = spqr_archive_writer_add_dense(w, t->name, t->dtype, t->ndim, t->shape, t->data, e);
        if (!s && extra && !strcmp(t->name, "model.norm.weight"))
            s = spqr_archive_writer_add_dense(w, extra, t->dtype, t->ndim, t->shape, t->data, e);
    }
    if (!s) s = spqr_archive_writer_finish(w, e);
    spqr_archive_writer_free(w);
    if (st) spqr_safetensors_close(st);
    free(cfg);
    free(tok);
    if (s) return s;
    spqr_model *m = NULL;
    s = spqr_model_load(path, NULL, &m, e);
    spqr_model_free(m);
    unlink(path);
    return s;
}

static void spqr_unused_tests(const char *fix) {
    spqr_err e = {0};
    CHECK_MSG(load_with_extra(fix, NULL, &e) == SPQR_OK, "%s", e.msg);
    CHECK(load_with_extra(fix, "model.layers.7.input_layernorm.weight", &e) == SPQR_ERR_FORMAT &&
          has(&e, "model.layers.7.input_layernorm.weight is not used by a 2-layer model"));
    CHECK(load_with_extra(fix, "extra.weight", &e) == SPQR_ERR_FORMAT && has(&e, "extra.weight is not used by the model"));
    CHECK(load_with_extra(fix, "model.layers.0.self_attn.q_proj.bias", &e) == SPQR_ERR_FORMAT &&
          has(&e, "q_proj.bias is not used"));
}

int main(int argc, char **argv) {
    const char *fix = argc > 1 ? argv[1] : "tests/fixtures";
    alarm(60); /* a blocking open() must fail the test, not hang the suite */
    strcpy(g_tmp, "/tmp/spqr_test_input_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    open_input_tests();
    model_path_tests(fix);
    finite_tests();
    spqr_dense_nan_test();
    spqr_unused_tests(fix);
    rmdir(g_tmp);
    TEST_SUMMARY();
}
