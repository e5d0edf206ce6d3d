/* Checks a tokenizer against tests/fixtures/hf_tokenizer_cases.json, the
 * ids Hugging Face's tokenizers (Rust, tools/make_hf_tokenizer_fixtures.js)
 * gives for a corpus of lines and two documents. Shared by test_tokenizer.c
 * (the small fixture tokenizers in tests/fixtures) and test_tokenizer_hf.c
 * (the real Llama-2/Llama-3/Qwen3/Gemma tokenizer.json files from
 * node_modules). Included once per test binary; needs test_util.h. */
#ifndef SPQR_TEST_HF_TOKENIZER_CASES_H
#define SPQR_TEST_HF_TOKENIZER_CASES_H

#include <cjson/cJSON.h>

#include "tokenizer/tokenizer.h"
#include "spqr.h"
#include "test_util.h"

typedef struct hf_cases {
    cJSON *root;
    char **text;    /* lines, the document, the lines joined with "\n" */
    size_t *len;
    int n_text;
} hf_cases;

/* Loads the fixture and builds the texts in the generator's order. */
static int hf_cases_load(hf_cases *h, const char *fix_dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/hf_tokenizer_cases.json", fix_dir);
    size_t n = 0;
    char *json = test_read_file(path, &n);
    CHECK_MSG(json != NULL, "cannot read %s", path);
    if (!json) return 0;
    h->root = cJSON_ParseWithLength(json, n);
    free(json);
    CHECK(h->root != NULL);
    if (!h->root) return 0;
    const cJSON *lines = cJSON_GetObjectItem(h->root, "lines"), *e;
    const char *doc = cJSON_GetStringValue(cJSON_GetObjectItem(h->root, "document"));
    int nl = cJSON_GetArraySize(lines);
    h->n_text = nl + 2;
    h->text = calloc((size_t)h->n_text, sizeof *h->text);
    h->len = calloc((size_t)h->n_text, sizeof *h->len);
    size_t joined = 0;
    int i = 0;
    cJSON_ArrayForEach(e, lines) {
        h->text[i] = e->valuestring;
        h->len[i] = strlen(e->valuestring);
        joined += h->len[i++] + 1;
    }
    h->text[nl] = (char *)doc;
    h->len[nl] = doc ? strlen(doc) : 0;
    char *j = malloc(joined + 1);
    size_t m = 0;
    for (i = 0; i < nl; i++) {
        if (i) j[m++] = '\n';
        memcpy(j + m, h->text[i], h->len[i]);
        m += h->len[i];
    }
    j[m] = 0;
    h->text[nl + 1] = j;
    h->len[nl + 1] = m;
    return 1;
}

static void hf_cases_free(hf_cases *h) {
    if (h->text) free(h->text[h->n_text - 1]);
    free(h->text);
    free(h->len);
    cJSON_Delete(h->root);
}

/* FNV-1a 64 of the file, the fixture's check that it is the file the ids
 * were made from (its sha256 is recorded too, for people). */
static uint64_t hf_fnv1a64(const char *s, size_t n) {
    uint64_t x = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) x = (x ^ (uint8_t)s[i]) * 0x100000001b3ULL;
    return x;
}

static const cJSON *hf_entry(const hf_cases *h, const char *name) {
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(h->root, "tokenizers")) {
        const char *n = cJSON_GetStringValue(cJSON_GetObjectItem(e, "name"));
        if (n && !strcmp(n, name)) return e;
    }
    return NULL;
}

/* Loads the entry's tokenizer.json (path relative to the repository root,
 * fix_dir/../..). Returns NULL and sets *missing when the file is absent;
 * a file of another size or hash is a failure. */
