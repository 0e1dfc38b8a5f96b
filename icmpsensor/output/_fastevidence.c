/* Evidence in C: the recorder's per-packet step and the writer's joins and writes, each with its Python reference
 * (an equivalence test holds each pair equal: tests/unit/test_fastevidence.py, tests/unit/test_fastrecord.py).
 *
 * held_frame() holds frame `index` of a libpcap batch (source/batch.py: the buffer, and 16-byte records of
 * seconds, microseconds, offset and captured length in native byte order) as a HeldPacket: the frame copied out
 * of the buffer behind its pcap record header (evidencewriter.RECORD, native byte order: seconds, microseconds,
 * then both lengths the length of the bytes copied), in one allocation. Every packet of a recorded flow is held
 * this way; the reference slices the frame, packs the header and joins them (three objects, three copies).
 * held_frames() holds the frames a message came in (its fragments, source/batch.py CapturedFrame: seconds,
 * microseconds, data) the same way, their records back to back (HeldPacket.of is its reference).
 * bind() gives them the HeldPacket and CapturedFrame types and PACKET_OVERHEAD once, when evidencewriter is imported.
 *
 * record() and record_passed() are EvidenceRecorder.observe for a packet with a frame (output/evidence.py:
 * observe, _record, _held, _fits, _buffer and _evict_ring are the reference): for a recorded pair, its _Recording
 * looked up, its caps checked, the packet held as above and appended to the recorder's pending packets; for a pair
 * without a recording, its ring (a flood's new pairs: one each, the least recently active evicted) kept within
 * max_flows_buffered and max_buffer_bytes. bind_recorder() gives them IcmpPacket, _Recording, whose slots they read
 * and write in place, and deque, the type of a ring of more than one packet.
 *
 * run_parts() lists a writer job's run of one link type, its packets' own bytes (evidencewriter.run_parts_py is the
 * reference), and write_all() writes a round's (fd, parts) pairs with writev and the interpreter lock released once
 * for all of them (evidencewriter.write_whole, once a pair, is the reference): the writer's thread, which shares the
 * lock with detection, copies no evidence byte while it holds it. create_all() creates a round's new files with
 * their headers and close_all() closes finished ones, the lock released once for each call (create_all_py and
 * close_all_py are the references): the writer takes the lock back once a round, not once a file.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "../_slots.h"
#include "../_tuples.h"

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

/* Frame `index` of the batch (a frame of it): its meta record's fields (seconds, microseconds, offset, captured
 * length), and where it starts in buf and its size: buf[off : off + cap], as Python slices it, clamped to the buffer. */
static Py_ssize_t batch_frame(PyObject *buf, PyObject *meta, Py_ssize_t index, uint32_t fields[4], Py_ssize_t *start)
{
    memcpy(fields, PyBytes_AS_STRING(meta) + index * META_SIZE, 4 * sizeof(uint32_t));
    Py_ssize_t buf_len = PyBytes_GET_SIZE(buf);
    *start = (uint64_t)fields[2] < (uint64_t)buf_len ? (Py_ssize_t)fields[2] : buf_len;
    uint64_t end64 = (uint64_t)fields[2] + fields[3];
    Py_ssize_t end = end64 < (uint64_t)buf_len ? (Py_ssize_t)end64 : buf_len;
    return end - *start;
}

/* held_frame() once its frame is read (batch_frame): its fields, and buf[start : start + size]. */
static PyObject *held_frame_at(PyObject *linktype, PyObject *buf, const uint32_t fields[4], Py_ssize_t start,
                               Py_ssize_t size, PyObject *sender, PyObject *carried)
{
    PyObject *records = PyBytes_FromStringAndSize(NULL, RECORD_SIZE + size);
    if (records == NULL)
        return NULL;
    put_record(PyBytes_AS_STRING(records), fields[0], fields[1], PyBytes_AS_STRING(buf) + start, size);
    return held_packet(linktype, records, sender, carried);
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
    uint32_t fields[4];
    Py_ssize_t start, size = batch_frame(buf, meta, index, fields, &start);
    return held_frame_at(linktype, buf, fields, start, size, sender, carried);
}

/* A frame's clock field as pcap_record packs it ("I"): an int in 0 .. 2**32 - 1, else struct.error's ValueError
 * kin (OverflowError) or TypeError. */
static int clock_field(PyObject *value, uint32_t *out)
{
    if (!PyLong_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "held_frames(): a frame's clock must be an int");
        return -1;
    }
    /* unsigned long: its digits read directly; unsigned long long goes through _PyLong_AsByteArray (~90
     * instructions a clock, two a frame a held packet) */
    unsigned long field = PyLong_AsUnsignedLong(value);
    if (field == (unsigned long)-1 && PyErr_Occurred())
        return -1;
    if (field > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "held_frames(): a frame's clock is past 32 bits");
        return -1;
    }
    *out = (uint32_t)field;
    return 0;
}

static PyObject *held_frames_of(PyObject *linktype, PyObject *frames, PyObject *sender, PyObject *carried);

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
    return held_frames_of(linktype, frames, sender, carried);
}

/* The bytes of `frames` (a tuple) as pcap records, or -1 with TypeError where one is not a CapturedFrame of bytes. */
static Py_ssize_t frames_records_size(PyObject *frames)
{
    Py_ssize_t count = PyTuple_GET_SIZE(frames), total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *frame = PyTuple_GET_ITEM(frames, i);
        if (!Py_IS_TYPE(frame, (PyTypeObject *)frame_type) || !PyBytes_Check(PyTuple_GET_ITEM(frame, 2))) {
            PyErr_SetString(PyExc_TypeError, "held_frames(): frames must be CapturedFrames of bytes");
            return -1;
        }
        total += RECORD_SIZE + PyBytes_GET_SIZE(PyTuple_GET_ITEM(frame, 2));
    }
    return total;
}

