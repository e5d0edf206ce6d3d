/* Measuring helpers shared by `spqr bench-kernel` and `spqr bench`: the
 * machine's read bandwidth (the yardstick both report against), the
 * last-level cache size, process CPU time. */
#ifndef SPQR_CLI_BENCH_UTIL_H
#define SPQR_CLI_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>


/* Size of the last-level cache from sysfs (32 MiB when unknown). */
uint64_t bench_llc_bytes(void);

/* Multi-threaded streaming read (sum) of buf[n], best of reps rounds, in
 * GB/s of wall time; *best_cpu: the same per CPU time / threads. */
double bench_read_bandwidth(const float *buf, size_t n, int threads, int reps, double *best_cpu);

/* The probe's buffer: 8x the last-level cache of floats, filled; NULL when
 * out of memory. *n gets its length; free() releases it. */
float *bench_probe_buffer(size_t *n);

/* bench_read_bandwidth over a fresh probe buffer; 0 when out of memory.
 * *buf_bytes (may be NULL) gets the buffer size. */
double bench_measure_bandwidth(int threads, int reps, double *best_cpu, size_t *buf_bytes);

#endif
