/* One KV lookup: the core's protocol run, the Python backend it is performed on, and the one loop
 * that drives them, for get (every reply at once) and for aget (a reply may be awaited first).
 *
 *     sessidpy_kvrun_begin(&run, &conf, kv, digest, now, required);
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
#include "_pykv.h"
#include "_state.h"

/* What every lookup of one store shares; it lives in the store and outlives each lookup. */
typedef struct sessidpy_kvconf {
    sessidpy_state *state;
    const sessidpy_prefix *prefix;
    sessid_proto_config proto;  /* its table is the store's local table */
    sessid_kv_caps caps;        /* proto.caps points here */
    int fallback_local;         /* on_kv_error="local": a failed best-effort lookup asks the table */
} sessidpy_kvconf;

typedef struct sessidpy_kvrun {
    const sessidpy_kvconf *conf;
    sessid_proto run;
    sessidpy_pykv backend;      /* holds the KV key that run points into */
    uint8_t digest[SESSID_DIGEST_LEN];
    double now;
    int required;
} sessidpy_kvrun;

/* Starts the lookup of digest on kv at time now: makes its KV key and the run's first operation.
 * required: the lookup raises KVError instead of falling back. Clear the run afterwards, whether
 * this succeeded or not. */
int sessidpy_kvrun_begin(sessidpy_kvrun *run, const sessidpy_kvconf *conf, PyObject *kv,
                         const uint8_t digest[SESSID_DIGEST_LEN], double now, int required);

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

/* The end of a finished run: the id as a str when it succeeded; otherwise the KV's BaseException,
 * or KVError when required, or else the fallback id of the store's on_kv_error policy (a KV
 * failure is counted in the table's kv_errors). */
PyObject *sessidpy_kvrun_finish(sessidpy_kvrun *run);

void sessidpy_kvrun_clear(sessidpy_kvrun *run);
int sessidpy_kvrun_traverse(sessidpy_kvrun *run, visitproc visit, void *arg);

#endif