/* held_frames_of once `frames` are checked: `total` the bytes of their records. */
static PyObject *held_frames_sized(PyObject *linktype, PyObject *frames, Py_ssize_t total, PyObject *sender,
                                   PyObject *carried)
{
    Py_ssize_t count = PyTuple_GET_SIZE(frames);
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

/* held_frames() once its arguments are checked: `frames` a tuple, `carried` bytes. */
static PyObject *held_frames_of(PyObject *linktype, PyObject *frames, PyObject *sender, PyObject *carried)
{
    Py_ssize_t total = frames_records_size(frames);
    return total < 0 ? NULL : held_frames_sized(linktype, frames, total, sender, carried);
}


/* -- the recorder's step (output/evidence.py EvidenceRecorder.observe, _record, _held, _fits, _buffer and
 * _evict_ring, for a packet with a frame: the reference) --------------------------------------------------------- */

enum { P_SRC, P_DST, P_IPV6, P_TYPE, P_PAYLOAD, P_FRAMES, N_PACKET };
static const char *const PACKET_FIELDS[N_PACKET] = {"src", "dst", "ipv6", "icmp_type", "payload", "frames"};
enum { R_UID, R_PACKETS, R_SIZE, N_RECORDING };
static const char *const RECORDING_FIELDS[N_RECORDING] = {"uid", "packets", "size"};

static PyTypeObject *packet_type;    /* decode/packet.py IcmpPacket, set by bind_recorder() */
static PyTypeObject *recording_type; /* output/evidence.py _Recording */
static PyTypeObject *deque_type;     /* collections.deque: a ring of more than one packet */
static Py_ssize_t packet_slot[N_PACKET], recording_slot[N_RECORDING];
enum {
    S_OPEN, S_PENDING, S_CFG, S_LINKTYPE, S_BEFORE, S_AFTER, S_FILE_BYTES, S_RINGS, S_WATCHED, S_BUFFERED, S_STATS,
    S_EVICTED, S_FLOWS_BUFFERED, S_BUFFER_BYTES, S_MOVE_TO_END, S_APPEND, S_MAXLEN, S_POPITEM, N_NAMES
};
static const char *const NAMES[N_NAMES] = {
    "_open", "_pending", "cfg", "linktype", "packets_before", "packets_after", "max_file_bytes", "_rings", "watched",
    "_buffered", "stats", "buffers_evicted", "max_flows_buffered", "max_buffer_bytes", "move_to_end", "append",
    "maxlen", "popitem"};
static PyObject *names[N_NAMES]; /* interned: the recorder's, its EvidenceConfig's and a ring's attributes */
static PyObject *empty_bytes;

/* What a step did that its caller counts: nothing to count (held in a ring, or not held: a pair without novel
 * bytes and without a ring), held for a recording, or past a recording's cap. */
enum { NOT_COUNTED = 0, HELD = 1, TRUNCATED = 2 };

PyDoc_STRVAR(bind_recorder_doc, "bind_recorder(packet_type, recording_type, deque_type)\n\n"
                                "IcmpPacket (decode/packet.py), _Recording (output/evidence.py) and collections.deque,\n"
                                "once, before record() and record_passed().");

static PyObject *bind_recorder(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3 || !PyType_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "bind_recorder(packet_type, recording_type, deque_type)");
        return NULL;
    }
    Py_ssize_t packet[N_PACKET], recording[N_RECORDING];
    if (slot_offsets(args[0], PACKET_FIELDS, N_PACKET, packet) < 0
        || slot_offsets(args[1], RECORDING_FIELDS, N_RECORDING, recording) < 0)
        return NULL;
    if (intern_strings(NAMES, names, N_NAMES) < 0)
        return NULL;
    if (empty_bytes == NULL && (empty_bytes = PyBytes_FromStringAndSize(NULL, 0)) == NULL)
        return NULL;
    memcpy(packet_slot, packet, sizeof packet);
    memcpy(recording_slot, recording, sizeof recording);
    Py_XSETREF(packet_type, (PyTypeObject *)Py_NewRef(args[0]));
    Py_XSETREF(recording_type, (PyTypeObject *)Py_NewRef(args[1]));
    Py_XSETREF(deque_type, (PyTypeObject *)Py_NewRef(args[2]));
    Py_RETURN_NONE;
}

/* What one call reads of the recorder once (its attributes), and whether it held a packet of the batch. */
typedef struct {
    PyObject *recorder, *open, *pending, *linktype, *buf, *meta;
    long long max_packets, max_file_bytes; /* packets_before + packets_after; max_file_bytes */
    Py_ssize_t frames_in_batch;
    int made_held;  /* _held ran: the recorder's linktype is the batch's */
    int limits_read; /* pending and the caps read (step_limits): only once a recorded pair is met */
    /* the rings' part (step_rings: once a pair without a recording is met); the references held till step_close */
    PyObject *rings, *watched;
    long long packets_before, max_flows_buffered, max_buffer_bytes;
    long long buffered; /* the recorder's _buffered, written back by step_close */
    long long evicted;  /* rings evicted: added to stats.buffers_evicted by step_close */
    int rings_read;
} Step;

static long long int_attr(PyObject *obj, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL)
        return -1;
    long long out = PyLong_AsLongLong(value);
    Py_DECREF(value);
    return out;
}

/* The step's context from the recorder and the batch (a borrowed view: the recorder keeps them alive). */
static int step_open(Step *step, PyObject *recorder, PyObject *buf, PyObject *meta, PyObject *linktype)
{
    if (packet_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "record(): bind_recorder() first");
        return -1;
    }
    if (!PyBytes_Check(buf) || !PyBytes_Check(meta)) {
        PyErr_SetString(PyExc_TypeError, "record(): buf and meta must be bytes");
        return -1;
    }
    step->recorder = recorder, step->buf = buf, step->meta = meta, step->linktype = linktype, step->made_held = 0;
    step->limits_read = 0, step->rings_read = 0, step->rings = step->watched = NULL, step->evicted = 0;
    step->frames_in_batch = PyBytes_GET_SIZE(meta) / META_SIZE;
    step->open = PyObject_GetAttr(recorder, names[S_OPEN]);
    if (step->open == NULL)
        return -1;
    Py_DECREF(step->open); /* borrowed from here on: the recorder holds it */
    if (!PyDict_Check(step->open)) {
        PyErr_SetString(PyExc_TypeError, "record(): the recorder's _open must be a dict");
        return -1;
    }
    return 0;
}

/* The rest of the step's context, read once a recorded pair is met (most packets shown to a recorder that buffers
 * a flood's pairs have none): the pending packets and the caps. */
