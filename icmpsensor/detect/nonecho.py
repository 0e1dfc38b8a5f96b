"""ICMP messages other than echo: how many of their bytes carry something they should not.

Each message type has a fixed layout (RFC 792, 950, 1256, 4443, 4884). Bytes beyond
it, any payload on an unassigned, reserved or deprecated type, and an error message
whose quoted datagram cannot be a copy of a packet the receiver sent are
*unexplained*. Echo with a non-zero code is handled here too: RFC 792 defines code 0
only, so its whole payload is unexplained unless it is a benign template (nmap's OS
detection sends zero-filled echo requests with code 9).

An error's quoted datagram must be a packet its receiver sent: an IP header with the
receiver as source (and, IPv4, a right checksum), a quote no longer than the datagram's own
length unless the RFC 4884 / RFC 4950 padding to 128 bytes (zeros) follows it, a protocol a
host sends, and a UDP header whose length matches the datagram. An RFC 4884 extension structure
must be version 2 with a right (or no) checksum, made
of the objects routers send: MPLS label stacks (RFC 4950), interface information (RFC 5837),
interface identification (RFC 8335); any other object's bytes are unexplained. Neighbour
discovery messages (RFC 4861) carry their fixed body and options of the assigned types; an
unknown option, or a link-layer address option longer than one unit, is unexplained.

Known limitation: data inside a quoted datagram whose headers are plausible cannot be told from a
packet the receiver really sent (the sensor sees only ICMP, and a NAT on the way leaves quoted
checksums wrong, so they are not checked).
"""

from __future__ import annotations

import struct

from icmpsensor.decode.checksum import checksum_ok
from icmpsensor.decode.packet import ECHO_TYPES_V4, ECHO_TYPES_V6, IcmpPacket
from icmpsensor.detect import fingerprints

# IPv4 informational types with a fixed length after the 4-byte ICMP header.
_FIXED_V4 = {
    10: 4,  # router solicitation: reserved
    13: 16,  # timestamp: id, seq, originate, receive, transmit
    14: 16,  # timestamp reply
    15: 4,  # information request (deprecated): id, seq
    16: 4,  # information reply (deprecated)
    17: 8,  # address mask request: id, seq, mask
    18: 8,  # address mask reply
}
_ERRORS_V4 = frozenset((3, 4, 5, 11, 12))
_ERRORS_V6 = frozenset((1, 2, 3, 4))
# ICMPv6 informational types with a defined structure (MLD, neighbour discovery, inverse ND,
# mobility, SEND, multicast router discovery, RPL, ...): not analysed further.
_STRUCTURED_V6 = frozenset(range(130, 162))
_MS_PER_DAY = 86_400_000
_ECHO_TYPES = frozenset((0, 8, 128, 129))


def unexplained_bytes(pkt: IcmpPacket, tolerance: float = 300.0) -> tuple[int, str]:
    """(unexplained byte count, reason) for a non-echo message (or an echo with a non-zero code)."""
    payload = pkt.payload
    if not payload:
        return 0, ""
    if pkt.icmp_type in _ECHO_TYPES and fingerprints.explain(payload, pkt.ts, tolerance=tolerance):
        return 0, ""  # nmap's OS detection sends zero-filled echo requests with code 9
    if pkt.icmp_type in (ECHO_TYPES_V6 if pkt.ipv6 else ECHO_TYPES_V4):  # an echo with a non-zero code
        return len(payload), f"echo with code {pkt.icmp_code}"
    if pkt.ipv6:
        return _v6(pkt, payload)
    if pkt.icmp_type in _ERRORS_V4:  # what _v4 does with an error, one call less for the common case
        return _whole_if(_quote_problem_v4(pkt, payload), payload)
    return _v4(pkt, payload)


def _whole_if(problem: str, payload: bytes) -> tuple[int, str]:
    """An error message's whole payload is unexplained when its quote has a problem; else none of it."""
    return (len(payload), problem) if problem else (0, "")


def _v4(pkt: IcmpPacket, payload: bytes) -> tuple[int, str]:
    kind = pkt.icmp_type
    if kind in _ERRORS_V4:
        return _whole_if(_quote_problem_v4(pkt, payload), payload)
    if kind == 9:
        return _router_advertisement(payload)
    size = _FIXED_V4.get(kind)
    if size is None:
        return len(payload), f"payload on unassigned or deprecated ICMP type {kind}"
    if len(payload) > size:
        return len(payload) - size, f"{len(payload) - size} bytes beyond the {size}-byte body of type {kind}"
    if kind in (13, 14) and len(payload) == size:
        return _timestamp_fields(payload)
    return 0, ""


