/* Hits without the lock on a shared table: an entry already used at the table's current time is
 * read under the sequence count and counted in a per-thread counter, so processes hammering one
 * table do not queue on its lock. */
#include "table_layout.h"

/* The counter this thread counts its quick hits in. Threads of one process, and processes, mostly
 * land on different ones; a forked child keeps its parent's, which costs only some sharing. */
static _Atomic uint64_t *quick_hit_counter(struct quick_hits *quick)
{
    static _Thread_local int mine = -1;
    if (mine < 0) {
        uint64_t h = (uint64_t)(uintptr_t)&mine * 0x9e3779b97f4a7c15u;
        mine = (int)((h >> 32) * QUICK_HIT_COUNTERS >> 32);    /* h's top bits, scaled */
    }
    return &quick->counters[mine].hits;
}

/* A hit without the lock, on a shared table: returns 1, with id set, when the key's entry was last
 * used at `now` and `now` is the table's time, so that a locked hit would only count it (its expiry
 * and its place among the entries used at this instant stay as they are), unless this instant has
 * taken in more than a quarter of max_entries new entries. 0: take the lock. The
 * entry is read as it may be changing and trusted only if the sequence count did not move: a
 * seqlock's read, which races with the holder's writes by design (so ThreadSanitizer is told to
 * look away from this one function). The slot where it was read becomes the key's hint. */
__attribute__((no_sanitize("thread")))
int sessid_table_quick_hit(sessid_table *t, struct key *k, double now, uint8_t id[SESSID_ID_LEN])
{
    struct quick_hits *quick = t->quick;
    uint64_t seq = atomic_load_explicit(&quick->seq, memory_order_acquire);
    if ((seq & 1) != 0 || now < t->h->clock
        || atomic_load_explicit(&quick->tick_inserts, memory_order_relaxed) > t->own.max_entries / 4)
        return 0;               /* see tick_inserts in file_format.h */
    size_t capacity = t->bounds[0];     /* checked at open, unlike the file's copy */
    size_t slot = scale(k->hash, capacity);
    struct entry e;
    for (size_t probes = 0;; probes++, slot = next_slot(slot, capacity)) {
        if (probes == capacity)
            return 0;
        memcpy(&e, &t->slots[slot], sizeof e);
        if (!occupied(&e))
            return 0;
        if (memcmp(e.digest, k->digest, SESSID_DIGEST_LEN) == 0)
            break;
    }
    k->hint = (uint32_t)slot;
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&quick->seq, memory_order_relaxed) != seq || e.last_use != now)
        return 0;
    memcpy(id, e.id, SESSID_ID_LEN);
    atomic_fetch_add_explicit(quick_hit_counter(quick), 1, memory_order_relaxed);
    return 1;
}
