/* The sliding-TTL table, in private memory or in a shared file: inline slots with linear probing,
 * a use-order list for expiry and LRU, and, for a shared table, the repair that follows the death
 * of a process inside it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "table.h"
#include "table_testing.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "lock.h"
#include "shared.h"
#include "status.h"

/* Entries live in the slots of one open-addressing table (linear probing, backward-shift deletion),
 * so a hit reads one cache line: digest, id and expiry together. The use-order list links slots by
 * number; an entry that moves (deletion shifts its neighbours back) fixes its neighbours' links.
 *
 * In a shared table a process may die between any two stores. The stores are ordered so that every
 * slot whose id reads as a version 4 UUID holds a whole entry: an id is written last, in two halves
 * with the half holding the version nibble last, and cleared first. What a death can leave behind
 * (an entry a lookup cannot reach, a copy of an entry, a broken list or count) the next process to
 * take the lock repairs from the slots alone. */

#define NIL UINT32_MAX
#define MIN_SLOTS 64
#define RECLAIM_PER_CALL 2
#define MAX_LOAD 0.85       /* grow beyond 85% full ... */
#define GROWTH 1.2          /* ... by 20%: it stays at least 70% full, <= 91 bytes an entry */

struct entry {
    uint8_t digest[SESSID_DIGEST_LEN];
    uint8_t id[SESSID_ID_LEN];          /* a version 4 UUID; its first half zero in an empty slot */
    double last_use;                    /* expires at last_use + ttl */
    uint32_t older, newer;              /* neighbours in the use-order list, NIL at the ends */
};

_Static_assert(sizeof(struct entry) == 64, "an entry is one cache line");

/* The table's state; a shared table keeps it in its file. */
struct head {
    double ttl;
    uint64_t max_entries;
    double clock;                       /* the latest `now` seen */
    uint64_t seed[4];                   /* keys the slot hash, so no one can aim keys at one slot */
    uint64_t capacity;
    uint64_t count;
    uint32_t oldest, newest;
    uint64_t stats[SESSID_STAT_COUNT];
};

/* A shared table lets a hit on an entry already used at the same instant (the coarse clock's tick)
 * answer without its lock: such a hit would change nothing but a counter. It reads the entry under
 * a sequence count, odd while a holder of the lock may be changing slots, and counts itself in one
 * of several counters picked by thread, so that processes hammering one table share no cache line
 * on that path. */
#define QUICK_HIT_COUNTERS 64

struct quick_hits {
    alignas(64) _Atomic uint64_t seq;
    alignas(64) struct {
        _Atomic uint64_t hits;
        char pad[56];
    } counters[QUICK_HIT_COUNTERS];
};

struct shared_state {
    struct head head;
    struct quick_hits quick;
};

_Static_assert(sizeof(struct shared_state) <= SESSID_SHARED_STATE_SIZE, "it fits the file's room");

struct sessid_table {
    sessid_lock lock;
    struct head *h;                     /* &own, or in the shared file */
    struct quick_hits *quick;           /* a shared table's, in its file; NULL for a private one */
    struct entry *slots;
    _Atomic(struct entry *) prefetch_slots;     /* copies of slots and capacity for the lock-free */
    atomic_size_t prefetch_capacity;            /* prefetch hint; they may be out of date */
    sessid_shared_file file;            /* a shared table's mapping; base is NULL for a private one */
    struct head own;
};

static int is_shared(const sessid_table *t)
{
    return t->file.base != NULL;
}

/* ---- fault injection (debug builds): a process killed between two steps of a mutation ---- */

#ifdef SESSID_FAULT_INJECTION
static atomic_long fault_countdown;
static atomic_int fault_ends_thread;

void sessid_table_kill_after(long steps)
{
    atomic_store(&fault_ends_thread, 0);
    atomic_store(&fault_countdown, steps);
}

void sessid_table_end_thread_after(long steps)
{
    atomic_store(&fault_ends_thread, 1);
    atomic_store(&fault_countdown, steps);
}

static void step(void)
{
    if (atomic_load_explicit(&fault_countdown, memory_order_relaxed) > 0
        && atomic_fetch_sub(&fault_countdown, 1) == 1) {
        if (atomic_load(&fault_ends_thread))
            pthread_exit(NULL);
        raise(SIGKILL);
    }
}
#else
static void step(void)
{
}
#endif

