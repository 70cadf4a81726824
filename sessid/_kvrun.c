/* One KV lookup, driven by one loop for get and aget: the only difference between the two is
 * whether an awaitable returned by a KV method is handed out to be awaited or refused. Around it,
 * the backoff: best-effort lookups leave a KV that just failed alone for a while. */
#include "_kvrun.h"

#include <math.h>

#include "_errors.h"
#include "_ids.h"

/* Whether best-effort lookups leave the KV alone at now: it failed less than backoff ago. */
static int in_backoff(const sessidpy_kvconf *conf, double now)
{
    return conf->backoff > 0 && now >= conf->failing_since
           && now - conf->failing_since < conf->backoff;
}

int sessidpy_kvrun_begin(sessidpy_kvrun *r, sessidpy_kvconf *conf, PyObject *kv,
                         const uint8_t digest[SESSID_DIGEST_LEN], double now,
                         sessidpy_kvrun_kind kind)
{
    memset(r, 0, sizeof *r);
    r->conf = conf;
    memcpy(r->digest, digest, SESSID_DIGEST_LEN);
    r->now = now;
    r->kind = kind;
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
    int rc = kind == SESSIDPY_FORGET
                 ? sessid_proto_begin_forget(&r->run, &conf->proto, digest, key, (size_t)key_len, now)
                 : sessid_proto_begin(&r->run, &conf->proto, digest, key, (size_t)key_len, now);
    if (rc != SESSID_OK) {
        sessidpy_raise_status(conf->state, rc);
        return -1;
    }
    if (kind == SESSIDPY_BEST_EFFORT && sessid_proto_next(&r->run) != NULL
        && !isnan(conf->failing_since)) {
        r->skipped = in_backoff(conf, now);
        if (!r->skipped)                /* this call probes the KV; the others wait a window for it */
            conf->failing_since = now;
    }
    return 0;
}

PyObject *sessidpy_kvrun_advance(sessidpy_kvrun *r, int can_await)
{
    const sessid_op *op;
    while (!r->skipped && (op = sessid_proto_next(&r->run)) != NULL) {
        int status;
        sessid_kv_value value = {0};
        r->asked = 1;
        PyObject *reply = sessidpy_pykv_call(&r->backend, op, &status);
        if (reply != NULL) {
            if (can_await && sessidpy_is_awaitable(reply))
                return reply;
            status = sessidpy_pykv_read(&r->backend, op, reply, 0, &value);
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
    int status = sessidpy_pykv_read(&r->backend, op, reply, 1, &value);
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
    return r->conf != NULL && !r->skipped && sessid_proto_next(&r->run) != NULL;
}

/* What a best-effort lookup answers without the KV. */
static PyObject *fallback_id(sessidpy_kvrun *r)
{
    const sessidpy_kvconf *conf = r->conf;
    if (conf->fallback_local)
        return sessidpy_local_id(conf->state, conf->proto.table, r->digest, r->now, 0, NULL, 0);
    return sessidpy_fresh_id(conf->state);
}

/* Logs a failure that a best-effort lookup hides, unless one was logged less than the window, and
 * less than a second, before now. */
static int log_hidden(sessidpy_kvrun *r, int status, double now)
{
    sessidpy_kvconf *conf = r->conf;
    double quiet = conf->backoff > 1.0 ? conf->backoff : 1.0;
    if (now >= conf->logged_at && now - conf->logged_at < quiet)
        return 0;
    conf->logged_at = now;
    const char *answer = conf->fallback_local ? "the local table's id" : "a random id";
    return sessidpy_log_hidden_kv_failure(conf->state, &r->backend.failure, r->backend.name, status,
                                          answer, conf->backoff);
}

PyObject *sessidpy_kvrun_finish(sessidpy_kvrun *r)
{
    sessidpy_kvconf *conf = r->conf;
    assert(!PyErr_Occurred());
    if (r->skipped) {
        sessid_table_count(conf->proto.table, SESSID_STAT_KV_SKIPPED);
        return fallback_id(r);
    }
    const char *text;
    size_t len;
    int rc = sessid_proto_result(&r->run, &text, &len);
    if (rc == SESSID_OK) {
        if (r->asked)
            conf->failing_since = NAN;
        return r->kind == SESSIDPY_FORGET ? Py_NewRef(Py_None) : sessidpy_ascii_str(text, len);
    }
    if (!sessid_status_is_kv_failure(rc))
        return sessidpy_raise_status(conf->state, rc);
    if (r->backend.failure.fatal)
        return sessidpy_raise_kv_failure(conf->state, &r->backend.failure, r->backend.name, rc);
    sessid_table_count(conf->proto.table, SESSID_STAT_KV_ERRORS);
    double now;                         /* after the failure: a KV may take long to fail */
    if (sessidpy_clock_read(conf->clock, &now) < 0)
        return NULL;
    if (rc == SESSID_EKV && r->kind != SESSIDPY_FORGET)     /* a refused DEL is no outage */
        conf->failing_since = now;
    if (r->kind != SESSIDPY_BEST_EFFORT)
        return sessidpy_raise_kv_failure(conf->state, &r->backend.failure, r->backend.name, rc);
    if (log_hidden(r, rc, now) < 0)
        return NULL;
    return fallback_id(r);
}

void sessidpy_kvrun_clear(sessidpy_kvrun *r)
{
    sessidpy_pykv_clear(&r->backend);
}

int sessidpy_kvrun_traverse(sessidpy_kvrun *r, visitproc visit, void *arg)
{
    return sessidpy_pykv_traverse(&r->backend, visit, arg);
}
