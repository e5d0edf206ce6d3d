/* Test and fuzz support for .spqr files: after bytes of a file were edited,
 * recompute its checksums so the edit reaches the semantic checks behind the
 * CRCs. Shared by tests/test_spqr_file.c and fuzz/fuzz_spqr_file.c. */
#ifndef SPQR_TESTS_SPQR_FILE_FIXUP_H
#define SPQR_TESTS_SPQR_FILE_FIXUP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "format/spqr_file.h"

/* Recomputes every section checksum, the table checksum and the header
 * checksum from the (patched) bytes buf[0..n), trusting the patched entries
 * as far as they stay inside the buffer. Does nothing below a header. */
static inline void spqrf_fixup_checksums(uint8_t *buf, size_t n) {
    spqrf_header h;
    if (n < sizeof h) return;
    memcpy(&h, buf, sizeof h);
    if (h.table_offset <= n && h.table_size <= n - h.table_offset &&
        (uint64_t)h.section_count * sizeof(spqrf_entry) <= h.table_size) {
        for (uint32_t i = 0; i < h.section_count; i++) {
            spqrf_entry e;
            uint8_t *pe = buf + h.table_offset + (size_t)i * sizeof e;
            memcpy(&e, pe, sizeof e);
            if (e.offset <= n && e.size <= n - e.offset) e.crc = spqr_crc32c(buf + e.offset, (size_t)e.size);
            memcpy(pe, &e, sizeof e);
        }
        h.table_crc = spqr_crc32c(buf + h.table_offset, (size_t)h.table_size);
    }
    h.header_crc = spqr_crc32c(&h, offsetof(spqrf_header, header_crc));
    memcpy(buf, &h, sizeof h);
}

#endif
