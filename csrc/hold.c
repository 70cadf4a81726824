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
 * checks before it believes them. now: the taker's time, or -INFINITY when it has none. */
static int head_is_sane(const sessid_table *t, double now)
{
    const struct head *h = t->h;
    size_t capacity = t->bounds[0];
    return h->ttl == t->own.ttl && h->max_entries == t->own.max_entries && h->capacity == capacity
           && h->count <= h->max_entries && (h->count == 0) == (h->oldest == NIL)
           && (h->count == 0) == (h->newest == NIL) && (h->oldest == NIL || h->oldest < capacity)
           && (h->newest == NIL || h->newest < capacity) && !isnan(h->clock)
           && !(isfinite(now) && h->clock > now + CLOCK_AHEAD_MAX);
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

int sessid_table_run_locked(sessid_table *t, double now, sessid_lock_wait wait,
                            sessid_locked_work work, void *args)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = sessid_table_lock_for(t, wait, now);
        if (rc != SESSID_OK)
            return rc;
        if (now > t->h->clock)
            t->h->clock = now;
        rc = work(t, t->h->clock, args);
        if (sessid_table_unlock(t) == SESSID_OK)
            return rc;
    }
    return SESSID_EDAMAGED;
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
