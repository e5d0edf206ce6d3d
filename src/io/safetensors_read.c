/* safetensors reader: the file is mapped read-only and its header is
 * validated completely before any tensor is handed out, so callers can trust
 * every (data, nbytes, shape) triple. Checks are listed in docs/safetensors.md.
 *
 * Layout: u64 little-endian N | N bytes of UTF-8 JSON | data section.
 * Tensor data pointers are NOT necessarily aligned (N is arbitrary): read
 * through memcpy or spqr_st_tensor_to_f32. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/dtype.h"
#include "io/file.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the safetensors reader assumes a little-endian host"
#endif

#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)
/* Tensors per file: far above any real checkpoint (a 671B MoE has about 90k
 * in all), low enough that every per-tensor table stays small. */
#define ST_MAX_TENSORS (1 << 20)
/* Integers in the header are parsed as doubles by cJSON: only values up to
 * 2^53 are exact, which is far above any real shape or offset. */
#define ST_MAX_JSON_INT 9007199254740992.0

struct spqr_safetensors {
    spqr_mapped_file map;
    cJSON *root;       /* owns the name strings the tensors point to */
    cJSON *metadata;   /* "__metadata__" object or NULL */
    int32_t n;
    spqr_st_tensor *tensors; /* header order */
    int32_t *by_name;        /* indices sorted by name, for find */
};

/* 1 when a JSON string in p[0..n) holds the escape \u0000: cJSON decodes it
 * to a NUL that ends the C string, so "a\u0000b" would become tensor "a". */
static int escaped_nul(const char *p, size_t n) {
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        if (!in_str) {
            in_str = p[i] == '"';
        } else if (p[i] == '"') {
            in_str = 0;
        } else if (p[i] == '\\' && i + 1 < n) {
            if (p[i + 1] == 'u' && i + 5 < n && !memcmp(p + i + 2, "0000", 4)) return 1;
            i++; /* the escaped character */
        }
    }
    return 0;
}

/* Non-negative integral JSON number not above 2^53. */
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > ST_MAX_JSON_INT || d != (double)(uint64_t)d) return 0;
    *out = (uint64_t)d;
    return 1;
}

typedef struct {
    const char *name;
    int32_t idx;
} name_idx;

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const name_idx *)a)->name, ((const name_idx *)b)->name);
}

typedef struct {
    uint64_t begin, end;
    int32_t idx;
} range_idx;

