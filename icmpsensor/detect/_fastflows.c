/* The standard detector's per-packet path in C for the echo messages that change no decision
 * (detect/standard.py Detector.process is the reference; tests/unit/test_fastflows.py holds the two equal).
 *
 * FastPath.handle(pkt) takes these kinds of packet, and only when every condition below holds; for any other it
 * changes nothing and returns False, and the Python detector handles the packet:
 *
 *  - an echo reply (code 0) answering a pending request (matched pairing) whose payload sketch it repeats:
 *    Detector._on_reply up to its `current == request` return, on a flow the table has or on a new one (a
 *    monitor's one exchange with each host: no allowlist, no pair memory);
 *  - an echo request (code 0, no IP options: with them only as below) on a flow the table has, whose header is a
 *    ping's next one (same identifier and size, the sequence number one stride on) and whose payload sketch is
 *    the flow's last, or
 *    whose payload is iputils', BSD ping's, pro-bing's, BusyBox's or Cisco's default one with a new clock that
 *    its run's clock explains (below; pro-bing's tracker UUID, BusyBox's fill byte and Cisco's pattern the run's
 *    session), or whose payload another template explains (run_template: fingerprints.explain asked, a -p pattern,
 *    check_icmp's, an untimed fill) with its session and clock as the run's (Detector._consistent charging and
 *    setting nothing):
 *    Detector._on_request with no novel bytes. With the flow's last payload, the sequence number may also be out
 *    of step where capacity.request_header charges nothing for it (free_seq_step), once the flow has its
 *    capacity state: within SEQ_FREE of one up (in either byte order) or of the flow's stride, or a jump either
 *    way after a pause of RUN_PAUSE with a token left in the flow's run budget (Windows ping.exe's one counter for
 *    the whole machine, moved on by its runs to other hosts; several machines' behind a NAT); the new stride and
 *    the token are the reference's.
 *    The tool tracker still sees it (the C tracker's observe); an answer other than None is finished by the
 *    tracker's own finish (Python's: the tool's recognition, tool_seen), and a tool found has the flow evaluated,
 *    as _on_request's _recognise_tool and _request_done do;
 *  - an echo request with a new payload that no template explains (novel_request): a reported exfiltration's next
 *    chunk, a flood's next random bytes; in step (as above), or with a header that is not a ping's next (a new
 *    identifier, a sequence number out of step, a new size off the flow's stride: scapy's ICMP() sends 0 and 0
 *    every time, a tunnel draws them at random), whose charges capacity.request_header works out once the request is
 *    taken (header_apply; Detector._header), and IP options, whose bytes are charged once while they repeat
 *    (options_apply; Detector._options). _novelty's checks are made before anything changes
 *    (fingerprints.explain called where a template's tests of its first bytes and its fill pass, explain_may_match;
 *    capacity.random_padding called where padding_may_match lets the payload through; _as_fields' "a few places"
 *    test made here), the sender's memory is kept as HostTable.touch and SpreadMemory.seen keep it (touch_host,
 *    seen_payload; a host the table does not have goes through touch itself), the novel bytes are added as
 *    _add_novel adds them (their share of the hosts' memories by the detector's own _spread while the flow is under
 *    novel_bytes_threshold), and handle() returns True
 *    (last_novel holds them) where the flow's evaluation would raise nothing (every note it checks is off, not due,
 *    or raised already), else (flow,): Detector._finish evaluates the flow; run() stops there for the evidence
 *    recorder unless the pair is one it watches;
 *  - an echo request whose payload a template explains under a header that is not the flow's next
 *    (templated_request: a monitor's new run every probe, a ping that changed its size), its header charged and its
 *    run started over (a new run's other session charged as capacity.pattern_bits charges it) or its clock kept as
 *    Detector._consistent does; and one that repeats the flow's last payload under a header whose change is charged
 *    (repeated_request: traceroute -I's new identifiers, a sequence number that jumps);
 *  - an echo reply that answers no pending request (unpaired_reply): with novel bytes no template explains (a
 *    tunnel's replies seen without their requests, a flood of replies), up to the flow's evaluation, as a request's;
 *    or repeating the flow's last payload or a template's (a monitor's replies on a link whose other direction the
 *    sensor does not see), its header charged as a request's;
 *  - a new flow's first echo request (first_request, below; its IP options charged as above): a notice storm's
 *    every packet, a host's new data to host after host (compared with its last peer's flow where that may be
 *    fields: may_be_fields), up to its evaluation; or, whose payload a template explains (first_templated: a ping's
 *    first request, a monitor's one request to each host), its run started as Detector._consistent starts it;
 *    and, past max_flows, the eviction after it (evict_flow: FlowDetector._evict_one, its victim's end flow_ended's);
 *  - an ICMP error whose quote nonecho.unexplained_bytes finds nothing wrong with (benign_error): counted, the
 *    clock moved, as Detector._on_other does before it returns;
 *  - any other non-echo message, and an echo request with a code (other_message): judged here where it is a
 *    timestamp message, a coded echo request or a headless packet (judged_here), else nonecho.unexplained_bytes
 *    asked from here;
 *    nothing unexplained counted as above, else its flow made or touched with those bytes, up to its evaluation,
 *    as a request's;
 *  - whatever the flow's evaluation finds due but SlowExfil is raised here (raise_due), and a tool the tool
 *    tracker recognises is finished here with the tracker's own finish (tool_seen).
 *
 * The timed case is fingerprints.explain's answer for five layouts, where explain would give it: iputils' 64-bit
 * struct timeval (little-endian) then the default fill, byte j = j (iputils ping/ping_common.c setup()), and
 * BSD ping's wall-clock struct tv32 (big-endian) then the same fill from byte 8; 16 bytes or more (below, explain's
 * _untimed tries patterns from byte 0 first). No template explain tries first can take such a payload: it is not
 * one repeated byte (iputils' byte 7 is 0 and byte 16 0x10, and 16 zero bytes are no time within the tolerance;
 * BSD's bytes 8 and 9 are 8 and 9), nor Windows', traceroute's or blackbox_exporter's text (byte 7 is 0 or bytes 8
 * to 15 are 8 to 15), nor check_icmp's ping_id (byte 16 is 10) or pro-bing's UUID variant (0b10......), which need
 * 24 bytes; the other layouts explain tries before _bsd are ruled out in default_ping_time. The third, pro-bing's,
 * is at pro_bing_layout; the fourth and fifth, BusyBox's and Cisco's (their clocks count from boot and wrap), at
 * busybox_layout and cisco_layout.
 * Then Detector._consistent, for a request of the run the flow follows (its ident the flow's session_ident, its
 * session the flow's): a wall clock must not go back by more than 1 s, and every clock must keep its offset to the
 * capture clock within clock_jitter (one that wraps: the move read modulo the wrap); where it would charge or
 * refuse, or the run is a new one, the Python detector takes the packet.
 *
 * Neither may move the clock past a sweep (Detector._sweep: Detector._finish sweeps and offers the packet again) or
 * meet an allowlisted payload. The detector's state stays where the reference keeps it: the flows and the pending
 * requests in its OrderedDicts (changed through the mapping protocol and their methods, so their order is the
 * reference's), its clock and counters in its own attributes (read once per call and written back before the
 * call returns: detector_state, detector_done), a flow's fields in its Flow slots (offsets taken by bind()).
 * Payload sketches are novelty.sketch's: the first PREFIX bytes, Python's hash of the rest, the length; a sketch
 * the packet repeats is kept as it is (the reference stores an equal new tuple).
 *
 * flow_notice() makes a flow's notice as flows.FlowDetector._notice does (both profiles; bound by bind_notice()):
 * a notice storm makes two a flow, almost all folded unread, and the Python statement cost ~3-4 us each.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../_checksum.h"
#include "../_slots.h"
#include "../_tuples.h"
#include "../notice/_aggregate_api.h"

/* -- the record types' slots, found by bind() ------------------------------------------------------------- */

enum { P_TS, P_SRC, P_DST, P_IPV6, P_TYPE, P_CODE, P_IDENT, P_SEQ, P_PAYLOAD, P_OPTIONS, N_PACKET };
static const char *const PACKET_FIELDS[N_PACKET] = {"ts",    "src", "dst",     "ipv6",   "icmp_type",
                                              "icmp_code", "ident", "seq", "payload", "options"};
enum {
    F_LAST, F_N, F_ORIG_BYTES, F_RESP_BYTES, F_RECEIVED_BYTES, F_LAST_IDENT, F_LAST_SEQ, F_SEQ_STRIDE,
    F_LAST_SIZE, F_LAST_SKETCH, F_LAST_REQUEST_TS, F_TOOL, F_SESSION_IDENT, F_LAST_EMBEDDED, F_CLOCK_OFFSET,
    F_CHANNELS, F_SESSION, F_NOVEL_BYTES, F_CHANGED_REQUESTS, F_ALLOWLISTED, F_ALERTED, F_REPLY_DIFFERS,
    F_NONECHO_NOVEL, F_REPORTED_UNTIL, F_SRC, F_DST, F_UID, F_OTHER_BYTES, F_NONECHO_REASON, F_TOOL_EVIDENCE, N_FLOW
};
static const char *const FLOW_FIELDS[N_FLOW] = {"last",      "n",        "orig_bytes", "resp_bytes",
                                          "received_bytes", "last_ident", "last_seq", "seq_stride",
                                          "last_size", "last_sketch", "last_request_ts", "tool",
                                          "session_ident", "last_embedded", "clock_offset", "channels",
                                          "session", "novel_bytes", "changed_requests", "allowlisted",
                                          "alerted", "reply_differs", "nonecho_novel", "reported_until",
                                          "src", "dst", "uid", "other_bytes", "nonecho_reason", "tool_evidence"};
enum {
    S_PACKETS, S_ECHO_REQUESTS, S_ECHO_REPLIES, S_OTHER_ICMP, S_PENDING_EVICTED, S_IGNORED_PAYLOADS, S_NOVEL_BYTES,
    S_FLOWS_CREATED, S_NOTICES, S_FLOWS_EVICTED, S_PAIRS_EVICTED, S_UNPAIRED_REPLIES, S_FIELDS_UNREAD, N_STATS
};
static const char *const STATS_FIELDS[N_STATS] = {"packets", "echo_requests", "echo_replies", "other_icmp",
                                            "pending_evicted", "ignored_payloads", "novel_bytes", "flows_created",
                                            "notices", "flows_evicted", "pairs_evicted", "unpaired_replies",
                                            "fields_unread"};

enum { C_STRIDE, C_RUN_DUE, C_PARAM_DUE, C_OTHER_SIZE, C_CARRY, C_OPTIONS, C_RUNS, C_CHARGED, N_CHANNELS };
static const char *const CHANNELS_FIELDS[N_CHANNELS] = {"stride", "run_due", "param_due", "other_size", "carry",
                                                        "options", "runs", "charged"};

static PyTypeObject *packet_type, *flow_type, *stats_type, *channels_type;
static PyTypeObject *headless_type; /* packet.HeadlessPacket: a non-echo message here (its type HEADLESS) */
static PyObject *channels_template; /* FlowChannels(): a flow's capacity state is made a copy of it (record_copy) */
static int record_template(PyObject *template);
static PyObject *record_copy(PyObject *template, Py_ssize_t slot, PyObject *value, Py_ssize_t list_slot);
static Py_ssize_t packet_slot[N_PACKET], flow_slot[N_FLOW], stats_slot[N_STATS], channels_slot[N_CHANNELS];
static Py_ssize_t runs_slot; /* HeadlessPacket.runs */
static Py_ssize_t prefix_len = -1; /* novelty.PREFIX */
static Py_hash_t empty_rest_hash;  /* novelty.EMPTY_REST_HASH */
/* capacity.SEQ_FREE, RUN_PAUSE, RUN_BUDGET, RUN_REFILL, PARAM_BUDGET, PARAM_REFILL, RUNS_REMEMBERED, _ROUTER_ALERT */
static long seq_free, runs_remembered;
static double run_pause, run_budget, run_refill, param_budget, param_refill;
static PyObject *router_alert; /* a tuple of the options option_bytes charges nothing for */
/* nonecho._QUOTED_PROTOCOLS: the protocols a quoted datagram may carry */
static unsigned char quoted_protocol[256];
static unsigned long ipv6_min_mtu; /* nonecho.IPV6_MIN_MTU */
static Py_ssize_t error_payload_v4, error_payload_v6; /* nonecho.error_payload_limit(False / True) */

#define BIND_ARGS "bind(packet_type, flow_type, stats_type, channels_type, prefix, empty_rest_hash, seq_free, " \
                  "run_pause, run_budget, run_refill, param_budget, param_refill, runs_remembered, router_alert, " \
                  "quoted_protocols, headless_type, ipv6_min_mtu, error_payload_v4, error_payload_v6)"
PyDoc_STRVAR(bind_doc, BIND_ARGS "\n\n"
                       "packet.IcmpPacket, flows.Flow, flows.DetectorStats, capacity.FlowChannels (their slots are\n"
                       "read and written in place), novelty.PREFIX and novelty.EMPTY_REST_HASH, capacity.SEQ_FREE,\n"
                       "RUN_PAUSE, RUN_BUDGET, RUN_REFILL, PARAM_BUDGET, PARAM_REFILL, RUNS_REMEMBERED and\n"
                       "_ROUTER_ALERT (a tuple of bytes), nonecho._QUOTED_PROTOCOLS, packet.HeadlessPacket (a subclass\n"
                       "of IcmpPacket: its slots where IcmpPacket has them), nonecho.IPV6_MIN_MTU, and\n"
                       "nonecho.error_payload_limit for IPv4 and IPv6.");

static PyObject *bind_records(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 19) {
        PyErr_SetString(PyExc_TypeError, BIND_ARGS);
        return NULL;
    }
    Py_ssize_t packet[N_PACKET], flow[N_FLOW], stats[N_STATS], channels[N_CHANNELS];
    if (slot_offsets(args[0], PACKET_FIELDS, N_PACKET, packet) < 0
        || slot_offsets(args[1], FLOW_FIELDS, N_FLOW, flow) < 0
        || slot_offsets(args[2], STATS_FIELDS, N_STATS, stats) < 0
        || slot_offsets(args[3], CHANNELS_FIELDS, N_CHANNELS, channels) < 0)
        return NULL;
    Py_ssize_t prefix = PyLong_AsSsize_t(args[4]);
    if (prefix == -1 && PyErr_Occurred())
        return NULL;
    Py_hash_t empty = PyLong_AsSsize_t(args[5]);
    if (empty == -1 && PyErr_Occurred())
        return NULL;
    long free_steps = PyLong_AsLong(args[6]);
    double pause = PyFloat_AsDouble(args[7]), budget = PyFloat_AsDouble(args[8]), refill = PyFloat_AsDouble(args[9]);
    double params = PyFloat_AsDouble(args[10]), params_refill = PyFloat_AsDouble(args[11]);
    long remembered = PyLong_AsLong(args[12]);
    unsigned long min_mtu = PyLong_AsUnsignedLong(args[16]);
    Py_ssize_t limit_v4 = PyLong_AsSsize_t(args[17]), limit_v6 = PyLong_AsSsize_t(args[18]);
    if (PyErr_Occurred())
        return NULL;
    if (prefix < 0 || empty != _Py_HashBytes("", 0) || free_steps < 0 || !(budget >= 1.0) || !(refill > 0.0)
        || !(params >= 1.0) || !(params_refill > 0.0) || remembered < 0 || !PyTuple_CheckExact(args[13])
        || !PyFrozenSet_CheckExact(args[14])) {
        PyErr_SetString(PyExc_ValueError, "bind(): prefix, seq_free and runs_remembered must be >= 0, "
                                          "empty_rest_hash hash(b''), the budgets >= 1, their refills > 0, "
                                          "router_alert a tuple and quoted_protocols a frozenset");
        return NULL;
    }
    if (!PyType_Check(args[15]) || !PyType_IsSubtype((PyTypeObject *)args[15], (PyTypeObject *)args[0])) {
        /* a subclass keeps its base's slots where they are */
        PyErr_SetString(PyExc_TypeError, "bind(): headless_type must be a subclass of packet_type");
        return NULL;
    }
    static const char *const runs_field[1] = {"runs"};
    Py_ssize_t runs;
    if (slot_offsets(args[15], runs_field, 1, &runs) < 0)
        return NULL;
    unsigned char protocols[256] = {0};
    for (int proto = 0; proto < 256; proto++) {
        PyObject *number = PyLong_FromLong(proto);
        int member = number == NULL ? -1 : PySet_Contains(args[14], number);
        Py_XDECREF(number);
        if (member < 0)
            return NULL;
        protocols[proto] = (unsigned char)member;
    }
    memcpy(quoted_protocol, protocols, sizeof protocols);
    ipv6_min_mtu = min_mtu;
    error_payload_v4 = limit_v4, error_payload_v6 = limit_v6;
    memcpy(packet_slot, packet, sizeof packet);
    memcpy(flow_slot, flow, sizeof flow);
    memcpy(stats_slot, stats, sizeof stats);
    memcpy(channels_slot, channels, sizeof channels);
    runs_slot = runs;
    Py_XSETREF(packet_type, (PyTypeObject *)Py_NewRef(args[0]));
    Py_XSETREF(headless_type, (PyTypeObject *)Py_NewRef(args[15]));
    Py_XSETREF(flow_type, (PyTypeObject *)Py_NewRef(args[1]));
    Py_XSETREF(stats_type, (PyTypeObject *)Py_NewRef(args[2]));
    Py_XSETREF(channels_type, (PyTypeObject *)Py_NewRef(args[3]));
    Py_XSETREF(channels_template, PyObject_CallNoArgs(args[3]));
    if (channels_template == NULL || !record_template(channels_template)) {
        Py_CLEAR(channels_template);
        return NULL;
    }
    prefix_len = prefix;
    empty_rest_hash = empty;
    seq_free = free_steps;
    run_pause = pause;
    run_budget = budget;
    run_refill = refill;
    param_budget = params;
    param_refill = params_refill;
    runs_remembered = remembered;
    Py_XSETREF(router_alert, Py_NewRef(args[13]));
    Py_RETURN_NONE;
}

/* flows.Flow and a new one made from flows.NEW_FLOW (bound and defined with the notices, below) */
static PyTypeObject *notice_flow_type;
static PyObject *flow_from_template(PyObject *const *args);

/* -- small helpers ---------------------------------------------------------------------------------------- */

/* The detector's attributes the path reads and writes (interned at import). */
static PyObject *str_now, *str_next_sweep, *str_last_novel, *str_run_free, *str_flows, *str_pending, *str_stats;
static PyObject *str_move_to_end, *str_popitem, *str_last;
static PyObject *str_touch, *tolerance_kwnames; /* novel_request's */
static PyObject *reply_kwnames; /* ("tolerance", "is_reply"): explain asked about a reply */
static PyObject *str_allowlist, *str_pairs, *str_empty; /* first_request's */
static PyObject *str_fields_due; /* the field readings' budget: the detector's due (capacity.take_token) ... */
static double fields_burst, fields_refill = -1.0; /* ... capacity.FIELD_READINGS and FIELD_READING_REFILL */
static PyObject *str_peers, *str_novel, *str_shed; /* spread_share's */
static PyObject *str_slow_alerted_until, *str_alerted_until; /* evict_pair's, shed_hosts' */
static PyObject *str_ident, *str_seq, *str_length, *str_options; /* the channels a request's header charges */
static PyObject *str_ensure_uid; /* flow_uid_of's */
static PyObject *str_tool, *str_evidence; /* tool_seen's (tunnels.ToolMatch) */
static PyObject *str_format; /* reason_text's */
static PyObject *str_session, *str_embedded_time, *str_wraps_after; /* template_read's (fingerprints.Benign) */
static PyObject *str_template, *str_pattern; /* random_session's; the channel a new run's other session is charged to */
static PyObject *zero, *one, *nsec; /* nsec: 10**9, fingerprints._NSEC */
static PyObject *comma; /* _tags' separator of the channels' names */
static PyObject *empty_str; /* '' */

/* A small int slot's value, or -1 (with no exception) when it is not an exact int that fits a long. */
static int long_slot(PyObject *obj, Py_ssize_t offset, long *out)
{
    PyObject *value = SLOT(obj, offset);
    if (value == NULL || !PyLong_CheckExact(value))
        return -1;
    int overflow;
    *out = PyLong_AsLongAndOverflow(value, &overflow);
    if (overflow || (*out == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return -1;
    }
    return 0;
}

/* slot += amount (Python's +: the reference's arithmetic whatever the slot holds). */
static int add_to_slot(PyObject *obj, Py_ssize_t offset, PyObject *amount)
{
    PyObject *old = SLOT(obj, offset);
    PyObject *sum = PyNumber_Add(old, amount);
    if (sum == NULL)
        return -1;
    SLOT(obj, offset) = sum;
    Py_DECREF(old);
    return 0;
}

/* Whether `sketch` (a novelty.Sketch) is the sketch of `payload`: its first PREFIX bytes, the hash of the rest
 * (novelty.EMPTY_REST_HASH when there is none), its length. 0 for anything that is not such a tuple. */
static int sketch_of(PyObject *sketch, PyObject *payload)
{
    if (sketch == NULL || !PyTuple_CheckExact(sketch) || PyTuple_GET_SIZE(sketch) != 3)
        return 0;
    PyObject *head = PyTuple_GET_ITEM(sketch, 0), *rest = PyTuple_GET_ITEM(sketch, 1),
             *length = PyTuple_GET_ITEM(sketch, 2);
    if (!PyBytes_CheckExact(head) || !PyLong_CheckExact(rest) || !PyLong_CheckExact(length))
        return 0;
    Py_ssize_t n = PyBytes_GET_SIZE(payload);
    Py_ssize_t kept = n <= prefix_len ? n : prefix_len;
    Py_ssize_t sketched_length = PyLong_AsSsize_t(length);
    Py_hash_t rest_hash = PyLong_AsSsize_t(rest);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (sketched_length != n || PyBytes_GET_SIZE(head) != kept
        || memcmp(PyBytes_AS_STRING(head), PyBytes_AS_STRING(payload), (size_t)kept) != 0)
        return 0;
    Py_hash_t expected = n <= prefix_len ? empty_rest_hash : _Py_HashBytes(PyBytes_AS_STRING(payload) + kept, n - kept);
    return rest_hash == expected;
}

static int call_method_1(PyObject *obj, PyObject *name, PyObject *arg)
{
    PyObject *result = PyObject_CallMethodOneArg(obj, name, arg);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

/* -- records made from a template ---------------------------------------------------------------------------- */

/* Whether `template` can be copied by record_copy: an instance of a class of object slots alone (a
 * dataclass(slots=True): no __dict__, no other fields), every slot set. 1, or 0 with TypeError set. */
static int record_template(PyObject *template)
{
    PyTypeObject *type = Py_TYPE(template);
    Py_ssize_t slots = 0;
    for (PyMemberDef *m = type->tp_members; m != NULL && m->name != NULL; m++) {
        if (m->type != T_OBJECT_EX || SLOT(template, m->offset) == NULL)
            break;
        slots++;
    }
    if (type->tp_dictoffset != 0 || type->tp_itemsize != 0 || type->tp_members == NULL
        || type->tp_members[slots].name != NULL
        || type->tp_basicsize != (Py_ssize_t)(sizeof(PyObject) + sizeof(PyObject *) * (size_t)slots)) {
        PyErr_Format(PyExc_TypeError, "%s is not a record of object slots alone, all set", type->tp_name);
        return 0;
    }
    return 1;
}

/* A new instance of `template`'s class (record_template's) as its dataclass __init__ makes it from its defaults: the
 * template's values, but `value` at `slot` (-1: none) and a new empty list at `list_slot` (-1: none; a
 * default_factory=list field of numbers only: PairMemory.buckets). A new reference, or NULL with an exception.
 * It is left untracked by the cyclic collector, as the flows new_flow makes: the detector's records (Flow,
 * SpreadMemory, PairMemory) hold numbers, bytes, str, and tuples, sets, lists, dicts and FlowChannels of those, so no
 * cycle can run through one, and a storm's hundreds of thousands are not walked by every young collection (the
 * containers they hold are tracked as any, but the list, which holds numbers: the collector never untracks a list). */
static PyObject *record_copy(PyObject *template, Py_ssize_t slot, PyObject *value, Py_ssize_t list_slot)
{
    PyTypeObject *type = Py_TYPE(template);
    PyObject *made = type->tp_alloc(type, 0);
    PyObject *list = made == NULL || list_slot < 0 ? NULL : PyList_New(0);
    if (made == NULL || (list_slot >= 0 && list == NULL)) {
        Py_XDECREF(made);
        return NULL;
    }
    for (PyMemberDef *m = type->tp_members; m->name != NULL; m++)
        SLOT(made, m->offset) = m->offset == slot ? Py_NewRef(value)
                                : m->offset == list_slot ? Py_NewRef(list) : Py_NewRef(SLOT(template, m->offset));
    if (list != NULL)
        PyObject_GC_UnTrack(list);
    Py_XDECREF(list);
    PyObject_GC_UnTrack(made);
    return made;
}

/* -- FastPath --------------------------------------------------------------------------------------------- */

#define MAX_PHASED_FILLS 4

/* What other_message judges itself (nonecho.c_judged; nonecho's functions its reference: _echo_code, _v4's fixed body
 * and _timestamp_fields) and asks nonecho.unexplained_bytes about otherwise. */
typedef struct {
    PyObject *unexplained;   /* nonecho.unexplained_bytes: any other message's */
    long nmap_code;          /* nmap's IE probe, this code with these bytes, is free (_echo_code) */
    PyObject *nmap_payload;
    PyObject *echo_code, *timestamp, *beyond; /* the reasons (str.format templates) */
    Py_ssize_t timestamp_body; /* a timestamp message's body past the ICMP header (_FIXED_V4[13]) */
    long long ms_per_day;
    PyObject *headless;       /* a headless packet's reason (HEADLESS_REASON) */
    long headless_icmp_type;  /* its icmp_type (packet.HEADLESS) */
    PyObject *fills;          /* fingerprints.PHASED_FILLS: fill_charge's fills, free at any phase */
    unsigned char free_byte[256]; /* fingerprints.FREE_FILL_BYTES: a run of one of them alone is free */
    short phase[MAX_PHASED_FILLS][256]; /* the first place of each byte in each fill, -1 where it has none */
} Judged;

/* standard.SpreadMemory's slots, read and written in place (each host table's memories are of its type alone:
 * touch_host checks). */
enum { M_SINCE, M_NOVEL, M_PEERS, M_PAYLOADS, M_ALERTED_UNTIL, M_LAST_PEER, N_MEMORY };
static const char *const MEMORY_FIELDS[N_MEMORY] = {"since", "novel", "peers", "payloads", "alerted_until",
                                                    "last_peer"};

/* standard.HostTable's slots the path reads and writes in place (the senders' and the receivers' tables: one type). */
enum { T_HOSTS, T_LIMIT, T_PEER_ENTRIES, N_TABLE };
static const char *const TABLE_FIELDS[N_TABLE] = {"hosts", "limit", "peer_entries"};

/* What the novel-request path (novel_request) reads: Detector._novel_requests' tuple. */
typedef struct {
    PyObject *explain, *random_padding, *senders, *tolerance; /* fingerprints.explain, capacity.random_padding, the
                                                               * detector's senders HostTable, timestamp_tolerance */
    long field_novel;       /* 3 * capacity.MAX_FIELD_BYTES: a request that differs by more is no field's */
    long payloads_kept;     /* standard.PAYLOADS_KEPT: a host's recent payloads (SpreadMemory.seen) */
    long max_uptime;        /* fingerprints.MAX_UPTIME (explain_may_match) */
    long max_pattern;       /* fingerprints.MAX_PATTERN (explain_may_match) */
    long enabled;           /* the notes evaluated after a request (NoteType.bit; 0: alerting is not realtime) */
    long novel_threshold, reply_differs_threshold, changed_requests_threshold, nonecho_threshold;
    long exfil, asym, changes, tunnel, nonecho, slow, reports_pair; /* the notes' bits (standard.py _EXFIL...) */
    long small_secret_bytes, small_secret_payloads;
    PyObject *host_memory;  /* standard.SpreadMemory(0.0): HostTable.touch's new memory, its `since` the packet's ts */
    int unpaired_on;        /* UnpairedEchoReply is on (Detector._unpaired raises it): unpaired_reply declines */
    Judged judged;          /* what other_message judges itself and asks the rest of (nonecho.c_judged) */
    Py_ssize_t memory_slot[N_MEMORY]; /* the offsets of its slots (MEMORY_FIELDS) */
    Py_ssize_t table_slot[N_TABLE];   /* the offsets of the host tables' slots (TABLE_FIELDS) */
} NovelRequests;

/* What Detector._spread reads besides the senders' HostTable (NovelRequests'): the bound _spread_notice, the
 * receivers' HostTable, the roles' texts,
 * cfg.slow_exfil_window, spread_min_peers and spread_min_bytes, whether ExfilSpread is on, SPREAD_PEERS_KEPT and
 * SPREAD_PEER_ENTRIES. */
typedef struct {
    PyObject *notice, *receivers, *to, *from, *window;
    long min_peers, min_bytes, peers_kept, max_peer_entries;
    int enabled;
} Spread;

/* The notes Detector._evaluate raises from what it finds due (raise_due), in its order (standard.py EVALUATED_NOTES:
 * each a (name, msg template) pair, its bit NovelRequests' exfil, asym, changes, tunnel and nonecho). */
enum { RAISED_EXFIL, RAISED_ASYM, RAISED_CHANGES, RAISED_TUNNEL, RAISED_NONECHO, N_RAISED };

/* What Detector._raise reads (raise_due): the notes' names and msg templates (a tuple of N_RAISED pairs), the
 * profile's EXTRA, the detector's due notices (a list), channel_bytes' names for the payload and for non-echo
 * messages, whether notices count novel bytes (FlowDetector.NOVEL). notes NULL: the path raises nothing. */
typedef struct {
    PyObject *notes, *extra, *due, *payload, *nonecho;
    int novel;
} Exfil;

/* standard.PairMemory's slots, read and written in place (the pairs' table holds PairMemory alone: pair_memory
 * checks). */
enum { R_BUCKETS, R_NOVEL, R_LAST_SKETCH, R_SLOW_ALERTED_UNTIL, N_PAIR };
static const char *const PAIR_FIELDS[N_PAIR] = {"buckets", "novel", "last_sketch", "slow_alerted_until"};

/* What Detector._flow_ended reads (flow_ended): standard.PairMemory, the slow window's bucket length
 * (slow_exfil_window / SLOW_BUCKETS), max_pairs, flows.EVICTION_SCAN (the least recently active pairs, or flows,
 * an eviction compares), the notes a summary follows (_SUMMARISED), ExfilSummary's bit (0: off), its name and msg.
 * pair_type NULL: every flow's end, and every eviction, is Python's. */
typedef struct {
    PyObject *pair_type, *bucket_len, *name, *msg;
    Py_ssize_t max_pairs, scan;
    long summarised, summary;
    PyObject *pair_memory;  /* PairMemory(): a new pair's memory is a copy, with a list of its own as its buckets */
    Py_ssize_t pair_slot[N_PAIR]; /* the offsets of its slots (PAIR_FIELDS) */
} Ends;

/* A flow's end as flow_ended makes it: what flow_end_taken read. */
typedef struct {
    PyObject *pairs, *stats; /* borrowed: the detector's */
    long bytes;              /* the flow's novel bytes */
    int summary;             /* its ExfilSummary is due */
} FlowEnd;

typedef struct {
    PyObject_HEAD
    PyObject *detector; /* the detector's __dict__ */
    PyObject *observe;  /* the C tool tracker's observe */
    PyObject *finish;   /* the tool tracker's finish (FastToolTracker.finish: an answer of observe's finished) */
    PyObject *ignored;  /* the allowlisted payloads (a frozenset) */
    Py_ssize_t max_flows, max_pending;
    int matched;
    double tolerance, jitter; /* timestamp_tolerance, clock_jitter */
    NovelRequests novel;      /* novel.explain NULL: the path takes no request with novel bytes */
    PyObject *flow_template;  /* flows.NEW_FLOW, or NULL: the path makes no flow (first_request) */
    Spread spread;            /* what Detector._spread reads (spread_share) */
    Exfil exfil;              /* what Detector._raise reads (raise_due) */
    Ends ends;                /* what Detector._flow_ended reads (flow_ended) */
    /* Within run() or flows_ended(): their `kept` where it is the aggregator's C filter, else NULL, and the list of
     * notices it is handed next (borrowed): a notice made onto it while it is empty is folded there where the filter
     * would fold it, not made (tagged_notice) */
    PyObject *fold_into, *fold_due;
    Py_ssize_t unmade;        /* the notices so folded */
} FastPath;

/* The configuration objects a FastPath holds, listed once for the references taken, visited and cleared: those
 * parsed from fast_init's tuples (borrowed until taken), and novel.tolerance, which fast_init makes. */
#define PARSED_OBJECTS(X)                                                                                         \
    X(flow_template) X(novel.explain) X(novel.random_padding) X(novel.senders) X(spread.notice) X(spread.receivers) \
    X(spread.to) X(spread.from) X(spread.window) X(exfil.notes) X(exfil.extra) X(exfil.due) X(exfil.payload)       \
    X(exfil.nonecho) X(ends.pair_type) X(ends.bucket_len) X(ends.name) X(ends.msg) X(novel.host_memory)            \
    X(novel.judged.unexplained) X(novel.judged.nmap_payload) X(novel.judged.echo_code) X(novel.judged.timestamp)   \
    X(novel.judged.beyond) X(novel.judged.headless) X(novel.judged.fills)
#define CONFIG_OBJECTS(X) PARSED_OBJECTS(X) X(novel.tolerance) X(ends.pair_memory)
#define CLEAR_CONFIG(field) Py_CLEAR(self->field);
#define VISIT_CONFIG(field) Py_VISIT(self->field);
#define TAKE_CONFIG(field) Py_XINCREF(self->field);

static void fast_clear_config(FastPath *self) { CONFIG_OBJECTS(CLEAR_CONFIG) }

static int fast_traverse(FastPath *self, visitproc visit, void *arg)
{
    Py_VISIT(self->detector);
    Py_VISIT(self->observe);
    Py_VISIT(self->finish);
    Py_VISIT(self->ignored);
    CONFIG_OBJECTS(VISIT_CONFIG)
    return 0;
}

static int fast_clear(FastPath *self)
{
    Py_CLEAR(self->detector);
    Py_CLEAR(self->observe);
    Py_CLEAR(self->finish);
    Py_CLEAR(self->ignored);
    fast_clear_config(self);
    return 0;
}

static void fast_dealloc(FastPath *self)
{
    PyObject_GC_UnTrack(self);
    fast_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Whether `notes` is EVALUATED_NOTES' names and msgs as raise_due reads them: N_RAISED (str, str) pairs; else 0
 * with TypeError. */
static int notes_named(PyObject *notes)
{
    int named = PyTuple_GET_SIZE(notes) == N_RAISED;
    for (Py_ssize_t i = 0; named && i < N_RAISED; i++) {
        PyObject *pair = PyTuple_GET_ITEM(notes, i);
        named = PyTuple_CheckExact(pair) && PyTuple_GET_SIZE(pair) == 2
                && PyUnicode_CheckExact(PyTuple_GET_ITEM(pair, 0)) && PyUnicode_CheckExact(PyTuple_GET_ITEM(pair, 1));
    }
    if (!named)
        PyErr_SetString(PyExc_TypeError, "first_requests: the evaluated notes must be 5 (name, msg) pairs");
    return named;
}

/* c_judged's bytes whose run alone is free, and the first place of each byte in each phased fill (the phase
 * fill_charge tests a run at: byte j of _SEQ holds j, Windows' alphabet starts at 'a', traceroute -I's fill at 'H'). */
static int phase_fills(Judged *j, PyObject *free_bytes)
{
    Py_ssize_t count = PyTuple_GET_SIZE(j->fills);
    if (count > MAX_PHASED_FILLS) {
        PyErr_SetString(PyExc_ValueError, "nonecho.c_judged(): too many phased fills");
        return -1;
    }
    memset(j->free_byte, 0, sizeof j->free_byte);
    for (Py_ssize_t i = 0; i < PyBytes_GET_SIZE(free_bytes); i++)
        j->free_byte[(unsigned char)PyBytes_AS_STRING(free_bytes)[i]] = 1;
    for (Py_ssize_t f = 0; f < count; f++) {
        PyObject *fill = PyTuple_GET_ITEM(j->fills, f);
        if (!PyBytes_CheckExact(fill)) {
            PyErr_SetString(PyExc_TypeError, "nonecho.c_judged(): the phased fills must be bytes");
            return -1;
        }
        const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(fill);
        Py_ssize_t n = PyBytes_GET_SIZE(fill) < 0x7FFF ? PyBytes_GET_SIZE(fill) : 0x7FFF; /* a phase is short */
        for (int v = 0; v < 256; v++)
            j->phase[f][v] = -1;
        for (Py_ssize_t i = n - 1; i >= 0; i--)
            j->phase[f][b[i]] = (short)i;
    }
    return 0;
}

static int fast_init(FastPath *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"detector", "observe", "finish", "ignored", "max_flows", "max_pending", "matched",
                            "tolerance", "jitter", "novel_requests", "first_requests", "flow_ends", NULL};
    PyObject *detector, *observe, *finish, *ignored, *novel = Py_None, *first = Py_None, *flow_ends = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!OOO!nnpdd|OOO", names, &PyDict_Type, &detector, &observe,
                                     &finish, &PyFrozenSet_Type, &ignored, &self->max_flows, &self->max_pending,
                                     &self->matched, &self->tolerance, &self->jitter, &novel, &first, &flow_ends))
        return -1;
    if (!PyCallable_Check(observe) || !PyCallable_Check(finish)) {
        PyErr_SetString(PyExc_TypeError, "observe and finish must be callable");
        return -1;
    }
    Ends ends = {0};
    if (flow_ends != Py_None
        && (first == Py_None
            || !PyArg_ParseTuple(flow_ends, "O!O!nnllUU;flow_ends: (PairMemory, the bucket length, max_pairs, "
                                            "EVICTION_SCAN, _SUMMARISED, ExfilSummary's bit or 0, its name, its "
                                            "msg), with first_requests",
                                 &PyType_Type, &ends.pair_type, &PyFloat_Type, &ends.bucket_len, &ends.max_pairs,
                                 &ends.scan, &ends.summarised, &ends.summary, &ends.name, &ends.msg)))
        return PyErr_Occurred() ? -1 : (PyErr_SetString(PyExc_TypeError, "flow_ends needs first_requests"), -1);
    PyObject *template = NULL;
    Spread spread = {0};
    Exfil exfil = {0};
    if (first != Py_None
        && !PyArg_ParseTuple(first, "OOOUUO!llpllO!OO!UUp;first_requests: (flows.NEW_FLOW, the detector's "
                                    "_spread_notice, receivers, 'to', 'from', slow_exfil_window, spread_min_peers, "
                                    "spread_min_bytes, ExfilSpread on, SPREAD_PEERS_KEPT, SPREAD_PEER_ENTRIES, "
                                    "EVALUATED_NOTES' names and msgs, EXTRA, the due notices, the payload's "
                                    "channel, the non-echo messages' channel, NOVEL)",
                             &template, &spread.notice, &spread.receivers, &spread.to, &spread.from,
                             &PyFloat_Type, &spread.window, &spread.min_peers, &spread.min_bytes, &spread.enabled,
                             &spread.peers_kept, &spread.max_peer_entries, &PyTuple_Type, &exfil.notes, &exfil.extra,
                             &PyList_Type, &exfil.due, &exfil.payload, &exfil.nonecho, &exfil.novel))
        return -1;
    if (exfil.notes != NULL && !notes_named(exfil.notes))
        return -1;
    if (template != NULL && (novel == Py_None || notice_flow_type == NULL || !Py_IS_TYPE(template, notice_flow_type)
                             || !PyCallable_Check(spread.notice))) {
        PyErr_SetString(PyExc_TypeError, "first_requests: (a Flow after bind_notice(), a callable, ...), with "
                                         "novel_requests");
        return -1;
    }
    NovelRequests parsed = {0};
    PyObject *judged = NULL;
    if (novel != Py_None
        && !PyArg_ParseTuple(novel, "OOOllllllllllllllllllOpO!;novel_requests: (explain, random_padding, senders, "
                                    "field_novel, payloads_kept, max_uptime, max_pattern, enabled, 4 thresholds, "
                                    "7 bits, "
                                    "small_secret_bytes, small_secret_payloads, SpreadMemory(0.0), "
                                    "UnpairedEchoReply on, nonecho.c_judged())",
                             &parsed.explain, &parsed.random_padding, &parsed.senders, &parsed.field_novel,
                             &parsed.payloads_kept, &parsed.max_uptime, &parsed.max_pattern,
                             &parsed.enabled, &parsed.novel_threshold, &parsed.reply_differs_threshold,
                             &parsed.changed_requests_threshold, &parsed.nonecho_threshold, &parsed.exfil,
                             &parsed.asym, &parsed.changes, &parsed.tunnel, &parsed.nonecho, &parsed.slow,
                             &parsed.reports_pair, &parsed.small_secret_bytes, &parsed.small_secret_payloads,
                             &parsed.host_memory, &parsed.unpaired_on, &PyTuple_Type, &judged))
        return -1;
    Judged *j = &parsed.judged;
    PyObject *free_bytes = NULL; /* borrowed: copied into j->free_byte */
    if (judged != NULL
        && !PyArg_ParseTuple(judged, "OlO!UUUnLUlO!O!;nonecho.c_judged(): (unexplained_bytes, nmap's IE code, its "
                                     "payload, the echo code's, timestamps' and beyond's reasons, the timestamp "
                                     "body, a day's milliseconds, the headless reason, HEADLESS, FREE_FILL_BYTES, "
                                     "PHASED_FILLS)",
                             &j->unexplained, &j->nmap_code, &PyBytes_Type, &j->nmap_payload, &j->echo_code,
                             &j->timestamp, &j->beyond, &j->timestamp_body, &j->ms_per_day, &j->headless,
                             &j->headless_icmp_type, &PyBytes_Type, &free_bytes, &PyTuple_Type, &j->fills))
        return -1;
    if (judged != NULL && phase_fills(j, free_bytes) < 0)
        return -1;
    if (parsed.explain != NULL && (!PyCallable_Check(j->unexplained) || j->timestamp_body < 12 || j->ms_per_day < 1)) {
        PyErr_SetString(PyExc_TypeError, "novel_requests: unexplained_bytes must be callable, the timestamp body "
                                         "hold its three fields, a day last");
        return -1;
    }
    if (parsed.explain != NULL && (!record_template(parsed.host_memory)
                                   || slot_offsets((PyObject *)Py_TYPE(parsed.host_memory), MEMORY_FIELDS, N_MEMORY,
                                                   parsed.memory_slot) < 0
                                   || slot_offsets((PyObject *)Py_TYPE(parsed.senders), TABLE_FIELDS, N_TABLE,
                                                   parsed.table_slot) < 0))
        return -1;
    if (parsed.explain != NULL && spread.receivers != NULL && !Py_IS_TYPE(spread.receivers, Py_TYPE(parsed.senders))) {
        PyErr_SetString(PyExc_TypeError, "first_requests: the receivers' host table must be of the senders' type");
        return -1;
    }
    if (parsed.explain != NULL && parsed.payloads_kept < 1) {
        PyErr_SetString(PyExc_ValueError, "novel_requests: payloads_kept must be 1 or more");
        return -1;
    }
    /* made last: nothing fails after them but their own making */
    PyObject *pair_memory = ends.pair_type == NULL ? NULL : PyObject_CallNoArgs(ends.pair_type);
    if (ends.pair_type != NULL && (pair_memory == NULL || !record_template(pair_memory)
                                   || slot_offsets(ends.pair_type, PAIR_FIELDS, N_PAIR, ends.pair_slot) < 0)) {
        Py_XDECREF(pair_memory);
        return -1;
    }
    if (parsed.explain != NULL && (parsed.tolerance = PyFloat_FromDouble(self->tolerance)) == NULL) {
        Py_XDECREF(pair_memory);
        return -1;
    }
    ends.pair_memory = pair_memory; /* taken */
    fast_clear_config(self);
    self->novel = parsed;
    self->flow_template = template;
    self->spread = spread;
    self->exfil = exfil;
    self->ends = ends;
    PARSED_OBJECTS(TAKE_CONFIG)
    if (packet_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "FastPath before bind()");
        return -1;
    }
    Py_XSETREF(self->detector, Py_NewRef(detector));
    Py_XSETREF(self->observe, Py_NewRef(observe));
    Py_XSETREF(self->finish, Py_NewRef(finish));
    Py_XSETREF(self->ignored, Py_NewRef(ignored));
    return 0;
}

