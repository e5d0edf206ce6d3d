/* Pieces shared by the Hugging Face exporters (export_hf_*.c). */
#ifndef SPQR_MODEL_EXPORT_COMMON_H
#define SPQR_MODEL_EXPORT_COMMON_H

#include <cjson/cJSON.h>

#include "spqr.h"

/* out_dir/name, checked by the output rules with in_path as the run's
 * input, so no spelling of OUT_DIR/NAME can replace the file being read. */
spqr_status spqri_export_out_path(const char *in_path, const char *out_dir, const char *name, char **path, spqr_err *err);

/* Writes text atomically to out_dir/name (spqri_export_out_path's rules). */
spqr_status spqri_export_save_text(const char *in_path, const char *out_dir, const char *name, const char *text,
                             spqr_err *err);

/* config.json of an export: the stored config without the tokenizer subset
 * (returned in *sub, NULL when absent, for tokenizer_config.json), with
 * torch_dtype, quantization_config = quant (consumed; NULL: none), and
 * untied when the file stores its own head. */
spqr_status spqri_export_config(const spqr_archive *a, const char *torch_dtype, cJSON *quant, char **config, char **sub,
                          spqr_err *err);

/* The family named by the archive's config, or NULL. */
const struct model_arch *spqri_export_arch(const spqr_archive *a);

#endif
