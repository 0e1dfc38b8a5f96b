"""ICMP messages other than echo: how many of their bytes carry something they should not.

Each message type has a fixed layout (RFC 792, 950, 1256, 4443, 4884). Bytes beyond
it, any payload on an unassigned, reserved or deprecated type, and an error message
whose quoted datagram cannot be a copy of a packet the receiver sent are
*unexplained*, and so are the fields of an informational message that hold what no benign
sender puts there (docs/detection.md has the table): times that are not the capture's time of
day, masks that are not masks, reserved bytes, a neighbour solicitation's target that is not its
destination's, ND options a message of its type does not carry, MLDv2 auxiliary data, node
information subjects and extended echo objects that are not names or addresses. Each message is
judged alone: what a benign sender varies by design (identifiers, sequence numbers, nonces) stays
free. Echo with a non-zero code is handled here too: RFC 792 and RFC 4443 define code 0 only, so
the code byte is data, and so is the payload unless a benign template explains it (nmap's OS
detection request, code 9 with 120 zero bytes, is free).

An error's quoted datagram must be a packet its receiver sent: an IP header with the
receiver as source (and, IPv4, a right checksum), a quote no longer than the datagram's own
length unless the RFC 4884 / RFC 4950 padding to 128 bytes (zeros) follows it, a protocol a
host sends, and a UDP header whose length matches the datagram. An RFC 4884 extension structure
must be version 2 with a right (or no) checksum, made
of the objects routers send: MPLS label stacks (RFC 4950), interface information (RFC 5837),
interface identification (RFC 8335); any other object's bytes are unexplained. Neighbour
discovery messages (RFC 4861) carry their fixed body and the options their type carries; another
option, or one longer than its layout, is unexplained.

Known limitation: data inside a quoted datagram whose headers are plausible cannot be told from a
packet the receiver really sent (the sensor sees only ICMP, and a NAT on the way leaves quoted
checksums wrong, so they are not checked).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from collections.abc import Set as AbstractSet

from icmpsensor.accelerators import nonecho_extension as _fastnonecho
from icmpsensor.decode.checksum import checksum_ok
from icmpsensor.decode.packet import ECHO_TYPES_V4, ECHO_TYPES_V6, HEADLESS, HeadlessPacket, IcmpPacket
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
# Items (neighbour discovery options, MLDv2 records and their sources, node names, RFC 4884 extension objects) a walk
# takes in one message: a real one holds far fewer (a 1500-byte frame holds at most 180 ND options or 89 MLDv2
# sources; routers send a few extension objects), and what lies past them is unexplained. It bounds the work of a
# crafted message: a 60 KB datagram of one-byte names cost 57 ms of the detector when walked whole.
MAX_WALKED = 256
_ECHO_TYPES = frozenset((0, 8, 128, 129))
# The reasons of an echo request with a code and of a fixed body's fields and the bytes beyond it (str.format).
ECHO_CODE_REASON = "echo with code {}"
TIMESTAMP_REASON = "timestamp fields that are not times of day"
BEYOND_REASON = "{} bytes beyond the {}-byte body of type {}"
HEADLESS_REASON = "{} bytes in fragments without their datagram's first (at offset {})"


def c_judged() -> tuple[object, ...]:
    """What detect/_fastflows.c other_message needs to judge an echo request with a code (_echo_code), an IPv4
    timestamp message (_v4, _timestamp_fields) and a headless packet (_headless, fingerprints.fill_charge) itself,
    these functions its reference, and to ask unexplained_bytes about any other message: the function, nmap's IE
    probe, the reasons, the timestamp body's size, a day's milliseconds, HEADLESS, the bytes whose run alone is free,
    and the fills fill_charge finds at any phase."""
    return (unexplained_bytes, _NMAP_IE_CODE, _NMAP_IE_PAYLOAD, ECHO_CODE_REASON, TIMESTAMP_REASON, BEYOND_REASON,
            _FIXED_V4[13], _MS_PER_DAY, HEADLESS_REASON, HEADLESS, bytes(fingerprints.FREE_FILL_BYTES),
            fingerprints.PHASED_FILLS)


def unexplained_bytes(pkt: IcmpPacket, tolerance: float = 300.0) -> tuple[int, str]:
    """(unexplained byte count, reason) for a non-echo message (or an echo with a non-zero code)."""
    payload = pkt.payload
    if pkt.icmp_type == HEADLESS:
        return _headless(pkt)  # type: ignore[arg-type]
    if pkt.icmp_type in (ECHO_TYPES_V6 if pkt.ipv6 else ECHO_TYPES_V4):  # an echo with a non-zero code
        return _echo_code(pkt, payload, tolerance)
    if not payload:
        return 0, ""
    if pkt.ipv6:
        return _v6(pkt, payload)
    if pkt.icmp_type in _ERRORS_V4:  # what _v4 does with an error, one call less for the common case
        return _error_bytes(_quote_problem_v4(pkt, payload), payload, False)
    return _v4(pkt, payload, tolerance)


def _headless(pkt: HeadlessPacket) -> tuple[int, str]:
    """The bytes of fragments whose message's header never came (decode/fragments.py: a flood of spoofed fragments
    evicted their datagram, they came past the fragment timeout, or after a hole): each run is unexplained unless a
    benign ping's fill explains it at some phase (a lossy mirror port loses the first fragments of big pings); a
    pattern repeated, its length (fingerprints.fill_charge)."""
    unexplained, first = 0, -1
    at = 0
    for offset, length in pkt.runs:
        charge = fingerprints.fill_charge(pkt.payload[at : at + length])
        if charge:
            unexplained += charge
            if first < 0:
                first = offset
        at += length
    return (unexplained, HEADLESS_REASON.format(unexplained, first)) if unexplained else (0, "")


# nmap osscan2.cc sendTIcmpProbe(): the first "IE" probe is code 9 with 120 zero bytes (build_icmp_raw
# zero-fills when no data is given); the second is code 0.
_NMAP_IE_CODE, _NMAP_IE_PAYLOAD = 9, bytes(120)


def _echo_code(pkt: IcmpPacket, payload: bytes, tolerance: float) -> tuple[int, str]:
    """RFC 792 and RFC 4443 define code 0 only: the code byte is data, and so is the payload unless a
    benign template explains it."""
    if pkt.icmp_code == _NMAP_IE_CODE and payload == _NMAP_IE_PAYLOAD:
        return 0, ""
    explained = not payload or fingerprints.explain(payload, pkt.ts, tolerance=tolerance) is not None
    return 1 + (0 if explained else len(payload)), ECHO_CODE_REASON.format(pkt.icmp_code)


def _error_bytes(problem: str, payload: bytes, ipv6: bool) -> tuple[int, str]:
    """An error message's whole payload is unexplained when its quote has a problem; else what lies beyond the
    longest an error is (_beyond_error)."""
    return (len(payload), problem) if problem else _beyond_error(payload, ipv6)


# An ICMPv4 error fits in 576 bytes with its IP header (RFC 1812 4.3.2.3; Linux icmp_send, FreeBSD's icmp_quotelen
# 548), an ICMPv6 error in the minimum MTU (RFC 4443 2.4 (c)): a quote that makes it longer was put there, whatever
# its headers say (1,400 bytes of data in a plausible quote went free, red team 2026-12-08).
IPV4_ERROR_DATAGRAM = 576


def error_payload_limit(ipv6: bool) -> int:
    """The most an error message holds after its first 4 bytes (type, code, checksum) with the least IP header."""
    return (IPV6_MIN_MTU - 40 if ipv6 else IPV4_ERROR_DATAGRAM - 20) - 4


def _beyond_error(payload: bytes, ipv6: bool) -> tuple[int, str]:
    """The bytes of an error message whose quote is right beyond what an error holds (error_payload_limit)."""
    excess = len(payload) - error_payload_limit(ipv6)
    return (excess, f"{excess} bytes beyond the longest an ICMP{'v6' if ipv6 else ''} error is") if excess > 0 \
        else (0, "")


def _v4(pkt: IcmpPacket, payload: bytes, tolerance: float) -> tuple[int, str]:
    kind = pkt.icmp_type
    if kind in _ERRORS_V4:
        return _error_bytes(_quote_problem_v4(pkt, payload), payload, False)
    if kind == 9:
        return _router_advertisement(pkt, payload)
    if kind in (42, 43):  # RFC 8335 PROBE over IPv4
        return _extended_echo(pkt, payload)
    size = _FIXED_V4.get(kind)
    if size is None:
        return len(payload), f"payload on unassigned or deprecated ICMP type {kind}"
    beyond = max(0, len(payload) - size)
    fields, reason = _body_fields(kind, payload[:size], pkt.ts, tolerance)
    if beyond:
        return beyond + fields, BEYOND_REASON.format(beyond, size, kind)
    return fields, reason


ROUTER_ADDRESSES = 8  # addresses a router advertisement lists free: one interface's primary and secondary ones


def _router_advertisement(pkt: IcmpPacket, payload: bytes) -> tuple[int, str]:
    """RFC 1256 3.1: entries of 2 words (a router address, its preference), "the sending router's IP address(es) on
    the interface from which this message is sent": its source among them, at most ROUTER_ADDRESSES of them free
    (a preference is any value: 4 bytes of each entry stay free)."""
    if len(payload) < 4:
        return len(payload), "truncated router advertisement"
    count, entry_size = payload[0], payload[1]
    if count and entry_size != 2:
        return len(payload) - 4, f"router advertisement entry size {entry_size} words, not RFC 1256's 2"
    body = 4 + count * 8
    beyond = max(0, len(payload) - body)
    if beyond:
        return beyond, f"{beyond} bytes beyond the router advertisement"
    if len(payload) >= 12 and not _lists_entry(payload, pkt.src):
        return len(payload) - 4, "router advertisement of addresses without the sender's own"
    extra = max(0, count - ROUTER_ADDRESSES) * 8
    return (extra, f"router advertisement of {count} addresses (more than {ROUTER_ADDRESSES})") if extra else (0, "")


def _lists_entry(payload: bytes, address: bytes) -> bool:
    """Whether a router advertisement's whole entries (2 words from byte 4 on) list `address`: found by bytes.find,
    not a set of every entry's slice (255 entries a message cost 37 times a mix packet: red team, 2026-12-08)."""
    at = payload.find(address, 4, len(payload) - 4)
    while at >= 0:
        if (at - 4) % 8 == 0:
            return True
        at = payload.find(address, at + 1, len(payload) - 4)
    return False


