/* Chat template evaluator: walks the AST with @huggingface/jinja's
 * semantics (runtime.ts Interpreter): a for loop opens a scope, set binds in
 * the current scope, namespace attributes are the way out of a loop, and
 * the operators follow JS value rules. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tokenizer/chat_template_internal.h"

typedef struct scope {
    ct_dict *vars;
    struct scope *parent;
} scope;

enum { CTRL_NONE, CTRL_BREAK, CTRL_CONTINUE };

typedef struct evaluator {
    ct_state *S;
    int ctrl;
    ct_str *loop_keys[9];
} evaluator;

static ct_val eval(evaluator *E, const ct_node *x, scope *env);
static void render_block(evaluator *E, const ct_nodes *b, scope *env);

static scope *scope_new(ct_state *S, scope *parent) {
    scope *s = spqri_ct_alloc(S, sizeof *s);
    s->vars = spqri_ct_dict_new(S);
    s->parent = parent;
    return s;
}

static ct_val lookup(scope *env, const char *name, size_t n) {
    for (; env; env = env->parent) {
        ct_val *v = spqri_ct_dict_get(env->vars, name, n);
        if (v) return *v;
    }
    return ct_undef();
}

static void emit(ct_state *S, const char *s, size_t n) {
    if (S->out_len + n > S->lim.max_output)
        spqri_ct_fail(S, SPQR_ERR_UNSUPPORTED, "chat template: output exceeds %zu bytes", S->lim.max_output);
    if (S->out_len + n + 1 > S->out_cap) {
        size_t cap = S->out_cap ? S->out_cap : 256;
        while (cap < S->out_len + n + 1) cap *= 2;
        char *p = spqri_ct_alloc(S, cap);
        if (S->out_len) memcpy(p, S->out, S->out_len);
        S->out = p;
        S->out_cap = cap;
    }
    memcpy(S->out + S->out_len, s, n);
    S->out_len += n;
    S->out[S->out_len] = 0;
}

static char *name_buf(const char *s, size_t n, char *buf, size_t cap) {
    snprintf(buf, cap, "%.*s", (int)(n < cap - 1 ? n : cap - 1), s);
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 32 || (unsigned char)*p >= 127) *p = '?';
    return buf;
}

/* ---- JS-flavoured helpers --------------------------------------------- */

static ct_str *js_string_at(ct_state *S, ct_val v);

static int is_num(ct_val v) { return v.k == V_INT || v.k == V_FLOAT; }
static double dnum(ct_val v) { return v.k == V_INT ? (double)v.i : v.k == V_FLOAT ? v.f : (double)v.b; }

/* String(x.value) in JS: what `~` and `+` concatenate. */
static ct_str *js_string(ct_state *S, ct_val v) {
    spqri_ct_enter(S); /* lists nest as deep as a loop builds them */
    ct_str *r = js_string_at(S, v);
    S->depth--;
    return r;
}

static ct_str *js_string_at(ct_state *S, ct_val v) {
    char nb[64];
    switch (v.k) {
    case V_FLOAT:
        if (isfinite(v.f) && v.f == floor(v.f) && fabs(v.f) < 1e21) {
            snprintf(nb, sizeof nb, "%.0f", v.f);
            if (!strcmp(nb, "-0")) strcpy(nb, "0");
            return spqri_ct_mkstr(S, nb, strlen(nb));
        }
        return spqri_ct_to_string(S, v);
    case V_LIST: {
        ct_str *r = spqri_ct_mkstr(S, "", 0);
        for (int32_t i = 0; i < v.l->n; i++) {
            spqri_ct_step(S);
            ct_val x = v.l->v[i];
            ct_str *p = x.k == V_UNDEF || x.k == V_NONE ? spqri_ct_mkstr(S, "", 0) : js_string(S, x);
            ct_str *q = spqri_ct_alloc(S, sizeof *q + r->n + p->n + 2);
            memcpy(q->s, r->s, r->n);
            q->n = r->n;
            if (i) q->s[q->n++] = ',';
            memcpy(q->s + q->n, p->s, p->n);
            q->n += p->n;
            q->s[q->n] = 0;
            r = q;
        }
        return r;
    }
    case V_DICT: case V_NS: case V_KWARGS: return spqri_ct_mkstr(S, "[object Map]", 12);
    default: return spqri_ct_to_string(S, v);
    }
}

