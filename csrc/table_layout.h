/* The memory of a sliding-TTL table: its entries, its state, and the small helpers that read and
 * write slots, shared by table.c (the operations), growth.c (a private table's growth) and repair.c
 * (what a death inside a shared table leaves behind). Not part of the core's contract.
 *
 * Entries live in the slots of one open-addressing table (linear probing, backward-shift deletion),
 * so a hit reads one cache line: digest, id and expiry together. The use-order list links slots by
 * number; an entry that moves (deletion shifts its neighbours back) fixes its neighbours' links.
 *
 * A private table grows a little at a time: while it grows, it keeps the array it is growing out of
 * beside the new one, and each insert moves a few entries across. Every entry is in exactly one of
 * the two arrays, each array on its own a valid linear-probing table, and a lookup tries the new
 * array first. Bit 31 of a slot number says which array it names: the table's own array is the one
 * whose slot numbers have that bit equal to `array_bit`. A growth flips array_bit, so the numbers
 * already in the list name slots of the old array from then on, and none needs rewriting.
 *
 * In a shared table a process may die between any two stores. Each write to a slot goes through
 * write_at, which saves the slot in the undo log first, so that the next process to take the lock
 * puts back what a death left half done. The stores are also ordered so that every slot whose id
 * reads as a version 4 UUID holds a whole entry (an id is written last, in two halves with the half
 * holding the version nibble last, and cleared first): when the log cannot undo a call, the table
 * is rebuilt from the slots alone.
 */
#ifndef SESSID_TABLE_LAYOUT_H
#define SESSID_TABLE_LAYOUT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "faults.h"
#include "file_format.h"
#include "lock.h"
#include "shared.h"
#include "status.h"
#include "table.h"
#include "undo.h"

#define NIL UINT32_MAX

/* Seconds a shared table's time may be ahead of this host's monotonic clock before it counts as
 * damaged. */
#define CLOCK_AHEAD_MAX 86400.0
#define ARRAY_BIT ((uint32_t)1 << 31)     /* slot numbers fit in 31 bits: see SESSID_TABLE_LIMIT */

/* The array a private table is growing out of. Its slots are emptied one at a time, going down
 * from just below an empty slot (`start`) and round to just above it: each slot emptied is then the
 * last of its run of occupied slots, so no other entry's probe passes through it, and the array
 * stays a valid linear-probing table for lookups and removals at every step.
 *
 * The pages the walk has emptied are unmapped as it goes, except those of slot next + 1 and slot 0,
 * which a probe to the end of a run may read: a lookup or an insert whose first slot the walk has
 * passed does not look (the slot is empty), so nothing else reads them. An insert whose probe ends
 * on slot next + 1 puts its entry in the new array instead. */
struct old_array {
    struct entry *slots;                /* NULL while the table is not growing */
    size_t capacity;
    size_t start;                       /* an empty slot when the growth began */
    size_t next;                        /* the next slot to empty */
    size_t left;                        /* slots still to empty; those from next + 1 to start are blank */
    uintptr_t released;                 /* unmapped: given_back bytes from here */
    size_t given_back;
    uintptr_t populated;                /* the table's array has its pages from here up; 0: none */
};

struct sessid_table {
    sessid_lock lock;
    struct head *h;                     /* &own, or in the shared file */
    struct quick_hits *quick;           /* a shared table's, in its file; NULL for a private one */
    struct entry *slots;
    uintptr_t arrays[2];                /* where slots and old.slots would start were their slot
                                         * numbers indexes: by bit 31 of those numbers (entry_at) */
    size_t bounds[2];                   /* and how many slots each has (0: none) */
    uint32_t array_bit;                 /* bit 31 of the slot numbers of `slots` */
    struct old_array old;               /* a private table's, while it grows */
    size_t growth_step;                 /* old slots an insert empties while the table grows */
    size_t piece;                       /* bytes a private table maps, makes or gives back at once */
    _Atomic(struct entry *) prefetch_slots;     /* copies of slots and capacity for the lock-free */
    atomic_size_t prefetch_capacity;            /* prefetch hint; they may be out of date */
    sessid_shared_file file;            /* a shared table's mapping; base is NULL for a private one */
    struct {
        uint64_t records;               /* what the log's count says, as this holder wrote it */
        uint64_t last_slot;             /* the slot of the last record, or UINT64_MAX */
    } undo;                             /* a shared table's undo log, while this process holds the lock */
    int broken;                         /* a slot number read from the file was out of range */
    int rebuild;                        /* the file's state failed a check at open: rebuild it */
    struct entry sink;                  /* what such a slot number reads and writes instead */
    struct head own;                    /* a private table's head; a shared table's settings (ttl,
                                         * max_entries, capacity) as checked at open, which every
                                         * operation reads instead of the file's copies */
};

