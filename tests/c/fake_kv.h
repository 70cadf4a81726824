/* An in-memory KV behind the sessid_kv vtable, for the C tests and the fuzzer: counts calls per
 * operation, records the TTLs it was sent, and fails or misbehaves on request. */
#ifndef SESSID_TEST_FAKE_KV_H
#define SESSID_TEST_FAKE_KV_H

#include <stddef.h>
#include <stdint.h>

#include "../../csrc/sessid.h"

#define FAKE_KV_ITEMS 16
#define FAKE_KV_TEXT 256

typedef struct fake_kv_item {
    int used;
    char key[FAKE_KV_TEXT];
    size_t key_len;
    char value[FAKE_KV_TEXT];
    size_t value_len;
    uint64_t ttl;
} fake_kv_item;

typedef struct fake_kv {
    fake_kv_item items[FAKE_KV_ITEMS];
    int calls[SESSID_OP_REPAIR + 1];        /* indexed by sessid_op_kind */
    uint64_t last_ttl[SESSID_OP_REPAIR + 1];
    int fail[SESSID_OP_REPAIR + 1];         /* nonzero: return this status and do nothing */
    int set_does_not_persist;               /* SET reports success but stores nothing */
    int set_get_ignored;                    /* SET ... GET stores but answers SESSID_ENOREPLY */
} fake_kv;

void fake_kv_init(fake_kv *kv);

/* The vtable view of kv; it stays valid as long as kv does. */
sessid_kv fake_kv_backend(fake_kv *kv);

/* Stores value[0..len) under the NUL-terminated key, as another process would. */
void fake_kv_store(fake_kv *kv, const char *key, const char *value, size_t len);

/* The item under the NUL-terminated key, or NULL. */
const fake_kv_item *fake_kv_find(const fake_kv *kv, const char *key);

/* Total calls of every operation. */
int fake_kv_total_calls(const fake_kv *kv);

#endif
