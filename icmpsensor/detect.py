"""The detector: a pure core that turns decoded ICMP packets and a clock into notices.

No I/O and no threads: `process()` takes one IcmpPacket, `advance()` moves the clock
(packet time when replaying files, wall time when live), `flush()` ends the input.
Each returns the notices that became due.

State follows the original Zeek detector (BEHAVIOUR.md): a flow is a directional host
pair (sender, receiver); echo requests from A to B update flow (A,B), replies from B to
A update flow (B,A). One correction: with `reply_pairing: matched` a reply is compared
with the request it answers (same id and sequence number), not with the last request
seen, and a reply whose request was never seen is unpaired.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from icmpsensor.config import AllowlistConfig, DetectionConfig
from icmpsensor.notices import (
    NOTE_ASYM_PAYLOAD,
    NOTE_ASYM_PAYLOAD_FLOW,
    NOTE_DATA_EXFIL,
    NOTE_UNPAIRED_ECHO_REPLY,
    Notice,
    addr_text,
    flow_summary_sub,
    format_size,
    time_span_text,
)
from icmpsensor.packet import IcmpPacket

# The two default ping payloads the original ignores: the tail of the Linux/macOS
# 56-byte fill and the 32-byte Windows payload.
LINUX_PING_TAIL = bytes(range(0x20, 0x38))
WINDOWS_PING_PAYLOAD = b"abcdefghijklmnopqrstuvwabcdefghi"

NO_NOTICES: Sequence[Notice] = ()

# How often (in clock seconds) idle flows and stale pending requests are looked for.
SWEEP_INTERVAL = 1.0

_UID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_uid() -> str:
    """A Zeek-style connection uid: 'C' followed by 17 base62 characters."""
    value = int.from_bytes(os.urandom(13), "big")
    chars = []
    for _ in range(17):
        value, digit = divmod(value, 62)
        chars.append(_UID_ALPHABET[digit])
    return "C" + "".join(chars)


def is_default_ping(payload: bytes) -> bool:
    """The original's benign-payload test (deliberately as loose as the original's)."""
    size = len(payload)
    if size == 56:
        return payload[32:] == LINUX_PING_TAIL
    return size == 32 and payload == WINDOWS_PING_PAYLOAD


@dataclass(slots=True)
class Flow:
    """Per directional host pair state."""

    src: bytes
    dst: bytes
    start: float
    last: float
    allowlisted: bool
    n: int = 0  # echo messages counted on this flow
    orig_bytes: int = 0  # echo request payload bytes src -> dst
    resp_bytes: int = 0  # echo reply payload bytes src -> dst
    received_bytes: int = 0  # echo reply payload bytes dst -> src answering src's requests
    last_request: int | None = None  # hash of the last request payload
    changed_requests: int = 0  # requests whose payload differed from the previous request's
    reply_differs: int = 0  # replies whose payload differed from the request compared with
    uid: str = ""

    def ensure_uid(self) -> str:
        if not self.uid:
            self.uid = new_uid()
        return self.uid


@dataclass(slots=True)
class DetectorStats:
    packets: int = 0  # packets handed to process()
    echo_requests: int = 0
    echo_replies: int = 0
    other_icmp: int = 0  # non-echo messages (ignored by these detections)
    ignored_payloads: int = 0  # default pings and allowlisted payloads
    unpaired_replies: int = 0
    flows_created: int = 0
    flows_expired: int = 0
    flows_evicted: int = 0  # dropped (after evaluation) because max_flows was reached
    pending_evicted: int = 0  # outstanding requests forgotten because max_pending_requests was reached
    pending_expired: int = 0
    notices: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Detector:
    """Stateful ICMP exfiltration detector (pure: no I/O, no threads, no wall clock)."""

    def __init__(self, detection: DetectionConfig, allowlist: AllowlistConfig) -> None:
        self.stats = DetectorStats()
        self.now = 0.0
        self._flows: OrderedDict[tuple[bytes, bytes], Flow] = OrderedDict()
        # (requester, responder, ident, seq) -> (payload hash, time); insertion ordered, so oldest first.
        self._pending: dict[tuple[bytes, bytes, int, int], tuple[int, float]] = {}
        self._next_sweep = 0.0
        self.reconfigure(detection, allowlist)

    # -- configuration ---------------------------------------------------------------------

    def reconfigure(self, detection: DetectionConfig, allowlist: AllowlistConfig) -> None:
        """Apply new thresholds, switches and allowlists; flow state is kept."""
        self.cfg = detection
        self.allowlist = allowlist
        self._ignored_payloads = frozenset(allowlist.payloads)
        self._matched = detection.reply_pairing == "matched"
        for flow in self._flows.values():
            flow.allowlisted = self._pair_allowlisted(flow.src, flow.dst)
        while len(self._flows) > detection.max_flows:
            self._evict_one()
        while len(self._pending) > detection.max_pending_requests:
            self._pending.pop(next(iter(self._pending)))

    def _pair_allowlisted(self, src: bytes, dst: bytes) -> bool:
        if not self.allowlist.hosts:
            return False
        return self.allowlist.host_allowed(src) or self.allowlist.host_allowed(dst)

    # -- public API --------------------------------------------------------------------------

    @property
    def flow_count(self) -> int:
        return len(self._flows)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def process(self, pkt: IcmpPacket) -> Sequence[Notice]:
        """Account one packet; return the notices that became due (usually none)."""
        self.stats.packets += 1
        due: list[Notice] | None = None
        if pkt.ts > self.now:
            self.now = pkt.ts
            if self.now >= self._next_sweep:
                due = self._sweep()
        if pkt.is_echo_request:
            self.stats.echo_requests += 1
            self._on_request(pkt)
        elif pkt.is_echo_reply:
            self.stats.echo_replies += 1
            notice = self._on_reply(pkt)
            if notice is not None:
                due = (due or []) + [notice]
        else:
            self.stats.other_icmp += 1
        if due:
            self._evict_over_cap(due)
            return due
        if len(self._flows) > self.cfg.max_flows:
            due = []
            self._evict_over_cap(due)
            return due
        return NO_NOTICES

    def advance(self, now: float) -> Sequence[Notice]:
        """Move the clock forward (e.g. wall time while the wire is quiet) and expire idle flows."""
        if now <= self.now:
            return NO_NOTICES
        self.now = now
        return self._sweep()

    def flush(self) -> list[Notice]:
        """End of input: evaluate and forget every flow."""
        due: list[Notice] = []
        while self._flows:
            _, flow = self._flows.popitem(last=False)
            self._evaluate(flow, self.now, due)
        self._pending.clear()
        return due

    # -- per packet ------------------------------------------------------------------------

    def _ignored(self, payload: bytes) -> bool:
        if (self.cfg.ignore_default_pings and is_default_ping(payload)) or payload in self._ignored_payloads:
            self.stats.ignored_payloads += 1
            return True
        return False

    def _flow(self, src: bytes, dst: bytes, ts: float) -> Flow:
        key = (src, dst)
        flow = self._flows.get(key)
        if flow is None:
            flow = Flow(src, dst, ts, ts, self._pair_allowlisted(src, dst))
            self._flows[key] = flow
            self.stats.flows_created += 1
        else:
            self._flows.move_to_end(key)
            if ts > flow.last:
                flow.last = ts
        return flow

    def _on_request(self, pkt: IcmpPacket) -> None:
        payload = pkt.payload
        if self._ignored(payload):
            return
        flow = self._flow(pkt.src, pkt.dst, pkt.ts)
        flow.n += 1
        flow.orig_bytes += len(payload)
        digest = hash(payload)
        if flow.last_request is not None and digest != flow.last_request:
            flow.changed_requests += 1
        flow.last_request = digest
        if self._matched:
            self._remember_request((pkt.src, pkt.dst, pkt.ident, pkt.seq), digest, pkt.ts)

    def _remember_request(self, key: tuple[bytes, bytes, int, int], digest: int, ts: float) -> None:
        pending = self._pending
        if key in pending:
            del pending[key]  # keep insertion order = age order
        elif len(pending) >= self.cfg.max_pending_requests:
            pending.pop(next(iter(pending)))
            self.stats.pending_evicted += 1
        pending[key] = (digest, ts)

    def _on_reply(self, pkt: IcmpPacket) -> Notice | None:
        payload = pkt.payload
        if self._ignored(payload):
            return None
        # The reply travels responder -> requester; the request went the other way.
        request_flow = self._flows.get((pkt.dst, pkt.src))
        flow = self._flow(pkt.src, pkt.dst, pkt.ts)
        flow.n += 1
        flow.resp_bytes += len(payload)
        if request_flow is not None:
            request_flow.received_bytes += len(payload)
        if self._matched:
            entry = self._pending.pop((pkt.dst, pkt.src, pkt.ident, pkt.seq), None)
            if entry is None:
                return self._unpaired(pkt, flow)
            if entry[0] != hash(payload):
                flow.reply_differs += 1
            return None
        if request_flow is None or request_flow.last_request is None:
            return self._unpaired(pkt, flow)
        if request_flow.last_request != hash(payload):
            flow.reply_differs += 1
        return None

    def _unpaired(self, pkt: IcmpPacket, flow: Flow) -> Notice | None:
        self.stats.unpaired_replies += 1
        if not self.cfg.notices.unpaired_echo_reply or flow.allowlisted:
            return None
        src, dst = addr_text(pkt.src), addr_text(pkt.dst)
        self.stats.notices += 1
        return Notice(
            ts=pkt.ts,
            note=NOTE_UNPAIRED_ECHO_REPLY,
            msg=(
                f"ICMP echo reply from {src} to {dst} (id {pkt.ident}, seq {pkt.seq}) "
                "answers no echo request seen."
            ),
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
        )

    # -- expiry, eviction, evaluation --------------------------------------------------------

    def _sweep(self) -> list[Notice]:
        """Evaluate and drop flows idle for idle_timeout; forget requests as old."""
        now = self.now
        self._next_sweep = now + SWEEP_INTERVAL
        timeout = self.cfg.idle_timeout
        due: list[Notice] = []
        flows = self._flows
        while flows:
            flow = next(iter(flows.values()))
            if flow.last + timeout > now:
                break
            flows.popitem(last=False)
            self.stats.flows_expired += 1
            self._evaluate(flow, flow.last + timeout, due)
        pending = self._pending
        cutoff = now - timeout
        while pending:
            key = next(iter(pending))
            if pending[key][1] > cutoff:
                break
            del pending[key]
            self.stats.pending_expired += 1
        return due

    def _evict_over_cap(self, due: list[Notice]) -> None:
        while len(self._flows) > self.cfg.max_flows:
            due.extend(self._evict_one())

    def _evict_one(self) -> list[Notice]:
        """Drop the least recently active flow, after evaluating it (its notices still fire)."""
        _, flow = self._flows.popitem(last=False)
        self.stats.flows_evicted += 1
        due: list[Notice] = []
        self._evaluate(flow, self.now, due)
        return due

    def _evaluate(self, flow: Flow, ts: float, due: list[Notice]) -> None:
        if flow.allowlisted:
            return
        cfg = self.cfg
        switches = cfg.notices
        many_changes = flow.changed_requests > cfg.changed_requests_threshold
        before = len(due)
        if switches.data_exfil and many_changes and flow.orig_bytes > cfg.exfil_bytes_threshold:
            due.append(self._flow_notice(flow, ts, NOTE_DATA_EXFIL, self._exfil_msg(flow)))
        if switches.asym_payload and flow.reply_differs > cfg.reply_differs_threshold:
            due.append(self._flow_notice(flow, ts, NOTE_ASYM_PAYLOAD, self._asym_msg(flow)))
        if switches.asym_payload_flow and many_changes:
            due.append(self._flow_notice(flow, ts, NOTE_ASYM_PAYLOAD_FLOW, self._changes_msg(flow)))
        self.stats.notices += len(due) - before

    def _flow_notice(self, flow: Flow, ts: float, note: str, msg: str) -> Notice:
        src, dst = addr_text(flow.src), addr_text(flow.dst)
        sent = flow.orig_bytes + flow.resp_bytes
        return Notice(
            ts=ts,
            note=note,
            msg=msg,
            sub=flow_summary_sub(src, dst, flow.start, flow.last, sent, flow.received_bytes, flow.n),
            src=src,
            dst=dst,
            uid=flow.ensure_uid(),
            n=flow.n,
            bytes_sent=sent,
            bytes_received=flow.received_bytes,
            start=flow.start,
            end=flow.last,
        )

    @staticmethod
    def _exfil_msg(flow: Flow) -> str:
        return (
            f"Exfil of size {format_size(flow.orig_bytes)} seen between {addr_text(flow.src)} and "
            f"{addr_text(flow.dst)}. {time_span_text(flow.start, flow.last)}"
        )

    @staticmethod
    def _asym_msg(flow: Flow) -> str:
        return (
            f"{flow.reply_differs} ICMP echo replies from {addr_text(flow.src)} to {addr_text(flow.dst)} "
            f"differed from the request they were compared with. {time_span_text(flow.start, flow.last)}"
        )

    @staticmethod
    def _changes_msg(flow: Flow) -> str:
        return (
            f"ICMP echo request payload changed {flow.changed_requests} times between "
            f"{addr_text(flow.src)} and {addr_text(flow.dst)}. {time_span_text(flow.start, flow.last)}"
        )
