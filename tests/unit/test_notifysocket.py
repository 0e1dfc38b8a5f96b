"""sd_notify on a socket that never blocks (runmode/notifysocket.py).

A datagram socket stands in for PID 1's notify socket: one that reads, one that reads nothing (a stalled manager,
whose queue fills after net.unix.max_dgram_qlen datagrams), none at all. tests/live/test_notify_stall_live.py runs the
whole sensor against a stalled one; tests/system/test_systemd.py under a real systemd (Type=notify, the watchdog).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from icmpsensor.runmode import notifysocket
from icmpsensor.runmode.notifysocket import NotifySocket, notifier
from testkit.datagrams import fill_queue, read_now


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    try:
        yield sock
    finally:
        sock.close()


def filled(sock: socket.socket) -> int:
    """The manager's queue filled with other services' messages: how many it took."""
    return fill_queue(sock.getsockname(), b"OTHER=1")


def test_messages_reach_a_manager_that_reads_at_a_path_or_an_abstract_name(manager: socket.socket) -> None:
    sock, send = notifier({"NOTIFY_SOCKET": manager.getsockname()})
    assert isinstance(sock, NotifySocket)
    for state in ("READY=1", "STATUS=3 packets", "WATCHDOG=1"):
        send(state)
        assert read_now(manager) == [state]
    assert sock.sent == 3 and sock.unsent == 0 and sock.waiting == 0
    sock.close()
    name = f"icmpsensor-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as abstract:
        abstract.bind("\0" + name)
        abstract.settimeout(2.0)
        sock, send = notifier({"NOTIFY_SOCKET": "@" + name})
        assert sock is not None
        send("STATUS=é")  # UTF-8, as sd_notify sends a C string
        assert abstract.recv(4096) == "STATUS=é".encode()
        sock.close()


def test_a_stalled_manager_never_blocks_and_only_the_latest_of_each_name_waits(manager: socket.socket) -> None:
    """PID 1 reads nothing (a long daemon-reload): the sender goes on at once; what waits is the latest message of
    each name, sent oldest first when the manager reads again; the replaced ones are counted."""
    others = filled(manager)
    sock = NotifySocket(manager.getsockname())
    began = time.monotonic()
    sock.send("READY=1")
    for i in range(1_000):
        sock.send(f"STATUS={i} packets")
        if i % 100 == 0:
            sock.send("WATCHDOG=1")
    assert time.monotonic() - began < 1.0
    assert sock.sent == 0 and sock.waiting == 3 and sock.unsent == 999 + 9
    assert read_now(manager) == ["OTHER=1"] * others  # the manager reads again ...
    sock.flush()  # ... and the next tick sends what waited: READY=1 first, the latest STATUS= after WATCHDOG=1
    assert read_now(manager) == ["READY=1", "WATCHDOG=1", "STATUS=999 packets"]
    assert sock.sent == 3 and sock.waiting == 0
    sock.send("STOPPING=1")
    assert read_now(manager) == ["STOPPING=1"]
    sock.close()


def test_what_waits_is_given_up_at_the_stop_and_a_refused_message_is_counted(manager: socket.socket,
                                                                             tmp_path: Path) -> None:
    filled(manager)
    sock = NotifySocket(manager.getsockname())
    sock.send("STATUS=1")
    sock.send("STOPPING=1")
    assert sock.give_up() == 2 and sock.unsent == 2 and sock.waiting == 0
    sock.close()
    gone = NotifySocket(str(tmp_path / "no-manager.sock"))  # nothing listens there: refused, as sd_notify, once
    gone.send("READY=1")
    gone.send("STATUS=1")
    assert gone.unsent == 2 and gone.sent == 0 and gone.waiting == 0
    gone.close()


def test_without_a_manager_nothing_is_sent_and_other_addresses_go_to_libsystemd(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sock, send = notifier({})
    assert sock is None
    send("READY=1")  # a no-op
    sent: list[str] = []
    monkeypatch.setattr(notifysocket, "_libsystemd_notify", sent.append)
    sock, send = notifier({"NOTIFY_SOCKET": "vsock:2:1234"})  # a VM's manager (systemd 253): libsystemd's to reach
    assert sock is None
    send("READY=1")
    assert sent == ["READY=1"]


@pytest.mark.parametrize("address", ["/" + "x" * 200, "@", "@" + "y" * 300, "/etc/passwd", "/nonexistent/dir/sock",
                                     "/tmp"])
def test_a_hostile_notify_address_is_counted_never_raised(address: str) -> None:
    """$NOTIFY_SOCKET too long for AF_UNIX, empty, a file, a directory, missing: each message refused and counted
    (an exception here would end the daemon)."""
    sock, send = notifier({"NOTIFY_SOCKET": address})
    assert sock is not None
    send("READY=1")
    send("STATUS=1")
    assert sock.unsent == 2 and sock.sent == 0 and sock.waiting == 0
    sock.close()
