"""Hostile packet sequences through the whole detector: whatever a sender puts in the fields and payloads of
one flow after another, the detector counts, decides and renders its notices; it never raises.

The capacity model reads changed places of successive payloads as counters, clocks and decimal numbers
(detect/capacity.py); a payload that only nearly has a number's shape once ended the sensor with exit 1
(`x..y` then `x.5y`). Here every step of a flow is a small mutation of its previous payload, in the
alphabets those readings look for, beside the ping layouts the fingerprints know, with header fields that
step as a ping's or jump, time that stalls, jumps and goes back, every ICMP type the detector sorts, IP
options, and tables a few entries small."""

from __future__ import annotations

import dataclasses
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icmpsensor.config.schema import AllowlistConfig, DetectionConfig
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.detect.profile import make_detector
from tests.hypothesis_counts import examples
from tests.python_lines import lines_run

ALPHABETS = (b"0123456789", b"0123456789.", b"0123456789.:-T ", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
             bytes(range(256)), b"ab.=0123456789x")
HOSTS = tuple(bytes((10, 0, 0, i)) for i in range(3))
T0 = 1_700_000_000.0
ECHO_TYPES = (0, 8, 13, 14, 17)  # the types decoded with an identifier and a sequence number


def first_payload(rng: random.Random, ts: float) -> bytes:
    """A payload in one of the layouts the fingerprints and the capacity model read, or random bytes."""
    kind = rng.randrange(8)
    if kind == 0:  # iputils: a struct timeval, then the counting fill
        return struct.pack("<QQ", int(ts), int(ts % 1 * 1e6)) + bytes(range(16, 56))
    if kind == 1:
        return b"seq=%06d t=%.6f" % (rng.randrange(10**6), ts)
    if kind == 2:  # pythonping / icmplib's characters
        return bytes(rng.choice(ALPHABETS[3]) for _ in range(rng.randrange(1, 64)))
    if kind == 3:
        return b"%d" % int(ts * 1000)
    if kind == 4:
        return rng.randbytes(rng.randrange(80))
    if kind == 5:
        return b"x" * rng.randrange(40)
    if kind == 6:  # nearly a number: points and digits among letters
        return b"probe " + bytes(rng.choice(b"x..5") for _ in range(rng.randrange(1, 12)))
    return struct.pack("!d", ts) + bytes(rng.randrange(40))


def mutated(rng: random.Random, payload: bytes) -> bytes:
    """A few edits: a byte replaced, inserted or deleted, a run overwritten, bytes appended, a cut."""
    out = bytearray(payload)
    if out and rng.random() < 0.5:  # one place changed: what the field readings look at
        out[rng.randrange(len(out))] = rng.choice(rng.choice(ALPHABETS[1::4]))
        return bytes(out)
    for _ in range(rng.randrange(4)):
        alphabet = rng.choice(ALPHABETS)
        edit = rng.randrange(6)
        if edit == 0 and out:
            out[rng.randrange(len(out))] = rng.choice(alphabet)
        elif edit == 1:
            out.insert(rng.randrange(len(out) + 1), rng.choice(alphabet))
        elif edit == 2 and out:
            del out[rng.randrange(len(out))]
        elif edit == 3 and out:
            at = rng.randrange(len(out))
            for i in range(at, min(len(out), at + rng.randrange(1, 9))):
                out[i] = rng.choice(alphabet)
        elif edit == 4:
            out += bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 5)))
        elif edit == 5 and len(out) > 1:
            del out[rng.randrange(len(out)):]
    return bytes(out)


def ping_like(rng: random.Random) -> list[IcmpPacket | float]:
    """One sender's echo requests a second apart, one identifier, seq one up, each payload its last with one
    place changed: what the capacity model reads as counters, clocks and numbers."""
    payload, ident = first_payload(rng, T0), rng.randrange(65536)
    steps: list[IcmpPacket | float] = []
    for seq in range(rng.randrange(2, 30)):
        if payload and seq:
            changed = bytearray(payload)
            changed[rng.randrange(len(changed))] = rng.choice(rng.choice(ALPHABETS[1::4]))
            payload = bytes(changed)
        steps.append(IcmpPacket(T0 + seq, HOSTS[0], HOSTS[1], False, 8, 0, ident, seq, payload, len(payload) + 42))
    return steps


def hostile_sequence(rng: random.Random) -> list[IcmpPacket | float]:
    """Packets among three hosts, each flow's payload mostly an edit of its last; a float: advance the clock."""
    if rng.random() < 0.5:
        return ping_like(rng)
    steps: list[IcmpPacket | float] = []
    last: dict[tuple[bytes, bytes], tuple[bytes, int, int]] = {}
    ts = T0 + rng.random()
    for _ in range(rng.randrange(2, 60)):
        src, dst = rng.sample(HOSTS, 2)
        before = last.get((src, dst))
        ts += rng.choice((0.0, 0.001, 0.5, 1.0, 1.0, rng.random() * 100, -0.5))
        if before is None:
            payload, ident, seq = first_payload(rng, ts), rng.randrange(65536), rng.randrange(3)
        else:
            payload = mutated(rng, before[0]) if rng.random() < 0.85 else first_payload(rng, ts)
            ident = before[1] if rng.random() < 0.8 else rng.randrange(65536)
            seq = (before[2] + rng.choice((1, 1, 1, 0, 2, 256, rng.randrange(65536)))) & 0xFFFF
        last[(src, dst)] = (payload, ident, seq)
        icmp_type = rng.choice((8, 8, 8, 0, 0, 3, 13, 14, 11, 17))
        code = 0 if rng.random() < 0.9 else rng.randrange(256)
        options = b"" if rng.random() < 0.9 else rng.randbytes(rng.randrange(1, 12))
        echo_like = icmp_type in ECHO_TYPES
        steps.append(IcmpPacket(ts, src, dst, False, icmp_type, code, ident if echo_like else -1,
                                seq if echo_like else -1, payload, len(payload) + 42, options))
        if icmp_type == 8 and rng.random() < 0.7:
            answer = payload if rng.random() < 0.8 else mutated(rng, payload)
            steps.append(IcmpPacket(ts + 0.001, dst, src, False, 0, 0, ident, seq, answer, len(answer) + 42))
        if rng.random() < 0.05:
            steps.append(ts + rng.random() * 200)
    return steps


