/* A shared store's table and its name: opening the table with waits that release the GIL, and
 * following the name to the table now there once a tick. */
#include "_name.h"

#include "_errors.h"

static void *release_gil(void)
{
    return PyGILState_Check() ? PyEval_SaveThread() : NULL;
}

static void take_gil(void *token)
{
    if (token != NULL)
        PyEval_RestoreThread(token);
}

static const sessid_lock_hooks gil_hooks = {release_gil, take_gil};

int sessidpy_name_open(sessidpy_state *state, const sessidpy_options *o, int create,
                       sessid_table **out)
{
    sessid_shared_problem problem;
    double offset;
    int rc = sessid_clock_host_offset(&offset);
    if (rc != SESSID_OK) {
        PyErr_Format(state->error,
                     "shared table %s: %s, so this process cannot read the clock the other "
                     "processes of the host read", o->shared_path, sessid_strerror(rc));
        return -1;
    }
    Py_BEGIN_ALLOW_THREADS              /* it may wait for another process making the file */
    rc = sessid_table_open_shared(o->shared_path, o->ttl, o->max_entries, create, out, &problem);
    Py_END_ALLOW_THREADS
    if (rc == SESSID_OK) {
        sessid_table_set_lock_wait(*out, o->lock_timeout, &gil_hooks);
        return 0;
    }
    if (rc == SESSID_EFILE)
        sessidpy_raise_shared_problem(state, o->shared_path, &problem, o->ttl,
                                      o->max_entries);
    else
        sessidpy_raise_status(state, rc);
    return -1;
}

/* Between two checks of a name whose table could not be opened: raises sessid.Error. Returns -1. */
static int still_lost(sessidpy_state *state, const sessidpy_options *o)
{
    PyErr_Format(state->error,
                 "the table now at shared table %s's name could not be opened (see the sessid log)",
                 o->shared_path);
    return -1;
}

int sessidpy_name_check(sessidpy_state *state, const sessidpy_options *o, sessidpy_name *name,
                        sessid_table **table, double now)
{
    if (sessidpy_name_checked_this_tick(name, now))
        return name->lost ? still_lost(state, o) : 0;
    name->checked_at = now;
    if (!sessid_table_moved(*table, o->shared_path)) {
        name->lost = 0;
        return 0;
    }
    sessid_table **grown = PyMem_Realloc(name->left_behind,
                                         (name->left_behind_count + 1) * sizeof *grown);
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    name->left_behind = grown;
    sessid_table *moved_to;
    if (sessidpy_name_open(state, o, 1, &moved_to) < 0)
        return -1;
    name->left_behind[name->left_behind_count++] = *table;
    *table = moved_to;
    name->lost = 0;
    return 0;
}

int sessidpy_name_lost(sessidpy_state *state, const sessidpy_options *o, sessidpy_name *name,
                       int best_effort, int *without_table)
{
    if (!best_effort)
        return -1;
    if (!name->lost) {
        PyObject *error = sessidpy_take_exception();
        PyObject *log = sessidpy_load(&state->log_lost, "sessid._log", "lost_shared_table");
        PyObject *logged = log != NULL ? PyObject_CallOneArg(log, error) : NULL;
        Py_DECREF(error);
        if (logged == NULL)
            return -1;
        Py_DECREF(logged);
        name->lost = 1;
    } else {
        PyErr_Clear();
    }
    *without_table = !o->kv_mode;
    return 0;
}

void sessidpy_name_clear(sessidpy_name *name)
{
    for (size_t i = 0; i < name->left_behind_count; i++)
        sessid_table_free(name->left_behind[i]);
    PyMem_Free(name->left_behind);
    name->left_behind = NULL;
    name->left_behind_count = 0;
}
