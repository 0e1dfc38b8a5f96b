"""The standard profile: novel bytes, tools, non-echo layouts, slow exfiltration, real-time alerts.

It measures *novel bytes* — payload bytes not explained by an exact benign template
(detect/fingerprints.py), by the previous payload the sender sent to the same peer, or by the
request an echo reply answers (detect/novelty.py) — recognises known tunnel and exfiltration tools
(detect/tunnels.py), checks the layout of every other ICMP type (detect/nonecho.py), adds novel bytes
per host pair over a long window (slow exfiltration), and alerts as soon as a condition holds
(`alerting: realtime`), once per flow, with a summary when an alerted flow ends.
"""

from __future__ import annotations

import itertools
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from icmpsensor.accelerators import flows_extension as _fastflows
from icmpsensor.config.schema import AllowlistConfig, DetectionConfig
from icmpsensor.decode.packet import HeadlessPacket, IcmpPacket
from icmpsensor.detect import capacity, fingerprints, nonecho, tunnels
from icmpsensor.detect.flows import (
    EVICTION_SCAN,
    NEW_FLOW,
    NO_NOTICES,
    DetectorStats,
    Flow,
    FlowDetector,
    Kept,
    echo_key,
)
from icmpsensor.detect.novelty import EMPTY_REST_HASH, PREFIX, Sketch, lends_payloads, novel_between, sketch
from icmpsensor.notice.record import Notice
from icmpsensor.notice.text import format_size
from icmpsensor.notice.types import (
    ASYM_PAYLOAD,
    ASYM_PAYLOAD_FLOW,
    DATA_EXFIL,
    EXFIL_SPREAD,
    EXFIL_SUMMARY,
    NON_ECHO_PAYLOAD,
    SLOW_EXFIL,
    TUNNEL,
    UNPAIRED_ECHO_REPLY,
    NoteType,
)

# The notes' msg: templates of the flow's fields (detect/flows.py _FlowText).
PAYLOAD_CHANNEL = "payload"  # channel_bytes' name for the novel bytes no other channel was charged
NONECHO_CHANNEL = "non-echo"  # channel_bytes' name for the novel bytes of non-echo messages
EXFIL_MSG = "Exfil of {novel} of novel data ({sent} of payload) seen {between} so far. {span}"
SUMMARY_MSG = "Exfil of size {sent} ({novel} novel) seen between {src} and {dst}. {span}"  # the original's format
ASYM_MSG = "{flow.reply_differs} ICMP echo replies {between} carried bytes the request they answer did not. {span}"
CHANGES_MSG = "ICMP echo request payload carried new bytes {flow.changed_requests} times {between}. {span}"
TUNNEL_MSG = "ICMP tunnel or exfiltration tool {flow.tool} recognised {between}: {flow.tool_evidence}."
NONECHO_MSG = "{nonecho} carried in ICMP messages other than echo {between} ({flow.nonecho_reason}). {span}"
SPREAD_MSGS = {  # ExfilSpread, as a sender (to its peers) or as a receiver (from them)
    "to": "Exfil spread: {src} sent {total} of novel data to {peers}{more} destinations within {hours:g} h, "
          "each under the per-flow thresholds; the latest to {dst}.",
    "from": "Exfil spread: {dst} received {total} of novel data from {peers}{more} sources within {hours:g} h; "
            "the latest from {src}.",
}
SLOW_MSG = "Slow exfil: {total} of novel data {between} within {hours:g} h, in packets spread over many flows. {span}"
# The notes _evaluate raises from a flow's counters alone, in its order, with their msg: the C path raises them
# (_fastflows.c raise_due) where _evaluate would, the bits given in the same order (_novel_requests).
EVALUATED_NOTES = ((DATA_EXFIL, EXFIL_MSG), (ASYM_PAYLOAD, ASYM_MSG), (ASYM_PAYLOAD_FLOW, CHANGES_MSG),
                   (TUNNEL, TUNNEL_MSG), (NON_ECHO_PAYLOAD, NONECHO_MSG))

# The notes' bits in Flow.alerted, as module constants for the per-packet path.
_EXFIL, _ASYM, _CHANGES = DATA_EXFIL.bit, ASYM_PAYLOAD.bit, ASYM_PAYLOAD_FLOW.bit
_TUNNEL, _NONECHO, _SLOW = TUNNEL.bit, NON_ECHO_PAYLOAD.bit, SLOW_EXFIL.bit
_SUMMARISED = _EXFIL | _ASYM | _CHANGES | _TUNNEL | _NONECHO | _SLOW
_REPORTS_PAIR = _EXFIL | _TUNNEL | _NONECHO  # notes after which SlowExfil would only repeat them

# What process() does with a message, by ICMP type (IPv4, IPv6).
_OTHER, _REQUEST, _REPLY = 0, 1, 2
_KIND_V4 = tuple(_REQUEST if t == 8 else _REPLY if t == 0 else _OTHER for t in range(256))
_KIND_V6 = tuple(_REQUEST if t == 128 else _REPLY if t == 129 else _OTHER for t in range(256))

SLOW_BUCKETS = 24  # the slow-exfiltration window is summed in this many buckets

# The C path for echo messages that change no decision (detect/_fastflows.c; process() below is its reference):
# it reads and writes these records' slots in place.
if _fastflows is not None:
    _fastflows.bind(IcmpPacket, Flow, DetectorStats, capacity.FlowChannels, PREFIX, EMPTY_REST_HASH,
                    capacity.SEQ_FREE, capacity.RUN_PAUSE, capacity.RUN_BUDGET, capacity.RUN_REFILL,
                    capacity.PARAM_BUDGET, capacity.PARAM_REFILL, capacity.RUNS_REMEMBERED, capacity._ROUTER_ALERT,
                    nonecho._QUOTED_PROTOCOLS, HeadlessPacket, nonecho.IPV6_MIN_MTU,
                    nonecho.error_payload_limit(False), nonecho.error_payload_limit(True))


def _moved(moved: float, wraps_after: float | None) -> float:
    """How far a template's clock moved against the capture's, a counter that wraps taken the short way round."""
    return (moved + wraps_after / 2) % wraps_after - wraps_after / 2 if wraps_after else moved


