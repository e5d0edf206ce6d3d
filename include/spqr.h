/* spqr.h - the one public header of libspqr.
 *
 * SpQR (Sparse-Quantized Representation) compression of LLM linear layers
 * and inference straight from the compressed format.
 *
 * Conventions
 * - Every fallible function returns spqr_status and, when `err` is non-NULL,
 *   writes a one-line human-readable reason into it.
 * - The library never prints to stdout and never calls exit(); progress and
 *   diagnostics go through an optional spqr_logger.
 * - Matrices are row-major fp32 unless stated. A linear layer W is
 *   [rows = out_features][cols = in_features], y = W x.
 * - Thread counts are explicit parameters; there is no global mutable state.
 */
#ifndef SPQR_H
#define SPQR_H

#include <stddef.h>
#include <stdint.h>

/* The version of this header; spqr_version() gives the library's, which
 * differs when a program runs against another build of libspqr.so. */
#define SPQR_VERSION_MAJOR 0
#define SPQR_VERSION_MINOR 1
#define SPQR_VERSION_PATCH 0

/* Marks the public functions: libspqr.so is built with hidden visibility,
 * so only these are exported. */
#if defined(__GNUC__) || defined(__clang__)
#define SPQR_API __attribute__((visibility("default")))
#else
#define SPQR_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Status, errors, logging                                             */
/* ------------------------------------------------------------------ */

typedef enum spqr_status {
    SPQR_OK = 0,
    SPQR_ERR_INVALID_ARG = 1,  /* a parameter is out of range or inconsistent */
    SPQR_ERR_IO = 2,           /* open/read/write/rename failed */
    SPQR_ERR_FORMAT = 3,       /* a file is malformed, truncated or hostile */
    SPQR_ERR_NOMEM = 4,        /* allocation failed */
    SPQR_ERR_NUMERIC = 5,      /* NaN/Inf input, non-positive-definite Hessian, ... */
    SPQR_ERR_UNSUPPORTED = 6,  /* valid but not supported (architecture, dtype, ...) */
    SPQR_ERR_INTERRUPTED = 7   /* a cancel flag was raised */
} spqr_status;

/* Holds the one-line reason for the last failure of a call. */
typedef struct spqr_err {
    spqr_status code;
    char msg[512];
} spqr_err;

SPQR_API const char *spqr_status_str(spqr_status s);

/* "MAJOR.MINOR.PATCH" of the linked library. */
SPQR_API const char *spqr_version(void);

typedef enum spqr_log_level {
    SPQR_LOG_ERROR = 0,
    SPQR_LOG_WARN = 1,
    SPQR_LOG_INFO = 2,
    SPQR_LOG_DEBUG = 3
} spqr_log_level;

typedef void (*spqr_log_fn)(void *user, spqr_log_level level, const char *msg);

/* A NULL logger, or a NULL fn, silences the library. */
typedef struct spqr_logger {
    spqr_log_fn fn;
    void *user;
    spqr_log_level max_level; /* messages above this level are dropped */
} spqr_logger;

/* ------------------------------------------------------------------ */
/* Half-precision helpers (IEEE binary16 and bfloat16)                  */
/* ------------------------------------------------------------------ */

SPQR_API uint16_t spqr_fp32_to_fp16(float f);  /* round to nearest even, saturates to inf like hardware */
SPQR_API float spqr_fp16_to_fp32(uint16_t h);
SPQR_API uint16_t spqr_fp32_to_bf16(float f);  /* round to nearest even */
SPQR_API float spqr_bf16_to_fp32(uint16_t h);

/* ------------------------------------------------------------------ */
/* Quantization parameters (every knob of the method)                   */
/* ------------------------------------------------------------------ */

typedef enum spqr_perm_mode {
    SPQR_PERM_IDENTITY = 0,
    SPQR_PERM_ACT_ORDER = 1 /* input columns by descending diag(H) */
} spqr_perm_mode;

typedef struct spqr_quant_params {
    int32_t wbits;              /* b: bits per weight code, 2..8 */
    int32_t groupsize;          /* beta1: columns per first-level group; 0 = whole row */
    int32_t qq_scale_bits;      /* bits of the scale codes; 0 = scales stored as fp16 (no bilevel) */
    int32_t qq_zero_bits;       /* bits of the zero codes; 0 = zeros stored as fp16 (no bilevel) */
    int32_t qq_groupsize;       /* beta2: first-level statistics per second-level group (rows) */
    float outlier_threshold;    /* relative tau; 0 or +inf = no outliers */
    int32_t simplified_outliers;/* 1: fit statistics on all weights (no leave-one-out) */
    float percdamp;             /* lambda: H += lambda * mean(diag H) * I */
    int32_t blocksize;          /* GPTQ lazy-batch width; a speed device only */
    spqr_perm_mode perm;
    int32_t round_zero;         /* round first-level zeros to integers */
    int32_t sym;                /* symmetric first-level quantization */
    int32_t gptq;               /* 1: GPTQ error feedback; 0: round-to-nearest (RTN) */
} spqr_quant_params;

/* The paper's near-lossless-style defaults: w3, beta1=beta2=16, 3-bit
 * statistics, tau=0.2, leave-one-out outliers, percdamp 1.0, blocksize 128,
 * act_order, GPTQ on. */
SPQR_API void spqr_quant_params_default(spqr_quant_params *p);

/* Checks ranges (one table, src/quant/params.c; docs/quantize.md "Limits of
 * the knobs") and consistency; the message names the field and its flag. */
SPQR_API spqr_status spqr_quant_params_validate(const spqr_quant_params *p, spqr_err *err);

/* ------------------------------------------------------------------ */
/* The packed SpQR tensor                                               */
/* ------------------------------------------------------------------ */

