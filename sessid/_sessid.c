/* The module sessid._sessid: its state, its exceptions and types, and the module-level functions
 * that use the default Store. */
#include "_call.h"
#include "_errors.h"
#include "_options.h"
#include "_state.h"
#include "_store.h"
#include "../csrc/table_testing.h"

#include <errno.h>

static sessidpy_state *module_state(PyObject *module)
{
    return PyModule_GetState(module);
}

/* The module's default Store, made on first use (borrowed reference), or NULL. */
static PyObject *default_store(sessidpy_state *state)
{
    if (state->default_store == NULL)
        state->default_store = PyObject_CallNoArgs((PyObject *)state->store_type);
    return state->default_store;
}

/* get or aget on the default store, held for the length of the call: a KV method may replace the
 * default store while the call runs. */
static PyObject *on_default_store(PyObject *module, PyObject *api_key, int required, int async)
{
    PyObject *store = default_store(module_state(module));
    if (store == NULL)
        return NULL;
    Py_INCREF(store);
    PyObject *result = async ? sessidpy_store_aget(store, api_key, required)
                             : sessidpy_store_get(store, api_key, required);
    Py_DECREF(store);
    return result;
}

static PyObject *module_get(PyObject *module, PyObject *api_key)
{
    return on_default_store(module, api_key, 0, 0);
}

static PyObject *module_get_required(PyObject *module, PyObject *api_key)
{
    return on_default_store(module, api_key, 1, 0);
}

static PyObject *module_aget(PyObject *module, PyObject *api_key)
{
    return on_default_store(module, api_key, 0, 1);
}

static PyObject *module_aget_required(PyObject *module, PyObject *api_key)
{
    return on_default_store(module, api_key, 1, 1);
}

/* forget or aforget on the default store, held for the length of the call as above: the Store's
 * own method, called by name. "(O)" keeps a tuple given as the key one argument. */
static PyObject *forget_on_default_store(PyObject *module, PyObject *api_key, const char *method)
{
    PyObject *store = default_store(module_state(module));
    if (store == NULL)
        return NULL;
    Py_INCREF(store);
    PyObject *result = PyObject_CallMethod(store, method, "(O)", api_key);
    Py_DECREF(store);
    return result;
}

static PyObject *module_forget(PyObject *module, PyObject *api_key)
{
    return forget_on_default_store(module, api_key, "forget");
}

static PyObject *module_aforget(PyObject *module, PyObject *api_key)
{
    return forget_on_default_store(module, api_key, "aforget");
}

static PyObject *module_default_store(PyObject *module, PyObject *unused)
{
    (void)unused;
    return Py_XNewRef(default_store(module_state(module)));
}

static PyObject *module_set_default_store(PyObject *module, PyObject *store)
{
    sessidpy_state *state = module_state(module);
    if (!Py_IS_TYPE(store, state->store_type)) {
        PyErr_Format(PyExc_TypeError, "set_default_store() takes a sessid.Store, not %.100s",
                     Py_TYPE(store)->tp_name);
        return NULL;
    }
    PyObject *previous = default_store(state);
    if (previous == NULL)
        return NULL;
    state->default_store = Py_NewRef(store);
    return previous;                    /* the module's reference passes to the caller */
}

static PyObject *module_remove_shared(PyObject *module, PyObject *shared)
{
    sessidpy_state *state = module_state(module);
    char *path = sessidpy_shared_path(shared, NULL);
    if (path == NULL)
        return NULL;
    sessid_shared_problem problem;
    int rc = sessid_shared_remove(path, &problem);
    PyObject *result = NULL;
    if (rc == SESSID_OK)
        result = Py_NewRef(Py_True);
    else if (problem.kind == SESSID_SHARED_SYSTEM && problem.errno_value == ENOENT)
        result = Py_NewRef(Py_False);
    else
        sessidpy_raise_shared_problem(state, path, &problem, 0, 0);
    PyMem_Free(path);
    return result;
}

