"""ICMP inside encapsulations (decode/encap.py, decode/link.py; decode/_fastdecode.c): MPLS, PPPoE, IP-in-IP, GRE
(ERSPAN I/II/III, transparent Ethernet bridging), VXLAN, Geneve; and hostile shapes of each.

Every decode runs through testkit.decoding.Run: the production decoder frame by frame, the dpkt reference, and
both batch paths (C and Python), required to agree packet for packet and counter for counter; none may raise.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from icmpsensor.decode import fast as decode
from icmpsensor.decode import linktypes
from icmpsensor.decode.stats import DecodeStats
from icmpsensor.source.batch import BATCH_META
from testkit import craft
from testkit.craft import addr
from testkit.decoding import A4, A6, B4, B6, Run
from tests.hypothesis_counts import examples

S, D = craft.TUNNEL_SRC, craft.TUNNEL_DST
ECHO4 = craft.icmp4(A4, B4, craft.ECHO_REQUEST, 0, 0x1234, 7, b"exfil: secret")
ECHO6 = craft.icmp6(A6, B6, craft.ECHO_REQUEST6, 0, 0x1234, 7, b"exfil: secret")
ENCAPSULATIONS = craft.encapsulations()
ETH = craft.LINKTYPE_ETHERNET

# The reasons an encapsulation, whole or cut short or lying, may be counted under (decode/stats.py).
ENCAP_REASONS = {"truncated_link", "truncated_ip", "truncated_encap", "bad_encap_header", "bad_ip_header",
                 "not_ip", "not_icmp", "truncated_icmp", "mpls_labels"}


def gre4(inner: bytes, **fields: int) -> bytes:
    return craft.ipv4(S, D, craft.PROTO_GRE, craft.gre(inner, **fields))  # type: ignore[arg-type]


def outcome(frame: bytes, linktype: int = ETH) -> dict[str, int]:
    """The counted skips and errors of one frame (both decoders, every path, agreeing)."""
    run = Run(linktype, [frame])
    return {**run.stats.skipped, **run.stats.errors}


def test_the_c_constants_are_the_python_ones() -> None:
    """One copy of each number (decode/linktypes.py); the C file's are held to it."""
    if decode.EXTENSION is None:
        pytest.skip("the C fast path is turned off or not built")
    table = decode.EXTENSION.ENCAPSULATION
    names = {"ETHERTYPE_MPLS_UNICAST": linktypes.ETHERTYPE_MPLS[0], "ETHERTYPE_MPLS_MULTICAST":
             linktypes.ETHERTYPE_MPLS[1]}
    for name, value in table.items():
        assert value == names.get(name, getattr(linktypes, name, None)), name
    assert len(table) == 19


@pytest.mark.parametrize("name", sorted(ENCAPSULATIONS))
@pytest.mark.parametrize("ip", [ECHO4, ECHO6], ids=["v4", "v6"])
def test_the_inner_packet_is_the_bare_one_with_the_inner_addresses(name: str, ip: bytes) -> None:
    frame = ENCAPSULATIONS[name](ip)
    bare = Run(ETH, [(1.5, craft.ether(ip))]).only
    run = Run(ETH, [(1.5, frame)])
    assert run.only.src == bare.src and run.only.dst == bare.dst  # the flow key: the inner host pair
    assert run.only == type(bare)(**{**{f: getattr(bare, f) for f in bare.__slots__}, "wire_len": len(frame)})


@pytest.mark.parametrize("name", sorted(ENCAPSULATIONS))
def test_inner_fragments_are_reassembled_by_the_inner_addresses(name: str) -> None:
    big4 = craft.icmp4(A4, B4, craft.ECHO_REQUEST, 0, 5, 6, bytes(range(256)) * 8, ip_id=77)
    big6 = craft.icmp6(A6, B6, craft.ECHO_REQUEST6, 0, 5, 6, bytes(range(256)) * 8)
    frames = [ENCAPSULATIONS[name](piece) for piece in craft.fragment4(big4, 1024) + craft.fragment6(big6, 1024)]
    run = Run(ETH, frames)
    assert [(p.src, p.payload) for p in run.decoded] == [(addr(A4), bytes(range(256)) * 8),
                                                         (addr(A6), bytes(range(256)) * 8)]
    assert run.stats.fragments["reassembled"] == 2


