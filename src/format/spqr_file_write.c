/* Streaming writer of .spqr model files.
 *
 * The file is built in a hidden temporary next to the destination: a
 * placeholder header, then each section as it is added (aligned to 64,
 * checksummed while written), then the section table, then the real header
 * over the placeholder. finish() fsyncs and renames; until then the
 * destination is untouched, and free() without finish() removes the
 * temporary. Memory held is one table entry per section, independent of
 * the tensor sizes, so a quantizer can add layers one by one. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "format/spqr_file.h"
#include "format/tensor.h"
#include "io/atomic_file.h"
#include "io/dtype.h"
#include "io/finite.h"
#include "io/file.h"

typedef struct {
    spqrf_entry e;
    char *name;
} w_entry;

struct spqr_archive_writer {
    spqr_atomic_file af; /* the temporary until finish() renames it into place */
    char *path;          /* for messages */
    FILE *f;             /* af.f */
    uint64_t pos;     /* bytes written so far */
    uint32_t crc;     /* running CRC32C of the current section */
    w_entry *entries;
    uint32_t n, cap;
    uint64_t names_bytes;
    int failed;       /* sticky: a failed call poisons the writer */
    spqr_err fail;
    int finished;
};

/* Records the failure in the writer (so later calls report it) and err. */
static spqr_status poison(spqr_archive_writer *w, spqr_status code, const char *fmt, ...) SPQR_PRINTF(3, 4);
static spqr_status poison(spqr_archive_writer *w, spqr_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    w->failed = 1;
    w->fail.code = code;
    vsnprintf(w->fail.msg, sizeof w->fail.msg, fmt, ap);
    va_end(ap);
    return code;
}

static spqr_status report(spqr_archive_writer *w, spqr_err *err) {
    return spqr_err_set(err, w->fail.code, "%s", w->fail.msg);
}

static int put(spqr_archive_writer *w, const void *p, size_t n) {
    if (n == 0) return 0;
    if (fwrite(p, 1, n, w->f) != n) return -1;
    w->crc = spqr_crc32c_update(w->crc, p, n);
    w->pos += n;
    return 0;
}

static int pad_to(spqr_archive_writer *w, uint64_t target) {
    static const uint8_t zeros[SPQRF_ALIGN];
    while (w->pos < target) {
        uint64_t k = target - w->pos;
        if (k > sizeof zeros) k = sizeof zeros;
        if (put(w, zeros, (size_t)k)) return -1;
    }
    return 0;
}

