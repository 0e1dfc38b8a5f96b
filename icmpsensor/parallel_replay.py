"""Offline replay on N processes: `icmpsensor -r FILE... --workers N` (or `capture.workers: N`).

One process replays at one core's speed. With N > 1, N worker processes are forked, and each
reads every capture file itself but decodes and detects only the frames whose host pair is
its own. Both directions of a pair, all its echo ids and every fragment of its datagrams
reach one worker, so per-pair state (flows, pending requests, reassembly, slow-exfiltration
memory, evidence) stays whole, as it does for live workers in their kernel fanout group
(workers.py). Which frames are a worker's, one partition for the whole timeline:

* Ethernet captures whose snap length keeps the addresses (all the files of the run):
  libpcap decides, with a BPF filter per worker (`partition.share_filter`), so a worker
  reads only its own frames and spends nothing in Python on the others';
* any other capture: every worker reads every frame and keeps those whose bucket
  (`partition.pair_key`) % N is its index (about 0.7 us a frame in Python, for every frame).

The detector's clock. Idle flows and old pending requests are swept at whole seconds of
packet time (flows.FlowDetector._sweep), so what has expired before a packet is handled
depends on that packet's time only: a worker that sees some host pairs decides as one
process that sees them all (for captures in time order). At the end of input every worker
sends its clock (MSG_CLOCK) and the main process answers with the latest (MSG_END): each
worker makes the last sweep one process would have made and flushes its flows at that
time, so flows flushed at the end carry the same ts as with one process. Without share
filters a worker also follows the other frames' timestamps and sweeps where one process
would.

Notices. A worker's only sink collects its notices; after each batch of frames (4096) it
sends them, pickled, in one message, with its watermark: the packet time no later notice
of its can precede (its clock minus SWEEP_INTERVAL: a later expiry notice is stamped after
the last sweep, a later packet is no older than the clock). The main process is the single
writer of every sink (notice.log, stdout): a k-way merge writes a notice once every worker
still reading has a watermark at or past its ts (ties: by worker index, then in arrival
order), and flushes the rest in ts order when every worker is done. notice.log is thus in
ts order (with one process it is in the order the notices were raised). Captures whose
timestamps go backwards get every notice, some out of order.

Errors, as with one process: every file is opened and its link type checked in the main
process before any worker is forked; a capture that ends in a broken record makes every
worker stop at the same frame, and the problem is reported once (with the frames all the
workers read before it). A worker that fails sends
its one-line error, which ends the replay with that error and exit code; a worker that dies
(or sends nothing for SILENCE_LIMIT seconds) ends it with EXIT_INTERNAL. The main process
never waits without a timeout, and watches the workers' process sentinels.

Limits per worker, not per replay (as with live workers): detection.max_flows,
max_pending_requests, max_pairs and decode.max_fragmented_datagrams bound each worker's
tables. A fragmented datagram that never completes is counted as timed out when a later
fragment of its worker's share arrives (with one process: any later fragment).

Evidence (output.evidence): each worker's Pipeline writes the files of its own flows into the
shared evidence directory (uid-named: unique), and, as live workers do, re-measures the
directory every EVIDENCE_RESYNC seconds, so `max_total_bytes` can be overshot only by what
the others wrote since; a file another worker deleted is skipped (evidence.py).
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import multiprocessing
import os
import resource
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from icmpsensor.capture import BATCH_META
from icmpsensor.config import Config
from icmpsensor.decode import Decoder, DecodeStats
from icmpsensor.errors import EXIT_INTERNAL, InputError, SensorError
from icmpsensor.flows import SWEEP_INTERVAL
from icmpsensor.notices import Notice
from icmpsensor.partition import (
    BUCKET_MASK,
    NOT_ICMP,
    BatchKeyFunction,
    pair_key_in_batch,
    share_filter,
    share_filters_apply,
)
from icmpsensor.pipeline import Pipeline, add_stats, write_notice
from icmpsensor.replay import (  # the helpers replay_file uses: the same reading, salvage and messages
    ReplayResult,
    broken_capture_text,
    capture_snaplen,
    decoder_for_file,
    open_capture,
    read_capture,
)
from icmpsensor.sinks import ListSink, NoticeSink

WATERMARK_LAG = SWEEP_INTERVAL  # a worker's later notices are stamped after its clock minus this
EVIDENCE_RESYNC = 10.0  # seconds between re-measuring the shared evidence directory (workers.py: 10 ticks)
POLL = 0.5  # seconds the main process waits for worker messages before it looks at their processes
SILENCE_LIMIT = 120.0  # a worker that sends nothing this long (it reports every 4096 frames) is stuck
JOIN_TIMEOUT = 10.0  # seconds a worker that reported its end gets to exit
MESSAGES_PER_ROUND = 64  # messages taken from one worker before the others get a turn

_FORK = multiprocessing.get_context("fork")

# Worker -> main messages (pickled tuples).
MSG_NOTICES = "notices"  # (MSG_NOTICES, [Notice...], watermark)
MSG_CLOCK = "clock"  # (MSG_CLOCK, [Notice...], the latest ICMP timestamp read): input read, waiting for MSG_END
MSG_DONE = "done"  # (MSG_DONE, [Notice...], WorkerReport)
MSG_FAILED = "failed"  # (MSG_FAILED, exit code, one-line message)
# Main -> worker: (MSG_END, the latest timestamp any worker read): flush at that time.
MSG_END = "end"


# --------------------------------------------------------------------------- records


@dataclass
class Problem:
    """A capture file that could not be read to the end, as one worker met it."""

    path: str
    error: str
    frames: int  # frames this worker read from it before (and salvaged after) the break


@dataclass
class WorkerReport:
    """What a worker sends once its input has ended."""

    index: int
    files: int
    frames: int  # frames read: every worker reads every frame
    problems: list[Problem]
    stats: dict[str, Any]  # its Pipeline.stats(): its share of the frames
    peak_rss_kb: int  # the worker process's peak resident set (VmHWM)


@dataclass
class ParallelReplayResult(ReplayResult):
    """ReplayResult, plus what `Pipeline.stats()` and `Pipeline.write_errors` give with one process."""

    workers: int = 0
    stats: dict[str, object] = field(default_factory=dict)  # Pipeline.stats() of one process, summed
    notices: int = 0  # written by the main process
    write_errors: int = 0
    shares: list[int] = field(default_factory=list)  # frames each worker decoded
    worker_peak_rss_kb: list[int] = field(default_factory=list)


class WorkerFailure(SensorError):
    """A worker failed or died: the replay ends with this one-line message and exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_INTERNAL) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# --------------------------------------------------------------------------- the worker process


