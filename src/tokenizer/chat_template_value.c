/* Chat template values: strings, lists, dicts in the render's arena; truth,
 * equality and text forms as @huggingface/jinja's runtime defines them
 * (JS semantics: true renders "true", 2.0 renders "2.0", containers as
 * JSON with ", " and ": "). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/chat_template_internal.h"

ct_str *spqri_ct_mkstr(ct_state *S, const char *s, size_t n) {
    ct_str *r = spqri_ct_alloc(S, sizeof *r + n + 1);
    r->n = n;
    if (n) memcpy(r->s, s, n);
    r->s[n] = 0;
    return r;
}

ct_val spqri_ct_strv(ct_str *s) {
    ct_val v = {.k = V_STR};
    v.s = s;
    return v;
}

ct_val spqri_ct_strval(ct_state *S, const char *s, size_t n) { return spqri_ct_strv(spqri_ct_mkstr(S, s, n)); }

ct_list *spqri_ct_list_new(ct_state *S, int32_t cap) {
    ct_list *l = spqri_ct_alloc(S, sizeof *l);
    l->n = 0;
    l->cap = cap > 0 ? cap : 0;
    l->v = l->cap ? spqri_ct_alloc(S, (size_t)l->cap * sizeof *l->v) : NULL;
    return l;
}

void spqri_ct_list_push(ct_state *S, ct_list *l, ct_val v) {
    if (l->n == l->cap) {
        int32_t cap = l->cap ? l->cap * 2 : 4;
        ct_val *nv = spqri_ct_alloc(S, (size_t)cap * sizeof *nv);
        if (l->n) memcpy(nv, l->v, (size_t)l->n * sizeof *nv);
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
}

ct_dict *spqri_ct_dict_new(ct_state *S) {
    ct_dict *d = spqri_ct_alloc(S, sizeof *d);
    memset(d, 0, sizeof *d);
    return d;
}

ct_val *spqri_ct_dict_get(const ct_dict *d, const char *k, size_t n) {
    for (int32_t i = 0; i < d->n; i++)
        if (d->key[i]->n == n && !memcmp(d->key[i]->s, k, n)) return &d->v[i];
    return NULL;
}

void spqri_ct_dict_set(ct_state *S, ct_dict *d, const char *k, size_t n, ct_val v) {
    ct_val *e = spqri_ct_dict_get(d, k, n);
    if (e) {
        *e = v;
        return;
    }
    if (d->n == d->cap) {
        int32_t cap = d->cap ? d->cap * 2 : 4;
        ct_str **nk = spqri_ct_alloc(S, (size_t)cap * sizeof *nk);
        ct_val *nv = spqri_ct_alloc(S, (size_t)cap * sizeof *nv);
        if (d->n) {
            memcpy(nk, d->key, (size_t)d->n * sizeof *nk);
            memcpy(nv, d->v, (size_t)d->n * sizeof *nv);
        }
        d->key = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->key[d->n] = spqri_ct_mkstr(S, k, n);
    d->v[d->n++] = v;
}

const char *spqri_ct_kind_name(ct_kind k) {
    static const char *N[] = {"UndefinedValue", "NullValue",   "BooleanValue",  "IntegerValue",
                              "FloatValue",     "StringValue", "ArrayValue",    "ObjectValue",
                              "NamespaceValue", "FunctionValue", "KeywordArgumentsValue", "FunctionValue"};
    return N[k];
}

int spqri_ct_truthy(ct_val v) {
    switch (v.k) {
    case V_UNDEF: case V_NONE: return 0;
    case V_BOOL: return v.b;
    case V_INT: return v.i != 0;
    case V_FLOAT: return v.f != 0 && !isnan(v.f);
    case V_STR: return v.s->n > 0;
    case V_LIST: return v.l->n > 0;
    case V_DICT: case V_KWARGS: return v.d->n > 0;
    default: return 1; /* namespace, functions */
    }
}

