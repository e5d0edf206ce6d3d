/* Chat template builtins: string and dict methods, global functions,
 * filters and tests, with @huggingface/jinja's behaviour (runtime.ts,
 * utils.ts). Where that differs from Python Jinja we follow it, since
 * matching transformers.js byte for byte is the contract: strip('x')
 * ignores its argument (JS trim), capitalize keeps the rest as is, upper
 * and lower change ASCII letters only (documented in docs/chat.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer/chat_template_internal.h"

static int name_is(const char *s, size_t n, const char *lit) { return n == strlen(lit) && !memcmp(s, lit, n); }

static ct_val method(ct_state *S, ct_val self, ct_func fn) {
    ct_val v = {.k = V_FUNC};
    v.fn = fn;
    v.self = spqri_ct_alloc(S, sizeof *v.self);
    *v.self = self;
    return v;
}

ct_val spqri_ct_member_builtin(ct_state *S, ct_val obj, const char *name, size_t n) {
    static const struct { const char *n; ct_func f; } STR_METHODS[] = {
        {"upper", M_UPPER},     {"lower", M_LOWER},         {"strip", M_STRIP},           {"title", M_TITLE},
        {"capitalize", M_CAPITALIZE}, {"rstrip", M_RSTRIP}, {"lstrip", M_LSTRIP},         {"startswith", M_STARTSWITH},
        {"endswith", M_ENDSWITH}, {"split", M_SPLIT},       {"replace", M_REPLACE},
    };
    static const struct { const char *n; ct_func f; } DICT_METHODS[] = {
        {"get", M_GET}, {"items", M_ITEMS}, {"keys", M_KEYS}, {"values", M_VALUES},
    };
    if (obj.k == V_STR) {
        if (name_is(name, n, "length")) return ct_int(spqri_ct_utf8_len(obj.s->s, obj.s->n));
        for (size_t i = 0; i < sizeof STR_METHODS / sizeof STR_METHODS[0]; i++)
            if (name_is(name, n, STR_METHODS[i].n)) return method(S, obj, STR_METHODS[i].f);
    } else if (obj.k == V_LIST) {
        if (name_is(name, n, "length")) return ct_int(obj.l->n);
    } else if (obj.k == V_DICT || obj.k == V_KWARGS) {
        for (size_t i = 0; i < sizeof DICT_METHODS / sizeof DICT_METHODS[0]; i++)
            if (name_is(name, n, DICT_METHODS[i].n)) return method(S, obj, DICT_METHODS[i].f);
    }
    return ct_undef();
}

/* ---- string helpers ---------------------------------------------------- */

static size_t trim_start(const char *s, size_t n) {
    size_t a = 0, w;
    while (a < n && spqri_ct_is_space_at(s, n, a, &w)) a += w;
    return a;
}

static size_t trim_end(const char *s, size_t a, size_t n) {
    size_t w;
    while (n > a) {
        size_t st = n - 1;
        while (st > a && ((unsigned char)s[st] & 0xC0) == 0x80 && n - st < 3) st--;
        if (spqri_ct_is_space_at(s, n, st, &w) && st + w == n) n = st;
        else break;
    }
    return n;
}

static ct_val trimmed(ct_state *S, ct_str *s, int start, int end) {
    size_t a = start ? trim_start(s->s, s->n) : 0;
    size_t b = end ? trim_end(s->s, a, s->n) : s->n;
    return spqri_ct_strval(S, s->s + a, b - a);
}

static ct_val ascii_case(ct_state *S, ct_str *s, int upper) {
    ct_str *r = spqri_ct_mkstr(S, s->s, s->n);
    for (size_t i = 0; i < r->n; i++) {
        char c = r->s[i];
        if (upper && c >= 'a' && c <= 'z') r->s[i] = (char)(c - 32);
        if (!upper && c >= 'A' && c <= 'Z') r->s[i] = (char)(c + 32);
    }
    return spqri_ct_strv(r);
}

static int is_word(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; }

static ct_val title(ct_state *S, ct_str *s) {
    ct_str *r = spqri_ct_mkstr(S, s->s, s->n);
    for (size_t i = 0; i < r->n; i++) {
        unsigned char c = (unsigned char)r->s[i];
        if (is_word(c) && (i == 0 || !is_word((unsigned char)r->s[i - 1])) && c >= 'a' && c <= 'z') r->s[i] = (char)(c - 32);
    }
    return spqri_ct_strv(r);
}