static inline int is_shared(const sessid_table *t)
{
    return t->file.base != NULL;
}

/* Takes the table's lock (a shared one waited for as `wait` says), undoing what a holder that died
 * left half done (or rebuilding the table from its slots when that cannot be undone, or its head
 * fails a check: its time is checked against now, -INFINITY for none), and arms the undo log.
 * Returns 0, or with the lock not held SESSID_ETIMEDOUT, SESSID_EBUSY or SESSID_ELOCK (lock.h).
 * sessid_table_lock waits as a required call does. (hold.c) */
int sessid_table_lock_for(sessid_table *table, sessid_lock_wait wait, double now);
int sessid_table_lock(sessid_table *table);

/* Releases the lock. Returns 0, or SESSID_EDAMAGED when the call met a slot number out of range (a
 * damaged file): its work was undone and the table rebuilt, and it may be tried again. (hold.c) */
int sessid_table_unlock(sessid_table *table);

/* A call's work under the lock, at the table's time now; returns 0 or a negative status. */
typedef int (*sessid_locked_work)(sessid_table *table, double now, void *args);

/* Rebuilds a shared table from its slots alone (the caller holds the lock): what a damaged file, or
 * a death the undo log could not undo, calls for. (repair.c) */
void sessid_table_repair(sessid_table *table);

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

/* The hash of digest under the table's seed; scale() makes it a slot of an array. */
static inline uint64_t hash_of(const sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN])
{
    const uint64_t *seed = t->h->seed;
    uint64_t w[4];
    memcpy(w, digest, sizeof w);
    return mix(w[0] ^ seed[0], w[1] ^ seed[1]) ^ mix(w[2] ^ seed[2], w[3] ^ seed[3]);
}

/* The first slot to try for digest in a table of `capacity` slots. */
static inline size_t home_of(const sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN], size_t capacity)
{
    return scale(hash_of(t, digest), capacity);
}

