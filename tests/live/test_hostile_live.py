"""Hostile load and bad days, live, between network namespaces (issue 11): a SIGTERM during a storm of
alerted flows, a link flap, a reload with a hostile config, a broken stdout or stderr. Every traffic loop is
bounded in count and time; traffic crosses only the lab's veth pair."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from icmpsensor.output.journal import MSGID_ERROR
from testkit.netlab import (
    PEER_IF,
    SENSOR_IF,
    SENSOR_IP,
    Lab,
    Sensor,
    launch_ready,
    missing_prerequisite,
    storm_capture,
    wait_for,
)

pytestmark = pytest.mark.skipif(missing_prerequisite() is not None, reason=str(missing_prerequisite()))

F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Python 3.10+ names it; spelled out for the linters)
STORM_FLOWS = 30_000  # one-packet flows from spoofed sources, each with 500 novel bytes: an alert each
QUIET = "journald:\n  enabled: true\nstats:\n  interval: 1\n"


def last_stats(sensor: Sensor) -> dict[str, object]:
    records = sensor.stats_records()
    return records[-1] if records else {}


def raised(sensor: Sensor) -> int:
    """The notices the detector raised, by the last stats record (a storm's are mostly folded)."""
    detect = last_stats(sensor).get("detect", {})
    return int(detect.get("notices", 0)) if isinstance(detect, dict) else 0


def notice_lines(sensor: Sensor) -> list[str]:
    path = sensor.log_dir / "notice.log"
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize(("workers", "aggregation"), [(1, "on"), (2, "on"), (1, "off")])
def test_sigterm_in_a_storm_of_alerted_flows_ends_within_5_s_and_writes_every_notice_raised(
        lab: Lab, tmp_path: Path, sensors: list[Sensor], workers: int, aggregation: str) -> None:
    """Aggregation off (`aggregate_max_notices: 0`): the open flows' summaries are written one by one until the
    stop's flush deadline, and folded after it (they took the stop past 5 s)."""
    storm = storm_capture(tmp_path / "storm.pcap", STORM_FLOWS)
    config = QUIET + f"capture:\n  workers: {workers}\n  buffer_size: 268435456\n  queue_batches: 100000\n"
    config += "detection:\n  aggregate_max_notices: 0\n" if aggregation == "off" else ""
    sensor = launch_ready(lab, tmp_path, sensors, config)
    lab.in_peer("timeout", "60", "tcpreplay", "-q", "--topspeed", "-i", PEER_IF, str(storm), timeout=90)
    assert wait_for(lambda: raised(sensor) > 200, 20), "the storm raised no notices"
    began = time.monotonic()
    sensor.signal(signal.SIGTERM)  # with a backlog of queued packets
    assert wait_for(lambda: sensor.proc.poll() is not None, 30, interval=0.02)
    took = time.monotonic() - began
    said = [entry["MESSAGE"] for entry in sensor.journal() if entry.get("MESSAGE_ID") == MSGID_ERROR]
    code, _, err = sensor.stop()
    assert code == 0, (err[-2000:], said)
    assert took <= 5.0, f"SIGTERM took {took:.1f} s"
    stats = last_stats(sensor)
    lines = notice_lines(sensor)
    assert all(line.startswith("{") and line.endswith("}") for line in lines)  # whole lines only
    # every notice the detector raised is in notice.log, as itself or counted in an aggregate (the storm
    # towards one host is folded: notice/aggregate.py); every packet read was processed or counted
    assert stats["notices"] == len(lines), stats
    written = stats["notices"] - stats["notices_aggregated"]  # type: ignore[operator]
    assert stats["detect"]["notices"] == written + stats["notices_folded"], stats  # type: ignore[index]
    records = [json.loads(line) for line in lines]
    folded = sum(r["n"] for r in records if r["sub"].startswith("Aggregated:"))
    assert folded == stats["notices_folded"], stats
    decoded = stats["decode"]["frames"]  # type: ignore[index]
    assert decoded + stats["shutdown_dropped"] + stats["queue_dropped"] == stats["packets_read"], stats
    print(f"\n{workers} worker(s): SIGTERM to exit {took:.2f} s, {len(lines)} notices, "
          f"{stats['shutdown_dropped']} packets dropped at the stop deadline of {stats['packets_read']} read")


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_with_the_evidence_writer_loaded_ends_within_5_s_and_counts_what_it_did_not_write(
        lab: Lab, tmp_path: Path, sensors: list[Sensor], workers: int) -> None:
    """Every alerted flow of the storm gets evidence files (no cap per minute): the writer thread has work
    queued at the stop. The stop still ends within 5 s; every notice either names a file that was written, or
    one counted as not written by the deadline, or is counted as left without one (queue full, live)."""
    storm = storm_capture(tmp_path / "storm.pcap", STORM_FLOWS)
    config = (QUIET + f"capture:\n  workers: {workers}\n  buffer_size: 268435456\n  queue_batches: 100000\n"
              "output:\n  evidence:\n    max_files_per_minute: 1000000\n"
              "detection:\n  aggregate_max_notices: 0\n")  # no notice folded: evidence for every alerted flow
    sensor = launch_ready(lab, tmp_path, sensors, config)
    lab.in_peer("timeout", "60", "tcpreplay", "-q", "--topspeed", "-i", PEER_IF, str(storm), timeout=90)
    assert wait_for(lambda: raised(sensor) > 200, 20), "the storm raised no notices"
    began = time.monotonic()
    sensor.signal(signal.SIGTERM)
    assert wait_for(lambda: sensor.proc.poll() is not None, 30, interval=0.02)
    took = time.monotonic() - began
    code, _, err = sensor.stop()
    assert code == 0, err[-2000:]
    assert took <= 5.0, f"SIGTERM took {took:.1f} s"
    evidence = last_stats(sensor)["evidence"]
    notices = [json.loads(line) for line in notice_lines(sensor)]
    named = {str(n["evidence"]) for n in notices if "evidence" in n}
    assert evidence["errors"] == 0, evidence  # type: ignore[index]
    assert len(named) == evidence["files"] + evidence["dropped_shutdown_files"], evidence  # type: ignore[index]
    without = sum(1 for n in notices if "evidence" not in n)
    # an aggregate tells notices folded past the stop's flush deadline (none of them has evidence of its own)
    aggregates = sum(1 for n in notices if str(n["sub"]).startswith("Aggregated:"))
    assert without == evidence["dropped_rate"] + evidence["dropped_queue_files"] + aggregates, evidence  # type: ignore[index]
    on_disk = {str(p) for p in (sensor.log_dir / "evidence").glob("*.pcap")}
    assert on_disk <= named and len(on_disk) <= evidence["files"]  # type: ignore[index]
    print(f"\n{workers} worker(s): SIGTERM to exit {took:.2f} s, {len(notices)} notices, evidence {evidence}")


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_a_flood_accounts_for_every_packet_the_kernel_counted(
        lab: Lab, tmp_path: Path, sensors: list[Sensor], workers: int) -> None:
    """SIGTERM while a flood still arrives: every packet the kernel counted as received (`packets_received`,
    libpcap's ps_recv) is read or counted dropped, in the final record and in each worker's. Before: the frames in
    the ring's last block (not yet retired when the stop's drain ended) and, with workers, every frame the kernel
    delivered to the sockets held open until all workers drained, were in `packets_received` and in no other
    counter (~83,000 in a flood's last 1.5 s)."""
    storm = storm_capture(tmp_path / "storm.pcap", 5_000)
    config = QUIET + f"capture:\n  workers: {workers}\n"
    sensor = launch_ready(lab, tmp_path, sensors, config)
    argv = ["ip", "netns", "exec", lab.peer_ns, "timeout", "-k", "5", "30", "tcpreplay", "-q", "--pps=40000",
            "--loop=40", f"--intf1={PEER_IF}", "--preload-pcap", str(storm)]  # 200,000 frames in ~5 s
    flood = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: int(last_stats(sensor).get("packets_read", 0)) > 10_000, 20), last_stats(sensor)
        code, took, err = sensor.stop()
        flood_code = flood.wait(timeout=60)
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.wait(timeout=10)
    assert code == 0, err[-2000:]
    assert flood_code == 0, flood.stderr.read() if flood.stderr else ""
    final = last_stats(sensor)
    parts = final["workers"] if workers > 1 else [final]
    assert isinstance(parts, list) and len(parts) == workers, final
    print(f"\n{workers} worker(s): stop {took:.2f} s; " + "; ".join(
        f"received {p['packets_received']:,} read {p['packets_read']:,} kernel dropped {p['kernel_dropped']:,} "
        f"queue {p['queue_dropped']:,} shutdown {p['shutdown_dropped']:,}" for p in parts))
    for part in parts:
        assert part["packets_received"] == part["packets_read"] + part["kernel_dropped"], part
    assert final["packets_received"] == final["packets_read"] + final["kernel_dropped"], final
    assert final["packets_read"] == (final["decode"]["frames"] + final["queue_dropped"]
                                     + final["shutdown_dropped"]), final


