"""The live daemon: capture thread -> SPSC queue -> detector loop -> notice sinks.

The detector loop runs in the main thread: it feeds queued batches through the same
Pipeline as file replay, and about once a second it expires idle flows on wall-clock
time, rotates logs, writes stats, and sends the systemd watchdog heartbeat. Signals
only set flags that the loop acts on: SIGTERM/SIGINT stop (flushing every open flow),
SIGHUP reloads the configuration.

With `capture.workers` > 1 the capture and detection run in worker processes instead
(icmpsensor/workers.py: `MultiDaemon` reuses this class for everything else).
"""

from __future__ import annotations

import contextlib
import os
import signal
import syslog
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from systemd import daemon as sd_daemon

from icmpsensor import __version__
from icmpsensor.capture import LiveCapture, RawBatch
from icmpsensor.config import Config, load_config
from icmpsensor.decode import DECODER, Decoder
from icmpsensor.errors import EXIT_NOINPUT, EXIT_OK, CaptureError, InputError, SensorError
from icmpsensor.journal import (
    MSGID_ERROR,
    MSGID_RELOADED,
    MSGID_STARTED,
    MSGID_STATS,
    MSGID_STOPPED,
    Journal,
    JournalSink,
)
from icmpsensor.logfiles import StatsLog
from icmpsensor.pipeline import Pipeline
from icmpsensor.sinks import NoticeLog, NoticeSink, StdoutSink, check_log_dir
from icmpsensor.spscqueue import SpscQueue

TICK = 1.0  # seconds between housekeeping rounds (expiry, rotation, heartbeat, status)
QUEUE_WAIT = 0.2  # longest sleep waiting for a batch, so signals and ticks are never late
STOP_DEADLINE = 4.0  # seconds the capture thread gets to finish on shutdown

# Settings that are read only at start; a reload reports them instead of applying them.
RESTART_ONLY = (
    ("capture", ("interface", "bpf_filter", "snaplen", "promiscuous", "buffer_size", "batch_size",
                 "queue_batches", "workers")),
    ("output", ("log_dir", "notice_log", "stdout", "evidence")),
    ("stats", ("log",)),
    ("journald", ("enabled",)),
)

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
    reload: bool = False
    signals: list[str] = field(default_factory=list)


def notify(state: str) -> None:
    """sd_notify; a no-op when not started by systemd (no NOTIFY_SOCKET)."""
    with contextlib.suppress(OSError):
        sd_daemon.notify(state)


