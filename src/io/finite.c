#include "io/finite.h"

#include <string.h>

#include "core/error.h"

/* Elements per block: small enough that a misaligned block copied to the
 * stack stays in L1, large enough to amortise the per-block branch. */
#define BLOCK 2048
/* Elements per OpenMP work item (512 KiB of fp16): a 4096x4096 layer is 64 items. */
#define CHUNK ((uint64_t)1 << 18)

/* The exponent field of each element; all ones means NaN or Inf. The max
 * reductions vectorise, so the pass runs at memory speed. */
static int block_bad32(const uint32_t *v, size_t n) {
    uint32_t mx = 0;
    for (size_t k = 0; k < n; k++) {
        uint32_t e = v[k] & 0x7f800000u;
        mx = e > mx ? e : mx;
    }
    return mx == 0x7f800000u;
}

static int block_bad16(const uint16_t *v, size_t n, uint16_t expo) {
    uint16_t mx = 0;
    for (size_t k = 0; k < n; k++) {
        uint16_t e = (uint16_t)(v[k] & expo);
        mx = e > mx ? e : mx;
    }
    return mx == expo;
}

/* First bad index in [lo, hi), or -1. */
static int64_t scan_range(const uint8_t *data, size_t es, uint16_t expo16, uint64_t lo, uint64_t hi) {
    /* The stack copy keeps loads aligned when the mapping is not (safetensors promises no alignment). */
    union {
        uint32_t u32[BLOCK];
        uint16_t u16[BLOCK];
    } buf;
    const int aligned = ((uintptr_t)data % es) == 0;
    for (uint64_t b = lo; b < hi; b += BLOCK) {
        const size_t n = (size_t)(hi - b < BLOCK ? hi - b : BLOCK);
        const void *p = data + b * es;
        if (!aligned) {
            memcpy(&buf, p, n * es);
            p = &buf;
        }
        const int bad = es == 4 ? block_bad32(p, n) : block_bad16(p, n, expo16);
        if (!bad) continue;
        for (size_t k = 0; k < n; k++) {
            const int hit = es == 4 ? (((const uint32_t *)p)[k] & 0x7f800000u) == 0x7f800000u
                                    : (((const uint16_t *)p)[k] & expo16) == expo16;
            if (hit) return (int64_t)(b + k);
        }
    }
    return -1;
}

int64_t spqr_first_nonfinite(const void *data, spqr_dtype dtype, uint64_t n) {
    size_t es;
    uint16_t expo16 = 0;
    switch (dtype) {
    case SPQR_DTYPE_F32: es = 4; break;
    case SPQR_DTYPE_F16: es = 2; expo16 = 0x7c00u; break;
    case SPQR_DTYPE_BF16: es = 2; expo16 = 0x7f80u; break;
    default: return -1;
    }
    if (!data || n == 0) return -1;
    const int64_t n_chunks = (int64_t)((n + CHUNK - 1) / CHUNK);
    int64_t first = INT64_MAX;
#pragma omp parallel for schedule(static) reduction(min : first) if (n_chunks > 1)
    for (int64_t c = 0; c < n_chunks; c++) {
        const uint64_t lo = (uint64_t)c * CHUNK, hi = lo + CHUNK < n ? lo + CHUNK : n;
        const int64_t i = scan_range(data, es, expo16, lo, hi);
        if (i >= 0 && i < first) first = i;
    }
    return first == INT64_MAX ? -1 : first;
}

spqr_status spqr_st_tensor_check_finite(const spqr_st_tensor *t, spqr_err *err) {
    const int64_t i = spqr_first_nonfinite(t->data, t->dtype, (uint64_t)t->numel);
    if (i < 0) return SPQR_OK;
    /* Sign and mantissa of the bad element say which of NaN, +Inf, -Inf it is. */
    const char *what;
    const uint8_t *p = (const uint8_t *)t->data;
    if (t->dtype == SPQR_DTYPE_F32) {
        uint32_t v;
        memcpy(&v, p + (size_t)i * 4, 4);
        what = v & 0x007fffffu ? "NaN" : v >> 31 ? "-Inf" : "+Inf";
    } else {
        uint16_t v;
        memcpy(&v, p + (size_t)i * 2, 2);
        const uint16_t mant = t->dtype == SPQR_DTYPE_F16 ? 0x03ffu : 0x007fu;
        what = v & mant ? "NaN" : v >> 15 ? "-Inf" : "+Inf";
    }
    char nb[160];
    spqr_printable(t->name ? t->name : "?", nb, sizeof nb);
    if (t->ndim == 2 && t->shape[1] > 0)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor %s holds %s at element %lld (row %lld, column %lld)", nb,
                            what, (long long)i, (long long)(i / t->shape[1]), (long long)(i % t->shape[1]));
    return spqr_err_set(err, SPQR_ERR_FORMAT, "tensor %s holds %s at element %lld", nb, what, (long long)i);
}