@pytest.mark.parametrize("name", sorted(ENCAPSULATIONS))
@pytest.mark.parametrize("ip", [ECHO4, ECHO6], ids=["v4", "v6"])
def test_an_encapsulation_cut_anywhere_is_counted_never_raised(name: str, ip: bytes) -> None:
    frame = ENCAPSULATIONS[name](ip)
    for cut in range(len(frame)):
        reasons = outcome(frame[:cut])
        assert len(reasons) == 1 and set(reasons) <= ENCAP_REASONS, (cut, reasons)


def test_the_c_path_takes_encapsulated_frames() -> None:
    if decode.EXTENSION is None:
        pytest.skip("the C fast path is turned off or not built")
    frames = [framer(ip) for framer in ENCAPSULATIONS.values() for ip in (ECHO4, ECHO6)]
    buf, meta = b"", b""
    for frame in frames:
        meta += BATCH_META.pack(1, 0, len(buf), len(frame))
        buf += frame
    skipped = [0, 0, 0]  # not IP, not ICMP, and the frames with a tunnel opened
    packets, rest = decode.EXTENSION.decode_batch(buf, meta, decode._C_LINKS[ETH], True, [0] * 512, skipped)
    assert rest == [] and all(p is not None for p in packets)
    link_only = [name for name in ENCAPSULATIONS if name.startswith(("mpls", "pppoe"))]
    assert skipped == [0, 0, 2 * (len(ENCAPSULATIONS) - len(link_only))]


def _nested(ip: bytes, depth: int) -> bytes:
    for level in range(depth):
        ip = gre4(ip, key=level) if level % 2 else craft.ipip(S, D, ip)
    return craft.ether(ip)


def test_nesting_is_bounded() -> None:
    assert Run(ETH, [_nested(ECHO4, linktypes.MAX_ENCAPSULATIONS)]).only.payload == b"exfil: secret"
    assert outcome(_nested(ECHO4, linktypes.MAX_ENCAPSULATIONS + 1)) == {"encap_depth": 1}
    assert outcome(_nested(ECHO6, 2 * linktypes.MAX_ENCAPSULATIONS)) == {"encap_depth": 1}  # GRE in IP-in-IP in ...


def test_as_many_nested_tunnels_as_a_full_size_packet_holds_are_opened() -> None:
    """Linux's fallback tunl0 opens IP-in-IP inside IP-in-IP as deep as the packet goes (red team 2026-12-06: five
    nested headers, 600 KB in 5 minutes unseen past a bound of 4). A 1500-byte packet holds 73 IPv4 headers around
    an echo request."""
    echo = craft.icmp4(A4, B4, 8, 0, 1, 2, b"secret")
    ip = echo
    while len(ip) + 20 <= 1500:
        ip = craft.ipip(S, D, ip)
    depth = (len(ip) - len(echo)) // 20
    assert depth == 73 <= linktypes.MAX_ENCAPSULATIONS
    assert Run(ETH, [craft.ether(ip)]).only.payload == b"secret"


def test_mpls_label_stacks_are_bounded() -> None:
    most = linktypes.MAX_MPLS_LABELS
    assert Run(ETH, [craft.ether(craft.mpls(ECHO4, range(most)), ethertype=0x8847)]).only.dst == addr(B4)
    assert outcome(craft.ether(craft.mpls(ECHO4, range(most + 1)), ethertype=0x8847)) == {"mpls_labels": 1}
    no_bottom = craft.mpls(b"", range(3), bottom=False)
    assert outcome(craft.ether(no_bottom, ethertype=0x8847)) == {"truncated_link": 1}  # ends without a bottom
    assert outcome(craft.ether(craft.mpls(b"", range(2)), ethertype=0x8847)) == {"truncated_link": 1}
    control_word = craft.mpls(b"\0\0\0\0" + craft.ether(ECHO4))  # an Ethernet pseudowire: not IP
    assert outcome(craft.ether(control_word, ethertype=0x8847)) == {"not_ip": 1}
    # behind a tunnel: the same reasons
    inner = craft.ether(craft.mpls(ECHO4, range(most + 1)), ethertype=0x8847)
    assert outcome(craft.ether(craft.vxlan(S, D, inner))) == {"mpls_labels": 1}