static ct_val concat(ct_state *S, ct_str *a, ct_str *b) {
    if (a->n + b->n > S->lim.max_output)
        spqri_ct_fail(S, SPQR_ERR_UNSUPPORTED, "chat template: a string exceeds %zu bytes", S->lim.max_output);
    ct_str *r = spqri_ct_alloc(S, sizeof *r + a->n + b->n + 1);
    memcpy(r->s, a->s, a->n);
    memcpy(r->s + a->n, b->s, b->n);
    r->n = a->n + b->n;
    r->s[r->n] = 0;
    return spqri_ct_strv(r);
}

/* JS `===` on runtime values' .value */
static int strict_eq(ct_val a, ct_val b) {
    if (is_num(a) && is_num(b)) return dnum(a) == dnum(b);
    if (a.k != b.k) return 0;
    return spqri_ct_equal(a, b);
}

static ct_val arith(ct_state *S, const char *op, ct_val l, ct_val r) {
    int fl = l.k == V_FLOAT || r.k == V_FLOAT;
    if (!fl && (op[0] == '+' || op[0] == '-' || op[0] == '*') && op[1] == 0) {
        int64_t res;
        int ovf = op[0] == '+' ? __builtin_add_overflow(l.i, r.i, &res)
                  : op[0] == '-' ? __builtin_sub_overflow(l.i, r.i, &res)
                                 : __builtin_mul_overflow(l.i, r.i, &res);
        if (!ovf) return ct_int(res);
        fl = 1; /* JS numbers go on as doubles; so do we */
    }
    double a = dnum(l), b = dnum(r);
    if (!strcmp(op, "+")) return ct_float(a + b);
    if (!strcmp(op, "-")) return ct_float(a - b);
    if (!strcmp(op, "*")) return ct_float(a * b);
    if (!strcmp(op, "/")) return ct_float(a / b);
    if (!strcmp(op, "//")) {
        if (!fl && r.i != 0 && !(l.i == INT64_MIN && r.i == -1)) {
            int64_t q = l.i / r.i;
            if ((l.i % r.i != 0) && ((l.i < 0) != (r.i < 0))) q--;
            return ct_int(q);
        }
        return ct_float(floor(a / b));
    }
    if (!strcmp(op, "%")) {
        if (!fl && r.i != 0 && r.i != -1) return ct_int(l.i % r.i); /* JS %: the sign of the dividend */
        if (!fl && r.i == -1) return ct_int(0);
        return ct_float(fmod(a, b));
    }
    if (!strcmp(op, "<")) return ct_bool(a < b);
    if (!strcmp(op, ">")) return ct_bool(a > b);
    if (!strcmp(op, "<=")) return ct_bool(a <= b);
    if (!strcmp(op, ">=")) return ct_bool(a >= b);
    (void)S;
    return ct_undef();
}

