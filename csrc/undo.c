/* The undo log of a shared table: what a holder of the lock saves before it changes anything, and
 * how the next taker puts it back after the holder died, in time bounded by that one call's work
 * rather than by the table's size. (file_format.h describes the log.) */
#include "undo.h"

#include <string.h>

#include "table_layout.h"

static struct undo_log *log_of(sessid_table *t)
{
    return &t->file.state->undo;
}

static void save_head(const struct head *h, struct head_before *b)
{
    b->clock = h->clock;
    b->count = h->count;
    b->oldest = h->oldest;
    b->newest = h->newest;
}

static void restore_head(struct head *h, const struct head_before *b)
{
    h->clock = b->clock;
    h->count = b->count;
    h->oldest = b->oldest;
    h->newest = b->newest;
}

void sessid_undo_begin(sessid_table *t, int rebuilding)
{
    struct undo_log *log = log_of(t);
    atomic_store_explicit(&log->records, 0, memory_order_relaxed);
    atomic_store_explicit(&log->overflowed, rebuilding ? 1 : 0, memory_order_relaxed);
    t->undo.records = 0;
    t->undo.last_slot = UINT64_MAX;
    save_head(t->h, &log->before);
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&log->armed, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
}

void sessid_undo_overflow(sessid_table *t)
{
    atomic_store_explicit(&log_of(t)->overflowed, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
}

void sessid_undo_end(sessid_table *t)
{
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&log_of(t)->armed, 0, memory_order_relaxed);
}

static int in_table_or_nil(uint32_t slot, uint64_t capacity)
{
    return slot < capacity || slot == NIL;
}

/* 1 when a record is of a known kind and names only slots of the table. */
static int record_is_sane(const struct undo_record *r, uint64_t capacity)
{
    uint64_t slot = r->slot & ~UNDO_KINDS;
    switch (r->slot & UNDO_KINDS) {
    case 0:
        return slot < capacity;
    case UNDO_TOUCH:
        return slot < capacity && in_table_or_nil(r->touch.older, capacity)
               && in_table_or_nil(r->touch.newer, capacity)
               && in_table_or_nil(r->touch.newest, capacity);
    case UNDO_INSERT:
        return slot < capacity && in_table_or_nil(r->insert.newest, capacity);
    default:
        return 0;
    }
}

/* Puts back what a touch changed (touch in table.c): each of its writes, done or not, is undone.
 * Each write sets what the record says, so a rollback that dies here can be done again. */
static void undo_touch(sessid_table *t, uint32_t slot, const struct undo_record *r)
{
    struct entry *e = &t->slots[slot];
    e->last_use = r->touch.last_use;
    e->older = r->touch.older;
    e->newer = r->touch.newer;
    may_die_here();
    if (r->touch.older != NIL)
        t->slots[r->touch.older].newer = slot;
    may_die_here();
    if (r->touch.newer != NIL)
        t->slots[r->touch.newer].older = slot;
    may_die_here();
    if (r->touch.newest != NIL && r->touch.newest != slot)
        t->slots[r->touch.newest].newer = NIL;
}

/* Puts back what an insert changed (insert_entry in table.c): the slot blank, the id first. */
static void undo_insert(sessid_table *t, uint32_t slot, const struct undo_record *r)
{
    wipe(&t->slots[slot]);
    may_die_here();
    if (r->insert.newest != NIL)
        t->slots[r->insert.newest].newer = NIL;
}

int sessid_undo_rollback(sessid_table *t)
{
    struct undo_log *log = log_of(t);
    if (atomic_load_explicit(&log->armed, memory_order_relaxed) == 0)
        return 0;
    uint64_t n = atomic_load_explicit(&log->records, memory_order_relaxed);
    if (atomic_load_explicit(&log->overflowed, memory_order_relaxed) != 0 || n > t->file.undo_records)
        return -1;
    for (uint64_t i = 0; i < n; i++)
        if (!record_is_sane(&t->file.undo[i], t->bounds[0]))     /* checked at open */
            return -1;                  /* a damaged record: nothing of it is written back */
    /* Newest first, so that a slot saved twice ends as its first copy holds it. A death in here
     * leaves the log armed: the next taker puts it all back again. */
    for (uint64_t i = n; i-- > 0;) {
        struct undo_record r;
        memcpy(&r, &t->file.undo[i], sizeof r);     /* checked again as used: the file is shared */
        if (!record_is_sane(&r, t->bounds[0]))
            return -1;
        uint32_t slot = (uint32_t)(r.slot & ~UNDO_KINDS);
        if ((r.slot & UNDO_TOUCH) != 0)
            undo_touch(t, slot, &r);
        else if ((r.slot & UNDO_INSERT) != 0)
            undo_insert(t, slot, &r);
        else
            memcpy(&t->slots[slot], &r.before, sizeof(struct entry));
        may_die_here();
    }
    restore_head(t->h, &log->before);
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&log->armed, 0, memory_order_relaxed);
    return 0;
}
