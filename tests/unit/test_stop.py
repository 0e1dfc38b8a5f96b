"""A live stop's deadlines count from the signal's arrival, in the main process and in every worker.

The stop must end within STOP_BUDGET at any load (docs/operations.md "Signals"). Under a storm the main loop
may be busy for a while before it looks at the signal, and a worker may read its Stop later still: a deadline
counted from either moment would spend the budget twice.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from types import SimpleNamespace

import pytest

from icmpsensor.config.schema import Config
from icmpsensor.notice.record import Notice
from icmpsensor.output.logfile import NoticeWriteError
from icmpsensor.output.sink import ListSink
from icmpsensor.runmode.live import RELOAD_STREAM_TIMEOUT, Daemon, Overrides
from icmpsensor.runmode.messages import Flush, Log, Stop
from icmpsensor.runmode.pipeline import Pipeline
from icmpsensor.runmode.supervisor import Supervisor, WorkerHandle
from icmpsensor.runmode.worker import WorkerChannel
from icmpsensor.source.batch import BATCH_META
from icmpsensor.source.live import (
    DRAIN_DEADLINE,
    EVIDENCE_DEADLINE,
    FLUSH_DEADLINE,
    JOURNAL_DEADLINE,
    STOP_BUDGET,
    STOP_DEADLINE,
    LiveSource,
)
from testkit.paths import REPO


def test_the_stop_deadlines_come_in_order_and_leave_a_second_of_the_budget() -> None:
    assert 0 < DRAIN_DEADLINE < JOURNAL_DEADLINE <= EVIDENCE_DEADLINE < STOP_DEADLINE <= STOP_BUDGET - 1.0
    assert DRAIN_DEADLINE < FLUSH_DEADLINE < STOP_DEADLINE  # the flows are flushed after the drain


def test_the_flush_deadline_counts_from_the_stop_in_the_daemon_and_in_a_worker() -> None:
    daemon = Daemon(Config(), Overrides())
    assert daemon.flush_deadline() is None  # not stopping: no deadline (a replay has none either)
    daemon._on_stop(signal.SIGTERM, None)
    daemon._stopping_since()
    assert daemon.flush_deadline() == daemon.flags.stop_at + FLUSH_DEADLINE  # type: ignore[operator]
    channel, _, _ = channel_after([Stop(at=12.5)])
    assert channel.flush_deadline() == 12.5 + FLUSH_DEADLINE


def queued_source(packets: int) -> LiveSource:
    source = LiveSource("lo", Config().capture, lambda linktype: None)
    assert source.queue.put((b"", b"\0" * (BATCH_META.size * packets)))
    return source


def test_a_source_drains_until_the_drain_deadline_after_the_stop_instant_it_is_given() -> None:
    late = queued_source(7)
    late.stop(time.monotonic() - DRAIN_DEADLINE - 0.01)  # the stop was asked for longer ago than the drain allows
    assert late.next_batch(0.0) is None and late.ended
    assert late.shutdown_dropped == 7
    fresh = queued_source(7)
    fresh.stop(time.monotonic())
    assert fresh.next_batch(0.0) is not None and fresh.shutdown_dropped == 0
    for source in (late, fresh):
        source.capture.stop(0.0)


def test_the_daemon_keeps_the_first_signals_arrival_as_the_stop_instant() -> None:
    daemon = Daemon(Config(), Overrides())
    before = time.monotonic()
    daemon._on_stop(signal.SIGTERM, None)
    first = daemon.flags.stop_at
    assert first is not None and before <= first <= time.monotonic()
    time.sleep(0.05)
    daemon._on_stop(signal.SIGINT, None)  # a second signal does not restart the budget
    assert daemon.flags.stop_at == first
    time.sleep(0.05)
    assert daemon._stopping_since() == first  # noticed later, counted from the signal


class RecordingSource:
    failure = None

    def __init__(self) -> None:
        self.stops: list[float | None] = []

    def stop(self, at: float | None = None) -> None:
        self.stops.append(at)

    def take_events(self) -> list[str]:
        return []


def channel_after(messages: list[object]) -> tuple[WorkerChannel, RecordingSource, Connection]:
    import multiprocessing

    ours, theirs = multiprocessing.Pipe(duplex=True)
    for message in messages:
        theirs.send(message)
    source = RecordingSource()
    channel = WorkerChannel(0, ours, ListSink(), source)
    channel._next_tick = float("inf")  # no housekeeping round: only the messages
    channel.round(SimpleNamespace(latest=lambda: 0.0, between_ticks=lambda now: None))  # type: ignore[arg-type]
    return channel, source, theirs


def test_a_worker_counts_its_drain_and_evidence_deadlines_from_the_stop_instant_it_is_sent() -> None:
    asked = time.monotonic() - 0.8  # the main process was busy, the worker reads its Stop late
    channel, source, _ = channel_after([Stop(asked), Flush(None)])
    assert source.stops == [asked, asked]
    assert channel._stopped_at == asked


def test_a_flush_without_a_stop_stops_now() -> None:
    before = time.monotonic()
    channel, source, _ = channel_after([Flush(None)])
    assert channel._stopped_at is not None and before <= channel._stopped_at <= time.monotonic()
    assert source.stops == [channel._stopped_at]


def chatty_worker(conn: Connection) -> int:
    for i in range(50):
        conn.send(Log(6, f"message {i}"))
    conn.recv()  # until the supervisor closes its end
    return 0


@pytest.mark.timeout(30)
def test_a_supervisor_round_ends_at_the_message_that_asked_for_a_stop() -> None:
    handled: list[object] = []

    def handle(worker: WorkerHandle, message: object) -> None:
        handled.append(message)

    supervisor = Supervisor(handle, lambda worker: None)
    supervisor.spawn(chatty_worker, "chatty")
    try:
        deadline = time.monotonic() + 10
        while not supervisor.workers[0].conn.poll(0.1) and time.monotonic() < deadline:
            pass
        time.sleep(0.2)  # all 50 are in the pipe
        supervisor.pump(1.0, until=lambda: len(handled) >= 3)
        assert len(handled) == 3
        supervisor.pump(1.0)  # without a stop: a whole round
        assert len(handled) == 50  # MESSAGES_PER_ROUND is more
    finally:
        supervisor.reap()


class OneBatchSource:
    """A source that hands one batch, then ends."""

    failure = None
    live = False

    def __init__(self) -> None:
        self.ended = False

    def next_batch(self, wait: float) -> object:
        self.ended = True
        return SimpleNamespace(decoder=None, buf=b"", meta=b"")

    def close(self) -> list[object]:
        return []

    def stop(self, at: float | None = None) -> None:
        pass

    def take_events(self) -> list[str]:
        return []


class ConfigAtFeed:
    """A pipeline that remembers which configuration each batch was fed under."""

    def __init__(self, cfg: Config) -> None:
        self.cfg, self.fed_under = cfg, []
        self.detector = SimpleNamespace(now=0.0)

    def feed_batch(self, decoder: object, buf: bytes, meta: bytes) -> None:
        self.fed_under.append(self.cfg)

    def reconfigure(self, cfg: Config) -> None:
        self.cfg = cfg



def test_a_reload_sent_before_a_batch_is_read_applies_to_that_batch() -> None:
    """The main process sends Reload, then says the configuration is reloaded: packets captured after that must be
    judged by the new one. A worker waiting for packets when the Reload came reads it before it feeds the batch the
    wait returns (it used to read it in the round after: a batch judged by the old thresholds)."""
    import multiprocessing

    from icmpsensor.runmode.messages import Reload
    from icmpsensor.runmode.worker import Worker

    class InputEnded(Exception):
        pass

    def input_ended(worker: object) -> None:
        raise InputEnded  # the loop is what is tested: stop there

    ours, theirs = multiprocessing.Pipe(duplex=True)
    import dataclasses

    old, new = Config(), Config()
    new.detection = dataclasses.replace(new.detection, exfil_bytes_threshold=123)  # the Reload's (sent pickled)
    theirs.send(Reload(new))
    pipeline = ConfigAtFeed(old)
    channel = WorkerChannel(0, ours, ListSink(), OneBatchSource())
    channel._next_tick = float("inf")
    channel.input_ended = input_ended  # type: ignore[method-assign]
    with pytest.raises(InputEnded):
        Worker(pipeline, channel.source, channel).run()  # type: ignore[arg-type]
    assert [cfg.detection.exfil_bytes_threshold for cfg in pipeline.fed_under] == [123]


def test_one_process_applies_a_reload_signalled_during_the_wait_before_the_batch() -> None:
    daemon = Daemon(Config(), Overrides())
    reloads: list[bool] = []
    daemon.reload = lambda: reloads.append(True)  # type: ignore[method-assign]
    daemon.control(None)  # type: ignore[arg-type]
    assert reloads == []
    daemon._on_hup(signal.SIGHUP, None)
    daemon.control(None)  # type: ignore[arg-type]
    assert reloads == [True] and not daemon.flags.reload


_SIGNAL_AT_START = """
import os, signal, sys
from icmpsensor.config.schema import Config
from icmpsensor.errors import InputError, SensorError
from icmpsensor.runmode import live

