/* Tokenizer tests.
 * - Exact ids for every case of tokenizer_cases.json (expected ids from the
 *   independent Python references, tools/make_tokenizer_fixtures.py), for
 *   the byte-level, Llama-3-style and SentencePiece-style fixtures and the
 *   default model's tokenizer; decode of the expected ids equals the
 *   reference decode; streaming pieces concatenate to the decode.
 * - decode(encode(x)) == x for the cases and for random inputs.
 * - Hand-checked splits of the two regex scanners and Unicode classes.
 * - Bad files: clear error codes, never a crash (also under byte mutations).
 * - 1 MB inputs finish (no quadratic blowup; nothing about time asserted).
 * - Hugging Face's own ids (hf_tokenizer_cases.json, made by Rust tokenizers)
 *   for the SmolLM-style Digits fixtures; the real tokenizers are in
 *   test_tokenizer_hf.c. NFC against HF's normalizer (nfc_cases.txt).
 * - bos/eos: declared special tokens over plain vocab entries,
 *   tokenizer_config.json. */
#include <cjson/cJSON.h>

#include "hf_tokenizer_cases.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "spqr.h"
#include "test_util.h"

static const char *g_fix;

static size_t unhex(const char *h, uint8_t *out) {
    size_t n = strlen(h) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n;
}

static void show(const char *what, const uint8_t *s, size_t n) {
    fprintf(stderr, "  %s: \"", what);
    for (size_t i = 0; i < n && i < 80; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7f) fputc(s[i], stderr);
        else fprintf(stderr, "\\x%02x", s[i]);
    }
    fprintf(stderr, "%s\"\n", n > 80 ? "..." : "");
}

/* decode(encode(x)) == x; returns 1 on success. */
static int roundtrip(const spqr_tokenizer *t, const uint8_t *s, size_t n) {
    int32_t *ids = NULL, nid = 0;
    char *txt = NULL;
    size_t len = 0;
    spqr_err e;
    int ok = spqr_tokenizer_encode(t, (const char *)s, n, 0, &ids, &nid, &e) == SPQR_OK &&
             spqr_tokenizer_decode(t, ids, nid, &txt, &len, &e) == SPQR_OK && len == n && memcmp(txt, s, n) == 0;
    free(ids);
    free(txt);
    return ok;
}

static void check_pieces(const spqr_tokenizer *t, const int32_t *ids, int32_t n, const char *dec, size_t dec_len) {
    char *buf = malloc(dec_len + 64), piece[256];
    size_t m = 0;
    int ok = 1;
    for (int32_t i = 0; i < n && ok; i++) {
        int32_t k = spqr_tokenizer_piece(t, i ? ids[i - 1] : -1, ids[i], piece, sizeof piece);
        if (k < 0 || m + (size_t)k > dec_len + 64) { ok = 0; break; }
        memcpy(buf + m, piece, (size_t)k);
        m += (size_t)k;
    }
    CHECK(ok && m == dec_len && memcmp(buf, dec, dec_len) == 0);
    free(buf);
}

