"""Replay: capture files through the pipeline, in one process or on N worker processes.

`icmpsensor -r FILE... [--workers N]`. Files are read in order as one timeline, then every open
flow is evaluated; notices go to notice.log (and stdout), and one summary line to stderr.

With N > 1 workers (runmode/supervisor.py) each reads every file but decodes and detects only the
frames whose host pair is its own: both directions of a pair, all its echo ids and every fragment
of its datagrams reach one worker, so per-pair state (flows, pending requests, reassembly,
slow-exfiltration memory, evidence) stays whole, as it does for live workers in their fanout group.
Which frames are a worker's, one partition for the whole timeline (runmode/partition.py):

* Ethernet captures whose snap length keeps the addresses (all the files of the run): each worker
  picks its frames out of every libpcap batch in C (partition.select_share), before any Python
  touches them; a frame cut too short to show its addresses is worker 0's;
* any other capture: every worker reads every frame and keeps those of its bucket (about 0.7 us a
  frame in Python, for every frame), moving its clock on the others' as one process would.

The detector's clock. Idle flows and old pending requests are swept at whole seconds of packet
time (detect/flows.py), so what has expired before a packet is handled depends on that packet's
time only: a worker that sees some host pairs decides as one process that sees them all (for
captures in time order). At the end of input every worker reports its clock (InputEnded) and the
supervisor answers with the latest (Flush): each worker makes the last sweep one process would
have made and flushes its flows at that time.

Notices. A worker sends its notices after each batch with its watermark: the packet time no later
notice of its can precede (its clock minus SWEEP_INTERVAL); a batch without notices, its watermark
alone at most every WATERMARK_EVERY (runmode/worker.py). The main process is the single writer
of every sink: a k-way merge (runmode/merge.py) writes a notice once every worker still reading has
a watermark at or past its ts, and the rest in ts order when every worker is done. notice.log is
thus in ts order (with one process it is in the order the notices were raised).

Errors, as with one process: every file is opened and its link type checked before any worker is
forked; a capture that ends in a broken record makes every worker stop at the same frame, and the
problem is reported once. A worker that fails sends its one-line error, which ends the replay with
that error and exit code; a worker that dies, or sends nothing for STUCK_LIMIT seconds while
reading or after the end of input was sent to every worker, ends it with EXIT_INTERNAL.

Limits are per worker (as with live workers): detection.max_flows, max_pending_requests, max_pairs
and decode.max_fragmented_datagrams bound each worker's tables. Evidence: each worker writes the
files of its own flows into the shared directory and re-measures it every 10 s.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from icmpsensor.config.schema import Config
from icmpsensor.console import say
from icmpsensor.decode.fast import Decoder
from icmpsensor.decode.stats import DecodeStats
from icmpsensor.detect.flows import SWEEP_INTERVAL
from icmpsensor.errors import EXIT_CANTCREAT, EXIT_NOINPUT, EXIT_OK
from icmpsensor.notice.record import Notice
from icmpsensor.output.noticelog import NoticeLog
from icmpsensor.output.sink import ListSink, NoticeSink, print_error, write_notice
from icmpsensor.output.stdout import StdoutSink
from icmpsensor.runmode.merge import NoticeMerge
from icmpsensor.runmode.messages import Done, Failed, Flush, InputEnded, Notices, Stats, WorkerReport
from icmpsensor.runmode.partition import ShareFeeder, select_share, share_selectable
from icmpsensor.runmode.pipeline import Pipeline
from icmpsensor.runmode.stats import totals
from icmpsensor.runmode.supervisor import Supervisor, WorkerFailure, WorkerHandle
from icmpsensor.runmode.worker import InProcessLink, Worker, WorkerChannel
from icmpsensor.source.pcapfile import FileSource, ReadProblem, capture_snaplen, is_stream

WATERMARK_LAG = SWEEP_INTERVAL  # a worker's later notices are stamped after its clock minus this
POLL = 0.5  # seconds the main process waits for worker messages before it looks at their processes
STUCK_LIMIT = 120.0  # a reading worker that sends nothing this long (it reports every second) is stuck
JOIN_TIMEOUT = 10.0  # seconds the workers that reported their end get to exit


@dataclass
class ReplayResult:
    files: int = 0
    frames: int = 0
    problems: list[ReadProblem] = field(default_factory=list)  # files that could not be read to the end
    stats: dict[str, Any] = field(default_factory=dict)  # Pipeline.stats() (summed over the workers)
    notices: int = 0
    write_errors: int = 0
    workers: int = 1
    shares: list[int] = field(default_factory=list)  # frames each worker decoded
    worker_peak_rss_kb: list[int] = field(default_factory=list)


def run_replay(cfg: Config, paths: list[str], workers: int = 1) -> int:
    """`icmpsensor -r`: replay, print the summary line, and the exit code."""
    if workers > 1 and any(is_stream(path) for path in paths):
        say("icmpsensor: note: standard input, a FIFO or a pipe can be read only once: replaying in one process")
        workers = 1
    sinks = build_sinks(cfg)
    try:
        result = replay(paths, cfg, sinks, workers)
    finally:
        for sink in sinks:
            sink.close()
    summary = result.stats
    notice_log = f"{cfg.output.log_dir}/{cfg.output.notice_log}"
    lost = sum(sink.lost for sink in sinks if isinstance(sink, NoticeLog))  # never written, each error said
    told = (f"{result.notices} notice(s), {result.notices - lost} written to {notice_log} and {lost} not "
            "(see the errors above)" if lost else f"{result.notices} notice(s) written to {notice_log}")
    say(
        f"icmpsensor: read {result.frames} packets from {result.files} file(s); {told}; "
        f"decode: {json.dumps(summary['decode'], separators=(',', ':'))}; "
        f"detect: {json.dumps(summary['detect'], separators=(',', ':'))}"
        + (f"; evidence: {json.dumps(summary['evidence'], separators=(',', ':'))}" if summary["evidence"] else "")
    )
    for problem in result.problems:
        say(f"icmpsensor: error: {problem.text()}")
    if result.problems:
        return EXIT_NOINPUT
    return EXIT_CANTCREAT if result.write_errors else EXIT_OK


def build_sinks(cfg: Config) -> list[NoticeSink]:
    """A replay's outputs: notice.log (never rotated), and stdout with --stdout."""
    sinks: list[NoticeSink] = [NoticeLog(cfg.output.log_dir, cfg.output.notice_log, cfg.sensor.name,
                                                fmt=cfg.output.format)]
    if cfg.output.stdout:
        sinks.append(StdoutSink(cfg.sensor.name))
    return sinks