static PyObject *module_shared_path(PyObject *module, PyObject *shared)
{
    (void)module;
    char *path = sessidpy_shared_path(shared, NULL);
    if (path == NULL)
        return NULL;
    PyObject *result = PyUnicode_DecodeFSDefault(path);
    PyMem_Free(path);
    return result;
}

static PyObject *module_shared_settings(PyObject *module, PyObject *shared)
{
    sessidpy_state *state = module_state(module);
    char *path = sessidpy_shared_path(shared, NULL);
    if (path == NULL)
        return NULL;
    sessid_shared_problem problem;
    double ttl;
    uint64_t max_entries;
    PyObject *result = NULL;
    if (sessid_shared_settings(path, &ttl, &max_entries, &problem) == SESSID_OK)
        result = Py_BuildValue("dK", ttl, (unsigned long long)max_entries);
    else
        sessidpy_raise_shared_problem(state, path, &problem, 0, 0);
    PyMem_Free(path);
    return result;
}

#ifdef SESSID_FAULT_INJECTION
static PyObject *module_kill_after(PyObject *module, PyObject *steps)
{
    (void)module;
    long n = PyLong_AsLong(steps);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    sessid_table_kill_after(n);
    Py_RETURN_NONE;
}
#endif

static PyMethodDef module_methods[] = {
    {"get", module_get, METH_O,
     "get($module, api_key, /)\n--\n\nThe session id of api_key from the default Store."},
    {"get_required", module_get_required, METH_O,
     "get_required($module, api_key, /)\n--\n\nget_required() on the default Store."},
    {"aget", module_aget, METH_O,
     "aget($module, api_key, /)\n--\n\naget() on the default Store (a coroutine)."},
    {"aget_required", module_aget_required, METH_O,
     "aget_required($module, api_key, /)\n--\n\naget_required() on the default Store (a coroutine)."},
    {"forget", module_forget, METH_O,
     "forget($module, api_key, /)\n--\n\nforget() on the default Store: the next get makes a new "
     "id."},
    {"aforget", module_aforget, METH_O,
     "aforget($module, api_key, /)\n--\n\naforget() on the default Store (a coroutine)."},
    {"remove_shared", module_remove_shared, METH_O,
     "remove_shared($module, shared, /)\n--\n\nRemoves the shared table of that name or path; "
     "returns False when there was none. Processes that have it open keep using it; every Store "
     "made afterwards gets a new table."},
#ifdef SESSID_FAULT_INJECTION
    {"_kill_after", module_kill_after, METH_O,
     "Debug builds, for tests: SIGKILL this process at the n-th step of a table mutation."},
#endif
    {"_shared_path", module_shared_path, METH_O,
     "For tools: the file of a shared table's name or path; ValueError for a bad one."},
    {"_shared_settings", module_shared_settings, METH_O,
     "For tools: (ttl, max_entries) of an existing shared table."},
    {"default_store", module_default_store, METH_NOARGS,
     "default_store($module)\n--\n\nThe Store behind sessid.get (in-process, TTL 3600 s)."},
    {"set_default_store", module_set_default_store, METH_O,
     "set_default_store($module, store, /)\n--\n\nMakes store the default; returns the previous one."},
    {NULL, NULL, 0, NULL},
};

static int intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot != NULL ? 0 : -1;
}

static PyObject *names_tuple(int count, const char *a, const char *b, const char *c)
{
    const char *names[] = {a, b, c};
    PyObject *tuple = PyTuple_New(count);
    for (int i = 0; tuple != NULL && i < count; i++) {
        PyObject *name = PyUnicode_InternFromString(names[i]);
        if (name == NULL)
            Py_CLEAR(tuple);
        else
            PyTuple_SET_ITEM(tuple, i, name);
    }
    return tuple;
}

static int add_exception(PyObject *module, PyObject **slot, const char *name, const char *doc,
                         PyObject *base)
{
    *slot = PyErr_NewExceptionWithDoc(name, doc, base, NULL);
    if (*slot == NULL)
        return -1;
    return PyModule_AddObjectRef(module, strrchr(name, '.') + 1, *slot);
}

