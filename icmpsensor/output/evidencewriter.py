"""The evidence writer: a thread of its own writes the evidence files, so that the detector's thread never
waits for a disk (the recorder, output/evidence.py, decides what to write and hands it over as jobs).

* **Queue.** Jobs go through a queue bounded in bytes (QUEUE_BYTES, frames and their overhead accounted)
  and in jobs (QUEUE_JOBS). When it is full a live sensor's recorder drops the job and counts it; a
  replay waits for room instead (its input waits too, and its evidence is then the same on every run).
  Closing a flow's files is never dropped (a job without frames; at most one per file started).
* **Files.** `<uid>.pcap` holds the flow's frames as they were captured, with the capture's link type
  in its header; frames of another link type (a replay of several captures) go to
  `<uid>-<linktype>.pcap`, one pcap per link type. A record carries the frame's timestamp as libpcap
  gave it and its captured length (as both lengths: libpcap's batches do not carry the wire length).
  `<uid>.bin` holds the echo-request payloads the flow's source sent, in order.
* **Writes.** A file's records are gathered and written together, whole records in one writev call, once
  they reach FILE_CHUNK, FLUSH_AFTER seconds after the first of them came, when PENDING_BYTES are gathered
  over all files (the oldest first), and when the file is closed. The files are unbuffered: a flow's
  packets are in its pcap within FLUSH_AFTER (a buffered file kept a small flow's records in memory until
  the flow ended, lost if the process was killed), a record is never split across writes, and a busy
  flow's records cost one system call per FILE_CHUNK (one per IOV_MAX records past that) instead of one per
  batch. The thread takes every queued job at once and makes the round's writes ready; they are then written
  in one call that releases the interpreter lock once for all of them (output/_fastevidence.c write_all;
  write_whole is its reference): a thread that released it for each write waited for the detector's thread to
  hand it back after each, and the detector waited for room in the queue (docs/performance.md, eighteenth
  session). The records are the held packets' own bytes, gathered as lists and written with writev: the thread
  copies no evidence byte while it holds the lock (its two joins of every record held detection up: a jumbo
  flood's evidence is its capture twice over; docs/performance.md, twenty-third session).
* **Directory.** One the recorder verified at start, or that this thread creates and verifies (a real
  directory, not a link, owned by this user and writable by nobody else; output/logfile.py
  verify_directory); every file is created new (O_EXCL, O_NOFOLLOW) relative to it. The files of a round's
  new flows are created before their jobs are done, CREATE_BATCH flows together, and finished flows' files
  closed together, each in one call that releases the interpreter lock once (create_all and close_all;
  create_all_py and close_all_py are the references): an open, header write and close a file each handed the
  lock back and forth with the detector's thread. A file made for a flow not started yet is neither trimmed
  nor counted by the disk budget; the files of flows a deadline then drops are closed and removed.
* **Disk budget.** `max_total_bytes`, counted in the blocks files take on disk: before a write that
  would pass it, the oldest evidence files not being written are deleted (only names as the sensor
  names them: EVIDENCE_NAME); what still does not fit is dropped and counted.
* **Deadline.** `close(deadline)` lets the thread write until the deadline (live: inside the stop's
  5 s); what it has not written by then is counted (`dropped_shutdown` packets,
  `dropped_shutdown_files` flows whose files were not created: their notices name them), and
  `close` returns.

Counters (`EvidenceStats`, in the stats record and the replay summary): this thread adds to `files`,
`packets`, `deleted`, `errors`, `dropped_budget` and `dropped_shutdown(_files)`; the recorder to the others.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import struct
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from icmpsensor.accelerators import evidence_extension as _fastevidence
from icmpsensor.config.schema import EvidenceConfig
from icmpsensor.errors import SensorError
from icmpsensor.output.logfile import LOG_MODE, verify_directory
from icmpsensor.source.batch import BATCH_META, CapturedFrame

QUEUE_BYTES = 16 * 1024 * 1024  # frames queued for the writer, with their overhead
QUEUE_JOBS = 65_536
JOB_OVERHEAD = 256  # bytes a queued job costs besides its packets
# bytes a held packet costs besides the data of its records and of what it carried: the HeldPacket, its records'
# object (~160 with them, measured with tracemalloc), the carried payload's object
PACKET_OVERHEAD = 224
IDLE_WAIT = 1.0  # seconds the thread sleeps without work before it looks again
FLUSH_AFTER = 0.5  # seconds a file's records may be gathered before they are written
FLUSH_SLACK = 0.2  # of FLUSH_AFTER: files due that much sooner are written with those due now
FILE_CHUNK = 256 * 1024  # a file's gathered records are written once they reach this many bytes
PENDING_BYTES = 4 * 1024 * 1024  # records gathered over all files; past it the oldest-gathered file's are written
JOIN_GRACE = 0.1  # seconds after the deadline close() still waits for the thread (a write in progress)
MAX_OPEN = 256  # flows whose files this thread holds open (the recorder closes them long before)
# new flows whose files are created in one call (create_all): at most twice as many descriptors held beside
# MAX_OPEN's before their jobs start them (a round may hold hundreds of new flows; a systemd unit's soft
# RLIMIT_NOFILE is 1,024)
CREATE_BATCH = 32
CLOSE_BATCH = 64  # files of finished flows left open until the round's writes, at most (then written and closed)
DISK_BLOCK = 4096  # what a file's size is rounded up to on disk (the common file system block)
SNAPLEN = 262_144  # the pcap header's snap length: libpcap's largest
# A flow uid (detect/flows.py new_uid), then the file kinds: the flow's pcap, the pcap of another link type,
# the carried bytes. The trim deletes nothing else.
EVIDENCE_NAME = re.compile(r"C[0-9A-Za-z]{17}(?:-[0-9]{1,5})?\.pcap|C[0-9A-Za-z]{17}\.bin")
_ORDER = "<" if sys.byteorder == "little" else ">"  # pcap files are written in this host's byte order
PCAP_HEADER = struct.Struct(_ORDER + "IHHiIII")  # magic, version 2.4, zone, sigfigs, snaplen, link type
PCAP_MAGIC = 0xA1B2C3D4  # microsecond timestamps
RECORD = struct.Struct(_ORDER + "IIII")  # seconds, microseconds, captured length, length


@dataclass
class EvidenceStats:
    files: int = 0  # flows whose evidence files were created
    packets: int = 0  # packets written to evidence pcaps
    deleted: int = 0  # files deleted to stay within max_total_bytes
    errors: int = 0  # write errors: files that could not be created, packets that could not be written
    buffers_evicted: int = 0  # suspicious pairs whose buffered packets were dropped (max_flows_buffered)
    dropped_rate: int = 0  # notices left without an evidence file: max_files_per_minute reached
    dropped_queue_files: int = 0  # notices left without an evidence file: the writer's queue was full
    dropped_queue_packets: int = 0  # packets not written: the writer's queue was full
    dropped_budget: int = 0  # packets not written: max_total_bytes reached, nothing left to delete
    dropped_shutdown: int = 0  # packets not written by the stop's deadline
    dropped_shutdown_files: int = 0  # flows whose files were not created by it (their notices name them)
    truncated: int = 0  # packets not written: their file had reached packets_after or max_file_bytes
    cut: int = 0  # files closed before their flow's end, MAX_OPEN_FILES flows recorded at once: later packets not
    # recorded (the least recently recorded flow's: a flow that stopped sending, most often)


def pcap_record(sec: int, usec: int, frame: bytes) -> bytes:
    """A frame as a pcap record: both lengths the frame's own (a record never promises more than it holds)."""
    size = len(frame)
    return RECORD.pack(sec, usec, size, size) + frame


