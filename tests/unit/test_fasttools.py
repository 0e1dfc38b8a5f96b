"""The tool tracker's C path (detect/_fasttools.c, tunnels.FastToolTracker) held equal to its Python reference
(tunnels.ToolTracker, tunnels.recognise): the negative check never hides a tool recognise() finds, and the two
trackers give the same matches and keep the same flows on generated packet sequences (tiny tables, so that
eviction happens), on every crafted exfiltration and benign case, and on the seed captures."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icmpsensor.decode.fast import Decoder
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.decode.stats import DecodeStats
from icmpsensor.detect import tunnels
from icmpsensor.detect.novelty import PREFIX, sketch
from icmpsensor.detect.tunnels import ICMPDOOR_ID, FastToolTracker, ToolMatch, ToolTracker, recognise, request_digests
from testkit import benign_corpus, craft, synthmix
from testkit import exfil_corpus as corpus
from tests.hypothesis_counts import examples

needs_c = pytest.mark.skipif(tunnels._fasttools is None, reason="the C accelerator is turned off or not built")


def test_pip_install_builds_it() -> None:
    """`pip install` builds it; only ICMPSENSOR_PURE_PYTHON turns it off (and the detector then runs the reference)."""
    assert tunnels._fasttools is not None or os.environ.get("ICMPSENSOR_PURE_PYTHON")
    assert type(tunnels.tool_tracker()) is (ToolTracker if tunnels._fasttools is None else FastToolTracker)

A, B, C = "198.51.100.1", "198.51.100.2", "203.0.113.9"


def maybe_tool(pkt: IcmpPacket) -> bool:
    assert tunnels._fasttools is not None
    return tunnels._fasttools.maybe_tool(pkt.payload, pkt.ident, pkt.icmp_type, pkt.icmp_code, ICMPDOOR_ID)


CASES = {**{f"exfil-{name}": make for name, make in corpus.EXFIL_CASES.items()},
         **{f"benign-{name}": make for name, make in benign_corpus.BENIGN_CASES.items()}}


def every_case() -> Iterable[tuple[str, list[IcmpPacket]]]:
    for name, make in sorted(CASES.items()):
        yield name, make()


def state(tracker: ToolTracker) -> list[tuple[object, ...]]:
    """The tracker's request flows in their order (the eviction order), each as the reference's fields."""
    if isinstance(tracker, FastToolTracker):
        return [(key, flow.state()) for key, flow in tracker._c.flows.items()]
    return [(key, (f.seq, f.ts, f.first_seq, f.size, f.digest, f.data_digest, f.hping_run, f.ift_run, f.nping_run,
                   f.nping_irregular)) for key, f in tracker._flows.items()]


def run_both(packets: Iterable[IcmpPacket], max_flows: int = 65536, max_pending: int = 65536,
             given_rest: bool = False) -> tuple[list[ToolMatch | None], ToolTracker, ToolTracker]:
    """Both trackers on the packets; with `given_rest` the fast one is handed each payload's sketch's rest hash
    (as the detector hands it), the reference makes its own."""
    reference, fast = ToolTracker(max_flows, max_pending), FastToolTracker(max_flows, max_pending)
    out = []
    for pkt in packets:
        expected = reference.observe(pkt)
        got = fast.observe(pkt, sketch(pkt.payload)[1]) if given_rest else fast.observe(pkt)
        assert got == expected, (pkt, expected, got)
        out.append(got)
    assert state(fast) == state(reference)
    assert list(fast._empty_requests) == list(reference._empty_requests)
    return out, reference, fast


# -- the negative check --------------------------------------------------------------------------------------


@needs_c
def test_every_tool_packet_of_the_corpora_passes_the_negative_check() -> None:
    found = 0
    for name, packets in every_case():
        for pkt in packets:
            if recognise(pkt) is not None:
                found += 1
                assert maybe_tool(pkt), (name, pkt)
    assert found >= 100  # the corpora have tools in them


# Payloads that start or end like a tool's: each check of recognise has a way in.
TOOL_LIKE = [
    b"hanc", b"hans\x07", b"E\x00\x00", b"`\x00\x00\x00\x00\x10\x11@", b"\x0a\x04conn\x30\xda\xfa\x06",
    b"\x30\xda\xfa\x06\x10\x01", b"ZGV0fHwhfA==", b"Test1234\n", b"Process was not created\n",
    b"Microsoft Windows [Version 10.0.1]\r\n", b"Error: ReadFile failed with 5\n", b"\xd5\x20\x08\x80",
    b"gAAAAA", b"C:\\Users>", b"\x12\x13\x14\x15", b"\x12\x11\x13\x12\x12\x12", b"\x15\x14\x13\x12",
]


@st.composite
def packets(draw: st.DrawFn) -> IcmpPacket:
    kind = draw(st.sampled_from(["random", "prefix", "suffix", "corpus"]))
    if kind == "random":
        payload = draw(st.binary(max_size=120))
    elif kind == "prefix":
        payload = draw(st.sampled_from(TOOL_LIKE)) + draw(st.binary(max_size=80))
    elif kind == "suffix":
        payload = draw(st.binary(max_size=80)) + draw(st.sampled_from(TOOL_LIKE))
    else:
        case = draw(st.sampled_from(sorted(corpus.EXFIL_CASES)))
        session = corpus.EXFIL_CASES[case]()
        payload = session[draw(st.integers(0, len(session) - 1))].payload
        cut = draw(st.integers(0, len(payload)))
        payload = draw(st.sampled_from([payload, payload[:cut], payload[cut:]]))
        if payload and draw(st.booleans()):
            at = draw(st.integers(0, len(payload) - 1))
            payload = payload[:at] + bytes([draw(st.integers(0, 255))]) + payload[at + 1:]
    icmp_type = draw(st.sampled_from([8, 0, 128, 129]))
    ident = draw(st.sampled_from([1, 0x1234, ICMPDOOR_ID, 0xFFFF]))
    code = draw(st.sampled_from([0, 0, 2, 7]))
    return IcmpPacket(1e9, b"\xc6\x33\x64\x01", b"\xc6\x33\x64\x02", icmp_type >= 128, icmp_type, code, ident,
                      draw(st.integers(0, 0xFFFF)), payload, 42 + len(payload))


@needs_c
@settings(max_examples=examples(3000), deadline=None)
@given(pkt=packets())
def test_the_negative_check_never_hides_a_tool(pkt: IcmpPacket) -> None:
    if not maybe_tool(pkt):
        assert recognise(pkt) is None


@needs_c
def test_the_negative_check_passes_most_benign_payloads_without_python() -> None:
    """What it is for: a ping's payload is not sent to recognise()."""
    passed = checked = 0
    for name, packets_ in every_case():
        if not name.startswith("benign-"):
            continue
        for pkt in packets_:
            if pkt.ident >= 0:
                checked += 1
                passed += not maybe_tool(pkt)
    assert passed >= 0.9 * checked, (passed, checked)


