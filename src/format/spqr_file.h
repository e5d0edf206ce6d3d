/* On-disk layout of .spqr model files (docs/format.md is the normative
 * description; these structs are it, byte for byte).
 *
 * File = header (64 B) | sections, each 64-byte aligned | section table
 * (entries of 64 B, then the NUL-terminated names). The table comes last so
 * a writer can stream sections as they are produced and describe them at
 * the end; the header is rewritten last.
 *
 * Every struct below has only naturally aligned fixed-width fields, so its
 * C layout equals the file layout on every little-endian ABI we build for;
 * the static_asserts pin sizes and offsets. Integers are little-endian. */
#ifndef SPQR_FORMAT_SPQR_FILE_H
#define SPQR_FORMAT_SPQR_FILE_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "spqr.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the .spqr format code assumes a little-endian host"
#endif

#define SPQRF_MAGIC "SPQRMDL" /* 8 bytes with its NUL */
#define SPQRF_VERSION 2u     /* what the writer produces */
#define SPQRF_VERSION_MIN 1u /* the oldest version the reader still accepts */
#define SPQRF_ALIGN 64u
#define SPQRF_MAX_SECTIONS (1u << 20)
#define SPQRF_MAX_NAME 1024u         /* bytes, without the NUL */
#define SPQRF_MAX_JSON ((uint64_t)64 << 20)
#define SPQRF_MAX_TOKENIZER ((uint64_t)256 << 20)
#define SPQRF_MAX_SECTION_ALIGN (1u << 20)

enum spqrf_section_type {
    SPQRF_SEC_CONFIG = 1,    /* HF config.json text + NUL */
    SPQRF_SEC_TOKENIZER = 2, /* tokenizer.json bytes + NUL */
    SPQRF_SEC_METADATA = 3,  /* quantization metadata JSON text + NUL */
    SPQRF_SEC_DENSE = 4,     /* spqrf_dense_header + data */
    SPQRF_SEC_PACKED = 5     /* spqrf_packed_header + arrays */
};

typedef struct spqrf_header {
    char magic[8];            /*  0 "SPQRMDL\0" */
    uint32_t version;         /*  8 SPQRF_VERSION */
    uint32_t flags;           /* 12 0 in version 1 */
    uint64_t file_size;       /* 16 total bytes of the file */
    uint64_t table_offset;    /* 24 multiple of 64 */
    uint64_t table_size;      /* 32 section_count * 64 + names */
    uint32_t section_count;   /* 40 */
    uint32_t table_crc;       /* 44 CRC32C of the table_size table bytes */
    uint8_t reserved[12];     /* 48 zero */
    uint32_t header_crc;      /* 60 CRC32C of bytes 0..59 */
} spqrf_header;
static_assert(sizeof(spqrf_header) == 64, "spqrf_header is 64 bytes");
static_assert(offsetof(spqrf_header, table_offset) == 24, "layout");
static_assert(offsetof(spqrf_header, section_count) == 40, "layout");
static_assert(offsetof(spqrf_header, header_crc) == 60, "layout");

typedef struct spqrf_entry {
    uint32_t type;            /*  0 spqrf_section_type */
    uint32_t flags;           /*  4 0 in version 1 */
    uint64_t offset;          /*  8 absolute file offset of the payload */
    uint64_t size;            /* 16 payload bytes */
    uint32_t alignment;       /* 24 power of two, 64..2^20; offset % alignment == 0 */
    uint32_t crc;             /* 28 CRC32C of the payload */
    uint32_t name_offset;     /* 32 into the names area (after the entries) */
    uint32_t name_len;        /* 36 bytes without the NUL that follows */
    uint8_t reserved[24];     /* 40 zero */
} spqrf_entry;
static_assert(sizeof(spqrf_entry) == 64, "spqrf_entry is 64 bytes");
static_assert(offsetof(spqrf_entry, crc) == 28, "layout");
static_assert(offsetof(spqrf_entry, name_len) == 36, "layout");

/* Position of one array inside its section (offset relative to the start
 * of the section's payload, a multiple of 64; {0, 0} = absent). */
typedef struct spqrf_array {
    uint64_t offset;
    uint64_t nbytes;
} spqrf_array;
static_assert(sizeof(spqrf_array) == 16, "spqrf_array is 16 bytes");

typedef struct spqrf_dense_header {
    uint32_t dtype;           /*   0 spqr_dtype: F32, F16 or BF16 */
    uint32_t ndim;            /*   4 0..8 */
    uint64_t shape[8];        /*   8 unused dims are 0 */
    spqrf_array data;         /*  72 nbytes = numel * dtype size */
    uint8_t reserved[40];     /*  88 zero */
} spqrf_dense_header;
static_assert(sizeof(spqrf_dense_header) == 128, "spqrf_dense_header is 128 bytes");
static_assert(offsetof(spqrf_dense_header, data) == 72, "layout");

/* The arrays of a packed tensor, in file order. */
enum spqrf_packed_array {
    SPQRF_A_CODES = 0,
    SPQRF_A_SCALE_CODES,
    SPQRF_A_ZERO_CODES,
    SPQRF_A_SCALE_Q2,
    SPQRF_A_ZERO_Q2,
    SPQRF_A_SCALE_F16,
    SPQRF_A_ZERO_F16,
    SPQRF_A_PERM,
    SPQRF_A_ROWPTR,
    SPQRF_A_COL,
    SPQRF_A_VAL,
    SPQRF_N_ARRAYS
};

