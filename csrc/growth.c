/* The growth of a private table: slot arrays with pages of their own, and a growth that moves a
 * few old slots across per insert, making the new array's pages just ahead of the entries and
 * giving the old array's back behind them. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "growth.h"

#include <assert.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "status.h"

#define MIN_SLOTS 64

/* The most slots an array has, sessid_table_slots_for(SESSID_TABLE_LIMIT), leave bit 31 of a slot
 * number free to name the array, and never make NIL. */
_Static_assert(SESSID_TABLE_LIMIT * 100 / 85 + 2 < ARRAY_BIT - 1, "slot numbers fit in 31 bits");

/* ---- slot arrays of a private table ---- */

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

void sessid_table_publish_arrays(sessid_table *t)
{
    uint32_t old_bit = t->array_bit ^ ARRAY_BIT;
    t->arrays[t->array_bit >> 31] = biased(t->slots, t->array_bit);
    t->arrays[old_bit >> 31] = biased(t->old.slots, old_bit);
    t->bounds[t->array_bit >> 31] = t->slots != NULL ? t->h->capacity : 0;
    t->bounds[old_bit >> 31] = t->old.slots != NULL ? t->old.capacity : 0;
    atomic_store_explicit(&t->prefetch_slots, t->slots, memory_order_relaxed);
    atomic_store_explicit(&t->prefetch_capacity, t->h->capacity, memory_order_relaxed);
}

/* ---- growth ---- */

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
    sessid_table_publish_arrays(t);
    size_t bytes = t->h->capacity * sizeof(struct entry);
    /* A hint, as in alloc_slots: huge pages spare a large table a TLB miss on most lookups. The
     * kernel's khugepaged gathers the pages in its own time, no call waits for it. */
    if (bytes >= t->piece)
        (void)madvise(t->slots, bytes, MADV_HUGEPAGE);
}

void sessid_table_grow_some(sessid_table *t, size_t slots)
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
    sessid_table_publish_arrays(t);
}

void sessid_table_drop_arrays(sessid_table *t)
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
    sessid_table_publish_arrays(t);
}

size_t sessid_table_slots_for(uint64_t limit)
{
    return (size_t)ceil((double)limit / MAX_LOAD) + 1;
}

int sessid_table_grow(sessid_table *t, uint64_t limit)
{
    struct head *h = t->h;
    size_t grown = h->capacity < MIN_SLOTS ? MIN_SLOTS : (size_t)ceil((double)h->capacity * GROWTH);
    size_t enough = sessid_table_slots_for(limit);
    size_t capacity = grown < enough ? grown : enough;
    struct entry *slots = alloc_slots(capacity, t->piece);
    if (slots == NULL)
        return SESSID_ENOMEM;
    if (growing(t))
        sessid_table_grow_some(t, SIZE_MAX);     /* see GROWTH_STEP: only with a step below 7 */
    begin_growth(t, slots, capacity);
    return SESSID_OK;
}

uint32_t sessid_table_old_slot_for(const sessid_table *t, uint64_t hash)
{
    const struct old_array *old = &t->old;
    size_t s = scale(hash, old->capacity);
    if (!passed(old, s)) {
        while (occupied(&old->slots[s]))
            s = next_slot(s, old->capacity);
        if (!passed(old, s))
            return old_slot_number(t, s);
    }
    return NIL;
}
