"""IPv4 and IPv6 fragment reassembly, bounded in datagrams, bytes and time.

`Reassembler` is the reference; decode/_fastfragments.c restates it in C (`new_reassembler` gives that one
when it is built; docs/design.md "Fragments in C").

The caller (the decoder) parses the IP and fragment headers and hands each
fragment's payload to `Reassembler.add` under a key built with `key_v4` or
`key_v6`; `add` returns a `Datagram` once every byte of the original IP payload
has arrived (and leaves partial ones in `take_partials`, below).

Counters (in `Reassembler.stats`, normally `DecodeStats.fragments`):

* ``fragments``   every fragment handed to `add`;
* ``reassembled`` datagrams completed;
* ``duplicate``   fragments that repeated bytes already held (same bytes: tolerated);
* ``overlap``     datagrams discarded because a fragment rewrote held bytes differently;
* ``inconsistent`` datagrams discarded because fragments disagree on the total length;
* ``too_large``   datagrams discarded because they would exceed ``max_datagram_size``;
* ``too_many_fragments`` datagrams discarded for holding more than ``max_fragments`` separate
  pieces (each fragment costs a scan of the pieces it overlaps: this bounds it);
* ``timeout``     datagrams discarded unfinished ``timeout`` seconds (packet time) after their
  first fragment;
* ``evicted``     unfinished datagrams discarded to stay within ``max_datagrams`` / ``max_bytes``;
* ``unfinished``  datagrams still pending at the end of the input (`flush`; the pipeline expires those past their
  timeout first);
* ``partial``     partial datagrams handed on (see below): each is then decoded like a frame;
* ``headless``    headless datagrams handed on (see below): bytes held without the piece at offset 0;
* ``frames_not_kept`` fragment frames not kept for evidence (``keep_frames``): a datagram already held
  ``max_fragments`` of them (duplicates resent over and over).

With ``keep_frames`` (evidence on) every fragment's frame, as captured, is kept with its datagram
and handed on with it (`Datagram.frames`), so that evidence holds the fragments as they came;
each frame is accounted in ``max_bytes`` like a piece (its bytes and FRAME_OVERHEAD).

Memory is accounted as it is spent, not only as payload: every datagram held (a discarded one's
tombstone too) counts DATAGRAM_OVERHEAD bytes, every separate piece PIECE_OVERHEAD bytes on top
of its data (measured with tracemalloc: about 480 and 82 bytes in CPython 3.11), so that
``max_bytes`` bounds the reassembler's real memory whatever the fragment sizes: 20,000 datagrams
of 250 eight-byte pieces each would hold 40 MB of data in 22 bytes of memory per byte.

A discarded datagram leaves a tombstone until it times out, so its remaining
fragments are absorbed instead of starting a new, partial datagram (the
fragment-overlap evasion of RFC 5722 relies on such leftovers).

What an abandoned datagram held is not lost: a receiver that reads the fragments themselves (a packet
capture) gets it. Whenever a datagram is abandoned (``overlap``, ``inconsistent``, ``too_large``,
``too_many_fragments``, ``timeout``, ``evicted``, ``unfinished``) while it holds the piece at offset 0
(the ICMP header's), a *partial* `Datagram` is handed on: its bytes contiguous from offset 0, up to the
first hole. For an overlap, two: the bytes as held (the first copy wins), then with the conflicting
fragment applied (the last copy wins), so that data in either copy is seen. A partial is at most
``max_datagram_size`` bytes, carries the datagram's key (its addresses), the time it was handed on (the
latest packet time seen) and the time its first fragment came; with ``keep_frames``, its frames (the
conflicting fragment's too). `take_partials` returns those of the last call of `add`, `expire` or
`flush` (the next call replaces them, so nothing accumulates): the decoder decodes them as it decodes a
completed datagram (decode/ip.py), and counts each like a frame (decode/stats.py).

Bytes the partial does not hold (there is no offset 0, or they lie after a hole) are handed on too, as one
*headless* `Datagram` (``runs``: the offset and length of each contiguous run of bytes held, ``payload`` the runs
one after another; a conflicting fragment not written over a partial is a run of its own, so both copies are
seen): a receiver reading the fragments gets them, and an attacker makes such holes at will (a flood of
spoofed fragments evicts a datagram between its first fragment and its data; data sent past the timeout
starts a datagram without offset 0). Without the ICMP header their message's type is unknown: the detector
judges their bytes on their own (detect/nonecho.py). A headless datagram carries the datagram's frames, as
its partial does (evidence then holds them twice). A fragment a tombstone absorbs is handed on as a headless
datagram of its own: a receiver reading the fragments gets it too.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter, OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from icmpsensor import accelerators

if TYPE_CHECKING:
    from icmpsensor.source.batch import CapturedFrame


def key_v4(src: bytes, dst: bytes, proto: int, ident: int) -> tuple[bytes, bytes, int, int]:
    """Reassembly key of an IPv4 fragment (RFC 791: source, destination, protocol, identification); also of an
    IPv6 fragment of an IP-in-IP or GRE packet (decode/ip.py _tunnel4: its protocol keeps it apart from an
    ICMPv6 datagram's, and says a tunnel's is not to be judged as ICMP)."""
    return (src, dst, proto, ident)


def key_v6(src: bytes, dst: bytes, ident: int) -> tuple[bytes, bytes, int]:
    """Reassembly key of an IPv6 fragment (RFC 8200: source, destination, fragment identification)."""
    return (src, dst, ident)


DATAGRAM_OVERHEAD = 512  # bytes a datagram held costs besides its pieces (entry, key, record, lists)
PIECE_OVERHEAD = 96  # bytes a separate piece costs besides its data (bytes object, list slots, offset)
FRAME_OVERHEAD = 176  # bytes a kept frame costs besides its data (CapturedFrame, its ints, bytes object, list slot)


@dataclass(frozen=True, slots=True)
class Datagram:
    """A completely reassembled IP payload, or (``partial``) what an abandoned datagram held from offset 0."""

    proto: int  # IPv4 protocol, or IPv6 next header of the fragmentable part (from the first fragment)
    payload: bytes  # the IP payload: for IPv6 the fragmentable part, which may start with extension headers
    wire_len: int  # summed wire length of the fragments that contributed bytes
    frames: tuple[CapturedFrame, ...] | None = None  # every fragment's frame, in arrival order (keep_frames)
    # a partial: True, the datagram's key (the addresses are in it), the time it was handed on at (the latest
    # packet time seen) and the time its first fragment came
    partial: bool = False
    key: Hashable = None
    ts: float = 0.0
    sent: float = 0.0
    runs: tuple[tuple[int, int], ...] = ()  # headless: (offset, length) of each run of `payload`, in order


@dataclass(slots=True)
class _Pending:
    first_ts: float
    proto: int = -1
    total: int = -1  # payload length, known once the last fragment (more=False) has arrived
    max_end: int = 0
    received: int = 0  # distinct bytes held
    wire_len: int = 0
    dead: bool = False
    # Disjoint pieces sorted by offset; starts[i] is the offset of pieces[i].
    starts: list[int] = field(default_factory=list)
    pieces: list[bytes] = field(default_factory=list)
    frames: list[CapturedFrame] = field(default_factory=list)  # keep_frames: the fragments' frames
    frame_bytes: int = 0  # their bytes


class Reassembler:
    """Reassembles fragments of any number of interleaved datagrams.

    Memory is bounded by ``max_datagrams`` pending datagrams and ``max_bytes`` bytes held, overhead
    included (see the module docstring): the oldest pending datagram is evicted to make room.
    Expiry is lazy: each `add` drops the datagrams, oldest first, whose first
    fragment is more than ``timeout`` seconds older than the fragment being added.
    """

    def __init__(
        self,
        max_datagrams: int = 4096,
        timeout: float = 30.0,
        max_datagram_size: int = 65535,
        stats: Counter[str] | None = None,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        max_fragments: int = 256,
        keep_frames: bool = False,
    ) -> None:
        if min(max_datagrams, max_datagram_size, max_bytes, max_fragments) < 1 or timeout <= 0:
            raise ValueError("reassembly limits must be positive")
        self.max_datagrams = max_datagrams
        self.timeout = timeout
        self.max_datagram_size = max_datagram_size
        self.max_bytes = max_bytes
        self.max_fragments = max_fragments
        self.keep_frames = keep_frames  # keep each fragment's frame (add(frame=...)) for evidence
        self.stats: Counter[str] = stats if stats is not None else Counter()
        # Insertion order is creation order, hence (nearly) first-fragment time order:
        # the front is the next to expire or to evict.
        self._pending: OrderedDict[Hashable, _Pending] = OrderedDict()
        self._bytes = 0
        self._partials: list[Datagram] = []  # handed on by the last call of add, expire or flush
        self._now = float("-inf")  # the latest packet time seen (a partial's time at flush)

    def __len__(self) -> int:
        """Number of pending datagrams (tombstones included)."""
        return len(self._pending)

    def take_partials(self) -> list[Datagram]:
        """The partial datagrams the last call of `add`, `expire` or `flush` abandoned, in the order it did
        (see the module docstring); taken once. The next call replaces them: hold them no longer."""
        partials, self._partials = self._partials, []
        return partials

    @property
    def has_partials(self) -> bool:
        """Whether the last call abandoned partial datagrams (`take_partials`)."""
        return bool(self._partials)

    @property
    def pending_bytes(self) -> int:
        """The memory held, as accounted: data, pieces and datagrams (tombstones included)."""
        return self._bytes

    def add(
        self,
        key: Hashable,
        ts: float,
        offset: int,
        more: bool,
        data: bytes,
        proto: int,
        wire_len: int = 0,
        frame: CapturedFrame | None = None,
    ) -> Datagram | None:
        """Add one fragment: ``data`` goes at byte ``offset`` of the IP payload.

        ``more`` is the more-fragments flag, ``proto`` the protocol / next header
        carried by the fragment (only the first fragment's is kept), ``wire_len``
        the length of the frame that carried it, ``frame`` that frame as captured (kept with
        the datagram; given when ``keep_frames``). Returns the datagram when this fragment
        completes it, else None.
        """
        self.stats["fragments"] += 1
        self.expire(ts)
        pending = self._pending.get(key)
        if pending is None:
            if len(self._pending) >= self.max_datagrams:
                self._drop_oldest("evicted")
            pending = self._pending[key] = _Pending(ts)
            self._bytes += DATAGRAM_OVERHEAD
        if pending.dead:
            # absorbed by a discarded datagram's tombstone: no datagram starts, but its bytes are handed on, headless
            # (after one conflicting overlap, 1.3 MB rode on absorbed fragments in 1 s, nothing reported: red team,
            # 2026-12-08)
            kept = [frame] if frame is not None and self.keep_frames else []
            self._hand_on_headless(key, pending, -1, (offset, data, proto, wire_len, frame), kept, wire_len)
            return None
        reason = self._place(pending, offset, more, data, proto)
        if reason:
            if reason == "overlap":  # the first copy as held, then the rewrite applied (a last-wins receiver's)
                self._hand_on(key, pending)
                self._hand_on(key, pending, (offset, data, proto, wire_len, frame))
            else:
                self._hand_on(key, pending)
            self._kill(pending, reason)
            return None
        pending.wire_len += wire_len
        if frame is not None:
            self._keep(pending, frame)
        while self._bytes > self.max_bytes and self._pending:
            self._drop_oldest("evicted")
        if pending.received != pending.total or key not in self._pending:
            return None
        del self._pending[key]
        self._bytes -= _cost(pending)
        self.stats["reassembled"] += 1
        frames = tuple(pending.frames) if self.keep_frames else None
        return Datagram(pending.proto, b"".join(pending.pieces), pending.wire_len, frames)

    def add_from_frame(self, key: Hashable, ts: float, offset: int, more: bool, proto: int, frame: CapturedFrame,
                       at: int, size: int) -> Datagram | None:
        """add() of the fragment whose data is ``frame.data[at : at + size]``, its wire length the frame's captured
        length, the frame kept: as the C decoder hands a fragment whose frame it keeps. The C reassembler then
        holds a whole fragment as the frame's bytes, not a copy (a part, or the data of a frame it does not keep,
        is copied: what it holds stays what it accounts)."""
        if at < 0 or size < 0:
            raise ValueError("add_from_frame(): a fragment's span is not negative")
        data = frame.data
        return self.add(key, ts, offset, more, data[at : at + size], proto, len(data), frame)

    def expire(self, now: float) -> None:
        """Drop datagrams whose first fragment is older than ``timeout`` at time ``now`` (handing on partials)."""
        self._partials = []
        if now > self._now:
            self._now = now
        pending = self._pending
        while pending:
            oldest = next(iter(pending.values()))
            if now - oldest.first_ts <= self.timeout:
                return
            self._drop_oldest("timeout")

    def flush(self) -> None:
        """The end of the input: drop every pending datagram (``unfinished``), handing on partials stamped with
        the latest packet time seen."""
        self._partials = []
        while self._pending:
            self._drop_oldest("unfinished")

    def clear(self) -> None:
        """Forget every pending datagram without counting it."""
        self._pending.clear()
        self._bytes = 0
        self._partials = []

    def _place(self, pending: _Pending, offset: int, more: bool, data: bytes, proto: int) -> str:
        """Store the fragment's new bytes; return the reason to discard the datagram, or ""."""
        end = offset + len(data)
        if end > self.max_datagram_size:
            return "too_large"
        if pending.total >= 0 and (end > pending.total or (not more and end != pending.total)):
            return "inconsistent"
        if not more:
            if pending.max_end > end:
                return "inconsistent"
            pending.total = end
        pieces_before = len(pending.pieces)
        novel = _insert(pending, offset, data)
        if novel < 0:
            return "overlap"
        pending.received += novel
        self._bytes += novel + PIECE_OVERHEAD * (len(pending.pieces) - pieces_before)
        if len(pending.pieces) > self.max_fragments:
            return "too_many_fragments"
        if novel < len(data):
            self.stats["duplicate"] += 1
        if offset == 0:
            pending.proto = proto
        pending.max_end = max(pending.max_end, end)
        return ""

    def _keep(self, pending: _Pending, frame: CapturedFrame) -> None:
        if len(pending.frames) >= self.max_fragments:
            self.stats["frames_not_kept"] += 1
            return
        pending.frames.append(frame)
        pending.frame_bytes += len(frame.data)
        self._bytes += len(frame.data) + FRAME_OVERHEAD

    def _kill(self, pending: _Pending, reason: str) -> None:
        self.stats[reason] += 1
        self._bytes -= _cost(pending) - DATAGRAM_OVERHEAD  # a tombstone still costs its entry
        pending.dead = True
        pending.received = 0
        pending.starts.clear()
        pending.pieces.clear()
        pending.frames.clear()
        pending.frame_bytes = 0

    def _drop_oldest(self, reason: str) -> None:
        key, oldest = self._pending.popitem(last=False)
        self._bytes -= _cost(oldest)
        if not oldest.dead:
            self.stats[reason] += 1
            self._hand_on(key, oldest)

    def _hand_on(self, key: Hashable, pending: _Pending,
                 rewrite: tuple[int, bytes, int, int, CapturedFrame | None] | None = None) -> None:
        """Hand on, as a partial, the bytes the abandoned datagram holds from offset 0 up to its first hole, with
        `rewrite` (a conflicting fragment: offset, data, protocol, wire length, frame) written over them, when
        offset 0 is held; and the rest, headless (_hand_on_headless). At most max_datagram_size bytes: every piece
        held and `rewrite` end within it."""
        starts, pieces = pending.starts, pending.pieces
        proto, wire_len, frames = pending.proto, pending.wire_len, pending.frames
        held_runs = rewrite is None  # with a rewrite, the second call of an overlap: the pieces went in the first
        if rewrite is not None:
            offset, data, rewrite_proto, rewrite_len, frame = rewrite
            at = bisect_right(starts, offset)
            starts, pieces = [*starts[:at], offset, *starts[at:]], [*pieces[:at], data, *pieces[at:]]
            if offset == 0:
                proto = rewrite_proto
            wire_len += rewrite_len
            if frame is not None and self.keep_frames:
                frames = [*frames, frame]
        if not starts or starts[0] != 0:
            self._hand_on_headless(key, pending, 0 if held_runs else -1, rewrite, frames, wire_len)
            return
        held = bytearray()
        for start, piece in zip(starts, pieces, strict=True):
            if start > len(held):
                break  # a hole
            held[start : start + len(piece)] = piece  # a rewrite replaces what it covers, a piece adds on
        if rewrite is not None:
            offset, data = rewrite[0], rewrite[1]
            if offset <= len(held):
                held[offset : offset + len(data)] = data  # the last copy wins
                rewrite = None
        self.stats["partial"] += 1
        self._partials.append(Datagram(proto, bytes(held), wire_len, tuple(frames) if self.keep_frames else None,
                                       True, key, self._now, pending.first_ts))
        self._hand_on_headless(key, pending, len(held) if held_runs else -1, rewrite, frames, wire_len)

    def _hand_on_headless(self, key: Hashable, pending: _Pending, covered: int,
                          rewrite: tuple[int, bytes, int, int, CapturedFrame | None] | None,
                          frames: list[CapturedFrame], wire_len: int) -> None:
        """Hand on, as one headless Datagram, the runs of bytes held past `covered` (what a partial holds; -1:
        none of them, they were handed on already), and a conflicting fragment's bytes not written over a partial
        as a run of their own; nothing when there are none. With keep_frames, the datagram's frames (a partial's
        too)."""
        runs: list[tuple[int, int]] = []
        payload = bytearray()
        for start, piece in zip(pending.starts, pending.pieces, strict=True) if covered >= 0 else ():
            if start + len(piece) <= covered:
                continue  # the partial's (a piece it covers in part is judged here too: both copies seen)
            if runs and runs[-1][0] + runs[-1][1] == start:
                runs[-1] = (runs[-1][0], runs[-1][1] + len(piece))  # contiguous: one run
            else:
                runs.append((start, len(piece)))
            payload += piece
        if rewrite is not None and rewrite[1]:
            runs.append((rewrite[0], len(rewrite[1])))
            payload += rewrite[1]
        if not runs:
            return
        self.stats["headless"] += 1
        self._partials.append(Datagram(pending.proto, bytes(payload), wire_len,
                                       tuple(frames) if self.keep_frames else None, True, key, self._now,
                                       pending.first_ts, tuple(runs)))


