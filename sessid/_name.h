/* A shared store's table and its name: opening the table (its lock's waits set to release the GIL),
 * and following the name once a tick, to the table now there, when the file was removed or
 * replaced. */
#ifndef SESSIDPY_NAME_H
#define SESSIDPY_NAME_H

#include "_options.h"
#include "_state.h"

typedef struct sessidpy_name {
    double checked_at;          /* when the name was last checked (the store's clock) */
    int lost;                   /* the table at the name could not be opened: logged once */
    sessid_table **left_behind; /* PyMem: tables the name moved away from, freed with the store */
    size_t left_behind_count;   /* (a call in another thread may still be inside one) */
} sessidpy_name;

/* Opens the shared table of o (making it when create is 1), its waits for another process's hold
 * of its lock bounded by o's lock_timeout and made without the GIL. Returns 0, or -1 with
 * sessid.Error naming the file. */
int sessidpy_name_open(sessidpy_state *state, const sessidpy_options *o, int create,
                       sessid_table **out);

/* How often a shared store checks that its file is still the one at its name: one tick of the
 * coarse clock. */
#define SESSIDPY_FOLLOW_NAME_EVERY 0.004

/* 1 while now is within the tick of the name's last check (a clock read before it is not). */
static inline int sessidpy_name_checked_this_tick(const sessidpy_name *name, double now)
{
    return !(now - name->checked_at >= SESSIDPY_FOLLOW_NAME_EVERY) && now >= name->checked_at;
}

/* sessidpy_name_follow once its tick has come, or while the name is lost. */
int sessidpy_name_check(sessidpy_state *state, const sessidpy_options *o, sessidpy_name *name,
                        sessid_table **table, double now);

/* Once a tick of now: when the file at o's name is no longer *table's, opens (or makes) the table
 * now there and puts it in *table, keeping the old one in name. Returns 0, or -1 with the error of
 * opening it (*table is kept, and tried again at the next tick; between two, the error says so).
 * Inline: every lookup of a shared store asks, and within a tick the answer is 0. */
static inline int sessidpy_name_follow(sessidpy_state *state, const sessidpy_options *o,
                                       sessidpy_name *name, sessid_table **table, double now)
{
    if (sessidpy_name_checked_this_tick(name, now) && !name->lost)
        return 0;
    return sessidpy_name_check(state, o, name, table, now);
}

/* After sessidpy_name_follow failed: a best-effort lookup logs the error (the first time) and goes
 * on, in local mode without the table (*without_table set: a fresh id), in KV mode with the table
 * it has, as a cache only; returns 0. A required lookup returns -1, the error still raised. */
int sessidpy_name_lost(sessidpy_state *state, const sessidpy_options *o, sessidpy_name *name,
                       int best_effort, int *without_table);

/* Frees the tables name moved away from. */
void sessidpy_name_clear(sessidpy_name *name);

#endif
