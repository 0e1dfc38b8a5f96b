/* Where a __slots__ class keeps its object slots: how the C accelerators read and write, in place, the records
 * the Python code defines (decode/packet.py IcmpPacket, detect/flows.py Flow and DetectorStats, notice/aggregate.py
 * NoticeAggregator and _Fold...). Each extension includes this file; each takes the offsets once, when Python binds
 * the types to it. */
#ifndef ICMPSENSOR_SLOTS_H
#define ICMPSENSOR_SLOTS_H

#include <Python.h>
#include <structmember.h>

/* The byte offsets of `names`' object slots in the class `type_obj` (each a member descriptor of that class
 * itself), or -1 with TypeError set. */
static int slot_offsets(PyObject *type_obj, const char *const *names, int count, Py_ssize_t *out)
{
    if (!PyType_Check(type_obj)) {
        PyErr_SetString(PyExc_TypeError, "bind() takes types");
        return -1;
    }
    PyTypeObject *type = (PyTypeObject *)type_obj;
    for (int i = 0; i < count; i++) {
        PyObject *descr = PyDict_GetItemString(type->tp_dict, names[i]);
        if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
            PyErr_Format(PyExc_TypeError, "bind(): %s is not a slot of %s", names[i], type->tp_name);
            return -1;
        }
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != T_OBJECT_EX || member->offset <= 0
            || (size_t)member->offset + sizeof(PyObject *) > (size_t)type->tp_basicsize) {
            PyErr_Format(PyExc_TypeError, "bind(): %s is not an object slot of %s", names[i], type->tp_name);
            return -1;
        }
        out[i] = member->offset;
    }
    return 0;
}

/* The object in slot `offset` of `obj` (an lvalue; NULL while the slot is unset). */
#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/* obj's slot at `offset` set to `value` (a new reference taken), the one it held released. */
static inline void set_slot(PyObject *obj, Py_ssize_t offset, PyObject *value)
{
    PyObject *old = SLOT(obj, offset);
    SLOT(obj, offset) = Py_NewRef(value);
    Py_XDECREF(old);
}

/* `count` interned strings for `names` in `out` (attribute names an accelerator reads), or -1 with an exception set. */
static inline int intern_strings(const char *const *names, PyObject **out, int count)
{
    for (int i = 0; i < count; i++) {
        Py_XSETREF(out[i], PyUnicode_InternFromString(names[i]));
        if (out[i] == NULL)
            return -1;
    }
    return 0;
}

#endif