/* The detector's state, read once per call (handle() or run()): nothing but this file runs while the call goes on,
 * so its tables stay the same objects and its clock and counters can be kept here, and written back once
 * (detector_done) before the call returns: what Python reads then is what the reference's per-packet writes leave. */
typedef struct {
    PyObject *flows, *pending, *stats; /* borrowed */
    double now, next_sweep;
    PyObject *now_obj;                 /* the clock's new value (a packet's ts), or NULL: unchanged */
    Py_ssize_t counts[N_STATS];        /* added to the stats' counters (a packet counted: last_novel written; a
                                        * request: _run_free written) */
    Py_ssize_t last_novel;             /* the novel bytes of the last packet handled (count_packet: 0) */
    int run_not_free;                  /* the last request started a new run past its flow's run budget (_run_free
                                        * False: capacity.request_header's answer, header_apply) */
} Detector;

/* 1 with *out read, 0 when the detector's state is not what this path knows (every packet goes to Python), -1. */
static int detector_state(FastPath *self, Detector *out)
{
    PyObject *d = self->detector;
    memset(out, 0, sizeof *out);
    PyObject *now = PyDict_GetItemWithError(d, str_now), *next_sweep = PyDict_GetItemWithError(d, str_next_sweep);
    out->flows = PyDict_GetItemWithError(d, str_flows);
    out->pending = PyDict_GetItemWithError(d, str_pending);
    out->stats = PyDict_GetItemWithError(d, str_stats);
    if (PyErr_Occurred())
        return -1;
    if (now == NULL || next_sweep == NULL || !PyFloat_CheckExact(now) || !PyFloat_CheckExact(next_sweep)
        || out->flows == NULL || !PyDict_Check(out->flows) || out->pending == NULL || !PyDict_Check(out->pending)
        || out->stats == NULL || !Py_IS_TYPE(out->stats, stats_type)
        || PyDict_GET_SIZE(out->flows) > self->max_flows) /* the path adds no flow: true for the whole call */
        return 0;
    for (int i = 0; i < N_STATS; i++)
        if (SLOT(out->stats, stats_slot[i]) == NULL)
            return 0;
    out->now = PyFloat_AS_DOUBLE(now);
    out->next_sweep = PyFloat_AS_DOUBLE(next_sweep);
    return 1;
}

/* Whether a packet at `ts` may be taken: it must not move the clock to a sweep (process() sweeps first). */
static int clock_allows(Detector *state, double ts)
{
    return !(ts > state->now && ts >= state->next_sweep);
}

/* What the call kept here written to the detector; 0, or -1 with an exception set (the rest still written). */
static int detector_done(FastPath *self, Detector *state)
{
    PyObject *d = self->detector;
    int failed = 0;
    if (state->now_obj != NULL) {
        failed |= PyDict_SetItem(d, str_now, state->now_obj) < 0;
        Py_CLEAR(state->now_obj);
    }
    if (state->counts[S_PACKETS]) {
        PyObject *novel = PyLong_FromSsize_t(state->last_novel);
        failed |= novel == NULL || PyDict_SetItem(d, str_last_novel, novel) < 0;
        Py_XDECREF(novel);
    }
    if (state->counts[S_ECHO_REQUESTS])
        failed |= PyDict_SetItem(d, str_run_free, state->run_not_free ? Py_False : Py_True) < 0;
    for (int i = 0; i < N_STATS; i++) {
        if (!state->counts[i])
            continue;
        PyObject *amount = PyLong_FromSsize_t(state->counts[i]);
        failed |= amount == NULL || add_to_slot(state->stats, stats_slot[i], amount) < 0;
        Py_XDECREF(amount);
        state->counts[i] = 0;
    }
    return failed ? -1 : 0;
}

/* process()'s own part: the packet counted, last_novel 0, the clock moved; then the kind's counter. */
static void count_packet(Detector *state, PyObject *ts, int kind_counter)
{
    state->counts[S_PACKETS]++;
    state->last_novel = 0;
    if (kind_counter == S_ECHO_REQUESTS)
        state->run_not_free = 0; /* Detector._on_request: _run_free True until _header says otherwise */
    if (PyFloat_AS_DOUBLE(ts) > state->now) {
        state->now = PyFloat_AS_DOUBLE(ts);
        Py_XSETREF(state->now_obj, Py_NewRef(ts));
    }
    state->counts[kind_counter]++;
}

/* The flow made the most recently active, its last time and message count moved, `size` added to `bytes_slot`. */
static int touch_flow(Detector *state, PyObject *key, PyObject *flow, PyObject *ts, PyObject *size, Py_ssize_t bytes_slot)
{
    if (call_method_1(state->flows, str_move_to_end, key) < 0)
        return -1;
    int later = PyObject_RichCompareBool(ts, SLOT(flow, flow_slot[F_LAST]), Py_GT);
    if (later < 0)
        return -1;
    if (later)
        set_slot(flow, flow_slot[F_LAST], ts);
    if (add_to_slot(flow, flow_slot[F_N], one) < 0)
        return -1;
    return add_to_slot(flow, bytes_slot, size);
}

/* Whether `flow` is a Flow with the `fields` (an array of F_*) set. */
#define FLOW_OK(flow, fields) flow_ok((flow), (fields), (int)(sizeof(fields) / sizeof((fields)[0])))

static int flow_ok(PyObject *flow, const int *fields, int count)
{
    if (flow == NULL || !Py_IS_TYPE(flow, flow_type))
        return 0;
    for (int i = 0; i < count; i++)
        if (SLOT(flow, flow_slot[fields[i]]) == NULL)
            return 0;
    return 1;
}

static PyObject *unpaired_reply(FastPath *self, PyObject *pkt, Detector *state, PyObject *payload, PyObject *key,
                                PyObject *flow, PyObject *request_flow);
static PyObject *other_message(FastPath *self, PyObject *pkt, Detector *state, PyObject *payload, long icmp_type,
                               int ipv6, long coded);
static int may_make_flow(FastPath *self, PyObject *key);
static PyObject *message_flow(FastPath *self, Detector *state, PyObject *pkt, PyObject *key, PyObject *flow,
                              PyObject *size, Py_ssize_t bytes_slot);
static PyObject *left_to_evaluate(FastPath *self, Detector *state, PyObject *flow, PyObject *key, PyObject *ts,
                                  int told, int evaluate);

/* An echo reply answering a pending request with the same payload; one that answers none, unpaired_reply's. */
static PyObject *handle_reply(FastPath *self, PyObject *pkt, Detector *state, PyObject *payload)
{
    static const int needed[] = {F_LAST, F_N, F_RESP_BYTES, F_LAST_SKETCH};
    static const int request_needed[] = {F_RECEIVED_BYTES};
    if (!self->matched)
        Py_RETURN_FALSE;
    PyObject *src = SLOT(pkt, packet_slot[P_SRC]), *dst = SLOT(pkt, packet_slot[P_DST]);
    PyObject *ident = SLOT(pkt, packet_slot[P_IDENT]), *seq = SLOT(pkt, packet_slot[P_SEQ]);
    PyObject *ts = SLOT(pkt, packet_slot[P_TS]);
    PyObject *key = PyTuple_Pack(2, src, dst), *reverse = PyTuple_Pack(2, dst, src);
    PyObject *request_key = PyTuple_Pack(4, dst, src, ident, seq); /* echo_key: seq | code << 16, code 0 */
    PyObject *size = NULL, *result = NULL;
    if (key == NULL || reverse == NULL || request_key == NULL)
        goto done;
    PyObject *flow = PyDict_GetItemWithError(state->flows, key);
    PyObject *request_flow = PyErr_Occurred() ? NULL : PyDict_GetItemWithError(state->flows, reverse);
    PyObject *entry = PyErr_Occurred() ? NULL : PyDict_GetItemWithError(state->pending, request_key);
    if (PyErr_Occurred())
        goto done;
    if (entry == NULL) { /* a reply to nothing: perhaps novel bytes this path may take */
        result = unpaired_reply(self, pkt, state, payload, key, flow, request_flow);
        goto done;
    }
    int made = flow == NULL; /* the reply's flow is new (a monitor's one exchange a host): made as _on_reply makes it */
    if ((!made && !FLOW_OK(flow, needed)) || (request_flow != NULL && !FLOW_OK(request_flow, request_needed))
        || !PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 2
        || !sketch_of(PyTuple_GET_ITEM(entry, 0), payload)) {
        result = Py_NewRef(Py_False);
        goto done;
    }
    int makes = made ? may_make_flow(self, key) : 1; /* no allowlist, no pair memory to start it from */
    if (makes <= 0) {
        result = makes < 0 ? NULL : Py_NewRef(Py_False);
        goto done;
    }
    size = PyLong_FromSsize_t(PyBytes_GET_SIZE(payload));
    if (size == NULL)
        goto done;
    PyObject *request = Py_NewRef(PyTuple_GET_ITEM(entry, 0)); /* entry goes with the pop below */
    Py_XINCREF(request_flow);
    count_packet(state, ts, S_ECHO_REPLIES);
    flow = message_flow(self, state, pkt, key, flow, size, flow_slot[F_RESP_BYTES]);
    if (flow != NULL && (request_flow == NULL || add_to_slot(request_flow, flow_slot[F_RECEIVED_BYTES], size) == 0)
        && PyObject_DelItem(state->pending, request_key) == 0) {
        set_slot(flow, flow_slot[F_LAST_SKETCH], request);
        /* a new flow past max_flows: _handed_out's eviction */
        result = made ? left_to_evaluate(self, state, flow, key, ts, 0, 0) : Py_NewRef(Py_None);
    }
    Py_DECREF(request);
    Py_XDECREF(flow);
    Py_XDECREF(request_flow);
done:
    Py_XDECREF(key);
    Py_XDECREF(reverse);
    Py_XDECREF(request_key);
    Py_XDECREF(size);
    return result;
}

/* Detector._remember_request for a request whose sketch is `sent`, `echo` its flows.echo_key (the sequence number
 * itself for code 0). */
static int remember_request(FastPath *self, Detector *state, PyObject *pkt, PyObject *sent, PyObject *echo)
{
    PyObject *ts = SLOT(pkt, packet_slot[P_TS]);
    PyObject *key = untracked_if_atomic(PyTuple_Pack(4, SLOT(pkt, packet_slot[P_SRC]), SLOT(pkt, packet_slot[P_DST]),
                                                     SLOT(pkt, packet_slot[P_IDENT]), echo));
    PyObject *entry = key == NULL ? NULL : untracked_if_atomic(PyTuple_Pack(2, sent, ts));
    int failed = -1;
    if (key == NULL || entry == NULL)
        goto done;
    int known = PyDict_Contains(state->pending, key);
    if (known < 0)
        goto done;
    if (known) {
        if (call_method_1(state->pending, str_move_to_end, key) < 0)
            goto done;
    } else if (PyDict_GET_SIZE(state->pending) >= self->max_pending) {
        PyObject *args[2] = {state->pending, Py_False};
        PyObject *kwnames = PyTuple_Pack(1, str_last);
        PyObject *popped = kwnames == NULL ? NULL
            : PyObject_VectorcallMethod(str_popitem, args, 1, kwnames);
        Py_XDECREF(kwnames);
        if (popped == NULL)
            goto done;
        Py_DECREF(popped);
        state->counts[S_PENDING_EVICTED]++;
    }
    failed = PyObject_SetItem(state->pending, key, entry);
done:
    Py_XDECREF(key);
    Py_XDECREF(entry);
    return failed;
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--)
        value = value << 8 | p[i];
    return value;
}

static uint64_t be64(const unsigned char *p)
{
    uint64_t value = 0;
    for (int i = 0; i < 8; i++)
        value = value << 8 | p[i];
    return value;
}

static uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | p[2] << 8 | p[3]; }


/* Whether p[start:n] is the BSD-derived default fill, byte j = j (fingerprints._SEQ). */
static int default_fill(const unsigned char *p, Py_ssize_t start, Py_ssize_t n)
{
    for (Py_ssize_t j = start; j < n; j++)
        if (p[j] != (unsigned char)j)
            return 0;
    return 1;
}

/* Whether every byte of p[start:n] is `byte` (none: true). */
static int same_bytes(const unsigned char *p, Py_ssize_t start, Py_ssize_t n, unsigned char byte)
{
    for (Py_ssize_t j = start; j < n; j++)
        if (p[j] != byte)
            return 0;
    return 1;
}

/* fingerprints._period(p, 0, n): the smallest q <= max_pattern such that p repeats with period q at least twice; else
 * 0 (q taken from the places of the last byte before it, nearest first, as rfind finds them). */
static Py_ssize_t repeat_period(const unsigned char *p, Py_ssize_t n, Py_ssize_t max_pattern)
{
    if (n < 2)
        return 0;
    Py_ssize_t low = n - 1 - max_pattern > 0 ? n - 1 - max_pattern : 0;
    for (Py_ssize_t idx = n - 2; idx >= low; idx--) {
        if (p[idx] != p[n - 1])
            continue;
        Py_ssize_t q = n - 1 - idx;
        if (2 * q > n)
            return 0;
        if (memcmp(p + q, p, (size_t)(n - q)) == 0)
            return q;
    }
    return 0;
}

/* Whether p[start:n] may be fingerprints._timestamped_fill's: the default fill, or a pattern of at most max_pattern
 * bytes repeated at least twice (_period). */
static int fill_may_match(const unsigned char *p, Py_ssize_t start, Py_ssize_t n, Py_ssize_t max_pattern)
{
    return default_fill(p, start, n) || repeat_period(p + start, n - start, max_pattern) != 0;
}

/* Whether fingerprints.explain may find a template for the payload p[0:n]: each template's tests of its first bytes
 * and of its fill, in explain's order (_untimed's, then each timed template's, and _bsd's, which it always tries
 * last), but not its clock's. 0: none passes, so explain returns None and need not be called (a storm's random bytes
 * almost never pass). Looser than explain, never stricter: a test that passes here may fail there (a clock outside
 * the tolerance, a text past its first two bytes), never the reverse; tests/unit/test_fastflows.py holds it so on
 * every template's payloads and patterns. A new template in explain needs its tests here too. */
static int explain_may_match(const unsigned char *p, Py_ssize_t n, long max_uptime, Py_ssize_t max_pattern)
{
    if (n < 16) /* EMPTY, _untimed's short fills and patterns, and below every timed template's first tests */
        return 1;
    unsigned char first = p[0];
    if ((first == 'a' && p[1] == 'b') || (first == 'H' && p[1] == 'I') || (first == 'P' && p[1] == 'r'))
        return 1; /* the first two bytes of the texts of Windows ping.exe, traceroute -I, blackbox_exporter */
    if (n >= 24 && p[16] == 10 && p[7] == 0 && p[17] == 0 && p[15] == 0 && same_bytes(p, 24, n, 0))
        return 1; /* check_icmp: zeros after its struct */
    if (n >= 24 && (p[14] & 0xF0) == 0x40 && (p[16] & 0xC0) == 0x80 && same_bytes(p, 24, n, 1))
        return 1; /* pro-bing's tracker UUID, then 0x01 */
    if ((first & 0xF0) == 0x10 && same_bytes(p, 16, n, 1))
        return 1; /* go-ping's clock (nanoseconds of 2006 to 2042), its 8-byte tracker, then 0x01 */
    if (first == '{' && p[1] == '"')
        return 1; /* go-ping's JSON-era payload: {"Bytes":"<base64 clock>","Tracker":<digits>} */
    if (p[7] == 0 && ((p[15] == 0 && p[11] == 0 && fill_may_match(p, 16, n, max_pattern))
                      || fill_may_match(p, 8, n, max_pattern)))
        return 1; /* iputils' struct timeval (64-bit, 32-bit), then its fill */
    if (first == 0 && p[1] == 0 && p[2] == 0 && p[3] == 0 && memcmp(p + 10, p + 8, (size_t)(n - 10)) == 0)
        return 1; /* Cisco IOS: a two-byte pattern from byte 8 */
    if (same_bytes(p, 5, n, p[4])) /* BusyBox's fill; and _untimed's one byte repeated (a zero fill, mtr's -B) */
        return 1;
    uint32_t sec = be32(p), frac = be32(p + 4); /* _bsd: a wall-clock tv32, or FreeBSD's seconds since boot */
    return (frac < 1000000u || (frac < 1000000000u && (long)sec < max_uptime)) && fill_may_match(p, 8, n, max_pattern);
}

/* The wall-clock time in a payload of one of the two layouts below with the default fill, as
 * fingerprints._timeval / _bsd compute it (sec + usec / _USEC), or 0 when it is neither. */
static int default_ping_time(const unsigned char *p, Py_ssize_t n, double *t)
{
    uint64_t sec, usec;
    if (p[7] == 0) { /* _iputils64: struct timeval, 64-bit little-endian fields, the fill from byte 16 */
        if (p[11] != 0 || p[15] != 0 || !default_fill(p, 16, n))
            return 0;
        sec = le64(p);
        usec = le64(p + 8);
    } else { /* _bsd, wall clock (macOS, FreeBSD before 13): struct tv32, htonl'd, the fill from byte 8. explain
              * tries _iputils32 first when byte 7 is 0 (that case is the other branch's or Python's) and _cisco
              * when the first four bytes are 0; _busybox needs every byte from 4 on equal. */
        if ((p[0] | p[1] | p[2] | p[3]) == 0 || !default_fill(p, 8, n))
            return 0;
        sec = be32(p);
        usec = be32(p + 4);
    }
    if (usec >= 1000000)
        return 0;
    *t = (double)sec + (double)usec / 1000000.0;
    return 1;
}

/* prometheus-community/pro-bing's payload (fingerprints._pro_bing): its send time as a big-endian int64 of
 * nanoseconds, the pinger's tracker UUID (version 4: byte 14's high nibble 4; RFC 4122 variant: byte 16 10xxxxxx),
 * then 0x01 to the end; 24 bytes or more. explain tries only _untimed and _check_icmp before it, and neither takes
 * such a payload: not one byte repeated (bytes 14 and 16 differ), not Windows', traceroute's or blackbox_exporter's
 * text (byte 14 is 'o', 'V', 'B' in them; byte 16 ASCII or 0), and check_icmp needs byte 16 to be 10. */
static int pro_bing_layout(const unsigned char *p, Py_ssize_t n)
{
    if (n < 24 || (p[14] & 0xF0) != 0x40 || (p[16] & 0xC0) != 0x80)
        return 0;
    for (Py_ssize_t j = 24; j < n; j++)
        if (p[j] != 1)
            return 0;
    return 1;
}

/* pro-bing's send time as Python divides the integer by 10**9 (correctly rounded: a double's division is not, past
 * 2**53): 0, or -1 on an error. */
static int pro_bing_time(const unsigned char *p, double *t)
{
    PyObject *ns = PyLong_FromLongLong((long long)be64(p)); /* two's complement: struct's ">q" */
    PyObject *seconds = ns == NULL ? NULL : PyNumber_TrueDivide(ns, nsec);
    Py_XDECREF(ns);
    if (seconds == NULL)
        return -1;
    *t = PyFloat_AsDouble(seconds);
    Py_DECREF(seconds);
    return 0;
}

/* BusyBox ping's payload (fingerprints._busybox: monotonic_us() as a host-order uint32, then the -p byte), where
 * fingerprints.explain gives that answer and no earlier one; 1 with the counter, else 0. Taken from 16 bytes (below,
 * explain's _untimed tries patterns from byte 0). No template explain tries first takes such a payload: one
 * repeated byte from byte 4 on is _untimed's only when the counter is that byte too (and Windows', traceroute's and
 * blackbox_exporter's fills are not one byte); check_icmp needs bytes 7 and 16 to be 0 and 10, pro-bing bytes 14
 * and 16 to be 0x4. and 0b10......; iputils (64- and 32-bit) reads a fill of zeros as a clock equal to the counter,
 * which must not be within the tolerance (with a second to spare) of the capture time; Cisco's needs a counter of 0. */
static int busybox_layout(const unsigned char *p, Py_ssize_t n, double ts, double tolerance, uint32_t *counter)
{
    if (n < 16)
        return 0;
    unsigned char fill = p[4];
    for (Py_ssize_t j = 5; j < n; j++)
        if (p[j] != fill)
            return 0;
    if (p[0] == fill && p[1] == fill && p[2] == fill && p[3] == fill)
        return 0;
    uint32_t value = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    if (value == 0 || (fill == 0 && fabs((double)value - ts) <= tolerance + 1.0))
        return 0;
    *counter = value;
    return 1;
}

/* Cisco IOS ping's payload (fingerprints._cisco: four zeros, a big-endian 32-bit counter of milliseconds, then a
 * 16-bit pattern repeated), where fingerprints.explain gives that answer and no earlier one; 1 with the counter, else
 * 0. Taken from 16 bytes (below, explain's _untimed tries patterns from byte 0) with byte 7, the counter's last, not
 * 0: then no template explain tries first takes it. It is not one repeated byte nor Windows', traceroute's or
 * blackbox_exporter's text (byte 0 is 0, byte 7 not); check_icmp and iputils need byte 7 to be 0; pro-bing needs
 * bytes 14 and 16, both the pattern's first, to be 0x4. and 0b10....... */
static int cisco_layout(const unsigned char *p, Py_ssize_t n, uint32_t *counter)
{
    if (n < 16 || (p[0] | p[1] | p[2] | p[3]) != 0 || p[7] == 0)
        return 0;
    for (Py_ssize_t j = 10; j < n; j++)
        if (p[j] != p[j - 2])
            return 0;
    *counter = be32(p + 4);
    return 1;
}

/* Whether the flow's session (fingerprints.Benign.session, kept by Detector._consistent) is the bytes p[0:len]. */
static int session_is(PyObject *flow, const unsigned char *p, Py_ssize_t len)
{
    PyObject *session = SLOT(flow, flow_slot[F_SESSION]);
    return PyBytes_CheckExact(session) && PyBytes_GET_SIZE(session) == len
        && memcmp(PyBytes_AS_STRING(session), p, (size_t)len) == 0;
}

/* Python's float x % m for m > 0 (floatobject.c float_rem): the remainder with m's sign. */
static double py_mod(double x, double m)
{
    double mod = fmod(x, m);
    if (mod != 0.0)
        return mod < 0 ? mod + m : mod;
    return 0.0;
}

/* Detector._consistent's clock within a run, for a template's time `t` (`wraps`: its counter's wrap, 0 for a wall
 * clock) in a request captured at `ts`: not gone back by more than a second from the run's last (unless it wraps),
 * and its offset to the capture clock moved by clock_jitter at most since the run's last request (the short way
 * round where it wraps: Python's float % as py_mod reads it). 1 with *offset (t - ts); 0 where _consistent would
 * refuse the template or charge its time (or try BusyBox's other byte order): the Python detector's. */
static int clock_in_run(FastPath *self, PyObject *flow, double t, double wraps, double ts, double *offset)
{
    PyObject *last_embedded = SLOT(flow, flow_slot[F_LAST_EMBEDDED]), *last_offset = SLOT(flow, flow_slot[F_CLOCK_OFFSET]);
    if (!PyFloat_CheckExact(last_embedded) || (wraps == 0.0 && t + 1.0 < PyFloat_AS_DOUBLE(last_embedded))
        || (last_offset != Py_None && !PyFloat_CheckExact(last_offset)))
        return 0;
    double drift = t - ts;
    if (last_offset != Py_None) {
        double moved = drift - PyFloat_AS_DOUBLE(last_offset);
        if (wraps != 0.0)
            moved = py_mod(moved + wraps / 2, wraps) - wraps / 2;
        if (!(-self->jitter <= moved && moved <= self->jitter))
            return 0;
    }
    *offset = drift;
    return 1;
}

/* The clock of a request whose payload is iputils', BSD ping's, pro-bing's, BusyBox's or Cisco's default one (see the
 * top comment, pro_bing_layout, busybox_layout and cisco_layout), where fingerprints.explain would say so and
 * Detector._consistent accept it without a charge (pro-bing's UUID, BusyBox's fill or Cisco's pattern the flow's
 * session): 1 with its embedded time and its offset to the capture clock, 0 else (the Python detector's to judge),
 * -1 on an error. */
static int ping_clock(FastPath *self, PyObject *flow, const unsigned char *p, Py_ssize_t n, long ident,
                      double ts, double *embedded, double *offset)
{
    double t, wraps = 0.0; /* wraps: Benign.wraps_after (0: a wall clock, checked against the capture clock) */
    uint32_t counter;
    /* Each layout's session is the flow's (Detector._consistent: a session that changes within a run is no ping's) */
    if (pro_bing_layout(p, n)) { /* the run's tracker UUID */
        if (!session_is(flow, p + 8, 16))
            return 0;
        if (pro_bing_time(p, &t) < 0)
            return -1;
    } else if (busybox_layout(p, n, ts, self->tolerance, &counter)) { /* microseconds since boot, the -p byte */
        if (!session_is(flow, p + 4, 1))
            return 0;
        t = (double)counter / 1e6;  /* _U32_LE / _USEC */
        wraps = 4294967296.0 / 1e6; /* 2**32 / _USEC */
    } else if (cisco_layout(p, n, &counter)) { /* milliseconds of uptime, the 16-bit pattern */
        if (!session_is(flow, p + 8, 2))
            return 0;
        t = (double)counter / 1000.0;
        wraps = 4294967296.0 / 1000.0; /* 2**32 / 1000 */
    } else if (n < 16 || !default_ping_time(p, n, &t)) {
        return 0;
    }
    long session_ident;
    if ((wraps == 0.0 && !(-self->tolerance <= t - ts && t - ts <= self->tolerance))
        || long_slot(flow, flow_slot[F_SESSION_IDENT], &session_ident) < 0 || session_ident != ident
        || !clock_in_run(self, flow, t, wraps, ts, offset))
        return 0; /* a new run, a clock gone back (replayed, forged) or charged */
    *embedded = t;
    return 1;
}

/* -- ICMP errors whose quote nonecho.unexplained_bytes finds nothing wrong with ------------------------------ */

/* nonecho._quote_end without an extension structure: where the quoted datagram ends (the message's end), or -1
 * when an RFC 4884 length (`words` units of `unit` bytes) puts an extension structure after it (the Python
 * detector checks that). */
static Py_ssize_t quote_end(Py_ssize_t n, unsigned words, unsigned unit)
{
    return words && n >= 4 + (Py_ssize_t)(words * unit) ? -1 : n;
}

/* nonecho._transport_problem is '': the protocol one a host sends, a quoted UDP header's length its datagram's
 * (longer than the fragment's own in a datagram's first fragment, `first_of_more`). */
static int transport_ok(const unsigned char *quote, Py_ssize_t quoted, unsigned header_len, long length,
                        unsigned proto, int first_of_more)
{
    if (!quoted_protocol[proto])
        return 0;
    if (proto != 17 || quoted - (Py_ssize_t)header_len < 8)
        return 1;
    long udp_length = (long)be16(quote + header_len + 4);
    return udp_length == length || (first_of_more && udp_length > length);
}

/* nonecho._quote_problem_v4 is '' for an unreachable (3) or time exceeded (11) message (nothing to charge):
 * the quote an IPv4 header with a right checksum, sent by the error's receiver, within its total length, the
 * unused header bytes zero (fragmentation needed: a next-hop MTU), its transport a host's. 0 for anything
 * else, the Python detector's to judge (and to word). */
static int quote_ok_v4(const unsigned char *p, Py_ssize_t n, long icmp_type, long code, PyObject *dst)
{
    if (n < 4 + 20 || PyBytes_GET_SIZE(dst) != 4)
        return 0;
    Py_ssize_t end = quote_end(n, p[1], 4);
    if (end < 0)
        return 0;
    Py_ssize_t quoted = end - 4;
    unsigned header_len = (p[4] & 15u) * 4;
    if (p[4] >> 4 != 4 || header_len < 20 || quoted < (Py_ssize_t)header_len || !checksum_verifies(p + 4, header_len))
        return 0;
    long total = be16(p + 6);
    if (total < (long)header_len || quoted > total) /* longer than its datagram: padding only with an RFC 4884 length */
        return 0;
    if (memcmp(p + 16, PyBytes_AS_STRING(dst), 4) != 0)
        return 0;
    if (icmp_type == 3 && code == 4) { /* fragmentation needed: the next-hop MTU (0 from old routers) */
        long mtu = be16(p + 2);
        if (p[0] != 0 || !(mtu == 0 || (68 <= mtu && mtu < total)))
            return 0;
    } else if (p[0] != 0 || p[2] != 0 || p[3] != 0) {
        return 0;
    }
    int first_of_more = (p[10] & 0x3F) == 0x20 && p[11] == 0; /* MF set, offset 0 */
    return transport_ok(p + 4, quoted, header_len, total - header_len, p[13], first_of_more);
}

/* nonecho._rest_of_header_problem_v6 is '': the 4 bytes after the checksum hold what the error's type defines. */
static int rest_of_header_ok_v6(const unsigned char *p, long icmp_type, long total)
{
    unsigned long value = (unsigned long)be16(p) << 16 | be16(p + 2);
    if (icmp_type == 2)
        return value >= ipv6_min_mtu && value < (unsigned long)total;
    if (icmp_type == 4)
        return value < (unsigned long)total;
    return p[1] == 0 && p[2] == 0 && p[3] == 0;
}

/* nonecho._quote_problem_v6 is '' for an ICMPv6 error (types 1-4): the quote an IPv6 header sent by the error's
 * receiver, within its payload length, the header's 4 bytes what its type defines, its transport a host's. 0 for
 * anything else. */
static int quote_ok_v6(const unsigned char *p, Py_ssize_t n, long icmp_type, PyObject *dst)
{
    if (n < 4 + 40 || PyBytes_GET_SIZE(dst) != 16)
        return 0;
    Py_ssize_t end = quote_end(n, icmp_type == 1 || icmp_type == 3 ? p[0] : 0, 8);
    if (end < 0)
        return 0;
    Py_ssize_t quoted = end - 4;
    long total = 40 + (long)be16(p + 8);
    if (p[4] >> 4 != 6 || quoted < 40 || quoted > total || memcmp(p + 12, PyBytes_AS_STRING(dst), 16) != 0
        || !rest_of_header_ok_v6(p, icmp_type, total))
        return 0;
    return transport_ok(p + 4, quoted, 40, total - 40, p[10], 0);
}

/* Whether nonecho.unexplained_bytes gives 0 for this ICMP error, where these checks can tell: an empty one, or
 * one whose quote is right. Such a message keeps no state: Detector._on_other returns at once. */
static int benign_error(PyObject *pkt, long icmp_type, long code, int ipv6, PyObject *payload)
{
    PyObject *dst = SLOT(pkt, packet_slot[P_DST]);
    Py_ssize_t n = PyBytes_GET_SIZE(payload);
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(payload);
    if (!PyBytes_CheckExact(dst))
        return 0;
    if (n > (ipv6 ? error_payload_v6 : error_payload_v4)) /* longer than an error can be: the excess is Python's */
        return 0;
    if (ipv6)
        return icmp_type >= 1 && icmp_type <= 4 && (n == 0 || quote_ok_v6(p, n, icmp_type, dst));
    return (icmp_type == 3 || icmp_type == 11) && (n == 0 || quote_ok_v4(p, n, icmp_type, code, dst));
}

/* capacity.take_token's arithmetic (GCRA's theoretical arrival time `due`): whether a token of a bucket of `burst`
 * refilled one per `refill` seconds is free at `now`, and the due it leaves (*after). */
static int token_free(double due, double now, double burst, double refill, double *after)
{
    if (now > due)
        due = now;
    int free = due - now <= (burst - 1.0) * refill;
    *after = free ? due + refill : due;
    return free;
}

/* capacity.seq_delta: a - b on the 16-bit circle, in -32768..32767. */
static long seq_delta(long a, long b)
{
    long r = (a - b + 0x8000) % 0x10000;
    return (r < 0 ? r + 0x10000 : r) - 0x8000;
}

static long swap16(long value) { return (value & 0xFF) << 8 | (value >> 8 & 0xFF); }

/* Whether capacity.step_bits(delta) is 0. */
static int free_delta(long delta) { return labs(delta) <= seq_free; }

/* capacity.request_header's sequence number for a request of the flow's run with its size (same identifier and
 * size), out of step: 1 when it charges nothing, with the new stride, and whether it took a token from the run
 * budget (a new run after a pause) and the bucket's new due; 0 when it would charge (or the state is not
 * the reference's types), for the Python detector. */
static int free_seq_step(PyObject *channels, long seq, long last_seq, double gap, double now, long *step,
                         int *took_token, double *due)
{
    long stride;
    PyObject *run_due = SLOT(channels, channels_slot[C_RUN_DUE]);
    if (long_slot(channels, channels_slot[C_STRIDE], &stride) < 0 || run_due == NULL || !PyFloat_CheckExact(run_due)
        || stride < -0x10000 || stride > 0x10000)
        return 0;
    long delta = seq_delta(seq, last_seq);
    long next_to = labs(seq_delta(seq, last_seq + 1)), swapped = labs(seq_delta(swap16(seq), swap16(last_seq) + 1));
    *took_token = 0;
    if (!free_delta(next_to < swapped ? next_to : swapped) && !free_delta(delta - stride)) {
        if (!(gap >= run_pause))
            return 0;
        if (!token_free(PyFloat_AS_DOUBLE(run_due), now, run_budget, run_refill, due))
            return 0;
        *took_token = 1;
        delta = 1; /* the counter moved on between runs: the steps within the new one are one up again */
    }
    *step = delta;
    return 1;
}

