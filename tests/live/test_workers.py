"""`capture.workers: 2` end to end, between network namespaces (needs root), like test_live.py.

The peer namespace gets many extra addresses so that traffic comes from many host pairs:
the kernel's PACKET_FANOUT_HASH spreads the pairs over the workers, and the tests check
that it never splits one (measured directly on the sockets, and through the notices:
a split flow would show up as two half-size summaries or a duplicate alert). Every
traffic loop is bounded in count and time; the namespaces are removed afterwards.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import craft
from testkit.netlab import (
    PEER_IF,
    REPO,
    SENSOR_IF,
    SENSOR_IP,
    SENSOR_IP6,
    Lab,
    Sensor,
    launch_ready,
    missing_prerequisite,
    wait_for,
)

pytestmark = pytest.mark.skipif(missing_prerequisite() is not None, reason=str(missing_prerequisite()))

SOURCES = [f"10.231.0.{100 + i}" for i in range(24)]
SOURCES6 = [f"fd31::{0x100 + i:x}" for i in range(8)]

DATA_EXFIL, SUMMARY = "ICMP::ICMP_DataExfil", "ICMP::ICMP_ExfilSummary"
TWO_WORKERS = "capture:\n  workers: 2\ndetection:\n  idle_timeout: 2\nstats:\n  interval: 1\n"


class ManySourcesLab(Lab):
    """The test_live lab, plus SOURCES and SOURCES6 on the peer's interface."""

    def up(self) -> None:
        super().up()
        for addr in SOURCES:
            self.in_peer("ip", "addr", "add", f"{addr}/24", "dev", PEER_IF)
        for addr in SOURCES6:
            self.in_peer("ip", "addr", "add", f"{addr}/64", "dev", PEER_IF, "nodad")

    def in_peer_sh(self, script: str, timeout: float = 90.0) -> None:
        self.in_peer("sh", "-c", script, timeout=timeout, check=False)

    def exfil_from(self, sources: list[str], secret: Path, count: int, size: int, interval_us: int = 5000) -> None:
        """hping3 file exfiltration from every source at once (spoofed with -a; the addresses are the peer's)."""
        self.in_peer_sh(" ".join(
            f"timeout 60 hping3 -1 -E {secret} -d {size} -u -c {count} -i u{interval_us} -q -a {src} {SENSOR_IP}"
            " >/dev/null 2>&1 &" for src in sources) + " wait")


@pytest.fixture(scope="module")
def lab() -> Iterator[ManySourcesLab]:
    lab = ManySourcesLab()
    lab.up()
    try:
        yield lab
    finally:
        lab.down()


def launch(lab: Lab, tmp_path: Path, sensors: list[Sensor], config: str = TWO_WORKERS, **kw: object) -> Sensor:
    return launch_ready(lab, tmp_path, sensors, config, **kw)


def notices_by_source(notices: list[dict[str, object]]) -> dict[object, collections.Counter[object]]:
    by_src: dict[object, collections.Counter[object]] = collections.defaultdict(collections.Counter)
    for n in notices:
        by_src[n["src"]][n["note"]] += 1
    return by_src


