/* NoticeAggregator.filter and _fold in C: which notices are folded into a storm's aggregates (notice/aggregate.py;
 * filter's loop and the methods _fold, _past_note_quota, _fold_under, _count and _remember are the reference, and
 * tests/unit/test_fastaggregate.py holds the two equal on random notice streams). filter calls advance, in Python,
 * only where it may tell or change something.
 *
 * A notice storm folds two notices an alerted flow (its DataExfil, then its ExfilSummary); in Python each fold cost
 * ~2 us over five method calls, ~15 % of a storm's time end to end. The same steps here, on the same Python objects:
 * the aggregator's dicts, the _Fold records (their slots read and written in place, as the other accelerators do
 * with theirs), heapq for the largest folded notices. Only the rare step of forgetting the oldest eighth of the flows
 * remembered (MAX_UIDS) goes back to Python (NoticeAggregator._remember).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>

#include "../_slots.h"
#include "../_tuples.h"
#include "_aggregate_api.h"

enum { N_TS, N_NOTE, N_SRC, N_DST, N_UID, N_BYTES_SENT, N_NOTICE };
static const char *const NOTICE_FIELDS[N_NOTICE] = {"ts", "note", "src", "dst", "uid", "bytes_sent"};
enum { D_FOLDED, D_PEERS, D_SAMPLE, D_BYTES_SENT, D_LAST, D_CAPPED, D_LARGEST, D_SAMPLE_KEYS, N_FOLD };
static const char *const FOLD_FIELDS[N_FOLD] = {"folded", "peers", "sample", "bytes_sent", "last", "capped",
                                                "largest", "sample_keys"};
enum {
    A_MAX_NOTICES, A_SAMPLE, A_MAX_PER_NOTE, A_LARGEST_KEPT, A_FOLDS, A_WRITTEN, A_UIDS, A_PEER_ENTRIES,
    A_LAST_FOLDED, A_FIRST_FOLDED, A_WINDOW_START, A_INTERVAL, A_FOLDED, A_SAMPLE_KEY, N_AGGREGATOR
};
static const char *const AGGREGATOR_FIELDS[N_AGGREGATOR] = {
    "max_notices", "sample", "max_per_note", "_largest_kept", "_folds", "_written", "_uids", "_peer_entries",
    "_last_folded", "_first_folded", "window_start", "interval", "folded", "_sample_key"};

/* What a fold reads of a notice (borrowed references): a Notice's slots (fields_of), or a notice a detector's C path
 * has not made yet (try_fold). */
typedef struct {
    PyObject *ts, *note, *src, *dst, *uid, *bytes_sent;
} Fields;

static PyTypeObject *notice_type, *fold_type, *aggregator_type;
static Py_ssize_t notice_slot[N_NOTICE], fold_slot[N_FOLD], aggregator_slot[N_AGGREGATOR];
static PyObject *not_per_host, *summary_note, *heappush, *heapreplace;
static PyObject *per_packet; /* aggregate.PER_PACKET: notes folded whatever their flow's earlier notices */
static PyObject *never_folded; /* aggregate.NEVER_FOLDED: a notice of a flow that sent as many bytes is written */
static PyObject *str_to, *str_from, *any_role, *any_host, *str_remember, *str_first, *str_last, *str_src, *str_dst;
static PyObject *one, *str_advance;
static Py_ssize_t max_peers, max_peer_entries, max_uids, max_keys;
static double quiet, max_hold;

#define BIND_ARGS "bind(notice_type, fold_type, aggregator_type, not_per_host, summary_note, any_host, max_peers, " \
                  "max_peer_entries, max_uids, max_keys, heappush, heapreplace, quiet, per_packet, never_folded, " \
                  "max_hold)"
PyDoc_STRVAR(bind_doc, BIND_ARGS "\n\n"
                       "record.Notice, aggregate._Fold and aggregate.NoticeAggregator (their slots are read and\n"
                       "written in place), aggregate.NOT_PER_HOST, EXFIL_SUMMARY's name, ANY_HOST, MAX_PEERS,\n"
                       "MAX_PEER_ENTRIES, MAX_UIDS, MAX_KEYS, heapq.heappush, heapq.heapreplace, QUIET,\n"
                       "aggregate.PER_PACKET, NEVER_FOLDED and MAX_HOLD.");

static void forget_note_kinds(void);

static PyObject *bind(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 16 || !PyFloat_Check(args[15]) || !PyAnySet_Check(args[3]) || !PyAnySet_Check(args[13]) || !PyLong_Check(args[14]) || !PyUnicode_Check(args[4]) || !PyTuple_Check(args[5])
        || PyTuple_GET_SIZE(args[5]) != 2 || !PyCallable_Check(args[10]) || !PyCallable_Check(args[11])
        || !PyFloat_Check(args[12])) {
        PyErr_SetString(PyExc_TypeError, BIND_ARGS);
        return NULL;
    }
    Py_ssize_t notice[N_NOTICE], fold[N_FOLD], aggregator[N_AGGREGATOR], limits[4];
    if (slot_offsets(args[0], NOTICE_FIELDS, N_NOTICE, notice) < 0 || slot_offsets(args[1], FOLD_FIELDS, N_FOLD, fold) < 0
        || slot_offsets(args[2], AGGREGATOR_FIELDS, N_AGGREGATOR, aggregator) < 0)
        return NULL;
    for (int i = 0; i < 4; i++) {
        limits[i] = PyLong_AsSsize_t(args[6 + i]);
        if (limits[i] == -1 && PyErr_Occurred())
            return NULL;
    }
    memcpy(notice_slot, notice, sizeof notice);
    memcpy(fold_slot, fold, sizeof fold);
    memcpy(aggregator_slot, aggregator, sizeof aggregator);
    max_peers = limits[0], max_peer_entries = limits[1], max_uids = limits[2], max_keys = limits[3];
    quiet = PyFloat_AS_DOUBLE(args[12]);
    max_hold = PyFloat_AS_DOUBLE(args[15]);
    Py_XSETREF(notice_type, (PyTypeObject *)Py_NewRef(args[0]));
    Py_XSETREF(fold_type, (PyTypeObject *)Py_NewRef(args[1]));
    Py_XSETREF(aggregator_type, (PyTypeObject *)Py_NewRef(args[2]));
    Py_XSETREF(not_per_host, Py_NewRef(args[3]));
    Py_XSETREF(per_packet, Py_NewRef(args[13]));
    Py_XSETREF(never_folded, Py_NewRef(args[14]));
    Py_XSETREF(summary_note, Py_NewRef(args[4]));
    Py_XSETREF(any_role, Py_NewRef(PyTuple_GET_ITEM(args[5], 0)));
    Py_XSETREF(any_host, Py_NewRef(PyTuple_GET_ITEM(args[5], 1)));
    Py_XSETREF(heappush, Py_NewRef(args[10]));
    Py_XSETREF(heapreplace, Py_NewRef(args[11]));
    forget_note_kinds();
    Py_RETURN_NONE;
}

