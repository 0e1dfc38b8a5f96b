"""IPv4/IPv6 fragment reassembly: the Reassembler alone, then through both decoders."""

from __future__ import annotations

import os
import random
import sys
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from icmpsensor.config.schema import Config
from icmpsensor.decode import decoder as decoder_module
from icmpsensor.decode import fast as fast_decoder
from icmpsensor.decode import fragments
from icmpsensor.decode.decoder import DpktDecoder
from icmpsensor.decode.fast import Decoder
from icmpsensor.decode.fragments import DATAGRAM_OVERHEAD, PIECE_OVERHEAD, Datagram, Reassembler, key_v4
from icmpsensor.decode.stats import DecodeStats
from icmpsensor.runmode.pipeline import Pipeline
from icmpsensor.source.batch import CapturedFrame, frames_of
from testkit import craft
from testkit.craft import addr
from testkit.decoding import A4, A6, B4, B6, Run, batch_of
from tests.hypothesis_counts import examples, whole_suite

ReassemblerType = Callable[..., Reassembler]
C_REASSEMBLER = fragments._fastfragments.Reassembler if fragments._fastfragments is not None else None
# Every test of the reassembler runs on the reference (Python) and on the C one (decode/_fastfragments.c).
both = pytest.mark.parametrize("reassembler_type", [
    pytest.param(Reassembler, id="python"),
    pytest.param(C_REASSEMBLER, id="c", marks=pytest.mark.skipif(C_REASSEMBLER is None, reason="C not built")),
])

KEY = key_v4(addr(A4), addr(B4), 1, 7)
DATA = bytes(range(256)) * 4  # 1024 bytes


def pieces(data: bytes, size: int) -> list[tuple[int, bool, bytes]]:
    """(offset, more, bytes) fragments of ``data``, in order."""
    return [(o, o + size < len(data), data[o : o + size]) for o in range(0, len(data), size)]


def feed(reassembler: Reassembler, frags: list[tuple[int, bool, bytes]], key: object = KEY,
         ts: float = 0.0) -> list[Datagram]:
    results = [reassembler.add(key, ts, o, more, d, 1, 100) for o, more, d in frags]
    return [r for r in results if r is not None]


@both
@pytest.mark.parametrize("order", ["in order", "reversed", "shuffled"])
def test_reassembles_in_any_order(reassembler_type: ReassemblerType, order: str) -> None:
    frags = pieces(DATA, 128)
    if order == "reversed":
        frags.reverse()
    elif order == "shuffled":
        random.Random(5).shuffle(frags)
    stats: Counter[str] = Counter()
    reassembler = reassembler_type(stats=stats)
    done = feed(reassembler, frags)
    assert done == [Datagram(1, DATA, 800)]
    assert stats == {"fragments": 8, "reassembled": 1}
    assert len(reassembler) == 0 and reassembler.pending_bytes == 0


@both
def test_interleaved_datagrams_are_kept_apart(reassembler_type: ReassemblerType) -> None:
    reassembler = reassembler_type()
    other = key_v4(addr(A4), addr(B4), 1, 8)
    a, b = pieces(DATA, 256), pieces(DATA[::-1], 256)
    results = []
    for fa, fb in zip(a, b, strict=True):
        results.append(reassembler.add(KEY, 0, fa[0], fa[1], fa[2], 1))
        results.append(reassembler.add(other, 0, fb[0], fb[1], fb[2], 1))
    assert [r.payload for r in results if r] == [DATA, DATA[::-1]]


@both
def test_duplicates_and_identical_overlaps_are_tolerated(reassembler_type: ReassemblerType) -> None:
    stats: Counter[str] = Counter()
    reassembler = reassembler_type(stats=stats)
    frags = pieces(DATA, 128)
    overlapping = (64, True, DATA[64:320])  # covers parts of three fragments, same bytes
    done = feed(reassembler, [frags[0], frags[0], overlapping, *frags[1:]])
    assert [d.payload for d in done] == [DATA]
    assert stats["duplicate"] == 1 + 1 + 2  # the repeat, the overlap, then fragments 1 and 2


@both
def test_conflicting_overlap_discards_the_datagram_and_absorbs_the_rest(reassembler_type: ReassemblerType) -> None:
    stats: Counter[str] = Counter()
    reassembler = reassembler_type(stats=stats)
    frags = pieces(DATA, 128)
    forged = (64, True, b"X" * 128)
    assert feed(reassembler, [frags[0], forged, *frags[1:]]) == []
    assert stats["overlap"] == 1
    assert reassembler.pending_bytes == DATAGRAM_OVERHEAD  # its tombstone's entry, until it times out
    # Until it times out, the rest of that datagram cannot start a new one.
    assert feed(reassembler, frags) == []
    assert feed(reassembler, frags, ts=31.0) == [Datagram(1, DATA, 800)]
    assert stats["timeout"] == 0  # a discarded datagram is counted once


@both
def test_contained_conflicting_fragment_is_an_overlap(reassembler_type: ReassemblerType) -> None:
    stats: Counter[str] = Counter()
    reassembler = reassembler_type(stats=stats)
    assert feed(reassembler, [(0, True, DATA[:512]), (128, True, b"Y" * 64), (512, False, DATA[512:])]) == []
    assert stats["overlap"] == 1


@both
def test_inconsistent_total_length(reassembler_type: ReassemblerType) -> None:
    stats: Counter[str] = Counter()
    reassembler = reassembler_type(stats=stats)
    beyond_the_end = [(512, False, DATA[512:]), (0, True, DATA + bytes(8))]
    end_too_soon = [(0, True, DATA[:512]), (128, False, DATA[128:256])]
    two_ends = [(512, False, DATA[512:]), (600, False, DATA[600:900])]
    for key, frags in enumerate([beyond_the_end, end_too_soon, two_ends]):
        assert feed(reassembler, frags, key=key) == []
    assert stats["inconsistent"] == 3


@both
def test_timeout_in_packet_time(reassembler_type: ReassemblerType) -> None:
    stats: Counter[str] = Counter()
    reassembler = reassembler_type(timeout=30.0, stats=stats)
    first, *rest = pieces(DATA, 256)
    reassembler.add(KEY, 100.0, *first, 1)
    assert reassembler.add(key_v4(addr(A4), addr(B4), 1, 99), 129.0, 0, True, b"z" * 8, 1) is None
    assert len(reassembler) == 2
    assert feed(reassembler, rest, ts=130.5) == []  # the first fragment expired: never complete
    assert stats["timeout"] == 1
    reassembler.expire(1000.0)
    assert stats["timeout"] == 3 and len(reassembler) == 0 and reassembler.pending_bytes == 0


@both
def test_eviction_at_the_cap_drops_the_oldest(reassembler_type: ReassemblerType) -> None:
    stats: Counter[str] = Counter()
    reassembler = reassembler_type(max_datagrams=3, stats=stats)
    for ident in range(5):
        reassembler.add(ident, float(ident), 0, True, b"a" * 8, 1)
    assert len(reassembler) == 3 and stats["evicted"] == 2
    assert reassembler.add(0, 5.0, 8, False, b"b", 1) is None  # datagram 0 is gone
    assert reassembler.add(4, 5.0, 8, False, b"b", 1) == Datagram(1, b"a" * 8 + b"b", 0)


@both
def test_byte_cap_evicts_the_oldest(reassembler_type: ReassemblerType) -> None:
    stats: Counter[str] = Counter()
    one = DATAGRAM_OVERHEAD + PIECE_OVERHEAD + 600  # a datagram holding one 600-byte piece
    reassembler = reassembler_type(max_bytes=2 * one - 1, stats=stats)
    reassembler.add(1, 0.0, 0, True, bytes(600), 1)
    assert reassembler.pending_bytes == one
    reassembler.add(2, 0.0, 0, True, bytes(600), 1)
    assert stats["evicted"] == 1 and len(reassembler) == 1 and reassembler.pending_bytes == one


@both
def test_too_large(reassembler_type: ReassemblerType) -> None:
    stats: Counter[str] = Counter()
    reassembler = reassembler_type(max_datagram_size=2000, stats=stats)
    assert feed(reassembler, [(0, True, DATA), (1024, True, DATA), (2048, False, DATA[:8])]) == []
    assert stats["too_large"] == 1
    # The classic ping of death: offset 65528 plus data runs past 65535.
    assert reassembler_type(stats=stats).add(1, 0, 65528, False, bytes(16), 1) is None
    assert stats["too_large"] == 2


