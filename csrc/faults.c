/* Fault injection for tests: the countdown that kills the process, or ends the thread, at a chosen
 * step of a table's mutations, and allocations of slot arrays that fail on demand. Built only with
 * SESSID_FAULT_INJECTION (see faults.h). */
#include "faults.h"

#ifdef SESSID_FAULT_INJECTION
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

static atomic_long fault_countdown;
static atomic_int fault_ends_thread;

void sessid_table_kill_after(long steps)
{
    atomic_store(&fault_ends_thread, 0);
    atomic_store(&fault_countdown, steps);
}

void sessid_table_end_thread_after(long steps)
{
    atomic_store(&fault_ends_thread, 1);
    atomic_store(&fault_countdown, steps);
}

void sessid_fault_point(void)
{
    if (atomic_load_explicit(&fault_countdown, memory_order_relaxed) > 0
        && atomic_fetch_sub(&fault_countdown, 1) == 1) {
        if (atomic_load(&fault_ends_thread))
            pthread_exit(NULL);
        raise(SIGKILL);
    }
}

static atomic_long failing_allocations;

void sessid_table_fail_allocations(long count)
{
    atomic_store(&failing_allocations, count);
}

int sessid_table_allocation_fails(void)
{
    long left = atomic_load(&failing_allocations);
    while (left > 0 && !atomic_compare_exchange_weak(&failing_allocations, &left, left - 1))
        ;
    return left > 0;
}
#endif