spqr_status spqr_archive_writer_create(const char *path, spqr_archive_writer **out, spqr_err *err) {
    *out = NULL;
    spqr_archive_writer *w = calloc(1, sizeof *w);
    if (!w) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    spqr_status s = spqr_atomic_open(path, &w->af, err);
    if (s) {
        free(w);
        return s;
    }
    w->path = strdup(path);
    w->f = w->af.f;
    if (!w->path) {
        spqr_archive_writer_free(w);
        return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    }
    /* Placeholder header, overwritten by finish(). */
    spqrf_header zero;
    memset(&zero, 0, sizeof zero);
    if (put(w, &zero, sizeof zero)) {
        s = spqr_err_set(err, SPQR_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        spqr_archive_writer_free(w);
        return s;
    }
    *out = w;
    return SPQR_OK;
}

void spqr_archive_writer_free(spqr_archive_writer *w) {
    if (!w) return;
    spqr_atomic_abort(&w->af); /* removes the temporary unless finished */
    for (uint32_t i = 0; i < w->n; i++) free(w->entries[i].name);
    free(w->entries);
    free(w->path);
    free(w);
}

/* Validates the name and reserves a table entry; the section starts at the
 * next aligned offset. */
static spqr_status begin_section(spqr_archive_writer *w, uint32_t type, const char *name, spqr_err *err) {
    if (w->finished) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s: writer already finished", w->path);
    if (w->failed) return report(w, err);
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > SPQRF_MAX_NAME || !spqr_utf8_valid(name, len))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG,
                            "%s: %s section name must be 1..%u bytes of UTF-8", w->path, spqrf_section_type_name(type),
                            SPQRF_MAX_NAME);
    for (uint32_t i = 0; i < w->n; i++) {
        if (!strcmp(w->entries[i].name, name))
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s: section name '%s' is already used", w->path, name);
        if (type <= SPQRF_SEC_METADATA && w->entries[i].e.type == type)
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s: the %s section was already added", w->path,
                                spqrf_section_type_name(type));
    }
    if (w->n >= SPQRF_MAX_SECTIONS)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s: more than %u sections", w->path, SPQRF_MAX_SECTIONS);
    if (w->names_bytes + len + 1 > UINT32_MAX)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s: section names exceed 4 GiB", w->path);
    if (w->n == w->cap) {
        uint32_t cap = w->cap ? 2 * w->cap : 64;
        w_entry *e = realloc(w->entries, cap * sizeof *e);
        if (!e) return spqr_err_set(err, SPQR_ERR_NOMEM, "%s: out of memory", w->path);
        w->entries = e;
        w->cap = cap;
    }
    w_entry *e = &w->entries[w->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    if (!e->name) return spqr_err_set(err, SPQR_ERR_NOMEM, "%s: out of memory", w->path);
    if (pad_to(w, spqrf_align_up(w->pos, SPQRF_ALIGN))) {
        free(e->name);
        return poison(w, SPQR_ERR_IO, "%s: write failed: %s", w->path, strerror(errno)), report(w, err);
    }
    e->e.type = type;
    e->e.offset = w->pos;
    e->e.alignment = SPQRF_ALIGN;
    e->e.name_offset = (uint32_t)w->names_bytes;
    e->e.name_len = (uint32_t)len;
    w->crc = 0;
    return SPQR_OK;
}

static spqr_status end_section(spqr_archive_writer *w) {
    w_entry *e = &w->entries[w->n];
    e->e.size = w->pos - e->e.offset;
    e->e.crc = w->crc;
    w->names_bytes += e->e.name_len + 1u;
    w->n++;
    return SPQR_OK;
}

static spqr_status write_failed(spqr_archive_writer *w, const char *name, spqr_err *err) {
    free(w->entries[w->n].name);
    poison(w, SPQR_ERR_IO, "%s: section '%s': write failed: %s", w->path, name, strerror(errno));
    return report(w, err);
}

static spqr_status add_text(spqr_archive_writer *w, uint32_t type, const char *name, const void *bytes,
                            size_t len, spqr_err *err) {
    if (!bytes) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s: %s is NULL", w->path, name);
    const char *why = spqrf_text_problem(type, bytes, len);
    if (why) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s: %s is %s", w->path, name, why);
    spqr_status s = begin_section(w, type, name, err);
    if (s) return s;
    const char nul = 0;
    if (put(w, bytes, len) || put(w, &nul, 1)) return write_failed(w, name, err);
    return end_section(w);
}

spqr_status spqr_archive_writer_add_config(spqr_archive_writer *w, const char *json, spqr_err *err) {
    return add_text(w, SPQRF_SEC_CONFIG, "config", json, json ? strlen(json) : 0, err);
}

spqr_status spqr_archive_writer_add_metadata(spqr_archive_writer *w, const char *json, spqr_err *err) {
    return add_text(w, SPQRF_SEC_METADATA, "metadata", json, json ? strlen(json) : 0, err);
}

spqr_status spqr_archive_writer_add_tokenizer(spqr_archive_writer *w, const void *bytes, size_t len,
                                              spqr_err *err) {
    return add_text(w, SPQRF_SEC_TOKENIZER, "tokenizer", bytes, len, err);
}

