/* The Store type: stable random session ids per API key, in this process or through a KV. */
#ifndef SESSIDPY_STORE_H
#define SESSIDPY_STORE_H

#include "_state.h"

extern PyType_Spec sessidpy_store_spec;

/* store.get / store.get_required (required: raise KVError instead of falling back). store must be
 * a Store. */
PyObject *sessidpy_store_get(PyObject *store, PyObject *api_key, int required);

/* store.aget / store.aget_required: a coroutine. store must be a Store. */
PyObject *sessidpy_store_aget(PyObject *store, PyObject *api_key, int required);

#endif
