"""The `original` profile's detector (BEHAVIOUR.md plus the pairing correction), driven with
synthetic decoded packets and a packet clock. The standard profile: test_detect_standard.py."""

from __future__ import annotations

import dataclasses
import ipaddress
import os

import pytest

from icmpsensor.config.schema import AllowlistConfig, DetectionConfig, NoticeSwitches
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.detect import flows
from icmpsensor.detect.original import OriginalDetector, is_default_ping
from icmpsensor.detect.profile import make_detector
from icmpsensor.notice.record import Notice
from icmpsensor.notice.types import ASYM_PAYLOAD, ASYM_PAYLOAD_FLOW, DATA_EXFIL, UNPAIRED_ECHO_REPLY
from testkit.synthetic import echo, packed, run

A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"
V6A, V6B = "2001:db8::1", "2001:db8::2"


def chunk(i: int, size: int = 100) -> bytes:
    return (f"chunk-{i:06d}-".encode() * size)[:size]


def original(**overrides: object) -> DetectionConfig:
    """The original profile with flow-end alerting and, unless overridden, matched pairing."""
    settings: dict[str, object] = {"profile": "original", "reply_pairing": "matched", **overrides}
    return dataclasses.replace(DetectionConfig(), **settings)  # type: ignore[arg-type]


def detector(**overrides: object) -> OriginalDetector:
    switches = overrides.pop("notices", NoticeSwitches())
    det = make_detector(original(notices=switches, **overrides), AllowlistConfig())
    assert isinstance(det, OriginalDetector)
    return det


def notes(notices: list[Notice]) -> list[tuple[str, str, str]]:
    return [(n.note, n.src, n.dst) for n in notices]


def transfer(n: int, size: int = 100, start: float = 1000.0, gap: float = 0.1, echo_back: bool = True,
             src: str = A, dst: str = B) -> list[IcmpPacket]:
    """n requests with changing payloads, each answered by an identical echo reply."""
    packets = []
    for i in range(n):
        packets.append(echo(start + i * gap, src, dst, True, chunk(i, size), seq=i))
        if echo_back:
            packets.append(echo(start + i * gap + 0.01, dst, src, False, chunk(i, size), seq=i))
    return packets


def test_exfil_and_changed_requests_fire_at_flow_end_with_totals() -> None:
    # 20 requests x 100 bytes = 2000 > 1500, 19 changes > 5 -> DataExfil + AsymPayloadFlow on (A,B).
    # Replies match their requests, so no AsymPayload on (B,A).
    out = run(detector(), transfer(20))
    assert notes(out) == [(DATA_EXFIL.name, A, B), (ASYM_PAYLOAD_FLOW.name, A, B)]
    exfil = out[0]
    assert exfil.n == 20
    assert exfil.bytes_sent == 2000
    assert exfil.bytes_received == 2000  # the echoes from B back to A
    assert exfil.start == 1000.0
    assert exfil.end == pytest.approx(1001.9)
    assert "Exfil of size 2.00 KB seen between 10.0.0.1 and 10.0.0.2" in exfil.msg
    assert "Bytes sent: 2000, Bytes received: 2000, Event count: 20" in exfil.sub
    assert out[0].uid == out[1].uid and out[0].uid.startswith("C") and len(out[0].uid) == 18


def test_thresholds_are_strictly_greater_than() -> None:
    # 6 requests -> 5 changes: not > 5. 15 x 100 = 1500 bytes: not > 1500.
    assert run(detector(), transfer(6)) == []
    out = run(detector(), transfer(7))  # 6 changes > 5, 700 bytes
    assert notes(out) == [(ASYM_PAYLOAD_FLOW.name, A, B)]
    out = run(detector(), transfer(15))  # 1500 bytes: changes fire, exfil does not
    assert notes(out) == [(ASYM_PAYLOAD_FLOW.name, A, B)]
    out = run(detector(), transfer(15, size=101))  # 1515 bytes
    assert notes(out) == [(DATA_EXFIL.name, A, B), (ASYM_PAYLOAD_FLOW.name, A, B)]