spqr_status spqr_archive_writer_add_dense(spqr_archive_writer *w, const char *name, spqr_dtype dtype,
                                          int32_t ndim, const int64_t *shape, const void *data, spqr_err *err) {
    const char *nm = name ? name : "(null)";
    if (dtype != SPQR_DTYPE_F32 && dtype != SPQR_DTYPE_F16 && dtype != SPQR_DTYPE_BF16)
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "%s: tensor '%s': dtype must be F32, F16 or BF16", w->path,
                            nm);
    if (ndim < 0 || ndim > SPQR_MAX_DIMS || (ndim > 0 && !shape))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s: tensor '%s': ndim %d outside 0..%d", w->path, nm, ndim,
                            SPQR_MAX_DIMS);
    spqrf_dense_header h;
    memset(&h, 0, sizeof h);
    h.dtype = (uint32_t)dtype;
    h.ndim = (uint32_t)ndim;
    uint64_t numel = 1;
    for (int32_t d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s: tensor '%s': negative dimension", w->path, nm);
        h.shape[d] = (uint64_t)shape[d];
        if (h.shape[d] && numel > ((uint64_t)1 << 60) / h.shape[d])
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s: tensor '%s': too many elements", w->path, nm);
        numel *= h.shape[d];
    }
    h.data.offset = sizeof h;
    h.data.nbytes = numel * spqr_dtype_size(dtype);
    if (h.data.nbytes && !data)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s: tensor '%s': data is NULL", w->path, nm);
    spqr_status s = begin_section(w, SPQRF_SEC_DENSE, name, err);
    if (s) return s;
    if (put(w, &h, sizeof h) || put(w, data, (size_t)h.data.nbytes)) return write_failed(w, name, err);
    return end_section(w);
}

static spqr_status write_packed(spqr_archive_writer *w, const char *name, spqrf_packed_header *hp,
                                const uint64_t sizes[SPQRF_N_ARRAYS], const void *const src[SPQRF_N_ARRAYS],
                                spqr_err *err);

spqr_status spqr_archive_writer_add_packed(spqr_archive_writer *w, const char *name, const spqr_tensor *t,
                                           spqr_err *err) {
    const char *nm = name ? name : "(null)";
    spqr_err e2;
    if (spqr_tensor_check(t, &e2) != SPQR_OK)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s: tensor '%s': %s", w->path, nm, e2.msg);
    spqrf_packed_header h;
    spqrf_packed_header_for(t, &h);
    uint64_t sizes[SPQRF_N_ARRAYS];
    const char *why = spqrf_packed_sizes(&h, SPQRF_VERSION, sizes);
    if (why) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s: tensor '%s': %s", w->path, nm, why);
    const void *src[SPQRF_N_ARRAYS] = {t->codes,    t->scale_codes, t->zero_codes,     t->scale_q2,
                                       t->zero_q2,  t->scale_f16,   t->zero_f16,       t->perm,
                                       t->outlier_rowptr, t->outlier_col, t->outlier_val};
    static const int f16_arrays[5] = {SPQRF_A_SCALE_Q2, SPQRF_A_ZERO_Q2, SPQRF_A_SCALE_F16, SPQRF_A_ZERO_F16,
                                      SPQRF_A_VAL};
    for (int k = 0; k < 5; k++) {
        int i = f16_arrays[k];
        if (sizes[i] && spqr_first_nonfinite(src[i], SPQR_DTYPE_F16, sizes[i] / 2) >= 0)
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s: tensor '%s': non-finite fp16 statistic or outlier",
                                w->path, nm);
    }
    /* The compact encodings of the permutation and the row pointers. */
    void *perm_enc = NULL, *rows_enc = NULL;
    if (h.flags & SPQRF_PACKED_PERM_U16) {
        uint16_t *p16 = perm_enc = malloc((size_t)sizes[SPQRF_A_PERM]);
        if (!p16) return spqr_err_set(err, SPQR_ERR_NOMEM, "%s: out of memory", w->path);
        for (int32_t j = 0; j < t->cols; j++) p16[j] = (uint16_t)t->perm[j];
        src[SPQRF_A_PERM] = p16;
    }
    const uint32_t renc = spqrf_rows_encoding_of(h.flags);
    if (renc != SPQRF_ROWS_PTR32) {
        rows_enc = malloc((size_t)sizes[SPQRF_A_ROWPTR]);
        if (!rows_enc) {
            free(perm_enc);
            return spqr_err_set(err, SPQR_ERR_NOMEM, "%s: out of memory", w->path);
        }
        for (int32_t r = 0; r < t->rows; r++) {
            const int32_t c = t->outlier_rowptr[r + 1] - t->outlier_rowptr[r];
            if (renc == SPQRF_ROWS_CNT8) ((uint8_t *)rows_enc)[r] = (uint8_t)c;
            else ((uint16_t *)rows_enc)[r] = (uint16_t)c;
        }
        src[SPQRF_A_ROWPTR] = rows_enc;
    }
    spqr_status s = write_packed(w, name, &h, sizes, src, err);
    free(perm_enc);
    free(rows_enc);
    return s;
}