/* -- helpers --------------------------------------------------------------------------------------------------- */

static int long_of(PyObject *agg, int field, Py_ssize_t *out)
{
    PyObject *value = SLOT(agg, aggregator_slot[field]);
    if (value == NULL || !PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "fold(): NoticeAggregator.%s is not an int", AGGREGATOR_FIELDS[field]);
        return -1;
    }
    *out = PyLong_AsSsize_t(value);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

/* The object in a slot (a borrowed reference), or NULL with AttributeError when it is unset. */
static PyObject *slot_of(PyObject *obj, Py_ssize_t offset, const char *name)
{
    PyObject *value = SLOT(obj, offset);
    if (value == NULL)
        PyErr_Format(PyExc_AttributeError, "fold(): %s is not set", name);
    return value;
}

/* bool(obj), a str's without a call. */
static int truth_of(PyObject *obj)
{
    return PyUnicode_CheckExact(obj) ? PyUnicode_GET_LENGTH(obj) != 0 : PyObject_IsTrue(obj);
}

/* obj.slot = value where `value <op> obj.slot` (Py_GT: `if value > obj.slot: obj.slot = value`, a max; Py_LT: a
 * min). */
static int move_to(PyObject *obj, Py_ssize_t offset, PyObject *value, int op, const char *name)
{
    PyObject *current = slot_of(obj, offset, name);
    if (current == NULL)
        return -1;
    int beyond;
    if (PyFloat_CheckExact(value) && PyFloat_CheckExact(current)) /* a clock's: compared as float_richcompare does */
        beyond = op == Py_GT ? PyFloat_AS_DOUBLE(value) > PyFloat_AS_DOUBLE(current)
                             : PyFloat_AS_DOUBLE(value) < PyFloat_AS_DOUBLE(current);
    else
        beyond = PyObject_RichCompareBool(value, current, op);
    if (beyond > 0)
        set_slot(obj, offset, value);
    return beyond < 0 ? -1 : 0;
}

/* obj.slot += amount */
static int add_to(PyObject *obj, Py_ssize_t offset, PyObject *amount, const char *name)
{
    PyObject *current = slot_of(obj, offset, name);
    if (current == NULL)
        return -1;
    PyObject *sum = PyNumber_Add(current, amount);
    if (sum == NULL)
        return -1;
    set_slot(obj, offset, sum);
    Py_DECREF(sum);
    return 0;
}

/* _peer(notice, role): the source, the destination, or "src->dst". A new reference. */
static PyObject *peer_of(const Fields *f, PyObject *role)
{
    PyObject *src = f->src, *dst = f->dst;
    int to = role == str_to || (PyUnicode_Check(role) && PyUnicode_Compare(role, str_to) == 0);
    if (to)
        return Py_NewRef(src);
    int from = role == str_from || (PyUnicode_Check(role) && PyUnicode_Compare(role, str_from) == 0);
    if (from)
        return Py_NewRef(dst);
    if (PyUnicode_CheckExact(src) && PyUnicode_CheckExact(dst) && PyUnicode_IS_COMPACT_ASCII(src)
        && PyUnicode_IS_COMPACT_ASCII(dst)) { /* addresses' texts: copied, not formatted (~1 k instructions less) */
        Py_ssize_t a = PyUnicode_GET_LENGTH(src), b = PyUnicode_GET_LENGTH(dst);
        PyObject *pair = PyUnicode_New(a + 2 + b, 127);
        if (pair != NULL) {
            Py_UCS1 *text = PyUnicode_1BYTE_DATA(pair);
            memcpy(text, PyUnicode_1BYTE_DATA(src), (size_t)a);
            memcpy(text + a, "->", 2);
            memcpy(text + a + 2, PyUnicode_1BYTE_DATA(dst), (size_t)b);
        }
        return pair;
    }
    return PyUnicode_FromFormat("%S->%S", src, dst);
}

/* -- the reference's methods ----------------------------------------------------------------------------------- */

/* _remember(uid, under): `under` a new (role, host) tuple or None (borrowed). */
static int remember(PyObject *agg, PyObject *uid, PyObject *under)
{
    int truth = truth_of(uid);
    if (truth <= 0)
        return truth;
    PyObject *uids = slot_of(agg, aggregator_slot[A_UIDS], "NoticeAggregator._uids");
    if (uids == NULL)
        return -1;
    if (!PyDict_CheckExact(uids) || PyDict_GET_SIZE(uids) >= max_uids) { /* the oldest eighth forgotten: Python */
        PyObject *done = PyObject_CallMethodObjArgs(agg, str_remember, uid, under, NULL);
        Py_XDECREF(done);
        return done == NULL ? -1 : 0;
    }
    return PyDict_SetItem(uids, uid, under);
}

