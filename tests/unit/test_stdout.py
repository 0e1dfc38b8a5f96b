"""`--stdout` (output/stdout.py): a replay writes every line; a live sensor never waits for a reader.

File descriptor 1 is pointed at a pipe for each test (and restored): a reader that reads everything, one that reads
nothing (a full pipe, as behind a paused pager), one that is gone. tests/live/test_hostile_live.py runs the daemon
with a stdout no one reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from icmpsensor.notice.record import Notice
from icmpsensor.output import stdout
from icmpsensor.output.stdout import StdoutSink


def notice(i: int) -> Notice:
    return Notice(ts=1_700_000_000.0 + i, note="ICMP::ICMP_DataExfil", msg=f"notice {i}", sub="s", src="192.0.2.1",
                  dst="198.51.100.2", uid=f"C{i}", n=1, bytes_sent=500, bytes_received=0, start=0.0, end=1.0)


@contextlib.contextmanager
def stdout_pipe() -> Iterator[int]:
    """File descriptor 1 as the write end of a new pipe; yields the read end."""
    sys.stdout.flush()
    saved = os.dup(1)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 1)
    os.close(write_end)
    try:
        yield read_end
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(read_end)


def read_lines(fd: int, count: int, timeout: float = 10.0) -> list[str]:
    data = b""
    deadline = time.monotonic() + timeout
    while data.count(b"\n") < count and time.monotonic() < deadline:
        data += os.read(fd, 1 << 16)
    return data.decode().splitlines()


def test_a_live_sink_with_a_reader_writes_every_line_in_order() -> None:
    with stdout_pipe() as read_end:
        sink = StdoutSink("edge-1", waits=False)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(read_lines(read_end, 2_000)))
        reader.start()
        for i in range(2_000):
            sink.emit(notice(i))
        reader.join(20)
        sink.close()
    assert [json.loads(line)["msg"] for line in lines] == [f"notice {i}" for i in range(2_000)]
    assert sink.dropped == 0 and not sink.broken


def test_a_live_sink_whose_reader_stops_reading_never_blocks_and_counts_what_it_drops(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stdout, "MAX_QUEUED", 100)
    with stdout_pipe():
        sink = StdoutSink("edge-1", waits=False)
        began = time.monotonic()
        for i in range(5_000):  # the pipe holds ~64 KB (~250 lines), the queue 100 more
            sink.emit(notice(i))
        emitted = time.monotonic() - began
        began = time.monotonic()
        sink.close()
        closed = time.monotonic() - began
    assert emitted < 2.0 and closed < stdout.CLOSE_WAIT + 1.0
    # written to the pipe, or dropped (queue full, or still queued at close): never lost without a count
    assert 5_000 - 100 - 400 <= sink.dropped < 5_000


def test_a_live_sink_whose_reader_is_gone_says_so_and_stops_writing() -> None:
    with stdout_pipe() as read_end:
        os.close(os.dup(read_end))
        sink = StdoutSink("edge-1", waits=False)
        sink.emit(notice(0))
        assert read_lines(read_end, 1) and not sink.broken
        os.dup2(os.open(os.devnull, os.O_RDONLY), read_end)  # the read end closed, as `| head -1` does
        deadline = time.monotonic() + 5
        i = 1
        while not sink.broken and time.monotonic() < deadline:
            sink.emit(notice(i))
            i += 1
            time.sleep(0.001)
        assert sink.broken
        sink.emit(notice(i))  # nothing more is written or counted
        sink.close()


def test_a_replay_sink_writes_every_line_whatever_the_readers_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    with stdout_pipe() as read_end:
        monkeypatch.setattr(sys, "stdout", open(1, "w", closefd=False))  # noqa: SIM115 - the process's own stdout
        sink = StdoutSink("edge-1")  # waits (a replay)
        lines: list[str] = []

        def slow_reader() -> None:
            time.sleep(0.3)  # the pipe fills meanwhile: the replay waits
            lines.extend(read_lines(read_end, 1_000))

        reader = threading.Thread(target=slow_reader)
        reader.start()
        for i in range(1_000):
            sink.emit(notice(i))
        reader.join(20)
        sink.close()
    assert len(lines) == 1_000 and sink.dropped == 0
