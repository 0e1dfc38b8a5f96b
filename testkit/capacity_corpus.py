"""Cases for the capacity model (issue 12): data in every field a sender controls, and the benign classes
that change those fields. Packet lists as the decoder gives them, built byte for byte from the layouts
they name (provenance per case in PROVENANCE).

Positives hide a secret (SECRET, random bytes: an encrypted file) in one channel each, under the
benign templates everywhere else; negatives are what monitoring really sends. Each positive's
`CAPACITY_POSITIVES[name]` gives the (source, destination) a notice must name; "*" as the destination (the
ExfilSpread case) takes any destination.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable

from icmpsensor.decode.checksum import internet_checksum
from icmpsensor.decode.packet import IcmpPacket
from testkit.benign_corpus import (
    CLIENT,
    HOUR,
    SEND_LAG,
    SERVER,
    START,
    busybox_payload,
    error_packet,
    iputils_payload,
    ipv4_header,
    packed,
    quote4,
    udp_datagram,
    windows_payload,
)
from testkit.exfil_corpus import echo, kernel_reply

SECRET = random.Random(20261203).randbytes(1200)  # what leaves: random, as an encrypted file is
CLIENT6, SERVER6 = "2001:db8:10::5", "2001:db8:99::7"


def _replies(requests: list[IcmpPacket]) -> list[IcmpPacket]:
    out = []
    for request in requests:
        out += [request, kernel_reply(request)]
    return out


def _words(data: bytes, size: int) -> list[int]:
    return [int.from_bytes(data[i : i + size].ljust(size, b"\0"), "big") for i in range(0, len(data), size)]


# -- positives ---------------------------------------------------------------------------------------


def ident_seq(data: bytes = SECRET[:600], rate: float = 5.0) -> list[IcmpPacket]:
    """ping's exact iputils payload (a right timestamp), data in the identifier and the sequence number."""
    words = _words(data, 4)
    out = []
    for i, word in enumerate(words):
        t = START + i / rate
        out.append(echo(t, CLIENT, SERVER, True, word >> 16, word & 0xFFFF, iputils_payload(56, t - SEND_LAG)))
    return _replies(out)


def new_ident_each(data: bytes = SECRET[:500], rate: float = 2.0) -> list[IcmpPacket]:
    """A new identifier for every request (its two bytes of data), seq 1, iputils payload: `ping -c 1` in a
    loop whose identifier is chosen."""
    out = []
    for i, word in enumerate(_words(data, 2)):
        t = START + i / rate
        out.append(echo(t, CLIENT, SERVER, True, word, 1, iputils_payload(56, t - SEND_LAG)))
    return _replies(out)


def timestamp_usec(data: bytes = SECRET[:500], rate: float = 2.0) -> list[IcmpPacket]:
    """iputils' struct timeval with the right seconds and two bytes of data in tv_usec's low 16 bits."""
    out = []
    for i, word in enumerate(_words(data, 2)):
        t = START + i / rate
        payload = bytearray(iputils_payload(56, t - SEND_LAG))
        usec = (int(((t - SEND_LAG) % 1) * 1e6) & ~0xFFFF | word) % 1_000_000
        payload[8:16] = struct.pack("<Q", usec)
        out.append(echo(t, CLIENT, SERVER, True, 0x4242, i + 1, bytes(payload)))
    return _replies(out)


def busybox_counter(data: bytes = SECRET[:600], rate: float = 2.0) -> list[IcmpPacket]:
    """BusyBox ping's layout (4-byte monotonic microsecond counter, then the fill) with data in the counter."""
    out = []
    for i, word in enumerate(_words(data, 4)):
        t = START + i / rate
        out.append(echo(t, CLIENT, SERVER, True, 0x3131, i, busybox_payload(56, word)))
    return _replies(out)


