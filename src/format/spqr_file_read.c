/* Reader of .spqr model files: maps the file and validates every byte of
 * structure before handing anything out, so the kernels can trust every
 * array they are given. The order of checks (docs/format.md, "Validation"):
 * header -> table -> entries (bounds, alignment, overlaps, names) -> every
 * section checksum -> every section's contents. */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "format/spqr_file.h"
#include "format/tensor.h"
#include "io/dtype.h"
#include "io/finite.h"
#include "io/file.h"

enum { KIND_DENSE = 1, KIND_PACKED = 2 };

typedef struct {
    const char *name;
    int kind;
    spqr_st_tensor dense;
    spqr_tensor packed;
    int32_t *perm32, *rowptr32; /* decoded from the compact encodings (owned), else NULL */
    uint64_t file_bytes;        /* payload, padding after it, table entry and name */
} a_item;

struct spqr_archive {
    spqr_mapped_file map; /* empty for open_memory */
    const uint8_t *data;
    uint64_t size;
    char *label;
    const char *config, *metadata, *tokenizer;
    size_t tokenizer_len;
    uint32_t version;
    uint64_t text_bytes, container_bytes; /* text sections; the header and any gap before the first section */
    int32_t n;
    a_item *items;      /* tensors, table order */
    int32_t *by_name;   /* item indices sorted by name */
    /* during validation */
    spqrf_entry *ent;  /* copy of the table entries */
    uint64_t *sec_bytes; /* per entry: payload + padding after it + entry + name */
    const char *names;
    uint64_t names_size;
};

static spqr_status ferr(const spqr_archive *a, spqr_err *err, const char *fmt, ...) SPQR_PRINTF(3, 4);
static spqr_status ferr(const spqr_archive *a, spqr_err *err, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: %s", a->label, msg);
}

/* Error about section i; its name is used only once validated. */
static spqr_status serr(const spqr_archive *a, spqr_err *err, uint32_t i, int named, const char *fmt, ...)
    SPQR_PRINTF(5, 6);
static spqr_status serr(const spqr_archive *a, spqr_err *err, uint32_t i, int named, const char *fmt, ...) {
    char msg[320], nb[100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const spqrf_entry *e = &a->ent[i];
    const char *type = spqrf_section_type_name(e->type);
    if (named)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: section %u '%s' (%s): %s", a->label, i,
                            spqr_printable(a->names + e->name_offset, nb, sizeof nb), type, msg);
    return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: section %u (%s): %s", a->label, i, type, msg);
}

static int all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

void spqr_archive_close(spqr_archive *a) {
    if (!a) return;
    spqr_file_unmap(&a->map);
    for (int32_t i = 0; a->items && i < a->n; i++) {
        free(a->items[i].perm32);
        free(a->items[i].rowptr32);
    }
    free(a->items);
    free(a->sec_bytes);
    free(a->by_name);
    free(a->ent);
    free(a->label);
    free(a);
}

/* ---- header and table ---- */

