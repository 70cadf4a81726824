#include "_binding.h"

#include <math.h>

/* Keys at least this long are hashed with the GIL released. */
#define RELEASE_GIL_FROM (64 * 1024)

/* ---- ids as str ---- */

PyObject *sessid_id_str(const uint8_t id[SESSID_ID_LEN])
{
    PyObject *text = PyUnicode_New(SESSID_ID_TEXT_LEN, 127);
    if (text != NULL)
        sessid_id_format(id, PyUnicode_DATA(text));     /* 36 characters and the NUL */
    return text;
}

PyObject *sessid_fresh_id(sessid_state *state)
{
    uint8_t id[SESSID_ID_LEN];
    int rc = sessid_id_new(id);
    return rc == SESSID_OK ? sessid_id_str(id) : sessid_raise_status(state, rc);
}

static PyObject *ascii_str(const char *text, size_t len)
{
    PyObject *str = PyUnicode_New((Py_ssize_t)len, 127);
    if (str != NULL)
        memcpy(PyUnicode_DATA(str), text, len);
    return str;
}

/* ---- API keys ---- */

/* The bytes of an API key, borrowed from the key object (or, for a non-contiguous buffer, a
 * private copy that key_close wipes). */
typedef struct {
    const char *data;
    Py_ssize_t len;
    Py_buffer view;
    int has_view;
    char *copy;
} key_bytes;

static void key_close(key_bytes *k)
{
    if (k->copy != NULL) {
        memset(k->copy, 0, (size_t)k->len);
        PyMem_Free(k->copy);
        k->copy = NULL;
    }
    if (k->has_view) {
        PyBuffer_Release(&k->view);
        k->has_view = 0;
    }
}