def _body_fields(kind: int, body: bytes, ts: float, tolerance: float) -> tuple[int, str]:
    """The bytes of a fixed-size body's fields that hold what no benign sender puts there. The identifier
    and sequence number (bytes 0-3) stay free but in the deprecated information messages: one message
    cannot tell a counter from data."""
    if kind == 10:  # router solicitation: reserved, "sent as 0" (RFC 1256 3.2)
        return (len(body), "non-zero reserved bytes in a router solicitation") if any(body) else (0, "")
    if kind in (15, 16):  # information request/reply: deprecated by RFC 6918, no sender left
        return len(body), f"identifier and sequence of a deprecated information message (type {kind})"
    if kind in (13, 14):
        return _timestamp_fields(kind == 13, body, ts, tolerance)
    mask = _field(body, 4)
    if mask is None or _mask_ok(kind, mask):
        return 0, ""
    return len(body) - 4, "an address mask that is not one"


def _field(body: bytes, offset: int) -> int | None:
    """The 32-bit field at `offset` (missing bytes read as zero), or None if the body ends before it."""
    if len(body) <= offset:
        return None
    return int.from_bytes(body[offset : offset + 4].ljust(4, b"\0"), "big")


def _mask_ok(kind: int, mask: int) -> bool:
    """A request's mask is zero (nmap -PM: tcpip.cc build_icmp_raw; hping3 --icmp-addr: sendicmp.c
    send_icmp_address); a reply's is a contiguous prefix (RFC 950; RFC 4632 3.1)."""
    if kind == 17:
        return mask == 0
    inverted = ~mask & 0xFFFF_FFFF
    return inverted & (inverted + 1) == 0


