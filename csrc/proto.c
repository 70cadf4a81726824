/* The get-or-create protocol over a KV, as a state machine; and, built only with SESSID_TESTING,
 * its synchronous driver for native C backends, through which the tests drive it. */
#include "proto.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "status.h"

enum {
    LOOKUP,     /* GETEX or GET */
    REFRESH,    /* EXPIRE after a GET that found the id */
    CREATE,     /* SET NX, with or without GET */
    READ_BACK,  /* GET after a SET NX */
    REPAIR,     /* the KV's atomic repair */
    RECHECK,    /* GET: is the damage still there? (repair without the atomic step) */
    REMOVE,     /* DEL of the damage, before a create */
    FORGET,     /* DEL */
    DONE
};

enum { ABSENT = 0, PRESENT = 1, DAMAGED = 2 };

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Trims and checks a value from the KV; a session id is copied into run->value, in lowercase.
 * Returns PRESENT, ABSENT (nil) or DAMAGED (anything but a version 4 UUID, blank included). */
static int take_value(sessid_proto *run, const sessid_kv_value *v)
{
    if (v == NULL || !v->found)
        return ABSENT;
    const char *start = v->data;
    const char *end = v->data + v->len;
    while (start < end && is_space(*start))
        start++;
    while (end > start && is_space(end[-1]))
        end--;
    if ((size_t)(end - start) != SESSID_ID_TEXT_LEN)
        return DAMAGED;
    char lower[SESSID_ID_TEXT_LEN];
    for (size_t i = 0; i < SESSID_ID_TEXT_LEN; i++)
        lower[i] = start[i] >= 'A' && start[i] <= 'Z' ? (char)(start[i] - 'A' + 'a') : start[i];
    uint8_t id[SESSID_ID_LEN];
    if (!sessid_id_parse(lower, SESSID_ID_TEXT_LEN, id) || !sessid_id_is_v4(id))
        return DAMAGED;
    memcpy(run->value, lower, SESSID_ID_TEXT_LEN);
    run->value_len = SESSID_ID_TEXT_LEN;
    return PRESENT;
}

static void set_op(sessid_proto *run, sessid_op_kind kind)
{
    assert(run->state != DONE);
    run->op.kind = kind;
    int writes = kind == SESSID_OP_SET_NX || kind == SESSID_OP_SET_NX_GET || kind == SESSID_OP_REPAIR;
    run->op.value = writes ? run->candidate : NULL;
    run->op.value_len = writes ? SESSID_ID_TEXT_LEN : 0;
}

static int fail(sessid_proto *run, int status)
{
    run->status = status;
    run->state = DONE;
    return status;
}

static int succeed(sessid_proto *run, int created)
{
    assert(run->value_len >= 1 && run->value_len <= SESSID_VALUE_MAX);
    const sessid_proto_config *config = run->config;
    uint8_t id[SESSID_ID_LEN];
    run->created = created;
    run->state = DONE;
    sessid_table_count(config->table, created ? SESSID_STAT_MISSES : SESSID_STAT_HITS);
    if (config->keep_local && sessid_id_parse(run->value, run->value_len, id) && sessid_id_is_v4(id)) {
        int rc = sessid_table_put(config->table, run->digest, id, run->now);
        if (rc != SESSID_OK && !sessid_status_is_lock_wait(rc))   /* the KV answered: a cache miss */
            return fail(run, rc);
    }
    return SESSID_OK;
}

/* Whether the run may use an optional operation: offered, or not offered but due for a retry. */
static int offered(atomic_int *cap, _Atomic double *retry_at, double now)
{
    if (atomic_load_explicit(cap, memory_order_relaxed))
        return 1;
    if (!(now >= atomic_load_explicit(retry_at, memory_order_relaxed)))
        return 0;
    atomic_store_explicit(cap, 1, memory_order_relaxed);
    return 1;
}

/* The KV did not offer an optional operation: later runs use the other form, until a retry. */
static void not_offered(sessid_proto *run, atomic_int *cap, _Atomic double *retry_at)
{
    atomic_store_explicit(retry_at, run->now + SESSID_CAPS_RETRY, memory_order_relaxed);
    atomic_store_explicit(cap, 0, memory_order_relaxed);
    sessid_table_count(run->config->table, SESSID_STAT_KV_FALLBACKS);
}

