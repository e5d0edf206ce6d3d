/* .spqr model files: CRC32C against published vectors, writer/reader round
 * trips with real packed tensors (dequantized bit for bit), every kind of
 * corruption and hostile patch (rejected with a message, never a crash),
 * atomic replacement, and the fuzzer's regression inputs. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/spqr_file.h"
#include "format/tensor.h"
#include "spqr.h"
#include "spqr_file_fixup.h"
#include "test_util.h"

/* ---------------------------------------------------------------- */
/* CRC32C                                                            */
/* ---------------------------------------------------------------- */

static uint32_t crc_bitwise(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

static void test_crc(void) {
    CHECK(spqr_crc32c("123456789", 9) == 0xE3069283u);
    CHECK(spqr_crc32c_update_portable(0, "123456789", 9) == 0xE3069283u);
    uint8_t buf[32];
    /* RFC 3720 (iSCSI) appendix B.4 vectors */
    memset(buf, 0, 32);
    CHECK(spqr_crc32c(buf, 32) == 0x8A9136AAu);
    memset(buf, 0xFF, 32);
    CHECK(spqr_crc32c(buf, 32) == 0x62A8AB43u);
    for (int i = 0; i < 32; i++) buf[i] = (uint8_t)i;
    CHECK(spqr_crc32c(buf, 32) == 0x46DD794Eu);
    for (int i = 0; i < 32; i++) buf[i] = (uint8_t)(31 - i);
    CHECK(spqr_crc32c(buf, 32) == 0x113FDB5Cu);
    CHECK(spqr_crc32c(NULL, 0) == 0);
    /* The sliced loop against the bitwise definition at every alignment and
     * length, and incremental updates against one shot. */
    uint8_t rnd[300];
    test_rng r = {0x9E3779B97F4A7C15ull};
    for (size_t i = 0; i < sizeof rnd; i++) rnd[i] = (uint8_t)test_rng_next(&r);
    int bad = 0;
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len + off <= sizeof rnd; len += 7) {
            if (spqr_crc32c(rnd + off, len) != crc_bitwise(rnd + off, len)) bad++;
            if (spqr_crc32c_update_portable(0, rnd + off, len) != crc_bitwise(rnd + off, len)) bad++;
            size_t cut = len / 3;
            uint32_t c = spqr_crc32c_update(spqr_crc32c(rnd + off, cut), rnd + off + cut, len - cut);
            if (c != crc_bitwise(rnd + off, len)) bad++;
        }
    CHECK_MSG(bad == 0, "%d CRC mismatches against the bitwise reference", bad);
}

/* ---------------------------------------------------------------- */
/* Building a valid file                                             */
/* ---------------------------------------------------------------- */

#define N_PACKED 4
#define ROWS 37
#define COLS 52

static const char *CONFIG = "{\"model_type\":\"llama\",\"hidden_size\":52,\"num_hidden_layers\":1}";
static const char *META = "{\"format\":\"spqr\",\"layers\":{\"l0\":{\"wbits\":3,\"rel_err\":0.0123}}}";
static const char TOKENIZER[] = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}}}";

typedef struct {
    spqr_tensor *t[N_PACKED];
    float *W_hat[N_PACKED]; /* engine's dequantized output, original order */
    char names[N_PACKED][48];
    float f32[6];
    uint16_t f16[12], bf16[5];
} fixture;

static void make_params(int which, spqr_quant_params *p) {
    spqr_quant_params_default(p);
    switch (which) {
    case 0: /* paper defaults: bilevel 3/3, outliers, act_order */
        p->outlier_threshold = 0.05f;
        break;
    case 1: /* 16-bit statistics, outliers, identity permutation */
        p->qq_scale_bits = 0;
        p->qq_zero_bits = 0;
        p->perm = SPQR_PERM_IDENTITY;
        p->wbits = 4;
        p->outlier_threshold = 0.02f;
        break;
    case 2: /* bilevel, no outliers, act_order, odd groups */
        p->outlier_threshold = 0.0f;
        p->groupsize = 24;
        p->qq_groupsize = 5;
        break;
    default: /* mixed statistics, whole-row groups, no perm, no outliers */
        p->qq_scale_bits = 4;
        p->qq_zero_bits = 0;
        p->groupsize = 0;
        p->perm = SPQR_PERM_IDENTITY;
        p->outlier_threshold = 0.0f;
        p->wbits = 2;
        break;
    }
}

static int build_fixture(fixture *fx) {
    memset(fx, 0, sizeof *fx);
    test_rng r = {12345};
    float *W = malloc(sizeof(float) * ROWS * COLS);
    float *X = malloc(sizeof(float) * 200 * COLS);
    float *H = calloc((size_t)COLS * COLS, sizeof(float));
    for (int i = 0; i < 200 * COLS; i++) X[i] = test_rng_normal(&r) * (1.0f + (float)(i % COLS) / 10.0f);
    for (int n = 0; n < 200; n++)
        for (int i = 0; i < COLS; i++)
            for (int j = 0; j < COLS; j++) H[i * COLS + j] += X[n * COLS + i] * X[n * COLS + j] / 100.0f;
    for (int k = 0; k < N_PACKED; k++) {
        for (int i = 0; i < ROWS * COLS; i++) W[i] = test_rng_normal(&r) * (i % 29 == 0 ? 8.0f : 1.0f);
        spqr_quant_params p;
        make_params(k, &p);
        fx->W_hat[k] = malloc(sizeof(float) * ROWS * COLS);
        spqr_err err;
        if (spqr_quantize_layer(W, ROWS, COLS, H, &p, 1, NULL, &fx->t[k], fx->W_hat[k], NULL, NULL, &err) != SPQR_OK) {
            fprintf(stderr, "quantize %d failed: %s\n", k, err.msg);
            return -1;
        }
        snprintf(fx->names[k], sizeof fx->names[k], "model.layers.%d.mlp.proj.weight", k);
    }
    for (int i = 0; i < 6; i++) fx->f32[i] = test_rng_normal(&r);
    for (int i = 0; i < 12; i++) fx->f16[i] = spqr_fp32_to_fp16(test_rng_normal(&r));
    for (int i = 0; i < 5; i++) fx->bf16[i] = spqr_fp32_to_bf16(test_rng_normal(&r));
    free(W);
    free(X);
    free(H);
    return 0;
}

static void free_fixture(fixture *fx) {
    for (int k = 0; k < N_PACKED; k++) {
        spqr_tensor_free(fx->t[k]);
        free(fx->W_hat[k]);
    }
}

static const int64_t SHAPE_F32[2] = {2, 3}, SHAPE_F16[3] = {2, 3, 2}, SHAPE_BF16[1] = {5}, SHAPE_EMPTY[2] = {0, 7};

static spqr_status write_fixture(const fixture *fx, const char *path, spqr_err *err) {
    spqr_archive_writer *w;
    spqr_status s = spqr_archive_writer_create(path, &w, err);
    if (s) return s;
    if (!s) s = spqr_archive_writer_add_config(w, CONFIG, err);
    if (!s) s = spqr_archive_writer_add_tokenizer(w, TOKENIZER, sizeof TOKENIZER - 1, err);
    if (!s) s = spqr_archive_writer_add_dense(w, "model.embed_tokens.weight", SPQR_DTYPE_F16, 3, SHAPE_F16, fx->f16, err);
    for (int k = 0; k < N_PACKED && !s; k++) {
        s = spqr_archive_writer_add_packed(w, fx->names[k], fx->t[k], err);
        if (!s && k == 1) s = spqr_archive_writer_add_dense(w, "norm.f32", SPQR_DTYPE_F32, 2, SHAPE_F32, fx->f32, err);
    }
    if (!s) s = spqr_archive_writer_add_dense(w, "norm.bf16", SPQR_DTYPE_BF16, 1, SHAPE_BF16, fx->bf16, err);
    if (!s) s = spqr_archive_writer_add_dense(w, "scalar", SPQR_DTYPE_F32, 0, NULL, fx->f32, err);
    if (!s) s = spqr_archive_writer_add_dense(w, "empty", SPQR_DTYPE_F16, 2, SHAPE_EMPTY, NULL, err);
    if (!s) s = spqr_archive_writer_add_metadata(w, META, err);
    if (!s) s = spqr_archive_writer_finish(w, err);
    spqr_archive_writer_free(w);
    return s;
}

