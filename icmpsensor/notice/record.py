"""The notice record. A detector fills it (its text from notice/text.py); every output renders it through
notice/zeeklog.py (the notice.log record in Zeek's JSON and TSV formats).

A notice's text (`msg`, `sub`) may be deferred: the detector hands over a NoticeText, and the text is
made the first time `msg` or `sub` is read. Under a notice storm almost every notice is folded into an
aggregate (notice/aggregate.py) and never written, so its text is never made (issue 13: building it was
most of an alerted flow's cost). A deferred text is a snapshot: it reads nothing that changes later.
"""

from __future__ import annotations

import operator
from typing import Protocol

from icmpsensor.notice import zeeklog


class NoticeText(Protocol):
    def render(self) -> tuple[str, str]:
        """(msg, sub)."""
        ...


# Notice's fields in its __init__'s order
_FIELDS = ("ts", "note", "msg", "sub", "src", "dst", "uid", "n", "bytes_sent", "bytes_received", "start", "end",
           "novel_bytes", "evidence", "icmp_type", "icmp_code", "tool", "channels", "peers")
_values = operator.attrgetter(*_FIELDS)


class Notice:
    """One alert. `src`/`dst` are addresses as text ("" for a notice about no flow); the rest feeds every sink.

    Fields, in order (positional as well): ts, note, msg, sub, src, dst, uid, n, bytes_sent, bytes_received,
    start, end, then with defaults novel_bytes (-1: not measured, the original profile), evidence (path of
    the evidence pcap, once written), icmp_type / icmp_code (of the flow's first message; -1: none), tool
    (the tunnel or exfiltration tool recognised), channels (comma-joined names of the channels that carried
    novel bytes, e.g. "payload,ident"), peers (the peers the notice counts; 0: not counted); and `text`, a
    NoticeText that makes msg and sub when they are first read (then msg and sub are given as "")."""

    __slots__ = ("_msg", "_sub", "_text", *(name for name in _FIELDS if name not in ("msg", "sub")))

    def __init__(self, ts: float, note: str, msg: str, sub: str, src: str, dst: str, uid: str, n: int,
                 bytes_sent: int, bytes_received: int, start: float, end: float, novel_bytes: int = -1,
                 evidence: str = "", icmp_type: int = -1, icmp_code: int = -1, tool: str = "", channels: str = "",
                 peers: int = 0, text: NoticeText | None = None) -> None:
        self.ts, self.note, self._msg, self._sub, self._text = ts, note, msg, sub, text
        self.src, self.dst, self.uid, self.n = src, dst, uid, n
        self.bytes_sent, self.bytes_received, self.start, self.end = bytes_sent, bytes_received, start, end
        self.novel_bytes, self.evidence, self.icmp_type, self.icmp_code = novel_bytes, evidence, icmp_type, icmp_code
        self.tool, self.channels, self.peers = tool, channels, peers

    def _made(self) -> Notice:
        """The notice with its text made (once, from the deferred NoticeText)."""
        text = self._text
        if text is not None:
            self._msg, self._sub = text.render()
            self._text = None
        return self

    @property
    def msg(self) -> str:
        return self._made()._msg

    @property
    def sub(self) -> str:
        return self._made()._sub

    def replace(self, **changes: object) -> Notice:
        """A copy with `changes` (as dataclasses.replace), its text made."""
        fields = dict(zip(_FIELDS, self.values(), strict=True))
        fields.update(changes)
        return Notice(**fields)  # type: ignore[arg-type]

    def values(self) -> tuple[object, ...]:
        return _values(self)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.values() == other.values()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value: as a dataclass is

    def __repr__(self) -> str:
        return "Notice(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS) + ")"

    def __reduce__(self) -> tuple[type[Notice], tuple[object, ...]]:
        return Notice, _values(self)  # a pickled notice (sent by a worker) carries its text made

    def to_json_line(self, peer_descr: str) -> str:
        """One complete JSON line, newline included, ready for a single write."""
        return zeeklog.json_line(self, peer_descr)

    def to_tsv_line(self, peer_descr: str) -> str:
        """One complete Zeek TSV line, newline included (the header: zeeklog.tsv_header)."""
        return zeeklog.tsv_line(self, peer_descr)
