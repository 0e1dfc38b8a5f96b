"""A journald that stops taking entries must not stop the sensor (issue 13: hostile load on the outputs).

journald can stall: blocked on a slow or full disk, rate-limiting, or stopped. libsystemd's sd_journal_sendv
(systemd-python's journal.send) writes to a blocking socket, holding the GIL: once journald's socket queue was full
every thread of the sensor stopped there. Measured before the fix, journald stopped (SIGSTOP) under a storm of
notices: notice.log stopped at 11 lines, no stats record was written, and SIGTERM did not end the sensor within
15 s (systemd would have killed it, and the notices raised with it).

Here a private journald (testkit/netlab.py) is stopped, then 3,000 one-packet alerted flows (a spoofed source
and destination each) arrive with aggregation off, 6,000 notices: notice.log gets every one within a few seconds,
the stats records go on, the entries journald could not take wait in a bounded backlog and are counted when they
are given up (journal_errors), SIGTERM ends the sensor within the 5-s stop budget with exit 0, and once journald
runs again it has the entries sent before the stop: every notice is in notice.log, and in the journal or counted.
With one process and with two workers (the main process writes every output). Traffic crosses only the lab's
veth pair (tcpreplay under `timeout`, no loop).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from icmpsensor.source.live import STOP_BUDGET
from testkit import synthmix
from testkit.netlab import PEER_IF, SENSOR_IP, Lab, Sensor, launch_ready, missing_prerequisite, wait_for

_MISSING = missing_prerequisite("tcpreplay")
pytestmark = [pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING)), pytest.mark.timeout(180)]

FLOWS = 3_000
NOTICES = 2 * FLOWS  # a DataExfil and an ExfilSummary a flow
CONFIG = ("capture:\n  workers: {workers}\njournald:\n  enabled: true\nstats:\n  interval: 1\n"
          "detection:\n  aggregate_interval: 0\n  idle_timeout: 2\noutput:\n  evidence:\n    enabled: false\n")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stalled_journald_stops_neither_detection_nor_notice_log_nor_the_stop(
        workers: int, lab: Lab, tmp_path: Path, sensors: list[Sensor]) -> None:
    pcap = tmp_path / "storm.pcap"
    synthmix.write_pcap(pcap, synthmix.build_storm_plan(FLOWS, 1, target_ip=SENSOR_IP, pairs=True), None)
    sensor = launch_ready(lab, tmp_path, sensors, CONFIG.format(workers=workers))
    journald = sensor.journald_pid()
    assert journald is not None
    os.kill(journald, signal.SIGSTOP)
    try:
        replay = subprocess.run(["ip", "netns", "exec", lab.peer_ns, "timeout", "-k", "5", "60", "tcpreplay",
                                 f"--intf1={PEER_IF}", "--pps=3000", str(pcap)], capture_output=True, text=True,
                                timeout=90)
        assert replay.returncode == 0, replay.stderr[-1000:]
        sent_at = time.monotonic()
        written = wait_for(lambda: len(sensor.notices()) >= NOTICES, 15)
        written_after = time.monotonic() - sent_at
        records = len(sensor.stats_records())
        went_on = wait_for(lambda: len(sensor.stats_records()) >= records + 2, 5)
        before_stop = (sensor.stats_records() or [{}])[-1]
        stop_began = time.monotonic()
        sensor.signal(signal.SIGTERM)
        try:
            code = sensor.proc.wait(timeout=STOP_BUDGET + 5)
        except subprocess.TimeoutExpired:
            code = None
        stop_took = time.monotonic() - stop_began
    finally:
        os.kill(journald, signal.SIGCONT)
    if code is None:
        code = sensor.proc.wait(timeout=30)
    final = sensor.stats_records()[-1]
    in_journal = wait_for(lambda: len(sensor.journal("SYSLOG_IDENTIFIER=icmpsensor", "NOTE=ICMP::ICMP_DataExfil"))
                          > 0, 10)
    entries = len(sensor.journal("NOTE=ICMP::ICMP_DataExfil")) + len(sensor.journal("NOTE=ICMP::ICMP_ExfilSummary"))
    print(f"\nnotice.log: {len(sensor.notices()):,} lines {written_after:.1f} s after sending; stats records went on: "
          f"{went_on}; journal backlog before the stop {before_stop.get('journal_backlog')}; stop took "
          f"{stop_took:.1f} s, exit {code}; journal: {entries:,} notice entries, journal_errors "
          f"{final['journal_errors']:,}")
    assert written, f"{len(sensor.notices())} of {NOTICES} notices in notice.log"
    assert went_on, "no stats record while journald was stalled"
    assert code == 0 and stop_took <= STOP_BUDGET, (code, stop_took)
    assert in_journal
    assert final["notices"] == len(sensor.notices()) >= NOTICES
    # every notice in notice.log is in the journal or counted as not delivered there
    assert entries + final["journal_errors"] >= NOTICES, (entries, final["journal_errors"])
