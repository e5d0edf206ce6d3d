/* Minimal test harness: CHECK records failures and keeps going; each test
 * binary ends with TEST_SUMMARY(), which prints "N passed, N failed" and
 * returns non-zero on any failure. */
#ifndef SPQR_TEST_UTIL_H
#define SPQR_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"

static int g_test_pass = 0, g_test_fail = 0;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (cond) g_test_pass++;                                                      \
        else { g_test_fail++; fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } \
    } while (0)

#define CHECK_MSG(cond, ...)                                                          \
    do {                                                                              \
        if (cond) g_test_pass++;                                                      \
        else { g_test_fail++; fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
               fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); }                   \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                         \
    do {                                                                              \
        double _a = (double)(a), _b = (double)(b), _t = (double)(tol);                \
        if (fabs(_a - _b) <= _t) g_test_pass++;                                       \
        else { g_test_fail++; fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s=%.9g %s=%.9g tol=%g\n", \
                                      __FILE__, __LINE__, #a, _a, #b, _b, _t); }      \
    } while (0)

#define TEST_SUMMARY()                                                                \
    do {                                                                              \
        printf("%d passed, %d failed\n", g_test_pass, g_test_fail);                   \
        return g_test_fail ? 1 : 0;                                                   \
    } while (0)

/* A whole file through the library's one reader (io/file.h), malloc'ed and
 * NUL-terminated (*len without the NUL; len may be NULL); NULL on any failure. */
static inline char *test_read_file(const char *path, size_t *len) {
    char *buf = NULL;
    spqr_err e;
    return spqr_file_read_text(path, (size_t)1 << 30, &buf, len, &e) == SPQR_OK ? buf : NULL;
}

/* Deterministic xorshift RNG so tests need no seeds from the environment. */
typedef struct { unsigned long long s; } test_rng;
static inline unsigned long long test_rng_next(test_rng *r) {
    r->s ^= r->s << 13; r->s ^= r->s >> 7; r->s ^= r->s << 17; return r->s;
}
static inline float test_rng_uniform(test_rng *r) { /* [0,1) */
    return (float)((test_rng_next(r) >> 40) * (1.0 / 16777216.0));
}
static inline float test_rng_normal(test_rng *r) {
    float u1 = test_rng_uniform(r) + 1e-7f, u2 = test_rng_uniform(r);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530718f * u2);
}

/* H = X^T X / n as fp32 [cols][cols], X [n][cols] fp64: a Hessian proxy from
 * synthetic inputs. Caller frees. */
static inline float *test_gram(const double *X, int32_t n, int32_t cols) {
    float *H = malloc(sizeof(float) * (size_t)cols * cols);
    for (int32_t i = 0; i < cols; i++)
        for (int32_t j = i; j < cols; j++) {
            double acc = 0;
            for (int32_t k = 0; k < n; k++) acc += X[(size_t)k * cols + i] * X[(size_t)k * cols + j];
            H[i * cols + j] = H[j * cols + i] = (float)(acc / n);
        }
    return H;
}

/* The first max bytes of a file (all of it when shorter), NUL-terminated,
 * malloc'ed; NULL when it cannot be opened. Tests take text prefixes with
 * it (io/file.h's reader refuses files over its limit instead). */
static inline char *test_read_prefix(const char *path, size_t max, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = malloc(max + 1);
    *len = b ? fread(b, 1, max, f) : 0;
    if (b) b[*len] = 0;
    fclose(f);
    return b;
}

#endif
