"""A deterministic synthetic ICMP capture: the throughput benchmark's mix (and the memory and equivalence tests').

`generate(OUT, packets=N, seed=S)` writes it (`python -m bench.synth` is its command line).
The default mix (N frames exactly, 1,000,000 by default) is an hour of a campus SPAN port,
every benign payload byte for byte as testkit/benign_corpus.py builds it (the layouts the
detector's templates know):

* keepalive: hosts pinging their gateway every few seconds all hour (iputils, Windows, macOS,
  BusyBox; some over IPv6);
* monitoring: fping -l loops over hundreds of targets (some dead), Nagios check_icmp,
  blackbox_exporter, pro-bing agents, Cisco IOS pings, nmap discovery sweeps and OS detection;
* interactive pings: thousands of host pairs, `ping -c K` with the usual sizes and a few -p patterns;
* two floods (iputils `ping -f`, hping3 `--icmp --flood` with no data);
* mtr and traceroute (ICMP and UDP) runs: time exceeded from every hop quoting the probe;
* ICMP errors quoting real datagrams: port unreachable for DNS/NTP/syslog to closed ports,
  host unreachable for TCP SYNs, fragmentation needed / packet too big, IPv6 errors;
* a few fragmented large pings (IPv4 and IPv6);
* about 10 % IPv6 and 5 % 802.1Q-tagged frames (a few QinQ);
* several concurrent exfiltration flows (testkit/exfil_corpus.py tools plus raw file chunks over
  IPv6 and in fragmented, VLAN-tagged echo requests), recorded as ground truth.

`generate(OUT, flood_sources=N)` writes the memory-test variant instead: an hping3 `--rand-source`
echo flood from N distinct spoofed IPv4 sources (each sends one request, the victim answers each
unless `flood_replies=False`), with one real exfiltration flow (raw file chunks) running through it.

`generate(OUT, packets=N, kind=K)` writes one of the adversarial captures of the throughput
benchmark (issue 13), N frames each (`ADVERSARIAL`):

* `storm`: a notice storm, one echo request with 500 random bytes from each of N spoofed sources
  to one target (N one-packet alerted flows);
* `storm_pairs`: the notice storm with a spoofed destination of its own per flow too (no host
  repeats, so no per-host quota folds it);
* `novel_flood`: N echo requests from N/4 spoofed sources to one target, four each, every one
  with 16-64 random bytes (every payload novel; no flow reaches the alert threshold);
* `tiny_fragments`: echo requests from spoofed sources, each cut into 8-byte IPv4 fragments
  (a 56-byte iputils payload: 8 fragments), every fourth datagram missing its last fragment;
* `headless_fragments`: non-first IPv4 fragments from spoofed sources (16 random bytes at offset 1480, no
  MF: datagrams that never complete, evicted from the reassembly table in turn), and through them an
  exfiltration (HEADLESS_EXFIL) whose requests' first fragment carries the ICMP header alone and whose data
  comes after HEADLESS_GAP spoofed fragments: its datagrams are evicted before their data comes, and its
  bytes are judged headless (decode/fragments.py);
* `crafted_messages`: datagrams of JUMBO_PAYLOAD bytes in MTU-sized fragments whose messages are built for
  the most work per byte: node information replies of one-letter names, MLDv2 reports of thousands of
  sources, router advertisements of 8-byte options, unreachables of thousands of RFC 4884 extension objects,
  echo requests of one protobuf field over and over (pingtunnel's magic in the middle) and of cmd.exe
  prompt lines (CRAFTED_KINDS, in turn);
* `novel_mix`: the default mix with a quarter of its frames replaced by file-like chunks (CSV
  records in 512-1400-byte echo requests, each echoed) over hundreds of host pairs, each a
  ground-truth exfiltration pair.

Beside OUT.pcap, OUT.truth.json holds the ground truth: the exfiltrating (source, destination)
pairs with their tool and times, the packet counts by category, IPv6 / VLAN / fragment counts.

Speed: frames are packed with `struct` from per-path link headers (checksums by craft.checksum),
payloads from per-tool templates built once with the corpus builders, and one buffered raw pcap
writer; streams are merged in time order with heapq. 1 M frames take about 12 s on a small
machine (2 cores, one used).
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import json
import math
import random
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path

from icmpsensor.decode.packet import IcmpPacket
from testkit import benign_corpus as bc
from testkit import exfil_corpus as xc
from testkit.craft import checksum

START = bc.START  # 2023-11-14 22:13:20 UTC
HOUR = 3600.0
SEND_LAG = bc.SEND_LAG
MTU = 1500
FRAGMENT_DATA = (MTU - 20) // 8 * 8  # the data an IPv4 fragment of an MTU-sized frame carries (Link.fragments)
LINKTYPE_ETHERNET = 1

Frame = tuple[float, bytes]
Group = list[Frame]  # first item: the packet that starts it; the rest (answers) come later
PayloadFn = Callable[[float], bytes]  # send time -> payload

_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_ECHO = struct.Struct("!BBHHH")
_MSG = struct.Struct("!BBH")
_FRAG6 = struct.Struct("!BBHI")
_PSEUDO6 = struct.Struct("!I3xB")  # upper-layer length, zeros, next header
_REC = struct.Struct("<IIII")
_TV64 = struct.Struct("<qq")
_TV32_BE = struct.Struct(">II")
_U32_LE = struct.Struct("<I")

ECHO4 = (8, 0)
ECHO6 = (128, 129)
_ECHO_TYPES_V4 = frozenset((0, 8))
_ECHO_TYPES_V6 = frozenset((128, 129))

# Shares of the default mix (normalised so that the plan slightly overshoots the packet count;
# the writer stops at exactly --packets, which only trims the last seconds of the hour).
SHARES = {
    "keepalive": 0.20,
    "monitoring": 0.17,
    "interactive": 0.22,
    "flood": 0.15,
    "path_trace": 0.07,
    "errors": 0.07,
    "agents": 0.06,
    "fragments": 0.004,
}
OVERSHOOT = 1.02


# -- addresses --------------------------------------------------------------------------------


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def text(packed: bytes) -> str:
    return str(ipaddress.ip_address(packed))


def _mac(addr: bytes) -> bytes:
    return b"\x02" + addr[-4:] + bytes((len(addr),))


# -- frames -----------------------------------------------------------------------------------------


def _with_checksum(data: bytes, at: int, covered: bytes) -> bytes:
    """`data` with the checksum of `covered` (which includes `data`, its checksum field zero) at offset `at`."""
    return data[:at] + checksum(covered).to_bytes(2, "big") + data[at + 2 :]


class Link:
    """One direction between two hosts: link header, addresses and the IP header fields that stay fixed."""

    __slots__ = ("dst", "eth", "ip_id", "src", "ttl", "v6")

    def __init__(self, src: bytes, dst: bytes, tags: tuple[int, ...] = (), ttl: int = 64, ip_id: int = 0) -> None:
        self.src, self.dst, self.ttl = src, dst, ttl
        self.v6 = len(src) == 16
        vlan = b"".join(struct.pack("!HH", 0x88A8 if i == 0 and len(tags) > 1 else 0x8100, tag)
                        for i, tag in enumerate(tags))
        self.eth = _mac(dst) + _mac(src) + vlan + (b"\x86\xdd" if self.v6 else b"\x08\x00")
        self.ip_id = ip_id

    # ICMP messages

    def echo(self, icmp_type: int, code: int, ident: int, seq: int, payload: bytes, ip_id: int | None = None) -> bytes:
        """One frame carrying an echo message (the caller keeps it within the MTU)."""
        return self._frame(self._checksummed(_ECHO.pack(icmp_type, code, 0, ident, seq) + payload), ip_id)

    def message(self, icmp_type: int, code: int, body: bytes, ip_id: int | None = None) -> bytes:
        """A non-echo message: `body` is everything after type, code and checksum."""
        return self._frame(self._checksummed(_MSG.pack(icmp_type, code, 0) + body), ip_id)

    def _checksummed(self, message: bytes) -> bytes:
        """The ICMP message with its checksum; ICMPv6's also covers the pseudo-header (RFC 8200 8.1)."""
        covered = b"".join((self.src, self.dst, _PSEUDO6.pack(len(message), 58), message)) if self.v6 else message
        return _with_checksum(message, 2, covered)

    def _ip4_header(self, length: int, ip_id: int, flags: int) -> bytes:
        header = _IP4.pack(0x45, 0, length, ip_id, flags, self.ttl, 1, 0, self.src, self.dst)
        return _with_checksum(header, 10, header)

    def _frame(self, message: bytes, ip_id: int | None) -> bytes:
        if self.v6:
            return b"".join((self.eth, _IP6.pack(0x60000000, len(message), 58, self.ttl, self.src, self.dst), message))
        if ip_id is None:
            ip_id = self.ip_id = (self.ip_id + 1) & 0xFFFF
        return b"".join((self.eth, self._ip4_header(20 + len(message), ip_id, 0), message))

    def ip_packet(self, frame: bytes) -> bytes:
        """The IP packet inside one of this path's frames (to quote it in an error)."""
        return frame[len(self.eth):]

    def fragments(self, frame: bytes) -> list[bytes]:
        """`frame` as it leaves an MTU-1500 link: itself, or its IP fragments (each a frame)."""
        packet = frame[len(self.eth):]
        if len(packet) <= MTU:
            return [frame]
        out = []
        if self.v6:
            self.ip_id += 1
            rest, ident = packet[40:], self.ip_id & 0xFFFFFFFF
            step = (MTU - 48) // 8 * 8
            for at in range(0, len(rest), step):
                chunk = rest[at : at + step]
                more = 1 if at + step < len(rest) else 0
                head = _IP6.pack(0x60000000, 8 + len(chunk), 44, self.ttl, self.src, self.dst)
                out.append(b"".join((self.eth, head, _FRAG6.pack(58, 0, at | more, ident), chunk)))
            return out
        ip_id = struct.unpack_from("!H", packet, 4)[0]
        rest, step = packet[20:], FRAGMENT_DATA
        for at in range(0, len(rest), step):
            chunk = rest[at : at + step]
            flags = (0x2000 if at + step < len(rest) else 0) | at // 8
            out.append(b"".join((self.eth, self._ip4_header(20 + len(chunk), ip_id, flags), chunk)))
        return out


