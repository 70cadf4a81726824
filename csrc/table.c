#include "table.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

#define NIL UINT32_MAX
#define FREE_MARK (UINT32_MAX - 1)      /* `newer` of an entry that is not in use */
#define MIN_ENTRIES 64
#define RECLAIM_PER_CALL 2

struct entry {
    uint8_t digest[SESSID_DIGEST_LEN];
    uint8_t id[SESSID_ID_LEN];
    double last_use;                    /* expires at last_use + ttl */
    uint32_t older, newer;              /* the use-order list; free entries chain through older */
};

_Static_assert(sizeof(struct entry) == 64, "an entry is one cache line");

struct sessid_table {
    pthread_mutex_t lock;
    double ttl;
    uint32_t max_entries;
    double clock;                       /* the latest `now` seen */
    uint64_t seed[4];                   /* keys the slot hash, so no one can aim keys at one slot */
    struct entry *entries;
    uint32_t capacity;                  /* entries allocated */
    uint32_t used;                      /* entries[0..used) have been handed out at least once */
    uint32_t count;                     /* entries on the use-order list */
    uint32_t free_list;
    uint32_t oldest, newest;
    uint32_t *slots;                    /* linear probing; entry index + 1, 0 when empty */
    size_t slot_mask;                   /* slot count - 1; the count is a power of two or 0 */
    _Atomic uint64_t stats[SESSID_STAT_COUNT];
    sessid_table *registry_prev, *registry_next;
};

/* ---- every live table, so fork() can take all their locks ---- */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static sessid_table *registry_head;
static int atfork_registered;

static void before_fork(void)
{
    pthread_mutex_lock(&registry_lock);
    for (sessid_table *t = registry_head; t != NULL; t = t->registry_next)
        pthread_mutex_lock(&t->lock);
}

static void after_fork_in_parent(void)
{
    for (sessid_table *t = registry_head; t != NULL; t = t->registry_next)
        pthread_mutex_unlock(&t->lock);
    pthread_mutex_unlock(&registry_lock);
}

/* The child has one thread, the one that forked; it holds every lock, so they are fresh again. */
static void after_fork_in_child(void)
{
    for (sessid_table *t = registry_head; t != NULL; t = t->registry_next)
        pthread_mutex_init(&t->lock, NULL);
    pthread_mutex_init(&registry_lock, NULL);
}

static int registry_add(sessid_table *t)
{
    if (pthread_mutex_lock(&registry_lock) != 0)
        return SESSID_EINVAL;
    if (!atfork_registered) {
        if (pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child) != 0) {
            pthread_mutex_unlock(&registry_lock);
            return SESSID_ENOMEM;
        }
        atfork_registered = 1;
    }
    t->registry_prev = NULL;
    t->registry_next = registry_head;
    if (registry_head != NULL)
        registry_head->registry_prev = t;
    registry_head = t;
    pthread_mutex_unlock(&registry_lock);
    return SESSID_OK;
}

static void registry_remove(sessid_table *t)
{
    pthread_mutex_lock(&registry_lock);
    if (t->registry_prev != NULL)
        t->registry_prev->registry_next = t->registry_next;
    else
        registry_head = t->registry_next;
    if (t->registry_next != NULL)
        t->registry_next->registry_prev = t->registry_prev;
    pthread_mutex_unlock(&registry_lock);
}

/* ---- counters ---- */

static void bump(sessid_table *t, enum sessid_stat stat)
{
    atomic_fetch_add_explicit(&t->stats[stat], 1, memory_order_relaxed);
}

void sessid_table_count(sessid_table *t, enum sessid_stat stat)
{
    if ((unsigned)stat < SESSID_STAT_COUNT)
        bump(t, stat);
}

void sessid_table_stats(sessid_table *t, sessid_stats *out)
{
    for (int i = 0; i < SESSID_STAT_COUNT; i++)
        out->counters[i] = atomic_load_explicit(&t->stats[i], memory_order_relaxed);
}

/* ---- the index ---- */

#ifdef __SIZEOF_INT128__
__extension__ typedef unsigned __int128 wide_product;
#endif

static uint64_t mix(uint64_t a, uint64_t b)
{
#ifdef __SIZEOF_INT128__
    wide_product product = (wide_product)a * b;
    return (uint64_t)product ^ (uint64_t)(product >> 64);
#else
    uint64_t h = (a ^ (b >> 29)) * 0xbf58476d1ce4e5b9u;
    h ^= (h >> 31) ^ b;
    return h * 0x94d049bb133111ebu;
#endif
}

