/* Small file helpers shared by the safetensors code and the model loader:
 * read-only mapping of a whole file, bounded reads of small text files,
 * atomic replacement of a file, path joining. Every failure fills err with
 * one line that names the path. */
#ifndef SPQR_IO_FILE_H
#define SPQR_IO_FILE_H

#include <stdio.h>
#include <sys/stat.h>

#include "spqr.h"

/* "a FIFO", "a directory", "a character device", ... for messages. */
const char *spqr_file_kind(mode_t mode);

/* The one way the library opens an input file: without blocking (a FIFO
 * with no writer would hang open() forever), refusing anything but a
 * regular file with "PATH: not a regular file (a FIFO)" and the like.
 * On success *fd is a blocking read-only descriptor (close it) and *st
 * (may be NULL) its fstat. */
spqr_status spqr_file_open_input(const char *path, int *fd, struct stat *st, spqr_err *err);

/* A whole file mapped read-only. size 0 is legal (data is then NULL). */
typedef struct spqr_mapped_file {
    const uint8_t *data;
    size_t size;
} spqr_mapped_file;

/* Maps a regular file read-only. Files larger than max_size (0 = no limit)
 * or smaller than min_size are rejected with SPQR_ERR_FORMAT. */
spqr_status spqr_file_map(const char *path, size_t min_size, size_t max_size, spqr_mapped_file *out,
                          spqr_err *err);
void spqr_file_unmap(spqr_mapped_file *m);

/* Reads a whole regular file of at most max_bytes into a malloc'ed,
 * NUL-terminated buffer (*len excludes the NUL). Larger files are rejected
 * with SPQR_ERR_FORMAT rather than truncated. */
spqr_status spqr_file_read_text(const char *path, size_t max_bytes, char **out, size_t *len,
                                spqr_err *err);

/* Reads up to cap bytes from fd's position (a fresh fd: the file's start),
 * retrying on EINTR:
 * what sniffing a file's kind by its first bytes needs. Returns the count,
 * or -1 with errno set. */
ssize_t spqri_file_read_head(int fd, void *buf, size_t cap);

/* spqr_file_read_text of dir/name (a model directory's side files). A
 * missing file is SPQR_OK with *out NULL when optional, else SPQR_ERR_IO
 * "DIR: no NAME in the directory"; something of another kind there (a FIFO,
 * a directory) is refused as such. */
spqr_status spqri_file_read_in_dir(const char *dir, const char *name, size_t max_bytes, int optional, char **out,
                                   size_t *len, spqr_err *err);

/* Writes the file through fn, which returns 0 on success and non-zero on
 * failure (fn may fill err itself; otherwise a generic write error is
 * reported). The bytes go to a temporary file in the destination's
 * directory, which is flushed, fsync'ed and renamed over path, so readers
 * see either the old file or the complete new one. On any failure the
 * temporary file is removed and an existing destination is untouched. */
typedef int (*spqr_write_fn)(FILE *f, void *user, spqr_err *err);
spqr_status spqr_file_write_atomic(const char *path, spqr_write_fn fn, void *user, spqr_err *err);

/* "dir/name" (no doubled '/'; name returned alone when dir is empty or name
 * is absolute). malloc'ed; NULL only when out of memory. */
char *spqr_path_join(const char *dir, const char *name);
/* The same into out[cap]: 0, or -1 (out unspecified) when it does not fit. */
int spqr_path_join_into(char *out, size_t cap, const char *dir, const char *name);

/* Directory part of path ("." when there is none). malloc'ed or NULL. */
char *spqr_path_dirname(const char *path);

#endif
