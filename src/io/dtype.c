#include "io/dtype.h"

#include <string.h>

static const struct {
    const char *name;
    size_t size;
} DTYPES[] = {
    [SPQR_DTYPE_F32] = {"F32", 4}, [SPQR_DTYPE_F16] = {"F16", 2}, [SPQR_DTYPE_BF16] = {"BF16", 2},
    [SPQR_DTYPE_F64] = {"F64", 8}, [SPQR_DTYPE_U8] = {"U8", 1},   [SPQR_DTYPE_I8] = {"I8", 1},
    [SPQR_DTYPE_I16] = {"I16", 2}, [SPQR_DTYPE_U16] = {"U16", 2}, [SPQR_DTYPE_I32] = {"I32", 4},
    [SPQR_DTYPE_I64] = {"I64", 8}, [SPQR_DTYPE_BOOL] = {"BOOL", 1},
};
#define N_DTYPES ((int)(sizeof DTYPES / sizeof DTYPES[0]))

size_t spqr_dtype_size(spqr_dtype t) {
    return ((int)t >= 0 && (int)t < N_DTYPES) ? DTYPES[t].size : 0;
}

const char *spqr_dtype_name(spqr_dtype t) {
    return ((int)t >= 0 && (int)t < N_DTYPES) ? DTYPES[t].name : "?";
}

int spqr_dtype_parse(const char *s, spqr_dtype *out) {
    for (int i = 0; i < N_DTYPES; i++)
        if (!strcmp(s, DTYPES[i].name)) {
            *out = (spqr_dtype)i;
            return 0;
        }
    return -1;
}

int spqr_utf8_valid(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0) return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07;
        else return 0; /* continuation byte first, overlong lead 0xc0/0xc1, or > 0xf4 */
        if (n - i < len) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) return 0;
        if (cp >= 0xd800 && cp <= 0xdfff) return 0;
        i += len;
    }
    return 1;
}