/* novelty.sketch(payload). */
static PyObject *new_sketch(PyObject *payload)
{
    Py_ssize_t n = PyBytes_GET_SIZE(payload);
    const char *p = PyBytes_AS_STRING(payload);
    PyObject *head = n <= prefix_len ? Py_NewRef(payload) : PyBytes_FromStringAndSize(p, prefix_len);
    Py_hash_t digest = n <= prefix_len ? empty_rest_hash : _Py_HashBytes(p + prefix_len, n - prefix_len);
    PyObject *rest = head == NULL ? NULL : PyLong_FromSsize_t(digest);
    PyObject *size = rest == NULL ? NULL : PyLong_FromSsize_t(n);
    PyObject *sketch = size == NULL ? NULL : PyTuple_New(3);
    if (sketch == NULL) {
        Py_XDECREF(head);
        Py_XDECREF(rest);
        Py_XDECREF(size);
        return NULL;
    }
    PyTuple_SET_ITEM(sketch, 0, head);
    PyTuple_SET_ITEM(sketch, 1, rest);
    PyTuple_SET_ITEM(sketch, 2, size);
    return untracked_if_atomic(sketch);
}

/* The C tool tracker's observe for a message (FastToolTracker.observe's first step), with `rest`, the hash of the
 * payload's rest its sketch holds (the tracker's digests are made from it: the payload is hashed once), or None:
 * None, or its answer for the tracker's finish (tool_seen). */
static PyObject *observe_tool(FastPath *self, PyObject *pkt, PyObject *payload, PyObject *rest)
{
    PyObject *args[9] = {payload, SLOT(pkt, packet_slot[P_IDENT]), SLOT(pkt, packet_slot[P_TYPE]),
                         SLOT(pkt, packet_slot[P_CODE]), SLOT(pkt, packet_slot[P_SRC]), SLOT(pkt, packet_slot[P_DST]),
                         SLOT(pkt, packet_slot[P_SEQ]), SLOT(pkt, packet_slot[P_TS]), rest};
    return PyObject_Vectorcall(self->observe, args, 9, NULL);
}

/* Detector._recognise_tool(flow, pkt, rest) (its reference) for a flow without a tool: the C tracker's observe,
 * and an answer other than None finished by the tracker's own finish(answer, pkt, rest) (FastToolTracker.observe:
 * the tool's recognition, Python's), `rest` the hash of `sketch` (None: a reply's, asked without it); where that
 * found a tool, the flow's tool and evidence (Detector._tool_found). 1 a tool found, 0 none, -1 with an exception. */
static int tool_seen(FastPath *self, PyObject *pkt, PyObject *flow, PyObject *payload, PyObject *sketch)
{
    PyObject *rest = PyTuple_CheckExact(sketch) && PyTuple_GET_SIZE(sketch) == 3 ? PyTuple_GET_ITEM(sketch, 1)
                                                                                  : Py_None;
    PyObject *answer = observe_tool(self, pkt, payload, rest);
    if (answer == NULL || answer == Py_None) {
        Py_XDECREF(answer);
        return answer == NULL ? -1 : 0;
    }
    PyObject *args[3] = {answer, pkt, rest};
    PyObject *match = PyObject_Vectorcall(self->finish, args, 3, NULL);
    Py_DECREF(answer);
    if (match == NULL || match == Py_None) {
        Py_XDECREF(match);
        return match == NULL ? -1 : 0;
    }
    PyObject *tool = PyObject_GetAttr(match, str_tool);
    PyObject *evidence = tool == NULL ? NULL : PyObject_GetAttr(match, str_evidence);
    Py_DECREF(match);
    if (evidence != NULL) {
        set_slot(flow, flow_slot[F_TOOL], tool);
        set_slot(flow, flow_slot[F_TOOL_EVIDENCE], evidence);
    }
    Py_XDECREF(tool);
    Py_XDECREF(evidence);
    return evidence == NULL ? -1 : 1;
}

/* novelty.differing_bytes: the positions at which two byte strings differ, plus their difference in length. */
static Py_ssize_t differing_bytes(PyObject *a, PyObject *b)
{
    Py_ssize_t la = PyBytes_GET_SIZE(a), lb = PyBytes_GET_SIZE(b), common = la < lb ? la : lb;
    const unsigned char *pa = (const unsigned char *)PyBytes_AS_STRING(a), *pb = (const unsigned char *)PyBytes_AS_STRING(b);
    Py_ssize_t differ = (la > lb ? la : lb) - common;
    for (Py_ssize_t i = 0; i < common; i++)
        differ += pa[i] != pb[i];
    return differ;
}

/* A sketch's parts (novelty.Sketch: head bytes, rest hash, length), or 0 when it is not such a tuple. */
static int sketch_parts(PyObject *sketch, PyObject **head, Py_ssize_t *rest_hash, Py_ssize_t *length)
{
    if (!PyTuple_CheckExact(sketch) || PyTuple_GET_SIZE(sketch) != 3 || !PyBytes_CheckExact(PyTuple_GET_ITEM(sketch, 0))
        || !PyLong_CheckExact(PyTuple_GET_ITEM(sketch, 1)) || !PyLong_CheckExact(PyTuple_GET_ITEM(sketch, 2)))
        return 0;
    *head = PyTuple_GET_ITEM(sketch, 0);
    *rest_hash = PyLong_AsSsize_t(PyTuple_GET_ITEM(sketch, 1));
    *length = PyLong_AsSsize_t(PyTuple_GET_ITEM(sketch, 2));
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* novelty.novel_between(current, previous) for two sketches, and whether they differ beyond their heads
 * (current[1:] != previous[1:]); -1 when either is not a sketch this path knows. */
static Py_ssize_t novel_between(PyObject *current, PyObject *previous, int *tails_differ)
{
    PyObject *head, *prefix;
    Py_ssize_t rest_hash, n, previous_hash, length;
    if (!sketch_parts(current, &head, &rest_hash, &n) || !sketch_parts(previous, &prefix, &previous_hash, &length))
        return -1;
    *tails_differ = n != length || rest_hash != previous_hash;
    Py_ssize_t novel = n > prefix_len && *tails_differ ? n - prefix_len : 0;
    if (PyBytes_GET_SIZE(head) == PyBytes_GET_SIZE(prefix)
        && memcmp(PyBytes_AS_STRING(head), PyBytes_AS_STRING(prefix), (size_t)PyBytes_GET_SIZE(head)) == 0)
        return novel;
    return novel + differing_bytes(head, prefix);
}

/* How many channels a flow's capacity state has charged bytes to (FlowChannels.charged; 0 without a state or
 * before a charge), or -1 when `channels` is not the reference's types. */
static Py_ssize_t charged_channels(PyObject *channels)
{
    if (channels == Py_None)
        return 0;
    PyObject *charged = Py_IS_TYPE(channels, channels_type) ? SLOT(channels, channels_slot[C_CHARGED]) : NULL;
    if (charged == NULL || (charged != Py_None && !PyDict_CheckExact(charged)))
        return -1;
    return charged == Py_None ? 0 : PyDict_GET_SIZE(charged);
}

/* The notes Detector._evaluate would raise for the flow as a request left it (`key` its pair), worked out as it
 * does: their bits (NoteType.bit; 0: it raises nothing and changes nothing), for DataExfil's threshold and small
 * secret (_not_one_payload) and the other notes' conditions, each on and not raised for the flow already
 * (AsymPayload's, Tunnel's and NonEchoPayload's change only where the Python detector evaluates the flow at once:
 * checked as it checks them). -1 where this cannot tell: SlowExfil's check where the pair has a memory (_check_slow
 * reads and trims it; after the notes raised before it, as _evaluate reads the flow's alerted bits), a flow not of
 * the reference's types; -2 with an exception. An allowlisted flow: 0. */
static long evaluation_due(FastPath *self, PyObject *flow, PyObject *key)
{
    static const int needed[] = {F_NOVEL_BYTES, F_CHANGED_REQUESTS, F_ALLOWLISTED, F_ALERTED, F_REPLY_DIFFERS,
                                 F_NONECHO_NOVEL, F_TOOL, F_CHANNELS};
    const NovelRequests *novel = &self->novel;
    long novel_bytes, changed, alerted, reply_differs, nonecho_novel;
    if (!FLOW_OK(flow, needed) || long_slot(flow, flow_slot[F_NOVEL_BYTES], &novel_bytes) < 0
        || long_slot(flow, flow_slot[F_CHANGED_REQUESTS], &changed) < 0
        || long_slot(flow, flow_slot[F_ALERTED], &alerted) < 0
        || long_slot(flow, flow_slot[F_REPLY_DIFFERS], &reply_differs) < 0
        || long_slot(flow, flow_slot[F_NONECHO_NOVEL], &nonecho_novel) < 0
        || !PyUnicode_CheckExact(SLOT(flow, flow_slot[F_TOOL])))
        return -1;
    if (SLOT(flow, flow_slot[F_ALLOWLISTED]) == Py_True)
        return 0;
    long echo_novel = novel_bytes - nonecho_novel, due = 0;
    if (echo_novel > novel->novel_threshold)
        due |= novel->exfil;
    else if (novel->small_secret_bytes > 0 && novel->small_secret_bytes <= echo_novel) {
        Py_ssize_t charged = changed + reply_differs >= novel->small_secret_payloads /* _not_one_payload */
                             ? 1 : charged_channels(SLOT(flow, flow_slot[F_CHANNELS]));
        if (charged < 0)
            return -1;
        due |= charged > 0 ? novel->exfil : 0;
    }
    due |= reply_differs > novel->reply_differs_threshold ? novel->asym : 0;
    due |= changed > novel->changed_requests_threshold ? novel->changes : 0;
    due |= PyUnicode_GET_LENGTH(SLOT(flow, flow_slot[F_TOOL])) != 0 ? novel->tunnel : 0;
    due |= nonecho_novel > novel->nonecho_threshold ? novel->nonecho : 0;
    due &= novel->enabled & ~alerted;
    if (!(novel->enabled & novel->slow) || novel_bytes == 0
        || ((alerted | due) & (novel->reports_pair | novel->slow)))
        return due;
    PyObject *pairs = PyDict_GetItemWithError(self->detector, str_pairs);
    if (pairs == NULL || !PyDict_Check(pairs))
        return PyErr_Occurred() ? -2 : -1;
    int remembered = PyDict_Contains(pairs, key);
    return remembered < 0 ? -2 : remembered ? -1 : due;
}

static PyObject *flow_notice(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
static int folded_unmade(FastPath *self, PyObject *flow, PyObject *ts, PyObject *note);

/* Whether channel_tags can read the flow's channels as channel_bytes does: its novel bytes and non-echo ones ints, its
 * capacity state None or a FlowChannels whose charged bytes are None or a dict of str to int, its tool a str. 1, 0. */
static int flow_tags_known(PyObject *flow)
{
    static const int needed[] = {F_CHANNELS, F_NOVEL_BYTES, F_NONECHO_NOVEL, F_TOOL};
    if (!FLOW_OK(flow, needed))
        return 0;
    PyObject *channels = SLOT(flow, flow_slot[F_CHANNELS]), *charged = Py_None;
    if (!PyLong_CheckExact(SLOT(flow, flow_slot[F_NOVEL_BYTES]))
        || !PyLong_CheckExact(SLOT(flow, flow_slot[F_NONECHO_NOVEL]))
        || !PyUnicode_CheckExact(SLOT(flow, flow_slot[F_TOOL])))
        return 0;
    if (channels != Py_None && (!Py_IS_TYPE(channels, channels_type)
                                || (charged = SLOT(channels, channels_slot[C_CHARGED])) == NULL
                                || (charged != Py_None && !PyDict_CheckExact(charged))))
        return 0;
    Py_ssize_t at = 0;
    PyObject *name, *bytes;
    while (charged != Py_None && PyDict_Next(charged, &at, &name, &bytes))
        if (!PyUnicode_CheckExact(name) || !PyLong_CheckExact(bytes))
            return 0;
    return 1;
}

/* The channels that carried the flow's novel bytes (flow_tags_known's flow), the novel bytes no other was charged the
 * payload's: the `charged` dict they are in, made. A new reference, or NULL with an exception. */
static PyObject *channel_dict(PyObject *payload_name, PyObject *nonecho_name, PyObject *flow, PyObject *charged)
{
    PyObject *novel = SLOT(flow, flow_slot[F_NOVEL_BYTES]), *nonecho = SLOT(flow, flow_slot[F_NONECHO_NOVEL]);
    PyObject *all = charged == Py_None ? PyDict_New() : PyDict_Copy(charged);
    if (all == NULL || (PyObject_IsTrue(nonecho) && PyDict_SetItem(all, nonecho_name, nonecho) < 0)) {
        Py_XDECREF(all);
        return NULL;
    }
    PyObject *payload = Py_NewRef(novel), *name, *bytes;
    Py_ssize_t at = 0;
    while (payload != NULL && PyDict_Next(all, &at, &name, &bytes))
        Py_SETREF(payload, PyNumber_Subtract(payload, bytes));
    int positive = payload == NULL ? -1 : PyObject_RichCompareBool(payload, zero, Py_GT);
    if (positive < 0 || (positive && PyDict_SetItem(all, payload_name, payload) < 0))
        Py_CLEAR(all);
    Py_XDECREF(payload);
    return all;
}

#define MAX_SORTED_CHANNELS 16

typedef struct {
    PyObject *name, *bytes; /* borrowed, or bytes a new reference where `made` */
    long long value;
    int made;
} ChannelBytes;

/* channel_tags's channels, largest first, then by name (channel_dict's, sorted): `a` before `b`. */
static int channel_before(const ChannelBytes *a, const ChannelBytes *b)
{
    if (a->value != b->value)
        return a->value > b->value;
    return PyUnicode_Compare(a->name, b->name) < 0;
}

/* channel_tags's list and names made without a dict: the charged channels, the non-echo messages' and the payload's
 * in a small array, sorted there. 1 done (*carried and *names set), 0 where channel_dict's way must be taken (more
 * than MAX_SORTED_CHANNELS channels, bytes past a long long, a charged channel named as the payload's or the
 * non-echo messages'), -1 with an exception. */
static int channels_sorted(PyObject *payload_name, PyObject *nonecho_name, PyObject *flow, PyObject *charged,
                           PyObject **carried, PyObject **names)
{
    ChannelBytes all[MAX_SORTED_CHANNELS + 2];
    int count = 0, overflow = 0;
    PyObject *name, *bytes, *nonecho = SLOT(flow, flow_slot[F_NONECHO_NOVEL]);
    long long payload = PyLong_AsLongLongAndOverflow(SLOT(flow, flow_slot[F_NOVEL_BYTES]), &overflow);
    Py_ssize_t at = 0;
    if (overflow || (charged != Py_None && PyDict_GET_SIZE(charged) > MAX_SORTED_CHANNELS))
        return 0;
    while (charged != Py_None && PyDict_Next(charged, &at, &name, &bytes)) {
        long long value = PyLong_AsLongLongAndOverflow(bytes, &overflow);
        if (overflow || PyUnicode_Compare(name, payload_name) == 0 || PyUnicode_Compare(name, nonecho_name) == 0
            || __builtin_sub_overflow(payload, value, &payload))
            return 0;
        all[count++] = (ChannelBytes){name, bytes, value, 0};
    }
    long long value = PyLong_AsLongLongAndOverflow(nonecho, &overflow);
    if (overflow)
        return 0;
    if (value != 0) {
        if (__builtin_sub_overflow(payload, value, &payload))
            return 0;
        all[count++] = (ChannelBytes){nonecho_name, nonecho, value, 0};
    }
    if (payload > 0) {
        PyObject *left = PyLong_FromLongLong(payload);
        if (left == NULL)
            return -1;
        all[count++] = (ChannelBytes){payload_name, left, payload, 1};
    }
    for (int i = 1; i < count; i++) /* insertion sort: a few channels */
        for (int k = i; k > 0 && channel_before(&all[k], &all[k - 1]); k--) {
            ChannelBytes swap = all[k];
            all[k] = all[k - 1];
            all[k - 1] = swap;
        }
    PyObject *list = PyList_New(count), *named = count > 1 ? PyList_New(count) : NULL;
    int failed = list == NULL || (count > 1 && named == NULL);
    for (int i = 0; i < count; i++) {
        PyObject *item = failed ? NULL : untracked_if_atomic(PyTuple_Pack(2, all[i].name, all[i].bytes));
        failed = failed || item == NULL;
        if (!failed) {
            PyList_SET_ITEM(list, i, item);
            if (named != NULL)
                PyList_SET_ITEM(named, i, Py_NewRef(all[i].name));
        }
        if (all[i].made)
            Py_DECREF(all[i].bytes);
    }
    if (!failed) {
        *names = count == 0 ? PyUnicode_New(0, 0) : count == 1 ? Py_NewRef(all[0].name) : PyUnicode_Join(comma, named);
        failed = *names == NULL;
    }
    if (!failed)
        *carried = Py_NewRef(list);
    Py_XDECREF(list);
    Py_XDECREF(named);
    return failed ? -1 : 1;
}

/* _tags' channel_bytes(flow) (standard.py, the reference: the channels that carried the flow's novel bytes and how
 * many each, largest first, then by name; `payload_name` and `nonecho_name` its names for the bytes no other channel
 * was charged and for non-echo messages') as *carried, a new list of (name, bytes) (untracked:
 * untracked_list_if_atomic), and their names as _tags joins them as *names, a new str, for a flow flow_tags_known
 * took. 0, or -1 with an exception (nothing made). */
static int channel_tags(PyObject *payload_name, PyObject *nonecho_name, PyObject *flow, PyObject **carried,
                        PyObject **names)
{
    PyObject *channels = SLOT(flow, flow_slot[F_CHANNELS]), *novel = SLOT(flow, flow_slot[F_NOVEL_BYTES]);
    PyObject *charged = channels == Py_None ? Py_None : SLOT(channels, channels_slot[C_CHARGED]);
    if (charged != Py_None && PyDict_GET_SIZE(charged) == 0)
        charged = Py_None; /* nothing charged yet: as None */
    *carried = *names = NULL;
    if (charged == Py_None && !PyObject_IsTrue(SLOT(flow, flow_slot[F_NONECHO_NOVEL]))) {
        int some = PyObject_RichCompareBool(novel, zero, Py_GT); /* the common case: the payload alone */
        PyObject *pair = some > 0 ? untracked_if_atomic(PyTuple_Pack(2, payload_name, novel)) : NULL;
        if (some == 0)
            *carried = PyList_New(0);
        else if (pair != NULL && (*carried = PyList_New(1)) != NULL)
            PyList_SET_ITEM(*carried, 0, Py_NewRef(pair));
        Py_XDECREF(pair);
        *names = *carried == NULL ? NULL : some ? Py_NewRef(payload_name) : PyUnicode_New(0, 0);
    } else if (channels_sorted(payload_name, nonecho_name, flow, charged, carried, names) == 0) {
        PyObject *all = channel_dict(payload_name, nonecho_name, flow, charged);
        PyObject *order = all == NULL ? NULL : PyList_New(0), *name, *bytes;
        Py_ssize_t at = 0;
        int failed = order == NULL;
        while (!failed && PyDict_Next(all, &at, &name, &bytes)) { /* sorted by (-bytes, name) */
            PyObject *less = PyNumber_Negative(bytes);
            PyObject *key = less == NULL ? NULL : PyTuple_Pack(2, less, name);
            failed = key == NULL || PyList_Append(order, key) < 0;
            Py_XDECREF(less);
            Py_XDECREF(key);
        }
        failed = failed || PyList_Sort(order) < 0;
        Py_ssize_t n = failed ? 0 : PyList_GET_SIZE(order);
        PyObject *list = failed ? NULL : PyList_New(n), *named = failed ? NULL : PyList_New(n);
        failed = list == NULL || named == NULL;
        for (Py_ssize_t i = 0; !failed && i < n; i++) {
            name = PyTuple_GET_ITEM(PyList_GET_ITEM(order, i), 1);
            PyObject *item = untracked_if_atomic(PyTuple_Pack(2, name, PyDict_GetItem(all, name))); /* no exception */
            failed = item == NULL;
            PyList_SET_ITEM(list, i, item);
            PyList_SET_ITEM(named, i, Py_NewRef(name));
        }
        if (!failed) {
            *names = n == 1 ? Py_NewRef(PyList_GET_ITEM(named, 0)) : PyUnicode_Join(comma, named);
            *carried = *names == NULL ? NULL : Py_NewRef(list);
        }
        Py_XDECREF(all);
        Py_XDECREF(order);
        Py_XDECREF(list);
        Py_XDECREF(named);
    }
    if (*carried == NULL)
        Py_CLEAR(*names);
    untracked_list_if_atomic(*carried);
    return *carried == NULL ? -1 : 0;
}

static PyObject *uid_pool;      /* flows.UID_POOL, set by bind_notice() */
enum { U_CHARS, U_USED, N_UID_POOL };
static const char *const UID_POOL_FIELDS[N_UID_POOL] = {"chars", "used"};
static Py_ssize_t uid_pool_slot[N_UID_POOL]; /* its slots, read and written in place */
static Py_ssize_t uid_chars = -1; /* flows.UID_CHARS: a uid is 'C' and as many of the pool's characters */

/* Flow.ensure_uid() (the reference) for a Flow: its uid, or one made as new_uid makes it from the pool (a 'C', then
 * the pool's next uid_chars characters, pool.used moved past them), where the pool holds them; where it does not
 * (new_uid draws new characters first) or is not what new_uid reads, ensure_uid is called. A new reference, or NULL
 * with an exception. */
static PyObject *flow_uid_of(PyObject *flow)
{
    PyObject *uid = SLOT(flow, flow_slot[F_UID]);
    if (uid != NULL && PyUnicode_CheckExact(uid) && PyUnicode_GET_LENGTH(uid) > 0)
        return Py_NewRef(uid);
    PyObject *chars = uid == NULL || !PyUnicode_CheckExact(uid) || uid_pool == NULL
                          ? NULL : Py_XNewRef(SLOT(uid_pool, uid_pool_slot[U_CHARS]));
    PyObject *used = chars == NULL ? NULL : Py_XNewRef(SLOT(uid_pool, uid_pool_slot[U_USED]));
    Py_ssize_t start = used != NULL && PyLong_CheckExact(used) ? PyLong_AsSsize_t(used) : -1;
    PyObject *made = NULL;
    if (start >= 0 && PyUnicode_CheckExact(chars) && PyUnicode_IS_COMPACT_ASCII(chars)
        && uid_chars > 0 && start + uid_chars <= PyUnicode_GET_LENGTH(chars)) {
        PyObject *next = PyLong_FromSsize_t(start + uid_chars);
        made = next == NULL ? NULL : PyUnicode_New(uid_chars + 1, 127);
        if (made != NULL) {
            Py_UCS1 *text = PyUnicode_1BYTE_DATA(made);
            text[0] = 'C';
            memcpy(text + 1, PyUnicode_1BYTE_DATA(chars) + start, (size_t)uid_chars);
            set_slot(uid_pool, uid_pool_slot[U_USED], next);
            set_slot(flow, flow_slot[F_UID], made);
        }
        Py_XDECREF(next);
    } else if (!PyErr_Occurred()) {
        made = PyObject_CallMethodNoArgs(flow, str_ensure_uid);
    }
    Py_XDECREF(chars);
    Py_XDECREF(used);
    return made;
}

/* FlowDetector._notice(flow, ts, note, msg) for a flow flow_tags_known took, the detector's notices counted by the
 * caller: the tags (channel_tags, the flow's tool), the flow's uid (ensure_uid), the notice made by flow_notice, onto
 * `due`. 0, or -1 with an exception. */
static int tagged_notice(FastPath *self, PyObject *flow, PyObject *ts, PyObject *note, PyObject *msg, PyObject *due)
{
    const Exfil *ex = &self->exfil;
    /* a notice the aggregator's filter is handed next (none due before it): not made where it folds it */
    if (self->fold_into != NULL && due == self->fold_due && PyList_GET_SIZE(due) == 0) {
        int folded = folded_unmade(self, flow, ts, note);
        if (folded != 0)
            return folded < 0 ? -1 : 0;
    }
    PyObject *novel_bytes = Py_NewRef(SLOT(flow, flow_slot[F_NOVEL_BYTES])); /* read before ensure_uid runs Python */
    PyObject *carried, *channel;
    PyObject *uid = channel_tags(ex->payload, ex->nonecho, flow, &carried, &channel) < 0
                        ? NULL : flow_uid_of(flow);
    PyObject *fields = uid == NULL ? NULL : PyDict_New();
    PyObject *counted = fields == NULL ? NULL : ex->novel ? Py_NewRef(novel_bytes) : PyLong_FromLong(-1);
    PyObject *notice = NULL;
    if (counted != NULL) {
        PyObject *args[11] = {flow,      ts,      note, msg, fields, counted, ex->extra, carried,
                              SLOT(flow, flow_slot[F_TOOL]), channel, uid};
        notice = flow_notice(NULL, args, 11);
    }
    int failed = notice == NULL || PyList_Append(due, notice) < 0;
    Py_DECREF(novel_bytes);
    Py_XDECREF(carried);
    Py_XDECREF(channel);
    Py_XDECREF(uid);
    Py_XDECREF(fields);
    Py_XDECREF(counted);
    Py_XDECREF(notice);
    return failed ? -1 : 0;
}

/* Detector._raise(flow, ts, note, msg, due) for each note of `due` (evaluation_due's bits: of the N_RAISED notes
 * alone, none of them the flow's alerted yet) in _evaluate's order, each in _raise's: the flow's alerted bit,
 * _raised's reported_until where the note reports the pair (the path raises only where alerting is realtime), then
 * _notice's: the detector's notices counted, the tags (channel_tags, the flow's tool), the flow's uid (ensure_uid),
 * the notice made by flow_notice, onto the due notices. 1 raised, 0 where the flow is not one this knows (Python's),
 * -1 with an exception. */
static int raise_due(FastPath *self, Detector *state, PyObject *flow, PyObject *ts, long due)
{
    const Exfil *ex = &self->exfil;
    const NovelRequests *novel = &self->novel;
    const long bits[N_RAISED] = {[RAISED_EXFIL] = novel->exfil, [RAISED_ASYM] = novel->asym,
                                 [RAISED_CHANGES] = novel->changes, [RAISED_TUNNEL] = novel->tunnel,
                                 [RAISED_NONECHO] = novel->nonecho};
    long alerted;
    if (ex->notes == NULL || !flow_tags_known(flow)
        || long_slot(flow, flow_slot[F_ALERTED], &alerted) < 0 || SLOT(flow, flow_slot[F_REPORTED_UNTIL]) == NULL)
        return 0;
    for (int i = 0; i < N_RAISED; i++) {
        if (!(due & bits[i]))
            continue;
        alerted |= bits[i];
        PyObject *alerted_now = PyLong_FromLong(alerted);
        if (alerted_now == NULL)
            return -1;
        set_slot(flow, flow_slot[F_ALERTED], alerted_now);
        Py_DECREF(alerted_now);
        if (bits[i] & novel->reports_pair) {
            PyObject *until = PyNumber_Add(ts, self->spread.window);
            if (until == NULL)
                return -1;
            set_slot(flow, flow_slot[F_REPORTED_UNTIL], until);
            Py_DECREF(until);
        }
        state->counts[S_NOTICES]++;
        PyObject *note = PyTuple_GET_ITEM(ex->notes, i);
        if (tagged_notice(self, flow, ts, PyTuple_GET_ITEM(note, 0), PyTuple_GET_ITEM(note, 1), ex->due) < 0)
            return -1;
    }
    return 1;
}

/* Whether `memory` is a SpreadMemory (the template's type), whose slots the path reads in place: 1, or 0 with
 * TypeError set. */
static int is_memory(const NovelRequests *novel_cfg, PyObject *memory)
{
    if (Py_IS_TYPE(memory, Py_TYPE(novel_cfg->host_memory)))
        return 1;
    PyErr_Format(PyExc_TypeError, "a host table's memory must be a %s", Py_TYPE(novel_cfg->host_memory)->tp_name);
    return 0;
}

/* A host table's field (TABLE_FIELDS), borrowed; NULL with AttributeError where it is unset. */
static PyObject *table_field(const NovelRequests *novel_cfg, PyObject *table, int field)
{
    PyObject *value = SLOT(table, novel_cfg->table_slot[field]);
    if (value == NULL)
        PyErr_Format(PyExc_AttributeError, "a host table's %s is unset", TABLE_FIELDS[field]);
    return value;
}

/* A host table's int field, or -1 with an exception. */
static long table_long(const NovelRequests *novel_cfg, PyObject *table, int field)
{
    long out;
    if (long_slot(table, novel_cfg->table_slot[field], &out) == 0)
        return out;
    PyErr_Format(PyExc_TypeError, "a host table's %s is not an int that fits a long", TABLE_FIELDS[field]);
    return -1;
}

/* The host each of the last two host tables touched made its most recent, with its dict's version tag then
 * (ma_version_tag: a new value at every change of any dict, and for every new dict): touched again while the dict
 * is unchanged, the host is still its last entry, and moving it to the end (a delete and an insert) would change
 * nothing. A flood's one target, touched by each packet, was a delete and an insert a packet, and a resize of the
 * receivers' dict every few packets (each delete leaves a slot used until the next resize). Python 3.12 deprecates
 * the tag: there every touch moves the host, as HostTable.touch does. */
typedef struct {
    PyObject *hosts; /* compared, never used: the version tag tells whether it is the same dict, unchanged */
    uint64_t version;
    PyObject *host;
} LastTouched;
static LastTouched last_touched[2];

#if PY_VERSION_HEX < 0x030C0000
/* The same address: one object, or two bytes objects holding the same bytes. */
static int same_address(PyObject *a, PyObject *b)
{
    return a == b
           || (PyBytes_CheckExact(a) && PyBytes_CheckExact(b) && PyBytes_GET_SIZE(a) == PyBytes_GET_SIZE(b)
               && memcmp(PyBytes_AS_STRING(a), PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(a)) == 0);
}
#endif

static int touched_last(PyObject *hosts, PyObject *host)
{
#if PY_VERSION_HEX < 0x030C0000
    for (int i = 0; i < 2; i++) {
        const LastTouched *t = &last_touched[i];
        if (t->hosts == hosts && t->host != NULL && t->version == ((PyDictObject *)hosts)->ma_version_tag
            && same_address(t->host, host))
            return 1;
    }
#else
    (void)hosts, (void)host;
#endif
    return 0;
}

/* `host` is the last entry of the dict `hosts` now (touched_last's). */
static void touched(PyObject *hosts, PyObject *host)
{
#if PY_VERSION_HEX < 0x030C0000
    int i = last_touched[0].hosts == hosts ? 0 : last_touched[1].hosts == hosts ? 1 : -1;
    if (i < 0) { /* a table not kept: it takes the first entry, whose table takes the second's place */
        Py_CLEAR(last_touched[1].host);
        last_touched[1] = last_touched[0];
        last_touched[0].host = NULL; /* its reference moved with it */
        i = 0;
    }
    LastTouched *t = &last_touched[i];
    t->hosts = hosts;
    t->version = ((PyDictObject *)hosts)->ma_version_tag;
    Py_XSETREF(t->host, Py_NewRef(host));
#else
    (void)hosts, (void)host;
#endif
}

/* HostTable.touch(host, ts): a host the table has, its memory made the most recently active (a dict's order); one
 * it has not, while the table is within its limit, a new SpreadMemory (SpreadMemory(ts): a copy of the template with
 * `since` ts) added; else the method itself (the table kept within its limit first). A SpreadMemory (is_memory). */
static PyObject *touch_host(const NovelRequests *novel_cfg, PyObject *table, PyObject *host, PyObject *ts)
{
    PyObject *hosts = Py_XNewRef(table_field(novel_cfg, table, T_HOSTS));
    if (hosts == NULL)
        return NULL;
    PyObject *memory = PyDict_CheckExact(hosts) ? PyDict_GetItemWithError(hosts, host) : NULL;
    if (memory == NULL) {
        long limit = PyErr_Occurred() || !PyDict_CheckExact(hosts) ? -1 : table_long(novel_cfg, table, T_LIMIT);
        if (limit >= 0 && PyDict_GET_SIZE(hosts) < limit) {
            memory = record_copy(novel_cfg->host_memory, novel_cfg->memory_slot[M_SINCE], ts, -1);
            if (memory != NULL && PyDict_SetItem(hosts, host, memory) < 0)
                Py_CLEAR(memory);
            if (memory != NULL)
                touched(hosts, host);
            Py_DECREF(hosts);
            return memory;
        }
        Py_DECREF(hosts);
        memory = PyErr_Occurred() ? NULL : PyObject_CallMethodObjArgs(table, str_touch, host, ts, NULL);
        if (memory != NULL && !is_memory(novel_cfg, memory))
            Py_CLEAR(memory);
        return memory;
    }
    Py_INCREF(memory);
    int failed = !is_memory(novel_cfg, memory);
    if (!failed && !touched_last(hosts, host)) {
        failed = PyDict_DelItem(hosts, host) < 0 || PyDict_SetItem(hosts, host, memory) < 0;
        if (!failed)
            touched(hosts, host);
    }
    Py_DECREF(hosts);
    if (failed)
        Py_CLEAR(memory);
    return memory;
}

/* novelty.lends_payloads: whether what `src` sends to `dst` may explain its payloads to other peers (not to an
 * address no collector has: IPv4 0/8, 127/8, 224/3; IPv6 multicast, :: and ::1; nor to itself). Addresses not of
 * the reference's type (bytes): 1, as before the rule. */
static int lends_payloads(PyObject *src, PyObject *dst)
{
    if (!PyBytes_CheckExact(src) || !PyBytes_CheckExact(dst))
        return 1;
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(dst);
    Py_ssize_t n = PyBytes_GET_SIZE(dst);
    if (n == PyBytes_GET_SIZE(src) && memcmp(d, PyBytes_AS_STRING(src), (size_t)n) == 0)
        return 0;
    if (n == 4)
        return d[0] != 0 && d[0] != 127 && d[0] < 224;
    if (n == 16) {
        if (d[0] == 0xFF)
            return 0;
        for (int i = 0; i < 15; i++)
            if (d[i] != 0)
                return 1;
        return d[15] > 1;
    }
    return 1;
}

/* SpreadMemory.seen(digest): whether the host sent this payload lately (its last `kept` payloads' sketch hashes:
 * one as an int, more as a tuple); it is remembered either way. -1 with an exception. */
static int seen_payload(const NovelRequests *novel_cfg, PyObject *memory, Py_hash_t digest, long kept)
{
    PyObject *payloads = Py_NewRef(SLOT(memory, novel_cfg->memory_slot[M_PAYLOADS]));
    PyObject *digest_obj = PyLong_FromSsize_t(digest), *remembered = NULL;
    int seen = -1;
    if (digest_obj == NULL)
        goto done;
    if (PyLong_Check(payloads)) {
        seen = PyObject_RichCompareBool(payloads, digest_obj, Py_EQ);
        if (seen == 0 && kept)
            remembered = PyTuple_Pack(2, payloads, digest_obj);
    } else if (PyTuple_Check(payloads)) {
        seen = PySequence_Contains(payloads, digest_obj);
        Py_ssize_t n = PyTuple_GET_SIZE(payloads);
        if (seen == 0 && kept && n == 0) {
            remembered = Py_NewRef(digest_obj);
        } else if (seen == 0 && kept) { /* (*payloads[1 - kept:], digest), as Python slices: from 0 when 1 - kept is 0 */
            Py_ssize_t start = kept == 1 ? 0 : n - (kept - 1) > 0 ? n - (kept - 1) : 0;
            remembered = PyTuple_New(n - start + 1);
            for (Py_ssize_t i = start; remembered != NULL && i < n; i++)
                PyTuple_SET_ITEM(remembered, i - start, Py_NewRef(PyTuple_GET_ITEM(payloads, i)));
            if (remembered != NULL)
                PyTuple_SET_ITEM(remembered, n - start, Py_NewRef(digest_obj));
        }
    } else {
        PyErr_SetString(PyExc_TypeError, "SpreadMemory.payloads must be an int or a tuple");
    }
    if (seen == 0 && kept && remembered == NULL)
        seen = -1;
    else if (seen == 0 && kept)
        set_slot(memory, novel_cfg->memory_slot[M_PAYLOADS], remembered);
done:
    Py_DECREF(payloads);
    Py_XDECREF(digest_obj);
    Py_XDECREF(remembered);
    return seen;
}

/* fingerprints.explain(payload, ts, tolerance=timestamp_tolerance[, is_reply=True]), called only where one of its
 * templates' first tests passes (explain_may_match): a new reference to its Benign or to None, NULL with an
 * exception. */
static PyObject *explained(const NovelRequests *novel_cfg, PyObject *payload, PyObject *ts, int is_reply)
{
    if (!explain_may_match((const unsigned char *)PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload),
                           novel_cfg->max_uptime, novel_cfg->max_pattern))
        Py_RETURN_NONE;
    PyObject *explain_args[4] = {payload, ts, novel_cfg->tolerance, Py_True};
    return PyObject_Vectorcall(novel_cfg->explain, explain_args, 2, is_reply ? reply_kwnames : tolerance_kwnames);
}

/* _novelty's first check, which changes nothing: whether a benign template explains the payload (explained).
 * 1, 0, -1 with an exception. */
static int template_explains(const NovelRequests *novel_cfg, PyObject *payload, PyObject *ts)
{
    PyObject *benign = explained(novel_cfg, payload, ts, 0);
    int found = benign == NULL ? -1 : benign != Py_None;
    Py_XDECREF(benign);
    return found;
}

/* What Detector._consistent reads of a fingerprints.Benign: its session (bytes or None), its embedded time (NULL:
 * None) and, where it has one, the time as a double and the wrap of a counter (0: wraps_after None). The objects
 * are new references (template_done releases them). */
typedef struct {
    PyObject *session, *embedded;
    double time, wraps;
} Template;

static void template_done(Template *t)
{
    Py_CLEAR(t->session);
    Py_CLEAR(t->embedded);
}

/* `benign` (not None) read into *t: 0, or -1 with an exception (nothing held then). */
static int template_read(PyObject *benign, Template *t)
{
    t->embedded = NULL;
    t->time = t->wraps = 0.0;
    t->session = PyObject_GetAttr(benign, str_session);
    PyObject *embedded = t->session == NULL ? NULL : PyObject_GetAttr(benign, str_embedded_time);
    PyObject *wraps = embedded == NULL ? NULL : PyObject_GetAttr(benign, str_wraps_after);
    int failed = wraps == NULL;
    if (!failed && embedded != Py_None) {
        t->embedded = Py_NewRef(embedded);
        t->time = PyFloat_AsDouble(embedded);
        failed = t->time == -1.0 && PyErr_Occurred();
    }
    if (!failed && wraps != Py_None) {
        t->wraps = PyFloat_AsDouble(wraps);
        failed = t->wraps == -1.0 && PyErr_Occurred();
    }
    Py_XDECREF(embedded);
    Py_XDECREF(wraps);
    if (failed)
        template_done(t);
    return failed ? -1 : 0;
}

/* Whether Detector._consistent refuses a template's clock at the start of a run (the run's last time reset to 0.0):
 * one that does not wrap, more than a second before 0 (a replayed or forged timestamp). */
static int run_start_refused(const Template *t)
{
    return t->embedded != NULL && t->wraps == 0.0 && t->time + 1.0 < 0.0;
}

/* Detector._consistent in a run whose clock (clock_in_run) accepted: the run's last time `embedded` and its offset
 * to the capture clock kept. 0, or -1 with an exception. */
static int keep_clock(PyObject *flow, PyObject *embedded, double offset)
{
    PyObject *moved = PyFloat_FromDouble(offset);
    if (moved == NULL)
        return -1;
    set_slot(flow, flow_slot[F_LAST_EMBEDDED], embedded);
    set_slot(flow, flow_slot[F_CLOCK_OFFSET], moved);
    Py_DECREF(moved);
    return 0;
}

/* Detector._consistent's new run on `flow`: its identifier `ident`, its session `session` (None: none), its clock
 * `embedded` and that clock's `offset` to the capture clock (`embedded` NULL: no clock, the time 0.0 and no offset).
 * 0, or -1 with an exception. */
static int start_run(PyObject *flow, PyObject *ident, PyObject *session, PyObject *embedded, double offset)
{
    PyObject *time = embedded != NULL ? Py_NewRef(embedded) : PyFloat_FromDouble(0.0);
    PyObject *moved = time == NULL ? NULL : embedded != NULL ? PyFloat_FromDouble(offset) : Py_NewRef(Py_None);
    if (moved != NULL) {
        set_slot(flow, flow_slot[F_SESSION_IDENT], ident);
        set_slot(flow, flow_slot[F_SESSION], session);
        set_slot(flow, flow_slot[F_LAST_EMBEDDED], time);
        set_slot(flow, flow_slot[F_CLOCK_OFFSET], moved);
    }
    Py_XDECREF(time);
    Py_XDECREF(moved);
    return moved == NULL ? -1 : 0;
}

/* Detector._consistent for a request of the flow's run whose payload a template explains (`t`), where it accepts the
 * request as it is: a session (if the template has one) the flow's, a clock (if it has one) that clock_in_run
 * accepts. 1: so (*embedded: a new reference to the template's time, NULL
 * where it has none; *offset: the time less `ts`); 0 where _consistent would set the session, refuse the template
 * or charge its clock (the Python detector's). */
static int template_in_run(FastPath *self, PyObject *flow, const Template *t, PyObject *ts, PyObject **embedded,
                           double *offset)
{
    *embedded = NULL;
    if (t->session != Py_None
        && (!PyBytes_CheckExact(t->session)
            || !session_is(flow, (const unsigned char *)PyBytes_AS_STRING(t->session), PyBytes_GET_SIZE(t->session))))
        return 0; /* a session to set, or another one: no ping's within a run */
    if (t->embedded == NULL)
        return 1;
    if (!clock_in_run(self, flow, t->time, t->wraps, PyFloat_AS_DOUBLE(ts), offset))
        return 0;
    *embedded = Py_NewRef(t->embedded);
    return 1;
}

/* template_in_run for a request of the flow's run (`ident` its session_ident) whose payload fingerprints.explain
 * explains: 1 with its clock as template_in_run gives it, 0 where no template explains it, the run is another or
 * template_in_run says 0 (the Python detector's), -1 with an exception. The layouts ping_clock reads in C come here
 * only when it declined them (a -p pattern, another template's payload). */
static int run_template(FastPath *self, PyObject *flow, PyObject *payload, PyObject *ts, long ident,
                        PyObject **embedded, double *offset)
{
    *embedded = NULL;
    long session_ident;
    if (long_slot(flow, flow_slot[F_SESSION_IDENT], &session_ident) < 0 || session_ident != ident)
        return 0;
    PyObject *benign = explained(&self->novel, payload, ts, 0);
    if (benign == NULL || benign == Py_None) {
        Py_XDECREF(benign);
        return benign == NULL ? -1 : 0;
    }
    Template t;
    int read = template_read(benign, &t);
    Py_DECREF(benign);
    if (read < 0)
        return -1;
    int taken = template_in_run(self, flow, &t, ts, embedded, offset);
    template_done(&t);
    return taken;
}

/* Whether capacity.random_padding may find the payload p[0:n] laid out as a random-padding library's: both layouts it
 * knows (icmplib's, pythonping's) are of ASCII letters and digits alone, at least one. 0: it returns False and need
 * not be called. Looser than random_padding, never stricter (tests/unit/test_fastflows.py holds it so): a new layout
 * of other bytes needs its first test here too. */
static int padding_may_match(const unsigned char *p, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z')))
            return 0;
    return n > 0;
}

/* _novelty's check that the payload is no random-padding library's (capacity.random_padding, called where
 * padding_may_match): 1, 0, -1. */
static int randomly_padded(const NovelRequests *novel_cfg, PyObject *payload, PyObject *seq)
{
    if (PyBytes_CheckExact(payload)
        && !padding_may_match((const unsigned char *)PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload)))
        return 0; /* a flood's random bytes: no call */
    PyObject *padding_args[2] = {payload, seq};
    PyObject *padded = PyObject_Vectorcall(novel_cfg->random_padding, padding_args, 2, NULL);
    int is_padded = padded == NULL ? -1 : PyObject_IsTrue(padded);
    Py_XDECREF(padded);
    return is_padded;
}

