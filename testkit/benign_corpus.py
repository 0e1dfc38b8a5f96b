"""Benign ICMP traffic with the exact byte layouts of real tools, for the fingerprint tests.

Each generator returns `IcmpPacket`s (requests and their replies, or error messages) for
about an hour of traffic. The payload builders are written from each tool's source,
independently of `icmpsensor.fingerprints`; `PROVENANCE` names the file each layout was
read from. `BENIGN_CASES` maps a case name to a zero-argument callable (for a corpus
script), `EXPECTED_TEMPLATES` to the template names `explain`/`explain_error` must give.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import ipaddress
import random
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from icmpsensor.decode.packet import ECHO_REPLY_V4, ECHO_REPLY_V6, ECHO_REQUEST_V4, ECHO_REQUEST_V6, IcmpPacket
from testkit.craft import addr as packed
from testkit.craft import checksum

START = 1_700_000_000.0  # 2023-11-14, a Tuesday
HOUR = 3600
CLIENT = "192.0.2.10"
SERVER = "198.51.100.7"
CLIENT6 = "2001:db8::10"
SERVER6 = "2001:db8:1::7"
SEND_LAG = 20e-6  # the timestamp is taken just before the capture sees the request

PayloadFn = Callable[[int, float], bytes]  # (packet index, send time) -> payload

# -- raw helpers ----------------------------------------------------------------------------


def ipv4_header(src: str, dst: str, proto: int, body_len: int, *, ttl: int, ident: int, df: bool = False) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + body_len, ident & 0xFFFF, 0x4000 if df else 0, ttl, proto, 0,
        packed(src), packed(dst),
    )
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:]


def ipv6_header(src: str, dst: str, next_header: int, body_len: int, *, hop_limit: int) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, body_len, next_header, hop_limit, packed(src), packed(dst))


def icmp_echo(ident: int, seq: int, payload: bytes, *, icmp_type: int = 8, code: int = 0) -> bytes:
    """An ICMPv4 echo message with its checksum (as quoted inside error messages)."""
    head = struct.pack("!BBHHH", icmp_type, code, 0, ident, seq)
    return struct.pack("!BBHHH", icmp_type, code, checksum(head + payload), ident, seq) + payload


def udp_datagram(src: str, dst: str, sport: int, dport: int, data: bytes) -> bytes:
    """A UDP header and data with its checksum (IPv4 or IPv6 pseudo-header, by the addresses)."""
    length = 8 + len(data)
    v6 = ":" in src
    pseudo = packed(src) + packed(dst)
    pseudo += struct.pack("!I3xB", length, 17) if v6 else struct.pack("!BBH", 0, 17, length)
    header = struct.pack("!HHHH", sport, dport, length, 0)
    return struct.pack("!HHHH", sport, dport, length, checksum(pseudo + header + data) or 0xFFFF) + data


def _wire_len(payload_len: int, ipv6: bool, header: int = 8) -> int:
    return 14 + (40 if ipv6 else 20) + header + payload_len


def _sec_usec(t: float) -> tuple[int, int]:
    sec = int(t)
    return sec, min(int((t - sec) * 1_000_000), 999_999)


# -- payload builders, one per tool -----------------------------------------------------------

_COUNTING = bytes(range(256)) * 257  # byte j is j & 0xFF, for any ICMP payload


def _counting(start: int, stop: int) -> bytes:
    """Bytes start..stop-1 of the fill where byte j is j & 0xFF."""
    if stop <= len(_COUNTING):
        return _COUNTING[start:stop]
    return bytes(i & 0xFF for i in range(start, stop))


def iputils_payload(size: int, t: float, pattern: bytes | None = None, time_bits: int = 64) -> bytes:
    """iputils ping/ping_common.c setup() fill (byte j = j) or fill() for -p (pattern from byte 0),
    then ping/ping.c ping4_send_probe(): the raw struct timeval over the first bytes."""
    buf = bytearray((pattern * (size // len(pattern) + 1))[:size] if pattern else _counting(0, size))
    tv_len, fmt = (16, "<qq") if time_bits == 64 else (8, "<II")
    if size >= tv_len:
        buf[:tv_len] = struct.pack(fmt, *_sec_usec(t))
    return bytes(buf)


def bsd_payload(size: int, t: float, *, pattern: bytes | None = None, uptime: float | None = None) -> bytes:
    """BSD ping: tv32 (htonl) then byte j = j from TIMEVAL_LEN, or -p pattern from byte 8.

    `uptime` given: FreeBSD 13+ (CLOCK_MONOTONIC seconds/nanoseconds); else macOS (wall
    clock seconds/microseconds). Below 8 bytes the static, zeroed outpack is sent as is.
    """
    buf = bytearray(size)
    if size < 8:
        return bytes(buf)
    if pattern:
        buf[8:] = (pattern * (size // len(pattern) + 1))[: size - 8]
    else:
        buf[8:] = _counting(8, size)
    if uptime is None:
        buf[:8] = struct.pack(">II", *_sec_usec(t))
    else:
        sec = int(uptime)
        buf[:8] = struct.pack(">II", sec & 0xFFFFFFFF, min(int((uptime - sec) * 1e9), 999_999_999))
    return bytes(buf)


def windows_payload(size: int) -> bytes:
    """ping.exe: 'a' + i % 23 (from the disassembled fill loop)."""
    return bytes(0x61 + i % 23 for i in range(size))


def busybox_payload(size: int, monotonic_us: int, pattern: int = 0, big_endian: bool = False) -> bytes:
    """busybox networking/ping.c sendping4(): memset(pattern), then monotonic_us() as a host uint32 (big-endian on
    MIPS and PowerPC hosts: OpenWrt's ath79 routers)."""
    buf = bytearray((pattern,)) * (size + 4)
    buf[:4] = struct.pack(">I" if big_endian else "<I", monotonic_us & 0xFFFFFFFF)
    return bytes(buf[:size])


def fping_payload(size: int = 56) -> bytes:
    """fping src/socket4.c init_ping_buffer_ipv4(): calloc'd, never written (unless -R)."""
    return bytes(size)


def check_icmp_payload(size: int, t: float, padding: bytes = bytes(6)) -> bytes:
    """check_icmp.c send_icmp_ping(): zeroed buffer + struct icmp_ping_data {timeval; u16 ping_id=10; pad}."""
    return (struct.pack("<qqH", *_sec_usec(t), 10) + padding + bytes(size))[:size]


def blackbox_payload(payload_size: int = 0) -> bytes:
    """blackbox_exporter prober/icmp.go: the text, or payload_size zero bytes with the text copied in."""
    text = b"Prometheus Blackbox Exporter"
    if not payload_size:
        return text
    return (text + bytes(payload_size))[:payload_size]


def pro_bing_payload(size: int, t: float, tracker: bytes) -> bytes:
    """pro-bing ping.go sendICMP(): UnixNano big-endian, the 16-byte UUID, then 0x01 up to Size."""
    return struct.pack(">q", int(t * 1e9)) + tracker + b"\x01" * (size - 24)


def go_ping_payload(size: int, t: float, tracker: int) -> bytes:
    """go-ping/ping v1 ping.go sendICMP(): UnixNano big-endian, the Pinger's 8-byte Tracker (uint64ToBytes,
    big-endian), then 0x01 up to Size (default 16: none)."""
    return struct.pack(">qQ", int(t * 1e9), tracker) + b"\x01" * (size - 16)


def go_ping_json_payload(t: float, tracker: int) -> bytes:
    """sparrc/go-ping before its binary layout (and its forks) ping.go sendICMP(): json.Marshal(IcmpData{Bytes:
    timeToBytes(time.Now()) (8-byte big-endian UnixNano: base64 in JSON), Tracker: p.tracker (r.Int63n per
    Pinger)})."""
    clock = base64.b64encode(struct.pack(">q", int(t * 1e9))).decode()
    return f'{{"Bytes":"{clock}","Tracker":{tracker}}}'.encode()


def cisco_payload(size: int, uptime_ms: int, pattern: int = 0xABCD) -> bytes:
    """UNVERIFIED Cisco IOS layout: 4 zero bytes, a 32-bit ms counter, then the 16-bit data pattern."""
    body = struct.pack(">H", pattern) * (size // 2 + 1)
    return (bytes(4) + struct.pack(">I", uptime_ms & 0xFFFFFFFF) + body)[:size]


def traceroute_payload(size: int = 32) -> bytes:
    """traceroute mod-icmp.c: byte i of the buffer (after the 8-byte header) is 0x40 + (i & 0x3f)."""
    return bytes(0x40 + ((i + 8) & 0x3F) for i in range(size))


def mtr_payload(size: int = 36, bit_pattern: int = 0) -> bytes:
    """mtr packet/construct_unix.c construct_packet(): memset(buffer, bit_pattern, size)."""
    return bytes((bit_pattern,)) * size


def random_uuid4(rng: random.Random) -> bytes:
    raw = bytearray(rng.randbytes(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return bytes(raw)


# -- flows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoints:
    src: str = CLIENT
    dst: str = SERVER

    @property
    def ipv6(self) -> bool:
        return ":" in self.src


def echo_flow(
    ends: Endpoints, start_ts: float, count: int, interval: float, payload: PayloadFn, *,
    ident: int, seq0: int = 1, rtt: float = 0.012, icmp_code: int = 0, reply: bool = True, seed: int = 0,
) -> list[IcmpPacket]:
    """`count` echo requests every `interval` seconds and (when `reply`) their echoed replies."""
    rng = random.Random(seed)
    ipv6 = ends.ipv6
    req_type, rep_type = (ECHO_REQUEST_V6, ECHO_REPLY_V6) if ipv6 else (ECHO_REQUEST_V4, ECHO_REPLY_V4)
    src, dst = packed(ends.src), packed(ends.dst)
    out: list[IcmpPacket] = []
    for i in range(count):
        ts = start_ts + i * interval
        data = payload(i, ts - SEND_LAG)
        seq = (seq0 + i) & 0xFFFF
        wire = _wire_len(len(data), ipv6)
        out.append(IcmpPacket(ts, src, dst, ipv6, req_type, icmp_code, ident, seq, data, wire))
        if reply:
            back = ts + rtt * (0.8 + 0.4 * rng.random())
            out.append(IcmpPacket(back, dst, src, ipv6, rep_type, 0, ident, seq, data, wire))
    out.sort(key=lambda p: p.ts)
    return out


def error_packet(
    sender: str, receiver: str, icmp_type: int, code: int, rest: bytes, quoted: bytes, ts: float,
) -> IcmpPacket:
    """An ICMP error: `payload` is everything after type/code/checksum, as the decoder gives it."""
    ipv6 = ":" in sender
    payload = rest + quoted
    return IcmpPacket(ts, packed(sender), packed(receiver), ipv6, icmp_type, code, -1, -1, payload,
                      _wire_len(len(payload), ipv6, header=4))


def quote4(datagram: bytes, style: str) -> bytes:
    """What a stack quotes of an IPv4 datagram: "rfc792" (header + 8 bytes) or "linux" (<= 548 bytes)."""
    ihl = (datagram[0] & 0x0F) * 4
    return datagram[: ihl + 8] if style == "rfc792" else datagram[:548]


def quote6(datagram: bytes) -> bytes:
    return datagram[:1232]


def _merge(*flows: Iterable[IcmpPacket]) -> list[IcmpPacket]:
    return sorted((p for flow in flows for p in flow), key=lambda p: p.ts)


# -- the tools ----------------------------------------------------------------------------------


def iputils_ping(
    ends: Endpoints = Endpoints(), start_ts: float = START, count: int = HOUR, interval: float = 1.0,
    size: int = 56, pattern: bytes | None = None, ident: int = 0x3A51, time_bits: int = 64,
) -> list[IcmpPacket]:
    return echo_flow(ends, start_ts, count, interval,
                     lambda _i, t: iputils_payload(size, t, pattern, time_bits), ident=ident)


def bsd_ping(
    ends: Endpoints = Endpoints(), start_ts: float = START, count: int = HOUR, interval: float = 1.0,
    size: int = 56, pattern: bytes | None = None, ident: int = 0x0B7C, boot_ts: float | None = None,
) -> list[IcmpPacket]:
    """macOS (wall clock) by default; with `boot_ts`, FreeBSD 13+ (monotonic since boot_ts)."""

    def payload(_i: int, t: float) -> bytes:
        uptime = None if boot_ts is None else t - boot_ts
        return bsd_payload(size, t, pattern=pattern, uptime=uptime)

    # BSD ping's first sequence number is 0 (icmp_seq = ntransmitted before the increment).
    return echo_flow(ends, start_ts, count, interval, payload, ident=ident, seq0=0)


def windows_ping(
    ends: Endpoints = Endpoints(), start_ts: float = START, count: int = HOUR, interval: float = 1.0,
    size: int = 32, ident: int = 1, seq0: int = 0x1C2,
) -> list[IcmpPacket]:
    data = windows_payload(size)
    return echo_flow(ends, start_ts, count, interval, lambda _i, _t: data, ident=ident, seq0=seq0)


def busybox_ping(
    ends: Endpoints = Endpoints(), start_ts: float = START, count: int = HOUR, interval: float = 1.0,
    size: int = 56, pattern: int = 0, ident: int = 0x01C3, boot_ts: float = START - 86_400 * 3.5,
    big_endian: bool = False,
) -> list[IcmpPacket]:
    return echo_flow(ends, start_ts, count, interval,
                     lambda _i, t: busybox_payload(size, int((t - boot_ts) * 1e6), pattern, big_endian),
                     ident=ident, seq0=0)


def fping(
    targets: Iterable[str] = ("198.51.100.7", "198.51.100.8", "198.51.100.9"), start_ts: float = START,
    count: int = HOUR, interval: float = 1.0, size: int = 56, ident: int = 0x2F11,
) -> list[IcmpPacket]:
    """fping -l: one ping per target per round, 25 ms apart; the sequence number is per packet sent."""
    data = fping_payload(size)
    hosts = list(targets)
    flows = [
        echo_flow(Endpoints(CLIENT, host), start_ts + k * 0.025, count, interval, lambda _i, _t: data,
                  ident=ident, seq0=k, seed=k)
        for k, host in enumerate(hosts)
    ]
    # Sequence numbers interleave across targets: target k gets k, k + n, k + 2n, ...
    for k, flow in enumerate(flows):
        for p in flow:
            p.seq = (k + len(hosts) * (p.seq - k)) & 0xFFFF
    return _merge(*flows)


def check_icmp(
    ends: Endpoints = Endpoints(), start_ts: float = START, checks: int = 13, every: float = 300.0,
    packets: int = 5, size: int = 68, padding: bytes = b"\x7f\x00\x00\xa0\x3c\x55",
) -> list[IcmpPacket]:
    """A Nagios/Icinga host check every 5 minutes: 5 packets 80 ms apart (DEFAULT_PKT_INTERVAL)."""
    flows = [
        echo_flow(ends, start_ts + c * every, packets, 0.08,
                  lambda _i, t: check_icmp_payload(size, t, padding), ident=0x4000 + c, seq0=0, seed=c)
        for c in range(checks)
    ]
    return _merge(*flows)


def blackbox_exporter(
    ends: Endpoints = Endpoints(), start_ts: float = START, count: int = HOUR // 15, every: float = 15.0,
    payload_size: int = 0, ident: int = 0x6E2D,
) -> list[IcmpPacket]:
    data = blackbox_payload(payload_size)
    return echo_flow(ends, start_ts, count, every, lambda _i, _t: data, ident=ident, seq0=0x9A10)


def pro_bing(
    ends: Endpoints = Endpoints(), start_ts: float = START, count: int = HOUR, interval: float = 1.0,
    size: int = 24, seed: int = 7,
) -> list[IcmpPacket]:
    """One long-running Pinger: one tracker UUID, sequence from 0."""
    rng = random.Random(seed)
    tracker = random_uuid4(rng)
    return echo_flow(ends, start_ts, count, interval, lambda _i, t: pro_bing_payload(size, t, tracker),
                     ident=rng.randrange(0xFFFF), seq0=0)


def pro_bing_periodic(
    ends: Endpoints = Endpoints(), start_ts: float = START, runs: int = HOUR // 10, every: float = 10.0,
    count: int = 3, size: int = 24, seed: int = 11,
) -> list[IcmpPacket]:
    """An agent (e.g. Telegraf's ping input, native method) making a new Pinger every interval."""
    rng = random.Random(seed)
    flows = []
    for r in range(runs):
        tracker = random_uuid4(rng)
        flows.append(echo_flow(ends, start_ts + r * every, count, 1.0,
                               lambda _i, t, tr=tracker: pro_bing_payload(size, t, tr),
                               ident=rng.randrange(0xFFFF), seq0=0, seed=r))
    return _merge(*flows)


def go_ping_periodic(
    ends: Endpoints = Endpoints(), start_ts: float = START, runs: int = HOUR // 10, every: float = 10.0,
    count: int = 1, size: int = 56, seed: int = 13,
) -> list[IcmpPacket]:
    """Telegraf's ping input, method "native", before 1.25 (built on go-ping/ping v1: pingToURLNative() makes a
    Pinger per gather, its Tracker r.Uint64(), its id r.Intn(MaxUint16), Size defaultPingDataBytesSize 56, count
    1), every agent interval."""
    rng = random.Random(seed)
    flows = []
    for r, ident in enumerate(rng.sample(range(0xFFFF), runs)):  # distinct: a run is its identifier
        tracker = rng.getrandbits(64)
        flows.append(echo_flow(ends, start_ts + r * every, count, 1.0,
                               lambda _i, t, tr=tracker: go_ping_payload(size, t, tr),
                               ident=ident, seq0=0, seed=r))
    return _merge(*flows)


def go_ping(
    ends: Endpoints = Endpoints(), start_ts: float = START, count: int = HOUR, interval: float = 1.0,
    size: int = 16, seed: int = 17,
) -> list[IcmpPacket]:
    """One long-running go-ping/ping v1 Pinger at its default Size (16: the clock and the Tracker alone)."""
    rng = random.Random(seed)
    tracker = rng.getrandbits(64)
    return echo_flow(ends, start_ts, count, interval, lambda _i, t: go_ping_payload(size, t, tracker),
                     ident=rng.randrange(0xFFFF), seq0=0)


def go_ping_json(
    hosts: int = 5, start_ts: float = START, count: int = HOUR, interval: float = 1.0, seed: int = 19,
) -> list[IcmpPacket]:
    """A Go monitor on go-ping's JSON-era Pinger: one long-running Pinger a host (id r.Intn(MaxInt16), Tracker
    r.Int63n(MaxInt64), seq from 0, Interval 1 s)."""
    rng = random.Random(seed)
    flows = []
    for h in range(hosts):
        tracker = rng.randrange(2**63 - 1)
        flows.append(echo_flow(Endpoints(CLIENT, f"198.51.100.{20 + h}"), start_ts + h * 0.1, count, interval,
                               lambda _i, t, tr=tracker: go_ping_json_payload(t, tr), ident=rng.randrange(0x7FFF),
                               seq0=0, seed=h))
    return _merge(*flows)


def cisco_ios(
    ends: Endpoints = Endpoints("203.0.113.1", SERVER), start_ts: float = START, commands: int = HOUR // 30 + 1,
    every: float = 30.0, size: int = 72, pattern: int = 0xABCD, boot_ts: float = START - 12_345_678.9,
) -> list[IcmpPacket]:
    """`ping` from a router every 30 s: 5 echoes, 2 s timeout; 100-byte datagrams by default."""
    flows = [
        echo_flow(ends, start_ts + c * every, 5, 0.004,
                  lambda _i, t: cisco_payload(size, int((t - boot_ts) * 1000), pattern),
                  ident=c + 1, seq0=0, seed=c)
        for c in range(commands)
    ]
    return _merge(*flows)


def nmap_discovery(
    scanner: str = "192.0.2.66", net: str = "198.51.100.0/24", start_ts: float = START, sweeps: int = 13,
    every: float = 300.0, alive_every: int = 7,
) -> list[IcmpPacket]:
    """nmap -sn -PE sweeps (no --data*: an empty echo); every 7th host answers."""
    hosts = [str(h) for h in ipaddress.ip_network(net).hosts()]
    rng = random.Random(5)
    flows = []
    for s in range(sweeps):
        for k, host in enumerate(hosts):
            flows.append(echo_flow(Endpoints(scanner, host), start_ts + s * every + k * 0.002, 1, 1.0,
                                   lambda _i, _t: b"", ident=rng.randrange(0xFFFF), seq0=0,
                                   reply=k % alive_every == 0, seed=k))
    return _merge(*flows)


def nmap_os_detection(
    scanner: str = "192.0.2.66", target: str = SERVER, start_ts: float = START, scans: int = 13,
    every: float = 300.0,
) -> list[IcmpPacket]:
    """nmap -O "IE" probes: code 9 with 120 zero bytes, then code 0 with 150 (seq 295 and 296)."""
    flows = []
    for s in range(scans):
        t = start_ts + s * every
        flows.append(echo_flow(Endpoints(scanner, target), t, 1, 1.0, lambda _i, _t: bytes(120),
                               ident=0x5000 + s, seq0=295, icmp_code=9, seed=s))
        flows.append(echo_flow(Endpoints(scanner, target), t + 0.1, 1, 1.0, lambda _i, _t: bytes(150),
                               ident=0x5001 + s, seq0=296, seed=s + 1))
    return _merge(*flows)


def _hop(k: int) -> str:
    return f"10.{k}.0.1"


def traceroute_icmp(
    ends: Endpoints = Endpoints(), start_ts: float = START, runs: int = HOUR // 60 + 1, every: float = 60.0,
    hops: int = 8, size: int = 32,
) -> list[IcmpPacket]:
    """traceroute -I every minute: 3 probes per TTL; routers quote the probe (odd hops the Linux
    way, even hops RFC 792), the destination answers the last TTL with echo replies."""
    data = traceroute_payload(size)
    out: list[IcmpPacket] = []
    seq = 1
    for r in range(runs):
        ident = 0x7100 + r
        for ttl in range(1, hops + 1):
            for probe in range(3):
                ts = start_ts + r * every + (ttl - 1) * 0.06 + probe * 0.02
                out.extend(_probe_and_answer(ends, ts, ident, seq, data, ttl, hops))
                seq += 1
    out.sort(key=lambda p: p.ts)
    return out


def _probe_and_answer(
    ends: Endpoints, ts: float, ident: int, seq: int, data: bytes, ttl: int, hops: int,
) -> list[IcmpPacket]:
    src, dst = packed(ends.src), packed(ends.dst)
    wire = _wire_len(len(data), False)
    request = IcmpPacket(ts, src, dst, False, ECHO_REQUEST_V4, 0, ident, seq, data, wire)
    if ttl == hops:
        return [request, IcmpPacket(ts + 0.01, dst, src, False, ECHO_REPLY_V4, 0, ident, seq, data, wire)]
    body = icmp_echo(ident, seq, data)
    datagram = ipv4_header(ends.src, ends.dst, 1, len(body), ttl=1, ident=seq * 7) + body
    quoted = quote4(datagram, "linux" if ttl % 2 else "rfc792")
    return [request, error_packet(_hop(ttl), ends.src, 11, 0, bytes(4), quoted, ts + 0.001 * ttl)]


def mtr_icmp(
    ends: Endpoints = Endpoints(), start_ts: float = START, rounds: int = HOUR, hops: int = 6,
    size: int = 36, bit_pattern: int = 0,
) -> list[IcmpPacket]:
    """mtr (ICMP mode) probing every hop once per second; -B sets the fill byte."""
    data = mtr_payload(size, bit_pattern)
    out: list[IcmpPacket] = []
    seq = 33000
    for r in range(rounds):
        for ttl in range(1, hops + 1):
            out.extend(_probe_and_answer(ends, start_ts + r + ttl * 0.1, 0x6D74, seq, data, ttl, hops))
            seq = seq + 1 if seq < 65535 else 33000
    out.sort(key=lambda p: p.ts)
    return out


def error_storm(
    client: str = CLIENT, server: str = SERVER, start_ts: float = START, count: int = HOUR, rate: float = 2.0,
) -> list[IcmpPacket]:
    """Port unreachables for UDP sent to a closed port (Linux: up to 548 bytes quoted), TTL exceeded
    from an RFC 792 router (header + 8 bytes), and fragmentation-needed with a next-hop MTU."""
    out: list[IcmpPacket] = []
    rng = random.Random(3)
    for i in range(count):
        ts = start_ts + i / rate
        data = rng.randbytes(rng.choice((0, 12, 40, 512, 1200)))
        udp = udp_datagram(client, server, 40000 + i % 20000, 33434 + i % 90, data)
        datagram = ipv4_header(client, server, 17, len(udp), ttl=64 - i % 3, ident=i, df=True) + udp
        kind = i % 3
        if kind == 0:
            out.append(error_packet(server, client, 3, 3, bytes(4), quote4(datagram, "linux"), ts + 0.001))
        elif kind == 1:
            expired = ipv4_header(client, server, 17, len(udp), ttl=1, ident=i) + udp
            out.append(error_packet("203.0.113.254", client, 11, 0, bytes(4), quote4(expired, "rfc792"), ts))
        elif len(datagram) > 576:
            rest = struct.pack("!HH", 0, 576)
            out.append(error_packet("203.0.113.254", client, 3, 4, rest, quote4(datagram, "rfc792"), ts))
        else:
            out.append(error_packet(server, client, 3, 3, bytes(4), quote4(datagram, "rfc792"), ts))
    return out


def error_storm_v6(
    client: str = CLIENT6, server: str = SERVER6, start_ts: float = START, count: int = HOUR,
) -> list[IcmpPacket]:
    """ICMPv6 port unreachable / time exceeded / packet too big, quoting up to 1232 bytes."""
    out: list[IcmpPacket] = []
    rng = random.Random(4)
    for i in range(count):
        data = rng.randbytes(rng.choice((0, 24, 300, 1400)))
        udp = udp_datagram(client, server, 50000 + i % 999, 33434, data)  # a right checksum (RFC 8200 8.1)
        datagram = ipv6_header(client, server, 17, len(udp), hop_limit=64) + udp
        kind = i % 3
        if kind == 2 and len(datagram) > 1280:
            out.append(error_packet("2001:db8:ff::1", client, 2, 0, struct.pack("!I", 1280), quote6(datagram),
                                    start_ts + i))
        elif kind == 1:
            out.append(error_packet("2001:db8:ff::1", client, 3, 0, bytes(4), quote6(datagram), start_ts + i))
        else:
            out.append(error_packet(server, client, 1, 4, bytes(4), quote6(datagram), start_ts + i))
    return out


def pmtu_probing(
    ends: Endpoints = Endpoints(), start_ts: float = START, rounds: int = HOUR // 10, every: float = 10.0,
    path_mtu: int = 1400,
) -> list[IcmpPacket]:
    """`ping -M do -s 1472` answered by fragmentation-needed, then `-s 1372` which fits (iputils layout)."""
    out: list[IcmpPacket] = []
    for r in range(rounds):
        ts = start_ts + r * every
        big = iputils_payload(1472, ts - SEND_LAG)
        body = icmp_echo(0x2222, 2 * r + 1, big)
        datagram = ipv4_header(ends.src, ends.dst, 1, len(body), ttl=63, ident=r, df=True) + body
        out.append(IcmpPacket(ts, packed(ends.src), packed(ends.dst), False, ECHO_REQUEST_V4, 0, 0x2222,
                              2 * r + 1, big, _wire_len(len(big), False)))
        out.append(error_packet("203.0.113.254", ends.src, 3, 4, struct.pack("!HH", 0, path_mtu),
                                quote4(datagram, "linux"), ts + 0.002))
        out.extend(echo_flow(ends, ts + 1.0, 1, 1.0, lambda _i, t: iputils_payload(1372, t),
                             ident=0x2222, seq0=2 * r + 2, seed=r))
    out.sort(key=lambda p: p.ts)
    return out


def many_hosts_pinging(n_hosts: int = 40, start_ts: float = START, duration: float = HOUR,
                       interval: float = 5.0) -> list[IcmpPacket]:
    """A LAN of Linux, Windows, macOS and BusyBox hosts all pinging the gateway every few seconds."""
    count = int(duration / interval)
    flows = []
    for h in range(n_hosts):
        ends = Endpoints(f"10.20.{h // 250}.{h % 250 + 2}", "10.20.0.1")
        offset = start_ts + h * 0.0371
        kind = h % 4
        if kind == 0:
            flows.append(iputils_ping(ends, offset, count, interval, ident=0x1000 + h))
        elif kind == 1:
            flows.append(windows_ping(ends, offset, count, interval, seq0=h * 100))
        elif kind == 2:
            flows.append(bsd_ping(ends, offset, count, interval, ident=0x2000 + h))
        else:
            flows.append(busybox_ping(ends, offset, count, interval, ident=0x3000 + h))
    return _merge(*flows)


# -- registry -----------------------------------------------------------------------------------

BENIGN_CASES: dict[str, Callable[[], list[IcmpPacket]]] = {}
PROVENANCE: dict[str, str] = {}
EXPECTED_TEMPLATES: dict[str, frozenset[str]] = {}


def _case(name: str, make: Callable[[], list[IcmpPacket]], provenance: str, *templates: str) -> None:
    BENIGN_CASES[name] = _built_once(make)
    PROVENANCE[name] = provenance
    EXPECTED_TEMPLATES[name] = frozenset(templates)


_FIELDS = tuple(f.name for f in dataclasses.fields(IcmpPacket))


def _built_once(make: Callable[[], list[IcmpPacket]]) -> Callable[[], list[IcmpPacket]]:
    """`make`, built at the first call only: each call gets new packets with the same fields. The fast loop reads
    every case in five test modules, and building them all takes about a second; making the packets again from
    their fields takes a fifth of it, and the fields, tuples of numbers and bytes, are left out of the garbage
    collector's passes (the packets would not be)."""
    built: list[list[tuple[object, ...]]] = []

    @functools.wraps(make)
    def case() -> list[IcmpPacket]:
        if not built:
            built.append([tuple(getattr(p, name) for name in _FIELDS) for p in make()])
        return [IcmpPacket(*fields) for fields in built[0]]  # type: ignore[arg-type]

    return case


_IPUTILS = "iputils/iputils ping/ping_common.c setup()+fill(), ping/ping.c ping4_send_probe()"
_BSD = "freebsd/freebsd-src sbin/ping/ping.c pinger() + main() fill; apple network_cmds ping.tproj/ping.c"
_ERRORS = "torvalds/linux net/ipv4/icmp.c __icmp_send() (576-byte room), RFC 792 (header + 64 bits)"

_case("iputils", iputils_ping, _IPUTILS, "iputils")
_case("iputils_sizes", lambda: _merge(*(iputils_ping(size=s, count=HOUR // 6, interval=6.0, ident=0x100 + s)
                                         for s in (0, 1, 8, 15, 16, 17, 40, 100, 1000, 1472))),
      _IPUTILS, "iputils", "empty", "zero-fill")
_case("iputils_pattern", lambda: iputils_ping(pattern=bytes.fromhex("deadbeef00ff")), _IPUTILS, "iputils")
_case("iputils_pattern16", lambda: iputils_ping(size=200, pattern=bytes(range(0x30, 0x40))), _IPUTILS, "iputils")
# A 100 s flood (-f: 200/s) within an hour of ordinary pings from the same host.
_case("iputils_flood", lambda: _merge(iputils_ping(count=20_000, interval=0.005, ident=0x3A52),
                                      iputils_ping(count=HOUR, ident=0x3A53)), _IPUTILS, "iputils")
_case("iputils_v6", lambda: iputils_ping(Endpoints(CLIENT6, SERVER6)), _IPUTILS + "; ping6_common.c", "iputils")
_case("iputils_32bit", lambda: iputils_ping(time_bits=32), _IPUTILS + " (32-bit time_t timeval)", "iputils")
_case("macos_ping", bsd_ping, _BSD + " (tv32 sec/usec, gettimeofday)", "bsd-ping")
_case("macos_ping_pattern", lambda: bsd_ping(size=100, pattern=b"\xab\xcd\xef"), _BSD, "bsd-ping")
_case("freebsd_ping", lambda: bsd_ping(boot_ts=START - 3_000_000.5), _BSD + " (tv32 sec/nsec, CLOCK_MONOTONIC)",
      "bsd-ping")
_case("windows", windows_ping, "ping.exe fill loop ('a' + i % 23), from its disassembly", "windows")
_case("windows_sizes", lambda: _merge(*(windows_ping(size=s, count=HOUR // 6, interval=6.0, ident=2 + s)
                                         for s in (0, 1, 23, 24, 500, 1472))),
      "ping.exe -l N", "windows", "empty")
_case("busybox", busybox_ping, "mirror/busybox networking/ping.c sendping4()", "busybox")
_case("busybox_pattern", lambda: busybox_ping(size=100, pattern=0x5A), "mirror/busybox networking/ping.c -p",
      "busybox")
# OpenWrt on MIPS (ath79, big-endian) pinging for its health checks (mwan3, watchcat): the counter in host order
_case("busybox_big_endian", lambda: busybox_ping(big_endian=True, ident=0x01C4),
      "mirror/busybox networking/ping.c sendping4() on a big-endian host", "busybox")
_case("fping", fping, "schweikert/fping src/socket4.c init_ping_buffer_ipv4() (calloc)", "zero-fill")
_case("check_icmp", check_icmp, "monitoring-plugins plugins-root/check_icmp.c send_icmp_ping()", "check_icmp")
_case("blackbox_exporter", blackbox_exporter, "prometheus/blackbox_exporter prober/icmp.go ProbeICMP()",
      "blackbox_exporter")
_case("blackbox_payload_size", lambda: _merge(blackbox_exporter(payload_size=1400),
                                                blackbox_exporter(payload_size=12, ident=9)),
      "prometheus/blackbox_exporter prober/icmp.go (payload_size)", "blackbox_exporter")
_case("pro_bing", pro_bing, "prometheus-community/pro-bing ping.go sendICMP()", "pro-bing")
_case("pro_bing_sized", lambda: pro_bing(size=64), "prometheus-community/pro-bing ping.go (Size)", "pro-bing")
_case("pro_bing_periodic", pro_bing_periodic, "prometheus-community/pro-bing ping.go New()/sendICMP()",
      "pro-bing")
_case("go_ping", go_ping, "go-ping/ping v1 ping.go sendICMP() (Size 16)", "go-ping")
_case("go_ping_json", go_ping_json, "sparrc/go-ping JSON-era ping.go sendICMP() (json.Marshal(IcmpData))",
      "go-ping-json")
_case("go_ping_periodic", go_ping_periodic, "influxdata/telegraf plugins/inputs/ping (native, before 1.25) on "
      "go-ping/ping v1 ping.go New()/sendICMP()", "go-ping")
_case("cisco_ios", cisco_ios, "UNVERIFIED: Cisco IOS extended-ping docs (100-byte datagram, 0xABCD)",
      "cisco-ios")
_case("nmap_discovery", nmap_discovery, "nmap -PE: echo request with no data unless --data*", "empty")
_case("nmap_os_detection", nmap_os_detection, "nmap OS detection IE probes (120/150 zero bytes)", "zero-fill")
_case("traceroute_icmp", traceroute_icmp, "traceroute mod-icmp.c icmp_init(); " + _ERRORS,
      "traceroute", "icmp-error")
_case("mtr", mtr_icmp, "traviscross/mtr packet/construct_unix.c construct_packet(); " + _ERRORS,
      "zero-fill", "icmp-error")
_case("mtr_bitpattern", lambda: mtr_icmp(bit_pattern=0xA5, rounds=HOUR), "mtr -B 165", "mtr", "icmp-error")
_case("error_storm", lambda: error_storm(rate=1.0), _ERRORS, "icmp-error")
_case("error_storm_v6", error_storm_v6, "torvalds/linux net/ipv6/icmp.c icmp6_send(); RFC 4443", "icmp-error")
_case("pmtu_probing", pmtu_probing, _IPUTILS + " (-M do); RFC 1191 next-hop MTU", "iputils", "icmp-error")
_case("many_hosts", many_hosts_pinging, "iputils, ping.exe, macOS ping, BusyBox ping",
      "iputils", "windows", "bsd-ping", "busybox")