static spqr_status check_header(spqr_archive *a, spqrf_header *h, spqr_err *err) {
    if (a->size < sizeof *h)
        return ferr(a, err, "file is %llu bytes, smaller than the 64-byte .spqr header", (unsigned long long)a->size);
    memcpy(h, a->data, sizeof *h);
    if (memcmp(h->magic, SPQRF_MAGIC, 8) != 0) return ferr(a, err, "not a .spqr model file (bad magic)");
    if (h->version < SPQRF_VERSION_MIN || h->version > SPQRF_VERSION)
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED,
                            "%s: unsupported .spqr version %u (this build reads versions %u to %u)", a->label,
                            h->version, SPQRF_VERSION_MIN, SPQRF_VERSION);
    a->version = h->version;
    if (spqr_crc32c(h, offsetof(spqrf_header, header_crc)) != h->header_crc)
        return ferr(a, err, "header checksum mismatch (corrupt header)");
    if (h->flags != 0) return ferr(a, err, "header flags 0x%x unknown to version %u", h->flags, h->version);
    if (!all_zero(h->reserved, sizeof h->reserved)) return ferr(a, err, "header reserved bytes are not zero");
    if (h->file_size != a->size)
        return ferr(a, err, "file is %llu bytes but its header says %llu (truncated or appended to)",
                    (unsigned long long)a->size, (unsigned long long)h->file_size);
    if (h->table_offset < sizeof *h || h->table_offset % SPQRF_ALIGN || h->table_offset > a->size ||
        h->table_size != a->size - h->table_offset)
        return ferr(a, err, "section table [%llu, +%llu) is misplaced (must be 64-aligned and end the file)",
                    (unsigned long long)h->table_offset, (unsigned long long)h->table_size);
    if (h->section_count > SPQRF_MAX_SECTIONS || (uint64_t)h->section_count * sizeof(spqrf_entry) > h->table_size)
        return ferr(a, err, "section count %u does not fit the %llu-byte table", h->section_count,
                    (unsigned long long)h->table_size);
    if (spqr_crc32c(a->data + h->table_offset, (size_t)h->table_size) != h->table_crc)
        return ferr(a, err, "section table checksum mismatch (corrupt table)");
    return SPQR_OK;
}

typedef struct {
    uint64_t begin, end;
    uint32_t idx;
} range;

static int cmp_range(const void *x, const void *y) {
    const range *a = x, *b = y;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end) return a->end < b->end ? -1 : 1;
    return 0;
}

/* qsort comparators cannot take context: sort (name, index) pairs. */
typedef struct {
    const char *name;
    uint32_t idx;
} named;

static int cmp_named(const void *x, const void *y) {
    int c = strcmp(((const named *)x)->name, ((const named *)y)->name);
    if (c) return c;
    return ((const named *)x)->idx < ((const named *)y)->idx ? -1 : 1;
}

