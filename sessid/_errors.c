/* Errors: the one place where a status of the C core, or a failure of the KV, becomes a Python
 * exception; and the stash that keeps a KV method's exception while the core goes on. */
#include "_errors.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
            "the KV key %R holds something that is not a session id (a UUID), and it could not be "
            "replaced: it held damage again after kv.%s()", kv_key, f->method);
    }
    return PyUnicode_FromString(sessid_strerror(status));
}

/* Raises type(message) chained to cause (both stolen; cause may be NULL, message NULL when making
 * it failed). Returns NULL. */
static PyObject *raise_chained(PyObject *type, PyObject *message, PyObject *cause)
{
    PyObject *error = message != NULL ? PyObject_CallOneArg(type, message) : NULL;
    Py_XDECREF(message);
    if (error != NULL) {
        if (cause != NULL) {
            PyException_SetCause(error, Py_NewRef(cause));
            PyException_SetContext(error, Py_NewRef(cause));
        }
        PyErr_SetObject((PyObject *)Py_TYPE(error), error);
        Py_DECREF(error);
    }
    Py_XDECREF(cause);
    return NULL;
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
    return raise_chained(state->kv_error, failure_message(failure, kv_key, status),
                         Py_XNewRef(failure->error));
}

/* Hands the exception that is set (there must be one) to log, a function of sessid._log, with answer
 * and seconds. Returns 0, or -1 with log's own exception. */
static int log_pending(PyObject *log, const char *answer, double seconds)
{
    PyObject *error = sessidpy_take_exception();
    PyObject *logged = PyObject_CallFunction(log, "Osd", error, answer, seconds);
    Py_DECREF(error);
    Py_XDECREF(logged);
    return logged != NULL ? 0 : -1;
}

int sessidpy_log_hidden_kv_failure(sessidpy_state *state, sessidpy_kv_failure *failure,
                                   PyObject *kv_key, int status, const char *answer,
                                   double backoff)
{
    assert(!failure->fatal);
    PyObject *log = sessidpy_load(&state->log_hidden, "sessid._log", "hidden_kv_failure");
    if (log == NULL)
        return -1;
    sessidpy_raise_kv_failure(state, failure, kv_key, status);
    return log_pending(log, answer, backoff);
}

/* "1000 (alice)", or "1000" for a uid with no user name: who a user can ask, or run as. */
static void describe_user(unsigned long uid, char *out, size_t size)
{
    struct passwd entry, *found = NULL;
    char names[2048];
    if (getpwuid_r((uid_t)uid, &entry, names, sizeof names, &found) == 0 && found != NULL)
        snprintf(out, size, "%lu (%s)", uid, found->pw_name);
    else
        snprintf(out, size, "%lu", uid);
}

/* For open() refused with EACCES: whose the file is, read from the path itself (the open failed, so
 * there is no descriptor to ask), so that the message names someone a user can act on. NULL when the
 * path cannot be read either (a directory this user cannot search), and the system's words stay
 * alone. */
static PyObject *access_denied_message(const char *path, const sessid_shared_problem *p)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return NULL;
    char owner[300], me[300];
    describe_user((unsigned long)st.st_uid, owner, sizeof owner);
    if (st.st_uid != geteuid()) {
        describe_user((unsigned long)geteuid(), me, sizeof me);
        return PyUnicode_FromFormat("shared table %s belongs to user %s, and this process's user %s "
                                    "cannot open it (%s() failed: %s): run as user %s, or use "
                                    "another name", path, owner, me, p->call,
                                    strerror(p->errno_value), owner);
    }
    char mode[24];                      /* PyUnicode_FromFormat has no octal conversion */
    snprintf(mode, sizeof mode, "%04lo", (unsigned long)(st.st_mode & 07777));
    return PyUnicode_FromFormat("shared table %s: %s() failed: %s (the file belongs to this "
                                "process's user %s, with mode %s)", path, p->call,
                                strerror(p->errno_value), owner, mode);
}

