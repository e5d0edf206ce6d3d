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

/* Whether archive tensor i (model.layers.N.<slot>.weight or .bias) is a
 * block of a tensor arch keeps fused (Phi-3's qkv_proj, gate_up_proj):
 * 0 no; 1 yes, and *first says whether it is the block that starts the
 * fused tensor, for which name gets the fused tensor's name and parts[] the
 * archive indices of its blocks in slot order (at most ARCH_N_LIN); -1 a
 * block is missing (err set). */
int spqri_export_fused(const spqr_archive *a, const struct model_arch *arch, int32_t i, int *first, char *name,
                       size_t cap, int32_t *parts, int32_t *n_parts, spqr_err *err);

/* spqri_export_out_path's checks on every name (NULL entries skipped), so
 * that a refused name is found before the first file is written. */
spqr_status spqri_export_check_outputs(const char *in_path, const char *out_dir, const char *const *names, int32_t n,
                                       spqr_err *err);

/* Removes an earlier checkpoint's files from out_dir (config.json first,
 * then its safetensors, index, tokenizer and generation files; never the
 * input, other files kept), so that the export, which writes config.json
 * last, never leaves a directory that loads old and new weights mixed. */
spqr_status spqri_export_clear_stale(const char *in_path, const char *out_dir, spqr_err *err);

#endif