static int contiguous_copy(PyObject *obj, key_bytes *k)
{
    if (PyObject_GetBuffer(obj, &k->view, PyBUF_FULL_RO) < 0)
        return -1;
    k->has_view = 1;
    k->copy = PyMem_Malloc(k->view.len > 0 ? (size_t)k->view.len : 1);
    if (k->copy == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    k->len = k->view.len;
    if (PyBuffer_ToContiguous(k->copy, &k->view, k->view.len, 'C') < 0)
        return -1;
    k->data = k->copy;
    return 0;
}

static int key_open(PyObject *obj, key_bytes *k)
{
    memset(k, 0, sizeof *k);
    if (PyUnicode_Check(obj)) {
        k->data = PyUnicode_AsUTF8AndSize(obj, &k->len);
        return k->data != NULL ? 0 : -1;
    }
    if (!PyObject_CheckBuffer(obj)) {
        PyErr_Format(PyExc_TypeError, "api_key must be str or a bytes-like object, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (PyObject_GetBuffer(obj, &k->view, PyBUF_SIMPLE) == 0) {
        k->has_view = 1;
        k->data = k->view.buf;
        k->len = k->view.len;
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_BufferError))
        return -1;
    PyErr_Clear();                      /* not contiguous: hash a private copy instead */
    if (contiguous_copy(obj, k) < 0) {
        key_close(k);
        return -1;
    }
    return 0;
}

/* Hashes api_key into digest; *empty is set when the key has no bytes. */
static int digest_api_key(sessid_state *st, PyObject *api_key, uint8_t digest[SESSID_DIGEST_LEN],
                          int *empty)
{
    key_bytes k;
    if (key_open(api_key, &k) < 0)
        return -1;
    *empty = k.len == 0;
    int rc;
    if (k.len >= RELEASE_GIL_FROM) {
        Py_BEGIN_ALLOW_THREADS
        rc = sessid_digest(k.data, (size_t)k.len, digest);
        Py_END_ALLOW_THREADS
    } else {
        rc = sessid_digest(k.data, (size_t)k.len, digest);
    }
    key_close(&k);
    if (rc != SESSID_OK) {
        sessid_raise_status(st, rc);
        return -1;
    }
    return 0;
}

/* ---- time ---- */

static int store_now(StoreObject *self, double *now)
{
    if (self->clock == NULL) {
        *now = self->monotonic_clock();
        if (*now < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        return 0;
    }
    PyObject *reading = PyObject_CallNoArgs(self->clock);
    if (reading == NULL)
        return -1;
    if (!PyFloat_Check(reading) && !PyLong_Check(reading)) {
        PyErr_Format(PyExc_TypeError, "clock() must return a number of seconds, not %.100s",
                     Py_TYPE(reading)->tp_name);
        Py_DECREF(reading);
        return -1;
    }
    *now = PyFloat_AsDouble(reading);
    if (*now == -1.0 && PyErr_Occurred()) {
        Py_DECREF(reading);
        return -1;
    }
    if (!isfinite(*now)) {
        PyErr_Format(PyExc_ValueError, "clock() returned %R; expected a finite number of seconds",
                     reading);
        Py_DECREF(reading);
        return -1;
    }
    Py_DECREF(reading);
    return 0;
}

/* ---- lookups ---- */

PyObject *sessid_store_local(StoreObject *self, const uint8_t digest[SESSID_DIGEST_LEN], double now)
{
    uint8_t id[SESSID_ID_LEN];
    int created;
    int rc = sessid_table_get_or_create(self->table, digest, now, id, &created);
    return rc == SESSID_OK ? sessid_id_str(id) : sessid_raise_status(self->state, rc);
}

PyObject *sessid_store_kv_key(StoreObject *self, const uint8_t digest[SESSID_DIGEST_LEN])
{
    Py_ssize_t len = self->prefix_len + SESSID_HEX_LEN;
    if (self->prefix_is_ascii) {
        PyObject *key = PyUnicode_New(len, 127);
        if (key != NULL) {
            char *data = PyUnicode_DATA(key);
            memcpy(data, self->prefix_utf8, (size_t)self->prefix_len);
            sessid_digest_hex(digest, data + self->prefix_len);
        }
        return key;
    }
    char *buf = PyMem_Malloc((size_t)len);
    if (buf == NULL)
        return PyErr_NoMemory();
    memcpy(buf, self->prefix_utf8, (size_t)self->prefix_len);
    sessid_digest_hex(digest, buf + self->prefix_len);
    PyObject *key = PyUnicode_DecodeUTF8(buf, len, "strict");
    PyMem_Free(buf);
    return key;
}

static int is_kv_failure(int status)
{
    return status == SESSID_EKV || status == SESSID_EUNSUPPORTED || status == SESSID_ENOREPLY
           || status == SESSID_EMISSING || status == SESSID_EVALUE;
}

PyObject *sessid_store_finish(StoreObject *self, const sessid_proto *run, pykv *backend,
                              const uint8_t digest[SESSID_DIGEST_LEN], double now, int required)
{
    const char *text;
    size_t len;
    int rc = sessid_proto_result(run, &text, &len);
    assert(!PyErr_Occurred());
    if (rc == SESSID_OK)
        return ascii_str(text, len);
    if (!is_kv_failure(rc))
        return sessid_raise_status(self->state, rc);
    if (backend->fatal)
        return sessid_pykv_raise(backend, rc);
    sessid_table_count(self->table, SESSID_STAT_KV_ERRORS);
    if (required)
        return sessid_pykv_raise(backend, rc);
    if (self->on_kv_error == ON_KV_ERROR_LOCAL)
        return sessid_store_local(self, digest, now);
    return sessid_fresh_id(self->state);
}

static int kv_still_there(StoreObject *self)
{
    if (self->kv != NULL)
        return 0;
    PyErr_SetString(self->state->error, "this Store was torn down by the garbage collector");
    return -1;
}

int sessid_store_begin_kv(StoreObject *self, const uint8_t digest[SESSID_DIGEST_LEN], double now,
                          sessid_proto *run, pykv *backend)
{
    memset(backend, 0, sizeof *backend);
    PyObject *name = sessid_store_kv_key(self, digest);
    if (name == NULL)
        return -1;
    Py_ssize_t key_len;
    const char *key = PyUnicode_AsUTF8AndSize(name, &key_len);
    if (key == NULL) {
        Py_DECREF(name);
        return -1;
    }
    sessid_pykv_init(backend, self->state, self->kv, name);
    Py_DECREF(name);                    /* the backend holds it, and key points into it */
    int rc = sessid_proto_begin(run, &self->proto, digest, key, (size_t)key_len, now);
    if (rc != SESSID_OK) {
        sessid_raise_status(self->state, rc);
        return -1;
    }
    return 0;
}

static PyObject *kv_lookup(StoreObject *self, const uint8_t digest[SESSID_DIGEST_LEN], double now,
                           int required)
{
    if (kv_still_there(self) < 0)
        return NULL;
    sessid_proto run;
    pykv backend;
    PyObject *result = NULL;
    if (sessid_store_begin_kv(self, digest, now, &run, &backend) == 0) {
        sessid_proto_run(&run, &backend.base);
        result = sessid_store_finish(self, &run, &backend, digest, now, required);
    }
    sessid_pykv_clear(&backend);
    return result;
}

/* Hashes api_key and reads the clock; starts fetching the key's table slot in between. Returns 0,
 * with *empty set for an empty key (then now is unused), or -1. */
static int prepare(StoreObject *self, PyObject *api_key, uint8_t digest[SESSID_DIGEST_LEN],
                   int *empty, double *now)
{
    if (digest_api_key(self->state, api_key, digest, empty) < 0)
        return -1;
    if (*empty)
        return 0;
    sessid_table_prefetch(self->table, digest);
    return store_now(self, now);
}

PyObject *sessid_store_get(StoreObject *self, PyObject *api_key, int required)
{
    uint8_t digest[SESSID_DIGEST_LEN];
    int empty;
    double now;
    if (prepare(self, api_key, digest, &empty, &now) < 0)
        return NULL;
    if (empty)
        return sessid_fresh_id(self->state);
    if (!self->kv_mode)
        return sessid_store_local(self, digest, now);
    return kv_lookup(self, digest, now, required);
}

static PyObject *load_drive(sessid_state *st)
{
    if (st->drive == NULL) {
        PyObject *aio = PyImport_ImportModule("sessid._aio");
        if (aio == NULL)
            return NULL;
        st->drive = PyObject_GetAttrString(aio, "drive");
        Py_DECREF(aio);
    }
    return st->drive;
}

/* The Call for an aget: finished at once unless the KV must be asked. Errors found here are raised
 * when the Call is awaited, as with any coroutine function. */
static PyObject *make_call(StoreObject *self, PyObject *api_key, int required)
{
    uint8_t digest[SESSID_DIGEST_LEN];
    int empty;
    double now;
    PyObject *value = NULL;
    if (prepare(self, api_key, digest, &empty, &now) < 0)
        value = NULL;
    else if (empty)
        value = sessid_fresh_id(self->state);
    else if (!self->kv_mode)
        value = sessid_store_local(self, digest, now);
    else if (kv_still_there(self) < 0)
        value = NULL;
    else
        return sessid_call_new(self, digest, now, required);
    return sessid_call_done(self->state, value);
}

PyObject *sessid_store_aget(StoreObject *self, PyObject *api_key, int required)
{
    PyObject *drive = load_drive(self->state);
    if (drive == NULL)
        return NULL;
    PyObject *call = make_call(self, api_key, required);
    if (call == NULL)
        return NULL;
    PyObject *coroutine = PyObject_CallOneArg(drive, call);
    Py_DECREF(call);
    return coroutine;
}

/* ---- methods ---- */

static PyObject *store_get(StoreObject *self, PyObject *api_key)
{
    return sessid_store_get(self, api_key, 0);
}

static PyObject *store_get_required(StoreObject *self, PyObject *api_key)
{
    return sessid_store_get(self, api_key, 1);
}

static PyObject *store_aget(StoreObject *self, PyObject *api_key)
{
    return sessid_store_aget(self, api_key, 0);
}

static PyObject *store_aget_required(StoreObject *self, PyObject *api_key)
{
    return sessid_store_aget(self, api_key, 1);
}

static PyObject *store_key_for(StoreObject *self, PyObject *api_key)
{
    uint8_t digest[SESSID_DIGEST_LEN];
    int empty;
    if (digest_api_key(self->state, api_key, digest, &empty) < 0)
        return NULL;
    return sessid_store_kv_key(self, digest);
}

static PyObject *store_purge(StoreObject *self, PyObject *unused)
{
    (void)unused;
    double now;
    size_t reclaimed = 0;
    if (store_now(self, &now) < 0)
        return NULL;
    int rc = sessid_table_purge(self->table, now, &reclaimed);
    if (rc != SESSID_OK)
        return sessid_raise_status(self->state, rc);
    return PyLong_FromSize_t(reclaimed);
}

static PyObject *store_clear(StoreObject *self, PyObject *unused)
{
    (void)unused;
    int rc = sessid_table_clear(self->table);
    if (rc != SESSID_OK)
        return sessid_raise_status(self->state, rc);
    Py_RETURN_NONE;
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
    };
    sessid_stats stats;
    sessid_table_stats(self->table, &stats);
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
    size_t live = 0;
    if (store_now(self, &now) < 0)
        return -1;
    int rc = sessid_table_live(self->table, now, &live);
    if (rc != SESSID_OK) {
        sessid_raise_status(self->state, rc);
        return -1;
    }
    return (Py_ssize_t)live;
}

static PyObject *store_memory_dump(StoreObject *self, PyObject *unused)
{
    (void)unused;
    uint8_t *buf;
    size_t len;
    int rc = sessid_table_dump(self->table, &buf, &len);
    if (rc != SESSID_OK)
        return sessid_raise_status(self->state, rc);
    PyObject *dump = PyBytes_FromStringAndSize((const char *)buf, (Py_ssize_t)len);
    free(buf);
    return dump;
}

static PyObject *store_memory_footprint(StoreObject *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromSize_t(sessid_table_footprint(self->table));
}

/* ---- attributes ---- */

static PyObject *optional_object(PyObject *obj)
{
    return Py_NewRef(obj != NULL ? obj : Py_None);
}

static PyObject *store_get_ttl(StoreObject *self, void *closure)
{
    (void)closure;
    return PyFloat_FromDouble(self->ttl);
}

static PyObject *store_get_kv(StoreObject *self, void *closure)
{
    (void)closure;
    return optional_object(self->kv);
}

static PyObject *store_get_clock(StoreObject *self, void *closure)
{
    (void)closure;
    return optional_object(self->clock);
}

static PyObject *store_get_prefix(StoreObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->prefix);
}

