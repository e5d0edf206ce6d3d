/* The numeric knobs of spqr_quant_params and their valid ranges, defined
 * once: spqr_quant_params_validate checks them and the CLI parses its flags
 * with them, so both reject the same values and name the same flag. */
#ifndef SPQR_QUANT_PARAMS_H
#define SPQR_QUANT_PARAMS_H

#include <stddef.h>

#include "spqr.h"

/* Largest group (beta1, beta2) and blocksize: far above any useful value, and
 * small enough that no size derived from it overflows. */
#define SPQR_KNOB_MAX_GROUP 65536

/* Largest thread count spqr_quantize_layer accepts (<= 0 = all cores): the
 * bound of `quantize-matrix -t`, far above any core count, and low enough
 * that OpenMP can start them. */
#define SPQR_MAX_THREADS 4096

typedef struct spqr_knob {
    const char *field; /* member of spqr_quant_params */
    const char *flag;  /* command-line spelling */
    size_t offset;     /* offsetof(spqr_quant_params, field) */
    int is_float;      /* 1: float member, 0: int32_t member */
    int inf_ok;        /* 1: +inf is also valid (the CLI spells it "off") */
    double lo, hi;     /* valid values: [lo, hi] */
    const char *note;  /* " (0 = whole row)": the special values, appended to messages; "" if none */
} spqr_knob;

extern const spqr_knob spqr_knobs[];
extern const size_t spqr_n_knobs;

#endif
