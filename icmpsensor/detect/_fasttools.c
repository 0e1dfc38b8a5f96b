/* The tool tracker's per-packet path in C (detect/tunnels.py ToolTracker is the reference).
 *
 * maybe_tool() is the negative check in front of tunnels.recognise: False only when recognise() returns None
 * for every packet with these fields, so the common payload costs a few byte comparisons here instead of the
 * Python dispatch. Each test below is a necessary condition of one check of recognise (named at it); when one
 * holds the Python check runs, so this file never decides that a packet is a tool.
 *
 * Tracker.step() is ToolTracker's echo-request flow memory (observe after recognise, for a request): per
 * (source, destination, ICMP id), the last request's seq, time, size and digests, and the runs that show
 * hping3 --file, Icmp-File-Transfer and nping --data over several packets. The flows live in a Python dict
 * (insertion order, evicted with tunnels.without_oldest as the reference's), each a C struct; the digests
 * are Python's hashes of the payload and of the payload past ping's timestamp, as the reference computes
 * them. The thresholds and the payload checks (icmplib_layout, _is_counting_fill) are the reference's, given to
 * the constructor; _is_periodic is periodic() below (its slices copied a jumbo payload up to sixteen times), given
 * the reference's Windows alphabet and longest period. A match is returned as numbers; the reference formats its text.
 * An empty request is remembered for its reply (ToolTracker._remember_empty) in the owner's _empty_requests,
 * which the reference reads and evicts too: the dict is looked up in the owner's attributes at each use. A reply
 * that answers none of them is answered here (ToolTracker._reply does nothing for it); the one that does, the
 * reference's.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "../_tuples.h"

/* -- maybe_tool ----------------------------------------------------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static unsigned char is_b64[256];
static const unsigned char PINGTUNNEL_MAGIC[4] = {0x30, 0xda, 0xfa, 0x06};
static const unsigned char PYEXFIL_TERM[4] = {0x12, 0x13, 0x14, 0x15};
static const unsigned char PYEXFIL_INIT[6] = {0x12, 0x11, 0x13, 0x12, 0x12, 0x12};
static const unsigned char PYEXFIL_END[4] = {0x15, 0x14, 0x13, 0x12};
/* Egress-Assess: the base64 characters of its delimiter at each alignment, and how far into the payload they are
 * looked for (tunnels._EGRESS_SIGNATURES, _EGRESS_HEAD_CHARS, set by bind()). */
#define N_EGRESS 3
static PyObject *egress_signatures[N_EGRESS];
static Py_ssize_t egress_head_chars = 0;

static int contains(const unsigned char *p, Py_ssize_t n, const void *needle, Py_ssize_t k)
{
    return memmem(p, (size_t)n, needle, (size_t)k) != NULL; /* glibc's: as fast as Python's `in` on a 64 KB payload */
}

static int starts(const unsigned char *p, Py_ssize_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    return (size_t)n >= k && memcmp(p, prefix, k) == 0;
}

static int ends(const unsigned char *p, Py_ssize_t n, const unsigned char *suffix, Py_ssize_t k)
{
    return n >= k && memcmp(p + n - k, suffix, (size_t)k) == 0;
}

static int is_request(long icmp_type) { return icmp_type == 8 || icmp_type == 128; } /* tunnels._REQUEST_TYPES */

