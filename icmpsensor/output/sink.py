"""Notice sinks: where notices go once the detector has raised them, and the fan-out to all of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from icmpsensor.console import say
from icmpsensor.notice.record import Notice
from icmpsensor.output.logfile import NoticeWriteError


class NoticeSink(Protocol):
    def emit(self, notice: Notice) -> None: ...

    def close(self) -> None: ...


class ListSink:
    """Keeps the notices in memory (a replay worker's batch for the main process; tests, benchmarks)."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def emit(self, notice: Notice) -> None:
        self.notices.append(notice)

    def take(self) -> list[Notice]:
        """The notices so far, and start a new list."""
        taken, self.notices = self.notices, []
        return taken

    def close(self) -> None:
        pass


class NoteCounter:
    """Counts the notices that reach the sinks after it, by note (the metrics' notices by note)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def emit(self, notice: Notice) -> None:
        self.counts[notice.note] = self.counts.get(notice.note, 0) + 1

    def close(self) -> None:
        pass


def write_notice(sinks: Sequence[NoticeSink], notice: Notice, on_write_error: Callable[[str], None]) -> int:
    """Emit one notice to every sink; how many sinks failed (each failure is reported)."""
    errors = 0
    for sink in sinks:
        try:
            sink.emit(notice)
        except NoticeWriteError as exc:
            errors += 1
            on_write_error(f"cannot write notice to {type(sink).__name__} ({exc.strerror}): "
                           f"{notice.note} {notice.src} -> {notice.dst}")
    return errors


def print_error(message: str) -> None:
    say(f"icmpsensor: error: {message}")
