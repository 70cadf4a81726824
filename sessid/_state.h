/* The CPython binding of sessid: the module's state, which every binding file reads.
 *
 * The binding is a tower: each file uses only the files below it.
 *   _sessid.c   the module: its state, exceptions and module-level functions
 *   _store.c    the Store type
 *   _name.c     a shared store's table and its name, followed once a tick
 *   _call.c     one aget in progress, stepped by sessid._aio.drive
 *   _kvrun.c    one KV lookup: the protocol run, the Python backend, and the loop that drives them
 *   _pykv.c     one KV operation performed on a Python object with the redis-py client API
 *   _options.c  the arguments of Store(), checked and turned into C
 *   _clock.c    the store's clock
 *   _apikey.c   an API key's bytes, its digest, and its KV key
 *   _ids.c      session ids as str
 *   _errors.c   statuses and KV failures as Python exceptions
 *
 * Names: sessidpy_ starts the binding's own; sessid_ is the C core's (csrc/).
 * Conventions: a function returning PyObject * returns a new reference, or NULL with an exception
 * set; a function returning int returns 0, or -1 with an exception set, unless its comment says
 * otherwise.
 */
#ifndef SESSIDPY_STATE_H
#define SESSIDPY_STATE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../csrc/sessid.h"

typedef struct sessidpy_state {
    PyTypeObject *store_type;
    PyTypeObject *call_type;
    PyObject *error;            /* sessid.Error */
    PyObject *kv_error;         /* sessid.KVError */
    PyObject *lock_timeout;     /* sessid.LockTimeout */
    PyObject *default_store;    /* made on first use */
    PyObject *drive;            /* sessid._aio.drive, loaded on the first aget */
    PyObject *log_hidden;       /* sessid._log.hidden_kv_failure, loaded on the first one */
    PyObject *log_lock;         /* sessid._log.hidden_lock_timeout, likewise */
    PyObject *log_lost;         /* sessid._log.lost_shared_table, likewise */
    PyObject *str_get, *str_set, *str_expire, *str_getex, *str_delete, *str_close;
    PyObject *kwnames_ex;       /* ("ex",) */
    PyObject *kwnames_set;      /* ("nx", "ex") */
    PyObject *kwnames_set_get;  /* ("nx", "ex", "get") */
    PyObject *str_eval;         /* "eval", interned on first use */
    PyObject *repair_script;    /* sessid._protocols.REPAIR_SCRIPT, loaded on first use */
    PyObject *sleep;            /* asyncio.sleep, loaded when an aget first meets a full pool */
    PyObject *log_repaired;     /* sessid._log.repaired_damage, loaded on the first repair */
} sessidpy_state;

/* *slot, or, the first time, module's attribute name, kept there (a borrowed reference on success;
 * NULL with the import's exception). For the Python parts of sessid, loaded on first use. */
static inline PyObject *sessidpy_load(PyObject **slot, const char *module, const char *name)
{
    if (*slot == NULL) {
        PyObject *loaded = PyImport_ImportModule(module);
        if (loaded == NULL)
            return NULL;
        *slot = PyObject_GetAttrString(loaded, name);
        Py_DECREF(loaded);
    }
    return *slot;
}

#endif