static int could_be_tool(const unsigned char *p, Py_ssize_t n, long ident, long icmp_type, long icmp_code,
                         long icmpdoor_id)
{
    if (ident < 0)
        return 0; /* recognise: not an echo message */
    if (ident == icmpdoor_id && n > 0)
        return 1; /* _icmpdoor */
    if (n < 4)
        return 0;
    if (icmp_code == 2 && n == 56 && is_request(icmp_type))
        return 1; /* _icmp_file_transfer_end */
    unsigned first = p[0];
    if (first == 'h' && n >= 5 && (starts(p, n, "hanc") || starts(p, n, "hans")))
        return 1; /* _hans */
    if (first >= 0x45 && first < 0x50 && n >= (Py_ssize_t)(first & 15) * 4 && (Py_ssize_t)(p[2] << 8 | p[3]) == n)
        return 1; /* _raw_ipv4: header length within, total length the payload's */
    if (first >= 0x60 && first < 0x70 && n >= 48 && (p[6] == 6 || p[6] == 17 || p[6] == 58)
        && 40 + (Py_ssize_t)(p[4] << 8 | p[5]) == n)
        return 1; /* _raw_ipv6: an upper layer whose checksum can be verified, payload length the payload's */
    if ((first == 0x0a || first == 0x10 || first == 0x1a || first == 0x22 || first == 0x28 || first == 0x30)
        && contains(p, n, PINGTUNNEL_MAGIC, 4))
        return 1; /* _pingtunnel: its magic somewhere */
    if (is_b64[first] && n >= 16 && !(n & 3)) {
        int all = 1;
        for (int i = 0; i < 16; i++)
            all &= is_b64[p[i]];
        if (all) { /* _base64_family: then _det or _egress_assess */
            if (p[10] == 'w' && p[11] == 'h' && p[12] == 'f')
                return 1; /* _det: "|!|" encoded */
            Py_ssize_t head = n < egress_head_chars ? n : egress_head_chars;
            for (int i = 0; i < N_EGRESS; i++)
                if (egress_signatures[i] == NULL
                    || contains(p, head, PyBytes_AS_STRING(egress_signatures[i]),
                                PyBytes_GET_SIZE(egress_signatures[i])))
                    return 1; /* _egress_assess: its delimiter, base64-encoded (or not bound: ask) */
        }
    }
    if ((first == 'T' || first == 'P' || first == 'E' || first == 'M') && is_request(icmp_type)
        && (starts(p, n, "Test1234\n") || starts(p, n, "Process was not created\n")
            || starts(p, n, "Microsoft Windows") || starts(p, n, "Error: ")))
        return 1; /* _icmpsh */
    if (n >= 28 && (p[12] == 0x40 || p[12] == 0x80) && !p[13] && !p[14] && p[15] <= 4 && !p[16] && !p[17] && !p[8]
        && !p[9])
        return 1; /* _ptunnel's flags, state and zero bytes */
    unsigned last = p[n - 1];
    if (last == 0x15)
        return ends(p, n, PYEXFIL_TERM, 4); /* _pyexfil: a data chunk */
    if (last == 0x12)
        return ends(p, n, PYEXFIL_INIT, 6) || ends(p, n, PYEXFIL_END, 4); /* _pyexfil: start, termination */
    if (last == 0x3e)
        return is_request(icmp_type); /* _icmpsh_prompt */
    return 0;
}

PyDoc_STRVAR(maybe_tool_doc,
             "maybe_tool(payload, ident, icmp_type, icmp_code, icmpdoor_id) -> bool\n\n"
             "False only when tunnels.recognise returns None for every echo message with these fields.");

static PyObject *maybe_tool(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 5 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "maybe_tool(payload: bytes, ident, icmp_type, icmp_code, icmpdoor_id)");
        return NULL;
    }
    long values[4];
    for (int i = 0; i < 4; i++) {
        values[i] = PyLong_AsLong(args[i + 1]);
        if (values[i] == -1 && PyErr_Occurred())
            return NULL;
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    return PyBool_FromLong(could_be_tool(p, PyBytes_GET_SIZE(args[0]), values[0], values[1], values[2], values[3]));
}

PyDoc_STRVAR(bind_doc,
             "bind(egress_signatures, egress_head_chars)\n\n"
             "tunnels._EGRESS_SIGNATURES (3 bytes objects) and _EGRESS_HEAD_CHARS, for maybe_tool.");

static PyObject *bind(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2 || !PyTuple_Check(args[0]) || PyTuple_GET_SIZE(args[0]) != N_EGRESS) {
        PyErr_SetString(PyExc_TypeError, "bind(egress_signatures: tuple of 3 bytes, egress_head_chars: int)");
        return NULL;
    }
    Py_ssize_t head = PyLong_AsSsize_t(args[1]);
    if (head == -1 && PyErr_Occurred())
        return NULL;
    for (int i = 0; i < N_EGRESS; i++)
        if (!PyBytes_Check(PyTuple_GET_ITEM(args[0], i))) {
            PyErr_SetString(PyExc_TypeError, "egress signatures must be bytes");
            return NULL;
        }
    for (int i = 0; i < N_EGRESS; i++)
        Py_XSETREF(egress_signatures[i], Py_NewRef(PyTuple_GET_ITEM(args[0], i)));
    egress_head_chars = head;
    Py_RETURN_NONE;
}

/* -- Tracker ---------------------------------------------------------------------------------------------- */

/* One flow of echo requests: tunnels._RequestFlow. */
typedef struct {
    PyObject_HEAD
    long seq;
    double ts;
    long first_seq;
    Py_ssize_t size;
    Py_hash_t digest;
    Py_hash_t data_digest;
    long hping_run, ift_run, nping_run;
    int nping_irregular;
} RequestFlow;