static ct_val binary(evaluator *E, const ct_node *x, scope *env) {
    ct_state *S = E->S;
    char op[8];
    name_buf(x->s, x->n, op, sizeof op);
    ct_val l = eval(E, x->a, env);
    if (!strcmp(op, "and")) return spqri_ct_truthy(l) ? eval(E, x->b, env) : l;
    if (!strcmp(op, "or")) return spqri_ct_truthy(l) ? l : eval(E, x->b, env);
    ct_val r = eval(E, x->b, env);
    if (!strcmp(op, "==")) return ct_bool(spqri_ct_equal(l, r));
    if (!strcmp(op, "!=")) return ct_bool(!spqri_ct_equal(l, r));
    int in = !strcmp(op, "in"), not_in = !strcmp(op, "not in");
    if (is_num(l) && is_num(r) && strcmp(op, "~") && strcmp(op, "**")) {
        ct_val v = arith(S, op, l, r);
        if (v.k != V_UNDEF) return v;
    } else if (l.k == V_UNDEF || r.k == V_UNDEF) {
        if (r.k == V_UNDEF && (in || not_in)) return ct_bool(not_in);
        if (!strcmp(op, "~") && l.k != V_NONE && r.k != V_NONE)
            return concat(S, l.k == V_UNDEF ? spqri_ct_mkstr(S, "", 0) : js_string(S, l),
                          r.k == V_UNDEF ? spqri_ct_mkstr(S, "", 0) : js_string(S, r));
        spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: cannot perform operation %s on undefined values", op);
    } else if (l.k == V_NONE || r.k == V_NONE) {
        spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: cannot perform operation %s on null values", op);
    } else if (!strcmp(op, "~")) {
        return concat(S, js_string(S, l), js_string(S, r));
    } else if (!strcmp(op, "**") && (is_num(l) || l.k == V_BOOL) && (is_num(r) || r.k == V_BOOL)) {
        double a = dnum(l), b = dnum(r), p = pow(a, b);
        if (a == 0 && b < 0) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: 0.0 cannot be raised to a negative power");
        if (!isfinite(p)) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: exponentiation result is not a finite real number");
        if (l.k == V_FLOAT || r.k == V_FLOAT || b < 0 || fabs(p) > 9e15) return ct_float(p);
        return ct_int((int64_t)p);
    } else if (l.k == V_LIST && r.k == V_LIST) {
        if (!strcmp(op, "+")) {
            ct_val o = {.k = V_LIST};
            o.l = spqri_ct_list_new(S, l.l->n + r.l->n);
            for (int32_t i = 0; i < l.l->n; i++) spqri_ct_list_push(S, o.l, l.l->v[i]);
            for (int32_t i = 0; i < r.l->n; i++) spqri_ct_list_push(S, o.l, r.l->v[i]);
            return o;
        }
    } else if (r.k == V_LIST && (in || not_in)) {
        int found = 0;
        for (int32_t i = 0; i < r.l->n && !found; i++) found = strict_eq(r.l->v[i], l);
        return ct_bool(in ? found : !found);
    }
    if ((l.k == V_STR || r.k == V_STR) && !strcmp(op, "+")) return concat(S, js_string(S, l), js_string(S, r));
    if (l.k == V_STR && r.k == V_STR && (in || not_in)) {
        int found = 0;
        if (l.s->n == 0) found = 1;
        for (size_t i = 0; !found && i + l.s->n <= r.s->n; i++) found = !memcmp(r.s->s + i, l.s->s, l.s->n);
        return ct_bool(in ? found : !found);
    }
    if (l.k == V_STR && (r.k == V_DICT || r.k == V_KWARGS) && (in || not_in)) {
        int found = spqri_ct_dict_get(r.d, l.s->s, l.s->n) != NULL;
        return ct_bool(in ? found : !found);
    }
    spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: unknown operator \"%s\" between %s and %s", op, spqri_ct_kind_name(l.k),
            spqri_ct_kind_name(r.k));
}

