"""Captured frames to `IcmpPacket` records: the link layer (decode/link.py), then IP (decode/ip.py) and
ICMP (decode/icmp.py), counting every frame in `DecodeStats` (decode/stats.py).

Two interchangeable decoders share the layers and the counters:

* `DpktDecoder`, the reference: IP, IPv6 extension headers and ICMP parsed with
  dpkt's classes, checksums verified by decode/checksum.py (held to ``dpkt.in_cksum``);
* `Decoder` (decode/fast.py), the production one: the common frame (IPv4 without options and not a
  fragment, or IPv6 without extension headers, carrying a whole ICMP message of 8
  bytes or more) is read with one struct call, several times faster than building
  dpkt objects; every other frame goes to dpkt, exactly as in `DpktDecoder`.

`Decoder.decode_batch` (libpcap batches: replay and live capture) hands a batch to
the C extension `icmpsensor.decode._fastdecode` first when it is built (it is, by ``pip
install``): it builds the records of exactly the frames the struct path takes and
leaves every other frame, by position, to the Python code. Without the extension
(``ICMPSENSOR_PURE_PYTHON=1``, or a source tree not built) the same batch runs
through the struct path in Python.

The test suite feeds all of them the same (valid, mutated and random) frames, one
by one and as libpcap batches, and requires identical outputs and counters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from icmpsensor.decode.fragments import Reassembler
from icmpsensor.decode.ip import IpLayer
from icmpsensor.decode.link import IP_BY_VERSION, IPV4, IPV6, MPLS_TOO_DEEP, TRUNCATED, network_layer
from icmpsensor.decode.linktypes import LINKTYPE_ETHERNET, SUPPORTED_LINKTYPES, linktype_name
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.decode.stats import DecodeStats
from icmpsensor.errors import InputError
from icmpsensor.source.batch import BATCH_META


class DpktDecoder(IpLayer):
    """Decodes frames of one link type into `IcmpPacket` records, counting everything in ``stats``:
    the link layer by decode/link.py, IP, IPv6 extension headers and ICMP with dpkt's classes, checksums
    by decode/checksum.py. The reference for `Decoder`, and what `Decoder` falls back to.

    ``reassembler`` defaults to a new `Reassembler` counting into
    ``stats.fragments``; pass one sharing that counter to keep the invariant.
    """

    def __init__(
        self,
        linktype: int,
        stats: DecodeStats,
        *,
        verify_checksums: bool = True,
        reassembler: Reassembler | None = None,
    ) -> None:
        if linktype not in SUPPORTED_LINKTYPES:
            raise InputError(f"unsupported link type {linktype} ({linktype_name(linktype)})")
        self.linktype = linktype
        self.stats = stats
        self.verify_checksums = verify_checksums
        self.reassembler = reassembler if reassembler is not None else Reassembler(stats=stats.fragments)
        self._walk = network_layer(linktype)
        # the frame being decoded: (buffer, offset, captured length, seconds, microseconds); a fragment's
        # frame is copied out of it only when the reassembler keeps frames (decode/ip.py captured_frame)
        self._frame: tuple[bytes, int, int, int, int] = (b"", 0, 0, 0, 0)
        self._index = 0  # that frame's index in its batch
        # The messages of datagrams the reassembler abandoned (decode/fragments.py: partials) during the last
        # call of decode or decode_frames, each with the index of the frame it became due at (0 for decode):
        # it comes before that frame's packet.
        self.due: list[tuple[int, IcmpPacket]] = []

    def decode(self, ts: float, frame: bytes, wire_len: int = 0) -> IcmpPacket | None:
        """Decode one captured frame; None when it is skipped, malformed or a pending fragment. The messages
        of datagrams abandoned meanwhile are in ``due`` (they come before the frame's packet).

        ``wire_len`` is the frame's length on the wire when the capture reports
        it (0: use ``len(frame)``). Never raises.
        """
        self.stats.frames += 1
        self.due = []
        self._index = 0
        sec = int(ts)
        self._frame = (frame, 0, len(frame), sec, min(round((ts - sec) * 1e6), 999_999))
        try:
            return self._link(ts, frame, wire_len or len(frame))
        except Exception:  # a bug must not stop the sensor; counted, and the tests require 0
            self.stats.errors["internal_error"] += 1
            return None
        finally:
            self._count_tunnelled()

    def decode_batch(self, buf: bytes, meta: bytes) -> list[IcmpPacket]:
        """Decode every frame of one libpcap batch: `buf` holds the frames, `meta` a 16-byte record per
        frame (seconds, microseconds, offset in buf, captured length; see source/batch.py).

        What ``decode`` gives frame by frame (the messages it leaves in ``due`` included, in their place),
        without copying each frame out of the batch first.
        """
        packets = self.decode_frames(buf, meta)
        if self.due:
            return self._with_due(packets)
        return [pkt for pkt in packets if pkt is not None]

    def decode_frames(self, buf: bytes, meta: bytes) -> list[IcmpPacket | None]:
        """``decode_batch``, but one item per frame of the batch, None where a frame gave no packet: a packet's
        place is its frame's index in the batch (evidence copies the frame from there: output/evidencewriter.py
        HeldPacket.of_batch).
        The messages of datagrams abandoned meanwhile are in ``due``, with the index of the frame they came due
        at (they come before that frame's packet)."""
        count = len(meta) // BATCH_META.size
        self.stats.frames += count
        self.due = []
        frame = self._batch_frame
        return [frame(buf, meta, index) for index in range(count)]

    def expire(self, now: float) -> list[IcmpPacket]:
        """The clock (packet time, or wall time while the wire is quiet) is `now`: the messages of the pending
        datagrams that time out then, cut at their first hole (decode/fragments.py)."""
        return self._abandon(self.reassembler.expire, now)

    def flush(self) -> list[IcmpPacket]:
        """The end of the input: the messages of every datagram still pending, cut at their first hole."""
        return self._abandon(self.reassembler.flush)

    def _abandon(self, drop: Callable[..., None], *args: float) -> list[IcmpPacket]:
        self.due = []
        self._index = 0
        drop(*args)
        self._hand_on()
        packets = [pkt for _, pkt in self.due]
        self.due = []
        return packets

    def _with_due(self, packets: list[IcmpPacket | None]) -> list[IcmpPacket]:
        """The packets of a batch's frames with the messages in ``due`` before the frame each came due at;
        ``due`` is emptied."""
        due, self.due = self.due, []
        return [pkt for _, pkt in in_frame_order(packets, due) if pkt is not None]

    def _batch_frame(self, buf: bytes, meta: bytes, index: int) -> IcmpPacket | None:
        """Frame `index` of a batch, as ``decode`` (which also counts it in stats.frames) decodes it."""
        sec, usec, off, cap = BATCH_META.unpack_from(meta, index * BATCH_META.size)
        self._frame = (buf, off, cap, sec, usec)
        self._index = index
        ts = sec + usec * 1e-6
        try:
            if self.linktype == LINKTYPE_ETHERNET and cap >= 14 and buf[off + 12] == 8 and buf[off + 13] == 0:
                return self._ip4(ts, buf, off + 14, off + cap, cap)  # read in place: no copy of the frame
            return self._link(ts, buf[off : off + cap], cap)
        except Exception:  # as in decode()
            self.stats.errors["internal_error"] += 1
            return None
        finally:
            self._count_tunnelled()

    def _count_tunnelled(self) -> None:
        """The frame just decoded counts in stats.decapsulated if a tunnel was opened in it."""
        if self._tunnelled:
            self.stats.decapsulated += 1
            self._tunnelled = False

    def _link(self, ts: float, f: bytes, wire_len: int) -> IcmpPacket | None:
        """A whole captured frame: its link layer, then the IP layer it carries."""
        if self.linktype == LINKTYPE_ETHERNET and len(f) >= 14 and f[12] == 8 and f[13] == 0:
            return self._ip4(ts, f, 14, len(f), wire_len)  # IPv4 without a VLAN tag, the common case
        layer, pos = self._walk(f)
        if layer == IPV4:
            return self._ip4(ts, f, pos, len(f), wire_len)
        if layer == IPV6:
            return self._ip6(ts, f, pos, len(f), wire_len)
        if layer == IP_BY_VERSION:
            if len(f) <= pos:
                return self._error("truncated_ip")
            version = f[pos] >> 4
            if version == 4:
                return self._ip4(ts, f, pos, len(f), wire_len)
            if version == 6:
                return self._ip6(ts, f, pos, len(f), wire_len)
            return self._error("bad_ip_header")
        if layer == TRUNCATED:
            return self._error("truncated_link")
        if layer == MPLS_TOO_DEEP:
            return self._skip("mpls_labels")
        return self._skip("not_ip")


def frames_in_order(packets: Sequence[IcmpPacket | None],
                    due: Sequence[tuple[int, IcmpPacket]]) -> tuple[list[IcmpPacket | None], list[int]]:
    """in_frame_order's packets, and the frame index of each: in C when it is built (decode/fast.py)."""
    ordered = in_frame_order(packets, due)
    return [pkt for _, pkt in ordered], [index for index, _ in ordered]


def in_frame_order(packets: Sequence[IcmpPacket | None],
                   due: Sequence[tuple[int, IcmpPacket]]) -> list[tuple[int, IcmpPacket | None]]:
    """(frame index, packet) for a batch's packets (one per frame), each message of `due` (DpktDecoder.due)
    before the packet of the frame it came due at, with that frame's index."""
    out: list[tuple[int, IcmpPacket | None]] = []
    pos = 0
    for index, pkt in enumerate(packets):
        while pos < len(due) and due[pos][0] == index:
            out.append(due[pos])
            pos += 1
        out.append((index, pkt))
    out.extend(due[pos:])
    return out