static PyObject *request_flow_state(RequestFlow *flow, PyObject *unused)
{
    (void)unused;
    return Py_BuildValue("(ldlnnnlllO)", flow->seq, flow->ts, flow->first_seq, flow->size, (Py_ssize_t)flow->digest,
                         (Py_ssize_t)flow->data_digest, flow->hping_run, flow->ift_run, flow->nping_run,
                         flow->nping_irregular ? Py_True : Py_False);
}

static PyMethodDef request_flow_methods[] = {
    {"state", (PyCFunction)request_flow_state, METH_NOARGS,
     "(seq, ts, first_seq, size, digest, data_digest, hping_run, ift_run, nping_run, nping_irregular)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RequestFlowType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "icmpsensor.detect._fasttools.RequestFlow",
    .tp_basicsize = sizeof(RequestFlow),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_methods = request_flow_methods,
    .tp_doc = "A flow of echo requests (tunnels._RequestFlow).",
};

typedef struct {
    PyObject_HEAD
    PyObject *flows; /* dict: (src, dst, ident) -> RequestFlow */
    PyObject *evict; /* tunnels.without_oldest */
    PyObject *icmplib_layout, *windows_alphabet, *is_counting_fill; /* windows_alphabet: bytes, not empty */
    PyObject *owner; /* the FastToolTracker's __dict__: its _empty_requests and max_pending */
    Py_ssize_t longest_period;
    Py_ssize_t max_flows;
    Py_ssize_t timestamp_bytes, prefix, ift_size; /* prefix: novelty.PREFIX */
    long hping_run, ift_run, nping_run, nping_max_step;
    double ift_max_gap;
    long icmpdoor_id;
} Tracker;

static int tracker_traverse(Tracker *self, visitproc visit, void *arg)
{
    Py_VISIT(self->flows);
    Py_VISIT(self->evict);
    Py_VISIT(self->icmplib_layout);
    Py_VISIT(self->windows_alphabet);
    Py_VISIT(self->is_counting_fill);
    Py_VISIT(self->owner);
    return 0;
}

static int tracker_clear(Tracker *self)
{
    Py_CLEAR(self->flows);
    Py_CLEAR(self->evict);
    Py_CLEAR(self->icmplib_layout);
    Py_CLEAR(self->windows_alphabet);
    Py_CLEAR(self->is_counting_fill);
    Py_CLEAR(self->owner);
    return 0;
}

static void tracker_dealloc(Tracker *self)
{
    PyObject_GC_UnTrack(self);
    tracker_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int tracker_init(Tracker *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"max_flows", "evict", "icmplib_layout", "windows_alphabet", "longest_period",
                            "is_counting_fill", "timestamp_bytes", "prefix", "ift_size", "ift_max_gap", "hping_run",
                            "ift_run", "nping_run", "nping_max_step", "icmpdoor_id", "owner", NULL};
    PyObject *evict, *icmplib_layout, *windows_alphabet, *is_counting_fill, *owner;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "nOOO!nOnnndlllllO!", names, &self->max_flows, &evict,
                                     &icmplib_layout, &PyBytes_Type, &windows_alphabet, &self->longest_period,
                                     &is_counting_fill, &self->timestamp_bytes, &self->prefix, &self->ift_size,
                                     &self->ift_max_gap, &self->hping_run, &self->ift_run, &self->nping_run,
                                     &self->nping_max_step, &self->icmpdoor_id, &PyDict_Type, &owner))
        return -1;
    if (self->timestamp_bytes < 0 || self->prefix <= self->timestamp_bytes) {
        PyErr_SetString(PyExc_ValueError, "0 <= timestamp_bytes < prefix");
        return -1;
    }
    if (PyBytes_GET_SIZE(windows_alphabet) == 0) {
        PyErr_SetString(PyExc_ValueError, "windows_alphabet must not be empty");
        return -1;
    }
    Py_XSETREF(self->owner, Py_NewRef(owner));
    PyObject *flows = PyDict_New();
    if (flows == NULL)
        return -1;
    Py_XSETREF(self->flows, flows);
    Py_INCREF(evict);
    Py_XSETREF(self->evict, evict);
    Py_INCREF(icmplib_layout);
    Py_XSETREF(self->icmplib_layout, icmplib_layout);
    Py_XSETREF(self->windows_alphabet, Py_NewRef(windows_alphabet));
    Py_INCREF(is_counting_fill);
    Py_XSETREF(self->is_counting_fill, is_counting_fill);
    return 0;
}