static void run_cases(const cJSON *entry) {
    const char *file = cJSON_GetObjectItem(entry, "file")->valuestring;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", g_fix, file);
    spqr_tokenizer *t = NULL;
    spqr_err e = {0};
    spqr_status st = spqr_tokenizer_load(path, &t, &e);
    CHECK_MSG(st == SPQR_OK, "%s: %s", path, e.msg);
    if (st) return;
    CHECK(spqr_tokenizer_vocab_size(t) == cJSON_GetObjectItem(entry, "vocab_size")->valueint);
    const cJSON *jb = cJSON_GetObjectItem(entry, "bos_id"), *je = cJSON_GetObjectItem(entry, "eos_id");
    if (cJSON_IsNumber(jb)) CHECK_MSG(spqr_tokenizer_bos_id(t) == jb->valueint, "%s bos %d", file, spqr_tokenizer_bos_id(t));
    if (cJSON_IsNumber(je)) CHECK_MSG(spqr_tokenizer_eos_id(t) == je->valueint, "%s eos %d", file, spqr_tokenizer_eos_id(t));
    int byte_level = cJSON_IsTrue(cJSON_GetObjectItem(entry, "byte_level"));
    /* Metaspace prepend_scheme "first" turns a leading " " into the "▁" it
     * would prepend anyway, so a leading space does not come back. */
    int leading_space_lost = cJSON_IsTrue(cJSON_GetObjectItem(entry, "leading_space_lost"));

    int n_cases = 0, n_bad = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(entry, "cases")) {
        const char *hex = cJSON_GetObjectItem(c, "hex")->valuestring;
        const char *dhex = cJSON_GetObjectItem(c, "decoded_hex")->valuestring;
        uint8_t *s = malloc(strlen(hex) / 2 + 1), *d = malloc(strlen(dhex) / 2 + 1);
        size_t n = unhex(hex, s), dn = unhex(dhex, d);
        const cJSON *jids = cJSON_GetObjectItem(c, "ids");
        int32_t ne = cJSON_GetArraySize(jids);
        int32_t *want = malloc(sizeof(int32_t) * (size_t)(ne + 1));
        for (int32_t i = 0; i < ne; i++) want[i] = cJSON_GetArrayItem(jids, i)->valueint;

        int32_t *ids = NULL, nid = 0;
        st = spqr_tokenizer_encode(t, (const char *)s, n, 0, &ids, &nid, &e);
        int same = st == SPQR_OK && nid == ne && (ne == 0 || memcmp(ids, want, sizeof(int32_t) * (size_t)ne) == 0);
        n_cases++;
        if (!same) {
            n_bad++;
            if (n_bad <= 5) {
                fprintf(stderr, "%s: ids differ (got %d, want %d)\n", file, nid, ne);
                show("input", s, n);
                fprintf(stderr, "  got:");
                for (int32_t i = 0; i < nid && i < 30; i++) fprintf(stderr, " %d", ids[i]);
                fprintf(stderr, "\n  want:");
                for (int32_t i = 0; i < ne && i < 30; i++) fprintf(stderr, " %d", want[i]);
                fprintf(stderr, "\n");
            }
        }
        free(ids);

        /* decode of the expected ids == the reference decode, pieces agree */
        char *txt = NULL;
        size_t len = 0;
        st = spqr_tokenizer_decode(t, want, ne, &txt, &len, &e);
        CHECK_MSG(st == SPQR_OK && len == dn && memcmp(txt, d, dn) == 0, "%s: decode differs", file);
        if (st == SPQR_OK) check_pieces(t, want, ne, txt, len);
        free(txt);

        if (cJSON_IsTrue(cJSON_GetObjectItem(c, "roundtrip"))) {
            int ok = roundtrip(t, s, n);
            CHECK(ok);
            if (!ok) show("no round trip", s, n);
        }
        /* add_bos prepends bos exactly when there is one */
        st = spqr_tokenizer_encode(t, (const char *)s, n, 1, &ids, &nid, &e);
        int32_t bos = spqr_tokenizer_bos_id(t), off = bos >= 0;
        CHECK(st == SPQR_OK && nid == ne + off && (!off || ids[0] == bos) &&
              (ne == 0 || memcmp(ids + off, want, sizeof(int32_t) * (size_t)ne) == 0));
        free(ids);
        free(s); free(d); free(want);
    }
    CHECK_MSG(n_bad == 0, "%s: %d of %d cases differ", file, n_bad, n_cases);
    printf("%s: %d cases, %d differ\n", file, n_cases, n_bad);

    /* 2000 random byte strings (any bytes for byte-level; for SP mostly valid
     * UTF-8 with some stray high bytes, avoiding a literal "▁" and "<", which
     * can form added-token text: those do not round trip) */
    test_rng r = {0x9E3779B97F4A7C15ULL ^ (unsigned long long)strlen(file)};
    int rt_fail = 0;
    uint8_t buf[256];
    for (int it = 0; it < 2000; it++) {
        size_t n = 0, want_len = test_rng_next(&r) % 60;
        while (n < want_len) {
            unsigned long long x = test_rng_next(&r);
            if (byte_level) {
                if (x % 3 == 0) buf[n++] = (uint8_t)(x >> 8);                /* any byte */
                else buf[n++] = " \n\tae'1.s"[(x >> 8) % 9];                 /* regex-relevant ASCII */
                continue;
            }
            if (x % 23 == 0) { buf[n++] = (uint8_t)(0x80 | (x >> 8)); continue; } /* stray byte: likely invalid UTF-8 */
            uint32_t cp;
            switch (x % 4) {
            case 0: cp = 0x20 + (uint32_t)((x >> 8) % 0x5F); break;          /* ASCII */
            case 1: cp = " \n\t"[(x >> 8) % 3]; break;
            case 2: cp = 0x80 + (uint32_t)((x >> 8) % 0x2000); break;        /* 2-3 byte */
            default: cp = 0x10000 + (uint32_t)((x >> 8) % 0x100000); break;   /* 4 byte */
            }
            if (cp == '<' || cp == 0x2581 || (cp >= 0xD800 && cp <= 0xDFFF)) continue;
            if (cp < 0x80) buf[n++] = (uint8_t)cp;
            else if (cp < 0x800) { buf[n++] = (uint8_t)(0xC0 | (cp >> 6)); buf[n++] = (uint8_t)(0x80 | (cp & 0x3F)); }
            else if (cp < 0x10000) {
                buf[n++] = (uint8_t)(0xE0 | (cp >> 12)); buf[n++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
                buf[n++] = (uint8_t)(0x80 | (cp & 0x3F));
            } else {
                buf[n++] = (uint8_t)(0xF0 | (cp >> 18)); buf[n++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
                buf[n++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)); buf[n++] = (uint8_t)(0x80 | (cp & 0x3F));
            }
        }
        if (leading_space_lost && n > 0 && buf[0] == ' ') buf[0] = 'x';
        if (!roundtrip(t, buf, n)) { if (rt_fail++ < 3) show("random no round trip", buf, n); }
    }
    CHECK_MSG(rt_fail == 0, "%s: %d of 2000 random strings do not round trip", file, rt_fail);

    /* SentencePiece keeps invalid UTF-8 too: each bad byte is its <0xNN> token */
    if (!byte_level) {
        const uint8_t bad[] = {'a', 0xFF, ' ', 0xC3, 'b', 0xED, 0xA0, 0x80, 0xF0, 0x9F};
        CHECK(roundtrip(t, bad, sizeof bad));
    }

    /* 1 MB: mixed text, and one 1 MB "word" with no split points */
    size_t big = 1 << 20;
    char *text = malloc(big);
    const char *para = "The quick brown fox didn't jump over 12345 lazy dogs; caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x91\x8d!\n";
    size_t pl = strlen(para);
    for (size_t i = 0; i < big; i++) text[i] = para[i % pl];
    CHECK(roundtrip(t, (const uint8_t *)text, big));
    for (size_t i = 0; i < big; i++) text[i] = "ab"[(i * 7 / 3) % 2];
    CHECK(roundtrip(t, (const uint8_t *)text, big));
    free(text);

    /* invalid ids */
    int32_t badids[2] = {0, spqr_tokenizer_vocab_size(t)};
    char *txt = NULL;
    size_t len;
    CHECK(spqr_tokenizer_decode(t, badids, 2, &txt, &len, &e) == SPQR_ERR_INVALID_ARG && txt == NULL);
    CHECK(spqr_tokenizer_piece(t, -1, -5, (char *)buf, 16) == -1);
    CHECK(spqr_tokenizer_piece(t, -1, spqr_tokenizer_vocab_size(t), (char *)buf, 16) == -1);
    spqr_tokenizer_free(t);
}