/* Storage (all in the permuted column order the GPTQ loop walked):
 *  codes        [rows][cols] b-bit codes, one LSB-first bitstream over the
 *               whole matrix (row-major), padded to a byte at the end only.
 *  first-level statistics, per (group g, row r), g in [0, n_groups):
 *    bilevel:   scale_codes / zero_codes: qq-bit codes, bitstreams indexed
 *               [g][r]; second level: scale_q2 / zero_q2 [g][n_qgroups][2]
 *               fp16 (scale, zero) for each beta2-row group.
 *    16-bit:    scale_f16 / zero_f16 [g][r] fp16 values.
 *  outliers     CSR over rows: outlier_rowptr[rows+1] (int32),
 *               outlier_col[nnz] (uint16, permuted column index),
 *               outlier_val[nnz] (fp16, the exact weight, replaces the code).
 *  perm         [cols] int32: permuted column j holds original column perm[j];
 *               NULL means identity.
 * Dequantized weight (permuted space): w[r][j] = s[g][r] * (q[r][j] - z[g][r]),
 * g = j / groupsize, unless (r, j) is an outlier. */
typedef struct spqr_tensor {
    int32_t rows, cols;
    int32_t wbits, groupsize;          /* groupsize resolved: never 0 here */
    int32_t qq_scale_bits, qq_zero_bits, qq_groupsize;
    int32_t n_groups;                  /* ceil(cols / groupsize) */
    int32_t n_qgroups;                 /* ceil(rows / qq_groupsize), 0 when not bilevel */
    uint8_t *codes;        size_t codes_bytes;
    uint8_t *scale_codes;  size_t scale_codes_bytes;   /* NULL unless qq_scale_bits */
    uint8_t *zero_codes;   size_t zero_codes_bytes;    /* NULL unless qq_zero_bits */
    uint16_t *scale_q2;                                /* [n_groups][n_qgroups][2] or NULL */
    uint16_t *zero_q2;                                 /* [n_groups][n_qgroups][2] or NULL */
    uint16_t *scale_f16;                               /* [n_groups][rows] or NULL */
    uint16_t *zero_f16;                                /* [n_groups][rows] or NULL */
    int32_t *perm;                                     /* [cols] or NULL */
    int32_t *outlier_rowptr;                           /* [rows + 1] */
    uint16_t *outlier_col;                             /* [nnz] */
    uint16_t *outlier_val;                             /* [nnz] fp16 */
    int64_t nnz;
    int32_t owns_memory;   /* 1: free() the arrays in spqr_tensor_free */
} spqr_tensor;

SPQR_API void spqr_tensor_free(spqr_tensor *t);

/* Size accounting. formula_bits follows docs (b + (qs+qz)/beta1 +
 * 2*32/(beta1*beta2) + 32*nnz/(rows*cols), or b + 32/beta1 with 16-bit
 * statistics); stored_bits counts every byte the tensor holds, including
 * the CSR row pointers and the permutation that the formula amortises. */
typedef struct spqr_size_report {
    double formula_bits_per_param;
    double stored_bits_per_param;
    uint64_t stored_bytes;
    uint64_t overhead_bytes;   /* rowptr + perm + byte padding: the formula's amortised terms */
    uint64_t overhead_bits;    /* the same, exact: 8*stored_bytes == formula bits + overhead_bits */
} spqr_size_report;

SPQR_API void spqr_tensor_size(const spqr_tensor *t, spqr_size_report *out);

/* Reference kernels: scalar, clear, the yardstick for SIMD paths. */
/* W: [rows][cols], original column order. */
SPQR_API spqr_status spqr_tensor_dequantize(const spqr_tensor *t, float *W, spqr_err *err);
/* y[rows] = W x[cols] */
SPQR_API spqr_status spqr_matvec_ref(const spqr_tensor *t, const float *x, float *y, spqr_err *err);
/* Y[n][rows] = X[n][cols] W^T */
SPQR_API spqr_status spqr_matmul_ref(const spqr_tensor *t, const float *X, int32_t n, float *Y, spqr_err *err);

/* ------------------------------------------------------------------ */
/* Quantizing one linear layer                                          */
/* ------------------------------------------------------------------ */

typedef struct spqr_quant_report {
    int64_t n_outliers;
    double rel_hessian_error;  /* tr(dW H dW^T) / tr(W H W^T), H undamped */
    double seconds;
} spqr_quant_report;

/* Quantize W [rows][cols] with Hessian H [cols][cols] (symmetric PSD).
 * Outputs (each may be NULL):
 *   out_tensor    the packed tensor (caller frees with spqr_tensor_free)
 *   out_W         [rows][cols] dequantized weights, original column order;
 *                 bit-identical to spqr_tensor_dequantize(out_tensor)
 *   out_mask      [rows][cols] 1 where the weight is an outlier, original order
 *   report        (computing rel_hessian_error costs two rows*cols^2 dsyrk; pass NULL to skip)
 * n_threads <= 0 means "all cores", at most 4096. n_threads is the engine's OpenMP thread
 * count; the BLAS/LAPACK calls use OpenBLAS's own pool (OPENBLAS_NUM_THREADS).
 * The result does not depend on either. Semantics: docs/method.md. */
SPQR_API spqr_status spqr_quantize_layer(const float *W, int32_t rows, int32_t cols, const float *H,
                                const spqr_quant_params *p, int32_t n_threads,
                                const spqr_logger *log, spqr_tensor **out_tensor,
                                float *out_W, uint8_t *out_mask, spqr_quant_report *report,
                                spqr_err *err);


/* ------------------------------------------------------------------ */
/* safetensors files (src/io/)                                          */
/* ------------------------------------------------------------------ */

