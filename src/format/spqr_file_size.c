/* Bytes a packed tensor occupies in a .spqr file, by the writer's own
 * header, sizes and layout (spqr_archive_writer_add_packed: the encodings of
 * the current version): what --target-bits budgets. */
#include "format/spqr_file.h"

uint64_t spqrf_packed_file_bytes(const spqr_tensor *t, size_t name_len) {
    spqrf_packed_header h;
    spqrf_packed_header_for(t, &h);
    uint64_t sizes[SPQRF_N_ARRAYS];
    if (spqrf_packed_sizes(&h, SPQRF_VERSION, sizes)) return 0;
    const uint64_t len = spqrf_packed_layout(&h, sizes);
    /* sections start 64-aligned; the table holds a 64-byte entry and the NUL-terminated name */
    return spqrf_align_up(len, SPQRF_ALIGN) + sizeof(spqrf_entry) + name_len + 1;
}
