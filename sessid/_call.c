/* One aget (or aforget) in progress. sessid._aio.drive steps it (after, with flight_key and
 * adopt, letting it take the answer of another lookup of its key in flight):
 *
 *     pending = call.start()
 *     while pending is not None:
 *         try: reply = await pending
 *         except Exception as exc: pending = call.throw(exc)
 *         else: pending = call.send(reply)
 *     return call.result()
 *
 * The lookup itself is a KV run (_kvrun.h); a Call only hands out each awaitable a KV method
 * returns and hands back what it gave. A method that returns a plain value (a synchronous KV) is
 * read at once, without a trip through the event loop.
 */
#include "_call.h"

#include "_errors.h"

typedef struct {
    PyObject_HEAD
    PyObject *owner;            /* the store whose conf the run uses; NULL for a finished Call */
    PyObject *value;            /* the id of a Call that finished when it was made */
    PyObject *error;            /* the exception of a Call that failed when it was made */
    sessidpy_kvrun run;
    int has_run;
    int busy;
} CallObject;

static CallObject *new_call(sessidpy_state *state)
{
    CallObject *call = PyObject_GC_New(CallObject, state->call_type);
    if (call == NULL)
        return NULL;
    call->owner = call->value = call->error = NULL;
    memset(&call->run, 0, sizeof call->run);
    call->has_run = call->busy = 0;
    PyObject_GC_Track(call);
    return call;
}

PyObject *sessidpy_call_done(sessidpy_state *state, PyObject *value)
{
    PyObject *error = value == NULL ? sessidpy_take_exception() : NULL;
    CallObject *call = new_call(state);
    if (call == NULL) {
        Py_XDECREF(value);
        Py_XDECREF(error);
        return NULL;
    }
    call->value = value;
    call->error = error;
    return (PyObject *)call;
}

PyObject *sessidpy_call_new(sessidpy_state *state, PyObject *owner, sessidpy_kvconf *conf,
                            PyObject *kv, const uint8_t digest[SESSID_DIGEST_LEN], double now,
                            sessidpy_kvrun_kind kind)
{
    CallObject *call = new_call(state);
    if (call == NULL)
        return NULL;
    call->owner = Py_NewRef(owner);
    call->has_run = 1;
    if (sessidpy_kvrun_begin(&call->run, conf, kv, digest, now, kind) < 0) {
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

/* The next awaitable, or None once the run is over. */
static PyObject *advance(CallObject *self)
{
    PyObject *awaitable = self->has_run ? sessidpy_kvrun_advance(&self->run, 1) : NULL;
    self->busy = 0;
    return awaitable != NULL ? awaitable : Py_NewRef(Py_None);
}

static PyObject *call_start(CallObject *self, PyObject *unused)
{
    (void)unused;
    if (enter(self) < 0)
        return NULL;
    return advance(self);
}

/* Hands in what an awaitable gave (its reply, or exc when it raised) and goes on. */
static PyObject *resume(CallObject *self, PyObject *reply, PyObject *exc)
{
    if (enter(self) < 0)
        return NULL;
    int rc;
    if (!self->has_run) {
        PyErr_SetString(PyExc_RuntimeError, "this lookup is not waiting for a reply");
        rc = -1;
    } else if (exc != NULL) {
        rc = sessidpy_kvrun_raised(&self->run, exc);
    } else {
        rc = sessidpy_kvrun_reply(&self->run, reply);
    }
    if (rc < 0) {
        self->busy = 0;
        return NULL;
    }
    return advance(self);
}

static PyObject *call_send(CallObject *self, PyObject *reply)
{
    return resume(self, reply, NULL);
}

static PyObject *call_throw(CallObject *self, PyObject *exc)
{
    if (!PyExceptionInstance_Check(exc)) {
        PyErr_Format(PyExc_TypeError, "throw() takes an exception, not %.100s",
                     Py_TYPE(exc)->tp_name);
        return NULL;
    }
    return resume(self, NULL, exc);
}

static PyObject *call_result(CallObject *self, PyObject *unused)
{
    (void)unused;
    if (self->error != NULL) {
        sessidpy_restore_exception(self->error);
        self->error = NULL;
        return NULL;
    }
    if (self->value != NULL)
        return Py_NewRef(self->value);
    if (!self->has_run || sessidpy_kvrun_running(&self->run)) {
        PyErr_SetString(PyExc_RuntimeError, "this lookup has not finished");
        return NULL;
    }
    return sessidpy_kvrun_finish(&self->run);
}

static PyObject *call_flight_key(CallObject *self, PyObject *unused)
{
    (void)unused;
    if (!self->has_run)
        Py_RETURN_NONE;
    return sessidpy_kvrun_flight_key(&self->run);
}

static PyObject *call_outcome(CallObject *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromLong(self->has_run ? (long)self->run.outcome : (long)SESSIDPY_RAISED);
}

static PyObject *call_adopt(CallObject *self, PyObject *args)
{
    PyObject *answer;
    int outcome;
    if (!PyArg_ParseTuple(args, "Oi:adopt", &answer, &outcome) || enter(self) < 0)
        return NULL;
    PyObject *adopted = NULL;
    if (self->has_run && sessidpy_kvrun_running(&self->run) && !self->run.decided)
        adopted = sessidpy_kvrun_adopt(&self->run, answer, (sessidpy_outcome)outcome);
    self->busy = 0;
    return adopted != NULL ? adopted : Py_NewRef(Py_None);
}

static int call_traverse(CallObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->owner);
    Py_VISIT(self->value);
    Py_VISIT(self->error);
    if (self->has_run)
        return sessidpy_kvrun_traverse(&self->run, visit, arg);
    return 0;
}

static int call_clear(CallObject *self)
{
    if (self->has_run) {
        sessidpy_kvrun_clear(&self->run);
        self->has_run = 0;
    }
    Py_CLEAR(self->owner);
    Py_CLEAR(self->value);
    Py_CLEAR(self->error);
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
    {"result", (PyCFunction)call_result, METH_NOARGS, "The session id (None for a forget), or the error, once done."},
    {"flight_key", (PyCFunction)call_flight_key, METH_NOARGS,
     "(flights, key) for a lookup that may share its KV exchange with others of its key, or None."},
    {"outcome", (PyCFunction)call_outcome, METH_NOARGS,
     "After result(): 0 the KV answered, 1 best effort without the KV, 2 it raised."},
    {"adopt", (PyCFunction)call_adopt, METH_VARARGS,
     "adopt(answer, outcome): ends this lookup, not yet started, with another one's answer where it "
     "may (returns it), or returns None: it must ask the KV itself."},
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

PyType_Spec sessidpy_call_spec = {
    .name = "sessid._sessid.Call",
    .basicsize = sizeof(CallObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE
             | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = call_slots,
};
