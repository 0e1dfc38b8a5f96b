"""The optimised per-packet path gives exactly what a slow, straightforward one gives.

Reference path, kept here on purpose (not a recorded output):

* frames read one at a time with pcapy ``next()`` (not ``next_batch`` + ``capture.frames_of``)
  and decoded by `DpktDecoder` (dpkt classes, ``dpkt.in_cksum``) instead of `Decoder`'s
  struct fast paths;
* below, the implementations of `novelty.novel_between` / `novelty.sketch`, `fingerprints.explain`
  (with its templates), `tunnels._is_periodic`, `tunnels.ToolTracker` and
  `nonecho.unexplained_bytes` as they were before the fast paths (straight copies of that code,
  provenance comments dropped; `differing_bytes` is counted byte by byte instead), patched into the standard
  detector.

Every benign and exfiltration corpus case (as Ethernet frames), every seed capture and a slice of
the throughput benchmark's synthetic mix go through both paths (the captures also through the
product's batch decoder, the C fast path when built); the notices (note, src, dst, n,
novel_bytes, ts, msg, sub), the detector and decoder counters, and every decoded packet must be
identical.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pcapy
import pytest

from icmpsensor.config.schema import AllowlistConfig, Config, DetectionConfig
from icmpsensor.decode.decoder import DpktDecoder
from icmpsensor.decode.fast import Decoder
from icmpsensor.decode.linktypes import LINKTYPE_ETHERNET
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.decode.stats import DecodeStats
from icmpsensor.detect import fingerprints, nonecho, novelty, tunnels
from icmpsensor.detect import standard as detect
from icmpsensor.detect.fingerprints import (
    _BLACKBOX,
    _BLACKBOX_TEXT,
    _I64_BE,
    _IPUTILS_UNTIMED,
    _MAX_UPTIME,
    _MTR,
    _NSEC,
    _SEQ,
    _TRACEROUTE,
    _TRACEROUTE_FILL,
    _TV32_BE,
    _TV32_LE,
    _TV64_LE,
    _U32_BE,
    _U32_LE,
    _USEC,
    _WINDOWS,
    _WINDOWS_FILL,
    EMPTY,
    MAX_PATTERN,
    ZERO_FILL,
    Benign,
)
from icmpsensor.detect.flows import FlowDetector
from icmpsensor.detect.nonecho import (
    _ECHO_TYPES,
    _ERRORS_V4,
    _ERRORS_V6,
    _FIXED_V4,
    _STRUCTURED_V6,
    _rest_of_header_ok,
    _router_advertisement,
    _timestamp_fields,
)
from icmpsensor.detect.profile import make_detector
from icmpsensor.detect.tunnels import (
    _HPING_RUN,
    _IFT_MAX_GAP,
    _IFT_RUN,
    _IFT_SIZE,
    _NPING_MAX_STEP,
    _NPING_RUN,
    _PRINTABLE,
    _REQUEST_TYPES,
    _TIMESTAMP_BYTES,
    _WINDOWS_ALPHABET,
    ToolMatch,
    _is_counting_fill,
    _only,
    _RequestFlow,
    _show,
    _swap16,
    recognise,
)
from icmpsensor.notice.record import Notice
from icmpsensor.output.evidence import encode
from icmpsensor.output.sink import ListSink
from icmpsensor.runmode.pipeline import Pipeline
from icmpsensor.runmode.replay import replay_pipeline
from tests import benign_corpus, exfil_corpus
from tests.conftest import SEED_DIR

# -- reference: novelty --------------------------------------------------------------------

PREFIX = novelty.PREFIX


def _reference_sketch(payload: bytes) -> novelty.Sketch:
    return payload[:PREFIX], hash(payload[PREFIX:]), len(payload)


def _reference_differing_bytes(a: bytes, b: bytes) -> int:
    """Byte by byte, not novelty.differing_bytes's integer XOR."""
    return sum(x != y for x, y in zip(a, b, strict=False)) + abs(len(a) - len(b))


def _reference_novel_bytes(payload: bytes, previous: novelty.Sketch | None) -> int:
    if previous is None:
        return len(payload)
    prefix, rest_hash, length = previous
    novel = _reference_differing_bytes(payload[:PREFIX], prefix)
    if len(payload) > PREFIX and (len(payload) != length or hash(payload[PREFIX:]) != rest_hash):
        novel += len(payload) - PREFIX
    return novel


# -- reference: fingerprints ---------------------------------------------------------------

def _ref_wall_ok(t: float, capture_ts: float, tolerance: float) -> bool:
    return -tolerance <= t - capture_ts <= tolerance


def _ref_period(payload: bytes, start: int, n: int) -> int:
    length = n - start
    if length < 2:
        return 0
    last = payload[n - 1]
    low = max(start, n - 1 - MAX_PATTERN)
    idx = payload.rfind(last, low, n - 1)
    while idx >= 0:
        p = n - 1 - idx
        if 2 * p > length:
            return 0
        if payload[start + p :] == payload[start : n - p]:
            return p
        idx = payload.rfind(last, low, idx)
    return 0


