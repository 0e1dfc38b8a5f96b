"""Live: the sensor daemon on an interface, with the capture and detection in-process or in N workers.

The main process keeps every output and all the daemon's duties: journald, notice.log (one writer:
whole lines, rotation, `tail -F`), stdout, stats.log, sd_notify (READY, WATCHDOG, STATUS, STOPPING),
the signals and the reload. Signals only set flags that the loop acts on: SIGTERM/SIGINT stop
(flushing every open flow), SIGHUP reloads the configuration. About once a second (TICK) the loop
expires idle flows on wall-clock time, rotates logs, retries held notices, sends the watchdog
heartbeat and updates STATUS=; every stats.interval it writes a stats record.

* `capture.workers: 1`: the worker loop (runmode/worker.py) runs in the main process on a LiveSource
  (the capture thread and its SPSC queue), and the daemon is its Link.
* `capture.workers: N`: N worker processes (runmode/supervisor.py), each with its own libpcap handle
  joined to one kernel PACKET_FANOUT_HASH group, its own capture thread, queue and Pipeline. The
  kernel hashes every packet's address pair symmetrically (ICMP has no ports), so both directions
  of a host pair, whatever their echo ids, reach the same worker and per-pair state stays whole.
  Worker 0 creates the group (the kernel picks an unused id), the others join it; every handle passes
  nothing until all have joined (Go), so no host pair is re-hashed mid-flow; READY=1 once every
  capture thread runs. On stop every worker drains while its socket stays in the group, then all
  close and flush their open flows. A worker that dies or whose capture fails ends the daemon with
  an error (systemd restarts it); a worker that stops reporting withholds the watchdog heartbeat.
"""

from __future__ import annotations

import contextlib
import os
import signal
import syslog
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

from icmpsensor import __version__
from icmpsensor.config.loader import load_config
from icmpsensor.config.schema import Config, restart_only_changes
from icmpsensor.console import LineQueue, queue_stderr, say, unqueue_stderr
from icmpsensor.decode.fast import DECODER
from icmpsensor.errors import EXIT_INTERNAL, EXIT_NOINPUT, EXIT_OK, OutputError, SensorError
from icmpsensor.notice.record import Notice
from icmpsensor.notice.types import CAPTURE_LOSS
from icmpsensor.output.journal import (
    MSGID_ERROR,
    MSGID_LAGGING,
    MSGID_RELOADED,
    MSGID_STARTED,
    MSGID_STATS,
    MSGID_STOPPED,
    Journal,
    JournalSink,
)
from icmpsensor.output.logfile import check_log_dir
from icmpsensor.output.metrics import PrometheusTextfile, textfile_path
from icmpsensor.output.noticelog import NoticeLog
from icmpsensor.output.sink import ListSink, NoteCounter, NoticeSink, write_notice
from icmpsensor.output.statslog import StatsLog
from icmpsensor.output.stdout import StdoutSink
from icmpsensor.runmode.messages import (
    Done,
    Failed,
    Flush,
    Go,
    InputEnded,
    Log,
    Notices,
    Opened,
    Reload,
    Running,
    Stats,
    Stop,
)
from icmpsensor.runmode.notifysocket import notifier
from icmpsensor.runmode.pipeline import Pipeline
from icmpsensor.runmode.signals import RELOAD_SIGNAL, STOP_SIGNALS, signal_name, take_unused
from icmpsensor.runmode.stats import (
    LAG_SHOWN,
    capture_loss,
    capture_loss_notice,
    detection_lag,
    stats_record,
    status_line,
    worker_stats,
)
from icmpsensor.runmode.supervisor import Supervisor, WorkerFailure, WorkerHandle
from icmpsensor.runmode.worker import QUEUE_WAIT, TICK, Worker, WorkerChannel
from icmpsensor.source.live import (
    DRAIN_DEADLINE,
    EVIDENCE_DEADLINE,
    FLUSH_DEADLINE,
    JOURNAL_DEADLINE,
    STOP_DEADLINE,
    LiveSource,
)

START_TIMEOUT = 15.0  # seconds the workers get to open their captures
SILENCE_LIMIT = 10.0  # a worker silent this long (it reports every TICK) withholds the watchdog heartbeat

FREEZE_HEARTBEAT_ENV = "ICMPSENSOR_TEST_FREEZE_HEARTBEAT_AFTER"