/* `a - b >= c` as Python computes it: in doubles where all three are floats, else by the objects' own operators.
 * 1, 0, -1 with an exception. */
static int difference_at_least(PyObject *a, PyObject *b, PyObject *c)
{
    if (PyFloat_CheckExact(a) && PyFloat_CheckExact(b) && PyFloat_CheckExact(c))
        return PyFloat_AS_DOUBLE(a) - PyFloat_AS_DOUBLE(b) >= PyFloat_AS_DOUBLE(c);
    PyObject *difference = PyNumber_Subtract(a, b);
    int at_least = difference == NULL ? -1 : PyObject_RichCompareBool(difference, c, Py_GE);
    Py_XDECREF(difference);
    return at_least;
}

/* HostTable.add(memory, ts, share, peer, window) with SpreadMemory.add and peer_count (standard.py, the reference):
 * the memory's window restarted once it is `window` old, the share added, the peer added (one as itself, more as a
 * set of at most peers_kept), the table's peer entries counted and kept within max_peer_entries (HostTable._shed,
 * called). `memory` a SpreadMemory (touch_host's), read and written in place. The number of peers in the window, or
 * -1 with an exception. */
static Py_ssize_t table_add(const NovelRequests *novel_cfg, const Spread *sp, PyObject *table, PyObject *memory,
                            PyObject *ts, PyObject *share, PyObject *peer)
{
    const Py_ssize_t *slot = novel_cfg->memory_slot;
    PyObject *peers = SLOT(memory, slot[M_PEERS]); /* borrowed while the slot holds it */
    int stale = difference_at_least(ts, SLOT(memory, slot[M_SINCE]), sp->window);
    if (stale < 0)
        return -1;
    Py_ssize_t before = PyAnySet_Check(peers) ? PySet_GET_SIZE(peers) : PyObject_IsTrue(peers), count;
    if (before < 0)
        return -1;
    if (stale) { /* self.since, self.novel, self.peers = ts, 0, b"" */
        PyObject *none_yet = PyBytes_FromStringAndSize(NULL, 0);
        if (none_yet == NULL)
            return -1;
        set_slot(memory, slot[M_SINCE], ts);
        set_slot(memory, slot[M_NOVEL], zero);
        set_slot(memory, slot[M_PEERS], none_yet);
        Py_DECREF(none_yet);
        peers = SLOT(memory, slot[M_PEERS]);
    }
    if (add_to_slot(memory, slot[M_NOVEL], share) < 0)
        return -1;
    if (PyBytes_Check(peers)) {
        int same = PyBytes_GET_SIZE(peers) == 0 ? 1 : PyObject_RichCompareBool(peers, peer, Py_EQ);
        if (same < 0)
            return -1;
        if (same) {
            set_slot(memory, slot[M_PEERS], peer);
            count = 1;
            goto counted;
        }
        PyObject *set = PySet_New(NULL);
        if (set == NULL || PySet_Add(set, peers) < 0) {
            Py_XDECREF(set);
            return -1;
        }
        set_slot(memory, slot[M_PEERS], set);
        Py_DECREF(set);
        peers = set; /* the slot holds it */
    }
    if (!PySet_Check(peers)) {
        PyErr_SetString(PyExc_TypeError, "SpreadMemory.peers must be bytes or a set");
        return -1;
    }
    if (PySet_GET_SIZE(peers) < sp->peers_kept && PySet_Add(peers, peer) < 0)
        return -1;
    count = PySet_GET_SIZE(peers);
counted:;
    /* self.peer_entries += peers - before; while self.peer_entries > SPREAD_PEER_ENTRIES and self.hosts: _shed() */
    long entries = table_long(novel_cfg, table, T_PEER_ENTRIES);
    int failed = entries < 0 && PyErr_Occurred() != NULL;
    entries += (long)(count - before);
    PyObject *now_held = failed ? NULL : PyLong_FromLong(entries);
    failed = now_held == NULL;
    if (!failed)
        set_slot(table, novel_cfg->table_slot[T_PEER_ENTRIES], now_held);
    Py_XDECREF(now_held);
    while (!failed && entries > sp->max_peer_entries) {
        PyObject *hosts = Py_XNewRef(table_field(novel_cfg, table, T_HOSTS));
        int more = hosts == NULL ? -1 : PyObject_IsTrue(hosts);
        Py_XDECREF(hosts);
        if (more <= 0) {
            failed = more < 0;
            break;
        }
        PyObject *shed = PyObject_CallMethodOneArg(table, str_shed, ts);
        failed = shed == NULL;
        Py_XDECREF(shed);
        entries = failed ? 0 : table_long(novel_cfg, table, T_PEER_ENTRIES);
        failed = failed || (entries < 0 && PyErr_Occurred());
    }
    return failed ? -1 : count;
}

/* Detector._spread(flow, share) (standard.py, the reference): the share added to the sender's and the receiver's
 * memories (HostTable.touch, table_add), at the detector's clock; ExfilSpread, where one of them reached
 * spread_min_bytes over spread_min_peers peers in the window, by the detector's own _spread_notice (onto its due
 * notices), its memory's alerted_until set first. 1 when it raised one (Detector._finish hands it out), 0 when
 * not, -1 with an exception. */
static int spread_share(FastPath *self, Detector *state, PyObject *flow, PyObject *src, PyObject *dst,
                        Py_ssize_t share)
{
    const Spread *sp = &self->spread;
    const Py_ssize_t *slot = self->novel.memory_slot;
    PyObject *ts = state->now_obj != NULL ? state->now_obj : PyDict_GetItemWithError(self->detector, str_now);
    if (ts == NULL)
        return PyErr_Occurred() ? -1 : (PyErr_SetString(PyExc_AttributeError, "the detector has no clock"), -1);
    Py_INCREF(ts);
    PyObject *amount = PyLong_FromSsize_t(share);
    PyObject *const sides[2][4] = {{self->novel.senders, src, dst, sp->to}, {sp->receivers, dst, src, sp->from}};
    int failed = amount == NULL, raised = 0;
    for (int side = 0; side < 2 && !failed; side++) {
        PyObject *table = sides[side][0], *host = sides[side][1], *peer = sides[side][2], *role = sides[side][3];
        PyObject *memory = touch_host(&self->novel, table, host, ts);
        Py_ssize_t peers = memory == NULL ? -1 : table_add(&self->novel, sp, table, memory, ts, amount, peer);
        failed = peers < 0;
        if (!failed && peers >= sp->min_peers && sp->enabled) {
            long novel = PyLong_AsLong(SLOT(memory, slot[M_NOVEL]));
            int enough = novel == -1 && PyErr_Occurred() ? -1 : novel >= sp->min_bytes;
            int due = enough <= 0 ? enough : PyObject_RichCompareBool(ts, SLOT(memory, slot[M_ALERTED_UNTIL]), Py_GE);
            PyObject *next = due > 0 ? PyNumber_Add(SLOT(memory, slot[M_SINCE]), sp->window) : NULL;
            PyObject *peers_obj = next == NULL ? NULL : PyLong_FromSsize_t(peers);
            failed = due < 0 || (due > 0 && peers_obj == NULL);
            if (!failed && due > 0) {
                set_slot(memory, slot[M_ALERTED_UNTIL], next);
                PyObject *args[5] = {flow, ts, memory, peers_obj, role};
                PyObject *told = PyObject_Vectorcall(sp->notice, args, 5, NULL);
                failed = told == NULL;
                raised = 1;
                Py_XDECREF(told);
            }
            Py_XDECREF(next);
            Py_XDECREF(peers_obj);
        }
        Py_XDECREF(memory);
    }
    Py_XDECREF(amount);
    Py_DECREF(ts);
    return failed ? -1 : raised;
}

static int flow_end_taken(FastPath *self, PyObject *flow, FlowEnd *end);
static int flow_end_made(FastPath *self, PyObject *flow, PyObject *ts, PyObject *due, const FlowEnd *end);

/* FlowDetector._interest(flow), for evict_flow: 1 - 1 / (1 + n) where alerted, or a tool's (the same IEEE operations
 * as Python's), else its novel bytes, changed requests and differing replies summed (exact: at most 2^53). 1, or 0
 * where a field is not the reference's type or the sum is past 2^53. */
static int flow_interest(PyObject *flow, double *value)
{
    static const int needed[] = {F_ALERTED, F_TOOL, F_N, F_NOVEL_BYTES, F_CHANGED_REQUESTS, F_REPLY_DIFFERS};
    long alerted, n, novel, changed, differs;
    long long sum;
    if (!FLOW_OK(flow, needed) || long_slot(flow, flow_slot[F_ALERTED], &alerted) < 0
        || !PyUnicode_CheckExact(SLOT(flow, flow_slot[F_TOOL])))
        return 0;
    if (alerted != 0 || PyUnicode_GET_LENGTH(SLOT(flow, flow_slot[F_TOOL])) != 0) {
        if (long_slot(flow, flow_slot[F_N], &n) < 0 || n < 0 || n > (1L << 52))
            return 0;
        *value = 1.0 - 1.0 / (1.0 + (double)n);
        return 1;
    }
    if (long_slot(flow, flow_slot[F_NOVEL_BYTES], &novel) < 0 || long_slot(flow, flow_slot[F_CHANGED_REQUESTS], &changed) < 0
        || long_slot(flow, flow_slot[F_REPLY_DIFFERS], &differs) < 0)
        return 0;
    if (__builtin_add_overflow((long long)novel, (long long)changed, &sum)
        || __builtin_add_overflow(sum, (long long)differs, &sum) || sum < -(1LL << 53) || sum > (1LL << 53))
        return 0;
    *value = (double)sum;
    return 1;
}

/* FlowDetector._evict_one (the reference) for the flow a request made past max_flows: of the ends.scan least recently
 * active flows (the first of the table; never the last, the one just made, unless the scan reaches it), the least
 * interesting (flow_interest; the first on a tie, the first of no interest at once) evicted, counted and ended by
 * flow_end_made onto the due notices (ts the detector's clock, as the packet left it). 1 evicted, 0 where a scanned
 * flow's interest or the victim's end is not this path's (nothing changed: Detector._handed_out evicts), -1 with an
 * exception. */
static int evict_flow(FastPath *self, Detector *state)
{
    PyObject *flows = state->flows;
    if (!PyODict_CheckExact(flows))
        return 0;
    Py_ssize_t n = PyDict_GET_SIZE(flows), stop = n - 1 < self->ends.scan ? n - 1 : self->ends.scan;
    PyObject *keys = PyObject_GetIter(flows), *victim_key = NULL, *victim = NULL;
    int taken = keys == NULL ? -1 : 1;
    double least = 0.0;
    for (Py_ssize_t i = 0; taken > 0 && (i == 0 || (i < stop && least != 0)); i++) {
        PyObject *key = PyIter_Next(keys);
        PyObject *flow = key == NULL ? NULL : PyDict_GetItemWithError(flows, key); /* borrowed: the table holds it */
        double value = 0.0;
        taken = flow == NULL ? (PyErr_Occurred() ? -1 : 0) : flow_interest(flow, &value);
        if (taken > 0 && (i == 0 || value < least)) {
            Py_XSETREF(victim_key, Py_NewRef(key));
            victim = flow, least = value;
        }
        Py_XDECREF(key);
    }
    Py_XDECREF(keys);
    FlowEnd end;
    if (taken > 0)
        taken = flow_end_taken(self, victim, &end);
    if (taken > 0) {
        Py_INCREF(victim); /* the table's reference goes with it */
        PyObject *now = state->now_obj != NULL ? state->now_obj : PyDict_GetItemWithError(self->detector, str_now);
        taken = now == NULL || !PyFloat_CheckExact(now) || PyObject_DelItem(flows, victim_key) < 0 ? -1 : 1;
        if (taken > 0) {
            state->counts[S_FLOWS_EVICTED]++;
            taken = flow_end_made(self, victim, now, self->exfil.due, &end) < 0 ? -1 : 1;
        } else if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "the detector's clock is not a float");
        }
        Py_DECREF(victim);
    }
    Py_XDECREF(victim_key);
    return taken;
}

/* What a message with novel bytes (or a request whose tool was just found) leaves to Detector._finish, given that a
 * share of the hosts' memories raised ExfilSpread (`told`) and that the flow's evaluation may raise something
 * (`evaluate`): (flow,) to evaluate the flow (evaluation_due cannot tell, or raise_due does not know the flow), () to
 * hand out what is due (the notes raise_due raised, or what a share raised) or to evict after a new flow over
 * max_flows, else True (last_novel holds the bytes) or None (no novel bytes: a tool found). */
static PyObject *left_to_evaluate(FastPath *self, Detector *state, PyObject *flow, PyObject *key, PyObject *ts,
                                  int told, int evaluate)
{
    if (evaluate) {
        long due = evaluation_due(self, flow, key);
        if (due < -1)
            return NULL;
        int raised = due > 0 ? raise_due(self, state, flow, ts, due) : 0;
        if (raised < 0)
            return NULL;
        evaluate = due != 0 && !raised;
        told |= raised;
    }
    if (evaluate)
        return PyTuple_Pack(1, flow);
    if (PyDict_GET_SIZE(state->flows) > self->max_flows) { /* first_request's new flow: _handed_out's eviction */
        int evicted = evict_flow(self, state);
        if (evicted <= 0)
            return evicted < 0 ? NULL : PyTuple_New(0);
        told |= PyList_GET_SIZE(self->exfil.due) > 0; /* the victim's ExfilSummary */
    }
    return told ? PyTuple_New(0) : Py_NewRef(state->last_novel ? Py_True : Py_None); /* None: a tool's, not novel */
}

/* Detector._add_novel for the `novel` bytes (> 0) of a message the path takes, then the evaluation it leaves: the
 * flow's novel bytes (it had `before`), the counters and last_novel, their share of the hosts' memories where
 * `spreads` (the flow not allowlisted) while it is under novel_bytes_threshold (spread_share), and left_to_evaluate's
 * answer (`told`: a share raised ExfilSpread already; `evaluate`: the flow's evaluation may raise). NULL with an
 * exception. */
static PyObject *novel_added(FastPath *self, Detector *state, PyObject *pkt, PyObject *flow, PyObject *key,
                             Py_ssize_t novel, Py_ssize_t before, int spreads, int told, int evaluate)
{
    PyObject *amount = PyLong_FromSsize_t(novel);
    int failed = amount == NULL || add_to_slot(flow, flow_slot[F_NOVEL_BYTES], amount) < 0;
    Py_XDECREF(amount);
    if (failed)
        return NULL;
    state->counts[S_NOVEL_BYTES] += novel;
    state->last_novel += novel;
    Py_ssize_t room = self->novel.novel_threshold - before;
    int raised = spreads && room > 0 ? spread_share(self, state, flow, SLOT(pkt, packet_slot[P_SRC]),
                                                    SLOT(pkt, packet_slot[P_DST]), novel < room ? novel : room)
                                     : 0;
    if (raised < 0)
        return NULL;
    return left_to_evaluate(self, state, flow, key, SLOT(pkt, packet_slot[P_TS]), told || raised, evaluate);
}

/* _on_request from _novelty's last step on, for a request the path takes (its flow's header and sketch, `current`,
 * kept): the sender's memory (HostTable.touch, its last peer the flow's, SpreadMemory.seen: a payload it sent lately
 * counts nothing), the flow's last request time, the tool tracker unless the flow has a tool (tool_seen), the
 * pending request, the request's `novel` bytes added as _add_novel adds them, with the flow's share of the hosts'
 * memories where `spreads` (it had `before` novel bytes, fewer than novel_bytes_threshold, and is not allowlisted),
 * after the `charged` bytes its header added (header_apply; `told`: their share raised ExfilSpread). The answer:
 * left_to_evaluate's with novel bytes or a tool found (`evaluate`: the flow's evaluation may raise), else None; NULL
 * with an exception. */
static PyObject *request_rest(FastPath *self, Detector *state, PyObject *pkt, PyObject *key, PyObject *payload,
                              PyObject *flow, PyObject *current, int has_tool, Py_ssize_t novel, Py_ssize_t before,
                              int spreads, int evaluate, Py_ssize_t charged, int told)
{
    const NovelRequests *novel_cfg = &self->novel;
    PyObject *src = SLOT(pkt, packet_slot[P_SRC]), *dst = SLOT(pkt, packet_slot[P_DST]);
    PyObject *ts = SLOT(pkt, packet_slot[P_TS]);
    if (SLOT(flow, flow_slot[F_ALLOWLISTED]) != Py_True && lends_payloads(src, dst)) {
        PyObject *memory = touch_host(novel_cfg, novel_cfg->senders, src, ts);
        if (memory == NULL)
            return NULL;
        set_slot(memory, novel_cfg->memory_slot[M_LAST_PEER], dst);
        Py_hash_t digest = PyObject_Hash(current);
        int repeated = digest == -1 ? -1 : seen_payload(novel_cfg, memory, digest, novel_cfg->payloads_kept);
        Py_DECREF(memory);
        if (repeated < 0)
            return NULL;
        if (repeated)
            novel = 0;
    }
    set_slot(flow, flow_slot[F_LAST_REQUEST_TS], ts);
    int recognised = has_tool ? 0 : tool_seen(self, pkt, flow, payload, current);
    if (recognised < 0)
        return NULL;
    if (self->matched && remember_request(self, state, pkt, current, SLOT(pkt, packet_slot[P_SEQ])) < 0)
        return NULL;
    if (!novel) /* the header's bytes alone (last_novel holds them), or a tool found: evaluated as for a payload's */
        return !charged && !recognised ? Py_NewRef(Py_None)
                                       : left_to_evaluate(self, state, flow, key, ts, told, evaluate);
    if (add_to_slot(flow, flow_slot[F_CHANGED_REQUESTS], one) < 0)
        return NULL;
    return novel_added(self, state, pkt, flow, key, novel, before, spreads, told, evaluate);
}

/* Python's float floor division (floatobject.c, _float_div_mod), which capacity.charge's bits // 8 is. */
static double float_floor_div(double vx, double wx)
{
    double mod = fmod(vx, wx), div = (vx - mod) / wx;
    if (mod != 0.0 && (wx < 0) != (mod < 0))
        div -= 1.0;
    if (div == 0.0)
        return copysign(0.0, vx / wx);
    double floordiv = floor(div);
    return div - floordiv > 0.5 ? floordiv + 1.0 : floordiv;
}

/* -- a request's header (capacity.request_header and charge, Detector._header and _charge: the reference) ------- */

/* capacity.step_bits: the bits in an integer `delta` away from its predicted value, the first `free` free. */
static double step_bits(long delta, long free)
{
    long excess = labs(delta) - free;
    return excess > 0 ? log2(1.0 + (double)excess) : 0.0;
}

/* capacity.length_bits (other_size -1: none). */
static double length_bits(long size, long last_size, long other_size)
{
    return size == last_size || size == other_size ? 0.0 : log2(1.0 + (double)labs(size - last_size));
}

/* capacity.take_token on the float due in `channels`' slot `slot` (run_due or param_due): 1 where a token was free,
 * else 0, the due written as take_token returns it; -1 with an exception set. */
static int take_token(PyObject *channels, Py_ssize_t slot, double now, double burst, double refill)
{
    PyObject *given = SLOT(channels, slot);
    if (!PyFloat_CheckExact(given)) {
        PyErr_SetString(PyExc_TypeError, "request_header(): a budget's due must be a float");
        return -1;
    }
    double due;
    int free = token_free(PyFloat_AS_DOUBLE(given), now, burst, refill, &due);
    PyObject *value = PyFloat_FromDouble(due);
    if (value == NULL)
        return -1;
    set_slot(channels, slot, value);
    Py_DECREF(value);
    return free;
}

/* The dict in obj's slot at `offset` (FlowChannels' runs or charged), made there where it holds None: borrowed, or
 * NULL with an exception set. */
static PyObject *slot_dict(PyObject *obj, Py_ssize_t offset)
{
    PyObject *table = SLOT(obj, offset);
    if (table == Py_None) {
        if ((table = PyDict_New()) == NULL)
            return NULL;
        set_slot(obj, offset, table);
        Py_DECREF(table); /* the slot's */
    } else if (!PyDict_CheckExact(table)) {
        PyErr_SetString(PyExc_TypeError, "FlowChannels: its runs and charged must be dicts or None");
        return NULL;
    }
    return table;
}

/* standard._channels: the flow's capacity state, made where it has none (a copy of FlowChannels()). Borrowed, or
 * NULL with an exception set. */
static PyObject *flow_channels(PyObject *flow)
{
    PyObject *channels = SLOT(flow, flow_slot[F_CHANNELS]);
    if (channels == Py_None) {
        channels = record_copy(channels_template, -1, NULL, -1);
        if (channels == NULL)
            return NULL;
        set_slot(flow, flow_slot[F_CHANNELS], channels);
        Py_DECREF(channels); /* the flow's */
    }
    return channels;
}

/* obj's slot at `offset` set to the int `value`: 0, or -1 with an exception set. */
static int set_slot_long(PyObject *obj, Py_ssize_t offset, long value)
{
    PyObject *number = PyLong_FromLong(value);
    if (number == NULL)
        return -1;
    set_slot(obj, offset, number);
    Py_DECREF(number);
    return 0;
}

/* A (last seq, last size, time of its last request) of two ints and a float, as runs' values hold them: 0, or -1
 * with an exception set. */
static int run_values(PyObject *run, long *seq, long *size, double *left_at)
{
    if (!PyTuple_CheckExact(run) || PyTuple_GET_SIZE(run) != 3 || !PyLong_CheckExact(PyTuple_GET_ITEM(run, 0))
        || !PyLong_CheckExact(PyTuple_GET_ITEM(run, 1)) || !PyFloat_CheckExact(PyTuple_GET_ITEM(run, 2))) {
        PyErr_SetString(PyExc_TypeError, "request_header(): a run must be (seq, size, time)");
        return -1;
    }
    *seq = PyLong_AsLong(PyTuple_GET_ITEM(run, 0));
    *size = PyLong_AsLong(PyTuple_GET_ITEM(run, 1));
    *left_at = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(run, 2));
    return PyErr_Occurred() ? -1 : 0;
}

typedef struct {
    PyObject *channel; /* borrowed: an interned name, "ident", "seq" or "length" */
    double bits;
} Charge;

/* Whether a flow's capacity state (its `channels` slot) is one this path charges: None (none yet) or a FlowChannels
 * whose fields are the reference's types. */
static int channels_known(PyObject *channels)
{
    long value;
    if (channels == Py_None)
        return 1;
    if (channels == NULL || charged_channels(channels) < 0)
        return 0;
    PyObject *runs = SLOT(channels, channels_slot[C_RUNS]);
    if (!PyFloat_CheckExact(SLOT(channels, channels_slot[C_CARRY]))
        || !PyFloat_CheckExact(SLOT(channels, channels_slot[C_RUN_DUE]))
        || !PyFloat_CheckExact(SLOT(channels, channels_slot[C_PARAM_DUE]))
        || long_slot(channels, channels_slot[C_STRIDE], &value) < 0 || value < -0x10000 || value > 0x10000
        || long_slot(channels, channels_slot[C_OTHER_SIZE], &value) < 0
        || !PyBytes_CheckExact(SLOT(channels, channels_slot[C_OPTIONS])) || (runs != Py_None && !PyDict_CheckExact(runs)))
        return 0;
    return 1;
}

/* capacity.request_header for a FlowChannels `channels` that channels_known() takes: the charges into `out` (at most
 * two, *count of them, in the reference's order, bits 0.0 included) and whether the run was free (*free); the state
 * changed as the reference changes it (its size before the last, the runs remembered in their order, the budgets'
 * dues, the stride). 0, or -1 with an exception set. */
static int request_header_c(PyObject *channels, long last_ident, long last_seq, long last_size, long ident, long seq,
                            long size, double now, double gap, Charge *out, int *count, int *free)
{
    long other_size, stride;
    if (long_slot(channels, channels_slot[C_OTHER_SIZE], &other_size) < 0
        || long_slot(channels, channels_slot[C_STRIDE], &stride) < 0) {
        PyErr_SetString(PyExc_TypeError, "request_header(): other_size and stride must be ints");
        return -1;
    }
    *count = 0;
    *free = 1;
    if (size != last_size && set_slot_long(channels, channels_slot[C_OTHER_SIZE], last_size) < 0)
        return -1;
    if (ident != last_ident) {
        PyObject *runs = slot_dict(channels, channels_slot[C_RUNS]);
        if (runs == NULL)
            return -1;
        PyObject *key = PyLong_FromLong(last_ident), *run = Py_BuildValue("(lld)", last_seq, last_size, now - gap);
        int failed = key == NULL || run == NULL || PyDict_SetItem(runs, key, run) < 0;
        Py_XDECREF(key);
        Py_XDECREF(run);
        if (failed)
            return -1;
        if (PyDict_GET_SIZE(runs) > runs_remembered) { /* del runs[next(iter(runs))] */
            Py_ssize_t pos = 0;
            PyObject *oldest, *value;
            if (PyDict_Next(runs, &pos, &oldest, &value)) {
                Py_INCREF(oldest);
                failed = PyDict_DelItem(runs, oldest) < 0;
                Py_DECREF(oldest);
                if (failed)
                    return -1;
            }
        }
        key = PyLong_FromLong(ident);
        PyObject *resumed = key == NULL ? NULL : PyDict_GetItemWithError(runs, key); /* runs.pop(ident, None) */
        Py_XINCREF(resumed);
        failed = key == NULL || (resumed == NULL && PyErr_Occurred())
                 || (resumed != NULL && PyDict_DelItem(runs, key) < 0);
        Py_XDECREF(key);
        if (!failed && resumed != NULL) {
            double left_at = 0.0;
            failed = run_values(resumed, &last_seq, &last_size, &left_at) < 0;
            gap = now - left_at; /* the run's own pause */
        }
        Py_XDECREF(resumed);
        if (failed)
            return -1;
        if (resumed == NULL) {
            int token = take_token(channels, channels_slot[C_RUN_DUE], now, run_budget, run_refill);
            if (token < 0)
                return -1;
            if (token) {
                /* a size none of the recent runs used, and no parameter change left free: its length charged */
                int fresh = size != last_size && size != other_size;
                Py_ssize_t pos = 0;
                PyObject *id, *other;
                while (fresh && PyDict_Next(runs, &pos, &id, &other)) {
                    long other_seq, other_run_size;
                    double other_left_at;
                    if (run_values(other, &other_seq, &other_run_size, &other_left_at) < 0)
                        return -1;
                    fresh = size != other_run_size;
                }
                int params = fresh ? take_token(channels, channels_slot[C_PARAM_DUE], now, param_budget,
                                                param_refill) : 1;
                if (params < 0)
                    return -1;
                if (!params)
                    out[(*count)++] = (Charge){str_length, length_bits(size, last_size, -1)};
                return 0;
            }
            /* new_run_bits: the identifier against the last (16 steps free), the first sequence number against 0, 1
             * or the last run's next */
            long first = labs(seq_delta(seq, 0)), one = labs(seq_delta(seq, 1));
            long next = labs(seq_delta(seq, last_seq + 1));
            first = one < first ? one : first;
            first = next < first ? next : first;
            double bits = step_bits(seq_delta(ident, last_ident), 16) + step_bits(first, seq_free);
            out[(*count)++] = (Charge){str_ident, bits};
            out[(*count)++] = (Charge){str_length, length_bits(size, last_size, -1)};
            *free = 0;
            return 0;
        }
    }
    long step = seq_delta(seq, last_seq);
    long next_to = labs(seq_delta(seq, last_seq + 1)), swapped = labs(seq_delta(swap16(seq), swap16(last_seq) + 1));
    double in_run = step_bits(next_to < swapped ? next_to : swapped, seq_free); /* seq_bits */
    double by_stride = step_bits(step - stride, seq_free);
    double seq_cost = by_stride < in_run ? by_stride : in_run;
    if (seq_cost != 0.0 && gap >= run_pause) {
        int token = take_token(channels, channels_slot[C_RUN_DUE], now, run_budget, run_refill);
        if (token < 0)
            return -1;
        if (token) { /* the counter moved on between runs: a new run, the steps within it one up again */
            seq_cost = 0.0;
            step = 1;
        }
    }
    if (set_slot_long(channels, channels_slot[C_STRIDE], step) < 0)
        return -1;
    out[(*count)++] = (Charge){str_seq, seq_cost};
    out[(*count)++] = (Charge){str_length, length_bits(size, last_size, other_size)};
    return 0;
}

PyDoc_STRVAR(request_header_doc,
             "request_header(state, last, ident, seq, size, now, gap) -> (charges, free)\n\n"
             "capacity.request_header (the reference) in C, for a FlowChannels whose fields are the reference's\n"
             "types (else TypeError): `last` the flow's last (identifier, sequence number, size).");

static PyObject *request_header(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    long last_ident, last_seq, last_size, ident, seq, size;
    if (nargs != 7 || !PyTuple_CheckExact(args[1]) || PyTuple_GET_SIZE(args[1]) != 3 || channels_type == NULL
        || !Py_IS_TYPE(args[0], channels_type) || !channels_known(args[0])) {
        PyErr_SetString(PyExc_TypeError, "request_header(FlowChannels of the reference's types, (ident, seq, size), "
                                         "ident, seq, size, now, gap)");
        return NULL;
    }
    PyObject *const *last = &PyTuple_GET_ITEM(args[1], 0);
    for (int i = 0; i < 3; i++)
        if (!PyLong_CheckExact(last[i]) || !PyLong_CheckExact(args[2 + i])) {
            PyErr_SetString(PyExc_TypeError, "request_header(): identifiers, sequence numbers and sizes are ints");
            return NULL;
        }
    last_ident = PyLong_AsLong(last[0]);
    last_seq = PyLong_AsLong(last[1]);
    last_size = PyLong_AsLong(last[2]);
    ident = PyLong_AsLong(args[2]);
    seq = PyLong_AsLong(args[3]);
    size = PyLong_AsLong(args[4]);
    double now = PyFloat_AsDouble(args[5]), gap = PyFloat_AsDouble(args[6]);
    if (PyErr_Occurred())
        return NULL;
    Charge charges[2];
    int count, free;
    if (request_header_c(args[0], last_ident, last_seq, last_size, ident, seq, size, now, gap, charges, &count,
                         &free) < 0)
        return NULL;
    PyObject *list = PyList_New(count);
    for (int i = 0; list != NULL && i < count; i++) {
        PyObject *item = Py_BuildValue("(Od)", charges[i].channel, charges[i].bits);
        if (item == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, i, item);
    }
    return list == NULL ? NULL : Py_BuildValue("(NO)", list, free ? Py_True : Py_False);
}

/* `whole` bytes a request's header carried, charged to `channel` (capacity.charge's count, in the flow's capacity
 * state `channels`) and added to the flow's novel bytes (_add_novel), with their share of the hosts' memories while
 * the flow had fewer than novel_bytes_threshold (`before`) and is not allowlisted (*told set where it raised
 * ExfilSpread). 0, or -1 with an exception. */
static int charge_whole(FastPath *self, Detector *state, PyObject *pkt, PyObject *flow, PyObject *channels,
                        PyObject *channel, Py_ssize_t whole, Py_ssize_t before, int unlisted, int *told)
{
    PyObject *charged = slot_dict(channels, channels_slot[C_CHARGED]);
    if (charged == NULL)
        return -1;
    PyObject *amount = PyLong_FromSsize_t(whole);
    PyObject *so_far = amount == NULL ? NULL : PyDict_GetItemWithError(charged, channel);
    PyObject *sum = amount == NULL || (so_far == NULL && PyErr_Occurred()) ? NULL
                    : so_far == NULL ? Py_NewRef(amount) : PyNumber_Add(so_far, amount);
    int failed = sum == NULL || PyDict_SetItem(charged, channel, sum) < 0
                 || add_to_slot(flow, flow_slot[F_NOVEL_BYTES], amount) < 0;
    Py_XDECREF(amount);
    Py_XDECREF(sum);
    if (failed)
        return -1;
    state->counts[S_NOVEL_BYTES] += whole;
    state->last_novel += whole;
    Py_ssize_t room = self->novel.novel_threshold - before;
    int raised = room <= 0 || !unlisted ? 0
                 : spread_share(self, state, flow, SLOT(pkt, packet_slot[P_SRC]), SLOT(pkt, packet_slot[P_DST]),
                                whole < room ? whole : room);
    *told |= raised > 0;
    return raised < 0 ? -1 : 0;
}

/* What Detector._charge does with the bits a request's header carried, `bits` > 0 (capacity.charge: the bits
 * carried over added, the rest under a byte carried on), for `channel`: the whole bytes they make, charged
 * (charge_whole), or -1 with an exception set. `*before`: the flow's novel bytes, moved on by them. */
static Py_ssize_t charge_bits(FastPath *self, Detector *state, PyObject *pkt, PyObject *flow, PyObject *channels,
                              PyObject *channel, double bits, Py_ssize_t *before, int unlisted, int *told)
{
    PyObject *carried = SLOT(channels, channels_slot[C_CARRY]);
    if (!PyFloat_CheckExact(carried)) {
        PyErr_SetString(PyExc_TypeError, "FlowChannels.carry must be a float");
        return -1;
    }
    bits += PyFloat_AS_DOUBLE(carried);
    Py_ssize_t whole = (Py_ssize_t)float_floor_div(bits, 8.0);
    PyObject *carry = PyFloat_FromDouble(bits - 8.0 * (double)whole);
    if (carry == NULL)
        return -1;
    set_slot(channels, channels_slot[C_CARRY], carry);
    Py_DECREF(carry);
    if (whole == 0)
        return 0;
    if (charge_whole(self, state, pkt, flow, channels, channel, whole, *before, unlisted, told) < 0)
        return -1;
    *before += whole;
    return whole;
}