def test_identical_payloads_are_not_changes() -> None:
    packets = [echo(1000.0 + i, A, B, True, b"same" * 100, seq=i) for i in range(50)]
    assert run(detector(), packets) == []


def test_switches_turn_notes_off() -> None:
    off = NoticeSwitches(data_exfil=False, asym_payload_flow=False)
    assert run(detector(notices=off), transfer(20)) == []
    only_exfil = NoticeSwitches(asym_payload_flow=False)
    assert notes(run(detector(notices=only_exfil), transfer(20))) == [(DATA_EXFIL.name, A, B)]


def test_configurable_thresholds() -> None:
    det = detector(exfil_bytes_threshold=100, changed_requests_threshold=1)
    assert notes(run(det, transfer(3))) == [(DATA_EXFIL.name, A, B), (ASYM_PAYLOAD_FLOW.name, A, B)]


def burst_then_replies(n: int) -> list[IcmpPacket]:
    """All requests first, then the (correct) replies: the original miscounts these."""
    packets = [echo(1000.0 + i * 0.001, A, B, True, chunk(i), seq=i) for i in range(n)]
    packets += [echo(1001.0 + i * 0.001, B, A, False, chunk(i), seq=i) for i in range(n)]
    return packets


def test_matched_pairing_does_not_flag_correct_replies_after_a_burst() -> None:
    out = run(detector(), burst_then_replies(8))
    assert notes(out) == [(ASYM_PAYLOAD_FLOW.name, A, B)]


def test_last_request_pairing_reproduces_the_original() -> None:
    # Every reply is compared with the last request (chunk 7): 7 of 8 differ -> 7 > 5.
    out = run(detector(reply_pairing="last_request"), burst_then_replies(8))
    assert sorted(notes(out)) == [(ASYM_PAYLOAD.name, B, A), (ASYM_PAYLOAD_FLOW.name, A, B)]
    asym = next(n for n in out if n.note == ASYM_PAYLOAD.name)
    assert asym.n == 8 and asym.bytes_sent == 800


def test_replies_that_differ_from_their_request_fire_asym_payload_on_the_reply_flow() -> None:
    packets = []
    for i in range(10):
        packets.append(echo(1000.0 + i, A, B, True, b"ping", seq=i))
        packets.append(echo(1000.0 + i + 0.01, B, A, False, b"data" + chunk(i), seq=i))
    out = run(detector(), packets)
    assert notes(out) == [(ASYM_PAYLOAD.name, B, A)]
    assert out[0].n == 10


def test_unpaired_replies_fire_only_when_switched_on_and_are_not_compared() -> None:
    packets = [echo(1000.0 + i, B, A, False, chunk(i), seq=i) for i in range(10)]
    det = detector()
    assert run(det, packets) == []
    assert det.stats.unpaired_replies == 10
    det = detector(notices=NoticeSwitches(unpaired_echo_reply=True))
    out = run(det, packets)
    assert notes(out) == [(UNPAIRED_ECHO_REPLY.name, B, A)] * 10
    assert "(id 7, seq 3)" in out[3].msg
    assert out[3].ts == 1003.0  # immediately, at the reply's time


def test_a_reply_with_the_wrong_sequence_is_unpaired() -> None:
    det = detector(notices=NoticeSwitches(unpaired_echo_reply=True))
    out = run(det, [echo(1.0, A, B, True, b"x", seq=1), echo(1.1, B, A, False, b"x", seq=2)])
    assert notes(out) == [(UNPAIRED_ECHO_REPLY.name, B, A)]


