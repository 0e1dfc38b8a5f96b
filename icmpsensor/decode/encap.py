"""Encapsulations: the ICMP inside IP-in-IP (IPv4 and IPv6 in IPv4 or IPv6), GRE (IP, transparent Ethernet
bridging, ERSPAN types I, II and III), VXLAN and Geneve, decoded as a bare packet of the inner addresses.

The IP layer (decode/ip.py) hands a packet whose protocol (IPv4) or next header (IPv6) is a tunnel's here,
once its own header is checked and it is known not to be a fragment; MPLS and PPPoE, which come
between Ethernet and IP, are the link layer's (decode/link.py). The inner packet is bounded by the outer
one's length, and goes back to the IP layer (inner IP) or to the link-layer walk (inner Ethernet, with
its VLAN tags, MPLS labels or PPPoE header). At most MAX_ENCAPSULATIONS tunnels are opened in a frame.

Outer IPv4 and IPv6 fragments of IP-in-IP and GRE are reassembled first (decode/ip.py _tunnel4), then
opened.
What is skipped (decode/stats.py): ``encap_fragment`` (another tunnel packet that is an outer IP fragment, one
inside a reassembled IPv6 datagram, or an IP-in-IP or GRE datagram abandoned unfinished), ``encap_depth``
(past MAX_ENCAPSULATIONS),
``gre_routing`` (GRE with the routing flag, RFC 1701), ``gre_version`` (GRE other than version 0: PPTP's
enhanced GRE), ``not_ip`` (a tunnel carrying something else). Errors: ``truncated_encap`` (the packet
ends inside a tunnel's header or the inner Ethernet's), ``bad_encap_header`` (a UDP length past the
packet's, VXLAN without its I flag, Geneve not of version 0, ERSPAN of the wrong version).

The C fast path (decode/_fastdecode.c decap) opens the same tunnels for the frames it takes.
"""

from __future__ import annotations

from icmpsensor.decode import link
from icmpsensor.decode.icmp import IcmpLayer
from icmpsensor.decode.linktypes import (
    ETHERTYPE_ERSPAN2,
    ETHERTYPE_ERSPAN3,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    ETHERTYPE_TEB,
    GRE_C,
    GRE_K,
    GRE_R,
    GRE_S,
    GRE_VERSION,
    MAX_ENCAPSULATIONS,
    PROTO_GRE,
    PROTO_IPIP,
    PROTO_IPV6,
    PROTO_UDP,
    UDP_GENEVE,
    UDP_VXLAN,
)
from icmpsensor.decode.packet import IcmpPacket

IP_TUNNELS = frozenset((PROTO_IPIP, PROTO_IPV6, PROTO_GRE))  # protocols that are always a tunnel
TUNNEL_PROTOS = IP_TUNNELS | {PROTO_UDP}  # UDP: to a tunnel's port only
TUNNEL_PORTS = frozenset((UDP_VXLAN, UDP_GENEVE))

ERSPAN2_HEADER, ERSPAN3_HEADER, ERSPAN3_SUBHEADER = 8, 12, 8
VXLAN_I = 0x08  # VXLAN's flags: the VNI is valid (RFC 7348)
UDP_HEADER, VXLAN_HEADER, GENEVE_HEADER = 8, 8, 8


def is_tunnel(proto: int, buf: bytes, pos: int, end: int) -> bool:
    """Whether a packet whose IP payload buf[pos:end] is of protocol `proto` is a tunnel the decoder opens:
    IP-in-IP and GRE always, UDP when its destination port (read within `end`) is VXLAN's or Geneve's."""
    if proto != PROTO_UDP:
        return proto in IP_TUNNELS
    return end - pos >= 4 and (buf[pos + 2] << 8 | buf[pos + 3]) in TUNNEL_PORTS