/* aggregate.sample_u: FNV-1a of the peer's bytes from `key`, the time's IEEE bits mixed in by SplitMix64's finalizer,
 * as a number in (0, 1). */
static double sample_u(unsigned long long key, const char *text, Py_ssize_t n, double ts)
{
    uint64_t h = key, bits;
    for (Py_ssize_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)text[i]) * 0x100000001B3ULL;
    memcpy(&bits, &ts, sizeof bits);
    h ^= bits;
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ULL;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBULL;
    h ^= h >> 31;
    return ((double)(h >> 11) + 0.5) / 9007199254740992.0;
}

/* max(bytes_sent, 1) as the draw's division converts it: exact up to 2^53, a larger int correctly rounded. */
static int draw_weight(PyObject *bytes_sent, double *out)
{
    if (PyLong_Check(bytes_sent)) {
        int overflow;
        long long small = PyLong_AsLongLongAndOverflow(bytes_sent, &overflow);
        if (small == -1 && PyErr_Occurred())
            return -1;
        if (overflow < 0 || (!overflow && small < 1)) {
            *out = 1.0;
            return 0;
        }
        if (!overflow && small <= (1LL << 53)) {
            *out = (double)small;
            return 0;
        }
    }
    double weight = PyFloat_AsDouble(bytes_sent);
    if (weight == -1.0 && PyErr_Occurred())
        return -1;
    *out = !PyLong_Check(bytes_sent) && weight < 1.0 ? 1.0 : weight;
    return 0;
}

/* ln(u) / max(bytes_sent, 1): the notice's key in the sample's draw (A-Res). */
static int draw_key(PyObject *agg, const Fields *f, PyObject *peer, double *out)
{
    /* the key as an unsigned 64-bit number, read again only for another int object (the one read is held: it
     * cannot be freed and its address reused while cached) */
    static PyObject *cached_key_obj;
    static unsigned long long cached_key;
    PyObject *key_obj = slot_of(agg, aggregator_slot[A_SAMPLE_KEY], "NoticeAggregator._sample_key");
    if (key_obj == NULL)
        return -1;
    if (key_obj != cached_key_obj) {
        unsigned long long value = PyLong_AsUnsignedLongLong(key_obj);
        if (value == (unsigned long long)-1 && PyErr_Occurred())
            return -1;
        Py_XSETREF(cached_key_obj, Py_NewRef(key_obj));
        cached_key = value;
    }
    double ts = PyFloat_CheckExact(f->ts) ? PyFloat_AS_DOUBLE(f->ts) : PyFloat_AsDouble(f->ts);
    if (ts == -1.0 && PyErr_Occurred())
        return -1;
    Py_ssize_t n;
    const char *text = PyUnicode_AsUTF8AndSize(peer, &n);
    double weight;
    if (text == NULL || draw_weight(f->bytes_sent, &weight) < 0)
        return -1;
    *out = log(sample_u(cached_key, text, n, ts)) / weight;
    return 0;
}

/* NoticeAggregator._draw: the sample keeps the peers of the largest keys, a peer's best key. */
static int draw(PyObject *agg, const Fields *f, PyObject *fold, PyObject *peer, Py_ssize_t sample_size)
{
    PyObject *sample = slot_of(fold, fold_slot[D_SAMPLE], "_Fold.sample");
    PyObject *keys = slot_of(fold, fold_slot[D_SAMPLE_KEYS], "_Fold.sample_keys");
    if (sample == NULL || keys == NULL)
        return -1;
    Py_ssize_t size = PyList_Check(sample) ? PyList_GET_SIZE(sample) : -1;
    if (!PyList_Check(keys) || PyList_GET_SIZE(keys) != size) {
        PyErr_SetString(PyExc_TypeError, "fold(): a _Fold's sample and sample_keys are not two lists of one length");
        return -1;
    }
    Py_ssize_t at = -1, least = -1; /* least: the first of the smallest keys, as keys.index(min(keys)) finds it */
    for (Py_ssize_t i = 0; i < size; i++) {
        if (!PyFloat_Check(PyList_GET_ITEM(keys, i))) {
            PyErr_SetString(PyExc_TypeError, "fold(): a _Fold's sample_keys holds something else than floats");
            return -1;
        }
        if (least < 0 || PyFloat_AS_DOUBLE(PyList_GET_ITEM(keys, i)) < PyFloat_AS_DOUBLE(PyList_GET_ITEM(keys, least)))
            least = i;
    }
    double key;
    if (draw_key(agg, f, peer, &key) < 0)
        return -1;
    /* a full sample whose keys are all as large changes in no case (a peer of it keeps its larger key): most of a
     * storm's notices, found without comparing the peers */
    if (size >= sample_size && least >= 0 && !(key > PyFloat_AS_DOUBLE(PyList_GET_ITEM(keys, least))))
        return 0;
    for (Py_ssize_t i = 0; i < size && at < 0; i++) {
        int same = PyObject_RichCompareBool(PyList_GET_ITEM(sample, i), peer, Py_EQ);
        if (same < 0)
            return -1;
        if (same)
            at = i;
    }
    if (at < 0 && size < sample_size) {
        PyObject *value = PyFloat_FromDouble(key);
        if (value == NULL || PyList_Append(sample, peer) < 0) {
            Py_XDECREF(value);
            return -1;
        }
        int appended = PyList_Append(keys, value);
        Py_DECREF(value);
        if (appended < 0) {
            PySequence_DelItem(sample, size);
            return -1;
        }
        return 0;
    }
    if (at < 0) { /* the sample is full and past the early exit: the key beats its smallest */
        at = least;
        Py_INCREF(peer);
        if (PyList_SetItem(sample, at, peer) < 0)
            return -1;
    } else if (!(key > PyFloat_AS_DOUBLE(PyList_GET_ITEM(keys, at)))) {
        return 0;
    }
    PyObject *value = PyFloat_FromDouble(key);
    return value == NULL ? -1 : PyList_SetItem(keys, at, value);
}