def _keeps_time_swapped(embedded: float, sent: float, previous: float, previous_sent: float,
                        wraps_after: float | None, jitter: float) -> bool:
    """Whether BusyBox's counter keeps time read in the other byte order (a big-endian host's,
    fingerprints.busybox_other_order) from the run's last request (its counter `previous`, sent at
    `previous_sent`) to this one."""
    moved = (fingerprints.busybox_other_order(embedded) - sent) \
        - (fingerprints.busybox_other_order(previous) - previous_sent)
    return -jitter <= _moved(moved, wraps_after) <= jitter


def _channels(flow: Flow) -> capacity.FlowChannels:
    state = flow.channels
    if state is None:
        state = flow.channels = capacity.FlowChannels()
    return state


@dataclass(slots=True)
class PairMemory:
    """What is remembered of a host pair beyond its flows: novel bytes over the slow window."""

    # Flat [bucket start, novel bytes, bucket start, novel bytes, ...], oldest first: a list of
    # floats is a fraction of the size of a deque of pairs, and there are many pairs.
    buckets: list[float] = field(default_factory=list)
    novel: int = 0  # the sum of the buckets' novel bytes (what eviction compares)
    last_sketch: Sketch | None = None  # the sender's last payload, carried from one flow to the next
    slow_alerted_until: float = 0.0

    def add(self, ts: float, novel: int, bucket_len: float) -> None:
        start = ts - ts % bucket_len
        buckets = self.buckets
        if buckets and buckets[-2] == start:
            buckets[-1] += novel
        else:
            buckets += (start, novel)
        self.novel += novel

    def total(self, now: float, window: float) -> int:
        buckets = self.buckets
        stale = 0
        while stale < len(buckets) and buckets[stale] + window <= now:
            stale += 2
        if stale:
            self.novel -= int(sum(buckets[1:stale:2]))
            del buckets[:stale]
        return self.novel


SPREAD_PEERS_KEPT = 4096  # distinct peers remembered per host for ExfilSpread (counting stops there)
# Peers remembered over all the hosts of a table (~64 bytes each, measured): without it, max_pairs hosts of
# SPREAD_PEERS_KEPT peers each. Past it the least recently active hosts are forgotten (spread_hosts_evicted).
SPREAD_PEER_ENTRIES = 1_000_000
PAYLOADS_KEPT = 4  # a host's recent payloads: one it sends to every peer counts once


@dataclass(slots=True)
class SpreadMemory:
    """One host's novel bytes to (or from) all its peers within the slow window, and its recent payloads."""

    since: float  # start of the current window (a tumbling one: reset once it is slow_exfil_window old)
    novel: int = 0
    peers: set[bytes] | bytes = b""  # one peer as itself, more as a set (a flood's one-peer hosts stay small)
    payloads: tuple[int, ...] | int = ()  # hashes of the sketches of the last PAYLOADS_KEPT payloads with novel bytes
    # (one: itself)
    alerted_until: float = 0.0
    last_peer: bytes = b""  # the peer of the last of them (a sender's): its flow has that payload and its time

    def add(self, ts: float, novel: int, peer: bytes, window: float) -> int:
        """Add novel bytes to `peer`; the number of peers in the window."""
        if ts - self.since >= window:
            self.since, self.novel, self.peers = ts, 0, b""
        self.novel += novel
        peers = self.peers
        if isinstance(peers, bytes):
            if not peers or peers == peer:
                self.peers = peer
                return 1
            peers = self.peers = {peers}
        if len(peers) < SPREAD_PEERS_KEPT:
            peers.add(peer)
        return len(peers)

    def peer_count(self) -> int:
        peers = self.peers
        return len(peers) if isinstance(peers, set) else 1 if peers else 0

    def seen(self, digest: int) -> bool:
        """Whether the host sent this payload lately; it is remembered either way."""
        payloads = self.payloads
        if isinstance(payloads, int):
            if payloads == digest:
                return True
            self.payloads = (payloads, digest)
            return False
        if digest in payloads:
            return True
        self.payloads = (*payloads[1 - PAYLOADS_KEPT :], digest) if payloads else digest
        return False


class HostTable:
    """Hosts' SpreadMemory, least recently active first, at most `limit` hosts and SPREAD_PEER_ENTRIES peers over
    them all: a plain dict, as a flood makes one entry per spoofed source (an OrderedDict's entry is larger); when
    full, an eighth is forgotten at once (shed_hosts: of the least recently active quarter, those with the fewest
    peers), counted in the detector's stats (spread_hosts_evicted). Slots: detect/_fastflows.c reads hosts, limit
    and peer_entries in place."""

    __slots__ = ("_drop", "_held", "hosts", "limit", "peer_entries", "stats")

    def __init__(self, limit: int, stats: DetectorStats | None = None, *, accelerated: bool = True) -> None:
        """`accelerated`: shed in C when it is built (_fastflows.shed_hosts, peers_held); False: the Python
        references (_shed_hosts_py, _peers_held_py)."""
        self.limit = limit
        self.stats = stats if stats is not None else DetectorStats()
        self.hosts: dict[bytes, SpreadMemory] = {}
        self.peer_entries = 0  # peers remembered over all the hosts
        self._drop = shed_hosts if accelerated else _shed_hosts_py
        self._held = peers_held if accelerated else _peers_held_py

    def touch(self, host: bytes, ts: float) -> SpreadMemory:
        """The host's memory (new if none), made the most recently active."""
        hosts = self.hosts
        memory = hosts.pop(host, None)
        if memory is None:
            memory = SpreadMemory(ts)
            if len(hosts) >= self.limit:
                self._shed(ts)
                hosts = self.hosts
        hosts[host] = memory
        return memory

    def add(self, memory: SpreadMemory, ts: float, novel: int, peer: bytes, window: float) -> int:
        """SpreadMemory.add on a host's memory (got from touch), within SPREAD_PEER_ENTRIES."""
        before = memory.peer_count()
        peers = memory.add(ts, novel, peer, window)
        self.peer_entries += peers - before
        while self.peer_entries > SPREAD_PEER_ENTRIES and self.hosts:
            self._shed(ts)
        return peers

    def _shed(self, now: float) -> None:
        """Forget an eighth of the hosts (shed_hosts), and their peers."""
        forgotten = self._drop(self.hosts, now)
        self.peer_entries -= self._held(forgotten)
        self.stats.spread_hosts_evicted += len(forgotten)

    def limit_to(self, limit: int) -> None:
        self.limit = limit
        if len(self.hosts) > limit:
            self.stats.spread_hosts_evicted += len(self.hosts) - limit
            self.hosts = dict(itertools.islice(self.hosts.items(), len(self.hosts) - limit, None))
            self.peer_entries = self._held(self.hosts.values())


