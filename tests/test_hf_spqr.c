/* The Hugging Face SpQR layout (src/format/hf_spqr.c, docs/format.md):
 *  - a hand-built tile whose every value is exact in fp16 encodes to the
 *    documented bit fields and decodes to our dequantization exactly,
 *    outlier included;
 *  - random paper-layout tensors: the format's half-precision decode stays
 *    within the fp16 rounding bound of our fp32 dequantization, outliers
 *    within the rounding of their stored rest;
 *  - anything but the one configuration is refused; hostile arrays are
 *    rejected by the intended check.
 * With --decode FILE.safetensors MODULE OUT.f32 it writes the C decode of
 * one exported linear (raw float32), for tests/cli_hf_spqr.sh to compare
 * with the independent Python decoder bit for bit. */
#include "format/hf_spqr.h"
#include "format/tensor.h"
#include "test_util.h"

static int decode_file(const char *path, const char *module, const char *out) {
    spqr_err err = {0};
    spqr_safetensors *f = NULL;
    if (spqr_safetensors_open(path, &f, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    char key[4][512];
    const char *parts[4] = {"dense_weights", "row_offsets", "col_vals", "in_perm"};
    const spqr_st_tensor *t[4];
    for (int k = 0; k < 4; k++) {
        snprintf(key[k], sizeof key[k], "%s.%s", module, parts[k]);
        if (!(t[k] = spqr_safetensors_find(f, key[k]))) return fprintf(stderr, "no %s\n", key[k]), 1;
    }
    int32_t rows = (int32_t)t[1]->numel - 1, cols = (int32_t)t[3]->numel * 2;
    float *W = malloc((size_t)rows * (size_t)cols * sizeof *W);
    int rc = !W || spqri_hf_spqr_decode(rows, cols, t[0]->data, t[0]->numel, t[1]->data, t[1]->numel, t[2]->data,
                                  t[2]->numel, t[3]->data, t[3]->numel, W, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    FILE *o = rc ? NULL : fopen(out, "wb");
    if (!rc && (!o || fwrite(W, sizeof *W, (size_t)rows * cols, o) != (size_t)rows * cols)) rc = 1;
    if (o && fclose(o)) rc = 1;
    free(W);
    spqr_safetensors_close(f);
    return rc;
}

typedef struct {
    int64_t *dw;
    int32_t *ro, *cv, *ip;
    int64_t n_dw, n_ro, n_cv, n_ip;
} enc;

static int encode(const spqr_tensor *t, enc *e, spqr_err *err) {
    e->n_dw = hf_spqr_dense_words(t->rows, t->cols);
    e->n_ro = t->rows + 1;
    e->n_cv = t->nnz;
    e->n_ip = t->cols / 2;
    e->dw = calloc((size_t)e->n_dw, 8);
    e->ro = calloc((size_t)e->n_ro, 4);
    e->cv = calloc((size_t)e->n_cv + 1, 4);
    e->ip = calloc((size_t)e->n_ip, 4);
    return spqri_hf_spqr_encode(t, e->dw, e->ro, e->cv, e->ip, err);
}

static void enc_free(enc *e) {
    free(e->dw);
    free(e->ro);
    free(e->cv);
    free(e->ip);
}

static spqr_status dec(const enc *e, int32_t rows, int32_t cols, float *W, spqr_err *err) {
    return spqri_hf_spqr_decode(rows, cols, e->dw, e->n_dw, e->ro, e->n_ro, e->cv, e->n_cv, e->ip, e->n_ip, W, err);
}

static void hand_tile(void) {
    spqr_err err = {0};
    spqr_tensor *t = NULL;
    CHECK(spqr_tensor_alloc(16, 16, 3, 16, 3, 3, 16, 1, 1, &t, &err) == SPQR_OK);
    if (!t) return;
    /* s = 0.5 * (3 - 1) = 1, z = 1 * (2 - 0) = 2, w = q - 2: exact in fp16 and fp32 */
    t->scale_q2[0] = spqr_fp32_to_fp16(0.5f), t->scale_q2[1] = spqr_fp32_to_fp16(1.0f);
    t->zero_q2[0] = spqr_fp32_to_fp16(1.0f), t->zero_q2[1] = 0;
    uint8_t sc[16], zc[16], codes[256];
    for (int r = 0; r < 16; r++) sc[r] = 3, zc[r] = 2;
    for (int i = 0; i < 256; i++) codes[i] = (uint8_t)((i * 5 + i / 16) % 8);
    spqr_bits_pack(sc, 16, 3, t->scale_codes);
    spqr_bits_pack(zc, 16, 3, t->zero_codes);
    spqr_bits_pack(codes, 256, 3, t->codes);
    for (int j = 0; j < 16; j++) t->perm[j] = (j * 7 + 3) % 16;
    for (int r = 0; r <= 16; r++) t->outlier_rowptr[r] = r > 0;
    t->outlier_col[0] = 5;
    t->outlier_val[0] = spqr_fp32_to_fp16(100.5f);
    CHECK(spqr_tensor_check(t, &err) == SPQR_OK);
    enc e;
    CHECK(encode(t, &e, &err) == SPQR_OK);
    /* documented fields: row 0's word, the second-level bytes, the outlier's code and rest */
    uint64_t w0 = (uint64_t)e.dw[0], w3 = (uint64_t)e.dw[3];
    CHECK((w0 & 7) == 3 && ((w0 >> 3) & 7) == 2);
    CHECK(((w0 >> (6 + 3 * 1)) & 7) == codes[1]);
    CHECK((w0 >> 54) == (0x3800u & 0xFF) && (w3 >> 54) == (0x3800u >> 8)); /* ss = 0.5 = 0x3800: bytes 0, 1 */
    /* V bits 16..31 zs = 1.0 (rows 4..7), 32..47 sz = 1.0 (rows 8..11), 48..63 zz = 0 (rows 12..15) */
    CHECK(((uint64_t)e.dw[5] >> 54) == 0x00 && ((uint64_t)e.dw[6] >> 54) == 0x3C);
    CHECK(((uint64_t)e.dw[9] >> 54) == 0x00 && ((uint64_t)e.dw[10] >> 54) == 0x3C && ((uint64_t)e.dw[11] >> 54) == 0x3C);
    CHECK(((uint64_t)e.dw[14] >> 54) == 0x00 && ((uint64_t)e.dw[15] >> 54) == 0x00);
    CHECK(((w0 >> (6 + 3 * 5)) & 7) == 7);                                   /* code nearest 100.5: q = 7, w = 5 */
    CHECK((uint32_t)e.cv[0] == ((uint32_t)spqr_fp32_to_fp16(95.5f) << 16 | 5u));
    CHECK((uint32_t)e.ip[0] == (3u | 10u << 16));
    float W[256], R[256];
    CHECK(dec(&e, 16, 16, W, &err) == SPQR_OK);
    CHECK(spqr_tensor_dequantize(t, R, &err) == SPQR_OK);
    CHECK(!memcmp(W, R, sizeof W));
    CHECK(W[0 * 16 + t->perm[5]] == 100.5f);

    /* hostile arrays: each rejected by its own check */
    struct { const char *what, *msg; } cases[] = {
        {"row_offsets[0] != 0", "row_offsets must run"}, {"decreasing row_offsets", "decrease"},
        {"column out of range", "out of range"}, {"duplicate perm", "not a permutation"},
        {"perm beyond cols", "not a permutation"}, {"second-level bytes differ", "different second-level"},
        {"top bits", "top bits"}, {"wrong dense size", "dense_weights has"},
        {"inf second-level scale", "non-finite fp16 statistic"}, {"NaN outlier", "non-finite fp16 value"}};
    for (int c = 0; c < 10; c++) {
        enc h = e;
        int64_t dw[16];
        int32_t ro[17], cv[1], ip[8];
        memcpy(dw, e.dw, sizeof dw), memcpy(ro, e.ro, sizeof ro), memcpy(cv, e.cv, sizeof cv), memcpy(ip, e.ip, sizeof ip);
        h.dw = dw, h.ro = ro, h.cv = cv, h.ip = ip;
        if (c == 0) ro[0] = 1;
        if (c == 1) ro[3] = 0, ro[4] = 1, ro[2] = 1;
        if (c == 2) cv[0] = (cv[0] & ~0xFFFF) | 16;
        if (c == 3) ip[1] = ip[0];
        if (c == 4) ip[2] = (int32_t)((uint32_t)ip[2] | 0xFFFF);
        if (c == 5) dw[1] ^= (int64_t)((uint64_t)1 << 55);
        if (c == 6) dw[0] |= (int64_t)((uint64_t)1 << 63), dw[1] |= (int64_t)((uint64_t)1 << 63);
        if (c == 7) h.n_dw = 15;
        /* rows 0 and 1 carry the tile's second-level byte 0 (the scale's low byte): 0x7C00's high byte is byte 1 */
        if (c == 8)
            for (int k = 2; k < 4; k++)
                dw[k] = (int64_t)(((uint64_t)dw[k] & ~((uint64_t)0xFF << HF_SPQR_FRAG_SHIFT)) | (uint64_t)0x7C << HF_SPQR_FRAG_SHIFT);
        if (c == 9) cv[0] = (int32_t)((uint32_t)cv[0] | 0x7E00u << 16);
        spqr_err e2 = {0};
        CHECK_MSG(dec(&h, 16, 16, W, &e2) != SPQR_OK && strstr(e2.msg, cases[c].msg), "%s: %s", cases[c].what, e2.msg);
    }
    spqr_err e3 = {0};
    CHECK(spqri_hf_spqr_decode(16, 16, e.dw, e.n_dw, e.ro, 2, e.cv, e.n_cv, e.ip, e.n_ip, W, &e3) != SPQR_OK &&
          strstr(e3.msg, "PTCSR"));
    CHECK(spqri_hf_spqr_decode(24, 16, e.dw, e.n_dw, e.ro, e.n_ro, e.cv, e.n_cv, e.ip, e.n_ip, W, &e3) == SPQR_ERR_UNSUPPORTED);
    CHECK(spqri_hf_spqr_decode(16, 32784, e.dw, e.n_dw, e.ro, e.n_ro, e.cv, e.n_cv, e.ip, e.n_ip, W, &e3) ==
          SPQR_ERR_UNSUPPORTED);
    enc_free(&e);
    spqr_tensor_free(t);
}

static void random_tensors(void) {
    const int32_t shapes[][2] = {{64, 256}, {32, 48}, {160, 512}};
    for (int c = 0; c < 3; c++) {
        spqr_err err = {0};
        const int32_t rows = shapes[c][0], cols = shapes[c][1];
        spqr_tensor *t = NULL;
        CHECK(spqr_tensor_random(rows, cols, 3, 0.02, 1.0f / sqrtf((float)cols), 11 + c, &t, &err) == SPQR_OK);
        if (!t) continue;
        CHECK(spqri_hf_spqr_unsupported(t) == NULL);
        enc e;
        CHECK(encode(t, &e, &err) == SPQR_OK);
        float *W = malloc((size_t)rows * cols * sizeof *W), *R = malloc((size_t)rows * cols * sizeof *R);
        CHECK(dec(&e, rows, cols, W, &err) == SPQR_OK);
        CHECK(spqr_tensor_dequantize(t, R, &err) == SPQR_OK);
        int bad = 0, bad_out = 0;
        for (int32_t r = 0; r < rows; r++) {
            int32_t p = t->outlier_rowptr[r];
            for (int32_t j = 0; j < cols; j++) {
                const int32_t oc = t->perm[j];
                const double d = fabs((double)W[(size_t)r * cols + oc] - R[(size_t)r * cols + oc]);
                if (p < t->outlier_rowptr[r + 1] && t->outlier_col[p] == j) {
                    /* the rest is at most |o - w|, rounded once to fp16, plus the fp32 sum */
                    if (d > ldexp(fabs(R[(size_t)r * cols + oc]), -10) + 1e-7) bad_out++;
                    p++;
                    continue;
                }
                /* three fp16 roundings of s, z and w, each relative 2^-11 of its operand */
                const double s = fabs(spqr_tensor_scale(t, j / 16, r)), z = fabs(spqr_tensor_zero(t, j / 16, r));
                const double q = spqr_bits_get(t->codes, (uint64_t)r * cols + j, 3);
                if (d > ldexp(s * (q + 2 * z + 2), -9)) bad++;
            }
        }
        /* import: the same codes and statistics back; outliers are the format's w + v, so the
         * round trip keeps every weight of ours bit for bit when the fp16 rest was exact */
        spqr_tensor *back = NULL;
        CHECK(spqri_hf_spqr_to_tensor(rows, cols, e.dw, e.n_dw, e.ro, e.n_ro, e.cv, e.n_cv, e.ip, e.n_ip, &back, &err) == SPQR_OK);
        float *B2 = malloc((size_t)rows * cols * sizeof *B2);
        int differ = 0;
        if (back && B2 && spqr_tensor_dequantize(back, B2, &err) == SPQR_OK)
            for (size_t i = 0; i < (size_t)rows * cols; i++) differ += B2[i] != R[i];
        else differ = -1;
        CHECK_MSG(differ == 0, "shape %dx%d: %d weights differ after export and import", rows, cols, differ);
        CHECK(back && back->nnz == t->nnz && !memcmp(back->perm, t->perm, (size_t)cols * 4) &&
              !memcmp(back->scale_codes, t->scale_codes, t->scale_codes_bytes) &&
              !memcmp(back->zero_q2, t->zero_q2, (size_t)t->n_groups * t->n_qgroups * 4));
        free(B2);
        spqr_tensor_free(back);
        CHECK_MSG(bad == 0 && bad_out == 0, "shape %dx%d: %d weights and %d outliers beyond the fp16 bound", rows, cols,
                  bad, bad_out);
        free(W);
        free(R);
        enc_free(&e);
        spqr_tensor_free(t);
    }
}

static void refusals(void) {
    spqr_err err = {0};
    struct { int32_t rows, cols, wbits, gs, qs, qz, qg; const char *msg; } cases[] = {
        {16, 16, 4, 16, 3, 3, 16, "not 3-bit"}, {16, 32, 3, 32, 3, 3, 16, "beta1"},
        {16, 16, 3, 16, 0, 0, 0, "statistics are not 3-bit"}, {32, 16, 3, 16, 3, 3, 32, "beta2"},
        {24, 16, 3, 16, 3, 3, 16, "multiples of 16"}, {16, 24, 3, 16, 3, 3, 16, "multiples of 16"},
        /* the authors' code reads an outlier's column as a signed 16-bit number */
        {16, 32784, 3, 16, 3, 3, 16, "more than 32768 columns"}};
    for (int c = 0; c < (int)(sizeof cases / sizeof cases[0]); c++) {
        spqr_tensor *t = NULL;
        CHECK(spqr_tensor_alloc(cases[c].rows, cases[c].cols, cases[c].wbits, cases[c].gs, cases[c].qs, cases[c].qz,
                                cases[c].qg, 0, 0, &t, &err) == SPQR_OK);
        if (!t) continue;
        const char *why = spqri_hf_spqr_unsupported(t);
        CHECK_MSG(why && strstr(why, cases[c].msg), "case %d: %s", c, why ? why : "(accepted)");
        enc e;
        spqr_err e2 = {0};
        CHECK(encode(t, &e, &e2) == SPQR_ERR_UNSUPPORTED && strstr(e2.msg, "paper-w3"));
        enc_free(&e);
        spqr_tensor_free(t);
    }
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "--decode")) return decode_file(argv[2], argv[3], argv[4]);
    hand_tile();
    random_tensors();
    refusals();
    TEST_SUMMARY();
}