class Daemon:
    def __init__(self, cfg: Config, overrides: Overrides, clock: Callable[[], float] = time.time) -> None:
        self.cfg = overrides.apply(cfg)
        self.overrides = overrides
        self.clock = clock
        self.flags = _Flags()
        self.started = clock()
        self.heartbeat_frozen_after = _float_env(FREEZE_HEARTBEAT_ENV)

    # -- start -------------------------------------------------------------------------------

    def _open_outputs(self) -> None:
        self.pipeline = Pipeline(self.cfg, self._open_logs(), on_write_error=self._write_error)

    def _open_logs(self) -> list[NoticeSink]:
        """journald, notice.log (+ stdout) and stats.log; the notice sinks."""
        cfg = self.cfg
        check_log_dir(cfg.output.log_dir)
        self.journal = Journal(cfg.journald)
        self.notice_log = NoticeLog(cfg.output.log_dir, cfg.output.notice_log, cfg.sensor.name,
                                    rotation=cfg.output.rotation)
        sinks: list[NoticeSink] = [self.notice_log, JournalSink(self.journal)]
        if cfg.output.stdout:
            sinks.append(StdoutSink(cfg.sensor.name))
        self.stats_log = StatsLog(cfg.output.log_dir, cfg.stats.log, cfg.output.rotation)
        return sinks

    def _open_capture(self) -> Decoder:
        self.capture = LiveCapture(self.cfg.capture.interface, self.cfg.capture)
        linktype = self.capture.open()
        try:
            return self.pipeline.decoder_for(linktype)
        except InputError as exc:
            self.capture.close_unstarted()
            raise CaptureError(f"interface {self.capture.interface}: {exc.message}") from None

    def run(self) -> int:
        self._open_outputs()
        try:
            decoder = self._open_capture()
        except SensorError:
            self.pipeline.close()
            self.stats_log.close()
            raise
        queue: SpscQueue[RawBatch] = SpscQueue(self.cfg.capture.queue_batches)
        self.queue = queue
        self._install_signal_handlers()
        self.capture.start(queue)
        if self.capture.warning:
            self.journal.log(self.capture.warning, syslog.LOG_WARNING, MSGID_ERROR)
        notify("READY=1")
        self.journal.log(
            f"icmpsensor {__version__} started on {self.capture.interface} ({DECODER}); "
            f"notices to {self.notice_log.path}",
            syslog.LOG_INFO, MSGID_STARTED, INTERFACE=self.capture.interface, DECODER=DECODER,
        )
        status = self._loop(decoder, queue)
        self._shutdown(decoder, queue)
        return status

    # -- the detector loop ---------------------------------------------------------------------

    def _loop(self, decoder: Decoder, queue: SpscQueue[RawBatch]) -> int:
        feed_batch = self.pipeline.feed_batch
        self._start_timers()
        while not self.flags.stop:
            item = queue.get_wait(QUEUE_WAIT)
            if item is not None:
                feed_batch(decoder, *item)
            if self._timers(self.clock()):
                decoder.verify_checksums = self.cfg.decode.verify_checksums
            if self.capture.failure:
                self.journal.log(self.capture.failure, syslog.LOG_ERR, MSGID_ERROR)
                return EXIT_NOINPUT
        return EXIT_OK

    def _start_timers(self) -> None:
        self._tick_due = self.clock()
        self._stats_due = self._next_stats(self._tick_due)

    def _timers(self, now: float) -> bool:
        """What the loop does besides its work: once per TICK `_tick`, and a stats record every
        stats.interval; then a pending reload. Whether the configuration was reloaded."""
        if now >= self._tick_due:
            self._tick_due = now + TICK
            self._tick(now)
            if now >= self._stats_due:
                self.write_stats(now)
                self._stats_due = self._next_stats(now)
        if not self.flags.reload:
            return False
        self.flags.reload = False
        self.reload()
        self._stats_due = self._next_stats(now)
        return True

    def _next_stats(self, now: float) -> float:
        interval = self.cfg.stats.interval
        return now + interval if interval > 0 else float("inf")

    def _tick(self, now: float) -> None:
        self.pipeline.advance(now)
        self._housekeeping(now)

    def _housekeeping(self, now: float) -> None:
        """Rotation, held notices, the watchdog heartbeat and STATUS=."""
        for log in (self.notice_log, self.stats_log):
            try:
                log.maybe_rotate()  # backs off by itself after a failure
            except OSError as exc:
                self.journal.log(f"cannot rotate {log.path}: {exc.strerror or exc}", syslog.LOG_ERR, MSGID_ERROR)
        with contextlib.suppress(OSError):  # still held: the next emit or tick retries, the error is logged
            self.notice_log.flush_backlog()
        if self._heartbeat_allowed(now):
            notify("WATCHDOG=1")
        notify("STATUS=" + self.status_line())

    def _heartbeat_allowed(self, now: float) -> bool:
        return self.heartbeat_frozen_after is None or now - self.started < self.heartbeat_frozen_after

    # -- shutdown ------------------------------------------------------------------------------

    def _shutdown(self, decoder: Decoder, queue: SpscQueue[RawBatch]) -> None:
        notify("STOPPING=1")
        self.capture.stop(STOP_DEADLINE)
        while (item := queue.get()) is not None:
            self.pipeline.feed_batch(decoder, *item)
        self.pipeline.finish()
        with contextlib.suppress(OSError):
            self.notice_log.flush_backlog()
        self.write_stats(self.clock())
        self.pipeline.close()
        self.stats_log.close()
        reason = ", ".join(self.flags.signals) or "capture failure"
        self.journal.log(f"icmpsensor stopped ({reason}); {self.pipeline.notices_emitted} notices",
                         syslog.LOG_INFO, MSGID_STOPPED)

    # -- signals and reload --------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        self.flags.stop = True
        self.flags.signals.append(signal.Signals(signum).name)
        self._wake()

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self.flags.reload = True
        self._wake()

    def _wake(self) -> None:
        """Make the loop notice a signal now (it also polls every QUEUE_WAIT)."""
        self.queue.wake()

    def reload(self) -> None:
        """Re-read the config file; apply what can change live, keep flow state, report the rest."""
        path = self.cfg.source
        try:
            new = self.overrides.apply(load_config(path))
        except SensorError as exc:
            self.journal.log(f"reload rejected, running configuration kept: {exc.message}", syslog.LOG_ERR,
                             MSGID_ERROR)
            return
        needs_restart = _restart_only_changes(self.cfg, new)
        for section, keys in RESTART_ONLY:  # keep what is running for start-only settings
            for key in keys:
                setattr(getattr(new, section), key, getattr(getattr(self.cfg, section), key))
        self.cfg = new
        self._reconfigure_detection(new)
        self.notice_log.reconfigure(new.output.rotation)
        self.notice_log.peer_descr = new.sensor.name
        self.stats_log.reconfigure(new.output.rotation)
        self.journal.reconfigure(new.journald)
        try:
            reopened = self.notice_log.reopen()
            self.stats_log.reopen()
        except OSError as exc:
            reopened = False
            self.journal.log(f"cannot reopen logs: {exc.strerror or exc}", syslog.LOG_ERR, MSGID_ERROR)
        message = f"configuration reloaded from {path or '(built-in defaults)'}"
        if reopened:
            message += f"; {self.notice_log.path} reopened"
        if needs_restart:
            message += f"; these changes need a restart and are not applied: {', '.join(needs_restart)}"
        self.journal.log(message, syslog.LOG_WARNING if needs_restart else syslog.LOG_INFO, MSGID_RELOADED)

    def _reconfigure_detection(self, new: Config) -> None:
        """Apply reloaded detection, allowlist and decode settings; flow state is kept."""
        self.pipeline.reconfigure(new)

    # -- stats -------------------------------------------------------------------------------

    def stats_record(self, now: float) -> dict[str, object]:
        cap = self.capture.refresh_stats()
        pipeline = self.pipeline.stats()
        detect = self.pipeline.detector.stats
        return {
            "ts": round(now, 6),
            "peer_descr": self.cfg.sensor.name,
            "interface": self.capture.interface,
            "uptime": round(now - self.started, 3),
            "packets_received": cap.received,
            "packets_read": cap.read,
            "kernel_dropped": cap.kernel_dropped,
            "interface_dropped": cap.interface_dropped,
            "queue_dropped": cap.queue_dropped,
            "queue_dropped_batches": self.queue.dropped,
            "decode": pipeline["decode"],
            "flows": pipeline["flows"],
            "pending_requests": pipeline["pending_requests"],
            "evictions": detect.flows_evicted,
            "notices": pipeline["notices"],
            "notice_write_errors": pipeline["notice_write_errors"],
            "notice_backlog": self.notice_log.backlog,
            "notices_lost": self.notice_log.lost,
            "journal_errors": self.journal.errors,
            "detect": pipeline["detect"],
        }

    def status_line(self) -> str:
        cap = self.capture.stats
        return (
            f"{cap.read} packets, {self.pipeline.detector.flow_count} flows, "
            f"{self.pipeline.notices_emitted} notices, drops: kernel {cap.kernel_dropped} "
            f"interface {cap.interface_dropped} queue {cap.queue_dropped}"
        )

    def write_stats(self, now: float) -> None:
        record = self.stats_record(now)
        try:
            self.stats_log.write(record)
        except OSError as exc:
            self.journal.log(f"cannot write stats log: {exc.strerror}", syslog.LOG_ERR, MSGID_ERROR)
        self.journal.log("stats: " + self.status_line(), syslog.LOG_INFO, MSGID_STATS,
                         FLOWS=record["flows"], NOTICES=record["notices"],
                         PACKETS_RECEIVED=record["packets_received"], KERNEL_DROPPED=record["kernel_dropped"],
                         QUEUE_DROPPED=record["queue_dropped"])
        notify("STATUS=" + self.status_line())

    def _write_error(self, message: str) -> None:
        self.journal.log(message, syslog.LOG_ERR, MSGID_ERROR)


def _restart_only_changes(old: Config, new: Config) -> list[str]:
    changed = []
    for section, keys in RESTART_ONLY:
        for key in keys:
            if getattr(getattr(old, section), key) != getattr(getattr(new, section), key):
                changed.append(f"{section}.{key}")
    return changed


def _float_env(name: str) -> float | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def run_live(cfg: Config, overrides: Overrides) -> int:
    if cfg.capture.workers > 1:
        from icmpsensor.workers import MultiDaemon

        return MultiDaemon(cfg, overrides).run()
    return Daemon(cfg, overrides).run()
