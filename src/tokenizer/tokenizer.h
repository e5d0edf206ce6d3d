/* Internal layout of spqr_tokenizer (a Hugging Face tokenizer.json, BPE
 * model) shared by the tokenizer_*.c files. See docs/tokenizer.md. */
#ifndef SPQR_TOKENIZER_TOKENIZER_H
#define SPQR_TOKENIZER_TOKENIZER_H

#include "spqr.h"

/* Hard limits that keep hostile files from asking for absurd allocations. */
#define TOK_MAX_ID (1 << 22)          /* ids must be < 4M (largest real vocabs: ~256K) */
#define TOK_MAX_FILE ((size_t)1 << 30) /* tokenizer.json up to 1 GiB */
#define TOK_MAX_STAGES 4               /* pre-tokenizer regex stages */
#define TOK_ADDED_MAX 1024             /* bytes per added token: bounds encode's work per text byte */

typedef enum tok_mode {
    TOK_BYTELEVEL = 0,    /* GPT-2 / Llama-3 / Qwen: bytes -> printable chars */
    TOK_SENTENCEPIECE = 1 /* Llama-2 / Mistral: "▁" for spaces, <0xNN> byte fallback */
} tok_mode;

typedef enum tok_pretok {
    TOK_PRE_GPT2 = 1,   /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    TOK_PRE_LLAMA3 = 2, /* (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,k}| ?[^\s\p{L}\p{N}]+[\r\n]*|... */
    TOK_PRE_DIGITS = 3, /* Digits pre-tokenizer: numeric characters apart from the rest */
} tok_pretok;

typedef enum tok_prepend {
    TOK_PREPEND_NONE = 0,
    TOK_PREPEND_ALWAYS = 1,     /* Prepend("▁") normalizer: every non-empty segment */
    TOK_PREPEND_META_ALWAYS = 2,/* Metaspace always: unless it already starts with "▁" */
    TOK_PREPEND_META_FIRST = 3  /* Metaspace first: only the segment at offset 0 */
} tok_prepend;

/* Open-addressing hash: token string -> id. Keys point into the token arena. */
typedef struct tok_strmap {
    uint32_t cap;        /* power of two */
    int32_t *slot;       /* [cap] id or -1 */
} tok_strmap;

/* Open-addressing hash: (left id, right id) -> (rank, merged id). */
typedef struct tok_merge_entry {
    uint64_t key;        /* left << 32 | right; UINT64_MAX = empty */
    int32_t rank, id;
} tok_merge_entry;

typedef struct tok_mergemap {
    uint32_t cap;
    tok_merge_entry *e;
} tok_mergemap;

/* Byte trie of the added tokens' contents, for leftmost-longest matching. */
typedef struct tok_trie_node {
    int32_t child, sibling;  /* first child / next sibling, -1 = none */
    int32_t id;              /* token ending here, -1 = none */
    uint8_t byte;
} tok_trie_node;

struct spqr_tokenizer {
    tok_mode mode;
    int32_t n_ids;              /* vocab_size = largest id + 1 */

    /* Per id: the token text from the JSON (vocab or added token) and the
     * bytes it decodes to; both as offset/length into arenas. Gaps have
     * str_len = dec_len = -1. */
    char *str_arena;   int64_t *str_off;  int32_t *str_len;
    uint8_t *dec_arena; int64_t *dec_off; int32_t *dec_len;
    uint8_t *is_added;          /* [n_ids] 1 for added_tokens */

    tok_strmap vocab;           /* model vocab only (not added tokens) */
    tok_mergemap merges;
    int32_t n_merges;

    tok_trie_node *trie; int32_t n_trie, cap_trie;
    uint8_t trie_first[256];    /* 1 if some added token starts with this byte */

    int32_t bos_id, eos_id, unk_id;
    int add_bos;                /* plain text gets bos: the post-processor's template starts with it, or tokenizer_config.json's add_bos_token */
    int byte_fallback, fuse_unk, ignore_merges;
    int32_t byte_sym[256];      /* BYTELEVEL: id of the mapped char of byte b; SP: id of <0xNN>; -1 if absent */

    int n_stages;               /* BYTELEVEL: regex splits applied in order */
    tok_pretok stage[TOK_MAX_STAGES];
    int stage_digits[TOK_MAX_STAGES]; /* LLAMA3: max digits per number chunk (3 Llama-3, 1 Qwen2);
                                         DIGITS: 1 = each digit alone, 0 = runs of digits */
    int add_prefix_space;       /* BYTELEVEL: " " before each piece that reaches the ByteLevel stage */
    int prefix_stage;           /* BYTELEVEL: index of that stage (the stages before it split first) */

