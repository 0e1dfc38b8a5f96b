"""Capture files (pcap and pcapng, through libpcap): the packet source of replay.

Several files are read in the order given as one continuous timeline. Every file is opened and
its link type checked before any is read (`FileSource.check`), so that a typo in the last name does
not cost a long run. A file that ends in a broken record gives everything before the break: the
batch that hit it is re-read frame by frame, then the rest of the file is skipped and the problem
is recorded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pcapy

from icmpsensor.errors import InputError
from icmpsensor.source.batch import BATCH_META, Batch, RawBatch, packet_count

BATCH_SIZE = 4096

# A decoder for a link type (raises InputError for one it does not support).
DecoderFactory = Callable[[int], Any]


@dataclass
class ReadProblem:
    """A capture file that could not be read to the end."""

    path: str
    error: str
    frames: int  # frames read from it before (and salvaged after) the break

    def text(self) -> str:
        return f"capture file {self.path}: {self.error} (after {self.frames} packets; rest skipped)"


@dataclass
class FileSource:
    """`paths` read in order as one timeline; `bpf_filter` (None: every frame) picks the frames read."""

    paths: list[str]
    decoder_for: DecoderFactory
    bpf_filter: str | None = None
    files: int = 0  # files opened for reading
    frames: int = 0  # frames read (that the filter passed)
    problems: list[ReadProblem] = field(default_factory=list)
    ended: bool = False  # every file has been read
    live: ClassVar[bool] = False
    failure: ClassVar[str | None] = None
    _reading: Iterator[Batch] | None = None

    def next_batch(self, timeout: float = 0.0) -> Batch | None:
        """The next batch of the timeline; None (and `ended`) after the last. A file never makes one wait."""
        if self._reading is None:
            self._reading = self.read()
        batch = next(self._reading, None)
        if batch is None:
            self.ended = True
        return batch

    def stop(self) -> None:
        pass

    def close(self) -> Iterator[Batch]:
        return iter(())

    def check(self) -> list[int]:
        """Open every file and check its link type, before anything is read; the link types."""
        linktypes = []
        for path in self.paths:
            reader = open_capture(path)
            try:
                linktypes.append(reader.datalink())
                _decoder_for_file(path, reader, self.decoder_for)
            finally:
                reader.close()
        return linktypes

    def read(self) -> Iterator[Batch]:
        """Every batch of every file, in order."""
        for path in self.paths:
            yield from self._file(path)

    def _file(self, path: str) -> Iterator[Batch]:
        reader = open_capture(path)
        decoder = _decoder_for_file(path, reader, self.decoder_for)
        if self.bpf_filter is not None:
            reader.setfilter(self.bpf_filter)
        self.files += 1
        done = 0
        try:
            for buf, meta in batches(reader):
                yield Batch(decoder, buf, meta)
                done += packet_count(meta)
                self.frames += packet_count(meta)
        except pcapy.PcapError as exc:
            # the batch that hit a truncated or corrupt record is lost whole: its good frames again,
            # one by one, then the rest of the file is skipped
            salvaged = 0
            try:
                for buf, meta in _single_batches_after(path, done, self.bpf_filter):
                    yield Batch(decoder, buf, meta)
                    salvaged += 1
            except pcapy.PcapError:
                pass
            self.frames += salvaged
            self.problems.append(ReadProblem(path, error_text(exc), done + salvaged))


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


def _decoder_for_file(path: str, reader: pcapy.Reader, decoder_for: DecoderFactory) -> Any:
    try:
        return decoder_for(reader.datalink())
    except InputError as exc:
        raise InputError(f"capture file {path}: {exc.message}") from None


def batches(reader: pcapy.Reader) -> Iterator[RawBatch]:
    """Batches straight from libpcap (the bench's ceiling reads this way too); pcapy.PcapError on a
    broken record."""
    while True:
        buf, meta = reader.next_batch(BATCH_SIZE)
        if not meta:
            return
        yield buf, meta


def _single_batches_after(path: str, skip: int, bpf_filter: str | None) -> Iterator[RawBatch]:
    """Frames after the first `skip` (of those `bpf_filter` passes), each as a batch of its own."""
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
