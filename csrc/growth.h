/* The growth of a private table, for table.c (growth.c): its slot arrays, and a growth spread over
 * the inserts that follow it. Not part of the core's contract. Every function here is called with
 * the table's lock held, or while no other thread can reach the table (opening it, freeing it).
 *
 * A table that must grow makes a new array and keeps the old one until each insert, having added
 * its entry, has moved the entries of the next GROWTH_STEP old slots across
 * (sessid_table_grow_some). Old slots are emptied going down, and an entry lands near the same
 * fraction of the new array as it left (slots are scaled hashes); an insert goes to the old array
 * while the walk is still to pass its place there (sessid_table_old_slot_for). So the new array is
 * written almost in order, its pages made just ahead, and the emptied part of the old one is given
 * back as it goes.
 *
 * Growth starts when an insert would fill the table beyond MAX_LOAD: about MAX_LOAD * C entries in
 * C slots, and GROWTH * C slots after. The next growth needs at least MAX_LOAD * GROWTH * C entries,
 * so about 0.17 * C more inserts (more if entries expire or go meanwhile), and emptying the C old
 * slots takes C / GROWTH_STEP inserts: with any step above 6 a growth ends before the next must
 * begin. Only a table given a smaller step (for tests, sessid_table_growth_step) can catch up with
 * its own growth; it then ends the old one at once. */
#ifndef SESSID_GROWTH_H
#define SESSID_GROWTH_H

#include <stddef.h>
#include <stdint.h>

#include "table_layout.h"

#define MAX_LOAD 0.85       /* grow beyond 85% full ... */
#define GROWTH 1.2          /* ... by 20%: it stays at least 70% full, <= 91 bytes an entry */
#define GROWTH_STEP 64

/* A piece of memory, the table's `piece` bytes unless a test sets it (sessid_table_growth_pieces).
 * Slot arrays of at least a piece get pages of their own from the kernel, and give them back when
 * freed: from malloc's heap, the arrays a table has grown out of would stay resident. A growth makes
 * the new array's pages and gives back the old array's a piece at a time, at addresses aligned to
 * it: work any call can pay for (the kernel frees small pages one by one, 2 MiB of them in some
 * 60 us). A piece given back is unmapped, page tables and all: unmapping the whole array at the end
 * would walk all of them, some 100 us for 60 MiB. */
#define PIECE ((size_t)64 << 10)

/* The slots a table needs to hold `limit` entries within MAX_LOAD. */
size_t sessid_table_slots_for(uint64_t limit);

/* Tells entry_at, and the lock-free prefetch, where the arrays are now. Any table: a shared one
 * calls it once, when opened. */
void sessid_table_publish_arrays(sessid_table *table);

/* Makes a private table a larger array (GROWTH times its capacity, at most enough for `limit`
 * entries) and keeps the current one as its old array, whose entries later inserts move across
 * (sessid_table_grow_some). A table still growing out of an older array first moves all that is
 * left of it across. Returns 0, or SESSID_ENOMEM with the table unchanged. */
int sessid_table_grow(sessid_table *table, uint64_t limit);

/* Empties up to `slots` slots of a growing table's old array, moving their entries across; ends the
 * growth when none is left. */
void sessid_table_grow_some(sessid_table *table, size_t slots);

/* While the table grows: the empty slot of its old array that a new entry of `hash` goes in, when
 * the walk has passed neither its first slot there nor the empty slot its probe ends on; NIL when
 * the entry goes in the table's own array. */
uint32_t sessid_table_old_slot_for(const sessid_table *table, uint64_t hash);

/* Frees both arrays of a private table, wiped, and leaves it with none. */
void sessid_table_drop_arrays(sessid_table *table);

#endif
