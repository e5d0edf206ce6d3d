/* Calibration data helpers of the whole-model pipeline: seeded window
 * sampling and the FNV-1a hash that pins a checkpoint to its inputs. */
#ifndef SPQR_QUANT_CALIB_H
#define SPQR_QUANT_CALIB_H

#include <stddef.h>
#include <stdint.h>

#include "spqr.h"

#define CALIB_HASH_INIT 0xcbf29ce484222325ull

/* FNV-1a 64 of n bytes, continuing from h. */
uint64_t spqri_calib_hash(uint64_t h, const void *p, size_t n);

/* starts[nsamples]: window i is tokens[starts[i] .. starts[i] + seqlen).
 * Each start is uniform in [0, n_tokens - seqlen] (windows may overlap),
 * drawn in order from a splitmix64 stream seeded with seed: the same
 * (tokens, nsamples, seqlen, seed) always gives the same windows. */
spqr_status spqri_calib_sample_windows(int64_t n_tokens, int32_t nsamples, int32_t seqlen, uint64_t seed, int64_t *starts,
                                 spqr_err *err);

#endif
