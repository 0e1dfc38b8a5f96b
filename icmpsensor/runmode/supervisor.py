"""The one supervisor of worker processes: fork, talk, watch, reap (for replay and live alike).

Process model: `multiprocessing` with the "fork" context and a duplex Pipe (an AF_UNIX socketpair)
per worker. Fork, not spawn or forkserver: nothing is re-imported or re-executed, no resource-tracker
helper process is started, the worker gets the validated Config as it is, and the main process forks
before it opens a log file or starts a thread (it then sends to each worker from a thread of its
own, so its loop never blocks on a worker). All of it stays within the systemd unit's sandbox
(clone, socketpair and AF_UNIX are allowed; only the main process talks to NOTIFY_SOCKET, as
NotifyAccess=main requires).

Workers ignore every signal the daemon takes (systemd and a terminal signal the whole process group):
the main process drives them with messages (runmode/messages.py). A worker's end is an EOF on its
pipe; the supervisor never waits without a timeout and also watches the process sentinels (a worker
whose descendant still holds the pipe). No worker outlives the supervisor (`reap`).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from icmpsensor.errors import EXIT_INTERNAL, SensorError, resource_error
from icmpsensor.runmode.messages import Failed, WorkerReport
from icmpsensor.runmode.signals import ignore_all

MESSAGES_PER_ROUND = 64  # messages taken from one worker before the others (and the main loop) get a turn
JOIN_TIMEOUT = 2.0

_FORK = multiprocessing.get_context("fork")


class WorkerFailure(SensorError):
    """A worker failed or died: the run ends with this one-line message and exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_INTERNAL) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class WorkerHandle:
    """The supervisor's view of one worker."""

    index: int
    process: BaseProcess
    conn: Connection
    state: str = "starting"  # a run mode's own names; "gone" once its pipe has closed
    heard: float = field(default_factory=time.monotonic)  # when it last sent anything
    group: int | None = None
    warning: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    clock: float | None = None  # set by InputEnded
    report: WorkerReport | None = None  # set by Done
    outbox: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)
    sender: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def connected(self) -> bool:
        return self.state != "gone"

    def exit_text(self) -> str:
        """How the process ended, for a message: 'exit status 1', 'killed by SIGKILL', 'still running'."""
        code = self.process.exitcode
        if code is None:
            return "still running"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"


# A message handler: (worker, message) -> None. It may raise (WorkerFailure) to end the run.
Handler = Callable[[WorkerHandle, Any], None]


