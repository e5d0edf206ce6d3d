/* safetensors dtype names and the UTF-8 check used on headers and names. */
#ifndef SPQR_IO_DTYPE_H
#define SPQR_IO_DTYPE_H

#include "spqr.h"

/* Parses a safetensors dtype spelling ("F32", "BF16", ...). Returns 0 and
 * sets *out, or -1 for a spelling this library does not support. */
int spqr_dtype_parse(const char *s, spqr_dtype *out);

/* 1 if the n bytes are valid UTF-8 (no overlongs, no surrogates, nothing
 * above U+10FFFF) without NUL bytes, else 0. */
int spqr_utf8_valid(const char *s, size_t n);

#endif
