"""`--stdout`: every notice also as a JSON line on standard output.

Standard output is a copy: when it breaks (`| head -1`, a full disk) the sink says so once on stderr and
stays quiet; the notices still go to notice.log and journald.

A replay writes each line as it comes (its output is complete, whatever the reader's pace). A live sensor must not
wait for a reader that stops reading (a paused pager, a stuck shipper: the pipe is full after ~64 KB, and write()
would stop detection, the stats and the stop with it): its lines go to a thread of their own through a queue of at
most MAX_QUEUED lines; a line that finds the queue full is dropped and counted (`dropped`, `stdout_dropped` in the
stats record), and said once on stderr.
"""

from __future__ import annotations

import os
import threading
from collections import deque

from icmpsensor.console import say, write_out
from icmpsensor.notice.record import Notice

MAX_QUEUED = 10_000  # lines waiting for a live sensor's standard output
CLOSE_WAIT = 0.5  # seconds close() gives the thread to write what is queued (then it is counted as dropped)


class StdoutSink:
    def __init__(self, peer_descr: str, *, waits: bool = True) -> None:
        self.peer_descr = peer_descr
        self.broken = False
        self.dropped = 0  # lines a live sensor dropped: the queue full, or still queued at close()
        self._thread: _Writer | None = None if waits else _Writer(self)

    def emit(self, notice: Notice) -> None:
        if self.broken:
            return
        line = notice.to_json_line(self.peer_descr)
        if self._thread is not None:
            self._thread.put(line)
        elif not write_out(line):
            self._broke()

    def close(self) -> None:
        """A live sink's thread writes what is queued for up to CLOSE_WAIT s; the rest is counted as dropped."""
        if self._thread is not None:
            self.dropped += self._thread.finish(CLOSE_WAIT)
            self._thread = None

    def _broke(self) -> None:
        self.broken = True
        say("icmpsensor: warning: standard output is closed or full: notices go on to notice.log only")


class _Writer:
    """The live sink's thread: writes queued lines to file descriptor 1 with os.write (no Python buffer left to
    flush, and block, at exit)."""

    def __init__(self, sink: StdoutSink) -> None:
        self._sink = sink
        self._lines: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._said_full = False
        self._thread = threading.Thread(target=self._run, name="icmpsensor-stdout", daemon=True)
        self._thread.start()

    def put(self, line: str) -> None:
        with self._cond:
            if len(self._lines) >= MAX_QUEUED:
                self._sink.dropped += 1
                full = not self._said_full
                self._said_full = True
            else:
                self._lines.append(line.encode())
                self._cond.notify()
                return
        if full:
            say(f"icmpsensor: warning: standard output is not read: past {MAX_QUEUED} lines waiting, notices go to "
                "notice.log only (counted: stdout_dropped)")

    def finish(self, timeout: float) -> int:
        """Let the thread write what is queued for up to `timeout` seconds; how many lines are left unwritten."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        with self._cond:
            left = len(self._lines)
            self._lines.clear()
        return left

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._lines or self._closing)
                if not self._lines:
                    return
                line = self._lines.popleft()
            if not _write_all(line):  # closed (`| head -1`): said once, nothing more written, as a replay does
                with self._cond:
                    self._lines.clear()
                self._sink._broke()
                return


def _write_all(data: bytes) -> bool:
    """Write all of `data` to file descriptor 1 (waiting for the reader); False once it is broken."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(1, view):]
    except OSError:
        return False
    return True
