/* The undo log of a shared table (see struct undo_log in file_format.h): the holder of the lock
 * arms it before any change, saves each slot before it writes to it (or records a touch or an
 * insert whole: the undo_save functions of table_layout.h), and disarms it when the call's work is
 * whole; the next taker after a death puts the table back as it was before that call. Not part of
 * the core's contract. Every function here is for shared tables only, under their lock.
 */
#ifndef SESSID_UNDO_H
#define SESSID_UNDO_H

#include <stdint.h>

#include "table.h"

/* Saves the head's changing fields and arms the log. With rebuilding set, the log is marked
 * overflowed from the start: a death from here on leaves a table to rebuild from its slots. */
void sessid_undo_begin(sessid_table *table, int rebuilding);

/* Marks the log overflowed: the call writes to more slots than it holds (see undo_next in
 * table_layout.h). */
void sessid_undo_overflow(sessid_table *table);

/* Disarms the log: the call's changes stand. */
void sessid_undo_end(sessid_table *table);

/* After the holder died: when the log is armed, puts back every slot it saved and undoes every
 * touch and insert it records, newest first, and the head's changing fields, then disarms it.
 * Returns 0 when the table is now as it was before the interrupted call (or the log was not armed),
 * -1 when the log cannot do that (it overflowed, or is damaged): the caller rebuilds the table from
 * its slots. */
int sessid_undo_rollback(sessid_table *table);

#endif