def _shed_hosts_py(hosts: dict[bytes, SpreadMemory], now: float) -> list[SpreadMemory]:
    """Of the least recently active quarter of `hosts`, an eighth of them taken out: those whose ExfilSpread is
    told past `now` (their memory raises nothing before then) first, then those with the fewest peers, the least
    recently active first among equals; their memories, in the table's order. A storm's spoofed sources have one
    peer each: they make room for each other, not at the cost of a host spreading its bytes over many peers slowly,
    which the storm makes one of the least recently active (the red team's storm, against ExfilSpread)."""
    oldest = list(itertools.islice(hosts.items(), len(hosts) // 4 + 1))
    ranked = sorted(range(len(oldest)),
                    key=lambda i: (oldest[i][1].alerted_until <= now, oldest[i][1].peer_count(), i))
    return [hosts.pop(oldest[i][0]) for i in sorted(ranked[: len(hosts) // 8 + 1])]


# shed_hosts in C when it is built (_fastflows.shed_hosts; _shed_hosts_py the reference, tests/unit/test_fastflows.py
# holds them equal): a flood's full table sheds an eighth of 100,000 hosts at once.
shed_hosts: Callable[[dict[bytes, SpreadMemory], float], list[SpreadMemory]] = \
    _shed_hosts_py if _fastflows is None else _fastflows.shed_hosts


def _peers_held_py(memories: Iterable[SpreadMemory]) -> int:
    return sum(memory.peer_count() for memory in memories)


# The peers the hosts' memories hold, summed: in C when it is built (_fastflows.peers_held; the sum above the reference,
# tests/unit/test_memory.py holds a table's count to it): a full table sheds an eighth of its hosts at once.
peers_held: Callable[[Iterable[SpreadMemory]], int] = _peers_held_py if _fastflows is None else _fastflows.peers_held


def notice_extra(flow: Flow, carried: list[tuple[str, int]]) -> str:
    """What the standard profile adds to a flow notice's sub: the tool, the non-echo reason, the channels."""
    parts = []
    if flow.tool:
        parts.append(f"Tool: {flow.tool} ({flow.tool_evidence})")
    if flow.nonecho_reason:
        parts.append(f"Non-echo: {flow.nonecho_reason}")
    if carried:
        parts.append("Channels: " + ", ".join(f"{name} {format_size(count)}" for name, count in carried))
    return ", ".join(parts)


class Detector(FlowDetector):
    """The standard profile."""

    def __init__(self, detection: DetectionConfig, allowlist: AllowlistConfig, accelerated: bool = True) -> None:
        """`accelerated`: run the C path (detect/_fastflows.c: the per-packet path and the notices) when it is
        built; False runs only the Python reference (the equivalence tests)."""
        self._accelerated = accelerated
        if not accelerated:
            # the notices, flows and the sweep's requests made and expired by the Python reference too
            self._fast_notice = self._fast_flow = self._fast_expiry = None
        # explain is called only where one of its templates' first tests passes (_fastflows.c explain_may_match,
        # looser than explain, never stricter): a storm's random payloads are not read by each template
        self._explain_gate = _fastflows.explain_may_match if accelerated and _fastflows is not None else None
        self._fast: object | None = None
        self._pairs: OrderedDict[tuple[bytes, bytes], PairMemory] = OrderedDict()
        # per host, as a sender (to all its peers) and as a receiver (from all its peers)
        self._senders = HostTable(detection.max_pairs, accelerated=accelerated)
        self._receivers = HostTable(detection.max_pairs, accelerated=accelerated)
        self._tools = tunnels.tool_tracker()
        self._due: list[Notice] = []  # process()'s notices, handed out as a copy
        # the budget of field readings (_as_fields) over all flows: a token bucket's due (the C path reads it too)
        self._fields_due = 0.0
        self._run_free = True  # the request being handled did not start a new run past the run budget
        super().__init__(detection, allowlist)
        self._senders.stats = self._receivers.stats = self.stats  # what they forget is the detector's to count

    def reconfigure(self, detection: DetectionConfig, allowlist: AllowlistConfig) -> None:
        super().reconfigure(detection, allowlist)
        while len(self._pairs) > detection.max_pairs:
            self._pairs.popitem(last=False)
        self._senders.limit_to(detection.max_pairs)
        self._receivers.limit_to(detection.max_pairs)
        self._fast = self._fast_path()

    def _fast_path(self) -> object | None:
        """The C path for echo messages that change no decision (detect/_fastflows.c), for this configuration;
        None when it is not built or turned off, or the tool tracker is the Python one (it calls the C one's
        observe, and the tracker's finish for an answer other than None)."""
        tools = self._tools
        if _fastflows is None or not self._accelerated or not isinstance(tools, tunnels.FastToolTracker):
            return None
        cfg = self.cfg
        return _fastflows.FastPath(vars(self), tools._c.observe, tools.finish, self._ignored_payloads, self._max_flows,
                                   cfg.max_pending_requests, self._matched, cfg.timestamp_tolerance, cfg.clock_jitter,
                                   self._novel_requests(), self._first_requests(), self._flow_ends())

    def _first_requests(self) -> tuple[object, ...]:
        """What the C path needs to make a new flow (flows.NEW_FLOW) and to do _spread's work beside what
        _novel_requests gives (the senders' table): the receivers' table, its settings and limits; _spread_notice,
        called where ExfilSpread is due; and what _raise reads to raise what _evaluate finds due (EVALUATED_NOTES' names
        and msgs, the profile's EXTRA, the due notices, the payload's and non-echo messages' channels, NOVEL)."""
        cfg = self.cfg
        return (NEW_FLOW, self._spread_notice, self._receivers, "to", "from",
                float(cfg.slow_exfil_window), cfg.spread_min_peers, cfg.spread_min_bytes,
                bool(self._enabled & EXFIL_SPREAD.bit), SPREAD_PEERS_KEPT, SPREAD_PEER_ENTRIES,
                tuple((note.name, msg) for note, msg in EVALUATED_NOTES), self.EXTRA, self._due, PAYLOAD_CHANNEL,
                NONECHO_CHANNEL, self.NOVEL)

    def _flow_ends(self) -> tuple[object, ...]:
        """What the C path needs to end a flow as _flow_ended does (FastPath.flow_ended), and to evict one as
        _evict_one and _evict_pair do: PairMemory, the slow window's bucket length, max_pairs, EVICTION_SCAN, the notes
        a summary follows, ExfilSummary's bit (0: off), its name and msg."""
        cfg = self.cfg
        return (PairMemory, cfg.slow_exfil_window / SLOW_BUCKETS, cfg.max_pairs, EVICTION_SCAN, _SUMMARISED,
                EXFIL_SUMMARY.bit if self._enabled & EXFIL_SUMMARY.bit else 0, EXFIL_SUMMARY.name, SUMMARY_MSG)

    def _novel_requests(self) -> tuple[object, ...]:
        """What the C path needs to take an echo request with novel bytes on a flow that no longer adds to the
        hosts' memories and whose evaluation would raise nothing (a reported exfiltration's next chunk): the
        functions and the host table _novelty calls, what _add_novel and _evaluate compare, a new host's memory
        (HostTable.touch's: SpreadMemory(ts) is a copy of SpreadMemory(0.0) with since ts), and what _on_other's
        unexplained_bytes is restated and asked with (nonecho.c_judged)."""
        cfg = self.cfg
        return (fingerprints.explain, capacity.random_padding, self._senders, 3 * capacity.MAX_FIELD_BYTES,
                PAYLOADS_KEPT, fingerprints.MAX_UPTIME, fingerprints.MAX_PATTERN,
                self._enabled if self._realtime else 0,
                cfg.novel_bytes_threshold, cfg.reply_differs_threshold, cfg.changed_requests_threshold,
                cfg.nonecho_bytes_threshold,
                _EXFIL, _ASYM, _CHANGES, _TUNNEL, _NONECHO, _SLOW, _REPORTS_PAIR,
                cfg.small_secret_bytes, cfg.small_secret_payloads, SpreadMemory(0.0),
                bool(self._enabled & UNPAIRED_ECHO_REPLY.bit), nonecho.c_judged())

    # -- per packet --------------------------------------------------------------------------
    #
    # The measured hot path: one method per kind of message, with the flow lookup, the payload
    # sketch and the pending-request bookkeeping written out in place; helpers are called only when
    # a payload is new (novelty, templates), and a flow is evaluated only when this packet changed
    # what the evaluation looks at (novel bytes, a recognised tool).

    def process(self, pkt: IcmpPacket) -> Sequence[Notice]:
        """Account one packet; return the notices that became due (usually none)."""
        fast = self._fast
        if fast is None:
            return self._process(pkt)
        answer = fast.handle(pkt)  # type: ignore[attr-defined]
        if answer is None:  # a reply that repeats its request, a ping's next request that says nothing new...
            return NO_NOTICES
        return self._finish(pkt, answer)

    def process_many(self, packets: list[IcmpPacket | None], start: int, watched: AbstractSet[tuple[bytes, bytes]],
                     observed: list[int] | None = None, folds: Callable[[str], bool] | None = None,
                     kept: Kept | None = None
                     ) -> tuple[int, Sequence[Notice] | None]:
        """FlowDetector.process_many: the C path takes packets[start:] in one call while each is one it handles
        (no notice, no novel bytes) of a pair not in `watched`, or, given `observed`, of a watched pair (listed in
        it, novel bytes or not), or, given `folds` too, with novel bytes (listed as ~index), or, given `kept` too,
        with notices it keeps none of."""
        fast = self._fast
        if fast is None:
            return super().process_many(packets, start, watched, observed, folds, kept)
        index, answer = fast.run(packets, start, watched, observed, folds, kept)  # type: ignore[attr-defined]
        if answer is None:  # the end, or a packet handled in C of a watched pair
            return index, None if index == len(packets) else NO_NOTICES
        if answer is True:  # handled, with novel bytes (last_novel holds them): a flood's every request
            return index, NO_NOTICES
        if type(answer) is list:  # what its handling raised, handed out in C as _handed_out would (a storm's packet),
            return index, answer  # and what kept() kept of it
        pkt: IcmpPacket = packets[index]  # type: ignore[assignment]
        if kept is not None and answer is False and self.sweep_due(pkt.ts):
            return index, self._swept_then(pkt, kept, self._after_sweep)
        notices = self._finish(pkt, answer)
        return index, kept(notices) if kept is not None and notices else notices

    def _finish(self, pkt: IcmpPacket, answer: object) -> Sequence[Notice]:
        """A packet the C path stopped at: handled, with novel bytes (True: last_novel holds them); declined
        (False), processed here; a message with novel bytes (or whose tool was just found) handled up to its
        evaluation ((flow,)), evaluated here as _request_done would, or with what its evaluation raises raised in C
        (()), handed out.
        The C path declines a packet that moves the clock to a sweep: the sweep is done here, as _process does it
        first, and the packet offered to the C path again (a ping's next request crosses a sweep every second)."""
        if answer is True:
            return NO_NOTICES
        if answer is False and self.sweep_due(pkt.ts):
            self._clock_to(pkt.ts, self._due)
            return self._after_sweep(pkt)
        if answer is False:
            return self._process(pkt)
        if answer and self._realtime:  # (): what was due raised in C, or ExfilSpread, or nothing
            self._evaluate(answer[0], pkt.ts, self._due)  # type: ignore[index]
        return self._handed_out(self._due)  # a flow over max_flows evicted, as _process does

    def _after_sweep(self, pkt: IcmpPacket) -> Sequence[Notice]:
        """A packet the C path declined because it moved the clock to a sweep, once the sweep is done: offered to the C
        path again, and finished; what the sweep left in _due handed out before the packet's notices."""
        answer = self._fast.handle(pkt)  # type: ignore[union-attr]
        if answer is None or answer is True:
            return self._handed_out(self._due)
        return self._finish(pkt, answer)

    def _process(self, pkt: IcmpPacket) -> Sequence[Notice]:
        """process() in Python: the reference for every packet, and what the C path declines."""
        stats = self.stats
        stats.packets += 1
        self.last_novel = 0
        ts = pkt.ts
        due = self._due
        if ts > self.now:
            self._clock_to(ts, due)
        kind = (_KIND_V6 if pkt.ipv6 else _KIND_V4)[pkt.icmp_type]
        if pkt.icmp_code and not (kind == _REPLY and self._matched and (
                pkt.dst, pkt.src, pkt.ident, echo_key(pkt)) in self._pending):
            kind = _OTHER  # RFC 792 / 4443: echo has code 0; any other its sender chose, but a reply's that copies
            # the code of the request it answers
        if kind == _REQUEST:
            stats.echo_requests += 1
            self._on_request(pkt, ts, due)
        elif kind == _REPLY:
            stats.echo_replies += 1
            self._on_reply(pkt, ts, due)
        else:  # other types, and echo messages with a non-zero code
            stats.other_icmp += 1
            self._on_other(pkt, due)
        return self._handed_out(due)

    def _handed_out(self, due: list[Notice]) -> Sequence[Notice]:
        """The end of process(): the flow table back within max_flows, the due notices handed out."""
        if len(self._flows) > self._max_flows:
            self._evict_over_cap(due)
        if due:
            notices = due.copy()
            due.clear()
            return notices
        return NO_NOTICES

    def _on_request(self, pkt: IcmpPacket, ts: float, due: list[Notice]) -> None:
        src, dst, payload = pkt.src, pkt.dst, pkt.payload
        key = (src, dst)
        flow = self._flows.get(key)
        if flow is None:
            flow = self._new_flow(key, pkt)
        else:
            self._flows.move_to_end(key)
            if ts > flow.last:
                flow.last = ts
        size = len(payload)
        flow.n += 1
        flow.orig_bytes += size
        self._run_free = self._sent_header(flow, pkt, size, ts)
        current = (payload, EMPTY_REST_HASH, size) if size <= PREFIX else \
            (payload[:PREFIX], hash(payload[PREFIX:]), size)
        previous = flow.last_sketch
        flow.last_sketch = current
        if self._ignored_payloads and payload in self._ignored_payloads:
            self.stats.ignored_payloads += 1
            novel = 0
        elif current == previous or not size:
            novel = 0
        else:
            novel = self._novelty(flow, pkt, current, previous)
        flow.last_request_ts = ts
        recognised = not flow.tool and self._recognise_tool(flow, pkt, current[1])
        self._request_done(flow, pkt, current, novel, recognised, due)

    def _request_done(self, flow: Flow, pkt: IcmpPacket, current: Sketch, novel: int, recognised: bool,
                      due: list[Notice]) -> None:
        """The end of a request, after the tool tracker saw it: remembered for its reply, its novel bytes (in
        the payload) added, the flow evaluated if this packet changed what the evaluation looks at."""
        if self._matched:
            self._remember_request(pkt, current)
        if novel:
            flow.changed_requests += 1
            self._add_novel(flow, novel)
        if (self.last_novel or recognised) and self._realtime:  # last_novel: this packet's, every channel
            self._evaluate(flow, pkt.ts, due)

    def _sent_header(self, flow: Flow, pkt: IcmpPacket, size: int, ts: float) -> bool:
        """What a request's header carried (or an unsolicited reply's: its sender chose it as freely) against a
        ping's: the same identifier, the sequence one up (or the flow's stride), the same size; then its IP
        options. Whether the request did not start a new run past the run budget (Detector._run_free)."""
        seq = pkt.seq
        run_free = True
        if pkt.ident != flow.last_ident or seq != (flow.last_seq + flow.seq_stride) & 0xFFFF \
                or size != flow.last_size:
            run_free = self._header(flow, pkt, size, ts)
        else:
            flow.last_seq = seq
        if pkt.options:
            self._options(flow, pkt)
        return run_free

    def _header(self, flow: Flow, pkt: IcmpPacket, size: int, ts: float) -> bool:
        """Charge what the identifier, sequence number and size carried beyond a ping's (capacity.py); whether
        the run budget had room (a new run or none)."""
        last = (flow.last_ident, flow.last_seq, flow.last_size)
        flow.last_ident, flow.last_seq, flow.last_size = pkt.ident, pkt.seq, size
        if last[0] < 0:
            return True  # the flow's first request
        state = _channels(flow)
        charges, run_free = capacity.request_header(state, last, pkt.ident, pkt.seq, size, ts,
                                                    ts - flow.last_request_ts)
        flow.seq_stride = state.stride
        for channel, bits in charges:
            self._charge(flow, channel, bits)
        return run_free

    def _options(self, flow: Flow, pkt: IcmpPacket) -> None:
        self._charge(flow, "options", capacity.options_bits(_channels(flow), pkt.options, pkt.ts, pkt.ipv6,
                                                            self.cfg.timestamp_tolerance))

    def _charge(self, flow: Flow, channel: str, bits: float) -> None:
        """Add `bits` carried by `channel` to the flow: whole bytes join its novel bytes."""
        if bits > 0.0:
            whole = capacity.charge(_channels(flow), channel, bits)
            if whole:
                self._add_novel(flow, whole)

    def _on_reply(self, pkt: IcmpPacket, ts: float, due: list[Notice]) -> None:
        src, dst, payload = pkt.src, pkt.dst, pkt.payload
        flows = self._flows
        request_flow = flows.get((dst, src))
        key = (src, dst)
        flow = flows.get(key)
        if flow is None:
            flow = self._new_flow(key, pkt)
        else:
            flows.move_to_end(key)
            if ts > flow.last:
                flow.last = ts
        size = len(payload)
        flow.n += 1
        flow.resp_bytes += size
        if request_flow is not None:
            request_flow.received_bytes += size
        if self._matched:
            entry = self._pending.pop((dst, src, pkt.ident, echo_key(pkt)), None)
            request = None if entry is None else entry[0]
        else:
            request = None if request_flow is None else request_flow.last_sketch
        current = (payload, EMPTY_REST_HASH, size) if size <= PREFIX else \
            (payload[:PREFIX], hash(payload[PREFIX:]), size)
        before = flow.novel_bytes  # an unsolicited reply's header and clock may carry novel bytes
        unsolicited = request is None
        if unsolicited:
            self._unpaired(pkt, flow, due)
            self._sent_header(flow, pkt, size, ts)  # its sender's to choose, as a request's
            flow.last_request_ts = ts
            request = flow.last_sketch
        flow.last_sketch = current
        novel = 0
        if self._ignored_payloads and payload in self._ignored_payloads:
            self.stats.ignored_payloads += 1
        elif current != request and size:
            novel = self._novelty(flow, pkt, current, request, unsolicited)
        if novel:
            # a reply that only echoes its request says nothing about the replier
            if not flow.tool:
                self._recognise_tool(flow, pkt)
            self._reply_done(flow, pkt, novel, due)
        elif flow.novel_bytes > before and self._realtime:
            self._evaluate(flow, pkt.ts, due)

    def _reply_done(self, flow: Flow, pkt: IcmpPacket, novel: int, due: list[Notice]) -> None:
        """The end of a reply with `novel` bytes, after the tool tracker saw it: counted as differing from what it
        answers, its novel bytes added, the flow evaluated."""
        flow.reply_differs += 1
        self._add_novel(flow, novel)
        if self._realtime:
            self._evaluate(flow, pkt.ts, due)

    def _on_other(self, pkt: IcmpPacket, due: list[Notice]) -> None:
        if self._matched and pkt.is_echo_request:  # non-zero code: its reply must still pair with it
            self._remember_request(pkt, sketch(pkt.payload))
        novel, reason = nonecho.unexplained_bytes(pkt, self.cfg.timestamp_tolerance)
        if not novel:
            return  # benign errors and informational messages keep no state
        flow = self._flow(pkt)
        flow.n += 1
        flow.other_bytes += len(pkt.payload)
        flow.nonecho_novel += novel
        if not flow.nonecho_reason:
            flow.nonecho_reason = reason
        self._add_novel(flow, novel)
        if self._realtime:
            self._evaluate(flow, pkt.ts, due)

    def _novelty(self, flow: Flow, pkt: IcmpPacket, current: Sketch, compared: Sketch | None,
                 unsolicited: bool = False) -> int:
        """Novel bytes of a non-empty echo payload (sketched as `current`, which differs from `compared`:
        so novel_between is not 0): 0 if a benign template explains it (what its clock and per-run
        constant carried is charged), else what `compared` does not; where that is a few changed
        places in an otherwise equal request, their bits as counters or clocks are charged instead.
        The template is tried first: most changed payloads are a ping's new timestamp."""
        gate = self._explain_gate
        benign = fingerprints.explain(pkt.payload, pkt.sent or pkt.ts, tolerance=self.cfg.timestamp_tolerance,
                                      is_reply=pkt.is_echo_reply) \
            if gate is None or gate(pkt.payload, fingerprints.MAX_UPTIME, fingerprints.MAX_PATTERN) else None
        if benign is not None and self._consistent(flow, benign, pkt, unsolicited):
            self.stats.ignored_payloads += 1
            return 0
        novel = novel_between(current, compared)
        if pkt.is_echo_reply:
            return novel
        if capacity.random_padding(pkt.payload, pkt.seq) and capacity.padding_free(_channels(flow), pkt.ts):
            self.stats.ignored_payloads += 1  # before a field: pythonping's 1-character payloads
            return 0
        if compared is not None and self._as_fields(flow, current, compared, novel, pkt.ts - flow.last_request_ts,
                                                    pkt.ts):
            return 0
        if flow.allowlisted or not lends_payloads(flow.src, flow.dst):
            return novel  # sent to a peer that could be a decoy (or allowlisted): the sender's memory neither
            # keeps nor uses it, else the same payload to the collector next would count nothing
        memory = self._senders.touch(pkt.src, pkt.ts)
        last_peer, memory.last_peer = memory.last_peer, pkt.dst
        if compared is None and last_peer and last_peer != pkt.dst:
            # a flow's first payload against the sender's last one to another peer (its flow's, while it lasts): a
            # monitor's own text or header, its round number and time, to host after host
            other = self._flows.get((flow.src, last_peer))
            last = None if other is None else other.last_sketch
            if other is not None and last is not None and self._as_fields(
                    flow, current, last, novel_between(current, last), pkt.ts - other.last_request_ts, pkt.ts):
                return 0
        if memory.seen(hash(current)):  # the sketch's hash: the payload's rest is not hashed twice
            return 0  # the payload this host sends to all its peers (a custom health check) counts once
        return novel

    def _as_fields(self, flow: Flow, current: Sketch, compared: Sketch, novel: int, dt: float, now: float) -> bool:
        """Whether a request differs from `compared` (`novel` bytes, sent `dt` s before) only in a few places that
        read as counters or clocks; their bits are charged. Past the readings' budget (FIELD_READINGS) they are not
        read: counted, and the caller charges the bytes."""
        if novel > 3 * capacity.MAX_FIELD_BYTES or current[1:] != compared[1:]:
            return False
        free, self._fields_due = capacity.take_token(self._fields_due, now, capacity.FIELD_READINGS,
                                                     capacity.FIELD_READING_REFILL)
        if not free:
            self.stats.fields_unread += 1
            return False
        bits = capacity.field_bits(current[0], compared[0], dt, self.cfg.clock_jitter)
        if bits is None:
            return False
        self._charge(flow, "fields", bits)
        return True

    def _recognise_tool(self, flow: Flow, pkt: IcmpPacket, rest: int | None = None) -> bool:
        """Whether the tool tracker recognised a tool in this packet (it is then the flow's); `rest`: its sketch's
        hash of the payload's rest, which the tracker's digests are made from."""
        return self._tool_found(flow, self._tools.observe(pkt, rest))

    @staticmethod
    def _tool_found(flow: Flow, match: tunnels.ToolMatch | None) -> bool:
        if match is None:
            return False
        flow.tool, flow.tool_evidence = match.tool, match.evidence
        return True

    def _consistent(self, flow: Flow, benign: fingerprints.Benign, pkt: IcmpPacket, unsolicited: bool = False) -> bool:
        """Within one run of a ping tool (one echo identifier), a benign template's clock must not run
        backwards and its per-run constant (session) must not change. A reply's clock is its request's: checked
        only where no request was seen (`unsolicited`: its sender chose it, ~29 bits a reply were free; red team,
        2026-12-08)."""
        if pkt.ident != flow.session_ident:
            if not pkt.is_echo_reply and flow.session is not None and benign.session not in (None, flow.session):
                # a new -p pattern, past the run or the parameter budget
                self._charge(flow, "pattern", capacity.pattern_bits(
                    _channels(flow), flow.session, benign.session, self._run_free, pkt.ts,
                    benign.template in fingerprints.RANDOM_SESSION_TEMPLATES))
            flow.session_ident, flow.session, flow.last_embedded = pkt.ident, None, 0.0
            flow.clock_offset = None
        if benign.session is not None:
            if flow.session is None:
                flow.session = benign.session
            elif benign.session != flow.session:
                return False
        embedded = benign.embedded_time
        if embedded is None or (pkt.is_echo_reply and not unsolicited):
            return True
        # A partial message (IcmpPacket.sent) comes after the later requests of its run, up to the fragment
        # timeout late: its clock is checked against its own sending time and the run's offset, and moves neither.
        partial = bool(pkt.sent)
        previous = flow.last_embedded
        if not partial:
            if embedded + 1.0 < previous and not benign.wraps_after:
                return False  # a replayed or forged timestamp
            flow.last_embedded = embedded
        sent = pkt.sent or pkt.ts
        offset = embedded - sent
        last_offset = flow.clock_offset
        if not partial:
            flow.clock_offset = offset
        if last_offset is not None:
            jitter = self.cfg.clock_jitter
            moved = _moved(offset - last_offset, benign.wraps_after)
            if not -jitter <= moved <= jitter and not (  # the common case costs no call
                    benign.template == fingerprints.BUSYBOX
                    and _keeps_time_swapped(embedded, sent, previous, previous - last_offset, benign.wraps_after,
                                            jitter)):
                self._charge(flow, "time", capacity.time_bits(moved, 0.0, jitter))
        return True

    def _add_novel(self, flow: Flow, novel: int) -> None:
        # A flow's novel bytes join its pair's long-term memory when the flow ends (_flow_ended):
        # the many short flows of a flood then cost no pair memory while they live. The hosts'
        # memories (spread over peers) are added to at once: a spread is many flows at the same time.
        self.last_novel += novel
        flow.novel_bytes += novel
        self.stats.novel_bytes += novel
        # a flow adds at most novel_bytes_threshold to the hosts' memories: past that it is reported on
        # its own, and one big flow must not make a spread of a few small ones
        before = flow.novel_bytes - novel
        room = self.cfg.novel_bytes_threshold - before
        if room > 0 and not flow.allowlisted:
            self._spread(flow, min(novel, room))

    def _spread(self, flow: Flow, novel: int) -> None:
        """Add novel bytes to the sender's and the receiver's memories; ExfilSpread when one of them has
        reached spread_min_bytes over spread_min_peers peers in the window."""
        cfg, ts = self.cfg, self.now
        window = cfg.slow_exfil_window
        for table, host, peer, role in ((self._senders, flow.src, flow.dst, "to"),
                                        (self._receivers, flow.dst, flow.src, "from")):
            memory = table.touch(host, ts)
            peers = table.add(memory, ts, novel, peer, window)
            if (peers >= cfg.spread_min_peers and memory.novel >= cfg.spread_min_bytes
                    and ts >= memory.alerted_until and self._enabled & EXFIL_SPREAD.bit):
                memory.alerted_until = memory.since + window
                self._spread_notice(flow, ts, memory, peers, role)

    def _spread_notice(self, flow: Flow, ts: float, memory: SpreadMemory, peers: int, role: str) -> None:
        notice = self._notice(flow, ts, EXFIL_SPREAD.name, SPREAD_MSGS[role], {
            "total": format_size(memory.novel), "peers": peers, "more": "+" if peers >= SPREAD_PEERS_KEPT else "",
            "hours": self.cfg.slow_exfil_window / 3600})
        notice.peers = peers
        self._due.append(notice)

    def _pair(self, src: bytes, dst: bytes, now: float) -> PairMemory:
        key = (src, dst)
        pairs = self._pairs
        memory = pairs.get(key)
        if memory is None:
            if len(pairs) >= self.cfg.max_pairs:
                self._evict_pair(now)
            memory = pairs[key] = PairMemory()
        else:
            pairs.move_to_end(key)
        return memory

    def _evict_pair(self, now: float) -> None:
        """Forget, of the EVICTION_SCAN least recently active pairs, one whose bytes are reported past `now` (a
        DataExfil's or SlowExfil's: its memory raises nothing before then) with the fewest novel bytes, else the
        one with the fewest novel bytes (the reference of _fastflows.c evict_pair). A notice storm's pairs are all
        reported: they make room for each other, not at the cost of a slow exfiltration's unreported pair, which
        would be the least recently active with the fewest bytes (red team, 2026-12-06)."""
        pairs = self._pairs
        victim, least = None, (True, float("inf"))
        for key, memory in itertools.islice(pairs.items(), EVICTION_SCAN):
            rank = (memory.slow_alerted_until <= now, memory.novel)
            if rank < least:
                victim, least = key, rank
        if victim is not None:
            del pairs[victim]
            self.stats.pairs_evicted += 1

    # -- flows start and end -----------------------------------------------------------------

    def _flow_started(self, flow: Flow) -> None:
        memory = self._pairs.get((flow.src, flow.dst))
        if memory is not None:
            flow.last_sketch = memory.last_sketch

    def _end_flows(self, due: list[Notice], now: float, timeout: float | None, limit: int = sys.maxsize,
                   kept: Kept | None = None) -> int:
        fast = self._fast
        ended = 0
        while fast is not None:  # the flows the C path can end (a storm's every one), in one loop; 0 left: none
            count, flow = fast.flows_ended(self._flows, now, timeout, due, limit - ended,  # type: ignore[attr-defined]
                                           kept)
            ended += count
            if flow is None:
                break
            ended += 1
            self._flow_ended(flow, now if timeout is None else flow.last + timeout, due)
        return ended + super()._end_flows(due, now, timeout, limit - ended)

    def _flow_ended(self, flow: Flow, ts: float, due: list[Notice]) -> None:
        fast = self._fast
        if fast is not None and fast.flow_ended(flow, ts, due):  # type: ignore[attr-defined]
            return  # made in C as below (a storm's every flow ends): alerting realtime, a summary of the payload's
        if (flow.novel_bytes or flow.reported_until) and not flow.allowlisted:
            memory = self._pair(flow.src, flow.dst, ts)
            if flow.novel_bytes:
                memory.last_sketch = flow.last_sketch
                memory.add(flow.last, flow.novel_bytes, self.cfg.slow_exfil_window / SLOW_BUCKETS)
            if flow.reported_until > memory.slow_alerted_until:
                memory.slow_alerted_until = flow.reported_until
        if not self._realtime:
            self._evaluate(flow, ts, due)
        elif flow.alerted & _SUMMARISED and self._enabled & EXFIL_SUMMARY.bit:
            due.append(self._notice(flow, ts, EXFIL_SUMMARY.name, SUMMARY_MSG))

    # -- evaluation --------------------------------------------------------------------------

    def _evaluate(self, flow: Flow, ts: float, due: list[Notice]) -> None:
        if flow.allowlisted:
            return
        cfg = self.cfg
        enabled = self._enabled
        if enabled & _EXFIL and not flow.alerted & _EXFIL:
            echo_novel = flow.novel_bytes - flow.nonecho_novel
            if echo_novel > cfg.novel_bytes_threshold or (
                    0 < cfg.small_secret_bytes <= echo_novel and self._not_one_payload(flow)):
                self._raise(flow, ts, DATA_EXFIL, EXFIL_MSG, due)
        if enabled & _ASYM and flow.reply_differs > cfg.reply_differs_threshold:
            self._raise(flow, ts, ASYM_PAYLOAD, ASYM_MSG, due)
        if enabled & _CHANGES and flow.changed_requests > cfg.changed_requests_threshold:
            self._raise(flow, ts, ASYM_PAYLOAD_FLOW, CHANGES_MSG, due)
        if enabled & _TUNNEL and flow.tool:
            self._raise(flow, ts, TUNNEL, TUNNEL_MSG, due)
        if enabled & _NONECHO and flow.nonecho_novel > cfg.nonecho_bytes_threshold:
            self._raise(flow, ts, NON_ECHO_PAYLOAD, NONECHO_MSG, due)
        if enabled & _SLOW and flow.novel_bytes and not flow.alerted & (_REPORTS_PAIR | _SLOW):
            self._check_slow(flow, ts, due)

    def _not_one_payload(self, flow: Flow) -> bool:
        """Whether the flow's novel bytes came from more than one payload: small_secret_payloads changed
        payloads, or any bytes charged to the header, clock, pattern or option fields (carried by packets
        whose payloads count nothing)."""
        if flow.changed_requests + flow.reply_differs >= self.cfg.small_secret_payloads:
            return True
        state = flow.channels
        return state is not None and bool(state.charged)

    def _check_slow(self, flow: Flow, ts: float, due: list[Notice]) -> None:
        """The pair's novel bytes within the window: its ended flows' (remembered) plus this flow's."""
        memory = self._pairs.get((flow.src, flow.dst))
        if memory is None or ts < memory.slow_alerted_until:
            return
        window = self.cfg.slow_exfil_window
        total = memory.total(ts, window) + flow.novel_bytes
        if total >= self.cfg.slow_exfil_min_bytes:
            memory.slow_alerted_until = ts + window
            self._raise(flow, ts, SLOW_EXFIL, SLOW_MSG, due, total=format_size(total), hours=window / 3600)

    NOVEL = True

    def _raised(self, flow: Flow, ts: float, note: NoteType) -> None:
        if note.bit & _REPORTS_PAIR:  # the pair's data is reported: no SlowExfil for the same bytes
            until = ts + self.cfg.slow_exfil_window
            if self._realtime:
                # Only the pair's later flows read it (a flow that reports its pair checks no SlowExfil): it is
                # set when this flow ends, where the pair's memory is made anyway (a storm's flows each made it
                # twice, evicting twice from the bounded table).
                flow.reported_until = until
            else:  # the flow has ended
                self._pair(flow.src, flow.dst, ts).slow_alerted_until = until

    def _tags(self, flow: Flow) -> tuple[object, str, str]:
        carried = channel_bytes(flow)  # one channel (the payload) nearly always: a storm makes two notices a flow
        return carried, flow.tool, carried[0][0] if len(carried) == 1 else ",".join([name for name, _ in carried])

    EXTRA = staticmethod(notice_extra)  # type: ignore[arg-type]


def channel_bytes(flow: Flow) -> list[tuple[str, int]]:
    """The channels that carried the flow's novel bytes and how many each, largest first: the payload
    (what no other channel was charged), non-echo messages, and the fields capacity.py charges."""
    state = flow.channels
    if (state is None or not state.charged) and not flow.nonecho_novel:  # the common case: the payload alone
        return [(PAYLOAD_CHANNEL, flow.novel_bytes)] if flow.novel_bytes > 0 else []
    charged = dict(state.charged) if state is not None and state.charged else {}
    if flow.nonecho_novel:
        charged[NONECHO_CHANNEL] = flow.nonecho_novel
    payload = flow.novel_bytes - sum(charged.values())
    if payload > 0:
        charged[PAYLOAD_CHANNEL] = payload
    return sorted(charged.items(), key=lambda item: (-item[1], item[0]))
