/* One KV lookup, driven by one loop for get and aget: the only difference between the two is
 * whether an awaitable returned by a KV method is handed out to be awaited or refused. Around it,
 * the backoff: best-effort lookups leave a KV that just failed alone for a while. */
#include "_kvrun.h"

#include <unistd.h>

#include <math.h>
#include <time.h>

#include "_errors.h"
#include "_ids.h"

/* Whether best-effort lookups leave the KV alone at now: it failed less than backoff ago (or after
 * now: the failure became known after this lookup read the clock). */
static int in_backoff(const sessidpy_kvconf *conf, double now)
{
    return conf->backoff > 0 && (now < conf->failing_since || now - conf->failing_since < conf->backoff);
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
    r->outcome = SESSIDPY_RAISED;
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
    return 0;
}

/* Decides, at a best-effort lookup's first operation, whether it skips the KV or probes it. */
static void decide(sessidpy_kvrun *r)
{
    sessidpy_kvconf *conf = r->conf;
    r->decided = 1;
    if (r->kind != SESSIDPY_BEST_EFFORT || conf->backoff <= 0)
        return;
    if (conf->probing) {
        r->skipped = 1;
        return;
    }
    if (isnan(conf->failing_since))
        return;
    r->skipped = in_backoff(conf, r->now);
    if (!r->skipped) {                  /* this call probes the KV; the others skip it meanwhile */
        conf->probing = 1;
        r->probe = 1;
    }
}

static void end_probe(sessidpy_kvrun *r)
{
    if (r->probe) {
        r->conf->probing = 0;
        r->probe = 0;
    }
}

static double monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* After a full pool: the seconds to wait before the operation is performed again, or 0 when the
 * wait is over (the failure stands). */
static double pool_wait(sessidpy_kvrun *r)
{
    double now = monotonic();
    if (r->pool_delay == 0) {
        r->pool_limit = now + SESSIDPY_POOL_LIMIT;
        r->pool_delay = 0.0005;
    }
    if (r->pool_delay == 0.0005 || r->pool_seen != r->conf->finished) {
        r->pool_seen = r->conf->finished;   /* the pool moves: wait on */
        r->pool_deadline = now + SESSIDPY_POOL_WAIT;
        if (r->pool_deadline > r->pool_limit)
            r->pool_deadline = r->pool_limit;
    }
    if (now >= r->pool_deadline)
        return 0;
    double delay = r->pool_delay;
    if (delay > r->pool_deadline - now)
        delay = r->pool_deadline - now;
    r->pool_delay = r->pool_delay * 2 < 0.02 ? r->pool_delay * 2 : 0.02;
    return delay;
}

/* An awaitable of asyncio.sleep(seconds), or NULL with the exception set. */
static PyObject *async_sleep(sessidpy_kvrun *r, double seconds)
{
    PyObject *sleep = sessidpy_load(&r->conf->state->sleep, "asyncio", "sleep");
    if (sleep == NULL)
        return NULL;
    PyObject *delay = PyFloat_FromDouble(seconds);
    if (delay == NULL)
        return NULL;
    PyObject *awaitable = PyObject_CallOneArg(sleep, delay);
    Py_DECREF(delay);
    return awaitable;
}

/* Feeds the run the outcome of an operation that raised with status: a full pool is waited out
 * here (sync), or handed out as a sleep to await (*wait, with can_await), and the operation is
 * then performed again; anything else is fed to the run. */
static void settle(sessidpy_kvrun *r, int status, int can_await, PyObject **wait)
{
    while (status == SESSIDPY_POOL_FULL) {
        double delay = pool_wait(r);
        if (delay <= 0) {
            status = SESSID_EKV;
            break;
        }
        if (can_await) {
            *wait = async_sleep(r, delay);
            if (*wait != NULL) {
                r->sleeping = 1;
                return;
            }
            PyObject *exc = sessidpy_take_exception();
            Py_XSETREF(r->backend.failure.error, exc);
            r->backend.failure.fatal = !PyErr_GivenExceptionMatches(exc, PyExc_Exception);
            status = SESSID_EKV;
            break;
        }
        Py_BEGIN_ALLOW_THREADS
        struct timespec ts = {(time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9)};
        nanosleep(&ts, NULL);
        Py_END_ALLOW_THREADS
        return;                         /* performed again by the caller's loop */
    }
    sessid_proto_feed(&r->run, status, NULL);
}

