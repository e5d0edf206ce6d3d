/* Next-token sampling: greedy at temperature 0, otherwise nucleus (top-p)
 * sampling with the sampler's own seeded RNG (no global state). */
#ifndef SPQR_MODEL_SAMPLER_H
#define SPQR_MODEL_SAMPLER_H

#include <stdint.h>

#include "spqr.h"

typedef struct spqr_prob_index {
    float prob;
    int32_t index;
} spqr_prob_index;

typedef struct spqr_sampler {
    int32_t vocab;
    float temperature;  /* 0 = greedy (argmax) */
    float top_p;        /* in (0, 1]; 1 = sample the full distribution */
    uint64_t rng;       /* xorshift64* state, never 0 */
    spqr_prob_index *buf; /* [vocab] candidates */
} spqr_sampler;

spqr_status spqr_sampler_init(spqr_sampler *s, int32_t vocab, float temperature, float top_p, uint64_t seed,
                              spqr_err *err);
void spqr_sampler_free(spqr_sampler *s);
/* Picks the next token from logits[vocab] (overwritten with probabilities). */
int32_t spqr_sampler_sample(spqr_sampler *s, float *logits);
/* Index of the largest value (first one on ties). */
int32_t spqr_argmax(const float *v, int32_t n);

#endif
