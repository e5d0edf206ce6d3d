/* config.json of a Hugging Face checkpoint of a family in model/arch.h ->
 * spqr_config and the family's hyperparameters. */
#ifndef SPQR_MODEL_CONFIG_H
#define SPQR_MODEL_CONFIG_H

#include <stddef.h>

#include "model/arch.h"
#include "spqr.h"

/* Parses the JSON text of config.json (len bytes, need not be NUL-terminated).
 * Supported: the model_types of model/arch.h. Everything the forward pass
 * would silently get wrong is refused with SPQR_ERR_UNSUPPORTED naming the
 * field and what is supported. */
spqr_status spqri_model_config_parse(const char *json, size_t len, spqr_config *out, model_hparams *hp, spqr_err *err);
/* The same without the family's hyperparameters. */
spqr_status spqr_config_parse(const char *json, size_t len, spqr_config *out, spqr_err *err);

/* Reads and parses a config.json file. */
spqr_status spqr_config_load(const char *path, spqr_config *out, spqr_err *err);

/* Adds the eos_token_id of generation_config.json (JSON text of len bytes:
 * an int or a list, absent or null adds nothing) to c's EOS ids. */
spqr_status spqr_config_add_generation_eos(spqr_config *c, const char *json, size_t len, spqr_err *err);

/* Fills inv_freq[head_dim/2] exactly as Hugging Face computes it in float32,
 * including the Llama-3 rope_scaling adjustment. */
void spqr_config_rope_inv_freq(const spqr_config *c, float *inv_freq);

#endif
