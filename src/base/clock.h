/* The one monotonic clock of the library (seconds, for timings and ETAs). */
#ifndef LD_BASE_CLOCK_H
#define LD_BASE_CLOCK_H

double ld_now_seconds(void);

#endif
