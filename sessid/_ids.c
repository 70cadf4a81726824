/* Session ids as Python str: each is made in place in a new compact ASCII str, the one object a
 * local hit allocates. */
#include "_ids.h"

#include "_errors.h"

PyObject *sessidpy_id_str(const uint8_t id[SESSID_ID_LEN])
{
    PyObject *text = PyUnicode_New(SESSID_ID_TEXT_LEN, 127);
    if (text != NULL)
        sessid_id_format(id, PyUnicode_DATA(text));     /* 36 characters and the NUL */
    return text;
}

PyObject *sessidpy_fresh_id(sessidpy_state *state)
{
    uint8_t id[SESSID_ID_LEN];
    int rc = sessid_id_new(id);
    return rc == SESSID_OK ? sessidpy_id_str(id) : sessidpy_raise_status(state, rc);
}

PyObject *sessidpy_ascii_str(const char *text, size_t len)
{
    PyObject *str = PyUnicode_New((Py_ssize_t)len, 127);
    if (str != NULL)
        memcpy(PyUnicode_DATA(str), text, len);
    return str;
}

PyObject *sessidpy_local_id(sessidpy_state *state, sessid_table *table,
                            const uint8_t digest[SESSID_DIGEST_LEN], double now, int required,
                            const char *shared_path, double lock_timeout)
{
    uint8_t id[SESSID_ID_LEN];
    int rc = sessid_table_get_or_create(table, digest, now, id, NULL,
                                        required ? SESSID_LOCK_REQUIRED : SESSID_LOCK_BEST_EFFORT);
    if (rc == SESSID_OK)
        return sessidpy_id_str(id);
    if (!required && sessid_status_is_lock_wait(rc)) {
        if (rc == SESSID_ETIMEDOUT && shared_path != NULL
            && sessidpy_log_lock_timeout(state, shared_path, lock_timeout, "a random id") < 0)
            return NULL;
        return sessidpy_fresh_id(state);
    }
    return sessidpy_raise_table_status(state, rc, shared_path, lock_timeout);
}