def ping_patterns(data: bytes = SECRET[:640], runs_per_s: float = 1.0) -> list[IcmpPacket]:
    """`ping -c 2 -p PATTERN` over and over, a new 16-byte pattern each run: every payload is what ping
    writes; the pattern changes run to run and the runs are many and short."""
    out = []
    for r in range(0, len(data), 16):
        pattern = data[r : r + 16].ljust(16, b"\0")
        run = r // 16
        for k in range(2):
            t = START + run / runs_per_s + k * 0.2
            out.append(echo(t, CLIENT, SERVER, True, 0x5000 + run, k + 1, iputils_payload(56, t - SEND_LAG, pattern)))
    return _replies(out)


def length_modulated(data: bytes = SECRET[:400], rate: float = 5.0) -> list[IcmpPacket]:
    """The iputils payload, its length 16 + one byte of data per request."""
    out = []
    for i, byte in enumerate(data):
        t = START + i / rate
        out.append(echo(t, CLIENT, SERVER, True, 0x6161, i + 1, iputils_payload(16 + byte, t - SEND_LAG)))
    return _replies(out)


def size_per_run(data: bytes = SECRET[:300], every: float = 2.0) -> list[IcmpPacket]:
    """`ping -c 1 -s $((16 + byte))` looped: one request per run, a new identifier (the next pid) each,
    the data in the size chosen for the run; every payload is exactly what iputils writes."""
    out = []
    for i, byte in enumerate(data):
        t = START + i * every
        out.append(echo(t, CLIENT, SERVER, True, 0x3000 + 3 * i, 1, iputils_payload(16 + byte, t - SEND_LAG)))
    return _replies(out)


def pattern_per_run(data: bytes = SECRET[:320], every: float = 1.0) -> list[IcmpPacket]:
    """`ping -c 1 -p HEX16` looped: one request per run, 16 data bytes in each run's pattern."""
    out = []
    for r in range(0, len(data), 16):
        t = START + r / 16 * every
        out.append(echo(t, CLIENT, SERVER, True, 0x4000 + r, 1, iputils_payload(56, t - SEND_LAG, data[r : r + 16])))
    return _replies(out)


def seq_only(data: bytes = SECRET[:300], every: float = 0.2) -> list[IcmpPacket]:
    """Data in the sequence number alone (two bytes a request), one identifier, the iputils payload."""
    out = []
    for i in range(0, len(data), 2):
        t = START + i / 2 * every
        out.append(echo(t, CLIENT, SERVER, True, 0x1234, int.from_bytes(data[i : i + 2], "big"),
                        iputils_payload(56, t - SEND_LAG)))
    return _replies(out)


