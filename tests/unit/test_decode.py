"""The frame decoder: link types, IPv4/IPv6, ICMP, checksums, malformed input, real captures.

Every decode here runs through both `Decoder` (the fast path) and `DpktDecoder`
(dpkt's parsers) and requires identical packets and counters, and the counter
invariant of icmpsensor.decode: frames + reassembled == icmp + skipped + errors + fragments.
"""

from __future__ import annotations

import ipaddress
import json
import os
import struct
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from icmpsensor.decode import fast as decode
from icmpsensor.decode.decoder import DpktDecoder
from icmpsensor.decode.fast import Decoder
from icmpsensor.decode.ip import MAX_EXT_HEADERS
from icmpsensor.decode.linktypes import SUPPORTED_LINKTYPES, VLAN_TPIDS, linktype_name
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.decode.stats import DecodeStats
from icmpsensor.errors import EXIT_NOINPUT, InputError
from icmpsensor.source.batch import BATCH_META
from testkit import craft
from testkit.craft import addr
from testkit.decoding import A4, A6, B4, B6, Run
from tests.hypothesis_counts import examples
from tests.python_lines import lines_run

Framer = Callable[[bytes], bytes]

# name -> (link type, framing); every one carries both IPv4 and IPv6.
FRAMINGS: dict[str, tuple[int, Framer]] = {
    "ethernet": (craft.LINKTYPE_ETHERNET, craft.ether),
    "vlan": (craft.LINKTYPE_ETHERNET, lambda ip: craft.ether(ip, vlans=[100])),
    "qinq": (craft.LINKTYPE_ETHERNET, lambda ip: craft.ether(ip, vlans=[100, 200], outer_tpid=0x88A8)),
    "three-tags-9100": (craft.LINKTYPE_ETHERNET,
                        lambda ip: craft.ether(ip, vlans=[1, 2, 3], outer_tpid=0x9100)),
    "sll": (craft.LINKTYPE_LINUX_SLL, craft.sll),
    "sll2": (craft.LINKTYPE_LINUX_SLL2, craft.sll2),
    "null-le": (craft.LINKTYPE_NULL, craft.null),
    "null-be": (craft.LINKTYPE_NULL, lambda ip: craft.null(ip, big_endian=True)),
    "loop": (craft.LINKTYPE_LOOP, craft.loop),
    "raw": (craft.LINKTYPE_RAW, craft.raw),
    "dlt-raw": (craft.DLT_RAW, craft.raw),
    "dlt-raw-openbsd": (14, craft.raw),
}
# ... and inside every encapsulation the decoder opens (decode/encap.py): the packet decoded as a bare one
FRAMINGS.update({f"encap-{name}": (craft.LINKTYPE_ETHERNET, framer) for name, framer in craft.encapsulations().items()})
ALL_LINKTYPES = sorted(SUPPORTED_LINKTYPES)


def error_of(linktype: int, frame: bytes, **kwargs: bool) -> dict[str, int]:
    run = Run(linktype, [frame], **kwargs)
    assert run.packets == [None]
    return dict(run.stats.errors)


def skip_of(linktype: int, frame: bytes) -> dict[str, int]:
    run = Run(linktype, [frame])
    assert run.packets == [None] and not run.stats.errors
    return dict(run.stats.skipped)


# -- link types -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FRAMINGS)
@pytest.mark.parametrize("version", [4, 6])
def test_echo_request_decodes_for_every_link_type(name: str, version: int) -> None:
    linktype, framer = FRAMINGS[name]
    if version == 4:
        ip = craft.icmp4(A4, B4, craft.ECHO_REQUEST, 0, 0x1234, 77, b"exfil data")
        src, dst, echo_type = addr(A4), addr(B4), craft.ECHO_REQUEST
    else:
        ip = craft.icmp6(A6, B6, craft.ECHO_REQUEST6, 0, 0x1234, 77, b"exfil data")
        src, dst, echo_type = addr(A6), addr(B6), craft.ECHO_REQUEST6
    frame = framer(ip)
    run = Run(linktype, [(1.5, frame)])
    expected = IcmpPacket(1.5, src, dst, version == 6, echo_type, 0, 0x1234, 77, b"exfil data", len(frame))
    assert run.only == expected
    assert run.stats.icmp_types == {(version, echo_type): 1}


@pytest.mark.parametrize(("linktype", "ip"), [
    (craft.LINKTYPE_IPV4, craft.icmp4(A4, B4, craft.ECHO_REPLY, 0, 1, 2, b"x")),
    (craft.LINKTYPE_IPV6, craft.icmp6(A6, B6, craft.ECHO_REPLY6, 0, 1, 2, b"x")),
], ids=["IPV4", "IPV6"])
def test_ipv4_and_ipv6_link_types(linktype: int, ip: bytes) -> None:
    packet = Run(linktype, [ip]).only
    assert (packet.ident, packet.seq, packet.payload) == (1, 2, b"x")


@pytest.mark.parametrize(("linktype", "ip"), [
    (craft.LINKTYPE_IPV4, craft.icmp6(A6, B6, craft.ECHO_REPLY6)),
    (craft.LINKTYPE_IPV6, craft.icmp4(A4, B4, craft.ECHO_REPLY, payload=bytes(20))),
], ids=["ipv6-in-IPV4", "ipv4-in-IPV6"])
def test_ipv4_and_ipv6_link_types_reject_the_other_version(linktype: int, ip: bytes) -> None:
    assert error_of(linktype, ip) == {"bad_ip_header": 1}


@pytest.mark.parametrize("family", [craft.AF_INET6_LINUX, craft.AF_INET6_BSD, craft.AF_INET6_FREEBSD,
                                    craft.AF_INET6_DARWIN])
@pytest.mark.parametrize("big_endian", [False, True])
def test_null_accepts_every_inet6_family_in_both_byte_orders(family: int, big_endian: bool) -> None:
    ip = craft.icmp6(A6, B6, craft.ECHO_REQUEST6, ident=9)
    assert Run(craft.LINKTYPE_NULL, [craft.null(ip, big_endian, family=family)]).only.ident == 9
    assert Run(craft.LINKTYPE_LOOP, [craft.loop(ip, family=family)]).only.ident == 9