class Net:
    """Paths between hosts, created once; hosts on tagged access ports get their VLAN tags."""

    def __init__(self) -> None:
        self.paths: dict[tuple[bytes, bytes], Link] = {}
        self.tags: dict[bytes, tuple[int, ...]] = {}
        self.ttls: dict[bytes, int] = {}

    def path(self, src: bytes, dst: bytes) -> Link:
        key = (src, dst)
        found = self.paths.get(key)
        if found is None:
            found = self.paths[key] = self.fresh(src, dst, self.ttls.get(src, 64))
        return found

    def fresh(self, src: bytes, dst: bytes, ttl: int) -> Link:
        """A path of its own (not shared with other streams), e.g. for probes with a given TTL."""
        tags = self.tags.get(src) or self.tags.get(dst) or ()
        return Link(src, dst, tags, ttl, ip_id=(src[-1] << 8 | dst[-1]) * 257 & 0xFFFF)

    def render(self, pkt: IcmpPacket) -> list[bytes]:
        """Frames of a decoded-form packet (as the corpus modules build them), fragmented when too big."""
        path = self.path(pkt.src, pkt.dst)
        if pkt.icmp_type in (_ECHO_TYPES_V6 if pkt.ipv6 else _ECHO_TYPES_V4):
            frame = path.echo(pkt.icmp_type, pkt.icmp_code, pkt.ident, pkt.seq, pkt.payload)
        else:
            frame = path.message(pkt.icmp_type, pkt.icmp_code, pkt.payload)
        return path.fragments(frame)


def ordered(groups: Iterable[Group]) -> Iterator[Frame]:
    """Frames in time order, given groups whose first frames come in time order and whose other
    frames (replies, errors) are no earlier than their group's first."""
    pending: list[Frame] = []
    push, pop = heapq.heappush, heapq.heappop
    for group in groups:
        first = group[0]
        while pending and pending[0][0] <= first[0]:
            yield pop(pending)
        yield first
        for item in group[1:]:
            push(pending, item)
    while pending:
        yield pop(pending)


def from_packets(net: Net, packets: Iterable[IcmpPacket]) -> Iterator[Frame]:
    """Frames of corpus-built packets (any order), in time order; fragments 1 us apart."""
    frames = []
    for pkt in packets:
        for k, frame in enumerate(net.render(pkt)):
            frames.append((pkt.ts + k * 1e-6, frame))
    frames.sort(key=itemgetter(0))
    yield from frames


# -- payload templates (exactly the corpus builders' bytes, built once) ---------------------------


def _sec_usec(t: float) -> tuple[int, int]:
    sec = int(t)
    return sec, min(int((t - sec) * 1_000_000), 999_999)


def iputils_fn(size: int, pattern: bytes | None = None) -> PayloadFn:
    """benign_corpus.iputils_payload(size, t, pattern): the fill with a 64-bit timeval over its start."""
    template = bc.iputils_payload(size, 0.0, pattern)
    if size < 16:
        return lambda _t: template
    tail = template[16:]
    pack = _TV64.pack
    return lambda t: pack(*_sec_usec(t)) + tail


def bsd_fn(size: int, pattern: bytes | None = None) -> PayloadFn:
    """benign_corpus.bsd_payload(size, t, pattern=...): macOS ping, tv32 (sec, usec) then the fill."""
    template = bc.bsd_payload(size, 0.0, pattern=pattern)
    if size < 8:
        return lambda _t: template
    tail = template[8:]
    pack = _TV32_BE.pack
    return lambda t: pack(*_sec_usec(t)) + tail


def busybox_fn(size: int, boot_ts: float, pattern: int = 0) -> PayloadFn:
    """benign_corpus.busybox_payload(size, monotonic_us, pattern) with monotonic_us since boot_ts."""
    template = bc.busybox_payload(size, 0, pattern)
    tail = template[4:]
    pack = _U32_LE.pack
    return lambda t: pack(int((t - boot_ts) * 1e6) & 0xFFFFFFFF) + tail


def const_fn(payload: bytes) -> PayloadFn:
    return lambda _t: payload


# -- echo sessions ----------------------------------------------------------------------------------


@dataclass
class EchoRun:
    """One ping process: `count` requests every `interval` s from `src` to `dst` and their replies."""

    src: bytes
    dst: bytes
    start: float
    count: int
    interval: float
    payload: PayloadFn
    ident: int
    seq0: int = 1
    rtt: float = 0.004
    answered: bool = True
    seq_step: int = 1
    swap: bool = False  # hping3 writes id and seq in host byte order
    fragment: bool = False

    @property
    def packets(self) -> int:
        return self.count * (2 if self.answered else 1)


def _swap16(value: int) -> int:
    return (value & 0xFF) << 8 | value >> 8


def echo_groups(net: Net, run: EchoRun, rng: random.Random, until: float) -> Iterator[Group]:
    fwd, back = net.path(run.src, run.dst), net.path(run.dst, run.src)
    req_type, rep_type = ECHO6 if fwd.v6 else ECHO4
    payload_of, ident, rtt, answered = run.payload, run.ident, run.rtt, run.answered
    spread = run.interval * 0.002
    for i in range(run.count):
        ts = run.start + i * run.interval + spread * rng.random()
        if ts >= until:
            return
        data = payload_of(ts - SEND_LAG)
        seq = (run.seq0 + i * run.seq_step) & 0xFFFF
        if run.swap:
            seq = _swap16(seq)
        request = fwd.echo(req_type, 0, ident, seq, data)
        back_ts = ts + rtt * (0.8 + 0.4 * rng.random())
        if not run.fragment:
            if answered:
                yield [(ts, request), (back_ts, back.echo(rep_type, 0, ident, seq, data))]
            else:
                yield [(ts, request)]
            continue
        group = [(ts + k * 1e-6, f) for k, f in enumerate(fwd.fragments(request))]
        if answered:
            reply = back.echo(rep_type, 0, ident, seq, data)
            group += [(back_ts + k * 1e-6, f) for k, f in enumerate(back.fragments(reply))]
        yield group


def merge(streams: Iterable[Iterator[Frame]]) -> Iterator[Frame]:
    return heapq.merge(*streams, key=itemgetter(0))


# -- the plan ---------------------------------------------------------------------------------------


@dataclass
class Exfil:
    tool: str
    src: str
    dst: str
    start: float
    end: float = 0.0
    packets: int = 0
    ipv6: bool = False
    vlan: bool = False
    fragmented: bool = False
    note: str = ""


@dataclass
class Plan:
    """Everything the generator decided before writing: streams by category and the ground truth."""

    net: Net
    streams: dict[str, list[Iterator[Frame]]] = field(default_factory=dict)
    expected: dict[str, int] = field(default_factory=dict)  # planned packets per category
    exfil: list[Exfil] = field(default_factory=list)
    unlisted_pairs: int = 0  # host pairs whose paths are not cached in `net` (spoofed sources)

    def add(self, category: str, stream: Iterator[Frame], packets: int) -> None:
        self.streams.setdefault(category, []).append(stream)
        self.expected[category] = self.expected.get(category, 0) + packets


class Hosts:
    """Address pools: LAN clients (v4 and v6), internal and external servers, routers."""

    def __init__(self, rng: random.Random, net: Net) -> None:
        self.rng, self.net = rng, net
        self.clients4 = [ip(f"10.{20 + k // 250}.{k % 250 // 50}.{k % 50 + 10}") for k in range(6000)]
        self.clients6 = [ip(f"fd00:20:{k // 250:x}::{k % 250 + 10:x}") for k in range(1500)]
        self.servers4 = [ip(f"10.1.{k // 200}.{k % 200 + 20}") for k in range(400)]
        self.servers4 += [ip(f"198.18.{k // 200}.{k % 200 + 1}") for k in range(600)]
        self.servers6 = [ip(f"fd00:1:{k // 200:x}::{k % 200 + 20:x}") for k in range(200)]
        self.servers6 += [ip(f"2001:db8:{k // 100 + 0x10:x}::{k % 100 + 1:x}") for k in range(300)]
        for pool, share in ((self.clients4, 0.06), (self.clients6, 0.06), (self.servers4, 0.04)):
            for addr in pool:
                if rng.random() < share:
                    vid = rng.randrange(100, 400)
                    net.tags[addr] = (rng.randrange(2, 50), vid) if rng.random() < 0.1 else (vid,)
        for addr in self.clients4[1::3]:
            net.ttls[addr] = 128  # Windows hosts

    def client(self, v6: bool = False) -> bytes:
        return self.rng.choice(self.clients6 if v6 else self.clients4)

    def server(self, v6: bool = False) -> bytes:
        return self.rng.choice(self.servers6 if v6 else self.servers4)


