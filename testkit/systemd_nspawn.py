"""A private systemd to test the packaging against: systemd-nspawn booting an overlay of `/`.

The container:
  * runs in a private mount namespace (`unshare --mount --propagation=private`), where a
    tmpfs holds the overlay's upper layer: nothing it writes reaches the host's `/`, and
    every mount vanishes with the last process in it, even if the test run is killed;
  * boots the host's own systemd (`--boot`) on `overlayfs(lower=/, upper=tmpfs)`, with
    nspawn's private /run and /tmp, `--register=no --keep-unit` (no machined, no host
    systemd needed) and `--link-journal=no` (its journal stays inside);
  * joins a network namespace made for it (`--network-namespace-path=`), one end of a veth
    pair whose other end sits in a second namespace, the *peer*, that sends the test
    traffic; nothing leaves these two namespaces;
  * sees the checkout read-only at /mnt/icmpsensor-src and a wheelhouse at
    /mnt/icmpsensor-wheelhouse.

Commands run inside with `nsenter --target LEADER --all` (the container's PID 1 as seen
from the host), in a clean environment; files are read and written through
/proc/LEADER/root. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from testkit import craft
from testkit.paths import REPO

SRC_IN_CONTAINER = "/mnt/icmpsensor-src"
WHEELHOUSE_IN_CONTAINER = "/mnt/icmpsensor-wheelhouse"
SENSOR_IF = "span0"  # the container's (the sensor's) end of the veth pair
PEER_IF = "peer0"
NET = "10.198.7"
SENSOR_IP = f"{NET}.1"  # destination of the test traffic; nobody answers it (a SPAN port has no address)
CONTAINER_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_COLORS": "0",
    "TERM": "dumb",
}
TOOLS = ("systemd-nspawn", "unshare", "nsenter", "ip", "mount", "timeout")


def missing_prerequisite() -> str | None:
    """Why a container cannot be booted here, or None."""
    if os.geteuid() != 0:
        return "the systemd container tests need root (systemd-nspawn, mounts, network namespaces)"
    for tool in TOOLS:
        if shutil.which(tool) is None:
            package = "systemd-container" if tool == "systemd-nspawn" else "util-linux/iproute2"
            return f"the systemd container tests need {tool} (Debian package {package}; bash packaging/dev.sh setup)"
    if not Path("/usr/lib/systemd/systemd").exists() and not Path("/lib/systemd/systemd").exists():
        return "the systemd container tests need systemd installed (/lib/systemd/systemd) to boot it"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the systemd container tests need overlayfs (modprobe overlay)"
    return None


def run(argv: list[str], timeout: float = 30.0, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kw)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()}")
    return proc


def wait_for(condition: Callable[[], object], timeout: float, interval: float = 0.1) -> object:
    """condition()'s first truthy value within timeout seconds, else its last (falsy) one."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class NetLab:
    """Two network namespaces joined by a veth pair: the sensor's (the container's) and the peer's."""

    def __init__(self, tag: str) -> None:
        self.sensor_ns = f"icmpsd-sensor-{tag}"
        self.peer_ns = f"icmpsd-peer-{tag}"
        self.peer_addrs: list[str] = []

    def up(self, peer_hosts: int = 16) -> None:
        self.down()
        self.remove_stale()
        run(["ip", "netns", "add", self.sensor_ns])
        run(["ip", "netns", "add", self.peer_ns])
        run(["ip", "link", "add", SENSOR_IF, "netns", self.sensor_ns, "type", "veth",
             "peer", "name", PEER_IF, "netns", self.peer_ns])
        for ns, ifname in ((self.sensor_ns, SENSOR_IF), (self.peer_ns, PEER_IF)):
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["ip", "-n", ns, "link", "set", ifname, "up"])
        # The peer has several addresses so that every test has flows of its own.
        self.peer_addrs = [f"{NET}.{10 + i}" for i in range(peer_hosts)]
        for addr in self.peer_addrs:
            run(["ip", "-n", self.peer_ns, "addr", "add", f"{addr}/24", "dev", PEER_IF])
        # The sensor's end has no address, like a SPAN port: a permanent neighbour entry lets the
        # peer send to SENSOR_IP without ARP; the frames reach the sensor's interface and stop there.
        link = json.loads(run(["ip", "-j", "-n", self.sensor_ns, "link", "show", SENSOR_IF]).stdout)
        run(["ip", "-n", self.peer_ns, "neigh", "replace", SENSOR_IP, "lladdr", link[0]["address"],
             "dev", PEER_IF, "nud", "permanent"])

    @staticmethod
    def remove_stale() -> None:
        """Namespaces left by a test run that was killed (their tag is the pid of a dead process)."""
        with contextlib.suppress(OSError):
            for ns in os.listdir("/run/netns"):
                m = re.fullmatch(r"icmpsd-(?:sensor|peer)-(\d+)", ns)
                if m and not Path(f"/proc/{m.group(1)}").exists():
                    run(["ip", "netns", "del", ns], check=False)

    def down(self) -> None:
        for ns in (self.sensor_ns, self.peer_ns):
            if Path("/run/netns", ns).exists():
                run(["ip", "netns", "del", ns], check=False)

    def send_echo(self, src: str, payloads: Iterable[bytes], dst: str = SENSOR_IP, interval: float = 0.002,
                  ident: int = 0x5151, timeout: float = 30.0) -> None:
        """ICMP echo requests from src (a peer address) to dst, one per payload (sequence 1, 2, ...), over a raw
        socket in the peer's namespace."""
        messages = [craft.icmp4_message(craft.ECHO_REQUEST, 0, ident, seq, payload).hex()
                    for seq, payload in enumerate(payloads, 1)]
        run(["ip", "netns", "exec", self.peer_ns, sys.executable, "-c", _SENDER, src, dst, str(interval), *messages],
            timeout=timeout)


