/* Internals of the whole-model quantization pipeline (pipeline.c: the
 * sequential calibration loop; pipeline_ckpt.c: per-block checkpoints and
 * the final .spqr assembly). */
#ifndef SPQR_QUANT_PIPELINE_H
#define SPQR_QUANT_PIPELINE_H

#include <stdint.h>

#include "model/session.h"
#include "spqr.h"

/* Record kinds are the layer's linear slots (model/arch.h); a family's table
 * says which it has and their names. */
#define PIPE_KINDS ARCH_N_LIN
/* Record kind of the LM head (--quantize-head); its record's block is n_layers. */
#define PIPE_HEAD_KIND PIPE_KINDS
#define PIPE_HEAD_NAME ARCH_HEAD_NAME
/* Record kind of the token embedding (quantize_embed); block n_layers. */
#define PIPE_EMBED_KIND (PIPE_KINDS + 1)

/* The tensor name of a record: "model.layers.L.<the family's name>.weight"
 * or "lm_head.weight". */
void spqri_pipe_record_name(char *out, size_t cap, const model_arch *a, int32_t block, int32_t kind);

/* What one quantized linear reports; stored in the checkpoint and in the
 * final file's metadata (no timings there, so files are reproducible). */
typedef struct pipe_layer_record {
    int32_t block, kind, rows, cols;
    int64_t outliers;
    double rel_err, formula_bits, stored_bits;
    uint64_t stored_bytes;
    uint64_t file_bytes;  /* what the tensor adds to the .spqr file (section + table entry) */
    int32_t setting;      /* --target-bits: index into spqri_budget_grid; -1 = the run's knobs */
} pipe_layer_record;

/* A new JSON object with the record's numbers (rows, cols, outliers, rel_err,
 * formula_bits, stored_bits, stored_bytes): the one serialisation used by the
 * checkpoints and the final file's metadata; NULL when out of memory. */
struct cJSON *spqri_pipe_record_to_json(const pipe_layer_record *r);

/* Checkpoint directory layout (all files written atomically):
 *   block_NNNN.spqr   packed tensors of block NNNN + metadata {hash, block, layers}
 *   inputs_NNNN.spqr  dense F32 "inputs" [nsamples*seqlen][hidden]: the output of
 *                     block NNNN on the calibration windows (only the latest is kept) */
void spqri_pipe_ckpt_path(char *out, size_t cap, const char *dir, const char *what, int32_t block);

/* tensors[k] NULL: the family has no slot k (nothing stored). */
spqr_status spqri_pipe_ckpt_write_block(const char *dir, uint64_t hash, int32_t block, const model_arch *a,
                                  spqr_tensor *const tensors[PIPE_KINDS], const pipe_layer_record rec[PIPE_KINDS],
                                  spqr_err *err);
spqr_status spqri_pipe_ckpt_write_inputs(const char *dir, uint64_t hash, int32_t block, const float *X, int64_t n_rows,
                                   int32_t hidden, spqr_err *err);
/* 1 when the block file exists, carries hash and parses; fills rec. */
int spqri_pipe_ckpt_block_ok(const char *dir, uint64_t hash, int32_t block, const model_arch *a,
                       pipe_layer_record rec[PIPE_KINDS]);
/* Loads X from inputs_NNNN when it exists and matches (returns 1), else 0. */
int spqri_pipe_ckpt_load_inputs(const char *dir, uint64_t hash, int32_t block, float *X, int64_t n_rows, int32_t hidden);
/* Removes every checkpoint file of the layout above and any temporaries;
 * the directory and its lock file stay (the caller holds the lock). */
void spqri_pipe_ckpt_remove_all(const char *dir, int32_t n_blocks);
/* Removes the directory if it is empty (harmless when someone else put
 * files there). */
void spqri_pipe_ckpt_rmdir(const char *dir);
/* Removes temporaries (".NAME.tmp.XXXXXX") left in dir by a killed run. */
void spqri_pipe_ckpt_remove_stale(const char *dir);
/* 1 when any block or inputs checkpoint exists in dir. */
int spqri_pipe_ckpt_any(const char *dir, int32_t n_blocks);
/* Bytes of the checkpoint files in dir. */
uint64_t spqri_pipe_ckpt_bytes(const char *dir, int32_t n_blocks);
/* 1 when the first n bytes of a file are a .spqr archive's magic (what an
 * existing output may be replaced by without --force). */