HOSTILE: list[tuple[str, bytes, dict[str, int]]] = [
    ("gre routing", craft.ether(gre4(ECHO4, flags=0x4000)), {"gre_routing": 1}),
    ("gre version 1 (pptp)", craft.ether(gre4(ECHO4, flags=1)), {"gre_version": 1}),
    ("gre other protocol", craft.ether(gre4(ECHO4, protocol=0x880B)), {"not_ip": 1}),
    ("gre fields past the packet", craft.ether(craft.ipv4(S, D, 47, b"\xb0\0\x08\0" + bytes(4))),
     {"truncated_encap": 1}),
    ("gre ip version lies", craft.ether(gre4(ECHO6, protocol=0x0800)), {"bad_ip_header": 1}),
    ("gre header cut", craft.ether(craft.ipv4(S, D, 47, b"\0\0\x08")), {"truncated_encap": 1}),
    ("outer length cuts the inner", craft.ether(craft.ipv4(S, D, 4, ECHO4, total_length=40) + ECHO4[20:]),
     {"truncated_ip": 1}),
    ("outer length past the capture", craft.ether(craft.ipv4(S, D, 47, craft.gre(ECHO4), total_length=1500)),
     {"truncated_ip": 1}),
    ("outer header checksum", craft.ether(craft.ipv4(S, D, 4, ECHO4, bad_checksum=True)), {"bad_ip_checksum": 1}),
    # an IP-in-IP or GRE outer fragment is held for reassembly (test_outer_fragments_of_ip_in_ip_and_gre_...)
    ("outer first fragment", craft.ether(craft.fragment4(craft.ipv4(S, D, 47, craft.gre(ECHO4 * 3)), 32)[0]), {}),
    ("outer later fragment", craft.ether(craft.fragment4(craft.ipv4(S, D, 4, ECHO4 * 3), 32)[1]), {}),
    ("outer fragment of vxlan", craft.ether(craft.fragment4(craft.vxlan(S, D, craft.ether(ECHO4)), 32)[0]),
     {"encap_fragment": 1}),
    ("outer v6 fragment", craft.ether(craft.fragment6(craft.ipip(craft.TUNNEL_SRC6, craft.TUNNEL_DST6, ECHO6 * 3,
                                                                 ipv6_outer=True), 32)[0]), {}),
    ("vxlan without the I flag", craft.ether(craft.vxlan(S, D, craft.ether(ECHO4), flags=0)),
     {"bad_encap_header": 1}),
    ("vxlan udp length lies (long)", craft.ether(craft.ipv4(S, D, 17, struct.pack(">HHHH", 1, 4789, 900, 0) +
                                                            bytes([8]) + bytes(7) + craft.ether(ECHO4))),
     {"bad_encap_header": 1}),
    ("vxlan udp length lies (short)", craft.ether(craft.ipv4(S, D, 17, struct.pack(">HHHH", 1, 4789, 12, 0) +
                                                             bytes([8]) + bytes(7) + craft.ether(ECHO4))),
     {"truncated_encap": 1}),
    ("vxlan udp header cut", craft.ether(craft.ipv4(S, D, 17, struct.pack(">HH", 1, 4789))), {"truncated_encap": 1}),
    ("vxlan inner ethernet cut", craft.ether(craft.vxlan(S, D, craft.ether(ECHO4)[:13])), {"truncated_encap": 1}),
    ("vxlan inner arp", craft.ether(craft.vxlan(S, D, craft.arp())), {"not_ip": 1}),
    ("vxlan inner tcp", craft.ether(craft.vxlan(S, D, craft.ether(craft.ipv4(A4, B4, 6, bytes(20))))),
     {"not_icmp": 1}),
    ("udp to another port", craft.ether(craft.udp4(S, D, 1, 4790, bytes(8) + craft.ether(ECHO4))), {"not_icmp": 1}),
    ("geneve version 1", craft.ether(craft.udp4(S, D, 1, 6081, b"\x40\0\x65\x58" + bytes(4) + craft.ether(ECHO4))),
     {"bad_encap_header": 1}),
    ("geneve options past the packet", craft.ether(craft.udp4(S, D, 1, 6081, b"\x3f\0\x08\0" + bytes(4) + ECHO4)),
     {"truncated_encap": 1}),
    ("erspan2 wrong version", craft.ether(craft.ipv4(S, D, 47, craft.gre(b"\x20" + bytes(7) + craft.ether(ECHO4),
                                                                         0x88BE, seq=1))), {"bad_encap_header": 1}),
    ("erspan3 platform subheader cut", craft.ether(craft.ipv4(S, D, 47, craft.gre(
        b"\x20" + bytes(10) + b"\x01" + bytes(4), 0x22EB))), {"truncated_encap": 1}),
    ("pppoe lcp", craft.ether(craft.pppoe(ECHO4, protocol=0xC021), ethertype=0x8864), {"not_ip": 1}),
    ("pppoe bad version", craft.ether(b"\x12" + craft.pppoe(ECHO4)[1:], ethertype=0x8864), {"not_ip": 1}),
    ("pppoe discovery", craft.ether(craft.pppoe(ECHO4), ethertype=0x8863), {"not_ip": 1}),
    ("pppoe cut", craft.ether(craft.pppoe(ECHO4)[:7], ethertype=0x8864), {"truncated_link": 1}),
    ("pppoe says ipv6, carries ipv4", craft.ether(craft.pppoe(ECHO4, protocol=0x0057), ethertype=0x8864),
     {"bad_ip_header": 1}),
    ("6in4 carrying ipv4", craft.ether(craft.ipv4(S, D, 41, ECHO4)), {"bad_ip_header": 1}),
    ("inner bad ip checksum", craft.ether(craft.ipip(S, D, craft.ipv4(A4, B4, 1, ECHO4[20:], bad_checksum=True))),
     {"bad_ip_checksum": 1}),
]


