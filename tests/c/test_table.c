#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "table_calls.h"
#include "../../csrc/sessid.h"
#include "../../csrc/table_testing.h"
#include "check.h"
#include "model.h"
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
    CHECK_STATUS(sessid_table_get_or_create(t, digest, now, id, &created, SESSID_LOCK_REQUIRED), SESSID_OK);
    return created;
}

/* Keys first to first + count - 1 are all hits at `now`, each with its id in ids (ids[0] for key
 * first). */
static void still_has(sessid_table *t, int first, int count, double now, uint8_t (*ids)[SESSID_ID_LEN])
{
    for (int i = 0; i < count; i++) {
        uint8_t id[SESSID_ID_LEN];
        CHECK(lookup(t, first + i, now, id) == 0);
        CHECK(memcmp(id, ids[i], SESSID_ID_LEN) == 0);
    }
}

static size_t live_count(sessid_table *t, double now)
{
    return table_live(t, now);
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
    size_t reclaimed = table_purge(t, 50);
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
    table_clear(t);
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
        if (sessid_table_get_or_create(h->table, digest, 1, id, &created, SESSID_LOCK_REQUIRED) != SESSID_OK)
            h->disagreements++;
        if (i == 0)
            memcpy(h->first, id, SESSID_ID_LEN);
        else if (memcmp(h->first, id, SESSID_ID_LEN) != 0)
            h->disagreements++;
        /* other keys churn the table meanwhile */
        uint8_t other[SESSID_DIGEST_LEN];
        digest_of(1000 + i % 500, other);
        if (sessid_table_get_or_create(h->table, other, 1, id, &created, SESSID_LOCK_REQUIRED) != SESSID_OK)
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
        sessid_table_get_or_create(c->table, c->digests[i % CHURN_KEYS], i, id, &created, SESSID_LOCK_REQUIRED);
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
            int ok = sessid_table_get_or_create(t, digest, 1e9, id, &created, SESSID_LOCK_REQUIRED) == SESSID_OK
                     && sessid_table_get_or_create(t, digest, 1e9, again, &created, SESSID_LOCK_REQUIRED) == SESSID_OK
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

/* A tiny model of the table's semantics, checked against it over random operations (lookups,
 * peeks, puts, removals, purges) with time moving forward (and sometimes back), expiry, eviction by
 * max_entries, and growths under way. */
struct model_run {
    int keys;
    uint64_t max_entries;
    size_t growth_step;             /* 0: the table's own */
    size_t pieces;                  /* 0: the table's own */
    int steps;
    double tick;                    /* time moves on by up to 6 ticks a step */
};

static unsigned long next_random(unsigned long *state)
{
    *state = *state * 6364136223846793005ul + 1442695040888963407ul;
    return *state >> 33;
}

/* Runs one model; returns how many steps met a growth under way. */
static int run_model(const struct model_run *run)
{
    sessid_table *t = new_table(10, run->max_entries);
    if (run->growth_step != 0)
        sessid_table_growth_step(t, run->growth_step);
    if (run->pieces != 0)
        sessid_table_growth_pieces(t, run->pieces);
    struct model m = {calloc((size_t)run->keys, sizeof *m.keys), run->keys, 10, run->max_entries, 0, 0};
    uint8_t (*digests)[SESSID_DIGEST_LEN] = malloc((size_t)run->keys * SESSID_DIGEST_LEN);
    CHECK(m.keys != NULL && digests != NULL);
    if (m.keys == NULL || digests == NULL) {
        free(m.keys);
        free(digests);
        sessid_table_free(t);
        return 0;
    }
    for (int k = 0; k < run->keys; k++)
        digest_of(k, digests[k]);
    unsigned long rng = 42;
    double now = 0;
    int mismatches = 0, growing = 0;
    for (int step = 0; step < run->steps && mismatches < 5; step++) {
        unsigned long r = next_random(&rng);
        now += (r % 100 == 0) ? -3.0 : (double)(r % 7) * run->tick;
        if (now > m.clock)
            m.clock = now;
        int k = (int)(next_random(&rng) % (unsigned long)(r % 3 == 0 ? 40 : run->keys));
        struct model_entry *e = &m.keys[k];
        growing += sessid_table_growth_left(t) > 0;
        uint8_t id[SESSID_ID_LEN];
        int op = (int)(next_random(&rng) % 16), created = -1, wrong = 0;
        if (op <= 9) {
            int expect_created = !model_is_live(&m, k);
            if (expect_created)
                model_make_room(&m);
            CHECK_STATUS(sessid_table_get_or_create(t, digests[k], now, id, &created, SESSID_LOCK_REQUIRED), SESSID_OK);
            wrong = created != expect_created || (!created && memcmp(id, e->id, SESSID_ID_LEN) != 0);
            model_use(&m, k, id);
        } else if (op == 10) {
            int found = sessid_table_peek(t, digests[k], now, 3.0, id);
            wrong = found != (model_is_live(&m, k) && m.clock < e->last_use + 3.0)
                    || (found && memcmp(id, e->id, SESSID_ID_LEN) != 0);
        } else if (op == 11) {
            CHECK_STATUS(sessid_id_new(id), SESSID_OK);
            if (!model_is_live(&m, k))
                model_make_room(&m);
            CHECK_STATUS(sessid_table_put(t, digests[k], id, now), SESSID_OK);
            model_use(&m, k, id);
        } else if (op <= 13) {
            CHECK_STATUS(sessid_table_remove(t, digests[k], now), SESSID_OK);
            e->present = 0;
        } else if (op == 14) {
            wrong = live_count(t, now) != model_live(&m);
        } else {
            table_purge(t, now);
        }
        if (wrong) {
            fprintf(stderr, "step %d key %d op %d: the table and the model disagree\n", step, k, op);
            mismatches++;
        }
        if (step % 256 == 0)
            CHECK_STATUS(sessid_table_check(t), 0);
    }
    CHECK(mismatches == 0);
    CHECK_STATUS(sessid_table_check(t), 0);
    free(m.keys);
    free(digests);
    sessid_table_free(t);
    return growing;
}

static void model_matches_random_operations(void)
{
    struct model_run small = {.keys = 300, .max_entries = 64, .steps = 100000, .tick = 0.25};
    run_model(&small);
}

/* With a growth step of one slot, a growth lasts as long as the old array has slots, and most
 * operations meet one under way (and inserts that must grow again catch up with it). Pieces of a
 * page give these small tables the mapped arrays, made and given back as they go, of large ones. */
static void model_matches_while_tables_grow(void)
{
    int light = getenv("SESSID_TEST_LIGHT") != NULL;
    struct model_run unbounded = {.keys = 3000, .growth_step = 1, .pieces = 4096,
                                  .steps = light ? 20000 : 60000, .tick = 0.001};
    struct model_run bounded = unbounded;
    bounded.max_entries = 1500;
    int steps = unbounded.steps;
    CHECK(run_model(&unbounded) > steps / 10);
    CHECK(run_model(&bounded) > steps / 10);
}

/* At rest a table holds at most 91 bytes an entry. While it grows it holds its old array too, less
 * the part already given back: at most 64 * (1 + 1.2) / 0.85, about 166 bytes an entry. */
static void memory_stays_within_96_bytes_an_entry(void)
{
    sessid_table *t = new_table(3600, 0);
    uint8_t id[SESSID_ID_LEN];
    for (int i = 0; i < 100000; i++) {
        lookup(t, i, 0, id);
        size_t most = sessid_table_growth_left(t) > 0 ? 168 : 96;
        if (i >= 1000 && i % 997 == 0)
            CHECK(sessid_table_footprint(t) <= (size_t)(i + 1) * most);
    }
    sessid_table_free(t);
}

/* Each insert moves the entries of at most 64 old slots; one growth ends before the next begins;
 * a growth allocates nothing more, and gives its old array back as it goes. */
static void grows_a_little_per_insert(void)
{
    sessid_table *t = new_table(3600, 0);
    uint8_t id[SESSID_ID_LEN];
    size_t left = 0, held = 0;
    int growths = 0, given_back = 0;
    for (int i = 0; i < GROWN; i++) {
        lookup(t, i, 0, id);
        size_t now_left = sessid_table_growth_left(t), now_held = sessid_table_footprint(t);
        if (now_left > left) {
            CHECK(left == 0);
            growths++;
        } else if (left > 0) {
            CHECK(left - now_left <= 64);
            CHECK(now_held <= held);
            given_back += now_held < held && now_left > 0;
        }
        left = now_left;
        held = now_held;
    }
    CHECK(growths >= 20);
    CHECK(given_back > 0);
    CHECK_STATUS(sessid_table_check(t), 0);
    sessid_table_free(t);
}

/* Inserts key after key into a table that grows one slot per insert until a growth is under way with
 * at least `least` entries; returns how many keys it inserted (keys 0 to n - 1, at time `now`). */
static int fill_until_growing(sessid_table *t, int least, double now, uint8_t (*ids)[SESSID_ID_LEN])
{
    uint8_t id[SESSID_ID_LEN];
    int n = 0;
    while (n < least || sessid_table_growth_left(t) == 0) {
        CHECK(lookup(t, n, now, ids != NULL ? ids[n] : id) == 1);
        n++;
    }
    return n;
}

#define SLOW_KEYS 4000

/* A growth one slot per insert, met by hits, inserts and removals: no id changes. */
static void ids_stay_while_a_table_grows(void)
{
    sessid_table *t = new_table(3600, 0);
    sessid_table_growth_step(t, 1);
    sessid_table_growth_pieces(t, 4096);
    static uint8_t ids[SLOW_KEYS][SESSID_ID_LEN];
    static int gone[SLOW_KEYS];
    memset(gone, 0, sizeof gone);
    int met = 0;
    for (int i = 0; i < SLOW_KEYS; i++) {
        CHECK(lookup(t, i, 1, ids[i]) == 1);
        if (sessid_table_growth_left(t) == 0)
            continue;
        met++;
        uint8_t id[SESSID_ID_LEN], digest[SESSID_DIGEST_LEN];
        int k = i / 2;
        CHECK(lookup(t, k, 1, id) == gone[k]);
        CHECK(gone[k] || memcmp(id, ids[k], SESSID_ID_LEN) == 0);
        memcpy(ids[k], id, SESSID_ID_LEN);
        gone[k] = 0;
        if (i % 10 == 0) {
            digest_of(i / 3, digest);
            CHECK_STATUS(sessid_table_remove(t, digest, 1), SESSID_OK);
            gone[i / 3] = 1;
        }
        if (i % 100 == 0)
            CHECK_STATUS(sessid_table_check(t), 0);
    }
    CHECK(met > SLOW_KEYS / 2);
    size_t live = 0;
    for (int i = 0; i < SLOW_KEYS; i++)
        live += !gone[i];
    CHECK(live_count(t, 2) == live);
    for (int i = 0; i < SLOW_KEYS; i++) {
        uint8_t id[SESSID_ID_LEN];
        CHECK(lookup(t, i, 2, id) == gone[i]);
        CHECK(gone[i] || memcmp(id, ids[i], SESSID_ID_LEN) == 0);
    }
    CHECK_STATUS(sessid_table_check(t), 0);
    sessid_table_free(t);
}

/* A growth unmaps its old array's pages as it empties them: lookups of absent keys, whose first
 * slot may lie there, must not read them, and every invariant holds on the way. */
static void lookups_skip_what_a_growth_gave_back(void)
{
    sessid_table *t = new_table(3600, 0);
    sessid_table_growth_step(t, 4);
    int checks = 0;
    for (int i = 0; i < 60000; i++) {
        uint8_t id[SESSID_ID_LEN], digest[SESSID_DIGEST_LEN];
        CHECK(lookup(t, i, 0, id) == 1);
        if (sessid_table_growth_left(t) == 0)
            continue;
        digest_of(-1 - i, digest);
        CHECK(sessid_table_peek(t, digest, 0, 1, id) == 0);
        CHECK_STATUS(sessid_table_remove(t, digest, 0), SESSID_OK);
        if (i % 997 == 0) {
            CHECK_STATUS(sessid_table_check(t), 0);
            checks++;
        }
    }
    CHECK(checks > 10);
    CHECK(live_count(t, 0) == 60000);
    sessid_table_free(t);
}

/* The pieces a growth gives back are the kernel's again, and a mapping made meanwhile may land on
 * them: the end of the growth must unmap only what is left of its old array. */
static void a_growth_unmaps_only_its_own_pages(void)
{
    sessid_table *t = new_table(3600, 0);
    sessid_table_growth_step(t, 8);
    uint8_t id[SESSID_ID_LEN];
    int n = fill_until_growing(t, 20000, 0, NULL);
    size_t held = sessid_table_footprint(t);
    while (sessid_table_growth_left(t) > 0 && sessid_table_footprint(t) >= held)
        CHECK(lookup(t, n++, 0, id) == 1);
    CHECK(sessid_table_growth_left(t) > 0);
    enum { MAPS = 64, MAP_BYTES = 256 << 10 };
    unsigned char *maps[MAPS];
    for (int i = 0; i < MAPS; i++) {
        maps[i] = mmap(NULL, MAP_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(maps[i] != MAP_FAILED);
        if (maps[i] != MAP_FAILED)
            memset(maps[i], 0x5a, MAP_BYTES);
    }
    while (sessid_table_growth_left(t) > 0)
        CHECK(lookup(t, n++, 0, id) == 1);
    for (int i = 0; i < MAPS; i++) {
        if (maps[i] == MAP_FAILED)
            continue;
        CHECK(maps[i][0] == 0x5a && maps[i][MAP_BYTES - 1] == 0x5a);
        munmap(maps[i], MAP_BYTES);
    }
    CHECK_STATUS(sessid_table_check(t), 0);
    CHECK(live_count(t, 0) == (size_t)n);
    sessid_table_free(t);
}

/* The oldest entries sit in the old array of a growth under way; expiry walks from them on into
 * the new array, and eviction takes them first. */
static void expiry_and_eviction_reach_into_the_old_array(void)
{
    sessid_table *t = new_table(10, 0);
    sessid_table_growth_step(t, 1);
    int old = fill_until_growing(t, 500, 0, NULL);
    static uint8_t ids[200][SESSID_ID_LEN];
    for (int i = 0; i < 200; i++)
        CHECK(lookup(t, old + i, 5, ids[i]) == 1);
    CHECK(sessid_table_growth_left(t) > 0);
    CHECK(table_purge(t, 10) == (size_t)old);
    CHECK(sessid_table_growth_left(t) > 0);
    CHECK_STATUS(sessid_table_check(t), 0);
    still_has(t, old, 200, 11, ids);
    CHECK(live_count(t, 11) == 200);
    sessid_table_free(t);

    /* 1,000 entries need 1,178 slots: the growth from 1,014 to them lasts past the 1,000th insert */
    t = new_table(3600, 1000);
    sessid_table_growth_step(t, 1);
    static uint8_t kept[1500][SESSID_ID_LEN];
    for (int i = 0; i < 1000; i++)
        CHECK(lookup(t, i, i, kept[i]) == 1);
    CHECK(sessid_table_growth_left(t) > 500);
    for (int i = 1000; i < 1500; i++)
        CHECK(lookup(t, i, i, kept[i]) == 1);           /* each evicts the oldest, key i - 1000 */
    CHECK(sessid_table_growth_left(t) > 0);
    CHECK_STATUS(sessid_table_check(t), 0);
    sessid_stats stats;
    sessid_table_stats(t, &stats);
    CHECK(stats.counters[SESSID_STAT_EVICTED] == 500);
    still_has(t, 500, 1000, 2000, kept + 500);
    sessid_table_free(t);
}

/* While a growth has most of its old array still to walk, new entries go there, not into pages of
 * the new array that the growth has not made yet; the walk then moves them across like the rest. */
static void inserts_during_a_growth_go_to_the_old_array(void)
{
    sessid_table *t = new_table(3600, 0);
    sessid_table_growth_pieces(t, 4096);
    int n = fill_until_growing(t, 20000, 0, NULL);     /* a growth out of 27,050 slots begins */
    sessid_table_growth_step(t, 1);
    static uint8_t ids[200][SESSID_ID_LEN];
    int in_old = 0;
    for (int i = 0; i < 200; i++) {
        uint8_t digest[SESSID_DIGEST_LEN];
        CHECK(lookup(t, n + i, 1, ids[i]) == 1);
        digest_of(n + i, digest);
        in_old += sessid_table_in_old_array(t, digest);
    }
    CHECK(sessid_table_growth_left(t) > 0);
    CHECK(in_old >= 180);           /* the walk has passed some 260 of the 27,050 old slots */
    CHECK_STATUS(sessid_table_check(t), 0);
    sessid_table_growth_step(t, (size_t)1 << 20);
    uint8_t id[SESSID_ID_LEN];
    CHECK(lookup(t, n + 200, 2, id) == 1);          /* moves the rest across */
    CHECK(sessid_table_growth_left(t) == 0);
    still_has(t, n, 200, 3, ids);
    for (int i = 0; i < 200; i++) {
        uint8_t digest[SESSID_DIGEST_LEN];
        digest_of(n + i, digest);
        CHECK(sessid_table_in_old_array(t, digest) == 0);
    }
    CHECK(live_count(t, 3) == (size_t)(n + 201));
    CHECK_STATUS(sessid_table_check(t), 0);
    sessid_table_free(t);
}

static void clear_and_dump_while_growing(void)
{
    sessid_table *t = new_table(3600, 0);
    sessid_table_growth_step(t, 1);
    int n = fill_until_growing(t, 200, 0, NULL);
    uint8_t *dump = NULL, digest[SESSID_DIGEST_LEN];
    size_t len = 0;
    CHECK_STATUS(sessid_table_dump(t, &dump, &len), SESSID_OK);
    CHECK(len >= sessid_table_footprint(t));
    int found = 0;
    for (int i = 0; dump != NULL && i < n; i++) {
        digest_of(i, digest);
        found += memmem(dump, len, digest, SESSID_DIGEST_LEN) != NULL;
    }
    CHECK(found == n);                  /* those in the old array too */
    CHECK(dump != NULL && memmem(dump, len, "key-", 4) == NULL);
    free(dump);
    table_clear(t);
    CHECK(sessid_table_growth_left(t) == 0);
    CHECK(sessid_table_footprint(t) == 0);
    CHECK_STATUS(sessid_table_check(t), 0);
    uint8_t id[SESSID_ID_LEN];
    for (int i = 0; i < n; i++)
        CHECK(lookup(t, i, 1, id) == 1);
    CHECK(live_count(t, 1) == (size_t)n);
    CHECK_STATUS(sessid_table_check(t), 0);
    sessid_table_free(t);
}

/* An insert that must grow the table and cannot have the memory fails and changes nothing, whether
 * or not a growth is under way (with one slot per insert, most inserts that grow meet one). */
static void a_growth_without_memory_changes_nothing(void)
{
    sessid_table *t = new_table(3600, 0);
    sessid_table_growth_step(t, 1);
    static uint8_t ids[SLOW_KEYS][SESSID_ID_LEN];
    int failures = 0, failed_while_growing = 0;
    for (int i = 0; i < SLOW_KEYS; i++) {
        uint8_t digest[SESSID_DIGEST_LEN];
        digest_of(i, digest);
        size_t count = live_count(t, 0), left = sessid_table_growth_left(t), held = sessid_table_footprint(t);
        sessid_table_fail_allocations(1);
        int rc = sessid_table_get_or_create(t, digest, 0, ids[i], NULL, SESSID_LOCK_REQUIRED);
        sessid_table_fail_allocations(0);
        if (rc == SESSID_ENOMEM) {
            failures++;
            failed_while_growing += left > 0;
            CHECK(live_count(t, 0) == count);
            CHECK(sessid_table_growth_left(t) == left && sessid_table_footprint(t) == held);
            CHECK_STATUS(sessid_table_check(t), 0);
            rc = sessid_table_get_or_create(t, digest, 0, ids[i], NULL, SESSID_LOCK_REQUIRED);
        }
        CHECK_STATUS(rc, SESSID_OK);
    }
    CHECK(failures >= 20 && failed_while_growing > 0);
    still_has(t, 0, SLOW_KEYS, 1, ids);
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
    RUN(model_matches_while_tables_grow);
    RUN(memory_stays_within_96_bytes_an_entry);
    RUN(grows_a_little_per_insert);
    RUN(ids_stay_while_a_table_grows);
    RUN(lookups_skip_what_a_growth_gave_back);
    RUN(a_growth_unmaps_only_its_own_pages);
    RUN(expiry_and_eviction_reach_into_the_old_array);
    RUN(inserts_during_a_growth_go_to_the_old_array);
    RUN(clear_and_dump_while_growing);
    RUN(a_growth_without_memory_changes_nothing);
    RUN(put_takes_only_version_4_ids);
    RUN(threads_agree_on_one_id);
    RUN(fork_while_another_thread_is_inside);
}
