"""Notice records and their Zeek-compatible text: `msg`, `sub` and the JSON line.

Formatting follows the original detector's notice.log (see BEHAVIOUR.md): sizes in
decimal units with two decimals, times in `msg` as local time and in `sub` as epoch
seconds, durations spelled like Zeek prints an interval.
"""

from __future__ import annotations

import ipaddress
import json
import time
from dataclasses import dataclass

NOTE_DATA_EXFIL = "ICMP::ICMP_DataExfil"
NOTE_UNPAIRED_ECHO_REPLY = "ICMP::ICMP_UnpairedEchoReply"
NOTE_ASYM_PAYLOAD = "ICMP::ICMP_AsymPayload"
NOTE_ASYM_PAYLOAD_FLOW = "ICMP::ICMP_AsymPayloadFlow"

NOTE_TUNNEL = "ICMP::ICMP_Tunnel"
NOTE_NON_ECHO_PAYLOAD = "ICMP::ICMP_NonEchoPayload"
NOTE_SLOW_EXFIL = "ICMP::ICMP_SlowExfil"
NOTE_EXFIL_SUMMARY = "ICMP::ICMP_ExfilSummary"

ALL_NOTES = (
    NOTE_DATA_EXFIL,
    NOTE_UNPAIRED_ECHO_REPLY,
    NOTE_ASYM_PAYLOAD,
    NOTE_ASYM_PAYLOAD_FLOW,
    NOTE_TUNNEL,
    NOTE_NON_ECHO_PAYLOAD,
    NOTE_SLOW_EXFIL,
    NOTE_EXFIL_SUMMARY,
)

ZEEK_ACTIONS = ("Notice::ACTION_LOG",)


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
        return json.dumps(self.zeek_record(peer_descr), ensure_ascii=True, separators=(",", ":")) + "\n"


def addr_text(packed: bytes) -> str:
    """A packed 4- or 16-byte address as text."""
    return str(ipaddress.ip_address(packed))


def format_size(num_bytes: int) -> str:
    """Decimal units, two decimals: 2998380 -> '3.00 MB', 504 -> '504.00 bytes'."""
    value = float(num_bytes)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1000.0 or unit == "TB":
            return f"{value:.2f} {unit}"
        value /= 1000.0
    raise AssertionError("unreachable")


_INTERVAL_UNITS = (  # (microseconds, unit word)
    (86_400_000_000, "day"),
    (3_600_000_000, "hr"),
    (60_000_000, "min"),
    (1_000_000, "sec"),
    (1_000, "msec"),
)


def format_interval(seconds: float) -> str:
    """A duration the way Zeek prints an `interval`: '31.0 secs 602.0 msecs 305.0 usecs'.

    Rounded to whole microseconds first: capture timestamps have no finer resolution, and
    epoch-sized floats carry noise below that.
    """
    usecs_total = round(seconds * 1e6)
    if usecs_total <= 0:
        return "0 secs"
    parts: list[str] = []
    for unit_usecs, word in _INTERVAL_UNITS:
        count, usecs_total = divmod(usecs_total, unit_usecs)
        if count:
            parts.append(f"{float(count)} {word}{'' if count == 1 else 's'}")
    if usecs_total:
        parts.append(f"{float(usecs_total)} usec{'' if usecs_total == 1 else 's'}")
    return " ".join(parts)


def format_local_time(ts: float) -> str:
    """Local wall-clock time as in the original's msg: '10:54:26 12/10/2022 EDT-0400'."""
    return time.strftime("%H:%M:%S %d/%m/%Y %Z%z", time.localtime(ts))


def flow_summary_sub(
    src: str, dst: str, start: float, end: float, bytes_sent: int, bytes_received: int, n: int,
    novel_bytes: int = -1, extra: str = "",
) -> str:
    text = (
        f"Source: {src}, Destination: {dst}, Start time: {start:.6f}, End time: {end:.6f}, "
        f"Duration: {format_interval(end - start)}, Bytes sent: {bytes_sent}, "
        f"Bytes received: {bytes_received}, Event count: {n}"
    )
    if novel_bytes >= 0:
        text += f", Novel bytes: {novel_bytes}"
    return text + (f", {extra}" if extra else "")


def time_span_text(start: float, end: float) -> str:
    return (
        f"Start time: {format_local_time(start)}. End time: {format_local_time(end)}. "
        f"Total duration: {format_interval(end - start)}"
    )