@pytest.mark.parametrize("writer", ["pcap", "pcapng"])
@pytest.mark.parametrize("name", ["ethernet", "qinq", "sll", "sll2", "null-le", "null-be", "loop", "raw"])
def test_capture_files_read_with_pcapy(tmp_path: Path, writer: str, name: str) -> None:
    """What libpcap reports as the link type (e.g. 12 for LINKTYPE_RAW 101) is accepted."""
    linktype, framer = FRAMINGS[name]
    frames = [(10.25, framer(craft.icmp4(A4, B4, craft.ECHO_REQUEST, 0, 5, 6, b"abc"))),
              (11.5, framer(craft.icmp6(A6, B6, craft.ECHO_REPLY6, 0, 5, 6, b"def")))]
    path = tmp_path / f"capture.{writer}"
    if writer == "pcap":
        craft.write_pcap(path, frames, linktype)
    else:
        craft.write_pcapng(path, frames, linktype)
    reported, read = craft.read_capture(path)
    assert reported in SUPPORTED_LINKTYPES
    run = Run(reported, [(ts, frame) for ts, frame, _ in read])
    assert [(p.ts, p.payload, p.ipv6) for p in run.decoded] == [(10.25, b"abc", False), (11.5, b"def", True)]


def test_unsupported_link_type_is_an_input_error() -> None:
    with pytest.raises(InputError) as raised:
        Decoder(105, DecodeStats())
    assert raised.value.message == "unsupported link type 105 (IEEE802_11)"
    assert raised.value.exit_code == EXIT_NOINPUT
    with pytest.raises(InputError, match=r"^unsupported link type 4242 \(unknown\)$"):
        DpktDecoder(4242, DecodeStats())


def test_linktype_names() -> None:
    assert linktype_name(1) == "ETHERNET"
    assert linktype_name(276) == "LINUX_SLL2"
    assert linktype_name(127) == "IEEE802_11_RADIOTAP"
    assert linktype_name(150) == "USER3"
    assert linktype_name(-1) == "unknown"


# -- IPv6 extension headers -------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    [craft.hop_by_hop()],
    [craft.hop_by_hop(b"\x05\x02\x00\x00"), craft.dest_opts(b"\x01\x0c" + bytes(12))],
    [craft.routing(0, 0, [A6]), craft.dest_opts()],
    [craft.hop_by_hop(), craft.routing(4, 0, [B6]), craft.auth(), craft.dest_opts()],
    [(craft.FRAGMENT, struct.pack(">HI", 0, 99))],  # atomic fragment (RFC 6946): no reassembly
    [craft.dest_opts()] * 15,
    # a chain longer than 16 headers reaches the receiver (Linux walks it whole): 17 headers hid a message
    [craft.dest_opts()] * 17,
    [craft.hop_by_hop()] + [craft.dest_opts()] * 150,
    [craft.routing(0, 0, [A6])] + [craft.dest_opts(), craft.auth()] * 60,
    [craft.dest_opts()] * (MAX_EXT_HEADERS - 1),  # the longest walked: the message the last header
])
def test_icmpv6_after_extension_headers(headers: list[craft.ExtHeader]) -> None:
    ip = craft.icmp6(A6, B6, craft.ECHO_REQUEST6, 0, 3, 4, b"behind headers", ext_headers=headers)
    run = Run(craft.LINKTYPE_ETHERNET, [craft.ether(ip)])
    assert (run.only.ident, run.only.seq, run.only.payload) == (3, 4, b"behind headers")
    assert not run.stats.fragments


@pytest.mark.parametrize("header", [
    craft.routing(0, 1, ["2001:db8::a", "2001:db8::f"]),
    craft.routing(2, 1, ["2001:db8::f"]),
    craft.routing(4, 1, ["2001:db8::f", "2001:db8::a"]),  # SRH: segment list[0] is the final segment
])
def test_checksum_uses_the_final_destination_of_a_routing_header(header: craft.ExtHeader) -> None:
    good = craft.icmp6(A6, B6, craft.ECHO_REQUEST6, ext_headers=[header], checksum_dst="2001:db8::f")
    naive = craft.icmp6(A6, B6, craft.ECHO_REQUEST6, ext_headers=[header])
    assert Run(craft.LINKTYPE_RAW, [good]).only.dst == addr(B6)
    assert Run(craft.LINKTYPE_RAW, [good]).stats.bad_checksum == 0
    assert Run(craft.LINKTYPE_RAW, [naive]).stats.bad_checksum == 1


def _icmp6_behind(next_header: int, chain: bytes) -> bytes:
    message = craft.icmp6_message(A6, B6, craft.ECHO_REQUEST6)
    return craft.ipv6(A6, B6, next_header, chain + message)


@pytest.mark.parametrize(("ip", "why"), [
    (_icmp6_behind(craft.DEST_OPTS, b"\x3a\x03" + bytes(6)), "header longer than the payload"),
    (craft.ipv6(A6, B6, craft.DEST_OPTS, b"\x3a"), "header cut before its length"),
    (craft.ipv6(A6, B6, craft.FRAGMENT, b"\x3a\x00\x00"), "fragment header cut"),
    (craft.ipv6(A6, B6, craft.AUTH, b"\x3a\x00" + bytes(6)), "AH shorter than its fixed part"),
    (craft.icmp6(A6, B6, craft.ECHO_REQUEST6, ext_headers=[craft.dest_opts(), craft.hop_by_hop()]),
     "hop-by-hop not first"),
    (craft.icmp6(A6, B6, craft.ECHO_REQUEST6, ext_headers=[craft.dest_opts()] * MAX_EXT_HEADERS),
     "more headers than a first fragment's chain holds"),
    (craft.icmp6(A6, B6, craft.ECHO_REQUEST6, ext_headers=[(craft.FRAGMENT, bytes(6))] * 2),
     "two fragment headers"),
])
def test_malformed_extension_headers(ip: bytes, why: str) -> None:
    assert error_of(craft.LINKTYPE_RAW, ip) == {"bad_ipv6_ext_header": 1}, why


# -- ICMP messages ----------------------------------------------------------------------------------


def test_unreachable_keeps_the_quoted_datagram_after_the_4_byte_header() -> None:
    quoted = craft.udp4(B4, A4, 5353, 53, b"query")[:28]
    rest = b"\x00\x00\x05\xdc" + quoted  # unused + next-hop MTU
    packet = Run(1, [craft.ether(craft.icmp4(A4, B4, craft.UNREACHABLE, 4, payload=rest))]).only
    assert (packet.icmp_type, packet.icmp_code, packet.ident, packet.seq) == (3, 4, -1, -1)
    assert packet.payload == rest


