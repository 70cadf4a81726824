#include <math.h>
#include <string.h>

#include "../../csrc/sessid.h"
#include "check.h"
#include "table_calls.h"
#include "fake_kv.h"
#include "tests.h"

#define KEY "sessid:0123456789abcdef"

struct rig {
    fake_kv kv;
    sessid_kv backend;
    sessid_table *table;
    sessid_kv_caps caps;
    sessid_proto_config config;
    uint8_t digest[SESSID_DIGEST_LEN];
};

static void rig_init(struct rig *r, int getex, int set_nx_get)
{
    memset(r, 0, sizeof *r);
    fake_kv_init(&r->kv);
    r->backend = fake_kv_backend(&r->kv);
    CHECK_STATUS(sessid_table_new(3600, 0, &r->table), SESSID_OK);
    atomic_init(&r->caps.getex, getex);
    atomic_init(&r->caps.set_nx_get, set_nx_get);
    atomic_init(&r->caps.repair, 1);
    atomic_init(&r->caps.getex_retry_at, getex ? 0 : INFINITY);     /* a KV without them */
    atomic_init(&r->caps.set_nx_get_retry_at, set_nx_get ? 0 : INFINITY);
    atomic_init(&r->caps.repair_retry_at, 0);
    r->config.ttl = 3600;
    r->config.table = r->table;
    r->config.caps = &r->caps;
    CHECK_STATUS(sessid_digest("api-key-1", 9, r->digest), SESSID_OK);
}

static void rig_free(struct rig *r)
{
    sessid_table_free(r->table);
}

/* One synchronous run at time now; the id goes to out (NUL-terminated) on success. */
static int rig_run(struct rig *r, double now, char out[SESSID_VALUE_MAX + 1])
{
    sessid_proto run;
    CHECK_STATUS(sessid_proto_begin(&run, &r->config, r->digest, KEY, strlen(KEY), now), SESSID_OK);
    int rc = sessid_proto_run(&run, &r->backend);
    const char *text = NULL;
    size_t len = 0;
    CHECK_STATUS(sessid_proto_result(&run, &text, &len), rc);
    out[0] = '\0';
    if (rc == SESSID_OK) {
        memcpy(out, text, len);
        out[len] = '\0';
    }
    return rc;
}

static int is_uuid_text(const char *text)
{
    uint8_t id[SESSID_ID_LEN];
    return sessid_id_parse(text, strlen(text), id);
}

static void one_round_trip_per_hit_two_per_miss(void)
{
    struct rig r;
    rig_init(&r, 1, 1);
    char first[SESSID_VALUE_MAX + 1], second[SESSID_VALUE_MAX + 1];
    CHECK_STATUS(rig_run(&r, 0, first), SESSID_OK);
    CHECK(is_uuid_text(first));
    CHECK(r.kv.calls[SESSID_OP_GETEX] == 1 && r.kv.calls[SESSID_OP_SET_NX_GET] == 1);
    CHECK(fake_kv_total_calls(&r.kv) == 2);
    CHECK(r.kv.last_ttl[SESSID_OP_SET_NX_GET] == 3600);
    const fake_kv_item *item = fake_kv_find(&r.kv, KEY);
    CHECK(item != NULL && item->value_len == 36 && memcmp(item->value, first, 36) == 0);
    CHECK_STATUS(rig_run(&r, 1, second), SESSID_OK);
    CHECK(strcmp(first, second) == 0);
    CHECK(fake_kv_total_calls(&r.kv) == 3);
    CHECK(r.kv.last_ttl[SESSID_OP_GETEX] == 3600);
    sessid_stats stats;
    sessid_table_stats(r.table, &stats);
    CHECK(stats.counters[SESSID_STAT_MISSES] == 1 && stats.counters[SESSID_STAT_HITS] == 1);
    rig_free(&r);
}

