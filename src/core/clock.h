/* The one monotonic clock read (seconds) for timings and progress. */
#ifndef SPQR_CORE_CLOCK_H
#define SPQR_CORE_CLOCK_H

double spqr_now_s(void);

#endif
