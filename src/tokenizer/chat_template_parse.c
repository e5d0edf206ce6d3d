/* Chat template parser: tokens to an AST with @huggingface/jinja's grammar
 * and precedence (parser.ts): ternary < or < and < not < comparison/in <
 * + - ~ < * / // % < ** < is-test < |filter < unary sign < call/member. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/chat_template_internal.h"

typedef struct parser {
    ct_state *S;
    const ct_tok *t;
    int32_t n, cur;
} parser;

static ct_node *expr(parser *P);
static ct_node *any(parser *P);

static ct_node *node(parser *P, ct_node_kind k) {
    ct_node *x = spqri_ct_alloc(P->S, sizeof *x);
    memset(x, 0, sizeof *x);
    x->kind = k;
    return x;
}

static void nodes_push(parser *P, ct_nodes *l, ct_node *x) {
    if ((l->n & (l->n - 1)) == 0) { /* 0, 1, 2, 4, ...: grow to the next power of two */
        int32_t cap = l->n ? l->n * 2 : 1;
        ct_node **v = spqri_ct_alloc(P->S, (size_t)cap * sizeof *v);
        if (l->n) memcpy(v, l->v, (size_t)l->n * sizeof *v);
        l->v = v;
    }
    l->v[l->n++] = x;
}

static const char *TYPE_NAMES[] = {"text", "number", "string", "identifier", "'='", "'('", "')'", "'{%'", "'%}'",
                                   "'{{'", "'}}'", "'['", "']'", "'{'", "'}'", "','", "'.'", "':'", "'|'",
                                   "operator", "operator", "'**'", "comparison", "unary operator", "comment"};

static _Noreturn void syntax(parser *P, const char *what) {
    if (P->cur < P->n)
        spqri_ct_fail(P->S, SPQR_ERR_FORMAT, "chat template: %s, got %s", what, TYPE_NAMES[P->t[P->cur].type]);
    spqri_ct_fail(P->S, SPQR_ERR_FORMAT, "chat template: %s, got the end of the template", what);
}

static int is(parser *P, ct_tok_type t) { return P->cur < P->n && P->t[P->cur].type == t; }
static int is_at(parser *P, int32_t k, ct_tok_type t) { return P->cur + k < P->n && P->t[P->cur + k].type == t; }

static int tok_eq(const ct_tok *t, const char *s) { return t->n == strlen(s) && !memcmp(t->s, s, t->n); }

static int is_ident(parser *P, const char *name) { return is(P, T_IDENT) && tok_eq(&P->t[P->cur], name); }

static int is_stmt(parser *P, const char *name) {
    return is(P, T_OPEN_STMT) && is_at(P, 1, T_IDENT) && tok_eq(&P->t[P->cur + 1], name);
}

static const ct_tok *expect(parser *P, ct_tok_type t, const char *what) {
    if (!is(P, t)) syntax(P, what);
    return &P->t[P->cur++];
}

static void expect_ident(parser *P, const char *name) {
    if (!is_ident(P, name)) {
        char m[64];
        snprintf(m, sizeof m, "expected '%s'", name);
        syntax(P, m);
    }
    P->cur++;
}

