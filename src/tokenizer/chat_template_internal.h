/* Shared by chat_template_*.c: the render's arena, tokens, AST and values.
 * Everything a render allocates lives in one arena freed at the end, so an
 * error can unwind with longjmp from any depth without leaking. */
#ifndef SPQR_TOKENIZER_CHAT_TEMPLATE_INTERNAL_H
#define SPQR_TOKENIZER_CHAT_TEMPLATE_INTERNAL_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/chat_template.h"

/* ---- arena and error unwinding ---------------------------------------- */

typedef struct ct_chunk ct_chunk;

typedef struct ct_state {
    ct_chunk *chunks;
    size_t used, budget;           /* bytes handed out / allowed */
    jmp_buf jmp;
    spqr_status code;
    char msg[256];
    ct_limits lim;
    int64_t steps;
    int32_t depth;
    const ct_context *ctx;
    /* output */
    char *out;
    size_t out_len, out_cap;
} ct_state;

void *spqri_ct_alloc(ct_state *S, size_t n);
char *ct_strndup(ct_state *S, const char *s, size_t n);
_Noreturn void spqri_ct_fail(ct_state *S, spqr_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void spqri_ct_enter(ct_state *S); /* depth + 1, fails past the limit */
void spqri_ct_step(ct_state *S);  /* one unit of work, fails past the limit */

/* ---- tokens ----------------------------------------------------------- */

typedef enum ct_tok_type {
    T_TEXT, T_NUMBER, T_STRING, T_IDENT, T_EQUALS, T_LPAREN, T_RPAREN, T_OPEN_STMT, T_CLOSE_STMT, T_OPEN_EXPR,
    T_CLOSE_EXPR, T_LBRACKET, T_RBRACKET, T_LBRACE, T_RBRACE, T_COMMA, T_DOT, T_COLON, T_PIPE, T_ADD, T_MUL, T_POW,
    T_CMP, T_UNARY, T_COMMENT
} ct_tok_type;

typedef struct ct_tok {
    ct_tok_type type;
    const char *s; /* value (string literals unescaped) */
    size_t n;
} ct_tok;

/* Tokenizes tmpl as @huggingface/jinja does with trim_blocks and lstrip_blocks. */
void spqri_ct_lex(ct_state *S, const char *tmpl, size_t len, ct_tok **toks, int32_t *n_toks);

/* ---- AST -------------------------------------------------------------- */

typedef enum ct_node_kind {
    /* statements */
    N_PROGRAM, N_TEXT, N_IF, N_FOR, N_SET, N_BREAK, N_CONTINUE, N_COMMENT, N_MACRO,
    /* expressions */
    N_STR, N_INT, N_FLOAT, N_IDENT, N_ARRAY, N_TUPLE, N_OBJECT, N_MEMBER, N_SLICE, N_CALL, N_KWARG, N_BINARY,
    N_UNARY, N_FILTER, N_TEST, N_TERNARY, N_SELECT
} ct_node_kind;

typedef struct ct_node ct_node;

typedef struct ct_nodes {
    ct_node **v;
    int32_t n;
} ct_nodes;

struct ct_node {
    ct_node_kind kind;
    const char *s; /* N_STR, N_TEXT, N_IDENT, N_COMMENT, operator names */
    size_t n;
    int64_t i;     /* N_INT; N_MEMBER: computed; N_TEST: negate */
    double f;      /* N_FLOAT */
    ct_node *a, *b, *c; /* operands: see the parser */
    ct_nodes body, alt; /* blocks, argument and element lists; N_OBJECT: keys in body, values in alt */
};

ct_node *spqri_ct_parse(ct_state *S, const ct_tok *toks, int32_t n_toks);

/* ---- values ----------------------------------------------------------- */

typedef enum ct_kind {
    V_UNDEF, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_LIST, V_DICT, V_NS, V_FUNC, V_KWARGS, V_MACRO
} ct_kind;

typedef struct ct_str {
    size_t n;
    char s[]; /* NUL-terminated */
} ct_str;

typedef struct ct_list ct_list;
typedef struct ct_dict ct_dict;

typedef enum ct_func {
    F_RAISE, F_RANGE, F_NAMESPACE, F_STRFTIME,
    /* bound methods: self is the receiver */
    M_UPPER, M_LOWER, M_STRIP, M_LSTRIP, M_RSTRIP, M_TITLE, M_CAPITALIZE, M_STARTSWITH, M_ENDSWITH, M_SPLIT, M_REPLACE,
    M_GET, M_ITEMS, M_KEYS, M_VALUES
} ct_func;

typedef struct ct_val {
    ct_kind k;
    union {
        int b;
        int64_t i;
        double f;
        ct_str *s;
        ct_list *l;
        ct_dict *d;     /* V_DICT, V_NS, V_KWARGS */
        const ct_node *m; /* V_MACRO */
    };
    ct_func fn;           /* V_FUNC */
    struct ct_val *self;  /* V_FUNC method receiver */
} ct_val;

struct ct_list {
    int32_t n, cap;
    ct_val *v;
};

struct ct_dict {
    int32_t n, cap;
    ct_str **key;
    ct_val *v;
};

static inline ct_val ct_undef(void) { ct_val v = {.k = V_UNDEF}; return v; }
static inline ct_val ct_none(void) { ct_val v = {.k = V_NONE}; return v; }
static inline ct_val ct_bool(int b) { ct_val v = {.k = V_BOOL, .b = !!b}; return v; }
static inline ct_val ct_int(int64_t i) { ct_val v = {.k = V_INT, .i = i}; return v; }
static inline ct_val ct_float(double f) { ct_val v = {.k = V_FLOAT, .f = f}; return v; }

ct_str *spqri_ct_mkstr(ct_state *S, const char *s, size_t n);
ct_val spqri_ct_strval(ct_state *S, const char *s, size_t n);
ct_val spqri_ct_strv(ct_str *s);
ct_list *spqri_ct_list_new(ct_state *S, int32_t cap);
void spqri_ct_list_push(ct_state *S, ct_list *l, ct_val v);
ct_dict *spqri_ct_dict_new(ct_state *S);
void spqri_ct_dict_set(ct_state *S, ct_dict *d, const char *k, size_t n, ct_val v);
ct_val *spqri_ct_dict_get(const ct_dict *d, const char *k, size_t n); /* NULL if absent */

int spqri_ct_truthy(ct_val v);
int spqri_ct_equal(ct_val a, ct_val b);
const char *spqri_ct_kind_name(ct_kind k);
/* The text {{ v }} renders (Python-like: numbers, JSON for containers). */
ct_str *spqri_ct_to_string(ct_state *S, ct_val v);
/* JSON as the tojson filter writes it; indent < 0: none. */
ct_str *spqri_ct_to_json(ct_state *S, ct_val v, int indent, int depth);

/* UTF-8 code point helpers for length, indexing and slicing. */
int64_t spqri_ct_utf8_len(const char *s, size_t n);
size_t spqri_ct_utf8_offset(const char *s, size_t n, int64_t cp); /* byte offset of code point cp (clamped) */
int spqri_ct_is_space_at(const char *s, size_t n, size_t i, size_t *w); /* JS \s at byte i; *w its width */

/* ---- builtins (chat_template_builtins.c) ------------------------------ */

/* s.name (a method or property of a value), or undefined. */
ct_val spqri_ct_member_builtin(ct_state *S, ct_val obj, const char *name, size_t n);
ct_val spqri_ct_call_func(ct_state *S, ct_val fn, ct_val *args, int32_t n_args, ct_dict *kwargs);
/* value | name(args): filter applied (args evaluated already). */
ct_val spqri_ct_apply_filter(ct_state *S, ct_val v, const char *name, size_t n, ct_val *args, int32_t n_args,
                       ct_dict *kwargs);
int spqri_ct_apply_test(ct_state *S, ct_val v, const char *name, size_t n);

/* ---- evaluation (chat_template_eval.c) -------------------------------- */

void spqri_ct_eval_program(ct_state *S, const ct_node *prog);

#endif
