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
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pcapy

from icmpsensor.config.schema import CaptureConfig
from icmpsensor.errors import CaptureError, CapturePermissionError, InputError
from icmpsensor.source.batch import Batch, RawBatch, packet_count
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
STOP_DRAIN_SECONDS = 2 * READ_TIMEOUT_MS / 1000
_WARNING_TEXT = {1: "warning", 2: "promiscuous mode not supported", 3: "timestamp type not supported"}

# PACKET_FANOUT (linux/if_packet.h). With FLAG_UNIQUEID and id 0 the kernel creates the group
# under an id no other group in the network namespace uses; the others join by that id.
_SOL_PACKET = 263
_PACKET_FANOUT = 18
PACKET_FANOUT_FLAG_UNIQUEID = 0x2000
DROP_ALL_FILTER = "less 1"  # no frame is that short: a held handle passes nothing


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
            handle.setfilter(DROP_ALL_FILTER if held else cfg.bpf_filter)
            linktype = handle.datalink()
        except pcapy.PcapError as exc:
            raise CaptureError(f"interface {name}: {exc}") from None
        self._handle = handle
        return linktype

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
            self._handle.setfilter(self.cfg.bpf_filter)
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
                readable, _, _ = select.select([fd, self._wake_r], [], [], 1.0)
                if self._wake_r in readable:
                    break
                self._drain(handle, queue)
            # Packets can sit in a kernel ring block until its timeout retires it: wait that long, then
            # take them too, so a stop never loses what the wire already delivered.
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

    def _drain(self, handle: pcapy.Reader, queue: SpscQueue[RawBatch]) -> None:
        """Read batches until libpcap has nothing more right now."""
        stats = self.stats
        batch_size = self.cfg.batch_size
        while True:
            buf, meta = handle.next_batch(batch_size)
            if not meta:
                return
            count = packet_count(meta)
            stats.read += count
            if not queue.put((buf, meta)):
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


STOP_DEADLINE = 4.0  # seconds the capture thread gets to drain and finish on a stop


class LiveSource:
    """What a worker reads live: the capture thread's batches through the SPSC queue.

    `stop()` asks the capture thread to stop reading; `next_batch` then hands on what is still queued
    and says the input has ended (returns None with `ended` set) once the thread has drained, stopped,
    or had STOP_DEADLINE seconds. `hold_on_stop`: the thread keeps its socket in the fanout group,
    reading nothing, until `close()`.
    """

    live = True

    def __init__(self, interface: str, cfg: CaptureConfig, decoder_for: Callable[[int], Any], *,
                 hold_on_stop: bool = False) -> None:
        self.capture = LiveCapture(interface, cfg, hold_on_stop=hold_on_stop)
        self.queue: SpscQueue[RawBatch] = SpscQueue(cfg.queue_batches)
        self._decoder_for = decoder_for
        self.decoder: Any = None
        self.ended = False
        self._stop_deadline: float | None = None

    @property
    def interface(self) -> str:
        return self.capture.interface

    @property
    def failure(self) -> str | None:
        return self.capture.failure

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

    def next_batch(self, timeout: float) -> Batch | None:
        """The next batch, waiting up to `timeout` seconds; None if none came (or the input ended)."""
        item = self.queue.get_wait(timeout)
        if item is not None:
            return Batch(self.decoder, *item)
        deadline = self._stop_deadline
        if deadline is not None and (self.capture.drained.is_set() or not self.capture.running
                                     or time.monotonic() >= deadline):
            item = self.queue.get()
            if item is None:
                self.ended = True
                return None
            return Batch(self.decoder, *item)
        return None

    def stop(self) -> None:
        """Stop reading (the capture thread drains what the wire already delivered first)."""
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + STOP_DEADLINE
            self.capture.request_stop()

    def wake(self) -> None:
        """Make a worker waiting in next_batch look up now."""
        self.queue.wake()

    def close(self) -> Iterator[Batch]:
        """Let the capture thread go (releasing a held socket) and close; what was still queued."""
        self.capture.stop(STOP_DEADLINE)
        while (item := self.queue.get()) is not None:
            yield Batch(self.decoder, *item)

    def close_unstarted(self) -> None:
        self.capture.close_unstarted()
