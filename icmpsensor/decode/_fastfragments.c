/* Fragment reassembly in C (decode/fragments.py Reassembler is the reference: this file restates it, method by
 * method, and tests/unit/test_fragments.py runs every test on both and generated fragment streams through both,
 * comparing every answer, counter and byte accounted).
 *
 * A pending datagram is a C struct: its pieces (disjoint, sorted by offset, each a bytes object, as the
 * reference's `starts`/`pieces`), its kept frames, its numbers. The datagrams are in a Python dict (key ->
 * a capsule of the struct) for the look-up and in a doubly linked list for the reference's OrderedDict order
 * (creation order: the front is the next to expire or to evict). Datagrams (completed and partial) are the
 * reference's frozen dataclass, built in place through its slots (bind()). Memory is accounted with the
 * reference's constants (given to bind()), so `pending_bytes` and every eviction are the same.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "../_slots.h"

/* -- bound by bind(): the Datagram record and the accounting constants -------------------------------------- */

enum { D_PROTO, D_PAYLOAD, D_WIRE_LEN, D_FRAMES, D_PARTIAL, D_KEY, D_TS, D_SENT, D_RUNS, D_SLOTS };
static const char *const DATAGRAM_SLOTS[D_SLOTS] = {"proto", "payload", "wire_len", "frames",
                                                    "partial", "key", "ts", "sent", "runs"};
static PyTypeObject *datagram_type = NULL;
static Py_ssize_t datagram_slot[D_SLOTS];
static Py_ssize_t DATAGRAM_OVERHEAD = 0, PIECE_OVERHEAD = 0, FRAME_OVERHEAD = 0;

/* The counters' names (the reference's strings), interned once. */
enum { C_FRAGMENTS, C_REASSEMBLED, C_DUPLICATE, C_OVERLAP, C_INCONSISTENT, C_TOO_LARGE, C_TOO_MANY,
       C_TIMEOUT, C_EVICTED, C_UNFINISHED, C_PARTIAL, C_HEADLESS, C_NOT_KEPT, C_COUNTERS };
static const char *const COUNTER_NAMES[C_COUNTERS] = {
    "fragments", "reassembled", "duplicate", "overlap", "inconsistent", "too_large", "too_many_fragments",
    "timeout", "evicted", "unfinished", "partial", "headless", "frames_not_kept"};
static PyObject *counter_name[C_COUNTERS];
static PyObject *str_data = NULL; /* a kept frame's attribute: CapturedFrame.data */
static PyObject *zero_count = NULL, *one_count = NULL;
static PyObject *zero_time = NULL; /* a completed Datagram's ts and sent (0.0) */
static PyObject *no_runs = NULL; /* a Datagram's runs but a headless one's: () */

/* -- a pending datagram ------------------------------------------------------------------------------------ */

/* Bytes held: owner[skip : skip + size] (owner a bytes object: a fragment's data, a copy, or the frame a
 * fragment came in, kept for evidence - add_from_frame - whose bytes are then held rather than copied). */
typedef struct {
    PyObject *owner;
    Py_ssize_t skip, size;
} Span;

static const char *span_bytes(const Span *span) { return PyBytes_AS_STRING(span->owner) + span->skip; }

typedef struct {
    Py_ssize_t start;
    Span data;
} Piece;

typedef struct Pending {
    struct Pending *prev, *next; /* creation order */
    PyObject *key;
    PyObject *capsule; /* the dict's value for key */
    double first_ts;
    PyObject *first_ts_obj; /* the time as given (a partial's `sent`, as the reference keeps it) */
    long proto;             /* -1 until the piece at offset 0 came */
    Py_ssize_t total;       /* payload length, -1 until the last fragment came */
    Py_ssize_t max_end, received, wire_len, frame_bytes;
    int dead;
    Piece *pieces;
    Py_ssize_t n_pieces, cap_pieces;
    PyObject **frames;
    Py_ssize_t n_frames, cap_frames;
} Pending;

static const char CAPSULE_NAME[] = "icmpsensor.decode._fastfragments.Pending";

static void pending_clear_contents(Pending *p)
{
    for (Py_ssize_t i = 0; i < p->n_pieces; i++)
        Py_DECREF(p->pieces[i].data.owner);
    p->n_pieces = 0;
    for (Py_ssize_t i = 0; i < p->n_frames; i++)
        Py_DECREF(p->frames[i]);
    p->n_frames = 0;
}

static void pending_free(Pending *p)
{
    pending_clear_contents(p);
    PyMem_Free(p->pieces);
    PyMem_Free(p->frames);
    Py_XDECREF(p->key);
    Py_XDECREF(p->capsule);
    Py_XDECREF(p->first_ts_obj);
    PyMem_Free(p);
}

/* fragments._cost */
static Py_ssize_t cost(const Pending *p)
{
    return DATAGRAM_OVERHEAD + p->received + PIECE_OVERHEAD * p->n_pieces + p->frame_bytes
           + FRAME_OVERHEAD * p->n_frames;
}

static int reserve_pieces(Pending *p, Py_ssize_t need)
{
    if (need <= p->cap_pieces)
        return 0;
    Py_ssize_t cap = p->cap_pieces ? p->cap_pieces : 4;
    while (cap < need)
        cap *= 2;
    Piece *grown = PyMem_Realloc(p->pieces, (size_t)cap * sizeof(Piece));
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    p->pieces = grown;
    p->cap_pieces = cap;
    return 0;
}

/* -- the reassembler ------------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    Py_ssize_t max_datagrams;
    double timeout;
    Py_ssize_t max_datagram_size, max_bytes, max_fragments;
    int keep_frames;
    PyObject *stats;     /* a Counter (a dict) */
    int dict_stats;      /* stats is a dict whose __setitem__ is dict's: a Counter (see count_up) */
    PyObject *index;     /* key -> capsule of its Pending */
    Pending *oldest, *newest;
    Py_ssize_t bytes;
    PyObject *partials; /* list: handed on by the last add, expire or flush */
    double now;
    PyObject *now_obj; /* the latest packet time seen, as given */
} Reassembler;