static spqr_status check_entries(spqr_archive *a, const spqrf_header *h, spqr_err *err) {
    const uint32_t n = h->section_count;
    a->ent = malloc((n ? n : 1) * sizeof *a->ent);
    if (!a->ent) return spqr_err_set(err, SPQR_ERR_NOMEM, "%s: out of memory", a->label);
    memcpy(a->ent, a->data + h->table_offset, (size_t)n * sizeof *a->ent);
    a->names = (const char *)a->data + h->table_offset + (uint64_t)n * sizeof(spqrf_entry);
    a->names_size = h->table_size - (uint64_t)n * sizeof(spqrf_entry);
    int seen[SPQRF_SEC_PACKED + 1] = {0};
    for (uint32_t i = 0; i < n; i++) {
        const spqrf_entry *e = &a->ent[i];
        if (e->type < SPQRF_SEC_CONFIG || e->type > SPQRF_SEC_PACKED)
            return serr(a, err, i, 0, "unknown section type %u", e->type);
        if (e->flags != 0) return serr(a, err, i, 0, "unknown flags 0x%x", e->flags);
        if (!all_zero(e->reserved, sizeof e->reserved)) return serr(a, err, i, 0, "reserved bytes are not zero");
        if (e->name_len < 1 || e->name_len > SPQRF_MAX_NAME ||
            (uint64_t)e->name_offset + e->name_len + 1 > a->names_size)
            return serr(a, err, i, 0, "name [%u, +%u] outside the %llu-byte names area or of bad length",
                        e->name_offset, e->name_len, (unsigned long long)a->names_size);
        const char *nm = a->names + e->name_offset;
        if (nm[e->name_len] != 0 || memchr(nm, 0, e->name_len) || !spqr_utf8_valid(nm, e->name_len))
            return serr(a, err, i, 0, "name is not %u bytes of UTF-8 followed by a NUL", e->name_len);
        if (e->alignment < SPQRF_ALIGN || e->alignment > SPQRF_MAX_SECTION_ALIGN ||
            (e->alignment & (e->alignment - 1)))
            return serr(a, err, i, 1, "alignment %u is not a power of two in [64, 2^20]", e->alignment);
        if (e->offset % e->alignment)
            return serr(a, err, i, 1, "offset %llu is not %u-aligned", (unsigned long long)e->offset, e->alignment);
        if (e->offset < sizeof(spqrf_header) || e->offset > h->table_offset ||
            e->size > h->table_offset - e->offset)
            return serr(a, err, i, 1, "payload [%llu, +%llu) lies outside the data area [64, %llu)",
                        (unsigned long long)e->offset, (unsigned long long)e->size,
                        (unsigned long long)h->table_offset);
        if (e->type <= SPQRF_SEC_METADATA && seen[e->type]++)
            return serr(a, err, i, 1, "a second %s section", spqrf_section_type_name(e->type));
    }
    a->sec_bytes = calloc(n ? n : 1, sizeof *a->sec_bytes);
    if (!a->sec_bytes) return spqr_err_set(err, SPQR_ERR_NOMEM, "%s: out of memory", a->label);
    a->container_bytes = sizeof(spqrf_header);
    if (n == 0) {
        if (h->table_offset != sizeof(spqrf_header))
            return ferr(a, err, "no sections, yet the table starts at %llu rather than 64",
                        (unsigned long long)h->table_offset);
        return SPQR_OK;
    }
    /* No two payloads share a byte, and the gaps between them are only the
     * zero padding that alignment needs: with the header, table and section
     * checksums this leaves no byte of the file unchecked. */
    range *r = malloc(n * sizeof *r);
    named *nms = malloc(n * sizeof *nms);
    if (!r || !nms) {
        free(r);
        free(nms);
        return spqr_err_set(err, SPQR_ERR_NOMEM, "%s: out of memory", a->label);
    }
    for (uint32_t i = 0; i < n; i++) {
        r[i] = (range){a->ent[i].offset, a->ent[i].offset + a->ent[i].size, i};
        nms[i] = (named){a->names + a->ent[i].name_offset, i};
    }
    qsort(r, n, sizeof *r, cmp_range);
    qsort(nms, n, sizeof *nms, cmp_named);
    spqr_status s = SPQR_OK;
    for (uint32_t k = 1; k < n && !s; k++) {
        if (r[k].begin < r[k - 1].end)
            s = serr(a, err, r[k].idx, 1, "payload [%llu, %llu) overlaps section %u [%llu, %llu)",
                     (unsigned long long)r[k].begin, (unsigned long long)r[k].end, r[k - 1].idx,
                     (unsigned long long)r[k - 1].begin, (unsigned long long)r[k - 1].end);
    }
    for (uint32_t k = 0; k <= n && !s; k++) {
        const uint64_t gap_begin = k ? r[k - 1].end : sizeof(spqrf_header);
        const uint64_t gap_end = k < n ? r[k].begin : h->table_offset;
        const uint64_t limit = k < n ? a->ent[r[k].idx].alignment : SPQRF_ALIGN;
        if (gap_end < gap_begin) continue; /* an overlap, reported above */
        if (gap_end - gap_begin >= limit || !all_zero(a->data + gap_begin, (size_t)(gap_end - gap_begin)))
            s = ferr(a, err, "bytes [%llu, %llu) between sections are not alignment padding of zeros",
                     (unsigned long long)gap_begin, (unsigned long long)gap_end);
        /* Byte accounting: a gap is the padding of the section before it (the
         * one after the header, of the container), so a section's bytes are
         * its own 64-aligned length, which the writer can count before
         * writing (spqrf_packed_file_bytes, --target-bits' costs) */
        const uint64_t gap = gap_end - gap_begin;
        if (k > 0) a->sec_bytes[r[k - 1].idx] += gap;
        else a->container_bytes += gap;
        if (k < n) {
            const spqrf_entry *e = &a->ent[r[k].idx];
            a->sec_bytes[r[k].idx] += e->size + sizeof(spqrf_entry) + e->name_len + 1u;
        }
    }
    for (uint32_t k = 1; k < n && !s; k++) {
        if (!strcmp(nms[k].name, nms[k - 1].name))
            s = serr(a, err, nms[k].idx, 1, "name already used by section %u", nms[k - 1].idx);
    }
    free(r);
    free(nms);
    return s;
}

