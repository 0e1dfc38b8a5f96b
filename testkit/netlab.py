"""A tiny lab of network namespaces for the live tests, and a sensor process to run in it.

Two namespaces joined by a veth pair: the *sensor* host (10.231.0.1, fd31::1) whose
interface the sensor captures on, and the *peer* host (10.231.0.2 and 10.231.0.3,
fd31::2) that sends traffic to it. Traffic only ever crosses this veth pair. The
sensor runs in a private mount namespace with its own systemd-journald (tmpfs over
/run/systemd, /run/log and /var/log/journal), so journald entries can be asserted
without touching the host's journal.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from testkit.paths import REPO

SENSOR_IP, PEER_IP, BENIGN_IP = "10.231.0.1", "10.231.0.2", "10.231.0.3"
SENSOR_IP6, PEER_IP6 = "fd31::1", "fd31::2"
SENSOR_IF, PEER_IF = "icms0", "icmp0"


def missing_prerequisite(*tools: str) -> str | None:
    """Why the live tests (and a test that needs `tools` besides, e.g. tcpreplay) cannot run here, or None."""
    if os.geteuid() != 0:
        return "live capture tests need root (network namespaces, raw sockets)"
    for tool in ("ip", "unshare", "nsenter", "hping3", "ping", *tools):
        if shutil.which(tool) is None:
            return f"live capture tests need {tool} (bash packaging/dev.sh setup installs it)"
    return None


def run(*argv: str, timeout: float = 30.0, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=check)


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


class Lab:
    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.sensor_ns = f"icms-s{tag}"
        self.peer_ns = f"icms-p{tag}"

    def up(self) -> None:
        self.down()
        run("ip", "netns", "add", self.sensor_ns)
        run("ip", "netns", "add", self.peer_ns)
        self.plug()
        for ns in (self.sensor_ns, self.peer_ns):
            run("ip", "-n", ns, "link", "set", "lo", "up")
        # No rate limit on the sensor host's ICMP replies: the tests send hundreds per second.
        self.in_sensor("sysctl", "-qw", "net.ipv4.icmp_ratelimit=0")
        self.in_sensor("sysctl", "-qw", "net.ipv6.icmp.ratelimit=0")
        assert wait_for(lambda: self.in_peer("ping", "-c", "1", "-W", "1", SENSOR_IP, check=False).returncode == 0,
                        10), "lab: the peer cannot reach the sensor host"

    def plug(self) -> None:
        """The veth pair between the namespaces, addressed and up (again, after `unplug`: new interfaces of the
        same names, as a driver reset or a re-plugged NIC makes)."""
        run("ip", "link", "add", SENSOR_IF, "netns", self.sensor_ns, "type", "veth", "peer", "name", PEER_IF,
            "netns", self.peer_ns)
        for ns, ifname, addrs in (
            (self.sensor_ns, SENSOR_IF, [f"{SENSOR_IP}/24", f"{SENSOR_IP6}/64"]),
            (self.peer_ns, PEER_IF, [f"{PEER_IP}/24", f"{BENIGN_IP}/24", f"{PEER_IP6}/64"]),
        ):
            for addr in addrs:
                extra = ["nodad"] if ":" in addr else []
                run("ip", "-n", ns, "addr", "add", addr, "dev", ifname, *extra)
            run("ip", "-n", ns, "link", "set", ifname, "up")

    def unplug(self) -> None:
        """Delete the veth pair (both ends)."""
        run("ip", "-n", self.peer_ns, "link", "del", PEER_IF)

    def down(self) -> None:
        for ns in (self.sensor_ns, self.peer_ns):
            run("ip", "netns", "del", ns, check=False)

    def in_sensor(self, *argv: str, timeout: float = 30.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ip", "netns", "exec", self.sensor_ns, *argv, timeout=timeout, check=check)

    def in_peer(self, *argv: str, timeout: float = 60.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ip", "netns", "exec", self.peer_ns, *argv, timeout=timeout, check=check)

    # -- traffic (bounded in count and time) ---------------------------------------------------

    def hping3_exfil(self, path: Path, count: int, size: int = 500, interval_us: int = 5000,
                     src: str | None = None) -> None:
        """hping3 in ICMP mode sending `path` as payload, `size` bytes per packet, to the sensor host."""
        argv = ["timeout", "60", "hping3", "-1", "-E", str(path), "-d", str(size), "-u", "-c", str(count),
                "-i", f"u{interval_us}", "-q"]
        if src:
            argv += ["-a", src]
        self.in_peer(*argv, SENSOR_IP, timeout=90, check=False)

    def benign_pings(self, count: int = 20) -> None:
        """Default iputils ping from the benign address: 56-byte payloads with a timestamp."""
        self.in_peer("ping", "-q", "-I", BENIGN_IP, "-c", str(count), "-i", "0.02", "-W", "1", SENSOR_IP,
                     check=False)


def _json_lines(path: Path) -> list[dict[str, object]]:
    """The whole JSON lines of a log being written (a line still being written is left for later)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{") and line.endswith("}")]


def storm_capture(path: Path, flows: int) -> Path:
    """`flows` echo requests from as many spoofed sources to the sensor host, 500 random bytes each (an
    alerted one-packet flow each), as an Ethernet capture for tcpreplay onto the lab's veth."""
    import random

    import dpkt

    dst = bytes(int(x) for x in SENSOR_IP.split("."))
    rng = random.Random(11)
    with path.open("wb") as out:
        writer = dpkt.pcap.Writer(out, linktype=dpkt.pcap.DLT_EN10MB)
        for i in range(flows):
            src = bytes((100, 64 + (i >> 16), (i >> 8) & 255, i & 255))
            echo = dpkt.icmp.ICMP.Echo(id=i & 0xFFFF, seq=1, data=rng.randbytes(500))
            ip = dpkt.ip.IP(src=src, dst=dst, p=1, ttl=64, data=dpkt.icmp.ICMP(type=8, code=0, data=echo))
            ip.len = len(ip)
            frame = dpkt.ethernet.Ethernet(src=b"\x02\0\0\0\0\x02", dst=b"\x02\0\0\0\0\x01", data=ip)
            writer.writepkt(bytes(frame), ts=1_700_000_000 + i * 1e-5)
    return path


