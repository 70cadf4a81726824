/* The sliding-TTL table's operations, in private memory or in a shared file: its lock and counters,
 * lookups, inserts, expiry and LRU eviction. A private table's growth is growth.c's, a shared
 * table's hits without the lock quick.c's, and its repair after a death repair.c's. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "growth.h"
#include "table_testing.h"

#include <assert.h>
#include <math.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lock.h"
#include "shared.h"
#include "status.h"

#define RECLAIM_PER_CALL 2

/* ---- counters (under the lock) ---- */

int sessid_table_lock(sessid_table *t)
{
    int rc = sessid_lock_take(&t->lock);
    if (rc != SESSID_OK && rc != SESSID_LOCK_OWNER_DIED)
        return rc;
    if (t->quick != NULL) {
        /* Odd from here on; a holder that died left it odd already, so it moves on by two. */
        uint64_t seq = atomic_load_explicit(&t->quick->seq, memory_order_relaxed);
        atomic_store_explicit(&t->quick->seq, seq + 1 + (seq & 1), memory_order_relaxed);
        atomic_thread_fence(memory_order_release);
    }
    if (rc == SESSID_LOCK_OWNER_DIED) {
        sessid_table_repair(t);
        sessid_lock_repaired(&t->lock);
    }
    return SESSID_OK;
}

void sessid_table_unlock(sessid_table *t)
{
    if (t->quick != NULL) {
        atomic_thread_fence(memory_order_release);
        uint64_t seq = atomic_load_explicit(&t->quick->seq, memory_order_relaxed);
        atomic_store_explicit(&t->quick->seq, seq + 1, memory_order_relaxed);
    }
    sessid_lock_release(&t->lock);
}

void sessid_table_count(sessid_table *t, enum sessid_stat stat)
{
    if ((unsigned)stat >= SESSID_STAT_COUNT || sessid_table_lock(t) != SESSID_OK)
        return;
    t->h->stats[stat]++;
    sessid_table_unlock(t);
}

void sessid_table_stats(sessid_table *t, sessid_stats *out)
{
    memset(out, 0, sizeof *out);
    if (sessid_table_lock(t) != SESSID_OK)
        return;
    memcpy(out->counters, t->h->stats, sizeof out->counters);
    for (int i = 0; t->quick != NULL && i < QUICK_HIT_COUNTERS; i++)
        out->counters[SESSID_STAT_HITS] +=
            atomic_load_explicit(&t->quick->counters[i].hits, memory_order_relaxed);
    sessid_table_unlock(t);
}

/* ---- the use-order list ---- */

static void unlink_slot(sessid_table *t, uint32_t slot)
{
    struct head *h = t->h;
    struct entry *e = entry_at(t, slot);
    if (e->older != NIL)
        entry_at(t, e->older)->newer = e->newer;
    else
        h->oldest = e->newer;
    may_die_here();
    if (e->newer != NIL)
        entry_at(t, e->newer)->older = e->older;
    else
        h->newest = e->older;
    may_die_here();
}

static void link_newest(sessid_table *t, uint32_t slot)
{
    struct head *h = t->h;
    struct entry *e = entry_at(t, slot);
    e->older = h->newest;
    e->newer = NIL;
    if (h->newest != NIL)
        entry_at(t, h->newest)->newer = slot;
    else
        h->oldest = slot;
    may_die_here();
    h->newest = slot;
    may_die_here();
}

static void touch(sessid_table *t, uint32_t slot, double now)
{
    struct entry *e = entry_at(t, slot);
    assert(now >= e->last_use);
    e->last_use = now;
    may_die_here();
    if (t->h->newest != slot) {
        unlink_slot(t, slot);
        link_newest(t, slot);
    }
}

/* ---- entries ---- */

static int is_expired(const sessid_table *t, const struct entry *e, double now)
{
    return e->last_use + t->h->ttl <= now;
}

/* Removes the entry at slot, in whichever array holds it. Backward-shift deletion: the entries
 * after it in its probe run move back where they may, so no tombstones are left and lookups stay
 * short. */