static ct_node *primary(parser *P) {
    if (P->cur >= P->n) syntax(P, "expected an expression");
    const ct_tok *t = &P->t[P->cur++];
    ct_node *x;
    switch (t->type) {
    case T_NUMBER: {
        char *buf = spqri_ct_alloc(P->S, t->n + 1); /* the whole literal: a cut one would change its value */
        memcpy(buf, t->s, t->n);
        buf[t->n] = 0;
        const int has_point = memchr(t->s, '.', t->n) != NULL;
        errno = 0;
        const long long v = has_point ? 0 : strtoll(buf, NULL, 10);
        if (has_point || errno == ERANGE) {
            /* beyond 64 bits an integer literal becomes the double JS's Number() makes of it */
            x = node(P, N_FLOAT);
            x->f = strtod(buf, NULL);
        } else {
            x = node(P, N_INT);
            x->i = v;
        }
        return x;
    }
    case T_STRING: {
        x = node(P, N_STR);
        size_t n = t->n;
        int32_t e = P->cur;
        while (e < P->n && P->t[e].type == T_STRING) n += P->t[e++].n;
        char *s = spqri_ct_alloc(P->S, n + 1);
        memcpy(s, t->s, t->n);
        size_t o = t->n;
        for (; P->cur < e; P->cur++) {
            memcpy(s + o, P->t[P->cur].s, P->t[P->cur].n);
            o += P->t[P->cur].n;
        }
        s[n] = 0;
        x->s = s;
        x->n = n;
        return x;
    }
    case T_IDENT:
        x = node(P, N_IDENT);
        x->s = t->s;
        x->n = t->n;
        return x;
    case T_LPAREN: {
        spqri_ct_enter(P->S);
        ct_node *first = expr(P);
        if (is(P, T_COMMA)) {
            x = node(P, N_TUPLE);
            nodes_push(P, &x->body, first);
            while (is(P, T_COMMA)) {
                P->cur++;
                nodes_push(P, &x->body, expr(P));
                if (!is(P, T_COMMA)) break;
            }
        } else x = first;
        expect(P, T_RPAREN, "expected ')'");
        P->S->depth--;
        return x;
    }
    case T_LBRACKET:
        spqri_ct_enter(P->S);
        x = node(P, N_ARRAY);
        while (!is(P, T_RBRACKET)) {
            nodes_push(P, &x->body, expr(P));
            if (is(P, T_COMMA)) P->cur++;
        }
        P->cur++;
        P->S->depth--;
        return x;
    case T_LBRACE:
        spqri_ct_enter(P->S);
        x = node(P, N_OBJECT);
        while (!is(P, T_RBRACE)) {
            nodes_push(P, &x->body, expr(P));
            expect(P, T_COLON, "expected ':' in an object literal");
            nodes_push(P, &x->alt, expr(P));
            if (is(P, T_COMMA)) P->cur++;
        }
        P->cur++;
        P->S->depth--;
        return x;
    default:
        P->cur--;
        syntax(P, "expected an expression");
    }
}

/* (args): positional then name=value; parameters mode for macro definitions. */
static void args(parser *P, ct_nodes *out) {
    expect(P, T_LPAREN, "expected '('");
    int saw_kw = 0;
    while (!is(P, T_RPAREN)) {
        if (is(P, T_POW) || (is(P, T_MUL) && tok_eq(&P->t[P->cur], "*")))
            spqri_ct_fail(P->S, SPQR_ERR_UNSUPPORTED, "chat template: argument unpacking (* / **) is not supported");
        ct_node *a = expr(P);
        if (is(P, T_EQUALS)) {
            P->cur++;
            if (a->kind != N_IDENT) syntax(P, "expected an identifier for a keyword argument");
            ct_node *kw = node(P, N_KWARG);
            kw->s = a->s;
            kw->n = a->n;
            kw->a = expr(P);
            a = kw;
            saw_kw = 1;
        } else if (saw_kw) syntax(P, "positional arguments must come before keyword arguments");
        nodes_push(P, out, a);
        if (is(P, T_COMMA)) P->cur++;
        if (P->cur >= P->n) syntax(P, "expected ')'");
    }
    P->cur++;
}

static ct_node *member(parser *P, ct_node *obj) {
    while (is(P, T_DOT) || is(P, T_LBRACKET)) {
        int computed = is(P, T_LBRACKET);
        P->cur++;
        ct_node *m = node(P, N_MEMBER);
        m->a = obj;
        m->i = computed;
        if (computed) {
            ct_node *sl[3] = {0};
            int n = 0, slice = 0;
            while (!is(P, T_RBRACKET)) {
                if (P->cur >= P->n) syntax(P, "expected ']'");
                if (n >= 3) spqri_ct_fail(P->S, SPQR_ERR_FORMAT, "chat template: a slice takes at most 3 parts");
                if (is(P, T_COLON)) {
                    sl[n++] = NULL;
                    P->cur++;
                    slice = 1;
                } else {
                    sl[n++] = expr(P);
                    if (is(P, T_COLON)) {
                        P->cur++;
                        slice = 1;
                    }
                }
            }
            if (n == 0) syntax(P, "expected an index or a slice");
            if (slice) {
                ct_node *s = node(P, N_SLICE);
                s->a = sl[0];
                s->b = n > 1 ? sl[1] : NULL;
                s->c = n > 2 ? sl[2] : NULL;
                m->b = s;
            } else m->b = sl[0];
            expect(P, T_RBRACKET, "expected ']'");
        } else {
            ct_node *p = primary(P);
            if (p->kind != N_IDENT && p->kind != N_INT) syntax(P, "expected a name after '.'");
            m->b = p;
        }
        obj = m;
    }
    return obj;
}