/* ---- counters (under the lock) ---- */

/* Takes the lock, repairing the table first if the last holder died holding it. Returns 0, or
 * SESSID_ESTATE for a shared lock beyond use (the lock is not held then). */
static void repair(sessid_table *t);

static int lock_table(sessid_table *t)
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
        repair(t);
        sessid_lock_repaired(&t->lock);
    }
    return SESSID_OK;
}

static void unlock_table(sessid_table *t)
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
    if ((unsigned)stat >= SESSID_STAT_COUNT || lock_table(t) != SESSID_OK)
        return;
    t->h->stats[stat]++;
    unlock_table(t);
}

void sessid_table_stats(sessid_table *t, sessid_stats *out)
{
    memset(out, 0, sizeof *out);
    if (lock_table(t) != SESSID_OK)
        return;
    memcpy(out->counters, t->h->stats, sizeof out->counters);
    for (int i = 0; t->quick != NULL && i < QUICK_HIT_COUNTERS; i++)
        out->counters[SESSID_STAT_HITS] +=
            atomic_load_explicit(&t->quick->counters[i].hits, memory_order_relaxed);
    unlock_table(t);
}

/* ---- slots ---- */

#ifdef __SIZEOF_INT128__
__extension__ typedef unsigned __int128 wide_product;

static uint64_t mix(uint64_t a, uint64_t b)
{
    wide_product product = (wide_product)a * b;
    return (uint64_t)product ^ (uint64_t)(product >> 64);
}

static size_t scale(uint64_t h, size_t capacity)
{
    return (size_t)(((wide_product)h * capacity) >> 64);
}
#else
static uint64_t mix(uint64_t a, uint64_t b)
{
    uint64_t h = (a ^ (b >> 29)) * 0xbf58476d1ce4e5b9u;
    h ^= (h >> 31) ^ b;
    return h * 0x94d049bb133111ebu;
}

static size_t scale(uint64_t h, size_t capacity)
{
    return (size_t)(h % capacity);
}
#endif

/* The first slot to try for digest in a table of `capacity` slots. */
static size_t home_of(const sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN], size_t capacity)
{
    const uint64_t *seed = t->h->seed;
    uint64_t w[4];
    memcpy(w, digest, sizeof w);
    uint64_t h = mix(w[0] ^ seed[0], w[1] ^ seed[1]) ^ mix(w[2] ^ seed[2], w[3] ^ seed[3]);
    return scale(h, capacity);
}

static size_t home_slot(const sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN])
{
    return home_of(t, digest, t->h->capacity);
}

static size_t next_slot(size_t slot, size_t capacity)
{
    return slot + 1 == capacity ? 0 : slot + 1;
}

static int occupied(const struct entry *e)
{
    return sessid_id_is_v4(e->id);
}

/* Writes id into e, the half holding the version nibble last: a slot whose id reads as version 4
 * holds a whole entry, whenever a process dies. */
static void commit_id(struct entry *e, const uint8_t id[SESSID_ID_LEN])
{
    memcpy(e->id + 8, id + 8, 8);
    atomic_signal_fence(memory_order_seq_cst);
    memcpy(e->id, id, 8);
    atomic_signal_fence(memory_order_seq_cst);
}

/* Empties slot e: first its id's version half, so it stops counting at once, then the rest. */
static void wipe(struct entry *e)
{
    memset(e->id, 0, 8);
    atomic_signal_fence(memory_order_seq_cst);
    memset(e, 0, sizeof *e);
}

/* The slot holding digest, or NIL. */
static uint32_t find_slot(const sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN])
{
    size_t capacity = t->h->capacity;
    if (capacity == 0)
        return NIL;
    for (size_t slot = home_slot(t, digest);; slot = next_slot(slot, capacity)) {
        const struct entry *e = &t->slots[slot];
        if (!occupied(e))
            return NIL;
        if (memcmp(e->digest, digest, SESSID_DIGEST_LEN) == 0)
            return (uint32_t)slot;
    }
}

