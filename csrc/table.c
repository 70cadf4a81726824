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

/* The most slots an array has, slots_for(SESSID_TABLE_LIMIT), leave bit 31 of a slot number free
 * to name the array, and never make NIL. */
_Static_assert(SESSID_TABLE_LIMIT * 100 / 85 + 2 < ARRAY_BIT - 1, "slot numbers fit in 31 bits");

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
    step();
    if (e->newer != NIL)
        entry_at(t, e->newer)->older = e->older;
    else
        h->newest = e->older;
    step();
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
    step();
    h->newest = slot;
    step();
}

static void touch(sessid_table *t, uint32_t slot, double now)
{
    struct entry *e = entry_at(t, slot);
    assert(now >= e->last_use);
    e->last_use = now;
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
    const struct entry *src = entry_at(t, from);
    struct entry *e = entry_at(t, to);
    memcpy(e->digest, src->digest, SESSID_DIGEST_LEN);
    e->last_use = src->last_use;
    e->older = src->older;
    e->newer = src->newer;
    step();
    commit_id(e, src->id);
    step();
    if (e->older != NIL)
        entry_at(t, e->older)->newer = to;
    else
        h->oldest = to;
    step();
    if (e->newer != NIL)
        entry_at(t, e->newer)->older = to;
    else
        h->newest = to;
    step();
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
    step();
    wipe(&slots[hole]);
    step();
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
            step();
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

/* ---- slot arrays of a private table ---- */

/* A piece of memory, the table's `piece` bytes unless a test sets it (sessid_table_growth_pieces).
 * Slot arrays of at least a piece get pages of their own from the kernel, and give them back when
 * freed: from malloc's heap, the arrays a table has grown out of would stay resident. A growth makes
 * the new array's pages and gives back the old array's a piece at a time, at addresses aligned to
 * it: work any call can pay for (the kernel frees small pages one by one, 2 MiB of them in some
 * 60 us). A piece given back is unmapped, page tables and all: unmapping the whole array at the end
 * would walk all of them, some 100 us for 60 MiB. */
#define PIECE ((size_t)64 << 10)

static struct entry *alloc_slots(size_t capacity, size_t piece)
{
    size_t bytes = capacity * sizeof(struct entry);
    if (allocation_fails())
        return NULL;
    if (bytes < piece)
        return calloc(capacity, sizeof(struct entry));
    void *pages = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pages == MAP_FAILED)
        return NULL;
    /* Filled while the table grows, by inserts: small pages, each a short fault. A huge page's first
     * touch clears 2 MiB at once, a stall of hundreds of microseconds for the insert that makes it.
     * A hint only (the kernel may have no transparent huge pages), so the outcome is not checked;
     * end_growth asks for huge pages once the array is full. */
    (void)madvise(pages, bytes, MADV_NOHUGEPAGE);
    return pages;
}

/* Gives a slot array back; every slot must be blank already. */
static void release_slots(struct entry *slots, size_t capacity, size_t piece)
{
    if (slots == NULL)
        return;
    size_t bytes = capacity * sizeof(struct entry);
    if (bytes < piece)
        free(slots);
    else
        munmap(slots, bytes);
}

/* Wipes (digests and ids do not linger in freed memory) and frees a private slot array. */
static void free_slots(struct entry *slots, size_t capacity, size_t piece)
{
    if (slots != NULL)
        memset(slots, 0, capacity * sizeof(struct entry));
    release_slots(slots, capacity, piece);
}

/* Where an array would start were the slot numbers of its slots indexes (the slot number of its
 * slot 0 is 0 or 2^31): unsigned arithmetic, which wraps, and entry_at's product wraps back. */
static uintptr_t biased(const struct entry *slots, uint32_t bit)
{
    return (uintptr_t)slots - (uintptr_t)bit * sizeof(struct entry);
}

/* Tells entry_at, and the lock-free prefetch, where the arrays are now. */
static void publish_arrays(sessid_table *t)
{
    uint32_t old_bit = t->array_bit ^ ARRAY_BIT;
    t->arrays[t->array_bit >> 31] = biased(t->slots, t->array_bit);
    t->arrays[old_bit >> 31] = biased(t->old.slots, old_bit);
    atomic_store_explicit(&t->prefetch_slots, t->slots, memory_order_relaxed);
    atomic_store_explicit(&t->prefetch_capacity, t->h->capacity, memory_order_relaxed);
}

