"""ICMP messages other than echo: what their layout explains, and what it does not."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.detect.nonecho import unexplained_bytes
from testkit import benign_corpus as corpus
from tests.python_lines import lines_run

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUTER, ROUTER6 = "203.0.113.1", "2001:db8:ff::1"


def packed(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def message(icmp_type: int, code: int, payload: bytes, *, src: str = ROUTER, dst: str = corpus.CLIENT,
            ts: float = 1.0) -> IcmpPacket:
    ipv6 = ":" in src
    return IcmpPacket(ts, packed(src), packed(dst), ipv6, icmp_type, code, -1, -1, payload, len(payload) + 42)


def unreachable_payload(style: str, data: bytes = b"q" * 100) -> bytes:
    udp = corpus.udp_datagram(corpus.CLIENT, corpus.SERVER, 40000, 53, data)
    datagram = corpus.ipv4_header(corpus.CLIENT, corpus.SERVER, 17, len(udp), ttl=64, ident=1) + udp
    return bytes(4) + corpus.quote4(datagram, style)


@pytest.mark.parametrize("style", ["rfc792", "linux"])
@pytest.mark.parametrize("kind", [(3, 3), (11, 0), (3, 1)])
def test_plausible_error_quotes_are_explained(style: str, kind: tuple[int, int]) -> None:
    assert unexplained_bytes(message(*kind, unreachable_payload(style))) == (0, "")


def test_an_error_longer_than_an_error_can_be_carries_the_excess() -> None:
    """RFC 1812 4.3.2.3 (Linux, FreeBSD: 548 bytes of quote), RFC 4443 2.4 (c): an error fits in 576 bytes (IPv4)
    or the minimum MTU (IPv6). A plausible quote of a 1,400-byte datagram "from the collector" carried its data free
    (280 KB in 2 s; red team, 2026-12-08): the bytes past what an error holds are charged."""
    data = bytes(range(256)) * 6
    udp = corpus.udp_datagram(corpus.CLIENT, corpus.SERVER, 40000, 53, data[:1400])
    whole = corpus.ipv4_header(corpus.CLIENT, corpus.SERVER, 17, len(udp), ttl=64, ident=1) + udp
    novel, reason = unexplained_bytes(message(3, 3, bytes(4) + whole))
    assert novel == 4 + len(whole) - 552 and "longest" in reason, (novel, reason)
    assert unexplained_bytes(message(3, 3, bytes(4) + whole[:548])) == (0, "")  # Linux's quote: free
    udp6 = struct.pack("!HHHH", 50000, 33434, 8 + 1400, 0) + data[:1400]
    whole6 = corpus.ipv6_header(corpus.CLIENT6, corpus.SERVER6, 17, len(udp6), hop_limit=3) + udp6
    novel, reason = unexplained_bytes(message(3, 0, bytes(4) + whole6, src=ROUTER6, dst=corpus.CLIENT6))
    assert novel == 4 + len(whole6) - 1236 and "longest" in reason, (novel, reason)
    assert unexplained_bytes(message(3, 0, bytes(4) + whole6[:1232], src=ROUTER6, dst=corpus.CLIENT6)) == (0, "")


def test_quote_longer_than_the_datagram_is_not() -> None:
    payload = unreachable_payload("linux")  # the whole 128-byte datagram
    novel, reason = unexplained_bytes(message(3, 3, payload + b"EXTRA"))
    assert novel == len(payload) + 5 and "longer" in reason


def test_quote_of_a_packet_the_receiver_did_not_send_is_not() -> None:
    novel, reason = unexplained_bytes(message(3, 3, unreachable_payload("rfc792"), dst="192.0.2.99"))
    assert novel and "not sent by" in reason


@FAST
@given(pos=st.sampled_from([0, 2, 3]), value=st.integers(1, 255))
def test_unused_bytes_must_be_zero(pos: int, value: int) -> None:
    payload = bytearray(unreachable_payload("linux"))
    payload[pos] = value
    assert unexplained_bytes(message(3, 3, bytes(payload)))[0] == len(payload)
    assert unexplained_bytes(message(11, 0, bytes(payload)))[0] == len(payload)


@FAST
@given(pos=st.integers(4, 23), value=st.integers(0, 255))
def test_quoted_header_must_be_intact(pos: int, value: int) -> None:
    payload = bytearray(unreachable_payload("rfc792"))
    assume(payload[pos] != value)
    payload[pos] = value
    assert unexplained_bytes(message(3, 3, bytes(payload)))[0] == len(payload)


def test_fragmentation_needed_carries_a_plausible_mtu() -> None:
    body = unreachable_payload("rfc792", b"z" * 1400)[4:]
    assert unexplained_bytes(message(3, 4, b"\0\0" + struct.pack("!H", 1400) + body))[0] == 0
    assert unexplained_bytes(message(3, 4, b"\0\0" + struct.pack("!H", 9000) + body))[0] > 0
    assert unexplained_bytes(message(3, 4, b"\0\0" + struct.pack("!H", 12) + body))[0] > 0


def test_a_next_hop_mtu_the_quoted_datagram_fits_is_named_as_such() -> None:
    """A fragmentation-needed whose next-hop MTU is not below the quoted datagram's length (which that link would
    have carried) is told as that, not as unused bytes that are not zero (red team, case 53's first capture)."""
    body = unreachable_payload("rfc792", b"z" * 1400)[4:]
    total = struct.unpack_from("!H", body, 2)[0]
    for mtu in (total, 9000, 12):
        novel, reason = unexplained_bytes(message(3, 4, b"\0\0" + struct.pack("!H", mtu) + body))
        assert novel > 0 and reason == f"next-hop MTU {mtu} is not one a {total}-byte datagram is refused for", reason
    novel, reason = unexplained_bytes(message(3, 4, b"\1\0" + struct.pack("!H", 1400) + body))
    assert reason == "unused header bytes of the error message are not zero", reason


def first_fragment_quote(udp_data: int, fragment_payload: int, *, offset: int = 0, more: bool = True) -> bytes:
    """An error's payload quoting, as Linux does (548 bytes at most), a fragment of a UDP datagram with `udp_data`
    bytes of data: the fragment's own IPv4 header (its total length, MF, its offset in 8-byte units) and the first
    `fragment_payload` bytes of the datagram's UDP header and data."""
    udp = corpus.udp_datagram(corpus.CLIENT, corpus.SERVER, 41000, 33435, bytes(range(256)) * (udp_data // 256 + 1))
    udp = udp[: 8 + udp_data]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + fragment_payload, 0x1234,
                         (0x2000 if more else 0) | offset, 2, 17, 0, packed(corpus.CLIENT), packed(corpus.SERVER))
    header = header[:10] + struct.pack("!H", corpus.checksum(header)) + header[12:]
    return bytes(4) + corpus.quote4(header + udp[offset * 8: offset * 8 + fragment_payload], "linux")


@pytest.mark.parametrize("kind", [(11, 0), (11, 1)], ids=["ttl", "reassembly"])
def test_an_error_quoting_the_first_fragment_of_a_udp_datagram_is_explained(kind: tuple[int, int]) -> None:
    """traceroute's probes past the MTU (`traceroute host 2000`: UDP, no DF) are sent in fragments, and a router
    answers the first with time exceeded; a host whose reassembly times out quotes the first fragment too (RFC 792).
    The quoted UDP length is the whole datagram's, longer than the fragment (red team, 2026-12-08: charged whole,
    NonEchoPayload from the routers of a traceroute)."""
    assert unexplained_bytes(message(*kind, first_fragment_quote(1972, 1480))) == (0, "")
    assert unexplained_bytes(message(*kind, first_fragment_quote(8192, 1480))) == (0, "")


def test_a_fragments_quote_whose_udp_length_it_does_not_reach_is_not() -> None:
    # a first fragment longer than its datagram's UDP length says (data after the datagram's end), and a quote of a
    # fragment other than the first (no error is sent for those, RFC 1122 3.2.2: its bytes are no UDP header)
    payload = bytearray(first_fragment_quote(1972, 1480))
    struct.pack_into("!H", payload, 4 + 20 + 4, 1000)
    novel, reason = unexplained_bytes(message(11, 0, bytes(payload)))
    assert novel and reason == "quoted UDP header does not match its datagram", reason
    assert unexplained_bytes(message(11, 0, first_fragment_quote(1972, 504, offset=185, more=False)))[0] > 0


def test_rfc4884_extensions_as_routers_send_them_with_mpls() -> None:
    udp = corpus.udp_datagram(corpus.CLIENT, corpus.SERVER, 40000, 33434, b"\0" * 200)
    datagram = corpus.ipv4_header(corpus.CLIENT, corpus.SERVER, 17, len(udp), ttl=1, ident=7) + udp
    quoted = datagram[:128]
    extension = bytes([0x20, 0, 0, 0]) + struct.pack("!HBB", 8, 1, 1) + struct.pack("!I", (16 << 12) | 0x100 | 1)
    payload = bytes([0, 32, 0, 0]) + quoted + extension  # length: 32 words of quote
    assert unexplained_bytes(message(11, 0, payload)) == (0, "")
    bad = bytes([0, 32, 0, 0]) + quoted + b"\x90" + extension[1:]  # unknown extension version
    assert unexplained_bytes(message(11, 0, bad))[0] == len(bad)


def test_ipv6_errors() -> None:
    udp = struct.pack("!HHHH", 50000, 33434, 8 + 1500, 0) + bytes(1500)
    datagram = corpus.ipv6_header(corpus.CLIENT6, corpus.SERVER6, 17, len(udp), hop_limit=3) + udp
    quoted = corpus.quote6(datagram)
    assert unexplained_bytes(message(3, 0, bytes(4) + quoted, src=ROUTER6, dst=corpus.CLIENT6))[0] == 0
    assert unexplained_bytes(message(2, 0, struct.pack("!I", 1280) + quoted, src=ROUTER6, dst=corpus.CLIENT6))[0] == 0
    spoofed = message(1, 4, bytes(4) + quoted, src=ROUTER6, dst="2001:db8::99")
    assert unexplained_bytes(spoofed)[0] > 0


def test_ipv6_errors_carry_only_what_their_type_defines_in_their_header() -> None:
    """RFC 4443: bytes 4-7 are unused (zero) in unreachable and time exceeded but for RFC 4884's length, a packet too
    big's MTU (the IPv6 minimum or more, less than the packet's size), a parameter problem's pointer (an offset in
    the packet). They went unchecked: 4 bytes an error (red team, 2026-12-08)."""
    udp = struct.pack("!HHHH", 50000, 33434, 8 + 1500, 0) + bytes(1500)
    quoted = corpus.quote6(corpus.ipv6_header(corpus.CLIENT6, corpus.SERVER6, 17, len(udp), hop_limit=3) + udp)

    def charged(icmp_type: int, rest: bytes, code: int = 0) -> int:
        return unexplained_bytes(message(icmp_type, code, rest + quoted, src=ROUTER6, dst=corpus.CLIENT6))[0]

    assert charged(1, bytes(4), 4) == charged(3, bytes(4)) == 0
    assert charged(1, b"\0\0\0\x2a", 4) == charged(3, b"\0DAT") == 4 + len(quoted)
    assert charged(2, struct.pack("!I", 1280)) == charged(2, struct.pack("!I", 1500)) == 0
    assert charged(2, struct.pack("!I", 1548)) == charged(2, b"DATA") == charged(2, struct.pack("!I", 576)) > 0
    assert charged(4, struct.pack("!I", 6)) == charged(4, struct.pack("!I", 1547)) == 0
    assert charged(4, struct.pack("!I", 1548)) == charged(4, b"DATA") > 0


@pytest.mark.parametrize(("icmp_type", "size"), [(13, 16), (14, 16), (17, 8), (10, 4)])
def test_fixed_size_types_explain_exactly_their_body(icmp_type: int, size: int) -> None:
    body = bytes(size)
    assert unexplained_bytes(message(icmp_type, 0, body, dst=corpus.SERVER)) == (0, "")
    novel, reason = unexplained_bytes(message(icmp_type, 0, body + b"secret data", dst=corpus.SERVER))
    assert novel == 11 and "beyond" in reason


def test_timestamp_fields_must_be_times_of_day() -> None:
    good = struct.pack("!HHIII", 1, 1, 3_600_000, 0, 0)
    assert unexplained_bytes(message(13, 0, good, ts=3600.0))[0] == 0
    smuggled = struct.pack("!HHIII", 1, 1, 0x41414141 & 0x7FFFFFFF, 0, 0)
    assert unexplained_bytes(message(13, 0, smuggled, ts=3600.0))[0] == 4


@pytest.mark.parametrize("icmp_type", [1, 2, 6, 7, 19, 30, 37, 44, 100, 200, 253, 255])
def test_unassigned_and_deprecated_types_explain_nothing(icmp_type: int) -> None:
    assert unexplained_bytes(message(icmp_type, 0, b"hello"))[0] == 5
    assert unexplained_bytes(message(icmp_type, 0, b""))[0] == 0


def test_echo_with_a_non_zero_code() -> None:
    novel, reason = unexplained_bytes(message(8, 2, b"file chunk 17: " * 4, dst=corpus.SERVER))
    assert novel == 61 and reason == "echo with code 2"  # the payload and the code
    # nmap's OS detection: code 9, zero-filled: a benign template, nothing unexplained.
    assert unexplained_bytes(message(8, 9, bytes(120), dst=corpus.SERVER)) == (0, "")


@settings(max_examples=300, deadline=None)
@given(kind=st.integers(0, 255), code=st.integers(0, 255), payload=st.binary(max_size=600), v6=st.booleans())
def test_never_raises(kind: int, code: int, payload: bytes, v6: bool) -> None:
    pkt = message(kind, code, payload, src=ROUTER6 if v6 else ROUTER, dst=corpus.CLIENT6 if v6 else corpus.CLIENT)
    novel, _ = unexplained_bytes(pkt)
    assert 0 <= novel <= len(payload) + (kind in (0, 8, 128, 129))  # an echo's code byte


# -- what each field of the informational types may carry ------------------------------------------

NOON = corpus.START - corpus.START % 86_400 + 43_200.0  # 12:00:00 UT
NOON_MS = 43_200_000


def echo_request(code: int, payload: bytes) -> IcmpPacket:
    pkt = message(8, code, payload, src=corpus.CLIENT, dst=corpus.SERVER, ts=corpus.START)
    pkt.ident, pkt.seq = 1, 7
    return pkt


@pytest.mark.parametrize("code", [1, 9, 65, 255])
def test_a_non_zero_echo_code_costs_its_byte_even_on_a_benign_payload(code: int) -> None:
    assert unexplained_bytes(echo_request(code, corpus.windows_payload(32)))[0] == 1
    assert unexplained_bytes(echo_request(code, b""))[0] == 1


def test_nmap_os_detection_probes_stay_free() -> None:
    # nmap osscan2.cc sendTIcmpProbe(): code 9 with 120 zero bytes (the other IE probe is code 0, 150 bytes)
    assert unexplained_bytes(echo_request(9, bytes(120))) == (0, "")
    assert unexplained_bytes(echo_request(9, bytes(150)))[0] == 1
    assert unexplained_bytes(echo_request(8, bytes(120)))[0] == 1


def timestamp(kind: int, ident: int, seq: int, *times: int, ts: float = NOON) -> IcmpPacket:
    return message(kind, 0, struct.pack("!HHIII", ident, seq, *times), src=corpus.CLIENT, dst=corpus.SERVER, ts=ts)


@pytest.mark.parametrize(
    "times",
    [(0, 0, 0),  # nmap -PP (tcpip.cc build_icmp_raw: the three times zeroed)
     (NOON_MS - 3, 0, 0),  # hping3 --icmp-ts (sendicmp.c: originate = ms since midnight UT)
     (NOON_MS + 250_000, 0, 0)])  # a sender's clock within the tolerance
def test_timestamp_requests_real_senders_send(times: tuple[int, int, int]) -> None:
    assert unexplained_bytes(timestamp(13, 0x1234, 77, *times)) == (0, "")


def test_timestamp_request_around_midnight() -> None:
    midnight = NOON + 43_200.0 - 0.5  # 23:59:59.500 UT; a clock 1 s ahead reads 00:00:00.500
    assert unexplained_bytes(timestamp(13, 1, 1, 500, 0, 0, ts=midnight)) == (0, "")


@pytest.mark.parametrize(
    ("times", "charged"),
    [((0x0012_3456, 0, 0), 4),  # a time of day, hours away from the capture's
     ((0, 0x0001_0203, 0x0004_0506), 8),  # receive and transmit are the answerer's to fill in
     ((0x8000_0000 | 0x4142_4344, 0, 0), 4),  # RFC 792's "non-standard" high-bit time: 31 free bits
     ((0x8012_3456, 0x8000_0001, 0x8765_4321), 12),
     ((NOON_MS + 400_000, 0, 0), 4)])  # beyond the tolerance (300 s)
def test_timestamp_request_fields_that_carry_data(times: tuple[int, int, int], charged: int) -> None:
    novel, reason = unexplained_bytes(timestamp(13, 1, 1, *times))
    assert novel == charged and "timestamp" in reason


def test_timestamp_replies() -> None:
    # Linux net/ipv4/icmp.c icmp_timestamp(): originate copied, receive = transmit = ms since midnight UT
    assert unexplained_bytes(timestamp(14, 9, 9, NOON_MS - 20, NOON_MS - 5, NOON_MS - 5)) == (0, "")
    assert unexplained_bytes(timestamp(14, 9, 9, 0, NOON_MS, NOON_MS)) == (0, "")  # an nmap request answered
    assert unexplained_bytes(timestamp(14, 9, 9, 0x0012_3456, NOON_MS, NOON_MS))[0] == 4
    assert unexplained_bytes(timestamp(14, 9, 9, 0, 0x0000_1234, 0x0055_1234))[0] == 4  # transmit not receive's
    assert unexplained_bytes(timestamp(14, 9, 9, 0, 0x7FFF_FFFF, 0x7FFF_FFFF))[0] == 4  # no time of day at all


@pytest.mark.parametrize(("receive", "transmit"), [
    (NOON_MS + 7_200_000, NOON_MS + 7_200_001),  # a replier whose clock is two hours off (no NTP)
    (0x8000_1234, 0x8000_1234),  # RFC 792: "a non-standard value" with the high-order bit set
    (int.from_bytes(NOON_MS.to_bytes(4, "little"), "big"),) * 2,  # ms since midnight in host byte order
])
def test_timestamp_replies_from_wrong_or_non_standard_clocks_are_benign(receive: int, transmit: int) -> None:
    # A scanner's timestamp sweep (nmap -PP, a vulnerability scanner's date-disclosure check) gets replies
    # from printers, appliances and routers whatever their clocks: the replier's own times are free if they
    # read as a time at all, the transmit time up to a second after the receive time
    assert unexplained_bytes(timestamp(14, 9, 9, 0, receive, transmit)) == (0, "")


def test_truncated_timestamp_charges_what_it_holds() -> None:
    payload = struct.pack("!HHI", 1, 1, 0x4142_4344)[:7]
    assert unexplained_bytes(message(13, 0, payload, ts=NOON))[0] == 3


def test_address_mask() -> None:
    # nmap -PM (tcpip.cc build_icmp_raw) and hping3 --icmp-addr (sendicmp.c) send a zero mask
    assert unexplained_bytes(message(17, 0, struct.pack("!HHI", 0xBEEF, 3, 0))) == (0, "")
    assert unexplained_bytes(message(17, 0, b"DATAdata"))[0] == 4
    # a reply's mask is a contiguous prefix (RFC 950; RFC 4632 section 3.1)
    assert unexplained_bytes(message(18, 0, struct.pack("!HHI", 1, 3, 0xFFFF_FF00))) == (0, "")
    assert unexplained_bytes(message(18, 0, struct.pack("!HHI", 1, 3, 0xFF00_FF00)))[0] == 4


def test_information_request_is_deprecated_and_carries_what_it_has() -> None:
    # RFC 6918 formally deprecates types 15 and 16: no sender left, identifier and sequence are data
    assert unexplained_bytes(message(15, 0, b"DATA"))[0] == 4
    assert unexplained_bytes(message(16, 0, b"DA"))[0] == 2


def test_router_solicitation_v4_reserved_bytes() -> None:
    assert unexplained_bytes(message(10, 0, bytes(4))) == (0, "")
    assert unexplained_bytes(message(10, 0, b"\0AB\0"))[0] == 4  # RFC 1256 3.2: sent as 0


def router_advertisement(entries: list[tuple[str, int]], entry_size: int = 2, lifetime: int = 1800) -> bytes:
    """An ICMP router advertisement's payload (RFC 1256 3.1): its entries, each a router address and preference."""
    body = b"".join(packed(addr) + struct.pack("!i", preference) for addr, preference in entries)
    return struct.pack("!BBH", len(entries), entry_size, lifetime) + body


def test_router_advertisements_as_routers_send_them() -> None:
    # the router's address on the interface (its source), and its secondary addresses (iputils rdisc, IOS irdp)
    assert unexplained_bytes(message(9, 0, router_advertisement([(ROUTER, 0)]), dst="224.0.0.1")) == (0, "")
    two = router_advertisement([(ROUTER, 10), ("198.51.100.1", -2**31)])
    assert unexplained_bytes(message(9, 0, two, dst="224.0.0.1")) == (0, "")


def test_router_advertisement_entries_that_carry_data() -> None:
    """RFC 1256: an entry is 2 words (a router address, a preference), the sending router's addresses on the
    interface. An entry size of 255 words held 1,020 bytes a message, and 200 entries of any addresses 1,600
    (red team, 2026-12-08: neither charged)."""
    data = bytes(range(256)) * 4
    wide = struct.pack("!BBH", 1, 255, 1800) + data[:1020]
    novel, reason = unexplained_bytes(message(9, 0, wide))
    assert novel == 1020 and "entry size" in reason, reason
    many = router_advertisement([(ROUTER, 0)] + [(f"10.{i}.{i}.{i}", i) for i in range(1, 200)])
    novel, reason = unexplained_bytes(message(9, 0, many))
    assert novel == (200 - 8) * 8 and "addresses" in reason, reason
    foreign = router_advertisement([("10.9.8.7", 0), ("10.9.8.6", 0)])
    novel, reason = unexplained_bytes(message(9, 0, foreign))
    assert novel == 16 and "sender" in reason, reason


# -- ICMPv6: neighbour discovery, MLD, node information, extended echo -----------------------------

HOST6, PEER6, LL6 = "2001:db8:10::1001", "2001:db8:10::1002", "fe80::1001"
MAC = bytes.fromhex("020000011001")


def v6(icmp_type: int, payload: bytes, *, src: str = HOST6, dst: str = PEER6, code: int = 0) -> IcmpPacket:
    return message(icmp_type, code, payload, src=src, dst=dst)


def solicited_node(addr: str) -> str:
    return str(ipaddress.IPv6Address(bytes.fromhex("ff0200000000000000000001ff") + packed(addr)[13:]))


def test_neighbour_solicitations_as_hosts_send_them() -> None:
    slla = b"\x01\x01" + MAC
    # address resolution to the target's solicited-node group, NUD to the target itself (RFC 4861 7.2.2)
    assert unexplained_bytes(v6(135, bytes(4) + packed(PEER6) + slla, dst=solicited_node(PEER6))) == (0, "")
    assert unexplained_bytes(v6(135, bytes(4) + packed(PEER6))) == (0, "")
    # DAD from :: with an RFC 7527 nonce (Linux ndisc_ns_create: 6 bytes, one unit)
    dad = bytes(4) + packed(HOST6) + b"\x0e\x01" + b"\x11" * 6
    assert unexplained_bytes(v6(135, dad, src="::", dst=solicited_node(HOST6))) == (0, "")


def test_neighbour_solicitation_target_that_is_not_the_destinations() -> None:
    target = b"sixteen databyte"
    novel, reason = unexplained_bytes(v6(135, bytes(4) + target + b"\x01\x01" + MAC, dst="ff02::1:ff00:66"))
    assert novel == 16 and "target" in reason


def test_neighbour_solicitation_reserved_bytes() -> None:
    assert unexplained_bytes(v6(135, b"AB\0\0" + packed(PEER6)))[0] == 4


def test_nonce_option_longer_than_six_bytes() -> None:
    nonce = b"\x0e\x06" + bytes(range(46))  # 6 units: 40 bytes more than the 6-byte nonce hosts send
    payload = bytes(4) + packed(HOST6) + nonce
    assert unexplained_bytes(v6(135, payload, src="::", dst=solicited_node(HOST6)))[0] == 40


def test_a_neighbour_advertisement_of_a_multicast_target() -> None:
    # RFC 4861 7.1.2: a receiver discards an NA whose target is multicast; no host sends one
    tlla = b"\x02\x01" + MAC
    assert unexplained_bytes(v6(136, b"\x60\0\0\0" + packed(HOST6) + tlla, dst=PEER6)) == (0, "")
    novel, reason = unexplained_bytes(v6(136, b"\x60\0\0\0" + packed("ff0e::dead:beef") + tlla, dst=PEER6))
    assert novel == 16 and "multicast" in reason, reason


def test_send_options_longer_than_a_4096_bit_key_needs() -> None:
    """SEND's CGA and RSA signature options (RFC 3971 5.1, 5.2) hold a public key and a signature: a few hundred
    bytes up to a 4,096-bit key's. 1,008 bytes of anything in one were free (red team, 2026-12-08); RFC 8928's
    options hold an elliptic-curve key or signature (80 bytes at most)."""
    signature = b"\x0c\x7e" + bytes(range(256))[:254] * 4  # 126 units
    payload = b"\0\0\0\0" + signature[: 126 * 8]
    assert unexplained_bytes(v6(133, payload, src=LL6, dst="ff02::2"))[0] == (126 - 67) * 8
    rsa_2048 = b"\x0c\x23" + bytes(278)  # 35 units: key hash and a 2,048-bit signature
    assert unexplained_bytes(v6(133, b"\0\0\0\0" + rsa_2048, src=LL6, dst="ff02::2")) == (0, "")
    cga = b"\x0b\x30" + bytes(382)  # 48 units: a 2,048-bit key's CGA parameters
    assert unexplained_bytes(v6(133, b"\0\0\0\0" + cga, src=LL6, dst="ff02::2")) == (0, "")
    ndp_signature = b"\x28\x20" + bytes(254)  # RFC 8928 NDP signature of 32 units
    assert unexplained_bytes(v6(133, b"\0\0\0\0" + ndp_signature, src=LL6, dst="ff02::2"))[0] == (32 - 10) * 8


def test_nonce_option_outside_dad() -> None:
    # RFC 7527 puts a nonce in DAD solicitations only (source ::); SEND (RFC 3971) signs with CGA + RSA
    payload = bytes(4) + packed(PEER6) + b"\x01\x01" + MAC + b"\x0e\x01" + b"secret"
    assert unexplained_bytes(v6(135, payload))[0] == 8


def test_router_solicitation_carries_only_a_link_layer_address() -> None:
    assert unexplained_bytes(v6(133, bytes(4) + b"\x01\x01" + MAC, dst="ff02::2")) == (0, "")
    rdnss = b"\x19\x07\0\0" + struct.pack("!I", 600) + bytes(48)  # RFC 8106: an RA option, 56 bytes
    novel, reason = unexplained_bytes(v6(133, bytes(4) + b"\x01\x01" + MAC + rdnss, dst="ff02::2"))
    assert novel == 56 and "option" in reason


def redirect(target: str, destination: str, redirected: bytes, *, tlla: bytes = b"\x02\x01" + MAC) -> bytes:
    """A redirect's payload (RFC 4861 4.5): reserved, target, destination, a target link-layer address option and
    a redirected header option (4) holding `redirected` (zero-padded to 8 bytes)."""
    padded = redirected + bytes(-(len(redirected) + 8) % 8)
    option = bytes([4, (len(padded) + 8) // 8]) + bytes(6) + padded
    return bytes(4) + packed(target) + packed(destination) + tlla + option


def original_packet(src: str, dst: str, size: int = 1000) -> bytes:
    udp = struct.pack("!HHHH", 50000, 53, 8 + size, 0) + bytes(range(256)) * (size // 256) + bytes(size % 256)
    return corpus.ipv6_header(src, dst, 17, len(udp), hop_limit=64) + udp


def test_a_redirect_as_a_router_sends_it() -> None:
    # Linux ndisc_send_redirect: the packet that was redirected, as much of it as fits in 1280 bytes
    quoted = original_packet(HOST6, "2001:db8:99::53")[:1280 - 40 - 8 - 40 - 8 - 8]
    payload = redirect("fe80::2", "2001:db8:99::53", quoted)
    assert unexplained_bytes(v6(137, payload, src="fe80::1", dst=HOST6)) == (0, "")


def test_one_packet_triggered_a_redirect_a_second_redirected_header_carries_data() -> None:
    """RFC 4861 4.5: the packet that made the router redirect. A copy of it twice is no second such packet: charged
    whole (178 of them, each read in Python, cost 98 times a mix packet: red team, 2026-12-08)."""
    quoted = original_packet(HOST6, "2001:db8:99::53", 200)
    payload = redirect("fe80::2", "2001:db8:99::53", quoted)
    second = payload[-(len(payload) - 4 - 32 - 8):]  # the redirected header option again
    assert unexplained_bytes(v6(137, payload, src="fe80::1", dst=HOST6)) == (0, "")
    novel, reason = unexplained_bytes(v6(137, payload + second, src="fe80::1", dst=HOST6))
    assert novel == len(second), (novel, reason)
    many = payload + second * 177
    assert unexplained_bytes(v6(137, many, src="fe80::1", dst=HOST6))[0] == 177 * len(second)


def test_a_redirected_header_that_is_no_packet_the_host_sent_carries_data() -> None:
    """The redirected header option holds the packet that made the router redirect: an IPv6 header from the
    redirected host to the redirect's destination. 1,000 bytes of anything there were free (red team,
    2026-12-08)."""
    data = bytes(range(256)) * 4
    novel, reason = unexplained_bytes(v6(137, redirect("fe80::2", "2001:db8:99::53", data[:1000]),
                                         src="fe80::1", dst=HOST6))
    assert novel == 1008 and "redirected header" in reason, reason
    other_sender = original_packet(PEER6, "2001:db8:99::53", 200)
    assert unexplained_bytes(v6(137, redirect("fe80::2", "2001:db8:99::53", other_sender), src="fe80::1",
                                dst=HOST6))[0] == 8 + len(other_sender) + (-(len(other_sender) + 8) % 8)
    other_destination = original_packet(HOST6, "2001:db8:77::1", 200)
    assert unexplained_bytes(v6(137, redirect("fe80::2", "2001:db8:99::53", other_destination),
                                src="fe80::1", dst=HOST6))[0] > 200


def test_router_advertisement_options_of_a_real_router() -> None:
    opts = b"\x01\x01" + MAC + b"\x05\x01\0\0" + struct.pack("!I", 1500)
    opts += struct.pack("!BBBBIII", 3, 4, 64, 0xC0, 2592000, 604800, 0) + packed("2001:db8:10::")
    opts += b"\x19\x03\0\0" + struct.pack("!I", 1800) + packed("2001:db8:10::53")
    opts += b"\x1f\x03\0\0" + struct.pack("!I", 1800) + b"\x04corp\x07example\x00\x00\x00"
    body = struct.pack("!BBHII", 64, 0, 1800, 0, 0) + opts
    assert unexplained_bytes(v6(134, body, src="fe80::1", dst="ff02::1")) == (0, "")
    oversized_mtu = struct.pack("!BBHII", 64, 0, 1800, 0, 0) + b"\x05\x02" + bytes(14)
    assert unexplained_bytes(v6(134, oversized_mtu, src="fe80::1", dst="ff02::1"))[0] == 8


def test_messages_that_never_leave_their_link_carry_everything_from_another_source() -> None:
    """RFC 4861 6.1.2 and 8.1 (a router advertisement's, a redirect's source is link-local), RFC 2710 3 and RFC
    3810 5 (MLD's: link-local, a report's maybe the unspecified address), RFC 4286 (multicast router discovery's):
    receivers discard one from another source, so a benign sender never sends it. An RA from a global address to a
    collector with a 1,392-byte DNSSL option went free (278 KB in 2 s; red team, 2026-12-08)."""
    ra = struct.pack("!BBHII", 64, 0, 1800, 0, 0) + b"\x1f\xae\0\0" + struct.pack("!I", 1800) + bytes(range(256)) * 5
    ra = ra[:16 + 1392]
    assert unexplained_bytes(v6(134, ra, src="fe80::1", dst="ff02::1"))[0] < 1392  # on the link: options judged
    novel, reason = unexplained_bytes(v6(134, ra, src="2001:db8:66::1", dst="2001:db8:99::7"))
    assert novel == len(ra) and "link-local" in reason, reason
    report = struct.pack("!HH", 0, 0) + packed("ff02::fb")
    for kind in (130, 131, 132):
        assert unexplained_bytes(v6(kind, report, src="2001:db8:66::1"))[0] == len(report)
    plain = mld2_report(mld2_record(4, "ff02::1:ff00:1001", []))
    assert unexplained_bytes(v6(143, plain, src="::", dst="ff02::16")) == (0, "")  # a report during DAD
    assert unexplained_bytes(v6(143, plain, src="2001:db8:66::1", dst="ff02::16"))[0] == len(plain)
    redirect_body = bytes(4) + packed("fe80::2") + packed("2001:db8:99::53")
    assert unexplained_bytes(v6(137, redirect_body, src="2001:db8:66::1"))[0] == len(redirect_body)
    mrd = struct.pack("!HH", 20, 0)  # a multicast router advertisement's query interval and robustness
    assert unexplained_bytes(v6(151, mrd, src="fe80::1", dst="ff02::6a")) == (0, "")
    assert unexplained_bytes(v6(151, mrd, src="2001:db8:66::1", dst="2001:db8:99::7"))[0] == 4


@pytest.mark.parametrize("kind", [138, 141, 142, 144, 145, 146, 147, 148, 149, 150, 154, 155, 156, 157, 158, 159])
def test_types_not_analysed_are_free_only_on_the_link(kind: int) -> None:
    """Their structure is not walked (router renumbering, inverse ND, mobility, SEND certificates, RPL, 6LoWPAN
    ND, MPL...): from a link-local (or the unspecified) source they stay free, from any other their payload is
    charged. RPL's type 155 from a global address to a collector carried 1,400 bytes a packet (red team,
    2026-12-08)."""
    data = bytes(range(200))
    assert unexplained_bytes(v6(kind, data, src="fe80::1", dst="ff02::1a")) == (0, "")
    novel, reason = unexplained_bytes(v6(kind, data, src="2001:db8:66::1", dst="2001:db8:99::7"))
    assert novel == 200 and f"type {kind}" in reason, reason


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.integers(0, 40), st.integers(0, 30))
def test_the_column_count_of_unicast_addresses_is_the_one_by_one_count(data: bytes, first: int, count: int) -> None:
    from icmpsensor.detect.nonecho import _unicast, _unicast_count

    data = bytes((0x20, 0xFC, 0xFE, 0xFF, b)[b % 5] if i % 16 == first % 16 else
                 (0x80, b)[b % 2] if i % 16 == (first + 1) % 16 else b for i, b in enumerate(data))  # some of each
    expected = sum(_unicast(data[at : at + 16]) for at in range(first, first + 16 * count, 16))
    assert _unicast_count(data, first, count) == expected


@settings(max_examples=300)
@given(st.lists(st.binary(min_size=4, max_size=4), max_size=20), st.binary(min_size=4, max_size=4),
       st.binary(max_size=7))
def test_the_router_advertisements_address_search_is_the_set_of_its_entries(entries: list[bytes], src: bytes,
                                                                             tail: bytes) -> None:
    from icmpsensor.detect.nonecho import _lists_entry

    payload = b"\x09\x02\x07\x08" + b"".join(e + src[::-1] for e in entries) + tail  # preferences as decoys
    listed = {payload[at : at + 4] for at in range(4, len(payload) - 7, 8)}
    assert _lists_entry(payload, src) == (src in listed)
    if entries:
        payload = payload[:12] + src + payload[16:]  # the second entry is the source
        listed = {payload[at : at + 4] for at in range(4, len(payload) - 7, 8)}
        assert _lists_entry(payload, src) == (src in listed)


def mld2_report(*records: bytes) -> bytes:
    return struct.pack("!HH", 0, len(records)) + b"".join(records)


def mld2_record(kind: int, group: str, sources: list[str], aux: bytes = b"") -> bytes:
    return (struct.pack("!BBH", kind, len(aux) // 4, len(sources)) + packed(group)
            + b"".join(packed(s) for s in sources) + aux)


def test_mldv2_reports() -> None:
    plain = mld2_report(mld2_record(4, "ff02::1:ff00:1001", []), mld2_record(1, "ff3e::1234", ["2001:db8::53"]))
    assert unexplained_bytes(v6(143, plain, src=LL6, dst="ff02::16")) == (0, "")
    # RFC 3810 5.2.10: MLDv2 defines no auxiliary data, a sender MUST NOT include any
    aux = mld2_report(mld2_record(4, "ff05::1:3", [], b"A" * 64))
    novel, reason = unexplained_bytes(v6(143, aux, src=LL6, dst="ff02::16"))
    assert novel == 64 and "MLD" in reason
    # a source that is no unicast address, a record type RFC 3810 does not define, bytes after the records
    assert unexplained_bytes(v6(143, mld2_report(mld2_record(1, "ff3e::1", ["ff02::1"])), src=LL6))[0] == 16
    assert unexplained_bytes(v6(143, mld2_report(mld2_record(9, "ff3e::1", [])), src=LL6))[0] == 20
    assert unexplained_bytes(v6(143, plain + b"tail", src=LL6))[0] == 4


def test_mldv1() -> None:
    report = struct.pack("!HH", 0, 0) + packed("ff02::fb")
    assert unexplained_bytes(v6(131, report, src=LL6, dst="ff02::fb")) == (0, "")
    assert unexplained_bytes(v6(131, report + b"more", src=LL6, dst="ff02::fb"))[0] == 4


def node_info_query(code: int, subject: bytes, qtype: int = 2, flags: int = 0) -> bytes:
    return struct.pack("!HH", qtype, flags) + bytes.fromhex("0102030405060708") + subject


def test_node_information_queries_as_ping_sends_them() -> None:
    # iputils ping -N name: the subject is the destination's address (RFC 4620 section 4, code 0)
    assert unexplained_bytes(v6(139, node_info_query(0, packed(PEER6)))) == (0, "")
    assert unexplained_bytes(v6(139, node_info_query(1, b"\x04host\x07example\x00"), code=1)) == (0, "")
    assert unexplained_bytes(v6(139, node_info_query(2, bytes([192, 0, 2, 1])), code=2)) == (0, "")


def test_node_information_query_subjects_that_carry_data() -> None:
    assert unexplained_bytes(v6(139, node_info_query(1, b"x" * 512), code=1))[0] == 512
    assert unexplained_bytes(v6(139, node_info_query(0, b"sixteen databyte")))[0] == 16
    assert unexplained_bytes(v6(139, node_info_query(2, b"ipv4+more"), code=2))[0] == 5
    assert unexplained_bytes(v6(139, node_info_query(1, b"\x04ho\x01t\x00"), code=1))[0] > 0  # not LDH
    assert unexplained_bytes(v6(139, node_info_query(0, packed(PEER6), qtype=77)))[0] > 0


def ext_echo(obj_class: int, ctype: int, body: bytes) -> bytes:
    obj = struct.pack("!HBB", 4 + len(body), obj_class, ctype) + body
    return struct.pack("!HBB", 0x1234, 1, 0) + b"\x20\0\0\0" + obj


def test_extended_echo_as_rfc8335_defines_it() -> None:
    by_name = ext_echo(3, 1, b"eth0")
    by_index = ext_echo(3, 2, struct.pack("!I", 2))
    by_address = ext_echo(3, 3, struct.pack("!HBB", 2, 16, 0) + packed(PEER6))
    for payload in (by_name, by_index, by_address):
        assert unexplained_bytes(v6(160, payload)) == (0, "")
    assert unexplained_bytes(v6(161, struct.pack("!HBB", 0x1234, 1, 0x40 | 0x04 | 0x01))) == (0, "")


def test_extended_echo_over_ipv4_is_rfc8335s_too() -> None:
    """RFC 8335 assigns PROBE ICMP types 42 and 43 as well as ICMPv6 160 and 161: an IPv4 PROBE was judged a
    payload on "an unassigned or deprecated ICMP type", every byte of it data."""
    by_name = ext_echo(3, 1, b"eth1")
    by_index = ext_echo(3, 2, struct.pack("!I", 7))
    by_address = ext_echo(3, 3, struct.pack("!HBB", 1, 4, 0) + bytes((192, 0, 2, 1)))
    for payload in (by_name, by_index, by_address):
        assert unexplained_bytes(message(42, 0, payload)) == (0, "")
    assert unexplained_bytes(message(43, 0, struct.pack("!HBB", 0x1234, 1, 0x40 | 0x04 | 0x02))) == (0, "")
    novel, reason = unexplained_bytes(message(42, 0, ext_echo(3, 1, bytes(range(256)))))
    assert novel > 256 and "extended echo" in reason
    assert unexplained_bytes(message(43, 0, struct.pack("!HBB", 0x1234, 1, 0x18)))[0] == 1  # reserved bits set


def test_extended_echo_that_carries_data() -> None:
    payload = ext_echo(3, 1, bytes(range(256)))
    novel, reason = unexplained_bytes(v6(160, payload))
    assert novel == len(payload) - 4 and "extended echo" in reason
    assert unexplained_bytes(v6(160, ext_echo(200, 1, b"data")))[0] > 0
    assert unexplained_bytes(v6(160, ext_echo(3, 1, b"eth0") + b"tail"))[0] > 0


# -- work bounded: a crafted 60 KB message is walked no further than a real one ---------------------------------

BIG = 60_000
NI_REPLY = struct.pack("!HH", 2, 0) + bytes(8) + bytes(4)  # qtype 2 (node name), flags, nonce, TTL
MLD_RECORD = struct.pack("!BBH", 1, 0, 0) + b"\xff" + bytes(15)  # MODE_IS_INCLUDE, no sources
WALK_BOMBS = {  # (ipv6, type, code, payload): structures a walk goes through item by item
    "node information reply of empty names": (True, 140, 0, NI_REPLY + bytes(BIG)),
    "node information reply of one-letter names": (True, 140, 0, NI_REPLY + b"\x01a\x00" * (BIG // 3)),
    "MLDv2 record with thousands of sources": (True, 143, 0, b"\0\0\0\x01" + struct.pack("!BBH", 1, 0, BIG // 16)
                                               + b"\xff" + bytes(15) + (b"\x20" + bytes(15)) * (BIG // 16)),
    "MLDv2 record announcing more sources than it holds": (True, 143, 0, b"\0\0\0\x01"
                                                           + struct.pack("!BBH", 1, 0, 65535) + b"\xff" + bytes(15)),
    "MLDv2 report of thousands of records": (True, 143, 0, b"\0\0\xff\xff" + MLD_RECORD * (BIG // 20)),
    "router advertisement of 8-byte options": (True, 134, 0, bytes(12) + (b"\x05\x01" + bytes(6)) * (BIG // 8)),
    "router advertisement of unknown options": (True, 134, 0, bytes(12) + (b"\xfe\x01" + bytes(6)) * (BIG // 8)),
    "unreachable with thousands of MPLS objects": (False, 3, 0, b"\x00\x20\x00\x00" + b"\x45" + bytes(127)
                                                   + b"\x20\x00\x00\x00" + struct.pack("!HBB", 4, 1, 1) * (BIG // 4)),
    "IPv6 unreachable with thousands of MPLS objects": (True, 1, 0, b"\x10\x00\x00\x00" + b"\x60" + bytes(127)
                                                        + b"\x20\x00\x00\x00"
                                                        + struct.pack("!HBB", 4, 1, 1) * (BIG // 4)),
}




@pytest.mark.parametrize("name", sorted(WALK_BOMBS))
def test_a_crafted_message_is_walked_no_further_than_max_walked_items(name: str) -> None:
    """Options, records, sources, names and extension objects: a walk takes at most MAX_WALKED of them in one message
    (a 1500-byte frame holds 180 ND options or 89 MLDv2 sources at most); what lies past them is unexplained. Walked
    whole, one of these 60 KB datagrams cost the detector up to 57 ms."""
    from icmpsensor.detect.nonecho import MAX_WALKED

    ipv6, kind, code, payload = WALK_BOMBS[name]
    pkt = message(kind, code, payload, src=ROUTER6 if ipv6 else ROUTER, dst="2001:db8::2" if ipv6 else corpus.CLIENT)
    assert lines_run(lambda: unexplained_bytes(pkt)) <= 25 * MAX_WALKED
    unexplained, reason = unexplained_bytes(pkt)
    assert reason and unexplained >= min(len(payload) - 16, 8 * 20)  # what lies past the walk is unexplained


def test_a_walk_within_max_walked_items_explains_as_before() -> None:
    """The budget changes nothing for a message of real size: a router advertisement's allowed options, an MLDv2
    report's records and sources are explained up to MAX_WALKED of them, a node information reply's names up to
    NI_NAMES."""
    from icmpsensor.detect.nonecho import MAX_WALKED, NI_NAMES

    options = (b"\x05\x01" + bytes(6)) * (MAX_WALKED - 1)
    assert unexplained_bytes(message(134, 0, bytes(12) + options, src="fe80::1", dst="2001:db8::2")) == (0, "")
    over = unexplained_bytes(message(134, 0, bytes(12) + options + (b"\x05\x01" + bytes(6)) * 3, src="fe80::1",
                                     dst="2001:db8::2"))
    assert over[0] == 8 * 2  # the options past MAX_WALKED
    sources = (b"\x20" + bytes(15)) * (MAX_WALKED - 2)
    report = b"\0\0\0\x01" + struct.pack("!BBH", 1, 0, MAX_WALKED - 2) + b"\xff" + bytes(15) + sources
    assert unexplained_bytes(message(143, 0, report, src="fe80::1", dst="ff02::16")) == (0, "")
    names = b"\x04node\x00" * NI_NAMES
    assert unexplained_bytes(message(140, 0, NI_REPLY + names, src=ROUTER6, dst="2001:db8::2")) == (0, "")


def test_a_node_information_reply_holds_a_nodes_names_and_addresses_not_more() -> None:
    """RFC 4620: a node's names (Linux ninfod: its hostname) or addresses. 200 names of hostname labels carried
    1 KB a reply (red team, 2026-12-08): past NI_NAMES names and NI_ADDRESSES addresses, the rest is charged."""
    from icmpsensor.detect.nonecho import NI_ADDRESSES, NI_NAMES

    names = b"\x04node\x07example\x00" * (NI_NAMES + 3)
    novel, _ = unexplained_bytes(message(140, 0, NI_REPLY + names, src=ROUTER6, dst="2001:db8::2"))
    assert novel == 3 * 14, novel  # three names of 14 bytes past the node's
    addresses = struct.pack("!HH", 3, 0) + bytes(8) + (bytes(4) + packed(PEER6)) * (NI_ADDRESSES + 2)
    assert unexplained_bytes(message(140, 0, addresses, src=ROUTER6, dst="2001:db8::2"))[0] == 2 * 20
    long_names = b"".join(b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x00" for _ in range(NI_NAMES))  # 129 each
    assert unexplained_bytes(message(140, 0, NI_REPLY + long_names, src=ROUTER6, dst="2001:db8::2"))[0] == \
        NI_NAMES * 129 - 255
    few = struct.pack("!HH", 3, 0) + bytes(8) + (bytes(4) + packed(PEER6)) * 2
    assert unexplained_bytes(message(140, 0, few, src=ROUTER6, dst="2001:db8::2")) == (0, "")


# -- headless fragments (decode/fragments.py): runs of bytes without their message's header ---------------------


def headless(*runs: bytes, offset: int = 1480) -> IcmpPacket:
    from icmpsensor.decode.packet import HEADLESS, HeadlessPacket

    spans, at = [], offset
    for run in runs:
        spans.append((at, len(run)))
        at += len(run) + 8  # a hole between runs
    return HeadlessPacket(0.0, b"\x0a\0\0\1", b"\x0a\0\0\2", False, HEADLESS, 0, -1, -1, b"".join(runs), 100, b"",
                          None, 0.0, tuple(spans))


def test_benign_fills_in_headless_runs_are_explained_at_any_phase() -> None:
    windows, iputils, traceroute = corpus.windows_payload(4000), bytes(range(256)) * 16, corpus.traceroute_payload(3000)
    for run in (windows[1471:2951], iputils[1472:2952], traceroute[777:2000], bytes(1480), b"\x01" * 1480, b"\x00"):
        assert unexplained_bytes(headless(run)) == (0, ""), run[:16]


def test_a_pattern_repeated_in_a_headless_run_is_charged_as_the_data_it_can_be() -> None:
    """A pattern repeated (ping -p's fill) would explain any 16 bytes repeated twice: data of an attacker's choosing
    in every spoofed-looking fragment. Only the fills no sender chooses are free (the count, the alphabets, zeros,
    pro-bing's 0x01); another pattern is charged its length, once a run."""
    secret = bytes.fromhex("5345435245543a2070617373776f7264")  # 16 bytes, repeated
    assert unexplained_bytes(headless(secret * 4)) == (16, "16 bytes in fragments without their datagram's first "
                                                           "(at offset 1480)")
    assert unexplained_bytes(headless(b"\xab\xcd" * 700, secret * 2))[0] == 2 + 16
    assert unexplained_bytes(headless(b"\x41" * 100))[0] == 1
    random = bytes((i * 151 + 7) % 251 for i in range(200))
    assert unexplained_bytes(headless(random, bytes(64)))[0] == 200