/* stats[name] += 1, a missing name counting from 0 (a Counter's). A Counter is set as a dict is: Counter defines
 * __delitem__, which makes its item assignment look __setitem__ up by name on every call, found in dict. */
static int count_up(Reassembler *self, int which)
{
    PyObject *name = counter_name[which], *stats = self->stats;
    PyObject *old;
    if (self->dict_stats) {
        old = PyDict_GetItemWithError(stats, name);
        if (old == NULL && PyErr_Occurred())
            return -1;
        PyObject *sum = PyNumber_Add(old ? old : zero_count, one_count);
        if (sum == NULL)
            return -1;
        int rc = PyDict_SetItem(stats, name, sum);
        Py_DECREF(sum);
        return rc;
    }
    if (PyDict_Check(stats)) {
        old = PyDict_GetItemWithError(stats, name);
        if (old == NULL && PyErr_Occurred())
            return -1;
        Py_XINCREF(old);
    }
    else if ((old = PyObject_GetItem(stats, name)) == NULL)
        return -1;
    PyObject *sum = PyNumber_Add(old ? old : zero_count, one_count);
    Py_XDECREF(old);
    if (sum == NULL)
        return -1;
    int rc = PyObject_SetItem(stats, name, sum);
    Py_DECREF(sum);
    return rc;
}

static void unlink_pending(Reassembler *self, Pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        self->oldest = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        self->newest = p->prev;
    p->prev = p->next = NULL;
}

static Pending *lookup(Reassembler *self, PyObject *key)
{
    PyObject *capsule = PyDict_GetItemWithError(self->index, key);
    if (capsule == NULL)
        return NULL;
    return (Pending *)PyCapsule_GetPointer(capsule, CAPSULE_NAME);
}

/* A new Datagram through its slots (frozen dataclass: no __init__ to run). Steals nothing. */
static PyObject *new_datagram(long proto, PyObject *payload, Py_ssize_t wire_len, PyObject *frames, int partial,
                              PyObject *key, PyObject *ts, PyObject *sent, PyObject *runs)
{
    PyObject *obj = datagram_type->tp_alloc(datagram_type, 0);
    if (obj == NULL)
        return NULL;
    PyObject *values[D_SLOTS];
    values[D_PROTO] = PyLong_FromLong(proto);
    values[D_PAYLOAD] = Py_NewRef(payload);
    values[D_WIRE_LEN] = PyLong_FromSsize_t(wire_len);
    values[D_FRAMES] = Py_NewRef(frames);
    values[D_PARTIAL] = Py_NewRef(partial ? Py_True : Py_False);
    values[D_KEY] = Py_NewRef(key);
    values[D_TS] = Py_NewRef(ts);
    values[D_SENT] = Py_NewRef(sent);
    values[D_RUNS] = Py_NewRef(runs);
    int failed = values[D_PROTO] == NULL || values[D_WIRE_LEN] == NULL;
    for (int i = 0; i < D_SLOTS; i++)
        SLOT(obj, datagram_slot[i]) = values[i]; /* NULL where it failed: dealloc skips it */
    if (failed) {
        Py_DECREF(obj);
        return NULL;
    }
    return obj;
}

static PyObject *frames_tuple(Reassembler *self, Pending *p, PyObject *extra)
{
    if (!self->keep_frames)
        return Py_NewRef(Py_None);
    Py_ssize_t n = p->n_frames + (extra != NULL);
    PyObject *tuple = PyTuple_New(n);
    if (tuple == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < p->n_frames; i++)
        PyTuple_SET_ITEM(tuple, i, Py_NewRef(p->frames[i]));
    if (extra != NULL)
        PyTuple_SET_ITEM(tuple, n - 1, Py_NewRef(extra));
    return tuple;
}

/* A conflicting fragment written over an abandoned datagram's bytes (fragments._hand_on's `rewrite`). */
typedef struct {
    Py_ssize_t offset;
    const Span *data;
    long proto;
    Py_ssize_t wire_len;
    PyObject *frame; /* NULL or None: none */
} Rewrite;

/* A partial (or headless: `runs`) Datagram of p's bytes `payload`, counted (`counter`) and appended to the partials;
 * -1 on an error. Steals nothing. */
static int append_partial(Reassembler *self, Pending *p, PyObject *key, int counter, long proto, PyObject *payload,
                          Py_ssize_t wire_len, PyObject *extra_frame, PyObject *runs)
{
    PyObject *frames = count_up(self, counter) < 0 ? NULL : frames_tuple(self, p, extra_frame);
    PyObject *datagram = frames ? new_datagram(proto, payload, wire_len, frames, 1, key, self->now_obj,
                                               p->first_ts_obj, runs)
                                : NULL;
    Py_XDECREF(frames);
    if (datagram == NULL)
        return -1;
    int rc = PyList_Append(self->partials, datagram);
    Py_DECREF(datagram);
    return rc;
}

/* (a, b) as a tuple of two ints (Py_BuildValue("(nn)") parsed its format each time: ~600 instructions a run). */
static PyObject *ssize_pair(Py_ssize_t a, Py_ssize_t b)
{
    PyObject *first = PyLong_FromSsize_t(a), *second = first == NULL ? NULL : PyLong_FromSsize_t(b);
    PyObject *pair = second == NULL ? NULL : PyTuple_Pack(2, first, second);
    Py_XDECREF(first);
    Py_XDECREF(second);
    return pair;
}

