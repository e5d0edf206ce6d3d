#include "cli/cli_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cli_parse_i64(const char *cmd, const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out) {
    char *end = NULL;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || !*v || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "spqr: %s: bad value '%s' for %s (an integer in [%lld, %lld])\n", cmd, v ? v : "", flag,
                (long long)lo, (long long)hi);
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

int cli_parse_f32(const char *cmd, const char *flag, const char *v, double lo, double hi, float *out) {
    char *end = NULL;
    errno = 0;
    double x = v ? strtod(v, &end) : 0;
    if (!v || !*v || *end || errno || !isfinite(x) || x < lo || x > hi) {
        fprintf(stderr, "spqr: %s: bad value '%s' for %s (a number in [%g, %g])\n", cmd, v ? v : "", flag, lo, hi);
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
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err->msg, sizeof err->msg, "cannot open %s: %s", path, strerror(errno));
        err->code = SPQR_ERR_IO;
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (n == cap) {
            if (cap >= max_bytes) {
                snprintf(err->msg, sizeof err->msg, "%s is larger than %zu bytes", path, max_bytes);
                err->code = SPQR_ERR_INVALID_ARG;
                free(buf);
                fclose(f);
                return NULL;
            }
            cap = cap * 2 > max_bytes ? max_bytes : cap * 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) {
        snprintf(err->msg, sizeof err->msg, "out of memory reading %s", path);
        err->code = SPQR_ERR_NOMEM;
        return NULL;
    }
    if (bad) {
        snprintf(err->msg, sizeof err->msg, "read error on %s", path);
        err->code = SPQR_ERR_IO;
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static void log_stderr(void *user, spqr_log_level level, const char *msg) {
    (void)user;
    fprintf(stderr, "%s%s\n", level == SPQR_LOG_ERROR ? "error: " : level == SPQR_LOG_WARN ? "warning: " : "", msg);
}

spqr_logger cli_stderr_logger(int verbose) {
    spqr_logger l = {log_stderr, NULL, verbose ? SPQR_LOG_INFO : SPQR_LOG_WARN};
    return l;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
