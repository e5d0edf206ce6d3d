/* libFuzzer target for the .spqr reader (built by fuzz/run_fuzz.sh).
 *
 * Each input is opened twice through spqr_archive_open_memory:
 *  1. as is: exercises the header/table/checksum layers;
 *  2. with every checksum recomputed (as far as the patched header and
 *     entries allow): random mutations would otherwise almost never get
 *     past the CRCs, and it is the semantic checks behind them (sizes,
 *     overlaps, CSR, permutation, JSON) that must hold against anything.
 * Whatever is accepted is then used the way a model loader would: every
 * packed tensor dequantized, multiplied and looked up row by row (the
 * quantized-embedding path, which must equal the dequantization), every
 * dense tensor converted, every string read, and the byte accounting must
 * add up to the input's size, so a validation gap shows up as an
 * ASan/UBSan report or an abort.
 * Buffers are exact-size copies so any read past the end is caught. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tests/spqr_file_fixup.h"
#include "format/spqr_file.h"
#include "format/tensor.h"
#include "spqr.h"

/* Every checksum recomputed, and file_size set to n: truncations and
 * extensions then reach the table checks. */
static void refresh_checksums(uint8_t *buf, size_t n) {
    if (n < sizeof(spqrf_header)) return;
    const uint64_t file_size = n;
    memcpy(buf + offsetof(spqrf_header, file_size), &file_size, sizeof file_size);
    spqrf_fixup_checksums(buf, n);
}

static volatile float sink;

static void use(const spqr_archive *a, size_t size) {
    spqr_archive_bytes ab;
    spqr_archive_bytes_of(a, &ab);
    uint64_t sum = ab.container_bytes + ab.text_bytes;
    for (int32_t i = 0; i < spqr_archive_count(a); i++) sum += spqr_archive_tensor_bytes(a, i);
    if (sum != size || ab.file_bytes != size) abort(); /* every byte belongs to one part */
    const char *s = spqr_archive_config_json(a);
    if (s) sink += (float)strlen(s);
    if ((s = spqr_archive_metadata_json(a))) sink += (float)strlen(s);
    size_t tl = 0;
    if ((s = spqr_archive_tokenizer(a, &tl))) sink += (float)(unsigned char)s[tl];
    spqr_err err;
    for (int32_t i = 0; i < spqr_archive_count(a); i++) {
        const char *name = spqr_archive_name(a, i);
        const spqr_tensor *t = spqr_archive_packed_at(a, i);
        const spqr_st_tensor *d = spqr_archive_dense_at(a, i);
        if (!name || (!t == !d)) abort(); /* exactly one view per entry */
        if (t) {
            if (spqr_archive_find_packed(a, name) != t) abort();
            size_t rc = (size_t)t->rows * (size_t)t->cols;
            float *W = malloc(rc * sizeof *W);
            float *x = malloc((size_t)t->cols * sizeof *x);
            float *y = malloc((size_t)t->rows * sizeof *y);
            if (W && x && y) {
                for (int32_t j = 0; j < t->cols; j++) x[j] = 1.0f;
                if (spqr_tensor_dequantize(t, W, &err) != SPQR_OK) abort(); /* validated => usable */
                if (spqr_matvec_ref(t, x, y, &err) != SPQR_OK) abort();
                for (int32_t r = 0; r < t->rows; r++) {
                    spqr_tensor_row(t, r, x); /* x has cols floats */
                    if (memcmp(x, W + (size_t)r * (size_t)t->cols, (size_t)t->cols * sizeof *x)) abort();
                }
                sink += W[rc - 1] + y[t->rows - 1];
            }
            free(W);
            free(x);
            free(y);
        } else {
            if (spqr_archive_find_dense(a, name) != d) abort();
            float *f = malloc((size_t)(d->numel ? d->numel : 1) * sizeof *f);
            if (f && spqr_st_tensor_to_f32(d, f, &err) != SPQR_OK) abort();
            free(f);
        }
    }
}

static void run(const uint8_t *data, size_t size) {
    uint8_t *buf = NULL;
    if (posix_memalign((void **)&buf, 64, size ? size : 1)) return;
    if (size) memcpy(buf, data, size);
    spqr_archive *a = NULL;
    spqr_err err;
    err.msg[0] = 0;
    spqr_status s = spqr_archive_open_memory(buf, size, "fuzz.spqr", &a, &err);
    if (s == SPQR_OK) {
        use(a, size);
        spqr_archive_close(a);
    } else if ((s != SPQR_ERR_FORMAT && s != SPQR_ERR_UNSUPPORTED) || !err.msg[0] || strchr(err.msg, '\n')) {
        abort(); /* every rejection: FORMAT/UNSUPPORTED with one line */
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    run(data, size);
    uint8_t *fixed = malloc(size ? size : 1);
    if (!fixed) return 0;
    if (size) memcpy(fixed, data, size);
    refresh_checksums(fixed, size);
    run(fixed, size);
    free(fixed);
    return 0;
}
