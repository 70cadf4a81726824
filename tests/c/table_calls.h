/* The table's counting calls as the tests use them: a failure there is a failed test, so each
 * aborts on one rather than return a status every test would have to check. */
#ifndef SESSID_TEST_TABLE_CALLS_H
#define SESSID_TEST_TABLE_CALLS_H

#include <stdio.h>
#include <stdlib.h>

#include "../../csrc/status.h"
#include "../../csrc/table.h"

static inline void table_call_ok(int rc, const char *call)
{
    if (rc != SESSID_OK) {
        fprintf(stderr, "%s failed: %s\n", call, sessid_strerror(rc));
        abort();
    }
}

static inline size_t table_live(sessid_table *t, double now)
{
    size_t live = 0;
    table_call_ok(sessid_table_live(t, now, &live), "sessid_table_live");
    return live;
}

static inline size_t table_purge(sessid_table *t, double now)
{
    size_t reclaimed = 0;
    table_call_ok(sessid_table_purge(t, now, &reclaimed), "sessid_table_purge");
    return reclaimed;
}

static inline void table_clear(sessid_table *t)
{
    table_call_ok(sessid_table_clear(t), "sessid_table_clear");
}

#endif
