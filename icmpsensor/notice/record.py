"""The notice record and its Zeek rendering: the JSON line of a Zeek notice.log.

A detector fills the record (its text from notice/text.py); every output renders it from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

ZEEK_ACTIONS = ("Notice::ACTION_LOG",)
_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))  # built once: json.dumps builds one per call


@dataclass(slots=True)
class Notice:
    """One alert. `src`/`dst` are addresses as text; the rest feeds every sink."""

    ts: float
    note: str
    msg: str
    sub: str
    src: str
    dst: str
    uid: str
    n: int
    bytes_sent: int
    bytes_received: int
    start: float
    end: float
    novel_bytes: int = -1  # -1: not measured (original profile)
    evidence: str = ""  # path of the evidence pcap, once written

    def zeek_record(self, peer_descr: str) -> dict[str, object]:
        """The notice as a Zeek JSON notice.log record (field names and order as Zeek writes them).

        `evidence` is not a Zeek field; like any extra field it is kept by Zeek log shippers.
        """
        record: dict[str, object] = {
            "ts": self.ts,
            "uid": self.uid,
            "proto": "icmp",
            "note": self.note,
            "msg": self.msg,
            "sub": self.sub,
            "src": self.src,
            "dst": self.dst,
            "n": self.n,
            "peer_descr": peer_descr,
            "actions": list(ZEEK_ACTIONS),
            "email_dest": [],
            "suppress_for": 0.0,
        }
        if self.evidence:
            record["evidence"] = self.evidence
        return record

    def to_json_line(self, peer_descr: str) -> str:
        """One complete line, newline included, ready for a single write."""
        return _ENCODER.encode(self.zeek_record(peer_descr)) + "\n"