@dataclass
class Sensor:
    """A running `icmpsensor -i` in the lab's sensor namespace, with its own journald."""

    proc: subprocess.Popen[str]
    workdir: Path
    log_dir: Path
    ready: bool
    notify: socket.socket | None = None  # its sd_notify socket, kept open after READY=1 (start_sensor keep_notify)

    @property
    def notice_path(self) -> Path:
        return self.log_dir / "notice.log"

    def notices(self) -> list[dict[str, object]]:
        return _json_lines(self.notice_path)

    def stats_records(self) -> list[dict[str, object]]:
        """stats.log's records so far."""
        return _json_lines(self.log_dir / "stats.log")

    def in_mount_ns(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run a command in the sensor's private mount namespace (to see a tmpfs log dir)."""
        return run("nsenter", "-t", str(self.proc.pid), "-m", *argv, check=False)

    def journald_pid(self) -> int | None:
        try:
            return int((self.workdir / "journald.pid").read_text())
        except (OSError, ValueError):
            return None

    def journal(self, *match: str) -> list[dict[str, str]]:
        pid = self.journald_pid()
        if pid is None:
            return []
        out = run("nsenter", "-t", str(pid), "-m", "journalctl", "--no-pager", "-o", "json",
                  "SYSLOG_IDENTIFIER=icmpsensor", *match, check=False)
        return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> tuple[int, float, str]:
        """SIGTERM; returns (exit code, seconds it took, stderr)."""
        start = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
        took = time.monotonic() - start
        self.kill_journald()
        if self.notify is not None:
            self.notify.close()
        return self.proc.returncode, took, err or ""

    def kill_journald(self) -> None:
        pid = self.journald_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            (self.workdir / "journald.pid").unlink(missing_ok=True)


# Runs inside `unshare -m`: private /run/systemd, /run/log, /var/log/journal, a journald, then the sensor.
_WRAPPER = r"""
set -e
mount --make-rprivate /
for d in /run/systemd /run/log /var/log/journal; do mkdir -p "$d"; mount -t tmpfs tmpfs "$d"; done
if [ -n "$LOG_TMPFS_SIZE" ]; then mount -t tmpfs -o "size=$LOG_TMPFS_SIZE" tmpfs "$LOG_DIR"; fi
if [ "$WITH_JOURNALD" = 1 ]; then
    env -u NOTIFY_SOCKET /lib/systemd/systemd-journald </dev/null >/dev/null 2>&1 &  # its READY=1 is not ours
    echo $! > "$WORKDIR/journald.pid"
    i=0; while [ ! -S /run/systemd/journal/socket ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
fi
exec nsenter --net=/run/netns/"$SENSOR_NS" "$@"
"""


def start_sensor(lab: Lab, workdir: Path, config: str, *, journald: bool = True, extra_args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, ready_timeout: float = 20.0,
                 log_tmpfs_size: str = "", stderr: IO[str] | None = None, keep_notify: bool = False) -> Sensor:
    """Start the sensor on the lab's sensor interface and wait for its sd_notify READY=1; its stdout and stderr are
    pipes to the test (`stderr`: that file instead). `keep_notify`: the notify socket stays open after READY=1
    (Sensor.notify; else it is closed, and the sensor's later messages are refused)."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_dir = workdir / "logs"
    log_dir.mkdir(exist_ok=True)
    cfg_path = workdir / "icmpsensor.yaml"
    cfg_path.write_text(config)
    notify_path = workdir / "notify.sock"
    notify_path.unlink(missing_ok=True)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    argv = ["unshare", "-m", "sh", "-c", _WRAPPER, "wrapper", sys.executable, "-m", "icmpsensor",
            "-i", SENSOR_IF, "-c", str(cfg_path), "--log-dir", str(log_dir), *extra_args]
    full_env = {**os.environ, "NOTIFY_SOCKET": str(notify_path), "WORKDIR": str(workdir),
                "SENSOR_NS": lab.sensor_ns, "WITH_JOURNALD": "1" if journald else "0",
                "LOG_TMPFS_SIZE": log_tmpfs_size, "LOG_DIR": str(log_dir),
                "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr or subprocess.PIPE, text=True, env=full_env,
                            cwd=REPO)
    ready = False
    notify.settimeout(0.2)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            message = notify.recv(4096).decode()
        except TimeoutError:
            continue
        if "READY=1" in message.splitlines():
            ready = True
            break
    if keep_notify:
        return Sensor(proc, workdir, log_dir, ready, notify)
    notify.close()
    return Sensor(proc, workdir, log_dir, ready)


def launch_ready(lab: Lab, tmp_path: Path, sensors: list[Sensor], config: str, **kw: object) -> Sensor:
    """Start a sensor (recorded in `sensors` for clean-up) and fail the test unless it gets ready."""
    import pytest

    sensor = start_sensor(lab, tmp_path / f"sensor{len(sensors)}", config, **kw)  # type: ignore[arg-type]
    sensors.append(sensor)
    if not sensor.ready:
        code, _, err = sensor.stop()
        pytest.fail(f"sensor did not become ready (exit {code}): {err.strip()[-2000:]}")
    return sensor
