/* Bytes a packed tensor occupies in a .spqr file, by the writer's layout
 * (spqr_archive_writer_add_packed): what --target-bits budgets. */
#include <string.h>

#include "format/spqr_file.h"

uint64_t spqrf_packed_file_bytes(const spqr_tensor *t, size_t name_len) {
    spqrf_packed_header h;
    memset(&h, 0, sizeof h);
    h.rows = t->rows;
    h.cols = t->cols;
    h.wbits = t->wbits;
    h.groupsize = t->groupsize;
    h.qq_scale_bits = t->qq_scale_bits;
    h.qq_zero_bits = t->qq_zero_bits;
    const int bilevel = t->qq_scale_bits > 0 || t->qq_zero_bits > 0;
    h.qq_groupsize = bilevel ? t->qq_groupsize : 0;
    h.n_groups = t->n_groups;
    h.n_qgroups = bilevel ? t->n_qgroups : 0;
    h.flags = t->perm ? SPQRF_PACKED_HAS_PERM : 0;
    h.nnz = t->nnz;
    uint64_t sizes[SPQRF_N_ARRAYS];
    if (spqrf_packed_sizes(&h, sizes)) return 0;
    uint64_t off = sizeof h;
    for (int i = 0; i < SPQRF_N_ARRAYS; i++)
        if (sizes[i]) off = spqrf_align_up(off, SPQRF_ALIGN) + sizes[i];
    /* sections start 64-aligned; the table holds a 64-byte entry and the NUL-terminated name */
    return spqrf_align_up(off, SPQRF_ALIGN) + sizeof(spqrf_entry) + name_len + 1;
}