def test_timestamp_request_is_not_an_echo() -> None:
    body = struct.pack(">HHIII", 0xABCD, 3, 123456, 0, 0)
    packet = Run(1, [craft.ether(craft.icmp4(A4, B4, craft.TIMESTAMP, payload=body))]).only
    assert (packet.icmp_type, packet.ident, packet.seq, packet.payload) == (13, -1, -1, body)


@pytest.mark.parametrize(("icmp_type", "body"), [
    (craft.UNREACHABLE6, bytes(4) + craft.udp6(B6, A6)[:48]),
    (craft.NEIGHBOR_SOLICITATION, bytes(4) + addr(B6)),
    (2, struct.pack(">I", 1280) + bytes(40)),  # packet too big
])
def test_icmpv6_non_echo_types(icmp_type: int, body: bytes) -> None:
    packet = Run(craft.LINKTYPE_RAW, [craft.icmp6(A6, B6, icmp_type, payload=body)]).only
    assert packet.ipv6
    assert (packet.icmp_type, packet.ident, packet.seq, packet.payload) == (icmp_type, -1, -1, body)


def test_echo_with_a_nonzero_code_is_still_an_echo() -> None:
    packet = Run(1, [craft.ether(craft.icmp4(A4, B4, craft.ECHO_REQUEST, 7, 11, 12, b"p"))]).only
    assert (packet.icmp_code, packet.ident, packet.seq, packet.payload) == (7, 11, 12, b"p")


def test_every_type_is_counted() -> None:
    frames = [craft.ether(craft.icmp4(A4, B4, t, payload=bytes(8))) for t in (0, 3, 8, 8, 11, 13, 42)]
    frames += [craft.ether(craft.icmp6(A6, B6, t, payload=bytes(8))) for t in (1, 128, 129, 135, 200)]
    stats = Run(1, frames).stats
    assert stats.icmp == len(frames)
    assert stats.as_dict()["icmp_types"] == {
        "v4:0": 1, "v4:3": 1, "v4:8": 2, "v4:11": 1, "v4:13": 1, "v4:42": 1,
        "v6:1": 1, "v6:128": 1, "v6:129": 1, "v6:135": 1, "v6:200": 1,
    }


def test_ethernet_padding_is_ignored() -> None:
    frame = craft.ether(craft.icmp4(A4, B4, craft.ECHO_REPLY, 0, 1, 1, b"ab"), pad=True)
    assert len(frame) == 60
    packet = Run(1, [frame]).only
    assert (packet.payload, packet.wire_len) == (b"ab", 60)
    ip6 = craft.icmp6(A6, B6, craft.ECHO_REPLY6, 0, 1, 1, b"ab")
    assert Run(1, [craft.ether(ip6) + b"\xff" * 30]).only.payload == b"ab"


def test_wire_length_given_by_the_capture_is_kept() -> None:
    stats = DecodeStats()
    packet = Decoder(1, stats).decode(1.0, craft.ether(craft.icmp4(A4, B4, 8)), 1514)
    assert packet is not None and packet.wire_len == 1514


# -- checksums --------------------------------------------------------------------------------------


@pytest.mark.parametrize("ip", [
    craft.icmp4(A4, B4, craft.ECHO_REQUEST, 0, 1, 2, b"odd", bad_checksum=True),
    craft.icmp6(A6, B6, craft.ECHO_REQUEST6, 0, 1, 2, b"even", bad_checksum=True),
    craft.icmp4(A4, B4, craft.UNREACHABLE, 1, payload=bytes(32), bad_checksum=True),
])
def test_bad_icmp_checksum_is_counted_and_the_message_analysed_all_the_same(ip: bytes) -> None:
    # routers forward it and the receiver's packet capture (or raw socket, ICMP) reads it: no evasion
    run = Run(1, [craft.ether(ip)])
    assert run.only.payload and run.stats.bad_checksum == 1 and not run.stats.errors
    unchecked = Run(1, [craft.ether(ip)], verify_checksums=False)
    assert unchecked.only == run.only and unchecked.stats.bad_checksum == 0


def test_bad_ip_header_checksum() -> None:
    message = craft.icmp4_message(craft.ECHO_REQUEST, 0, 1, 2, b"x")
    ip = craft.ipv4(A4, B4, craft.PROTO_ICMP, message, bad_checksum=True)
    assert error_of(1, craft.ether(ip)) == {"bad_ip_checksum": 1}
    assert Run(1, [craft.ether(ip)], verify_checksums=False).only.seq == 2


def test_all_zero_message_has_a_bad_checksum() -> None:
    """0x0000 and 0xFFFF are both "zero" in one's complement, but all-zero words sum to +0."""
    assert Run(1, [craft.ether(craft.ipv4(A4, B4, craft.PROTO_ICMP, bytes(8)))]).stats.bad_checksum == 1
    good = craft.ipv4(A4, B4, craft.PROTO_ICMP, b"\x00\x00\xff\xff" + bytes(4))
    assert Run(1, [craft.ether(good)]).only.icmp_type == craft.ECHO_REPLY


# -- truncated and malformed ------------------------------------------------------------------------

ECHO4 = craft.icmp4(A4, B4, craft.ECHO_REQUEST, 0, 1, 2, b"payload")
ECHO6 = craft.icmp6(A6, B6, craft.ECHO_REQUEST6, 0, 1, 2, b"payload")


def _short_echo() -> bytes:
    """An echo request of 6 bytes with a correct checksum."""
    message = b"\x08\x00\x00\x00\x12\x34"
    value = craft.checksum(message)
    return craft.ipv4(A4, B4, craft.PROTO_ICMP, message[:2] + struct.pack(">H", value) + message[4:])