PyObject *sessidpy_kvrun_advance(sessidpy_kvrun *r, int can_await)
{
    const sessid_op *op;
    if (!r->decided && sessid_proto_next(&r->run) != NULL)
        decide(r);
    if (r->pool_full) {
        PyObject *wait = NULL;
        r->pool_full = 0;
        settle(r, SESSIDPY_POOL_FULL, can_await, &wait);
        if (wait != NULL)
            return wait;
    }
    while (!r->skipped && (op = sessid_proto_next(&r->run)) != NULL) {
        int status;
        sessid_kv_value value = {0};
        r->asked = 1;
        PyObject *reply = sessidpy_pykv_call(&r->backend, op, &status);
        if (reply == NULL) {
            PyObject *wait = NULL;
            settle(r, status, can_await, &wait);
            if (wait != NULL)
                return wait;
            continue;
        }
        if (can_await && sessidpy_is_awaitable(reply))
            return reply;
        status = sessidpy_pykv_read(&r->backend, op, reply, 0, &value);
        Py_DECREF(reply);
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
    if (r->sleeping) {                  /* waited for a connection: the next advance tries again */
        r->sleeping = 0;
        return 0;
    }
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
    if (r->sleeping) {                  /* the wait itself failed */
        r->sleeping = 0;
        Py_XSETREF(r->backend.failure.error, Py_NewRef(exc));
        r->backend.failure.outage = 0;
        sessid_proto_feed(&r->run, SESSID_EKV, NULL);
        return 0;
    }
    int status = sessidpy_pykv_fail(&r->backend, op, exc);
    if (status == SESSIDPY_POOL_FULL) {
        r->pool_full = 1;               /* the next advance waits, then tries again */
        return 0;
    }
    sessid_proto_feed(&r->run, status, NULL);
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

/* Logs that the run replaced damage under its KV key (the key only, never the API key). */
static int log_repair(sessidpy_kvrun *r)
{
    PyObject *log = sessidpy_load(&r->conf->state->log_repaired, "sessid._log", "repaired_damage");
    if (log == NULL)
        return -1;
    PyObject *logged = PyObject_CallOneArg(log, r->backend.name);
    Py_XDECREF(logged);
    return logged != NULL ? 0 : -1;
}

PyObject *sessidpy_kvrun_finish(sessidpy_kvrun *r)
{
    sessidpy_kvconf *conf = r->conf;
    assert(!PyErr_Occurred());
    end_probe(r);
    conf->finished++;
    r->outcome = SESSIDPY_RAISED;
    if (r->skipped) {
        sessid_table_count(conf->proto.table, SESSID_STAT_KV_SKIPPED);
        PyObject *id = fallback_id(r);
        if (id != NULL)
            r->outcome = SESSIDPY_FELL_BACK;
        return id;
    }
    const char *text;
    size_t len;
    int rc = sessid_proto_result(&r->run, &text, &len);
    if (rc == SESSID_OK) {
        if (r->backend.answered)
            conf->failing_since = NAN;
        if (sessid_proto_repaired(&r->run) && log_repair(r) < 0)
            return NULL;
        if (r->kind == SESSIDPY_FORGET)
            return Py_NewRef(Py_None);
        PyObject *id = sessidpy_ascii_str(text, len);
        if (id != NULL)
            r->outcome = SESSIDPY_ANSWERED;
        return id;
    }
    if (!sessid_status_is_kv_failure(rc))
        return sessidpy_raise_status(conf->state, rc);
    if (r->backend.failure.fatal)
        return sessidpy_raise_kv_failure(conf->state, &r->backend.failure, r->backend.name, rc);
    sessid_table_count(conf->proto.table, SESSID_STAT_KV_ERRORS);
    double now;                         /* after the failure: a KV may take long to fail */
    if (sessidpy_clock_read(conf->clock, &now) < 0)
        return NULL;
    if (r->backend.failure.outage)
        conf->failing_since = now;
    else if (r->backend.answered)
        conf->failing_since = NAN;
    if (r->kind != SESSIDPY_BEST_EFFORT)
        return sessidpy_raise_kv_failure(conf->state, &r->backend.failure, r->backend.name, rc);
    if (log_hidden(r, rc, now) < 0)
        return NULL;
    PyObject *id = fallback_id(r);
    if (id != NULL)
        r->outcome = SESSIDPY_FELL_BACK;
    return id;
}

PyObject *sessidpy_kvrun_adopt(sessidpy_kvrun *r, PyObject *answer, sessidpy_outcome outcome)
{
    int stat;
    if (answer == NULL || r->kind == SESSIDPY_FORGET)
        return NULL;
    if (outcome == SESSIDPY_ANSWERED)
        stat = SESSID_STAT_HITS;
    else if (outcome == SESSIDPY_FELL_BACK && r->kind == SESSIDPY_BEST_EFFORT)
        stat = SESSID_STAT_KV_SKIPPED;
    else
        return NULL;
    sessid_table_count(r->conf->proto.table, stat);
    r->decided = r->skipped = 1;        /* over: nothing more to perform */
    r->outcome = outcome;
    return Py_NewRef(answer);
}

void sessidpy_kvrun_clear(sessidpy_kvrun *r)
{
    if (r->conf != NULL)
        end_probe(r);                   /* an abandoned aget */
    sessidpy_pykv_clear(&r->backend);
}

int sessidpy_kvrun_traverse(sessidpy_kvrun *r, visitproc visit, void *arg)
{
    return sessidpy_pykv_traverse(&r->backend, visit, arg);
}

/* ---- lookups of one key in flight at once ---- */

/* One synchronous lookup in flight; the lookups of its key that come meanwhile wait on done, which
 * its leader holds until it has an answer. */
typedef struct sessidpy_flight {
    struct sessidpy_flight *next;
    uint8_t digest[SESSID_DIGEST_LEN];
    unsigned long thread;               /* the leader's */
    long pid;                           /* the leader's process: a child of a fork skips it */
    PyThread_type_lock done;
    int refs;                           /* the leader, until it lands, and each waiting lookup */
    sessidpy_outcome outcome;
    PyObject *answer;                   /* strong, once landed; NULL when it raised */
} sessidpy_flight;

static sessidpy_flight *flight_find(sessidpy_kvconf *conf, const uint8_t *digest)
{
    for (sessidpy_flight *f = conf->flights; f != NULL; f = f->next)
        if (memcmp(f->digest, digest, SESSID_DIGEST_LEN) == 0 && f->pid == (long)getpid())
            return f;                   /* a flight of the parent never lands in a child */
    return NULL;
}

static void flight_release(sessidpy_flight *f)
{
    if (--f->refs > 0)
        return;
    Py_XDECREF(f->answer);
    PyThread_free_lock(f->done);
    PyMem_Free(f);
}

/* A new flight for digest, led by this thread; NULL when none could be made (the lookup then goes
 * alone). */
static sessidpy_flight *flight_take_off(sessidpy_kvconf *conf, const uint8_t *digest)
{
    sessidpy_flight *f = PyMem_Malloc(sizeof *f);
    if (f == NULL)
        return NULL;
    f->done = PyThread_allocate_lock();
    if (f->done == NULL) {
        PyMem_Free(f);
        return NULL;
    }
    PyThread_acquire_lock(f->done, WAIT_LOCK);
    memcpy(f->digest, digest, SESSID_DIGEST_LEN);
    f->thread = PyThread_get_thread_ident();
    f->pid = (long)getpid();
    f->refs = 1;
    f->outcome = SESSIDPY_RAISED;
    f->answer = NULL;
    f->next = conf->flights;
    conf->flights = f;
    return f;
}

static void flight_land(sessidpy_kvconf *conf, sessidpy_flight *f, PyObject *answer,
                        sessidpy_outcome outcome)
{
    for (sessidpy_flight **p = &conf->flights; *p != NULL; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            break;
        }
    f->answer = Py_XNewRef(answer);
    f->outcome = answer != NULL ? outcome : SESSIDPY_RAISED;
    PyThread_release_lock(f->done);
    flight_release(f);
}

/* Waits, without the GIL, until f lands. */
static void flight_wait(sessidpy_flight *f)
{
    f->refs++;
    Py_BEGIN_ALLOW_THREADS
    PyThread_acquire_lock(f->done, WAIT_LOCK);
    PyThread_release_lock(f->done);
    Py_END_ALLOW_THREADS
}

PyObject *sessidpy_kvrun_sync(sessidpy_kvconf *conf, PyObject *kv,
                              const uint8_t digest[SESSID_DIGEST_LEN], double now,
                              sessidpy_kvrun_kind kind)
{
    sessidpy_kvrun run;
    sessidpy_flight *led = NULL;
    PyObject *result = NULL;
    if (sessidpy_kvrun_begin(&run, conf, kv, digest, now, kind) < 0)
        goto done;
    while (kind != SESSIDPY_FORGET && sessidpy_kvrun_running(&run)) {
        sessidpy_flight *f = flight_find(conf, digest);
        if (f == NULL) {
            led = flight_take_off(conf, digest);
            break;
        }
        if (f->thread == PyThread_get_thread_ident())
            break;                      /* a KV method of this very lookup calls back: go alone */
        flight_wait(f);
        result = sessidpy_kvrun_adopt(&run, f->answer, f->outcome);
        flight_release(f);
        if (result != NULL)
            goto done;
    }
    sessidpy_kvrun_advance(&run, 0);
    result = sessidpy_kvrun_finish(&run);
    if (led != NULL)
        flight_land(conf, led, result, run.outcome);
done:
    sessidpy_kvrun_clear(&run);
    return result;
}

PyObject *sessidpy_kvrun_flight_key(sessidpy_kvrun *r)
{
    if (r->kind == SESSIDPY_FORGET || !sessidpy_kvrun_running(r))
        Py_RETURN_NONE;
    if (r->conf->aflights == NULL && (r->conf->aflights = PyDict_New()) == NULL)
        return NULL;
    return Py_BuildValue("(Oy#)", r->conf->aflights, (const char *)r->digest,
                         (Py_ssize_t)SESSID_DIGEST_LEN);
}

void sessidpy_kvconf_clear(sessidpy_kvconf *conf)
{
    Py_CLEAR(conf->aflights);
}

int sessidpy_kvconf_traverse(sessidpy_kvconf *conf, visitproc visit, void *arg)
{
    Py_VISIT(conf->aflights);
    return 0;
}