/* The request the flow saw last (tunnels.ToolTracker._request's last line). */
static void remember_last(RequestFlow *flow, long seq, double ts, Py_ssize_t size, Py_hash_t digest,
                          Py_hash_t data_digest)
{
    flow->seq = seq;
    flow->ts = ts;
    flow->size = size;
    flow->digest = digest;
    flow->data_digest = data_digest;
}

static inline long swap16(long value) { return (value & 0xFF) << 8 | (value >> 8 & 0xFF); }

/* tunnels._is_periodic (the reference) of p[0:n]: the Windows alphabet cycled from its first byte (nothing at all
 * included), or, for two bytes or more, a unit of at most `longest` bytes (and half of n) repeated: p[k:] equal to
 * p[:n-k], compared in place (the reference's slices copy the payload for each period whose first byte fits). */
static int periodic(const unsigned char *p, Py_ssize_t n, const unsigned char *alphabet, Py_ssize_t letters,
                    Py_ssize_t longest)
{
    Py_ssize_t at = 0;
    while (at < n && memcmp(p + at, alphabet, (size_t)(n - at < letters ? n - at : letters)) == 0)
        at += letters;
    if (at >= n)
        return 1;
    if (n < 2)
        return 0;
    Py_ssize_t most = n / 2 < longest ? n / 2 : longest;
    for (Py_ssize_t k = 1; k <= most; k++)
        if (p[k] == p[0] && memcmp(p + k, p, (size_t)(n - k)) == 0)
            return 1;
    return 0;
}

PyDoc_STRVAR(is_periodic_doc, "is_periodic(payload, windows_alphabet, longest) -> bool\n\n"
                              "tunnels._is_periodic(payload, longest) (the reference), the Windows alphabet given:\n"
                              "what Tracker's nping check asks.");

static PyObject *is_periodic(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1]) || PyBytes_GET_SIZE(args[1]) == 0
        || !PyLong_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "is_periodic(payload: bytes, windows_alphabet: bytes (not empty), longest: int)");
        return NULL;
    }
    Py_ssize_t longest = PyLong_AsSsize_t(args[2]);
    if (longest == -1 && PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(periodic((const unsigned char *)PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]),
                                    (const unsigned char *)PyBytes_AS_STRING(args[1]), PyBytes_GET_SIZE(args[1]),
                                    longest));
}

/* 1, 0, or -1 with an exception set: the truth of check(payload[, seq]). */
static int call_check(PyObject *check, PyObject *payload, PyObject *seq)
{
    PyObject *result = seq == NULL ? PyObject_CallOneArg(check, payload)
                                   : PyObject_CallFunctionObjArgs(check, payload, seq, NULL);
    if (result == NULL)
        return -1;
    int truth = PyObject_IsTrue(result);
    Py_DECREF(result);
    return truth;
}

enum { MATCH_NONE = 0, MATCH_HPING = 1, MATCH_IFT = 2, MATCH_NPING = 3 };

/* ToolTracker._step on a flow whose request this is (same size as the last). kind and the numbers its text
 * needs in out[0..1]; -1 with an exception set. */
static int step_flow(Tracker *self, RequestFlow *flow, long seq, double ts, PyObject *payload, PyObject *seq_obj,
                     Py_hash_t digest, Py_hash_t data_digest, long out[2])
{
    Py_ssize_t n = PyBytes_GET_SIZE(payload);
    long seq_step = (seq - flow->seq) & 0xFFFF;
    int same_size = n == flow->size;
    int chunk = n > 0 && same_size && data_digest != flow->data_digest;
    int host_order_step = chunk && seq_step != 1 && ((swap16(seq) - swap16(flow->seq)) & 0xFFFF) == 1;
    flow->hping_run = host_order_step ? flow->hping_run + 1 : 0;
    int ift = chunk && seq_step == 1 && n == self->ift_size && ts - flow->ts <= self->ift_max_gap;
    if (ift) {
        int icmplib = call_check(self->icmplib_layout, payload, seq_obj);
        if (icmplib < 0)
            return -1;
        ift = !icmplib;
    }
    flow->ift_run = ift ? flow->ift_run + 1 : 0;
    int nping = flow->first_seq == 1 && seq_step <= self->nping_max_step && n > 0 && same_size
                && digest == flow->digest;
    if (nping) {
        nping = !periodic((const unsigned char *)PyBytes_AS_STRING(payload), n,
                          (const unsigned char *)PyBytes_AS_STRING(self->windows_alphabet),
                          PyBytes_GET_SIZE(self->windows_alphabet), self->longest_period);
    }
    if (nping) {
        int counting = call_check(self->is_counting_fill, payload, NULL);
        if (counting < 0)
            return -1;
        nping = !counting;
    }
    flow->nping_run = nping ? flow->nping_run + 1 : 0;
    if (flow->hping_run >= self->hping_run) {
        out[0] = flow->seq;
        out[1] = seq;
        return MATCH_HPING;
    }
    if (flow->ift_run >= self->ift_run) {
        out[0] = seq;
        out[1] = flow->ift_run;
        return MATCH_IFT;
    }
    flow->nping_irregular = flow->nping_run && (flow->nping_irregular || seq_step != 1);
    if (flow->nping_run >= self->nping_run && flow->nping_irregular && seq != flow->first_seq) {
        out[0] = flow->first_seq;
        out[1] = seq;
        return MATCH_NPING;
    }
    return MATCH_NONE;
}

