"""The Prometheus textfile and the capture-loss notice on a live sensor, between network namespaces (root).

A storm of alerted flows replayed at top speed into a sensor whose queue holds two one-packet batches makes the
detector drop most of it (queue drops, counted): the daemon must raise CaptureLoss (Zeek's note) in notice.log and
journald, and the textfile must show the drops and the notice. A quiet sensor raises none.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from icmpsensor.notice.types import CAPTURE_LOSS
from testkit.netlab import PEER_IF, Lab, Sensor, launch_ready, missing_prerequisite, storm_capture, wait_for

pytestmark = pytest.mark.skipif(missing_prerequisite() is not None, reason=str(missing_prerequisite()))

METRICS = "stats:\n  interval: 1\n  prometheus_textfile: metrics/icmpsensor.prom\n  capture_loss_threshold: 0.05\n"


def metrics(sensor: Sensor) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    path = sensor.log_dir / "metrics" / "icmpsensor.prom"
    if not path.exists():
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(path.read_text()) for s in family.samples}


def metrics_dir(tmp_path: Path, index: int) -> None:
    """The textfile's directory, made before the sensor starts (the sensor verifies it, it does not make it)."""
    (tmp_path / f"sensor{index}" / "logs" / "metrics").mkdir(parents=True, mode=0o755)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_lossy_interval_raises_capture_loss_and_the_textfile_shows_the_drops(
        lab: Lab, tmp_path: Path, sensors: list[Sensor], workers: int) -> None:
    metrics_dir(tmp_path, len(sensors))
    config = METRICS + f"capture:\n  workers: {workers}\n  batch_size: 1\n  queue_batches: 2\n"
    sensor = launch_ready(lab, tmp_path, sensors, config)
    assert wait_for(lambda: ("icmpsensor_packets_read_total", ()) in metrics(sensor), 5), "no textfile"
    storm = storm_capture(tmp_path / "storm.pcap", flows=20_000)
    lab.in_peer("timeout", "60", "tcpreplay", "-q", "--topspeed", "-i", PEER_IF, str(storm), timeout=90)

    def lost() -> list[dict[str, object]]:
        return [n for n in sensor.notices() if n["note"] == CAPTURE_LOSS.name]

    assert wait_for(lambda: bool(lost()), 15), "no capture-loss notice"
    notice = lost()[0]
    assert str(notice["msg"]).startswith("The capture loss check detected an estimated loss rate above ")
    assert "proto" not in notice and "src" not in notice and int(notice["n"]) > 0  # type: ignore[call-overload]
    entries = sensor.journal(f"NOTE={CAPTURE_LOSS.name}")
    assert entries and entries[0]["MESSAGE_ID"] == CAPTURE_LOSS.message_id and entries[0]["PRIORITY"] == "4"
    assert wait_for(lambda: metrics(sensor).get(("icmpsensor_notices_total", (("note", CAPTURE_LOSS.name),)), 0)
                    >= 1, 5)
    code, _, err = sensor.stop()
    assert code == 0, err[-2000:]
    got = metrics(sensor)
    last = json.loads((sensor.log_dir / "stats.log").read_text().splitlines()[-1])
    # the textfile holds the last record's numbers (written with it at the stop)
    assert got[("icmpsensor_packets_dropped_total", (("kind", "queue"),))] == last["queue_dropped"] > 0
    assert got[("icmpsensor_packets_read_total", ())] == last["packets_read"] > 0
    assert got[("icmpsensor_notices_total", (("note", CAPTURE_LOSS.name),))] == len(lost())
    assert last["notices_by_note"][CAPTURE_LOSS.name] == len(lost())
    # once per interval at most: never more notices than stats records
    records = (sensor.log_dir / "stats.log").read_text().splitlines()
    assert len(lost()) <= len(records)
    assert sorted(p.name for p in (sensor.log_dir / "metrics").iterdir()) == ["icmpsensor.prom"]


def test_a_quiet_sensor_raises_no_capture_loss_and_counts_its_packets(
        lab: Lab, tmp_path: Path, sensors: list[Sensor]) -> None:
    metrics_dir(tmp_path, len(sensors))
    sensor = launch_ready(lab, tmp_path, sensors, METRICS)
    lab.benign_pings(count=20)
    assert wait_for(lambda: metrics(sensor).get(("icmpsensor_packets_read_total", ()), 0) >= 40, 10), metrics(sensor)
    code, _, err = sensor.stop()
    assert code == 0, err[-2000:]
    assert not [n for n in sensor.notices() if n["note"] == CAPTURE_LOSS.name]
    got = metrics(sensor)
    assert got[("icmpsensor_packets_dropped_total", (("kind", "kernel"),))] == 0
    assert got[("icmpsensor_icmp_messages_total", (("type", "8"), ("version", "4")))] >= 20


def test_a_textfile_directory_others_can_write_stops_the_start_with_exit_73(
        lab: Lab, tmp_path: Path, sensors: list[Sensor]) -> None:
    metrics_dir(tmp_path, len(sensors))
    (tmp_path / f"sensor{len(sensors)}" / "logs" / "metrics").chmod(0o777)
    from testkit.netlab import start_sensor

    sensor = start_sensor(lab, tmp_path / f"sensor{len(sensors)}", METRICS, ready_timeout=10)
    sensors.append(sensor)
    code, _, err = sensor.stop()
    assert not sensor.ready and code == 73, (code, err)
    assert "writable by others" in err and err.count("icmpsensor: error:") == 1, err