static spqr_tokenizer *hf_load(const cJSON *e, const char *fix_dir, int *missing) {
    char path[1024];
    const char *file = cJSON_GetStringValue(cJSON_GetObjectItem(e, "file"));
    snprintf(path, sizeof path, "%s/../../%s", fix_dir, file);
    *missing = 0;
    size_t n = 0;
    char *json = test_read_file(path, &n);
    if (!json) { *missing = 1; return NULL; }
    char want[32];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)hf_fnv1a64(json, n));
    int same = (double)n == cJSON_GetNumberValue(cJSON_GetObjectItem(e, "bytes")) &&
               !strcmp(want, cJSON_GetStringValue(cJSON_GetObjectItem(e, "fnv1a64")));
    CHECK_MSG(same, "%s is not the file the fixture was made from (%zu bytes, fnv1a64 %s; run npm ci)", file, n, want);
    spqr_tokenizer *t = NULL;
    spqr_err err = {0};
    spqr_status st = same ? spqr_tokenizer_load_from_memory(json, n, &t, &err) : SPQR_ERR_FORMAT;
    free(json);
    if (same) CHECK_MSG(st == SPQR_OK, "%s: %s", file, err.msg);
    if (t) CHECK_MSG(spqr_tokenizer_vocab_size(t) == (int32_t)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "vocab_size")),
                     "%s: vocab size %d", file, spqr_tokenizer_vocab_size(t));
    return t;
}

static void hf_show(const char *what, const int32_t *v, int32_t n, int32_t from) {
    fprintf(stderr, "  %s:", what);
    for (int32_t i = from; i < n && i < from + 16; i++) fprintf(stderr, " %d", v[i]);
    fprintf(stderr, "%s\n", n > from + 16 ? " ..." : "");
}

/* Exact ids for every text; decode of the reference ids equals the
 * reference decode (the text itself unless the fixture records another:
 * NFC, Llama-2's stripped leading space, a prefix space). */
static void hf_check_ids(const hf_cases *h, const cJSON *e, const spqr_tokenizer *t) {
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(e, "name"));
    const cJSON *ids = cJSON_GetObjectItem(e, "ids"), *dec = cJSON_GetObjectItem(e, "decoded");
    CHECK(cJSON_GetArraySize(ids) == h->n_text);
    int bad_lines = 0, n_lines = 0;
    long n_ids = 0, ok_ids = 0;
    for (int i = 0; i < h->n_text && i < cJSON_GetArraySize(ids); i++) {
        const cJSON *want_j = cJSON_GetArrayItem(ids, i);
        int32_t nw = cJSON_GetArraySize(want_j);
        int32_t *want = malloc(sizeof(int32_t) * (size_t)(nw + 1));
        int k = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, want_j) want[k++] = (int32_t)x->valuedouble;
        int32_t *got = NULL, ng = 0;
        spqr_err err = {0};
        spqr_status st = spqr_tokenizer_encode(t, h->text[i], h->len[i], 0, &got, &ng, &err);
        int32_t first = 0;
        while (st == SPQR_OK && first < ng && first < nw && got[first] == want[first]) first++;
        int same = st == SPQR_OK && ng == nw && first == nw;
        n_lines++;
        n_ids += nw;
        ok_ids += same ? nw : first;
        if (!same && ++bad_lines <= 4) {
            fprintf(stderr, "%s: text %d (%zu bytes) differs from id %d on (got %d ids, want %d)\n  text: \"%.120s\"\n",
                    name, i, h->len[i], first, ng, nw, h->text[i]);
            hf_show("got", got, ng, first);
            hf_show("want", want, nw, first);
        }
        free(got);
        /* decode */
        char key[16];
        snprintf(key, sizeof key, "%d", i);
        const char *ref = cJSON_GetStringValue(cJSON_GetObjectItem(dec, key));
        size_t rl = ref ? strlen(ref) : h->len[i];
        char *txt = NULL;
        size_t len = 0;
        st = spqr_tokenizer_decode(t, want, nw, &txt, &len, &err);
        CHECK_MSG(st == SPQR_OK && len == rl && !memcmp(txt, ref ? ref : h->text[i], rl), "%s: decode of text %d", name, i);
        free(txt);
        free(want);
    }
    CHECK_MSG(bad_lines == 0, "%s: %d of %d texts differ", name, bad_lines, n_lines);
    printf("%s: %d/%d texts, %ld/%ld ids match the reference\n", name, n_lines - bad_lines, n_lines, ok_ids, n_ids);
}

#endif
