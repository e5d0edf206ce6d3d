/* Flags and the token loop that `generate` and `chat` share: sampling,
 * length, threads, context, and streaming a reply until an EOS id. */
#ifndef SPQR_CLI_GEN_FLAGS_H
#define SPQR_CLI_GEN_FLAGS_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "spqr.h"

typedef struct cli_gen_flags {
    int32_t n_gen;   /* -n */
    float temp;      /* --temp */
    float top_p;     /* --top-p */
    int64_t seed;    /* --seed, -1: from the clock */
    int32_t threads; /* -t */
    int32_t ctx;     /* -c, 0: default */
    spqr_kv_type kv; /* --kv-type */
    int verbose;     /* -v */
} cli_gen_flags;

/* The help lines of these flags, for a command's usage text. */
#define CLI_GEN_FLAGS_USAGE                                                                    \
    "  -n N               tokens to generate (default 128)\n"                                  \
    "  --temp T           temperature, 0 = greedy (default 0.8)\n"                             \
    "  --top-p P          nucleus sampling mass (default 0.9)\n"                               \
    "  --seed S           RNG seed (default: from the clock, printed on stderr)\n"             \
    "  -t, --threads N    threads (default: all cores)\n"                                      \
    "  --kv-type T        KV cache f16 (default: half the memory and attention reads) or f32\n" \
    "  -v                 verbose loading\n"

void cli_gen_flags_init(cli_gen_flags *f);

/* Parses argv[*i] if it is one of these flags (advancing *i past a value):
 * 1 = consumed, 0 = not one of them, -1 = bad value (message printed: exit 2). */
int cli_gen_flag(const char *cmd, int argc, char **argv, int *i, cli_gen_flags *f);

/* Seeds from the clock when --seed was not given (printed on stderr when it matters). */
void cli_gen_seed(cli_gen_flags *f);

/* Why a reply ended. */
typedef enum cli_stop { CLI_STOP_EOS, CLI_STOP_LENGTH, CLI_STOP_CONTEXT, CLI_STOP_INTERRUPT } cli_stop;

/* Samples from logits[vocab] and streams up to n tokens to out: each token
 * that is not an EOS is printed and fed to s (so s's cache holds it and
 * logits are the next prediction), until an EOS id, n tokens, the end of
 * the context (ctx positions), or *stop becoming non-zero. *n_fed counts
 * the tokens fed (NULL: not counted), which are also stored at fed[*n_fed]
 * while below cap (fed NULL: not kept); the text goes to text (NULL: not
 * kept). Returns SPQR_OK and *why, or the error. */
typedef struct cli_text {
    char *p;
    size_t n, cap;
} cli_text;
spqr_status cli_stream_reply(spqr_session *s, int32_t ctx, const spqr_model *m, spqr_sampler *sm, float *logits,
                             int32_t n, int32_t prev, volatile sig_atomic_t *stop, FILE *out, int32_t *fed, int32_t *n_fed,
                             int32_t cap, cli_text *text, cli_stop *why, int32_t *n_done, spqr_err *err);

#endif
