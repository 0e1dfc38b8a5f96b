"""The evidence recorder's C step (output/_fastevidence.c held_frame) held equal to its Python reference
(evidencewriter.HeldPacket.of_batch): the same HeldPacket for any frame of any batch, also where the batch's
metadata points past its buffer, and the recorder holds every frame of a batch through it when it is built."""

from __future__ import annotations

import os
import random
import signal
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icmpsensor.decode.linktypes import LINKTYPE_ETHERNET
from icmpsensor.output import evidencewriter
from icmpsensor.output.evidencewriter import PACKET_OVERHEAD, HeldPacket
from icmpsensor.source.batch import BATCH_META, CapturedFrame
from tests.hypothesis_counts import examples

needs_c = pytest.mark.skipif(evidencewriter._fastevidence is None,
                             reason="the C accelerator is turned off or not built")

U32 = st.integers(0, 2**32 - 1)


def test_pip_install_builds_it() -> None:
    """`pip install` builds it and the recorder holds batch frames and the fragments a message came in
    (IcmpPacket.frames) through it; only ICMPSENSOR_PURE_PYTHON turns it off (the references then hold them)."""
    assert evidencewriter._fastevidence is not None or os.environ.get("ICMPSENSOR_PURE_PYTHON")
    if evidencewriter._fastevidence is not None:
        assert evidencewriter.held_frame is evidencewriter._fastevidence.held_frame
        assert evidencewriter.held_frames is evidencewriter._fastevidence.held_frames
    else:
        assert evidencewriter.held_frame == HeldPacket.of_batch
        assert evidencewriter.held_frames == HeldPacket.of


@needs_c
@settings(max_examples=examples(300), deadline=None)
@given(buf=st.binary(max_size=300), records=st.lists(st.tuples(U32, U32, U32, U32), min_size=1, max_size=6),
       pick=st.integers(0, 5), sender=st.binary(min_size=4, max_size=16), carried=st.binary(max_size=40),
       tail=st.binary(max_size=15))
def test_held_frame_is_the_reference(buf: bytes, records: list[tuple[int, int, int, int]], pick: int, sender: bytes,
                                     carried: bytes, tail: bytes) -> None:
    """Any metadata, offsets and lengths past the buffer's end included (the slice is clamped, as Python's),
    and metadata with a partial record at its end."""
    meta = b"".join(BATCH_META.pack(*record) for record in records) + tail
    index = pick % len(records)
    reference = HeldPacket.of_batch(LINKTYPE_ETHERNET, buf, meta, index, sender, carried)
    fast = evidencewriter.held_frame(LINKTYPE_ETHERNET, buf, meta, index, sender, carried)
    assert type(fast) is HeldPacket
    assert fast == reference
    assert fast.cost == PACKET_OVERHEAD + len(fast.records) + len(carried)


@needs_c
@given(frames=st.lists(st.binary(max_size=80), min_size=1, max_size=5), pick=st.integers(0, 4))
def test_held_frames_of_a_real_batch(frames: list[bytes], pick: int) -> None:
    """Frames laid out as libpcap's next_batch lays them: each at its offset, its own length."""
    buf = b"".join(frames)
    offsets = [sum(len(f) for f in frames[:i]) for i in range(len(frames))]
    meta = b"".join(BATCH_META.pack(1_800_000_000 + i, 999_999 - i, off, len(f))
                    for i, (off, f) in enumerate(zip(offsets, frames, strict=True)))
    index = pick % len(frames)
    fast = evidencewriter.held_frame(LINKTYPE_ETHERNET, buf, meta, index, b"\x01\x02\x03\x04", b"")
    assert fast == HeldPacket.of_batch(LINKTYPE_ETHERNET, buf, meta, index, b"\x01\x02\x03\x04", b"")
    assert fast.records[16:] == frames[index]


@needs_c
def test_a_frame_outside_the_batch_is_refused() -> None:
    """An index past the batch's records raises, as the reference does (it is a bug in the caller, never input)."""
    meta = BATCH_META.pack(1, 2, 0, 4)
    for index in (1, -1):
        with pytest.raises(IndexError):
            evidencewriter.held_frame(LINKTYPE_ETHERNET, b"abcd", meta, index, b"s", b"")
    with pytest.raises(struct.error):
        HeldPacket.of_batch(LINKTYPE_ETHERNET, b"abcd", meta, 1, b"s", b"")


FRAME = st.builds(CapturedFrame, U32, U32, st.binary(max_size=120))


@needs_c
@settings(max_examples=examples(300), deadline=None)
@given(frames=st.lists(FRAME, max_size=6), sender=st.binary(min_size=4, max_size=16), carried=st.binary(max_size=40))
def test_held_frames_is_the_reference(frames: list[CapturedFrame], sender: bytes, carried: bytes) -> None:
    """Any frames (the fragments of a datagram, in the order they came; none at all), any clock libpcap gives."""
    reference = HeldPacket.of(LINKTYPE_ETHERNET, tuple(frames), sender, carried)
    fast = evidencewriter.held_frames(LINKTYPE_ETHERNET, tuple(frames), sender, carried)
    assert type(fast) is HeldPacket
    assert fast == reference


