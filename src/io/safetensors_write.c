/* safetensors writer. Tensors are borrowed until write returns; the file is
 * produced atomically (see spqr_file_write_atomic).
 *
 * Layout choices (all within the format):
 * - the header is padded with spaces so the data section starts at a
 *   multiple of 8 bytes;
 * - tensors are laid out by decreasing element size (stable), so every
 *   tensor's offset is a multiple of its element size and, with the
 *   8-aligned data start, a mapped reader sees naturally aligned data;
 * - tensors are contiguous (no holes), as strict readers require;
 * - header integers are written as plain decimal integers. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/dtype.h"
#include "io/file.h"

#define ST_MAX_HEADER ((size_t)100 * 1000 * 1000)

typedef struct {
    char *name;
    spqr_dtype dtype;
    int32_t ndim;
    int64_t shape[SPQR_MAX_DIMS];
    const void *data;
    uint64_t nbytes;
    uint64_t begin; /* filled by write */
} wtensor;

struct spqr_st_writer {
    wtensor *t;
    int32_t n, cap;
    char **mkey, **mval;
    int32_t nm, mcap;
};

spqr_status spqr_st_writer_create(spqr_st_writer **out, spqr_err *err) {
    *out = calloc(1, sizeof **out);
    return *out ? SPQR_OK : spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
}

void spqr_st_writer_free(spqr_st_writer *w) {
    if (!w) return;
    for (int32_t i = 0; i < w->n; i++) free(w->t[i].name);
    for (int32_t i = 0; i < w->nm; i++) {
        free(w->mkey[i]);
        free(w->mval[i]);
    }
    free(w->t);
    free(w->mkey);
    free(w->mval);
    free(w);
}

spqr_status spqr_st_writer_add(spqr_st_writer *w, const char *name, spqr_dtype dtype, int32_t ndim,
                               const int64_t *shape, const void *data, spqr_err *err) {
    if (!w || !name) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "safetensors writer: NULL argument");
    if (!spqr_utf8_valid(name, strlen(name)) || !strcmp(name, "__metadata__"))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "safetensors writer: invalid tensor name");
    if (spqr_dtype_size(dtype) == 0)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "safetensors writer: tensor '%s': invalid dtype %d", name,
                            (int)dtype);
    if (ndim < 0 || ndim > SPQR_MAX_DIMS || (ndim > 0 && !shape))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "safetensors writer: tensor '%s': bad ndim %d", name,
                            (int)ndim);
    uint64_t numel = 1;
    for (int32_t k = 0; k < ndim; k++) {
        if (shape[k] < 0)
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "safetensors writer: tensor '%s': negative dimension",
                                name);
        uint64_t v = (uint64_t)shape[k];
        if (v != 0 && numel > ((uint64_t)1 << 53) / v)
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "safetensors writer: tensor '%s': too many elements",
                                name);
        numel *= v;
    }
    uint64_t nbytes = numel * spqr_dtype_size(dtype);
    if (nbytes > 0 && !data)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "safetensors writer: tensor '%s': NULL data", name);
    for (int32_t i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name))
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "safetensors writer: tensor '%s' added twice", name);
    if (w->n == w->cap) {
        int32_t cap = w->cap ? w->cap * 2 : 8;
        wtensor *t = realloc(w->t, (size_t)cap * sizeof *t);
        if (!t) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
        w->t = t;
        w->cap = cap;
    }
    wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    t->dtype = dtype;
    t->ndim = ndim;
    for (int32_t k = 0; k < ndim; k++) t->shape[k] = shape[k];
    t->data = data;
    t->nbytes = nbytes;
    w->n++;
    return SPQR_OK;
}

spqr_status spqr_st_writer_set_metadata(spqr_st_writer *w, const char *key, const char *value, spqr_err *err) {
    if (!w || !key || !value) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "safetensors writer: NULL argument");
    if (!spqr_utf8_valid(key, strlen(key)) || !spqr_utf8_valid(value, strlen(value)))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "safetensors writer: metadata is not valid UTF-8");
    char *v = strdup(value);
    if (!v) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < w->nm; i++)
        if (!strcmp(w->mkey[i], key)) { /* last value wins */
            free(w->mval[i]);
            w->mval[i] = v;
            return SPQR_OK;
        }
    if (w->nm == w->mcap) {
        int32_t cap = w->mcap ? w->mcap * 2 : 8;
        char **k2 = realloc(w->mkey, (size_t)cap * sizeof *k2);
        if (k2) w->mkey = k2;
        char **v2 = k2 ? realloc(w->mval, (size_t)cap * sizeof *v2) : NULL;
        if (v2) w->mval = v2;
        if (!k2 || !v2) {
            free(v);
            return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
        }
        w->mcap = cap;
    }
    w->mkey[w->nm] = strdup(key);
    if (!w->mkey[w->nm]) {
        free(v);
        return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    }
    w->mval[w->nm++] = v;
    return SPQR_OK;
}

