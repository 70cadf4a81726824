/* The sliding-TTL table's operations, in private memory or in a shared file: lookups, inserts,
 * expiry and LRU eviction, and the bounded pieces of purge, len and clear. Holding its lock is
 * hold.c's, a private table's growth growth.c's, a shared table's hits without the lock quick.c's,
 * its undo log undo.c's, and its rebuild from the slots repair.c's. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "growth.h"

#include <assert.h>
#include <math.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "lock.h"
#include "shared.h"
#include "status.h"

#define RECLAIM_PER_CALL 2

/* ---- the use-order list ---- */

static void unlink_slot(sessid_table *t, uint32_t slot)
{
    struct head *h = t->h;
    struct entry *e = entry_at(t, slot);
    if (e->older != NIL)
        write_at(t, e->older)->newer = e->newer;
    else
        h->oldest = e->newer;
    may_die_here();
    if (e->newer != NIL)
        write_at(t, e->newer)->older = e->older;
    else
        h->newest = e->older;
    may_die_here();
}

/* Moves slot's entry to the newest end, used now: its own links, then its old neighbours', then the
 * old newest's. A shared table's undo log keeps one touch record of it rather than the four slots. */
__attribute__((always_inline))
static inline void touch(sessid_table *t, uint32_t slot, double now)
{
    struct entry *e = entry_at(t, slot);
    if (e->last_use > now) {
        t->broken = 1;          /* used after the table's time: only a damaged file says so */
        return;
    }
    struct head *h = t->h;
    uint32_t older = e->older, newer = e->newer, newest = h->newest;
    if (t->quick != NULL)
        undo_save_touch(t, slot, e, newest);
    e->last_use = now;
    may_die_here();
    if (newest == slot)
        return;
    e->older = newest;
    e->newer = NIL;
    may_die_here();
    if (older != NIL)
        entry_at(t, older)->newer = newer;
    else
        h->oldest = newer;
    may_die_here();
    entry_at(t, newer)->older = older;          /* not NIL: slot is not the newest */
    may_die_here();
    entry_at(t, newest)->newer = slot;
    h->newest = slot;
    may_die_here();
}

/* ---- entries ---- */

static int is_expired(const sessid_table *t, const struct entry *e, double now)
{
    return e->last_use + t->own.ttl <= now;
}

/* Removes the entry at slot, in whichever array holds it. Backward-shift deletion: the entries
 * after it in its probe run move back where they may, so no tombstones are left and lookups stay
 * short. */
static void release_slot(sessid_table *t, uint32_t slot)
{
    struct head *h = t->h;
    struct entry *slots = t->slots;
    size_t capacity = t->own.capacity;
    if (in_old_array(t, slot)) {
        slots = t->old.slots;
        capacity = t->old.capacity;
    }
    uint32_t array = slot & ARRAY_BIT;
    size_t hole = slot_index(slot);
    if (hole >= capacity || !occupied(&slots[hole]) || h->count == 0) {
        t->broken = 1;          /* a list end or link a damaged file holds */
        return;
    }
    unlink_slot(t, slot);
    h->count--;
    may_die_here();
    wipe(write_at(t, slot));
    may_die_here();
    size_t next = next_slot(hole, capacity);
    for (size_t n = 1; n < capacity; n++, next = next_slot(next, capacity)) {
        const struct entry *e = &slots[next];
        if (!occupied(e))
            break;
        size_t home = home_of(t, e->digest, capacity);
        /* The entry may move back into the hole unless its home lies in (hole, next]. */
        int home_after_hole = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next);
        if (!home_after_hole) {
            move_entry(t, (uint32_t)next | array, (uint32_t)hole | array);
            wipe(write_at(t, (uint32_t)next | array));
            may_die_here();
            hole = next;
        }
    }
}