static int cmp_range(const void *a, const void *b) {
    const range_idx *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

void spqr_safetensors_close(spqr_safetensors *f) {
    if (!f) return;
    cJSON_Delete(f->root);
    free(f->tensors);
    free(f->by_name);
    spqr_file_unmap(&f->map);
    free(f);
}

static spqr_status parse_tensor(const char *path, const cJSON *item, uint64_t data_size, const uint8_t *data,
                                spqr_st_tensor *t, spqr_err *err) {
    char nb[128];
    const char *nm = spqr_printable(item->string, nb, sizeof nb);
    if (!cJSON_IsObject(item))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", path, nm);
    const cJSON *dt = NULL, *shape = NULL, *offs = NULL;
    /* Fields are looked up by hand so that a duplicated field is an error
     * rather than silently first-wins; unknown fields are tolerated. */
    for (const cJSON *c = item->child; c; c = c->next) {
        const cJSON **slot = !strcmp(c->string, "dtype") ? &dt
                             : !strcmp(c->string, "shape") ? &shape
                             : !strcmp(c->string, "data_offsets") ? &offs
                                                                  : NULL;
        if (!slot) continue;
        if (*slot)
            return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: tensor '%s': field '%s' appears twice", path, nm,
                                c->string);
        *slot = c;
    }
    if (!dt || !cJSON_IsString(dt))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: tensor '%s': missing or non-string 'dtype'", path, nm);
    if (spqr_dtype_parse(dt->valuestring, &t->dtype) != 0) {
        char db[64];
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "%s: tensor '%s': unsupported dtype '%s'", path, nm,
                            spqr_printable(dt->valuestring, db, sizeof db));
    }
    if (!shape || !cJSON_IsArray(shape))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: tensor '%s': missing or non-array 'shape'", path, nm);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > SPQR_MAX_DIMS)
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "%s: tensor '%s': %d dimensions, at most %d supported", path,
                            nm, ndim, SPQR_MAX_DIMS);
    t->ndim = ndim;
    uint64_t numel = 1;
    int k = 0;
    for (const cJSON *d = shape->child; d; d = d->next, k++) {
        uint64_t v;
        if (!json_uint(d, &v))
            return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not an integer in [0, 2^53]",
                                path, nm, k);
        t->shape[k] = (int64_t)v;
        /* numel is bounded by the data section anyway; checking against
         * INT64_MAX before multiplying keeps the product exact. */
        if (v != 0 && numel > (uint64_t)INT64_MAX / v)
            return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: tensor '%s': element count overflows", path, nm);
        numel *= v;
    }
    for (; k < SPQR_MAX_DIMS; k++) t->shape[k] = 0;
    t->numel = (int64_t)numel;
    size_t es = spqr_dtype_size(t->dtype);
    if (numel > UINT64_MAX / es)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: tensor '%s': byte size overflows", path, nm);
    uint64_t want = numel * es;

    if (!offs || !cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: tensor '%s': 'data_offsets' must be an array [begin, end]",
                            path, nm);
    uint64_t begin, end;
    if (!json_uint(offs->child, &begin) || !json_uint(offs->child->next, &end))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: tensor '%s': data_offsets are not integers in [0, 2^53]",
                            path, nm);
    if (end < begin)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: tensor '%s': data_offsets end %llu < begin %llu", path, nm,
                            (unsigned long long)end, (unsigned long long)begin);
    if (end > data_size)
        return spqr_err_set(err, SPQR_ERR_FORMAT,
                            "%s: tensor '%s': data ends at byte %llu of a %llu-byte data section (truncated file?)",
                            path, nm, (unsigned long long)end, (unsigned long long)data_size);
    if (end - begin != want)
        return spqr_err_set(err, SPQR_ERR_FORMAT,
                            "%s: tensor '%s': data_offsets span %llu bytes but %llu elements of %s need %llu", path,
                            nm, (unsigned long long)(end - begin), (unsigned long long)numel,
                            spqr_dtype_name(t->dtype), (unsigned long long)want);
    t->name = item->string;
    t->data = data + begin;
    t->nbytes = want;
    return SPQR_OK;
}

static spqr_status parse_metadata(const char *path, const cJSON *m, spqr_err *err) {
    if (!cJSON_IsObject(m))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: '__metadata__' is not a JSON object", path);
    char kb[96];
    int n = 0;
    for (const cJSON *c = m->child; c; c = c->next, n++)
        if (!cJSON_IsString(c))
            return spqr_err_set(err, SPQR_ERR_FORMAT, "%s: metadata '%s': value is not a string", path,
                                spqr_printable(c->string, kb, sizeof kb));
    /* Duplicate keys would make lookups ambiguous: sort and compare. */
    name_idx *keys = calloc(n ? (size_t)n : 1, sizeof *keys);
    if (!keys) return spqr_err_set(err, SPQR_ERR_NOMEM, "%s: out of memory", path);
    int i = 0;
    for (const cJSON *c = m->child; c; c = c->next) keys[i++].name = c->string;
    qsort(keys, (size_t)n, sizeof *keys, cmp_name);
    for (i = 0; i + 1 < n; i++)
        if (!strcmp(keys[i].name, keys[i + 1].name)) {
            spqr_status s = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: metadata key '%s' appears twice", path,
                                         spqr_printable(keys[i].name, kb, sizeof kb));
            free(keys);
            return s;
        }
    free(keys);
    return SPQR_OK;
}