/* ---- section contents ---- */

static spqr_status check_text(spqr_archive *a, uint32_t i, spqr_err *err) {
    const spqrf_entry *e = &a->ent[i];
    const char *p = (const char *)a->data + e->offset;
    const uint64_t cap = e->type == SPQRF_SEC_TOKENIZER ? SPQRF_MAX_TOKENIZER : SPQRF_MAX_JSON;
    if (e->size < 1 || e->size > cap)
        return serr(a, err, i, 1, "size %llu outside 1..%llu", (unsigned long long)e->size, (unsigned long long)cap);
    const size_t len = (size_t)e->size - 1;
    if (p[len] != 0 || memchr(p, 0, len)) return serr(a, err, i, 1, "text must end with its only NUL byte");
    const char *why = spqrf_text_problem(e->type, p, len);
    if (why) return serr(a, err, i, 1, "%s", why);
    if (e->type == SPQRF_SEC_TOKENIZER) {
        a->tokenizer = p;
        a->tokenizer_len = len;
        return SPQR_OK;
    }
    if (e->type == SPQRF_SEC_CONFIG) a->config = p;
    else a->metadata = p;
    return SPQR_OK;
}

static spqr_status check_dense(spqr_archive *a, uint32_t i, a_item *it, spqr_err *err) {
    const spqrf_entry *e = &a->ent[i];
    spqrf_dense_header h;
    if (e->size < sizeof h) return serr(a, err, i, 1, "%llu bytes, smaller than its 128-byte header",
                                        (unsigned long long)e->size);
    memcpy(&h, a->data + e->offset, sizeof h);
    if (h.dtype != SPQR_DTYPE_F32 && h.dtype != SPQR_DTYPE_F16 && h.dtype != SPQR_DTYPE_BF16)
        return serr(a, err, i, 1, "dtype %u is not F32, F16 or BF16", h.dtype);
    if (h.ndim > SPQR_MAX_DIMS) return serr(a, err, i, 1, "ndim %u > %d", h.ndim, SPQR_MAX_DIMS);
    if (!all_zero(h.reserved, sizeof h.reserved)) return serr(a, err, i, 1, "reserved bytes are not zero");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < SPQR_MAX_DIMS; d++) {
        if (d >= h.ndim) {
            if (h.shape[d]) return serr(a, err, i, 1, "unused dimension %u is not 0", d);
            continue;
        }
        if (h.shape[d] > ((uint64_t)1 << 60) || (h.shape[d] && numel > ((uint64_t)1 << 60) / h.shape[d]))
            return serr(a, err, i, 1, "shape overflows (dimension %u = %llu)", d, (unsigned long long)h.shape[d]);
        numel *= h.shape[d];
    }
    const uint64_t want = numel * spqr_dtype_size((spqr_dtype)h.dtype);
    if (h.data.nbytes != want)
        return serr(a, err, i, 1, "data is %llu bytes, shape and dtype need %llu", (unsigned long long)h.data.nbytes,
                    (unsigned long long)want);
    if (h.data.offset < sizeof h || h.data.offset % SPQRF_ALIGN || h.data.offset > e->size ||
        h.data.nbytes != e->size - h.data.offset)
        return serr(a, err, i, 1, "data [%llu, +%llu) must be 64-aligned after the header and end the section",
                    (unsigned long long)h.data.offset, (unsigned long long)h.data.nbytes);
    it->kind = KIND_DENSE;
    spqr_st_tensor *t = &it->dense;
    t->name = it->name;
    t->dtype = (spqr_dtype)h.dtype;
    t->ndim = (int32_t)h.ndim;
    for (uint32_t d = 0; d < h.ndim; d++) t->shape[d] = (int64_t)h.shape[d];
    t->numel = (int64_t)numel;
    t->data = a->data + e->offset + h.data.offset;
    t->nbytes = h.data.nbytes;
    return SPQR_OK;
}