/* Packed tensor flags. Version 1 knows only HAS_PERM (an i32 permutation
 * and i32 CSR row pointers); version 2 adds the compact encodings, which
 * the writer picks whenever the values fit (spqrf_packed_flags_for). */
#define SPQRF_PACKED_HAS_PERM 1u
#define SPQRF_PACKED_PERM_U16 2u        /* perm stored as u16 (cols <= 65536) */
#define SPQRF_PACKED_ROWS_SHIFT 2       /* bits 2..3: how the CSR row pointers are stored */
#define SPQRF_PACKED_ROWS_MASK (3u << SPQRF_PACKED_ROWS_SHIFT)
enum spqrf_rows_encoding {
    SPQRF_ROWS_PTR32 = 0, /* i32 row pointers [rows + 1] */
    SPQRF_ROWS_CNT8 = 1,  /* u8 outlier count per row [rows] (every count <= 255) */
    SPQRF_ROWS_CNT16 = 2  /* u16 outlier count per row [rows] (every count <= 65535) */
};
static inline uint32_t spqrf_rows_encoding_of(uint32_t flags) {
    return (flags & SPQRF_PACKED_ROWS_MASK) >> SPQRF_PACKED_ROWS_SHIFT;
}

typedef struct spqrf_packed_header {
    int32_t rows, cols;                    /*   0,   4 */
    int32_t wbits, groupsize;              /*   8,  12 */
    int32_t qq_scale_bits, qq_zero_bits;   /*  16,  20 */
    int32_t qq_groupsize;                  /*  24 0 unless bilevel */
    int32_t n_groups, n_qgroups;           /*  28,  32 */
    uint32_t flags;                        /*  36 SPQRF_PACKED_HAS_PERM */
    int64_t nnz;                           /*  40 */
    uint8_t reserved0[16];                 /*  48 zero */
    spqrf_array arrays[SPQRF_N_ARRAYS];    /*  64 11 x 16 bytes */
    uint8_t reserved1[16];                 /* 240 zero */
} spqrf_packed_header;
static_assert(sizeof(spqrf_packed_header) == 256, "spqrf_packed_header is 256 bytes");
static_assert(offsetof(spqrf_packed_header, nnz) == 40, "layout");
static_assert(offsetof(spqrf_packed_header, arrays) == 64, "layout");

/* CRC32C (Castagnoli, reflected, init and final xor 0xFFFFFFFF).
 * Incremental use: crc = spqr_crc32c_update(0, a, n); crc = ..._update(crc, b, m). */
uint32_t spqr_crc32c_update(uint32_t crc, const void *data, size_t n);
/* The table-driven implementation that spqr_crc32c_update falls back to
 * without SSE4.2 (exposed so the tests compare both). */
uint32_t spqr_crc32c_update_portable(uint32_t crc, const void *data, size_t n);
static inline uint32_t spqr_crc32c(const void *data, size_t n) { return spqr_crc32c_update(0, data, n); }

/* "config", "dense tensor", ... for messages; "unknown type" otherwise.
 * Shared by writer and reader so both name sections alike. */
const char *spqrf_section_type_name(uint32_t type);

/* Expected byte sizes of every array of a packed tensor with this layout
 * in a file of this version (0 = absent). Returns NULL, or a short reason
 * when the layout is out of range for that version or its sizes would
 * overflow. Shared by writer and reader so they cannot drift. */
const char *spqrf_packed_sizes(const spqrf_packed_header *h, uint32_t version, uint64_t sizes[SPQRF_N_ARRAYS]);

/* The header fields (shape, knobs, nnz and the smallest encodings the
 * tensor's values allow) the current writer stores for t; arrays left
 * {0, 0}. t must have passed spqr_tensor_check. */
void spqrf_packed_header_for(const spqr_tensor *t, spqrf_packed_header *h);

/* Fills h->arrays (offsets 64-aligned after the header, in array order)
 * for these sizes and returns the section's length: the writer's layout,
 * also what spqrf_packed_file_bytes counts. */
uint64_t spqrf_packed_layout(spqrf_packed_header *h, const uint64_t sizes[SPQRF_N_ARRAYS]);

/* NULL when the len bytes at p may be stored as a text
 * section of this type, else a short reason: within the size limit, no NUL,
 * and for config and metadata valid UTF-8 holding exactly one JSON object.
 * The one rule used by the writer, the reader and the HF loader, so that
 * what loads can always be written. */
const char *spqrf_text_problem(uint32_t type, const char *p, size_t len);

/* Index of the archive's tensor called name (binary search by name), or -1. */
int32_t spqrf_archive_index(const spqr_archive *a, const char *name);

/* spqr_archive_writer_finish with a last check: check(tmp_path) sees the
 * complete file under its temporary name before it replaces anything at
 * the destination; a failing check removes the temporary and returns its
 * status (the destination untouched). */
typedef spqr_status (*spqrf_finish_check_fn)(const char *tmp_path, void *user, spqr_err *err);
spqr_status spqrf_archive_writer_finish_checked(spqr_archive_writer *w, spqrf_finish_check_fn check, void *user,
                                               spqr_err *err);

/* Bytes that a packed tensor named with name_len bytes adds to a .spqr
 * file: its section (64-aligned, as the writer lays it out) plus its table
 * entry and name; 0 for an invalid layout. */
uint64_t spqrf_packed_file_bytes(const spqr_tensor *t, size_t name_len);

static inline uint64_t spqrf_align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

#endif