def spread_rand_dest(data: bytes = SECRET, chunk: int = 48, rate: float = 20.0) -> list[IcmpPacket]:
    """One source sends a file in small pieces to a new destination each time (hping3 --rand-dest
    --file): every flow carries one chunk, far under the per-flow thresholds."""
    rng = random.Random(5)
    out = []
    for i in range(0, len(data), chunk):
        t = START + i / chunk / rate
        dst = f"203.0.{rng.randrange(1, 255)}.{rng.randrange(1, 255)}"
        out.append(echo(t, CLIENT, dst, True, 0x7777, i // chunk, data[i : i + chunk]))
    return out


def small_secret(data: bytes = SECRET[:300]) -> list[IcmpPacket]:
    """A key's worth of data (300 bytes) in three echo requests, from a host that pings nothing else."""
    return _replies([echo(START + k * 0.5, CLIENT, SERVER, True, 0x0BAD, k + 1, data[k * 100 : (k + 1) * 100])
                     for k in range(3)])


def icmplib_layout_exfil(data: bytes = SECRET, calls: int = 8, count: int = 50) -> list[IcmpPacket]:
    """A file in icmplib's exact layout: base62 text of the data, 56 characters per request, ping(count=50,
    interval=0.05) calls back to back, a new identifier per call, seq from 0 (exfiltration volume)."""
    alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    number = int.from_bytes(data, "big")
    text = bytearray()
    while number:
        number, digit = divmod(number, 62)
        text.append(alphabet[digit])
    out = []
    for call in range(calls):
        for seq in range(count):
            k = (call * count + seq) * 56 % max(1, len(text) - 56)
            t = START + (call * count + seq) * 0.05
            out.append(echo(t, CLIENT, SERVER, True, 0x9100 + call, seq, bytes(text[k : k + 56])))
    return _replies(out)


def _base36(data: bytes) -> bytes:
    """The data as upper-case base-36 text (A-Z, 0-9: pythonping's alphabet)."""
    alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    number, text = int.from_bytes(data, "big"), bytearray()
    while number:
        number, digit = divmod(number, 36)
        text.append(alphabet[digit])
    return bytes(text)


def pythonping_layout_exfil(data: bytes = SECRET, size: int = 32, per_second: float = 5.0) -> list[IcmpPacket]:
    """A file in pythonping's exact layout: base-36 text of the data, 32 characters per ping(count=1, size=32)
    call, five calls a second, a random identifier per call, seq 1 (exfiltration volume)."""
    text = _base36(data)
    rng = random.Random(36)
    out = []
    for call, k in enumerate(range(0, len(text), size)):
        chunk = text[k : k + size].ljust(size, b"0")
        out.append(echo(START + call / per_second, CLIENT, SERVER, True, rng.randint(1, 0xFFFF), 0x0100, chunk))
    return _replies(out)


def secret_two_packets(data: bytes = SECRET[300:500]) -> list[IcmpPacket]:
    """A 200-byte credential in two echo requests, then the host's ordinary pings to the same peer."""
    out = [echo(START + k * 0.5, CLIENT, SERVER, True, 0x0BAE, k + 1, data[k * 100 : (k + 1) * 100])
           for k in range(2)]
    for i in range(30):
        t = START + 5 + i
        out.append(echo(t, CLIENT, SERVER, True, 0x0BB0, i + 1, iputils_payload(56, t - SEND_LAG)))
    return _replies(out)


def secret_in_replies(data: bytes = SECRET[500:660], per: int = 40) -> list[IcmpPacket]:
    """A 160-byte key sent back by the replier: its echo replies to an ordinary ping carry 40 bytes of
    data each instead of the request's payload (icmpsh's direction)."""
    out = []
    for i in range(20):
        t = START + i
        request = echo(t, CLIENT, SERVER, True, 0x0BB1, i + 1, iputils_payload(56, t - SEND_LAG))
        piece = data[i * per : (i + 1) * per]
        reply = echo(t + 0.0004, SERVER, CLIENT, False, 0x0BB1, i + 1, piece) if piece else kernel_reply(request)
        out += [request, reply]
    return out


def quoted_data(data: bytes = SECRET[:1000], per: int = 100) -> list[IcmpPacket]:
    """Port unreachables whose quote is a right IPv4 header (sent by the receiver) followed by data, not
    by the UDP header the header announces."""
    out = []
    for k in range(0, len(data), per):
        body = data[k : k + per]
        datagram = ipv4_header(SERVER, CLIENT, 17, len(body), ttl=64, ident=k) + body
        out.append(error_packet(CLIENT, SERVER, 3, 3, bytes(4), quote4(datagram, "linux"), START + k / per))
    return out


def extension_objects(data: bytes = SECRET[:800], per: int = 80) -> list[IcmpPacket]:
    """Time exceeded with an RFC 4884 extension structure (version 2, right checksum) whose object is of an
    unassigned class carrying data."""
    out = []
    udp = udp_datagram(SERVER, CLIENT, 40000, 33434, bytes(32))
    datagram = ipv4_header(SERVER, CLIENT, 17, len(udp), ttl=1, ident=9) + udp
    quoted = datagram.ljust(128, b"\0")
    for k in range(0, len(data), per):
        body = data[k : k + per]
        obj = struct.pack("!HBB", 4 + len(body), 200, 1) + body
        structure = bytearray(b"\x20\0\0\0" + obj)
        structure[2:4] = struct.pack("!H", internet_checksum(bytes(structure)))
        payload = bytes([0, 32, 0, 0]) + quoted + bytes(structure)
        out.append(IcmpPacket(START + k / per, packed(CLIENT), packed(SERVER), False, 11, 0, -1, -1, payload,
                              14 + 20 + 4 + len(payload)))
    return out


def ipv6_dest_options(data: bytes = SECRET[:800], per: int = 16, rate: float = 2.0) -> list[IcmpPacket]:
    """iputils ping6 echo requests behind a destination options header with an experimental option (type
    0x1e, RFC 4727) carrying data."""
    out = []
    for k in range(0, len(data), per):
        t = START + k / per / rate
        option = bytes([0x1E, per]) + data[k : k + per]
        pkt = IcmpPacket(t, packed(CLIENT6), packed(SERVER6), True, 128, 0, 0x0606, k // per + 1,
                         iputils_payload(56, t - SEND_LAG), 14 + 40 + 24 + 8 + 56, option)
        out += [pkt, IcmpPacket(t + 1e-3, packed(SERVER6), packed(CLIENT6), True, 129, 0, 0x0606, k // per + 1,
                                pkt.payload, 14 + 40 + 8 + 56)]
    return out


def nd_options(data: bytes = SECRET[:640], per: int = 32, rate: float = 1.0) -> list[IcmpPacket]:
    """Neighbour solicitations with a source link-layer address option and an unassigned option (type 200)
    carrying data."""
    out = []
    target = packed(SERVER6)
    for k in range(0, len(data), per):
        option = bytes([200, (2 + per + 7) // 8]) + data[k : k + per].ljust(8 * ((2 + per + 7) // 8) - 2, b"\0")
        payload = bytes(4) + target + bytes([1, 1]) + bytes.fromhex("02aabbccddee") + option
        out.append(IcmpPacket(START + k / per / rate, packed(CLIENT6), packed(SERVER6), True, 135, 0, -1, -1,
                              payload, 14 + 40 + 4 + len(payload)))
    return out


# -- negatives ---------------------------------------------------------------------------------------


def icmplib_monitor(hosts: int = 8, duration: float = 2 * HOUR, every: float = 30.0,
                    count: int = 5, interval: float = 1.0) -> list[IcmpPacket]:
    """Home Assistant's ping integration (icmplib async_ping: count 5, interval 1 s, a new identifier per
    call, seq from 0, 56 random characters of a-zA-Z0-9 per request) every 30 s to a few hosts."""
    rng = random.Random(8)
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ1234567890"
    out = []
    for h in range(hosts):
        dst = f"192.168.1.{10 + h}"
        for r in range(int(duration / every)):
            ident = rng.randrange(0x10000)
            for seq in range(count):
                t = START + r * every + h * 0.01 + seq * interval
                payload = bytes(rng.choices(alphabet, k=56))
                out.append(echo(t, CLIENT, dst, True, ident, seq, payload))
    return sorted(_replies(out), key=lambda p: p.ts)


def pythonping_monitor(hosts: int = 3, duration: float = HOUR, every: float = 10.0, count: int = 4,
                       sizes: tuple[int, ...] = (1, 32)) -> list[IcmpPacket]:
    """pythonping (alessandromaggio/pythonping: ping() draws `size` characters of A-Z0-9 once per call,
    utils.random_text, and sends them in each of the call's `count` requests, a random identifier per call,
    seq from 1, executor.Communicator.run; packed in host byte order: 0x0100, 0x0200... from a little-endian
    host, as seen live) every 10 s to a few hosts: size 1 (its default) to some, 32 to others."""
    rng = random.Random(37)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    out = []
    for h in range(hosts):
        dst, size = f"192.168.2.{10 + h}", sizes[h % len(sizes)]
        for r in range(int(duration / every)):
            ident, payload = rng.randint(1, 0xFFFF), bytes(rng.choices(alphabet, k=size))
            for seq in range(1, count + 1):
                out.append(echo(START + r * every + h * 0.01 + seq * 0.002, CLIENT, dst, True, ident, seq << 8,
                                payload))
    return sorted(_replies(out), key=lambda p: p.ts)


def icmplib_every_10s() -> list[IcmpPacket]:
    """icmplib monitoring at a tighter cadence: count 5 every 10 s to 4 hosts for an hour."""
    return icmplib_monitor(hosts=4, duration=HOUR, every=10.0)


def icmplib_fast_interval() -> list[IcmpPacket]:
    """icmplib ping(count=5, interval=0.2) every 30 s: four changing 56-byte payloads back to back, seq +1
    (what Icmp-File-Transfer's chunks also look like, but for icmplib's exact layout)."""
    return icmplib_monitor(hosts=4, duration=HOUR, interval=0.2)


def sizes_per_run(hosts: int = 3, duration: float = HOUR, every: float = 5.0) -> list[IcmpPacket]:
    """A path check that runs `ping -c 1` with one of three sizes in turn (56, 1372, 1472) every 5 s to a
    few hosts, a new identifier per run."""
    out = []
    sizes = (56, 1372, 1472)
    for h in range(hosts):
        for r in range(int(duration / every)):
            t = START + r * every + h * 0.02
            out.append(echo(t, CLIENT, f"10.52.0.{h + 1}", True, (0x5000 + 7 * r + h) & 0xFFFF, 1,
                            iputils_payload(sizes[r % 3], t - SEND_LAG)))
    return sorted(_replies(out), key=lambda p: p.ts)


def health_check_constant(hosts: int = 60, duration: float = 2 * HOUR, every: float = 10.0) -> list[IcmpPacket]:
    """A health check sending one constant custom payload forever (seq from 1, +1) to many hosts."""
    payload = b"healthcheck:v2:probe\x00\x01"
    out = []
    for h in range(hosts):
        dst = f"10.50.{h // 200}.{h % 200 + 1}"
        for i in range(int(duration / every)):
            out.append(echo(START + i * every + h * 0.003, CLIENT, dst, True, 0x1000 + h, i + 1, payload))
    return sorted(_replies(out), key=lambda p: p.ts)


def health_check_medium(hosts: int = 5, duration: float = 2 * HOUR, every: float = 10.0) -> list[IcmpPacket]:
    """A health check whose one constant custom payload (200 bytes) is above small_secret_bytes."""
    payload = (b"probe:datacenter-health:v3;" * 8)[:200]
    out = []
    for h in range(hosts):
        for i in range(int(duration / every)):
            out.append(echo(START + i * every + h * 0.01, CLIENT, f"10.51.0.{h + 1}", True, 0x2000 + h, i + 1,
                            payload))
    return sorted(_replies(out), key=lambda p: p.ts)


def mpls_time_exceeded(rounds: int = 200) -> list[IcmpPacket]:
    """Time exceeded from MPLS routers (RFC 4950): the quote padded to 128 bytes (RFC 4884 length 32) and an
    MPLS label stack object, as `traceroute -I` across a provider core receives them."""
    out = []
    for r in range(rounds):
        for hop in range(1, 5):
            probe = b"\x08\0" + struct.pack("!HHH", 0, 0x1F00, r * 4 + hop) + bytes(32)
            probe = probe[:2] + struct.pack("!H", internet_checksum(probe)) + probe[4:]
            datagram = ipv4_header(CLIENT, SERVER, 1, len(probe), ttl=1, ident=r * 4 + hop) + probe
            labels = b"".join(struct.pack("!I", (16000 + hop * 10 + k) << 12 | (k == 1) << 8 | 1) for k in range(2))
            obj = struct.pack("!HBB", 4 + len(labels), 1, 1) + labels
            structure = bytearray(b"\x20\0\0\0" + obj)
            structure[2:4] = struct.pack("!H", internet_checksum(bytes(structure)))
            payload = bytes([0, 32, 0, 0]) + datagram.ljust(128, b"\0") + bytes(structure)
            router = f"100.64.{hop}.1"
            out.append(IcmpPacket(START + r * 2 + hop * 0.01, packed(router), packed(CLIENT), False, 11, 0, -1, -1,
                                  payload, 14 + 20 + 4 + len(payload)))
    return out


def unknown_ping_counter_clock(duration: float = HOUR) -> list[IcmpPacket]:
    """A ping the templates do not know: an 8-byte little-endian microsecond clock, a 4-byte counter, then a
    fixed text."""
    out = []
    for i in range(int(duration)):
        t = START + i
        payload = struct.pack("<QI", int((t - SEND_LAG) * 1e6), i) + b"custom-pinger fill " * 2
        out.append(echo(t, CLIENT, SERVER, True, 0x2468, i, payload))
    return _replies(out)


def _iso(t: float) -> bytes:
    """UTC as ISO 8601 with microseconds: 2023-11-14T22:13:20.000000Z."""
    whole = int(t)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)).encode() + b".%06dZ" % int((t - whole) * 1e6)


def unknown_ping_text_clock(duration: float = HOUR) -> list[IcmpPacket]:
    """A ping the templates do not know that writes text: a zero-padded counter, the time in ISO 8601 and as
    seconds with 6 decimals (what a script's f"{seq:06d} {datetime} {time.time():.6f}" writes)."""
    out = []
    for i in range(int(duration)):
        t = START + i + (i * 7919 % 1000) / 1e6  # sub-ms scheduling noise
        sent = t - SEND_LAG
        out.append(echo(t, CLIENT, SERVER, True, 0x7E57, i + 1, b"mon1 %06d %s %.6f" % (i + 1, _iso(sent), sent)))
    return _replies(out)


def text_digits_data(data: bytes = SECRET[:500], rate: float = 1.0) -> list[IcmpPacket]:
    """Data in a decimal text counter: four bytes a request, written as the 10-digit number they make."""
    out = []
    for i, word in enumerate(_words(data, 4)):
        t = START + i / rate
        out.append(echo(t, CLIENT, SERVER, True, 0x7E58, i + 1, b"probe seq=%010d ok" % word))
    return _replies(out)


def cron_ping_c1(duration: float = 2 * HOUR, every: float = 10.0) -> list[IcmpPacket]:
    """`ping -c 1` from cron every 10 s: a new identifier each time (kernel ping sockets count up)."""
    out = []
    for i in range(int(duration / every)):
        t = START + i * every
        out.append(echo(t, CLIENT, SERVER, True, 0x0200 + 3 * i, 1, iputils_payload(56, t - SEND_LAG)))
    return _replies(out)


def sweep_many_hosts(hosts: int = 400) -> list[IcmpPacket]:
    """One host pinging hundreds with ping's own payload (a monitoring sweep), every 60 s for an hour."""
    out = []
    for r in range(60):
        for h in range(hosts):
            t = START + r * 60 + h * 0.01
            out.append(echo(t, CLIENT, f"10.60.{h // 250}.{h % 250 + 1}", True, 0x4000 + h, r + 1,
                            iputils_payload(56, t - SEND_LAG)))
    return sorted(_replies(out), key=lambda p: p.ts)


CapacityCase = Callable[[], list[IcmpPacket]]

CAPACITY_POSITIVES: dict[str, tuple[CapacityCase, tuple[str, str]]] = {
    "ident-seq": (ident_seq, (CLIENT, SERVER)),
    "new-ident-each": (new_ident_each, (CLIENT, SERVER)),
    "timestamp-usec": (timestamp_usec, (CLIENT, SERVER)),
    "busybox-counter": (busybox_counter, (CLIENT, SERVER)),
    "ping-patterns": (ping_patterns, (CLIENT, SERVER)),
    "length-modulated": (length_modulated, (CLIENT, SERVER)),
    "size-per-run": (size_per_run, (CLIENT, SERVER)),
    "pattern-per-run": (pattern_per_run, (CLIENT, SERVER)),
    "seq-only": (seq_only, (CLIENT, SERVER)),
    "spread-rand-dest": (spread_rand_dest, (CLIENT, "*")),
    "small-secret": (small_secret, (CLIENT, SERVER)),
    "icmplib-layout-exfil": (icmplib_layout_exfil, (CLIENT, SERVER)),
    "secret-two-packets": (secret_two_packets, (CLIENT, SERVER)),
    "secret-in-replies": (secret_in_replies, (SERVER, CLIENT)),
    "quoted-data": (quoted_data, (CLIENT, SERVER)),
    "extension-objects": (extension_objects, (CLIENT, SERVER)),
    "ipv6-dest-options": (ipv6_dest_options, (CLIENT6, SERVER6)),
    "nd-options": (nd_options, (CLIENT6, SERVER6)),
    "text-digits-data": (text_digits_data, (CLIENT, SERVER)),
    "pythonping-layout-exfil": (pythonping_layout_exfil, (CLIENT, SERVER)),
}

CAPACITY_NEGATIVES: dict[str, CapacityCase] = {
    "icmplib-monitor": icmplib_monitor,
    "icmplib-every-10s": icmplib_every_10s,
    "icmplib-fast-interval": icmplib_fast_interval,
    "health-check-constant": health_check_constant,
    "sizes-per-run": sizes_per_run,
    "health-check-medium": health_check_medium,
    "mpls-time-exceeded": mpls_time_exceeded,
    "unknown-ping-counter-clock": unknown_ping_counter_clock,
    "cron-ping-c1": cron_ping_c1,
    "sweep-many-hosts": sweep_many_hosts,
    "unknown-ping-text-clock": unknown_ping_text_clock,
    "pythonping-monitor": pythonping_monitor,
}

PROVENANCE: dict[str, str] = {
    "ident-seq": "crafted: iputils ping payload (ping/ping_common.c) with data in id and seq",
    "new-ident-each": "crafted: iputils payload, a data-chosen identifier per request",
    "timestamp-usec": "crafted: iputils struct timeval, data in tv_usec's low 16 bits",
    "busybox-counter": "crafted: BusyBox networking/ping.c layout, data in the monotonic counter",
    "ping-patterns": "crafted: iputils ping -c 2 -p PATTERN (fill()), a new pattern per run",
    "length-modulated": "crafted: iputils payload, size = 16 + data byte",
    "size-per-run": "crafted: iputils ping -c 1 -s (16 + data byte) in a loop, every 2 s, ident = next pid",
    "pattern-per-run": "crafted: iputils ping -c 1 -p (16 data bytes) in a loop, every 1 s",
    "seq-only": "crafted: iputils payload, data in the sequence number only, one identifier",
    "sizes-per-run": "crafted: ping -c 1 -s 56/1372/1472 in turn every 5 s to 3 hosts, a new ident per run",
    "spread-rand-dest": "crafted: hping3 --rand-dest --file style, one chunk per destination",
    "small-secret": "crafted: 300 random bytes in 3 echo requests",
    "icmplib-layout-exfil": "crafted: SECRET as base62 text in icmplib's 56-character layout, 8 x ping(count=50, "
                            "interval=0.05)",
    "secret-two-packets": "crafted: 200 random bytes in 2 echo requests, then iputils pings",
    "secret-in-replies": "crafted: 160 random bytes in 4 echo replies (40 each) to iputils pings",
    "health-check-medium": "crafted: one constant 200-byte custom payload, seq +1 from 1, 5 hosts, every 10 s",
    "quoted-data": "crafted: port unreachable, right IPv4 header quote, data instead of UDP",
    "extension-objects": "crafted: RFC 4884 extension, unassigned class 200 object with data",
    "ipv6-dest-options": "crafted: RFC 8200 destination options, RFC 4727 experimental option 0x1e",
    "nd-options": "crafted: RFC 4861 neighbour solicitation, unassigned option type 200",
    "icmplib-monitor": "icmplib models.py ICMPRequest (56 random a-zA-Z0-9), ping(count=5, id per call, seq 0..)",
    "icmplib-every-10s": "icmplib layout as icmplib-monitor, count 5 every 10 s to 4 hosts",
    "icmplib-fast-interval": "icmplib layout as icmplib-monitor, ping(count=5, interval=0.2) every 30 s",
    "health-check-constant": "crafted: constant custom payload, seq +1 from 1, 60 hosts",
    "mpls-time-exceeded": "RFC 4950 / RFC 4884: 128-byte padded quote, MPLS label stack object",
    "unknown-ping-counter-clock": "crafted: 8-byte LE microsecond clock + 4-byte counter + fixed text",
    "cron-ping-c1": "iputils ping -c 1 every 10 s, kernel ping-socket identifiers counting up",
    "sweep-many-hosts": "iputils payload to 400 hosts every 60 s",
    "unknown-ping-text-clock": "crafted: text payload: 6-digit counter, ISO 8601 time with µs, seconds with 6 decimals",
    "text-digits-data": "crafted: 4 data bytes a request as a 10-digit decimal counter in a text payload",
    "pythonping-monitor": "pythonping ping() layout (utils.random_text per call, executor seq from 1): count 4 "
                          "every 10 s, size 1 and 32, 3 hosts",
    "pythonping-layout-exfil": "crafted: SECRET as base-36 text in pythonping's layout, ping(count=1, size=32) "
                               "5 times a second",
}


def ping3_double_clock(duration: float = HOUR) -> list[IcmpPacket]:
    """ping3 (kyan001/ping3 ping3/__init__.py send_one_ping): struct.pack("!d", time.time()) then "Q" fill."""
    out = []
    for i in range(int(duration)):
        t = START + i
        out.append(echo(t, CLIENT, SERVER, True, 0x0303, i, struct.pack("!d", t - SEND_LAG) + b"Q" * 48))
    return _replies(out)


CAPACITY_NEGATIVES["ping3-double-clock"] = ping3_double_clock
PROVENANCE["ping3-double-clock"] = "ping3 send_one_ping(): 8-byte big-endian double time.time(), then 'Q' padding"


def windows_ping_script(hosts: int = 20, duration: float = 3 * HOUR, count: int = 4) -> list[IcmpPacket]:
    """A script running Windows `ping -n 4` to each of 20 hosts in turn, round after round: ping.exe's
    identifier is 1 and its sequence number one counter for the whole machine (it counts on from one run to
    the next, whatever the destination), so each host's next run starts where the other hosts' runs left it."""
    out = []
    seq, t = 0x2B40, START
    payload = windows_payload(32)
    while t < START + duration:
        for h in range(hosts):
            for _ in range(count):
                seq = (seq + 1) & 0xFFFF
                out.append(echo(t, CLIENT, f"10.70.0.{h + 1}", True, 1, seq, payload))
                t += 1.0
        t += 5.0
    return _replies(out)


def monitor_text_probe(hosts: int = 200, duration: float = 600.0, every: float = 10.0) -> list[IcmpPacket]:
    """A monitoring system's own pinger writing its round number and the time as text, the same to every one
    of 200 hosts, 4 ms apart, every 10 s ('NMSPROBE v2 cycle=000123 t=1700000000.123', space-padded to 64);
    10 minutes (ExfilSpread came in the first round, from each new flow's first payload)."""
    out = []
    for cycle in range(int(duration / every)):
        for h in range(hosts):
            t = START + cycle * every + h * 0.004
            payload = b"NMSPROBE v2 cycle=%06d t=%.3f" % (cycle, t - SEND_LAG)
            out.append(echo(t, CLIENT, f"10.71.{h // 250}.{h % 250 + 1}", True, 0x2A2B, cycle + 1,
                            payload.ljust(64)))
    return _replies(out)


CAPACITY_NEGATIVES["windows-ping-script"] = windows_ping_script
PROVENANCE["windows-ping-script"] = ("Windows ping.exe: identifier 1, one sequence counter per machine (seen in "
                                     "captures of successive ping runs), 'abcdefghijklmnopqrstuvw' fill")
CAPACITY_NEGATIVES["monitor-text-probe"] = monitor_text_probe
PROVENANCE["monitor-text-probe"] = ("a monitoring pinger of its own (written here): text round counter and "
                                    "epoch time with ms, the same payload to every host of a round")