def exfil(lab: Lab, count: int, payload_pattern: str) -> None:
    """`count` echo requests of 300 bytes whose content changes (ping -p with a counter in the pattern)."""
    for i in range(count):
        lab.in_peer("ping", "-q", "-c", "1", "-s", "300", "-p", f"{payload_pattern}{i:04x}", "-W", "1", SENSOR_IP,
                    check=False)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_link_flap_is_ridden_through_with_the_flows_kept(lab: Lab, tmp_path: Path, sensors: list[Sensor],
                                                           workers: int) -> None:
    config = QUIET + f"capture:\n  workers: {workers}\ndetection:\n  idle_timeout: 60\n"
    sensor = launch_ready(lab, tmp_path, sensors, config)
    lab.hping3_exfil(tmp_path / "secret.bin" if (tmp_path / "secret.bin").exists() else _secret(tmp_path), 20)
    assert wait_for(lambda: any("DataExfil" in line for line in notice_lines(sensor)), 10)
    lab.in_sensor("ip", "link", "set", SENSOR_IF, "down")
    assert wait_for(lambda: last_stats(sensor).get("capture_waiting", 0) > 0, 10), "not waiting for the interface"
    time.sleep(2)
    assert sensor.proc.poll() is None, "the sensor ended on a link flap"
    lab.in_sensor("ip", "link", "set", SENSOR_IF, "up")
    assert wait_for(lambda: last_stats(sensor).get("capture_waiting", 1) == 0, 30), "the capture did not resume"
    assert wait_for(lambda: lab.in_peer("ping", "-c", "1", "-W", "1", SENSOR_IP, check=False).returncode == 0, 15)
    lab.hping3_exfil(tmp_path / "secret.bin", 20)
    before = last_stats(sensor)["packets_read"]
    assert wait_for(lambda: last_stats(sensor)["packets_read"] > before, 10)  # type: ignore[operator]
    journal = " ".join(entry["MESSAGE"] for entry in sensor.journal())
    code, _, err = sensor.stop()
    assert code == 0, err[-2000:]
    exfil_flows = {json.loads(line)["uid"] for line in notice_lines(sensor) if "DataExfil" in line}
    assert len(exfil_flows) == 1, ("the flow across the flap was split (state lost)", notice_lines(sensor))
    summary = [json.loads(line) for line in notice_lines(sensor) if "ExfilSummary" in line]
    assert summary and summary[0]["uid"] in exfil_flows and summary[0]["n"] > 20  # both halves, one flow
    assert "went down; flows kept" in journal and "capture resumed" in journal


