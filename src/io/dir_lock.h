/* An exclusive lock on a working directory (a quantization run's
 * OUT.spqr.partial/), so that two runs never interleave their checkpoints.
 * The lock is flock() on DIR/lock, which the kernel releases when the
 * process dies, however it dies; the file holds the owner's pid for the
 * message the second run prints. */
#ifndef SPQR_IO_DIR_LOCK_H
#define SPQR_IO_DIR_LOCK_H

#include "spqr.h"

#define SPQR_DIR_LOCK_NAME "lock"

/* Takes the lock without waiting: SPQR_ERR_IO "DIR is in use by another
 * run (pid N)" when someone holds it. *fd receives the descriptor. */
spqr_status spqr_dir_lock(const char *dir, int *fd, spqr_err *err);
/* Releases it; remove_file also deletes DIR/lock first (while still held,
 * so no other run can have taken it in between). fd < 0 is a no-op. */
void spqr_dir_unlock(const char *dir, int fd, int remove_file);

#endif