/* fragments._hand_on_headless: the runs of bytes held past `covered` (-1: none of them), and the rewrite's bytes
 * (NULL: none, or a partial took them) as a run of their own, as one headless Datagram; nothing without a run. */
static int hand_on_headless(Reassembler *self, PyObject *key, Pending *p, Py_ssize_t covered, const Rewrite *rewrite,
                            PyObject *extra_frame, Py_ssize_t wire_len)
{
    Py_ssize_t n_runs = 0, total = 0, run_end = -1;
    for (Py_ssize_t i = 0; covered >= 0 && i < p->n_pieces; i++) {
        const Piece *piece = &p->pieces[i];
        if (piece->start + piece->data.size <= covered)
            continue;
        n_runs += piece->start != run_end;
        run_end = piece->start + piece->data.size;
        total += piece->data.size;
    }
    int rewritten = rewrite != NULL && rewrite->data->size > 0;
    n_runs += rewritten;
    if (n_runs == 0)
        return 0;
    if (rewritten)
        total += rewrite->data->size;
    PyObject *payload = PyBytes_FromStringAndSize(NULL, total), *runs = PyTuple_New(n_runs);
    if (payload == NULL || runs == NULL) {
        Py_XDECREF(payload);
        Py_XDECREF(runs);
        return -1;
    }
    char *out = PyBytes_AS_STRING(payload);
    Py_ssize_t run = -1, run_start = 0, run_size = 0, written = 0;
    int failed = 0;
    run_end = -1;
    for (Py_ssize_t i = 0; covered >= 0 && i <= p->n_pieces && !failed; i++) {
        const Piece *piece = i < p->n_pieces ? &p->pieces[i] : NULL;
        if (piece != NULL && piece->start + piece->data.size <= covered)
            continue;
        if (run >= 0 && (piece == NULL || piece->start != run_end)) { /* the run so far ends */
            PyObject *pair = ssize_pair(run_start, run_size);
            failed = pair == NULL;
            if (!failed)
                PyTuple_SET_ITEM(runs, run, pair);
        }
        if (piece == NULL || failed)
            break;
        if (piece->start != run_end) {
            run++;
            run_start = piece->start;
            run_size = 0;
        }
        memcpy(out + written, span_bytes(&piece->data), (size_t)piece->data.size);
        written += piece->data.size;
        run_size += piece->data.size;
        run_end = piece->start + piece->data.size;
    }
    if (!failed && rewritten) {
        memcpy(out + written, span_bytes(rewrite->data), (size_t)rewrite->data->size);
        PyObject *pair = ssize_pair(rewrite->offset, rewrite->data->size);
        failed = pair == NULL;
        if (!failed)
            PyTuple_SET_ITEM(runs, n_runs - 1, pair);
    }
    int rc = failed ? -1 : append_partial(self, p, key, C_HEADLESS, p->proto, payload, wire_len, extra_frame, runs);
    Py_DECREF(payload);
    Py_DECREF(runs);
    return rc;
}

/* fragments._hand_on: the bytes held from offset 0 up to the first hole, as a partial Datagram; the rest
 * headless (hand_on_headless). */
static int hand_on(Reassembler *self, PyObject *key, Pending *p, const Rewrite *rewrite)
{
    int held_runs = rewrite == NULL; /* with a rewrite, an overlap's second call: the pieces went in the first */
    long proto = p->proto;
    Py_ssize_t wire_len = p->wire_len;
    PyObject *extra_frame = NULL;
    /* The pieces in the order the reference walks them: the rewrite after the pieces starting at or before
     * its offset (bisect_right). */
    Py_ssize_t at = p->n_pieces;
    if (rewrite != NULL) {
        at = 0;
        while (at < p->n_pieces && p->pieces[at].start <= rewrite->offset)
            at++;
        if (rewrite->offset == 0)
            proto = rewrite->proto;
        wire_len += rewrite->wire_len;
        if (rewrite->frame != NULL && rewrite->frame != Py_None && self->keep_frames)
            extra_frame = rewrite->frame;
    }
    Py_ssize_t n = p->n_pieces + (rewrite != NULL);
    Py_ssize_t first_start = n == 0 ? -1 : (at == 0 && rewrite != NULL ? rewrite->offset : p->pieces[0].start);
    if (n == 0 || first_start != 0)
        return hand_on_headless(self, key, p, held_runs ? 0 : -1, rewrite, extra_frame, wire_len);
    /* At most max_datagram_size bytes: every piece and the rewrite end within it (add checks). */
    Py_ssize_t limit = 0;
    for (Py_ssize_t i = 0; i < p->n_pieces; i++) {
        Py_ssize_t end = p->pieces[i].start + p->pieces[i].data.size;
        if (end > limit)
            limit = end;
    }
    if (rewrite != NULL && rewrite->offset + rewrite->data->size > limit)
        limit = rewrite->offset + rewrite->data->size;
    char *held = PyMem_Malloc(limit > 0 ? (size_t)limit : 1);
    if (held == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t length = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t start;
        const Span *data;
        if (rewrite != NULL && i == at) {
            start = rewrite->offset;
            data = rewrite->data;
        }
        else {
            Py_ssize_t j = (rewrite != NULL && i > at) ? i - 1 : i;
            start = p->pieces[j].start;
            data = &p->pieces[j].data;
        }
        if (start > length)
            break; /* a hole */
        Py_ssize_t size = data->size;
        memcpy(held + start, span_bytes(data), (size_t)size); /* replaces what it covers, adds on */
        if (start + size > length)
            length = start + size;
    }
    if (rewrite != NULL && rewrite->offset <= length) { /* the last copy wins */
        Py_ssize_t size = rewrite->data->size;
        memcpy(held + rewrite->offset, span_bytes(rewrite->data), (size_t)size);
        if (rewrite->offset + size > length)
            length = rewrite->offset + size;
        rewrite = NULL; /* the partial took it */
    }
    PyObject *payload = PyBytes_FromStringAndSize(held, length);
    PyMem_Free(held);
    if (payload == NULL)
        return -1;
    int rc = append_partial(self, p, key, C_PARTIAL, proto, payload, wire_len, extra_frame, no_runs);
    Py_DECREF(payload);
    return rc < 0 ? -1 : hand_on_headless(self, key, p, held_runs ? length : -1, rewrite, extra_frame, wire_len);
}

