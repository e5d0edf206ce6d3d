/* libFuzzer target: model.safetensors.index.json (the weight_map parsing of
 * the Hugging Face loader, src/model/loader.c open_sharded), reached the only
 * way it is: through spqr_model_load_hf on a directory.
 *
 * A private directory is set up once with the tiny_tied fixture checkpoint
 * (config.json, tokenizer.json and its two shards, no model.safetensors);
 * each input becomes its model.safetensors.index.json and the directory is
 * loaded. A rejection must be FORMAT, UNSUPPORTED or IO (a shard that does
 * not exist) with one line; an accepted model must be the fixture's. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "spqr.h"

static char g_index[4200];
static const char *g_dir;

static void copy_fixture(const char *name) {
    char rel[256], dst[4200];
    size_t n;
    snprintf(rel, sizeof rel, "tests/fixtures/tiny_tied/%s", name);
    char *b = fuzz_fixture(rel, &n);
    snprintf(dst, sizeof dst, "%s/%s", g_dir, name);
    fuzz_write_file(dst, b, n);
    free(b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    setenv("OMP_NUM_THREADS", "1", 1);
    g_dir = fuzz_tmpdir();
    copy_fixture("config.json");
    copy_fixture("tokenizer.json");
    copy_fixture("model-00001-of-00002.safetensors");
    copy_fixture("model-00002-of-00002.safetensors");
    snprintf(g_index, sizeof g_index, "%s/model.safetensors.index.json", g_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write_file(g_index, data, size);
    spqr_model *m = NULL;
    spqr_err err;
    err.msg[0] = 0;
    spqr_status s = spqr_model_load_hf(g_dir, NULL, &m, &err);
    if (s == SPQR_OK) {
        const spqr_config *c = spqr_model_config(m);
        FUZZ_ASSERT(c->vocab_size == 304 && c->n_layers == 3 && c->hidden_size == 64, "not the fixture model");
        FUZZ_ASSERT(spqr_model_tokenizer(m) != NULL, "no tokenizer");
        spqr_model_free(m);
    } else {
        FUZZ_ASSERT(m == NULL, "model returned with an error");
        fuzz_check_reject(s, &err, FUZZ_BIT(SPQR_ERR_FORMAT) | FUZZ_BIT(SPQR_ERR_UNSUPPORTED) | FUZZ_BIT(SPQR_ERR_IO));
    }
    return 0;
}
