/* The KV backend over a Python object with the redis-py client API: one protocol operation at a
 * time, called as a method of the object, its reply read for the core, its failure recorded.
 *
 * It lives inside one KV lookup (see _kvrun.h), so a KV method that calls back into sessid gets a
 * backend of its own. Nothing here leaves an exception set: a failure is recorded in the backend
 * and reported to the core as a status; _errors.c raises it at the end of the lookup.
 */
#ifndef SESSIDPY_PYKV_H
#define SESSIDPY_PYKV_H

#include "_errors.h"
#include "_state.h"

typedef struct sessidpy_pykv {
    sessidpy_state *state;
    PyObject *kv;               /* strong */
    PyObject *name;             /* strong: the KV key as a str */
    PyObject *ttl;              /* strong once made: the TTL as an int */
    PyObject *held;             /* strong: the last reply, alive while the core reads it */
    int answered;               /* the server answered some operation (a value, or an error reply
                                   about the key or the command) */
    sessidpy_kv_failure failure;
} sessidpy_pykv;

void sessidpy_pykv_init(sessidpy_pykv *backend, sessidpy_state *state, PyObject *kv,
                        PyObject *name);
void sessidpy_pykv_clear(sessidpy_pykv *backend);
int sessidpy_pykv_traverse(sessidpy_pykv *backend, visitproc visit, void *arg);

/* Calls the KV method for op. Returns its result (new reference), or NULL with *status set to the
 * failure. */
PyObject *sessidpy_pykv_call(sessidpy_pykv *backend, const sessid_op *op, int *status);

/* 1 when obj can be awaited. */
int sessidpy_is_awaitable(PyObject *obj);

/* Reads reply, the outcome of op, into *out (valid while the backend holds the reply). Returns 0
 * or a KV status (kv.h). awaited: reply is what awaiting the method's result gave. An awaitable
 * reply is refused: it is closed, so no "never awaited" warning follows, and recorded as a failure:
 * for a synchronous caller (an asyncio client given to get), a fatal TypeError saying to use
 * aget; for an awaited one that gave another awaitable, a reply of the wrong kind. */
int sessidpy_pykv_read(sessidpy_pykv *backend, const sessid_op *op, PyObject *reply, int awaited,
                       sessid_kv_value *out);

/* Returned by sessidpy_pykv_fail for a full connection pool (redis-py's MaxConnectionsError, or a
 * ConnectionError saying "Too many connections" or "Too many open files"): congestion on the
 * client's side, not a failure of the server; the caller waits and performs op again. */
#define SESSIDPY_POOL_FULL 1

/* Records exc (borrowed), raised by op, as its failure. Returns SESSID_EKV; SESSID_EUNSUPPORTED
 * when op is optional (GETEX, SET ... GET, the repair script) and exc says the KV does not offer
 * it: a client without the method or keyword, or any error reply but those of transient states and
 * redirections; SESSID_EVALUE for WRONGTYPE (the key holds data of another type: damage); or
 * SESSIDPY_POOL_FULL. Sets failure.outage when exc says the server is unreachable or failing. */
int sessidpy_pykv_fail(sessidpy_pykv *backend, const sessid_op *op, PyObject *exc);

#endif
