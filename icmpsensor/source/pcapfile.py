"""Capture files (pcap and pcapng, through libpcap): the packet source of replay.

Several inputs are read in the order given as one continuous timeline. Every input is opened and
its link type checked before any is read (`FileSource.check`), so that a typo in the last name does
not cost a long run. A regular file is closed again after the check and read in libpcap batches; a
stream (standard input as `-`, a FIFO, a pipe, a character device) can be read only once, so it
stays open and is read frame by frame. A file that ends in a broken record gives everything before
the break: the batch that hit it is re-read frame by frame, then the rest of the file is skipped and
the problem is recorded.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pcapy

from icmpsensor.console import write_all
from icmpsensor.errors import InputError
from icmpsensor.source.batch import BATCH_META, Batch, RawBatch, last_capture_time, packet_count

BATCH_SIZE = 4096
STDIN = "-"  # as tcpdump and zeek: read the capture from standard input
# A FIFO given with -r: seconds its writer has to write something (tcpdump -w FIFO writes the file header at once);
# past that, no writer is coming (libpcap's open would wait for one forever)
FIFO_WRITER_TIMEOUT = 10.0

# A decoder for a link type (raises InputError for one it does not support).
DecoderFactory = Callable[[int], Any]

# What libpcap (through pcapy) raises on a capture it cannot read on, and what a hostile record can
# make the frame-by-frame path raise.
_READ_ERRORS = (pcapy.PcapError, OSError, OverflowError, ValueError)


@dataclass
class ReadProblem:
    """A capture file that could not be read to the end."""

    path: str
    error: str
    frames: int  # frames read from it before (and salvaged after) the break
    opened: bool = True  # False: it could not be opened (or had another link type) when its turn came

    def text(self) -> str:
        if not self.opened:
            return f"{self.error} (it changed after the check before the replay: skipped)"
        return f"capture file {label(self.path)}: {self.error} (after {self.frames} packets; rest skipped)"


@dataclass
class FileSource:
    """`paths` read in order as one timeline; `share` (None: every frame) picks the frames given on from each
    batch: a function of (buf, meta) giving the records kept (a replay worker's share, runmode/partition.py)."""

    paths: list[str]
    decoder_for: DecoderFactory
    share: Callable[[bytes, bytes], bytes] | None = None
    files: int = 0  # files opened for reading
    frames: int = 0  # frames read (that the share kept)
    latest: float = 0.0  # the latest of the batches' last frames' times, every frame read counted (the share's or not)
    problems: list[ReadProblem] = field(default_factory=list)
    ended: bool = False  # every file has been read
    live: ClassVar[bool] = False
    failure: ClassVar[str | None] = None
    _reading: Iterator[Batch] | None = None
    _streams: dict[int, pcapy.Reader] = field(default_factory=dict)  # open since the check, by position

    def next_batch(self, timeout: float = 0.0) -> Batch | None:
        """The next batch of the timeline; None (and `ended`) after the last. A file never makes one wait."""
        if self._reading is None:
            self._reading = self.read()
        batch = next(self._reading, None)
        if batch is None:
            self.ended = True
        return batch

    def stop(self, at: float | None = None) -> None:
        pass

    def take_events(self) -> list[str]:
        return []

    def tick(self) -> None:
        pass

    def clock(self, now: float) -> float:
        return now  # not asked: a file's clock is its packets' times

    def close(self) -> Iterator[Batch]:
        return iter(())

    def check(self) -> list[int]:
        """Open every input and check its link type, before anything is read; the link types. Streams stay
        open for reading (they cannot be opened twice)."""
        if self.paths.count(STDIN) > 1:
            raise InputError("capture file standard input (-): given more than once; it can be read only once")
        linktypes = []
        for index, path in enumerate(self.paths):
            reader = open_capture(path)
            try:
                linktypes.append(reader.datalink())
                _decoder_for_file(path, reader, self.decoder_for)
            except BaseException:
                reader.close()
                raise
            if is_stream(path):
                self._streams[index] = reader
            else:
                reader.close()
        return linktypes

    def read(self) -> Iterator[Batch]:
        """Every batch of every file, in order."""
        for index, path in enumerate(self.paths):
            yield from self._file(index, path)

    def _file(self, index: int, path: str) -> Iterator[Batch]:
        # A file that opened at the check may be gone, or another file, when its turn comes: a problem of its
        # own (the replay goes on, and its open flows are evaluated at the end), not the end of the replay.
        try:
            reader = self._streams.pop(index, None) or open_capture(path)
        except InputError as exc:
            self.problems.append(ReadProblem(path, exc.message, 0, opened=False))
            return
        try:
            decoder = _decoder_for_file(path, reader, self.decoder_for)
        except InputError as exc:
            reader.close()
            self.problems.append(ReadProblem(path, exc.message, 0, opened=False))
            return
        self.files += 1
        read = kept = 0  # frames read from this file, and kept of them
        try:
            for buf, meta in (_frame_batches(reader) if is_stream(path) else batches(reader)):
                read += packet_count(meta)
                if meta:
                    self.latest = max(self.latest, last_capture_time(meta))
                batch = self._kept(decoder, buf, meta)
                if batch is not None:
                    kept += packet_count(batch.meta)
                    yield batch
        except _READ_ERRORS as exc:
            if not is_stream(path):
                # the batch that hit a truncated or corrupt record is lost whole: its good frames again, one
                # by one, then the rest of the file is skipped
                for buf, meta in _salvage(path, read):
                    batch = self._kept(decoder, buf, meta)
                    if batch is not None:
                        kept += 1
                        yield batch
            self.problems.append(ReadProblem(path, error_text(exc), kept))
        finally:
            reader.close()
            self.frames += kept

    def _kept(self, decoder: Any, buf: bytes, meta: bytes) -> Batch | None:
        if self.share is not None:
            meta = self.share(buf, meta)
        return Batch(decoder, buf, meta) if meta else None


def label(path: str) -> str:
    """How messages name an input."""
    return "standard input (-)" if path == STDIN else path


def is_stream(path: str) -> bool:
    """Whether an input can be read only once (standard input, a FIFO, a pipe, a character device)."""
    if path == STDIN:
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def open_capture(path: str) -> pcapy.Reader:
    """libpcap's reader of one input; InputError (one line naming it) if it is no capture one can read."""
    if path != STDIN:
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise InputError(f"capture file {path}: no such file") from None
        except OSError as exc:
            raise InputError(f"capture file {path}: {exc.strerror or exc}") from None
        if stat.S_ISDIR(mode):
            raise InputError(f"capture file {path}: is a directory")
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
            raise InputError(f"capture file {path}: not a file, FIFO or device one can read a capture from")
        if not os.access(path, os.R_OK):
            raise InputError(f"capture file {path}: permission denied")
        if stat.S_ISFIFO(mode):
            return _open_fifo(path)
    return _open_offline(path)


def _open_offline(path: str, source: str | None = None) -> pcapy.Reader:
    """libpcap's reader of `source` (None: `path`), its errors named as `path`'s."""
    try:
        return pcapy.open_offline(path if source is None else source)
    except _READ_ERRORS as exc:
        raise InputError(f"capture file {label(path)}: {error_text(exc)}") from None


def _open_fifo(path: str) -> pcapy.Reader:
    """libpcap's reader of a FIFO whose writer writes within FIFO_WRITER_TIMEOUT seconds (InputError if none does).
    libpcap would open the FIFO itself, and that open waits for a writer: forever if none comes, and also if the
    writer has come, written and gone by then. So the FIFO is opened here without waiting (O_NONBLOCK), and what
    its writer writes is pumped into a pipe whose read end libpcap opens (/proc/self/fd: a pipe's open never
    waits). The pump is a process of its own (_start_pump): libpcap reads with the interpreter lock held, so a
    thread of this process could not fill the pipe it waits on."""
    import select  # only for a FIFO

    try:
        fifo = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise InputError(f"capture file {path}: {exc.strerror or exc}") from None
    try:
        poller = select.poll()
        poller.register(fifo, select.POLLIN)
        deadline = time.monotonic() + FIFO_WRITER_TIMEOUT
        while not poller.poll(100):  # POLLIN: written; POLLHUP: a writer came and went
            if time.monotonic() >= deadline:
                raise InputError(f"capture file {path}: nothing written within {FIFO_WRITER_TIMEOUT:g} s "
                                 "(a FIFO no one writes to)")
        read_end = _start_pump(fifo)
    finally:
        os.close(fifo)
    try:
        return _open_offline(path, f"/proc/self/fd/{read_end}")
    finally:
        os.close(read_end)  # libpcap has its own


def _start_pump(fifo: int) -> int:
    """The read end of a pipe that a process of its own (forked twice: init reaps it) fills with what the FIFO's
    writer writes, and closes when the writer is done or the read end is closed (the replay is over)."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # only system calls from here: other threads' locks may be held in this copy
        code = 0
        try:
            os.close(read_end)
            if os.fork() == 0:
                _pump(fifo, write_end)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(write_end)
    os.waitpid(child, 0)
    return read_end


def _pump(fifo: int, out: int) -> None:
    """Copy `fifo` into `out` until the FIFO has no writer left (a read of nothing) or `out` no reader."""
    import select

    poller = select.poll()
    poller.register(fifo, select.POLLIN)
    poller.register(out, 0)  # POLLERR: the reader has closed its end
    while True:
        events = dict(poller.poll())
        if events.get(out):
            return
        try:
            chunk = os.read(fifo, 1 << 16)
        except BlockingIOError:
            continue
        if not chunk:
            return
        write_all(out, chunk)  # EPIPE (SIGPIPE is ignored) when the reader is gone


def error_text(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _decoder_for_file(path: str, reader: pcapy.Reader, decoder_for: DecoderFactory) -> Any:
    try:
        return decoder_for(reader.datalink())
    except InputError as exc:
        raise InputError(f"capture file {label(path)}: {exc.message}") from None


def batches(reader: pcapy.Reader) -> Iterator[RawBatch]:
    """Batches straight from libpcap (the bench's ceiling reads this way too); pcapy.PcapError on a
    broken record."""
    while True:
        buf, meta = reader.next_batch(BATCH_SIZE)
        if not meta:
            return
        yield buf, meta


def _salvage(path: str, skip: int) -> Iterator[RawBatch]:
    """The frames after the first `skip` up to the broken record, each as a one-frame batch, from the file
    opened again."""
    try:
        reader = pcapy.open_offline(path)
    except _READ_ERRORS:
        return
    try:
        yield from _frame_batches(reader, skip=skip, per_batch=1)
    except _READ_ERRORS:
        pass
    finally:
        reader.close()


def _frame_batches(reader: pcapy.Reader, *, skip: int = 0, per_batch: int = BATCH_SIZE) -> Iterator[RawBatch]:
    """The frames after the first `skip` read one by one (pcap_next), in batches of `per_batch` frames as
    next_batch builds them. The frames before a broken record come out before its error is raised."""
    index = 0
    frames: list[bytes] = []
    records: list[bytes] = []
    offset = 0
    while True:
        try:
            hdr, data = reader.next()
        except _READ_ERRORS:
            if records:
                yield b"".join(frames), b"".join(records)
            raise
        if hdr is None:
            break
        index += 1
        if index <= skip:
            continue
        sec, usec = hdr.getts()
        # the seconds as next_batch's unsigned 32-bit field holds them (pcapy gives them signed: negative after 2038)
        records.append(BATCH_META.pack(sec & 0xFFFFFFFF, usec & 0xFFFFFFFF, offset, len(data)))
        frames.append(data)
        offset += len(data)
        if len(records) >= per_batch:
            yield b"".join(frames), b"".join(records)
            frames, records, offset = [], [], 0
    if records:
        yield b"".join(frames), b"".join(records)


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
