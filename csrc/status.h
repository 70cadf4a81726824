/* Status codes of the sessid C core.
 *
 * Every function of the core that can fail returns 0 (SESSID_OK) or one of the negative codes
 * below, and hands its results back through out-parameters. Nothing in the core prints, aborts or
 * keeps an error string: a caller turns a code into text with sessid_strerror().
 */
#ifndef SESSID_STATUS_H
#define SESSID_STATUS_H

enum {
    SESSID_OK = 0,
    SESSID_ENOMEM = -1,       /* an allocation failed; nothing was changed */
    SESSID_EINVAL = -2,       /* an argument is out of its documented range */
    SESSID_ERANDOM = -3,      /* the kernel did not hand out random bytes */
    SESSID_EDIGEST = -4,      /* OpenSSL failed to compute a SHA-256 digest */
    SESSID_EFULL = -5,        /* the table holds as many entries as its indices can address */
    SESSID_EKV = -6,          /* a KV method failed; the backend holds the detail */
    SESSID_EUNSUPPORTED = -7, /* the KV does not offer this operation; it did nothing */
    SESSID_ENOREPLY = -8,     /* the KV performed a set but did not report the previous value */
    SESSID_EMISSING = -9,     /* the session id was absent from the KV right after it was set */
    SESSID_EVALUE = -10,      /* the KV holds a value that is not a usable session id */
    SESSID_ESTATE = -11,      /* a protocol step was fed out of order */
    SESSID_EFILE = -12,       /* a shared table's file cannot be used; a sessid_shared_problem says why */
    SESSID_ETIMEDOUT = -13,   /* another process held a shared table's lock past the lock timeout */
    SESSID_EBUSY = -14,       /* a shared table's lock was held, and the call did not wait (see lock.h) */
    SESSID_ELOCK = -15,       /* a shared table's lock is beyond repair: released by a holder that
                               * had not repaired the table (never sessid itself) */
    SESSID_EDAMAGED = -16,    /* a shared table's file holds what no table can hold, beyond repair */
    SESSID_ECLOCK = -17       /* this process's time namespace's offset to the host cannot be read */
};

/* Returns a static, human-readable sentence for a status (never NULL, never to be freed). */
const char *sessid_strerror(int status);

/* 1 when a KV run that ended with this status failed because of the KV (an operation failed, or the
 * KV's replies could not make a session id), so that a caller may answer without it; 0 for success
 * and for failures of sessid itself (memory, random bytes, a misused protocol). */
int sessid_status_is_kv_failure(int status);

/* 1 when a table call failed only because another process held a shared table's lock too long
 * (SESSID_ETIMEDOUT, SESSID_EBUSY), so that a best-effort caller may answer without the table. */
int sessid_status_is_lock_wait(int status);

#endif
