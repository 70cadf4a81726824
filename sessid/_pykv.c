#include "_binding.h"

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
    }
    return "?";
}

int sessid_is_awaitable(PyObject *obj)
{
    PyAsyncMethods *am = Py_TYPE(obj)->tp_as_async;
    return am != NULL && am->am_await != NULL;
}

/* Keeps exc (stolen) as the failure to report; one that is not an Exception must propagate. */
static int keep_error(pykv *b, PyObject *exc)
{
    b->fatal = !PyErr_GivenExceptionMatches(exc, PyExc_Exception);
    Py_XSETREF(b->error, exc);
    return SESSID_EKV;
}

/* Replaces what the backend knows of a failure with the exception that is set now (a failure in
 * sessid's own handling of a reply, such as a MemoryError, outranks the KV's). */
static int fail_with_current(pykv *b)
{
    return keep_error(b, sessid_take_exception());
}

/* Records a reply of the wrong kind. */
static int bad_reply(pykv *b, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    PyObject *text = PyUnicode_FromFormatV(format, args);
    va_end(args);
    if (text == NULL)
        return fail_with_current(b);
    Py_XSETREF(b->problem, text);
    return SESSID_EKV;
}

/* A synchronous caller got an awaitable: close it, so no "never awaited" warning follows. */
static int refuse_awaitable(pykv *b, PyObject *result)
{
    if (PyObject_HasAttr(result, b->state->str_close)) {
        PyObject *closed = PyObject_CallMethodNoArgs(result, b->state->str_close);
        if (closed == NULL)
            return fail_with_current(b);
        Py_DECREF(closed);
    }
    return bad_reply(b, "kv.%s() returned an awaitable (%.100s); use aget() with an asyncio client",
                     b->method, Py_TYPE(result)->tp_name);
}

static PyObject *ttl_object(pykv *b, uint64_t ttl)
{
    if (b->ttl == NULL)
        b->ttl = PyLong_FromUnsignedLongLong(ttl);
    return b->ttl;
}

PyObject *sessid_pykv_call(pykv *b, const sessid_op *op, int *status)
{
    sessid_state *st = b->state;
    b->method = method_of(op->kind);
    PyObject *ttl = op->kind == SESSID_OP_GET ? Py_None : ttl_object(b, op->ttl);
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
    }
    Py_XDECREF(value);
    if (result == NULL) {
        PyObject *exc = sessid_take_exception();
        *status = sessid_pykv_fail(b, op, exc);
        Py_DECREF(exc);
    }
    return result;
}

int sessid_pykv_read(pykv *b, const sessid_op *op, PyObject *result, sessid_kv_value *out)
{
    b->method = method_of(op->kind);
    Py_XSETREF(b->held, Py_NewRef(result));
    out->found = 0;
    if (sessid_is_awaitable(result))
        return refuse_awaitable(b, result);
    if (op->kind == SESSID_OP_SET_NX || op->kind == SESSID_OP_EXPIRE)
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
        return bad_reply(b, "kv.%s() returned %.100s; expected bytes, str or None", b->method,
                         Py_TYPE(result)->tp_name);
    }
    out->found = 1;
    return SESSID_OK;
}

/* Whether some class in exc's MRO is named name (duck-typing redis.exceptions.ResponseError
 * without importing redis). */
static int has_class_named(PyObject *exc, const char *name)
{
    PyObject *mro = Py_TYPE(exc)->tp_mro;
    for (Py_ssize_t i = 0; mro != NULL && i < PyTuple_GET_SIZE(mro); i++) {
        const char *tp_name = ((PyTypeObject *)PyTuple_GET_ITEM(mro, i))->tp_name;
        const char *dot = strrchr(tp_name, '.');
        if (strcmp(dot != NULL ? dot + 1 : tp_name, name) == 0)
            return 1;
    }
    return 0;
}

static int message_mentions(PyObject *exc, const char *const *phrases)
{
    PyObject *text = PyObject_Str(exc);
    PyObject *lower = text != NULL ? PyObject_CallMethod(text, "lower", NULL) : NULL;
    Py_XDECREF(text);
    if (lower == NULL) {
        /* The KV's exception cannot be read as text; it is raised as it is, so nothing is lost. */
        PyErr_Clear();
        return 0;
    }
    int found = 0;
    for (const char *const *p = phrases; *p != NULL && !found; p++) {
        PyObject *phrase = PyUnicode_FromString(*p);
        found = phrase != NULL ? PySequence_Contains(lower, phrase) : -1;
        Py_XDECREF(phrase);
        if (found < 0) {
            PyErr_Clear();
            found = 0;
        }
    }
    Py_DECREF(lower);
    return found;
}

/* Whether exc, raised by an optional operation, says that the client or server lacks it: a client
 * without the method or keyword, or a server that does not know the command or its GET option. */
static int says_unsupported(PyObject *exc)
{
    static const char *const server_phrases[] = {"unknown command", "syntax error",
                                                 "wrong number of arguments", NULL};
    static const char *const client_phrases[] = {"unexpected keyword argument", NULL};
    if (PyErr_GivenExceptionMatches(exc, PyExc_AttributeError))
        return 1;
    if (PyErr_GivenExceptionMatches(exc, PyExc_TypeError))
        return message_mentions(exc, client_phrases);
    return has_class_named(exc, "ResponseError") && message_mentions(exc, server_phrases);
}

