/* BOS / EOS ids of a model (src/model/special_ids.c, config.c):
 * config.json's eos_token_id as an int or a list (all ids kept),
 * generation_config.json's ids added, tokenizer_config.json's declared
 * tokens when config.json names none, and the resolved ids written into
 * the config text a .spqr stores. The model is a copy of
 * tests/fixtures/tiny_gqa with edited side files. argv[1] = tests/fixtures. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "io/file.h"
#include "model/config.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "spqr.h"
#include "test_util.h"

static const char *g_fix;
static char g_tmp[] = "/tmp/spqr_special_ids.XXXXXX";

static void write_text(const char *dir, const char *name, const char *s) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) return;
    fputs(s, f);
    fclose(f);
}

static void rm(const char *dir, const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    unlink(p);
}

/* tiny_gqa's config.json with "eos_token_id": 0 replaced by eos (a JSON
 * value, or NULL to drop the key). */
static char *g_config;
static void write_config(const char *eos) {
    char *s = malloc(strlen(g_config) + 256);
    const char *k = strstr(g_config, "\"eos_token_id\": 0,");
    if (!k) { CHECK(k != NULL); free(s); return; }
    size_t pre = (size_t)(k - g_config);
    memcpy(s, g_config, pre);
    s[pre] = 0;
    if (eos) sprintf(s + pre, "\"eos_token_id\": %s,", eos);
    strcat(s, k + strlen("\"eos_token_id\": 0,"));
    write_text(g_tmp, "config.json", s);
    free(s);
}

static int eos_set_is(const spqr_config *c, int n, const int32_t *ids) {
    if (c->n_eos_token_ids != n || (n && c->eos_token_id != ids[0]) || (!n && c->eos_token_id != -1)) return 0;
    for (int i = 0; i < n; i++)
        if (c->eos_token_ids[i] != ids[i] || !spqr_config_is_eos(c, ids[i])) return 0;
    return 1;
}

static void config_lists(void) {
    const char *head = "{\"model_type\":\"llama\",\"vocab_size\":128256,\"hidden_size\":64,\"intermediate_size\":128,"
                       "\"num_hidden_layers\":1,\"num_attention_heads\":4,\"bos_token_id\":128000,\"eos_token_id\":";
    char json[1024];
    spqr_config c;
    spqr_err e = {0};
    /* Llama-3.1-Instruct: all three kept, the first stays eos_token_id */
    snprintf(json, sizeof json, "%s[128001, 128008, 128009]}", head);
    CHECK(spqr_config_parse(json, strlen(json), &c, &e) == SPQR_OK);
    CHECK(eos_set_is(&c, 3, (const int32_t[]){128001, 128008, 128009}));
    CHECK(!spqr_config_is_eos(&c, 128000) && !spqr_config_is_eos(&c, -1) && !spqr_config_is_eos(NULL, 128001));
    /* generation_config.json adds (no duplicates) */
    const char *gen = "{\"bos_token_id\": 128000, \"eos_token_id\": [128009, 128001, 7], \"temperature\": 0.6}";
    CHECK(spqr_config_add_generation_eos(&c, gen, strlen(gen), &e) == SPQR_OK);
    CHECK(eos_set_is(&c, 4, (const int32_t[]){128001, 128008, 128009, 7}));
    CHECK(spqr_config_add_generation_eos(&c, "{}", 2, &e) == SPQR_OK && c.n_eos_token_ids == 4);
    CHECK(spqr_config_add_generation_eos(&c, "{\"eos_token_id\": 9}", 19, &e) == SPQR_OK && spqr_config_is_eos(&c, 9));
    CHECK(spqr_config_add_generation_eos(&c, "[1]", 3, &e) == SPQR_ERR_FORMAT);
    CHECK(spqr_config_add_generation_eos(&c, "{\"eos_token_id\": \"2\"}", 21, &e) == SPQR_ERR_FORMAT);
    /* an int, null, an empty list, duplicates */
    snprintf(json, sizeof json, "%s2}", head);
    CHECK(spqr_config_parse(json, strlen(json), &c, &e) == SPQR_OK && eos_set_is(&c, 1, (const int32_t[]){2}));
    snprintf(json, sizeof json, "%snull}", head);
    CHECK(spqr_config_parse(json, strlen(json), &c, &e) == SPQR_OK && eos_set_is(&c, 0, NULL));
    snprintf(json, sizeof json, "%s[]}", head);
    CHECK(spqr_config_parse(json, strlen(json), &c, &e) == SPQR_OK && eos_set_is(&c, 0, NULL));
    snprintf(json, sizeof json, "%s[5, 5, 6, 5]}", head);
    CHECK(spqr_config_parse(json, strlen(json), &c, &e) == SPQR_OK && eos_set_is(&c, 2, (const int32_t[]){5, 6}));
    /* bad values are refused, a list longer than the set holds is refused, not cut */
    snprintf(json, sizeof json, "%s[1, -2]}", head);
    CHECK(spqr_config_parse(json, strlen(json), &c, &e) == SPQR_ERR_FORMAT && strstr(e.msg, "eos_token_id"));
    snprintf(json, sizeof json, "%s[1, \"x\"]}", head);
    CHECK(spqr_config_parse(json, strlen(json), &c, &e) == SPQR_ERR_FORMAT);
    snprintf(json, sizeof json, "%s1.5}", head);
    CHECK(spqr_config_parse(json, strlen(json), &c, &e) == SPQR_ERR_FORMAT);
    snprintf(json, sizeof json, "%s[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}", head);
    CHECK(spqr_config_parse(json, strlen(json), &c, &e) == SPQR_ERR_UNSUPPORTED && strstr(e.msg, "16"));
}

