"""Live load test: replay the synthetic capture onto a veth with tcpreplay at fixed rates, measure the loss.

    .venv/bin/python -m bench.live_load [--rates 20000,50000,100000,150000,200000] [--packets N]
                                        [--seconds S] [--repeat R] [--buffer-mb MB] [--workers N]
                                        [--json OUT]

Needs root (network namespaces, raw sockets) and tcpreplay (installed with apt-get when missing,
saying so; `--no-install` to refuse). Steps:

1. the capture: testkit/synthmix.py's deterministic synthetic mix of N frames (default 500,000; Ethernet,
   about 5 % of them 802.1Q / QinQ tagged), generated once and reused from the cache that
   bench/throughput.py shares (`--keep DIR`), or `--capture FILE`. Every frame is checked against
   the sensor's BPF filter (what does not pass it is not offered to the sensor: counted apart);
2. two network namespaces joined by one veth pair (MTU 9000 so that tagged full-size frames fit,
   IPv6 and addresses off so the kernel adds no traffic of its own): the sensor end and the sender
   end. Traffic never leaves this pair; the namespaces are deleted at the end, also on failure;
3. one sensor (`python -m icmpsensor -i IFACE -c CFG --log-dir DIR`, `stats.interval: 1`, a
   generous `capture.buffer_size`, promiscuous: the capture's MAC addresses are not the veth's) in
   the sensor namespace, started as testkit/netlab.py does (private journald, READY=1 over
   NOTIFY_SOCKET). With `--workers N` (1 to 8, default 1) and N > 1 its config sets
   `capture.workers: N`: N forked worker processes, each with its own capture handle in one
   PACKET_FANOUT_HASH group, and the main process writing notices and stats.log (icmpsensor/runmode/live.py);
4. per rate (and per repeat): `tcpreplay --intf1=VETH --pps=RATE --limit=RATE*S` (looping over the
   capture when that is more than N frames; under `timeout`), then wait until the sensor's stats.log
   stops moving, and take the counters' differences over the burst.

Per run it prints: offered (tcpreplay's successful packets) and the rate tcpreplay achieved; what the
pcap handle received (ps_recv), what the sensor processed (frames handed to the decoder); kernel
(ps_drop), interface (ps_ifdrop) and queue drops; *silent* = lost frames that no drop counter shows
(must be 0); total loss = (offered - processed) / offered; the drain lag (how
long after tcpreplay ended the sensor finished; the stats interval makes that 1 s coarse) and the
sensor's peak processing rate; the sensor's CPU (detector = main thread, capture = the others) as a
share of one core while tcpreplay ran, and its CPU time per packet. Then the highest rate with
< 0.1 % total loss (every repeat), and the highest at which the sensor also kept up (drain lag
<= 2 s): a long enough burst matters, since the ring buffer and the queue absorb short overloads.

With N > 1 workers the counters are the summed ones of stats.log (same keys as with one worker;
the record's `workers` list adds a per-worker breakdown, of which the table shows how the packets
read split between the workers). The CPU is that of the worker processes (the sensor main
process's children, every thread: may exceed 100 %) and, apart, of the main process (outputs and
worker pipes); CPU time per packet counts every process. Each summed record adds up the workers'
last reports, which they send once a second: it lags their counters by up to about a second, so
the stats count as settled only after two unchanged intervals (not one), the peak processing rate
is taken over at least 3 s, and keeping up allows a drain lag of 3 s (2 s plus the report period).

The machine is small and noisy (and tcpreplay, the veth's softirq work and the sensor share it):
repeat, and compare rates with what tcpreplay achieved.

Caveat: interface_dropped is libpcap's ps_ifdrop, i.e. the interface's rx_dropped counter, which also
counts frames the kernel's own stack discarded *after* the capture took them (802.1ad QinQ frames on
an interface without VLAN devices, for one): it can report drops when nothing was lost. Loss here is
therefore offered - processed, and the drop counters are checked against it.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import throughput
from testkit.netlab import PEER_IF, SENSOR_IF, Lab, Sensor, run, start_sensor

DEFAULT_RATES = (20_000, 50_000, 100_000, 150_000, 200_000)
TARGET_PPS = 150_000
LOSS_LIMIT = 0.001  # 0.1 %
KEEP_UP_LAG = 2.0  # seconds: done within two stats records (1 s each) of the burst's end
WORKER_REPORT_LAG = 1.0  # seconds: with N > 1 workers the summed records lag the workers' counters (TICK)
PEAK_SPAN_WORKERS = 3.0  # seconds: the shortest span the peak rate is measured over with N > 1 workers
MAX_WORKERS = 8
VETH_MTU = 9000
RING_SETTLE = 0.3  # seconds after the last frame: the kernel ring block timeout (0.1 s) plus margin
DEFAULT_DIR = Path(tempfile.gettempdir()) / "icmpsensor-bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Every drop counter a stats record must carry (the test checks they are all there).
DROP_COUNTERS = ("kernel_dropped", "interface_dropped", "queue_dropped", "queue_dropped_batches")
COUNTERS = ("packets_received", "packets_read", *DROP_COUNTERS)


class LoadError(RuntimeError):
    """The load test could not run or measure (the message says why)."""


# -- prerequisites -------------------------------------------------------------------------------


def missing_prerequisite(need_tcpreplay: bool = True) -> str | None:
    """Why the load test cannot run here, or None."""
    if os.geteuid() != 0:
        return "the live load test needs root (network namespaces, raw sockets)"
    for tool in ("ip", "unshare", "nsenter", "timeout"):
        if shutil.which(tool) is None:
            return f"the live load test needs {tool}"
    if need_tcpreplay and shutil.which("tcpreplay") is None:
        return "the live load test needs tcpreplay (apt-get install tcpreplay)"
    return None


def ensure_tcpreplay(install: bool = True) -> None:
    if shutil.which("tcpreplay"):
        return
    if not install:
        raise LoadError("tcpreplay is not installed (apt-get install tcpreplay), and --no-install was given")
    print("tcpreplay is not installed: installing the Debian package with apt-get", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    argv = ["apt-get", "install", "-y", "--no-install-recommends", "tcpreplay"]
    if subprocess.run(argv, env=env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise LoadError(f"apt-get install tcpreplay failed: {done.stderr.strip()[-500:]}")
    if not shutil.which("tcpreplay"):
        raise LoadError("tcpreplay still not found after apt-get install")


# -- the capture ---------------------------------------------------------------------------------


@dataclass
class Capture:
    path: Path
    frames: int  # frames in the file
    rejected: list[int]  # indices of the frames the sensor's BPF filter does not pass (sorted)
    vlan_tagged: int
    largest: int  # bytes, the largest frame

    def passing(self, limit: int) -> int:
        """How many of the first `limit` frames tcpreplay sends (looping over the file) pass the filter."""
        loops, rest = divmod(limit, self.frames)
        return limit - loops * len(self.rejected) - bisect.bisect_left(self.rejected, rest)


def inspect_capture(path: Path, bpf_filter: str | None = None) -> Capture:
    """Count frames, and check each against the sensor's BPF filter (the configured default)."""
    import pcapy

    from icmpsensor.config.schema import DEFAULT_BPF_FILTER

    reader = pcapy.open_offline(str(path))
    linktype = reader.datalink()
    if linktype != pcapy.DLT_EN10MB:
        raise LoadError(f"{path}: link type {linktype}, not Ethernet: tcpreplay onto a veth needs Ethernet frames")
    program = pcapy.compile(linktype, 65535, bpf_filter or DEFAULT_BPF_FILTER, 1, 0)
    frames = vlan = largest = 0
    rejected: list[int] = []
    while True:
        header, data = reader.next()
        if header is None:
            break
        if not program.filter(data):
            rejected.append(frames)
        if data[12:14] in (b"\x81\x00", b"\x88\xa8"):
            vlan += 1
        largest = max(largest, len(data))
        frames += 1
    if frames == 0:
        raise LoadError(f"{path}: no frames")
    return Capture(path, frames, rejected, vlan, largest)