static void plain_protocol_matches_the_reference(void)
{
    struct rig r;
    rig_init(&r, 0, 0);
    char first[SESSID_VALUE_MAX + 1], second[SESSID_VALUE_MAX + 1];
    CHECK_STATUS(rig_run(&r, 0, first), SESSID_OK);
    CHECK(r.kv.calls[SESSID_OP_GET] == 2 && r.kv.calls[SESSID_OP_SET_NX] == 1);
    CHECK(fake_kv_total_calls(&r.kv) == 3);
    CHECK(r.kv.last_ttl[SESSID_OP_SET_NX] == 3600);
    CHECK_STATUS(rig_run(&r, 1, second), SESSID_OK);
    CHECK(strcmp(first, second) == 0);
    CHECK(r.kv.calls[SESSID_OP_GET] == 3 && r.kv.calls[SESSID_OP_EXPIRE] == 1);
    CHECK(r.kv.last_ttl[SESSID_OP_EXPIRE] == 3600);
    CHECK(fake_kv_total_calls(&r.kv) == 5);
    rig_free(&r);
}

static void missing_getex_switches_for_good(void)
{
    struct rig r;
    rig_init(&r, 1, 1);
    r.kv.fail[SESSID_OP_GETEX] = SESSID_EUNSUPPORTED;
    char first[SESSID_VALUE_MAX + 1], second[SESSID_VALUE_MAX + 1];
    CHECK_STATUS(rig_run(&r, 0, first), SESSID_OK);
    CHECK(atomic_load(&r.caps.getex) == 0);
    CHECK_STATUS(rig_run(&r, 1, second), SESSID_OK);
    CHECK(strcmp(first, second) == 0);
    CHECK(r.kv.calls[SESSID_OP_GETEX] == 1);          /* tried once, never again */
    CHECK(r.kv.calls[SESSID_OP_EXPIRE] == 1);
    rig_free(&r);
}

static void missing_set_get_falls_back_to_read_back(void)
{
    struct rig r;
    rig_init(&r, 1, 1);
    r.kv.fail[SESSID_OP_SET_NX_GET] = SESSID_EUNSUPPORTED;
    char id[SESSID_VALUE_MAX + 1];
    CHECK_STATUS(rig_run(&r, 0, id), SESSID_OK);
    CHECK(atomic_load(&r.caps.set_nx_get) == 0);
    CHECK(r.kv.calls[SESSID_OP_SET_NX] == 1 && r.kv.calls[SESSID_OP_GET] == 1);
    CHECK(fake_kv_total_calls(&r.kv) == 4);
    rig_free(&r);
}

static void set_get_without_the_old_value_reads_back(void)
{
    struct rig r;
    rig_init(&r, 1, 1);
    r.kv.set_get_ignored = 1;
    char id[SESSID_VALUE_MAX + 1];
    CHECK_STATUS(rig_run(&r, 0, id), SESSID_OK);
    CHECK(atomic_load(&r.caps.set_nx_get) == 0);
    CHECK(r.kv.calls[SESSID_OP_SET_NX_GET] == 1 && r.kv.calls[SESSID_OP_SET_NX] == 0);
    CHECK(r.kv.calls[SESSID_OP_GET] == 1);
    const fake_kv_item *item = fake_kv_find(&r.kv, KEY);
    CHECK(item != NULL && memcmp(item->value, id, 36) == 0);
    rig_free(&r);
}

static void each_failing_operation_fails_the_run(void)
{
    const sessid_op_kind kinds[] = {SESSID_OP_GET, SESSID_OP_GETEX, SESSID_OP_SET_NX,
                                    SESSID_OP_SET_NX_GET, SESSID_OP_EXPIRE};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        for (int modern = 0; modern <= 1; modern++) {
            struct rig r;
            rig_init(&r, modern, modern);
            if (kinds[i] == SESSID_OP_EXPIRE)           /* EXPIRE only follows a found GET */
                fake_kv_store(&r.kv, KEY, "01234567-89ab-4def-8012-3456789abcde", 36);
            r.kv.fail[kinds[i]] = SESSID_EKV;
            char id[SESSID_VALUE_MAX + 1];
            int used = r.kv.calls[kinds[i]];
            int rc = rig_run(&r, 0, id);
            used = r.kv.calls[kinds[i]] - used;
            CHECK(used == 0 || rc == SESSID_EKV);
            CHECK(used == 1 || rc == SESSID_OK);
            rig_free(&r);
        }
    }
}

