"""Evidence of alerted flows: the pcap decodes to the flow's packets, the .bin is the file that left."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pcapy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from icmpsensor.config.schema import Config
from icmpsensor.decode.fast import Decoder
from icmpsensor.decode.linktypes import LINKTYPE_RAW
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.decode.stats import DecodeStats
from icmpsensor.notice.record import Notice
from icmpsensor.notice.types import EXFIL_SUMMARY
from icmpsensor.output import evidence as evidence_module
from icmpsensor.output.evidence import EvidenceRecorder, encode
from tests import craft
from tests.conftest import run_cli

SRC, DST = "192.0.2.10", "198.51.100.7"
SECRET = b"".join(hashlib.sha256(str(i).encode()).hexdigest().encode() + b"\n" for i in range(100))  # 6.5 kB


def transfer_pcap(path: Path, data: bytes = SECRET, size: int = 500, benign_first: int = 0) -> Path:
    frames = []
    ts = 1000.0
    for i in range(benign_first):
        frames.append((ts, craft.ether(craft.icmp4(SRC, DST, craft.ECHO_REQUEST, 0, 3, i, b""))))
        ts += 0.1
    for seq, offset in enumerate(range(0, len(data), size)):
        chunk = data[offset : offset + size]
        frames.append((ts, craft.ether(craft.icmp4(SRC, DST, craft.ECHO_REQUEST, 0, 9, seq, chunk))))
        frames.append((ts + 0.01, craft.ether(craft.icmp4(DST, SRC, craft.ECHO_REPLY, 0, 9, seq, chunk))))
        ts += 0.1
    craft.write_pcap(path, frames)
    return path


def read_evidence(path: str) -> list[IcmpPacket]:
    reader = pcapy.open_offline(path)
    assert reader.datalink() in (LINKTYPE_RAW, 12, 14)
    decoder = Decoder(reader.datalink(), DecodeStats())
    out = []
    while True:
        hdr, data = reader.next()
        if hdr is None:
            return out
        sec, usec = hdr.getts()
        pkt = decoder.decode(sec + usec / 1e6, data)
        assert pkt is not None
        out.append(pkt)


def test_evidence_pcap_and_carried_bytes(tmp_path: Path) -> None:
    pcap = transfer_pcap(tmp_path / "in.pcap")
    logs = tmp_path / "logs"
    logs.mkdir()
    result = run_cli("-r", pcap, log_dir=logs)
    assert result.returncode == 0, result.stderr
    paths = {n["evidence"] for n in result.notices}
    assert len(paths) == 1  # every notice of the flow points at the same evidence
    evidence = str(paths.pop())
    assert evidence.startswith(str(logs / "evidence")) and evidence.endswith(".pcap")
    packets = read_evidence(evidence)
    # The whole transfer: the packets before the first notice (the ring) and everything after it.
    requests = [p for p in packets if p.is_echo_request]
    assert [p.seq for p in requests] == list(range(13))  # 6,500 bytes in 500-byte chunks
    assert all(p.src == craft.addr(SRC) and p.dst == craft.addr(DST) for p in requests)
    # The .bin is the file that left, byte for byte (the tool sent it raw).
    assert Path(evidence[:-5] + ".bin").read_bytes() == SECRET
    assert oct(Path(evidence).stat().st_mode & 0o777) == "0o640"


def test_evidence_caps(tmp_path: Path) -> None:
    pcap = transfer_pcap(tmp_path / "in.pcap", benign_first=0)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("output:\n  evidence:\n    packets_before: 2\n    packets_after: 3\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    result = run_cli("-r", pcap, "-c", cfg, log_dir=logs)
    evidence = str(result.notices[0]["evidence"])
    assert len(read_evidence(evidence)) == 5


def test_evidence_can_be_switched_off(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("output:\n  evidence:\n    enabled: false\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    result = run_cli("-r", transfer_pcap(tmp_path / "in.pcap"), "-c", cfg, log_dir=logs)
    assert result.notices and all("evidence" not in n for n in result.notices)
    assert not (logs / "evidence").exists()


def test_disk_budget_deletes_the_oldest_evidence(tmp_path: Path) -> None:
    cfg = dataclasses.replace(Config().output.evidence, max_total_bytes=20_000)
    recorder = EvidenceRecorder(str(tmp_path), cfg)
    from icmpsensor.notice.record import Notice

    for flow in range(10):
        src = f"10.0.0.{flow + 1}"
        for seq in range(5):
            pkt = IcmpPacket(1000.0 + flow + seq / 10, craft.addr(src), craft.addr(DST), False, 8, 0, 1, seq,
                             bytes([flow]) * 1000, 1042)
            recorder.observe(pkt, 1000)
        notice = Notice(ts=1.0, note="ICMP::ICMP_ExfilSummary", msg="", sub="", src=src, dst=DST, uid=f"C{flow:017d}",
                        n=5, bytes_sent=5000, bytes_received=0, start=1.0, end=2.0)
        recorder.attach(notice)
    recorder.close()
    total = sum(p.stat().st_size for p in (tmp_path / "evidence").iterdir())
    assert total <= 20_000 and recorder.stats.deleted > 0
    assert (tmp_path / "evidence" / f"C{9:017d}.pcap").exists()  # the newest is kept


def test_encode_round_trips_through_the_decoder() -> None:
    for pkt in (
        IcmpPacket(1.0, craft.addr(SRC), craft.addr(DST), False, 8, 0, 5, 6, b"hello", 0),
        IcmpPacket(1.0, craft.addr("2001:db8::1"), craft.addr("2001:db8::2"), True, 129, 0, 5, 6, b"x" * 33, 0),
        IcmpPacket(1.0, craft.addr(SRC), craft.addr(DST), False, 13, 0, -1, -1, bytes(16) + b"extra", 0),
    ):
        decoded = Decoder(LINKTYPE_RAW, DecodeStats()).decode(1.0, encode(pkt))
        assert decoded is not None
        assert (decoded.src, decoded.dst, decoded.icmp_type, decoded.ident, decoded.seq, decoded.payload) == (
            pkt.src, pkt.dst, pkt.icmp_type, pkt.ident, pkt.seq, pkt.payload)


def test_notice_json_carries_the_evidence_field(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    run_cli("-r", transfer_pcap(tmp_path / "in.pcap"), log_dir=logs)
    first = json.loads((logs / "notice.log").read_text().splitlines()[0])
    assert list(first)[-1] == "evidence"


PAIRS = [(f"192.0.2.{i}", f"198.51.100.{i}") for i in range(1, 6)]
recorder_ops = st.lists(st.tuples(st.sampled_from(["packet", "notice", "summary", "close"]),
                                  st.integers(0, len(PAIRS) - 1), st.integers(0, 3)), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=recorder_ops)
def test_watched_is_exactly_the_pairs_buffered_or_recorded(tmp_path: Path, ops: list[tuple[str, int, int]],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline calls observe() for a packet without novel bytes only when its pair is in `watched`:
    that set must be exactly the pairs with a ring buffer or an open evidence file, through ring and
    open-file eviction, summaries (which close a flow's files) and close()."""
    monkeypatch.setattr(evidence_module, "MAX_OPEN_FILES", 2)
    cfg = dataclasses.replace(Config().output.evidence, max_flows_buffered=2, packets_before=2)
    recorder = EvidenceRecorder(str(tmp_path / f"run{len(list(tmp_path.iterdir()))}"), cfg)
    for ts, (op, index, novel) in enumerate(ops):
        src, dst = PAIRS[index]
        if op == "packet":
            pkt = IcmpPacket(float(ts), craft.addr(src), craft.addr(dst), False, 8, 0, 1, ts, b"x" * novel, 30)
            recorder.observe(pkt, novel)
        elif op == "close":
            recorder.close()
        else:
            note = EXFIL_SUMMARY.name if op == "summary" else "ICMP::DataExfil"
            recorder.attach(Notice(float(ts), note, "", "", src, dst, f"C{index}", 1, 1, 0, 0.0, float(ts)))
        rings, recording = set(recorder._rings), set(recorder._open)
        assert not rings & recording
        assert recorder.watched == rings | recording
    recorder.close()
    assert recorder.watched == set(recorder._rings)