static inline size_t home_slot(const sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN])
{
    return home_of(t, digest, t->own.capacity);
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

/* The slot numbers of slot `index` of the table's array and of its old array. */
static inline uint32_t slot_number(const sessid_table *t, size_t index)
{
    return (uint32_t)index | t->array_bit;
}

static inline uint32_t old_slot_number(const sessid_table *t, size_t index)
{
    return (uint32_t)index | (t->array_bit ^ ARRAY_BIT);
}

static inline int in_old_array(const sessid_table *t, uint32_t slot)
{
    return ((slot ^ t->array_bit) & ARRAY_BIT) != 0;
}

static inline size_t slot_index(uint32_t slot)
{
    return slot & ~ARRAY_BIT;
}

/* The entry in the slot a slot number names (not NIL): one load and a multiply-add, with no branch,
 * so a hit, which comes here several times, costs what it did before tables grew a little at a
 * time, whether or not a growth is under way. */
static inline struct entry *entry_at(const sessid_table *t, uint32_t slot)
{
    if (__builtin_expect(slot_index(slot) >= t->bounds[slot >> 31], 0)) {
        /* Only a damaged file names such a slot: the call is undone, the table rebuilt. */
        sessid_table *damaged = (sessid_table *)t;
        damaged->broken = 1;
        memset(&damaged->sink, 0, sizeof damaged->sink);
        return &damaged->sink;
    }
    return (struct entry *)(t->arrays[slot >> 31] + (uintptr_t)slot * sizeof(struct entry));
}

/* The next record of a shared table's undo log, for the caller to fill and undo_append; NULL, with
 * the log marked overflowed, when it is full. */
static inline struct undo_record *undo_next(sessid_table *t)
{
    uint64_t n = t->undo.records;
    if (n < t->file.undo_records)
        return &t->file.undo[n];
    sessid_undo_overflow(t);
    return NULL;
}

/* Makes the record undo_next gave part of the log. */
static inline void undo_append(sessid_table *t)
{
    uint64_t n = t->undo.records + 1;
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&t->file.state->undo.records, n, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    t->undo.records = n;
    t->undo.last_slot = UINT64_MAX;     /* a write to any slot after this saves it again */
}

/* Saves what moving shared slot `slot` to the newest end changes: its time and neighbours, and the
 * newest slot (see touch in table.c). */
static inline void undo_save_touch(sessid_table *t, uint32_t slot, const struct entry *e,
                                   uint32_t newest)
{
    struct undo_record *r = undo_next(t);
    if (r == NULL)
        return;
    r->slot = UNDO_TOUCH | slot;
    r->touch.last_use = e->last_use;
    r->touch.older = e->older;
    r->touch.newer = e->newer;
    r->touch.newest = newest;
    undo_append(t);
}

/* Saves what a new entry in blank shared slot `slot`, linked after `newest`, changes (see
 * insert_entry in table.c). */
static inline void undo_save_insert(sessid_table *t, uint32_t slot, uint32_t newest)
{
    struct undo_record *r = undo_next(t);
    if (r == NULL)
        return;
    r->slot = UNDO_INSERT | slot;
    r->insert.newest = newest;
    undo_append(t);
}

/* Saves shared slot e (slot number `slot`) in the undo log as it is, before a write to it, unless
 * the last record holds it already (of two copies, the first is the one put back, so saving a slot
 * again is only a waste). When the log is full, marks it overflowed instead. A slot number out of
 * range (e is the sink) makes a record that the log refuses to put back: the table is rebuilt. */
static inline void undo_save(sessid_table *t, uint32_t slot, const struct entry *e)
{
    if (slot == t->undo.last_slot)
        return;
    struct undo_record *r = undo_next(t);
    if (r == NULL)
        return;
    r->slot = slot;
    memcpy(&r->before, e, sizeof r->before);
    undo_append(t);
    t->undo.last_slot = slot;
}

/* entry_at for a write: a shared table's undo log saves the slot first. */
static inline struct entry *write_at(sessid_table *t, uint32_t slot)
{
    struct entry *e = entry_at(t, slot);
    if (t->quick != NULL)
        undo_save(t, slot, e);
    return e;
}

/* Copies the entry at `from` into the empty slot `to` (the id last) and points its neighbours at
 * it; `from` still holds it too until the caller empties it. */
static inline void move_entry(sessid_table *t, uint32_t from, uint32_t to)
{
    struct head *h = t->h;
    const struct entry *src = entry_at(t, from);
    struct entry *e = write_at(t, to);
    memcpy(e->digest, src->digest, SESSID_DIGEST_LEN);
    e->last_use = src->last_use;
    e->older = src->older;
    e->newer = src->newer;
    may_die_here();
    commit_id(e, src->id);
    may_die_here();
    if (e->older != NIL)
        write_at(t, e->older)->newer = to;
    else
        h->oldest = to;
    may_die_here();
    if (e->newer != NIL)
        write_at(t, e->newer)->older = to;
    else
        h->newest = to;
    may_die_here();
}

static inline int growing(const sessid_table *t)
{
    return t->old.slots != NULL;
}

/* 1 when the growth's walk has emptied old slot `slot` (it is one of next + 1 round to start). */
static inline int passed(const struct old_array *old, size_t slot)
{
    if (old->next < old->start)
        return slot > old->next && slot <= old->start;
    return slot > old->next || slot <= old->start;
}

/* 1 when the page of old slot `slot` is unmapped. */
static inline int given_back(const struct old_array *old, size_t slot)
{
    uintptr_t address = (uintptr_t)&old->slots[slot];
    return address >= old->released && address - old->released < old->given_back;
}

/* The slot of digest in an array of `capacity` slots, from its first slot `slot`; NIL when it has
 * none. At most `capacity` slots are read, should a damaged file have none empty. */
static inline uint32_t probe(const struct entry *slots, size_t capacity, size_t slot,
                             const uint8_t digest[SESSID_DIGEST_LEN])
{
    for (size_t n = 0; n < capacity; n++, slot = next_slot(slot, capacity)) {
        const struct entry *e = &slots[slot];
        if (!occupied(e))
            return NIL;
        if (memcmp(e->digest, digest, SESSID_DIGEST_LEN) == 0)
            return (uint32_t)slot;
    }
    return NIL;
}

/* A call's key: its digest, its hash under the table's seed (made once a call), and the slot where
 * a read without the lock found it, or NIL: a hint, checked under the lock before it is used. */
struct key {
    const uint8_t *digest;
    uint64_t hash;
    uint32_t hint;
};

static inline struct key key_of(const sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN])
{
    return (struct key){.digest = digest, .hash = hash_of(t, digest), .hint = NIL};
}