TRUNCATED: list[tuple[str, int, bytes, str]] = [
    ("ethernet header", 1, craft.ether(ECHO4)[:13], "truncated_link"),
    ("vlan tag", 1, craft.ether(ECHO4, vlans=[1, 2])[:20], "truncated_link"),
    ("sll header", 113, craft.sll(ECHO4)[:15], "truncated_link"),
    ("sll2 header", 276, craft.sll2(ECHO4)[:19], "truncated_link"),
    ("null header", 0, craft.null(ECHO4)[:3], "truncated_link"),
    ("loop header", 108, craft.loop(ECHO4)[:2], "truncated_link"),
    ("empty raw", 101, b"", "truncated_ip"),
    ("ipv4 header", 1, craft.ether(ECHO4)[:33], "truncated_ip"),
    ("ipv4 options", 1, craft.ether(craft.ipv4(A4, B4, 1, b"", options=b"\x01" * 8))[:38], "truncated_ip"),
    ("ipv4 snap length", 1, craft.ether(ECHO4)[:-1], "truncated_ip"),
    ("ipv6 header", 1, craft.ether(ECHO6)[:53], "truncated_ip"),
    ("ipv6 snap length", 1, craft.ether(ECHO6)[:-3], "truncated_ip"),
    ("icmp header", 1, craft.ether(craft.ipv4(A4, B4, 1, b"\x08\x00\xf7")), "truncated_icmp"),
    ("echo header", 1, craft.ether(_short_echo()), "truncated_icmp"),
    ("icmpv6 header", 101, craft.ipv6(A6, B6, 58, b"\x80\x00"), "truncated_icmp"),
    ("ipv4 version", 1, craft.ether(b"\x65" + ECHO4[1:], ethertype=0x0800), "bad_ip_header"),
    ("ipv4 ihl", 1, craft.ether(b"\x44" + ECHO4[1:]), "bad_ip_header"),
    ("ipv4 total length", 1, craft.ether(craft.ipv4(A4, B4, 1, bytes(8), total_length=19)), "bad_ip_header"),
    ("ipv6 version", 1, craft.ether(b"\x40" + ECHO6[1:], ethertype=0x86DD), "bad_ip_header"),
    ("raw version", 101, b"\x50" + ECHO4[1:], "bad_ip_header"),
    ("fragment not multiple of 8", 1,
     craft.ether(craft.ipv4(A4, B4, 1, bytes(12), flags_offset=0x2000)), "bad_fragment"),
    ("empty fragment", 1, craft.ether(craft.ipv4(A4, B4, 1, b"", flags_offset=0x0010)), "bad_fragment"),
]


@pytest.mark.parametrize(("linktype", "frame", "reason"), [t[1:] for t in TRUNCATED],
                         ids=[t[0] for t in TRUNCATED])
def test_truncated_and_malformed_frames(linktype: int, frame: bytes, reason: str) -> None:
    assert error_of(linktype, frame) == {reason: 1}


def test_bytes_after_the_end_of_option_list_are_kept_unless_zero() -> None:
    # RFC 791: what follows End of Option List is padding to the header's end, zero; anything else is data
    message = craft.icmp4_message(craft.ECHO_REQUEST, 0, 5, 6, b"eol")
    hidden = craft.ipv4(A4, B4, craft.PROTO_ICMP, message, options=b"\x00secret!")
    padded = craft.ipv4(A4, B4, craft.PROTO_ICMP, message, options=b"\x94\x04\x00\x00\x00\x00\x00\x00")
    assert Run(1, [craft.ether(hidden)]).only.options == b"\x00secret!"
    assert Run(1, [craft.ether(padded)]).only.options == b"\x94\x04\x00\x00"


def test_ipv4_options_are_kept_for_the_detector_without_padding() -> None:
    message = craft.icmp4_message(craft.ECHO_REQUEST, 0, 5, 6, b"opt")
    ip = craft.ipv4(A4, B4, craft.PROTO_ICMP, message, options=b"\x01\x94\x04\x00\x00")  # NOP, router alert
    packet = Run(1, [craft.ether(ip)]).only
    assert (packet.payload, packet.options) == (b"opt", b"\x94\x04\x00\x00")
    assert Run(1, [craft.ether(craft.icmp4(A4, B4, craft.ECHO_REQUEST, 0, 5, 6, b"opt"))]).only.options == b""


@pytest.mark.parametrize(("headers", "options"), [
    ([craft.hop_by_hop()], b""),  # padding only
    ([craft.hop_by_hop(b"\x05\x02\x00\x00")], b"\x05\x02\x00\x00"),  # router alert (MLD)
    ([craft.dest_opts(b"\x1e\x08secret!!")], b"\x1e\x08secret!!"),  # an experimental option's data
    ([craft.dest_opts(b"\x01\x04data")], b"\x01\x04data"),  # PadN that carries something
    ([craft.hop_by_hop(b"\x1e\x02ab"), craft.dest_opts(b"\x3e\x02cd")], b"\x1e\x02ab\x3e\x02cd"),
])
def test_ipv6_hop_by_hop_and_destination_options_are_kept_without_padding(headers: list[craft.ExtHeader],
                                                                          options: bytes) -> None:
    ip = craft.icmp6(A6, B6, craft.ECHO_REQUEST6, 0, 3, 4, b"x", ext_headers=headers)
    assert Run(craft.LINKTYPE_ETHERNET, [craft.ether(ip)]).only.options == options


SKIPPED: list[tuple[str, int, bytes, str]] = [
    ("arp", 1, craft.arp(), "not_ip"),
    ("lldp", 1, craft.ether(bytes(30), ethertype=0x88CC), "not_ip"),
    ("802.3 length", 1, craft.ether(bytes(30), ethertype=30), "not_ip"),
    ("sll arp", 113, craft.sll(bytes(28), protocol=0x0806), "not_ip"),
    ("null other family", 0, craft.null(ECHO4, family=7), "not_ip"),
    ("udp", 1, craft.ether(craft.udp4(A4, B4)), "not_icmp"),
    ("udp6", 1, craft.ether(craft.udp6(A6, B6)), "not_icmp"),
    ("icmpv4 over ipv6", 101, craft.ipv6(A6, B6, craft.PROTO_ICMP, craft.icmp4_message(8)), "not_icmp"),
    ("icmpv6 over ipv4", 101, craft.ipv4(A4, B4, craft.PROTO_ICMPV6, craft.icmp4_message(128)), "not_icmp"),
    ("no next header", 101, craft.ipv6(A6, B6, craft.NO_NEXT_HEADER, b""), "not_icmp"),
    ("esp after options", 101, craft.ipv6(A6, B6, 50, bytes(16), ext_headers=[craft.dest_opts()]),
     "not_icmp"),
    ("udp fragment", 1, craft.ether(craft.fragment4(craft.udp4(A4, B4, payload=bytes(40)), 16)[0]),
     "not_icmp"),
    ("udp6 fragment", 101, craft.fragment6(craft.udp6(A6, B6, payload=bytes(40)), 16)[1], "not_icmp"),
    ("truncated tcp", 1, craft.ether(craft.ipv4(A4, B4, 6, bytes(40)))[:40], "not_icmp"),
]


