/* Session ids as Python str: the text of an id, a fresh random id, the local table's id for a
 * digest. */
#ifndef SESSIDPY_IDS_H
#define SESSIDPY_IDS_H

#include "_state.h"

/* A str holding the canonical text of id. */
PyObject *sessidpy_id_str(const uint8_t id[SESSID_ID_LEN]);

/* A str holding a fresh random id. */
PyObject *sessidpy_fresh_id(sessidpy_state *state);

/* A str of text[0..len), which must be ASCII (a session id as the KV protocol returns it). */
PyObject *sessidpy_ascii_str(const char *text, size_t len);

/* The local get-or-create of digest in table at time now, as a str. For a shared table (its file
 * at shared_path, NULL for a private one, or to log nothing) whose lock another process holds too
 * long: a required call raises LockTimeout; a best-effort one answers a fresh random id, and logs
 * the LockTimeout for the window that begins. */
PyObject *sessidpy_local_id(sessidpy_state *state, sessid_table *table,
                            const uint8_t digest[SESSID_DIGEST_LEN], double now, int required,
                            const char *shared_path, double lock_timeout);

#endif
