/* BPE merging of one word, the way HF tokenizers does it: a doubly linked
 * list of symbols and a min-heap of candidate merges ordered by (rank,
 * position). Popping the lowest rank, leftmost first, and skipping stale
 * entries gives O(n log n) per word, so even a 1 MB SentencePiece "word"
 * (no pre-tokenizer splits it) is fine. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

typedef struct tok_heap_item {
    int32_t rank, pos;      /* pos: index of the left symbol */
    int32_t left, right;    /* the ids it was built for (to detect stale entries) */
} tok_heap_item;

spqr_status spqri_tok_ids_push(tok_ids *a, int32_t id, spqr_err *err) {
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 64;
        int32_t *p = realloc(a->v, nc * sizeof(int32_t));
        if (!p) return spqr_err_set(err, SPQR_ERR_NOMEM, "tokenizer: out of memory (ids)");
        a->v = p; a->cap = nc;
    }
    a->v[a->n++] = id;
    return SPQR_OK;
}

void spqri_tok_bpe_work_free(tok_bpe_work *w) {
    free(w->id); free(w->prev); free(w->next); free(w->heap);
    memset(w, 0, sizeof(*w));
}

static int item_less(const tok_heap_item *a, const tok_heap_item *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(tok_heap_item *h, size_t *n, tok_heap_item it) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!item_less(&it, &h[p])) break;
        h[i] = h[p]; i = p;
    }
    h[i] = it;
}

static tok_heap_item heap_pop(tok_heap_item *h, size_t *n) {
    tok_heap_item top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && item_less(&h[c + 1], &h[c])) c++;
        if (!item_less(&h[c], &last)) break;
        h[i] = h[c]; i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

static void try_pair(const spqr_tokenizer *t, tok_bpe_work *w, size_t *hn, int32_t pos) {
    int32_t nx = w->next[pos];
    if (nx < 0) return;
    const tok_merge_entry *e = spqri_tok_mergemap_get(&t->merges, w->id[pos], w->id[nx]);
    if (!e) return;
    tok_heap_item it = {e->rank, pos, w->id[pos], w->id[nx]};
    heap_push(w->heap, hn, it);
}

spqr_status spqri_tok_bpe_merge(const spqr_tokenizer *t, const int32_t *sym, size_t n, tok_bpe_work *w,
                          tok_ids *out, spqr_err *err) {
    if (n == 0) return SPQR_OK;
    if (n > (size_t)INT32_MAX / 4)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "tokenizer: word of %zu symbols is too long", n);
    /* Each merge removes a symbol and pushes at most 2 items: heap <= 3n. */
    if (w->cap < n) {
        size_t nc = n < 256 ? 256 : n;
        int32_t *a = realloc(w->id, nc * sizeof(int32_t));
        if (a) w->id = a;
        int32_t *b = realloc(w->prev, nc * sizeof(int32_t));
        if (b) w->prev = b;
        int32_t *c = realloc(w->next, nc * sizeof(int32_t));
        if (c) w->next = c;
        tok_heap_item *h = realloc(w->heap, 3 * nc * sizeof(tok_heap_item));
        if (h) w->heap = h;
        if (!a || !b || !c || !h) return spqr_err_set(err, SPQR_ERR_NOMEM, "tokenizer: out of memory (bpe)");
        w->cap = nc;
    }
    for (size_t i = 0; i < n; i++) {
        w->id[i] = sym[i];
        w->prev[i] = (int32_t)i - 1;
        w->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    size_t hn = 0;
    if (t->merges.e && n > 1)
        for (size_t i = 0; i + 1 < n; i++) try_pair(t, w, &hn, (int32_t)i);

    while (hn > 0) {
        tok_heap_item it = heap_pop(w->heap, &hn);
        int32_t p = it.pos;
        if (w->id[p] != it.left) continue;           /* left symbol changed or died */
        int32_t q = w->next[p];
        if (q < 0 || w->id[q] != it.right) continue; /* right neighbour changed */
        const tok_merge_entry *e = spqri_tok_mergemap_get(&t->merges, it.left, it.right);
        w->id[p] = e->id;
        w->id[q] = -2;                               /* dead */
        w->next[p] = w->next[q];
        if (w->next[q] >= 0) w->prev[w->next[q]] = p;
        if (w->prev[p] >= 0) try_pair(t, w, &hn, w->prev[p]);
        try_pair(t, w, &hn, p);
    }
    for (int32_t i = 0; i >= 0; i = w->next[i]) {
        spqr_status st = spqri_tok_ids_push(out, w->id[i], err);
        if (st) return st;
    }
    return SPQR_OK;
}
