"""Standard error and standard output, which may be broken (a full disk, a closed pipe) or not read (a full
pipe): writing to them never ends the sensor. A stream that fails once is replaced by /dev/null, so that nothing
retries it and the interpreter's own flush at exit cannot fail either.

A live sensor must not wait for a reader that stops reading either (a paused pager, a stuck log shipper, a journald
whose stdout stream stalls: write() would stop detection, the stats and the stop with it). Its lines go through a
LineQueue: a thread of their own writes them, at most `limit` wait, and a line past that is dropped and counted.
The daemon queues its standard error for as long as it runs (queue_stderr); the live --stdout sink its output.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~4 ms of every start
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

STDERR_QUEUED = 1_000  # a live sensor's stderr lines waiting for their reader


class LineQueue:
    """Lines written to file descriptor `fd` by a thread of their own with os.write (no Python buffer is left to
    flush, and block, at exit). `put` never waits: past `limit` lines waiting, a line is dropped and counted
    (`dropped`), and `on_full` is called once. A write that fails (the reader is gone) calls `on_broken` once and
    ends the thread: what waits, and what comes later, is not written (nor counted: the stream is gone)."""

    def __init__(self, fd: int, limit: int, name: str, *, on_full: Callable[[], None] | None = None,
                 on_broken: Callable[[], None] | None = None) -> None:
        self.fd, self.limit = fd, limit
        self.pid = os.getpid()  # a forked child has no writer thread: it writes directly (say)
        self.dropped = 0
        self.broken = False
        self._on_full, self._on_broken = on_full, on_broken
        self._lines: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._said_full = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, line: str) -> None:
        with self._cond:
            if self.broken or self._closing:
                return
            if len(self._lines) < self.limit:
                self._lines.append(line.encode("utf-8", "replace"))
                self._cond.notify()
                return
            self.dropped += 1
            say_full = not self._said_full and self._on_full is not None
            self._said_full = True
        if say_full:
            self._on_full()  # type: ignore[misc]

    def finish(self, timeout: float) -> None:
        """Let the thread write what waits for up to `timeout` seconds; the lines left unwritten are counted in
        `dropped`. Nothing is taken after it (a second call changes nothing)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        with self._cond:
            if not self.broken:
                self.dropped += len(self._lines)
            self._lines.clear()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._lines or self._closing)
                if not self._lines:
                    return
                line = self._lines.popleft()
            try:
                write_all(self.fd, line)
            except OSError:
                with self._cond:
                    self.broken = True
                    self._lines.clear()
                if self._on_broken is not None:
                    self._on_broken()
                return


def write_all(fd: int, data: bytes) -> None:
    """All of `data` to `fd`, in as many write() calls as it takes (OSError as os.write raises it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


_stderr_queue: LineQueue | None = None


def queue_stderr() -> LineQueue:
    """From now on say() hands its lines to a LineQueue on file descriptor 2 (a live sensor, while it runs)."""
    global _stderr_queue
    sys.stderr.flush()
    _stderr_queue = LineQueue(2, STDERR_QUEUED, "icmpsensor-stderr")
    return _stderr_queue


def unqueue_stderr(timeout: float) -> None:
    """say() writes directly again, once the queued lines are written (for up to `timeout` seconds)."""
    global _stderr_queue
    queue, _stderr_queue = _stderr_queue, None
    if queue is not None:
        queue.finish(timeout)


def one_line(text: str) -> str:
    """`text` with its unprintable characters escaped as Python writes them (a newline as \\n, ESC as \\x1b): a name
    the sensor repeats (a capture file's, a directory's) can neither split a message nor drive a terminal."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def say(line: str) -> None:
    """One line on standard error (operational messages, errors, the replay summary), its unprintable
    characters escaped."""
    line = one_line(line)
    queue = _stderr_queue
    if queue is not None and queue.pid == os.getpid():
        queue.put(line + "\n")
        return
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.stderr = _null()


def write_out(text: str) -> bool:
    """`text` on standard output; False once standard output is broken (it is then dropped)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError):
        sys.stdout = _null()
        return False
    return True


def guard_standard_streams() -> None:
    """A standard descriptor closed at start (`>&-`, `2>&-`, `<&-`) gets /dev/null, so that no file the sensor opens
    later takes descriptor 0, 1 or 2 (notice.log would receive standard error's lines, or be read as the capture of
    `-r -`); Python set the stream to None: it becomes /dev/null too, as a stream that fails does."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: `fd` itself, as 0..fd-1 are open
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            os.set_inheritable(fd, True)  # as a standard descriptor is: the workers and anything they start
    if sys.stdout is None:
        sys.stdout = _null()
    if sys.stderr is None:
        sys.stderr = _null()


def _null() -> TextIO:
    return open(os.devnull, "w")
