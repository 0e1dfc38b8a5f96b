"""`capture.workers: N` (N > 1): N capture+detector processes in one kernel fanout group.

Each worker process opens its own libpcap handle on the interface and joins it to one
PACKET_FANOUT_HASH group; the kernel hashes every packet's address pair symmetrically
(for ICMP there are no ports), so both directions of a host pair, whatever their echo
ids, reach the same worker, and per-pair state (flows, pending requests, slow-exfil
memory) stays whole. A worker runs today's capture thread, SPSC queue, decoder and
detector (a Pipeline) unchanged, but its only notice sink is the pipe to the main
process, which keeps every output: notice.log has one writer (whole lines, rotation,
`tail -F` as with one process), journald, stdout, stats.log (the workers' counters
summed, plus a per-worker breakdown), sd_notify and the signals.

Process model: `multiprocessing` with the "fork" context, a duplex Pipe (an AF_UNIX
socketpair) per worker. Fork, not spawn or forkserver: nothing is re-imported or
re-executed, no resource-tracker helper process is started, the worker gets the
validated Config as it is, and the main process forks before it opens any file or
starts any thread (afterwards it sends to each worker from a thread of its own, so its
loop never blocks on a worker). All of it stays within the systemd unit's sandbox (clone, socketpair
and AF_UNIX are allowed; only the main process talks to NOTIFY_SOCKET, as
NotifyAccess=main requires).

Protocol (pickled tuples). Worker -> main: ("open", group, warning), ("running",),
("notice", Notice), ("stats", dict) once a second, ("log", priority, message),
("failed", exit code, message), ("drained",), ("done", dict). Main -> worker: ("go",), ("reload", Config), ("stop",),
("finish",).

Start: worker 0 creates the group (the kernel picks an unused id), the others join it;
every handle passes nothing until all have joined ("go"), so no host pair is re-hashed
to another worker mid-flow; READY=1 once every capture thread runs. Stop: every worker
stops reading and drains, keeping its socket in the group; once all have drained they
close, flush their open flows (those notices arrive) and exit. A worker that dies or
whose capture fails ends the daemon with an error (systemd restarts it); a worker that
stops reporting withholds the watchdog heartbeat. Workers ignore SIGTERM, SIGINT and
SIGHUP (systemd and a terminal signal the whole group): the main process drives them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import sys
import syslog
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from icmpsensor import __version__
from icmpsensor.capture import LiveCapture, RawBatch
from icmpsensor.config import Config
from icmpsensor.daemon import QUEUE_WAIT, STOP_DEADLINE, TICK, Daemon, notify
from icmpsensor.decode import DECODER, Decoder
from icmpsensor.errors import EXIT_INTERNAL, EXIT_NOINPUT, EXIT_OK, CaptureError, InputError, SensorError
from icmpsensor.journal import MSGID_ERROR, MSGID_STARTED, MSGID_STOPPED
from icmpsensor.notices import Notice
from icmpsensor.pipeline import Pipeline, add_stats, write_notice
from icmpsensor.sinks import check_log_dir
from icmpsensor.spscqueue import SpscQueue

START_TIMEOUT = 15.0  # seconds the workers get to open their captures
SILENCE_LIMIT = 10.0  # a worker silent this long (it reports every TICK) withholds the watchdog heartbeat
DRAIN_DEADLINE = 1.5  # seconds, from the stop, for every worker to drain its capture
EVIDENCE_RESYNC_TICKS = 10  # re-measure the shared evidence directory this often
MESSAGES_PER_ROUND = 1000  # worker messages handled per worker between two looks at the clock and flags

_FORK = multiprocessing.get_context("fork")


# --------------------------------------------------------------------------- the worker process


class PipeSink:
    """A worker's notice sink: every notice goes to the main process, which writes it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def emit(self, notice: Notice) -> None:
        self.conn.send(("notice", notice))

    def close(self) -> None:
        pass


