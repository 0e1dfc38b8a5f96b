"""The flow table both detection profiles share: directional host pairs, idle expiry, eviction.

A flow is a directional host pair (sender, receiver). The table keeps flows in
least-recently-active order (an OrderedDict moved-to-end on each packet), so idle
expiry and eviction both take from the front in O(1). Outstanding echo requests are
remembered, bounded and oldest first, so that a reply can be paired with the request
it answers. Subclasses say what a packet does to a flow and what a flow's end means.
"""

from __future__ import annotations

import itertools
import operator
import os
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, fields

from icmpsensor.accelerators import flows_extension as _fastflows
from icmpsensor.config.schema import AllowlistConfig, DetectionConfig
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.detect.capacity import FlowChannels
from icmpsensor.detect.novelty import Sketch
from icmpsensor.notice.policy import HostAllowlist, enabled_bits
from icmpsensor.notice.record import Notice
from icmpsensor.notice.text import (
    V4_EMBEDDABLE,
    addr_text,
    flow_summary_sub,
    format_interval,
    format_size,
    time_span_text,
)
from icmpsensor.notice.types import UNPAIRED_ECHO_REPLY, NoteType

NO_NOTICES: Sequence[Notice] = ()
# What of the notices raised the caller writes now (NoticeAggregator.filter: a storm's are folded)
Kept = Callable[[Sequence[Notice]], list[Notice]]

# How often (in clock seconds) idle flows and stale pending requests are looked for.
SWEEP_INTERVAL = 1.0
# How many of the least recently active flows eviction compares.
EVICTION_SCAN = 8
# Flows the end of input (flush_chunks) or a sweep (advance_chunks, process_many) ends at a time: their notices are
# handed out (and a storm's folded) before the next chunk's are made, so ending a table's flows holds a chunk's
# notices, not max_flows' (~0.9 KB a flow ended).
FLUSH_CHUNK = 1024

_UID_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Random bytes 0..247 map evenly onto the 62 characters (248 = 4 x 62); 248..255 are dropped.
_UID_TABLE = bytes(_UID_ALPHABET[b % 62] for b in range(248)) + bytes(8)
_UID_DROP = bytes(range(248, 256))


class _UidPool:
    """Base62 characters made from os.urandom 4 KiB at a time (one translate: a notice storm makes a uid per
    flow), handed out 17 at a time. One instance, UID_POOL; slots: detect/_fastflows.c takes uids from it in place."""

    __slots__ = ("chars", "used")

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        self.chars, self.used = "", 0


UID_POOL = _UidPool()
# A forked worker draws its own bytes: with the parent's leftovers two workers would name two flows alike.
os.register_at_fork(after_in_child=UID_POOL.forget)


UID_CHARS = 17  # a uid's random characters


def new_uid() -> str:
    """A Zeek-style connection uid: 'C' followed by UID_CHARS random base62 characters."""
    pool = UID_POOL
    start = pool.used
    while start + UID_CHARS > len(pool.chars):  # 4096 bytes keep ~3,970 characters
        pool.chars, start = os.urandom(4096).translate(_UID_TABLE, _UID_DROP).decode(), 0
    pool.used = start + UID_CHARS
    return "C" + pool.chars[start : start + UID_CHARS]


def echo_key(pkt: IcmpPacket) -> int:
    """An echo message's sequence number and code, as a reply pairs with its request: Linux answers a request
    with a code with that code (net/ipv4/icmp.c icmp_echo copies the header); code 0, the sequence number."""
    return pkt.seq | pkt.icmp_code << 16


