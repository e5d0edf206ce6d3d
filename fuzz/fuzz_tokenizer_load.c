/* libFuzzer target: tokenizer.json loading (spqr_tokenizer_load_from_memory,
 * src/tokenizer/tokenizer_load.c and the maps it builds).
 *
 * A rejection must be SPQR_ERR_FORMAT or SPQR_ERR_UNSUPPORTED with one line.
 * An accepted tokenizer must be usable: bos/eos -1 or inside the vocabulary;
 * every id decodes (gaps: SPQR_ERR_INVALID_ARG and piece -1); a few fixed
 * texts encode to ids in the vocabulary, the pieces concatenate to decode,
 * and the round-trip guarantees of docs/tokenizer.md hold where they apply
 * (fuzz/tok_props.h). */
#include <stdint.h>
#include <stdlib.h>

#include "tok_props.h"

static const char *const k_texts[] = {
    "Hello world! It's 2024, isn't it?\n\n  indented\ttab",
    " leading space, <s> </s> <|endoftext|> <unk> <|begin_of_text|>",
    "caf\xC3\xA9 \xE2\x96\x81 na\xC3\xAFve \xF0\x9F\x98\x80 \xE4\xB8\xAD\xE6\x96\x87 12345678",
    "\xFF\xFE invalid \xC3 utf8 \xED\xA0\x80 \x80",
    "",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *json = fuzz_copy(data, size);
    spqr_tokenizer *t = NULL;
    spqr_err err;
    err.msg[0] = 0;
    spqr_status s = spqr_tokenizer_load_from_memory(json, size, &t, &err);
    free(json);
    if (s != SPQR_OK) {
        FUZZ_ASSERT(t == NULL, "handle returned with an error");
        fuzz_check_reject(s, &err, FUZZ_BIT(SPQR_ERR_FORMAT) | FUZZ_BIT(SPQR_ERR_UNSUPPORTED));
        return 0;
    }
    const int32_t V = spqr_tokenizer_vocab_size(t), bos = spqr_tokenizer_bos_id(t), eos = spqr_tokenizer_eos_id(t);
    FUZZ_ASSERT(V >= 1 && V <= TOK_MAX_ID, "vocab size %d", V);
    FUZZ_ASSERT(bos >= -1 && bos < V && eos >= -1 && eos < V, "bos %d eos %d vocab %d", bos, eos, V);
    /* every id: decode and piece (at the start of a text) agree on existence and bytes */
    const int32_t lim = V < 8192 ? V : 8192;
    for (int32_t id = 0; id < lim; id++) {
        char *txt = NULL, buf[512];
        size_t len = 0;
        spqr_status ds = spqr_tokenizer_decode(t, &id, 1, &txt, &len, &err);
        int32_t k = spqr_tokenizer_piece(t, -1, id, buf, (int32_t)sizeof buf);
        if (ds == SPQR_OK) {
            FUZZ_ASSERT(k >= 0 && (size_t)k == (len < sizeof buf ? len : sizeof buf), "piece %d vs decode %zu (id %d)", k,
                        len, id);
            free(txt);
        } else {
            FUZZ_ASSERT(ds == SPQR_ERR_INVALID_ARG && k == -1, "id %d: decode %d, piece %d", id, (int)ds, k);
        }
    }
    int32_t bad[2] = {V, -1};
    char *txt = NULL;
    size_t len;
    FUZZ_ASSERT(spqr_tokenizer_decode(t, bad, 1, &txt, &len, &err) == SPQR_ERR_INVALID_ARG, "decoded id %d", V);
    FUZZ_ASSERT(spqr_tokenizer_decode(t, bad + 1, 1, &txt, &len, &err) == SPQR_ERR_INVALID_ARG, "decoded id -1");
    for (size_t i = 0; i < sizeof k_texts / sizeof k_texts[0]; i++)
        tok_check_text(t, (const uint8_t *)k_texts[i], strlen(k_texts[i]), (int)(i & 1), 1);
    spqr_tokenizer_free(t);
    return 0;
}