static void release_slot(sessid_table *t, uint32_t slot)
{
    struct head *h = t->h;
    struct entry *slots = t->slots;
    size_t capacity = h->capacity;
    if (in_old_array(t, slot)) {
        slots = t->old.slots;
        capacity = t->old.capacity;
    }
    uint32_t array = slot & ARRAY_BIT;
    size_t hole = slot_index(slot);
    assert(hole < capacity && occupied(&slots[hole]) && h->count > 0);
    unlink_slot(t, slot);
    h->count--;
    may_die_here();
    wipe(&slots[hole]);
    may_die_here();
    for (size_t next = next_slot(hole, capacity);; next = next_slot(next, capacity)) {
        const struct entry *e = &slots[next];
        if (!occupied(e))
            break;
        size_t home = home_of(t, e->digest, capacity);
        /* The entry may move back into the hole unless its home lies in (hole, next]. */
        int home_after_hole = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next);
        if (!home_after_hole) {
            move_entry(t, (uint32_t)next | array, (uint32_t)hole | array);
            wipe(&slots[next]);
            may_die_here();
            hole = next;
        }
    }
}

static size_t reclaim_expired(sessid_table *t, double now, size_t budget)
{
    struct head *h = t->h;
    size_t done = 0;
    while (done < budget && h->oldest != NIL && is_expired(t, entry_at(t, h->oldest), now)) {
        release_slot(t, h->oldest);
        h->stats[SESSID_STAT_EXPIRED]++;
        done++;
    }
    return done;
}

/* Room for one more entry within MAX_LOAD, counting the entries of both arrays. A shared table is
 * made with room for max_entries, so it never grows. The table is unchanged on failure. */
static int reserve_one(sessid_table *t)
{
    struct head *h = t->h;
    if ((double)(h->count + 1) <= MAX_LOAD * (double)h->capacity)
        return SESSID_OK;
    uint64_t limit = h->max_entries != 0 ? h->max_entries : SESSID_TABLE_LIMIT;
    if (h->count >= limit || is_shared(t))
        return SESSID_EFULL;
    return sessid_table_grow(t, limit);
}

/* The empty slot a new entry for digest goes in. While the table grows, that is its old array's
 * slot when the walk has passed neither its first slot there nor the empty slot its probe ends on:
 * the walk moves it across later, into pages made by then. Put straight into the new array, the
 * entry would likely land on a page not made yet and fault twice (a read maps the zero page, then
 * the write makes the page): the larger part of what an insert during a growth used to cost. */
static uint32_t free_slot_for(const sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN])
{
    uint64_t hash = hash_of(t, digest);
    if (growing(t)) {
        uint32_t slot = sessid_table_old_slot_for(t, hash);
        if (slot != NIL)
            return slot;
    }
    size_t capacity = t->h->capacity, s = scale(hash, capacity);
    while (occupied(&t->slots[s]))
        s = next_slot(s, capacity);
    return slot_number(t, s);
}

/* Adds an entry for digest (known to be absent) with id, used now, as the most recent; the table is
 * unchanged on failure. A growing table then moves some entries of its old array across. */
static int insert_entry(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN],
                        const uint8_t id[SESSID_ID_LEN], double now)
{
    struct head *h = t->h;
    if (h->max_entries != 0 && h->count >= h->max_entries) {
        release_slot(t, h->oldest);
        h->stats[SESSID_STAT_EVICTED]++;
    } else {
        int rc = reserve_one(t);
        if (rc != SESSID_OK)
            return rc;
    }
    assert(find_slot(t, digest) == NIL);
    assert((double)(h->count + 1) <= MAX_LOAD * (double)h->capacity + 1);
    uint32_t slot = free_slot_for(t, digest);
    struct entry *e = entry_at(t, slot);
    memcpy(e->digest, digest, SESSID_DIGEST_LEN);
    e->last_use = now;
    may_die_here();
    link_newest(t, slot);
    commit_id(e, id);
    may_die_here();
    h->count++;
    may_die_here();
    if (growing(t))
        sessid_table_grow_some(t, t->growth_step);
    return SESSID_OK;
}

/* Takes the lock and brings the table's time up to *now, which then holds the time to use.
 * Returns 0 or SESSID_ESTATE (see sessid_table_lock). */
static int enter(sessid_table *t, double *now)
{
    int rc = sessid_table_lock(t);
    if (rc != SESSID_OK)
        return rc;
    if (*now > t->h->clock)
        t->h->clock = *now;
    *now = t->h->clock;
    return SESSID_OK;
}