def _router_advertisement(payload: bytes) -> tuple[int, str]:
    if len(payload) < 4:
        return len(payload), "truncated router advertisement"
    body = 4 + payload[0] * payload[1] * 4
    if len(payload) > body:
        return len(payload) - body, f"{len(payload) - body} bytes beyond the router advertisement"
    return 0, ""


def _timestamp_fields(payload: bytes) -> tuple[int, str]:
    """Timestamps are milliseconds since midnight UT, or have the high bit set (RFC 792)."""
    bad = 0
    for offset in (4, 8, 12):
        value = int.from_bytes(payload[offset : offset + 4], "big")
        if value >= _MS_PER_DAY and not value & 0x8000_0000:
            bad += 4
    return (bad, "timestamp fields that are not times of day") if bad else (0, "")


def _quote_problem_v4(pkt: IcmpPacket, payload: bytes) -> str:
    """Why the quoted datagram of an IPv4 error cannot be a packet the error's receiver sent, or ''.

    The quoted datagram is payload[4:end], read in place: for unreachable, time exceeded and
    parameter problem, byte 1 may give its length in 32-bit words (RFC 4884), and an extension
    structure then follows it.
    """
    n = len(payload)
    if n < 4 + 20:
        return "error message too short to quote an IPv4 header"
    end, problem = _quote_end(payload, payload[1] if pkt.icmp_type in (3, 11, 12) else 0, 4)
    if problem:
        return problem
    quoted_len = end - 4
    first = payload[4]
    header_len = (first & 15) * 4
    if first >> 4 != 4 or header_len < 20 or quoted_len < header_len:
        return "quoted data is not an IPv4 header"
    if not checksum_ok(payload[4 : 4 + header_len]):
        return "quoted IPv4 header has a wrong checksum"
    total = payload[6] << 8 | payload[7]
    if total < header_len or (quoted_len > total and not _padded(payload, 4 + total, end)):
        return "quoted datagram longer than its own total length"
    if payload[16:20] != pkt.dst:
        return "quoted datagram was not sent by the error's receiver"
    if not _rest_of_header_ok(pkt, payload, total, quoted_len):
        return "unused header bytes of the error message are not zero"
    return _transport_problem(payload[4 : 4 + min(quoted_len, total)], header_len, total - header_len, payload[13])


def _rest_of_header_ok(pkt: IcmpPacket, payload: bytes, total: int, quoted_len: int) -> bool:
    """The 4 bytes after type/code/checksum hold only what the type defines (RFC 792, 1191, 4884)."""
    kind, code = pkt.icmp_type, pkt.icmp_code
    if kind == 5:
        return True  # redirect: the gateway address
    if kind == 12:
        return payload[0] < quoted_len and payload[2:4] == b"\0\0"  # pointer, RFC 4884 length, unused
    if kind == 3 and code == 4:
        mtu = int.from_bytes(payload[2:4], "big")  # fragmentation needed: next-hop MTU (0 from old routers)
        return payload[0] == 0 and (mtu == 0 or 68 <= mtu < total)
    # unused, with the RFC 4884 length in byte 1 for unreachable and time exceeded
    return payload[0] == 0 and payload[2:4] == b"\0\0" and (kind in (3, 11) or payload[1] == 0)


def _v6(pkt: IcmpPacket, payload: bytes) -> tuple[int, str]:
    kind = pkt.icmp_type
    if kind in _ERRORS_V6:
        return _whole_if(_quote_problem_v6(pkt, payload), payload)
    if kind in _ND_BODY:
        return _nd_options(kind, payload)
    if kind in _STRUCTURED_V6:
        return 0, ""
    return len(payload), f"payload on unassigned or private ICMPv6 type {kind}"


# Neighbour discovery (RFC 4861 4.1-4.5): the fixed body after the 4-byte ICMPv6 header, then options.
_ND_BODY = {133: 4, 134: 12, 135: 20, 136: 20, 137: 36}
# Option types in use with ND (IANA "IPv6 Neighbor Discovery Option Formats"): link-layer addresses,
# prefix information, redirected header, MTU, advertisement interval, home agent, route information,
# RDNSS, DNSSL, nonce, CGA/RSA/timestamp (SEND), captive portal, PREF64 and others up to 41.
_ND_OPTIONS = frozenset((1, 2, 3, 4, 5, 7, 8, 11, 12, 13, 14, 24, 25, 31, 37, 38, 39, 40, 41))


def _nd_options(kind: int, payload: bytes) -> tuple[int, str]:
    """Unexplained bytes in a neighbour discovery message: unknown options, a link-layer address option
    longer than Ethernet's one unit, bytes that are not options."""
    pos = _ND_BODY[kind]
    n = len(payload)
    if n < pos:
        return n, f"truncated neighbour discovery message type {kind}"
    unexplained = 0
    while pos < n:
        if pos + 2 > n or payload[pos + 1] == 0 or pos + 8 * payload[pos + 1] > n:
            return unexplained + n - pos, "bytes after the neighbour discovery options"
        option, size = payload[pos], 8 * payload[pos + 1]
        if option not in _ND_OPTIONS:
            unexplained += size
        elif option in (1, 2) and size > 8:
            unexplained += size - 8
        pos += size
    return (unexplained, f"neighbour discovery options that carry data (type {kind})") if unexplained else (0, "")