@both
def test_too_many_fragments(reassembler_type: ReassemblerType) -> None:
    stats: Counter[str] = Counter()
    reassembler = reassembler_type(max_fragments=16, stats=stats)
    holes = [(o, True, DATA[o : o + 8]) for o in range(0, 512, 16)]  # 32 separate pieces
    assert feed(reassembler, holes) == []
    assert stats["too_many_fragments"] == 1 and reassembler.pending_bytes == DATAGRAM_OVERHEAD
    assert feed(reassembler, pieces(DATA, 128)) == []  # the rest is absorbed


@both
@pytest.mark.parametrize("keep_frames", [False, True])
def test_memory_held_is_accounted_with_its_overhead_so_tiny_fragments_stay_within_the_cap(
        reassembler_type: ReassemblerType, keep_frames: bool) -> None:
    """20,000 datagrams of 250 eight-byte pieces once took 505 MB at max_fragmented_datagrams 1000000: 8 bytes of
    data cost about 90 in memory. Accounted with the overhead, the memory traced stays under the byte cap; also
    when every fragment's frame is kept for evidence. (The fast loop: a quarter of the cap, and of the datagrams.)"""
    cap, datagrams = (4 << 20, 2500) if whole_suite() else (1 << 20, 700)
    reassembler = reassembler_type(max_datagrams=1_000_000, max_bytes=cap, keep_frames=keep_frames)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for piece in range(60):
            for datagram in range(datagrams):  # every datagram gets its pieces interleaved with the others'
                frame = CapturedFrame(1_700_000_000 + piece, 999_000 + datagram % 1000, os.urandom(42)) \
                    if keep_frames else None
                reassembler.add(("a", "b", 1, datagram), 1.0, 16 * piece, True, os.urandom(8), 1, 42, frame)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert reassembler.pending_bytes <= cap
    assert peak <= cap * 1.1, f"{peak / 2**20:.1f} MiB traced for a {cap / 2**20:.0f} MiB cap"
    assert reassembler.stats["evicted"] > 0  # the cap was reached


@both
def test_limits_must_be_positive(reassembler_type: ReassemblerType) -> None:
    with pytest.raises(ValueError):
        reassembler_type(max_datagrams=0)


@both
@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=1, max_size=600), size=st.sampled_from([8, 16, 64, 256]),
       seed=st.integers(0, 2**32), copies=st.integers(0, 4))
def test_any_order_with_duplicates_gives_the_original(reassembler_type: ReassemblerType,
        data: bytes, size: int, seed: int, copies: int) -> None:
    rng = random.Random(seed)
    frags = pieces(data, size)
    last = frags.pop(rng.randrange(len(frags)))
    frags += [rng.choice(frags) for _ in range(copies)] if frags else []
    rng.shuffle(frags)
    reassembler = reassembler_type()
    assert feed(reassembler, frags) == []
    done = reassembler.add(KEY, 0.0, *last, 1)
    assert done is not None and done.payload == data
    assert len(reassembler) == 0 and reassembler.pending_bytes == 0


# -- through the decoders -------------------------------------------------------------------------

BIG = bytes(range(251)) * 20  # 5020 bytes


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("order", ["in order", "shuffled"])
def test_fragmented_echo_decodes_to_the_whole_payload(version: int, order: str) -> None:
    if version == 4:
        frags = craft.fragment4(craft.icmp4(A4, B4, craft.ECHO_REQUEST, 0, 42, 9, BIG, ip_id=77), 1480)
    else:
        ip = craft.icmp6(A6, B6, craft.ECHO_REQUEST6, 0, 42, 9, BIG)
        frags = craft.fragment6(ip, 1232, frag_id=0xDEADBEEF)
    frames = [craft.ether(f) for f in frags]
    if order == "shuffled":
        random.Random(1).shuffle(frames)
    run = Run(craft.LINKTYPE_ETHERNET, [(100.0 + i, f) for i, f in enumerate(frames)])
    packet = run.only
    assert run.packets[-1] is packet  # completed by the last fragment, stamped with its time
    assert (packet.ts, packet.ident, packet.seq, packet.payload) == (100.0 + len(frames) - 1, 42, 9, BIG)
    assert packet.wire_len == sum(map(len, frames))
    assert run.stats.fragments == {"fragments": len(frames), "reassembled": 1}


@both
@pytest.mark.parametrize("accelerated", [True, False])
@pytest.mark.parametrize("version", [4, 6])
def test_a_reassembled_message_carries_its_fragment_frames_as_captured(reassembler_type: ReassemblerType,
        version: int, accelerated: bool) -> None:
    """With keep_frames (evidence on) the message a datagram completes carries every fragment's frame, in the
    order the frames came, with their batch timestamps; whole messages carry none (their frame is their place
    in the batch: decode_frames)."""
    if version == 4:
        frags = craft.fragment4(craft.icmp4(A4, B4, craft.ECHO_REQUEST, 0, 42, 9, BIG, ip_id=77, ttl=3), 1480)
    else:
        frags = craft.fragment6(craft.icmp6(A6, B6, craft.ECHO_REQUEST6, 0, 42, 9, BIG), 1232, frag_id=9)
    whole = craft.ether(craft.icmp4(B4, A4, craft.ECHO_REPLY, 0, 1, 1, b"x" * 20), vlans=(7,))
    frames = [craft.ether(f, vlans=(5,)) for f in frags[1:] + frags[:1]] + [whole]
    buf, meta, timed = batch_of([(100.0 + i * 0.25, f) for i, f in enumerate(frames)])
    stats = DecodeStats()
    decoder = Decoder(craft.LINKTYPE_ETHERNET, stats, accelerated=accelerated,
                      reassembler=reassembler_type(stats=stats.fragments, keep_frames=True))
    packets = decoder.decode_frames(buf, meta)
    assert [p is None for p in packets] == [True] * (len(frames) - 2) + [False, False]
    reassembled, single = packets[-2], packets[-1]
    assert reassembled is not None and single is not None
    assert reassembled.payload == BIG and single.frames is None
    assert reassembled.frames == tuple(CapturedFrame(int(ts), round(ts % 1 * 1e6), f) for ts, f in timed[:-1])
    assert frames_of(buf, meta)[-1][1] == whole


@both
def test_frames_kept_per_datagram_are_bounded_and_counted(reassembler_type: ReassemblerType) -> None:
    stats: Counter[str] = Counter()
    reassembler = reassembler_type(stats=stats, keep_frames=True, max_fragments=4)
    frame = CapturedFrame(1, 2, b"f" * 50)
    for _ in range(10):  # the first piece resent: one piece held, ten frames offered
        assert reassembler.add(KEY, 0.0, 0, True, DATA[:64], 1, 50, frame) is None
    done = reassembler.add(KEY, 0.0, 64, False, DATA[64:128], 1, 50, frame)
    assert done is not None and done.frames == (frame,) * 4
    assert stats["frames_not_kept"] == 7


def test_fragmented_icmpv6_behind_extension_headers() -> None:
    headers = [craft.hop_by_hop(), craft.routing(4, 1, ["2001:db8::f"]), craft.dest_opts(b"\x01\x02\0\0")]
    ip = craft.icmp6(A6, B6, craft.ECHO_REPLY6, 0, 1, 2, BIG[:3000], ext_headers=headers,
                     checksum_dst="2001:db8::f")
    run = Run(craft.LINKTYPE_RAW, craft.fragment6(ip, 1024)[::-1])
    assert run.only.payload == BIG[:3000]


def test_fragments_of_v4_and_v6_and_several_hosts_interleave() -> None:
    streams = [
        craft.fragment4(craft.icmp4(A4, B4, 8, 0, 1, 1, BIG[:2000], ip_id=5), 512),
        craft.fragment4(craft.icmp4(B4, A4, 0, 0, 1, 1, BIG[:2000], ip_id=5), 512),  # same id, reversed
        craft.fragment6(craft.icmp6(A6, B6, 128, 0, 1, 1, BIG[:2000]), 512, frag_id=5),
    ]
    frames = [craft.ether(f) for group in zip(*streams, strict=True) for f in group]
    run = Run(1, frames)
    assert [p.payload for p in run.decoded] == [BIG[:2000]] * 3


