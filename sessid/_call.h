/* One aget in progress: an object that sessid._aio.drive steps, awaiting each KV operation. */
#ifndef SESSIDPY_CALL_H
#define SESSIDPY_CALL_H

#include "_kvrun.h"
#include "_state.h"

extern PyType_Spec sessidpy_call_spec;

/* A Call already finished: with value (stolen), or, when value is NULL, with the exception that is
 * set (taken, to be raised when the Call is awaited). */
PyObject *sessidpy_call_done(sessidpy_state *state, PyObject *value);

/* A Call for the KV lookup (or forget) of digest (see sessidpy_kvrun_begin). owner is the object
 * that holds conf (the store); the Call keeps it alive. */
PyObject *sessidpy_call_new(sessidpy_state *state, PyObject *owner, sessidpy_kvconf *conf,
                            PyObject *kv, const uint8_t digest[SESSID_DIGEST_LEN], double now,
                            sessidpy_kvrun_kind kind);

#endif
