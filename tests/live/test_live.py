"""Live capture end to end, between network namespaces built by the tests (needs root).

Exfiltration is generated with hping3 in ICMP file mode from the peer namespace to the
sensor host, whose kernel echoes every chunk back; benign default pings come from a
second address of the peer. Every traffic loop is bounded in count and time, and the
namespaces are removed afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from icmpsensor.config.schema import DetectionConfig
from testkit.netlab import (
    BENIGN_IP,
    PEER_IP,
    SENSOR_IF,
    SENSOR_IP,
    Lab,
    Sensor,
    launch_ready,
    missing_prerequisite,
    wait_for,
)
from testkit.paths import REPO

pytestmark = pytest.mark.skipif(missing_prerequisite() is not None, reason=str(missing_prerequisite()))

EXFIL_NOTES = {("ICMP::ICMP_DataExfil", PEER_IP, SENSOR_IP), ("ICMP::ICMP_AsymPayloadFlow", PEER_IP, SENSOR_IP)}
SUMMARY = ("ICMP::ICMP_ExfilSummary", PEER_IP, SENSOR_IP)

FAST_EXPIRY = """
detection:
  idle_timeout: 2
stats:
  interval: 1
"""


def launch(lab: Lab, tmp_path: Path, sensors: list[Sensor], config: str = FAST_EXPIRY, **kw: object) -> Sensor:
    return launch_ready(lab, tmp_path, sensors, config, **kw)


def note_set(notices: list[dict[str, object]]) -> set[tuple[object, object, object]]:
    return {(n["note"], n["src"], n["dst"]) for n in notices}


def test_hping3_exfil_is_reported_in_notice_log_and_journald_and_benign_pings_are_not(
        lab: Lab, tmp_path: Path, secret: Path, sensors: list[Sensor]) -> None:
    sensor = launch(lab, tmp_path, sensors)
    lab.benign_pings(count=30)
    lab.hping3_exfil(secret, count=60, size=500, interval_us=3000)  # ~330 packets/s, 30 kB
    # DataExfil fires in real time; idle_timeout is 2 s: the flow's summary must appear on wall-clock
    # expiry, without more traffic.
    assert wait_for(lambda: note_set(sensor.notices()) >= EXFIL_NOTES | {SUMMARY}, 20), sensor.notices()
    notices = sensor.notices()
    assert all(n["src"] != BENIGN_IP and n["dst"] != BENIGN_IP for n in notices)
    summary = next(n for n in notices if n["note"] == "ICMP::ICMP_ExfilSummary")
    assert summary["n"] == 60
    assert "Bytes sent: 30000" in str(summary["sub"])
    exfil = next(n for n in notices if n["note"] == "ICMP::ICMP_DataExfil")
    entries = sensor.journal("NOTE=ICMP::ICMP_DataExfil")
    assert len(entries) == 1, entries
    entry = entries[0]
    assert entry["MESSAGE"] == exfil["msg"]
    assert entry["SRC"] == PEER_IP and entry["DST"] == SENSOR_IP and entry["UID"] == exfil["uid"]
    assert entry["PRIORITY"] == "4" and entry["MESSAGE_ID"] == "461816d2d78c4b66b4d0abfe1a4d1ca1"
    assert int(entry["NOVEL_BYTES"]) > DetectionConfig().novel_bytes_threshold
    (final,) = sensor.journal("NOTE=ICMP::ICMP_ExfilSummary")
    assert final["N"] == "60" and final["BYTES_SENT"] == "30000" and final["UID"] == exfil["uid"]
    assert final["MESSAGE_ID"] == "f226f48e8cf146909fbdb8aa6f63dbc8" and final["PRIORITY"] == "5"
    assert float(final["START"]) <= float(final["END"])
    assert "BYTES_RECEIVED" in final
    assert not [e for e in sensor.journal() if BENIGN_IP in e.get("MESSAGE", "") and "NOTE" in e]
    # Stats records go to stats.log and journald every second.
    assert wait_for(lambda: (sensor.log_dir / "stats.log").exists(), 5)
    code, _, err = sensor.stop()
    assert code == 0, err
    stats = [line for line in (sensor.log_dir / "stats.log").read_text().splitlines() if line]
    last = json.loads(stats[-1])
    assert last["packets_read"] >= 60 + 60 + 30 * 2, last
    assert last["notices"] >= 2 and last["queue_dropped"] == 0
    for key in ("packets_received", "kernel_dropped", "interface_dropped", "queue_dropped", "decode", "flows",
                "evictions"):
        assert key in last


def test_sigterm_flushes_open_flows_and_exits_within_5s(lab: Lab, tmp_path: Path, secret: Path,
                                                       sensors: list[Sensor]) -> None:
    config = "detection:\n  alerting: flow_end\n  idle_timeout: 300\n"
    sensor = launch(lab, tmp_path, sensors, config=config)
    lab.hping3_exfil(secret, count=40, size=200, interval_us=2000)
    time.sleep(0.5)
    assert sensor.notices() == []  # nothing is due yet: the flow is still open
    code, took, err = sensor.stop()
    assert code == 0, err
    assert took < 5.0
    assert note_set(sensor.notices()) >= EXFIL_NOTES


def test_sighup_rejects_a_broken_config_and_applies_a_good_one(lab: Lab, tmp_path: Path, secret: Path,
                                                               sensors: list[Sensor]) -> None:
    # The original profile's raw-byte thresholds make the effect of a reload easy to see.
    original = "detection:\n  profile: original\n  reply_pairing: matched\n  idle_timeout: 1\n"
    sensor = launch(lab, tmp_path, sensors, config=original)
    cfg = sensor.workdir / "icmpsensor.yaml"
    # A small transfer (5 x 50 bytes, 4 changes) stays below the default thresholds.
    lab.hping3_exfil(secret, count=5, size=50, interval_us=2000)
    time.sleep(2.5)
    assert sensor.notices() == []
    cfg.write_text("detection:\n  idle_timeout: [oops\n")
    sensor.signal(signal.SIGHUP)
    time.sleep(1.0)
    assert sensor.proc.poll() is None, "a broken config must not stop the daemon"
    errors = [e["MESSAGE"] for e in sensor.journal("MESSAGE_ID=90dbe942ae0a47af9d963dfd74b9fc32")]
    assert any("reload rejected" in m and "YAML syntax error" in m for m in errors), errors
    cfg.write_text(original + "  exfil_bytes_threshold: 100\n  changed_requests_threshold: 2\n"
                   "capture:\n  snaplen: 9216\n")
    sensor.signal(signal.SIGHUP)
    assert wait_for(lambda: bool(sensor.journal("MESSAGE_ID=343714c842264f38a2a36e60040a11c0")), 5)
    reload_msg = sensor.journal("MESSAGE_ID=343714c842264f38a2a36e60040a11c0")[-1]["MESSAGE"]
    assert "capture.snaplen" in reload_msg and "restart" in reload_msg
    lab.hping3_exfil(secret, count=5, size=50, interval_us=2000)
    assert wait_for(lambda: ("ICMP::ICMP_DataExfil", PEER_IP, SENSOR_IP) in note_set(sensor.notices()), 10)
    code, _, err = sensor.stop()
    assert code == 0, err


def test_a_real_time_notice_is_written_within_a_second_of_the_packet(lab: Lab, tmp_path: Path, secret: Path,
                                                                     sensors: list[Sensor]) -> None:
    sensor = launch(lab, tmp_path, sensors, config="detection:\n  idle_timeout: 30\n")
    # 200-byte chunks one second apart: the 2nd packet takes the flow past 256 novel bytes.
    sender = subprocess.Popen(["ip", "netns", "exec", lab.peer_ns, "timeout", "30", "hping3", "-1", "-E", str(secret),
                               "-d", "200", "-u", "-c", "4", "-i", "1", "-q", SENSOR_IP],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen_at = None
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and seen_at is None:
            if any(n["note"] == "ICMP::ICMP_DataExfil" for n in sensor.notices()):
                seen_at = time.time()
            time.sleep(0.02)
    finally:
        sender.wait(timeout=40)
    assert seen_at is not None, sensor.notices()
    exfil = next(n for n in sensor.notices() if n["note"] == "ICMP::ICMP_DataExfil")
    latency = seen_at - float(exfil["ts"])  # ts: the capture time of the packet that crossed the threshold
    assert 0 <= latency < 1.0, latency
    assert exfil["n"] == DetectionConfig().novel_bytes_threshold // 200 + 1
    code, _, err = sensor.stop()
    assert code == 0, err


def test_without_journald_notices_still_reach_notice_log_with_one_warning(lab: Lab, tmp_path: Path,
                                                                         secret: Path,
                                                                         sensors: list[Sensor]) -> None:
    sensor = launch(lab, tmp_path, sensors, journald=False)
    lab.hping3_exfil(secret, count=20, size=200, interval_us=2000)
    assert wait_for(lambda: note_set(sensor.notices()) >= EXFIL_NOTES, 15)
    code, _, err = sensor.stop()
    assert code == 0
    warnings = [line for line in err.splitlines() if "journald socket" in line]
    assert len(warnings) == 1 and "not found" in warnings[0]
    assert "Traceback" not in err


def _sensor_cmd(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return lab.in_sensor(sys.executable, "-m", "icmpsensor", *args, check=False, timeout=30)


def test_no_such_interface_exits_66_with_one_line(lab: Lab, tmp_path: Path) -> None:
    result = _sensor_cmd(lab, "-i", "nosuch0", "--log-dir", str(tmp_path))
    assert result.returncode == 66, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "icmpsensor: error: interface nosuch0: cannot activate capture: no such device")


def test_capture_without_permission_exits_77(lab: Lab) -> None:
    log_dir = tempfile.mkdtemp(prefix="icmpsensor-nobody-")  # outside pytest's root-only tmp tree
    try:
        os.chmod(log_dir, 0o777)
        result = lab.in_sensor("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                               "--inh-caps=-all", sys.executable, "-m", "icmpsensor", "-i", SENSOR_IF,
                               "--log-dir", log_dir, check=False, timeout=30)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    assert result.returncode == 77, result.stderr
    assert "permission denied" in result.stderr and "CAP_NET_RAW" in result.stderr


def test_missing_log_dir_exits_73(lab: Lab, tmp_path: Path) -> None:
    result = _sensor_cmd(lab, "-i", SENSOR_IF, "--log-dir", str(tmp_path / "missing"))
    assert result.returncode == 73, result.stderr
    assert "log directory" in result.stderr and str(tmp_path / "missing") in result.stderr


def test_read_only_log_dir_exits_73(lab: Lab, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --make-rprivate / && mount -t tmpfs -o ro tmpfs {ro} && "
         f"exec nsenter --net=/run/netns/{lab.sensor_ns} {sys.executable} -m icmpsensor -i {SENSOR_IF} "
         f"--log-dir {ro}"],
        capture_output=True, text=True, timeout=30, cwd=REPO)
    assert result.returncode == 73, result.stderr
    assert str(ro) in result.stderr


def test_bad_bpf_filter_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("capture:\n  interface: lo\n  bpf_filter: icmp and and\n")
    result = subprocess.run([sys.executable, "-m", "icmpsensor", "-c", str(cfg), "--check-config"],
                            capture_output=True, text=True, timeout=30, cwd=REPO)
    assert result.returncode == 78
    assert f"{cfg}:3: capture.bpf_filter: filter 'icmp and and' does not compile" in result.stderr


def test_disk_full_notices_reach_journald_and_are_written_when_space_returns(
        lab: Lab, tmp_path: Path, secret: Path, sensors: list[Sensor]) -> None:
    sensor = launch(lab, tmp_path, sensors, config="detection:\n  idle_timeout: 1\nstats:\n  interval: 0\n",
                    log_tmpfs_size="256k")
    filler = sensor.log_dir / "filler"
    sensor.in_mount_ns("sh", "-c", f"dd if=/dev/zero of={filler} bs=4k 2>/dev/null; sync")
    lab.hping3_exfil(secret, count=20, size=200, interval_us=2000)
    # The notices still reach journald, and the write error is logged there.
    assert wait_for(lambda: len(sensor.journal("NOTE=ICMP::ICMP_DataExfil")) == 1, 15)
    errors = [e["MESSAGE"] for e in sensor.journal("MESSAGE_ID=90dbe942ae0a47af9d963dfd74b9fc32")]
    assert any("cannot write notice" in m for m in errors), errors
    notice_log = str(sensor.log_dir / "notice.log")
    assert sensor.in_mount_ns("cat", notice_log).stdout == ""
    # Space comes back: the held notices are written, whole and in order, within a tick or two.
    sensor.in_mount_ns("rm", "-f", str(filler))
    assert wait_for(lambda: sensor.in_mount_ns("cat", notice_log).stdout.count("\n") >= 2, 10)
    lines = sensor.in_mount_ns("cat", notice_log).stdout.splitlines()
    notices = [json.loads(line) for line in lines]
    assert note_set(notices) >= EXFIL_NOTES
    code, _, err = sensor.stop()
    assert code == 0, err

