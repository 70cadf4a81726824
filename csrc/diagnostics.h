/* Diagnostics of a table, built in every build: a copy of its whole storage, and a check of every
 * invariant. The binding offers them as Store._memory_dump and Store._check, so that tests of a
 * release build can see what a table keeps and that it is sound; the library's own operations
 * never need them (repair.c asserts the check after a repair, in builds with assertions). Not part
 * of the core's contract: their output is for tests and for someone looking into a table, and each
 * takes time in proportion to the table's slots. */
#ifndef SESSID_DIAGNOSTICS_H
#define SESSID_DIAGNOSTICS_H

#include <stddef.h>
#include <stdint.h>

#include "table.h"

/* Copies every byte of the table's storage into one buffer: its slots, then, while it grows, its
 * whole old array (the part given back reads as zeros). On success *out is a buffer of *len bytes
 * that the caller frees with free(). Returns 0 or SESSID_ENOMEM. (diagnostics.c) */
int sessid_table_dump(sessid_table *table, uint8_t **out, size_t *len);

/* Checks every invariant of the table (the caller holds no lock, and no one else may be using the
 * table): every empty slot blank, every entry found by a lookup and found once, the count, the
 * use-order list whole and in order, across both arrays of a growing table, and the part of its
 * old array already emptied blank. Returns 0, or a negative number naming the first broken one.
 * (repair.c) */
int sessid_table_check(sessid_table *table);

#endif
