/* The sliding-TTL table's operations, in private memory or in a shared file: lookups, inserts,
 * expiry and LRU eviction, growth, and a shared table's lock-free quick hits. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "table_layout.h"
#include "table_testing.h"

#include <assert.h>
#include <math.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "lock.h"
#include "shared.h"
#include "status.h"

#define MIN_SLOTS 64
#define RECLAIM_PER_CALL 2
#define MAX_LOAD 0.85       /* grow beyond 85% full ... */
#define GROWTH 1.2          /* ... by 20%: it stays at least 70% full, <= 91 bytes an entry */

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

/* ---- slots ---- */

/* ---- the use-order list ---- */

static void unlink_slot(sessid_table *t, uint32_t slot)
{
    struct head *h = t->h;
    struct entry *e = &t->slots[slot];
    if (e->older != NIL)
        t->slots[e->older].newer = e->newer;
    else
        h->oldest = e->newer;
    step();
    if (e->newer != NIL)
        t->slots[e->newer].older = e->older;
    else
        h->newest = e->older;
    step();
}

static void link_newest(sessid_table *t, uint32_t slot)
{
    struct head *h = t->h;
    struct entry *e = &t->slots[slot];
    e->older = h->newest;
    e->newer = NIL;
    if (h->newest != NIL)
        t->slots[h->newest].newer = slot;
    else
        h->oldest = slot;
    step();
    h->newest = slot;
    step();
}

static void touch(sessid_table *t, uint32_t slot, double now)
{
    assert(now >= t->slots[slot].last_use);
    t->slots[slot].last_use = now;
    step();
    if (t->h->newest != slot) {
        unlink_slot(t, slot);
        link_newest(t, slot);
    }
}

/* Copies the entry at `from` into the empty slot `to` (the id last) and points its neighbours at
 * it; `from` still holds it too until the caller empties it. */
static void move_entry(sessid_table *t, uint32_t from, uint32_t to)
{
    struct head *h = t->h;
    const struct entry *src = &t->slots[from];
    struct entry *e = &t->slots[to];
    memcpy(e->digest, src->digest, SESSID_DIGEST_LEN);
    e->last_use = src->last_use;
    e->older = src->older;
    e->newer = src->newer;
    step();
    commit_id(e, src->id);
    step();
    if (e->older != NIL)
        t->slots[e->older].newer = to;
    else
        h->oldest = to;
    step();
    if (e->newer != NIL)
        t->slots[e->newer].older = to;
    else
        h->newest = to;
    step();
}

/* ---- entries ---- */

static int is_expired(const sessid_table *t, const struct entry *e, double now)
{
    return e->last_use + t->h->ttl <= now;
}

/* Removes the entry at slot. Backward-shift deletion: the entries after it in its probe run move
 * back where they may, so no tombstones are left and lookups stay short. */
static void release_slot(sessid_table *t, uint32_t slot)
{
    struct head *h = t->h;
    size_t capacity = h->capacity;
    assert(slot < capacity && occupied(&t->slots[slot]) && h->count > 0);
    unlink_slot(t, slot);
    h->count--;
    step();
    wipe(&t->slots[slot]);
    step();
    size_t hole = slot;
    for (size_t next = next_slot(slot, capacity);; next = next_slot(next, capacity)) {
        const struct entry *e = &t->slots[next];
        if (!occupied(e))
            break;
        size_t home = home_slot(t, e->digest);
        /* The entry may move back into the hole unless its home lies in (hole, next]. */
        int home_after_hole = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next);
        if (!home_after_hole) {
            move_entry(t, (uint32_t)next, (uint32_t)hole);
            wipe(&t->slots[next]);
            step();
            hole = next;
        }
    }
}

static size_t reclaim_expired(sessid_table *t, double now, size_t budget)
{
    struct head *h = t->h;
    size_t done = 0;
    while (done < budget && h->oldest != NIL && is_expired(t, &t->slots[h->oldest], now)) {
        release_slot(t, h->oldest);
        h->stats[SESSID_STAT_EXPIRED]++;
        done++;
    }
    return done;
}

/* Slot arrays of at least this many bytes get pages of their own from the kernel, and give them back
 * when freed: from malloc's heap, the arrays a table has grown out of would stay resident. */
#define OWN_PAGES_FROM (64 * 1024)

static struct entry *alloc_slots(size_t capacity)
{
    size_t bytes = capacity * sizeof(struct entry);
    if (bytes < OWN_PAGES_FROM)
        return calloc(capacity, sizeof(struct entry));
    void *pages = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pages == MAP_FAILED)
        return NULL;
    /* A hint: huge pages spare a large table a TLB miss on most lookups. Without them (the kernel
     * may refuse or ignore it) the table works the same, so the outcome is not checked. */
    (void)madvise(pages, bytes, MADV_HUGEPAGE);
    return pages;
}

/* Wipes (digests and ids do not linger in freed memory) and frees a private slot array. */
static void free_slots(struct entry *slots, size_t capacity)
{
    if (slots == NULL)
        return;
    size_t bytes = capacity * sizeof(struct entry);
    memset(slots, 0, bytes);
    if (bytes < OWN_PAGES_FROM)
        free(slots);
    else
        munmap(slots, bytes);
}