static ct_node *call(parser *P, ct_node *callee) {
    spqri_ct_enter(P->S);
    ct_node *c = node(P, N_CALL);
    c->a = callee;
    args(P, &c->body);
    ct_node *x = member(P, c);
    if (is(P, T_LPAREN)) x = call(P, x);
    P->S->depth--;
    return x;
}

static ct_node *call_member(parser *P) {
    ct_node *m = member(P, primary(P));
    return is(P, T_LPAREN) ? call(P, m) : m;
}

static ct_node *unary_sign(parser *P) {
    if (P->cur < P->n && (P->t[P->cur].type == T_UNARY || P->t[P->cur].type == T_ADD) &&
        (tok_eq(&P->t[P->cur], "-") || tok_eq(&P->t[P->cur], "+"))) {
        spqri_ct_enter(P->S);
        ct_node *u = node(P, N_UNARY);
        u->s = P->t[P->cur].s;
        u->n = 1;
        P->cur++;
        u->a = unary_sign(P);
        P->S->depth--;
        return u;
    }
    return call_member(P);
}

static ct_node *filter_expr(parser *P) {
    ct_node *x = unary_sign(P);
    while (is(P, T_PIPE)) {
        P->cur++;
        ct_node *f = primary(P);
        if (f->kind != N_IDENT) syntax(P, "expected a filter name");
        ct_node *fx = node(P, N_FILTER);
        fx->a = x;
        fx->s = f->s;
        fx->n = f->n;
        if (is(P, T_LPAREN)) {
            ct_node *c = call(P, f);
            if (c->kind != N_CALL || c->a != f) spqri_ct_fail(P->S, SPQR_ERR_UNSUPPORTED, "chat template: unsupported filter call");
            fx->body = c->body;
            fx->i = 1;
        }
        x = fx;
    }
    return x;
}

static ct_node *test_expr(parser *P) {
    ct_node *x = filter_expr(P);
    while (is_ident(P, "is")) {
        P->cur++;
        int neg = is_ident(P, "not");
        if (neg) P->cur++;
        ct_node *t = primary(P);
        if (t->kind != N_IDENT) {
            /* `is none` / `is true` arrive as identifiers; anything else is not a test */
            syntax(P, "expected a test name");
        }
        ct_node *tx = node(P, N_TEST);
        tx->a = x;
        tx->s = t->s;
        tx->n = t->n;
        tx->i = neg;
        x = tx;
    }
    return x;
}

static ct_node *binary(parser *P, const ct_tok *op, ct_node *l, ct_node *r) {
    ct_node *b = node(P, N_BINARY);
    b->s = op->s;
    b->n = op->n;
    b->a = l;
    b->b = r;
    return b;
}

static ct_node *power(parser *P) {
    ct_node *l = test_expr(P);
    while (is(P, T_POW)) {
        const ct_tok *op = &P->t[P->cur++];
        l = binary(P, op, l, test_expr(P));
    }
    return l;
}

static ct_node *mult(parser *P) {
    ct_node *l = power(P);
    while (is(P, T_MUL)) {
        const ct_tok *op = &P->t[P->cur++];
        l = binary(P, op, l, power(P));
    }
    return l;
}

static ct_node *additive(parser *P) {
    ct_node *l = mult(P);
    while (is(P, T_ADD)) {
        const ct_tok *op = &P->t[P->cur++];
        l = binary(P, op, l, mult(P));
    }
    return l;
}

