/* A copy of a table's whole storage, for diagnostics (diagnostics.h). */
#include "diagnostics.h"

#include <stdlib.h>

#include "status.h"
#include "table_layout.h"

int sessid_table_dump(sessid_table *t, uint8_t **out, size_t *len)
{
    int rc = sessid_table_lock(t);
    if (rc != SESSID_OK)
        return rc;
    size_t bytes = t->h->capacity * sizeof *t->slots;
    size_t old_bytes = growing(t) ? t->old.capacity * sizeof *t->slots : 0;
    size_t total = bytes + old_bytes;
    uint8_t *buf = calloc(total > 0 ? total : 1, 1);
    if (buf != NULL && bytes > 0)
        memcpy(buf, t->slots, bytes);
    for (size_t s = 0; buf != NULL && s < t->old.capacity; s++)
        if (!given_back(&t->old, s))
            memcpy(buf + bytes + s * sizeof *t->slots, &t->old.slots[s], sizeof *t->slots);
    sessid_table_unlock(t);
    if (buf == NULL)
        return SESSID_ENOMEM;
    *out = buf;
    *len = total;
    return SESSID_OK;
}