/* Version 2's compact permutation and row counts become the i32 arrays the
 * kernels read (owned by the item, a few bytes per row and column); the
 * usual checks then run on them. A count sum past nnz stops the decoding
 * before it could overflow. */
static spqr_status decode_compact(spqr_archive *a, uint32_t i, const spqrf_packed_header *h,
                                  const uint8_t *const ptr[SPQRF_N_ARRAYS], a_item *it, spqr_err *err) {
    spqr_tensor *t = &it->packed;
    if (h->flags & SPQRF_PACKED_PERM_U16) {
        it->perm32 = malloc((size_t)h->cols * sizeof *it->perm32);
        if (!it->perm32) return spqr_err_set(err, SPQR_ERR_NOMEM, "%s: out of memory", a->label);
        const uint8_t *p = ptr[SPQRF_A_PERM];
        for (int32_t j = 0; j < h->cols; j++) it->perm32[j] = (int32_t)(p[2 * j] | (uint32_t)p[2 * j + 1] << 8);
        t->perm = it->perm32;
    }
    const uint32_t enc = spqrf_rows_encoding_of(h->flags);
    if (enc == SPQRF_ROWS_PTR32) return SPQR_OK;
    it->rowptr32 = malloc(((size_t)h->rows + 1) * sizeof *it->rowptr32);
    if (!it->rowptr32) return spqr_err_set(err, SPQR_ERR_NOMEM, "%s: out of memory", a->label);
    const uint8_t *c = ptr[SPQRF_A_ROWPTR];
    int64_t sum = 0;
    it->rowptr32[0] = 0;
    for (int32_t r = 0; r < h->rows; r++) {
        sum += enc == SPQRF_ROWS_CNT8 ? c[r] : (int64_t)(c[2 * r] | (uint32_t)c[2 * r + 1] << 8);
        if (sum > h->nnz)
            return serr(a, err, i, 1, "outlier counts of rows 0..%d sum past nnz = %lld", r, (long long)h->nnz);
        it->rowptr32[r + 1] = (int32_t)sum;
    }
    if (sum != h->nnz)
        return serr(a, err, i, 1, "outlier counts per row sum to %lld, not nnz = %lld", (long long)sum,
                    (long long)h->nnz);
    t->outlier_rowptr = it->rowptr32;
    return SPQR_OK;
}

