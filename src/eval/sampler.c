/* Sampling (spqr.h), after llama2.c: softmax at the given temperature,
 * then the smallest set of most likely tokens whose mass exceeds top_p,
 * drawn with the sampler's own seeded RNG (no global state). */
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "spqr.h"

typedef struct prob_index {
    float prob;
    int32_t index;
} prob_index;

struct spqr_sampler {
    int32_t vocab;
    float temperature; /* 0 = greedy (argmax) */
    float top_p;       /* in (0, 1]; 1 = sample the full distribution */
    uint64_t rng;      /* xorshift64* state, never 0 */
    prob_index buf[];  /* [vocab] candidates */
};

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static float rng_uniform(uint64_t *s) { /* [0, 1) */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (float)(((*s * 0x2545f4914f6cdd1dULL) >> 40) * (1.0 / 16777216.0));
}

spqr_status spqr_sampler_create(int32_t vocab, float temperature, float top_p, uint64_t seed, spqr_sampler **out,
                                spqr_err *err) {
    if (!out) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "sampler: out is NULL");
    *out = NULL;
    if (vocab <= 0) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "sampler: vocab %d", vocab);
    if (!(temperature >= 0.0f) || !isfinite(temperature))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "temperature must be a finite number >= 0");
    if (!(top_p > 0.0f && top_p <= 1.0f)) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "top-p must be in (0, 1]");
    spqr_sampler *s = malloc(sizeof *s + (size_t)vocab * sizeof s->buf[0]);
    if (!s) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    s->vocab = vocab;
    s->temperature = temperature;
    s->top_p = top_p;
    s->rng = splitmix64(seed);
    if (!s->rng) s->rng = 1;
    *out = s;
    return SPQR_OK;
}

void spqr_sampler_free(spqr_sampler *s) { free(s); }

/* Index of the largest value (first one on ties). */
static int32_t argmax(const float *v, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

static int cmp_desc(const void *a, const void *b) {
    const prob_index *x = a, *y = b;
    return x->prob > y->prob ? -1 : x->prob < y->prob ? 1 : (x->index > y->index) - (x->index < y->index);
}

int32_t spqr_sampler_sample(spqr_sampler *s, float *logits) {
    const int32_t n = s->vocab;
    if (s->temperature == 0.0f) return argmax(logits, n);
    float mx = logits[argmax(logits, n)];
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        logits[i] = expf((logits[i] - mx) / s->temperature);
        sum += logits[i];
    }
    for (int32_t i = 0; i < n; i++) logits[i] = (float)(logits[i] / sum);
    const float r = rng_uniform(&s->rng);
    if (s->top_p >= 1.0f) {
        float cdf = 0.0f;
        for (int32_t i = 0; i < n; i++) {
            cdf += logits[i];
            if (r < cdf) return i;
        }
        return n - 1;
    }
    /* Tokens below (1 - top_p) / (n - 1) cannot be in the nucleus: skip
     * them before sorting. */
    const float cutoff = n > 1 ? (1.0f - s->top_p) / (float)(n - 1) : 0.0f;
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++)
        if (logits[i] >= cutoff) s->buf[m++] = (prob_index){logits[i], i};
    qsort(s->buf, (size_t)m, sizeof *s->buf, cmp_desc);
    float cum = 0.0f;
    int32_t last = m - 1;
    for (int32_t i = 0; i < m; i++) {
        cum += s->buf[i].prob;
        if (cum > s->top_p) { last = i; break; }
    }
    const float target = r * cum;
    float cdf = 0.0f;
    for (int32_t i = 0; i <= last; i++) {
        cdf += s->buf[i].prob;
        if (target < cdf) return s->buf[i].index;
    }
    return s->buf[last].index;
}
