/* Chat template lexer: a port of @huggingface/jinja's preprocess + tokenize
 * (lexer.ts), so whitespace comes out byte for byte as transformers.js
 * renders it: a trailing newline dropped, lstrip_blocks and trim_blocks as
 * its two regex passes, then {%- -%} {{- -}} {#- -#} stripping. */
#include <string.h>

#include "tokenizer/chat_template_internal.h"

static int is_word(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }

static int is_ws(char c) { return c == ' ' || (c >= 9 && c <= 13); }

/* transformers' {% generation %} / {% endgeneration %} markers only mark the
 * assistant's tokens for training: removed, honouring {%- and -%}, as
 * /{%(-?)\s*(?:end)?generation\s*(-?)%}(\s*)/gs in @huggingface/jinja. */
static char *drop_generation_tags(ct_state *S, char *t, size_t n, size_t *out_len) {
    char *o = spqri_ct_alloc(S, n + 1);
    size_t m = 0, last = 0; /* o holds t[0..last) processed */
    for (size_t i = 0; i + 1 < n; i++) {
        if (t[i] != '{' || t[i + 1] != '%') continue;
        size_t j = i + 2;
        int lstrip = j < n && t[j] == '-';
        if (lstrip) j++;
        while (j < n && is_ws(t[j])) j++;
        if (j + 3 <= n && !memcmp(t + j, "end", 3)) j += 3;
        if (!(j + 10 <= n && !memcmp(t + j, "generation", 10))) continue;
        j += 10;
        while (j < n && is_ws(t[j])) j++;
        int rstrip = j < n && t[j] == '-';
        if (rstrip) j++;
        if (!(j + 1 < n && t[j] == '%' && t[j + 1] == '}')) continue;
        j += 2;
        size_t after = j;
        while (after < n && is_ws(t[after])) after++;
        size_t end = i;
        while (lstrip && end > last && is_ws(t[end - 1])) end--;
        memcpy(o + m, t + last, end - last);
        m += end - last;
        if (!rstrip) {
            memcpy(o + m, t + j, after - j);
            m += after - j;
        }
        last = after;
        i = after - 1;
    }
    memcpy(o + m, t + last, n - last);
    m += n - last;
    o[m] = 0;
    *out_len = m;
    return o;
}

/* The template after the two regex passes:
 *   lstrip_blocks: /^[ \t]*({[#%-])/gm -> "$1"
 *   trim_blocks:   /([#%-]})\n/g       -> "$1"  */
static char *preprocess(ct_state *S, const char *t, size_t len, size_t *out_len) {
    if (len > 0 && t[len - 1] == '\n') len--;
    char *a = spqri_ct_alloc(S, len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        /* JS's multiline ^: after \n, \r, U+2028 or U+2029 (E2 80 A8/A9) */
        int line_start = i == 0 || t[i - 1] == '\n' || t[i - 1] == '\r' ||
                         (i >= 3 && (unsigned char)t[i - 3] == 0xE2 && (unsigned char)t[i - 2] == 0x80 &&
                          ((unsigned char)t[i - 1] == 0xA8 || (unsigned char)t[i - 1] == 0xA9));
        if (line_start) {
            size_t j = i;
            while (j < len && (t[j] == ' ' || t[j] == '\t')) j++;
            if (j + 1 < len && t[j] == '{' && (t[j + 1] == '#' || t[j + 1] == '%' || t[j + 1] == '-') && j > i) {
                i = j; /* drop the indentation before a block tag */
                continue;
            }
            memcpy(a + n, t + i, j - i);
            n += j - i;
            i = j;
            if (i >= len) break;
        }
        a[n++] = t[i++];
    }
    char *b = spqri_ct_alloc(S, n + 1);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        b[m++] = a[i];
        if (a[i] == '}' && i > 0 && (a[i - 1] == '#' || a[i - 1] == '%' || a[i - 1] == '-') && i + 1 < n &&
            a[i + 1] == '\n') {
            /* the '#', '%' or '-' must not itself be the '}' of a previous match: matches do not overlap */
            i++;
        }
    }
    b[m] = 0;
    return drop_generation_tags(S, b, m, out_len);
}

typedef struct lexer {
    ct_state *S;
    const char *src;
    size_t len, pos;
    ct_tok *t;
    int32_t n, cap;
} lexer;

static void push(lexer *L, ct_tok_type type, const char *s, size_t n) {
    if (L->n == L->cap) {
        int32_t cap = L->cap ? L->cap * 2 : 256;
        ct_tok *t = spqri_ct_alloc(L->S, (size_t)cap * sizeof *t);
        if (L->n) memcpy(t, L->t, (size_t)L->n * sizeof *t);
        L->t = t;
        L->cap = cap;
    }
    L->t[L->n++] = (ct_tok){type, s, n};
}

static int last_type(const lexer *L) { return L->n ? (int)L->t[L->n - 1].type : -1; }

