/* Tokenizer properties shared by fuzz_tokenizer.c and fuzz_tokenizer_load.c
 * (docs/tokenizer.md, "Guarantees"). */
#ifndef SPQR_FUZZ_TOK_PROPS_H
#define SPQR_FUZZ_TOK_PROPS_H

#define _GNU_SOURCE
#include <string.h>

#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

/* What decode(encode(x)) must give, or -1 when the guarantees promise
 * nothing for this tokenizer / text; *skip = leading bytes of x dropped. */
static int tok_roundtrip_expected(const spqr_tokenizer *t, const uint8_t *x, size_t n, size_t *skip) {
    *skip = 0;
    for (int b = 0; b < 256; b++)
        if (t->byte_sym[b] < 0) return -1; /* a byte without a token becomes <unk> or vanishes */
    if (t->nfc && spqr_unicode_nfc_may_change(x, n)) return -1; /* decode gives NFC(x) */
    /* An added token whose id the vocab gives to another text: encoding that
     * text yields the id, decoding it the added content. The loader accepts
     * this (HF renumbers such a token, with a warning); open finding in
     * bench/results/fuzzing.md, so no round-trip promise is checked here. */
    for (int32_t id = 0; id < t->n_ids; id++)
        if (t->is_added[id] && t->str_len[id] >= 0 &&
            (t->str_len[id] != t->dec_len[id] || memcmp(t->str_arena + t->str_off[id], t->dec_arena + t->dec_off[id], (size_t)t->dec_len[id])))
            return -1;
    if (t->mode == TOK_BYTELEVEL) return t->add_prefix_space ? -1 : 0;
    if (t->mode != TOK_SENTENCEPIECE || !t->replace_space) return -1;
    if (!t->byte_fallback) return -1; /* without it, a piece outside the vocab becomes <unk> (as in HF) */
    /* SentencePiece: no literal "▁" and no added-token text (= its decoded bytes) in x */
    if (memmem(x, n, "\xE2\x96\x81", 3)) return -1;
    for (int32_t id = 0; id < t->n_ids; id++)
        if (t->is_added[id] && t->dec_len[id] > 0 && memmem(x, n, t->dec_arena + t->dec_off[id], (size_t)t->dec_len[id]))
            return -1;
    if (t->prepend == TOK_PREPEND_ALWAYS) return t->strip_start == 1 ? 0 : -1;
    if (t->prepend == TOK_PREPEND_META_FIRST || t->prepend == TOK_PREPEND_META_ALWAYS) {
        if (t->strip_start != 1) return -1;
        if (n > 0 && x[0] == ' ') *skip = 1; /* Metaspace loses one leading space */
        return 0;
    }
    return -1;
}

static volatile size_t tok_sink;

/* Encodes x and checks: success (any bytes are accepted), ids in the vocab,
 * bos first when asked, decode succeeds, concatenated pieces == decode, and
 * (check_roundtrip and the guarantees apply) decode(encode(x)) == x. */
static void tok_check_text(const spqr_tokenizer *t, const uint8_t *x, size_t n, int add_bos, int check_roundtrip) {
    spqr_err err;
    err.msg[0] = 0;
    int32_t *ids = NULL, n_ids = -1;
    const int32_t V = spqr_tokenizer_vocab_size(t), bos = spqr_tokenizer_bos_id(t);
    spqr_status s = spqr_tokenizer_encode(t, (const char *)x, n, add_bos, &ids, &n_ids, &err);
    FUZZ_ASSERT(s == SPQR_OK, "encode failed on %zu bytes: %s", n, err.msg);
    FUZZ_ASSERT(n_ids >= 0 && (n_ids == 0 || ids), "encode: %d ids", n_ids);
    for (int32_t i = 0; i < n_ids; i++) FUZZ_ASSERT(ids[i] >= 0 && ids[i] < V, "id %d outside [0, %d)", ids[i], V);
    const int with_bos = add_bos && bos >= 0;
    if (with_bos) FUZZ_ASSERT(n_ids >= 1 && ids[0] == bos, "no bos %d first", bos);
    if (!n && !with_bos) FUZZ_ASSERT(n_ids == 0, "%d ids for empty text", n_ids);

    char *text = NULL;
    size_t len = 0;
    s = spqr_tokenizer_decode(t, ids, n_ids, &text, &len, &err);
    FUZZ_ASSERT(s == SPQR_OK && text, "decode failed: %s", err.msg);
    FUZZ_ASSERT(text[len] == 0, "decode result not NUL-terminated");
    /* streaming pieces concatenate to decode */
    size_t off = 0;
    int32_t prev = -1;
    for (int32_t i = 0; i < n_ids; i++) {
        char buf[1024];
        int32_t k = spqr_tokenizer_piece(t, prev, ids[i], buf, (int32_t)sizeof buf);
        FUZZ_ASSERT(k >= 0 && k <= (int32_t)sizeof buf, "piece(%d, %d) = %d", prev, ids[i], k);
        FUZZ_ASSERT(off + (size_t)k <= len && !memcmp(text + off, buf, (size_t)k),
                    "pieces differ from decode at byte %zu (id %d, index %d)", off, ids[i], i);
        off += (size_t)k;
        prev = ids[i];
    }
    FUZZ_ASSERT(off == len, "pieces give %zu bytes, decode %zu", off, len);

    if (check_roundtrip) {
        size_t skip;
        if (tok_roundtrip_expected(t, x, n, &skip) == 0) {
            /* decode without the bos id */
            char *t2 = NULL;
            size_t l2 = 0;
            FUZZ_ASSERT(spqr_tokenizer_decode(t, ids + with_bos, n_ids - with_bos, &t2, &l2, &err) == SPQR_OK,
                        "decode: %s", err.msg);
            if (!(l2 == n - skip && !memcmp(t2, x + skip, l2))) {
                fprintf(stderr, "round trip: %zu bytes in (skip %zu), %zu out\nin : ", n, skip, l2);
                for (size_t i = 0; i < n && i < 200; i++) fprintf(stderr, "%02x", x[i]);
                fprintf(stderr, "\nout: ");
                for (size_t i = 0; i < l2 && i < 200; i++) fprintf(stderr, "%02x", (uint8_t)t2[i]);
                fprintf(stderr, "\nids:");
                for (int32_t i = 0; i < n_ids && i < 100; i++) fprintf(stderr, " %d", ids[i]);
                fprintf(stderr, "\n");
                FUZZ_ASSERT(0, "decode(encode(x)) != x");
            }
            free(t2);
        }
    }
    tok_sink += len;
    free(text);
    free(ids);
}

#endif
