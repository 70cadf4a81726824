/* The store's clock: the C core's monotonic clock, or a Python callable given as clock=. */
#ifndef SESSIDPY_CLOCK_H
#define SESSIDPY_CLOCK_H

#include "_state.h"

typedef struct sessidpy_clock {
    PyObject *callable;         /* strong, or NULL: read monotonic */
    sessid_clock_fn monotonic;  /* the coarse clock when its ticks are under ttl / 1000 */
} sessidpy_clock;

/* Reads the clock into *now (seconds). A callable must return a finite int or float: TypeError or
 * ValueError otherwise, and its own exception when it raises. */
int sessidpy_clock_read(const sessidpy_clock *clock, double *now);

#endif