/* The slot holding the key, or NIL. */
static inline uint32_t find_key(const sessid_table *t, const struct key *k)
{
    size_t capacity = t->own.capacity;
    if (capacity == 0)
        return NIL;
    if (k->hint < capacity && occupied(&t->slots[k->hint])
        && memcmp(t->slots[k->hint].digest, k->digest, SESSID_DIGEST_LEN) == 0)
        return slot_number(t, k->hint);
    uint32_t slot = probe(t->slots, capacity, scale(k->hash, capacity), k->digest);
    if (slot != NIL)
        return slot_number(t, slot);
    if (growing(t)) {
        size_t home = scale(k->hash, t->old.capacity);
        slot = passed(&t->old, home) ? NIL : probe(t->old.slots, t->old.capacity, home, k->digest);
        if (slot != NIL)
            return old_slot_number(t, slot);
    }
    return NIL;
}

static inline uint32_t find_slot(const sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN])
{
    struct key k = key_of(t, digest);
    return find_key(t, &k);
}

/* A hit without the lock on a shared table (quick.c): returns 1, with id set, when the key's entry
 * was last used at `now` and `now` is the table's time, so that a locked hit would only count it
 * (and the table has not taken in more than a quarter of max_entries new entries at that time);
 * 0 when the caller must take the lock, with the key's hint set to the slot where the entry was
 * read, if any. */
int sessid_table_quick_hit(sessid_table *table, struct key *key, double now, uint8_t id[SESSID_ID_LEN]);

/* 1 when every byte of e is zero. */
static inline int is_blank(const struct entry *e)
{
    static const struct entry blank;
    return memcmp(e, &blank, sizeof blank) == 0;
}

/* Takes the lock (waiting as `wait` says), brings the table's time up to now (a `now` older than
 * the latest one seen counts as that one), and does work; once more if the file turned out
 * damaged (the table was rebuilt in between). Returns what work returned, or what taking the lock
 * did, or SESSID_EDAMAGED. Inline, so that a constant `work` is called directly. */
static inline int sessid_table_run_locked(sessid_table *t, double now, sessid_lock_wait wait,
                                          sessid_locked_work work, void *args)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = sessid_table_lock_for(t, wait, now);
        if (rc != SESSID_OK)
            return rc;
        if (now > t->h->clock) {
            t->h->clock = now;
            if (t->quick != NULL)
                atomic_store_explicit(&t->quick->tick_inserts, 0, memory_order_relaxed);
        }
        rc = work(t, t->h->clock, args);
        if (sessid_table_unlock(t) == SESSID_OK)
            return rc;
    }
    return SESSID_EDAMAGED;
}

#endif
