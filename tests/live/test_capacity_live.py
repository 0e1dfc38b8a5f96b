"""icmplib, pythonping and hping3 --rand-dest against the live daemon, between network namespaces (issue 12,
needs root).

Each test starts the sensor (default configuration: the standard profile) on the lab's sensor interface, runs
one testkit/livetools.py case between the lab's namespaces (the command of `bench.detection_table --live`'s row
of that name, its capture made there too), waits until stats.log shows the sensor read every ICMP packet of
the capture, stops it (SIGTERM flushes every open flow, so notices due at a flow's end count too) and reads
notice.log:

* icmplib-monitor: icmplib as Home Assistant calls it, every 10 s to 4 hosts for about a minute: no notice
  at all (icmplib's layout is free within 20 requests per flow, refilled one per 3 s);
* icmplib-flood: the same layout at exfiltration volume (400 requests in about 5 s to one host):
  ICMP::ICMP_DataExfil from the inside host to the outside host, and no notice about any other pair;
* pythonping-monitor: pythonping ping(host, count=4, size=32) every 5 s to 4 hosts for about 30 s: no notice
  (its first request of a call is free within the same budget);
* pythonping-flood: its layout at exfiltration volume (150 calls back to back, the secret as base-36 text):
  ICMP::ICMP_DataExfil from the inside host to the outside host only;
* hping3-rand-dest: a file in 48-byte pieces to 200 random destinations: ICMP::ICMP_ExfilSpread naming the
  inside host, and no notice naming another source.

Every loop is bounded in count and time (the cases run their tools under `timeout`); the lab's namespaces are
removed afterwards (tests/live/conftest.py), the case's extra addresses and routes after each case.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from testkit import livetools, netlab
from testkit.livetools import INSIDE, LIVE_EXPECTED, LIVE_PROVENANCE, OUTSIDE, capture_summary
from testkit.netlab import Lab, Sensor, launch_ready, wait_for

_MISSING = livetools.missing_prerequisite() or netlab.missing_prerequisite()
pytestmark = [pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING)), pytest.mark.timeout(150)]

CONFIG = "stats:\n  interval: 1\n"
DATA_EXFIL, SPREAD = "ICMP::ICMP_DataExfil", "ICMP::ICMP_ExfilSpread"


def _packets_read(sensor: Sensor) -> int:
    records = sensor.stats_records()
    return int(records[-1].get("packets_read", 0)) if records else 0  # type: ignore[call-overload]


def _show(notices: list[dict[str, object]]) -> str:
    return "\n".join(f"    {n['note']} {n['src']} -> {n['dst']}: {str(n['msg'])[:200]}" for n in notices) \
        or "    (no notice)"


def _run(case: str, lab: Lab, tmp_path: Path, sensors: list[Sensor]) -> tuple[list[dict[str, object]], int]:
    """The case between the lab's namespaces under a live sensor: (notice.log after the stop, ICMP packets
    the capture holds)."""
    reason = livetools.missing_prerequisite(case)
    if reason:
        pytest.skip(reason)
    sensor = launch_ready(lab, tmp_path, sensors, CONFIG)
    started = time.monotonic()
    pcap = livetools.capture(case, tmp_path / "traffic", lab, fresh=True)  # sent now: the sensor sees it
    took = time.monotonic() - started
    summary = capture_summary(pcap)
    icmp = sum(n for n, _ in summary.values())
    read = wait_for(lambda: _packets_read(sensor) >= icmp, 10, interval=0.2)
    code, _, err = sensor.stop()
    notices = sensor.notices()
    print(f"\n{case}: {LIVE_PROVENANCE[case]}")
    print(f"  traffic {took:.1f} s; capture: {icmp} ICMP packets, from {INSIDE}: "
          f"{sum(n for (src, _), (n, _) in summary.items() if src == INSIDE)} to "
          f"{len({dst for src, dst in summary if src == INSIDE})} destinations; "
          f"sensor read {_packets_read(sensor)} packets")
    print(_show(notices))
    assert code == 0, err
    assert read, f"{case}: the sensor read {_packets_read(sensor)} packets, the capture holds {icmp} ICMP packets"
    return notices, icmp


# the random-padding monitoring libraries: (mode, rounds, seconds between rounds, count, ...) of their monitoring
MONITORS = {"icmplib-monitor": livetools.ICMPLIB_MONITOR, "pythonping-monitor": livetools.PYTHONPING_MONITOR}


@pytest.mark.parametrize("case", sorted(MONITORS))
def test_a_monitoring_library_at_monitoring_volume_raises_nothing(case: str, lab: Lab, tmp_path: Path,
                                                                  sensors: list[Sensor]) -> None:
    assert LIVE_EXPECTED[case] is None  # the benign case
    notices, icmp = _run(case, lab, tmp_path, sensors)
    _, rounds, _, count, _ = MONITORS[case]
    assert icmp >= 2 * rounds * count * len(livetools.ICMPLIB_HOSTS)  # every request and its reply, seen
    assert notices == [], f"{case} at monitoring volume raised notices:\n{_show(notices)}"


@pytest.mark.parametrize("case", ["icmplib-flood", "pythonping-flood"])
def test_a_monitoring_library_layout_at_exfiltration_volume_is_data_exfil(case: str, lab: Lab, tmp_path: Path,
                                                                          sensors: list[Sensor]) -> None:
    assert LIVE_EXPECTED[case] == (INSIDE, OUTSIDE)
    notices, _ = _run(case, lab, tmp_path, sensors)
    assert (DATA_EXFIL, INSIDE, OUTSIDE) in {(n["note"], n["src"], n["dst"]) for n in notices}, _show(notices)
    assert {(n["src"], n["dst"]) for n in notices} == {(INSIDE, OUTSIDE)}, _show(notices)


def test_hping3_rand_dest_is_an_exfil_spread_naming_the_source(lab: Lab, tmp_path: Path,
                                                               sensors: list[Sensor]) -> None:
    assert LIVE_EXPECTED["hping3-rand-dest"] == (INSIDE, "*")
    notices, _ = _run("hping3-rand-dest", lab, tmp_path, sensors)
    spread = [n for n in notices if n["note"] == SPREAD and n["src"] == INSIDE]
    assert spread, f"no {SPREAD} naming {INSIDE}:\n{_show(notices)}"
    assert int(spread[0]["flow.peers"]) >= 16  # type: ignore[call-overload]
    assert {n["src"] for n in notices} == {INSIDE}, _show(notices)
