/* One KV lookup (or forget): the core's protocol run, the Python backend it is performed on, and the
 * one loop that drives them, for get (every reply at once) and for aget (a reply may be awaited
 * first); and the store's account of a failing KV: the backoff window and its log line.
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
} sessidpy_kvconf;

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
    int skipped;                /* a best-effort lookup inside the backoff window: the KV is not asked */
    int asked;                  /* some operation was performed */
} sessidpy_kvrun;

/* Starts the lookup (or forget) of digest on kv at time now: makes its KV key and the run's first
 * operation. A best-effort lookup inside the backoff window will skip the KV; the first one after
 * the window asks it, and starts another window for the others, so that while a KV is failing at
 * most one call per window waits for it. Clear the run afterwards, whether this succeeded or not. */
int sessidpy_kvrun_begin(sessidpy_kvrun *run, sessidpy_kvconf *conf, PyObject *kv,
                         const uint8_t digest[SESSID_DIGEST_LEN], double now,
                         sessidpy_kvrun_kind kind);

/* Performs operations until the run is over (returns NULL) or, with can_await, until a KV method
 * returns an awaitable (returned, a new reference). Without can_await an awaitable is refused as a
 * failure of that operation. Never raises: failures are recorded for sessidpy_kvrun_finish. */
PyObject *sessidpy_kvrun_advance(sessidpy_kvrun *run, int can_await);

/* Hands in what the awaitable returned by sessidpy_kvrun_advance gave: its result, or the exception
 * it raised (borrowed). RuntimeError when the run is not waiting for one. */
int sessidpy_kvrun_reply(sessidpy_kvrun *run, PyObject *reply);
int sessidpy_kvrun_raised(sessidpy_kvrun *run, PyObject *exc);

/* 1 while the run has operations left. */
int sessidpy_kvrun_running(const sessidpy_kvrun *run);

/* The end of a finished run: the id as a str when it succeeded (None for a forget); otherwise the
 * KV's BaseException, or KVError unless the run is best-effort, or else the fallback id of the
 * store's on_kv_error policy. A KV failure is counted in the table's kv_errors; a lookup's opens
 * the backoff window; one that a best-effort run hides is logged, at most once per window; a skipped
 * run is counted in kv_skipped; a run whose operations succeeded closes the window. */
PyObject *sessidpy_kvrun_finish(sessidpy_kvrun *run);

void sessidpy_kvrun_clear(sessidpy_kvrun *run);
int sessidpy_kvrun_traverse(sessidpy_kvrun *run, visitproc visit, void *arg);

#endif
