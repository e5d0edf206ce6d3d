/* LSB-first bitstreams of fixed-width codes (1..8 bits).
 *
 * Value i occupies stream bits [i*bits, (i+1)*bits); stream bit k is bit
 * (k % 8) of byte k / 8; the value's bit 0 is the lowest stream bit. A
 * stream is padded with zero bits to a whole byte at its end only. */
#ifndef SPQR_FORMAT_BITPACK_H
#define SPQR_FORMAT_BITPACK_H

#include <stddef.h>
#include <stdint.h>

/* Bytes needed for n values of `bits` bits. */
static inline size_t spqr_bits_bytes(uint64_t n, int bits) {
    return (size_t)((n * (uint64_t)bits + 7) / 8);
}

/* Reads value i. The stream must hold at least spqr_bits_bytes(i + 1, bits) bytes. */
static inline uint32_t spqr_bits_get(const uint8_t *buf, uint64_t i, int bits) {
    uint64_t pos = i * (uint64_t)bits;
    uint64_t byte = pos >> 3;
    unsigned sh = (unsigned)(pos & 7);
    uint32_t v = (uint32_t)buf[byte] >> sh;
    if (sh + (unsigned)bits > 8) v |= (uint32_t)buf[byte + 1] << (8 - sh);
    return v & ((1u << bits) - 1u);
}

/* Packs n values (each < 2^bits) into out, which must hold
 * spqr_bits_bytes(n, bits) bytes; out is fully written (padding = 0). */
void spqr_bits_pack(const uint8_t *vals, uint64_t n, int bits, uint8_t *out);

/* Unpacks values [start, start + n) into vals. */
void spqr_bits_unpack(const uint8_t *buf, uint64_t start, uint64_t n, int bits, uint8_t *vals);

#endif
