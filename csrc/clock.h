/* The default clock of sessid: seconds of the system's monotonic clock, as a double. */
#ifndef SESSID_CLOCK_H
#define SESSID_CLOCK_H

/* Seconds since an arbitrary fixed point; never goes backwards, unaffected by wall-clock changes.
 * Returns a negative value only if the system has no monotonic clock. */
double sessid_clock_now(void);

#endif