/* An exact-size 64-aligned copy, so ASan sees any read past the end. */
static uint8_t *aligned_copy(const uint8_t *src, size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 1)) return NULL;
    if (n) memcpy(p, src, n);
    return p;
}

static spqr_status open_bytes(const uint8_t *buf, size_t n, spqr_err *err) {
    uint8_t *c = aligned_copy(buf, n);
    spqr_archive *a = NULL;
    spqr_status s = spqr_archive_open_memory(c, n, "patched.spqr", &a, err);
    spqr_archive_close(a);
    free(c);
    return s;
}

/* ---------------------------------------------------------------- */
/* Round trip                                                        */
/* ---------------------------------------------------------------- */

static int tensors_equal(const spqr_tensor *a, const spqr_tensor *b) {
    if (a->rows != b->rows || a->cols != b->cols || a->wbits != b->wbits || a->groupsize != b->groupsize ||
        a->qq_scale_bits != b->qq_scale_bits || a->qq_zero_bits != b->qq_zero_bits || a->n_groups != b->n_groups ||
        a->nnz != b->nnz || !!a->perm != !!b->perm || a->codes_bytes != b->codes_bytes)
        return 0;
    size_t ns = (size_t)a->n_groups * (size_t)a->rows;
    size_t nq2 = (size_t)a->n_groups * (size_t)a->n_qgroups * 2;
    if (memcmp(a->codes, b->codes, a->codes_bytes)) return 0;
    if (a->perm && memcmp(a->perm, b->perm, (size_t)a->cols * 4)) return 0;
    if (memcmp(a->outlier_rowptr, b->outlier_rowptr, ((size_t)a->rows + 1) * 4)) return 0;
    if (a->nnz && (memcmp(a->outlier_col, b->outlier_col, (size_t)a->nnz * 2) ||
                   memcmp(a->outlier_val, b->outlier_val, (size_t)a->nnz * 2)))
        return 0;
    if (a->qq_scale_bits ? memcmp(a->scale_codes, b->scale_codes, a->scale_codes_bytes) ||
                               memcmp(a->scale_q2, b->scale_q2, nq2 * 2)
                         : memcmp(a->scale_f16, b->scale_f16, ns * 2))
        return 0;
    if (a->qq_zero_bits ? memcmp(a->zero_codes, b->zero_codes, a->zero_codes_bytes) ||
                              memcmp(a->zero_q2, b->zero_q2, nq2 * 2)
                        : memcmp(a->zero_f16, b->zero_f16, ns * 2))
        return 0;
    return 1;
}

static void check_archive(const spqr_archive *a, const fixture *fx) {
    CHECK(spqr_archive_config_json(a) && !strcmp(spqr_archive_config_json(a), CONFIG));
    CHECK(spqr_archive_metadata_json(a) && !strcmp(spqr_archive_metadata_json(a), META));
    size_t tl = 0;
    const char *tok = spqr_archive_tokenizer(a, &tl);
    CHECK(tok && tl == sizeof TOKENIZER - 1 && !memcmp(tok, TOKENIZER, tl) && tok[tl] == 0);

    /* file order: embed, packed0, packed1, norm.f32, packed2, packed3, bf16, scalar, empty */
    const char *order[] = {"model.embed_tokens.weight", fx->names[0], fx->names[1], "norm.f32", fx->names[2],
                           fx->names[3], "norm.bf16", "scalar", "empty"};
    CHECK(spqr_archive_count(a) == 9);
    for (int i = 0; i < 9 && i < spqr_archive_count(a); i++) {
        CHECK_MSG(!strcmp(spqr_archive_name(a, i), order[i]), "entry %d is %s", i, spqr_archive_name(a, i));
        CHECK(!!spqr_archive_dense_at(a, i) + !!spqr_archive_packed_at(a, i) == 1);
    }
    CHECK(spqr_archive_name(a, 9) == NULL && spqr_archive_name(a, -1) == NULL);

    const spqr_st_tensor *d = spqr_archive_find_dense(a, "model.embed_tokens.weight");
    CHECK(d && d->dtype == SPQR_DTYPE_F16 && d->ndim == 3 && d->shape[0] == 2 && d->shape[2] == 2 && d->numel == 12 &&
          d->nbytes == 24 && !memcmp(d->data, fx->f16, 24) && (uintptr_t)d->data % 64 == 0);
    d = spqr_archive_find_dense(a, "norm.f32");
    CHECK(d && d->dtype == SPQR_DTYPE_F32 && d->numel == 6 && !memcmp(d->data, fx->f32, 24) &&
          (uintptr_t)d->data % 64 == 0);
    float back[6];
    spqr_err err;
    CHECK(d && spqr_st_tensor_to_f32(d, back, &err) == SPQR_OK && !memcmp(back, fx->f32, 24));
    d = spqr_archive_find_dense(a, "norm.bf16");
    CHECK(d && d->dtype == SPQR_DTYPE_BF16 && d->ndim == 1 && d->numel == 5 && !memcmp(d->data, fx->bf16, 10));
    d = spqr_archive_find_dense(a, "scalar");
    CHECK(d && d->ndim == 0 && d->numel == 1 && d->nbytes == 4 && !memcmp(d->data, fx->f32, 4));
    d = spqr_archive_find_dense(a, "empty");
    CHECK(d && d->ndim == 2 && d->numel == 0 && d->nbytes == 0);
    CHECK(spqr_archive_find_dense(a, fx->names[0]) == NULL);   /* packed, not dense */
    CHECK(spqr_archive_find_packed(a, "norm.f32") == NULL);
    CHECK(spqr_archive_find_packed(a, "missing") == NULL && spqr_archive_find_dense(a, "") == NULL);

    float *Wq = malloc(sizeof(float) * ROWS * COLS);
    for (int k = 0; k < N_PACKED; k++) {
        const spqr_tensor *t = spqr_archive_find_packed(a, fx->names[k]);
        CHECK(t != NULL);
        if (!t) continue;
        CHECK(t->owns_memory == 0);
        /* codes and statistics are used in place; the compact permutation
         * and row counts come back decoded into i32 arrays */
        CHECK((uintptr_t)t->codes % 64 == 0 && (uintptr_t)t->outlier_rowptr % 4 == 0 &&
              (!t->perm || (uintptr_t)t->perm % 4 == 0));
        CHECK_MSG(tensors_equal(t, fx->t[k]), "packed tensor %d differs after the round trip", k);
        CHECK(spqr_tensor_dequantize(t, Wq, &err) == SPQR_OK);
        CHECK_MSG(!memcmp(Wq, fx->W_hat[k], sizeof(float) * ROWS * COLS),
                  "tensor %d: dequantized weights differ from the engine's W_hat", k);
        /* the embedding lookup: one row equals that row of the reference */
        float row[COLS];
        int same = 1;
        for (int r = 0; r < ROWS; r++) {
            spqr_tensor_row(t, r, row);
            same &= !memcmp(row, Wq + (size_t)r * COLS, sizeof row);
        }
        CHECK_MSG(same, "tensor %d: spqr_tensor_row differs from spqr_tensor_dequantize", k);
    }
    free(Wq);
}