class HeldPacket(NamedTuple):
    """One packet for an evidence file: its frames as the records of a pcap, and what it carried (a named tuple,
    as CapturedFrame is: one per packet with novel bytes). The records are made once, when the packet is held: the
    writer's thread, which shares the interpreter with detection, then only hands them to writev."""

    linktype: int  # of its frames, as a pcap header gives it (decode/linktypes.py file_linktype)
    records: bytes  # its frames as pcap records (RECORD, then the frame): one, or the fragments it came in
    sender: bytes  # packed source address
    carried: bytes  # an echo request's payload (for the .bin); b"" for other messages
    cost: int  # the memory it holds (its records, what it carried, their objects), as the writer's queue and the
    # recorder's buffers account it

    @classmethod
    def of(cls, linktype: int, frames: tuple[CapturedFrame, ...], sender: bytes, carried: bytes) -> HeldPacket:
        """A packet held as frames (the fragments a reassembled message came in, a re-encoded one)."""
        records = b"".join([pcap_record(f.sec, f.usec, f.data) for f in frames])
        return cls.of_records(linktype, records, sender, carried)

    @classmethod
    def of_batch(cls, linktype: int, buf: bytes, meta: bytes, index: int, sender: bytes,
                 carried: bytes) -> HeldPacket:
        """A packet held as frame `index` of a libpcap batch (source/batch.py), copied out of its buffer."""
        sec, usec, off, cap = BATCH_META.unpack_from(meta, index * BATCH_META.size)
        return cls.of_records(linktype, pcap_record(sec, usec, buf[off : off + cap]), sender, carried)

    @classmethod
    def of_records(cls, linktype: int, records: bytes, sender: bytes, carried: bytes) -> HeldPacket:
        return cls(linktype, records, sender, carried, PACKET_OVERHEAD + len(records) + len(carried))


