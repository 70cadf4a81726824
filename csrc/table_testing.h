/* Hooks into the table for tests that check how much memory it holds and meet growths under way
 * (table_testing.c), built only with SESSID_TESTING (the C tests, the fuzzer, SESSID_DEBUG=1 builds
 * of the extension). Not part of the core's contract: the library itself never calls them. This
 * header also brings the tests the fault injection (faults.h) and the diagnostics (diagnostics.h). */
#ifndef SESSID_TABLE_TESTING_H
#define SESSID_TABLE_TESTING_H

#include <stddef.h>
#include <stdint.h>

#include "diagnostics.h"
#include "faults.h"
#include "table.h"

#ifdef SESSID_TESTING
/* Bytes of memory the table holds beyond its own fixed struct: its slots, and while it grows, the
 * part of its old array not yet given back. */
size_t sessid_table_footprint(sessid_table *table);

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

#endif

#endif