static int step_limits(Step *step)
{
    if (step->limits_read)
        return 0;
    step->pending = PyObject_GetAttr(step->recorder, names[S_PENDING]);
    if (step->pending == NULL)
        return -1;
    Py_DECREF(step->pending); /* borrowed, as _open */
    if (!PyDict_Check(step->pending)) {
        PyErr_SetString(PyExc_TypeError, "record(): the recorder's _pending must be a dict");
        return -1;
    }
    PyObject *cfg = PyObject_GetAttr(step->recorder, names[S_CFG]);
    if (cfg == NULL)
        return -1;
    long long before = int_attr(cfg, names[S_BEFORE]), after = int_attr(cfg, names[S_AFTER]);
    step->max_file_bytes = int_attr(cfg, names[S_FILE_BYTES]);
    Py_DECREF(cfg);
    if (PyErr_Occurred())
        return -1;
    step->max_packets = before + after;
    step->limits_read = 1;
    return 0;
}

/* The rings' part of the step's context, read once a pair without a recording is met. */
static int step_rings(Step *step)
{
    if (step->rings_read)
        return 0;
    step->rings = PyObject_GetAttr(step->recorder, names[S_RINGS]);
    step->watched = step->rings == NULL ? NULL : PyObject_GetAttr(step->recorder, names[S_WATCHED]);
    PyObject *cfg = step->watched == NULL ? NULL : PyObject_GetAttr(step->recorder, names[S_CFG]);
    if (cfg == NULL)
        return -1; /* step_close releases what was read */
    step->packets_before = int_attr(cfg, names[S_BEFORE]);
    step->max_flows_buffered = int_attr(cfg, names[S_FLOWS_BUFFERED]);
    step->max_buffer_bytes = int_attr(cfg, names[S_BUFFER_BYTES]);
    Py_DECREF(cfg);
    step->buffered = int_attr(step->recorder, names[S_BUFFERED]);
    if (PyErr_Occurred())
        return -1;
    /* an OrderedDict: read through the dict API, written through its own (which keeps the order) */
    if (!PyODict_Check(step->rings) || !PyAnySet_Check(step->watched)) {
        PyErr_SetString(PyExc_TypeError, "record(): the recorder's _rings must be an OrderedDict, watched a set");
        return -1;
    }
    step->rings_read = 1;
    return 0;
}

/* stats.buffers_evicted += count */
static int count_evicted(PyObject *recorder, long long count)
{
    PyObject *stats = PyObject_GetAttr(recorder, names[S_STATS]);
    PyObject *before = stats == NULL ? NULL : PyObject_GetAttr(stats, names[S_EVICTED]);
    PyObject *more = before == NULL ? NULL : PyLong_FromLongLong(count);
    PyObject *after = more == NULL ? NULL : PyNumber_Add(before, more);
    int failed = after == NULL ? -1 : PyObject_SetAttr(stats, names[S_EVICTED], after);
    Py_XDECREF(stats);
    Py_XDECREF(before);
    Py_XDECREF(more);
    Py_XDECREF(after);
    return failed;
}

/* Once the call is over (also after an error: what was done is written back, the exception kept): the recorder's
 * linktype set as _held sets it, its _buffered and evictions written. */
static int step_close(Step *step)
{
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    int failed = step->made_held ? PyObject_SetAttr(step->recorder, names[S_LINKTYPE], step->linktype) : 0;
    if (step->rings_read) {
        PyObject *buffered = PyLong_FromLongLong(step->buffered);
        failed |= buffered == NULL ? -1 : PyObject_SetAttr(step->recorder, names[S_BUFFERED], buffered);
        Py_XDECREF(buffered);
        if (step->evicted)
            failed |= count_evicted(step->recorder, step->evicted);
    }
    Py_CLEAR(step->rings);
    Py_CLEAR(step->watched);
    if (type != NULL) {
        PyErr_Restore(type, value, traceback); /* the first error is the one told */
        return -1;
    }
    return failed ? -1 : 0;
}

/* An int slot of a _Recording plus `more`. */
static int add_to_slot(PyObject *recording, Py_ssize_t offset, long long current, long long more)
{
    PyObject *value = PyLong_FromLongLong(current + more);
    if (value == NULL)
        return -1;
    set_slot(recording, offset, value);
    Py_DECREF(value);
    return 0;
}

static long long slot_int(PyObject *obj, Py_ssize_t offset)
{
    PyObject *value = SLOT(obj, offset);
    if (value == NULL || !PyLong_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "record(): a recording's packets and size must be ints");
        return -1;
    }
    return PyLong_AsLongLong(value);
}

/* _held: the packet (frame `index` of the batch, or its own fragments) as a HeldPacket; NULL with an exception.
 * `room`: the most bytes of records that fit (-1: any); a packet whose records would take more is not held (_record
 * asks _fits first): None. */
static PyObject *hold(Step *step, PyObject *pkt, PyObject *src, Py_ssize_t index, Py_ssize_t room)
{
    PyObject *ipv6 = SLOT(pkt, packet_slot[P_IPV6]), *type = SLOT(pkt, packet_slot[P_TYPE]);
    PyObject *payload = SLOT(pkt, packet_slot[P_PAYLOAD]), *frames = SLOT(pkt, packet_slot[P_FRAMES]);
    if (ipv6 == NULL || type == NULL || payload == NULL || frames == NULL || !PyLong_Check(type)) {
        PyErr_SetString(PyExc_TypeError, "record(): a packet without its fields");
        return NULL;
    }
    int is_v6 = PyObject_IsTrue(ipv6);
    if (is_v6 < 0)
        return NULL;
    long icmp_type = PyLong_AsLong(type);
    if (icmp_type == -1 && PyErr_Occurred())
        return NULL;
    PyObject *carried = icmp_type == (is_v6 ? 128 : 8) ? payload : empty_bytes; /* what an echo request carried */
    if (!PyBytes_Check(carried)) {
        PyErr_SetString(PyExc_TypeError, "record(): a payload must be bytes");
        return NULL;
    }
    int fragments = PyObject_IsTrue(frames);
    if (fragments < 0)
        return NULL;
    PyObject *held;
    if (fragments) {
        if (!PyTuple_Check(frames)) {
            PyErr_SetString(PyExc_TypeError, "record(): a packet's frames must be a tuple");
            return NULL;
        }
        Py_ssize_t total = frames_records_size(frames);
        if (total < 0)
            return NULL;
        if (room >= 0 && total > room)
            Py_RETURN_NONE;
        held = held_frames_sized(step->linktype, frames, total, src, carried);
    } else {
        if (index < 0 || index >= step->frames_in_batch) {
            PyErr_Format(PyExc_IndexError, "record(): frame %zd is not in a batch of %zd", index,
                         step->frames_in_batch);
            return NULL;
        }
        uint32_t fields[4];
        Py_ssize_t start, size = batch_frame(step->buf, step->meta, index, fields, &start);
        if (room >= 0 && RECORD_SIZE + size > room)
            Py_RETURN_NONE;
        held = held_frame_at(step->linktype, step->buf, fields, start, size, src, carried);
    }
    step->made_held |= held != NULL;
    return held;
}

