/* Hooks into the table for tests: a look at the memory a table holds. */
#include "table_testing.h"

#include <stdlib.h>

#include "status.h"
#include "table_layout.h"

size_t sessid_table_footprint(sessid_table *t)
{
    if (sessid_table_lock(t) != SESSID_OK)
        return 0;
    size_t size = t->h->capacity * sizeof *t->slots;
    sessid_table_unlock(t);
    return size;
}

int sessid_table_dump(sessid_table *t, uint8_t **out, size_t *len)
{
    int rc = sessid_table_lock(t);
    if (rc != SESSID_OK)
        return rc;
    size_t total = t->h->capacity * sizeof *t->slots;
    uint8_t *buf = malloc(total > 0 ? total : 1);
    if (buf != NULL && total > 0)
        memcpy(buf, t->slots, total);
    sessid_table_unlock(t);
    if (buf == NULL)
        return SESSID_ENOMEM;
    *out = buf;
    *len = total;
    return SESSID_OK;
}