# -- the trackers ------------------------------------------------------------------------------------------------


@needs_c
@pytest.mark.parametrize("case", sorted(CASES))
def test_both_trackers_agree_on_every_corpus_case(case: str) -> None:
    run_both(CASES[case]())


@needs_c
def test_both_trackers_agree_on_the_seed_captures(seed_dir: Path) -> None:
    matched = 0
    for path in sorted(seed_dir.glob("*.pcap")):
        linktype, frames = craft.read_capture(path)
        decoder = Decoder(linktype, DecodeStats())
        out, _, _ = run_both(p for ts, frame, wire_len in frames if (p := decoder.decode(ts, frame, wire_len)))
        matched += sum(m is not None for m in out)
    assert matched  # hping3, Icmp-File-Transfer and PyExfil are in them


CHUNKS = [bytes([i]) * 56 for i in range(4)] + [bytes(range(56)), b"\x00" * 56, b"abcdefghijklmnopqrstuvw" * 2]
ICMPLIB = b"Ab3" * 18 + b"xY"  # 56 characters as icmplib draws them
REPEATED = b"nping probe: status=ok, id=42"  # one custom payload, not periodic
BIG = [bytes([i]) * 300 for i in range(3)] + [bytes(range(200))]  # past the sketch's PREFIX


@st.composite
def sequences(draw: st.DrawFn) -> list[IcmpPacket]:
    """Echo messages over a few (source, destination, id) flows: seq moving by 1, by 0x100 (hping3's host order),
    by 0..2 (nping), or anywhere; payloads repeating, changing in their first 16 bytes only, new chunks, empty."""
    ts = 1e9
    out = []
    seqs: dict[tuple[str, str, int], int] = {}
    for _ in range(draw(st.integers(1, 60))):
        src, dst = draw(st.sampled_from([(A, B), (B, A), (A, C)]))
        ident = draw(st.sampled_from([1, 2, 0x1234]))
        key = (src, dst, ident)
        last = seqs.get(key, draw(st.sampled_from([0, 1, 0x0100, 0xFFFF])))
        seq = (last + draw(st.sampled_from([1, 1, 0x100, 0, 2, 5]))) & 0xFFFF if key in seqs else last
        seqs[key] = seq
        ts += draw(st.sampled_from([0.001, 0.01, 0.3, 0.6, 2.0]))
        payload = draw(st.one_of(st.sampled_from([*CHUNKS, ICMPLIB, b"", REPEATED, *BIG]),
                                 st.binary(min_size=56, max_size=56), st.binary(max_size=40),
                                 st.binary(min_size=PREFIX - 1, max_size=PREFIX + 2)))
        if draw(st.booleans()) and len(payload) > 16:  # a new timestamp in front of the same data
            payload = draw(st.binary(min_size=16, max_size=16)) + payload[16:]
        if draw(st.booleans()) and len(payload) > PREFIX:  # a change past the timestamp: in its data's head, or after
            at = draw(st.integers(16, len(payload) - 1))
            payload = payload[:at] + bytes([payload[at] ^ 1]) + payload[at + 1:]
        request = draw(st.sampled_from([True, True, True, False]))
        code = draw(st.sampled_from([0, 0, 0, 2]))
        out.append(corpus.echo(ts, src, dst, request, ident, seq, payload, code))
    return out