class Worker:
    """One capture handle in the fanout group and its own Pipeline; runs in a worker process."""

    def __init__(self, index: int, cfg: Config, conn: Connection) -> None:
        self.index = index
        self.cfg = cfg
        self.conn = conn
        self.pipeline = Pipeline(cfg, [PipeSink(conn)], on_write_error=self._error)
        self.capture = LiveCapture(cfg.capture.interface, cfg.capture, hold_on_stop=True)
        self.queue: SpscQueue[RawBatch] = SpscQueue(cfg.capture.queue_batches)

    def run(self, group: int | None) -> int:
        capture, conn = self.capture, self.conn
        linktype = capture.open(held=True)
        try:
            decoder = self.pipeline.decoder_for(linktype)
            group = capture.join_fanout(group)
        except InputError as exc:
            capture.close_unstarted()
            raise CaptureError(f"interface {capture.interface}: {exc.message}") from None
        except SensorError:
            capture.close_unstarted()
            raise
        conn.send(("open", group, capture.warning))
        if conn.recv()[0] != "go":
            capture.close_unstarted()
            return EXIT_OK
        capture.apply_filter()
        capture.start(self.queue)
        conn.send(("running",))
        self._loop(decoder)
        self._shutdown(decoder)
        return EXIT_OK

    def _loop(self, decoder: Decoder) -> None:
        feed_batch, queue, conn = self.pipeline.feed_batch, self.queue, self.conn
        next_tick = time.time()
        ticks = 0
        failure_sent = False
        while True:
            item = queue.get_wait(QUEUE_WAIT)
            if item is not None:
                feed_batch(decoder, *item)
            now = time.time()
            if now >= next_tick:
                next_tick = now + TICK
                ticks += 1
                self.pipeline.advance(now)
                if self.pipeline.evidence is not None and ticks % EVIDENCE_RESYNC_TICKS == 0:
                    self.pipeline.evidence.refresh_disk_usage()
                conn.send(("stats", self.stats()))
            if self.capture.failure and not failure_sent:
                failure_sent = True  # the main process stops every worker
                conn.send(("failed", EXIT_NOINPUT, self.capture.failure))
            while conn.poll():
                message = conn.recv()
                if message[0] == "reload":
                    self.cfg = message[1]
                    self.pipeline.reconfigure(self.cfg)
                    decoder.verify_checksums = self.cfg.decode.verify_checksums
                elif message[0] == "stop":
                    return

    def _shutdown(self, decoder: Decoder) -> None:
        capture, queue, conn, feed_batch = self.capture, self.queue, self.conn, self.pipeline.feed_batch
        capture.request_stop()
        deadline = time.monotonic() + STOP_DEADLINE
        while not capture.drained.is_set() and capture.running and time.monotonic() < deadline:
            item = queue.get_wait(QUEUE_WAIT)
            if item is not None:
                feed_batch(decoder, *item)
        while (item := queue.get()) is not None:
            feed_batch(decoder, *item)
        conn.send(("drained",))
        # Our socket stays in the group, reading nothing, until every worker has drained: leaving
        # earlier would move our host pairs to a worker still reading.
        while conn.poll(STOP_DEADLINE):
            if conn.recv()[0] == "finish":
                break
        capture.stop(STOP_DEADLINE)
        while (item := queue.get()) is not None:
            feed_batch(decoder, *item)
        self.pipeline.finish()
        self.pipeline.close()
        conn.send(("done", self.stats()))

    def stats(self) -> dict[str, Any]:
        cap = self.capture.refresh_stats()
        pipeline = self.pipeline.stats()
        return {
            "pid": os.getpid(),
            "packets_received": cap.received,
            "packets_read": cap.read,
            "kernel_dropped": cap.kernel_dropped,
            "interface_dropped": cap.interface_dropped,
            "queue_dropped": cap.queue_dropped,
            "queue_dropped_batches": self.queue.dropped,
            "decode": pipeline["decode"],
            "flows": pipeline["flows"],
            "pending_requests": pipeline["pending_requests"],
            "evictions": self.pipeline.detector.stats.flows_evicted,
            "notices": pipeline["notices"],
            "detect": pipeline["detect"],
        }

    def _error(self, message: str) -> None:
        self.conn.send(("log", syslog.LOG_ERR, message))


def _worker_main(index: int, cfg: Config, conn: Connection, group: int | None, inherited: list[Connection]) -> None:
    """Entry point of a worker process (forked)."""
    for other in inherited:  # the main process's ends of the earlier workers' pipes: not ours to hold open
        other.close()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    code = EXIT_INTERNAL
    try:
        code = Worker(index, cfg, conn).run(group)
    except SensorError as exc:
        _send_quietly(conn, ("failed", exc.exit_code, exc.message))
        code = exc.exit_code
    except (EOFError, OSError) as exc:
        if not isinstance(exc, (EOFError, BrokenPipeError, ConnectionResetError)):
            _send_quietly(conn, ("failed", EXIT_INTERNAL, f"internal error: {type(exc).__name__}: {exc}"))
        # else: the main process is gone; there is nobody left to report to
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        _send_quietly(conn, ("failed", EXIT_INTERNAL, f"internal error: {type(exc).__name__}: {exc}"))
    sys.exit(code)


