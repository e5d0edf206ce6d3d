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

struct pipe_plan;
/* --target-bits on the whole file: the embedding as item `item` of the
 * plan: every grid setting as round-to-nearest (spqri_pipe_quantize_embed's
 * rule), its cost the packed table's file bytes, its err the squared error
 * of each row weighted by 1 + its token's count in the n_win calibration
 * windows of T tokens (tok + starts[i]), its sensitivity measured with the
 * embedding replaced at spqri_pipe_sens_setting; *ref gets that setting's
 * table (the caller's to free). */
spqr_status spqri_pipe_measure_embed(const spqr_model *m, struct pipe_plan *pl, int32_t item, const int32_t *tok,
                                     const int64_t *starts, int32_t n_win, int32_t T, const spqr_quant_params *base,
                                     int32_t n_threads, const spqr_logger *log, spqr_tensor **ref, spqr_err *err);

/* --target-bits (docs/quantize.md, "Bit budgets"): the measured grid and
 * the current allocation. Items are the records' slots: block l kind k is
 * l * PIPE_KINDS + k, the head is n_layers * PIPE_KINDS, the token
 * embedding n_layers * PIPE_KINDS + 1 (whole file, a table of its own). */
typedef struct pipe_plan {
    int32_t n_items;
    uint8_t *present;    /* [n_items] 1: a linear that gets a setting */
    uint8_t *done;       /* [n_items] 1: quantized (its record holds what it cost) */
    uint64_t *cost;      /* [n_items][spqri_budget_grid_n] bits it would cost (file bytes or stored bytes, x 8) */
    double *err;         /* [n_items][spqri_budget_grid_n] tr(dW H dW^T), H from the unquantized model's inputs */
    double *sens;        /* [n_items] measured KL per unit of err (the allocation minimises sum sens x err) */
    struct quant_sens *sens_ctx; /* during the measurement pass: the windows it is measured on */
    int32_t *choice;     /* [n_items] setting of each item in the current allocation */
    uint64_t budget;     /* bits for every present item together */
    uint64_t slack;      /* bits the total may miss the budget by, either way, when no allocation
                          * lands within it from below (half the +-0.02 bits per parameter promised) */
    int whole_file;      /* costs are file bytes (--target-bits), else stored bytes (--target-bits-linears) */
} pipe_plan;

spqr_status spqri_pipe_plan_init(pipe_plan *pl, int32_t n_items, int whole_file, spqr_err *err);
void spqri_pipe_plan_free(pipe_plan *pl);
/* What item i cost once quantized, in the plan's unit. */
uint64_t spqri_pipe_plan_realized(const pipe_plan *pl, const pipe_layer_record *r);
/* Allocates the items not done with the budget the done ones left
 * (rec[i] holds what done item i cost). */
spqr_status spqri_pipe_plan_update(pipe_plan *pl, const pipe_layer_record *rec, spqr_err *err);

/* The measured sensitivity (quant/sensitivity.h) on the first calibration
 * windows (at most 2, of at most 128 tokens; tok + starts[i] is window i):
 * init before the measurement pass; measure for each item with W its
 * dequantized weights at grid setting spqri_pipe_sens_setting (block =
 * n_layers: the head); finish after the pass: sens = that KL over the
 * item's err at that setting (an item whose ratio could not be measured
 * gets the largest), and the windows are freed. */
extern const int32_t spqri_pipe_sens_setting;
spqr_status spqri_pipe_plan_sens_init(pipe_plan *pl, const spqr_model *m, const int32_t *tok, const int64_t *starts,
                                      int32_t n_windows, int32_t T, int32_t n_threads, spqr_err *err);
spqr_status spqri_pipe_plan_sens_measure(pipe_plan *pl, int32_t item, int32_t block, int32_t kind, const float *W,
                                         spqr_err *err);
void spqri_pipe_plan_sens_finish(pipe_plan *pl);

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

/* Scale-out (pipeline_comm.c): the options' communicator; with comm NULL
 * or of size 1 these do nothing and succeed. */
spqr_status spqri_comm_bcast(const spqr_comm *c, void *buf, size_t bytes, int32_t root, spqr_err *err);
spqr_status spqri_comm_sum_i64(const spqr_comm *c, int64_t *buf, size_t n, spqr_err *err);
/* Root's *t to every rank (the others get a new tensor, theirs to free). */
spqr_status spqri_comm_bcast_tensor(const spqr_comm *c, spqr_tensor **t, int32_t root, spqr_err *err);

/* A Hessian sum that does not depend on how the windows are split between
 * ranks or in what order they come: each window's G = X^T X (float32) is
 * added exactly as int64 fixed point, in a bin chosen by its own largest
 * diagonal entry; bins are summed over ranks, then folded in a fixed order.
 * Upper triangles, packed row by row. */
#define HSUM_NBINS 36
typedef struct pipe_hsum {
    int32_t cols;
    size_t n;                    /* cols (cols + 1) / 2 */
    int64_t *bin[HSUM_NBINS];    /* allocated when a window falls in it */
} pipe_hsum;
void spqri_hsum_init(pipe_hsum *h, int32_t cols);
void spqri_hsum_free(pipe_hsum *h);
/* Adds one window's G (upper triangle of a [cols][cols] row-major matrix). */
spqr_status spqri_hsum_add(pipe_hsum *h, const float *G, int32_t n_threads, spqr_err *err);
/* Sums over the ranks and writes the upper triangle of H = (2 / n_rows) sum G. */
spqr_status spqri_hsum_finish(pipe_hsum *h, const spqr_comm *c, int64_t n_rows, float *H, spqr_err *err);

#endif
