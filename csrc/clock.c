/* The default clocks: the system's monotonic clock, precise or coarse, in seconds. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* CLOCK_MONOTONIC_COARSE */
#endif

#include "clock.h"

#include <time.h>

static double read_clock(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return -1.0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double sessid_clock_now(void)
{
    return read_clock(CLOCK_MONOTONIC);
}

double sessid_clock_coarse(void)
{
    return read_clock(CLOCK_MONOTONIC_COARSE);
}

sessid_clock_fn sessid_clock_for(double resolution)
{
    struct timespec res;
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0 && sessid_clock_coarse() >= 0
        && (double)res.tv_sec + (double)res.tv_nsec * 1e-9 <= resolution)
        return sessid_clock_coarse;
    return sessid_clock_now;
}
