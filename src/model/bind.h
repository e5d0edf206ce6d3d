/* The one walk over a Llama checkpoint's per-layer tensor names, shared by
 * the Hugging Face loader and the .spqr loader: they differ only in how a
 * named linear or norm is bound (dense safetensors view vs packed tensor). */
#ifndef SPQR_MODEL_BIND_H
#define SPQR_MODEL_BIND_H

#include "model/model.h"

typedef spqr_status (*model_bind_linear_fn)(spqr_model *m, const char *name, int32_t rows, int32_t cols,
                                            spqr_linear *lin, spqr_err *err);
typedef spqr_status (*model_bind_norm_fn)(spqr_model *m, const char *name, float *dst, spqr_err *err);

/* Allocates m->layers and m->norm_storage, then binds the 7 linears and 2
 * norms of every layer and the final norm (embedding and head are the
 * caller's: tying rules differ between the formats). */
spqr_status model_bind_layers(spqr_model *m, model_bind_linear_fn linear, model_bind_norm_fn norm, spqr_err *err);

/* For a checkpoint tensor the binding left unused: SPQR_OK when the model
 * may ignore it (rotary inv_freq buffers, which it recomputes; lm_head.weight
 * of a tied model, which transformers also replaces by the embedding), else
 * SPQR_ERR_FORMAT naming it, and for a layer past num_hidden_layers saying
 * so: a checkpoint must not lose weights silently. */
spqr_status model_check_unused(const spqr_model *m, const char *name, spqr_err *err);

#endif
