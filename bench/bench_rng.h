/* The benches' random stream (xorshift64 + Box-Muller): one copy, so the
 * layers bench_quantize times and the ones engine_golden hashes come from
 * the same generator. Each bench is one program, hence the file-static state. */
#ifndef SPQR_BENCH_RNG_H
#define SPQR_BENCH_RNG_H

#include <math.h>
#include <stdint.h>

static uint64_t rng_s = 0x9E3779B97F4A7C15ull;
static uint64_t rng_next(void) {
    rng_s ^= rng_s << 13;
    rng_s ^= rng_s >> 7;
    rng_s ^= rng_s << 17;
    return rng_s;
}
static float rng_uniform(void) { return (float)((rng_next() >> 40) * (1.0 / 16777216.0)); }
static float rng_normal(void) {
    float u1 = rng_uniform() + 1e-7f, u2 = rng_uniform();
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530718f * u2);
}

#endif