@pytest.mark.parametrize("workers", [1, 2])
def test_an_interface_deleted_and_made_again_is_captured_again(lab: Lab, tmp_path: Path, sensors: list[Sensor],
                                                              workers: int) -> None:
    """A driver reset or a re-plugged NIC: a new interface of the same name. The old socket is bound to the deleted
    one and would never see a packet again, while the name's flags say up."""
    sensor = launch_ready(lab, tmp_path, sensors, QUIET + f"capture:\n  workers: {workers}\n")
    lab.unplug()
    assert wait_for(lambda: last_stats(sensor).get("capture_waiting", 0) > 0, 10), "the interface's loss not seen"
    lab.plug()
    assert wait_for(lambda: lab.in_peer("ping", "-c", "1", "-W", "1", SENSOR_IP, check=False).returncode == 0, 15)
    assert wait_for(lambda: last_stats(sensor).get("capture_waiting", 1) == 0, 20), "the capture did not resume"
    lab.hping3_exfil(_secret(tmp_path), 20)
    assert wait_for(lambda: any("DataExfil" in line for line in notice_lines(sensor)), 15), \
        "blind after the interface was made again"
    code, _, err = sensor.stop()
    assert code == 0, err[-2000:]
    # the workers rejoin their fanout group: each frame read by one of them (red team, 2026-12-08: each worker
    # reopened outside the group and read every frame, every notice twice)
    exfil = [line for line in notice_lines(sensor) if "DataExfil" in line]
    assert len(exfil) == 1, exfil


