/* Tuples the C accelerators keep (a flow's key, a pending request's key and entry, a payload's sketch, a pair's key,
 * the tool tracker's keys, a folded flow's (role, host), a notice's snapshot of its flow and its channels, and their
 * list), left untracked by the cyclic collector where no item may be tracked: what the collector itself does to such
 * a tuple the first time a collection walks it (_PyTuple_MaybeUntrack), done when it is made or stored (a key made for
 * a look-up and freed after it is not worth the look at its items). Such a tuple can be part of no cycle. A notice
 * storm keeps about seven a flow, each walked by a young collection first (docs/performance.md, twenty-third
 * session). */
#ifndef ICMPSENSOR_TUPLES_H
#define ICMPSENSOR_TUPLES_H

#include <Python.h>
#include <string.h>

/* `tuple` (a new reference, or NULL), untracked where no item may be tracked: each an object the collector never
 * tracks (bytes, str, int, float, None, a bool...) or a tuple it does not track (_PyObject_GC_MAY_BE_TRACKED's rule,
 * which _PyTuple_MaybeUntrack applies; a dict, even one not tracked yet, may be). */
static inline PyObject *untracked_if_atomic(PyObject *tuple)
{
    if (tuple == NULL || !PyTuple_CheckExact(tuple) || !PyObject_GC_IsTracked(tuple))
        return tuple;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tuple); i++) {
        PyObject *item = PyTuple_GET_ITEM(tuple, i);
        if (item == NULL || (PyObject_IS_GC(item) && (!PyTuple_CheckExact(item) || PyObject_GC_IsTracked(item))))
            return tuple;
    }
    PyObject_GC_UnTrack(tuple);
    return tuple;
}

/* `list` (a new reference, or NULL) untracked by the same rule, for a list its maker fills once and never changes
 * after (a notice's (channel, bytes) pairs): the collector never untracks a list, and would not track it again if a
 * container were added to it. */
static inline PyObject *untracked_list_if_atomic(PyObject *list)
{
    if (list == NULL || !PyList_CheckExact(list) || !PyObject_GC_IsTracked(list))
        return list;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        if (PyObject_IS_GC(item) && (!PyTuple_CheckExact(item) || PyObject_GC_IsTracked(item)))
            return list;
    }
    PyObject_GC_UnTrack(list);
    return list;
}

/* The key of a host pair, the same for both directions (output/evidence.py pair_key: the lower address first), a new
 * reference, or NULL with an exception: the evidence recorder's rings, recordings and watched pairs are keyed by it
 * (untracked_if_atomic where it is kept), and the detector's run looks its packets' pairs up in them by it. */
static inline PyObject *pair_key_new(PyObject *src, PyObject *dst)
{
    int ordered;
    if (PyBytes_CheckExact(src) && PyBytes_CheckExact(dst)) { /* bytes' <=, without the rich comparison's calls */
        Py_ssize_t a = PyBytes_GET_SIZE(src), b = PyBytes_GET_SIZE(dst);
        int order = memcmp(PyBytes_AS_STRING(src), PyBytes_AS_STRING(dst), (size_t)(a < b ? a : b));
        ordered = order < 0 || (order == 0 && a <= b);
    } else
        ordered = PyObject_RichCompareBool(src, dst, Py_LE);
    if (ordered < 0)
        return NULL;
    return ordered ? PyTuple_Pack(2, src, dst) : PyTuple_Pack(2, dst, src);
}

#endif