@pytest.mark.parametrize(("linktype", "frame", "reason"), [t[1:] for t in SKIPPED],
                         ids=[t[0] for t in SKIPPED])
def test_skipped_frames(linktype: int, frame: bytes, reason: str) -> None:
    assert skip_of(linktype, frame) == {reason: 1}


def test_stats_as_dict_is_json_ready() -> None:
    frames = [craft.ether(ECHO4), craft.arp(), craft.ether(ECHO4)[:10]]
    data = Run(1, frames).stats.as_dict()
    assert json.loads(json.dumps(data)) == {
        "frames": 3, "icmp": 1, "skipped": {"not_ip": 1}, "errors": {"truncated_link": 1},
        "icmp_types": {"v4:8": 1}, "fragments": {}, "bad_checksum": 0, "decapsulated": 0,
    }


# -- property tests ---------------------------------------------------------------------------------

LINK_FRAMINGS = [
    *sorted(FRAMINGS.items()),
    ("ipv4", (craft.LINKTYPE_IPV4, craft.raw)),
    ("ipv6", (craft.LINKTYPE_IPV6, craft.raw)),
]

ext_header = st.one_of(
    st.builds(craft.hop_by_hop, st.binary(max_size=14)),
    st.builds(craft.dest_opts, st.binary(max_size=14)),
    st.builds(craft.routing, st.sampled_from([0, 2, 3, 4]), st.integers(0, 2),
              st.lists(st.ip_addresses(v=6).map(str), min_size=1, max_size=2)),
    st.builds(craft.auth, icv=st.binary(min_size=4, max_size=12).map(lambda b: b + bytes(-len(b) % 4))),
)


@st.composite
def datagrams(draw: st.DrawFn, version: int) -> bytes:
    """A valid ICMP (v4) or ICMPv6 (v6, maybe behind extension headers) packet of any type."""
    icmp_type = draw(st.sampled_from([0, 8, 3, 11, 13, 42]) if version == 4 else
                     st.sampled_from([128, 129, 1, 2, 135, 200]))
    code, ident, seq = draw(st.integers(0, 255)), draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF))
    fields = (icmp_type, code, ident, seq, draw(st.binary(max_size=48)))
    if version == 4:
        return craft.icmp4(str(draw(st.ip_addresses(v=4))), str(draw(st.ip_addresses(v=4))), *fields,
                           ip_id=draw(st.integers(0, 0xFFFF)))
    headers = draw(st.lists(ext_header, max_size=3))
    headers.sort(key=lambda h: h[0] != craft.HOP_BY_HOP)  # hop-by-hop, when drawn, goes first
    headers = [h for i, h in enumerate(headers) if h[0] != craft.HOP_BY_HOP or i == 0]
    src, dst = str(draw(st.ip_addresses(v=6))), str(draw(st.ip_addresses(v=6)))
    return craft.icmp6(src, dst, *fields, ext_headers=headers, checksum_dst=_final_dst(headers, dst))


def _final_dst(headers: list[craft.ExtHeader], dst: str) -> str:
    """The pseudo-header destination: the last address a routing header with segments left names."""
    for kind, body in headers:
        if kind == craft.ROUTING and body[1] and body[0] in (0, 2, 4):
            index = (len(body) - 6) // 16 - 1 if body[0] == 0 else 0
            dst = str(ipaddress.ip_address(body[6 + 16 * index : 22 + 16 * index]))
    return dst


@st.composite
def frame_sequences(draw: st.DrawFn) -> tuple[int, list[bytes]]:
    """Frames of one link type: a datagram, maybe fragmented, shuffled and duplicated."""
    name, (linktype, framer) = draw(st.sampled_from(LINK_FRAMINGS))
    version = 6 if name == "ipv6" else 4 if name == "ipv4" else draw(st.sampled_from([4, 6]))
    packet = draw(datagrams(version))
    if draw(st.booleans()):
        size = draw(st.sampled_from([8, 16, 24, 48]))
        ident = draw(st.integers(0, 0xFFFFFFFF))
        pieces = craft.fragment4(packet, size) if version == 4 else craft.fragment6(packet, size, ident)
        if len(pieces) > 1:  # a lone piece is a whole packet: a copy would decode twice
            pieces = draw(st.permutations(pieces))
            copies = draw(st.lists(st.sampled_from(pieces[:-1]), max_size=2))
            pieces = pieces[:-1] + copies + pieces[-1:]  # copies arriving after completion would start anew
    else:
        pieces = [packet]
    return linktype, [framer(p) for p in pieces]


mutation = st.tuples(st.sampled_from(["flip", "set", "cut", "insert", "delete"]), st.integers(0, 2**16),
                     st.integers(0, 255))


