"""`--stdout`: every notice also as a JSON line on standard output.

Standard output is a copy: when it breaks (`| head -1`, a full disk) the sink says so once on stderr and
stays quiet; the notices still go to notice.log and journald.

A replay writes each line as it comes (its output is complete, whatever the reader's pace). A live sensor must not
wait for a reader that stops reading (a paused pager, a stuck shipper: the pipe is full after ~64 KB, and write()
would stop detection, the stats and the stop with it): its lines go through a console.LineQueue of at most
MAX_QUEUED lines; a line that finds it full is dropped and counted (`dropped`, `stdout_dropped` in the stats
record), and said once on stderr. At a live stop, past `deadline` (the daemon sets journald's), a notice is
counted there without being rendered: the open flows' summaries come all at once, and the stop has 5 s.
"""

from __future__ import annotations

import time

from icmpsensor.console import LineQueue, say, write_out
from icmpsensor.notice.record import Notice

MAX_QUEUED = 10_000  # lines waiting for a live sensor's standard output
CLOSE_WAIT = 0.5  # seconds close() gives the queue to write what waits (the rest is counted as dropped)
BROKEN = "icmpsensor: warning: standard output is closed or full: notices go on to notice.log only"


class StdoutSink:
    def __init__(self, peer_descr: str, *, waits: bool = True) -> None:
        self.peer_descr = peer_descr
        self._broken = False  # a replay's write failed
        self._queue: LineQueue | None = None if waits else LineQueue(
            1, MAX_QUEUED, "icmpsensor-stdout", on_broken=lambda: say(BROKEN),
            on_full=lambda: say(f"icmpsensor: warning: standard output is not read: past {MAX_QUEUED} lines "
                                "waiting, notices go to notice.log only (counted: stdout_dropped)"))
        self.deadline: float | None = None  # a live stop's (monotonic): later notices are counted, not written
        self._past_deadline = 0

    @property
    def broken(self) -> bool:
        return self._broken or (self._queue is not None and self._queue.broken)

    @property
    def dropped(self) -> int:
        """Lines a live sensor dropped: its queue full, still waiting at close(), or past the stop's deadline."""
        return (self._queue.dropped if self._queue is not None else 0) + self._past_deadline

    def emit(self, notice: Notice) -> None:
        if self.broken:
            return
        if self.deadline is not None and time.monotonic() > self.deadline:
            self._past_deadline += 1
            return
        line = notice.to_json_line(self.peer_descr)
        if self._queue is not None:
            self._queue.put(line)  # after close() it takes nothing
        elif not write_out(line):
            self._broken = True
            say(BROKEN)

    def close(self) -> None:
        if self._queue is not None:
            self._queue.finish(CLOSE_WAIT)
