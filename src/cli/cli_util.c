#include "cli/cli_util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "io/file.h"

int cli_parse_int(const char *flag, const char *s, long long lo, long long hi, long long *out, char *msg,
                  size_t cap) {
    if (!s || !*s) {
        snprintf(msg, cap, "%s: empty value, expected an integer in [%lld, %lld]", flag, lo, hi);
        return -1;
    }
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (isspace((unsigned char)s[0]) || *end != 0 || end == s) {
        snprintf(msg, cap, "%s: '%.64s' is not an integer", flag, s);
        return -1;
    }
    if (errno == ERANGE || v < lo || v > hi) {
        snprintf(msg, cap, "%s: %.64s is out of range [%lld, %lld]", flag, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const char *flag, const char *s, double lo, double hi, double *out, char *msg, size_t cap) {
    if (!s || !*s) {
        snprintf(msg, cap, "%s: empty value, expected a number", flag);
        return -1;
    }
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (isspace((unsigned char)s[0]) || *end != 0 || end == s || !isfinite(v)) {
        snprintf(msg, cap, "%s: expected a number in [%g, %g], got '%.64s'", flag, lo, hi, s);
        return -1;
    }
    if (errno == ERANGE || v < lo || v > hi) { /* ERANGE here: underflow */
        snprintf(msg, cap, "%s: %.64s is out of range [%g, %g]", flag, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_i64(const char *cmd, const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out) {
    char msg[256];
    long long x;
    if (cli_parse_int(flag, v, lo, hi, &x, msg, sizeof msg)) {
        fprintf(stderr, "spqr: %s: %s\n", cmd, msg);
        return -1;
    }
    *out = x;
    return 0;
}

int cli_parse_i32(const char *cmd, const char *flag, const char *v, int32_t lo, int32_t hi, int32_t *out) {
    int64_t x;
    if (cli_parse_i64(cmd, flag, v, lo, hi, &x)) return -1;
    *out = (int32_t)x;
    return 0;
}

int cli_parse_kv(const char *cmd, const char *flag, const char *v, spqr_kv_type *out) {
    spqr_err err = {0};
    if (!spqr_kv_type_parse(v, out, &err)) return 0;
    fprintf(stderr, "spqr: %s: %s: %s\n", cmd, flag, err.msg);
    return -1;
}

int cli_parse_f32(const char *cmd, const char *flag, const char *v, double lo, double hi, float *out) {
    char msg[256];
    double x;
    if (cli_parse_double(flag, v, lo, hi, &x, msg, sizeof msg)) {
        fprintf(stderr, "spqr: %s: %s\n", cmd, msg);
        return -1;
    }
    *out = (float)x;
    return 0;
}

const char *cli_flag_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "spqr: %s: missing value for %s\n", cmd, argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int32_t cli_default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int32_t)n;
}

/* From OpenBLAS (libspqr links it); declared here so the CLI needs no BLAS include path. */
void openblas_set_num_threads(int num_threads);

void cli_blas_single_thread(void) { openblas_set_num_threads(1); }

char *cli_read_file(const char *path, size_t max_bytes, size_t *len, spqr_err *err) {
    char *buf = NULL;
    return spqr_file_read_text(path, max_bytes, &buf, len, err) ? NULL : buf;
}

static void log_stderr(void *user, spqr_log_level level, const char *msg) {
    (void)user;
    fprintf(stderr, "%s%s\n", level == SPQR_LOG_ERROR ? "error: " : level == SPQR_LOG_WARN ? "warning: " : "", msg);
}

spqr_logger cli_stderr_logger(int verbose) {
    spqr_logger l = {log_stderr, NULL, verbose ? SPQR_LOG_INFO : SPQR_LOG_WARN};
    return l;
}

double cli_now(void) { return spqr_now_s(); }

int cli_fail(const char *cmd, const char *msg, int code) {
    fprintf(stderr, "spqr: %s: %s\n", cmd, msg);
    return code;
}

static volatile sig_atomic_t g_cancel; /* the one global a signal handler needs */
static void on_cancel_signal(int sig) { (void)sig; g_cancel = 1; }

const volatile int *cli_cancel_on_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_cancel_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return (const volatile int *)&g_cancel;
}