/* _count(notice, fold, peer) */
static int count(PyObject *agg, const Fields *f, PyObject *fold, PyObject *peer)
{
    PyObject *ts = f->ts, *bytes_sent = f->bytes_sent;
    if (add_to(fold, fold_slot[D_FOLDED], one, "_Fold.folded") < 0
        || add_to(fold, fold_slot[D_BYTES_SENT], bytes_sent, "_Fold.bytes_sent") < 0
        || move_to(fold, fold_slot[D_LAST], ts, Py_GT, "_Fold.last") < 0
        || move_to(agg, aggregator_slot[A_LAST_FOLDED], ts, Py_GT, "NoticeAggregator._last_folded") < 0
        || move_to(agg, aggregator_slot[A_FIRST_FOLDED], ts, Py_LT, "NoticeAggregator._first_folded") < 0)
        return -1;
    PyObject *peers = slot_of(fold, fold_slot[D_PEERS], "_Fold.peers");
    PyObject *sample = slot_of(fold, fold_slot[D_SAMPLE], "_Fold.sample");
    PyObject *largest = slot_of(fold, fold_slot[D_LARGEST], "_Fold.largest");
    if (peers == NULL || sample == NULL || largest == NULL)
        return -1;
    if (!PySet_Check(peers) || !PyList_Check(sample) || !PyList_Check(largest)) {
        PyErr_SetString(PyExc_TypeError, "fold(): a _Fold's peers is not a set, or its sample or largest a list");
        return -1;
    }
    Py_ssize_t entries;
    if (long_of(agg, A_PEER_ENTRIES, &entries) < 0)
        return -1;
    if (PySet_GET_SIZE(peers) < max_peers && entries < max_peer_entries) {
        /* a peer not kept yet is added: one look-up (PySet_Add of a known peer changes nothing) */
        Py_ssize_t kept = PySet_GET_SIZE(peers);
        if (PySet_Add(peers, peer) < 0)
            return -1;
        if (PySet_GET_SIZE(peers) > kept) {
            PyObject *more = PyLong_FromSsize_t(entries + 1);
            if (more == NULL) {
                PySet_Discard(peers, peer);
                return -1;
            }
            set_slot(agg, aggregator_slot[A_PEER_ENTRIES], more);
            Py_DECREF(more);
        }
    } else {
        int known = PySet_Contains(peers, peer);
        if (known < 0)
            return -1;
        if (!known)
            set_slot(fold, fold_slot[D_CAPPED], Py_True);
    }
    Py_ssize_t sample_size, largest_kept;
    if (long_of(agg, A_SAMPLE, &sample_size) < 0 || long_of(agg, A_LARGEST_KEPT, &largest_kept) < 0)
        return -1;
    if (sample_size > 0 && draw(agg, f, fold, peer, sample_size) < 0)
        return -1;
    PyObject *heap_op = NULL;
    if (PyList_GET_SIZE(largest) < largest_kept) {
        heap_op = heappush;
    } else if (PyList_GET_SIZE(largest) > 0) {
        PyObject *smallest = PyList_GET_ITEM(largest, 0);
        if (!PyTuple_Check(smallest) || PyTuple_GET_SIZE(smallest) < 1) {
            PyErr_SetString(PyExc_TypeError, "fold(): a _Fold's largest holds something else than (size, peer)");
            return -1;
        }
        int bigger = PyObject_RichCompareBool(bytes_sent, PyTuple_GET_ITEM(smallest, 0), Py_GT);
        if (bigger < 0)
            return -1;
        if (bigger)
            heap_op = heapreplace;
    }
    if (heap_op != NULL) {
        PyObject *entry = PyTuple_Pack(2, bytes_sent, peer);
        if (entry == NULL)
            return -1;
        PyObject *done = PyObject_CallFunctionObjArgs(heap_op, largest, entry, NULL);
        Py_DECREF(entry);
        if (done == NULL)
            return -1;
        Py_DECREF(done);
    }
    return 0;
}

/* A new _Fold(first=ts, last=ts, src=notice.src, dst=notice.dst). */
static PyObject *new_fold(const Fields *f)
{
    PyObject *kwargs = PyDict_New();
    if (kwargs == NULL)
        return NULL;
    PyObject *ts = f->ts, *src = f->src, *dst = f->dst;
    PyObject *fold = NULL;
    if (PyDict_SetItem(kwargs, str_first, ts) == 0
        && PyDict_SetItem(kwargs, str_last, ts) == 0 && PyDict_SetItem(kwargs, str_src, src) == 0
        && PyDict_SetItem(kwargs, str_dst, dst) == 0) {
        PyObject *no_args = PyTuple_New(0);
        if (no_args != NULL) {
            fold = PyObject_Call((PyObject *)fold_type, no_args, kwargs);
            Py_DECREF(no_args);
        }
    }
    Py_DECREF(kwargs);
    if (fold != NULL && !PyObject_TypeCheck(fold, fold_type)) {
        Py_DECREF(fold);
        PyErr_SetString(PyExc_TypeError, "fold(): _Fold() made something else");
        return NULL;
    }
    return fold;
}

/* The tuple of `count` items (a new reference): the last one made for `last` again where its items are the same
 * objects (a storm's notices fold under one key, notice after notice), untracked where they are atomic. */
static PyObject *tuple_again(PyObject **last, PyObject *const *items, Py_ssize_t count)
{
    int same = *last != NULL;
    for (Py_ssize_t i = 0; same && i < count; i++)
        same = PyTuple_GET_ITEM(*last, i) == items[i];
    if (same)
        return Py_NewRef(*last);
    PyObject *made = PyTuple_New(count);
    if (made == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < count; i++)
        PyTuple_SET_ITEM(made, i, Py_NewRef(items[i]));
    Py_XSETREF(*last, Py_NewRef(untracked_if_atomic(made)));
    return made;
}

