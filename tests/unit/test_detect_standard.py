"""The standard profile: novel bytes, real-time alerting, tools, non-echo payloads, slow exfiltration.

Benign traffic comes from testkit/benign_corpus.py (exact byte layouts of real ping tools,
an hour or more each); it must raise nothing at all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import struct

import pytest

from icmpsensor.config.schema import AllowlistConfig, DetectionConfig
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.detect.profile import make_detector
from icmpsensor.detect.standard import Detector
from icmpsensor.notice.record import Notice
from testkit import benign_corpus, exfil_corpus
from testkit.synthetic import echo, packed, run

A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"
T0 = 1_700_000_000.0


def other(ts: float, src: str, dst: str, icmp_type: int, payload: bytes, code: int = 0) -> IcmpPacket:
    return IcmpPacket(ts, packed(src), packed(dst), False, icmp_type, code, -1, -1, payload, len(payload) + 42)


def detector(**overrides: object) -> Detector:
    det = make_detector(dataclasses.replace(DetectionConfig(), **overrides), AllowlistConfig())  # type: ignore[arg-type]
    assert isinstance(det, Detector)
    return det


def notes(notices: list[Notice]) -> list[tuple[str, str, str]]:
    return [(n.note.removeprefix("ICMP::ICMP_"), n.src, n.dst) for n in notices]


def chunk(i: int, size: int = 100) -> bytes:
    """Data that differs from one chunk to the next in (nearly) every byte, like a file's content."""
    out = b""
    while len(out) < size:
        out += hashlib.sha256(f"{i}/{len(out)}".encode()).digest()
    return out[:size]


def transfer(n: int, size: int = 100, start: float = T0, gap: float = 0.1, src: str = A, dst: str = B,
             replies: bool = True) -> list[IcmpPacket]:
    packets = []
    for i in range(n):
        packets.append(echo(start + i * gap, src, dst, True, chunk(i, size), seq=i))
        if replies:
            packets.append(echo(start + i * gap + 0.001, dst, src, False, chunk(i, size), seq=i))
    return packets


# -- benign traffic stays quiet -----------------------------------------------------------------


@pytest.mark.parametrize("accelerated", [True, False], ids=["c", "reference"])
def test_data_in_the_header_bytes_of_ipv6_errors_is_reported(accelerated: bool) -> None:
    """Four bytes an error in the unused field of ICMPv6 time exceeded messages, quoting a packet the receiver sent:
    the C path, which takes a right quote itself, must leave such a message to the reference (red team,
    2026-12-08: the header bytes were checked by neither)."""
    client, server, router = "2001:db8:1::10", "2001:db8:2::20", "2001:db8:1::1"
    udp = struct.pack("!HHHH", 50000, 33434, 8 + 64, 0) + bytes(64)
    quoted = struct.pack("!IHBB16s16s", 6 << 28, len(udp), 17, 1, packed(client), packed(server)) + udp
    packets = [IcmpPacket(T0 + i, packed(router), packed(client), True, 3, 0, -1, -1,
                          b"\0" + bytes([i % 256, 7, 9]) + quoted, len(quoted) + 70) for i in range(1, 200)]
    det = Detector(DetectionConfig(), AllowlistConfig(), accelerated=accelerated)
    assert ("NonEchoPayload", router, client) in notes(run(det, packets))