def _ref_pattern(payload: bytes, start: int, p: int, origin: int) -> bytes:
    segment = payload[start : start + p]
    shift = (start - origin) % p
    return segment[p - shift :] + segment[: p - shift] if shift else segment


def _ref_untimed(payload: bytes, n: int, first: int) -> Benign | None:
    if payload[-1] == first and payload.count(first) == n:
        if first == 0:
            return ZERO_FILL
        if n >= 2:
            return _MTR[first]
    if first == 0x61:
        if payload == _WINDOWS_FILL[:n]:
            return _WINDOWS
    elif first == 0x48:
        if payload == _TRACEROUTE_FILL[:n]:
            return _TRACEROUTE
    elif first == 0x50:
        hit = _ref_blackbox(payload, n)
        if hit is not None:
            return hit
    elif first == 0 and n < 16 and payload == _SEQ[:n]:
        return _IPUTILS_UNTIMED
    if n < 16:
        p = _ref_period(payload, 0, n)
        if p:
            return Benign("iputils", None, session=_ref_pattern(payload, 0, p, 0))
    return None


def _ref_blackbox(payload: bytes, n: int) -> Benign | None:
    if n <= len(_BLACKBOX_TEXT):
        return _BLACKBOX if payload == _BLACKBOX_TEXT[:n] else None
    if payload.startswith(_BLACKBOX_TEXT) and payload.count(0, len(_BLACKBOX_TEXT)) == n - len(_BLACKBOX_TEXT):
        return _BLACKBOX
    return None


def _ref_check_icmp(payload: bytes, n: int, capture_ts: float, tolerance: float) -> Benign | None:
    if n < 24 or payload[16] != 10 or payload[17] != 0 or payload[15] != 0 or payload[7] != 0:
        return None
    sec, usec = _TV64_LE.unpack_from(payload)
    if usec >= _USEC:
        return None
    t = sec + usec / _USEC
    if not _ref_wall_ok(t, capture_ts, tolerance) or payload.count(0, 24) != n - 24:
        return None
    return Benign("check_icmp", t, session=payload[18:24])


def _ref_pro_bing(payload: bytes, n: int, capture_ts: float, tolerance: float) -> Benign | None:
    if n < 24 or (payload[14] & 0xF0) != 0x40 or (payload[16] & 0xC0) != 0x80:
        return None
    if n > 24 and payload.count(1, 24) != n - 24:
        return None
    t = _I64_BE.unpack_from(payload)[0] / _NSEC
    if not _ref_wall_ok(t, capture_ts, tolerance):
        return None
    return Benign("pro-bing", t, session=payload[8:24])


def _ref_timestamped_fill(payload: bytes, start: int, n: int, origin: int, t: float, template: str) -> Benign | None:
    if payload[start:] == _SEQ[start:n]:
        return Benign(template, t)
    p = _ref_period(payload, start, n)
    if p:
        return Benign(template, t, session=_ref_pattern(payload, start, p, origin))
    return None


def _ref_iputils64(payload: bytes, n: int, capture_ts: float, tolerance: float) -> Benign | None:
    if n < 16 or payload[15] != 0 or payload[11] != 0 or payload[7] != 0:
        return None
    sec, usec = _TV64_LE.unpack_from(payload)
    if usec >= _USEC:
        return None
    t = sec + usec / _USEC
    if not _ref_wall_ok(t, capture_ts, tolerance):
        return None
    return _ref_timestamped_fill(payload, 16, n, 0, t, "iputils")


def _ref_iputils32(payload: bytes, n: int, capture_ts: float, tolerance: float) -> Benign | None:
    if n < 8 or payload[7] != 0:
        return None
    sec, usec = _TV32_LE.unpack_from(payload)
    if usec >= _USEC:
        return None
    t = sec + usec / _USEC
    if not _ref_wall_ok(t, capture_ts, tolerance):
        return None
    return _ref_timestamped_fill(payload, 8, n, 0, t, "iputils")


def _ref_bsd(payload: bytes, n: int, capture_ts: float, tolerance: float) -> Benign | None:
    if n < 8:
        return None
    sec, frac = _TV32_BE.unpack_from(payload)
    if frac < _USEC and _ref_wall_ok(sec + frac / _USEC, capture_ts, tolerance):
        return _ref_timestamped_fill(payload, 8, n, 8, sec + frac / _USEC, "bsd-ping")
    if frac < _NSEC and sec < _MAX_UPTIME:
        hit = _ref_timestamped_fill(payload, 8, n, 8, sec + frac / _NSEC, "bsd-ping")
        if hit is not None:
            return Benign(hit.template, hit.embedded_time, monotonic=True, wraps_after=2.0**32, session=hit.session)
    return None


