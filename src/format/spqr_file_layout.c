/* Array sizes implied by a packed tensor header: the single definition the
 * writer lays out and the reader enforces. */
#include "format/bitpack.h"
#include "format/spqr_file.h"

#include <string.h>

/* rows * cols is at most 2^60 weights (a 2^57-byte code stream at 8 bits):
 * far beyond any file, and small enough that no size below overflows. */
#define MAX_WEIGHTS ((uint64_t)1 << 60)

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Returns NULL when the layout is valid (sizes filled), else a reason. */
const char *spqrf_packed_sizes(const spqrf_packed_header *h, uint32_t version, uint64_t sizes[SPQRF_N_ARRAYS]) {
    for (int i = 0; i < SPQRF_N_ARRAYS; i++) sizes[i] = 0;
    if (h->rows < 1 || h->cols < 1) return "rows and cols must be >= 1";
    if (h->wbits < 2 || h->wbits > 8) return "wbits outside 2..8";
    if (h->groupsize < 1) return "groupsize < 1";
    if (h->qq_scale_bits < 0 || h->qq_scale_bits > 8 || h->qq_zero_bits < 0 || h->qq_zero_bits > 8)
        return "statistic bits outside 0..8";
    if (h->n_groups != ceil_div(h->cols, h->groupsize)) return "n_groups is not ceil(cols / groupsize)";
    const int bilevel = h->qq_scale_bits > 0 || h->qq_zero_bits > 0;
    if (bilevel) {
        if (h->qq_groupsize < 1) return "qq_groupsize < 1 with bilevel statistics";
        if (h->n_qgroups != ceil_div(h->rows, h->qq_groupsize)) return "n_qgroups is not ceil(rows / qq_groupsize)";
    } else if (h->qq_groupsize != 0 || h->n_qgroups != 0) {
        return "qq_groupsize and n_qgroups must be 0 without bilevel statistics";
    }
    const uint64_t n = (uint64_t)h->rows * (uint64_t)h->cols;
    if (n > MAX_WEIGHTS) return "rows * cols is too large";
    if (h->nnz < 0 || (uint64_t)h->nnz > n || h->nnz > INT32_MAX)
        return "nnz is negative or exceeds rows * cols (or 2^31 - 1)";
    const uint32_t known = version >= 2 ? SPQRF_PACKED_HAS_PERM | SPQRF_PACKED_PERM_U16 | SPQRF_PACKED_ROWS_MASK
                                        : SPQRF_PACKED_HAS_PERM;
    if (h->flags & ~known) return "unknown flag bits";
    const uint32_t rows_enc = spqrf_rows_encoding_of(h->flags);
    if (rows_enc != SPQRF_ROWS_PTR32 && rows_enc != SPQRF_ROWS_CNT8 && rows_enc != SPQRF_ROWS_CNT16)
        return "unknown row pointer encoding (flag bits 2..3)";
    if ((h->flags & SPQRF_PACKED_PERM_U16) && (!(h->flags & SPQRF_PACKED_HAS_PERM) || h->cols > 65536))
        return "flag perm_u16 without a permutation or with cols > 65536";
    const uint64_t n_stats = (uint64_t)h->n_groups * (uint64_t)h->rows; /* <= n */
    const uint64_t n_q2 = (uint64_t)h->n_groups * (uint64_t)h->n_qgroups;  /* <= n */
    sizes[SPQRF_A_CODES] = spqr_bits_bytes(n, h->wbits);
    if (h->qq_scale_bits) {
        sizes[SPQRF_A_SCALE_CODES] = spqr_bits_bytes(n_stats, h->qq_scale_bits);
        sizes[SPQRF_A_SCALE_Q2] = n_q2 * 4;
    } else {
        sizes[SPQRF_A_SCALE_F16] = n_stats * 2;
    }
    if (h->qq_zero_bits) {
        sizes[SPQRF_A_ZERO_CODES] = spqr_bits_bytes(n_stats, h->qq_zero_bits);
        sizes[SPQRF_A_ZERO_Q2] = n_q2 * 4;
    } else {
        sizes[SPQRF_A_ZERO_F16] = n_stats * 2;
    }
    if (h->flags & SPQRF_PACKED_HAS_PERM)
        sizes[SPQRF_A_PERM] = (uint64_t)h->cols * (h->flags & SPQRF_PACKED_PERM_U16 ? 2 : 4);
    sizes[SPQRF_A_ROWPTR] = rows_enc == SPQRF_ROWS_CNT8    ? (uint64_t)h->rows
                            : rows_enc == SPQRF_ROWS_CNT16 ? (uint64_t)h->rows * 2
                                                           : ((uint64_t)h->rows + 1) * 4;
    sizes[SPQRF_A_COL] = (uint64_t)h->nnz * 2;
    sizes[SPQRF_A_VAL] = (uint64_t)h->nnz * 2;
    return NULL;
}

const char *spqrf_section_type_name(uint32_t type) {
    switch (type) {
    case SPQRF_SEC_CONFIG: return "config";
    case SPQRF_SEC_TOKENIZER: return "tokenizer";
    case SPQRF_SEC_METADATA: return "metadata";
    case SPQRF_SEC_DENSE: return "dense tensor";
    case SPQRF_SEC_PACKED: return "packed tensor";
    default: return "unknown type";
    }
}

void spqrf_packed_header_for(const spqr_tensor *t, spqrf_packed_header *h) {
    memset(h, 0, sizeof *h);
    h->rows = t->rows;
    h->cols = t->cols;
    h->wbits = t->wbits;
    h->groupsize = t->groupsize;
    h->qq_scale_bits = t->qq_scale_bits;
    h->qq_zero_bits = t->qq_zero_bits;
    const int bilevel = t->qq_scale_bits > 0 || t->qq_zero_bits > 0;
    h->qq_groupsize = bilevel ? t->qq_groupsize : 0;
    h->n_groups = t->n_groups;
    h->n_qgroups = bilevel ? t->n_qgroups : 0;
    h->nnz = t->nnz;
    if (t->perm) h->flags |= SPQRF_PACKED_HAS_PERM | (t->cols <= 65536 ? SPQRF_PACKED_PERM_U16 : 0);
    int32_t most = 0; /* the largest outlier count of a row */
    for (int32_t r = 0; r < t->rows; r++) {
        const int32_t c = t->outlier_rowptr[r + 1] - t->outlier_rowptr[r];
        if (c > most) most = c;
    }
    const uint32_t enc = most <= 255 ? SPQRF_ROWS_CNT8 : most <= 65535 ? SPQRF_ROWS_CNT16 : SPQRF_ROWS_PTR32;
    h->flags |= enc << SPQRF_PACKED_ROWS_SHIFT;
}

uint64_t spqrf_packed_layout(spqrf_packed_header *h, const uint64_t sizes[SPQRF_N_ARRAYS]) {
    uint64_t off = sizeof *h;
    for (int i = 0; i < SPQRF_N_ARRAYS; i++) {
        if (!sizes[i]) continue;
        off = spqrf_align_up(off, SPQRF_ALIGN);
        h->arrays[i].offset = off;
        h->arrays[i].nbytes = sizes[i];
        off += sizes[i];
    }
    return off;
}
