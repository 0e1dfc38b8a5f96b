"""The evidence recorder's per-packet step in C (output/_fastevidence.c record: a recorded pair's packet held, a
buffered pair's ring kept) held equal to its Python reference (EvidenceRecorder(..., accelerated=False)): on random
streams of packets (IPv4 and IPv6, echo and other types, batch frames and fragments, packets without a frame),
notices that start and end recordings, packets the detector went past (observe_passed) and flushes, both recorders
hold, buffer, hand the writer, count and watch the same after every step, with the per-file caps (packets_before +
packets_after, max_file_bytes) and the rings' (max_flows_buffered, max_buffer_bytes) made small."""

from __future__ import annotations

import dataclasses
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from icmpsensor.config.schema import Config, EvidenceConfig
from icmpsensor.decode.linktypes import DLT_RAW, LINKTYPE_ETHERNET
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.notice.record import Notice
from icmpsensor.notice.types import DATA_EXFIL, EXFIL_SUMMARY
from icmpsensor.output import evidence as evidence_module
from icmpsensor.output.evidence import EvidenceRecorder
from icmpsensor.output.evidencewriter import PACKET_OVERHEAD
from icmpsensor.source.batch import BATCH_META, Batch, CapturedFrame
from testkit import craft
from tests.hypothesis_counts import examples

needs_c = pytest.mark.skipif(evidence_module._fastevidence is None,
                             reason="the C accelerator is turned off or not built")

HOSTS = [("10.0.0.1", False), ("10.0.0.2", False), ("10.0.0.3", False), ("2001:db8::1", True), ("2001:db8::2", True)]


class JobLog:
    """A writer that takes every job and remembers it (what the recorder handed over, in order)."""

    def __init__(self) -> None:
        self.jobs: list[tuple[object, ...]] = []

    def submit(self, job: object, *, force: bool = False) -> bool:
        self.jobs.append(dataclasses.astuple(job))  # type: ignore[call-overload]
        return True

    def submit_all(self, jobs: list[object]) -> list[object]:
        for job in jobs:
            self.submit(job)
        return []

    def close(self, deadline: float | None = None) -> None:
        pass

    def refresh_disk_usage(self) -> None:
        pass


def recorder(tmp: Path, cfg: EvidenceConfig, accelerated: bool) -> EvidenceRecorder:
    made = EvidenceRecorder(str(tmp), cfg, accelerated=accelerated)
    made.writer = JobLog()  # type: ignore[assignment]
    return made


def state(rec: EvidenceRecorder) -> tuple[object, ...]:
    return (dataclasses.astuple(rec.stats), rec.writer.jobs, {k: list(v) for k, v in rec._pending.items()},  # type: ignore[attr-defined]
            [(k, dataclasses.astuple(v)) for k, v in rec._open.items()],
            [(k, list(evidence_module._packets(v))) for k, v in rec._rings.items()], sorted(rec.watched),
            rec.linktype, rec._buffered)


# source, destination (the same family): two pairs most of the time, so that recordings reach their caps
host = st.one_of(st.sampled_from([0, 1, 3]), st.integers(0, len(HOSTS) - 1))
packet_spec = st.tuples(
    host, host,
    st.sampled_from([8, 0, 3, 13]),  # echo request, reply, others (IPv6: 128, 129...)
    st.binary(max_size=120),  # payload
    st.integers(0, 2),  # 0: a frame of the batch; 1: fragments (IcmpPacket.frames); 2: no frame (batch None)
    st.integers(0, 1500),  # novel bytes the detector saw
)
observed = st.tuples(st.just("observe"), packet_spec)
passed = st.tuples(st.just("passed"), st.lists(packet_spec, min_size=1, max_size=6), st.booleans())
# packets twice as often as the rest: a recorded pair's reach its caps (truncated), not only its first
step = st.one_of(observed, passed, observed, passed,
                 st.tuples(st.just("notice"), host, host, st.booleans(), st.integers(0, 3)),
                 st.tuples(st.just("flush")))


def packet(spec: tuple[int, int, int, bytes, int, int], ts: float) -> tuple[IcmpPacket, int, bool]:
    a, b, kind, payload, framing, novel = spec
    (src, v6), (dst, dst_v6) = HOSTS[a], HOSTS[b]
    if dst_v6 != v6:
        dst = HOSTS[3 if v6 else 0][0]
    icmp_type = {8: 128, 0: 129, 3: 1, 13: 3}[kind] if v6 else kind
    frames = None
    if framing == 1:  # a reassembled message's fragments, as the C reassembler keeps them
        frames = tuple(CapturedFrame(int(ts) + i, i * 7, payload[i::2] + b"f") for i in range(2))
    pkt = IcmpPacket(ts, craft.addr(src), craft.addr(dst), v6, icmp_type, 0, 1, 2, payload, 28 + len(payload),
                     frames=frames)
    return pkt, novel, framing == 2


