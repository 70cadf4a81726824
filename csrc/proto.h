/* The get-or-create protocol over a KV, written once, as a state machine.
 *
 * One run finds or makes the session id behind one KV key:
 *   lookup:  GETEX key EX ttl                   or  GET key, then EXPIRE key ttl when found
 *   create:  SET key id NX EX ttl GET           or  SET key id NX EX ttl, then GET key
 *   repair:  REPAIR key id ttl (one script)     or  GET key, DEL key when still damaged, then create
 * or, begun with sessid_proto_begin_forget, ends the key's session:
 *   forget:  DEL key
 * The first form of each is used while the KV offers it; when the KV turns out not to (an old
 * server, a client without the method, a proxy or an ACL that refuses it), the run switches to the
 * second form and records that in the shared sessid_kv_caps, so later runs go straight to it, until
 * SESSID_CAPS_RETRY seconds have passed: then a run tries the first form again.
 *
 * A value from the KV is a session id when, with surrounding ASCII whitespace removed, it is a
 * version 4 UUID in its 36-character form; it is read in lowercase. Anything else under the key (a
 * blank or other value, data of another type) is damage: the run that meets it replaces it with a
 * new id (repair), so that every worker ends on one id. A run repairs at most once; damage met
 * again fails it with SESSID_EVALUE.
 *
 * A caller drives a run one KV operation at a time:
 *
 *     sessid_proto_begin(&run, &config, digest, key, key_len, now);
 *     while ((op = sessid_proto_next(&run)) != NULL)
 *         sessid_proto_feed(&run, <status of performing *op>, <value it returned, or NULL>);
 *     status = sessid_proto_result(&run, &text, &text_len);
 *
 * so every driver shares this code: the Python binding's one loop, which performs each operation on
 * a Python object and, for an asyncio client, awaits it, and sessid_proto_run below, for a native
 * backend (kv.h), through which the core's tests and fuzzer drive the protocol. A run allocates nothing, holds no lock between steps and needs no cleanup, so
 * it may be abandoned at any step.
 */
#ifndef SESSID_PROTO_H
#define SESSID_PROTO_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "idgen.h"
#include "kv.h"
#include "table.h"

/* The longest text a run hands back (a session id is SESSID_ID_TEXT_LEN). */
#define SESSID_VALUE_MAX 128

/* Seconds after which a run tries again an optional operation the KV did not offer. */
#define SESSID_CAPS_RETRY 60.0

typedef enum sessid_op_kind {
    SESSID_OP_GET = 1,
    SESSID_OP_GETEX,
    SESSID_OP_SET_NX,
    SESSID_OP_SET_NX_GET,
    SESSID_OP_EXPIRE,
    SESSID_OP_DELETE,
    SESSID_OP_REPAIR        /* see kv.h, repair: the reply is the id now under the key */
} sessid_op_kind;

/* One KV operation for the driver to perform. */
typedef struct sessid_op {
    sessid_op_kind kind;
    const char *key;        /* the key given to sessid_proto_begin */
    size_t key_len;
    const char *value;      /* SET_NX, SET_NX_GET, REPAIR: the new session id (36 characters) */
    size_t value_len;
    uint64_t ttl;           /* every kind but GET and DELETE: whole seconds, at least 1 */
} sessid_op;

/* Which optional operations the KV offers, shared by every run over one KV. Each flag starts at 1
 * for an operation worth trying; a run sets it to 0 when the KV answers SESSID_EUNSUPPORTED, and
 * its retry_at to now + SESSID_CAPS_RETRY; the first run at or after retry_at sets it to 1 again.
 * All zeros (memset) means: try every operation. A retry_at of INFINITY never tries again. */
typedef struct sessid_kv_caps {
    atomic_int getex;
    atomic_int set_nx_get;
    atomic_int repair;
    _Atomic double getex_retry_at;
    _Atomic double set_nx_get_retry_at;
    _Atomic double repair_retry_at;
} sessid_kv_caps;

