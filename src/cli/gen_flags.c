/* Shared by generate and chat: the sampling flags and the streaming loop. */
#include "cli/gen_flags.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_util.h"

void cli_gen_flags_init(cli_gen_flags *f) {
    f->n_gen = 128;
    f->temp = 0.8f;
    f->top_p = 0.9f;
    f->seed = -1;
    f->threads = cli_default_threads();
    f->ctx = 0;
    f->kv = SPQR_KV_F16;
    f->verbose = 0;
}

int cli_gen_flag(const char *cmd, int argc, char **argv, int *i, cli_gen_flags *f) {
    const char *a = argv[*i], *v;
    if (!strcmp(a, "-n")) {
        if (!(v = cli_flag_value(cmd, argc, argv, i)) || cli_parse_i32(cmd, a, v, 0, 1 << 24, &f->n_gen)) return -1;
    } else if (!strcmp(a, "--temp")) {
        if (!(v = cli_flag_value(cmd, argc, argv, i)) || cli_parse_f32(cmd, a, v, 0.0, 100.0, &f->temp)) return -1;
    } else if (!strcmp(a, "--top-p")) {
        if (!(v = cli_flag_value(cmd, argc, argv, i)) || cli_parse_f32(cmd, a, v, 1e-6, 1.0, &f->top_p)) return -1;
    } else if (!strcmp(a, "--seed")) {
        if (!(v = cli_flag_value(cmd, argc, argv, i)) || cli_parse_i64(cmd, a, v, 0, INT64_MAX, &f->seed)) return -1;
    } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
        if (!(v = cli_flag_value(cmd, argc, argv, i)) || cli_parse_i32(cmd, a, v, 1, 1024, &f->threads)) return -1;
    } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
        if (!(v = cli_flag_value(cmd, argc, argv, i)) || cli_parse_i32(cmd, a, v, 1, 1 << 24, &f->ctx)) return -1;
    } else if (!strcmp(a, "--kv-type")) {
        if (!(v = cli_flag_value(cmd, argc, argv, i)) || cli_parse_kv(cmd, a, v, &f->kv)) return -1;
    } else if (!strcmp(a, "-v")) f->verbose = 1;
    else return 0;
    return 1;
}

void cli_gen_seed(cli_gen_flags *f) {
    if (f->seed >= 0) return;
    f->seed = (int64_t)time(NULL);
    if (f->temp > 0) fprintf(stderr, "seed = %lld\n", (long long)f->seed);
}

static int text_put(cli_text *t, const char *p, size_t n) {
    if (t->n + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->n + n + 1) cap *= 2;
        char *q = realloc(t->p, cap);
        if (!q) return -1;
        t->p = q;
        t->cap = cap;
    }
    memcpy(t->p + t->n, p, n);
    t->n += n;
    t->p[t->n] = 0;
    return 0;
}

spqr_status cli_stream_reply(spqr_session *s, int32_t ctx, const spqr_model *m, spqr_sampler *sm, float *logits,
                             int32_t n, int32_t prev, volatile sig_atomic_t *stop, FILE *out, int32_t *fed, int32_t *n_fed,
                             int32_t cap, cli_text *text, cli_stop *why, int32_t *n_done, spqr_err *err) {
    const spqr_config *cfg = spqr_model_config(m);
    const spqr_tokenizer *tok = spqr_model_tokenizer(m);
    char piece[256];
    *n_done = 0;
    *why = CLI_STOP_LENGTH;
    while (*n_done < n) {
        if (stop && *stop) {
            *why = CLI_STOP_INTERRUPT;
            break;
        }
        const int32_t next = spqr_sampler_sample(sm, logits);
        if (spqr_config_is_eos(cfg, next)) { /* any of them: an instruct model's end of turn too */
            *why = CLI_STOP_EOS;
            break;
        }
        int32_t k = spqr_tokenizer_piece(tok, prev, next, piece, (int32_t)sizeof piece);
        if (k > 0) {
            fwrite(piece, 1, (size_t)k, out);
            if (text && text_put(text, piece, (size_t)k)) {
                if (err) snprintf(err->msg, sizeof err->msg, "out of memory");
                return SPQR_ERR_NOMEM;
            }
        }
        fflush(out);
        (*n_done)++;
        prev = next;
        if (spqr_session_pos(s) >= ctx) {
            *why = CLI_STOP_CONTEXT;
            break;
        }
        if (*n_done == n) break;
        spqr_status st = spqr_session_forward(s, &next, 1, 0, logits, err);
        if (st) return st;
        if (n_fed) {
            if (fed && *n_fed < cap) fed[*n_fed] = next;
            (*n_fed)++;
        }
    }
    return SPQR_OK;
}