def _secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.bin"
    path.write_bytes(b"".join(f"record {i:05d}: account, token {i * 7919:08x}\n".encode() for i in range(400)))
    return path


def test_a_capture_not_back_within_reopen_timeout_ends_with_66_and_flushes(lab: Lab, tmp_path: Path,
                                                                            sensors: list[Sensor]) -> None:
    sensor = launch_ready(lab, tmp_path, sensors, QUIET + "capture:\n  reopen_timeout: 2\n")
    lab.hping3_exfil(_secret(tmp_path), 20)
    assert wait_for(lambda: any("DataExfil" in line for line in notice_lines(sensor)), 10)
    lab.in_sensor("ip", "link", "set", SENSOR_IF, "down")
    try:
        assert wait_for(lambda: sensor.proc.poll() is not None, 20), "the sensor kept waiting"
    finally:
        lab.in_sensor("ip", "link", "set", SENSOR_IF, "up")
    code, _, err = sensor.stop()
    assert code == 66, err[-2000:]
    assert any("ExfilSummary" in line for line in notice_lines(sensor))  # the open flow was flushed


@pytest.mark.parametrize("workers", [1, 2])
def test_a_reload_with_a_hostile_config_keeps_the_daemon_and_its_flows(lab: Lab, tmp_path: Path,
                                                                        sensors: list[Sensor], workers: int) -> None:
    sensor = launch_ready(lab, tmp_path, sensors, QUIET + f"capture:\n  workers: {workers}\n")
    lab.hping3_exfil(_secret(tmp_path), 20)
    assert wait_for(lambda: any("DataExfil" in line for line in notice_lines(sensor)), 10)
    config = sensor.workdir / "icmpsensor.yaml"
    for hostile in ("detection:\n  idle_timeout: " + "9" * 330 + "\n", "stats:\n  interval: -" + "9" * 330 + "\n",
                    "\0\xff\xfe", "a: [" * 5000):
        config.write_bytes(hostile.encode("utf-8", "surrogateescape") if isinstance(hostile, str) else hostile)
        sensor.signal(signal.SIGHUP)
        time.sleep(0.5)
        assert sensor.proc.poll() is None, f"a reload of {hostile[:30]!r} ended the daemon"
    rejected = [e for e in sensor.journal() if "reload rejected" in e.get("MESSAGE", "")]
    assert len(rejected) == 4
    code, _, err = sensor.stop()
    assert code == 0, err[-2000:]
    assert any("ExfilSummary" in line for line in notice_lines(sensor))


@pytest.mark.parametrize("workers", [1, 2])
def test_signals_the_daemon_does_not_use_are_logged_and_end_nothing(lab: Lab, tmp_path: Path, sensors: list[Sensor],
                                                                    workers: int) -> None:
    """SIGUSR1, SIGUSR2, SIGALRM, a real-time signal, to the daemon and its workers (a stray `kill -USR1`, a
    postrotate hook written for another daemon): each ended the daemon at once (exit 138 for SIGUSR1), its open
    flows' notices and last stats record never written (red team, 2026-12-08). Now each is logged and ignored."""
    sensor = launch_ready(lab, tmp_path, sensors, QUIET + f"capture:\n  workers: {workers}\n")
    lab.hping3_exfil(_secret(tmp_path), 20)
    assert wait_for(lambda: any("DataExfil" in line for line in notice_lines(sensor)), 10)
    children = [int(pid) for pid in Path(f"/proc/{sensor.proc.pid}/task/{sensor.proc.pid}/children").read_text()
                .split() if int(pid) != sensor.journald_pid()]  # the lab's journald was started before the exec
    assert len(children) == (workers if workers > 1 else 0)
    for signum in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGRTMIN + 2):
        for pid in (sensor.proc.pid, *children):
            os.kill(pid, signum)
        time.sleep(0.2)
    time.sleep(0.5)
    assert sensor.proc.poll() is None, "a signal the daemon does not use ended it"
    assert all(Path(f"/proc/{pid}").exists() for pid in children), "a worker ended"
    lab.hping3_exfil(_secret(tmp_path), 20, src="10.231.0.3")
    assert wait_for(lambda: sum("DataExfil" in line for line in notice_lines(sensor)) == 2, 10)
    ignored = " ".join(e["MESSAGE"] for e in sensor.journal() if "ignored" in e.get("MESSAGE", ""))
    code, _, err = sensor.stop()
    assert code == 0, err[-2000:]
    assert sum("ExfilSummary" in line for line in notice_lines(sensor)) == 2  # both open flows flushed at the stop
    for name in ("SIGUSR1", "SIGUSR2", "SIGALRM", "SIGRTMIN+2"):
        assert f"{name} ignored" in ignored, ignored