int sessid_pykv_fail(pykv *b, const sessid_op *op, PyObject *exc)
{
    b->method = method_of(op->kind);
    int optional = op->kind == SESSID_OP_GETEX || op->kind == SESSID_OP_SET_NX_GET;
    if (optional && PyErr_GivenExceptionMatches(exc, PyExc_Exception) && says_unsupported(exc))
        return SESSID_EUNSUPPORTED;
    return keep_error(b, Py_NewRef(exc));
}

/* "kv.get() raised ConnectionError: its message", or without the message when it has none. */
static PyObject *raised_message(pykv *b)
{
    const char *type = Py_TYPE(b->error)->tp_name;
    PyObject *text = PyObject_Str(b->error);
    if (text == NULL)
        PyErr_Clear();              /* an exception that cannot say what it is: its type will do */
    PyObject *message = text != NULL && PyUnicode_GET_LENGTH(text) > 0
                            ? PyUnicode_FromFormat("kv.%s() raised %s: %U", b->method, type, text)
                            : PyUnicode_FromFormat("kv.%s() raised %s", b->method, type);
    Py_XDECREF(text);
    return message;
}

static PyObject *failure_message(pykv *b, int status)
{
    switch (status) {
    case SESSID_EKV:
        if (b->problem != NULL)
            return Py_NewRef(b->problem);
        if (b->error != NULL)
            return raised_message(b);
        break;
    case SESSID_EMISSING:
        return PyUnicode_FromFormat("session id missing after set (KV key %R)", b->name);
    case SESSID_EVALUE:
        return PyUnicode_FromFormat(
            "kv.%s() returned a value that is not a session id: expected 1 to %d visible ASCII "
            "characters (KV key %R)", b->method, SESSID_VALUE_MAX, b->name);
    }
    return PyUnicode_FromString(sessid_strerror(status));
}

PyObject *sessid_pykv_raise(pykv *b, int status)
{
    if (b->fatal && b->error != NULL) {
        sessid_restore_exception(b->error);
        b->error = NULL;
        return NULL;
    }
    PyObject *message = failure_message(b, status);
    if (message == NULL)
        return NULL;
    PyObject *error = PyObject_CallOneArg(b->state->kv_error, message);
    Py_DECREF(message);
    if (error == NULL)
        return NULL;
    if (b->error != NULL) {
        PyException_SetCause(error, Py_NewRef(b->error));
        PyException_SetContext(error, Py_NewRef(b->error));
    }
    PyErr_SetObject((PyObject *)Py_TYPE(error), error);
    Py_DECREF(error);
    return NULL;
}

/* ---- the vtable ---- */

static int perform(void *ctx, sessid_op_kind kind, const char *value, size_t value_len,
                   uint64_t ttl, sessid_kv_value *out)
{
    pykv *b = ctx;
    assert(!PyErr_Occurred());
    sessid_op op = {.kind = kind, .value = value, .value_len = value_len, .ttl = ttl};
    int status;
    PyObject *result = sessid_pykv_call(b, &op, &status);
    if (result == NULL)
        return status;
    sessid_kv_value ignored;
    status = sessid_pykv_read(b, &op, result, out != NULL ? out : &ignored);
    Py_DECREF(result);
    return status;
}

static int py_get(void *ctx, const char *key, size_t key_len, sessid_kv_value *out)
{
    (void)key, (void)key_len;
    return perform(ctx, SESSID_OP_GET, NULL, 0, 0, out);
}

static int py_getex(void *ctx, const char *key, size_t key_len, uint64_t ttl, sessid_kv_value *out)
{
    (void)key, (void)key_len;
    return perform(ctx, SESSID_OP_GETEX, NULL, 0, ttl, out);
}

static int py_set_nx(void *ctx, const char *key, size_t key_len, const char *value,
                     size_t value_len, uint64_t ttl)
{
    (void)key, (void)key_len;
    return perform(ctx, SESSID_OP_SET_NX, value, value_len, ttl, NULL);
}

static int py_set_nx_get(void *ctx, const char *key, size_t key_len, const char *value,
                         size_t value_len, uint64_t ttl, sessid_kv_value *out)
{
    (void)key, (void)key_len;
    return perform(ctx, SESSID_OP_SET_NX_GET, value, value_len, ttl, out);
}

static int py_expire(void *ctx, const char *key, size_t key_len, uint64_t ttl)
{
    (void)key, (void)key_len;
    return perform(ctx, SESSID_OP_EXPIRE, NULL, 0, ttl, NULL);
}

static const sessid_kv_methods python_methods = {
    .version = SESSID_KV_VERSION,
    .get = py_get,
    .set_nx = py_set_nx,
    .expire = py_expire,
    .getex = py_getex,
    .set_nx_get = py_set_nx_get,
};

void sessid_pykv_init(pykv *b, sessid_state *state, PyObject *kv, PyObject *name)
{
    memset(b, 0, sizeof *b);
    b->base.methods = &python_methods;
    b->base.ctx = b;
    b->state = state;
    b->kv = Py_NewRef(kv);
    b->name = Py_NewRef(name);
    b->method = "?";
}

void sessid_pykv_clear(pykv *b)
{
    Py_CLEAR(b->kv);
    Py_CLEAR(b->name);
    Py_CLEAR(b->ttl);
    Py_CLEAR(b->held);
    Py_CLEAR(b->error);
    Py_CLEAR(b->problem);
}

int sessid_pykv_traverse(pykv *b, visitproc visit, void *arg)
{
    Py_VISIT(b->kv);
    Py_VISIT(b->name);
    Py_VISIT(b->held);
    Py_VISIT(b->error);
    return 0;
}