def test_conflicting_overlap_through_the_decoder() -> None:
    good = craft.fragment4(craft.icmp4(A4, B4, 8, 0, 1, 1, BIG[:1000], ip_id=9), 256)
    evil = craft.fragment4(craft.icmp4(A4, B4, 8, 0, 1, 1, b"E" * 1000, ip_id=9), 256)
    run = Run(1, [craft.ether(f) for f in [good[0], evil[1], *good[1:]]])
    assert run.packets == [None] * 5  # the datagram is discarded: no frame completes it
    # what it held from offset 0 reaches the detector when good[1] conflicts: the forged copy first, then the
    # good one over it
    assert [p.payload for p in run.decoded[:2]] == [BIG[:248] + b"E" * 256, BIG[:504]]
    assert run.due[:2] == [(2, run.decoded[0]), (2, run.decoded[1])]
    assert run.stats.fragments["overlap"] == 1 and run.stats.fragments["partial"] == 2
    # the fragments the tombstone absorbs after it reach the detector too, headless, each on its own
    assert [p.runs for p in run.decoded[2:]] == [((512, 256),), ((768, 240),)]
    assert run.stats.fragments["headless"] == 2


def test_fragment_with_a_bad_checksum_after_reassembly() -> None:
    frags = craft.fragment4(craft.icmp4(A4, B4, 8, 0, 1, 1, BIG[:1000], bad_checksum=True), 256)
    run = Run(1, [craft.ether(f) for f in frags])
    assert run.only.payload == BIG[:1000] and run.stats.bad_checksum == 1 and not run.stats.errors
    assert Run(1, [craft.ether(f) for f in frags], verify_checksums=False).only.payload == BIG[:1000]


@both
def test_reassembler_limits_apply_through_the_decoder(reassembler_type: ReassemblerType) -> None:
    frags = craft.fragment4(craft.icmp4(A4, B4, 8, 0, 1, 1, BIG[:1000]), 256)
    stats = DecodeStats()
    decoder = Decoder(1, stats, reassembler=reassembler_type(timeout=5.0, stats=stats.fragments))
    assert [decoder.decode(t * 3.0, craft.ether(f)) for t, f in enumerate(frags)] == [None] * len(frags)
    assert stats.fragments["timeout"] == 1 and stats.unaccounted() == 0


@st.composite
def fragment_storms(draw: st.DrawFn) -> list[bytes]:
    """Fragments of a few datagrams sharing an id, some forged, shuffled, some cut or corrupted."""
    frames = []
    for version in draw(st.lists(st.sampled_from([4, 6]), min_size=1, max_size=3)):
        payload = draw(st.binary(min_size=1, max_size=200))
        size = draw(st.sampled_from([8, 24, 64]))
        if version == 4:
            frags = craft.fragment4(craft.icmp4(A4, B4, 8, 0, 1, 2, payload, ip_id=3), size)
        else:
            frags = craft.fragment6(craft.icmp6(A6, B6, 128, 0, 1, 2, payload), size, frag_id=3)
        frames += [craft.ether(f) for f in frags]
    frames = draw(st.permutations(frames))
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(frames) - 1))
        at = draw(st.integers(14, max(14, len(frames[i]) - 1)))
        if draw(st.booleans()):
            frames[i] = frames[i][:at]
        else:
            frames[i] = frames[i][:at] + bytes([draw(st.integers(0, 255))]) + frames[i][at + 1 :]
    return frames


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=fragment_storms(), verify=st.booleans())
def test_fragment_storms_keep_the_decoders_in_agreement(frames: list[bytes], verify: bool) -> None:
    Run(craft.LINKTYPE_ETHERNET, frames, verify_checksums=verify)


@st.composite
def reassembled_messages(draw: st.DrawFn) -> list[bytes]:
    """Fragments (8 bytes of payload each) of IPv4 and IPv6 datagrams carrying ICMP or ICMPv6 messages of any kind
    and length: echo or not, a checksum right or wrong, cut short to fewer bytes than the message's header; IPv6 ones
    with an ICMPv6 message right behind the fragment header, or behind a destination options header, or carrying
    ICMP (not ICMPv6)."""
    frames = []
    for ip_id in range(1, draw(st.integers(1, 3)) + 1):
        payload, bad = draw(st.binary(max_size=40)), draw(st.booleans())
        if draw(st.booleans()):
            message = craft.icmp4_message(draw(st.sampled_from([0, 8, 3, 11, 13, 42])), draw(st.integers(0, 3)), 7,
                                          ip_id, payload, bad_checksum=bad)
            message = message[: draw(st.integers(1, len(message)))]
            frames += [craft.ether(f) for f in craft.fragment4(craft.ipv4(A4, B4, 1, message, ip_id=ip_id), 8)]
            continue
        message = craft.icmp6_message(A6, B6, draw(st.sampled_from([128, 129, 1, 3, 135, 42])),
                                      draw(st.integers(0, 3)), 7, ip_id, payload, bad_checksum=bad)
        message = message[: draw(st.integers(1, len(message)))]
        inner = draw(st.sampled_from(["icmpv6", "options", "routed", "icmp"]))
        headers = {"options": [craft.dest_opts()], "routed": [craft.routing(0, 1, ["2001:db8::99"])]}.get(inner, [])
        packet = craft.ipv6(A6, B6, craft.PROTO_ICMP if inner == "icmp" else craft.PROTO_ICMPV6, message,
                            ext_headers=headers)
        frames += [craft.ether(f) for f in craft.fragment6(packet, 8, frag_id=ip_id)]
    return draw(st.permutations(frames))


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=reassembled_messages(), verify=st.booleans())
def test_reassembled_messages_keep_the_decoders_in_agreement(frames: list[bytes], verify: bool) -> None:
    """A reassembled IPv4 or IPv6 datagram's ICMP message made in C (Decoder) and by dpkt (DpktDecoder, the
    reference): the same record, counters and errors, whatever the message's type, length and checksum."""
    Run(craft.LINKTYPE_ETHERNET, frames, verify_checksums=verify)


@pytest.mark.skipif(fast_decoder._fastdecode is None, reason="the C accelerator is turned off or not built")
@pytest.mark.parametrize("version", [4, 6])
def test_a_reassembled_echo_message_is_made_in_c(monkeypatch: pytest.MonkeyPatch, version: int) -> None:
    """A tiny-fragment flood is a datagram every few frames, a jumbo-fragment flood a big one every forty: a whole,
    verified ICMP or ICMPv6 message of a reassembled datagram is made in C, not through dpkt (IcmpLayer._icmp)."""
    def reference(*args: object, **kwargs: object) -> None:
        raise AssertionError("the Python path made it")

    monkeypatch.setattr(Decoder, "_icmp", reference)
    if version == 4:
        fragments_ = craft.fragment4(craft.icmp4(A4, B4, 8, 0, 7, 1, bytes(range(64)), ip_id=9), 8)
    else:
        fragments_ = craft.fragment6(craft.icmp6(A6, B6, 128, 0, 7, 1, bytes(range(64))), 8, frag_id=9)
    frames = [craft.ether(f) for f in fragments_]
    decoder = Decoder(craft.LINKTYPE_ETHERNET, DecodeStats())
    packets = [decoder.decode(float(i), frame, len(frame)) for i, frame in enumerate(frames)]
    assert packets[:-1] == [None] * (len(frames) - 1)
    assert packets[-1] is not None and packets[-1].payload == bytes(range(64))


# -- abandoned datagrams: what they held reaches the detector -------------------------------------------------


