"""The batch record every packet source hands on: a libpcap batch as pcapy-ng's `next_batch` reads it.

A batch is the frames' bytes in one buffer plus one 16-byte record per frame: seconds,
microseconds, the frame's offset in the buffer and its captured length (`BATCH_META`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

# A batch as read from libpcap: frame bytes and 16-byte (sec, usec, offset, caplen) records.
RawBatch = tuple[bytes, bytes]

# One frame's record in a pcapy-ng next_batch() batch: seconds, microseconds, offset in the buffer, captured length.
BATCH_META = struct.Struct("=IIII")


def frames_of(buf: bytes, meta: bytes) -> list[tuple[float, bytes]]:
    """(timestamp, frame) pairs of one libpcap batch (a list comprehension: no generator per frame)."""
    return [(sec + usec * 1e-6, buf[off : off + cap]) for sec, usec, off, cap in BATCH_META.iter_unpack(meta)]


def packet_count(meta: bytes) -> int:
    return len(meta) // BATCH_META.size


def first_capture_time(meta: bytes) -> float:
    """The capture time (epoch seconds) of a non-empty batch's first frame."""
    sec, usec, _, _ = BATCH_META.unpack_from(meta, 0)
    return sec + usec * 1e-6


def last_capture_time(meta: bytes) -> float:
    """The capture time (epoch seconds) of a non-empty batch's last frame."""
    sec, usec, _, _ = BATCH_META.unpack_from(meta, len(meta) - BATCH_META.size)
    return sec + usec * 1e-6


class CapturedFrame(NamedTuple):
    """One frame as it was captured: its bytes and its timestamp as libpcap gave it (what evidence keeps). A
    named tuple: a flood holds one per packet with novel bytes, and a tuple is made in half the time of a frozen
    dataclass."""

    sec: int
    usec: int
    data: bytes


@dataclass(slots=True)
class Batch:
    """A batch as a source hands it to a worker: with the decoder of its capture's link type."""

    decoder: Any
    buf: bytes
    meta: bytes