def mutate(frame: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    for op, where, value in mutations:
        if not frame:
            break
        at = where % len(frame)
        if op == "flip":
            frame = frame[:at] + bytes([frame[at] ^ (1 << value % 8)]) + frame[at + 1 :]
        elif op == "set":
            frame = frame[:at] + bytes([value]) + frame[at + 1 :]
        elif op == "cut":
            frame = frame[:at]
        elif op == "insert":
            frame = frame[:at] + bytes([value]) + frame[at:]
        else:
            frame = frame[:at] + frame[at + 1 :]
    return frame


PROPERTY_SETTINGS = settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(linktype=st.sampled_from(ALL_LINKTYPES), frames=st.lists(st.binary(max_size=120), max_size=4))
def test_arbitrary_bytes_never_raise(linktype: int, frames: list[bytes]) -> None:
    Run(linktype, frames)


@PROPERTY_SETTINGS
@given(case=frame_sequences())
def test_valid_frames_decode_to_the_packet_that_was_built(case: tuple[int, list[bytes]]) -> None:
    linktype, frames = case
    run = Run(linktype, frames)
    assert len(run.decoded) == 1, run.stats.as_dict()
    assert not run.stats.errors


@PROPERTY_SETTINGS
@given(case=frame_sequences(),
       mutations=st.lists(st.tuples(st.integers(0, 10), st.lists(mutation, max_size=3)), max_size=4),
       verify=st.booleans())
def test_mutated_frames_never_raise_and_both_decoders_agree(
    case: tuple[int, list[bytes]], mutations: list[tuple[int, list[tuple[str, int, int]]]], verify: bool
) -> None:
    linktype, frames = case
    for index, ops in mutations:
        frames[index % len(frames)] = mutate(frames[index % len(frames)], ops)
    Run(linktype, frames, verify_checksums=verify)


# -- the C batch fast path --------------------------------------------------------------------------
#
# testkit.decoding.Run (check_batch_path) compares its batches with frame-by-frame decoding on every frame drawn
# here. These tests check that it is built, that it takes the frames it is meant to take (so those
# comparisons exercise it), and that batch records it cannot trust never make it read astray.

needs_c = pytest.mark.skipif(decode._fastdecode is None, reason="the C fast path is turned off or not built")


def test_c_fast_path_is_built() -> None:
    """`pip install` builds it; only ICMPSENSOR_PURE_PYTHON turns it off."""
    assert decode.ACCELERATED or os.environ.get("ICMPSENSOR_PURE_PYTHON")


def _c_batch(linktype: int, frames: Sequence[bytes], verify: bool = True,
             skipped: list[int] | None = None) -> tuple[list, list[int]]:
    buf, meta = b"", b""
    for i, frame in enumerate(frames):
        meta += BATCH_META.pack(1000 + i, 250_000, len(buf), len(frame))
        buf += frame
    counts = [0] * 512
    link = decode._C_LINKS.get(linktype)
    assert link is not None
    return decode._fastdecode.decode_batch(buf, meta, link, verify, counts, [0, 0] if skipped is None else skipped)


NOT_ICMP = [  # a SPAN port's other traffic, in a replayed capture (a live capture filters it out with BPF): the
    # dpkt path took ~4 us a frame to skip it
    ("udp", craft.ether(craft.udp4(A4, B4, payload=b"q" * 60)), "not_icmp"),
    ("tcp", craft.ether(craft.ipv4(A4, B4, 6, bytes(40))), "not_icmp"),
    ("udp fragment", craft.ether(craft.ipv4(A4, B4, 17, bytes(24), flags_offset=0x2000)), "not_icmp"),
    ("udp with options", craft.ether(craft.ipv4(A4, B4, 17, bytes(8), options=b"\x94\x04\0\0")), "not_icmp"),
    ("udp6", craft.ether(craft.udp6(A6, B6)), "not_icmp"),
    ("esp6", craft.ether(craft.ipv6(A6, B6, 50, bytes(16))), "not_icmp"),
    ("arp", craft.arp(), "not_ip"),
    ("vlan arp", craft.ether(bytes(28), vlans=(5,), ethertype=0x0806), "not_ip"),
]


@needs_c
@pytest.mark.parametrize(("why", "frame", "reason"), NOT_ICMP, ids=[why for why, *_ in NOT_ICMP])
def test_c_fast_path_skips_what_is_not_icmp_and_counts_it_as_the_python_path_does(
        why: str, frame: bytes, reason: str) -> None:
    skipped = [0, 0]
    packets, rest = _c_batch(1, [frame], skipped=skipped)
    assert rest == [] and packets == [None]
    assert dict(zip(decode.C_SKIPPED, skipped, strict=True)) == {"not_ip": 0, "not_icmp": 0, reason: 1}
    run = Run(1, [frame])  # the C batch, frame by frame and dpkt agree
    assert run.decoded == [] and run.stats.skipped == {reason: 1}


_C_LINKS = [(name, framing) for name, framing in LINK_FRAMINGS if framing[0] not in (0, 108)]  # NULL, LOOP


@needs_c
@pytest.mark.parametrize(("name", "framing"), _C_LINKS, ids=[name for name, _ in _C_LINKS])
def test_c_fast_path_takes_the_common_frames(name: str, framing: tuple[int, Framer]) -> None:
    linktype, framer = framing
    if name == "ipv6":
        ips = [craft.icmp6(A6, B6, 128, 0, 1, 2, b"x" * 33), craft.icmp6(A6, B6, 1, 4, payload=bytes(40))]
    elif name == "ipv4":
        ips = [craft.icmp4(A4, B4, 8, 0, 1, 2, b"x" * 33), craft.icmp4(A4, B4, 3, 3, payload=bytes(28))]
    else:
        ips = [craft.icmp4(A4, B4, 8, 0, 1, 2, b"x" * 33), craft.icmp4(A4, B4, 3, 3, payload=bytes(28)),
               craft.icmp6(A6, B6, 129, 0, 7, 8, b"y" * 56), craft.icmp6(A6, B6, 2, 0, payload=bytes(48))]
    packets, rest = _c_batch(linktype, [framer(ip) for ip in ips])
    assert rest == [] and len(packets) == len(ips)
    assert [p.ts for p in packets] == [1000.25 + i for i in range(len(ips))]


def _ipv4_options(options: bytes = b"\x94\x04\0\0", message: bytes | None = None) -> bytes:
    message = craft.icmp4_message(8, 0, 5, 6, b"o") if message is None else message
    return craft.ipv4(A4, B4, craft.PROTO_ICMP, message, options=options)


OPTION_FRAMES = [  # what the C path takes beyond the plain headers (a sender that adds an option must not make
    # every packet ~30 times as costly: the dpkt path took 9-13 us a frame)
    ("router alert", _ipv4_options()),
    ("record route, then NOPs", _ipv4_options(bytes([7, 11, 4]) + bytes(8) + b"\x01\x01\x01")),
    ("EOL then data", _ipv4_options(b"\x00secret!")),
    ("40 bytes of options", _ipv4_options(bytes([0x44, 40, 5, 0]) + bytes(36))),
    ("unparsable tail", _ipv4_options(b"\x94\x09\0\0")),
    ("options, unreachable", _ipv4_options(message=craft.icmp4_message(3, 3, 0, 0, bytes(28)))),
    ("hop-by-hop", craft.icmp6(A6, B6, 128, 0, 1, 2, b"x", ext_headers=[craft.hop_by_hop(b"\x05\x02\0\0")])),
    ("hop-by-hop and destination options", craft.icmp6(A6, B6, 129, 0, 3, 4, b"yy", ext_headers=[
        craft.hop_by_hop(), craft.dest_opts(b"\x01\x02ab\x00\x1e\x02zz")])),
    ("padding only", craft.icmp6(A6, B6, 1, 4, payload=bytes(48), ext_headers=[craft.dest_opts()])),
    ("15 destination options headers", craft.icmp6(A6, B6, 128, 0, 1, 2, b"z", ext_headers=[
        craft.dest_opts(bytes([0x1e, 2, i, i])) for i in range(15)])),
    ("150 destination options headers", craft.icmp6(A6, B6, 128, 0, 1, 2, b"z", ext_headers=[
        craft.hop_by_hop()] + [craft.dest_opts(bytes([0x1e, 2, i % 256, 7])) for i in range(150)])),
]


option_areas = st.binary(max_size=40) | st.lists(st.sampled_from(
    [b"\x00", b"\x01", b"\x94\x04\0\0", bytes([7, 7, 4]) + bytes(4), b"\x44\x0c\x05\x00" + bytes(8), b"\x86\x03x"]),
    max_size=10).map(lambda parts: b"".join(parts)[:40])
v6_option_parts = st.sampled_from(
    [b"\x00", b"\x01\x00", b"\x01\x03\0\0\0", b"\x01\x02ab", b"\x05\x02\0\0", b"\xc2\x04\0\0\xff\xff"])
# short areas, and long ones of more items than MAX_OPTION_ITEMS (padded to a whole header by craft)
v6_option_areas = st.binary(max_size=30) | st.lists(v6_option_parts, max_size=6).map(b"".join) | \
    st.lists(v6_option_parts, min_size=60, max_size=140).map(lambda parts: b"".join(parts)[:2000])


@PROPERTY_SETTINGS
@given(options=option_areas, v6_headers=st.lists(st.tuples(st.booleans(), v6_option_areas), max_size=4),
       icmp_type=st.sampled_from([8, 0, 3, 13]))
def test_options_and_option_headers_of_any_bytes_decode_alike_on_every_path(
        options: bytes, v6_headers: list[tuple[bool, bytes]], icmp_type: int) -> None:
    """Run holds the C batch path, the frame-by-frame path and dpkt's equal on every frame."""
    message = craft.icmp4_message(icmp_type, 0, 1, 2, b"payload")
    ip4 = craft.ipv4(A4, B4, craft.PROTO_ICMP, message, options=options)
    headers = [craft.hop_by_hop(area) if hop and i == 0 else craft.dest_opts(area)
               for i, (hop, area) in enumerate(v6_headers)]
    ip6 = craft.icmp6(A6, B6, 128 if icmp_type == 8 else 1, 0, 1, 2, b"payload", ext_headers=headers)
    run = Run(1, [craft.ether(ip4), craft.ether(ip6)])
    assert len(run.decoded) == 2


@needs_c
@pytest.mark.parametrize(("why", "ip"), OPTION_FRAMES, ids=[why for why, _ in OPTION_FRAMES])
def test_c_fast_path_takes_ipv4_options_and_ipv6_option_headers(why: str, ip: bytes) -> None:
    """As the Python decoder reads them (Run holds the C batch, frame by frame and dpkt equal), options and all."""
    packets, rest = _c_batch(1, [craft.ether(ip)])
    assert rest == [] and packets[0] is not None
    reference = Run(1, [(1000.25, craft.ether(ip))]).only
    assert packets[0] == reference


@needs_c
@pytest.mark.parametrize(("why", "ip"), [
    ("fragment", craft.fragment4(craft.icmp4(A4, B4, 8, 0, 1, 1, bytes(64)), 16)[0]),
    ("udp behind a header length below 5", b"\x44" + craft.udp4(A4, B4)[1:]),  # bad_ip_header, not a skip
    ("udp6 behind version 4", b"\x46" + craft.udp6(A6, B6)[1:]),
    ("routing header", craft.icmp6(A6, B6, 128, ext_headers=[craft.routing(0, 0)])),
    ("too many extension headers", craft.icmp6(A6, B6, 128, ext_headers=[craft.dest_opts()] * MAX_EXT_HEADERS)),
    ("hop-by-hop not first", craft.icmp6(A6, B6, 128, ext_headers=[craft.dest_opts(), craft.hop_by_hop()])),
    ("ipv6 fragment header", craft.fragment6(craft.icmp6(A6, B6, 128, payload=bytes(64)), 16)[0]),
    ("bad header checksum with options", craft.ipv4(A4, B4, craft.PROTO_ICMP, craft.icmp4_message(8, 0, 5, 6, b"o"),
                                                   options=b"\x94\x04\0\0", bad_checksum=True)),
    ("options longer than the packet", craft.ipv4(A4, B4, craft.PROTO_ICMP, b"", options=bytes(8),
                                                 total_length=26)),
    ("bad icmp checksum", craft.icmp4(A4, B4, 8, payload=b"abc", bad_checksum=True)),
    ("bad icmpv6 checksum", craft.icmp6(A6, B6, 128, payload=b"abc", bad_checksum=True)),
    ("short message", craft.ipv4(A4, B4, craft.PROTO_ICMP, b"\x08\0\xf7\xff")),
    ("truncated", craft.icmp4(A4, B4, 8, payload=bytes(30))[:-1]),
])
def test_c_fast_path_leaves_every_other_frame_to_python(why: str, ip: bytes) -> None:
    good = craft.ether(craft.icmp4(A4, B4, 8))
    packets, rest = _c_batch(1, [good, craft.ether(ip), good])
    assert rest == [1] and packets[1] is None
    assert packets[0].payload == packets[2].payload == b"" and packets[2].ts == 1002.25


meta_records = st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                                  st.one_of(st.integers(0, 300), st.integers(0, 2**32 - 1)),
                                  st.one_of(st.integers(0, 300), st.integers(0, 2**32 - 1))), max_size=6)


