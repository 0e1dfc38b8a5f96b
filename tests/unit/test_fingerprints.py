"""Benign-payload fingerprints: every benign tool explained, every deviation rejected."""

from __future__ import annotations

import os
import struct
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.detect.fingerprints import Benign, busybox_other_order, explain
from icmpsensor.detect.nonecho import unexplained_bytes
from testkit import benign_corpus as corpus
from tests.hypothesis_counts import examples

CAP = 1_700_000_123.456789  # capture time used by the adversarial tests
SENT = CAP - 0.000_213  # the embedded send time
TOLERANCE = 300.0
FAST = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _explain_packet(p: IcmpPacket) -> Benign | None:
    if p.is_echo_request or p.is_echo_reply:
        return explain(p.payload, p.ts, tolerance=TOLERANCE, is_reply=p.is_echo_reply)
    # Errors and other types are judged by nonecho.py (see test_nonecho.py): nothing unexplained.
    novel, _ = unexplained_bytes(p)
    return Benign("icmp-error", None) if novel == 0 else None


# -- every benign case is explained -----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(corpus.BENIGN_CASES))
def test_benign_case_fully_explained(name: str) -> None:
    packets = corpus.BENIGN_CASES[name]()
    assert packets and name in corpus.PROVENANCE
    assert packets[-1].ts - packets[0].ts >= 3580  # an hour of traffic (the last probe starts in its last interval)
    flows: dict[tuple[bytes, bytes, int], list[tuple[IcmpPacket, Benign]]] = defaultdict(list)
    for p in packets:
        hit = _explain_packet(p)
        assert hit is not None, f"{name}: unexplained type {p.icmp_type} payload {p.payload[:48].hex()}"
        assert hit.template in corpus.EXPECTED_TEMPLATES[name], (name, hit.template)
        if p.is_echo_request:
            flows[(p.src, p.dst, p.ident)].append((p, hit))
    for flow in flows.values():
        _assert_flow_contract(flow)


def _assert_flow_contract(flow: list[tuple[IcmpPacket, Benign]]) -> None:
    """What the detector may rely on per (requester, responder, ident) in benign traffic."""
    assert len({hit.template for _, hit in flow}) == 1
    assert len({hit.session for _, hit in flow}) == 1
    timed = [(p, hit) for p, hit in flow if hit.embedded_time is not None]
    if not timed:
        return
    if timed[0][1].monotonic:
        wrap = timed[0][1].wraps_after
        assert wrap is not None

        def spread(times: list[float]) -> float:
            offsets = [(t - p.ts) % wrap for (p, _), t in zip(timed, times, strict=True)]  # type: ignore[operator]
            return min(max(offsets) - min(offsets), wrap - max(offsets) + min(offsets))

        times = [hit.embedded_time for _, hit in timed]
        if timed[0][1].template == "busybox":  # a big-endian host's counter keeps time in the other byte order
            assert min(spread(times), spread([busybox_other_order(t) for t in times])) < 1.0  # type: ignore[arg-type]
        else:
            assert spread(times) < 1.0  # type: ignore[arg-type]
    else:
        times = [hit.embedded_time for _, hit in sorted(timed, key=lambda item: item[0].seq)]
        assert times == sorted(times)
        assert all(abs(hit.embedded_time - p.ts) < 1.0 for p, hit in timed)  # type: ignore[operator]


def test_empty_payload() -> None:
    assert explain(b"", CAP) == Benign("empty", None)


def test_decoded_times_are_exact() -> None:
    """The caller compares times across a flow, so they must be what the tool wrote."""
    assert explain(corpus.iputils_payload(56, SENT), CAP).embedded_time == pytest.approx(SENT, abs=1e-6)
    assert explain(corpus.bsd_payload(56, SENT), CAP).embedded_time == pytest.approx(SENT, abs=1e-6)
    hit = explain(corpus.pro_bing_payload(24, SENT, bytes.fromhex("0" * 12 + "4000" + "8000" + "0" * 12)), CAP)
    assert hit is not None and hit.embedded_time == pytest.approx(SENT, abs=1e-6)
    busy = explain(corpus.busybox_payload(56, 123_456_789), CAP)
    assert busy is not None and busy.monotonic and busy.embedded_time == pytest.approx(123.456789)


# -- specimens: one payload per template, with the bytes its template fixes --------------------


@dataclass(frozen=True)
class Specimen:
    name: str
    template: str
    make: Callable[[int], bytes]  # the same tool's payload at any size
    size: int
    fill: tuple[int, ...]  # positions a template fixes completely (flipping one must be rejected)

    @property
    def payload(self) -> bytes:
        return self.make(self.size)


# The BusyBox counter is chosen with a high first byte: [counter][zeros] with a counter read
# big-endian below ten years of uptime is also a valid FreeBSD `ping -p 00` packet.
_BUSY_US = 0x1A2B3CC3

