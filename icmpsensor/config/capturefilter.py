"""The default BPF capture filter (config/schema.py DEFAULT_BPF_FILTER), written out by code.

It passes ICMP and ICMPv6 (behind IPv6 extension headers too, and IPv6 fragments), bare or behind
one or two VLAN tags, and the encapsulations the decoder opens (decode/encap.py, decode/link.py)
when what they carry is ICMP, as far as a filter can tell cheaply: MPLS (up to
linktypes.MAX_MPLS_LABELS labels) and PPPoE sessions; IPv4 and IPv6 (no extension header) carrying
IP-in-IP, GRE (IP, transparent Ethernet bridging, ERSPAN I, II, III), VXLAN and Geneve, the inner
packet's protocol checked, an inner Ethernet's behind up to one VLAN tag (another tag, MPLS or PPPoE
there: passed without a look). An inner packet that is itself a tunnel (IP-in-IP, IPv6, GRE) is
passed without a look at the next one, so nested tunnels reach the decoder. A non-first outer IPv4
fragment carries no tunnel header to check: one of IP-in-IP or GRE is passed by its protocol (the decoder
reassembles them, decode/ip.py _tunnel4), one of a UDP tunnel is not (a UDP fragment does not say
which port it goes to).

libpcap's `vlan`, `mpls`, `pppoes` and `geneve` keywords move the offsets of everything after them in
the whole expression, so the encapsulation part reads absolute offsets (`link[...]`) only, with the
IP header length and GRE's optional fields computed in the filter; the VLAN part, last, is the
keyword form it always was.
"""

from __future__ import annotations

from icmpsensor.decode.linktypes import (
    AUTH,
    DEST_OPTS,
    ETHERTYPE_ERSPAN2,
    ETHERTYPE_ERSPAN3,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    ETHERTYPE_MPLS,
    ETHERTYPE_PPPOE_SESSION,
    ETHERTYPE_TEB,
    FRAGMENT,
    GRE_C,
    GRE_K,
    GRE_R,
    GRE_S,
    GRE_VERSION,
    HOP_BY_HOP,
    MAX_MPLS_LABELS,
    PPP_IPV4,
    PPP_IPV6,
    PROTO_GRE,
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_IPIP,
    PROTO_IPV6,
    PROTO_UDP,
    ROUTING,
    UDP_GENEVE,
    UDP_VXLAN,
    VLAN_TPIDS,
)

FILTER_TPIDS = VLAN_TPIDS[:3]  # the VLAN tags the filter walks: libpcap's `vlan` keyword's (not 0x9200)
V6_TOWARDS_ICMP = (PROTO_ICMPV6, HOP_BY_HOP, ROUTING, FRAGMENT, DEST_OPTS, AUTH)
IP_TUNNELS = (PROTO_IPIP, PROTO_IPV6, PROTO_GRE)

# ICMP and ICMPv6 with the keywords: what the filter always was.
L3_FILTER = "(icmp or (ip6 and (" + " or ".join(f"ip6[6] == {nh}" for nh in V6_TOWARDS_ICMP) + ")))"


def _any(load: str, values: tuple[int, ...] | list[int]) -> str:
    return "(" + " or ".join(f"{load} = {value:#x}" for value in values) + ")"


def _inner4(at: int) -> str:
    """The IPv4 header at `at` carries ICMP or another tunnel."""
    return _any(f"link[{at + 9}]", (PROTO_ICMP, *IP_TUNNELS))


def _inner6(at: int) -> str:
    return _any(f"link[{at + 6}]", (*V6_TOWARDS_ICMP, *IP_TUNNELS))


def _inner_ip(at: int, ethertype: str) -> str:
    return f"(({ethertype} = {ETHERTYPE_IPV4:#x} and {_inner4(at)}) or ({ethertype} = {ETHERTYPE_IPV6:#x} and " \
           f"{_inner6(at)}))"


def _by_version(at: int) -> str:
    return f"((link[{at}] & 0xf0 = 0x40 and {_inner4(at)}) or (link[{at}] & 0xf0 = 0x60 and {_inner6(at)}))"


def _inner_ethernet(at: int) -> str:
    """The Ethernet frame at `at` carries ICMP, or a VLAN tag, MPLS or PPPoE (passed without a look)."""
    ethertype = f"link[{at + 12}:2]"
    unlooked = (*FILTER_TPIDS, *ETHERTYPE_MPLS, ETHERTYPE_PPPOE_SESSION)
    return f"({_inner_ip(at + 14, ethertype)} or {_any(ethertype, unlooked)})"


# GRE's first byte: its checksum, key and sequence number flags, and the header's length with the key and sequence
# number (with the checksum present the packet is passed without a look)
_C, _R, _K, _S, _FIELDS = GRE_C >> 8, GRE_R >> 8, GRE_K >> 8, GRE_S >> 8, (GRE_C | GRE_K | GRE_S) >> 8
_GRE_FIELDS = ((0, 4), (_K, 8), (_S, 8), (_K | _S, 12))