PyDoc_STRVAR(step_doc,
             "step(src, dst, ident, seq, ts, payload[, rest]) -> None | (kind, a, b)\n\n"
             "ToolTracker.observe for an echo request that recognise() did not match: None, or a match:\n"
             "(1, the flow's last seq, seq) hping3-file, (2, seq, run) icmp-file-transfer, (3, first seq, seq)\n"
             "nping-data. rest: the hash of the payload past the sketch's prefix (None: made here).");

/* hash((a, rest)) as Python makes it; -1 with an exception set (a tuple's hash is never -1). */
#if SIZEOF_PY_UHASH_T < 8
static Py_hash_t pair_hash(Py_hash_t a, PyObject *rest) /* tuplehash's 32-bit rounds differ: the tuple hashed */
{
    PyObject *first = PyLong_FromSsize_t(a);
    PyObject *pair = first == NULL ? NULL : PyTuple_Pack(2, first, rest);
    Py_hash_t hash = pair == NULL ? -1 : PyObject_Hash(pair);
    Py_XDECREF(first);
    Py_XDECREF(pair);
    return hash;
}
#else
static Py_hash_t pair_hash(Py_hash_t a, PyObject *rest)
{
    /* hash(int(a)), as long_hash makes it: |a| reduced modulo the hash modulus, its sign kept, -1 given as -2 */
    Py_uhash_t magnitude = a < 0 ? 0 - (Py_uhash_t)a : (Py_uhash_t)a;
    Py_uhash_t lanes[2] = {(magnitude % _PyHASH_MODULUS) * (a < 0 ? (Py_uhash_t)-1 : 1), 0};
    if (lanes[0] == (Py_uhash_t)-1)
        lanes[0] = (Py_uhash_t)-2;
    Py_hash_t second = PyObject_Hash(rest);
    if (second == -1)
        return -1;
    lanes[1] = (Py_uhash_t)second;
    /* then hash((a, rest)) as tuplehash mixes its items' hashes (CPython's xxHash-derived rounds, since 3.8; the
     * tests hold this to Python's own hash of the pair) */
    const Py_uhash_t prime1 = 11400714785074694791ULL, prime2 = 14029467366897019727ULL,
                     prime5 = 2870177450012600261ULL;
    Py_uhash_t acc = prime5;
    for (int i = 0; i < 2; i++) {
        acc += lanes[i] * prime2;
        acc = (acc << 31) | (acc >> 33);
        acc *= prime1;
    }
    acc += 2 ^ (prime5 ^ 3527539UL);
    return acc == (Py_uhash_t)-1 ? 1546275796 : (Py_hash_t)acc;
}
#endif

/* tunnels.request_digests: a bytes object's hash is _Py_HashBytes of its bytes, so slices need no object. */
static int request_digests(Tracker *self, PyObject *payload, PyObject *rest, Py_hash_t *digest,
                           Py_hash_t *data_digest)
{
    Py_ssize_t n = PyBytes_GET_SIZE(payload), skip = self->timestamp_bytes, prefix = self->prefix;
    const char *p = PyBytes_AS_STRING(payload);
    if (n <= prefix) {
        if ((*digest = PyObject_Hash(payload)) == -1)
            return -1;
        *data_digest = n > skip ? _Py_HashBytes(p + skip, n - skip) : *digest;
        return 0;
    }
    PyObject *made = NULL;
    if (rest == NULL || rest == Py_None)
        rest = made = PyLong_FromSsize_t(_Py_HashBytes(p + prefix, n - prefix));
    else if (!PyLong_Check(rest)) {
        PyErr_SetString(PyExc_TypeError, "rest must be an int or None");
        return -1;
    }
    if (rest == NULL)
        return -1;
    *digest = pair_hash(_Py_HashBytes(p, prefix), rest);
    *data_digest = *digest == -1 ? -1 : pair_hash(_Py_HashBytes(p + skip, prefix - skip), rest);
    Py_XDECREF(made);
    return *digest == -1 || *data_digest == -1 ? -1 : 0;
}