/* Removes p from the table (the dict and the order) and frees it; the caller has accounted its bytes. */
static int forget(Reassembler *self, Pending *p)
{
    unlink_pending(self, p);
    PyObject *key = Py_NewRef(p->key);
    int rc = PyDict_DelItem(self->index, key);
    Py_DECREF(key);
    pending_free(p);
    return rc;
}

/* fragments._drop_oldest */
static int drop_oldest(Reassembler *self, int reason)
{
    Pending *p = self->oldest;
    self->bytes -= cost(p);
    int rc = p->dead ? 0 : count_up(self, reason);
    if (rc == 0 && !p->dead)
        rc = hand_on(self, p->key, p, NULL);
    return forget(self, p) < 0 ? -1 : rc;
}

/* fragments._kill: a tombstone */
static int kill(Reassembler *self, Pending *p, int reason)
{
    if (count_up(self, reason) < 0)
        return -1;
    self->bytes -= cost(p) - DATAGRAM_OVERHEAD;
    p->dead = 1;
    p->received = 0;
    pending_clear_contents(p);
    p->frame_bytes = 0;
    return 0;
}

static int set_partials_empty(Reassembler *self)
{
    if (PyList_GET_SIZE(self->partials) == 0)
        return 0;
    PyObject *fresh = PyList_New(0); /* a new list: one taken before stays as it was */
    if (fresh == NULL)
        return -1;
    Py_SETREF(self->partials, fresh);
    return 0;
}

/* fragments.Reassembler.expire */
static int expire_at(Reassembler *self, double now, PyObject *now_obj)
{
    if (set_partials_empty(self) < 0)
        return -1;
    if (now > self->now) {
        self->now = now;
        Py_SETREF(self->now_obj, Py_NewRef(now_obj));
    }
    while (self->oldest != NULL) {
        if (now - self->oldest->first_ts <= self->timeout)
            return 0;
        if (drop_oldest(self, C_TIMEOUT) < 0)
            return -1;
    }
    return 0;
}

/* A fragment being placed: its bytes, and whether a piece that is all of them may hold their owner: the owner is
 * the fragment's data (add), or its frame (add_from_frame) while the datagram keeps its frames (keep): accounted
 * either way. A frame it does not keep (max_fragments reached) may be far larger than the data it carries. */
enum { SHARED, COPIED, SHARED_IF_KEPT };
typedef struct {
    Span span;
    int shared;
} Fragment;

/* A new piece at `start`: `size` bytes of the fragment from `from` on, the fragment's owner held where the piece is
 * all of a fragment that may share it, else a copy (a part held alone: no more than it accounts). 0, or -1 with an
 * exception set. */
static int new_piece(Piece *piece, Py_ssize_t start, const Fragment *fragment, Py_ssize_t from, Py_ssize_t size)
{
    piece->start = start;
    piece->data.size = size;
    if (fragment->shared == SHARED && from == 0 && size == fragment->span.size) {
        piece->data.owner = Py_NewRef(fragment->span.owner);
        piece->data.skip = fragment->span.skip;
        return 0;
    }
    piece->data.skip = 0;
    piece->data.owner = PyBytes_FromStringAndSize(span_bytes(&fragment->span) + from, size);
    return piece->data.owner == NULL ? -1 : 0;
}

/* Frees the first k pieces made by insert() and returns its error (-2). */
static Py_ssize_t free_pieces(Piece *pieces, Py_ssize_t k)
{
    for (Py_ssize_t j = 0; j < k; j++)
        Py_DECREF(pieces[j].data.owner);
    PyMem_Free(pieces);
    return -2;
}

/* fragments._insert: merge the fragment at offset into the pieces; the bytes not held before, or -1 (nothing
 * stored) when it disagrees with bytes held; -2 with an exception set. */
