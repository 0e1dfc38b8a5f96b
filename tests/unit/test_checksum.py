"""The internet checksum (decode/checksum.py): the Python reference and the C accelerator agree with dpkt's in_cksum,
and a reassembled datagram's checksum is verified by them."""

from __future__ import annotations

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icmpsensor.decode import checksum
from testkit import craft
from testkit.decoding import A4, A6, B4, B6, Run
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
