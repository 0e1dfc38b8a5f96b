"""The seed captures (../shared/seed) decoded in-process: what each holds, and the tool recognised in it.

Frame and ICMP type counts, read off the captures, through both decoders (testkit.decoding.Run);
then the production decoder's packets through the tool tracker, compared with what
testkit/exfil_corpus.py builds from the same sample file with each tool's layout.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from pathlib import Path

import pytest

from icmpsensor.decode.fast import Decoder
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.decode.stats import DecodeStats
from icmpsensor.detect.tunnels import ToolMatch, ToolTracker, recognise
from testkit import craft
from testkit import exfil_corpus as corpus
from testkit.craft import addr
from testkit.decoding import Run

pytestmark = pytest.mark.seed

SEED_TEXT = "sample-text-file.txt"


def seed_packets(seed_dir: Path, name: str) -> list[IcmpPacket]:
    linktype, frames = craft.read_capture(seed_dir / name)
    decoder = Decoder(linktype, DecodeStats())
    return [p for ts, frame, wire_len in frames if (p := decoder.decode(ts, frame, wire_len)) is not None]


def observe_all(packets: Iterable[IcmpPacket]) -> list[tuple[IcmpPacket, ToolMatch]]:
    tracker = ToolTracker()
    return [(p, m) for p in packets if (m := tracker.observe(p)) is not None]


def requests(packets: Iterable[IcmpPacket]) -> list[IcmpPacket]:
    return [p for p in packets if p.icmp_type == 8]


def text(packed: bytes) -> str:
    return str(ipaddress.ip_address(packed))


# -- decoding --------------------------------------------------------------------------------------

# capture -> (frames, ICMP types, skipped); none of them has an error or a fragment.
SEED_COUNTS = {
    "icmp-file-transfer-sample-text-file-2mb.pcap": (
        32865, {"v4:8": 32768, "v4:0": 87}, {"not_icmp": 8, "not_ip": 2}),  # 8 UDP, 2 ARP
    "icmp-file-transfer-sample-text-file-448-bytes.pcap": (
        26, {"v4:8": 9, "v4:0": 8, "v4:3": 1}, {"not_icmp": 8}),
    "hping3-sample-text-file-448-bytes-5-sec-95-byte-packets.pcap": (
        12, {"v4:8": 5, "v4:0": 5}, {"not_ip": 2}),
    "pyexfil-sample-text-file-448-bytes.pcap": (12, {"v4:8": 5, "v4:0": 5}, {"not_ip": 2}),
    "EgressAssess-sample-text-file.pcap": (310, {"v4:8": 155, "v4:0": 155}, {}),
}


@functools.cache
def decode_capture(path: Path) -> Run:
    """Both decoders' run over a capture, once per capture (the 2 MB one takes seconds; the tests only read it)."""
    linktype, frames = craft.read_capture(path)
    return Run(linktype, [(ts, frame) for ts, frame, _ in frames])


def test_every_reference_capture_decodes_without_error(seed_dir: Path) -> None:
    captures = sorted(seed_dir.glob("*.pcap"))
    assert {p.name for p in captures} >= set(SEED_COUNTS)
    for path in captures:
        stats = decode_capture(path).stats
        assert not stats.errors and not stats.fragments, (path.name, stats.as_dict())
        if path.name in SEED_COUNTS:
            data = stats.as_dict()
            assert (data["frames"], data["icmp_types"], data["skipped"]) == SEED_COUNTS[path.name], path.name


def test_2mb_capture_requests_and_replies_are_between_the_two_hosts(seed_dir: Path) -> None:
    run = decode_capture(seed_dir / "icmp-file-transfer-sample-text-file-2mb.pcap")
    a, b = addr("10.0.2.15"), addr("54.144.215.114")
    requests = [p for p in run.decoded if p.is_echo_request]
    replies = [p for p in run.decoded if p.is_echo_reply]
    assert len(requests) == 32768 and len(replies) == 87
    assert {(p.src, p.dst) for p in requests} == {(a, b)}
    assert {(p.src, p.dst) for p in replies} == {(b, a)}
    assert {len(p.payload) for p in requests} == {56}
    assert all(p.ts > 1.6e9 for p in run.decoded)


