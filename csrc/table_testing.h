/* Hooks into the table for tests that check what it keeps and how much memory it holds. Not part
 * of the core's contract: the library itself never calls them. */
#ifndef SESSID_TABLE_TESTING_H
#define SESSID_TABLE_TESTING_H

#include <stddef.h>
#include <stdint.h>

#include "table.h"

/* Bytes of memory the table holds beyond its own fixed struct. */
size_t sessid_table_footprint(sessid_table *table);

/* Copies every byte of the table's storage into one buffer. On success *out is a buffer of *len
 * bytes that the caller frees with free(). Returns 0 or SESSID_ENOMEM. */
int sessid_table_dump(sessid_table *table, uint8_t **out, size_t *len);

#endif