/* The (role, host) a folded flow's uid is remembered under. */
static PyObject *under_of(PyObject *role, PyObject *host)
{
    static PyObject *last;
    PyObject *items[2] = {role, host};
    return tuple_again(&last, items, 2);
}

/* A fold's key, (note, role, host), the one in *last again where its items are (each caller keeps its own: a storm
 * asks each for one key, notice after notice). */
static PyObject *fold_key(PyObject **last, PyObject *note, PyObject *role, PyObject *host)
{
    PyObject *items[3] = {note, role, host};
    return tuple_again(last, items, 3);
}

/* _fold_under(notice, role, host, uid); `made`, where the caller has it, the key (note, role, host) already. */
static int fold_under(PyObject *agg, const Fields *f, PyObject *role, PyObject *host, PyObject *uid, PyObject *made)
{
    PyObject *note = f->note;
    PyObject *folds = slot_of(agg, aggregator_slot[A_FOLDS], "NoticeAggregator._folds");
    if (folds == NULL)
        return -1;
    if (!PyDict_Check(folds)) {
        PyErr_SetString(PyExc_TypeError, "fold(): NoticeAggregator._folds is not a dict");
        return -1;
    }
    static PyObject *last_key;
    PyObject *key = made != NULL ? Py_NewRef(made) : fold_key(&last_key, note, role, host);
    if (key == NULL)
        return -1;
    PyObject *fold = PyDict_GetItemWithError(folds, key);
    if (fold != NULL) {
        Py_INCREF(fold);
    } else if (!PyErr_Occurred()) {
        fold = new_fold(f);
        if (fold != NULL && PyDict_SetItem(folds, key, fold) < 0)
            Py_CLEAR(fold);
    }
    Py_DECREF(key);
    if (fold == NULL)
        return -1;
    if (!PyObject_TypeCheck(fold, fold_type)) {
        Py_DECREF(fold);
        PyErr_SetString(PyExc_TypeError, "fold(): NoticeAggregator._folds holds something else than a _Fold");
        return -1;
    }
    PyObject *peer = peer_of(f, role);
    int status = peer == NULL ? -1 : count(agg, f, fold, peer);
    Py_XDECREF(peer);
    Py_DECREF(fold);
    if (status < 0)
        return -1;
    if (uid == Py_None) /* _remember keeps nothing for a notice without a flow (a summary's, one per packet) */
        return 0;
    PyObject *under = under_of(role, host); /* kept until the flow's summary */
    if (under == NULL)
        return -1;
    status = remember(agg, uid, under);
    Py_DECREF(under);
    return status;
}