static void strip_trailing_ws(lexer *L) {
    if (!L->n || L->t[L->n - 1].type != T_TEXT) return;
    ct_tok *k = &L->t[L->n - 1];
    size_t n = k->n;
    /* JS trimEnd: drop whitespace code points from the end */
    while (n > 0) {
        size_t st = n - 1;
        while (st > 0 && ((unsigned char)k->s[st] & 0xC0) == 0x80 && n - st < 4) st--;
        size_t w;
        if (spqri_ct_is_space_at(k->s, n, st, &w) && st + w == n) n = st;
        else break;
    }
    k->n = n;
    if (n == 0) L->n--;
}

static void skip_leading_ws(lexer *L) {
    size_t w;
    while (L->pos < L->len && spqri_ct_is_space_at(L->src, L->len, L->pos, &w)) L->pos += w;
}

static void consume_ws_inside(lexer *L) {
    size_t w;
    while (L->pos < L->len && spqri_ct_is_space_at(L->src, L->len, L->pos, &w)) L->pos += w;
    if (L->pos >= L->len) spqri_ct_fail(L->S, SPQR_ERR_FORMAT, "chat template: unexpected end of input");
}

static size_t consume_digits(lexer *L) {
    size_t st = L->pos;
    while (L->pos < L->len && is_digit((unsigned char)L->src[L->pos])) L->pos++;
    if (L->pos >= L->len) spqri_ct_fail(L->S, SPQR_ERR_FORMAT, "chat template: unexpected end of input");
    return L->pos - st;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 63)); return 2; }
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 63));
    o[2] = (char)(0x80 | (cp & 63));
    return 3;
}

static void lex_string(lexer *L, char quote) {
    char *o = spqri_ct_alloc(L->S, L->len - L->pos + 1);
    size_t n = 0;
    for (;;) {
        if (L->pos >= L->len) spqri_ct_fail(L->S, SPQR_ERR_FORMAT, "chat template: unexpected end of input in a string");
        char c = L->src[L->pos];
        if (c == quote) break;
        L->pos++;
        if (c != '\\') { o[n++] = c; continue; }
        if (L->pos >= L->len) spqri_ct_fail(L->S, SPQR_ERR_FORMAT, "chat template: unexpected end of input in a string");
        char e = L->src[L->pos++];
        switch (e) {
        case 'n': o[n++] = '\n'; break;
        case 't': o[n++] = '\t'; break;
        case 'r': o[n++] = '\r'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'v': o[n++] = '\v'; break;
        case '\'': case '"': case '\\': o[n++] = e; break;
        case 'x': case 'u': {
            int k = e == 'x' ? 2 : 4;
            uint32_t cp = 0;
            for (int j = 0; j < k; j++) {
                int h = L->pos + (size_t)j < L->len ? hexval((unsigned char)L->src[L->pos + (size_t)j]) : -1;
                if (h < 0) spqri_ct_fail(L->S, SPQR_ERR_FORMAT, "chat template: invalid \\%c escape in a string", e);
                cp = cp * 16 + (uint32_t)h;
            }
            L->pos += (size_t)k;
            /* a lone UTF-16 surrogate has no UTF-8 form */
            if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
            n += put_utf8(o + n, cp);
            break;
        }
        default:
            spqri_ct_fail(L->S, SPQR_ERR_FORMAT, "chat template: unexpected escaped character '\\%c'",
                    (e >= 32 && e < 127) ? e : '?');
        }
    }
    L->pos++; /* closing quote */
    o[n] = 0;
    push(L, T_STRING, o, n);
}

static const struct { const char *s; ct_tok_type t; } RULES[] = {
    {"{%", T_OPEN_STMT}, {"%}", T_CLOSE_STMT}, {"{{", T_OPEN_EXPR}, {"}}", T_CLOSE_EXPR}, {"(", T_LPAREN},
    {")", T_RPAREN},     {"{", T_LBRACE},      {"}", T_RBRACE},     {"[", T_LBRACKET},    {"]", T_RBRACKET},
    {",", T_COMMA},      {".", T_DOT},         {":", T_COLON},      {"|", T_PIPE},        {"<=", T_CMP},
    {">=", T_CMP},       {"==", T_CMP},        {"!=", T_CMP},       {"<", T_CMP},         {">", T_CMP},
    {"+", T_ADD},        {"-", T_ADD},         {"~", T_ADD},        {"**", T_POW},        {"*", T_MUL},
    {"//", T_MUL},       {"/", T_MUL},         {"%", T_MUL},        {"=", T_EQUALS},
};

