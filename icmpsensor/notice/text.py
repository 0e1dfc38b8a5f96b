"""The text of a notice: `msg` and `sub` as the original detector wrote them (see BEHAVIOUR.md).

Sizes in decimal units with two decimals, times in `msg` as local time and in `sub` as epoch
seconds, durations spelled like Zeek prints an interval.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import time

# An IPv6 address whose first 80 bits are zero: glibc's inet_ntop writes its last 32 bits as a dotted quad
# when it is IPv4-mapped or -compatible (inet/inet_ntop.c inet_ntop6), Python's ipaddress as two groups.
V4_EMBEDDABLE = bytes(10)


def addr_text(packed: bytes) -> str:
    """A packed 4- or 16-byte address as text (IPv6 as Python's ipaddress writes it: RFC 5952, the
    longest run of two or more zero groups, the first on a tie, written '::'; inet_ntop writes the same
    but for the addresses V4_EMBEDDABLE marks). inet_ntoa and inet_ntop are ~20 times as fast as
    ipaddress: a notice storm makes two addresses a notice."""
    if len(packed) == 4:
        return socket.inet_ntoa(packed)
    if packed.startswith(V4_EMBEDDABLE):
        return str(ipaddress.ip_address(packed))
    return socket.inet_ntop(socket.AF_INET6, packed)


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
    return _local_second(int(ts // 1))


@functools.lru_cache(maxsize=4096)
def _local_second(second: int) -> str:
    # The flows a notice storm ends share their seconds: each is formatted once.
    return time.strftime("%H:%M:%S %d/%m/%Y %Z%z", time.localtime(second))


def flow_summary_sub(
    src: str, dst: str, start: float, end: float, bytes_sent: int, bytes_received: int, n: int,
    novel_bytes: int = -1, extra: str = "", *, duration: str | None = None,
) -> str:
    """`duration`: format_interval(end - start), when the caller has it already."""
    text = (
        f"Source: {src}, Destination: {dst}, Start time: {start:.6f}, End time: {end:.6f}, "
        f"Duration: {duration or format_interval(end - start)}, Bytes sent: {bytes_sent}, "
        f"Bytes received: {bytes_received}, Event count: {n}"
    )
    if novel_bytes >= 0:
        text += f", Novel bytes: {novel_bytes}"
    return text + (f", {extra}" if extra else "")


def time_span_text(start: float, end: float, duration: str | None = None) -> str:
    return (
        f"Start time: {format_local_time(start)}. End time: {format_local_time(end)}. "
        f"Total duration: {duration or format_interval(end - start)}"
    )
