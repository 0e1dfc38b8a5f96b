"""Work that a test only reads the result of, done beside the tests before it: the fast loop runs serially on a
2-core machine, so the second core is free but for the processes the tests start and wait for.

A test module with a `start_early(selected test names, tmp_path_factory)` gets it called by tests/conftest.py
once collection is over (unless live or system tests are selected, whose timed runs would be disturbed). It
queues its work on LANE, whose one thread does the jobs one after the other in the order queued (the order of
the modules): a single extra process beside pytest, which keeps its core. A test reads its job's result with
Job.result(), which does the job on the test's own thread if the lane has not started it yet; a test whose job
was not queued (its module's start_early not called) makes its own and reads it at once.

Jobs are what runs in another process (process()) or waits on one (the benchmark's stages): a job that computes
in Python would hold the interpreter's lock the tests need.
"""

from __future__ import annotations

import atexit
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

from testkit.paths import REPO

T = TypeVar("T")


class Job(Generic[T]):
    """`fn()` once, on the lane's thread or on the first thread that asks for its result."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self._claim = threading.Lock()
        self._started = False
        self._done = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        with self._claim:
            if self._started:
                return
            self._started = True
        try:
            self._value = self.fn()
        except BaseException as exc:
            self._error = exc
        finally:
            self._done.set()

    def result(self, timeout: float = 900.0) -> T:
        self.run()  # not started yet: now, here
        if not self._done.wait(timeout):
            raise TimeoutError(f"early job still running after {timeout:g} s")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


class Lane:
    """One thread doing the queued jobs one after the other; it stops starting them at exit."""

    def __init__(self) -> None:
        self._jobs: deque[Job[object]] = deque()
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self.closed = False

    def queue(self, fn: Callable[[], T], *, first: bool = False) -> Job[T]:
        """A job for `fn`, after those queued (or, `first`, before them: a long job whose test comes early)."""
        job: Job[T] = Job(fn)
        with self._ready:
            (self._jobs.appendleft if first else self._jobs.append)(job)  # type: ignore[arg-type]
            self._ready.notify()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="tests-early-lane", daemon=True)
            self._thread.start()
        return job

    def _loop(self) -> None:
        while not self.closed:
            with self._ready:
                while not self._jobs:
                    self._ready.wait()
                job = self._jobs.popleft()
            job.run()  # nothing if a test has taken it over


LANE = Lane()
_RUNNING: set[subprocess.Popen[str]] = set()
_RUNNING_LOCK = threading.Lock()


def process(argv: Sequence[str | Path], timeout: float = 600.0, **popen: object) -> Callable[[],
                                                                                            subprocess.CompletedProcess[str]]:
    """A job: run `argv` (in the checkout, text pipes unless `popen` says otherwise), its CompletedProcess; killed if
    it runs `timeout` seconds, and at the end of the session."""

    def run() -> subprocess.CompletedProcess[str]:
        if LANE.closed:
            raise RuntimeError("the session is over")
        options: dict[str, object] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True,
                                      "cwd": REPO, **popen}
        proc: subprocess.Popen[str] = subprocess.Popen([str(a) for a in argv], **options)  # type: ignore[call-overload]
        with _RUNNING_LOCK:
            _RUNNING.add(proc)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        finally:
            kill(proc)
            with _RUNNING_LOCK:
                _RUNNING.discard(proc)
        return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)

    return run


def kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@atexit.register
def _close() -> None:
    """A session that ends early (-x, ^C) leaves no early process behind."""
    LANE.closed = True
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for proc in running:
        if proc.poll() is None:
            proc.kill()