/* The live entry for digest, or NIL. On the way, reclaims a few expired entries from the old end,
 * and an expired one still in the table for digest. */
static uint32_t find_live(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN], double now)
{
    reclaim_expired(t, now, RECLAIM_PER_CALL);
    uint32_t slot = find_slot(t, digest);
    if (slot != NIL && is_expired(t, entry_at(t, slot), now)) {
        release_slot(t, slot);
        t->h->stats[SESSID_STAT_EXPIRED]++;
        slot = NIL;
    }
    return slot;
}

/* ---- the public operations ---- */

static int init_head(struct head *h, double ttl, uint64_t max_entries)
{
    memset(h, 0, sizeof *h);
    uint8_t seed[sizeof h->seed];
    if (sessid_id_new(seed) != SESSID_OK || sessid_id_new(seed + SESSID_ID_LEN) != SESSID_OK)
        return SESSID_ERANDOM;
    memcpy(h->seed, seed, sizeof seed);
    h->ttl = ttl;
    h->max_entries = max_entries;
    h->clock = -INFINITY;
    h->oldest = h->newest = NIL;
    return SESSID_OK;
}

static sessid_table *new_handle(void)
{
    /* Aligned as its head asks (a cache line), which calloc does not promise. */
    sessid_table *t = aligned_alloc(alignof(sessid_table), sizeof *t);
    if (t == NULL)
        return NULL;
    memset(t, 0, sizeof *t);
    t->h = &t->own;
    t->growth_step = GROWTH_STEP;
    t->piece = PIECE;
    t->file.fd = -1;
    atomic_init(&t->prefetch_slots, NULL);
    atomic_init(&t->prefetch_capacity, 0);
    return t;
}

int sessid_table_new(double ttl, uint64_t max_entries, sessid_table **out)
{
    *out = NULL;
    if (!isfinite(ttl) || ttl <= 0 || max_entries > SESSID_TABLE_LIMIT)
        return SESSID_EINVAL;
    sessid_table *t = new_handle();
    if (t == NULL)
        return SESSID_ENOMEM;
    int rc = init_head(t->h, ttl, max_entries);
    if (rc == SESSID_OK)
        rc = sessid_lock_init_private(&t->lock);
    if (rc != SESSID_OK) {
        free(t);
        return rc;
    }
    *out = t;
    return SESSID_OK;
}

int sessid_table_open_shared(const char *path, double ttl, uint64_t max_entries,
                             sessid_table **out, sessid_shared_problem *problem)
{
    *out = NULL;
    memset(problem, 0, sizeof *problem);
    if (!isfinite(ttl) || ttl <= 0 || max_entries == 0 || max_entries > SESSID_TABLE_LIMIT)
        return SESSID_EINVAL;
    sessid_table *t = new_handle();
    if (t == NULL)
        return SESSID_ENOMEM;
    sessid_shared_spec spec = {.ttl = ttl, .max_entries = max_entries,
                               .capacity = sessid_table_slots_for(max_entries), .slot_size = sizeof(struct entry)};
    int fresh;
    int rc = sessid_shared_open(path, &spec, &t->file, &fresh, problem);
    if (rc == SESSID_OK && fresh) {
        rc = init_head(t->file.state, ttl, max_entries);
        if (rc == SESSID_OK)
            rc = sessid_lock_create_shared(t->file.mutex);
        if (rc == SESSID_OK) {
            ((struct head *)t->file.state)->capacity = spec.capacity;
            sessid_shared_publish(&t->file);
        }
    }
    if (rc != SESSID_OK) {
        sessid_shared_close(&t->file);
        free(t);
        return rc;
    }
    t->h = t->file.state;
    t->quick = &((struct shared_state *)t->file.state)->quick;
    t->slots = t->file.slots;
    sessid_lock_init_shared(&t->lock, t->file.mutex);
    sessid_table_publish_arrays(t);
    *out = t;
    return SESSID_OK;
}

void sessid_table_free(sessid_table *t)
{
    if (t == NULL)
        return;
    sessid_lock_destroy(&t->lock);
    if (is_shared(t))
        sessid_shared_close(&t->file);
    else
        sessid_table_drop_arrays(t);
    free(t);
}