@needs_c
@settings(max_examples=examples(600), deadline=None)
@given(packets_=sequences(), max_flows=st.sampled_from([1, 2, 3, 65536]), max_pending=st.sampled_from([1, 2, 65536]),
       given_rest=st.booleans())
def test_both_trackers_agree_on_generated_sequences(packets_: list[IcmpPacket], max_flows: int,
                                                   max_pending: int, given_rest: bool) -> None:
    run_both(packets_, max_flows, max_pending, given_rest)


SIZES = [0, 1, 15, 16, 17, PREFIX - 1, PREFIX, PREFIX + 1, 300, 60_000]


@pytest.mark.parametrize("size", SIZES)
def test_request_digests_tell_equal_bytes_apart_from_changed_ones(size: int) -> None:
    """request_digests: a payload's digest and its data's past the timestamp; past novelty.PREFIX the hash of the
    rest (the sketch's, when the caller gives it) stands for those bytes, so a jumbo payload is hashed once. Two
    payloads of one size: equal digests for equal bytes; a change in the timestamp changes only the digest; one in
    the data (in the sketch's head or past it) changes both."""
    payload = bytes((i * 7 + 3) & 0xFF for i in range(size))
    digests = request_digests(payload)
    assert digests == request_digests(bytes(payload)) == request_digests(payload, sketch(payload)[1])
    if size <= PREFIX:
        assert digests == (hash(payload), hash(payload[16:]) if size > 16 else hash(payload))
    else:
        rest = hash(payload[PREFIX:])
        assert digests == (hash((hash(payload[:PREFIX]), rest)), hash((hash(payload[16:PREFIX]), rest)))
        assert request_digests(payload, rest + 1) != digests  # a given rest is used, not made again
    for at in {0, 15, 16, PREFIX - 1, PREFIX, size - 1}:
        if not 0 <= at < size:
            continue
        changed = request_digests(payload[:at] + bytes([payload[at] ^ 0x80]) + payload[at + 1:])
        assert changed[0] != digests[0]
        assert (changed[1] == digests[1]) == (at < 16 and size > 16)


@needs_c
@pytest.mark.parametrize("size", SIZES)
def test_the_c_tracker_keeps_the_reference_digests_and_uses_a_rest_given(size: int) -> None:
    """The C tracker's flow keeps request_digests of the payload, made from the rest hash the caller gives (the
    detector's C path gives its sketch's, so the bytes past PREFIX are not hashed again), or made in C."""
    payload = bytes((i * 7 + 3) & 0xFF for i in range(size))
    rest = hash(payload[PREFIX:]) if size > PREFIX else None
    for handed in (None, rest, None if rest is None else rest ^ 0x5A5A):
        tracker = FastToolTracker()
        assert tracker.observe(corpus.echo(1e9, A, B, True, 9, 1, payload), handed) is None
        assert tracker._c.step(B, A, 9, 1, 1e9, payload, handed) is None
        states = [flow.state() for flow in tracker._c.flows.values()]
        assert [state[4:6] for state in states] == [request_digests(payload, handed)] * 2
    with pytest.raises(TypeError):
        FastToolTracker()._c.step(A, B, 9, 1, 1e9, bytes(PREFIX + 1), "not an int")