def ensure_capture(packets: int, directory: Path) -> Path:
    """testkit/synthmix.py's capture of `packets` frames, generated once (the cache bench/throughput.py uses)."""
    path, _truth, seconds = throughput.ensure_capture(packets, directory)
    if seconds:
        print(f"generated {path} ({packets:,} frames) in {seconds:.1f} s", file=sys.stderr, flush=True)
    return path


# -- the lab -------------------------------------------------------------------------------------


class LoadLab(Lab):
    """A sensor namespace and a sender namespace joined by one veth pair, and nothing else.

    The veth ends carry no addresses and IPv6 is disabled in both namespaces, so neither kernel
    sends anything (no ND, MLD, ARP): what the sensor sees is what tcpreplay sent.
    """

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.sensor_ns = f"icml-s{tag}"
        self.peer_ns = f"icml-p{tag}"

    def up(self) -> None:
        self.down()
        for ns in (self.sensor_ns, self.peer_ns):
            run("ip", "netns", "add", ns)
            for scope in ("all", "default"):
                run("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{scope}.disable_ipv6=1", check=False)
        run("ip", "link", "add", SENSOR_IF, "netns", self.sensor_ns, "type", "veth", "peer", "name", PEER_IF,
            "netns", self.peer_ns)
        for ns, ifname in ((self.sensor_ns, SENSOR_IF), (self.peer_ns, PEER_IF)):
            run("ip", "-n", ns, "link", "set", ifname, "mtu", str(VETH_MTU))
            run("ip", "-n", ns, "link", "set", ifname, "up")
        # Refuse to send anywhere but onto this veth pair.
        info = json.loads(run("ip", "-n", self.peer_ns, "-d", "-j", "link", "show", "dev", PEER_IF).stdout)
        if not info or info[0].get("linkinfo", {}).get("info_kind") != "veth":
            raise LoadError(f"{self.peer_ns}/{PEER_IF} is not a veth: refusing to replay onto it")

    def link_counters(self) -> dict[str, int]:
        """Packets and drops on both veth ends (kernel interface statistics)."""
        out: dict[str, int] = {}
        for side, ns, ifname in (("sensor", self.sensor_ns, SENSOR_IF), ("sender", self.peer_ns, PEER_IF)):
            info = json.loads(run("ip", "-n", ns, "-s", "-j", "link", "show", "dev", ifname).stdout)[0]
            stats = info.get("stats64", {})
            for direction in ("rx", "tx"):
                for key in ("packets", "dropped"):
                    out[f"{side}_{direction}_{key}"] = int(stats.get(direction, {}).get(key, 0))
        return out