static const ct_tok NOT_IN = {T_IDENT, "not in", 6};

static ct_node *comparison(parser *P) {
    ct_node *l = additive(P);
    for (;;) {
        const ct_tok *op;
        if (is_ident(P, "not") && is_at(P, 1, T_IDENT) && tok_eq(&P->t[P->cur + 1], "in")) {
            op = &NOT_IN;
            P->cur += 2;
        } else if (is_ident(P, "in") || is(P, T_CMP)) op = &P->t[P->cur++];
        else break;
        l = binary(P, op, l, additive(P));
    }
    return l;
}

static ct_node *negation(parser *P) {
    if (is_ident(P, "not")) {
        spqri_ct_enter(P->S);
        ct_node *u = node(P, N_UNARY);
        u->s = "not";
        u->n = 3;
        P->cur++;
        u->a = negation(P);
        P->S->depth--;
        return u;
    }
    return comparison(P);
}

static ct_node *and_expr(parser *P) {
    ct_node *l = negation(P);
    while (is_ident(P, "and")) {
        const ct_tok *op = &P->t[P->cur++];
        l = binary(P, op, l, negation(P));
    }
    return l;
}

static ct_node *or_expr(parser *P) {
    ct_node *l = and_expr(P);
    while (is_ident(P, "or")) {
        const ct_tok *op = &P->t[P->cur++];
        l = binary(P, op, l, and_expr(P));
    }
    return l;
}

static ct_node *expr(parser *P) {
    spqri_ct_enter(P->S);
    ct_node *a = or_expr(P);
    if (is_ident(P, "if")) {
        P->cur++;
        ct_node *test = or_expr(P);
        if (is_ident(P, "else")) {
            P->cur++;
            ct_node *t = node(P, N_TERNARY);
            t->a = test;
            t->b = a;
            t->c = expr(P);
            a = t;
        } else {
            ct_node *s = node(P, N_SELECT);
            s->a = a;
            s->b = test;
            a = s;
        }
    }
    P->S->depth--;
    return a;
}

/* expr, expr, ... as a tuple (set targets and values, for loop variables) */
static ct_node *expr_sequence(parser *P, int primary_only) {
    ct_node *first = primary_only ? primary(P) : expr(P);
    if (!is(P, T_COMMA)) return first;
    ct_node *t = node(P, N_TUPLE);
    nodes_push(P, &t->body, first);
    while (is(P, T_COMMA)) {
        P->cur++;
        nodes_push(P, &t->body, primary_only ? primary(P) : expr(P));
        if (!is(P, T_COMMA)) break;
    }
    return t;
}

static void block_until(parser *P, ct_nodes *body, const char *a, const char *b, const char *c) {
    while (!(is_stmt(P, a) || (b && is_stmt(P, b)) || (c && is_stmt(P, c)))) {
        if (P->cur >= P->n) {
            char m[64];
            snprintf(m, sizeof m, "expected '{%% %s %%}'", a);
            syntax(P, m);
        }
        nodes_push(P, body, any(P));
    }
}

static ct_node *if_stmt(parser *P) {
    ct_node *x = node(P, N_IF);
    x->a = expr(P);
    expect(P, T_CLOSE_STMT, "expected '%}'");
    block_until(P, &x->body, "elif", "else", "endif");
    if (is_stmt(P, "elif")) {
        P->cur += 2;
        spqri_ct_enter(P->S);
        nodes_push(P, &x->alt, if_stmt(P));
        P->S->depth--;
    } else if (is_stmt(P, "else")) {
        P->cur += 2;
        expect(P, T_CLOSE_STMT, "expected '%}'");
        block_until(P, &x->alt, "endif", NULL, NULL);
    }
    return x;
}

