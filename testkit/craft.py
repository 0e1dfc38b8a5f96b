"""Build packets, frames and capture files for the tests and the benchmarks.

Everything here is written from the RFCs with `struct` (checksums by dpkt), independently
of the decoder under test. Addresses are given as text ("192.0.2.1", "2001:db8::1").

Layers compose from the inside out::

    frame = ether(icmp4("10.0.0.1", "10.0.0.2", ECHO_REQUEST, ident=7, seq=1, payload=b"hi"))
    write_pcap(path, [(1.0, frame)], LINKTYPE_ETHERNET)

* IP packets: `icmp4`, `icmp6`, `udp4`, `udp6`, or the general `ipv4` / `ipv6`
  with any payload; IPv6 extension headers are ``(kind, body)`` pairs, see `ipv6`
  and the `hop_by_hop`, `dest_opts`, `routing`, `auth` helpers;
* fragmentation: `fragment4`, `fragment6`;
* framing (link layers): `ether`, `sll`, `sll2`, `null`, `loop`, `raw`, plus `arp`
  (a complete Ethernet ARP frame);
* files: `write_pcap`, `write_pcapng`, and `read_capture` (with pcapy, as the sensor reads).
"""

from __future__ import annotations

import functools
import ipaddress
import struct
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import dpkt

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
DLT_RAW = 12  # libpcap's DLT for LINKTYPE_RAW on most systems (what pcapy reports)
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

ECHO_REPLY = 0
UNREACHABLE = 3
ECHO_REQUEST = 8
TIME_EXCEEDED = 11
TIMESTAMP = 13
UNREACHABLE6 = 1
ECHO_REQUEST6 = 128
ECHO_REPLY6 = 129
NEIGHBOR_SOLICITATION = 135

PROTO_ICMP = 1
PROTO_UDP = 17
PROTO_ICMPV6 = 58
HOP_BY_HOP = 0
ROUTING = 43
FRAGMENT = 44
AUTH = 51
DEST_OPTS = 60
NO_NEXT_HEADER = 59

AF_INET = 2
AF_INET6_LINUX = 10
AF_INET6_BSD = 24
AF_INET6_FREEBSD = 28
AF_INET6_DARWIN = 30

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD

_ECHO_TYPES = frozenset((ECHO_REPLY, ECHO_REQUEST, ECHO_REQUEST6, ECHO_REPLY6))

ExtHeader = tuple[int, bytes]  # (header type, bytes after its next-header and length fields)


@functools.lru_cache(maxsize=1 << 16)
def addr(text: str) -> bytes:
    """Packed form of an IPv4 or IPv6 address (remembered: the corpora build hundreds of thousands of packets)."""
    return ipaddress.ip_address(text).packed


def checksum(data: bytes) -> int:
    """Internet checksum (RFC 1071) of ``data`` (an odd length padded with a zero byte): the one checksum every
    testkit builder uses. dpkt computes it, independently of the product's decoders, which are tested against it."""
    return dpkt.in_cksum(data)


def _spoil(value: int) -> int:
    # XOR with 0x5555 never turns a checksum into one of its equivalents (0x0000 == 0xFFFF).
    return value ^ 0x5555


def _icmp_header(icmp_type: int, code: int, ident: int, seq: int, payload: bytes) -> bytes:
    """ICMP message with a zero checksum; echo types get the identifier/sequence header."""
    if icmp_type in _ECHO_TYPES:
        return struct.pack(">BBHHH", icmp_type, code, 0, ident, seq) + payload
    return struct.pack(">BBH", icmp_type, code, 0) + payload


def _with_checksum(message: bytes, value: int, bad: bool) -> bytes:
    return message[:2] + struct.pack(">H", _spoil(value) if bad else value) + message[4:]


def icmp4_message(
    icmp_type: int,
    code: int = 0,
    ident: int = 0,
    seq: int = 0,
    payload: bytes = b"",
    *,
    bad_checksum: bool = False,
) -> bytes:
    """An ICMP message. Echo types (0, 8) carry ``ident``/``seq``; for other types
    ``payload`` follows the 4-byte header (put any "rest of header" at its start)."""
    message = _icmp_header(icmp_type, code, ident, seq, payload)
    return _with_checksum(message, checksum(message), bad_checksum)


