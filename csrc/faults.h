/* Fault injection for tests (faults.c): a process, or a thread, that dies at a chosen point of a
 * table's mutations, and allocations of slot arrays that fail on demand. Only builds with
 * SESSID_FAULT_INJECTION (the C tests, the fuzzer, SESSID_DEBUG=1 builds of the extension) have
 * them; in every other build the points below are empty inlines and nothing else here exists. Not
 * part of the core's contract: the library itself never arms a fault. */
#ifndef SESSID_FAULTS_H
#define SESSID_FAULTS_H

#ifdef SESSID_FAULT_INJECTION
/* Kills this process (SIGKILL) at the steps-th step of the table's mutations from now on; 0 turns
 * it off. For tests of what a process killed inside a shared table leaves behind. */
void sessid_table_kill_after(long steps);

/* The same, but only the calling thread ends (pthread_exit), as if it died: a robust lock it holds
 * is then left owner-dead for the next taker. For shared tables only: a private table's lock would
 * stay held for ever. */
void sessid_table_end_thread_after(long steps);

/* Makes the next `count` allocations of slot arrays, by any table of this process, fail as if the
 * memory had run out; 0 turns it off. */
void sessid_table_fail_allocations(long count);

/* One step of a mutation of a table: kills the process (or ends the thread) when it is the step a
 * test asked for with sessid_table_kill_after or sessid_table_end_thread_after. */
void sessid_fault_point(void);

/* 1 when a test has the next allocation of slots fail (sessid_table_fail_allocations). */
int sessid_table_allocation_fails(void);

#define may_die_here() sessid_fault_point()
#define allocation_fails() sessid_table_allocation_fails()
#else
/* One step of a mutation of a table, between two stores: where a test may have the process die. */
static inline void may_die_here(void)
{
}

/* 1 when a test has the next allocation of slots fail. */
static inline int allocation_fails(void)
{
    return 0;
}
#endif

#endif