def softnet_dropped() -> int:
    """Host-wide per-CPU backlog drops (netdev_max_backlog overflows), /proc/net/softnet_stat column 2."""
    try:
        lines = Path("/proc/net/softnet_stat").read_text().splitlines()
    except OSError:
        return 0
    return sum(int(line.split()[1], 16) for line in lines if line.strip())


# -- the sensor ----------------------------------------------------------------------------------


def sensor_config(buffer_bytes: int, workers: int = 1) -> str:
    workers_line = f"  workers: {workers}\n" if workers > 1 else ""
    return f"capture:\n  buffer_size: {buffer_bytes}\n{workers_line}stats:\n  interval: 1\n"


def check_workers(workers: int) -> int:
    if not 1 <= workers <= MAX_WORKERS:
        raise LoadError(f"--workers must be from 1 to {MAX_WORKERS}, not {workers}")
    return workers


def read_stats(path: Path) -> list[dict]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):  # the line being written
            records.append(json.loads(line))
    return records


def frames(record: dict) -> int:
    """Frames handed to the decoder. (With N > 1 workers `decode` is the workers' sum, empty until the
    first worker has reported.)"""
    return int(record.get("decode", {}).get("frames", 0))


def per_worker(record: dict, key: str) -> dict[int, int]:
    """A counter of the record's per-worker breakdown (N > 1 workers), by worker index; {} with one."""
    return {int(w["worker"]): int(w.get(key, 0)) for w in record.get("workers", ())}


def _progress(record: dict) -> tuple[object, ...]:
    return (record["packets_received"], record["packets_read"], frames(record),
            tuple(sorted(per_worker(record, "packets_read").items())))


def wait_settled(sensor: Sensor, since: float, timeout: float, quiet: int = 1) -> dict:
    """The first stats record, written after `since`, equal in progress to the `quiet` before it (also
    after `since`): nothing more is arriving or being processed. With N > 1 workers `quiet` is 2: a summed
    record repeats a worker's last report (once a second) until its next one arrives."""
    path = sensor.log_dir / "stats.log"
    deadline = time.monotonic() + timeout
    while True:
        if sensor.proc.poll() is not None:
            raise LoadError(f"the sensor exited ({sensor.proc.returncode})")
        records = [r for r in read_stats(path) if r["ts"] > since]
        for i in range(quiet, len(records)):
            if all(_progress(records[j]) == _progress(records[i]) for j in range(i - quiet, i)):
                return records[i]
        if time.monotonic() > deadline:
            raise LoadError(f"the sensor's stats did not settle within {timeout:.0f} s ({path})")
        time.sleep(0.25)


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(main thread, other threads) user+system clock ticks of a process; (0, 0) once it is gone."""
    main = other = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:  # the process ended
        return 0, 0
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])
        if task.name == str(pid):
            main += ticks
        else:
            other += ticks
    return main, other


@dataclass(frozen=True)
class SensorTicks:
    """User+system clock ticks of the sensor. One worker: `detector` is the process's main thread,
    `capture` its other threads, `main` 0. N > 1 workers: `detector` and `capture` are the worker
    processes' main threads and other threads, summed, and `main` is the main process (every thread)."""

    detector: int
    capture: int
    main: int = 0

    @property
    def workers(self) -> int:
        return self.detector + self.capture

    @property
    def total(self) -> int:
        return self.detector + self.capture + self.main

    def __sub__(self, other: SensorTicks) -> SensorTicks:
        return SensorTicks(self.detector - other.detector, self.capture - other.capture, self.main - other.main)


def sensor_ticks(pid: int, worker_pids: Sequence[int] = ()) -> SensorTicks:
    """The sensor's CPU ticks: the process `pid` alone (one worker), or its worker processes and it."""
    if not worker_pids:
        return SensorTicks(*cpu_ticks(pid))
    detector = capture = 0
    for worker in worker_pids:
        main_thread, others = cpu_ticks(worker)
        detector += main_thread
        capture += others
    return SensorTicks(detector, capture, sum(cpu_ticks(pid)))


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()