def _timestamp_fields(request: bool, body: bytes, ts: float, tolerance: float) -> tuple[int, str]:
    """Originate, receive and transmit (RFC 792) hold milliseconds since midnight UT. A request's originate
    is 0 (nmap -PP: tcpip.cc build_icmp_raw) or the sender's time (hping3 --icmp-ts: sendicmp.c
    send_icmp_timestamp), its receive and transmit 0 (both tools); a reply copies the originate and gives
    its time in receive and transmit (Linux net/ipv4/icmp.c icmp_timestamp(), FreeBSD ip_icmp.c: the same
    value twice). An originate is free within `tolerance` of the capture's time of day; a reply's receive
    time whatever its clock (_replier_time) and its transmit time up to a second after it; anything else,
    a request's repeated value's second copy aside, costs the bytes the field has."""
    bad, receive = 0, 0
    seen: set[int] = set()
    for offset in (4, 8, 12):
        value = _field(body, offset)
        if value is None:
            break
        if request or offset == 4:
            free = value == 0 or (offset == 12 and value in seen) or (
                offset == 4 and time_of_day(value, ts, tolerance))
        elif offset == 8:
            free = _replier_time(value)
            receive = value
        else:
            free = _soon_after(value, receive)
        if not free:
            bad += min(4, len(body) - offset)
        seen.add(value)
    return (bad, TIMESTAMP_REASON) if bad else (0, "")


def _swap32(value: int) -> int:
    return int.from_bytes(value.to_bytes(4, "little"), "big")


def _replier_time(value: int) -> bool:
    """A reply's receive time, which its sender's clock gives, right or not: a scanner's sweep (nmap -PP, a
    vulnerability scanner's date-disclosure check) is answered by printers, appliances and routers whatever
    their clocks. Free: a time of day in either byte order, or RFC 792's "non-standard" high-bit value."""
    return value >= 1 << 31 or value < _MS_PER_DAY or _swap32(value) < _MS_PER_DAY


def _soon_after(transmit: int, receive: int) -> bool:
    """A reply's transmit time: the receive time or up to a second after it, in either byte order."""
    return 0 <= transmit - receive <= 1000 or 0 <= _swap32(transmit) - _swap32(receive) <= 1000


def time_of_day(value: int, ts: float, tolerance: float) -> bool:
    """`value` is milliseconds since midnight UT within `tolerance` seconds of the capture time `ts`."""
    if value >= _MS_PER_DAY:
        return False
    offset = (value - int(ts % 86_400 * 1000)) % _MS_PER_DAY
    return min(offset, _MS_PER_DAY - offset) <= tolerance * 1000


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
    problem = _rest_of_header_problem(pkt, payload, total, quoted_len)
    if problem:
        return problem
    first_of_more = payload[10] & 0x3F == 0x20 and payload[11] == 0  # MF set, offset 0: a first fragment
    return _transport_problem(payload[4 : 4 + min(quoted_len, total)], header_len, total - header_len, payload[13],
                              first_of_more)


def _rest_of_header_problem(pkt: IcmpPacket, payload: bytes, total: int, quoted_len: int) -> str:
    """What is wrong with the 4 bytes after type/code/checksum ("": they hold only what the type defines: RFC 792,
    1191, 4884)."""
    unused = "unused header bytes of the error message are not zero"
    kind, code = pkt.icmp_type, pkt.icmp_code
    if kind == 5:
        return ""  # redirect: the gateway address
    if kind == 12:
        return "" if payload[0] < quoted_len and payload[2:4] == b"\0\0" else unused  # pointer, RFC 4884 length
    if kind == 3 and code == 4:
        mtu = int.from_bytes(payload[2:4], "big")  # fragmentation needed: next-hop MTU (0 from old routers)
        if payload[0] != 0:
            return unused
        return "" if mtu == 0 or 68 <= mtu < total else \
            f"next-hop MTU {mtu} is not one a {total}-byte datagram is refused for"
    # unused, with the RFC 4884 length in byte 1 for unreachable and time exceeded
    return "" if payload[0] == 0 and payload[2:4] == b"\0\0" and (kind in (3, 11) or payload[1] == 0) else unused


