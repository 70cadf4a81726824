/* Locks for the table: the private spin-then-nap lock with its fork registry, and the robust
 * process-shared mutex of a shared table, whose waits are bounded and open a window when they time
 * out. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* syscall() */
#endif
#include "lock.h"

#include <assert.h>
#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "status.h"

/* ---- the private lock ----
 * Held only for O(1) work, except while purging or clearing. Its release is a plain store:
 * a locked instruction there (or even a read of the lock word to see whether anyone waits) would
 * wait for the stores to the list neighbours to reach memory, which costs about a cache miss on
 * every hit of a large table. As the release wakes no one, a waiter spins a little, then naps on a
 * futex for a growing time (20 us, doubling up to 1 ms) and looks again. */

#define SPINS 100
#define FIRST_NAP_NS 20000
#define LONGEST_NAP_NS 1000000

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Waits for the private lock, held when it was first tried. */
__attribute__((noinline))
static void wait_private(atomic_int *word)
{
    long nap_ns = FIRST_NAP_NS;
    int spins = 0;
    while (atomic_exchange_explicit(word, 1, memory_order_acquire) != 0) {
        while (atomic_load_explicit(word, memory_order_relaxed) != 0) {
            if (spins++ < SPINS) {
                cpu_relax();
                continue;
            }
            struct timespec nap = {0, nap_ns};
            syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, 1, &nap, NULL, 0);
            nap_ns = nap_ns * 2 < LONGEST_NAP_NS ? nap_ns * 2 : LONGEST_NAP_NS;
        }
    }
}

static void take_private(atomic_int *word)
{
    if (atomic_exchange_explicit(word, 1, memory_order_acquire) != 0)
        wait_private(word);
}

static void release_private(atomic_int *word)
{
    atomic_store_explicit(word, 0, memory_order_release);
}

/* ---- every private lock, so fork() can take them all ---- */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static sessid_lock *registry_head;
static int atfork_registered;

static void before_fork(void)
{
    pthread_mutex_lock(&registry_lock);
    for (sessid_lock *l = registry_head; l != NULL; l = l->next)
        take_private(&l->word);
}

static void after_fork_in_parent(void)
{
    for (sessid_lock *l = registry_head; l != NULL; l = l->next)
        release_private(&l->word);
    pthread_mutex_unlock(&registry_lock);
}

/* The child has one thread, the one that forked; it holds every lock, so they are fresh again. */
static void after_fork_in_child(void)
{
    for (sessid_lock *l = registry_head; l != NULL; l = l->next)
        release_private(&l->word);
    pthread_mutex_init(&registry_lock, NULL);
}

int sessid_lock_init_private(sessid_lock *l)
{
    atomic_init(&l->word, 0);
    l->robust = NULL;
    if (pthread_mutex_lock(&registry_lock) != 0)
        return SESSID_ESTATE;
    if (!atfork_registered) {
        if (pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child) != 0) {
            pthread_mutex_unlock(&registry_lock);
            return SESSID_ENOMEM;
        }
        atfork_registered = 1;
    }
    l->prev = NULL;
    l->next = registry_head;
    if (registry_head != NULL)
        registry_head->prev = l;
    registry_head = l;
    pthread_mutex_unlock(&registry_lock);
    return SESSID_OK;
}

/* ---- the shared lock ---- */

int sessid_lock_create_shared(pthread_mutex_t *mutex)
{
    pthread_mutexattr_t attr;
    if (pthread_mutexattr_init(&attr) != 0)
        return SESSID_ESTATE;
    int rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) == 0
                     && pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) == 0
                     && pthread_mutex_init(mutex, &attr) == 0
                 ? SESSID_OK
                 : SESSID_ESTATE;
    pthread_mutexattr_destroy(&attr);
    return rc;
}

void sessid_lock_init_shared(sessid_lock *l, pthread_mutex_t *mutex)
{
    atomic_init(&l->word, 0);
    l->robust = mutex;
    l->prev = l->next = NULL;
    l->timeout = 1.0;
    l->hooks.begin = NULL;
    l->hooks.end = NULL;
    atomic_init(&l->skip_until_ns, 0);
    atomic_init(&l->probing, 0);
}

void sessid_lock_set_wait(sessid_lock *l, double timeout, const sessid_lock_hooks *hooks)
{
    l->timeout = timeout > 0 ? timeout : 0;
    l->hooks.begin = hooks != NULL ? hooks->begin : NULL;
    l->hooks.end = hooks != NULL ? hooks->end : NULL;
}

void sessid_lock_destroy(sessid_lock *l)
{
    if (l->robust != NULL)
        return;
    pthread_mutex_lock(&registry_lock);
    if (l->prev != NULL)
        l->prev->next = l->next;
    else
        registry_head = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
    pthread_mutex_unlock(&registry_lock);
}

/* ---- waiting for the shared lock ---- */

