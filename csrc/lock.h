/* Locks for the table: a private one for a table in one process, and a robust one for a table that
 * several processes share, behind one small interface.
 *
 * The private lock is a spin-then-nap lock whose release is a plain store (a hit of a large table
 * would otherwise wait for its stores to reach memory). It stays usable in both processes after
 * fork(), even when another thread held it at the moment of the fork: every private lock is taken
 * around fork() and released again on both sides.
 *
 * The shared lock is a process-shared, robust pthread mutex that lives in the shared mapping. When
 * its holder dies holding it, the next taker is told so, repairs what the lock guards, and marks
 * the lock consistent. Shared locks take no part in fork(): a child waits for a holder in its parent
 * like any other process would.
 */
#ifndef SESSID_LOCK_H
#define SESSID_LOCK_H

#include <pthread.h>
#include <stdatomic.h>

typedef struct sessid_lock {
    atomic_int word;                    /* private: 0 free, 1 held */
    pthread_mutex_t *robust;            /* shared: the mutex in the mapping; NULL for private */
    struct sessid_lock *prev, *next;    /* private: the fork registry */
} sessid_lock;

/* sessid_lock_take returns this when the previous holder died holding the lock: the caller holds
 * it now, must repair what it guards, then call sessid_lock_repaired. */
#define SESSID_LOCK_OWNER_DIED 1

/* Makes lock a private lock. Returns 0, SESSID_ENOMEM (the fork handlers could not be installed)
 * or SESSID_ESTATE. */
int sessid_lock_init_private(sessid_lock *lock);

/* Initializes *mutex (in a shared mapping, not yet seen by any other process) as a process-shared
 * robust mutex. Returns 0 or SESSID_ESTATE. */
int sessid_lock_create_shared(pthread_mutex_t *mutex);

/* Makes lock use the shared mutex made by sessid_lock_create_shared (in any process). */
void sessid_lock_init_shared(sessid_lock *lock, pthread_mutex_t *mutex);

/* Forgets lock (it must not be held): a private lock leaves the fork registry. */
void sessid_lock_destroy(sessid_lock *lock);

/* Takes the lock. Returns 0, or SESSID_LOCK_OWNER_DIED (shared locks only; see above), or
 * SESSID_ESTATE when the shared mutex is beyond use (it was released unrepaired). */
int sessid_lock_take(sessid_lock *lock);

/* After SESSID_LOCK_OWNER_DIED and the repair: marks the shared mutex consistent again. */
void sessid_lock_repaired(sessid_lock *lock);

void sessid_lock_release(sessid_lock *lock);

#endif
