/* The Store type: its lookups (local, or a KV run for get and a Call for aget), its maintenance
 * methods and its read-only settings. */
#include "_store.h"

#include <math.h>

#include "../csrc/diagnostics.h"
#include "_apikey.h"
#include "_call.h"
#include "_errors.h"
#include "_ids.h"
#include "_kvrun.h"
#include "_name.h"
#include "_options.h"

typedef struct {
    PyObject_HEAD
    sessidpy_state *state;      /* the module's; the type keeps the module alive */
    sessidpy_options options;
    sessid_table *table;
    sessidpy_kvconf kv;         /* what every KV lookup of this store shares */
    sessidpy_name name;         /* a shared table's name, followed */
} StoreObject;

/* ---- lookups ---- */

/* Hashes api_key and reads the clock; starts fetching the key's table slot in between. Returns 0,
 * with *empty set for an empty key, or for a lookup to answer without the table (then now is
 * unused), or -1. */
static int prepare(StoreObject *self, PyObject *api_key, sessidpy_kvrun_kind kind,
                   uint8_t digest[SESSID_DIGEST_LEN], int *empty, double *now)
{
    if (sessidpy_digest_api_key(self->state, api_key, digest, empty) < 0)
        return -1;
    if (*empty)
        return 0;
    sessid_table_prefetch(self->table, digest);     /* harmless if the name has moved on */
    if (sessidpy_clock_read(&self->options.clock, now) < 0)
        return -1;
    if (self->options.shared_path != NULL) {
        if (sessidpy_name_follow(self->state, &self->options, &self->name, &self->table, *now) < 0
            && sessidpy_name_lost(self->state, &self->options, &self->name,
                                  kind == SESSIDPY_BEST_EFFORT, empty) < 0)
            return -1;
        self->kv.proto.table = self->table;
    }
    return 0;
}

/* Raises what a call on the store's table failed with. Returns NULL. */
static PyObject *raise_table(StoreObject *self, int status)
{
    return sessidpy_raise_table_status(self->state, status, self->options.shared_path,
                                       self->options.lock_timeout);
}

/* The store's kv, or NULL with sessid.Error once the garbage collector has torn the store down. */
static PyObject *kv_of(StoreObject *self)
{
    if (self->options.kv == NULL)
        PyErr_SetString(self->state->error, "this Store was torn down by the garbage collector");
    return self->options.kv;
}

/* What a call answers without the KV: for an empty key, a fresh id (forget: nothing to drop); in
 * local mode, the table's id (forget: drop it). NULL with *done unset when the KV must be asked. */
static PyObject *answer_here(StoreObject *self, const uint8_t digest[SESSID_DIGEST_LEN], int empty,
                             double now, sessidpy_kvrun_kind kind, int *done)
{
    *done = 1;
    if (kind == SESSIDPY_FORGET && (empty || !self->options.kv_mode)) {
        int rc = empty ? SESSID_OK : sessid_table_remove(self->table, digest, now);
        return rc == SESSID_OK ? Py_NewRef(Py_None) : raise_table(self, rc);
    }
    if (empty)
        return sessidpy_fresh_id(self->state);
    if (!self->options.kv_mode)
        return sessidpy_local_id(self->state, self->table, digest, now,
                                 kind == SESSIDPY_REQUIRED, self->options.shared_path,
                                 self->options.lock_timeout);
    *done = 0;
    return NULL;
}

static PyObject *run(StoreObject *self, PyObject *api_key, sessidpy_kvrun_kind kind)
{
    uint8_t digest[SESSID_DIGEST_LEN];
    int empty, done;
    double now;
    if (prepare(self, api_key, kind, digest, &empty, &now) < 0)
        return NULL;
    PyObject *answer = answer_here(self, digest, empty, now, kind, &done);
    if (done)
        return answer;
    PyObject *kv = kv_of(self);
    if (kv == NULL)
        return NULL;
    return sessidpy_kvrun_sync(&self->kv, kv, digest, now, kind);
}

static sessidpy_kvrun_kind lookup_kind(int required)
{
    return required ? SESSIDPY_REQUIRED : SESSIDPY_BEST_EFFORT;
}