typedef enum spqr_dtype {
    SPQR_DTYPE_F32 = 0,
    SPQR_DTYPE_F16 = 1,
    SPQR_DTYPE_BF16 = 2,
    SPQR_DTYPE_F64 = 3,
    SPQR_DTYPE_U8 = 4,
    SPQR_DTYPE_I8 = 5,
    SPQR_DTYPE_I16 = 6,
    SPQR_DTYPE_U16 = 7,
    SPQR_DTYPE_I32 = 8,
    SPQR_DTYPE_I64 = 9,
    SPQR_DTYPE_BOOL = 10
} spqr_dtype;

SPQR_API size_t spqr_dtype_size(spqr_dtype t);
SPQR_API const char *spqr_dtype_name(spqr_dtype t); /* safetensors spelling: "F32", "BF16", ... */

#define SPQR_MAX_DIMS 8

/* One tensor of an open file; data points into the memory-mapped file. */
typedef struct spqr_st_tensor {
    const char *name;
    spqr_dtype dtype;
    int32_t ndim;
    int64_t shape[SPQR_MAX_DIMS];
    int64_t numel;
    const void *data;
    uint64_t nbytes;
} spqr_st_tensor;

typedef struct spqr_safetensors spqr_safetensors;

/* Maps the file read-only and validates the header completely (size limits,
 * JSON, dtypes, shapes, offsets inside the file, no overlaps, nbytes =
 * numel * dtype size) before returning. */
SPQR_API spqr_status spqr_safetensors_open(const char *path, spqr_safetensors **out, spqr_err *err);
SPQR_API void spqr_safetensors_close(spqr_safetensors *f);
SPQR_API int32_t spqr_safetensors_count(const spqr_safetensors *f);
SPQR_API const spqr_st_tensor *spqr_safetensors_at(const spqr_safetensors *f, int32_t i);
SPQR_API const spqr_st_tensor *spqr_safetensors_find(const spqr_safetensors *f, const char *name);
/* String value of key in "__metadata__", or NULL. */
SPQR_API const char *spqr_safetensors_metadata(const spqr_safetensors *f, const char *key);
/* Converts an F32/F16/BF16 tensor to fp32 (dst holds numel floats). */
SPQR_API spqr_status spqr_st_tensor_to_f32(const spqr_st_tensor *t, float *dst, spqr_err *err);

typedef struct spqr_st_writer spqr_st_writer;
SPQR_API spqr_status spqr_st_writer_create(spqr_st_writer **out, spqr_err *err);
/* data is borrowed until spqr_st_writer_write returns. */
SPQR_API spqr_status spqr_st_writer_add(spqr_st_writer *w, const char *name, spqr_dtype dtype, int32_t ndim,
                               const int64_t *shape, const void *data, spqr_err *err);
SPQR_API spqr_status spqr_st_writer_set_metadata(spqr_st_writer *w, const char *key, const char *value,
                                        spqr_err *err);
/* Writes atomically: a temporary file in the same directory, fsync, rename. */
SPQR_API spqr_status spqr_st_writer_write(spqr_st_writer *w, const char *path, spqr_err *err);
SPQR_API void spqr_st_writer_free(spqr_st_writer *w);

/* ------------------------------------------------------------------ */
/* Tokenizer from a Hugging Face tokenizer.json (src/tokenizer/tokenizer*)   */
/* ------------------------------------------------------------------ */

typedef struct spqr_tokenizer spqr_tokenizer;

SPQR_API spqr_status spqr_tokenizer_load(const char *path, spqr_tokenizer **out, spqr_err *err);
SPQR_API spqr_status spqr_tokenizer_load_from_memory(const char *json, size_t len, spqr_tokenizer **out,
                                            spqr_err *err);
SPQR_API void spqr_tokenizer_free(spqr_tokenizer *t);
SPQR_API int32_t spqr_tokenizer_vocab_size(const spqr_tokenizer *t);
SPQR_API int32_t spqr_tokenizer_bos_id(const spqr_tokenizer *t); /* -1 if none */
SPQR_API int32_t spqr_tokenizer_eos_id(const spqr_tokenizer *t); /* -1 if none */
/* 1 when Hugging Face starts plain text with bos: tokenizer_config.json's
 * add_bos_token when it says, else whether tokenizer.json's post-processor
 * template begins with it (Llama, Gemma: 1; Qwen, GPT-2 style: 0). */
SPQR_API int spqr_tokenizer_adds_bos(const spqr_tokenizer *t);
/* Encodes len bytes of text (invalid UTF-8 allowed). *ids is malloc'ed. */
SPQR_API spqr_status spqr_tokenizer_encode(const spqr_tokenizer *t, const char *text, size_t len, int add_bos,
                                  int32_t **ids, int32_t *n_ids, spqr_err *err);
/* Decodes ids to bytes (malloc'ed, NUL-terminated, *len excludes the NUL). */
SPQR_API spqr_status spqr_tokenizer_decode(const spqr_tokenizer *t, const int32_t *ids, int32_t n, char **text,
                                  size_t *len, spqr_err *err);
/* Streaming: bytes of token id when it follows prev (-1 at the start), for
 * printing as generation proceeds. Returns the number of bytes written
 * (truncated to cap), or -1 for an invalid id. */
SPQR_API int32_t spqr_tokenizer_piece(const spqr_tokenizer *t, int32_t prev, int32_t id, char *buf, int32_t cap);

/* ------------------------------------------------------------------ */
/* Chat templates (src/tokenizer/chat_template*, docs/chat.md)          */
/* ------------------------------------------------------------------ */

typedef struct spqr_chat_message {
    const char *role;    /* "system", "user", "assistant", ... */
    const char *content; /* NUL-terminated UTF-8 */
} spqr_chat_message;