static size_t home_slot(const sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN])
{
    uint64_t w[4];
    memcpy(w, digest, sizeof w);
    uint64_t h = mix(w[0] ^ t->seed[0], w[1] ^ t->seed[1]) ^ mix(w[2] ^ t->seed[2], w[3] ^ t->seed[3]);
    return (size_t)h & t->slot_mask;
}

/* The slot holding digest, or the empty slot where it would go. *index gets the entry or NIL. */
static size_t find_slot(const sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN], uint32_t *index)
{
    *index = NIL;
    if (t->slots == NULL)
        return 0;
    size_t slot = home_slot(t, digest);
    for (;;) {
        uint32_t held = t->slots[slot];
        if (held == 0)
            return slot;
        if (memcmp(t->entries[held - 1].digest, digest, SESSID_DIGEST_LEN) == 0) {
            *index = held - 1;
            return slot;
        }
        slot = (slot + 1) & t->slot_mask;
    }
}

/* Backward-shift deletion: no tombstones, so probe chains stay as short as the load allows. */
static void remove_slot(sessid_table *t, size_t hole)
{
    size_t next = hole;
    for (;;) {
        next = (next + 1) & t->slot_mask;
        uint32_t held = t->slots[next];
        if (held == 0)
            break;
        size_t home = home_slot(t, t->entries[held - 1].digest);
        /* The entry at `next` may move back into the hole unless its home lies in (hole, next]. */
        int home_after_hole = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next);
        if (!home_after_hole) {
            t->slots[hole] = held;
            hole = next;
        }
    }
    t->slots[hole] = 0;
}

static void place(sessid_table *t, uint32_t index)
{
    size_t slot = home_slot(t, t->entries[index].digest);
    while (t->slots[slot] != 0)
        slot = (slot + 1) & t->slot_mask;
    t->slots[slot] = index + 1;
}

/* Keeps the load at or below one half for `want` entries. */
static int reserve_slots(sessid_table *t, uint64_t want)
{
    size_t have = t->slots == NULL ? 0 : t->slot_mask + 1;
    if (want * 2 <= have)
        return SESSID_OK;
    size_t grown = have == 0 ? 2 * MIN_ENTRIES : have;
    while (grown < want * 2)
        grown *= 2;
    uint32_t *slots = calloc(grown, sizeof *slots);
    if (slots == NULL)
        return SESSID_ENOMEM;
    free(t->slots);
    t->slots = slots;
    t->slot_mask = grown - 1;
    for (uint32_t i = 0; i < t->used; i++)
        if (t->entries[i].newer != FREE_MARK)
            place(t, i);
    return SESSID_OK;
}

/* ---- the use-order list ---- */

static void unlink_entry(sessid_table *t, uint32_t index)
{
    struct entry *e = &t->entries[index];
    if (e->older != NIL)
        t->entries[e->older].newer = e->newer;
    else
        t->oldest = e->newer;
    if (e->newer != NIL)
        t->entries[e->newer].older = e->older;
    else
        t->newest = e->older;
}

static void link_newest(sessid_table *t, uint32_t index)
{
    struct entry *e = &t->entries[index];
    e->older = t->newest;
    e->newer = NIL;
    if (t->newest != NIL)
        t->entries[t->newest].newer = index;
    else
        t->oldest = index;
    t->newest = index;
}

static void touch(sessid_table *t, uint32_t index, double now)
{
    t->entries[index].last_use = now;
    if (t->newest != index) {
        unlink_entry(t, index);
        link_newest(t, index);
    }
}

/* ---- entries ---- */

static int is_expired(const sessid_table *t, const struct entry *e, double now)
{
    return e->last_use + t->ttl <= now;
}

static void release_entry(sessid_table *t, uint32_t index)
{
    uint32_t found;
    size_t slot = find_slot(t, t->entries[index].digest, &found);
    remove_slot(t, slot);
    unlink_entry(t, index);
    struct entry *e = &t->entries[index];
    memset(e, 0, sizeof *e);
    e->newer = FREE_MARK;
    e->older = t->free_list;
    t->free_list = index;
    t->count--;
}

static size_t reclaim_expired(sessid_table *t, double now, size_t budget)
{
    size_t done = 0;
    while (done < budget && t->oldest != NIL && is_expired(t, &t->entries[t->oldest], now)) {
        release_entry(t, t->oldest);
        bump(t, SESSID_STAT_EXPIRED);
        done++;
    }
    return done;
}

