/* spqr_session_forward allocates nothing once the session exists
 * (session.h's promise): the dense fp16 model (models/default), every family's tiny
 * checkpoint (tests/fixtures/families), and the
 * default model's SpQR copy on every kernel path this CPU runs (exact and int8
 * activations), one token (decode), small batches (dot products) and
 * prompt batches (sgemm tiles, batched kernels), 1 and 2 threads (2: the
 * decode team, forward.c).
 *
 * How: this binary is linked with -Wl,--wrap=malloc,... (CMakeLists.txt),
 * so every call the library's objects (and this file) make to the
 * allocator goes through the counters below. Allocations inside shared
 * libraries (libgomp's team bookkeeping, OpenBLAS's buffer pool) are not
 * seen: they are not ours to size. argv[1] = tests/fixtures. */
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "kernels/spqr_kernel.h"
#include "spqr.h"
#include "test_util.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
void __real_free(void *p);

static atomic_int g_armed;
static atomic_long g_allocs, g_frees;

static void count(atomic_long *c) {
    if (atomic_load(&g_armed)) atomic_fetch_add(c, 1);
}
void *__wrap_malloc(size_t n) { return count(&g_allocs), __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { return count(&g_allocs), __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { return count(&g_allocs), __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t a, size_t n) { return count(&g_allocs), __real_aligned_alloc(a, n); }
int __wrap_posix_memalign(void **p, size_t a, size_t n) { return count(&g_allocs), __real_posix_memalign(p, a, n); }
void __wrap_free(void *p) {
    if (p) count(&g_frees);
    __real_free(p);
}

static void arm(void) {
    atomic_store(&g_allocs, 0);
    atomic_store(&g_frees, 0);
    atomic_store(&g_armed, 1);
}
static void disarm(void) { atomic_store(&g_armed, 0); }

#define PROMPT 40 /* > 8: the batched (sgemm / batched kernel) paths */
#define SMALL 5   /* <= 8: the dense per-row dot products */

/* Prompt, small batch and three decode steps through one session; the
 * counters must stay at zero and the logits must be finite (the forward
 * really ran). out: the prompt's logits [PROMPT][V]. */
static void check_forward_kv(spqr_model *m, const char *label, int nt, spqr_kv_type kv, float *out) {
    const int32_t V = spqr_model_config(m)->vocab_size;
    spqr_session *s = NULL;
    spqr_err err = {0};
    arm();
    CHECK_MSG(spqr_session_create_opts(m, &(spqr_session_opts){128, nt, kv}, &s, &err) == SPQR_OK, "%s: %s", label,
              err.msg);
    disarm();
    CHECK_MSG(atomic_load(&g_allocs) > 0, "%s: the library's allocations are not counted", label);
    if (!s) return;
    int32_t tok[PROMPT];
    for (int i = 0; i < PROMPT; i++) tok[i] = (int32_t)((i * 7919 + 13) % V);
    float *logits = malloc((size_t)PROMPT * V * sizeof(float));
    int ok = 1;
    arm();
    ok &= spqr_session_forward(s, tok, PROMPT, 1, logits, &err) == SPQR_OK;
    disarm();
    memcpy(out, logits, (size_t)PROMPT * V * sizeof(float));
    atomic_store(&g_armed, 1);
    ok &= spqr_session_forward(s, tok, SMALL, 0, logits, &err) == SPQR_OK;
    for (int t = 0; t < 3; t++) ok &= spqr_session_forward(s, tok + t, 1, 0, logits, &err) == SPQR_OK;
    disarm();
    CHECK_MSG(ok, "%s: forward failed: %s", label, err.msg);
    const long a = atomic_load(&g_allocs), f = atomic_load(&g_frees);
    CHECK_MSG(a == 0 && f == 0, "%s, %d thread(s): %ld allocations, %ld frees during forward", label, nt, a, f);
    int finite = 1;
    for (int32_t i = 0; i < V; i++) finite &= isfinite(logits[i]) != 0;
    CHECK_MSG(finite, "%s: non-finite logits", label);
    printf("%-12s %d thread(s), KV %s: %ld allocations during forward\n", label, nt, kv == SPQR_KV_F16 ? "f16" : "f32",
           a);
    free(logits);
    spqr_session_free(s);
}
static void check_forward(spqr_model *m, const char *label, int nt, float *out) {
    check_forward_kv(m, label, nt, SPQR_KV_F32, out);
}

/* 1 when SPQR_KERNEL=name can load here (exact and auto always can). */
static int runs_here(const char *name) {
    for (spqr_kernel_path p = SPQR_KERNEL_SCALAR; p <= SPQR_KERNEL_VNNI_256; p++)
        if (!strcmp(spqr_kernel_path_name(p), name)) return spqri_kt_path_supported(p);
    return 1;
}

int main(int argc, char **argv) {
    const char *fix = argc > 1 ? argv[1] : "tests/fixtures";
    char path[2048], tmp[] = "/tmp/spqr_noalloc_XXXXXX", out[2100];
    spqr_err err = {0};

    /* The counters see this file's calls (and the library's: session
     * creation is counted below), else this test could not fail. */
    arm();
    void *volatile p = malloc(16);
    free(p);
    disarm();
    CHECK(atomic_load(&g_allocs) == 1 && atomic_load(&g_frees) == 1);

    snprintf(path, sizeof path, "%s/../../models/default", fix);
    spqr_model *m = NULL;
    CHECK_MSG(spqr_model_load(path, NULL, &m, &err) == SPQR_OK, "%s: %s", path, err.msg);
    if (!m) TEST_SUMMARY();
    const int32_t V = spqr_model_config(m)->vocab_size;
    float *l1 = malloc((size_t)PROMPT * V * sizeof(float)), *l2 = malloc((size_t)PROMPT * V * sizeof(float));
    /* and the thread count does not change a bit of the prompt's logits */
    check_forward(m, "fp16", 1, l1);
    check_forward(m, "fp16", 2, l2);
    CHECK_MSG(memcmp(l1, l2, (size_t)PROMPT * V * sizeof(float)) == 0, "fp16: 1 and 2 threads differ");

    /* every family's forward (biases, q/k norms, sliding windows, soft-caps,
     * fused-row views): tiny checkpoints of tests/fixtures/families */
    static const char *const families[] = {"llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "gemma2"};
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        char fdir[2100];
        snprintf(fdir, sizeof fdir, "%s/families/%s", fix, families[i]);
        spqr_model *fm = NULL;
        CHECK_MSG(spqr_model_load(fdir, NULL, &fm, &err) == SPQR_OK, "%s: %s", fdir, err.msg);
        if (!fm) continue;
        const int32_t fV = spqr_model_config(fm)->vocab_size;
        float *f1 = malloc((size_t)PROMPT * fV * sizeof(float)), *f2 = malloc((size_t)PROMPT * fV * sizeof(float));
        check_forward(fm, families[i], 1, f1);
        check_forward(fm, families[i], 2, f2);
        CHECK_MSG(memcmp(f1, f2, (size_t)PROMPT * fV * sizeof(float)) == 0, "%s: 1 and 2 threads differ", families[i]);
        check_forward_kv(fm, families[i], 1, SPQR_KV_F16, f1); /* the fp16 cache's conversions allocate nothing */
        check_forward_kv(fm, families[i], 2, SPQR_KV_F16, f2);
        CHECK_MSG(memcmp(f1, f2, (size_t)PROMPT * fV * sizeof(float)) == 0, "%s, KV f16: 1 and 2 threads differ",
                  families[i]);
        free(f1);
        free(f2);
        spqr_model_free(fm);
    }

    /* the packed paths: a small quantization of the same model, LM head and embedding included */
    CHECK(mkdtemp(tmp) != NULL);
    snprintf(out, sizeof out, "%s/m.spqr", tmp);
    const int32_t n_cal = 4096;
    int32_t *cal = malloc(n_cal * sizeof *cal);
    for (int32_t i = 0; i < n_cal; i++) cal[i] = (int32_t)(((int64_t)i * 2654435761u >> 7) % V);
    spqr_quantize_options o;
    spqr_quantize_options_default(&o);
    o.nsamples = 8;
    o.seqlen = 64;
    o.n_threads = 2;
    o.quantize_head = 1;
    o.quantize_embed = 1; /* the row lookup of a quantized embedding runs per token too */
    CHECK_MSG(spqr_model_quantize(m, cal, n_cal, &o, out, NULL, &err) == SPQR_OK, "quantize: %s", err.msg);
    free(cal);
    spqr_model_free(m);

    /* every path this CPU runs, by name as SPQR_KERNEL takes it */
    const char *paths[] = {"scalar", "avx2", "avx2i8", "avxvnni", "vnni256", "avx512", "avx512vnni", "neon", "neondot", "exact", "auto"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        if (!runs_here(paths[i])) continue;
        setenv("SPQR_KERNEL", paths[i], 1);
        spqr_model *q = NULL;
        CHECK_MSG(spqr_model_load(out, NULL, &q, &err) == SPQR_OK, "load %s (%s): %s", out, paths[i], err.msg);
        if (!q) continue;
        char label[64];
        snprintf(label, sizeof label, "spqr %s", paths[i]);
        check_forward(q, label, 1, l1);
        check_forward(q, label, 2, l2);
        CHECK_MSG(memcmp(l1, l2, (size_t)PROMPT * V * sizeof(float)) == 0, "%s: 1 and 2 threads differ", label);
        spqr_model_free(q);
    }
    unsetenv("SPQR_KERNEL");
    free(l1);
    free(l2);
    unlink(out);
    rmdir(tmp);
    TEST_SUMMARY();
}