static void a_set_that_does_not_persist_is_missing(void)
{
    struct rig r;
    rig_init(&r, 0, 0);
    r.kv.set_does_not_persist = 1;
    char id[SESSID_VALUE_MAX + 1];
    CHECK_STATUS(rig_run(&r, 0, id), SESSID_EMISSING);
    rig_free(&r);
}

static int is_uuid4_text(const char *text)
{
    uint8_t id[SESSID_ID_LEN];
    return sessid_id_parse(text, strlen(text), id) && sessid_id_is_v4(id);
}

static void ids_are_trimmed_and_read_in_lowercase(void)
{
    for (int modern = 0; modern <= 1; modern++) {
        struct rig r;
        rig_init(&r, modern, modern);
        const char *stored = " \t01234567-89AB-4DEF-8012-3456789ABCDE\r\n";
        fake_kv_store(&r.kv, KEY, stored, strlen(stored));
        char id[SESSID_VALUE_MAX + 1];
        CHECK_STATUS(rig_run(&r, 0, id), SESSID_OK);
        CHECK(strcmp(id, "01234567-89ab-4def-8012-3456789abcde") == 0);
        CHECK(r.kv.calls[SESSID_OP_DELETE] == 0);
        rig_free(&r);
    }
}

/* Anything but a version 4 UUID under the key is damage: the run deletes it and sets a new id,
 * which later runs find. */
static void damage_is_replaced_by_a_new_id(void)
{
    char long_value[FAKE_KV_TEXT - 1];
    memset(long_value, 'a', sizeof long_value);
    static const char *const damaged[] = {
        "custom-session", "   ", "", "has space", "caf\xc3\xa9", "nul\x01", "abc\0def", "42",
        "01234567-89ab-1def-8012-3456789abcde",     /* a UUID, but version 1 */
        "01234567-89ab-4def-8012-3456789abcdef",    /* 37 characters */
    };
    for (size_t i = 0; i <= sizeof damaged / sizeof damaged[0]; i++) {
        const char *value = i < sizeof damaged / sizeof damaged[0] ? damaged[i] : long_value;
        size_t len = value == long_value ? sizeof long_value
                     : i == 6                ? 7
                                             : strlen(value);
        for (int modern = 0; modern <= 1; modern++) {
            struct rig r;
            rig_init(&r, modern, modern);
            fake_kv_store(&r.kv, KEY, value, len);
            char id[SESSID_VALUE_MAX + 1], again[SESSID_VALUE_MAX + 1];
            CHECK_STATUS(rig_run(&r, 0, id), SESSID_OK);
            CHECK(is_uuid4_text(id));
            CHECK(r.kv.calls[SESSID_OP_DELETE] == 1);
            sessid_stats stats;
            sessid_table_stats(r.table, &stats);
            CHECK(stats.counters[SESSID_STAT_KV_REPAIRED] == 1);
            CHECK(stats.counters[SESSID_STAT_KV_FALLBACKS] == 1);   /* no atomic repair here */
            const fake_kv_item *item = fake_kv_find(&r.kv, KEY);
            CHECK(item != NULL && item->value_len == 36 && memcmp(item->value, id, 36) == 0);
            CHECK_STATUS(rig_run(&r, 0, again), SESSID_OK);
            CHECK(strcmp(id, again) == 0);
            CHECK(r.kv.calls[SESSID_OP_DELETE] == 1);
            rig_free(&r);
        }
    }
}

/* A backend with an atomic repair (kv.h, version 3) replaces damage in one step. */
static fake_kv *repairing_kv;

static int fake_repair(void *ctx, const char *key, size_t key_len, const char *value,
                       size_t value_len, uint64_t ttl, sessid_kv_value *out)
{
    (void)ctx;
    (void)key_len;
    (void)ttl;
    repairing_kv->calls[SESSID_OP_REPAIR]++;
    char name[FAKE_KV_TEXT];
    memcpy(name, key, key_len);
    name[key_len] = '\0';
    fake_kv_store(repairing_kv, name, value, value_len);
    const fake_kv_item *item = fake_kv_find(repairing_kv, name);
    out->found = 1;
    out->data = item->value;
    out->len = item->value_len;
    return SESSID_OK;
}

