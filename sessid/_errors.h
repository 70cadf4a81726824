/* Errors: the C core's statuses as Python exceptions, a KV failure as KVError, and an exception
 * taken out of the interpreter to be raised later. */
#ifndef SESSIDPY_ERRORS_H
#define SESSIDPY_ERRORS_H

#include "_state.h"

/* What went wrong in a KV run, as the Python backend recorded it (see _pykv.h). */
typedef struct sessidpy_kv_failure {
    PyObject *error;            /* strong: the exception a KV method raised, if any */
    PyObject *problem;          /* strong: a str describing a reply of the wrong kind, if any */
    const char *method;         /* the KV method of the last operation */
    int fatal;                  /* error must propagate as it is: a BaseException (not an
                                   Exception), or a TypeError for a client used the wrong way */
    int outage;                 /* error says the server is unreachable or failing: a connection
                                   error, a timeout, a transient state (LOADING, BUSY, ...) */
} sessidpy_kv_failure;

/* Raises the exception for a status that is not a KV failure (MemoryError, sessid.Error,
 * SystemError for a misused core) and returns NULL. */
PyObject *sessidpy_raise_status(sessidpy_state *state, int status);

/* Raises what a KV run that failed with status (a KV failure: sessid_status_is_kv_failure) calls
 * for: a fatal exception itself (taken out of failure), or KVError chained to the KV's exception,
 * its message naming the method and the KV key (a str). Returns NULL. */
PyObject *sessidpy_raise_kv_failure(sessidpy_state *state, sessidpy_kv_failure *failure,
                                    PyObject *kv_key, int status);

/* Logs, on the sessid logger at WARNING, a KV failure (as for sessidpy_raise_kv_failure) that a
 * best-effort lookup answered without the KV: the KVError it would have raised, chained to the KV's
 * exception, what it answered instead (answer) and the store's kv_backoff. Returns 0, or -1 when
 * logging itself failed. */
int sessidpy_log_hidden_kv_failure(sessidpy_state *state, sessidpy_kv_failure *failure,
                                   PyObject *kv_key, int status, const char *answer,
                                   double backoff);

/* Raises sessid.Error for a shared table's file that cannot be used: the file's path and what is
 * wrong with it (for a failed system call, chained to the OSError). ttl and max_entries are what
 * the caller asked for. Returns NULL. */
PyObject *sessidpy_raise_shared_problem(sessidpy_state *state, const char *path,
                                        const sessid_shared_problem *problem, double ttl,
                                        uint64_t max_entries);

/* Raises what a call on the table of a shared store at path failed with: LockTimeout for a lock
 * held too long by another process (SESSID_ETIMEDOUT, SESSID_EBUSY; lock_timeout as the store has
 * it), sessid.Error naming the file and the remedy for a lock beyond repair (SESSID_ELOCK) or a
 * table damaged beyond repair (SESSID_EDAMAGED), else as sessidpy_raise_status. Returns NULL. */
PyObject *sessidpy_raise_table_status(sessidpy_state *state, int status, const char *path,
                                      double lock_timeout);

/* Logs, on the sessid logger at WARNING, the LockTimeout a best-effort call answered without the
 * table (answer: what it answered instead) for the window that begins. Returns 0, or -1 when
 * logging itself failed. */
int sessidpy_log_lock_timeout(sessidpy_state *state, const char *path, double lock_timeout,
                              const char *answer);

/* Takes the exception that is set (there must be one) and returns it, normalized, with its
 * traceback; the error indicator is left clear. */
PyObject *sessidpy_take_exception(void);

/* Sets exc (stolen) as the exception being raised. */
void sessidpy_restore_exception(PyObject *exc);

#endif