@needs_c
@pytest.mark.parametrize("frame", [CapturedFrame(2**32, 0, b"x"), CapturedFrame(0, -1, b"x"),
                                   CapturedFrame(0, 0, "text"), (0, 0), "not a frame"])
def test_a_frame_the_reference_refuses_is_refused(frame: object) -> None:
    """What pcap_record cannot write (a clock past 32 bits, data that are not bytes, not a frame) raises in both,
    and nothing is held (such frames are a bug in the caller: libpcap's clock is 32-bit, frames are bytes)."""
    frames = (CapturedFrame(1, 2, b"ok"), frame)
    with pytest.raises((struct.error, TypeError, AttributeError)):
        HeldPacket.of(LINKTYPE_ETHERNET, frames, b"s", b"")  # type: ignore[arg-type]
    with pytest.raises((TypeError, OverflowError)):
        evidencewriter.held_frames(LINKTYPE_ETHERNET, frames, b"s", b"")  # type: ignore[arg-type]


held_packets = st.lists(st.builds(HeldPacket.of_records, st.sampled_from([1, 101, 113]), st.binary(max_size=40),
                                  st.sampled_from([b"\x01\x02\x03\x04", b"\x05\x06\x07\x08"]), st.binary(max_size=20)),
                        min_size=1, max_size=8)


@needs_c
@settings(max_examples=examples(300), deadline=None)
@given(packets=held_packets, pick=st.integers(0, 7), sender=st.sampled_from([b"\x01\x02\x03\x04", b"\x09" * 4]))
def test_run_parts_is_the_reference(packets: list[HeldPacket], pick: int, sender: bytes) -> None:
    """The writer's parts of a job's run of one link type (evidencewriter.run_parts_py): where the run ends, its
    records and their size, what the flow's source carried in it and its size."""
    held = tuple(packets)
    start = pick % len(held)
    assert evidencewriter._fastevidence.run_parts(held, start, sender) == \
        evidencewriter.run_parts_py(held, start, sender)


@needs_c
def test_run_parts_refuses_what_is_not_a_run() -> None:
    held = (HeldPacket.of_records(1, b"r", b"s", b"c"),)
    for args in (((), 0, b"s"), (held, 1, b"s"), (held, -1, b"s"), (held, 0, "s"), (("x",), 0, b"s")):
        with pytest.raises((IndexError, TypeError)):
            evidencewriter._fastevidence.run_parts(*args)


@needs_c
def test_the_writer_copies_no_record_while_it_holds_the_interpreter_lock(tmp_path: Path) -> None:
    """A run's records and carried bytes reach write_all as the held packets' own bytes (run_parts joins nothing),
    and write_all writes a file's parts with writev, the interpreter lock released once for the round: the
    writer's thread, which shares the lock with detection, copies no evidence byte while it holds it (a jumbo
    flood's evidence is its capture twice over: two copies of it under the lock slowed detection)."""
    held = tuple(HeldPacket.of_records(1, bytes([i % 256]) * (100 + i % 7), b"s" if i % 2 else b"t",
                                       bytes([i % 251]) * 50) for i in range(2000))
    end, records, size, carried, carried_size = evidencewriter._fastevidence.run_parts(held, 0, b"s")
    assert end == len(held) and size == sum(len(h.records) for h in held) and carried_size == 50 * 1000
    assert all(part is h.records for part, h in zip(records, held, strict=True))
    assert all(part is h.carried for part, h in zip(carried, held[1::2], strict=True))
    pcap, bin_ = (os.open(tmp_path / name, os.O_WRONLY | os.O_CREAT, 0o600) for name in ("p", "b"))
    assert evidencewriter._fastevidence.write_all([(pcap, records), (bin_, carried)]) == [size, carried_size]
    os.close(pcap)
    os.close(bin_)
    assert (tmp_path / "p").read_bytes() == b"".join(h.records for h in held)
    assert (tmp_path / "b").read_bytes() == b"".join(h.carried for h in held[1::2])