PyObject *sessidpy_store_get(PyObject *store, PyObject *api_key, int required)
{
    return run((StoreObject *)store, api_key, lookup_kind(required));
}

/* The Call for an aget or aforget: finished at once unless the KV must be asked. Errors found here
 * are raised when the Call is awaited, as with any coroutine function. */
static PyObject *make_call(StoreObject *self, PyObject *api_key, sessidpy_kvrun_kind kind)
{
    uint8_t digest[SESSID_DIGEST_LEN];
    int empty, done = 1;
    double now;
    PyObject *value = NULL, *kv;
    if (prepare(self, api_key, kind, digest, &empty, &now) == 0)
        value = answer_here(self, digest, empty, now, kind, &done);
    if (!done && (kv = kv_of(self)) != NULL)
        return sessidpy_call_new(self->state, (PyObject *)self, &self->kv, kv, digest, now, kind);
    return sessidpy_call_done(self->state, value);
}

static PyObject *run_async(StoreObject *self, PyObject *api_key, sessidpy_kvrun_kind kind)
{
    PyObject *drive = sessidpy_load(&self->state->drive, "sessid._aio", "drive");
    if (drive == NULL)
        return NULL;
    PyObject *call = make_call(self, api_key, kind);
    if (call == NULL)
        return NULL;
    PyObject *coroutine = PyObject_CallOneArg(drive, call);
    Py_DECREF(call);
    return coroutine;
}

PyObject *sessidpy_store_aget(PyObject *store, PyObject *api_key, int required)
{
    return run_async((StoreObject *)store, api_key, lookup_kind(required));
}

/* ---- methods ---- */

static PyObject *store_get(PyObject *self, PyObject *api_key)
{
    return sessidpy_store_get(self, api_key, 0);
}

static PyObject *store_get_required(PyObject *self, PyObject *api_key)
{
    return sessidpy_store_get(self, api_key, 1);
}

static PyObject *store_aget(PyObject *self, PyObject *api_key)
{
    return sessidpy_store_aget(self, api_key, 0);
}

static PyObject *store_aget_required(PyObject *self, PyObject *api_key)
{
    return sessidpy_store_aget(self, api_key, 1);
}

static PyObject *store_forget(PyObject *self, PyObject *api_key)
{
    return run((StoreObject *)self, api_key, SESSIDPY_FORGET);
}

static PyObject *store_aforget(PyObject *self, PyObject *api_key)
{
    return run_async((StoreObject *)self, api_key, SESSIDPY_FORGET);
}

static PyObject *store_key_for(StoreObject *self, PyObject *api_key)
{
    uint8_t digest[SESSID_DIGEST_LEN];
    int empty;
    if (sessidpy_digest_api_key(self->state, api_key, digest, &empty) < 0)
        return NULL;
    return sessidpy_kv_key(&self->options.prefix, digest);
}

static PyObject *store_purge(StoreObject *self, PyObject *unused)
{
    (void)unused;
    double now;
    size_t reclaimed;
    if (sessidpy_clock_read(&self->options.clock, &now) < 0)
        return NULL;
    int rc = sessid_table_purge(self->table, now, &reclaimed);
    return rc == SESSID_OK ? PyLong_FromSize_t(reclaimed) : raise_table(self, rc);
}

static PyObject *store_clear(StoreObject *self, PyObject *unused)
{
    (void)unused;
    int rc = sessid_table_clear(self->table);
    return rc == SESSID_OK ? Py_NewRef(Py_None) : raise_table(self, rc);
}

