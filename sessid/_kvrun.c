/* One KV lookup, driven by one loop for get and aget: the only difference between the two is
 * whether an awaitable returned by a KV method is handed out to be awaited or refused. */
#include "_kvrun.h"

#include "_errors.h"
#include "_ids.h"

int sessidpy_kvrun_begin(sessidpy_kvrun *r, const sessidpy_kvconf *conf, PyObject *kv,
                         const uint8_t digest[SESSID_DIGEST_LEN], double now, int required)
{
    memset(r, 0, sizeof *r);
    r->conf = conf;
    memcpy(r->digest, digest, SESSID_DIGEST_LEN);
    r->now = now;
    r->required = required;
    PyObject *name = sessidpy_kv_key(conf->prefix, digest);
    if (name == NULL)
        return -1;
    Py_ssize_t key_len;
    const char *key = PyUnicode_AsUTF8AndSize(name, &key_len);
    if (key == NULL) {
        Py_DECREF(name);
        return -1;
    }
    sessidpy_pykv_init(&r->backend, conf->state, kv, name);
    Py_DECREF(name);                    /* the backend holds it, and key points into it */
    int rc = sessid_proto_begin(&r->run, &conf->proto, digest, key, (size_t)key_len, now);
    if (rc != SESSID_OK) {
        sessidpy_raise_status(conf->state, rc);
        return -1;
    }
    return 0;
}

PyObject *sessidpy_kvrun_advance(sessidpy_kvrun *r, int can_await)
{
    const sessid_op *op;
    while ((op = sessid_proto_next(&r->run)) != NULL) {
        int status;
        sessid_kv_value value = {0};
        PyObject *reply = sessidpy_pykv_call(&r->backend, op, &status);
        if (reply != NULL) {
            if (can_await && sessidpy_is_awaitable(reply))
                return reply;
            status = sessidpy_pykv_read(&r->backend, op, reply, &value);
            Py_DECREF(reply);
        }
        sessid_proto_feed(&r->run, status, &value);
    }
    return NULL;
}

/* The operation an awaited reply answers, or NULL with RuntimeError. */
static const sessid_op *awaited(const sessidpy_kvrun *r)
{
    const sessid_op *op = sessid_proto_next(&r->run);
    if (op == NULL)
        PyErr_SetString(PyExc_RuntimeError, "this lookup is not waiting for a reply");
    return op;
}

int sessidpy_kvrun_reply(sessidpy_kvrun *r, PyObject *reply)
{
    const sessid_op *op = awaited(r);
    if (op == NULL)
        return -1;
    sessid_kv_value value = {0};
    int status = sessidpy_pykv_read(&r->backend, op, reply, &value);
    sessid_proto_feed(&r->run, status, &value);
    return 0;
}

int sessidpy_kvrun_raised(sessidpy_kvrun *r, PyObject *exc)
{
    const sessid_op *op = awaited(r);
    if (op == NULL)
        return -1;
    sessid_proto_feed(&r->run, sessidpy_pykv_fail(&r->backend, op, exc), NULL);
    return 0;
}

int sessidpy_kvrun_running(const sessidpy_kvrun *r)
{
    return r->conf != NULL && sessid_proto_next(&r->run) != NULL;
}

PyObject *sessidpy_kvrun_finish(sessidpy_kvrun *r)
{
    const sessidpy_kvconf *conf = r->conf;
    const char *text;
    size_t len;
    int rc = sessid_proto_result(&r->run, &text, &len);
    assert(!PyErr_Occurred());
    if (rc == SESSID_OK)
        return sessidpy_ascii_str(text, len);
    if (!sessid_status_is_kv_failure(rc))
        return sessidpy_raise_status(conf->state, rc);
    if (r->backend.failure.fatal)
        return sessidpy_raise_kv_failure(conf->state, &r->backend.failure, r->backend.name, rc);
    sessid_table_count(conf->proto.table, SESSID_STAT_KV_ERRORS);
    if (r->required)
        return sessidpy_raise_kv_failure(conf->state, &r->backend.failure, r->backend.name, rc);
    if (conf->fallback_local)
        return sessidpy_local_id(conf->state, conf->proto.table, r->digest, r->now);
    return sessidpy_fresh_id(conf->state);
}

void sessidpy_kvrun_clear(sessidpy_kvrun *r)
{
    sessidpy_pykv_clear(&r->backend);
}

int sessidpy_kvrun_traverse(sessidpy_kvrun *r, visitproc visit, void *arg)
{
    return sessidpy_pykv_traverse(&r->backend, visit, arg);
}