static spqr_status check_packed(spqr_archive *a, uint32_t i, a_item *it, spqr_err *err) {
    static const char *const array_names[SPQRF_N_ARRAYS] = {
        "codes", "scale_codes", "zero_codes", "scale_q2", "zero_q2", "scale_f16",
        "zero_f16", "perm", "outlier_rowptr", "outlier_col", "outlier_val"};
    const spqrf_entry *e = &a->ent[i];
    spqrf_packed_header h;
    if (e->size < sizeof h) return serr(a, err, i, 1, "%llu bytes, smaller than its 256-byte header",
                                        (unsigned long long)e->size);
    const uint8_t *base = a->data + e->offset;
    memcpy(&h, base, sizeof h);
    if (!all_zero(h.reserved0, sizeof h.reserved0) || !all_zero(h.reserved1, sizeof h.reserved1))
        return serr(a, err, i, 1, "reserved bytes are not zero");
    uint64_t sizes[SPQRF_N_ARRAYS];
    const char *why = spqrf_packed_sizes(&h, a->version, sizes);
    if (why)
        return serr(a, err, i, 1, "bad layout (rows %d, cols %d, wbits %d, groupsize %d, qq %d/%d/%d, nnz %lld): %s",
                    h.rows, h.cols, h.wbits, h.groupsize, h.qq_scale_bits, h.qq_zero_bits, h.qq_groupsize,
                    (long long)h.nnz, why);
    /* Arrays in order, 64-aligned, exactly sized, disjoint, filling the section. */
    uint64_t end = sizeof h;
    const uint8_t *ptr[SPQRF_N_ARRAYS] = {0};
    for (int k = 0; k < SPQRF_N_ARRAYS; k++) {
        const spqrf_array *d = &h.arrays[k];
        if (!sizes[k]) {
            if (d->offset || d->nbytes)
                return serr(a, err, i, 1, "array %s must be absent ({0, 0}) for this layout", array_names[k]);
            continue;
        }
        if (d->nbytes != sizes[k])
            return serr(a, err, i, 1, "array %s is %llu bytes, the layout needs %llu", array_names[k],
                        (unsigned long long)d->nbytes, (unsigned long long)sizes[k]);
        if (d->offset % SPQRF_ALIGN || d->offset < end || d->offset > e->size || d->nbytes > e->size - d->offset)
            return serr(a, err, i, 1, "array %s at [%llu, +%llu) is misaligned, out of order or outside the section",
                        array_names[k], (unsigned long long)d->offset, (unsigned long long)d->nbytes);
        ptr[k] = base + d->offset;
        end = d->offset + d->nbytes;
    }
    if (end != e->size)
        return serr(a, err, i, 1, "%llu trailing bytes after the last array", (unsigned long long)(e->size - end));

    it->kind = KIND_PACKED;
    spqr_tensor *t = &it->packed;
    memset(t, 0, sizeof *t);
    t->rows = h.rows;
    t->cols = h.cols;
    t->wbits = h.wbits;
    t->groupsize = h.groupsize;
    t->qq_scale_bits = h.qq_scale_bits;
    t->qq_zero_bits = h.qq_zero_bits;
    t->qq_groupsize = h.qq_groupsize;
    t->n_groups = h.n_groups;
    t->n_qgroups = h.n_qgroups;
    t->nnz = h.nnz;
    t->owns_memory = 0;
    /* The arrays are read-only (mapping or borrowed buffer); spqr_tensor
     * has mutable pointers because the engine fills owned ones. */
    t->codes = (uint8_t *)ptr[SPQRF_A_CODES];
    t->codes_bytes = (size_t)sizes[SPQRF_A_CODES];
    t->scale_codes = (uint8_t *)ptr[SPQRF_A_SCALE_CODES];
    t->scale_codes_bytes = (size_t)sizes[SPQRF_A_SCALE_CODES];
    t->zero_codes = (uint8_t *)ptr[SPQRF_A_ZERO_CODES];
    t->zero_codes_bytes = (size_t)sizes[SPQRF_A_ZERO_CODES];
    t->scale_q2 = (uint16_t *)ptr[SPQRF_A_SCALE_Q2];
    t->zero_q2 = (uint16_t *)ptr[SPQRF_A_ZERO_Q2];
    t->scale_f16 = (uint16_t *)ptr[SPQRF_A_SCALE_F16];
    t->zero_f16 = (uint16_t *)ptr[SPQRF_A_ZERO_F16];
    t->perm = (int32_t *)ptr[SPQRF_A_PERM];
    t->outlier_rowptr = (int32_t *)ptr[SPQRF_A_ROWPTR];
    spqr_status ds = decode_compact(a, i, &h, ptr, it, err);
    if (ds) return ds;
    /* No outliers: point at the (aligned, readable) section header rather
     * than NULL, so no caller ever passes NULL to memcpy & co. */
    t->outlier_col = (uint16_t *)(ptr[SPQRF_A_COL] ? ptr[SPQRF_A_COL] : base);
    t->outlier_val = (uint16_t *)(ptr[SPQRF_A_VAL] ? ptr[SPQRF_A_VAL] : base);

    spqr_err e2;
    if (spqr_tensor_check(t, &e2) != SPQR_OK) {
        if (e2.code == SPQR_ERR_NOMEM) return spqr_err_set(err, SPQR_ERR_NOMEM, "%s: %s", a->label, e2.msg);
        return serr(a, err, i, 1, "%s", e2.msg);
    }
    /* Non-finite statistics or outliers would turn into NaN weights. */
    const uint16_t *f16[5] = {t->scale_q2, t->zero_q2, t->scale_f16, t->zero_f16, t->outlier_val};
    const int f16_idx[5] = {SPQRF_A_SCALE_Q2, SPQRF_A_ZERO_Q2, SPQRF_A_SCALE_F16, SPQRF_A_ZERO_F16, SPQRF_A_VAL};
    for (int k = 0; k < 5; k++) {
        if (!ptr[f16_idx[k]]) continue;
        int64_t bad = spqr_first_nonfinite(f16[k], SPQR_DTYPE_F16, sizes[f16_idx[k]] / 2);
        if (bad >= 0)
            return serr(a, err, i, 1, "array %s holds a non-finite fp16 value at index %lld", array_names[f16_idx[k]],
                        (long long)bad);
    }
    return SPQR_OK;
}