@needs_c
@PROPERTY_SETTINGS
@given(linktype=st.sampled_from(ALL_LINKTYPES), frames=st.lists(st.binary(max_size=120), max_size=3),
       records=meta_records)
def test_c_fast_path_with_any_batch_records_agrees_with_python(
    linktype: int, frames: list[bytes], records: list[tuple[int, int, int, int]]
) -> None:
    """Records whose frame lies outside the buffer, overlaps others or is cut anywhere: the C path reads
    nothing outside the buffer and gives what the Python batch path gives (or raises what it raises)."""
    good = craft.ether(craft.icmp4(A4, B4, 8, 0, 1, 2, b"data"))
    buf = b"".join([good, *frames])
    meta = b"".join(BATCH_META.pack(*r) for r in records) + BATCH_META.pack(0, 0, 0, len(good))
    results = []
    for accelerated in (True, False):
        stats = DecodeStats()
        try:
            outcome: object = Decoder(linktype, stats, accelerated=accelerated).decode_batch(buf, meta)
        except (IndexError, struct.error) as exc:  # what Python's slicing/unpacking raises on such records
            outcome = type(exc)
        results.append((outcome, stats))
    assert results[0] == results[1]


@needs_c
def test_c_fast_path_refuses_a_record_type_it_cannot_fill() -> None:
    import dataclasses

    @dataclasses.dataclass(slots=True)
    class Wider(IcmpPacket):
        extra: int = 0

    @dataclasses.dataclass
    class NoSlots:
        ts: float

    for wrong in (Wider, NoSlots, int):
        with pytest.raises(TypeError):
            decode._fastdecode.bind(wrong, VLAN_TPIDS)
    for tpids in ((1, 2, 3, 4, 5, 6, 7, 8, 9), (0x10000,), ("x",)):
        with pytest.raises((TypeError, ValueError)):
            decode._fastdecode.bind(IcmpPacket, tpids)
    decode._fastdecode.bind(IcmpPacket, VLAN_TPIDS)  # what decode/fast.py bound stays usable
    assert _c_batch(1, [craft.ether(craft.icmp4(A4, B4, 8))])[1] == []


