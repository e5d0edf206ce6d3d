#include "model/unicode.h"

size_t spqr_utf8_next(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    size_t len;
    uint32_t v;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3; v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;       /* no overlongs */
        else if (c == 0xED) hi = 0x9F;  /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4; v = c & 0x07;
        if (c == 0xF0) lo = 0x90;       /* no overlongs */
        else if (c == 0xF4) hi = 0x8F;  /* nothing above U+10FFFF */
    } else { *cp = SPQR_UTF8_INVALID; return 1; }
    if (n < len || s[1] < lo || s[1] > hi) { *cp = SPQR_UTF8_INVALID; return 1; }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) { *cp = SPQR_UTF8_INVALID; return 1; }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

spqr_uc_class spqr_unicode_class(uint32_t cp) {
    if (cp < 0x80) {
        if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return SPQR_UC_L;
        if (cp >= '0' && cp <= '9') return SPQR_UC_N;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return SPQR_UC_S;
        return SPQR_UC_OTHER;
    }
    if (cp == SPQR_UTF8_INVALID) return SPQR_UC_OTHER;
    int32_t a = 0, b = spqr_unicode_n_ranges - 1;
    while (a <= b) {
        int32_t m = a + (b - a) / 2;
        if (cp < spqr_unicode_ranges[m].lo) b = m - 1;
        else if (cp > spqr_unicode_ranges[m].hi) a = m + 1;
        else return (spqr_uc_class)spqr_unicode_ranges[m].cls;
    }
    return SPQR_UC_OTHER;
}
