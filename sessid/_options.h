/* The arguments of Store(), checked and turned into C. */
#ifndef SESSIDPY_OPTIONS_H
#define SESSIDPY_OPTIONS_H

#include "_apikey.h"
#include "_clock.h"
#include "_state.h"

/* The longest TTL a Store takes, in seconds (about 31.7 years), and its text for messages. */
#define SESSIDPY_TTL_MAX 1e9
#define SESSIDPY_TTL_MAX_TEXT "1e9"

typedef enum { SESSIDPY_ON_KV_ERROR_RANDOM, SESSIDPY_ON_KV_ERROR_LOCAL } sessidpy_on_kv_error;

typedef struct sessidpy_options {
    PyObject *kv;               /* strong, or NULL: local mode (or cleared by the GC, see kv_mode) */
    sessidpy_clock clock;
    sessidpy_prefix prefix;
    double ttl;
    uint64_t max_entries;       /* 0: None */
    double refresh_after;       /* 0: None */
    sessidpy_on_kv_error on_kv_error;
    double kv_backoff;          /* 0: off */
    PyObject *shared;           /* strong: the shared= argument as given (a str), or NULL */
    char *shared_path;          /* PyMem: its file, or NULL for a private table */
    double lock_timeout;        /* seconds a call waits on another process's hold of its lock */
    int kv_mode;                /* a kv was given */
    int kv_has_getex;           /* ... and it has a callable getex */
} sessidpy_options;

/* The max_entries of a shared table when none is given. */
#define SESSIDPY_SHARED_DEFAULT_ENTRIES 100000

/* Checks the arguments of Store(kv=None, *, ttl=3600.0, prefix="sessid:", max_entries=None,
 * clock=None, refresh_after=None, on_kv_error="random", kv_backoff=1.0, shared=None,
 * lock_timeout=1.0) into
 * *options. Each bad argument raises
 * TypeError or ValueError naming it and what was given. Clear options with sessidpy_options_clear
 * afterwards, whether this succeeded or not. */
int sessidpy_options_parse(sessidpy_state *state, PyObject *args, PyObject *kwargs,
                           sessidpy_options *options);

void sessidpy_options_clear(sessidpy_options *options);

/* The file of a shared= argument (a name or an absolute path, str or os.PathLike) as a PyMem
 * string, or NULL with ValueError or TypeError naming the argument. *text (text may be NULL)
 * receives the argument as a str. */
char *sessidpy_shared_path(PyObject *shared, PyObject **text);

/* "random" or "local". */
const char *sessidpy_on_kv_error_name(sessidpy_on_kv_error policy);

#endif
