#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../csrc/sessid.h"
#include "../../csrc/table_testing.h"
#include "check.h"
#include "tests.h"

static void digest_of(int n, uint8_t out[SESSID_DIGEST_LEN])
{
    char key[32];
    int len = snprintf(key, sizeof key, "key-%d", n);
    CHECK_STATUS(sessid_digest(key, (size_t)len, out), SESSID_OK);
}

/* get_or_create for key n; returns whether the id was new, the id in id. */
static int lookup(sessid_table *t, int n, double now, uint8_t id[SESSID_ID_LEN])
{
    uint8_t digest[SESSID_DIGEST_LEN];
    int created = -1;
    digest_of(n, digest);
    CHECK_STATUS(sessid_table_get_or_create(t, digest, now, id, &created), SESSID_OK);
    return created;
}

static size_t live_count(sessid_table *t, double now)
{
    return sessid_table_live(t, now);
}

static sessid_table *new_table(double ttl, uint64_t max_entries)
{
    sessid_table *t = NULL;
    CHECK_STATUS(sessid_table_new(ttl, max_entries, &t), SESSID_OK);
    return t;
}

static void rejects_bad_settings(void)
{
    sessid_table *t = (sessid_table *)&t;
    CHECK_STATUS(sessid_table_new(0, 0, &t), SESSID_EINVAL);
    CHECK(t == NULL);
    CHECK_STATUS(sessid_table_new(-1, 0, &t), SESSID_EINVAL);
    CHECK_STATUS(sessid_table_new(NAN, 0, &t), SESSID_EINVAL);
    CHECK_STATUS(sessid_table_new(INFINITY, 0, &t), SESSID_EINVAL);
    CHECK_STATUS(sessid_table_new(1, SESSID_TABLE_LIMIT + 1, &t), SESSID_EINVAL);
    sessid_table_free(NULL);
}

static void same_key_same_id_other_key_other_id(void)
{
    sessid_table *t = new_table(3600, 0);
    uint8_t a[SESSID_ID_LEN], again[SESSID_ID_LEN], b[SESSID_ID_LEN];
    CHECK(lookup(t, 1, 0, a) == 1);
    CHECK(lookup(t, 1, 1, again) == 0);
    CHECK(memcmp(a, again, SESSID_ID_LEN) == 0);
    CHECK(lookup(t, 2, 2, b) == 1);
    CHECK(memcmp(a, b, SESSID_ID_LEN) != 0);
    CHECK(live_count(t, 3) == 2);
    sessid_table_free(t);
}

static void expires_exactly_ttl_after_last_use(void)
{
    sessid_table *t = new_table(10, 0);
    uint8_t first[SESSID_ID_LEN], id[SESSID_ID_LEN];
    lookup(t, 1, 100, first);
    CHECK(lookup(t, 1, 109.999, id) == 0);            /* a hit renews: now expires at 119.999 */
    CHECK(lookup(t, 1, 119.998, id) == 0);            /* renews to 129.998 */
    CHECK(memcmp(first, id, SESSID_ID_LEN) == 0);
    CHECK(lookup(t, 1, 129.998, id) == 1);            /* exactly ttl after the last use: gone */
    CHECK(memcmp(first, id, SESSID_ID_LEN) != 0);
    sessid_table_free(t);
}

static void time_never_runs_backwards(void)
{
    sessid_table *t = new_table(10, 0);
    uint8_t first[SESSID_ID_LEN], id[SESSID_ID_LEN];
    lookup(t, 1, 100, first);
    lookup(t, 2, 105, id);
    CHECK(lookup(t, 1, 50, id) == 0);                 /* counts as 105: renews key 1 to 115 */
    CHECK(memcmp(first, id, SESSID_ID_LEN) == 0);
    CHECK(lookup(t, 1, 114.5, id) == 0);
    CHECK(live_count(t, 115.1) == 1);                       /* key 2 expired at 115, key 1 lives on */
    sessid_table_free(t);
}