/* Renders a Hugging Face chat_template (Jinja, as transformers renders it:
 * trim_blocks, lstrip_blocks) over messages with add_generation_prompt,
 * bos_token and eos_token (NULL: undefined in the template). *out is
 * malloc'ed, NUL-terminated. The template's raise_exception("...") comes
 * back as SPQR_ERR_INVALID_ARG with that message; a template that does not
 * parse or evaluate as SPQR_ERR_FORMAT; one past the size, time or depth
 * limits as SPQR_ERR_UNSUPPORTED. */
SPQR_API spqr_status spqr_chat_template_render(const char *tmpl, const spqr_chat_message *msgs, int32_t n,
                                      int add_generation_prompt, const char *bos_token, const char *eos_token,
                                      char **out, spqr_err *err);

/* ------------------------------------------------------------------ */
/* .spqr model files (src/format/spqr_file*)                            */
/* ------------------------------------------------------------------ */

/* One self-contained file: model config JSON, tokenizer.json, quantization
 * metadata JSON, dense tensors and packed SpQR tensors, every array 64-byte
 * aligned for memory mapping, every section checksummed (docs/format.md). */
typedef struct spqr_archive spqr_archive;

/* Maps the file read-only and validates ALL of it before returning: header,
 * version (other versions: SPQR_ERR_UNSUPPORTED), checksums of the header,
 * table and every section, bounds, alignment, overlaps, names, JSON, dense
 * sizes, and the full consistency of every packed tensor. */
SPQR_API spqr_status spqr_archive_open(const char *path, spqr_archive **out, spqr_err *err);
/* The same on a caller's buffer (borrowed until close; 64-byte aligned, else
 * SPQR_ERR_INVALID_ARG). label names the buffer in error messages. */
SPQR_API spqr_status spqr_archive_open_memory(const void *data, size_t size, const char *label, spqr_archive **out,
                                     spqr_err *err);
SPQR_API void spqr_archive_close(spqr_archive *a);

/* NUL-terminated JSON text, or NULL when the file has no such section. */
SPQR_API const char *spqr_archive_config_json(const spqr_archive *a);
SPQR_API const char *spqr_archive_metadata_json(const spqr_archive *a);
/* tokenizer.json bytes (NUL-terminated; *len excludes the NUL), or NULL. */
SPQR_API const char *spqr_archive_tokenizer(const spqr_archive *a, size_t *len);

/* Tensors (dense and packed) in file order. Exactly one of dense_at and
 * packed_at is non-NULL for a valid i. Everything points into the mapping
 * and lives until spqr_archive_close; packed tensors have owns_memory = 0
 * and must not be modified or freed. */
SPQR_API int32_t spqr_archive_count(const spqr_archive *a);
SPQR_API const char *spqr_archive_name(const spqr_archive *a, int32_t i);
SPQR_API const spqr_st_tensor *spqr_archive_dense_at(const spqr_archive *a, int32_t i);
SPQR_API const spqr_tensor *spqr_archive_packed_at(const spqr_archive *a, int32_t i);
SPQR_API const spqr_st_tensor *spqr_archive_find_dense(const spqr_archive *a, const char *name);
SPQR_API const spqr_tensor *spqr_archive_find_packed(const spqr_archive *a, const char *name);

/* Where every byte of the file goes. file_bytes = container_bytes +
 * text_bytes + the sum of spqr_archive_tensor_bytes over all tensors,
 * exactly. A tensor's bytes are its section payload (header, arrays and
 * the padding between them), the alignment padding after it (up to the
 * next section or the table), its table entry and its name; the container
 * is the file header (and any padding before the first section); text is
 * config, tokenizer and metadata likewise. */
typedef struct spqr_archive_bytes {
    uint64_t file_bytes, container_bytes, text_bytes;
    uint64_t dense_bytes, packed_bytes;   /* sums of spqr_archive_tensor_bytes by kind */
    int64_t dense_params, packed_params;  /* numel, rows * cols */
    uint32_t version;                     /* of the file's format */
} spqr_archive_bytes;
SPQR_API void spqr_archive_bytes_of(const spqr_archive *a, spqr_archive_bytes *out);
SPQR_API uint64_t spqr_archive_tensor_bytes(const spqr_archive *a, int32_t i);

/* Streaming writer: sections go to a temporary file next to path as they
 * are added (data is only borrowed during each call); finish writes the
 * section table and header, fsyncs and renames over path. Until finish
 * succeeds path is untouched; free without finish removes the temporary.
 * Names are unique across the file. A rejected argument leaves the writer
 * usable; a failed write poisons it (every later call, finish included,
 * fails). */
typedef struct spqr_archive_writer spqr_archive_writer;
SPQR_API spqr_status spqr_archive_writer_create(const char *path, spqr_archive_writer **out, spqr_err *err);
SPQR_API spqr_status spqr_archive_writer_add_config(spqr_archive_writer *w, const char *json, spqr_err *err);
SPQR_API spqr_status spqr_archive_writer_add_metadata(spqr_archive_writer *w, const char *json, spqr_err *err);
SPQR_API spqr_status spqr_archive_writer_add_tokenizer(spqr_archive_writer *w, const void *bytes, size_t len,
                                              spqr_err *err);
/* dtype F32, F16 or BF16; data holds numel * dtype-size bytes. */
SPQR_API spqr_status spqr_archive_writer_add_dense(spqr_archive_writer *w, const char *name, spqr_dtype dtype,
                                          int32_t ndim, const int64_t *shape, const void *data, spqr_err *err);
SPQR_API spqr_status spqr_archive_writer_add_packed(spqr_archive_writer *w, const char *name, const spqr_tensor *t,
                                           spqr_err *err);
SPQR_API spqr_status spqr_archive_writer_finish(spqr_archive_writer *w, spqr_err *err);
SPQR_API void spqr_archive_writer_free(spqr_archive_writer *w);

