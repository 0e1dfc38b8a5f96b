"""ICMP messages other than echo: how many of their bytes carry something they should not.

Each message type has a fixed layout (RFC 792, 950, 1256, 4443, 4884). Bytes beyond
it, any payload on an unassigned, reserved or deprecated type, and an error message
whose quoted datagram cannot be a copy of a packet the receiver sent are
*unexplained*. Echo with a non-zero code is handled here too: RFC 792 defines code 0
only, so its whole payload is unexplained unless it is a benign template (nmap's OS
detection sends zero-filled echo requests with code 9).

Known limitation: the data part of a plausible quoted datagram (the original packet's
first bytes) cannot be checked, and the option area of ICMPv6 neighbour discovery and
MLD messages is not analysed.
"""

from __future__ import annotations

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
    end = n
    if pkt.icmp_type in (3, 11, 12):
        words = payload[1]
        if words and n >= 4 + words * 4:
            end = 4 + words * 4
            if end == n or payload[end] >> 4 != 2:
                return "ICMP extension structure with an unknown version"
    quoted_len = end - 4
    first = payload[4]
    header_len = (first & 15) * 4
    if first >> 4 != 4 or header_len < 20 or quoted_len < header_len:
        return "quoted data is not an IPv4 header"
    if not checksum_ok(payload[4 : 4 + header_len]):
        return "quoted IPv4 header has a wrong checksum"
    total = payload[6] << 8 | payload[7]
    if total < header_len or quoted_len > total:
        return "quoted datagram longer than its own total length"
    if payload[16:20] != pkt.dst:
        return "quoted datagram was not sent by the error's receiver"
    if not _rest_of_header_ok(pkt, payload, total, quoted_len):
        return "unused header bytes of the error message are not zero"
    return ""


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
    if kind in _STRUCTURED_V6:
        return 0, ""
    return len(payload), f"payload on unassigned or private ICMPv6 type {kind}"


def _quote_problem_v6(pkt: IcmpPacket, payload: bytes) -> str:
    """As _quote_problem_v4; ICMPv6 gives the RFC 4884 length in byte 0, in 64-bit words."""
    n = len(payload)
    if n < 4 + 40:
        return "error message too short to quote an IPv6 header"
    end = n
    if pkt.icmp_type in (1, 3):
        words = payload[0]  # ICMPv6 puts the length in the first byte
        if words and n >= 4 + words * 8:
            end = 4 + words * 8
            if end == n or payload[end] >> 4 != 2:
                return "ICMP extension structure with an unknown version"
    quoted_len = end - 4
    if payload[4] >> 4 != 6 or quoted_len < 40:
        return "quoted data is not an IPv6 header"
    if quoted_len > 40 + (payload[8] << 8 | payload[9]):
        return "quoted packet longer than its own payload length"
    if payload[12:28] != pkt.dst:
        return "quoted packet was not sent by the error's receiver"
    return ""