static void evicts_least_recently_used(void)
{
    sessid_table *t = new_table(3600, 3);
    uint8_t id1[SESSID_ID_LEN], id[SESSID_ID_LEN];
    lookup(t, 1, 0, id1);
    lookup(t, 2, 1, id);
    lookup(t, 3, 2, id);
    lookup(t, 1, 3, id);                              /* key 1 is now the most recent */
    CHECK(lookup(t, 4, 4, id) == 1);                  /* evicts key 2 */
    CHECK(live_count(t, 5) == 3);
    CHECK(lookup(t, 1, 6, id) == 0);
    CHECK(memcmp(id, id1, SESSID_ID_LEN) == 0);
    CHECK(lookup(t, 3, 7, id) == 0);
    CHECK(lookup(t, 2, 8, id) == 1);                  /* was evicted; evicts key 4 */
    CHECK(lookup(t, 4, 9, id) == 1);
    sessid_stats stats;
    sessid_table_stats(t, &stats);
    CHECK(stats.counters[SESSID_STAT_EVICTED] == 3);
    sessid_table_free(t);
}

static void counts_hits_misses_and_expiry(void)
{
    sessid_table *t = new_table(10, 0);
    uint8_t id[SESSID_ID_LEN];
    lookup(t, 1, 0, id);
    lookup(t, 1, 1, id);
    lookup(t, 2, 2, id);
    lookup(t, 1, 20, id);                             /* both expired by now */
    sessid_table_count(t, SESSID_STAT_KV_ERRORS);
    sessid_stats stats;
    sessid_table_stats(t, &stats);
    CHECK(stats.counters[SESSID_STAT_HITS] == 1);
    CHECK(stats.counters[SESSID_STAT_MISSES] == 3);
    CHECK(stats.counters[SESSID_STAT_EXPIRED] == 2);
    CHECK(stats.counters[SESSID_STAT_EVICTED] == 0);
    CHECK(stats.counters[SESSID_STAT_KV_ERRORS] == 1);
    sessid_table_free(t);
}

#define GROWN 100000

static void grows_and_finds_every_entry(void)
{
    sessid_table *t = new_table(3600, 0);
    uint8_t (*ids)[SESSID_ID_LEN] = malloc(GROWN * sizeof *ids);
    CHECK(ids != NULL);
    if (ids == NULL)
        return;
    for (int i = 0; i < GROWN; i++)
        CHECK(lookup(t, i, i * 1e-3, ids[i]) == 1);
    for (int i = 0; i < GROWN; i++) {
        uint8_t id[SESSID_ID_LEN];
        CHECK(lookup(t, i, 200 + i * 1e-3, id) == 0);
        CHECK(memcmp(id, ids[i], SESSID_ID_LEN) == 0);
    }
    CHECK(live_count(t, 400) == GROWN);
    CHECK(sessid_table_footprint(t) <= (size_t)GROWN * 64 * 2 + (size_t)GROWN * 16);
    free(ids);
    sessid_table_free(t);
}

/* After mass expiry each call reclaims a bounded number of entries; purge takes the rest. */
static void expiry_is_reclaimed_a_little_per_call(void)
{
    sessid_table *t = new_table(10, 0);
    uint8_t id[SESSID_ID_LEN];
    for (int i = 0; i < 1000; i++)
        lookup(t, i, 0, id);
    lookup(t, -1, 50, id);
    sessid_stats stats;
    sessid_table_stats(t, &stats);
    CHECK(stats.counters[SESSID_STAT_EXPIRED] > 0 && stats.counters[SESSID_STAT_EXPIRED] <= 4);
    size_t reclaimed = sessid_table_purge(t, 50);
    CHECK(reclaimed + stats.counters[SESSID_STAT_EXPIRED] == 1000);
    CHECK(live_count(t, 50) == 1);
    for (int i = 0; i < 1000; i++)                    /* re-filling reuses the freed entries */
        CHECK(lookup(t, i, 51, id) == 1);
    CHECK(live_count(t, 52) == 1001);
    sessid_table_free(t);
}

