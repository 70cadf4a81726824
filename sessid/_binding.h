/* The CPython binding of sessid: declarations shared by its files.
 *
 *   _sessid.c  the module: state, exceptions, module-level functions
 *   _store.c   the Store type
 *   _pykv.c    the KV backend that calls a Python object (the redis-py client API)
 *   _call.c    one asynchronous lookup in progress, stepped by sessid._aio.drive
 *
 * Conventions: a function returning PyObject * returns a new reference, or NULL with an exception
 * set; a function returning int returns 0, or -1 with an exception set, unless its comment says
 * otherwise.
 */
#ifndef SESSID_BINDING_H
#define SESSID_BINDING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../csrc/sessid.h"

/* The longest TTL a Store takes, in seconds (about 31.7 years). */
#define SESSID_TTL_MAX 1e9
#define SESSID_TTL_MAX_TEXT "1e9"

typedef struct sessid_state {
    PyTypeObject *store_type;
    PyTypeObject *call_type;
    PyObject *error;            /* sessid.Error */
    PyObject *kv_error;         /* sessid.KVError */
    PyObject *default_store;    /* made on first use */
    PyObject *drive;            /* sessid._aio.drive, loaded on the first aget */
    PyObject *str_get, *str_set, *str_expire, *str_getex, *str_close;
    PyObject *kwnames_ex;       /* ("ex",) */
    PyObject *kwnames_set;      /* ("nx", "ex") */
    PyObject *kwnames_set_get;  /* ("nx", "ex", "get") */
} sessid_state;

typedef enum { ON_KV_ERROR_RANDOM, ON_KV_ERROR_LOCAL } on_kv_error_policy;

typedef struct StoreObject {
    PyObject_HEAD
    sessid_state *state;        /* the module's; the type keeps the module alive */
    sessid_table *table;
    PyObject *kv;               /* NULL in local mode */
    PyObject *clock;            /* NULL: monotonic_clock */
    sessid_clock_fn monotonic_clock;    /* the coarse clock when its ticks are under ttl / 1000 */
    PyObject *prefix;           /* str */
    char *prefix_utf8;          /* PyMem copy of the prefix's UTF-8 */
    Py_ssize_t prefix_len;
    int prefix_is_ascii;
    int kv_mode;                /* a KV was given (kv may later be cleared by the GC) */
    double ttl;
    uint64_t max_entries;       /* 0: None */
    double refresh_after;       /* 0: None */
    on_kv_error_policy on_kv_error;
    sessid_kv_caps caps;
    sessid_proto_config proto;
} StoreObject;

/* ---- _sessid.c ---- */

/* Raises the Python exception for a non-KV status of the C core (MemoryError, sessid.Error,
 * SystemError) and returns NULL. */
PyObject *sessid_raise_status(sessid_state *state, int status);

/* Takes the exception that is set (there must be one) and returns it, normalized, with its traceback;
 * the error indicator is left clear. */
PyObject *sessid_take_exception(void);

/* Sets exc (stolen) as the exception being raised. */
void sessid_restore_exception(PyObject *exc);

/* The module's default Store, made on first use (borrowed reference), or NULL. */
PyObject *sessid_default_store(sessid_state *state);

/* ---- _store.c ---- */

extern PyType_Spec sessid_store_spec;

/* store.get / store.get_required / store.aget / store.aget_required. */
PyObject *sessid_store_get(StoreObject *store, PyObject *api_key, int required);
PyObject *sessid_store_aget(StoreObject *store, PyObject *api_key, int required);

/* A str holding a fresh random id. */
PyObject *sessid_fresh_id(sessid_state *state);

/* A str holding the canonical text of id. */
PyObject *sessid_id_str(const uint8_t id[SESSID_ID_LEN]);

/* The KV key of digest, as a str. */
PyObject *sessid_store_kv_key(StoreObject *store, const uint8_t digest[SESSID_DIGEST_LEN]);

/* The local get-or-create, as a str. */
PyObject *sessid_store_local(StoreObject *store, const uint8_t digest[SESSID_DIGEST_LEN], double now);

struct pykv;

/* Starts the KV run of digest: makes its KV key, which backend then holds and run points into.
 * Clear backend with sessid_pykv_clear afterwards, whether this succeeded or not. */
int sessid_store_begin_kv(StoreObject *store, const uint8_t digest[SESSID_DIGEST_LEN], double now,
                          sessid_proto *run, struct pykv *backend);

/* The end of a KV run: the id as a str when the run succeeded; otherwise KVError (or the KV's own
 * BaseException) when required or when the failure must propagate, else the fallback id that the
 * store's on_kv_error policy gives. */
PyObject *sessid_store_finish(StoreObject *store, const sessid_proto *run, struct pykv *backend,
                              const uint8_t digest[SESSID_DIGEST_LEN], double now, int required);

/* ---- _pykv.c ---- */

/* The KV backend over a Python object. It lives on the stack of one lookup (or inside one Call),
 * so a KV method that calls back into sessid gets a backend of its own. */
typedef struct pykv {
    sessid_kv base;             /* methods, and ctx pointing at this struct */
    sessid_state *state;
    PyObject *kv;               /* strong */
    PyObject *name;             /* strong: the KV key as a str */
    PyObject *ttl;              /* strong once made: the TTL as an int */
    PyObject *held;             /* strong: the last reply, alive while the core reads it */
    PyObject *error;            /* strong: the exception a method raised, if any */
    PyObject *problem;          /* strong: a str describing a reply of the wrong kind, if any */
    const char *method;         /* the method of the last operation */
    int fatal;                  /* error is a BaseException that must propagate (not an Exception) */
} pykv;

void sessid_pykv_init(pykv *backend, sessid_state *state, PyObject *kv, PyObject *name);
void sessid_pykv_clear(pykv *backend);
int sessid_pykv_traverse(pykv *backend, visitproc visit, void *arg);

/* Calls the KV method for op. Returns its result (new reference), or NULL with *status set to the
 * failure (recorded in the backend; no exception is left set). */
PyObject *sessid_pykv_call(pykv *backend, const sessid_op *op, int *status);

/* Reads result as the reply to op into *out (valid while the backend holds result). Returns 0 or
 * a KV status; never leaves an exception set. */
int sessid_pykv_read(pykv *backend, const sessid_op *op, PyObject *result, sessid_kv_value *out);

/* Records exc (borrowed) as the failure of op. Returns SESSID_EKV, or SESSID_EUNSUPPORTED when it
 * says that the KV lacks an optional operation. */
int sessid_pykv_fail(pykv *backend, const sessid_op *op, PyObject *exc);

/* 1 when obj can be awaited. */
int sessid_is_awaitable(PyObject *obj);

/* Raises what the failed run's status and the backend's record say: the fatal exception itself,
 * or KVError chained to the KV's exception. Returns NULL. */
PyObject *sessid_pykv_raise(pykv *backend, int status);

/* ---- _call.c ---- */

extern PyType_Spec sessid_call_spec;

/* A Call already finished with value (stolen). */
PyObject *sessid_call_done(sessid_state *state, PyObject *value);

/* A Call for a KV lookup of digest. */
PyObject *sessid_call_new(StoreObject *store, const uint8_t digest[SESSID_DIGEST_LEN], double now,
                          int required);

#endif