/* Lays the arrays out after the header (each 64-aligned) and writes them. */
static spqr_status write_packed(spqr_archive_writer *w, const char *name, spqrf_packed_header *hp,
                                const uint64_t sizes[SPQRF_N_ARRAYS], const void *const src[SPQRF_N_ARRAYS],
                                spqr_err *err) {
    spqrf_packed_header h = *hp;
    spqrf_packed_layout(&h, sizes);
    spqr_status s = begin_section(w, SPQRF_SEC_PACKED, name, err);
    if (s) return s;
    const uint64_t base = w->pos;
    if (put(w, &h, sizeof h)) return write_failed(w, name, err);
    for (int i = 0; i < SPQRF_N_ARRAYS; i++) {
        if (!sizes[i]) continue;
        if (pad_to(w, base + h.arrays[i].offset) || put(w, src[i], (size_t)sizes[i]))
            return write_failed(w, name, err);
    }
    return end_section(w);
}

spqr_status spqr_archive_writer_finish(spqr_archive_writer *w, spqr_err *err) {
    return spqrf_archive_writer_finish_checked(w, NULL, NULL, err);
}

spqr_status spqrf_archive_writer_finish_checked(spqr_archive_writer *w, spqrf_finish_check_fn check, void *user,
                                               spqr_err *err) {
    if (w->finished) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s: writer already finished", w->path);
    if (w->failed) return report(w, err);
    spqrf_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, SPQRF_MAGIC, 8);
    h.version = SPQRF_VERSION;
    if (pad_to(w, spqrf_align_up(w->pos, SPQRF_ALIGN))) goto io_fail;
    h.table_offset = w->pos;
    h.section_count = w->n;
    w->crc = 0;
    for (uint32_t i = 0; i < w->n; i++)
        if (put(w, &w->entries[i].e, sizeof(spqrf_entry))) goto io_fail;
    for (uint32_t i = 0; i < w->n; i++)
        if (put(w, w->entries[i].name, w->entries[i].e.name_len + 1u)) goto io_fail;
    h.table_crc = w->crc;
    h.table_size = w->pos - h.table_offset;
    h.file_size = w->pos;
    h.header_crc = spqr_crc32c(&h, offsetof(spqrf_header, header_crc));
    if (fseek(w->f, 0, SEEK_SET) != 0 || fwrite(&h, sizeof h, 1, w->f) != 1) goto io_fail;
    if (fflush(w->f) != 0 || ferror(w->f)) goto io_fail;
    w->f = NULL; /* commit closes it */
    spqr_status s = check ? check(w->af.tmp, user, err) : SPQR_OK;
    if (s) {
        spqr_atomic_abort(&w->af);
        poison(w, s, "%s", err ? err->msg : "check failed");
        return s;
    }
    s = spqr_atomic_commit(&w->af, err);
    if (s) {
        poison(w, s, "%s", err ? err->msg : "commit failed");
        return s;
    }
    w->finished = 1;
    return SPQR_OK;
io_fail:
    poison(w, SPQR_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    return report(w, err);
}
