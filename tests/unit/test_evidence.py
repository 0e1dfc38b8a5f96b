"""The evidence recorder and its writer thread in-process: disk budget, what it watches, the cap on new files
per minute, the writer's bounded queue (live: drop and count; replay: wait), its deadline at shutdown, no file
touched on the detector's thread, the counters in the pipeline's stats, and the encoding of packets fed without
their frames.

Through the command line (the pcap holds the pair's frames as captured, the .bin the file that left):
test_evidence_cli.py and test_evidence_faithful.py in tests/replay.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import threading
import time
from pathlib import Path

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from icmpsensor.config.schema import Config, EvidenceConfig
from icmpsensor.decode.fast import Decoder
from icmpsensor.decode.linktypes import LINKTYPE_RAW
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.decode.stats import DecodeStats
from icmpsensor.notice.record import Notice
from icmpsensor.notice.types import EXFIL_SUMMARY
from icmpsensor.output import evidence as evidence_module
from icmpsensor.output import evidencewriter
from icmpsensor.output.evidence import MAX_OPEN_FILES, EvidenceRecorder, encode, pair_key
from icmpsensor.output.evidencewriter import PACKET_OVERHEAD, EvidenceWriter
from icmpsensor.output.sink import ListSink
from icmpsensor.runmode.pipeline import Pipeline
from icmpsensor.source.batch import BATCH_META, Batch, CapturedFrame
from testkit import craft
from testkit.decoding import batch_of
from tests.hypothesis_counts import examples

SRC, DST = "192.0.2.10", "198.51.100.7"


def config(**changes: object) -> EvidenceConfig:
    return dataclasses.replace(Config().output.evidence, **changes)  # type: ignore[arg-type]


def source(flow: int) -> str:
    return f"10.{flow >> 16 & 255}.{flow >> 8 & 255}.{flow & 255}"


def request(flow: int, ts: float, payload: bytes = b"q" * 100, seq: int = 1) -> IcmpPacket:
    return IcmpPacket(ts, craft.addr(source(flow)), craft.addr(DST), False, 8, 0, 1, seq, payload, 42 + len(payload))


def notice(flow: int, ts: float, note: str = "ICMP::ICMP_DataExfil") -> Notice:
    return Notice(ts=ts, note=note, msg="", sub="", src=source(flow), dst=DST, uid=f"C{flow:017d}", n=1,
                  bytes_sent=100, bytes_received=0, start=ts, end=ts)


def alert(recorder: EvidenceRecorder, flow: int, ts: float) -> Notice:
    """One suspicious packet of `flow`, then its notice: what the pipeline does for a one-packet alerted flow."""
    recorder.observe(request(flow, ts), 100, None, 0)
    raised = notice(flow, ts)
    recorder.attach(raised)
    return raised


def pcaps(directory: Path) -> dict[str, int]:
    """Evidence pcap name -> packets in it."""
    out = {}
    for path in directory.glob("*.pcap"):
        with path.open("rb") as f:
            out[path.name] = sum(1 for _ in dpkt.pcap.Reader(f))
    return out


# -- the disk budget ---------------------------------------------------------------------------------------


def test_disk_budget_deletes_the_oldest_evidence(tmp_path: Path) -> None:
    recorder = EvidenceRecorder(str(tmp_path), config(max_total_bytes=20_000))
    for flow in range(10):
        for seq in range(5):
            recorder.observe(request(flow, 1000.0 + flow + seq / 10, bytes([flow]) * 1000, seq), 1000, None, 0)
        recorder.attach(notice(flow, 1000.0 + flow, EXFIL_SUMMARY.name))
    recorder.close()
    total = sum(p.stat().st_blocks * 512 for p in (tmp_path / "evidence").iterdir())
    assert total <= 20_000 and recorder.stats.deleted > 0
    assert (tmp_path / "evidence" / f"C{9:017d}.pcap").exists()  # the newest is kept


# -- the cap on new files per minute -----------------------------------------------------------------------


def test_new_files_per_minute_are_capped_and_counted(tmp_path: Path) -> None:
    recorder = EvidenceRecorder(str(tmp_path), config(max_files_per_minute=3))
    first = [alert(recorder, flow, 6000.0 + flow) for flow in range(8)]  # one minute of packet time
    later = [alert(recorder, flow, 6060.0 + flow) for flow in range(8, 12)]  # the next minute
    recorder.close()
    with_file = [n.uid for n in first + later if n.evidence]
    assert with_file == [f"C{flow:017d}" for flow in (0, 1, 2, 8, 9, 10)]
    assert recorder.stats.dropped_rate == 6 == sum(1 for n in first + later if not n.evidence)
    assert set(pcaps(tmp_path / "evidence")) == {uid + ".pcap" for uid in with_file}
    assert not recorder.watched  # a refused pair is not buffered on


# -- the writer's thread and queue ---------------------------------------------------------------------------


def test_no_file_is_touched_on_the_detectors_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Creating, writing, closing and trimming evidence files all happen on the writer's thread."""
    calls: list[tuple[str, str]] = []

    def spied(module: object, name: str) -> None:
        real = getattr(module, name)

        def spy(*args: object, **kwargs: object) -> object:
            calls.append((name, threading.current_thread().name))
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)

    for name in ("open", "mkdir", "unlink", "scandir"):
        spied(evidencewriter.os, name)
    for name in ("create_all", "close_all"):  # in C, with the lock released, when it is built
        spied(evidencewriter, name)
    recorder = EvidenceRecorder(str(tmp_path), config(max_total_bytes=40_000))
    for flow in range(20):
        alert(recorder, flow, 1000.0 + flow)
        recorder.attach(notice(flow, 1000.5 + flow, EXFIL_SUMMARY.name))
    recorder.close()
    assert recorder.stats.files == 20 and recorder.stats.deleted > 0
    assert {"create_all", "close_all", "mkdir", "unlink"} <= {name for name, _ in calls}
    assert {thread for _, thread in calls} == {"icmpsensor-evidence"}


