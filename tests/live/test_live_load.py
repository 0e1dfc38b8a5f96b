"""Smoke test of the live load test (bench/live_load.py) at one low rate (needs root and tcpreplay).

A 20,000-frame synthetic capture (VLAN and QinQ frames included) is replayed with tcpreplay at
5,000 packets/s onto a veth pair between two network namespaces built here, into a live sensor:
every offered frame must be captured and processed, no kernel or queue drop, no silent loss, and
every drop counter must be in the sensor's stats records. No speed is asserted. The traffic is
bounded (20,000 frames, tcpreplay under `timeout`) and the namespaces are deleted afterwards.

The same with `--workers 2` (`capture.workers: 2`), 10,000 frames in 2 s: the summed counters of
stats.log account for every frame, both workers get a share of the host pairs, and the CPU of the
worker processes is counted.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench import live_load
from testkit import synthmix

PACKETS, RATE = 20_000, 5_000
WORKERS, WORKER_SECONDS = 2, 2.0

_MISSING = live_load.missing_prerequisite()
pytestmark = [pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING)), pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> live_load.Capture:
    pcap = tmp_path_factory.mktemp("capture") / "synth.pcap"
    synthmix.generate(pcap, packets=PACKETS, seed=1)
    capture = live_load.inspect_capture(pcap)
    assert capture.frames == PACKETS
    assert capture.rejected == [], "the sensor's default BPF filter must pass every synthetic frame"
    assert capture.vlan_tagged > 0
    return capture


def checked_stats_records(tmp_path: Path, result: live_load.Result) -> list[dict]:
    """The sensor's stats.log records: the last is the final one, and every drop counter is in each."""
    records = live_load.read_stats(tmp_path / "run" / "sensor" / "logs" / "stats.log")
    assert records and result.final_record == records[-1]
    for record in records:
        for key in live_load.COUNTERS:
            assert isinstance(record.get(key), int) and record[key] >= 0, (key, record)
        assert isinstance(record["decode"]["frames"], int)
    return records


def test_sensor_config_and_worker_count() -> None:
    assert "workers" not in live_load.sensor_config(1 << 20)
    assert "  workers: 3\n" in live_load.sensor_config(1 << 20, workers=3)
    for bad in (0, live_load.MAX_WORKERS + 1):
        with pytest.raises(live_load.LoadError):
            live_load.check_workers(bad)
    assert live_load.main(["--workers", "9"]) == 2


def test_low_rate_replay_is_processed_without_loss(tmp_path: Path, capture: live_load.Capture) -> None:
    began = time.monotonic()
    result = live_load.run_load(capture, [RATE], seconds=PACKETS / RATE, repeat=1, workdir=tmp_path / "run",
                                buffer_bytes=64 << 20)
    assert time.monotonic() - began < 60

    [row] = result.rows
    assert (row.replay.sent, row.replay.failed) == (PACKETS, 0), row.replay.output
    assert row.offered == PACKETS
    assert row.received == PACKETS  # promiscuous: the frames' MAC addresses are not the veth's
    assert row.processed == PACKETS
    assert row.loss == 0.0
    assert (row.kernel_dropped, row.queue_dropped, row.queue_dropped_batches) == (0, 0, 0)
    assert row.silent == 0 and row.before_capture == 0

    # Every drop counter is in every stats record, the last one written at shutdown included.
    checked_stats_records(tmp_path, result)
    last = result.final_record
    assert last["packets_received"] == last["packets_read"] == last["decode"]["frames"] == PACKETS
    assert result.sensor_exit == 0, result.sensor_stderr


def test_low_rate_replay_with_two_workers(tmp_path: Path, capture: live_load.Capture) -> None:
    limit = int(RATE * WORKER_SECONDS)
    began = time.monotonic()
    result = live_load.run_load(capture, [RATE], seconds=WORKER_SECONDS, repeat=1, workdir=tmp_path / "run",
                                buffer_bytes=64 << 20, workers=WORKERS)
    assert time.monotonic() - began < 40

    assert result.workers == WORKERS and len(result.worker_pids) == WORKERS
    [row] = result.rows
    assert row.workers == WORKERS
    assert (row.replay.sent, row.replay.failed) == (limit, 0), row.replay.output
    assert row.offered == limit
    # stats.log's sums over the workers: every offered frame received, read and processed once.
    assert row.received == row.read == row.processed == limit
    assert row.loss == 0.0
    assert (row.kernel_dropped, row.queue_dropped, row.queue_dropped_batches) == (0, 0, 0)
    assert row.silent == 0 and row.before_capture == 0
    # The per-worker breakdown adds up, and the fanout hash gives each worker some of the ~200 host pairs.
    assert len(row.worker_read) == WORKERS and sum(row.worker_read) == limit
    assert min(row.worker_read) > 0, row.worker_read
    # The workers' CPU is counted (10,000 frames are several clock ticks of work).
    assert row.cpu_workers > 0 and row.cpu_us_per_packet > 0
    assert not [n for n in live_load.anomalies(result) if "interface_dropped" not in n], live_load.anomalies(result)

    for record in checked_stats_records(tmp_path, result):
        assert sorted(w["pid"] for w in record["workers"]) == sorted(result.worker_pids)
    last = result.final_record
    assert last["packets_received"] == last["packets_read"] == last["decode"]["frames"] == limit
    assert sum(w["packets_read"] for w in last["workers"]) == limit
    assert result.sensor_exit == 0, result.sensor_stderr