/* ------------------------------------------------------------------ */
/* Models of the families in src/model/arch.h (src/model/)                                              */
/* ------------------------------------------------------------------ */

#define SPQR_MAX_EOS_IDS 16 /* real models list 1-4; a longer list is refused, not cut */

typedef enum spqr_rope_scaling {
    SPQR_ROPE_NONE = 0,
    SPQR_ROPE_LLAMA3 = 1
} spqr_rope_scaling;

typedef struct spqr_config {
    int32_t vocab_size;
    int32_t hidden_size;        /* dim */
    int32_t intermediate_size;  /* MLP hidden dim */
    int32_t n_layers;
    int32_t n_heads;
    int32_t n_kv_heads;         /* GQA: n_heads % n_kv_heads == 0 */
    int32_t head_dim;
    int32_t max_position_embeddings;
    float rms_norm_eps;
    float rope_theta;
    spqr_rope_scaling rope_scaling;
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int32_t rope_original_max_position;
    int32_t tie_word_embeddings;
    int32_t bos_token_id, eos_token_id; /* -1 if absent; eos_token_id == eos_token_ids[0] */
    /* Every id that ends generation: config.json's eos_token_id (an int or a
     * list), then generation_config.json's, then the tokenizer's declared
     * eos when both are silent; duplicates dropped (docs/tokenizer.md). */
    int32_t n_eos_token_ids;
    int32_t eos_token_ids[SPQR_MAX_EOS_IDS];
} spqr_config;

/* 1 if id is one of c's EOS ids. */
SPQR_API int spqr_config_is_eos(const spqr_config *c, int32_t id);

typedef struct spqr_model spqr_model;

/* Loads a Hugging Face checkpoint directory: config.json, model.safetensors
 * or sharded model-*.safetensors + model.safetensors.index.json, and
 * tokenizer.json; tokenizer_config.json (declared bos/eos tokens) and
 * generation_config.json (more EOS ids) when present. Weights are
 * memory-mapped. */
SPQR_API spqr_status spqr_model_load_hf(const char *dir, const spqr_logger *log, spqr_model **out, spqr_err *err);
SPQR_API void spqr_model_free(spqr_model *m);
SPQR_API const spqr_config *spqr_model_config(const spqr_model *m);
SPQR_API const spqr_tokenizer *spqr_model_tokenizer(const spqr_model *m);
/* The checkpoint's chat template (tokenizer_config.json's chat_template;
 * a .spqr carries it), or NULL when it has none. */
SPQR_API const char *spqr_model_chat_template(const spqr_model *m);
/* spqr_chat_template_render with the model's template and bos/eos token
 * strings; SPQR_ERR_UNSUPPORTED when the model has no template. The text
 * already holds the BOS: encode it with add_bos = 0. */
SPQR_API spqr_status spqr_chat_render(const spqr_model *m, const spqr_chat_message *msgs, int32_t n,
                             int add_generation_prompt, char **out, spqr_err *err);

/* Run state: KV cache and scratch buffers for up to max_ctx positions. */
typedef struct spqr_session spqr_session;
/* spqr_session_create_opts with an fp32 KV cache. */
SPQR_API spqr_status spqr_session_create(const spqr_model *m, int32_t max_ctx, int32_t n_threads,
                                spqr_session **out, spqr_err *err);
/* Element type of the KV cache. fp32 keeps keys and values as computed;
 * fp16 rounds them (to nearest even) as they are stored: half the memory,
 * and half the bytes a decoded token's attention reads (llama.cpp's
 * default), at a logit error bounded in tests/test_families.c. */
typedef enum spqr_kv_type { SPQR_KV_F32 = 0, SPQR_KV_F16 = 1 } spqr_kv_type;
typedef struct spqr_session_opts {
    int32_t max_ctx;      /* positions, 1..max_position_embeddings */
    int32_t n_threads;    /* 1..1024 */
    spqr_kv_type kv_type;
} spqr_session_opts;
SPQR_API spqr_status spqr_session_create_opts(const spqr_model *m, const spqr_session_opts *o, spqr_session **out,
                                              spqr_err *err);
/* "f32" / "f16" -> *out; SPQR_ERR_INVALID_ARG for anything else. */
SPQR_API spqr_status spqr_kv_type_parse(const char *name, spqr_kv_type *out, spqr_err *err);
SPQR_API void spqr_session_free(spqr_session *s);
SPQR_API void spqr_session_reset(spqr_session *s);    /* position back to 0 */
SPQR_API int32_t spqr_session_pos(const spqr_session *s);
/* Drops the positions from pos on (0 <= pos < current position; else a
 * no-op), keeping the cache before it: a chat re-feeds only what changed. */
SPQR_API void spqr_session_rewind(spqr_session *s, int32_t pos);
/* Appends n tokens at the current position. logits: [n][vocab] when
 * all_logits, else [vocab] for the last token only; may be NULL. */
SPQR_API spqr_status spqr_session_forward(spqr_session *s, const int32_t *tokens, int32_t n, int all_logits,
                                 float *logits, spqr_err *err);

/* ------------------------------------------------------------------ */
/* fast kernels (src/kernels/spqr_kernel*)                              */
/* ------------------------------------------------------------------ */

/* A packed tensor re-tiled at load time for streaming SIMD kernels
 * (docs/kernels.md). Weights dequantize bit-identically to
 * spqr_tensor_dequantize; matvec/matmul outputs differ from
 * spqr_matvec_ref/spqr_matmul_ref only by fp32 rounding and summation
 * order: |y - y_exact| <= 1e-5 * sum_j |w_j x_j| (tested). */
typedef struct spqr_ktensor spqr_ktensor;