class ReplayWorker:
    """Worker `index` of `workers`: decodes and detects its share of every file; runs in a forked process."""

    def __init__(self, index: int, workers: int, cfg: Config, conn: Connection, use_share_filter: bool) -> None:
        self.index = index
        self.workers = workers
        self.conn = conn
        # libpcap picks this worker's frames (partition.share_filter), or every frame is read and keyed here
        self.share_filter = share_filter(index, workers) if use_share_filter else None
        self.problems: list[Problem] = []
        self.sink = ListSink()
        self.pipeline = Pipeline(cfg, [self.sink])
        self.clock = 0.0  # the latest ICMP message's timestamp: the clock one process would have
        self.next_sweep = 0.0  # as FlowDetector's: the first packet sweeps
        self.next_resync = time.monotonic() + EVIDENCE_RESYNC
        # owned[key] is 1 when a frame with that key is this worker's: one look-up per frame
        self.owned = bytes((key & BUCKET_MASK) % workers == index for key in range(2 * NOT_ICMP))

    def run(self, paths: Sequence[str]) -> None:
        result = ReplayResult()
        for path in paths:
            self.replay_file(path, result)
        # Flows end at the capture's last timestamp, which the worker that read it knows: every
        # worker says where its clock got to, and the main process answers with the latest.
        self.conn.send((MSG_CLOCK, self.sink.take(), self.latest()))
        end = self.wait_for_end()
        self.pipeline.advance(end)  # the last sweep one process made, at end's whole second
        self.pipeline.detector.now = max(self.pipeline.detector.now, end)
        self.pipeline.finish()
        self.pipeline.close()
        self.conn.send((MSG_DONE, self.sink.take(), self.report(result)))

    def latest(self) -> float:
        """The latest ICMP timestamp this worker knows: its clock, or its detector's with a share filter."""
        return max(self.clock, self.pipeline.detector.now)

    def wait_for_end(self) -> float:
        """The main process's MSG_END time; waits while the main process lives (checked each second)."""
        parent = os.getppid()
        while not self.conn.poll(1.0):
            if os.getppid() != parent:
                raise SensorError("the main process is gone")
        kind, end = self.conn.recv()
        if kind != MSG_END:
            raise SensorError(f"unexpected message {kind!r} from the main process")
        return float(end)

    def replay_file(self, path: str, result: ReplayResult) -> None:
        """replay.replay_file for this worker's share; every worker reads, counts and salvages every frame."""
        reader = open_capture(path)
        decoder = decoder_for_file(path, reader, self.pipeline)
        if self.share_filter is not None:
            reader.setfilter(self.share_filter)
            feed = functools.partial(self.pipeline.feed_batch, decoder)
        else:
            feed = functools.partial(self.feed_batch, decoder, pair_key_in_batch(reader.datalink()))
        result.files += 1
        done, error = read_capture(path, reader, feed, self.share_filter, self.ship)
        if error is not None:
            self.problems.append(Problem(path, error, done))
            self.ship()
        result.frames += done

    def feed_batch(self, decoder: Decoder, key: BatchKeyFunction, buf: bytes, meta: bytes) -> None:
        """Feed this worker's frames of one libpcap batch to its Pipeline (they stay in the buffer: only
        their records are passed on); sweep where one process's clock would."""
        owned = self.owned
        clock, next_sweep = self.clock, self.next_sweep
        pipeline = self.pipeline
        records: list[bytes] = []  # this worker's frames' 16-byte records in meta
        append = records.append
        size = BATCH_META.size
        at = 0
        for sec, usec, off, cap in BATCH_META.iter_unpack(meta):
            frame_key = key(buf, off, cap)
            if frame_key < NOT_ICMP:
                ts = sec + usec * 1e-6
                if ts > clock:  # as FlowDetector.process moves its clock
                    clock = ts
                    if clock >= next_sweep:
                        next_sweep = clock + SWEEP_INTERVAL
                        if records:
                            pipeline.feed_batch(decoder, buf, b"".join(records))
                            records = []
                            append = records.append
                        pipeline.advance(clock)
            if owned[frame_key]:
                append(meta[at : at + size])
            at += size
        if records:
            pipeline.feed_batch(decoder, buf, b"".join(records))
        self.clock, self.next_sweep = clock, next_sweep

    def ship(self) -> None:
        """The batch's notices and the watermark to the main process; now and then re-measure evidence."""
        self.conn.send((MSG_NOTICES, self.sink.take(), self.latest() - WATERMARK_LAG))
        evidence = self.pipeline.evidence
        if evidence is not None and time.monotonic() >= self.next_resync:
            self.next_resync = time.monotonic() + EVIDENCE_RESYNC
            evidence.refresh_disk_usage()

    def report(self, result: ReplayResult) -> WorkerReport:
        return WorkerReport(
            index=self.index,
            files=result.files,
            frames=result.frames,
            problems=self.problems,
            stats=self.pipeline.stats(),
            peak_rss_kb=peak_rss_kb(),
        )


