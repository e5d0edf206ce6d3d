/* Encode / decode. Encoding pipeline (HF tokenizers semantics):
 *  1. added tokens are matched first (leftmost, longest) and split the text;
 *     they are emitted as their ids and never merged into;
 *  2. each remaining segment is normalized (NFC when the normalizer says
 *     so) and pre-processed: byte-level mode splits it with the stages
 *     (regex, Digits) and maps bytes to GPT-2's printable chars;
 *     SentencePiece mode prepends / substitutes "▁" and maybe splits at "▁";
 *  3. every word goes through BPE (tokenizer_bpe.c). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

#define META "\xE2\x96\x81" /* U+2581 "▁" */

typedef struct enc_ctx {
    const spqr_tokenizer *t;
    tok_ids out;        /* result */
    tok_ids sym;        /* initial symbols of the current word */
    tok_bpe_work w;
    uint8_t *buf; size_t buf_cap; /* scratch for normalized / mapped text */
    uint8_t *buf2; size_t buf2_cap;
    uint8_t *nfc; size_t nfc_cap; /* NFC of the current segment */
    uint8_t *nfc_work; size_t nfc_work_cap; /* bytes of malloc'd memory, used as uint32_t[] */
    spqr_err *err;
} enc_ctx;

static spqr_status grow(uint8_t **b, size_t *cap, size_t need, spqr_err *err) {
    if (need <= *cap) return SPQR_OK;
    size_t nc = need < 256 ? 256 : need + need / 2;
    uint8_t *p = realloc(*b, nc);
    if (!p) return spqr_err_set(err, SPQR_ERR_NOMEM, "tokenizer: out of memory (%zu bytes)", nc);
    *b = p; *cap = nc;
    return SPQR_OK;
}

/* Unknown character: <unk> (consecutive ones fused if fuse_unk), or dropped
 * when the model has no unk token, as HF's BPE does. */
static spqr_status push_unk(enc_ctx *c) {
    const spqr_tokenizer *t = c->t;
    if (t->unk_id < 0) return SPQR_OK;
    if (t->fuse_unk && c->sym.n > 0 && c->sym.v[c->sym.n - 1] == t->unk_id) return SPQR_OK;
    return spqri_tok_ids_push(&c->sym, t->unk_id, c->err);
}

/* ignore_merges: a word that is itself in the vocab is emitted whole. */
static int whole_word(enc_ctx *c, const uint8_t *s, size_t n) {
    if (!c->t->ignore_merges) return -1;
    return spqri_tok_strmap_get(c->t, &c->t->vocab, s, n);
}

/* One byte-level word: raw bytes s[0..n). */
static spqr_status bl_word(enc_ctx *c, const uint8_t *s, size_t n) {
    const spqr_tokenizer *t = c->t;
    spqr_status st;
    if (t->ignore_merges) {
        if ((st = grow(&c->buf2, &c->buf2_cap, 2 * n, c->err))) return st;
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            memcpy(c->buf2 + m, t->bmap[s[i]], t->bmap_len[s[i]]);
            m += t->bmap_len[s[i]];
        }
        int32_t id = whole_word(c, c->buf2, m);
        if (id >= 0) return spqri_tok_ids_push(&c->out, id, c->err);
    }
    c->sym.n = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_sym[s[i]];
        st = id >= 0 ? spqri_tok_ids_push(&c->sym, id, c->err) : push_unk(c);
        if (st) return st;
    }
    return spqri_tok_bpe_merge(t, c->sym.v, c->sym.n, &c->w, &c->out, c->err);
}

/* Applies stage k to the piece s[0..n) (n >= 1), then the next stages, then
 * BPE. ByteLevel's add_prefix_space acts where ByteLevel stands in the
 * Sequence: on each piece the stages before it produced, as in HF. Only one
 * stage prepends, so c->buf is not reused below it (bl_word uses buf2). */