/* A HeldPacket's cost (HeldPacket.cost, its last item). */
static long long cost_of(PyObject *held)
{
    if (!Py_IS_TYPE(held, (PyTypeObject *)held_type)) {
        PyErr_SetString(PyExc_TypeError, "record(): a ring must hold HeldPackets");
        return -1;
    }
    return PyLong_AsLongLong(PyTuple_GET_ITEM(held, HELD_FIELDS - 1));
}

static int record_recorded(Step *step, PyObject *pkt, PyObject *recording, PyObject *src, Py_ssize_t index);
static int ring_step(Step *step, PyObject *key, PyObject *pkt, int novel, PyObject *src, Py_ssize_t index);

/* One packet (its frame `index` of the batch; `novel`: whether the detector found novel bytes in it): HELD (added
 * to the recorder's pending packets), TRUNCATED (past a recording's cap: the caller counts it), NOT_COUNTED (its
 * pair has no recording: its ring kept); -1 error. */
static int record_one(Step *step, PyObject *pkt, int novel, Py_ssize_t index)
{
    if (!PyObject_TypeCheck(pkt, packet_type)) {
        PyErr_SetString(PyExc_TypeError, "record(): an IcmpPacket expected");
        return -1;
    }
    PyObject *src = SLOT(pkt, packet_slot[P_SRC]), *dst = SLOT(pkt, packet_slot[P_DST]);
    if (src == NULL || dst == NULL) {
        PyErr_SetString(PyExc_AttributeError, "record(): a packet without its addresses");
        return -1;
    }
    PyObject *key = untracked_if_atomic(pair_key_new(src, dst)); /* the key a ring or a recording may keep */
    if (key == NULL)
        return -1;
    PyObject *recording = PyDict_GetItemWithError(step->open, key);
    int done;
    if (recording == NULL) {
        done = PyErr_Occurred() || step_rings(step) < 0 ? -1 : ring_step(step, key, pkt, novel, src, index);
    } else if (!Py_IS_TYPE(recording, recording_type)) {
        PyErr_SetString(PyExc_TypeError, "record(): a recording must be a _Recording");
        done = -1;
    } else {
        Py_INCREF(recording); /* held while the step reads the recorder's attributes */
        done = step_limits(step) < 0 ? -1 : record_recorded(step, pkt, recording, src, index);
        Py_DECREF(recording);
        if (done == HELD) { /* _record: the least recently recorded is closed first (MAX_OPEN_FILES) */
            PyObject *moved = PyObject_CallMethodOneArg(step->open, names[S_MOVE_TO_END], key);
            done = moved == NULL ? -1 : done;
            Py_XDECREF(moved);
        }
    }
    Py_DECREF(key);
    return done;
}

