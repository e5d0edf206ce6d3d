/* The one way spqr writes an output file: the bytes go to a hidden
 * temporary next to the destination (".NAME.tmp.XXXXXX", same file system,
 * so the final rename is atomic), which commit() flushes, fsyncs and renames
 * over the destination; until then the destination is untouched, and
 * abort() (or a failed commit) removes the temporary. New files get
 * 0666 & ~umask like any other program's output; a replaced file keeps its
 * mode. commit() refuses to rename over anything that is not a regular file
 * (a device, FIFO, socket or directory that appeared meanwhile). */
#ifndef SPQR_IO_ATOMIC_FILE_H
#define SPQR_IO_ATOMIC_FILE_H

#include <stdio.h>

#include "spqr.h"

typedef struct spqr_atomic_file {
    FILE *f;   /* write here between open and commit */
    char *path, *tmp, *dir;
} spqr_atomic_file;

spqr_status spqr_atomic_open(const char *path, spqr_atomic_file *af, spqr_err *err);
spqr_status spqr_atomic_commit(spqr_atomic_file *af, spqr_err *err);
/* Safe on a zeroed, failed or committed handle; removes the temporary if any. */
void spqr_atomic_abort(spqr_atomic_file *af);

/* 1 when name (a directory entry, no '/') is a temporary of this module for
 * the destination base name base (".BASE.tmp.XXXXXX"). */
int spqr_atomic_is_tmp_of(const char *name, const char *base);

/* Removes leftover temporaries of path (from a killed run) in its
 * directory; returns how many were removed. Only call while no other
 * process may be writing path (e.g. under the run's lock). */
int spqr_atomic_remove_stale(const char *path);

#endif
