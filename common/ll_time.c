/* ll_time — see ll_time.h. */
#include "common/ll_time.h"

#include <time.h>

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ll_monotonic_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

int64_t ll_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t ll_ms_until(int64_t deadline_ms)
{
    int64_t left = deadline_ms - ll_monotonic_ms();
    return left > 0 ? left : 0;
}
