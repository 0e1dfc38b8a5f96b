"""The walks of non-echo messages in C (detect/_fastnonecho.c) against their Python reference (detect/nonecho.py
_names_walk_reference, _nd_option_bytes_reference, _nd_option_first_reference, _extension_objects_reference):
the same answer for messages built of their items (well-formed, cut short, too long, of bytes they must not hold)
and for random bytes, at every budget; and a whole message judged alike with and without them."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.detect import nonecho
from testkit import craft, synthmix
from tests.hypothesis_counts import examples

fast = nonecho._fastnonecho
pytestmark = pytest.mark.skipif(fast is None, reason="the C walks are not built (ICMPSENSOR_PURE_PYTHON)")

BUDGETS = st.sampled_from((0, 1, 2, 3, 7, nonecho.MAX_WALKED))


@contextmanager
def budget_of(budget: int) -> Iterator[None]:
    """The Python reference walking at most `budget` items (it reads nonecho.MAX_WALKED)."""
    saved = nonecho.MAX_WALKED
    nonecho.MAX_WALKED = budget
    try:
        yield
    finally:
        nonecho.MAX_WALKED = saved


@st.composite
def labels(draw: st.DrawFn) -> bytes:
    """A label: its length byte (0-70: past 63 is not a label) and that many bytes, mostly a hostname's."""
    size = draw(st.integers(0, 70))
    text = draw(st.binary(min_size=size, max_size=size)) if draw(st.integers(0, 9)) == 0 else \
        bytes(draw(st.sampled_from(nonecho._LDH)) for _ in range(size))
    return bytes((size,)) + text


@st.composite
def names(draw: st.DrawFn) -> bytes:
    """Names of labels, ended by a zero (sometimes two: RFC 4620's single-label form), sometimes cut short."""
    data = b"".join(draw(labels()) + b"\0" * draw(st.sampled_from((0, 1, 1, 1, 2))) for _ in range(draw(
        st.integers(0, 12))))
    return data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data


@given(data=st.one_of(names(), st.binary(max_size=300)), pos=st.integers(0, 8), budget=BUDGETS)
@settings(max_examples=examples(2000), deadline=None)
def test_names_walk_is_the_reference(data: bytes, pos: int, budget: int) -> None:
    with budget_of(budget):
        want = nonecho._names_walk_reference(data, pos)
    assert fast.names_walk(data, pos, nonecho._LDH, budget) == want