/* step() on parsed arguments (payload is bytes; rest NULL, None or an int). */
static PyObject *step_request(Tracker *self, PyObject *src, PyObject *dst, PyObject *ident, PyObject *seq_obj,
                              double ts, PyObject *payload, PyObject *rest)
{
    if (self->flows == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Tracker not initialised");
        return NULL;
    }
    long seq = PyLong_AsLong(seq_obj);
    if (seq == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t n = PyBytes_GET_SIZE(payload);
    Py_hash_t digest, data_digest;
    if (request_digests(self, payload, rest, &digest, &data_digest) < 0)
        return NULL;
    PyObject *key = PyTuple_Pack(3, src, dst, ident); /* untracked only where it is stored */
    if (key == NULL)
        return NULL;
    RequestFlow *flow = (RequestFlow *)PyDict_GetItemWithError(self->flows, key);
    if (flow == NULL) {
        if (PyErr_Occurred())
            goto fail;
        if (PyDict_GET_SIZE(self->flows) >= self->max_flows) {
            PyObject *kept = PyObject_CallOneArg(self->evict, self->flows);
            if (kept == NULL)
                goto fail;
            if (!PyDict_CheckExact(kept)) {
                Py_DECREF(kept);
                PyErr_SetString(PyExc_TypeError, "evict must return a dict");
                goto fail;
            }
            Py_SETREF(self->flows, kept);
        }
        flow = PyObject_New(RequestFlow, &RequestFlowType);
        if (flow == NULL)
            goto fail;
        remember_last(flow, seq, ts, n, digest, data_digest);
        flow->first_seq = seq;
        flow->hping_run = flow->ift_run = flow->nping_run = 0;
        flow->nping_irregular = 0;
        int failed = PyDict_SetItem(self->flows, untracked_if_atomic(key), (PyObject *)flow);
        Py_DECREF(flow);
        Py_DECREF(key);
        if (failed)
            return NULL;
        Py_RETURN_NONE;
    }
    Py_DECREF(key);
    Py_INCREF(flow); /* the checks step_flow calls run Python code */
    int kind = MATCH_NONE;
    long out[2] = {0, 0};
    if (n && n == flow->size && (data_digest != flow->data_digest || (digest == flow->digest && flow->first_seq == 1))) {
        kind = step_flow(self, flow, seq, ts, payload, seq_obj, digest, data_digest, out);
        if (kind < 0) {
            Py_DECREF(flow);
            return NULL;
        }
    } else { /* neither a new chunk nor a repeated nping payload: what step_flow would do, without the work */
        flow->hping_run = flow->ift_run = flow->nping_run = 0;
    }
    remember_last(flow, seq, ts, n, digest, data_digest);
    Py_DECREF(flow);
    if (kind == MATCH_NONE)
        Py_RETURN_NONE;
    return Py_BuildValue("(ill)", kind, out[0], out[1]);
fail:
    Py_DECREF(key);
    return NULL;
}

static PyObject *tracker_step(Tracker *self, PyObject *const *args, Py_ssize_t nargs)
{
    if ((nargs != 6 && nargs != 7) || !PyBytes_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError, "step(src, dst, ident, seq, ts, payload: bytes[, rest])");
        return NULL;
    }
    double ts = PyFloat_AsDouble(args[4]);
    if (ts == -1.0 && PyErr_Occurred())
        return NULL;
    return step_request(self, args[0], args[1], args[2], args[3], ts, args[5], nargs == 7 ? args[6] : NULL);
}

/* What observe() returns when the reference must handle the packet, and how (see observe_doc). */
enum { ASK_RECOGNISE = 0, ASK_FOLLOW = 1 };

static PyObject *str_empty_requests, *str_max_pending;

/* ToolTracker._remember_empty for an empty request's key: 1 done, 0 when the owner's table is not the reference's
 * types (nothing changed: the reference does it), -1 on an error. */
