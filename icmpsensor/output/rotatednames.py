"""The names of a log's rotated copies (Zeek's: `stem.STAMP[-N]ext[.gz]`), kept apart from logfile.py so that the
configuration's check (which refuses an output named like another log's rotated copy: that log's `keep` would
delete it) reads the same pattern without the writer's imports."""

from __future__ import annotations

import os
import re
import time

NAME_TIME_FORMAT = "%Y-%m-%d-%H-%M-%S"


class RotatedFile:
    """One rotated log, plain and/or gzipped (both exist while it is being compressed). (A plain class: the
    configuration's check imports this module, and `dataclasses` costs milliseconds of every start.)"""

    __slots__ = ("base", "seq", "stamp")

    def __init__(self, base: str, stamp: str, seq: int) -> None:
        self.base = base  # e.g. notice.2024-05-01-13-00-00-1.log, without .gz
        self.stamp = stamp
        self.seq = seq  # the collision suffix; 0 for none

    @property
    def order(self) -> tuple[str, int]:
        return self.stamp, self.seq


class RotatedNames:
    """Zeek-style names of the rotated copies of one log file: `stem.STAMP[-N]ext[.gz]`."""

    def __init__(self, file_name: str) -> None:
        self.stem, self.ext = os.path.splitext(file_name)
        self._pattern = re.compile(
            rf"{re.escape(self.stem)}\.(\d{{4}}-\d\d-\d\d-\d\d-\d\d-\d\d)(?:-(\d+))?{re.escape(self.ext)}(\.gz)?"
        )

    def name(self, opened_at: float, seq: int) -> str:
        stamp = time.strftime(NAME_TIME_FORMAT, time.localtime(opened_at))
        return f"{self.stem}.{stamp}{f'-{seq}' if seq else ''}{self.ext}"

    def scan(self, log_dir: str) -> list[RotatedFile]:
        """The rotated files in `log_dir`, oldest first."""
        found: dict[str, RotatedFile] = {}
        for entry in os.listdir(log_dir):
            match = self._pattern.fullmatch(entry)
            if match:
                base = entry.removesuffix(".gz") if match.group(3) else entry
                found[base] = RotatedFile(base, match.group(1), int(match.group(2) or 0))
        return sorted(found.values(), key=lambda f: f.order)

    def free_name(self, log_dir: str, opened_at: float) -> str:
        """The first name for a file opened at `opened_at` after every one taken, gzipped or not."""
        stamp = time.strftime(NAME_TIME_FORMAT, time.localtime(opened_at))
        taken = [f.seq for f in self.scan(log_dir) if f.stamp == stamp]
        return self.name(opened_at, max(taken) + 1 if taken else 0)

    def claims(self, name: str) -> bool:
        """Whether `name` is (or would be) one of these rotated copies: pruned by `keep`, compressed by gzip."""
        return self._pattern.fullmatch(name) is not None
