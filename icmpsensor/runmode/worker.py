"""The one worker loop: a packet source fed through a Pipeline, in every run mode.

A run mode is a packet source (source/: capture files or a live interface) plugged into a
topology: in-process (the loop runs in the main process and its notices go straight to the
outputs) or N worker processes (each runs this loop; its notices go to the supervisor). What a
topology does between batches and when the input ends is its `Link`: `InProcessLink` for a replay
in one process, the live daemon itself for a live sensor in one process (runmode/live.py), and
`WorkerChannel` in a worker process, which speaks the worker protocol (runmode/messages.py).
"""

from __future__ import annotations

import os
import syslog
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any, Protocol

from icmpsensor.errors import EXIT_NOINPUT, SensorError
from icmpsensor.output.sink import ListSink
from icmpsensor.runmode.messages import Done, Failed, Flush, InputEnded, Log, Notices, Reload, Stats, Stop, WorkerReport
from icmpsensor.runmode.pipeline import Pipeline, settle_gc
from icmpsensor.runmode.stats import peak_rss_kb, worker_stats
from icmpsensor.source.batch import Batch
from icmpsensor.source.live import EVIDENCE_DEADLINE, FLUSH_DEADLINE

QUEUE_WAIT = 0.2  # longest wait for a batch, so that signals and ticks are never late
TICK = 1.0  # seconds between housekeeping rounds (live: expiry on wall time, stats, heartbeat)
# A worker's clock alone (no notices) goes to the main process at most this often (seconds): it moves with every
# batch, and the main process, on the same cores, would wake for each. Notices go at once, with the clock.
WATERMARK_EVERY = 0.05
EVIDENCE_RESYNC_TICKS = 10  # a worker re-measures the shared evidence directory this often


class Source(Protocol):
    live: bool  # packet times are wall-clock times: the detector's clock also follows the wall
    ended: bool  # next_batch has nothing more to give
    failure: str | None  # live: why the capture stopped, if it failed

    def next_batch(self, timeout: float) -> Batch | None: ...

    def stop(self, at: float | None = None) -> None: ...

    def close(self) -> Iterator[Batch]: ...

    def take_events(self) -> list[str]: ...

    def tick(self) -> None:
        """Live: once per TICK of wall time (the detection lag's window)."""

    def clock(self, now: float) -> float:
        """Live: how far a tick may move the detector's clock towards the wall time `now`."""


class ShareFeed(Protocol):
    """A replay worker's share of the frames, picked in Python (runmode/partition.py ShareFeeder)."""

    latest: float

    def feed(self, pipeline: Pipeline, batch: Batch) -> None: ...


class Link(Protocol):
    def control(self, worker: Worker) -> None:
        """Before a batch is fed: what the main process sent meanwhile (a reload applies to the batch the wait
        returned, as the packets in it may have been sent after the reload was reported)."""

    def round(self, worker: Worker) -> None:
        """After every batch, or every QUEUE_WAIT seconds without one."""

    def input_ended(self, worker: Worker) -> float | None:
        """The source has ended: when to flush the open flows (None: at the detector's clock)."""

    def flush_deadline(self) -> float | None:
        """A live stop's time (time.monotonic()) past which the open flows' notices are folded (Pipeline.finish);
        None: no deadline."""

    def done(self, worker: Worker) -> None:
        """Every flow is flushed."""


class Worker:
    """One Pipeline fed by one Source; `share` None: every frame read is this worker's."""

    def __init__(self, pipeline: Pipeline, source: Source, link: Link, share: ShareFeed | None = None) -> None:
        self.pipeline = pipeline
        self.source = source
        self.link = link
        self.share = share

    def run(self) -> None:
        source, link = self.source, self.link
        settle_gc()
        while not source.ended:
            batch = source.next_batch(QUEUE_WAIT)
            if batch is not None:
                link.control(self)
                self.feed(batch)
            link.round(self)
        at = link.input_ended(self)
        for batch in source.close():
            self.feed(batch)
        if not source.live:  # a replay ends at its last frame's time, whatever that frame is (each worker read all)
            at = max(self.latest() if at is None else at, getattr(source, "latest", 0.0))
        if at is not None:
            detector = self.pipeline.detector
            self.pipeline.advance(at)  # the last sweep one process made, at `at`'s whole second
            detector.now = max(detector.now, at)
        self.pipeline.finish(link.flush_deadline())
        link.done(self)

    def feed(self, batch: Batch) -> None:
        if self.share is None:
            self.pipeline.feed_batch(batch.decoder, batch.buf, batch.meta)
        else:
            self.share.feed(self.pipeline, batch)

    def latest(self) -> float:
        """The latest packet time this worker knows (with a Python share, the other workers' frames too): its
        watermark. Not the last frame read: an idle flow of its own ends (its summary stamped before that frame)
        only when the worker's clock moves past it."""
        now = self.pipeline.detector.now
        return max(now, self.share.latest) if self.share is not None else now

    def between_ticks(self, now: float) -> None:
        """Every round of a live loop (after each batch, or QUEUE_WAIT without one; `now` the wall time): a storm
        that went quiet (or was held MAX_HOLD) is told now, not at the next tick. Only the aggregator's clock moves
        (to the same bound as a tick's): expiry stays with the ticks."""
        if self.source.live and self.pipeline.aggregator.due_at(now):
            self.pipeline.tell_due(self.source.clock(now))

    def tick(self, now: float) -> None:
        """Once per TICK of wall time: a live detector's clock follows the wall while the wire is quiet, and no
        further than the capture has been read (LiveSource.clock)."""
        if self.source.live:
            self.source.tick()
            self.pipeline.advance(self.source.clock(now))


