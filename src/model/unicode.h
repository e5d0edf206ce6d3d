/* Unicode helpers for the tokenizer: strict UTF-8 decoding that never fails
 * (an invalid byte is a one-byte "character" of class OTHER) and the
 * character classes of the pre-tokenizer regexes. */
#ifndef SPQR_MODEL_UNICODE_H
#define SPQR_MODEL_UNICODE_H

#include <stddef.h>
#include <stdint.h>

typedef enum spqr_uc_class {
    SPQR_UC_OTHER = 0, /* [^\s\p{L}\p{N}] */
    SPQR_UC_L = 1,     /* \p{L} */
    SPQR_UC_N = 2,     /* \p{N} */
    SPQR_UC_S = 3      /* \s (White_Space) */
} spqr_uc_class;

typedef struct spqr_uc_range {
    uint32_t lo, hi;
    uint8_t cls;
} spqr_uc_range;

extern const char spqr_unicode_version[];
extern const int32_t spqr_unicode_n_ranges;
extern const spqr_uc_range spqr_unicode_ranges[];

/* Marks a byte that does not start a valid UTF-8 sequence. */
#define SPQR_UTF8_INVALID 0xFFFFFFFFu

/* Decodes one character at s[0..n) (n >= 1). Returns its length in bytes
 * (1..4) and stores the code point, or SPQR_UTF8_INVALID with length 1 when
 * s[0] does not start a well-formed sequence (Unicode Table 3-7: no
 * overlongs, no surrogates, nothing above U+10FFFF). */
size_t spqr_utf8_next(const uint8_t *s, size_t n, uint32_t *cp);

/* Class of a code point; SPQR_UTF8_INVALID is OTHER. */
spqr_uc_class spqr_unicode_class(uint32_t cp);

#endif