def _quote_problem_v6(pkt: IcmpPacket, payload: bytes) -> str:
    """As _quote_problem_v4; ICMPv6 gives the RFC 4884 length in byte 0, in 64-bit words."""
    n = len(payload)
    if n < 4 + 40:
        return "error message too short to quote an IPv6 header"
    end, problem = _quote_end(payload, payload[0] if pkt.icmp_type in (1, 3) else 0, 8)
    if problem:
        return problem
    quoted_len = end - 4
    if payload[4] >> 4 != 6 or quoted_len < 40:
        return "quoted data is not an IPv6 header"
    total = 40 + (payload[8] << 8 | payload[9])
    if quoted_len > total and not _padded(payload, 4 + total, end):
        return "quoted packet longer than its own payload length"
    if payload[12:28] != pkt.dst:
        return "quoted packet was not sent by the error's receiver"
    return _transport_problem(payload[4 : 4 + min(quoted_len, total)], 40, total - 40, payload[10])


def _quote_end(payload: bytes, words: int, unit: int) -> tuple[int, str]:
    """Where the quoted datagram ends, and why the extension structure after it is wrong (or ''): at its
    RFC 4884 length (`words` units of `unit` bytes; 0: none given) if the message is that long, else at
    the message's end."""
    n = len(payload)
    if not words or n < 4 + words * unit:
        return n, ""
    end = 4 + words * unit
    return end, _extension_problem(payload, end)


def _padded(payload: bytes, start: int, end: int) -> bool:
    """RFC 4884 pads a quote shorter than 128 bytes with zeros up to its length field (RFC 4950's MPLS
    time exceeded always does): a quote longer than its datagram is right only if the rest is that."""
    return end < len(payload) and not any(payload[start:end])


# RFC 4884 extension objects routers send: class -> (c-type -> largest plausible object length)
_OBJECTS = {
    1: {1: 4 + 4 * 16},  # MPLS label stack, RFC 4950: up to 16 entries of 4 bytes
    2: {c: 4 + 4 + 16 + 64 + 4 for c in range(256)},  # interface information, RFC 5837: ifIndex, address, name, MTU
    3: {c: 4 + 4 + 16 for c in range(1, 4)},  # interface identification, RFC 8335
}


def _extension_problem(payload: bytes, end: int) -> str:
    """Why the RFC 4884 extension structure at payload[end:] is not one a router sends, or ''."""
    n = len(payload)
    if end == n or payload[end] >> 4 != 2:
        return "ICMP extension structure with an unknown version"
    if n - end < 4:
        return "ICMP extension structure cut short"
    if payload[end + 2 : end + 4] != b"\0\0" and not checksum_ok(payload[end:]):
        return "ICMP extension structure with a wrong checksum"
    pos = end + 4
    while pos < n:
        if pos + 4 > n:
            return "bytes after the ICMP extension objects"
        length, klass, ctype = struct.unpack_from("!HBB", payload, pos)
        largest = _OBJECTS.get(klass, {}).get(ctype, 0)
        if length < 4 or pos + length > n:
            return "ICMP extension object with a wrong length"
        if length > largest or (klass == 1 and length % 4):
            return f"ICMP extension object class {klass} c-type {ctype} ({length} bytes) carries data"
        pos += length
    return ""


# Protocols a host sends that an error can quote (IANA protocol numbers); a quote announcing another
# (0, which crafting tools leave when raw data follows the header, or an unassigned number) is not a
# packet the receiver sent.
_QUOTED_PROTOCOLS = frozenset((1, 2, 4, 6, 17, 33, 41, 43, 44, 47, 50, 51, 58, 59, 60, 89, 103, 112, 132, 136))


def _transport_problem(quote: bytes, header_len: int, length: int, proto: int) -> str:
    """Why the transport header in a quoted datagram (quote = its quoted part, `length` its transport
    length) cannot be what the receiver sent, or ''. Checksums are not checked: a NAT that rewrites the
    quoted addresses and ports often leaves the quoted checksum as it was."""
    if proto not in _QUOTED_PROTOCOLS:
        return f"quoted datagram of protocol {proto}, which no host sends"
    segment = quote[header_len:]
    if proto == 17 and len(segment) >= 8 and (segment[4] << 8 | segment[5]) != length:
        return "quoted UDP header does not match its datagram"
    return ""
