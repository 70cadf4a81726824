/* libFuzzer target for the C core: drives the table and the protocol state machine with keys, clock
 * moves and KV replies taken from the input, and checks the table against a small model.
 *
 *   clang -DSESSID_FAULT_INJECTION -DSESSID_TESTING -fsanitize=fuzzer,address,undefined \
 *       tests/fuzz/fuzz_core.c csrc/(*).c -lcrypto -luuid
 *
 * Input: the first byte sets max_entries (its low four bits: 0 = none, 1 to 11, or 75 to 300), how
 * many old slots each insert empties while a private table grows (bits 4 and 5: the table's own, 1,
 * 4 or 16, so that every operation meets growths under way), whether its arrays are mapped, made
 * and given back a page at a time (bit 6: as large tables' are, 64 KiB at a time), and with its top
 * bit puts the table in a shared file; the rest is a sequence of commands, each an operation and a key (a few hundred, so
 * that a private table grows several times) and a move of the clock. With a shared table, two more
 * commands run a get or a purge in a thread that dies at a step the input picks, holding the table's
 * lock: the next call repairs the table, which must then hold every invariant and every id it held.
 * Every invariant is checked every 16 commands, whenever a growth begins or ends, and at the end. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../c/table_calls.h"
#include "../../csrc/sessid.h"
#include "../../csrc/table_testing.h"
#include "../c/model.h"

#define KEYS 384
#define TTL 8.0

typedef struct {
    const uint8_t *data;
    size_t size;
} input;

static int take(input *in)
{
    if (in->size == 0)
        return -1;
    in->size--;
    return *in->data++;
}

static void advance(double *now, int byte, int shared)
{
    /* Forward in steps of milliseconds (so that hundreds of entries live at once) or of seconds
     * (so that they expire); now and then far back, which the table must treat as still. A shared
     * table reads the monotonic clock, which never goes back. */
    if (byte < 0)
        return;
    if (byte >= 250 && !shared)
        *now -= 100.0;
    else
        *now += (double)(byte % 16) * (byte >= 128 ? 0.5 : 0.001);
}

/* The settings the first byte picks (see the top of this file). */
static unsigned max_entries_of(int first)
{
    unsigned pick = first < 0 ? 0 : (unsigned)first & 15;
    return pick < 12 ? pick : (pick - 11) * 75;
}

static size_t growth_step_of(int first)
{
    static const size_t steps[] = {0, 1, 4, 16};
    return first < 0 ? 0 : steps[(first >> 4) & 3];
}

/* The table learns the time from the calls that pass it `now`; so does the model. */
static void tell_time(struct model *m, double now)
{
    if (now > m->clock)
        m->clock = now;
}

/* ---- a KV whose every reply comes from the input ---- */

struct scripted_kv {
    input *in;
    char value[300];
};

static int scripted_reply(struct scripted_kv *kv, sessid_kv_value *out)
{
    static const int statuses[] = {SESSID_OK, SESSID_OK, SESSID_OK, SESSID_EKV,
                                   SESSID_EUNSUPPORTED, SESSID_ENOREPLY, SESSID_EVALUE};
    int pick = take(kv->in);
    int status = statuses[(pick < 0 ? 0 : pick) % 7];
    int len = take(kv->in);
    if (out != NULL) {
        out->found = len >= 0 && len % 4 != 0;
        size_t n = len < 0 ? 0 : (size_t)len % sizeof kv->value;
        for (size_t i = 0; i < n; i++) {
            int c = take(kv->in);
            kv->value[i] = (char)(c < 0 ? 'a' : c);
        }
        out->data = kv->value;
        out->len = n;
    }
    return status;
}

static int kv_get(void *ctx, const char *key, size_t key_len, sessid_kv_value *out)
{
    (void)key, (void)key_len;
    return scripted_reply(ctx, out);
}

static int kv_getex(void *ctx, const char *key, size_t key_len, uint64_t ttl, sessid_kv_value *out)
{
    (void)key, (void)key_len, (void)ttl;
    return scripted_reply(ctx, out);
}

static int kv_set_nx(void *ctx, const char *key, size_t key_len, const char *value,
                     size_t value_len, uint64_t ttl)
{
    (void)key, (void)key_len, (void)value, (void)value_len, (void)ttl;
    return scripted_reply(ctx, NULL);
}

static int kv_set_nx_get(void *ctx, const char *key, size_t key_len, const char *value,
                         size_t value_len, uint64_t ttl, sessid_kv_value *out)
{
    (void)key, (void)key_len, (void)value, (void)value_len, (void)ttl;
    return scripted_reply(ctx, out);
}

static int kv_expire(void *ctx, const char *key, size_t key_len, uint64_t ttl)
{
    (void)key, (void)key_len, (void)ttl;
    return scripted_reply(ctx, NULL);
}

