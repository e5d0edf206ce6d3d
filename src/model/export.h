/* Export of a .spqr model to a standard Hugging Face checkpoint directory
 * (docs/format.md, "Export to Hugging Face"). */
#ifndef SPQR_MODEL_EXPORT_H
#define SPQR_MODEL_EXPORT_H

#include <stdint.h>

#include "spqr.h"

/* Default shard limit, the one transformers' save_pretrained uses (5 GB). */
#define SPQR_EXPORT_DEFAULT_SHARD_BYTES ((uint64_t)5000 * 1000 * 1000)

/* Writes the dequantized model of the .spqr file at in_path into out_dir
 * (an existing directory the caller has cleared for writing): every packed
 * tensor dequantized by spqr_tensor_dequantize and rounded to dtype (F16 or
 * BF16, round to nearest even), every dense tensor converted to dtype,
 * sharded safetensors of at most max_shard_bytes each (model.safetensors
 * when one shard suffices, else model-0000K-of-0000N.safetensors plus
 * model.safetensors.index.json), config.json (the stored config without
 * quantization_config and the tokenizer subset, torch_dtype set),
 * tokenizer.json and, when the file carries one, tokenizer_config.json.
 * Every file is written atomically, never over in_path (docs/safety.md);
 * config.json last, so a failed export is not a loadable directory. A value
 * that overflows fp16 is refused (bf16 holds it). */
spqr_status spqr_export_hf_dense(const char *in_path, const char *out_dir, spqr_dtype dtype,
                                 uint64_t max_shard_bytes, const volatile int *cancel, const spqr_logger *log,
                                 spqr_err *err);

/* Writes the .spqr at in_path into out_dir in transformers' SpQR format
 * (docs/format.md, "The Hugging Face SpQR layout"): model.safetensors with
 * per quantized linear its dense_weights / row_offsets / col_vals / in_perm
 * and every other tensor in fp16 (a quantized embedding or head
 * dequantized), config.json with quantization_config (bits, beta1, beta2,
 * shapes, modules_to_not_convert), tokenizer files. Every quantized linear
 * must be in the one supported configuration (HF_SPQR_SUPPORTED), else
 * SPQR_ERR_UNSUPPORTED naming the tensor. Same file rules as above.
 * Both exporters stop with SPQR_ERR_INTERRUPTED between tensors once
 * *cancel (when non-NULL) is non-zero; no temporary is left behind. */
spqr_status spqr_export_hf_spqr(const char *in_path, const char *out_dir, const volatile int *cancel,
                                const spqr_logger *log, spqr_err *err);

/* The reverse (spqr import): a transformers SpQR checkpoint directory
 * (config.json with quantization_config, model.safetensors or shards,
 * tokenizer.json, optional tokenizer_config.json) as a .spqr at out_path,
 * written atomically; nothing is quantized. Every array is validated
 * (spqri_hf_spqr_to_tensor, the config's shapes); only CSR outliers (not PTCSR). */
spqr_status spqr_import_hf_spqr(const char *dir, const char *out_path, const spqr_logger *log, spqr_err *err);

#endif
