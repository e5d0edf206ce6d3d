/* Seeded calibration windows and hashing (see calib.h). */
#include "quant/calib.h"

#include "core/error.h"

uint64_t spqri_calib_hash(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

spqr_status spqri_calib_sample_windows(int64_t n_tokens, int32_t nsamples, int32_t seqlen, uint64_t seed, int64_t *starts,
                                 spqr_err *err) {
    if (nsamples < 1 || seqlen < 1)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "calibration: nsamples %d and seqlen %d must be >= 1",
                            nsamples, seqlen);
    if (n_tokens < seqlen)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG,
                            "calibration text has %lld tokens, fewer than one window of seqlen %d", (long long)n_tokens,
                            seqlen);
    const uint64_t range = (uint64_t)(n_tokens - seqlen) + 1;
    uint64_t state = seed;
    for (int32_t i = 0; i < nsamples; i++) {
        /* Lemire's multiply-shift: uniform up to a 2^-64 relative bias. */
        const uint64_t r = splitmix64(&state);
        starts[i] = (int64_t)(((unsigned __int128)r * range) >> 64);
    }
    return SPQR_OK;
}
