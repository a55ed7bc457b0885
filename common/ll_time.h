/* ll_time — monotonic and wall clocks in milliseconds, and deadlines. */
#ifndef LL_TIME_H
#define LL_TIME_H

#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC: for deadlines and durations, never stored. */
int64_t ll_monotonic_ms(void);

/* Milliseconds since the Unix epoch on CLOCK_REALTIME: for timestamps that are stored. */
int64_t ll_wall_ms(void);

/* Milliseconds left until deadline_ms (monotonic); 0 when it has passed. */
int64_t ll_ms_until(int64_t deadline_ms);

#endif