static ct_node *stmt(parser *P) {
    expect(P, T_OPEN_STMT, "expected '{%'");
    if (!is(P, T_IDENT)) syntax(P, "expected a statement name");
    const ct_tok *name = &P->t[P->cur++];
    ct_node *x;
    if (tok_eq(name, "set")) {
        x = node(P, N_SET);
        x->a = expr_sequence(P, 0);
        if (is(P, T_EQUALS)) {
            P->cur++;
            x->b = expr_sequence(P, 0);
        } else {
            expect(P, T_CLOSE_STMT, "expected '%}'");
            block_until(P, &x->body, "endset", NULL, NULL);
            P->cur++;
            expect_ident(P, "endset");
        }
        expect(P, T_CLOSE_STMT, "expected '%}'");
    } else if (tok_eq(name, "if")) {
        x = if_stmt(P);
        expect(P, T_OPEN_STMT, "expected '{%'");
        expect_ident(P, "endif");
        expect(P, T_CLOSE_STMT, "expected '%}'");
    } else if (tok_eq(name, "for")) {
        x = node(P, N_FOR);
        x->a = expr_sequence(P, 1);
        if (x->a->kind != N_IDENT && x->a->kind != N_TUPLE) syntax(P, "expected a loop variable");
        for (int32_t i = 0; x->a->kind == N_TUPLE && i < x->a->body.n; i++)
            if (x->a->body.v[i]->kind != N_IDENT) syntax(P, "expected loop variable names");
        expect_ident(P, "in");
        x->b = expr(P);
        expect(P, T_CLOSE_STMT, "expected '%}'");
        block_until(P, &x->body, "endfor", "else", NULL);
        if (is_stmt(P, "else")) {
            P->cur += 2;
            expect(P, T_CLOSE_STMT, "expected '%}'");
            block_until(P, &x->alt, "endfor", NULL, NULL);
        }
        expect(P, T_OPEN_STMT, "expected '{%'");
        expect_ident(P, "endfor");
        expect(P, T_CLOSE_STMT, "expected '%}'");
    } else if (tok_eq(name, "macro")) {
        x = node(P, N_MACRO);
        ct_node *nm = primary(P);
        if (nm->kind != N_IDENT) syntax(P, "expected a macro name");
        x->s = nm->s;
        x->n = nm->n;
        args(P, &x->alt);
        for (int32_t i = 0; i < x->alt.n; i++)
            if (x->alt.v[i]->kind != N_IDENT && x->alt.v[i]->kind != N_KWARG) syntax(P, "expected parameter names");
        expect(P, T_CLOSE_STMT, "expected '%}'");
        block_until(P, &x->body, "endmacro", NULL, NULL);
        expect(P, T_OPEN_STMT, "expected '{%'");
        expect_ident(P, "endmacro");
        expect(P, T_CLOSE_STMT, "expected '%}'");
    } else if (tok_eq(name, "break") || tok_eq(name, "continue")) {
        x = node(P, tok_eq(name, "break") ? N_BREAK : N_CONTINUE);
        expect(P, T_CLOSE_STMT, "expected '%}'");
    } else {
        char buf[40];
        size_t n = name->n < 32 ? name->n : 32;
        memcpy(buf, name->s, n);
        buf[n] = 0;
        spqri_ct_fail(P->S, SPQR_ERR_FORMAT, "chat template: unknown statement '%s'", buf);
    }
    return x;
}

static ct_node *any(parser *P) {
    spqri_ct_enter(P->S);
    spqri_ct_step(P->S);
    ct_node *x;
    switch (P->t[P->cur].type) {
    case T_COMMENT:
        x = node(P, N_COMMENT);
        P->cur++;
        break;
    case T_TEXT:
        x = node(P, N_TEXT);
        x->s = P->t[P->cur].s;
        x->n = P->t[P->cur].n;
        P->cur++;
        break;
    case T_OPEN_STMT:
        x = stmt(P);
        break;
    case T_OPEN_EXPR:
        P->cur++;
        x = expr(P);
        expect(P, T_CLOSE_EXPR, "expected '}}'");
        break;
    default:
        syntax(P, "unexpected token");
    }
    P->S->depth--;
    return x;
}

ct_node *spqri_ct_parse(ct_state *S, const ct_tok *toks, int32_t n_toks) {
    parser P = {S, toks, n_toks, 0};
    ct_node *prog = node(&P, N_PROGRAM);
    while (P.cur < P.n) nodes_push(&P, &prog->body, any(&P));
    return prog;
}