static PyObject *store_get_max_entries(StoreObject *self, void *closure)
{
    (void)closure;
    if (self->max_entries == 0)
        Py_RETURN_NONE;
    return PyLong_FromUnsignedLongLong(self->max_entries);
}

static PyObject *store_get_refresh_after(StoreObject *self, void *closure)
{
    (void)closure;
    if (self->refresh_after == 0)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(self->refresh_after);
}

static const char *on_kv_error_name(const StoreObject *self)
{
    return self->on_kv_error == ON_KV_ERROR_LOCAL ? "local" : "random";
}

static PyObject *store_get_on_kv_error(StoreObject *self, void *closure)
{
    (void)closure;
    return PyUnicode_FromString(on_kv_error_name(self));
}

static PyObject *store_repr(StoreObject *self)
{
    PyObject *max_entries = store_get_max_entries(self, NULL);
    PyObject *refresh_after = store_get_refresh_after(self, NULL);
    PyObject *ttl = store_get_ttl(self, NULL);
    PyObject *repr = NULL;
    if (max_entries != NULL && refresh_after != NULL && ttl != NULL) {
        PyObject *kv = self->kv != NULL ? self->kv : Py_None;
        repr = PyUnicode_FromFormat(
            "sessid.Store(kv=%R, ttl=%R, prefix=%R, max_entries=%R, refresh_after=%R, "
            "on_kv_error='%s')", kv, ttl, self->prefix, max_entries, refresh_after,
            on_kv_error_name(self));
    }
    Py_XDECREF(max_entries);
    Py_XDECREF(refresh_after);
    Py_XDECREF(ttl);
    return repr;
}

