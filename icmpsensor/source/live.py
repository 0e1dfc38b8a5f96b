"""Live capture with libpcap (pcapy-ng): the packet source of a live sensor.

`LiveCapture` opens the interface and runs the capture thread; `LiveSource` is what a worker reads:
the thread's batches through the SPSC queue (source/spscqueue.py), and its stop and drain.

pcapy-ng 2.1 on Linux blocks forever in `next()`/`next_batch()` on an idle interface,
even with a read timeout, and crashes if `close()` is called from another thread
while a read is blocked. So the handle is non-blocking, the thread sleeps in
`select()` on the capture descriptor plus a wake-up pipe, and only the capture thread
itself closes the handle once it has stopped.

With `capture.workers` > 1 each worker process opens its own handle and joins it to one
kernel PACKET_FANOUT_HASH group (`join_fanout`). Such a handle opens *held* (a filter
that passes nothing) until every worker has joined, and on stop it stays open, read no
more, until every worker has drained (`hold_on_stop`): a socket joining or leaving the
group changes which socket each host pair hashes to, and neither may split a pair.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pcapy

from icmpsensor.config.schema import CaptureConfig
from icmpsensor.errors import CaptureError, CapturePermissionError, InputError
from icmpsensor.source.batch import Batch, RawBatch, first_capture_time, packet_count
from icmpsensor.source.spscqueue import SpscQueue

# libpcap status codes (pcap/pcap.h) returned by pcap_activate and friends.
_STATUS_TEXT = {
    -1: "generic error",
    -3: "capture handle not activated",
    -4: "capture handle already activated",
    -5: "no such device",
    -6: "monitor mode not supported",
    -7: "not in monitor mode",
    -8: "permission denied (capturing needs root or CAP_NET_RAW)",
    -9: "interface is not up",
    -10: "timestamp type not supported",
    -11: "permission denied for promiscuous mode",
    -12: "timestamp precision not supported",
}
_PERMISSION_STATUSES = (-8, -11)
READ_TIMEOUT_MS = 100  # libpcap/kernel ring block timeout: the longest a packet waits to be handed over
IDLE_POLL = 0.2  # seconds the capture thread sleeps at most on a quiet wire: how stale its read_until gets
STOP_DRAIN_SECONDS = 2 * READ_TIMEOUT_MS / 1000
DOWN_POLL = 0.5  # seconds between looks at an interface that went down
# What a queued batch costs beside its frames and records: its tuple and its two bytes objects' headers
# (sys.getsizeof: 56 + 2 * 33 bytes on 64-bit CPython 3.11), counted against capture.queue_bytes.
BATCH_OVERHEAD = 128
_WARNING_TEXT = {1: "warning", 2: "promiscuous mode not supported", 3: "timestamp type not supported"}

# PACKET_FANOUT (linux/if_packet.h). With FLAG_UNIQUEID and id 0 the kernel creates the group
# under an id no other group in the network namespace uses; the others join by that id.
_SOL_PACKET = 263
_PACKET_FANOUT = 18
PACKET_FANOUT_FLAG_UNIQUEID = 0x2000
DROP_ALL_FILTER = "less 1"  # no frame is that short: a held handle passes nothing
_SO_ATTACH_FILTER = 26  # asm-generic/socket.h
_TAKE_NOTHING = struct.pack("=HBBI", 0x06, 0, 0, 0)  # classic BPF `ret #0` (BPF_RET | BPF_K): no byte of any frame


_SIOCGIFFLAGS, _SIOCGIFINDEX = 0x8913, 0x8933  # linux/sockios.h
_IFF_UP, _IFF_RUNNING = 0x1, 0x40


def interface_up(fd: int, name: str) -> bool:
    """Whether the interface is up and running (SIOCGIFFLAGS on the capture's own socket: the unit allows no
    AF_INET socket)."""
    flags = _interface_field(fd, _SIOCGIFFLAGS, name, "H")
    return flags is not None and flags & (_IFF_UP | _IFF_RUNNING) == _IFF_UP | _IFF_RUNNING


def interface_index(fd: int, name: str) -> int:
    """The index of the interface called `name` now (SIOCGIFINDEX, likewise); 0 when there is none (or for a
    pseudo-device such as `any`). A deleted interface made again under its name has a new index."""
    return _interface_field(fd, _SIOCGIFINDEX, name, "i") or 0


def refuse_new_frames(fd: int) -> None:
    """Make the capture socket take no more frames, so that the kernel counts no more as received (ps_recv counts
    a frame once it has passed the socket's filter): the filter is attached to the socket itself, not through
    libpcap, which would also apply it in user space to the frames already in the ring and drop them uncounted.
    The socket stays bound and in its fanout group (no host pair moves to another worker)."""
    program = ctypes.create_string_buffer(_TAKE_NOTHING, len(_TAKE_NOTHING))
    sock = socket.socket(fileno=fd)
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, struct.pack("HP", 1, ctypes.addressof(program)))
    finally:
        sock.detach()


def _interface_field(fd: int, request: int, name: str, fmt: str) -> int | None:
    """The field an interface ioctl `request` answers in its struct ifreq (after the 16-byte name); None if the
    ioctl fails (no such interface)."""
    try:
        return int(struct.unpack_from(fmt, fcntl.ioctl(fd, request, struct.pack("16s16x", name.encode())), 16)[0])
    except OSError:
        return None


@dataclass
class CaptureStats:
    received: int = 0  # ps_recv: packets that passed the filter (kernel count)
    kernel_dropped: int = 0  # ps_drop: dropped for lack of buffer space
    interface_dropped: int = 0  # ps_ifdrop: dropped by the interface or driver
    read: int = 0  # packets handed to the queue or dropped by it
    queue_dropped: int = 0  # packets in batches the full queue refused


class LiveCapture:
    """One libpcap handle on one interface, read by one capture thread."""

    def __init__(self, interface: str, cfg: CaptureConfig, *, hold_on_stop: bool = False) -> None:
        self.interface = interface
        self.cfg = cfg
        self.stats = CaptureStats()
        self._handle: pcapy.Reader | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: str | None = None  # set if the capture thread died on a read error
        self.warning: str | None = None  # a libpcap warning at activation (capture works, degraded)
        self._handle_lock = threading.Lock()  # pcap_stats from the main thread vs close in the capture thread
        self._hold_on_stop = hold_on_stop  # after draining on stop, keep the handle open until stop()
        self._release = threading.Event()
        self.drained = threading.Event()  # set once the thread has read its last packet
        self.down_since: float | None = None  # monotonic: since when the interface is down (the handle is kept)
        self.index = 0  # the interface the handle is bound to (interface_index)
        self.down_error = ""
        # Wall time up to which every frame captured has been read into the queue: set by the capture thread when
        # libpcap has nothing more, less a ring block's timeout (frames in a block not yet retired are not seen).
        # Not moved while the thread does not run (stopped, starved): what arrives meanwhile is not read yet.
        self.read_until = time.time()

    # -- opening -------------------------------------------------------------------------------

    def open(self, *, held: bool = False) -> int:
        """Create, configure and activate the handle; returns the link type. Raises CaptureError.

        `held`: install a filter that passes nothing instead of the configured one (see
        `apply_filter`), so a fanout member captures nothing until the group is complete.
        """
        name = self.interface
        try:
            handle = pcapy.create(name)
        except pcapy.PcapError as exc:
            raise CaptureError(f"interface {name}: {exc}") from None
        cfg = self.cfg
        self._check(handle.set_snaplen(cfg.snaplen), "set snap length")
        self._check(handle.set_promisc(1 if cfg.promiscuous else 0), "set promiscuous mode")
        self._check(handle.set_buffer_size(cfg.buffer_size), "set buffer size")
        self._check(handle.set_timeout(READ_TIMEOUT_MS), "set read timeout")
        self._check(handle.activate(), "activate capture")
        try:
            handle.setnonblock(1)
            handle.setfilter(DROP_ALL_FILTER if held else cfg.filter_expression)
            linktype = handle.datalink()
        except pcapy.PcapError as exc:
            raise CaptureError(f"interface {name}: {exc}") from None
        self._handle = handle
        self.index = interface_index(handle.getfd(), name)  # the interface the socket is bound to
        return linktype

    def take_events(self) -> list[str]:
        """What happened to the capture (a failure ridden through, a resume) since the last call."""
        events, self.events = self.events, []
        return events

    def join_fanout(self, group: int | None) -> int:
        """Join the opened handle to a PACKET_FANOUT_HASH group; the group id.

        `group` None creates a new group with an id the kernel guarantees unused in this
        network namespace (so never someone else's group); the other members join by that id.
        """
        handle = self._handle
        assert handle is not None
        try:
            if group is None:
                handle.set_fanout(0, pcapy.PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_UNIQUEID)
                sock = socket.socket(fileno=handle.getfd())
                try:
                    group = sock.getsockopt(_SOL_PACKET, _PACKET_FANOUT) & 0xFFFF
                finally:
                    sock.detach()
            else:
                handle.set_fanout(group, pcapy.PACKET_FANOUT_HASH)
        except (pcapy.PcapError, OSError) as exc:
            raise CaptureError(f"interface {self.interface}: cannot join the capture fanout group: {exc}") from None
        return group

    def apply_filter(self) -> None:
        """Install the configured filter on a handle opened held (before start())."""
        assert self._handle is not None and self._thread is None
        try:
            self._handle.setfilter(self.cfg.filter_expression)
        except pcapy.PcapError as exc:
            raise CaptureError(f"interface {self.interface}: {exc}") from None

    def _check(self, status: int | None, what: str) -> None:
        if status is None or status == 0:
            return
        if status > 0:  # a warning: capture works, possibly degraded
            self.warning = f"interface {self.interface}: {what}: {_WARNING_TEXT.get(status, 'warning')}"
            return
        text = _STATUS_TEXT.get(status, f"libpcap error {status}")
        error = CapturePermissionError if status in _PERMISSION_STATUSES else CaptureError
        raise error(f"interface {self.interface}: cannot {what}: {text}")

    # -- the capture thread --------------------------------------------------------------------

    def start(self, queue: SpscQueue[RawBatch]) -> None:
        self._thread = threading.Thread(target=self._run, args=(queue,), name="capture", daemon=True)
        self._thread.start()

    def _run(self, queue: SpscQueue[RawBatch]) -> None:
        handle = self._handle
        assert handle is not None
        fd = handle.getfd()
        try:
            while not self._stop.is_set():
                if self.down_since is not None:  # the socket reports nothing useful until the link is back
                    if select.select([self._wake_r], [], [], DOWN_POLL)[0]:
                        break
                    self.read_until = time.time()  # a link that is down delivers nothing
                    if interface_up(fd, self.interface):
                        if self.index and interface_index(fd, self.interface) != self.index:  # deleted, made again
                            raise OSError(errno.ENODEV, "the interface was deleted and made again")
                        self.down_since = None
                    continue
                readable, _, _ = select.select([fd, self._wake_r], [], [], IDLE_POLL)
                if self._wake_r in readable:
                    break
                if fd in readable:
                    self._read_round(handle, queue)
                else:  # no ring block retired while it waited: every frame captured until a block's timeout ago is read
                    self.read_until = time.time() - READ_TIMEOUT_MS / 1000
            # The frames the kernel has counted as received are then all in the ring; some can sit in a ring
            # block until its timeout retires it: wait that long, then take them too, so a stop never loses what
            # the wire already delivered (nor counts a frame received that is neither read nor dropped).
            with contextlib.suppress(OSError):  # (not refused: frames still arriving are counted received, as before)
                refuse_new_frames(fd)
            deadline = time.monotonic() + STOP_DRAIN_SECONDS
            while (left := deadline - time.monotonic()) > 0:
                select.select([fd], [], [], left)
                self._drain(handle, queue)
            self._update_kernel_stats()
            self.drained.set()
            queue.wake()
            if self._hold_on_stop:
                self._release.wait()  # stays in the fanout group, reading nothing, until stop()
        except (pcapy.PcapError, OSError) as exc:
            self.failure = f"interface {self.interface}: capture failed: {exc}"
        finally:
            with self._handle_lock:
                self._handle = None
                handle.close()
            queue.wake()

    def _read_round(self, handle: pcapy.Reader, queue: SpscQueue[RawBatch]) -> None:
        """`_drain`, riding through the interface going down: the socket stays bound (and in its fanout group,
        so that no host pair moves to another worker) and reads again once the link is back."""
        try:
            self._drain(handle, queue)
        except pcapy.PcapError as exc:
            if "went down" not in str(exc):  # libpcap pcap-linux.c: "The interface went down" (ENETDOWN)
                raise
            self.down_error = f"interface {self.interface}: {exc}"
            self.down_since = time.monotonic()

    def _drain(self, handle: pcapy.Reader, queue: SpscQueue[RawBatch]) -> None:
        """Read batches until libpcap has nothing more right now."""
        stats = self.stats
        batch_size = self.cfg.batch_size
        while True:
            asked = time.time()
            buf, meta = handle.next_batch(batch_size)
            if not meta:
                self.read_until = asked - READ_TIMEOUT_MS / 1000
                return
            count = packet_count(meta)
            stats.read += count
            if not queue.put((buf, meta), len(buf) + len(meta) + BATCH_OVERHEAD):
                stats.queue_dropped += count

    def _update_kernel_stats(self) -> None:
        with self._handle_lock:
            if self._handle is None:
                return
            try:
                received, dropped, if_dropped = self._handle.stats()
            except pcapy.PcapError:
                return
        self.stats.received, self.stats.kernel_dropped, self.stats.interface_dropped = received, dropped, if_dropped

    def refresh_stats(self) -> CaptureStats:
        """Current counters (pcap_stats is safe to call while the thread reads)."""
        self._update_kernel_stats()
        return self.stats

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def request_stop(self) -> None:
        """Ask the capture thread to stop reading (it drains first); see `drained`."""
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the capture thread to stop, and wait for it (it closes the handle itself)."""
        self.request_stop()
        self._release.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return  # still reading: leave the pipe open rather than pull it from under select()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def close_unstarted(self) -> None:
        """Close a handle that was opened but never handed to a thread."""
        if self._thread is None and self._handle is not None:
            self._handle.close()
            self._handle = None


REOPEN_FIRST_DELAY = 0.5  # seconds before the first attempt to reopen a failed capture; doubling up to
REOPEN_MAX_DELAY = 16.0


@dataclass
class Waiting:
    """A capture that failed, being reopened."""

    since: float  # monotonic
    error: str
    attempts: int = 0
    next_try: float = 0.0
    last_error: str = ""
    retired: bool = False  # the failed capture's thread ended and its counters moved to the earlier handles'


# A stop, in seconds after the signal (SIGTERM must end the sensor within STOP_BUDGET at any load; every
# deadline counts from the signal's arrival, in the main process and in every worker): the capture thread
# takes what the wire already delivered, the worker processes the queued batches until DRAIN_DEADLINE and
# drops (and counts) what is still queued then, and every open flow is flushed. The last second of the
# budget is left for what no deadline bounds: writing the flushed flows' last notices to notice.log,
# the last stats record, and the exit itself (measured under a storm with evidence for every flow:
# docs/operations.md "Signals").
STOP_BUDGET = 5.0
DRAIN_DEADLINE = 1.5
JOURNAL_DEADLINE = 2.5  # later notices go to notice.log only, not journald nor --stdout (counted)
EVIDENCE_DEADLINE = 3.0  # the evidence writer stops then; what it has not written is counted (dropped_shutdown)
FLUSH_DEADLINE = 3.0  # the open flows' notices still to come then are folded into aggregates, not written one by one
STOP_DEADLINE = 4.0  # a capture thread (or a worker process) still running then is left behind (killed)


class LiveSource:
    """What a worker reads live: the capture thread's batches through the SPSC queue.

    `stop()` asks the capture thread to stop reading; `next_batch` then hands on what is still queued
    and says the input has ended (returns None with `ended` set) once the thread has drained and the
    queue is empty, or DRAIN_DEADLINE seconds after the stop, dropping what is still queued then
    (`shutdown_dropped` packets). `hold_on_stop`: the thread keeps its socket in the fanout group,
    reading nothing, until `close()`.
    """

    live = True

    def __init__(self, interface: str, cfg: CaptureConfig, decoder_for: Callable[[int], Any], *,
                 hold_on_stop: bool = False) -> None:
        self.cfg = cfg
        self.capture = LiveCapture(interface, cfg, hold_on_stop=hold_on_stop)
        self.queue: SpscQueue[RawBatch] = SpscQueue(cfg.queue_batches, cfg.queue_bytes)
        self._decoder_for = decoder_for
        self.decoder: Any = None
        self.ended = False
        self.shutdown_dropped = 0  # packets still queued at the drain deadline
        self._stop_at: float | None = None  # time.monotonic() when the stop was asked for: the deadlines count from it
        self._hold_on_stop = hold_on_stop
        self._group: int | None = None  # the fanout group joined, to join again after a reopen
        self._earlier = CaptureStats()  # the counters of the handles closed after a capture failure
        self.waiting: Waiting | None = None  # set while the interface is gone and being reopened
        self.failure: str | None = None  # why the capture ended for good (after capture.reopen_timeout)
        self.events: list[str] = []  # what happened to the capture, for the log (take_events)
        self._lag = 0.0  # the largest detection lag in the current window (seconds)
        self.lag = 0.0  # ... in the last window that ended (tick)
        self.lag_max = 0.0  # ... since the start

    @property
    def interface(self) -> str:
        return self.capture.interface

    def stats(self) -> CaptureStats:
        """The capture's counters since the start, over every handle a link flap made it open."""
        now = self.capture.refresh_stats()
        earlier = self._earlier
        return CaptureStats(earlier.received + now.received, earlier.kernel_dropped + now.kernel_dropped,
                            earlier.interface_dropped + now.interface_dropped, earlier.read + now.read,
                            earlier.queue_dropped + now.queue_dropped)

    def open(self, *, held: bool = False) -> None:
        """Open the interface and a decoder for its link type; CaptureError otherwise."""
        linktype = self.capture.open(held=held)
        try:
            self.decoder = self._decoder_for(linktype)
        except InputError as exc:
            self.capture.close_unstarted()
            raise CaptureError(f"interface {self.interface}: {exc.message}") from None

    def start(self) -> None:
        self.capture.start(self.queue)

    def take_events(self) -> list[str]:
        """What happened to the capture (a failure ridden through, a resume) since the last call."""
        events, self.events = self.events, []
        return events

    def join_fanout(self, group: int | None) -> int:
        self._group = self.capture.join_fanout(group)
        return self._group

    def next_batch(self, timeout: float) -> Batch | None:
        """The next batch, waiting up to `timeout` seconds; None if none came (or the input ended)."""
        if self._drained_out():
            self._drop_queued()
            self.ended = True
            return None
        if self._stop_at is None and self.failure is None:
            self._watch()
        item = self.queue.get_wait(timeout)
        if item is None and self._stop_at is not None and (self.capture.drained.is_set() or not self.capture.running):
            item = self.queue.get()  # one more look: the thread may have queued its last batch just now
            self.ended = item is None
        if item is None:
            return None
        if item[1]:
            lag = time.time() - first_capture_time(item[1])  # the kernel stamps frames with the wall clock
            if lag > self._lag:
                self._lag = lag
        return Batch(self.decoder, *item)

    def clock(self, now: float) -> float:
        """How far a tick may move the detector's clock (the wall, `now`, while the wire is quiet): no further than
        the capture thread has read the wire (`LiveCapture.read_until`; `now` while it is not running), nor than the
        capture time of the oldest frame still queued. A detector behind the wire must not expire a flow, a
        fragmented datagram or a storm's quiet whose next packets wait to be read."""
        capture = self.capture
        until = min(now, capture.read_until) if capture.running else now
        item = self.queue.peek()
        if item is not None and item[1]:
            until = min(until, first_capture_time(item[1]))
        return until

    def tick(self) -> None:
        """Once per TICK (a second): a new window of the detection lag. `lag` is then the last window's: the
        longest time between a frame's capture and the detector taking its batch, over the oldest frame of each
        batch taken in it (0 when none came); the time in the kernel's buffer and in the queue counts: it is how
        far behind the wire detection runs. `lag_max` is the largest since the start."""
        self.lag, self._lag = max(0.0, self._lag), 0.0
        self.lag_max = max(self.lag_max, self.lag)

    # -- a link flap: the interface goes down (or away) and comes back ---------------------------------
    #
    # Down: the capture thread keeps its handle (bound, and in its fanout group: no host pair moves to another
    # worker) and reads again once the link is back. Gone (any other capture error): the handle is closed, and
    # the interface is reopened with backoff. Either way every flow is kept, for capture.reopen_timeout seconds
    # (0: for ever); after that the capture has failed for good (`failure`).

    def _watch(self) -> None:
        capture, waiting, now = self.capture, self.waiting, time.monotonic()
        if waiting is None:
            if capture.failure:
                self._retire(capture, self._wait(now, capture.failure, "reopening it"))
            elif capture.down_since is not None:
                self._wait(capture.down_since, capture.down_error, "waiting for it")
            return
        if capture.failure and not waiting.retired:  # down, then gone: the interface was deleted (and made again)
            self.events.append(f"{capture.failure}; reopening it")
            self._retire(capture, waiting)
        limit = self.cfg.reopen_timeout
        if limit and now - waiting.since >= limit and (capture.failure or capture.down_since is not None):
            self.failure = f"{waiting.error}; not back within capture.reopen_timeout ({limit:g} s)"
        elif capture.failure:
            self._reopen_due(now, waiting)
        elif capture.down_since is None:
            self.events.append(f"interface {self.interface}: capture resumed after {now - waiting.since:.1f} s")
            self.waiting = None

    def _wait(self, since: float, error: str, doing: str) -> Waiting:
        self.waiting = Waiting(since=since, error=error)
        limit = self.cfg.reopen_timeout
        self.events.append(f"{error}; flows kept, {doing} ({f'for {limit:g} s' if limit else 'until it is back'}: "
                           "capture.reopen_timeout)")
        return self.waiting

    def _retire(self, capture: LiveCapture, waiting: Waiting) -> None:
        """A capture whose thread ended on a failure: its wake-up pipe closed, its counters kept as earlier ones."""
        capture.stop(0.0)  # its thread has ended: this closes its wake-up pipe
        self._earlier = self.stats()
        capture.stats = CaptureStats()  # counted in _earlier now
        waiting.retired = True

    def _reopen_due(self, now: float, waiting: Waiting) -> None:
        if now < waiting.next_try:
            return
        waiting.attempts += 1
        waiting.next_try = now + min(REOPEN_MAX_DELAY, 2 ** min(waiting.attempts - 1, 5) * REOPEN_FIRST_DELAY)
        try:
            self._reopen()
        except (CaptureError, InputError) as exc:
            waiting.last_error = exc.message

    def _reopen(self) -> None:
        fresh = LiveCapture(self.interface, self.cfg, hold_on_stop=self._hold_on_stop)
        grouped = self._group is not None
        try:
            linktype = fresh.open(held=grouped)  # a group's member reads nothing before it is back in the group
            if grouped:
                fresh.join_fanout(self._group)
                fresh.apply_filter()
            self.decoder = self._decoder_for(linktype)
        except (CaptureError, InputError):
            fresh.close_unstarted()
            fresh.stop(0.0)  # its wake-up pipe
            raise
        self.capture = fresh
        fresh.start(self.queue)

    def _drop_queued(self) -> None:
        while (item := self.queue.get()) is not None:
            self.shutdown_dropped += packet_count(item[1])

    def stop(self, at: float | None = None) -> None:
        """Stop reading (the capture thread drains what the wire already delivered first); `at`: when the
        stop was asked for (time.monotonic(), system-wide; None: now), the drain deadline counts from it."""
        if self._stop_at is None:
            self._stop_at = time.monotonic() if at is None else at
            self.capture.request_stop()

    def _drained_out(self) -> bool:
        """Whether the drain deadline after the stop has passed (what is still queued is dropped)."""
        return self._stop_at is not None and time.monotonic() >= self._stop_at + DRAIN_DEADLINE

    def wake(self) -> None:
        """Make a worker waiting in next_batch look up now."""
        self.queue.wake()

    def close(self) -> Iterator[Batch]:
        """Let the capture thread go (releasing a held socket) and close; what was still queued (before the
        drain deadline: after it, that is dropped and counted too)."""
        stop_at = time.monotonic() if self._stop_at is None else self._stop_at
        self.capture.stop(max(0.0, stop_at + STOP_DEADLINE - time.monotonic()))
        if self._drained_out():
            self._drop_queued()
            return
        while (item := self.queue.get()) is not None:
            yield Batch(self.decoder, *item)

    def close_unstarted(self) -> None:
        self.capture.close_unstarted()
