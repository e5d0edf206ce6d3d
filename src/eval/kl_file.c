/* KL base files (kl_file.h): read by spqr_model_perplexity's kl_in (the
 * reader is fuzzed by fuzz/fuzz_kl_file.c), written by its kl_base_out. */
#include "eval/kl_file.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/types.h>

#include "core/error.h"

_Static_assert(sizeof(spqr_kl_header) == 56, "spqr_kl_header must have the on-disk layout");

spqr_status spqri_kl_read_header(FILE *f, const char *path, const spqr_kl_run *run, spqr_kl_header *out,
                                spqr_err *err) {
    spqr_kl_header h;
    if (fseeko(f, 0, SEEK_SET) != 0) return spqr_err_set(err, SPQR_ERR_IO, "%s: cannot seek (not a regular file?)", path);
    if (fread(&h, sizeof h, 1, f) != 1 || memcmp(h.magic, SPQR_KL_MAGIC, 8) || h.version != SPQR_KL_VERSION)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s is not a spqr --kl-base file (bad header)", path);
    const char *what = NULL;
    if (h.protocol != run->protocol) what = "protocol";
    else if (h.ctx != run->ctx) what = "context length";
    else if (h.vocab != run->vocab) what = "vocabulary size";
    else if (h.n_windows != run->n_windows) what = "number of windows";
    else if (h.first != run->first || h.n_positions != run->n_positions) what = "scored positions";
    if (what)
        return spqr_err_set(err, SPQR_ERR_FORMAT,
                            "%s does not match this run: different %s (base: protocol %u, ctx %u, vocab %u, %u windows; "
                            "this: protocol %u, ctx %u, vocab %u, %u windows)",
                            path, what, h.protocol, h.ctx, h.vocab, h.n_windows, run->protocol, run->ctx, run->vocab,
                            run->n_windows);
    /* The header now equals the run's values; the size is computed with
     * overflow checks all the same (the run may be anything a caller passes). */
    const uint64_t n_tok = (uint64_t)h.n_windows * h.ctx; /* < 2^64: both are 32-bit */
    if (n_tok > UINT64_MAX / 8)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: %llu tokens is too many", path, (unsigned long long)n_tok);
    const uint64_t room = (UINT64_MAX - sizeof h - 4 * n_tok) / 4; /* log-probs that fit a 64-bit size */
    if (h.n_positions && h.vocab > room / h.n_positions)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: %llu positions x %u log-probs is too large", path,
                            (unsigned long long)h.n_positions, h.vocab);
    const uint64_t want = sizeof h + 4 * n_tok + 4 * h.n_positions * (uint64_t)h.vocab;
    if (fseeko(f, 0, SEEK_END) != 0) return spqr_err_set(err, SPQR_ERR_IO, "%s: cannot seek (not a regular file?)", path);
    const off_t size = ftello(f);
    if (size < 0) return spqr_err_set(err, SPQR_ERR_IO, "%s: cannot tell the file size", path);
    if ((uint64_t)size != want)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s has %lld bytes, expected %llu (truncated or corrupt)", path,
                            (long long)size, (unsigned long long)want);
    if (fseeko(f, (off_t)sizeof h, SEEK_SET) != 0) return spqr_err_set(err, SPQR_ERR_IO, "%s: cannot seek", path);
    for (uint32_t w = 0; w < h.n_windows; w++)
        for (uint32_t j = 0; j < h.ctx; j++) {
            int32_t t;
            const int32_t mine = j == 0 && run->window_bos >= 0 ? run->window_bos : run->ids[(size_t)w * h.ctx + j];
            if (fread(&t, 4, 1, f) != 1)
                return spqr_err_set(err, SPQR_ERR_IO, "%s: read error in the token section", path);
            if (t != mine)
                return spqr_err_set(err, SPQR_ERR_FORMAT, "%s was computed on different tokens (window %u, position %u)",
                                    path, w, j);
        }
    *out = h;
    return SPQR_OK;
}

spqr_status spqri_kl_read_row(FILE *f, const char *path, uint32_t vocab, uint64_t position, float *row,
                             spqr_err *err) {
    if (fread(row, 4, vocab, f) != vocab)
        return spqr_err_set(err, SPQR_ERR_IO, "read error on %s (position %llu)", path, (unsigned long long)position);
    for (uint32_t v = 0; v < vocab; v++)
        if (!(row[v] <= 0.0f)) /* NaN, +inf, positive */
            return spqr_err_set(err, SPQR_ERR_FORMAT,
                                "%s: position %llu, token %u: %g is not a log-probability (corrupt file)", path,
                                (unsigned long long)position, v, (double)row[v]);
    return SPQR_OK;
}

int spqri_kl_is_base_file(const uint8_t *head, size_t n) { return n >= 8 && !memcmp(head, SPQR_KL_MAGIC, 8); }

static spqr_status write_all(FILE *f, const char *path, const void *p, size_t n, spqr_err *err) {
    if (fwrite(p, 1, n, f) == n) return SPQR_OK;
    return spqr_err_set(err, SPQR_ERR_IO, "write error on %s: %s", path, strerror(errno ? errno : EIO));
}

spqr_status spqri_kl_write_header(FILE *f, const char *path, const spqr_kl_run *run, double ppl, double ppl_stderr,
                                  int with_tokens, spqr_err *err) {
    spqr_kl_header h = {{0}, SPQR_KL_VERSION, run->protocol, run->ctx, run->vocab, run->n_windows, run->first,
                        run->n_positions, ppl, ppl_stderr};
    memcpy(h.magic, SPQR_KL_MAGIC, 8);
    if (fseeko(f, 0, SEEK_SET) != 0) return spqr_err_set(err, SPQR_ERR_IO, "%s: cannot seek", path);
    spqr_status st = write_all(f, path, &h, sizeof h, err);
    for (uint32_t w = 0; with_tokens && w < run->n_windows && !st; w++)
        for (uint32_t j = 0; j < run->ctx && !st; j++) {
            const int32_t t = j == 0 && run->window_bos >= 0 ? run->window_bos : run->ids[(size_t)w * run->ctx + j];
            st = write_all(f, path, &t, 4, err);
        }
    return st;
}

spqr_status spqri_kl_write_row(FILE *f, const char *path, uint32_t vocab, const float *row, spqr_err *err) {
    return write_all(f, path, row, (size_t)vocab * 4, err);
}
