"""Detection lag, live (issue 13): a sensor that falls behind the wire says by how much, before anything is dropped.

The sensor is stopped (SIGSTOP) for a few seconds while pings arrive: the kernel holds them in the capture's buffer
(nothing is lost). Once it runs again, its stats record says how long after their capture it took them
(`detection_lag`, seconds: the largest of the interval) and then that it has caught up; past `stats.lag_warning` the
journal gets a warning, then a note that it caught up. Traffic crosses only the lab's veth pair (ping under `timeout`,
its count fixed).
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from icmpsensor.output.journal import MSGID_LAGGING
from testkit.netlab import SENSOR_IP, Lab, Sensor, launch_ready, missing_prerequisite, wait_for

_MISSING = missing_prerequisite()
pytestmark = [pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING)), pytest.mark.timeout(120)]

STOPPED = 3.0  # seconds the sensor is stopped while pings arrive
CONFIG = "stats:\n  interval: 1\n  lag_warning: 2\n"


def test_a_sensor_held_behind_the_wire_reports_its_lag_then_that_it_caught_up(
        lab: Lab, tmp_path: Path, sensors: list[Sensor]) -> None:
    sensor = launch_ready(lab, tmp_path, sensors, CONFIG)
    pinger = subprocess.Popen(["ip", "netns", "exec", lab.peer_ns, "timeout", "30", "ping", "-q", "-n", "-i", "0.02",
                               "-c", "500", SENSOR_IP], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: any(r["packets_read"] > 50 for r in sensor.stats_records()), 10)
        calm = sensor.stats_records()[-1]
        sensor.signal(signal.SIGSTOP)
        time.sleep(STOPPED)
        sensor.signal(signal.SIGCONT)
        behind = wait_for(lambda: any(r.get("detection_lag", 0) >= STOPPED - 1.0 for r in sensor.stats_records()), 10)
        caught_up = wait_for(lambda: sensor.stats_records()[-1].get("detection_lag", STOPPED) < 1.0, 10)
    finally:
        sensor.signal(signal.SIGCONT)
        pinger.wait(timeout=40)
    records = sensor.stats_records()
    lags = [r.get("detection_lag") for r in records]
    print(f"\ndetection_lag per 1-s record: {lags}")
    assert calm["detection_lag"] < 1.0 and calm["queued_batches"] >= 0, calm
    assert behind, lags
    assert caught_up, lags
    said = [(int(e["PRIORITY"]), e["MESSAGE"]) for e in sensor.journal(f"MESSAGE_ID={MSGID_LAGGING}")]
    print(f"journal: {said}")
    assert len(said) == 2, said  # once each way
    (warning, behind_text), (note, caught_up_text) = said
    assert warning == 4 and "behind the wire" in behind_text, said  # LOG_WARNING
    assert note == 6 and "caught up" in caught_up_text, said  # LOG_INFO
    code, _, err = sensor.stop()
    assert code == 0, err[-2000:]
    final = sensor.stats_records()[-1]
    for key in ("kernel_dropped", "queue_dropped", "shutdown_dropped"):
        assert final[key] == 0, (key, final)


HELD = 4.0  # seconds the sensor is stopped: more than IDLE_TIMEOUT
IDLE_TIMEOUT = 2.0
HELD_CONFIG = f"capture:\n  batch_size: 8\ndetection:\n  idle_timeout: {IDLE_TIMEOUT:g}\nstats:\n  interval: 1\n"


def test_a_sensor_behind_the_wire_does_not_expire_a_flow_whose_packets_wait_to_be_read(
        lab: Lab, tmp_path: Path, sensors: list[Sensor]) -> None:
    """One ping runs on while the sensor is stopped longer than detection.idle_timeout: its packets wait in the
    capture's buffer. Once the sensor runs again its clock must not jump to the wall before it has read them (a
    flow expired then, with its next packets still queued, is split in two: alerts twice, summaries cut short):
    one flow each way, from the first packet to the last."""
    sensor = launch_ready(lab, tmp_path, sensors, HELD_CONFIG)
    pinger = subprocess.Popen(["ip", "netns", "exec", lab.peer_ns, "timeout", "30", "ping", "-q", "-n", "-i", "0.02",
                               "-c", "400", SENSOR_IP], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: any(r["packets_read"] > 50 for r in sensor.stats_records()), 10)
        sensor.signal(signal.SIGSTOP)
        time.sleep(HELD)
        sensor.signal(signal.SIGCONT)
        pinger.wait(timeout=40)
    finally:
        sensor.signal(signal.SIGCONT)
    ended = wait_for(lambda: sensor.stats_records()[-1]["detect"]["flows_expired"] >= 2  # type: ignore[index]
                     and sensor.stats_records()[-1]["flows"] == 0, IDLE_TIMEOUT + 10)
    detect = sensor.stats_records()[-1]["detect"]
    print(f"\nflows created {detect['flows_created']}, expired {detect['flows_expired']}")  # type: ignore[index]
    assert ended, detect
    assert detect["flows_created"] == 2 and detect["flows_expired"] == 2, detect  # type: ignore[index]
    code, _, err = sensor.stop()
    assert code == 0, err[-2000:]