int sessid_table_get_or_create(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN],
                               double now, uint8_t id[SESSID_ID_LEN], int *created)
{
    if (t->quick != NULL && sessid_table_quick_hit(t, digest, now, id)) {
        if (created != NULL)
            *created = 0;
        return SESSID_OK;
    }
    int rc = enter(t, &now);
    if (rc != SESSID_OK)
        return rc;
    uint32_t slot = find_live(t, digest, now);
    if (slot != NIL) {
        touch(t, slot, now);
        memcpy(id, entry_at(t, slot)->id, SESSID_ID_LEN);
        t->h->stats[SESSID_STAT_HITS]++;
        if (created != NULL)
            *created = 0;
    } else {
        rc = sessid_id_new(id);
        if (rc == SESSID_OK)
            rc = insert_entry(t, digest, id, now);
        if (rc == SESSID_OK) {
            t->h->stats[SESSID_STAT_MISSES]++;
            if (created != NULL)
                *created = 1;
        }
    }
    sessid_table_unlock(t);
    return rc;
}

int sessid_table_peek(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN], double now,
                      double window, uint8_t id[SESSID_ID_LEN])
{
    if (enter(t, &now) != SESSID_OK)
        return 0;
    uint32_t slot = find_live(t, digest, now);
    int found = slot != NIL && now < entry_at(t, slot)->last_use + window;
    if (found)
        memcpy(id, entry_at(t, slot)->id, SESSID_ID_LEN);
    sessid_table_unlock(t);
    return found;
}

int sessid_table_put(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN],
                     const uint8_t id[SESSID_ID_LEN], double now)
{
    if (!sessid_id_is_v4(id))
        return SESSID_EINVAL;
    int rc = enter(t, &now);
    if (rc != SESSID_OK)
        return rc;
    uint32_t slot = find_live(t, digest, now);
    if (slot != NIL && memcmp(entry_at(t, slot)->id, id, SESSID_ID_LEN) != 0) {
        release_slot(t, slot);                  /* replaced whole: an id is never half written */
        slot = NIL;
    }
    if (slot == NIL)
        rc = insert_entry(t, digest, id, now);
    else
        touch(t, slot, now);
    sessid_table_unlock(t);
    return rc;
}

int sessid_table_remove(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN], double now)
{
    int rc = enter(t, &now);
    if (rc != SESSID_OK)
        return rc;
    uint32_t slot = find_live(t, digest, now);
    if (slot != NIL)
        release_slot(t, slot);
    sessid_table_unlock(t);
    return SESSID_OK;
}

void sessid_table_prefetch(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN])
{
    /* A prefetch never faults, so a stale pointer (the table grew meanwhile) is harmless. */
    struct entry *slots = atomic_load_explicit(&t->prefetch_slots, memory_order_relaxed);
    size_t capacity = atomic_load_explicit(&t->prefetch_capacity, memory_order_relaxed);
    if (slots != NULL && capacity > 0)
        __builtin_prefetch((const void *)((uintptr_t)slots
                                          + home_of(t, digest, capacity) * sizeof(struct entry)));
}

size_t sessid_table_purge(sessid_table *t, double now)
{
    if (enter(t, &now) != SESSID_OK)
        return 0;
    size_t reclaimed = reclaim_expired(t, now, SIZE_MAX);
    sessid_table_unlock(t);
    return reclaimed;
}

size_t sessid_table_live(sessid_table *t, double now)
{
    if (enter(t, &now) != SESSID_OK)
        return 0;
    reclaim_expired(t, now, SIZE_MAX);
    size_t live = t->h->count;
    sessid_table_unlock(t);
    return live;
}

void sessid_table_clear(sessid_table *t)
{
    if (sessid_table_lock(t) != SESSID_OK)
        return;
    struct head *h = t->h;
    if (is_shared(t)) {
        h->oldest = h->newest = NIL;
        h->count = 0;
        may_die_here();
        for (size_t s = 0; s < h->capacity; s++) {
            if (!is_blank(&t->slots[s])) {
                wipe(&t->slots[s]);
                may_die_here();
            }
        }
    } else {
        sessid_table_drop_arrays(t);
        h->count = 0;
        h->oldest = h->newest = NIL;
    }
    sessid_table_unlock(t);
}