def batch_for(packets: list[IcmpPacket], linktype: int) -> Batch:
    """A libpcap batch whose frame i is the packet i's (its payload behind a made-up header)."""
    frames = [b"H" * 14 + pkt.payload for pkt in packets]
    offsets = [sum(len(f) for f in frames[:i]) for i in range(len(frames))]
    meta = b"".join(BATCH_META.pack(1_800_000_000 + i, 1000 * i, off, len(f))
                    for i, (off, f) in enumerate(zip(offsets, frames, strict=True)))
    return Batch(SimpleNamespace(linktype=linktype), b"".join(frames), meta)


@needs_c
@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=6, max_size=40), before=st.integers(0, 3), after=st.integers(0, 6),
       file_bytes=st.one_of(st.integers(24, 700), st.just(10**6)), raw=st.booleans(),
       flows_buffered=st.one_of(st.integers(1, 3), st.just(4096)),
       buffer_bytes=st.one_of(st.integers(0, 900), st.just(10**9)), open_files=st.sampled_from([1, 2, 64]))
def test_the_c_step_is_the_reference(tmp_path: Path, steps: list[tuple[object, ...]], before: int, after: int,
                                     file_bytes: int, raw: bool, flows_buffered: int, buffer_bytes: int,
                                     open_files: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # the caps as small as the configuration allows and smaller (a ring's packet alone past max_buffer_bytes); the
    # files open at once too (the least recently recorded closed first: a recorded packet moves its flow on)
    monkeypatch.setattr(evidence_module, "MAX_OPEN_FILES", open_files)
    cfg = dataclasses.replace(Config().output.evidence, packets_before=before, packets_after=after,
                              max_file_bytes=file_bytes, max_flows_buffered=flows_buffered,
                              max_buffer_bytes=buffer_bytes)
    reference, fast = recorder(tmp_path, cfg, False), recorder(tmp_path, cfg, True)
    linktype = DLT_RAW if raw else LINKTYPE_ETHERNET
    ts = 1_800_000_000.0
    uids = 0
    for item in steps:
        ts += 0.5
        kind = item[0]
        if kind == "observe":
            pkt, novel, frameless = packet(item[1], ts)  # type: ignore[arg-type]
            batch = None if frameless else batch_for([pkt], linktype)
            for rec in (reference, fast):
                rec.observe(pkt, novel, batch, 0)
        elif kind == "passed":
            made = [packet(spec, ts) for spec in item[1]]  # type: ignore[union-attr]
            packets = [pkt for pkt, _, _ in made]
            batch = batch_for(packets, linktype)
            frames = list(reversed(range(len(packets)))) if item[2] else None  # due messages: frames by position
            # the detector lists a packet with novel bytes of a pair not watched as ~i (Detector.process_many)
            passed = [~i if novel else i for i, (_, novel, _) in enumerate(made)]
            for rec in (reference, fast):
                todo = list(passed)
                rec.observe_passed(packets, todo, batch, frames)
                assert todo == []
        elif kind == "notice":
            _, a, b, summary, which = item  # type: ignore[misc]
            (src, v6), (dst, dst_v6) = HOSTS[a], HOSTS[b]  # type: ignore[index]
            if dst_v6 != v6:
                dst = HOSTS[3 if v6 else 0][0]
            uids += which == 0
            note = EXFIL_SUMMARY.name if summary else DATA_EXFIL.name
            for rec in (reference, fast):
                rec.attach(Notice(ts=ts, note=note, msg="", sub="", src=src, dst=dst, uid=f"C{uids + which:017d}",
                                  n=1, bytes_sent=1, bytes_received=0, start=ts, end=ts))
        else:
            for rec in (reference, fast):
                rec.flush()
        assert state(fast) == state(reference)
    for rec in (reference, fast):
        rec.close()
    assert state(fast) == state(reference)


UID = "C" + "1" * 17


def recorded_pair(tmp: Path, accelerated: bool, **settings: int) -> tuple[EvidenceRecorder, list[IcmpPacket], Batch]:
    """A recorder (the evidence `settings` changed) whose pair 10.0.0.1 -> 10.0.0.2 is recorded (uid UID) after the
    first of five 50-byte requests of one batch, and the five requests and their batch."""
    rec = recorder(tmp, dataclasses.replace(Config().output.evidence, **settings), accelerated)  # type: ignore[arg-type]
    pkts = [IcmpPacket(1.0 + i, craft.addr("10.0.0.1"), craft.addr("10.0.0.2"), False, 8, 0, 1, i, b"x" * 50, 78)
            for i in range(5)]
    batch = batch_for(pkts, LINKTYPE_ETHERNET)
    rec.observe(pkts[0], 50, batch, 0)
    rec.attach(Notice(ts=1.0, note=DATA_EXFIL.name, msg="", sub="", src="10.0.0.1", dst="10.0.0.2", uid=UID,
                      n=1, bytes_sent=1, bytes_received=0, start=1.0, end=1.0))
    return rec, pkts, batch


@needs_c
def test_a_recorded_pair_takes_the_c_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The accelerated recorder holds a recorded pair's packets without its Python step (_record)."""
    fast, pkts, batch = recorded_pair(tmp_path, True, packets_before=2, packets_after=50)

    def python_step(*args: object) -> None:
        raise AssertionError("the Python step ran")

    monkeypatch.setattr(fast, "_record", python_step)
    fast.observe(pkts[1], 50, batch, 1)
    fast.observe_passed(pkts, [2, 3], batch, None)
    assert [held.records[16:] for held in fast._pending[UID]] == [b"H" * 14 + b"x" * 50] * 3


@needs_c
def test_a_buffered_pair_takes_the_c_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The accelerated recorder keeps the rings of pairs without a recording (a flood's new pairs, one after the
    other, past max_flows_buffered) without its Python step (_buffer, _evict_ring), and counts what it drops."""
    fast = recorder(tmp_path, dataclasses.replace(Config().output.evidence, packets_before=2, max_flows_buffered=2),
                    True)

    def python_step(*args: object) -> None:
        raise AssertionError("the Python step ran")

    monkeypatch.setattr(fast, "_buffer", python_step)
    monkeypatch.setattr(fast, "_evict_ring", python_step)
    pkts = [IcmpPacket(1.0 + i, craft.addr(f"10.0.1.{i}"), craft.addr("10.0.0.2"), False, 8, 0, 1, i, b"x" * 50, 78)
            for i in range(4)]
    batch = batch_for(pkts, LINKTYPE_ETHERNET)
    for i, pkt in enumerate(pkts):
        fast.observe(pkt, 50, batch, i)
    fast.observe_passed(pkts, [3, 3], batch, None)  # the last pair's next two packets: its ring holds two
    pairs = [(craft.addr("10.0.0.2"), craft.addr(f"10.0.1.{i}")) for i in range(4)]  # as pair_key orders them
    assert list(fast._rings) == pairs[2:]
    assert len(evidence_module._packets(fast._rings[pairs[3]])) == 2
    assert fast.stats.buffers_evicted == 2
    assert fast._buffered == sum(held.cost for ring in fast._rings.values() for held in evidence_module._packets(ring))


@pytest.mark.parametrize("accelerated", [False, True])
def test_rings_filled_to_the_byte(tmp_path: Path, accelerated: bool) -> None:
    """max_buffer_bytes is what the rings may hold: rings that reach it exactly are kept, a byte more evicts the
    least recently active (both steps)."""
    pkts = [IcmpPacket(1.0 + i, craft.addr(f"10.0.1.{i}"), craft.addr("10.0.0.2"), False, 8, 0, 1, i, b"x" * 50, 78)
            for i in range(3)]
    batch = batch_for(pkts, LINKTYPE_ETHERNET)
    cost = PACKET_OVERHEAD + 16 + 14 + 50 + 50  # the overhead, the record, the batch frame, the payload carried
    for budget, kept in ((2 * cost, 2), (2 * cost - 1, 1)):
        rec = recorder(tmp_path, dataclasses.replace(Config().output.evidence, max_buffer_bytes=budget), accelerated)
        for i in range(2):
            rec.observe(pkts[i], 50, batch, i)
        assert (len(rec._rings), rec.stats.buffers_evicted, rec._buffered) == (kept, 2 - kept, kept * cost)


@pytest.mark.parametrize("accelerated", [False, True])
def test_a_file_filled_to_the_byte(tmp_path: Path, accelerated: bool) -> None:
    """max_file_bytes is the pcap's size it may reach: a packet that fills it exactly is held, the next one
    counted as truncated (both steps)."""
    record = 16 + 14 + 50  # a record's header, the batch frame's made-up header, the payload
    rec, pkts, batch = recorded_pair(tmp_path, accelerated, packets_before=1, packets_after=50,
                                     max_file_bytes=24 + 3 * record)
    rec.observe(pkts[1], 0, batch, 1)
    rec.observe_passed(pkts, [2, 3, 4], batch, None)
    assert len(rec._pending[UID]) == 2  # the ring's packet went with the file's start
    assert rec.stats.truncated == 2
    assert rec._open[("\n\0\0\1".encode("latin-1"), "\n\0\0\2".encode("latin-1"))].size == 24 + 3 * record


@pytest.mark.parametrize("accelerated", [False, True])
def test_a_packet_past_its_files_size_is_not_copied(tmp_path: Path, accelerated: bool) -> None:
    """A recorded pair's packet that would take its pcap past max_file_bytes is counted as truncated before it is
    held: a long jumbo transfer (60 KB datagrams, the file full after 66 of them) copied each next datagram's
    fragments only to drop them (both steps; the fragments' frames and a batch frame)."""
    rec, pkts, batch = recorded_pair(tmp_path, accelerated, packets_before=1, packets_after=10_000,
                                     max_file_bytes=4096)
    frames = tuple(CapturedFrame(2, i, bytes([i]) * 1500) for i in range(40))
    jumbo = dataclasses.replace(pkts[1], frames=frames)
    tracemalloc.start()
    try:
        for _ in range(3):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            rec.observe(jumbo, 60_000, None, 0)
            rec.observe(jumbo, 60_000, batch, 1)
            peak = tracemalloc.get_traced_memory()[1] - before
            assert peak < 10_000, peak  # nothing of the 60,000 bytes copied
    finally:
        tracemalloc.stop()
    assert rec.stats.truncated == 6 and rec._pending == {}

