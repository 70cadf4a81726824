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
 * reply is refused: it is closed, so no "never awaited" warning follows, and recorded as a failure
 * (a synchronous caller was handed an asyncio client, or an awaited one gave another awaitable). */
int sessidpy_pykv_read(sessidpy_pykv *backend, const sessid_op *op, PyObject *reply, int awaited,
                       sessid_kv_value *out);

/* Records exc (borrowed), raised by op, as its failure. Returns SESSID_EKV, or SESSID_EUNSUPPORTED
 * when op is optional (GETEX, SET ... GET) and exc says the KV does not offer it: a client without
 * the method or keyword, or any error reply but those of transient states and redirections. */
int sessidpy_pykv_fail(sessidpy_pykv *backend, const sessid_op *op, PyObject *exc);

#endif
