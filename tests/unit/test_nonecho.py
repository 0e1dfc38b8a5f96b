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

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUTER, ROUTER6 = "203.0.113.1", "2001:db8:ff::1"


def packed(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def message(icmp_type: int, code: int, payload: bytes, *, src: str = ROUTER, dst: str = corpus.CLIENT) -> IcmpPacket:
    ipv6 = ":" in src
    return IcmpPacket(1.0, packed(src), packed(dst), ipv6, icmp_type, code, -1, -1, payload, len(payload) + 42)


def unreachable_payload(style: str, data: bytes = b"q" * 100) -> bytes:
    udp = corpus.udp_datagram(corpus.CLIENT, corpus.SERVER, 40000, 53, data)
    datagram = corpus.ipv4_header(corpus.CLIENT, corpus.SERVER, 17, len(udp), ttl=64, ident=1) + udp
    return bytes(4) + corpus.quote4(datagram, style)


@pytest.mark.parametrize("style", ["rfc792", "linux"])
@pytest.mark.parametrize("kind", [(3, 3), (11, 0), (3, 1)])
def test_plausible_error_quotes_are_explained(style: str, kind: tuple[int, int]) -> None:
    assert unexplained_bytes(message(*kind, unreachable_payload(style))) == (0, "")


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


@pytest.mark.parametrize(("icmp_type", "size"), [(13, 16), (14, 16), (15, 4), (16, 4), (17, 8), (18, 8), (10, 4)])
def test_fixed_size_types_explain_exactly_their_body(icmp_type: int, size: int) -> None:
    body = bytes(size)
    assert unexplained_bytes(message(icmp_type, 0, body, dst=corpus.SERVER)) == (0, "")
    novel, reason = unexplained_bytes(message(icmp_type, 0, body + b"secret data", dst=corpus.SERVER))
    assert novel == 11 and "beyond" in reason


def test_timestamp_fields_must_be_times_of_day() -> None:
    good = struct.pack("!HHIII", 1, 1, 3_600_000, 0, 0)
    assert unexplained_bytes(message(13, 0, good))[0] == 0
    smuggled = struct.pack("!HHIII", 1, 1, 0x41414141 & 0x7FFFFFFF, 0, 0)
    assert unexplained_bytes(message(13, 0, smuggled))[0] == 4


@pytest.mark.parametrize("icmp_type", [1, 2, 6, 7, 19, 30, 37, 42, 100, 200, 253, 255])
def test_unassigned_and_deprecated_types_explain_nothing(icmp_type: int) -> None:
    assert unexplained_bytes(message(icmp_type, 0, b"hello"))[0] == 5
    assert unexplained_bytes(message(icmp_type, 0, b""))[0] == 0


def test_echo_with_a_non_zero_code() -> None:
    novel, reason = unexplained_bytes(message(8, 2, b"file chunk 17: " * 4, dst=corpus.SERVER))
    assert novel == 60 and reason == "echo with code 2"
    # nmap's OS detection: code 9, zero-filled: a benign template, nothing unexplained.
    assert unexplained_bytes(message(8, 9, bytes(120), dst=corpus.SERVER)) == (0, "")


@settings(max_examples=300, deadline=None)
@given(kind=st.integers(0, 255), code=st.integers(0, 255), payload=st.binary(max_size=600), v6=st.booleans())
def test_never_raises(kind: int, code: int, payload: bytes, v6: bool) -> None:
    pkt = message(kind, code, payload, src=ROUTER6 if v6 else ROUTER, dst=corpus.CLIENT6 if v6 else corpus.CLIENT)
    novel, _ = unexplained_bytes(pkt)
    assert 0 <= novel <= len(payload)
