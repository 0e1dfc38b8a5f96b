"""Detection lag (issue 13): how far behind the wire the detector takes the capture's batches (source/live.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from icmpsensor.config.schema import Config
from icmpsensor.source.batch import BATCH_META
from icmpsensor.source.live import LiveSource


def batch_captured(at: float, frames: int = 3) -> tuple[bytes, bytes]:
    """A batch (no frame bytes needed) whose frames were captured `at`, then 1 s apart."""
    records = []
    for i in range(frames):
        sec = int(at + i)
        records.append(BATCH_META.pack(sec, int((at - int(at)) * 1e6), 0, 0))
    return b"", b"".join(records)


@pytest.fixture
def source() -> Iterator[LiveSource]:
    src = LiveSource("lo", Config().capture, lambda linktype: None)
    yield src
    src.capture.stop(0.0)


def test_the_lag_is_the_longest_wait_of_a_batch_in_the_last_window(source: LiveSource) -> None:
    now = time.time()
    for at in (now - 2.0, now - 7.5, now - 0.5):  # the oldest frame of each batch counts
        assert source.queue.put(batch_captured(at))
    source.tick()
    assert source.lag == 0.0  # nothing taken in that window
    for _ in range(3):
        assert source.next_batch(0.0) is not None
    assert source.lag == 0.0  # the window is still open
    source.tick()
    assert 7.5 <= source.lag < 8.5 and source.lag_max == source.lag
    source.tick()
    assert source.lag == 0.0 and 7.5 <= source.lag_max < 8.5  # caught up; the worst is remembered
    assert source.queue.put(batch_captured(time.time() + 5.0))  # a clock stepped back: never negative
    assert source.next_batch(0.0) is not None
    source.tick()
    assert source.lag == 0.0


def test_an_empty_batch_has_no_lag(source: LiveSource) -> None:
    assert source.queue.put((b"", b""))
    assert source.next_batch(0.0) is not None
    source.tick()
    assert source.lag == 0.0


def test_the_status_line_says_when_detection_runs_behind() -> None:
    from icmpsensor.runmode.stats import status_line

    base = {"interface": "eth1", "packets_read": 10, "flows": 1, "notices": 0, "kernel_dropped": 0,
            "interface_dropped": 0, "queue_dropped": 0}
    assert "behind" not in status_line({**base, "detection_lag": 0.4})
    assert status_line({**base, "detection_lag": 3.25}).endswith("; detection 3.2 s behind the wire")


def test_the_journal_is_warned_once_when_detection_falls_behind_and_told_when_it_caught_up() -> None:
    """Daemon._check_lag, run every second with the stats record's detection_lag: one warning from
    stats.lag_warning on, the peak tracked while it lasts, one note once under a second again; 0 switches it off."""
    import syslog
    from types import SimpleNamespace

    from icmpsensor.output.journal import MSGID_LAGGING
    from icmpsensor.runmode.live import Daemon

    def run(threshold: float, lags: list[float]) -> list[tuple[int, str]]:
        said: list[tuple[int, str]] = []
        cfg = Config()
        cfg.stats.lag_warning = threshold
        daemon = SimpleNamespace(cfg=cfg, _lag_warned=0.0,
                                 log=lambda text, priority, message_id, **_: said.append((priority, text))
                                 if message_id == MSGID_LAGGING else None)
        for lag in lags:
            Daemon._check_lag(daemon, lag)  # type: ignore[arg-type]
        return said

    said = run(5.0, [0.1, 4.9, 5.0, 7.5, 12.0, 3.0, 1.2, 0.1, 0.1, 6.0])
    assert [priority for priority, _ in said] == [syslog.LOG_WARNING, syslog.LOG_INFO, syslog.LOG_WARNING]
    assert "5.0 s behind" in said[0][1] and "up to 12.0 s behind" in said[1][1] and "6.0 s behind" in said[2][1]
    assert run(0.0, [0.1, 30.0, 0.1]) == []


def test_a_tick_moves_the_clock_no_further_than_the_wire_has_been_read(source: LiveSource,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """LiveSource.clock: the wall while nothing waits; else the capture time of the oldest frame queued; and, while
    the capture thread runs, no further than it has read (LiveCapture.read_until)."""
    now = time.time()
    assert source.clock(now) == now  # nothing queued, the capture thread not reading
    assert source.queue.put(batch_captured(now - 7.5))
    assert source.queue.put(batch_captured(now - 2.0))
    assert source.clock(now) == pytest.approx(now - 7.5, abs=1e-6)
    assert source.next_batch(0.0) is not None
    assert source.clock(now) == pytest.approx(now - 2.0, abs=1e-6)
    assert source.next_batch(0.0) is not None
    assert source.clock(now) == now
    monkeypatch.setattr(type(source.capture), "running", property(lambda self: True))
    source.capture.read_until = now - 4.0  # the thread has not read since (stopped, or starved of the CPU)
    assert source.clock(now) == now - 4.0
    source.capture.read_until = now + 0.5
    assert source.clock(now) == now
