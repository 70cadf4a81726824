/* API keys: the bytes of a str or bytes-like key, their SHA-256 digest, and the KV key made of a
 * prefix and that digest. The binding never keeps a key or a copy of its bytes. */
#ifndef SESSIDPY_APIKEY_H
#define SESSIDPY_APIKEY_H

#include "_state.h"

/* Hashes api_key (a str, as UTF-8, or a bytes-like object) into digest; *empty is set when the key
 * has no bytes. TypeError for any other type, UnicodeEncodeError for a str with no UTF-8 form. */
int sessidpy_digest_api_key(sessidpy_state *state, PyObject *api_key,
                            uint8_t digest[SESSID_DIGEST_LEN], int *empty);

/* The prefix of every KV key of a store, kept as a str and as UTF-8. */
typedef struct sessidpy_prefix {
    PyObject *text;             /* strong: the str */
    char *utf8;                 /* PyMem copy of its UTF-8 */
    Py_ssize_t len;
    int ascii;
} sessidpy_prefix;

/* Fills prefix from obj, which must be a str (TypeError, naming the argument "prefix", otherwise).
 * Clear prefix with sessidpy_prefix_clear afterwards, whether this succeeded or not. */
int sessidpy_prefix_init(sessidpy_prefix *prefix, PyObject *obj);
void sessidpy_prefix_clear(sessidpy_prefix *prefix);

/* The KV key of digest: the prefix and the 64 lowercase hex characters of digest, as a str. */
PyObject *sessidpy_kv_key(const sessidpy_prefix *prefix, const uint8_t digest[SESSID_DIGEST_LEN]);

#endif
