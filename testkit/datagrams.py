"""A datagram socket that stands in for a service's socket (journald's, PID 1's notify socket) in the tests: its
queue filled as a stalled reader leaves it, and what it holds read."""

from __future__ import annotations

import socket

FILL_LIMIT = 10_000  # datagrams: net.unix.max_dgram_qlen is 10 by default, 512 on some hosts


def fill_queue(path: str, message: bytes) -> int:
    """Send `message` to the socket at `path` until its queue is full (its reader reads nothing): how many it took."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK) as sender:
        for taken in range(FILL_LIMIT):
            try:
                sender.sendto(message, path)
            except BlockingIOError:
                return taken
    raise AssertionError(f"the socket at {path} took {FILL_LIMIT:,} datagrams: not full")


def read_now(sock: socket.socket) -> list[str]:
    """The datagrams `sock` holds now, as text (left non-blocking)."""
    sock.setblocking(False)
    got = []
    while True:
        try:
            got.append(sock.recv(4096).decode())
        except BlockingIOError:
            return got