/* Sorting indices by item name: pair them with their names first. */
static spqr_status build_index(spqr_archive *a, spqr_err *err) {
    named *tmp = malloc((a->n ? (size_t)a->n : 1) * sizeof *tmp);
    a->by_name = malloc((a->n ? (size_t)a->n : 1) * sizeof *a->by_name);
    if (!tmp || !a->by_name) {
        free(tmp);
        return spqr_err_set(err, SPQR_ERR_NOMEM, "%s: out of memory", a->label);
    }
    for (int32_t k = 0; k < a->n; k++) tmp[k] = (named){a->items[k].name, (uint32_t)k};
    qsort(tmp, (size_t)a->n, sizeof *tmp, cmp_named);
    for (int32_t k = 0; k < a->n; k++) a->by_name[k] = (int32_t)tmp[k].idx;
    free(tmp);
    return SPQR_OK;
}

static spqr_status parse(spqr_archive *a, spqr_err *err) {
    spqrf_header h;
    spqr_status s = check_header(a, &h, err);
    if (s) return s;
    if ((s = check_entries(a, &h, err))) return s;
    const uint32_t n = h.section_count;
    /* Every checksum first: a corrupt payload is reported as corruption,
     * not as whichever semantic check it happens to trip. */
    for (uint32_t i = 0; i < n; i++) {
        const spqrf_entry *e = &a->ent[i];
        uint32_t c = spqr_crc32c(a->data + e->offset, (size_t)e->size);
        if (c != e->crc) return serr(a, err, i, 1, "checksum mismatch (stored 0x%08x, computed 0x%08x)", e->crc, c);
    }
    uint32_t n_tensors = 0;
    for (uint32_t i = 0; i < n; i++) n_tensors += a->ent[i].type >= SPQRF_SEC_DENSE;
    a->items = calloc(n_tensors ? n_tensors : 1, sizeof *a->items);
    if (!a->items) return spqr_err_set(err, SPQR_ERR_NOMEM, "%s: out of memory", a->label);
    for (uint32_t i = 0; i < n; i++) {
        const spqrf_entry *e = &a->ent[i];
        if (e->type <= SPQRF_SEC_METADATA) {
            if ((s = check_text(a, i, err))) return s;
            a->text_bytes += a->sec_bytes[i];
            continue;
        }
        a_item *it = &a->items[a->n];
        it->name = a->names + e->name_offset;
        it->file_bytes = a->sec_bytes[i];
        a->n++; /* counted before the check, so close() frees what a failed check decoded */
        s = e->type == SPQRF_SEC_DENSE ? check_dense(a, i, it, err) : check_packed(a, i, it, err);
        if (s) return s;
    }
    /* The names area's bytes beyond the names (a writer leaves none) count for the container. */
    uint64_t names_used = 0;
    for (uint32_t i = 0; i < n; i++) names_used += a->ent[i].name_len + 1u;
    if (a->names_size > names_used) a->container_bytes += a->names_size - names_used;
    return build_index(a, err);
}

static spqr_status finish_open(spqr_archive *a, spqr_archive **out, spqr_err *err) {
    spqr_status s = parse(a, err);
    free(a->ent);
    a->ent = NULL;
    if (s) {
        spqr_archive_close(a);
        return s;
    }
    *out = a;
    return SPQR_OK;
}

