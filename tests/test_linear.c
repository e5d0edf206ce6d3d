/* Linear layer kernels: every ISA path and the sgemm tile path against an
 * independent double-precision reference built from the exact stored
 * weights (spqr_fp16_to_fp32 / spqr_bf16_to_fp32 of src/core/half.c). */
#include <stdint.h>

#include "kernels/kernels.h"
#include "model/linear.h"
#include "test_util.h"

typedef struct {
    spqr_linear lin;
    float *wf;   /* [rows][cols] exact fp32 values of the stored weights */
    void *store;
} mat;

static mat make(spqr_linear_kind kind, int32_t rows, int32_t cols, test_rng *r) {
    mat m = {{.kind = kind, .rows = rows, .cols = cols}, malloc((size_t)rows * cols * 4), NULL};
    size_t n = (size_t)rows * cols;
    if (kind == SPQR_LINEAR_F32) {
        float *s = malloc(n * 4);
        for (size_t i = 0; i < n; i++) m.wf[i] = s[i] = test_rng_normal(r);
        m.store = s;
    } else {
        uint16_t *s = malloc(n * 2);
        for (size_t i = 0; i < n; i++) {
            float v = test_rng_normal(r);
            if (i % 97 == 5) v *= 1e-6f; /* fp16 subnormals exercise the conversion */
            s[i] = kind == SPQR_LINEAR_F16 ? spqr_fp32_to_fp16(v) : spqr_fp32_to_bf16(v);
            m.wf[i] = kind == SPQR_LINEAR_F16 ? spqr_fp16_to_fp32(s[i]) : spqr_bf16_to_fp32(s[i]);
        }
        m.store = s;
    }
    m.lin.data = m.store;
    return m;
}

/* A context per thread count with scratch for every product here (the
 * model's session sizes its own with spqri_linear_scratch_size). */
static linear_ctx ctx[8];
static const linear_ctx *C(int nt) {
    if (!ctx[nt].scratch) CHECK(spqri_linear_ctx_init(&ctx[nt], nt, (size_t)16 << 20, NULL) == SPQR_OK);
    return &ctx[nt];
}

/* max |y - ref| / max |ref| */
static double rel_err(const float *y, const double *ref, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(y[i] - ref[i]);
        if (d > md || isnan(d)) md = isnan(d) ? INFINITY : d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return md / mr;
}

