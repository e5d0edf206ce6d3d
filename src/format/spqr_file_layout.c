/* Array sizes implied by a packed tensor header: the single definition the
 * writer lays out and the reader enforces. */
#include "format/bitpack.h"
#include "format/spqr_file.h"

/* rows * cols is at most 2^60 weights (a 2^57-byte code stream at 8 bits):
 * far beyond any file, and small enough that no size below overflows. */
#define MAX_WEIGHTS ((uint64_t)1 << 60)

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Returns NULL when the layout is valid (sizes filled), else a reason. */
const char *spqrf_packed_sizes(const spqrf_packed_header *h, uint64_t sizes[SPQRF_N_ARRAYS]) {
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
    if (h->flags & ~SPQRF_PACKED_HAS_PERM) return "unknown flag bits";
    const uint64_t n = (uint64_t)h->rows * (uint64_t)h->cols;
    if (n > MAX_WEIGHTS) return "rows * cols is too large";
    if (h->nnz < 0 || (uint64_t)h->nnz > n || h->nnz > INT32_MAX)
        return "nnz is negative or exceeds rows * cols (or 2^31 - 1)";
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
    if (h->flags & SPQRF_PACKED_HAS_PERM) sizes[SPQRF_A_PERM] = (uint64_t)h->cols * 4;
    sizes[SPQRF_A_ROWPTR] = ((uint64_t)h->rows + 1) * 4;
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