# -- the tools in them -----------------------------------------------------------------------------


def test_seed_pyexfil_every_packet_and_layout(seed_dir: Path) -> None:
    packets = seed_packets(seed_dir, "pyexfil-sample-text-file-448-bytes.pcap")
    matches = observe_all(packets)
    assert len(matches) == len(packets) == 10
    assert {m.tool for _, m in matches} == {"pyexfil"}
    assert "file 'sample-text-file.txt', crc32 4268995207, 3 packets" in matches[0][1].evidence
    built = corpus.pyexfil((seed_dir / SEED_TEXT).read_bytes(), file_name=SEED_TEXT)
    assert [(p.ident, p.seq, p.payload) for p in requests(built)] == \
        [(p.ident, p.seq, p.payload) for p in requests(packets)]


def test_seed_egress_assess_one_request_among_zero_pings(seed_dir: Path) -> None:
    packets = seed_packets(seed_dir, "EgressAssess-sample-text-file.pcap")
    matches = observe_all(packets)
    assert {m.tool for _, m in matches} == {"egress-assess"}
    assert [(text(p.src), len(p.payload)) for p, _ in matches] == [("192.168.86.36", 1444), ("54.144.215.114", 1444)]
    exfil = matches[0][0]
    built = requests(corpus.egress_assess((seed_dir / SEED_TEXT).read_bytes(), file_name=SEED_TEXT))
    assert [(p.ident, p.seq, p.payload) for p in built] == [(exfil.ident, exfil.seq, exfil.payload)]


def test_seed_icmp_file_transfer_448_end_marker_and_layout(seed_dir: Path) -> None:
    packets = seed_packets(seed_dir, "icmp-file-transfer-sample-text-file-448-bytes.pcap")
    end = [p for p in packets if p.icmp_code == 2]
    assert len(end) == 1 and recognise(end[0]) == ToolMatch(
        "icmp-file-transfer", "Icmp-File-Transfer end-of-file packet: echo request code 2, 56 zeros")
    assert {m.tool for _, m in observe_all(packets)} == {"icmp-file-transfer"}
    built = corpus.icmp_file_transfer((seed_dir / SEED_TEXT).read_bytes(), pid=0x8C5D)
    assert [(p.ident, p.seq, p.icmp_code, p.payload) for p in requests(built)] == \
        [(p.ident, p.seq, p.icmp_code, p.payload) for p in requests(packets)]


def test_seed_icmp_file_transfer_2mb_without_end_marker(seed_dir: Path) -> None:
    # The transfer died at seq 32767 (the tool packs seq as a signed short): no code-2 packet.
    packets = seed_packets(seed_dir, "icmp-file-transfer-sample-text-file-2mb.pcap")
    matches = observe_all(packets)
    assert {m.tool for _, m in matches} == {"icmp-file-transfer"}
    assert len(matches) >= 32_000


def test_seed_hping3_file_mode(seed_dir: Path) -> None:
    packets = seed_packets(seed_dir, "hping3-sample-text-file-448-bytes-5-sec-95-byte-packets.pcap")
    matches = observe_all(packets)
    assert {m.tool for _, m in matches} == {"hping3-file"}
    assert [p.seq for p, _ in matches] == [0x0200, 0x0300, 0x0400]
    assert "zero-padded" in matches[-1][1].evidence
    built = corpus.hping3_file((seed_dir / SEED_TEXT).read_bytes(), count=5, interval=5.0,
                               pid=corpus.swap16(packets[0].ident))
    assert [(p.ident, p.seq, p.payload) for p in requests(built)] == \
        [(p.ident, p.seq, p.payload) for p in requests(packets)]
