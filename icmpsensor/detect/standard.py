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
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from icmpsensor.config.schema import AllowlistConfig, DetectionConfig
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.detect import fingerprints, nonecho, tunnels
from icmpsensor.detect.flows import EVICTION_SCAN, NO_NOTICES, SWEEP_INTERVAL, Flow, FlowDetector
from icmpsensor.detect.novelty import EMPTY_REST_HASH, PREFIX, Sketch, novel_between, sketch
from icmpsensor.notice.record import Notice
from icmpsensor.notice.text import format_size
from icmpsensor.notice.types import (
    ASYM_PAYLOAD,
    ASYM_PAYLOAD_FLOW,
    DATA_EXFIL,
    EXFIL_SUMMARY,
    NON_ECHO_PAYLOAD,
    SLOW_EXFIL,
    TUNNEL,
    NoteType,
)

# The notes' msg: templates of the flow's fields (detect/flows.py _FlowText).
EXFIL_MSG = "Exfil of {novel} of novel data ({sent} of payload) seen {between} so far. {span}"
SUMMARY_MSG = "Exfil of size {sent} ({novel} novel) seen between {src} and {dst}. {span}"  # the original's format
ASYM_MSG = "{flow.reply_differs} ICMP echo replies {between} carried bytes the request they answer did not. {span}"
CHANGES_MSG = "ICMP echo request payload carried new bytes {flow.changed_requests} times {between}. {span}"
TUNNEL_MSG = "ICMP tunnel or exfiltration tool {flow.tool} recognised {between}: {flow.tool_evidence}."
NONECHO_MSG = "{nonecho} carried in ICMP messages other than echo {between} ({flow.nonecho_reason}). {span}"
SLOW_MSG = "Slow exfil: {total} of novel data {between} within {hours:g} h, in packets spread over many flows. {span}"

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


