/* The in-process sliding-TTL table: inline slots with linear probing, a use-order list for expiry
 * and LRU, and the lock that guards it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* syscall() */
#endif
#include "table.h"
#include "table_testing.h"

#include <assert.h>
#include <linux/futex.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

/* Entries live in the slots of one open-addressing table (linear probing, backward-shift deletion),
 * so a hit reads one cache line: digest, id and expiry together. The use-order list links slots by
 * number; an entry that moves (deletion shifts its neighbours back) fixes its neighbours' links. */

#define NIL UINT32_MAX
#define MIN_SLOTS 64
#define RECLAIM_PER_CALL 2
#define MAX_LOAD 0.85       /* grow beyond 85% full ... */
#define GROWTH 1.2          /* ... by 20%: it stays at least 70% full, <= 91 bytes an entry */

struct entry {
    uint8_t digest[SESSID_DIGEST_LEN];
    uint8_t id[SESSID_ID_LEN];          /* a version 4 UUID; all zero in an empty slot */
    double last_use;                    /* expires at last_use + ttl */
    uint32_t older, newer;              /* neighbours in the use-order list, NIL at the ends */
};

_Static_assert(sizeof(struct entry) == 64, "an entry is one cache line");

struct sessid_table {
    atomic_int lock;
    double ttl;
    uint32_t max_entries;
    double clock;                       /* the latest `now` seen */
    uint64_t seed[4];                   /* keys the slot hash, so no one can aim keys at one slot */
    struct entry *slots;
    size_t capacity;
    size_t count;
    _Atomic(struct entry *) prefetch_slots;     /* copies of slots and capacity for the lock-free */
    atomic_size_t prefetch_capacity;            /* prefetch hint; they may be out of date */
    uint32_t oldest, newest;
    uint64_t stats[SESSID_STAT_COUNT];
    sessid_table *registry_prev, *registry_next;
};

/* ---- the lock ----
 * Held only for O(1) work, except while purging, clearing or growing. Its release is a plain store:
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

static void lock_table(sessid_table *t)
{
    long nap_ns = FIRST_NAP_NS;
    int spins = 0;
    while (atomic_exchange_explicit(&t->lock, 1, memory_order_acquire) != 0) {
        while (atomic_load_explicit(&t->lock, memory_order_relaxed) != 0) {
            if (spins++ < SPINS) {
                cpu_relax();
                continue;
            }
            struct timespec nap = {0, nap_ns};
            syscall(SYS_futex, &t->lock, FUTEX_WAIT_PRIVATE, 1, &nap, NULL, 0);
            nap_ns = nap_ns * 2 < LONGEST_NAP_NS ? nap_ns * 2 : LONGEST_NAP_NS;
        }
    }
}

static void unlock_table(sessid_table *t)
{
    atomic_store_explicit(&t->lock, 0, memory_order_release);
}

/* ---- every live table, so fork() can take all their locks ---- */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static sessid_table *registry_head;
static int atfork_registered;

static void before_fork(void)
{
    pthread_mutex_lock(&registry_lock);
    for (sessid_table *t = registry_head; t != NULL; t = t->registry_next)
        lock_table(t);
}

static void after_fork_in_parent(void)
{
    for (sessid_table *t = registry_head; t != NULL; t = t->registry_next)
        unlock_table(t);
    pthread_mutex_unlock(&registry_lock);
}

/* The child has one thread, the one that forked; it holds every lock, so they are fresh again. */
static void after_fork_in_child(void)
{
    for (sessid_table *t = registry_head; t != NULL; t = t->registry_next)
        unlock_table(t);
    pthread_mutex_init(&registry_lock, NULL);
}

static int registry_add(sessid_table *t)
{
    if (pthread_mutex_lock(&registry_lock) != 0)
        return SESSID_ESTATE;
    if (!atfork_registered) {
        if (pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child) != 0) {
            pthread_mutex_unlock(&registry_lock);
            return SESSID_ENOMEM;
        }
        atfork_registered = 1;
    }
    t->registry_prev = NULL;
    t->registry_next = registry_head;
    if (registry_head != NULL)
        registry_head->registry_prev = t;
    registry_head = t;
    pthread_mutex_unlock(&registry_lock);
    return SESSID_OK;
}

