"""`--stdout`: every notice also as a JSON line on standard output.

Standard output is a copy: when it breaks (`| head -1`, a full disk) the sink says so once on stderr and
stays quiet; the notices still go to notice.log and journald.
"""

from __future__ import annotations

from icmpsensor.console import say, write_out
from icmpsensor.notice.record import Notice


class StdoutSink:
    def __init__(self, peer_descr: str) -> None:
        self.peer_descr = peer_descr
        self.broken = False

    def emit(self, notice: Notice) -> None:
        if self.broken:
            return
        if not write_out(notice.to_json_line(self.peer_descr)):
            self.broken = True
            say("icmpsensor: warning: standard output is closed or full: notices go on to notice.log only")

    def close(self) -> None:
        pass
