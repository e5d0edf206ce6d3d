/* libFuzzer target: the safetensors reader (src/io/safetensors_read.c).
 *
 * The input is written to an anonymous in-memory file and opened through
 * spqr_safetensors_open (the reader is path-based; /proc/self/fd/N names the
 * file). The mapping the reader makes is recorded (the target is linked with
 * -Wl,--wrap=mmap), so everything an accepted file hands out is checked
 * against the documented validation, independently of the reader:
 *  - every tensor's [data, data + nbytes) lies inside the data section of
 *    the mapping, nbytes = numel * dtype size, numel = product of the shape,
 *    ndim <= SPQR_MAX_DIMS, unused dimensions 0;
 *  - non-empty tensors do not overlap; names are unique and find() returns
 *    the tensor at() does;
 *  - every byte of every tensor is read (F32/F16/BF16 through
 *    spqr_st_tensor_to_f32), so ASan sees any pointer past the mapping.
 * A rejection must be SPQR_ERR_FORMAT or SPQR_ERR_UNSUPPORTED with one line. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "fuzz_util.h"
#include "spqr.h"

static const uint8_t *g_map;
static size_t g_map_len;

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    void *p = __real_mmap(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED) {
        g_map = p;
        g_map_len = len;
    }
    return p;
}

typedef struct {
    uint64_t b, e;
} range;

static int cmp_range(const void *a, const void *b) {
    const range *x = a, *y = b;
    return x->b < y->b ? -1 : x->b > y->b;
}

static volatile uint64_t sink;
static volatile float fsink;

static void check(const spqr_safetensors *f, const uint8_t *data, size_t size) {
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | data[i];
    FUZZ_ASSERT(size >= 8 && hlen <= size - 8, "accepted a header longer than the file");
    const int32_t n = spqr_safetensors_count(f);
    FUZZ_ASSERT(n >= 0, "negative count");
    const uint8_t *base = g_map, *ds = g_map ? g_map + 8 + hlen : NULL;
    FUZZ_ASSERT(g_map && g_map_len == size, "mapping not recorded (%zu vs %zu)", g_map_len, size);
    const uint64_t dsize = size - 8 - hlen;
    range *rs = malloc(sizeof *rs * (size_t)(n ? n : 1));
    int nr = 0;
    spqr_err err;
    for (int32_t i = 0; i < n; i++) {
        const spqr_st_tensor *t = spqr_safetensors_at(f, i);
        FUZZ_ASSERT(t && t->name, "tensor %d missing", i);
        FUZZ_ASSERT(spqr_safetensors_find(f, t->name) == t, "find('%s') is not at(%d)", t->name, i);
        FUZZ_ASSERT(t->ndim >= 0 && t->ndim <= SPQR_MAX_DIMS, "ndim %d", t->ndim);
        uint64_t numel = 1;
        for (int d = 0; d < SPQR_MAX_DIMS; d++) {
            if (d < t->ndim) {
                FUZZ_ASSERT(t->shape[d] >= 0, "negative shape");
                numel *= (uint64_t)t->shape[d];
            } else {
                FUZZ_ASSERT(t->shape[d] == 0, "unused dimension %d is %lld", d, (long long)t->shape[d]);
            }
        }
        FUZZ_ASSERT(t->numel >= 0 && (uint64_t)t->numel == numel, "numel %lld vs %llu", (long long)t->numel,
                    (unsigned long long)numel);
        const size_t es = spqr_dtype_size(t->dtype);
        FUZZ_ASSERT(es > 0 && spqr_dtype_name(t->dtype) != NULL, "bad dtype %d", (int)t->dtype);
        FUZZ_ASSERT(t->nbytes == numel * es, "nbytes %llu for %llu elements", (unsigned long long)t->nbytes,
                    (unsigned long long)numel);
        if (t->nbytes) {
            const uint8_t *p = t->data;
            FUZZ_ASSERT(p >= ds && (uint64_t)(p - ds) <= dsize && t->nbytes <= dsize - (uint64_t)(p - ds),
                        "tensor '%s' [%td, +%llu) outside the data section [%llu, %zu)", t->name, p - base,
                        (unsigned long long)t->nbytes, (unsigned long long)(8 + hlen), size);
            rs[nr].b = (uint64_t)(p - ds);
            rs[nr].e = rs[nr].b + t->nbytes;
            nr++;
            if (t->dtype == SPQR_DTYPE_F32 || t->dtype == SPQR_DTYPE_F16 || t->dtype == SPQR_DTYPE_BF16) {
                float *dst = malloc((size_t)numel * sizeof *dst);
                if (dst) {
                    FUZZ_ASSERT(spqr_st_tensor_to_f32(t, dst, &err) == SPQR_OK, "to_f32: %s", err.msg);
                    fsink += dst[numel - 1];
                    free(dst);
                }
            } else {
                sink += fuzz_hash(p, t->nbytes);
                float one;
                FUZZ_ASSERT(spqr_st_tensor_to_f32(t, &one, &err) != SPQR_OK, "to_f32 accepted dtype %s",
                            spqr_dtype_name(t->dtype));
            }
        }
    }
    qsort(rs, (size_t)nr, sizeof *rs, cmp_range);
    for (int i = 0; i + 1 < nr; i++) FUZZ_ASSERT(rs[i].e <= rs[i + 1].b, "tensors overlap");
    free(rs);
    FUZZ_ASSERT(spqr_safetensors_at(f, n) == NULL && spqr_safetensors_at(f, -1) == NULL, "at() out of range");
    FUZZ_ASSERT(spqr_safetensors_find(f, "\x01no such tensor") == NULL, "found a missing tensor");
    const char *m = spqr_safetensors_metadata(f, "format");
    if (m) sink += strlen(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_memfd(data, size, path);
    g_map = NULL;
    g_map_len = 0;
    spqr_safetensors *f = NULL;
    spqr_err err;
    err.msg[0] = 0;
    spqr_status s = spqr_safetensors_open(path, &f, &err);
    close(fd);
    if (s == SPQR_OK) {
        check(f, data, size);
        spqr_safetensors_close(f);
    } else {
        FUZZ_ASSERT(f == NULL, "handle returned with an error");
        fuzz_check_reject(s, &err, FUZZ_BIT(SPQR_ERR_FORMAT) | FUZZ_BIT(SPQR_ERR_UNSUPPORTED));
    }
    return 0;
}