static void registry_remove(sessid_table *t)
{
    pthread_mutex_lock(&registry_lock);
    if (t->registry_prev != NULL)
        t->registry_prev->registry_next = t->registry_next;
    else
        registry_head = t->registry_next;
    if (t->registry_next != NULL)
        t->registry_next->registry_prev = t->registry_prev;
    pthread_mutex_unlock(&registry_lock);
}

/* ---- counters (under the lock) ---- */

void sessid_table_count(sessid_table *t, enum sessid_stat stat)
{
    if ((unsigned)stat >= SESSID_STAT_COUNT)
        return;
    lock_table(t);
    t->stats[stat]++;
    unlock_table(t);
}

void sessid_table_stats(sessid_table *t, sessid_stats *out)
{
    lock_table(t);
    memcpy(out->counters, t->stats, sizeof out->counters);
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
    uint64_t w[4];
    memcpy(w, digest, sizeof w);
    uint64_t h = mix(w[0] ^ t->seed[0], w[1] ^ t->seed[1]) ^ mix(w[2] ^ t->seed[2], w[3] ^ t->seed[3]);
    return scale(h, capacity);
}

static size_t home_slot(const sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN])
{
    return home_of(t, digest, t->capacity);
}

static size_t next_slot(size_t slot, size_t capacity)
{
    return slot + 1 == capacity ? 0 : slot + 1;
}

static int occupied(const struct entry *e)
{
    return sessid_id_is_v4(e->id);
}

/* The slot holding digest, or NIL. */
static uint32_t find_slot(const sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN])
{
    if (t->capacity == 0)
        return NIL;
    for (size_t slot = home_slot(t, digest);; slot = next_slot(slot, t->capacity)) {
        const struct entry *e = &t->slots[slot];
        if (!occupied(e))
            return NIL;
        if (memcmp(e->digest, digest, SESSID_DIGEST_LEN) == 0)
            return (uint32_t)slot;
    }
}

/* ---- the use-order list ---- */

static void unlink_slot(sessid_table *t, uint32_t slot)
{
    struct entry *e = &t->slots[slot];
    if (e->older != NIL)
        t->slots[e->older].newer = e->newer;
    else
        t->oldest = e->newer;
    if (e->newer != NIL)
        t->slots[e->newer].older = e->older;
    else
        t->newest = e->older;
}

static void link_newest(sessid_table *t, uint32_t slot)
{
    struct entry *e = &t->slots[slot];
    e->older = t->newest;
    e->newer = NIL;
    if (t->newest != NIL)
        t->slots[t->newest].newer = slot;
    else
        t->oldest = slot;
    t->newest = slot;
}

static void touch(sessid_table *t, uint32_t slot, double now)
{
    assert(now >= t->slots[slot].last_use);
    t->slots[slot].last_use = now;
    if (t->newest != slot) {
        unlink_slot(t, slot);
        link_newest(t, slot);
    }
}

/* Moves the entry at `from` into the empty slot `to`, and points its neighbours at it. */
static void move_entry(sessid_table *t, uint32_t from, uint32_t to)
{
    struct entry *e = &t->slots[to];
    *e = t->slots[from];
    if (e->older != NIL)
        t->slots[e->older].newer = to;
    else
        t->oldest = to;
    if (e->newer != NIL)
        t->slots[e->newer].older = to;
    else
        t->newest = to;
}

/* ---- entries ---- */

static int is_expired(const sessid_table *t, const struct entry *e, double now)
{
    return e->last_use + t->ttl <= now;
}

/* Removes the entry at slot. Backward-shift deletion: the entries after it in its probe run move
 * back where they may, so no tombstones are left and lookups stay short. */