def test_stdout_closed_under_a_live_daemon_ends_nothing(lab: Lab, tmp_path: Path, sensors: list[Sensor]) -> None:
    sensor = launch_ready(lab, tmp_path, sensors, QUIET, extra_args=("--stdout",))
    lab.hping3_exfil(_secret(tmp_path), 20)
    assert sensor.proc.stdout is not None
    assert sensor.proc.stdout.readline().startswith("{")
    sensor.proc.stdout.close()  # as `| head -1` does
    sensor.proc.stdout = None
    lab.hping3_exfil(_secret(tmp_path), 20, src="10.231.0.3")
    assert wait_for(lambda: len(notice_lines(sensor)) >= 4, 10)
    assert sensor.proc.poll() is None, "a closed stdout ended the daemon"
    code, _, err = sensor.stop()
    assert code == 0, err[-2000:]
    assert {json.loads(line)["src"] for line in notice_lines(sensor)} >= {"10.231.0.2", "10.231.0.3"}


def goes_on_then_stops(sensor: Sensor) -> tuple[bool, bool, float]:
    """Whether two more stats records come (within 6 s), whether SIGTERM then ends the sensor (within 10 s), and
    how long that took."""
    records = len(sensor.stats_records())
    went_on = wait_for(lambda: len(sensor.stats_records()) >= records + 2, 6)
    began = time.monotonic()
    sensor.signal(signal.SIGTERM)
    stopped = wait_for(lambda: sensor.proc.poll() is not None, 10, interval=0.02)
    return went_on, stopped, time.monotonic() - began


def test_a_stdout_no_one_reads_stops_neither_detection_nor_the_stop(lab: Lab, tmp_path: Path,
                                                                    sensors: list[Sensor]) -> None:
    """`--stdout` into a reader that stops reading (a paused pager, a stuck shipper): the pipe fills after ~64 KB.
    Measured before stdout had a thread of its own: notice.log stopped at 49 of 6,000 notices, no stats record was
    written, and SIGTERM did not end the sensor (it was blocked in write()). Now the lines wait in a bounded queue,
    the rest are counted (`stdout_dropped`), and everything else goes on."""
    storm = storm_capture(tmp_path / "storm.pcap", 3_000)  # 6,000 notices with aggregation off
    config = QUIET + "detection:\n  aggregate_interval: 0\n  idle_timeout: 2\n"
    sensor = launch_ready(lab, tmp_path, sensors, config, extra_args=("--stdout",))  # its stdout: never read
    lab.in_peer("timeout", "60", "tcpreplay", "-q", "--pps=3000", "-i", PEER_IF, str(storm), timeout=90)
    written = wait_for(lambda: len(notice_lines(sensor)) >= 6_000, 15)
    went_on, stopped, took = goes_on_then_stops(sensor)
    code, _, err = sensor.stop()  # reads the pipe: a sensor still blocked in write() would end now
    final = last_stats(sensor)
    print(f"\nnotice.log {len(notice_lines(sensor)):,} lines; stats went on: {went_on}; stopped by SIGTERM: {stopped} "
          f"in {took:.2f} s; stdout dropped {final.get('stdout_dropped')}")
    assert written, len(notice_lines(sensor))
    assert went_on and stopped and took < 5.0 and code == 0, (went_on, stopped, took, code, err[-2000:])
    assert int(final["stdout_dropped"]) > 0  # type: ignore[call-overload]