# Runs in the peer's namespace: sends each ICMP message (hex) from src to dst, `interval` seconds apart.
_SENDER = r"""
import socket, sys, time
src, dst, interval, *messages = sys.argv[1:]
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
sock.bind((src, 0))
for message in messages:
    sock.sendto(bytes.fromhex(message), (dst, 0))
    time.sleep(float(interval))
"""


def exfil_payloads(count: int, size: int, seed: int) -> list[bytes]:
    """count distinct payloads of size bytes: a file carried in echo requests."""
    out = []
    for i in range(count):
        block = struct.pack("!II", seed, i)
        out.append((block * (size // len(block) + 1))[:size])
    return out


def _terminate_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies (it survives the execs of
    unshare, bash and systemd-nspawn, which powers the container off on SIGTERM)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


class Container:
    """A booted systemd in systemd-nspawn; see the module docstring."""

    def __init__(self, workdir: Path, netns: str, wheelhouse: Path, name: str) -> None:
        self.workdir = workdir
        self.netns = netns
        self.wheelhouse = wheelhouse
        self.name = name
        self.console = workdir / "console.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.leader = 0

    # -- lifecycle -----------------------------------------------------------------------------

    def argv(self) -> list[str]:
        """The whole command: private mount namespace, overlay of /, systemd-nspawn --boot."""
        mnt = self.workdir / "mnt"
        nspawn = [
            "systemd-nspawn", "--quiet", "--boot",
            f"--directory={mnt}/root",
            f"--machine={self.name}",
            "--register=no", "--keep-unit", "--link-journal=no",
            f"--network-namespace-path=/run/netns/{self.netns}",
            f"--bind-ro={REPO}:{SRC_IN_CONTAINER}",
            f"--bind-ro={self.wheelhouse}:{WHEELHOUSE_IN_CONTAINER}",
            "--console=read-only",
            # Arguments after the options go to the container's systemd as its kernel command line:
            # boot only to basic.target (journald, sockets, timers), none of the host's services.
            "systemd.unit=basic.target", "systemd.show_status=0",
        ]
        script = (
            "set -e\n"
            f"M={shlex.quote(str(mnt))}\n"
            'mkdir -p "$M"\n'
            # upper and work on a tmpfs: overlayfs refuses an upper layer inside its lower one (/)
            'mount -t tmpfs -o mode=0755,size=2g icmpsensor-test "$M"\n'
            'mkdir -p "$M/upper" "$M/work" "$M/root"\n'
            'mount -t overlay -o lowerdir=/,upperdir="$M/upper",workdir="$M/work" icmpsensor-test "$M/root"\n'
            f"exec {shlex.join(nspawn)}\n"
        )
        return ["unshare", "--mount", "--propagation=private", "bash", "-c", script]

    def boot(self, timeout: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.console, "wb") as console:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=console,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_terminate_with_parent)
        deadline = time.monotonic() + timeout

        def leader() -> int:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited {self.proc.returncode if self.proc else '?'}: "
                                   f"{self.console_tail()}")
            try:
                children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
                for child in children:
                    if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                        return int(child)
            except OSError:
                pass
            return 0

        self.leader = int(wait_for(leader, timeout))
        if not self.leader:
            raise RuntimeError(f"the container's systemd did not appear within {timeout}s: {self.console_tail()}")

        def booted() -> bool:
            left = max(1.0, deadline - time.monotonic())
            proc = self.run("systemctl is-system-running --wait", timeout=left, check=False)
            return proc.stdout.strip() in ("running", "degraded")

        if not wait_for(booted, max(1.0, deadline - time.monotonic()), interval=0.3):
            state = self.run("systemctl is-system-running; systemctl --failed --no-legend", check=False).stdout
            raise RuntimeError(f"the container did not finish booting within {timeout}s ({state.strip()}): "
                               f"{self.console_tail()}")

    def poweroff(self, timeout: float = 30.0) -> None:
        """Power the container off (SIGRTMIN+4 to its systemd); kill it if that takes too long."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None and self.leader:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.leader, signal.SIGRTMIN + 4)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        if proc.poll() is None:
            # Killing the container's PID 1 ends its whole PID namespace; nspawn then exits.
            for pid in (self.leader, proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        # nspawn leaves this (empty) directory behind when the host's /run is not a tmpfs.
        with contextlib.suppress(OSError):
            Path("/run/systemd/nspawn/propagate", self.name).rmdir()
        self.proc = None

    def console_tail(self, lines: int = 15) -> str:
        try:
            text = self.console.read_bytes().decode(errors="replace")
        except OSError:
            return "(no console output)"
        return "console: " + " | ".join(text.strip().splitlines()[-lines:])

    # -- inside --------------------------------------------------------------------------------

    def run(self, command: str, timeout: float = 30.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A shell command in the container (all its namespaces, clean environment)."""
        argv = ["nsenter", f"--target={self.leader}", "--all", "env", "-i",
                *(f"{k}={v}" for k, v in CONTAINER_ENV.items()), "bash", "-c", command]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"in the container, `{command}` did not finish within {timeout}s") from exc
        if check and proc.returncode != 0:
            raise AssertionError(f"in the container, `{command}` exited {proc.returncode}:\n"
                                 f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        return proc

    def path(self, path: str) -> Path:
        """A path inside the container, as the host sees it."""
        return Path(f"/proc/{self.leader}/root") / path.lstrip("/")

    def read(self, path: str) -> str:
        try:
            return self.path(path).read_text()
        except FileNotFoundError:
            return ""

    def write(self, path: str, text: str) -> None:
        target = self.path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    # -- systemd -------------------------------------------------------------------------------

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run(f"systemctl show {shlex.quote(unit)} " + " ".join(f"-p {p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, *matches: str) -> list[dict[str, object]]:
        """journalctl -o json entries with the given matches (and __CURSOR, always there)."""
        args = ["journalctl", "--no-pager", "-o", "json", "--output-fields="
                "MESSAGE,MESSAGE_ID,SYSLOG_IDENTIFIER,NOTE,SRC,DST,UID,N,BYTES_SENT,BYTES_RECEIVED,START,END,"
                "PRIORITY,_SYSTEMD_UNIT,_SYSTEMD_INVOCATION_ID,INVOCATION_ID,_PID,UNIT,DECODER", *matches]
        out = self.run(shlex.join(args)).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]
