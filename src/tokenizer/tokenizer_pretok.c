/* Hand-written scanners for the two pre-tokenizer regexes we accept. Each
 * returns the length of the match the regex engine (leftmost-first
 * alternation, greedy quantifiers, backtracking) finds at the current
 * position. Every character is \p{L}, \p{N}, \s or other, so some
 * alternative always matches and the matches tile the text. Invalid UTF-8
 * bytes are one-byte "other" characters. Also the Digits pre-tokenizer's
 * split, which needs no regex. */
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

typedef struct ch {
    uint32_t cp;
    size_t len;
    spqr_uc_class cls;
} ch;

static ch at(const uint8_t *s, size_t n, size_t i) {
    ch c;
    c.len = spqr_utf8_next(s + i, n - i, &c.cp);
    c.cls = spqr_unicode_class(c.cp);
    return c;
}

/* End of the run of characters of class cls starting at i. */
static size_t run(const uint8_t *s, size_t n, size_t i, spqr_uc_class cls) {
    while (i < n) {
        ch c = at(s, n, i);
        if (c.cls != cls) break;
        i += c.len;
    }
    return i;
}

static int lower_eq(uint8_t c, char want) { return c == (uint8_t)want || c == (uint8_t)(want - 32); }

/* 's|'t|'re|'ve|'m|'ll|'d after s[0] == '\''; returns the match length or 0.
 * With icase, ASCII letters match either case and U+017F (long s, which
 * case-folds to 's') matches 's', as Oniguruma's (?i:) does. */
static size_t contraction(const uint8_t *s, size_t n, int icase) {
    if (n < 2) return 0;
    uint8_t a = s[1], b = n >= 3 ? s[2] : 0;
#define EQ(x, w) (icase ? lower_eq((x), (w)) : (x) == (uint8_t)(w))
    if (EQ(a, 's')) return 2;
    if (icase && n >= 3 && a == 0xC5 && b == 0xBF) return 3; /* U+017F */
    if (EQ(a, 't')) return 2;
    if (n >= 3 && EQ(a, 'r') && EQ(b, 'e')) return 3;
    if (n >= 3 && EQ(a, 'v') && EQ(b, 'e')) return 3;
    if (EQ(a, 'm')) return 2;
    if (n >= 3 && EQ(a, 'l') && EQ(b, 'l')) return 3;
    if (EQ(a, 'd')) return 2;
#undef EQ
    return 0;
}

/* \s+(?!\S) then \s+ at a whitespace character c0. */
static size_t spaces(const uint8_t *s, size_t n, ch c0) {
    size_t j = run(s, n, 0, SPQR_UC_S);
    if (j == n) return j;                  /* run reaches the end */
    /* followed by \S: give back the last whitespace char if the run has >= 2 */
    size_t last = 0, i = 0;
    while (i < j) { last = i; i += at(s, n, i).len; }
    return last > 0 ? last : c0.len;
}

size_t spqri_tok_pretok_gpt2(const uint8_t *s, size_t n) {
    if (s[0] == '\'') {
        size_t k = contraction(s, n, 0);
        if (k) return k;
    }
    ch c = at(s, n, 0);
    /* ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+' */
    if (s[0] == ' ' && n > 1) {
        ch d = at(s, n, 1);
        if (d.cls != SPQR_UC_S) return run(s, n, 1, d.cls);
    }
    if (c.cls != SPQR_UC_S) return run(s, n, 0, c.cls);
    return spaces(s, n, c);
}

static int is_crlf(uint8_t b) { return b == '\r' || b == '\n'; }

size_t spqri_tok_pretok_llama3(const uint8_t *s, size_t n, int max_digits) {
    if (s[0] == '\'') {
        size_t k = contraction(s, n, 1);
        if (k) return k;
    }
    ch c = at(s, n, 0);
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (c.cls == SPQR_UC_L) return run(s, n, 0, SPQR_UC_L);
    if (!is_crlf(s[0]) && c.cls != SPQR_UC_N && c.len < n) {
        ch d = at(s, n, c.len);
        if (d.cls == SPQR_UC_L) return run(s, n, c.len, SPQR_UC_L);
    }
    /* \p{N}{1,k} */
    if (c.cls == SPQR_UC_N) {
        size_t i = 0;
        for (int k = 0; k < max_digits && i < n; k++) {
            ch d = at(s, n, i);
            if (d.cls != SPQR_UC_N) break;
            i += d.len;
        }
        return i;
    }
    /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
    size_t o = 0;
    if (s[0] == ' ' && n > 1 && at(s, n, 1).cls == SPQR_UC_OTHER) o = 1;
    if (o == 1 || c.cls == SPQR_UC_OTHER) {
        size_t i = run(s, n, o, SPQR_UC_OTHER);
        while (i < n && is_crlf(s[i])) i++;
        return i;
    }
    /* c is whitespace. \s*[\r\n]+ : up to and including the last \r or \n of the run */
    size_t j = run(s, n, 0, SPQR_UC_S), last_nl = 0;
    int have_nl = 0;
    for (size_t i = 0; i < j; i++)  /* \r and \n are ASCII: a byte scan is exact */
        if (is_crlf(s[i])) { last_nl = i; have_nl = 1; }
    if (have_nl) return last_nl + 1;
    /* \s+(?!\S) | \s+ */
    return spaces(s, n, c);
}

size_t spqri_tok_pretok_digits(const uint8_t *s, size_t n, int individual) {
    ch c = at(s, n, 0);
    if (c.cls == SPQR_UC_N) return individual ? c.len : run(s, n, 0, SPQR_UC_N);
    size_t i = c.len;
    while (i < n) {
        ch d = at(s, n, i);
        if (d.cls == SPQR_UC_N) break;
        i += d.len;
    }
    return i;
}