def icmp6_message(
    src: str,
    dst: str,
    icmp_type: int,
    code: int = 0,
    ident: int = 0,
    seq: int = 0,
    payload: bytes = b"",
    *,
    bad_checksum: bool = False,
) -> bytes:
    """An ICMPv6 message whose checksum covers the pseudo-header for ``src`` and ``dst``.
    Echo types (128, 129) carry ``ident``/``seq``; others as in `icmp4_message`."""
    message = _icmp_header(icmp_type, code, ident, seq, payload)
    pseudo = addr(src) + addr(dst) + struct.pack(">I3xB", len(message), PROTO_ICMPV6)
    return _with_checksum(message, checksum(pseudo + message), bad_checksum)


def ipv4(
    src: str,
    dst: str,
    proto: int,
    payload: bytes,
    *,
    ip_id: int = 1,
    ttl: int = 64,
    flags_offset: int = 0,
    options: bytes = b"",
    total_length: int | None = None,
    bad_checksum: bool = False,
) -> bytes:
    """An IPv4 packet. ``flags_offset`` is the raw 16-bit flags + fragment-offset field;
    ``options`` is padded to 4 bytes; ``total_length`` overrides the computed one."""
    options += b"\0" * (-len(options) % 4)
    header_len = 20 + len(options)
    length = header_len + len(payload) if total_length is None else total_length
    version_ihl = 0x40 | header_len // 4
    header = struct.pack(">BBHHHBBH4s4s", version_ihl, 0, length, ip_id, flags_offset, ttl, proto, 0,
                         addr(src), addr(dst))
    header += options
    value = checksum(header)
    header = header[:10] + struct.pack(">H", _spoil(value) if bad_checksum else value) + header[12:]
    return header + payload