def _ref_cisco(payload: bytes, n: int, capture_ts: float, tolerance: float) -> Benign | None:
    if n < 12 or not payload.startswith(b"\0\0\0\0") or payload[10:] != payload[8 : n - 2]:
        return None
    return Benign(
        "cisco-ios",
        _U32_BE.unpack_from(payload, 4)[0] / 1000,
        monotonic=True,
        wraps_after=2**32 / 1000,
        session=payload[8:10],
    )


def _ref_busybox(payload: bytes, n: int, capture_ts: float, tolerance: float) -> Benign | None:
    if n < 8:
        return None
    fill = payload[4]
    if payload[-1] != fill or payload.count(fill, 4) != n - 4:
        return None
    return Benign(
        "busybox",
        _U32_LE.unpack_from(payload)[0] / _USEC,
        monotonic=True,
        wraps_after=2**32 / _USEC,
        session=bytes((fill,)),
    )


_REF_TIMED = (_ref_check_icmp, _ref_pro_bing, _ref_iputils64, _ref_iputils32, _ref_cisco, _ref_busybox, _ref_bsd)


def _reference_explain(payload: bytes, capture_ts: float, *, tolerance: float = 300.0,
                       is_reply: bool = False) -> Benign | None:
    n = len(payload)
    if n == 0:
        return EMPTY
    hit = _ref_untimed(payload, n, payload[0])
    if hit is not None:
        return hit
    for check in _REF_TIMED:
        hit = check(payload, n, capture_ts, tolerance)
        if hit is not None:
            return hit
    return None


# -- reference: tunnels --------------------------------------------------------------------


