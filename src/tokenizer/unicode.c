#include "tokenizer/unicode.h"

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

/* ------------------------------------------------------------------ NFC */

/* Hangul syllables are composed and decomposed arithmetically (Unicode 3.12). */
#define H_SBASE 0xAC00u
#define H_LBASE 0x1100u
#define H_VBASE 0x1161u
#define H_TBASE 0x11A7u
#define H_LCOUNT 19u
#define H_VCOUNT 21u
#define H_TCOUNT 28u
#define H_NCOUNT (H_VCOUNT * H_TCOUNT)
#define H_SCOUNT (H_LCOUNT * H_NCOUNT)

/* An invalid UTF-8 byte b travels through NFC as this non-character value:
 * class 0, no decomposition, no composition. */
#define NFC_RAW 0x110000u

int spqr_unicode_ccc(uint32_t cp) {
    if (cp < 0x300) return 0;
    int32_t a = 0, b = spqr_unicode_n_ccc_ranges - 1;
    while (a <= b) {
        int32_t m = a + (b - a) / 2;
        if (cp < spqr_unicode_ccc_ranges[m].lo) b = m - 1;
        else if (cp > spqr_unicode_ccc_ranges[m].hi) a = m + 1;
        else return spqr_unicode_ccc_ranges[m].cls;
    }
    return 0;
}

int spqr_unicode_nfc_may_change(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 0xCC) return 1;
    return 0;
}

static const spqr_uc_decomp *find_decomp(uint32_t cp) {
    int32_t a = 0, b = spqr_unicode_n_decomp - 1;
    while (a <= b) {
        int32_t m = a + (b - a) / 2;
        if (cp < spqr_unicode_decomp[m].cp) b = m - 1;
        else if (cp > spqr_unicode_decomp[m].cp) a = m + 1;
        else return &spqr_unicode_decomp[m];
    }
    return NULL;
}

/* The primary composite of (a, b), or 0 if none. */
static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= H_LBASE && a < H_LBASE + H_LCOUNT && b >= H_VBASE && b < H_VBASE + H_VCOUNT)
        return H_SBASE + ((a - H_LBASE) * H_VCOUNT + (b - H_VBASE)) * H_TCOUNT;
    if (a >= H_SBASE && a < H_SBASE + H_SCOUNT && (a - H_SBASE) % H_TCOUNT == 0 && b > H_TBASE &&
        b < H_TBASE + H_TCOUNT)
        return a + (b - H_TBASE);
    int32_t lo = 0, hi = spqr_unicode_n_comp - 1;
    while (lo <= hi) {
        int32_t m = lo + (hi - lo) / 2;
        const spqr_uc_comp *c = &spqr_unicode_comp[m];
        if (a < c->first || (a == c->first && b < c->second)) hi = m - 1;
        else if (a > c->first || b > c->second) lo = m + 1;
        else return c->composite;
    }
    return 0;
}

/* Stable sort of v[0..k) by combining class: insertion sort for the short
 * runs real text has, merge sort through tmp for long ones (a hostile run
 * of a million marks must not take quadratic time). */
static void sort_marks(uint32_t *v, uint8_t *cc, size_t k, uint32_t *tmp) {
    if (k <= 32) {
        for (size_t i = 1; i < k; i++)
            for (size_t j = i; j > 0 && cc[j - 1] > cc[j]; j--) {
                uint32_t t = v[j]; v[j] = v[j - 1]; v[j - 1] = t;
                uint8_t c = cc[j]; cc[j] = cc[j - 1]; cc[j - 1] = c;
            }
        return;
    }
    /* classes are < 256: a counting sort is stable and linear */
    size_t count[257] = {0};
    for (size_t i = 0; i < k; i++) count[cc[i] + 1]++;
    for (int c = 0; c < 256; c++) count[c + 1] += count[c];
    for (size_t i = 0; i < k; i++) tmp[count[cc[i]]++] = v[i];
    for (size_t i = 0; i < k; i++) {
        v[i] = tmp[i];
        cc[i] = (uint8_t)spqr_unicode_ccc(v[i]);
    }
}

static size_t put_utf8(uint32_t c, uint8_t *o) {
    if (c >= NFC_RAW) { o[0] = (uint8_t)(c - NFC_RAW); return 1; }
    if (c < 0x80) { o[0] = (uint8_t)c; return 1; }
    if (c < 0x800) { o[0] = (uint8_t)(0xC0 | (c >> 6)); o[1] = (uint8_t)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (c >> 12)); o[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (c >> 18)); o[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F)); o[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

size_t spqr_unicode_nfc(const uint8_t *s, size_t n, uint32_t *work, uint8_t *out) {
    /* 1. full canonical decomposition */
    uint32_t *v = work;
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t l = spqr_utf8_next(s + i, n - i, &c);
        if (c == SPQR_UTF8_INVALID) c = NFC_RAW + s[i];
        i += l;
        const spqr_uc_decomp *d;
        if (c >= H_SBASE && c < H_SBASE + H_SCOUNT) {
            uint32_t k = c - H_SBASE;
            v[m++] = H_LBASE + k / H_NCOUNT;
            v[m++] = H_VBASE + (k % H_NCOUNT) / H_TCOUNT;
            if (k % H_TCOUNT) v[m++] = H_TBASE + k % H_TCOUNT;
        } else if (c >= 0xC0 && c < NFC_RAW && (d = find_decomp(c)) != NULL) {
            for (int j = 0; j < d->len; j++) v[m++] = spqr_unicode_decomp_pool[d->off + j];
        } else {
            v[m++] = c;
        }
    }
    /* 2. canonical ordering: each run of non-starters sorted stably by class.
     * The class bytes live in out, which is at least as large as m. */
    uint8_t *cc = out;
    uint32_t *tmp = work + m;
    for (size_t i = 0; i < m;) {
        if (spqr_unicode_ccc(v[i]) == 0) { i++; continue; }
        size_t j = i;
        while (j < m && (cc[j - i] = (uint8_t)spqr_unicode_ccc(v[j])) != 0) j++;
        sort_marks(v + i, cc, j - i, tmp);
        i = j;
    }
    /* 3. canonical composition: a character combines with the last starter
     * unless a character between them has class 0 or >= its own */
    size_t w = 0;
    long starter = -1;
    int last_cc = 0;
    for (size_t i = 0; i < m; i++) {
        uint32_t c = v[i];
        int k = spqr_unicode_ccc(c);
        if (starter >= 0 && (w == (size_t)starter + 1 || (last_cc != 0 && last_cc < k))) {
            uint32_t p = compose(v[starter], c);
            if (p) { v[starter] = p; continue; }
        }
        if (k == 0) starter = (long)w;
        last_cc = k;
        v[w++] = c;
    }
    size_t o = 0;
    for (size_t i = 0; i < w; i++) o += put_utf8(v[i], out + o);
    return o;
}