static const sessid_kv_methods scripted_methods = {
    .version = 1, .get = kv_get, .set_nx = kv_set_nx, .expire = kv_expire,
    .getex = kv_getex, .set_nx_get = kv_set_nx_get,
};

static void run_protocol(sessid_table *table, const uint8_t digest[SESSID_DIGEST_LEN], double now,
                         input *in)
{
    int flags = take(in);
    sessid_kv_caps caps;
    atomic_init(&caps.getex, flags & 1);
    atomic_init(&caps.set_nx_get, (flags >> 1) & 1);
    sessid_proto_config config = {
        .ttl = 8, .table = table, .keep_local = (flags >> 2) & 1,
        .refresh_after = (flags >> 3) & 1 ? 4.0 : 0.0, .caps = &caps,
    };
    struct scripted_kv kv = {.in = in};
    sessid_kv backend = {&scripted_methods, &kv};
    sessid_proto run;
    if (sessid_proto_begin(&run, &config, digest, "k", 1, now) != SESSID_OK)
        abort();
    int status = sessid_proto_run(&run, &backend);
    const char *text;
    size_t len;
    if (sessid_proto_result(&run, &text, &len) != status)
        abort();
    if (status == SESSID_OK) {
        if (len < 1 || len > SESSID_VALUE_MAX)
            abort();
        for (size_t i = 0; i < len; i++)
            if (text[i] < 0x21 || text[i] > 0x7e)
                abort();
    }
    if (sessid_proto_feed(&run, SESSID_OK, NULL) != SESSID_ESTATE)
        abort();
}

/* ---- a thread that dies inside the shared table ---- */

struct doomed {
    sessid_table *table;
    const uint8_t *digest;
    double now;
    long step;
    int purge;
    int finished;
};

static void *doomed_call(void *arg)
{
    struct doomed *d = arg;
    uint8_t id[SESSID_ID_LEN];
    sessid_table_end_thread_after(d->step);
    if (d->purge)
        table_purge(d->table, d->now);
    else if (sessid_table_get_or_create(d->table, d->digest, d->now, id, NULL, SESSID_LOCK_REQUIRED) != SESSID_OK)
        abort();
    sessid_table_end_thread_after(0);
    d->finished = 1;
    return NULL;
}

/* Runs a get of key k (or a purge) in a thread that dies at `step`. Whatever it was doing to k and
 * to the entry it may have evicted is undone on both sides (those two are uncertain); every other
 * key must keep its id, and the repaired table every invariant. */
static void die_inside(sessid_table *t, struct model *m, const uint8_t digests[][SESSID_DIGEST_LEN],
                       int k, double now, int step, int purge, double *clock_after)
{
    int victim = -1;
    if (!purge && !model_is_live(m, k) && m->max_entries != 0 && model_live(m) >= m->max_entries)
        victim = model_least_recent(m);
    struct doomed d = {t, digests[k], now, step, purge, 0};
    pthread_t thread;
    if (pthread_create(&thread, NULL, doomed_call, &d) != 0 || pthread_join(thread, NULL) != 0)
        abort();
    sessid_table_end_thread_after(0);
    for (int i = 0; !purge && i < KEYS; i++) {
        if (i == k || i == victim) {
            if (sessid_table_remove(t, digests[i], now) != SESSID_OK)   /* repairs, first */
                abort();
            m->keys[i].present = 0;
        }
    }
    if (table_live(t, now) != model_live(m) || sessid_table_check(t) != 0)
        abort();
    /* A repair orders entries used at one instant by slot, which the model cannot know: use every
     * live key again, one at a time and in the model's order, so that both agree from here on. */
    unsigned long before = m->order;
    for (;;) {
        *clock_after = now += 1e-3;
        m->clock = now;
        int next = -1;
        for (int i = 0; i < KEYS; i++)
            if (model_is_live(m, i) && m->keys[i].order <= before
                && (next < 0 || m->keys[i].order < m->keys[next].order))
                next = i;
        if (next < 0)
            break;
        uint8_t id[SESSID_ID_LEN];
        int created = -1;
        if (sessid_table_get_or_create(t, digests[next], now, id, &created, SESSID_LOCK_REQUIRED) != SESSID_OK
            || created || memcmp(id, m->keys[next].id, SESSID_ID_LEN) != 0)
            abort();
        model_use(m, next, id);
    }
}

