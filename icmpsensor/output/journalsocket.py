"""journald's native protocol on a socket that never blocks the sensor.

An entry is one datagram to /run/systemd/journal/socket: a field per line, `NAME=value`, or for a value with a
newline in it `NAME`, a newline, the value's length as a 64-bit little-endian integer, the value and a newline
(https://systemd.io/JOURNAL_NATIVE_PROTOCOL/). An entry too large for a datagram goes as a sealed memfd passed with
SCM_RIGHTS instead, as libsystemd's sd_journal_sendv does (src/libsystemd/sd-journal/journal-send.c).

Why not systemd-python's journal.send: it calls sd_journal_sendv, whose socket is blocking, with the GIL held. When
journald stalls (a slow or full disk, or stopped) its socket queue fills and every thread of the sensor stops in
that call: capture, detection, notice.log, stats and signal handling (measured: notice.log stopped at 11 lines
and SIGTERM did not end the sensor; tests/live/test_journald_stall_live.py). Here the socket is non-blocking: an
entry journald does not take now waits in a bounded backlog (MAX_BACKLOG entries, MAX_BACKLOG_BYTES), sent first
the next time, and is dropped and counted (`dropped`) past the bound or when given up at the stop. notice.log,
written first, keeps every notice whatever journald does.
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import os
import socket
import struct
from collections import deque
from collections.abc import Mapping

from icmpsensor.console import write_all

SNDBUF_SIZE = 8 * 1024 * 1024  # as libsystemd's journal-send.c asks (the kernel caps it at net.core.wmem_max)
MAX_BACKLOG = 10_000  # entries waiting for journald
MAX_BACKLOG_BYTES = 16 * 1024 * 1024
_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
# a datagram a full receiver queue did not take now (ENOBUFS: no buffer for it): sent again later, not refused
WOULD_BLOCK = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS)


def encode_entry(fields: Mapping[str, object]) -> bytes:
    """One journal entry in the native protocol: NAME=value lines, a value with a newline sent with its length."""
    parts = []
    for name, value in fields.items():
        data = str(value).encode("utf-8", "replace")  # a lone surrogate in a notice's text becomes '?'
        key = name.encode("ascii")
        if b"\n" in data:
            parts.append(key + b"\n" + struct.pack("<Q", len(data)) + data + b"\n")
        else:
            parts.append(key + b"=" + data + b"\n")
    return b"".join(parts)


class JournalSocket:
    """Entries to journald over a non-blocking datagram socket, with a bounded backlog of those it did not take."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF_SIZE)
        self._backlog: deque[bytes] = deque()
        self._backlog_bytes = 0
        self.dropped = 0  # entries never delivered: backlog full, given up, or refused by the socket
        self.sent = 0

    @property
    def backlog(self) -> int:
        """Entries waiting for journald to take them."""
        return len(self._backlog)

    def send(self, entry: bytes) -> None:
        """Send an entry, after the backlog; keep it in the backlog if journald takes nothing now."""
        if self._backlog:
            self.flush()
        if self._backlog or not self._send(entry):
            self._keep(entry)

    def flush(self) -> None:
        """Send what waits, oldest first, for as long as journald takes it."""
        backlog = self._backlog
        while backlog:
            entry = backlog[0]
            if not self._send(entry):
                return
            backlog.popleft()
            self._backlog_bytes -= len(entry)

    def give_up(self) -> int:
        """Drop (and count) what still waits; how many entries that was."""
        left = len(self._backlog)
        self.dropped += left
        self._backlog.clear()
        self._backlog_bytes = 0
        return left

    def close(self) -> None:
        self._sock.close()

    def _keep(self, entry: bytes) -> None:
        if len(self._backlog) >= MAX_BACKLOG or self._backlog_bytes + len(entry) > MAX_BACKLOG_BYTES:
            self.dropped += 1  # the newest is dropped: the backlog keeps the order journald gets entries in
            return
        self._backlog.append(entry)
        self._backlog_bytes += len(entry)

    def _send(self, entry: bytes) -> bool:
        """Whether the entry is done with (sent, or refused for good and counted); False: journald is full."""
        try:
            self._sock.sendto(entry, self.path)
        except OSError as exc:
            if exc.errno in WOULD_BLOCK:
                return False
            if exc.errno == errno.EMSGSIZE:  # larger than a datagram may be
                return self._send_memfd(entry)
            self.dropped += 1  # no journald (ENOENT, ECONNREFUSED: restarting), or an entry it refuses
            return True
        self.sent += 1
        return True

    def _send_memfd(self, entry: bytes) -> bool:
        """An entry too large for a datagram: in a sealed memfd, its descriptor passed to journald."""
        fd = os.memfd_create("icmpsensor-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            write_all(fd, entry)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
            self._sock.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))], 0, self.path)
        except OSError as exc:
            if exc.errno in WOULD_BLOCK:
                return False
            self.dropped += 1
            return True
        finally:
            os.close(fd)
        self.sent += 1
        return True