/* An echo request's header that is not its flow's next, as handle_request read it: the flow's last identifier,
 * sequence number and size, the request's identifier and sequence number. */
typedef struct {
    long last_ident, last_seq, last_size, ident, seq;
} Header;

/* Detector._header for a taken echo request whose header is not its flow's next (a new identifier, a sequence number
 * out of step, a new size): the flow's capacity state made if it has none (as _channels makes it), the flow's last
 * identifier, sequence number and size made the request's, request_header_c's charges worked out (with the seconds
 * since the flow's last request), the flow's stride and _run_free set from them, and each charge's bits charged
 * (charge_bits). *whole: the whole bytes charged; `before`: the flow's novel bytes. 0, or -1 with an exception set. */
static int header_apply(FastPath *self, Detector *state, PyObject *pkt, PyObject *flow, PyObject *size,
                        const Header *h, Py_ssize_t before, int unlisted, int *told, Py_ssize_t *whole)
{
    PyObject *channels = flow_channels(flow);
    if (channels == NULL)
        return -1;
    double ts = PyFloat_AS_DOUBLE(SLOT(pkt, packet_slot[P_TS]));
    double gap = ts - PyFloat_AS_DOUBLE(SLOT(flow, flow_slot[F_LAST_REQUEST_TS]));
    set_slot(flow, flow_slot[F_LAST_IDENT], SLOT(pkt, packet_slot[P_IDENT]));
    set_slot(flow, flow_slot[F_LAST_SEQ], SLOT(pkt, packet_slot[P_SEQ]));
    set_slot(flow, flow_slot[F_LAST_SIZE], size);
    Charge charges[2];
    int count, free;
    if (request_header_c(channels, h->last_ident, h->last_seq, h->last_size, h->ident, h->seq, PyLong_AsLong(size),
                         ts, gap, charges, &count, &free) < 0)
        return -1;
    set_slot(flow, flow_slot[F_SEQ_STRIDE], SLOT(channels, channels_slot[C_STRIDE]));
    state->run_not_free = !free;
    *whole = 0;
    for (int i = 0; i < count; i++) {
        Py_ssize_t made = charges[i].bits > 0.0 ? charge_bits(self, state, pkt, flow, channels, charges[i].channel,
                                                             charges[i].bits, &before, unlisted, told)
                                                : 0;
        if (made < 0)
            return -1;
        *whole += made;
    }
    return 0;
}

/* Whether this path may make the flow of `key` as Detector._new_flow makes it, with nothing in it only the Python
 * detector does: the path makes flows (first_requests given), the allowlist is empty, the pair has no memory
 * (_flow_started would carry its last sketch). 1, 0, or -1 with an exception set. */
static int may_make_flow(FastPath *self, PyObject *key)
{
    if (self->flow_template == NULL)
        return 0;
    PyObject *allowlist = PyDict_GetItemWithError(self->detector, str_allowlist);
    PyObject *pairs = allowlist == NULL ? NULL : PyDict_GetItemWithError(self->detector, str_pairs);
    if (pairs == NULL || !PyDict_Check(pairs))
        return PyErr_Occurred() ? -1 : 0;
    PyObject *empty = PyObject_GetAttr(allowlist, str_empty);
    int unlisted = empty == NULL ? -1 : empty == Py_True;
    Py_XDECREF(empty);
    if (unlisted <= 0)
        return unlisted;
    int paired = PyDict_Contains(pairs, key);
    return paired < 0 ? -1 : !paired;
}

/* FlowDetector._flow with the message counted on it (flow.n += 1, `size` added to its `bytes_slot`): the table's
 * `flow` touched (touch_flow), or where the table has none (`flow` NULL; may_make_flow said yes) a flow made for
 * the pair `key` as Detector._new_flow makes it (from flows.NEW_FLOW, put in the table and counted). A new
 * reference, or NULL with an exception set. */
static PyObject *message_flow(FastPath *self, Detector *state, PyObject *pkt, PyObject *key, PyObject *flow,
                              PyObject *size, Py_ssize_t bytes_slot)
{
    PyObject *ts = SLOT(pkt, packet_slot[P_TS]);
    if (flow != NULL)
        return touch_flow(state, key, flow, ts, size, bytes_slot) < 0 ? NULL : Py_NewRef(flow);
    PyObject *made[7] = {self->flow_template, SLOT(pkt, packet_slot[P_SRC]), SLOT(pkt, packet_slot[P_DST]), ts,
                         Py_False, SLOT(pkt, packet_slot[P_TYPE]), SLOT(pkt, packet_slot[P_CODE])};
    flow = flow_from_template(made);
    if (flow == NULL || PyObject_SetItem(state->flows, untracked_if_atomic(key), flow) < 0) {
        Py_XDECREF(flow);
        return NULL;
    }
    state->counts[S_FLOWS_CREATED]++;
    set_slot(flow, flow_slot[F_N], one);
    set_slot(flow, bytes_slot, size);
    return flow;
}

/* Detector._options for a taken echo request with IP options `options` (not empty): the flow's capacity state made if
 * it has none (_channels), then capacity.options_bits: nothing while the options repeat the last ones, else they
 * are kept and their bytes charged (option_bytes: none for a Router Alert; charge_bits). `before`: the flow's novel
 * bytes; *charged: moved on by the whole bytes charged. 0, or -1 with an exception set. */
static int options_apply(FastPath *self, Detector *state, PyObject *pkt, PyObject *flow, PyObject *options,
                         Py_ssize_t before, int unlisted, int *told, Py_ssize_t *charged)
{
    PyObject *channels = flow_channels(flow);
    if (channels == NULL)
        return -1;
    int same = PyObject_RichCompareBool(options, SLOT(channels, channels_slot[C_OPTIONS]), Py_EQ);
    if (same != 0)
        return same < 0 ? -1 : 0;
    set_slot(channels, channels_slot[C_OPTIONS], options);
    int alert = PySequence_Contains(router_alert, options);
    if (alert != 0)
        return alert < 0 ? -1 : 0;
    Py_ssize_t whole = charge_bits(self, state, pkt, flow, channels, str_options,
                                   8.0 * (double)PyBytes_GET_SIZE(options), &before, unlisted, told);
    if (whole < 0)
        return -1;
    *charged += whole;
    return 0;
}

/* -- what other_message judges itself (nonecho.c_judged; nonecho's functions the reference) ------------------- */

/* nonecho._time_of_day: `value` milliseconds since midnight UT within `tolerance` seconds of the capture time `ts`.
 * 1, 0, or -1 with ValueError where the reference's int() of the time of day fails (a capture time not finite). */
static int time_of_day(const Judged *j, long long value, double ts, double tolerance)
{
    if (value >= j->ms_per_day)
        return 0;
    if (!isfinite(ts)) {
        PyErr_SetString(PyExc_ValueError, "cannot convert float NaN to integer");
        return -1;
    }
    long long offset = (value - (long long)(py_mod(ts, (double)(j->ms_per_day / 1000)) * 1000.0)) % j->ms_per_day;
    if (offset < 0) /* Python's % of ints: the divisor's sign */
        offset += j->ms_per_day;
    long long other = j->ms_per_day - offset;
    return (double)(offset < other ? offset : other) <= tolerance * 1000.0;
}

/* nonecho._replier_time: a reply's receive time, a time of day in either byte order or RFC 792's high-bit value. */
static int replier_time(const Judged *j, long long value)
{
    return value >= 1LL << 31 || value < j->ms_per_day || (long long)__builtin_bswap32((uint32_t)value) < j->ms_per_day;
}

/* nonecho._soon_after: a reply's transmit time, its receive time or up to a second after it, in either byte order. */
static int soon_after(long long transmit, long long receive)
{
    long long swapped = (long long)__builtin_bswap32((uint32_t)transmit) - __builtin_bswap32((uint32_t)receive);
    return (0 <= transmit - receive && transmit - receive <= 1000) || (0 <= swapped && swapped <= 1000);
}

/* nonecho._v4's fixed body for a timestamp request's (`request`) or reply's payload p[0:size] with
 * _timestamp_fields: the bytes of its originate, receive and transmit fields that hold no time, and in *beyond the
 * bytes past the body; -1 with an exception. */
static long timestamp_fields(const Judged *j, const unsigned char *p, Py_ssize_t size, int request, double ts,
                             double tolerance, Py_ssize_t *beyond)
{
    Py_ssize_t n = size < j->timestamp_body ? size : j->timestamp_body;
    *beyond = size - n;
    long long seen[3], receive = 0;
    long bad = 0;
    int n_seen = 0;
    for (Py_ssize_t offset = 4; offset <= 12 && offset < n; offset += 4) {
        long long value = 0;
        for (Py_ssize_t i = offset; i < offset + 4; i++)
            value = value << 8 | (i < n ? p[i] : 0); /* _field: the missing bytes read as zero */
        int free;
        if (request || offset == 4) {
            free = value == 0;
            for (int k = 0; !free && offset == 12 && k < n_seen; k++)
                free = seen[k] == value;
            if (!free && offset == 4 && (free = time_of_day(j, value, ts, tolerance)) < 0)
                return -1;
        } else if (offset == 8) {
            free = replier_time(j, value);
            receive = value;
        } else {
            free = soon_after(value, receive);
        }
        if (!free)
            bad += n - offset < 4 ? (long)(n - offset) : 4;
        seen[n_seen++] = value;
    }
    return bad;
}

/* Why a message's bytes are unexplained, its text made only where its flow keeps it (the flow's first reason): `text`
 * itself (borrowed) where `count` is 0, else `text` a template (str.format) of `count` ints. */
typedef struct {
    PyObject *text;
    int count;
    long long values[3];
} Reason;

/* str.format of an ASCII template whose only fields are "{}" (no other brace), with ints: each field the int's
 * decimal digits, as format gives them (a new flow's first reason, one per packet in a flood of spoofed sources).
 * NULL without an exception for any other template. */
static PyObject *format_ints(PyObject *template, const long long *values, int count)
{
    if (!PyUnicode_IS_COMPACT_ASCII(template))
        return NULL;
    const char *t = (const char *)PyUnicode_DATA(template), *end = t + PyUnicode_GET_LENGTH(template);
    char text[512];
    Py_ssize_t length = 0;
    int used = 0;
    for (;;) { /* the text up to the next field copied whole (memchr and memcpy, not a byte at a time) */
        const char *field = memchr(t, '{', (size_t)(end - t)), *stop = field != NULL ? field : end;
        if (memchr(t, '}', (size_t)(stop - t)) != NULL || length + (stop - t) >= (Py_ssize_t)sizeof text)
            return NULL;
        memcpy(text + length, t, (size_t)(stop - t));
        length += stop - t;
        if (field == NULL)
            break;
        if (field + 1 == end || field[1] != '}' || used == count)
            return NULL;
        long long value = values[used++];
        unsigned long long magnitude = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
        char digits[24];
        int wrote = 0;
        do
            digits[wrote++] = (char)('0' + magnitude % 10);
        while ((magnitude /= 10) != 0);
        if (value < 0)
            digits[wrote++] = '-';
        if (length + wrote >= (Py_ssize_t)sizeof text)
            return NULL;
        while (wrote > 0)
            text[length++] = digits[--wrote];
        t = field + 2;
    }
    if (used != count)
        return NULL;
    PyObject *made = PyUnicode_New(length, 127); /* ASCII: no decoding */
    if (made != NULL)
        memcpy(PyUnicode_1BYTE_DATA(made), text, (size_t)length);
    return made;
}

/* The reason's text: a new reference, or NULL with an exception. */
static PyObject *reason_text(const Reason *reason)
{
    if (reason->count == 0)
        return Py_NewRef(reason->text);
    PyObject *quick = format_ints(reason->text, reason->values, reason->count);
    if (quick != NULL || PyErr_Occurred())
        return quick;
    PyObject *args[4] = {reason->text, NULL, NULL, NULL}, *made = NULL;
    int failed = 0;
    for (int i = 0; i < reason->count; i++)
        failed |= (args[i + 1] = PyLong_FromLongLong(reason->values[i])) == NULL;
    if (!failed)
        made = PyObject_VectorcallMethod(str_format, args, (size_t)reason->count + 1, NULL);
    for (int i = 0; i < reason->count; i++)
        Py_XDECREF(args[i + 1]);
    return made;
}

/* fingerprints.fill_charge (its reference) of the run p[0:n]: 0 for a run of a free byte, or a phased fill from its
 * first byte's place; 1 for a single other byte; a pattern repeated, its length; else n. */
static Py_ssize_t fill_charge(const Judged *j, const unsigned char *p, Py_ssize_t n, Py_ssize_t max_pattern)
{
    if (n == 0 || (j->free_byte[p[0]] && same_bytes(p, 1, n, p[0])))
        return 0;
    if (n == 1)
        return 1;
    for (Py_ssize_t f = 0; f < PyTuple_GET_SIZE(j->fills); f++) {
        Py_ssize_t at = j->phase[f][p[0]];
        PyObject *fill = PyTuple_GET_ITEM(j->fills, f);
        if (at >= 0 && n <= PyBytes_GET_SIZE(fill) - at && memcmp(PyBytes_AS_STRING(fill) + at, p, (size_t)n) == 0)
            return 0;
    }
    Py_ssize_t q = repeat_period(p, n, max_pattern);
    return q ? q : n;
}

/* nonecho._headless (its reference) for a headless packet (pkt.runs: each run of its payload's offset and length, in
 * order): each run charged as fill_charge charges it, and the offset of the first charged for the reason. 1 with
 * *novel and *reason; 0 where its runs are not what the reassembler makes (pairs of ints, lengths above 0 that add up
 * to the payload's), the reference's to judge; -1 with an exception. */
static int headless_here(const NovelRequests *novel_cfg, PyObject *pkt, PyObject *payload, long *novel,
                         Reason *reason)
{
    const Judged *j = &novel_cfg->judged;
    PyObject *runs = SLOT(pkt, runs_slot);
    if (runs == NULL || !PyTuple_CheckExact(runs))
        return 0;
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(payload);
    Py_ssize_t n = PyBytes_GET_SIZE(payload), at = 0;
    long long unexplained = 0, first = -1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(runs); i++) {
        PyObject *run = PyTuple_GET_ITEM(runs, i);
        if (!PyTuple_CheckExact(run) || PyTuple_GET_SIZE(run) != 2 || !PyLong_CheckExact(PyTuple_GET_ITEM(run, 0))
            || !PyLong_CheckExact(PyTuple_GET_ITEM(run, 1)))
            return 0;
        int wide_offset, wide_length;
        long long offset = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(run, 0), &wide_offset);
        long long length = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(run, 1), &wide_length);
        if (wide_offset || wide_length || length <= 0 || length > n - at)
            return 0;
        Py_ssize_t charge = fill_charge(j, p + at, (Py_ssize_t)length, novel_cfg->max_pattern);
        if (charge && first < 0)
            first = offset;
        unexplained += charge;
        at += (Py_ssize_t)length;
    }
    if (at != n)
        return 0;
    *novel = (long)unexplained;
    *reason = unexplained ? (Reason){j->headless, 2, {unexplained, first}} : (Reason){empty_str, 0, {0}};
    return 1;
}

/* nonecho.unexplained_bytes(pkt, tolerance) (its reference) for an echo request with the code `coded` (_echo_code:
 * nmap's IE probe free, else the code and the payload unless a template explains it) or an IPv4 timestamp message
 * (_v4: its body's fields, _timestamp_fields, and the bytes beyond the body) or a headless packet (_headless:
 * headless_here), judged here from the type and IP version handle_packet read: 1 with *novel and *reason, 0 for any
 * other message (the function's to judge), -1 with an exception. */
static int judged_here(FastPath *self, PyObject *pkt, PyObject *payload, long icmp_type, int ipv6, long coded,
                       long *novel, Reason *reason)
{
    const Judged *j = &self->novel.judged;
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(payload);
    Py_ssize_t n = PyBytes_GET_SIZE(payload), beyond;
    PyObject *ts = SLOT(pkt, packet_slot[P_TS]); /* a float: handle_packet checked it */
    *reason = (Reason){empty_str, 0, {0}};
    *novel = 0;
    if (icmp_type == j->headless_icmp_type && Py_IS_TYPE(pkt, headless_type))
        return headless_here(&self->novel, pkt, payload, novel, reason);
    if (coded) {
        if (coded == j->nmap_code && n == PyBytes_GET_SIZE(j->nmap_payload)
            && memcmp(p, PyBytes_AS_STRING(j->nmap_payload), (size_t)n) == 0)
            return 1;
        int explained = n == 0 ? 1 : template_explains(&self->novel, payload, ts);
        if (explained < 0)
            return -1;
        *novel = 1 + (explained ? 0 : (long)n);
        *reason = (Reason){j->echo_code, 1, {coded}};
        return 1;
    }
    if (ipv6 || (icmp_type != 13 && icmp_type != 14))
        return 0;
    long fields = timestamp_fields(j, p, n, icmp_type == 13, PyFloat_AS_DOUBLE(ts), self->tolerance, &beyond);
    if (fields < 0)
        return -1;
    *novel = (long)beyond + fields;
    if (beyond)
        *reason = (Reason){j->beyond, 3, {beyond, j->timestamp_body, icmp_type}};
    else if (fields)
        reason->text = j->timestamp;
    return 1;
}

PyDoc_STRVAR(headless_bytes_doc,
             "headless_bytes(pkt) -> (unexplained, reason) | None\n\n"
             "other_message's judge of a headless packet (nonecho._headless, the reference: its runs charged as\n"
             "fingerprints.fill_charge charges them); None where it leaves the packet to the reference.");

static PyObject *fast_headless_bytes(FastPath *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1 || !Py_IS_TYPE(args[0], headless_type) || self->novel.judged.unexplained == NULL
        || !PyBytes_CheckExact(SLOT(args[0], packet_slot[P_PAYLOAD]))) {
        PyErr_SetString(PyExc_TypeError, "headless_bytes(pkt: HeadlessPacket with a payload), on a path given "
                                         "novel_requests");
        return NULL;
    }
    long novel;
    Reason reason;
    int here = headless_here(&self->novel, args[0], SLOT(args[0], packet_slot[P_PAYLOAD]), &novel, &reason);
    if (here <= 0)
        return here < 0 ? NULL : Py_NewRef(Py_None);
    PyObject *text = reason_text(&reason);
    PyObject *answer = text == NULL ? NULL : Py_BuildValue("(lO)", novel, text);
    Py_XDECREF(text);
    return answer;
}

PyDoc_STRVAR(timestamp_bytes_doc,
             "timestamp_bytes(payload, request, ts, tolerance) -> (fields, beyond)\n\n"
             "other_message's judge of an IPv4 timestamp message: the unexplained bytes of its body's fields\n"
             "(nonecho._timestamp_fields, the reference) and the bytes beyond its body (nonecho._v4's).");

static PyObject *fast_timestamp_bytes(FastPath *self, PyObject *const *args, Py_ssize_t nargs)
{
    const Judged *j = &self->novel.judged;
    if (nargs != 4 || !PyBytes_Check(args[0]) || !PyFloat_Check(args[2]) || !PyFloat_Check(args[3])
        || j->unexplained == NULL) {
        PyErr_SetString(PyExc_TypeError, "timestamp_bytes(payload: bytes, request, ts: float, tolerance: float), on "
                                         "a path given novel_requests");
        return NULL;
    }
    int request = PyObject_IsTrue(args[1]);
    if (request < 0)
        return NULL;
    Py_ssize_t beyond;
    long fields = timestamp_fields(j, (const unsigned char *)PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]),
                                   request, PyFloat_AS_DOUBLE(args[2]), PyFloat_AS_DOUBLE(args[3]), &beyond);
    return fields < 0 ? NULL : Py_BuildValue("(ln)", fields, beyond);
}

/* A non-echo message (benign_error did not pass it), or an echo request with a code other than 0 (`coded`, that code):
 * Detector._on_other, when none of what only the Python detector takes is in it. Checked before anything changes:
 * the path takes novel requests and makes flows (novel_requests and first_requests given); a new flow's pair
 * may_make_flow, a flow the table has is of the reference's types; nonecho.unexplained_bytes (which changes nothing)
 * judged here for an echo request with a code, a timestamp message and a headless packet (judged_here), else asked
 * as the reference asks it, its answer an int and a str. Then, in _on_other's order: a coded request remembered
 * for its reply (matched pairing: remember_request, its key's echo_key with the code); none of its bytes unexplained:
 * counted, as _on_other returns; else the flow made (counted) or touched, its message and other bytes, its non-echo
 * novel bytes and first reason, the novel bytes added as _add_novel adds them with their share of the hosts'
 * memories while the flow is under novel_bytes_threshold and not allowlisted (spread_share), and left_to_evaluate's
 * answer. False: nothing changed. */
static PyObject *other_message(FastPath *self, PyObject *pkt, Detector *state, PyObject *payload, long icmp_type,
                               int ipv6, long coded)
{
    static const int needed[] = {F_LAST, F_N, F_OTHER_BYTES, F_NONECHO_NOVEL, F_NONECHO_REASON, F_NOVEL_BYTES,
                                 F_ALLOWLISTED};
    const NovelRequests *novel_cfg = &self->novel;
    if (novel_cfg->explain == NULL || self->flow_template == NULL)
        Py_RETURN_FALSE;
    PyObject *key = PyTuple_Pack(2, SLOT(pkt, packet_slot[P_SRC]), SLOT(pkt, packet_slot[P_DST]));
    if (key == NULL)
        return NULL;
    PyObject *flow = PyDict_GetItemWithError(state->flows, key), *answer = NULL, *result = NULL, *size = NULL;
    PyObject *echo = NULL; /* a coded request's flows.echo_key (seq | code << 16), its reply's to pair with */
    Reason reason; /* why its bytes are unexplained */
    long novel_bytes = 0, novel = 0, seq;
    PyObject *allowlisted = Py_False;
    if (flow == NULL) {
        int makes = PyErr_Occurred() ? -1 : may_make_flow(self, key);
        if (makes <= 0) {
            result = makes < 0 ? NULL : Py_NewRef(Py_False);
            goto done;
        }
    } else {
        allowlisted = SLOT(flow, flow_slot[F_ALLOWLISTED]);
        if (!FLOW_OK(flow, needed) || long_slot(flow, flow_slot[F_NOVEL_BYTES], &novel_bytes) < 0
            || !PyUnicode_CheckExact(SLOT(flow, flow_slot[F_NONECHO_REASON]))
            || (allowlisted != Py_True && allowlisted != Py_False)) {
            result = Py_NewRef(Py_False);
            goto done;
        }
    }
    if (coded && self->matched
        && (long_slot(pkt, packet_slot[P_SEQ], &seq) < 0 || (echo = PyLong_FromLong(seq | coded << 16)) == NULL)) {
        result = PyErr_Occurred() ? NULL : Py_NewRef(Py_False);
        goto done;
    }
    int here = judged_here(self, pkt, payload, icmp_type, ipv6, coded, &novel, &reason);
    if (here < 0)
        goto done;
    if (!here) { /* nonecho.unexplained_bytes asked: its reason borrowed from its answer, held until the end */
        PyObject *args[2] = {pkt, novel_cfg->tolerance};
        answer = PyObject_Vectorcall(novel_cfg->judged.unexplained, args, 2, NULL);
        if (answer == NULL)
            goto done;
        reason.text = PyTuple_CheckExact(answer) && PyTuple_GET_SIZE(answer) == 2 ? PyTuple_GET_ITEM(answer, 1) : NULL;
        int overflow = 0;
        if (reason.text != NULL && PyLong_CheckExact(PyTuple_GET_ITEM(answer, 0)))
            novel = PyLong_AsLongAndOverflow(PyTuple_GET_ITEM(answer, 0), &overflow);
        if (reason.text == NULL || !PyUnicode_CheckExact(reason.text) || !PyLong_CheckExact(PyTuple_GET_ITEM(answer, 0))
            || overflow || novel < 0) {
            result = PyErr_Occurred() ? NULL : Py_NewRef(Py_False);
            goto done;
        }
    }
    /* taken: what _on_other changes, in its order */
    PyObject *ts = SLOT(pkt, packet_slot[P_TS]);
    count_packet(state, ts, S_OTHER_ICMP);
    if (echo != NULL) { /* its reply must still pair with it */
        PyObject *sent = new_sketch(payload);
        int failed = sent == NULL || remember_request(self, state, pkt, sent, echo) < 0;
        Py_XDECREF(sent);
        if (failed)
            goto done;
    }
    if (novel == 0) { /* benign errors and informational messages keep no state */
        result = Py_NewRef(Py_None);
        goto done;
    }
    size = PyLong_FromSsize_t(PyBytes_GET_SIZE(payload));
    if (size == NULL)
        goto done;
    if ((flow = message_flow(self, state, pkt, key, flow, size, flow_slot[F_OTHER_BYTES])) == NULL)
        goto done;
    PyObject *amount = PyLong_FromLong(novel);
    int failed = amount == NULL || add_to_slot(flow, flow_slot[F_NONECHO_NOVEL], amount) < 0;
    Py_XDECREF(amount);
    if (!failed && PyUnicode_GET_LENGTH(SLOT(flow, flow_slot[F_NONECHO_REASON])) == 0) {
        PyObject *text = reason_text(&reason);
        failed = text == NULL;
        if (!failed)
            set_slot(flow, flow_slot[F_NONECHO_REASON], text);
        Py_XDECREF(text);
    }
    int unlisted = allowlisted == Py_False;
    if (!failed)
        result = novel_added(self, state, pkt, flow, key, novel, novel_bytes, unlisted, 0, unlisted);
    Py_DECREF(flow);
done:
    Py_DECREF(key);
    Py_XDECREF(echo);
    Py_XDECREF(answer);
    Py_XDECREF(size);
    return result;
}

/* Detector._consistent for an unsolicited reply whose payload a template explains (`benign`) on `flow` (NULL: a new
 * one; `session_ident` its run's identifier): 1 where it accepts it, with what that changes: *restart where the
 * reply's identifier is not the run's (the run starts over: its session the template's, no clock, no charge for a
 * reply), else *session a session to keep (the template's, where the run has none yet; NULL: nothing to set);
 * 0 where it refuses it (another session within the run: _novelty counts the reply's bytes); -1 with an exception.
 * *session is a new reference or NULL. */
static int reply_template(PyObject *flow, PyObject *benign, long ident, long session_ident, int *restart,
                          PyObject **session)
{
    *restart = 0;
    *session = NULL;
    PyObject *given = PyObject_GetAttr(benign, str_session);
    if (given == NULL)
        return -1;
    if (flow == NULL || ident != session_ident) {
        *restart = 1;
        *session = given;
        return 1;
    }
    PyObject *kept = SLOT(flow, flow_slot[F_SESSION]);
    if (given == Py_None || kept == Py_None) {
        if (given != Py_None)
            *session = Py_NewRef(given);
        Py_DECREF(given);
        return 1;
    }
    int same = PyObject_RichCompareBool(kept, given, Py_EQ);
    Py_DECREF(given);
    return same;
}

/* Detector._consistent's clock for an unsolicited reply a template explains (`benign`, reply_template accepted it;
 * `restart`: its run starts): 1 with *embedded (a new reference to the template's time, NULL where it has none) and
 * *offset (the time less `ts`) where _consistent accepts the clock without a charge (a new run's: not before 1 s
 * ahead of time 0; in the run: clock_in_run), 0 with restart set to -1 where the Python detector judges it (it
 * would refuse the template or charge the clock), -1 on an error. A sender of unsolicited replies chose their
 * clocks: one whose offset to the capture clock jumps carried ~29 bits a reply (red team, 2026-12-08). */
static int reply_clock(FastPath *self, PyObject *flow, PyObject *benign, int *restart, double ts, PyObject **embedded,
                       double *offset)
{
    Template t;
    if (template_read(benign, &t) < 0)
        return -1;
    int answer = 1;
    if (t.embedded != NULL) {
        if (*restart) {
            answer = !run_start_refused(&t);
            *offset = t.time - ts;
        } else {
            answer = clock_in_run(self, flow, t.time, t.wraps, ts, offset);
        }
        if (answer)
            *embedded = Py_NewRef(t.embedded);
        else
            *restart = -1;
    }
    template_done(&t);
    return answer;
}

/* An echo reply that answers no pending request (matched pairing): Detector._on_reply with _unpaired and _novelty,
 * when none of what only the Python detector takes is in it. Checked before anything changes: the path takes novel
 * requests and makes flows (novel_requests and first_requests given); UnpairedEchoReply is off (_unpaired would raise
 * it); a new flow's pair may_make_flow, a flow the table has is of the reference's types; the requests' flow (the
 * other direction), if any, too; the payload is not empty. It repeats the flow's last payload (nothing novel), or a
 * template explains it (explained, asked as _novelty asks) and _consistent accepts it (reply_template: a monitor's
 * replies seen without their requests, asymmetric routing), or it differs from the flow's last and no template
 * explains it. Then, in _on_reply's order: the flow made (counted) or touched, its reply bytes, the requests' flow's
 * received bytes, the reply counted unpaired, its header charged as a request's (header_apply), its sketch kept; a
 * template's: the payload counted ignored, the run started over or its session kept as _consistent does, and the
 * flow evaluated where the header charged bytes; else the tool tracker unless the flow has a tool (tool_seen, asked
 * without the rest's hash, as _on_reply asks), the reply counted as differing, its novel bytes (all of a new flow's;
 * novel_between the flow's last) added as _add_novel adds them, with their share of the hosts' memories while the
 * flow is under novel_bytes_threshold and not allowlisted (spread_share); and left_to_evaluate's answer. False:
 * nothing changed. */
static PyObject *unpaired_reply(FastPath *self, PyObject *pkt, Detector *state, PyObject *payload, PyObject *key,
                                PyObject *flow, PyObject *request_flow)
{
    static const int needed[] = {F_LAST, F_N, F_RESP_BYTES, F_LAST_SKETCH, F_TOOL, F_REPLY_DIFFERS, F_NOVEL_BYTES,
                                 F_ALLOWLISTED, F_SESSION_IDENT, F_SESSION};
    static const int request_needed[] = {F_RECEIVED_BYTES};
    const NovelRequests *novel_cfg = &self->novel;
    Py_ssize_t n = PyBytes_GET_SIZE(payload);
    long novel_bytes = 0, session_ident = -1;
    PyObject *previous = Py_None, *allowlisted = Py_False;
    if (novel_cfg->explain == NULL || self->flow_template == NULL || novel_cfg->unpaired_on || n == 0
        || (request_flow != NULL && !FLOW_OK(request_flow, request_needed)))
        Py_RETURN_FALSE;
    if (flow == NULL) {
        int makes = may_make_flow(self, key);
        if (makes <= 0)
            return makes < 0 ? NULL : Py_NewRef(Py_False);
    } else {
        if (!FLOW_OK(flow, needed) || long_slot(flow, flow_slot[F_NOVEL_BYTES], &novel_bytes) < 0
            || long_slot(flow, flow_slot[F_SESSION_IDENT], &session_ident) < 0
            || !PyUnicode_CheckExact(SLOT(flow, flow_slot[F_TOOL])))
            Py_RETURN_FALSE;
        previous = SLOT(flow, flow_slot[F_LAST_SKETCH]);
        allowlisted = SLOT(flow, flow_slot[F_ALLOWLISTED]);
        if (allowlisted != Py_True && allowlisted != Py_False)
            Py_RETURN_FALSE;
    }
    /* its header against the flow's last (Detector._sent_header: a sender of unsolicited replies chooses it as a
     * requester does), charged as a request's (header_apply) unless in step or the flow's first; IP options are
     * Python's */
    long last_ident = -1, last_seq = -1, last_size = -1, stride = 1, ident, seq;
    PyObject *options = SLOT(pkt, packet_slot[P_OPTIONS]);
    if ((flow != NULL && (long_slot(flow, flow_slot[F_LAST_IDENT], &last_ident) < 0
                          || long_slot(flow, flow_slot[F_LAST_SEQ], &last_seq) < 0
                          || long_slot(flow, flow_slot[F_LAST_SIZE], &last_size) < 0
                          || long_slot(flow, flow_slot[F_SEQ_STRIDE], &stride) < 0
                          || !PyFloat_CheckExact(SLOT(flow, flow_slot[F_LAST_REQUEST_TS]))))
        || long_slot(pkt, packet_slot[P_IDENT], &ident) < 0 || long_slot(pkt, packet_slot[P_SEQ], &seq) < 0
        || options == NULL || !PyBytes_CheckExact(options) || PyBytes_GET_SIZE(options) > 0)
        Py_RETURN_FALSE;
    int in_step = ident == last_ident && seq == ((last_seq + stride) & 0xFFFF) && n == (Py_ssize_t)last_size;
    PyObject *current = new_sketch(payload);
    if (current == NULL)
        return NULL;
    int tails_differ = 0;
    Py_ssize_t novel = previous == Py_None ? n : novel_between(current, previous, &tails_differ);
    PyObject *ts = SLOT(pkt, packet_slot[P_TS]), *result = NULL, *size = NULL, *taken = NULL, *session = NULL;
    int templated = 0, restart = 0; /* a template's payload _consistent accepts, and what that changes */
    PyObject *embedded = NULL; /* its clock, where it has one (*offset: less the capture time) */
    double offset = 0.0;
    if (novel > 0) { /* _novelty: a template's? */
        PyObject *benign = explained(novel_cfg, payload, ts, 1);
        templated = benign == NULL ? -1
            : benign == Py_None ? 0 : reply_template(flow, benign, ident, session_ident, &restart, &session);
        if (templated > 0)
            templated = reply_clock(self, flow, benign, &restart, PyFloat_AS_DOUBLE(ts), &embedded, &offset);
        Py_XDECREF(benign);
        if (templated < 0)
            goto done;
        if (restart < 0) { /* a clock this path leaves to the Python detector */
            result = Py_NewRef(Py_False);
            goto done;
        }
        if (templated)
            novel = 0;
    } else if (novel < 0) { /* a sketch this path does not know */
        result = Py_NewRef(Py_False);
        goto done;
    }
    /* taken: what _on_reply changes, in its order */
    if ((size = PyLong_FromSsize_t(n)) == NULL)
        goto done;
    count_packet(state, ts, S_ECHO_REPLIES);
    if ((taken = flow = message_flow(self, state, pkt, key, flow, size, flow_slot[F_RESP_BYTES])) == NULL)
        goto done;
    if (request_flow != NULL && add_to_slot(request_flow, flow_slot[F_RECEIVED_BYTES], size) < 0)
        goto done;
    state->counts[S_UNPAIRED_REPLIES]++;
    Py_ssize_t charged = 0;
    int told = 0;
    if (!in_step && last_ident >= 0) { /* Detector._header: a reply's starts no run of the requests' (_run_free) */
        Header header = {last_ident, last_seq, last_size, ident, seq};
        int run_not_free = state->run_not_free;
        int failed = header_apply(self, state, pkt, flow, size, &header, novel_bytes, allowlisted == Py_False, &told,
                                  &charged);
        state->run_not_free = run_not_free;
        if (failed)
            goto done;
    } else if ((!in_step && (set_slot_long(flow, flow_slot[F_LAST_IDENT], ident) < 0
                             || set_slot_long(flow, flow_slot[F_LAST_SIZE], (long)n) < 0))
               || set_slot_long(flow, flow_slot[F_LAST_SEQ], seq) < 0) {
        goto done;
    }
    set_slot(flow, flow_slot[F_LAST_REQUEST_TS], ts);
    set_slot(flow, flow_slot[F_LAST_SKETCH], current);
    int unlisted = allowlisted == Py_False;
    if (novel == 0) { /* the flow's last payload, or a template's: evaluated where the header charged bytes */
        if (templated && restart /* a reply's run starts with its clock, if it has one */
            && start_run(flow, SLOT(pkt, packet_slot[P_IDENT]), session != NULL ? session : Py_None, embedded,
                         offset) < 0)
            goto done;
        if (templated && !restart && session != NULL)
            set_slot(flow, flow_slot[F_SESSION], session);
        if (templated && !restart && embedded != NULL && keep_clock(flow, embedded, offset) < 0)
            goto done; /* the run's clock moves on (clock_in_run accepted it) */
        state->counts[S_IGNORED_PAYLOADS] += templated;
        result = left_to_evaluate(self, state, flow, key, ts, told, charged > 0 && unlisted);
        goto done;
    }
    if (PyUnicode_GET_LENGTH(SLOT(flow, flow_slot[F_TOOL])) == 0
        && tool_seen(self, pkt, flow, payload, Py_None) < 0) /* _recognise_tool(flow, pkt): no rest */
        goto done;
    if (add_to_slot(flow, flow_slot[F_REPLY_DIFFERS], one) == 0)
        result = novel_added(self, state, pkt, flow, key, novel, novel_bytes + charged, unlisted, told, unlisted);
done:
    Py_XDECREF(taken);
    Py_XDECREF(size);
    Py_XDECREF(session);
    Py_XDECREF(embedded);
    Py_DECREF(current);
    return result;
}

/* Detector._request_done for a taken request whose payload added no novel bytes (the flow's last payload, a
 * template's): the flow's last request time, the tool tracker unless the flow has a tool (tool_seen, shown `sketch`),
 * the request remembered for its reply (as `sketch`), then left_to_evaluate's answer, the flow evaluated where its
 * header charged bytes (`charged`) or a tool was found, and it is `unlisted`; `told`: a share of the hosts' memories
 * raised ExfilSpread. NULL with an exception. */
static PyObject *request_end(FastPath *self, Detector *state, PyObject *pkt, PyObject *flow, PyObject *key,
                             PyObject *payload, PyObject *sketch, Py_ssize_t charged, int told, int unlisted)
{
    PyObject *ts = SLOT(pkt, packet_slot[P_TS]);
    set_slot(flow, flow_slot[F_LAST_REQUEST_TS], ts);
    int recognised = PyUnicode_GET_LENGTH(SLOT(flow, flow_slot[F_TOOL])) != 0 ? 0
                                                                             : tool_seen(self, pkt, flow, payload, sketch);
    if (recognised < 0 || (self->matched && remember_request(self, state, pkt, sketch, SLOT(pkt, packet_slot[P_SEQ])) < 0))
        return NULL;
    return left_to_evaluate(self, state, flow, key, ts, told, (charged > 0 || recognised) && unlisted);
}

/* Whether the template of `benign` draws its session afresh every run (fingerprints.RANDOM_SESSION_TEMPLATES, read
 * from the module once): 1, 0, or -1 with an exception. */