    tok_prepend prepend;        /* SENTENCEPIECE */
    int replace_space;          /* SENTENCEPIECE: " " -> "▁" */
    int meta_split;             /* SENTENCEPIECE: Metaspace(split=true) splits before each "▁" */
    int strip_start;            /* decoder Strip: leading spaces dropped from the text */
    int nfc;                    /* NFC normalizer: each segment is normalized before pre-tokenizing */

    uint8_t bmap[256][2];       /* BYTELEVEL: UTF-8 of the printable char of byte b */
    uint8_t bmap_len[256];
};

/* --- tokenizer_map.c */
uint32_t spqri_tok_hash(const uint8_t *s, size_t n);
spqr_status spqri_tok_strmap_init(tok_strmap *m, uint32_t n_keys, spqr_err *err);
/* Returns -1 if absent. */
int32_t spqri_tok_strmap_get(const spqr_tokenizer *t, const tok_strmap *m, const uint8_t *s, size_t n);
/* Inserts id (whose string is already in the arena); returns 0, or 1 if the
 * string is already present (the map is left unchanged). */
int spqri_tok_strmap_put(const spqr_tokenizer *t, tok_strmap *m, int32_t id);
spqr_status spqri_tok_mergemap_init(tok_mergemap *m, uint32_t n_keys, spqr_err *err);
void spqri_tok_mergemap_put(tok_mergemap *m, int32_t a, int32_t b, int32_t rank, int32_t id);
const tok_merge_entry *spqri_tok_mergemap_get(const tok_mergemap *m, int32_t a, int32_t b);
spqr_status spqri_tok_trie_add(spqr_tokenizer *t, const uint8_t *s, size_t n, int32_t id, spqr_err *err);
/* Length of the longest added token at s[0..n) (0 if none), its id in *id. */
size_t spqri_tok_trie_match(const spqr_tokenizer *t, const uint8_t *s, size_t n, int32_t *id);

/* --- tokenizer_pretok.c: length of the regex match starting at s[0..n) (n >= 1, always >= 1). */
size_t spqri_tok_pretok_gpt2(const uint8_t *s, size_t n);
size_t spqri_tok_pretok_llama3(const uint8_t *s, size_t n, int max_digits);
/* Digits: a numeric character (\p{N}) alone, or a run of them when
 * !individual; else the run of non-numeric characters up to the next one. */
size_t spqri_tok_pretok_digits(const uint8_t *s, size_t n, int individual);

/* --- tokenizer_bpe.c */
typedef struct tok_ids {
    int32_t *v; size_t n, cap;
} tok_ids;
spqr_status spqri_tok_ids_push(tok_ids *a, int32_t id, spqr_err *err);

/* Scratch space reused across words of one encode call. */
typedef struct tok_bpe_work {
    int32_t *id, *prev, *next;  /* symbol list */
    struct tok_heap_item *heap;
    size_t cap, heap_cap;
} tok_bpe_work;
void spqri_tok_bpe_work_free(tok_bpe_work *w);
/* Merges the n symbols sym[] by rank (lowest first, leftmost on ties, like
 * HF's BPE) and appends the resulting ids to out. O(n log n). */
spqr_status spqri_tok_bpe_merge(const spqr_tokenizer *t, const int32_t *sym, size_t n, tok_bpe_work *w,
                          tok_ids *out, spqr_err *err);

/* --- tokenizer_bytes.c: GPT-2 byte <-> printable unicode character. */
uint32_t spqri_tok_byte_to_cp(uint8_t b);
/* Returns the byte, or -1 if cp is not in the table. */
int spqri_tok_cp_to_byte(uint32_t cp);

/* --- tokenizer_load.c: lets the model loader override ids from config.json
 * (ids outside the vocab are ignored; -1 clears). */
void spqr_tokenizer_set_special_ids(spqr_tokenizer *t, int32_t bos_id, int32_t eos_id);

/* Applies tokenizer_config.json (JSON text of len bytes): its bos_token /
 * eos_token (a string or {"content": ...}) become bos_id / eos_id, null
 * clears one, an absent key leaves it. A name that is not an added token
 * or vocab entry is SPQR_ERR_FORMAT (t unchanged). */
spqr_status spqr_tokenizer_apply_config(spqr_tokenizer *t, const char *json, size_t len, spqr_err *err);

#endif