static int affix(ct_state *S, ct_str *s, ct_val *args, int32_t n, int end, const char *who) {
    if (n < 1) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: %s() requires at least one argument", who);
    ct_val p = args[0];
    int32_t np = p.k == V_LIST ? p.l->n : 1;
    if (p.k != V_STR && p.k != V_LIST)
        spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: %s() argument must be a string or tuple of strings", who);
    for (int32_t i = 0; i < np; i++) {
        ct_val q = p.k == V_LIST ? p.l->v[i] : p;
        if (q.k != V_STR) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: %s() tuple elements must be strings", who);
        if (q.s->n <= s->n && !memcmp(s->s + (end ? s->n - q.s->n : 0), q.s->s, q.s->n)) return 1;
    }
    return 0;
}

static const char *find(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn == 0) return h;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == nd[0] && !memcmp(h + i, nd, nn)) return h + i;
    return NULL;
}

static ct_val split(ct_state *S, ct_str *s, ct_val *args, int32_t n) {
    ct_val sep = n > 0 ? args[0] : ct_none();
    ct_val maxv = n > 1 ? args[1] : ct_int(-1);
    if (sep.k != V_STR && sep.k != V_NONE) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: sep argument must be a string or null");
    if (maxv.k != V_INT) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: maxsplit argument must be a number");
    int64_t max = maxv.i;
    ct_list *l = spqri_ct_list_new(S, 0);
    ct_val out = {.k = V_LIST};
    out.l = l;
    if (sep.k == V_NONE) {
        size_t i = trim_start(s->s, s->n), w;
        while (i < s->n) {
            spqri_ct_step(S);
            size_t st = i;
            while (i < s->n && !spqri_ct_is_space_at(s->s, s->n, i, &w)) i++;
            if (max >= 0 && l->n >= max) {
                spqri_ct_list_push(S, l, spqri_ct_strval(S, s->s + st, s->n - st));
                break;
            }
            spqri_ct_list_push(S, l, spqri_ct_strval(S, s->s + st, i - st));
            while (i < s->n && spqri_ct_is_space_at(s->s, s->n, i, &w)) i += w;
        }
        return out;
    }
    if (sep.s->n == 0) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: empty separator");
    size_t i = 0;
    for (;;) {
        spqri_ct_step(S);
        const char *p = (max < 0 || l->n < max) ? find(s->s + i, s->n - i, sep.s->s, sep.s->n) : NULL;
        if (!p) {
            spqri_ct_list_push(S, l, spqri_ct_strval(S, s->s + i, s->n - i));
            break;
        }
        spqri_ct_list_push(S, l, spqri_ct_strval(S, s->s + i, (size_t)(p - (s->s + i))));
        i = (size_t)(p - s->s) + sep.s->n;
    }
    return out;
}

static ct_val replace(ct_state *S, ct_str *s, ct_val *args, int32_t n, ct_dict *kw) {
    if (n < 2) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: replace() requires at least two arguments");
    if (args[0].k != V_STR || args[1].k != V_STR) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: replace() arguments must be strings");
    ct_val cv = n > 2 ? args[2] : ct_none();
    ct_val *kc = kw ? spqri_ct_dict_get(kw, "count", 5) : NULL;
    if (n <= 2 && kc) cv = *kc;
    if (cv.k != V_INT && cv.k != V_NONE) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: replace() count argument must be a number or null");
    int64_t left = cv.k == V_INT && cv.i >= 0 ? cv.i : INT64_MAX;
    if (cv.k == V_INT && cv.i == 0) return spqri_ct_strv(s);
    ct_str *o = args[0].s, *nw = args[1].s;
    size_t cap = s->n + 1, len = 0;
    char *buf = spqri_ct_alloc(S, cap);
#define PUT(p, k)                                                        \
    do {                                                                 \
        if (len + (k) + 1 > cap) {                                       \
            size_t nc = cap * 2 + (k);                                   \
            char *nb = spqri_ct_alloc(S, nc);                                  \
            memcpy(nb, buf, len);                                        \
            buf = nb;                                                    \
            cap = nc;                                                    \
        }                                                                \
        memcpy(buf + len, (p), (k));                                     \
        len += (k);                                                      \
    } while (0)
    size_t i = 0;
    if (o->n == 0) { /* the empty pattern matches before every code point and at the end */
        for (;;) {
            spqri_ct_step(S);
            if (left > 0) {
                PUT(nw->s, nw->n);
                left--;
            }
            if (i >= s->n) break;
            size_t j = i + 1;
            while (j < s->n && ((unsigned char)s->s[j] & 0xC0) == 0x80) j++;
            PUT(s->s + i, j - i);
            i = j;
        }
    } else {
        while (i < s->n) {
            spqri_ct_step(S);
            const char *p = left > 0 ? find(s->s + i, s->n - i, o->s, o->n) : NULL;
            if (!p) break;
            size_t k = (size_t)(p - (s->s + i));
            PUT(s->s + i, k);
            PUT(nw->s, nw->n);
            left--;
            i += k + o->n;
        }
        PUT(s->s + i, s->n - i);
    }
#undef PUT
    return spqri_ct_strval(S, buf, len);
}