static PyObject *shared_problem_message(const char *path, const sessid_shared_problem *p,
                                        double ttl, uint64_t max_entries)
{
    switch (p->kind) {
    case SESSID_SHARED_SYSTEM:
        if (p->errno_value == EACCES && strcmp(p->call, "open") == 0) {
            PyObject *message = access_denied_message(path, p);
            if (message != NULL || PyErr_Occurred())
                return message;
        }
        return PyUnicode_FromFormat("shared table %s: %s() failed: %s%s", path, p->call,
                                    strerror(p->errno_value),
                                    p->errno_value == ENOSPC
                                        ? " (its file system has no room for the whole table; "
                                          "Docker's /dev/shm holds 64 MB unless --shm-size says "
                                          "more)"
                                        : "");
    case SESSID_SHARED_SETTINGS: {
        PyObject *found = PyFloat_FromDouble(p->found_ttl), *asked = PyFloat_FromDouble(ttl);
        PyObject *message = NULL;
        if (found != NULL && asked != NULL)
            message = PyUnicode_FromFormat(
                "shared table %s was made with ttl=%R and max_entries=%llu, not ttl=%R and "
                "max_entries=%llu: every process must use the same settings (to change them, "
                "remove the table with sessid.remove_shared)", path, found,
                (unsigned long long)p->found_max_entries, asked, (unsigned long long)max_entries);
        Py_XDECREF(found);
        Py_XDECREF(asked);
        return message;
    }
    case SESSID_SHARED_LAYOUT_OTHER:
        return PyUnicode_FromFormat(
            "shared table %s has layout %u (or was built with another struct layout), and this "
            "sessid reads layout %d: remove it with sessid.remove_shared, or use another name",
            path, (unsigned)p->found_layout, SESSID_SHARED_LAYOUT);
    case SESSID_SHARED_NOT_A_TABLE:
        return PyUnicode_FromFormat("%s is not a sessid shared table (%s), and sessid leaves it "
                                    "as it is: remove it, or use another name", path,
                                    p->what != NULL ? p->what : "another file");
    case SESSID_SHARED_SYMLINK:
        return PyUnicode_FromFormat("shared table %s is a symbolic link; sessid opens only a "
                                    "regular file", path);
    case SESSID_SHARED_OWNER: {
        char owner[300], me[300];
        describe_user(p->found_uid, owner, sizeof owner);
        describe_user((unsigned long)geteuid(), me, sizeof me);
        return PyUnicode_FromFormat("shared table %s belongs to user %s, not to this process's "
                                    "user %s: run as user %s, or use another name", path, owner,
                                    me, owner);
    }
    case SESSID_SHARED_MODE: {
        char mode[24];                  /* PyUnicode_FromFormat has no octal conversion */
        snprintf(mode, sizeof mode, "0%lo", p->found_mode);
        return PyUnicode_FromFormat("shared table %s can be written by group or others (mode "
                                    "%s); sessid makes and opens it owner-only (0600)", path, mode);
    }
    default:
        return PyUnicode_FromFormat("shared table %s cannot be used", path);
    }
}

PyObject *sessidpy_raise_shared_problem(sessidpy_state *state, const char *path,
                                        const sessid_shared_problem *problem, double ttl,
                                        uint64_t max_entries)
{
    PyObject *cause = NULL;
    if (problem->kind == SESSID_SHARED_SYSTEM) {
        cause = PyObject_CallFunction(PyExc_OSError, "is", problem->errno_value,
                                      strerror(problem->errno_value));
        if (cause == NULL)
            return NULL;
    }
    return raise_chained(state->error, shared_problem_message(path, problem, ttl, max_entries),
                         cause);
}

PyObject *sessidpy_raise_table_status(sessidpy_state *state, int status, const char *path,
                                      double lock_timeout)
{
    if (path == NULL)
        return sessidpy_raise_status(state, status);
    PyObject *seconds = PyFloat_FromDouble(lock_timeout);
    if (seconds == NULL)
        return NULL;
    switch (status) {
    case SESSID_ETIMEDOUT:
    case SESSID_EBUSY:
        PyErr_Format(state->lock_timeout,
                     "another process held the lock of shared table %s for longer than "
                     "lock_timeout (%R s): it may be stopped (SIGSTOP, a debugger, a frozen "
                     "cgroup)", path, seconds);
        break;
    case SESSID_ELOCK:
        PyErr_Format(state->error,
                     "the lock of shared table %s is beyond repair (a program other than sessid "
                     "released it unrepaired): remove the table (sessid.remove_shared, or python "
                     "-m sessid remove) and restart the processes that use it", path);
        break;
    case SESSID_EDAMAGED:
        PyErr_Format(state->error,
                     "shared table %s is damaged beyond repair: remove it (sessid.remove_shared, "
                     "or python -m sessid remove) and restart the processes that use it", path);
        break;
    default:
        sessidpy_raise_status(state, status);
    }
    Py_DECREF(seconds);
    return NULL;
}

int sessidpy_log_lock_timeout(sessidpy_state *state, const char *path, double lock_timeout,
                              const char *answer)
{
    PyObject *log = sessidpy_load(&state->log_lock, "sessid._log", "hidden_lock_timeout");
    if (log == NULL)
        return -1;
    sessidpy_raise_table_status(state, SESSID_ETIMEDOUT, path, lock_timeout);
    return log_pending(log, answer, lock_timeout);
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
