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

from icmpsensor import console
from icmpsensor.config.schema import Config
from icmpsensor.notice.record import Notice
from icmpsensor.output import stdout
from icmpsensor.output.stdout import StdoutSink
from icmpsensor.runmode.live import Daemon, Overrides


def notice(i: int) -> Notice:
    return Notice(ts=1_700_000_000.0 + i, note="ICMP::ICMP_DataExfil", msg=f"notice {i}", sub="s", src="192.0.2.1",
                  dst="198.51.100.2", uid=f"C{i}", n=1, bytes_sent=500, bytes_received=0, start=0.0, end=1.0)


@contextlib.contextmanager
def stdout_pipe(fd: int = 1) -> Iterator[int]:
    """File descriptor `fd` (1: stdout) as the write end of a new pipe; yields the read end."""
    sys.stdout.flush()
    saved = os.dup(fd)
    read_end, write_end = os.pipe()
    os.dup2(write_end, fd)
    os.close(write_end)
    try:
        yield read_end
    finally:
        os.dup2(saved, fd)
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


def test_a_live_daemons_stderr_no_one_reads_never_blocks_and_counts_what_it_drops(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """console.queue_stderr: while the daemon runs, say() hands its lines to a queue (console.STDERR_QUEUED) that
    a thread writes; past it a line is dropped and counted. After unqueue_stderr, say() writes directly."""
    monkeypatch.setattr(console, "STDERR_QUEUED", 50)
    with stdout_pipe(2) as read_end:
        queue = console.queue_stderr()
        try:
            began = time.monotonic()
            for i in range(3_000):  # ~60 bytes each: the pipe holds ~1,000, the queue 50 more
                console.say(f"icmpsensor: stats: line {i:05d} of the operational messages")
            said = time.monotonic() - began
        finally:
            console.unqueue_stderr(0.2)
        assert said < 2.0
        assert 3_000 - 50 - 1_200 <= queue.dropped < 3_000
        data = b""
        os.set_blocking(read_end, False)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # the line the thread was writing when the pipe filled ends too
            with contextlib.suppress(BlockingIOError):
                data += os.read(read_end, 1 << 20)
            if data.endswith(b"\n") and data.count(b"\n") + queue.dropped >= 3_000:
                break
            time.sleep(0.01)
        written = data.decode().splitlines()
        assert written[0].endswith("line 00000 of the operational messages")  # in order, the first ones
        assert len(written) + queue.dropped == 3_000  # each written or counted


def test_past_the_stops_deadline_a_live_sink_counts_notices_instead_of_rendering_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """At a stop the open flows' summaries all come at once (100,000 with aggregation off): past the deadline
    the daemon sets (as journald's), --stdout takes no more time for them; notice.log has them, and they are
    counted in stdout_dropped."""
    with stdout_pipe() as read_end:
        sink = StdoutSink("edge-1", waits=False)
        daemon = Daemon(Config(), Overrides())
        daemon.sinks = [sink]
        daemon._stopping_since()
        assert sink.deadline is not None
        sink.emit(notice(0))  # before the deadline
        assert read_lines(read_end, 1) and sink.dropped == 0
        monkeypatch.setattr(stdout.time, "monotonic", lambda: sink.deadline + 1)  # type: ignore[operator]
        monkeypatch.setattr(Notice, "to_json_line", lambda *_: pytest.fail("rendered past the deadline"))
        for i in range(1, 4):
            sink.emit(notice(i))
        sink.close()
    assert sink.dropped == 3
