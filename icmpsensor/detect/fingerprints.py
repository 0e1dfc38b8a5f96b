"""Exact templates of benign ICMP payloads: which tool wrote these bytes, if any.

`explain()` accepts an echo payload only when *every* byte is accounted for by one
tool's layout: fill bytes are compared in full, embedded wall-clock timestamps must
decode (as that implementation writes them) to within `tolerance` of the capture time,
and sub-second fields must be in range. What a template leaves free is reported back so
that the detector can constrain it across a flow:

* `embedded_time` must advance with the sequence number within a flow (a replayed or
  frozen timestamp is then caught); for `monotonic` clocks the offset
  ``embedded_time - capture_ts`` (modulo `wraps_after`) must stay nearly constant;
* `session` holds bytes that a tool chooses once per run (pro-bing's tracker UUID, a
  ``ping -p`` pattern, check_icmp's struct padding): it must stay constant within a flow;
* ICMP errors and the other non-echo types are judged in nonecho.py.

Layouts, each taken from the tool's source (cited where the template is defined):
iputils ping, BSD/macOS ping, Windows ping, BusyBox ping, fping, monitoring-plugins
check_icmp, Prometheus blackbox_exporter, Go pro-bing and go-ping, Cisco IOS (unverified, see there),
nmap/nping discovery, Linux traceroute -I, mtr.
"""

from __future__ import annotations

import binascii
import re
import struct
from dataclasses import dataclass

# -- result -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Benign:
    """A payload fully explained by one tool's template."""

    template: str
    embedded_time: float | None  # decoded timestamp (seconds); None when the template has none
    monotonic: bool = False  # embedded_time counts from an unknown origin (boot), not the epoch
    wraps_after: float | None = None  # a monotonic counter that wraps modulo this many seconds
    session: bytes | None = None  # chosen once per run by the tool: must stay constant within a flow


# Templates whose session is a fresh random value every run by design, not a parameter a user chose:
# pro-bing's tracker (prometheus-community/pro-bing ping.go New(): uuid.New() per Pinger), go-ping's before it
# (go-ping/ping v1 ping.go New(): r.Uint64() per Pinger). A new one at
# a new run is part of the run (the run budget), not a parameter change (detect/capacity.py).
RANDOM_SESSION_TEMPLATES = frozenset({"pro-bing", "go-ping", "go-ping-json"})

_new_object = object.__new__
_set_template = Benign.template.__set__  # type: ignore[attr-defined]
_set_embedded_time = Benign.embedded_time.__set__  # type: ignore[attr-defined]
_set_monotonic = Benign.monotonic.__set__  # type: ignore[attr-defined]
_set_wraps_after = Benign.wraps_after.__set__  # type: ignore[attr-defined]
_set_session = Benign.session.__set__  # type: ignore[attr-defined]


def _benign(template: str, embedded_time: float | None, session: bytes | None = None, monotonic: bool = False,
            wraps_after: float | None = None) -> Benign:
    """``Benign(template, embedded_time, monotonic=monotonic, wraps_after=wraps_after, session=session)``
    for the per-packet hits: the slots are filled directly, skipping the frozen dataclass __init__ (five
    object.__setattr__ calls by name); the object is the same, frozen like any other."""
    hit = _new_object(Benign)
    _set_template(hit, template)
    _set_embedded_time(hit, embedded_time)
    _set_monotonic(hit, monotonic)
    _set_wraps_after(hit, wraps_after)
    _set_session(hit, session)
    return hit


MAX_PATTERN = 16  # iputils and BSD ping accept at most 16 pattern bytes (sscanf of 16 "%2x")
_SPAN = 65536 + 64  # longer than any ICMP payload, so every fill slice below is in range