static ct_val pairs(ct_state *S, ct_dict *d, int what) { /* 0 items, 1 keys, 2 values */
    ct_val out = {.k = V_LIST};
    out.l = spqri_ct_list_new(S, d->n);
    for (int32_t i = 0; i < d->n; i++) {
        if (what == 1) spqri_ct_list_push(S, out.l, spqri_ct_strv(d->key[i]));
        else if (what == 2) spqri_ct_list_push(S, out.l, d->v[i]);
        else {
            ct_val p = {.k = V_LIST};
            p.l = spqri_ct_list_new(S, 2);
            spqri_ct_list_push(S, p.l, spqri_ct_strv(d->key[i]));
            spqri_ct_list_push(S, p.l, d->v[i]);
            spqri_ct_list_push(S, out.l, p);
        }
    }
    return out;
}

static ct_val strftime_now(ct_state *S, ct_val *args, int32_t n) {
    if (n < 1 || args[0].k != V_STR) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: strftime_now() takes a format string");
    static const char *MON[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static const char *MONL[] = {"January", "February", "March",     "April",   "May",      "June",
                                 "July",    "August",   "September", "October", "November", "December"};
    time_t t = S->ctx->now > 0 ? (time_t)S->ctx->now : time(NULL);
    struct tm tm;
    if (S->ctx->now > 0) gmtime_r(&t, &tm);
    else localtime_r(&t, &tm);
    ct_str *f = args[0].s;
    char *buf = spqri_ct_alloc(S, f->n * 8 + 1);
    size_t o = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (f->s[i] == '%' && i + 1 < f->n && strchr("YmdbBHM%", f->s[i + 1])) {
            char c = f->s[++i];
            switch (c) {
            case 'Y': o += (size_t)sprintf(buf + o, "%d", tm.tm_year + 1900); break;
            case 'm': o += (size_t)sprintf(buf + o, "%02d", tm.tm_mon + 1); break;
            case 'd': o += (size_t)sprintf(buf + o, "%02d", tm.tm_mday); break;
            case 'b': o += (size_t)sprintf(buf + o, "%s", MON[tm.tm_mon]); break;
            case 'B': o += (size_t)sprintf(buf + o, "%s", MONL[tm.tm_mon]); break;
            case 'H': o += (size_t)sprintf(buf + o, "%02d", tm.tm_hour); break;
            case 'M': o += (size_t)sprintf(buf + o, "%02d", tm.tm_min); break;
            default: buf[o++] = '%';
            }
        } else buf[o++] = f->s[i];
    }
    return spqri_ct_strval(S, buf, o);
}

static double numeric(ct_state *S, ct_val v, const char *who) {
    if (v.k == V_INT) return (double)v.i;
    if (v.k == V_FLOAT) return v.f;
    if (v.k == V_BOOL) return v.b;
    spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: %s() takes numbers, got %s", who, spqri_ct_kind_name(v.k));
}