/* ---- growth of a private table ----
 * A table that must grow makes a new array and keeps the old one until each insert, having added
 * its entry, has moved the entries of the next GROWTH_STEP old slots across (grow_some). Old slots
 * are emptied going down, and an entry lands near the same fraction of the new array as it left
 * (slots are scaled hashes); an insert goes to the old array while the walk is still to pass its
 * place there (free_slot_for). So the new array is written almost in order, its pages made just
 * ahead, and the emptied part of the old one is given back as it goes.
 *
 * Growth starts when an insert would fill the table beyond MAX_LOAD: about MAX_LOAD * C entries in
 * C slots, and GROWTH * C slots after. The next growth needs at least MAX_LOAD * GROWTH * C entries,
 * so about 0.17 * C more inserts (more if entries expire or go meanwhile), and emptying the C old
 * slots takes C / GROWTH_STEP inserts: with any step above 6 a growth ends before the next must
 * begin. Only a table given a smaller step (for tests, sessid_table_growth_step) can catch up with
 * its own growth; it then ends the old one at once. */
#define GROWTH_STEP 64

static uintptr_t align_down(uintptr_t address, size_t piece)
{
    return address & ~((uintptr_t)piece - 1);
}

/* Makes the pages of the piece of the new array below those made, once the walk comes within a
 * piece of them (entries land at about the same fraction of it as they leave the old one): an entry
 * moved into a page not yet there would fault twice (a read maps the zero page, then the write
 * makes the page), and a page made on purpose costs less than one fault. */
static void populate_ahead(sessid_table *t)
{
#ifdef MADV_POPULATE_WRITE
    struct old_array *old = &t->old;
    uintptr_t base = (uintptr_t)t->slots, piece = t->piece;
    uintptr_t next = (uintptr_t)&t->slots[old->next * t->h->capacity / old->capacity];
    if (old->populated >= base + piece && next < old->populated + piece) {
        /* A hint, as the others: where the kernel cannot (before Linux 5.14), pages fault in. */
        (void)madvise((void *)(old->populated - piece), piece, MADV_POPULATE_WRITE);
        old->populated -= piece;
    }
#else
    (void)t;
#endif
}

/* Moves the entry at old slot `from` into the new array and empties the old slot. */
static void move_across(sessid_table *t, size_t from)
{
    struct entry *e = &t->old.slots[from];
    size_t capacity = t->h->capacity;
    size_t to = home_of(t, e->digest, capacity);
    while (occupied(&t->slots[to]))
        to = next_slot(to, capacity);
    move_entry(t, old_slot_number(t, from), slot_number(t, to));
    wipe(e);
}

/* Unmaps the pieces of the old array that its emptied slots cover, but for slot next + 1 and slot
 * 0 (see struct old_array): from next + 2 up to start before the walk wraps round below slot 0, from
 * slot 1 up after (the few slots above start, and the piece they share, go at the end). */
static void release_emptied(sessid_table *t)
{
    struct old_array *old = &t->old;
    if (old->capacity * sizeof(struct entry) < t->piece)
        return;
    size_t from = old->next < old->start ? old->next + 2 : 1;
    uintptr_t emptied = align_down((uintptr_t)&old->slots[from] + t->piece - 1, t->piece);
    /* Wiped already; should the kernel refuse (it may not split the mapping), the piece waits. */
    if (emptied < old->released && munmap((void *)emptied, old->released - emptied) == 0) {
        old->given_back += old->released - emptied;
        old->released = emptied;
    }
}

/* Frees what is left of the old array, whose slots must be blank: not the pieces given back, which
 * other mappings may have taken since. */
static void release_old_array(struct old_array *old, size_t piece)
{
    size_t bytes = old->capacity * sizeof(struct entry);
    if (bytes < piece) {
        release_slots(old->slots, old->capacity, piece);
        return;
    }
    uintptr_t base = (uintptr_t)old->slots, end = base + bytes, after = old->released + old->given_back;
    if (old->released > base)
        munmap(old->slots, old->released - base);
    if (after < end)
        munmap((void *)after, end - after);
}

/* The old array is empty: frees it, and lets the kernel gather the new one into huge pages. */
static void end_growth(sessid_table *t)
{
    struct old_array *old = &t->old;
    release_old_array(old, t->piece);
    memset(old, 0, sizeof *old);
    publish_arrays(t);
    size_t bytes = t->h->capacity * sizeof(struct entry);
    /* A hint, as in alloc_slots: huge pages spare a large table a TLB miss on most lookups. The
     * kernel's khugepaged gathers the pages in its own time, no call waits for it. */
    if (bytes >= t->piece)
        (void)madvise(t->slots, bytes, MADV_HUGEPAGE);
}