static void release_slot(sessid_table *t, uint32_t slot)
{
    assert(slot < t->capacity && occupied(&t->slots[slot]) && t->count > 0);
    unlink_slot(t, slot);
    t->count--;
    size_t hole = slot;
    for (size_t next = next_slot(slot, t->capacity);; next = next_slot(next, t->capacity)) {
        const struct entry *e = &t->slots[next];
        if (!occupied(e))
            break;
        size_t home = home_slot(t, e->digest);
        /* The entry may move back into the hole unless its home lies in (hole, next]. */
        int home_after_hole = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next);
        if (!home_after_hole) {
            move_entry(t, (uint32_t)next, (uint32_t)hole);
            hole = next;
        }
    }
    memset(&t->slots[hole], 0, sizeof t->slots[hole]);
}

static size_t reclaim_expired(sessid_table *t, double now, size_t budget)
{
    size_t done = 0;
    while (done < budget && t->oldest != NIL && is_expired(t, &t->slots[t->oldest], now)) {
        release_slot(t, t->oldest);
        t->stats[SESSID_STAT_EXPIRED]++;
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

/* Wipes (digests and ids do not linger in freed memory) and frees a slot array. */
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
    atomic_store_explicit(&t->prefetch_capacity, t->capacity, memory_order_relaxed);
}

/* Re-places every entry in a table of `capacity` slots, keeping the use order. Old slots are read
 * in order, so the new table is written almost in order too; the links are then translated through
 * a map of old slot to new slot. The table is unchanged on failure. */
static int resize(sessid_table *t, size_t capacity)
{
    struct entry *slots = alloc_slots(capacity);
    uint32_t *moved_to = malloc((t->capacity > 0 ? t->capacity : 1) * sizeof *moved_to);
    if (slots == NULL || moved_to == NULL) {
        free_slots(slots, capacity);
        free(moved_to);
        return SESSID_ENOMEM;
    }
    for (size_t old = 0; old < t->capacity; old++) {
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
    if (t->oldest != NIL) {
        t->oldest = moved_to[t->oldest];
        t->newest = moved_to[t->newest];
    }
    free(moved_to);
    free_slots(t->slots, t->capacity);
    t->slots = slots;
    t->capacity = capacity;
    publish_for_prefetch(t);
    return SESSID_OK;
}

/* Room for one more entry within MAX_LOAD. */
static int reserve_one(sessid_table *t)
{
    if ((double)(t->count + 1) <= MAX_LOAD * (double)t->capacity)
        return SESSID_OK;
    uint64_t limit = t->max_entries != 0 ? t->max_entries : SESSID_TABLE_LIMIT;
    if (t->count >= limit)
        return SESSID_EFULL;
    size_t grown = t->capacity < MIN_SLOTS ? MIN_SLOTS : (size_t)ceil((double)t->capacity * GROWTH);
    size_t enough = (size_t)ceil((double)limit / MAX_LOAD) + 1;
    return resize(t, grown < enough ? grown : enough);
}

/* Adds an entry for digest (known to be absent) with id, used now, as the most recent. Returns its
 * slot through *slot; the table is unchanged on failure. */
static int insert_entry(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN],
                        const uint8_t id[SESSID_ID_LEN], double now, uint32_t *slot)
{
    if (t->max_entries != 0 && t->count >= t->max_entries) {
        release_slot(t, t->oldest);
        t->stats[SESSID_STAT_EVICTED]++;
    } else {
        int rc = reserve_one(t);
        if (rc != SESSID_OK)
            return rc;
    }
    assert(find_slot(t, digest) == NIL);
    assert((double)(t->count + 1) <= MAX_LOAD * (double)t->capacity + 1);
    size_t s = home_slot(t, digest);
    while (occupied(&t->slots[s]))
        s = next_slot(s, t->capacity);
    struct entry *e = &t->slots[s];
    memcpy(e->digest, digest, SESSID_DIGEST_LEN);
    memcpy(e->id, id, SESSID_ID_LEN);
    e->last_use = now;
    link_newest(t, (uint32_t)s);
    t->count++;
    *slot = (uint32_t)s;
    return SESSID_OK;
}

/* Takes the lock and brings the table's time up to *now, which then holds the time to use. */
static void enter(sessid_table *t, double *now)
{
    lock_table(t);
    if (*now > t->clock)
        t->clock = *now;
    *now = t->clock;
}

/* The live entry for digest, or NIL. On the way, reclaims a few expired entries from the old end,
 * and an expired one still in the table for digest. */
static uint32_t find_live(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN], double now)
{
    reclaim_expired(t, now, RECLAIM_PER_CALL);
    uint32_t slot = find_slot(t, digest);
    if (slot != NIL && is_expired(t, &t->slots[slot], now)) {
        release_slot(t, slot);
        t->stats[SESSID_STAT_EXPIRED]++;
        slot = NIL;
    }
    return slot;
}

