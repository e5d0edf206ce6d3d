/* Helpers shared by the libFuzzer targets in fuzz/ (header-only, each target
 * is one translation unit). Built by fuzz/run_fuzz.sh, see docs/fuzzing.md. */
#ifndef SPQR_FUZZ_UTIL_H
#define SPQR_FUZZ_UTIL_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spqr.h"

#ifndef SPQR_FUZZ_ROOT
#define SPQR_FUZZ_ROOT "."
#endif

/* The repository root (fixtures are read from it): $SPQR_FUZZ_ROOT, else the
 * checkout the target was built from. */
static inline const char *fuzz_root(void) {
    const char *r = getenv("SPQR_FUZZ_ROOT");
    return r && *r ? r : SPQR_FUZZ_ROOT;
}

/* A property of the library failed: report and abort (libFuzzer saves the input). */
#define FUZZ_ASSERT(cond, ...)                                                   \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "FUZZ PROPERTY FAILED (%s:%d): %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                        \
            fprintf(stderr, "\n");                                               \
            abort();                                                             \
        }                                                                        \
    } while (0)

#define FUZZ_BIT(s) (1u << (unsigned)(s))

/* A rejection must carry one of the allowed codes (bit mask of FUZZ_BIT(status)),
 * a non-empty message of one line, and err->code equal to the return value. */
static inline void fuzz_check_reject(spqr_status s, const spqr_err *err, unsigned allowed) {
    static int verbose = -1; /* FUZZ_VERBOSE=1: print every rejection (to see why seeds fail) */
    if (verbose < 0) verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "rejected (%s): %s\n", spqr_status_str(s), err->msg);
    FUZZ_ASSERT(s != SPQR_OK, "internal: not a rejection");
    FUZZ_ASSERT((unsigned)s < 32 && (allowed & FUZZ_BIT(s)), "unexpected status %d (%s): %s", (int)s,
                spqr_status_str(s), err->msg);
    FUZZ_ASSERT(err->msg[0] != 0, "empty error message for status %d", (int)s);
    FUZZ_ASSERT(memchr(err->msg, 0, sizeof err->msg) != NULL, "unterminated error message");
    FUZZ_ASSERT(strchr(err->msg, '\n') == NULL, "multi-line error message: %s", err->msg);
}

static inline char *fuzz_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz: cannot open %s (set SPQR_FUZZ_ROOT to the repository)\n", path);
        abort();
    }
    size_t cap = 1 << 16, n = 0, r;
    char *buf = malloc(cap + 1);
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
    }
    fclose(f);
    if (!buf) abort();
    buf[n] = 0;
    *len = n;
    return buf;
}

static inline void fuzz_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f)) {
        fprintf(stderr, "fuzz: cannot write %s\n", path);
        abort();
    }
}

/* A fixture of the repository, read once. */
static inline char *fuzz_fixture(const char *rel, size_t *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", fuzz_root(), rel);
    return fuzz_read_file(path, len);
}

/* The bytes as an anonymous in-memory file; *path names it for path-based
 * APIs (/proc/self/fd/N). Returns the fd to close afterwards. */
int memfd_create(const char *name, unsigned int flags);
static inline int fuzz_memfd(const uint8_t *data, size_t size, char path[64]) {
    int fd = memfd_create("spqr-fuzz", 1u /* MFD_CLOEXEC */);
    if (fd < 0) abort();
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) abort();
        off += (size_t)w;
    }
    snprintf(path, 64, "/proc/self/fd/%d", fd);
    return fd;
}

/* A private temporary directory, removed (with its files) at exit. */
static char fuzz_tmpdir_path[4096];
static void fuzz_tmpdir_cleanup(void) {
    if (!fuzz_tmpdir_path[0]) return;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_tmpdir_path);
    if (system(cmd) != 0) { /* best effort */
    }
}
static inline const char *fuzz_tmpdir(void) {
    if (fuzz_tmpdir_path[0]) return fuzz_tmpdir_path;
    const char *t = getenv("TMPDIR");
    snprintf(fuzz_tmpdir_path, sizeof fuzz_tmpdir_path, "%s/spqr-fuzz-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(fuzz_tmpdir_path)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fuzz_tmpdir_cleanup);
    return fuzz_tmpdir_path;
}

/* FNV-1a, to derive deterministic test vectors from an input. */
static inline uint64_t fuzz_hash(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* Exact-size heap copy so ASan catches any read past the end. */
static inline char *fuzz_copy(const uint8_t *data, size_t size) {
    char *p = malloc(size ? size : 1);
    if (!p) abort();
    if (size) memcpy(p, data, size);
    return p;
}

#endif