def child_pids(pid: int) -> list[int]:
    """The children of a process: /proc/PID/task/*/children, or a scan of /proc/*/stat for ppid == PID
    on a kernel without CONFIG_PROC_CHILDREN."""
    children: set[int] = set()
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    listed = False
    for task in tasks:
        with contextlib.suppress(FileNotFoundError):
            children.update(int(c) for c in (task / "children").read_text().split())
            listed = True
    if not listed:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) and fields[1] == str(pid):
                children.add(int(entry.name))
    return sorted(children)


def worker_pids(pid: int, record: dict, workers: int) -> list[int]:
    """The sensor's worker processes: the children of its main process forked from it (the same
    command line: its private journald is a child too, and is not a worker), checked against the pids
    of the stats record's per-worker breakdown."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        raise LoadError(f"the sensor (pid {pid}) is gone") from None
    forked = []
    for child in child_pids(pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{child}/cmdline").read_bytes() == cmdline:
                forked.append(child)
    listed = sorted(int(w["pid"]) for w in record.get("workers", ()) if w.get("pid") is not None)
    if len(forked) != workers or listed != forked:
        raise LoadError(f"expected {workers} sensor worker processes: found {forked or 'none'} as children of "
                        f"pid {pid}, stats.log lists {listed or 'none'}")
    return forked


# -- tcpreplay -----------------------------------------------------------------------------------


@dataclass
class Replay:
    requested: int  # --limit
    sent: int  # "Successful packets"
    failed: int
    retried: int  # ENOBUFS + EAGAIN retries (sent in the end)
    seconds: float
    pps: float  # as tcpreplay reports it
    cpu: float  # tcpreplay's CPU seconds
    output: str


_TCPREPLAY_PATTERNS = {
    "seconds": r"Actual: \d+ packets \(\d+ bytes\) sent in ([\d.]+) seconds",
    "pps": r"Rated: .*?([\d.]+) pps",
    "sent": r"Successful packets:\s+(\d+)",
    "failed": r"Failed packets:\s+(\d+)",
}


def tcpreplay(lab: LoadLab, capture: Capture, rate: int, limit: int, workdir: Path, timer: str = "nano") -> Replay:
    loops = math.ceil(limit / capture.frames)
    budget = int(limit / rate * 3 + 30)
    argv = ["timeout", "-k", "5", str(budget), "ip", "netns", "exec", lab.peer_ns, "tcpreplay",
            f"--intf1={PEER_IF}", f"--pps={rate}", f"--limit={limit}", f"--loop={loops}", f"--timer={timer}",
            "--preload-pcap", str(capture.path)]
    out_path = workdir / "tcpreplay.out"
    with out_path.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    text = out_path.read_text()
    values = {}
    for key, pattern in _TCPREPLAY_PATTERNS.items():
        found = re.search(pattern, text)
        if found is None:
            raise LoadError(f"tcpreplay (exit {proc.returncode}) did not report {key}: {text.strip()[-1500:]}")
        values[key] = found.group(1)
    retried = sum(int(n) for n in re.findall(r"Retried packets \(\w+\):\s+(\d+)", text))
    return Replay(limit, int(values["sent"]), int(values["failed"]), retried, float(values["seconds"]),
                  float(values["pps"]), usage.ru_utime + usage.ru_stime, text)


# -- one run -------------------------------------------------------------------------------------


@dataclass
class Row:
    rate: int
    replay: Replay
    offered: int  # frames tcpreplay sent that pass the sensor's filter
    veth_rx: int  # packets the sensor's veth end received
    received: int  # pcap ps_recv (passed the filter, drops included)
    read: int
    processed: int  # frames handed to the decoder
    kernel_dropped: int
    interface_dropped: int
    queue_dropped: int
    queue_dropped_batches: int
    extra: int  # received beyond what was offered (traffic that was not ours)
    veth_dropped: int  # sender tx + sensor rx drops on the veth pair
    backlog_dropped: int  # host-wide softnet backlog drops during the run
    lag: float  # seconds after tcpreplay ended until the sensor had processed everything (1 s resolution)
    peak_pps: float  # highest processing rate between two stats records
    # CPU, share of one core while tcpreplay ran (SensorTicks): one worker, the main thread (detector) and the
    # others (capture); N > 1 workers, the workers' main threads and their other threads, summed.
    cpu_detector: float
    cpu_capture: float
    cpu_us_per_packet: float  # every process of the sensor
    record: dict = field(repr=False)
    workers: int = 1
    cpu_main: float = 0.0  # N > 1 workers: the main process, share of one core while tcpreplay ran
    worker_read: list[int] = field(default_factory=list)  # N > 1 workers: packets read, per worker

    @property
    def cpu_workers(self) -> float:
        """Capture + detector CPU (with N > 1 workers: every worker process), share of one core."""
        return self.cpu_detector + self.cpu_capture

    @property
    def drops(self) -> int:
        """Every drop counter the sensor reports."""
        return self.kernel_dropped + self.interface_dropped + self.queue_dropped

    @property
    def lost(self) -> int:
        return max(self.offered - self.processed, 0)

    @property
    def loss(self) -> float:
        return self.lost / self.offered if self.offered else 0.0

    @property
    def before_capture(self) -> int:
        """Offered frames the pcap handle never counted (lost on the veth or in the host's backlog)."""
        return max(self.offered - self.received, 0)

    @property
    def silent(self) -> int:
        """Lost frames that no drop counter shows (must be 0)."""
        return max(self.lost - self.drops, 0)

    @property
    def overcounted(self) -> int:
        """Drops reported beyond what was actually lost (ps_ifdrop counting frames the capture did get)."""
        return max(self.drops - self.lost, 0)

    @property
    def ok(self) -> bool:
        return self.loss < LOSS_LIMIT

    @property
    def kept_up(self) -> bool:
        return self.ok and self.lag <= keep_up_lag(self.workers)


def keep_up_lag(workers: int) -> float:
    """The longest drain lag that counts as keeping up (the summed records of N > 1 workers lag)."""
    return KEEP_UP_LAG + (WORKER_REPORT_LAG if workers > 1 else 0.0)


def _delta(after: dict, before: dict, key: str) -> int:
    return int(after[key]) - int(before[key])


def peak_rate(points: Sequence[tuple[float, int]], span: float = 0.0) -> float:
    """The highest rate between two (time, count) points at least `span` apart (0: consecutive points),
    taking for each point the nearest later one that far."""
    best = 0.0
    for i, (t1, f1) in enumerate(points):
        for t2, f2 in points[i + 1 :]:
            if t2 > t1 and t2 - t1 >= span:
                best = max(best, (f2 - f1) / (t2 - t1))
                break
    return best


def run_rate(lab: LoadLab, sensor: Sensor, capture: Capture, rate: int, limit: int, baseline: dict,
             workdir: Path, timer: str = "nano", workers: Sequence[int] = ()) -> Row:
    """One burst. `workers`: the pids of the sensor's worker processes (N > 1), empty with one worker."""
    pid = sensor.proc.pid
    n_workers = max(len(workers), 1)
    links_before, softnet_before = lab.link_counters(), softnet_dropped()
    cpu_before = sensor_ticks(pid, workers)
    started = time.time()
    replay = tcpreplay(lab, capture, rate, limit, workdir, timer)
    ended = time.time()
    cpu_end = sensor_ticks(pid, workers)
    settle_timeout = 30 + min(limit, 2_000_000) / 20_000
    record = wait_settled(sensor, ended + RING_SETTLE, settle_timeout, quiet=2 if workers else 1)
    cpu_done = sensor_ticks(pid, workers)
    links_after, softnet_after = lab.link_counters(), softnet_dropped()

    # Every record since the burst began, for the drain lag and the peak processing rate.
    during = [r for r in read_stats(sensor.log_dir / "stats.log") if started < r["ts"] <= record["ts"]]
    final_frames = frames(record)
    done_ts = next((r["ts"] for r in during if frames(r) == final_frames), record["ts"])
    points = [(baseline["ts"], frames(baseline)), *((r["ts"], frames(r)) for r in during)]
    peak = peak_rate(points, PEAK_SPAN_WORKERS if workers else 0.0)

    processed = final_frames - frames(baseline)
    read_before, read_after = per_worker(baseline, "packets_read"), per_worker(record, "packets_read")
    worker_read = [read_after[i] - read_before.get(i, 0) for i in sorted(read_after)] if workers else []
    sent_frames = replay.sent + replay.failed  # the frames tcpreplay took from the file
    offered = capture.passing(sent_frames) - replay.failed  # (failed frames are assumed to pass the filter)
    replay_wall = max(ended - started, 1e-6)
    return Row(
        rate=rate,
        replay=replay,
        offered=offered,
        veth_rx=links_after["sensor_rx_packets"] - links_before["sensor_rx_packets"],
        received=_delta(record, baseline, "packets_received"),
        read=_delta(record, baseline, "packets_read"),
        processed=processed,
        kernel_dropped=_delta(record, baseline, "kernel_dropped"),
        interface_dropped=_delta(record, baseline, "interface_dropped"),
        queue_dropped=_delta(record, baseline, "queue_dropped"),
        queue_dropped_batches=_delta(record, baseline, "queue_dropped_batches"),
        extra=max(_delta(record, baseline, "packets_received") - offered, 0),
        veth_dropped=(links_after["sender_tx_dropped"] - links_before["sender_tx_dropped"]
                      + links_after["sensor_rx_dropped"] - links_before["sensor_rx_dropped"]),
        backlog_dropped=softnet_after - softnet_before,
        lag=max(done_ts - ended, 0.0),
        peak_pps=peak,
        cpu_detector=(cpu_end - cpu_before).detector / CLK_TCK / replay_wall,
        cpu_capture=(cpu_end - cpu_before).capture / CLK_TCK / replay_wall,
        cpu_us_per_packet=(cpu_done - cpu_before).total / CLK_TCK / max(processed, 1) * 1e6,
        record=record,
        workers=n_workers,
        cpu_main=(cpu_end - cpu_before).main / CLK_TCK / replay_wall,
        worker_read=worker_read,
    )


# -- the whole test ------------------------------------------------------------------------------


@dataclass
class Result:
    capture: Capture
    rows: list[Row]
    sensor_exit: int | None = None
    sensor_stderr: str = ""
    final_record: dict | None = None
    workers: int = 1
    worker_pids: list[int] = field(default_factory=list)


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM / SIGHUP unwind like Ctrl-C, so the namespaces and the sensor are always cleaned up."""
    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_load(capture: Capture, rates: Sequence[int], seconds: float, repeat: int, workdir: Path,
             buffer_bytes: int, journald: bool = True, max_packets: int | None = None,
             progress: bool = False, timer: str = "nano", workers: int = 1) -> Result:
    """Start the lab and one sensor (with `workers` capture+detector processes), replay at each rate
    (`repeat` times), and return the rows."""
    check_workers(workers)
    lab = LoadLab()
    sensor: Sensor | None = None
    rows: list[Row] = []
    result = Result(capture, rows, workers=workers)
    with _terminate_as_exit():
        try:
            lab.up()
            sensor = start_sensor(lab, workdir / "sensor", sensor_config(buffer_bytes, workers), journald=journald)
            if not sensor.ready:
                raise LoadError("the sensor did not become ready (READY=1)")
            baseline = wait_settled(sensor, time.time(), 15, quiet=2 if workers > 1 else 1)
            if workers > 1:
                result.worker_pids = worker_pids(sensor.proc.pid, baseline, workers)
            for rate in rates:
                limit = max(int(rate * seconds), 1)
                if max_packets:
                    limit = min(limit, max_packets)
                for i in range(repeat):
                    row = run_rate(lab, sensor, capture, rate, limit, baseline, workdir, timer, result.worker_pids)
                    rows.append(row)
                    baseline = row.record
                    if progress:
                        print(f"  {rate:>9,}/s run {i + 1}: offered {row.offered:,}, processed {row.processed:,}, "
                              f"loss {row.loss:.3%}, lag {row.lag:.0f} s", file=sys.stderr, flush=True)
                    if row.received == 0:
                        raise LoadError("the sensor received none of the replayed frames: check the BPF filter "
                                        "and promiscuous mode")
        except BaseException:
            failed = True
            raise
        else:
            failed = False
        finally:
            if sensor is not None:
                code, _, err = sensor.stop()
                result.sensor_exit, result.sensor_stderr = code, err
                records = read_stats(sensor.log_dir / "stats.log")
                result.final_record = records[-1] if records else None
                if failed and err.strip():
                    print(f"sensor (exit {code}) stderr:\n{err.strip()[-3000:]}", file=sys.stderr)
            lab.down()
    return result


# -- report --------------------------------------------------------------------------------------


def _k(n: float) -> str:
    return f"{n:,.0f}"


def workers_label(workers: int) -> str:
    return "one worker" if workers == 1 else f"{workers} workers"


def _split(counts: Sequence[int]) -> str:
    """How a count divides between the workers, in percent: "49/51"."""
    total = sum(counts)
    return "/".join(f"{c / total:.0%}".rstrip("%") for c in counts) if total else "-"


def table(rows: Sequence[Row]) -> str:
    multi = any(r.workers > 1 for r in rows)
    cpu_head = ("CPU wrk/main", "µs/pkt", "read split %") if multi else ("CPU det/cap", "µs/pkt")
    head = ("rate/s", "achieved/s", "offered", "pcap recv", "processed", "kernel drop", "if drop", "queue drop",
            "silent", "total loss", "lag s", "peak proc/s", *cpu_head, "tcpreplay CPU")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        sender_cpu = r.replay.cpu / r.replay.seconds if r.replay.seconds else 0.0
        if multi:
            cpu = (f"{r.cpu_workers:.0%}/{r.cpu_main:.0%}", f"{r.cpu_us_per_packet:.1f}", _split(r.worker_read))
        else:
            cpu = (f"{r.cpu_detector:.0%}/{r.cpu_capture:.0%}", f"{r.cpu_us_per_packet:.1f}")
        cells = (_k(r.rate), _k(r.replay.pps), _k(r.offered), _k(r.received), _k(r.processed), _k(r.kernel_dropped),
                 _k(r.interface_dropped), _k(r.queue_dropped), _k(r.silent), f"{r.loss:.3%}", f"{r.lag:.1f}",
                 _k(r.peak_pps), *cpu, f"{sender_cpu:.0%}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


RATE_SLACK = 0.001  # tcpreplay's achieved rate is the offered one give or take a packet a second


def verdict(rows: Sequence[Row]) -> list[str]:
    by_rate: dict[int, list[Row]] = {}
    for row in rows:
        by_rate.setdefault(row.rate, []).append(row)
    ok = [rate for rate, runs in sorted(by_rate.items()) if all(r.ok for r in runs)]
    kept = [rate for rate, runs in sorted(by_rate.items()) if all(r.kept_up for r in runs)]
    workers = max((r.workers for r in rows), default=1)
    label = workers_label(workers)
    lines = []
    if ok:
        best = ok[-1]
        achieved = min(r.replay.pps for r in by_rate[best])
        lines.append(f"{label}: highest rate with < {LOSS_LIMIT:.1%} total loss: {best:,}/s (tcpreplay achieved "
                     f"{achieved:,.0f}/s); target {TARGET_PPS:,}/s "
                     f"{'met' if achieved >= TARGET_PPS * (1 - RATE_SLACK) else 'NOT met'}")
    else:
        lines.append(f"{label}: no rate had < {LOSS_LIMIT:.1%} total loss")
    lines.append(f"{label}: highest rate with < {LOSS_LIMIT:.1%} loss and the sensor keeping up (drain lag <= "
                 f"{keep_up_lag(workers):g} s): "
                 + (f"{kept[-1]:,}/s" if kept else "none"))
    loss_sources = {"queue (detector behind)": sum(r.queue_dropped for r in rows),
                    "kernel (ring full)": sum(r.kernel_dropped for r in rows),
                    "before capture (veth / backlog)": sum(r.before_capture for r in rows),
                    "silent (no counter)": sum(r.silent for r in rows)}
    if any(loss_sources.values()):
        source, count = max(loss_sources.items(), key=lambda item: item[1])
        lines.append(f"biggest loss source: {source}, {count:,} frames over all runs ("
                     + ", ".join(f"{k} {v:,}" for k, v in loss_sources.items()) + ")")
    else:
        lines.append("no frame lost at any rate")
    overcounted = sum(r.overcounted for r in rows)
    if overcounted:
        lines.append(f"interface_dropped (libpcap ps_ifdrop) reported {overcounted:,} drops of frames that were in "
                     "fact captured and processed: see the notes")
    return lines


def anomalies(result: Result) -> list[str]:
    notes = []
    for r in result.rows:
        tag = f"{r.rate:,}/s"
        if r.replay.pps < 0.95 * r.rate:
            notes.append(f"{tag}: tcpreplay reached only {r.replay.pps:,.0f}/s")
        if r.replay.failed:
            notes.append(f"{tag}: tcpreplay failed to send {r.replay.failed:,} frames")
        if r.silent or r.before_capture:
            notes.append(f"{tag}: {r.silent:,} frames lost without a counter, {r.before_capture:,} never reached the "
                         f"capture (veth drops {r.veth_dropped:,}, host backlog drops {r.backlog_dropped:,}, sensor "
                         f"veth rx {r.veth_rx:,})")
        if r.extra:
            notes.append(f"{tag}: the sensor received {r.extra:,} frames more than were offered")
        if r.read + r.kernel_dropped != r.received:
            notes.append(f"{tag}: pcap received {r.received:,} != read {r.read:,} + kernel drops {r.kernel_dropped:,}")
        if r.read - r.queue_dropped != r.processed:
            notes.append(f"{tag}: read {r.read:,} - queue drops {r.queue_dropped:,} != processed {r.processed:,}")
        if r.workers > 1 and (len(r.worker_read) != r.workers or sum(r.worker_read) != r.read):
            notes.append(f"{tag}: the per-worker packets read {r.worker_read} do not add up to read {r.read:,} "
                         f"over {r.workers} workers")
        if r.workers > 1 and r.worker_read and min(r.worker_read) == 0 and r.read:
            notes.append(f"{tag}: a worker read nothing ({r.worker_read}): the fanout hash put every host pair "
                         "on the others")
    over = [r for r in result.rows if r.overcounted]
    if over:
        notes.append(f"{len(over)} of {len(result.rows)} runs: interface_dropped > 0 (" + ", ".join(
            f"{r.interface_dropped:,} of {r.offered:,}" for r in over[:3]) + (", ..." if len(over) > 3 else "")
            + ") although the pcap handle received every offered frame: libpcap's ps_ifdrop is the interface's "
            "rx_dropped, which also counts frames the kernel's own stack discarded after the capture took them "
            "(here 802.1ad QinQ frames, which no VLAN device claims)")
    if result.sensor_exit not in (0, None):
        notes.append(f"sensor exit code {result.sensor_exit}: {result.sensor_stderr.strip()[-500:]}")
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.live_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default=",".join(map(str, DEFAULT_RATES)), help="packets/s, comma-separated")
    parser.add_argument("--packets", type=int, default=500_000, help="frames in the synthetic capture replayed")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="burst length per rate: RATE*S frames (looping over the capture)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per rate")
    parser.add_argument("--buffer-mb", type=int, default=256, help="capture.buffer_size, MiB")
    parser.add_argument("--workers", default="1", metavar="N",
                        help=f"capture.workers: sensor worker processes, 1 to {MAX_WORKERS} (default 1)")
    parser.add_argument("--capture", type=Path, help="replay this Ethernet capture instead of the synthetic one")
    parser.add_argument("--keep", type=Path, default=DEFAULT_DIR, metavar="DIR", help="synthetic capture cache")
    parser.add_argument("--timer", default="nano", choices=("nano", "select", "gtod", "ioport"),
                        help="tcpreplay's pacing (nano: nanosleep, a fraction of gtod's busy-wait CPU)")
    parser.add_argument("--no-journald", action="store_true", help="run the sensor without its private journald")
    parser.add_argument("--no-install", action="store_true", help="do not apt-get install tcpreplay")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    try:
        rates = sorted({int(r) for r in args.rates.split(",") if r.strip()})
    except ValueError:
        parser.error(f"--rates: not a list of integers: {args.rates!r}")
    if not rates or min(rates) <= 0 or args.seconds <= 0 or args.repeat < 1 or args.packets < 1:
        parser.error("rates, --seconds, --repeat and --packets must be positive")
    try:
        args.workers = check_workers(int(args.workers))
    except (ValueError, LoadError):
        print(f"live_load: error: --workers must be an integer from 1 to {MAX_WORKERS}, not {args.workers!r}",
              file=sys.stderr)
        return 2
    problem = missing_prerequisite(need_tcpreplay=False)
    if problem:
        print(f"live_load: {problem}", file=sys.stderr)
        return 77
    try:
        ensure_tcpreplay(install=not args.no_install)
        path = args.capture or ensure_capture(args.packets, args.keep)
        capture = inspect_capture(path)
        print(f"capture {capture.path}: {capture.frames:,} frames, {capture.vlan_tagged:,} VLAN-tagged, largest "
              f"{capture.largest} bytes, {len(capture.rejected):,} not passed by the sensor's BPF filter",
              flush=True)
        load_before = os.getloadavg()[0]
        with tempfile.TemporaryDirectory(prefix="icmpsensor-load-") as tmp:
            result = run_load(capture, rates, args.seconds, args.repeat, Path(tmp), args.buffer_mb << 20,
                              journald=not args.no_journald, progress=True, timer=args.timer, workers=args.workers)
    except LoadError as exc:
        print(f"live_load: error: {exc}", file=sys.stderr)
        return 1
    if args.workers > 1:
        setup = (f"{args.workers} workers (capture.workers: {args.workers}, one PACKET_FANOUT_HASH group; pids "
                 f"{' '.join(map(str, result.worker_pids))})")
        columns = ("counters: stats.log's sums over the workers\n"
                   "CPU wrk/main = the worker processes together / the main process, share of one core during the "
                   "burst (the workers' may exceed 100 %); µs/pkt = every process's CPU per packet processed; "
                   "read split = packets read per worker, % of the total\n")
    else:
        setup = "one worker"
        columns = "CPU det/cap = sensor detector / capture thread, share of one core during the burst\n"
    print(f"\n{setup}; burst {args.seconds:g} s per rate; capture.buffer_size {args.buffer_mb} MiB; "
          f"tcpreplay --timer={args.timer}; {os.cpu_count()} CPUs, load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after\n" + columns)
    print(table(result.rows))
    print()
    for line in verdict(result.rows):
        print(line)
    for note in anomalies(result):
        print("note:", note)
    if result.final_record is not None:
        last = result.final_record
        print("final stats record: " + ", ".join(f"{k} {last.get(k)}" for k in COUNTERS)
              + f", decode errors {last.get('decode', {}).get('errors')}, notices {last.get('notices')}")
        for w in last.get("workers", ()):
            print(f"  worker {w.get('worker')} (pid {w.get('pid')}, {w.get('state')}): "
                  + ", ".join(f"{k} {w.get(k)}" for k in ("packets_read", "kernel_dropped", "queue_dropped", "flows",
                                                           "notices")))
    if args.json:
        rows = [{**{k: v for k, v in asdict(r).items() if k != "record"}, "loss": r.loss, "silent": r.silent,
                 "before_capture": r.before_capture, "overcounted": r.overcounted} for r in result.rows]
        args.json.write_text(json.dumps({"workers": args.workers, "worker_pids": result.worker_pids, "rows": rows,
                                         "verdict": verdict(result.rows)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