def _worker_main(index: int, workers: int, cfg: Config, paths: Sequence[str], conn: Connection,
                 inherited: Sequence[Connection], use_share_filter: bool) -> None:
    """Entry point of a worker process (forked): its end, or its one-line error, goes to the main process."""
    for other in inherited:  # the main process's ends of the earlier workers' pipes: not ours to hold open
        other.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the main process decides
    code = 0
    try:
        ReplayWorker(index, workers, cfg, conn, use_share_filter).run(paths)
    except SensorError as exc:
        code = exc.exit_code
        _send_quietly(conn, (MSG_FAILED, exc.exit_code, exc.message))
    except (BrokenPipeError, ConnectionResetError, EOFError):
        code = EXIT_INTERNAL  # the main process is gone: nobody left to report to
    except Exception as exc:
        if os.environ.get("ICMPSENSOR_DEBUG"):
            traceback.print_exc(file=sys.stderr)
        code = EXIT_INTERNAL
        message = f"worker {index} (pid {os.getpid()}): internal error: {type(exc).__name__}: {exc}"
        _send_quietly(conn, (MSG_FAILED, EXIT_INTERNAL, message))
    with contextlib.suppress(OSError):
        conn.close()
    sys.exit(code)


def _send_quietly(conn: Connection, message: tuple[Any, ...]) -> None:
    with contextlib.suppress(OSError, ValueError):
        conn.send(message)


# --------------------------------------------------------------------------- the merge


