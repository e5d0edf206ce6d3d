/* What a MODEL argument is, decided before loading so that a wrong path
 * gets a message naming the real problem (a GGUF file, a bare
 * safetensors file, a FIFO, a missing file) instead of the complaint of
 * whichever loader happened to be tried. */
#ifndef SPQR_MODEL_MODEL_PATH_H
#define SPQR_MODEL_MODEL_PATH_H

#include "spqr.h"

typedef enum spqr_model_path_kind {
    SPQR_MODEL_PATH_DIR, /* a directory: a Hugging Face checkpoint, presumably */
    SPQR_MODEL_PATH_SPQR /* a regular file that starts with the .spqr magic */
} spqr_model_path_kind;

/* Classifies path by its type and first bytes (never blocks: FIFOs and
 * devices are not read). Anything else (missing, GGUF, bare safetensors,
 * device, other file) is an error whose one line says what the path is and
 * what to pass instead. */
spqr_status spqr_model_path_classify(const char *path, spqr_model_path_kind *kind, spqr_err *err);

#endif