/* ---- construction ---- */

/* 1 when obj is a datetime.timedelta, 0 when not, -1 with an exception set. */
static int is_timedelta(PyObject *obj)
{
    PyObject *datetime = PyImport_ImportModule("datetime");
    if (datetime == NULL)
        return -1;
    PyObject *timedelta = PyObject_GetAttrString(datetime, "timedelta");
    Py_DECREF(datetime);
    if (timedelta == NULL)
        return -1;
    int is = PyObject_IsInstance(obj, timedelta);
    Py_DECREF(timedelta);
    return is;
}

/* A real number of seconds (not a bool) or a datetime.timedelta, as a double. */
static int seconds_arg(PyObject *obj, const char *name, double *out)
{
    PyObject *seconds;
    if (PyFloat_Check(obj) || (PyLong_Check(obj) && !PyBool_Check(obj))) {
        seconds = Py_NewRef(obj);
    } else {
        int is = is_timedelta(obj);
        if (is < 0)
            return -1;
        if (!is) {
            PyErr_Format(PyExc_TypeError,
                         "%s must be a number of seconds or a datetime.timedelta, not %.100s", name,
                         Py_TYPE(obj)->tp_name);
            return -1;
        }
        seconds = PyObject_CallMethod(obj, "total_seconds", NULL);
        if (seconds == NULL)
            return -1;
    }
    *out = PyFloat_AsDouble(seconds);
    Py_DECREF(seconds);
    if (*out == -1.0 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%s must be at most " SESSID_TTL_MAX_TEXT
                         " seconds, got %R", name, obj);
        }
        return -1;
    }
    return 0;
}

