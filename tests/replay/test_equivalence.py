"""The optimised paths give exactly what plain, slow, obviously correct ones give.

* Decoding: every frame through the product's batch decoder (`Decoder.decode_batch`: the C fast path
  when built, with libpcap's batches for captures) and, one frame at a time, through dpkt
  (`DpktDecoder`): the same packets and the same counters.
* Detection: the standard detector (its per-packet fast path: payload sketches, bookkeeping written
  out in place, a flow evaluated only when a packet changed what the evaluation looks at) against
  `ReferenceDetector` below: one method per step, whole payloads instead of sketches, the flow a packet
  touched evaluated after every packet. The reference uses the product's `fingerprints.explain`,
  `nonecho.unexplained_bytes` and `tunnels.ToolTracker` (each tested on its own in tests/unit) and its
  notice text helpers; novel bytes are restated here. The same notices (every field but the random
  uid) and the same detector counters.

Inputs: every benign and exfiltration corpus case (as Ethernet frames), every seed capture, and a
slice of the benchmark's synthetic mix (every kind of benign traffic, floods, errors, IPv6, VLAN
tags, fragments and several exfiltrations at once).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pcapy
import pytest

from icmpsensor.config.schema import AllowlistConfig, Config, DetectionConfig, NoticeSwitches
from icmpsensor.decode.decoder import DpktDecoder
from icmpsensor.decode.fast import Decoder
from icmpsensor.decode.fragments import Reassembler
from icmpsensor.decode.linktypes import LINKTYPE_ETHERNET
from icmpsensor.decode.packet import IcmpPacket, PartialPacket
from icmpsensor.decode.stats import DecodeStats
from icmpsensor.detect import capacity, fingerprints, nonecho, novelty, standard, tunnels
from icmpsensor.detect.flows import EVICTION_SCAN, SWEEP_INTERVAL, DetectorStats, unpaired_notice
from icmpsensor.detect.profile import make_detector
from icmpsensor.notice.policy import HostAllowlist
from icmpsensor.notice.record import Notice
from icmpsensor.notice.text import addr_text, flow_summary_sub, format_interval, format_size, time_span_text
from icmpsensor.notice.types import (
    ASYM_PAYLOAD,
    ASYM_PAYLOAD_FLOW,
    DATA_EXFIL,
    EXFIL_SPREAD,
    EXFIL_SUMMARY,
    NON_ECHO_PAYLOAD,
    NOTE_TYPES,
    SLOW_EXFIL,
    TUNNEL,
    UNPAIRED_ECHO_REPLY,
    NoteType,
)
from icmpsensor.output.evidence import encode
from icmpsensor.output.sink import ListSink
from icmpsensor.runmode.pipeline import Pipeline
from icmpsensor.runmode.replay import replay_pipeline
from icmpsensor.source.batch import frames_of
from icmpsensor.source.pcapfile import batches
from testkit import benign_corpus, capacity_corpus, craft, exfil_corpus, synthmix
from testkit.decoding import batch_of
from testkit.paths import SEED_DIR
from tests.hypothesis_counts import corpus, whole_suite

# -- novel bytes, restated ---------------------------------------------------------------------------


def novel_bytes(payload: bytes, compared: bytes | None) -> int:
    """Bytes of `payload` the earlier payload `compared` does not explain: all of them without one; else
    the positions where their first PREFIX bytes differ (and the difference in length there), plus
    everything after PREFIX if that part differs at all."""
    if compared is None:
        return len(payload)
    head, other = payload[: novelty.PREFIX], compared[: novelty.PREFIX]
    novel = sum(a != b for a, b in zip(head, other, strict=False)) + abs(len(head) - len(other))
    if payload[novelty.PREFIX :] and payload[novelty.PREFIX :] != compared[novelty.PREFIX :]:
        novel += len(payload) - novelty.PREFIX
    return novel


# -- the reference detector ----------------------------------------------------------------------------

FLOW_NOTES = (DATA_EXFIL, ASYM_PAYLOAD, ASYM_PAYLOAD_FLOW, TUNNEL, NON_ECHO_PAYLOAD, SLOW_EXFIL)
PAIR_REPORTED_BY = {DATA_EXFIL.name, TUNNEL.name, NON_ECHO_PAYLOAD.name}  # after these, no SlowExfil for the pair


@dataclass
class RefFlow:
    """A directional host pair (src sends to dst), in plain fields; msg templates name some of them ({flow.tool})."""

    src: bytes
    dst: bytes
    start: float
    last: float
    allowlisted: bool
    n: int = 0
    orig_bytes: int = 0  # request payload bytes
    resp_bytes: int = 0  # reply payload bytes
    other_bytes: int = 0  # payload bytes of non-echo messages that carried unexplained bytes
    received_bytes: int = 0  # reply payload bytes dst sent back
    changed_requests: int = 0
    reply_differs: int = 0
    novel_bytes: int = 0
    nonecho_novel: int = 0
    nonecho_reason: str = ""
    previous: bytes | None = None  # the last payload src sent to dst
    tool: str = ""
    tool_evidence: str = ""
    session_ident: int = -1  # the echo id (one run of a ping tool) session and last_embedded belong to
    session: bytes | None = None
    last_embedded: float = 0.0
    raised: set[str] = field(default_factory=set)
    reported_until: float = 0.0  # until when a raised note reports the pair (set on its memory at the end)
    first: tuple[int, int] = (-1, -1)  # type and code of the first message (the notice's conn id)
    last_request: tuple[int, int, int] = (-1, -1, -1)  # the last request's identifier, seq and size
    last_request_ts: float = 0.0
    clock_offset: float | None = None
    channels: capacity.FlowChannels = field(default_factory=capacity.FlowChannels)

    @property
    def bytes_sent(self) -> int:
        return self.orig_bytes + self.resp_bytes + self.other_bytes

    def ensure_uid(self) -> str:
        return ""  # uids are random: not compared


@dataclass
class RefHost:
    """A host's novel bytes to (or from) its peers in a tumbling slow window, its last four payloads, and whom
    it sent the last of them."""

    since: float
    novel: int = 0
    peers: set[bytes] = field(default_factory=set)
    payloads: list[int] = field(default_factory=list)
    alerted_until: float = 0.0
    last_peer: bytes | None = None  # the peer of the last of them (a sender's)


@dataclass
class RefPair:
    """A host pair between its flows: the novel bytes of its ended flows, its last payload."""

    ended: list[tuple[float, int]] = field(default_factory=list)  # (slow-window bucket start, novel bytes)
    previous: bytes | None = None
    slow_alerted_until: float = 0.0

    @property
    def novel(self) -> int:
        return sum(novel for _, novel in self.ended)


def no_collector(src: bytes, dst: bytes) -> bool:
    """An address a payload may be sent to first as a decoy: one no collector has, or the sender itself."""
    address = ipaddress.ip_address(dst)
    if dst == src or address.is_loopback or address.is_multicast or address.is_unspecified:
        return True
    return address.version == 4 and (dst[0] == 0 or address.is_reserved)  # 0/8, 240/4 with the broadcast


class ReferenceDetector:
    """The standard profile, step by step. Tables are dicts in least-recently-used order (a touched entry is
    re-inserted at the end); a flow is evaluated after every packet that touched it (`alerting: realtime`)."""

    def __init__(self, detection: DetectionConfig, allowlist: AllowlistConfig) -> None:
        self.cfg = detection
        self.hosts = HostAllowlist(allowlist.hosts)
        self.ignored = frozenset(allowlist.payloads)
        self.enabled = {note.name for note in NOTE_TYPES if getattr(detection.notices, note.switch)}
        self.stats = DetectorStats()
        self.flows: dict[tuple[bytes, bytes], RefFlow] = {}
        # (requester, responder, ident, seq, code) -> (payload, sent)
        self.pending: dict[tuple[bytes, bytes, int, int, int], tuple[bytes, float]] = {}
        self.pairs: dict[tuple[bytes, bytes], RefPair] = {}
        self.tools = tunnels.ToolTracker()
        self.senders: dict[bytes, RefHost] = {}
        self.receivers: dict[bytes, RefHost] = {}
        self.spread_due: list[Notice] = []  # ExfilSpread notices raised while a packet is handled
        self.run_free = True  # the request being handled did not start a run past the run budget
        self.now = 0.0
        self.next_sweep = 0.0

    # -- per packet

    def process(self, pkt: IcmpPacket) -> list[Notice]:
        due: list[Notice] = []
        self.stats.packets += 1
        self.move_clock(pkt.ts, due)
        if pkt.is_echo_request and pkt.icmp_code == 0:
            self.stats.echo_requests += 1
            flow: RefFlow | None = self.request(pkt)
        elif pkt.is_echo_reply and (pkt.icmp_code == 0 or (  # a reply copying its request's code echoes it
                self.cfg.matched_pairing and (pkt.dst, pkt.src, pkt.ident, pkt.seq, pkt.icmp_code) in self.pending)):
            self.stats.echo_replies += 1
            flow = self.reply(pkt, due)
        else:
            self.stats.other_icmp += 1
            flow = self.other(pkt)
        due.extend(self.spread_due)
        self.spread_due.clear()
        if flow is not None and self.cfg.realtime:
            self.evaluate(flow, pkt.ts, due)
        while len(self.flows) > self.cfg.max_flows:
            self.evict_flow(due)
        return due

    def request(self, pkt: IcmpPacket) -> RefFlow:
        flow = self.touch(pkt)
        flow.n += 1
        flow.orig_bytes += len(pkt.payload)
        self.header(flow, pkt)
        if pkt.options:
            self.charge(flow, "options", capacity.options_bits(flow.channels, pkt.options, pkt.ts, pkt.ipv6,
                                                                   self.cfg.timestamp_tolerance))
        novel = self.novelty(flow, pkt, flow.previous)
        flow.previous = pkt.payload
        flow.last_request_ts = pkt.ts
        if not flow.tool:
            self.recognise_tool(flow, pkt)
        if self.cfg.matched_pairing:
            self.remember_request(pkt)
        if novel:
            flow.changed_requests += 1
            self.add_novel(flow, novel)
        return flow

    def reply(self, pkt: IcmpPacket, due: list[Notice]) -> RefFlow:
        request_flow = self.flows.get((pkt.dst, pkt.src))
        flow = self.touch(pkt)
        flow.n += 1
        flow.resp_bytes += len(pkt.payload)
        if request_flow is not None:
            request_flow.received_bytes += len(pkt.payload)
        request = self.answered_request(pkt, request_flow)
        unsolicited = request is None
        if unsolicited:  # an unsolicited reply: its header, options and clock are its sender's, as a request's
            self.unpaired(pkt, flow, due)
            run_free = self.run_free
            self.header(flow, pkt)
            self.run_free = run_free  # a reply starts no run of the requests' (their templates' parameters)
            if pkt.options:
                self.charge(flow, "options", capacity.options_bits(flow.channels, pkt.options, pkt.ts, pkt.ipv6,
                                                                   self.cfg.timestamp_tolerance))
            flow.last_request_ts = pkt.ts
            request = flow.previous
        novel = self.novelty(flow, pkt, request, unsolicited)
        flow.previous = pkt.payload
        if novel:  # a reply that only echoes its request says nothing about the replier
            if not flow.tool:
                self.recognise_tool(flow, pkt)
            flow.reply_differs += 1
            self.add_novel(flow, novel)
        return flow

    def other(self, pkt: IcmpPacket) -> RefFlow | None:
        if self.cfg.matched_pairing and pkt.is_echo_request:  # an echo request with a non-zero code
            self.remember_request(pkt)
        novel, reason = nonecho.unexplained_bytes(pkt, self.cfg.timestamp_tolerance)
        if not novel:
            return None
        flow = self.touch(pkt)
        flow.n += 1
        flow.other_bytes += len(pkt.payload)
        flow.nonecho_novel += novel
        flow.nonecho_reason = flow.nonecho_reason or reason
        self.add_novel(flow, novel)
        return flow

    def header(self, flow: RefFlow, pkt: IcmpPacket) -> None:
        """The identifier, sequence number and size against the flow's last request (capacity.request_header);
        nothing for the flow's first request."""
        last, size = flow.last_request, len(pkt.payload)
        flow.last_request = (pkt.ident, pkt.seq, size)
        self.run_free = True
        if last[0] < 0:
            return
        charges, self.run_free = capacity.request_header(flow.channels, last, pkt.ident, pkt.seq, size, pkt.ts,
                                                         pkt.ts - flow.last_request_ts)
        for channel, bits in charges:
            self.charge(flow, channel, bits)

    def charge(self, flow: RefFlow, channel: str, bits: float) -> None:
        if bits > 0:
            whole = capacity.charge(flow.channels, channel, bits)
            if whole:
                self.add_novel(flow, whole)

    def novelty(self, flow: RefFlow, pkt: IcmpPacket, compared: bytes | None, unsolicited: bool = False) -> int:
        """Novel bytes of an echo payload: none if allowlisted, empty, the same as `compared`, or a benign
        template that holds within the flow (its clock and pattern charged); else what `compared` does not
        explain; for a request, a few changed places in its first PREFIX bytes are charged as fields
        instead, icmplib's padding within budget and a payload the host sent lately are none."""
        payload = pkt.payload
        if payload in self.ignored:
            self.stats.ignored_payloads += 1
            return 0
        if not payload or payload == compared:
            return 0
        sent = pkt.sent or pkt.ts  # a partial message (decode/fragments.py) is checked at its sending time
        benign = fingerprints.explain(payload, sent, tolerance=self.cfg.timestamp_tolerance,
                                      is_reply=pkt.is_echo_reply)
        if benign is not None and self.template_holds(flow, benign, pkt, unsolicited):
            self.stats.ignored_payloads += 1
            return 0
        novel = novel_bytes(payload, compared)
        if pkt.is_echo_reply:
            return novel
        if capacity.random_padding(payload, pkt.seq) and capacity.padding_free(flow.channels, pkt.ts):
            self.stats.ignored_payloads += 1
            return 0
        if compared is not None and self.as_fields(flow, payload, compared, pkt.ts - flow.last_request_ts):
            return 0
        if flow.allowlisted or no_collector(pkt.src, pkt.dst):
            return novel  # a decoy's copy: the sender's memory neither keeps nor uses it
        host = self.host(self.senders, pkt.src, pkt.ts)
        last_peer, host.last_peer = host.last_peer, pkt.dst
        if compared is None and last_peer not in (None, pkt.dst) and self.like_last_sent(flow, pkt, last_peer):
            return 0
        digest = hash(payload)
        if digest in host.payloads:
            return 0
        host.payloads = [*host.payloads, digest][-standard.PAYLOADS_KEPT :]
        return novel

    def like_last_sent(self, flow: RefFlow, pkt: IcmpPacket, last_peer: bytes) -> bool:
        """A flow's first request payload against the last payload of the host's flow to the peer it last sent
        a payload to (while that flow lasts), read as fields (as_fields)."""
        other = self.flows.get((pkt.src, last_peer))
        if other is None or other.previous is None:
            return False
        return self.as_fields(flow, pkt.payload, other.previous, pkt.ts - other.last_request_ts)

    def as_fields(self, flow: RefFlow, payload: bytes, compared: bytes, dt: float) -> bool:
        """Whether the payload is `compared` (sent `dt` s before) past the first PREFIX bytes and but for a few
        places in them read as fields (charged)."""
        prefix = novelty.PREFIX
        if (len(payload) != len(compared) or payload[prefix:] != compared[prefix:]
                or novel_bytes(payload, compared) > 3 * capacity.MAX_FIELD_BYTES):
            return False
        bits = capacity.field_bits(payload[:prefix], compared[:prefix], dt, self.cfg.clock_jitter)
        if bits is None:
            return False
        self.charge(flow, "fields", bits)
        return True

    def template_holds(self, flow: RefFlow, benign: fingerprints.Benign, pkt: IcmpPacket,
                       unsolicited: bool = False) -> bool:
        """Within one run of a ping tool (one echo id), a template's per-run constant (session) must not
        change and a request's embedded clock must not run back by more than a second (unless the clock
        wraps). A new run's new pattern past the run budget, and the clock's offset to the capture clock
        moving within a run, are charged (capacity.pattern_bits, capacity.time_bits)."""
        if pkt.ident != flow.session_ident:
            if not pkt.is_echo_reply:
                self.charge(flow, "pattern", capacity.pattern_bits(
                    flow.channels, flow.session, benign.session, self.run_free, pkt.ts,
                    benign.template in fingerprints.RANDOM_SESSION_TEMPLATES))
            flow.session_ident, flow.session, flow.last_embedded = pkt.ident, None, 0.0
            flow.clock_offset = None
        if benign.session is not None:
            if flow.session is None:
                flow.session = benign.session
            elif benign.session != flow.session:
                return False
        if benign.embedded_time is None or (pkt.is_echo_reply and not unsolicited):  # a reply's clock: its request's
            return True
        partial = bool(pkt.sent)  # late (up to the fragment timeout): it neither goes back nor moves the clock
        previous = flow.last_embedded
        if not partial:
            if benign.embedded_time + 1.0 < previous and not benign.wraps_after:
                return False
            flow.last_embedded = benign.embedded_time
        sent = pkt.sent or pkt.ts
        offset = benign.embedded_time - sent
        if flow.clock_offset is not None:
            moved = self.moved(offset - flow.clock_offset, benign.wraps_after)
            if benign.template == fingerprints.BUSYBOX:  # a big-endian host's counter: the other byte order
                previous_sent = previous - flow.clock_offset
                swapped = self.moved(fingerprints.busybox_other_order(benign.embedded_time) - sent
                                     - (fingerprints.busybox_other_order(previous) - previous_sent),
                                     benign.wraps_after)
                if abs(swapped) <= self.cfg.clock_jitter < abs(moved):
                    moved = 0.0
            self.charge(flow, "time", capacity.time_bits(moved, 0.0, self.cfg.clock_jitter))
        if not partial:
            flow.clock_offset = offset
        return True

    @staticmethod
    def moved(moved: float, wraps_after: float | None) -> float:
        return (moved + wraps_after / 2) % wraps_after - wraps_after / 2 if wraps_after else moved

    def host(self, table: dict[bytes, RefHost], address: bytes, ts: float) -> RefHost:
        """The host's memory, now the most recently active; a new one, if full, forgets an eighth of the hosts
        (counted): of the least recently active quarter, those whose ExfilSpread is told past `ts`, then those with
        the fewest peers (the oldest among equals). (The production table also forgets hosts past
        SPREAD_PEER_ENTRIES peers in all: no test here gets near.)"""
        memory = table.pop(address, None)
        if memory is None:
            memory = RefHost(ts)
            if len(table) >= self.cfg.max_pairs:
                quarter = list(table.items())[: len(table) // 4 + 1]
                kept_last = sorted(quarter, key=lambda item: (ts >= item[1].alerted_until, len(item[1].peers)))
                for key, _ in kept_last[: len(table) // 8 + 1]:
                    del table[key]
                    self.stats.spread_hosts_evicted += 1
        table[address] = memory
        return memory

    def spread(self, flow: RefFlow, novel: int) -> None:
        cfg = self.cfg
        for table, address, peer, role in ((self.senders, flow.src, flow.dst, "to"),
                                           (self.receivers, flow.dst, flow.src, "from")):
            memory = self.host(table, address, self.now)
            if self.now - memory.since >= cfg.slow_exfil_window:
                memory.since, memory.novel, memory.peers = self.now, 0, set()
            memory.novel += novel
            if len(memory.peers) < standard.SPREAD_PEERS_KEPT:
                memory.peers.add(peer)
            peers = len(memory.peers)
            if (peers >= cfg.spread_min_peers and memory.novel >= cfg.spread_min_bytes
                    and self.now >= memory.alerted_until and EXFIL_SPREAD.name in self.enabled):
                memory.alerted_until = memory.since + cfg.slow_exfil_window
                self.spread_due.append(self.spread_notice(flow, memory, peers, role))

    def spread_notice(self, flow: RefFlow, memory: RefHost, peers: int, role: str) -> Notice:
        notice = self.notice(flow, self.now, EXFIL_SPREAD, standard.SPREAD_MSGS[role], total=format_size(memory.novel),
                             peers=peers, more="+" if peers >= standard.SPREAD_PEERS_KEPT else "",
                             hours=self.cfg.slow_exfil_window / 3600)
        notice.peers = peers
        return notice

    def recognise_tool(self, flow: RefFlow, pkt: IcmpPacket) -> None:
        match = self.tools.observe(pkt)
        if match is not None:
            flow.tool, flow.tool_evidence = match.tool, match.evidence

    def add_novel(self, flow: RefFlow, novel: int) -> None:
        """A flow gives its hosts' spread memories at most novel_bytes_threshold of its novel bytes."""
        room = self.cfg.novel_bytes_threshold - flow.novel_bytes
        flow.novel_bytes += novel
        self.stats.novel_bytes += novel
        if room > 0 and not flow.allowlisted:
            self.spread(flow, min(novel, room))

    # -- tables

    def touch(self, pkt: IcmpPacket) -> RefFlow:
        """The pair's flow, now the most recently active; a new one starts from the pair's last payload."""
        src, dst, ts = pkt.src, pkt.dst, pkt.ts
        flow = self.flows.pop((src, dst), None)
        if flow is None:
            flow = RefFlow(src, dst, ts, ts, self.hosts.allowed(src) or self.hosts.allowed(dst))
            flow.first = (pkt.icmp_type, pkt.icmp_code)
            self.stats.flows_created += 1
            pair = self.pairs.get((src, dst))
            flow.previous = None if pair is None else pair.previous
        flow.last = max(flow.last, ts)
        self.flows[(src, dst)] = flow
        return flow

    def remember_request(self, pkt: IcmpPacket) -> None:
        key = (pkt.src, pkt.dst, pkt.ident, pkt.seq, pkt.icmp_code)
        if self.pending.pop(key, None) is None and len(self.pending) >= self.cfg.max_pending_requests:
            del self.pending[next(iter(self.pending))]
            self.stats.pending_evicted += 1
        self.pending[key] = (pkt.payload, pkt.ts)

    def answered_request(self, reply: IcmpPacket, request_flow: RefFlow | None) -> bytes | None:
        """What the reply is compared with: the request it answers (id and seq), or the requester's last one."""
        if self.cfg.matched_pairing:
            entry = self.pending.pop((reply.dst, reply.src, reply.ident, reply.seq, reply.icmp_code), None)
            return None if entry is None else entry[0]
        return None if request_flow is None else request_flow.previous

    def pair(self, src: bytes, dst: bytes, now: float) -> RefPair:
        """The pair's memory, now the most recently used (made, forgetting another if full)."""
        pair = self.pairs.pop((src, dst), None)
        if pair is None:
            if len(self.pairs) >= self.cfg.max_pairs:
                self.forget_a_pair(now)
            pair = RefPair()
        self.pairs[(src, dst)] = pair
        return pair

    def forget_a_pair(self, now: float) -> None:
        """Of the EVICTION_SCAN least recently used pairs, one whose bytes were reported for a window still running at
        `now` before any other, and the fewest novel bytes among those alike (oldest on a tie)."""
        scanned = itertools.islice(self.pairs.items(), EVICTION_SCAN)
        key, _ = min(scanned, key=lambda item: (now >= item[1].slow_alerted_until, item[1].novel))
        del self.pairs[key]
        self.stats.pairs_evicted += 1

    # -- time, eviction, end of flows

    def move_clock(self, ts: float, due: list[Notice]) -> None:
        """Packet time moves the clock; at each whole SWEEP_INTERVAL passed, idle flows and requests expire."""
        if ts <= self.now:
            return
        self.now = ts
        if ts >= self.next_sweep:
            self.sweep(ts - ts % SWEEP_INTERVAL, due)

    def sweep(self, now: float, due: list[Notice]) -> None:
        self.next_sweep = now + SWEEP_INTERVAL
        timeout = self.cfg.idle_timeout
        for key, flow in list(self.flows.items()):
            if flow.last + timeout <= now:
                del self.flows[key]
                self.stats.flows_expired += 1
                self.end_flow(flow, flow.last + timeout, due)
        for key, (_, sent) in list(self.pending.items()):
            if sent <= now - timeout:
                del self.pending[key]
                self.stats.pending_expired += 1

    def evict_flow(self, due: list[Notice]) -> None:
        """Of the EVICTION_SCAN least recently active flows (never the newest), the least interesting goes."""
        scanned = itertools.islice(self.flows.items(), min(EVICTION_SCAN, len(self.flows) - 1))
        key, flow = min(scanned, key=lambda item: interest(item[1]))
        del self.flows[key]
        self.stats.flows_evicted += 1
        self.end_flow(flow, self.now, due)

    def end_flow(self, flow: RefFlow, ts: float, due: list[Notice]) -> None:
        if (flow.novel_bytes or flow.reported_until) and not flow.allowlisted:
            pair = self.pair(flow.src, flow.dst, ts)
            if flow.novel_bytes:
                pair.previous = flow.previous
                bucket = self.cfg.slow_exfil_window / standard.SLOW_BUCKETS
                pair.ended.append((flow.last - flow.last % bucket, flow.novel_bytes))
            pair.slow_alerted_until = max(pair.slow_alerted_until, flow.reported_until)
        if not self.cfg.realtime:
            self.evaluate(flow, ts, due)
        elif flow.raised and EXFIL_SUMMARY.name in self.enabled:
            due.append(self.notice(flow, ts, EXFIL_SUMMARY, standard.SUMMARY_MSG))

    def flush(self) -> list[Notice]:
        due: list[Notice] = []
        while self.flows:
            flow = self.flows.pop(next(iter(self.flows)))
            self.end_flow(flow, self.now, due)
        self.pending.clear()
        return due

    # -- notices

    def evaluate(self, flow: RefFlow, ts: float, due: list[Notice]) -> None:
        if flow.allowlisted:
            return
        cfg = self.cfg
        for note, holds, template in (
            (DATA_EXFIL, self.exfil(flow), standard.EXFIL_MSG),
            (ASYM_PAYLOAD, flow.reply_differs > cfg.reply_differs_threshold, standard.ASYM_MSG),
            (ASYM_PAYLOAD_FLOW, flow.changed_requests > cfg.changed_requests_threshold, standard.CHANGES_MSG),
            (TUNNEL, bool(flow.tool), standard.TUNNEL_MSG),
            (NON_ECHO_PAYLOAD, flow.nonecho_novel > cfg.nonecho_bytes_threshold, standard.NONECHO_MSG),
        ):
            if holds:
                self.raise_once(flow, ts, note, template, due)
        if flow.novel_bytes and not flow.raised & (PAIR_REPORTED_BY | {SLOW_EXFIL.name}):
            self.check_slow(flow, ts, due)

    def exfil(self, flow: RefFlow) -> bool:
        """DataExfil: the flow's echo novel bytes above novel_bytes_threshold, or a small secret: at least
        small_secret_bytes over at least small_secret_payloads changed payloads."""
        novel, cfg = flow.novel_bytes - flow.nonecho_novel, self.cfg
        if novel > cfg.novel_bytes_threshold:
            return True
        payloads = flow.changed_requests + flow.reply_differs
        return bool(cfg.small_secret_bytes) and novel >= cfg.small_secret_bytes \
            and (payloads >= cfg.small_secret_payloads or bool(flow.channels.charged))

    def check_slow(self, flow: RefFlow, ts: float, due: list[Notice]) -> None:
        """SlowExfil: the pair's novel bytes within the window (its ended flows' and this one's) reach the minimum."""
        pair = self.pairs.get((flow.src, flow.dst))
        if SLOW_EXFIL.name not in self.enabled or pair is None or ts < pair.slow_alerted_until:
            return
        window = self.cfg.slow_exfil_window
        pair.ended = [(start, novel) for start, novel in pair.ended if start + window > ts]
        total = pair.novel + flow.novel_bytes
        if total >= self.cfg.slow_exfil_min_bytes:
            pair.slow_alerted_until = ts + window
            self.raise_once(flow, ts, SLOW_EXFIL, standard.SLOW_MSG, due, total=format_size(total),
                            hours=window / 3600)

    def raise_once(self, flow: RefFlow, ts: float, note: NoteType, template: str, due: list[Notice],
                   **fields: object) -> None:
        if note.name not in self.enabled or note.name in flow.raised:
            return
        if note.name in PAIR_REPORTED_BY:  # the pair marked when the flow ends (at once if it has: flow_end)
            until = ts + self.cfg.slow_exfil_window
            if self.cfg.realtime:
                flow.reported_until = until
            else:
                self.pair(flow.src, flow.dst, ts).slow_alerted_until = until
        flow.raised.add(note.name)
        due.append(self.notice(flow, ts, note, template, **fields))

    def unpaired(self, pkt: IcmpPacket, flow: RefFlow, due: list[Notice]) -> None:
        self.stats.unpaired_replies += 1
        if UNPAIRED_ECHO_REPLY.name in self.enabled and not flow.allowlisted:
            self.stats.notices += 1
            due.append(unpaired_notice(pkt, flow))  # type: ignore[arg-type]

    def notice(self, flow: RefFlow, ts: float, note: NoteType, template: str, **fields: object) -> Notice:
        self.stats.notices += 1
        src, dst = addr_text(flow.src), addr_text(flow.dst)
        text = notice_text(flow, src, dst, fields)
        return Notice(ts=ts, note=note.name, msg=template.format_map(text),
                      sub=flow_summary_sub(src, dst, flow.start, flow.last, flow.bytes_sent, flow.received_bytes,
                                           flow.n, flow.novel_bytes, extra_sub(flow)),
                      src=src, dst=dst, uid="", n=flow.n, bytes_sent=flow.bytes_sent,
                      bytes_received=flow.received_bytes, start=flow.start, end=flow.last, novel_bytes=flow.novel_bytes,
                      icmp_type=flow.first[0], icmp_code=flow.first[1], tool=flow.tool,
                      channels=",".join(name for name, _ in channel_bytes(flow)))


def channel_bytes(flow: RefFlow) -> list[tuple[str, int]]:
    """Bytes per channel, largest first: the charged fields, non-echo messages, the payload (the rest)."""
    carried = dict(flow.channels.charged or {})
    if flow.nonecho_novel:
        carried["non-echo"] = flow.nonecho_novel
    if flow.novel_bytes - sum(carried.values()) > 0:
        carried["payload"] = flow.novel_bytes - sum(carried.values())
    return sorted(carried.items(), key=lambda item: (-item[1], item[0]))


def interest(flow: RefFlow) -> float:
    """How much a flow is worth keeping: suspicious bytes so far; an alerted or tool-carrying flow, its story told,
    less than any with something suspicious, more than one with nothing, and more the more packets it had."""
    if flow.raised or flow.tool:
        return 1 - 1 / (1 + flow.n)
    return flow.novel_bytes + flow.changed_requests + flow.reply_differs


def notice_text(flow: RefFlow, src: str, dst: str, fields: dict[str, object]) -> dict[str, object]:
    """What a notice's msg template may name (the vocabulary of the templates in detect/standard.py)."""
    duration = format_interval(flow.last - flow.start)
    return {"src": src, "dst": dst, "between": f"from {src} to {dst}", "duration": duration,
            "span": time_span_text(flow.start, flow.last), "sent": format_size(flow.bytes_sent),
            "novel": format_size(flow.novel_bytes), "requests": format_size(flow.orig_bytes),
            "nonecho": format_size(flow.nonecho_novel), "flow": flow, **fields}


def extra_sub(flow: RefFlow) -> str:
    parts = [f"Tool: {flow.tool} ({flow.tool_evidence})"] if flow.tool else []
    if flow.nonecho_reason:
        parts.append(f"Non-echo: {flow.nonecho_reason}")
    if channel_bytes(flow):
        parts.append("Channels: " + ", ".join(f"{name} {format_size(count)}" for name, count in channel_bytes(flow)))
    return ", ".join(parts)


# -- running both ---------------------------------------------------------------------------------------


def without_uid(notices: Iterable[Notice]) -> list[Notice]:
    return [n.replace(uid="", evidence="") for n in notices]


def detect_both(packets: list[IcmpPacket], detection: DetectionConfig,
                allowlist: AllowlistConfig) -> tuple[list[Notice], DetectorStats, list[Notice], DetectorStats]:
    """(the product's notices and counters, the reference's) on the same packets, then the end of input."""
    product, reference = make_detector(detection, allowlist), ReferenceDetector(detection, allowlist)
    got: list[Notice] = []
    want: list[Notice] = []
    for pkt in packets:
        got.extend(product.process(pkt))
        want.extend(reference.process(pkt))
    got.extend(product.flush())
    want.extend(reference.flush())
    return without_uid(got), product.stats, without_uid(want), reference.stats


def dpkt_one_by_one(linktype: int, frames: list[tuple[float, bytes]], cfg: Config) -> tuple[list[IcmpPacket],
                                                                                             DecodeStats]:
    stats = DecodeStats()
    decoder = DpktDecoder(linktype, stats, verify_checksums=cfg.decode.verify_checksums,
                          reassembler=reassembler(cfg, stats))
    return [p for ts, frame in frames if (p := decoder.decode(ts, frame)) is not None], stats


def batch_decoder(linktype: int, cfg: Config) -> tuple[Decoder, DecodeStats]:
    stats = DecodeStats()
    return Decoder(linktype, stats, verify_checksums=cfg.decode.verify_checksums,
                   reassembler=reassembler(cfg, stats)), stats


def reassembler(cfg: Config, stats: DecodeStats) -> Reassembler:
    return Reassembler(max_datagrams=cfg.decode.max_fragmented_datagrams, timeout=cfg.decode.fragment_timeout,
                       stats=stats.fragments)


# -- corpus cases, as Ethernet frames ---------------------------------------------------------------------

_ETHERNET = {False: bytes.fromhex("020000000001020000000002") + b"\x08\x00",
             True: bytes.fromhex("020000000001020000000002") + b"\x86\xdd"}
CASES: dict[str, Callable[[], list[IcmpPacket]]] = {
    **{f"benign-{name}": make for name, make in benign_corpus.BENIGN_CASES.items()},
    **{f"exfil-{name}": make for name, make in exfil_corpus.EXFIL_CASES.items()},
    **{f"capacity-{name}": make for name, (make, _) in capacity_corpus.CAPACITY_POSITIVES.items()},
    **{f"capacity-benign-{name}": make for name, make in capacity_corpus.CAPACITY_NEGATIVES.items()},
}
# the same traffic with the clock of a long capture: flows and pairs expire and are evicted
SMALL_TABLES = {"idle_timeout": 5.0, "max_flows": 3, "max_pairs": 2, "max_pending_requests": 4}


@pytest.mark.parametrize("case", sorted(CASES))
def test_corpus_case_matches_the_reference(case: str) -> None:
    built = corpus(CASES[case]())  # the fast loop: a long case's first packets (tests/hypothesis_counts.py)
    cfg = Config()
    buf, meta, frames = batch_of([(p.ts, _ETHERNET[p.ipv6] + encode(p)) for p in built])
    decoder, stats = batch_decoder(LINKTYPE_ETHERNET, cfg)
    packets = decoder.decode_batch(buf, meta)
    assert (packets, stats) == dpkt_one_by_one(LINKTYPE_ETHERNET, frames, cfg)
    assert [(p.src, p.dst, p.icmp_type, p.icmp_code, p.ident, p.seq, p.payload) for p in packets] == [
        (p.src, p.dst, p.icmp_type, p.icmp_code, p.ident, p.seq, p.payload) for p in built]
    for detection in (cfg.detection, dataclasses.replace(cfg.detection, **SMALL_TABLES)):
        got, got_stats, want, want_stats = detect_both(packets, detection, cfg.allowlist)
        assert got == want
        assert got_stats == want_stats
        if case.startswith("exfil-"):
            assert got, "an exfiltration case must raise notices"


# the same traffic inside encapsulations (decode/encap.py): the C batch and dpkt one by one alike, the packets the
# bare frames give (but for the wire length), the same notices as the reference
ENCAPSULATED = ["vxlan", "erspan2", "mpls", "pppoe-vlan", "gre-in-gre-in-ipip", "ipip6"]
ENCAP_CASES = sorted(name for name in CASES if name.startswith("exfil-"))[::3]


@pytest.mark.parametrize("case", ENCAP_CASES)
def test_corpus_case_inside_encapsulations_matches_the_reference(case: str) -> None:
    built = corpus(CASES[case]())[:400]
    cfg = Config()
    framers = craft.encapsulations()
    for name in ENCAPSULATED:
        buf, meta, frames = batch_of([(p.ts, framers[name](encode(p))) for p in built])
        decoder, stats = batch_decoder(LINKTYPE_ETHERNET, cfg)
        packets = decoder.decode_batch(buf, meta)
        assert (packets, stats) == dpkt_one_by_one(LINKTYPE_ETHERNET, frames, cfg), name
        assert [(p.src, p.dst, p.icmp_type, p.icmp_code, p.ident, p.seq, p.payload) for p in packets] == [
            (p.src, p.dst, p.icmp_type, p.icmp_code, p.ident, p.seq, p.payload) for p in built], name
        got, got_stats, want, want_stats = detect_both(packets, cfg.detection, cfg.allowlist)
        assert (got, got_stats) == (want, want_stats)
        assert got, "an exfiltration case must raise notices"


def random_traffic(rng: random.Random, count: int, hosts: list[bytes] | None = None) -> list[IcmpPacket]:
    """Echoes, echoes with a code, and timestamp requests among four hosts (or `hosts`), in bursts and idle gaps;
    payloads repeat, change a little, are iputils pings, or are new."""
    hosts = hosts or [bytes((10, 0, 0, i)) for i in range(1, 5)]
    pool = [b"", b"abc", bytes(56), bytes(range(100)), rng.randbytes(20), rng.randbytes(120)]
    ts = benign_corpus.START
    packets = []
    for _ in range(count):
        ts += 30.0 if rng.random() < 0.01 else rng.choice((0.0, 0.001, 0.01, 0.1, 0.4))  # bursts, now and then a pause
        src, dst = rng.sample(hosts, 2)
        payload = benign_corpus.iputils_payload(56, ts) if rng.random() < 0.2 else rng.choice(pool)
        if rng.random() < 0.3:
            payload = payload[:10] + rng.randbytes(rng.randrange(1, 80))
        icmp_type, code = rng.choice(((8, 0), (8, 0), (0, 0), (0, 0), (8, 1), (13, 0)))
        ident, seq = (rng.randrange(3), rng.randrange(5)) if icmp_type in (0, 8) else (-1, -1)
        packet = IcmpPacket(ts, src, dst, False, icmp_type, code, ident, seq, payload, 42 + len(payload))
        if rng.random() < 0.05:  # what a big ping's first fragments held, handed on up to 30 s after it was sent
            sent = ts - rng.uniform(0.0, 30.0)
            packet.payload = benign_corpus.iputils_payload(1400, sent)[: rng.randrange(20, 1400)]
            packet = PartialPacket.of(packet, sent)
        packets.append(packet)
        # a fifth host's drip to a sixth: new bytes under every flow threshold (SlowExfil), ~20 s apart: two within
        # idle_timeout are one flow, and stay under it (until 2026-12-07 the drip's 40 bytes went past it in one flow
        # now and then, and the flow's eviction by the alerted ones, kept above all, split it)
        if rng.random() < 0.02:
            packets.append(IcmpPacket(ts, bytes((10, 0, 0, 5)), bytes((10, 0, 0, 6)), False, 8, 0, 9, len(packets),
                                      rng.randbytes(30), 72))
    return packets


# tables a little smaller than the traffic, thresholds it crosses, every note switched on
LOW_LIMITS = {"idle_timeout": 5.0, "max_flows": 6, "max_pairs": 4, "max_pending_requests": 8,
              "novel_bytes_threshold": 60, "changed_requests_threshold": 2, "reply_differs_threshold": 2,
              "slow_exfil_min_bytes": 150, "slow_exfil_window": 120.0}


@pytest.mark.parametrize("seed", range(4))
def test_random_traffic_matches_the_reference(seed: int) -> None:
    """Small tables and low thresholds: every note but Tunnel, expiry and eviction of flows, requests and pairs,
    and SlowExfil's window, in a few thousand packets. Twice: with a pair table of 4 (pairs evicted all the
    time: the drip's memory, the fewest bytes, among them) and of 16 (the drip adds up to a SlowExfil; the four
    hosts' pairs report themselves by DataExfil first)."""
    packets = random_traffic(random.Random(seed), 3000)
    cfg = Config()
    every_note = NoticeSwitches(**{note.switch: True for note in NOTE_TYPES})
    seen: set[str] = set()
    for max_pairs in (LOW_LIMITS["max_pairs"], 16):
        limits = {**LOW_LIMITS, "max_pairs": max_pairs}
        detection = dataclasses.replace(cfg.detection, **limits, notices=every_note)  # type: ignore[arg-type]
        got, got_stats, want, want_stats = detect_both(packets, detection, cfg.allowlist)
        assert (got, got_stats) == (want, want_stats)
        seen |= {n.note for n in got}
        assert got_stats.flows_evicted and got_stats.flows_expired
        assert bool(got_stats.pairs_evicted) == (max_pairs < 16)
    assert seen >= {DATA_EXFIL.name, ASYM_PAYLOAD.name, ASYM_PAYLOAD_FLOW.name, SLOW_EXFIL.name,
                    NON_ECHO_PAYLOAD.name, UNPAIRED_ECHO_REPLY.name, EXFIL_SUMMARY.name}


@pytest.mark.parametrize("seed", range(2))
def test_random_traffic_with_decoy_addresses_matches_the_reference(seed: int) -> None:
    """Among the hosts, addresses no collector has (multicast, loopback) and an allowlisted one: what a host
    sends there first explains nothing it sends elsewhere (novelty.lends_payloads), in the product as in the
    reference's own reading of those addresses (no_collector)."""
    hosts = [bytes((10, 0, 0, 1)), bytes((10, 0, 0, 2)), bytes((224, 0, 0, 251)), bytes((127, 0, 0, 1)),
             bytes((10, 0, 0, 9))]
    packets = random_traffic(random.Random(seed), 3000, hosts)
    cfg = Config()
    detection = dataclasses.replace(cfg.detection, **LOW_LIMITS)  # type: ignore[arg-type]
    allowlist = AllowlistConfig(hosts=(ipaddress.ip_network("10.0.0.9/32"),))
    got, got_stats, want, want_stats = detect_both(packets, detection, allowlist)
    assert (got, got_stats) == (want, want_stats)
    assert DATA_EXFIL.name in {n.note for n in got}


# -- captures, through the real replay path ----------------------------------------------------------------

SEED_CAPTURES = sorted(path.name for path in SEED_DIR.glob("*.pcap")) or [
    pytest.param("", marks=pytest.mark.skip(reason=f"no reference captures in {SEED_DIR} (../shared/seed)"))]


@pytest.mark.seed
@pytest.mark.parametrize("name", SEED_CAPTURES)
def test_seed_capture_matches_the_reference(name: str, seed_dir: Path, tmp_path: Path) -> None:
    check_capture(seed_dir / name, tmp_path)


def test_synthetic_mix_matches_the_reference(tmp_path: Path) -> None:
    path = tmp_path / "mix.pcap"
    truth = synthmix.generate(path, packets=60_000 if whole_suite() else 20_000, seed=5)  # the fast loop: a third
    assert truth["fragments"] and truth["vlan"] and truth["ipv6"]
    (tmp_path / "logs").mkdir()
    packets = check_capture(path, tmp_path / "logs")
    cfg = Config()
    got, got_stats, want, want_stats = detect_both(packets, dataclasses.replace(cfg.detection, **SMALL_TABLES),
                                                   cfg.allowlist)
    assert (got, got_stats) == (want, want_stats)
    assert got_stats.flows_evicted > 1000 and got_stats.pairs_evicted > 0  # the tables did overflow


def check_capture(path: Path, log_dir: Path) -> list[IcmpPacket]:
    """The capture through the product's replay (libpcap batches, batch decoder, standard detector) and through
    pcapy one frame at a time, dpkt and the reference detector: the same packets, counters and notices.
    Returns the packets."""
    cfg = Config()
    cfg.output.log_dir = str(log_dir)
    sink = ListSink()
    pipeline = Pipeline(cfg, [sink])  # type: ignore[list-item]
    result = replay_pipeline(pipeline, [str(path)])
    pipeline.close()

    linktype, frames = frames_one_by_one(path)
    assert [f for buf, meta in batches(pcapy.open_offline(str(path))) for f in frames_of(buf, meta)] == frames
    assert result.frames == len(frames) and not result.problems
    decoder, batch_stats = batch_decoder(linktype, cfg)
    decoded = [p for buf, meta in batches(pcapy.open_offline(str(path))) for p in decoder.decode_batch(buf, meta)]
    packets, stats = dpkt_one_by_one(linktype, frames, cfg)
    assert (decoded, batch_stats) == (packets, stats)
    assert pipeline.decode_stats == stats

    reference = ReferenceDetector(cfg.detection, cfg.allowlist)
    want = [n for pkt in packets for n in reference.process(pkt)]
    reference.move_clock(max(ts for ts, _ in frames), want)  # a replay ends at its last frame's time (an ARP too)
    want += reference.flush()
    assert want, "every capture here carries an exfiltration"
    assert without_uid(sink.notices) == without_uid(want)
    assert pipeline.detector.stats == reference.stats
    return packets


def frames_one_by_one(path: Path) -> tuple[int, list[tuple[float, bytes]]]:
    reader = pcapy.open_offline(str(path))
    frames = []
    while True:
        header, data = reader.next()
        if header is None:
            return reader.datalink(), frames
        sec, usec = header.getts()
        frames.append((sec + usec * 1e-6, data))


# -- novel bytes on inputs the corpus does not have ---------------------------------------------------------


def test_novel_bytes_of_sketches_match_the_restatement() -> None:
    rng = random.Random(3)
    lengths = [0, 1, 2, 15, 16, 17, 56, 63, 64, 65, 66, 100, 1472]
    for _ in range(5000):
        a = bytes(rng.randrange(3) for _ in range(rng.choice(lengths)))
        b = bytes(rng.randrange(3) for _ in range(rng.choice(lengths))) if rng.random() < 0.7 else a
        compared = None if rng.random() < 0.05 else b
        product = novelty.novel_between(novelty.sketch(a), None if compared is None else novelty.sketch(compared))
        assert product == novel_bytes(a, compared), (a, compared)