def _send_quietly(conn: Connection, message: tuple[Any, ...]) -> None:
    with contextlib.suppress(OSError, ValueError):
        conn.send(message)


# --------------------------------------------------------------------------- the main process


@dataclass
class WorkerHandle:
    """The main process's view of one worker."""

    index: int
    process: BaseProcess
    conn: Connection
    state: str = "starting"  # starting, open, running, drained, done, closed (its EOF after done), gone (died)
    group: int | None = None
    warning: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    last_report: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def connected(self) -> bool:
        return self.state not in ("closed", "gone")

    outbox: queue.SimpleQueue[tuple[Any, ...] | None] = field(default_factory=queue.SimpleQueue)
    sender: threading.Thread | None = None

    def start_sending(self) -> None:
        """Messages to the worker go through a thread of their own: the main loop never blocks on a
        worker (one that reads slowly, or a large reload while it is itself blocked sending notices)."""
        self.sender = threading.Thread(target=self._send_loop, name=f"to-worker-{self.index}", daemon=True)
        self.sender.start()

    def _send_loop(self) -> None:
        while (message := self.outbox.get()) is not None:
            try:
                self.conn.send(message)
            except (OSError, ValueError):
                return  # the worker is gone: its EOF is handled by the main loop

    def send(self, message: tuple[Any, ...]) -> None:
        if self.connected:
            self.outbox.put(message)

    def stop_sending(self) -> None:
        self.outbox.put(None)