@pytest.mark.parametrize("order", ["in order", "reversed"])
@pytest.mark.parametrize("make", [lambda inner: craft.ipip(S, D, inner),
                                  lambda inner: craft.ipv4(S, D, 47, craft.gre(inner, key=9)),
                                  lambda inner: craft.ipv4(S, D, 47, craft.gre(craft.ether(inner), 0x6558)),
                                  lambda inner: craft.ipip(craft.TUNNEL_SRC6, craft.TUNNEL_DST6, inner,
                                                           ipv6_outer=True),
                                  lambda inner: craft.ipv6(craft.TUNNEL_SRC6, craft.TUNNEL_DST6, 47, craft.gre(inner))],
                         ids=["ip-in-ip", "gre", "gre ethernet", "ip-in-ipv6", "gre over ipv6"])
def test_outer_fragments_of_ip_in_ip_and_gre_are_reassembled_and_the_tunnel_opened(make, order: str) -> None:  # type: ignore[no-untyped-def]
    """The tunnel's receiver reassembles the outer datagram, then opens it: an `ip tunnel` whose MTU outgrows the
    path's sends every big packet as outer fragments (red team, 2026-12-06: 840 KB in 5 minutes unseen)."""
    payload = bytes(range(256)) * 5 + b"secret"
    inner = craft.icmp4(A4, B4, 8, 0, 77, 3, payload)
    outer = make(inner)
    frames = [craft.ether(f) for f in (craft.fragment6(outer, 512, 77) if outer[0] >> 4 == 6 else
                                       craft.fragment4(outer, 512))]
    if order == "reversed":
        frames.reverse()
    run = Run(ETH, frames)
    packet = run.only
    assert (packet.src, packet.dst, packet.ident, packet.payload) == (craft.addr(A4), craft.addr(B4), 77, payload)
    assert run.stats.fragments["reassembled"] == 1 and run.stats.decapsulated == 1
    lone = Run(ETH, frames[1:2])  # a later fragment alone: held, then (the end of input) its bytes are no message
    assert lone.decoded == [] and lone.stats.fragments["fragments"] == 1


@pytest.mark.parametrize(("why", "frame", "reasons"), HOSTILE, ids=[why for why, *_ in HOSTILE])
def test_hostile_encapsulations_are_counted(why: str, frame: bytes, reasons: dict[str, int]) -> None:
    assert outcome(frame) == reasons


def test_frames_with_a_tunnel_opened_are_counted_once_whatever_came_of_them() -> None:
    frames = [_nested(ECHO4, 3), craft.ether(craft.vxlan(S, D, craft.ether(TCP4))), _nested(ECHO6, 9),
              craft.ether(craft.mpls(ECHO4), ethertype=0x8847), craft.ether(ECHO4), craft.ether(gre4(ECHO4, flags=1))]
    frames += [craft.ether(gre4(piece)) for piece in craft.fragment4(craft.icmp4(A4, B4, 8, 0, 1, 2, bytes(300)), 64)]
    run = Run(ETH, frames)  # every path: the same counters
    assert run.stats.decapsulated == len(frames) - 2  # not MPLS, not the bare frame (GRE version 1: opened, skipped)
    assert run.stats.as_dict()["decapsulated"] == run.stats.decapsulated
    assert DecodeStats.from_dict(run.stats.as_dict()) == run.stats


TCP4 = craft.ipv4(A4, B4, 6, bytes(20))


def test_an_inner_message_with_a_bad_checksum_is_analysed_all_the_same() -> None:
    bad = craft.icmp4(A4, B4, craft.ECHO_REQUEST, 0, 1, 2, b"x", bad_checksum=True)
    run = Run(ETH, [craft.ether(gre4(bad))])
    assert run.only.payload == b"x" and run.stats.bad_checksum == 1