static Py_ssize_t insert(Pending *p, Py_ssize_t offset, const Fragment *fragment)
{
    Py_ssize_t size = fragment->span.size;
    const char *bytes = span_bytes(&fragment->span);
    Py_ssize_t n = p->n_pieces;
    if (n == 0 || offset >= p->pieces[n - 1].start + p->pieces[n - 1].data.size) {
        if (size) {
            if (reserve_pieces(p, n + 1) < 0 || new_piece(&p->pieces[n], offset, fragment, 0, size) < 0)
                return -2;
            p->n_pieces = n + 1;
        }
        return size;
    }
    Py_ssize_t end = offset + size;
    Py_ssize_t first = 0; /* bisect_right(starts, offset) - 1 */
    while (first < n && p->pieces[first].start <= offset)
        first++;
    first--;
    if (first < 0 || p->pieces[first].start + p->pieces[first].data.size <= offset)
        first++;
    Py_ssize_t last = first;
    /* First pass: compare and count what changes, so that nothing is stored on a conflict. */
    Py_ssize_t cursor = offset, added = 0, new_count = 0;
    while (last < n && p->pieces[last].start < end) {
        Py_ssize_t start = p->pieces[last].start, length = p->pieces[last].data.size;
        Py_ssize_t lo = offset > start ? offset : start;
        Py_ssize_t hi = end < start + length ? end : start + length;
        if (hi > lo && memcmp(bytes + (lo - offset), span_bytes(&p->pieces[last].data) + (lo - start),
                              (size_t)(hi - lo)) != 0)
            return -1;
        if (cursor < start) {
            added += start - cursor;
            new_count++;
        }
        new_count++;
        if (start + length > cursor)
            cursor = start + length;
        last++;
    }
    if (cursor < end) {
        added += end - cursor;
        new_count++;
    }
    /* Second pass: the new pieces of [first, last). */
    Piece *fresh = PyMem_Malloc((size_t)(new_count ? new_count : 1) * sizeof(Piece));
    if (fresh == NULL) {
        PyErr_NoMemory();
        return -2;
    }
    Py_ssize_t k = 0;
    cursor = offset;
    for (Py_ssize_t i = first; i < last; i++) {
        Py_ssize_t start = p->pieces[i].start, length = p->pieces[i].data.size;
        if (cursor < start && new_piece(&fresh[k++], cursor, fragment, cursor - offset, start - cursor) < 0)
            return free_pieces(fresh, k - 1); /* the gap before the piece held */
        fresh[k] = p->pieces[i];
        Py_INCREF(fresh[k++].data.owner);
        if (start + length > cursor)
            cursor = start + length;
    }
    if (cursor < end && new_piece(&fresh[k++], cursor, fragment, cursor - offset, end - cursor) < 0)
        return free_pieces(fresh, k - 1); /* the tail after the last piece held */
    Py_ssize_t replaced = last - first;
    if (reserve_pieces(p, n - replaced + k) < 0)
        return free_pieces(fresh, k);
    for (Py_ssize_t i = first; i < last; i++)
        Py_DECREF(p->pieces[i].data.owner);
    memmove(p->pieces + first + k, p->pieces + last, (size_t)(n - last) * sizeof(Piece));
    memcpy(p->pieces + first, fresh, (size_t)k * sizeof(Piece));
    p->n_pieces = n - replaced + k;
    PyMem_Free(fresh);
    return added;
}

/* fragments._place: C_* of the reason to discard the datagram, -1 for none, -2 with an exception set. */
static int place(Reassembler *self, Pending *p, Py_ssize_t offset, int more, const Fragment *fragment, long proto)
{
    Py_ssize_t size = fragment->span.size;
    Py_ssize_t end = offset + size;
    if (end > self->max_datagram_size)
        return C_TOO_LARGE;
    if (p->total >= 0 && (end > p->total || (!more && end != p->total)))
        return C_INCONSISTENT;
    if (!more) {
        if (p->max_end > end)
            return C_INCONSISTENT;
        p->total = end;
    }
    Py_ssize_t pieces_before = p->n_pieces;
    Py_ssize_t novel = insert(p, offset, fragment);
    if (novel == -2)
        return -2;
    if (novel < 0)
        return C_OVERLAP;
    p->received += novel;
    self->bytes += novel + PIECE_OVERHEAD * (p->n_pieces - pieces_before);
    if (p->n_pieces > self->max_fragments)
        return C_TOO_MANY;
    if (novel < size && count_up(self, C_DUPLICATE) < 0)
        return -2;
    if (offset == 0)
        p->proto = proto;
    if (end > p->max_end)
        p->max_end = end;
    return -1;
}

/* fragments._keep */
static int keep(Reassembler *self, Pending *p, PyObject *frame)
{
    if (p->n_frames >= self->max_fragments)
        return count_up(self, C_NOT_KEPT);
    PyObject *data = PyObject_GetAttr(frame, str_data);
    if (data == NULL)
        return -1;
    Py_ssize_t size = PyObject_Length(data);
    Py_DECREF(data);
    if (size < 0)
        return -1;
    if (p->n_frames == p->cap_frames) {
        Py_ssize_t cap = p->cap_frames ? p->cap_frames * 2 : 4;
        PyObject **grown = PyMem_Realloc(p->frames, (size_t)cap * sizeof(PyObject *));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        p->frames = grown;
        p->cap_frames = cap;
    }
    p->frames[p->n_frames++] = Py_NewRef(frame);
    p->frame_bytes += size;
    self->bytes += size + FRAME_OVERHEAD;
    return 0;
}

static Pending *new_pending(Reassembler *self, PyObject *key, double ts, PyObject *ts_obj)
{
    Pending *p = PyMem_Calloc(1, sizeof(Pending));
    if (p == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    p->first_ts = ts;
    p->first_ts_obj = Py_NewRef(ts_obj);
    p->proto = -1;
    p->total = -1;
    p->key = Py_NewRef(key);
    p->capsule = PyCapsule_New(p, CAPSULE_NAME, NULL);
    if (p->capsule == NULL || PyDict_SetItem(self->index, key, p->capsule) < 0) {
        pending_free(p);
        return NULL;
    }
    p->prev = self->newest;
    if (self->newest)
        self->newest->next = p;
    else
        self->oldest = p;
    self->newest = p;
    self->bytes += DATAGRAM_OVERHEAD;
    return p;
}

static PyObject *join_pieces(Pending *p)
{
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < p->n_pieces; i++)
        total += p->pieces[i].data.size;
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL)
        return NULL;
    char *to = PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < p->n_pieces; i++) {
        Py_ssize_t size = p->pieces[i].data.size;
        memcpy(to, span_bytes(&p->pieces[i].data), (size_t)size);
        to += size;
    }
    return out;
}