int main(void) {
    test_rng r = {0x1234567ULL};
    const spqr_linear_kind kinds[3] = {SPQR_LINEAR_F32, SPQR_LINEAR_F16, SPQR_LINEAR_BF16};
    /* the last one is big enough for several threads on the sgemm tiles */
    const int32_t shapes[4][2] = {{37, 1013}, {300, 72}, {8, 4096 + 7}, {200, 600}};
    const spqr_isa best = spqri_linear_isa_best();
    printf("best ISA: %s\n", spqri_linear_isa_name(best));
    CHECK(spqri_linear_isa_available(best) && spqri_linear_isa_available(SPQR_ISA_SCALAR));
    spqr_err err;
    for (int k = 0; k < 3; k++)
        for (int sh = 0; sh < 4; sh++) {
            const int32_t rows = shapes[sh][0], cols = shapes[sh][1], n = 19;
            mat m = make(kinds[k], rows, cols, &r);
            float *x = malloc((size_t)n * cols * 4), *y = malloc((size_t)n * rows * 4);
            double *ref = malloc((size_t)n * rows * 8);
            for (size_t i = 0; i < (size_t)n * cols; i++) x[i] = test_rng_normal(&r);
            for (int32_t t = 0; t < n; t++)
                for (int32_t i = 0; i < rows; i++) {
                    double acc = 0;
                    for (int32_t j = 0; j < cols; j++) acc += (double)m.wf[(size_t)i * cols + j] * x[(size_t)t * cols + j];
                    ref[(size_t)t * rows + i] = acc;
                }
            /* matvec: every ISA the CPU has, 1 and 3 threads */
            for (int isa = SPQR_ISA_SCALAR; isa <= SPQR_ISA_NEON; isa++) {
                if (!spqri_linear_isa_available((spqr_isa)isa)) continue;
                for (int nt = 1; nt <= 3; nt += 2) {
                    memset(y, 0xff, (size_t)rows * 4);
                    spqr_status st = spqri_linear_matvec_isa(&m.lin, x, y, C(nt), (spqr_isa)isa, &err);
                    CHECK(st == SPQR_OK);
                    double e = rel_err(y, ref, (size_t)rows);
                    CHECK_MSG(e < 2e-6, "kind %d %dx%d isa %s threads %d: rel err %g", k, rows, cols,
                              spqri_linear_isa_name((spqr_isa)isa), nt, e);
                }
            }
            /* matmul: 19 vectors (sgemm on widened tiles) and 5 (dot products per row),
             * several thread counts; the first nb rows of ref are the first nb vectors */
            for (int nb = 5; nb <= n; nb += n - 5)
                for (int nt = 1; nt <= 4; nt++) {
                    memset(y, 0xff, (size_t)n * rows * 4);
                    CHECK(spqri_linear_matmul(&m.lin, x, nb, y, C(nt), &err) == SPQR_OK);
                    double e = rel_err(y, ref, (size_t)nb * rows);
                    CHECK_MSG(e < 2e-6, "matmul kind %d %dx%d n %d threads %d: rel err %g", k, rows, cols, nb, nt, e);
                }
            /* the same batches through each narrower ISA's dense kernels (SPQR_DENSE_ISA: the
             * AVX2 fp16 register tiles on an AVX-512 machine, every tile shape and k tail) */
            for (int isa = SPQR_ISA_SCALAR; isa <= SPQR_ISA_NEON; isa++) {
                if (!spqri_linear_isa_available((spqr_isa)isa) || isa == (int)best) continue;
                const char *nm = isa == SPQR_ISA_SCALAR ? "scalar" : isa == SPQR_ISA_AVX2 ? "avx2"
                                 : isa == SPQR_ISA_AVX512 ? "avx512" : "neon";
                setenv("SPQR_DENSE_ISA", nm, 1);
                linear_ctx nc[3];
                for (int nt = 1; nt <= 2; nt++) {
                    CHECK(spqri_linear_ctx_init(&nc[nt], nt, (size_t)16 << 20, &err) == SPQR_OK);
                    CHECK(nc[nt].isa == (spqr_isa)isa); /* read once, at init */
                }
                unsetenv("SPQR_DENSE_ISA");
                for (int nb = 1; nb <= n; nb++)
                    for (int nt = 1; nt <= 2; nt++) {
                        memset(y, 0xff, (size_t)n * rows * 4);
                        CHECK(spqri_linear_matmul(&m.lin, x, nb, y, &nc[nt], &err) == SPQR_OK);
                        double e = rel_err(y, ref, (size_t)nb * rows);
                        /* 1e-5: the scalar path sums a 4103-long row in plain float order (2.1e-6
                         * in the sanitizer build); a 1e-4 error in a tile still fails */
                        CHECK_MSG(e < 1e-5, "matmul %s kind %d %dx%d n %d threads %d: rel err %g", nm, k, rows, cols, nb,
                                  nt, e);
                    }
                for (int nt = 1; nt <= 2; nt++) spqri_linear_ctx_free(&nc[nt]);
            }
            /* row lookup is exact */
            float *row = malloc((size_t)cols * 4);
            CHECK(spqri_linear_row(&m.lin, rows - 1, row, &err) == SPQR_OK);
            CHECK(memcmp(row, m.wf + (size_t)(rows - 1) * cols, (size_t)cols * 4) == 0);
            CHECK(spqri_linear_row(&m.lin, rows, row, &err) == SPQR_ERR_INVALID_ARG);
            CHECK(spqri_linear_bytes(&m.lin) == (uint64_t)rows * cols * (k == 0 ? 4 : 2));
            free(row);
            free(x); free(y); free(ref); free(m.wf); free(m.store);
        }
    /* fp16 specials: inf and nan propagate through the scalar and SIMD conversions alike */
    {
        uint16_t w[64];
        float x[64];
        for (int i = 0; i < 64; i++) { w[i] = spqr_fp32_to_fp16(0.5f); x[i] = 1.0f; }
        spqr_linear lin = {.kind = SPQR_LINEAR_F16, .rows = 1, .cols = 64, .data = w};
        float y;
        for (int isa = SPQR_ISA_SCALAR; isa <= SPQR_ISA_NEON; isa++) {
            if (!spqri_linear_isa_available((spqr_isa)isa)) continue;
            CHECK(spqri_linear_matvec_isa(&lin, x, &y, C(1), (spqr_isa)isa, &err) == SPQR_OK && y == 32.0f);
        }
        w[17] = 0x7c00; /* +inf */
        for (int isa = SPQR_ISA_SCALAR; isa <= SPQR_ISA_NEON; isa++) {
            if (!spqri_linear_isa_available((spqr_isa)isa)) continue;
            CHECK(spqri_linear_matvec_isa(&lin, x, &y, C(1), (spqr_isa)isa, &err) == SPQR_OK && isinf(y) && y > 0);
        }
        w[17] = 0x7e00; /* nan */
        for (int isa = SPQR_ISA_SCALAR; isa <= SPQR_ISA_NEON; isa++) {
            if (!spqri_linear_isa_available((spqr_isa)isa)) continue;
            CHECK(spqri_linear_matvec_isa(&lin, x, &y, C(1), (spqr_isa)isa, &err) == SPQR_OK && isnan(y));
        }
    }
    /* packed SpQR kind: the same interface, routed to the reference kernels;
     * must equal a dense fp32 layer holding the dequantized weights */
    {
        const int32_t rows = 40, cols = 64, nx = 256, n = 5;
        float *W = malloc((size_t)rows * cols * 4), *H = calloc((size_t)cols * cols, 4), *Wd = malloc((size_t)rows * cols * 4);
        float *X = malloc((size_t)nx * cols * 4);
        for (int32_t i = 0; i < rows * cols; i++) W[i] = test_rng_normal(&r);
        for (int32_t i = 0; i < nx * cols; i++) X[i] = test_rng_normal(&r);
        for (int32_t a = 0; a < cols; a++)
            for (int32_t b = 0; b < cols; b++) {
                double acc = 0;
                for (int32_t t = 0; t < nx; t++) acc += (double)X[t * cols + a] * X[t * cols + b];
                H[a * cols + b] = (float)(2.0 * acc / nx);
            }
        spqr_quant_params p;
        spqr_quant_params_default(&p);
        spqr_tensor *t = NULL;
        spqr_status st = spqr_quantize_layer(W, rows, cols, H, &p, 1, NULL, &t, Wd, NULL, NULL, &err);
        CHECK_MSG(st == SPQR_OK, "quantize: %s", err.msg);
        if (st == SPQR_OK) {
            spqr_linear packed = {.kind = SPQR_LINEAR_PACKED, .rows = rows, .cols = cols, .packed = t};
            spqr_linear dense = {.kind = SPQR_LINEAR_F32, .rows = rows, .cols = cols, .data = Wd};
            float y1[5 * 40], y2[5 * 40];
            double ref[5 * 40];
            CHECK(spqri_linear_matvec(&packed, X, y1, C(2), &err) == SPQR_OK);
            CHECK(spqri_linear_matvec(&dense, X, y2, C(2), &err) == SPQR_OK);
            for (int32_t i = 0; i < rows; i++) ref[i] = y2[i];
            CHECK_MSG(rel_err(y1, ref, (size_t)rows) < 1e-5, "packed matvec differs: %g", rel_err(y1, ref, (size_t)rows));
            CHECK(spqri_linear_matmul(&packed, X, n, y1, C(2), &err) == SPQR_OK);
            CHECK(spqri_linear_matmul(&dense, X, n, y2, C(2), &err) == SPQR_OK);
            for (int32_t i = 0; i < n * rows; i++) ref[i] = y2[i];
            CHECK_MSG(rel_err(y1, ref, (size_t)n * rows) < 1e-5, "packed matmul differs");
            CHECK(spqri_linear_bytes(&packed) < (uint64_t)rows * cols * 2); /* smaller than fp16 */
            /* fast packed linears of one input in one call: the bits of one call each */
            spqr_ktensor *kt = NULL;
            CHECK(spqr_ktensor_from_tensor(t, SPQR_KERNEL_AUTO, &kt, &err) == SPQR_OK);
            spqr_linear fast = packed;
            fast.fast = kt;
            float z1[40], z2[40], z3[40];
            const spqr_linear *pl[3] = {&fast, &fast, &dense};
            float *const pz[3] = {z1, z2, z3};
            for (int k2 = 2; k2 <= 3; k2++) { /* all fast, then mixed kinds (one after the other) */
                CHECK(spqri_linear_matmul_multi(pl, k2, X, 1, pz, C(2), &err) == SPQR_OK);
                CHECK(spqri_linear_matvec(&fast, X, y1, C(2), &err) == SPQR_OK);
                CHECK(memcmp(z1, y1, rows * 4) == 0 && memcmp(z2, y1, rows * 4) == 0);
            }
            CHECK(spqri_linear_matvec(&dense, X, y2, C(2), &err) == SPQR_OK && memcmp(z3, y2, rows * 4) == 0);
            /* batches too (one parallel region; 70 inputs = two chunks): the bits of spqri_linear_matmul each */
            for (int nb = 5; nb <= 70; nb += 65)
                for (int nt = 1; nt <= 3; nt += 2) {
                    float *b1 = malloc((size_t)nb * rows * 4), *b2 = malloc((size_t)nb * rows * 4);
                    float *b3 = malloc((size_t)nb * rows * 4);
                    float *const pb[2] = {b1, b2};
                    CHECK(spqri_linear_matmul_multi(pl, 2, X, nb, pb, C(nt), &err) == SPQR_OK);
                    CHECK(spqri_linear_matmul(&fast, X, nb, b3, C(nt), &err) == SPQR_OK);
                    CHECK_MSG(memcmp(b1, b3, (size_t)nb * rows * 4) == 0 && memcmp(b2, b3, (size_t)nb * rows * 4) == 0,
                              "packed multi batch n %d threads %d differs", nb, nt);
                    free(b1); free(b2); free(b3);
                }
            spqr_ktensor_free(kt);
            spqr_tensor_free(t);
        }
        free(W); free(H); free(Wd); free(X);
    }
    /* dense linears of one input in one call (q, k, v): the bits of one
     * spqri_linear_matvec each, any thread count; batches as spqri_linear_matmul */
    {
        const int32_t rows[3] = {48, 16, 300}, cols = 520, n = 6;
        mat ms[3];
        float *x = malloc((size_t)n * cols * 4), *ya[3], *yb[3];
        for (int i = 0; i < 3; i++) {
            ms[i] = make(SPQR_LINEAR_F16, rows[i], cols, &r);
            ya[i] = malloc((size_t)n * rows[i] * 4);
            yb[i] = malloc((size_t)n * rows[i] * 4);
        }
        for (int32_t i = 0; i < n * cols; i++) x[i] = test_rng_normal(&r);
        const spqr_linear *ls[3] = {&ms[0].lin, &ms[1].lin, &ms[2].lin};
        for (int nb = 1; nb <= n; nb += n - 1)
            for (int nt = 1; nt <= 3; nt++) {
                CHECK(spqri_linear_matmul_multi(ls, 3, x, nb, ya, C(nt), &err) == SPQR_OK);
                for (int i = 0; i < 3; i++) {
                    CHECK(spqri_linear_matmul(ls[i], x, nb, yb[i], C(nt), &err) == SPQR_OK);
                    CHECK_MSG(memcmp(ya[i], yb[i], (size_t)nb * rows[i] * 4) == 0, "multi n %d threads %d linear %d differs",
                              nb, nt, i);
                }
            }
        CHECK(spqri_linear_matmul_multi(ls, 0, x, 1, ya, C(1), &err) == SPQR_ERR_INVALID_ARG);
        CHECK(spqri_linear_matmul_multi(ls, 17, x, 1, ya, C(1), &err) == SPQR_ERR_INVALID_ARG);
        float *const yn[2] = {ya[0], NULL};
        CHECK(spqri_linear_matmul_multi(ls, 2, x, 1, yn, C(1), &err) == SPQR_ERR_INVALID_ARG);
        for (int i = 0; i < 3; i++) {
            free(ms[i].wf);
            free(ms[i].store);
            free(ya[i]);
            free(yb[i]);
        }
        free(x);
    }
    /* bad arguments */
    {
        spqr_linear bad = {.kind = SPQR_LINEAR_F16, .rows = 0, .cols = 4};
        float x[4] = {0}, y[4];
        CHECK(spqri_linear_matvec(&bad, x, y, C(1), &err) == SPQR_ERR_INVALID_ARG);
        bad.rows = 4;
        CHECK(spqri_linear_matmul(&bad, x, 1, y, C(1), &err) == SPQR_ERR_INVALID_ARG); /* no data */
        CHECK(spqri_linear_matvec(&bad, x, y, NULL, &err) == SPQR_ERR_INVALID_ARG);
    }
    /* the dense settings from the environment: unknown names and ISAs this CPU lacks are
     * refused at init, with the variable named; auto and the defaults pass */
    {
        static const struct {
            const char *var, *val;
            spqr_status want;
        } env_cases[] = {{"SPQR_DENSE_ISA", "avx3", SPQR_ERR_INVALID_ARG}, {"SPQR_DENSE_ISA", "AVX2", SPQR_ERR_INVALID_ARG},
                         {"SPQR_DENSE_ISA", "auto", SPQR_OK},                {"SPQR_DENSE_ISA", "scalar", SPQR_OK},
                         {"SPQR_DENSE_GEMM", "blas", SPQR_OK},               {"SPQR_DENSE_GEMM", "own", SPQR_OK},
                         {"SPQR_DENSE_GEMM", "openblas", SPQR_ERR_INVALID_ARG}};
        for (size_t i = 0; i < sizeof env_cases / sizeof env_cases[0]; i++) {
            setenv(env_cases[i].var, env_cases[i].val, 1);
            linear_ctx e;
            err.msg[0] = 0;
            const spqr_status st = spqri_linear_ctx_init(&e, 1, 64, &err);
            CHECK_MSG(st == env_cases[i].want, "%s=%s: status %d", env_cases[i].var, env_cases[i].val, (int)st);
            if (st) CHECK_MSG(strstr(err.msg, env_cases[i].var) != NULL, "message names the variable: %s", err.msg);
            else CHECK(e.isa == (strcmp(env_cases[i].val, "scalar") ? best : SPQR_ISA_SCALAR) &&
                       e.gemm_blas == !strcmp(env_cases[i].val, "blas"));
            spqri_linear_ctx_free(&e);
            unsetenv(env_cases[i].var);
        }
        /* an ISA this CPU lacks: NEON on x86, AVX-512 elsewhere */
        const char *absent = spqri_linear_isa_available(SPQR_ISA_NEON) ? "avx512" : "neon";
        setenv("SPQR_DENSE_ISA", absent, 1);
        linear_ctx e;
        CHECK(spqri_linear_ctx_init(&e, 1, 64, &err) == SPQR_ERR_UNSUPPORTED);
        spqri_linear_ctx_free(&e);
        unsetenv("SPQR_DENSE_ISA");
        /* a context that skipped init is refused, not run with an unset ISA */
        linear_ctx z;
        memset(&z, 0, sizeof z);
        z.n_threads = 1;
        mat m = make(SPQR_LINEAR_F16, 8, 16, &r);
        float x[16] = {0}, y[8];
        CHECK(spqri_linear_matvec(&m.lin, x, y, &z, &err) == SPQR_ERR_INVALID_ARG);
        free(m.wf); free(m.store);
    }
    /* the fp16 KV cache's kernels on every path the CPU runs: narrow_f16 gives
     * spqr_fp32_to_fp16's bits (random values over the whole fp16 range,
     * halfway cases, overflow, subnormals, zeros, inf, NaN) at every tail
     * length; rows_axpy (fp32 and fp16 rows) matches a double sum over every
     * column-block shape within fp32 rounding */
    {
        const spqr_dense_ops *tabs[] = {&spqri_dense_ops_scalar, &spqri_dense_ops_avx2, &spqri_dense_ops_avx512,
                                        &spqri_dense_ops_neon};
        const spqr_cpu cpu = spqr_cpu_detect();
        enum { NV = 1000 };
        float *v = malloc(NV * sizeof *v);
        uint16_t *h = malloc((NV + 1) * sizeof *h);
        const float special[] = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, -65520.0f, 1e30f, INFINITY, -INFINITY,
                                 NAN, -NAN, 0x1p-24f, 0x1p-25f, 0x1.8p-24f, 0x1p-26f, 0x1.ffcp-15f, 0x1p-14f,
                                 1.0f + 0x1p-11f, 1.0f + 0x1.8p-11f, 1.0f + 0x1p-12f, 2049.0f, 2051.0f, -3.5e-6f};
        const size_t ns = sizeof special / sizeof special[0];
        for (int i = 0; i < NV; i++) {
            const float e = (float)(int)(test_rng_uniform(&r) * 44.0f) - 28.0f; /* 2^-28 .. 2^15 */
            v[i] = i < (int)ns ? special[i] : test_rng_normal(&r) * ldexpf(1.0f, (int)e);
        }
        const unsigned char qnan_bits[4] = {0x01, 0x00, 0x80, 0x7f}; /* a signalling NaN with payload 1 */
        memcpy(&v[ns], qnan_bits, 4);
        int tried = 0;
        for (size_t ti = 0; ti < sizeof tabs / sizeof tabs[0]; ti++) {
            const spqr_dense_ops *o = tabs[ti];
            if (!o->supported(&cpu)) continue;
            tried++;
            const size_t lens[] = {0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 33, NV};
            for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
                for (size_t off = 0; off < 2 && off + lens[li] <= NV; off++) {
                    memset(h, 0xab, (NV + 1) * sizeof *h);
                    o->narrow_f16(v + off, h, lens[li]);
                    size_t bad = 0;
                    for (size_t i = 0; i < lens[li]; i++) bad += h[i] != spqr_fp32_to_fp16(v[off + i]);
                    CHECK_MSG(bad == 0 && h[lens[li]] == 0xabab, "%s narrow_f16 n=%zu: %zu wrong", o->name, lens[li],
                              bad);
                }
            }
            const int32_t hds[] = {1, 7, 8, 31, 32, 40, 64, 100, 128, 256}, ns_[] = {1, 2, 3, 64, 65};
            for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++)
                for (size_t ni = 0; ni < sizeof ns_ / sizeof ns_[0]; ni++)
                    for (int kind = 0; kind < 2; kind++) {
                        const int32_t hd = hds[hi], n = ns_[ni];
                        float *a = malloc((size_t)n * 4), *vf = malloc((size_t)n * hd * 4), *out = malloc((size_t)hd * 4);
                        uint16_t *vh = malloc((size_t)n * hd * 2);
                        for (int32_t i = 0; i < n; i++) a[i] = test_rng_uniform(&r);
                        for (int32_t i = 0; i < n * hd; i++) {
                            vh[i] = spqr_fp32_to_fp16(test_rng_normal(&r));
                            vf[i] = spqr_fp16_to_fp32(vh[i]);
                        }
                        double worst = 0;
                        for (int32_t j = 0; j < hd; j++) out[j] = (float)j * 0.25f - 3.0f;
                        o->rows_axpy[kind](a, kind ? (const void *)vh : (const void *)vf, n, hd, out);
                        for (int32_t j = 0; j < hd; j++) {
                            double ref = (double)j * 0.25 - 3.0, mag = fabs(ref);
                            for (int32_t i = 0; i < n; i++) {
                                ref += (double)a[i] * vf[(size_t)i * hd + j];
                                mag += fabs((double)a[i] * vf[(size_t)i * hd + j]);
                            }
                            const double e = fabs(out[j] - ref) / (mag * (n + 1) * 0x1p-23);
                            worst = e > worst ? e : worst;
                        }
                        CHECK_MSG(worst <= 1.0, "%s rows_axpy[%d] n=%d hd=%d: error %.3g of the fp32 bound", o->name,
                                  kind, n, hd, worst);
                        free(a), free(vf), free(out), free(vh);
                    }
        }
        CHECK(tried >= 2 || !spqri_linear_isa_available(SPQR_ISA_AVX2));
        free(v);
        free(h);
    }
    /* dot4_f16 (four rows sharing x) gives each row exactly dot[1]'s bits, on every path
     * that has one, at every tail length and at the long rows it serves; and a long-row
     * linear (>= 6144 inputs: the four-row blocks plus a 1-row remainder) through each ISA
     * against the reference */
    {
        const spqr_dense_ops *tabs[] = {&spqri_dense_ops_scalar, &spqri_dense_ops_avx2, &spqri_dense_ops_avx512,
                                        &spqri_dense_ops_neon};
        const spqr_cpu cpu = spqr_cpu_detect();
        const int32_t lens[] = {1, 7, 8, 9, 31, 32, 33, 63, 100, 6144 + 13, 11008};
        int tried = 0;
        for (size_t ti = 0; ti < sizeof tabs / sizeof tabs[0]; ti++) {
            const spqr_dense_ops *o = tabs[ti];
            if (!o->supported(&cpu) || !o->dot4_f16) continue;
            tried++;
            for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
                const int32_t len = lens[li];
                const size_t stride = (size_t)len + 5;
                mat m = make(SPQR_LINEAR_F16, 4, (int32_t)stride, &r);
                float *x = malloc((size_t)len * 4), four[4], one;
                for (int32_t j = 0; j < len; j++) x[j] = test_rng_normal(&r);
                o->dot4_f16((const uint16_t *)m.store, stride, x, len, four);
                for (int k = 0; k < 4; k++) {
                    one = o->dot[SPQR_LINEAR_F16]((const uint16_t *)m.store + (size_t)k * stride, x, len);
                    CHECK_MSG(memcmp(&one, &four[k], 4) == 0, "%s dot4 row %d of %d: %.9g vs dot %.9g", o->name, k, len,
                              four[k], one);
                }
                free(x); free(m.wf); free(m.store);
            }
        }
        CHECK(tried >= 1 || !spqri_linear_isa_available(SPQR_ISA_AVX2));
        const int32_t rows = 9, cols = 6151;
        mat m = make(SPQR_LINEAR_F16, rows, cols, &r);
        float *x = malloc((size_t)cols * 4), y[9];
        double ref[9];
        for (int32_t j = 0; j < cols; j++) x[j] = test_rng_normal(&r);
        for (int32_t i = 0; i < rows; i++) {
            double acc = 0;
            for (int32_t j = 0; j < cols; j++) acc += (double)m.wf[(size_t)i * cols + j] * x[j];
            ref[i] = acc;
        }
        for (int isa = SPQR_ISA_SCALAR; isa <= SPQR_ISA_NEON; isa++) {
            if (!spqri_linear_isa_available((spqr_isa)isa)) continue;
            memset(y, 0xff, sizeof y);
            CHECK(spqri_linear_matvec_isa(&m.lin, x, y, C(2), (spqr_isa)isa, &err) == SPQR_OK);
            const double e = rel_err(y, ref, (size_t)rows);
            CHECK_MSG(e < 1e-5, "long rows, isa %s: rel err %g", spqri_linear_isa_name((spqr_isa)isa), e);
        }
        free(x); free(m.wf); free(m.store);
    }
    /* scratch: what spqri_linear_scratch_size asks for is enough, one byte less is refused */
    {
        mat m = make(SPQR_LINEAR_F16, 300, 72, &r);
        const int32_t n = 19;
        float *x = calloc((size_t)n * 72, 4), *y = malloc((size_t)n * 300 * 4);
        const spqr_linear *one = &m.lin;
        const size_t need = spqri_linear_scratch_size(&one, 1, n, 2);
        CHECK(need >= (size_t)300 * 72 * 4 / 2 && spqri_linear_scratch_size(&one, 1, 1, 2) == 0);
        linear_ctx c = *C(2);
        c.scratch_bytes = need;
        CHECK(spqri_linear_matmul(&m.lin, x, n, y, &c, &err) == SPQR_OK);
        c.scratch_bytes = need - 1;
        CHECK(spqri_linear_matmul(&m.lin, x, n, y, &c, &err) == SPQR_ERR_INVALID_ARG);
        free(x); free(y); free(m.wf); free(m.store);
    }
    for (int i = 0; i < 8; i++) spqri_linear_ctx_free(&ctx[i]);
    TEST_SUMMARY();
}