# HeldPacket.of_batch for every packet of a recorded flow, and HeldPacket.of for one that came in fragments, in C
# when it is built (output/_fastevidence.c: one allocation, one copy a frame; of_batch and of are their
# references, an equivalence test holds them equal)
if _fastevidence is None:
    held_frame, held_frames = HeldPacket.of_batch, HeldPacket.of
else:
    _fastevidence.bind(HeldPacket, PACKET_OVERHEAD, CapturedFrame)
    held_frame, held_frames = _fastevidence.held_frame, _fastevidence.held_frames


def run_parts_py(packets: tuple[HeldPacket, ...], start: int,
                 sender: bytes) -> tuple[int, list[bytes], int, list[bytes], int]:
    """The run of packets of packets[start]'s link type from `start` on: where it ends, its records and their size,
    and what the packets `sender` sent carried and its size, as the packets hold them (nothing joined: write_all
    writes them with writev; the Python reference of _fastevidence.run_parts)."""
    linktype = packets[start].linktype
    end = start + 1
    while end < len(packets) and packets[end].linktype == linktype:
        end += 1
    run = packets[start:end]
    records = [held.records for held in run]
    carried = [held.carried for held in run if held.sender == sender]
    return end, records, sum(map(len, records)), carried, sum(map(len, carried))


run_parts = run_parts_py if _fastevidence is None else _fastevidence.run_parts


@dataclass(slots=True)
class WriteJob:
    """Work for the writer: create a flow's files (`src` set), append packets, close them (`finish`)."""

    uid: str
    packets: tuple[HeldPacket, ...] = ()
    src: bytes = b""  # set: create the files first; the flow's source, whose echo-request payloads go to .bin
    linktype: int = 0  # with src: the link type of <uid>.pcap when no packet says it
    finish: bool = False  # close the files after
    cost: int = field(init=False, default=0)  # the memory it holds while queued, as the queue's bound accounts it

    def __post_init__(self) -> None:
        self.cost = JOB_OVERHEAD + sum([held.cost for held in self.packets])


def write_whole(fd: int, parts: list[bytes]) -> int:
    """`parts`, joined, written to `fd` (more than one write call only if the system writes less): the bytes written,
    or -errno of the error that stopped it (_fastevidence.write_all's reference)."""
    view = memoryview(b"".join(parts))
    written = 0
    while written < len(view):
        try:
            size = os.write(fd, view[written:])
        except InterruptedError:
            continue
        except OSError as error:
            return -(error.errno or 1)
        if size <= 0:
            break
        written += size
    return written