static void a_repair_method_replaces_damage_in_one_step(void)
{
    struct rig r;
    rig_init(&r, 1, 1);
    sessid_kv_methods methods = *r.backend.methods;
    methods.repair = fake_repair;
    sessid_kv backend = {&methods, r.backend.ctx};
    repairing_kv = &r.kv;
    fake_kv_store(&r.kv, KEY, "hello-world", 11);
    sessid_proto run;
    CHECK_STATUS(sessid_proto_begin(&run, &r.config, r.digest, KEY, strlen(KEY), 0), SESSID_OK);
    CHECK_STATUS(sessid_proto_run(&run, &backend), SESSID_OK);
    CHECK(sessid_proto_repaired(&run) && sessid_proto_created(&run));
    CHECK(r.kv.calls[SESSID_OP_REPAIR] == 1 && r.kv.calls[SESSID_OP_DELETE] == 0);
    CHECK(fake_kv_total_calls(&r.kv) == 2);                 /* GETEX, REPAIR */
    rig_free(&r);
}

/* Damage that comes back while the run replaces it fails the run rather than looping. */
static void damage_met_twice_fails_the_run(void)
{
    struct rig r;
    rig_init(&r, 1, 1);
    fake_kv_store(&r.kv, KEY, "bad", 3);
    sessid_proto run;
    CHECK_STATUS(sessid_proto_begin(&run, &r.config, r.digest, KEY, strlen(KEY), 0), SESSID_OK);
    const sessid_op *op;
    sessid_kv_value damaged = {1, "bad", 3};
    while ((op = sessid_proto_next(&run)) != NULL)
        sessid_proto_feed(&run, SESSID_OK, op->kind == SESSID_OP_DELETE ? NULL : &damaged);
    const char *text;
    size_t len;
    CHECK_STATUS(sessid_proto_result(&run, &text, &len), SESSID_EVALUE);
    rig_free(&r);
}

/* An optional operation the KV refused is tried again SESSID_CAPS_RETRY seconds later. */
static void a_fallback_is_tried_again_after_a_while(void)
{
    struct rig r;
    rig_init(&r, 1, 1);
    r.kv.fail[SESSID_OP_GETEX] = SESSID_EUNSUPPORTED;
    char id[SESSID_VALUE_MAX + 1];
    CHECK_STATUS(rig_run(&r, 100, id), SESSID_OK);
    CHECK(r.kv.calls[SESSID_OP_GETEX] == 1 && atomic_load(&r.caps.getex) == 0);
    r.kv.fail[SESSID_OP_GETEX] = 0;
    CHECK_STATUS(rig_run(&r, 100 + SESSID_CAPS_RETRY - 1, id), SESSID_OK);
    CHECK(r.kv.calls[SESSID_OP_GETEX] == 1);
    CHECK_STATUS(rig_run(&r, 100 + SESSID_CAPS_RETRY, id), SESSID_OK);
    CHECK(r.kv.calls[SESSID_OP_GETEX] == 2 && atomic_load(&r.caps.getex) == 1);
    sessid_stats stats;
    sessid_table_stats(r.table, &stats);
    CHECK(stats.counters[SESSID_STAT_KV_FALLBACKS] == 1);
    rig_free(&r);
}

/* Driving by hand: another worker stores its id between our lookup and our set. */
static void the_race_winner_is_returned(void)
{
    struct rig r;
    rig_init(&r, 1, 1);
    sessid_proto run;
    CHECK_STATUS(sessid_proto_begin(&run, &r.config, r.digest, KEY, strlen(KEY), 0), SESSID_OK);
    const sessid_op *op = sessid_proto_next(&run);
    CHECK(op != NULL && op->kind == SESSID_OP_GETEX && op->ttl == 3600);
    sessid_kv_value nil = {0};
    CHECK_STATUS(sessid_proto_feed(&run, SESSID_OK, &nil), SESSID_OK);
    op = sessid_proto_next(&run);
    CHECK(op != NULL && op->kind == SESSID_OP_SET_NX_GET && op->value_len == 36);
    const char *theirs = "ffffffff-ffff-4fff-bfff-ffffffffffff";
    sessid_kv_value winner = {1, theirs, 36};
    CHECK_STATUS(sessid_proto_feed(&run, SESSID_OK, &winner), SESSID_OK);
    CHECK(sessid_proto_next(&run) == NULL);
    const char *text;
    size_t len;
    CHECK_STATUS(sessid_proto_result(&run, &text, &len), SESSID_OK);
    CHECK(len == 36 && memcmp(text, theirs, 36) == 0);
    CHECK(sessid_proto_created(&run) == 0);
    CHECK_STATUS(sessid_proto_feed(&run, SESSID_OK, &nil), SESSID_ESTATE);
    rig_free(&r);
}