static void test_round_trip(const fixture *fx, const char *path) {
    /* The knob combinations really cover both sides of each switch. */
    int has_perm = 0, no_perm = 0, has_out = 0, no_out = 0, bilevel = 0, f16stats = 0;
    for (int k = 0; k < N_PACKED; k++) {
        const spqr_tensor *t = fx->t[k];
        has_perm += t->perm != NULL;
        no_perm += t->perm == NULL;
        has_out += t->nnz > 0;
        no_out += t->nnz == 0;
        bilevel += t->qq_scale_bits > 0;
        f16stats += t->qq_zero_bits == 0;
    }
    CHECK(has_perm && no_perm && has_out && no_out && bilevel && f16stats);

    spqr_err err;
    spqr_status s = write_fixture(fx, path, &err);
    CHECK_MSG(s == SPQR_OK, "%s", err.msg);
    spqr_archive *a = NULL;
    s = spqr_archive_open(path, &a, &err);
    CHECK_MSG(s == SPQR_OK, "%s", err.msg);
    if (a) check_archive(a, fx);
    spqr_archive_close(a);

    /* The same bytes through the in-memory entry point. */
    size_t n = 0;
    uint8_t *raw = (uint8_t *)test_read_file(path, &n);
    uint8_t *buf = aligned_copy(raw, n);
    s = spqr_archive_open_memory(buf, n, "mem", &a, &err);
    CHECK_MSG(s == SPQR_OK, "%s", err.msg);
    if (a) check_archive(a, fx);
    spqr_archive_close(a);
    CHECK(spqr_archive_open_memory(buf + 8, n - 8, "mem", &a, &err) == SPQR_ERR_INVALID_ARG && !a);
    free(buf);
    free(raw);

    /* A file with no sections at all is valid and empty. */
    spqr_archive_writer *w;
    CHECK(spqr_archive_writer_create(path, &w, &err) == SPQR_OK);
    CHECK(spqr_archive_writer_finish(w, &err) == SPQR_OK);
    spqr_archive_writer_free(w);
    CHECK(spqr_archive_open(path, &a, &err) == SPQR_OK && spqr_archive_count(a) == 0 &&
          !spqr_archive_config_json(a) && !spqr_archive_tokenizer(a, NULL));
    spqr_archive_close(a);
}

/* ---------------------------------------------------------------- */
/* Writer argument errors and atomicity                              */
/* ---------------------------------------------------------------- */