ct_val spqri_ct_call_func(ct_state *S, ct_val fn, ct_val *args, int32_t n, ct_dict *kw) {
    ct_val self = fn.self ? *fn.self : ct_undef();
    switch (fn.fn) {
    case F_RAISE: { /* the template's own message, kept one printable line (a NUL or newline becomes '?') */
        ct_str *m = n > 0 ? spqri_ct_to_string(S, args[0]) : spqri_ct_mkstr(S, "", 0);
        char buf[200];
        size_t k = 0;
        for (size_t i = 0; i < m->n && k + 4 < sizeof buf; i++) {
            unsigned char c = (unsigned char)m->s[i];
            buf[k++] = c < 32 || c == 127 ? '?' : (char)c;
        }
        if (k + 4 >= sizeof buf) memcpy(buf + k, "...", 3), k += 3;
        buf[k] = 0;
        spqri_ct_fail(S, SPQR_ERR_INVALID_ARG, "%s", k ? buf : "the chat template raised an exception with no message");
    }
    case F_RANGE: {
        if (n < 1) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: range() takes 1 to 3 arguments");
        double a = 0, b, st = 1;
        if (n == 1) b = numeric(S, args[0], "range");
        else {
            a = numeric(S, args[0], "range");
            b = numeric(S, args[1], "range");
        }
        if (n > 2) st = numeric(S, args[2], "range");
        if (st == 0) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: range() step must not be zero");
        ct_val out = {.k = V_LIST};
        out.l = spqri_ct_list_new(S, 0);
        for (double i = a; st > 0 ? i < b : i > b; i += st) {
            spqri_ct_step(S);
            spqri_ct_list_push(S, out.l, i == (double)(int64_t)i ? ct_int((int64_t)i) : ct_float(i));
        }
        return out;
    }
    case F_NAMESPACE: {
        ct_val out = {.k = V_NS};
        out.d = spqri_ct_dict_new(S);
        if (n > 1) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: namespace expected at most 1 argument, got %d", n);
        if (n == 1) {
            if (args[0].k != V_DICT) spqri_ct_fail(S, SPQR_ERR_UNSUPPORTED, "chat template: namespace() takes a mapping or keywords");
            for (int32_t i = 0; i < args[0].d->n; i++)
                spqri_ct_dict_set(S, out.d, args[0].d->key[i]->s, args[0].d->key[i]->n, args[0].d->v[i]);
        }
        for (int32_t i = 0; kw && i < kw->n; i++) spqri_ct_dict_set(S, out.d, kw->key[i]->s, kw->key[i]->n, kw->v[i]);
        return out;
    }
    case F_STRFTIME: return strftime_now(S, args, n);
    case M_UPPER: return ascii_case(S, self.s, 1);
    case M_LOWER: return ascii_case(S, self.s, 0);
    case M_STRIP: return trimmed(S, self.s, 1, 1);
    case M_LSTRIP: return trimmed(S, self.s, 1, 0);
    case M_RSTRIP: return trimmed(S, self.s, 0, 1);
    case M_TITLE: return title(S, self.s);
    case M_CAPITALIZE: {
        ct_str *r = spqri_ct_mkstr(S, self.s->s, self.s->n);
        if (r->n && r->s[0] >= 'a' && r->s[0] <= 'z') r->s[0] = (char)(r->s[0] - 32);
        return spqri_ct_strv(r);
    }
    case M_STARTSWITH: return ct_bool(affix(S, self.s, args, n, 0, "startswith"));
    case M_ENDSWITH: return ct_bool(affix(S, self.s, args, n, 1, "endswith"));
    case M_SPLIT: return split(S, self.s, args, n);
    case M_REPLACE: return replace(S, self.s, args, n, kw);
    case M_GET: {
        if (n < 1 || args[0].k != V_STR)
            spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: Object key must be a string: got %s", n < 1 ? "nothing" : spqri_ct_kind_name(args[0].k));
        ct_val *v = spqri_ct_dict_get(self.d, args[0].s->s, args[0].s->n);
        return v ? *v : n > 1 ? args[1] : ct_none();
    }
    case M_ITEMS: return pairs(S, self.d, 0);
    case M_KEYS: return pairs(S, self.d, 1);
    case M_VALUES: return pairs(S, self.d, 2);
    }
    spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: unknown function");
}

/* ---- tests -------------------------------------------------------------- */