SPECIMENS = (
    Specimen("iputils", "iputils", lambda n: corpus.iputils_payload(n, SENT), 56, tuple(range(16, 56))),
    Specimen("iputils-1400", "iputils", lambda n: corpus.iputils_payload(n, SENT), 1400, tuple(range(16, 1400))),
    Specimen("iputils-32bit", "iputils", lambda n: corpus.iputils_payload(n, SENT, time_bits=32), 56,
             tuple(range(8, 56))),
    Specimen("iputils-pattern", "iputils", lambda n: corpus.iputils_payload(n, SENT, b"\x12\x34\x56"), 100,
             tuple(range(16, 100))),
    Specimen("macos", "bsd-ping", lambda n: corpus.bsd_payload(n, SENT), 56, tuple(range(8, 56))),
    Specimen("freebsd", "bsd-ping", lambda n: corpus.bsd_payload(n, SENT, uptime=3_000_000.25), 56,
             tuple(range(8, 56))),
    Specimen("windows", "windows", corpus.windows_payload, 32, tuple(range(32))),
    Specimen("windows-1000", "windows", corpus.windows_payload, 1000, tuple(range(1000))),
    Specimen("busybox", "busybox", lambda n: corpus.busybox_payload(n, _BUSY_US), 56, tuple(range(4, 56))),
    # Bytes 0-7 of a zero or one-byte fill can be BusyBox/Cisco/FreeBSD clocks (see busybox).
    Specimen("zero-fill", "zero-fill", corpus.fping_payload, 56, tuple(range(8, 56))),
    Specimen("mtr", "mtr", lambda n: corpus.mtr_payload(n, 0xA5), 36, tuple(range(8, 36))),
    Specimen("traceroute", "traceroute", corpus.traceroute_payload, 32, tuple(range(32))),
    Specimen("blackbox", "blackbox_exporter", lambda n: corpus.blackbox_payload(n if n != 28 else 0), 28,
             tuple(range(28))),
    Specimen("blackbox-1400", "blackbox_exporter", corpus.blackbox_payload, 1400, tuple(range(1400))),
    Specimen("check_icmp", "check_icmp", lambda n: corpus.check_icmp_payload(n, SENT, b"\x11" * 6), 68,
             (16, 17, *range(24, 68))),
    Specimen("pro-bing", "pro-bing",
             lambda n: corpus.pro_bing_payload(n, SENT, bytes.fromhex("3f2a9c01d4e54b7d9a31c0ffee123456")),
             64, (*range(24, 64),)),
    # The tracker's seventh byte (payload byte 14) is not 0x4_: then a byte 16 of 10xxxxxx makes it a pro-bing
    # payload (its random UUID's version nibble and variant), as it is on the wire.
    Specimen("go-ping", "go-ping", lambda n: corpus.go_ping_payload(n, SENT, 0x9C3E_0B7A_51D2_A4F6), 56,
             tuple(range(16, 56))),
    # Its JSON's fixed text (a flipped clock or tracker byte is another clock or tracker, or no base64)
    Specimen("go-ping-json", "go-ping-json", lambda n: corpus.go_ping_json_payload(SENT, 4_611_686_018_427_387_904),
             54, (*range(10), 21, *range(22, 34), 53)),
    # Bytes 0-3 are left out: four other bytes there make a valid FreeBSD `ping -p abcd`.
    Specimen("cisco", "cisco-ios", lambda n: corpus.cisco_payload(n, 987_654_321), 72, tuple(range(8, 72))),
)
_BY_NAME = {s.name: s for s in SPECIMENS}


@pytest.mark.parametrize("spec", SPECIMENS, ids=lambda s: s.name)
def test_specimen_is_explained(spec: Specimen) -> None:
    hit = explain(spec.payload, CAP)
    assert hit is not None and hit.template == spec.template


@pytest.mark.parametrize("spec", SPECIMENS, ids=lambda s: s.name)
@FAST
@given(data=st.data())
def test_flipping_a_fill_byte_is_rejected(spec: Specimen, data: st.DataObject) -> None:
    payload = bytearray(spec.payload)
    pos = data.draw(st.sampled_from(spec.fill))
    payload[pos] = data.draw(st.integers(0, 255).filter(lambda v: v != payload[pos]))
    assert explain(bytes(payload), CAP) is None


_GROWABLE = ("iputils", "iputils-32bit", "macos", "freebsd", "windows", "busybox", "zero-fill", "mtr",
             "traceroute", "blackbox", "check_icmp", "pro-bing", "iputils-pattern", "cisco")


