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
    FORGET,     /* DEL */
    DONE
};

enum { ABSENT = 0, PRESENT = 1 };

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Trims and checks a value from the KV; a usable one is copied into run->value. Returns PRESENT,
 * ABSENT (nil or blank) or SESSID_EVALUE. */
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
    size_t len = (size_t)(end - start);
    if (len == 0)
        return ABSENT;
    if (len > SESSID_VALUE_MAX)
        return SESSID_EVALUE;
    for (size_t i = 0; i < len; i++)
        if (start[i] < 0x21 || start[i] > 0x7e)
            return SESSID_EVALUE;
    memcpy(run->value, start, len);
    run->value_len = len;
    return PRESENT;
}

static void set_op(sessid_proto *run, sessid_op_kind kind)
{
    assert(run->state != DONE);
    run->op.kind = kind;
    int writes = kind == SESSID_OP_SET_NX || kind == SESSID_OP_SET_NX_GET;
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

static int start_create(sessid_proto *run)
{
    uint8_t id[SESSID_ID_LEN];
    int rc = sessid_id_new(id);
    if (rc != SESSID_OK)
        return fail(run, rc);
    sessid_id_format(id, run->candidate);
    run->state = CREATE;
    int with_get = atomic_load_explicit(&run->config->caps->set_nx_get, memory_order_relaxed);
    set_op(run, with_get ? SESSID_OP_SET_NX_GET : SESSID_OP_SET_NX);
    return SESSID_OK;
}

static void not_offered(atomic_int *cap)
{
    atomic_store_explicit(cap, 0, memory_order_relaxed);
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
    int with_getex = atomic_load_explicit(&config->caps->getex, memory_order_relaxed);
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
        not_offered(&run->config->caps->getex);
        set_op(run, SESSID_OP_GET);
        return SESSID_OK;
    }
    if (status != SESSID_OK)
        return fail(run, status);
    int taken = take_value(run, value);
    if (taken < 0)
        return fail(run, taken);
    if (taken == ABSENT)
        return start_create(run);
    if (run->op.kind == SESSID_OP_GETEX)
        return succeed(run, 0);
    run->state = REFRESH;
    set_op(run, SESSID_OP_EXPIRE);
    return SESSID_OK;
}

static int feed_create(sessid_proto *run, int status, const sessid_kv_value *value)
{
    if (run->op.kind == SESSID_OP_SET_NX_GET) {
        if (status == SESSID_EUNSUPPORTED) {
            not_offered(&run->config->caps->set_nx_get);
            set_op(run, SESSID_OP_SET_NX);
            return SESSID_OK;
        }
        if (status == SESSID_ENOREPLY) {
            not_offered(&run->config->caps->set_nx_get);
            status = SESSID_OK;
        } else {
            if (status != SESSID_OK)
                return fail(run, status);
            if (value == NULL || !value->found) {
                memcpy(run->value, run->candidate, SESSID_ID_TEXT_LEN);
                run->value_len = SESSID_ID_TEXT_LEN;
                return succeed(run, 1);
            }
            int taken = take_value(run, value);
            if (taken < 0)
                return fail(run, taken);
            return taken == PRESENT ? succeed(run, 0) : fail(run, SESSID_EMISSING);
        }
    }
    if (status != SESSID_OK)
        return fail(run, status);
    run->state = READ_BACK;
    set_op(run, SESSID_OP_GET);
    return SESSID_OK;
}

static int feed_read_back(sessid_proto *run, int status, const sessid_kv_value *value)
{
    if (status != SESSID_OK)
        return fail(run, status);
    int taken = take_value(run, value);
    if (taken < 0)
        return fail(run, taken);
    if (taken == ABSENT)
        return fail(run, SESSID_EMISSING);
    int ours = run->value_len == SESSID_ID_TEXT_LEN
               && memcmp(run->value, run->candidate, SESSID_ID_TEXT_LEN) == 0;
    return succeed(run, ours);
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