static int test2(ct_state *S, ct_val v, const char *name, size_t n, const ct_val *arg) {
    if (name_is(name, n, "boolean")) return v.k == V_BOOL;
    if (name_is(name, n, "callable")) return v.k == V_FUNC || v.k == V_MACRO;
    if (name_is(name, n, "odd") || name_is(name, n, "even")) {
        if (v.k != V_INT) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: cannot %.*s on %s", (int)n, name, spqri_ct_kind_name(v.k));
        return name_is(name, n, "odd") ? (v.i % 2 != 0) : (v.i % 2 == 0);
    }
    if (name_is(name, n, "false")) return v.k == V_BOOL && !v.b;
    if (name_is(name, n, "true")) return v.k == V_BOOL && v.b;
    if (name_is(name, n, "none")) return v.k == V_NONE;
    if (name_is(name, n, "string")) return v.k == V_STR;
    if (name_is(name, n, "number")) return v.k == V_INT || v.k == V_FLOAT;
    if (name_is(name, n, "integer")) return v.k == V_INT;
    if (name_is(name, n, "iterable")) return v.k == V_LIST || v.k == V_STR;
    if (name_is(name, n, "mapping")) return v.k == V_DICT || v.k == V_KWARGS;
    if (name_is(name, n, "sequence")) return v.k == V_LIST || v.k == V_DICT || v.k == V_KWARGS || v.k == V_STR;
    if (name_is(name, n, "lower") || name_is(name, n, "upper")) {
        if (v.k != V_STR) return 0;
        int up = name_is(name, n, "upper");
        for (size_t i = 0; i < v.s->n; i++)
            if (up ? (v.s->s[i] >= 'a' && v.s->s[i] <= 'z') : (v.s->s[i] >= 'A' && v.s->s[i] <= 'Z')) return 0;
        return 1;
    }
    if (name_is(name, n, "defined")) return v.k != V_UNDEF;
    if (name_is(name, n, "undefined")) return v.k == V_UNDEF;
    if (name_is(name, n, "equalto") || name_is(name, n, "eq")) {
        /* JS ===: same type and value; containers by identity */
        ct_val b = arg ? *arg : ct_undef();
        if (v.k == V_INT && b.k == V_FLOAT) return (double)v.i == b.f;
        if (v.k == V_FLOAT && b.k == V_INT) return v.f == (double)b.i;
        if (v.k != b.k) return 0;
        return spqri_ct_equal(v, b);
    }
    char buf[40];
    snprintf(buf, sizeof buf, "%.*s", (int)(n < 32 ? n : 32), name);
    spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: unknown test: %s", buf);
}

int spqri_ct_apply_test(ct_state *S, ct_val v, const char *name, size_t n) { return test2(S, v, name, n, NULL); }

/* ---- filters ------------------------------------------------------------ */

static _Noreturn void bad_filter(ct_state *S, const char *name, size_t n, ct_val v) {
    char buf[40];
    snprintf(buf, sizeof buf, "%.*s", (int)(n < 32 ? n : 32), name);
    spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: cannot apply filter \"%s\" to type: %s", buf, spqri_ct_kind_name(v.k));
}

static ct_val *kwarg(ct_dict *kw, const char *name) { return kw ? spqri_ct_dict_get(kw, name, strlen(name)) : NULL; }

/* A number as @huggingface/jinja 0.5.13's `|int` makes it (Math.trunc):
 * an int where it fits, else the truncated float (NaN, inf and |x| >= 2^63
 * stay floats: a cast would be undefined behaviour). */
static ct_val trunc_int(double x) {
    const double f = trunc(x);
    return f >= -9223372036854775808.0 && f < 9223372036854775808.0 ? ct_int((int64_t)f) : ct_float(f);
}

/* JS parseInt(s, 10) (as_int) or parseFloat(s): whitespace, then the
 * longest decimal prefix ([+-] digits, or for floats [+-] digits [. digits]
 * [e [+-] digits] or Infinity). 0 when there is none (JS: NaN). */
