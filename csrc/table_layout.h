/* The memory of a sliding-TTL table: its entries, its state, and the small helpers that read and
 * write slots, shared by table.c (the operations) and repair.c (what a death inside a shared table
 * leaves behind). Not part of the core's contract.
 *
 * Entries live in the slots of one open-addressing table (linear probing, backward-shift deletion),
 * so a hit reads one cache line: digest, id and expiry together. The use-order list links slots by
 * number; an entry that moves (deletion shifts its neighbours back) fixes its neighbours' links.
 *
 * In a shared table a process may die between any two stores. The stores are ordered so that every
 * slot whose id reads as a version 4 UUID holds a whole entry: an id is written last, in two halves
 * with the half holding the version nibble last, and cleared first. What a death can leave behind
 * (an entry a lookup cannot reach, a copy of an entry, a broken list or count) the next process to
 * take the lock repairs from the slots alone.
 */
#ifndef SESSID_TABLE_LAYOUT_H
#define SESSID_TABLE_LAYOUT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "lock.h"
#include "shared.h"
#include "table.h"

#define NIL UINT32_MAX

struct entry {
    uint8_t digest[SESSID_DIGEST_LEN];
    uint8_t id[SESSID_ID_LEN];          /* a version 4 UUID; its first half zero in an empty slot */
    double last_use;                    /* expires at last_use + ttl */
    uint32_t older, newer;              /* neighbours in the use-order list, NIL at the ends */
};

_Static_assert(sizeof(struct entry) == 64, "an entry is one cache line");

/* The table's state; a shared table keeps it in its file. */
struct head {
    /* What a lookup reads: written once, or once per tick of the clock. */
    double ttl;
    uint64_t max_entries;
    double clock;                       /* the latest `now` seen */
    uint64_t seed[4];                   /* keys the slot hash, so no one can aim keys at one slot */
    uint64_t capacity;
    /* What every insert and removal writes, on a cache line of its own: in a shared table, another
     * process's quick hits would otherwise wait for it at each change. */
    alignas(64) uint64_t count;
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

static inline int is_shared(const sessid_table *t)
{
    return t->file.base != NULL;
}

/* One step of a mutation of the table: in builds with SESSID_FAULT_INJECTION, the step at which a
 * test has the process (or thread) die; nothing otherwise. */
#ifdef SESSID_FAULT_INJECTION
void sessid_table_step(void);
#define step() sessid_table_step()
#else
static inline void step(void)
{
}
#endif

/* Takes the table's lock, repairing the table first if the last holder died holding it. Returns 0,
 * or SESSID_ESTATE for a shared lock beyond use (the lock is not held then). (table.c) */
int sessid_table_lock(sessid_table *table);
void sessid_table_unlock(sessid_table *table);

/* Repairs a shared table whose lock's holder died (the caller holds the lock now). (repair.c) */
void sessid_table_repair(sessid_table *table);

/* A hit without the lock on a shared table (quick.c): returns 1, with id set, when digest's entry
 * was last used at `now` and `now` is the table's time, so that a locked hit would only count it;
 * 0 when the caller must take the lock. */
int sessid_table_quick_hit(sessid_table *table, const uint8_t digest[SESSID_DIGEST_LEN], double now,
                           uint8_t id[SESSID_ID_LEN]);

#ifdef __SIZEOF_INT128__
__extension__ typedef unsigned __int128 wide_product;

static inline uint64_t mix(uint64_t a, uint64_t b)
{
    wide_product product = (wide_product)a * b;
    return (uint64_t)product ^ (uint64_t)(product >> 64);
}

static inline size_t scale(uint64_t h, size_t capacity)
{
    return (size_t)(((wide_product)h * capacity) >> 64);
}
#else
static inline uint64_t mix(uint64_t a, uint64_t b)
{
    uint64_t h = (a ^ (b >> 29)) * 0xbf58476d1ce4e5b9u;
    h ^= (h >> 31) ^ b;
    return h * 0x94d049bb133111ebu;
}

static inline size_t scale(uint64_t h, size_t capacity)
{
    return (size_t)(h % capacity);
}
#endif

/* The first slot to try for digest in a table of `capacity` slots. */
static inline size_t home_of(const sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN], size_t capacity)
{
    const uint64_t *seed = t->h->seed;
    uint64_t w[4];
    memcpy(w, digest, sizeof w);
    uint64_t h = mix(w[0] ^ seed[0], w[1] ^ seed[1]) ^ mix(w[2] ^ seed[2], w[3] ^ seed[3]);
    return scale(h, capacity);
}

static inline size_t home_slot(const sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN])
{
    return home_of(t, digest, t->h->capacity);
}

static inline size_t next_slot(size_t slot, size_t capacity)
{
    return slot + 1 == capacity ? 0 : slot + 1;
}

static inline int occupied(const struct entry *e)
{
    return sessid_id_is_v4(e->id);
}

/* Writes id into e, the half holding the version nibble last: a slot whose id reads as version 4
 * holds a whole entry, whenever a process dies. */
static inline void commit_id(struct entry *e, const uint8_t id[SESSID_ID_LEN])
{
    memcpy(e->id + 8, id + 8, 8);
    atomic_signal_fence(memory_order_seq_cst);
    memcpy(e->id, id, 8);
    atomic_signal_fence(memory_order_seq_cst);
}

/* Empties slot e: first its id's version half, so it stops counting at once, then the rest. */
static inline void wipe(struct entry *e)
{
    memset(e->id, 0, 8);
    atomic_signal_fence(memory_order_seq_cst);
    memset(e, 0, sizeof *e);
}

/* The slot holding digest, or NIL. */
static inline uint32_t find_slot(const sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN])
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

/* 1 when every byte of e is zero. */
static inline int is_blank(const struct entry *e)
{
    static const struct entry blank;
    return memcmp(e, &blank, sizeof blank) == 0;
}

#endif