typedef enum spqr_kernel_path {
    SPQR_KERNEL_AUTO = 0,   /* env SPQR_KERNEL=scalar|avx2|avx512|avx512vnni|neon|neondot|avx2i8|avxvnni|vnni256|exact if set, else the fastest the CPU runs */
    SPQR_KERNEL_SCALAR = 1,
    SPQR_KERNEL_AVX2 = 2,   /* AVX2 + FMA + F16C */
    SPQR_KERNEL_AVX512 = 3, /* AVX-512 F/BW/VL/DQ */
    /* AVX-512 VNNI + VBMI with int8 activations (AUTO's choice where the
     * CPU has it; SPQR_KERNEL=exact for exact fp32 activations): the
     * matvec and matmul compute W x^ where x^ is each input rounded to
     * int8 per 16-column tile (scale max|x|/127), exact integer dot products
     * then fp32; |y - W x| <= sum_j |w_j| max|x_tile(j)| / 254 + fp32 rounding.
     * Dequantize stays exact. */
    SPQR_KERNEL_AVX512_VNNI = 4,
    SPQR_KERNEL_NEON = 5,         /* aarch64 Advanced SIMD, exact fp32 activations ("neon") */
    SPQR_KERNEL_NEON_DOTPROD = 6, /* aarch64 dotprod (SDOT), int8 activations as avx512vnni ("neondot") */
    /* AVX2 + FMA + F16C with int8 activations as avx512vnni ("avx2i8"; AUTO's
     * choice on x86-64 without AVX-512 VNNI + VBMI, SPQR_KERNEL=exact keeps avx2) */
    SPQR_KERNEL_AVX2_I8 = 7,
    /* avx2i8 with 256-bit VNNI dot products (vpdpwssd / vpdpbusd), same
     * results: the VEX-coded AVX-VNNI form ("avxvnni": Alder Lake and later,
     * Zen 5) and the EVEX-coded AVX512-VNNI + VL form ("vnni256") */
    SPQR_KERNEL_AVX_VNNI = 8,
    SPQR_KERNEL_VNNI_256 = 9
} spqr_kernel_path;

/* Builds the runtime layout (t is not referenced afterwards). A forced path
 * the CPU cannot run gives SPQR_ERR_UNSUPPORTED. */
SPQR_API spqr_status spqr_ktensor_from_tensor(const spqr_tensor *t, spqr_kernel_path path, spqr_ktensor **out,
                                     spqr_err *err);
SPQR_API void spqr_ktensor_free(spqr_ktensor *kt);
/* Switches the path of an existing layout (same rules as create). */
SPQR_API spqr_status spqr_ktensor_set_path(spqr_ktensor *kt, spqr_kernel_path path, spqr_err *err);
SPQR_API spqr_kernel_path spqr_ktensor_path(const spqr_ktensor *kt);
SPQR_API const char *spqr_kernel_path_name(spqr_kernel_path p);
/* Bytes of weight data one matvec streams (codes, statistics, outliers). */
SPQR_API uint64_t spqr_ktensor_bytes(const spqr_ktensor *kt);
/* y[rows] = W x[cols]; results do not depend on n_threads (<= 0: all cores). */
SPQR_API spqr_status spqr_ktensor_matvec(const spqr_ktensor *kt, const float *x, float *y, int32_t n_threads,
                                spqr_err *err);
/* ys[i][rows_i] = W_i x for k (1..16) layouts taking the same x[cols] (e.g.
 * q, k, v), in one parallel region; each ys[i] as spqr_ktensor_matvec. */
SPQR_API spqr_status spqr_ktensor_matvec_multi(const spqr_ktensor *const *kts, int32_t k, const float *x, float *const *ys,
                                      int32_t n_threads, spqr_err *err);
/* Y[n][rows] = X[n][cols] W^T; each weight tile is decoded once per 64 inputs. */
SPQR_API spqr_status spqr_ktensor_matmul(const spqr_ktensor *kt, const float *X, int32_t n, float *Y,
                                int32_t n_threads, spqr_err *err);
/* W[rows][cols], original column order; bit-identical to spqr_tensor_dequantize. */
SPQR_API spqr_status spqr_ktensor_dequantize(const spqr_ktensor *kt, float *W, spqr_err *err);

/* ------------------------------------------------------------------ */
/* whole-model quantization (src/quant/pipeline*)                       */
/* ------------------------------------------------------------------ */

/* Loads either a Hugging Face checkpoint directory (spqr_model_load_hf) or
 * a .spqr file: packed linears are used in place from the mapping (fast
 * kernels, no expansion to fp32), config and tokenizer come from the file. */
SPQR_API spqr_status spqr_model_load(const char *path, const spqr_logger *log, spqr_model **out, spqr_err *err);
/* 1 when the model's linears are packed SpQR tensors (loaded from .spqr). */
SPQR_API int32_t spqr_model_is_quantized(const spqr_model *m);

/* One progress event: a calibration pass over the samples or one linear
 * layer quantized. Steps of blocks restored by --resume are reported as
 * skipped so an ETA can be based on the work actually done in this run. */
typedef struct spqr_quantize_progress {
    int32_t block, n_blocks;   /* transformer block being worked on */
    int64_t step, n_steps;     /* steps finished so far / in the whole run */
    int64_t steps_skipped;     /* of step: restored from checkpoints */
    const char *what;          /* e.g. "calibrate q,k,v", "quantize mlp.down_proj" */
    double elapsed_s;          /* since spqr_model_quantize started */
} spqr_quantize_progress;
typedef void (*spqr_quantize_progress_fn)(void *user, const spqr_quantize_progress *p);

/* Scale-out of spqr_model_quantize over several processes
 * (docs/quantize.md, "Scale-out"): the collective operations a run needs,
 * supplied by the caller (the CLI implements them with MPI), so the
 * library links no message-passing library. Every process of the job
 * calls spqr_model_quantize with the same model, calibration and options
 * and its own rank; rank 0 writes the checkpoints and the file. Each
 * function is called by every rank in the same order and returns 0 on
 * success; anything else fails the run (SPQR_ERR_IO). */