spqr_status spqr_safetensors_open(const char *path, spqr_safetensors **out, spqr_err *err) {
    *out = NULL;
    spqr_safetensors *f = calloc(1, sizeof *f);
    if (!f) return spqr_err_set(err, SPQR_ERR_NOMEM, "%s: out of memory", path);
    spqr_status s = spqr_file_map(path, 0, 0, &f->map, err);
    if (s != SPQR_OK) {
        free(f);
        return s;
    }
    char *hdr = NULL;
    name_idx *names = NULL;
    range_idx *ranges = NULL;
    const uint64_t size = f->map.size;
    if (size < 8) {
        s = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: file is %llu bytes, too short for a safetensors header", path,
                         (unsigned long long)size);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->map.data[i];
    if (hlen > ST_MAX_HEADER) {
        s = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: header length %llu exceeds the 100 MB limit", path,
                         (unsigned long long)hlen);
        goto fail;
    }
    if (hlen > size - 8) {
        s = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: header length %llu exceeds the %llu bytes after it (truncated?)",
                         path, (unsigned long long)hlen, (unsigned long long)(size - 8));
        goto fail;
    }
    if (hlen < 2) {
        s = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: header of %llu bytes cannot hold a JSON object", path,
                         (unsigned long long)hlen);
        goto fail;
    }
    const char *hsrc = (const char *)f->map.data + 8;
    if (!spqr_utf8_valid(hsrc, (size_t)hlen)) {
        s = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: header is not valid UTF-8 (or contains NUL bytes)", path);
        goto fail;
    }
    if (escaped_nul(hsrc, (size_t)hlen)) {
        s = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: header has a \\u0000 in a string (a tensor name would be cut short)", path);
        goto fail;
    }
    hdr = malloc((size_t)hlen + 1);
    if (!hdr) {
        s = spqr_err_set(err, SPQR_ERR_NOMEM, "%s: out of memory for a %llu-byte header", path,
                         (unsigned long long)hlen);
        goto fail;
    }
    memcpy(hdr, hsrc, (size_t)hlen);
    hdr[hlen] = 0;
    /* Length includes the NUL: cJSON's require_null_terminated check looks
     * at the byte after trailing whitespace (the padding spaces). */
    const char *endp = NULL;
    f->root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen + 1, &endp, 1);
    if (!f->root) {
        long at = endp ? (long)(endp - hdr) : -1;
        s = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: header is not valid JSON (error near byte %ld of %llu)", path,
                         at, (unsigned long long)hlen);
        goto fail;
    }
    free(hdr);
    hdr = NULL;
    if (!cJSON_IsObject(f->root)) {
        s = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: header is JSON but not an object", path);
        goto fail;
    }

    const uint64_t data_size = size - 8 - hlen;
    const uint8_t *data = f->map.data + 8 + hlen;
    int n = 0;
    for (const cJSON *c = f->root->child; c; c = c->next) {
        if (!strcmp(c->string, "__metadata__")) {
            if (f->metadata) {
                s = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: '__metadata__' appears twice", path);
                goto fail;
            }
            f->metadata = (cJSON *)c;
            s = parse_metadata(path, c, err);
            if (s != SPQR_OK) goto fail;
        } else {
            if (n == ST_MAX_TENSORS) {
                s = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: more than %d tensors in the header", path,
                                 ST_MAX_TENSORS);
                goto fail;
            }
            n++;
        }
    }
    f->n = n;
    f->tensors = calloc(n ? (size_t)n : 1, sizeof *f->tensors);
    f->by_name = calloc(n ? (size_t)n : 1, sizeof *f->by_name);
    names = calloc(n ? (size_t)n : 1, sizeof *names);
    ranges = calloc(n ? (size_t)n : 1, sizeof *ranges);
    if (!f->tensors || !f->by_name || !names || !ranges) {
        s = spqr_err_set(err, SPQR_ERR_NOMEM, "%s: out of memory for %d tensors", path, n);
        goto fail;
    }
    int i = 0;
    for (const cJSON *c = f->root->child; c; c = c->next) {
        if (c == f->metadata) continue;
        s = parse_tensor(path, c, data_size, data, &f->tensors[i], err);
        if (s != SPQR_OK) goto fail;
        names[i].name = c->string;
        names[i].idx = i;
        ranges[i].begin = (uint64_t)((const uint8_t *)f->tensors[i].data - data);
        ranges[i].end = ranges[i].begin + f->tensors[i].nbytes;
        ranges[i].idx = i;
        i++;
    }

    /* Names unique: JSON allows duplicate keys and cJSON keeps them all. */
    qsort(names, (size_t)n, sizeof *names, cmp_name);
    for (i = 0; i + 1 < n; i++)
        if (!strcmp(names[i].name, names[i + 1].name)) {
            char nb[128];
            s = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", path,
                             spqr_printable(names[i].name, nb, sizeof nb));
            goto fail;
        }
    for (i = 0; i < n; i++) f->by_name[i] = names[i].idx;

    /* No two tensors share bytes (empty tensors occupy none), and, as the
     * safetensors library requires, the data leaves no gap and ends with the
     * file. Sorted by begin, each non-empty range must start at the furthest
     * end seen so far. */
    qsort(ranges, (size_t)n, sizeof *ranges, cmp_range);
    uint64_t reach = 0;
    int32_t reach_idx = -1;
    for (i = 0; i < n; i++) {
        if (ranges[i].begin == ranges[i].end) continue;
        if (reach_idx >= 0 && ranges[i].begin < reach) {
            char a[96], b[96];
            s = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: tensor '%s': data overlaps tensor '%s'", path,
                             spqr_printable(f->tensors[ranges[i].idx].name, a, sizeof a),
                             spqr_printable(f->tensors[reach_idx].name, b, sizeof b));
            goto fail;
        }
        if (ranges[i].begin > reach) {
            char a[96];
            s = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: %llu bytes of no tensor before tensor '%s' (the data must be contiguous)",
                             path, (unsigned long long)(ranges[i].begin - reach),
                             spqr_printable(f->tensors[ranges[i].idx].name, a, sizeof a));
            goto fail;
        }
        reach = ranges[i].end;
        reach_idx = ranges[i].idx;
    }
    if (reach != data_size) {
        s = spqr_err_set(err, SPQR_ERR_FORMAT, "%s: %llu bytes after the last tensor's data (the file must end there)", path,
                         (unsigned long long)(data_size - reach));
        goto fail;
    }
    free(names);
    free(ranges);
    *out = f;
    return SPQR_OK;