@pytest.mark.parametrize("accelerated", [True, False], ids=["c", "reference"])
def test_a_traceroute_past_the_mtu_is_quiet_where_routers_quote_its_first_fragments(accelerated: bool) -> None:
    """`traceroute HOST 2000` for an hour: each UDP probe (no DF) leaves in two fragments, and the routers on the way
    answer the first with time exceeded, quoting (as Linux does, 548 bytes) the fragment's header, whose total length
    is the fragment's, and the UDP header, whose length is the whole datagram's (red team, 2026-12-08: NonEchoPayload
    and ExfilSummary from each router). A host whose reassembly timed out quotes the first fragment as well."""
    routers = ["192.0.2.1", "192.0.2.2", "198.51.100.7", "203.0.113.9"]
    packets = []
    for run_index in range(60):
        for hop, router in enumerate(routers, 1):
            for probe in range(3):
                port = 33434 + (hop - 1) * 3 + probe
                udp = struct.pack("!HHHH", 40000 + run_index, port, 8 + 1972, 0) + bytes(1972)
                header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 1500, (run_index * 64 + port) & 0xFFFF, 0x2000,
                                     1, 17, 0, packed(A), packed(B))
                header = header[:10] + struct.pack("!H", benign_corpus.checksum(header)) + header[12:]
                quote = bytes(4) + (header + udp[:1480])[:548]
                ts = T0 + run_index * 60 + hop + probe * 0.1
                packets.append(other(ts, router, A, 11, quote))
        reassembly = bytes(4) + (header + udp[:1480])[:548]
        packets.append(other(T0 + run_index * 60 + 30, B, A, 11, reassembly, code=1))
    det = Detector(DetectionConfig(), AllowlistConfig(), accelerated=accelerated)
    assert notes(run(det, packets)) == []
    assert det.stats.novel_bytes == 0



@pytest.mark.parametrize("name", sorted(benign_corpus.BENIGN_CASES))
def test_benign_tools_raise_nothing(name: str) -> None:
    det = detector()
    assert run(det, benign_corpus.BENIGN_CASES[name]()) == []
    assert det.stats.novel_bytes == 0


# -- novelty and real-time alerting -----------------------------------------------------------------


