/* Hooks into the table for tests that check what it keeps and how much memory it holds. Not part
 * of the core's contract: the library itself never calls them. */
#ifndef SESSID_TABLE_TESTING_H
#define SESSID_TABLE_TESTING_H

#include <stddef.h>
#include <stdint.h>

#include "faults.h"
#include "table.h"

/* Bytes of memory the table holds beyond its own fixed struct: its slots, and while it grows, the
 * part of its old array not yet given back. */
size_t sessid_table_footprint(sessid_table *table);

/* Copies every byte of the table's storage into one buffer: its slots, then, while it grows, its
 * whole old array (the part given back reads as zeros). On success *out is a buffer of *len bytes
 * that the caller frees with free(). Returns 0 or SESSID_ENOMEM. */
int sessid_table_dump(sessid_table *table, uint8_t **out, size_t *len);

/* Sets how many slots of its old array each insert empties while a private table grows (64 unless
 * set; 0 counts as 1). With 1, a growth lasts about as many inserts as the old array has slots, and
 * the table catches up with its own growth: the insert that must grow it again first moves
 * everything left across. */
void sessid_table_growth_step(sessid_table *table, size_t slots);

/* For a private table that has no slots yet: arrays of at least `bytes` get pages of their own, and
 * a growth makes and gives back their pages `bytes` at a time (64 KiB unless set; rounded down to a
 * power of two, at least a page), so that small tables go through what large ones do. */
void sessid_table_growth_pieces(sessid_table *table, size_t bytes);

/* The slots of its old array a growing table has still to empty; 0 when it is not growing. */
size_t sessid_table_growth_left(sessid_table *table);

/* 1 when the table holds an entry for digest in the old array of a growth under way; 0 when it
 * holds none, or holds it in its own array. */
int sessid_table_in_old_array(sessid_table *table, const uint8_t digest[SESSID_DIGEST_LEN]);

/* Checks every invariant of the table (the caller holds no lock, and no one else may be using the
 * table): every empty slot blank, every entry found by a lookup and found once, the count, the
 * use-order list whole and in order, across both arrays of a growing table, and the part of its
 * old array already emptied blank. Returns 0, or a negative number naming the first broken one. */
int sessid_table_check(sessid_table *table);

#endif
