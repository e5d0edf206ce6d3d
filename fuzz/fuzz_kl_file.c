/* libFuzzer target: the KL base file reader (src/eval/kl_file.c, used by
 * `spqr perplexity --kl`).
 *
 * The input is the file (an anonymous in-memory file, read through stdio as
 * the CLI does). It is checked against two runs:
 *  1. a fixed small run (ctx 4, vocab 5, 2 windows, protocol spqr);
 *  2. the run the file's own header describes, when it is small and
 *     consistent the way the CLI computes runs (first = ctx/2 for protocol
 *     llamacpp, else 0; n_positions = n_windows * (ctx - 1 - first)), with the
 *     file's own tokens (and, for llamacpp, token 0 as the window BOS), so
 *     that mutations reach the log-prob rows.
 * Whatever is accepted is read to the end as the CLI reads it (KL of each
 * row against a fixed distribution); every value handed out must be a
 * log-probability (<= 0, not NaN). Rejections: FORMAT or IO, one line. */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eval/kl_file.h"
#include "fuzz_util.h"

static volatile double sink;

static void run_once(const uint8_t *data, size_t size, const spqr_kl_run *run) {
    char path[64];
    int fd = fuzz_memfd(data, size, path);
    FILE *f = fdopen(fd, "rb");
    if (!f) abort();
    spqr_kl_header h;
    spqr_err err;
    err.msg[0] = 0;
    spqr_status s = spqri_kl_read_header(f, "fuzz.kl", run, &h, &err);
    if (s != SPQR_OK) {
        fuzz_check_reject(s, &err, FUZZ_BIT(SPQR_ERR_FORMAT) | FUZZ_BIT(SPQR_ERR_IO));
        fclose(f);
        return;
    }
    FUZZ_ASSERT(h.ctx == run->ctx && h.vocab == run->vocab && h.n_positions == run->n_positions, "header != run");
    FUZZ_ASSERT((uint64_t)size == 56 + 4ull * h.n_windows * h.ctx + 4ull * h.n_positions * h.vocab,
                "accepted a file of %zu bytes", size);
    float *row = malloc((size_t)h.vocab * sizeof *row);
    double kl = 0;
    for (uint64_t p = 0; p < h.n_positions; p++) {
        s = spqri_kl_read_row(f, "fuzz.kl", h.vocab, p, row, &err);
        if (s != SPQR_OK) {
            fuzz_check_reject(s, &err, FUZZ_BIT(SPQR_ERR_FORMAT));
            break;
        }
        for (uint32_t v = 0; v < h.vocab; v++) {
            FUZZ_ASSERT(row[v] <= 0.0f, "log-prob %g handed out", (double)row[v]);
            kl += exp((double)row[v]) * ((double)row[v] + log((double)h.vocab));
        }
    }
    sink += kl;
    free(row);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const int32_t ids[8] = {1, 2, 3, 4, 0, 1, 2, 3};
    const spqr_kl_run fixed = {0, 4, 5, 2, 0, 6, ids, -1};
    run_once(data, size, &fixed);

    if (size < 56) return 0;
    spqr_kl_header h;
    memcpy(&h, data, sizeof h);
    if ((h.protocol != 0 && h.protocol != 1) || h.ctx < 2 || h.ctx > 256 || h.n_windows < 1 || h.n_windows > 64 ||
        h.vocab < 1 || h.vocab > 4096)
        return 0;
    const uint32_t first = h.protocol == 1 ? h.ctx / 2 : 0;
    if (h.ctx - 1 <= first) return 0;
    const uint64_t n_tok = (uint64_t)h.n_windows * h.ctx;
    int32_t *tok = calloc(n_tok, sizeof *tok);
    if (!tok) return 0;
    const size_t have = (size - 56) / 4 < n_tok ? (size - 56) / 4 : n_tok;
    memcpy(tok, data + 56, have * 4);
    const spqr_kl_run own = {h.protocol, h.ctx, h.vocab, h.n_windows, first,
                             (uint64_t)h.n_windows * (h.ctx - 1 - first), tok, h.protocol == 1 ? tok[0] : -1};
    run_once(data, size, &own);
    free(tok);
    return 0;
}
