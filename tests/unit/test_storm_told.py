"""Live, a storm's aggregate is told QUIET seconds after its last fold, at the loop's next round (after every
batch, or QUEUE_WAIT without one), not at the next housekeeping tick, up to TICK later.

Issue 13 asks for the storm's notices in notice.log within 2 s of the end of sending. Told only at the ticks, a
storm of distinct sources (a fold until its very last packet) was told 1-2 s after its end, plus the detector's
lag, depending on where the tick fell: 1.83 and 1.89 s in the two shapes of a 300,000-source storm at 20,000
packets/s (2026-12-05), a hair under the requirement.
"""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.connection import Connection
from pathlib import Path

from icmpsensor.config.schema import Config
from icmpsensor.notice.aggregate import QUIET
from icmpsensor.notice.record import Notice
from icmpsensor.output.sink import ListSink
from icmpsensor.runmode.messages import Notices
from icmpsensor.runmode.pipeline import Pipeline
from icmpsensor.runmode.worker import QUEUE_WAIT, TICK, Worker, WorkerChannel

T0 = 1_700_000_000.0
VICTIM = "198.51.100.7"
STORM = 300


class QuietWire:
    """A live source whose wire went quiet: everything captured was read (its clock is the wall's)."""

    live = True
    failure = None
    ended = False

    def __init__(self) -> None:
        self.ticks = 0

    def clock(self, now: float) -> float:
        return now

    def tick(self) -> None:
        self.ticks += 1

    def take_events(self) -> list[str]:
        return []


def storm_notices(last: float) -> list[Notice]:
    """A DataExfil from each of STORM sources to one host, the last at `last`."""
    first = last - STORM * 1e-3
    return [Notice(ts=first + i * 1e-3, note="ICMP::ICMP_DataExfil", msg="m", sub="s",
                   src=f"100.64.{i // 250}.{i % 250}", dst=VICTIM, uid=f"C{i}", n=1, bytes_sent=500,
                   bytes_received=0, start=last, end=last)
            for i in range(1, STORM + 1)]


def stormed_pipeline(tmp_path: Path, sink: ListSink, last: float) -> Pipeline:
    cfg = Config()
    cfg.output.log_dir = str(tmp_path)
    cfg.output.evidence.enabled = False
    pipeline = Pipeline(cfg, [sink])
    pipeline.emit(storm_notices(last))
    assert pipeline.aggregator.folded == STORM - cfg.detection.aggregate_max_notices
    return pipeline


def told(notices: list[Notice]) -> int:
    return sum(n.n for n in notices if n.sub.startswith("Aggregated:"))


def sent_notices(conn: Connection) -> list[Notice]:
    sent: list[Notice] = []
    while conn.poll():
        message = conn.recv()
        if isinstance(message, Notices):
            sent += message.notices
    return sent


def test_a_worker_tells_a_storm_that_went_quiet_at_its_next_round_before_the_next_tick(tmp_path: Path) -> None:
    """A worker's round runs on the wall clock (time.time()): the storm's last fold QUIET + a bit ago."""
    sink = ListSink()
    pipeline = stormed_pipeline(tmp_path, sink, time.time() - QUIET - QUEUE_WAIT)
    ours, theirs = multiprocessing.Pipe(duplex=True)
    channel = WorkerChannel(0, ours, sink, QuietWire())
    channel._next_tick = time.time() + TICK  # a tick came just now: the next is a second away
    worker = Worker(pipeline, channel.source, channel)
    assert told(sent_notices(theirs)) == 0
    channel.round(worker)
    assert told(sent_notices(theirs)) == STORM - 10
    assert channel.source.ticks == 0  # the tick's other work (the lag window, stats) still comes once per TICK


def test_a_storm_still_folding_is_not_told_between_ticks(tmp_path: Path) -> None:
    sink = ListSink()
    pipeline = stormed_pipeline(tmp_path, sink, time.time())
    ours, theirs = multiprocessing.Pipe(duplex=True)
    channel = WorkerChannel(0, ours, sink, QuietWire())
    channel._next_tick = time.time() + TICK
    channel.round(Worker(pipeline, channel.source, channel))
    assert told(sent_notices(theirs)) == 0 and pipeline.aggregator.folded == STORM - 10


def test_in_process_the_daemons_round_tells_a_storm_that_went_quiet(tmp_path: Path) -> None:
    from icmpsensor.runmode.live import Daemon, Overrides

    sink = ListSink()
    pipeline = stormed_pipeline(tmp_path, sink, T0)
    daemon = Daemon(Config(), Overrides(), clock=lambda: T0 + QUIET + QUEUE_WAIT / 2)
    daemon.pipeline = pipeline
    daemon._tick_due = float("inf")  # no tick due
    daemon._stats_due = float("inf")
    worker = Worker(pipeline, QuietWire(), daemon)
    daemon.worker = worker
    daemon.round(worker)
    assert told(sink.take()) == STORM - 10


def alerted_flows_open(tmp_path: Path, flows: int, config: Config) -> tuple[Pipeline, ListSink]:
    """A pipeline holding `flows` open alerted one-packet flows from spoofed sources to one host."""
    from icmpsensor.source.pcapfile import FileSource
    from testkit.netlab import storm_capture

    sink = ListSink()
    pipeline = Pipeline(config, [sink])
    source = FileSource([str(storm_capture(tmp_path / "storm.pcap", flows))], pipeline.decoder_for)
    for batch in source.read():
        pipeline.feed_batch(batch.decoder, batch.buf, batch.meta)
    return pipeline, sink


def unaggregated(tmp_path: Path) -> Config:
    config = Config()
    config.output.log_dir = str(tmp_path)
    config.output.evidence.enabled = False
    config.detection.aggregate_max_notices = 0  # aggregation off: every notice written as it comes
    return config


def test_a_stops_flush_past_its_deadline_folds_what_is_left_into_aggregates(tmp_path: Path) -> None:
    """A live stop with 100,000 open alerted flows and aggregation off wrote 100,000 summaries one by one, past
    the stop's 5 s. Past the flush's deadline the rest are folded as a storm's are: counted in aggregates (their
    flows, bytes, a sample and the largest), not written one by one."""
    pipeline, sink = alerted_flows_open(tmp_path, 3_000, unaggregated(tmp_path))
    raised = sum(1 for n in sink.take() if n.note.endswith("DataExfil"))  # each written as it came
    pipeline.finish(deadline=time.monotonic() - 1.0)  # the deadline passed before the first summary
    told = sink.take()
    aggregates = [n for n in told if n.n > 1 and n.note.endswith("ExfilSummary")]
    assert raised == 3_000 and len(told) < 20, (raised, len(told))
    assert sum(n.n for n in aggregates) + sum(1 for n in told if n.n == 1 and n.note.endswith("ExfilSummary")) \
        == 3_000


def test_a_flush_within_its_deadline_writes_every_summary(tmp_path: Path) -> None:
    pipeline, sink = alerted_flows_open(tmp_path, 3_000, unaggregated(tmp_path))
    sink.take()
    pipeline.finish(deadline=time.monotonic() + 60.0)
    assert sum(1 for n in sink.take() if n.note.endswith("ExfilSummary")) == 3_000