@pytest.mark.parametrize("name", _GROWABLE)
@FAST
@given(extra=st.integers(0, 255))
def test_appending_a_foreign_byte_is_rejected(name: str, extra: int) -> None:
    """The fills depend only on the size, so the one byte that continues them is benign (ping -s N+1)."""
    spec = _BY_NAME[name]
    assume(extra != spec.make(spec.size + 1)[-1])
    assert explain(spec.payload + bytes((extra,)), CAP) is None


@pytest.mark.parametrize(("name", "cuts"), [
    # pro-bing cut to 16 bytes is go-ping's default payload: its clock and an 8-byte tracker.
    ("pro-bing", (*range(1, 16), *range(17, 24))),
    # check_icmp starts with the same struct timeval as iputils: cut to 16 bytes it is
    # `ping -s 16`, cut to 8 an iputils-on-32-bit packet with tv_usec = 0.
    ("check_icmp", (*range(1, 8), *range(9, 16), *range(17, 24))),
    ("iputils", (*range(1, 8), *range(9, 16))),
])
def test_truncating_into_the_header_is_rejected(name: str, cuts: range) -> None:
    payload = _BY_NAME[name].payload
    for k in cuts:
        assert explain(payload[:k], CAP) is None, k


def test_truncated_fill_is_the_same_tool_at_a_smaller_size() -> None:
    """Documented, not a hole: ping -s 55 sends exactly the first 55 bytes of ping -s 56's template."""
    spec = _BY_NAME["iputils"]
    hit = explain(spec.payload[:40], CAP)
    assert hit is not None and hit.template == "iputils"


# -- timestamps ---------------------------------------------------------------------------------

_STAMPED: dict[str, Callable[[float], bytes]] = {
    "iputils": lambda t: corpus.iputils_payload(56, t),
    "iputils-32bit": lambda t: corpus.iputils_payload(56, t, time_bits=32),
    "iputils-pattern": lambda t: corpus.iputils_payload(100, t, b"\x12\x34\x56"),
    "macos": lambda t: corpus.bsd_payload(56, t),
    "check_icmp": lambda t: corpus.check_icmp_payload(68, t),
    "pro-bing": lambda t: corpus.pro_bing_payload(40, t, bytes.fromhex("00112233445547778899aabbccddeeff")),
}


@pytest.mark.parametrize("name", sorted(_STAMPED))
@FAST
@given(skew=st.floats(TOLERANCE + 0.01, 1e8), later=st.booleans())
def test_timestamp_outside_tolerance_is_rejected(name: str, skew: float, later: bool) -> None:
    sent = CAP + skew if later else CAP - skew
    hit = explain(_STAMPED[name](sent), CAP, tolerance=TOLERANCE)
    if name == "iputils-32bit" and hit is not None:
        # Its 8 stamp bytes read big-endian can be a FreeBSD 13+ monotonic stamp (uptime < 10
        # years, nsec < 10^9) over the same fill: never a wall time, and a template change
        # within the flow, which the detector sees.
        assert hit.template == "bsd-ping" and hit.monotonic
        return
    assert hit is None
    assert explain(_STAMPED[name](CAP - 1.5), CAP, tolerance=TOLERANCE) is not None


@pytest.mark.parametrize("name", sorted(_STAMPED))
def test_tolerance_is_a_parameter(name: str) -> None:
    payload = _STAMPED[name](CAP - 50)
    assert explain(payload, CAP, tolerance=60) is not None
    assert explain(payload, CAP, tolerance=40) is None


def test_replayed_timestamp_is_rejected_once_stale() -> None:
    """A payload captured once and replayed later fails as soon as it is older than the tolerance."""
    payload = corpus.iputils_payload(56, SENT)
    assert explain(payload, CAP + 10) is not None
    assert explain(payload, CAP + TOLERANCE + 1) is None


@FAST
@given(usec=st.integers(1_000_000, 2**20 - 1))
def test_iputils_microseconds_out_of_range(usec: int) -> None:
    payload = bytearray(corpus.iputils_payload(56, SENT))
    payload[8:16] = struct.pack("<q", usec)
    assert explain(bytes(payload), CAP) is None
    payload32 = bytearray(corpus.iputils_payload(56, SENT, time_bits=32))
    payload32[4:8] = struct.pack("<I", usec)
    assert explain(bytes(payload32), CAP) is None


@FAST
@given(usec=st.integers(1_000_000, 2**32 - 1))
def test_bsd_and_check_icmp_sub_second_fields_out_of_range(usec: int) -> None:
    mac = bytearray(corpus.bsd_payload(56, SENT))
    mac[4:8] = struct.pack(">I", usec)
    assert explain(bytes(mac), CAP) is None
    nagios = bytearray(corpus.check_icmp_payload(68, SENT))
    nagios[8:16] = struct.pack("<q", usec)
    assert explain(bytes(nagios), CAP) is None


