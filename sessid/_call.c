/* One asynchronous lookup in progress. sessid._aio.drive steps it:
 *
 *     pending = call.start()
 *     while pending is not None:
 *         try: reply = await pending
 *         except Exception as exc: pending = call.throw(exc)
 *         else: pending = call.send(reply)
 *     return call.result()
 *
 * The protocol itself is the C core's state machine; a Call only performs its operations by calling
 * the KV's methods and hands back each awaitable they return. A method that returns a plain value
 * (a synchronous KV) is read at once, without a trip through the event loop.
 */
#include "_binding.h"

typedef struct {
    PyObject_HEAD
    sessid_state *state;
    StoreObject *store;         /* NULL for a Call that finished when it was made */
    PyObject *value;            /* the id of a Call that finished when it was made */
    PyObject *error;            /* the exception of a Call that failed when it was made */
    pykv backend;
    int has_backend;
    sessid_proto run;
    uint8_t digest[SESSID_DIGEST_LEN];
    double now;
    int required;
    int busy;
} CallObject;

static PyObject *new_call(sessid_state *state)
{
    CallObject *call = PyObject_GC_New(CallObject, state->call_type);
    if (call == NULL)
        return NULL;
    call->state = state;
    call->store = NULL;
    call->value = NULL;
    call->error = NULL;
    call->has_backend = 0;
    call->busy = 0;
    call->required = 0;
    call->now = 0;
    memset(&call->run, 0, sizeof call->run);
    PyObject_GC_Track(call);
    return (PyObject *)call;
}

PyObject *sessid_call_done(sessid_state *state, PyObject *value)
{
    PyObject *error = value == NULL ? sessid_take_exception() : NULL;
    CallObject *call = (CallObject *)new_call(state);
    if (call == NULL) {
        Py_XDECREF(value);
        Py_XDECREF(error);
        return NULL;
    }
    call->value = value;
    call->error = error;
    return (PyObject *)call;
}

PyObject *sessid_call_new(StoreObject *store, const uint8_t digest[SESSID_DIGEST_LEN], double now,
                          int required)
{
    CallObject *call = (CallObject *)new_call(store->state);
    if (call == NULL)
        return NULL;
    call->store = (StoreObject *)Py_NewRef(store);
    memcpy(call->digest, digest, SESSID_DIGEST_LEN);
    call->now = now;
    call->required = required;
    call->has_backend = 1;
    if (sessid_store_begin_kv(store, digest, now, &call->run, &call->backend) < 0) {
        Py_DECREF(call);
        return NULL;
    }
    return (PyObject *)call;
}

static int enter(CallObject *self)
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "this lookup is already being stepped");
        return -1;
    }
    self->busy = 1;
    return 0;
}

/* Performs operations until one returns an awaitable (returned) or the run is over (None). */
static PyObject *advance(CallObject *self)
{
    const sessid_op *op;
    while (self->has_backend && (op = sessid_proto_next(&self->run)) != NULL) {
        int status;
        PyObject *result = sessid_pykv_call(&self->backend, op, &status);
        if (result != NULL && sessid_is_awaitable(result)) {
            self->busy = 0;
            return result;
        }
        sessid_kv_value value = {0};
        if (result != NULL) {
            status = sessid_pykv_read(&self->backend, op, result, &value);
            Py_DECREF(result);
        }
        sessid_proto_feed(&self->run, status, &value);
    }
    self->busy = 0;
    Py_RETURN_NONE;
}

/* The operation that an awaited reply answers, or NULL with RuntimeError. */
static const sessid_op *awaited_op(CallObject *self)
{
    const sessid_op *op = self->has_backend ? sessid_proto_next(&self->run) : NULL;
    if (op == NULL) {
        self->busy = 0;
        PyErr_SetString(PyExc_RuntimeError, "this lookup is not waiting for a reply");
    }
    return op;
}

static PyObject *call_start(CallObject *self, PyObject *unused)
{
    (void)unused;
    if (enter(self) < 0)
        return NULL;
    return advance(self);
}

static PyObject *call_send(CallObject *self, PyObject *reply)
{
    if (enter(self) < 0)
        return NULL;
    const sessid_op *op = awaited_op(self);
    if (op == NULL)
        return NULL;
    sessid_kv_value value = {0};
    int status = sessid_pykv_read(&self->backend, op, reply, &value);
    sessid_proto_feed(&self->run, status, &value);
    return advance(self);
}

static PyObject *call_throw(CallObject *self, PyObject *exc)
{
    if (!PyExceptionInstance_Check(exc)) {
        PyErr_Format(PyExc_TypeError, "throw() takes an exception, not %.100s",
                     Py_TYPE(exc)->tp_name);
        return NULL;
    }
    if (enter(self) < 0)
        return NULL;
    const sessid_op *op = awaited_op(self);
    if (op == NULL)
        return NULL;
    sessid_proto_feed(&self->run, sessid_pykv_fail(&self->backend, op, exc), NULL);
    return advance(self);
}

static PyObject *call_result(CallObject *self, PyObject *unused)
{
    (void)unused;
    if (self->error != NULL) {
        sessid_restore_exception(self->error);
        self->error = NULL;
        return NULL;
    }
    if (self->value != NULL)
        return Py_NewRef(self->value);
    if (self->store == NULL || sessid_proto_next(&self->run) != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "this lookup has not finished");
        return NULL;
    }
    return sessid_store_finish(self->store, &self->run, &self->backend, self->digest, self->now,
                               self->required);
}

static int call_traverse(CallObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->store);
    Py_VISIT(self->value);
    Py_VISIT(self->error);
    if (self->has_backend)
        return sessid_pykv_traverse(&self->backend, visit, arg);
    return 0;
}

static int call_clear(CallObject *self)
{
    Py_CLEAR(self->store);
    Py_CLEAR(self->value);
    Py_CLEAR(self->error);
    if (self->has_backend) {
        sessid_pykv_clear(&self->backend);
        self->has_backend = 0;
    }
    return 0;
}

static void call_dealloc(CallObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    call_clear(self);
    PyObject_GC_Del(self);
    Py_DECREF(type);
}

static PyMethodDef call_methods[] = {
    {"start", (PyCFunction)call_start, METH_NOARGS, "The first awaitable, or None when done."},
    {"send", (PyCFunction)call_send, METH_O, "Hands in an awaited reply; the next awaitable or None."},
    {"throw", (PyCFunction)call_throw, METH_O, "Hands in an awaited failure; the next awaitable or None."},
    {"result", (PyCFunction)call_result, METH_NOARGS, "The session id, or the error, once done."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot call_slots[] = {
    {Py_tp_doc, "One asynchronous session id lookup in progress (internal)."},
    {Py_tp_dealloc, call_dealloc},
    {Py_tp_traverse, call_traverse},
    {Py_tp_clear, call_clear},
    {Py_tp_methods, call_methods},
    {0, NULL},
};

PyType_Spec sessid_call_spec = {
    .name = "sessid._sessid.Call",
    .basicsize = sizeof(CallObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE
             | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = call_slots,
};