class NoticeMerge:
    """k-way merge of the workers' notices by ts, released as the workers' watermarks pass them."""

    def __init__(self, workers: int) -> None:
        self.watermarks = [float("-inf")] * workers  # +inf once a worker is done
        self._heap: list[tuple[float, int, int, Notice]] = []
        self._arrival = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, worker: int, notices: Sequence[Notice], watermark: float) -> None:
        for notice in notices:
            heapq.heappush(self._heap, (notice.ts, worker, next(self._arrival), notice))
        if watermark > self.watermarks[worker]:
            self.watermarks[worker] = watermark

    def done(self, worker: int, notices: Sequence[Notice]) -> None:
        self.add(worker, notices, float("inf"))

    def ready(self) -> Iterator[Notice]:
        """The notices no worker can precede any more, in ts order."""
        floor = min(self.watermarks)
        heap = self._heap
        while heap and heap[0][0] <= floor:
            yield heapq.heappop(heap)[3]

    def rest(self) -> Iterator[Notice]:
        """Everything still held, in ts order (end of input, or a failure)."""
        heap = self._heap
        while heap:
            yield heapq.heappop(heap)[3]


# --------------------------------------------------------------------------- the main process


@dataclass
class WorkerHandle:
    """The main process's view of one worker."""

    index: int
    process: BaseProcess
    conn: Connection
    report: WorkerReport | None = None
    heard: float = field(default_factory=time.monotonic)
    clock: float | None = None  # set once it has read its input (MSG_CLOCK)

    @property
    def reading(self) -> bool:
        return self.report is None


def check_captures(paths: Sequence[str]) -> bool:
    """What replay_files checks before reading anything: every file opens and has a supported link type.
    Then whether every file can be partitioned by libpcap (partition.share_filter): one partition for
    the whole timeline, so that a host pair stays in one worker from one file to the next."""
    filters_apply = True
    for path in paths:
        reader = open_capture(path)
        try:
            Decoder(reader.datalink(), DecodeStats())
            filters_apply = filters_apply and share_filters_apply(reader.datalink(), capture_snaplen(path))
        except InputError as exc:
            raise InputError(f"capture file {path}: {exc.message}") from None
        finally:
            reader.close()
    return filters_apply


