/* The table's documented semantics as a model, for the unit tests (test_table.c) and the fuzzer
 * (tests/fuzz/fuzz_core.c): which keys have a live id, which id, and in what order they were used.
 * The caller moves `clock` as the table's time moves (never back). */
#ifndef SESSID_TEST_MODEL_H
#define SESSID_TEST_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../csrc/idgen.h"

struct model_entry {
    int present;
    uint8_t id[SESSID_ID_LEN];
    double last_use;
    unsigned long order;            /* when it was last used, to break ties in last_use */
};

struct model {
    struct model_entry *keys;
    int count;                      /* of keys */
    double ttl;
    uint64_t max_entries;           /* 0: no bound */
    double clock;                   /* the table's time */
    unsigned long order;
};

static inline int model_is_live(const struct model *m, int k)
{
    return m->keys[k].present && m->keys[k].last_use + m->ttl > m->clock;
}

static inline size_t model_live(const struct model *m)
{
    size_t live = 0;
    for (int k = 0; k < m->count; k++)
        live += (size_t)model_is_live(m, k);
    return live;
}

/* The least recently used live key, or -1. */
static inline int model_least_recent(const struct model *m)
{
    int lru = -1;
    for (int k = 0; k < m->count; k++)
        if (model_is_live(m, k) && (lru < 0 || m->keys[k].order < m->keys[lru].order))
            lru = k;
    return lru;
}

/* Before a new entry: a full table drops its least recently used live one. */
static inline void model_make_room(struct model *m)
{
    if (m->max_entries != 0 && model_live(m) >= m->max_entries)
        m->keys[model_least_recent(m)].present = 0;
}

static inline void model_use(struct model *m, int k, const uint8_t id[SESSID_ID_LEN])
{
    m->keys[k].present = 1;
    memcpy(m->keys[k].id, id, SESSID_ID_LEN);
    m->keys[k].last_use = m->clock;
    m->keys[k].order = ++m->order;
}

#endif