@both
def test_a_conflicting_overlap_hands_on_both_versions_from_offset_0(reassembler_type: ReassemblerType) -> None:
    """A receiver reading the fragments may keep the first copy or the last: both reach the detector."""
    stats: Counter[str] = Counter()
    reassembler = reassembler_type(stats=stats)
    frags = pieces(DATA, 128)
    forged = (64, True, b"X" * 128)
    assert feed(reassembler, [frags[0], forged], ts=5.0) == []
    partials = reassembler.take_partials()
    assert [p.payload for p in partials] == [DATA[:128], DATA[:64] + b"X" * 128]
    assert all(p.partial and p.key == KEY and p.ts == 5.0 and p.proto == 1 for p in partials)
    assert stats["overlap"] == 1 and stats["partial"] == 2
    assert reassembler.take_partials() == []  # taken once
    for offset, more, data in frags[1:]:  # the rest of the datagram is absorbed: each handed on, headless
        assert reassembler.add(KEY, 6.0, offset, more, data, 1) is None
        absorbed = reassembler.take_partials()
        assert [(p.runs, p.payload, p.partial) for p in absorbed] == [(((offset, len(data)),), data, True)]
    assert stats["partial"] == 2 and stats["headless"] == len(frags) - 1
    assert reassembler.pending_bytes == DATAGRAM_OVERHEAD  # nothing held for them


@both
def test_partials_not_taken_are_replaced_by_the_next_call(reassembler_type: ReassemblerType) -> None:
    """The reassembler holds the partials of its last call only (add, expire, flush): its memory stays bounded
    whoever uses it; the decoder takes them after each call."""
    reassembler = reassembler_type(max_datagrams=1)
    for key in range(5):
        reassembler.add(key, float(key), 0, True, b"a" * 8, 1)
    assert [p.key for p in reassembler.take_partials()] == [3]


@both
def test_an_overlap_whose_rewrite_starts_at_offset_0_hands_on_what_it_covers(reassembler_type: ReassemblerType) -> None:
    stats: Counter[str] = Counter()
    reassembler = reassembler_type(stats=stats)
    feed(reassembler, [(128, True, DATA[128:256]), (0, True, b"Y" * 256)])
    # the held copy has no offset 0: headless; the rewrite's covers it
    assert [(p.payload, p.runs) for p in reassembler.take_partials()] == [(DATA[128:256], ((128, 128),)),
                                                                          (b"Y" * 256, ())]
    assert stats["partial"] == 1 and stats["headless"] == 1


@both
def test_an_unfinished_datagram_hands_on_its_bytes_from_offset_0_up_to_the_first_hole(
        reassembler_type: ReassemblerType
) -> None:
    stats: Counter[str] = Counter()
    reassembler = reassembler_type(timeout=30.0, stats=stats)
    frags = pieces(DATA, 128)
    feed(reassembler, [frags[3], frags[0], frags[1]], ts=100.0)  # a hole at 256
    feed(reassembler, [frags[2]], key="no offset 0", ts=101.0)
    assert reassembler.take_partials() == []
    reassembler.expire(131.5)
    partials = reassembler.take_partials()
    assert [(p.payload, p.ts, p.key, p.wire_len, p.partial, p.runs) for p in partials] == [
        (DATA[:256], 131.5, KEY, 300, True, ()),
        (DATA[384:512], 131.5, KEY, 300, True, ((384, 128),)),  # past the hole: headless
        (DATA[256:384], 131.5, "no offset 0", 100, True, ((256, 128),))]
    assert stats["timeout"] == 2 and stats["partial"] == 1 and stats["headless"] == 2
    assert len(reassembler) == 0 and reassembler.pending_bytes == 0


@both
def test_evicted_and_unfinished_datagrams_hand_on_their_bytes(reassembler_type: ReassemblerType) -> None:
    stats: Counter[str] = Counter()
    reassembler = reassembler_type(max_datagrams=1, stats=stats)
    reassembler.add(1, 0.0, 0, True, b"a" * 8, 1)
    reassembler.add(2, 1.0, 0, True, b"b" * 8, 1)
    assert [(p.key, p.payload, p.ts) for p in reassembler.take_partials()] == [(1, b"a" * 8, 1.0)]
    reassembler.flush()  # the end of the input
    assert [(p.key, p.payload, p.ts) for p in reassembler.take_partials()] == [(2, b"b" * 8, 1.0)]
    assert stats["evicted"] == 1 and stats["unfinished"] == 1 and stats["partial"] == 2
    assert len(reassembler) == 0 and reassembler.pending_bytes == 0


@both
def test_datagrams_discarded_for_their_shape_hand_on_what_they_held(reassembler_type: ReassemblerType) -> None:
    stats: Counter[str] = Counter()
    reassembler = reassembler_type(max_datagram_size=2000, max_fragments=16, stats=stats)
    got = {}
    for key, frags in [("too large", [(0, True, DATA), (1024, True, DATA)]),
                       ("too many", [(o, True, DATA[o : o + 8]) for o in range(0, 17 * 16, 16)]),  # the 17th kills
                       ("inconsistent", [(0, True, DATA[:512]), (128, False, DATA[128:256])])]:
        feed(reassembler, frags, key=key)
        got |= {(p.key, bool(p.runs)): (p.payload, p.runs) for p in reassembler.take_partials()}
    past_holes = range(16, 17 * 16, 16)  # the 16 pieces after the first, each after a hole
    assert got == {("too large", False): (DATA, ()), ("too many", False): (DATA[:8], ()),
                   ("too many", True): (b"".join(DATA[o : o + 8] for o in past_holes),
                                        tuple((o, 8) for o in past_holes)),
                   ("inconsistent", False): (DATA[:512], ())}
    assert stats["too_large"] == stats["too_many_fragments"] == stats["inconsistent"] == 1
    assert stats["partial"] == 3 and stats["headless"] == 1


@both
def test_a_datagram_abandoned_without_offset_0_hands_on_its_runs_headless(reassembler_type: ReassemblerType) -> None:
    """A flood of spoofed fragments evicted an exfiltration's datagram between its first fragment (the ICMP header
    alone) and its data; the data then started a datagram without offset 0, whose bytes were counted, never
    analysed. Every run of bytes an abandoned datagram holds past its partial is handed on, headless."""
    stats: Counter[str] = Counter()
    reassembler = reassembler_type(max_datagrams=1, stats=stats)
    frags = pieces(DATA, 128)
    feed(reassembler, [frags[2], frags[1], frags[4]], ts=5.0)  # no offset 0; a hole at 384
    reassembler.add("other", 6.0, 8, False, b"z" * 8, 1)  # evicts KEY's
    (headless,) = reassembler.take_partials()
    assert headless.partial and headless.key == KEY and (headless.ts, headless.sent) == (6.0, 5.0)
    assert headless.payload == DATA[128:384] + DATA[512:640] and headless.runs == ((128, 256), (512, 128))
    assert stats["evicted"] == 1 and stats["headless"] == 1 and stats["partial"] == 0
    reassembler.flush()
    assert [(p.payload, p.runs) for p in reassembler.take_partials()] == [(b"z" * 8, ((8, 8),))]


@both
def test_the_bytes_after_a_partials_hole_are_handed_on_headless(reassembler_type: ReassemblerType) -> None:
    stats: Counter[str] = Counter()
    reassembler = reassembler_type(timeout=30.0, stats=stats)
    frags = pieces(DATA, 128)
    feed(reassembler, [frags[0], frags[2], frags[3], frags[5]], ts=100.0)
    reassembler.expire(131.0)
    partial, headless = reassembler.take_partials()
    assert partial.payload == DATA[:128] and partial.runs == ()
    assert headless.payload == DATA[256:512] + DATA[640:768] and headless.runs == ((256, 256), (640, 128))
    assert stats["partial"] == 1 and stats["headless"] == 1


@both
def test_a_conflicting_fragment_of_a_headless_datagram_is_a_run_of_its_own(reassembler_type: ReassemblerType) -> None:
    """Both copies are seen, as for a partial's: the held bytes in one datagram, the rewrite in a second."""
    stats: Counter[str] = Counter()
    reassembler = reassembler_type(stats=stats)
    frags = pieces(DATA, 128)
    feed(reassembler, [frags[1], (192, True, b"X" * 128)])
    held, rewritten = reassembler.take_partials()
    assert (held.payload, held.runs) == (DATA[128:256], ((128, 128),))
    assert (rewritten.payload, rewritten.runs) == (b"X" * 128, ((192, 128),))
    assert stats["overlap"] == 1 and stats["headless"] == 2 and stats["partial"] == 0
    feed(reassembler, [frags[0]])  # the tombstone absorbs the rest, handed on headless (a receiver reads it)
    assert [(p.payload, p.runs) for p in reassembler.take_partials()] == [(DATA[:128], ((0, 128),))]


