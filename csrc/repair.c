/* Rebuilding a shared table from its slots alone, for a damaged file or a death the undo log could
 * not undo; and the check of every invariant. (The deaths on demand that tests ask for are
 * faults.c's; the undo log that repairs an ordinary death is undo.c's.) */
#include "table_layout.h"

#include <assert.h>
#include <math.h>

#include "clock.h"
#include "diagnostics.h"

/* ---- rebuild: a shared table whose state cannot be believed ----
 * Works from the slots alone, in place, with no allocation, and trusts none of them: empties every
 * slot that holds no whole entry (an id that is not version 4, a time that is not finite or is
 * after the table's time), drops every entry but one of those that share an id, drops the least
 * recently used entries beyond max_entries, moves each entry to where a lookup finds it and drops
 * second copies of a digest (a move leaves two for a moment, both with the same id), then rebuilds
 * the use-order list from the times of last use (sorted in the file's scratch area), the count and
 * the table's time. Every loop is bounded by the capacity. No id that survives changes. */

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
                may_die_here();
                commit_id(q, e->id);
                may_die_here();
            } else if (memcmp(q->digest, e->digest, SESSID_DIGEST_LEN) != 0) {
                continue;
            }
            wipe(e);                            /* moved to p, or a second copy of the one at p */
            may_die_here();
            changed++;
            break;
        }
    }
    return changed;
}

typedef int (*slot_order)(const sessid_table *t, uint32_t a, uint32_t b);

static int older_than(const sessid_table *t, uint32_t a, uint32_t b)
{
    double ta = t->slots[a].last_use, tb = t->slots[b].last_use;
    return ta < tb || (ta == tb && a < b);
}

static int id_before(const sessid_table *t, uint32_t a, uint32_t b)
{
    int c = memcmp(t->slots[a].id, t->slots[b].id, SESSID_ID_LEN);
    return c < 0 || (c == 0 && a < b);
}

static void sift_down(const sessid_table *t, slot_order before, uint32_t *heap, size_t root, size_t n)
{
    for (size_t child; (child = 2 * root + 1) < n; root = child) {
        if (child + 1 < n && before(t, heap[child], heap[child + 1]))
            child++;
        if (!before(t, heap[root], heap[child]))
            return;
        uint32_t swap = heap[root];
        heap[root] = heap[child];
        heap[child] = swap;
    }
}

/* Sorts slot numbers by `before` (heapsort: no memory of its own). */
static void sort_slots(const sessid_table *t, slot_order before, uint32_t *order, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(t, before, order, i, n);
    for (size_t end = n; end-- > 1;) {
        uint32_t swap = order[0];
        order[0] = order[end];
        order[end] = swap;
        sift_down(t, before, order, 0, end);
    }
}

/* The occupied slots, in the scratch area; returns how many. */
static size_t gather(sessid_table *t, uint32_t *order)
{
    size_t n = 0;
    for (size_t s = 0; s < t->bounds[0]; s++)
        if (occupied(&t->slots[s]))
            order[n++] = (uint32_t)s;
    return n;
}

/* The table's time: its own if believable, else this host's clock. */
static double believable_clock(double clock)
{
    double host = sessid_clock_now();
    if (isnan(clock) || clock == INFINITY || (host >= 0 && clock > host + CLOCK_AHEAD_MAX))
        return host >= 0 ? host : -INFINITY;
    return clock;
}

