/* A native KV backend: the shared store where every process of a proxy finds the same session id.
 *
 * A backend is a table of methods plus an opaque context pointer that is passed back to each of
 * them, in the manner of SQLite's sqlite3_io_methods. A backend fills in the methods of the newest
 * version it knows and sets `version` to it; a caller uses no method beyond that version.
 *
 * This vtable and sessid_proto_run (proto.h) are the contract for KV backends written in C: the
 * core's tests drive the protocol through a fake backend of this kind, and so do the fuzzers. The
 * Python binding does not use it: it steps the protocol itself (sessid_proto_next / _feed), so that
 * one loop serves a synchronous client and an asyncio one. sessid_proto_run is therefore built
 * only for the tests (SESSID_TESTING).
 *
 * For every method:
 *   - key[0..key_len) is the KV key (not NUL-terminated); value[0..value_len) likewise;
 *   - ttl is a whole number of seconds, at least 1;
 *   - it returns one of:
 *       0                     the KV performed the operation;
 *       SESSID_EKV            the operation failed (the backend keeps its own account of why, for its
 *                             caller to report);
 *       SESSID_EUNSUPPORTED   the KV does not offer the operation and did nothing;
 *       SESSID_EVALUE         (methods with an out value) the KV answered with something that is not
 *                             a value at all, such as text the backend cannot hand over as bytes,
 *                             or the key holds data of another type (WRONGTYPE): the key is
 *                             damaged, and the protocol replaces it;
 *       SESSID_ENOREPLY       (set_nx_get only) see there;
 *   - a value handed back through a sessid_kv_value is owned by the backend and stays valid until
 *     the next method call on the same context; a caller copies whatever it keeps.
 */
#ifndef SESSID_KV_H
#define SESSID_KV_H

#include <stddef.h>
#include <stdint.h>

typedef struct sessid_kv_value {
    int found;              /* 0 when the key holds nothing (nil); data and len are then unused */
    const char *data;       /* the value, not NUL-terminated */
    size_t len;
} sessid_kv_value;

#define SESSID_KV_VERSION 3

typedef struct sessid_kv_methods {
    int version;

    /* Version 1. */

    /* GET key. */
    int (*get)(void *ctx, const char *key, size_t key_len, sessid_kv_value *out);

    /* SET key value NX EX ttl. Whether the value was stored is not reported: the protocol reads
     * the key back. */
    int (*set_nx)(void *ctx, const char *key, size_t key_len, const char *value, size_t value_len,
                  uint64_t ttl);

    /* EXPIRE key ttl. Whether the key existed is not reported. */
    int (*expire)(void *ctx, const char *key, size_t key_len, uint64_t ttl);

    /* GETEX key EX ttl (Redis 6.2+): GET and EXPIRE in one round trip. May be NULL. */
    int (*getex)(void *ctx, const char *key, size_t key_len, uint64_t ttl, sessid_kv_value *out);

    /* SET key value NX EX ttl GET (Redis 7.0+): *out is the value that was already there (found),
     * or nil when this value was stored. May be NULL. Besides the common statuses it may return
     * SESSID_ENOREPLY: the set ran, but the reply did not tell what was there before. */
    int (*set_nx_get)(void *ctx, const char *key, size_t key_len, const char *value,
                      size_t value_len, uint64_t ttl, sessid_kv_value *out);

    /* Version 2. */

    /* DEL key: the key's session is over (forget). Whether the key existed is not reported. A
     * run that must delete through a version 1 backend, or one that leaves this NULL, fails with
     * SESSID_EUNSUPPORTED. */
    int (*del)(void *ctx, const char *key, size_t key_len);

    /* Version 3. */

    /* Atomically, in one step of the KV (a script): when key holds a session id (a version 4 UUID
     * in its 36-character form, surrounding whitespace and letter case aside), EXPIRE key ttl and
     * hand it back; otherwise (nothing, another value, or data of another type) SET key value EX
     * ttl and hand value back. May be NULL: the protocol then re-reads the key, deletes the damage
     * and sets the key if absent, which two workers repairing at once may each do. */
    int (*repair)(void *ctx, const char *key, size_t key_len, const char *value, size_t value_len,
                  uint64_t ttl, sessid_kv_value *out);
} sessid_kv_methods;

typedef struct sessid_kv {
    const sessid_kv_methods *methods;
    void *ctx;
} sessid_kv;

#endif
