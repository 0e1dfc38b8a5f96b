"""`--stdout`: every notice also as a JSON line on standard output."""

from __future__ import annotations

import sys
from typing import TextIO

from icmpsensor.notice.record import Notice


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
