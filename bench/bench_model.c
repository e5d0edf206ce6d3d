/* Prompt and decode speed of a model directory next to the machine's
 * memory bandwidth. Decode reads every weight once per token, so
 *   bound (tokens/s) = read bandwidth / bytes of weights streamed per token
 * and the ratio decode/bound says how close the matvec is to memory speed.
 *
 * usage: bench_model MODEL_DIR [-t THREADS] [-p PROMPT_TOKENS] [-n DECODE_TOKENS] [--bw-mb MB] */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model/model.h"
#include "spqr.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Multi-threaded streaming read (sum of floats) over a buffer; best of 5. */
static double read_bandwidth(size_t bytes, int threads) {
    size_t n = bytes / sizeof(float);
    float *a = malloc(n * sizeof(float));
    if (!a) return 0;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = (float)(i & 7);
    double best = 0, sink = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now(), total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
        {
            /* each thread streams its contiguous slice with vector loads */
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
            size_t lo = n / nt * t, hi = t == nt - 1 ? n : n / nt * (t + 1);
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (size_t i = lo; i < hi; i++) acc += a[i];
            total += acc;
        }
        double dt = now() - t0;
        sink += total;
        if (bytes / dt > best) best = bytes / dt;
    }
    free(a);
    return sink < 0 ? 0 : best;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_model MODEL_DIR [-t THREADS] [-p PROMPT_TOKENS] [-n DECODE_TOKENS] [--bw-mb MB]\n");
        return 2;
    }
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN), P = 128, N = 32, bw_mb = 1024;
    for (int i = 2; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "-t")) threads = v;
        else if (!strcmp(argv[i], "-p")) P = v;
        else if (!strcmp(argv[i], "-n")) N = v;
        else if (!strcmp(argv[i], "--bw-mb")) bw_mb = v;
        else { fprintf(stderr, "bench_model: unknown option %s\n", argv[i]); return 2; }
    }
    extern void openblas_set_num_threads(int);
    openblas_set_num_threads(1);
    spqr_err err = {0};
    spqr_model *m = NULL;
    double t0 = now();
    if (spqr_model_load_hf(argv[1], NULL, &m, &err)) { fprintf(stderr, "bench_model: %s\n", err.msg); return 1; }
    const spqr_config *c = spqr_model_config(m);
    if (P + N > c->max_position_embeddings) P = c->max_position_embeddings - N;
    if (P < 1) { fprintf(stderr, "bench_model: context too small\n"); return 1; }
    uint64_t wbytes = linear_bytes(&m->lm_head);
    for (int32_t l = 0; l < c->n_layers; l++) {
        const spqr_layer *L = &m->layers[l];
        wbytes += linear_bytes(&L->wq) + linear_bytes(&L->wk) + linear_bytes(&L->wv) + linear_bytes(&L->wo) +
                  linear_bytes(&L->w_gate) + linear_bytes(&L->w_up) + linear_bytes(&L->w_down);
    }
    printf("model %s: %d layers, hidden %d, vocab %d; weights streamed per token %.3f GB; load %.2f s; %s\n", argv[1],
           c->n_layers, c->hidden_size, c->vocab_size, wbytes / 1e9, now() - t0, linear_isa_name(linear_isa_best()));

    spqr_session *s = NULL;
    if (spqr_session_create(m, P + N, threads, &s, &err)) { fprintf(stderr, "bench_model: %s\n", err.msg); return 1; }
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(P + N));
    uint64_t r = 12345;
    for (int i = 0; i < P + N; i++) { r = r * 6364136223846793005ULL + 1; tok[i] = (int32_t)((r >> 33) % (uint64_t)c->vocab_size); }
    float *logits = malloc(sizeof(float) * (size_t)c->vocab_size);
    /* warm the page cache / mapping with one decode token, then reset */
    spqr_session_forward(s, tok, 1, 0, logits, &err);
    spqr_session_reset(s);
    t0 = now();
    if (spqr_session_forward(s, tok, P, 0, logits, &err)) { fprintf(stderr, "bench_model: %s\n", err.msg); return 1; }
    double tp = now() - t0;
    t0 = now();
    for (int i = 0; i < N; i++)
        if (spqr_session_forward(s, tok + P + i, 1, 0, logits, &err)) { fprintf(stderr, "bench_model: %s\n", err.msg); return 1; }
    double td = now() - t0;
    double bw = read_bandwidth((size_t)bw_mb << 20, threads);
    double dec = N / td, bound = bw / (double)wbytes;
    printf("threads %d: prompt %d tokens %.1f tokens/s; decode %d tokens %.2f tokens/s (%.1f ms/token)\n", threads, P,
           P / tp, N, dec, 1e3 * td / N);
    printf("read bandwidth %.2f GB/s -> bound %.2f tokens/s; decode = %.0f%% of bound (effective %.2f GB/s)\n",
           bw / 1e9, bound, 100.0 * dec / bound, dec * wbytes / 1e9);
    spqr_session_free(s);
    spqr_model_free(m);
    free(tok);
    free(logits);
    return 0;
}