class ParallelReplay:
    """The main process: forks the workers, merges their notices into the sinks, sums their counters."""

    def __init__(self, paths: Sequence[str], cfg: Config, workers: int, sinks: Sequence[NoticeSink],
                 on_write_error: Callable[[str], None] | None = None) -> None:
        if workers < 2:
            raise ValueError("parallel replay needs at least 2 workers")
        self.paths = list(paths)
        self.cfg = cfg
        self.sinks = list(sinks)
        self.on_write_error = on_write_error or _print_error
        self.merge = NoticeMerge(workers)
        self.workers: list[WorkerHandle] = []
        self.count = workers
        self.notices = 0
        self.write_errors = 0

    def run(self) -> ParallelReplayResult:
        self.share_filters = check_captures(self.paths)
        try:
            self._start()
            self._pump()
            self._join()
        except WorkerFailure:
            self._write(self.merge.rest())  # what the workers found before it: still written
            raise
        finally:
            self._reap()
        return self._result()

    # -- start -------------------------------------------------------------------------------

    def _start(self) -> None:
        for stream in (sys.stdout, sys.stderr):  # a fork copies unflushed buffers, which each child would flush
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        for index in range(self.count):
            ours, theirs = _FORK.Pipe()
            inherited = [w.conn for w in self.workers]
            process = _FORK.Process(target=_worker_main, name=f"icmpsensor-replay-{index}",
                                    args=(index, self.count, self.cfg, self.paths, theirs, inherited,
                                          self.share_filters))
            process.start()
            theirs.close()  # so that the worker's exit is an EOF here
            self.workers.append(WorkerHandle(index, process, ours))

    # -- messages ------------------------------------------------------------------------------

    def _pump(self) -> None:
        """Take the workers' messages and write what the merge releases, until every worker is done."""
        while reading := [w for w in self.workers if w.reading]:
            waitables: list[Any] = [w.conn for w in reading] + [w.process.sentinel for w in reading]
            if wait(waitables, POLL):
                for worker in reading:
                    self._receive(worker)
                self._write(self.merge.ready())
            self._check_silence(reading)

    def _receive(self, worker: WorkerHandle) -> None:
        conn = worker.conn
        try:
            for _ in range(MESSAGES_PER_ROUND):
                if not conn.poll():
                    break
                self._handle(worker, conn.recv())
                if not worker.reading:
                    return
        except (EOFError, OSError):
            self._gone(worker)
        if worker.reading and not worker.process.is_alive() and not _pending(conn):
            self._gone(worker)  # exited without an EOF reaching us (a descendant holds the pipe)

    def _handle(self, worker: WorkerHandle, message: tuple[Any, ...]) -> None:
        worker.heard = time.monotonic()
        kind = message[0]
        if kind == MSG_NOTICES:
            self.merge.add(worker.index, message[1], message[2])
        elif kind == MSG_CLOCK:
            worker.clock = message[2]
            self.merge.add(worker.index, message[1], message[2] - WATERMARK_LAG)
            clocks = [w.clock for w in self.workers]
            if None not in clocks:
                end = max(c for c in clocks if c is not None)
                for each in self.workers:
                    _send_quietly(each.conn, (MSG_END, end))  # one that died meanwhile: its sentinel says so
        elif kind == MSG_DONE:
            worker.report = message[2]
            self.merge.done(worker.index, message[1])
        elif kind == MSG_FAILED:
            raise WorkerFailure(message[2], message[1])
        else:
            raise WorkerFailure(f"worker {worker.index} (pid {worker.process.pid}) sent {kind!r}")

    def _gone(self, worker: WorkerHandle) -> None:
        worker.process.join(1.0)
        raise WorkerFailure(f"worker {worker.index} (pid {worker.process.pid}) exited unexpectedly "
                            f"({_exit_text(worker.process.exitcode)}); replay stopped")

    def _check_silence(self, reading: list[WorkerHandle]) -> None:
        """A worker with nothing to read for SILENCE_LIMIT seconds (it reports every batch) is stuck."""
        now = time.monotonic()
        for worker in reading:
            if worker.clock is not None:
                continue  # done reading: waits for the others, then flushes (a few seconds at most)
            if worker.reading and now - worker.heard > SILENCE_LIMIT and not _pending(worker.conn):
                raise WorkerFailure(f"worker {worker.index} (pid {worker.process.pid}) sent nothing for "
                                    f"{SILENCE_LIMIT:g} s; replay stopped")

    def _write(self, notices: Iterator[Notice]) -> None:
        for notice in notices:
            self.notices += 1
            self.write_errors += write_notice(self.sinks, notice, self.on_write_error)

    # -- end -----------------------------------------------------------------------------------

    def _join(self) -> None:
        self._write(self.merge.rest())
        deadline = time.monotonic() + JOIN_TIMEOUT
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))

    def _reap(self) -> None:
        """No worker outlives the replay: one still running after an error or Ctrl-C is killed."""
        for worker in self.workers:
            if worker.process.is_alive():
                worker.process.kill()
            worker.process.join(2.0)
            with contextlib.suppress(OSError):
                worker.conn.close()

    def _result(self) -> ParallelReplayResult:
        reports = [w.report for w in self.workers if w.report is not None]
        first = reports[0]
        stats: dict[str, Any] = {}
        for report in reports:
            add_stats(stats, report.stats)
        stats["notices"], stats["notice_write_errors"] = self.notices, self.write_errors  # the main process's
        # With share filters each worker read its own frames; otherwise every worker read them all.
        frames = sum(r.frames for r in reports) if self.share_filters else first.frames
        return ParallelReplayResult(
            files=first.files,
            frames=frames,
            problems=self._problems(reports),
            workers=len(reports),
            stats=stats,
            notices=self.notices,
            write_errors=self.write_errors,
            shares=[r.stats["decode"]["frames"] for r in reports],
            worker_peak_rss_kb=[r.peak_rss_kb for r in reports],
        )


    def _problems(self, reports: list[WorkerReport]) -> list[str]:
        """Each broken capture once, as replay_file words it: every worker met the same break."""
        frames: dict[tuple[str, str], list[int]] = {}
        for report in reports:
            for problem in report.problems:
                frames.setdefault((problem.path, problem.error), []).append(problem.frames)
        return [broken_capture_text(path, error, sum(counts) if self.share_filters else counts[0])
                for (path, error), counts in frames.items()]


def replay_files_parallel(paths: Sequence[str], cfg: Config, workers: int, sinks: Sequence[NoticeSink],
                          on_write_error: Callable[[str], None] | None = None) -> ParallelReplayResult:
    """replay_files on `workers` (>= 2) processes: every file in order as one timeline, then every open flow
    evaluated; notices go to `sinks` (which the caller closes) in ts order.

    Raises InputError before forking if a file cannot be read or has an unsupported link type, and
    WorkerFailure (a SensorError) if a worker fails or dies.
    """
    return ParallelReplay(paths, cfg, workers, sinks, on_write_error).run()


# --------------------------------------------------------------------------- helpers


def peak_rss_kb() -> int:
    """This process's peak resident set in KiB (VmHWM: its own, not the parent's it was forked with)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _pending(conn: Connection) -> bool:
    try:
        return conn.poll()
    except (EOFError, OSError):
        return False


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def _print_error(message: str) -> None:
    print(f"icmpsensor: error: {message}", file=sys.stderr)