static void removal_keeps_probe_chains_intact(void)
{
    /* Inserts and expiries interleaved: every live key must stay findable. */
    sessid_table *t = new_table(50, 0);
    uint8_t ids[3000][SESSID_ID_LEN];
    for (int i = 0; i < 3000; i++) {
        lookup(t, i, i, ids[i]);
        if (i >= 50) {
            uint8_t id[SESSID_ID_LEN];
            for (int j = i - 40; j <= i; j += 3) {
                CHECK(lookup(t, j, i, id) == 0);
                CHECK(memcmp(id, ids[j], SESSID_ID_LEN) == 0);
            }
        }
    }
    sessid_table_free(t);
}

static void peek_sees_only_recent_entries(void)
{
    sessid_table *t = new_table(100, 0);
    uint8_t digest[SESSID_DIGEST_LEN], id[SESSID_ID_LEN], stored[SESSID_ID_LEN], seen[SESSID_ID_LEN];
    digest_of(7, digest);
    CHECK(sessid_table_peek(t, digest, 0, 10, seen) == 0);
    CHECK_STATUS(sessid_id_new(stored), SESSID_OK);
    CHECK_STATUS(sessid_table_put(t, digest, stored, 0), SESSID_OK);
    CHECK(sessid_table_peek(t, digest, 9.5, 10, seen) == 1);
    CHECK(memcmp(seen, stored, SESSID_ID_LEN) == 0);
    CHECK(sessid_table_peek(t, digest, 10, 10, seen) == 0);     /* a peek does not renew */
    CHECK_STATUS(sessid_id_new(id), SESSID_OK);
    CHECK_STATUS(sessid_table_put(t, digest, id, 11), SESSID_OK);   /* put replaces */
    CHECK(sessid_table_peek(t, digest, 12, 10, seen) == 1);
    CHECK(memcmp(seen, id, SESSID_ID_LEN) == 0);
    CHECK(live_count(t, 12) == 1);
    sessid_table_free(t);
}

static void clear_drops_everything(void)
{
    sessid_table *t = new_table(100, 0);
    uint8_t first[SESSID_ID_LEN], id[SESSID_ID_LEN];
    lookup(t, 1, 0, first);
    lookup(t, 2, 0, id);
    sessid_table_clear(t);
    CHECK(live_count(t, 0) == 0);
    CHECK(sessid_table_footprint(t) == 0);
    CHECK(lookup(t, 1, 1, id) == 1);
    CHECK(memcmp(first, id, SESSID_ID_LEN) != 0);
    sessid_table_free(t);
}

static void dump_holds_digests_and_ids_only(void)
{
    sessid_table *t = new_table(100, 0);
    uint8_t id[SESSID_ID_LEN], digest[SESSID_DIGEST_LEN];
    lookup(t, 42, 0, id);
    uint8_t *dump = NULL;
    size_t len = 0;
    CHECK_STATUS(sessid_table_dump(t, &dump, &len), SESSID_OK);
    CHECK(len == sessid_table_footprint(t));
    digest_of(42, digest);
    CHECK(dump != NULL && memmem(dump, len, digest, SESSID_DIGEST_LEN) != NULL);
    CHECK(dump != NULL && memmem(dump, len, "key-42", 6) == NULL);
    free(dump);
    sessid_table_free(t);
}

#define THREADS 4
#define PER_THREAD 20000

struct hammer {
    sessid_table *table;
    uint8_t first[SESSID_ID_LEN];
    int disagreements;
};

static void *hammer_one_key(void *arg)
{
    struct hammer *h = arg;
    uint8_t digest[SESSID_DIGEST_LEN];
    uint8_t id[SESSID_ID_LEN];
    int created;
    digest_of(99, digest);
    for (int i = 0; i < PER_THREAD; i++) {
        if (sessid_table_get_or_create(h->table, digest, 1, id, &created) != SESSID_OK)
            h->disagreements++;
        if (i == 0)
            memcpy(h->first, id, SESSID_ID_LEN);
        else if (memcmp(h->first, id, SESSID_ID_LEN) != 0)
            h->disagreements++;
        /* other keys churn the table meanwhile */
        uint8_t other[SESSID_DIGEST_LEN];
        digest_of(1000 + i % 500, other);
        if (sessid_table_get_or_create(h->table, other, 1, id, &created) != SESSID_OK)
            h->disagreements++;
    }
    return NULL;
}