static int parse_ttl(PyObject *obj, double *ttl)
{
    if (seconds_arg(obj, "ttl", ttl) < 0)
        return -1;
    if (!(*ttl > 0 && *ttl <= SESSID_TTL_MAX)) {
        PyErr_Format(PyExc_ValueError,
                     "ttl must be more than 0 and at most " SESSID_TTL_MAX_TEXT " seconds, got %R",
                     obj);
        return -1;
    }
    return 0;
}

static int parse_max_entries(PyObject *obj, uint64_t *max_entries)
{
    *max_entries = 0;
    if (obj == Py_None)
        return 0;
    if (PyBool_Check(obj) || !PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "max_entries must be an int or None, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    int overflow;
    long long value = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (value == -1 && PyErr_Occurred())
        return -1;
    if (overflow != 0 || value < 1 || (uint64_t)value > SESSID_TABLE_LIMIT) {
        PyErr_Format(PyExc_ValueError, "max_entries must be from 1 to %llu, got %R",
                     (unsigned long long)SESSID_TABLE_LIMIT, obj);
        return -1;
    }
    *max_entries = (uint64_t)value;
    return 0;
}

static int parse_kv(StoreObject *self, PyObject *kv)
{
    static const char *const required[] = {"get", "set", "expire"};
    if (kv == Py_None)
        return 0;
    if (PyType_Check(kv)) {
        PyErr_Format(PyExc_TypeError,
                     "kv must be a client object, not the class %R: pass an instance of it", kv);
        return -1;
    }
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        PyObject *method = PyObject_GetAttrString(kv, required[i]);
        int callable = method != NULL && PyCallable_Check(method);
        Py_XDECREF(method);
        if (!callable) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError,
                         "kv must have callable get, set and expire methods (the redis-py client "
                         "API); %.100s has no callable %s", Py_TYPE(kv)->tp_name, required[i]);
            return -1;
        }
    }
    PyObject *getex = PyObject_GetAttr(kv, self->state->str_getex);
    if (getex == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
    }
    atomic_init(&self->caps.getex, getex != NULL && PyCallable_Check(getex));
    atomic_init(&self->caps.set_nx_get, 1);
    Py_XDECREF(getex);
    self->kv = Py_NewRef(kv);
    self->kv_mode = 1;
    return 0;
}