@FAST
@given(nsec=st.integers(1_000_000_000, 2**32 - 1))
def test_freebsd_nanoseconds_out_of_range(nsec: int) -> None:
    payload = bytearray(corpus.bsd_payload(56, SENT, uptime=3_000_000.25))
    payload[4:8] = struct.pack(">I", nsec)
    assert explain(bytes(payload), CAP) is None


# -- the original detector's blind spot, and other lookalikes -------------------------------------

_LINUX_TAIL = bytes(range(0x20, 0x38))


@FAST
@given(data=st.binary(min_size=32, max_size=32))
def test_linux_lookalike_with_data_in_first_half_is_rejected(data: bytes) -> None:
    genuine = corpus.iputils_payload(56, SENT)
    assume(data != genuine[:32])
    assert explain(data + _LINUX_TAIL, CAP) is None


@FAST
@given(data=st.binary(min_size=16, max_size=16))
def test_valid_timestamp_does_not_launder_data_behind_it(data: bytes) -> None:
    genuine = corpus.iputils_payload(56, SENT)
    assume(data != genuine[16:32])
    assert explain(genuine[:16] + data + _LINUX_TAIL, CAP) is None


@FAST
@given(pos=st.integers(0, 31), letter=st.integers(0, 255))
def test_windows_with_one_letter_changed_is_rejected(pos: int, letter: int) -> None:
    payload = bytearray(b"abcdefghijklmnopqrstuvwabcdefghi")
    assume(payload[pos] != letter)
    payload[pos] = letter
    assert explain(bytes(payload), CAP) is None


def test_old_detector_default_payloads_need_the_whole_template() -> None:
    genuine = corpus.iputils_payload(56, SENT)
    assert explain(genuine, CAP) is not None
    assert explain(b"\xff" * 32 + genuine[32:], CAP) is None


# -- per-flow free bytes are reported, not ignored --------------------------------------------------


@FAST
@given(pos=st.sampled_from([8, 9, 10, 11, 12, 13, 15, 17, 18, 19, 20, 21, 22, 23]), value=st.integers(0, 255))
def test_pro_bing_uuid_is_the_session(pos: int, value: int) -> None:
    original = _BY_NAME["pro-bing"].payload
    payload = bytearray(original)
    assume(payload[pos] != value)
    payload[pos] = value
    hit = explain(bytes(payload), CAP)
    assert hit is not None and hit.template == "pro-bing"
    assert hit.session != explain(original, CAP).session  # the detector sees the tracker change


@FAST
@given(pos=st.sampled_from([14, 16]), value=st.integers(0, 255))
def test_pro_bing_uuid_version_and_variant_are_checked(pos: int, value: int) -> None:
    payload = bytearray(_BY_NAME["pro-bing"].payload)
    assume((pos == 14 and value >> 4 != 4) or (pos == 16 and value >> 6 != 2))
    payload[pos] = value
    assert explain(bytes(payload), CAP) is None


def test_check_icmp_padding_and_ping_pattern_are_sessions() -> None:
    spec = _BY_NAME["check_icmp"]
    assert explain(spec.payload, CAP).session == b"\x11" * 6
    assert explain(corpus.iputils_payload(100, SENT, b"\x12\x34\x56"), CAP).session == b"\x12\x34\x56"
    assert explain(corpus.iputils_payload(56, SENT), CAP).session is None


def test_monotonic_templates_say_so() -> None:
    for payload in (corpus.busybox_payload(56, 5), corpus.bsd_payload(56, SENT, uptime=99.5),
                    corpus.cisco_payload(72, 5000)):
        hit = explain(payload, CAP)
        assert hit is not None and hit.monotonic
    assert explain(corpus.busybox_payload(56, 5), CAP).wraps_after == pytest.approx(4294.967296)


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=2000), ts=st.floats(0, 4e9))
def test_never_raises(payload: bytes, ts: float) -> None:
    hit = explain(payload, ts)
    assert hit is None or isinstance(hit, Benign)


# -- cost ---------------------------------------------------------------------------------------------


def _per_call_us(payload: bytes, rounds: int = 20_000) -> float:
    begin = time.perf_counter()
    for _ in range(rounds):
        explain(payload, CAP)
    return (time.perf_counter() - begin) / rounds * 1e6


def test_cost_per_call(capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        "iputils 56-byte hit": corpus.iputils_payload(56, SENT),
        "windows 32-byte hit": corpus.windows_payload(32),
        "pro-bing 24-byte hit": _BY_NAME["pro-bing"].make(24),
        "random 1400-byte miss": os.urandom(1400),
        "random 56-byte miss": os.urandom(56),
    }
    with capsys.disabled():
        for label, payload in cases.items():
            print(f"\nfingerprints.explain {label}: {_per_call_us(payload):.2f} us/call", end="")
        print()
