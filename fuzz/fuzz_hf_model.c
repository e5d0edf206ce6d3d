/* libFuzzer target: binding a Hugging Face checkpoint (spqr_model_load_hf:
 * config.json + model.safetensors -> shapes, dtypes, tying, norms; then the
 * forward pass over what was bound).
 *
 * Input: config.json bytes, the separator "#SPQRST#", then model.safetensors
 * bytes (inputs without the separator are skipped). A private directory holds
 * the fixture tokenizer (tests/fixtures/tiny_gqa/tokenizer.json, 300 ids);
 * each input writes the other two files and loads the directory. A rejection
 * must be FORMAT, UNSUPPORTED or IO with one line. An accepted model must run:
 * a session of min(4, max_position_embeddings) positions and a forward pass
 * of two tokens (bos, then token 1) must succeed (non-finite logits are
 * allowed: the weights are arbitrary). The model is as small as the input
 * (seeds: fuzz/corpus/hf_model, hidden 8, 1-2 layers, made by
 * fuzz/make_seeds.py). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "spqr.h"

#define SEP "#SPQRST#"

static const char *g_dir;
static char g_cfg[4200], g_st[4200];

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
    return 0;
}

static volatile float sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *sep = memmem(data, size, SEP, sizeof SEP - 1);
    if (!sep) return 0;
    const size_t nc = (size_t)(sep - data), off = nc + sizeof SEP - 1;
    fuzz_write_file(g_cfg, data, nc);
    fuzz_write_file(g_st, data + off, size - off);
    spqr_model *m = NULL;
    spqr_err err;
    err.msg[0] = 0;
    spqr_status s = spqr_model_load_hf(g_dir, NULL, &m, &err);
    if (s != SPQR_OK) {
        FUZZ_ASSERT(m == NULL, "model returned with an error");
        fuzz_check_reject(s, &err, FUZZ_BIT(SPQR_ERR_FORMAT) | FUZZ_BIT(SPQR_ERR_UNSUPPORTED) | FUZZ_BIT(SPQR_ERR_IO));
        return 0;
    }
    const spqr_config *c = spqr_model_config(m);
    FUZZ_ASSERT(c->bos_token_id < c->vocab_size && c->eos_token_id < c->vocab_size, "bos/eos outside the vocabulary");
    const int32_t ctx = c->max_position_embeddings < 4 ? c->max_position_embeddings : 4;
    spqr_session *ss = NULL;
    s = spqr_session_create(m, ctx, 1, &ss, &err);
    FUZZ_ASSERT(s == SPQR_OK || s == SPQR_ERR_NOMEM, "session_create(%d) on a loaded model: %s", ctx, err.msg);
    if (s == SPQR_OK) {
        float *logits = malloc((size_t)c->vocab_size * sizeof *logits);
        int32_t toks[2] = {c->bos_token_id >= 0 ? c->bos_token_id : 0, 1 % c->vocab_size};
        const int32_t nt = ctx < 2 ? ctx : 2;
        if (logits) {
            s = spqr_session_forward(ss, toks, nt, 0, logits, &err);
            FUZZ_ASSERT(s == SPQR_OK, "forward of %d tokens on a loaded model: %s", nt, err.msg);
            sink += logits[c->vocab_size - 1];
        }
        free(logits);
        spqr_session_free(ss);
    }
    spqr_model_free(m);
    return 0;
}