@needs_c
@settings(max_examples=examples(1500), deadline=None)
@given(payload=st.binary(min_size=PREFIX + 1, max_size=PREFIX + 40),
       rest=st.one_of(st.none(), st.integers(-2**63, 2**63 - 1),
                      st.sampled_from([-1, -2, 0, 2**61 - 1, 2**61, -(2**61 - 1), -2**61, -2**63, 2**63 - 1])))
def test_the_c_trackers_digests_are_the_references_for_any_rest(payload: bytes, rest: int | None) -> None:
    """Past novelty.PREFIX a digest is the hash of a pair of ints, (the head's hash, the rest's): the C tracker makes
    it without a tuple, as Python hashes one (each int reduced modulo the hash modulus, -1 as -2; the pair's lanes
    mixed as a tuple's), for any head and any rest an int a caller hands, at the modulus's edges too."""
    tracker = FastToolTracker()
    assert tracker._c.step(A, B, 9, 1, 1e9, payload, rest) is None
    assert [flow.state()[4:6] for flow in tracker._c.flows.values()] == [request_digests(payload, rest)]


@needs_c
@pytest.mark.parametrize("max_pending", [1, 2, 9, 65536])
def test_an_empty_request_is_remembered_and_followed_in_c(max_pending: int) -> None:
    """An empty echo request (ping -s 0, a keepalive): the C observe remembers it for icmpsh's reply (in the
    tracker's _empty_requests, the oldest eighth forgotten when max_pending are kept, as _remember_empty) and
    follows its flow itself, answering None: the detector's C path then finishes the request without Python. The
    reply to it stays the reference's (an icmpsh command in it is still found)."""
    requests = [corpus.echo(1e9 + 0.1 * i, A, B if i % 3 else C, True, 7, i, b"") for i in range(20)]
    fast = FastToolTracker(65536, max_pending)
    assert [fast._c.observe(p.payload, p.ident, p.icmp_type, p.icmp_code, p.src, p.dst, p.seq, p.ts)
            for p in requests] == [None] * len(requests)
    run_both(requests, 65536, max_pending)  # the same empty requests kept, in the same order
    command = corpus.echo(1e9 + 3, B, A, False, 7, 19, b"whoami")
    out, _, _ = run_both([*requests, command], 65536, max_pending)
    assert out[-1] is not None and out[-1].tool == "icmpsh"


@needs_c
def test_a_reply_that_answers_no_empty_request_is_answered_in_c() -> None:
    """An echo reply no check of recognise() can match: ToolTracker._reply does something only for the reply to an
    empty request it remembers (icmpsh's command), so the C observe answers None for every other reply, nothing
    changed (a flood of replies then stays in C), and asks for _follow for that one (the reference deletes it and
    reads the command)."""
    fast = FastToolTracker()
    empty = corpus.echo(1e9, A, B, True, 7, 3, b"")
    replies = [corpus.echo(1e9 + 0.1, B, A, False, 7, 4, b"whoami"),  # another sequence number: answers nothing
               corpus.echo(1e9 + 0.2, B, C, False, 7, 3, bytes(range(40, 90)))]
    observe = fast._c.observe
    assert observe(empty.payload, empty.ident, empty.icmp_type, empty.icmp_code, empty.src, empty.dst, empty.seq,
                   empty.ts) is None
    assert [observe(p.payload, p.ident, p.icmp_type, p.icmp_code, p.src, p.dst, p.seq, p.ts) for p in replies] == \
        [None, None]
    command = corpus.echo(1e9 + 0.3, B, A, False, 7, 3, b"whoami")
    assert observe(command.payload, command.ident, command.icmp_type, command.icmp_code, command.src, command.dst,
                   command.seq, command.ts) == 1  # ASK_FOLLOW: the reference's _reply
    out, _, _ = run_both([empty, *replies, command])
    assert out[-1] is not None and out[-1].tool == "icmpsh"


@needs_c
def test_the_generated_sequences_reach_every_multi_packet_tool() -> None:
    """The sequences above can make each tool ToolTracker follows over several packets (else agreeing says
    little): hping3 file chunks, Icmp-File-Transfer chunks, nping's repeated payload."""
    hping = [corpus.echo(1e9 + i, A, B, True, 1, (0x100 * (i + 1)) & 0xFFFF, CHUNKS[i % 4]) for i in range(4)]
    ift = [corpus.echo(1e9 + i * 0.01, A, B, True, 1, 7 + i, CHUNKS[i % 4]) for i in range(5)]
    nping = [corpus.echo(1e9 + i, A, B, True, 1, s, REPEATED) for i, s in enumerate((1, 3, 4, 4))]
    tools = set()
    for stream in (hping, ift, nping):
        out, _, _ = run_both(stream)
        tools |= {m.tool for m in out if m is not None}
    assert tools == {"hping3-file", "icmp-file-transfer", "nping-data"}