/* fragments.Reassembler.add once its arguments are read: `fragment` its bytes, ts_obj the time as given. */
static PyObject *add_fragment(Reassembler *self, PyObject *key, PyObject *ts_obj, double ts, Py_ssize_t offset,
                              int more, Fragment *fragment, long proto, Py_ssize_t wire_len, PyObject *frame)
{
    if (count_up(self, C_FRAGMENTS) < 0 || expire_at(self, ts, ts_obj) < 0)
        return NULL;
    Pending *p = lookup(self, key);
    if (p == NULL) {
        if (PyErr_Occurred())
            return NULL;
        if (PyDict_GET_SIZE(self->index) >= self->max_datagrams && drop_oldest(self, C_EVICTED) < 0)
            return NULL;
        p = new_pending(self, key, ts, ts_obj);
        if (p == NULL)
            return NULL;
    }
    if (p->dead) { /* absorbed by a tombstone: its bytes handed on, headless (fragments.Reassembler.add) */
        Rewrite absorbed = {offset, &fragment->span, proto, wire_len, frame};
        PyObject *kept = frame != NULL && frame != Py_None ? frame : NULL;
        if (hand_on_headless(self, key, p, -1, &absorbed, kept, wire_len) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    if (fragment->shared == SHARED_IF_KEPT) /* as keep() will decide once it is placed */
        fragment->shared = p->n_frames < self->max_fragments ? SHARED : COPIED;
    int reason = place(self, p, offset, more, fragment, proto);
    if (reason == -2)
        return NULL;
    if (reason >= 0) {
        if (hand_on(self, key, p, NULL) < 0)
            return NULL;
        if (reason == C_OVERLAP) { /* the first copy as held, then the rewrite applied (a last-wins receiver's) */
            Rewrite rewrite = {offset, &fragment->span, proto, wire_len, frame};
            if (hand_on(self, key, p, &rewrite) < 0)
                return NULL;
        }
        if (kill(self, p, reason) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    p->wire_len += wire_len;
    if (frame != NULL && frame != Py_None && keep(self, p, frame) < 0)
        return NULL;
    while (self->bytes > self->max_bytes && self->oldest != NULL)
        if (drop_oldest(self, C_EVICTED) < 0)
            return NULL;
    p = lookup(self, key); /* the eviction may have taken it */
    if (p == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    if (p->received != p->total)
        Py_RETURN_NONE;
    PyObject *payload = join_pieces(p);
    if (payload == NULL)
        return NULL;
    PyObject *frames = frames_tuple(self, p, NULL);
    PyObject *datagram = frames ? new_datagram(p->proto, payload, p->wire_len, frames, 0, Py_None, zero_time, zero_time,
                                               no_runs) /* the dataclass's defaults */
                                : NULL;
    Py_DECREF(payload);
    Py_XDECREF(frames);
    if (datagram == NULL)
        return NULL;
    self->bytes -= cost(p);
    if (forget(self, p) < 0 || count_up(self, C_REASSEMBLED) < 0) {
        Py_DECREF(datagram);
        return NULL;
    }
    return datagram;
}


/* add's and add_from_frame's `more` (truthy) and `proto` (an int): 0, or -1 with an exception set. */
static int read_more_and_proto(PyObject *more_obj, PyObject *proto_obj, int *more, long *proto)
{
    *more = PyObject_IsTrue(more_obj);
    if (*more < 0)
        return -1;
    *proto = PyLong_AsLong(proto_obj);
    return *proto == -1 && PyErr_Occurred() ? -1 : 0;
}

/* add(key, ts, offset, more, data, proto, wire_len=0, frame=None) */
static PyObject *reassembler_add(Reassembler *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"key", "ts", "offset", "more", "data", "proto", "wire_len", "frame"};
    PyObject *values[8] = {NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > 8) {
        PyErr_SetString(PyExc_TypeError, "add() takes at most 8 arguments");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        values[i] = args[i];
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        int found = 0;
        for (int j = 0; j < 8; j++)
            if (PyUnicode_CompareWithASCIIString(name, names[j]) == 0) {
                if (values[j] != NULL) {
                    PyErr_Format(PyExc_TypeError, "add() got multiple values for '%s'", names[j]);
                    return NULL;
                }
                values[j] = args[nargs + i];
                found = 1;
            }
        if (!found) {
            PyErr_Format(PyExc_TypeError, "add() got an unexpected keyword argument '%U'", name);
            return NULL;
        }
    }
    for (int j = 0; j < 6; j++)
        if (values[j] == NULL) {
            PyErr_Format(PyExc_TypeError, "add() missing argument '%s'", names[j]);
            return NULL;
        }
    PyObject *key = values[0], *ts_obj = values[1], *data = values[4];
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "add(): data must be bytes");
        return NULL;
    }
    double ts = PyFloat_AsDouble(ts_obj);
    if (ts == -1.0 && PyErr_Occurred())
        return NULL;
    Py_ssize_t offset = PyLong_AsSsize_t(values[2]);
    if (offset == -1 && PyErr_Occurred())
        return NULL;
    if (offset < 0) {
        PyErr_SetString(PyExc_ValueError, "add(): a fragment's offset is not negative");
        return NULL;
    }
    int more;
    long proto;
    if (read_more_and_proto(values[3], values[5], &more, &proto) < 0)
        return NULL;
    Py_ssize_t wire_len = values[6] ? PyLong_AsSsize_t(values[6]) : 0;
    if (wire_len == -1 && PyErr_Occurred())
        return NULL;
    PyObject *frame = values[7];
    Fragment fragment = {{data, 0, PyBytes_GET_SIZE(data)}, SHARED};
    return add_fragment(self, key, ts_obj, ts, offset, more, &fragment, proto, wire_len, frame);
}

/* add_from_frame(key, ts, offset, more, proto, frame, at, size): fragments.Reassembler.add_from_frame. */
static PyObject *reassembler_add_from_frame(Reassembler *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "add_from_frame() takes 8 arguments");
        return NULL;
    }
    PyObject *frame = args[5];
    PyObject *data = PyTuple_Check(frame) && PyTuple_GET_SIZE(frame) == 3 ? PyTuple_GET_ITEM(frame, 2) : NULL;
    if (data == NULL || !PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "add_from_frame(): frame must be a CapturedFrame of bytes");
        return NULL;
    }
    double ts = PyFloat_AsDouble(args[1]);
    if (ts == -1.0 && PyErr_Occurred())
        return NULL;
    Py_ssize_t offset = PyLong_AsSsize_t(args[2]), at = PyLong_AsSsize_t(args[6]), size = PyLong_AsSsize_t(args[7]);
    if ((offset == -1 || at == -1 || size == -1) && PyErr_Occurred())
        return NULL;
    if (offset < 0 || at < 0 || size < 0) {
        PyErr_SetString(PyExc_ValueError, "add_from_frame(): a fragment's offset and span are not negative");
        return NULL;
    }
    int more;
    long proto;
    if (read_more_and_proto(args[3], args[4], &more, &proto) < 0)
        return NULL;
    Py_ssize_t length = PyBytes_GET_SIZE(data); /* data[at : at + size], as a slice cuts it */
    if (at > length)
        at = length;
    if (size > length - at)
        size = length - at;
    Fragment fragment = {{data, at, size}, SHARED_IF_KEPT};
    return add_fragment(self, args[0], args[1], ts, offset, more, &fragment, proto, length, frame);
}