def test_a_name_ends_within_255_bytes_of_its_start() -> None:
    """_ldh_name's limit: a name whose zero byte is past 255 bytes from its start is not a name."""
    for size in range(240, 270):
        label_run = b"".join(b"\x3f" + b"a" * 63 for _ in range(size // 64)) + bytes((size % 64,)) + b"b" * (size % 64)
        for data in (label_run + b"\0", b"\x01x\0" + label_run + b"\0"):
            assert fast.names_walk(data, 0, nonecho._LDH, 256) == nonecho._names_walk_reference(data, 0)


@st.composite
def nd_options(draw: st.DrawFn) -> bytes:
    """Options: a type (carried or not, nonce, CGA, any), a length in 8-byte units (0 is malformed), a body."""
    out = b""
    for _ in range(draw(st.integers(0, 10))):
        option = draw(st.one_of(st.sampled_from((1, 2, 3, 4, 5, 11, 14, 24, 33, 38)), st.integers(0, 255)))
        units = draw(st.sampled_from((0, 1, 1, 2, 3, 4, 5, 200)))
        out += bytes((option, units)) + draw(st.binary(min_size=max(0, 8 * units - 2), max_size=max(0, 8 * units - 2)))
    return out[: draw(st.integers(0, len(out)))] if draw(st.integers(0, 3)) == 0 else out


@given(options=st.one_of(nd_options(), st.binary(max_size=200)), head=st.binary(max_size=24),
       kind=st.sampled_from(sorted(nonecho._ND_OPTIONS)), budget=BUDGETS)
@settings(max_examples=examples(2000), deadline=None)
def test_nd_option_bytes_is_the_reference(options: bytes, head: bytes, kind: int, budget: int) -> None:
    payload = head + options
    with budget_of(budget):
        want = nonecho._nd_option_bytes_reference(payload, len(head), nonecho._ND_OPTIONS[kind])
    assert fast.nd_option_bytes(payload, len(head), nonecho._ND_ALLOWED[kind], nonecho._ND_LARGEST,
                                nonecho._ND_NONCE, nonecho._ND_CGA, budget) == want


@given(options=st.one_of(nd_options(), st.binary(max_size=200)), head=st.binary(max_size=24),
       option=st.sampled_from((2, 4, 14)), budget=BUDGETS)
@settings(max_examples=examples(2000), deadline=None)
def test_nd_option_first_is_the_reference(options: bytes, head: bytes, option: int, budget: int) -> None:
    payload = head + options
    with budget_of(budget):
        want = nonecho._nd_option_first_reference(payload, len(head), option)
    assert fast.nd_option_first(payload, len(head), option, budget) == want


def test_a_nonce_is_left_to_judge_unless_a_cga_option_makes_it_send() -> None:
    """RFC 7527 / RFC 3971: the nonce's bytes are handed back to be judged (DAD or not) unless a CGA option is there."""
    nonce, cga, lladdr = b"\x0e\x01" + bytes(6), b"\x0b\x02" + bytes(14), b"\x02\x01" + bytes(6)
    for options, want in ((nonce + lladdr, (0, 8)), (nonce + cga, (0, 0)), (cga + nonce + nonce, (0, 0)),
                          (lladdr + nonce + nonce, (0, 16))):
        payload = bytes(20) + options
        assert nonecho._nd_option_bytes_reference(payload, 20, nonecho._ND_OPTIONS[136]) == want
        assert fast.nd_option_bytes(payload, 20, nonecho._ND_ALLOWED[136], nonecho._ND_LARGEST, nonecho._ND_NONCE,
                                    nonecho._ND_CGA, nonecho.MAX_WALKED) == want


@st.composite
def extension_objects(draw: st.DrawFn) -> bytes:
    """Objects: a length (under 4, a multiple of 4 or not, past the end), a class and c-type routers send or
    not, a body; sometimes a few bytes after them."""
    out = b""
    for _ in range(draw(st.integers(0, 8))):
        klass = draw(st.sampled_from((0, 1, 2, 3, 4, 255)))
        ctype = draw(st.sampled_from((0, 1, 2, 3, 4, 200)))
        length = draw(st.sampled_from((0, 3, 4, 8, 9, 12, 40, 68, 72, 92, 96, 1000)))
        body = draw(st.binary(min_size=max(0, length - 4), max_size=max(0, length - 4)))
        out += length.to_bytes(2, "big") + bytes((klass, ctype)) + body[: draw(st.sampled_from((len(body), 2)))]
    return out + draw(st.binary(max_size=3))


@given(objects=st.one_of(extension_objects(), st.binary(max_size=200)), head=st.binary(max_size=8), budget=BUDGETS)
@settings(max_examples=examples(2000), deadline=None)
def test_extension_objects_is_the_reference(objects: bytes, head: bytes, budget: int) -> None:
    payload = head + objects
    with budget_of(budget):
        want = nonecho._extension_objects_reference(payload, len(head))
    assert fast.extension_objects(payload, len(head), nonecho._OBJECT_LARGEST, budget) == want


def crafted_packets() -> list[IcmpPacket]:
    """The bench's crafted messages (testkit/synthmix.py CRAFTED_KINDS), each kind at a few lengths."""
    rng = random.Random(5)
    out = []
    for size in (1_400, 9_000, synthmix.JUMBO_PAYLOAD):
        for v6, icmp_type, body in synthmix._crafted_bodies(size, rng).values():
            src, dst = ("2001:db8::1", "2001:db8::2") if v6 else ("192.0.2.1", "192.0.2.2")
            echo = icmp_type in (0, 8, 128, 129)
            out.append(IcmpPacket(1.7e9, craft.addr(src), craft.addr(dst), v6, icmp_type, 0,
                                  int.from_bytes(body[:2], "big") if echo else -1,
                                  int.from_bytes(body[2:4], "big") if echo else -1,
                                  body[4:] if echo else body, len(body) + 48))
    return out


def test_a_crafted_message_is_judged_alike_with_and_without_the_c_walks(monkeypatch: pytest.MonkeyPatch) -> None:
    packets = crafted_packets()
    with_c = [nonecho.unexplained_bytes(pkt, 2.0) for pkt in packets]
    monkeypatch.setattr(nonecho, "_fastnonecho", None)
    assert [nonecho.unexplained_bytes(pkt, 2.0) for pkt in packets] == with_c
    assert any(novel for novel, _ in with_c)


@pytest.mark.parametrize("call", [
    lambda: fast.names_walk("text", 0, nonecho._LDH, 1),
    lambda: fast.names_walk(b"\0", 0, nonecho._LDH),
    lambda: fast.nd_option_bytes(b"", 0, b"short", nonecho._ND_LARGEST, 14, 11, 1),
    lambda: fast.extension_objects(b"", 0, [], 1),
])
def test_wrong_arguments_are_a_type_error(call: object) -> None:
    with pytest.raises(TypeError):
        call()  # type: ignore[operator]


def test_a_negative_position_or_budget_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        fast.names_walk(b"\0", -1, nonecho._LDH, 1)
    with pytest.raises(ValueError):
        fast.extension_objects(b"", 0, {}, -1)
