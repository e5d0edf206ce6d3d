#include "cli/bench_util.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli_util.h"
#include "core/clock.h"

uint64_t bench_llc_bytes(void) {
    FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
    uint64_t v = 0;
    if (f) {
        char buf[64] = {0}, *end = NULL;
        if (fgets(buf, sizeof buf, f)) {
            v = strtoull(buf, &end, 10);
            if (end && (*end == 'K' || *end == 'k')) v <<= 10;
            else if (end && (*end == 'M' || *end == 'm')) v <<= 20;
        }
        fclose(f);
    }
    return v ? v : (32ull << 20);
}

double bench_read_bandwidth(const float *buf, size_t n, int threads, int reps, double *best_cpu) {
    double best = 0;
    volatile float sink = 0;
    *best_cpu = 0;
    for (int rep = 0; rep < reps; rep++) {
        double t0 = cli_now(), c0 = spqri_cpu_s();
        float total = 0;
#pragma omp parallel for num_threads(threads) reduction(+ : total) schedule(static)
        for (size_t blk = 0; blk < n / 4096; blk++) {
            float acc[16] = {0};
            const float *p = buf + blk * 4096;
            for (size_t i = 0; i < 4096; i += 16)
#pragma omp simd
                for (int k = 0; k < 16; k++) acc[k] += p[i + k];
            for (int k = 0; k < 16; k++) total += acc[k];
        }
        double dt = cli_now() - t0, dc = (spqri_cpu_s() - c0) / threads;
        sink += total;
        double gbps = (double)(n / 4096 * 4096) * 4 / dt / 1e9, cg = (double)(n / 4096 * 4096) * 4 / dc / 1e9;
        if (gbps > best) best = gbps;
        if (cg > *best_cpu) *best_cpu = cg;
    }
    (void)sink;
    return best;
}

float *bench_probe_buffer(size_t *n) {
    *n = (size_t)(8 * bench_llc_bytes() / 4);
    float *buf = malloc(*n * sizeof *buf);
    if (buf)
        for (size_t i = 0; i < *n; i++) buf[i] = (float)(i & 7);
    return buf;
}

double bench_measure_bandwidth(int threads, int reps, double *best_cpu, size_t *buf_bytes) {
    size_t n;
    float *buf = bench_probe_buffer(&n);
    *best_cpu = 0;
    if (buf_bytes) *buf_bytes = n * sizeof *buf;
    if (!buf) return 0;
    const double bw = bench_read_bandwidth(buf, n, threads, reps, best_cpu);
    free(buf);
    return bw;
}
