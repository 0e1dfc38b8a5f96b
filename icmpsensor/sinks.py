"""Notice sinks: where notices go once the detector has raised them.

`NoticeLog` writes Zeek-compatible JSON lines to notice.log. Each line goes out in
one write() on an O_APPEND descriptor, so concurrent writers and `tail -F` readers
never see interleaved or partial lines; if the disk fills mid-line, the partial
line is cut off again before the error is reported.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from typing import Protocol, TextIO

from icmpsensor.errors import OutputError
from icmpsensor.notices import Notice


class NoticeSink(Protocol):
    def emit(self, notice: Notice) -> None: ...

    def close(self) -> None: ...


class NoticeWriteError(OSError):
    """A notice could not be written whole; nothing partial was left behind."""


def open_append(path: str, mode: int = 0o640) -> int:
    """Open `path` for appending, creating it; errors name the path (exit 73)."""
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise OutputError(f"cannot open log file {path}: {exc.strerror}") from None


def append_whole_line(fd: int, line: bytes) -> None:
    """Append `line` with one write; on a short write, remove the fragment and raise."""
    size_before = os.fstat(fd).st_size
    try:
        written = os.write(fd, line)
    except OSError as exc:
        raise NoticeWriteError(exc.errno, exc.strerror) from None
    if written != len(line):
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size_before)
        raise NoticeWriteError(errno.ENOSPC, f"short write ({written} of {len(line)} bytes)")


class NoticeLog:
    """notice.log in a log directory."""

    def __init__(self, log_dir: str, file_name: str, peer_descr: str) -> None:
        check_log_dir(log_dir)
        self.path = os.path.join(log_dir, file_name)
        self.peer_descr = peer_descr
        self._fd = open_append(self.path)

    def emit(self, notice: Notice) -> None:
        append_whole_line(self._fd, notice.to_json_line(self.peer_descr).encode())

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class StdoutSink:
    """Each notice also as a JSON line on standard output (`--stdout`)."""

    def __init__(self, peer_descr: str, stream: TextIO | None = None) -> None:
        self.peer_descr = peer_descr
        self.stream = stream or sys.stdout

    def emit(self, notice: Notice) -> None:
        self.stream.write(notice.to_json_line(self.peer_descr))
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


def check_log_dir(log_dir: str) -> None:
    """The log directory must exist and be writable; otherwise exit 73 with its name."""
    if not os.path.isdir(log_dir):
        raise OutputError(f"log directory {log_dir}: does not exist or is not a directory")
    if not os.access(log_dir, os.W_OK | os.X_OK):
        raise OutputError(f"log directory {log_dir}: not writable")