__attribute__((always_inline))
static inline size_t reclaim_expired(sessid_table *t, double now, size_t budget)
{
    struct head *h = t->h;
    size_t done = 0;
    while (done < budget && !t->broken && h->oldest != NIL
           && is_expired(t, entry_at(t, h->oldest), now)) {
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
    if (is_shared(t))
        return h->count < t->own.max_entries ? SESSID_OK : SESSID_EFULL;
    if ((double)(h->count + 1) <= MAX_LOAD * (double)t->own.capacity)
        return SESSID_OK;
    uint64_t limit = t->own.max_entries != 0 ? t->own.max_entries : SESSID_TABLE_LIMIT;
    if (h->count >= limit)
        return SESSID_EFULL;
    return sessid_table_grow(t, limit);
}

/* The empty slot a new entry for digest goes in. While the table grows, that is its old array's
 * slot when the walk has passed neither its first slot there nor the empty slot its probe ends on:
 * the walk moves it across later, into pages made by then. Put straight into the new array, the
 * entry would likely land on a page not made yet and fault twice (a read maps the zero page, then
 * the write makes the page): the larger part of what an insert during a growth used to cost. */
static uint32_t free_slot_for(const sessid_table *t, const struct key *k)
{
    if (growing(t)) {
        uint32_t slot = sessid_table_old_slot_for(t, k->hash);
        if (slot != NIL)
            return slot;
    }
    size_t capacity = t->own.capacity, s = scale(k->hash, capacity);
    for (size_t n = 0; n < capacity; n++, s = next_slot(s, capacity))
        if (!occupied(&t->slots[s]))
            return slot_number(t, s);
    return NIL;                 /* every slot taken: only a damaged file can be so */
}

/* Adds an entry for the key (known to be absent) with id, used now, as the most recent; the table is
 * unchanged on failure. A growing table then moves some entries of its old array across. */
static int insert_entry(sessid_table *t, const struct key *k, const uint8_t id[SESSID_ID_LEN],
                        double now)
{
    struct head *h = t->h;
    if (t->own.max_entries != 0 && h->count >= t->own.max_entries) {
        release_slot(t, h->oldest);
        h->stats[SESSID_STAT_EVICTED]++;
    } else {
        int rc = reserve_one(t);
        if (rc != SESSID_OK)
            return rc;
    }
#ifndef NDEBUG
    /* The caller found no live entry, so a slot holding digest is a second copy (whose first one
     * expired or went meanwhile): only a damaged file holds one. Checked in debug builds only, where
     * the fuzzers run: in a release build, the key's id changes once, to the copy's. */
    if (!t->broken && find_slot(t, k->digest) != NIL) {
        assert(is_shared(t));
        t->broken = 1;
    }
#endif
    uint32_t slot = free_slot_for(t, k);
    if (t->broken || slot == NIL) {
        t->broken = 1;
        return SESSID_EDAMAGED;
    }
    /* Linked as the newest, then the id: a shared table's undo log keeps one insert record. */
    uint32_t newest = h->newest;
    if (t->quick != NULL) {
        undo_save_insert(t, slot, newest);
        uint64_t inserts = atomic_load_explicit(&t->quick->tick_inserts, memory_order_relaxed);
        atomic_store_explicit(&t->quick->tick_inserts, inserts + 1, memory_order_relaxed);
    }
    struct entry *e = entry_at(t, slot);
    memcpy(e->digest, k->digest, SESSID_DIGEST_LEN);
    e->last_use = now;
    e->older = newest;
    e->newer = NIL;
    may_die_here();
    if (newest != NIL)
        entry_at(t, newest)->newer = slot;
    else
        h->oldest = slot;
    may_die_here();
    h->newest = slot;
    may_die_here();
    commit_id(e, id);
    may_die_here();
    h->count++;
    may_die_here();
    if (growing(t))
        sessid_table_grow_some(t, t->growth_step);
    return SESSID_OK;
}

/* The key's live entry, or NIL. On the way, reclaims a few expired entries from the old end, and
 * an expired one still in the table for the key. */
__attribute__((always_inline))
static inline uint32_t find_live(sessid_table *t, const struct key *k, double now)
{
    reclaim_expired(t, now, RECLAIM_PER_CALL);
    uint32_t slot = find_key(t, k);
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

/* Makes a new file's state and lock, before any other process sees the file. */
static int init_shared(struct shared_state *state, pthread_mutex_t *mutex, const sessid_shared_spec *spec)
{
    int rc = init_head(&state->head, spec->ttl, spec->max_entries);
    if (rc != SESSID_OK)
        return rc;
    state->head.capacity = spec->capacity;
    return sessid_lock_create_shared(mutex);
}

int sessid_table_open_shared(const char *path, double ttl, uint64_t max_entries, int create,
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
                               .capacity = sessid_file_capacity(max_entries), .init = init_shared};
    int rc = sessid_shared_open(path, &spec, create, &t->file, problem);
    if (rc != SESSID_OK) {
        free(t);
        return rc;
    }
    /* What the header says, checked; the head in the file is checked against it under the lock. */
    t->own.ttl = ttl;
    t->own.max_entries = max_entries;
    t->own.capacity = spec.capacity;
    t->h = &t->file.state->head;
    t->quick = &t->file.state->quick;
    t->slots = t->file.slots;
    t->arrays[0] = (uintptr_t)t->slots;
    t->bounds[0] = spec.capacity;
    atomic_store_explicit(&t->prefetch_slots, t->slots, memory_order_relaxed);
    atomic_store_explicit(&t->prefetch_capacity, spec.capacity, memory_order_relaxed);
    double clock = t->h->clock, host = sessid_clock_now();
    if (isnan(clock) || (host >= 0 && clock > host + CLOCK_AHEAD_MAX))
        t->rebuild = 1;
    sessid_lock_init_shared(&t->lock, t->file.mutex);
    *out = t;
    return SESSID_OK;
}

void sessid_table_set_lock_wait(sessid_table *t, double timeout, const sessid_lock_hooks *hooks)
{
    if (t->quick != NULL)
        sessid_lock_set_wait(&t->lock, timeout, hooks);
}

int sessid_table_moved(const sessid_table *t, const char *path)
{
    return t->quick != NULL && sessid_shared_moved(&t->file, path);
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

struct lookup {
    struct key key;
    uint8_t *id;
    int *created;
    double window;
};

static int get_or_create_locked(sessid_table *t, double now, void *args)
{
    struct lookup *l = args;
    uint32_t slot = find_live(t, &l->key, now);
    if (slot != NIL) {
        touch(t, slot, now);
        memcpy(l->id, entry_at(t, slot)->id, SESSID_ID_LEN);
        t->h->stats[SESSID_STAT_HITS]++;
        *l->created = 0;
        return SESSID_OK;
    }
    int rc = sessid_id_new(l->id);
    if (rc == SESSID_OK)
        rc = insert_entry(t, &l->key, l->id, now);
    if (rc == SESSID_OK) {
        t->h->stats[SESSID_STAT_MISSES]++;
        *l->created = 1;
    }
    return rc;
}

/* Apart, so that a hit without the lock does not pay for the registers the work under it uses. */
__attribute__((noinline))
static int get_or_create_under_lock(sessid_table *t, double now, sessid_lock_wait wait,
                                    struct lookup *l)
{
    return sessid_table_run_locked(t, now, wait, get_or_create_locked, l);
}

int sessid_table_get_or_create(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN],
                               double now, uint8_t id[SESSID_ID_LEN], int *created,
                               sessid_lock_wait wait)
{
    int ignored;
    struct lookup l = {.key = key_of(t, digest), .id = id,
                       .created = created != NULL ? created : &ignored};
    if (t->quick != NULL && sessid_table_quick_hit(t, &l.key, now, id)) {
        *l.created = 0;
        return SESSID_OK;
    }
    return get_or_create_under_lock(t, now, wait, &l);
}

static int peek_locked(sessid_table *t, double now, void *args)
{
    struct lookup *l = args;
    uint32_t slot = find_live(t, &l->key, now);
    *l->created = slot != NIL && now < entry_at(t, slot)->last_use + l->window;
    if (*l->created)
        memcpy(l->id, entry_at(t, slot)->id, SESSID_ID_LEN);
    return SESSID_OK;
}

int sessid_table_peek(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN], double now,
                      double window, uint8_t id[SESSID_ID_LEN])
{
    int found = 0;
    struct lookup l = {.key = key_of(t, digest), .id = id, .created = &found, .window = window};
    return sessid_table_run_locked(t, now, SESSID_LOCK_BEST_EFFORT, peek_locked, &l) == SESSID_OK && found;
}

