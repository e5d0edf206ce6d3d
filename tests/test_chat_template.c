/* Chat templates against @huggingface/jinja: every case of
 * tests/fixtures/chat/ (one JSON per template) (tools/make_chat_fixtures.js: real templates of
 * Llama-2, Llama-3, Llama-3.2, Mistral, Qwen2.5, Qwen3, Phi-3, Gemma,
 * Gemma-2, SmolLM2, plus one synthetic template per feature) must render to
 * the same bytes, or fail where the reference fails, with the template's own
 * raise_exception message word for word. Then hostile templates: every one
 * ends in a one-line error within the limits, none crashes. */
#include <cjson/cJSON.h>
#include <dirent.h>

#include "io/file.h"
#include "spqr.h"
#include "test_util.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

static int n_cases = 0, n_errors = 0;

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Shows where two renders part, for a failure message. */
static void show_diff(const char *name, const char *want, const char *got) {
    size_t i = 0;
    while (want[i] && want[i] == got[i]) i++;
    fprintf(stderr, "  %s: differs at byte %zu\n  want: %.80s\n  got:  %.80s\n", name, i, want + i, got + i);
}

static void run_template(const cJSON *doc, const char *file) {
    const char *name = jstr(doc, "name"), *tmpl = jstr(doc, "template");
    const char *bos = jstr(doc, "bos_token"), *eos = jstr(doc, "eos_token");
    const cJSON *now = cJSON_GetObjectItemCaseSensitive(doc, "now");
    CHECK_MSG(name && tmpl, "%s: fixture without name or template", file);
    if (!name || !tmpl) return;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(doc, "cases")) {
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(c, "messages");
        int n = cJSON_GetArraySize(msgs), k = 0;
        spqr_chat_message *m = calloc((size_t)n + 1, sizeof *m);
        const cJSON *it;
        cJSON_ArrayForEach(it, msgs) {
            m[k].role = jstr(it, "role");
            m[k].content = jstr(it, "content");
            k++;
        }
        ct_context ctx = {.messages = m, .n_messages = n,
                          .add_generation_prompt = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt")),
                          .bos_token = bos, .eos_token = eos, .now = cJSON_IsNumber(now) ? (int64_t)now->valuedouble : 0};
        char *out = NULL;
        size_t out_len = 0;
        spqr_err err = {0};
        spqr_status st = spqri_ct_render(tmpl, strlen(tmpl), &ctx, NULL, &out, &out_len, &err);
        const char *want = jstr(c, "expected"), *want_err = jstr(c, "error"), *conv = jstr(c, "conversation");
        n_cases++;
        if (want) {
            CHECK_MSG(st == SPQR_OK, "%s/%s: render failed: %s", name, conv, err.msg);
            if (st == SPQR_OK) {
                int same = out_len == strlen(want) && !memcmp(out, want, out_len);
                CHECK_MSG(same, "%s/%s (add_generation_prompt %d): output differs from @huggingface/jinja", name, conv,
                          ctx.add_generation_prompt);
                if (!same) show_diff(name, want, out);
            }
        } else {
            n_errors++;
            CHECK_MSG(st != SPQR_OK, "%s/%s: rendered although the reference fails with '%s'", name, conv, want_err);
            CHECK_MSG(strchr(err.msg, '\n') == NULL, "%s/%s: error message is not one line", name, conv);
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "raised"))) {
                CHECK_MSG(st == SPQR_ERR_INVALID_ARG && !strcmp(err.msg, want_err),
                          "%s/%s: raise_exception message '%s', want '%s'", name, conv, err.msg, want_err);
            }
        }
        free(out);
        free(m);
    }
}

static void run_fixtures(const char *dir) {
    static const char *SKIP = "tokenized.json"; /* read by run_tokenized */
    char path[4096];
    snprintf(path, sizeof path, "%s/chat", dir);
    DIR *d = opendir(path);
    CHECK_MSG(d != NULL, "cannot open %s", path);
    if (!d) return;
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") || !strcmp(e->d_name, SKIP)) continue;
        snprintf(path, sizeof path, "%s/chat/%s", dir, e->d_name);
        char *text = NULL;
        size_t len = 0;
        spqr_err err = {0};
        CHECK_MSG(spqr_file_read_text(path, 16u << 20, &text, &len, &err) == SPQR_OK, "%s: %s", path, err.msg);
        cJSON *doc = cJSON_ParseWithLength(text, len);
        CHECK_MSG(doc != NULL, "%s: not JSON", path);
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "templates");
        if (list) {
            const cJSON *t;
            cJSON_ArrayForEach(t, list) run_template(t, e->d_name);
        } else if (doc) run_template(doc, e->d_name);
        cJSON_Delete(doc);
        free(text);
        files++;
    }
    closedir(d);
    CHECK_MSG(files >= 12, "only %d fixture files", files);
}

