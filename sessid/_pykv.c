/* The KV backend over a Python object: each operation a vectorcall of the client's method with
 * interned names, each reply read in place (bytes or ASCII str, no copy), each failure classified
 * by its kind: a KV that does not offer an optional command, a key of another type (damage), a
 * full connection pool (congestion), a server unreachable or failing (an outage), any other
 * failure of the call, or a reply of the wrong kind. */
#include "_pykv.h"

static const char *method_of(sessid_op_kind kind)
{
    switch (kind) {
    case SESSID_OP_GET:
        return "get";
    case SESSID_OP_GETEX:
        return "getex";
    case SESSID_OP_SET_NX:
    case SESSID_OP_SET_NX_GET:
        return "set";
    case SESSID_OP_EXPIRE:
        return "expire";
    case SESSID_OP_DELETE:
        return "delete";
    case SESSID_OP_REPAIR:
        return "eval";
    }
    return "?";
}

int sessidpy_is_awaitable(PyObject *obj)
{
    PyAsyncMethods *am = Py_TYPE(obj)->tp_as_async;
    return am != NULL && am->am_await != NULL;
}

static int is_outage(PyObject *exc);

/* Keeps exc (stolen) as the failure to report; one that is not an Exception must propagate. */
static int keep_error(sessidpy_pykv *b, PyObject *exc)
{
    b->failure.fatal = !PyErr_GivenExceptionMatches(exc, PyExc_Exception);
    b->failure.outage = !b->failure.fatal && is_outage(exc);
    Py_XSETREF(b->failure.error, exc);
    return SESSID_EKV;
}

/* Replaces what the backend knows of a failure with the exception that is set now (a failure in
 * sessid's own handling of a reply, such as a MemoryError, outranks the KV's). */
static int fail_with_current(sessidpy_pykv *b)
{
    return keep_error(b, sessidpy_take_exception());
}

/* Records a reply of the wrong kind. */
static int bad_reply(sessidpy_pykv *b, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    PyObject *text = PyUnicode_FromFormatV(format, args);
    va_end(args);
    if (text == NULL)
        return fail_with_current(b);
    Py_XSETREF(b->failure.problem, text);
    b->failure.outage = 0;
    return SESSID_EKV;
}

/* A reply that is an awaitable where a value belongs: close it, so no "never awaited" warning
 * follows. */
static int refuse_awaitable(sessidpy_pykv *b, PyObject *result, int awaited)
{
    if (PyObject_HasAttr(result, b->state->str_close)) {
        PyObject *closed = PyObject_CallMethodNoArgs(result, b->state->str_close);
        if (closed == NULL)
            return fail_with_current(b);
        Py_DECREF(closed);
    }
    if (awaited)
        return bad_reply(b, "kv.%s() returned an awaitable whose result is another awaitable "
                         "(%.100s); expected bytes, str or None", b->failure.method,
                         Py_TYPE(result)->tp_name);
    PyObject *error = PyObject_CallFunction(
        PyExc_TypeError, "s",
        "the KV is an asyncio client (its methods return awaitables): use aget(), "
        "aget_required() and aforget() with it, not get(), get_required() or forget()");
    if (error == NULL)
        return fail_with_current(b);
    keep_error(b, error);
    b->failure.fatal = 1;
    return SESSID_EKV;
}

static PyObject *ttl_object(sessidpy_pykv *b, uint64_t ttl)
{
    if (b->ttl == NULL)
        b->ttl = PyLong_FromUnsignedLongLong(ttl);
    return b->ttl;
}

