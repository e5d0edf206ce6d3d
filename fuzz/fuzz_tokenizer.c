/* libFuzzer target: tokenizer encode / decode on arbitrary text
 * (src/tokenizer/tokenizer_encode.c and below), with the fixture tokenizers.
 *
 * Input: byte 0 picks one of the tokenizers below (loaded once), byte 1 bit 0
 * asks for a BOS token; the rest is the text (any bytes). Checked
 * (docs/tokenizer.md "Guarantees"): encoding never fails, ids are in the
 * vocabulary, decode succeeds, the streaming pieces concatenate to decode,
 * and decode(encode(x)) == x where promised: byte-level without
 * add_prefix_space for every byte string; SentencePiece for text without "▁"
 * or added-token text (Metaspace: one leading space lost). Any failure
 * abort()s. */
#include <stdint.h>
#include <stdlib.h>

#include "tok_props.h"

static const char *const k_files[] = {
    "tests/fixtures/tok_bytelevel.json", "tests/fixtures/tok_llama3style.json", "tests/fixtures/tok_sp.json",
    "tests/fixtures/tok_sp_meta.json",   "tests/fixtures/tiny_gqa/tokenizer.json", "models/default/tokenizer.json",
};
#define N_TOK ((int)(sizeof k_files / sizeof k_files[0]))
static spqr_tokenizer *g_tok[N_TOK];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    for (int i = 0; i < N_TOK; i++) {
        size_t len;
        char *json = fuzz_fixture(k_files[i], &len);
        spqr_err err;
        if (spqr_tokenizer_load_from_memory(json, len, &g_tok[i], &err) != SPQR_OK) {
            fprintf(stderr, "fuzz_tokenizer: %s: %s\n", k_files[i], err.msg);
            abort();
        }
        size_t skip;
        if (tok_roundtrip_expected(g_tok[i], (const uint8_t *)"", 0, &skip) != 0) {
            fprintf(stderr, "fuzz_tokenizer: %s: round trip not promised (fixture changed?)\n", k_files[i]);
            abort();
        }
        free(json);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const spqr_tokenizer *t = g_tok[data[0] % N_TOK];
    char *x = fuzz_copy(data + 2, size - 2);
    tok_check_text(t, (const uint8_t *)x, size - 2, data[1] & 1, 1);
    free(x);
    return 0;
}