@needs_c
@pytest.mark.parametrize("kind", ["mix", "novel_mix"])
def test_both_trackers_agree_on_the_bench_captures(tmp_path: Path, kind: str) -> None:
    """The bench's synthetic traffic (every kind of ping the mix models, the tools it plants, the floods), decoded as
    the sensor decodes it."""
    path = tmp_path / "mix.pcap"
    synthmix.generate(path, packets=30_000, seed=5, kind=kind)
    linktype, frames = craft.read_capture(path)
    decoder = Decoder(linktype, DecodeStats())
    out, _, _ = run_both(p for ts, frame, wire_len in frames if (p := decoder.decode(ts, frame, wire_len)) is not None)
    assert len(out) > 20_000


@st.composite
def periodic_shapes(draw: st.DrawFn) -> bytes:
    """Payloads at the edges of tunnels._is_periodic: a unit of 1 to 20 bytes repeated (first byte unique or not),
    the Windows alphabet cycled, a random 40-byte block repeated (a period of 40, past every `longest` drawn: random
    bytes where the payload is 40 bytes or fewer); cut anywhere, a byte changed or not (the last one too), and long
    enough on both sides of the reference's two Windows branches (its run is 65,596 bytes)."""
    kind = draw(st.sampled_from(["unit", "alphabet", "random"]))
    size = draw(st.integers(0, 40) | st.integers(41, 3000) | st.integers(65_590, 65_605))
    if kind == "unit":
        unit = draw(st.binary(min_size=1, max_size=20))
        data = (unit * (size // len(unit) + 1))[:size]
    elif kind == "alphabet":
        alphabet = tunnels._WINDOWS_ALPHABET
        start = draw(st.sampled_from([0, 0, 1]))
        data = (alphabet * (size // len(alphabet) + 2))[start:start + size]
    else:
        data = draw(st.binary(min_size=min(size, 40), max_size=min(size, 40))) * (size // 40 + 1)
        data = data[:size]
    if data and draw(st.booleans()):
        at = draw(st.sampled_from([0, len(data) - 1, len(data) // 2, draw(st.integers(0, len(data) - 1))]))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    return data


@needs_c
@settings(max_examples=examples(1500), deadline=None)
@given(payload=periodic_shapes(), longest=st.sampled_from([tunnels._LONGEST_PERIOD, 0, 1, 2, 7, 30]))
def test_a_payload_is_periodic_in_c_as_the_reference_says(payload: bytes, longest: int) -> None:
    """_fasttools.is_periodic (the C tool tracker's nping check, comparing the payload with itself in place) against
    tunnels._is_periodic (its reference, which slices): the same answer for every unit length up to `longest` and
    past it, the alphabet from its first letter or not, a byte changed anywhere, and the empty payload."""
    expected = tunnels._is_periodic(payload, longest)
    assert tunnels._fasttools.is_periodic(payload, tunnels._WINDOWS_ALPHABET, longest) is expected


@needs_c
def test_a_jumbo_payloads_period_is_checked_without_copying_it() -> None:
    """An nping --data flow of 60 KB requests (one payload, seq from 1 with nping's irregular steps) whose first
    byte recurs at every even place: the C tracker answers as the reference (state included), and its periodic check
    copies nothing: the peak of what one such request allocates stays far below the payload (the reference's
    slices copied it once for each period whose first byte fits: eight 60 KB copies a request, a crafted-message
    flood's largest cost after the payload's hash)."""
    payload = bytes([7]) + bytes([7, 1]) * 30_000
    assert tunnels._is_periodic(payload) is False
    packets = [IcmpPacket(1.7e9 + i * 0.01, craft.addr(A), craft.addr(B), False, craft.ECHO_REQUEST, 0, 77, seq,
                          payload, len(payload) + 42) for i, seq in enumerate((1, 3, 4, 4, 5, 6))]
    results, _, _ = run_both(packets)  # answers and state held equal
    assert results[-1] is not None and results[-1].tool == "nping-data"  # not periodic: the run is nping's
    fast = FastToolTracker()
    fast.observe(packets[0])
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        fast.observe(packets[1])  # the flow's second request: its nping check asks whether the payload is periodic
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < len(payload) // 4, peak