@pytest.fixture
def held_writer(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """The writer's thread blocked before each job until the returned event is set."""
    go = threading.Event()
    real = EvidenceWriter._do

    def held(self: EvidenceWriter, job: evidencewriter.WriteJob, *created: object) -> None:
        go.wait(30)
        real(self, job, *created)

    monkeypatch.setattr(EvidenceWriter, "_do", held)
    return go


def test_a_live_writers_full_queue_drops_and_counts(tmp_path: Path, held_writer: threading.Event,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evidencewriter, "QUEUE_BYTES", 4000)  # a few one-packet jobs
    recorder = EvidenceRecorder(str(tmp_path), config(), wait_when_full=False)
    began = time.monotonic()
    raised = [alert(recorder, flow, 1000.0 + flow / 10) for flow in range(40)]
    assert time.monotonic() - began < 1.0  # the detector's thread never waited for the held writer
    stats = recorder.stats
    refused = [n for n in raised if not n.evidence]
    assert refused and stats.dropped_queue_files == len(refused) == stats.dropped_queue_packets
    held_writer.set()
    recorder.close()
    assert stats.files == 40 - len(refused)
    assert pcaps(tmp_path / "evidence") == {os.path.basename(str(n.evidence)): 1 for n in raised if n.evidence}


def test_a_replay_waits_for_the_writer_and_drops_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evidencewriter, "QUEUE_BYTES", 4000)
    real = EvidenceWriter._do

    def slow(self: EvidenceWriter, job: evidencewriter.WriteJob, *created: object) -> None:
        time.sleep(0.002)
        real(self, job, *created)

    monkeypatch.setattr(EvidenceWriter, "_do", slow)
    recorder = EvidenceRecorder(str(tmp_path), config(), wait_when_full=True)
    raised = [alert(recorder, flow, 1000.0 + flow / 10) for flow in range(40)]
    recorder.close()
    assert all(n.evidence for n in raised)
    assert recorder.stats.files == 40 and recorder.stats.packets == 40
    assert recorder.stats.dropped_queue_files == recorder.stats.dropped_queue_packets == 0


class _DrainingWriterSide(threading.Condition):
    """The writer's side of the queue, played inside the submitter's waits: while the submitter waits for room the
    writer takes every job and goes to sleep until it is notified again."""

    def __init__(self, writer: EvidenceWriter) -> None:
        super().__init__()
        self.writer = writer
        self.asleep = False  # the writer waits for jobs: only a notify wakes it
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        assert not (self.asleep and self.writer._jobs), "waits for room while the writer sleeps with jobs queued"
        self.waits += 1
        self.writer._jobs.clear()
        self.writer._queued = 0
        self.asleep = True
        return True

    def notify_all(self) -> None:
        self.asleep = False


def test_a_replay_wakes_the_writer_for_every_job_it_queues(tmp_path: Path) -> None:
    """A batch's jobs may fill the queue several times over: each time the submitter waits for room, the writer
    may empty the queue and sleep; the jobs queued after that must wake it (before the submitter waits again or
    returns), or both wait until the writer's idle timeout (a second each time: the jumbo-fragment flood ran at a
    sixth of its rate)."""
    writer = EvidenceWriter(str(tmp_path / "evidence"), config(), evidencewriter.EvidenceStats(), queue_bytes=3000)
    side = writer._cond = _DrainingWriterSide(writer)
    writer._thread = threading.current_thread()  # the writer's thread is played by `side`
    held = evidencewriter.HeldPacket.of(LINKTYPE_RAW, (CapturedFrame(1, 0, b"f" * 500),), b"s", b"")
    jobs = [evidencewriter.WriteJob(f"C{i:017d}", (held,)) for i in range(12)]
    assert writer.submit_all(jobs) == []
    assert side.waits >= 2 and writer._jobs
    assert not side.asleep, "jobs left queued while the writer sleeps"
    writer._thread = None
    writer._jobs.clear()
    writer.close()