def _v6(pkt: IcmpPacket, payload: bytes) -> tuple[int, str]:
    kind = pkt.icmp_type
    if kind in _ERRORS_V6:
        return _error_bytes(_quote_problem_v6(pkt, payload), payload, True)
    if kind in _ON_LINK_ONLY_V6 and not _on_link_source(pkt.src):
        return len(payload), (f"ICMPv6 type {kind} from a source that is not link-local (receivers discard it)"
                              if kind in _LINK_LOCAL_SOURCE_V6 else
                              f"payload on ICMPv6 type {kind} (not analysed: free only from a link-local source)")
    if kind in _ND_BODY:
        return _neighbour_discovery(pkt, payload)
    check = _INFORMATIONAL_V6.get(kind)
    if check is not None:
        return check(pkt, payload)
    if kind in _STRUCTURED_V6:
        return 0, ""
    return len(payload), f"payload on unassigned or private ICMPv6 type {kind}"


# Neighbour discovery (RFC 4861 4.1-4.5): the fixed body after the 4-byte ICMPv6 header, then options.
_ND_BODY = {133: 4, 134: 12, 135: 20, 136: 20, 137: 36}
# Options each message may carry (IANA "IPv6 Neighbor Discovery Option Formats"). Every message: SEND's
# CGA, RSA signature, timestamp, nonce (RFC 3971 5) and RFC 8928's crypto-ID parameters and signature.
_ND_ANY = frozenset((11, 12, 13, 14, 39, 40))
_ND_OPTIONS = {
    133: _ND_ANY | {1},  # RS: source link-layer address (RFC 4861 4.1)
    # RA: source link-layer address, prefix information, MTU (RFC 4861 4.2), advertisement interval, home
    # agent (RFC 6275 7.3, 7.4), PvD (RFC 8801), route information (RFC 4191), RDNSS, DNSSL (RFC 8106),
    # flags extension (RFC 5175), 6LoWPAN context, ABRO (RFC 6775), captive portal (RFC 8910), PREF64
    # (RFC 8781), resource directory (RFC 9176), encrypted DNS (RFC 9463)
    134: _ND_ANY | {1, 3, 5, 7, 8, 21, 24, 25, 26, 31, 34, 35, 37, 38, 41, 144},
    135: _ND_ANY | {1, 33},  # NS: source link-layer address, address registration (RFC 6775 4.1)
    136: _ND_ANY | {2, 33},  # NA: target link-layer address, address registration
    137: _ND_ANY | {2, 4},  # redirect: target link-layer address, redirected header
}
# The largest an option of a fixed layout is, in 8-byte units: link-layer addresses (one for Ethernet),
# prefix information (4), MTU (1, RFC 4861 4.6), advertisement interval, home agent (1), SEND timestamp (2),
# nonce (1: Linux ndisc_ns_create and RFC 7527 send 6 bytes), route information (3), ARO (2), PREF64 (2); and the
# largest a key or signature makes one: SEND's CGA parameters with a 4,096-bit RSA key (RFC 3972: 25 bytes and a
# 550-byte SubjectPublicKeyInfo, 75) and its RSA signature (RFC 3971 5.2: a 16-byte key hash and 512 bytes, 67),
# RFC 8928's crypto-ID parameters and NDP signature (an elliptic-curve key or signature, 80 bytes at most: 10).
_ND_UNITS = {1: 1, 2: 1, 3: 4, 5: 1, 7: 1, 8: 1, 11: 75, 12: 67, 13: 2, 14: 1, 24: 3, 33: 2, 38: 2, 39: 10, 40: 10}
_ND_NONCE, _ND_CGA, _ND_REDIRECTED = 14, 11, 4
# the same as 256-byte tables by option type, for detect/_fastnonecho.c: carried by the message type; largest (0: any)
_ND_ALLOWED = {kind: bytes(option in options for option in range(256)) for kind, options in _ND_OPTIONS.items()}
_ND_LARGEST = bytes(_ND_UNITS.get(option, 0) for option in range(256))
_UNSPECIFIED = bytes(16)
_SOLICITED_NODE = bytes.fromhex("ff0200000000000000000001ff")


def _on_link_source(src: bytes) -> bool:
    """fe80::/10, or the unspecified address (a host without an address yet)."""
    return src == _UNSPECIFIED or (len(src) == 16 and src[0] == 0xFE and src[1] & 0xC0 == 0x80)


def _neighbour_discovery(pkt: IcmpPacket, payload: bytes) -> tuple[int, str]:
    kind = pkt.icmp_type
    if len(payload) < _ND_BODY[kind]:
        return len(payload), f"truncated neighbour discovery message type {kind}"
    body, reason = _nd_body(pkt, payload)
    options = _nd_options(pkt, payload)
    if options and not reason:
        reason = f"neighbour discovery options that carry data (type {kind})"
    if kind == 137:
        redirected = _redirected_header_bytes(pkt, payload)
        if redirected and not reason:
            reason = "a redirected header that is no packet the redirected host sent to the destination"
        options += redirected
    return body + options, reason