spqr_status spqr_archive_open(const char *path, spqr_archive **out, spqr_err *err) {
    *out = NULL;
    if (!path) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "NULL path");
    spqr_archive *a = calloc(1, sizeof *a);
    if (!a || !(a->label = strdup(path))) {
        free(a);
        return spqr_err_set(err, SPQR_ERR_NOMEM, "%s: out of memory", path);
    }
    spqr_status s = spqr_file_map(path, 0, 0, &a->map, err);
    if (s) {
        spqr_archive_close(a);
        return s;
    }
    a->data = a->map.data;
    a->size = a->map.size;
    return finish_open(a, out, err);
}

spqr_status spqr_archive_open_memory(const void *data, size_t size, const char *label, spqr_archive **out,
                                     spqr_err *err) {
    *out = NULL;
    if (!label) label = "(memory)";
    if ((size && !data) || ((uintptr_t)data % SPQRF_ALIGN))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s: buffer must be non-NULL and 64-byte aligned", label);
    spqr_archive *a = calloc(1, sizeof *a);
    if (!a || !(a->label = strdup(label))) {
        free(a);
        return spqr_err_set(err, SPQR_ERR_NOMEM, "%s: out of memory", label);
    }
    a->data = data;
    a->size = size;
    return finish_open(a, out, err);
}

const char *spqr_archive_config_json(const spqr_archive *a) { return a ? a->config : NULL; }
const char *spqr_archive_metadata_json(const spqr_archive *a) { return a ? a->metadata : NULL; }

const char *spqr_archive_tokenizer(const spqr_archive *a, size_t *len) {
    if (len) *len = a && a->tokenizer ? a->tokenizer_len : 0;
    return a ? a->tokenizer : NULL;
}

int32_t spqr_archive_count(const spqr_archive *a) { return a ? a->n : 0; }

const char *spqr_archive_name(const spqr_archive *a, int32_t i) {
    return a && i >= 0 && i < a->n ? a->items[i].name : NULL;
}

const spqr_st_tensor *spqr_archive_dense_at(const spqr_archive *a, int32_t i) {
    return a && i >= 0 && i < a->n && a->items[i].kind == KIND_DENSE ? &a->items[i].dense : NULL;
}

const spqr_tensor *spqr_archive_packed_at(const spqr_archive *a, int32_t i) {
    return a && i >= 0 && i < a->n && a->items[i].kind == KIND_PACKED ? &a->items[i].packed : NULL;
}

int32_t spqrf_archive_index(const spqr_archive *a, const char *name) {
    if (!a || !name) return -1;
    int32_t lo = 0, hi = a->n - 1;
    while (lo <= hi) {
        int32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(a->items[a->by_name[mid]].name, name);
        if (c == 0) return a->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

const spqr_st_tensor *spqr_archive_find_dense(const spqr_archive *a, const char *name) {
    return spqr_archive_dense_at(a, spqrf_archive_index(a, name));
}

const spqr_tensor *spqr_archive_find_packed(const spqr_archive *a, const char *name) {
    return spqr_archive_packed_at(a, spqrf_archive_index(a, name));
}

uint64_t spqr_archive_tensor_bytes(const spqr_archive *a, int32_t i) {
    return a && i >= 0 && i < a->n ? a->items[i].file_bytes : 0;
}

void spqr_archive_bytes_of(const spqr_archive *a, spqr_archive_bytes *out) {
    memset(out, 0, sizeof *out);
    if (!a) return;
    out->file_bytes = a->size;
    out->container_bytes = a->container_bytes;
    out->text_bytes = a->text_bytes;
    out->version = a->version;
    for (int32_t i = 0; i < a->n; i++) {
        const a_item *it = &a->items[i];
        if (it->kind == KIND_PACKED) {
            out->packed_bytes += it->file_bytes;
            out->packed_params += (int64_t)it->packed.rows * it->packed.cols;
        } else {
            out->dense_bytes += it->file_bytes;
            out->dense_params += it->dense.numel;
        }
    }
}