static void result_waits_for_the_end(void)
{
    struct rig r;
    rig_init(&r, 1, 1);
    sessid_proto run;
    CHECK_STATUS(sessid_proto_begin(&run, &r.config, r.digest, KEY, strlen(KEY), 0), SESSID_OK);
    const char *text;
    size_t len;
    CHECK_STATUS(sessid_proto_result(&run, &text, &len), SESSID_ESTATE);
    rig_free(&r);                                       /* abandoned mid-run: nothing to free */
}

static void bad_configuration_is_rejected(void)
{
    struct rig r;
    rig_init(&r, 1, 1);
    sessid_proto run;
    r.config.ttl = 0;
    CHECK_STATUS(sessid_proto_begin(&run, &r.config, r.digest, KEY, 3, 0), SESSID_EINVAL);
    CHECK(sessid_proto_next(&run) == NULL);
    r.config.ttl = 1;
    r.config.refresh_after = -1;
    CHECK_STATUS(sessid_proto_begin(&run, &r.config, r.digest, KEY, 3, 0), SESSID_EINVAL);
    r.config.refresh_after = 0;
    r.config.table = NULL;
    CHECK_STATUS(sessid_proto_begin(&run, &r.config, r.digest, KEY, 3, 0), SESSID_EINVAL);
    r.config.table = r.table;
    CHECK_STATUS(sessid_proto_begin(&run, &r.config, r.digest, KEY, 3, 0), SESSID_OK);
    sessid_kv_methods partial = {.version = 1, .get = r.backend.methods->get};
    sessid_kv broken = {&partial, &r.kv};
    CHECK_STATUS(sessid_proto_run(&run, &broken), SESSID_EINVAL);
    sessid_kv_methods future = *r.backend.methods;
    future.version = 0;
    sessid_kv old = {&future, &r.kv};
    CHECK_STATUS(sessid_proto_begin(&run, &r.config, r.digest, KEY, 3, 0), SESSID_OK);
    CHECK_STATUS(sessid_proto_run(&run, &old), SESSID_EINVAL);
    rig_free(&r);
}

static void near_cache_skips_the_kv_while_fresh(void)
{
    struct rig r;
    rig_init(&r, 1, 1);
    r.config.keep_local = 1;
    r.config.refresh_after = 10;
    char first[SESSID_VALUE_MAX + 1], id[SESSID_VALUE_MAX + 1];
    CHECK_STATUS(rig_run(&r, 100, first), SESSID_OK);
    CHECK(fake_kv_total_calls(&r.kv) == 2);
    CHECK_STATUS(rig_run(&r, 109.5, id), SESSID_OK);
    CHECK(strcmp(first, id) == 0);
    CHECK(fake_kv_total_calls(&r.kv) == 2);
    CHECK_STATUS(rig_run(&r, 110, id), SESSID_OK);     /* refresh_after has passed: ask the KV */
    CHECK(strcmp(first, id) == 0);
    CHECK(fake_kv_total_calls(&r.kv) == 3);
    CHECK_STATUS(rig_run(&r, 115, id), SESSID_OK);     /* refreshed at 110 */
    CHECK(fake_kv_total_calls(&r.kv) == 3);
    rig_free(&r);
}

static void only_uuids_are_kept_locally(void)
{
    struct rig r;
    rig_init(&r, 1, 1);
    r.config.keep_local = 1;
    fake_kv_store(&r.kv, KEY, "01234567-89ab-4def-8012-3456789abcde", 36);
    char id[SESSID_VALUE_MAX + 1];
    CHECK_STATUS(rig_run(&r, 0, id), SESSID_OK);
    CHECK(table_live(r.table, 0) == 1);
    rig_free(&r);
}