@dataclass(slots=True)
class Flow:
    """Per directional host pair state (the fields of both profiles)."""

    src: bytes
    dst: bytes
    start: float
    last: float
    allowlisted: bool
    n: int = 0  # ICMP messages counted on this flow
    orig_bytes: int = 0  # echo request payload bytes src -> dst
    resp_bytes: int = 0  # echo reply payload bytes src -> dst
    other_bytes: int = 0  # payload bytes of other ICMP messages src -> dst that raised suspicion (standard)
    received_bytes: int = 0  # echo reply payload bytes dst -> src answering src's requests
    changed_requests: int = 0  # requests whose payload differed from the previous request's
    reply_differs: int = 0  # replies whose payload differed from the request compared with
    uid: str = ""
    # original profile
    last_request: int | None = None  # hash of the last request payload
    # standard profile
    novel_bytes: int = 0  # bytes src sent to dst that nothing benign explains
    nonecho_novel: int = 0  # of which in messages other than echo
    last_sketch: Sketch | None = None  # the last payload src sent to dst, for novelty
    last_embedded: float = 0.0  # timestamp in the last benign-template payload (must not go back)
    session: bytes | None = None  # per-session constant of a benign template (e.g. a pro-bing tracker)
    session_ident: int = -1  # the echo identifier (one run of a ping tool) session and last_embedded belong to
    tool: str = ""  # a recognised tunnel / exfiltration tool ...
    tool_evidence: str = ""  # ... and why
    nonecho_reason: str = ""
    alerted: int = 0  # the bits (NoteType.bit) of the notes already raised for this flow (real-time alerting)
    icmp_type: int = -1  # the type and code of the flow's first message (the notice's Zeek conn id)
    icmp_code: int = -1
    # capacity accounting (detect/capacity.py): the last request's header fields and time
    last_ident: int = -1
    last_seq: int = -1
    last_size: int = -1
    seq_stride: int = 1  # the sequence number's expected step (capacity.FlowChannels.stride, for the fast path)
    last_request_ts: float = 0.0
    clock_offset: float | None = None  # a benign template's embedded clock minus the capture clock
    # standard, alerting realtime: until when the pair's data is reported (a DataExfil, Tunnel or NonEchoPayload
    # raised: no SlowExfil for the same bytes), set on the pair's memory when the flow ends
    reported_until: float = 0.0
    channels: FlowChannels | None = None  # the rest, once needed

    def ensure_uid(self) -> str:
        if not self.uid:
            self.uid = new_uid()
        return self.uid

    @property
    def bytes_sent(self) -> int:
        return self.orig_bytes + self.resp_bytes + self.other_bytes