static int parse_prefix(StoreObject *self, PyObject *prefix)
{
    if (!PyUnicode_Check(prefix)) {
        PyErr_Format(PyExc_TypeError, "prefix must be str, not %.100s", Py_TYPE(prefix)->tp_name);
        return -1;
    }
    Py_ssize_t len;
    const char *utf8 = PyUnicode_AsUTF8AndSize(prefix, &len);
    if (utf8 == NULL)
        return -1;
    self->prefix_utf8 = PyMem_Malloc(len > 0 ? (size_t)len : 1);
    if (self->prefix_utf8 == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(self->prefix_utf8, utf8, (size_t)len);
    self->prefix_len = len;
    self->prefix_is_ascii = PyUnicode_IS_ASCII(prefix);
    self->prefix = Py_NewRef(prefix);
    return 0;
}

static int parse_policy(StoreObject *self, PyObject *refresh_after, PyObject *on_kv_error)
{
    if (refresh_after != Py_None) {
        if (!self->kv_mode) {
            PyErr_SetString(PyExc_ValueError, "refresh_after needs a kv");
            return -1;
        }
        if (seconds_arg(refresh_after, "refresh_after", &self->refresh_after) < 0)
            return -1;
        if (!(self->refresh_after > 0 && self->refresh_after <= self->ttl)) {
            PyObject *ttl = PyFloat_FromDouble(self->ttl);
            if (ttl != NULL)
                PyErr_Format(PyExc_ValueError,
                             "refresh_after must be more than 0 and at most ttl (%R), got %R", ttl,
                             refresh_after);
            Py_XDECREF(ttl);
            return -1;
        }
    }
    if (!PyUnicode_Check(on_kv_error)) {
        PyErr_Format(PyExc_TypeError, "on_kv_error must be 'random' or 'local', not %.100s",
                     Py_TYPE(on_kv_error)->tp_name);
        return -1;
    }
    if (PyUnicode_CompareWithASCIIString(on_kv_error, "random") == 0) {
        self->on_kv_error = ON_KV_ERROR_RANDOM;
    } else if (PyUnicode_CompareWithASCIIString(on_kv_error, "local") == 0) {
        if (!self->kv_mode) {
            PyErr_SetString(PyExc_ValueError, "on_kv_error='local' needs a kv");
            return -1;
        }
        self->on_kv_error = ON_KV_ERROR_LOCAL;
    } else {
        PyErr_Format(PyExc_ValueError, "on_kv_error must be 'random' or 'local', got %R",
                     on_kv_error);
        return -1;
    }
    return 0;
}

static PyObject *store_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"kv", "ttl", "prefix", "max_entries", "clock", "refresh_after",
                             "on_kv_error", NULL};
    PyObject *kv = Py_None, *ttl_obj = NULL, *prefix = NULL, *max_entries_obj = Py_None;
    PyObject *clock = Py_None, *refresh_after = Py_None, *on_kv_error = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O$OOOOOO:Store", kwlist, &kv, &ttl_obj,
                                     &prefix, &max_entries_obj, &clock, &refresh_after,
                                     &on_kv_error))
        return NULL;
    StoreObject *self = (StoreObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->state = PyType_GetModuleState(type);
    PyObject *default_prefix = NULL, *default_policy = NULL;
    if (prefix == NULL)
        prefix = default_prefix = PyUnicode_FromString("sessid:");
    if (on_kv_error == NULL)
        on_kv_error = default_policy = PyUnicode_FromString("random");
    self->ttl = 3600.0;
    int ok = prefix != NULL && on_kv_error != NULL
             && (ttl_obj == NULL || parse_ttl(ttl_obj, &self->ttl) == 0)
             && parse_max_entries(max_entries_obj, &self->max_entries) == 0
             && parse_kv(self, kv) == 0
             && parse_prefix(self, prefix) == 0
             && parse_policy(self, refresh_after, on_kv_error) == 0;
    Py_XDECREF(default_prefix);
    Py_XDECREF(default_policy);
    if (ok && clock != Py_None) {
        if (!PyCallable_Check(clock)) {
            PyErr_Format(PyExc_TypeError, "clock must be callable or None, not %.100s",
                         Py_TYPE(clock)->tp_name);
            ok = 0;
        } else {
            self->clock = Py_NewRef(clock);
        }
    }
    if (ok) {
        int rc = sessid_table_new(self->ttl, self->max_entries, &self->table);
        if (rc != SESSID_OK) {
            sessid_raise_status(self->state, rc);
            ok = 0;
        }
    }
    if (!ok) {
        Py_DECREF(self);
        return NULL;
    }
    self->monotonic_clock = sessid_clock_for(self->ttl / 1000);
    self->proto.ttl = (uint64_t)ceil(self->ttl);
    self->proto.table = self->table;
    self->proto.keep_local = self->refresh_after > 0 || self->on_kv_error == ON_KV_ERROR_LOCAL;
    self->proto.refresh_after = self->refresh_after;
    self->proto.caps = &self->caps;
    return (PyObject *)self;
}

