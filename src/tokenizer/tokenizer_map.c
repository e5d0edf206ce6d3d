/* Hash maps (token string -> id, merge pair -> rank) and the added-token trie. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

uint32_t spqri_tok_hash(const uint8_t *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) { h ^= s[i]; h *= 16777619u; }
    return h;
}

static uint32_t pow2_at_least(uint32_t n) {
    uint32_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

spqr_status spqri_tok_strmap_init(tok_strmap *m, uint32_t n_keys, spqr_err *err) {
    m->cap = pow2_at_least(n_keys * 2 + 1);
    m->slot = malloc((size_t)m->cap * sizeof(int32_t));
    if (!m->slot) return spqr_err_set(err, SPQR_ERR_NOMEM, "tokenizer: out of memory (vocab map)");
    memset(m->slot, 0xFF, (size_t)m->cap * sizeof(int32_t));
    return SPQR_OK;
}

int32_t spqri_tok_strmap_get(const spqr_tokenizer *t, const tok_strmap *m, const uint8_t *s, size_t n) {
    if (!m->slot) return -1;
    uint32_t mask = m->cap - 1, i = spqri_tok_hash(s, n) & mask;
    for (;;) {
        int32_t id = m->slot[i];
        if (id < 0) return -1;
        if ((size_t)t->str_len[id] == n && memcmp(t->str_arena + t->str_off[id], s, n) == 0) return id;
        i = (i + 1) & mask;
    }
}

int spqri_tok_strmap_put(const spqr_tokenizer *t, tok_strmap *m, int32_t id) {
    const uint8_t *s = (const uint8_t *)t->str_arena + t->str_off[id];
    size_t n = (size_t)t->str_len[id];
    uint32_t mask = m->cap - 1, i = spqri_tok_hash(s, n) & mask;
    for (;;) {
        int32_t o = m->slot[i];
        if (o < 0) { m->slot[i] = id; return 0; }
        if ((size_t)t->str_len[o] == n && memcmp(t->str_arena + t->str_off[o], s, n) == 0) return 1;
        i = (i + 1) & mask;
    }
}

static uint32_t mix64(uint64_t k) {
    k ^= k >> 33; k *= 0xff51afd7ed558ccdULL; k ^= k >> 33;
    return (uint32_t)k;
}

spqr_status spqri_tok_mergemap_init(tok_mergemap *m, uint32_t n_keys, spqr_err *err) {
    m->cap = pow2_at_least(n_keys * 2 + 1);
    m->e = malloc((size_t)m->cap * sizeof(tok_merge_entry));
    if (!m->e) return spqr_err_set(err, SPQR_ERR_NOMEM, "tokenizer: out of memory (merge map)");
    for (uint32_t i = 0; i < m->cap; i++) m->e[i].key = UINT64_MAX;
    return SPQR_OK;
}

/* A repeated pair takes the later rank, as HF's HashMap collect does. */
void spqri_tok_mergemap_put(tok_mergemap *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t mask = m->cap - 1, i = mix64(key) & mask;
    while (m->e[i].key != UINT64_MAX && m->e[i].key != key) i = (i + 1) & mask;
    m->e[i].key = key; m->e[i].rank = rank; m->e[i].id = id;
}

const tok_merge_entry *spqri_tok_mergemap_get(const tok_mergemap *m, int32_t a, int32_t b) {
    if (!m->e) return NULL;
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t mask = m->cap - 1, i = mix64(key) & mask;
    for (;;) {
        if (m->e[i].key == key) return &m->e[i];
        if (m->e[i].key == UINT64_MAX) return NULL;
        i = (i + 1) & mask;
    }
}

static int32_t trie_new_node(spqr_tokenizer *t, uint8_t byte) {
    if (t->n_trie == t->cap_trie) {
        int32_t nc = t->cap_trie ? t->cap_trie * 2 : 64;
        tok_trie_node *p = realloc(t->trie, (size_t)nc * sizeof(*p));
        if (!p) return -1;
        t->trie = p; t->cap_trie = nc;
    }
    tok_trie_node *nd = &t->trie[t->n_trie];
    nd->child = nd->sibling = nd->id = -1;
    nd->byte = byte;
    return t->n_trie++;
}

/* Node 0 is the root. A later token with the same content replaces the earlier. */
spqr_status spqri_tok_trie_add(spqr_tokenizer *t, const uint8_t *s, size_t n, int32_t id, spqr_err *err) {
    if (n == 0) return SPQR_OK;
    if (t->n_trie == 0 && trie_new_node(t, 0) < 0) goto nomem;
    int32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t c = t->trie[node].child;
        while (c >= 0 && t->trie[c].byte != s[i]) c = t->trie[c].sibling;
        if (c < 0) {
            c = trie_new_node(t, s[i]);
            if (c < 0) goto nomem;
            t->trie[c].sibling = t->trie[node].child;
            t->trie[node].child = c;
        }
        node = c;
    }
    t->trie[node].id = id;
    t->trie_first[s[0]] = 1;
    return SPQR_OK;
nomem:
    return spqr_err_set(err, SPQR_ERR_NOMEM, "tokenizer: out of memory (added tokens)");
}

size_t spqri_tok_trie_match(const spqr_tokenizer *t, const uint8_t *s, size_t n, int32_t *id) {
    if (t->n_trie == 0 || !t->trie_first[s[0]]) return 0;
    size_t best = 0;
    int32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t c = t->trie[node].child;
        while (c >= 0 && t->trie[c].byte != s[i]) c = t->trie[c].sibling;
        if (c < 0) break;
        node = c;
        if (t->trie[node].id >= 0) { best = i + 1; *id = t->trie[node].id; }
    }
    return best;
}