static int reserve_entry(sessid_table *t)
{
    if (t->free_list != NIL || t->used < t->capacity)
        return SESSID_OK;
    uint64_t limit = t->max_entries != 0 ? t->max_entries : SESSID_TABLE_LIMIT;
    if (t->capacity >= limit)
        return SESSID_EFULL;
    uint64_t grown = t->capacity == 0 ? MIN_ENTRIES : (uint64_t)t->capacity * 2;
    if (grown > limit)
        grown = limit;
    struct entry *entries = realloc(t->entries, (size_t)grown * sizeof *entries);
    if (entries == NULL)
        return SESSID_ENOMEM;
    memset(entries + t->capacity, 0, (size_t)(grown - t->capacity) * sizeof *entries);
    t->entries = entries;
    t->capacity = (uint32_t)grown;
    return SESSID_OK;
}

/* Adds a new entry for digest and returns its index through *index; the table is unchanged on
 * failure. The caller fills in id and last_use. */
static int insert_entry(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN], uint32_t *index)
{
    if (t->max_entries != 0 && t->count >= t->max_entries) {
        release_entry(t, t->oldest);
        bump(t, SESSID_STAT_EVICTED);
    } else {
        int rc = reserve_slots(t, (uint64_t)t->count + 1);
        if (rc == SESSID_OK)
            rc = reserve_entry(t);
        if (rc != SESSID_OK)
            return rc;
    }
    uint32_t i;
    if (t->free_list != NIL) {
        i = t->free_list;
        t->free_list = t->entries[i].older;
    } else {
        i = t->used++;
    }
    memcpy(t->entries[i].digest, digest, SESSID_DIGEST_LEN);
    link_newest(t, i);
    place(t, i);
    t->count++;
    *index = i;
    return SESSID_OK;
}

/* Takes the lock and brings the table's time up to *now, which then holds the time to use. */
static int enter(sessid_table *t, double *now)
{
    if (pthread_mutex_lock(&t->lock) != 0)
        return SESSID_ESTATE;
    if (*now > t->clock)
        t->clock = *now;
    *now = t->clock;
    return SESSID_OK;
}

static void leave(sessid_table *t)
{
    pthread_mutex_unlock(&t->lock);
}

/* The live entry for digest, or NIL. On the way, reclaims a few expired entries from the old end,
 * and an expired one still in the index for digest. */
static uint32_t find_live(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN], double now)
{
    reclaim_expired(t, now, RECLAIM_PER_CALL);
    uint32_t index;
    find_slot(t, digest, &index);
    if (index != NIL && is_expired(t, &t->entries[index], now)) {
        release_entry(t, index);
        bump(t, SESSID_STAT_EXPIRED);
        index = NIL;
    }
    return index;
}

/* ---- the public operations ---- */

int sessid_table_new(double ttl, uint64_t max_entries, sessid_table **out)
{
    *out = NULL;
    if (!isfinite(ttl) || ttl <= 0 || max_entries > SESSID_TABLE_LIMIT)
        return SESSID_EINVAL;
    sessid_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        return SESSID_ENOMEM;
    uint8_t seed[sizeof t->seed];
    int rc = sessid_id_new(seed) == SESSID_OK && sessid_id_new(seed + SESSID_ID_LEN) == SESSID_OK
                 ? SESSID_OK : SESSID_ERANDOM;
    if (rc == SESSID_OK && pthread_mutex_init(&t->lock, NULL) != 0)
        rc = SESSID_ENOMEM;
    if (rc != SESSID_OK) {
        free(t);
        return rc;
    }
    memcpy(t->seed, seed, sizeof seed);
    t->ttl = ttl;
    t->max_entries = (uint32_t)max_entries;
    t->clock = -INFINITY;
    t->free_list = NIL;
    t->oldest = NIL;
    t->newest = NIL;
    for (int i = 0; i < SESSID_STAT_COUNT; i++)
        atomic_init(&t->stats[i], 0);
    rc = registry_add(t);
    if (rc != SESSID_OK) {
        pthread_mutex_destroy(&t->lock);
        free(t);
        return rc;
    }
    *out = t;
    return SESSID_OK;
}

void sessid_table_free(sessid_table *t)
{
    if (t == NULL)
        return;
    registry_remove(t);
    pthread_mutex_destroy(&t->lock);
    free(t->entries);
    free(t->slots);
    free(t);
}