def check_log_dir(path):  # the daemon's first step: a signal arrives, then start-up fails with exit 66
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    raise InputError("start-up ends here")

live.check_log_dir = check_log_dir
try:
    live.run_live(Config(), live.Overrides("lo", None, False))
except SensorError as exc:
    sys.exit(exc.exit_code)
"""


@pytest.mark.parametrize("signum", ["SIGHUP", "SIGTERM"])
def test_a_signal_during_start_up_does_not_kill_the_daemon(signum: str) -> None:
    """systemd's reload (or stop) may come before the outputs and the capture are open: it is taken as the daemon
    takes it running (a reload asked, a stop asked), not by the default action (exit 129 / 143, nothing flushed)."""
    result = subprocess.run([sys.executable, "-c", _SIGNAL_AT_START, signum], capture_output=True, text=True,
                            timeout=60, cwd=REPO)
    assert result.returncode == 66, (result.returncode, result.stderr[-2000:])


def test_notices_notice_log_never_took_are_counted_lost_in_the_last_stats_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """notice.log unwritable until the stop (a full disk, an immutable file): the notices it held are lost at
    the stop, and the last stats record, written before the files close, says so (it said backlog, lost 0)."""
    cfg = Config()
    cfg.output.log_dir = str(tmp_path)
    daemon = Daemon(cfg, Overrides())
    daemon.pipeline = Pipeline(cfg, daemon._open_outputs(), on_write_error=lambda _: None)

    def refused(line: bytes) -> None:
        raise NoticeWriteError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(daemon.notice_log.log, "write_line", refused)
    daemon.pipeline._write([Notice(ts=1.0, note="ICMP::ICMP_DataExfil", msg="", sub="", src="192.0.2.1",
                                   dst="192.0.2.2", uid=f"C{n:017d}", n=1, bytes_sent=1, bytes_received=0,
                                   start=1.0, end=1.0) for n in range(3)])
    daemon._close_outputs()
    last = json.loads((tmp_path / cfg.stats.log).read_text().splitlines()[-1])
    assert (last["notice_backlog"], last["notices_lost"]) == (0, 3)


@pytest.mark.timeout(30)
def test_a_reload_from_a_fifo_no_one_writes_to_holds_the_loop_at_most_a_second(tmp_path: Path) -> None:
    """The loop that reads the capture queue, stats and signals does the reload: it must not wait the 10 s a
    FIFO's writer gets at start-up (a SIGTERM then took 7-9 s and queued packets were dropped)."""
    fifo = tmp_path / "icmpsensor.yaml"
    os.mkfifo(fifo)
    daemon = Daemon(Config(), Overrides())
    daemon.cfg.source = str(fifo)
    began = time.monotonic()
    daemon.reload()  # rejected (one line), the running configuration kept
    assert time.monotonic() - began <= RELOAD_STREAM_TIMEOUT + 0.5
    assert daemon.cfg.source == str(fifo)


_HANGUP_BEFORE_THE_DAEMON = """
import os, signal, sys
from icmpsensor import cli
from icmpsensor.errors import InputError
from icmpsensor.runmode import live

parsed = cli.effective_config
def effective_config(args):  # the command line read: a reload asked before the daemon exists
    os.kill(os.getpid(), signal.SIGHUP)
    return parsed(args)

def check_log_dir(path):
    raise InputError("start-up ends here")

cli.effective_config, live.check_log_dir = effective_config, check_log_dir
sys.argv = ["icmpsensor", "-i", "lo"]
cli.entry_point()
"""


def test_a_reload_asked_before_the_daemon_exists_waits_for_it() -> None:
    """From the entry point on, SIGHUP is held until the daemon's handler is in place (then taken as a reload)."""
    result = subprocess.run([sys.executable, "-c", _HANGUP_BEFORE_THE_DAEMON], capture_output=True, text=True,
                            timeout=60, cwd=REPO)
    assert result.returncode == 66, (result.returncode, result.stderr[-2000:])