def _redirected_header_bytes(pkt: IcmpPacket, payload: bytes) -> int:
    """The bytes of a redirect's redirected header options (4) that hold no packet the redirected host (the
    redirect's destination) sent to the redirect's Destination Address (RFC 4861 4.6.3: "the original packet
    truncated", after 6 reserved bytes): an IPv6 header from the one to the other, no longer than its payload length
    says but for the option's zero padding. What follows that header is free, as in an error's quote. One packet
    triggered the redirect (RFC 4861 4.5): a second redirected header is charged whole (178 of them, each read in
    Python, cost 98 times a mix packet: red team, 2026-12-08). (The options _nd_option_bytes walked: what it found
    malformed is charged already.)"""
    start, end, others = _nd_option_first(payload, _ND_BODY[137], _ND_REDIRECTED)
    if start < 0:
        return 0
    # one packet triggered the redirect: a second header is no copy of it
    return (0 if _is_redirected_packet(pkt, payload, start + 8, end) else end - start) + others


def _nd_option_first(payload: bytes, pos: int, option: int) -> tuple[int, int, int]:
    """The (start, end) of the first ND option of type `option` at payload[pos:] ((-1, -1) without one) and the
    bytes of the others of that type: in C where it is built (a redirect of 178 options walked again in Python cost
    98 times a mix packet, red team 2026-12-08)."""
    if _fastnonecho is not None:
        return _fastnonecho.nd_option_first(payload, pos, option, MAX_WALKED)  # type: ignore[no-any-return]
    return _nd_option_first_reference(payload, pos, option)


def _nd_option_first_reference(payload: bytes, pos: int, option: int) -> tuple[int, int, int]:
    spans = [(start, end) for kind, start, end in _nd_option_spans(payload, pos) if kind == option]
    if not spans:
        return -1, -1, 0
    return spans[0][0], spans[0][1], sum(end - start for start, end in spans[1:])


def _is_redirected_packet(pkt: IcmpPacket, payload: bytes, start: int, end: int) -> bool:
    if any(payload[start - 6 : start]) or end - start < 40 or payload[start] >> 4 != 6:
        return False
    if payload[start + 8 : start + 24] != pkt.dst or payload[start + 24 : start + 40] != payload[20:36]:
        return False
    total = 40 + (payload[start + 4] << 8 | payload[start + 5])
    return end - start <= total or not any(payload[start + total : end])


def _nd_body(pkt: IcmpPacket, payload: bytes) -> tuple[int, str]:
    """Bytes of the fixed body that hold data: reserved fields a sender MUST zero (RFC 4861 4.1, 4.3-4.5)
    and a solicitation's target that is neither its destination (unicast, for NUD) nor the owner of its
    solicited-node destination (RFC 4861 7.2.2; Linux ndisc_solicit), or a multicast one (7.1.1), and an
    advertisement's multicast target (7.1.2)."""
    kind = pkt.icmp_type
    if kind == 134:
        return 0, ""  # a router's configuration: hop limit, flags, lifetimes, timers
    target, dst = payload[4:20], pkt.dst
    if kind == 135 and (target[0] == 0xFF or (dst != target and dst != _SOLICITED_NODE + target[13:])):
        return 16 + _nd_reserved(kind, payload), "a neighbour solicitation target that is not its destination's"
    if kind == 136 and target[0] == 0xFF:  # RFC 4861 7.1.2: a receiver discards it
        return 16 + _nd_reserved(kind, payload), "a neighbour advertisement of a multicast target"
    bad = _nd_reserved(kind, payload)
    return (bad, f"non-zero reserved bytes in neighbour discovery type {kind}") if bad else (0, "")


def _nd_reserved(kind: int, payload: bytes) -> int:
    reserved = payload[1:4] if kind == 136 else payload[:4]
    return 4 if any(reserved) or (kind == 136 and payload[0] & 0x1F) else 0


def _nd_options(pkt: IcmpPacket, payload: bytes) -> int:
    """Unexplained option bytes: an option the message does not carry, one longer than its layout, a nonce
    outside DAD (RFC 7527: solicitations from ::) and SEND (a CGA option), bytes that are not options."""
    kind = pkt.icmp_type
    unexplained, nonce = _nd_option_bytes(payload, _ND_BODY[kind], kind)
    return unexplained + nonce if nonce and not (kind == 135 and pkt.src == _UNSPECIFIED) else unexplained


def _nd_option_bytes(payload: bytes, pos: int, kind: int) -> tuple[int, int]:
    """The unexplained bytes of the options at payload[pos:] of an ND message of type `kind`, and its nonce
    bytes (0 with a CGA option: SEND), up to MAX_WALKED options (past them, the rest is unexplained)."""
    if _fastnonecho is not None:
        return _fastnonecho.nd_option_bytes(payload, pos, _ND_ALLOWED[kind], _ND_LARGEST, _ND_NONCE, _ND_CGA,
                                            MAX_WALKED)
    return _nd_option_bytes_reference(payload, pos, _ND_OPTIONS[kind])


def _nd_option_spans(payload: bytes, pos: int) -> Iterator[tuple[int, int, int]]:
    """The ND options at payload[pos:], as (type, start, end), up to MAX_WALKED of them and to the first that is
    cut short or of length 0."""
    n = len(payload)
    for _ in range(MAX_WALKED):
        if pos + 2 > n or payload[pos + 1] == 0 or pos + 8 * payload[pos + 1] > n:
            return
        end = pos + 8 * payload[pos + 1]
        yield payload[pos], pos, end
        pos = end