void sessid_table_repair(sessid_table *t)
{
    struct head *h = t->h;
    size_t capacity = t->bounds[0];
    uint32_t *order = t->file.scratch;
    sessid_undo_begin(t, 1);            /* a death in here leaves the rebuild to the next taker */
    h->ttl = t->own.ttl;
    h->max_entries = t->own.max_entries;
    h->capacity = capacity;
    h->clock = believable_clock(h->clock);
    for (size_t s = 0; s < capacity; s++) {
        struct entry *e = &t->slots[s];
        if ((!occupied(e) || !isfinite(e->last_use) || e->last_use > h->clock) && !is_blank(e))
            wipe(e);
    }
    may_die_here();
    size_t n = gather(t, order);
    sort_slots(t, id_before, order, n);
    for (size_t i = 1; i < n; i++)
        if (memcmp(t->slots[order[i]].id, t->slots[order[i - 1]].id, SESSID_ID_LEN) == 0)
            wipe(&t->slots[order[i]]);          /* one id is one key's */
    may_die_here();
    n = gather(t, order);
    if (n > h->max_entries) {
        sort_slots(t, older_than, order, n);
        for (size_t i = 0; i < n - h->max_entries; i++)
            wipe(&t->slots[order[i]]);
    }
    may_die_here();
    for (size_t pass = 0; pass < capacity && replace_entries(t) > 0; pass++)
        ;
    n = gather(t, order);
    sort_slots(t, older_than, order, n);
    may_die_here();
    for (size_t i = 0; i < n; i++) {
        struct entry *e = &t->slots[order[i]];
        e->older = i > 0 ? order[i - 1] : NIL;
        e->newer = i + 1 < n ? order[i + 1] : NIL;
    }
    h->oldest = n > 0 ? order[0] : NIL;
    h->newest = n > 0 ? order[n - 1] : NIL;
    h->count = n;
    may_die_here();
    sessid_undo_end(t);
    assert(sessid_table_check(t) == 0);
}

/* Checks the slots of one array: every empty slot blank, every entry found by a lookup and found
 * once (a copy in the other array would be found instead of one of the two). Adds its entries to
 * *entries. Returns 0 or the number of the broken invariant. */
static int check_array(sessid_table *t, const struct entry *slots, size_t capacity, int old,
                       size_t *entries)
{
    for (size_t s = 0; s < capacity; s++) {
        const struct entry *e = &slots[s];
        if (old && given_back(&t->old, s))
            continue;
        if (!occupied(e)) {
            if (!is_blank(e))
                return -1;                      /* an empty slot with something left in it */
            continue;
        }
        ++*entries;
        if (find_slot(t, e->digest) != (old ? old_slot_number(t, s) : slot_number(t, s)))
            return -2;                          /* a lookup does not find it, or finds a copy */
    }
    return 0;
}

/* A growing table's old array: the slots its walk has passed, from next + 1 up to start, are blank,
 * and as many as the walk counts. */
static int check_growth(const sessid_table *t)
{
    const struct old_array *old = &t->old;
    if (old->capacity == 0 || old->start >= old->capacity || old->next >= old->capacity
        || old->left == 0 || old->left >= old->capacity)
        return -7;
    size_t walked = 0;
    for (size_t s = old->start; s != old->next; s = s == 0 ? old->capacity - 1 : s - 1, walked++)
        if (!passed(old, s) || (!given_back(old, s) && !is_blank(&old->slots[s])))
            return -7;                          /* an entry where the growth has passed */
    for (size_t s = 0; s < old->capacity; s++)
        if (given_back(old, s) && !passed(old, s))
            return -7;                          /* unmapped before the walk got there */
    return walked == old->capacity - old->left && !given_back(old, 0)
           && !given_back(old, (old->next + 1) % old->capacity) ? 0 : -7;
}

/* 1 when slot names a slot of one of the table's arrays. */
static int names_a_slot(const sessid_table *t, uint32_t slot)
{
    if (in_old_array(t, slot))
        return growing(t) && slot_index(slot) < t->old.capacity;
    return slot_index(slot) < t->h->capacity;
}

int sessid_table_check(sessid_table *t)
{
    const struct head *h = t->h;
    size_t entries = 0;
    int rc = check_array(t, t->slots, h->capacity, 0, &entries);
    if (rc == 0 && growing(t))
        rc = check_growth(t);
    if (rc == 0 && growing(t))
        rc = check_array(t, t->old.slots, t->old.capacity, 1, &entries);
    if (rc != 0)
        return rc;
    if (entries != h->count)
        return -3;
    size_t listed = 0;
    uint32_t prev = NIL;
    for (uint32_t s = h->oldest; s != NIL; s = entry_at(t, s)->newer) {
        if (!names_a_slot(t, s) || !occupied(entry_at(t, s)) || entry_at(t, s)->older != prev
            || ++listed > entries)
            return -4;                          /* the list is broken */
        if (prev != NIL && entry_at(t, prev)->last_use > entry_at(t, s)->last_use)
            return -5;                          /* out of order */
        prev = s;
    }
    if (listed != entries || h->newest != prev)
        return -6;
    return 0;
}