/* Python-style slice bounds, as utils.ts slice() computes them. */
static int64_t clampi(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

static ct_val slice(evaluator *E, ct_val obj, const ct_node *sl, scope *env) {
    ct_state *S = E->S;
    if (obj.k != V_LIST && obj.k != V_STR) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: slice object must be an array or string");
    ct_val p[3];
    const ct_node *parts[3] = {sl->a, sl->b, sl->c};
    static const char *WHICH[] = {"start", "stop", "step"};
    for (int i = 0; i < 3; i++) {
        p[i] = parts[i] ? eval(E, parts[i], env) : ct_undef();
        if (p[i].k != V_INT && p[i].k != V_UNDEF)
            spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: slice %s must be numeric or undefined", WHICH[i]);
    }
    int64_t len = obj.k == V_LIST ? obj.l->n : spqri_ct_utf8_len(obj.s->s, obj.s->n);
    int64_t step = p[2].k == V_INT ? p[2].i : 1, start, stop;
    if (step >= 0) {
        start = p[0].k == V_INT ? p[0].i : 0;
        stop = p[1].k == V_INT ? p[1].i : len;
        start = start < 0 ? (len + start > 0 ? len + start : 0) : (start < len ? start : len);
        stop = stop < 0 ? (len + stop > 0 ? len + stop : 0) : (stop < len ? stop : len);
    } else {
        start = p[0].k == V_INT ? p[0].i : len - 1;
        stop = p[1].k == V_INT ? p[1].i : -1;
        start = start < 0 ? clampi(len + start, -1, INT64_MAX) : (start < len - 1 ? start : len - 1);
        stop = stop < -1 ? clampi(len + stop, -1, INT64_MAX) : (stop < len - 1 ? stop : len - 1);
    }
    if (step == 0) return obj.k == V_LIST ? (ct_val){.k = V_LIST, .l = spqri_ct_list_new(S, 0)} : spqri_ct_strval(S, "", 0);
    int dir = step > 0 ? 1 : -1;
    if (obj.k == V_LIST) {
        ct_val o = {.k = V_LIST};
        o.l = spqri_ct_list_new(S, 0);
        for (int64_t i = start; dir * i < dir * stop;) {
            spqri_ct_step(S);
            spqri_ct_list_push(S, o.l, obj.l->v[i]);
            if (__builtin_add_overflow(i, step, &i)) break;
        }
        return o;
    }
    /* strings slice by code point */
    size_t *off = spqri_ct_alloc(S, (size_t)(len + 1) * sizeof *off);
    int64_t k = 0;
    for (size_t i = 0; i < obj.s->n; i++)
        if (((unsigned char)obj.s->s[i] & 0xC0) != 0x80) off[k++] = i;
    off[len] = obj.s->n;
    char *buf = spqri_ct_alloc(S, obj.s->n + 1);
    size_t o = 0;
    for (int64_t i = start; dir * i < dir * stop;) {
        spqri_ct_step(S);
        size_t w = off[i + 1] - off[i];
        memcpy(buf + o, obj.s->s + off[i], w);
        o += w;
        if (__builtin_add_overflow(i, step, &i)) break;
    }
    return spqri_ct_strval(S, buf, o);
}

static ct_val member(evaluator *E, const ct_node *x, scope *env) {
    ct_state *S = E->S;
    ct_val obj = eval(E, x->a, env), prop;
    if (x->i) {
        if (x->b->kind == N_SLICE) return slice(E, obj, x->b, env);
        prop = eval(E, x->b, env);
    } else if (x->b->kind == N_INT) prop = ct_int(x->b->i);
    else prop = spqri_ct_strval(S, x->b->s, x->b->n);
    if (obj.k == V_DICT || obj.k == V_NS || obj.k == V_KWARGS) {
        if (prop.k != V_STR)
            spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: cannot access property with non-string: got %s", spqri_ct_kind_name(prop.k));
        ct_val *v = spqri_ct_dict_get(obj.d, prop.s->s, prop.s->n);
        if (v) return *v;
        return obj.k == V_NS ? ct_undef() : spqri_ct_member_builtin(S, obj, prop.s->s, prop.s->n);
    }
    if (obj.k == V_LIST || obj.k == V_STR) {
        if (prop.k == V_INT) {
            int64_t len = obj.k == V_LIST ? obj.l->n : spqri_ct_utf8_len(obj.s->s, obj.s->n);
            int64_t i = prop.i < 0 ? len + prop.i : prop.i;
            if (i < 0 || i >= len) return ct_undef();
            if (obj.k == V_LIST) return obj.l->v[i];
            size_t a = spqri_ct_utf8_offset(obj.s->s, obj.s->n, i), b = spqri_ct_utf8_offset(obj.s->s, obj.s->n, i + 1);
            return spqri_ct_strval(S, obj.s->s + a, b - a);
        }
        if (prop.k == V_STR) return spqri_ct_member_builtin(S, obj, prop.s->s, prop.s->n);
        spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: cannot access property with non-string/non-number: got %s",
                spqri_ct_kind_name(prop.k));
    }
    if (prop.k != V_STR)
        spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: cannot access property with non-string: got %s", spqri_ct_kind_name(prop.k));
    return ct_undef();
}