def _on_disk(size: int) -> int:
    """The disk space a file of `size` bytes takes: whole blocks, at least one."""
    return max(1, -(-size // DISK_BLOCK)) * DISK_BLOCK


# A new file in the verified directory, never through a link; unbuffered (a descriptor): a write is a write call.
CREATE_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
NewFiles = list[tuple[tuple[str, bytes], ...]]  # for each flow, its files in order: (name, header)


def create_all_py(dir_fd: int, flags: int, mode: int, flows: NewFiles) -> list[tuple[int, ...]]:
    """The files of each flow created in order in `dir_fd`, each with its header written whole: for each flow, each
    file's descriptor, or -errno of what failed, which ends its tuple (_fastevidence.create_all's reference). Every
    file is checked before any is created: a name that is not text or holds a NUL, a header that is not bytes-like
    raise."""
    for files in flows:
        for name, header in files:
            if not isinstance(name, str) or "\0" in name:
                raise (ValueError if isinstance(name, str) else TypeError)(f"create_all: a bad file name: {name!r}")
            memoryview(header)
    out = []
    for files in flows:
        results: list[int] = []
        for name, header in files:
            try:
                fd = os.open(name, flags, mode, dir_fd=dir_fd)
            except OSError as error:
                results.append(-(error.errno or 1))
                break
            written = write_whole(fd, [header]) if header else 0
            if written != len(header):
                os.close(fd)
                results.append(written if written < 0 else -errno.EIO)
                break
            results.append(fd)
        out.append(tuple(results))
    return out


def close_all_py(fds: list[int]) -> None:
    """Each descriptor closed, errors ignored (_fastevidence.close_all's reference)."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def create_all(dir_fd: int, flows: NewFiles) -> list[tuple[int, ...]]:
    """create_all_py's files, with the interpreter lock released once for all of them when the C accelerator is
    built (a call each would wait for the detector's thread to hand the lock back after each: the writer's open,
    write and close calls did, ~80 µs of the detector's time a file in a storm of written notices)."""
    if _fastevidence is None:
        return create_all_py(dir_fd, CREATE_FLAGS, LOG_MODE, flows)
    return _fastevidence.create_all(dir_fd, CREATE_FLAGS, LOG_MODE, flows)  # type: ignore[no-any-return]


def close_all(fds: list[int]) -> None:
    """close_all_py's closes, the lock released once for all of them when the C accelerator is built."""
    if _fastevidence is None:
        close_all_py(fds)
    else:
        _fastevidence.close_all(fds)


class _Done:
    """What _take gives when the thread is to end."""


_DONE = _Done()


@dataclass(eq=False)  # a key of the writer's dirty files, by identity
class _File:
    name: str
    fd: int  # unbuffered: a write is a write call
    size: int = 0  # bytes written and gathered
    gathered: list[bytes] = field(default_factory=list)  # records (or carried bytes) not written yet
    gathered_bytes: int = 0
    gathered_packets: int = 0  # packets whose records are gathered (a pcap's; 0 for the .bin)


@dataclass
class _Flow:
    """The files of one flow while it is written."""

    uid: str
    src: bytes
    first_linktype: int
    carried: _File
    pcaps: dict[int, _File] = field(default_factory=dict)  # link type -> its pcap


class EvidenceWriter:
    """The thread and its queue (see the module docstring). `submit` and `close` are called from the
    detector's thread; everything else runs on the writer's."""

    def __init__(self, directory: str, cfg: EvidenceConfig, stats: EvidenceStats, *, wait_when_full: bool = True,
                 queue_bytes: int | None = None) -> None:
        self.directory = directory
        self.cfg = cfg
        self.stats = stats
        self.wait_when_full = wait_when_full
        self.queue_bytes = QUEUE_BYTES if queue_bytes is None else queue_bytes
        self._jobs: deque[WriteJob] = deque()
        self._queued = 0  # bytes accounted for the jobs queued
        self._cond = threading.Condition()
        self._closing = False
        self._deadline: float | None = None
        self._refresh = False
        self._thread: threading.Thread | None = None
        self._flows: OrderedDict[str, _Flow] = OrderedDict()
        self._dirty: dict[_File, float] = {}  # files with gathered records -> when the first came, oldest first
        self._gathered = 0  # bytes gathered over all files
        # writes made ready this round: file, its parts, their size, its packets
        self._ready: list[tuple[_File, list[bytes], int, int]] = []
        self._to_close: list[int] = []  # files of flows finished this round, closed after its writes
        # files _create_files made for flows not started yet (uid -> its files' names and descriptors): neither
        # trimmed nor counted on disk until they are; those of flows a round did not start (the deadline) closed
        # and removed at its end
        self._unstarted: dict[str, list[tuple[str, int]]] = {}
        self._trim_hopeless = False  # the last trim could not get within budget: no rescan until a file closes
        # A directory that is already there is verified now, on the caller's thread (OutputError, exit 73, if
        # it is a link or someone else's); one that is not is created with the first file.
        self._dir_fd = verify_directory(directory) if os.path.lexists(directory) else -1
        self._disk = self._disk_usage()

    # -- the detector's side -------------------------------------------------------------------------

    def submit(self, job: WriteJob, *, force: bool = False) -> bool:
        """Queue a job; False when the queue is full (live) or the writer is closing: the caller counts it.
        `force`: queue it however full (closing a flow's files). A replay waits for room."""
        return not self._queue([job], force)

    def submit_all(self, jobs: list[WriteJob]) -> list[WriteJob]:
        """Queue jobs as submit() does, under one lock and with one wake-up of the thread; the jobs refused
        (the queue full, live, or the writer closing), which the caller counts."""
        return self._queue(jobs, False)

    def _queue(self, jobs: list[WriteJob], force: bool) -> list[WriteJob]:
        refused: list[WriteJob] = []
        if self._thread is None and jobs and not self._closing:  # with the first job (after any fork)
            self._thread = threading.Thread(target=self._run, name="icmpsensor-evidence", daemon=True)
            self._thread.start()
        with self._cond:
            # The thread sleeps whenever it finds the queue empty (also while this call waits for room, after
            # taking every job): whoever queues into an empty queue wakes it, before waiting or returning.
            unwoken = False
            for job in jobs:
                cost = job.cost
                if self._closing:
                    refused.append(job)
                    continue
                while not force and self._jobs and (self._queued + cost > self.queue_bytes
                                                     or len(self._jobs) >= QUEUE_JOBS):
                    if not self.wait_when_full:
                        break
                    if unwoken:  # the thread must run to make room
                        self._cond.notify_all()
                        unwoken = False
                    self._cond.wait(IDLE_WAIT)
                else:
                    unwoken = unwoken or not self._jobs
                    self._jobs.append(job)
                    self._queued += cost
                    continue
                refused.append(job)
            if unwoken:
                self._cond.notify_all()
        return refused

    def refresh_disk_usage(self) -> None:
        """Measure the directory again before the next write (with workers, the others write into it too)."""
        self._refresh = True

    def close(self, deadline: float | None = None) -> None:
        """Write what is queued, until `deadline` (time.monotonic(); None: all of it), then close every file.
        What is not written by then is counted in dropped_shutdown."""
        with self._cond:
            self._closing = True
            self._deadline = deadline
            self._cond.notify_all()
        thread = self._thread
        if thread is not None:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()) + JOIN_GRACE)
        self._drop_queued()
        if (thread is None or not thread.is_alive()) and self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1

    @property
    def queued(self) -> int:
        """Jobs waiting for the writer."""
        return len(self._jobs)

    # -- the writer's thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while (jobs := self._take()) is not _DONE:
            if self._refresh:
                self._refresh = False
                self._guarded(self._measure_disk)
            late = self._do_until_deadline(jobs)
            self._guarded(self._write_due, time.monotonic())
            self._guarded(self._write_ready)
            if late:
                break
        self._drop_queued()
        for uid in list(self._flows):
            self._finish(uid)
        self._write_ready()

    def _measure_disk(self) -> None:
        self._write_gathered()  # so that the directory shows what was gathered
        self._disk = self._disk_usage()
        self._trim_hopeless = False

    def _do_until_deadline(self, jobs: list[WriteJob]) -> bool:
        """Do a round's jobs until the stop's deadline; whether it passed (the jobs left are counted). The round's
        new flows have their files created before their jobs, CREATE_BATCH flows together (none once a deadline is
        set: a job it drops must not leave files behind)."""
        created: list[tuple[int, ...] | None] = [None] * len(jobs)
        made_until = 0  # the jobs before it had their new flows' files made together (or none to make)
        try:
            for index, job in enumerate(jobs):
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    self._count_dropped(jobs[index:])
                    return True
                if index >= made_until and self._deadline is None:
                    made_until = self._create_next(jobs, index, created)
                self._guarded(self._do, job, created[index])
            return False
        finally:
            self._guarded(self._remove_unstarted)

    def _create_next(self, jobs: list[WriteJob], start: int, created: list[tuple[int, ...] | None]) -> int:
        """The files of the next CREATE_BATCH new flows (jobs with a source) from jobs[start] on, created in one
        call (create_all), their results into `created` by job; where the jobs they cover end. Left None where the
        directory cannot be made yet or the call failed (_start makes them, and counts the error)."""
        starts, end = _next_new_flows(jobs, start)
        if starts and self._directory_ready():
            self._guarded(self._create_files, jobs, starts, created)
        return end

    def _create_files(self, jobs: list[WriteJob], starts: list[int], created: list[tuple[int, ...] | None]) -> None:
        new_files = [_new_files(jobs[i]) for i in starts]
        for index, files, results in zip(starts, new_files, create_all(self._dir_fd, new_files), strict=True):
            created[index] = results
            made = [(name, fd) for (name, _), fd in zip(files, results, strict=False) if fd >= 0]
            if made:
                self._unstarted.setdefault(jobs[index].uid, []).extend(made)

    def _remove_unstarted(self) -> None:
        """The files _create_files made for flows the round then did not start (the deadline dropped their jobs),
        closed and removed: as if never created (those flows are counted in dropped_shutdown_files)."""
        unstarted = [file for files in self._unstarted.values() for file in files]
        self._unstarted = {}
        if unstarted:
            close_all([fd for _, fd in unstarted])
        for name, _ in unstarted:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=self._dir_fd)

    def _directory_ready(self) -> bool:
        """The evidence directory open (created and verified the first time); False if it cannot be."""
        if self._dir_fd < 0:
            try:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(self.directory, 0o750)
                self._dir_fd = verify_directory(self.directory)
            except (OSError, SensorError):
                return False
        return True

    def _guarded(self, step: Callable[..., None], *args: object) -> None:
        """The writer must outlive a bug as the detector does: counted."""
        try:
            step(*args)
        except Exception:
            self.stats.errors += 1

    def _take(self) -> list[WriteJob] | _Done:
        """Every queued job, at once; none when gathered records are due to be written meanwhile; _DONE when closing
        and done (the queue empty, or the deadline passed)."""
        with self._cond:
            while not self._jobs:
                if self._closing:
                    return _DONE
                wait = IDLE_WAIT
                if self._dirty:
                    wait = next(iter(self._dirty.values())) + FLUSH_AFTER - time.monotonic()
                    if wait <= 0:
                        return []
                self._cond.wait(min(wait, IDLE_WAIT))
            if self._deadline is not None and time.monotonic() >= self._deadline:
                return _DONE
            jobs = list(self._jobs)
            self._jobs.clear()
            self._queued = 0
            self._cond.notify_all()  # room for a replay waiting in submit
            return jobs

    def _drop_queued(self) -> None:
        """Count (and forget) every job still queued: the deadline passed, or the thread is gone."""
        with self._cond:
            self._count_dropped(self._jobs)
            self._jobs.clear()
            self._queued = 0

    def _count_dropped(self, jobs: Iterable[WriteJob]) -> None:
        """Count jobs not done by the deadline (or left when the thread is gone)."""
        for job in jobs:
            self.stats.dropped_shutdown += len(job.packets)
            self.stats.dropped_shutdown_files += bool(job.src)

    def _do(self, job: WriteJob, created: tuple[int, ...] | None = None) -> None:
        """`created`: the new flow's files, when _create_files made them."""
        flow = self._flows.get(job.uid)
        if job.src:
            flow = self._start(job, created)
        if flow is not None:
            packets = job.packets
            start = 0
            while start < len(packets):  # runs of one link type (nearly always the whole job): one write each
                end, records, size, carried, carried_size = run_parts(packets, start, flow.src)
                self._write(flow, packets[start:end], records, size, carried, carried_size)
                start = end
        elif job.packets:  # its files could not be created, or were closed (MAX_OPEN)
            self.stats.errors += len(job.packets)
        if job.finish:
            self._finish(job.uid)

    def _start(self, job: WriteJob, created: tuple[int, ...] | None = None) -> _Flow | None:
        """A new flow's files: `created` (_create_files's), else created now; its .bin first, then its pcap."""
        if created is None:
            if not self._directory_ready():
                self.stats.errors += 1
                return None
            created = create_all(self._dir_fd, [_new_files(job)])[0]
        else:
            self._unstarted.pop(job.uid, None)
        if created[0] < 0:
            self.stats.errors += 1
            return None
        linktype = _first_linktype(job)
        flow = self._flows[job.uid] = _Flow(job.uid, job.src, linktype, _File(job.uid + ".bin", created[0]))
        self._disk += DISK_BLOCK  # a new file takes a block on disk, however small
        if self._pcap(flow, linktype, created[1]) is None:
            self._finish(job.uid)
            return None
        self.stats.files += 1
        if len(self._flows) > MAX_OPEN:
            self._finish(next(iter(self._flows)))
        return flow

    def _pcap(self, flow: _Flow, linktype: int, created: int | None = None) -> _File | None:
        """The flow's pcap for frames of `linktype`, created with its header the first time (`created`: its
        descriptor or -errno, when _start's files came with it)."""
        pcap = flow.pcaps.get(linktype)
        if pcap is not None:
            return pcap
        name, header = _pcap_file(flow.uid, linktype, flow.first_linktype)
        fd = create_all(self._dir_fd, [((name, header),)])[0][0] if created is None else created
        if fd < 0:
            self.stats.errors += 1
            return None
        pcap = flow.pcaps[linktype] = _File(name, fd, len(header))
        self._disk += DISK_BLOCK
        return pcap

    def _write(self, flow: _Flow, run: tuple[HeldPacket, ...], records: list[bytes], size: int,
               carried: list[bytes], carried_size: int) -> None:
        """Packets of one link type, their records and what the flow's source carried in them (run_parts), with their
        sizes, gathered for their files; when several do not fit the budget together, one by one (so that the
        budget, trimming the oldest files first, drops exactly what does not fit)."""
        pcap = self._pcap(flow, run[0].linktype)
        if pcap is None:
            return
        grows = _grows(pcap, size) + (_grows(flow.carried, carried_size) if carried_size else 0)
        if len(run) > 1 and self._disk + grows > self.cfg.max_total_bytes:
            for held in run:
                mine = held.sender == flow.src and held.carried
                self._write(flow, (held,), [held.records], len(held.records), [held.carried] if mine else [],
                            len(held.carried) if mine else 0)
            return
        if not self._room(grows):
            self.stats.dropped_budget += 1
            return
        self._disk += grows
        self._gather(pcap, records, size, len(run))
        if carried_size:
            self._gather(flow.carried, carried, carried_size, 0)

    def _gather(self, file: _File, parts: list[bytes], size: int, packets: int) -> None:
        """Add records (`size` bytes in all) to what `file` will get in its next write (see Writes in the module
        docstring)."""
        if not file.gathered:
            self._dirty[file] = time.monotonic()
        file.gathered += parts
        file.size += size
        file.gathered_bytes += size
        file.gathered_packets += packets
        self._gathered += size
        if file.gathered_bytes >= FILE_CHUNK:
            self._write_out(file)
        while self._gathered > PENDING_BYTES and self._dirty:
            self._write_out(next(iter(self._dirty)))

    def _write_due(self, now: float = math.inf) -> None:
        """Write the files whose first gathered record came FLUSH_AFTER before `now` or earlier (all of them by
        default), and with them those due within the next FLUSH_SLACK of it: files gathered microseconds apart are
        written in one round, not a round each."""
        dirty = self._dirty
        age = FLUSH_AFTER * (1 - FLUSH_SLACK)
        while dirty:
            file, since = next(iter(dirty.items()))
            if now - since < age:
                return
            self._write_out(file)

    def _write_out(self, file: _File) -> None:
        """What `file` gathered, made ready for the round's writes (_write_ready)."""
        self._dirty.pop(file, None)
        self._ready.append((file, file.gathered, file.gathered_bytes, file.gathered_packets))
        self._gathered -= file.gathered_bytes
        file.gathered = []
        file.gathered_bytes = file.gathered_packets = 0

    def _write_gathered(self) -> None:
        """Everything gathered, written now."""
        self._write_due()
        self._write_ready()

    def _write_ready(self) -> None:
        """The writes made ready since the last call, a writev call each (more only if the system writes less), the
        interpreter lock released once for all of them when the C accelerator is built (a write call each would
        wait for the detector's thread to hand the lock back, once a write); counted when written."""
        ready, self._ready = self._ready, []
        if ready:
            self._write_round(ready)
        to_close, self._to_close = self._to_close, []
        if to_close:
            close_all(to_close)

    def _write_round(self, ready: list[tuple[_File, list[bytes], int, int]]) -> None:
        """The writes of _write_ready, counted: the packets of each written whole, an error for each not."""
        try:
            writes = [(file.fd, parts) for file, parts, _, _ in ready]
            if _fastevidence is not None:
                written = _fastevidence.write_all(writes)
            else:
                written = [write_whole(fd, parts) for fd, parts in writes]
        except (OSError, ValueError):  # a file closed meanwhile: a bug, counted as what was not written
            written = [-1] * len(ready)
        for (_, _, expected, packets), size in zip(ready, written, strict=True):
            if size == expected:
                self.stats.packets += packets
            else:
                self.stats.errors += max(packets, 1)

    def _finish(self, uid: str) -> None:
        flow = self._flows.pop(uid, None)
        if flow is None:
            return
        for file in (*flow.pcaps.values(), flow.carried):
            if file.gathered:
                self._write_out(file)
            self._to_close.append(file.fd)  # after the round's writes (_write_ready)
        self._trim_hopeless = False
        if len(self._to_close) >= CLOSE_BATCH:
            self._write_ready()

    # -- disk budget -------------------------------------------------------------------------------

    def _room(self, grows: int) -> bool:
        """Whether `grows` more bytes on disk fit the budget, after deleting the oldest files if need be."""
        budget = self.cfg.max_total_bytes
        if self._disk + grows <= budget:
            return True
        if not self._trim_hopeless:
            self._trim()
            self._trim_hopeless = self._disk + grows > budget
        return self._disk + grows <= budget

    def _sizes(self) -> list[tuple[float, int, str]]:
        """(mtime, bytes on disk, name) of every evidence file, oldest first; files that vanish meanwhile
        (another worker trimmed them) are left out. Disk blocks, not file sizes: a storm of small files
        takes a block each."""
        if self._dir_fd < 0:
            return []
        unstarted = {name for files in self._unstarted.values() for name, _ in files}
        found = []
        with contextlib.suppress(OSError), os.scandir(self._dir_fd) as entries:
            for entry in entries:
                if not EVIDENCE_NAME.fullmatch(entry.name) or entry.name in unstarted:
                    continue
                with contextlib.suppress(OSError):
                    st = entry.stat(follow_symlinks=False)
                    found.append((st.st_mtime, st.st_blocks * 512, entry.name))
        return sorted(found)

    def _disk_usage(self) -> int:
        return sum(size for _, size, _ in self._sizes())

    def _trim(self) -> None:
        """Delete the oldest evidence files (not those still being written) until within 90 % of the budget."""
        busy = {file.name for flow in self._flows.values() for file in (*flow.pcaps.values(), flow.carried)}
        self._write_gathered()  # so that the sizes on disk are the real ones
        entries = self._sizes()
        self._disk = sum(size for _, size, _ in entries)
        target = self.cfg.max_total_bytes * 0.9  # some room, so that not every write rescans the directory
        for _, size, name in entries:
            if self._disk <= target:
                break
            if name in busy:
                continue
            try:
                os.unlink(name, dir_fd=self._dir_fd)
            except FileNotFoundError:
                self._disk -= size  # another worker deleted it
            except OSError:
                pass
            else:
                self._disk -= size
                self.stats.deleted += 1