static int store_traverse(StoreObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->kv);
    Py_VISIT(self->clock);
    return 0;
}

static int store_clear_refs(StoreObject *self)
{
    Py_CLEAR(self->kv);
    Py_CLEAR(self->clock);
    return 0;
}

static void store_dealloc(StoreObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    store_clear_refs(self);
    Py_CLEAR(self->prefix);
    PyMem_Free(self->prefix_utf8);
    sessid_table_free(self->table);
    type->tp_free(self);
    Py_DECREF(type);
}

static PyMethodDef store_methods[] = {
    {"get", (PyCFunction)store_get, METH_O,
     "get($self, api_key, /)\n--\n\nThe session id of api_key. Never raises because of the KV: when the "
     "KV fails, returns the fallback id of on_kv_error."},
    {"get_required", (PyCFunction)store_get_required, METH_O,
     "get_required($self, api_key, /)\n--\n\nThe session id of api_key; raises KVError when the KV "
     "fails."},
    {"aget", (PyCFunction)store_aget, METH_O,
     "aget($self, api_key, /)\n--\n\nget() for a KV whose methods are coroutines "
     "(redis.asyncio)."},
    {"aget_required", (PyCFunction)store_aget_required, METH_O,
     "aget_required($self, api_key, /)\n--\n\nget_required() for a KV whose methods are "
     "coroutines."},
    {"key_for", (PyCFunction)store_key_for, METH_O,
     "key_for($self, api_key, /)\n--\n\nThe KV key of api_key: prefix + the 64 lowercase hex "
     "characters of its SHA-256."},
    {"purge", (PyCFunction)store_purge, METH_NOARGS,
     "purge($self)\n--\n\nDrops the expired local entries; returns how many."},
    {"clear", (PyCFunction)store_clear, METH_NOARGS,
     "clear($self)\n--\n\nDrops every local entry."},
    {"stats", (PyCFunction)store_stats, METH_NOARGS,
     "stats($self)\n--\n\nCounters: hits, misses, expired, evicted, kv_errors."},
    {"_memory_dump", (PyCFunction)store_memory_dump, METH_NOARGS,
     "For tests: a copy of every byte of the local table's storage."},
    {"_memory_footprint", (PyCFunction)store_memory_footprint, METH_NOARGS,
     "For benchmarks: the bytes the local table holds."},
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
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot store_slots[] = {
    {Py_tp_doc,
     "Store(kv=None, *, ttl=3600.0, prefix='sessid:', max_entries=None, clock=None, "
     "refresh_after=None, on_kv_error='random')\n--\n\n"
     "Stable random session ids per API key, with a sliding TTL, kept in this process or in a "
     "shared KV with the redis-py client API."},
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

PyType_Spec sessid_store_spec = {
    .name = "sessid.Store",
    .basicsize = sizeof(StoreObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = store_slots,
};
