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
 *
 * No taker of a shared lock waits for ever on another process, which may be stopped (SIGSTOP, a
 * debugger, a frozen cgroup) while it holds the lock: a wait lasts at most the lock's timeout.
 * After a wait timed out, best-effort takers stop waiting for a window as long as the timeout: they
 * only try the lock, and once the window has passed one of them at a time waits again (a probe),
 * until a wait succeeds. A caller can have hooks run around a wait that may block (to let its
 * other threads run meanwhile).
 */
#ifndef SESSID_LOCK_H
#define SESSID_LOCK_H

#include <pthread.h>
#include <stdatomic.h>

/* Hooks run around a wait for a shared lock that may block; either may be NULL. begin's result is
 * handed to end. Neither may take the lock. */
typedef struct sessid_lock_hooks {
    void *(*begin)(void);
    void (*end)(void *token);
} sessid_lock_hooks;

typedef struct sessid_lock {
    atomic_int word;                    /* private: 0 free, 1 held */
    pthread_mutex_t *robust;            /* shared: the mutex in the mapping; NULL for private */
    struct sessid_lock *prev, *next;    /* private: the fork registry */
    /* shared: how long a taker waits, and the window after a wait timed out (this process's) */
    double timeout;                     /* seconds; 0: only try */
    sessid_lock_hooks hooks;
    atomic_llong skip_until_ns;         /* best-effort takers only try until then; 0: no window */
    atomic_int probing;                 /* 1 while a best-effort taker waits after a window */
} sessid_lock;

/* How a taker of a shared lock waits for another holder. */
typedef enum sessid_lock_wait {
    SESSID_LOCK_REQUIRED,               /* waits up to the timeout, window or not */
    SESSID_LOCK_BEST_EFFORT             /* during a window, or while another probes, only tries */
} sessid_lock_wait;

/* sessid_lock_take returns this when the previous holder died holding the lock: the caller holds
 * it now, must repair what it guards, then call sessid_lock_repaired. */
#define SESSID_LOCK_OWNER_DIED 1

/* Makes lock a private lock. Returns 0, SESSID_ENOMEM (the fork handlers could not be installed)
 * or SESSID_ESTATE. */
int sessid_lock_init_private(sessid_lock *lock);

/* Initializes *mutex (in a shared mapping, not yet seen by any other process) as a process-shared
 * robust mutex. Returns 0 or SESSID_ESTATE. */
int sessid_lock_create_shared(pthread_mutex_t *mutex);

/* Makes lock use the shared mutex made by sessid_lock_create_shared (in any process), with a wait
 * of 1 second and no hooks. */
void sessid_lock_init_shared(sessid_lock *lock, pthread_mutex_t *mutex);

/* Sets how long a taker of the shared lock waits for another holder (seconds, finite, >= 0), and
 * the hooks run around a wait (hooks may be NULL). Not while other threads take the lock. */
void sessid_lock_set_wait(sessid_lock *lock, double timeout, const sessid_lock_hooks *hooks);

/* Forgets lock (it must not be held): a private lock leaves the fork registry. */
void sessid_lock_destroy(sessid_lock *lock);

/* Takes the lock (`wait` matters only for a shared lock). Returns 0, or SESSID_LOCK_OWNER_DIED
 * (shared locks only; see above) with the lock held, or, with the lock not held:
 *   SESSID_ETIMEDOUT  another process held it for the whole timeout; a window begins;
 *   SESSID_EBUSY      it is held, and this best-effort taker did not wait (a window, or a probe);
 *   SESSID_ELOCK      the shared mutex is beyond use (released unrepaired: never by sessid). */
int sessid_lock_take(sessid_lock *lock, sessid_lock_wait wait);

/* After SESSID_LOCK_OWNER_DIED and the repair: marks the shared mutex consistent again. */
void sessid_lock_repaired(sessid_lock *lock);

void sessid_lock_release(sessid_lock *lock);

#endif
