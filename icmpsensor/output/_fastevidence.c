/* The evidence recorder's per-packet step in C (output/evidencewriter.py HeldPacket.of_batch is the reference).
 *
 * held_frame() holds frame `index` of a libpcap batch (source/batch.py: the buffer, and 16-byte records of
 * seconds, microseconds, offset and captured length in native byte order) as a HeldPacket: the frame copied out
 * of the buffer behind its pcap record header (evidencewriter.RECORD, native byte order: seconds, microseconds,
 * then both lengths the length of the bytes copied), in one allocation. Every packet of a recorded flow is held
 * this way; the reference slices the frame, packs the header and joins them (three objects, three copies).
 * held_frames() holds the frames a message came in (its fragments, source/batch.py CapturedFrame: seconds,
 * microseconds, data) the same way, their records back to back (HeldPacket.of is its reference).
 * bind() gives them the HeldPacket and CapturedFrame types and PACKET_OVERHEAD once, when evidencewriter is imported.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define META_SIZE 16   /* source/batch.py BATCH_META: "=IIII" */
#define RECORD_SIZE 16 /* evidencewriter.RECORD: seconds, microseconds, captured length, length */
#define HELD_FIELDS 5  /* HeldPacket: linktype, records, sender, carried, cost */

static PyObject *held_type;    /* evidencewriter.HeldPacket, set by bind() */
static PyObject *frame_type;   /* source/batch.py CapturedFrame */
static long long held_overhead; /* evidencewriter.PACKET_OVERHEAD */

PyDoc_STRVAR(bind_doc, "bind(held_type, overhead, frame_type)\n\n"
                       "HeldPacket, PACKET_OVERHEAD (output/evidencewriter.py) and CapturedFrame (source/batch.py),\n"
                       "once, before held_frame() and held_frames().");

static int is_tuple_type(PyObject *type)
{
    return PyType_Check(type) && PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type);
}

static PyObject *bind(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3 || !is_tuple_type(args[0]) || !is_tuple_type(args[2])) {
        PyErr_SetString(PyExc_TypeError, "bind(held_type, overhead, frame_type): the types must be tuple types");
        return NULL;
    }
    long long overhead = PyLong_AsLongLong(args[1]);
    if (overhead == -1 && PyErr_Occurred())
        return NULL;
    Py_XSETREF(held_type, Py_NewRef(args[0]));
    Py_XSETREF(frame_type, Py_NewRef(args[2]));
    held_overhead = overhead;
    Py_RETURN_NONE;
}

/* Whether `name` was called with `want` arguments after bind() (else an exception is set). */
static int callable_now(const char *name, Py_ssize_t nargs, Py_ssize_t want)
{
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments", name, want);
        return 0;
    }
    if (held_type == NULL) {
        PyErr_Format(PyExc_RuntimeError, "%s(): bind() first", name);
        return 0;
    }
    return 1;
}

/* One pcap record at `out` (evidencewriter.pcap_record): its header, both lengths `size`, then the frame's bytes;
 * returns where the next record goes. */
static char *put_record(char *out, uint32_t sec, uint32_t usec, const char *frame, Py_ssize_t size)
{
    uint32_t header[4] = {sec, usec, (uint32_t)size, (uint32_t)size};
    memcpy(out, header, sizeof header);
    memcpy(out + RECORD_SIZE, frame, (size_t)size);
    return out + RECORD_SIZE + size;
}

/* A HeldPacket of `records` (a reference taken over), as tuple.__new__ makes a named tuple: the subtype's
 * allocation, then its items. */
static PyObject *held_packet(PyObject *linktype, PyObject *records, PyObject *sender, PyObject *carried)
{
    PyObject *cost = PyLong_FromLongLong(held_overhead + PyBytes_GET_SIZE(records) + PyBytes_GET_SIZE(carried));
    if (cost == NULL) {
        Py_DECREF(records);
        return NULL;
    }
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

PyDoc_STRVAR(held_frame_doc, "held_frame(linktype, buf, meta, index, sender, carried) -> HeldPacket\n\n"
                             "HeldPacket.of_batch: frame `index` of the batch as a pcap record.");

static PyObject *held_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (!callable_now("held_frame", nargs, 6))
        return NULL;
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
    put_record(PyBytes_AS_STRING(records), fields[0], fields[1], PyBytes_AS_STRING(buf) + start, size);
    return held_packet(linktype, records, sender, carried);
}

/* A frame's clock field as pcap_record packs it ("I"): an int in 0 .. 2**32 - 1, else struct.error's ValueError
 * kin (OverflowError) or TypeError. */
static int clock_field(PyObject *value, uint32_t *out)
{
    if (!PyLong_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "held_frames(): a frame's clock must be an int");
        return -1;
    }
    unsigned long long field = PyLong_AsUnsignedLongLong(value);
    if (field == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    if (field > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "held_frames(): a frame's clock is past 32 bits");
        return -1;
    }
    *out = (uint32_t)field;
    return 0;
}

PyDoc_STRVAR(held_frames_doc, "held_frames(linktype, frames, sender, carried) -> HeldPacket\n\n"
                              "HeldPacket.of: the CapturedFrames a message came in as pcap records.");

static PyObject *held_frames(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (!callable_now("held_frames", nargs, 4))
        return NULL;
    PyObject *linktype = args[0], *frames = args[1], *sender = args[2], *carried = args[3];
    if (!PyTuple_Check(frames) || !PyBytes_Check(carried)) {
        PyErr_SetString(PyExc_TypeError, "held_frames(): frames must be a tuple, carried bytes");
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(frames), total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *frame = PyTuple_GET_ITEM(frames, i);
        if (!Py_IS_TYPE(frame, (PyTypeObject *)frame_type) || !PyBytes_Check(PyTuple_GET_ITEM(frame, 2))) {
            PyErr_SetString(PyExc_TypeError, "held_frames(): frames must be CapturedFrames of bytes");
            return NULL;
        }
        total += RECORD_SIZE + PyBytes_GET_SIZE(PyTuple_GET_ITEM(frame, 2));
    }
    PyObject *records = PyBytes_FromStringAndSize(NULL, total);
    if (records == NULL)
        return NULL;
    char *out = PyBytes_AS_STRING(records);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *frame = PyTuple_GET_ITEM(frames, i), *data = PyTuple_GET_ITEM(frame, 2);
        uint32_t sec, usec;
        if (clock_field(PyTuple_GET_ITEM(frame, 0), &sec) < 0 || clock_field(PyTuple_GET_ITEM(frame, 1), &usec) < 0) {
            Py_DECREF(records);
            return NULL;
        }
        out = put_record(out, sec, usec, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
    }
    return held_packet(linktype, records, sender, carried);
}

static PyMethodDef methods[] = {
    {"held_frame", (PyCFunction)(void (*)(void))held_frame, METH_FASTCALL, held_frame_doc},
    {"held_frames", (PyCFunction)(void (*)(void))held_frames, METH_FASTCALL, held_frames_doc},
    {"bind", (PyCFunction)(void (*)(void))bind, METH_FASTCALL, bind_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "icmpsensor.output._fastevidence",
    "The evidence recorder's per-packet step in C (output/evidencewriter.py is the reference).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastevidence(void) { return PyModule_Create(&module_def); }
