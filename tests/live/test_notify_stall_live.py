"""A service manager that stops reading sd_notify messages must not stop the sensor (issue 13: hostile load on the
outputs).

libsystemd's sd_notify (systemd-python's daemon.notify) sends on a blocking datagram socket. PID 1 reads its notify
socket in its event loop; while it does not (a long daemon-reload on a busy host, a stalled manager) the socket's
queue fills after net.unix.max_dgram_qlen datagrams, shared by every service, and sd_notify waits. The sensor sends
STATUS= every tick from its detection loop: before the fix, detection stopped there (runmode/notifysocket.py).

Here the lab's notify socket stays open after READY=1 and reads nothing; the test fills its queue, then replays 300
one-packet alerted flows (aggregation off, 600 notices): notice.log gets every one and the stats records go on; once
the socket is read again, the latest STATUS= comes at the next tick, and STOPPING=1 at the SIGTERM, which ends the
sensor within the stop budget with exit 0 (the last stats record's STATUS= after it); the messages replaced while
they waited are counted (notify_unsent). Traffic crosses only the lab's veth pair (tcpreplay under `timeout`, no
loop).
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from icmpsensor.source.live import STOP_BUDGET
from testkit import synthmix
from testkit.datagrams import fill_queue, read_now
from testkit.netlab import PEER_IF, SENSOR_IP, Lab, Sensor, missing_prerequisite, start_sensor, wait_for

_MISSING = missing_prerequisite("tcpreplay")
pytestmark = [pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING)), pytest.mark.timeout(120)]

FLOWS = 300
NOTICES = 2 * FLOWS  # a DataExfil and an ExfilSummary a flow
CONFIG = ("stats:\n  interval: 1\ndetection:\n  aggregate_interval: 0\n  idle_timeout: 2\n"
          "output:\n  evidence:\n    enabled: false\n")


def test_a_stalled_service_manager_stops_neither_detection_nor_the_stop(lab: Lab, tmp_path: Path,
                                                                       sensors: list[Sensor]) -> None:
    pcap = tmp_path / "storm.pcap"
    synthmix.write_pcap(pcap, synthmix.build_storm_plan(FLOWS, 1, target_ip=SENSOR_IP, pairs=True), None)
    sensor = start_sensor(lab, tmp_path / "sensor", CONFIG, keep_notify=True)
    sensors.append(sensor)
    assert sensor.ready and sensor.notify is not None
    filled = fill_queue(sensor.notify.getsockname(), b"X_TEST_FILLER=1")
    replay = subprocess.run(["ip", "netns", "exec", lab.peer_ns, "timeout", "-k", "5", "30", "tcpreplay",
                             f"--intf1={PEER_IF}", "--pps=1000", str(pcap)], capture_output=True, text=True, timeout=60)
    assert replay.returncode == 0, replay.stderr[-1000:]
    written = wait_for(lambda: len(sensor.notices()) >= NOTICES, 15)
    records = len(sensor.stats_records())
    went_on = wait_for(lambda: len(sensor.stats_records()) >= records + 2, 5)
    stalled = read_now(sensor.notify)  # the manager reads again: what waited comes at the next tick
    resumed: list[str] = []
    sensor.notify.settimeout(0.2)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(m.startswith("STATUS=") for m in resumed):
        try:
            resumed.append(sensor.notify.recv(4096).decode())
        except TimeoutError:
            continue
    stop_began = time.monotonic()
    sensor.proc.send_signal(signal.SIGTERM)
    try:
        code = sensor.proc.wait(timeout=STOP_BUDGET + 5)
    except subprocess.TimeoutExpired:
        code = None
    stop_took = time.monotonic() - stop_began
    final = (sensor.stats_records() or [{}])[-1]
    resumed += read_now(sensor.notify)
    print(f"\nqueue filled with {filled} datagrams; notice.log {len(sensor.notices())} lines; stats went on: {went_on};"
          f" stop {stop_took:.1f} s, exit {code}; notify_unsent {final.get('notify_unsent')}; after the stall: "
          f"{[m.split('=')[0] for m in resumed]}")
    assert written, f"{len(sensor.notices())} of {NOTICES} notices in notice.log"
    assert went_on, "no stats record while the service manager was stalled"
    assert stalled == ["X_TEST_FILLER=1"] * filled  # nothing got past the full queue
    assert code == 0 and stop_took <= STOP_BUDGET, (code, stop_took)
    assert final["notify_unsent"] > 0  # the STATUS= messages replaced while they waited
    assert resumed[0].startswith("STATUS=") and "STOPPING=1" in resumed, resumed  # the final STATUS= after it