def _repeat(period: bytes) -> bytes:
    """`period` repeated to _SPAN bytes (built by bytes repetition: microseconds at import)."""
    return (period * (_SPAN // len(period) + 1))[:_SPAN]


# Fill sequences, precomputed once so that a check is one slice comparison.
_SEQ = _repeat(bytes(range(256)))  # iputils / BSD default fill: byte j holds j
_WINDOWS_FILL = _repeat(bytes(0x61 + i for i in range(23)))  # 'a'..'w', repeating
_TRACEROUTE_FILL = _repeat(bytes(0x40 + ((i + 8) & 0x3F) for i in range(64)))
_BLACKBOX_TEXT = b"Prometheus Blackbox Exporter"

_TV64_LE = struct.Struct("<QQ")  # struct timeval, 64-bit time_t, little-endian host
_TV32_LE = struct.Struct("<II")  # struct timeval on 32-bit time_t little-endian hosts
_TV32_BE = struct.Struct(">II")  # BSD struct tv32, written with htonl()
_I64_BE = struct.Struct(">q")
_U32_LE = struct.Struct("<I")
_U32_BE = struct.Struct(">I")

_USEC = 1_000_000
_NSEC = 1_000_000_000
MAX_UPTIME = 10 * 366 * 86400  # a monotonic "seconds since boot" beyond ten years is not a clock

EMPTY = Benign("empty", None)
ZERO_FILL = Benign("zero-fill", None)
_WINDOWS = Benign("windows", None)
_TRACEROUTE = Benign("traceroute", None)
_BLACKBOX = Benign("blackbox_exporter", None)
_IPUTILS_UNTIMED = Benign("iputils", None)
_MTR = tuple(Benign("mtr", None, session=bytes((b,))) for b in range(256))


def _period(payload: bytes, start: int, n: int) -> int:
    """Smallest p <= MAX_PATTERN such that payload[start:] repeats with period p at least twice; else 0.

    Candidates come from earlier occurrences of the last byte (found with rfind, no
    allocation), so a random payload is rejected after one or two C-level searches.
    """
    length = n - start
    if length < 2:
        return 0
    last = payload[n - 1]
    low = max(start, n - 1 - MAX_PATTERN)
    idx = payload.rfind(last, low, n - 1)
    while idx >= 0:
        p = n - 1 - idx
        if 2 * p > length:
            return 0
        if payload[start + p :] == payload[start : n - p]:
            return p
        idx = payload.rfind(last, low, idx)
    return 0


def _pattern(payload: bytes, start: int, p: int, origin: int) -> bytes:
    """The p-byte pattern as the tool laid it out from `origin` (tail seen from `start`)."""
    segment = payload[start : start + p]
    shift = (start - origin) % p
    return segment[p - shift :] + segment[: p - shift] if shift else segment


# -- templates without any timestamp ------------------------------------------------------


def _untimed(payload: bytes, n: int, first: int) -> Benign | None:
    if payload[-1] == first and payload.count(first) == n:
        if first == 0:
            # fping (calloc'd buffer, schweikert/fping src/socket4.c init_ping_buffer_ipv4), nmap
            # OS-detection IE probes (120/150 zero bytes, nmap.org/book/osdetect-methods.html),
            # mtr's default -B 0, BSD ping below 8 bytes (static zeroed outpack), ...
            return ZERO_FILL
        if n >= 2:
            # mtr -B/--bitpattern: memset(packet, bit_pattern, size) before the ICMP header is
            # written (traviscross/mtr packet/construct_unix.c construct_packet).
            return _MTR[first]
    if first == 0x61:
        # Windows ping.exe: byte i = 'a' + i % 23, any -l size. Closed source: the fill loop
        # ("PUSH 17 / DIV / ADD DL,61") is from a published disassembly of ping.exe
        # (network.allfaq.org/forums/t/36173), matching the well-known 32-byte default.
        if payload == _WINDOWS_FILL[:n]:
            return _WINDOWS
    elif first == 0x48:
        # Linux traceroute -I (traceroute.sourceforge.net mod-icmp.c icmp_init): the buffer
        # includes the 8-byte ICMP header and byte i (i >= 8) is 0x40 + (i & 0x3f), so the
        # payload starts "HIJK..."; default 32 data bytes (60-byte IPv4 packet).
        if payload == _TRACEROUTE_FILL[:n]:
            return _TRACEROUTE
    elif first == 0x50:
        hit = _blackbox(payload, n)
        if hit is not None:
            return hit
    elif first == 0 and n < 16 and payload == _SEQ[:n]:
        # iputils with fewer bytes than a struct timeval: no timestamp, the fill alone
        # (iputils/iputils ping/ping_common.c setup(): "fill timestamp area too").
        return _IPUTILS_UNTIMED
    if n < 16:
        p = _period(payload, 0, n)
        if p:
            # iputils -p PATTERN without room for a timestamp: the pattern from byte 0.
            return _benign("iputils", None, _pattern(payload, 0, p, 0))
    return None


def _blackbox(payload: bytes, n: int) -> Benign | None:
    # prometheus/blackbox_exporter prober/icmp.go: data = "Prometheus Blackbox Exporter", or
    # with payload_size N a zeroed N-byte slice into which that text is copied (truncated).
    if n <= len(_BLACKBOX_TEXT):
        return _BLACKBOX if payload == _BLACKBOX_TEXT[:n] else None
    if payload.startswith(_BLACKBOX_TEXT) and payload.count(0, len(_BLACKBOX_TEXT)) == n - len(_BLACKBOX_TEXT):
        return _BLACKBOX
    return None


FREE_FILL_BYTES = (0x00, 0x01)  # fills no sender chooses: zeroed buffers, pro-bing's and go-ping's 0x01


def fill_charge(run: bytes) -> int:
    """The bytes of a run from the middle of an echo payload, at an offset not known (a fragment's without its
    datagram's first: detect/nonecho.py), that a benign tool's fill does not explain: 0 for the iputils / BSD
    count (byte j holds j) or Windows' alphabet or traceroute -I's fill at any phase, zeros or 0x01 (calloc'd
    buffers, pro-bing); a pattern of up to MAX_PATTERN bytes repeated (BusyBox's and ping's -p, mtr -B, Cisco's
    0xABCD) its pattern's length, which a sender chooses (16 bytes repeated would be free data otherwise); anything
    else all its bytes."""
    n = len(run)
    first = run[0] if n else 0
    if n == 0 or (first in FREE_FILL_BYTES and run.count(first) == n):
        return 0
    if n == 1:
        return 1
    if _SEQ.startswith(run, first):
        return 0
    if 0x61 <= first < 0x61 + 23 and _WINDOWS_FILL.startswith(run, first - 0x61):
        return 0
    if 0x40 <= first < 0x80 and _TRACEROUTE_FILL.startswith(run, (first - 0x48) & 0x3F):
        return 0
    return _period(run, 0, n) or n


# The fills fill_charge finds at any phase, each from the first place its run's first byte has in it (detect/
# _fastflows.c judges headless packets with them; tests/unit/test_fastflows.py holds it to fill_charge).
PHASED_FILLS = (_SEQ, _WINDOWS_FILL, _TRACEROUTE_FILL)


# -- templates with a timestamp -----------------------------------------------------------


def _check_icmp(payload: bytes, n: int, capture_ts: float, tolerance: float) -> Benign | None:
    # monitoring-plugins plugins-root/check_icmp.c send_icmp_ping(): the buffer is zeroed,
    # then struct icmp_ping_data { struct timeval stime; unsigned short ping_id = 10; } is
    # memcpy'd to the start of the data: 16 + 2 bytes plus 6 bytes of struct padding on
    # x86_64. The padding is copied from an uninitialised stack variable, so its value is
    # unknowable; it is returned as `session` (the same stack slot in every call).
    # Default data size: sizeof(icmp_ping_data) + 44 = 68.
    if n < 24 or payload[16] != 10 or payload[17] != 0 or payload[15] != 0 or payload[7] != 0:
        return None
    t = _timeval(*_TV64_LE.unpack_from(payload), capture_ts, tolerance)
    if t is None or payload.count(0, 24) != n - 24:
        return None
    return _benign("check_icmp", t, payload[18:24])


def _pro_bing(payload: bytes, n: int, capture_ts: float, tolerance: float) -> Benign | None:
    # prometheus-community/pro-bing ping.go sendICMP(): timeToBytes(time.Now()) (UnixNano,
    # big-endian int64), then the 16-byte tracker UUID (uuid.New(): random, version 4,
    # RFC 4122 variant), then Size-24 bytes of 0x01. Default Size = 24. The UUID is fixed
    # for 65536 sequence numbers, then replaced: it is the `session`.
    if n < 24 or (payload[14] & 0xF0) != 0x40 or (payload[16] & 0xC0) != 0x80:
        return None
    if n > 24 and payload.count(1, 24) != n - 24:
        return None
    t = _I64_BE.unpack_from(payload)[0] / _NSEC
    if not -tolerance <= t - capture_ts <= tolerance:
        return None
    return _benign("pro-bing", t, payload[8:24])


def _go_ping(payload: bytes, n: int, capture_ts: float, tolerance: float) -> Benign | None:
    # go-ping/ping v1 (pro-bing's predecessor; Telegraf's ping input, method "native", before 1.25) ping.go
    # sendICMP(): timeToBytes(time.Now()) (UnixNano, big-endian), then uint64ToBytes(p.Tracker) (8 bytes,
    # big-endian; r.Uint64() once per Pinger), then Size-16 bytes of 0x01. Default Size = 16. The tracker is the
    # `session`.
    if n < 16 or (n > 16 and payload.count(1, 16) != n - 16):
        return None
    t = _I64_BE.unpack_from(payload)[0] / _NSEC
    if not -tolerance <= t - capture_ts <= tolerance:
        return None
    return _benign("go-ping", t, payload[8:16])


# sparrc/go-ping's first layout (and forks of it that kept it) ping.go sendICMP(): json.Marshal(IcmpData{Bytes:
# timeToBytes(time.Now()), Tracker: p.tracker}): Go writes a []byte as standard base64 (8 bytes: 11 characters and
# "="), the int64 tracker (r.Int63n(math.MaxInt64), once per Pinger) in decimal.
_GO_PING_JSON = re.compile(rb'\{"Bytes":"([A-Za-z0-9+/]{11}=)","Tracker":(0|[1-9][0-9]{0,18})\}')


def _go_ping_json(payload: bytes, n: int, capture_ts: float, tolerance: float) -> Benign | None:
    match = _GO_PING_JSON.fullmatch(payload)
    if match is None:
        return None
    t = _I64_BE.unpack(binascii.a2b_base64(match[1]))[0] / _NSEC
    if not -tolerance <= t - capture_ts <= tolerance:
        return None
    return _benign("go-ping-json", t, match[2])  # the tracker is the `session`


def _timeval(sec: int, usec: int, capture_ts: float, tolerance: float) -> float | None:
    """A struct timeval as seconds, if it is one (usec < 10^6) within `tolerance` of the capture time."""
    if usec >= _USEC:
        return None
    t = sec + usec / _USEC
    return t if -tolerance <= t - capture_ts <= tolerance else None


def _timestamped_fill(payload: bytes, start: int, n: int, origin: int, t: float, template: str) -> Benign | None:
    """The BSD-derived fill after a timestamp: byte j = j (default) or a -p pattern from `origin`."""
    if _SEQ.startswith(payload[start:], start):  # payload[start:] == _SEQ[start:n], one slice less
        return _benign(template, t)
    p = _period(payload, start, n)
    if p:
        return _benign(template, t, _pattern(payload, start, p, origin))
    return None


def _iputils64(payload: bytes, n: int, capture_ts: float, tolerance: float) -> Benign | None:
    # iputils/iputils ping/ping.c ping4_send_probe() (ping6_common.c alike): gettimeofday()
    # memcpy'd raw after the ICMP header when datalen >= sizeof(struct timeval) (16 on
    # 64-bit and time64 hosts; host order, little-endian on x86_64/aarch64). The rest is the
    # fill of ping_common.c setup() (byte j = j) or fill() for -p (pattern repeated from
    # byte 0, the timestamp then written over its first 16 bytes). Flood (-f) and
    # path-MTU probing (-M do -s N) send the same layout.
    if n < 16 or payload[15] != 0 or payload[11] != 0 or payload[7] != 0:
        return None
    t = _timeval(*_TV64_LE.unpack_from(payload), capture_ts, tolerance)
    return None if t is None else _timestamped_fill(payload, 16, n, 0, t, "iputils")


def _iputils32(payload: bytes, n: int, capture_ts: float, tolerance: float) -> Benign | None:
    # The same iputils code built with a 32-bit time_t (i386, armhf before time64): an
    # 8-byte struct timeval {u32 tv_sec; u32 tv_usec}, timing from datalen >= 8.
    if n < 8 or payload[7] != 0:
        return None
    t = _timeval(*_TV32_LE.unpack_from(payload), capture_ts, tolerance)
    return None if t is None else _timestamped_fill(payload, 8, n, 0, t, "iputils")


def _bsd(payload: bytes, n: int, capture_ts: float, tolerance: float) -> Benign | None:
    # BSD ping: struct tv32 (two 32-bit fields, htonl) at the start of the data; the fill
    # starts after it: byte j = j (loop from TIMEVAL_LEN), or -p pattern laid from byte 8.
    # * macOS (apple network_cmds ping.tproj/ping.c, older FreeBSD sbin/ping/ping.c):
    #   gettimeofday(), tv32 {tv32_sec, tv32_usec}: wall clock, checked.
    # * FreeBSD 13+ (freebsd-src sbin/ping/ping.c pinger()): clock_gettime(CLOCK_MONOTONIC)
    #   truncated to 32 bits, tv32 {tv32_sec, tv32_nsec}: seconds since boot, which cannot be
    #   checked against wall time; nsec < 10^9 and a plausible uptime are checked.
    if n < 8:
        return None
    sec, frac = _TV32_BE.unpack_from(payload)
    if frac < _USEC and -tolerance <= sec + frac / _USEC - capture_ts <= tolerance:
        return _timestamped_fill(payload, 8, n, 8, sec + frac / _USEC, "bsd-ping")
    if frac < _NSEC and sec < MAX_UPTIME:
        hit = _timestamped_fill(payload, 8, n, 8, sec + frac / _NSEC, "bsd-ping")
        if hit is not None:
            return _benign(hit.template, hit.embedded_time, hit.session, True, 2.0**32)
    return None


def _cisco(payload: bytes, n: int, capture_ts: float, tolerance: float) -> Benign | None:
    # UNVERIFIED (closed source, no byte-level documentation found): Cisco IOS ping sends a
    # 100-byte datagram by default (72 data bytes) filled with the 16-bit "Data pattern
    # [0xABCD]" (documented prompt of the extended ping; Snort's "PING Cisco Type.x" rule
    # matches ABCD within the first 32 bytes). The 8 bytes before the pattern, four zeros
    # then a big-endian 32-bit counter taken as milliseconds of uptime, are recalled from
    # captures, not read from a source. The pattern is the `session`; the counter monotonic.
    if n < 12 or not payload.startswith(b"\0\0\0\0") or payload[10:] != payload[8 : n - 2]:
        return None
    return _benign("cisco-ios", _U32_BE.unpack_from(payload, 4)[0] / 1000, payload[8:10], True, 2**32 / 1000)


BUSYBOX = "busybox"


def _busybox(payload: bytes, n: int, capture_ts: float, tolerance: float) -> Benign | None:
    # mirror/busybox networking/ping.c sendping4()/sendping6(): the packet is memset to the
    # -p byte (default 0), then the first 4 data bytes get monotonic_us() as a host-order
    # uint32 ("No hton: we'll read it back on the same machine"). Microseconds since boot,
    # wrapping every 2^32 us: not checkable per packet. Below 8 bytes (-s 0..7) too little
    # fill is left to tell the layout from arbitrary bytes, so those sizes are not explained.
    if n < 8:
        return None
    fill = payload[4]
    if payload[-1] != fill or payload.count(fill, 4) != n - 4:
        return None
    # session: payload[4:5] == bytes((fill,)), without building a tuple
    return _benign(BUSYBOX, _U32_LE.unpack_from(payload)[0] / _USEC, payload[4:5], True, 2**32 / _USEC)


def busybox_other_order(embedded: float) -> float:
    """BusyBox's counter (the `embedded_time` _busybox read little-endian) read in the other byte order: a
    big-endian host (OpenWrt on MIPS, ath79) writes it so ("No hton: we'll read it back on the same machine"), and
    the sensor cannot tell the host's order from one payload (the detector tries this one where the first does not
    keep time: Detector._consistent)."""
    counter = round(embedded * _USEC) & 0xFFFFFFFF
    return int.from_bytes(counter.to_bytes(4, "little"), "big") / _USEC


# Most specific first; each starts with byte tests that reject random data at once. BusyBox
# goes before BSD: [counter][zeros] would otherwise also read as FreeBSD `ping -p 00`.
_TIMED = (_go_ping_json, _check_icmp, _pro_bing, _go_ping, _iputils64, _iputils32, _cisco, _busybox, _bsd)


def explain(payload: bytes, capture_ts: float, *, tolerance: float = 300.0, is_reply: bool = False) -> Benign | None:
    """The benign template that accounts for every byte of an echo payload, or None.

    `capture_ts` is the packet's capture time; a wall-clock timestamp in the payload must
    lie within `tolerance` seconds of it. For replies (`is_reply`) the timestamp is the
    request's send time, slightly earlier; the same window applies to both, as either
    clock may be skewed.
    """
    n = len(payload)
    if n == 0:
        # nmap -PE / nping host discovery without --data*, Windows ping -l 0.
        return EMPTY
    hit = _untimed(payload, n, payload[0])
    if hit is not None:
        return hit
    # The checks of _TIMED, in its order, each called only when the first byte tests it starts
    # with pass (every timed template needs at least 8 bytes).
    if n < 8:
        return None
    if payload[0] == 0x7B and payload[1] == 0x22:  # '{"': a clock's first byte may be '{' too
        hit = _go_ping_json(payload, n, capture_ts, tolerance)
        if hit is not None:
            return hit
    b7 = payload[7]
    if n >= 24:
        b16 = payload[16]
        if b16 == 10 and b7 == 0 and payload[17] == 0 and payload[15] == 0:
            hit = _check_icmp(payload, n, capture_ts, tolerance)
            if hit is not None:
                return hit
        if (payload[14] & 0xF0) == 0x40 and (b16 & 0xC0) == 0x80:
            hit = _pro_bing(payload, n, capture_ts, tolerance)
            if hit is not None:
                return hit
    if n >= 16 and (payload[0] & 0xF0) == 0x10 and (n == 16 or payload[16] == 1):
        hit = _go_ping(payload, n, capture_ts, tolerance)  # a clock of 2006-2042 in nanoseconds, then 0x01
        if hit is not None:
            return hit
    if b7 == 0:
        if n >= 16 and payload[15] == 0 and payload[11] == 0:
            hit = _iputils64(payload, n, capture_ts, tolerance)
            if hit is not None:
                return hit
        hit = _iputils32(payload, n, capture_ts, tolerance)
        if hit is not None:
            return hit
    if n >= 12 and payload.startswith(b"\0\0\0\0"):
        hit = _cisco(payload, n, capture_ts, tolerance)
        if hit is not None:
            return hit
    if payload[-1] == payload[4]:
        hit = _busybox(payload, n, capture_ts, tolerance)
        if hit is not None:
            return hit
    return _bsd(payload, n, capture_ts, tolerance)