class WorkerFailure(SensorError):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class MultiDaemon(Daemon):
    """The main process with `capture.workers` > 1: outputs, signals and systemd; no capture of its own."""

    def run(self) -> int:
        check_log_dir(self.cfg.output.log_dir)  # exit 73 before any worker starts
        self.workers: list[WorkerHandle] = []
        self.notices_emitted = 0
        self.write_errors = 0
        self.failure: tuple[int, str] | None = None
        self.group: int | None = None
        self._silence_reported = False
        self.journal = None  # type: ignore[assignment]  # opened once the workers are up (forked first)
        try:
            self._start_workers()
            self.sinks = self._open_logs()
            for warning in dict.fromkeys(w.warning for w in self.workers if w.warning):
                self.journal.log(warning, syslog.LOG_WARNING, MSGID_ERROR)
            self._install_signal_handlers()
            for worker in self.workers:  # threads only now: every worker is forked
                worker.start_sending()
                worker.send(("go",))
            self._pump(lambda: all(w.state == "running" for w in self.workers), time.monotonic() + START_TIMEOUT,
                       "start its capture")
            notify("READY=1")
            interface = self.cfg.capture.interface
            self.journal.log(
                f"icmpsensor {__version__} started on {interface} with {len(self.workers)} workers "
                f"(fanout group {self.group}, pids {' '.join(str(w.pid) for w in self.workers)}; {DECODER}); "
                f"notices to {self.notice_log.path}",
                syslog.LOG_INFO, MSGID_STARTED, INTERFACE=interface, WORKERS=len(self.workers), DECODER=DECODER,
            )
            status = self._run_loop()
            self._shutdown_workers()
            return status
        except BaseException:
            if getattr(self, "sinks", None) is not None and self.journal is not None:
                with contextlib.suppress(Exception):
                    self._close_outputs()
            raise
        finally:
            self._reap()

    # -- start -------------------------------------------------------------------------------

    def _spawn(self, index: int, group: int | None) -> WorkerHandle:
        parent_end, child_end = _FORK.Pipe(duplex=True)
        inherited = [w.conn for w in self.workers]
        process = _FORK.Process(target=_worker_main, args=(index, self.cfg, child_end, group, inherited),
                                name=f"icmpsensor-worker-{index}")
        process.start()
        child_end.close()  # so that the worker's exit is an EOF here
        worker = WorkerHandle(index, process, parent_end)
        self.workers.append(worker)
        return worker

    def _start_workers(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        first = self._spawn(0, None)  # creates the group: the kernel picks an id nobody else uses
        self._pump(lambda: first.state == "open", deadline, "open its capture")
        self.group = first.group
        for index in range(1, self.cfg.capture.workers):
            self._spawn(index, self.group)
        self._pump(lambda: all(w.state == "open" for w in self.workers), deadline, "open its capture")

    # -- messages ------------------------------------------------------------------------------

    def _pump(self, done: Callable[[], bool], deadline: float | None, doing: str = "",
              timeout: float = QUEUE_WAIT) -> bool:
        """Handle worker messages until `done()` (True) or the deadline (False).

        With `deadline` None: one round of at most `timeout` seconds. A deadline passed while starting
        (`doing` given) or a worker failure before the daemon runs raises WorkerFailure.
        """
        while not done():
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    if doing:
                        states = ", ".join(f"{w.index} {w.state}" for w in self.workers)
                        raise WorkerFailure(f"a worker did not {doing} within {START_TIMEOUT:g} s (workers: "
                                            f"{states})", EXIT_INTERNAL)
                    return False
                timeout = min(left, QUEUE_WAIT)
            live = {w.conn: w for w in self.workers if w.connected}
            if not live:
                if deadline is None:
                    time.sleep(timeout)
                return done()
            for conn in wait(list(live), timeout):
                self._receive(live[conn], starting=bool(doing))  # type: ignore[index]
            if deadline is None:
                break
        return True

    def _receive(self, worker: WorkerHandle, starting: bool) -> None:
        """The worker's pending messages, at most MESSAGES_PER_ROUND (a notice storm must not starve the
        ticks: heartbeat, rotation, stats)."""
        conn = worker.conn
        try:
            for _ in range(MESSAGES_PER_ROUND):
                if not conn.poll():
                    break
                self._handle(worker, conn.recv(), starting)
        except (EOFError, OSError):
            self._gone(worker, starting)

    def _handle(self, worker: WorkerHandle, message: tuple[Any, ...], starting: bool) -> None:
        kind = message[0]
        if kind == "notice":
            self._emit(message[1])
        elif kind == "stats":
            worker.stats = message[1]
            worker.last_report = time.monotonic()
        elif kind == "open":
            worker.state, worker.group, worker.warning = "open", message[1], message[2]
        elif kind == "running":
            worker.state = "running"
            worker.last_report = time.monotonic()
        elif kind == "drained":
            worker.state = "drained"
        elif kind == "done":
            worker.state, worker.stats = "done", message[1]
        elif kind == "log":
            self._log(message[1], f"worker {worker.index}: {message[2]}")
        elif kind == "failed":
            code, text = message[1], message[2]
            if starting:  # the same one-line error and exit code as a single-process start
                raise WorkerFailure(text if worker.index == 0 else f"worker {worker.index}: {text}", code)
            self._fail(code, f"worker {worker.index} (pid {worker.pid}): {text}")

    def _gone(self, worker: WorkerHandle, starting: bool) -> None:
        with contextlib.suppress(OSError):
            worker.conn.close()
        if worker.state == "done":  # its EOF after its last message: expected
            worker.state = "closed"
            return
        worker.state = "gone"
        worker.process.join(1.0)
        code = worker.process.exitcode
        how = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0
               else f"exit status {code}" if code is not None else "still running")
        message = f"worker {worker.index} (pid {worker.pid}) exited unexpectedly ({how})"
        if starting:
            raise WorkerFailure(message, EXIT_INTERNAL)
        self._fail(EXIT_INTERNAL, message)

    def _log(self, priority: int, message: str) -> None:
        if self.journal is not None:
            self.journal.log(message, priority, MSGID_ERROR)
        else:
            print(f"icmpsensor: {message}", file=sys.stderr, flush=True)

    def _fail(self, code: int, message: str) -> None:
        """A worker died or its capture failed: log it, and stop (every other worker flushes its flows)."""
        self._log(syslog.LOG_ERR, message)
        if self.failure is None:
            self.failure = (code, message)

    def _emit(self, notice: Notice) -> None:
        self.notices_emitted += 1
        self.write_errors += write_notice(self.sinks, notice, self._write_error)

    # -- the main loop -------------------------------------------------------------------------

    def _run_loop(self) -> int:
        self._start_timers()
        while not self.flags.stop and self.failure is None:
            self._pump(lambda: False, None)
            self._timers(self.clock())
        return self.failure[0] if self.failure is not None else EXIT_OK

    def _tick(self, now: float) -> None:
        self._housekeeping(now)  # the workers expire their own flows

    def _wake(self) -> None:
        pass  # the loop waits at most QUEUE_WAIT for worker messages, then looks at the flags

    def _reconfigure_detection(self, new: Config) -> None:
        for worker in self.workers:
            worker.send(("reload", new))

    def _heartbeat_allowed(self, now: float) -> bool:
        if not super()._heartbeat_allowed(now):
            return False
        mono = time.monotonic()
        silent = [w for w in self.workers if w.state != "running" or mono - w.last_report > SILENCE_LIMIT]
        if silent and not self._silence_reported:
            self._silence_reported = True
            names = ", ".join(f"{w.index} (pid {w.pid}, {w.state})" for w in silent)
            self.journal.log(f"worker {names} not reporting: watchdog heartbeat withheld", syslog.LOG_ERR,
                             MSGID_ERROR)
        elif not silent:
            self._silence_reported = False
        return not silent

    # -- shutdown ------------------------------------------------------------------------------

    def _shutdown_workers(self) -> None:
        notify("STOPPING=1")
        start = time.monotonic()
        live = [w for w in self.workers if w.state in ("open", "running")]
        for worker in live:
            worker.send(("stop",))
        self._pump(lambda: all(w.state == "drained" or not w.connected for w in live), start + DRAIN_DEADLINE)
        for worker in live:
            worker.send(("finish",))  # also to a worker still draining: it stops holding its socket
        self._pump(lambda: all(w.state == "done" or not w.connected for w in live), start + STOP_DEADLINE)
        for worker in self.workers:
            worker.process.join(max(0.0, start + STOP_DEADLINE - time.monotonic()))
            if worker.process.is_alive():
                self._fail(EXIT_INTERNAL, f"worker {worker.index} (pid {worker.pid}) did not stop within "
                                          f"{STOP_DEADLINE:g} s: killed; its open flows are lost")
                worker.process.kill()
                worker.process.join(1.0)
        self._close_outputs()

    def _close_outputs(self) -> None:
        with contextlib.suppress(OSError):
            self.notice_log.flush_backlog()
        self.write_stats(self.clock())
        for sink in self.sinks:
            sink.close()
        self.stats_log.close()
        reason = ", ".join(self.flags.signals) or (self.failure[1] if self.failure else "error")
        self.journal.log(f"icmpsensor stopped ({reason}); {self.notices_emitted} notices",
                         syslog.LOG_INFO, MSGID_STOPPED)
        self.sinks = None  # type: ignore[assignment]

    def _reap(self) -> None:
        """No worker outlives the main process (multiprocessing's exit handler would wait for it)."""
        for worker in getattr(self, "workers", []):
            worker.stop_sending()
            if worker.sender is not None:
                worker.sender.join(0.5)
            with contextlib.suppress(OSError):
                worker.conn.close()  # an EOF: a worker still waiting for "go" leaves
            worker.process.join(0.5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(2.0)

    # -- stats ---------------------------------------------------------------------------------

    def _totals(self) -> dict[str, Any]:
        """The workers' counters summed, but for interface_dropped: ps_ifdrop is the interface's own
        counter, which every worker's handle reports whole."""
        totals: dict[str, Any] = {}
        for worker in self.workers:
            add_stats(totals, {k: v for k, v in worker.stats.items() if k != "pid"})
        totals["interface_dropped"] = max((w.stats.get("interface_dropped", 0) for w in self.workers), default=0)
        return totals

    def stats_record(self, now: float) -> dict[str, object]:
        t = self._totals()
        detect = t.get("detect", {})
        return {
            "ts": round(now, 6),
            "peer_descr": self.cfg.sensor.name,
            "interface": self.cfg.capture.interface,
            "uptime": round(now - self.started, 3),
            "packets_received": t.get("packets_received", 0),
            "packets_read": t.get("packets_read", 0),
            "kernel_dropped": t.get("kernel_dropped", 0),
            "interface_dropped": t.get("interface_dropped", 0),
            "queue_dropped": t.get("queue_dropped", 0),
            "queue_dropped_batches": t.get("queue_dropped_batches", 0),
            "decode": t.get("decode", {}),
            "flows": t.get("flows", 0),
            "pending_requests": t.get("pending_requests", 0),
            "evictions": detect.get("flows_evicted", 0),
            "notices": self.notices_emitted,
            "notice_write_errors": self.write_errors,
            "notice_backlog": self.notice_log.backlog,
            "notices_lost": self.notice_log.lost,
            "journal_errors": self.journal.errors,
            "detect": detect,
            "workers": [
                {"worker": w.index, "pid": w.pid, "state": w.state,
                 **{k: w.stats.get(k, 0) for k in ("packets_read", "kernel_dropped", "queue_dropped", "flows",
                                                   "notices")}}
                for w in self.workers
            ],
        }

    def status_line(self) -> str:
        t = self._totals()
        return (
            f"{t.get('packets_read', 0)} packets, {t.get('flows', 0)} flows, {self.notices_emitted} notices, "
            f"drops: kernel {t.get('kernel_dropped', 0)} interface {t.get('interface_dropped', 0)} "
            f"queue {t.get('queue_dropped', 0)}; {len(self.workers)} workers"
        )
