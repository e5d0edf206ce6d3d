/* The output rules (docs/safety.md): what a command may write over.
 *  - Never anything but a regular file: a directory, FIFO, device or socket
 *    (or a symlink to one) is refused, even with --force.
 *  - Never one of the run's inputs (same device and inode, so hard links
 *    and other spellings of the path count), even with --force.
 *  - An existing regular file only when it is of the kind being written
 *    (recognised by its first bytes), or with --force.
 * Each check is done before the long work starts, and the atomic writer
 * repeats the kind check right before its final rename. */
#ifndef SPQR_IO_OUTPATH_H
#define SPQR_IO_OUTPATH_H

#include <stddef.h>
#include <stdint.h>

#include "spqr.h"

/* 1 when the first n bytes of a file (n may be short) are of our kind. */
typedef int (*spqr_out_recognizer)(const uint8_t *head, size_t n);

typedef struct spqr_out_spec {
    const char *flag;          /* as the user typed it, for messages: "-o", "--kl-base" */
    const char *what;          /* "a .spqr model", for messages */
    spqr_out_recognizer ours;  /* NULL: every existing file needs force */
    int force;                 /* --force: an existing regular file of another kind may be replaced */
} spqr_out_spec;

/* How many leading bytes a recognizer is shown at most. */
#define SPQR_OUT_HEAD_BYTES 4096

/* Refuses path when it exists and is not a regular file (or a symlink to
 * one); "PATH is a FIFO; spqr writes only regular files". */
spqr_status spqr_out_check_kind(const char *path, spqr_err *err);
/* Bytes spqr_atomic_open's temporary name adds to the file name ("." NAME
 * ".tmp." + 6 random characters); spqr_out_check_kind refuses a name too
 * long for it at once, not after the work. */
#define SPQR_OUT_TMP_EXTRA 12

/* Every rule above, plus: the path is not empty and does not end in '/',
 * and its directory exists and is writable. inputs: the run's input paths
 * (files or directories; a directory stands for every file in it, e.g. a
 * model directory); NULL entries are skipped. */
spqr_status spqr_out_check(const char *path, const spqr_out_spec *spec, const char *const *inputs, int n_inputs,
                           spqr_err *err);

#endif