/* A count in the aggregator's _written (0 when absent), or -1 with an exception. */
static int written_count(PyObject *written, PyObject *key, Py_ssize_t *out)
{
    PyObject *value = PyDict_GetItemWithError(written, key);
    if (value == NULL) {
        *out = 0;
        return PyErr_Occurred() ? -1 : 0;
    }
    *out = PyLong_AsSsize_t(value);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

static int set_count(PyObject *written, PyObject *key, Py_ssize_t value)
{
    PyObject *number = PyLong_FromSsize_t(value);
    if (number == NULL)
        return -1;
    int status = PyDict_SetItem(written, key, number);
    Py_DECREF(number);
    return status;
}

/* _past_note_quota(notice, uid): 1 folded, 0 counted as written (`only_folded`: not counted, nothing changed), -1
 * error. */
static int past_note_quota(PyObject *agg, const Fields *f, PyObject *uid, PyObject *written, int only_folded)
{
    static PyObject *last_key;
    PyObject *key = fold_key(&last_key, f->note, any_role, any_host);
    if (key == NULL)
        return -1;
    Py_ssize_t count, max_per_note;
    int status = written_count(written, key, &count);
    if (status == 0)
        status = long_of(agg, A_MAX_PER_NOTE, &max_per_note);
    if (status == 0) {
        if (0 < max_per_note && max_per_note <= count)
            status = fold_under(agg, f, any_role, any_host, uid, key) < 0 ? -1 : 1;
        else if (!only_folded)
            status = set_count(written, key, count + 1);
    }
    Py_DECREF(key);
    return status;
}

/* _fold's hosts: a notice no earlier notice of its flow decided. 1 folded, 0 written (`only_folded`: nothing
 * changed), -1 error. */
static int fold_new(PyObject *agg, const Fields *f, PyObject *uid, PyObject *written, int only_folded)
{
    PyObject *note = f->note, *src = f->src, *dst = f->dst;
    Py_ssize_t max_notices, to_written, from_written;
    if (long_of(agg, A_MAX_NOTICES, &max_notices) < 0)
        return -1;
    /* the destination's count first: a storm towards one victim is folded without the source's key made */
    static PyObject *last_to_key;
    PyObject *to_key = fold_key(&last_to_key, note, str_to, dst), *from_key = NULL;
    int status = -1;
    if (to_key == NULL || written_count(written, to_key, &to_written) < 0)
        goto done;
    if (to_written >= max_notices) {
        status = fold_under(agg, f, str_to, dst, uid, to_key) < 0 ? -1 : 1;
        goto done;
    }
    from_key = PyTuple_Pack(3, note, str_from, src);
    if (from_key == NULL || written_count(written, from_key, &from_written) < 0)
        goto done;
    if (from_written >= max_notices) {
        status = fold_under(agg, f, str_from, src, uid, from_key) < 0 ? -1 : 1;
        goto done;
    }
    status = past_note_quota(agg, f, uid, written, only_folded);
    if (status != 0 || only_folded)
        goto done;
    status = -1;
    int counted = PyDict_GET_SIZE(written) < max_keys;
    if (!counted) {
        int has_to = PyDict_Contains(written, to_key);
        int has_from = has_to > 0 ? PyDict_Contains(written, from_key) : 0;
        if (has_to < 0 || has_from < 0)
            goto done;
        counted = has_to && has_from;
    }
    if (counted && (set_count(written, to_key, to_written + 1) < 0 || set_count(written, from_key, from_written + 1) < 0))
        goto done;
    status = remember(agg, uid, Py_None) < 0 ? -1 : 0;
done:
    Py_XDECREF(to_key);
    Py_XDECREF(from_key);
    return status;
}

/* -- fold() ---------------------------------------------------------------------------------------------------- */

/* A Notice's fields (borrowed), or -1 with an exception where one is unset. */
static int fields_of(PyObject *notice, Fields *f)
{
    f->ts = slot_of(notice, notice_slot[N_TS], "Notice.ts");
    f->note = f->ts == NULL ? NULL : slot_of(notice, notice_slot[N_NOTE], "Notice.note");
    f->src = f->note == NULL ? NULL : slot_of(notice, notice_slot[N_SRC], "Notice.src");
    f->dst = f->src == NULL ? NULL : slot_of(notice, notice_slot[N_DST], "Notice.dst");
    f->uid = f->dst == NULL ? NULL : slot_of(notice, notice_slot[N_UID], "Notice.uid");
    f->bytes_sent = f->uid == NULL ? NULL : slot_of(notice, notice_slot[N_BYTES_SENT], "Notice.bytes_sent");
    return f->bytes_sent == NULL ? -1 : 0;
}

/* What _fold asks of a notice's note: in NOT_PER_HOST, in PER_PACKET, EXFIL_SUMMARY's (-1: not asked yet). */
typedef struct {
    PyObject *note; /* a str the answers are kept for (a strong reference), NULL: none */
    int per_note, each, summary;
} NoteKind;
#define NOTE_KINDS 4 /* a detector raises a few notes: a storm's DataExfil and ExfilSummary */
static NoteKind note_kinds[NOTE_KINDS];
static int note_kinds_next;

/* The answers for `note` (*kind), kept for the last NOTE_KINDS str notes (forgotten by bind(): the sets may change);
 * 0, or -1 with an exception. Only a str's equality is asked before _fold would ask it (it has no side effect). */
static int note_kind(PyObject *note, NoteKind *kind)
{
    for (int i = 0; i < NOTE_KINDS; i++)
        if (note_kinds[i].note == note && note != NULL) {
            *kind = note_kinds[i];
            return 0;
        }
    kind->note = NULL;
    kind->per_note = PySet_Contains(not_per_host, note);
    kind->each = kind->per_note != 0 ? 0 : PySet_Contains(per_packet, note);
    kind->summary = -1;
    if (kind->per_note < 0 || kind->each < 0)
        return -1;
    if (!PyUnicode_CheckExact(note))
        return 0;
    kind->summary = PyUnicode_Compare(note, summary_note) == 0;
    if (PyErr_Occurred())
        return -1;
    NoteKind *kept = &note_kinds[note_kinds_next];
    note_kinds_next = (note_kinds_next + 1) % NOTE_KINDS;
    Py_XSETREF(kept->note, Py_NewRef(note));
    kept->per_note = kind->per_note, kept->each = kind->each, kept->summary = kind->summary;
    return 0;
}

/* bind(): the notes' answers forgotten. */
static void forget_note_kinds(void)
{
    for (int i = 0; i < NOTE_KINDS; i++)
        Py_CLEAR(note_kinds[i].note);
}

/* _fold(notice): 1 folded, 0 written, -1 error. `only_folded`: the notice is folded where _fold folds it, and
 * nothing is changed where it writes it (0: the caller then hands the notice to filter(), which writes it). */
static int fold_notice(PyObject *agg, const Fields *f, int only_folded)
{
    PyObject *note = f->note, *uid = f->uid;
    int has_src = truth_of(f->src), has_dst = has_src > 0 ? truth_of(f->dst) : 0;
    if (has_src <= 0 || has_dst <= 0)
        return has_src < 0 || has_dst < 0 ? -1 : 0;
    PyObject *written = slot_of(agg, aggregator_slot[A_WRITTEN], "NoticeAggregator._written");
    PyObject *uids = slot_of(agg, aggregator_slot[A_UIDS], "NoticeAggregator._uids");
    if (written == NULL || uids == NULL)
        return -1;
    if (!PyDict_Check(written) || !PyDict_Check(uids)) {
        PyErr_SetString(PyExc_TypeError, "fold(): the aggregator's _written or _uids is not a dict");
        return -1;
    }
    int big = PyObject_RichCompareBool(f->bytes_sent, never_folded, Py_GE);
    NoteKind kind;
    if (big < 0 || note_kind(note, &kind) < 0)
        return -1;
    if (kind.per_note) /* a flow bigger than a storm's (big) is written */
        return big ? 0 : past_note_quota(agg, f, Py_None, written, only_folded);
    /* kind.each: raised per packet, not its flow's story, folded as a storm's */
    int has_uid = kind.each ? 0 : truth_of(uid);
    if (has_uid < 0)
        return -1;
    int summary = 0;
    if (has_uid) {
        summary = kind.summary >= 0 ? kind.summary : PyObject_RichCompareBool(note, summary_note, Py_EQ);
        if (summary < 0)
            return -1;
    }
    PyObject *under = NULL; /* a new reference: the flow's earlier decision, when there is one */
    if (has_uid) {
        under = PyDict_GetItemWithError(uids, uid);
        if (under == NULL && PyErr_Occurred())
            return -1;
        Py_XINCREF(under);
    }
    PyObject *flow_uid = summary || kind.each ? Py_None : uid; /* Python: "" (a summary's popped, per packet); false */
    if (only_folded && (big || under == Py_None)) { /* written: nothing changed */
        Py_XDECREF(under);
        return 0;
    }
    if (under != NULL && summary && PyDict_DelItem(uids, uid) < 0) { /* the flow's last notice: forgotten */
        Py_DECREF(under);
        return -1;
    }
    if (big) { /* the rest of its flow's story written too */
        Py_XDECREF(under);
        return remember(agg, flow_uid, Py_None) < 0 ? -1 : 0;
    }
    if (under == NULL)
        return fold_new(agg, f, flow_uid, written, only_folded);
    int status;
    if (under == Py_None) {
        status = 0; /* the flow's earlier notice was written: so is this one */
    } else if (PyTuple_Check(under) && PyTuple_GET_SIZE(under) == 2) {
        /* _fold_under(notice, *under): the flow is not remembered again (at MAX_UIDS that forgets the oldest) */
        status = fold_under(agg, f, PyTuple_GET_ITEM(under, 0), PyTuple_GET_ITEM(under, 1), Py_None, NULL) < 0
                     ? -1 : 1;
    } else {
        PyErr_SetString(PyExc_TypeError, "fold(): NoticeAggregator._uids holds something else than (role, host)");
        status = -1;
    }
    Py_DECREF(under);
    return status;
}

/* Whether NoticeAggregator.advance(ts) may tell or change something: 0 only where it certainly returns [] and
 * changes nothing (an interval under way, not over at `ts`, and no fold quiet for QUIET seconds nor held for
 * MAX_HOLD), the common case in a storm; 1 otherwise, or where a time is not a float (the call then decides). */
static int advance_may_act(PyObject *agg, PyObject *ts)
{
    PyObject *start = SLOT(agg, aggregator_slot[A_WINDOW_START]);
    PyObject *interval = SLOT(agg, aggregator_slot[A_INTERVAL]);
    PyObject *last = SLOT(agg, aggregator_slot[A_LAST_FOLDED]);
    PyObject *first = SLOT(agg, aggregator_slot[A_FIRST_FOLDED]);
    PyObject *folds = SLOT(agg, aggregator_slot[A_FOLDS]);
    if (start == NULL || interval == NULL || last == NULL || first == NULL || folds == NULL || !PyFloat_CheckExact(ts)
        || !PyFloat_CheckExact(start) || !PyFloat_CheckExact(interval) || !PyFloat_CheckExact(last)
        || !PyFloat_CheckExact(first) || !PyDict_CheckExact(folds))
        return 1;
    double now = PyFloat_AS_DOUBLE(ts);
    if (now >= PyFloat_AS_DOUBLE(start) + PyFloat_AS_DOUBLE(interval))
        return 1;
    return PyDict_GET_SIZE(folds) > 0
           && (now - PyFloat_AS_DOUBLE(last) >= quiet || now - PyFloat_AS_DOUBLE(first) >= max_hold);
}

/* filter()'s loop for an enabled aggregator: into `out`, each notice's due aggregates, then the notice unless
 * it is folded (counted). */
static int filter_into(PyObject *agg, PyObject *notices, PyObject *out)
{
    PyObject *iterator = PyObject_GetIter(notices);
    if (iterator == NULL)
        return -1;
    PyObject *notice;
    int failed = 0;
    while (!failed && (notice = PyIter_Next(iterator)) != NULL) {
        PyObject *ts = PyObject_TypeCheck(notice, notice_type) ? slot_of(notice, notice_slot[N_TS], "Notice.ts")
                                                               : NULL;
        if (ts == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "filter(): not a Notice");
            failed = 1;
        } else if (advance_may_act(agg, ts)) {
            PyObject *due = PyObject_CallMethodOneArg(agg, str_advance, ts);
            failed = due == NULL || PyList_SetSlice(out, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, due) < 0;  /* out += due */
            Py_XDECREF(due);
        }
        Fields f;
        if (!failed && fields_of(notice, &f) < 0)
            failed = 1;
        if (!failed) {
            int folded = fold_notice(agg, &f, 0);
            failed = folded < 0 || (folded ? add_to(agg, aggregator_slot[A_FOLDED], one, "NoticeAggregator.folded")
                                           : PyList_Append(out, notice)) < 0;
        }
        Py_DECREF(notice);
    }
    Py_DECREF(iterator);
    return failed || PyErr_Occurred() ? -1 : 0;
}