def _tool_payload(rng: random.Random, tool: str, v6: bool) -> tuple[PayloadFn, int, int, int, float]:
    """(payload, ident, seq0, default count, interval) of one ping process."""
    if tool == "windows":
        size = rng.choice((32,) * 8 + (0, 64, 500, 1000, 1472))
        return const_fn(bc.windows_payload(size)), 1, rng.randrange(1, 60000), 4, 1.0
    if tool == "macos":
        size = rng.choice((56,) * 9 + (100,))
        pattern = b"\xab\xcd\xef" if rng.random() < 0.03 else None
        return bsd_fn(size, pattern), rng.randrange(1, 0xFFFF), 0, 10, 1.0
    if tool == "busybox":
        size = rng.choice((56,) * 9 + (100,))
        boot = START - rng.uniform(3_600, 40 * 86_400)
        return busybox_fn(size, boot, 0x5A if rng.random() < 0.05 else 0), rng.randrange(1, 0xFFFF), 0, 5, 1.0
    size = rng.choice((56,) * 14 + (0, 8, 16, 100, 1000, 1472))
    pattern = None
    if rng.random() < 0.04:
        pattern = rng.choice((bytes.fromhex("deadbeef00ff"), bytes(range(0x30, 0x40)), b"\xff", b"\xaa\x55"))
    interval = 0.2 if rng.random() < 0.05 else 1.0
    return iputils_fn(size, pattern), rng.randrange(1, 0xFFFF), 1, 10, interval


def plan_keepalive(plan: Plan, hosts: Hosts, rng: random.Random, budget: int, duration: float) -> None:
    """Hosts pinging their gateway (or a fixed server) all hour, every few seconds."""
    net, used, k = plan.net, 0, 0
    while used < budget:
        v6 = rng.random() < 0.15
        src = hosts.clients6[k % len(hosts.clients6)] if v6 else hosts.clients4[(k * 7) % len(hosts.clients4)]
        gateway = ip(text(src).rsplit(":", 1)[0] + ":1") if v6 else ip(text(src).rsplit(".", 1)[0] + ".1")
        dst = gateway if rng.random() < 0.7 else hosts.server(v6)
        tool = rng.choice(("iputils",) * 4 + ("windows",) * 3 + ("macos",) * 2 + ("busybox",))
        if v6 and tool in ("macos", "busybox"):
            tool = "iputils"
        payload, ident, seq0, _, _ = _tool_payload(rng, tool, v6)
        interval = rng.choice((2.0, 5.0, 5.0, 10.0, 10.0, 30.0))
        begin = START + rng.uniform(0, interval) + (rng.uniform(0, duration / 2) if rng.random() < 0.2 else 0)
        count = int((START + duration - begin) / interval)
        run = EchoRun(src, dst, begin, count, interval, payload, ident, seq0, rtt=rng.uniform(2e-4, 2e-3))
        plan.add("keepalive", ordered(echo_groups(net, run, random.Random(rng.random()), START + duration)),
                 run.packets)
        used += run.packets
        k += 1