/* The counter this thread counts its quick hits in. Threads of one process, and processes, mostly
 * land on different ones; a forked child keeps its parent's, which costs only some sharing. */
static _Atomic uint64_t *quick_hit_counter(struct quick_hits *quick)
{
    static _Thread_local int mine = -1;
    if (mine < 0) {
        uint64_t h = (uint64_t)(uintptr_t)&mine * 0x9e3779b97f4a7c15u;
        mine = (int)(h >> 58);          /* 64 counters */
    }
    return &quick->counters[mine].hits;
}

/* A hit without the lock, on a shared table: returns 1, with id set, when digest's entry was last
 * used at `now` and `now` is the table's time, so that a locked hit would only count it (its expiry
 * and its place among the entries used at this instant stay as they are). 0: take the lock. The
 * entry is read as it may be changing and trusted only if the sequence count did not move. */
static int quick_hit(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN], double now,
                     uint8_t id[SESSID_ID_LEN])
{
    struct quick_hits *quick = t->quick;
    uint64_t seq = atomic_load_explicit(&quick->seq, memory_order_acquire);
    if ((seq & 1) != 0 || now < t->h->clock)
        return 0;
    size_t capacity = t->h->capacity;
    size_t slot = home_slot(t, digest);
    struct entry e;
    for (size_t probes = 0; probes < capacity; probes++, slot = next_slot(slot, capacity)) {
        memcpy(&e, &t->slots[slot], sizeof e);
        if (!occupied(&e))
            return 0;
        if (memcmp(e.digest, digest, SESSID_DIGEST_LEN) == 0)
            break;
    }
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&quick->seq, memory_order_relaxed) != seq
        || memcmp(e.digest, digest, SESSID_DIGEST_LEN) != 0 || e.last_use != now)
        return 0;
    memcpy(id, e.id, SESSID_ID_LEN);
    atomic_fetch_add_explicit(quick_hit_counter(quick), 1, memory_order_relaxed);
    return 1;
}

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
    int rc = lock_table(t);
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

/* ---- repair: a shared table after a process died holding its lock ----
 * Works from the slots alone, in place, with no allocation: empties every slot that holds no whole
 * entry, moves each entry to where a lookup finds it and drops second copies (a move leaves two
 * for a moment, both with the same id), then rebuilds the use-order list from the times of last use
 * (sorted in the file's scratch area), the count and the table's time. No id changes. */

static int is_blank(const struct entry *e)
{
    static const struct entry blank;
    return memcmp(e, &blank, sizeof blank) == 0;
}

/* One pass over every entry, from just after an empty slot; returns how many it moved or dropped. */
static size_t replace_entries(sessid_table *t)
{
    size_t capacity = t->h->capacity, changed = 0, start = 0;
    while (start < capacity && occupied(&t->slots[start]))
        start++;                    /* a shared table has room for max_entries and more: one is empty */
    if (start == capacity)
        return 0;
    for (size_t i = 1; i <= capacity; i++) {
        size_t s = (start + i) % capacity;
        struct entry *e = &t->slots[s];
        if (!occupied(e))
            continue;
        for (size_t p = home_slot(t, e->digest); p != s; p = next_slot(p, capacity)) {
            struct entry *q = &t->slots[p];
            if (!occupied(q)) {
                memcpy(q->digest, e->digest, SESSID_DIGEST_LEN);
                q->last_use = e->last_use;
                step();
                commit_id(q, e->id);
                step();
            } else if (memcmp(q->digest, e->digest, SESSID_DIGEST_LEN) != 0) {
                continue;
            }
            wipe(e);                            /* moved to p, or a second copy of the one at p */
            step();
            changed++;
            break;
        }
    }
    return changed;
}

static int older_than(const sessid_table *t, uint32_t a, uint32_t b)
{
    double ta = t->slots[a].last_use, tb = t->slots[b].last_use;
    return ta < tb || (ta == tb && a < b);
}

static void sift_down(const sessid_table *t, uint32_t *heap, size_t root, size_t n)
{
    for (size_t child; (child = 2 * root + 1) < n; root = child) {
        if (child + 1 < n && older_than(t, heap[child], heap[child + 1]))
            child++;
        if (!older_than(t, heap[root], heap[child]))
            return;
        uint32_t swap = heap[root];
        heap[root] = heap[child];
        heap[child] = swap;
    }
}