static int new_candidate(sessid_proto *run)
{
    uint8_t id[SESSID_ID_LEN];
    int rc = sessid_id_new(id);
    if (rc != SESSID_OK)
        return fail(run, rc);
    sessid_id_format(id, run->candidate);
    return SESSID_OK;
}

static int start_create(sessid_proto *run)
{
    if (new_candidate(run) != SESSID_OK)
        return run->status;
    run->state = CREATE;
    sessid_kv_caps *caps = run->config->caps;
    int with_get = offered(&caps->set_nx_get, &caps->set_nx_get_retry_at, run->now);
    set_op(run, with_get ? SESSID_OP_SET_NX_GET : SESSID_OP_SET_NX);
    return SESSID_OK;
}

/* The key holds damage: replace it, atomically where the KV offers it. */
static int start_repair(sessid_proto *run)
{
    if (run->repairing)
        return fail(run, SESSID_EVALUE);
    run->repairing = 1;
    sessid_kv_caps *caps = run->config->caps;
    if (!offered(&caps->repair, &caps->repair_retry_at, run->now)) {
        run->state = RECHECK;
        set_op(run, SESSID_OP_GET);
        return SESSID_OK;
    }
    if (new_candidate(run) != SESSID_OK)
        return run->status;
    run->state = REPAIR;
    set_op(run, SESSID_OP_REPAIR);
    return SESSID_OK;
}

static int repaired(sessid_proto *run)
{
    run->repaired = 1;
    sessid_table_count(run->config->table, SESSID_STAT_KV_REPAIRED);
    return SESSID_OK;
}

/* What every run starts with; the run is over (with SESSID_EINVAL) unless this returns 0. */
static int start(sessid_proto *run, const sessid_proto_config *config,
                 const uint8_t digest[SESSID_DIGEST_LEN], const char *key, size_t key_len,
                 double now)
{
    memset(run, 0, sizeof *run);
    run->state = DONE;
    run->status = SESSID_EINVAL;
    if (config == NULL || config->table == NULL || config->caps == NULL || config->ttl < 1
        || !(config->refresh_after >= 0) || key == NULL)
        return SESSID_EINVAL;
    run->config = config;
    memcpy(run->digest, digest, SESSID_DIGEST_LEN);
    run->now = now;
    run->status = SESSID_OK;
    run->op.key = key;
    run->op.key_len = key_len;
    run->op.ttl = config->ttl;
    return SESSID_OK;
}

int sessid_proto_begin(sessid_proto *run, const sessid_proto_config *config,
                       const uint8_t digest[SESSID_DIGEST_LEN], const char *key, size_t key_len,
                       double now)
{
    int rc = start(run, config, digest, key, key_len, now);
    if (rc != SESSID_OK)
        return rc;
    if (config->refresh_after > 0) {
        uint8_t id[SESSID_ID_LEN];
        if (sessid_table_peek(config->table, digest, now, config->refresh_after, id)) {
            char text[SESSID_ID_TEXT_LEN + 1];
            sessid_id_format(id, text);
            memcpy(run->value, text, SESSID_ID_TEXT_LEN);
            run->value_len = SESSID_ID_TEXT_LEN;
            run->state = DONE;
            sessid_table_count(config->table, SESSID_STAT_HITS);
            return SESSID_OK;
        }
    }
    run->state = LOOKUP;
    int with_getex = offered(&config->caps->getex, &config->caps->getex_retry_at, now);
    set_op(run, with_getex ? SESSID_OP_GETEX : SESSID_OP_GET);
    return SESSID_OK;
}

int sessid_proto_begin_forget(sessid_proto *run, const sessid_proto_config *config,
                              const uint8_t digest[SESSID_DIGEST_LEN], const char *key,
                              size_t key_len, double now)
{
    int rc = start(run, config, digest, key, key_len, now);
    if (rc == SESSID_OK)
        rc = sessid_table_remove(config->table, digest, now);
    if (rc != SESSID_OK)
        return fail(run, rc);
    run->state = FORGET;
    set_op(run, SESSID_OP_DELETE);
    return SESSID_OK;
}