/* Empties up to `slots` slots of the old array; ends the growth when none is left. */
static void grow_some(sessid_table *t, size_t slots)
{
    struct old_array *old = &t->old;
    for (; slots > 0 && old->left > 0; slots--, old->left--) {
        if (occupied(&old->slots[old->next]))
            move_across(t, old->next);
        old->next = old->next == 0 ? old->capacity - 1 : old->next - 1;
    }
    if (old->left == 0) {
        end_growth(t);
    } else {
        release_emptied(t);
        populate_ahead(t);
    }
}

/* Makes `slots` (of `capacity` slots, all blank) the table's array, the current one its old array. */
static void begin_growth(sessid_table *t, struct entry *slots, size_t capacity)
{
    struct head *h = t->h;
    struct old_array *old = &t->old;
    assert(!growing(t));
    if (h->capacity > 0) {
        old->slots = t->slots;
        old->capacity = h->capacity;
        old->start = h->capacity - 1;
        while (occupied(&old->slots[old->start]))
            old->start--;           /* at most MAX_LOAD full: there is an empty slot */
        old->next = old->start == 0 ? old->capacity - 1 : old->start - 1;
        old->left = old->capacity - 1;
        old->released = align_down((uintptr_t)&old->slots[old->start + 1], t->piece);
        if (old->released < (uintptr_t)old->slots)
            old->released = (uintptr_t)old->slots;     /* an array smaller than a piece */
        size_t bytes = capacity * sizeof(struct entry);
        old->populated = bytes < t->piece ? 0 : (uintptr_t)slots + bytes / t->piece * t->piece;
        t->array_bit ^= ARRAY_BIT;
    }
    t->slots = slots;
    h->capacity = capacity;
    publish_arrays(t);
}

/* Frees both arrays of a private table, wiped, and leaves it with none. */
static void drop_arrays(sessid_table *t)
{
    struct old_array *old = &t->old;
    if (growing(t)) {
        /* Only the slots not yet emptied can hold entries; the others may be given back already. */
        if (old->next < old->start) {
            memset(old->slots, 0, (old->next + 1) * sizeof(struct entry));
            memset(old->slots + old->start + 1, 0, (old->capacity - old->start - 1) * sizeof(struct entry));
        } else {
            memset(old->slots + old->start + 1, 0, (old->next - old->start) * sizeof(struct entry));
        }
        release_old_array(old, t->piece);
        memset(old, 0, sizeof *old);
    }
    free_slots(t->slots, t->h->capacity, t->piece);
    t->slots = NULL;
    t->h->capacity = 0;
    publish_arrays(t);
}

/* The slots a table needs to hold `limit` entries within MAX_LOAD. */
static size_t slots_for(uint64_t limit)
{
    return (size_t)ceil((double)limit / MAX_LOAD) + 1;
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
    size_t grown = h->capacity < MIN_SLOTS ? MIN_SLOTS : (size_t)ceil((double)h->capacity * GROWTH);
    size_t enough = slots_for(limit);
    size_t capacity = grown < enough ? grown : enough;
    struct entry *slots = alloc_slots(capacity, t->piece);
    if (slots == NULL)
        return SESSID_ENOMEM;
    if (growing(t))
        grow_some(t, SIZE_MAX);     /* see GROWTH_STEP: only with a step below 7 */
    begin_growth(t, slots, capacity);
    return SESSID_OK;
}

/* The empty slot a new entry for digest goes in. While the table grows, that is its old array's
 * slot when the walk has passed neither its first slot there nor the empty slot its probe ends on:
 * the walk moves it across later, into pages made by then. Put straight into the new array, the
 * entry would likely land on a page not made yet and fault twice (a read maps the zero page, then
 * the write makes the page): the larger part of what an insert during a growth used to cost. */
static uint32_t free_slot_for(const sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN])
{
    uint64_t hash = hash_of(t, digest);
    const struct old_array *old = &t->old;
    if (growing(t)) {
        size_t s = scale(hash, old->capacity);
        if (!passed(old, s)) {
            while (occupied(&old->slots[s]))
                s = next_slot(s, old->capacity);
            if (!passed(old, s))
                return old_slot_number(t, s);
        }
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
    step();
    link_newest(t, slot);
    commit_id(e, id);
    step();
    h->count++;
    step();
    if (growing(t))
        grow_some(t, t->growth_step);
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
    publish_arrays(t);
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
        drop_arrays(t);
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
        step();
        for (size_t s = 0; s < h->capacity; s++) {
            if (!is_blank(&t->slots[s])) {
                wipe(&t->slots[s]);
                step();
            }
        }
    } else {
        drop_arrays(t);
        h->count = 0;
        h->oldest = h->newest = NIL;
    }
    sessid_table_unlock(t);
}
