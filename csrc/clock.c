/* The default clocks: the host's monotonic clock, precise or coarse, in seconds; in another time
 * namespace, its own clock less that namespace's offset, so that every process of the host that
 * shares a table reads one clock. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* CLOCK_MONOTONIC_COARSE */
#endif

#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "status.h"

/* ---- the time namespace's offset ---- */

static _Atomic double offset_seconds;
static atomic_int offset_state;         /* 0: not read yet; 1: read; else the status of the read */
static pthread_once_t fork_handler_once = PTHREAD_ONCE_INIT;

/* A child may be in a time namespace its parent made after it read the offset. */
static void forget_offset(void)
{
    atomic_store(&offset_state, 0);
}

static void install_fork_handler(void)
{
    (void)pthread_atfork(NULL, NULL, forget_offset);
}

/* Reads "monotonic SECONDS NANOSECONDS" from /proc/self/timens_offsets. */
static int read_offset(double *seconds)
{
    *seconds = 0;
    int fd = open("/proc/self/timens_offsets", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? SESSID_OK : SESSID_ECLOCK;   /* no such file: no time namespaces */
    char text[256];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return SESSID_ECLOCK;
    text[n] = '\0';
    for (char *line = text; line != NULL && *line != '\0';) {
        long long sec;
        long nsec;
        if (sscanf(line, "monotonic %lld %ld", &sec, &nsec) == 2 && nsec > -1000000000L
            && nsec < 1000000000L) {
            *seconds = (double)sec + (double)nsec * 1e-9;
            return SESSID_OK;
        }
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return SESSID_ECLOCK;
}

int sessid_clock_host_offset(double *seconds)
{
    int state = atomic_load(&offset_state);
    if (state == 0) {                   /* once per process, not on every read of the clock */
        pthread_once(&fork_handler_once, install_fork_handler);
        double read;
        int rc = read_offset(&read);
        atomic_store(&offset_seconds, rc == SESSID_OK ? read : 0);
        state = rc == SESSID_OK ? 1 : rc;
        atomic_store(&offset_state, state);
    }
    *seconds = atomic_load_explicit(&offset_seconds, memory_order_relaxed);
    return state == 1 ? SESSID_OK : state;
}

/* ---- the clocks ---- */

/* The offset at a process's first read of the clock (and its first after a fork): out of line, so
 * that the reads after it pay for no frame. An offset it cannot read counts as none. */
__attribute__((noinline, cold))
static double first_offset(void)
{
    double offset;
    (void)sessid_clock_host_offset(&offset);
    return offset;
}

static double read_clock(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return -1.0;
    double offset = atomic_load_explicit(&offset_state, memory_order_acquire) == 1
                        ? atomic_load_explicit(&offset_seconds, memory_order_relaxed)
                        : first_offset();
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 - offset;
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