class Detector(FlowDetector):
    """The standard profile."""

    def __init__(self, detection: DetectionConfig, allowlist: AllowlistConfig) -> None:
        self._pairs: OrderedDict[tuple[bytes, bytes], PairMemory] = OrderedDict()
        self._tools = tunnels.ToolTracker()
        self._due: list[Notice] = []  # process()'s notices, handed out as a copy
        super().__init__(detection, allowlist)

    def reconfigure(self, detection: DetectionConfig, allowlist: AllowlistConfig) -> None:
        super().reconfigure(detection, allowlist)
        while len(self._pairs) > detection.max_pairs:
            self._pairs.popitem(last=False)

    # -- per packet --------------------------------------------------------------------------
    #
    # The measured hot path: one method per kind of message, with the flow lookup, the payload
    # sketch and the pending-request bookkeeping written out in place; helpers are called only when
    # a payload is new (novelty, templates), and a flow is evaluated only when this packet changed
    # what the evaluation looks at (novel bytes, a recognised tool).

    def process(self, pkt: IcmpPacket) -> Sequence[Notice]:
        """Account one packet; return the notices that became due (usually none)."""
        stats = self.stats
        stats.packets += 1
        self.last_novel = 0
        ts = pkt.ts
        due = self._due
        if ts > self.now:
            self.now = ts
            if ts >= self._next_sweep:
                self._sweep(due, ts - ts % SWEEP_INTERVAL)
        kind = (_KIND_V6 if pkt.ipv6 else _KIND_V4)[pkt.icmp_type]
        if kind == _REQUEST and not pkt.icmp_code:
            stats.echo_requests += 1
            self._on_request(pkt, ts, due)
        elif kind != _REPLY:  # other types, and echo requests with a non-zero code
            stats.other_icmp += 1
            self._on_other(pkt, due)
        else:  # a reply, whatever its code: a host that echoes a request back adds nothing
            stats.echo_replies += 1
            self._on_reply(pkt, ts, due)
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
        recognised = not flow.tool and self._recognise_tool(flow, pkt)
        if self._matched:
            self._remember_request(pkt, current)
        if novel:
            flow.changed_requests += 1
            self._add_novel(flow, novel)
        if (novel or recognised) and self._realtime:
            self._evaluate(flow, ts, due)

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
            entry = self._pending.pop((dst, src, pkt.ident, pkt.seq), None)
            request = None if entry is None else entry[0]
        else:
            request = None if request_flow is None else request_flow.last_sketch
        current = (payload, EMPTY_REST_HASH, size) if size <= PREFIX else \
            (payload[:PREFIX], hash(payload[PREFIX:]), size)
        if request is None:
            self._unpaired(pkt, flow, due)
            request = flow.last_sketch
        flow.last_sketch = current
        if self._ignored_payloads and payload in self._ignored_payloads:
            self.stats.ignored_payloads += 1
            return
        if current == request or not size:
            return
        novel = self._novelty(flow, pkt, current, request)
        if not novel:
            return
        # a reply that only echoes its request says nothing about the replier
        if not flow.tool:
            self._recognise_tool(flow, pkt)
        flow.reply_differs += 1
        self._add_novel(flow, novel)
        if self._realtime:
            self._evaluate(flow, ts, due)

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

    def _novelty(self, flow: Flow, pkt: IcmpPacket, current: Sketch, compared: Sketch | None) -> int:
        """Novel bytes of a non-empty echo payload (sketched as `current`, which differs from `compared`:
        so novel_between is not 0): 0 if a benign template explains it, else what `compared` does not.
        The template is tried first: most changed payloads are a ping's new timestamp."""
        benign = fingerprints.explain(pkt.payload, pkt.ts, tolerance=self.cfg.timestamp_tolerance,
                                      is_reply=pkt.is_echo_reply)
        if benign is not None and self._consistent(flow, benign, pkt):
            self.stats.ignored_payloads += 1
            return 0
        return novel_between(current, compared)

    def _recognise_tool(self, flow: Flow, pkt: IcmpPacket) -> bool:
        """Whether the tool tracker recognised a tool in this packet (it is then the flow's)."""
        match = self._tools.observe(pkt)
        if match is None:
            return False
        flow.tool, flow.tool_evidence = match.tool, match.evidence
        return True

    @staticmethod
    def _consistent(flow: Flow, benign: fingerprints.Benign, pkt: IcmpPacket) -> bool:
        """Within one run of a ping tool (one echo identifier), a benign template's clock must not run
        backwards and its per-run constant (session) must not change."""
        if pkt.ident != flow.session_ident:
            flow.session_ident, flow.session, flow.last_embedded = pkt.ident, None, 0.0
        if benign.session is not None:
            if flow.session is None:
                flow.session = benign.session
            elif benign.session != flow.session:
                return False
        embedded = benign.embedded_time
        if embedded is None or pkt.is_echo_reply:
            return True
        if embedded + 1.0 < flow.last_embedded and not benign.wraps_after:
            return False  # a replayed or forged timestamp
        flow.last_embedded = embedded
        return True

    def _add_novel(self, flow: Flow, novel: int) -> None:
        # A flow's novel bytes join its pair's long-term memory when the flow ends (_flow_ended):
        # the many short flows of a flood then cost no pair memory while they live.
        self.last_novel += novel
        flow.novel_bytes += novel
        self.stats.novel_bytes += novel

    def _pair(self, src: bytes, dst: bytes) -> PairMemory:
        key = (src, dst)
        pairs = self._pairs
        memory = pairs.get(key)
        if memory is None:
            if len(pairs) >= self.cfg.max_pairs:
                self._evict_pair()
            memory = pairs[key] = PairMemory()
        else:
            pairs.move_to_end(key)
        return memory

    def _evict_pair(self) -> None:
        """Forget, of the EVICTION_SCAN least recently active pairs, the one with the fewest novel bytes."""
        pairs = self._pairs
        victim, least = None, float("inf")
        for key, memory in itertools.islice(pairs.items(), EVICTION_SCAN):
            if memory.novel < least:
                victim, least = key, memory.novel
        if victim is not None:
            del pairs[victim]
            self.stats.pairs_evicted += 1

    # -- flows start and end -----------------------------------------------------------------

    def _flow_started(self, flow: Flow) -> None:
        memory = self._pairs.get((flow.src, flow.dst))
        if memory is not None:
            flow.last_sketch = memory.last_sketch

    def _flow_ended(self, flow: Flow, ts: float, due: list[Notice]) -> None:
        if flow.novel_bytes and not flow.allowlisted:
            memory = self._pair(flow.src, flow.dst)
            memory.last_sketch = flow.last_sketch
            memory.add(flow.last, flow.novel_bytes, self.cfg.slow_exfil_window / SLOW_BUCKETS)
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
        if enabled & _EXFIL and flow.novel_bytes - flow.nonecho_novel > cfg.novel_bytes_threshold:
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

    def _raise(self, flow: Flow, ts: float, note: NoteType, msg: str, due: list[Notice], **fields: object) -> None:
        if note.bit & _REPORTS_PAIR and not flow.alerted & note.bit:
            # the pair's data is reported: no SlowExfil for the same bytes
            self._pair(flow.src, flow.dst).slow_alerted_until = ts + self.cfg.slow_exfil_window
        super()._raise(flow, ts, note, msg, due, **fields)

    def _extra(self, flow: Flow) -> str:
        parts = []
        if flow.tool:
            parts.append(f"Tool: {flow.tool} ({flow.tool_evidence})")
        if flow.nonecho_reason:
            parts.append(f"Non-echo: {flow.nonecho_reason}")
        return ", ".join(parts)