@both
def test_a_completed_datagram_is_no_partial(reassembler_type: ReassemblerType) -> None:
    reassembler = reassembler_type()
    done = feed(reassembler, pieces(DATA, 128))
    assert done == [Datagram(1, DATA, 800)] and not done[0].partial
    reassembler.flush()
    assert reassembler.take_partials() == []


# -- the C reassembler against the reference --------------------------------------------------------------------


@st.composite
def reassembly_runs(draw: st.DrawFn) -> tuple[dict[str, object], list[tuple]]:
    """Limits small enough to be reached, then calls: fragments of a few datagrams (true slices, resent, cut
    anywhere, rewritten), times that jump and go back, expire, flush, clear and take_partials between them."""
    limits = {
        "max_datagrams": draw(st.integers(1, 5)),
        "timeout": draw(st.sampled_from([0.5, 2.0, 30.0])),
        "max_datagram_size": draw(st.sampled_from([48, 200, 65535])),
        "max_bytes": draw(st.sampled_from([DATAGRAM_OVERHEAD, 1500, 4000, 1 << 20])),
        "max_fragments": draw(st.integers(1, 8)),
        "keep_frames": draw(st.booleans()),
    }
    truths = {key: random.Random(draw(st.integers(0, 2**16))).randbytes(draw(st.sampled_from([1, 16, 40, 100, 250])))
              for key in range(draw(st.integers(1, 4)))}
    calls: list[tuple] = []
    ts = 100.0
    for _ in range(draw(st.integers(1, 60))):
        ts += draw(st.sampled_from([0.0, 0.0, 0.1, 1.0, 3.0, -0.5]))
        what = draw(st.sampled_from(["add"] * 8 + ["expire", "flush", "clear", "take"]))
        if what != "add":
            calls.append((what, ts))
            continue
        key = draw(st.sampled_from(sorted(truths)))
        truth = truths[key]
        offset = 8 * draw(st.integers(0, (len(truth) + 7) // 8))
        length = 8 * draw(st.sampled_from([0, 1, 2, 4, 8, 32])) + draw(st.sampled_from([0, 0, 3]))
        end = min(len(truth), offset + length)
        data = truth[offset:end]
        if draw(st.integers(0, 5)) == 0:
            data = draw(st.binary(min_size=0, max_size=40))  # a forged or rewritten fragment
        more = end < len(truth) if draw(st.integers(0, 6)) else draw(st.booleans())
        proto = draw(st.sampled_from([1, 58]))
        if draw(st.integers(0, 2)) == 0:  # as the C decoder hands a fragment whose frame it keeps
            head, tail = draw(st.integers(0, 40)), draw(st.integers(0, 12))
            frame = CapturedFrame(int(ts), 0, b"h" * head + data + b"t" * tail)
            calls.append(("add_from_frame", key, ts, offset, more, proto, frame, head, len(data)))
            continue
        frame = CapturedFrame(int(ts), 0, b"f" * draw(st.integers(0, 60))) if draw(st.booleans()) else None
        calls.append(("add", key, ts, offset, more, data, proto, draw(st.integers(0, 90)), frame))
    return limits, calls


@pytest.mark.skipif(C_REASSEMBLER is None, reason="C not built")
@settings(max_examples=examples(1500), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run=reassembly_runs())
def test_the_c_reassembler_answers_as_the_reference(run: tuple[dict[str, object], list[tuple]]) -> None:
    """Every call's answer, the partials handed on, every counter, the bytes accounted and the datagrams held."""
    limits, calls = run
    reference, fast = Reassembler(**limits), C_REASSEMBLER(**limits)  # type: ignore[misc]
    for call in calls:
        what, rest = call[0], call[1:]
        if what in ("add", "add_from_frame"):
            got = [getattr(r, what)(*rest) for r in (reference, fast)]
        elif what == "expire":
            got = [r.expire(rest[0]) for r in (reference, fast)]
        elif what == "take":
            got = [r.take_partials() for r in (reference, fast)]
        else:
            got = [getattr(r, what)() for r in (reference, fast)]
        assert got[0] == got[1], call
        assert reference.has_partials == fast.has_partials, call
        assert reference.stats == fast.stats, call
        assert (len(reference), reference.pending_bytes) == (len(fast), fast.pending_bytes), call
    reference.flush()
    fast.flush()
    assert reference.take_partials() == fast.take_partials()
    assert reference.stats == fast.stats and fast.pending_bytes == 0


class _SeenCounter(Counter):
    """Counts as a Counter does, and remembers every name set (a __setitem__ of its own)."""

    def __init__(self) -> None:
        super().__init__()
        self.set: list[str] = []

    def __setitem__(self, name: str, value: int) -> None:
        self.set.append(name)
        super().__setitem__(name, value)


@both
def test_the_counters_are_set_through_a_counters_own_setitem(reassembler_type: ReassemblerType) -> None:
    """A Counter is set as a dict in C; a stats mapping whose __setitem__ is its own is still called for each count."""
    plain, seen = Counter(), _SeenCounter()
    for stats in (plain, seen):
        reassembler = reassembler_type(stats=stats, max_datagrams=1)
        feed(reassembler, pieces(DATA, 256) + pieces(DATA, 128)[:2])
        feed(reassembler, pieces(DATA, 256)[:1], key="other")
    assert plain == seen == Counter(fragments=7, reassembled=1, evicted=1, partial=1)
    assert Counter(seen.set) == seen


@pytest.mark.skipif(C_REASSEMBLER is None, reason="C not built")
def test_the_c_reassembler_takes_only_bytes_and_offsets_that_are_not_negative() -> None:
    fast = C_REASSEMBLER()  # type: ignore[misc]
    with pytest.raises(TypeError):
        fast.add(KEY, 0.0, 0, True, bytearray(8), 1)
    with pytest.raises(ValueError):
        fast.add(KEY, 0.0, -8, True, bytes(8), 1)
    assert fast.add(KEY, 0.0, 0, False, bytes(8), 1, wire_len=50) == Datagram(1, bytes(8), 50)


@both
@pytest.mark.parametrize("keep_frames", [False, True])
def test_a_fragment_added_from_its_frame_is_the_fragment_its_frame_carries(reassembler_type: ReassemblerType,
                                                                          keep_frames: bool) -> None:
    """add_from_frame(key, ts, offset, more, proto, frame, at, size) is add() of frame.data[at : at + size] with
    the frame's captured length as its wire length and the frame kept: in any order, with a duplicate, a
    conflicting rewrite, and a span that runs past the frame (cut as a slice cuts it)."""
    def framed(data: bytes, head: int = 14, tail: int = 4) -> tuple[CapturedFrame, int, int]:
        return CapturedFrame(7, 0, b"\xee" * head + data + b"\xaa" * tail), head, len(data)

    reference, fast = (reassembler_type(keep_frames=keep_frames) for _ in range(2))
    frags = pieces(DATA, 200)
    got = [fast.add_from_frame(KEY, 1.0, o, more, 1, *framed(d)) for o, more, d in reversed(frags)]
    want = [reference.add(KEY, 1.0, o, more, d, 1, 14 + len(d) + 4, framed(d)[0]) for o, more, d in reversed(frags)]
    assert got == want and got[-1] is not None and got[-1].payload == DATA
    assert fast.stats == reference.stats and fast.pending_bytes == reference.pending_bytes == 0
    frame, _, _ = framed(DATA[:96], tail=0)
    assert fast.add_from_frame(KEY, 2.0, 0, True, 1, frame, 14, 500) is None  # past the frame: its 96 bytes
    assert fast.add_from_frame(KEY, 2.0, 0, True, 1, frame, 14, 96) is None  # a duplicate
    assert fast.add_from_frame(KEY, 2.0, 96, False, 1, *framed(b"\x01" * 8)) == Datagram(
        1, DATA[:96] + b"\x01" * 8, 2 * 110 + 26, (frame, frame, framed(b"\x01" * 8)[0]) if keep_frames else None)
    assert fast.add_from_frame(KEY, 3.0, 0, True, 1, *framed(DATA[:64])) is None
    assert fast.add_from_frame(KEY, 3.0, 8, True, 1, *framed(b"\x02" * 16)) is None  # conflicts: handed on
    assert [p.payload for p in fast.take_partials()] == [DATA[:64], DATA[:8] + b"\x02" * 16 + DATA[24:64]]
    for at, size in ((-1, 8), (0, -8)):
        with pytest.raises(ValueError):
            fast.add_from_frame(KEY, 4.0, 0, True, 1, frame, at, size)


@pytest.mark.skipif(C_REASSEMBLER is None, reason="C not built")
def test_the_c_reassembler_holds_a_kept_frames_bytes_not_a_copy_of_its_fragment() -> None:
    """The C decoder copies a fragment's frame once (the CapturedFrame kept for evidence): a whole fragment the
    reassembler holds is that frame's bytes, referenced. A frame it does not keep (max_fragments reached) and a
    part of a fragment (the rest held already) are copied, so that what is held is what is accounted."""
    def holders(frame: CapturedFrame) -> int:
        """References to the frame's bytes besides the frame's own."""
        return sys.getrefcount(frame.data) - 2

    fast = C_REASSEMBLER(keep_frames=True, max_fragments=3)  # type: ignore[misc]
    first = CapturedFrame(1, 0, b"\xee" * 14 + DATA[:256])
    fast.add_from_frame(KEY, 1.0, 0, True, 1, first, 14, 256)
    held = holders(first)
    assert held == 1
    overlapping = CapturedFrame(1, 0, b"\xee" * 14 + DATA[128:384])
    fast.add_from_frame(KEY, 1.0, 128, True, 1, overlapping, 14, 256)
    held = holders(overlapping)
    assert held == 0
    fast.add(KEY, 1.0, 0, True, DATA[:8], 1, 0, CapturedFrame(1, 0, b"x"))  # a duplicate: the third frame kept
    not_kept = CapturedFrame(1, 0, b"\xee" * 14 + DATA[384:392])
    fast.add_from_frame(KEY, 1.0, 384, True, 1, not_kept, 14, 8)
    held = holders(not_kept)
    assert held == 0 and fast.stats["frames_not_kept"] == 1
    assert fast.add_from_frame(KEY, 1.0, 392, False, 1, first, 14, 8) is None  # a fourth piece: too many
    held = holders(first)
    assert fast.stats["too_many_fragments"] == 1 and held == 0  # the tombstone holds nothing
    with pytest.raises(TypeError):
        fast.add_from_frame(KEY, 4.0, 0, True, 1, (7, 0, bytearray(8)), 0, 8)


def first_fragments(version: int, seqs: list[int], payload: bytes) -> list[bytes]:
    """The first fragment alone of each of several fragmented echo requests (R7: never completed)."""
    if version == 4:
        return [craft.fragment4(craft.icmp4(A4, B4, 8, 0, 42, s, payload, ip_id=s), 1480)[0] for s in seqs]
    return [craft.fragment6(craft.icmp6(A6, B6, 128, 0, 42, s, payload), 1232, frag_id=s)[0] for s in seqs]


DECODERS = [(Decoder, {}), (Decoder, {"accelerated": False}), (DpktDecoder, {})]


@both
@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize(("cls", "extra"), DECODERS)
def test_fragments_that_never_complete_reach_the_detector_in_time_order(reassembler_type: ReassemblerType,
        version: int, cls: type[DpktDecoder], extra: dict[str, bool]) -> None:
    """R7: first fragments only. Each datagram's message, cut at its first hole, is handed on when it times
    out (before the packet of the frame that made it due) or at the end of the input (flush)."""
    f1, f2, f3 = (craft.ether(f) for f in first_fragments(version, [1, 2, 3], BIG))
    whole = craft.ether(craft.icmp4(B4, A4, 0, 0, 5, 5, b"w" * 20))
    buf, meta, _ = batch_of([(100.0, f1), (110.0, f2), (120.0, whole), (121.0, f3)])
    cut = BIG[: 1472 if version == 4 else 1224]
    for frames_wanted in (False, True):
        stats = DecodeStats()
        decoder = cls(craft.LINKTYPE_ETHERNET, stats, **extra,
                      reassembler=reassembler_type(timeout=15.0, stats=stats.fragments, keep_frames=frames_wanted))
        if frames_wanted:
            packets = decoder.decode_frames(buf, meta)
            assert [p is None for p in packets] == [True, True, False, True]
            due = decoder.due
            assert [(i, p.seq, p.ts, p.payload) for i, p in due] == [(3, 1, 121.0, cut)]
            assert due[0][1].frames == (CapturedFrame(100, 0, f1),)
        else:
            packets = decoder.decode_batch(buf, meta)
            assert [(p.seq, p.ts) for p in packets] == [(5, 120.0), (1, 121.0)]
            assert packets[1].payload == cut and packets[1].ident == 42 and packets[1].is_echo_request
        ended = decoder.flush()
        assert [(p.seq, p.ts, p.payload) for p in ended] == [(2, 121.0, cut), (3, 121.0, cut)]
        assert stats.fragments == {"fragments": 3, "timeout": 1, "unfinished": 2, "partial": 3}
        assert stats.bad_checksum == 3 and stats.unaccounted() == 0


@pytest.mark.parametrize(("cls", "extra"), DECODERS)
def test_a_harmless_first_copy_and_an_overlapping_rewrite_both_reach_the_detector(
        cls: type[DpktDecoder], extra: dict[str, bool]) -> None:
    """R6: the first fragment carries harmless bytes, a second rewrites bytes 24.. with data (a last-wins receiver
    reads it), the last completes the datagram: the decoy's message and the rewritten one are both handed on."""
    data = bytes(random.Random(6).randbytes(2000))
    real = craft.icmp4(A4, B4, 8, 0, 7, 1, data, ip_id=30)
    decoy = real[:44] + bytes(k & 0xFF for k in range(44, len(real)))
    first, last = craft.fragment4(decoy, 1480)
    rewrite = craft.ipv4(A4, B4, 1, real[44:1500], ip_id=30, flags_offset=0x2000 | 3)  # MF, offset 24
    buf, meta, _ = batch_of([(10.0, craft.ether(f)) for f in (first, rewrite, last)])
    stats = DecodeStats()
    packets = cls(craft.LINKTYPE_ETHERNET, stats, **extra).decode_batch(buf, meta)
    assert [p.payload for p in packets[:2]] == [decoy[28:1500], real[28:1500]]
    assert len(packets) == 3 and packets[2].payload == last[20:]  # the last fragment, absorbed: headless
    assert stats.fragments == {"fragments": 3, "overlap": 1, "partial": 2, "headless": 1} and stats.unaccounted() == 0


@pytest.mark.parametrize("evidence", [True, False])
def test_the_pipeline_hands_on_fragments_left_waiting_when_the_clock_advances_and_at_the_end(
        tmp_path: Path, evidence: bool) -> None:
    """Live, the clock advancing past a datagram's timeout hands it on (Pipeline.advance); at the end of a replay,
    every datagram still waiting (Pipeline.finish, before the detector's flush). Evidence then holds the partial
    message as the fragment frames it came in."""
    cfg = Config()
    cfg.output.log_dir = str(tmp_path)
    cfg.output.evidence.enabled = evidence
    pipeline = Pipeline(cfg, [])
    decoder = pipeline.decoder_for(craft.LINKTYPE_ETHERNET)
    firsts = [craft.ether(f) for f in first_fragments(4, list(range(1, 41)), random.Random(4).randbytes(3000))]
    buf, meta, _ = batch_of([(1000.0 + i, f) for i, f in enumerate(firsts[:20])])
    pipeline.feed_batch(decoder, buf, meta)
    assert pipeline.detector.stats.packets == 0
    pipeline.advance(1019.0 + cfg.decode.fragment_timeout + 0.5)  # the wire is quiet: all 20 time out
    assert pipeline.detector.stats.packets == 20 and pipeline.decode_stats.fragments["timeout"] == 20
    buf, meta, _ = batch_of([(1100.0 + i, f) for i, f in enumerate(firsts[20:])])
    pipeline.feed_batch(decoder, buf, meta)
    pipeline.finish()
    pipeline.close()
    assert pipeline.detector.stats.packets == 40 and pipeline.decode_stats.fragments["unfinished"] == 20
    assert pipeline.decode_stats.unaccounted() == 0
    assert pipeline.notices_emitted > 0
    if evidence:
        files = list((tmp_path / "evidence").glob("*.pcap"))
        assert files
        with files[0].open("rb") as f:
            held = {bytes(frame) for _, frame in dpkt.pcap.Reader(f)}
        assert held and held <= set(firsts)


@pytest.mark.parametrize("accelerated", [True, False])
def test_the_production_decoder_reads_a_plain_ipv4_fragment_header_without_dpkt(
        monkeypatch: pytest.MonkeyPatch, accelerated: bool) -> None:
    """A tiny-fragment flood costs no dpkt object per fragment (issue 13): a fragment behind a 20-byte IPv4
    header is read by the struct path (decode/fast.py), so that the equivalence tests above compare that path
    with the reference; only a header with options, or one that does not parse, still goes to dpkt."""
    from icmpsensor.decode import ip

    def refuse(*args: object) -> None:
        raise AssertionError("dpkt read a plain fragment header")

    monkeypatch.setattr(ip, "_IP4Header", refuse)
    datagram = craft.icmp4(A4, B4, 8, 0, 7, 1, DATA, ip_id=9)
    frames = [craft.ether(f) for f in craft.fragment4(datagram, 64)]
    buf, meta, _ = batch_of([(1.0, f) for f in reversed(frames)])
    stats = DecodeStats()
    packets = Decoder(craft.LINKTYPE_ETHERNET, stats, accelerated=accelerated).decode_batch(buf, meta)
    assert [(p.seq, p.payload) for p in packets] == [(1, DATA)]
    assert stats.fragments["reassembled"] == 1 and stats.unaccounted() == 0


@pytest.mark.parametrize("accelerated", [True, False])
def test_the_production_decoder_reads_a_plain_ipv6_fragment_header_without_dpkt(
        monkeypatch: pytest.MonkeyPatch, accelerated: bool) -> None:
    """As over IPv4: a fragment header right behind the IPv6 header is read by the struct path (the dpkt path
    took ~3 times as long a fragment: a jumbo-fragment flood, a quarter of it IPv6, spent a quarter of its time
    there); the reassembled datagram's message is still walked by the reference path."""
    import dpkt

    def refuse(*args: object) -> None:
        raise AssertionError("dpkt read a plain fragment header")

    datagram = craft.icmp6(A6, B6, 128, 0, 7, 1, DATA)
    frames = [craft.ether(f) for f in craft.fragment6(datagram, 64, frag_id=77)]
    monkeypatch.setattr(dpkt.ip6, "IP6FragmentHeader", refuse)
    buf, meta, _ = batch_of([(1.0, f) for f in reversed(frames)])
    stats = DecodeStats()
    packets = Decoder(craft.LINKTYPE_ETHERNET, stats, accelerated=accelerated).decode_batch(buf, meta)
    assert [(p.seq, p.payload) for p in packets] == [(1, DATA)]
    assert stats.fragments["reassembled"] == 1 and stats.unaccounted() == 0


# -- fragments handed to the reassembler from the C decoder (decode/_fastdecode.c hand_fragment) -----------------


def decode_both_ways(frames: list[tuple[float, bytes]], reassembler_type: ReassemblerType,
                     **limits: object) -> tuple[list, list]:
    """decode_frames and due of the C batch path and of the Python one, each with its own reassembler made by
    reassembler_type(**limits), and their counters: (C's, Python's)."""
    buf, meta, _ = batch_of(frames)
    results = []
    for accelerated in (True, False):
        stats = DecodeStats()
        decoder = Decoder(craft.LINKTYPE_ETHERNET, stats, accelerated=accelerated,
                          reassembler=reassembler_type(stats=stats.fragments, **limits))
        packets = decoder.decode_frames(buf, meta)
        results.append((packets, decoder.due, stats))
    return results[0], results[1]


@pytest.mark.skipif(fast_decoder._fastdecode is None, reason="C not built")
@pytest.mark.parametrize("version", [4, 6])
def test_the_c_decoder_hands_plain_fragments_to_the_reassembler_itself(version: int) -> None:
    """Fragments behind a plain header never reach the Python decoder: the C batch path hands them to the
    reassembler and returns only what completes or is handed on, with the frame index it came at."""
    if version == 4:
        frags = craft.fragment4(craft.icmp4(A4, B4, 8, 0, 42, 9, BIG[:1000], ip_id=77), 256)
    else:
        frags = craft.fragment6(craft.icmp6(A6, B6, 128, 0, 42, 9, BIG[:1000]), 256, frag_id=77)
    buf, meta, _ = batch_of([(100.0 + i, craft.ether(f)) for i, f in enumerate(frags)])
    reassembler = fragments.new_reassembler(keep_frames=True)
    packets, rest, assembled, handed = fast_decoder._fastdecode.decode_batch(
        buf, meta, fast_decoder._fastdecode.LINK_ETHERNET, True, [0] * 512, [0, 0], (reassembler, CapturedFrame))
    assert rest == [] and handed == len(frags) and packets == [None] * len(frags)
    [(index, ts, src, dst, datagram, partials)] = assembled
    assert (index, ts, partials) == (len(frags) - 1, 100.0 + len(frags) - 1, None)
    assert (src, dst) == ((addr(A4), addr(B4)) if version == 4 else (addr(A6), addr(B6)))
    assert len(datagram.frames) == len(frags) and datagram.frames[0].data == craft.ether(frags[0])


class _Recording(Reassembler):
    """The reference, recording how the C decoder hands it each fragment."""

    def __init__(self, **limits: object) -> None:
        super().__init__(**limits)  # type: ignore[arg-type]
        self.calls: list[str] = []

    def add(self, *args: object, **kwargs: object) -> Datagram | None:
        self.calls.append("add")
        return super().add(*args, **kwargs)  # type: ignore[arg-type]

    def add_from_frame(self, *args: object) -> Datagram | None:
        self.calls.append("add_from_frame")
        return super().add_from_frame(*args)  # type: ignore[arg-type]


@pytest.mark.skipif(fast_decoder._fastdecode is None, reason="C not built")
@pytest.mark.parametrize("keep_frames", [False, True])
def test_the_c_decoder_hands_a_kept_frame_with_where_its_fragment_is(keep_frames: bool) -> None:
    """With frames kept, a fragment is handed as its frame and the span its data takes in it (add_from_frame: no
    copy of the data besides the frame's); without, as its data (add)."""
    frags = craft.fragment4(craft.icmp4(A4, B4, 8, 0, 42, 9, BIG[:1000], ip_id=77), 256)
    frags6 = craft.fragment6(craft.icmp6(A6, B6, 128, 0, 42, 9, BIG[:1000]), 256, frag_id=77)
    buf, meta, _ = batch_of([(100.0 + i, craft.ether(f)) for i, f in enumerate(frags + frags6)])
    reassembler = _Recording(keep_frames=keep_frames)
    _, _, assembled, _ = fast_decoder._fastdecode.decode_batch(
        buf, meta, fast_decoder._fastdecode.LINK_ETHERNET, True, [0] * 512, [0, 0],
        (reassembler, CapturedFrame if keep_frames else None))
    handed = ["add_from_frame", "add"] if keep_frames else ["add"]  # the reference's add_from_frame calls add
    assert reassembler.calls == handed * len(frags + frags6)
    assert [item[4].payload[8:] for item in assembled] == [BIG[:1000]] * 2


@both
@pytest.mark.parametrize("keep_frames", [False, True])
def test_a_fragment_after_a_frame_left_to_python_is_left_too(reassembler_type: ReassemblerType,
                                                             keep_frames: bool) -> None:
    """The reassembler must see fragments in frame order. A fragment the C path leaves (IPv4 options: dpkt's)
    followed by one it could take: with room for one datagram, the first must be evicted by the second (its
    partial handed on at the second's frame), not the other way round."""
    with_options = craft.fragment4(craft.ipv4(A4, B4, 1, craft.icmp4_message(8, 0, 1, 1, BIG[:600]), ip_id=1,
                                              options=b"\x94\x04\0\0"), 256)
    plain = craft.fragment4(craft.icmp4(B4, A4, 8, 0, 2, 2, BIG[:600], ip_id=2), 256)
    frames = [(100.0, craft.ether(with_options[0])), (101.0, craft.ether(plain[0])),
              (102.0, craft.ether(plain[1])), (103.0, craft.ether(plain[2]))]
    fast, reference = decode_both_ways(frames, reassembler_type, max_datagrams=1, keep_frames=keep_frames)
    assert fast[0] == reference[0] and fast[1] == reference[1] and fast[2] == reference[2]
    assert [(i, p.ident) for i, p in fast[1]] == [(1, 1)]  # the options datagram, evicted by the plain one
    assert fast[0][3] is not None and fast[0][3].ident == 2


@both
@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=fragment_storms(), keep_frames=st.booleans(), max_datagrams=st.sampled_from([1, 2, 4096]),
       timeout=st.sampled_from([0.5, 30.0]))
def test_the_c_decoders_fragments_decode_as_the_python_decoders(
        reassembler_type: ReassemblerType, frames: list[bytes], keep_frames: bool, max_datagrams: int,
        timeout: float) -> None:
    """Fragment storms (forged, cut, corrupted, interleaved with the v4 and v6 datagrams of others) in one batch:
    the C path's packets, abandoned datagrams' messages with their frame indexes, and counters are the Python
    path's, with either reassembler."""
    timed = [(1000.0 + i * 0.25, f) for i, f in enumerate(frames)]
    fast, reference = decode_both_ways(timed, reassembler_type, max_datagrams=max_datagrams, timeout=timeout,
                                       keep_frames=keep_frames)
    assert fast[0] == reference[0]
    assert fast[1] == reference[1]
    assert fast[2] == reference[2]


@st.composite
def headless_floods(draw: st.DrawFn) -> list[bytes]:
    """Fragments without their datagram's first (a flood of spoofed pieces) of IPv4 datagrams carrying ICMP, IP-in-IP
    or GRE (a tunnel's outer datagram: dropped when headless, counted when partial) and of IPv6 ones, some sources
    sending more than one piece, among first fragments that never complete (partials, decoded) and whole
    datagrams."""
    frames = []
    for i in range(draw(st.integers(1, 24))):
        kind = draw(st.sampled_from(["v4", "v4", "v6", "ipip", "gre", "first", "whole"]))
        ident, data = draw(st.integers(1, 4)), draw(st.binary(min_size=8, max_size=40))
        src = f"100.64.{i % 3}.{draw(st.integers(1, 4))}"
        offset = draw(st.integers(1, 40)) * 8
        if kind == "v6":
            frame = _v6_fragment(data[:len(data) // 8 * 8], offset, draw(st.booleans()), ident=ident)
        elif kind == "first":
            frame = craft.ipv4(src, B4, 1, craft.icmp4_message(8, 0, 1, i, data)[:16], ip_id=ident,
                               flags_offset=0x2000)
        elif kind == "whole":
            frame = craft.icmp4(src, B4, 8, 0, 1, i, data)
        else:
            proto = {"v4": 1, "ipip": 4, "gre": 47}[kind]
            more = draw(st.booleans())
            frame = craft.ipv4(src, B4, proto, data[:len(data) // 8 * 8] if more else data, ip_id=ident,
                               flags_offset=(0x2000 if more else 0) | offset // 8)
        frames.append(craft.ether(frame))
    return frames


@both
@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=headless_floods(), keep_frames=st.booleans(), max_datagrams=st.sampled_from([1, 2, 3, 4096]),
       timeout=st.sampled_from([0.5, 30.0]), split=st.integers(0, 24))
def test_the_c_decoder_hands_on_headless_datagrams_as_the_python_decoder(
        reassembler_type: ReassemblerType, frames: list[bytes], keep_frames: bool, max_datagrams: int,
        timeout: float, split: int) -> None:
    """Headless floods (pieces of ICMP and of tunnels' datagrams without their first, evicted or timed out, among
    partials and whole datagrams): the C path's HeadlessPackets (made in C: _fastdecode.hand_on_headless) and
    abandoned datagrams' messages, with their frame indexes, and the counters are the Python path's (_hand_on)."""
    timed = [(1000.0 + i * 0.25, f) for i, f in enumerate(frames)]
    results = []
    for accelerated in (True, False):  # in two batches: a tunnel's pieces the Python path took in the first (C
        stats = DecodeStats()  # leaves them to it) can be abandoned for a piece the C path takes in the second
        decoder = Decoder(craft.LINKTYPE_ETHERNET, stats, accelerated=accelerated,
                          reassembler=reassembler_type(stats=stats.fragments, max_datagrams=max_datagrams,
                                                       timeout=timeout, keep_frames=keep_frames))
        batches = []
        for part in (timed[:split], timed[split:]):
            buf, meta, _ = batch_of(part)
            batches.append((decoder.decode_frames(buf, meta), decoder.due))
        results.append((batches, stats))
    assert results[0] == results[1]


@pytest.mark.skipif(fast_decoder._fastdecode is None, reason="C not built")
@settings(max_examples=examples(600), deadline=None)
@given(data=st.data(), frames=st.integers(0, 12))
def test_due_messages_are_put_in_frame_order_in_c_as_in_python(data: st.DataObject, frames: int) -> None:
    """_fastdecode.frames_in_order against decoder.frames_in_order (its reference, in_frame_order): a batch's
    packets (None where a frame gave none) with the due messages (in frame index order, several at one frame, some
    past the batch's last frame) before the packet of the frame each came due at, and each one's frame index."""
    packets = data.draw(st.lists(st.sampled_from([None, "p", "q"]), min_size=frames, max_size=frames))
    indexes = sorted(data.draw(st.lists(st.integers(0, frames + 2), max_size=8)))
    due = [(index, f"due{n}") for n, index in enumerate(indexes)]
    assert fast_decoder._fastdecode.frames_in_order(packets, due) == decoder_module.frames_in_order(packets, due)


def _v6_fragment(data: bytes, offset: int, more: bool, inner: int = 58, ident: int = 5) -> bytes:
    header = bytearray(craft.icmp6(A6, B6, 128, 0, 1, 1, b"")[:40])
    header[6] = 44
    header[4:6] = (8 + len(data)).to_bytes(2, "big")
    return bytes(header) + bytes([inner, 0]) + (offset | more).to_bytes(2, "big") + ident.to_bytes(4, "big") + data


def _v4_fragment(data: bytes, offset: int, more: bool, *, bad_checksum: bool = False) -> bytes:
    return craft.ipv4(A4, B4, 1, data, ip_id=5, flags_offset=(0x2000 if more else 0) | offset // 8,
                      bad_checksum=bad_checksum)


MALFORMED_FRAGMENTS = {  # each before a good first fragment of the same datagram, which the C path takes
    "v4 empty": _v4_fragment(b"", 8, True),
    "v4 unaligned with more": _v4_fragment(b"x" * 12, 8, True),
    "v4 bad header checksum": _v4_fragment(b"x" * 16, 8, True, bad_checksum=True),
    "v6 empty": _v6_fragment(b"", 8, True),
    "v6 unaligned with more": _v6_fragment(b"x" * 12, 8, True),
    "v6 next header not walked": _v6_fragment(b"x" * 16, 8, True, inner=17),
    "v6 atomic": _v6_fragment(b"x" * 16, 0, False),
}


@pytest.mark.parametrize("name", MALFORMED_FRAGMENTS)
def test_fragments_python_counts_as_bad_are_left_to_it(name: str) -> None:
    """What decode/ip.py counts (bad_fragment, bad_ip_checksum, not_icmp) or reads as not fragmented the C path
    leaves to it; the good fragments around it give the same packets and counters both ways."""
    v6 = name.startswith("v6")
    good = _v6_fragment(craft.icmp6_message(A6, B6, 128, 0, 1, 1, b"y" * 24), 0, True) if v6 else \
        _v4_fragment(craft.icmp4_message(8, 0, 1, 1, b"y" * 24), 0, True)
    last = _v6_fragment(b"z" * 8, 32, False) if v6 else _v4_fragment(b"z" * 8, 32, False)
    frames = [(100.0 + i, craft.ether(f)) for i, f in enumerate([good, MALFORMED_FRAGMENTS[name], last])]
    for reassembler_type in (Reassembler, fragments.new_reassembler):
        fast, reference = decode_both_ways(frames, reassembler_type)
        assert fast == reference, name
    counted = reference[2]
    assert counted.errors or counted.skipped or counted.fragments["fragments"] == 2 or name == "v6 atomic", name