static spqr_model *load(spqr_status want) {
    spqr_model *m = NULL;
    spqr_err e = {0};
    spqr_status st = spqr_model_load_hf(g_tmp, NULL, &m, &e);
    CHECK_MSG(st == want, "load: %d (%s), want %d", st, e.msg, want);
    if (st && m) { spqr_model_free(m); m = NULL; }
    return m;
}

/* The config text the model keeps (and a .spqr would store) parses to the same ids. */
static void check_stored(const spqr_model *m) {
    spqr_config c;
    spqr_err e = {0};
    CHECK(spqr_config_parse(m->config_json, m->config_len, &c, &e) == SPQR_OK);
    CHECK(c.bos_token_id == m->cfg.bos_token_id && eos_set_is(&c, m->cfg.n_eos_token_ids, m->cfg.eos_token_ids));
}

static void model_dir(void) {
    char src[1024], dst[1024];
    const char *files[] = {"model.safetensors", "tokenizer.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(src, sizeof src, "%s/tiny_gqa/%s", g_fix, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", g_tmp, files[i]);
        CHECK(symlink(src, dst) == 0);
    }
    snprintf(src, sizeof src, "%s/tiny_gqa/config.json", g_fix);
    g_config = test_read_file(src, NULL);
    CHECK(g_config != NULL);
    if (!g_config) return;

    /* config.json alone: unchanged text, eos 0 */
    write_config("0");
    spqr_model *m = load(SPQR_OK);
    if (m) {
        CHECK(eos_set_is(&m->cfg, 1, (const int32_t[]){0}));
        char *orig = test_read_file(src, NULL);
        CHECK(orig && !strcmp(orig, g_config)); /* (the fixture itself is untouched) */
        free(orig);
        spqr_model_free(m);
    }
    /* a list in config.json plus generation_config.json: every id, in order */
    write_config("[0, 17]");
    write_text(g_tmp, "generation_config.json", "{\"eos_token_id\": [17, 42], \"do_sample\": true}");
    if ((m = load(SPQR_OK))) {
        CHECK(eos_set_is(&m->cfg, 3, (const int32_t[]){0, 17, 42}));
        CHECK(strstr(m->config_json, "42") != NULL); /* generation_config's id survives into a .spqr */
        check_stored(m);
        spqr_model_free(m);
    }
    /* nothing in config.json: the tokenizer's declared eos, tokenizer_config.json first */
    write_config(NULL);
    rm(g_tmp, "generation_config.json");
    if ((m = load(SPQR_OK))) {
        CHECK(eos_set_is(&m->cfg, 1, (const int32_t[]){0})); /* <|endoftext|> of tokenizer.json */
        spqr_model_free(m);
    }
    const spqr_tokenizer *t;
    write_text(g_tmp, "tokenizer_config.json", "{\"eos_token\": {\"content\": \"e\"}, \"bos_token\": \"a\"}");
    if ((m = load(SPQR_OK))) {
        t = m->tok;
        int32_t e_id = spqri_tok_strmap_get(t, &t->vocab, (const uint8_t *)"e", 1);
        int32_t a_id = spqri_tok_strmap_get(t, &t->vocab, (const uint8_t *)"a", 1);
        CHECK(e_id > 0 && a_id > 0);
        CHECK(spqr_tokenizer_eos_id(t) == e_id && spqr_tokenizer_bos_id(t) == a_id);
        CHECK(eos_set_is(&m->cfg, 1, &e_id));
        CHECK(m->cfg.bos_token_id == 0); /* config.json's bos_token_id wins over the tokenizer's */
        check_stored(m);
        spqr_model_free(m);
    }
    /* generation_config.json alone names the EOS ids: the tokenizer's is not added */
    write_text(g_tmp, "generation_config.json", "{\"eos_token_id\": 5}");
    if ((m = load(SPQR_OK))) { CHECK(eos_set_is(&m->cfg, 1, (const int32_t[]){5})); check_stored(m); spqr_model_free(m); }
    /* errors: a declared token the tokenizer lacks, ids outside the vocabulary, bad JSON */
    write_text(g_tmp, "tokenizer_config.json", "{\"eos_token\": \"<|im_end|>\"}");
    load(SPQR_ERR_FORMAT);
    rm(g_tmp, "tokenizer_config.json");
    write_text(g_tmp, "generation_config.json", "{\"eos_token_id\": [1, 300]}");
    load(SPQR_ERR_FORMAT);
    write_text(g_tmp, "generation_config.json", "{\"eos_token_id\": [1, 2");
    load(SPQR_ERR_FORMAT);
    rm(g_tmp, "generation_config.json");
    write_config("[3, 299, 300]");
    load(SPQR_ERR_FORMAT);
    const char *names[] = {"config.json", "model.safetensors", "tokenizer.json"};
    for (int i = 0; i < 3; i++) rm(g_tmp, names[i]);
    free(g_config);
}

int main(int argc, char **argv) {
    static char fix[4096]; /* absolute: the temp dir symlinks into it */
    if (!realpath(argc > 1 ? argv[1] : "tests/fixtures", fix)) { perror("realpath"); return 1; }
    g_fix = fix;
    config_lists();
    if (mkdtemp(g_tmp)) {
        model_dir();
        rmdir(g_tmp);
    } else {
        CHECK(!"mkdtemp");
    }
    TEST_SUMMARY();
}
