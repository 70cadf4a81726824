#include "fake_kv.h"

#include <string.h>

void fake_kv_init(fake_kv *kv)
{
    memset(kv, 0, sizeof *kv);
}

static fake_kv_item *find(fake_kv *kv, const char *key, size_t key_len)
{
    for (int i = 0; i < FAKE_KV_ITEMS; i++) {
        fake_kv_item *item = &kv->items[i];
        if (item->used && item->key_len == key_len && memcmp(item->key, key, key_len) == 0)
            return item;
    }
    return NULL;
}

static void put(fake_kv *kv, const char *key, size_t key_len, const char *value, size_t len,
                uint64_t ttl)
{
    fake_kv_item *item = find(kv, key, key_len);
    for (int i = 0; item == NULL && i < FAKE_KV_ITEMS; i++)
        if (!kv->items[i].used)
            item = &kv->items[i];
    if (item == NULL || key_len > FAKE_KV_TEXT || len > FAKE_KV_TEXT)
        return;
    item->used = 1;
    memcpy(item->key, key, key_len);
    item->key_len = key_len;
    memcpy(item->value, value, len);
    item->value_len = len;
    item->ttl = ttl;
}

static void reply(const fake_kv_item *item, sessid_kv_value *out)
{
    out->found = item != NULL;
    out->data = item != NULL ? item->value : NULL;
    out->len = item != NULL ? item->value_len : 0;
}

/* Counts the call; returns the injected failure for it, or 0. */
static int enter(fake_kv *kv, sessid_op_kind kind, uint64_t ttl)
{
    kv->calls[kind]++;
    kv->last_ttl[kind] = ttl;
    return kv->fail[kind];
}

static int kv_get(void *ctx, const char *key, size_t key_len, sessid_kv_value *out)
{
    fake_kv *kv = ctx;
    int rc = enter(kv, SESSID_OP_GET, 0);
    if (rc == 0)
        reply(find(kv, key, key_len), out);
    return rc;
}

static int kv_getex(void *ctx, const char *key, size_t key_len, uint64_t ttl, sessid_kv_value *out)
{
    fake_kv *kv = ctx;
    int rc = enter(kv, SESSID_OP_GETEX, ttl);
    if (rc != 0)
        return rc;
    fake_kv_item *item = find(kv, key, key_len);
    if (item != NULL)
        item->ttl = ttl;
    reply(item, out);
    return 0;
}

static int set_if_absent(fake_kv *kv, const char *key, size_t key_len, const char *value,
                         size_t value_len, uint64_t ttl)
{
    if (find(kv, key, key_len) == NULL && !kv->set_does_not_persist)
        put(kv, key, key_len, value, value_len, ttl);
    return 0;
}

static int kv_set_nx(void *ctx, const char *key, size_t key_len, const char *value,
                     size_t value_len, uint64_t ttl)
{
    fake_kv *kv = ctx;
    int rc = enter(kv, SESSID_OP_SET_NX, ttl);
    return rc != 0 ? rc : set_if_absent(kv, key, key_len, value, value_len, ttl);
}

static int kv_set_nx_get(void *ctx, const char *key, size_t key_len, const char *value,
                         size_t value_len, uint64_t ttl, sessid_kv_value *out)
{
    fake_kv *kv = ctx;
    int rc = enter(kv, SESSID_OP_SET_NX_GET, ttl);
    if (rc != 0)
        return rc;
    fake_kv_item *before = find(kv, key, key_len);
    reply(before, out);
    set_if_absent(kv, key, key_len, value, value_len, ttl);
    return kv->set_get_ignored ? SESSID_ENOREPLY : 0;
}

static int kv_expire(void *ctx, const char *key, size_t key_len, uint64_t ttl)
{
    fake_kv *kv = ctx;
    int rc = enter(kv, SESSID_OP_EXPIRE, ttl);
    if (rc != 0)
        return rc;
    fake_kv_item *item = find(kv, key, key_len);
    if (item != NULL)
        item->ttl = ttl;
    return 0;
}

static int kv_del(void *ctx, const char *key, size_t key_len)
{
    fake_kv *kv = ctx;
    int rc = enter(kv, SESSID_OP_DELETE, 0);
    if (rc != 0)
        return rc;
    fake_kv_item *item = find(kv, key, key_len);
    if (item != NULL)
        memset(item, 0, sizeof *item);
    return 0;
}

static const sessid_kv_methods fake_methods = {
    .version = SESSID_KV_VERSION,
    .get = kv_get,
    .set_nx = kv_set_nx,
    .expire = kv_expire,
    .getex = kv_getex,
    .set_nx_get = kv_set_nx_get,
    .del = kv_del,
};

sessid_kv fake_kv_backend(fake_kv *kv)
{
    sessid_kv backend = {&fake_methods, kv};
    return backend;
}

void fake_kv_store(fake_kv *kv, const char *key, const char *value, size_t len)
{
    put(kv, key, strlen(key), value, len, 0);
}

const fake_kv_item *fake_kv_find(const fake_kv *kv, const char *key)
{
    return find((fake_kv *)kv, key, strlen(key));
}

int fake_kv_total_calls(const fake_kv *kv)
{
    int total = 0;
    for (int i = 0; i <= SESSID_OP_REPAIR; i++)
        total += kv->calls[i];
    return total;
}