/* record_one() for a packet whose pair has `recording`. */
static int record_recorded(Step *step, PyObject *pkt, PyObject *recording, PyObject *src, Py_ssize_t index)
{
    long long packets = slot_int(recording, recording_slot[R_PACKETS]);
    if (packets == -1 && PyErr_Occurred())
        return -1;
    if (packets >= step->max_packets)
        return TRUNCATED;
    long long recorded = slot_int(recording, recording_slot[R_SIZE]);
    if (recorded == -1 && PyErr_Occurred())
        return -1;
    /* _fits, asked before the packet is held */
    long long room = step->max_file_bytes - recorded;
    PyObject *held = hold(step, pkt, src, index, room < 0 ? 0 : (Py_ssize_t)room);
    if (held == NULL || held == Py_None) {
        Py_XDECREF(held);
        return held == NULL ? -1 : TRUNCATED;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(PyTuple_GET_ITEM(held, 1));
    if (add_to_slot(recording, recording_slot[R_SIZE], recorded, size) < 0
        || add_to_slot(recording, recording_slot[R_PACKETS], packets, 1) < 0) {
        Py_DECREF(held);
        return -1;
    }
    PyObject *uid = SLOT(recording, recording_slot[R_UID]);
    if (uid == NULL) {
        Py_DECREF(held);
        PyErr_SetString(PyExc_AttributeError, "record(): a recording without its uid");
        return -1;
    }
    PyObject *pending = PyDict_GetItemWithError(step->pending, uid);
    int failed;
    if (pending != NULL) {
        failed = PyList_Check(pending) ? PyList_Append(pending, held) : -1;
        if (failed && !PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "record(): pending packets must be lists");
    } else if (PyErr_Occurred()) {
        failed = -1;
    } else {
        PyObject *list = PyList_New(1);
        failed = list == NULL ? -1 : 0;
        if (list != NULL) {
            PyList_SET_ITEM(list, 0, Py_NewRef(held));
            failed = PyDict_SetItem(step->pending, uid, list);
            Py_DECREF(list);
        }
    }
    Py_DECREF(held);
    return failed ? -1 : HELD;
}

/* _watch (add) or _unwatch (discard) the pair `key`. */
static int watch(Step *step, PyObject *key, int add)
{
    return (add ? PySet_Add(step->watched, key) : PySet_Discard(step->watched, key)) < 0 ? -1 : 0;
}

/* _evict_ring: the least recently active pair's ring dropped (_release: its packets' cost given back, the pair no
 * longer watched), counted. */
static int evict_ring(Step *step)
{
    if (PyDict_GET_SIZE(step->rings) == 0)
        return 0;
    PyObject *oldest = PyObject_CallMethodOneArg(step->rings, names[S_POPITEM], Py_False); /* popitem(last=False) */
    if (oldest == NULL)
        return -1;
    PyObject *key = NULL, *ring = NULL;
    int failed = !PyTuple_CheckExact(oldest) || PyTuple_GET_SIZE(oldest) != 2
                 || !PyTuple_Check(key = PyTuple_GET_ITEM(oldest, 0)) || PyTuple_GET_SIZE(key) != 2;
    if (failed)
        PyErr_SetString(PyExc_TypeError, "record(): a ring's key must be a pair");
    else {
        key = Py_NewRef(key);
        ring = Py_NewRef(PyTuple_GET_ITEM(oldest, 1));
    }
    Py_DECREF(oldest);
    long long freed = 0;
    if (!failed && Py_IS_TYPE(ring, deque_type)) {
        PyObject *iter = PyObject_GetIter(ring), *held;
        failed = iter == NULL;
        while (!failed && (held = PyIter_Next(iter)) != NULL) {
            long long cost = cost_of(held);
            Py_DECREF(held);
            failed = cost == -1 && PyErr_Occurred();
            freed += cost;
        }
        Py_XDECREF(iter);
        failed |= PyErr_Occurred() != NULL;
    } else if (!failed) {
        freed = cost_of(ring);
        failed = freed == -1 && PyErr_Occurred();
    }
    /* a ring holds a packet at least: its pair is unwatched */
    if (!failed) {
        step->buffered -= freed;
        step->evicted += 1;
        failed = watch(step, key, 0) < 0;
    }
    Py_XDECREF(ring);
    Py_XDECREF(key);
    return failed ? -1 : 0;
}

/* deque((ring, held), maxlen=packets_before): a pair's one-packet ring grown. */
static int grow_ring(Step *step, PyObject *key, PyObject *ring, PyObject *held)
{
    PyObject *packets = PyTuple_Pack(2, ring, held);
    PyObject *args = packets == NULL ? NULL : PyTuple_Pack(1, packets);
    PyObject *kwargs = args == NULL ? NULL : Py_BuildValue("{sL}", "maxlen", step->packets_before);
    PyObject *grown = kwargs == NULL ? NULL : PyObject_Call((PyObject *)deque_type, args, kwargs);
    int failed = grown == NULL || PyObject_SetItem(step->rings, key, grown) < 0;
    Py_XDECREF(packets);
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    Py_XDECREF(grown);
    return failed ? -1 : 0;
}

/* _buffer for a pair without a recording (`key`, its pair_key): its ring, the packet in it, then the rings kept
 * within max_flows_buffered and max_buffer_bytes. */
static int ring_step(Step *step, PyObject *key, PyObject *pkt, int novel, PyObject *src, Py_ssize_t index)
{
    PyObject *ring = PyDict_GetItemWithError(step->rings, key), *held;
    if (ring == NULL) {
        if (PyErr_Occurred())
            return -1;
        if (!novel || !step->packets_before)
            return NOT_COUNTED;
        held = hold(step, pkt, src, index, -1); /* a pair's first packet is its ring (a storm's) */
        if (held == NULL)
            return -1;
        Py_ssize_t rings;
        if (PyObject_SetItem(step->rings, key, held) < 0 || watch(step, key, 1) < 0
            || (rings = PyObject_Size(step->rings)) < 0
            || (rings > step->max_flows_buffered && evict_ring(step) < 0)) {
            Py_DECREF(held);
            return -1;
        }
    } else {
        Py_INCREF(ring);
        PyObject *moved = PyObject_CallMethodOneArg(step->rings, names[S_MOVE_TO_END], key);
        Py_XDECREF(moved);
        held = moved == NULL ? NULL : hold(step, pkt, src, index, -1);
        int failed = held == NULL;
        if (!failed && Py_IS_TYPE(ring, deque_type)) {
            Py_ssize_t length = PyObject_Size(ring);
            PyObject *maxlen = length < 0 ? NULL : PyObject_GetAttr(ring, names[S_MAXLEN]);
            failed = maxlen == NULL;
            if (!failed && maxlen != Py_None && PyLong_AsSsize_t(maxlen) == length) { /* the oldest leaves */
                PyObject *oldest = PySequence_GetItem(ring, 0);
                long long cost = oldest == NULL ? -1 : cost_of(oldest);
                Py_XDECREF(oldest);
                if (!PyErr_Occurred())
                    step->buffered -= cost;
            }
            Py_XDECREF(maxlen);
            failed = failed || PyErr_Occurred();
            PyObject *appended = failed ? NULL : PyObject_CallMethodOneArg(ring, names[S_APPEND], held);
            failed = failed || appended == NULL;
            Py_XDECREF(appended);
        } else if (!failed && step->packets_before > 1) {
            failed = grow_ring(step, key, ring, held) < 0;
        } else if (!failed) {
            long long cost = cost_of(ring);
            failed = (cost == -1 && PyErr_Occurred()) || PyObject_SetItem(step->rings, key, held) < 0;
            if (!failed)
                step->buffered -= cost;
        }
        Py_DECREF(ring);
        if (failed) {
            Py_XDECREF(held);
            return -1;
        }
    }
    step->buffered += cost_of(held);
    Py_DECREF(held);
    if (PyErr_Occurred())
        return -1;
    while (step->buffered > step->max_buffer_bytes) {
        Py_ssize_t rings = PyObject_Size(step->rings);
        if (rings <= 0)
            return rings < 0 ? -1 : NOT_COUNTED;
        if (evict_ring(step) < 0)
            return -1;
    }
    return NOT_COUNTED;
}

PyDoc_STRVAR(record_doc,
             "record(recorder, pkt, novel, buf, meta, index, linktype) -> NOT_COUNTED, HELD or TRUNCATED\n\n"
             "EvidenceRecorder.observe for a packet with a frame, frame `index` of the batch (or its own fragments,\n"
             "pkt.frames), `novel` the novel bytes the detector found in it: HELD, held for its pair's recording (in\n"
             "the recorder's _pending); TRUNCATED, past packets_before + packets_after or max_file_bytes (to be\n"
             "counted); NOT_COUNTED, its pair has no recording (the packet in its ring, if it has one or novel bytes).");

static PyObject *record(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (!callable_now("record", nargs, 7))
        return NULL;
    int novel = PyObject_IsTrue(args[2]);
    Py_ssize_t index = PyLong_AsSsize_t(args[5]);
    if (novel < 0 || (index == -1 && PyErr_Occurred()))
        return NULL;
    Step step;
    if (step_open(&step, args[0], args[3], args[4], args[6]) < 0)
        return NULL;
    int done = record_one(&step, args[1], novel, index);
    if (step_close(&step) < 0 || done < 0)
        return NULL;
    return PyLong_FromLong(done);
}

PyDoc_STRVAR(record_passed_doc,
             "record_passed(recorder, packets, passed, frames, buf, meta, linktype) -> truncated\n\n"
             "record() for packets[i], without novel bytes, for each i in `passed` in order, or with novel bytes for\n"
             "each ~i (its frame frames[i], or i when frames is None): how many were past a recording's cap.");

static PyObject *record_passed(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (!callable_now("record_passed", nargs, 7))
        return NULL;
    PyObject *packets = args[1], *passed = args[2], *frames = args[3];
    if (!PyList_Check(packets) || !PyList_Check(passed) || (frames != Py_None && !PyList_Check(frames))) {
        PyErr_SetString(PyExc_TypeError, "record_passed(): packets, passed (and frames) must be lists");
        return NULL;
    }
    Step step;
    if (step_open(&step, args[0], args[4], args[5], args[6]) < 0)
        return NULL;
    Py_ssize_t truncated = 0;
    int done = NOT_COUNTED;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(passed); i++) {
        Py_ssize_t at = PyLong_AsSsize_t(PyList_GET_ITEM(passed, i));
        if (at == -1 && PyErr_Occurred()) {
            done = -1;
            break;
        }
        int novel = at < 0;
        at = novel ? ~at : at;
        Py_ssize_t index = at;
        if (at < 0 || at >= PyList_GET_SIZE(packets) || (frames != Py_None && at >= PyList_GET_SIZE(frames))) {
            PyErr_SetString(PyExc_IndexError, "record_passed(): a passed packet outside the list");
            done = -1;
            break;
        }
        if (frames != Py_None) {
            index = PyLong_AsSsize_t(PyList_GET_ITEM(frames, at));
            if (index == -1 && PyErr_Occurred()) {
                done = -1;
                break;
            }
        }
        done = record_one(&step, PyList_GET_ITEM(packets, at), novel, index);
        if (done < 0)
            break;
        truncated += done == TRUNCATED;
    }
    if (step_close(&step) < 0 || done < 0)
        return NULL;
    return PyLong_FromSsize_t(truncated);
}