static int count_temps(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

static void test_writer(const fixture *fx, const char *dir, const char *path) {
    spqr_err err;
    spqr_archive_writer *w = NULL;
    char bad[600];
    snprintf(bad, sizeof bad, "%s/no/such/dir/m.spqr", dir);
    err.msg[0] = 0;
    CHECK(spqr_archive_writer_create(bad, &w, &err) == SPQR_ERR_IO && !w && err.msg[0]);
    CHECK(spqr_archive_writer_create(dir, &w, &err) == SPQR_ERR_IO && !w); /* a directory */

    /* Existing file: replaced only by a successful finish. */
    CHECK(write_fixture(fx, path, &err) == SPQR_OK);
    size_t n0 = 0, n1 = 0;
    uint8_t *before = (uint8_t *)test_read_file(path, &n0);
    CHECK(spqr_archive_writer_create(path, &w, &err) == SPQR_OK);
    CHECK(spqr_archive_writer_add_config(w, "{\"x\":1}", &err) == SPQR_OK);
    CHECK(count_temps(dir) == 1);
    /* argument errors: rejected, writer stays usable */
    CHECK(spqr_archive_writer_add_config(w, "{\"x\":2}", &err) == SPQR_ERR_INVALID_ARG && err.msg[0]);
    CHECK(spqr_archive_writer_add_metadata(w, "[1,2]", &err) == SPQR_ERR_INVALID_ARG);
    CHECK(spqr_archive_writer_add_metadata(w, "{\"a\":", &err) == SPQR_ERR_INVALID_ARG);
    CHECK(spqr_archive_writer_add_dense(w, "config", SPQR_DTYPE_F32, 1, SHAPE_F32, fx->f32, &err) ==
          SPQR_ERR_INVALID_ARG);
    CHECK(spqr_archive_writer_add_dense(w, "i32", SPQR_DTYPE_I32, 1, SHAPE_F32, fx->f32, &err) ==
          SPQR_ERR_UNSUPPORTED);
    CHECK(spqr_archive_writer_add_dense(w, "", SPQR_DTYPE_F32, 1, SHAPE_F32, fx->f32, &err) == SPQR_ERR_INVALID_ARG);
    int64_t neg[1] = {-1};
    CHECK(spqr_archive_writer_add_dense(w, "neg", SPQR_DTYPE_F32, 1, neg, fx->f32, &err) == SPQR_ERR_INVALID_ARG);
    spqr_tensor broken = *fx->t[0];
    broken.owns_memory = 0;
    broken.wbits = 9;
    CHECK(spqr_archive_writer_add_packed(w, "broken", &broken, &err) == SPQR_ERR_INVALID_ARG && err.msg[0]);
    /* a NaN statistic: the writer refuses what the reader would reject */
    uint16_t *zq2 = malloc(sizeof(uint16_t) * 2 * (size_t)fx->t[0]->n_groups * (size_t)fx->t[0]->n_qgroups);
    memcpy(zq2, fx->t[0]->zero_q2, sizeof(uint16_t) * 2 * (size_t)fx->t[0]->n_groups * (size_t)fx->t[0]->n_qgroups);
    zq2[1] = 0x7E00;
    broken = *fx->t[0];
    broken.owns_memory = 0;
    broken.zero_q2 = zq2;
    CHECK(spqr_archive_writer_add_packed(w, "nan", &broken, &err) == SPQR_ERR_INVALID_ARG && strstr(err.msg, "non-finite"));
    free(zq2);
    CHECK(spqr_archive_writer_add_dense(w, "ok", SPQR_DTYPE_F32, 2, SHAPE_F32, fx->f32, &err) == SPQR_OK);
    spqr_archive_writer_free(w); /* abandoned: no finish */
    uint8_t *after = (uint8_t *)test_read_file(path, &n1);
    CHECK(n0 == n1 && after && !memcmp(before, after, n0));
    CHECK(count_temps(dir) == 0);
    free(after);

    /* finish replaces it, and the replacement reads back. */
    CHECK(spqr_archive_writer_create(path, &w, &err) == SPQR_OK);
    CHECK(spqr_archive_writer_add_dense(w, "ok", SPQR_DTYPE_F32, 2, SHAPE_F32, fx->f32, &err) == SPQR_OK);
    CHECK(spqr_archive_writer_finish(w, &err) == SPQR_OK);
    CHECK(spqr_archive_writer_finish(w, &err) == SPQR_ERR_INVALID_ARG);
    CHECK(spqr_archive_writer_add_config(w, "{}", &err) == SPQR_ERR_INVALID_ARG);
    spqr_archive_writer_free(w);
    CHECK(count_temps(dir) == 0);
    spqr_archive *a = NULL;
    CHECK(spqr_archive_open(path, &a, &err) == SPQR_OK && spqr_archive_count(a) == 1 &&
          spqr_archive_find_dense(a, "ok"));
    spqr_archive_close(a);
    free(before);
    before = after = NULL;

    CHECK(spqr_archive_open("/nonexistent/x.spqr", &a, &err) == SPQR_ERR_IO && !a && err.msg[0]);

    /* A write that fails mid-way (file size limit: EFBIG) poisons the
     * writer; finish fails, the old file survives, the temporary goes. */
    CHECK(write_fixture(fx, path, &err) == SPQR_OK);
    before = (uint8_t *)test_read_file(path, &n0);
    struct rlimit old_lim, lim;
    getrlimit(RLIMIT_FSIZE, &old_lim);
    void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old_lim;
    lim.rlim_cur = 2048;
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    CHECK(spqr_archive_writer_create(path, &w, &err) == SPQR_OK);
    spqr_status s = SPQR_OK;
    for (int k = 0; k < N_PACKED && s == SPQR_OK; k++) s = spqr_archive_writer_add_packed(w, fx->names[k], fx->t[k], &err);
    spqr_status fs = spqr_archive_writer_finish(w, &err);
    setrlimit(RLIMIT_FSIZE, &old_lim);
    signal(SIGXFSZ, old_sig);
    CHECK_MSG(fs == SPQR_ERR_IO && err.msg[0], "finish after EFBIG: %d %s", (int)fs, err.msg);
    CHECK(spqr_archive_writer_add_config(w, "{}", &err) == SPQR_ERR_IO); /* poisoned */
    spqr_archive_writer_free(w);
    after = (uint8_t *)test_read_file(path, &n1);
    CHECK(n0 == n1 && after && !memcmp(before, after, n0));
    CHECK(count_temps(dir) == 0);
    free(before);
    free(after);
}

/* ---------------------------------------------------------------- */
/* Corruption                                                        */
/* ---------------------------------------------------------------- */

static int rejected(spqr_status s, const spqr_err *err) {
    return (s == SPQR_ERR_FORMAT || s == SPQR_ERR_UNSUPPORTED) && err->msg[0] && !strchr(err->msg, '\n');
}

static void test_truncation_and_flips(const uint8_t *file, size_t n) {
    spqr_err err;
    int bad = 0, tried = 0;
    for (size_t len = 0; len < n; len += (len < 130 ? 1 : 97)) {
        err.msg[0] = 0;
        spqr_status s = open_bytes(file, len, &err);
        tried++;
        if (!rejected(s, &err)) {
            bad++;
            fprintf(stderr, "prefix of %zu bytes: status %d\n", len, (int)s);
        }
    }
    CHECK_MSG(bad == 0, "%d of %d truncations not rejected", bad, tried);

    spqrf_header h;
    memcpy(&h, file, sizeof h);
    /* every bit of the header and of the table */
    uint8_t *buf = malloc(n);
    bad = tried = 0;
    for (size_t byte = 0; byte < n; byte++) {
        if (byte == sizeof h) byte = (size_t)h.table_offset;
        for (int bit = 0; bit < 8; bit++) {
            memcpy(buf, file, n);
            buf[byte] ^= (uint8_t)(1u << bit);
            err.msg[0] = 0;
            spqr_status s = open_bytes(buf, n, &err);
            tried++;
            if (!rejected(s, &err)) bad++;
        }
    }
    CHECK_MSG(bad == 0, "%d of %d header/table bit flips not rejected", bad, tried);
    CHECK(tried == 8 * (64 + (int)h.table_size));

    /* random byte flips anywhere between header and table: checksums or
     * the zero-padding rule must catch every one */
    test_rng r = {777};
    bad = tried = 0;
    for (int k = 0; k < 3000; k++) {
        size_t pos = 64 + (size_t)(test_rng_next(&r) % (h.table_offset - 64));
        uint8_t x = (uint8_t)(1 + test_rng_next(&r) % 255);
        memcpy(buf, file, n);
        buf[pos] ^= x;
        err.msg[0] = 0;
        spqr_status s = open_bytes(buf, n, &err);
        tried++;
        if (!rejected(s, &err)) {
            bad++;
            fprintf(stderr, "flip at %zu not detected\n", pos);
        }
    }
    CHECK_MSG(bad == 0, "%d of %d data byte flips not rejected", bad, tried);

    /* one extra byte at the end */
    uint8_t *longer = malloc(n + 1);
    memcpy(longer, file, n);
    longer[n] = 0;
    CHECK(rejected(open_bytes(longer, n + 1, &err), &err));
    free(longer);
    free(buf);
}

typedef struct {
    uint8_t *buf;
    size_t n;
    spqrf_header h;
} patchable;

static spqrf_entry *entry_at(patchable *p, uint32_t i) {
    return (spqrf_entry *)(p->buf + p->h.table_offset + (size_t)i * sizeof(spqrf_entry));
}

static const char *entry_name(patchable *p, uint32_t i) {
    const char *names = (const char *)p->buf + p->h.table_offset + (size_t)p->h.section_count * sizeof(spqrf_entry);
    return names + entry_at(p, i)->name_offset;
}

static uint32_t find_entry(patchable *p, const char *name) {
    for (uint32_t i = 0; i < p->h.section_count; i++)
        if (!strcmp(entry_name(p, i), name)) return i;
    return UINT32_MAX;
}

static spqrf_packed_header *packed_at(patchable *p, const char *name) {
    return (spqrf_packed_header *)(p->buf + entry_at(p, find_entry(p, name))->offset);
}

static void *packed_array(patchable *p, const char *name, int k) {
    spqrf_packed_header *ph = packed_at(p, name);
    return (uint8_t *)ph + ph->arrays[k].offset;
}

/* Patches a fresh copy, fixes its checksums, and expects a FORMAT (or
 * want) error whose message contains `needle` (the intended check). */
static void expect_reject(const uint8_t *file, size_t n, const char *label, void (*patch)(patchable *, const fixture *),
                          const fixture *fx, spqr_status want, const char *needle) {
    patchable p = {.buf = malloc(n), .n = n};
    memcpy(p.buf, file, n);
    memcpy(&p.h, file, sizeof p.h);
    patch(&p, fx);
    spqrf_fixup_checksums(p.buf, p.n);
    spqr_err err;
    err.msg[0] = 0;
    spqr_status s = open_bytes(p.buf, p.n, &err);
    CHECK_MSG(s == want && err.msg[0] && strstr(err.msg, needle) && !strchr(err.msg, '\n'),
              "%s: status %d, message '%s' (wanted '%s')", label, (int)s, err.msg, needle);
    if (getenv("SPQR_TEST_VERBOSE")) printf("%-28s -> %s\n", label, err.msg);
    free(p.buf);
}

static void p_nothing(patchable *p, const fixture *fx) { (void)p, (void)fx; }
static void p_version(patchable *p, const fixture *fx) { p->buf[8] = 3; }
static void p_version0(patchable *p, const fixture *fx) { p->buf[8] = 0; }
static void p_magic(patchable *p, const fixture *fx) { p->buf[0] = 'X'; }
static void p_flags(patchable *p, const fixture *fx) { p->buf[12] = 1; }
static void p_table_misaligned(patchable *p, const fixture *fx) {
    spqrf_header *h = (spqrf_header *)p->buf;
    h->table_offset -= 8;
    h->table_size += 8;
}
static void p_count_huge(patchable *p, const fixture *fx) { ((spqrf_header *)p->buf)->section_count = 0xFFFFFFFFu; }
static void p_size_2_63(patchable *p, const fixture *fx) { entry_at(p, 2)->size = (uint64_t)1 << 63; }
static void p_offset_past_eof(patchable *p, const fixture *fx) { entry_at(p, 2)->offset = spqrf_align_up(p->n, 64) + 4096; }
static void p_offset_huge(patchable *p, const fixture *fx) { entry_at(p, 2)->offset = UINT64_MAX - 63; }
static void p_overlap(patchable *p, const fixture *fx) { entry_at(p, 3)->offset = entry_at(p, 2)->offset; }
static void p_overlap_tail(patchable *p, const fixture *fx) { entry_at(p, 2)->size += 64; }
static void p_misaligned(patchable *p, const fixture *fx) { entry_at(p, 2)->offset += 8; }
static void p_alignment(patchable *p, const fixture *fx) { entry_at(p, 2)->alignment = 96; }
static void p_type(patchable *p, const fixture *fx) { entry_at(p, 2)->type = 9; }
static void p_name_range(patchable *p, const fixture *fx) { entry_at(p, 2)->name_offset = 0x7FFFFFF0u; }
static void p_name_nul(patchable *p, const fixture *fx) {
    char *nm = (char *)entry_name(p, 2);
    nm[entry_at(p, 2)->name_len] = 'x';
}
static void p_name_dup(patchable *p, const fixture *fx) {
    /* "model.layers.1..." -> "model.layers.0...": same length, now equal */
    char *nm = (char *)entry_name(p, find_entry(p, fx->names[1]));
    nm[13] = '0';
}
static void p_second_config(patchable *p, const fixture *fx) { entry_at(p, 1)->type = SPQRF_SEC_CONFIG; }
static void p_gap(patchable *p, const fixture *fx) { p->buf[p->h.table_offset - 1] = 0x55; }
static void p_rows_cols_overflow(patchable *p, const fixture *fx) {
    spqrf_packed_header *h = packed_at(p, fx->names[0]);
    h->rows = h->cols = INT32_MAX;
    h->n_groups = (int32_t)(((int64_t)INT32_MAX + h->groupsize - 1) / h->groupsize);
    h->n_qgroups = (int32_t)(((int64_t)INT32_MAX + h->qq_groupsize - 1) / h->qq_groupsize);
}
static void p_cols_bigger(patchable *p, const fixture *fx) {
    spqrf_packed_header *h = packed_at(p, fx->names[3]); /* whole-row groups: n_groups stays 1 */
    h->cols += 1;
    h->groupsize += 1;
}
static void p_wbits(patchable *p, const fixture *fx) { packed_at(p, fx->names[0])->wbits = 9; }
static void p_groupsize(patchable *p, const fixture *fx) { packed_at(p, fx->names[0])->groupsize = 0; }
static void p_ngroups(patchable *p, const fixture *fx) { packed_at(p, fx->names[0])->n_groups += 1; }
static void p_nnz_neg(patchable *p, const fixture *fx) { packed_at(p, fx->names[0])->nnz = -1; }
static void p_flags_packed(patchable *p, const fixture *fx) { packed_at(p, fx->names[0])->flags |= 16; }
static void p_rows_enc3(patchable *p, const fixture *fx) { packed_at(p, fx->names[0])->flags |= SPQRF_PACKED_ROWS_MASK; }
static void p_rows_enc16(patchable *p, const fixture *fx) {
    /* u16 counts where the section holds u8 ones: the array size no longer matches */
    spqrf_packed_header *h = packed_at(p, fx->names[0]);
    h->flags = (h->flags & ~SPQRF_PACKED_ROWS_MASK) | (SPQRF_ROWS_CNT16 << SPQRF_PACKED_ROWS_SHIFT);
}
static void p_perm16_no_perm(patchable *p, const fixture *fx) { packed_at(p, fx->names[1])->flags |= SPQRF_PACKED_PERM_U16; }
static void p_array_misaligned(patchable *p, const fixture *fx) {
    packed_at(p, fx->names[0])->arrays[SPQRF_A_ROWPTR].offset += 4;
}
static void p_array_size(patchable *p, const fixture *fx) {
    packed_at(p, fx->names[0])->arrays[SPQRF_A_CODES].nbytes -= 1;
}
static void p_array_present(patchable *p, const fixture *fx) {
    /* tensor 0 is bilevel: an fp16 scale array must be absent */
    spqrf_packed_header *h = packed_at(p, fx->names[0]);
    h->arrays[SPQRF_A_SCALE_F16] = h->arrays[SPQRF_A_CODES];
}
/* Version 2 row counts (u8 here): too many, too few. */
static void p_counts_past(patchable *p, const fixture *fx) {
    uint8_t *c = packed_array(p, fx->names[0], SPQRF_A_ROWPTR);
    c[ROWS / 2] = 255;
}
static void p_counts_short(patchable *p, const fixture *fx) {
    uint8_t *c = packed_array(p, fx->names[0], SPQRF_A_ROWPTR);
    int r = ROWS - 1;
    while (r > 0 && c[r] == 0) r--;
    c[r] -= 1;
}
static void p_col_range(patchable *p, const fixture *fx) {
    uint16_t *c = packed_array(p, fx->names[0], SPQRF_A_COL);
    c[0] = COLS;
}
static void p_perm_dup(patchable *p, const fixture *fx) {
    uint16_t *pm = packed_array(p, fx->names[0], SPQRF_A_PERM);
    pm[1] = pm[0];
}
static void p_perm_range(patchable *p, const fixture *fx) {
    uint16_t *pm = packed_array(p, fx->names[0], SPQRF_A_PERM);
    pm[3] = 65535;
}
static void p_nan_stat(patchable *p, const fixture *fx) {
    uint16_t *s = packed_array(p, fx->names[1], SPQRF_A_SCALE_F16);
    s[7] = 0x7E00; /* NaN */
}
static void p_inf_q2(patchable *p, const fixture *fx) {
    uint16_t *s = packed_array(p, fx->names[0], SPQRF_A_ZERO_Q2);
    s[0] = 0x7C00; /* +inf */
}
static void p_dense_shape(patchable *p, const fixture *fx) {
    ((spqrf_dense_header *)(p->buf + entry_at(p, find_entry(p, "norm.f32"))->offset))->shape[0] = 3;
}
static void p_dense_shape_overflow(patchable *p, const fixture *fx) {
    spqrf_dense_header *d = (spqrf_dense_header *)(p->buf + entry_at(p, find_entry(p, "norm.f32"))->offset);
    d->shape[0] = (uint64_t)1 << 40;
    d->shape[1] = (uint64_t)1 << 40;
}
static void p_dense_dtype(patchable *p, const fixture *fx) {
    ((spqrf_dense_header *)(p->buf + entry_at(p, find_entry(p, "norm.f32"))->offset))->dtype = SPQR_DTYPE_I32;
}
static void p_dense_ndim(patchable *p, const fixture *fx) {
    ((spqrf_dense_header *)(p->buf + entry_at(p, find_entry(p, "norm.f32"))->offset))->ndim = 9;
}
static void p_dense_unused_dim(patchable *p, const fixture *fx) {
    ((spqrf_dense_header *)(p->buf + entry_at(p, find_entry(p, "norm.f32"))->offset))->shape[5] = 1;
}
static void p_config_nul(patchable *p, const fixture *fx) {
    spqrf_entry *e = entry_at(p, find_entry(p, "config"));
    p->buf[e->offset + e->size - 1] = ' ';
}
static void p_config_json(patchable *p, const fixture *fx) { p->buf[entry_at(p, find_entry(p, "config"))->offset] = '['; }
static void p_meta_inner_nul(patchable *p, const fixture *fx) { p->buf[entry_at(p, find_entry(p, "metadata"))->offset + 3] = 0; }

static void test_hostile(const uint8_t *file, size_t n, const fixture *fx) {
    /* The patch-and-refresh machinery itself leaves a valid file valid. */
    patchable p = {.buf = malloc(n), .n = n};
    memcpy(p.buf, file, n);
    memcpy(&p.h, file, sizeof p.h);
    spqrf_fixup_checksums(p.buf, n);
    CHECK(!memcmp(p.buf, file, n));
    /* the entries the patches rely on */
    CHECK(find_entry(&p, "config") == 0 && find_entry(&p, "tokenizer") == 1 && find_entry(&p, "norm.f32") != UINT32_MAX);
    CHECK(entry_at(&p, 2)->type == SPQRF_SEC_DENSE && entry_at(&p, 3)->type == SPQRF_SEC_PACKED);
    CHECK(fx->t[0]->perm && fx->t[0]->nnz > 0 && fx->t[0]->qq_zero_bits > 0 && fx->t[1]->qq_scale_bits == 0);
    CHECK(fx->t[3]->n_groups == 1);
    uint32_t last = p.h.section_count - 1; /* p_gap needs padding before the table */
    CHECK(entry_at(&p, last)->offset + entry_at(&p, last)->size < p.h.table_offset);
    free(p.buf);

    struct {
        const char *label;
        void (*patch)(patchable *, const fixture *);
        spqr_status want;
        const char *needle;
    } cases[] = {
        {"version 3", p_version, SPQR_ERR_UNSUPPORTED, "unsupported .spqr version 3 (this build reads versions 1 to 2)"},
        {"version 0", p_version0, SPQR_ERR_UNSUPPORTED, "unsupported .spqr version 0"},
        {"magic", p_magic, SPQR_ERR_FORMAT, "bad magic"},
        {"header flags", p_flags, SPQR_ERR_FORMAT, "flags"},
        {"table misaligned", p_table_misaligned, SPQR_ERR_FORMAT, "section table"},
        {"section count 2^32-1", p_count_huge, SPQR_ERR_FORMAT, "section count"},
        {"section size 2^63", p_size_2_63, SPQR_ERR_FORMAT, "outside the data area"},
        {"offset past EOF", p_offset_past_eof, SPQR_ERR_FORMAT, "outside the data area"},
        {"offset near 2^64", p_offset_huge, SPQR_ERR_FORMAT, "outside the data area"},
        {"overlapping sections", p_overlap, SPQR_ERR_FORMAT, "overlaps"},
        {"overlapping tail", p_overlap_tail, SPQR_ERR_FORMAT, "overlaps"},
        {"misaligned section", p_misaligned, SPQR_ERR_FORMAT, "aligned"},
        {"alignment 96", p_alignment, SPQR_ERR_FORMAT, "power of two"},
        {"unknown type", p_type, SPQR_ERR_FORMAT, "unknown section type 9"},
        {"name out of range", p_name_range, SPQR_ERR_FORMAT, "names area"},
        {"name without NUL", p_name_nul, SPQR_ERR_FORMAT, "followed by a NUL"},
        {"duplicate name", p_name_dup, SPQR_ERR_FORMAT, "name already used"},
        {"second config", p_second_config, SPQR_ERR_FORMAT, "a second config"},
        {"garbage in padding", p_gap, SPQR_ERR_FORMAT, "padding"},
        {"rows*cols overflow", p_rows_cols_overflow, SPQR_ERR_FORMAT, "too large"},
        {"cols+1", p_cols_bigger, SPQR_ERR_FORMAT, "the layout needs"},
        {"wbits 9", p_wbits, SPQR_ERR_FORMAT, "wbits"},
        {"groupsize 0", p_groupsize, SPQR_ERR_FORMAT, "groupsize"},
        {"n_groups", p_ngroups, SPQR_ERR_FORMAT, "n_groups"},
        {"nnz -1", p_nnz_neg, SPQR_ERR_FORMAT, "nnz"},
        {"packed flags", p_flags_packed, SPQR_ERR_FORMAT, "unknown flag bits"},
        {"row encoding 3", p_rows_enc3, SPQR_ERR_FORMAT, "unknown row pointer encoding"},
        {"row encoding u16 on u8 data", p_rows_enc16, SPQR_ERR_FORMAT, "array outlier_rowptr is"},
        {"perm_u16 without perm", p_perm16_no_perm, SPQR_ERR_FORMAT, "perm_u16 without a permutation"},
        {"array misaligned", p_array_misaligned, SPQR_ERR_FORMAT, "outlier_rowptr"},
        {"array size", p_array_size, SPQR_ERR_FORMAT, "array codes is"},
        {"array not absent", p_array_present, SPQR_ERR_FORMAT, "must be absent"},
        {"row counts past nnz", p_counts_past, SPQR_ERR_FORMAT, "sum past nnz"},
        {"row counts short of nnz", p_counts_short, SPQR_ERR_FORMAT, "sum to"},
        {"col >= cols", p_col_range, SPQR_ERR_FORMAT, "column"},
        {"perm duplicate", p_perm_dup, SPQR_ERR_FORMAT, "permutation"},
        {"perm negative", p_perm_range, SPQR_ERR_FORMAT, "permutation"},
        {"NaN statistic", p_nan_stat, SPQR_ERR_FORMAT, "non-finite"},
        {"inf second-level", p_inf_q2, SPQR_ERR_FORMAT, "non-finite"},
        {"dense shape", p_dense_shape, SPQR_ERR_FORMAT, "shape and dtype need"},
        {"dense shape overflow", p_dense_shape_overflow, SPQR_ERR_FORMAT, "overflow"},
        {"dense dtype I32", p_dense_dtype, SPQR_ERR_FORMAT, "dtype"},
        {"dense ndim 9", p_dense_ndim, SPQR_ERR_FORMAT, "ndim"},
        {"dense unused dim", p_dense_unused_dim, SPQR_ERR_FORMAT, "unused dimension"},
        {"config without NUL", p_config_nul, SPQR_ERR_FORMAT, "NUL"},
        {"config not JSON", p_config_json, SPQR_ERR_FORMAT, "not valid JSON"},
        {"metadata inner NUL", p_meta_inner_nul, SPQR_ERR_FORMAT, "NUL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_reject(file, n, cases[i].label, cases[i].patch, fx, cases[i].want, cases[i].needle);
    /* control: the harness accepts an unpatched file */
    patchable q = {.buf = aligned_copy(file, n), .n = n};
    spqr_err err;
    spqr_archive *a = NULL;
    p_nothing(&q, fx);
    CHECK(spqr_archive_open_memory(q.buf, n, "ok", &a, &err) == SPQR_OK);
    spqr_archive_close(a);
    free(q.buf);
}

/* ---------------------------------------------------------------- */
/* Version 1 files (i32 permutation and row pointers)                */
/* ---------------------------------------------------------------- */

static void v1_rowptr_monotone(patchable *p, const fixture *fx) {
    int32_t *rp = packed_array(p, "t", SPQRF_A_ROWPTR);
    rp[2] = rp[5] + 1;
}
static void v1_rowptr_first(patchable *p, const fixture *fx) { ((int32_t *)packed_array(p, "t", SPQRF_A_ROWPTR))[0] = -1; }
static void v1_rowptr_last(patchable *p, const fixture *fx) { ((int32_t *)packed_array(p, "t", SPQRF_A_ROWPTR))[5] -= 1; }
static void v1_perm_dup(patchable *p, const fixture *fx) {
    int32_t *pm = packed_array(p, "t", SPQRF_A_PERM);
    pm[1] = pm[0];
}
static void v1_perm_range(patchable *p, const fixture *fx) { ((int32_t *)packed_array(p, "t", SPQRF_A_PERM))[3] = -5; }
static void v1_v2_flag(patchable *p, const fixture *fx) { packed_at(p, "t")->flags |= SPQRF_PACKED_PERM_U16; }

/* A file the version-1 writer made (committed before version 2): it loads,
 * its hostile variants are refused by the version-1 rules, and the current
 * writer re-encodes its tensor compactly with the same weights. */
static void test_version1(const char *fixtures, const char *dir) {
    char path[1400];
    snprintf(path, sizeof path, "%s/spqr_fuzz_regressions/valid_tiny_bilevel_outliers_perm.spqr", fixtures);
    size_t n = 0;
    uint8_t *file = (uint8_t *)test_read_file(path, &n);
    CHECK_MSG(file != NULL, "cannot read %s", path);
    if (!file) return;
    uint8_t *buf = aligned_copy(file, n);
    spqr_archive *a = NULL;
    spqr_err err;
    CHECK_MSG(spqr_archive_open_memory(buf, n, "v1", &a, &err) == SPQR_OK, "%s", err.msg);
    spqr_archive_bytes ab;
    spqr_archive_bytes_of(a, &ab);
    CHECK(ab.version == 1 && ab.file_bytes == n);
    const spqr_tensor *t = spqr_archive_find_packed(a, "t");
    CHECK(t && t->perm && t->nnz > 0);
    if (t) {
        float W1[5 * 12], W2[5 * 12];
        CHECK(spqr_tensor_dequantize(t, W1, &err) == SPQR_OK);
        char p2[1100];
        snprintf(p2, sizeof p2, "%s/v1_rewritten.spqr", dir);
        spqr_archive_writer *w = NULL;
        CHECK(spqr_archive_writer_create(p2, &w, &err) == SPQR_OK);
        CHECK(spqr_archive_writer_add_packed(w, "t", t, &err) == SPQR_OK);
        CHECK(spqr_archive_writer_finish(w, &err) == SPQR_OK);
        spqr_archive_writer_free(w);
        spqr_archive *b = NULL;
        CHECK_MSG(spqr_archive_open(p2, &b, &err) == SPQR_OK, "%s", err.msg);
        const spqr_tensor *t2 = spqr_archive_find_packed(b, "t");
        CHECK(t2 && tensors_equal(t, t2));
        CHECK(t2 && spqr_tensor_dequantize(t2, W2, &err) == SPQR_OK && !memcmp(W1, W2, sizeof W1));
        spqr_archive_bytes bb;
        spqr_archive_bytes_of(b, &bb);
        CHECK(bb.version == SPQRF_VERSION);
        spqr_archive_close(b);
        unlink(p2);
    }
    spqr_archive_close(a);
    free(buf);
    struct {
        const char *label;
        void (*patch)(patchable *, const fixture *);
        const char *needle;
    } cases[] = {
        {"v1 rowptr non-monotone", v1_rowptr_monotone, "decrease"},
        {"v1 rowptr[0] != 0", v1_rowptr_first, "row pointers"},
        {"v1 rowptr[rows] != nnz", v1_rowptr_last, "row pointers"},
        {"v1 perm duplicate", v1_perm_dup, "permutation"},
        {"v1 perm negative", v1_perm_range, "permutation"},
        {"v1 with a version-2 flag", v1_v2_flag, "unknown flag bits"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_reject(file, n, cases[i].label, cases[i].patch, NULL, SPQR_ERR_FORMAT, cases[i].needle);
    free(file);
}

/* The three row encodings and both permutation widths, chosen by what the
 * values need: u8 counts (<= 255 per row), u16 counts (a row of 300),
 * i32 pointers (a row of 65,600) with an i32 permutation (cols > 65536);
 * each written, read back equal, and sized as spqr_tensor_size says. */
static void test_encodings(const char *dir) {
    struct {
        int32_t rows, cols;
        int64_t row0; /* outliers in row 0; row 1 gets 3 */
        int perm;
        uint32_t want_rows, want_perm16;
    } cs[] = {
        {3, 300, 200, 1, SPQRF_ROWS_CNT8, 1},
        {3, 400, 300, 1, SPQRF_ROWS_CNT16, 1},
        {2, 70000, 65600, 1, SPQRF_ROWS_PTR32, 0},
    };
    char path[1100];
    snprintf(path, sizeof path, "%s/enc.spqr", dir);
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        spqr_tensor *t = NULL;
        spqr_err err;
        const int64_t nnz = cs[c].row0 + 3;
        CHECK(spqr_tensor_alloc(cs[c].rows, cs[c].cols, 3, cs[c].cols, 0, 0, 0, nnz, cs[c].perm, &t, &err) == SPQR_OK);
        if (!t) continue;
        test_rng r = {1000 + c};
        for (size_t i = 0; i < t->codes_bytes; i++) t->codes[i] = (uint8_t)test_rng_next(&r);
        for (int32_t i = 0; i < t->rows; i++) {
            t->scale_f16[i] = spqr_fp32_to_fp16(0.01f * (float)(i + 1));
            t->zero_f16[i] = spqr_fp32_to_fp16(3.5f);
        }
        t->outlier_rowptr[0] = 0;
        t->outlier_rowptr[1] = (int32_t)cs[c].row0;
        for (int32_t i = 2; i <= t->rows; i++) t->outlier_rowptr[i] = (int32_t)nnz;
        for (int64_t k = 0; k < cs[c].row0; k++) t->outlier_col[k] = (uint16_t)k;
        for (int64_t k = 0; k < 3; k++) t->outlier_col[cs[c].row0 + k] = (uint16_t)(7 * k);
        for (int64_t k = 0; k < nnz; k++) t->outlier_val[k] = spqr_fp32_to_fp16((float)(k % 17) - 8.0f);
        for (int32_t j = 0; j < t->cols; j++) t->perm[j] = t->cols - 1 - j;
        spqrf_packed_header h;
        spqrf_packed_header_for(t, &h);
        CHECK_MSG(spqrf_rows_encoding_of(h.flags) == cs[c].want_rows && !!(h.flags & SPQRF_PACKED_PERM_U16) == (int)cs[c].want_perm16,
                  "case %zu: flags 0x%x", c, h.flags);
        spqr_archive_writer *w = NULL;
        CHECK(spqr_archive_writer_create(path, &w, &err) == SPQR_OK);
        CHECK_MSG(spqr_archive_writer_add_packed(w, "t", t, &err) == SPQR_OK, "%s", err.msg);
        CHECK(spqr_archive_writer_finish(w, &err) == SPQR_OK);
        spqr_archive_writer_free(w);
        spqr_archive *a = NULL;
        CHECK_MSG(spqr_archive_open(path, &a, &err) == SPQR_OK, "case %zu: %s", c, err.msg);
        const spqr_tensor *b = a ? spqr_archive_find_packed(a, "t") : NULL;
        CHECK_MSG(b && tensors_equal(t, b), "case %zu: tensor differs after the round trip", c);
        if (b) {
            spqr_size_report sr;
            spqr_tensor_size(t, &sr);
            const uint64_t rows_b = cs[c].want_rows == SPQRF_ROWS_CNT8    ? (uint64_t)t->rows
                                    : cs[c].want_rows == SPQRF_ROWS_CNT16 ? 2u * (uint64_t)t->rows
                                                                          : 4u * ((uint64_t)t->rows + 1);
            const uint64_t perm_b = (cs[c].want_perm16 ? 2u : 4u) * (uint64_t)t->cols;
            CHECK_MSG(sr.stored_bytes == t->codes_bytes + 4u * (uint64_t)t->rows + 4u * (uint64_t)nnz + rows_b + perm_b,
                      "case %zu: size report %llu", c, (unsigned long long)sr.stored_bytes);
            /* one row looked up = that row of the dequantization */
            float *W = malloc(sizeof(float) * (size_t)t->rows * (size_t)t->cols), *row = malloc(sizeof(float) * (size_t)t->cols);
            CHECK(spqr_tensor_dequantize(b, W, &err) == SPQR_OK);
            spqr_tensor_row(b, 0, row);
            CHECK(!memcmp(row, W, sizeof(float) * (size_t)t->cols));
            free(W);
            free(row);
        }
        spqr_archive_close(a);
        spqr_tensor_free(t);
        unlink(path);
    }
}

/* Every byte of the file is accounted for: header, text, tensors, table;
 * each packed tensor's arrays are exactly what spqr_tensor_size counts. */
static void test_accounting(const uint8_t *file, size_t n) {
    uint8_t *buf = aligned_copy(file, n);
    spqr_archive *a = NULL;
    spqr_err err;
    CHECK(spqr_archive_open_memory(buf, n, "acct", &a, &err) == SPQR_OK);
    spqr_archive_bytes ab;
    spqr_archive_bytes_of(a, &ab);
    uint64_t sum = ab.container_bytes + ab.text_bytes, dense = 0, packed = 0;
    for (int32_t i = 0; i < spqr_archive_count(a); i++) {
        sum += spqr_archive_tensor_bytes(a, i);
        *(spqr_archive_packed_at(a, i) ? &packed : &dense) += spqr_archive_tensor_bytes(a, i);
    }
    CHECK_MSG(sum == n && ab.file_bytes == n, "accounted %llu of %zu bytes", (unsigned long long)sum, n);
    CHECK(dense == ab.dense_bytes && packed == ab.packed_bytes && ab.version == SPQRF_VERSION);
    CHECK(ab.packed_params == (int64_t)N_PACKED * ROWS * COLS && ab.dense_params == 12 + 6 + 5 + 1 + 0);
    /* independently from the bytes: walk the table, compare each packed
     * section's arrays with the size report */
    spqrf_header h;
    memcpy(&h, file, sizeof h);
    uint64_t payloads = 0, names = 0;
    for (uint32_t i = 0; i < h.section_count; i++) {
        spqrf_entry e;
        memcpy(&e, file + h.table_offset + (size_t)i * sizeof e, sizeof e);
        payloads += e.size;
        names += e.name_len + 1u;
        if (e.type != SPQRF_SEC_PACKED) continue;
        spqrf_packed_header ph;
        memcpy(&ph, file + e.offset, sizeof ph);
        uint64_t arrays = 0;
        for (int k = 0; k < SPQRF_N_ARRAYS; k++) arrays += ph.arrays[k].nbytes;
        const char *nm = (const char *)file + h.table_offset + (size_t)h.section_count * sizeof e + e.name_offset;
        spqr_size_report sr;
        spqr_tensor_size(spqr_archive_find_packed(a, nm), &sr);
        CHECK_MSG(arrays == sr.stored_bytes, "%s: arrays hold %llu bytes, the size report says %llu", nm,
                  (unsigned long long)arrays, (unsigned long long)sr.stored_bytes);
    }
    /* what is neither payload nor table is the header and alignment padding */
    CHECK(h.table_size == (uint64_t)h.section_count * 64 + names);
    CHECK(n - payloads - h.table_size - 64 < (uint64_t)(h.section_count + 1) * 64);
    spqr_archive_close(a);
    free(buf);
}

/* ---------------------------------------------------------------- */
/* Fuzzer regressions                                                */
/* ---------------------------------------------------------------- */

/* What the fuzz target does with an input: open it, and if it is accepted
 * use every tensor, which must then be safe. */
static int exercise(const uint8_t *data, size_t n) {
    uint8_t *c = aligned_copy(data, n);
    spqr_archive *a = NULL;
    spqr_err err;
    spqr_status s = spqr_archive_open_memory(c, n, "fuzz", &a, &err);
    int ok = s == SPQR_OK || rejected(s, &err);
    for (int32_t i = 0; s == SPQR_OK && i < spqr_archive_count(a); i++) {
        const spqr_tensor *t = spqr_archive_packed_at(a, i);
        const spqr_st_tensor *d = spqr_archive_dense_at(a, i);
        if (t) {
            float *W = malloc(sizeof(float) * (size_t)t->rows * (size_t)t->cols);
            ok &= W && spqr_tensor_dequantize(t, W, &err) == SPQR_OK;
            free(W);
        } else if (d) {
            float *f = malloc(sizeof(float) * (size_t)(d->numel ? d->numel : 1));
            ok &= f && spqr_st_tensor_to_f32(d, f, &err) == SPQR_OK;
            free(f);
        }
    }
    spqr_archive_close(a);
    free(c);
    return ok;
}

static void test_fuzz_regressions(const char *fixtures) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/spqr_fuzz_regressions", fixtures);
    DIR *d = opendir(dir);
    CHECK_MSG(d != NULL, "cannot open %s", dir);
    if (!d) return;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "README.md")) continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len = 0;
        uint8_t *b = (uint8_t *)test_read_file(path, &len);
        CHECK_MSG(b && exercise(b, len), "regression input %s", e->d_name);
        free(b);
        n++;
    }
    closedir(d);
    printf("replayed %d fuzz regression inputs\n", n);
}