class EncapLayer(IcmpLayer):
    """The tunnels between the IP layer and the inner packet; needs `_ip4` and `_ip6` (decode/ip.py)."""

    _encaps: int = 0  # tunnels being opened in the frame being decoded (the nesting, not a total)
    _tunnelled: bool = False  # whether the frame being decoded had one opened (counted by decode/decoder.py)

    def _ip4(self, ts: float, f: bytes, off: int, limit: int, wire_len: int) -> IcmpPacket | None:
        raise NotImplementedError

    def _ip6(self, ts: float, f: bytes, off: int, limit: int, wire_len: int) -> IcmpPacket | None:
        raise NotImplementedError

    def _decap(self, ts: float, buf: bytes, pos: int, end: int, proto: int, wire_len: int) -> IcmpPacket | None:
        """The packet carried by the tunnel of protocol `proto` (is_tunnel) whose IP payload is buf[pos:end]."""
        if self._encaps >= MAX_ENCAPSULATIONS:
            return self._skip("encap_depth")
        self._encaps += 1
        self._tunnelled = True
        try:
            if proto == PROTO_IPIP:
                return self._ip4(ts, buf, pos, end, wire_len)
            if proto == PROTO_IPV6:
                return self._ip6(ts, buf, pos, end, wire_len)
            if proto == PROTO_GRE:
                return self._gre(ts, buf, pos, end, wire_len)
            return self._udp(ts, buf, pos, end, wire_len)
        finally:
            self._encaps -= 1

    def _by_protocol(self, ts: float, buf: bytes, pos: int, end: int, protocol: int,
                     wire_len: int) -> IcmpPacket | None:
        """GRE's and Geneve's payload buf[pos:end], an ethertype's."""
        if protocol == ETHERTYPE_IPV4:
            return self._ip4(ts, buf, pos, end, wire_len)
        if protocol == ETHERTYPE_IPV6:
            return self._ip6(ts, buf, pos, end, wire_len)
        if protocol == ETHERTYPE_TEB:
            return self._ether(ts, buf, pos, end, wire_len)
        return self._skip("not_ip")

    def _gre(self, ts: float, buf: bytes, pos: int, end: int, wire_len: int) -> IcmpPacket | None:
        if end - pos < 4:
            return self._error("truncated_encap")
        flags = buf[pos] << 8 | buf[pos + 1]
        protocol = buf[pos + 2] << 8 | buf[pos + 3]
        if flags & GRE_VERSION:
            return self._skip("gre_version")
        if flags & GRE_R:
            return self._skip("gre_routing")
        pos += 4 + 4 * (bool(flags & GRE_C) + bool(flags & GRE_K) + bool(flags & GRE_S))
        if protocol == ETHERTYPE_ERSPAN2:
            if flags & GRE_S:  # type II; type I (no sequence number) has no header of its own
                if end - pos < ERSPAN2_HEADER:
                    return self._error("truncated_encap")
                if buf[pos] >> 4 != 1:
                    return self._error("bad_encap_header")
                pos += ERSPAN2_HEADER
            return self._ether(ts, buf, pos, end, wire_len)
        if protocol == ETHERTYPE_ERSPAN3:
            if end - pos < ERSPAN3_HEADER:
                return self._error("truncated_encap")
            if buf[pos] >> 4 != 2:
                return self._error("bad_encap_header")
            pos += ERSPAN3_HEADER + (ERSPAN3_SUBHEADER if buf[pos + 11] & 1 else 0)  # the O bit
            return self._ether(ts, buf, pos, end, wire_len)
        if end < pos:
            return self._error("truncated_encap")
        return self._by_protocol(ts, buf, pos, end, protocol, wire_len)

    def _udp(self, ts: float, buf: bytes, pos: int, end: int, wire_len: int) -> IcmpPacket | None:
        """VXLAN or Geneve (is_tunnel read the port)."""
        if end - pos < UDP_HEADER:
            return self._error("truncated_encap")
        size = buf[pos + 4] << 8 | buf[pos + 5]
        if size < UDP_HEADER or pos + size > end:
            return self._error("bad_encap_header")
        end = pos + size
        port = buf[pos + 2] << 8 | buf[pos + 3]
        pos += UDP_HEADER
        if end - pos < (VXLAN_HEADER if port == UDP_VXLAN else GENEVE_HEADER):
            return self._error("truncated_encap")
        if port == UDP_VXLAN:
            if not buf[pos] & VXLAN_I:
                return self._error("bad_encap_header")
            return self._ether(ts, buf, pos + VXLAN_HEADER, end, wire_len)
        if buf[pos] >> 6:  # Geneve's version
            return self._error("bad_encap_header")
        protocol = buf[pos + 2] << 8 | buf[pos + 3]
        pos += GENEVE_HEADER + 4 * (buf[pos] & 0x3F)  # its options
        if end < pos:
            return self._error("truncated_encap")
        return self._by_protocol(ts, buf, pos, end, protocol, wire_len)

    def _ether(self, ts: float, buf: bytes, pos: int, end: int, wire_len: int) -> IcmpPacket | None:
        """The Ethernet frame buf[pos:end] a tunnel carries, walked as a captured one (decode/link.py)."""
        if end - pos < 14:
            return self._error("truncated_encap")
        inner = buf[pos:end]
        layer, at = link.ethernet(inner)
        if layer == link.IPV4:
            return self._ip4(ts, inner, at, len(inner), wire_len)
        if layer == link.IPV6:
            return self._ip6(ts, inner, at, len(inner), wire_len)
        if layer == link.TRUNCATED:
            return self._error("truncated_encap")
        if layer == link.MPLS_TOO_DEEP:
            return self._skip("mpls_labels")
        return self._skip("not_ip")