/* ------------------------------------------------------------ direct checks */

static void check_split(int llama3, const char *text, const char *const *want) {
    size_t n = strlen(text), i = 0;
    int k = 0, ok = 1;
    while (i < n) {
        size_t l = llama3 ? spqri_tok_pretok_llama3((const uint8_t *)text + i, n - i, 3)
                          : spqri_tok_pretok_gpt2((const uint8_t *)text + i, n - i);
        if (!want[k] || strlen(want[k]) != l || memcmp(want[k], text + i, l)) { ok = 0; break; }
        i += l;
        k++;
    }
    CHECK_MSG(ok && !want[k], "%s split of \"%s\" (piece %d)", llama3 ? "llama3" : "gpt2", text, k);
}

static void direct_checks(void) {
    CHECK(spqr_unicode_class('a') == SPQR_UC_L && spqr_unicode_class('7') == SPQR_UC_N);
    CHECK(spqr_unicode_class(0x00E9) == SPQR_UC_L && spqr_unicode_class(0x4E2D) == SPQR_UC_L);
    CHECK(spqr_unicode_class(0x00BD) == SPQR_UC_N && spqr_unicode_class(0x216B) == SPQR_UC_N);
    CHECK(spqr_unicode_class(0x3000) == SPQR_UC_S && spqr_unicode_class(0x0085) == SPQR_UC_S);
    CHECK(spqr_unicode_class(0x001C) == SPQR_UC_OTHER);       /* isspace() in Python, not \s */
    CHECK(spqr_unicode_class(0x200D) == SPQR_UC_OTHER && spqr_unicode_class(0x0301) == SPQR_UC_OTHER);
    CHECK(spqr_unicode_class(0x1F44D) == SPQR_UC_OTHER && spqr_unicode_class(SPQR_UTF8_INVALID) == SPQR_UC_OTHER);
    uint32_t cp;
    CHECK(spqr_utf8_next((const uint8_t *)"\xE4\xB8\xAD", 3, &cp) == 3 && cp == 0x4E2D);
    CHECK(spqr_utf8_next((const uint8_t *)"\xED\xA0\x80", 3, &cp) == 1 && cp == SPQR_UTF8_INVALID);
    CHECK(spqr_utf8_next((const uint8_t *)"\xC0\xAF", 2, &cp) == 1 && cp == SPQR_UTF8_INVALID);
    CHECK(spqr_utf8_next((const uint8_t *)"\xF4\x90\x80\x80", 4, &cp) == 1 && cp == SPQR_UTF8_INVALID);
    CHECK(spqr_utf8_next((const uint8_t *)"\xE2\x82", 2, &cp) == 1 && cp == SPQR_UTF8_INVALID);
    for (int b = 0; b < 256; b++) CHECK(spqri_tok_cp_to_byte(spqri_tok_byte_to_cp((uint8_t)b)) == b);
    CHECK(spqri_tok_byte_to_cp(' ') == 0x120 && spqri_tok_byte_to_cp('\n') == 0x10A && spqri_tok_byte_to_cp('A') == 'A');

    check_split(0, "Hello   world  ", (const char *const[]){"Hello", "  ", " world", "  ", NULL});
    check_split(0, "it's I'RE 12345!!", (const char *const[]){"it", "'s", " I", "'", "RE", " 12345", "!!", NULL});
    check_split(0, "a\n\n b", (const char *const[]){"a", "\n\n", " b", NULL});
    check_split(1, "it's I'RE 12345!!", (const char *const[]){"it", "'s", " I", "'RE", " ", "123", "45", "!!", NULL});
    check_split(1, "\tword ((x))\r\n\r\n  y", (const char *const[]){"\tword", " ((", "x", "))\r\n\r\n", " ", " y", NULL});
    check_split(1, "a  \n  b", (const char *const[]){"a", "  \n", " ", " b", NULL});

    /* Unicode 15-16 letters and digits (the tables were 14.0: these were OTHER) */
    CHECK(spqr_unicode_class(0x1E4D0) == SPQR_UC_L && spqr_unicode_class(0x1E4F9) == SPQR_UC_N); /* Nag Mundari 15.0 */
    CHECK(spqr_unicode_class(0x11F04) == SPQR_UC_L && spqr_unicode_class(0x11F50) == SPQR_UC_N); /* Kawi 15.0 */
    CHECK(spqr_unicode_class(0x2EBF0) == SPQR_UC_L);                                             /* CJK Ext I 15.1 */
    CHECK(spqr_unicode_class(0x10D4A) == SPQR_UC_L && spqr_unicode_class(0x10D40) == SPQR_UC_N); /* Garay 16.0 */
    CHECK(spqr_unicode_class(0x1CCF0) == SPQR_UC_N && spqr_unicode_class(0x16D70) == SPQR_UC_N); /* 16.0 digits */
    CHECK(strcmp(spqr_unicode_version, "16.0.0") == 0 && strcmp(spqr_unicode_nfc_version, "9.0.0") == 0);

    /* Digits: each numeric character alone, or runs of them */
    const char *dg = "ab12 x\xd9\xa3\xd9\xa4\xc2\xbd!";  /* "ab12 x" U+0663 U+0664 U+00BD "!" */
    size_t dn = strlen(dg), want1[] = {2, 1, 1, 2, 2, 2, 2, 1}, want0[] = {2, 2, 2, 6, 1}, i = 0;
    for (int k = 0; k < 8; k++) { size_t l = spqri_tok_pretok_digits((const uint8_t *)dg + i, dn - i, 1); CHECK(l == want1[k]); i += l; }
    CHECK(i == dn);
    i = 0;
    for (int k = 0; k < 5; k++) { size_t l = spqri_tok_pretok_digits((const uint8_t *)dg + i, dn - i, 0); CHECK(l == want0[k]); i += l; }
    CHECK(i == dn);
}