def test_exfil_fires_in_real_time_once_then_a_summary_at_flow_end() -> None:
    det = detector()
    out = run(det, transfer(20), flush=False)
    # 100 novel bytes per request (each chunk differs from the last in every position that matters):
    # the 2nd request reaches small_secret_bytes with two payloads, the 6th change crosses the
    # changed-requests threshold.
    cfg = DetectionConfig()
    crossing = max(cfg.small_secret_payloads, -(-cfg.small_secret_bytes // 100))
    assert notes(out) == [("DataExfil", A, B), ("AsymPayloadFlow", A, B)]
    exfil = out[0]
    assert exfil.ts == pytest.approx(T0 + 0.1 * (crossing - 1), abs=1e-6)  # that request, not the flow's end
    assert exfil.novel_bytes == 100 * crossing and exfil.n == crossing
    summary = det.flush()
    assert notes(summary) == [("ExfilSummary", A, B)]
    final = summary[0]
    assert final.bytes_sent == 2000 and final.n == 20 and final.bytes_received == 2000
    assert final.uid == exfil.uid
    assert final.msg.startswith("Exfil of size 2.00 KB (")
    assert "Novel bytes: " in final.sub


def test_flow_end_alerting_raises_at_the_end_without_a_summary() -> None:
    det = detector(alerting="flow_end")
    assert run(det, transfer(20), flush=False) == []
    assert notes(det.flush()) == [("DataExfil", A, B), ("AsymPayloadFlow", A, B)]


def test_repeated_payloads_are_not_novel() -> None:
    packets = [echo(T0 + i, A, B, True, chunk(0, 200), seq=i) for i in range(500)]
    det = detector()
    assert run(det, packets) == []
    assert det.stats.novel_bytes == 200  # the first one only


def test_a_constant_payload_above_the_threshold_alerts_once() -> None:
    # The documented trade-off of novel_bytes_threshold 256: an unknown constant payload larger than
    # that is reported once (its first packet), never again.
    packets = [echo(T0 + i, A, B, True, chunk(0, 300), seq=i) for i in range(500)]
    det = detector()
    assert notes(run(det, packets)) == [("DataExfil", A, B), ("ExfilSummary", A, B)]
    assert det.stats.novel_bytes == 300


def test_a_small_secret_in_a_handful_of_packets_is_reported() -> None:
    # Below novel_bytes_threshold but at least small_secret_bytes, carried by more than one payload:
    # a credential or a key in a few requests (a constant payload is one payload, however often sent).
    cfg = DetectionConfig()
    assert cfg.small_secret_bytes < cfg.novel_bytes_threshold
    for per, count in ((100, 2), (40, 4), (cfg.small_secret_bytes // 2, 2)):
        packets = [echo(T0 + i, A, B, True, chunk(i, per), seq=i) for i in range(count)]
        out = run(detector(), packets, flush=False)
        assert notes(out) == [("DataExfil", A, B)], (per, count)
        assert out[0].ts == T0 + count - 1 and out[0].novel_bytes == per * count


def test_below_the_small_secret_floor_or_in_one_payload_nothing_is_reported() -> None:
    floor = DetectionConfig().small_secret_bytes
    few = [echo(T0 + i, A, B, True, chunk(i, (floor - 1) // 3), seq=i) for i in range(3)]
    assert run(detector(), few) == []
    # one payload of the same size, sent once or as a constant health check: the documented trade-off
    once = [echo(T0, A, B, True, chunk(0, 200), seq=1)]
    assert run(detector(), once) == []
    constant = [echo(T0 + i, A, B, True, chunk(0, 200), seq=i) for i in range(100)]
    assert run(detector(), constant) == []
    # the switch: 0 turns the rule off
    two = [echo(T0 + i, A, B, True, chunk(i, 100), seq=i) for i in range(2)]
    assert run(detector(small_secret_bytes=0), two) == []


COLLECTOR, COLLECTOR6 = "185.243.115.84", "2001:db8:beef::84"
# Peers a payload goes to first, so that the same payload to the collector after it "was sent lately": one the
# allowlist names, and addresses no collector has (loopback, unspecified, multicast, broadcast, the sender itself)
DECOYS = {"allowlisted": ("10.20.0.10", COLLECTOR), "loopback": ("127.0.0.1", COLLECTOR),
          "unspecified": ("0.0.0.0", COLLECTOR), "multicast": ("224.0.0.1", COLLECTOR),
          "broadcast": ("255.255.255.255", COLLECTOR), "itself": (A, COLLECTOR),
          "v6 all-nodes": ("ff02::1", COLLECTOR6), "v6 loopback": ("::1", COLLECTOR6),
          "v6 unspecified": ("::", COLLECTOR6)}


@pytest.mark.parametrize("accelerated", [True, False], ids=["C", "Python"])
@pytest.mark.parametrize("decoy", sorted(DECOYS))
def test_a_payload_sent_first_to_a_decoy_is_still_novel_to_the_collector(decoy: str, accelerated: bool) -> None:
    """Each chunk sent first to a peer whose payloads explain nothing (an allowlisted host, loopback, unspecified,
    multicast, broadcast, the sender itself), then to the collector: the collector's flow is reported. Before,
    the host's memory of its last payloads ("one it sends to every peer counts once") took the decoy's copy as
    the sender's own, and the collector's flow got nothing: no notice at all past an allowlisted decoy, and
    otherwise every notice named the decoy only (red team, cases 64, 65, 86-93)."""
    first, collector = DECOYS[decoy]
    src = A if ":" not in collector else "2001:db8::1"
    if decoy == "itself":
        first = src
    allowlist = AllowlistConfig(hosts=(ipaddress.ip_network(DECOYS["allowlisted"][0]),))
    det = Detector(DetectionConfig(), allowlist, accelerated=accelerated)
    packets = []
    for i in range(40):
        packets.append(echo(T0 + i, src, first, True, chunk(i, 64), seq=i))
        packets.append(echo(T0 + i + 0.01, src, collector, True, chunk(i, 64), seq=i))
        packets.append(echo(T0 + i + 0.02, collector, src, False, chunk(i, 64), seq=i))
    raised = notes(run(det, packets))
    assert ("DataExfil", src, collector) in raised, raised


def test_a_constant_payload_is_not_novel_again_in_the_next_flow() -> None:
    # One ping every 10 minutes with the same unknown payload: every ping is a new flow (idle 300 s),
    # but the pair remembers the payload, so only the first one is novel.
    packets = [echo(T0 + i * 600, A, B, True, b"monitoring probe v2", seq=i) for i in range(144)]
    det = detector()
    assert run(det, packets) == []
    assert det.stats.novel_bytes == len(b"monitoring probe v2")


def test_a_counter_in_the_payload_counts_only_its_bytes() -> None:
    packets = [echo(T0 + i, A, B, True, struct.pack(">I", i) + b"probe" * 12, seq=i) for i in range(50)]
    det = detector()
    run(det, packets)
    assert det.stats.novel_bytes < 64 + 50 * 2


def test_single_large_novel_payload() -> None:
    payload = bytes(range(256)) * 5 + b"\x17" * 120  # 1400 bytes that are no benign template
    out = run(detector(), [echo(T0, A, B, True, payload), echo(T0 + 0.01, B, A, False, payload)])
    assert notes(out) == [("DataExfil", A, B), ("ExfilSummary", A, B)]


def test_data_carried_in_echo_replies() -> None:
    packets = []
    for i in range(10):
        packets.append(echo(T0 + i, A, B, True, b"", seq=i))
        packets.append(echo(T0 + i + 0.01, B, A, False, chunk(i, 200), seq=i))
    out = run(detector(), packets)
    assert ("DataExfil", B, A) in notes(out) and ("AsymPayload", B, A) in notes(out)
    assert all(n.src == B for n in out)


def test_unsolicited_replies_carrying_data() -> None:
    out = run(detector(), [echo(T0 + i, B, A, False, chunk(i, 200), seq=i) for i in range(5)])
    assert ("DataExfil", B, A) in notes(out)


def test_data_hidden_in_the_free_half_of_a_linux_ping() -> None:
    # The original's check looks only at the last 24 bytes: here the first 32 bytes carry data.
    tail = bytes(range(0x20, 0x38))
    packets = [echo(T0 + i, A, B, True, chunk(i, 32) + tail, seq=i) for i in range(30)]
    out = run(detector(), packets)
    assert ("DataExfil", A, B) in notes(out)


def test_a_replayed_ping_timestamp_is_novel() -> None:
    good = benign_corpus.iputils_ping(start_ts=T0, count=5)
    frozen = [p for p in good if p.is_echo_request]
    replayed = [dataclasses.replace(frozen[0], ts=T0 + 10 + i, seq=10 + i) for i in range(3)]
    det = detector()
    run(det, [*frozen, replayed[0]], flush=False)
    # The replayed timestamp (older than the last one seen) is not the ping template: its timestamp
    # fields differ from the previous payload's and are charged as the bits by which they moved off the
    # capture clock (capacity.field_bits), not as free template bytes.
    flow = det.flows()[0]
    assert flow.channels is not None and flow.channels.carry + 8 * det.stats.novel_bytes > 0


def test_echo_with_a_non_zero_code_and_other_types_with_extra_bytes() -> None:
    packets = [echo(T0, A, B, True, b"last chunk, padded" + b"\0" * 38, code=2),
               other(T0 + 1, A, B, 13, struct.pack("!HHIII", 1, 1, 3_600_000, 0, 0) + b"exfil"),
               other(T0 + 2, C, B, 42, b"\x01\x02\x03")]
    out = run(detector(), packets)
    assert ("NonEchoPayload", A, B) in notes(out) and ("NonEchoPayload", C, B) in notes(out)
    first = next(n for n in out if n.src == A and n.note.endswith("NonEchoPayload"))
    assert "echo with code 2" in first.msg


def test_echo_replies_with_a_non_zero_code_carry_it() -> None:
    # A replier that answers a ping with its payload echoed but a byte of data as the code (RFC 792: code 0)
    packets = []
    for i, byte in enumerate(b"secret"):
        request = echo(T0 + i, A, B, True, benign_corpus.windows_payload(32), ident=1, seq=i)
        packets += [request, echo(T0 + i + 0.001, B, A, False, request.payload, ident=1, seq=i, code=byte)]
    out = run(detector(), packets)
    assert ("NonEchoPayload", B, A) in notes(out)
    assert not [n for n in out if n.src == A]


def test_a_reply_that_copies_its_requests_code_is_an_echo_of_it() -> None:
    # Linux answers an echo request with a code with that code (net/ipv4/icmp.c icmp_echo copies the header):
    # the requester chose the code, the replier only echoes it
    packets = []
    for i in range(6):
        request = echo(T0 + i, A, B, True, b"chunk %d of the file, with its data" % i, ident=1, seq=i, code=3)
        packets += [request, echo(T0 + i + 0.001, B, A, False, request.payload, ident=1, seq=i, code=3)]
    out = run(detector(), packets)
    assert ("NonEchoPayload", A, B) in notes(out)
    assert not [n for n in out if n.src == B]


def test_error_storm_raises_nothing_but_a_forged_quote_does() -> None:
    storm = benign_corpus.error_storm(count=200)
    assert run(detector(), storm) == []
    forged = [dataclasses.replace(p, payload=p.payload[:4] + b"\x65" + p.payload[5:]) for p in storm[:5]
              if p.icmp_type == 3]
    assert forged and ("NonEchoPayload" in {n for n, _, _ in notes(run(detector(), forged))})


def test_slow_exfil_over_a_day() -> None:
    # 200 novel bytes every 10 minutes: every packet is its own flow (idle timeout 300 s), no flow
    # reaches 256 novel bytes, but 2 kB accumulate within the 24 h window.
    packets = [echo(T0 + i * 600, A, B, True, chunk(i, 200), seq=i) for i in range(30)]
    out = run(detector(), packets)
    slow = [n for n in out if n.note.endswith("SlowExfil")]
    assert len(slow) == 1 and (slow[0].src, slow[0].dst) == (A, B)
    assert slow[0].ts == pytest.approx(T0 + 9 * 600)  # the 10th packet brings the pair to 2000 bytes
    assert not [n for n in out if n.note.endswith("DataExfil")]


def test_slow_exfil_window_is_configurable() -> None:
    packets = [echo(T0 + i * 600, A, B, True, chunk(i, 200), seq=i) for i in range(30)]
    out = run(detector(slow_exfil_window=3600.0), packets)
    assert not [n for n in out if n.note.endswith("SlowExfil")]


def test_allowlisted_hosts_and_payloads() -> None:
    allow = AllowlistConfig(hosts=(ipaddress.ip_network("10.0.0.0/30"),))
    det = Detector(DetectionConfig(), allow)
    assert run(det, transfer(20)) == []
    allow = AllowlistConfig(payloads=tuple(chunk(i) for i in range(20)))
    assert run(Detector(DetectionConfig(), allow), transfer(20)) == []


def test_switches() -> None:
    off = dataclasses.replace(DetectionConfig().notices, data_exfil=False, asym_payload_flow=False)
    assert run(detector(notices=off), transfer(20)) == []


def test_reconfigure_keeps_state() -> None:
    det = detector(small_secret_bytes=0)
    run(det, transfer(1), flush=False)
    assert det.flow_count == 2
    det.reconfigure(dataclasses.replace(DetectionConfig(), novel_bytes_threshold=100, small_secret_bytes=0),
                    AllowlistConfig())
    out = run(det, [echo(T0 + 1, A, B, True, chunk(99), seq=3)])  # a new chunk (a repeated one counts once)
    assert ("DataExfil", A, B) in notes(out)


# -- exfiltration and tunnel tools are caught ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(exfil_corpus.EXFIL_CASES))
def test_exfil_tools_are_reported_naming_the_right_hosts(name: str) -> None:
    src, dst = exfil_corpus.EXPECTED_SOURCE[name]
    out = run(detector(), exfil_corpus.EXFIL_CASES[name]())
    named = {(n.src, n.dst) for n in out if not n.note.endswith("ExfilSummary")}
    assert (src, dst) in named, notes(out)


# -- notice text: a snapshot, made only when read ------------------------------------------------


def test_a_notice_text_is_the_flow_as_raised_made_only_when_read() -> None:
    det = detector()
    out = run(det, transfer(2), flush=False)
    (exfil,) = [n for n in out if n.note.endswith("DataExfil")]
    assert exfil._text is not None  # not made yet: a folded notice never pays for it
    run(det, transfer(5, start=T0 + 1), flush=False)  # the flow goes on
    assert exfil._text is not None
    assert exfil.msg.startswith("Exfil of 200.00 bytes of novel data (200.00 bytes of payload) seen from")
    assert exfil._text is None
    assert "Event count: 2, Novel bytes: 200, Channels: payload 200.00 bytes" in exfil.sub
    assert exfil.n == 2 and exfil.novel_bytes == 200


def test_an_alerted_flows_pair_memory_is_made_once_when_the_flow_ends() -> None:
    """A notice storm: one-packet alerted flows from ever new sources. The pair a DataExfil reports is marked (no
    SlowExfil for the same bytes) when its flow ends, where the pair's memory is made anyway, not at once as well:
    made at the notice and again at the flow's end (forgotten in between by the storm's other pairs), each pair
    cost two memories and two evictions of the bounded table."""
    storm = [echo(T0 + i * 0.001, f"100.64.{i // 250}.{i % 250}", B, True, chunk(i, 500), seq=1) for i in range(600)]
    det = detector(max_pairs=50)
    out = run(det, storm)
    assert sum(n.note.endswith("DataExfil") for n in out) == 600
    assert det.stats.pairs_evicted == 600 - 50


def storm_between(slow: list[IcmpPacket], per_gap: int, size: int) -> list[IcmpPacket]:
    """`slow` with `per_gap` one-packet flows of `size` novel bytes from ever new spoofed sources to C after each of
    its packets (within a second of it), in time order."""
    packets: list[IcmpPacket] = []
    for k, pkt in enumerate(slow):
        packets.append(pkt)
        for j in range(per_gap):
            i = k * per_gap + j
            packets.append(echo(pkt.ts + 0.5 + j * 0.001, f"100.{64 + i // 62500}.{i // 250 % 250}.{i % 250}", C,
                                True, chunk(10_000 + i, size), seq=1))
    return packets


@pytest.mark.parametrize("accelerated", [True, False], ids=["c", "reference"])
def test_a_storm_of_alerted_flows_does_not_erase_a_slow_exfiltrations_pair_memory(accelerated: bool) -> None:
    """Red team (2026-12-06, hostile load): spoofed alerting packets, more new pairs between two requests of a slow
    exfiltration than the pair table holds, made its pair the least recently active with the fewest bytes at every
    eviction: forgotten, no SlowExfil. A storm's pairs are reported already (each flow's DataExfil): their memory
    can raise nothing within the window, and goes first."""
    slow = [echo(T0 + i * 600, A, B, True, chunk(i, 200), seq=i) for i in range(12)]  # 2,000 bytes at the 10th
    cfg = dataclasses.replace(DetectionConfig(), max_pairs=50)
    det = Detector(cfg, AllowlistConfig(), accelerated=accelerated)
    out = run(det, storm_between(slow, 120, 500))
    assert sum(n.note.endswith("DataExfil") for n in out) == 12 * 120  # every storm flow alerted
    assert det.stats.pairs_evicted >= 12 * 120 - 50  # the table churned over and over
    slow_notices = [n for n in out if n.note.endswith("SlowExfil")]
    assert [(n.src, n.dst) for n in slow_notices] == [(A, B)], notes(out)[-3:]
    (alone,) = [n for n in run(Detector(cfg, AllowlistConfig(), accelerated=accelerated), slow)
                if n.note.endswith("SlowExfil")]
    assert slow_notices[0].ts == alone.ts  # when it comes without the storm (the 10th or 11th request)


@pytest.mark.parametrize("accelerated", [True, False], ids=["c", "reference"])
@pytest.mark.parametrize("reported", [0.0, 300.0, 300.5, 300, 301], ids=["never", "until-now", "past-now",
                                                                        "until-now-int", "past-now-int"])
def test_a_full_pair_table_forgets_a_pair_reported_past_now_first(accelerated: bool, reported: float | int) -> None:
    """The eviction's rule at its edge: a pair whose report runs until the very time of the eviction (a flow's end,
    300 s after its packet) can raise SlowExfil again from then on, and is ranked as never reported (its bytes);
    one reported past it goes first whatever its bytes. (A time as an int is compared as Python compares it.)"""
    from icmpsensor.detect.standard import PairMemory
    from testkit.synthetic import packed

    cfg = dataclasses.replace(DetectionConfig(), max_pairs=2)
    det = Detector(cfg, AllowlistConfig(), accelerated=accelerated)
    older, fewer = (packed(A), packed(C)), (packed(B), packed(C))
    until = (int(T0) + reported if isinstance(reported, int) else T0 + reported) if reported else 0.0
    det._pairs[older] = PairMemory(novel=500, slow_alerted_until=until)  # type: ignore[arg-type]
    det._pairs[fewer] = PairMemory(novel=100)
    run(det, [echo(T0, "10.0.0.9", B, True, chunk(1, 200), seq=1), echo(T0 + 400, B, A, False, b"")], flush=False)
    assert det.stats.pairs_evicted == 1
    forgotten = older if reported > 300.0 else fewer
    assert forgotten not in det._pairs and len(det._pairs) == 2


@pytest.mark.parametrize("accelerated", [True, False], ids=["c", "reference"])
def test_a_storm_of_one_peer_sources_does_not_erase_a_spreading_hosts_memory(accelerated: bool) -> None:
    """The same storm against ExfilSpread: a host sending 200 novel bytes to a new peer every 10 minutes (16 peers
    and 1 kB in the window), four peers along when the storm starts, was pushed after each of its requests to the
    least recently active hosts by more new spoofed sources than the host table holds, and forgotten with the
    oldest eighth: its peers never added up. A storm's sources have one peer each; the hosts forgotten are those
    with the fewest peers of the least recently active quarter. (Before its second peer the spreader is one of
    them: docs/detection.md, known limits.)"""
    spreader = [echo(T0 + i * 600, A, f"10.1.0.{i}", True, chunk(i, 200), seq=i) for i in range(20)]
    cfg = dataclasses.replace(DetectionConfig(), max_pairs=50)
    det = Detector(cfg, AllowlistConfig(), accelerated=accelerated)
    out = run(det, spreader[:4] + storm_between(spreader[4:], 120, 500))
    assert det.stats.spread_hosts_evicted >= 16 * 120 - 50
    spread = [n for n in out if n.note.endswith("ExfilSpread") and n.src == A]  # (C's from the storm's sources too)
    assert [n.dst for n in spread] == ["10.1.0.15"], notes(out)[-3:]  # its 16th peer, as without the storm
    assert spread[0].ts == T0 + 15 * 600


@pytest.mark.parametrize("accelerated", [True, False], ids=["c", "reference"])
def test_a_storm_of_alerted_flows_past_the_flow_table_does_not_split_a_flow_under_the_thresholds(
        accelerated: bool) -> None:
    """A storm faster than the flow table turns over (20,000 alerting packets a second fill max_flows, 100,000, in
    5 s) kept its alerted one-packet flows above all, and evicted the flow accumulating novel bytes under the
    thresholds whenever it was among the least recently active: each of its requests a flow of its own, 200 bytes
    each, never past 256 (DataExfil). An alerted flow's story is told: it goes before a flow with something untold,
    after one with nothing at all."""
    real = [echo(T0 + i * 10, A, B, True, chunk(i, 200), seq=i) for i in range(3)]
    cfg = dataclasses.replace(DetectionConfig(), max_flows=50)
    det = Detector(cfg, AllowlistConfig(), accelerated=accelerated)
    out = run(det, storm_between(real, 120, 500))
    assert det.stats.flows_evicted >= 2 * 120
    told = [n for n in out if n.src == A and n.note.endswith("DataExfil")]
    assert [n.ts for n in told] == [T0 + 10], notes(out)[-3:]  # 400 novel bytes at its 2nd request


@pytest.mark.parametrize("accelerated", [True, False], ids=["c", "reference"])
def test_an_alerted_flow_outlives_a_storms_one_packet_alerted_flows(accelerated: bool) -> None:
    """Once told, the flow of the test above is alerted like the storm's own flows; ranked as theirs, the oldest went
    first, and the storm split it after its notice: each later request a flow of its own, told again, and
    AsymPayloadFlow (more than 5 changed requests in one flow) never came. Among alerted flows, the one with more
    packets is kept: a storm must send as many into each spoofed flow to push it out."""
    real = [echo(T0 + i * 10, A, B, True, chunk(i, 200), seq=i) for i in range(8)]
    cfg = dataclasses.replace(DetectionConfig(), max_flows=50)
    det = Detector(cfg, AllowlistConfig(), accelerated=accelerated)
    out = run(det, storm_between(real, 120, 500))
    assert det.stats.flows_evicted >= 7 * 120
    alone = run(Detector(cfg, AllowlistConfig(), accelerated=accelerated), real)
    told = [(n.note, n.ts) for n in out if n.src == A]
    # as without the storm, but its ExfilSummary's time (the end of input: the storm's last packet, not its own)
    assert [note for note, _ in told] == [n.note for n in alone] == [
        "ICMP::ICMP_DataExfil", "ICMP::ICMP_AsymPayloadFlow", "ICMP::ICMP_ExfilSummary"], told
    assert told[:2] == [(n.note, n.ts) for n in alone][:2]


def test_a_pair_reported_by_its_flow_raises_no_slow_exfil_for_the_same_bytes_after_the_flow_ends() -> None:
    """The mark reaches the pair's memory when the flow ends: the pair's next flows, under the thresholds, add up
    past slow_exfil_min_bytes within the window without a SlowExfil; after the window they may."""
    big = [echo(T0 + i * 0.1, A, B, True, chunk(i, 200), seq=i) for i in range(5)]  # 1,000 novel bytes: DataExfil
    later = [echo(T0 + 400 + i * 600, A, B, True, chunk(100 + i, 200), seq=100 + i) for i in range(12)]
    det = detector(slow_exfil_window=3600.0)
    out = run(det, big + later)
    assert [n.note.split("_", 1)[1] for n in out if not n.note.endswith("Summary")] == ["DataExfil"]
    after = [echo(T0 + 3700 + i * 600, A, B, True, chunk(200 + i, 200), seq=200 + i) for i in range(12)]
    assert any(n.note.endswith("SlowExfil") for n in run(det, after))


@pytest.mark.parametrize("accelerated", [True, False], ids=["C", "Python"])
def test_windows_pcs_behind_one_nat_pinging_now_and_then_raise_nothing(accelerated: bool) -> None:
    """A sensor outside a NAT: 40 Windows PCs each run `ping -n 4` at random times over two hours, all from the NAT's
    address. ping.exe uses identifier 1 (the NAT moves a run to the next free one while another is in progress) and
    one sequence counter per machine: a run after a quiet gap continues another PC's counter, which may be behind
    the last one seen as well as ahead. Before, a counter behind the last was charged (a forward one was a new run):
    DataExfil after ~77 minutes on the seq channel (red team, case 100)."""
    import random

    rng = random.Random(100)
    nat, target = "198.51.100.5", "8.8.8.8"
    counters = [rng.randrange(1, 0xFFFF) for _ in range(40)]
    starts = sorted((rng.uniform(0, 7200), rng.randrange(40)) for _ in range(400))
    held: dict[int, float] = {}  # NAT identifier -> until when its mapping lives (30 s after the run's last request)
    packets: list[IcmpPacket] = []
    for start, pc in starts:
        ident = next(i for i in range(1, 0x10000) if held.get(i, 0.0) <= start)
        held[ident] = start + 3 + 30
        packets += benign_corpus.windows_ping(benign_corpus.Endpoints(nat, target), T0 + start, count=4,
                                              ident=ident, seq0=counters[pc])
        counters[pc] = (counters[pc] + 4) & 0xFFFF
    packets.sort(key=lambda p: p.ts)
    det = Detector(DetectionConfig(), AllowlistConfig(), accelerated=accelerated)
    assert run(det, packets) == []