void spqri_ct_lex(ct_state *S, const char *tmpl, size_t len, ct_tok **toks, int32_t *n_toks) {
    lexer L = {.S = S};
    L.src = preprocess(S, tmpl, len, &L.len);
    int brace_depth = 0;
    while (L.pos < L.len) {
        spqri_ct_step(S);
        int lt = last_type(&L);
        const char *src = L.src;
        if (lt < 0 || lt == T_CLOSE_STMT || lt == T_CLOSE_EXPR || lt == T_COMMENT) {
            size_t end = L.pos;
            for (;;) {
                const char *p = memchr(src + end, '{', L.len - end);
                if (!p) { end = L.len; break; }
                end = (size_t)(p - src);
                char nx = end + 1 < L.len ? src[end + 1] : 0;
                if (nx == '%' || nx == '{' || nx == '#') break;
                end++;
            }
            if (end > L.pos) {
                push(&L, T_TEXT, src + L.pos, end - L.pos);
                L.pos = end;
                continue;
            }
        }
        if (src[L.pos] == '{') {
            char nx = L.pos + 1 < L.len ? src[L.pos + 1] : 0;
            if (nx == '#') {
                L.pos += 2;
                int strip_before = L.pos < L.len && src[L.pos] == '-';
                if (strip_before) L.pos++;
                const char *e = NULL;
                for (size_t i = L.pos; i + 1 < L.len; i++)
                    if (src[i] == '#' && src[i + 1] == '}') { e = src + i; break; }
                if (!e) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: missing end of comment tag");
                size_t cn = (size_t)(e - (src + L.pos));
                int strip_after = cn > 0 && src[L.pos + cn - 1] == '-';
                if (strip_after) cn--;
                if (strip_before) strip_trailing_ws(&L);
                push(&L, T_COMMENT, src + L.pos, cn);
                L.pos = (size_t)(e - src) + 2;
                if (strip_after) skip_leading_ws(&L);
                continue;
            }
            if (L.pos + 2 < L.len && src[L.pos + 2] == '-' && (nx == '%' || nx == '{')) {
                strip_trailing_ws(&L);
                push(&L, nx == '%' ? T_OPEN_STMT : T_OPEN_EXPR, nx == '%' ? "{%" : "{{", 2);
                if (nx == '{') brace_depth = 0;
                L.pos += 3;
                continue;
            }
        }
        consume_ws_inside(&L);
        char c = src[L.pos];
        if (c == '-' && L.pos + 2 < L.len && src[L.pos + 2] == '}') {
            char nx = src[L.pos + 1];
            if (nx == '%' || nx == '}') {
                push(&L, nx == '%' ? T_CLOSE_STMT : T_CLOSE_EXPR, nx == '%' ? "%}" : "}}", 2);
                L.pos += 3;
                skip_leading_ws(&L);
                continue;
            }
        }
        if (c == '-' || c == '+') {
            if (lt == T_TEXT || lt < 0) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: unexpected character '%c'", c);
            if (!(lt == T_IDENT || lt == T_NUMBER || lt == T_STRING || lt == T_RPAREN || lt == T_RBRACKET)) {
                size_t st = L.pos++;
                size_t nd = consume_digits(&L);
                if (nd > 0 && L.pos + 1 < L.len && src[L.pos] == '.' && is_digit((unsigned char)src[L.pos + 1])) {
                    L.pos++;
                    consume_digits(&L);
                }
                if (nd > 0) push(&L, T_NUMBER, src + st, L.pos - st);
                else push(&L, T_UNARY, src + st, 1);
                continue;
            }
        }
        int matched = 0;
        for (size_t r = 0; r < sizeof RULES / sizeof RULES[0]; r++) {
            size_t rl = strlen(RULES[r].s);
            if (RULES[r].t == T_CLOSE_EXPR && brace_depth > 0) continue;
            if (L.pos + rl <= L.len && !memcmp(src + L.pos, RULES[r].s, rl)) {
                push(&L, RULES[r].t, src + L.pos, rl);
                if (RULES[r].t == T_OPEN_EXPR) brace_depth = 0;
                else if (RULES[r].t == T_LBRACE) brace_depth++;
                else if (RULES[r].t == T_RBRACE) brace_depth--;
                L.pos += rl;
                matched = 1;
                break;
            }
        }
        if (matched) continue;
        if (c == '\'' || c == '"') {
            L.pos++;
            lex_string(&L, c);
            continue;
        }
        if (is_digit((unsigned char)c)) {
            size_t st = L.pos;
            consume_digits(&L);
            if (lt != T_DOT && L.pos + 1 < L.len && src[L.pos] == '.' && is_digit((unsigned char)src[L.pos + 1])) {
                L.pos++;
                consume_digits(&L);
            }
            push(&L, T_NUMBER, src + st, L.pos - st);
            continue;
        }
        if (is_word((unsigned char)c)) {
            size_t st = L.pos;
            while (L.pos < L.len && is_word((unsigned char)src[L.pos])) L.pos++;
            if (L.pos >= L.len) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: unexpected end of input");
            push(&L, T_IDENT, src + st, L.pos - st);
            continue;
        }
        spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: unexpected character '%c'", (c >= 32 && c < 127) ? c : '?');
    }
    *toks = L.t;
    *n_toks = L.n;
}
