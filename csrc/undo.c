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

int sessid_undo_rollback(sessid_table *t)
{
    struct undo_log *log = log_of(t);
    if (atomic_load_explicit(&log->armed, memory_order_relaxed) == 0)
        return 0;
    uint64_t n = atomic_load_explicit(&log->records, memory_order_relaxed);
    if (atomic_load_explicit(&log->overflowed, memory_order_relaxed) != 0 || n > t->file.undo_records)
        return -1;
    for (uint64_t i = 0; i < n; i++)
        if (t->file.undo[i].slot >= t->h->capacity)
            return -1;                  /* a damaged record: nothing of it is written back */
    /* Newest first, so that a slot saved twice ends as its first copy holds it. A death in here
     * leaves the log armed: the next taker puts it all back again. */
    for (uint64_t i = n; i-- > 0;) {
        memcpy(&t->slots[t->file.undo[i].slot], &t->file.undo[i].before, sizeof(struct entry));
        may_die_here();
    }
    restore_head(t->h, &log->before);
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&log->armed, 0, memory_order_relaxed);
    return 0;
}