static int random_session(PyObject *benign)
{
    static PyObject *templates;
    if (templates == NULL) {
        PyObject *module = PyImport_ImportModule("icmpsensor.detect.fingerprints");
        templates = module == NULL ? NULL : PyObject_GetAttrString(module, "RANDOM_SESSION_TEMPLATES");
        Py_XDECREF(module);
        if (templates == NULL)
            return -1;
    }
    PyObject *name = PyObject_GetAttr(benign, str_template);
    int found = name == NULL ? -1 : PySequence_Contains(templates, name);
    Py_XDECREF(name);
    return found;
}

/* _on_request for a request of a flow the table has, whose header is not the flow's next (`header`: a new identifier,
 * a sequence number out of step, a new size) and whose payload a template explains (`benign`): a monitor's next
 * probe (pro-bing starts a run with a new identifier and tracker every probe), a ping that changed its size. Checked
 * before anything changes, as Detector._consistent would decide: in the run (the identifier the run's), the
 * template's session and clock as template_in_run accepts them; a new run, a clock that does not wrap at least
 * a second after 0, and whether its session is another than the run's. Then in _on_request's order: the flow
 * touched, the header charged (header_apply), the sketch kept, _consistent's changes: a new run's other session
 * charged as capacity.pattern_bits charges it (free where the run was and the parameter budget has a token, or the
 * template draws it every run), the run started over (its identifier, session, clock and offset), or in the run its
 * clock and offset kept; the payload counted ignored; the tool tracker, the request remembered, and the flow
 * evaluated where bytes were charged or a tool found (left_to_evaluate). False: nothing changed. */
static PyObject *templated_request(FastPath *self, PyObject *pkt, Detector *state, PyObject *payload, PyObject *key,
                                   PyObject *flow, const Header *header, PyObject *benign, PyObject *current,
                                   Py_ssize_t novel_bytes, int unlisted)
{
    Template t;
    if (template_read(benign, &t) < 0)
        return NULL;
    PyObject *ts = SLOT(pkt, packet_slot[P_TS]), *result = NULL, *embedded = NULL, *size = NULL;
    PyObject *session = SLOT(flow, flow_slot[F_SESSION]);
    double offset = 0.0, now = PyFloat_AS_DOUBLE(ts);
    long session_ident;
    int new_run = 0, repattern = 0, drawn = 0, taken = 1;
    if (long_slot(flow, flow_slot[F_SESSION_IDENT], &session_ident) < 0) {
        taken = 0;
    } else if (!(new_run = header->ident != session_ident)) {
        taken = template_in_run(self, flow, &t, ts, &embedded, &offset);
    } else if (run_start_refused(&t)) {
        taken = 0;
    } else if (session != Py_None && t.session != Py_None) { /* a new run's other session: charged, or free */
        int same = PyObject_RichCompareBool(session, t.session, Py_EQ);
        repattern = same < 0 ? -1 : !same;
        drawn = repattern > 0 ? random_session(benign) : 0;
        if (repattern < 0 || drawn < 0 || (repattern && !PyBytes_CheckExact(t.session)))
            taken = repattern < 0 || drawn < 0 ? -1 : 0;
    }
    if (taken <= 0) {
        result = taken < 0 ? NULL : Py_NewRef(Py_False);
        goto done;
    }
    /* taken: what _on_request changes, in its order */
    if ((size = PyLong_FromSsize_t(PyBytes_GET_SIZE(payload))) == NULL)
        goto done;
    count_packet(state, ts, S_ECHO_REQUESTS);
    Py_ssize_t charged = 0, before = novel_bytes;
    int told = 0;
    if (touch_flow(state, key, flow, ts, size, flow_slot[F_ORIG_BYTES]) < 0
        || header_apply(self, state, pkt, flow, size, header, novel_bytes, unlisted, &told, &charged) < 0)
        goto done;
    set_slot(flow, flow_slot[F_LAST_SKETCH], current);
    before += charged;
    if (repattern) { /* capacity.pattern_bits: free where the run was and so was the change */
        PyObject *channels = SLOT(flow, flow_slot[F_CHANNELS]); /* made by header_apply */
        int free = state->run_not_free ? 0
            : drawn ? 1 : take_token(channels, channels_slot[C_PARAM_DUE], now, param_budget, param_refill);
        Py_ssize_t made = free < 0 ? -1 : free ? 0
            : charge_bits(self, state, pkt, flow, channels, str_pattern, 8.0 * (double)PyBytes_GET_SIZE(t.session),
                          &before, unlisted, &told);
        if (made < 0)
            goto done;
        charged += made;
    }
    if (new_run) { /* _consistent's new run: its identifier, session, clock and offset */
        if (start_run(flow, SLOT(pkt, packet_slot[P_IDENT]), t.session, t.embedded, t.time - now) < 0)
            goto done;
    } else if (embedded != NULL && keep_clock(flow, embedded, offset) < 0) { /* in the run */
        goto done;
    }
    state->counts[S_IGNORED_PAYLOADS]++;
    result = request_end(self, state, pkt, flow, key, payload, current, charged, told, unlisted);
done:
    template_done(&t);
    Py_XDECREF(embedded);
    Py_XDECREF(size);
    return result;
}

/* Whether Detector._as_fields would find a token in the field readings' budget at `ts` (capacity.take_token on the
 * detector's _fields_due, nothing taken: the Python detector takes it). 1, 0, or -1 with an exception set. */
static int field_reading_free(FastPath *self, PyObject *ts)
{
    PyObject *due = PyDict_GetItemWithError(self->detector, str_fields_due);
    if (due == NULL || !PyFloat_CheckExact(due) || !PyFloat_CheckExact(ts) || fields_refill <= 0.0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "the detector's _fields_due must be a float (capacity bound)");
        return -1;
    }
    double after;
    return token_free(PyFloat_AS_DOUBLE(due), PyFloat_AS_DOUBLE(ts), fields_burst, fields_refill, &after);
}

/* An echo request whose payload neither repeats the flow's last nor is a template's: Detector._on_request
 * with _novelty's checks (explain, random padding, counter or clock fields) made before anything changes, then the
 * sender's memory (HostTable.touch, SpreadMemory.seen) and the novel bytes added, and while the flow is under
 * novel_bytes_threshold their share given to the hosts' memories (the detector's _spread, spread_share). Returns
 * False (nothing changed), None (no novel bytes after all: a payload the host sent lately), left_to_evaluate's answer
 * (True, (), or (flow,) for Detector._finish to evaluate the flow). Without first_requests only flows past the
 * threshold are taken (a share of the hosts'
 * memories needs its settings). `header`: the request's header, not its flow's next (in step, the same size), what
 * it carried charged first (header_apply: Detector._header); NULL: only the flow's last sequence number moves on.
 * `options`: the request's IP options, charged after the header (options_apply), or NULL: none. */
static PyObject *novel_request(FastPath *self, PyObject *pkt, Detector *state, PyObject *payload, PyObject *key,
                               PyObject *flow, PyObject *tool, const Header *header, PyObject *options)
{
    static const int needed[] = {F_NOVEL_BYTES, F_CHANGED_REQUESTS, F_ALLOWLISTED};
    const NovelRequests *novel_cfg = &self->novel;
    long novel_bytes;
    if (novel_cfg->explain == NULL || !FLOW_OK(flow, needed)
        || long_slot(flow, flow_slot[F_NOVEL_BYTES], &novel_bytes) < 0)
        Py_RETURN_FALSE;
    PyObject *allowlisted = SLOT(flow, flow_slot[F_ALLOWLISTED]);
    if (allowlisted != Py_True && allowlisted != Py_False)
        Py_RETURN_FALSE;
    /* Detector._add_novel adds to the hosts' memories (_spread) until the flow reaches novel_bytes_threshold; with
     * the detector's _spread (first_requests) that is called from here; the flow's evaluation is worked out after
     * (left_to_evaluate), where it is not allowlisted (_evaluate returns at once) */
    int spreads = allowlisted == Py_False && novel_bytes < novel_cfg->novel_threshold;
    if (spreads && self->flow_template == NULL)
        Py_RETURN_FALSE;
    PyObject *ts = SLOT(pkt, packet_slot[P_TS]), *seq = SLOT(pkt, packet_slot[P_SEQ]);
    PyObject *previous = SLOT(flow, flow_slot[F_LAST_SKETCH]);
    PyObject *current = new_sketch(payload);
    if (current == NULL)
        return NULL;
    PyObject *result = NULL;
    /* _novelty's checks, none of which changes anything: no benign template explains it (explain called only where
     * a template's first tests pass; a template's under a header that is not the flow's next: templated_request) ... */
    PyObject *benign = explained(novel_cfg, payload, ts, 0);
    if (benign == NULL)
        goto done;
    if (benign != Py_None) {
        result = header != NULL && options == NULL && PyBytes_GET_SIZE(payload) > 0 /* empty: _novelty not asked */
            ? templated_request(self, pkt, state, payload, key, flow, header, benign, current, novel_bytes,
                                allowlisted == Py_False)
            : Py_NewRef(Py_False);
        Py_DECREF(benign);
        goto done;
    }
    Py_DECREF(benign);
    int tails_differ = 0;
    Py_ssize_t novel = novel_between(current, previous, &tails_differ);
    if (novel <= 0) { /* a sketch this path does not know */
        result = Py_NewRef(Py_False);
        goto done;
    }
    /* ... it is no random-padding library's ... */
    int is_padded = randomly_padded(novel_cfg, payload, seq);
    if (is_padded != 0) {
        result = is_padded < 0 ? NULL : Py_NewRef(Py_False);
        goto done;
    }
    /* ... nor a few changed places that may read as counters or clocks (Detector._as_fields), while the readings'
     * budget lasts: past it the bytes are charged as they are, here (and counted) */
    if (novel <= novel_cfg->field_novel && !tails_differ) {
        int readable = field_reading_free(self, ts);
        if (readable != 0) {
            result = readable < 0 ? NULL : Py_NewRef(Py_False);
            goto done;
        }
        state->counts[S_FIELDS_UNREAD]++;
    }
    /* taken: what _on_request changes, in its order */
    PyObject *size = PyLong_FromSsize_t(PyBytes_GET_SIZE(payload));
    if (size == NULL)
        goto done;
    count_packet(state, ts, S_ECHO_REQUESTS);
    int told = 0;
    Py_ssize_t charged = 0;
    int failed = touch_flow(state, key, flow, ts, size, flow_slot[F_ORIG_BYTES]);
    if (failed == 0 && header != NULL)
        failed = header_apply(self, state, pkt, flow, size, header, novel_bytes, allowlisted == Py_False, &told,
                              &charged);
    else if (failed == 0)
        set_slot(flow, flow_slot[F_LAST_SEQ], seq);
    if (failed == 0 && options != NULL)
        failed = options_apply(self, state, pkt, flow, options, novel_bytes + charged, allowlisted == Py_False, &told,
                               &charged);
    Py_DECREF(size);
    if (failed < 0)
        goto done;
    set_slot(flow, flow_slot[F_LAST_SKETCH], current);
    novel_bytes += charged;
    spreads = allowlisted == Py_False && novel_bytes < novel_cfg->novel_threshold;
    result = request_rest(self, state, pkt, key, payload, flow, current, PyUnicode_GET_LENGTH(tool) != 0, novel,
                          novel_bytes, spreads, allowlisted == Py_False, charged, told);
done:
    Py_DECREF(current);
    return result;
}

/* _on_request for a request of a flow the table has that repeats the flow's last payload under a header that is not
 * the flow's next and is charged (`header`: a new identifier, a sequence number out of step where free_seq_step found
 * no free step): traceroute -I's probes, a zero-filled ping whose identifier or sequence number jumps. No novel bytes
 * (_novelty is not asked: the payload is the flow's last); checked before anything changes: the path takes novel
 * requests (their charges may give the hosts' memories a share), the flow's fields of the reference's types. Then in
 * _on_request's order: the flow touched, the header charged (header_apply), the sketch kept (the reference stores an
 * equal one), the tool tracker, the request remembered, and the flow evaluated where bytes were charged or a tool
 * found (left_to_evaluate). False: nothing changed. */
static PyObject *repeated_request(FastPath *self, PyObject *pkt, Detector *state, PyObject *payload, PyObject *key,
                                  PyObject *flow, const Header *header)
{
    static const int needed[] = {F_NOVEL_BYTES, F_ALLOWLISTED};
    const NovelRequests *novel_cfg = &self->novel;
    long novel_bytes;
    PyObject *allowlisted = FLOW_OK(flow, needed) ? SLOT(flow, flow_slot[F_ALLOWLISTED]) : NULL;
    if (novel_cfg->explain == NULL || allowlisted == NULL || (allowlisted != Py_True && allowlisted != Py_False)
        || long_slot(flow, flow_slot[F_NOVEL_BYTES], &novel_bytes) < 0
        || (allowlisted == Py_False && novel_bytes < novel_cfg->novel_threshold && self->flow_template == NULL))
        Py_RETURN_FALSE;
    PyObject *ts = SLOT(pkt, packet_slot[P_TS]), *size = PyLong_FromSsize_t(PyBytes_GET_SIZE(payload));
    if (size == NULL)
        return NULL;
    count_packet(state, ts, S_ECHO_REQUESTS);
    Py_ssize_t charged = 0;
    int told = 0, unlisted = allowlisted == Py_False;
    int failed = touch_flow(state, key, flow, ts, size, flow_slot[F_ORIG_BYTES]) < 0
        || header_apply(self, state, pkt, flow, size, header, novel_bytes, unlisted, &told, &charged) < 0;
    Py_DECREF(size);
    return failed ? NULL
                  : request_end(self, state, pkt, flow, key, payload, SLOT(flow, flow_slot[F_LAST_SKETCH]), charged, told,
                                unlisted);
}

/* Detector._novelty for a new flow's first payload (sketched as `current`) from a sender whose last payload went to
 * `peer`: whether _as_fields may read it as counters or clocks against the last sketch of the sender's flow to that
 * peer (1; -1 with an exception set), or that is ruled out before _as_fields changes anything (0): no such flow, no
 * sketch yet, another length or rest, or more places changed than 3 * MAX_FIELD_BYTES. A flow or sketch not of the
 * reference's types, or a time _novelty could not subtract, is 1: the Python detector's. */
static int may_be_fields(Detector *state, const NovelRequests *novel_cfg, PyObject *src, PyObject *peer,
                         PyObject *current)
{
    static const int needed[] = {F_LAST_SKETCH, F_LAST_REQUEST_TS};
    PyObject *key = PyTuple_Pack(2, src, peer);
    if (key == NULL)
        return -1;
    PyObject *other = PyDict_GetItemWithError(state->flows, key); /* borrowed */
    Py_DECREF(key);
    if (other == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!FLOW_OK(other, needed) || !PyFloat_CheckExact(SLOT(other, flow_slot[F_LAST_REQUEST_TS])))
        return 1;
    PyObject *last = SLOT(other, flow_slot[F_LAST_SKETCH]);
    if (last == Py_None)
        return 0;
    int tails_differ = 0;
    Py_ssize_t novel = novel_between(current, last, &tails_differ);
    if (novel < 0) /* a sketch this path does not know */
        return 1;
    return novel <= novel_cfg->field_novel && !tails_differ;
}

/* A new flow's first echo request (a notice storm's every packet): Detector._on_request for a pair the flow table
 * does not have, when none of what only the Python detector takes is in it. Checked before anything changes: the
 * path makes flows (first_requests given), the allowlist is empty, the pair has no memory (_flow_started would
 * carry its last sketch), the payload is not empty, no template explains it and it is no random-padding library's,
 * the sender's memory does not remember the payload, and where it names another peer, the payload cannot read as
 * counters or clocks against that flow's last (may_be_fields). Then, in _on_request's order: the flow made (_new_flow,
 * counted), its first request's header kept (_header), its sketch, the sender's memory touched (its last peer, the
 * payload remembered), the tool tracker (tool_seen), the request
 * remembered for its reply, its novel bytes (all of them: nothing to compare) added and their share given to the
 * hosts' memories by the detector's own _spread, which may raise ExfilSpread (the detector's clock written first:
 * _spread reads it). Returns False (nothing changed), or left_to_evaluate's answer. */
/* _on_request for a new flow's first request (without IP options) whose payload a template explains (`benign`,
 * fingerprints.explain's) or is empty (`benign` NULL: _novelty is not asked), in its order: the flow made
 * (message_flow), its header kept (Detector._header: the flow's first charges nothing), a template's run started as
 * Detector._consistent starts one (session_ident the request's identifier, the template's session, its clock and the
 * clock's offset to the capture's) and its payload counted ignored, the tool tracker shown it, the request
 * remembered; then left_to_evaluate's answer (a tool found: the flow evaluated; a full table: one evicted). False,
 * nothing changed, where _consistent would refuse the template (a clock that does not wrap more than a second before
 * 0); NULL with an exception. */
static PyObject *first_templated(FastPath *self, Detector *state, PyObject *pkt, PyObject *key, PyObject *payload,
                                 PyObject *benign)
{
    Template t = {NULL, NULL, 0.0, 0.0};
    if (benign != NULL && template_read(benign, &t) < 0)
        return NULL;
    PyObject *ts = SLOT(pkt, packet_slot[P_TS]), *ident = SLOT(pkt, packet_slot[P_IDENT]);
    PyObject *seq = SLOT(pkt, packet_slot[P_SEQ]);
    PyObject *result = NULL, *flow = NULL, *size = NULL, *current = NULL;
    if (run_start_refused(&t)) {
        result = Py_NewRef(Py_False);
        goto done;
    }
    size = PyLong_FromSsize_t(PyBytes_GET_SIZE(payload));
    current = new_sketch(payload);
    if (size == NULL || current == NULL)
        goto done;
    count_packet(state, ts, S_ECHO_REQUESTS);
    if ((flow = message_flow(self, state, pkt, key, NULL, size, flow_slot[F_ORIG_BYTES])) == NULL)
        goto done;
    set_slot(flow, flow_slot[F_LAST_IDENT], ident);
    set_slot(flow, flow_slot[F_LAST_SEQ], seq);
    set_slot(flow, flow_slot[F_LAST_SIZE], size);
    set_slot(flow, flow_slot[F_LAST_SKETCH], current);
    if (benign != NULL) {
        if (start_run(flow, ident, t.session, t.embedded, t.time - PyFloat_AS_DOUBLE(ts)) < 0)
            goto done;
        state->counts[S_IGNORED_PAYLOADS]++;
    }
    result = request_end(self, state, pkt, flow, key, payload, current, 0, 0, 1); /* a new flow: no allowlist */
done:
    template_done(&t);
    Py_XDECREF(flow);
    Py_XDECREF(size);
    Py_XDECREF(current);
    return result;
}

static PyObject *first_request(FastPath *self, PyObject *pkt, Detector *state, PyObject *payload, PyObject *key,
                               PyObject *options)
{
    const NovelRequests *novel_cfg = &self->novel;
    Py_ssize_t n = PyBytes_GET_SIZE(payload);
    int makes = may_make_flow(self, key); /* a full table too: Detector._finish evicts after the evaluation */
    if (makes <= 0)
        return makes < 0 ? NULL : Py_NewRef(Py_False);
    if (n == 0) /* nmap's or a keepalive's empty request: nothing novel, _novelty not asked */
        return options == NULL ? first_templated(self, state, pkt, key, payload, NULL) : Py_NewRef(Py_False);
    PyObject *src = SLOT(pkt, packet_slot[P_SRC]), *dst = SLOT(pkt, packet_slot[P_DST]);
    PyObject *ts = SLOT(pkt, packet_slot[P_TS]), *seq = SLOT(pkt, packet_slot[P_SEQ]);
    PyObject *hosts = Py_XNewRef(table_field(novel_cfg, novel_cfg->senders, T_HOSTS));
    if (hosts == NULL)
        return NULL;
    PyObject *result = NULL, *current = NULL, *flow = NULL, *size = NULL, *last_peer = NULL;
    PyObject *known = PyDict_CheckExact(hosts) ? PyDict_GetItemWithError(hosts, src) : NULL; /* borrowed */
    Py_XINCREF(known);
    if (known == NULL && (PyErr_Occurred() || !PyDict_CheckExact(hosts)))
        goto decline_or_fail;
    if (known != NULL) { /* a sender whose last payload went to another peer: _novelty compares the two */
        last_peer = is_memory(novel_cfg, known) ? Py_NewRef(SLOT(known, novel_cfg->memory_slot[M_LAST_PEER])) : NULL;
        int other = last_peer == NULL ? -1 : PyObject_IsTrue(last_peer);
        if (other > 0)
            other = PyObject_RichCompareBool(last_peer, dst, Py_NE);
        if (other < 0)
            goto decline_or_fail;
        if (other == 0)
            Py_CLEAR(last_peer);
    }
    PyObject *benign = explained(novel_cfg, payload, ts, 0);
    if (benign == NULL)
        goto done;
    if (benign != Py_None) { /* a template's: _novelty counts nothing, the sender's memory untouched */
        result = options == NULL ? first_templated(self, state, pkt, key, payload, benign) : Py_NewRef(Py_False);
        Py_DECREF(benign);
        goto done;
    }
    Py_DECREF(benign);
    if (randomly_padded(novel_cfg, payload, seq) != 0)
        goto decline_or_fail;
    current = new_sketch(payload);
    Py_hash_t digest = current == NULL ? -1 : PyObject_Hash(current);
    if (digest == -1 || (known != NULL && seen_payload(novel_cfg, known, digest, 0) != 0)) /* only asked: nothing changes */
        goto decline_or_fail;
    if (last_peer != NULL && may_be_fields(state, novel_cfg, src, last_peer, current) != 0)
        goto decline_or_fail;
    /* taken: what _on_request changes, in its order */
    size = PyLong_FromSsize_t(n);
    if (size == NULL)
        goto done;
    count_packet(state, ts, S_ECHO_REQUESTS);
    if ((flow = message_flow(self, state, pkt, key, NULL, size, flow_slot[F_ORIG_BYTES])) == NULL)
        goto done;
    set_slot(flow, flow_slot[F_LAST_IDENT], SLOT(pkt, packet_slot[P_IDENT]));
    set_slot(flow, flow_slot[F_LAST_SEQ], seq);
    set_slot(flow, flow_slot[F_LAST_SIZE], size);
    set_slot(flow, flow_slot[F_LAST_SKETCH], current);
    Py_ssize_t charged = 0;
    int told = 0;
    if (options != NULL && options_apply(self, state, pkt, flow, options, 0, 1, &told, &charged) < 0)
        goto done;
    /* the payload is not one the sender remembers (checked above): all its bytes novel, nothing to compare */
    result = request_rest(self, state, pkt, key, payload, flow, current, 0, n, charged,
                          charged < novel_cfg->novel_threshold, 1, charged, told);
    goto done;
decline_or_fail:
    result = PyErr_Occurred() ? NULL : Py_NewRef(Py_False);
done:
    Py_DECREF(hosts);
    Py_XDECREF(known);
    Py_XDECREF(last_peer);
    Py_XDECREF(current);
    Py_XDECREF(flow);
    Py_XDECREF(size);
    return result;
}

/* A ping's next request that says nothing new: the flow's last payload (its sequence number in step, or out of step
 * where that charges nothing), or a timed ping's default payload with a clock its run explains. */
static PyObject *handle_request(FastPath *self, PyObject *pkt, Detector *state, PyObject *payload)
{
    static const int needed[] = {F_LAST,          F_N,         F_ORIG_BYTES,      F_LAST_IDENT, F_LAST_SEQ,
                                 F_SEQ_STRIDE,    F_LAST_SIZE, F_LAST_SKETCH,     F_LAST_REQUEST_TS, F_TOOL,
                                 F_SESSION_IDENT, F_LAST_EMBEDDED, F_CLOCK_OFFSET, F_SESSION};
    PyObject *options = SLOT(pkt, packet_slot[P_OPTIONS]);
    if (options == NULL || !PyBytes_CheckExact(options))
        Py_RETURN_FALSE;
    if (PyBytes_GET_SIZE(options) == 0) /* Detector._options: charged with a novel payload's bytes, else Python's */
        options = NULL;
    else if (memchr(PyBytes_AS_STRING(options), 68, (size_t)PyBytes_GET_SIZE(options)) != NULL)
        Py_RETURN_FALSE; /* maybe an IPv4 timestamp option (capacity.IP_TIMESTAMP), whose fields option_bytes reads */
    long ident, seq, last_ident, last_seq, stride, last_size;
    if (long_slot(pkt, packet_slot[P_IDENT], &ident) < 0 || long_slot(pkt, packet_slot[P_SEQ], &seq) < 0)
        Py_RETURN_FALSE;
    PyObject *src = SLOT(pkt, packet_slot[P_SRC]), *dst = SLOT(pkt, packet_slot[P_DST]);
    PyObject *ts = SLOT(pkt, packet_slot[P_TS]);
    PyObject *key = PyTuple_Pack(2, src, dst); /* untracked only where it is stored: first_request */
    if (key == NULL)
        return NULL;
    PyObject *flow = PyDict_GetItemWithError(state->flows, key);
    if (flow == NULL) {
        PyObject *answer = PyErr_Occurred() ? NULL : first_request(self, pkt, state, payload, key, options);
        Py_DECREF(key);
        return answer;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(payload);
    PyObject *tool = FLOW_OK(flow, needed) ? SLOT(flow, flow_slot[F_TOOL]) : NULL;
    PyObject *last_request_ts = tool == NULL ? NULL : SLOT(flow, flow_slot[F_LAST_REQUEST_TS]);
    if (tool == NULL || !PyUnicode_CheckExact(tool) || !PyFloat_CheckExact(last_request_ts)
        || long_slot(flow, flow_slot[F_LAST_IDENT], &last_ident) < 0
        || long_slot(flow, flow_slot[F_LAST_SEQ], &last_seq) < 0
        || long_slot(flow, flow_slot[F_SEQ_STRIDE], &stride) < 0
        || long_slot(flow, flow_slot[F_LAST_SIZE], &last_size) < 0
        || seq < 0 || seq > 0xFFFF || last_seq < 0 || last_seq > 0xFFFF) {
        Py_DECREF(key);
        Py_RETURN_FALSE;
    }
    int new_run = ident != last_ident; /* with a novel payload: capacity.request_header's charges (header_apply) */
    int resized = n != last_size; /* its bits charged (Detector._header) */
    /* the flow's last sketch again: Detector._on_request asks _novelty nothing. Its size can differ from last_size,
     * which a paired reply leaves as it was while it sets the sketch (the other host's request echoed) */
    int same_sketch = sketch_of(SLOT(flow, flow_slot[F_LAST_SKETCH]), payload);
    int repeated = !resized && same_sketch;
    int in_step = !new_run && seq == ((last_seq + stride) & 0xFFFF), took_token = 0, taken = 1;
    PyObject *channels = SLOT(flow, flow_slot[F_CHANNELS]);
    long new_stride = stride;
    double due = 0.0, embedded = 0.0, offset = 0.0;
    PyObject *clock = NULL; /* run_template's time of a template ping_clock does not read (NULL: none, or ping_clock's) */
    int timed = 1;
    if (new_run)
        taken = 0;
    else if (!in_step) /* Detector._header: with the flow's last payload, where the step is free */
        taken = repeated && Py_IS_TYPE(channels, channels_type)
            && free_seq_step(channels, seq, last_seq, PyFloat_AS_DOUBLE(ts) - PyFloat_AS_DOUBLE(last_request_ts),
                             PyFloat_AS_DOUBLE(ts), &new_stride, &took_token, &due);
    else if (!repeated && !resized && n > 0) { /* a timed ping's new sketch, its clock remembered (an empty payload:
                                                  _on_request asks no template, _novelty is not asked) */
        taken = ping_clock(self, flow, (const unsigned char *)PyBytes_AS_STRING(payload), n, ident,
                           PyFloat_AS_DOUBLE(ts), &embedded, &offset);
        if (taken == 0 && options == NULL) { /* another template's payload, or a -p pattern */
            taken = run_template(self, flow, payload, ts, ident, &clock, &offset);
            timed = taken <= 0 || clock != NULL;
        }
    } else if (!repeated) {
        taken = 0;
    }
    if (taken == 0 && (!same_sketch || options == NULL)) {
        /* not a timed ping's: perhaps novel bytes this path may take (novel_request), or the flow's last sketch under
         * a header whose change is charged (repeated_request: resized or not in step, so `charges`). A header that is
         * not the flow's next: its charges worked out once the request is taken (header_apply); not for a flow with no
         * request yet (_header charges nothing then), nor identifiers past 16 bits */
        int charges = resized || !in_step;
        Header header = {last_ident, last_seq, last_size, ident, seq};
        int idents_known = ident >= 0 && ident <= 0xFFFF && last_ident >= 0 && last_ident <= 0xFFFF;
        if ((charges && !idents_known) || ((charges || options != NULL) && !channels_known(channels))) {
            Py_DECREF(key);
            Py_RETURN_FALSE;
        }
        Py_INCREF(flow);
        PyObject *answer = same_sketch ? repeated_request(self, pkt, state, payload, key, flow, &header)
            : novel_request(self, pkt, state, payload, key, flow, tool, charges ? &header : NULL, options);
        Py_DECREF(flow);
        Py_DECREF(key);
        return answer;
    }
    if (taken <= 0 || options != NULL) {
        Py_DECREF(key);
        Py_XDECREF(clock);
        return taken < 0 ? NULL : Py_NewRef(Py_False);
    }
    PyObject *size = PyLong_FromSsize_t(n);
    PyObject *result = NULL;
    Py_INCREF(flow);
    if (size == NULL)
        goto done;
    count_packet(state, ts, S_ECHO_REQUESTS);
    if (touch_flow(state, key, flow, ts, size, flow_slot[F_ORIG_BYTES]) < 0)
        goto done;
    set_slot(flow, flow_slot[F_LAST_SEQ], SLOT(pkt, packet_slot[P_SEQ]));
    if (!in_step) { /* capacity.request_header's new stride (the flow's and its state's), and the token taken */
        PyObject *stride_obj = PyLong_FromLong(new_stride);
        PyObject *due_obj = took_token ? PyFloat_FromDouble(due) : NULL;
        if (stride_obj == NULL || (took_token && due_obj == NULL)) {
            Py_XDECREF(stride_obj);
            goto done;
        }
        set_slot(flow, flow_slot[F_SEQ_STRIDE], stride_obj);
        set_slot(channels, channels_slot[C_STRIDE], stride_obj);
        if (took_token)
            set_slot(channels, channels_slot[C_RUN_DUE], due_obj);
        Py_DECREF(stride_obj);
        Py_XDECREF(due_obj);
    }
    if (!repeated) { /* Detector._novelty: the template explains it, Detector._consistent moved its clock */
        PyObject *sketch = new_sketch(payload);
        PyObject *embedded_obj = !timed ? NULL : clock != NULL ? Py_NewRef(clock) : PyFloat_FromDouble(embedded);
        PyObject *offset_obj = timed ? PyFloat_FromDouble(offset) : NULL;
        int failed = sketch == NULL || (timed && (embedded_obj == NULL || offset_obj == NULL));
        if (!failed) {
            state->counts[S_IGNORED_PAYLOADS]++;
            set_slot(flow, flow_slot[F_LAST_SKETCH], sketch);
            if (timed) { /* an untimed template's leaves the run's clock as it was (Detector._consistent) */
                set_slot(flow, flow_slot[F_LAST_EMBEDDED], embedded_obj);
                set_slot(flow, flow_slot[F_CLOCK_OFFSET], offset_obj);
            }
        }
        Py_XDECREF(sketch);
        Py_XDECREF(embedded_obj);
        Py_XDECREF(offset_obj);
        if (failed)
            goto done;
    }
    /* nothing charged, nothing told; a tool found has the flow evaluated (the path's own, allowlisted or not) */
    result = request_end(self, state, pkt, flow, key, payload, SLOT(flow, flow_slot[F_LAST_SKETCH]), 0, 0, 1);
done:
    Py_DECREF(flow);
    Py_DECREF(key);
    Py_XDECREF(size);
    Py_XDECREF(clock);
    return result;
}

PyDoc_STRVAR(handle_doc,
             "handle(pkt) -> None | True | False | () | (flow,)\n\n"
             "None: the packet was handled as Detector.process would (no notice is due). True: the same, and it\n"
             "carried novel bytes (the detector's last_novel). False: it is not one this path takes, and nothing\n"
             "changed. (): handled, what its flow's evaluation raised (or a share of the hosts' memories) due, for\n"
             "Detector._finish to hand out. (flow,): handled up to the flow's evaluation, for Detector._finish.");

/* handle()'s answer for one packet, with the detector's state read (detector_state) and not yet written back. */
static PyObject *handle_packet(FastPath *self, PyObject *pkt, Detector *state)
{
    /* a PartialPacket (its own send time) or anything else: Python's; a HeadlessPacket, its type HEADLESS (-1), is
     * judged as a non-echo message (other_message: headless_here) */
    if (!Py_IS_TYPE(pkt, packet_type) && !Py_IS_TYPE(pkt, headless_type))
        Py_RETURN_FALSE;
    for (int i = 0; i < N_PACKET; i++)
        if (SLOT(pkt, packet_slot[i]) == NULL)
            Py_RETURN_FALSE;
    PyObject *ts = SLOT(pkt, packet_slot[P_TS]), *payload = SLOT(pkt, packet_slot[P_PAYLOAD]);
    long icmp_type, icmp_code;
    if (!PyFloat_CheckExact(ts) || !PyBytes_CheckExact(payload) || long_slot(pkt, packet_slot[P_TYPE], &icmp_type) < 0
        || long_slot(pkt, packet_slot[P_CODE], &icmp_code) < 0)
        Py_RETURN_FALSE;
    int ipv6 = SLOT(pkt, packet_slot[P_IPV6]) == Py_True;
    int request = icmp_type == (ipv6 ? 128 : 8), reply = icmp_type == (ipv6 ? 129 : 0);
    int benign = 0, coded = 0;
    if (!request && !reply)
        benign = benign_error(pkt, icmp_type, icmp_code, ipv6, payload);
    else if (icmp_code != 0) { /* echo has code 0: a request with another is judged as a non-echo message is */
        if (!request)
            Py_RETURN_FALSE; /* a reply's code pairs it with its request, or not: the Python detector's */
        coded = 1;
    } else if (PySet_GET_SIZE(self->ignored)) {
        int ignored = PySet_Contains(self->ignored, payload);
        if (ignored != 0)
            return ignored < 0 ? NULL : Py_NewRef(Py_False);
    }
    if (!clock_allows(state, PyFloat_AS_DOUBLE(ts)))
        Py_RETURN_FALSE;
    if (request && !coded)
        return handle_request(self, pkt, state, payload);
    if (reply)
        return handle_reply(self, pkt, state, payload);
    if (!benign)
        return other_message(self, pkt, state, payload, icmp_type, ipv6, coded ? icmp_code : 0);
    /* an error whose quote is right: counted, the clock moved, nothing else */
    count_packet(state, ts, S_OTHER_ICMP);
    Py_RETURN_NONE;
}

/* The answer, with the detector's state written back: NULL (and the answer dropped) when that fails. After an
 * error (answer NULL) the state is written back too, and the first exception is the one raised. */
static PyObject *written_back(FastPath *self, Detector *state, PyObject *answer)
{
    if (answer == NULL) {
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        if (detector_done(self, state) < 0)
            PyErr_Clear();
        PyErr_Restore(type, value, traceback);
        return NULL;
    }
    if (detector_done(self, state) < 0) {
        Py_DECREF(answer);
        return NULL;
    }
    return answer;
}

static PyObject *fast_handle(FastPath *self, PyObject *pkt)
{
    Detector state;
    int usable = detector_state(self, &state);
    if (usable <= 0)
        return usable < 0 ? NULL : Py_NewRef(Py_False);
    return written_back(self, &state, handle_packet(self, pkt, &state));
}

PyDoc_STRVAR(run_doc,
             "run(packets, start, watched[, observed[, folds[, kept]]]) -> (index, answer)\n\n"
             "handle() for packets[start:] (a list; None items skipped) while it returns None for a packet of a\n"
             "pair not in `watched` (a set of pair keys: output/evidence.py pair_key(src, dst)): (index, answer) for\n"
             "the first packet it answered otherwise (answer: handle()'s; None when the packet is of a watched pair),\n"
             "or (len(packets), None).\n"
             "With `observed` (a list), a packet of a watched pair handle() returned None or True for is not\n"
             "stopped at: its index is appended to it. With `folds` too (not None: a function of a flow's uid, whether\n"
             "its notices are folded), a packet of a pair not watched handle() returned True for (novel bytes) is not\n"
             "stopped at either: ~index is appended, and the pair's later packets in this call are listed too, each as\n"
             "what it is (~index with novel bytes); but nothing is where the packet's flow has a uid folds() is true\n"
             "for (a watched pair's: its index). Where handle() answered ()\n"
             "with notices due and the table within max_flows, the answer is the due notices, a list, taken from the\n"
             "detector's (as Detector._handed_out hands them out). With `kept` too (not None: a function of a list of\n"
             "notices, those to write now), the answer is what kept() returns of them, and where that is nothing the\n"
             "packet is not stopped at: it is listed in `observed` as one without notices would be.");

/* Whether run()'s answer is () (what was due raised, nothing left to evaluate) with the table within max_flows:
 * Detector._finish would only hand out the due notices. */
static int hands_out_here(FastPath *self, Detector *state, PyObject *answer)
{
    return PyTuple_CheckExact(answer) && PyTuple_GET_SIZE(answer) == 0 && self->exfil.due != NULL
           && PyDict_GET_SIZE(state->flows) <= self->max_flows;
}

/* Detector._handed_out for such an answer (hands_out_here): the due notices, taken from the detector's list, where
 * there are some; else the answer as it is, for Detector._finish. A new reference, or NULL with an exception. */
static PyObject *handed_out(FastPath *self, Detector *state, PyObject *answer)
{
    PyObject *due = self->exfil.due;
    if (!hands_out_here(self, state, answer) || PyList_GET_SIZE(due) == 0)
        return Py_NewRef(answer);
    PyObject *notices = PyList_GetSlice(due, 0, PyList_GET_SIZE(due));
    if (notices != NULL && PyList_SetSlice(due, 0, PyList_GET_SIZE(due), NULL) < 0)
        Py_CLEAR(notices);
    return notices;
}

/* Appends `index` to the list. 0, or -1 with an exception. */
static int append_index(PyObject *list, Py_ssize_t index)
{
    PyObject *value = PyLong_FromSsize_t(index);
    int failed = value == NULL || PyList_Append(list, value) < 0;
    Py_XDECREF(value);
    return failed ? -1 : 0;
}

/* Whether the evidence recorder is shown a packet with novel bytes of a pair not watched (Pipeline._detect_observed):
 * not where the pair's flow (of `src` to `dst`) has a uid whose notices folds(uid) says are folded
 * (NoticeAggregator.folds). `key`: the pair's pair_key. 1, 0, or -1 with an exception. */
static int novel_shown(Detector *state, PyObject *src, PyObject *dst, PyObject *key, PyObject *folds)
{
    PyObject *pair = PyTuple_GET_ITEM(key, 0) == src ? Py_NewRef(key) : PyTuple_Pack(2, src, dst);
    if (pair == NULL)
        return -1;
    PyObject *flow = PyDict_GetItemWithError(state->flows, pair);
    Py_DECREF(pair);
    if (flow == NULL)
        return PyErr_Occurred() ? -1 : 1;
    Py_INCREF(flow);
    PyObject *uid = Py_IS_TYPE(flow, flow_type) ? Py_XNewRef(SLOT(flow, flow_slot[F_UID]))
                                                : PyObject_GetAttrString(flow, "uid");
    Py_DECREF(flow);
    if (uid == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_AttributeError, "Flow.uid is not set");
        return -1;
    }
    int named = PyObject_IsTrue(uid); /* a flow no notice named is folded under nothing */
    PyObject *folded = named > 0 ? PyObject_CallOneArg(folds, uid) : NULL;
    int shown = named < 0 ? -1 : !named ? 1 : folded == NULL ? -1 : !PyObject_IsTrue(folded);
    if (folded != NULL && shown == 0 && PyErr_Occurred())
        shown = -1;
    Py_DECREF(uid);
    Py_XDECREF(folded);
    return shown;
}