PyDoc_STRVAR(filter_doc, "filter(aggregator, notices) -> list\n\n"
                         "NoticeAggregator.filter's loop (its reference) for an enabled aggregator: the notices to\n"
                         "write now, aggregates due first.");

static PyObject *filter(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (notice_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "filter(): bind() first");
        return NULL;
    }
    if (nargs != 2 || !PyObject_TypeCheck(args[0], aggregator_type)) {
        PyErr_SetString(PyExc_TypeError, "filter(aggregator, notices)");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out != NULL && filter_into(args[0], args[1], out) < 0)
        Py_CLEAR(out);
    return out;
}

PyDoc_STRVAR(folds_doc, "folds(aggregator, uid) -> bool\n\n"
                        "NoticeAggregator.folds (its reference): whether the notices of the flow `uid` are being folded.");

static PyObject *folds(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (aggregator_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "folds(): bind() first");
        return NULL;
    }
    if (nargs != 2 || !PyObject_TypeCheck(args[0], aggregator_type)) {
        PyErr_SetString(PyExc_TypeError, "folds(aggregator, uid)");
        return NULL;
    }
    int named = PyObject_IsTrue(args[1]);
    if (named <= 0)
        return named < 0 ? NULL : Py_NewRef(Py_False);
    PyObject *uids = slot_of(args[0], aggregator_slot[A_UIDS], "NoticeAggregator._uids");
    if (uids == NULL)
        return NULL;
    if (!PyDict_CheckExact(uids))
        return PyObject_CallMethod(args[0], "folds", "O", args[1]);
    PyObject *under = PyDict_GetItemWithError(uids, args[1]);
    if (under == NULL && PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(under != NULL && under != Py_None);
}

/* -- Filter: filter() bound to an aggregator, and the notices a detector's C path need not make --------------- */

typedef struct {
    PyObject_HEAD
    PyObject *aggregator;
    vectorcallfunc vectorcall;
} Filter;