/* JS Number(string) for loose equality: trimmed, "" is 0, else the whole text must parse. */
static double js_number(const char *s, size_t n) {
    size_t a = 0, w;
    while (a < n && spqri_ct_is_space_at(s, n, a, &w)) a += w;
    while (n > a) {
        size_t st = n - 1;
        while (st > a && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
        if (spqri_ct_is_space_at(s, n, st, &w) && st + w == n) n = st;
        else break;
    }
    if (a == n) return 0;
    char buf[64];
    if (n - a >= sizeof buf) return NAN;
    memcpy(buf, s + a, n - a);
    buf[n - a] = 0;
    if (buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X')) return NAN; /* rare: JS accepts hex, strtod differs */
    if (!strcmp(buf, "Infinity") || !strcmp(buf, "+Infinity")) return INFINITY;
    if (!strcmp(buf, "-Infinity")) return -INFINITY;
    for (const char *c = buf; *c; c++) /* strtod's "inf"/"nan" are not JS numbers */
        if (((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')) && *c != 'e' && *c != 'E') return NAN;
    char *end;
    double d = strtod(buf, &end);
    return *end ? NAN : d;
}

static double num(ct_val v) { return v.k == V_INT ? (double)v.i : v.k == V_FLOAT ? v.f : v.b; }

/* JS `a.value == b.value`. */
int spqri_ct_equal(ct_val a, ct_val b) {
    int an = a.k == V_NONE || a.k == V_UNDEF, bn = b.k == V_NONE || b.k == V_UNDEF;
    if (an || bn) return an && bn;
    int anum = a.k == V_INT || a.k == V_FLOAT || a.k == V_BOOL, bnum = b.k == V_INT || b.k == V_FLOAT || b.k == V_BOOL;
    if (a.k == V_INT && b.k == V_INT) return a.i == b.i;
    if (anum && bnum) return num(a) == num(b);
    if (a.k == V_STR && b.k == V_STR) return a.s->n == b.s->n && !memcmp(a.s->s, b.s->s, a.s->n);
    if (a.k == V_STR && bnum) return js_number(a.s->s, a.s->n) == num(b);
    if (b.k == V_STR && anum) return js_number(b.s->s, b.s->n) == num(a);
    if (a.k != b.k) return 0;
    switch (a.k) {
    case V_LIST: return a.l == b.l;
    case V_DICT: case V_NS: case V_KWARGS: return a.d == b.d;
    case V_FUNC: return a.fn == b.fn && a.self == b.self;
    case V_MACRO: return a.m == b.m;
    default: return 0;
    }
}

/* ---- text ------------------------------------------------------------- */

typedef struct sbuf {
    ct_state *S;
    char *p;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = spqri_ct_alloc(b->S, cap);
        if (b->n) memcpy(np, b->p, b->n);
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* JS Number.prototype.toString (ECMA-262 Number::toString): the shortest
 * digits that read back, then plain notation for exponents -7 < e < 21
 * (0.000001, 100000000000000000000) and d.ddde+-x outside. */
static void fmt_number(char *buf, size_t cap, double d) {
    if (isnan(d)) { snprintf(buf, cap, "NaN"); return; }
    if (isinf(d)) { snprintf(buf, cap, d > 0 ? "Infinity" : "-Infinity"); return; }
    if (d == 0) { snprintf(buf, cap, "0"); return; }
    char e[40];
    for (int p = 0; p <= 16; p++) {
        snprintf(e, sizeof e, "%.*e", p, d);
        if (strtod(e, NULL) == d) break;
    }
    /* e = [-]D[.DDD]e(+|-)XX: digits s[0..k), decimal exponent n (value = 0.s * 10^n) */
    char dig[24];
    int k = 0;
    const char *q = e + (e[0] == '-');
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9') dig[k++] = *q;
    while (k > 1 && dig[k - 1] == '0') k--;
    dig[k] = 0;
    const int n = atoi(q + 1) + 1;
    size_t o = 0;
    char out[64];
    if (d < 0) out[o++] = '-';
    if (k <= n && n <= 21) {
        memcpy(out + o, dig, (size_t)k), o += (size_t)k;
        for (int z = 0; z < n - k; z++) out[o++] = '0';
    } else if (0 < n && n <= 21) {
        memcpy(out + o, dig, (size_t)n), o += (size_t)n;
        out[o++] = '.';
        memcpy(out + o, dig + n, (size_t)(k - n)), o += (size_t)(k - n);
    } else if (-6 < n && n <= 0) {
        out[o++] = '0', out[o++] = '.';
        for (int z = 0; z < -n; z++) out[o++] = '0';
        memcpy(out + o, dig, (size_t)k), o += (size_t)k;
    } else {
        out[o++] = dig[0];
        if (k > 1) {
            out[o++] = '.';
            memcpy(out + o, dig + 1, (size_t)(k - 1)), o += (size_t)(k - 1);
        }
        o += (size_t)snprintf(out + o, sizeof out - o, "e%c%d", n - 1 >= 0 ? '+' : '-', n - 1 >= 0 ? n - 1 : 1 - n);
    }
    out[o] = 0;
    snprintf(buf, cap, "%s", out);
}

static void int_text(char *buf, size_t cap, int64_t i) {
    if (i > 9007199254740992LL || i < -9007199254740992LL) fmt_number(buf, cap, (double)i);
    else snprintf(buf, cap, "%lld", (long long)i);
}

static void json_string(sbuf *b, const char *s, size_t n) {
    sb_put(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[8];
        if (c == '"') esc = "\\\"";
        else if (c == '\\') esc = "\\\\";
        else if (c == '\n') esc = "\\n";
        else if (c == '\r') esc = "\\r";
        else if (c == '\t') esc = "\\t";
        else if (c == '\b') esc = "\\b";
        else if (c == '\f') esc = "\\f";
        else if (c < 0x20) {
            snprintf(u, sizeof u, "\\u%04x", c);
            esc = u;
        }
        if (esc) {
            sb_put(b, s + run, i - run);
            sb_puts(b, esc);
            run = i + 1;
        }
    }
    sb_put(b, s + run, n - run);
    sb_put(b, "\"", 1);
}

static void json(sbuf *b, ct_val v, int indent, int depth, int undef_null) {
    spqri_ct_step(b->S);
    if (depth > b->S->lim.max_depth) spqri_ct_fail(b->S, SPQR_ERR_UNSUPPORTED, "chat template: value nested too deeply");
    char nb[64];
    switch (v.k) {
    case V_NONE: sb_puts(b, "null"); return;
    case V_UNDEF: sb_puts(b, undef_null ? "null" : "undefined"); return;
    case V_BOOL: sb_puts(b, v.b ? "true" : "false"); return;
    case V_INT: int_text(nb, sizeof nb, v.i); sb_puts(b, nb); return;
    case V_FLOAT:
        if (!isfinite(v.f)) { sb_puts(b, "null"); return; }
        fmt_number(nb, sizeof nb, v.f);
        sb_puts(b, nb);
        return;
    case V_STR: json_string(b, v.s->s, v.s->n); return;
    case V_LIST: case V_DICT: case V_NS: case V_KWARGS: {
        const char *item_sep = indent > 0 ? "," : ", ";
        int is_list = v.k == V_LIST;
        int32_t n = is_list ? v.l->n : v.d->n;
        sb_puts(b, is_list ? "[" : "{");
        for (int32_t i = 0; i < n; i++) {
            if (i) sb_puts(b, item_sep);
            if (indent > 0) {
                sb_puts(b, "\n");
                for (int j = 0; j < indent * (depth + 1); j++) sb_put(b, " ", 1);
            }
            if (is_list) json(b, v.l->v[i], indent, depth + 1, undef_null);
            else {
                json_string(b, v.d->key[i]->s, v.d->key[i]->n);
                sb_puts(b, ": ");
                json(b, v.d->v[i], indent, depth + 1, undef_null);
            }
        }
        if (indent > 0 && n > 0) {
            sb_puts(b, "\n");
            for (int j = 0; j < indent * depth; j++) sb_put(b, " ", 1);
        }
        sb_puts(b, is_list ? "]" : "}");
        return;
    }
    default:
        spqri_ct_fail(b->S, SPQR_ERR_FORMAT, "chat template: cannot convert to JSON: %s", spqri_ct_kind_name(v.k));
    }
}

ct_str *spqri_ct_to_json(ct_state *S, ct_val v, int indent, int depth) {
    sbuf b = {S, NULL, 0, 0};
    json(&b, v, indent, depth, 1);
    return spqri_ct_mkstr(S, b.p ? b.p : "", b.n);
}

ct_str *spqri_ct_to_string(ct_state *S, ct_val v) {
    char nb[64];
    switch (v.k) {
    case V_STR: return v.s;
    case V_UNDEF: return spqri_ct_mkstr(S, "undefined", 9);
    case V_NONE: return spqri_ct_mkstr(S, "null", 4);
    case V_BOOL: return v.b ? spqri_ct_mkstr(S, "true", 4) : spqri_ct_mkstr(S, "false", 5);
    case V_INT: int_text(nb, sizeof nb, v.i); return spqri_ct_mkstr(S, nb, strlen(nb));
    case V_FLOAT:
        if (v.f == 0 && signbit(v.f)) return spqri_ct_mkstr(S, "-0.0", 4);
        if (isfinite(v.f) && v.f == floor(v.f) && fabs(v.f) < 1e21) snprintf(nb, sizeof nb, "%.1f", v.f);
        else fmt_number(nb, sizeof nb, v.f);
        return spqri_ct_mkstr(S, nb, strlen(nb));
    case V_LIST: case V_DICT: case V_NS: case V_KWARGS: {
        sbuf b = {S, NULL, 0, 0};
        json(&b, v, -1, 0, 0);
        return spqri_ct_mkstr(S, b.p, b.n);
    }
    default: return spqri_ct_mkstr(S, "[function]", 10);
    }
}

/* ---- UTF-8 ------------------------------------------------------------ */

int64_t spqri_ct_utf8_len(const char *s, size_t n) {
    int64_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

size_t spqri_ct_utf8_offset(const char *s, size_t n, int64_t cp) {
    if (cp <= 0) return 0;
    int64_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80 && k++ == cp) return i;
    return n;
}

int spqri_ct_is_space_at(const char *s, size_t n, size_t i, size_t *w) {
    unsigned char c = (unsigned char)s[i];
    *w = 1;
    if (c < 0x80) return c == ' ' || (c >= 9 && c <= 13);
    uint32_t cp;
    if ((c & 0xE0) == 0xC0 && i + 1 < n) {
        cp = ((uint32_t)(c & 0x1F) << 6) | ((unsigned char)s[i + 1] & 0x3F);
        *w = 2;
    } else if ((c & 0xF0) == 0xE0 && i + 2 < n) {
        cp = ((uint32_t)(c & 0x0F) << 12) | (((unsigned char)s[i + 1] & 0x3F) << 6) | ((unsigned char)s[i + 2] & 0x3F);
        *w = 3;
    } else return 0;
    int sp = cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
             cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
    if (!sp) *w = 1;
    return sp;
}