@dataclass(slots=True)
class DetectorStats:
    packets: int = 0  # packets handed to process()
    echo_requests: int = 0
    echo_replies: int = 0
    other_icmp: int = 0  # messages other than echo
    ignored_payloads: int = 0  # benign-template and allowlisted payloads
    unpaired_replies: int = 0
    novel_bytes: int = 0  # standard profile: bytes nothing benign explains
    flows_created: int = 0
    flows_expired: int = 0
    flows_evicted: int = 0  # dropped (after evaluation) because max_flows was reached
    pending_evicted: int = 0  # outstanding requests forgotten because max_pending_requests was reached
    pending_expired: int = 0
    pairs_evicted: int = 0  # slow-exfiltration memory forgotten because max_pairs was reached
    spread_hosts_evicted: int = 0  # standard: hosts' ExfilSpread memory forgotten (max_pairs, SPREAD_PEER_ENTRIES)
    notices: int = 0
    # standard: requests whose few changed places were charged byte for byte, not read as counters or clocks (the
    # readings' budget spent: capacity.FIELD_READINGS)
    fields_unread: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class FlowDetector:
    """Flow table, pending requests, clock, sweep, eviction; subclasses implement the detection."""

    def __init__(self, detection: DetectionConfig, allowlist: AllowlistConfig) -> None:
        self.stats = DetectorStats()
        self.now = 0.0
        self.last_novel = 0  # suspicious bytes in the packet process() last saw (evidence buffering)
        self._flows: OrderedDict[tuple[bytes, bytes], Flow] = OrderedDict()
        # (requester, responder, ident, echo_key) -> (what was sent, time), oldest first. An OrderedDict, not a
        # dict: taking the first item of a plain dict after many deletions at its front costs O(n).
        self._pending: OrderedDict[tuple[bytes, bytes, int, int], tuple[object, float]] = OrderedDict()
        self._next_sweep = 0.0
        self.reconfigure(detection, allowlist)

    # -- configuration ---------------------------------------------------------------------

    def reconfigure(self, detection: DetectionConfig, allowlist: AllowlistConfig) -> None:
        """Apply new thresholds, switches and allowlists; flow state is kept."""
        self.cfg = detection
        self.allowlist = HostAllowlist(allowlist.hosts)
        self._enabled = enabled_bits(detection.notices)  # the notes switched on (NoteType.bit)
        self._ignored_payloads = frozenset(allowlist.payloads)
        self._matched = detection.matched_pairing
        self._realtime = detection.realtime
        self._max_flows = detection.max_flows
        for flow in self._flows.values():
            flow.allowlisted = self._pair_allowlisted(flow.src, flow.dst)
        while len(self._flows) > detection.max_flows:
            self._evict_one([])
        while len(self._pending) > detection.max_pending_requests:
            self._pending.popitem(last=False)

    def _pair_allowlisted(self, src: bytes, dst: bytes) -> bool:
        if self.allowlist.empty:
            return False
        return self.allowlist.allowed(src) or self.allowlist.allowed(dst)

    # -- public API --------------------------------------------------------------------------

    @property
    def flow_count(self) -> int:
        return len(self._flows)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def flow_uid(self, src: bytes, dst: bytes) -> str:
        """The uid of the flow from `src` to `dst` (a packet's own flow), "" if it has none: no notice named it."""
        flow = self._flows.get((src, dst))
        return "" if flow is None else flow.uid

    def flows(self) -> list[Flow]:
        return list(self._flows.values())

    def process(self, pkt: IcmpPacket) -> Sequence[Notice]:
        """Account one packet; return the notices that became due (usually none)."""
        self.stats.packets += 1
        self.last_novel = 0
        due: list[Notice] = []
        if pkt.ts > self.now:
            self._clock_to(pkt.ts, due)
        self._packet(pkt, due)
        if len(self._flows) > self._max_flows:
            self._evict_over_cap(due)
        return due or NO_NOTICES

    def process_many(self, packets: list[IcmpPacket | None], start: int, watched: AbstractSet[tuple[bytes, bytes]],
                     observed: list[int] | None = None, folds: Callable[[str], bool] | None = None,
                     kept: Kept | None = None
                     ) -> tuple[int, Sequence[Notice] | None]:
        """process() for the next packet of packets[start:] (None items skipped): (its index, its notices), or
        (len(packets), None) when there is none. A detector that can take several packets at once returns the
        first one whose caller has more to do than nothing: notices, novel bytes (last_novel), or a pair in
        `watched` (a set of pair keys, output/evidence.py pair_key: one for both directions); it has processed the
        packets before it, with none of those. Given `observed`, it may go past
        the packets of a pair in `watched` without notices, novel bytes or not (the evidence recorder holds a
        watched pair's packets whatever they carried), appending their indexes to it. Given `folds` too (whether
        the notices of the flow with a uid are folded: NoticeAggregator.folds), it may go past a packet with novel
        bytes, without notices, of a pair not watched: it appends ~index (the recorder may start a ring for the
        pair), and lists the pair's later packets too, each as what it is (~index with novel bytes, the index
        without: the recorder's rings may come and go in between); but where folds(the uid of the packet's flow, a
        uid no notice named: not called) is true it appends nothing (the recorder is not shown those but for a
        watched pair's).
        Given `kept` too (what of the notices raised to write now: NoticeAggregator.filter, which may fold them),
        the notices returned are what kept() keeps of them, and it may go past a packet it keeps none of, listed
        as one without notices would be. This one takes a packet at a time: it appends none."""
        n = len(packets)
        start = max(start, 0)
        while start < n and packets[start] is None:
            start += 1
        if start >= n:
            return n, None
        pkt: IcmpPacket = packets[start]  # type: ignore[assignment]
        if kept is not None and self.sweep_due(pkt.ts):
            return start, self._swept_then(pkt, kept, self.process)
        notices = self.process(pkt)
        return start, kept(notices) if kept is not None and notices else notices

    def sweep_due(self, ts: float) -> bool:
        """Whether a packet at `ts` would sweep idle flows before it is handled (as process() moves the
        clock): for a replay worker that reads other workers' packets without handing them to process()."""
        return ts > self.now and ts >= self._next_sweep

    def advance(self, now: float) -> Sequence[Notice]:
        """Move the clock forward (e.g. wall time while the wire is quiet) and expire idle flows."""
        due: list[Notice] = []
        for chunk in self.advance_chunks(now):
            due += chunk
        return due or NO_NOTICES

    def advance_chunks(self, now: float, kept: Kept | None = None) -> Iterator[list[Notice]]:
        """advance(), the idle flows ended FLUSH_CHUNK at a time: each chunk's notices, made when it is asked for.
        `kept`: what the caller hands each chunk to, before it asks for the next (see _end_flows)."""
        if now > self.now:
            yield from self._clock_chunks(now, kept)

    def _clock_to(self, now: float, due: list[Notice]) -> None:
        """The clock moved forward to `now` (later than it was): idle flows swept first when it reaches a sweep."""
        for chunk in self._clock_chunks(now):
            due += chunk

    def _clock_chunks(self, now: float, kept: Kept | None = None) -> Iterator[list[Notice]]:
        """_clock_to, the sweep's notices a chunk at a time (`kept`: _end_flows')."""
        self.now = now
        if now >= self._next_sweep:
            yield from self._swept(now - now % SWEEP_INTERVAL, kept)

    def _swept_then(self, pkt: IcmpPacket, kept: Kept,
                    handle: Callable[[IcmpPacket], Sequence[Notice]]) -> Sequence[Notice]:
        """process_many's packet that moves the clock to a sweep (sweep_due): what kept() keeps of the sweep's notices,
        handed to it a chunk at a time (a gap in a replay sweeps up to max_flows flows at once), then of the
        packet's, which `handle` gives once the clock is at the packet."""
        out: list[Notice] = []
        for chunk in self._clock_chunks(pkt.ts, kept):
            out += kept(chunk)
        notices = handle(pkt)
        if notices:
            out += kept(notices)
        return out or NO_NOTICES

    def flush(self) -> list[Notice]:
        """End of input: evaluate and forget every flow."""
        due: list[Notice] = []
        for chunk in self.flush_chunks():
            due += chunk
        return due

    def flush_chunks(self, kept: Kept | None = None) -> Iterator[list[Notice]]:
        """flush(), FLUSH_CHUNK flows at a time, oldest first: each chunk's notices, made when the chunk is asked
        for (the pipeline folds a storm's before the next chunk's are made). `kept`: what the caller hands each chunk
        to, before it asks for the next (see _end_flows)."""
        while self._flows:
            due: list[Notice] = []
            self._end_flows(due, self.now, None, FLUSH_CHUNK, kept)
            yield due
        self._pending.clear()

    # -- for subclasses ----------------------------------------------------------------------

    def _packet(self, pkt: IcmpPacket, due: list[Notice]) -> None:
        raise NotImplementedError

    def _flow_ended(self, flow: Flow, ts: float, due: list[Notice]) -> None:
        raise NotImplementedError

    def _ignored(self, payload: bytes) -> bool:
        if payload in self._ignored_payloads:
            self.stats.ignored_payloads += 1
            return True
        return False

    def _flow(self, pkt: IcmpPacket) -> Flow:
        key = (pkt.src, pkt.dst)
        ts = pkt.ts
        flow = self._flows.get(key)
        if flow is None:
            return self._new_flow(key, pkt)
        self._flows.move_to_end(key)
        if ts > flow.last:
            flow.last = ts
        return flow

    # The flow made in C (detect/_fastflows.c new_flow, from NEW_FLOW; the Flow call of _new_flow is its reference,
    # tests/unit/test_fastflows.py holds them equal); None: the reference.
    _fast_flow: Callable[..., Flow] | None = None if _fastflows is None else _fastflows.new_flow

    def _new_flow(self, key: tuple[bytes, bytes], pkt: IcmpPacket) -> Flow:
        """A flow for the (source, destination) pair `key`, which has none; `pkt` its first message."""
        src, dst = key
        ts = pkt.ts
        allowlisted, fast = self._pair_allowlisted(src, dst), self._fast_flow
        flow = self._flows[key] = \
            Flow(src, dst, ts, ts, allowlisted, icmp_type=pkt.icmp_type, icmp_code=pkt.icmp_code) if fast is None \
            else fast(NEW_FLOW, src, dst, ts, allowlisted, pkt.icmp_type, pkt.icmp_code)
        self.stats.flows_created += 1
        self._flow_started(flow)
        return flow

    def _flow_started(self, flow: Flow) -> None:
        """Hook: a new flow was created."""

    def _unpaired(self, pkt: IcmpPacket, flow: Flow, due: list[Notice]) -> None:
        """A reply whose request was never seen: counted, and a notice if that note is on."""
        self.stats.unpaired_replies += 1
        if not self._enabled & UNPAIRED_ECHO_REPLY.bit or flow.allowlisted:
            return
        due.append(unpaired_notice(pkt, flow))
        self.stats.notices += 1

    def _request_flow(self, reply: IcmpPacket) -> Flow | None:
        """The flow of the requests a reply answers (the other direction), if tracked."""
        return self._flows.get((reply.dst, reply.src))

    def _remember_request(self, pkt: IcmpPacket, sent: object) -> None:
        pending = self._pending
        key = (pkt.src, pkt.dst, pkt.ident, echo_key(pkt))
        if key in pending:
            pending.move_to_end(key)  # keep the order = age order
        elif len(pending) >= self.cfg.max_pending_requests:
            pending.popitem(last=False)
            self.stats.pending_evicted += 1
        pending[key] = (sent, pkt.ts)

    def _answered_request(self, reply: IcmpPacket) -> object | None:
        """What the request a reply answers carried (and forget it), or None if it was never seen."""
        entry = self._pending.pop((reply.dst, reply.src, reply.ident, echo_key(reply)), None)
        return None if entry is None else entry[0]

    # -- expiry and eviction -----------------------------------------------------------------

    def _swept(self, now: float, kept: Kept | None = None) -> Iterator[list[Notice]]:
        """Evaluate and drop the flows idle for idle_timeout at `now`, FLUSH_CHUNK at a time (each chunk's
        notices yielded before the next chunk's are made), then forget requests as old.

        Sweeps run at whole multiples of SWEEP_INTERVAL of the clock (`now`), once the clock has
        passed one: what has expired before a packet is handled then depends on that packet's time
        only, not on which other host pairs' packets came before it, so a replay worker that sees
        some pairs decides as one process that sees them all."""
        self._next_sweep = now + SWEEP_INTERVAL
        timeout = self.cfg.idle_timeout
        ended = FLUSH_CHUNK
        while ended == FLUSH_CHUNK:  # a chunk ended whole: more may be idle
            due: list[Notice] = []
            ended = self._end_flows(due, now, timeout, FLUSH_CHUNK, kept)
            self.stats.flows_expired += ended
            if due:
                yield due
        self.stats.pending_expired += self._requests_expired(now - timeout)

    def _end_flows(self, due: list[Notice], now: float, timeout: float | None, limit: int = sys.maxsize,
                   kept: Kept | None = None) -> int:
        """End flows oldest first, each taken out of the table, then _flow_ended: every one at `now` (timeout
        None: the flush), else those idle for `timeout` at `now`, each at its last packet + timeout (a sweep); at
        most `limit` of them. How many it ended. (The standard detector's C path ends them in one loop:
        _fastflows.c flows_ended; this is the reference.) `kept`: what `due` is handed to next, nothing before it
        (NoticeAggregator.filter): the C path may fold there a notice it would fold and tell nothing of instead of
        making it (what it keeps is the same); this makes every notice."""
        flows = self._flows
        ended = 0
        while flows and ended < limit:
            flow = next(iter(flows.values()))
            if timeout is not None and flow.last + timeout > now:
                break
            flows.popitem(last=False)
            ended += 1
            self._flow_ended(flow, now if timeout is None else flow.last + timeout, due)
        return ended

    def _requests_expired(self, cutoff: float) -> int:
        """Forget the pending requests sent at or before `cutoff`, oldest first: how many."""
        pending = self._pending
        fast = self._fast_expiry
        expired = 0 if fast is None else fast(pending, cutoff)  # the loop below, in C
        while pending:
            _, (_, sent_at) = next(iter(pending.items()))
            if sent_at > cutoff:
                break
            pending.popitem(last=False)
            expired += 1
        return expired

    def _evict_over_cap(self, due: list[Notice]) -> None:
        while len(self._flows) > self.cfg.max_flows:
            self._evict_one(due)

    def _evict_one(self, due: list[Notice]) -> None:
        """Drop a flow, after evaluating it (its notices still fire).

        Of the EVICTION_SCAN least recently active flows, the least interesting goes (_interest; the
        oldest on a tie): a flood of one-packet flows from spoofed sources, or a storm of alerted ones,
        then pushes out itself, not the flow that is accumulating evidence. (The standard detector's C
        path evicts so after a new flow it made: _fastflows.c evict_flow; this is the reference.)
        """
        flows = self._flows
        interest = self._interest
        victim_key, victim = next(iter(flows.items()))
        least = interest(victim)
        if least:
            # never the flow just created (the last one): it has not had a chance yet
            for key, flow in itertools.islice(flows.items(), 1, min(EVICTION_SCAN, len(flows) - 1)):
                value = interest(flow)
                if value < least:
                    victim_key, victim, least = key, flow, value
                    if not value:
                        break
        del flows[victim_key]
        self.stats.flows_evicted += 1
        self._flow_ended(victim, self.now, due)

    @staticmethod
    def _interest(flow: Flow) -> float:
        """How much a flow is worth keeping: suspicious bytes so far. An alerted flow (or a tool's) has told its
        story: it is worth less than any flow with something suspicious not told yet, more than one with nothing,
        and more the more packets it has had, 1 - 1 / (1 + n), from 0.5 (a storm's one-packet flows) towards 1.
        (Kept above all until 2026-12-07, a storm of alerted one-packet flows faster than the table turns over
        evicted the flow accumulating novel bytes under the thresholds whenever it was among the least recently
        active: each of its requests a flow of its own, none past novel_bytes_threshold. Alerted flows ranked as
        equals, the storm split a flow after its first notice: told again, a note counted over its requests lost.)"""
        if flow.alerted or flow.tool:
            return 1 - 1 / (1 + flow.n)
        return flow.novel_bytes + flow.changed_requests + flow.reply_differs

    # -- notices -----------------------------------------------------------------------------

    NOVEL = False  # whether notices carry the flow's novel bytes (the standard profile measures them)

    def _raise(self, flow: Flow, ts: float, note: NoteType, msg: str, due: list[Notice], **fields: object) -> None:
        """Raise `note` for the flow, once; its text (`msg`, a _FlowText template) is only built then."""
        if flow.alerted & note.bit:
            return
        flow.alerted |= note.bit
        self._raised(flow, ts, note)
        due.append(self._notice(flow, ts, note.name, msg, fields))

    def _raised(self, flow: Flow, ts: float, note: NoteType) -> None:
        """Hook: `note` was raised for the flow, for the first time."""

    # What a profile adds at the end of a flow notice's `sub`: a function of the flow's snapshot and the
    # `extra` its _tags gives (None: nothing).
    EXTRA: Callable[[Flow, object], str] | None = None

    def _tags(self, flow: Flow) -> tuple[object, str, str]:
        """What a profile adds to a flow's notice: the `extra` for EXTRA, the tool, the channels."""
        return None, "", ""

    # The notice made in C (detect/_fastflows.c flow_notice; the Notice statement of _notice is its reference,
    # tests/unit/test_fastflows.py holds them equal); None: the reference.
    _fast_notice: Callable[..., Notice] | None = None if _fastflows is None else _fastflows.flow_notice

    # The sweep's expired requests in C (detect/_fastflows.c requests_expired; _requests_expired's loop is its
    # reference); None: the reference.
    _fast_expiry: Callable[[OrderedDict[tuple[bytes, bytes, int, int], tuple[object, float]], float], int] | None = \
        None if _fastflows is None else _fastflows.requests_expired

    def _notice(self, flow: Flow, ts: float, note: str, msg: str, fields: dict[str, object] | None = None) -> Notice:
        """A notice on the flow; `msg` is a _FlowText template (with `fields`). Its text is made only if
        it is read (FlowNoticeText): from a snapshot of the flow now. Straight-line, positional: a notice storm
        makes two per flow, almost all folded unread (notice/aggregate.py)."""
        novel_bytes = flow.novel_bytes if self.NOVEL else -1
        self.stats.notices += 1
        extra, tool, channels = self._tags(flow)
        fast = self._fast_notice
        if fast is not None:
            return fast(flow, ts, note, msg, fields or {}, novel_bytes, self.EXTRA, extra, tool, channels,
                        flow.ensure_uid())
        return Notice(ts, note, "", "", addr_text(flow.src), addr_text(flow.dst), flow.ensure_uid(),
                      flow.n, flow.bytes_sent, flow.received_bytes, flow.start, flow.last, novel_bytes, "",
                      flow.icmp_type, flow.icmp_code, tool, channels, 0,
                      FlowNoticeText(_flow_values(flow), msg, fields or {}, novel_bytes, self.EXTRA, extra))


