/* Hooks into the table for tests, built only with SESSID_TESTING: a look at the memory a table
 * holds, and a growth slowed down so that every operation can meet one under way. */
#include "table_testing.h"

#ifdef SESSID_TESTING
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
#endif