@dataclass
class Overrides:
    """Command-line settings that win over the config file, on start and on every reload."""

    interface: str | None = None
    log_dir: str | None = None
    stdout: bool = False

    def apply(self, cfg: Config) -> Config:
        if self.interface:
            cfg.capture.interface = self.interface
        if self.log_dir is not None:
            cfg.output.log_dir = self.log_dir
        if self.stdout:
            cfg.output.stdout = True
        return cfg


@dataclass
class _Flags:
    stop: bool = False
    stop_at: float | None = None  # time.monotonic() when the first stop signal arrived: the stop's deadlines
    reload: bool = False
    signals: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # unused signals that came, to be logged by the loop


MAX_IGNORED_LOGGED = 16  # ignored signals told per round of the loop (a storm of them is not a storm of lines)
STDERR_WAIT = 0.5  # seconds the daemon's last stderr lines are given to be written at its end
RELOAD_STREAM_TIMEOUT = 1.0  # seconds a FIFO given as the config gets on SIGHUP: the reload holds the loop meanwhile


def run_live(cfg: Config, overrides: Overrides) -> int:
    return Daemon(cfg, overrides).run()


class Daemon:
    """The main process of a live sensor (see the module docstring)."""

    def __init__(self, cfg: Config, overrides: Overrides, clock: Callable[[], float] = time.time) -> None:
        self.cfg = overrides.apply(cfg)
        self.overrides = overrides
        self.clock = clock
        self.flags = _Flags()
        self.started = clock()
        self.heartbeat_frozen_after = _float_env(FREEZE_HEARTBEAT_ENV)
        self.notify_socket, self.notify = notifier()  # sd_notify, never blocking (a no-op without NOTIFY_SOCKET)
        self.status = EXIT_OK
        self.failure_text: str | None = None
        self.journal: Journal | None = None
        self.stderr: LineQueue | None = None  # standard error while the daemon runs
        self.sinks: list[NoticeSink] | None = None
        self.supervisor: Supervisor | None = None
        self.pipeline: Pipeline | None = None
        self.source: LiveSource | None = None
        self.notices_emitted = 0
        self.write_errors = 0
        self.note_counter = NoteCounter()  # the notices that reach the sinks, by note (the metrics)
        self.own_notices = 0  # raised by the daemon itself (CaptureLoss), not by a detector
        self.own_write_errors = 0
        self.textfile: PrometheusTextfile | None = None
        self._textfile_failing = False
        self._loss_base: dict[str, object] | None = None  # the stats record the next capture-loss check starts at
        self._stopping = False
        self._stop_at: float | None = None  # time.monotonic() of the stop
        self._starting = False
        self._silence_reported = False
        self._lag_warned = 0.0  # the most the detection lag has been since the lag warning (0: none standing)

    def run(self) -> int:
        self._install_signal_handlers()  # a reload or stop asked during start-up is taken, not the default action
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})  # one asked before is taken now (entry_point)
        self.stderr = queue_stderr()  # a stderr no one reads must not stop the daemon (console.LineQueue)
        try:
            return self._run()
        finally:
            unqueue_stderr(STDERR_WAIT)

    def _run(self) -> int:
        check_log_dir(self.cfg.output.log_dir)  # exit 73 before a capture opens or a worker starts
        if self.cfg.stats.prometheus_textfile:  # its directory verified now: exit 73 likewise
            self.textfile = PrometheusTextfile(textfile_path(self.cfg.stats.prometheus_textfile,
                                                             self.cfg.output.log_dir))
        if self.cfg.capture.workers > 1:
            return self._run_workers()
        return self._run_in_process()

    # -- outputs -------------------------------------------------------------------------------

    def _open_outputs(self) -> list[NoticeSink]:
        """journald, notice.log (+ stdout) and stats.log; the notice sinks."""
        cfg = self.cfg
        self.journal = Journal(cfg.journald)
        self.notice_log = NoticeLog(cfg.output.log_dir, cfg.output.notice_log, cfg.sensor.name,
                                    rotation=cfg.output.rotation, fmt=cfg.output.format)
        sinks: list[NoticeSink] = [self.note_counter, self.notice_log, JournalSink(self.journal)]
        if cfg.output.stdout:
            sinks.append(StdoutSink(cfg.sensor.name, waits=False))  # a reader that stops reading stops nothing
        self.stats_log = StatsLog(cfg.output.log_dir, cfg.stats.log, cfg.output.rotation)
        self.sinks = sinks
        return sinks

    def _close_outputs(self) -> None:
        unwritten = self.notice_log.give_up()  # held since notice.log refused them: lost, in the last record
        if self.pipeline is not None:  # the evidence writer's last counts belong in the last stats record
            self.pipeline.close_evidence((self._stop_at or time.monotonic()) + EVIDENCE_DEADLINE)
        assert self.journal is not None
        self.journal.give_up()  # entries a stalled journald never took: counted in the last record's journal_errors
        if self.notify_socket is not None:
            self.notify_socket.give_up()  # likewise sd_notify messages: in its notify_unsent
        for sink in self.sinks or ():
            if isinstance(sink, StdoutSink):
                sink.close()  # what a reader did not take: in the last record's stdout_dropped
        self.write_stats(self.clock())
        if self.pipeline is not None:
            self.pipeline.close()  # the in-process pipeline's evidence and sinks
        else:
            for sink in self.sinks or ():
                sink.close()
        self.stats_log.close()
        reason = ", ".join(self.flags.signals) or (self.failure_text or "error")
        record = self.stats_record(self.clock())
        skipped = sum(s.skipped for s in self.sinks or () if isinstance(s, JournalSink))
        lost = (f"; {record['shutdown_dropped']} packets still queued at the stop deadline were dropped"
                if record["shutdown_dropped"] else "")
        lost += f"; {skipped} notices went to notice.log only (journald deadline)" if skipped else ""
        lost += f"; {unwritten} notices notice.log could not take were lost there" if unwritten else ""
        self.log(f"icmpsensor stopped ({reason}); {self.notice_count} notices{lost}", syslog.LOG_INFO, MSGID_STOPPED,
                 SHUTDOWN_DROPPED=record["shutdown_dropped"], JOURNAL_SKIPPED=skipped)
        self.sinks = None

    def _started(self, interface: str, how: str, **fields: object) -> None:
        self.notify("READY=1")
        self.log(f"icmpsensor {__version__} started on {interface}{how}; notices to {self.notice_log.path}",
                 syslog.LOG_INFO, MSGID_STARTED, INTERFACE=interface, DECODER=DECODER, **fields)

    def log(self, message: str, priority: int, message_id: str = MSGID_ERROR, **fields: object) -> None:
        """An operational message: to journald (or stderr without it; before the outputs open)."""
        if self.journal is not None:
            self.journal.log(message, priority, message_id, **fields)
        else:
            say(f"icmpsensor: {message}")

    # -- one process: the daemon is the worker loop's Link --------------------------------------

    def _run_in_process(self) -> int:
        sinks = self._open_outputs()
        self.pipeline = Pipeline(self.cfg, sinks, on_write_error=self._write_error, evidence_waits=False)
        self.source = LiveSource(self.cfg.capture.interface, self.cfg.capture, self.pipeline.decoder_for)
        try:
            self.source.open()
        except SensorError:
            self.pipeline.close()
            self.stats_log.close()
            raise
        self.source.start()
        if self.source.capture.warning:
            self.log(self.source.capture.warning, syslog.LOG_WARNING)
        self._started(self.source.interface, f" ({DECODER})")
        self._start_timers()
        self.worker = Worker(self.pipeline, self.source, self)
        self.worker.run()
        self._close_outputs()
        return self.status

    def control(self, worker: Worker) -> None:
        """Before a batch: a reload signalled while the loop waited applies to the batch the wait returned."""
        self._reload_if_asked(self.clock())

    def round(self, worker: Worker) -> None:
        """After every batch or QUEUE_WAIT: the timers, a capture failure, a stop."""
        self._timers(self.clock())
        source = worker.source
        for event in source.take_events():
            self.log(event, syslog.LOG_WARNING)
        if source.failure and not self._stopping:
            self.log(source.failure, syslog.LOG_ERR)
            self.failure_text = "capture failure"
            self.status = EXIT_NOINPUT
            self._stop_source(source)
        elif self.flags.stop and not self._stopping:
            self._stop_source(source)

    def _stop_source(self, source: Any) -> None:
        self._stopping = True
        source.stop(self._stopping_since())

    def _stopping_since(self) -> float:
        """The stop begins: when it was asked for (the signal's arrival; a failure: now), which every
        deadline of the stop counts from."""
        start = self._stop_at = self.flags.stop_at or time.monotonic()
        self.notify("STOPPING=1")
        for sink in self.sinks or ():
            if isinstance(sink, JournalSink | StdoutSink):
                sink.deadline = start + JOURNAL_DEADLINE
        return start

    def input_ended(self, worker: Worker) -> float | None:
        return None

    def flush_deadline(self) -> float | None:
        return None if self._stop_at is None else self._stop_at + FLUSH_DEADLINE

    def done(self, worker: Worker) -> None:
        pass

    # -- N workers ------------------------------------------------------------------------------

    def _run_workers(self) -> int:
        self.supervisor = supervisor = Supervisor(self._handle, self._gone)
        try:
            self._starting = True
            self._start_workers()
            self._open_outputs()
            for warning in dict.fromkeys(w.warning for w in supervisor.workers if w.warning):
                self.log(warning, syslog.LOG_WARNING)
            supervisor.start_sending()  # threads only now: every worker is forked
            supervisor.broadcast(Go())
            self._wait_starting(lambda: all(w.state == "running" for w in supervisor.workers), "start its capture",
                                time.monotonic() + START_TIMEOUT)
            self._starting = False
            workers = supervisor.workers
            self._started(self.cfg.capture.interface,
                          f" with {len(workers)} workers (fanout group {workers[0].group}, "
                          f"pids {' '.join(str(w.pid) for w in workers)}; {DECODER})", WORKERS=len(workers))
            self._start_timers()
            while not self.flags.stop and self.status == EXIT_OK:
                supervisor.pump(QUEUE_WAIT, until=lambda: self.flags.stop)
                self._timers(self.clock())
            self._shutdown_workers()
            return self.status
        except BaseException:
            if self.sinks is not None:
                with contextlib.suppress(Exception):
                    self._close_outputs()
            raise
        finally:
            supervisor.reap()

    def _start_workers(self) -> None:
        assert self.supervisor is not None
        deadline = time.monotonic() + START_TIMEOUT
        first = self.supervisor.spawn(self._worker_body(None), "icmpsensor-worker-0")
        self._wait_starting(lambda: first.state == "open", "open its capture", deadline)
        for index in range(1, self.cfg.capture.workers):
            self.supervisor.spawn(self._worker_body(first.group), f"icmpsensor-worker-{index}")
        self._wait_starting(lambda: all(w.state == "open" for w in self.supervisor.workers),  # type: ignore[union-attr]
                            "open its capture", deadline)

    def _wait_starting(self, done: Callable[[], bool], doing: str, deadline: float) -> None:
        assert self.supervisor is not None
        if not self.supervisor.pump_until(done, deadline, QUEUE_WAIT):
            states = ", ".join(f"{w.index} {w.state}" for w in self.supervisor.workers)
            raise WorkerFailure(f"a worker did not {doing} within {START_TIMEOUT:g} s (workers: {states})",
                                EXIT_INTERNAL)

    def _worker_body(self, group: int | None) -> Callable[[Connection], int]:
        cfg = self.cfg
        index = len(self.supervisor.workers) if self.supervisor is not None else 0
        return lambda conn: _live_worker(index, cfg, group, conn)

    def _handle(self, worker: WorkerHandle, message: Any) -> None:
        if isinstance(message, Notices):
            self._emit_all(message.notices)
        elif isinstance(message, Stats):
            worker.stats = message.stats
        elif isinstance(message, Opened):
            worker.state, worker.group, worker.warning = "open", message.group, message.warning
        elif isinstance(message, Running):
            worker.state = "running"
        elif isinstance(message, InputEnded):
            self._emit_all(message.notices)
            worker.state = "drained"
        elif isinstance(message, Done):
            self._emit_all(message.notices)
            worker.state, worker.report, worker.stats = "done", message.report, message.report.stats
        elif isinstance(message, Log):
            self.log(f"worker {worker.index}: {message.text}", message.priority)
        elif isinstance(message, Failed):
            if self._starting:  # the same one-line error and exit code as a single-process start
                raise WorkerFailure(message.text if worker.index == 0 else f"worker {worker.index}: {message.text}",
                                    message.exit_code)
            self._fail(message.exit_code, f"worker {worker.index} (pid {worker.pid}): {message.text}")

    def _gone(self, worker: WorkerHandle) -> None:
        if worker.report is not None:  # its EOF after its last message: expected
            return
        message = f"worker {worker.index} (pid {worker.pid}) exited unexpectedly ({worker.exit_text()})"
        if self._starting:
            raise WorkerFailure(message, EXIT_INTERNAL)
        self._fail(EXIT_INTERNAL, message)

    def _fail(self, code: int, message: str) -> None:
        """A worker died or its capture failed: log it, and stop (every other worker flushes its flows)."""
        self.log(message, syslog.LOG_ERR)
        if self.status == EXIT_OK:
            self.status, self.failure_text = code, message

    def _emit_all(self, notices: list[Notice]) -> None:
        for notice in notices:
            self.notices_emitted += 1
            self.write_errors += write_notice(self.sinks or (), notice, self._write_error)

    def _shutdown_workers(self) -> None:
        supervisor = self.supervisor
        assert supervisor is not None
        start = self._stopping_since()
        live = [w for w in supervisor.workers if w.state in ("open", "running")]
        for worker in live:
            supervisor.send(worker, Stop(start))
        supervisor.pump_until(lambda: all(w.state == "drained" or not w.connected for w in live),
                              start + DRAIN_DEADLINE + 0.5, QUEUE_WAIT)
        for worker in live:
            supervisor.send(worker, Flush(None))  # also to a worker still draining: it stops holding its socket
        supervisor.pump_until(lambda: all(w.report is not None or not w.connected for w in live),
                              start + STOP_DEADLINE, QUEUE_WAIT)
        for worker in supervisor.join(start + STOP_DEADLINE):
            self._fail(EXIT_INTERNAL, f"worker {worker.index} (pid {worker.pid}) did not stop within "
                                      f"{STOP_DEADLINE:g} s: killed; its open flows are lost")
            worker.process.kill()
            worker.process.join(1.0)
        self._close_outputs()

    # -- timers --------------------------------------------------------------------------------

    def _start_timers(self) -> None:
        self._tick_due = self.clock()
        self._stats_due = self._next_stats(self._tick_due)

    def _timers(self, now: float) -> None:
        """What the loop does besides its work: once per TICK `_tick`, and a stats record every
        stats.interval (in between, in-process: a storm that went quiet is told); then a pending reload."""
        if now >= self._tick_due:
            self._tick_due = now + TICK
            self._tick(now)
            if now >= self._stats_due:
                self.write_stats(now, periodic=True)
                self._stats_due = self._next_stats(now)
        elif self.pipeline is not None:
            self.worker.between_ticks(now)
        self._reload_if_asked(now)

    def _reload_if_asked(self, now: float) -> None:
        while self.flags.ignored:
            self.log(f"{self.flags.ignored.pop(0)} ignored (SIGHUP reloads the configuration, SIGTERM stops)",
                     syslog.LOG_WARNING)
        if self.flags.reload:
            self.flags.reload = False
            self.reload()
            self._stats_due = self._next_stats(now)

    def _next_stats(self, now: float) -> float:
        interval = self.cfg.stats.interval
        return now + interval if interval > 0 else float("inf")

    def _tick(self, now: float) -> None:
        """Expiry on wall time (in-process; workers expire their own flows), rotation, held notices, the
        watchdog heartbeat and STATUS=."""
        if self.pipeline is not None:
            self.worker.tick(now)
        for log in (self.notice_log, self.stats_log):
            try:
                log.maybe_rotate()  # backs off by itself after a failure
            except OSError as exc:
                self.log(f"cannot rotate {log.path}: {exc.strerror or exc}", syslog.LOG_ERR)
        with contextlib.suppress(OSError):  # still held: the next emit or tick retries, the error is logged
            self.notice_log.flush_backlog()
        assert self.journal is not None
        self.journal.flush()  # what a stalled journald did not take yet
        if self._heartbeat_allowed(now):
            self.notify("WATCHDOG=1")
        record = self.stats_record(now)
        self._check_lag(detection_lag(record))  # with workers: the slowest one's
        self.notify("STATUS=" + status_line(record))

    def _check_lag(self, lag: float) -> None:
        """A journal warning when detection is stats.lag_warning seconds behind the wire, once; a note when it
        has caught up (under LAG_SHOWN), with the most it was behind."""
        threshold = self.cfg.stats.lag_warning
        if not self._lag_warned:
            if 0 < threshold <= lag:
                self._lag_warned = lag
                self.log(f"detection is {lag:.1f} s behind the wire: packets wait in the capture buffer and the "
                         "queue, notices come late, drops follow if it goes on (capture.workers spreads the work)",
                         syslog.LOG_WARNING, MSGID_LAGGING, DETECTION_LAG=f"{lag:.3f}")
        elif lag < LAG_SHOWN:
            self.log(f"detection caught up with the wire (it was up to {self._lag_warned:.1f} s behind)",
                     syslog.LOG_INFO, MSGID_LAGGING, DETECTION_LAG=f"{lag:.3f}")
            self._lag_warned = 0.0
        else:
            self._lag_warned = max(self._lag_warned, lag)

    def _heartbeat_allowed(self, now: float) -> bool:
        if self.heartbeat_frozen_after is not None and now - self.started >= self.heartbeat_frozen_after:
            return False
        if self.supervisor is None:
            return True
        mono = time.monotonic()
        silent = [w for w in self.supervisor.workers if w.state != "running" or mono - w.heard > SILENCE_LIMIT]
        if silent and not self._silence_reported:
            self._silence_reported = True
            names = ", ".join(f"{w.index} (pid {w.pid}, {w.state})" for w in silent)
            self.log(f"worker {names} not reporting: watchdog heartbeat withheld", syslog.LOG_ERR)
        elif not silent:
            self._silence_reported = False
        return not silent

    # -- signals and reload --------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_stop)
        signal.signal(RELOAD_SIGNAL, self._on_hup)
        take_unused(self._on_unused)

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        if not self.flags.stop:
            self.flags.stop, self.flags.stop_at = True, time.monotonic()
        self.flags.signals.append(signal.Signals(signum).name)
        self._wake()

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self.flags.reload = True
        self._wake()

    def _on_unused(self, signum: int, _frame: FrameType | None) -> None:
        if len(self.flags.ignored) < MAX_IGNORED_LOGGED:
            self.flags.ignored.append(signal_name(signum))
        self._wake()

    def _wake(self) -> None:
        """Make the loop notice a signal now (it also looks every QUEUE_WAIT)."""
        if self.source is not None:
            self.source.wake()

    def reload(self) -> None:
        """Re-read the config file; apply what can change live, keep flow state, report the rest."""
        path = self.cfg.source
        try:
            new = self.overrides.apply(load_config(path, RELOAD_STREAM_TIMEOUT))
        except SensorError as exc:
            self.log(f"reload rejected, running configuration kept: {exc.message}", syslog.LOG_ERR)
            return
        except Exception as exc:  # whatever a config file holds, a reload never ends the daemon
            self.log(f"reload rejected, running configuration kept: {path}: {type(exc).__name__}: {exc}",
                     syslog.LOG_ERR)
            return
        needs_restart = restart_only_changes(self.cfg, new)
        self.cfg = new
        if self.pipeline is not None:
            self.pipeline.reconfigure(new)
        else:
            assert self.supervisor is not None
            self.supervisor.broadcast(Reload(new))
        self.notice_log.reconfigure(new.output.rotation)
        for sink in self.sinks or ():
            if isinstance(sink, NoticeLog | StdoutSink):
                sink.peer_descr = new.sensor.name
        self.stats_log.reconfigure(new.output.rotation)
        assert self.journal is not None
        self.journal.reconfigure(new.journald)
        try:
            reopened = self.notice_log.reopen()
            self.stats_log.reopen()
        except OSError as exc:
            reopened = False
            self.log(f"cannot reopen logs: {exc.strerror or exc}", syslog.LOG_ERR)
        message = f"configuration reloaded from {path or '(built-in defaults)'}"
        if reopened:
            message += f"; {self.notice_log.path} reopened"
        if needs_restart:
            message += f"; these changes need a restart and are not applied: {', '.join(needs_restart)}"
        self.log(message, syslog.LOG_WARNING if needs_restart else syslog.LOG_INFO, MSGID_RELOADED)

    # -- stats ---------------------------------------------------------------------------------

    @property
    def notice_count(self) -> int:
        raised = self.pipeline.notices_emitted if self.pipeline is not None else self.notices_emitted
        return raised + self.own_notices

    def stats_record(self, now: float) -> dict[str, object]:
        if self.pipeline is not None:
            workers = [worker_stats(self.pipeline, self.source)]
            write_errors, states = self.pipeline.write_errors + self.own_write_errors, []
        else:
            assert self.supervisor is not None
            workers = [w.stats for w in self.supervisor.workers]
            write_errors = self.write_errors + self.own_write_errors
            states = [(w.index, w.pid, w.state) for w in self.supervisor.workers]
        assert self.journal is not None
        return stats_record(now=now, started=self.started, name=self.cfg.sensor.name,
                            interface=self.cfg.capture.interface, workers=workers, notices=self.notice_count,
                            write_errors=write_errors, backlog=self.notice_log.backlog, lost=self.notice_log.lost,
                            journal_errors=self.journal.errors, journal_backlog=self.journal.backlog,
                            stdout_dropped=sum(s.dropped for s in self.sinks or () if isinstance(s, StdoutSink)),
                            stderr_dropped=self.stderr.dropped if self.stderr is not None else 0,
                            notify_unsent=self.notify_socket.unsent if self.notify_socket is not None else 0,
                            worker_states=states,
                            notices_by_note=self.note_counter.counts)

    def write_stats(self, now: float, *, periodic: bool = False) -> None:
        """A stats record to stats.log, journald, STATUS= and the Prometheus textfile. `periodic` (every
        stats.interval, not the last one at the stop): first the capture-loss check over the interval."""
        record = self.stats_record(now)
        if periodic and self._check_capture_loss(record, now):
            record = self.stats_record(now)  # with the notice just written
        try:
            self.stats_log.write(record)
        except OSError as exc:
            self.log(f"cannot write stats log: {exc.strerror}", syslog.LOG_ERR)
        self._write_textfile(record)
        line = status_line(record)
        self.log("stats: " + line, syslog.LOG_INFO, MSGID_STATS,
                 FLOWS=record["flows"], NOTICES=record["notices"], PACKETS_RECEIVED=record["packets_received"],
                 KERNEL_DROPPED=record["kernel_dropped"], QUEUE_DROPPED=record["queue_dropped"])
        self.notify("STATUS=" + line)

    def _check_capture_loss(self, record: dict[str, object], now: float) -> bool:
        """The capture-loss notice (CAPTURE_LOSS) when this interval's drops exceed stats.capture_loss_threshold
        (once per interval; through every sink, as a detector's notice); whether one was raised."""
        loss = capture_loss(self._loss_base, record, self.started)
        self._loss_base = record
        notice = capture_loss_notice(loss, self.cfg.stats.capture_loss_threshold, now, self.cfg.capture.interface)
        if notice is None or not getattr(self.cfg.detection.notices, CAPTURE_LOSS.switch):
            return False
        self.own_notices += 1
        self.own_write_errors += write_notice(self.sinks or (), notice, self._write_error)
        return True

    def _write_textfile(self, record: dict[str, object]) -> None:
        if self.textfile is None:
            return
        try:
            self.textfile.write(record)
        except (OSError, OutputError) as exc:
            if not self._textfile_failing:  # once until it works again
                text = exc.message if isinstance(exc, OutputError) else f"{self.textfile.path}: {exc.strerror or exc}"
                self.log(f"cannot write the Prometheus metrics: {text}", syslog.LOG_ERR)
            self._textfile_failing = True
        else:
            self._textfile_failing = False

    def _write_error(self, message: str) -> None:
        self.log(message, syslog.LOG_ERR)


def _live_worker(index: int, cfg: Config, group: int | None, conn: Connection) -> int:
    """A live worker process: its own capture in the fanout group, its own Pipeline."""
    sink = ListSink()
    pipeline = Pipeline(cfg, [sink], evidence_waits=False)
    source = LiveSource(cfg.capture.interface, cfg.capture, pipeline.decoder_for, hold_on_stop=True)
    source.open(held=True)
    try:
        group = source.join_fanout(group)  # remembered: a reopened capture joins it again
    except SensorError:
        source.close_unstarted()
        raise
    conn.send(Opened(group, source.capture.warning))
    if not isinstance(conn.recv(), Go):
        source.close_unstarted()
        return EXIT_OK
    source.capture.apply_filter()
    source.start()
    conn.send(Running())
    Worker(pipeline, source, WorkerChannel(index, conn, sink, source)).run()
    return EXIT_OK


def _float_env(name: str) -> float | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None