/* ------------------------------------------------------------ NFC */

static size_t put_cp(uint32_t c, uint8_t *o) {
    if (c < 0x80) { o[0] = (uint8_t)c; return 1; }
    if (c < 0x800) { o[0] = (uint8_t)(0xC0 | (c >> 6)); o[1] = (uint8_t)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (c >> 12)); o[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F)); o[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (c >> 18)); o[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F)); o[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

/* Parses "1E0A 0323" into UTF-8. */
static size_t parse_cps(const char *s, const char *end, uint8_t *o) {
    size_t n = 0;
    while (s < end) {
        char *e;
        unsigned long c = strtoul(s, &e, 16);
        if (e == s) break;
        n += put_cp((uint32_t)c, o + n);
        s = e;
    }
    return n;
}

static void nfc_checks(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/nfc_cases.txt", g_fix);
    size_t n = 0;
    char *txt = test_read_file(path, &n);
    CHECK_MSG(txt != NULL, "cannot read %s", path);
    if (!txt) return;
    int lines = 0, bad = 0;
    uint8_t in[256], want[256], got[SPQR_NFC_OUT_CAP(256)];
    uint32_t work[SPQR_NFC_WORK_CAP(256)];
    for (char *p = txt, *nl; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        if (!nl) break;
        if (*p == '#') continue;
        char *semi = memchr(p, ';', (size_t)(nl - p));
        if (!semi) continue;
        size_t ni = parse_cps(p, semi, in), nw = parse_cps(semi + 1, nl, want);
        size_t ng = spqr_unicode_nfc(in, ni, work, got);
        lines++;
        if (ng != nw || memcmp(got, want, nw)) {
            if (bad++ < 5) fprintf(stderr, "NFC differs: %.*s\n", (int)(nl - p), p);
        }
        /* the fast path may only skip what NFC leaves alone */
        if (!spqr_unicode_nfc_may_change(in, ni)) CHECK(nw == ni && !memcmp(in, want, ni));
    }
    CHECK_MSG(lines > 5000 && bad == 0, "NFC: %d of %d lines differ from HF's normalizer", bad, lines);
    printf("nfc_cases.txt: %d lines, %d differ\n", lines, bad);
    free(txt);

    /* invalid bytes pass through and block nothing they should not */
    const uint8_t raw[] = {'e', 0xCC, 0x81, 0xFF, 0xCC, 0x81, 0xC3};
    size_t ng = spqr_unicode_nfc(raw, sizeof raw, work, got);
    CHECK(ng == 6 && !memcmp(got, "\xC3\xA9\xFF\xCC\x81\xC3", 6));

    /* a million marks of alternating classes: linear, not quadratic */
    size_t big = 2 * 1000000 + 1;
    uint8_t *s = malloc(big), *o = malloc(SPQR_NFC_OUT_CAP(big));
    uint32_t *w = malloc(sizeof(uint32_t) * SPQR_NFC_WORK_CAP(big));
    s[0] = 'a';
    for (size_t k = 1; k + 1 < big; k += 2) { s[k] = 0xCC; s[k + 1] = (k / 2) % 2 ? 0x81 : 0xA3; } /* U+0301 230, U+0323 220 */
    ng = spqr_unicode_nfc(s, big, w, o);
    /* a + U+0323 composes (U+1EA1, same length), then the other 499999
     * U+0323 before all 500000 U+0301 */
    CHECK(ng == big && o[0] == 0xE1 && o[1] == 0xBA && o[2] == 0xA1 && o[3] == 0xCC && o[4] == 0xA3 &&
          o[ng - 1] == 0x81 && o[big / 2] == 0xA3 && o[big / 2 + 2] == 0x81);
    free(s); free(o); free(w);
}

/* ------------------------------------------------------------ small hand-made tokenizers */

static void expect_ids(const char *json, const char *text, const int32_t *want, int32_t n_want) {
    spqr_tokenizer *t = NULL;
    spqr_err e = {0};
    CHECK_MSG(spqr_tokenizer_load_from_memory(json, strlen(json), &t, &e) == SPQR_OK, "%s", e.msg);
    if (!t) return;
    int32_t *ids = NULL, n = 0;
    CHECK(spqr_tokenizer_encode(t, text, strlen(text), 0, &ids, &n, &e) == SPQR_OK);
    int ok = n == n_want && memcmp(ids, want, sizeof(int32_t) * (size_t)n) == 0;
    CHECK_MSG(ok, "ids of \"%s\" (got %d ids)", text, n);
    free(ids);
    spqr_tokenizer_free(t);
}

#define SP_HEAD "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\u2581\"}," \
                "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\u2581\"}]},"

static void small_tokenizers(void) {
    /* unk handling without byte fallback: "a xyz b" -> ▁a ▁ <unk> ▁ b, the
     * three unknown chars fused into one <unk>, or kept apart, or dropped */
    const char *vocab = "\"vocab\":{\"<unk>\":0,\"\u2581\":1,\"a\":2,\"b\":3,\"\u2581a\":4},\"merges\":[[\"\u2581\",\"a\"]]}}";
    char json[1024];
    snprintf(json, sizeof json, SP_HEAD "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,%s", vocab);
    expect_ids(json, "a xyz b", (const int32_t[]){4, 1, 0, 1, 3}, 5);
    snprintf(json, sizeof json, SP_HEAD "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":false,%s", vocab);
    expect_ids(json, "a xyz b", (const int32_t[]){4, 1, 0, 0, 0, 1, 3}, 7);
    snprintf(json, sizeof json, SP_HEAD "\"model\":{\"type\":\"BPE\",%s", vocab);
    expect_ids(json, "a xyz b", (const int32_t[]){4, 1, 1, 3}, 4);
    /* Prepend always prepends, even before a leading space: " a" -> ▁ ▁a */
    snprintf(json, sizeof json, SP_HEAD "\"model\":{\"type\":\"BPE\",%s", vocab);
    expect_ids(json, " a", (const int32_t[]){1, 4}, 2);

    /* ByteLevel add_prefix_space: "a" is encoded as " a" ("\u0120a"); a text
     * already starting with a space gets no second one */
    const char *bl = "{\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true},"
                     "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"\u0120\":1,\"\u0120a\":2},\"merges\":[\"\u0120 a\"]}}";
    expect_ids(bl, "a", (const int32_t[]){2}, 1);
    expect_ids(bl, " a", (const int32_t[]){2}, 1);
    expect_ids(bl, "a a", (const int32_t[]){2, 2}, 2);
}

/* ------------------------------------------------------------ special ids */

static spqr_tokenizer *load_ok(const char *json) {
    spqr_tokenizer *t = NULL;
    spqr_err e = {0};
    CHECK_MSG(spqr_tokenizer_load_from_memory(json, strlen(json), &t, &e) == SPQR_OK, "%s", e.msg);
    return t;
}

static int apply(spqr_tokenizer *t, const char *cfg) {
    spqr_err e = {0};
    return spqr_tokenizer_apply_config(t, cfg, strlen(cfg), &e);
}

static void special_ids(void) {
    /* Gemma's shape: a plain vocab "</s>" (213 in Gemma) must not beat the
     * declared <eos>, although "</s>" comes first in the list of names */
    const char *gemma = "{\"added_tokens\":[{\"id\":0,\"content\":\"<pad>\",\"special\":true},"
                        "{\"id\":1,\"content\":\"<eos>\",\"special\":true},{\"id\":2,\"content\":\"<bos>\",\"special\":true}],"
                        "\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\u2581\"},"
                        "\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{\"<pad>\":0,\"<eos>\":1,\"<bos>\":2,"
                        "\"a\":3,\"</s>\":4,\"<s>\":5},\"merges\":[]}}";
    spqr_tokenizer *t = load_ok(gemma);
    if (t) {
        CHECK(spqr_tokenizer_eos_id(t) == 1 && spqr_tokenizer_bos_id(t) == 2);
        /* tokenizer_config.json: string, {"content": ...}, null, absent */
        CHECK(apply(t, "{\"eos_token\":\"</s>\",\"bos_token\":{\"content\":\"<s>\",\"lstrip\":false}}") == SPQR_OK);
        CHECK(spqr_tokenizer_eos_id(t) == 4 && spqr_tokenizer_bos_id(t) == 5);
        CHECK(apply(t, "{\"bos_token\":null,\"eos_token\":\"<eos>\"}") == SPQR_OK);
        CHECK(spqr_tokenizer_bos_id(t) == -1 && spqr_tokenizer_eos_id(t) == 1);
        CHECK(apply(t, "{\"pad_token\":\"<pad>\"}") == SPQR_OK);
        CHECK(spqr_tokenizer_bos_id(t) == -1 && spqr_tokenizer_eos_id(t) == 1);
        /* errors leave the ids alone */
        CHECK(apply(t, "{\"eos_token\":\"<nope>\",\"bos_token\":\"<s>\"}") == SPQR_ERR_FORMAT);
        CHECK(apply(t, "{\"eos_token\":7}") == SPQR_ERR_FORMAT);
        CHECK(apply(t, "{\"add_bos_token\":\"yes\"}") == SPQR_ERR_FORMAT);
        CHECK(apply(t, "[1]") == SPQR_ERR_FORMAT && apply(t, "{") == SPQR_ERR_FORMAT);
        CHECK(apply(t, "{\"eos_token\":\"</s>\"}}") == SPQR_ERR_FORMAT);
        CHECK(spqr_tokenizer_bos_id(t) == -1 && spqr_tokenizer_eos_id(t) == 1);
        spqr_tokenizer_free(t);
    }
    /* an added token not marked special still beats a vocab entry; a
     * special one beats both */
    t = load_ok("{\"added_tokens\":[{\"id\":3,\"content\":\"<|endoftext|>\",\"special\":false}],"
                "\"pre_tokenizer\":{\"type\":\"ByteLevel\"},"
                "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"</s>\":1,\"<s>\":2},\"merges\":[]}}");
    if (t) { CHECK(spqr_tokenizer_eos_id(t) == 3 && spqr_tokenizer_bos_id(t) == 3); spqr_tokenizer_free(t); }
    t = load_ok("{\"added_tokens\":[{\"id\":3,\"content\":\"<|endoftext|>\",\"special\":false},"
                "{\"id\":4,\"content\":\"[EOS]\",\"special\":true}],\"pre_tokenizer\":{\"type\":\"ByteLevel\"},"
                "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"</s>\":1},\"merges\":[]}}");
    if (t) { CHECK(spqr_tokenizer_eos_id(t) == 4); spqr_tokenizer_free(t); }
}

/* SmolLM's layout (Digits + ByteLevel) against HF's ids */
static void hf_fixture_tokenizers(void) {
    hf_cases h = {0};
    if (!hf_cases_load(&h, g_fix)) return;
    static const char *const names[] = {"smollm-style", "digits-runs"};
    for (int k = 0; k < 2; k++) {
        const cJSON *e = hf_entry(&h, names[k]);
        CHECK_MSG(e != NULL, "no fixture entry %s", names[k]);
        int missing = 0;
        spqr_tokenizer *t = e ? hf_load(e, g_fix, &missing) : NULL;
        CHECK(!missing);
        if (!t) continue;
        hf_check_ids(&h, e, t);
        CHECK(spqr_tokenizer_bos_id(t) == 0 && spqr_tokenizer_eos_id(t) == 0); /* <|endoftext|>, as SmolLM */
        spqr_tokenizer_free(t);
    }
    hf_cases_free(&h);
}

/* ------------------------------------------------------------ bad input */

static spqr_status load_str(const char *json, spqr_err *e) {
    spqr_tokenizer *t = NULL;
    spqr_status st = spqr_tokenizer_load_from_memory(json, strlen(json), &t, e);
    CHECK((st == SPQR_OK) == (t != NULL));
    spqr_tokenizer_free(t);
    return st;
}

#define BL_HEAD "{\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false},\"decoder\":{\"type\":\"ByteLevel\"},"

static void bad_inputs(void) {
    spqr_err e = {0};
    spqr_tokenizer *t = (spqr_tokenizer *)1;
    CHECK(spqr_tokenizer_load("/nonexistent/tokenizer.json", &t, &e) == SPQR_ERR_IO && t == NULL);
    CHECK(strstr(e.msg, "/nonexistent/tokenizer.json") != NULL);
    CHECK(load_str("not json {", &e) == SPQR_ERR_FORMAT && strstr(e.msg, "JSON"));
    CHECK(load_str("[1,2]", &e) == SPQR_ERR_FORMAT);
    /* what serde_json refuses: bytes after the value (an appended or doubled file), a byte-order mark */
    CHECK(load_str(BL_HEAD "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}xyz", &e) == SPQR_ERR_FORMAT &&
          strstr(e.msg, "bytes after its end"));
    CHECK(load_str(BL_HEAD "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}{}", &e) == SPQR_ERR_FORMAT);
    CHECK(load_str("\xEF\xBB\xBF" BL_HEAD "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}", &e) ==
              SPQR_ERR_FORMAT && strstr(e.msg, "byte-order mark"));
    CHECK(load_str(BL_HEAD "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}} \r\n\t", &e) == SPQR_OK);
    CHECK(load_str("{}", &e) == SPQR_ERR_FORMAT && strstr(e.msg, "model"));
    CHECK(load_str("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}}}", &e) == SPQR_ERR_UNSUPPORTED &&
          strstr(e.msg, "WordPiece"));
    CHECK(load_str("{\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"a\",0.0]]}}", &e) == SPQR_ERR_UNSUPPORTED &&
          strstr(e.msg, "Unigram"));
    CHECK(load_str("{\"model\":{\"type\":\"WordLevel\",\"vocab\":{\"a\":0}}}", &e) == SPQR_ERR_UNSUPPORTED &&
          strstr(e.msg, "WordLevel"));
    CHECK(load_str(BL_HEAD "\"model\":{\"type\":\"BPE\",\"merges\":[]}}", &e) == SPQR_ERR_FORMAT && strstr(e.msg, "vocab"));
    CHECK(load_str(BL_HEAD "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}}}", &e) == SPQR_ERR_FORMAT && strstr(e.msg, "merges"));
    CHECK(load_str(BL_HEAD "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a c\"]}}", &e) ==
              SPQR_ERR_FORMAT && strstr(e.msg, "merge 0") && strstr(e.msg, "\"c\""));
    CHECK(load_str(BL_HEAD "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[[\"a\",\"b\"]]}}", &e) ==
              SPQR_ERR_FORMAT && strstr(e.msg, "\"ab\""));
    CHECK(load_str(BL_HEAD "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b c\"]}}", &e) ==
              SPQR_ERR_FORMAT);
    CHECK(load_str(BL_HEAD "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[7]}}", &e) == SPQR_ERR_FORMAT);
    CHECK(load_str(BL_HEAD "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}", &e) == SPQR_ERR_FORMAT &&
          strstr(e.msg, "id 0"));
    CHECK(load_str(BL_HEAD "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}", &e) == SPQR_ERR_FORMAT);
    CHECK(load_str(BL_HEAD "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1e12},\"merges\":[]}}", &e) == SPQR_ERR_FORMAT);
    CHECK(load_str(BL_HEAD "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1.5},\"merges\":[]}}", &e) == SPQR_ERR_FORMAT);
    CHECK(load_str(BL_HEAD "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"0\"},\"merges\":[]}}", &e) == SPQR_ERR_FORMAT);
    CHECK(load_str(BL_HEAD "\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}", &e) == SPQR_ERR_FORMAT);
    { /* an added token's length bounds encode's work per text byte: at most TOK_ADDED_MAX bytes */
        for (int over = 0; over < 2; over++) {
            const size_t l = TOK_ADDED_MAX + (size_t)over;
            char *big = malloc(l + 1), *js = malloc(l + 512);
            CHECK(big && js);
            if (!big || !js) break;
            memset(big, 'a', l), big[l] = 0;
            snprintf(js, l + 512, BL_HEAD "\"added_tokens\":[{\"id\":1,\"content\":\"%s\"}],\"model\":{\"type\":\"BPE\","
                     "\"vocab\":{\"a\":0},\"merges\":[]}}", big);
            const spqr_status st = load_str(js, &e);
            CHECK_MSG(over ? st == SPQR_ERR_FORMAT && strstr(e.msg, "added token 1 is 1025 bytes") : st == SPQR_OK, "%s", e.msg);
            free(big), free(js);
        }
    }
    CHECK(load_str(BL_HEAD "\"added_tokens\":[{\"id\":-3,\"content\":\"x\"}],\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}", &e) ==
          SPQR_ERR_FORMAT);
    CHECK(load_str("{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\w+\"},"
                   "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"use_regex\":false}]},"
                   "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}", &e) == SPQR_ERR_UNSUPPORTED &&
          strstr(e.msg, "\\w+"));
    CHECK(load_str("{\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}", &e) ==
              SPQR_ERR_UNSUPPORTED && strstr(e.msg, "Whitespace"));
    CHECK(load_str("{\"normalizer\":{\"type\":\"Lowercase\"}," "\"pre_tokenizer\":{\"type\":\"ByteLevel\"},"
                   "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}", &e) == SPQR_ERR_UNSUPPORTED &&
          strstr(e.msg, "Lowercase"));
    CHECK(load_str("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}", &e) == SPQR_ERR_UNSUPPORTED);
    CHECK(load_str(BL_HEAD "\"model\":{\"type\":\"BPE\",\"continuing_subword_prefix\":\"##\",\"vocab\":{\"a\":0},\"merges\":[]}}", &e) ==
          SPQR_ERR_UNSUPPORTED);
    /* a minimal valid one, to show the harness accepts good input */
    CHECK(load_str(BL_HEAD "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}}", &e) == SPQR_OK);

    /* truncations and byte mutations of a real fixture: an error or a
     * working tokenizer, never a crash (run under ASan in the sanitizer build) */
    char path[1024];
    snprintf(path, sizeof path, "%s/tok_sp.json", g_fix);
    size_t n = 0;
    char *json = test_read_file(path, &n);
    CHECK(json != NULL);
    if (!json) return;
    for (size_t cut = 1; cut < n; cut += n / 37 + 1) {
        spqr_tokenizer *tt = NULL;
        spqr_status st = spqr_tokenizer_load_from_memory(json, cut, &tt, &e);
        CHECK(st == SPQR_ERR_FORMAT && tt == NULL);
    }
    test_rng r = {12345};
    char *m = malloc(n);
    int loaded = 0;
    for (int it = 0; it < 300; it++) {
        memcpy(m, json, n);
        for (int k = 0; k < 3; k++) m[test_rng_next(&r) % n] = "\"{}[],:0 a\\-9"[test_rng_next(&r) % 13];
        spqr_tokenizer *tt = NULL;
        if (spqr_tokenizer_load_from_memory(m, n, &tt, &e) == SPQR_OK) {
            loaded++;
            int32_t *ids = NULL, nid = 0;
            const char *s = "Hello world \xff <s> \xe4\xb8\xad";
            if (spqr_tokenizer_encode(tt, s, strlen(s), 1, &ids, &nid, &e) == SPQR_OK) {
                char *txt = NULL;
                size_t len;
                if (spqr_tokenizer_decode(tt, ids, nid, &txt, &len, &e) == SPQR_OK) free(txt);
            }
            free(ids);
            spqr_tokenizer_free(tt);
        }
    }
    printf("mutations: %d of 300 still loaded\n", loaded);
    free(m);
    free(json);
}

int main(int argc, char **argv) {
    g_fix = argc > 1 ? argv[1] : "tests/fixtures";
    direct_checks();
    nfc_checks();
    special_ids();
    hf_fixture_tokenizers();
    small_tokenizers();
    bad_inputs();
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer_cases.json", g_fix);
    size_t n = 0;
    char *json = test_read_file(path, &n);
    CHECK_MSG(json != NULL, "cannot read %s", path);
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    CHECK(root != NULL);
    int n_tok = 0;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, cJSON_GetObjectItem(root, "tokenizers")) {
        run_cases(entry);
        n_tok++;
    }
    CHECK(n_tok >= 4);
    cJSON_Delete(root);
    free(json);
    TEST_SUMMARY();
}
