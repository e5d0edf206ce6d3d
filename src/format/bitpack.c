#include "format/bitpack.h"

#include <string.h>

void spqr_bits_pack(const uint8_t *vals, uint64_t n, int bits, uint8_t *out) {
    memset(out, 0, spqr_bits_bytes(n, bits));
    const uint32_t mask = (1u << bits) - 1u;
    uint64_t pos = 0;
    for (uint64_t i = 0; i < n; i++, pos += (uint64_t)bits) {
        uint32_t v = vals[i] & mask;
        uint64_t byte = pos >> 3;
        unsigned sh = (unsigned)(pos & 7);
        out[byte] |= (uint8_t)(v << sh);
        if (sh + (unsigned)bits > 8) out[byte + 1] |= (uint8_t)(v >> (8 - sh));
    }
}

void spqr_bits_unpack(const uint8_t *buf, uint64_t start, uint64_t n, int bits, uint8_t *vals) {
    for (uint64_t i = 0; i < n; i++) vals[i] = (uint8_t)spqr_bits_get(buf, start + i, bits);
}
