#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *spqr_status_str(spqr_status s) {
    switch (s) {
    case SPQR_OK: return "ok";
    case SPQR_ERR_INVALID_ARG: return "invalid argument";
    case SPQR_ERR_IO: return "I/O error";
    case SPQR_ERR_FORMAT: return "bad file format";
    case SPQR_ERR_NOMEM: return "out of memory";
    case SPQR_ERR_NUMERIC: return "numerical error";
    case SPQR_ERR_UNSUPPORTED: return "unsupported";
    case SPQR_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown error";
}

/* A message is one line whatever a hostile file put into the strings it
 * quotes (a raw newline inside a JSON string, escape sequences): control
 * bytes become '?', as in spqr_printable. */
static void one_line(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

spqr_status spqr_err_set(spqr_err *err, spqr_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        one_line(err->msg);
        err->code = code;
    }
    return code;
}

spqr_status spqr_err_prefix(spqr_err *err, spqr_status code, const char *fmt, ...) {
    if (err) {
        char prefix[256];
        char old[sizeof err->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        memcpy(old, err->msg, sizeof old);
        old[sizeof old - 1] = 0;
        /* both parts are bounded so the result fits; the old message is cut first */
        snprintf(err->msg, sizeof err->msg, "%.255s: %.250s", prefix, old);
        one_line(err->msg);
        err->code = code;
    }
    return code;
}

void spqr_log(const spqr_logger *log, spqr_log_level level, const char *fmt, ...) {
    if (!log || !log->fn || level > log->max_level) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log->fn(log->user, level, buf);
}

const char *spqr_printable(const char *s, char *buf, size_t cap) {
    size_t j = 0, i = 0;
    for (; s[i] && j + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[j++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (s[i]) {
        memcpy(buf + j, "...", 3);
        j += 3;
    }
    buf[j] = 0;
    return buf;
}
