/* The evidence recorder's per-packet step in C (output/evidencewriter.py HeldPacket.of_batch is the reference).
 *
 * held_frame() holds frame `index` of a libpcap batch (source/batch.py: the buffer, and 16-byte records of
 * seconds, microseconds, offset and captured length in native byte order) as a HeldPacket: the frame copied out
 * of the buffer behind its pcap record header (evidencewriter.RECORD, native byte order: seconds, microseconds,
 * then both lengths the length of the bytes copied), in one allocation. Every packet of a recorded flow is held
 * this way; the reference slices the frame, packs the header and joins them (three objects, three copies).
 * bind() gives it the HeldPacket type and its PACKET_OVERHEAD once, when evidencewriter is imported.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define META_SIZE 16   /* source/batch.py BATCH_META: "=IIII" */
#define RECORD_SIZE 16 /* evidencewriter.RECORD: seconds, microseconds, captured length, length */
#define HELD_FIELDS 5  /* HeldPacket: linktype, records, sender, carried, cost */

static PyObject *held_type;    /* evidencewriter.HeldPacket, set by bind() */
static long long held_overhead; /* evidencewriter.PACKET_OVERHEAD */

PyDoc_STRVAR(bind_doc, "bind(held_type, overhead)\n\n"
                       "HeldPacket and PACKET_OVERHEAD (output/evidencewriter.py), once, before held_frame().");

static PyObject *bind(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2 || !PyType_Check(args[0]) || !PyType_IsSubtype((PyTypeObject *)args[0], &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "bind(held_type, overhead): held_type must be a tuple type");
        return NULL;
    }
    long long overhead = PyLong_AsLongLong(args[1]);
    if (overhead == -1 && PyErr_Occurred())
        return NULL;
    Py_XSETREF(held_type, Py_NewRef(args[0]));
    held_overhead = overhead;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(held_frame_doc, "held_frame(linktype, buf, meta, index, sender, carried) -> HeldPacket\n\n"
                             "HeldPacket.of_batch: frame `index` of the batch as a pcap record.");

static PyObject *held_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "held_frame() takes 6 arguments");
        return NULL;
    }
    if (held_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "held_frame(): bind() first");
        return NULL;
    }
    PyObject *linktype = args[0], *buf = args[1], *meta = args[2], *sender = args[4], *carried = args[5];
    if (!PyBytes_Check(buf) || !PyBytes_Check(meta) || !PyBytes_Check(carried)) {
        PyErr_SetString(PyExc_TypeError, "held_frame(): buf, meta and carried must be bytes");
        return NULL;
    }
    Py_ssize_t index = PyLong_AsSsize_t(args[3]);
    if (index == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t meta_len = PyBytes_GET_SIZE(meta);
    if (index < 0 || index >= meta_len / META_SIZE) {
        PyErr_Format(PyExc_IndexError, "held_frame(): frame %zd is not in a batch of %zd", index,
                     meta_len / META_SIZE);
        return NULL;
    }
    uint32_t fields[4]; /* seconds, microseconds, offset, captured length */
    memcpy(fields, PyBytes_AS_STRING(meta) + index * META_SIZE, sizeof fields);
    /* buf[off : off + cap], as Python slices it: clamped to the buffer */
    Py_ssize_t buf_len = PyBytes_GET_SIZE(buf);
    Py_ssize_t start = (uint64_t)fields[2] < (uint64_t)buf_len ? (Py_ssize_t)fields[2] : buf_len;
    uint64_t end64 = (uint64_t)fields[2] + fields[3];
    Py_ssize_t end = end64 < (uint64_t)buf_len ? (Py_ssize_t)end64 : buf_len;
    Py_ssize_t size = end - start;
    PyObject *records = PyBytes_FromStringAndSize(NULL, RECORD_SIZE + size);
    if (records == NULL)
        return NULL;
    char *out = PyBytes_AS_STRING(records);
    uint32_t header[4] = {fields[0], fields[1], (uint32_t)size, (uint32_t)size};
    memcpy(out, header, sizeof header);
    memcpy(out + RECORD_SIZE, PyBytes_AS_STRING(buf) + start, (size_t)size);
    PyObject *cost = PyLong_FromLongLong(held_overhead + RECORD_SIZE + size + PyBytes_GET_SIZE(carried));
    if (cost == NULL) {
        Py_DECREF(records);
        return NULL;
    }
    /* a named tuple made as tuple.__new__ makes it: the subtype's allocation, then its items */
    PyObject *held = ((PyTypeObject *)held_type)->tp_alloc((PyTypeObject *)held_type, HELD_FIELDS);
    if (held == NULL) {
        Py_DECREF(records);
        Py_DECREF(cost);
        return NULL;
    }
    PyTuple_SET_ITEM(held, 0, Py_NewRef(linktype));
    PyTuple_SET_ITEM(held, 1, records);
    PyTuple_SET_ITEM(held, 2, Py_NewRef(sender));
    PyTuple_SET_ITEM(held, 3, Py_NewRef(carried));
    PyTuple_SET_ITEM(held, 4, cost);
    return held;
}

static PyMethodDef methods[] = {
    {"held_frame", (PyCFunction)(void (*)(void))held_frame, METH_FASTCALL, held_frame_doc},
    {"bind", (PyCFunction)(void (*)(void))bind, METH_FASTCALL, bind_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "icmpsensor.output._fastevidence",
    "The evidence recorder's per-packet step in C (output/evidencewriter.py is the reference).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastevidence(void) { return PyModule_Create(&module_def); }