int sessid_table_get_or_create(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN],
                               double now, uint8_t id[SESSID_ID_LEN], int *created)
{
    int rc = enter(t, &now);
    if (rc != SESSID_OK)
        return rc;
    uint32_t index = find_live(t, digest, now);
    if (index != NIL) {
        touch(t, index, now);
        memcpy(id, t->entries[index].id, SESSID_ID_LEN);
        bump(t, SESSID_STAT_HITS);
        leave(t);
        *created = 0;
        return SESSID_OK;
    }
    uint8_t fresh[SESSID_ID_LEN];
    rc = sessid_id_new(fresh);
    if (rc == SESSID_OK)
        rc = insert_entry(t, digest, &index);
    if (rc == SESSID_OK) {
        memcpy(t->entries[index].id, fresh, SESSID_ID_LEN);
        t->entries[index].last_use = now;
        memcpy(id, fresh, SESSID_ID_LEN);
        bump(t, SESSID_STAT_MISSES);
        *created = 1;
    }
    leave(t);
    return rc;
}

int sessid_table_peek(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN], double now,
                      double window, uint8_t id[SESSID_ID_LEN], int *found)
{
    *found = 0;
    int rc = enter(t, &now);
    if (rc != SESSID_OK)
        return rc;
    uint32_t index = find_live(t, digest, now);
    *found = index != NIL && now < t->entries[index].last_use + window;
    if (*found)
        memcpy(id, t->entries[index].id, SESSID_ID_LEN);
    leave(t);
    return SESSID_OK;
}

int sessid_table_put(sessid_table *t, const uint8_t digest[SESSID_DIGEST_LEN],
                     const uint8_t id[SESSID_ID_LEN], double now)
{
    int rc = enter(t, &now);
    if (rc != SESSID_OK)
        return rc;
    uint32_t index = find_live(t, digest, now);
    if (index == NIL)
        rc = insert_entry(t, digest, &index);
    if (rc == SESSID_OK) {
        memcpy(t->entries[index].id, id, SESSID_ID_LEN);
        touch(t, index, now);
    }
    leave(t);
    return rc;
}

int sessid_table_purge(sessid_table *t, double now, size_t *reclaimed)
{
    int rc = enter(t, &now);
    if (rc != SESSID_OK)
        return rc;
    size_t done = reclaim_expired(t, now, SIZE_MAX);
    leave(t);
    if (reclaimed != NULL)
        *reclaimed = done;
    return SESSID_OK;
}

int sessid_table_live(sessid_table *t, double now, size_t *live)
{
    int rc = enter(t, &now);
    if (rc != SESSID_OK)
        return rc;
    reclaim_expired(t, now, SIZE_MAX);
    *live = t->count;
    leave(t);
    return SESSID_OK;
}

int sessid_table_clear(sessid_table *t)
{
    if (pthread_mutex_lock(&t->lock) != 0)
        return SESSID_ESTATE;
    free(t->entries);
    free(t->slots);
    t->entries = NULL;
    t->slots = NULL;
    t->slot_mask = 0;
    t->capacity = t->used = t->count = 0;
    t->free_list = t->oldest = t->newest = NIL;
    pthread_mutex_unlock(&t->lock);
    return SESSID_OK;
}

static size_t storage_size(const sessid_table *t)
{
    size_t slots = t->slots == NULL ? 0 : (t->slot_mask + 1) * sizeof *t->slots;
    return (size_t)t->capacity * sizeof *t->entries + slots;
}

size_t sessid_table_footprint(sessid_table *t)
{
    pthread_mutex_lock(&t->lock);
    size_t size = storage_size(t);
    pthread_mutex_unlock(&t->lock);
    return size;
}

int sessid_table_dump(sessid_table *t, uint8_t **out, size_t *len)
{
    if (pthread_mutex_lock(&t->lock) != 0)
        return SESSID_ESTATE;
    size_t entries = (size_t)t->capacity * sizeof *t->entries;
    size_t total = storage_size(t);
    uint8_t *buf = malloc(total > 0 ? total : 1);
    if (buf != NULL) {
        if (entries > 0)
            memcpy(buf, t->entries, entries);
        if (total > entries)
            memcpy(buf + entries, t->slots, total - entries);
    }
    pthread_mutex_unlock(&t->lock);
    if (buf == NULL)
        return SESSID_ENOMEM;
    *out = buf;
    *len = total;
    return SESSID_OK;
}