def _ext_header_bytes(kind: int, next_header: int, body: bytes) -> bytes:
    """One extension header: body zero-padded (Pad1 options) to the header's unit size."""
    if kind == FRAGMENT:
        return struct.pack(">BB", next_header, 0) + body
    if kind == AUTH:
        body += b"\0" * (-(len(body) + 2) % 8)
        return struct.pack(">BB", next_header, (len(body) + 2) // 4 - 2) + body
    body += b"\0" * (-(len(body) + 2) % 8)
    return struct.pack(">BB", next_header, (len(body) + 2) // 8 - 1) + body


def ipv6(
    src: str,
    dst: str,
    next_header: int,
    payload: bytes,
    *,
    ext_headers: Sequence[ExtHeader] = (),
    hop_limit: int = 64,
    payload_length: int | None = None,
) -> bytes:
    """An IPv6 packet; ``ext_headers`` are chained in order before ``payload``, whose
    type is ``next_header``. ``payload_length`` overrides the computed one."""
    chain = b""
    kinds = [kind for kind, _ in ext_headers] + [next_header]
    for (kind, body), following in zip(ext_headers, kinds[1:], strict=True):
        chain += _ext_header_bytes(kind, following, body)
    body = chain + payload
    length = len(body) if payload_length is None else payload_length
    header = struct.pack(">IHBB16s16s", 0x60000000, length, kinds[0], hop_limit, addr(src), addr(dst))
    return header + body


def hop_by_hop(options: bytes = b"") -> ExtHeader:
    """A hop-by-hop options header (options as TLV bytes; padding added)."""
    return (HOP_BY_HOP, options)


def dest_opts(options: bytes = b"") -> ExtHeader:
    """A destination options header (options as TLV bytes; padding added)."""
    return (DEST_OPTS, options)


def routing(routing_type: int, segments_left: int, addresses: Sequence[str] = ()) -> ExtHeader:
    """A routing header: type 0 (address list), 2 (one home address) or 4 (SRH segment list)."""
    if routing_type == 4:  # SRH: last entry, flags, tag after the segments-left byte
        prefix = struct.pack(">BBH", len(addresses) - 1 if addresses else 0, 0, 0)
    else:
        prefix = b"\0\0\0\0"
    return (ROUTING, bytes([routing_type, segments_left]) + prefix + b"".join(addr(a) for a in addresses))


def auth(spi: int = 0x100, seq: int = 1, icv: bytes = b"\0" * 12) -> ExtHeader:
    """An authentication header (RFC 4302) with the given integrity check value."""
    return (AUTH, struct.pack(">HII", 0, spi, seq) + icv)


def icmp4(
    src: str,
    dst: str,
    type: int,
    code: int = 0,
    ident: int = 0,
    seq: int = 0,
    payload: bytes = b"",
    *,
    bad_checksum: bool = False,
    ip_id: int = 1,
    ttl: int = 64,
) -> bytes:
    """A complete IPv4 packet carrying an ICMP message (see `icmp4_message`)."""
    message = icmp4_message(type, code, ident, seq, payload, bad_checksum=bad_checksum)
    return ipv4(src, dst, PROTO_ICMP, message, ip_id=ip_id, ttl=ttl)


def icmp6(
    src: str,
    dst: str,
    type: int,
    code: int = 0,
    ident: int = 0,
    seq: int = 0,
    payload: bytes = b"",
    *,
    bad_checksum: bool = False,
    ext_headers: Sequence[ExtHeader] = (),
    checksum_dst: str | None = None,
    hop_limit: int = 64,
) -> bytes:
    """A complete IPv6 packet carrying an ICMPv6 message after ``ext_headers``.

    ``checksum_dst`` is the pseudo-header destination when it differs from ``dst``
    (the final destination of a routing header with segments left).
    """
    pseudo_dst = checksum_dst or dst
    message = icmp6_message(src, pseudo_dst, type, code, ident, seq, payload, bad_checksum=bad_checksum)
    return ipv6(src, dst, PROTO_ICMPV6, message, ext_headers=ext_headers, hop_limit=hop_limit)


def udp4(src: str, dst: str, sport: int = 53, dport: int = 53, payload: bytes = b"") -> bytes:
    """A complete IPv4 UDP packet (UDP checksum 0: none)."""
    return ipv4(src, dst, PROTO_UDP, struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload)


def udp6(src: str, dst: str, sport: int = 53, dport: int = 53, payload: bytes = b"") -> bytes:
    """A complete IPv6 UDP packet (checksum left 0: the decoder does not look at UDP)."""
    return ipv6(src, dst, PROTO_UDP, struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload)


def fragment4(packet: bytes, fragment_size: int) -> list[bytes]:
    """Split an IPv4 packet into fragments carrying ``fragment_size`` payload bytes
    each (a multiple of 8; the last carries the rest), in order, DF cleared."""
    if fragment_size <= 0 or fragment_size % 8:
        raise ValueError("fragment_size must be a positive multiple of 8")
    header_len = (packet[0] & 15) * 4
    total = struct.unpack_from(">H", packet, 2)[0]
    flags_offset = struct.unpack_from(">H", packet, 6)[0]
    base = (flags_offset & 0x1FFF) * 8
    last_more = flags_offset & 0x2000
    payload = packet[header_len:total]
    fragments = []
    for start in range(0, len(payload), fragment_size):
        chunk = payload[start : start + fragment_size]
        more = 0x2000 if start + fragment_size < len(payload) else last_more
        header = bytearray(packet[:header_len])
        struct.pack_into(">H", header, 2, header_len + len(chunk))
        struct.pack_into(">H", header, 6, more | (base + start) // 8)
        struct.pack_into(">H", header, 10, 0)
        struct.pack_into(">H", header, 10, checksum(bytes(header)))
        fragments.append(bytes(header) + chunk)
    return fragments


def fragment6(packet: bytes, fragment_size: int, frag_id: int = 1) -> list[bytes]:
    """Split an IPv6 packet into fragments, in order (RFC 8200 section 4.5).

    The unfragmentable part is the fixed header plus leading hop-by-hop and
    routing headers; each fragment carries ``fragment_size`` bytes of the rest
    (a multiple of 8; the last carries what remains).
    """
    if fragment_size <= 0 or fragment_size % 8:
        raise ValueError("fragment_size must be a positive multiple of 8")
    pos, next_header, last_nh_at = 40, packet[6], 6
    while next_header in (HOP_BY_HOP, ROUTING):
        last_nh_at = pos
        next_header, pos = packet[pos], pos + (packet[pos + 1] + 1) * 8
    end = 40 + struct.unpack_from(">H", packet, 4)[0]
    unfragmentable = bytearray(packet[:pos])
    unfragmentable[last_nh_at] = FRAGMENT
    rest = packet[pos:end]
    fragments = []
    for start in range(0, len(rest), fragment_size):
        chunk = rest[start : start + fragment_size]
        more = 1 if start + fragment_size < len(rest) else 0
        header = bytearray(unfragmentable)
        struct.pack_into(">H", header, 4, len(unfragmentable) - 40 + 8 + len(chunk))
        fragment_header = struct.pack(">BBHI", next_header, 0, start | more, frag_id)
        fragments.append(bytes(header) + fragment_header + chunk)
    return fragments


def _ethertype_of(ip: bytes) -> int:
    return ETHERTYPE_IPV6 if ip[:1] and ip[0] >> 4 == 6 else ETHERTYPE_IPV4


def ether(
    ip: bytes,
    vlans: Sequence[int] = (),
    outer_tpid: int = 0x8100,
    *,
    ethertype: int | None = None,
    pad: bool = False,
    src_mac: bytes = b"\x02\0\0\0\0\x01",
    dst_mac: bytes = b"\x02\0\0\0\0\x02",
) -> bytes:
    """An Ethernet II frame. ``vlans`` are VLAN ids, outermost first: the first tag uses
    ``outer_tpid`` (0x88a8 for 802.1ad QinQ), inner tags 0x8100. ``ethertype`` defaults
    to IPv4/IPv6 from the version nibble; ``pad`` pads with non-zero junk to 60 bytes,
    as a NIC does to short frames."""
    tags = b"".join(
        struct.pack(">HH", outer_tpid if i == 0 else 0x8100, vid & 0xFFF) for i, vid in enumerate(vlans)
    )
    frame = dst_mac + src_mac + tags + struct.pack(">H", ethertype or _ethertype_of(ip)) + ip
    if pad and len(frame) < 60:
        frame += b"\xa5" * (60 - len(frame))
    return frame


# -- encapsulations (RFC 2784/2890 GRE, RFC 7348 VXLAN, RFC 8926 Geneve, RFC 3032 MPLS, RFC 2516 PPPoE, ERSPAN as
# draft-foschiano-erspan) ----------------------------------------------------------------------------------------

PROTO_IPIP, PROTO_IPV6, PROTO_GRE = 4, 41, 47
ETHERTYPE_TEB, ETHERTYPE_ERSPAN2, ETHERTYPE_ERSPAN3 = 0x6558, 0x88BE, 0x22EB
ETHERTYPE_MPLS, ETHERTYPE_PPPOE = 0x8847, 0x8864


def ipip(src: str, dst: str, inner: bytes, *, ipv6_outer: bool = False) -> bytes:
    """An IP packet carrying the IP packet `inner` (IPv4 in IP: protocol 4; IPv6 in IP: 41)."""
    proto = PROTO_IPV6 if inner[0] >> 4 == 6 else PROTO_IPIP
    return ipv6(src, dst, proto, inner) if ipv6_outer else ipv4(src, dst, proto, inner)


def gre(payload: bytes, protocol: int | None = None, *, key: int | None = None, seq: int | None = None,
        checksum_present: bool = False, flags: int = 0) -> bytes:
    """A GRE header and `payload` (`protocol`: IPv4/IPv6 by the version nibble when None); `flags` ORed into the
    first 16 bits (routing 0x4000, a version)."""
    protocol = _ethertype_of(payload) if protocol is None else protocol
    bits = flags | (0x8000 if checksum_present else 0) | (0x2000 if key is not None else 0) | \
        (0x1000 if seq is not None else 0)
    header = struct.pack(">HH", bits, protocol)
    if checksum_present:
        header += b"\0\0\0\0"
    if key is not None:
        header += struct.pack(">I", key)
    if seq is not None:
        header += struct.pack(">I", seq)
    return header + payload


def erspan2(frame: bytes, session: int = 1) -> bytes:
    """GRE (with a sequence number) carrying ERSPAN type II and the mirrored Ethernet `frame`."""
    return gre(struct.pack(">HHI", 0x1000 | 0, session & 0x3FF, 0) + frame, ETHERTYPE_ERSPAN2, seq=1)


def erspan3(frame: bytes, session: int = 1, *, platform: bool = False) -> bytes:
    """GRE carrying ERSPAN type III (`platform`: the O bit and its 8-byte subheader) and the mirrored `frame`."""
    header = struct.pack(">HHIHH", 0x2000, session & 0x3FF, 12345, 0, 1 if platform else 0)
    return gre(header + (b"\x01" * 8 if platform else b"") + frame, ETHERTYPE_ERSPAN3, seq=1)


def vxlan(src: str, dst: str, frame: bytes, *, vni: int = 42, flags: int = 0x08, dport: int = 4789) -> bytes:
    """An IPv4 (IPv6 when `src` is) UDP datagram to VXLAN's port carrying the Ethernet `frame`."""
    payload = struct.pack(">B3xI", flags, vni << 8) + frame
    return udp6(src, dst, 49152, dport, payload) if ":" in src else udp4(src, dst, 49152, dport, payload)


def geneve(src: str, dst: str, inner: bytes, protocol: int = ETHERTYPE_TEB, *, options: bytes = b"") -> bytes:
    """An IPv4 UDP datagram to Geneve's port carrying `inner` (an Ethernet frame, or IP by `protocol`)."""
    header = struct.pack(">BBHI", len(options) // 4, 0, protocol, 42 << 8) + options
    return udp4(src, dst, 49152, 6081, header + inner)


def mpls(ip: bytes, labels: Sequence[int] = (100,), *, bottom: bool = True) -> bytes:
    """An MPLS label stack (outermost first; the last with the bottom-of-stack bit unless not `bottom`) and `ip`."""
    stack = b"".join(struct.pack(">I", (label & 0xFFFFF) << 12 | (1 << 8 if bottom and i == len(labels) - 1
                                                                   else 0) | 64)
                     for i, label in enumerate(labels))
    return stack + ip


def pppoe(ip: bytes, session: int = 7, *, protocol: int | None = None) -> bytes:
    """A PPPoE session header and the PPP protocol number of `ip` (IPv4 0x0021, IPv6 0x0057 by its version)."""
    ppp = (0x0057 if ip[0] >> 4 == 6 else 0x0021) if protocol is None else protocol
    return struct.pack(">BBHHH", 0x11, 0, session, len(ip) + 2, ppp) + ip


TUNNEL_SRC, TUNNEL_DST, TUNNEL_SRC6, TUNNEL_DST6 = "198.18.0.1", "198.18.0.2", "2001:db8:ff::1", "2001:db8:ff::2"


def encapsulations() -> dict[str, Callable[[bytes], bytes]]:
    """name -> an Ethernet frame of an IP packet inside that encapsulation (each carries IPv4 and IPv6), between
    the tunnel endpoints TUNNEL_SRC and TUNNEL_DST (TUNNEL_SRC6, TUNNEL_DST6 for an IPv6 outer header)."""
    s, d = TUNNEL_SRC, TUNNEL_DST

    def in_gre(payload: bytes, protocol: int | None = None, **fields: int) -> bytes:
        return ether(ipv4(s, d, PROTO_GRE, gre(payload, protocol, **fields)))  # type: ignore[arg-type]

    return {
        "ipip": lambda ip: ether(ipip(s, d, ip)),
        "ipip6": lambda ip: ether(ipip(TUNNEL_SRC6, TUNNEL_DST6, ip, ipv6_outer=True)),
        "ipip6-dest-opts": lambda ip: ether(ipv6(TUNNEL_SRC6, TUNNEL_DST6, PROTO_IPV6 if ip[0] >> 4 == 6 else
                                                 PROTO_IPIP, ip, ext_headers=[dest_opts(b"\x05\x02\0\0")])),
        "gre": lambda ip: in_gre(ip),
        "gre-key-seq-csum": lambda ip: in_gre(ip, key=7, seq=9, checksum_present=True),
        "gre6": lambda ip: ether(ipv6(TUNNEL_SRC6, TUNNEL_DST6, PROTO_GRE, gre(ip, key=3))),
        "gre-teb-qinq": lambda ip: in_gre(ether(ip, vlans=(5, 6), outer_tpid=0x88A8), ETHERTYPE_TEB),
        "erspan1": lambda ip: in_gre(ether(ip), ETHERTYPE_ERSPAN2),
        "erspan2": lambda ip: ether(ipv4(s, d, PROTO_GRE, erspan2(ether(ip)))),
        "erspan3": lambda ip: ether(ipv4(s, d, PROTO_GRE, erspan3(ether(ip, vlans=(9,))))),
        "erspan3-platform": lambda ip: ether(ipv4(s, d, PROTO_GRE, erspan3(ether(ip), platform=True))),
        "vxlan": lambda ip: ether(vxlan(s, d, ether(ip)), vlans=(7,)),
        "vxlan6": lambda ip: ether(vxlan(TUNNEL_SRC6, TUNNEL_DST6, ether(ip))),
        "geneve": lambda ip: ether(geneve(s, d, ether(ip), options=b"\x01" * 8)),
        "geneve-ip": lambda ip: ether(geneve(s, d, ip, _ethertype_of(ip))),
        "mpls": lambda ip: ether(mpls(ip, (16, 17, 18)), ethertype=ETHERTYPE_MPLS),
        "mpls-multicast-vlan": lambda ip: ether(mpls(ip), (42,), ethertype=ETHERTYPE_MPLS + 1),
        "pppoe": lambda ip: ether(pppoe(ip), ethertype=ETHERTYPE_PPPOE),
        "pppoe-vlan": lambda ip: ether(pppoe(ip), (300,), ethertype=ETHERTYPE_PPPOE),
        "vxlan-mpls": lambda ip: ether(vxlan(s, d, ether(mpls(ip), ethertype=ETHERTYPE_MPLS))),
        "gre-in-gre-in-ipip": lambda ip: ether(ipip(s, d, ipv4(s, d, PROTO_GRE, gre(ipv4(d, s, PROTO_GRE, gre(ip)))))),
    }


def arp(sender: str = "10.0.0.1", target: str = "10.0.0.2") -> bytes:
    """A complete Ethernet frame with an ARP request (42 bytes, unpadded)."""
    body = struct.pack(">HHBBH6s4s6s4s", 1, ETHERTYPE_IPV4, 6, 4, 1, b"\x02\0\0\0\0\x01", addr(sender),
                       b"\0" * 6, addr(target))
    return ether(body, ethertype=ETHERTYPE_ARP, dst_mac=b"\xff" * 6)


def sll(ip: bytes, *, protocol: int | None = None, packet_type: int = 0) -> bytes:
    """A Linux cooked (SLL, 16-byte header) frame."""
    header = struct.pack(">HHH8sH", packet_type, 1, 6, b"\x02\0\0\0\0\x01\0\0", protocol or _ethertype_of(ip))
    return header + ip


def sll2(ip: bytes, *, protocol: int | None = None, ifindex: int = 2) -> bytes:
    """A Linux cooked v2 (SLL2, 20-byte header) frame."""
    protocol = protocol or _ethertype_of(ip)
    header = struct.pack(">HHIHBB8s", protocol, 0, ifindex, 1, 0, 6, b"\x02\0\0\0\0\x01\0\0")
    return header + ip


def _family_of(ip: bytes) -> int:
    return AF_INET6_DARWIN if ip[:1] and ip[0] >> 4 == 6 else AF_INET


def null(ip: bytes, big_endian: bool = False, *, family: int | None = None) -> bytes:
    """A BSD loopback (DLT_NULL) frame: 4-byte address family in the writer's byte order
    (``big_endian`` picks it); IPv6 defaults to macOS's AF_INET6 (30)."""
    return struct.pack(">I" if big_endian else "<I", family or _family_of(ip)) + ip


def loop(ip: bytes, *, family: int | None = None) -> bytes:
    """An OpenBSD loopback (DLT_LOOP) frame: address family in network byte order."""
    return struct.pack(">I", family or _family_of(ip)) + ip


def raw(ip: bytes) -> bytes:
    """A raw IP frame (LINKTYPE_RAW, IPV4, IPV6): the packet itself."""
    return bytes(ip)


def write_pcap(
    path: str | Path,
    frames: Iterable[tuple[float, bytes]],
    linktype: int = LINKTYPE_ETHERNET,
    snaplen: int = 65535,
) -> None:
    """Write a pcap file. Frames longer than ``snaplen`` are cut to it, their original
    length kept in the record header, as a capture with that snap length would be."""
    with open(path, "wb") as file:
        writer = dpkt.pcap.Writer(file, snaplen=snaplen, linktype=linktype)
        for ts, frame in frames:
            if len(frame) <= snaplen:
                writer.writepkt(frame, ts)
                continue
            sec, usec = int(ts), round(ts % 1 * 1_000_000)
            header_format = "<IIII" if sys.byteorder == "little" else ">IIII"  # dpkt writes in host order
            file.write(struct.pack(header_format, sec, usec, snaplen, len(frame)) + frame[:snaplen])


def write_pcapng(
    path: str | Path, frames: Iterable[tuple[float, bytes]], linktype: int = LINKTYPE_ETHERNET
) -> None:
    """Write a pcapng file with one interface of ``linktype``."""
    with open(path, "wb") as file:
        writer = dpkt.pcapng.Writer(file, snaplen=65535, linktype=linktype)
        for ts, frame in frames:
            writer.writepkt(frame, ts)


def read_capture(path: str | Path) -> tuple[int, list[tuple[float, bytes, int]]]:
    """Read a pcap/pcapng file with pcapy as the sensor does:
    (link type as libpcap reports it, [(ts, frame, wire length)])."""
    import pcapy

    reader = pcapy.open_offline(str(path))
    frames = []
    while True:
        header, data = reader.next()
        if header is None:
            break
        sec, usec = header.getts()
        frames.append((sec + usec / 1e6, bytes(data), header.getlen()))
    return reader.datalink(), frames
