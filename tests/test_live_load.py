"""Smoke test of the live load test (bench/live_load.py) at one low rate (needs root and tcpreplay).

A 20,000-frame synthetic capture (VLAN and QinQ frames included) is replayed with tcpreplay at
5,000 packets/s onto a veth pair between two network namespaces built here, into a live sensor:
every offered frame must be captured and processed, no kernel or queue drop, no silent loss, and
every drop counter must be in the sensor's stats records. No speed is asserted. The traffic is
bounded (20,000 frames, tcpreplay under `timeout`) and the namespaces are deleted afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench import live_load, synth

PACKETS, RATE = 20_000, 5_000

_MISSING = live_load.missing_prerequisite()
pytestmark = [pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING)), pytest.mark.timeout(120)]


def test_low_rate_replay_is_processed_without_loss(tmp_path: Path) -> None:
    pcap = tmp_path / "synth.pcap"
    synth.generate(pcap, packets=PACKETS, seed=1)
    capture = live_load.inspect_capture(pcap)
    assert capture.frames == PACKETS
    assert capture.rejected == [], "the sensor's default BPF filter must pass every synthetic frame"
    assert capture.vlan_tagged > 0

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
    records = live_load.read_stats(tmp_path / "run" / "sensor" / "logs" / "stats.log")
    assert records and result.final_record == records[-1]
    for record in records:
        for key in live_load.COUNTERS:
            assert isinstance(record.get(key), int) and record[key] >= 0, (key, record)
        assert isinstance(record["decode"]["frames"], int)
    last = result.final_record
    assert last["packets_received"] == last["packets_read"] == last["decode"]["frames"] == PACKETS
    assert result.sensor_exit == 0, result.sensor_stderr