def _first_linktype(job: WriteJob) -> int:
    """The link type a new flow's pcap is named for: its first packet's."""
    return job.packets[0].linktype if job.packets else job.linktype


def _pcap_file(uid: str, linktype: int, first_linktype: int) -> tuple[str, bytes]:
    """A flow's pcap for frames of `linktype`: its name and header."""
    name = uid + (".pcap" if linktype == first_linktype else f"-{linktype}.pcap")
    return name, PCAP_HEADER.pack(PCAP_MAGIC, 2, 4, 0, 0, SNAPLEN, linktype)


def _next_new_flows(jobs: list[WriteJob], start: int) -> tuple[list[int], int]:
    """The indexes of the next CREATE_BATCH jobs with a source (new flows) from jobs[start] on, and where the jobs
    they cover end."""
    starts: list[int] = []
    for index in range(start, len(jobs)):
        if jobs[index].src:
            starts.append(index)
            if len(starts) == CREATE_BATCH:
                return starts, index + 1
    return starts, len(jobs)


def _new_files(job: WriteJob) -> tuple[tuple[str, bytes], ...]:
    """A new flow's files, in the order they are created: its .bin (what its source carried), then its pcap."""
    linktype = _first_linktype(job)
    return (job.uid + ".bin", b""), _pcap_file(job.uid, linktype, linktype)


def _grows(file: _File, more: int) -> int:
    """The disk space `more` bytes appended to `file` add."""
    return _on_disk(file.size + more) - _on_disk(file.size)