fail:
    free(hdr);
    free(names);
    free(ranges);
    spqr_safetensors_close(f);
    return s;
}

int32_t spqr_safetensors_count(const spqr_safetensors *f) { return f ? f->n : 0; }

const spqr_st_tensor *spqr_safetensors_at(const spqr_safetensors *f, int32_t i) {
    return (f && i >= 0 && i < f->n) ? &f->tensors[i] : NULL;
}

const spqr_st_tensor *spqr_safetensors_find(const spqr_safetensors *f, const char *name) {
    if (!f || !name) return NULL;
    int32_t lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int32_t mid = lo + (hi - lo) / 2;
        const spqr_st_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const char *spqr_safetensors_metadata(const spqr_safetensors *f, const char *key) {
    if (!f || !f->metadata || !key) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(f->metadata, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

spqr_status spqr_st_tensor_to_f32(const spqr_st_tensor *t, float *dst, spqr_err *err) {
    if (!t || (!dst && t->numel > 0)) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "to_f32: NULL argument");
    const uint8_t *src = (const uint8_t *)t->data;
    size_t n = (size_t)t->numel;
    char nb[128];
    switch (t->dtype) {
    case SPQR_DTYPE_F32:
        if (n) memcpy(dst, src, n * sizeof(float));
        return SPQR_OK;
    case SPQR_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = spqr_fp16_to_fp32(h);
        }
        return SPQR_OK;
    case SPQR_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = spqr_bf16_to_fp32(h);
        }
        return SPQR_OK;
    default:
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tensor '%s' has dtype %s; expected F32, F16 or BF16",
                            spqr_printable(t->name ? t->name : "?", nb, sizeof nb), spqr_dtype_name(t->dtype));
    }
}