@settings(max_examples=examples(1500), deadline=None)
@given(seed=st.integers(0, 2**32), profile=st.sampled_from(("standard", "original")),
       clock_jitter=st.sampled_from((0.0, 0.001, 0.01, 0.5, 30.0)), small_tables=st.booleans())
def test_hostile_sequences_are_counted_and_reported_never_an_error(seed: int, profile: str,
                                                                   clock_jitter: float, small_tables: bool) -> None:
    rng = random.Random(seed)  # a seeded generator, not Hypothesis's: its draws favour the simplest values
    tables = {"max_flows": rng.randrange(1, 8), "max_pending_requests": rng.randrange(1, 8)} if small_tables else {}
    cfg = dataclasses.replace(DetectionConfig(), profile=profile, clock_jitter=clock_jitter, **tables)
    det = make_detector(cfg, AllowlistConfig())
    notices = []
    packets = 0
    for step in hostile_sequence(rng):
        if isinstance(step, float):
            notices.extend(det.advance(step))
        else:
            notices.extend(det.process(step))
            packets += 1
    notices.extend(det.flush())
    assert det.stats.packets == packets
    assert det.flow_count == 0 and det.pending_count == 0
    for notice in notices:  # every notice's text is made (it is deferred: a crash there loses the notice)
        assert notice.msg and notice.sub


# -- work that does not grow with the payload ----------------------------------------------------------------------

BIG, SMALL = 60_000, 1_500  # a reassembled jumbo datagram's payload, a frame's
_rng = random.Random(7)
FILLS = {
    "random": _rng.randbytes(BIG), "zeros": bytes(BIG), "text lines": (b"ab cd\r\n" * BIG)[:BIG],
    "newlines": b"\n" * BIG, "base64": (b"QUJD" * BIG)[:BIG], "counting": bytes(i & 0xFF for i in range(BIG)),
    "cmd.exe prompts": (b"C:\\x>\n" * BIG)[:BIG],
    # pingtunnel's protobuf: one empty field over and over, its magic in the middle
    "protobuf fields": (b"\x0a\x00" * (BIG // 4)) + b"\x30\xda\xfa\x06" + (b"\x0a\x00" * (BIG // 4)),
}
# (IPv6, type): echo request and reply, timestamp, unreachable; node information reply, MLDv2 report, router
# advertisement, unreachable (IPv6): each type's own walk
TYPES = ((False, 8), (False, 0), (False, 13), (False, 3), (True, 140), (True, 143), (True, 134), (True, 1))
FIRST_BYTES = tuple(sorted({0x00, 0x0A, 0x10, 0x1A, 0x20, 0x45, 0x60, 0x80, 0xFF} | set(b"EHTZ`achqt")))
LAST_BYTES = (0x00, 0x12, 0x15, 0x3E)  # where recognise looks at the end: PyExfil's, an icmpsh prompt's '>'




@pytest.mark.parametrize("walks", ["c", "python"])
def test_a_payload_forty_times_longer_costs_the_detector_no_more_than_a_walk(walks: str,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Every payload shape, first and last byte the tool checks dispatch on, every message type with a walk of its
    own: three packets of a flow carrying 60 KB (a reassembled jumbo datagram) run at most a walk's budget of Python
    lines more than the same packets cut to 1,500 bytes (nonecho.MAX_WALKED items, ~10 lines each), with the walks
    in C (detect/_fastnonecho.c) or in Python (their reference). Crafted 60 KB payloads once cost 1-57 ms each: a
    protobuf parse and a node-name walk to the payload's end, a prompt search at every offset, MLDv2 sources copied
    with the rest of the payload."""
    from icmpsensor.detect import nonecho
    from icmpsensor.detect.nonecho import MAX_WALKED

    if walks == "python":
        monkeypatch.setattr(nonecho, "_fastnonecho", None)
    detector = make_detector(DetectionConfig(), AllowlistConfig())
    worst: tuple[float, str] = (0, "")
    case = 0
    for fill_name, fill in FILLS.items():
        for index, first in enumerate(FIRST_BYTES):
            last = LAST_BYTES[index % len(LAST_BYTES)]
            payload = bytes([first]) + fill[1:-1] + bytes([last])
            for ipv6, icmp_type in TYPES:
                case += 1
                costs = []
                for size in (BIG, SMALL):
                    cut = payload[: size - 1] + payload[-1:]
                    src = struct.pack("!IH", case, size)[-4:] if not ipv6 else struct.pack("!QQ", case, size)
                    dst = HOSTS[0] if not ipv6 else bytes(15) + b"\x02"
                    echo = icmp_type in (0, 8)
                    packets = [IcmpPacket(T0 + case + k * 0.01, src, dst, ipv6, icmp_type, 0, 7 if echo else -1,
                                          k + 1 if echo else -1, cut, size + 28) for k in range(3)]
                    costs.append(lines_run(lambda batch=packets: [detector.process(p) for p in batch]))
                worst = max(worst, ((costs[0] - costs[1]) / 3, f"{fill_name} {first:#x}..{last:#x} type {icmp_type}"))
    assert worst[0] <= 10 * MAX_WALKED, worst
