/* One KV lookup (or forget): the core's protocol run, the Python backend it is performed on, and the
 * one loop that drives them, for get (every reply at once) and for aget (a reply may be awaited
 * first); the store's account of a failing KV: the backoff window and its log line; a full
 * connection pool waited out; and the lookups of one key in flight at once, which share one run.
 *
 *     sessidpy_kvrun_begin(&run, &conf, kv, digest, now, kind);
 *     awaitable = sessidpy_kvrun_advance(&run, can_await);
 *     while (awaitable != NULL)                  only with can_await: await it, then
 *         sessidpy_kvrun_reply(&run, reply)      or  sessidpy_kvrun_raised(&run, exc)
 *         awaitable = sessidpy_kvrun_advance(&run, 1);
 *     id = sessidpy_kvrun_finish(&run);
 *     sessidpy_kvrun_clear(&run);
 */
#ifndef SESSIDPY_KVRUN_H
#define SESSIDPY_KVRUN_H

#include "_apikey.h"
#include "_clock.h"
#include "_pykv.h"
#include "_state.h"

/* What every lookup of one store shares; it lives in the store and outlives each lookup. Its
 * mutable fields change only under the GIL. */
typedef struct sessidpy_kvconf {
    sessidpy_state *state;
    const sessidpy_prefix *prefix;
    const sessidpy_clock *clock;
    sessid_proto_config proto;  /* its table is the store's local table */
    sessid_kv_caps caps;        /* proto.caps points here */
    int fallback_local;         /* on_kv_error="local": a failed best-effort lookup asks the table */
    double backoff;             /* kv_backoff: seconds best-effort lookups leave a failing KV alone */
    double failing_since;       /* when the KV last failed, on the store's clock; NAN once it works */
    double logged_at;           /* when a hidden failure was last logged; NAN before the first */
    unsigned long finished;     /* lookups finished so far: a full pool that moves is waited for */
    int probing;                /* a best-effort lookup is asking the KV after a window: the others
                                   skip it until that one is over */
    struct sessidpy_flight *flights;    /* get's lookups in flight, one per key (threads) */
    PyObject *aflights;         /* aget's lookups in flight: a dict that sessid._aio keeps, made on
                                   first use; cleared with sessidpy_kvconf_clear */
} sessidpy_kvconf;

/* Drops what conf holds (the store is going). */
void sessidpy_kvconf_clear(sessidpy_kvconf *conf);
int sessidpy_kvconf_traverse(sessidpy_kvconf *conf, visitproc visit, void *arg);

/* How a lookup ended, for the lookups of the same key that waited for it. */
typedef enum sessidpy_outcome {
    SESSIDPY_ANSWERED,          /* the KV answered with the key's id */
    SESSIDPY_FELL_BACK,         /* best effort, without the KV: on_kv_error's id */
    SESSIDPY_RAISED             /* it raised, or has not ended */
} sessidpy_outcome;

typedef enum sessidpy_kvrun_kind {
    SESSIDPY_BEST_EFFORT,       /* get, aget: a KV failure is answered with on_kv_error's id */
    SESSIDPY_REQUIRED,          /* get_required, aget_required: it raises KVError */
    SESSIDPY_FORGET             /* forget, aforget: delete the key; a KV failure raises KVError */
} sessidpy_kvrun_kind;

typedef struct sessidpy_kvrun {
    sessidpy_kvconf *conf;
    sessid_proto run;
    sessidpy_pykv backend;      /* holds the KV key that run points into */
    uint8_t digest[SESSID_DIGEST_LEN];
    double now;
    sessidpy_kvrun_kind kind;
    int decided;                /* whether to skip the KV was decided (at the first operation) */
    int skipped;                /* a best-effort lookup inside the backoff window: the KV is not asked */
    int probe;                  /* this run holds conf->probing */
    int sleeping;               /* the awaitable handed out is a wait for a connection */
    int pool_full;              /* an awaited operation met a full pool: wait, then perform it again */
    double pool_deadline;       /* monotonic seconds: the pool may be waited for until then */
    double pool_limit;          /* monotonic seconds: and never after this */
    unsigned long pool_seen;    /* conf->finished when the deadline was last set */
    double pool_delay;          /* the next wait for a connection, in seconds */
    int asked;                  /* some operation was performed */
    sessidpy_outcome outcome;
} sessidpy_kvrun;