/* One forget run at time now through backend. */
static int rig_forget(struct rig *r, double now, const sessid_kv *backend)
{
    sessid_proto run;
    CHECK_STATUS(sessid_proto_begin_forget(&run, &r->config, r->digest, KEY, strlen(KEY), now),
                 SESSID_OK);
    CHECK(sessid_proto_next(&run) != NULL && sessid_proto_next(&run)->kind == SESSID_OP_DELETE);
    int rc = sessid_proto_run(&run, backend);
    const char *text = NULL;
    size_t len = 99;
    CHECK_STATUS(sessid_proto_result(&run, &text, &len), rc);
    if (rc == SESSID_OK)
        CHECK(len == 0);
    return rc;
}

static void forget_deletes_here_and_in_the_kv(void)
{
    struct rig r;
    rig_init(&r, 1, 1);
    r.config.keep_local = 1;
    r.config.refresh_after = 10;
    char first[SESSID_VALUE_MAX + 1], second[SESSID_VALUE_MAX + 1];
    CHECK_STATUS(rig_run(&r, 0, first), SESSID_OK);
    CHECK(table_live(r.table, 0) == 1);
    CHECK_STATUS(rig_forget(&r, 1, &r.backend), SESSID_OK);
    CHECK(r.kv.calls[SESSID_OP_DELETE] == 1 && fake_kv_find(&r.kv, KEY) == NULL);
    CHECK(table_live(r.table, 1) == 0);
    CHECK_STATUS(rig_run(&r, 2, second), SESSID_OK);   /* near cache and KV are empty: a new id */
    CHECK(is_uuid_text(second) && strcmp(first, second) != 0);
    CHECK_STATUS(rig_forget(&r, 3, &r.backend), SESSID_OK);   /* and again: nothing is there */
    CHECK_STATUS(rig_forget(&r, 4, &r.backend), SESSID_OK);
    rig_free(&r);
}

static void a_failed_forget_fails_the_run(void)
{
    struct rig r;
    rig_init(&r, 1, 1);
    r.config.keep_local = 1;
    char first[SESSID_VALUE_MAX + 1];
    CHECK_STATUS(rig_run(&r, 0, first), SESSID_OK);
    r.kv.fail[SESSID_OP_DELETE] = SESSID_EKV;
    CHECK_STATUS(rig_forget(&r, 1, &r.backend), SESSID_EKV);
    CHECK(fake_kv_find(&r.kv, KEY) != NULL);            /* the KV still holds it ... */
    CHECK(table_live(r.table, 1) == 0);          /* ... the local copy is gone already */
    rig_free(&r);
}

static void a_version_1_backend_cannot_forget(void)
{
    struct rig r;
    rig_init(&r, 1, 1);
    sessid_kv_methods old = *r.backend.methods;
    old.version = 1;
    sessid_kv backend = {&old, &r.kv};
    CHECK_STATUS(rig_forget(&r, 0, &backend), SESSID_EUNSUPPORTED);
    old.version = 2;
    old.del = NULL;
    CHECK_STATUS(rig_forget(&r, 0, &backend), SESSID_EUNSUPPORTED);
    CHECK(r.kv.calls[SESSID_OP_DELETE] == 0);
    rig_free(&r);
}

void test_proto(void)
{
    RUN(one_round_trip_per_hit_two_per_miss);
    RUN(plain_protocol_matches_the_reference);
    RUN(missing_getex_switches_for_good);
    RUN(missing_set_get_falls_back_to_read_back);
    RUN(set_get_without_the_old_value_reads_back);
    RUN(each_failing_operation_fails_the_run);
    RUN(a_set_that_does_not_persist_is_missing);
    RUN(ids_are_trimmed_and_read_in_lowercase);
    RUN(damage_is_replaced_by_a_new_id);
    RUN(a_repair_method_replaces_damage_in_one_step);
    RUN(damage_met_twice_fails_the_run);
    RUN(a_fallback_is_tried_again_after_a_while);
    RUN(the_race_winner_is_returned);
    RUN(result_waits_for_the_end);
    RUN(bad_configuration_is_rejected);
    RUN(near_cache_skips_the_kv_while_fresh);
    RUN(only_uuids_are_kept_locally);
    RUN(forget_deletes_here_and_in_the_kv);
    RUN(a_failed_forget_fails_the_run);
    RUN(a_version_1_backend_cannot_forget);
}