int spqri_pipe_is_spqr_head(const uint8_t *head, size_t n);

/* Writes the final .spqr from the model's dense tensors and the block
 * checkpoints, each checked to carry this run's hash; metadata_json is the
 * quantization metadata. head: the packed LM head (then no dense lm_head is
 * stored), or NULL. embed: the packed token embedding, or NULL (dense);
 * with tied embeddings embed == head stores the one table once, as the
 * embedding, which the loader then uses as the head too. */
spqr_status spqri_pipe_write_model(const spqr_model *m, const char *dir, uint64_t hash, const char *metadata_json,
                             const spqr_tensor *head, const spqr_tensor *embed, const char *out_path,
                             spqr_err *err);

/* Adds the embedding's record (rows 0: none) and its quantization time to
 * the summary as s->embed. */
void spqri_pipe_summarize_embed(const pipe_layer_record *rec, double seconds, spqr_quantize_summary *s);
/* Fills the summary's dense_params/bytes, model_params and file_bits from
 * what the options stored quantized (quantized_params and file_bytes set). */
void spqri_pipe_summarize_dense(const spqr_model *m, const spqr_quantize_options *o, spqr_quantize_summary *s);

/* The token embedding quantized with the run's statistics and no
 * calibration: each row is looked up alone, so there is no input whose
 * error to weigh; round-to-nearest (GPTQ off, no permutation, identity
 * Hessian) with the same group statistics and outlier rule. */
spqr_status spqri_pipe_quantize_embed(const spqr_model *m, const spqr_quant_params *q, int32_t n_threads,
                                const spqr_logger *log, spqr_tensor **out, pipe_layer_record *rec, double *seconds,
                                spqr_err *err);

/* --target-bits (docs/quantize.md, "Bit budgets"): the measured grid and
 * the current allocation. Items are the records' slots: block l kind k is
 * l * PIPE_KINDS + k, the head is n_layers * PIPE_KINDS. */
typedef struct pipe_plan {
    int32_t n_items;
    uint8_t *present;    /* [n_items] 1: a linear that gets a setting */
    uint8_t *done;       /* [n_items] 1: quantized (its record holds what it cost) */
    uint64_t *cost;      /* [n_items][spqri_budget_grid_n] bits it would cost (file bytes or stored bytes, x 8) */
    double *err;         /* [n_items][spqri_budget_grid_n] tr(dW H dW^T), H from the unquantized model's inputs */
    int32_t *choice;     /* [n_items] setting of each item in the current allocation */
    uint64_t budget;     /* bits for every present item together */
    int whole_file;      /* costs are file bytes (--target-bits), else stored bytes (--target-bits-linears) */
} pipe_plan;

spqr_status spqri_pipe_plan_init(pipe_plan *pl, int32_t n_items, int whole_file, spqr_err *err);
void spqri_pipe_plan_free(pipe_plan *pl);
/* What item i cost once quantized, in the plan's unit. */
uint64_t spqri_pipe_plan_realized(const pipe_plan *pl, const pipe_layer_record *r);
/* Allocates the items not done with the budget the done ones left
 * (rec[i] holds what done item i cost). */
spqr_status spqri_pipe_plan_update(pipe_plan *pl, const pipe_layer_record *rec, spqr_err *err);

/* File bytes of a metadata section of len bytes: the text, its NUL, 64-aligned, and its table entry. */
uint64_t spqri_pipe_metadata_file_bytes(size_t len);
/* Bytes of the final file other than the packed linears the allocation
 * counts (the block linears and, with head_packed, the head): config,
 * tokenizer, the embedding (embed: the packed RTN table, else dense), a
 * dense head unless head_packed or tied, norms, biases and the section
 * table, with the metadata section holding meta_len bytes. shared_table
 * (tied, head and embedding quantized, one table): the head's table is
 * the embedding, so no embedding section either (embed is ignored).
 * Measured by writing those sections with the writer into dir (then
 * removed), so it is exact and follows the writer. */
spqr_status spqri_pipe_fixed_file_bytes(const spqr_model *m, const char *dir, const spqr_tensor *embed, int head_packed,
                                  int shared_table, size_t meta_len, uint64_t *out, spqr_err *err);

#endif
