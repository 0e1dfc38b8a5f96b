"""notice.log: Zeek's JSON lines or Zeek's TSV (with its header) through a `RotatingLog` (whole lines only,
rotation by size and age, reopen on SIGHUP). A notice that cannot be written is held in memory and
written, in order, before the next one.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque

from icmpsensor.config.schema import RotationConfig
from icmpsensor.notice import zeeklog
from icmpsensor.notice.record import Notice
from icmpsensor.output.logfile import Header, LogFile, NoticeWriteError

BACKLOG_LIMIT = 10_000  # notices held in memory while notice.log cannot be written

# Zeek's TSV: every file opens with the header block and ends with #close
TSV_HEADER = Header(lambda t: zeeklog.tsv_header(t).encode(), lambda t: zeeklog.tsv_footer(t).encode())


class NoticeLog(LogFile):
    """notice.log in a log directory, in `fmt` "json" or "tsv"; `rotation` None (file replay) never rotates.

    Stats: `backlog` (notices held for retry), `lost` (dropped because the backlog was
    full, or still held at close), `write_errors` (failed write attempts).
    """

    def __init__(self, log_dir: str, file_name: str, peer_descr: str, rotation: RotationConfig | None = None,
                 *, backlog_limit: int = BACKLOG_LIMIT, fmt: str = "json") -> None:
        super().__init__(log_dir, file_name, rotation, header=TSV_HEADER if fmt == "tsv" else None)
        self.peer_descr = peer_descr
        self.render = zeeklog.tsv_line if fmt == "tsv" else zeeklog.json_line
        self.lost = 0
        self.write_errors = 0
        self._held: deque[bytes] = deque(maxlen=backlog_limit)
        self._lock = threading.RLock()

    @property
    def backlog(self) -> int:
        return len(self._held)

    def emit(self, notice: Notice) -> None:
        """Write the notice (after any held ones); NoticeWriteError if it had to be held instead."""
        line = self.render(notice, self.peer_descr).encode()
        with self._lock:
            if self._held:
                self._hold(line)
                self.flush_backlog()
                return
            try:
                self.log.write_line(line)
            except NoticeWriteError as exc:
                self.write_errors += 1
                self._hold(line)
                raise self._held_error(exc) from None

    def flush_backlog(self) -> int:
        """Write the held notices in order (call about once a second); how many were written.

        Raises NoticeWriteError if some are still held.
        """
        written = 0
        with self._lock:
            while self._held:
                try:
                    self.log.write_line(self._held[0])
                except NoticeWriteError as exc:
                    self.write_errors += 1
                    raise self._held_error(exc) from None
                self._held.popleft()
                written += 1
        return written

    def _hold(self, line: bytes) -> None:
        if len(self._held) == self._held.maxlen:
            self.lost += 1  # the deque drops the oldest
        self._held.append(line)

    def _held_error(self, exc: NoticeWriteError) -> NoticeWriteError:
        return NoticeWriteError(exc.errno, f"{exc.strerror}; {len(self._held)} notices held in memory for retry")

    def give_up(self) -> int:
        """The stop: write what is held if possible; what is not is lost, counted (`lost`). How many."""
        with self._lock:
            with contextlib.suppress(NoticeWriteError):
                self.flush_backlog()
            given_up = len(self._held)
            self.lost += given_up
            self._held.clear()
            return given_up

    def close(self) -> None:
        """give_up, then close the file."""
        with self._lock:
            self.give_up()
            self.log.close()
