#include "io/dir_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/file.h"

spqr_status spqr_dir_lock(const char *dir, int *fd, spqr_err *err) {
    *fd = -1;
    char *path = spqr_path_join(dir, SPQR_DIR_LOCK_NAME);
    if (!path) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    int f = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0666);
    if (f < 0) {
        spqr_status s = spqr_err_set(err, SPQR_ERR_IO, "cannot create the lock file %s: %s", path, strerror(errno));
        free(path);
        return s;
    }
    struct stat sb;
    if (fstat(f, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(f);
        spqr_status s = spqr_err_set(err, SPQR_ERR_IO, "%s is not a regular file", path);
        free(path);
        return s;
    }
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char buf[32] = {0};
        ssize_t n = pread(f, buf, sizeof buf - 1, 0);
        long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
        close(f);
        spqr_status s;
        if (e == EWOULDBLOCK && pid > 0)
            s = spqr_err_set(err, SPQR_ERR_IO, "%s is in use by another spqr run (pid %ld); wait for it or stop it", dir, pid);
        else if (e == EWOULDBLOCK)
            s = spqr_err_set(err, SPQR_ERR_IO, "%s is in use by another spqr run", dir);
        else
            s = spqr_err_set(err, SPQR_ERR_IO, "cannot lock %s: %s", path, strerror(e));
        free(path);
        return s;
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    /* Only informative: a failed pid write does not weaken the lock. */
    if (ftruncate(f, 0) == 0 && pwrite(f, buf, (size_t)n, 0) < 0) { /* ignored */ }
    free(path);
    *fd = f;
    return SPQR_OK;
}

void spqr_dir_unlock(const char *dir, int fd, int remove_file) {
    if (fd < 0) return;
    if (remove_file) {
        char *path = spqr_path_join(dir, SPQR_DIR_LOCK_NAME);
        if (path) unlink(path);
        free(path);
    }
    close(fd);
}