class InProcessLink:
    """A replay in the main process: the notices went straight to the outputs; nothing else to do."""

    def control(self, worker: Worker) -> None:
        pass

    def round(self, worker: Worker) -> None:
        pass

    def input_ended(self, worker: Worker) -> float | None:
        return None

    def flush_deadline(self) -> float | None:
        return None

    def done(self, worker: Worker) -> None:
        pass


class WorkerChannel:
    """The Link of a worker process: notices, counters and the end go to the supervisor over `conn`."""

    def __init__(self, index: int, conn: Connection, sink: ListSink, source: Any) -> None:
        self.index = index
        self.conn = conn
        self.sink = sink
        self.source = source
        self.watermark_lag = 0.0
        self._sent_watermark = float("-inf")
        self._next_watermark = 0.0  # time.monotonic() from which the clock alone may be sent again
        self._next_tick = time.time()
        self._ticks = 0
        self._failure_sent = False
        self._flush: Flush | None = None  # a Flush that came before the input ended (a worker still draining)
        self._stopped_at: float | None = None  # live: when the stop was asked for (time.monotonic())

    def round(self, worker: Worker) -> None:
        now = time.time()
        tick = now >= self._next_tick
        if not tick:
            worker.between_ticks(now)
        notices = self.sink.take()
        watermark = worker.latest() - self.watermark_lag
        mono = time.monotonic()
        if notices or (watermark > self._sent_watermark and mono >= self._next_watermark):
            self._sent_watermark = watermark
            self._next_watermark = mono + WATERMARK_EVERY
            self.conn.send(Notices(notices, watermark))
        if tick:
            self._next_tick = now + TICK
            self._tick(worker, now)
        for event in self.source.take_events():
            self.conn.send(Log(syslog.LOG_WARNING, event))
        if self.source.failure and not self._failure_sent:
            self._failure_sent = True  # the supervisor stops every worker
            self.conn.send(Failed(EXIT_NOINPUT, self.source.failure))
        self.control(worker)

    def control(self, worker: Worker) -> None:
        while self.conn.poll():
            message = self.conn.recv()
            if isinstance(message, Reload):
                worker.pipeline.reconfigure(message.cfg)
            elif isinstance(message, Stop):
                self._stop(message.at)
            elif isinstance(message, Flush):  # to a worker still draining
                self._stop(time.monotonic())
                self._flush = message

    def _stop(self, at: float) -> None:
        """The stop, asked for at `at` (time.monotonic()); the first one counts."""
        if self._stopped_at is None:
            self._stopped_at = at
        self.source.stop(self._stopped_at)

    def _tick(self, worker: Worker, now: float) -> None:
        worker.tick(now)
        self._ticks += 1
        evidence = worker.pipeline.evidence
        if evidence is not None and self._ticks % EVIDENCE_RESYNC_TICKS == 0:
            evidence.refresh_disk_usage()  # the other workers write into the same directory
        self.conn.send(Stats(worker_stats(worker.pipeline, self.source)))

    def input_ended(self, worker: Worker) -> float | None:
        self.conn.send(InputEnded(self.sink.take(), worker.latest()))
        parent = os.getppid()
        while self._flush is None:
            if not self.conn.poll(1.0):
                if os.getppid() != parent:
                    raise SensorError("the main process is gone")
                continue
            message = self.conn.recv()
            if isinstance(message, Flush):
                self._flush = message
            elif not isinstance(message, Reload | Stop):
                raise SensorError(f"unexpected message {type(message).__name__} from the main process")
        return self._flush.at

    def flush_deadline(self) -> float | None:
        return None if self._stopped_at is None else self._stopped_at + FLUSH_DEADLINE

    def done(self, worker: Worker) -> None:
        # live: the evidence writer gets what is left of the stop's budget; a replay waits for all of it. The
        # notices go first, so that the main process writes them while the writer drains.
        if self._stopped_at is not None:
            self.conn.send(Notices(self.sink.take(), self._sent_watermark))
        worker.pipeline.close(None if self._stopped_at is None else self._stopped_at + EVIDENCE_DEADLINE)
        source = self.source
        report = WorkerReport(self.index, worker_stats(worker.pipeline, source),
                              files=getattr(source, "files", 0), frames=getattr(source, "frames", 0),
                              problems=list(getattr(source, "problems", [])), peak_rss_kb=peak_rss_kb())
        self.conn.send(Done(self.sink.take(), report))
