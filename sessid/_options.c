/* The arguments of Store(): each checked on its own, with a message that names it and the value
 * given; a number of seconds may also be a datetime.timedelta. */
#include "_options.h"

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
            PyErr_Format(PyExc_ValueError, "%s must be at most " SESSIDPY_TTL_MAX_TEXT
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
    if (!(*ttl > 0 && *ttl <= SESSIDPY_TTL_MAX)) {
        PyErr_Format(PyExc_ValueError,
                     "ttl must be more than 0 and at most " SESSIDPY_TTL_MAX_TEXT " seconds, got %R",
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

static int parse_kv(sessidpy_state *state, PyObject *kv, sessidpy_options *o)
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
    PyObject *getex = PyObject_GetAttr(kv, state->str_getex);
    if (getex == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
    }
    o->kv_has_getex = getex != NULL && PyCallable_Check(getex);
    Py_XDECREF(getex);
    o->kv = Py_NewRef(kv);
    o->kv_mode = 1;
    return 0;
}

static int parse_clock(PyObject *clock, sessidpy_options *o)
{
    if (clock == Py_None)
        return 0;
    if (!PyCallable_Check(clock)) {
        PyErr_Format(PyExc_TypeError, "clock must be callable or None, not %.100s",
                     Py_TYPE(clock)->tp_name);
        return -1;
    }
    o->clock.callable = Py_NewRef(clock);
    return 0;
}

static int parse_refresh_after(PyObject *obj, sessidpy_options *o)
{
    if (obj == Py_None)
        return 0;
    if (!o->kv_mode) {
        PyErr_SetString(PyExc_ValueError, "refresh_after needs a kv");
        return -1;
    }
    if (seconds_arg(obj, "refresh_after", &o->refresh_after) < 0)
        return -1;
    if (!(o->refresh_after > 0 && o->refresh_after <= o->ttl)) {
        PyObject *ttl = PyFloat_FromDouble(o->ttl);
        if (ttl != NULL)
            PyErr_Format(PyExc_ValueError,
                         "refresh_after must be more than 0 and at most ttl (%R), got %R", ttl, obj);
        Py_XDECREF(ttl);
        return -1;
    }
    return 0;
}

static int parse_on_kv_error(PyObject *obj, sessidpy_options *o)
{
    if (obj == NULL)
        return 0;
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "on_kv_error must be 'random' or 'local', not %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (PyUnicode_CompareWithASCIIString(obj, "random") == 0)
        return 0;
    if (PyUnicode_CompareWithASCIIString(obj, "local") != 0) {
        PyErr_Format(PyExc_ValueError, "on_kv_error must be 'random' or 'local', got %R", obj);
        return -1;
    }
    if (!o->kv_mode) {
        PyErr_SetString(PyExc_ValueError, "on_kv_error='local' needs a kv");
        return -1;
    }
    o->on_kv_error = SESSIDPY_ON_KV_ERROR_LOCAL;
    return 0;
}

static int parse_kv_backoff(PyObject *obj, sessidpy_options *o)
{
    if (obj == NULL)
        return 0;
    if (!o->kv_mode) {
        PyErr_SetString(PyExc_ValueError, "kv_backoff needs a kv");
        return -1;
    }
    if (seconds_arg(obj, "kv_backoff", &o->kv_backoff) < 0)
        return -1;
    if (!(o->kv_backoff >= 0 && o->kv_backoff <= SESSIDPY_TTL_MAX)) {
        PyErr_Format(PyExc_ValueError,
                     "kv_backoff must be from 0 (off) to " SESSIDPY_TTL_MAX_TEXT " seconds, got %R",
                     obj);
        return -1;
    }
    return 0;
}

/* After parse_shared. */
static int parse_lock_timeout(PyObject *obj, sessidpy_options *o)
{
    if (obj == NULL)
        return 0;
    if (o->shared_path == NULL) {
        PyErr_SetString(PyExc_ValueError, "lock_timeout needs shared: only a shared table has a "
                                          "lock that other processes hold");
        return -1;
    }
    if (seconds_arg(obj, "lock_timeout", &o->lock_timeout) < 0)
        return -1;
    if (!(o->lock_timeout >= 0 && o->lock_timeout <= SESSIDPY_TTL_MAX)) {
        PyErr_Format(PyExc_ValueError,
                     "lock_timeout must be from 0 (never wait) to " SESSIDPY_TTL_MAX_TEXT
                     " seconds, got %R", obj);
        return -1;
    }
    return 0;
}

char *sessidpy_shared_path(PyObject *shared, PyObject **text)
{
    if (text != NULL)
        *text = NULL;
    PyObject *fspath = PyOS_FSPath(shared);
    if (fspath == NULL && !PyErr_ExceptionMatches(PyExc_TypeError))
        return NULL;
    if (fspath == NULL || !PyUnicode_Check(fspath)) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError,
                     "shared must be a name or an absolute path (str or os.PathLike), or None, not "
                     "%.100s", Py_TYPE(fspath != NULL ? fspath : shared)->tp_name);
        Py_XDECREF(fspath);
        return NULL;
    }
    Py_ssize_t len;
    const char *name = PyUnicode_AsUTF8AndSize(fspath, &len);
    char *path = name != NULL ? PyMem_Malloc(SESSID_SHARED_PATH_MAX) : NULL;
    if (name != NULL && path == NULL)
        PyErr_NoMemory();
    if (path != NULL && ((size_t)len != strlen(name) || sessid_shared_path(name, path) != SESSID_OK)) {
        PyErr_Format(PyExc_ValueError,
                     "shared must be a name of 1 to %d letters, digits, '.', '_' or '-' (not "
                     "starting with '.'), or an absolute path, got %R", SESSID_SHARED_NAME_MAX,
                     shared);
        PyMem_Free(path);
        path = NULL;
    }
    if (path != NULL && text != NULL)
        *text = fspath;
    else
        Py_DECREF(fspath);
    return path;
}