def test_flows_expire_after_idle_timeout_in_packet_time() -> None:
    det = detector()
    out = run(det, transfer(20), flush=False)
    assert out == []
    # 299 s after the last packet: still open.
    assert list(det.process(echo(1001.9 + 299.0, C, B, True, b"x"))) == []
    assert det.flow_count == 3
    # A packet from another pair 301 s later moves the clock past the timeout.
    out = list(det.process(echo(1001.9 + 301.0, C, B, True, b"y")))
    assert notes(out) == [(DATA_EXFIL.name, A, B), (ASYM_PAYLOAD_FLOW.name, A, B)]
    assert out[0].ts == pytest.approx(1001.9 + 300.0)  # when the flow's timer ran out
    assert det.stats.flows_expired == 2  # (A,B) and (B,A)
    assert det.flow_count == 1


def test_advance_expires_without_packets() -> None:
    det = detector(idle_timeout=10.0)
    run(det, transfer(20), flush=False)
    assert list(det.advance(1005.0)) == []
    assert notes(det.advance(1012.0)) == [(DATA_EXFIL.name, A, B), (ASYM_PAYLOAD_FLOW.name, A, B)]


def test_a_flow_that_goes_idle_and_comes_back_is_a_new_flow() -> None:
    first = transfer(4, start=1000.0)
    second = transfer(4, start=2000.0)  # > 300 s later
    out = run(detector(), first + second)
    # 3 changes in each flow, never more than 5: the original forgets between the two.
    assert out == []


def test_eviction_at_max_flows_evaluates_the_evicted_flow() -> None:
    # All flows equally uninteresting so far (one packet each, no change): the least recently active goes.
    det = detector(max_flows=2)
    packets = [echo(1000.0, A, B, True, b"a"), echo(1010.0, C, B, True, b"x"), echo(1011.0, C, A, True, b"x")]
    run(det, packets, flush=False)
    assert {(f.src, f.dst) for f in det.flows()} == {(packed(C), packed(B)), (packed(C), packed(A))}
    # A qualifying flow that is evicted is evaluated first: its notices still fire, at eviction time.
    det = detector(max_flows=1)
    out = run(det, [*transfer(20, echo_back=False), echo(1011.0, C, A, True, b"x")], flush=False)
    assert notes(out) == [(DATA_EXFIL.name, A, B), (ASYM_PAYLOAD_FLOW.name, A, B)]
    assert out[0].ts == 1011.0
    assert det.stats.flows_evicted == 1 and det.flow_count == 1


def test_eviction_prefers_flows_that_are_not_accumulating_evidence() -> None:
    det = detector(max_flows=2)
    packets = transfer(20, echo_back=False)  # flow (A,B): 19 changed requests, the least recently active
    packets.append(echo(1010.0, C, B, True, b"x"))  # one packet, nothing suspicious
    packets.append(echo(1011.0, C, A, True, b"x"))  # a third flow: (C,B) goes, not (A,B)
    out = run(det, packets, flush=False)
    assert out == []  # (C,B) had nothing to report
    assert (packed(A), packed(B)) in {(f.src, f.dst) for f in det.flows()}
    assert det.stats.flows_evicted == 1


def test_recent_activity_protects_a_flow_from_eviction() -> None:
    det = detector(max_flows=2)
    packets = [echo(1.0, A, B, True, b"a"), echo(2.0, C, B, True, b"c"), echo(3.0, A, B, True, b"a2"),
               echo(4.0, C, A, True, b"d")]
    run(det, packets, flush=False)
    assert det.stats.flows_evicted == 1
    assert {(f.src, f.dst) for f in det._flows.values()} == {(packed(A), packed(B)), (packed(C), packed(A))}


def test_default_pings_are_ignored_entirely() -> None:
    linux = [echo(1000.0 + i, A, B, True, i.to_bytes(16, "little") + bytes(range(0x10, 0x38)), seq=i)
             for i in range(40)]
    windows = [echo(1000.0 + i, C, B, True, b"abcdefghijklmnopqrstuvwabcdefghi", seq=i) for i in range(40)]
    det = detector()
    assert run(det, linux + windows) == []
    assert det.stats.flows_created == 0
    assert det.stats.ignored_payloads == 80