/* fuzz/run_fuzz.sh: the seed corpus. Besides the full fixture, small
 * files (one tiny packed tensor each) mutate faster and reach the packed
 * checks more often. */
static void write_seeds(const char *dir, const uint8_t *full, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/full.spqr", dir);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(full, 1, n, f);
        fclose(f);
    }
    float W[5 * 12], H[12 * 12];
    test_rng r = {99};
    for (int i = 0; i < 5 * 12; i++) W[i] = test_rng_normal(&r) * (i % 7 == 0 ? 10.0f : 1.0f);
    for (int i = 0; i < 12; i++)
        for (int j = 0; j < 12; j++) H[i * 12 + j] = (i == j) ? 1.0f + (float)i : 0.1f;
    for (int k = 0; k < N_PACKED; k++) {
        spqr_quant_params p;
        make_params(k, &p);
        p.groupsize = k == 3 ? 0 : 4;
        p.qq_groupsize = 2;
        if (p.outlier_threshold > 0) p.outlier_threshold = 0.01f;
        spqr_tensor *t = NULL;
        spqr_err err;
        spqr_archive_writer *w = NULL;
        snprintf(path, sizeof path, "%s/tiny%d.spqr", dir, k);
        if (spqr_quantize_layer(W, 5, 12, H, &p, 1, NULL, &t, NULL, NULL, NULL, &err) == SPQR_OK &&
            spqr_archive_writer_create(path, &w, &err) == SPQR_OK) {
            if (k == 0) spqr_archive_writer_add_config(w, "{\"a\":[1,{\"b\":null}]}", &err);
            if (k == 1) spqr_archive_writer_add_dense(w, "d", SPQR_DTYPE_BF16, 1, SHAPE_BF16, W, &err);
            spqr_archive_writer_add_packed(w, "t", t, &err);
            spqr_archive_writer_finish(w, &err);
        }
        spqr_archive_writer_free(w);
        spqr_tensor_free(t);
    }
}

int main(int argc, char **argv) {
    const char *fixtures = argc > 1 ? argv[1] : "tests/fixtures";
    char dir[] = "/tmp/spqr_file_test.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[256];
    snprintf(path, sizeof path, "%s/model.spqr", dir);

    test_crc();
    fixture fx;
    CHECK(build_fixture(&fx) == 0);
    test_round_trip(&fx, path);
    test_writer(&fx, dir, path);

    spqr_err err;
    CHECK(write_fixture(&fx, path, &err) == SPQR_OK);
    size_t n = 0;
    uint8_t *file = (uint8_t *)test_read_file(path, &n);
    CHECK(file && n > 1000 && n % 1 == 0);
    if (getenv("SPQR_WRITE_SEEDS")) write_seeds(getenv("SPQR_WRITE_SEEDS"), file, n);
    CHECK(exercise(file, n));
    test_truncation_and_flips(file, n);
    test_hostile(file, n, &fx);
    test_accounting(file, n);
    test_version1(fixtures, dir);
    test_encodings(dir);
    test_fuzz_regressions(fixtures);
    free(file);
    free_fixture(&fx);
    unlink(path);
    rmdir(dir);
    TEST_SUMMARY();
}
