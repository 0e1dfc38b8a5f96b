"""The internet checksum (decode/checksum.py): the Python reference and the C accelerator agree with dpkt's in_cksum,
and a reassembled datagram's checksum is verified by them."""

from __future__ import annotations

from collections.abc import Callable

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icmpsensor.decode import checksum
from icmpsensor.decode.fast import Decoder
from icmpsensor.decode.ip import IpLayer
from icmpsensor.decode.stats import DecodeStats
from testkit import craft
from testkit.decoding import A4, A6, B4, B6, Run, batch_of
from tests.hypothesis_counts import examples

IMPLEMENTATIONS = [checksum.checksum_ok_py] + ([checksum.checksum_ok_c] if checksum.checksum_ok_c else [])


def _with_valid_checksum(data: bytes) -> bytes:
    """`data` with its first two bytes set so that the whole verifies."""
    if len(data) < 2:
        return data
    body = b"\0\0" + data[2:]
    return craft.checksum(body).to_bytes(2, "big") + data[2:]


@st.composite
def buffers(draw: st.DrawFn) -> bytes:
    data = draw(st.binary(max_size=3000) | st.builds(bytes, st.integers(0, 3000)))  # all zeros, too
    if len(data) >= 2 and draw(st.booleans()):
        data = _with_valid_checksum(data)
    return data


@given(buffers())
@settings(max_examples=examples(3000))
def test_every_implementation_verifies_as_dpkts_in_cksum(data: bytes) -> None:
    expected = dpkt.in_cksum(data) == 0
    assert [ok(data) for ok in IMPLEMENTATIONS] == [expected] * len(IMPLEMENTATIONS)


@pytest.mark.parametrize("data", [b"", b"\0", bytes(8), b"\xff\xff", b"\0\0\xff\xff", b"\xff", b"\xff\xff\xff",
                                  bytes(65535)])
def test_the_edges_of_ones_complement(data: bytes) -> None:
    """All-zero words sum to +0, which does not verify (0xFFFF, -0, does); an odd byte is padded with a zero."""
    expected = dpkt.in_cksum(data) == 0
    assert [ok(data) for ok in IMPLEMENTATIONS] == [expected] * len(IMPLEMENTATIONS)


def test_the_c_accelerator_is_used_when_built() -> None:
    assert checksum.checksum_ok is (checksum.checksum_ok_c or checksum.checksum_ok_py)


@pytest.mark.parametrize("version", [4, 6])
def test_a_reassembled_datagrams_checksum_is_verified_without_dpkts_word_by_word_sum(
        version: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 60,000-byte fragmented echo request: dpkt's in_cksum took 630 us over its words in Python (41 % of the
    time of a replay of such pings), decode/checksum.py ~100 us in Python and a few in C. Its checksum is still
    checked: spoiled, it is counted as bad."""
    def refused(*_: object) -> None:
        raise AssertionError("dpkt in_cksum used")

    payload = bytes(range(256)) * 234 + b"tail"
    captures = {}
    for spoiled in (False, True):  # made first: testkit's builders checksum with dpkt (independent of the decoder)
        if version == 4:
            packet = craft.icmp4(A4, B4, craft.ECHO_REQUEST, 0, 7, 1, payload, bad_checksum=spoiled)
            captures[spoiled] = [craft.ether(f) for f in craft.fragment4(packet, 1480)]  # 41 fragments
        else:
            packet = craft.icmp6(A6, B6, craft.ECHO_REQUEST6, 0, 7, 1, payload, bad_checksum=spoiled)
            captures[spoiled] = [craft.ether(f) for f in craft.fragment6(packet, 1448)]
    for name in ("in_cksum", "in_cksum_add", "in_cksum_done"):
        monkeypatch.setattr(dpkt, name, refused)
        monkeypatch.setattr(dpkt.dpkt, name, refused)
    for spoiled, frames in captures.items():
        run = Run(1, [(1.7e9 + i * 1e-4, frame) for i, frame in enumerate(frames)])  # within the timeout
        assert run.decoded[0].payload == payload
        assert run.stats.bad_checksum == int(spoiled)


@settings(max_examples=examples(600), deadline=None)
@given(payload=st.binary(max_size=3000) | st.builds(bytes, st.integers(0, 3000)), v6=st.booleans(),
       spoiled=st.booleans(), fragmented=st.booleans(), ident=st.integers(0, 0xFFFF))
def test_a_messages_checksum_is_verified_by_both_decoders_as_dpkt_made_it(
        payload: bytes, v6: bool, spoiled: bool, fragmented: bool, ident: int) -> None:
    """A whole or reassembled ICMP (IPv4) or ICMPv6 (its pseudo-header's words summed with the message's) echo of any
    size, odd or even, its checksum made by dpkt (testkit.craft), right or spoiled (fragmented where that makes two
    fragments or more: an IPv6 atomic fragment is the reference's to take): counted as bad exactly where it was
    spoiled, by the C decoder and the dpkt one alike (Run holds them equal). The C word sum reads the host's own
    words and swaps their sum once; a sum left unswapped, or a last odd byte read as the high one, fails here."""
    if v6:
        packet = craft.icmp6(A6, B6, craft.ECHO_REQUEST6, 0, ident, 1, payload, bad_checksum=spoiled)
        frames = craft.fragment6(packet, 1448) if fragmented and len(packet) > 40 + 1448 else [packet]
    else:
        packet = craft.icmp4(A4, B4, craft.ECHO_REQUEST, 0, ident, 1, payload, bad_checksum=spoiled)
        frames = craft.fragment4(packet, 1480) if fragmented else [packet]
    timed = [(1.7e9 + i * 1e-4, craft.ether(f)) for i, f in enumerate(frames)]
    run = Run(1, timed)
    assert run.stats.bad_checksum == int(spoiled)
    assert [p.payload for p in run.decoded] == [payload]
    if checksum.checksum_ok_c is None:
        return
    # the C path's own verdict: a right checksum is taken in C; only a spoiled one goes to the reference, which
    # counts it (a C sum that refused right ones would only be slower, which the decoders' agreement cannot see)
    handed: list[str] = []

    def to_reference(name: str, method: Callable[..., object]) -> Callable[..., object]:
        def handed_on(*args: object) -> object:
            handed.append(name)
            return method(*args)
        return handed_on

    with pytest.MonkeyPatch.context() as patch:
        for cls, name in ((Decoder, "_batch_frame"), (IpLayer, "_reassembled4"), (IpLayer, "_reassembled6")):
            patch.setattr(cls, name, to_reference(name, getattr(cls, name)))
        buf, meta, _ = batch_of(timed)
        packets = Decoder(1, DecodeStats()).decode_batch(buf, meta)
    assert [p.payload for p in packets] == [payload]
    assert bool(handed) == spoiled, handed