static int module_exec(PyObject *module)
{
    sessidpy_state *st = module_state(module);
    st->store_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &sessidpy_store_spec, NULL);
    if (st->store_type == NULL || PyModule_AddType(module, st->store_type) < 0)
        return -1;
    st->call_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &sessidpy_call_spec, NULL);
    if (st->call_type == NULL)
        return -1;
    if (add_exception(module, &st->error, "sessid.Error", "Base class of sessid's errors.", NULL) < 0
        || add_exception(module, &st->kv_error, "sessid.KVError",
                         "The KV failed; __cause__ is the KV's own exception, where it raised one.",
                         st->error) < 0
        || add_exception(module, &st->lock_timeout, "sessid.LockTimeout",
                         "A required call waited lock_timeout for another process's hold of a "
                         "shared table's lock.", st->error) < 0)
        return -1;
    if (intern(&st->str_get, "get") < 0 || intern(&st->str_set, "set") < 0
        || intern(&st->str_expire, "expire") < 0 || intern(&st->str_getex, "getex") < 0
        || intern(&st->str_delete, "delete") < 0 || intern(&st->str_close, "close") < 0)
        return -1;
    st->kwnames_ex = names_tuple(1, "ex", NULL, NULL);
    st->kwnames_set = names_tuple(2, "nx", "ex", NULL);
    st->kwnames_set_get = names_tuple(3, "nx", "ex", "get");
    if (st->kwnames_ex == NULL || st->kwnames_set == NULL || st->kwnames_set_get == NULL)
        return -1;
    PyObject *ttl_max = PyFloat_FromDouble(SESSIDPY_TTL_MAX);
    int rc = ttl_max == NULL ? -1 : PyModule_AddObjectRef(module, "TTL_MAX", ttl_max);
    Py_XDECREF(ttl_max);
    if (rc < 0 || PyModule_AddIntConstant(module, "VALUE_MAX", SESSID_VALUE_MAX) < 0)
        return -1;
    return 0;
}

static int module_traverse(PyObject *module, visitproc visit, void *arg)
{
    sessidpy_state *st = module_state(module);
    Py_VISIT(st->store_type);
    Py_VISIT(st->call_type);
    Py_VISIT(st->error);
    Py_VISIT(st->kv_error);
    Py_VISIT(st->lock_timeout);
    Py_VISIT(st->log_lock);
    Py_VISIT(st->log_lost);
    Py_VISIT(st->default_store);
    Py_VISIT(st->drive);
    Py_VISIT(st->log_hidden);
    Py_VISIT(st->repair_script);
    Py_VISIT(st->sleep);
    Py_VISIT(st->log_repaired);
    return 0;
}

static int module_clear(PyObject *module)
{
    sessidpy_state *st = module_state(module);
    Py_CLEAR(st->default_store);
    Py_CLEAR(st->drive);
    Py_CLEAR(st->log_hidden);
    Py_CLEAR(st->store_type);
    Py_CLEAR(st->call_type);
    Py_CLEAR(st->error);
    Py_CLEAR(st->kv_error);
    Py_CLEAR(st->lock_timeout);
    Py_CLEAR(st->log_lock);
    Py_CLEAR(st->log_lost);
    Py_CLEAR(st->str_get);
    Py_CLEAR(st->str_set);
    Py_CLEAR(st->str_expire);
    Py_CLEAR(st->str_getex);
    Py_CLEAR(st->str_delete);
    Py_CLEAR(st->str_close);
    Py_CLEAR(st->kwnames_ex);
    Py_CLEAR(st->kwnames_set);
    Py_CLEAR(st->kwnames_set_get);
    Py_CLEAR(st->str_eval);
    Py_CLEAR(st->repair_script);
    Py_CLEAR(st->sleep);
    Py_CLEAR(st->log_repaired);
    return 0;
}

static void module_free(void *module)
{
    module_clear(module);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef sessid_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "sessid._sessid",
    .m_doc = "The C core of sessid: stable random session ids per API key, with a sliding TTL.",
    .m_size = sizeof(sessidpy_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__sessid(void)
{
    return PyModuleDef_Init(&sessid_module);
}