/* Render + encode without BOS against transformers.js's tokenizers on the real
 * tokenizer.json files (apply_chat_template(tokenize=True)), and whether
 * plain text gets a BOS. The files come from node_modules (npm ci); missing
 * ones are skipped, as in test_tokenizer_hf. */
static void run_tokenized(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/chat/tokenized.json", dir);
    char *text = NULL;
    size_t len = 0;
    spqr_err err = {0};
    CHECK_MSG(spqr_file_read_text(path, 16u << 20, &text, &len, &err) == SPQR_OK, "%s: %s", path, err.msg);
    cJSON *doc = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *c;
    int run = 0, skipped = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(doc, "cases")) {
        const char *name = jstr(c, "name");
        snprintf(path, sizeof path, "%s/../../%s", dir, jstr(c, "tokenizer"));
        spqr_tokenizer *t = NULL;
        if (spqr_tokenizer_load(path, &t, &err)) {
            printf("%s: %s not installed (npm ci --omit=dev): skipped\n", name, jstr(c, "tokenizer"));
            skipped++;
            continue;
        }
        snprintf(path, sizeof path, "%s/../../%s", dir, jstr(c, "tokenizer_config"));
        char *tc = NULL;
        size_t tcl = 0;
        CHECK_MSG(spqr_file_read_text(path, 16u << 20, &tc, &tcl, &err) == SPQR_OK, "%s: %s", path, err.msg);
        if (tc) CHECK_MSG(spqr_tokenizer_apply_config(t, tc, tcl, &err) == SPQR_OK, "%s: %s", name, err.msg);
        free(tc);
        int want_bos = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "adds_bos"));
        CHECK_MSG(spqr_tokenizer_adds_bos(t) == want_bos, "%s: adds_bos %d, transformers.js %d", name,
                  spqr_tokenizer_adds_bos(t), want_bos);
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(c, "messages");
        int n = cJSON_GetArraySize(msgs), k = 0;
        spqr_chat_message *m = calloc((size_t)n + 1, sizeof *m);
        const cJSON *it;
        cJSON_ArrayForEach(it, msgs) {
            m[k].role = jstr(it, "role");
            m[k].content = jstr(it, "content");
            k++;
        }
        char *out = NULL;
        int32_t *ids = NULL, n_ids = 0;
        CHECK_MSG(spqr_chat_template_render(jstr(c, "template"), m, n, 1, jstr(c, "bos_token"), jstr(c, "eos_token"),
                                            &out, &err) == SPQR_OK, "%s: %s", name, err.msg);
        if (out) CHECK(spqr_tokenizer_encode(t, out, strlen(out), 0, &ids, &n_ids, &err) == SPQR_OK);
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, "ids");
        int same = n_ids == cJSON_GetArraySize(want);
        for (int i = 0; same && i < n_ids; i++) same = ids[i] == (int32_t)cJSON_GetArrayItem(want, i)->valuedouble;
        CHECK_MSG(same, "%s: %d ids, transformers.js %d (or they differ)", name, n_ids, cJSON_GetArraySize(want));
        free(ids);
        free(out);
        free(m);
        spqr_tokenizer_free(t);
        run++;
    }
    cJSON_Delete(doc);
    printf("tokenized: %d checked against transformers.js, %d skipped\n", run, skipped);
}

/* A template that must fail cleanly, with code want (0: any error). */
static void hostile(const char *label, const char *tmpl, size_t len, spqr_status want) {
    spqr_chat_message m[2] = {{"system", "s"}, {"user", "u"}};
    ct_context ctx = {.messages = m, .n_messages = 2, .add_generation_prompt = 1, .bos_token = "<s>", .eos_token = "</s>"};
    ct_limits lim = spqri_ct_default_limits();
    lim.max_memory = 32u << 20;
    lim.max_output = 1u << 20;
    lim.max_steps = 2000000;
    char *out = NULL;
    spqr_err err = {0};
    spqr_status st = spqri_ct_render(tmpl, len, &ctx, &lim, &out, NULL, &err);
    CHECK_MSG(st != SPQR_OK && (want == 0 || st == want), "%s: status %d (%s)", label, st, err.msg);
    CHECK_MSG(out == NULL && err.msg[0] && !strchr(err.msg, '\n'), "%s: no clean one-line error", label);
    free(out);
}