/* Evaluates call arguments: positional values, then keyword ones in *kw (NULL if none). */
static ct_val *call_args(evaluator *E, const ct_nodes *a, scope *env, int32_t *n, ct_dict **kw) {
    ct_val *v = spqri_ct_alloc(E->S, (size_t)(a->n ? a->n : 1) * sizeof *v);
    *n = 0;
    *kw = NULL;
    for (int32_t i = 0; i < a->n; i++)
        if (a->v[i]->kind != N_KWARG) v[(*n)++] = eval(E, a->v[i], env);
    for (int32_t i = 0; i < a->n; i++)
        if (a->v[i]->kind == N_KWARG) {
            if (!*kw) *kw = spqri_ct_dict_new(E->S);
            if (spqri_ct_dict_get(*kw, a->v[i]->s, a->v[i]->n)) {
                char b[40];
                spqri_ct_fail(E->S, SPQR_ERR_FORMAT, "chat template: got multiple values for keyword argument '%s'",
                        name_buf(a->v[i]->s, a->v[i]->n, b, sizeof b));
            }
            spqri_ct_dict_set(E->S, *kw, a->v[i]->s, a->v[i]->n, eval(E, a->v[i]->a, env));
        }
    return v;
}

static ct_val call_macro(evaluator *E, const ct_node *m, ct_val *args, int32_t n, ct_dict *kw, scope *env) {
    ct_state *S = E->S;
    if (n > m->alt.n) {
        char b[40];
        spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: macro %s takes not more than %d argument(s)",
                name_buf(m->s, m->n, b, sizeof b), m->alt.n);
    }
    scope *sc = scope_new(S, env);
    for (int32_t i = 0; i < m->alt.n; i++) {
        const ct_node *p = m->alt.v[i];
        ct_val v = ct_undef();
        ct_val *k = kw ? spqri_ct_dict_get(kw, p->s, p->n) : NULL;
        if (i < n) v = args[i];
        else if (k) v = *k;
        else if (p->kind == N_KWARG) v = eval(E, p->a, sc);
        spqri_ct_dict_set(S, sc->vars, p->s, p->n, v);
    }
    char *o = S->out;
    size_t ol = S->out_len, oc = S->out_cap;
    S->out = NULL;
    S->out_len = S->out_cap = 0;
    render_block(E, &m->body, sc);
    ct_val r = spqri_ct_strval(S, S->out ? S->out : "", S->out_len);
    S->out = o;
    S->out_len = ol;
    S->out_cap = oc;
    return r;
}

