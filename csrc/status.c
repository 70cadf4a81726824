/* Status codes: their text, and which of them are failures of the KV. */
#include "status.h"

const char *sessid_strerror(int status)
{
    switch (status) {
    case SESSID_OK:
        return "success";
    case SESSID_ENOMEM:
        return "out of memory";
    case SESSID_EINVAL:
        return "invalid argument";
    case SESSID_ERANDOM:
        return "the kernel did not provide random bytes";
    case SESSID_EDIGEST:
        return "OpenSSL failed to compute SHA-256";
    case SESSID_EFULL:
        return "the local table is full";
    case SESSID_EKV:
        return "the KV failed";
    case SESSID_EUNSUPPORTED:
        return "the KV does not support this operation";
    case SESSID_ENOREPLY:
        return "the KV did not report the previous value of a set";
    case SESSID_EMISSING:
        return "session id missing after set";
    case SESSID_EVALUE:
        return "the KV holds a malformed session id";
    case SESSID_ESTATE:
        return "protocol step out of order";
    case SESSID_EFILE:
        return "the shared table's file cannot be used";
    case SESSID_ETIMEDOUT:
        return "another process held the shared table's lock longer than lock_timeout";
    case SESSID_EBUSY:
        return "the shared table's lock is held by another process";
    case SESSID_ELOCK:
        return "the shared table's lock is beyond repair";
    case SESSID_EDAMAGED:
        return "the shared table's file is damaged beyond repair";
    case SESSID_ECLOCK:
        return "this process's time namespace offset (/proc/self/timens_offsets) cannot be read";
    default:
        return "unknown sessid status";
    }
}

int sessid_status_is_kv_failure(int status)
{
    return status == SESSID_EKV || status == SESSID_EUNSUPPORTED || status == SESSID_ENOREPLY
           || status == SESSID_EMISSING || status == SESSID_EVALUE;
}

int sessid_status_is_lock_wait(int status)
{
    return status == SESSID_ETIMEDOUT || status == SESSID_EBUSY;
}