static int remember_empty(Tracker *self, PyObject *src, PyObject *dst, PyObject *ident, PyObject *seq)
{
    PyObject *pending = PyDict_GetItemWithError(self->owner, str_empty_requests);
    PyObject *max_pending = pending == NULL ? NULL : PyDict_GetItemWithError(self->owner, str_max_pending);
    if (max_pending == NULL || !PyDict_CheckExact(pending) || !PyLong_CheckExact(max_pending))
        return PyErr_Occurred() ? -1 : 0;
    Py_ssize_t limit = PyLong_AsSsize_t(max_pending);
    if (limit == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    PyObject *key = untracked_if_atomic(PyTuple_Pack(4, src, dst, ident, seq));
    if (key == NULL)
        return -1;
    int known = PyDict_Contains(pending, key), failed = known < 0;
    if (!known) {
        Py_INCREF(pending);
        if (PyDict_GET_SIZE(pending) >= limit) { /* the oldest eighth forgotten (without_oldest) */
            Py_SETREF(pending, PyObject_CallOneArg(self->evict, pending));
            failed = pending == NULL || PyDict_SetItem(self->owner, str_empty_requests, pending) < 0;
        }
        failed = failed || PyDict_SetItem(pending, key, Py_None) < 0;
        Py_XDECREF(pending);
    }
    Py_DECREF(key);
    return failed ? -1 : 1;
}

/* Whether an echo reply (src, dst, ident, seq) answers an empty request ToolTracker._reply remembers (its request,
 * (dst, src, ident, seq), in the owner's _empty_requests): 1, or 0; also 1 when the owner's table is not the
 * reference's type (the reference then decides); -1 on an error. */
static int answers_empty(Tracker *self, PyObject *src, PyObject *dst, PyObject *ident, PyObject *seq)
{
    PyObject *pending = PyDict_GetItemWithError(self->owner, str_empty_requests);
    if (pending == NULL || !PyDict_CheckExact(pending))
        return PyErr_Occurred() ? -1 : 1;
    PyObject *request = PyTuple_Pack(4, dst, src, ident, seq);
    int answers = request == NULL ? -1 : PyDict_Contains(pending, request);
    Py_XDECREF(request);
    return answers;
}

/* observe()'s arguments: the packet's fields. */
enum { A_PAYLOAD, A_IDENT, A_TYPE, A_CODE, A_SRC, A_DST, A_SEQ, A_TS, N_ARGS, A_REST = N_ARGS };

PyDoc_STRVAR(observe_doc,
             "observe(payload, ident, icmp_type, icmp_code, src, dst, seq, ts[, rest]) -> None | (kind, a, b) | int\n\n"
             "ToolTracker.observe for an echo request that maybe_tool() passes (an empty one remembered for its\n"
             "reply first, as _follow does): step()'s result; None for an echo reply that maybe_tool() passes and\n"
             "that answers no empty request remembered (_reply: nothing to do). For every other packet an int, with\n"
             "nothing changed, saying what the reference must do: 0 all of observe (recognise() may match, or not an\n"
             "echo message), 1 its flow memory (_follow: the reply to an empty request). rest as step()'s.");

static PyObject *tracker_observe(Tracker *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != N_ARGS && nargs != N_ARGS + 1) {
        PyErr_SetString(PyExc_TypeError, "observe(payload, ident, icmp_type, icmp_code, src, dst, seq, ts[, rest])");
        return NULL;
    }
    long numbers[3];
    for (int i = 0; i < 3; i++) {
        numbers[i] = PyLong_AsLong(args[A_IDENT + i]);
        if (numbers[i] == -1 && PyErr_Occurred())
            return NULL;
    }
    PyObject *payload = args[A_PAYLOAD];
    long ident = numbers[0], icmp_type = numbers[1];
    if (!PyBytes_Check(payload) || ident < 0
        || could_be_tool((const unsigned char *)PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload), ident,
                         icmp_type, numbers[2], self->icmpdoor_id))
        return PyLong_FromLong(ASK_RECOGNISE);
    if (!is_request(icmp_type)) {
        int answers = answers_empty(self, args[A_SRC], args[A_DST], args[A_IDENT], args[A_SEQ]);
        return answers < 0 ? NULL : answers ? PyLong_FromLong(ASK_FOLLOW) : Py_NewRef(Py_None);
    }
    if (PyBytes_GET_SIZE(payload) == 0) { /* ToolTracker._follow: remembered for its reply, then followed */
        int kept = remember_empty(self, args[A_SRC], args[A_DST], args[A_IDENT], args[A_SEQ]);
        if (kept <= 0)
            return kept < 0 ? NULL : PyLong_FromLong(ASK_FOLLOW);
    }
    double ts = PyFloat_AsDouble(args[A_TS]);
    if (ts == -1.0 && PyErr_Occurred())
        return NULL;
    return step_request(self, args[A_SRC], args[A_DST], args[A_IDENT], args[A_SEQ], ts, payload,
                        nargs > A_REST ? args[A_REST] : NULL);
}

