/* libFuzzer target: importing a Hugging Face SpQR checkpoint
 * (spqr_import_hf_spqr: config.json's quantization_config, the four arrays
 * of each quantized linear, the 16-bit tensors -> a .spqr file).
 *
 * Input: config.json bytes, the separator "#SPQRST#", then model.safetensors
 * bytes (inputs without the separator are skipped). A private directory holds
 * the fixture tokenizer (tests/fixtures/tiny_gqa/tokenizer.json). A rejection
 * must be FORMAT, UNSUPPORTED or IO with one line and leave no output file.
 * An accepted import must be a .spqr that spqr_archive_open accepts, whose
 * every packed tensor dequantizes, and whose packed tensors' source arrays
 * the format's own decoder (spqri_hf_spqr_decode) accepts too. Seeds
 * (fuzz/corpus/hf_spqr): hf-spqr exports of small synthetic models. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/hf_spqr.h"
#include "fuzz_util.h"
#include "model/export.h"
#include "spqr.h"

#define SEP "#SPQRST#"

static const char *g_dir;
static char g_cfg[4200], g_st[4200], g_out[4200];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    setenv("OMP_NUM_THREADS", "1", 1);
    g_dir = fuzz_tmpdir();
    size_t n;
    char *tok = fuzz_fixture("tests/fixtures/tiny_gqa/tokenizer.json", &n), p[4200];
    snprintf(p, sizeof p, "%s/tokenizer.json", g_dir);
    fuzz_write_file(p, tok, n);
    free(tok);
    snprintf(g_cfg, sizeof g_cfg, "%s/config.json", g_dir);
    snprintf(g_st, sizeof g_st, "%s/model.safetensors", g_dir);
    snprintf(g_out, sizeof g_out, "%s.out.spqr", g_dir);
    return 0;
}

static volatile float sink;

/* The source arrays of packed tensor NAME.weight decode by the format's rule. */
static void check_source(const char *weight_name) {
    spqr_safetensors *f = NULL;
    spqr_err err = {0};
    FUZZ_ASSERT(spqr_safetensors_open(g_st, &f, &err) == SPQR_OK, "imported, but the input no longer opens: %s", err.msg);
    const char *parts[4] = {"dense_weights", "row_offsets", "col_vals", "in_perm"};
    const spqr_st_tensor *t[4];
    char key[2048];
    size_t len = strlen(weight_name) - strlen(".weight");
    for (int k = 0; k < 4; k++) {
        snprintf(key, sizeof key, "%.*s.%s", (int)len, weight_name, parts[k]);
        t[k] = spqr_safetensors_find(f, key);
        FUZZ_ASSERT(t[k] != NULL, "imported %s without its %s", weight_name, parts[k]);
    }
    int32_t rows = (int32_t)t[1]->numel - 1, cols = (int32_t)t[3]->numel * 2;
    float *W = malloc((size_t)rows * (size_t)cols * sizeof *W);
    if (W) {
        spqr_status s = spqri_hf_spqr_decode(rows, cols, t[0]->data, t[0]->numel, t[1]->data, t[1]->numel, t[2]->data,
                                       t[2]->numel, t[3]->data, t[3]->numel, W, &err);
        FUZZ_ASSERT(s == SPQR_OK, "imported %s, but the format's decoder refuses it: %s", weight_name, err.msg);
        sink += W[0];
    }
    free(W);
    spqr_safetensors_close(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *sep = memmem(data, size, SEP, sizeof SEP - 1);
    if (!sep) return 0;
    const size_t nc = (size_t)(sep - data), off = nc + sizeof SEP - 1;
    fuzz_write_file(g_cfg, data, nc);
    fuzz_write_file(g_st, data + off, size - off);
    unlink(g_out);
    spqr_err err;
    err.msg[0] = 0;
    spqr_status s = spqr_import_hf_spqr(g_dir, g_out, NULL, &err);
    if (s != SPQR_OK) {
        fuzz_check_reject(s, &err, FUZZ_BIT(SPQR_ERR_FORMAT) | FUZZ_BIT(SPQR_ERR_UNSUPPORTED) | FUZZ_BIT(SPQR_ERR_IO));
        FUZZ_ASSERT(access(g_out, F_OK) != 0, "a rejected import left %s", g_out);
        return 0;
    }
    spqr_archive *a = NULL;
    s = spqr_archive_open(g_out, &a, &err);
    FUZZ_ASSERT(s == SPQR_OK, "the imported file does not open: %s", err.msg);
    for (int32_t i = 0; i < spqr_archive_count(a); i++) {
        const spqr_tensor *t = spqr_archive_packed_at(a, i);
        if (!t) continue;
        float *W = malloc((size_t)t->rows * (size_t)t->cols * sizeof *W);
        if (W) {
            FUZZ_ASSERT(spqr_tensor_dequantize(t, W, &err) == SPQR_OK, "imported tensor does not dequantize: %s", err.msg);
            sink += W[0];
        }
        free(W);
        check_source(spqr_archive_name(a, i));
    }
    spqr_archive_close(a);
    unlink(g_out);
    return 0;
}