def _gre(at: int) -> str:
    """The GRE packet at `at` (version 0, no routing) carries ICMP."""
    protocol = f"link[{at + 2}:2]"
    forms = []
    for flags, length in _GRE_FIELDS:
        payload = at + length
        ethernet = f"({protocol} = {ETHERTYPE_TEB:#x} and {_inner_ethernet(payload)})"
        if flags & _S:  # ERSPAN II's header follows the sequence number, and III's (its platform subheader, the O
            # bit, passed without a look)
            ethernet += f" or ({protocol} = {ETHERTYPE_ERSPAN2:#x} and {_inner_ethernet(payload + 8)}) or " \
                        f"({protocol} = {ETHERTYPE_ERSPAN3:#x} and (link[{payload + 11}] & 1 = 1 or " \
                        f"{_inner_ethernet(payload + 12)}))"
        else:  # ERSPAN I: the mirrored frame right behind GRE's header
            ethernet = f"({_any(protocol, (ETHERTYPE_TEB, ETHERTYPE_ERSPAN2))} and {_inner_ethernet(payload)})"
        forms.append(f"(link[{at}] & {_FIELDS:#x} = {flags:#x} and ({_inner_ip(payload, protocol)} or {ethernet}))")
    version_0 = f"link[{at}] & {_R:#x} = 0 and link[{at + 1}] & {GRE_VERSION} = 0"
    return f"({version_0} and (link[{at}] & {_C:#x} = {_C:#x} or " + " or ".join(forms) + "))"


def _udp(at: int) -> str:
    """The UDP datagram at `at` is VXLAN carrying ICMP, or Geneve (passed without a look)."""
    port = f"link[{at + 2}:2]"
    return f"(({port} = {UDP_VXLAN} and {_inner_ethernet(at + 16)}) or {port} = {UDP_GENEVE})"


def _tunnel(proto: str, payload: int) -> str:
    """The IP packet whose protocol is `proto` and payload at `payload` is a tunnel carrying ICMP."""
    return f"(({proto} = {PROTO_IPIP} and {_inner4(payload)}) or ({proto} = {PROTO_IPV6} and {_inner6(payload)}) " \
           f"or ({proto} = {PROTO_GRE} and {_gre(payload)}) or ({proto} = {PROTO_UDP} and {_udp(payload)}))"


def _tunnel_protocol(proto: str, port: str, tunnels: tuple[int, ...] = IP_TUNNELS) -> str:
    """A tunnel by its protocol (one of `tunnels`, or UDP to VXLAN's or Geneve's port) alone, passed without a look
    inside."""
    return f"({_any(proto, tunnels)} or ({proto} = {PROTO_UDP} and {_any(port, (UDP_VXLAN, UDP_GENEVE))}))"


def _tunnel4(at: int, look: bool) -> str:
    """The IPv4 packet at `at` is a tunnel carrying ICMP; one with IP options, or with `look` False, is passed by its
    protocol (their length would make every offset an expression), and so is a later fragment of IP-in-IP or GRE."""
    proto = f"link[{at + 9}]"
    plain = _tunnel(proto, at + 20) if look else _tunnel_protocol(proto, f"link[{at + 22}:2]")
    return f"((link[{at + 6}:2] & 0x1fff = 0 and ((link[{at}] = 0x45 and {plain}) or " \
           f"(link[{at}] != 0x45 and {_any(proto, (*IP_TUNNELS, PROTO_UDP))}))) or " \
           f"(link[{at + 6}:2] & 0x1fff != 0 and {_any(proto, IP_TUNNELS)}))"


def _tunnel6(at: int) -> str:
    """The IPv6 packet at `at` is IP-in-IP carrying ICMP, or GRE, VXLAN, Geneve (passed by protocol)."""
    proto = f"link[{at + 6}]"
    return f"(({proto} = {PROTO_IPIP} and {_inner4(at + 40)}) or ({proto} = {PROTO_IPV6} and {_inner6(at + 40)}) " \
           f"or {_tunnel_protocol(proto, f'link[{at + 42}:2]', (PROTO_GRE,))})"


def _mpls(at: int) -> str:
    """The label stack at `at`: its bottom within MAX_MPLS_LABELS labels, then ICMP (or a tunnel)."""
    stacks = []
    for labels in range(1, MAX_MPLS_LABELS + 1):
        bits = [f"link[{at + 4 * i + 2}] & 1 = {int(i == labels - 1)}" for i in range(labels)]
        stacks.append(f"({' and '.join(bits)} and {_by_version(at + 4 * labels)})")
    return "(" + " or ".join(stacks) + ")"


def _pppoe(at: int) -> str:
    protocol = f"link[{at + 6}:2]"
    return f"(link[{at}:2] = 0x1100 and (({protocol} = {PPP_IPV4:#x} and {_inner4(at + 8)}) or " \
           f"({protocol} = {PPP_IPV6:#x} and {_inner6(at + 8)})))"


def _encapsulated(tags: int) -> str:
    """An Ethernet frame behind `tags` VLAN tags (of any TPID) carrying an encapsulation of ICMP (behind two tags,
    IPv4 tunnels passed by protocol)."""
    at = 12 + 4 * tags
    ethertype = f"link[{at}:2]"
    walk = [_any(f"link[{12 + 4 * i}:2]", FILTER_TPIDS) for i in range(tags)]
    kinds = f"(({ethertype} = {ETHERTYPE_IPV4:#x} and {_tunnel4(at + 2, tags < 2)}) or " \
            f"({ethertype} = {ETHERTYPE_IPV6:#x} and {_tunnel6(at + 2)}) or " \
            f"({_any(ethertype, ETHERTYPE_MPLS)} and {_mpls(at + 2)}) or " \
            f"({ethertype} = {ETHERTYPE_PPPOE_SESSION:#x} and {_pppoe(at + 2)}))"
    return "(" + " and ".join([*walk, kinds]) + ")"


ENCAP_FILTER = "(" + " or ".join(_encapsulated(tags) for tags in range(3)) + ")"
DEFAULT_BPF_FILTER = f"{L3_FILTER} or {ENCAP_FILTER} or (vlan and ({L3_FILTER} or (vlan and {L3_FILTER})))"

if __name__ == "__main__":  # what capture.bpf_filter `default` stands for
    print(DEFAULT_BPF_FILTER)