@needs_c
def test_c_fast_path_shares_the_objects_of_recurring_values() -> None:
    """The records of one host pair share their address objects (within and across batches), and 16-bit fields of
    equal value one int: no allocation, and each address hashed once for the detector's tables."""
    frames = [craft.ether(craft.icmp4(A4, B4, 8, 0, 0x1234, 1000 + i, b"x" * 56)) for i in range(3)]
    frames += [craft.ether(craft.icmp6(A6, B6, 128, 0, 0x1234, 1000, b"y" * 56))]
    first, rest = _c_batch(1, frames)
    second, _ = _c_batch(1, frames)
    assert rest == []
    packets = [*first, *second]
    v4 = [p for p in packets if not p.ipv6]
    assert all(p.src is v4[0].src and p.dst is v4[0].dst for p in v4)
    assert packets[3].src is packets[7].src and packets[3].dst is packets[7].dst
    assert all(p.ident is v4[0].ident for p in packets) and packets[0].seq is packets[3].seq is packets[4].seq
    assert packets[0].wire_len is packets[1].wire_len


@needs_c
@PROPERTY_SETTINGS
@given(hosts=st.lists(st.one_of(st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
                                st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))),
                      min_size=2, max_size=60),
       picks=st.lists(st.tuples(st.integers(0, 59), st.integers(0, 59)), min_size=1, max_size=80),
       numbers=st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=2))
def test_c_fast_path_shares_only_equal_values(hosts: list[str], picks: list[tuple[int, int]],
                                              numbers: list[int]) -> None:
    """Any addresses of both families, between any pairs, and any 16-bit values: every record has the addresses and
    numbers of its own frame."""
    frames, want = [], []
    for a, b in picks:
        src, dst = hosts[a % len(hosts)], hosts[b % len(hosts)]
        if ":" in src or ":" in dst:
            src, dst = (h if ":" in h else "::ffff:" + h for h in (src, dst))
            frames.append(craft.ether(craft.icmp6(src, dst, 128, 0, numbers[0], numbers[1], b"z" * 9)))
        else:
            frames.append(craft.ether(craft.icmp4(src, dst, 8, 0, numbers[0], numbers[1], b"z" * 9)))
        want.append((addr(src), addr(dst), numbers[0], numbers[1]))
    for _ in range(2):
        packets, rest = _c_batch(1, frames)
        assert rest == []
        assert [(p.src, p.dst, p.ident, p.seq) for p in packets] == want


@needs_c
def test_c_fast_path_addresses_that_take_one_anothers_place_stay_right() -> None:
    """10,000 sources in a table of 4,096 places a family: each place is taken over and over (a spoofed flood), and
    every record still has its own frame's source, before and after."""
    sources = [str(ipaddress.IPv4Address(0x0A000000 + 7919 * i)) for i in range(10_000)]
    sources6 = [f"2001:db8::{i:x}:1" for i in range(5_000)]
    frames = [craft.ether(craft.icmp4(s, B4, 8, 0, 1, 2, b"q")) for s in sources]
    frames += [craft.ether(craft.icmp6(s, B6, 128, 0, 1, 2, b"q")) for s in sources6]
    want = [addr(s) for s in [*sources, *sources6]]
    for order in (1, -1):
        packets, rest = _c_batch(1, frames[::order])
        assert rest == [] and [p.src for p in packets] == want[::order]


# -- work bounded: an option area is read no further than a real one --------------------------------------------




@pytest.mark.parametrize("area", [bytes(2046), b"\x01\x00" * 1023, b"\x00\x01\x00" * 682, b"\x1e\x00" * 1023],
                         ids=["Pad1", "PadN", "Pad1 and PadN", "unknown options"])
def test_an_option_area_is_read_item_by_item_up_to_max_option_items(area: bytes) -> None:
    """A 2 KB hop-by-hop or destination options header (sixteen of them in a packet) of padding or of empty options:
    a run of Pad1 is one item, and past MAX_OPTION_ITEMS items the rest is kept whole, as a tail that does not
    parse (no sender puts more than a few options in a header). Read byte by byte, such a packet cost the decoder
    ~3.5 ms."""
    from icmpsensor.decode.ip import MAX_OPTION_ITEMS, sender_options

    assert lines_run(lambda: sender_options(area, True)) <= 12 * MAX_OPTION_ITEMS
    kept = sender_options(area, True)
    if area == bytes(2046):
        assert kept == b""  # one run of padding
    elif area[0] == 0x1E:
        assert kept == area  # options, then the rest: all of it kept
    else:
        assert 0 < len(kept) < len(area)  # padding dropped up to the budget, the rest kept


def test_options_within_max_option_items_are_read_as_before() -> None:
    """Up to the budget an area is read as always (padding dropped, options kept); past it the rest is kept whole."""
    from icmpsensor.decode.ip import MAX_OPTION_ITEMS, sender_options

    option = b"\x1e\x01z"
    assert sender_options(b"\x00\x00" + option * (MAX_OPTION_ITEMS - 1), True) == option * (MAX_OPTION_ITEMS - 1)
    padded = (b"\x01\x00" + option) * (MAX_OPTION_ITEMS // 2 + 3)
    full, extra = divmod(MAX_OPTION_ITEMS, 2)  # a PadN and an option are two items
    assert sender_options(padded, True) == option * full + padded[5 * full + 2 * extra :]
