/* The store's clock: read on every call, so the monotonic one costs no Python call at all. */
#include "_clock.h"

#include <math.h>

/* A reading of a clock callable, as finite seconds. */
static int reading_seconds(PyObject *reading, double *now)
{
    if (!PyFloat_Check(reading) && !PyLong_Check(reading)) {
        PyErr_Format(PyExc_TypeError, "clock() must return a number of seconds, not %.100s",
                     Py_TYPE(reading)->tp_name);
        return -1;
    }
    *now = PyFloat_AsDouble(reading);
    if (*now == -1.0 && PyErr_Occurred())
        return -1;
    if (!isfinite(*now)) {
        PyErr_Format(PyExc_ValueError, "clock() returned %R; expected a finite number of seconds",
                     reading);
        return -1;
    }
    return 0;
}

int sessidpy_clock_read(const sessidpy_clock *clock, double *now)
{
    if (clock->callable == NULL) {
        *now = clock->monotonic();
        if (*now < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        return 0;
    }
    PyObject *reading = PyObject_CallNoArgs(clock->callable);
    if (reading == NULL)
        return -1;
    int rc = reading_seconds(reading, now);
    Py_DECREF(reading);
    return rc;
}