static void threads_agree_on_one_id(void)
{
    sessid_table *t = new_table(3600, 256);
    pthread_t threads[THREADS];
    struct hammer h[THREADS];
    for (int i = 0; i < THREADS; i++) {
        memset(&h[i], 0, sizeof h[i]);
        h[i].table = t;
        CHECK(pthread_create(&threads[i], NULL, hammer_one_key, &h[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_join(threads[i], NULL) == 0);
    for (int i = 0; i < THREADS; i++) {
        CHECK(h[i].disagreements == 0);
        CHECK(memcmp(h[i].first, h[0].first, SESSID_ID_LEN) == 0);
    }
    sessid_table_free(t);
}

#define CHURN_KEYS 1000

struct churn {
    sessid_table *table;
    int light;                      /* pause between calls: valgrind runs one thread at a time */
    atomic_int stop;
    atomic_long calls;
    uint8_t digests[CHURN_KEYS][SESSID_DIGEST_LEN];
};

/* Only table calls here: a thread that made its own digest context would leave it behind in every
 * child, where valgrind would rightly count it as lost. */
static void *churn_table(void *arg)
{
    struct churn *c = arg;
    uint8_t id[SESSID_ID_LEN];
    int created;
    for (int i = 0; !atomic_load(&c->stop); i++) {
        sessid_table_get_or_create(c->table, c->digests[i % CHURN_KEYS], i, id, &created);
        atomic_fetch_add(&c->calls, 1);
        if (c->light)
            usleep(100);
    }
    return NULL;
}

/* A fork while another thread works in the table must leave the table usable on both sides: the
 * child would otherwise inherit the lock held and hang (alarm turns that into a failure). */
static void fork_while_another_thread_is_inside(void)
{
    sessid_table *t = new_table(5, 0);
    /* Under valgrind (make valgrind sets SESSID_TEST_LIGHT) every fork copies the whole tool. */
    int light = getenv("SESSID_TEST_LIGHT") != NULL;
    static struct churn c;
    c.table = t;
    c.light = light;
    atomic_init(&c.stop, 0);
    atomic_init(&c.calls, 0);
    for (int i = 0; i < CHURN_KEYS; i++)
        digest_of(i, c.digests[i]);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, churn_table, &c) == 0);
    for (int round = 0; round < (light ? 3 : 20); round++) {
        long before = atomic_load(&c.calls);
        while (atomic_load(&c.calls) < before + (light ? 10 : 1000))
            sched_yield();
        pid_t child = fork();
        CHECK(child >= 0);
        if (child == 0) {
            alarm(5);
            uint8_t id[SESSID_ID_LEN], again[SESSID_ID_LEN];
            int created;
            uint8_t digest[SESSID_DIGEST_LEN];
            CHECK_STATUS(sessid_digest("child", 5, digest), SESSID_OK);
            int ok = sessid_table_get_or_create(t, digest, 1e9, id, &created) == SESSID_OK
                     && sessid_table_get_or_create(t, digest, 1e9, again, &created) == SESSID_OK
                     && memcmp(id, again, SESSID_ID_LEN) == 0;
            _exit(ok ? 0 : 1);
        }
        int status = 0;
        CHECK(waitpid(child, &status, 0) == child);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    atomic_store(&c.stop, 1);
    CHECK(pthread_join(thread, NULL) == 0);
    sessid_table_free(t);
}

/* A tiny model of the table's semantics, checked against it over random operations with time moving
 * forward (and sometimes back), expiry, and eviction by max_entries. */
#define MODEL_KEYS 300
#define MODEL_MAX 64

struct model_entry {
    int present;
    uint8_t id[SESSID_ID_LEN];
    double last_use;
    unsigned long order;            /* when it was last used, to break ties in last_use */
};

static int model_live(const struct model_entry *model, double clock)
{
    int live = 0;
    for (int i = 0; i < MODEL_KEYS; i++)
        live += model[i].present && model[i].last_use + 10 > clock;
    return live;
}

static unsigned long next_random(unsigned long *state)
{
    *state = *state * 6364136223846793005ul + 1442695040888963407ul;
    return *state >> 33;
}

static void model_matches_random_operations(void)
{
    sessid_table *t = new_table(10, MODEL_MAX);
    static struct model_entry model[MODEL_KEYS];
    static uint8_t digests[MODEL_KEYS][SESSID_DIGEST_LEN];
    memset(model, 0, sizeof model);
    for (int k = 0; k < MODEL_KEYS; k++)
        digest_of(k, digests[k]);
    unsigned long rng = 42, order = 0;
    double now = 0, clock = 0;
    int mismatches = 0;
    for (int step = 0; step < 100000 && mismatches < 5; step++) {
        unsigned long r = next_random(&rng);
        now += (r % 100 == 0) ? -3.0 : (double)(r % 7) * 0.25;
        if (now > clock)
            clock = now;
        int k = (int)(next_random(&rng) % (r % 3 == 0 ? 40 : MODEL_KEYS));
        struct model_entry *m = &model[k];
        int expect_created = !(m->present && m->last_use + 10 > clock);
        if (expect_created && model_live(model, clock) >= MODEL_MAX) {
            int lru = -1;
            for (int i = 0; i < MODEL_KEYS; i++)
                if (model[i].present && model[i].last_use + 10 > clock
                    && (lru < 0 || model[i].order < model[lru].order))
                    lru = i;
            model[lru].present = 0;
        }
        uint8_t id[SESSID_ID_LEN];
        int created = -1;
        CHECK_STATUS(sessid_table_get_or_create(t, digests[k], now, id, &created), SESSID_OK);
        if (created != expect_created || (!created && memcmp(id, m->id, SESSID_ID_LEN) != 0)) {
            fprintf(stderr, "step %d key %d: created %d, model says %d\n", step, k, created,
                    expect_created);
            mismatches++;
        }
        m->present = 1;
        memcpy(m->id, id, SESSID_ID_LEN);
        m->last_use = clock;
        m->order = ++order;
        if (step % 1000 == 0)
            CHECK(live_count(t, clock) == (size_t)model_live(model, clock));
    }
    CHECK(mismatches == 0);
    sessid_table_free(t);
}

static void memory_stays_within_96_bytes_an_entry(void)
{
    sessid_table *t = new_table(3600, 0);
    uint8_t id[SESSID_ID_LEN];
    for (int i = 0; i < 100000; i++) {
        lookup(t, i, 0, id);
        if (i >= 1000 && i % 997 == 0)
            CHECK(sessid_table_footprint(t) <= (size_t)(i + 1) * 96);
    }
    sessid_table_free(t);
}

static void put_takes_only_version_4_ids(void)
{
    sessid_table *t = new_table(100, 0);
    uint8_t digest[SESSID_DIGEST_LEN], id[SESSID_ID_LEN] = {0};
    digest_of(1, digest);
    CHECK_STATUS(sessid_table_put(t, digest, id, 0), SESSID_EINVAL);
    id[6] = 0x40;
    CHECK_STATUS(sessid_table_put(t, digest, id, 0), SESSID_OK);
    CHECK(live_count(t, 0) == 1);
    sessid_table_free(t);
}

void test_table(void)
{
    RUN(rejects_bad_settings);
    RUN(same_key_same_id_other_key_other_id);
    RUN(expires_exactly_ttl_after_last_use);
    RUN(time_never_runs_backwards);
    RUN(evicts_least_recently_used);
    RUN(counts_hits_misses_and_expiry);
    RUN(grows_and_finds_every_entry);
    RUN(expiry_is_reclaimed_a_little_per_call);
    RUN(removal_keeps_probe_chains_intact);
    RUN(peek_sees_only_recent_entries);
    RUN(clear_drops_everything);
    RUN(dump_holds_digests_and_ids_only);
    RUN(model_matches_random_operations);
    RUN(memory_stays_within_96_bytes_an_entry);
    RUN(put_takes_only_version_4_ids);
    RUN(threads_agree_on_one_id);
    RUN(fork_while_another_thread_is_inside);
}