@pytest.mark.skipif(evidencewriter._fastevidence is None, reason="the C accelerator is turned off or not built")
def test_a_round_of_jobs_is_written_in_one_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer takes every queued job at once and writes the round in one call that releases the interpreter
    lock once (a write call each waited for the detector's thread to hand the lock back after each): 40 flows'
    files, queued before the thread runs, cost one write_all call for their records, and every packet is written."""
    calls: list[int] = []
    real = evidencewriter._fastevidence.write_all

    def counted(writes: list[tuple[int, bytes]]) -> list[int]:
        calls.append(len(writes))
        return real(writes)

    monkeypatch.setattr(evidencewriter._fastevidence, "write_all", counted)
    recorder = EvidenceRecorder(str(tmp_path), config())
    writer = recorder.writer
    with writer._cond:  # the thread starts with the first job and waits here until all are queued
        for flow in range(40):
            alert(recorder, flow, 1000.0 + flow / 100)
    deadline = time.monotonic() + 10
    while sum(calls) < 80 and time.monotonic() < deadline:  # the records gathered are written FLUSH_AFTER later
        time.sleep(0.01)
    # the 40 pcaps and 40 .bin files, in one call or a few (FLUSH_SLACK: those gathered within 0.1 s of the first)
    assert sum(calls) == 80 and len(calls) <= 3, calls
    written = len(calls)
    for flow in range(40):  # their summaries: the files closed, nothing left to write
        recorder.attach(notice(flow, 1001.0, EXFIL_SUMMARY.name))
    recorder.close()
    assert len(calls) == written and recorder.stats.packets == 40 and recorder.stats.files == 40
    assert sum(pcaps(tmp_path / "evidence").values()) == 40


def test_a_rounds_new_files_are_created_together_and_closed_together(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer creates the files of a round's new flows in one call and closes finished flows' files in one
    call (create_all, close_all: in C the interpreter lock is released once for all of them; an os.open, header
    write and close each waited for the detector's thread to hand the lock back, ~80 µs of detection a file in a
    storm of written notices): 40 flows queued before the thread runs cost a create_all call for each CREATE_BATCH
    flows' files and no os.open of an evidence file, and their summaries' closes a close_all call for each
    CLOSE_BATCH files."""
    created: list[int] = []
    closed: list[int] = []
    opened: list[object] = []
    real_create, real_close, real_open = evidencewriter.create_all, evidencewriter.close_all, os.open

    def counted_create(dir_fd: int, flows: evidencewriter.NewFiles) -> list[tuple[int, ...]]:
        created.append(sum(len(files) for files in flows))
        return real_create(dir_fd, flows)

    def counted_close(fds: list[int]) -> None:
        closed.append(len(fds))
        real_close(fds)

    def spied_open(path: object, *args: object, **kwargs: object) -> int:
        if str(path).endswith((".pcap", ".bin")):
            opened.append(path)
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(evidencewriter, "create_all", counted_create)
    monkeypatch.setattr(evidencewriter, "close_all", counted_close)
    monkeypatch.setattr(evidencewriter.os, "open", spied_open)
    recorder = EvidenceRecorder(str(tmp_path), config())
    with recorder.writer._cond:  # the thread starts with the first job and waits here until all are queued
        for flow in range(40):
            alert(recorder, flow, 1000.0 + flow / 100)
    deadline = time.monotonic() + 10
    while not created and time.monotonic() < deadline:
        time.sleep(0.01)
    with recorder.writer._cond:  # the summaries too, in one round
        for flow in range(40):
            recorder.attach(notice(flow, 1001.0, EXFIL_SUMMARY.name))
    recorder.close()
    assert created == [2 * evidencewriter.CREATE_BATCH, 2 * (40 - evidencewriter.CREATE_BATCH)] and not opened
    assert closed == [evidencewriter.CLOSE_BATCH, 80 - evidencewriter.CLOSE_BATCH], closed
    assert recorder.stats.files == 40 and recorder.stats.packets == 40 and recorder.stats.errors == 0
    assert pcaps(tmp_path / "evidence") == {f"C{flow:017d}.pcap": 1 for flow in range(40)}
    assert all(p.stat().st_size == 100 for p in (tmp_path / "evidence").glob("*.bin"))


def test_a_round_of_many_new_flows_holds_few_descriptors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A round of 400 new flows (a storm's notices queued while the writer was busy) has their files made
    CREATE_BATCH flows at a time: the writer holds at most the files of the flows recording (the recorder's
    MAX_OPEN_FILES; the oldest closed past it), the finished ones not yet closed (CLOSE_BATCH) and one batch not
    started yet, not 800 new files at once (a systemd unit's soft RLIMIT_NOFILE is 1,024)."""
    peak: list[int] = []
    real_create = evidencewriter.create_all

    def counted(dir_fd: int, flows: evidencewriter.NewFiles) -> list[tuple[int, ...]]:
        out = real_create(dir_fd, flows)
        peak.append(len(os.listdir("/proc/self/fd")))
        return out

    monkeypatch.setattr(evidencewriter, "create_all", counted)
    before = len(os.listdir("/proc/self/fd"))
    recorder = EvidenceRecorder(str(tmp_path), config(max_files_per_minute=1000))
    with recorder.writer._cond:
        for flow in range(400):
            alert(recorder, flow, 1000.0 + flow / 1000)
    recorder.close()
    assert recorder.stats.files == 400 and recorder.stats.errors == 0
    # the recorder keeps MAX_OPEN_FILES flows recording (the writer's MAX_OPEN is a backstop); 64: a batch's files
    bound = 2 * (MAX_OPEN_FILES + 1) + evidencewriter.CLOSE_BATCH + 64
    assert len(peak) > 1 and max(peak) - before <= bound + 5, (len(peak), max(peak), before)


def test_files_made_for_flows_the_deadline_drops_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A round's files are created before its jobs are done; when the stop's deadline passes during the round, the
    files of the flows it then drops are closed and removed: on disk only the files of the flows started (counted
    in `files`), the others counted in dropped_shutdown_files, and no descriptor left open."""
    real_do, real_create = EvidenceWriter._do, evidencewriter.create_all
    created = threading.Event()

    def slow(self: EvidenceWriter, job: evidencewriter.WriteJob, *made: object) -> None:
        time.sleep(0.02)
        real_do(self, job, *made)

    def spied_create(dir_fd: int, flows: evidencewriter.NewFiles) -> list[tuple[int, ...]]:
        out = real_create(dir_fd, flows)
        created.set()
        return out

    monkeypatch.setattr(EvidenceWriter, "_do", slow)
    monkeypatch.setattr(evidencewriter, "create_all", spied_create)
    descriptors = len(os.listdir("/proc/self/fd"))
    recorder = EvidenceRecorder(str(tmp_path), config(), wait_when_full=False)
    with recorder.writer._cond:  # one round: 100 flows, 2 s of writing at this pace
        for flow in range(100):
            alert(recorder, flow, 1000.0 + flow / 100)
    assert created.wait(10)  # the round's 200 files are there
    recorder.close(time.monotonic() + 0.3)
    stats = recorder.stats
    assert 0 < stats.files < 100 and stats.files + stats.dropped_shutdown_files == 100
    assert sorted(path.name for path in (tmp_path / "evidence").iterdir()) == sorted(
        f"C{flow:017d}{suffix}" for flow in range(stats.files) for suffix in (".bin", ".pcap"))
    assert sum(pcaps(tmp_path / "evidence").values()) == stats.packets == stats.files
    assert len(os.listdir("/proc/self/fd")) == descriptors


@pytest.mark.parametrize("in_c", [True, False])
def test_a_failed_write_is_counted_and_the_writer_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          in_c: bool) -> None:
    """A write the system refuses (a full disk: /dev/full's ENOSPC) is counted in `errors`; the other files of the
    round, and the flow's own pcap, are written all the same (the round's writes in C, and in Python)."""
    if in_c and evidencewriter._fastevidence is None:
        pytest.skip("the C accelerator is turned off or not built")
    if not in_c:
        monkeypatch.setattr(evidencewriter, "_fastevidence", None)
    real = evidencewriter.create_all
    full = notice(1, 0).uid + ".bin"

    def full_disk_for_one(dir_fd: int, flows: evidencewriter.NewFiles) -> list[tuple[int, ...]]:
        """Flow 1's .bin is /dev/full: made here, its other files by the real call."""
        out = real(dir_fd, [tuple(f for f in files if f[0] != full) for files in flows])
        return [(os.open("/dev/full", os.O_WRONLY | os.O_CLOEXEC), *made) if files[0][0] == full else made
                for files, made in zip(flows, out, strict=True)]

    monkeypatch.setattr(evidencewriter, "create_all", full_disk_for_one)
    recorder = EvidenceRecorder(str(tmp_path), config())
    for flow in range(3):
        alert(recorder, flow, 1000.0 + flow / 100)
    recorder.close()
    assert recorder.stats.errors == 1 and recorder.stats.packets == 3 and recorder.stats.files == 3
    assert sum(pcaps(tmp_path / "evidence").values()) == 3
    assert sorted(p.name for p in (tmp_path / "evidence").glob("*.bin")) == [
        notice(0, 0).uid + ".bin", notice(2, 0).uid + ".bin"]
    assert all(p.stat().st_size == 100 for p in (tmp_path / "evidence").glob("*.bin"))


def test_close_writes_until_its_deadline_and_counts_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = EvidenceWriter._do

    def slow(self: EvidenceWriter, job: evidencewriter.WriteJob, *created: object) -> None:
        time.sleep(0.02)
        real(self, job, *created)

    monkeypatch.setattr(EvidenceWriter, "_do", slow)
    recorder = EvidenceRecorder(str(tmp_path), config(), wait_when_full=False)
    for flow in range(100):  # 100 files, a packet each: 2 s of writing at this pace
        alert(recorder, flow, 1000.0 + flow / 100)
    began = time.monotonic()
    recorder.close(began + 0.3)
    took = time.monotonic() - began
    stats = recorder.stats
    assert took < 0.3 + evidencewriter.JOIN_GRACE + 0.1, took
    assert 0 < stats.packets < 100 and stats.dropped_shutdown == 100 - stats.packets
    assert stats.files + stats.dropped_shutdown_files == 100  # each file started or counted
    assert sum(pcaps(tmp_path / "evidence").values()) == stats.packets
    assert len(pcaps(tmp_path / "evidence")) == stats.files  # no file left of a flow the deadline dropped


# -- what it watches, and the counters' way out --------------------------------------------------------------


PAIRS = [(f"192.0.2.{i}", f"198.51.100.{i}") for i in range(1, 6)]
recorder_ops = st.lists(st.tuples(st.sampled_from(["packet", "reply", "notice", "summary", "close"]),
                                  st.integers(0, len(PAIRS) - 1), st.integers(0, 3)), max_size=40)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=recorder_ops, budget=st.sampled_from([700, 2_000, 64 * 1024 * 1024]), before=st.sampled_from([1, 2, 3]))
def test_watched_is_the_pairs_buffered_or_recorded(tmp_path: Path, ops: list[tuple[str, int, int]], budget: int,
                                                  before: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline calls observe() for a packet without novel bytes only when its pair_key(src, dst) is in
    `watched`: that set must be exactly the pairs with a ring buffer or open evidence files, one entry a pair, through
    ring and open-file eviction (by count and by bytes), summaries (which close a flow's files) and close(); and
    the bytes accounted for the rings are what they hold, within max_buffer_bytes."""
    monkeypatch.setattr(evidence_module, "MAX_OPEN_FILES", 2)
    recorder = EvidenceRecorder(str(tmp_path / f"run{len(list(tmp_path.iterdir()))}"),
                                config(max_flows_buffered=2, packets_before=before, max_buffer_bytes=budget))
    sent: dict[tuple[bytes, bytes], list[float]] = {}  # per pair, the times of the packets observed
    for ts, (op, index, novel) in enumerate(ops):
        src, dst = PAIRS[index]
        if op in ("packet", "reply"):
            a, b = (src, dst) if op == "packet" else (dst, src)
            pkt = IcmpPacket(float(ts), craft.addr(a), craft.addr(b), False, 8 if op == "packet" else 0, 0, 1, ts,
                             b"x" * novel, 30)
            recorder.observe(pkt, novel, None, 0)
            sent.setdefault(pair_key(pkt.src, pkt.dst), []).append(float(ts))
        elif op == "close":
            recorder.close()
        else:
            note = EXFIL_SUMMARY.name if op == "summary" else "ICMP::DataExfil"
            recorder.attach(Notice(float(ts), note, "", "", src, dst, f"C{index}", 1, 1, 0, 0.0, float(ts)))
        rings, recording = set(recorder._rings), set(recorder._open)
        assert not rings & recording
        assert recorder.watched == rings | recording
        buffered = [h for key in recorder._rings for h in recorder.buffered(key)]
        held = sum(PACKET_OVERHEAD + len(h.carried) + len(h.records) for h in buffered)
        assert recorder._buffered == held == sum(h.cost for h in buffered) and held <= budget
        for key in recorder._rings:  # a ring holds its pair's latest packets, oldest first, at most packets_before
            times = [sec + usec / 1e6 for h in recorder.buffered(key) for sec, usec, _ in _pcap_frames(h.records)]
            assert 0 < len(times) <= before and times == sent[key][-len(times):]
    recorder.close()
    assert not recorder.watched


frames_strategy = st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 999_999), st.binary(max_size=300)),
                           min_size=1, max_size=5)


@settings(max_examples=examples(100), deadline=None)
@given(frames=frames_strategy, held_index=st.integers(0, 4))
def test_a_held_packet_is_its_frames_as_pcap_records(frames: list[tuple[int, int, bytes]], held_index: int) -> None:
    """A held packet keeps its frames as the records of a pcap (what the writer appends to the flow's file, in one
    join): read back by dpkt, a frame of a libpcap batch (HeldPacket.of_batch) is that frame with its time, and the
    fragment frames of a reassembled message (HeldPacket.of) are those frames, in order; its cost counts them."""
    captured = tuple(CapturedFrame(sec, usec, data) for sec, usec, data in frames)
    held = evidencewriter.HeldPacket.of(LINKTYPE_RAW, captured, b"s", b"carried")
    assert _pcap_frames(held.records) == [(f.sec, f.usec, f.data) for f in captured]
    assert held.cost == PACKET_OVERHEAD + len(held.records) + len(b"carried")
    index = held_index % len(frames)
    buf = b"".join(data for _, _, data in frames)
    meta = b"".join(BATCH_META.pack(sec, usec, len(b"".join(data for _, _, data in frames[:i])), len(data))
                    for i, (sec, usec, data) in enumerate(frames))
    single = evidencewriter.HeldPacket.of_batch(LINKTYPE_RAW, buf, meta, index, b"s", b"")
    assert _pcap_frames(single.records) == [frames[index]]
    assert single == evidencewriter.HeldPacket.of(LINKTYPE_RAW, (captured[index],), b"s", b"")
    # a record's lengths are what it holds, even if the batch's metadata promised more than its buffer has
    sec, usec, data = frames[-1]
    short = evidencewriter.HeldPacket.of_batch(LINKTYPE_RAW, buf, meta[:-16] + BATCH_META.pack(
        sec, usec, len(buf) - len(data), len(data) + 9), len(frames) - 1, b"s", b"")
    assert _pcap_frames(short.records) == [frames[-1]]


def _pcap_frames(records: bytes) -> list[tuple[int, int, bytes]]:
    """(seconds, microseconds, frame) of pcap records in this host's byte order, as dpkt's record header reads
    them; each record's two lengths are the frame's."""
    header = dpkt.pcap.LEPktHdr if sys.byteorder == "little" else dpkt.pcap.PktHdr
    frames = []
    while records:
        hdr = header(records)
        assert hdr.caplen == hdr.len
        start = hdr.__hdr_len__
        assert len(records) >= start + hdr.caplen, "a record shorter than its header says"
        frames.append((hdr.tv_sec, hdr.tv_usec, records[start : start + hdr.caplen]))
        records = records[start + hdr.caplen :]
    return frames


def test_a_pairs_replies_are_recorded_with_its_requests(tmp_path: Path) -> None:
    """Both directions: a reply (no novel bytes) of a pair that sent novel bytes is held and written."""
    frames = []
    for seq in range(3):
        frames.append((1000.0 + seq, craft.ether(craft.icmp4(SRC, DST, 8, 0, 4, seq, bytes([seq]) * 300))))
        frames.append((1000.5 + seq, craft.ether(craft.icmp4(DST, SRC, 0, 0, 4, seq, bytes([seq]) * 300))))
    buf, meta, _ = batch_of(frames)
    decoder = Decoder(craft.LINKTYPE_ETHERNET, DecodeStats())
    packets = decoder.decode_frames(buf, meta)
    recorder = EvidenceRecorder(str(tmp_path), config())
    batch = Batch(decoder, buf, meta)
    for index, pkt in enumerate(packets):
        assert pkt is not None
        if pkt.is_echo_request or pair_key(pkt.src, pkt.dst) in recorder.watched:
            recorder.observe(pkt, 300 if pkt.is_echo_request else 0, batch, index)
    assert pair_key(craft.addr(DST), craft.addr(SRC)) in recorder._rings
    raised = Notice(1003.0, EXFIL_SUMMARY.name, "", "", SRC, DST, "C" + "a" * 17, 3, 900, 900, 1000.0, 1003.0)
    recorder.attach(raised)
    recorder.close()
    with open(str(raised.evidence), "rb") as f:
        assert [bytes(buf) for _, buf in dpkt.pcap.Reader(f)] == [frame for _, frame in frames]
    assert Path(str(raised.evidence)[:-5] + ".bin").read_bytes() == b"".join(bytes([s]) * 300 for s in range(3))


@pytest.mark.parametrize("closer", ["summary", "another pair"])
def test_a_flow_named_with_its_pairs_recording_keeps_that_name_once_it_is_closed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closer: str) -> None:
    """The other direction's flow of a recorded pair is named the pair's pcap; the recording is closed (the first
    flow's summary, or MAX_OPEN_FILES); that flow's later notices still name that pcap, and no empty file is made."""
    monkeypatch.setattr(evidence_module, "MAX_OPEN_FILES", 1)
    recorder = EvidenceRecorder(str(tmp_path), config())
    first = alert(recorder, 1, 1000.0)  # source(1) -> DST
    back = Notice(1001.0, "ICMP::ICMP_DataExfil", "", "", DST, source(1), "C" + "b" * 17, 1, 100, 0, 1001.0, 1001.0)
    recorder.attach(back)
    assert back.evidence == first.evidence
    if closer == "summary":
        recorder.attach(notice(1, 1002.0, EXFIL_SUMMARY.name))
    else:
        alert(recorder, 2, 1002.0)  # a second recording: the first is closed
    later = Notice(1003.0, EXFIL_SUMMARY.name, "", "", DST, source(1), back.uid, 1, 100, 0, 1001.0, 1003.0)
    recorder.attach(later)
    recorder.close()
    assert later.evidence == first.evidence
    assert f"{back.uid}.pcap" not in pcaps(tmp_path / "evidence")


def test_the_drop_counters_reach_the_pipeline_stats(tmp_path: Path) -> None:
    cfg = Config()
    cfg.output.log_dir = str(tmp_path)
    cfg.output.evidence = config(max_files_per_minute=2)
    pipeline = Pipeline(cfg, [])
    pipeline.detect([request(flow, 1000.0 + flow / 10, os.urandom(500)) for flow in range(5)])
    pipeline.finish()
    pipeline.close()
    evidence = pipeline.stats()["evidence"]
    assert isinstance(evidence, dict)
    assert evidence["files"] == 2 and evidence["dropped_rate"] == 2 * 3  # each refused flow's notice and summary
    assert {"dropped_queue_files", "dropped_queue_packets", "dropped_budget", "dropped_shutdown",
            "truncated"} <= set(evidence)


def test_a_folded_flows_packets_are_not_buffered(tmp_path: Path) -> None:
    """A notice storm's flows are folded into aggregates (notice/aggregate.py): their notices never name an
    evidence file, so neither the packet whose notice was folded nor the flow's later packets are buffered for
    its pair (each buffered and then evicted, a storm's flows cost ~5 us a packet). The flows whose notices are
    written keep their evidence; a packet with novel bytes whose own flow raised nothing is buffered as before,
    though other flows' notices were folded at it (a sweep folding the storm's summaries)."""
    cfg = Config()
    cfg.output.log_dir = str(tmp_path)
    cfg.detection = dataclasses.replace(cfg.detection, aggregate_max_notices=2)
    sink = ListSink()
    pipeline = Pipeline(cfg, [sink])
    recorder = pipeline.evidence
    assert recorder is not None
    pipeline.detect([request(flow, 1000.0 + flow / 100, os.urandom(500)) for flow in range(40)])
    # the first two DataExfil notices to DST, and the ExfilSpread (not folded per host) at the flow that made it one
    written = {pair_key(craft.addr(n.src), craft.addr(n.dst)) for n in sink.notices if n.uid}
    assert pipeline.aggregator.folded == 38 and len(written) == 3
    assert set(recorder._open) == written and not recorder._rings
    # each flow's next request, novel again, raises no notice of its own
    pipeline.detect([request(flow, 1001.0 + flow / 100, os.urandom(500), seq=2) for flow in range(40)])
    assert pipeline.aggregator.folded == 38 and set(recorder._open) == written and not recorder._rings
    assert recorder.watched == written
    # after the idle timeout: the sweep at this packet folds the storm's summaries; its own flow raised nothing
    late = 1000.0 + cfg.detection.idle_timeout + 5
    small = IcmpPacket(late, craft.addr("10.200.0.1"), craft.addr(DST), False, 8, 0, 7, 1, os.urandom(100), 142)
    folded = pipeline.aggregator.folded
    pipeline.detect([small])
    assert pipeline.aggregator.folded > folded
    assert list(recorder._rings) == [pair_key(small.src, small.dst)]
    pipeline.finish()
    pipeline.close()
    assert len(pcaps(tmp_path / "evidence")) == 3


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


def test_a_batchs_recorded_packets_reach_the_writer_as_one_hand_over(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The packets of recorded flows in one batch are queued together (one lock, one wake-up of the writer),
    not one job each: on a novel-heavy mix the per-packet hand-over was most of the evidence cost."""
    handed: list[int] = []
    real = EvidenceWriter.submit_all

    def counting(self: EvidenceWriter, jobs: list[evidencewriter.WriteJob]) -> list[evidencewriter.WriteJob]:
        handed.append(len(jobs))
        return real(self, jobs)

    monkeypatch.setattr(EvidenceWriter, "submit_all", counting)
    cfg = Config()
    cfg.output.log_dir = str(tmp_path)
    pipeline = Pipeline(cfg, [])
    flows = range(3)
    pipeline.detect([request(flow, 1000.0 + i / 10 + flow / 100, os.urandom(300), seq=i)
                     for i in range(20) for flow in flows])
    assert handed == [len(flows)]  # one hand-over for the batch: a job per flow with all its packets
    pipeline.finish()
    pipeline.close()
    written = pcaps(tmp_path / "evidence")
    assert sorted(written.values()) == [20] * len(flows)
    assert pipeline.stats()["evidence"]["packets"] == 20 * len(flows)  # type: ignore[index]


def _writes_per_file(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Spy on the writer's files: how many write calls each got, by name."""
    writes: dict[str, int] = {}
    real = EvidenceWriter._write_round

    def spy(self: EvidenceWriter, ready: list[tuple[evidencewriter._File, list[bytes], int, int]]) -> None:
        for file, _, _, _ in ready:  # a write each (more only if the system wrote less)
            writes[file.name] = writes.get(file.name, 0) + 1
        real(self, ready)

    monkeypatch.setattr(EvidenceWriter, "_write_round", spy)
    return writes


def test_a_flows_records_are_written_in_few_large_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy flow's records are gathered and written in few large writes (whole records each), not one write per
    batch; the packets are all there at close."""
    writes = _writes_per_file(monkeypatch)
    recorder = EvidenceRecorder(str(tmp_path), config())
    raised = alert(recorder, 1, 1000.0)
    for seq in range(2, 202):  # 200 batches of one packet each: 200 jobs
        recorder.observe(request(1, 1000.0 + seq / 1000, seq=seq), 100, None, 0)
        recorder.flush()
    recorder.close()
    name = os.path.basename(str(raised.evidence))
    assert pcaps(tmp_path / "evidence") == {name: 201}
    assert recorder.stats.packets == 201
    assert writes[name] <= 5, writes


def test_records_reach_the_disk_within_a_second_while_the_flow_goes_on(tmp_path: Path) -> None:
    """An analyst opening an alerted flow's pcap while the flow goes on finds its packets of more than
    FLUSH_AFTER ago: nothing waits in a buffer until the flow ends."""
    recorder = EvidenceRecorder(str(tmp_path), config())
    raised = alert(recorder, 1, 1000.0)
    recorder.observe(request(1, 1000.1, seq=2), 100, None, 0)
    recorder.flush()
    path = Path(str(raised.evidence))
    deadline = time.monotonic() + 3.0
    found = 0
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError, ValueError, dpkt.dpkt.NeedData), path.open("rb") as f:
            found = sum(1 for _ in dpkt.pcap.Reader(f))
        if found == 2:
            break
        time.sleep(0.05)
    try:
        assert found == 2
    finally:
        recorder.close()


# -- what is buffered before a notice ----------------------------------------------------------------------


def test_buffered_packets_are_bounded_in_bytes_not_only_in_pairs(tmp_path: Path) -> None:
    """Issue 13: max_flows_buffered pairs of packets_before packets each (4096 x 32) could hold gigabytes of big
    packets (reassembled datagrams, jumbo frames) from a flood of spoofed sources. What the rings hold (frames,
    payloads, overhead) stays within max_buffer_bytes; the least recently active pairs go first
    (buffers_evicted), and the latest pair keeps its whole ring."""
    import tracemalloc

    budget = 4 * 1024 * 1024
    recorder = EvidenceRecorder(str(tmp_path), config(max_buffer_bytes=budget))
    big = bytes(range(256)) * 16  # 4 KiB
    # only what this test and the product allocate: the suite's early lane (tests/early.py) runs benchmark jobs in
    # a thread of this process meanwhile, and tracemalloc counts every thread's allocations
    ours = [tracemalloc.Filter(True, __file__), tracemalloc.Filter(True, "*/icmpsensor/*")]
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot().filter_traces(ours)
        for flow in range(200):  # 200 pairs x 32 packets x ~8 KiB (frame and payload): ~52 MB unbounded
            for seq in range(32):
                payload = big + seq.to_bytes(2, "big") + flow.to_bytes(2, "big")  # a bytes object of its own
                recorder.observe(request(flow, flow + seq / 100, payload, seq), len(payload), None, 0)
        after = tracemalloc.take_snapshot().filter_traces(ours)
    finally:
        tracemalloc.stop()
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert held <= budget * 1.2, held
    assert recorder.stats.buffers_evicted > 150
    last = pair_key(craft.addr(source(199)), craft.addr(DST))
    assert len(recorder.buffered(last)) == 32
    recorder.attach(notice(199, 200.0))  # the latest pair's notice still gets its packets before
    recorder.close()
    assert pcaps(tmp_path / "evidence") == {f"C{199:017d}.pcap": 32}


def test_a_flow_still_sending_keeps_its_file_open_through_a_storm_of_one_packet_flows(tmp_path: Path) -> None:
    """At most MAX_OPEN_FILES flows have files open; the least recently *started* was closed first, so 64 spoofed
    one-packet alerted flows cut a real exfiltration's evidence from 400 packets to 102 (its later packets neither
    written nor counted). The least recently recorded is closed first: a flow still sending stays open."""
    recorder = EvidenceRecorder(str(tmp_path), config(packets_after=1000))
    alert(recorder, 0, 1000.0)  # the real flow's first packet and notice
    for k in range(1, 200):
        alert(recorder, k, 1000.0 + k * 0.01)  # a storm's flow
        recorder.observe(request(0, 1000.0 + k * 0.01 + 0.005, seq=k + 1), 100, None, 0)  # the real flow goes on
        recorder.flush()
    recorder.close()
    assert pcaps(tmp_path / "evidence")[f"C{0:017d}.pcap"] == 200
    assert recorder.stats.cut == 200 - MAX_OPEN_FILES  # the storm's flows' files, closed early, counted