/* What run() does with a packet handle_packet() answered None or True for (`novel`: with novel bytes) of `src` to
 * `dst`, whose pair_key is `key`: 1, stop at it; 0, go on, listed in `observed` where the evidence recorder is to see
 * it. `listed`: the pairs (their keys) whose packet with novel bytes was listed in this call and that `watched` did not
 * hold (made here the first time), taken as watched from then on.
 * Without `folds`, a watched pair's packet is listed as its index (the pair has a ring or a recording, which take its
 * packets whatever their novel bytes) and one with novel bytes of another pair stopped at. With it, the recorder's rings
 * can come and go within the call (a listed packet may start one, and the one it starts evict another's), so each
 * packet is listed as what it is: ~index with novel bytes (the recorder may start the pair's ring), its index without
 * (nothing, where the pair has neither), and as its index, or not at all where the pair is not watched or listed, one
 * with novel bytes of a flow whose notices are folded (the recorder is not shown those but for a watched pair).
 * -1 with an exception. */
static int run_step(Detector *state, PyObject *src, PyObject *dst, PyObject *key, int novel, PyObject *watched,
                    PyObject *observed, PyObject *folds, PyObject **listed, Py_ssize_t index)
{
    int shown = folds != NULL && novel ? novel_shown(state, src, dst, key, folds) : 0;
    int taken = shown < 0 ? -1 : PySet_Contains(watched, key);
    if (shown > 0 && taken == 0) { /* the recorder may start the pair's ring: its later packets are the ring's */
        if (*listed == NULL && (*listed = PySet_New(NULL)) == NULL)
            return -1;
        return PySet_Add(*listed, key) < 0 ? -1 : append_index(observed, ~index);
    }
    if (taken == 0 && *listed != NULL)
        taken = PySet_Contains(*listed, key);
    if (taken < 0)
        return -1;
    if (shown)
        return append_index(observed, ~index);
    if (!taken)
        return folds == NULL ? novel : 0;
    return observed == NULL ? 1 : append_index(observed, index); /* `folds` comes with `observed` */
}

/* The due notices run() handed out (`given`, a list) kept by `kept` (a new list), or NULL with an exception. */
static PyObject *kept_of(PyObject *kept, PyObject *given)
{
    PyObject *out = PyObject_CallOneArg(kept, given);
    if (out != NULL && !PyList_CheckExact(out)) {
        PyErr_SetString(PyExc_TypeError, "run(): kept() must return a list");
        Py_CLEAR(out);
    }
    return out;
}

static PyObject *run_packets(FastPath *self, PyObject *const *args, Py_ssize_t nargs);

/* The aggregator's C API (notice/_aggregate_api.h), imported the first time run() is given a `kept`; NULL where it
 * is not built (its notices are then always made). */
static const AggregateApi *aggregate_api;
static int aggregate_api_tried;

/* `kept` where it is the aggregator's C filter (_fastaggregate.Filter), else NULL. */
static PyObject *aggregator_filter(PyObject *kept)
{
    if (kept == NULL || kept == Py_None)
        return NULL;
    if (!aggregate_api_tried) {
        aggregate_api_tried = 1;
        aggregate_api = (const AggregateApi *)PyCapsule_Import(AGGREGATE_API_CAPSULE, 0);
        if (aggregate_api == NULL)
            PyErr_Clear();
    }
    return aggregate_api != NULL && Py_IS_TYPE(kept, aggregate_api->filter_type) ? kept : NULL;
}

static PyObject *fast_run(FastPath *self, PyObject *const *args, Py_ssize_t nargs)
{
    self->fold_into = aggregator_filter(nargs == 6 ? args[5] : NULL);
    self->fold_due = self->exfil.due;
    PyObject *result = run_packets(self, args, nargs);
    self->fold_into = self->fold_due = NULL;
    return result;
}

static PyObject *run_packets(FastPath *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 3 || nargs > 6 || !PyList_CheckExact(args[0]) || !PyAnySet_Check(args[2])
        || (nargs >= 4 && args[3] != Py_None && !PyList_CheckExact(args[3]))
        || (nargs >= 5 && args[4] != Py_None && (args[3] == Py_None || !PyCallable_Check(args[4])))
        || (nargs == 6 && args[5] != Py_None && (args[4] == Py_None || !PyCallable_Check(args[5])))) {
        PyErr_SetString(PyExc_TypeError,
                        "run(packets: list, start: int, watched: set[, observed: list[, folds[, kept]]])");
        return NULL;
    }
    PyObject *packets = args[0], *watched = args[2], *observed = nargs >= 4 && args[3] != Py_None ? args[3] : NULL;
    PyObject *folds = nargs >= 5 && args[4] != Py_None ? args[4] : NULL;
    PyObject *kept = nargs == 6 && args[5] != Py_None ? args[5] : NULL;
    Py_ssize_t i = PyLong_AsSsize_t(args[1]);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t end = PyList_GET_SIZE(packets);
    i = i < 0 ? 0 : i < end ? i : end;
    Detector state;
    int usable = detector_state(self, &state);
    if (usable < 0)
        return NULL;
    PyObject *listed = NULL; /* run_step's */
    for (; i < end; i++) { /* nothing handle_packet() calls has the list: its size stays */
        PyObject *pkt = PyList_GET_ITEM(packets, i);
        if (pkt == Py_None)
            continue;
        if (!usable) {
            Py_XDECREF(listed);
            return Py_BuildValue("(nO)", i, Py_False);
        }
        Py_INCREF(pkt); /* the list is the caller's: hold the packet while it is handled */
        PyObject *answer = handle_packet(self, pkt, &state);
        int novel = answer == Py_True; /* handled, with novel bytes */
        int stop = answer == NULL ? -1 : answer != Py_None && !novel;
        if (stop > 0 && kept != NULL && hands_out_here(self, &state, answer)
            && PyList_GET_SIZE(self->exfil.due) == 0) { /* all it raised folded before it was made (fold_into) */
            novel = state.last_novel > 0;
            stop = 0;
        } else if (stop > 0) { /* its notices handed out, and kept here: none kept, no stop */
            Py_SETREF(answer, handed_out(self, &state, answer));
            if (answer != NULL && kept != NULL && PyList_CheckExact(answer)) {
                Py_SETREF(answer, kept_of(kept, answer));
                if (answer != NULL && PyList_GET_SIZE(answer) == 0) {
                    novel = state.last_novel > 0;
                    stop = 0;
                }
            }
            stop = answer == NULL ? -1 : stop;
        }
        if (stop == 0 && ((novel && folds != NULL) || PySet_GET_SIZE(watched) || listed != NULL)) {
            PyObject *src = SLOT(pkt, packet_slot[P_SRC]), *dst = SLOT(pkt, packet_slot[P_DST]);
            PyObject *key = pair_key_new(src, dst);
            stop = key == NULL ? -1 : run_step(&state, src, dst, key, novel, watched, observed, folds, &listed, i);
            Py_XDECREF(key);
        } else if (stop == 0)
            stop = novel; /* novel bytes of a pair not watched: the caller decides whether they are recorded */
        Py_DECREF(pkt);
        if (stop) {
            PyObject *result = stop < 0 ? NULL : Py_BuildValue("(nN)", i, answer); /* the answer's reference given */
            if (stop < 0)
                Py_XDECREF(answer);
            Py_XDECREF(listed);
            return written_back(self, &state, result);
        }
        Py_DECREF(answer);
    }
    Py_XDECREF(listed);
    return written_back(self, &state, Py_BuildValue("(nO)", i, Py_None)); /* unusable: a zeroed state writes nothing */
}

/* PairMemory.add(ts, novel, bucket_len) on `memory` (`novel` an int, ts a float, bucket_len > 0: the config's
 * slow_exfil_window is). 0, or -1 with an exception. */
static int pair_memory_add(const Ends *e, PyObject *memory, double ts, PyObject *novel, double bucket_len)
{
    PyObject *buckets = SLOT(memory, e->pair_slot[R_BUCKETS]);
    if (!PyList_CheckExact(buckets)) {
        PyErr_SetString(PyExc_TypeError, "PairMemory.buckets is not a list");
        return -1;
    }
    Py_INCREF(buckets);
    PyObject *start = PyFloat_FromDouble(ts - py_mod(ts, bucket_len));
    Py_ssize_t n = PyList_GET_SIZE(buckets);
    int same = start == NULL ? -1 : n >= 2 ? PyObject_RichCompareBool(PyList_GET_ITEM(buckets, n - 2), start, Py_EQ) : 0;
    int failed = same < 0;
    if (!failed && same) {
        PyObject *sum = PyNumber_Add(PyList_GET_ITEM(buckets, n - 1), novel);
        failed = sum == NULL || PyList_SetItem(buckets, n - 1, sum) < 0; /* the reference stolen */
    } else if (!failed)
        failed = PyList_Append(buckets, start) < 0 || PyList_Append(buckets, novel) < 0;
    failed = failed || add_to_slot(memory, e->pair_slot[R_NOVEL], novel) < 0;
    Py_XDECREF(start);
    Py_DECREF(buckets);
    return failed ? -1 : 0;
}

/* obj.<name> (a new reference): read in place from the slot at `offset` where obj is exactly `type` and the slot is
 * set (type NULL: never), else by attribute. */
static PyObject *slot_or_attr(PyObject *obj, PyTypeObject *type, Py_ssize_t offset, PyObject *name)
{
    return type != NULL && Py_IS_TYPE(obj, type) && SLOT(obj, offset) != NULL ? Py_NewRef(SLOT(obj, offset))
                                                                                : PyObject_GetAttr(obj, name);
}

/* `until <= now`, a report's window over (two floats compared as float_richcompare does, else as Python compares):
 * 1, 0, or -1 with an exception (`until` NULL: the exception its read left). */
static int report_over(PyObject *until, PyObject *now)
{
    if (until == NULL)
        return -1;
    if (PyFloat_CheckExact(until) && PyFloat_CheckExact(now))
        return PyFloat_AS_DOUBLE(until) <= PyFloat_AS_DOUBLE(now);
    return PyObject_RichCompareBool(until, now, Py_LE);
}

/* Detector._evict_pair (the reference): of the ends.scan least recently active pairs (the first of the table), the
 * least by (slow_alerted_until <= now, novel) forgotten (a pair whose bytes are reported past `now` first, the fewest
 * novel bytes among equals; compared as Python compares them), counted. 0, or -1 with an exception. */
static int evict_pair(FastPath *self, PyObject *pairs, PyObject *stats, PyObject *now)
{
    PyObject *keys = PyObject_GetIter(pairs), *victim = NULL, *least = PyFloat_FromDouble(INFINITY), *key = NULL;
    int least_unreported = 1;
    int failed = keys == NULL || least == NULL;
    const Py_ssize_t *slot = self->ends.pair_slot;
    PyTypeObject *type = (PyTypeObject *)self->ends.pair_type;
    for (Py_ssize_t i = 0; !failed && i < self->ends.scan && (key = PyIter_Next(keys)) != NULL; i++) {
        PyObject *memory = PyDict_GetItemWithError(pairs, key);
        PyObject *until = memory == NULL ? NULL
                                         : slot_or_attr(memory, type, slot[R_SLOW_ALERTED_UNTIL], str_slow_alerted_until);
        int unreported = report_over(until, now);
        PyObject *novel = unreported < 0 ? NULL : slot_or_attr(memory, type, slot[R_NOVEL], str_novel);
        int fewer = novel == NULL ? -1
                    : unreported != least_unreported ? unreported < least_unreported
                                                     : PyObject_RichCompareBool(novel, least, Py_LT);
        failed = fewer < 0;
        if (fewer > 0) {
            Py_XSETREF(victim, Py_NewRef(key));
            Py_SETREF(least, Py_NewRef(novel));
            least_unreported = unreported;
        }
        Py_XDECREF(until);
        Py_XDECREF(novel);
        Py_DECREF(key);
    }
    failed |= PyErr_Occurred() != NULL;
    if (!failed && victim != NULL)
        failed = PyObject_DelItem(pairs, victim) < 0 || add_to_slot(stats, stats_slot[S_PAIRS_EVICTED], one) < 0;
    Py_XDECREF(keys);
    Py_XDECREF(victim);
    Py_XDECREF(least);
    return failed ? -1 : 0;
}

/* Detector._pair(src, dst, now): the pair's memory, made the most recently active, or made (evict_pair first when
 * the table holds max_pairs). A new reference, or NULL with an exception. */
static PyObject *pair_memory(FastPath *self, PyObject *pairs, PyObject *stats, PyObject *key, PyObject *now)
{
    PyObject *memory = PyDict_GetItemWithError(pairs, key);
    if (memory != NULL && !Py_IS_TYPE(memory, (PyTypeObject *)self->ends.pair_type)) /* its slots are read in place */
        return PyErr_Format(PyExc_TypeError, "the pairs' table holds something else than a %s",
                            ((PyTypeObject *)self->ends.pair_type)->tp_name);
    if (memory != NULL)
        return call_method_1(pairs, str_move_to_end, key) < 0 ? NULL : Py_NewRef(memory);
    if (PyErr_Occurred())
        return NULL;
    if (PyDict_GET_SIZE(pairs) >= self->ends.max_pairs && evict_pair(self, pairs, stats, now) < 0)
        return NULL;
    memory = record_copy(self->ends.pair_memory, -1, NULL, self->ends.pair_slot[R_BUCKETS]); /* PairMemory() */
    if (memory == NULL || PyObject_SetItem(pairs, key, memory) < 0) {
        Py_XDECREF(memory);
        return NULL;
    }
    return memory;
}

/* Whether flow_end_made can end `flow` as Detector._flow_ended would (alerting realtime, ExfilSummary's bytes the
 * payload's alone, the detector's tables its own): 1 with *end read, 0 (nothing changed), -1 with an exception. */
/* Whether this path ends flows at all: alerting realtime, the pairs' records bound. */
static int ends_flows(const FastPath *self)
{
    return self->ends.pair_type != NULL && self->novel.enabled != 0;
}

static int flow_end_taken(FastPath *self, PyObject *flow, FlowEnd *end)
{
    static const int needed[] = {F_NOVEL_BYTES, F_ALLOWLISTED, F_ALERTED, F_REPORTED_UNTIL, F_LAST, F_LAST_SKETCH,
                                 F_CHANNELS, F_NONECHO_NOVEL, F_TOOL, F_SRC, F_DST};
    const Ends *e = &self->ends;
    long alerted;
    if (!ends_flows(self) || !FLOW_OK(flow, needed)
        || long_slot(flow, flow_slot[F_ALERTED], &alerted) < 0 || long_slot(flow, flow_slot[F_NOVEL_BYTES], &end->bytes) < 0)
        return 0;
    PyObject *allowlisted = SLOT(flow, flow_slot[F_ALLOWLISTED]), *reported = SLOT(flow, flow_slot[F_REPORTED_UNTIL]);
    end->summary = (alerted & e->summarised) && e->summary;
    if ((allowlisted != Py_True && allowlisted != Py_False) || !PyFloat_CheckExact(reported)
        || !PyFloat_CheckExact(SLOT(flow, flow_slot[F_LAST])) || (end->summary && !flow_tags_known(flow)))
        return 0;
    end->pairs = PyDict_GetItemWithError(self->detector, str_pairs);
    end->stats = PyDict_GetItemWithError(self->detector, str_stats);
    if (end->pairs == NULL || !PyODict_CheckExact(end->pairs) || end->stats == NULL
        || !Py_IS_TYPE(end->stats, stats_type))
        return PyErr_Occurred() ? -1 : 0;
    return 1;
}

/* Detector._flow_ended for a flow flow_end_taken took: its novel bytes, last sketch and reported_until into its
 * pair's memory, its ExfilSummary onto `due`. 0, or -1 with an exception. */
static int flow_end_made(FastPath *self, PyObject *flow, PyObject *ts, PyObject *due, const FlowEnd *end)
{
    const Ends *e = &self->ends;
    PyObject *reported = SLOT(flow, flow_slot[F_REPORTED_UNTIL]);
    if ((end->bytes != 0 || PyFloat_AS_DOUBLE(reported) != 0.0) && SLOT(flow, flow_slot[F_ALLOWLISTED]) == Py_False) {
        PyObject *key = untracked_if_atomic(PyTuple_Pack(2, SLOT(flow, flow_slot[F_SRC]), SLOT(flow, flow_slot[F_DST])));
        PyObject *memory = key == NULL ? NULL : pair_memory(self, end->pairs, end->stats, key, ts);
        Py_XDECREF(key);
        if (memory == NULL)
            return -1;
        if (end->bytes != 0)
            set_slot(memory, e->pair_slot[R_LAST_SKETCH], SLOT(flow, flow_slot[F_LAST_SKETCH]));
        int failed = end->bytes != 0
                     && pair_memory_add(e, memory, PyFloat_AS_DOUBLE(SLOT(flow, flow_slot[F_LAST])),
                                        SLOT(flow, flow_slot[F_NOVEL_BYTES]), PyFloat_AS_DOUBLE(e->bucket_len)) < 0;
        int later = failed ? -1 : PyObject_RichCompareBool(reported, SLOT(memory, e->pair_slot[R_SLOW_ALERTED_UNTIL]),
                                                           Py_GT);
        failed = later < 0;
        if (later > 0)
            set_slot(memory, e->pair_slot[R_SLOW_ALERTED_UNTIL], reported);
        Py_DECREF(memory);
        if (failed)
            return -1;
    }
    if (end->summary && (add_to_slot(end->stats, stats_slot[S_NOTICES], one) < 0
                         || tagged_notice(self, flow, ts, e->name, e->msg, due) < 0))
        return -1;
    return 0;
}

PyDoc_STRVAR(flow_ended_doc,
             "flow_ended(flow, ts, due) -> bool\n\n"
             "Detector._flow_ended (the reference) where alerting is realtime and the flow's ExfilSummary, if due, names\n"
             "its payload alone: its novel bytes, last sketch and reported_until into its pair's memory (Detector._pair,\n"
             "PairMemory.add; Detector._evict_pair when the table is full), its ExfilSummary onto `due`. False: nothing\n"
             "changed, the Python detector's.");

static PyObject *fast_flow_ended(FastPath *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyFloat_CheckExact(args[1]) || !PyList_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "flow_ended(flow, ts: float, due: list)");
        return NULL;
    }
    FlowEnd end;
    int taken = flow_end_taken(self, args[0], &end);
    if (taken <= 0)
        return taken < 0 ? NULL : Py_NewRef(Py_False);
    return flow_end_made(self, args[0], args[1], args[2], &end) < 0 ? NULL : Py_NewRef(Py_True);
}

/* The first keys of the OrderedDict `table` in its order, at most `most` of them, into keys[] (new references): how
 * many, or -1 with an exception. Only the caller changes the table while it holds them, removing them in order. */
static Py_ssize_t oldest_keys(PyObject *table, PyObject **keys, Py_ssize_t most)
{
    PyObject *iterator = PyObject_GetIter(table);
    if (iterator == NULL)
        return -1;
    Py_ssize_t count = 0;
    while (count < most && (keys[count] = PyIter_Next(iterator)) != NULL)
        count++;
    Py_DECREF(iterator);
    if (PyErr_Occurred()) {
        while (count > 0)
            Py_DECREF(keys[--count]);
        return -1;
    }
    return count;
}

#define OLDEST_BATCH 64 /* the keys oldest_keys reads at once: one iterator for as many */

/* The table's next oldest key, read OLDEST_BATCH at a time into keys[] (*at of *count of them handed out so far): a
 * new reference (the caller's), or NULL where none is left (*failed set where an exception was raised). The keys not
 * handed out are the caller's to release (keys_left). */
static PyObject *next_oldest(PyObject *table, PyObject **keys, Py_ssize_t *at, Py_ssize_t *count, int *failed)
{
    if (*at == *count) {
        *at = 0;
        *count = PyDict_GET_SIZE(table) == 0 ? 0 : oldest_keys(table, keys, OLDEST_BATCH);
        *failed = *count < 0;
        if (*count <= 0) {
            *count = 0;
            return NULL;
        }
    }
    return keys[(*at)++];
}

/* Release the keys next_oldest read but did not hand out. */
static void keys_left(PyObject **keys, Py_ssize_t at, Py_ssize_t count)
{
    while (at < count)
        Py_DECREF(keys[at++]);
}

PyDoc_STRVAR(flows_ended_doc,
             "flows_ended(flows, now, timeout, due, limit=sys.maxsize, kept=None) -> (ended, flow)\n\n"
             "FlowDetector._end_flows' loop (its reference) for as long as this path ends each flow as flow_ended does,\n"
             "`limit` flows at most (the one handed back counts):\n"
             "the flows of `flows` (the detector's OrderedDict), oldest first, each removed and ended onto `due`: every\n"
             "one at `now` (timeout None: the flush), else those idle for `timeout` at `now` (last + timeout <= now), each\n"
             "at last + timeout (a sweep). `ended`: how many it ended; `flow`: the one it removed but leaves to the caller\n"
             "to end (flow_ended would answer False), after which the caller calls again, or None where it stopped: no\n"
             "flow left, the oldest not idle, a clock that is not a float, or a path that ends no flow (alerting at a\n"
             "flow's end): the caller's own loop goes on from there. With `kept` (not None: what the caller hands `due`\n"
             "to next, with nothing before it), a notice it would fold and tell nothing of is folded there while `due` is\n"
             "empty, not made, where `kept` is the aggregator's C filter (_fastaggregate.Filter).");

static PyObject *flows_ended_onto(FastPath *self, PyObject *const *args, Py_ssize_t limit);

static PyObject *fast_flows_ended(FastPath *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t limit = nargs >= 5 ? PyLong_AsSsize_t(args[4]) : PY_SSIZE_T_MAX;
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    if (nargs < 4 || nargs > 6 || !PyODict_CheckExact(args[0]) || !PyList_CheckExact(args[3]) || limit < 0
        || (nargs == 6 && args[5] != Py_None && !PyCallable_Check(args[5]))) {
        PyErr_SetString(PyExc_TypeError, "flows_ended(flows: OrderedDict, now: float, timeout: float | None, due: list, "
                                         "limit: int >= 0 = sys.maxsize, kept=None)");
        return NULL;
    }
    self->fold_into = aggregator_filter(nargs == 6 ? args[5] : NULL);
    self->fold_due = args[3];
    PyObject *result = flows_ended_onto(self, args, limit);
    self->fold_into = self->fold_due = NULL;
    return result;
}

/* flows_ended() once its arguments are checked. */
static PyObject *flows_ended_onto(FastPath *self, PyObject *const *args, Py_ssize_t limit)
{
    PyObject *flows = args[0], *now = args[1], *timeout = args[2] == Py_None ? NULL : args[2], *due = args[3];
    Py_ssize_t ended = 0, count = 0, at = 0;
    PyObject *keys[OLDEST_BATCH], *handed = NULL;
    int failed = 0, stopped = !ends_flows(self) || !PyFloat_CheckExact(now)
                              || (timeout != NULL && !PyFloat_CheckExact(timeout));
    while (!failed && !stopped && handed == NULL && ended < limit) {
        PyObject *key = next_oldest(flows, keys, &at, &count, &failed);
        if (key == NULL)
            break;
        PyObject *flow = PyDict_GetItemWithError(flows, key); /* borrowed: the table holds it */
        PyObject *ts = NULL;
        if (flow == NULL) /* taken out of the table meanwhile: the caller's loop goes on */
            failed = PyErr_Occurred() != NULL, stopped = 1;
        else if (timeout == NULL)
            ts = Py_NewRef(now);
        else if (!Py_IS_TYPE(flow, flow_type) || SLOT(flow, flow_slot[F_LAST]) == NULL
                 || !PyFloat_CheckExact(SLOT(flow, flow_slot[F_LAST])))
            stopped = 1; /* not this path's to compare */
        else {
            double expires = PyFloat_AS_DOUBLE(SLOT(flow, flow_slot[F_LAST])) + PyFloat_AS_DOUBLE(timeout);
            if (expires > PyFloat_AS_DOUBLE(now))
                stopped = 1; /* the oldest is not idle: the sweep is over */
            else
                failed = (ts = PyFloat_FromDouble(expires)) == NULL;
        }
        if (ts != NULL) {
            FlowEnd end;
            Py_INCREF(flow); /* the table's reference goes with it */
            int taken = flow_end_taken(self, flow, &end);
            failed = taken < 0 || PyObject_DelItem(flows, key) < 0;
            if (!failed && !taken)
                handed = Py_NewRef(flow);
            else if (!failed) {
                ended++;
                failed = flow_end_made(self, flow, ts, due, &end) < 0;
            }
            Py_DECREF(flow);
            Py_DECREF(ts);
        }
        Py_DECREF(key);
    }
    keys_left(keys, at, count);
    if (failed) {
        Py_XDECREF(handed);
        return NULL;
    }
    return Py_BuildValue("(nN)", ended, handed != NULL ? handed : Py_NewRef(Py_None));
}

static PyMethodDef fast_methods[] = {
    {"handle", (PyCFunction)fast_handle, METH_O, handle_doc},
    {"run", (PyCFunction)(void (*)(void))fast_run, METH_FASTCALL, run_doc},
    {"flow_ended", (PyCFunction)(void (*)(void))fast_flow_ended, METH_FASTCALL, flow_ended_doc},
    {"flows_ended", (PyCFunction)(void (*)(void))fast_flows_ended, METH_FASTCALL, flows_ended_doc},
    {"timestamp_bytes", (PyCFunction)(void (*)(void))fast_timestamp_bytes, METH_FASTCALL, timestamp_bytes_doc},
    {"headless_bytes", (PyCFunction)(void (*)(void))fast_headless_bytes, METH_FASTCALL, headless_bytes_doc},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef fast_members[] = {
    {"unmade", T_PYSSIZET, offsetof(FastPath, unmade), READONLY,
     "the notices run() folded into the aggregator's before it made them (its `kept` the aggregator's C filter)"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject FastPathType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "icmpsensor.detect._fastflows.FastPath",
    .tp_basicsize = sizeof(FastPath),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)fast_init,
    .tp_dealloc = (destructor)fast_dealloc,
    .tp_traverse = (traverseproc)fast_traverse,
    .tp_clear = (inquiry)fast_clear,
    .tp_methods = fast_methods,
    .tp_members = fast_members,
    .tp_doc = "FastPath(detector_dict, observe, ignored, max_flows, max_pending, matched, tolerance, jitter): see the "
              "module's comment.",
};

/* -- a flow's notice ---------------------------------------------------------------------------------------- */

/* flows.FlowDetector._notice's Notice, made in C (its Python statement there is the reference; a notice storm makes
 * two a flow, almost all folded unread): the record's slots set in place, its deferred text a FlowNoticeText holding
 * a snapshot of every Flow field, an IPv4 address written as inet_ntoa writes it (others by notice/text.py
 * addr_text). Bound by bind_notice(). */

enum {
    NT_TS, NT_NOTE, NT_MSG, NT_SUB, NT_TEXT, NT_SRC, NT_DST, NT_UID, NT_N, NT_BYTES_SENT, NT_BYTES_RECEIVED, NT_START, NT_END,
    NT_NOVEL_BYTES, NT_EVIDENCE, NT_ICMP_TYPE, NT_ICMP_CODE, NT_TOOL, NT_CHANNELS, NT_PEERS, N_NOTICE
};
static const char *const NOTICE_FIELDS[N_NOTICE] = {
    "ts", "note", "_msg", "_sub", "_text", "src", "dst", "uid", "n", "bytes_sent", "bytes_received", "start", "end",
    "novel_bytes", "evidence", "icmp_type", "icmp_code", "tool", "channels", "peers"};
enum { T_VALUES, T_MSG, T_FIELDS, T_NOVEL_BYTES, T_EXTRA_TEXT, T_EXTRA, N_TEXT_SLOTS };
static const char *const TEXT_FIELDS[N_TEXT_SLOTS] = {"values", "msg", "fields", "novel_bytes", "extra_text",
                                                      "extra"};
/* the Flow fields a notice reads, from the snapshot (their places in it found by bind_notice) */
enum { NF_SRC, NF_DST, NF_START, NF_LAST, NF_N, NF_ORIG, NF_RESP, NF_OTHER, NF_RECEIVED, NF_TYPE, NF_CODE,
       N_NOTICE_FLOW };
static const char *const NOTICE_FLOW_FIELDS[N_NOTICE_FLOW] = {
    "src", "dst", "start", "last", "n", "orig_bytes", "resp_bytes", "other_bytes", "received_bytes", "icmp_type",
    "icmp_code"};
/* the Flow fields new_flow sets (the rest are the template's) */
enum { NEW_SRC, NEW_DST, NEW_START, NEW_LAST, NEW_ALLOWLISTED, NEW_TYPE, NEW_CODE, N_NEW_FLOW };
static const char *const NEW_FLOW_FIELDS[N_NEW_FLOW] = {"src", "dst", "start", "last", "allowlisted", "icmp_type",
                                                        "icmp_code"};
#define MAX_FLOW_FIELDS 64

static PyTypeObject *notice_type, *text_type;
static PyObject *addr_text_func;
static unsigned char v4_embeddable[16]; /* notice.text.V4_EMBEDDABLE: IPv6 addresses starting so are addr_text's */
static Py_ssize_t v4_embeddable_len = 16;
typedef struct {
    unsigned char address[16];
    PyObject *text;
} LastText;
typedef struct {
    LastText entry[2];
    int older; /* the entry a new text replaces: the one asked for less recently */
} LastTexts;
static LastTexts last_v4, last_v6; /* address_text's last two IPv4 and IPv6 texts, and their addresses */
static Py_ssize_t notice_slot[N_NOTICE], text_slot[N_TEXT_SLOTS], notice_flow_index[N_NOTICE_FLOW];
static Py_ssize_t all_flow_slot[MAX_FLOW_FIELDS], all_flow_count = -1, new_flow_slot[N_NEW_FLOW];

#define BIND_NOTICE_ARGS                                                                                       \
    "bind_notice(notice_type, text_type, flow_type, flow_fields, addr_text, v4_embeddable, uid_pool, uid_chars)"
PyDoc_STRVAR(bind_notice_doc, BIND_NOTICE_ARGS "\n\n"
                              "notice.record.Notice, flows.FlowNoticeText and flows.Flow (their slots are written and\n"
                              "read in place), the names of Flow's fields in order (the snapshot),\n"
                              "notice.text.addr_text and V4_EMBEDDABLE (the first bytes of the IPv6 addresses that\n"
                              "addr_text writes, not inet_ntop), flows.UID_POOL and UID_CHARS (new_uid's characters, and how\n"
                              "many of them a uid takes).");

static PyObject *bind_notice(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 8 || !PyTuple_Check(args[3]) || !PyCallable_Check(args[4]) || !PyBytes_Check(args[5])
        || PyBytes_GET_SIZE(args[5]) > 16) {
        PyErr_SetString(PyExc_TypeError, BIND_NOTICE_ARGS);
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(args[3]);
    if (count > MAX_FLOW_FIELDS) {
        PyErr_SetString(PyExc_ValueError, "bind_notice(): too many flow fields");
        return NULL;
    }
    const char *names[MAX_FLOW_FIELDS];
    for (Py_ssize_t i = 0; i < count; i++) {
        names[i] = PyUnicode_AsUTF8(PyTuple_GET_ITEM(args[3], i));
        if (names[i] == NULL)
            return NULL;
    }
    Py_ssize_t notice[N_NOTICE], text[N_TEXT_SLOTS], index[N_NOTICE_FLOW], all[MAX_FLOW_FIELDS], made[N_NEW_FLOW];
    if (slot_offsets(args[0], NOTICE_FIELDS, N_NOTICE, notice) < 0
        || slot_offsets(args[1], TEXT_FIELDS, N_TEXT_SLOTS, text) < 0
        || slot_offsets(args[2], names, (int)count, all) < 0
        || slot_offsets(args[2], NEW_FLOW_FIELDS, N_NEW_FLOW, made) < 0)
        return NULL;
    PyTypeObject *flow_class = (PyTypeObject *)args[2];
    if (flow_class->tp_dictoffset != 0 || flow_class->tp_itemsize != 0
        || flow_class->tp_basicsize != (Py_ssize_t)(sizeof(PyObject) + sizeof(PyObject *) * (size_t)count)) {
        PyErr_SetString(PyExc_TypeError, "bind_notice(): flow_type must hold its fields' slots and nothing else");
        return NULL;
    }
    for (int k = 0; k < N_NOTICE_FLOW; k++) {
        index[k] = -1;
        for (Py_ssize_t i = 0; i < count && index[k] < 0; i++)
            if (strcmp(names[i], NOTICE_FLOW_FIELDS[k]) == 0)
                index[k] = i;
        if (index[k] < 0) {
            PyErr_Format(PyExc_TypeError, "bind_notice(): no flow field %s", NOTICE_FLOW_FIELDS[k]);
            return NULL;
        }
    }
    memcpy(notice_slot, notice, sizeof notice);
    memcpy(text_slot, text, sizeof text);
    memcpy(notice_flow_index, index, sizeof index);
    memcpy(all_flow_slot, all, sizeof all[0] * (size_t)count);
    memcpy(new_flow_slot, made, sizeof made);
    all_flow_count = count;
    Py_XSETREF(notice_type, (PyTypeObject *)Py_NewRef(args[0]));
    Py_XSETREF(text_type, (PyTypeObject *)Py_NewRef(args[1]));
    Py_XSETREF(notice_flow_type, (PyTypeObject *)Py_NewRef(args[2]));
    Py_XSETREF(addr_text_func, Py_NewRef(args[4]));
    Py_ssize_t chars = PyLong_AsSsize_t(args[7]);
    if (chars == -1 && PyErr_Occurred())
        return NULL;
    uid_chars = chars;
    Py_ssize_t pool[N_UID_POOL];
    if (slot_offsets((PyObject *)Py_TYPE(args[6]), UID_POOL_FIELDS, N_UID_POOL, pool) < 0)
        return NULL;
    memcpy(uid_pool_slot, pool, sizeof pool);
    Py_XSETREF(uid_pool, Py_NewRef(args[6]));
    v4_embeddable_len = PyBytes_GET_SIZE(args[5]);
    memcpy(v4_embeddable, PyBytes_AS_STRING(args[5]), (size_t)v4_embeddable_len);
    Py_CLEAR(last_v6.entry[0].text);
    Py_CLEAR(last_v6.entry[1].text);
    Py_RETURN_NONE;
}

/* new_flow()'s Flow: args[0] the template (flows.NEW_FLOW), then src, dst, ts, allowlisted, icmp_type, icmp_code. */
static PyObject *flow_from_template(PyObject *const *args)
{
    PyObject *template = args[0];
    PyObject *flow = notice_flow_type->tp_alloc(notice_flow_type, 0);
    if (flow == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < all_flow_count; i++)
        SLOT(flow, all_flow_slot[i]) = Py_XNewRef(SLOT(template, all_flow_slot[i]));
    static const int given[N_NEW_FLOW] = {1, 2, 3, 3, 4, 5, 6}; /* args[] of each field set: start and last are ts */
    for (int k = 0; k < N_NEW_FLOW; k++)
        set_slot(flow, new_flow_slot[k], args[given[k]]);
    PyObject_GC_UnTrack(flow); /* no cycle runs through a flow: see record_copy */
    return flow;
}

PyDoc_STRVAR(new_flow_doc,
             "new_flow(template, src, dst, ts, allowlisted, icmp_type, icmp_code) -> Flow\n\n"
             "Flow(src, dst, ts, ts, allowlisted, icmp_type=icmp_type, icmp_code=icmp_code), the reference (flows.py\n"
             "FlowDetector._new_flow), made from `template` (a Flow holding every default: flows.NEW_FLOW) slot by\n"
             "slot: a notice storm makes one flow per packet.");

static PyObject *new_flow(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 7 || notice_flow_type == NULL || !Py_IS_TYPE(args[0], notice_flow_type)) {
        PyErr_SetString(PyExc_TypeError, "new_flow(template: Flow, src, dst, ts, allowlisted, icmp_type, icmp_code)"
                                         " after bind_notice()");
        return NULL;
    }
    return flow_from_template(args);
}

/* The dotted quad of 4 bytes into `text` (at least 16 bytes), as inet_ntoa writes it; its length. */
static Py_ssize_t dotted_quad(const unsigned char *a, char *text)
{
    char *out = text;
    for (int i = 0; i < 4; i++) {
        unsigned v = a[i];
        if (v >= 100)
            *out++ = (char)('0' + v / 100);
        if (v >= 10)
            *out++ = (char)('0' + v / 10 % 10);
        *out++ = (char)('0' + v % 10);
        *out++ = '.';
    }
    return out - text - 1;
}

/* inet_ntop's text of 16 bytes that do not start with V4_EMBEDDABLE into `text` (at least 40 bytes), its length:
 * RFC 5952, each group in lowercase hexadecimal without leading zeros, the longest run of two or more zero groups
 * (the first of the longest) written "::" (glibc resolv/inet_ntop.c inet_ntop6, whose IPv4-embedded forms need the
 * first ten bytes zero). inet_ntop wrote each group with sprintf: ~7 k instructions an address, a fifth of an IPv6
 * storm's packet. */
static Py_ssize_t ipv6_text(const unsigned char *a, char *text)
{
    static const char hex[] = "0123456789abcdef";
    unsigned groups[8];
    int best = -1, best_length = 1, run = -1; /* a run shorter than two groups is written as it is */
    for (int i = 0; i < 8; i++) {
        groups[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
        run = groups[i] != 0 ? -1 : run < 0 ? i : run;
        if (run >= 0 && i - run + 1 > best_length)
            best = run, best_length = i - run + 1;
    }
    char *out = text;
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            *out++ = ':';
            i += best_length - 1;
            if (i == 7)
                *out++ = ':';
            continue;
        }
        if (i != 0)
            *out++ = ':';
        for (int shift = 12; shift > 0; shift -= 4)
            if (groups[i] >> shift)
                *out++ = hex[groups[i] >> shift & 0xf];
        *out++ = hex[groups[i] & 0xf];
    }
    return out - text;
}