typedef struct sessid_proto_config {
    uint64_t ttl;           /* seconds sent to the KV, at least 1 */
    sessid_table *table;    /* counts hits, misses, fallbacks and repairs; holds local copies;
                               required */
    int keep_local;         /* store in the table every id that is a version 4 UUID in canonical
                               form (the table holds nothing else) */
    double refresh_after;   /* > 0: answer from the table, with no KV operation, when the id was
                               stored there less than this many seconds ago; 0: never */
    sessid_kv_caps *caps;   /* required */
} sessid_proto_config;

/* A run in progress. Its fields are private. */
typedef struct sessid_proto {
    const sessid_proto_config *config;
    uint8_t digest[SESSID_DIGEST_LEN];
    double now;
    int state;
    int status;
    int created;
    int repairing;          /* the run met damage and is replacing it */
    int repaired;           /* the run replaced damage */
    sessid_op op;
    char candidate[SESSID_ID_TEXT_LEN + 1];
    char value[SESSID_VALUE_MAX];
    size_t value_len;
} sessid_proto;

/* Starts a run for the KV key key[0..key_len) of an API key whose digest is given, at time now (the
 * table's clock). config and key must outlive the run. With config->refresh_after set, the run may
 * finish here, with no KV operation. Returns 0 or SESSID_EINVAL (config out of range). */
int sessid_proto_begin(sessid_proto *run, const sessid_proto_config *config,
                       const uint8_t digest[SESSID_DIGEST_LEN], const char *key, size_t key_len,
                       double now);

/* Starts a run that forgets the API key whose digest is given: it drops the key's entry from the
 * table at once and has the KV delete key[0..key_len) (one DELETE operation); when the delete
 * succeeds it drops the entry again, in case a lookup that raced with it stored the old id. The
 * run succeeds with an empty text. Returns 0 or SESSID_EINVAL (config out of range), or
 * SESSID_ESTATE from the table. */
int sessid_proto_begin_forget(sessid_proto *run, const sessid_proto_config *config,
                              const uint8_t digest[SESSID_DIGEST_LEN], const char *key,
                              size_t key_len, double now);

/* The operation to perform next, or NULL when the run is over. The operation stays valid until the
 * next sessid_proto_feed. */
const sessid_op *sessid_proto_next(const sessid_proto *run);

/* Hands the outcome of the operation sessid_proto_next returned to the run: status is what
 * performing it returned (one of the statuses kv.h lists for a method), value is what it read (GET, GETEX, SET_NX_GET; NULL for the others). The value is copied
 * before this returns. Returns the run's status so far: 0 while it runs or once it succeeded, a
 * negative status once it failed, SESSID_ESTATE when the run was over already. */
int sessid_proto_feed(sessid_proto *run, int status, const sessid_kv_value *value);

/* The outcome of a finished run: 0 with *text and *text_len set to the session id (a buffer inside
 * the run, not NUL-terminated; empty for a forget run), or the status it failed with: SESSID_EKV and SESSID_EUNSUPPORTED
 * (from a KV operation), SESSID_EMISSING, SESSID_EVALUE, SESSID_ERANDOM, SESSID_ENOMEM (storing
 * the local copy), or SESSID_ESTATE while the run is not over. */
int sessid_proto_result(const sessid_proto *run, const char **text, size_t *text_len);

/* 1 when the run stored the id it made itself, 0 when the id came from the KV or the table. */
int sessid_proto_created(const sessid_proto *run);

/* 1 when the run replaced damage under its key (counted in SESSID_STAT_KV_REPAIRED). */
int sessid_proto_repaired(const sessid_proto *run);

#ifdef SESSID_TESTING
/* The synchronous driver for a native backend (kv.h), built only with SESSID_TESTING (the C tests,
 * the fuzzer, SESSID_DEBUG=1 builds of the extension): performs each operation through kv until
 * the run is over and returns what sessid_proto_result would. SESSID_EINVAL when kv is not a
 * version 1 or later backend with get, set_nx and expire. A DELETE on a backend without del
 * (version 2) fails the run with SESSID_EUNSUPPORTED; a REPAIR on a backend without repair
 * (version 3) takes the second form. */
int sessid_proto_run(sessid_proto *run, const sessid_kv *kv);
#endif

#endif