def replay(paths: Sequence[str], cfg: Config, sinks: Sequence[NoticeSink], workers: int = 1,
           on_write_error: Callable[[str], None] | None = None) -> ReplayResult:
    """Every file in order as one timeline, then every open flow evaluated; notices to `sinks` (which the
    caller closes). InputError before anything is read if a file cannot be read or has an unsupported
    link type; WorkerFailure (a SensorError) if a worker fails or dies."""
    if workers > 1:
        return ParallelReplay(paths, cfg, workers, sinks, on_write_error).run()
    pipeline = Pipeline(cfg, sinks, on_write_error)
    try:
        return replay_pipeline(pipeline, paths)
    finally:
        pipeline.close_evidence()


def replay_pipeline(pipeline: Pipeline, paths: Sequence[str]) -> ReplayResult:
    """The files through `pipeline` in this process (which the caller closes), then every open flow."""
    source = FileSource(list(paths), pipeline.decoder_for)
    source.check()
    Worker(pipeline, source, InProcessLink()).run()
    pipeline.close_evidence()  # every evidence file written: its counters are final
    return ReplayResult(files=source.files, frames=source.frames, problems=source.problems, stats=pipeline.stats(),
                        notices=pipeline.notices_emitted, write_errors=pipeline.write_errors)


# --------------------------------------------------------------------------- N workers


def _check_captures(paths: Sequence[str]) -> bool:
    """What a replay checks before reading anything: every file opens and has a supported link type.
    Then whether every file can be partitioned by libpcap (share filters): one partition for the whole
    timeline, so that a host pair stays in one worker from one file to the next."""
    linktypes = FileSource(list(paths), lambda linktype: Decoder(linktype, DecodeStats())).check()
    return all(share_selectable(linktype, capture_snaplen(path)) for path, linktype in zip(paths, linktypes,
                                                                                              strict=True))


def _replay_worker(index: int, workers: int, cfg: Config, paths: Sequence[str], select_in_c: bool,
                   conn: Connection) -> int:
    """A replay worker process: its share of every file through its own Pipeline."""
    sink = ListSink()
    pipeline = Pipeline(cfg, [sink])
    share = functools.partial(select_share, index=index, workers=workers) if select_in_c else None
    source = FileSource(list(paths), pipeline.decoder_for, share)
    feeder = None if select_in_c else ShareFeeder(index, workers)
    link = WorkerChannel(index, conn, sink, source)
    link.watermark_lag = WATERMARK_LAG
    Worker(pipeline, source, link, feeder).run()
    return EXIT_OK