static PyObject *reassembler_expire(Reassembler *self, PyObject *now_obj)
{
    double now = PyFloat_AsDouble(now_obj);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    if (expire_at(self, now, now_obj) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *reassembler_flush(Reassembler *self, PyObject *Py_UNUSED(ignored))
{
    if (set_partials_empty(self) < 0)
        return NULL;
    while (self->oldest != NULL)
        if (drop_oldest(self, C_UNFINISHED) < 0)
            return NULL;
    Py_RETURN_NONE;
}

static void drop_all(Reassembler *self)
{
    Pending *p = self->oldest;
    self->oldest = self->newest = NULL;
    while (p != NULL) {
        Pending *next = p->next;
        pending_free(p);
        p = next;
    }
}

static PyObject *reassembler_clear(Reassembler *self, PyObject *Py_UNUSED(ignored))
{
    PyDict_Clear(self->index);
    drop_all(self);
    self->bytes = 0;
    if (set_partials_empty(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *reassembler_take_partials(Reassembler *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *fresh = PyList_New(0);
    if (fresh == NULL)
        return NULL;
    PyObject *taken = self->partials;
    self->partials = fresh;
    return taken;
}

/* The datagrams held (tombstones included): the index's entries. */
static Py_ssize_t reassembler_len(Reassembler *self) { return self->index ? PyDict_GET_SIZE(self->index) : 0; }

static PyObject *get_has_partials(Reassembler *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(PyList_GET_SIZE(self->partials) > 0);
}

static PyObject *get_pending_bytes(Reassembler *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->bytes);
}

static PyObject *get_timeout(Reassembler *self, void *Py_UNUSED(closure)) { return PyFloat_FromDouble(self->timeout); }

static PyObject *get_stats(Reassembler *self, void *Py_UNUSED(closure)) { return Py_NewRef(self->stats); }

static PyObject *get_keep_frames(Reassembler *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->keep_frames);
}

static int set_keep_frames(Reassembler *self, PyObject *value, void *Py_UNUSED(closure))
{
    int truth = value ? PyObject_IsTrue(value) : -1;
    if (truth < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "keep_frames cannot be deleted");
        return -1;
    }
    self->keep_frames = truth;
    return 0;
}

#define SIZE_GETTER(field)                                                                     \
    static PyObject *get_##field(Reassembler *self, void *Py_UNUSED(closure))                   \
    {                                                                                          \
        return PyLong_FromSsize_t(self->field);                                                \
    }
SIZE_GETTER(max_datagrams)
SIZE_GETTER(max_datagram_size)
SIZE_GETTER(max_bytes)
SIZE_GETTER(max_fragments)

static int reassembler_init(Reassembler *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"max_datagrams", "timeout", "max_datagram_size", "stats", "max_bytes",
                             "max_fragments", "keep_frames", NULL};
    Py_ssize_t max_datagrams = 4096, max_datagram_size = 65535, max_bytes = 64 * 1024 * 1024, max_fragments = 256;
    double timeout = 30.0;
    PyObject *stats = Py_None;
    int keep_frames = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|ndnO$nnp:Reassembler", kwlist, &max_datagrams, &timeout,
                                     &max_datagram_size, &stats, &max_bytes, &max_fragments, &keep_frames))
        return -1;
    if (datagram_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Reassembler: bind() the Datagram type first");
        return -1;
    }
    Py_ssize_t least = max_datagrams;
    if (max_datagram_size < least)
        least = max_datagram_size;
    if (max_bytes < least)
        least = max_bytes;
    if (max_fragments < least)
        least = max_fragments;
    if (least < 1 || timeout <= 0) {
        PyErr_SetString(PyExc_ValueError, "reassembly limits must be positive");
        return -1;
    }
    if (stats == Py_None) {
        PyObject *collections = PyImport_ImportModule("collections");
        stats = collections ? PyObject_CallMethod(collections, "Counter", NULL) : NULL;
        Py_XDECREF(collections);
        if (stats == NULL)
            return -1;
    }
    else
        Py_INCREF(stats);
    Py_XSETREF(self->stats, stats);
    self->dict_stats = 0;
    if (PyDict_Check(stats)) {
        PyObject *own = PyObject_GetAttrString((PyObject *)Py_TYPE(stats), "__setitem__");
        PyObject *dicts = own ? PyObject_GetAttrString((PyObject *)&PyDict_Type, "__setitem__") : NULL;
        self->dict_stats = own != NULL && own == dicts;
        Py_XDECREF(own);
        Py_XDECREF(dicts);
        if (PyErr_Occurred())
            return -1;
    }
    self->max_datagrams = max_datagrams;
    self->timeout = timeout;
    self->max_datagram_size = max_datagram_size;
    self->max_bytes = max_bytes;
    self->max_fragments = max_fragments;
    self->keep_frames = keep_frames;
    if (self->index == NULL && (self->index = PyDict_New()) == NULL)
        return -1;
    PyDict_Clear(self->index);
    drop_all(self);
    self->bytes = 0;
    Py_XSETREF(self->partials, PyList_New(0));
    if (self->partials == NULL)
        return -1;
    self->now = -Py_HUGE_VAL;
    Py_XSETREF(self->now_obj, PyFloat_FromDouble(-Py_HUGE_VAL));
    return self->now_obj == NULL ? -1 : 0;
}