def plan_monitoring(plan: Plan, hosts: Hosts, rng: random.Random, budget: int, duration: float) -> None:
    """fping -l loops: each monitor pings its targets in turn (10 ms apart) every period; dead targets
    never answer. fping's sequence number counts every packet it sends."""
    period = 60.0
    per_target = 2 * int(duration / period)
    targets_total = max(3, budget // per_target)
    monitors = max(1, min(4, targets_total // 150))
    for m in range(monitors):
        src = ip(f"10.1.250.{10 + m}")
        count = targets_total // monitors
        targets = rng.sample(hosts.servers4 + hosts.clients4[:2000], count)
        dead = {t for t in targets if rng.random() < 0.08}
        ident = rng.randrange(1, 0xFFFF)
        plan.add("monitoring", ordered(_fping_groups(plan.net, src, targets, dead, ident, START + m * 7.3, period,
                                                     duration, random.Random(rng.random()))),
                 count * int(duration / period) * 2 - len(dead) * int(duration / period))


def _fping_groups(net: Net, src: bytes, targets: list[bytes], dead: set[bytes], ident: int, start: float,
                  period: float, duration: float, rng: random.Random) -> Iterator[Group]:
    data = bc.fping_payload(56)
    paths = [(net.path(src, t), net.path(t, src), t in dead) for t in targets]
    seq = 0
    rounds = int(duration / period)
    gap = min(0.01, period * 0.9 / len(paths))  # fping -i 10 (ms), unless the round would overrun
    for r in range(rounds):
        base = start + r * period
        for k, (fwd, back, is_dead) in enumerate(paths):
            ts = base + k * gap
            if ts >= START + duration:
                return
            request = fwd.echo(8, 0, ident, seq, data)
            if is_dead:
                yield [(ts, request)]
            else:
                yield [(ts, request), (ts + rng.uniform(2e-4, 3e-3), back.echo(0, 0, ident, seq, data))]
            seq = (seq + 1) & 0xFFFF


def plan_interactive(plan: Plan, hosts: Hosts, rng: random.Random, budget: int, duration: float) -> None:
    """People typing ping: many host pairs, a few to a few hundred packets each."""
    runs: list[EchoRun] = []
    used = 0
    while used < budget:
        v6 = rng.random() < 0.15
        tool = rng.choice(("iputils",) * 4 + ("windows",) * 3 + ("macos",) * 2 + ("busybox",))
        if v6 and tool in ("macos", "busybox"):
            tool = "iputils"
        payload, ident, seq0, default, interval = _tool_payload(rng, tool, v6)
        count = default if rng.random() < 0.4 else rng.choice((3, 5, 10, 20, 30, 60, 100, 300))
        begin = START + rng.uniform(0, max(1.0, duration - count * interval))
        run = EchoRun(hosts.client(v6), hosts.server(v6), begin, count, interval, payload, ident, seq0,
                      rtt=rng.uniform(3e-4, 0.08), answered=rng.random() > 0.05)
        runs.append(run)
        used += run.packets
    runs.sort(key=lambda r: r.start)
    # Sessions are merged in batches so that only a few hundred generators are live at once.
    net = plan.net
    for chunk in range(0, len(runs), 400):
        batch = runs[chunk : chunk + 400]
        streams = [ordered(echo_groups(net, run, random.Random(rng.random()), START + duration)) for run in batch]
        plan.add("interactive", merge(streams), sum(r.packets for r in batch))


def plan_floods(plan: Plan, rng: random.Random, budget: int, duration: float) -> None:
    """iputils ping -f (LAN, ~2,500/s) and hping3 --icmp --flood (no data, ~4,000/s)."""
    net = plan.net
    first = budget // 2
    count = first // 2
    run = EchoRun(ip("10.1.200.5"), ip("10.1.0.20"), START + 0.31 * duration, count, 1 / 2500, iputils_fn(56),
                  0x4F1A, 1, rtt=1.5e-4)
    plan.add("flood", ordered(echo_groups(net, run, random.Random(rng.random()), START + duration)), run.packets)
    count = (budget - first) // 2
    pid = 0x3A7C
    run = EchoRun(ip("10.1.200.6"), ip("198.18.7.7"), START + 0.62 * duration, count, 1 / 4000, const_fn(b""),
                  _swap16(pid), 0, rtt=9e-4, swap=True)
    plan.add("flood", ordered(echo_groups(net, run, random.Random(rng.random()), START + duration)), run.packets)


def _route(rng: random.Random, hops: int, v6: bool) -> list[bytes]:
    base = rng.randrange(1, 200)
    if v6:
        return [ip(f"2001:db8:ff{base % 16:x}::{k + 1:x}") for k in range(hops - 1)]
    return [ip(f"172.16.{(base + k) % 250}.{1 + k}") for k in range(hops - 1)]


def _mtr_groups(net: Net, src: bytes, dst: bytes, start: float, rounds: int, hops: int, ident: int,
                data: bytes, rng: random.Random, until: float, probes: int = 1, round_gap: float = 1.0,
                first_seq: int = 33000) -> Iterator[Group]:
    """mtr (probes=1, one probe per TTL per round) or traceroute -I (probes=3): every TTL below the
    destination answered by a time-exceeded quoting the probe as it expired (TTL 1), odd hops the
    Linux way (up to 548 bytes), even hops RFC 792 (header + 8); the destination echoes."""
    routers = _route(rng, hops, len(src) == 16)
    senders = [net.fresh(src, dst, ttl) for ttl in range(hops + 1)]
    back = net.path(dst, src)
    expired = Link(src, dst, (), ttl=1)
    v6 = back.v6
    seq = first_seq
    for r in range(rounds):
        for ttl in range(1, hops + 1):
            for p in range(probes):
                ts = start + r * round_gap + (ttl - 1) * 0.05 + p * 0.01
                if ts >= until:
                    return
                ip_id = seq * 7 & 0xFFFF
                request = senders[ttl].echo(ECHO6[0] if v6 else 8, 0, ident, seq, data, ip_id=ip_id)
                answer_ts = ts + 0.0008 * ttl * (0.8 + 0.4 * rng.random())
                if ttl == hops:
                    answer = back.echo(ECHO6[1] if v6 else 0, 0, ident, seq, data)
                else:
                    quoted = expired.ip_packet(expired.echo(ECHO6[0] if v6 else 8, 0, ident, seq, data, ip_id=ip_id))
                    router = routers[ttl - 1]
                    if v6:
                        body = bytes(4) + bc.quote6(quoted)
                    else:
                        body = bytes(4) + bc.quote4(quoted, "linux" if ttl % 2 else "rfc792")
                    answer = net.path(router, src).message(3 if v6 else 11, 0, body)
                yield [(ts, request), (answer_ts, answer)]
                seq = seq + 1 if seq < 65535 else 33000


def _udp_traceroute_groups(net: Net, src: bytes, dst: bytes, start: float, hops: int, rng: random.Random,
                           until: float) -> Iterator[Group]:
    """Classic traceroute (UDP to 33434+): only its ICMP answers are captured (time exceeded from each
    hop, port unreachable from the destination), each quoting the probe."""
    routers = _route(rng, hops, len(src) == 16)
    v6 = len(src) == 16
    sport = rng.randrange(33000, 60000)
    probe_no = 0
    for ttl in range(1, hops + 1):
        for p in range(3):
            ts = start + (ttl - 1) * 0.1 + p * 0.03
            if ts >= until:
                return
            data = bytes(32)
            dport = 33434 + probe_no
            probe_no += 1
            if v6:
                udp = struct.pack("!HHHH", sport, dport, 8 + len(data), 0x1234) + data
                quoted = bc.quote6(bc.ipv6_header(text(src), text(dst), 17, len(udp), hop_limit=1) + udp)
                sender = routers[ttl - 1] if ttl < hops else dst
                kind = (3, 0) if ttl < hops else (1, 4)
            else:
                udp = bc.udp_datagram(text(src), text(dst), sport, dport, data)
                datagram = bc.ipv4_header(text(src), text(dst), 17, len(udp), ttl=1, ident=probe_no + 1000) + udp
                quoted = bc.quote4(datagram, "rfc792" if ttl % 2 else "linux")
                sender = routers[ttl - 1] if ttl < hops else dst
                kind = (11, 0) if ttl < hops else (3, 3)
            yield [(ts + 0.001 * ttl, net.path(sender, src).message(kind[0], kind[1], bytes(4) + quoted))]


def plan_path_trace(plan: Plan, hosts: Hosts, rng: random.Random, budget: int, duration: float) -> None:
    used = 0
    net = plan.net
    until = START + duration
    streams = []
    while used < budget:
        v6 = rng.random() < 0.2
        src, dst = hosts.client(v6), hosts.server(v6)
        hops = rng.randrange(4, 13)
        kind = rng.random()
        sub = random.Random(rng.random())
        begin = START + rng.uniform(0, duration - 120)
        if kind < 0.6:
            rounds = rng.choice((10, 10, 30, 60, 100))
            data = bc.mtr_payload(36, 0xA5 if rng.random() < 0.1 else 0)
            streams.append(ordered(_mtr_groups(net, src, dst, begin, rounds, hops, rng.randrange(1, 0xFFFF), data,
                                               sub, until)))
            used += rounds * hops * 2
        elif kind < 0.85 and not v6:
            data = bc.traceroute_payload(32)
            streams.append(ordered(_mtr_groups(net, src, dst, begin, 1, hops, rng.randrange(1, 0xFFFF), data, sub,
                                               until, probes=3, first_seq=1)))
            used += hops * 6
        else:
            streams.append(ordered(_udp_traceroute_groups(net, src, dst, begin, hops, sub, until)))
            used += hops * 3
    plan.add("path_trace", merge(streams), used)


def _dns_query(rng: random.Random, name: str) -> bytes:
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", rng.randrange(0x10000), 0x0100, 1, 0, 0, 1) + labels + b"\0\x01\0\x01" + \
        bytes.fromhex("0000291000000000000000")


_NAMES = ("www.example.com", "mail.example.org", "time.example.net", "updates.example.com", "api.example.com",
          "cdn.example.net", "login.example.org", "wpad.example.com")


def _tcp_syn(sport: int, dport: int, isn: int) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, isn, 0, 0xA0, 0x02, 64240, 0x1C3F, 0) + \
        bytes.fromhex("020405b40402080a0001e24000000000")


def _error_groups(net: Net, hosts: Hosts, rng: random.Random, kind: str, start: float, count: int, every: float,
                  until: float) -> Iterator[Group]:
    """One source of ICMP errors, each quoting a datagram the error's receiver really sent."""
    v6 = kind.endswith("6")
    client = hosts.client(v6)
    c_text = text(client)
    if kind in ("dns", "ntp", "syslog"):
        server = hosts.server()
        s_text = text(server)
        port = {"dns": 53, "ntp": 123, "syslog": 514}[kind]
        for i in range(count):
            ts = start + (i + 0.2 * rng.random()) * every
            if ts >= until:
                return
            if kind == "dns":
                data = _dns_query(rng, rng.choice(_NAMES))
            elif kind == "ntp":
                data = b"\x23" + bytes(39) + struct.pack("!II", int(ts) + 2_208_988_800, rng.randrange(1 << 32))
            else:
                data = b"<30>Nov 14 22:13:20 host app[812]: " + b"x" * rng.randrange(20, 400)
            udp = bc.udp_datagram(c_text, s_text, rng.randrange(32768, 61000), port, data)
            datagram = bc.ipv4_header(c_text, s_text, 17, len(udp), ttl=64, ident=rng.randrange(0x10000), df=True) + udp
            yield [(ts + 3e-4, net.path(server, client).message(3, 3, bytes(4) + bc.quote4(datagram, "linux")))]
    elif kind == "syn":
        server = ip(f"198.19.{rng.randrange(256)}.{rng.randrange(1, 255)}")
        router = ip(text(client).rsplit(".", 1)[0] + ".1")
        s_text = text(server)
        for i in range(count // 3 + 1):
            base = start + i * every * 3
            sport, isn = rng.randrange(32768, 61000), rng.randrange(1 << 32)
            for retry, delay in enumerate((0.0, 1.0, 3.0)):
                ts = base + delay
                if ts >= until:
                    return
                seg = _tcp_syn(sport, rng.choice((443, 80, 22, 8443)), isn)
                datagram = bc.ipv4_header(c_text, s_text, 6, len(seg), ttl=64, ident=retry + i * 3, df=True) + seg
                yield [(ts + 2e-3, net.path(router, client).message(3, 1, bytes(4) + bc.quote4(datagram, "rfc792")))]
    elif kind == "pmtu":
        server = hosts.server()
        router = _route(rng, 3, False)[-1]
        s_text = text(server)
        for i in range(count):
            ts = start + i * every
            if ts >= until:
                return
            seg = struct.pack("!HHIIBBHHH", 443, rng.randrange(32768, 61000), rng.randrange(1 << 32), 1, 0x50, 0x18,
                              501, 0, 0) + rng.randbytes(1460)
            datagram = bc.ipv4_header(c_text, s_text, 6, len(seg), ttl=63, ident=i, df=True) + seg
            body = struct.pack("!HH", 0, 1400) + bc.quote4(datagram, "linux")
            yield [(ts, net.path(router, client).message(3, 4, body))]
    else:  # IPv6: port unreachable, packet too big, time exceeded
        server = hosts.server(True)
        s_text = text(server)
        router = _route(rng, 2, True)[0]
        for i in range(count):
            ts = start + (i + 0.2 * rng.random()) * every
            if ts >= until:
                return
            data = rng.randbytes(rng.choice((24, 48, 300, 1400)))
            udp = struct.pack("!HHHH", rng.randrange(32768, 61000), rng.choice((53, 123, 33434)), 8 + len(data),
                              0x1234) + data
            datagram = bc.ipv6_header(c_text, s_text, 17, len(udp), hop_limit=64) + udp
            pick = i % 3
            if pick == 0:
                frame = net.path(server, client).message(1, 4, bytes(4) + bc.quote6(datagram))
            elif pick == 1 and len(datagram) > 1280:
                frame = net.path(router, client).message(2, 0, struct.pack("!I", 1280) + bc.quote6(datagram))
            else:
                frame = net.path(router, client).message(3, 0, bytes(4) + bc.quote6(datagram))
            yield [(ts, frame)]


def plan_errors(plan: Plan, hosts: Hosts, rng: random.Random, budget: int, duration: float) -> None:
    used = 0
    until = START + duration
    streams = []
    while used < budget:
        kind = rng.choice(("dns", "dns", "ntp", "syslog", "syn", "syn", "pmtu", "err6", "err6"))
        every = rng.choice((1.0, 2.0, 5.0, 10.0, 30.0))
        count = rng.randrange(20, 400)
        begin = START + rng.uniform(0, max(1.0, duration - count * every))
        streams.append(ordered(_error_groups(plan.net, hosts, random.Random(rng.random()), kind, begin, count, every,
                                             until)))
        used += count
    plan.add("errors", merge(streams), used)


def plan_agents(plan: Plan, hosts: Hosts, rng: random.Random, budget: int, duration: float) -> None:
    """Monitoring agents and scanners, straight from the benign corpus's generators."""
    net = plan.net
    scale = duration / HOUR
    built: list[tuple[str, Callable[[], list[IcmpPacket]], int]] = []

    def ends(v6: bool = False) -> bc.Endpoints:
        return bc.Endpoints(text(hosts.client(v6)), text(hosts.server(v6)))

    nagios, prom = "10.1.250.50", "10.1.250.51"
    jobs: list[tuple[int, Callable[[int], Callable[[], list[IcmpPacket]]]]] = [
        # (packets per instance, factory of instance k)
        (int(130 * scale), lambda k: lambda: bc.check_icmp(bc.Endpoints(nagios, text(hosts.servers4[k % 1000])),
                                                           START + k * 0.7, checks=int(13 * scale))),
        (int(480 * scale), lambda k: lambda: bc.blackbox_exporter(bc.Endpoints(prom, text(hosts.servers4[-1 - k])),
                                                                  START + k * 0.37, count=int(240 * scale),
                                                                  ident=0x6E2D + k)),
        (int(7200 * scale), lambda k: lambda: bc.pro_bing(ends(k % 3 == 0), START + k * 1.3, count=int(HOUR * scale),
                                                          seed=k)),
        (int(2160 * scale), lambda k: lambda: bc.pro_bing_periodic(ends(), START + k * 2.1,
                                                                   runs=int(360 * scale), seed=100 + k)),
        (int(1210 * scale), lambda k: lambda: bc.cisco_ios(bc.Endpoints(f"172.31.{k}.1", text(hosts.server())),
                                                           START + k * 3.3, commands=int(121 * scale))),
        (int(2928 * scale), lambda k: lambda: bc.traceroute_icmp(ends(), START + k * 5.0, runs=int(61 * scale))),
        (int(1440 * scale), lambda k: lambda: bc.pmtu_probing(ends(), START + k * 4.4, rounds=int(360 * scale))),
        (max(1, int(4 * scale)) * 291, lambda k: lambda: bc.nmap_discovery(f"10.1.251.{k + 1}", f"10.{20 + k}.0.0/24",
                                                                START + 600 + k * 900, sweeps=max(1, int(4 * scale)),
                                                                every=900.0)),
        (int(52 * scale), lambda k: lambda: bc.nmap_os_detection(f"10.1.251.{k + 1}", text(hosts.server()),
                                                                 START + k * 11.0, scans=int(13 * scale))),
    ]
    weights = (30, 10, 2, 3, 3, 1, 1, 1, 2)
    # One of each first (so that a small capture still has every kind), then by weight.
    rounds = [[(size, factory) for size, factory in jobs]]
    rounds += [[job for job, weight in zip(jobs, weights, strict=True) for _ in range(weight)]] * 1000
    used = 0
    for k, jobs_of_round in enumerate(rounds):
        for size, factory in jobs_of_round:
            if used >= budget:
                break
            if 0 < size <= max(budget - used, budget // 4):
                built.append(("agents", factory(k), size))
                used += size
        if used >= budget:
            break
    for category, make, size in built:
        plan.add(category, from_packets(net, _within(make(), START + duration)), size)


def _within(packets: list[IcmpPacket], until: float) -> list[IcmpPacket]:
    return [p for p in packets if p.ts < until]


def plan_fragments(plan: Plan, hosts: Hosts, rng: random.Random, budget: int, duration: float) -> None:
    """Large pings that fragment: iputils -s 4000 / -s 2500 over IPv6, Windows -l 3000."""
    used = 0
    net = plan.net
    until = START + duration
    while used < budget:
        kind = rng.choice(("iputils", "iputils6", "windows"))
        v6 = kind == "iputils6"
        if kind == "windows":
            size, payload, per = 3000, const_fn(bc.windows_payload(3000)), 3
        else:
            size = 2500 if v6 else 4000
            payload, per = iputils_fn(size), (2 if v6 else 3)
        count = rng.choice((10, 30, 60))
        run = EchoRun(hosts.client(v6), hosts.server(v6), START + rng.uniform(0, duration - count), count, 1.0,
                      payload, rng.randrange(1, 0xFFFF), 1, rtt=rng.uniform(5e-4, 0.02), fragment=True)
        plan.add("fragments", ordered(echo_groups(net, run, random.Random(rng.random()), until)), count * per * 2)
        used += count * per * 2


def exfil_content(size: int) -> bytes:
    """A CSV file like exfil_corpus.CONTENT, `size` bytes long (every line distinct)."""
    lines = []
    total = 0
    i = 0
    while total < size:
        line = f"{i:06d},employee-{i:06d},iban=GB{(i * 7919) % 10**8:08d},salary={30000 + i * 137 % 90000}\n"
        lines.append(line.encode())
        total += len(line)
        i += 1
    return b"".join(lines)[:size]


def raw_chunks(content: bytes, src: str, dst: str, start_ts: float, *, chunk: int, gap: float, ident: int,
               repeat_until: float | None = None) -> list[IcmpPacket]:
    """A home-made exfiltration tool: the file in `chunk`-byte echo requests, one id, seq counting;
    the peer's kernel echoes each. With `repeat_until`, the file is sent again until then."""
    packed_src, packed_dst = ip(src), ip(dst)
    v6 = ":" in src
    req, rep = ECHO6 if v6 else ECHO4
    out = []
    parts = xc.chunks(content, chunk)
    k = 0
    while True:
        for part in parts:
            ts = start_ts + k * gap
            if repeat_until is not None and ts >= repeat_until:
                return out
            wire = 14 + (40 if v6 else 20) + 8 + len(part)
            out.append(IcmpPacket(ts, packed_src, packed_dst, v6, req, 0, ident, k & 0xFFFF, part, wire))
            out.append(IcmpPacket(ts + 0.011, packed_dst, packed_src, v6, rep, 0, ident, k & 0xFFFF, part, wire))
            k += 1
        if repeat_until is None:
            return out


def plan_exfil(plan: Plan, rng: random.Random, packets: int, duration: float) -> None:
    """Several concurrent exfiltration flows, each recorded as ground truth."""
    content = exfil_content(max(4096, min(131_072, packets // 16)))
    d = duration

    def at(fraction: float) -> float:
        return START + fraction * d

    jobs: list[tuple[str, str, str, float, Callable[..., list[IcmpPacket]], dict[str, object], str]] = [
        ("det", "10.60.0.14", "203.0.113.20", at(0.10), xc.det, {"content": content[: len(content) // 4]}, ""),
        ("icmp-file-transfer", "10.60.0.15", "203.0.113.21", at(0.15), xc.icmp_file_transfer, {}, ""),
        ("hping3-file", "10.60.0.16", "203.0.113.22", at(0.18), xc.hping3_file,
         {"data_size": 1000, "count": math.ceil(len(content) / 1000)}, ""),
        ("pyexfil", "10.60.0.17", "203.0.113.23", at(0.20), xc.pyexfil, {}, ""),
        ("egress-assess", "10.60.0.18", "203.0.113.24", at(0.22), xc.egress_assess, {}, ""),
        ("ptunnel", "10.60.0.19", "203.0.113.25", at(0.25), xc.ptunnel_session, {}, "tunnel: the proxy answers"),
        ("raw-chunks-v6", "fd00:60::20", "2001:db8:bad::26", at(0.12), raw_chunks,
         {"chunk": 1200, "gap": 0.5, "ident": 0x7E57}, "1200-byte file chunks over IPv6"),
        ("raw-chunks-fragmented", "10.60.0.21", "203.0.113.27", at(0.28), raw_chunks,
         {"chunk": 2900, "gap": 1.0, "ident": 0x7E58}, "2900-byte file chunks: IPv4 fragments, 802.1Q VLAN 60"),
    ]
    plan.net.tags[ip("10.60.0.21")] = (60,)
    plan.net.tags[ip("10.60.0.18")] = (61,)
    for tool, src, dst, start, build, extra, note in jobs:
        kwargs = {"content": content, **extra}
        packets_list = build(src=src, dst=dst, start_ts=start, **kwargs)
        packets_list = _within(packets_list, START + duration)
        frames = list(from_packets(plan.net, packets_list))
        entry = Exfil(tool, src, dst, start, end=max(p.ts for p in packets_list), packets=len(frames),
                      ipv6=":" in src, vlan=ip(src) in plan.net.tags,
                      fragmented=len(frames) > len(packets_list), note=note)
        plan.exfil.append(entry)
        plan.add("exfil", iter(frames), len(frames))


def build_plan(packets: int, seed: int, duration: float) -> Plan:
    rng = random.Random(seed)
    net = Net()
    plan = Plan(net)
    hosts = Hosts(random.Random(rng.random()), net)
    plan_exfil(plan, random.Random(rng.random()), packets, duration)
    rest = max(0, int(packets * OVERSHOOT) - plan.expected.get("exfil", 0))
    scale = rest / sum(SHARES.values())
    budgets = {name: max(1, int(share * scale)) for name, share in SHARES.items()}
    plan_keepalive(plan, hosts, random.Random(rng.random()), budgets["keepalive"], duration)
    plan_monitoring(plan, hosts, random.Random(rng.random()), budgets["monitoring"], duration)
    plan_interactive(plan, hosts, random.Random(rng.random()), budgets["interactive"], duration)
    plan_floods(plan, random.Random(rng.random()), budgets["flood"], duration)
    plan_path_trace(plan, hosts, random.Random(rng.random()), budgets["path_trace"], duration)
    plan_errors(plan, hosts, random.Random(rng.random()), budgets["errors"], duration)
    plan_agents(plan, hosts, random.Random(rng.random()), budgets["agents"], duration)
    plan_fragments(plan, hosts, random.Random(rng.random()), budgets["fragments"], duration)
    return plan


# -- the flood variant ----------------------------------------------------------------------------

FLOOD_VICTIM = "10.1.0.80"
FLOOD_RATE = 20_000.0  # spoofed requests per second
FLOOD_EXFIL = ("10.60.0.5", "203.0.113.66")


def spoofed_source(i: int) -> bytes:
    """The i-th spoofed address: a bijection of 32-bit integers, so N sources are N distinct addresses."""
    return ((i * 0x9E3779B1 + 0x0B00_0001) & 0xFFFFFFFF).to_bytes(4, "big")


def _flood_groups(count: int, replies: bool, start: float, avoid: set[bytes]) -> Iterator[Group]:
    """hping3 --icmp --flood --rand-source: one empty echo request per spoofed source (id and seq in
    host byte order), each answered by the victim when `replies`. Paths are not cached: a million of
    them would dwarf everything else."""
    victim = ip(FLOOD_VICTIM)
    ident = _swap16(0x5B2D)
    step = 1 / FLOOD_RATE
    i = n = 0
    while n < count:
        src = spoofed_source(i)
        i += 1
        if src in avoid:
            continue
        ts = start + n * step
        seq = _swap16(n & 0xFFFF)
        request = Link(src, victim, (), ttl=64, ip_id=n & 0xFFFF).echo(8, 0, ident, seq, b"")
        if replies:
            reply = Link(victim, src, (), ttl=64, ip_id=n & 0xFFFF).echo(0, 0, ident, seq, b"")
            yield [(ts, request), (ts + 8e-5, reply)]
        else:
            yield [(ts, request)]
        n += 1


def build_flood_plan(sources: int, replies: bool, seed: int) -> Plan:
    net = Net()
    plan = Plan(net)
    start = START + 30.0
    end = start + sources / FLOOD_RATE
    src, dst = FLOOD_EXFIL
    avoid = {ip(FLOOD_VICTIM), ip(src), ip(dst)}
    plan.add("flood", ordered(_flood_groups(sources, replies, start, avoid)), sources * (2 if replies else 1))
    content = exfil_content(200_000)
    packets = raw_chunks(content, src, dst, START, chunk=1000, gap=0.05, ident=0x7E59, repeat_until=end + 30.0)
    frames = list(from_packets(net, packets))
    plan.exfil.append(Exfil("raw-chunks", src, dst, START, end=packets[-1].ts, packets=len(frames),
                            note=f"1000-byte file chunks, 20/s, through a flood from {sources} spoofed sources"))
    plan.add("exfil", iter(frames), len(frames))
    return plan


# -- the adversarial variants (issue 13) ----------------------------------------------------------

STORM_TARGET = "10.1.0.81"
STORM_TARGET_V6 = "2001:db8:1::81"
STORM_V6_PREFIX = bytes.fromhex("20010db80005000000000000")  # 2001:db8:5::/96
STORM_PAIRS_DESTINATIONS = bytes((100,))  # storm_pairs: the n-th flow's destination is 100.<n, 24 bits>
STORM_PAYLOAD = 500  # random bytes per storm request: over the 256 novel bytes that raise DataExfil
ADVERSARIAL_RATE = 20_000.0  # spoofed requests (datagrams) per second of packet time
NOVEL_FLOOD_PER_SOURCE = 4
TINY_FRAGMENT = 8  # bytes of IP payload per fragment
JUMBO_PAYLOAD = 60_000  # bytes of an echo request cut into fragments (jumbo_fragments)
JUMBO_SOURCES = 64
JUMBO_RATE = 2_000.0  # datagrams per second: about 1 Gbit/s
CHUNK_SHARE = 0.25  # novel_mix: frames that carry file-like chunks


def _spoofed_sources(avoid: set[bytes]) -> Iterator[bytes]:
    i = 0
    while True:
        src = spoofed_source(i)
        i += 1
        if src not in avoid:
            yield src


def spoofed_source_v6(i: int) -> bytes:
    """The i-th spoofed IPv6 address: spoofed_source's 32 bits in 2001:db8:5::/96."""
    return STORM_V6_PREFIX + spoofed_source(i)


def build_storm_plan(flows: int, seed: int, target_ip: str = STORM_TARGET, v6: bool = False,
                     pairs: bool = False) -> Plan:
    """A notice storm: one echo request with STORM_PAYLOAD random bytes from each of `flows` spoofed sources to
    one target, unanswered, ADVERSARIAL_RATE a second; over IPv6 with `v6` (ICMPv6, sources spoofed_source_v6);
    with `pairs`, each to a spoofed destination of its own (STORM_PAIRS_DESTINATIONS) instead of the target."""
    plan = Plan(Net(), unlisted_pairs=flows)
    target = ip(STORM_TARGET_V6 if v6 else target_ip)
    rng = random.Random(seed)
    start = START + 1.0
    sources = (spoofed_source_v6(i) for i in itertools.count()) if v6 else _spoofed_sources({target})
    request = 128 if v6 else 8

    def frames() -> Iterator[Frame]:
        for n, src in zip(range(flows), sources, strict=False):
            dst = STORM_PAIRS_DESTINATIONS + n.to_bytes(3, "big") if pairs else target
            link = Link(src, dst, (), ttl=64, ip_id=rng.randrange(0x10000))
            yield start + n / ADVERSARIAL_RATE, link.echo(request, 0, rng.randrange(1, 0x10000), 1,
                                                          rng.randbytes(STORM_PAYLOAD))

    plan.add("storm", frames(), flows)
    return plan


def build_novel_flood_plan(packets: int, seed: int) -> Plan:
    """`packets` echo requests from packets / NOVEL_FLOOD_PER_SOURCE spoofed sources to one target, in rounds
    (each source once per round), each with 16-64 random bytes; unanswered."""
    sources = max(1, packets // NOVEL_FLOOD_PER_SOURCE)
    plan = Plan(Net(), unlisted_pairs=sources)
    target = ip(FLOOD_VICTIM)
    rng = random.Random(seed)
    srcs = [src for src, _ in zip(_spoofed_sources({target}), range(sources), strict=False)]
    idents = [rng.randrange(1, 0x10000) for _ in srcs]
    start = START + 1.0

    def frames() -> Iterator[Frame]:
        for n in range(packets):
            k, seq = n % sources, n // sources + 1
            link = Link(srcs[k], target, (), ttl=64, ip_id=n & 0xFFFF)
            yield start + n / ADVERSARIAL_RATE, link.echo(8, 0, idents[k], seq, rng.randbytes(rng.randint(16, 64)))

    plan.add("novel_flood", frames(), packets)
    return plan


def tiny_fragments(link: Link, frame: bytes, ip_id: int, piece: int = TINY_FRAGMENT) -> list[bytes]:
    """An IPv4 frame of `link` cut into fragments of `piece` bytes of IP payload each (a multiple of 8)."""
    rest = frame[len(link.eth) + 20 :]
    out = []
    for at in range(0, len(rest), piece):
        chunk = rest[at : at + piece]
        flags = (0x2000 if at + piece < len(rest) else 0) | at // 8
        out.append(b"".join((link.eth, link._ip4_header(20 + len(chunk), ip_id, flags), chunk)))
    return out


def build_tiny_fragments_plan(packets: int, seed: int) -> Plan:
    """Echo requests (iputils, 56 bytes) from spoofed sources to one target, each in 8-byte IPv4 fragments in
    order, 1 us apart; every fourth datagram's last fragment never comes. About `packets` frames."""
    per = (8 + 56 + TINY_FRAGMENT - 1) // TINY_FRAGMENT
    datagrams = max(1, packets * 4 // (4 * per - 1))
    plan = Plan(Net(), unlisted_pairs=datagrams)
    target = ip(FLOOD_VICTIM)
    rng = random.Random(seed)
    payload = iputils_fn(56)
    start = START + 1.0

    def frames() -> Iterator[Frame]:
        for n, src in zip(range(datagrams), _spoofed_sources({target}), strict=False):
            ts = start + n / ADVERSARIAL_RATE
            link = Link(src, target, (), ttl=64)
            ip_id = rng.randrange(0x10000)
            pieces = tiny_fragments(link, link.echo(8, 0, rng.randrange(1, 0x10000), 1, payload(ts - SEND_LAG),
                                                    ip_id=ip_id), ip_id)
            if n % 4 == 3:
                pieces.pop()
            for k, piece in enumerate(pieces):
                yield ts + k * 1e-6, piece

    plan.add("tiny_fragments", frames(), packets)
    return plan


HEADLESS_EXFIL = ("10.1.2.3", "203.0.113.9")  # the exfiltration through the headless-fragment flood
HEADLESS_GAP = 4_200  # spoofed fragments between its requests' first fragment and their data
HEADLESS_SIZE = 6_000  # bytes a request carries


def build_headless_fragments_plan(packets: int, seed: int) -> Plan:
    """About `packets` frames: spoofed non-first fragments to HEADLESS_EXFIL's destination, ADVERSARIAL_RATE a
    second, and HEADLESS_EXFIL's requests of HEADLESS_SIZE random bytes, each cut after its ICMP header, the rest
    HEADLESS_GAP spoofed fragments later (more than decode.max_fragmented_datagrams: evicted before it comes)."""
    src, target = ip(HEADLESS_EXFIL[0]), ip(HEADLESS_EXFIL[1])
    per_request = HEADLESS_GAP + 1 + -(-HEADLESS_SIZE // 1480)
    requests = max(1, packets // per_request)
    plan = Plan(Net(), unlisted_pairs=requests * HEADLESS_GAP)
    rng = random.Random(seed)
    start = START + 1.0
    real = Link(src, target, (), ttl=64)

    def frames() -> Iterator[Frame]:
        sources = _spoofed_sources({src, target})
        n = 0
        for k in range(requests):
            whole = real.echo(8, 0, 0x5151, k + 1, rng.randbytes(HEADLESS_SIZE), ip_id=k)
            header = whole[len(real.eth) + 20 : len(real.eth) + 28]  # the ICMP header alone: the first fragment
            yield start + n / ADVERSARIAL_RATE, b"".join((real.eth, real._ip4_header(28, k, 0x2000), header))
            n += 1
            for _ in range(HEADLESS_GAP):
                link = Link(next(sources), target, (), ttl=64)
                yield start + n / ADVERSARIAL_RATE, b"".join(
                    (link.eth, link._ip4_header(36, rng.randrange(0x10000), 1480 // 8), rng.randbytes(16)))
                n += 1
            rest = whole[len(real.eth) + 28 :]
            for at in range(0, len(rest), 1480):
                chunk = rest[at : at + 1480]
                flags = (0x2000 if at + 1480 < len(rest) else 0) | (8 + at) // 8
                yield start + n / ADVERSARIAL_RATE, b"".join((real.eth, real._ip4_header(20 + len(chunk), k, flags),
                                                              chunk))
                n += 1

    plan.add("headless_fragments", frames(), requests * per_request)
    plan.exfil.append(Exfil("headless-fragments", HEADLESS_EXFIL[0], HEADLESS_EXFIL[1], start,
                            end=start + requests * per_request / ADVERSARIAL_RATE, packets=requests * per_request,
                            fragmented=True, note=f"{HEADLESS_SIZE}-byte requests, data after {HEADLESS_GAP} "
                                                  "spoofed fragments"))
    return plan


def build_jumbo_fragments_plan(packets: int, seed: int) -> Plan:
    """Echo requests with JUMBO_PAYLOAD random bytes (ping -s 60000), each in MTU-sized fragments (41 over IPv4),
    from JUMBO_SOURCES sources, JUMBO_RATE datagrams a second (about 1 Gbit/s); every fourth source
    over IPv6, each to a target of its own. About `packets` frames. Each pair is a ground-truth exfiltration pair."""
    plan = Plan(Net(), unlisted_pairs=JUMBO_SOURCES)
    rng = random.Random(seed)
    links = [Link(ip(f"2001:db8:6a::{k + 1:x}") if k % 4 == 3 else ip(f"10.66.0.{k + 1}"),
                  ip(f"2001:db8:6b::{k + 1:x}") if k % 4 == 3 else ip(f"10.67.0.{k + 1}"), ())
             for k in range(JUMBO_SOURCES)]
    start = START + 1.0
    per = -(-(8 + JUMBO_PAYLOAD) // FRAGMENT_DATA)  # IPv4 fragments a datagram
    datagrams = max(1, packets // per)
    for k, link in enumerate(links):
        sent = len(range(k, datagrams, JUMBO_SOURCES))
        if sent:
            plan.exfil.append(Exfil("jumbo-fragments", text(link.src), text(link.dst), start + k / JUMBO_RATE,
                                    end=start + (k + (sent - 1) * JUMBO_SOURCES) / JUMBO_RATE,
                                    packets=sent * per, ipv6=link.v6, note=f"{JUMBO_PAYLOAD}-byte echo requests"))

    def frames() -> Iterator[Frame]:
        for n in range(datagrams):
            link = links[n % JUMBO_SOURCES]
            ts = start + n / JUMBO_RATE
            datagram = link.echo(128 if link.v6 else 8, 0, 0x4A00 + n % JUMBO_SOURCES, n // JUMBO_SOURCES & 0xFFFF,
                                 rng.randbytes(JUMBO_PAYLOAD))
            for k, piece in enumerate(link.fragments(datagram)):
                yield ts + k * 1e-5, piece

    plan.add("jumbo_fragments", frames(), packets)
    return plan


def _crafted_bodies(size: int, rng: random.Random) -> dict[str, tuple[bool, int, bytes]]:
    """Each crafted kind's message of about `size` bytes: (IPv6, ICMP type, what follows type, code and checksum;
    an echo's starts with its identifier and sequence number). Each is a structure the sensor walks item by item,
    or reads for a tool's fingerprint, filled to the datagram's end."""
    items = size // 16
    mpls = struct.pack("!HBB", 4, 1, 1)  # an empty MPLS label stack object: 4 bytes
    prompt = b"C:\\Users\\x>\r\n"
    return {
        # RFC 4620: qtype 2 (node name), flags, nonce, TTL, then names (one label 'a' each)
        "node-names": (True, 140, struct.pack("!HH", 2, 0) + rng.randbytes(8) + bytes(4) + b"\x01a\x00" * (size // 3)),
        # RFC 3810 5.2: one MODE_IS_INCLUDE record of a multicast group and `items` global unicast sources
        "mld-sources": (True, 143, b"\0\0\0\x01" + struct.pack("!BBH", 1, 0, items) + b"\xff\x0e" + bytes(14)
                        + b"".join(b"\x20\x01" + rng.randbytes(14) for _ in range(items))),
        # RFC 4861 4.2: the fixed body, then MTU options (one 8-byte unit each)
        "nd-options": (True, 134, bytes(12) + (b"\x05\x01\0\0\0\0\x05\xdc") * (size // 8)),
        # RFC 4884: 128 bytes of quoted datagram (an IPv4 header first), an extension structure of MPLS objects
        "extension-objects": (False, 3, b"\x00\x20\x00\x00" + b"\x45" + bytes(127) + b"\x20\x00\x00\x00"
                              + mpls * (size // 4)),
        # pingtunnel's protobuf: field 1 empty over and over, its magic (field 6 = 0xdead) in the middle
        "protobuf-fields": (False, 8, struct.pack("!HH", 0x7A00, 1) + b"\x0a\x00" * (size // 4)
                            + b"\x30\xda\xfa\x06" + b"\x0a\x00" * (size // 4)),
        # icmpsh's cmd.exe prompt: lines of prompts, the last one ending the payload
        "prompt-lines": (False, 8, struct.pack("!HH", 0x7A01, 1) + (prompt * (size // len(prompt)))[:-2]),
    }


CRAFTED_KINDS = ("node-names", "mld-sources", "nd-options", "extension-objects", "protobuf-fields", "prompt-lines")


def build_crafted_plan(packets: int, seed: int) -> Plan:
    """Datagrams of about JUMBO_PAYLOAD bytes whose messages are crafted for the most work per byte
    (_crafted_bodies, CRAFTED_KINDS in turn), in MTU-sized fragments, JUMBO_RATE a second from JUMBO_SOURCES
    sources (IPv4 or IPv6 as the kind is), each to a target of its own. About `packets` frames."""
    plan = Plan(Net(), unlisted_pairs=JUMBO_SOURCES)
    rng = random.Random(seed)
    bodies = _crafted_bodies(JUMBO_PAYLOAD, rng)
    links = {v6: [Link(ip(f"2001:db8:6c::{k + 1:x}") if v6 else ip(f"10.68.0.{k + 1}"),
                       ip(f"2001:db8:6d::{k + 1:x}") if v6 else ip(f"10.69.0.{k + 1}"), ())
                  for k in range(JUMBO_SOURCES)] for v6 in (False, True)}
    start = START + 1.0
    per = -(-(4 + JUMBO_PAYLOAD) // FRAGMENT_DATA)
    datagrams = max(1, packets // per)

    def frames() -> Iterator[Frame]:
        for n in range(datagrams):
            v6, icmp_type, body = bodies[CRAFTED_KINDS[n % len(CRAFTED_KINDS)]]
            link = links[v6][n % JUMBO_SOURCES]
            ts = start + n / JUMBO_RATE
            for k, piece in enumerate(link.fragments(link.message(icmp_type, 0, body))):
                yield ts + k * 1e-5, piece

    plan.add("crafted_messages", frames(), packets)
    return plan


def _chunk_groups(net: Net, src: bytes, dst: bytes, content: bytes, chunk: int, start: float, gap: float,
                  ident: int, count: int, rtt: float) -> Iterator[Group]:
    """A file sent in `chunk`-byte echo requests (from offset 0, wrapping), each echoed by the peer."""
    fwd, back = net.path(src, dst), net.path(dst, src)
    req, rep = ECHO6 if fwd.v6 else ECHO4
    for k in range(count):
        at = k * chunk % len(content)
        part = content[at : at + chunk]
        ts = start + k * gap
        seq = k & 0xFFFF
        yield [(ts, fwd.echo(req, 0, ident, seq, part)), (ts + rtt, back.echo(rep, 0, ident, seq, part))]


def build_novel_mix_plan(packets: int, seed: int, duration: float) -> Plan:
    """The default mix of (1 - CHUNK_SHARE) * `packets` frames plus file-like chunks for the rest: host pairs
    each sending a different part of a large CSV file in 512-1400-byte echo requests (500 a flow, each echoed,
    the flows spread over the hour), each pair a ground-truth exfiltration pair."""
    chunks = int(packets * CHUNK_SHARE)
    plan = build_plan(packets - chunks, seed, duration)
    rng = random.Random(seed + 1_000_003)
    content = exfil_content(4_000_000)
    per_flow = 1000  # frames: 500 requests, 500 replies
    flows = max(1, chunks // per_flow)
    for k in range(flows):
        v6 = k % 10 == 9
        src = ip(f"fd00:70::{k + 1:x}" if v6 else f"10.70.{k // 250}.{k % 250 + 1}")
        dst = ip(f"2001:db8:70::{k % 64 + 1:x}" if v6 else f"198.51.100.{k % 200 + 20}")
        size = rng.choice((512, 1000, 1200 if v6 else 1400))
        gap = rng.uniform(0.1, min(2.0, 0.9 * duration / (per_flow // 2)))
        span = gap * (per_flow // 2)
        start = START + rng.uniform(0, max(0.0, 0.95 * duration - span))
        offset = rng.randrange(0, len(content) - size)
        count = min(per_flow // 2, (chunks - k * per_flow) // 2) if k == flows - 1 else per_flow // 2
        groups = _chunk_groups(plan.net, src, dst, content[offset:] + content[:offset], size, start, gap,
                               rng.randrange(1, 0x10000), count, rng.uniform(5e-4, 0.05))
        plan.add("file_chunks", ordered(groups), count * 2)
        plan.exfil.append(Exfil("file-chunks", text(src), text(dst), start, end=start + (count - 1) * gap,
                                packets=count * 2, ipv6=v6, note=f"{size}-byte CSV chunks every {gap:.2f} s"))
    return plan


ADVERSARIAL = ("storm", "storm_v6", "storm_pairs", "novel_flood", "tiny_fragments", "headless_fragments",
               "jumbo_fragments", "crafted_messages", "novel_mix")


# -- writing --------------------------------------------------------------------------------------


@dataclass
class Written:
    packets: int = 0
    bytes: int = 0
    first_ts: float = 0.0
    last_ts: float = 0.0
    by_category: dict[str, int] = field(default_factory=dict)
    ipv6: int = 0
    vlan: int = 0
    fragments: int = 0
    out_of_order: int = 0  # frames earlier than the one before (a generator bug: always 0)


def _tagged(stream: Iterator[Frame], index: int) -> Iterator[tuple[float, bytes, int]]:
    for ts, frame in stream:
        yield ts, frame, index


def write_pcap(path: Path, plan: Plan, limit: int | None) -> Written:
    """Write the plan's frames in time order (at most `limit`) as a pcap file (microseconds, Ethernet)."""
    categories = list(plan.streams)
    counts = [0] * len(categories)
    streams = [_tagged(merge(plan.streams[name]), k) for k, name in enumerate(categories)]
    stats = Written()
    pack = _REC.pack
    chunk: list[bytes] = []
    n = v6 = vlan = frags = backwards = 0
    last = 0.0
    size = 24
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
        for ts, frame, index in heapq.merge(*streams, key=itemgetter(0)):
            if limit is not None and n >= limit:
                break
            usec = int(ts * 1_000_000 + 0.5)
            length = len(frame)
            chunk.append(pack(usec // 1_000_000, usec % 1_000_000, length, length))
            chunk.append(frame)
            size += 16 + length
            counts[index] += 1
            n += 1
            if ts < last:
                backwards += 1
            last = ts
            et = frame[12] << 8 | frame[13]
            pos = 14
            if et == 0x8100 or et == 0x88A8:
                vlan += 1
                while et == 0x8100 or et == 0x88A8:
                    et = frame[pos + 2] << 8 | frame[pos + 3]
                    pos += 4
            if et == 0x86DD:
                v6 += 1
                if frame[pos + 6] == 44:
                    frags += 1
            elif frame[pos + 6] & 0x3F or frame[pos + 7]:
                frags += 1
            if n == 1:
                stats.first_ts = ts
            if len(chunk) >= 16384:
                out.write(b"".join(chunk))
                chunk.clear()
        out.write(b"".join(chunk))
    stats.packets, stats.bytes, stats.last_ts = n, size, last
    stats.ipv6, stats.vlan, stats.fragments, stats.out_of_order = v6, vlan, frags, backwards
    stats.by_category = dict(zip(categories, counts, strict=True))
    return stats


def truth_path(pcap: Path) -> Path:
    return pcap.with_name(pcap.stem + ".truth.json")


def generate(out: str | Path, packets: int = 1_000_000, seed: int = 1, duration: float = HOUR,
             flood_sources: int = 0, flood_replies: bool = True, kind: str = "mix") -> dict[str, object]:
    """Write the capture and its ground-truth sidecar; return the sidecar's content. `kind`: "mix" (the
    default mix, or the flood variant with `flood_sources`) or one of ADVERSARIAL, `packets` frames."""
    out = Path(out)
    began = time.perf_counter()
    if kind != "mix":
        builders: dict[str, Callable[[], Plan]] = {
            "storm": lambda: build_storm_plan(packets, seed),
            "storm_v6": lambda: build_storm_plan(packets, seed, v6=True),
            "storm_pairs": lambda: build_storm_plan(packets, seed, pairs=True),
            "novel_flood": lambda: build_novel_flood_plan(packets, seed),
            "tiny_fragments": lambda: build_tiny_fragments_plan(packets, seed),
            "headless_fragments": lambda: build_headless_fragments_plan(packets, seed),
            "jumbo_fragments": lambda: build_jumbo_fragments_plan(packets, seed),
            "crafted_messages": lambda: build_crafted_plan(packets, seed),
            "novel_mix": lambda: build_novel_mix_plan(packets, seed, duration),
        }
        if kind not in builders:
            raise ValueError(f"unknown capture kind {kind!r}")
        plan = builders[kind]()
        written = write_pcap(out, plan, packets)
    elif flood_sources:
        plan = build_flood_plan(flood_sources, flood_replies, seed)
        written = write_pcap(out, plan, None)
    else:
        plan = build_plan(packets, seed, duration)
        written = write_pcap(out, plan, packets)
    seconds = time.perf_counter() - began
    truth: dict[str, object] = {
        "capture": out.name,
        "params": {"packets": None if flood_sources else packets, "seed": seed, "duration": duration,
                   "flood_sources": flood_sources, "flood_replies": flood_replies},
        "packets": written.packets,
        "bytes": written.bytes,
        "first_ts": written.first_ts,
        "last_ts": written.last_ts,
        "by_category": written.by_category,
        "ipv6": written.ipv6,
        "vlan": written.vlan,
        "fragments": written.fragments,
        "out_of_order": written.out_of_order,
        "host_pairs": len({frozenset(k) for k in plan.net.paths}) + flood_sources + plan.unlisted_pairs,
        "exfil": [vars(e) for e in plan.exfil],
        "exfil_pairs": [list(pair) for pair in sorted({(e.src, e.dst) for e in plan.exfil})],
        "generation_seconds": round(seconds, 2),
    }
    if flood_sources:
        truth["flood"] = {"victim": FLOOD_VICTIM, "sources": flood_sources, "rate": FLOOD_RATE}
    if kind != "mix":
        truth["kind"] = kind
    truth_path(out).write_text(json.dumps(truth, indent=1) + "\n")
    return truth