static PyObject *store_stats(StoreObject *self, PyObject *unused)
{
    (void)unused;
    static const char *const names[SESSID_STAT_COUNT] = {
        [SESSID_STAT_HITS] = "hits",
        [SESSID_STAT_MISSES] = "misses",
        [SESSID_STAT_EXPIRED] = "expired",
        [SESSID_STAT_EVICTED] = "evicted",
        [SESSID_STAT_KV_ERRORS] = "kv_errors",
        [SESSID_STAT_KV_SKIPPED] = "kv_skipped",
        [SESSID_STAT_KV_FALLBACKS] = "kv_fallbacks",
        [SESSID_STAT_KV_REPAIRED] = "kv_repaired",
        [SESSID_STAT_LOCK_TIMEOUTS] = "lock_timeouts",
        [SESSID_STAT_LOCK_REPAIRS] = "lock_repairs",
    };
    sessid_stats stats;
    int rc = sessid_table_stats(self->table, &stats);
    if (rc != SESSID_OK)
        return raise_table(self, rc);
    PyObject *dict = PyDict_New();
    for (int i = 0; dict != NULL && i < SESSID_STAT_COUNT; i++) {
        PyObject *count = PyLong_FromUnsignedLongLong(stats.counters[i]);
        if (count == NULL || PyDict_SetItemString(dict, names[i], count) < 0)
            Py_CLEAR(dict);
        Py_XDECREF(count);
    }
    return dict;
}

/* A Store is a service, not a container: it is true even while its local table is empty. */
static int store_bool(StoreObject *self)
{
    (void)self;
    return 1;
}

static Py_ssize_t store_len(StoreObject *self)
{
    double now;
    size_t live;
    if (sessidpy_clock_read(&self->options.clock, &now) < 0)
        return -1;
    int rc = sessid_table_live(self->table, now, &live);
    if (rc != SESSID_OK) {
        raise_table(self, rc);
        return -1;
    }
    return (Py_ssize_t)live;
}

/* For tests that check what the table keeps. */
static PyObject *store_memory_dump(StoreObject *self, PyObject *unused)
{
    (void)unused;
    uint8_t *buf;
    size_t len;
    int rc = sessid_table_dump(self->table, &buf, &len);
    if (rc != SESSID_OK)
        return sessidpy_raise_status(self->state, rc);
    PyObject *dump = PyBytes_FromStringAndSize((const char *)buf, (Py_ssize_t)len);
    free(buf);
    return dump;
}

/* For tests: 0 when every invariant of the table holds, else the number of the first broken one. */
static PyObject *store_check(StoreObject *self, PyObject *unused)
{
    (void)unused;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = sessid_table_check(self->table);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(rc);
}

/* ---- attributes ---- */

static PyObject *optional_object(PyObject *obj)
{
    return Py_NewRef(obj != NULL ? obj : Py_None);
}

static PyObject *store_get_ttl(StoreObject *self, void *closure)
{
    (void)closure;
    return PyFloat_FromDouble(self->options.ttl);
}

static PyObject *store_get_kv(StoreObject *self, void *closure)
{
    (void)closure;
    return optional_object(self->options.kv);
}

static PyObject *store_get_clock(StoreObject *self, void *closure)
{
    (void)closure;
    return optional_object(self->options.clock.callable);
}

static PyObject *store_get_prefix(StoreObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->options.prefix.text);
}

static PyObject *store_get_max_entries(StoreObject *self, void *closure)
{
    (void)closure;
    if (self->options.max_entries == 0)
        Py_RETURN_NONE;
    return PyLong_FromUnsignedLongLong(self->options.max_entries);
}

static PyObject *store_get_refresh_after(StoreObject *self, void *closure)
{
    (void)closure;
    if (self->options.refresh_after == 0)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(self->options.refresh_after);
}

static PyObject *store_get_kv_backoff(StoreObject *self, void *closure)
{
    (void)closure;
    return PyFloat_FromDouble(self->options.kv_backoff);
}

static PyObject *store_get_shared(StoreObject *self, void *closure)
{
    (void)closure;
    return optional_object(self->options.shared);
}

static PyObject *store_get_lock_timeout(StoreObject *self, void *closure)
{
    (void)closure;
    if (self->options.shared_path == NULL)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(self->options.lock_timeout);
}

static PyObject *store_get_on_kv_error(StoreObject *self, void *closure)
{
    (void)closure;
    return PyUnicode_FromString(sessidpy_on_kv_error_name(self->options.on_kv_error));
}