static int put_locked(sessid_table *t, double now, void *args)
{
    struct lookup *l = args;
    uint32_t slot = find_live(t, &l->key, now);
    if (slot != NIL && memcmp(entry_at(t, slot)->id, l->id, SESSID_ID_LEN) != 0) {
        release_slot(t, slot);                  /* replaced whole: an id is never half written */
        slot = NIL;
    }
    if (slot == NIL)
        return insert_entry(t, &l->key, l->id, now);
    touch(t, slot, now);
    return SESSID_OK;
}

int sessid_table_put(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN],
                     const uint8_t id[SESSID_ID_LEN], double now)
{
    if (!sessid_id_is_v4(id))
        return SESSID_EINVAL;
    struct lookup l = {.key = key_of(t, digest), .id = (uint8_t *)id};
    return sessid_table_run_locked(t, now, SESSID_LOCK_BEST_EFFORT, put_locked, &l);
}

static int remove_locked(sessid_table *t, double now, void *args)
{
    uint32_t slot = find_live(t, args, now);
    if (slot != NIL)
        release_slot(t, slot);
    return SESSID_OK;
}

int sessid_table_remove(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN], double now)
{
    struct key k = key_of(t, digest);
    return sessid_table_run_locked(t, now, SESSID_LOCK_REQUIRED, remove_locked, &k);
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

/* Entries purge, len and clear of a shared table drop under one hold of its lock, and the share of
 * the undo log they may fill: other processes wait for one piece at a time, and a death inside one
 * undoes only that piece. */
#define PIECE_ENTRIES 128

/* Between two pieces: a moment for the processes waiting for the lock to take it (a mutex does not
 * hand itself over: without the pause, the releaser takes it again before a waiter wakes). */
static void between_pieces(void)
{
    struct timespec pause = {0, 1000};
    nanosleep(&pause, NULL);
}

/* 1 when a piece has done enough: its entries, or half of the undo log. */
static int piece_done(const sessid_table *t, size_t done)
{
    if (t->quick == NULL)
        return 0;
    return done >= PIECE_ENTRIES
           || t->undo.records * 2 >= t->file.undo_records;
}

struct piece {
    size_t done;
    double before;              /* clear: drops entries last used at or before this time */
};

static int purge_piece(sessid_table *t, double now, void *args)
{
    struct piece *p = args;
    struct head *h = t->h;
    p->done = 0;
    while (!piece_done(t, p->done) && !t->broken && h->oldest != NIL
           && is_expired(t, entry_at(t, h->oldest), now)) {
        release_slot(t, h->oldest);
        h->stats[SESSID_STAT_EXPIRED]++;
        p->done++;
    }
    return SESSID_OK;
}

/* Reclaims expired entries, a piece at a time; *reclaimed counts them. */
static int purge_all(sessid_table *t, double now, size_t *reclaimed)
{
    *reclaimed = 0;
    for (;;) {
        struct piece p = {0};
        int rc = sessid_table_run_locked(t, now, SESSID_LOCK_REQUIRED, purge_piece, &p);
        if (rc != SESSID_OK)
            return rc;
        *reclaimed += p.done;
        if (t->quick == NULL || p.done == 0)
            return SESSID_OK;
        between_pieces();
    }
}

int sessid_table_purge(sessid_table *t, double now, size_t *reclaimed)
{
    return purge_all(t, now, reclaimed);
}

static int read_count(sessid_table *t, double now, void *args)
{
    (void)now;
    *(size_t *)args = t->h->count;
    return SESSID_OK;
}

int sessid_table_live(sessid_table *t, double now, size_t *live)
{
    size_t reclaimed;
    int rc = purge_all(t, now, &reclaimed);
    if (rc == SESSID_OK)
        rc = sessid_table_run_locked(t, now, SESSID_LOCK_REQUIRED, read_count, live);
    return rc;
}

static int clear_piece(sessid_table *t, double now, void *args)
{
    (void)now;
    struct piece *p = args;
    struct head *h = t->h;
    p->done = 0;
    if (t->quick == NULL) {
        sessid_table_drop_arrays(t);
        h->count = 0;
        h->oldest = h->newest = NIL;
        return SESSID_OK;
    }
    while (!piece_done(t, p->done) && !t->broken && h->oldest != NIL
           && entry_at(t, h->oldest)->last_use <= p->before) {
        release_slot(t, h->oldest);
        p->done++;
    }
    return SESSID_OK;
}

static int read_clock(sessid_table *t, double now, void *args)
{
    (void)t;
    *(double *)args = now;
    return SESSID_OK;
}

int sessid_table_clear(sessid_table *t)
{
    struct piece p = {0};
    int rc = sessid_table_run_locked(t, -INFINITY, SESSID_LOCK_REQUIRED, read_clock, &p.before);
    while (rc == SESSID_OK) {
        rc = sessid_table_run_locked(t, -INFINITY, SESSID_LOCK_REQUIRED, clear_piece, &p);
        if (t->quick == NULL || p.done == 0)
            break;
        between_pieces();
    }
    return rc;
}