static spqr_status bl_stage(enc_ctx *c, int k, const uint8_t *s, size_t n) {
    const spqr_tokenizer *t = c->t;
    if (k == t->prefix_stage && t->add_prefix_space && s[0] != ' ') {
        spqr_status st = grow(&c->buf, &c->buf_cap, n + 1, c->err);
        if (st) return st;
        c->buf[0] = ' ';
        memcpy(c->buf + 1, s, n);
        s = c->buf; n++;
    }
    if (k >= t->n_stages || k >= TOK_MAX_STAGES) return bl_word(c, s, n);
    for (size_t i = 0; i < n;) {
        size_t l = t->stage[k] == TOK_PRE_GPT2    ? spqri_tok_pretok_gpt2(s + i, n - i)
                   : t->stage[k] == TOK_PRE_DIGITS ? spqri_tok_pretok_digits(s + i, n - i, t->stage_digits[k])
                                                   : spqri_tok_pretok_llama3(s + i, n - i, t->stage_digits[k]);
        spqr_status st = bl_stage(c, k + 1, s + i, l);
        if (st) return st;
        i += l;
    }
    return SPQR_OK;
}

/* One SentencePiece-style word (already normalized). */
static spqr_status sp_word(enc_ctx *c, const uint8_t *s, size_t n) {
    const spqr_tokenizer *t = c->t;
    int32_t whole = whole_word(c, s, n);
    if (whole >= 0) return spqri_tok_ids_push(&c->out, whole, c->err);
    c->sym.n = 0;
    spqr_status st;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = spqr_utf8_next(s + i, n - i, &cp); /* an invalid byte is a 1-byte char no vocab entry matches */
        int32_t id = cp == SPQR_UTF8_INVALID ? -1 : spqri_tok_strmap_get(t, &t->vocab, s + i, l);
        if (id >= 0) st = spqri_tok_ids_push(&c->sym, id, c->err);
        else {
            int ok = t->byte_fallback;
            for (size_t j = 0; ok && j < l; j++) ok = t->byte_sym[s[i + j]] >= 0;
            if (ok) {
                st = SPQR_OK;
                for (size_t j = 0; !st && j < l; j++) st = spqri_tok_ids_push(&c->sym, t->byte_sym[s[i + j]], c->err);
            } else
                st = push_unk(c);
        }
        if (st) return st;
        i += l;
    }
    return spqri_tok_bpe_merge(t, c->sym.v, c->sym.n, &c->w, &c->out, c->err);
}

static spqr_status sp_segment(enc_ctx *c, const uint8_t *s, size_t n, int at_start) {
    const spqr_tokenizer *t = c->t;
    /* worst case every byte is a space -> 3 bytes, plus the prefix */
    spqr_status st = grow(&c->buf, &c->buf_cap, 3 * n + 3, c->err);
    if (st) return st;
    uint8_t *d = c->buf;
    size_t m = 0;
    int starts_meta = (n >= 1 && s[0] == ' ' && t->replace_space) || (n >= 3 && !memcmp(s, META, 3));
    int prepend = t->prepend == TOK_PREPEND_ALWAYS ||
                  (t->prepend == TOK_PREPEND_META_ALWAYS && !starts_meta) ||
                  (t->prepend == TOK_PREPEND_META_FIRST && !starts_meta && at_start);
    if (prepend) { memcpy(d, META, 3); m = 3; }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ' && t->replace_space) { memcpy(d + m, META, 3); m += 3; }
        else d[m++] = s[i];
    }
    if (!t->meta_split) return sp_word(c, d, m);
    /* Metaspace split: each "▁" starts a new word (MergedWithNext). */
    size_t start = 0;
    for (size_t i = 3; i + 3 <= m; i++)
        if (!memcmp(d + i, META, 3)) {
            if ((st = sp_word(c, d + start, i - start))) return st;
            start = i;
        }
    return sp_word(c, d + start, m - start);
}

static spqr_status segment(enc_ctx *c, const uint8_t *s, size_t n, int at_start) {
    if (n == 0) return SPQR_OK;
    if (c->t->nfc && spqr_unicode_nfc_may_change(s, n)) {
        /* encode caps len at INT32_MAX / 4, so the products fit a 64-bit size_t */
        if (n > SIZE_MAX / 16 - 2) return spqr_err_set(c->err, SPQR_ERR_NOMEM, "tokenizer: segment too long for NFC");
        spqr_status st = grow(&c->nfc, &c->nfc_cap, SPQR_NFC_OUT_CAP(n), c->err);
        if (!st) st = grow(&c->nfc_work, &c->nfc_work_cap, SPQR_NFC_WORK_CAP(n) * sizeof(uint32_t), c->err);
        if (st) return st;
        n = spqr_unicode_nfc(s, n, (uint32_t *)(void *)c->nfc_work, c->nfc);
        s = c->nfc;
    }
    return c->t->mode == TOK_BYTELEVEL ? bl_stage(c, 0, s, n) : sp_segment(c, s, n, at_start);
}