/* Growable header text. */
typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(sbuf *b, uint64_t v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    sb_put(b, tmp, (size_t)n);
}

/* JSON string literal: escape quote, backslash and control characters;
 * other bytes are valid UTF-8 (checked on add) and pass through. */
static void sb_json_string(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            sb_put(b, e, 2);
        } else if (*p < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", *p);
            sb_put(b, e, 6);
        } else {
            sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

typedef struct {
    const spqr_st_writer *w;
    const char *header;
    size_t header_len; /* padded */
    const int32_t *order;
} write_ctx;

static int write_body(FILE *f, void *user, spqr_err *err) {
    const write_ctx *c = user;
    uint8_t len8[8];
    uint64_t hl = c->header_len;
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(hl >> (8 * i));
    if (fwrite(len8, 1, 8, f) != 8) return 1;
    if (fwrite(c->header, 1, c->header_len, f) != c->header_len) return 1;
    for (int32_t k = 0; k < c->w->n; k++) {
        const wtensor *t = &c->w->t[c->order[k]];
        if (t->nbytes && fwrite(t->data, 1, (size_t)t->nbytes, f) != t->nbytes) return 1;
    }
    return 0;
}

spqr_status spqr_st_writer_write(spqr_st_writer *w, const char *path, spqr_err *err) {
    if (!w || !path) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "safetensors writer: NULL argument");
    int32_t *order = malloc((w->n ? (size_t)w->n : 1) * sizeof *order);
    if (!order) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    /* Stable order by decreasing element size: insertion sort over at most
     * a few thousand tensors. */
    for (int32_t i = 0; i < w->n; i++) {
        int32_t j = i;
        size_t es = spqr_dtype_size(w->t[i].dtype);
        while (j > 0 && spqr_dtype_size(w->t[order[j - 1]].dtype) < es) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    uint64_t off = 0;
    for (int32_t k = 0; k < w->n; k++) {
        w->t[order[k]].begin = off;
        off += w->t[order[k]].nbytes;
    }

    sbuf b = {0};
    sb_str(&b, "{");
    int first = 1;
    if (w->nm) {
        sb_str(&b, "\"__metadata__\":{");
        for (int32_t i = 0; i < w->nm; i++) {
            if (i) sb_str(&b, ",");
            sb_json_string(&b, w->mkey[i]);
            sb_str(&b, ":");
            sb_json_string(&b, w->mval[i]);
        }
        sb_str(&b, "}");
        first = 0;
    }
    for (int32_t i = 0; i < w->n; i++) {
        const wtensor *t = &w->t[i];
        if (!first) sb_str(&b, ",");
        first = 0;
        sb_json_string(&b, t->name);
        sb_str(&b, ":{\"dtype\":\"");
        sb_str(&b, spqr_dtype_name(t->dtype));
        sb_str(&b, "\",\"shape\":[");
        for (int32_t k = 0; k < t->ndim; k++) {
            if (k) sb_str(&b, ",");
            sb_u64(&b, (uint64_t)t->shape[k]);
        }
        sb_str(&b, "],\"data_offsets\":[");
        sb_u64(&b, t->begin);
        sb_str(&b, ",");
        sb_u64(&b, t->begin + t->nbytes);
        sb_str(&b, "]}");
    }
    sb_str(&b, "}");
    while (!b.oom && (8 + b.len) % 8 != 0) sb_str(&b, " ");
    spqr_status s;
    if (b.oom) {
        s = spqr_err_set(err, SPQR_ERR_NOMEM, "%s: out of memory building the header", path);
    } else if (b.len > ST_MAX_HEADER) {
        s = spqr_err_set(err, SPQR_ERR_INVALID_ARG, "%s: header would be %zu bytes, over the 100 MB limit", path,
                         b.len);
    } else {
        write_ctx c = {w, b.p, b.len, order};
        s = spqr_file_write_atomic(path, write_body, &c, err);
    }
    free(b.p);
    free(order);
    return s;
}