/* Starts the lookup (or forget) of digest on kv at time now: makes its KV key and the run's first
 * operation. At its first operation, a best-effort lookup inside the backoff window, or while
 * another one probes the KV, skips the KV; the first one after the window probes it, so that while
 * a KV is failing at most one best-effort call waits for it. Clear the run afterwards, whether this
 * succeeded or not. */
int sessidpy_kvrun_begin(sessidpy_kvrun *run, sessidpy_kvconf *conf, PyObject *kv,
                         const uint8_t digest[SESSID_DIGEST_LEN], double now,
                         sessidpy_kvrun_kind kind);

/* Performs operations until the run is over (returns NULL) or, with can_await, until a KV method
 * returns an awaitable (returned, a new reference). Without can_await an awaitable is refused as a
 * failure of that operation. A full connection pool is waited out in short sleeps (without the GIL;
 * with can_await, as awaitables of asyncio.sleep), and the operation performed again: for as long
 * as other lookups of the store keep finishing (the pool moves), but no more than
 * SESSIDPY_POOL_WAIT seconds without one finishing, nor SESSIDPY_POOL_LIMIT in all. Never raises:
 * failures are recorded for sessidpy_kvrun_finish. */
#define SESSIDPY_POOL_WAIT 1.0
#define SESSIDPY_POOL_LIMIT 10.0
PyObject *sessidpy_kvrun_advance(sessidpy_kvrun *run, int can_await);

/* Hands in what the awaitable returned by sessidpy_kvrun_advance gave: its result, or the exception
 * it raised (borrowed). RuntimeError when the run is not waiting for one. */
int sessidpy_kvrun_reply(sessidpy_kvrun *run, PyObject *reply);
int sessidpy_kvrun_raised(sessidpy_kvrun *run, PyObject *exc);

/* 1 while the run has operations left. */
int sessidpy_kvrun_running(const sessidpy_kvrun *run);

/* The end of a finished run: the id as a str when it succeeded (None for a forget); otherwise the
 * KV's BaseException (or the TypeError of an asyncio client given to get), or KVError unless the
 * run is best-effort, or else the fallback id of the store's on_kv_error policy; run->outcome says
 * which. A KV failure is counted in the table's kv_errors; one that says the server is unreachable
 * or failing opens the backoff window, whatever the call; one that a best-effort run hides is
 * logged, at most once per window; a skipped run is counted in kv_skipped; otherwise a run that the
 * server answered closes the window. A repair is logged. */
PyObject *sessidpy_kvrun_finish(sessidpy_kvrun *run);

/* Ends run, begun but not advanced, with the answer of another lookup of its key, which ended with
 * outcome: a new reference to answer when this lookup may take it (an id the KV answered; a best
 * effort one's fallback id for a best-effort lookup), counted as a hit or as kv_skipped; NULL,
 * with no exception set, when it must ask the KV itself. */
PyObject *sessidpy_kvrun_adopt(sessidpy_kvrun *run, PyObject *answer, sessidpy_outcome outcome);

/* The whole of a synchronous lookup (get, get_required) or forget: a lookup of a key that another
 * thread is looking up in this store waits for that one's answer (with the GIL released) and takes
 * it where it may, so that one KV exchange serves them all. */
PyObject *sessidpy_kvrun_sync(sessidpy_kvconf *conf, PyObject *kv,
                              const uint8_t digest[SESSID_DIGEST_LEN], double now,
                              sessidpy_kvrun_kind kind);

/* For aget: (flights, key) where flights is conf's dict of lookups in flight and key the digest as
 * bytes, or None for a forget. */
PyObject *sessidpy_kvrun_flight_key(sessidpy_kvrun *run);

void sessidpy_kvrun_clear(sessidpy_kvrun *run);
int sessidpy_kvrun_traverse(sessidpy_kvrun *run, visitproc visit, void *arg);

#endif