spqr_status spqr_tokenizer_encode(const spqr_tokenizer *t, const char *text, size_t len, int add_bos,
                                  int32_t **ids, int32_t *n_ids, spqr_err *err) {
    if (!t || !ids || !n_ids || (!text && len))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "tokenizer: NULL argument to encode");
    *ids = NULL; *n_ids = 0;
    if (len > (size_t)INT32_MAX / 4)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "tokenizer: text of %zu bytes is too long", len);
    enc_ctx c;
    memset(&c, 0, sizeof c);
    c.t = t; c.err = err;
    const uint8_t *s = (const uint8_t *)text;
    spqr_status st = SPQR_OK;
    if (add_bos && t->bos_id >= 0) st = spqri_tok_ids_push(&c.out, t->bos_id, err);
    size_t seg = 0;
    for (size_t i = 0; !st && i < len;) {
        int32_t id;
        size_t l = spqri_tok_trie_match(t, s + i, len - i, &id);
        if (l == 0) { i++; continue; }
        st = segment(&c, s + seg, i - seg, seg == 0);
        if (!st) st = spqri_tok_ids_push(&c.out, id, err);
        i += l;
        seg = i;
    }
    if (!st) st = segment(&c, s + seg, len - seg, seg == 0);
    if (!st && !c.out.v) st = spqri_tok_ids_push(&c.out, 0, err), c.out.n = 0; /* never return NULL */
    free(c.sym.v); free(c.buf); free(c.buf2); free(c.nfc); free(c.nfc_work);
    spqri_tok_bpe_work_free(&c.w);
    if (st) { free(c.out.v); return st; }
    *ids = c.out.v;
    *n_ids = (int32_t)c.out.n;
    return SPQR_OK;
}

/* Bytes of id after prev: the decoded token, minus the decoder's leading
 * Strip at the start of the text. NULL for an invalid id. */
static const uint8_t *piece_bytes(const spqr_tokenizer *t, int32_t prev, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_ids || t->dec_len[id] < 0) return NULL;
    const uint8_t *p = t->dec_arena + t->dec_off[id];
    size_t n = (size_t)t->dec_len[id];
    if (prev < 0)
        for (int k = 0; k < t->strip_start && n > 0 && p[0] == ' '; k++) { p++; n--; }
    *len = n;
    return p;
}

int32_t spqr_tokenizer_piece(const spqr_tokenizer *t, int32_t prev, int32_t id, char *buf, int32_t cap) {
    if (!t) return -1;
    size_t n;
    const uint8_t *p = piece_bytes(t, prev, id, &n);
    if (!p) return -1;
    if (!buf || cap <= 0) return 0;
    if (n > (size_t)cap) n = (size_t)cap;
    memcpy(buf, p, n);
    return (int32_t)n;
}

spqr_status spqr_tokenizer_decode(const spqr_tokenizer *t, const int32_t *ids, int32_t n, char **text,
                                  size_t *len, spqr_err *err) {
    if (!t || !text || !len || n < 0 || (!ids && n > 0))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "tokenizer: bad argument to decode");
    *text = NULL; *len = 0;
    size_t total = 0, l;
    for (int32_t i = 0; i < n; i++) {
        if (!piece_bytes(t, i ? ids[i - 1] : -1, ids[i], &l))
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "tokenizer: invalid token id %d at position %d (vocab size %d)",
                                ids[i], i, t->n_ids);
        total += l;
    }
    char *out = malloc(total + 1);
    if (!out) return spqr_err_set(err, SPQR_ERR_NOMEM, "tokenizer: out of memory (%zu bytes)", total + 1);
    size_t m = 0;
    for (int32_t i = 0; i < n; i++) {
        const uint8_t *p = piece_bytes(t, i ? ids[i - 1] : -1, ids[i], &l);
        memcpy(out + m, p, l);
        m += l;
    }
    out[m] = 0;
    *text = out;
    *len = m;
    return SPQR_OK;
}