def test_original_loose_linux_check_and_switch() -> None:
    # The original only checks the last 24 bytes; its first 32 bytes are free (issue 4 closes this).
    hidden = b"S" * 32 + bytes(range(0x20, 0x38))
    assert is_default_ping(hidden)
    assert not is_default_ping(b"S" * 32 + bytes(range(0x21, 0x39)))
    packets = [echo(1.0 + i, A, B, True, bytes([i]) * 32 + bytes(range(0x20, 0x38))) for i in range(40)]
    assert run(detector(), packets) == []
    assert notes(run(detector(ignore_default_pings=False), packets)) == [
        (DATA_EXFIL.name, A, B), (ASYM_PAYLOAD_FLOW.name, A, B)]


def test_allowlisted_hosts_are_never_reported() -> None:
    allow = AllowlistConfig(hosts=(ipaddress.ip_network("10.0.0.0/30"),))
    det = OriginalDetector(original(), allow)
    assert run(det, transfer(20)) == []
    allow_b = AllowlistConfig(hosts=(ipaddress.ip_network("10.0.0.2/32"),))
    assert run(OriginalDetector(original(), allow_b), transfer(20)) == []
    allow_other = AllowlistConfig(hosts=(ipaddress.ip_network("192.0.2.0/24"),))
    assert len(run(OriginalDetector(original(), allow_other), transfer(20))) == 2


def test_allowlisted_payloads_are_not_counted() -> None:
    allow = AllowlistConfig(payloads=tuple(chunk(i) for i in range(20)))
    det = OriginalDetector(original(), allow)
    assert run(det, transfer(20)) == []
    assert det.stats.ignored_payloads == 40


def test_reconfigure_keeps_flow_state_and_applies_new_thresholds() -> None:
    det = detector()
    run(det, transfer(4), flush=False)  # 3 changes: below the default threshold
    det.reconfigure(original(changed_requests_threshold=2), AllowlistConfig())
    assert notes(det.flush()) == [(ASYM_PAYLOAD_FLOW.name, A, B)]


def test_ipv6_echo_is_tracked_like_ipv4() -> None:
    out = run(detector(), transfer(20, src=V6A, dst=V6B))
    assert notes(out) == [(DATA_EXFIL.name, V6A, V6B), (ASYM_PAYLOAD_FLOW.name, V6A, V6B)]


def test_non_echo_types_are_counted_but_not_tracked() -> None:
    det = detector()
    pkt = IcmpPacket(1.0, packed(A), packed(B), False, 3, 3, -1, -1, b"\x00" * 32, 70)
    assert run(det, [pkt] * 10) == []
    assert det.stats.other_icmp == 10 and det.stats.flows_created == 0


def test_pending_requests_are_bounded() -> None:
    det = detector(max_pending_requests=100)
    run(det, transfer(1000, echo_back=False), flush=False)
    assert det.pending_count == 100
    assert det.stats.pending_evicted == 900


def test_time_going_backwards_does_not_rewind_the_clock() -> None:
    det = detector()
    run(det, [echo(2000.0, A, B, True, b"a"), echo(1000.0, C, B, True, b"b")], flush=False)
    assert det.now == 2000.0


def test_forked_workers_draw_different_uids_after_the_parent_drew_some() -> None:
    # uids come from a pool of os.urandom bytes: a worker forked after the parent drew from it must not start
    # with the parent's leftover bytes (two workers would name different flows alike, and their evidence files)
    flows.new_uid()  # the parent's pool now holds leftover random bytes
    children = []
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: one uid to the parent, then out at once
            os.write(write, flows.new_uid().encode())
            os._exit(0)
        os.close(write)
        children.append(os.read(read, 64).decode())
        os.close(read)
        os.waitpid(pid, 0)
    assert children[0] != children[1] and all(len(uid) == 18 for uid in children)