static ct_val eval(evaluator *E, const ct_node *x, scope *env) {
    ct_state *S = E->S;
    spqri_ct_enter(S);
    spqri_ct_step(S);
    ct_val r;
    switch (x->kind) {
    case N_STR: r = spqri_ct_strval(S, x->s, x->n); break;
    case N_INT: r = ct_int(x->i); break;
    case N_FLOAT: r = ct_float(x->f); break;
    case N_IDENT: r = lookup(env, x->s, x->n); break;
    case N_ARRAY: case N_TUPLE:
        r = (ct_val){.k = V_LIST};
        r.l = spqri_ct_list_new(S, x->body.n);
        for (int32_t i = 0; i < x->body.n; i++) spqri_ct_list_push(S, r.l, eval(E, x->body.v[i], env));
        break;
    case N_OBJECT:
        r = (ct_val){.k = V_DICT};
        r.d = spqri_ct_dict_new(S);
        for (int32_t i = 0; i < x->body.n; i++) {
            ct_val k = eval(E, x->body.v[i], env);
            if (k.k != V_STR) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: object keys must be strings: got %s", spqri_ct_kind_name(k.k));
            spqri_ct_dict_set(S, r.d, k.s->s, k.s->n, eval(E, x->alt.v[i], env));
        }
        break;
    case N_MEMBER: r = member(E, x, env); break;
    case N_CALL: {
        int32_t n;
        ct_dict *kw;
        ct_val *a = call_args(E, &x->body, env, &n, &kw);
        ct_val fn = eval(E, x->a, env);
        if (fn.k == V_FUNC) r = spqri_ct_call_func(S, fn, a, n, kw);
        else if (fn.k == V_MACRO) r = call_macro(E, fn.m, a, n, kw, env);
        else spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: cannot call something that is not a function: got %s", spqri_ct_kind_name(fn.k));
        break;
    }
    case N_BINARY: r = binary(E, x, env); break;
    case N_UNARY: {
        ct_val a = eval(E, x->a, env);
        if (x->s[0] == 'n') r = ct_bool(!spqri_ct_truthy(a));
        else if (a.k == V_INT || a.k == V_BOOL) {
            int64_t v = a.k == V_BOOL ? a.b : a.i;
            r = ct_int(x->s[0] == '-' ? (v == INT64_MIN ? v : -v) : v);
        } else if (a.k == V_FLOAT) r = ct_float(x->s[0] == '-' ? -a.f : a.f);
        else spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: unknown operator \"%c\" for %s", x->s[0], spqri_ct_kind_name(a.k));
        break;
    }
    case N_FILTER: {
        ct_val v = eval(E, x->a, env);
        if (x->i) {
            int32_t n;
            ct_dict *kw;
            ct_val *a = call_args(E, &x->body, env, &n, &kw);
            r = spqri_ct_apply_filter(S, v, x->s, x->n, a, n, kw);
        } else r = spqri_ct_apply_filter(S, v, x->s, x->n, NULL, 0, NULL);
        break;
    }
    case N_TEST: {
        int t = spqri_ct_apply_test(S, eval(E, x->a, env), x->s, x->n);
        r = ct_bool(x->i ? !t : t);
        break;
    }
    case N_TERNARY: r = spqri_ct_truthy(eval(E, x->a, env)) ? eval(E, x->b, env) : eval(E, x->c, env); break;
    case N_SELECT: r = spqri_ct_truthy(eval(E, x->b, env)) ? eval(E, x->a, env) : ct_undef(); break;
    default: spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: unexpected node in an expression");
    }
    S->depth--;
    return r;
}

static void set_stmt(evaluator *E, const ct_node *x, scope *env) {
    ct_state *S = E->S;
    ct_val rhs;
    if (x->b) rhs = eval(E, x->b, env);
    else {
        char *o = S->out;
        size_t ol = S->out_len, oc = S->out_cap;
        S->out = NULL;
        S->out_len = S->out_cap = 0;
        render_block(E, &x->body, env);
        rhs = spqri_ct_strval(S, S->out ? S->out : "", S->out_len);
        S->out = o;
        S->out_len = ol;
        S->out_cap = oc;
    }
    const ct_node *a = x->a;
    if (a->kind == N_IDENT) spqri_ct_dict_set(S, env->vars, a->s, a->n, rhs);
    else if (a->kind == N_TUPLE) {
        if (rhs.k != V_LIST) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: cannot unpack non-iterable type in set: %s", spqri_ct_kind_name(rhs.k));
        if (rhs.l->n != a->body.n)
            spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: too %s items to unpack in set", a->body.n > rhs.l->n ? "few" : "many");
        for (int32_t i = 0; i < a->body.n; i++) {
            if (a->body.v[i]->kind != N_IDENT) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: cannot unpack to non-identifier in set");
            spqri_ct_dict_set(S, env->vars, a->body.v[i]->s, a->body.v[i]->n, rhs.l->v[i]);
        }
    } else if (a->kind == N_MEMBER) {
        ct_val obj = eval(E, a->a, env);
        if (obj.k != V_NS) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: cannot assign attribute on non-namespace object");
        if (a->i || a->b->kind != N_IDENT)
            spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: cannot assign to member with non-identifier property");
        spqri_ct_dict_set(S, obj.d, a->b->s, a->b->n, rhs);
    } else spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: invalid left-hand side in set");
}