_flow_values = operator.attrgetter(*(f.name for f in fields(Flow)))


class FlowNoticeText:
    """A flow notice's msg and sub, made when first read (notice/record.py) from the flow as it was when the
    notice was raised (its fields' values; a profile's `extra` is taken then too)."""

    __slots__ = ("extra", "extra_text", "fields", "msg", "novel_bytes", "values")

    def __init__(self, values: tuple[object, ...], msg: str, fields: dict[str, object], novel_bytes: int,
                 extra_text: Callable[[Flow, object], str] | None, extra: object) -> None:
        self.values, self.msg, self.fields, self.novel_bytes = values, msg, fields, novel_bytes
        self.extra_text, self.extra = extra_text, extra

    def render(self) -> tuple[str, str]:
        flow = Flow(*self.values)
        text = _FlowText(flow, self.fields)
        extra = self.extra_text(flow, self.extra) if self.extra_text is not None else ""
        sub = flow_summary_sub(text.src, text.dst, flow.start, flow.last, flow.bytes_sent, flow.received_bytes,
                               flow.n, self.novel_bytes, extra, duration=text.duration)
        return self.msg.format_map(text), sub


NEW_FLOW = Flow(b"", b"", 0.0, 0.0, False)  # every default: what _fastflows.new_flow copies (never changed)