static int js_parse_number(ct_state *S, const ct_str *s, int as_int, double *out) {
    size_t i = 0, w;
    while (i < s->n && spqri_ct_is_space_at(s->s, s->n, i, &w)) i += w;
    const size_t start = i;
    if (i < s->n && (s->s[i] == '+' || s->s[i] == '-')) i++;
    if (!as_int && s->n - i >= 8 && !memcmp(s->s + i, "Infinity", 8)) {
        *out = s->s[start] == '-' ? -INFINITY : INFINITY;
        return 1;
    }
    size_t digits = 0;
    for (; i < s->n && s->s[i] >= '0' && s->s[i] <= '9'; i++) digits++;
    if (!as_int && i < s->n && s->s[i] == '.') {
        i++;
        for (; i < s->n && s->s[i] >= '0' && s->s[i] <= '9'; i++) digits++;
    }
    if (!digits) return 0;
    if (!as_int && i < s->n && (s->s[i] == 'e' || s->s[i] == 'E')) {
        size_t j = i + 1;
        if (j < s->n && (s->s[j] == '+' || s->s[j] == '-')) j++;
        if (j < s->n && s->s[j] >= '0' && s->s[j] <= '9') {
            while (j < s->n && s->s[j] >= '0' && s->s[j] <= '9') j++;
            i = j;
        }
    }
    /* strtod on a NUL-terminated copy of exactly that prefix: the decimal
     * value rounded once to a double, as JS does */
    char *buf = spqri_ct_alloc(S, i - start + 1);
    memcpy(buf, s->s + start, i - start);
    buf[i - start] = 0;
    *out = strtod(buf, NULL);
    return 1;
}

/* `|int` / `|float` on a string: its parsed number, else dflt */
static ct_val parse_filter(ct_state *S, const ct_str *s, int as_int, ct_val dflt) {
    double x;
    if (!js_parse_number(S, s, as_int, &x)) return dflt;
    return as_int ? trunc_int(x) : ct_float(x);
}

static ct_val indent(ct_state *S, ct_str *s, ct_val width, int first, int blank) {
    char pad[256];
    size_t pn;
    if (width.k == V_STR) {
        pn = width.s->n < sizeof pad ? width.s->n : sizeof pad;
        memcpy(pad, width.s->s, pn);
    } else {
        pn = width.i < 0 ? 0 : width.i > 255 ? 255 : (size_t)width.i;
        memset(pad, ' ', pn);
    }
    size_t lines = 1;
    for (size_t i = 0; i < s->n; i++) lines += s->s[i] == '\n';
    char *buf = spqri_ct_alloc(S, s->n + lines * pn + 1);
    size_t o = 0, st = 0;
    for (size_t ln = 0;; ln++) {
        const char *e = memchr(s->s + st, '\n', s->n - st);
        size_t en = e ? (size_t)(e - s->s) : s->n;
        if (!((!first && ln == 0) || (!blank && en == st))) {
            memcpy(buf + o, pad, pn);
            o += pn;
        }
        memcpy(buf + o, s->s + st, en - st);
        o += en - st;
        if (!e) break;
        buf[o++] = '\n';
        st = en + 1;
    }
    return spqri_ct_strval(S, buf, o);
}

