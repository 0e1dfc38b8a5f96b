"""stats.log: one JSON record per stats interval, rotated like notice.log (`stats.YYYY-...log`)."""

from __future__ import annotations

import json

from icmpsensor.output.logfile import LogFile


class StatsLog(LogFile):
    """The stats log: one JSON object per line, rotated like notice.log (`stats.YYYY-...log`)."""

    def write(self, record: dict[str, object]) -> None:
        """Append `record` as one JSON line; NoticeWriteError if it cannot be written whole."""
        line = json.dumps(record, ensure_ascii=True, separators=(",", ":"), default=str) + "\n"
        self.log.write_line(line.encode())