#define NS_PER_S 1000000000LL
#define SLICE_NS 10000000LL     /* a wait is made of slices, each against the monotonic deadline */

static long long monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* pthread_mutex_timedlock reads CLOCK_REALTIME, which may jump: each slice waits at most SLICE_NS
 * by it, and the deadline is kept on the monotonic clock. Returns what the mutex said. */
static int wait_for_mutex(pthread_mutex_t *m, long long deadline_ns)
{
    for (;;) {
        long long left = deadline_ns - monotonic_ns();
        if (left <= 0)
            return ETIMEDOUT;
        struct timespec at;
        clock_gettime(CLOCK_REALTIME, &at);
        long long ns = at.tv_nsec + (left < SLICE_NS ? left : SLICE_NS);
        at.tv_sec += (time_t)(ns / NS_PER_S);
        at.tv_nsec = (long)(ns % NS_PER_S);
        int rc = pthread_mutex_timedlock(m, &at);
        if (rc != ETIMEDOUT)
            return rc;
    }
}

static int status_of(int rc)
{
    switch (rc) {
    case 0:
        return SESSID_OK;
    case EOWNERDEAD:
        return SESSID_LOCK_OWNER_DIED;
    case ETIMEDOUT:
        return SESSID_ETIMEDOUT;
    default:
        return SESSID_ELOCK;   /* ENOTRECOVERABLE: released unrepaired, which sessid never does */
    }
}

/* Waits up to the lock's timeout, running the hooks around the wait. */
static int wait_shared(sessid_lock *l)
{
    long long deadline = monotonic_ns() + (long long)(l->timeout * (double)NS_PER_S);
    void *token = l->hooks.begin != NULL ? l->hooks.begin() : NULL;
    int rc = wait_for_mutex(l->robust, deadline);
    if (l->hooks.end != NULL)
        l->hooks.end(token);
    if (rc == ETIMEDOUT) {
        long long window = (long long)(l->timeout * (double)NS_PER_S);
        atomic_store(&l->skip_until_ns, monotonic_ns() + (window > 0 ? window : 1));
    } else if (rc == 0 || rc == EOWNERDEAD) {
        atomic_store(&l->skip_until_ns, 0);
    }
    return status_of(rc);
}

/* Takes the mutex if no one holds it. Not pthread_mutex_trylock: on a robust mutex beyond repair,
 * glibc's answers ENOTRECOVERABLE once but leaves the mutex held, so that every later taker, in
 * every process, would wait for it; a timed lock whose deadline has passed answers the same for a
 * free, held, or dead holder's mutex, and releases one beyond repair. */
static int try_mutex(pthread_mutex_t *m)
{
    static const struct timespec past = {0, 0};
    int rc = pthread_mutex_timedlock(m, &past);
    return rc == ETIMEDOUT ? EBUSY : rc;
}

/* Taking a shared lock after the first try: rc is what that try said. */
__attribute__((noinline))
static int take_shared(sessid_lock *l, sessid_lock_wait wait, int rc)
{
    if (rc != EBUSY) {
        if ((rc == 0 || rc == EOWNERDEAD)
            && atomic_load_explicit(&l->skip_until_ns, memory_order_relaxed) != 0)
            atomic_store_explicit(&l->skip_until_ns, 0, memory_order_relaxed);
        return status_of(rc);
    }
    if (l->timeout <= 0)
        return wait == SESSID_LOCK_REQUIRED ? SESSID_ETIMEDOUT : SESSID_EBUSY;
    long long skip_until = atomic_load_explicit(&l->skip_until_ns, memory_order_relaxed);
    if (wait == SESSID_LOCK_REQUIRED || skip_until == 0)
        return wait_shared(l);
    if (monotonic_ns() < skip_until || atomic_exchange(&l->probing, 1) != 0)
        return SESSID_EBUSY;
    rc = wait_shared(l);
    atomic_store(&l->probing, 0);
    return rc;
}

int sessid_lock_take(sessid_lock *l, sessid_lock_wait wait)
{
    if (l->robust == NULL) {
        take_private(&l->word);
        return SESSID_OK;
    }
    int rc = try_mutex(l->robust);
    if (rc == 0 && atomic_load_explicit(&l->skip_until_ns, memory_order_relaxed) == 0)
        return SESSID_OK;               /* the common case: free, and no window open */
    return take_shared(l, wait, rc);
}

/* Both fail only when misused: the mutex is not robust, not inconsistent, or not held. */
void sessid_lock_repaired(sessid_lock *l)
{
    if (l->robust != NULL) {
        int rc = pthread_mutex_consistent(l->robust);
        assert(rc == 0);
        (void)rc;
    }
}

void sessid_lock_release(sessid_lock *l)
{
    if (l->robust == NULL) {
        release_private(&l->word);
    } else {
        int rc = pthread_mutex_unlock(l->robust);
        assert(rc == 0);
        (void)rc;
    }
}
