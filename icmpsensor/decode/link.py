"""The link layer: where in a captured frame the network layer starts, for every supported link type.

The one walk of the link layer in Python: the decoder (decode/decoder.py) and the replay partition
(runmode/partition.py) both call `network_layer(linktype)`. A walk returns (layer, position):

* IPV4 or IPV6: that header starts at `position`;
* IP_BY_VERSION: raw IP from `position`, its version nibble says which;
* TRUNCATED: the frame ends inside the link-layer header (or a VLAN tag, an MPLS label, a PPPoE header);
* NOT_IP: the link layer carries something else;
* MPLS_TOO_DEEP: an MPLS label stack without its bottom within linktypes.MAX_MPLS_LABELS labels.

Ethernet is walked through any number of VLAN tags (linktypes.VLAN_TPIDS), then an MPLS label stack
(to its bottom: IPv4 or IPv6 by the version nibble behind it) or a PPPoE session header (PPP carrying
IPv4 or IPv6). The C fast path (decode/_fastdecode.c by_ethertype) walks the same headers for the
frames it takes.
"""

from __future__ import annotations

from collections.abc import Callable

from icmpsensor.decode.linktypes import (
    AF_INET,
    AF_INET6,
    DLT_RAW,
    DLT_RAW_OPENBSD,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    ETHERTYPE_MPLS,
    ETHERTYPE_PPPOE_SESSION,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    MAX_MPLS_LABELS,
    PPP_IPV4,
    PPP_IPV6,
    VLAN_TPIDS,
)

IPV4, IPV6, IP_BY_VERSION = 4, 6, 0
TRUNCATED, NOT_IP, MPLS_TOO_DEEP = -1, -2, -3

Layer = tuple[int, int]  # (IPV4 | IPV6 | IP_BY_VERSION | TRUNCATED | NOT_IP | MPLS_TOO_DEEP, position)
Walk = Callable[[bytes], Layer]

_VLAN = frozenset(VLAN_TPIDS)
_MPLS = frozenset(ETHERTYPE_MPLS)
_PPPOE_HEADER = 6  # version and type (0x11), code (0: session data), session id, length; then PPP's protocol


def ethertype_layer(f: bytes, ethertype: int, pos: int) -> Layer:
    """The network layer carried as `ethertype` from `pos`, after any VLAN tags."""
    while ethertype in _VLAN:
        if len(f) < pos + 4:
            return TRUNCATED, pos
        ethertype = f[pos + 2] << 8 | f[pos + 3]
        pos += 4
    if ethertype == ETHERTYPE_IPV4:
        return IPV4, pos
    if ethertype == ETHERTYPE_IPV6:
        return IPV6, pos
    if ethertype in _MPLS:
        return mpls(f, pos)
    if ethertype == ETHERTYPE_PPPOE_SESSION:
        return pppoe(f, pos)
    return NOT_IP, pos


def mpls(f: bytes, pos: int) -> Layer:
    """The network layer behind the MPLS label stack at `pos`: popped to its bottom (at most MAX_MPLS_LABELS
    labels), then IPv4 or IPv6 by the version nibble (anything else, a pseudowire's control word, is not IP)."""
    for _ in range(MAX_MPLS_LABELS):
        if len(f) < pos + 4:
            return TRUNCATED, pos
        bottom = f[pos + 2] & 1
        pos += 4
        if bottom:
            if len(f) <= pos:
                return TRUNCATED, pos
            version = f[pos] >> 4
            return (IPV4 if version == 4 else IPV6 if version == 6 else NOT_IP), pos
    return MPLS_TOO_DEEP, pos


def pppoe(f: bytes, pos: int) -> Layer:
    """The network layer behind the PPPoE session header at `pos` (RFC 2516) and PPP's protocol number."""
    if len(f) < pos + _PPPOE_HEADER + 2:
        return TRUNCATED, pos
    if f[pos] != 0x11 or f[pos + 1] != 0:
        return NOT_IP, pos
    protocol = f[pos + 6] << 8 | f[pos + 7]
    pos += _PPPOE_HEADER + 2
    if protocol == PPP_IPV4:
        return IPV4, pos
    if protocol == PPP_IPV6:
        return IPV6, pos
    return NOT_IP, pos


def ethernet(f: bytes) -> Layer:
    if len(f) < 14:
        return TRUNCATED, 0
    return ethertype_layer(f, f[12] << 8 | f[13], 14)


def linux_sll(f: bytes) -> Layer:
    if len(f) < 16:
        return TRUNCATED, 0
    return ethertype_layer(f, f[14] << 8 | f[15], 16)


def linux_sll2(f: bytes) -> Layer:
    if len(f) < 20:
        return TRUNCATED, 0
    return ethertype_layer(f, f[0] << 8 | f[1], 20)


def _family_layer(family: int) -> Layer:
    if family == AF_INET:
        return IPV4, 4
    if family in AF_INET6:
        return IPV6, 4
    return NOT_IP, 4


def null(f: bytes) -> Layer:
    """BSD loopback: the address family in the writer's byte order."""
    if len(f) < 4:
        return TRUNCATED, 0
    family = int.from_bytes(f[:4], "little")
    if family > 0xFFFF:  # written by a big-endian host: no address family is that large
        family = int.from_bytes(f[:4], "big")
    return _family_layer(family)


def loop(f: bytes) -> Layer:
    """OpenBSD loopback: the address family in network byte order."""
    if len(f) < 4:
        return TRUNCATED, 0
    return _family_layer(int.from_bytes(f[:4], "big"))


def raw(f: bytes) -> Layer:
    return IP_BY_VERSION, 0


def raw4(f: bytes) -> Layer:
    return IPV4, 0


def raw6(f: bytes) -> Layer:
    return IPV6, 0


_WALKS: dict[int, Walk] = {
    LINKTYPE_NULL: null,
    LINKTYPE_ETHERNET: ethernet,
    DLT_RAW: raw,
    DLT_RAW_OPENBSD: raw,
    LINKTYPE_RAW: raw,
    LINKTYPE_LOOP: loop,
    LINKTYPE_LINUX_SLL: linux_sll,
    LINKTYPE_IPV4: raw4,
    LINKTYPE_IPV6: raw6,
    LINKTYPE_LINUX_SLL2: linux_sll2,
}


def network_layer(linktype: int) -> Walk:
    """The walk of a supported link type (decode.linktypes.SUPPORTED_LINKTYPES); KeyError otherwise."""
    return _WALKS[linktype]