def test_the_stats_name_every_new_reason() -> None:
    doc = DecodeStats.__module__ and __import__("icmpsensor.decode.stats", fromlist=["x"]).__doc__
    for reason in ("mpls_labels", "encap_depth", "encap_fragment", "gre_routing", "gre_version", "truncated_encap",
                   "bad_encap_header"):
        assert f"``{reason}``" in doc, reason


# -- any stack of tunnels, mutated: every path agrees, nothing raises ---------------------------------------------

Wrap = Callable[[bytes], bytes]
IP_WRAPS: dict[str, Wrap] = {  # an IP packet -> an IP packet carrying it
    "ipip": lambda ip: craft.ipip(S, D, ip),
    "ipip6": lambda ip: craft.ipip(craft.TUNNEL_SRC6, craft.TUNNEL_DST6, ip, ipv6_outer=True),
    "gre": lambda ip: gre4(ip, key=5),
    "gre-teb": lambda ip: craft.ipv4(S, D, 47, craft.gre(craft.ether(ip), craft.ETHERTYPE_TEB, seq=1)),
    "erspan3": lambda ip: craft.ipv4(S, D, 47, craft.erspan3(craft.ether(ip), platform=True)),
    "vxlan": lambda ip: craft.vxlan(S, D, craft.ether(ip, vlans=(3,))),
    "vxlan-pppoe": lambda ip: craft.vxlan(S, D, craft.ether(craft.pppoe(ip), ethertype=0x8864)),
    "geneve": lambda ip: craft.geneve(S, D, ip, craft.ETHERTYPE_IPV4 if ip[0] >> 4 == 4 else craft.ETHERTYPE_IPV6),
}
FRAMES: dict[str, Wrap] = {
    "ethernet": craft.ether,
    "mpls": lambda ip: craft.ether(craft.mpls(ip, (1, 2)), ethertype=0x8847),
    "pppoe-vlan": lambda ip: craft.ether(craft.pppoe(ip), (9,), ethertype=0x8864),
}
mutation = st.tuples(st.sampled_from(["flip", "set", "cut"]), st.integers(0, 2**16), st.integers(0, 255))


def _mutate(frame: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    for op, where, value in ops:
        at = where % max(len(frame), 1)
        if op == "flip":
            frame = frame[:at] + bytes([frame[at] ^ 1 << value % 8]) + frame[at + 1 :] if frame else frame
        elif op == "set":
            frame = frame[:at] + bytes([value]) + frame[at + 1 :]
        else:
            frame = frame[:at]
    return frame


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wraps=st.lists(st.sampled_from(sorted(IP_WRAPS)), max_size=6), link=st.sampled_from(sorted(FRAMES)),
       v6=st.booleans(), fragment=st.booleans(), ops=st.lists(mutation, max_size=3), verify=st.booleans())
def test_any_stack_of_tunnels_decodes_alike_on_every_path(wraps: list[str], link: str, v6: bool, fragment: bool,
                                                          ops: list[tuple[str, int, int]], verify: bool) -> None:
    ip = craft.icmp6(A6, B6, 128, 0, 1, 2, bytes(100)) if v6 else craft.icmp4(A4, B4, 8, 0, 1, 2, bytes(100))
    pieces = (craft.fragment6(ip, 64) if v6 else craft.fragment4(ip, 64)) if fragment else [ip]
    frames = []
    for piece in pieces:
        for name in wraps:
            piece = IP_WRAPS[name](piece)
        frames.append(FRAMES[link](piece))
    whole = Run(ETH, frames, verify_checksums=verify)
    if len(wraps) <= linktypes.MAX_ENCAPSULATIONS:
        assert [p.dst for p in whole.decoded] == [addr(B6 if v6 else B4)]
    else:
        assert whole.decoded == [] and whole.stats.skipped["encap_depth"] == len(frames)
    frames[-1] = _mutate(frames[-1], ops)
    Run(ETH, frames, verify_checksums=verify)


def test_is_tunnel_reads_the_port_within_the_packet() -> None:
    from icmpsensor.decode import encap

    udp = craft.udp4(S, D, 1, 4789)
    assert encap.is_tunnel(17, udp, 20, len(udp)) and not encap.is_tunnel(17, udp, 20, 23)
    assert encap.is_tunnel(47, b"", 0, 0) and not encap.is_tunnel(6, udp, 20, len(udp))