/* notice.text.addr_text: inet_ntoa's dotted quad for 4 bytes, inet_ntop's text for 16 (as addr_text writes them
 * but where they start with V4_EMBEDDABLE), the Python function for any other. The last two IPv4 and the last two
 * IPv6 addresses' texts are kept: a storm's notices name one target (a text made once, and the same object, which
 * the aggregator's keys then find by identity), each of two notices a flow its source. */

static PyObject *address_text(PyObject *packed)
{
    Py_ssize_t n = PyBytes_Check(packed) ? PyBytes_GET_SIZE(packed) : 0;
    const unsigned char *a = (const unsigned char *)(PyBytes_Check(packed) ? PyBytes_AS_STRING(packed) : "");
    LastTexts *kept = n == 4 ? &last_v4
                      : n == 16 && memcmp(a, v4_embeddable, (size_t)v4_embeddable_len) != 0 ? &last_v6 : NULL;
    if (kept == NULL)
        return PyObject_CallOneArg(addr_text_func, packed);
    for (int i = 0; i < 2; i++) {
        if (kept->entry[i].text != NULL && memcmp(a, kept->entry[i].address, (size_t)n) == 0) {
            kept->older = 1 - i;
            return Py_NewRef(kept->entry[i].text);
        }
    }
    LastText *last = &kept->entry[kept->older];
    kept->older = 1 - kept->older;
    char text[40]; /* the longest: eight groups of four digits and seven colons */
    Py_ssize_t length = n == 4 ? dotted_quad(a, text) : ipv6_text(a, text);
    PyObject *made = PyUnicode_New(length, 127);
    if (made == NULL)
        return NULL;
    memcpy(PyUnicode_1BYTE_DATA(made), text, (size_t)length);
    memcpy(last->address, a, (size_t)n);
    Py_XSETREF(last->text, Py_NewRef(made));
    return made;
}

/* Set every slot of a fresh instance (all NULL) from values[], stealing the references; on a NULL value all the
 * others are released and -1 returned (the instance's dealloc releases what was set). */
static int fill_slots(PyObject *obj, const Py_ssize_t *offsets, PyObject **values, int count)
{
    int failed = 0;
    for (int i = 0; i < count; i++)
        failed |= values[i] == NULL;
    for (int i = 0; i < count; i++) {
        if (failed)
            Py_XDECREF(values[i]);
        else
            SLOT(obj, offsets[i]) = values[i];
    }
    return failed ? -1 : 0;
}

/* Flow.bytes_sent (orig_bytes + resp_bytes + other_bytes, added in that order), a new reference or NULL. */
static PyObject *bytes_sent_of(PyObject *orig, PyObject *resp, PyObject *other)
{
    PyObject *partial = PyNumber_Add(orig, resp);
    PyObject *sent = partial != NULL ? PyNumber_Add(partial, other) : NULL;
    Py_XDECREF(partial);
    return sent;
}

/* AggregateApi.try_fold for the notice tagged_notice would make (the flow's uid made, as _notice makes it): 1 folded
 * (counted in `unmade`), 0 not (make it), -1 with an exception. */
static int folded_unmade(FastPath *self, PyObject *flow, PyObject *ts, PyObject *note)
{
    if (all_flow_count < 0 || !PyObject_TypeCheck(flow, notice_flow_type))
        return 0; /* flow_notice tells */
    PyObject *uid = flow_uid_of(flow); /* first: it may run Python, after which the slots are read */
    if (uid == NULL)
        return -1;
#define FLOW(field) SLOT(flow, all_flow_slot[notice_flow_index[field]])
    PyObject *src = FLOW(NF_SRC), *dst = FLOW(NF_DST), *orig = FLOW(NF_ORIG), *resp = FLOW(NF_RESP);
    PyObject *other = FLOW(NF_OTHER);
#undef FLOW
    if (src == NULL || dst == NULL || orig == NULL || resp == NULL || other == NULL) {
        Py_DECREF(uid);
        return 0;
    }
    PyObject *sent = bytes_sent_of(orig, resp, other);
    Py_INCREF(src); /* held: address_text may call addr_text (an address neither 4 nor 16 bytes) */
    Py_INCREF(dst);
    PyObject *src_text = sent == NULL ? NULL : address_text(src);
    PyObject *dst_text = src_text == NULL ? NULL : address_text(dst);
    Py_DECREF(src);
    Py_DECREF(dst);
    int folded = dst_text == NULL ? -1
                 : aggregate_api->try_fold(self->fold_into, ts, note, src_text, dst_text, uid, sent);
    self->unmade += folded > 0;
    Py_XDECREF(uid);
    Py_XDECREF(sent);
    Py_XDECREF(src_text);
    Py_XDECREF(dst_text);
    return folded;
}

#define FLOW_NOTICE_ARGS "flow_notice(flow, ts, note, msg, fields, novel_bytes, extra_text, extra, tool, channels, uid)"
PyDoc_STRVAR(flow_notice_doc, FLOW_NOTICE_ARGS " -> Notice\n\n"
                              "The notice flows.FlowDetector._notice makes (its reference), the uid and the profile's\n"
                              "tags given.");

static PyObject *flow_notice(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 11) {
        PyErr_SetString(PyExc_TypeError, FLOW_NOTICE_ARGS);
        return NULL;
    }
    if (all_flow_count < 0) {
        PyErr_SetString(PyExc_RuntimeError, "flow_notice() before bind_notice()");
        return NULL;
    }
    PyObject *flow = args[0];
    if (!PyObject_TypeCheck(flow, notice_flow_type)) {
        PyErr_SetString(PyExc_TypeError, "flow_notice(): not a Flow");
        return NULL;
    }
    PyObject *snapshot = PyTuple_New(all_flow_count);
    if (snapshot == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < all_flow_count; i++) {
        PyObject *value = SLOT(flow, all_flow_slot[i]);
        if (value == NULL) {
            PyErr_SetString(PyExc_AttributeError, "flow_notice(): a Flow field is unset");
            Py_DECREF(snapshot);
            return NULL;
        }
        PyTuple_SET_ITEM(snapshot, i, Py_NewRef(value));
    }
    untracked_if_atomic(snapshot); /* a flow without a capacity state: a storm's */
    PyObject *text = text_type->tp_alloc(text_type, 0);
    if (text == NULL) {
        Py_DECREF(snapshot);
        return NULL;
    }
    PyObject *text_values[N_TEXT_SLOTS] = {snapshot, Py_NewRef(args[3]), Py_NewRef(args[4]), Py_NewRef(args[5]),
                                           Py_NewRef(args[6]), Py_NewRef(args[7])};
    fill_slots(text, text_slot, text_values, N_TEXT_SLOTS);  /* none is NULL */

#define FLOW(field) PyTuple_GET_ITEM(snapshot, notice_flow_index[field]) /* borrowed from the snapshot */
    PyObject *sent = bytes_sent_of(FLOW(NF_ORIG), FLOW(NF_RESP), FLOW(NF_OTHER));
    PyObject *values[N_NOTICE] = {
        [NT_TS] = Py_NewRef(args[1]),
        [NT_NOTE] = Py_NewRef(args[2]),
        [NT_MSG] = Py_NewRef(empty_str),
        [NT_SUB] = Py_NewRef(empty_str),
        [NT_TEXT] = text,
        [NT_SRC] = address_text(FLOW(NF_SRC)),
        [NT_DST] = address_text(FLOW(NF_DST)),
        [NT_UID] = Py_NewRef(args[10]),
        [NT_N] = Py_NewRef(FLOW(NF_N)),
        [NT_BYTES_SENT] = sent,
        [NT_BYTES_RECEIVED] = Py_NewRef(FLOW(NF_RECEIVED)),
        [NT_START] = Py_NewRef(FLOW(NF_START)),
        [NT_END] = Py_NewRef(FLOW(NF_LAST)),
        [NT_NOVEL_BYTES] = Py_NewRef(args[5]),
        [NT_EVIDENCE] = Py_NewRef(empty_str),
        [NT_ICMP_TYPE] = Py_NewRef(FLOW(NF_TYPE)),
        [NT_ICMP_CODE] = Py_NewRef(FLOW(NF_CODE)),
        [NT_TOOL] = Py_NewRef(args[8]),
        [NT_CHANNELS] = Py_NewRef(args[9]),
        [NT_PEERS] = Py_NewRef(zero),
    };
#undef FLOW
    PyObject *notice = PyErr_Occurred() ? NULL : notice_type->tp_alloc(notice_type, 0);
    if (notice == NULL) {
        for (int i = 0; i < N_NOTICE; i++)
            Py_XDECREF(values[i]);
        return NULL;
    }
    if (fill_slots(notice, notice_slot, values, N_NOTICE) < 0) {
        Py_DECREF(notice);
        return NULL;
    }
    /* Untracked, as the records record_copy makes: nothing the notice or its text holds can hold either (numbers,
     * str, the snapshot of a flow, its fields, channels and the profile's function), so no cycle runs through them,
     * and a young collection does not walk the notices a storm has alive at once (a flush's summaries). */
    PyObject_GC_UnTrack(text);
    PyObject_GC_UnTrack(notice);
    return notice;
}

/* -- the module ------------------------------------------------------------------------------------------- */

PyDoc_STRVAR(explain_may_match_doc, "explain_may_match(payload, max_uptime, max_pattern) -> bool\n\n"
                                    "Whether fingerprints.explain may find a template for `payload` (bytes): False\n"
                                    "where it certainly returns None, so the C path need not call it.");

static PyObject *explain_may_match_py(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "explain_may_match(payload: bytes, max_uptime: int, max_pattern: int)");
        return NULL;
    }
    long max_uptime = PyLong_AsLong(args[1]);
    Py_ssize_t max_pattern = max_uptime == -1 && PyErr_Occurred() ? -1 : PyLong_AsSsize_t(args[2]);
    if (max_pattern == -1 && PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(explain_may_match((const unsigned char *)PyBytes_AS_STRING(args[0]),
                                             PyBytes_GET_SIZE(args[0]), max_uptime, max_pattern));
}

PyDoc_STRVAR(channel_tags_doc,
             "channel_tags(flow, payload, nonecho) -> (carried, channels) or None\n\n"
             "What the path's notices take for Detector._tags' channel_bytes(flow) (its reference), `payload` and\n"
             "`nonecho` its channels' names, and for the names joined: None where the flow's fields are not the\n"
             "reference's types (the path leaves its notices to Python).");

static PyObject *channel_tags_py(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3 || !PyUnicode_CheckExact(args[1]) || !PyUnicode_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "channel_tags(flow, payload: str, nonecho: str)");
        return NULL;
    }
    if (flow_type == NULL || !flow_tags_known(args[0]))
        Py_RETURN_NONE;
    PyObject *carried, *names;
    if (channel_tags(args[1], args[2], args[0], &carried, &names) < 0)
        return NULL;
    return Py_BuildValue("(NN)", carried, names);
}

PyDoc_STRVAR(padding_may_match_doc, "padding_may_match(payload) -> bool\n\n"
                                    "Whether capacity.random_padding may find the payload a random-padding library's "
                                    "(False: it does not; looser than it, never stricter).");

static PyObject *padding_may_match_py(PyObject *self, PyObject *payload)
{
    (void)self;
    if (!PyBytes_Check(payload)) {
        PyErr_SetString(PyExc_TypeError, "padding_may_match(payload: bytes)");
        return NULL;
    }
    return PyBool_FromLong(padding_may_match((const unsigned char *)PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload)));
}

PyDoc_STRVAR(peers_held_doc,
             "peers_held(memories) -> int\n\n"
             "The peers the hosts' memories hold, summed: SpreadMemory.peer_count (the reference) of each, the size of\n"
             "its peers set, 1 for a peer kept as itself, 0 for none (a full hosts' table sheds an eighth of its hosts\n"
             "at once: HostTable._shed).");

static PyObject *peers_held(PyObject *self, PyObject *memories)
{
    (void)self;
    PyObject *iterator = PyObject_GetIter(memories), *memory;
    if (iterator == NULL)
        return NULL;
    Py_ssize_t held = 0;
    int failed = 0;
    while (!failed && (memory = PyIter_Next(iterator)) != NULL) {
        PyObject *peers = PyObject_GetAttr(memory, str_peers);
        int some = peers == NULL ? -1 : PySet_Check(peers) ? 0 : PyObject_IsTrue(peers);
        failed = some < 0;
        held += peers != NULL && PySet_Check(peers) ? PySet_GET_SIZE(peers) : some > 0;
        Py_XDECREF(peers);
        Py_DECREF(memory);
    }
    Py_DECREF(iterator);
    return failed || PyErr_Occurred() ? NULL : PyLong_FromSsize_t(held);
}

/* A host in shed_hosts: its ExfilSpread not told past `now` (0 told, 1 not), its peers, its place in the table, and
 * its key and memory (strong references). */
typedef struct {
    int unreported;
    Py_ssize_t peers, at;
    PyObject *key, *memory;
} HostRank;

/* The table's order. */
static int host_place_order(const void *a, const void *b)
{
    const HostRank *x = a, *y = b;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* Forgotten first: told, then the fewest peers, then the least recently active. */
static int host_rank_order(const void *a, const void *b)
{
    const HostRank *x = a, *y = b;
    if (x->unreported != y->unreported)
        return x->unreported < y->unreported ? -1 : 1;
    if (x->peers != y->peers)
        return x->peers < y->peers ? -1 : 1;
    return host_place_order(a, b);
}

/* Where shed_hosts reads a SpreadMemory's peers and alerted_until: the slots of `type` (the first host's), read in
 * place in the memories of that exact type; others (none, but the reference's tests allow them) by attribute. */
typedef struct {
    PyTypeObject *type;
    Py_ssize_t peers, alerted_until;
} HostSlots;

static void host_slots(PyObject *memory, HostSlots *slots)
{
    static const char *const names[2] = {"peers", "alerted_until"};
    Py_ssize_t offsets[2];
    slots->type = NULL;
    if (slot_offsets((PyObject *)Py_TYPE(memory), names, 2, offsets) < 0) {
        PyErr_Clear(); /* not a slots class: read by attribute */
        return;
    }
    slots->type = Py_TYPE(memory), slots->peers = offsets[0], slots->alerted_until = offsets[1];
}

/* SpreadMemory.peer_count() of rank->memory, and whether its alerted_until <= now; -1 with an exception. */
static int host_rank(PyObject *now, const HostSlots *slots, HostRank *rank)
{
    PyObject *peers = slot_or_attr(rank->memory, slots->type, slots->peers, str_peers);
    int some = peers == NULL ? -1 : PySet_Check(peers) ? 1 : PyObject_IsTrue(peers);
    rank->peers = some <= 0 ? 0 : PySet_Check(peers) ? PySet_GET_SIZE(peers) : 1;
    Py_XDECREF(peers);
    PyObject *until = some < 0 ? NULL : slot_or_attr(rank->memory, slots->type, slots->alerted_until, str_alerted_until);
    rank->unreported = report_over(until, now);
    Py_XDECREF(until);
    return rank->unreported < 0 ? -1 : 0;
}

PyDoc_STRVAR(shed_hosts_doc,
             "shed_hosts(hosts, now) -> list\n\n"
             "standard._shed_hosts_py (the reference): of the least recently active quarter of `hosts` (a dict of\n"
             "SpreadMemory, oldest first), an eighth of them taken out: those whose alerted_until is past `now` first,\n"
             "then the fewest peers, the least recently active first among equals; their memories, in the table's order.");

static PyObject *shed_hosts(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2 || !PyDict_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "shed_hosts(hosts: dict, now)");
        return NULL;
    }
    PyObject *hosts = args[0], *now = args[1];
    Py_ssize_t size = PyDict_GET_SIZE(hosts), quarter = size == 0 ? 0 : size / 4 + 1, drop = size / 8 + 1;
    HostRank *ranks = PyMem_New(HostRank, quarter + 1);
    PyObject *out = ranks == NULL ? PyErr_NoMemory() : PyList_New(0);
    Py_ssize_t taken = 0, pos = 0;
    PyObject *key, *memory;
    HostSlots slots = {NULL, 0, 0};
    int failed = out == NULL;
    while (!failed && taken < quarter && PyDict_Next(hosts, &pos, &key, &memory)) {
        HostRank *rank = &ranks[taken];
        rank->key = Py_NewRef(key), rank->memory = Py_NewRef(memory), rank->at = taken++;
        if (rank->at == 0)
            host_slots(memory, &slots);
        failed = host_rank(now, &slots, rank) < 0;
    }
    if (!failed && PyDict_GET_SIZE(hosts) != size) { /* a comparison's __eq__ changed the table */
        PyErr_SetString(PyExc_RuntimeError, "shed_hosts: the table changed while it was ranked");
        failed = 1;
    }
    if (!failed) {
        if (drop > taken)
            drop = taken;
        qsort(ranks, (size_t)taken, sizeof *ranks, host_rank_order);
        qsort(ranks, (size_t)drop, sizeof *ranks, host_place_order); /* the forgotten, in the table's order */
        for (Py_ssize_t i = 0; !failed && i < drop; i++)
            failed = PyList_Append(out, ranks[i].memory) < 0 || PyDict_DelItem(hosts, ranks[i].key) < 0;
    }
    for (Py_ssize_t i = 0; i < taken; i++) {
        Py_DECREF(ranks[i].key);
        Py_DECREF(ranks[i].memory);
    }
    PyMem_Free(ranks);
    if (failed)
        Py_CLEAR(out);
    return out;
}

PyDoc_STRVAR(requests_expired_doc,
             "requests_expired(pending, cutoff) -> int\n\n"
             "FlowDetector._sweep's loop over its pending requests (its reference): the requests of `pending` (an\n"
             "OrderedDict of (sketch, sent_at)), oldest first, removed while sent at or before `cutoff`; how many. It\n"
             "stops at a request whose time is not a float (the caller's loop goes on from there).");

static PyObject *requests_expired(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2 || !PyODict_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "requests_expired(pending: OrderedDict, cutoff: float)");
        return NULL;
    }
    PyObject *pending = args[0];
    Py_ssize_t expired = 0, count = 0, at = 0;
    PyObject *keys[OLDEST_BATCH];
    int failed = 0, stopped = !PyFloat_CheckExact(args[1]);
    double cutoff = stopped ? 0.0 : PyFloat_AS_DOUBLE(args[1]);
    while (!failed && !stopped) {
        PyObject *key = next_oldest(pending, keys, &at, &count, &failed);
        if (key == NULL)
            break;
        PyObject *entry = PyDict_GetItemWithError(pending, key); /* borrowed */
        PyObject *sent_at = entry != NULL && PyTuple_CheckExact(entry) && PyTuple_GET_SIZE(entry) == 2
                                ? PyTuple_GET_ITEM(entry, 1) : NULL;
        if (sent_at == NULL || !PyFloat_CheckExact(sent_at) || PyFloat_AS_DOUBLE(sent_at) > cutoff)
            failed = PyErr_Occurred() != NULL, stopped = 1;
        else if (PyObject_DelItem(pending, key) < 0)
            failed = 1;
        else
            expired++;
        Py_DECREF(key);
    }
    keys_left(keys, at, count);
    return failed ? NULL : PyLong_FromSsize_t(expired);
}

/* -- capacity.field_bits (its reference): the few places where a request differs from the sender's previous one,
 * read as counters and clocks --------------------------------------------------------------------------------------
 * The arithmetic is Python's: an int's conversion to a float correctly rounded (__int128 to double), float %
 * of a positive divisor (py_mod), math.log2 of an int as of the float it converts to, min() keeping the first of
 * equals. The limits come from capacity (bind_fields). */

typedef __int128 wide;

static Py_ssize_t fields_max_places = -1, fields_max_bytes, fields_max_digits, fields_max_decimal_place;
static long fields_counter_free;
static double fields_same_instant, fields_time_unit;
static double clock_rates[8], decimal_rates[16];
static int n_clock_rates, n_decimal_rates;

typedef struct {
    double cost;
    int has_clock;
    double offset, resolution; /* the clock's send time's offset from the capture clock, its resolution */
} Reading;

static int is_decimal(unsigned char c) { return (c >= '0' && c <= '9') || c == '.'; }

static wide wide_mod(wide x, wide w) /* Python's int x % w, w > 0 */
{
    wide m = x % w;
    return m < 0 ? m + w : m;
}

static double step_bits_wide(wide delta, long free_steps) /* capacity.step_bits */
{
    wide excess = (delta < 0 ? -delta : delta) - free_steps;
    return excess > 0 ? log2((double)(1 + excess)) : 0.0;
}

static double excess_bits(double residual, double free_units) /* capacity._excess_bits */
{
    double excess = fabs(residual) - free_units;
    return excess > 0 ? log2(1 + excess) : 0.0;
}

static void cheaper(Reading *r, double residual, double free_units, double rate) /* capacity._cheaper */
{
    double bits = excess_bits(residual, free_units);
    if (bits >= r->cost)
        return;
    r->cost = bits;
    r->has_clock = bits == 0.0;
    if (r->has_clock)
        r->offset = residual / rate, r->resolution = 1.0 / rate;
}

/* capacity._decimal_segments: the runs of decimal text in [start, end), or 0 segments (None); at most 32 of them */
static int decimal_segments(const unsigned char *a, const unsigned char *b, Py_ssize_t start, Py_ssize_t end,
                            Py_ssize_t seg[][2])
{
    if (end - start > fields_max_decimal_place)
        return 0;
    int n = 0;
    Py_ssize_t first = -1;
    for (Py_ssize_t i = start; i < end; i++) {
        if (is_decimal(a[i]) && is_decimal(b[i])) {
            if (first < 0)
                first = i;
            continue;
        }
        if (a[i] != b[i])
            return 0;
        if (first >= 0) {
            seg[n][0] = first, seg[n][1] = i, n++;
            first = -1;
        }
    }
    if (first >= 0)
        seg[n][0] = first, seg[n][1] = end, n++;
    return n;
}

/* capacity._decimal_number: 1 with new, old and digits, or 0 (None) */
static int decimal_number(const unsigned char *a, const unsigned char *b, Py_ssize_t n, Py_ssize_t start,
                          Py_ssize_t end, wide *new_value, wide *old_value, int *digits)
{
    Py_ssize_t lo = start, hi = end;
    while (lo > 0 && is_decimal(a[lo - 1]) && is_decimal(b[lo - 1]))
        lo--;
    while (hi < n && is_decimal(a[hi]) && is_decimal(b[hi]))
        hi++;
    Py_ssize_t new_point = -1, old_point = -1;
    int new_points = 0, old_points = 0;
    for (Py_ssize_t i = lo; i < hi; i++) {
        if (a[i] == '.' && new_points++ == 0)
            new_point = i;
        if (b[i] == '.' && old_points++ == 0)
            old_point = i;
    }
    if (new_points > 1 || old_points > 1 || new_point != old_point)
        return 0;
    Py_ssize_t count = hi - lo - new_points;
    if (count <= 0 || count > fields_max_digits)
        return 0;
    wide x = 0, y = 0;
    for (Py_ssize_t i = lo; i < hi; i++) {
        if (a[i] != '.')
            x = x * 10 + (a[i] - '0');
        if (b[i] != '.')
            y = y * 10 + (b[i] - '0');
    }
    *new_value = x, *old_value = y, *digits = (int)count;
    return 1;
}

/* capacity._decimal_cost */
static Reading decimal_cost(wide new_value, wide old_value, int digits, double dt, double jitter)
{
    wide delta = new_value - old_value;
    Reading r = {step_bits_wide(delta - 1, fields_counter_free), 0, 0.0, 0.0};
    static const int wraps[2] = {60, 24};
    for (int k = 0; k < 2; k++) {
        wide wrap = wraps[k];
        if (new_value < wrap && old_value < wrap) {
            double bits = step_bits_wide(wide_mod(delta - 1 + wrap / 2, wrap) - wrap / 2, fields_counter_free);
            if (bits < r.cost)
                r.cost = bits;
        }
    }
    if (r.cost == 0.0)
        return r;
    wide room = 1;
    for (int k = 0; k < digits; k++)
        room *= 10;
    double new_f = (double)new_value, old_f = (double)old_value, room_f = (double)room;
    for (int k = 0; k < n_decimal_rates; k++) {
        double rate = decimal_rates[k], free_units = rate * jitter + 1, residual = (double)delta - rate * dt;
        cheaper(&r, residual, free_units, rate);
        double wraps_f[2] = {rate, 60 * rate};
        for (int w = 0; w < 2; w++) {
            double wrap = wraps_f[w];
            if (wrap > 1 && new_f < wrap && old_f < wrap && room_f >= wrap)
                cheaper(&r, py_mod(residual + wrap / 2, wrap) - wrap / 2, free_units, rate);
        }
    }
    return r;
}

/* capacity._decimal_place_cost */
static Reading decimal_place_cost(const unsigned char *a, const unsigned char *b, Py_ssize_t n, Py_ssize_t start,
                                  Py_ssize_t end, double dt, double jitter)
{
    Reading none = {INFINITY, 0, 0.0, 0.0}, total = {0.0, 0, 0.0, 0.0};
    Py_ssize_t seg[64][2];
    int count = decimal_segments(a, b, start, end, seg);
    if (count == 0)
        return none;
    for (int k = 0; k < count; k++) {
        wide x, y;
        int digits;
        if (!decimal_number(a, b, n, seg[k][0], seg[k][1], &x, &y, &digits))
            return none;
        Reading one = decimal_cost(x, y, digits, dt, jitter);
        total.cost += one.cost;
        total.has_clock = one.has_clock, total.offset = one.offset, total.resolution = one.resolution;
    }
    if (count != 1)
        total.has_clock = 0;
    return total;
}

static uint64_t read_uint(const unsigned char *p, int width, int big)
{
    uint64_t v = 0;
    for (int k = 0; k < width; k++)
        v |= (uint64_t)p[big ? width - 1 - k : k] << (8 * k);
    return v;
}

static double read_double(const unsigned char *p, int big)
{
    uint64_t bits = read_uint(p, 8, big);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* capacity._double_clock_cost */
static double double_clock_cost(const unsigned char *a, const unsigned char *b, Py_ssize_t n, Py_ssize_t start,
                                Py_ssize_t end, double dt, double jitter)
{
    Py_ssize_t lo = start - start % 8;
    if (end > lo + 8 || lo + 8 > n)
        return INFINITY;
    double best = INFINITY;
    for (int big = 1; big >= 0; big--) { /* ">d", then "<d" */
        double x = read_double(a + lo, big), y = read_double(b + lo, big);
        if (isfinite(x) && isfinite(y) && fabs(x) < 1e12) {
            double excess = fabs(x - y - dt - 0.0) - jitter; /* time_bits(x - y - dt, 0.0, jitter) */
            double bits = excess > 0 ? log2(1 + excess / fields_time_unit) : 0.0;
            if (bits < best)
                best = bits;
        }
    }
    return best;
}

/* capacity._field_cost */
static Reading field_cost(const unsigned char *a, const unsigned char *b, Py_ssize_t n, Py_ssize_t start,
                          Py_ssize_t end, double dt, double jitter)
{
    Reading best = {8.0 * (double)(end - start), 0, 0.0, 0.0};
    static const int widths[3] = {2, 4, 8};
    for (int w = 0; w < 3; w++) {
        int width = widths[w];
        Py_ssize_t lo = start - start % width;
        if (end > lo + width || lo + width > n)
            continue;
        for (int big = 0; big < 2; big++) { /* "little", then "big" */
            uint64_t x = read_uint(a + lo, width, big), y = read_uint(b + lo, width, big);
            wide delta = (wide)x - (wide)y;
            Reading r = {step_bits_wide(delta - 1, fields_counter_free), 0, 0.0, 0.0};
            if (r.cost == 0.0) {
                Reading free_reading = {0.0, 0, 0.0, 0.0};
                return free_reading;
            }
            double x_f = (double)x, y_f = (double)y, delta_f = (double)delta;
            for (int k = 0; k < n_clock_rates; k++) {
                double rate = clock_rates[k], free_units = rate * jitter + 1, residual = delta_f - rate * dt;
                cheaper(&r, residual, free_units, rate);
                if (rate > 1 && x_f < rate && y_f < rate && (width == 8 || (double)((uint64_t)1 << (8 * width)) > rate))
                    cheaper(&r, py_mod(residual + rate / 2, rate) - rate / 2, free_units, rate);
            }
            if (r.cost < best.cost)
                best = r;
        }
    }
    if (end - start <= 8 && n >= 8) {
        double d = double_clock_cost(a, b, n, start, end, dt, jitter);
        if (d < best.cost) {
            best.cost = d;
            best.has_clock = 0;
        }
    }
    return best;
}

/* capacity._places: the number of places (0..max_places) in place[][2], or -1 (None) */
static int field_places(const unsigned char *a, const unsigned char *b, Py_ssize_t n, Py_ssize_t place[][2])
{
    int count = 0;
    Py_ssize_t i = 0, seg[64][2];
    while (i < n) {
        if (a[i] == b[i]) {
            i++;
            continue;
        }
        Py_ssize_t start = i;
        while (i < n && (a[i] != b[i] || (i + 1 < n && a[i + 1] != b[i + 1])))
            i++;
        int joined = 0;
        if (count > 0) {
            int gap_decimal = 1;
            for (Py_ssize_t k = place[count - 1][1]; k < start; k++)
                gap_decimal &= is_decimal(a[k]);
            if (gap_decimal && decimal_segments(a, b, place[count - 1][0], i, seg) > 0) {
                start = place[--count][0];
                joined = 1;
            }
        }
        if (!joined && count == fields_max_places)
            return -1;
        if (i - start > fields_max_bytes && decimal_segments(a, b, start, i, seg) == 0)
            return -1;
        place[count][0] = start, place[count][1] = i, count++;
    }
    return count;
}

/* capacity._apart_bits */
static double apart_bits(const Reading *clock, const Reading *anchor)
{
    double slack = fields_same_instant;
    if (clock->resolution > slack)
        slack = clock->resolution;
    if (anchor->resolution > slack)
        slack = anchor->resolution;
    return excess_bits((clock->offset - anchor->offset) / clock->resolution, slack / clock->resolution);
}

PyDoc_STRVAR(field_bits_doc,
             "field_bits(current: bytes, previous: bytes, dt: float, jitter: float) -> float | None\n\n"
             "capacity.field_bits_reference in C (held equal by tests/unit/test_capacity.py).");

static PyObject *field_bits_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1])
        || PyBytes_GET_SIZE(args[0]) != PyBytes_GET_SIZE(args[1])) {
        PyErr_SetString(PyExc_TypeError, "field_bits(current, previous, dt, jitter): two bytes of one length");
        return NULL;
    }
    if (fields_max_places < 0) {
        PyErr_SetString(PyExc_RuntimeError, "field_bits(): bind_fields() was not called");
        return NULL;
    }
    double dt = PyFloat_AsDouble(args[2]), jitter = PyFloat_AsDouble(args[3]);
    if (PyErr_Occurred())
        return NULL;
    const unsigned char *a = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]), place[64][2];
    int count = field_places(a, b, n, place);
    if (count < 0)
        Py_RETURN_NONE;
    double total = 0.0;
    Reading clocks[64];
    int n_clocks = 0;
    for (int k = 0; k < count; k++) {
        Reading f = field_cost(a, b, n, place[k][0], place[k][1], dt, jitter);
        Reading d = decimal_place_cost(a, b, n, place[k][0], place[k][1], dt, jitter);
        /* min(..., key=_by_cost): (cost, has clock), the first of equals */
        Reading r = d.cost < f.cost || (d.cost == f.cost && !d.has_clock && f.has_clock) ? d : f;
        if (!r.has_clock)
            total += r.cost;
        else
            clocks[n_clocks++] = r;
    }
    if (n_clocks > 1) {
        double least = 0.0;
        for (int anchor = 0; anchor < n_clocks; anchor++) {
            double sum = 0.0;
            for (int k = 0; k < n_clocks; k++)
                sum += apart_bits(&clocks[k], &clocks[anchor]);
            if (anchor == 0 || sum < least)
                least = sum;
        }
        total += least;
    }
    return PyFloat_FromDouble(total);
}

PyDoc_STRVAR(bind_fields_doc,
             "bind_fields(max_places, max_bytes, max_digits, max_decimal_place, counter_free, same_instant, "
             "time_unit, clock_rates, decimal_rates, readings, reading_refill)\n\ncapacity's limits and rates for "
             "field_bits, and the readings' budget (FIELD_READINGS, FIELD_READING_REFILL).");

static int read_rates(PyObject *seq, double *out, int room, int *count)
{
    PyObject *fast = PySequence_Fast(seq, "bind_fields(): rates must be a sequence");
    if (fast == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > room) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_ValueError, "bind_fields(): too many rates");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        out[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(fast, i));
    Py_DECREF(fast);
    *count = (int)n;
    return PyErr_Occurred() ? -1 : 0;
}

static PyObject *bind_fields(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 11) {
        PyErr_SetString(PyExc_TypeError, "bind_fields() takes 11 arguments");
        return NULL;
    }
    Py_ssize_t places = PyLong_AsSsize_t(args[0]), bytes = PyLong_AsSsize_t(args[1]);
    Py_ssize_t digits = PyLong_AsSsize_t(args[2]), decimal_place = PyLong_AsSsize_t(args[3]);
    long counter_free = PyLong_AsLong(args[4]);
    double same_instant = PyFloat_AsDouble(args[5]), time_unit = PyFloat_AsDouble(args[6]);
    double readings = PyFloat_AsDouble(args[9]), reading_refill = PyFloat_AsDouble(args[10]);
    if (PyErr_Occurred())
        return NULL;
    /* the fixed arrays above: at most 63 places (a place is 1 byte apart at least), 38 digits in an __int128 */
    if (places < 1 || places > 32 || bytes < 1 || digits < 1 || digits > 36 || decimal_place < 1
        || decimal_place > 60 || !(time_unit > 0) || !(readings >= 1.0) || !(reading_refill > 0.0)) {
        PyErr_SetString(PyExc_ValueError, "bind_fields(): limits out of this build's range");
        return NULL;
    }
    if (read_rates(args[7], clock_rates, 8, &n_clock_rates) < 0
        || read_rates(args[8], decimal_rates, 16, &n_decimal_rates) < 0)
        return NULL;
    fields_max_places = places, fields_max_bytes = bytes, fields_max_digits = digits;
    fields_max_decimal_place = decimal_place, fields_counter_free = counter_free;
    fields_same_instant = same_instant, fields_time_unit = time_unit;
    fields_burst = readings, fields_refill = reading_refill;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"padding_may_match", (PyCFunction)padding_may_match_py, METH_O, padding_may_match_doc},
    {"requests_expired", (PyCFunction)(void (*)(void))requests_expired, METH_FASTCALL, requests_expired_doc},
    {"peers_held", (PyCFunction)peers_held, METH_O, peers_held_doc},
    {"shed_hosts", (PyCFunction)(void (*)(void))shed_hosts, METH_FASTCALL, shed_hosts_doc},
    {"bind", (PyCFunction)(void (*)(void))bind_records, METH_FASTCALL, bind_doc},
    {"channel_tags", (PyCFunction)(void (*)(void))channel_tags_py, METH_FASTCALL, channel_tags_doc},
    {"explain_may_match", (PyCFunction)(void (*)(void))explain_may_match_py, METH_FASTCALL, explain_may_match_doc},
    {"new_flow", (PyCFunction)(void (*)(void))new_flow, METH_FASTCALL, new_flow_doc},
    {"request_header", (PyCFunction)(void (*)(void))request_header, METH_FASTCALL, request_header_doc},
    {"bind_notice", (PyCFunction)(void (*)(void))bind_notice, METH_FASTCALL, bind_notice_doc},
    {"flow_notice", (PyCFunction)(void (*)(void))flow_notice, METH_FASTCALL, flow_notice_doc},
    {"field_bits", (PyCFunction)(void (*)(void))field_bits_py, METH_FASTCALL, field_bits_doc},
    {"bind_fields", (PyCFunction)(void (*)(void))bind_fields, METH_FASTCALL, bind_fields_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "icmpsensor.detect._fastflows",
    "The standard detector's per-packet path in C for echo messages that change no decision "
    "(detect/standard.py is the reference).",
    -1, methods, NULL, NULL, NULL, NULL,
};

static int intern(PyObject **out, const char *text)
{
    *out = PyUnicode_InternFromString(text);
    return *out == NULL ? -1 : 0;
}

PyMODINIT_FUNC PyInit__fastflows(void)
{
    if (intern(&str_now, "now") < 0 || intern(&str_next_sweep, "_next_sweep") < 0
        || intern(&str_last_novel, "last_novel") < 0 || intern(&str_run_free, "_run_free") < 0
        || intern(&str_flows, "_flows") < 0 || intern(&str_pending, "_pending") < 0
        || intern(&str_stats, "stats") < 0 || intern(&str_move_to_end, "move_to_end") < 0
        || intern(&str_popitem, "popitem") < 0 || intern(&str_last, "last") < 0 || intern(&str_touch, "touch") < 0
        || intern(&str_allowlist, "allowlist") < 0 || intern(&str_fields_due, "_fields_due") < 0
        || intern(&str_pairs, "_pairs") < 0 || intern(&str_empty, "empty") < 0 || intern(&str_peers, "peers") < 0
        || intern(&str_novel, "novel") < 0
        || intern(&str_slow_alerted_until, "slow_alerted_until") < 0
        || intern(&str_alerted_until, "alerted_until") < 0
        || intern(&str_shed, "_shed") < 0 || intern(&str_length, "length") < 0
        || intern(&str_ident, "ident") < 0 || intern(&str_seq, "seq") < 0 || intern(&str_options, "options") < 0
        || intern(&str_ensure_uid, "ensure_uid") < 0
        || intern(&str_tool, "tool") < 0 || intern(&str_evidence, "evidence") < 0
        || intern(&str_format, "format") < 0 || intern(&str_session, "session") < 0
        || intern(&str_embedded_time, "embedded_time") < 0 || intern(&str_wraps_after, "wraps_after") < 0
        || intern(&str_template, "template") < 0 || intern(&str_pattern, "pattern") < 0)
        return NULL;
    if ((tolerance_kwnames = Py_BuildValue("(s)", "tolerance")) == NULL
        || (reply_kwnames = Py_BuildValue("(ss)", "tolerance", "is_reply")) == NULL)
        return NULL;
    if ((empty_str = PyUnicode_New(0, 0)) == NULL)
        return NULL;
    if ((comma = PyUnicode_InternFromString(",")) == NULL || (zero = PyLong_FromLong(0)) == NULL
        || (one = PyLong_FromLong(1)) == NULL
        || (nsec = PyLong_FromLong(1000000000)) == NULL)
        return NULL;
    if (PyType_Ready(&FastPathType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "FastPath", (PyObject *)&FastPathType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