static PyObject *tracker_flows(Tracker *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->flows);
}

static PyGetSetDef tracker_getset[] = {
    {"flows", (getter)tracker_flows, NULL, "the flows: (src, dst, ident) -> RequestFlow", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef tracker_methods[] = {
    {"step", (PyCFunction)(void (*)(void))tracker_step, METH_FASTCALL, step_doc},
    {"observe", (PyCFunction)(void (*)(void))tracker_observe, METH_FASTCALL, observe_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TrackerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "icmpsensor.detect._fasttools.Tracker",
    .tp_basicsize = sizeof(Tracker),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)tracker_init,
    .tp_dealloc = (destructor)tracker_dealloc,
    .tp_traverse = (traverseproc)tracker_traverse,
    .tp_clear = (inquiry)tracker_clear,
    .tp_methods = tracker_methods,
    .tp_getset = tracker_getset,
    .tp_doc = "ToolTracker's echo-request flows (see the module's comment).",
};

/* -- a full table's oldest eighth ------------------------------------------------------------------------- */

PyDoc_STRVAR(drop_oldest_doc,
             "drop_oldest(table) -> list\n\n"
             "tunnels.drop_oldest (_drop_oldest_py, the reference) for a dict: its oldest len // 8 + 1 entries (first\n"
             "inserted) taken out in order, each key hashed once, their values returned in order. A full table's shed:\n"
             "a storm longer than the hosts' table drops an eighth of 100,000 hosts at once.");

static PyObject *drop_oldest(PyObject *self, PyObject *table)
{
    (void)self;
    if (!PyDict_CheckExact(table)) { /* a subclass's order may not be its entries' (OrderedDict): the reference's */
        PyErr_SetString(PyExc_TypeError, "drop_oldest(table: dict)");
        return NULL;
    }
    Py_ssize_t count = PyDict_GET_SIZE(table) ? PyDict_GET_SIZE(table) / 8 + 1 : 0, at = 0, taken = 0;
    PyObject *keys = PyList_New(count), *values = keys == NULL ? NULL : PyList_New(count), *key, *value;
    if (values == NULL) {
        Py_XDECREF(keys);
        return NULL;
    }
    while (taken < count && PyDict_Next(table, &at, &key, &value)) { /* in their order, none hashed */
        PyList_SET_ITEM(keys, taken, Py_NewRef(key));
        PyList_SET_ITEM(values, taken, Py_NewRef(value));
        taken++;
    }
    int failed = 0;
    for (Py_ssize_t i = 0; i < taken && !failed; i++)
        failed = PyDict_DelItem(table, PyList_GET_ITEM(keys, i)) < 0; /* each key hashed once */
    Py_DECREF(keys);
    if (failed)
        Py_CLEAR(values);
    return values;
}

/* -- the module ------------------------------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"maybe_tool", (PyCFunction)(void (*)(void))maybe_tool, METH_FASTCALL, maybe_tool_doc},
    {"is_periodic", (PyCFunction)(void (*)(void))is_periodic, METH_FASTCALL, is_periodic_doc},
    {"drop_oldest", (PyCFunction)drop_oldest, METH_O, drop_oldest_doc},
    {"bind", (PyCFunction)(void (*)(void))bind, METH_FASTCALL, bind_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "icmpsensor.detect._fasttools",
    "The tool tracker's per-packet path in C (detect/tunnels.py is the reference).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fasttools(void)
{
    for (const char *c = B64; *c; c++)
        is_b64[(unsigned char)*c] = 1;
    if ((str_empty_requests = PyUnicode_InternFromString("_empty_requests")) == NULL
        || (str_max_pending = PyUnicode_InternFromString("max_pending")) == NULL)
        return NULL;
    if (PyType_Ready(&RequestFlowType) < 0 || PyType_Ready(&TrackerType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "Tracker", (PyObject *)&TrackerType) < 0
        || PyModule_AddObjectRef(module, "RequestFlow", (PyObject *)&RequestFlowType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