def _nd_option_bytes_reference(payload: bytes, pos: int, allowed: AbstractSet[int]) -> tuple[int, int]:
    """_nd_option_bytes in Python: the reference of detect/_fastnonecho.c nd_option_bytes."""
    unexplained, nonce, cga = 0, 0, False
    for option, start, end in _nd_option_spans(payload, pos):
        pos, units = end, (end - start) // 8
        if option not in allowed:
            unexplained += 8 * units
        else:
            unexplained += 8 * max(0, units - _ND_UNITS.get(option, units))
            nonce += 8 if option == _ND_NONCE else 0
            cga = cga or option == _ND_CGA
    if pos < len(payload):  # an option cut short, or past MAX_WALKED options: the rest
        return unexplained + len(payload) - pos, 0
    return unexplained, 0 if cga else nonce


def _ldh_name(data: bytes, start: int = 0, *, limit: int = 255) -> int:
    """The length of the DNS wire-format name at data[start:] whose labels are hostname characters
    (RFC 1035 2.3.1, 3.1; RFC 4620 3 allows a single-label name ended by two zero bytes), or -1. Read in place:
    a reply's names are not copied out one by one."""
    pos, end = start, min(len(data), start + limit)
    while pos < end:
        size = data[pos]
        if size == 0:
            return pos - start + 2 if data[pos + 1 : pos + 2] == b"\0" and pos > start else pos - start + 1
        label = data[pos + 1 : pos + 1 + size]
        if size > 63 or len(label) < size or label.translate(None, _LDH):  # a byte left is not a hostname's
            return -1
        pos += 1 + size
    return -1


_LDH = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


def _node_information(pkt: IcmpPacket, payload: bytes) -> tuple[int, str]:
    """RFC 4620 4: qtype, flags, an 8-byte nonce, then in a query the subject (code 0: an IPv6 address,
    here the destination, as iputils ping -N asks by default; 1: a name; 2: an IPv4 address) and in a reply
    (code 0) the answer for the qtype; refusals (codes 1, 2) carry nothing."""
    n = len(payload)
    if n < 12:
        return n, "truncated node information message"
    qtype, flags = struct.unpack_from("!HH", payload)
    bad = 4 if qtype > 4 or qtype == 1 or flags & 0xFFC0 else 0  # RFC 4620 4: flags G S L C A T only
    data = payload[12:]
    bad += _ni_query_data(pkt, data) if pkt.icmp_type == 139 else _ni_reply_data(pkt.icmp_code, qtype, data)
    return (min(bad, n), "node information fields that carry data") if bad else (0, "")


def _ni_query_data(pkt: IcmpPacket, data: bytes) -> int:
    code = pkt.icmp_code
    if code == 0:
        return len(data) - 16 + (16 if data[:16] != pkt.dst else 0) if len(data) >= 16 else len(data)
    if code == 1:
        name = _ldh_name(data) if data else 0
        return len(data) if name < 0 else len(data) - name
    return max(0, len(data) - 4) if code == 2 else len(data)


# A node's own names and addresses (RFC 4620 6.3, 6.4: "one or more"): this many free in a reply, the names no longer
# than one longest name in all, the rest charged (Linux ninfod answers with its hostname; 200 names of hostname labels
# carried 1 KB a reply, red team 2026-12-08)
NI_NAMES, NI_NAME_BYTES, NI_ADDRESSES = 4, 255, 16


