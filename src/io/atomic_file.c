#include "io/atomic_file.h"

#include <assert.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "io/file.h"
#include "io/outpath.h"

#define TMP_SUFFIX ".tmp."
#define TMP_RAND 6
static_assert(1 + sizeof TMP_SUFFIX - 1 + TMP_RAND == SPQR_OUT_TMP_EXTRA, "outpath.h states the temporary's extra bytes");

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

void spqr_atomic_abort(spqr_atomic_file *af) {
    if (!af) return;
    if (af->f) fclose(af->f);
    if (af->tmp) unlink(af->tmp);
    free(af->path);
    free(af->tmp);
    free(af->dir);
    memset(af, 0, sizeof *af);
}

spqr_status spqr_atomic_open(const char *path, spqr_atomic_file *af, spqr_err *err) {
    memset(af, 0, sizeof *af);
    if (!path || !*path) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "empty output path");
    if (path[strlen(path) - 1] == '/') return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s: output path is a directory", path);
    /* Refuse at once what commit would refuse after all the work. */
    spqr_status st = spqr_out_check_kind(path, err);
    if (st) return st;
    af->path = strdup(path);
    af->dir = spqr_path_dirname(path);
    const char *base = base_name(path);
    size_t tlen = (af->dir ? strlen(af->dir) : 0) + strlen(base) + 16;
    af->tmp = malloc(tlen);
    if (!af->path || !af->dir || !af->tmp) {
        spqr_atomic_abort(af);
        return spqr_err_set(err, SPQR_ERR_NOMEM, "%s: out of memory", path);
    }
    /* O_EXCL with mode 0666 (not mkstemp's 0600): the umask then applies as
     * for any other output. */
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)af;
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        char rnd[TMP_RAND + 1];
        for (int i = 0; i < TMP_RAND; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            rnd[i] = alphabet[x % (sizeof alphabet - 1)];
        }
        rnd[TMP_RAND] = 0;
        snprintf(af->tmp, tlen, "%s/.%s" TMP_SUFFIX "%s", af->dir, base, rnd);
        fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        spqr_status s = spqr_err_set(err, SPQR_ERR_IO, "%s: cannot create a temporary file in '%s': %s", path,
                                     af->dir, strerror(errno));
        free(af->tmp);
        af->tmp = NULL; /* nothing to unlink */
        spqr_atomic_abort(af);
        return s;
    }
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) (void)fchmod(fd, sb.st_mode & 07777);
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        spqr_status s = spqr_err_set(err, SPQR_ERR_IO, "%s: fdopen failed: %s", path, strerror(errno));
        close(fd);
        spqr_atomic_abort(af);
        return s;
    }
    return SPQR_OK;
}

spqr_status spqr_atomic_commit(spqr_atomic_file *af, spqr_err *err) {
    if (!af || !af->f) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "atomic file: not open");
    spqr_status st = SPQR_OK;
    if (fflush(af->f) != 0 || ferror(af->f)) st = spqr_err_set(err, SPQR_ERR_IO, "%s: write failed: %s", af->path, strerror(errno));
    else if (fsync(fileno(af->f)) != 0)
        st = spqr_err_set(err, SPQR_ERR_IO, "%s: fsync failed: %s", af->path, strerror(errno));
    FILE *f = af->f;
    af->f = NULL;
    if (fclose(f) != 0 && !st) st = spqr_err_set(err, SPQR_ERR_IO, "%s: close failed: %s", af->path, strerror(errno));
    /* The destination may have changed during a long run: never rename over
     * a device, FIFO, socket or directory. */
    if (!st) st = spqr_out_check_kind(af->path, err);
    if (!st && rename(af->tmp, af->path) != 0)
        st = spqr_err_set(err, SPQR_ERR_IO, "%s: cannot rename the temporary file into place: %s", af->path,
                          strerror(errno));
    if (st) {
        spqr_atomic_abort(af);
        return st;
    }
    /* Durability of the rename; the file is complete either way. */
    int dfd = open(af->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(af->tmp);
    af->tmp = NULL; /* renamed: nothing to unlink */
    spqr_atomic_abort(af);
    return SPQR_OK;
}

int spqr_atomic_is_tmp_of(const char *name, const char *base) {
    size_t b = strlen(base), s = strlen(TMP_SUFFIX);
    if (name[0] != '.' || strncmp(name + 1, base, b) || strncmp(name + 1 + b, TMP_SUFFIX, s)) return 0;
    const char *r = name + 1 + b + s;
    if (strlen(r) != TMP_RAND) return 0;
    for (int i = 0; i < TMP_RAND; i++)
        if (!((r[i] >= 'A' && r[i] <= 'Z') || (r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9'))) return 0;
    return 1;
}

int spqr_atomic_remove_stale(const char *path) {
    char *dir = spqr_path_dirname(path);
    if (!dir) return 0;
    const char *base = base_name(path);
    int n = 0;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!spqr_atomic_is_tmp_of(e->d_name, base)) continue;
            char *p = spqr_path_join(dir, e->d_name);
            struct stat sb;
            if (p && lstat(p, &sb) == 0 && S_ISREG(sb.st_mode) && unlink(p) == 0) n++;
            free(p);
        }
        closedir(d);
    }
    free(dir);
    return n;
}
