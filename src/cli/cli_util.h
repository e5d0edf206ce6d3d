/* Helpers shared by the CLI subcommands: strict flag parsing, file
 * reading, a stderr logger, wall-clock time. Errors print one line
 * "spqr: <cmd>: ..." on stderr; flag errors mean exit 2, runtime errors 1. */
#ifndef SPQR_CLI_UTIL_H
#define SPQR_CLI_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "spqr.h"

/* Strict parsers: the whole string must be a number (no leading space, no
 * trailing characters, not empty) within [lo, hi]. Return 0, or -1 with
 * msg = "<flag>: <why>". */
int cli_parse_int(const char *flag, const char *s, long long lo, long long hi, long long *out, char *msg, size_t cap);
int cli_parse_double(const char *flag, const char *s, double lo, double hi, double *out, char *msg, size_t cap);

/* The same, printing "spqr: <cmd>: <msg>" on stderr on failure. */
int cli_parse_i64(const char *cmd, const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out);
int cli_parse_i32(const char *cmd, const char *flag, const char *v, int32_t lo, int32_t hi, int32_t *out);
int cli_parse_f32(const char *cmd, const char *flag, const char *v, double lo, double hi, float *out);
/* --kv-type's value (f32 | f16); -1 with the message printed. */
int cli_parse_kv(const char *cmd, const char *flag, const char *v, spqr_kv_type *out);

/* Value of flag argv[*i] (advances *i), or prints "missing value" and returns NULL. */
/* Prints "spqr: CMD: MSG" on stderr (the CLI's one-line error) and returns code. */
int cli_fail(const char *cmd, const char *msg, int code);

const char *cli_flag_value(const char *cmd, int argc, char **argv, int *i);

/* Online cores (at least 1). */
int32_t cli_default_threads(void);

/* Parallelism is ours (OpenMP over tiles); keep OpenBLAS from spawning its own threads on top. */
void cli_blas_single_thread(void);

/* Reads a whole file (NUL-terminated). Returns NULL and fills err on failure. */
char *cli_read_file(const char *path, size_t max_bytes, size_t *len, spqr_err *err);

/* Logger that prints warnings and errors (and info when verbose) to stderr. */
spqr_logger cli_stderr_logger(int verbose);

double cli_now(void);

/* SIGINT and SIGTERM raise one flag, which the library polls through an
 * options' cancel pointer (it stops cleanly: no temporary left behind);
 * returns that flag. */
const volatile int *cli_cancel_on_signals(void);

#endif