def bind_notice_accelerator() -> None:
    """Give the C path the records its notices are made of, how an address is written (addr_text, and
    V4_EMBEDDABLE: the IPv6 addresses it leaves to addr_text) and the pool a flow's uid is taken from (new_uid)."""
    if _fastflows is not None:
        _fastflows.bind_notice(Notice, FlowNoticeText, Flow, tuple(f.name for f in fields(Flow)), addr_text,
                               V4_EMBEDDABLE, UID_POOL, UID_CHARS)


bind_notice_accelerator()


class _FlowText(dict[str, object]):
    """A flow's fields as notice text, for a notice's msg template (str.format_map), each computed only if
    asked: {src} {dst} {between} ("from A to B"), {span} (start, end, duration), {duration}, sizes {sent}
    {novel} {requests} {nonecho}, {flow.<attribute>}, and the fields a note adds."""

    def __init__(self, flow: Flow, fields: dict[str, object]) -> None:
        # src, dst and duration are in every notice's sub: made at once (a storm's flush makes 100,000)
        self.src, self.dst = addr_text(flow.src), addr_text(flow.dst)
        self.duration = format_interval(flow.last - flow.start)
        super().__init__(fields, flow=flow, src=self.src, dst=self.dst, duration=self.duration)
        self.flow = flow

    def __missing__(self, key: str) -> object:
        flow = self.flow
        value: object
        if key == "between":
            value = f"from {self.src} to {self.dst}"
        elif key == "span":
            value = time_span_text(flow.start, flow.last, self.duration)
        else:  # a byte count: sent, novel, requests, nonecho
            value = format_size(getattr(flow, _SIZES[key]))
        self[key] = value
        return value


_SIZES = {"sent": "bytes_sent", "novel": "novel_bytes", "requests": "orig_bytes", "nonecho": "nonecho_novel"}


def unpaired_notice(pkt: IcmpPacket, flow: Flow) -> Notice:
    src, dst = addr_text(pkt.src), addr_text(pkt.dst)
    return Notice(
        ts=pkt.ts,
        note=UNPAIRED_ECHO_REPLY.name,
        msg=f"ICMP echo reply from {src} to {dst} (id {pkt.ident}, seq {pkt.seq}) answers no echo request seen.",
        sub=(
            f"Source: {src}, Destination: {dst}, Time: {pkt.ts:.6f}, "
            f"Payload bytes: {len(pkt.payload)}, Event count: {flow.n}"
        ),
        src=src,
        dst=dst,
        uid=flow.ensure_uid(),
        n=flow.n,
        bytes_sent=len(pkt.payload),
        bytes_received=0,
        start=pkt.ts,
        end=pkt.ts,
        icmp_type=pkt.icmp_type,
        icmp_code=pkt.icmp_code,
    )
