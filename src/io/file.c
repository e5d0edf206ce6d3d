#include "io/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/atomic_file.h"

const char *spqr_file_kind(mode_t mode) {
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "a special file";
}

spqr_status spqr_file_open_input(const char *path, int *fd_out, struct stat *st_out, spqr_err *err) {
    *fd_out = -1;
    /* O_NONBLOCK: opening a FIFO without a writer would otherwise block
     * forever, before the regular-file check could refuse it. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        struct stat sb;
        /* A socket cannot be opened at all (ENXIO): say what it is instead. */
        if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
            return spqr_err_set(err, SPQR_ERR_IO, "%s: not a regular file (%s)", path, spqr_file_kind(sb.st_mode));
        return spqr_err_set(err, SPQR_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return spqr_err_set(err, SPQR_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return spqr_err_set(err, SPQR_ERR_IO, "%s: not a regular file (%s)", path, spqr_file_kind(st.st_mode));
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        return spqr_err_set(err, SPQR_ERR_IO, "%s: fcntl failed: %s", path, strerror(e));
    }
    if (st_out) *st_out = st;
    *fd_out = fd;
    return SPQR_OK;
}

spqr_status spqr_file_map(const char *path, size_t min_size, size_t max_size, spqr_mapped_file *out,
                          spqr_err *err) {
    out->data = NULL;
    out->size = 0;
    struct stat st;
    int fd;
    spqr_status os = spqr_file_open_input(path, &fd, &st, err);
    if (os) return os;
    /* off_t may exceed size_t on 32-bit hosts: compare in 64 bits. */
    uint64_t size = (uint64_t)st.st_size;
    if (size < (uint64_t)min_size) {
        close(fd);
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: file is %llu bytes, expected at least %zu", path,
                            (unsigned long long)size, min_size);
    }
    if ((max_size && size > (uint64_t)max_size) || size > (uint64_t)SIZE_MAX) {
        close(fd);
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: file is too large (%llu bytes)", path,
                            (unsigned long long)size);
    }
    if (size == 0) { /* mmap of length 0 is an error; an empty map is fine */
        close(fd);
        return SPQR_OK;
    }
    void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file alive */
    if (p == MAP_FAILED) return spqr_err_set(err, SPQR_ERR_IO, "%s: cannot mmap: %s", path, strerror(e));
    out->data = (const uint8_t *)p;
    out->size = (size_t)size;
    return SPQR_OK;
}

void spqr_file_unmap(spqr_mapped_file *m) {
    if (m && m->data) munmap((void *)m->data, m->size);
    if (m) {
        m->data = NULL;
        m->size = 0;
    }
}

spqr_status spqr_file_read_text(const char *path, size_t max_bytes, char **out, size_t *len,
                                spqr_err *err) {
    *out = NULL;
    if (len) *len = 0;
    struct stat st;
    int fd;
    spqr_status os = spqr_file_open_input(path, &fd, &st, err);
    if (os) return os;
    if ((uint64_t)st.st_size > (uint64_t)max_bytes) {
        close(fd);
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: file is %llu bytes, more than the %zu allowed", path,
                            (unsigned long long)st.st_size, max_bytes);
    }
    size_t cap = (size_t)st.st_size;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return spqr_err_set(err, SPQR_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, cap);
    }
    /* Read until EOF, not just st_size bytes: the file may change size while
     * we read it, and a file that grew past the cap is still rejected. */
    size_t n = 0;
    for (;;) {
        if (n == cap) {
            char probe;
            ssize_t r = read(fd, &probe, 1);
            if (r == 0) break;
            if (r < 0 && errno == EINTR) continue;
            free(buf);
            close(fd);
            if (r < 0) return spqr_err_set(err, SPQR_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: file grew while being read", path);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return spqr_err_set(err, SPQR_ERR_IO, "%s: read failed: %s", path, strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return SPQR_OK;
}

int spqr_path_join_into(char *out, size_t cap, const char *dir, const char *name) {
    const int bare = !dir || !*dir || name[0] == '/';
    const size_t a = bare ? 0 : strlen(dir), b = strlen(name);
    const int slash = !bare && dir[a - 1] != '/';
    if (a + (size_t)slash + b + 1 > cap) return -1;
    memcpy(out, dir, a);
    if (slash) out[a] = '/';
    memcpy(out + a + slash, name, b + 1);
    return 0;
}

char *spqr_path_join(const char *dir, const char *name) {
    const size_t cap = (dir ? strlen(dir) : 0) + strlen(name) + 2;
    char *s = malloc(cap);
    if (s && spqr_path_join_into(s, cap, dir, name)) { free(s); s = NULL; }
    return s;
}

char *spqr_path_dirname(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    size_t n = (size_t)(slash - path);
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, path, n);
    s[n] = 0;
    return s;
}

spqr_status spqr_file_write_atomic(const char *path, spqr_write_fn fn, void *user, spqr_err *err) {
    spqr_atomic_file af;
    spqr_status st = spqr_atomic_open(path, &af, err);
    if (st) return st;
    if (err) err->msg[0] = 0;
    if (fn(af.f, user, err) != 0) {
        if (!err || !err->msg[0]) st = spqr_err_set(err, SPQR_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        else st = err->code != SPQR_OK ? err->code : SPQR_ERR_IO;
        spqr_atomic_abort(&af);
        return st;
    }
    return spqr_atomic_commit(&af, err);
}

spqr_status spqri_file_read_in_dir(const char *dir, const char *name, size_t max_bytes, int optional, char **out,
                                   size_t *len, spqr_err *err) {
    *out = NULL;
    if (len) *len = 0;
    char *path = spqr_path_join(dir, name);
    if (!path) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    struct stat sb;
    spqr_status st = SPQR_OK;
    if (stat(path, &sb) == 0 || errno != ENOENT) st = spqr_file_read_text(path, max_bytes, out, len, err);
    else if (!optional) st = spqr_err_set(err, SPQR_ERR_IO, "%s: no %s in the directory", dir, name);
    free(path);
    return st;
}

ssize_t spqri_file_read_head(int fd, void *buf, size_t cap) {
    size_t n = 0;
    while (n < cap) {
        ssize_t r = read(fd, (char *)buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return n ? (ssize_t)n : -1;
        if (r == 0) break;
        n += (size_t)r;
    }
    return (ssize_t)n;
}
