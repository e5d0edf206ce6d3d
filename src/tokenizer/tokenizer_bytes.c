/* GPT-2's reversible byte <-> printable character table: the printable
 * Latin-1 bytes ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) map to
 * themselves, the other 68 bytes to U+0100 + k in byte order. */
#include "tokenizer/tokenizer.h"

static int printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t spqri_tok_byte_to_cp(uint8_t b) {
    if (printable(b)) return b;
    uint32_t k = 0;  /* rank of b among the non-printable bytes */
    for (unsigned x = 0; x < b; x++) k += !printable(x);
    return 0x100 + k;
}

int spqri_tok_cp_to_byte(uint32_t cp) {
    if (cp < 0x100) return printable(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68) return -1;
    uint32_t k = cp - 0x100;
    for (unsigned x = 0; x < 256; x++)
        if (!printable(x) && k-- == 0) return (int)x;
    return -1;
}
