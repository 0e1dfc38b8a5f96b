"""The notice storm live (issue 13): one-packet alerted flows from spoofed sources sent at 20,000 packets/s for
15 s (300,000 frames) onto the lab's veth, into a sensor with the default configuration (its 60-s aggregation
interval included: the storm is told once it is over, notice/aggregate.py QUIET, not when the interval ends).
Four shapes: 20,000 flows looped 15 times by tcpreplay, towards the sensor's host (folded per destination) and with
a spoofed destination of its own per flow (no host repeated: folded per note, `aggregate_max_per_note`); and
300,000 distinct sources sent once (a new alerted flow for every frame until the last one), in one process and
with two workers.

Required: no loss (no kernel, queue or shutdown drop; every frame read was decoded; every frame sent was read)
and, within 2 s of the end of sending, every one of the storm's DataExfil notices in notice.log as itself or
counted in an aggregate (notice/aggregate.py); then SIGTERM ends it with exit 0 and every notice raised is
written or counted. Traffic crosses only the lab's veth pair (tcpreplay under `timeout`, the loop count fixed);
the frames' MAC address is not the sensor host's, so the host does not answer them.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from testkit import synthmix
from testkit.netlab import PEER_IF, SENSOR_IP, Lab, Sensor, launch_ready, missing_prerequisite, wait_for

_MISSING = missing_prerequisite("tcpreplay")
pytestmark = [pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING)), pytest.mark.timeout(240)]

RATE = 20_000  # packets/s
SENT = 300_000  # 15 s at RATE
TOLD_WITHIN = 2.0  # seconds after the end of sending
CONFIG = "journald:\n  enabled: true\nstats:\n  interval: 1\n"
# shape: (one-packet flows from spoofed sources, 500 random bytes each: a DataExfil each; a spoofed destination per
# flow; sensor workers)
SHAPES = {"one victim": (20_000, False, 1), "no host repeated": (20_000, True, 1),
          "distinct sources": (SENT, False, 1), "distinct sources, 2 workers": (SENT, True, 2)}
DATA_EXFIL = "ICMP::ICMP_DataExfil"


def aggregated(notice: dict) -> bool:
    return str(notice.get("sub", "")).startswith("Aggregated:")


def storm_told(records: list[dict]) -> int:
    """The storm's DataExfil notices notice.log tells: written as themselves, or counted in an aggregate (the lab
    sends nothing else that raises one)."""
    told = 0
    for n in records:
        if n["note"] == DATA_EXFIL:
            told += int(n["n"]) if aggregated(n) else 1
    return told


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_notice_storm_at_20000_packets_per_second_loses_nothing_and_is_told_within_2_s(
        shape: str, lab: Lab, tmp_path: Path, sensors: list[Sensor]) -> None:
    flows, pairs, workers = SHAPES[shape]
    pcap = tmp_path / "storm.pcap"
    plan = synthmix.build_storm_plan(flows, 1, target_ip=SENSOR_IP, pairs=pairs)
    written = synthmix.write_pcap(pcap, plan, None)
    assert written.packets == flows
    sensor = launch_ready(lab, tmp_path, sensors, CONFIG + f"capture:\n  workers: {workers}\n")

    argv = ["ip", "netns", "exec", lab.peer_ns, "timeout", "-k", "5", "60", "tcpreplay", f"--intf1={PEER_IF}",
            f"--pps={RATE}", f"--loop={SENT // flows}", "--preload-pcap", str(pcap)]
    began = time.monotonic()
    told_at = None  # seconds after the start of sending when notice.log told the whole storm
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as replay:
        while replay.poll() is None and time.monotonic() - began < 90:
            if told_at is None and storm_told(sensor.notices()) >= flows:
                told_at = time.monotonic() - began
            time.sleep(0.1)
        if replay.poll() is None:
            replay.kill()
        out, err = replay.communicate(timeout=10)
    ended = time.monotonic()
    sent = re.search(r"Successful packets:\s+(\d+)", out)
    assert replay.returncode == 0 and sent is not None, (replay.returncode, out[-1000:], err[-1000:])
    assert int(sent.group(1)) == SENT, out[-1000:]

    left = TOLD_WITHIN - (time.monotonic() - ended)
    told_in_time = wait_for(lambda: storm_told(sensor.notices()) >= flows, left, interval=0.05)
    told_after = time.monotonic() - ended
    told_then = storm_told(sensor.notices())
    # everything read processed, by the stats records (one a second): how long after the end of sending
    processed = wait_for(lambda: any(r["packets_read"] >= SENT and r["decode"]["frames"] >= SENT
                                     for r in sensor.stats_records()[-2:]), 30)
    processed_after = time.monotonic() - ended
    live = sensor.stats_records()[-1]

    code, _, err = sensor.stop()
    final = sensor.stats_records()[-1]
    records = sensor.notices()
    told = f"{told_at:.1f} s after the start" if told_at is not None else f"{told_after:.2f} s after the end"
    print(f"\nsent {SENT:,} at {RATE:,}/s in {ended - began:.1f} s; storm told {told_then:,}/{flows:,} "
          f"{told} of sending; all read processed by {processed_after:.1f} s after its end "
          f"(1-s stats records); final: read {final['packets_read']:,}, decoded {final['decode']['frames']:,}, "
          f"kernel {final['kernel_dropped']}, queue {final['queue_dropped']}, shutdown {final['shutdown_dropped']} "
          f"dropped; notices written {final['notices']:,}, folded {final.get('notices_folded')}, "
          f"raised {final['detect']['notices']:,}; detection lag at most {final.get('detection_lag_max')} s")
    assert code == 0, err[-2000:]
    assert told_in_time, f"{told_then:,} of the storm's {flows:,} DataExfil told {told_after:.2f} s after the end"
    assert processed, live
    # no loss: not in the kernel, not in the queue, not at the stop; every frame sent was read, every frame read decoded
    for key in ("kernel_dropped", "queue_dropped", "queue_dropped_batches", "shutdown_dropped"):
        assert final[key] == 0, (key, final)
    assert final["packets_read"] >= SENT and final["decode"]["frames"] == final["packets_read"], final
    assert final["decode"]["icmp_types"].get("v4:8", 0) >= SENT, final["decode"]
    # the storm was folded (not 20,000 lines), and every notice raised is written or counted in an aggregate
    assert storm_told(records) == flows
    assert sum(1 for n in records if n["note"] == DATA_EXFIL and not aggregated(n)) < flows // 100
    assert final["notices"] == len(records)
    assert final["detect"]["notices"] == final["notices"] - final["notices_aggregated"] + final["notices_folded"], final