const sessid_op *sessid_proto_next(const sessid_proto *run)
{
    return run->state == DONE ? NULL : &run->op;
}

static int feed_lookup(sessid_proto *run, int status, const sessid_kv_value *value)
{
    if (status == SESSID_EUNSUPPORTED && run->op.kind == SESSID_OP_GETEX) {
        not_offered(run, &run->config->caps->getex, &run->config->caps->getex_retry_at);
        set_op(run, SESSID_OP_GET);
        return SESSID_OK;
    }
    if (status == SESSID_EVALUE)
        return start_repair(run);
    if (status != SESSID_OK)
        return fail(run, status);
    int taken = take_value(run, value);
    if (taken == ABSENT)
        return start_create(run);
    if (taken == DAMAGED)
        return start_repair(run);
    if (run->op.kind == SESSID_OP_GETEX)
        return succeed(run, 0);
    run->state = REFRESH;
    set_op(run, SESSID_OP_EXPIRE);
    return SESSID_OK;
}

static int read_back(sessid_proto *run)
{
    run->state = READ_BACK;
    set_op(run, SESSID_OP_GET);
    return SESSID_OK;
}

static int feed_create(sessid_proto *run, int status, const sessid_kv_value *value)
{
    sessid_kv_caps *caps = run->config->caps;
    if (status == SESSID_EVALUE)
        return start_repair(run);           /* the key holds data of another type */
    if (run->op.kind == SESSID_OP_SET_NX_GET) {
        if (status == SESSID_EUNSUPPORTED) {
            not_offered(run, &caps->set_nx_get, &caps->set_nx_get_retry_at);
            set_op(run, SESSID_OP_SET_NX);
            return SESSID_OK;
        }
        if (status == SESSID_ENOREPLY) {
            not_offered(run, &caps->set_nx_get, &caps->set_nx_get_retry_at);
            return read_back(run);
        }
        if (status != SESSID_OK)
            return fail(run, status);
        if (value == NULL || !value->found) {
            memcpy(run->value, run->candidate, SESSID_ID_TEXT_LEN);
            run->value_len = SESSID_ID_TEXT_LEN;
            return succeed(run, 1);
        }
        /* A reply that is not an id is damage under the key, or a client's own answer (such as
         * "OK") that says nothing of what is there: either way, the key is read. */
        return take_value(run, value) == PRESENT ? succeed(run, 0) : read_back(run);
    }
    if (status != SESSID_OK)
        return fail(run, status);
    return read_back(run);
}

static int feed_read_back(sessid_proto *run, int status, const sessid_kv_value *value)
{
    if (status == SESSID_EVALUE)
        return start_repair(run);
    if (status != SESSID_OK)
        return fail(run, status);
    int taken = take_value(run, value);
    if (taken == ABSENT)
        return fail(run, SESSID_EMISSING);
    if (taken == DAMAGED)
        return start_repair(run);
    int ours = memcmp(run->value, run->candidate, SESSID_ID_TEXT_LEN) == 0;
    return succeed(run, ours);
}

static int feed_repair(sessid_proto *run, int status, const sessid_kv_value *value)
{
    if (status == SESSID_EUNSUPPORTED) {
        sessid_kv_caps *caps = run->config->caps;
        not_offered(run, &caps->repair, &caps->repair_retry_at);
        run->state = RECHECK;
        set_op(run, SESSID_OP_GET);
        return SESSID_OK;
    }
    if (status != SESSID_OK)
        return fail(run, status);
    if (take_value(run, value) != PRESENT)
        return fail(run, SESSID_EVALUE);
    int ours = memcmp(run->value, run->candidate, SESSID_ID_TEXT_LEN) == 0;
    if (ours)
        repaired(run);
    return succeed(run, ours);
}