typedef struct spqr_comm {
    int32_t rank, size;        /* 0 <= rank < size */
    void *user;
    /* buf[0 .. n) = the element-wise sum of every rank's buf (exact: integers) */
    int (*allreduce_sum_i64)(void *user, int64_t *buf, size_t n);
    /* every rank's buf[0 .. bytes) = root's */
    int (*bcast)(void *user, void *buf, size_t bytes, int32_t root);
} spqr_comm;

typedef struct spqr_quantize_options {
    spqr_quant_params params;
    int32_t nsamples;          /* calibration windows (default 128) */
    int32_t seqlen;            /* tokens per window; 0 = min(2048, max_position_embeddings) */
    uint64_t seed;             /* window sampling (default 0) */
    int32_t n_threads;         /* >= 1 */
    const char *checkpoint_dir;/* NULL: out_path + ".partial" */
    int32_t resume;            /* 1: continue from matching checkpoints in checkpoint_dir */
    const volatile int *cancel;/* non-NULL and non-zero: stop between layers, SPQR_ERR_INTERRUPTED */
    spqr_quantize_progress_fn progress;
    void *progress_user;
    const spqr_logger *log;
    const char *preset;        /* recorded in the file's metadata; may be NULL */
    int32_t quantize_head;     /* 1: also quantize lm_head (calibrated on the final-normed outputs of
                                  the last quantized block); with tied embeddings the embedding stays
                                  dense and the head becomes a separate packed tensor */
    int32_t quantize_embed;    /* 1: also store the token embedding quantized (round-to-nearest with the
                                  same statistics, no calibration; a lookup dequantizes one row); with
                                  tied embeddings and quantize_head: the calibrated head is the one
                                  table for both, unless tied_two_tables */
    int32_t tied_two_tables;   /* tied embeddings, quantize_head and quantize_embed: 1 stores the RTN
                                  embedding for the lookup besides the calibrated head (bigger, a
                                  little better: bench/results/whole_file.md) */
    double target_bits;        /* > 0: choose each linear's setting from a grid (docs/quantize.md, "Bit
                                  budgets") so that the whole file holds target_bits bits per model
                                  parameter (every stored byte over every parameter); params then gives
                                  only the knobs the grid does not set */
    int32_t target_linears;    /* with target_bits: the budget is for the quantized linears' stored bytes alone */
    int32_t overwrite;         /* 1: an existing regular file at out_path that is not a .spqr model may be
                                  replaced (--force); 0: refused. Directories, devices, FIFOs and sockets
                                  are refused either way (docs/safety.md) */
    const spqr_comm *comm;     /* NULL: one process; else this process's part of a scale-out job, whose
                                  output is byte-identical to the one-process run's for any size */
} spqr_quantize_options;

SPQR_API void spqr_quantize_options_default(spqr_quantize_options *o);

/* Aggregate over the linears of one kind (q_proj, ..., down_proj). */
typedef struct spqr_quantize_kind_summary {
    char name[48];             /* the family's name for it: "self_attn.q_proj", ... */
    int32_t count;
    int64_t params, outliers;
    double rel_err_mean;       /* mean over layers of tr(dW H dW^T)/tr(W H W^T) */
    double rel_err_max;
    double formula_bits;       /* params-weighted mean of the section-4 formula */
    double stored_bits;        /* 8 * stored bytes / params */
    double seconds;            /* quantization time spent in this run */
} spqr_quantize_kind_summary;

#define SPQR_MAX_LINEAR_KINDS 16 /* room for a family's block linears; n_kinds says how many */

typedef struct spqr_quantize_summary {
    /* The model family's block linears in calibration order (its table in
     * src/model/arch_<family>.c); kinds[0 .. n_kinds) are filled. */
    spqr_quantize_kind_summary kinds[SPQR_MAX_LINEAR_KINDS];
    int32_t n_kinds;
    spqr_quantize_kind_summary head; /* "lm_head"; count 0 without quantize_head */
    spqr_quantize_kind_summary embed; /* "embed_tokens"; count 0 unless quantize_embed stored its own table */
    int64_t quantized_params;  /* every packed linear, the head included when quantized */
    uint64_t quantized_bytes;  /* packed tensors, every stored byte */
    double avg_bits_stored;    /* 8 * quantized_bytes / quantized_params (head included when quantized) */
    double avg_bits_formula;
    double avg_bits_stored_blocks, avg_bits_formula_blocks; /* the same over the block linears only */
    int64_t dense_params;      /* norms, and the embedding and lm_head unless quantized (kept 16/32-bit) */
    uint64_t dense_bytes;
    int64_t model_params;      /* parameters of the original model (a tied matrix counted once) */
    uint64_t file_bytes;       /* size of the written .spqr */
    double file_bits;          /* 8 * file_bytes / model_params: every stored byte over every parameter */
    int32_t resumed_blocks;    /* blocks restored from checkpoints */
    int32_t seqlen, nsamples;  /* as resolved */
    int64_t calib_tokens;
    double seconds;
} spqr_quantize_summary;

/* Sequential SpQR calibration and quantization of every linear of every
 * block (docs/quantize.md): nsamples windows of seqlen tokens drawn from
 * calib_tokens with a seeded generator; per block the groups [q,k,v], [o],
 * [gate,up], [down] are calibrated on the inputs produced by the already
 * quantized layers, then the block's quantized output feeds the next.
 * Norms, and the embedding and lm_head unless opt->quantize_embed /
 * opt->quantize_head, stay in their original precision. Writes
 * out_path atomically; per-block checkpoints go to the checkpoint dir and
 * are removed on success. Before any work it checks everything the final
 * write needs (output path, config and tokenizer text as they will be
 * stored, free disk space for the estimated checkpoints and file), and it
 * holds an exclusive lock on the checkpoint dir for the whole run: a second
 * run on the same output fails at once. summary may be NULL. */