ct_val spqri_ct_apply_filter(ct_state *S, ct_val v, const char *name, size_t n, ct_val *args, int32_t na, ct_dict *kw) {
    int call = args != NULL || kw != NULL;
    if (name_is(name, n, "safe") && !call) return v;
    if (name_is(name, n, "tojson")) {
        ct_val *ind = kwarg(kw, "indent");
        if (ind && ind->k != V_INT && ind->k != V_NONE) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: If set, indent must be a number");
        for (int32_t i = 0; kw && i < kw->n; i++)
            if (!name_is(kw->key[i]->s, kw->key[i]->n, "indent"))
                spqri_ct_fail(S, SPQR_ERR_UNSUPPORTED, "chat template: tojson(%s=...) is not supported", kw->key[i]->s);
        return spqri_ct_strv(spqri_ct_to_json(S, v, ind && ind->k == V_INT ? (int)(ind->i > 64 ? 64 : ind->i) : -1, 0));
    }
    if (call) {
        if (name_is(name, n, "int") || name_is(name, n, "float")) { /* x|int(default): the default for text that is no number */
            const int as_int = name_is(name, n, "int");
            ct_val d = na > 0 ? args[0] : kwarg(kw, "default") ? *kwarg(kw, "default") : as_int ? ct_int(0) : ct_float(0);
            if (v.k == V_STR) return parse_filter(S, v.s, as_int, d);
            if (v.k == V_INT) return as_int ? v : ct_float((double)v.i);
            if (v.k == V_FLOAT) return as_int ? trunc_int(v.f) : v;
            if (v.k == V_BOOL) return as_int ? ct_int(v.b) : ct_float(v.b);
            bad_filter(S, name, n, v);
        }
        if (name_is(name, n, "join")) {
            ct_val sep = na > 0 ? args[0] : kwarg(kw, "separator") ? *kwarg(kw, "separator") : spqri_ct_strval(S, "", 0);
            if (sep.k != V_STR) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: separator must be a string");
            if (v.k != V_LIST && v.k != V_STR) bad_filter(S, name, n, v);
            if (v.k == V_STR) { /* join the characters */
                ct_val l = {.k = V_LIST};
                l.l = spqri_ct_list_new(S, 0);
                for (size_t i = 0; i < v.s->n;) {
                    size_t j = i + 1;
                    while (j < v.s->n && ((unsigned char)v.s->s[j] & 0xC0) == 0x80) j++;
                    spqri_ct_list_push(S, l.l, spqri_ct_strval(S, v.s->s + i, j - i));
                    i = j;
                }
                v = l;
            }
            size_t tot = 0;
            ct_str **parts = spqri_ct_alloc(S, (size_t)(v.l->n ? v.l->n : 1) * sizeof *parts);
            for (int32_t i = 0; i < v.l->n; i++) {
                ct_val x = v.l->v[i];
                parts[i] = x.k == V_UNDEF || x.k == V_NONE ? spqri_ct_mkstr(S, "", 0) : spqri_ct_to_string(S, x);
                tot += parts[i]->n + sep.s->n;
            }
            char *buf = spqri_ct_alloc(S, tot + 1);
            size_t o = 0;
            for (int32_t i = 0; i < v.l->n; i++) {
                if (i) { memcpy(buf + o, sep.s->s, sep.s->n); o += sep.s->n; }
                memcpy(buf + o, parts[i]->s, parts[i]->n);
                o += parts[i]->n;
            }
            return spqri_ct_strval(S, buf, o);
        }
        if (name_is(name, n, "default")) {
            ct_val d = na > 0 ? args[0] : spqri_ct_strval(S, "", 0);
            ct_val bo = na > 1 ? args[1] : kwarg(kw, "boolean") ? *kwarg(kw, "boolean") : ct_bool(0);
            if (bo.k != V_BOOL) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: `default` filter flag must be a boolean");
            return v.k == V_UNDEF || (bo.b && !spqri_ct_truthy(v)) ? d : v;
        }
        if (v.k == V_LIST && (name_is(name, n, "selectattr") || name_is(name, n, "rejectattr"))) {
            int sel = name_is(name, n, "selectattr");
            for (int32_t i = 0; i < na; i++)
                if (args[i].k != V_STR) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: arguments of `%.*s` must be strings", (int)n, name);
            if (na < 1) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: `%.*s` needs an attribute", (int)n, name);
            ct_val out = {.k = V_LIST};
            out.l = spqri_ct_list_new(S, 0);
            for (int32_t i = 0; i < v.l->n; i++) {
                ct_val it = v.l->v[i];
                if (it.k != V_DICT && it.k != V_NS && it.k != V_KWARGS)
                    spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: `%.*s` can only be applied to array of objects", (int)n, name);
                ct_val *a = spqri_ct_dict_get(it.d, args[0].s->s, args[0].s->n);
                int r = 0;
                if (a) r = na > 1 ? test2(S, *a, args[1].s->s, args[1].s->n, na > 2 ? &args[2] : NULL) : spqri_ct_truthy(*a);
                if (r == sel) spqri_ct_list_push(S, out.l, it);
            }
            return out;
        }
        if (v.k == V_LIST && name_is(name, n, "map")) {
            ct_val *attr = kwarg(kw, "attribute");
            if (!attr) spqri_ct_fail(S, SPQR_ERR_UNSUPPORTED, "chat template: `map` expressions without `attribute` set are not supported");
            if (attr->k != V_STR) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: attribute must be a string");
            ct_val *dflt = kwarg(kw, "default");
            ct_val out = {.k = V_LIST};
            out.l = spqri_ct_list_new(S, v.l->n);
            for (int32_t i = 0; i < v.l->n; i++) {
                ct_val it = v.l->v[i];
                if (it.k != V_DICT && it.k != V_NS && it.k != V_KWARGS)
                    spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: items in map must be an object");
                ct_val *a = spqri_ct_dict_get(it.d, attr->s->s, attr->s->n);
                spqri_ct_list_push(S, out.l, a && a->k != V_UNDEF ? *a : dflt ? *dflt : ct_undef());
            }
            return out;
        }
        if (v.k == V_STR && name_is(name, n, "indent")) {
            ct_val w = na > 0 ? args[0] : kwarg(kw, "width") ? *kwarg(kw, "width") : ct_int(4);
            if (w.k != V_INT && w.k != V_STR) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: width must be an integer or a string");
            ct_val fi = na > 1 ? args[1] : kwarg(kw, "first") ? *kwarg(kw, "first") : ct_bool(0);
            ct_val bl = na > 2 ? args[2] : kwarg(kw, "blank") ? *kwarg(kw, "blank") : ct_bool(0);
            return indent(S, v.s, w, spqri_ct_truthy(fi), spqri_ct_truthy(bl));
        }
        if (v.k == V_STR && name_is(name, n, "replace")) return replace(S, v.s, args, na, kw);
        if (v.k == V_DICT) {
            ct_val m = spqri_ct_member_builtin(S, v, name, n);
            if (m.k == V_FUNC) return spqri_ct_call_func(S, m, args, na, kw);
        }
        bad_filter(S, name, n, v);
    }
    switch (v.k) {
    case V_LIST:
        if (name_is(name, n, "list")) return v;
        if (name_is(name, n, "first")) return v.l->n ? v.l->v[0] : ct_undef();
        if (name_is(name, n, "last")) return v.l->n ? v.l->v[v.l->n - 1] : ct_undef();
        if (name_is(name, n, "length")) return ct_int(v.l->n);
        if (name_is(name, n, "reverse")) {
            ct_val out = {.k = V_LIST};
            out.l = spqri_ct_list_new(S, v.l->n);
            for (int32_t i = v.l->n - 1; i >= 0; i--) spqri_ct_list_push(S, out.l, v.l->v[i]);
            return out;
        }
        if (name_is(name, n, "join")) return spqri_ct_apply_filter(S, v, name, n, args ? args : (ct_val[1]){0}, 0, NULL);
        if (name_is(name, n, "string")) return spqri_ct_strv(spqri_ct_to_string(S, v));
        break;
    case V_STR:
        if (name_is(name, n, "length")) return ct_int(spqri_ct_utf8_len(v.s->s, v.s->n));
        if (name_is(name, n, "upper")) return ascii_case(S, v.s, 1);
        if (name_is(name, n, "lower")) return ascii_case(S, v.s, 0);
        if (name_is(name, n, "title")) return title(S, v.s);
        if (name_is(name, n, "capitalize")) return spqri_ct_call_func(S, method(S, v, M_CAPITALIZE), NULL, 0, NULL);
        if (name_is(name, n, "trim")) return trimmed(S, v.s, 1, 1);
        if (name_is(name, n, "indent")) return indent(S, v.s, ct_int(4), 0, 0);
        if (name_is(name, n, "join") || name_is(name, n, "string")) return v;
        if (name_is(name, n, "int")) return parse_filter(S, v.s, 1, ct_int(0));
        if (name_is(name, n, "float")) return parse_filter(S, v.s, 0, ct_float(0));
        break;
    case V_INT: case V_FLOAT:
        if (name_is(name, n, "abs")) return v.k == V_INT ? ct_int(v.i < 0 ? -v.i : v.i) : ct_float(v.f < 0 ? -v.f : v.f);
        if (name_is(name, n, "int")) return v.k == V_INT ? v : trunc_int(v.f);
        if (name_is(name, n, "float")) return ct_float(v.k == V_INT ? (double)v.i : v.f);
        if (name_is(name, n, "string")) return spqri_ct_strv(spqri_ct_to_string(S, v));
        break;
    case V_DICT: case V_KWARGS:
        if (name_is(name, n, "items")) return pairs(S, v.d, 0);
        if (name_is(name, n, "length")) return ct_int(v.d->n);
        if (name_is(name, n, "keys")) return pairs(S, v.d, 1);
        if (name_is(name, n, "values")) return pairs(S, v.d, 2);
        break;
    case V_BOOL:
        if (name_is(name, n, "bool")) return v;
        if (name_is(name, n, "int")) return ct_int(v.b);
        if (name_is(name, n, "float")) return ct_float(v.b);
        if (name_is(name, n, "string")) return spqri_ct_strval(S, v.b ? "true" : "false", v.b ? 4 : 5);
        break;
    default:
        break;
    }
    bad_filter(S, name, n, v);
}