def _ni_reply_data(code: int, qtype: int, data: bytes) -> int:
    """A successful reply's data: TTL + names (node name), TTL + IPv6 addresses, TTL + IPv4 addresses; past
    NI_NAMES names (or NI_NAME_BYTES of them) or NI_ADDRESSES addresses, the rest."""
    if code or qtype == 0 or not data:
        return len(data)
    if qtype in (3, 4):
        size = 20 if qtype == 3 else 8
        return len(data) % size + max(0, len(data) // size - NI_ADDRESSES) * size
    past = _fastnonecho.names_walk(data, 4, _LDH, NI_NAMES) if _fastnonecho is not None else \
        _names_walk_reference(data, 4, NI_NAMES)
    return past + max(0, len(data) - 4 - past - NI_NAME_BYTES)


def _names_walk_reference(data: bytes, pos: int, most: int | None = None) -> int:
    """The bytes of data[pos:] past its names (_ldh_name), up to `most` of them (MAX_WALKED): the reference of
    detect/_fastnonecho.c names_walk."""
    for _ in range(MAX_WALKED if most is None else most):
        if pos >= len(data):
            return 0
        size = _ldh_name(data, pos)
        if size < 0:
            return len(data) - pos
        pos += size
    return max(0, len(data) - pos)


def _mld(pkt: IcmpPacket, payload: bytes) -> tuple[int, str]:
    """MLDv1 (RFC 2710 3): delay, reserved, a multicast address; a report or done has delay and reserved 0.
    An MLDv2 query (RFC 3810 5.1) adds flags, QQIC and its sources."""
    n = len(payload)
    if n < 20:
        return n, "truncated MLD message"
    bad = 16 if payload[4] != 0xFF and any(payload[4:20]) else 0
    if pkt.icmp_type != 130:
        bad += 4 if any(payload[:4]) else 0
        body = 20
    else:
        body = 24 + 16 * int.from_bytes(payload[22:24], "big") if n >= 24 else 20
    bad += max(0, n - body)
    return (min(bad, n), "MLD fields that carry data") if bad else (0, "")


def _mldv2_report(pkt: IcmpPacket, payload: bytes) -> tuple[int, str]:
    """RFC 3810 5.2: reserved (0), a record count, then records of a type 1-6, a multicast address and
    unicast sources; MLDv2 defines no auxiliary data and a sender MUST NOT include any (5.2.10)."""
    n = len(payload)
    if n < 4:
        return n, "truncated MLD report"
    bad = 2 if any(payload[:2]) else 0
    pos, walked = 4, 0
    for _ in range(int.from_bytes(payload[2:4], "big")):
        if pos + 20 > n:
            break
        kind, aux, sources = struct.unpack_from("!BBH", payload, pos)
        walked += 1 + sources
        if walked > MAX_WALKED:
            break  # the rest is unexplained
        size = 20 + 16 * sources + 4 * aux
        if not 1 <= kind <= 6 or payload[pos + 4] != 0xFF:
            bad += min(size, n - pos)
        else:
            bad += 4 * aux + 16 * (sources - _unicast_count(payload, pos + 20, sources))
        pos += size
    bad += max(0, n - pos)
    return (min(bad, n), "MLD report fields that carry data") if bad else (0, "")


_UNICAST_FIRST = bytes(range(0x20, 0x40)) + b"\xfc\xfd"  # 2000::/3, fc00::/7
_ONLY_FE = bytes(1 if i == 0xFE else 0 for i in range(256))
_ONLY_80 = bytes(1 if i == 0x80 else 0 for i in range(256))


def _unicast_count(payload: bytes, first: int, count: int) -> int:
    """How many of the `count` addresses at payload[first:] (16 bytes each, those cut short none) are _unicast: read
    a column of bytes at a time, not address by address (an MLDv2 report of 255 sources cost 21 times a mix packet
    in a Python loop: red team, 2026-12-08)."""
    whole = max(0, min(count, (len(payload) - first) // 16))
    end = first + 16 * whole
    firsts, seconds = payload[first:end:16], payload[first + 1 : end : 16]
    global_or_local = whole - len(firsts.translate(None, _UNICAST_FIRST))
    link_local = (int.from_bytes(firsts.translate(_ONLY_FE), "big") & int.from_bytes(seconds.translate(_ONLY_80),
                                                                                       "big")).bit_count()
    return global_or_local + link_local


def _unicast(addr: bytes) -> bool:
    """A global unicast (2000::/3), unique local (fc00::/7) or link-local (fe80::/10) address (_unicast_count's
    reference, one address at a time)."""
    return len(addr) == 16 and (addr[0] & 0xE0 == 0x20 or addr[0] & 0xFE == 0xFC or addr[:2] == b"\xfe\x80")


def _extended_echo(pkt: IcmpPacket, payload: bytes) -> tuple[int, str]:
    """RFC 8335 PROBE (ICMP 42/43, ICMPv6 160/161): identifier, sequence, then (request) reserved bits and L, and
    an extension structure (RFC 4884) holding exactly one interface identification object (2.1); (reply) state
    and flags, with reserved bits 0 (3). A reply may echo the request's structure."""
    n = len(payload)
    if n < 4:
        return n, "truncated extended echo"
    request = pkt.icmp_type in (42, 160)  # a reply is 43 or 161
    reserved = 0xFE if request else 0x18
    bad = 1 if payload[3] & reserved else 0
    if (n > 4 or request) and not _probe_object_ok(payload[4:]):
        bad += n - 4
    return (bad, "extended echo fields that carry data") if bad else (0, "")


def _probe_object_ok(ext: bytes) -> bool:
    if len(ext) < 8 or ext[0] != 0x20 or any(ext[1:2]) or (ext[2:4] != b"\0\0" and not checksum_ok(ext)):
        return False
    length, klass, ctype = struct.unpack_from("!HBB", ext, 4)
    body = ext[8:]
    if klass != 3 or length != len(ext) - 4:
        return False
    if ctype == 1:  # a name, NUL-padded to 32 bits (RFC 8335 2.1)
        return _if_name_ok(body)
    if ctype == 2:  # an ifIndex
        return len(body) == 4
    # an address: AFI (1 IPv4, 2 IPv6), its length, reserved, the address
    return ctype == 3 and len(body) >= 4 and (body[0:2], body[2]) in ((b"\0\1", 4), (b"\0\2", 16)) \
        and body[3] == 0 and len(body) == 4 + ((body[2] + 3) & ~3)


def _if_name_ok(body: bytes) -> bool:
    """Printable, at most 32 bytes (Linux and BSD interface names have at most 15), NUL-padded."""
    name = body.rstrip(b"\0")
    return 0 < len(name) <= 32 and not len(body) % 4 and len(body) - len(name) < 4 and \
        all(0x21 <= c < 0x7F for c in name)


_INFORMATIONAL_V6 = {
    130: _mld, 131: _mld, 132: _mld, 143: _mldv2_report,
    139: _node_information, 140: _node_information,
    160: _extended_echo, 161: _extended_echo,
}
# Messages that never leave their link: a router advertisement's and a redirect's source is link-local (RFC 4861
# 6.1.2, 8.1), MLD's (RFC 2710 3, RFC 3810 5: a report's maybe the unspecified address), multicast router
# discovery's (RFC 4286): from another source receivers discard it, so no benign sender sends one (an RA from a
# global address carried 1,392 bytes of DNSSL to a collector, red team 2026-12-08). The types not analysed
# (router renumbering, inverse ND, mobility, SEND certificates, RPL, 6LoWPAN ND, MPL...) are free on the link
# only: from another source their payload is charged (RPL's type 155 carried 1,400 bytes a packet).
_LINK_LOCAL_SOURCE_V6 = frozenset((130, 131, 132, 134, 137, 143, 151, 152, 153))
_ON_LINK_ONLY_V6 = _LINK_LOCAL_SOURCE_V6 | (_STRUCTURED_V6 - set(_ND_BODY) - set(_INFORMATIONAL_V6))


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
    problem = _rest_of_header_problem_v6(pkt.icmp_type, payload, total)
    if problem:
        return problem
    return _transport_problem(payload[4 : 4 + min(quoted_len, total)], 40, total - 40, payload[10])


IPV6_MIN_MTU = 1280  # RFC 8200 5: every link carries packets of this size


def _rest_of_header_problem_v6(kind: int, payload: bytes, total: int) -> str:
    """What is wrong with the 4 bytes after type/code/checksum of an ICMPv6 error (RFC 4443 3.1-3.4; RFC 4884's
    length in the first byte of unreachable and time exceeded), '' when they hold only what the type defines: a
    packet too big's MTU no smaller than IPV6_MIN_MTU and smaller than the quoted packet, a parameter problem's
    pointer within it."""
    value = int.from_bytes(payload[:4], "big")
    if kind == 2:
        return "" if IPV6_MIN_MTU <= value < total else f"MTU {value} is not one a {total}-byte packet is too big for"
    if kind == 4:
        return "" if value < total else f"parameter problem pointer {value} beyond the {total}-byte packet"
    return "" if payload[1:4] == b"\0\0\0" else "unused header bytes of the error message are not zero"


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
_OBJECT_LARGEST = {klass << 8 | ctype: size for klass, sizes in _OBJECTS.items() for ctype, size in sizes.items()}


def _extension_problem(payload: bytes, end: int) -> str:
    """Why the RFC 4884 extension structure at payload[end:] is not one a router sends, or ''."""
    n = len(payload)
    if end == n or payload[end] >> 4 != 2:
        return "ICMP extension structure with an unknown version"
    if n - end < 4:
        return "ICMP extension structure cut short"
    if payload[end + 2 : end + 4] != b"\0\0" and not checksum_ok(payload[end:]):
        return "ICMP extension structure with a wrong checksum"
    problem, klass, ctype, length = _fastnonecho.extension_objects(payload, end + 4, _OBJECT_LARGEST, MAX_WALKED) \
        if _fastnonecho is not None else _extension_objects_reference(payload, end + 4)
    if problem == _OBJECT_DATA:
        return f"ICMP extension object class {klass} c-type {ctype} ({length} bytes) carries data"
    return _OBJECT_PROBLEMS[problem]


# What _extension_objects_reference (and detect/_fastnonecho.c extension_objects) finds
_OBJECTS_FINE, _OBJECTS_TRAILING, _OBJECT_LENGTH, _OBJECT_DATA, _OBJECTS_MANY = range(5)
_OBJECT_PROBLEMS = ("", "bytes after the ICMP extension objects", "ICMP extension object with a wrong length", "",
                    f"ICMP extension structure with more than {MAX_WALKED} objects")


def _extension_objects_reference(payload: bytes, pos: int) -> tuple[int, int, int, int]:
    """The first problem (_OBJECTS_*) of the extension objects at payload[pos:], up to MAX_WALKED of them, with the
    class, c-type and length of an object that carries data: the reference of detect/_fastnonecho.c
    extension_objects."""
    n = len(payload)
    for _ in range(MAX_WALKED):
        if pos >= n:
            return _OBJECTS_FINE, 0, 0, 0
        if pos + 4 > n:
            return _OBJECTS_TRAILING, 0, 0, 0
        length, klass, ctype = struct.unpack_from("!HBB", payload, pos)
        if length < 4 or pos + length > n:
            return _OBJECT_LENGTH, 0, 0, 0
        if length > _OBJECT_LARGEST.get(klass << 8 | ctype, 0) or (klass == 1 and length % 4):
            return _OBJECT_DATA, klass, ctype, length
        pos += length
    return (_OBJECTS_FINE if pos >= n else _OBJECTS_MANY), 0, 0, 0


# Protocols a host sends that an error can quote (IANA protocol numbers); a quote announcing another
# (0, which crafting tools leave when raw data follows the header, or an unassigned number) is not a
# packet the receiver sent.
_QUOTED_PROTOCOLS = frozenset((1, 2, 4, 6, 17, 33, 41, 43, 44, 47, 50, 51, 58, 59, 60, 89, 103, 112, 132, 136))


def _transport_problem(quote: bytes, header_len: int, length: int, proto: int, first_of_more: bool = False) -> str:
    """Why the transport header in a quoted datagram (quote = its quoted part, `length` its transport
    length) cannot be what the receiver sent, or ''. Checksums are not checked: a NAT that rewrites the
    quoted addresses and ports often leaves the quoted checksum as it was. The first fragment of a datagram
    (`first_of_more`: a router's time exceeded for it, a host's reassembly timeout, RFC 792) holds the whole
    datagram's UDP length, longer than the fragment's own."""
    if proto not in _QUOTED_PROTOCOLS:
        return f"quoted datagram of protocol {proto}, which no host sends"
    segment = quote[header_len:]
    if proto == 17 and len(segment) >= 8:
        udp_length = segment[4] << 8 | segment[5]
        if udp_length != length and not (first_of_more and udp_length > length):
            return "quoted UDP header does not match its datagram"
    return ""
