/* Hooks into the table for tests: a look at the memory a table holds, and a growth slowed down so
 * that every operation can meet one under way. */
#include "table_testing.h"

#include <stdlib.h>
#include <unistd.h>

#include "status.h"
#include "table_layout.h"

size_t sessid_table_footprint(sessid_table *t)
{
    if (sessid_table_lock(t) != SESSID_OK)
        return 0;
    size_t size = t->h->capacity * sizeof *t->slots;
    if (growing(t))
        size += t->old.capacity * sizeof *t->slots - t->old.given_back;
    sessid_table_unlock(t);
    return size;
}

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

void sessid_table_growth_step(sessid_table *t, size_t slots)
{
    if (sessid_table_lock(t) != SESSID_OK)
        return;
    t->growth_step = slots > 0 ? slots : 1;
    sessid_table_unlock(t);
}

void sessid_table_growth_pieces(sessid_table *t, size_t bytes)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || sessid_table_lock(t) != SESSID_OK)
        return;
    if (t->h->capacity == 0 && !is_shared(t)) {
        size_t piece = (size_t)page;
        while (piece <= bytes / 2)
            piece *= 2;
        t->piece = piece;
    }
    sessid_table_unlock(t);
}

size_t sessid_table_growth_left(sessid_table *t)
{
    if (sessid_table_lock(t) != SESSID_OK)
        return 0;
    size_t left = growing(t) ? t->old.left : 0;
    sessid_table_unlock(t);
    return left;
}

int sessid_table_in_old_array(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN])
{
    if (sessid_table_lock(t) != SESSID_OK)
        return 0;
    uint32_t slot = find_slot(t, digest);
    int in_old = slot != NIL && in_old_array(t, slot);
    sessid_table_unlock(t);
    return in_old;
}