static void publish_for_prefetch(sessid_table *t)
{
    atomic_store_explicit(&t->prefetch_slots, t->slots, memory_order_relaxed);
    atomic_store_explicit(&t->prefetch_capacity, t->h->capacity, memory_order_relaxed);
}

/* Re-places every entry of a private table in a table of `capacity` slots, keeping the use order.
 * Old slots are read in order, so the new table is written almost in order too; the links are then
 * translated through a map of old slot to new slot. The table is unchanged on failure. */
static int resize(sessid_table *t, size_t capacity)
{
    struct head *h = t->h;
    assert(!is_shared(t));
    struct entry *slots = alloc_slots(capacity);
    uint32_t *moved_to = malloc((h->capacity > 0 ? h->capacity : 1) * sizeof *moved_to);
    if (slots == NULL || moved_to == NULL) {
        free_slots(slots, capacity);
        free(moved_to);
        return SESSID_ENOMEM;
    }
    for (size_t old = 0; old < h->capacity; old++) {
        const struct entry *e = &t->slots[old];
        if (!occupied(e))
            continue;
        size_t slot = home_of(t, e->digest, capacity);
        while (occupied(&slots[slot]))
            slot = next_slot(slot, capacity);
        slots[slot] = *e;
        moved_to[old] = (uint32_t)slot;
    }
    for (size_t slot = 0; slot < capacity; slot++) {
        struct entry *e = &slots[slot];
        if (!occupied(e))
            continue;
        e->older = e->older != NIL ? moved_to[e->older] : NIL;
        e->newer = e->newer != NIL ? moved_to[e->newer] : NIL;
    }
    if (h->oldest != NIL) {
        h->oldest = moved_to[h->oldest];
        h->newest = moved_to[h->newest];
    }
    free(moved_to);
    free_slots(t->slots, h->capacity);
    t->slots = slots;
    h->capacity = capacity;
    publish_for_prefetch(t);
    return SESSID_OK;
}

/* The slots a table needs to hold `limit` entries within MAX_LOAD. */
static size_t slots_for(uint64_t limit)
{
    return (size_t)ceil((double)limit / MAX_LOAD) + 1;
}

/* Room for one more entry within MAX_LOAD. A shared table is made with room for max_entries, so
 * it never grows. */
static int reserve_one(sessid_table *t)
{
    struct head *h = t->h;
    if ((double)(h->count + 1) <= MAX_LOAD * (double)h->capacity)
        return SESSID_OK;
    uint64_t limit = h->max_entries != 0 ? h->max_entries : SESSID_TABLE_LIMIT;
    if (h->count >= limit || is_shared(t))
        return SESSID_EFULL;
    size_t grown = h->capacity < MIN_SLOTS ? MIN_SLOTS : (size_t)ceil((double)h->capacity * GROWTH);
    size_t enough = slots_for(limit);
    return resize(t, grown < enough ? grown : enough);
}

/* Adds an entry for digest (known to be absent) with id, used now, as the most recent. Returns its
 * slot through *slot; the table is unchanged on failure. */
static int insert_entry(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN],
                        const uint8_t id[SESSID_ID_LEN], double now, uint32_t *slot)
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
    size_t s = home_slot(t, digest);
    while (occupied(&t->slots[s]))
        s = next_slot(s, h->capacity);
    struct entry *e = &t->slots[s];
    memcpy(e->digest, digest, SESSID_DIGEST_LEN);
    e->last_use = now;
    step();
    link_newest(t, (uint32_t)s);
    commit_id(e, id);
    step();
    h->count++;
    step();
    *slot = (uint32_t)s;
    return SESSID_OK;
}

/* Takes the lock and brings the table's time up to *now, which then holds the time to use.
 * Returns 0 or SESSID_ESTATE (see lock_table). */
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
    if (slot != NIL && is_expired(t, &t->slots[slot], now)) {
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
                               .capacity = slots_for(max_entries), .slot_size = sizeof(struct entry)};
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
    publish_for_prefetch(t);
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
        free_slots(t->slots, t->h->capacity);
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
        memcpy(id, t->slots[slot].id, SESSID_ID_LEN);
        t->h->stats[SESSID_STAT_HITS]++;
        if (created != NULL)
            *created = 0;
    } else {
        rc = sessid_id_new(id);
        if (rc == SESSID_OK)
            rc = insert_entry(t, digest, id, now, &slot);
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
    int found = slot != NIL && now < t->slots[slot].last_use + window;
    if (found)
        memcpy(id, t->slots[slot].id, SESSID_ID_LEN);
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
    if (slot != NIL && memcmp(t->slots[slot].id, id, SESSID_ID_LEN) != 0) {
        release_slot(t, slot);                  /* replaced whole: an id is never half written */
        slot = NIL;
    }
    if (slot == NIL)
        rc = insert_entry(t, digest, id, now, &slot);
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
        step();
        for (size_t s = 0; s < h->capacity; s++) {
            if (!is_blank(&t->slots[s])) {
                wipe(&t->slots[s]);
                step();
            }
        }
    } else {
        free_slots(t->slots, h->capacity);
        t->slots = NULL;
        h->capacity = h->count = 0;
        h->oldest = h->newest = NIL;
        publish_for_prefetch(t);
    }
    sessid_table_unlock(t);
}
