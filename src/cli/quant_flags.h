/* Command-line knobs of the SpQR quantizer, shared by every command that
 * quantizes (quantize-matrix, quantize). Never prints: errors fill msg with
 * one line that names the flag (number parsing: cli/cli_util.h). */
#ifndef SPQR_CLI_QUANT_FLAGS_H
#define SPQR_CLI_QUANT_FLAGS_H

#include <stddef.h>
#include <stdio.h>

#include "cli/cli_util.h"
#include "spqr.h"

/* Result of looking at one command-line argument. */
typedef enum {
    CLI_FLAG_NOT_MINE = 0, /* not a quantization flag: the caller handles it */
    CLI_FLAG_OK = 1,       /* consumed (with its value); *i advanced past it */
    CLI_FLAG_ERROR = -1    /* a quantization flag with a missing or bad value */
} cli_flag_result;

/* Looks at argv[*i]. Accepts both "--flag VALUE" and "--flag=VALUE". */
cli_flag_result cli_quant_flag(int argc, char **argv, int *i, spqr_quant_params *p, char *msg, size_t cap);

/* Help text for the flags above, with the library defaults. */
void cli_quant_flags_help(FILE *f);

/* Fills key/value metadata strings describing p (wbits, groupsize, ...);
 * calls fn(user, key, value) for each. Returns the first non-zero result. */
int cli_quant_params_foreach(const spqr_quant_params *p, int (*fn)(void *user, const char *key, const char *value),
                             void *user);

/* Short one-line description, e.g. "w3 g16 qq3/3x16 tau=0.2 act_order gptq". */
void cli_quant_params_describe(const spqr_quant_params *p, char *buf, size_t cap);

/* Value of an option at argv[*i] named by one of the two spellings (either
 * may be NULL): "-o X", "--output X" or "--output=X". Returns 1 and sets
 * *value (advancing *i past it), 0 if argv[*i] is another argument, -1 if
 * the value is missing (msg filled). */
int cli_option_value(int argc, char **argv, int *i, const char *short_name, const char *long_name,
                     const char **value, char *msg, size_t cap);

#endif