static void bind_loopvar(evaluator *E, const ct_node *lv, ct_val cur, scope *sc) {
    if (lv->kind == N_IDENT) {
        spqri_ct_dict_set(E->S, sc->vars, lv->s, lv->n, cur);
        return;
    }
    for (int32_t j = 0; j < lv->body.n; j++)
        spqri_ct_dict_set(E->S, sc->vars, lv->body.v[j]->s, lv->body.v[j]->n, cur.l->v[j]);
}

static void for_stmt(evaluator *E, const ct_node *x, scope *env) {
    ct_state *S = E->S;
    scope *sc = scope_new(S, env);
    const ct_node *test = NULL;
    ct_val it;
    if (x->b->kind == N_SELECT) {
        it = eval(E, x->b->a, sc);
        test = x->b->b;
    } else it = eval(E, x->b, sc);
    if (it.k == V_DICT || it.k == V_KWARGS) {
        ct_val keys = {.k = V_LIST};
        keys.l = spqri_ct_list_new(S, it.d->n);
        for (int32_t i = 0; i < it.d->n; i++) spqri_ct_list_push(S, keys.l, spqri_ct_strv(it.d->key[i]));
        it = keys;
    } else if (it.k != V_LIST)
        spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: expected iterable or object type in for loop: got %s", spqri_ct_kind_name(it.k));
    const ct_node *lv = x->a;
    ct_list *items = spqri_ct_list_new(S, it.l->n);
    for (int32_t i = 0; i < it.l->n; i++) {
        spqri_ct_step(S);
        ct_val cur = it.l->v[i];
        if (lv->kind == N_TUPLE) {
            if (cur.k != V_LIST) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: cannot unpack non-iterable type: %s", spqri_ct_kind_name(cur.k));
            if (cur.l->n != lv->body.n)
                spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: too %s items to unpack", lv->body.n > cur.l->n ? "few" : "many");
        }
        if (test) {
            scope *ls = scope_new(S, sc);
            bind_loopvar(E, lv, cur, ls);
            if (!spqri_ct_truthy(eval(E, test, ls))) continue;
        }
        spqri_ct_list_push(S, items, cur);
    }
    int none = 1;
    int32_t n = items->n;
    for (int32_t i = 0; i < n; i++) {
        spqri_ct_step(S);
        ct_val loop = {.k = V_DICT};
        loop.d = spqri_ct_alloc(S, sizeof *loop.d);
        loop.d->n = loop.d->cap = 9;
        loop.d->key = E->loop_keys;
        loop.d->v = spqri_ct_alloc(S, 9 * sizeof(ct_val));
        ct_val *lvv = loop.d->v;
        lvv[0] = ct_int(i + 1);
        lvv[1] = ct_int(i);
        lvv[2] = ct_int(n - i);
        lvv[3] = ct_int(n - i - 1);
        lvv[4] = ct_bool(i == 0);
        lvv[5] = ct_bool(i == n - 1);
        lvv[6] = ct_int(n);
        lvv[7] = i > 0 ? items->v[i - 1] : ct_undef();
        lvv[8] = i < n - 1 ? items->v[i + 1] : ct_undef();
        spqri_ct_dict_set(S, sc->vars, "loop", 4, loop);
        bind_loopvar(E, lv, items->v[i], sc);
        render_block(E, &x->body, sc);
        if (E->ctrl == CTRL_CONTINUE) {
            E->ctrl = CTRL_NONE;
            continue;
        }
        if (E->ctrl == CTRL_BREAK) {
            E->ctrl = CTRL_NONE;
            break;
        }
        none = 0;
    }
    if (none) render_block(E, &x->alt, sc);
}

