"""journald's native protocol on a socket that never blocks (output/journalsocket.py).

A datagram socket stands in for journald: one that reads, one that reads nothing (a stalled journald, whose queue
fills after net.unix.max_dgram_qlen datagrams), none at all. tests/live/test_journald_stall_live.py runs the whole
sensor against a real journald that is stopped.
"""

from __future__ import annotations

import array
import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from icmpsensor.config.schema import JournalConfig
from icmpsensor.output import journalsocket
from icmpsensor.output.journal import Journal
from icmpsensor.output.journalsocket import JournalSocket, encode_entry


def decode_entry(data: bytes) -> dict[str, str]:
    """journald's reading of a native entry (systemd src/journal/journald-native.c): NAME=value lines, or NAME, a
    newline, a 64-bit little-endian length, the value and a newline."""
    fields, at = {}, 0
    while at < len(data):
        end = data.index(b"\n", at)
        line = data[at:end]
        if b"=" in line:
            name, value = line.split(b"=", 1)
            at = end + 1
        else:
            name = line
            (size,) = struct.unpack_from("<Q", data, end + 1)
            value = data[end + 9:end + 9 + size]
            assert data[end + 9 + size:end + 10 + size] == b"\n"
            at = end + 10 + size
        fields[name.decode()] = value.decode()
    return fields


def test_an_entry_is_name_value_lines_and_a_value_with_a_newline_goes_with_its_length() -> None:
    fields = {"MESSAGE": "2 lines\nof text", "PRIORITY": 4, "NOTE": "ICMP::ICMP_DataExfil", "EMPTY": "",
              "SUB": "a=b c"}
    data = encode_entry(fields)
    assert data.startswith(b"MESSAGE\n" + struct.pack("<Q", 15) + b"2 lines\nof text\nPRIORITY=4\n")
    assert decode_entry(data) == {name: str(value) for name, value in fields.items()}
    assert decode_entry(encode_entry({"MESSAGE": "bad \udcff text"})) == {"MESSAGE": "bad ? text"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "journal.sock"))
    sock.settimeout(2.0)
    try:
        yield sock
    finally:
        sock.close()


def received(server: socket.socket) -> list[dict[str, str]]:
    """What journald would have read so far: datagrams, and the entries of sealed memfds passed with SCM_RIGHTS."""
    entries = []
    server.setblocking(False)
    try:
        while True:
            data, ancillary, _, _ = server.recvmsg(1 << 25, socket.CMSG_SPACE(4))
            for level, kind, payload in ancillary:
                assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS) and not data
                fd = array.array("i", payload[:4])[0]
                try:  # journald maps it from its start, whatever the offset the sender left
                    data = os.pread(fd, os.fstat(fd).st_size, 0)
                finally:
                    os.close(fd)
            entries.append(decode_entry(data))
    except BlockingIOError:
        pass
    finally:
        server.settimeout(2.0)
    return entries


def test_entries_reach_a_journald_that_reads(server: socket.socket) -> None:
    sender = JournalSocket(server.getsockname())
    for i in range(5):
        sender.send(encode_entry({"MESSAGE": f"m{i}"}))
        assert [e["MESSAGE"] for e in received(server)] == [f"m{i}"]
    assert sender.sent == 5 and sender.dropped == 0 and sender.backlog == 0
    sender.close()


def test_a_stalled_journald_never_blocks_the_sender_and_what_waits_is_bounded_sent_in_order_or_counted(
        server: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journalsocket, "MAX_BACKLOG", 100)
    sender = JournalSocket(server.getsockname())
    began = time.monotonic()
    for i in range(1_000):  # the server reads nothing: its queue is full after a few datagrams
        sender.send(encode_entry({"MESSAGE": f"m{i}"}))
    assert time.monotonic() - began < 1.0
    taken = sender.sent
    assert 0 < taken < 1_000 and sender.backlog == 100 and sender.dropped == 1_000 - taken - 100
    got = [e["MESSAGE"] for e in received(server)]  # journald runs again ...
    sender.flush()  # ... and the next tick sends what waited, oldest first
    got += [e["MESSAGE"] for e in received(server)]
    while sender.backlog:
        sender.flush()
        got += [e["MESSAGE"] for e in received(server)]
    assert got == [f"m{i}" for i in range(taken + 100)]
    sender.send(encode_entry({"MESSAGE": "later"}))
    assert [e["MESSAGE"] for e in received(server)] == ["later"]
    sender.close()


def test_the_backlog_is_bounded_by_bytes_too_and_given_up_at_the_stop(server: socket.socket,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journalsocket, "MAX_BACKLOG_BYTES", 10_000)
    sender = JournalSocket(server.getsockname())
    for _ in range(200):
        sender.send(encode_entry({"MESSAGE": "x" * 990}))  # 1,000 bytes an entry
    assert sender.backlog == 10 and sender.sent + sender.backlog + sender.dropped == 200
    dropped = sender.dropped
    assert sender.give_up() == 10 and sender.dropped == dropped + 10 and sender.backlog == 0
    sender.close()


def test_an_entry_too_large_for_a_datagram_goes_as_a_sealed_memfd(server: socket.socket) -> None:
    sender = JournalSocket(server.getsockname())
    big = "y" * (journalsocket.SNDBUF_SIZE + 1)  # past any datagram the socket takes (at most its send buffer)
    sender.send(encode_entry({"MESSAGE": "big", "SUB": big}))
    assert received(server) == [{"MESSAGE": "big", "SUB": big}] and sender.sent == 1
    sender.close()


def test_no_journald_at_the_socket_drops_and_counts(tmp_path: Path) -> None:
    sender = JournalSocket(str(tmp_path / "gone.sock"))
    sender.send(encode_entry({"MESSAGE": "m"}))
    assert sender.dropped == 1 and sender.backlog == 0
    sender.close()


def test_the_journal_sends_notices_fields_and_counts_what_never_arrived(server: socket.socket) -> None:
    journal = Journal(JournalConfig(), socket_path=server.getsockname())
    journal.log("started", 6, "c28a1ef6ce804f0cb4f2b5195d391842", INTERFACE="eth1")
    [entry] = received(server)
    assert entry == {"MESSAGE": "started", "PRIORITY": "6", "SYSLOG_IDENTIFIER": "icmpsensor",
                     "INTERFACE": "eth1", "MESSAGE_ID": "c28a1ef6ce804f0cb4f2b5195d391842"}
    for i in range(50):
        journal.send(f"m{i}", 4)
    assert journal.backlog > 0 and journal.errors == 0
    left = journal.backlog
    assert journal.give_up() == left and journal.errors == left and journal.backlog == 0