static sessid_table *open_table(int shared, uint64_t max_entries, char *path)
{
    sessid_table *t = NULL;
    if (!shared) {
        if (sessid_table_new(TTL, max_entries, &t) != SESSID_OK)
            abort();
        return t;
    }
    snprintf(path, 64, "/dev/shm/sessid-fuzz-%d", (int)getpid());
    unlink(path);
    sessid_shared_problem problem;
    if (sessid_table_open_shared(path, TTL, max_entries != 0 ? max_entries : KEYS, 1, &t, &problem)
        != SESSID_OK)
        abort();
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in = {data, size};
    static uint8_t digests[KEYS][SESSID_DIGEST_LEN];
    static int ready;
    if (!ready) {
        for (int k = 0; k < KEYS; k++) {
            uint8_t key[2] = {(uint8_t)k, (uint8_t)(k >> 8)};
            if (sessid_digest(key, sizeof key, digests[k]) != SESSID_OK)
                abort();
        }
        ready = 1;
    }
    static struct model_entry keys[KEYS];
    memset(keys, 0, sizeof keys);
    int first = take(&in);
    struct model m = {keys, KEYS, TTL, max_entries_of(first), -1e300, 0};
    int shared = first >= 0 && (first & 0x80) != 0;
    char path[64];
    sessid_table *t = open_table(shared, m.max_entries, path), *proto_table;
    if (sessid_table_new(TTL, m.max_entries, &proto_table) != SESSID_OK)
        abort();
    if (growth_step_of(first) != 0)
        sessid_table_growth_step(t, growth_step_of(first));
    if (first >= 0 && (first & 0x40) != 0)
        sessid_table_growth_pieces(t, 4096);
    double now = 0;
    int command, commands = 0, was_growing = 0;
    /* The entries inserted at the table's current time: past a quarter of max_entries, a shared
     * table's hits at that time take the lock again and move their entries. */
    double tick = m.clock;
    uint64_t tick_inserts = 0, quick_limit = (m.max_entries != 0 ? m.max_entries : KEYS) / 4;
    while ((command = take(&in)) >= 0) {
        int low = take(&in);
        int k = ((command >> 4) << 8 | (low < 0 ? 0 : low)) % KEYS;
        advance(&now, take(&in), shared);
        int op = command & 15;
        if (op <= 7 || op == 11 || op == 12)
            tell_time(&m, now);
        if (m.clock != tick) {
            tick = m.clock;
            tick_inserts = 0;
        }
        uint8_t id[SESSID_ID_LEN];
        int created = -1, found = -1;
        switch (op) {
        case 0: case 1: case 2: case 3: case 12: {
            int expect = !model_is_live(&m, k);
            /* 12: a get whose allocation fails, should it have to grow the table */
            sessid_table_fail_allocations(op == 12);
            int rc = sessid_table_get_or_create(t, digests[k], now, id, &created, SESSID_LOCK_REQUIRED);
            sessid_table_fail_allocations(0);
            if (rc == SESSID_ENOMEM && op == 12 && expect && !shared)
                break;                  /* and it changed nothing */
            if (rc != SESSID_OK)
                abort();
            if (expect)
                model_make_room(&m);
            if (created != expect || (!created && memcmp(id, m.keys[k].id, SESSID_ID_LEN) != 0))
                abort();
            /* A shared table answers a hit on an entry used at this very instant without its
             * lock, and moves nothing (least recently used to the clock's tick), until that
             * instant has taken in more than a quarter of max_entries new entries. */
            if (created || !shared || m.keys[k].last_use != m.clock || tick_inserts > quick_limit)
                model_use(&m, k, id);
            tick_inserts += created;
            break;
        }
        case 4:
            found = sessid_table_peek(t, digests[k], now, 3.0, id);
            if (found != (model_is_live(&m, k) && m.clock < m.keys[k].last_use + 3.0))
                abort();
            if (found && memcmp(id, m.keys[k].id, SESSID_ID_LEN) != 0)
                abort();
            break;
        case 5:
            if (sessid_id_new(id) != SESSID_OK)
                abort();
            if (!model_is_live(&m, k))
                model_make_room(&m);
            if (sessid_table_put(t, digests[k], id, now) != SESSID_OK)
                abort();
            model_use(&m, k, id);
            tick_inserts++;             /* a new id replaces the entry whole */
            break;
        case 6:
            table_purge(t, now);
            break;
        case 7:
            if (table_live(t, now) != model_live(&m))
                abort();
            break;
        case 8:
            table_clear(t);
            for (int i = 0; i < KEYS; i++)
                m.keys[i].present = 0;
            break;
        case 11:
            if (sessid_table_remove(t, digests[k], now) != SESSID_OK)
                abort();
            m.keys[k].present = 0;
            break;
        case 9:
        case 10:
            if (shared) {
                tell_time(&m, now);
                die_inside(t, &m, digests, k, now, take(&in) % 24 + 1, op == 10, &now);
                break;
            }
            /* fall through: with a private table these are protocol runs too */
        default:
            /* its own table: the protocol's local copies would otherwise surprise the model */
            run_protocol(proto_table, digests[k], now, &in);
            break;
        }
        int growing = sessid_table_growth_left(t) > 0;
        if ((++commands % 16 == 0 || growing != was_growing) && sessid_table_check(t) != 0)
            abort();
        was_growing = growing;
    }
    if (sessid_table_check(t) != 0)
        abort();
    sessid_table_free(t);
    sessid_table_free(proto_table);
    if (shared)
        unlink(path);
    return 0;
}