/* -- the writer's writes (output/evidencewriter.py EvidenceWriter._write_ready: os.write is the reference) ----- */

PyDoc_STRVAR(write_all_doc,
             "write_all(writes) -> list of int\n\n"
             "Each (fd, parts) of the list `writes` (parts a list of bytes-like objects) written whole, in order, with\n"
             "writev and the interpreter lock released once for all of them (the writer's thread then takes it back\n"
             "once, not once a write, and copies nothing while it holds it): for each, the bytes written (their total\n"
             "unless an error stopped it) or -errno of the error that stopped it.");

#include <errno.h>
#include <limits.h>
#include <sys/uio.h>
#include <unistd.h>

/* The parts of one (fd, parts) of write_all: its iovecs, from `first`, `count` of them, `left` bytes. */
typedef struct {
    int fd;
    Py_ssize_t first, count, left, done;
} WriteItem;

/* One item written as far as the system takes it (its iovecs moved on as they are written). */
static void write_item(WriteItem *item, struct iovec *iov)
{
    Py_ssize_t k = item->first, end = item->first + item->count;
    while (item->left > 0) {
        while (k < end && iov[k].iov_len == 0)
            k++;
        int batch = end - k < IOV_MAX ? (int)(end - k) : IOV_MAX;
        ssize_t n = writev(item->fd, iov + k, batch);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            item->done = n < 0 ? -errno : item->done;
            return;
        }
        item->done += n;
        item->left -= n;
        for (; n > 0 && k < end; k++) { /* the iovecs written, and the one written in part moved on */
            if ((size_t)n < iov[k].iov_len) {
                iov[k].iov_base = (char *)iov[k].iov_base + n;
                iov[k].iov_len -= (size_t)n;
                break;
            }
            n -= (ssize_t)iov[k].iov_len;
        }
    }
}

/* A file descriptor given as an int (write_all's and close_all's): 0 and *out set, or -1 with an exception. */
static int fd_of(PyObject *value, const char *caller, int *out)
{
    long fd = PyLong_AsLong(value);
    if (fd == -1 && PyErr_Occurred())
        return -1;
    if (fd < 0 || fd > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "%s(): not a file descriptor", caller);
        return -1;
    }
    *out = (int)fd;
    return 0;
}

static PyObject *write_all(PyObject *self, PyObject *writes)
{
    (void)self;
    if (!PyList_Check(writes)) {
        PyErr_SetString(PyExc_TypeError, "write_all(): a list of (fd, parts) expected");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(writes), parts = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(writes, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 || !PyList_Check(PyTuple_GET_ITEM(item, 1))) {
            PyErr_SetString(PyExc_TypeError, "write_all(): a list of (fd, parts) expected, parts a list");
            return NULL;
        }
        parts += PyList_GET_SIZE(PyTuple_GET_ITEM(item, 1));
    }
    Py_buffer *views = PyMem_Calloc((size_t)(parts ? parts : 1), sizeof(Py_buffer));
    struct iovec *iov = PyMem_Calloc((size_t)(parts ? parts : 1), sizeof(struct iovec));
    WriteItem *items = PyMem_Calloc((size_t)(count ? count : 1), sizeof(WriteItem));
    PyObject *out = NULL;
    Py_ssize_t viewed = 0;
    if (views == NULL || iov == NULL || items == NULL) {
        PyErr_NoMemory();
        goto end;
    }
    for (Py_ssize_t i = 0; i < count; i++) { /* every buffer held before the lock is released */
        PyObject *item = PyList_GET_ITEM(writes, i), *list = PyTuple_GET_ITEM(item, 1);
        int fd;
        if (fd_of(PyTuple_GET_ITEM(item, 0), "write_all", &fd) < 0)
            goto end;
        items[i] = (WriteItem){fd, viewed, 0, 0, 0};
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(list) && viewed < parts; j++) { /* parts: the arrays' size */
            if (PyObject_GetBuffer(PyList_GET_ITEM(list, j), &views[viewed], PyBUF_SIMPLE) < 0)
                goto end;
            iov[viewed] = (struct iovec){views[viewed].buf, (size_t)views[viewed].len};
            items[i].left += views[viewed].len;
            items[i].count++;
            viewed++;
        }
        if (items[i].count != PyList_GET_SIZE(list)) {
            PyErr_SetString(PyExc_RuntimeError, "write_all(): parts changed while they were read");
            goto end;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++)
        write_item(&items[i], iov);
    Py_END_ALLOW_THREADS
    out = PyList_New(count);
    for (Py_ssize_t i = 0; out != NULL && i < count; i++) {
        PyObject *n = PyLong_FromSsize_t(items[i].done);
        if (n == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, n);
    }
end:
    for (Py_ssize_t i = 0; i < viewed; i++)
        PyBuffer_Release(&views[i]);
    PyMem_Free(views);
    PyMem_Free(iov);
    PyMem_Free(items);
    return out;
}