static PyObject *filter_call(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0)) {
        PyErr_SetString(PyExc_TypeError, "Filter(notices)");
        return NULL;
    }
    PyObject *call[2] = {((Filter *)self)->aggregator, args[0]};
    return filter(NULL, call, 2);
}

static PyObject *filter_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *agg;
    if (aggregator_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Filter(): bind() first");
        return NULL;
    }
    if (kwargs != NULL || !PyArg_ParseTuple(args, "O!:Filter", aggregator_type, &agg))
        return NULL;
    Filter *made = (Filter *)type->tp_alloc(type, 0);
    if (made != NULL) {
        made->aggregator = Py_NewRef(agg);
        made->vectorcall = filter_call;
    }
    return (PyObject *)made;
}

static int filter_traverse(Filter *self, visitproc visit, void *arg)
{
    Py_VISIT(self->aggregator);
    return 0;
}

static int filter_clear(Filter *self)
{
    Py_CLEAR(self->aggregator);
    return 0;
}

static void filter_dealloc(Filter *self)
{
    PyObject_GC_UnTrack(self);
    filter_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Whether the aggregator folds at all (NoticeAggregator.enabled), its settings the reference's types: else 0. */
static int folds_at_all(PyObject *agg)
{
    PyObject *interval = SLOT(agg, aggregator_slot[A_INTERVAL]);
    PyObject *max_notices = SLOT(agg, aggregator_slot[A_MAX_NOTICES]);
    if (interval == NULL || max_notices == NULL || !PyFloat_CheckExact(interval) || !PyLong_CheckExact(max_notices))
        return 0;
    int overflow;
    long most = PyLong_AsLongAndOverflow(max_notices, &overflow);
    return PyFloat_AS_DOUBLE(interval) > 0 && (overflow > 0 || most > 0);
}

/* AggregateApi.try_fold (_aggregate_api.h): filter([notice]) where it would fold the notice and tell nothing. */
static int try_fold(PyObject *self, PyObject *ts, PyObject *note, PyObject *src, PyObject *dst, PyObject *uid,
                    PyObject *bytes_sent)
{
    PyObject *agg = ((Filter *)self)->aggregator;
    if (agg == NULL || !folds_at_all(agg) || advance_may_act(agg, ts))
        return 0;
    const Fields f = {ts, note, src, dst, uid, bytes_sent};
    int folded = fold_notice(agg, &f, 1);
    if (folded > 0 && add_to(agg, aggregator_slot[A_FOLDED], one, "NoticeAggregator.folded") < 0)
        return -1;
    return folded;
}

PyDoc_STRVAR(try_fold_doc, "try_fold(ts, note, src, dst, uid, bytes_sent) -> bool\n\n"
                           "What a detector's C path asks before it makes a notice (its reference: this filter called\n"
                           "with the notice): True where the filter would fold the notice and tell nothing (it is\n"
                           "folded and counted), False where it might do anything else (nothing is changed).");

static PyObject *try_fold_py(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "try_fold(ts, note, src, dst, uid, bytes_sent)");
        return NULL;
    }
    int folded = try_fold(self, args[0], args[1], args[2], args[3], args[4], args[5]);
    return folded < 0 ? NULL : PyBool_FromLong(folded);
}

static PyObject *filter_aggregator(Filter *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->aggregator != NULL ? self->aggregator : Py_None);
}

static PyMethodDef filter_methods[] = {
    {"try_fold", (PyCFunction)(void (*)(void))try_fold_py, METH_FASTCALL, try_fold_doc},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef filter_getset[] = {
    {"aggregator", (getter)filter_aggregator, NULL, "the aggregator it filters for", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject FilterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "icmpsensor.notice._fastaggregate.Filter",
    .tp_doc = PyDoc_STR("Filter(aggregator)(notices) -> list: filter(aggregator, notices), one C call."),
    .tp_basicsize = sizeof(Filter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Filter, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = filter_new,
    .tp_traverse = (traverseproc)filter_traverse,
    .tp_clear = (inquiry)filter_clear,
    .tp_dealloc = (destructor)filter_dealloc,
    .tp_methods = filter_methods,
    .tp_getset = filter_getset,
};

static AggregateApi api = {&FilterType, try_fold};

static PyMethodDef methods[] = {
    {"bind", (PyCFunction)(void (*)(void))bind, METH_FASTCALL, bind_doc},
    {"filter", (PyCFunction)(void (*)(void))filter, METH_FASTCALL, filter_doc},
    {"folds", (PyCFunction)(void (*)(void))folds, METH_FASTCALL, folds_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastaggregate", "NoticeAggregator.filter and _fold in C (notice/aggregate.py is the reference).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastaggregate(void)
{
    str_to = PyUnicode_InternFromString("to");
    str_from = PyUnicode_InternFromString("from");
    str_remember = PyUnicode_InternFromString("_remember");
    str_first = PyUnicode_InternFromString("first");
    str_last = PyUnicode_InternFromString("last");
    str_src = PyUnicode_InternFromString("src");
    str_dst = PyUnicode_InternFromString("dst");
    str_advance = PyUnicode_InternFromString("advance");
    one = PyLong_FromLong(1);
    if (str_advance == NULL || str_to == NULL || str_from == NULL || str_remember == NULL || str_first == NULL || str_last == NULL
        || str_src == NULL || str_dst == NULL || one == NULL)
        return NULL;
    if (PyType_Ready(&FilterType) < 0)
        return NULL;
    PyObject *made = PyModule_Create(&module);
    PyObject *capsule = made == NULL ? NULL : PyCapsule_New(&api, AGGREGATE_API_CAPSULE, NULL);
    if (capsule == NULL || PyModule_AddObjectRef(made, "Filter", (PyObject *)&FilterType) < 0
        || PyModule_AddObject(made, "API", capsule) < 0) {
        Py_XDECREF(capsule);
        Py_XDECREF(made);
        return NULL;
    }
    return made;
}