static PyObject *store_repr(StoreObject *self)
{
    PyObject *max_entries = store_get_max_entries(self, NULL);
    PyObject *refresh_after = store_get_refresh_after(self, NULL);
    PyObject *ttl = store_get_ttl(self, NULL);
    PyObject *kv_backoff = store_get_kv_backoff(self, NULL);
    PyObject *lock_timeout = store_get_lock_timeout(self, NULL);
    PyObject *repr = NULL;
    if (max_entries != NULL && refresh_after != NULL && ttl != NULL && kv_backoff != NULL
        && lock_timeout != NULL) {
        PyObject *kv = self->options.kv != NULL ? self->options.kv : Py_None;
        PyObject *shared = self->options.shared != NULL ? self->options.shared : Py_None;
        repr = PyUnicode_FromFormat(
            "sessid.Store(kv=%R, ttl=%R, prefix=%R, max_entries=%R, refresh_after=%R, "
            "on_kv_error='%s', kv_backoff=%R, shared=%R, lock_timeout=%R)", kv, ttl,
            self->options.prefix.text, max_entries, refresh_after,
            sessidpy_on_kv_error_name(self->options.on_kv_error), kv_backoff, shared, lock_timeout);
    }
    Py_XDECREF(lock_timeout);
    Py_XDECREF(max_entries);
    Py_XDECREF(refresh_after);
    Py_XDECREF(ttl);
    Py_XDECREF(kv_backoff);
    return repr;
}

/* ---- life ---- */

static void init_kv_conf(StoreObject *self)
{
    const sessidpy_options *o = &self->options;
    sessidpy_kvconf *conf = &self->kv;
    conf->state = self->state;
    conf->prefix = &o->prefix;
    conf->clock = &o->clock;
    conf->backoff = o->kv_backoff;
    conf->failing_since = NAN;
    conf->logged_at = NAN;
    conf->fallback_local = o->on_kv_error == SESSIDPY_ON_KV_ERROR_LOCAL;
    atomic_init(&conf->caps.getex, o->kv_has_getex);
    atomic_init(&conf->caps.set_nx_get, 1);
    atomic_init(&conf->caps.repair, 1);
    atomic_init(&conf->caps.getex_retry_at, o->kv_has_getex ? 0 : INFINITY);
    atomic_init(&conf->caps.set_nx_get_retry_at, 0);
    atomic_init(&conf->caps.repair_retry_at, 0);
    conf->proto.ttl = (uint64_t)ceil(o->ttl);
    conf->proto.table = self->table;
    conf->proto.keep_local = o->refresh_after > 0 || conf->fallback_local;
    conf->proto.refresh_after = o->refresh_after;
    conf->proto.caps = &conf->caps;
}

/* The store's table: private, or the shared one in its file. */
static int make_table(StoreObject *self)
{
    const sessidpy_options *o = &self->options;
    if (o->shared_path != NULL)
        return sessidpy_name_open(self->state, o, 1, &self->table);
    int rc = sessid_table_new(o->ttl, o->max_entries, &self->table);
    if (rc != SESSID_OK)
        sessidpy_raise_status(self->state, rc);
    return rc == SESSID_OK ? 0 : -1;
}