SPQR_API spqr_status spqr_model_quantize(const spqr_model *m, const int32_t *calib_tokens, int64_t n_tokens,
                                const spqr_quantize_options *opt, const char *out_path,
                                spqr_quantize_summary *summary, spqr_err *err);

/* ------------------------------------------------------------------ */
/* Evaluation: perplexity, KL against a saved base, sampling (docs/eval.md) */
/* ------------------------------------------------------------------ */

/* How text is cut and scored. SPQR_PPL_SPQR: tokens without BOS, cut into
 * non-overlapping windows of ctx tokens (the last partial one dropped),
 * every token of a window but its first scored. SPQR_PPL_LLAMACPP
 * (llama.cpp's perplexity tool): BOS, where the tokenizer adds one, at the
 * start of the text and in place of the first token of every window, only
 * the second half of each window scored. The two are not comparable. */
typedef enum spqr_ppl_protocol { SPQR_PPL_SPQR = 0, SPQR_PPL_LLAMACPP = 1 } spqr_ppl_protocol;

typedef struct spqr_eval_progress {
    int32_t window, n_windows; /* windows done (1-based), of */
    double elapsed_s;          /* since the evaluation started (after session setup) */
    double ppl;                /* over the windows done */
    double tokens_per_s;       /* window tokens (scored or not) per second so far */
} spqr_eval_progress;
typedef void (*spqr_eval_progress_fn)(void *user, const spqr_eval_progress *p);

typedef struct spqr_eval_options {
    spqr_ppl_protocol protocol;  /* default SPQR_PPL_SPQR */
    int32_t ctx;                 /* 0 = min(2048, max_position_embeddings) */
    int32_t chunks;              /* 0 = all windows */
    int32_t batch;               /* tokens per forward call; 0 = the window; 1 = the decode kernels */
    int32_t n_threads;           /* >= 1 */
    /* non-NULL: write the base log-prob distributions here, atomically; an
     * existing file is replaced only if it is a base file, or with overwrite
     * (never a directory, FIFO or device). At most 16 GB. */
    const char *kl_base_out;
    int32_t overwrite;           /* like --force for kl_base_out */
    const char *kl_in;           /* non-NULL: compare with this base file (same protocol, ctx, vocab, tokens) */
    const volatile int *cancel;  /* non-NULL and non-zero: stop between windows, SPQR_ERR_INTERRUPTED */
    spqr_eval_progress_fn progress; void *progress_user; /* after every window; may be NULL */
    spqr_kv_type kv_type;        /* default SPQR_KV_F32 (exact) */
} spqr_eval_options;

typedef struct spqr_eval_result {
    double ppl, ppl_stderr, nll_mean;  /* exp(mean NLL); ppl * stderr of the mean NLL (llama.cpp's); mean NLL (nats) */
    int64_t n_tokens, n_scored;       /* text tokens (with the protocol's BOS), scored positions */
    int32_t n_windows, ctx;
    int32_t has_kl;                   /* with kl_in: */
    double kl_mean, kl_stderr, top1;  /* mean KL(base||this) (nats), its stderr, top-1 agreement in [0,1] */
    double base_ppl;                  /* the base file's ppl */
    double seconds, tokens_per_s;     /* evaluation time; window tokens per second */
    double base_ppl_stderr;           /* the base file's ppl_stderr */
    int64_t top1_count;               /* positions where base and this argmax agree (top1 = top1_count / n_scored) */
} spqr_eval_result;

SPQR_API void spqr_eval_options_default(spqr_eval_options *o);
/* Evaluates text (UTF-8, len bytes) under opt: tokenized without BOS, then
 * spqr_model_perplexity_tokens. Errors: SPQR_ERR_INVALID_ARG (empty text,
 * fewer tokens than one window, ctx beyond max_position_embeddings),
 * SPQR_ERR_FORMAT / SPQR_ERR_IO (a kl_in of another run, unreadable),
 * SPQR_ERR_INTERRUPTED, SPQR_ERR_NOMEM; kl_base_out is left untouched on any error. */
SPQR_API spqr_status spqr_model_perplexity(const spqr_model *m, const char *text, size_t len,
                                           const spqr_eval_options *opt, spqr_eval_result *out, spqr_err *err);
/* Same over already tokenized ids (no BOS handling beyond the protocol's). */
SPQR_API spqr_status spqr_model_perplexity_tokens(const spqr_model *m, const int32_t *ids, int64_t n,
                                                  const spqr_eval_options *opt, spqr_eval_result *out,
                                                  spqr_err *err);

/* Next-token sampling: greedy at temperature 0, otherwise softmax at the
 * temperature then nucleus (top-p) sampling with the sampler's own RNG,
 * seeded: the same seed gives the same tokens. */
typedef struct spqr_sampler spqr_sampler;   /* opaque */
/* temperature finite >= 0, top_p in (0, 1]; SPQR_ERR_INVALID_ARG otherwise. */
SPQR_API spqr_status spqr_sampler_create(int32_t vocab, float temperature, float top_p, uint64_t seed,
                                         spqr_sampler **out, spqr_err *err);
SPQR_API void spqr_sampler_free(spqr_sampler *s);
/* Next token from logits[vocab] (above temperature 0 the array is
 * overwritten with probabilities); greedy (argmax, first on ties) at temperature 0. */
SPQR_API int32_t spqr_sampler_sample(spqr_sampler *s, float *logits);

#ifdef __cplusplus
}
#endif
#endif /* SPQR_H */
