#include "io/outpath.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/file.h"

spqr_status spqr_out_check_kind(const char *path, spqr_err *err) {
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    if (strlen(base) + SPQR_OUT_TMP_EXTRA > NAME_MAX)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG,
                            "the output file name is %zu bytes; at most %d fit (its temporary name adds %d)", strlen(base),
                            NAME_MAX - SPQR_OUT_TMP_EXTRA, SPQR_OUT_TMP_EXTRA);
    struct stat sb;
    if (lstat(path, &sb) != 0) return SPQR_OK; /* does not exist (yet) */
    if (S_ISREG(sb.st_mode)) return SPQR_OK;
    if (S_ISLNK(sb.st_mode)) {
        /* The rename replaces the link itself, but a link to a device is
         * almost certainly a mistake: refuse it like the device. */
        if (stat(path, &sb) != 0 || S_ISREG(sb.st_mode)) return SPQR_OK;
        return spqr_err_set(err, SPQR_ERR_IO, "%s is a symlink to %s; spqr writes only regular files", path,
                            spqr_file_kind(sb.st_mode));
    }
    return spqr_err_set(err, SPQR_ERR_IO, "%s is %s; spqr writes only regular files", path, spqr_file_kind(sb.st_mode));
}

/* 1 when path (a file, or any regular file directly in a directory) has
 * the inode of out; fills which with the matching path. */
static int same_as_input(const struct stat *out, const char *in, char *which, size_t cap) {
    struct stat sb;
    if (stat(in, &sb) != 0) return 0;
    if (!S_ISDIR(sb.st_mode)) {
        if (sb.st_dev != out->st_dev || sb.st_ino != out->st_ino) return 0;
        snprintf(which, cap, "%s", in);
        return 1;
    }
    DIR *d = opendir(in);
    if (!d) return 0;
    int hit = 0;
    struct dirent *e;
    while (!hit && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = spqr_path_join(in, e->d_name);
        if (p && stat(p, &sb) == 0 && sb.st_dev == out->st_dev && sb.st_ino == out->st_ino) {
            snprintf(which, cap, "%s", p);
            hit = 1;
        }
        free(p);
    }
    closedir(d);
    return hit;
}

static int is_ours(const char *path, spqr_out_recognizer ours) {
    if (!ours) return 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return 0;
    uint8_t head[SPQR_OUT_HEAD_BYTES];
    ssize_t n = spqri_file_read_head(fd, head, sizeof head);
    close(fd);
    return n > 0 && ours(head, (size_t)n);
}

spqr_status spqr_out_check(const char *path, const spqr_out_spec *spec, const char *const *inputs, int n_inputs,
                           spqr_err *err) {
    const char *flag = spec && spec->flag ? spec->flag : "output";
    if (!path || !*path) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s: empty path", flag);
    if (path[strlen(path) - 1] == '/')
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s %s names a directory; give a file name", flag, path);
    spqr_status st = spqr_out_check_kind(path, err);
    if (st) return st;
    char *dir = spqr_path_dirname(path);
    if (!dir) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        st = spqr_err_set(err, SPQR_ERR_IO, "%s %s: the directory %s does not exist", flag, path, dir);
    } else if (access(dir, W_OK | X_OK) != 0) {
        st = spqr_err_set(err, SPQR_ERR_IO, "%s %s: the directory %s is not writable: %s", flag, path, dir,
                          strerror(errno));
    }
    free(dir);
    if (st) return st;
    if (stat(path, &sb) != 0) return SPQR_OK; /* a new file */
    char which[4096];
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i] && same_as_input(&sb, inputs[i], which, sizeof which))
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s %s is the same file as the input %s; refusing to overwrite it",
                                flag, path, which);
    if (spec && spec->force) return SPQR_OK;
    if (spec && is_ours(path, spec->ours)) return SPQR_OK;
    return spqr_err_set(err, SPQR_ERR_IO, "%s %s exists and is not %s; refusing to overwrite it (--force replaces it)",
                        flag, path, spec && spec->what ? spec->what : "an output of this command");
}