PyObject *sessidpy_pykv_call(sessidpy_pykv *b, const sessid_op *op, int *status)
{
    sessidpy_state *st = b->state;
    b->failure.method = method_of(op->kind);
    int timed = op->kind != SESSID_OP_GET && op->kind != SESSID_OP_DELETE;
    PyObject *ttl = timed ? ttl_object(b, op->ttl) : Py_None;
    PyObject *value = NULL;
    if (ttl != NULL && op->value != NULL)
        value = PyUnicode_FromStringAndSize(op->value, (Py_ssize_t)op->value_len);
    if (ttl == NULL || (op->value != NULL && value == NULL)) {
        *status = fail_with_current(b);
        return NULL;
    }
    const size_t offset = PY_VECTORCALL_ARGUMENTS_OFFSET;
    PyObject *result = NULL;
    switch (op->kind) {
    case SESSID_OP_GET: {
        PyObject *args[] = {b->kv, b->name};
        result = PyObject_VectorcallMethod(st->str_get, args, 2 | offset, NULL);
        break;
    }
    case SESSID_OP_GETEX: {
        PyObject *args[] = {b->kv, b->name, ttl};
        result = PyObject_VectorcallMethod(st->str_getex, args, 2 | offset, st->kwnames_ex);
        break;
    }
    case SESSID_OP_SET_NX: {
        PyObject *args[] = {b->kv, b->name, value, Py_True, ttl};
        result = PyObject_VectorcallMethod(st->str_set, args, 3 | offset, st->kwnames_set);
        break;
    }
    case SESSID_OP_SET_NX_GET: {
        PyObject *args[] = {b->kv, b->name, value, Py_True, ttl, Py_True};
        result = PyObject_VectorcallMethod(st->str_set, args, 3 | offset, st->kwnames_set_get);
        break;
    }
    case SESSID_OP_EXPIRE: {
        PyObject *args[] = {b->kv, b->name, ttl};
        result = PyObject_VectorcallMethod(st->str_expire, args, 3 | offset, NULL);
        break;
    }
    case SESSID_OP_DELETE: {
        PyObject *args[] = {b->kv, b->name};
        result = PyObject_VectorcallMethod(st->str_delete, args, 2 | offset, NULL);
        break;
    }
    case SESSID_OP_REPAIR: {
        PyObject *script = sessidpy_load(&st->repair_script, "sessid._protocols", "REPAIR_SCRIPT");
        if (script != NULL && st->str_eval == NULL)
            st->str_eval = PyUnicode_InternFromString("eval");
        if (script == NULL || st->str_eval == NULL) {
            Py_XDECREF(value);
            *status = fail_with_current(b);
            return NULL;
        }
        PyObject *one = PyLong_FromLong(1);     /* a cached small int: this cannot fail */
        PyObject *args[] = {b->kv, script, one, b->name, value, ttl};
        result = PyObject_VectorcallMethod(st->str_eval, args, 6 | offset, NULL);
        Py_DECREF(one);
        break;
    }
    }
    Py_XDECREF(value);
    if (result == NULL) {
        PyObject *exc = sessidpy_take_exception();
        *status = sessidpy_pykv_fail(b, op, exc);
        Py_DECREF(exc);
    }
    return result;
}

int sessidpy_pykv_read(sessidpy_pykv *b, const sessid_op *op, PyObject *result, int awaited,
                       sessid_kv_value *out)
{
    b->failure.method = method_of(op->kind);
    Py_XSETREF(b->held, Py_NewRef(result));
    out->found = 0;
    if (sessidpy_is_awaitable(result))
        return refuse_awaitable(b, result, awaited);
    b->answered = 1;
    if (op->kind == SESSID_OP_SET_NX || op->kind == SESSID_OP_EXPIRE || op->kind == SESSID_OP_DELETE)
        return SESSID_OK;                   /* what these return does not matter */
    if (op->kind == SESSID_OP_SET_NX_GET && PyBool_Check(result))
        return SESSID_ENOREPLY;             /* a client that ignored get=True */
    if (result == Py_None)
        return SESSID_OK;
    if (PyBytes_Check(result)) {
        out->data = PyBytes_AS_STRING(result);
        out->len = (size_t)PyBytes_GET_SIZE(result);
    } else if (PyUnicode_Check(result)) {
        if (!PyUnicode_IS_ASCII(result))
            return SESSID_EVALUE;
        out->data = PyUnicode_DATA(result);
        out->len = (size_t)PyUnicode_GET_LENGTH(result);
    } else {
        return bad_reply(b, "kv.%s() returned %.100s; expected bytes, str or None", b->failure.method,
                         Py_TYPE(result)->tp_name);
    }
    out->found = 1;
    return SESSID_OK;
}

/* Whether some class in exc's MRO is named one of names (duck-typing redis-py's exception classes,
 * and those of clients modelled on it, without importing any of them). */
static int has_class_named(PyObject *exc, const char *const *names)
{
    PyObject *mro = Py_TYPE(exc)->tp_mro;
    for (Py_ssize_t i = 0; mro != NULL && i < PyTuple_GET_SIZE(mro); i++) {
        const char *tp_name = ((PyTypeObject *)PyTuple_GET_ITEM(mro, i))->tp_name;
        const char *dot = strrchr(tp_name, '.');
        for (const char *const *name = names; *name != NULL; name++)
            if (strcmp(dot != NULL ? dot + 1 : tp_name, *name) == 0)
                return 1;
    }
    return 0;
}

/* Whether exc's text starts with one of codes as a word (an error reply's code, such as "BUSY"), or,
 * with anywhere set, holds one of them anywhere. */
static int text_has(PyObject *exc, const char *const *codes, int anywhere)
{
    PyObject *text = PyObject_Str(exc);
    const char *utf8 = text != NULL ? PyUnicode_AsUTF8(text) : NULL;
    if (utf8 == NULL) {
        /* The KV's exception cannot be read as text; it is raised as it is, so nothing is lost. */
        PyErr_Clear();
        Py_XDECREF(text);
        return 0;
    }
    int found = 0;
    for (const char *const *code = codes; *code != NULL && !found; code++) {
        size_t len = strlen(*code);
        found = anywhere ? strstr(utf8, *code) != NULL
                         : strncmp(utf8, *code, len) == 0 && (utf8[len] == ' ' || utf8[len] == '\0');
    }
    Py_DECREF(text);
    return found;
}

