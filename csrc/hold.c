/* Holding a table's lock: taking it (a shared table's with bounded waits, undoing what a holder that
 * died left half done, checking the head), releasing it (undoing and rebuilding a call that met
 * damage), running a call's work under it, and the counters read and written under it. */
#include "table_layout.h"

#include <math.h>
#include <string.h>

#include "lock.h"
#include "status.h"
#include "undo.h"

/* ---- the lock ---- */

/* 1 when the head's fields could belong to a whole table: what every taker of a shared table's lock
 * checks before it believes them (its settings, which every operation reads from the handle, are
 * compared bit for bit). now: the taker's time, or -INFINITY when it has none. */
static int head_is_sane(const sessid_table *t, double now)
{
    const struct head *h = t->h;
    uint64_t count = h->count;
    uint32_t oldest = h->oldest, newest = h->newest;
    double clock = h->clock;
    /* Empty: both ends NIL; else both within the slots (NIL never is). */
    int ends = count == 0 ? (oldest & newest) == NIL
                          : (oldest > newest ? oldest : newest) < t->bounds[0];
    uint64_t ttl, own_ttl;
    memcpy(&ttl, &h->ttl, sizeof ttl);
    memcpy(&own_ttl, &t->own.ttl, sizeof own_ttl);
    int settings = ((ttl ^ own_ttl) | (h->max_entries ^ t->own.max_entries)
                    | (h->capacity ^ t->own.capacity)) == 0;
    return ends & settings & (count <= t->own.max_entries) & (clock == clock)
           & ((now == -INFINITY) | !(clock > now + CLOCK_AHEAD_MAX));
}

/* Taking the lock from a holder that died, or a table whose state fails a check: undoes what the
 * dead call left half done, or rebuilds the table when that cannot be done or was not enough. */
__attribute__((noinline))
static void take_over(sessid_table *t, int rc, double now)
{
    if (atomic_load_explicit(&t->file.state->undo.armed, memory_order_relaxed) != 0
        && sessid_undo_rollback(t) != 0)
        t->rebuild = 1;
    if (t->rebuild || !head_is_sane(t, now)) {
        sessid_table_repair(t);
        t->rebuild = 0;
    }
    if (rc == SESSID_LOCK_OWNER_DIED) {
        t->h->stats[SESSID_STAT_LOCK_REPAIRS]++;
        sessid_lock_repaired(&t->lock);
    }
}

int sessid_table_lock_for(sessid_table *t, sessid_lock_wait wait, double now)
{
    int rc = sessid_lock_take(&t->lock, wait);
    if (rc != SESSID_OK && rc != SESSID_LOCK_OWNER_DIED) {
        if (sessid_status_is_lock_wait(rc) && t->quick != NULL)
            atomic_fetch_add_explicit(&t->quick->lock_timeouts, 1, memory_order_relaxed);
        return rc;
    }
    if (t->quick == NULL)
        return SESSID_OK;
    /* Odd from here on; a holder that died left it odd already, so it moves on by two. */
    uint64_t seq = atomic_load_explicit(&t->quick->seq, memory_order_relaxed);
    atomic_store_explicit(&t->quick->seq, seq + 1 + (seq & 1), memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    if (rc != SESSID_OK || t->rebuild
        || atomic_load_explicit(&t->file.state->undo.armed, memory_order_relaxed) != 0
        || !head_is_sane(t, now))
        take_over(t, rc, now);
    sessid_undo_begin(t, 0);
    return SESSID_OK;
}

int sessid_table_lock(sessid_table *t)
{
    return sessid_table_lock_for(t, SESSID_LOCK_REQUIRED, -INFINITY);
}

int sessid_table_unlock(sessid_table *t)
{
    int rc = SESSID_OK;
    if (t->quick != NULL) {
        if (t->broken) {
            /* The call met a slot number out of range: its work is undone, the table rebuilt. */
            (void)sessid_undo_rollback(t);
            sessid_table_repair(t);
            t->broken = 0;
            rc = SESSID_EDAMAGED;
        }
        sessid_undo_end(t);
        atomic_thread_fence(memory_order_release);
        uint64_t seq = atomic_load_explicit(&t->quick->seq, memory_order_relaxed);
        atomic_store_explicit(&t->quick->seq, seq + 1, memory_order_relaxed);
    }
    sessid_lock_release(&t->lock);
    return rc;
}

/* ---- counters ---- */

static int count_one(sessid_table *t, double now, void *args)
{
    (void)now;
    t->h->stats[*(const enum sessid_stat *)args]++;
    return SESSID_OK;
}

void sessid_table_count(sessid_table *t, enum sessid_stat stat)
{
    if ((unsigned)stat < SESSID_STAT_COUNT)
        (void)sessid_table_run_locked(t, -INFINITY, SESSID_LOCK_BEST_EFFORT, count_one, &stat);
}

static int copy_stats(sessid_table *t, double now, void *args)
{
    (void)now;
    sessid_stats *out = args;
    memcpy(out->counters, t->h->stats, sizeof out->counters);
    return SESSID_OK;
}

int sessid_table_stats(sessid_table *t, sessid_stats *out)
{
    memset(out, 0, sizeof *out);
    int rc = sessid_table_run_locked(t, -INFINITY, SESSID_LOCK_REQUIRED, copy_stats, out);
    if (rc != SESSID_OK)
        return rc;
    for (int i = 0; t->quick != NULL && i < QUICK_HIT_COUNTERS; i++)
        out->counters[SESSID_STAT_HITS] +=
            atomic_load_explicit(&t->quick->counters[i].hits, memory_order_relaxed);
    if (t->quick != NULL)
        out->counters[SESSID_STAT_LOCK_TIMEOUTS] =
            atomic_load_explicit(&t->quick->lock_timeouts, memory_order_relaxed);
    return SESSID_OK;
}