static void run_hostile(void) {
    char *deep = malloc(100000);
    size_t n = 0;
    n += (size_t)sprintf(deep + n, "{{ ");
    for (int i = 0; i < 20000; i++) deep[n++] = '(';
    deep[n] = 0;
    hostile("20000 open parentheses", deep, n, SPQR_ERR_UNSUPPORTED);
    n = 0;
    for (int i = 0; i < 5000; i++) n += (size_t)sprintf(deep + n, "{%% if true %%}");
    hostile("5000 nested ifs", deep, n, SPQR_ERR_UNSUPPORTED);
    n = 0;
    n += (size_t)sprintf(deep + n, "{{ ");
    for (int i = 0; i < 10000; i++) n += (size_t)sprintf(deep + n, "not ");
    n += (size_t)sprintf(deep + n, "1 }}");
    hostile("10000 nots", deep, n, SPQR_ERR_UNSUPPORTED);
    n = 0;
    n += (size_t)sprintf(deep + n, "{{ x");
    for (int i = 0; i < 10000; i++) n += (size_t)sprintf(deep + n, "[0]");
    n += (size_t)sprintf(deep + n, " }}");
    hostile("10000 subscripts", deep, n, SPQR_ERR_UNSUPPORTED);
    free(deep);
    const char *T[][2] = {
        {"huge loop", "{% for i in range(100000000) %}x{% endfor %}"},
        {"nesting built by a loop", "{% set ns = namespace(l=[]) %}{% for i in range(300000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l ~ '' }}"},
        {"nesting built by a loop, as JSON", "{% set ns = namespace(l=[]) %}{% for i in range(300000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l|tojson }}"},
        {"slice steps that overflow", "{{ [1, 2, 3][1::9223372036854775807] }}{{ 'abc'[1::9223372036854775807] }}{{ [1, 2][::-9223372036854775807 - 1] }}{{ x.y }}{{ 1 < 'a' }}"},
        {"nested loops", "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"},
        {"string doubling", "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"},
        {"output flood", "{% for i in range(1000000) %}0123456789abcdef{% endfor %}"},
        {"recursive macro", "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}"},
        {"unterminated string", "{{ 'abc"},
        {"unterminated block", "{% if true %}abc"},
        {"unterminated comment", "{# abc"},
        {"unterminated expression", "{{ 1 + "},
        {"bad escape", "{{ '\\q' }}"},
        {"unknown filter", "{{ 'a'|frobnicate }}"},
        {"unknown test", "{{ 1 is frobnicated }}"},
        {"unknown statement", "{% frob %}"},
        {"call of a string", "{{ 'a'() }}"},
        {"division", "{{ 1 // 0 }}{{ 1 % 0 }}{{ (0 - 9223372036854775807 - 1) // -1 }}{{ undefined_x.y.z }}{{ 'a' < 1 }}"},
        {"break outside a loop", "{% break %}"},
        {"raise", "{{ raise_exception('stop here') }}"},
        {"raise a NUL", "{{ raise_exception('\\x00') }}"},
        {"raise nothing", "{{ raise_exception('') }}"},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        hostile(T[i][0], T[i][1], strlen(T[i][1]), !strncmp(T[i][0], "raise", 5) ? SPQR_ERR_INVALID_ARG : 0);
    /* random bytes from the template alphabet: never a crash; the limits bound the time */
    static const char ALPHA[] = "{}%#-()[]|.,:'\"~+*/=<> \n\tabnotifelsforendsetin0123456789_";
    test_rng r = {0x9e3779b97f4a7c15ULL};
    char buf[256];
    int ok = 0;
    for (int it = 0; it < 20000; it++) {
        size_t len = (size_t)(test_rng_next(&r) % 200);
        for (size_t j = 0; j < len; j++) buf[j] = ALPHA[test_rng_next(&r) % (sizeof ALPHA - 1)];
        spqr_chat_message m[1] = {{"user", "u"}};
        ct_context ctx = {.messages = m, .n_messages = 1};
        char *out = NULL;
        spqr_err err = {0};
        spqr_status st = spqri_ct_render(buf, len, &ctx, NULL, &out, NULL, &err);
        ok += st == SPQR_OK;
        if (st != SPQR_OK && (out || !err.msg[0] || strchr(err.msg, '\n'))) {
            CHECK_MSG(0, "random template %d: error without a clean message", it);
            break;
        }
        free(out);
    }
    CHECK(ok > 0);
}

static void run_api(void) {
    spqr_chat_message m[2] = {{"user", "hi"}, {"assistant", "yo"}};
    char *out = NULL;
    spqr_err err = {0};
    CHECK(spqr_chat_template_render("{% for x in messages %}[{{ x.role }}:{{ x.content }}]{% endfor %}{{ eos_token }}",
                                    m, 2, 1, NULL, "</s>", &out, &err) == SPQR_OK);
    CHECK(out && !strcmp(out, "[user:hi][assistant:yo]</s>"));
    free(out);
    CHECK(spqr_chat_template_render("{{ bos_token is defined }}", m, 2, 1, NULL, NULL, &out, &err) == SPQR_OK);
    CHECK(out && !strcmp(out, "false"));
    free(out);
    CHECK(spqr_chat_template_render(NULL, m, 2, 1, NULL, NULL, &out, &err) == SPQR_ERR_INVALID_ARG && out == NULL);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/fixtures";
    run_fixtures(dir);
    printf("%d reference cases (%d expected errors)\n", n_cases, n_errors);
    CHECK(n_cases >= 150);
    run_tokenized(dir);
    run_hostile();
    run_api();
    TEST_SUMMARY();
}