/* ---- the public operations ---- */

int sessid_table_new(double ttl, uint64_t max_entries, sessid_table **out)
{
    *out = NULL;
    if (!isfinite(ttl) || ttl <= 0 || max_entries > SESSID_TABLE_LIMIT)
        return SESSID_EINVAL;
    sessid_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        return SESSID_ENOMEM;
    uint8_t seed[sizeof t->seed];
    if (sessid_id_new(seed) != SESSID_OK || sessid_id_new(seed + SESSID_ID_LEN) != SESSID_OK) {
        free(t);
        return SESSID_ERANDOM;
    }
    memcpy(t->seed, seed, sizeof seed);
    atomic_init(&t->lock, 0);
    atomic_init(&t->prefetch_slots, NULL);
    atomic_init(&t->prefetch_capacity, 0);
    t->ttl = ttl;
    t->max_entries = (uint32_t)max_entries;
    t->clock = -INFINITY;
    t->oldest = NIL;
    t->newest = NIL;
    int rc = registry_add(t);
    if (rc != SESSID_OK) {
        free(t);
        return rc;
    }
    *out = t;
    return SESSID_OK;
}

void sessid_table_free(sessid_table *t)
{
    if (t == NULL)
        return;
    registry_remove(t);
    free_slots(t->slots, t->capacity);
    free(t);
}

int sessid_table_get_or_create(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN],
                               double now, uint8_t id[SESSID_ID_LEN], int *created)
{
    enter(t, &now);
    uint32_t slot = find_live(t, digest, now);
    int rc = SESSID_OK;
    if (slot != NIL) {
        touch(t, slot, now);
        memcpy(id, t->slots[slot].id, SESSID_ID_LEN);
        t->stats[SESSID_STAT_HITS]++;
        if (created != NULL)
            *created = 0;
    } else {
        rc = sessid_id_new(id);
        if (rc == SESSID_OK)
            rc = insert_entry(t, digest, id, now, &slot);
        if (rc == SESSID_OK) {
            t->stats[SESSID_STAT_MISSES]++;
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
    enter(t, &now);
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
    enter(t, &now);
    uint32_t slot = find_live(t, digest, now);
    int rc = SESSID_OK;
    if (slot == NIL) {
        rc = insert_entry(t, digest, id, now, &slot);
    } else {
        memcpy(t->slots[slot].id, id, SESSID_ID_LEN);
        touch(t, slot, now);
    }
    unlock_table(t);
    return rc;
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
    enter(t, &now);
    size_t reclaimed = reclaim_expired(t, now, SIZE_MAX);
    unlock_table(t);
    return reclaimed;
}

size_t sessid_table_live(sessid_table *t, double now)
{
    enter(t, &now);
    reclaim_expired(t, now, SIZE_MAX);
    size_t live = t->count;
    unlock_table(t);
    return live;
}

void sessid_table_clear(sessid_table *t)
{
    lock_table(t);
    free_slots(t->slots, t->capacity);
    t->slots = NULL;
    t->capacity = t->count = 0;
    t->oldest = t->newest = NIL;
    publish_for_prefetch(t);
    unlock_table(t);
}

size_t sessid_table_footprint(sessid_table *t)
{
    lock_table(t);
    size_t size = t->capacity * sizeof *t->slots;
    unlock_table(t);
    return size;
}

int sessid_table_dump(sessid_table *t, uint8_t **out, size_t *len)
{
    lock_table(t);
    size_t total = t->capacity * sizeof *t->slots;
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