/* Whether exc, raised by an optional operation (GETEX, SET ... GET), says that the KV does not
 * offer it: a client without the method or its keyword, or any error reply from the server (an
 * unknown command, a refusal by an ACL or by a proxy in front of it, a syntax error), whatever its
 * words. A connection error, a transient state of the server (its code, or the class redis-py
 * gives it), a cluster's redirection or a reply about the key's data is a failure of that call. */
static int not_offered(PyObject *exc)
{
    static const char *const call_failures[] = {
        "ReadOnlyError", "OutOfMemoryError", "TryAgainError", "ClusterDownError", "MasterDownError",
        "MovedError", "AskError", "ClusterCrossSlotError", "BusyLoadingError", NULL};
    static const char *const call_failure_codes[] = {
        "LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY", "OOM", "NOREPLICAS",
        "MISCONF", "MOVED", "ASK", "CROSSSLOT", "WRONGTYPE", "NOAUTH", NULL};
    static const char *const missing_keyword[] = {"unexpected keyword argument", NULL};
    static const char *const error_reply[] = {"ResponseError", NULL};
    if (PyErr_GivenExceptionMatches(exc, PyExc_AttributeError))
        return 1;
    if (PyErr_GivenExceptionMatches(exc, PyExc_TypeError))
        return text_has(exc, missing_keyword, 1);
    return has_class_named(exc, error_reply) && !has_class_named(exc, call_failures)
           && !text_has(exc, call_failure_codes, 0);
}

/* Whether exc says the server is unreachable or failing: a connection error or a timeout (builtin
 * or redis-py's, by class name), or a transient state of the server (its class in redis-py, or its
 * error reply's code). A full pool is caught before this (congestion). */
static int is_outage(PyObject *exc)
{
    static const char *const classes[] = {
        "ConnectionError", "TimeoutError", "BusyLoadingError", "ReadOnlyError", "OutOfMemoryError",
        "TryAgainError", "ClusterDownError", "MasterDownError", NULL};
    static const char *const codes[] = {
        "LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY", "OOM", "NOREPLICAS",
        "MISCONF", NULL};
    return PyErr_GivenExceptionMatches(exc, PyExc_OSError) || has_class_named(exc, classes)
           || text_has(exc, codes, 0);
}

static int is_pool_full(PyObject *exc)
{
    static const char *const full[] = {"MaxConnectionsError", NULL};
    static const char *const connection[] = {"ConnectionError", NULL};
    static const char *const texts[] = {"Too many connections", "Too many open files", NULL};
    return has_class_named(exc, full)
           || (has_class_named(exc, connection) && text_has(exc, texts, 1));
}

int sessidpy_pykv_fail(sessidpy_pykv *b, const sessid_op *op, PyObject *exc)
{
    static const char *const wrongtype[] = {"WRONGTYPE", NULL};
    static const char *const error_reply[] = {"ResponseError", NULL};
    b->failure.method = method_of(op->kind);
    int optional = op->kind == SESSID_OP_GETEX || op->kind == SESSID_OP_SET_NX_GET
                   || op->kind == SESSID_OP_REPAIR;
    int ordinary = PyErr_GivenExceptionMatches(exc, PyExc_Exception);
    if (ordinary && is_pool_full(exc)) {
        keep_error(b, Py_NewRef(exc));
        b->failure.outage = 0;
        return SESSIDPY_POOL_FULL;
    }
    if (ordinary && has_class_named(exc, error_reply))
        b->answered = 1;
    if (ordinary && text_has(exc, wrongtype, 0)) {
        keep_error(b, Py_NewRef(exc));
        return SESSID_EVALUE;
    }
    if (optional && ordinary && not_offered(exc))
        return SESSID_EUNSUPPORTED;
    return keep_error(b, Py_NewRef(exc));
}

void sessidpy_pykv_init(sessidpy_pykv *b, sessidpy_state *state, PyObject *kv, PyObject *name)
{
    memset(b, 0, sizeof *b);
    b->state = state;
    b->kv = Py_NewRef(kv);
    b->name = Py_NewRef(name);
    b->failure.method = "?";
}

void sessidpy_pykv_clear(sessidpy_pykv *b)
{
    Py_CLEAR(b->kv);
    Py_CLEAR(b->name);
    Py_CLEAR(b->ttl);
    Py_CLEAR(b->held);
    Py_CLEAR(b->failure.error);
    Py_CLEAR(b->failure.problem);
}

int sessidpy_pykv_traverse(sessidpy_pykv *b, visitproc visit, void *arg)
{
    Py_VISIT(b->kv);
    Py_VISIT(b->name);
    Py_VISIT(b->held);
    Py_VISIT(b->failure.error);
    return 0;
}