static int parse_shared(PyObject *obj, sessidpy_options *o)
{
    if (obj == Py_None)
        return 0;
    if (o->clock.callable != NULL) {
        PyErr_SetString(PyExc_ValueError,
                        "clock cannot be combined with shared: every process of a shared table "
                        "reads the same monotonic clock");
        return -1;
    }
    o->shared_path = sessidpy_shared_path(obj, &o->shared);
    if (o->shared_path == NULL)
        return -1;
    if (o->max_entries == 0)
        o->max_entries = SESSIDPY_SHARED_DEFAULT_ENTRIES;
    return 0;
}

static int parse_prefix(PyObject *obj, sessidpy_options *o)
{
    if (obj != NULL)
        return sessidpy_prefix_init(&o->prefix, obj);
    PyObject *fallback = PyUnicode_FromString("sessid:");
    if (fallback == NULL)
        return -1;
    int rc = sessidpy_prefix_init(&o->prefix, fallback);
    Py_DECREF(fallback);
    return rc;
}

int sessidpy_options_parse(sessidpy_state *state, PyObject *args, PyObject *kwargs,
                           sessidpy_options *o)
{
    static char *kwlist[] = {"kv", "ttl", "prefix", "max_entries", "clock", "refresh_after",
                             "on_kv_error", "kv_backoff", "shared", "lock_timeout", NULL};
    PyObject *kv = Py_None, *ttl = NULL, *prefix = NULL, *max_entries = Py_None;
    PyObject *clock = Py_None, *refresh_after = Py_None, *on_kv_error = NULL, *kv_backoff = NULL;
    PyObject *shared = Py_None, *lock_timeout = NULL;
    memset(o, 0, sizeof *o);
    o->ttl = 3600.0;
    o->on_kv_error = SESSIDPY_ON_KV_ERROR_RANDOM;
    o->kv_backoff = 1.0;
    o->lock_timeout = 1.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O$OOOOOOOOO:Store", kwlist, &kv, &ttl,
                                     &prefix, &max_entries, &clock, &refresh_after, &on_kv_error,
                                     &kv_backoff, &shared, &lock_timeout))
        return -1;
    if ((ttl != NULL && parse_ttl(ttl, &o->ttl) < 0)
        || parse_max_entries(max_entries, &o->max_entries) < 0
        || parse_kv(state, kv, o) < 0
        || parse_prefix(prefix, o) < 0
        || parse_refresh_after(refresh_after, o) < 0
        || parse_on_kv_error(on_kv_error, o) < 0
        || parse_kv_backoff(kv_backoff, o) < 0
        || parse_clock(clock, o) < 0
        || parse_shared(shared, o) < 0
        || parse_lock_timeout(lock_timeout, o) < 0)
        return -1;
    o->clock.monotonic = sessid_clock_for(o->ttl / 1000);
    return 0;
}

void sessidpy_options_clear(sessidpy_options *o)
{
    Py_CLEAR(o->kv);
    Py_CLEAR(o->clock.callable);
    Py_CLEAR(o->shared);
    PyMem_Free(o->shared_path);
    o->shared_path = NULL;
    sessidpy_prefix_clear(&o->prefix);
}

const char *sessidpy_on_kv_error_name(sessidpy_on_kv_error policy)
{
    return policy == SESSIDPY_ON_KV_ERROR_LOCAL ? "local" : "random";
}