/* Sorts slot numbers from the least to the most recently used (heapsort: no memory of its own). */
static void sort_by_use(const sessid_table *t, uint32_t *order, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(t, order, i, n);
    for (size_t end = n; end-- > 1;) {
        uint32_t swap = order[0];
        order[0] = order[end];
        order[end] = swap;
        sift_down(t, order, 0, end);
    }
}

static void repair(sessid_table *t)
{
    struct head *h = t->h;
    size_t capacity = h->capacity;
    for (size_t s = 0; s < capacity; s++) {
        struct entry *e = &t->slots[s];
        if ((!occupied(e) || !isfinite(e->last_use)) && !is_blank(e))
            wipe(e);
    }
    step();
    while (replace_entries(t) > 0)
        ;
    uint32_t *order = t->file.scratch;
    size_t n = 0;
    for (size_t s = 0; s < capacity; s++)
        if (occupied(&t->slots[s]))
            order[n++] = (uint32_t)s;
    sort_by_use(t, order, n);
    step();
    for (size_t i = 0; i < n; i++) {
        struct entry *e = &t->slots[order[i]];
        e->older = i > 0 ? order[i - 1] : NIL;
        e->newer = i + 1 < n ? order[i + 1] : NIL;
        if (e->last_use > h->clock)
            h->clock = e->last_use;
    }
    h->oldest = n > 0 ? order[0] : NIL;
    h->newest = n > 0 ? order[n - 1] : NIL;
    h->count = n;
    step();
    assert(sessid_table_check(t) == 0);
}

int sessid_table_check(sessid_table *t)
{
    const struct head *h = t->h;
    size_t entries = 0;
    for (size_t s = 0; s < h->capacity; s++) {
        const struct entry *e = &t->slots[s];
        if (!occupied(e)) {
            if (!is_blank(e))
                return -1;                      /* an empty slot with something left in it */
            continue;
        }
        entries++;
        if (find_slot(t, e->digest) != s)
            return -2;                          /* a lookup does not find it, or finds a copy */
    }
    if (entries != h->count)
        return -3;
    size_t listed = 0;
    uint32_t prev = NIL;
    for (uint32_t s = h->oldest; s != NIL; s = t->slots[s].newer) {
        if (s >= h->capacity || !occupied(&t->slots[s]) || t->slots[s].older != prev
            || ++listed > entries)
            return -4;                          /* the list is broken */
        if (prev != NIL && t->slots[prev].last_use > t->slots[s].last_use)
            return -5;                          /* out of order */
        prev = s;
    }
    if (listed != entries || h->newest != prev)
        return -6;
    return 0;
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
    sessid_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
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
    if (t->quick != NULL && quick_hit(t, digest, now, id)) {
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
    unlock_table(t);
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
    unlock_table(t);
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
    unlock_table(t);
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
    unlock_table(t);
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
    unlock_table(t);
    return reclaimed;
}

size_t sessid_table_live(sessid_table *t, double now)
{
    if (enter(t, &now) != SESSID_OK)
        return 0;
    reclaim_expired(t, now, SIZE_MAX);
    size_t live = t->h->count;
    unlock_table(t);
    return live;
}

void sessid_table_clear(sessid_table *t)
{
    if (lock_table(t) != SESSID_OK)
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
    unlock_table(t);
}

size_t sessid_table_footprint(sessid_table *t)
{
    if (lock_table(t) != SESSID_OK)
        return 0;
    size_t size = t->h->capacity * sizeof *t->slots;
    unlock_table(t);
    return size;
}

int sessid_table_dump(sessid_table *t, uint8_t **out, size_t *len)
{
    int rc = lock_table(t);
    if (rc != SESSID_OK)
        return rc;
    size_t total = t->h->capacity * sizeof *t->slots;
    uint8_t *buf = malloc(total > 0 ? total : 1);
    if (buf != NULL && total > 0)
        memcpy(buf, t->slots, total);
    unlock_table(t);
    if (buf == NULL)
        return SESSID_ENOMEM;
    *out = buf;
    *len = total;
    return SESSID_OK;
}
