#define _POSIX_C_SOURCE 200809L

#include "clock.h"

#include <time.h>

double sessid_clock_now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return -1.0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
