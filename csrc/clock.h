/* The default clocks of sessid: seconds of the host's monotonic clock, as a double. A process in
 * another time namespace (Linux 5.6 and later: unshare -T) reads its own clock less its offset to
 * the host's, so that every process of the host reads the same clock. */
#ifndef SESSID_CLOCK_H
#define SESSID_CLOCK_H

typedef double (*sessid_clock_fn)(void);

/* Seconds since an arbitrary fixed point (CLOCK_MONOTONIC, as the host reads it); never goes
 * backwards, unaffected by wall-clock changes. Returns a negative value only if the system has no
 * monotonic clock. */
double sessid_clock_now(void);

/* The same clock as of the last timer tick (CLOCK_MONOTONIC_COARSE): a few milliseconds behind at
 * most, and several times cheaper to read. Negative if the system does not offer it. */
double sessid_clock_coarse(void);

/* The cheaper of the two clocks whose resolution is at most `resolution` seconds. */
sessid_clock_fn sessid_clock_for(double resolution);

/* The offset of this process's time namespace's monotonic clock to the host's, in seconds, as
 * /proc/self/timens_offsets gives it (0 where the file is absent: a kernel without time
 * namespaces). Read once per process (again after fork). Returns 0, or SESSID_ECLOCK when the file
 * is there but cannot be read (then *seconds is 0, and the clocks above read the namespace's own). */
int sessid_clock_host_offset(double *seconds);

#endif
