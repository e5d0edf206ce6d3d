/* Microseconds per decoded token of one model in the three ways a token can
 * use the threads: the decode team (one region per token, forward.c), a
 * parallel region per product (SESSION_DECODE_REGIONS, as before
 * 2026-12-07), and one thread. Interleaved, REPS times each, NTOK tokens
 * from position 0 (so the KV cache grows as in a generation); the best of
 * each and the ratios are printed. Same bits in every mode (test_families).
 *
 *   bench_decode_team MODEL [NTOK=200] [REPS=3] [THREADS=2] */
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "model/model.h"
#include "model/session.h"
#include "spqr.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_decode_team MODEL [NTOK=200] [REPS=3] [THREADS=2]\n");
        return 2;
    }
    const int ntok = argc > 2 ? atoi(argv[2]) : 200, reps = argc > 3 ? atoi(argv[3]) : 3;
    const int nt = argc > 4 ? atoi(argv[4]) : 2;
    if (ntok < 1 || reps < 1 || nt < 2) {
        fprintf(stderr, "bench_decode_team: NTOK and REPS must be >= 1, THREADS >= 2\n");
        return 2;
    }
    spqr_model *m = NULL;
    spqr_err err = {0};
    if (spqr_model_load(argv[1], NULL, &m, &err)) {
        fprintf(stderr, "bench_decode_team: %s\n", err.msg);
        return 1;
    }
    const int32_t V = m->cfg.vocab_size;
    float *logits = malloc((size_t)V * sizeof *logits);
    double best[3] = {1e30, 1e30, 1e30};
    for (int r = 0; r < reps && logits; r++)
        for (int k = 0; k < 3; k++) {
            spqr_session *s = NULL;
            if (spqr_session_create(m, ntok, k == 2 ? 1 : nt, &s, &err)) {
                fprintf(stderr, "bench_decode_team: %s\n", err.msg);
                return 1;
            }
            s->decode_mode = k == 1 ? SESSION_DECODE_REGIONS : SESSION_DECODE_TEAM;
            int32_t tok = 1;
            const double t0 = spqr_now_s();
            for (int i = 0; i < ntok; i++) {
                if (spqr_session_forward(s, &tok, 1, 0, logits, &err)) {
                    fprintf(stderr, "bench_decode_team: %s\n", err.msg);
                    return 1;
                }
                tok = (int32_t)(((int64_t)tok * 7919 + 13) % V);
            }
            const double us = (spqr_now_s() - t0) / ntok * 1e6;
            best[k] = us < best[k] ? us : best[k];
            spqr_session_free(s);
        }
    printf("%s: %d threads, %d tokens from position 0, best of %d: team %.1f, regions %.1f, one thread %.1f "
           "us/token; team %.2fx regions, %.2fx one thread\n",
           argv[1], nt, ntok, reps, best[0], best[1], best[2], best[1] / best[0], best[2] / best[0]);
    free(logits);
    spqr_model_free(m);
    return 0;
}
