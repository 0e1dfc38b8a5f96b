"""The notice record. A detector fills it (its text from notice/text.py); every output renders it through
notice/zeeklog.py (the notice.log record in Zeek's JSON and TSV formats).
"""

from __future__ import annotations

from dataclasses import dataclass

from icmpsensor.notice import zeeklog


@dataclass(slots=True)
class Notice:
    """One alert. `src`/`dst` are addresses as text ("" for a notice about no flow); the rest feeds every sink."""

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
    icmp_type: int = -1  # the ICMP (ICMPv6) type and code of the flow's first message; -1: none
    icmp_code: int = -1
    tool: str = ""  # the tunnel or exfiltration tool recognised
    channels: str = ""  # comma-joined names of the channels that carried novel bytes, e.g. "payload,ident"
    peers: int = 0  # the peers the notice counts (e.g. a slow exfiltration's); 0: not counted

    def to_json_line(self, peer_descr: str) -> str:
        """One complete JSON line, newline included, ready for a single write."""
        return zeeklog.json_line(self, peer_descr)

    def to_tsv_line(self, peer_descr: str) -> str:
        """One complete Zeek TSV line, newline included (the header: zeeklog.tsv_header)."""
        return zeeklog.tsv_line(self, peer_descr)