class ParallelReplay:
    """The main process: forks the workers, merges their notices into the sinks, sums their counters."""

    def __init__(self, paths: Sequence[str], cfg: Config, workers: int, sinks: Sequence[NoticeSink],
                 on_write_error: Callable[[str], None] | None = None) -> None:
        self.paths = list(paths)
        self.cfg = cfg
        self.count = workers
        self.sinks = list(sinks)
        self.on_write_error = on_write_error or print_error
        self.merge = NoticeMerge(workers)
        self.supervisor = Supervisor(self._handle, self._gone)
        self.notices = 0
        self.write_errors = 0
        self._flush_sent: float | None = None  # when the end of input (Flush) was sent to every worker

    def run(self) -> ReplayResult:
        self.select_in_c = _check_captures(self.paths)
        try:
            for index in range(self.count):
                self.supervisor.spawn(self._body(index), f"icmpsensor-replay-{index}")
            self.supervisor.start_sending()
            while any(w.report is None for w in self.supervisor.workers):
                self.supervisor.pump(POLL)
                self._write(self.merge.ready())
                self._check_stuck()
            self._write(self.merge.rest())
            self.supervisor.join(time.monotonic() + JOIN_TIMEOUT)
        except WorkerFailure:
            self._write(self.merge.rest())  # what the workers found before it: still written
            raise
        finally:
            self.supervisor.reap()
        return self._result()

    def _body(self, index: int) -> Callable[[Connection], int]:
        cfg, paths, count, select_in_c = self.cfg, self.paths, self.count, self.select_in_c
        return lambda conn: _replay_worker(index, count, cfg, paths, select_in_c, conn)

    def _handle(self, worker: WorkerHandle, message: Any) -> None:
        if isinstance(message, Notices):
            self.merge.add(worker.index, message.notices, message.watermark)
        elif isinstance(message, Stats):
            worker.stats = message.stats
        elif isinstance(message, InputEnded):
            worker.clock = message.clock
            self.merge.add(worker.index, message.notices, message.clock - WATERMARK_LAG)
            clocks = [w.clock for w in self.supervisor.workers]
            if None not in clocks:
                self.supervisor.broadcast(Flush(max(c for c in clocks if c is not None)))
                self._flush_sent = time.monotonic()
        elif isinstance(message, Done):
            worker.report = message.report
            self.merge.done(worker.index, message.notices)
        elif isinstance(message, Failed):
            text = message.text
            if text.startswith("internal error"):
                text = f"worker {worker.index} (pid {worker.pid}): {text}"
            raise WorkerFailure(text, message.exit_code)
        else:
            raise WorkerFailure(f"worker {worker.index} (pid {worker.pid}) sent {type(message).__name__}")

    def _gone(self, worker: WorkerHandle) -> None:
        if worker.report is None:
            raise WorkerFailure(f"worker {worker.index} (pid {worker.pid}) exited unexpectedly "
                                f"({worker.exit_text()}); replay stopped")

    def _check_stuck(self) -> None:
        """A worker still reading (it reports every second) that has sent nothing for STUCK_LIMIT seconds;
        one that has read its input waits for the others, then flushes (a few seconds at most): stuck when it has
        sent nothing for STUCK_LIMIT seconds since the end was sent to every worker."""
        flushed = self._flush_sent
        for worker in self.supervisor.silent(STUCK_LIMIT):
            if worker.clock is None:
                when = ""
            elif worker.report is None and flushed is not None and time.monotonic() - flushed > STUCK_LIMIT:
                when = " after its input ended"
            else:
                continue
            raise WorkerFailure(f"worker {worker.index} (pid {worker.pid}) sent nothing for {STUCK_LIMIT:g} s{when}; "
                                "replay stopped")

    def _write(self, notices: Iterable[Notice]) -> None:
        for notice in notices:
            self.notices += 1
            self.write_errors += write_notice(self.sinks, notice, self.on_write_error)

    def _result(self) -> ReplayResult:
        reports: list[WorkerReport] = [w.report for w in self.supervisor.workers if w.report is not None]
        first = reports[0]
        stats = totals([r.stats for r in reports])
        stats["notices"], stats["notice_write_errors"] = self.notices, self.write_errors  # the main process's
        # With share filters each worker read its own frames; otherwise every worker read them all.
        frames = sum(r.frames for r in reports) if self.select_in_c else first.frames
        return ReplayResult(
            files=first.files,
            frames=frames,
            problems=self._problems(reports),
            stats=stats,
            notices=self.notices,
            write_errors=self.write_errors,
            workers=len(reports),
            shares=[r.stats["decode"]["frames"] for r in reports],
            worker_peak_rss_kb=[r.peak_rss_kb for r in reports],
        )

    def _problems(self, reports: list[WorkerReport]) -> list[ReadProblem]:
        """Each broken capture once, as one process words it: every worker met the same break."""
        frames: dict[tuple[str, str, bool], list[int]] = {}
        for report in reports:
            for problem in report.problems:
                frames.setdefault((problem.path, problem.error, problem.opened), []).append(problem.frames)
        return [ReadProblem(path, error, sum(counts) if self.select_in_c else counts[0], opened)
                for (path, error, opened), counts in frames.items()]