static int feed_recheck(sessid_proto *run, int status, const sessid_kv_value *value)
{
    int taken = status == SESSID_EVALUE ? DAMAGED : status != SESSID_OK ? status
                                                                       : take_value(run, value);
    if (taken < 0)
        return fail(run, taken);
    if (taken == ABSENT)
        return start_create(run);
    if (taken == PRESENT) {                 /* another worker repaired it */
        run->state = REFRESH;
        set_op(run, SESSID_OP_EXPIRE);
        return SESSID_OK;
    }
    run->state = REMOVE;
    set_op(run, SESSID_OP_DELETE);
    return SESSID_OK;
}

int sessid_proto_feed(sessid_proto *run, int status, const sessid_kv_value *value)
{
    switch (run->state) {
    case LOOKUP:
        return feed_lookup(run, status, value);
    case REFRESH:
        return status == SESSID_OK ? succeed(run, 0) : fail(run, status);
    case CREATE:
        return feed_create(run, status, value);
    case READ_BACK:
        return feed_read_back(run, status, value);
    case REPAIR:
        return feed_repair(run, status, value);
    case RECHECK:
        return feed_recheck(run, status, value);
    case REMOVE:
        if (status != SESSID_OK)
            return fail(run, status);
        repaired(run);
        return start_create(run);
    case FORGET:
        if (status == SESSID_OK)
            status = sessid_table_remove(run->config->table, run->digest, run->now);
        if (status != SESSID_OK)
            return fail(run, status);
        run->state = DONE;
        return SESSID_OK;
    default:
        return SESSID_ESTATE;
    }
}

int sessid_proto_result(const sessid_proto *run, const char **text, size_t *text_len)
{
    if (run->state != DONE)
        return SESSID_ESTATE;
    if (run->status != SESSID_OK)
        return run->status;
    *text = run->value;
    *text_len = run->value_len;
    return SESSID_OK;
}

int sessid_proto_created(const sessid_proto *run)
{
    return run->created;
}

int sessid_proto_repaired(const sessid_proto *run)
{
    return run->repaired;
}

#ifdef SESSID_TESTING
static int perform(const sessid_kv *kv, const sessid_op *op, sessid_kv_value *out)
{
    const sessid_kv_methods *m = kv->methods;
    switch (op->kind) {
    case SESSID_OP_GET:
        return m->get(kv->ctx, op->key, op->key_len, out);
    case SESSID_OP_GETEX:
        return m->getex == NULL ? SESSID_EUNSUPPORTED
                                : m->getex(kv->ctx, op->key, op->key_len, op->ttl, out);
    case SESSID_OP_SET_NX:
        return m->set_nx(kv->ctx, op->key, op->key_len, op->value, op->value_len, op->ttl);
    case SESSID_OP_SET_NX_GET:
        return m->set_nx_get == NULL
                   ? SESSID_EUNSUPPORTED
                   : m->set_nx_get(kv->ctx, op->key, op->key_len, op->value, op->value_len,
                                   op->ttl, out);
    case SESSID_OP_EXPIRE:
        return m->expire(kv->ctx, op->key, op->key_len, op->ttl);
    case SESSID_OP_DELETE:
        return m->version < 2 || m->del == NULL ? SESSID_EUNSUPPORTED
                                                : m->del(kv->ctx, op->key, op->key_len);
    case SESSID_OP_REPAIR:
        return m->version < 3 || m->repair == NULL
                   ? SESSID_EUNSUPPORTED
                   : m->repair(kv->ctx, op->key, op->key_len, op->value, op->value_len, op->ttl,
                               out);
    }
    return SESSID_ESTATE;
}

int sessid_proto_run(sessid_proto *run, const sessid_kv *kv)
{
    if (kv == NULL || kv->methods == NULL || kv->methods->version < 1 || kv->methods->get == NULL
        || kv->methods->set_nx == NULL || kv->methods->expire == NULL)
        return fail(run, SESSID_EINVAL);
    const sessid_op *op;
    while ((op = sessid_proto_next(run)) != NULL) {
        sessid_kv_value value = {0};
        sessid_proto_feed(run, perform(kv, op, &value), &value);
    }
    const char *text;
    size_t len;
    return sessid_proto_result(run, &text, &len);
}
#endif
