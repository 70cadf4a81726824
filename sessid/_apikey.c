/* API keys: their bytes borrowed from the key object where it allows (copied, then wiped, where it
 * is not contiguous), hashed with the GIL released when long; and the KV key built from a digest. */
#include "_apikey.h"

#include "_errors.h"

/* Keys at least this long are hashed with the GIL released. */
#define RELEASE_GIL_FROM (64 * 1024)

typedef struct {
    const char *data;
    Py_ssize_t len;
    Py_buffer view;
    int has_view;
    char *copy;
} key_bytes;

static void key_close(key_bytes *k)
{
    if (k->copy != NULL) {
        memset(k->copy, 0, (size_t)k->len);
        PyMem_Free(k->copy);
        k->copy = NULL;
    }
    if (k->has_view) {
        PyBuffer_Release(&k->view);
        k->has_view = 0;
    }
}

static int contiguous_copy(PyObject *obj, key_bytes *k)
{
    if (PyObject_GetBuffer(obj, &k->view, PyBUF_FULL_RO) < 0)
        return -1;
    k->has_view = 1;
    k->copy = PyMem_Malloc(k->view.len > 0 ? (size_t)k->view.len : 1);
    if (k->copy == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    k->len = k->view.len;
    if (PyBuffer_ToContiguous(k->copy, &k->view, k->view.len, 'C') < 0)
        return -1;
    k->data = k->copy;
    return 0;
}

/* Replaces the UnicodeEncodeError that is set, which holds the whole key, by one whose text is '?'
 * repeated to the key's length: its start, end and reason are kept, so the message still says
 * where the key has no UTF-8 form, and nothing in it, its arguments or its chain holds the key. */
static void hide_key_in_encode_error(void)
{
    if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
        return;
    PyObject *original = sessidpy_take_exception();
    Py_ssize_t start, end;
    PyObject *object = PyUnicodeEncodeError_GetObject(original);
    PyObject *reason = PyUnicodeEncodeError_GetReason(original);
    PyObject *encoding = PyUnicodeEncodeError_GetEncoding(original);
    PyObject *error = NULL, *text = NULL;
    if (object != NULL && reason != NULL && encoding != NULL
        && PyUnicodeEncodeError_GetStart(original, &start) == 0
        && PyUnicodeEncodeError_GetEnd(original, &end) == 0
        && (text = PyUnicode_New(PyUnicode_GET_LENGTH(object), 127)) != NULL) {
        memset(PyUnicode_DATA(text), '?', (size_t)PyUnicode_GET_LENGTH(object));
        error = PyObject_CallFunction(PyExc_UnicodeEncodeError, "OOnnO", encoding, text, start,
                                      end, reason);
    }
    Py_XDECREF(object);
    Py_XDECREF(reason);
    Py_XDECREF(encoding);
    Py_XDECREF(text);
    Py_DECREF(original);
    if (error == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_UnicodeError, "api_key has no UTF-8 form");
        return;
    }
    PyErr_SetObject(PyExc_UnicodeEncodeError, error);
    Py_DECREF(error);
}

static int key_open(PyObject *obj, key_bytes *k)
{
    memset(k, 0, sizeof *k);
    if (PyUnicode_Check(obj)) {
        k->data = PyUnicode_AsUTF8AndSize(obj, &k->len);
        if (k->data == NULL)
            hide_key_in_encode_error();
        return k->data != NULL ? 0 : -1;
    }
    if (!PyObject_CheckBuffer(obj)) {
        PyErr_Format(PyExc_TypeError, "api_key must be str or a bytes-like object, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (PyObject_GetBuffer(obj, &k->view, PyBUF_SIMPLE) == 0) {
        k->has_view = 1;
        k->data = k->view.buf;
        k->len = k->view.len;
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_BufferError))
        return -1;
    PyErr_Clear();                      /* not contiguous: hash a private copy instead */
    if (contiguous_copy(obj, k) < 0) {
        key_close(k);
        return -1;
    }
    return 0;
}

int sessidpy_digest_api_key(sessidpy_state *state, PyObject *api_key,
                            uint8_t digest[SESSID_DIGEST_LEN], int *empty)
{
    key_bytes k;
    if (key_open(api_key, &k) < 0)
        return -1;
    *empty = k.len == 0;
    int rc;
    if (k.len >= RELEASE_GIL_FROM) {
        Py_BEGIN_ALLOW_THREADS
        rc = sessid_digest(k.data, (size_t)k.len, digest);
        Py_END_ALLOW_THREADS
    } else {
        rc = sessid_digest(k.data, (size_t)k.len, digest);
    }
    key_close(&k);
    if (rc != SESSID_OK) {
        sessidpy_raise_status(state, rc);
        return -1;
    }
    return 0;
}

int sessidpy_prefix_init(sessidpy_prefix *prefix, PyObject *obj)
{
    memset(prefix, 0, sizeof *prefix);
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "prefix must be str, not %.100s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    Py_ssize_t len;
    const char *utf8 = PyUnicode_AsUTF8AndSize(obj, &len);
    if (utf8 == NULL)
        return -1;
    prefix->utf8 = PyMem_Malloc(len > 0 ? (size_t)len : 1);
    if (prefix->utf8 == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(prefix->utf8, utf8, (size_t)len);
    prefix->len = len;
    prefix->ascii = PyUnicode_IS_ASCII(obj);
    prefix->text = Py_NewRef(obj);
    return 0;
}

void sessidpy_prefix_clear(sessidpy_prefix *prefix)
{
    Py_CLEAR(prefix->text);
    PyMem_Free(prefix->utf8);
    prefix->utf8 = NULL;
}

PyObject *sessidpy_kv_key(const sessidpy_prefix *prefix, const uint8_t digest[SESSID_DIGEST_LEN])
{
    Py_ssize_t len = prefix->len + SESSID_HEX_LEN;
    if (prefix->ascii) {
        PyObject *key = PyUnicode_New(len, 127);
        if (key != NULL) {
            char *data = PyUnicode_DATA(key);
            memcpy(data, prefix->utf8, (size_t)prefix->len);
            sessid_digest_hex(digest, data + prefix->len);
        }
        return key;
    }
    char *buf = PyMem_Malloc((size_t)len);
    if (buf == NULL)
        return PyErr_NoMemory();
    memcpy(buf, prefix->utf8, (size_t)prefix->len);
    sessid_digest_hex(digest, buf + prefix->len);
    PyObject *key = PyUnicode_DecodeUTF8(buf, len, "strict");
    PyMem_Free(buf);
    return key;
}
