/* Errors: the one place where a status of the C core, or a failure of the KV, becomes a Python
 * exception; and the stash that keeps a KV method's exception while the core goes on. */
#include "_errors.h"

PyObject *sessidpy_raise_status(sessidpy_state *state, int status)
{
    assert(!sessid_status_is_kv_failure(status));
    switch (status) {
    case SESSID_ENOMEM:
        return PyErr_NoMemory();
    case SESSID_EINVAL:
    case SESSID_ESTATE:
        PyErr_Format(PyExc_SystemError, "sessid: %s", sessid_strerror(status));
        return NULL;
    default:
        PyErr_SetString(state->error, sessid_strerror(status));
        return NULL;
    }
}

/* "kv.get() raised ConnectionError: its message", or without the message when it has none. */
static PyObject *raised_message(const sessidpy_kv_failure *f)
{
    const char *type = Py_TYPE(f->error)->tp_name;
    PyObject *text = PyObject_Str(f->error);
    if (text == NULL)
        PyErr_Clear();              /* an exception that cannot say what it is: its type will do */
    PyObject *message = text != NULL && PyUnicode_GET_LENGTH(text) > 0
                            ? PyUnicode_FromFormat("kv.%s() raised %s: %U", f->method, type, text)
                            : PyUnicode_FromFormat("kv.%s() raised %s", f->method, type);
    Py_XDECREF(text);
    return message;
}

static PyObject *failure_message(const sessidpy_kv_failure *f, PyObject *kv_key, int status)
{
    switch (status) {
    case SESSID_EKV:
        if (f->problem != NULL)
            return Py_NewRef(f->problem);
        if (f->error != NULL)
            return raised_message(f);
        break;
    case SESSID_EMISSING:
        return PyUnicode_FromFormat("session id missing after set (KV key %R)", kv_key);
    case SESSID_EVALUE:
        return PyUnicode_FromFormat(
            "kv.%s() returned a value that is not a session id: expected 1 to %d visible ASCII "
            "characters (KV key %R)", f->method, SESSID_VALUE_MAX, kv_key);
    }
    return PyUnicode_FromString(sessid_strerror(status));
}

PyObject *sessidpy_raise_kv_failure(sessidpy_state *state, sessidpy_kv_failure *failure,
                                    PyObject *kv_key, int status)
{
    assert(sessid_status_is_kv_failure(status));
    if (failure->fatal && failure->error != NULL) {
        sessidpy_restore_exception(failure->error);
        failure->error = NULL;
        return NULL;
    }
    PyObject *message = failure_message(failure, kv_key, status);
    if (message == NULL)
        return NULL;
    PyObject *error = PyObject_CallOneArg(state->kv_error, message);
    Py_DECREF(message);
    if (error == NULL)
        return NULL;
    if (failure->error != NULL) {
        PyException_SetCause(error, Py_NewRef(failure->error));
        PyException_SetContext(error, Py_NewRef(failure->error));
    }
    PyErr_SetObject((PyObject *)Py_TYPE(error), error);
    Py_DECREF(error);
    return NULL;
}

PyObject *sessidpy_take_exception(void)
{
    assert(PyErr_Occurred());
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL) {
        PyException_SetTraceback(value, traceback);
        Py_DECREF(traceback);
    }
    Py_XDECREF(type);
    return value;
#endif
}

void sessidpy_restore_exception(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(Py_NewRef(Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
}
