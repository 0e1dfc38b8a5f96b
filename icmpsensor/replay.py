"""Reading capture files (pcap and pcapng, through libpcap) into the pipeline.

Several files are read in the order given as one continuous timeline: detector state
carries over from one file to the next, and flows are evaluated only at the very end.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pcapy

from icmpsensor.capture import BATCH_META, RawBatch, packet_count
from icmpsensor.decode import Decoder
from icmpsensor.errors import InputError
from icmpsensor.pipeline import Pipeline

BATCH_SIZE = 4096


@dataclass
class ReplayResult:
    files: int = 0
    frames: int = 0
    problems: list[str] = field(default_factory=list)  # files that could not be read to the end


def open_capture(path: str) -> pcapy.Reader:
    if os.path.isdir(path):
        raise InputError(f"capture file {path}: is a directory")
    if not os.access(path, os.R_OK):
        reason = "no such file" if not os.path.exists(path) else "permission denied"
        raise InputError(f"capture file {path}: {reason}")
    try:
        return pcapy.open_offline(path)
    except pcapy.PcapError as exc:
        raise InputError(f"capture file {path}: {error_text(exc)}") from None


def error_text(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def batches(reader: pcapy.Reader) -> Iterator[RawBatch]:
    """Batches straight from libpcap (see capture.frames_of); raises pcapy.PcapError on a broken record."""
    while True:
        buf, meta = reader.next_batch(BATCH_SIZE)
        if not meta:
            return
        yield buf, meta


def single_batches_after(path: str, skip: int, bpf_filter: str | None = None) -> Iterator[RawBatch]:
    """Frames after the first `skip` (of those `bpf_filter` passes), each as a batch of its own: used to
    salvage a batch that hit a broken record."""
    reader = pcapy.open_offline(path)
    if bpf_filter is not None:
        reader.setfilter(bpf_filter)
    index = 0
    while True:
        hdr, data = reader.next()
        if hdr is None:
            return
        if index >= skip:
            sec, usec = hdr.getts()
            yield data, BATCH_META.pack(sec, usec, 0, len(data))
        index += 1


def read_capture(path: str, reader: pcapy.Reader, feed_batch: Callable[[bytes, bytes], None],
                 bpf_filter: str | None = None,
                 after_batch: Callable[[], None] | None = None) -> tuple[int, str | None]:
    """Every batch of the open capture `reader` (of `path`, filtered by `bpf_filter`) to `feed_batch`,
    `after_batch` after each. A batch that hits a truncated or corrupt record is lost whole: its good
    frames are re-read one by one and the rest of the file is skipped. (Frames read, the error or None.)"""
    done = 0
    try:
        for buf, meta in batches(reader):
            feed_batch(buf, meta)
            done += packet_count(meta)
            if after_batch is not None:
                after_batch()
    except pcapy.PcapError as exc:
        salvaged = 0
        try:
            for buf, meta in single_batches_after(path, done, bpf_filter):
                feed_batch(buf, meta)
                salvaged += 1
        except pcapy.PcapError:
            pass
        return done + salvaged, error_text(exc)
    return done, None


def capture_snaplen(path: str) -> int | None:
    """The snap length a capture file declares (pcapng: the smallest of the interfaces described
    before the first packet; 0 there means no limit), or None when the header says nothing usable."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return None
    if len(head) >= 24 and head[:4] in _PCAP_MAGICS:
        return int.from_bytes(head[16:20], _PCAP_MAGICS[head[:4]])
    if len(head) < 12 or head[:4] != b"\x0a\x0d\x0d\x0a":
        return None
    order = "little" if head[8:12] == b"\x4d\x3c\x2b\x1a" else "big"
    snaplens: list[int] = []
    at = 0
    while at + 16 <= len(head):
        kind = int.from_bytes(head[at : at + 4], order)
        length = int.from_bytes(head[at + 4 : at + 8], order)
        if kind in (2, 3, 6) or length < 12:  # a packet block: every interface it can use is described
            break
        if kind == 1:  # interface description: link type, reserved, snap length
            snaplens.append(int.from_bytes(head[at + 12 : at + 16], order) or 0xFFFFFFFF)
        at += length
    return min(snaplens) if snaplens else None


_PCAP_MAGICS = {  # the pcap file magic as read from the file -> the byte order of its header
    b"\xd4\xc3\xb2\xa1": "little", b"\xa1\xb2\xc3\xd4": "big",  # microsecond timestamps
    b"\x4d\x3c\xb2\xa1": "little", b"\xa1\xb2\x3c\x4d": "big",  # nanosecond timestamps
}


def decoder_for_file(path: str, reader: pcapy.Reader, pipeline: Pipeline) -> Decoder:
    try:
        return pipeline.decoder_for(reader.datalink())
    except InputError as exc:
        raise InputError(f"capture file {path}: {exc.message}") from None


def broken_capture_text(path: str, error: str, frames: int) -> str:
    """The problem line of a capture that could not be read to the end."""
    return f"capture file {path}: {error} (after {frames} packets; rest skipped)"


def replay_file(path: str, pipeline: Pipeline, result: ReplayResult) -> None:
    reader = open_capture(path)
    decoder = decoder_for_file(path, reader, pipeline)
    result.files += 1
    done, error = read_capture(path, reader, functools.partial(pipeline.feed_batch, decoder))
    if error is not None:
        result.problems.append(broken_capture_text(path, error, done))
    result.frames += done


def replay_files(paths: list[str], pipeline: Pipeline) -> ReplayResult:
    """Replay every file in order, then evaluate all flows still open."""
    for path in paths:  # fail before reading anything if a later file cannot be read
        decoder_for_file(path, open_capture(path), pipeline)
    result = ReplayResult()
    for path in paths:
        replay_file(path, pipeline, result)
    pipeline.finish()
    return result