/* -- the writer's files (evidencewriter.create_all_py and close_all_py are the references) ------------------- */

PyDoc_STRVAR(create_all_doc,
             "create_all(dir_fd, flags, mode, flows) -> list of tuples of int\n\n"
             "The files of each flow of `flows` (a list of tuples of (name, header) pairs: a flow's files in order)\n"
             "created in the directory `dir_fd` with open(2)'s `flags` and `mode`, each with its header (bytes) written\n"
             "whole, the interpreter lock released once for all of them: for each flow a tuple, for each of its files\n"
             "its descriptor, or -errno of what failed, which ends the tuple (the flow's later files are not created;\n"
             "a file whose header could not be written is closed).");

#include <fcntl.h>

/* One file of create_all: its name and header, held before the lock is released. */
typedef struct {
    const char *name; /* its str's UTF-8, kept by create_all's copy of the list */
    Py_buffer header;
    int flow_start; /* the first file of its flow */
    int result;     /* its descriptor or -errno, once tried (not when an earlier file of its flow failed) */
    int tried;
} NewFile;

/* A file of create_all: opened, its header written whole (write_all's write_item); its descriptor or -errno (a
 * file whose header could not be written is closed). */
static int create_one(int dir_fd, int flags, int mode, NewFile *file)
{
    int fd;
    do
        fd = openat(dir_fd, file->name, flags, mode);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -errno;
    struct iovec header = {file->header.buf, (size_t)file->header.len};
    WriteItem item = {fd, 0, 1, file->header.len, 0};
    write_item(&item, &header);
    if (item.done == file->header.len)
        return fd;
    close(fd);
    return item.done < 0 ? (int)item.done : -EIO;
}

/* The files of create_all's flows, each checked and held (its name's text and its header's buffer); how many were
 * held, which the caller releases, or -1 with an exception. */
static Py_ssize_t hold_new_files(PyObject *flows, NewFile *files, Py_ssize_t capacity)
{
    Py_ssize_t held = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(flows); i++) {
        PyObject *flow = PyList_GET_ITEM(flows, i);
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(flow); j++) {
            PyObject *pair = PyTuple_GET_ITEM(flow, j);
            if (held >= capacity || !PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2
                || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0))) {
                PyErr_SetString(PyExc_TypeError, "create_all(): a flow's files must be (name: str, header) pairs");
                return -held - 1;
            }
            Py_ssize_t size;
            const char *name = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(pair, 0), &size);
            if (name == NULL)
                return -held - 1;
            if ((Py_ssize_t)strlen(name) != size) {
                PyErr_SetString(PyExc_ValueError, "create_all(): embedded null byte in a name");
                return -held - 1;
            }
            if (PyObject_GetBuffer(PyTuple_GET_ITEM(pair, 1), &files[held].header, PyBUF_SIMPLE) < 0)
                return -held - 1;
            files[held].name = name;
            files[held].flow_start = j == 0;
            held++;
        }
    }
    return held;
}

static PyObject *create_all(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "create_all() takes 4 arguments");
        return NULL;
    }
    int values[3];
    for (int i = 0; i < 3; i++) {
        long value = PyLong_AsLong(args[i]);
        if (value == -1 && PyErr_Occurred())
            return NULL;
        if (value < INT_MIN || value > INT_MAX) {
            PyErr_SetString(PyExc_OverflowError, "create_all(): dir_fd, flags and mode must fit an int");
            return NULL;
        }
        values[i] = (int)value;
    }
    if (!PyList_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "create_all(): flows must be a list of tuples");
        return NULL;
    }
    /* a copy of the list: its tuples (and their names and headers) stay as they are while the lock is released */
    PyObject *flows = PyList_GetSlice(args[3], 0, PY_SSIZE_T_MAX);
    if (flows == NULL)
        return NULL;
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(flows); i++) {
        if (!PyTuple_Check(PyList_GET_ITEM(flows, i))) {
            PyErr_SetString(PyExc_TypeError, "create_all(): flows must be a list of tuples");
            Py_DECREF(flows);
            return NULL;
        }
        count += PyTuple_GET_SIZE(PyList_GET_ITEM(flows, i));
    }
    NewFile *files = PyMem_Calloc((size_t)(count ? count : 1), sizeof(NewFile));
    if (files == NULL) {
        Py_DECREF(flows);
        return PyErr_NoMemory();
    }
    Py_ssize_t held = hold_new_files(flows, files, count);
    PyObject *out = NULL;
    if (held >= 0) {
        Py_BEGIN_ALLOW_THREADS
        int failed = 0;
        for (Py_ssize_t k = 0; k < held; k++) {
            failed = files[k].flow_start ? 0 : failed;
            if (!failed) {
                files[k].result = create_one(values[0], values[1], values[2], &files[k]);
                files[k].tried = 1;
                failed = files[k].result < 0;
            }
        }
        Py_END_ALLOW_THREADS
        out = PyList_New(PyList_GET_SIZE(flows));
        for (Py_ssize_t i = 0, k = 0; out != NULL && i < PyList_GET_SIZE(flows); i++) {
            Py_ssize_t size = PyTuple_GET_SIZE(PyList_GET_ITEM(flows, i)), tried = 0;
            while (tried < size && files[k + tried].tried)
                tried++;
            PyObject *results = PyTuple_New(tried);
            for (Py_ssize_t j = 0; results != NULL && j < tried; j++) {
                PyObject *result = PyLong_FromLong(files[k + j].result);
                if (result == NULL)
                    Py_CLEAR(results);
                else
                    PyTuple_SET_ITEM(results, j, result);
            }
            if (results == NULL)
                Py_CLEAR(out);
            else
                PyList_SET_ITEM(out, i, results);
            k += size;
        }
        if (out == NULL) /* the files are there but their descriptors could not be given back: closed */
            for (Py_ssize_t k = 0; k < held; k++)
                if (files[k].tried && files[k].result >= 0)
                    close(files[k].result);
    }
    for (Py_ssize_t k = 0; k < (held >= 0 ? held : -held - 1); k++)
        PyBuffer_Release(&files[k].header);
    PyMem_Free(files);
    Py_DECREF(flows);
    return out;
}

