/* The one walk over a checkpoint's per-layer tensors, driven by the family's
 * table (model/arch.h), shared by the Hugging Face loader and the .spqr
 * loader: they differ only in how a named linear or vector is bound (dense
 * safetensors view vs packed tensor). */
#ifndef SPQR_MODEL_BIND_H
#define SPQR_MODEL_BIND_H

#include "model/model.h"

typedef spqr_status (*model_bind_linear_fn)(spqr_model *m, const char *name, int32_t rows, int32_t cols,
                                            spqr_linear *lin, spqr_err *err);
/* Fills dst[n] (fp32) from the 1-D tensor name of n elements. */
typedef spqr_status (*model_bind_vec_fn)(spqr_model *m, const char *name, int32_t n, float *dst, spqr_err *err);

/* Allocates m->layers and m->norm_storage, then binds every linear, bias and
 * norm the family's table lists for every layer, and the final norm
 * (embedding and head are the caller's: tying rules differ between the
 * formats). hf_names: bind a linear the table marks fused (Phi-3) as its row
 * block of the fused tensor, as Hugging Face stores it; else by its own
 * name, as .spqr files store it. */
spqr_status spqri_model_bind_layers(spqr_model *m, model_bind_linear_fn linear, model_bind_vec_fn vec, int hf_names,
                              spqr_err *err);

/* The dense linear kind storing a checkpoint tensor's dtype: F32, F16 or
 * BF16, else SPQR_ERR_UNSUPPORTED naming the tensor. */
spqr_status spqri_linear_kind_of_dtype(spqr_dtype dtype, const char *name, spqr_linear_kind *kind, spqr_err *err);
/* The dtype a dense kind stores (F32 for anything else). */
spqr_dtype spqri_linear_kind_dtype(spqr_linear_kind kind);

/* Sets m->embed_scale from the family and the embedding's dtype (m->embed
 * bound): Gemma's sqrt(hidden) rounded to that dtype, as transformers does. */
void spqri_model_set_embed_scale(spqr_model *m);

/* For a checkpoint tensor the binding left unused: SPQR_OK when the model
 * may ignore it (rotary inv_freq buffers, which it recomputes; lm_head.weight
 * of a tied model, which transformers also replaces by the embedding), else
 * SPQR_ERR_FORMAT naming it, and for a layer past num_hidden_layers saying
 * so: a checkpoint must not lose weights silently. */
spqr_status spqri_model_check_unused(const spqr_model *m, const char *name, spqr_err *err);
/* The same test for a tensor named in a .spqr being written for config c
 * (known = 1: names a loader binds pass; 0: only the always-ignored ones,
 * as spqri_model_check_unused). */
spqr_status spqri_model_check_name(const spqr_config *c, const model_hparams *hp, const char *name, int known,
                                   spqr_err *err);

#endif