@needs_c
@settings(max_examples=examples(100), deadline=None)
@given(chunks=st.lists(st.lists(st.binary(max_size=70_000), max_size=4), max_size=5), bad=st.booleans())
def test_write_all_is_the_reference(tmp_path_factory: pytest.TempPathFactory, chunks: list[list[bytes]],
                                    bad: bool) -> None:
    """The writer's writes of a round with the interpreter lock released once (_fastevidence.write_all: each file's
    parts with writev) write and report what os.write of the parts joined, in a loop (evidencewriter.write_whole)
    does, a bad descriptor's -EBADF too; data bigger than a pipe's buffer goes to a file."""
    directory = tmp_path_factory.mktemp("writes")
    results = []
    for name, write in (("c", lambda writes: evidencewriter._fastevidence.write_all(writes)),
                        ("py", lambda writes: [evidencewriter.write_whole(fd, data) for fd, data in writes])):
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        closed = os.open(directory / f"{name}-closed", os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(closed)
        writes = [(closed if bad and i == 1 else fd, chunk) for i, chunk in enumerate(chunks)]
        results.append(write(writes))
        os.close(fd)
        results.append((directory / name).read_bytes())
    assert results[0] == results[2] and results[1] == results[3]
    assert results[1] == b"".join(b"".join(parts) for i, parts in enumerate(chunks) if not (bad and i == 1))


@needs_c
def test_write_all_goes_on_after_a_write_the_system_took_in_part() -> None:
    """A writev the system takes in part (a pipe's write interrupted by a signal, every millisecond, while its reader
    drains it at ~2 MB/s) is followed by the rest, from the place in the iovec where it stopped, and past IOV_MAX parts:
    the reader gets the parts joined, whole, in order."""
    rng = random.Random(5)
    parts = [rng.randbytes(1 + i % 701) for i in range(3000)]  # ~1 MB in 3,000 parts, each byte telling its place
    total = sum(map(len, parts))
    read_fd, write_fd = os.pipe()
    got = bytearray()
    ready = threading.Event()

    def drain() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # the signal goes to the writing thread
        ready.set()
        deadline = time.monotonic() + 30
        while len(got) < total and time.monotonic() < deadline:
            got.extend(os.read(read_fd, 4096))
            time.sleep(0.002)

    previous = signal.signal(signal.SIGALRM, lambda *_: None)
    thread = threading.Thread(target=drain)
    thread.start()
    try:
        assert ready.wait(10)
        signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
        written = evidencewriter._fastevidence.write_all([(write_fd, parts)])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        thread.join(35)
        os.close(read_fd)
        os.close(write_fd)
    assert written == [total] and bytes(got) == b"".join(parts)


NAMES = st.sampled_from(["a.bin", "a.pcap", "b.bin", "b.pcap", "link", "dir", "missing/c.pcap"])
NEW_FILES = st.lists(st.lists(st.tuples(NAMES, st.binary(max_size=40)), min_size=1, max_size=3).map(tuple),
                     max_size=5)


def _created_by(create: Callable[..., list[tuple[int, ...]]], close: Callable[[list[int]], None], directory: Path,
                flows: list[tuple[tuple[str, bytes], ...]]) -> object:
    """What `create` (create_all in C, or its Python reference) gives for `flows` in a fresh directory holding a
    planted link and a directory, and `close` then does: the results with each descriptor replaced by "fd" (each a
    distinct descriptor, written through once more, then closed), and the directory's files and contents."""
    directory.mkdir()
    os.symlink("/dev/null", directory / "link")
    (directory / "dir").mkdir()
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        made = create(dir_fd, evidencewriter.CREATE_FLAGS, 0o640, flows)
    finally:
        os.close(dir_fd)
    fds = [fd for results in made for fd in results if fd >= 0]
    assert len(set(fds)) == len(fds)
    for fd in fds:
        os.write(fd, b"+")
    close(fds)
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)
    results = [tuple("fd" if fd >= 0 else fd for fd in results) for results in made]
    files = {path.name: (path.stat().st_mode & 0o777, path.read_bytes()) for path in directory.iterdir()
             if path.is_file() and not path.is_symlink()}
    return results, files


@needs_c
@settings(max_examples=examples(200), deadline=None)
@given(flows=NEW_FILES)
def test_create_all_is_the_reference(tmp_path_factory: pytest.TempPathFactory,
                                     flows: list[tuple[tuple[str, bytes], ...]]) -> None:
    """The writer's new files with the interpreter lock released once (_fastevidence.create_all) are those of
    create_all_py (os.open and os.write, a file at a time): each flow's files created in order with their headers,
    a name already there (a file of this round, a planted link, a directory) or in a missing directory refused
    with its errno, which ends the flow's files, the descriptors distinct and open for appending, and close_all
    closes them as close_all_py does."""
    root = tmp_path_factory.mktemp("create")
    fast = evidencewriter._fastevidence
    c = _created_by(fast.create_all, fast.close_all, root / "c", flows)
    assert c == _created_by(evidencewriter.create_all_py, evidencewriter.close_all_py, root / "py", flows)
    results, files = c  # type: ignore[misc]
    expected = {}
    for made, files_of in zip(results, flows, strict=True):
        assert 1 <= len(made) <= len(files_of) and all(r == "fd" for r in made[:-1])
        assert len(made) == len(files_of) or made[-1] != "fd"
        expected.update({name: header + b"+" for (name, header), r in zip(files_of, made, strict=False) if r == "fd"})
    assert {name: content for name, (_, content) in files.items()} == expected


@needs_c
def test_create_all_refuses_what_is_not_a_new_file(tmp_path: Path) -> None:
    """A name with a NUL (os.open's ValueError), a file that is not a (name, header) pair, a header that is text:
    raised, as the reference raises, and nothing is created."""
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for flows in ([(("a\0b", b""),)], [(("a",),)], [(("a", "text"),)], [(("a", b""), ("b", "text"))]):
            for create in (evidencewriter._fastevidence.create_all, evidencewriter.create_all_py):
                with pytest.raises((ValueError, TypeError)):
                    create(dir_fd, evidencewriter.CREATE_FLAGS, 0o640, flows)
    finally:
        os.close(dir_fd)
    assert not any(tmp_path.iterdir())
