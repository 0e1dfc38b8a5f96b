"""The evidence recorder in-process: disk budget, what it watches, and the packet encoding its pcaps hold.

Through the command line (the pcap holds the flow's packets, the .bin the file that left): test_evidence_cli.py
in tests/replay.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

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
from testkit import craft

SRC, DST = "192.0.2.10", "198.51.100.7"


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