def test_a_stderr_no_one_reads_without_journald_stops_neither_detection_nor_the_stop(
        lab: Lab, tmp_path: Path, sensors: list[Sensor]) -> None:
    """Without journald (`journald.enabled: false`, or a unit whose journald stalls its stdout stream) the
    operational messages go to stderr: start, reloads, a stats line every interval. A stderr no one reads (a 4 KB
    pipe here) filled up and the next message blocked the daemon: measured before stderr had a thread of its
    own, no notice was written, the stats records stopped and SIGTERM did not end it. Now the messages wait in a
    queue (past 1,000 they are dropped and counted, `stderr_dropped`: tests/unit/test_stdout.py) and everything
    else goes on."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, F_SETPIPE_SZ, 4096)
    try:
        with os.fdopen(write_end, "w") as stderr:
            sensor = launch_ready(lab, tmp_path, sensors, "journald:\n  enabled: false\nstats:\n  interval: 1\n",
                                  journald=False, stderr=stderr)
        for _ in range(60):  # a reload message each, ~100 bytes: the pipe is full
            sensor.signal(signal.SIGHUP)
            time.sleep(0.02)
        lab.hping3_exfil(_secret(tmp_path), 20)
        exfil = wait_for(lambda: any("DataExfil" in line for line in notice_lines(sensor)), 10)
        went_on, stopped, took = goes_on_then_stops(sensor)
    finally:
        os.close(read_end)  # a sensor still blocked in write() gets EPIPE now
    code, _, _ = sensor.stop()
    final = last_stats(sensor)
    print(f"\nnotice: {exfil}; stats went on: {went_on}; stopped by SIGTERM: {stopped} in {took:.2f} s, exit {code}; "
          f"stderr dropped {final.get('stderr_dropped')}")
    assert exfil and went_on and stopped and took < 5.0 and code == 0, (exfil, went_on, stopped, took, code)
    assert final["stderr_dropped"] == 0  # ~80 lines wait in the queue (1,000): none dropped while it ran


def test_stderr_on_a_full_device_without_journald_ends_nothing(lab: Lab, tmp_path: Path,
                                                                sensors: list[Sensor]) -> None:
    with open("/dev/full", "w") as full:
        sensor = launch_ready(lab, tmp_path, sensors, "journald:\n  enabled: false\nstats:\n  interval: 1\n",
                              journald=False, stderr=full)
    lab.hping3_exfil(_secret(tmp_path), 20)
    assert wait_for(lambda: any("DataExfil" in line for line in notice_lines(sensor)), 10)
    time.sleep(1.5)  # stats lines go to the full stderr every second
    assert sensor.proc.poll() is None, "a full stderr ended the daemon"
    code, _, _ = sensor.stop()
    assert code == 0
    assert any("ExfilSummary" in line for line in notice_lines(sensor))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_fragment_flood_evicting_an_exfiltrations_datagrams_live_names_it_within_seconds(
        lab: Lab, tmp_path: Path, sensors: list[Sensor], workers: int) -> None:
    """Red team 2026-12-06 F1, live at 20,000 frames/s: each 6,000-byte exfiltration request's header alone, then
    4,200 spoofed fragments that never complete (more than the reassembly table's 4,096 datagrams), then its data.
    Before: 0 notices (the data started datagrams without offset 0, evicted in turn, counted only). Its data is
    judged headless: the real source is named, by its own notice or among an aggregate's largest."""
    from testkit import craft
    from tests.replay.test_hostile_input import EXFIL_FROM, evicting_fragment_flood

    capture = tmp_path / "fragment-flood.pcap"
    craft.write_pcap(capture, evicting_fragment_flood(4_200))
    sensor = launch_ready(lab, tmp_path, sensors, QUIET + f"capture:\n  workers: {workers}\n")
    began = time.monotonic()
    lab.in_peer("timeout", "60", "tcpreplay", "-q", "--pps=20000", "-i", PEER_IF, str(capture), timeout=90)
    sent = time.monotonic()

    def named() -> bool:
        return any(f'"{EXFIL_FROM}"' in line or f"largest: {EXFIL_FROM} (" in line for line in notice_lines(sensor))

    assert wait_for(named, 15), notice_lines(sensor)[-5:]
    told = time.monotonic()
    code, _, err = sensor.stop()
    assert code == 0, err[-2000:]
    stats = last_stats(sensor)
    assert stats["decode"]["fragments"].get("headless", 0) > 0, stats  # type: ignore[index]
    print(f"\n{workers} worker(s): sent in {sent - began:.1f} s, the exfiltration named {told - sent:.2f} s after")