def test_the_kernel_fanout_hash_keeps_every_host_pair_on_one_socket(lab: ManySourcesLab) -> None:
    """Measured on two sockets joined exactly as the workers join: both directions, every echo id, IP
    fragments and whole packets of a host pair reach one socket, IPv4 and IPv6 (with the flow labels
    Linux sets), while the pairs spread over both sockets."""
    probe = subprocess.Popen(["ip", "netns", "exec", lab.sensor_ns, sys.executable, "-m", "testkit.fanout_probe",
                              SENSOR_IF, "2", "6"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert probe.stdout is not None and probe.stdout.readline().strip() == "ready"
        # Two ping processes per source (two echo ids per pair), one of them fragmented, v4 and v6, all at once.
        pings = [f"ping -q -c 4 -i 0.01 -W 1 -s {size} -I {src} {SENSOR_IP} >/dev/null 2>&1 &"
                 for src in SOURCES for size in (56, 3000)]
        pings += [f"ping -6 -q -c 4 -i 0.01 -W 1 -s {size} -I {src} {SENSOR_IP6} >/dev/null 2>&1 &"
                  for src in SOURCES6 for size in (56, 3000)]
        lab.in_peer_sh(" ".join(pings) + " wait", timeout=30)
        out, err = probe.communicate(timeout=30)
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.communicate()
    assert probe.returncode == 0, err
    pairs = json.loads(out)["pairs"]
    ours = {" ".join(sorted((src, SENSOR_IP))) for src in SOURCES}
    ours |= {" ".join(sorted((src, SENSOR_IP6))) for src in SOURCES6}
    assert ours <= set(pairs), sorted(ours - set(pairs))
    split = {key: p for key, p in pairs.items() if len(p["sockets"]) != 1}
    assert not split, split
    for key in ours:
        assert len(pairs[key]["directions"]) == 2, (key, pairs[key])  # requests and replies
        assert len(pairs[key]["ids"]) >= 2, (key, pairs[key])  # both ping processes
        assert pairs[key]["kinds"] == ["fragment", "whole"], (key, pairs[key])
    per_socket = collections.Counter(pairs[key]["sockets"][0] for key in ours)
    print(f"\nfanout hash: {len(ours)} host pairs (both directions, 2 echo ids, fragments and whole packets "
          f"each) -> sockets {dict(per_socket)}; no pair split")
    assert set(per_socket) == {0, 1}, per_socket


def test_two_workers_report_every_flow_whole_once_in_one_notice_log_and_journald(
        lab: ManySourcesLab, tmp_path: Path, secret: Path, sensors: list[Sensor]) -> None:
    # Each worker folds its own share of a storm (aggregate_max_notices per note and host): how the kernel's hash
    # (seeded at boot) splits these 12 pairs is not ours to choose, so the quota is set above them: nothing folds.
    sensor = launch(lab, tmp_path, sensors, TWO_WORKERS.replace("idle_timeout: 2\n",
                                                                "idle_timeout: 2\n  aggregate_max_notices: 1000\n"))
    sources = SOURCES[:12]
    count, size = 30, 200
    lab.exfil_from(sources, secret, count=count, size=size)
    lab.benign_pings(count=20)
    assert wait_for(lambda: {n["src"] for n in sensor.notices() if n["note"] == SUMMARY} >= set(sources), 20), \
        sensor.notices()
    time.sleep(1.5)  # anything late (a duplicate from a split flow) would show up by now
    text = sensor.notice_path.read_text()
    lines = text.splitlines()
    assert text.endswith("\n") and all(line.startswith("{") and line.endswith("}") for line in lines)
    notices = [json.loads(line) for line in lines]  # every line is whole JSON: nothing interleaved
    by_src = notices_by_source(notices)
    assert set(by_src) == set(sources), by_src.keys()
    shape = by_src[sources[0]]
    assert shape[DATA_EXFIL] == 1 and shape[SUMMARY] == 1, shape
    for src in sources:
        # Each flow whole: the same notes for every source, each once (a split flow would alert twice or
        # not at all), and a summary counting every request.
        assert by_src[src] == shape, (src, by_src[src], shape)
        (summary,) = [n for n in notices if n["src"] == src and n["note"] == SUMMARY]
        assert summary["n"] == count, summary
        assert f"Bytes sent: {count * size}" in str(summary["sub"]), summary
    assert len({(n["note"], n["src"], n["uid"]) for n in notices}) == len(notices)  # no duplicate line
    # journald got exactly the same notices, from the main process.
    entries = [e for e in sensor.journal() if "NOTE" in e]
    assert collections.Counter((e["NOTE"], e["SRC"], e["UID"]) for e in entries) == \
        collections.Counter((n["note"], n["src"], n["uid"]) for n in notices)
    summaries = sensor.journal(f"NOTE={SUMMARY}")
    assert sorted(e["SRC"] for e in summaries) == sorted(sources)
    assert all(e["N"] == str(count) and e["BYTES_SENT"] == str(count * size) for e in summaries)
    started = sensor.journal("MESSAGE_ID=c28a1ef6ce804f0cb4f2b5195d391842")
    assert len(started) == 1 and "with 2 workers" in started[0]["MESSAGE"], started
    code, took, err = sensor.stop()
    assert code == 0, err
    assert took < 5.0
    last = sensor.stats_records()[-1]
    workers = last["workers"]
    assert isinstance(workers, list) and len(workers) == 2
    print(f"\nper worker: {[(w['worker'], w['packets_read'], w['notices']) for w in workers]}")
    assert all(w["packets_read"] > 0 for w in workers), workers  # the pairs were spread over both
    assert last["packets_read"] == sum(w["packets_read"] for w in workers)
    assert last["packets_read"] >= len(sources) * count * 2 + 40, last
    assert last["notices"] == len(notices) and last["queue_dropped"] == 0 and last["kernel_dropped"] == 0


def test_sigterm_with_two_workers_flushes_every_open_flow_and_exits_0_within_5s(
        lab: ManySourcesLab, tmp_path: Path, secret: Path, sensors: list[Sensor]) -> None:
    sensor = launch(lab, tmp_path, sensors, config="capture:\n  workers: 2\n"
                    "detection:\n  alerting: flow_end\n  idle_timeout: 300\n")
    sources = SOURCES[12:20]
    lab.exfil_from(sources, secret, count=20, size=200, interval_us=2000)
    time.sleep(0.5)
    assert sensor.notices() == []  # nothing is due yet: every flow is still open
    code, took, err = sensor.stop()
    assert code == 0, err
    assert took < 5.0, took
    by_src = notices_by_source(sensor.notices())
    assert set(by_src) == set(sources), by_src
    for src in sources:
        assert by_src[src][DATA_EXFIL] == 1, (src, by_src[src])
        assert all(count == 1 for count in by_src[src].values()), (src, by_src[src])
    assert "Traceback" not in err


def test_sighup_reaches_every_worker_and_workers_is_restart_only(
        lab: ManySourcesLab, tmp_path: Path, secret: Path, sensors: list[Sensor]) -> None:
    # aggregate_max_notices: 16 pairs to one host, split by the kernel's hash: a worker given more than the default 10
    # folds the rest into an aggregate (the one failure of this test in ~30 CI runs, and one on 2026-12-05)
    original = "capture:\n  workers: 2\ndetection:\n  profile: original\n  reply_pairing: matched\n" \
               "  idle_timeout: 1\n  aggregate_max_notices: 1000\n"
    sensor = launch(lab, tmp_path, sensors, config=original)
    sources = SOURCES[:16]
    lab.exfil_from(sources[:4], secret, count=5, size=50, interval_us=2000)  # below the default thresholds
    time.sleep(2.5)
    assert sensor.notices() == []
    cfg = sensor.workdir / "icmpsensor.yaml"
    cfg.write_text(original.replace("workers: 2", "workers: 3") +
                   "  exfil_bytes_threshold: 100\n  changed_requests_threshold: 2\n")
    sensor.signal(signal.SIGHUP)
    assert wait_for(lambda: bool(sensor.journal("MESSAGE_ID=343714c842264f38a2a36e60040a11c0")), 5)
    reload_msg = sensor.journal("MESSAGE_ID=343714c842264f38a2a36e60040a11c0")[-1]["MESSAGE"]
    assert "capture.workers" in reload_msg and "restart" in reload_msg
    lab.exfil_from(sources, secret, count=5, size=50, interval_us=2000)
    # 16 pairs land on both workers (test 1 measures the spread): each applies the new thresholds.
    alerted = lambda: {n["src"] for n in sensor.notices() if n["note"] == DATA_EXFIL}  # noqa: E731
    if not wait_for(lambda: alerted() >= set(sources), 10):  # which sources, and what each worker saw (it failed
        # once in ~30 CI runs, not reproduced since)
        pytest.fail(f"no DataExfil for {sorted(set(sources) - alerted())} within 10 s of the reload; workers: "
                    f"{sensor.stats_records()[-1:]}; journal: {[e.get('MESSAGE') for e in sensor.journal()][-20:]}")
    code, _, err = sensor.stop()
    assert code == 0, err
    workers = sensor.stats_records()[-1]["workers"]
    assert isinstance(workers, list) and len(workers) == 2  # still 2: workers needs a restart


def test_a_worker_that_dies_stops_the_daemon_with_an_error(lab: ManySourcesLab, tmp_path: Path,
                                                           sensors: list[Sensor]) -> None:
    sensor = launch(lab, tmp_path, sensors)
    assert wait_for(lambda: bool(sensor.stats_records()), 5)
    workers = sensor.stats_records()[-1]["workers"]
    assert isinstance(workers, list)
    pids = [int(w["pid"]) for w in workers]
    os.kill(pids[1], signal.SIGKILL)
    try:
        sensor.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail("the main process did not exit after a worker died")
    errors = [e["MESSAGE"] for e in sensor.journal("MESSAGE_ID=90dbe942ae0a47af9d963dfd74b9fc32")]
    code, _, err = sensor.stop()  # (also stops the private journald)
    assert code == 1, err
    assert any(f"worker 1 (pid {pids[1]}) exited unexpectedly (killed by SIGKILL)" in m for m in errors), errors
    assert not os.path.exists(f"/proc/{pids[0]}"), "the other worker must not outlive the main process"


def test_no_such_interface_with_workers_exits_66_with_the_same_line(lab: ManySourcesLab, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("capture:\n  workers: 2\n")
    result = lab.in_sensor(sys.executable, "-m", "icmpsensor", "-i", "nosuch0", "-c", str(cfg), "--log-dir",
                           str(tmp_path), check=False, timeout=30)
    assert result.returncode == 66, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "icmpsensor: error: interface nosuch0: cannot activate capture: no such device")


def test_without_permission_with_workers_exits_77(lab: ManySourcesLab) -> None:
    log_dir = tempfile.mkdtemp(prefix="icmpsensor-nobody-")
    try:
        os.chmod(log_dir, 0o777)
        cfg = Path(log_dir) / "c.yaml"
        cfg.write_text("capture:\n  workers: 2\n")
        os.chmod(cfg, 0o644)
        result = lab.in_sensor("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                               "--inh-caps=-all", sys.executable, "-m", "icmpsensor", "-i", SENSOR_IF, "-c", str(cfg),
                               "--log-dir", log_dir, check=False, timeout=30)
    finally:
        import shutil

        shutil.rmtree(log_dir, ignore_errors=True)
    assert result.returncode == 77, result.stderr
    assert "CAP_NET_RAW" in result.stderr


# --------------------------------------------------------------------------- scaling (reported)


def _burst(path: Path, packets: int, size: int, sources: int = 256) -> None:
    """Echo requests with novel payloads from `sources` addresses to an address nobody has (no replies)."""
    frames = []
    for i in range(packets):
        src = f"10.232.{(i % sources) // 250}.{(i % sources) % 250 + 1}"
        payload = ((i * 2654435761 % 2**32).to_bytes(4, "big") * (size // 4 + 1))[:size]
        frames.append((1.0 + i * 1e-6, craft.ether(craft.icmp4(src, "10.232.9.9", 8, 0, 7, i & 0xFFFF, payload))))
    craft.write_pcap(path, frames)


SCALING_PACKETS = int(os.environ.get("ICMPSENSOR_SCALING_PACKETS", "300000"))
SCALING_SIZE = int(os.environ.get("ICMPSENSOR_SCALING_SIZE", "64"))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy(seconds: float = 0.5) -> float:
    """How busy all CPUs are (0..1) over `seconds`: other work on the machine skews the comparison."""
    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


class _CpuWatch:
    """When a set of processes stops using CPU: sampled every 50 ms."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.start = {pid: _cpu_seconds(pid) for pid in pids}

    def used(self) -> list[float]:
        return [round(_cpu_seconds(pid) - self.start[pid], 2) for pid in self.pids]

    def wait_quiet(self, began: float, sender: subprocess.Popen[bytes] | None = None) -> tuple[float, float]:
        """(seconds from `began` until the sender exited, until the processes last used > 30 % of a CPU)."""
        sent_for = None if sender is not None else 0.0
        busy_until = began
        used = sum(self.used())
        while time.monotonic() < began + 60:
            time.sleep(0.05)
            now = time.monotonic()
            if sent_for is None and sender is not None and sender.poll() is not None:
                sent_for = now - began
            used, previous = sum(self.used()), used
            if used - previous > 0.015:
                busy_until = now
            elif sent_for is not None and now - busy_until > 1.0:
                break
        return (sent_for if sent_for is not None else now - began), busy_until - began


def test_report_scaling_from_one_to_two_workers(lab: ManySourcesLab, tmp_path: Path, sensors: list[Sensor]) -> None:
    """Not asserted: the same bounded burst through 1 and then 2 workers, measured two ways.

    The buffers hold the whole burst, so nothing is dropped: what is compared is how long the
    sensor takes to process it and the CPU time it spends. The end of processing is when the
    sensor's processes stop using CPU (stats records lag up to 2 s), checked against the stats.
    *live*: tcpreplay at top speed while the sensor runs; on a small machine the sender (and the
    veth softirq) competes with the workers for the CPUs. *backlog*: the sensor's processes are
    stopped (SIGSTOP) while the burst fills their kernel rings, then continued: the sensor alone.
    """
    if subprocess.run(["which", "tcpreplay"], capture_output=True).returncode != 0:
        pytest.skip("tcpreplay not installed")
    burst = tmp_path / "burst.pcap"
    total = SCALING_PACKETS
    _burst(burst, total, SCALING_SIZE)
    config = ("capture:\n  workers: {w}\n  buffer_size: 268435456\n  queue_batches: 4096\n"
              "detection:\n  idle_timeout: 60\noutput:\n  evidence:\n    enabled: false\nstats:\n  interval: 1\n")
    replay = ["ip", "netns", "exec", lab.peer_ns, "timeout", "60", "tcpreplay", "-q", "-i", PEER_IF, "--topspeed",
              str(burst)]
    lines = []
    for workers in (1, 2):
        sensor = launch(lab, tmp_path, sensors, config=config.format(w=workers))
        assert wait_for(lambda s=sensor: bool(s.stats_records()), 5)  # type: ignore[misc]
        first = sensor.stats_records()[-1]
        pids = [int(w["pid"]) for w in first["workers"]] if workers > 1 else []  # type: ignore[union-attr]
        pids.append(sensor.proc.pid)  # the main process (the whole sensor when workers is 1)
        busy = _machine_busy()

        def handled(expected: int, s: Sensor = sensor) -> bool:
            records = s.stats_records()
            last = records[-1] if records else {}
            return bool(last) and (last["decode"].get("frames", 0) + last["kernel_dropped"]  # type: ignore[union-attr]
                                   + last["queue_dropped"]) >= expected  # type: ignore[operator]

        # live
        watch = _CpuWatch(pids)
        began = time.monotonic()
        sender = subprocess.Popen(replay, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sent_for, took = watch.wait_quiet(began, sender)
        sender.wait(timeout=60)
        live_cpu = watch.used()
        assert wait_for(lambda: handled(total), 5), sensor.stats_records()[-1:]
        # backlog
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            subprocess.run(replay, capture_output=True, timeout=90)
        finally:
            watch = _CpuWatch(pids)
            began = time.monotonic()
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        _, drained = watch.wait_quiet(began)
        backlog_cpu = watch.used()
        assert wait_for(lambda: handled(2 * total), 5), sensor.stats_records()[-1:]
        code, _, err = sensor.stop()
        assert code == 0, err
        last = sensor.stats_records()[-1]
        lines.append(f"  workers {workers} (CPUs {busy:.0%} busy with other work just before): live: sent in "
                     f"{sent_for:.2f} s, all processed after {took:.2f} s "
                     f"({total / took:,.0f} packets/s), CPU s {live_cpu}; backlog: processed in {drained:.2f} s "
                     f"({total / drained:,.0f} packets/s), CPU s {backlog_cpu}; dropped: kernel "
                     f"{last['kernel_dropped']}, queue {last['queue_dropped']}")
        for w in last.get("workers") or []:  # type: ignore[attr-defined]
            lines.append(f"    worker {w['worker']}: read {w['packets_read']}, kernel dropped {w['kernel_dropped']}, "
                         f"queue dropped {w['queue_dropped']}")
    print(f"\nscaling: a burst of {total} ICMP echo requests (256 sources, {SCALING_SIZE}-byte novel payloads), "
          f"tcpreplay --topspeed, {os.cpu_count()} CPUs; CPU s per process (workers..., main):")
    print("\n".join(lines))


def test_interface_drops_are_the_interface_counter_once_and_the_rest_is_summed() -> None:
    from icmpsensor.runmode.stats import stats_record, status_line, totals

    workers = [  # only the workers' last reports matter here
        {"packets_read": 100, "kernel_dropped": 1, "interface_dropped": 7, "decode": {"frames": 100}},
        {"packets_read": 50, "kernel_dropped": 2, "interface_dropped": 7, "decode": {"frames": 50}},
    ]
    summed = totals(workers)
    assert summed["packets_read"] == 150 and summed["kernel_dropped"] == 3 and summed["decode"]["frames"] == 150
    assert summed["interface_dropped"] == 7
    record = stats_record(now=1.0, started=0.0, name="s", interface="eth0", workers=workers, notices=0, write_errors=0,
                          backlog=0, lost=0, journal_errors=0, worker_states=[(0, 10, "running"), (1, 11, "running")])
    assert "interface 7 " in status_line(record) and status_line(record).endswith("; 2 workers")