_fastfragments = accelerators.fragments_extension
if _fastfragments is not None:
    _fastfragments.bind(Datagram, DATAGRAM_OVERHEAD, PIECE_OVERHEAD, FRAME_OVERHEAD)


def new_reassembler(*args: Any, accelerated: bool = True, **kwargs: Any) -> Reassembler:
    """A `Reassembler` (same arguments): the C one, icmpsensor.decode._fastfragments, when it is built and
    `accelerated`; it restates this class method by method (tests/unit/test_fragments.py holds them equal)."""
    if accelerated and _fastfragments is not None:
        return cast(Reassembler, _fastfragments.Reassembler(*args, **kwargs))
    return Reassembler(*args, **kwargs)


def _cost(pending: _Pending) -> int:
    """The memory a pending datagram is accounted with (a tombstone: its entry alone)."""
    return (DATAGRAM_OVERHEAD + pending.received + PIECE_OVERHEAD * len(pending.pieces)
            + pending.frame_bytes + FRAME_OVERHEAD * len(pending.frames))


def _insert(pending: _Pending, offset: int, data: bytes) -> int:
    """Merge ``data`` at ``offset`` into the pending pieces.

    Returns the number of bytes not held before, or -1 (storing nothing) when
    ``data`` disagrees with bytes already held.
    """
    starts, pieces = pending.starts, pending.pieces
    if not starts or offset >= starts[-1] + len(pieces[-1]):  # the common case: after every piece held
        if data:
            starts.append(offset)
            pieces.append(data)
        return len(data)
    end = offset + len(data)
    first = bisect_right(starts, offset) - 1
    if first < 0 or starts[first] + len(pieces[first]) <= offset:
        first += 1
    new_starts: list[int] = []
    new_pieces: list[bytes] = []
    cursor = offset
    last = first
    while last < len(starts) and starts[last] < end:
        start, piece = starts[last], pieces[last]
        lo, hi = max(offset, start), min(end, start + len(piece))
        if data[lo - offset : hi - offset] != piece[lo - start : hi - start]:
            return -1
        if cursor < start:
            new_starts.append(cursor)
            new_pieces.append(data[cursor - offset : start - offset])
        new_starts.append(start)
        new_pieces.append(piece)
        cursor = max(cursor, start + len(piece))
        last += 1
    if cursor < end:
        new_starts.append(cursor)
        new_pieces.append(data[cursor - offset :])
    novel = sum(len(p) for p in new_pieces) - sum(len(p) for p in pieces[first:last])
    starts[first:last] = new_starts
    pieces[first:last] = new_pieces
    return novel
