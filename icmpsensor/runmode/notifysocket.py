"""sd_notify (READY=1, WATCHDOG=1, STATUS=, STOPPING=1) on a socket that never blocks the sensor.

The service manager's notify protocol: one datagram of `NAME=value` lines to the AF_UNIX socket named by
$NOTIFY_SOCKET, a path or, starting with '@', an abstract name (sd_notify(3); systemd's
src/libsystemd/sd-daemon/sd-daemon.c). PID 1 reads the sender's credentials itself (SO_PASSCRED), so nothing else is
sent.

Why not systemd-python's daemon.notify: it calls sd_notify with the GIL held (python-systemd's systemd/_daemon.c,
notify()), and sd_notify sends on a blocking socket. When PID 1 does not read its notify socket (a long daemon-reload,
a stalled manager), the socket's queue fills (net.unix.max_dgram_qlen datagrams, shared by every service) and the call
waits: the sensor's detection loop, which sends STATUS= every tick, stops with it, and the capture thread with the GIL
(tests/live/test_notify_stall_live.py). Here the socket is non-blocking: a message PID 1 does not take now waits, only
the latest of each name (a STATUS= replaces the one before it), and is sent first the next time; a message replaced,
refused or given up at the stop is counted (`unsent`). An address this socket cannot reach (vsock:, used by VMs) is
handed to systemd-python's sd_notify.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Mapping

from icmpsensor.output.journalsocket import WOULD_BLOCK


class NotifySocket:
    """The service manager's notify socket at `address` (a path, or an abstract name starting with a NUL byte)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        self._waiting: dict[str, bytes] = {}  # name -> the latest message of that name PID 1 has not taken yet
        self.sent = 0
        self.unsent = 0  # messages replaced while they waited, refused, or given up

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def send(self, state: str) -> None:
        """Send `state` (one `NAME=value`) after what waits; if PID 1 does not take it now, it waits too."""
        name = state.split("=", 1)[0]
        if name in self._waiting:
            self.unsent += 1
            del self._waiting[name]  # the newer one goes after the others that wait
        self._waiting[name] = state.encode("utf-8", "replace")
        self.flush()

    def flush(self) -> None:
        """Send what waits, oldest first, until PID 1 takes no more."""
        waiting = self._waiting
        while waiting:
            name, data = next(iter(waiting.items()))
            try:
                self._sock.sendto(data, self.address)
            except OSError as exc:
                if exc.errno in WOULD_BLOCK:
                    return
                self.unsent += 1  # refused (no manager listens, or the path is gone): as sd_notify, not retried
            else:
                self.sent += 1
            del waiting[name]

    def give_up(self) -> int:
        """Give up what waits (counted in `unsent`; at the stop); how many."""
        given_up = len(self._waiting)
        self.unsent += given_up
        self._waiting.clear()
        return given_up

    def close(self) -> None:
        self.give_up()
        self._sock.close()


def _libsystemd_notify(state: str) -> None:
    from systemd import daemon as sd_daemon

    with contextlib.suppress(OSError):
        sd_daemon.notify(state)


def notifier(environ: Mapping[str, str] = os.environ) -> tuple[NotifySocket | None, Callable[[str], None]]:
    """The notify socket $NOTIFY_SOCKET names and its send: (None, a no-op) when not started by a service manager,
    (None, systemd-python's sd_notify) for an address that is not a path or an abstract name."""
    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return None, lambda state: None
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        return None, _libsystemd_notify
    sock = NotifySocket(address)
    return sock, sock.send
