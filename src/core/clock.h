/* The one monotonic clock read (seconds) for timings and progress. */
#ifndef SPQR_CORE_CLOCK_H
#define SPQR_CORE_CLOCK_H

double spqr_now_s(void);
/* CPU seconds of the whole process (all threads): with other jobs on the
 * cores, wall time alone overstates a computation's cost. */
double spqri_cpu_s(void);

#endif
