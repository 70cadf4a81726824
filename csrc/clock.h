/* The default clocks of sessid: seconds of the system's monotonic clock, as a double. */
#ifndef SESSID_CLOCK_H
#define SESSID_CLOCK_H

typedef double (*sessid_clock_fn)(void);

/* Seconds since an arbitrary fixed point (CLOCK_MONOTONIC); never goes backwards, unaffected by
 * wall-clock changes. Returns a negative value only if the system has no monotonic clock. */
double sessid_clock_now(void);

/* The same clock as of the last timer tick (CLOCK_MONOTONIC_COARSE): a few milliseconds behind at
 * most, and several times cheaper to read. Negative if the system does not offer it. */
double sessid_clock_coarse(void);

/* The cheaper of the two clocks whose resolution is at most `resolution` seconds. */
sessid_clock_fn sessid_clock_for(double resolution);

#endif