def _reference_is_periodic(p: bytes, longest: int = 16) -> bool:
    n = len(p)
    if p == (_WINDOWS_ALPHABET * (n // len(_WINDOWS_ALPHABET) + 1))[:n]:
        return True
    return any(p[period:] == p[:-period] for period in range(1, min(longest, n // 2) + 1))


def _reference_digests(p: bytes) -> tuple[int, int]:
    return hash(p), hash(p[_TIMESTAMP_BYTES:]) if len(p) > _TIMESTAMP_BYTES else hash(p)


class _ReferenceToolTracker:
    """tunnels.ToolTracker before the fast paths: every request goes through _step."""

    def __init__(self, max_flows: int = 65536, max_pending: int = 65536) -> None:
        self.max_flows = max_flows
        self.max_pending = max_pending
        self._flows: dict[tuple[bytes, bytes, int], _RequestFlow] = {}
        self._empty_requests: dict[tuple[bytes, bytes, int, int], None] = {}

    def observe(self, pkt: IcmpPacket) -> ToolMatch | None:
        found = recognise(pkt)
        if found is not None or pkt.ident < 0:
            return found
        if pkt.icmp_type in _REQUEST_TYPES:
            return self._request(pkt)
        return self._reply(pkt)

    def _request(self, pkt: IcmpPacket) -> ToolMatch | None:
        p = pkt.payload
        if not p:
            self._remember_empty((pkt.src, pkt.dst, pkt.ident, pkt.seq))
        key = (pkt.src, pkt.dst, pkt.ident)
        digest, data_digest = _reference_digests(p)
        flow = self._flows.get(key)
        if flow is None:
            if len(self._flows) >= self.max_flows:
                del self._flows[next(iter(self._flows))]
            self._flows[key] = _RequestFlow(pkt.seq, pkt.ts, pkt.seq, len(p), digest, data_digest)
            return None
        found = self._step(flow, pkt, p, digest, data_digest)
        flow.seq, flow.ts, flow.size, flow.digest, flow.data_digest = pkt.seq, pkt.ts, len(p), digest, data_digest
        return found

    def _step(self, flow: _RequestFlow, pkt: IcmpPacket, p: bytes, digest: int, data_digest: int) -> ToolMatch | None:
        seq_step = (pkt.seq - flow.seq) & 0xFFFF
        same_size = len(p) == flow.size
        chunk = bool(p) and same_size and data_digest != flow.data_digest
        host_order_step = seq_step != 1 and (_swap16(pkt.seq) - _swap16(flow.seq)) & 0xFFFF == 1
        flow.hping_run = flow.hping_run + 1 if chunk and host_order_step else 0
        flow.ift_run = (
            flow.ift_run + 1
            if chunk and seq_step == 1 and len(p) == _IFT_SIZE and pkt.ts - flow.ts <= _IFT_MAX_GAP
            else 0
        )
        flow.nping_run = (
            flow.nping_run + 1
            if flow.first_seq == 1 and seq_step <= _NPING_MAX_STEP and p and same_size and digest == flow.digest
            and not _reference_is_periodic(p) and not _is_counting_fill(p)
            else 0
        )
        if flow.hping_run >= _HPING_RUN:
            padded = ", zero-padded end-of-file chunk" if p.endswith(b"\0") else ""
            return ToolMatch(
                "hping3-file",
                f"hping3 --file: ICMP seq in host byte order (0x{flow.seq:04x} -> 0x{pkt.seq:04x}), "
                f"{len(p)}-byte consecutive chunks of one file{padded}",
            )
        if flow.ift_run >= _IFT_RUN:
            return ToolMatch(
                "icmp-file-transfer",
                f"Icmp-File-Transfer: back-to-back 56-byte raw chunks, seq {pkt.seq - flow.ift_run}..{pkt.seq}, "
                f"'{_show(p, 24)}'",
            )
        if flow.nping_run >= _NPING_RUN:
            return ToolMatch(
                "nping-data",
                f"the same {len(p)}-byte custom payload '{_show(p, 24)}' on echo seq "
                f"{flow.first_seq}..{pkt.seq}, as nping --data/--data-string/--data-length sends",
            )
        return None

    def _remember_empty(self, key: tuple[bytes, bytes, int, int]) -> None:
        pending = self._empty_requests
        if key in pending:
            return
        if len(pending) >= self.max_pending:
            del pending[next(iter(pending))]
        pending[key] = None

    def _reply(self, pkt: IcmpPacket) -> ToolMatch | None:
        p = pkt.payload
        request = (pkt.dst, pkt.src, pkt.ident, pkt.seq)
        answers_empty = request in self._empty_requests
        if answers_empty:
            del self._empty_requests[request]
        if not answers_empty or not p or not _only(p, _PRINTABLE):
            return None
        return ToolMatch("icmpsh", f"icmpsh master command in the echo reply to an empty request: '{_show(p)}'")


# -- reference: nonecho --------------------------------------------------------------------


def _reference_unexplained_bytes(pkt: IcmpPacket, tolerance: float = 300.0) -> tuple[int, str]:
    """(unexplained byte count, reason) for a non-echo message (or an echo with a non-zero code)."""
    payload = pkt.payload
    if not payload:
        return 0, ""
    if pkt.icmp_type in _ECHO_TYPES and _reference_explain(payload, pkt.ts, tolerance=tolerance):
        return 0, ""  # nmap's OS detection sends zero-filled echo requests with code 9
    if pkt.ipv6:
        return _ref_v6(pkt, payload)
    return _ref_v4(pkt, payload)


def _ref_v4(pkt: IcmpPacket, payload: bytes) -> tuple[int, str]:
    kind = pkt.icmp_type
    if kind in (0, 8):
        return len(payload), f"echo with code {pkt.icmp_code}"
    if kind in _ERRORS_V4:
        problem = _ref_quote_problem_v4(pkt, payload)
        return (len(payload), problem) if problem else (0, "")
    if kind == 9:
        return _router_advertisement(payload)
    size = _FIXED_V4.get(kind)
    if size is None:
        return len(payload), f"payload on unassigned or deprecated ICMP type {kind}"
    if len(payload) > size:
        return len(payload) - size, f"{len(payload) - size} bytes beyond the {size}-byte body of type {kind}"
    if kind in (13, 14) and len(payload) == size:
        return _timestamp_fields(payload)
    return 0, ""


def _ref_quote_problem_v4(pkt: IcmpPacket, payload: bytes) -> str:
    """Why the quoted datagram of an IPv4 error cannot be a packet the error's receiver sent, or ''."""
    if len(payload) < 4 + 20:
        return "error message too short to quote an IPv4 header"
    quoted, extension = _ref_split_rfc4884(payload, pkt.icmp_type in (3, 11, 12))
    if extension is not None and (not extension or extension[0] >> 4 != 2):
        return "ICMP extension structure with an unknown version"
    first = quoted[0]
    header_len = (first & 15) * 4
    if first >> 4 != 4 or header_len < 20 or len(quoted) < header_len:
        return "quoted data is not an IPv4 header"
    if int.from_bytes(quoted[:header_len], "big") % 0xFFFF:
        return "quoted IPv4 header has a wrong checksum"
    total = int.from_bytes(quoted[2:4], "big")
    if total < header_len or len(quoted) > total:
        return "quoted datagram longer than its own total length"
    if quoted[12:16] != pkt.dst:
        return "quoted datagram was not sent by the error's receiver"
    if not _rest_of_header_ok(pkt, payload, total, len(quoted)):
        return "unused header bytes of the error message are not zero"
    return ""


def _ref_split_rfc4884(payload: bytes, may_have_length: bool) -> tuple[bytes, bytes | None]:
    """The quoted datagram, and the RFC 4884 extension structure after it if the length field says so."""
    words = payload[1] if may_have_length else 0
    if words and len(payload) >= 4 + words * 4:
        return payload[4 : 4 + words * 4], payload[4 + words * 4 :]
    return payload[4:], None


def _ref_v6(pkt: IcmpPacket, payload: bytes) -> tuple[int, str]:
    kind = pkt.icmp_type
    if kind in (128, 129):
        return len(payload), f"echo with code {pkt.icmp_code}"
    if kind in _ERRORS_V6:
        problem = _ref_quote_problem_v6(pkt, payload)
        return (len(payload), problem) if problem else (0, "")
    if kind in _STRUCTURED_V6:
        return 0, ""
    return len(payload), f"payload on unassigned or private ICMPv6 type {kind}"


def _ref_quote_problem_v6(pkt: IcmpPacket, payload: bytes) -> str:
    if len(payload) < 4 + 40:
        return "error message too short to quote an IPv6 header"
    quoted, extension = _ref_split_rfc4884_v6(payload, pkt.icmp_type in (1, 3))
    if extension is not None and (not extension or extension[0] >> 4 != 2):
        return "ICMP extension structure with an unknown version"
    if quoted[0] >> 4 != 6 or len(quoted) < 40:
        return "quoted data is not an IPv6 header"
    if len(quoted) > 40 + int.from_bytes(quoted[4:6], "big"):
        return "quoted packet longer than its own payload length"
    if quoted[8:24] != pkt.dst:
        return "quoted packet was not sent by the error's receiver"
    return ""


def _ref_split_rfc4884_v6(payload: bytes, may_have_length: bool) -> tuple[bytes, bytes | None]:
    words = payload[0] if may_have_length else 0  # ICMPv6 puts the length in the first byte
    if words and len(payload) >= 4 + words * 8:
        return payload[4 : 4 + words * 8], payload[4 + words * 8 :]
    return payload[4:], None


# -- the reference detector ------------------------------------------------------------------


class _ReferenceDetector(detect.Detector):
    """The standard detector's per-packet path before it was written out for speed: a method per step,
    the generic FlowDetector.process, every flow evaluated after every packet."""

    process = FlowDetector.process

    def _packet(self, pkt: IcmpPacket, due: list[Notice]) -> None:
        if pkt.icmp_code == 0 and pkt.is_echo_request:
            self.stats.echo_requests += 1
            flow = self._reference_request(pkt)
        elif pkt.is_echo_reply:
            self.stats.echo_replies += 1
            flow = self._reference_reply(pkt, due)
        else:  # the product's path: unexplained_bytes is the reference one (patched in)
            self.stats.other_icmp += 1
            self._on_other(pkt, due)
            return
        if self._realtime:
            self._evaluate(flow, pkt.ts, due)

    def _reference_request(self, pkt: IcmpPacket) -> detect.Flow:
        flow = self._flow(pkt.src, pkt.dst, pkt.ts)
        payload = pkt.payload
        flow.n += 1
        flow.orig_bytes += len(payload)
        novel = self._reference_novelty(flow, pkt, flow.last_sketch)
        if not flow.tool:
            self._recognise_tool(flow, pkt)
        current = _reference_sketch(payload)
        flow.last_sketch = current
        if novel:
            flow.changed_requests += 1
            self._add_novel(flow, novel)
        if self._matched:
            self._remember_request(pkt, current)
        return flow

    def _reference_reply(self, pkt: IcmpPacket, due: list[Notice]) -> detect.Flow:
        request_flow = self._request_flow(pkt)
        flow = self._flow(pkt.src, pkt.dst, pkt.ts)
        payload = pkt.payload
        flow.n += 1
        flow.resp_bytes += len(payload)
        if request_flow is not None:
            request_flow.received_bytes += len(payload)
        if self._matched:
            request = self._answered_request(pkt)
        else:
            request = None if request_flow is None else request_flow.last_sketch
        if request is None:
            self._unpaired(pkt, flow, due)
            novel = self._reference_novelty(flow, pkt, flow.last_sketch)
        else:
            novel = self._reference_novelty(flow, pkt, request)  # type: ignore[arg-type]
        if novel and not flow.tool:
            self._recognise_tool(flow, pkt)
        flow.last_sketch = _reference_sketch(payload)
        if novel:
            flow.reply_differs += 1
            self._add_novel(flow, novel)
        return flow

    def _reference_novelty(self, flow: detect.Flow, pkt: IcmpPacket, compared: novelty.Sketch | None) -> int:
        payload = pkt.payload
        if not payload or self._ignored(payload):
            return 0
        novel = _reference_novel_bytes(payload, compared)
        if not novel:
            return 0
        benign = fingerprints.explain(payload, pkt.ts, tolerance=self.cfg.timestamp_tolerance,
                                      is_reply=pkt.is_echo_reply)
        if benign is not None and self._consistent(flow, benign, pkt):
            self.stats.ignored_payloads += 1
            return 0
        return novel


def _use_references(m: pytest.MonkeyPatch) -> None:
    """Patch the reference implementations in where the standard detector looks them up."""
    m.setattr(detect, "Detector", _ReferenceDetector)  # what make_detector builds
    m.setattr(fingerprints, "explain", _reference_explain)
    m.setattr(nonecho, "unexplained_bytes", _reference_unexplained_bytes)
    m.setattr(tunnels, "_is_periodic", _reference_is_periodic)  # what recognise's icmpdoor check calls
    m.setattr(tunnels, "ToolTracker", _ReferenceToolTracker)  # built by Detector.__init__


NoticeKey = tuple[str, str, str, int, int, float, str, str]


def _key(notice: Notice) -> NoticeKey:
    return (notice.note, notice.src, notice.dst, notice.n, notice.novel_bytes, notice.ts, notice.msg, notice.sub)


def _detect(packets: list[IcmpPacket | None], detection: DetectionConfig, allowlist: AllowlistConfig,
            ) -> tuple[list[NoticeKey], dict[str, int]]:
    det: FlowDetector = make_detector(detection, allowlist)
    notices: list[Notice] = []
    for pkt in packets:
        if pkt is not None:
            notices.extend(det.process(pkt))
    notices.extend(det.flush())
    return [_key(n) for n in notices], det.stats.as_dict()


# -- corpus cases, as Ethernet frames ----------------------------------------------------------

_ETHERNET = {False: bytes.fromhex("020000000001020000000002") + b"\x08\x00",
             True: bytes.fromhex("020000000001020000000002") + b"\x86\xdd"}
CASES: dict[str, Callable[[], list[IcmpPacket]]] = {
    **{f"benign-{name}": make for name, make in benign_corpus.BENIGN_CASES.items()},
    **{f"exfil-{name}": make for name, make in exfil_corpus.EXFIL_CASES.items()},
}


def _decode_all(decoder: Decoder, frames: list[tuple[float, bytes]]) -> list[IcmpPacket | None]:
    decode = decoder.decode
    return [decode(ts, frame) for ts, frame in frames]


@pytest.mark.parametrize("case", sorted(CASES))
def test_corpus_case_matches_the_reference_path(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    packets = CASES[case]()
    frames = [(p.ts, _ETHERNET[p.ipv6] + encode(p)) for p in packets]
    fast_stats, ref_stats = DecodeStats(), DecodeStats()
    fast = _decode_all(Decoder(LINKTYPE_ETHERNET, fast_stats), frames)
    ref = _decode_all(DpktDecoder(LINKTYPE_ETHERNET, ref_stats), frames)
    assert fast == ref
    assert fast_stats == ref_stats
    assert [(p.src, p.dst, p.icmp_type, p.icmp_code, p.ident, p.seq, p.payload) for p in ref if p] == [
        (p.src, p.dst, p.icmp_type, p.icmp_code, p.ident, p.seq, p.payload) for p in packets
    ]
    detection, allowlist = DetectionConfig(), AllowlistConfig()
    got = _detect(fast, detection, allowlist)
    # the same traffic with the clock of a long capture: flows and pairs expire and are evicted
    small = dataclasses.replace(detection, idle_timeout=5.0, max_flows=3, max_pairs=2, max_pending_requests=4)
    got_small = _detect(fast, small, allowlist)
    with monkeypatch.context() as m:
        _use_references(m)
        want = _detect(ref, detection, allowlist)
        want_small = _detect(ref, small, allowlist)
    assert got == want
    assert got_small == want_small
    if case.startswith("exfil-"):
        assert got[0], "an exfiltration case must raise notices"


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_piece_matches_its_reference_packet_by_packet(
    case: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every packet of the case through ToolTracker, explain, novel_between, sketch and unexplained_bytes, compared
    one by one (in the detector, the tracker only sees flows without a tool and explain only changed payloads)."""
    packets = CASES[case]()
    echoes = [p for p in packets if p.ident >= 0]
    tracker = tunnels.ToolTracker()
    got_tools = [tracker.observe(p) for p in echoes]
    with monkeypatch.context() as m:
        m.setattr(tunnels, "_is_periodic", _reference_is_periodic)
        ref_tracker = _ReferenceToolTracker()
        want_tools = [ref_tracker.observe(p) for p in echoes]
    assert got_tools == want_tools
    for p in echoes:
        for tolerance in (300.0, 0.5):
            assert fingerprints.explain(p.payload, p.ts, tolerance=tolerance) == _reference_explain(
                p.payload, p.ts, tolerance=tolerance), p
    for p in packets:
        if not (p.icmp_code == 0 and p.is_echo_request) and not p.is_echo_reply:  # what the detector sends there
            for tolerance in (300.0, 0.5):
                assert nonecho.unexplained_bytes(p, tolerance) == _reference_unexplained_bytes(p, tolerance), p
    previous: dict[tuple[bytes, bytes], novelty.Sketch] = {}
    for p in echoes:
        key = (p.src, p.dst)
        before = previous.get(key)
        assert novelty.novel_between(novelty.sketch(p.payload), before) == _reference_novel_bytes(p.payload, before)
        previous[key] = novelty.sketch(p.payload)
        assert previous[key] == _reference_sketch(p.payload)


# -- seed captures, through the real replay path ------------------------------------------------

SEED_CAPTURES = sorted(path.name for path in SEED_DIR.glob("*.pcap")) if SEED_DIR.is_dir() else []


def _frames_one_by_one(path: Path) -> tuple[int, list[tuple[float, bytes]]]:
    reader = pcapy.open_offline(str(path))
    frames = []
    while True:
        header, data = reader.next()
        if header is None:
            return reader.datalink(), frames
        sec, usec = header.getts()
        frames.append((sec + usec * 1e-6, data))


@pytest.mark.seed
@pytest.mark.parametrize("name", SEED_CAPTURES)
def test_seed_capture_matches_the_reference_path(name: str, seed_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _check_capture_against_the_reference_path(seed_dir / name, tmp_path, monkeypatch)


def test_synthetic_mix_matches_the_reference_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slice of the throughput benchmark's mix: every kind of benign traffic, floods, errors, IPv6, VLAN
    tags, fragments and several exfiltrations at once, through the C batch decoder and its Python
    fallback, against dpkt frame by frame and the reference detector."""
    from bench import synth

    path = tmp_path / "mix.pcap"
    truth = synth.generate(path, packets=60_000, seed=5)
    assert truth["fragments"] and truth["vlan"] and truth["ipv6"]
    (tmp_path / "logs").mkdir()
    _check_capture_against_the_reference_path(path, tmp_path / "logs", monkeypatch)


def _check_capture_against_the_reference_path(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from icmpsensor.decode.fragments import Reassembler
    from icmpsensor.source.batch import frames_of
    from icmpsensor.source.pcapfile import batches

    cfg = Config()
    cfg.output.log_dir = str(tmp_path)
    sink = ListSink()
    pipeline = Pipeline(cfg, [sink])  # type: ignore[list-item]
    result = replay_pipeline(pipeline, [str(path)])
    pipeline.close()

    linktype, frames = _frames_one_by_one(path)
    assert [f for buf, meta in batches(pcapy.open_offline(str(path))) for f in frames_of(buf, meta)] == frames
    assert result.frames == len(frames) and not result.problems
    stats = DecodeStats()
    reassembler = Reassembler(max_datagrams=cfg.decode.max_fragmented_datagrams, timeout=cfg.decode.fragment_timeout,
                              stats=stats.fragments)
    decoder = DpktDecoder(linktype, stats, verify_checksums=cfg.decode.verify_checksums, reassembler=reassembler)
    packets = _decode_all(decoder, frames)
    # the product's decoder on the batches as replay reads them (C fast path, Python for the rest)
    batch_stats = DecodeStats()
    batch_decoder = Decoder(linktype, batch_stats, verify_checksums=cfg.decode.verify_checksums,
                            reassembler=Reassembler(max_datagrams=cfg.decode.max_fragmented_datagrams,
                                                    timeout=cfg.decode.fragment_timeout, stats=batch_stats.fragments))
    decoded = [p for buf, meta in batches(pcapy.open_offline(str(path))) for p in batch_decoder.decode_batch(buf, meta)]
    assert decoded == [p for p in packets if p is not None]
    assert batch_stats == stats
    with monkeypatch.context() as m:
        _use_references(m)
        want, want_stats = _detect(packets, cfg.detection, cfg.allowlist)
    assert want, "every capture here carries an exfiltration"
    assert [_key(n) for n in sink.notices] == want
    assert pipeline.detector.stats.as_dict() == want_stats
    assert pipeline.decode_stats == stats


# -- the pieces, on inputs the corpus does not have ---------------------------------------------


def _mutations(rng: random.Random, payload: bytes) -> Iterator[bytes]:
    yield payload
    n = len(payload)
    for _ in range(6):
        if n:
            at = rng.choice([rng.randrange(n), rng.randrange(min(n, 25)), n - 1])
            yield payload[:at] + bytes([rng.randrange(256)]) + payload[at + 1 :]
            yield payload[: rng.randrange(n)]
        yield payload + bytes([rng.randrange(256)])


def test_explain_matches_the_reference_on_mutated_and_random_payloads() -> None:
    rng = random.Random(20240611)
    samples: list[tuple[bytes, float]] = []
    for make in benign_corpus.BENIGN_CASES.values():
        echoes = [p for p in make() if p.ident >= 0]
        for p in rng.sample(echoes, min(len(echoes), 40)):
            samples.extend((m, p.ts + rng.choice([0.0, 299.9, -300.1, 1e6])) for m in _mutations(rng, p.payload))
        for p in echoes[:3]:  # every short length, where the templates' size limits are
            samples.extend((p.payload[:k], p.ts) for k in range(min(len(p.payload), 40)))
    for n in range(0, 90):
        for alphabet in (b"\0", b"\0\x01", bytes(range(256)), b"ab", b"\x0a\0", b"\x40\x80\0"):
            samples.append((bytes(rng.choice(alphabet) for _ in range(n)), benign_corpus.START))
    for payload, ts in samples:
        for tolerance in (300.0, 1.0):
            assert fingerprints.explain(payload, ts, tolerance=tolerance) == _reference_explain(
                payload, ts, tolerance=tolerance), (payload, ts)


def test_is_periodic_matches_the_reference() -> None:
    rng = random.Random(7)
    payloads = [b"", b"a", _WINDOWS_ALPHABET * 3, (_WINDOWS_ALPHABET * 3)[:50], b"abcdefghijklmnopqrstuvwxya"]
    for _ in range(3000):
        unit = bytes(rng.randrange(4) for _ in range(rng.randrange(1, 20)))
        payload = (unit * 20)[: rng.randrange(60)]
        if payload and rng.random() < 0.5:
            at = rng.randrange(len(payload))
            payload = payload[:at] + bytes([rng.randrange(4)]) + payload[at + 1 :]
        payloads.append(payload)
    for payload in payloads:
        for longest in (16, 3):
            assert tunnels._is_periodic(payload, longest) == _reference_is_periodic(payload, longest), payload


def test_novel_bytes_and_sketch_match_the_reference() -> None:
    rng = random.Random(3)
    lengths = [0, 1, 2, 15, 16, 17, 56, 63, 64, 65, 66, 100, 1472]
    for _ in range(20000):
        a = bytes(rng.randrange(3) for _ in range(rng.choice(lengths)))
        b = bytes(rng.randrange(3) for _ in range(rng.choice(lengths))) if rng.random() < 0.7 else a
        previous = None if rng.random() < 0.05 else _reference_sketch(b)
        assert novelty.novel_between(novelty.sketch(a), previous) == _reference_novel_bytes(a, previous), (a, b)
        assert novelty.sketch(a) == _reference_sketch(a)
        assert novelty.sketch(b) == _reference_sketch(b)


def test_unexplained_bytes_matches_the_reference_on_mutated_messages() -> None:
    rng = random.Random(11)
    messages = [p for name in ("error_storm", "error_storm_v6", "traceroute_icmp", "mtr", "pmtu_probing")
                for p in benign_corpus.BENIGN_CASES[name]() if p.ident < 0]
    messages = rng.sample(messages, 400)
    for kind in (0, 3, 4, 5, 9, 10, 11, 12, 13, 14, 17, 40):  # other IPv4 types, v6 ones below
        messages.append(dataclasses.replace(messages[0], ipv6=False, icmp_type=kind, payload=bytes(rng.randrange(4)
                                            for _ in range(rng.choice([0, 3, 4, 8, 16, 17, 30])))))
    for kind in (1, 2, 3, 4, 128, 135, 200):
        messages.append(dataclasses.replace(messages[0], ipv6=True, icmp_type=kind, payload=bytes(50)))
    for message in messages:
        for payload in _mutations(rng, message.payload):
            for code in {message.icmp_code, 4}:
                pkt = dataclasses.replace(message, payload=payload, icmp_code=code)
                assert nonecho.unexplained_bytes(pkt) == _reference_unexplained_bytes(pkt), pkt
        # RFC 4884 lengths pointing at, inside and past the end, with and without an extension version 2
        n = len(message.payload)
        for at in range(min(n, 64)):  # every byte of the error header and the quoted IP header
            payload = message.payload[:at] + bytes([message.payload[at] ^ 0x81]) + message.payload[at + 1 :]
            pkt = dataclasses.replace(message, payload=payload)
            assert nonecho.unexplained_bytes(pkt) == _reference_unexplained_bytes(pkt), pkt
        for at in (0, len(message.dst) - 1):  # a quote of a datagram someone else sent, checksums intact
            dst = message.dst[:at] + bytes([message.dst[at] ^ 1]) + message.dst[at + 1 :]
            pkt = dataclasses.replace(message, dst=dst)
            assert nonecho.unexplained_bytes(pkt) == _reference_unexplained_bytes(pkt), pkt
        if n < 2:
            continue
        for words in (1, 5, 17, (n - 4) // (8 if message.ipv6 else 4), 255):
            for tail in (b"", b"\x20\0\0\0", b"\x10\0"):
                payload = bytearray(message.payload + tail)
                payload[0 if message.ipv6 else 1] = words & 0xFF
                pkt = dataclasses.replace(message, payload=bytes(payload))
                assert nonecho.unexplained_bytes(pkt) == _reference_unexplained_bytes(pkt), pkt