static void render_stmt(evaluator *E, const ct_node *x, scope *env) {
    ct_state *S = E->S;
    spqri_ct_enter(S);
    spqri_ct_step(S);
    switch (x->kind) {
    case N_TEXT: emit(S, x->s, x->n); break;
    case N_COMMENT: break;
    case N_IF: render_block(E, spqri_ct_truthy(eval(E, x->a, env)) ? &x->body : &x->alt, env); break;
    case N_FOR: for_stmt(E, x, env); break;
    case N_SET: set_stmt(E, x, env); break;
    case N_BREAK: E->ctrl = CTRL_BREAK; break;
    case N_CONTINUE: E->ctrl = CTRL_CONTINUE; break;
    case N_MACRO: {
        ct_val m = {.k = V_MACRO};
        m.m = x;
        spqri_ct_dict_set(S, env->vars, x->s, x->n, m);
        break;
    }
    default: {
        ct_val v = eval(E, x, env);
        if (v.k != V_NONE && v.k != V_UNDEF) {
            ct_str *s = spqri_ct_to_string(S, v);
            emit(S, s->s, s->n);
        }
    }
    }
    S->depth--;
}

static void render_block(evaluator *E, const ct_nodes *b, scope *env) {
    for (int32_t i = 0; i < b->n && E->ctrl == CTRL_NONE; i++) render_stmt(E, b->v[i], env);
}

static void set_str(ct_state *S, scope *g, const char *name, const char *v) {
    spqri_ct_dict_set(S, g->vars, name, strlen(name), spqri_ct_strval(S, v, strlen(v)));
}

static void set_func(ct_state *S, scope *g, const char *name, ct_func f) {
    ct_val v = {.k = V_FUNC};
    v.fn = f;
    spqri_ct_dict_set(S, g->vars, name, strlen(name), v);
}

void spqri_ct_eval_program(ct_state *S, const ct_node *prog) {
    static const char *LOOP_KEYS[9] = {"index", "index0", "revindex", "revindex0", "first", "last", "length", "previtem", "nextitem"};
    evaluator E = {.S = S};
    for (int i = 0; i < 9; i++) E.loop_keys[i] = spqri_ct_mkstr(S, LOOP_KEYS[i], strlen(LOOP_KEYS[i]));
    scope *g = scope_new(S, NULL);
    set_func(S, g, "namespace", F_NAMESPACE);
    spqri_ct_dict_set(S, g->vars, "false", 5, ct_bool(0));
    spqri_ct_dict_set(S, g->vars, "true", 4, ct_bool(1));
    spqri_ct_dict_set(S, g->vars, "none", 4, ct_none());
    set_func(S, g, "raise_exception", F_RAISE);
    set_func(S, g, "range", F_RANGE);
    set_func(S, g, "strftime_now", F_STRFTIME);
    spqri_ct_dict_set(S, g->vars, "True", 4, ct_bool(1));
    spqri_ct_dict_set(S, g->vars, "False", 5, ct_bool(0));
    spqri_ct_dict_set(S, g->vars, "None", 4, ct_none());
    const ct_context *c = S->ctx;
    ct_val msgs = {.k = V_LIST};
    msgs.l = spqri_ct_list_new(S, c->n_messages);
    for (int32_t i = 0; i < c->n_messages; i++) {
        ct_val m = {.k = V_DICT};
        m.d = spqri_ct_dict_new(S);
        const char *role = c->messages[i].role ? c->messages[i].role : "";
        const char *content = c->messages[i].content ? c->messages[i].content : "";
        spqri_ct_dict_set(S, m.d, "role", 4, spqri_ct_strval(S, role, strlen(role)));
        spqri_ct_dict_set(S, m.d, "content", 7, spqri_ct_strval(S, content, strlen(content)));
        spqri_ct_list_push(S, msgs.l, m);
    }
    spqri_ct_dict_set(S, g->vars, "messages", 8, msgs);
    spqri_ct_dict_set(S, g->vars, "add_generation_prompt", 21, ct_bool(c->add_generation_prompt));
    if (c->bos_token) set_str(S, g, "bos_token", c->bos_token);
    if (c->eos_token) set_str(S, g, "eos_token", c->eos_token);
    render_block(&E, &prog->body, g);
    if (E.ctrl != CTRL_NONE) spqri_ct_fail(S, SPQR_ERR_FORMAT, "chat template: break or continue outside a loop");
}
