/* Internal helpers for filling spqr_err and logging. */
#ifndef SPQR_CORE_ERROR_H
#define SPQR_CORE_ERROR_H

#include "spqr.h"

#if defined(__GNUC__)
#define SPQR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SPQR_PRINTF(a, b)
#endif

/* Writes the formatted one-line reason into err (if non-NULL) and returns code,
 * so call sites read `return spqr_err_set(err, SPQR_ERR_FORMAT, "...", ...);`. */
spqr_status spqr_err_set(spqr_err *err, spqr_status code, const char *fmt, ...) SPQR_PRINTF(3, 4);

/* Prefixes an existing message ("context: old message"), keeps the code. */
spqr_status spqr_err_prefix(spqr_err *err, spqr_status code, const char *fmt, ...) SPQR_PRINTF(3, 4);

void spqr_log(const spqr_logger *log, spqr_log_level level, const char *fmt, ...) SPQR_PRINTF(3, 4);

/* Copies s into buf (cap bytes, cap >= 4) for quoting in an error message:
 * strings from a hostile file (tensor names, dtypes) must stay one printable
 * line of bounded length, so control bytes become '?' and a cut ends in "...".
 * Returns buf. */
const char *spqr_printable(const char *s, char *buf, size_t cap);

#endif
