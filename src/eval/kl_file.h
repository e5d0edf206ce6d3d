/* KL base files: what `spqr perplexity --kl-base` writes and `--kl` reads
 * (the full next-token log-prob distribution, fp32, whole vocabulary, of
 * every scored position, after a header that pins protocol, ctx, vocab and
 * the evaluated tokens). Layout, little-endian, no padding:
 *   header (56 bytes, spqr_kl_header)
 *   tokens  int32 [n_windows][ctx]      the windows as evaluated
 *   logp    fp32  [n_positions][vocab]  log-probabilities (<= 0)
 * The reader trusts nothing in the file: the header must match the run, the
 * file size must be exact, the tokens must be the run's, and every log-prob
 * must be a number <= 0. Every failure is one line naming the path.
 * The writer (spqr_model_perplexity's kl_base_out) writes the header twice:
 * first with ppl 0 before the rows, then the final one. */
#ifndef SPQR_EVAL_KL_FILE_H
#define SPQR_EVAL_KL_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "spqr.h"

#define SPQR_KL_MAGIC "SPQRKLB1"
#define SPQR_KL_VERSION 1u

typedef struct spqr_kl_header {
    char magic[8];
    uint32_t version, protocol, ctx, vocab, n_windows, first;
    uint64_t n_positions;
    double ppl, ppl_stderr;
} spqr_kl_header;

/* The run a base file must match. Window w holds ids[w*ctx .. w*ctx + ctx),
 * except that window_bos >= 0 replaces the first token of every window. */
typedef struct spqr_kl_run {
    uint32_t protocol, ctx, vocab, n_windows, first;
    uint64_t n_positions;
    const int32_t *ids;
    int32_t window_bos;
} spqr_kl_run;

/* Reads the header and the token section of f (from its start) and checks
 * them against run, and the file size against header + tokens + log-probs.
 * On success *out holds the header and f is at the first log-prob row.
 * Errors: SPQR_ERR_FORMAT (not a base file, another run, wrong size, other
 * tokens), SPQR_ERR_IO (unreadable, not seekable). */
spqr_status spqri_kl_read_header(FILE *f, const char *path, const spqr_kl_run *run, spqr_kl_header *out,
                                spqr_err *err);

/* Reads the next row of vocab log-probs into row; position names it in
 * messages. A short read is SPQR_ERR_IO, a value that is NaN or > 0 is
 * SPQR_ERR_FORMAT (-inf is a valid log-probability). */
spqr_status spqri_kl_read_row(FILE *f, const char *path, uint32_t vocab, uint64_t position, float *row,
                             spqr_err *err);

/* 1 when the first n bytes of a file are a base file's magic (what
 * kl_base_out may replace without overwrite). */
int spqri_kl_is_base_file(const uint8_t *head, size_t n);

/* Writes the header for run (ppl and ppl_stderr as given) and, when
 * with_tokens, the token section, at the start of f. Leaves f after what
 * it wrote. SPQR_ERR_IO on a write error. */
spqr_status spqri_kl_write_header(FILE *f, const char *path, const spqr_kl_run *run, double ppl, double ppl_stderr,
                                  int with_tokens, spqr_err *err);

/* Appends one row of vocab log-probs. SPQR_ERR_IO on a write error. */
spqr_status spqri_kl_write_row(FILE *f, const char *path, uint32_t vocab, const float *row, spqr_err *err);

#endif