static PyObject *store_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    StoreObject *self = (StoreObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->state = PyType_GetModuleState(type);
    if (sessidpy_options_parse(self->state, args, kwargs, &self->options) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    if (make_table(self) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    init_kv_conf(self);
    return (PyObject *)self;
}

static int store_traverse(StoreObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->options.kv);
    Py_VISIT(self->options.clock.callable);
    return sessidpy_kvconf_traverse(&self->kv, visit, arg);
}

/* Drops what can hold a cycle back to the store; its settings and table stay. */
static int store_clear_refs(StoreObject *self)
{
    Py_CLEAR(self->options.kv);
    Py_CLEAR(self->options.clock.callable);
    sessidpy_kvconf_clear(&self->kv);
    return 0;
}

static void store_dealloc(StoreObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    sessidpy_kvconf_clear(&self->kv);
    sessidpy_options_clear(&self->options);
    sessid_table_free(self->table);
    sessidpy_name_clear(&self->name);
    type->tp_free(self);
    Py_DECREF(type);
}

static PyMethodDef store_methods[] = {
    {"get", store_get, METH_O,
     "get($self, api_key, /)\n--\n\nThe session id of api_key. Never raises because of the KV: when the "
     "KV fails, returns the fallback id of on_kv_error."},
    {"get_required", store_get_required, METH_O,
     "get_required($self, api_key, /)\n--\n\nThe session id of api_key; raises KVError when the KV "
     "fails."},
    {"aget", store_aget, METH_O,
     "aget($self, api_key, /)\n--\n\nget() for a KV whose methods are coroutines "
     "(redis.asyncio)."},
    {"aget_required", store_aget_required, METH_O,
     "aget_required($self, api_key, /)\n--\n\nget_required() for a KV whose methods are "
     "coroutines."},
    {"forget", store_forget, METH_O,
     "forget($self, api_key, /)\n--\n\nDrops api_key's id from the local table and deletes it in the KV "
     "(kv.delete); the next get makes a new id. Raises KVError when the KV fails."},
    {"aforget", store_aforget, METH_O,
     "aforget($self, api_key, /)\n--\n\nforget() for a KV whose methods are coroutines."},
    {"key_for", (PyCFunction)store_key_for, METH_O,
     "key_for($self, api_key, /)\n--\n\nThe KV key of api_key: prefix + the 64 lowercase hex "
     "characters of its SHA-256."},
    {"purge", (PyCFunction)store_purge, METH_NOARGS,
     "purge($self)\n--\n\nDrops the expired local entries; returns how many."},
    {"clear", (PyCFunction)store_clear, METH_NOARGS,
     "clear($self)\n--\n\nDrops every local entry."},
    {"stats", (PyCFunction)store_stats, METH_NOARGS,
     "stats($self)\n--\n\nCounters: hits, misses, expired, evicted, kv_errors, kv_skipped, "
     "kv_fallbacks, kv_repaired, lock_timeouts, lock_repairs."},
    {"_memory_dump", (PyCFunction)store_memory_dump, METH_NOARGS,
     "For tests: a copy of every byte of the local table's storage."},
    {"_check", (PyCFunction)store_check, METH_NOARGS,
     "For tests: 0 when every invariant of the local table holds (no other process may be using "
     "it)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef store_getset[] = {
    {"ttl", (getter)store_get_ttl, NULL, "Seconds an id lives after its last use.", NULL},
    {"kv", (getter)store_get_kv, NULL, "The shared store, or None for local mode.", NULL},
    {"prefix", (getter)store_get_prefix, NULL, "The start of every KV key.", NULL},
    {"max_entries", (getter)store_get_max_entries, NULL, "The bound of the local table, or None.",
     NULL},
    {"clock", (getter)store_get_clock, NULL, "The clock, or None for the monotonic clock.", NULL},
    {"refresh_after", (getter)store_get_refresh_after, NULL,
     "Seconds a KV answer is reused locally, or None.", NULL},
    {"on_kv_error", (getter)store_get_on_kv_error, NULL, "'random' or 'local'.", NULL},
    {"kv_backoff", (getter)store_get_kv_backoff, NULL,
     "Seconds get() and aget() leave a failing KV alone; 0 for never.", NULL},
    {"shared", (getter)store_get_shared, NULL,
     "The shared table's name or path, or None for a table in this process.", NULL},
    {"lock_timeout", (getter)store_get_lock_timeout, NULL,
     "Seconds a call waits on another process's hold of the shared table's lock; None without "
     "shared.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot store_slots[] = {
    {Py_tp_doc,
     "Store(kv=None, *, ttl=3600.0, prefix='sessid:', max_entries=None, clock=None, "
     "refresh_after=None, on_kv_error='random', kv_backoff=1.0, shared=None, "
     "lock_timeout=1.0)\n--\n\n"
     "Stable random session ids per API key, with a sliding TTL, kept in this process, in a table "
     "every process of the host shares (shared=), or in a shared KV with the redis-py client API."},
    {Py_tp_new, store_new},
    {Py_tp_dealloc, store_dealloc},
    {Py_tp_traverse, store_traverse},
    {Py_tp_clear, store_clear_refs},
    {Py_tp_repr, store_repr},
    {Py_tp_methods, store_methods},
    {Py_tp_getset, store_getset},
    {Py_sq_length, store_len},
    {Py_nb_bool, store_bool},
    {0, NULL},
};

PyType_Spec sessidpy_store_spec = {
    .name = "sessid.Store",
    .basicsize = sizeof(StoreObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = store_slots,
};