PyDoc_STRVAR(close_all_doc, "close_all(fds) -> None\n\n"
                            "Each descriptor of the list `fds` closed (errors ignored), the interpreter lock released\n"
                            "once for all of them.");

static PyObject *close_all(PyObject *self, PyObject *fds)
{
    (void)self;
    if (!PyList_Check(fds)) {
        PyErr_SetString(PyExc_TypeError, "close_all(): a list of descriptors expected");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(fds);
    int *numbers = PyMem_Calloc((size_t)(count ? count : 1), sizeof(int));
    if (numbers == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < count; i++) {
        if (fd_of(PyList_GET_ITEM(fds, i), "close_all", &numbers[i]) < 0) {
            PyMem_Free(numbers);
            return NULL;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++)
        close(numbers[i]); /* Linux releases the descriptor even when close fails (EINTR included): not retried */
    Py_END_ALLOW_THREADS
    PyMem_Free(numbers);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(run_parts_doc,
             "run_parts(packets, start, sender) -> (end, records, records_size, carried, carried_size)\n\n"
             "The run of HeldPackets of packets[start]'s link type from `start` on (a tuple): where it ends, a list of\n"
             "their records (the packets' own bytes: nothing copied) and their size, and a list of the carried bytes of\n"
             "those `sender` sent and their size (evidencewriter.run_parts_py is the reference).");

static PyObject *run_parts(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (!callable_now("run_parts", nargs, 3))
        return NULL;
    PyObject *packets = args[0], *sender = args[2];
    if (!PyBytes_Check(sender)) {
        PyErr_SetString(PyExc_TypeError, "run_parts(): sender must be bytes");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    if (!PyTuple_Check(packets) || start < 0 || start >= PyTuple_GET_SIZE(packets)) {
        PyErr_SetString(PyExc_IndexError, "run_parts(): start must be in the tuple packets");
        return NULL;
    }
    PyObject *records = PyList_New(0), *carried = PyList_New(0), *linktype = NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(packets), end = start, records_size = 0, carried_size = 0;
    int failed = records == NULL || carried == NULL;
    for (; !failed && end < count; end++) {
        PyObject *held = PyTuple_GET_ITEM(packets, end);
        if (!Py_IS_TYPE(held, (PyTypeObject *)held_type) || !PyBytes_Check(PyTuple_GET_ITEM(held, 1))
            || !PyBytes_Check(PyTuple_GET_ITEM(held, 2)) || !PyBytes_Check(PyTuple_GET_ITEM(held, 3))) {
            PyErr_SetString(PyExc_TypeError, "run_parts(): packets must be HeldPackets of bytes");
            failed = 1;
            break;
        }
        if (linktype == NULL) {
            linktype = PyTuple_GET_ITEM(held, 0);
        } else {
            int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(held, 0), linktype, Py_EQ);
            failed = same < 0;
            if (same <= 0)
                break;
        }
        PyObject *data = PyTuple_GET_ITEM(held, 1), *bytes = PyTuple_GET_ITEM(held, 3);
        int sent = PyObject_RichCompareBool(PyTuple_GET_ITEM(held, 2), sender, Py_EQ);
        failed = sent < 0 || PyList_Append(records, data) < 0 || (sent && PyList_Append(carried, bytes) < 0);
        records_size += PyBytes_GET_SIZE(data);
        carried_size += sent > 0 ? PyBytes_GET_SIZE(bytes) : 0;
    }
    if (failed) {
        Py_XDECREF(records);
        Py_XDECREF(carried);
        return NULL;
    }
    return Py_BuildValue("(nNnNn)", end, records, records_size, carried, carried_size);
}

static PyMethodDef methods[] = {
    {"held_frame", (PyCFunction)(void (*)(void))held_frame, METH_FASTCALL, held_frame_doc},
    {"held_frames", (PyCFunction)(void (*)(void))held_frames, METH_FASTCALL, held_frames_doc},
    {"bind", (PyCFunction)(void (*)(void))bind, METH_FASTCALL, bind_doc},
    {"record", (PyCFunction)(void (*)(void))record, METH_FASTCALL, record_doc},
    {"record_passed", (PyCFunction)(void (*)(void))record_passed, METH_FASTCALL, record_passed_doc},
    {"run_parts", (PyCFunction)(void (*)(void))run_parts, METH_FASTCALL, run_parts_doc},
    {"write_all", (PyCFunction)write_all, METH_O, write_all_doc},
    {"create_all", (PyCFunction)(void (*)(void))create_all, METH_FASTCALL, create_all_doc},
    {"close_all", (PyCFunction)close_all, METH_O, close_all_doc},
    {"bind_recorder", (PyCFunction)(void (*)(void))bind_recorder, METH_FASTCALL, bind_recorder_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "icmpsensor.output._fastevidence",
    "The evidence recorder's per-packet step in C (output/evidencewriter.py is the reference).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastevidence(void)
{
    PyObject *module = PyModule_Create(&module_def);
    if (module != NULL && (PyModule_AddIntConstant(module, "NOT_COUNTED", NOT_COUNTED) < 0
                           || PyModule_AddIntConstant(module, "HELD", HELD) < 0
                           || PyModule_AddIntConstant(module, "TRUNCATED", TRUNCATED) < 0))
        Py_CLEAR(module);
    return module;
}