class Supervisor:
    """Forks workers and runs the message loop; what the messages mean is the run mode's `handle`.

    `gone(worker)` is called once a worker's pipe closes (it may raise to end the run); after Done
    (`worker.report` set) that is its expected end.
    """

    def __init__(self, handle: Handler, gone: Callable[[WorkerHandle], None]) -> None:
        self.handle = handle
        self.gone = gone
        self.workers: list[WorkerHandle] = []

    # -- start

    def spawn(self, body: Callable[[Connection], int], name: str) -> WorkerHandle:
        """Fork worker number len(workers): `body(conn)` runs in it, its return value the exit code."""
        for stream in (sys.stdout, sys.stderr):  # a fork copies unflushed buffers, which each child would flush
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        ours, theirs = _FORK.Pipe(duplex=True)
        inherited = [ours, *(w.conn for w in self.workers)]  # the main process's ends: the worker closes them
        process = _FORK.Process(target=_worker_process, args=(body, theirs, inherited), name=name)
        process.start()
        theirs.close()  # so that the worker's exit is an EOF here
        worker = WorkerHandle(len(self.workers), process, ours)
        self.workers.append(worker)
        return worker

    def start_sending(self) -> None:
        """Messages to each worker go through a thread of its own from now on (call once every worker is
        forked): the main loop never blocks on a worker that reads slowly."""
        for worker in self.workers:
            worker.sender = threading.Thread(target=_send_loop, args=(worker,), name=f"to-worker-{worker.index}",
                                             daemon=True)
            worker.sender.start()

    def send(self, worker: WorkerHandle, message: Any) -> None:
        if not worker.connected:
            return
        if worker.sender is not None:
            worker.outbox.put(message)
        else:
            send_quietly(worker.conn, message)

    def broadcast(self, message: Any) -> None:
        for worker in self.workers:
            self.send(worker, message)

    # -- the message loop

    def pump(self, timeout: float, until: Callable[[], bool] | None = None) -> None:
        """One round: wait up to `timeout` seconds for any worker, then take what each has sent (at most
        MESSAGES_PER_ROUND each, so that a storm of messages does not starve the caller's loop); `until`
        True ends the round after the message in hand (a stop signal must not wait for a round's worth)."""
        live = [w for w in self.workers if w.connected]
        if not live:
            time.sleep(timeout)
            return
        waitables: list[Any] = [w.conn for w in live] + [w.process.sentinel for w in live]
        if not wait(waitables, timeout):
            return
        for worker in live:
            self._receive(worker, until)

    def pump_until(self, done: Callable[[], bool], deadline: float, poll: float) -> bool:
        """Rounds until `done()` (True) or the monotonic `deadline` (False)."""
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.pump(min(left, poll))
        return True

    def _receive(self, worker: WorkerHandle, until: Callable[[], bool] | None = None) -> None:
        conn = worker.conn
        try:
            for _ in range(MESSAGES_PER_ROUND):
                if not worker.connected or not conn.poll() or (until is not None and until()):
                    break
                message = conn.recv()
                worker.heard = time.monotonic()
                self.handle(worker, message)
        except (EOFError, OSError):
            self._lost(worker)
            return
        if worker.connected and not worker.process.is_alive() and not _pending(conn):
            self._lost(worker)  # exited without an EOF reaching us (a descendant holds the pipe)

    def _lost(self, worker: WorkerHandle) -> None:
        with contextlib.suppress(OSError):
            worker.conn.close()
        worker.state = "gone"
        worker.process.join(1.0)
        self.gone(worker)

    def silent(self, limit: float) -> list[WorkerHandle]:
        """The connected workers that have sent nothing for `limit` seconds."""
        now = time.monotonic()
        return [w for w in self.workers if w.connected and now - w.heard > limit and not _pending(w.conn)]

    # -- end

    def join(self, deadline: float) -> list[WorkerHandle]:
        """Wait for every worker to exit until the monotonic `deadline`; those still running."""
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        return [w for w in self.workers if w.process.is_alive()]

    def reap(self) -> None:
        """No worker outlives the supervisor (multiprocessing's exit handler would wait for it)."""
        for worker in self.workers:
            worker.outbox.put(None)
            if worker.sender is not None and worker.sender.ident is not None:  # started (a thread may not start)
                worker.sender.join(0.5)
            with contextlib.suppress(OSError):
                worker.conn.close()  # an EOF: a worker still waiting for a message leaves
            worker.process.join(0.5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(JOIN_TIMEOUT)


def _send_loop(worker: WorkerHandle) -> None:
    while (message := worker.outbox.get()) is not None:
        try:
            worker.conn.send(message)
        except (OSError, ValueError):
            return  # the worker is gone: its EOF is handled by the message loop


def send_quietly(conn: Connection, message: Any) -> None:
    """Send, unless the other end is gone (then there is nobody left to tell)."""
    with contextlib.suppress(OSError, ValueError):
        conn.send(message)


def _pending(conn: Connection) -> bool:
    try:
        return conn.poll()
    except (EOFError, OSError):
        return False


def _die_with_parent() -> None:
    """Linux PR_SET_PDEATHSIG: the kernel kills this worker if the main process dies (even by SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _worker_process(body: Callable[[Connection], int], conn: Connection, inherited: list[Connection]) -> None:
    """Entry point of a forked worker: its exit code, or its one-line error (Failed) to the supervisor."""
    _die_with_parent()
    for other in inherited:  # the main process's ends of the pipes: held open here, a dead main would never be
        other.close()        # an EOF (and a full pipe would block a send for ever)
    ignore_all()
    code = EXIT_INTERNAL
    try:
        code = body(conn)
    except SensorError as exc:
        code = exc.exit_code
        send_quietly(conn, Failed(exc.exit_code, exc.message))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # the main process is gone: nobody left to report to
    except Exception as exc:
        if os.environ.get("ICMPSENSOR_DEBUG"):
            traceback.print_exc(file=sys.stderr)
        error = resource_error(exc) or SensorError(f"internal error: {type(exc).__name__}: {exc}")  # exit 1
        code = error.exit_code
        send_quietly(conn, Failed(code, error.message))
    with contextlib.suppress(OSError):
        conn.close()
    sys.exit(code)