static int reassembler_traverse(Reassembler *self, visitproc visit, void *arg)
{
    Py_VISIT(self->stats);
    Py_VISIT(self->index);
    Py_VISIT(self->partials);
    Py_VISIT(self->now_obj);
    for (Pending *p = self->oldest; p != NULL; p = p->next) {
        Py_VISIT(p->key);
        Py_VISIT(p->first_ts_obj);
        for (Py_ssize_t i = 0; i < p->n_frames; i++)
            Py_VISIT(p->frames[i]);
    }
    return 0;
}

static int reassembler_clear_refs(Reassembler *self)
{
    Py_CLEAR(self->index);
    drop_all(self);
    Py_CLEAR(self->stats);
    Py_CLEAR(self->partials);
    Py_CLEAR(self->now_obj);
    return 0;
}

static void reassembler_dealloc(Reassembler *self)
{
    PyObject_GC_UnTrack(self);
    reassembler_clear_refs(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef reassembler_methods[] = {
    {"add", (PyCFunction)(void (*)(void))reassembler_add, METH_FASTCALL | METH_KEYWORDS,
     "add(key, ts, offset, more, data, proto, wire_len=0, frame=None): fragments.Reassembler.add"},
    {"add_from_frame", (PyCFunction)(void (*)(void))reassembler_add_from_frame, METH_FASTCALL,
     "add_from_frame(key, ts, offset, more, proto, frame, at, size): fragments.Reassembler.add_from_frame"},
    {"expire", (PyCFunction)reassembler_expire, METH_O, "fragments.Reassembler.expire"},
    {"flush", (PyCFunction)reassembler_flush, METH_NOARGS, "fragments.Reassembler.flush"},
    {"clear", (PyCFunction)reassembler_clear, METH_NOARGS, "fragments.Reassembler.clear"},
    {"take_partials", (PyCFunction)reassembler_take_partials, METH_NOARGS, "fragments.Reassembler.take_partials"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef reassembler_getset[] = {
    {"has_partials", (getter)get_has_partials, NULL, "whether the last call abandoned partial datagrams", NULL},
    {"pending_bytes", (getter)get_pending_bytes, NULL, "the memory held, as accounted", NULL},
    {"keep_frames", (getter)get_keep_frames, (setter)set_keep_frames, "keep each fragment's frame", NULL},
    {"stats", (getter)get_stats, NULL, "the counters", NULL},
    {"timeout", (getter)get_timeout, NULL, NULL, NULL},
    {"max_datagrams", (getter)get_max_datagrams, NULL, NULL, NULL},
    {"max_datagram_size", (getter)get_max_datagram_size, NULL, NULL, NULL},
    {"max_bytes", (getter)get_max_bytes, NULL, NULL, NULL},
    {"max_fragments", (getter)get_max_fragments, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods reassembler_sequence = {.sq_length = (lenfunc)reassembler_len};

static PyTypeObject ReassemblerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "icmpsensor.decode._fastfragments.Reassembler",
    .tp_basicsize = sizeof(Reassembler),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)reassembler_init,
    .tp_dealloc = (destructor)reassembler_dealloc,
    .tp_traverse = (traverseproc)reassembler_traverse,
    .tp_clear = (inquiry)reassembler_clear_refs,
    .tp_methods = reassembler_methods,
    .tp_getset = reassembler_getset,
    .tp_as_sequence = &reassembler_sequence,
    .tp_doc = "fragments.Reassembler in C (see the module's comment).",
};

/* bind(Datagram, DATAGRAM_OVERHEAD, PIECE_OVERHEAD, FRAME_OVERHEAD) */
static PyObject *bind(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *type;
    Py_ssize_t datagram_overhead, piece_overhead, frame_overhead;
    if (!PyArg_ParseTuple(args, "Onnn:bind", &type, &datagram_overhead, &piece_overhead, &frame_overhead))
        return NULL;
    if (slot_offsets(type, DATAGRAM_SLOTS, D_SLOTS, datagram_slot) < 0)
        return NULL;
    Py_XSETREF(datagram_type, (PyTypeObject *)Py_NewRef(type));
    DATAGRAM_OVERHEAD = datagram_overhead;
    PIECE_OVERHEAD = piece_overhead;
    FRAME_OVERHEAD = frame_overhead;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"bind", bind, METH_VARARGS, "bind(Datagram, DATAGRAM_OVERHEAD, PIECE_OVERHEAD, FRAME_OVERHEAD)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "icmpsensor.decode._fastfragments",
    "fragments.Reassembler in C (decode/fragments.py is the reference).", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastfragments(void)
{
    if (PyType_Ready(&ReassemblerType) < 0)
        return NULL;
    for (int i = 0; i < C_COUNTERS; i++)
        if ((counter_name[i] = PyUnicode_InternFromString(COUNTER_NAMES[i])) == NULL)
            return NULL;
    if ((str_data = PyUnicode_InternFromString("data")) == NULL || (zero_time = PyFloat_FromDouble(0.0)) == NULL
        || (zero_count = PyLong_FromLong(0)) == NULL || (one_count = PyLong_FromLong(1)) == NULL
        || (no_runs = PyTuple_New(0)) == NULL)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "Reassembler", (PyObject *)&ReassemblerType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
