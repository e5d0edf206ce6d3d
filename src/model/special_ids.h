/* The BOS and EOS ids a loaded model uses (docs/tokenizer.md, "Special ids"). */
#ifndef SPQR_MODEL_SPECIAL_IDS_H
#define SPQR_MODEL_SPECIAL_IDS_H

#include "model/model.h"

/* Called by both loaders once m->cfg (parsed config.json, with its EOS
 * list) and m->tok exist.
 * dir != NULL (a checkpoint directory): dir/tokenizer_config.json's
 * bos_token / eos_token are applied to m->tok, and dir/generation_config.json's
 * eos_token_id ids are added to m->cfg's EOS set; both files are optional.
 * Then, for both loaders: the tokenizer's bos when config.json names none,
 * the tokenizer's eos when no file named any; every id must be inside the
 * vocabulary. When the two optional files changed the result, m->config_json
 * is rewritten with the resolved "bos_token_id" / "eos_token_id", so that a
 * .spqr made from m (its config section is that text) keeps them. */
spqr_status spqr_model_resolve_special_ids(spqr_model *m, const char *dir, spqr_err *err);

/* Both loaders' tokenizer step, once m->cfg and m->tokenizer_json exist:
 * m->tok from that text (no more tokens than vocab_size; what names the
 * text in messages), then spqr_model_resolve_special_ids(m, dir). */
spqr_status spqri_model_load_tokenizer(spqr_model *m, const char *dir, const char *what, spqr_err *err);

#endif
