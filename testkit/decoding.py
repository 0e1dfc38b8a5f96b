"""Frames through both of the product's decoders (the struct/C fast path and the dpkt one), checked to agree."""

from __future__ import annotations

from collections.abc import Sequence

from icmpsensor.decode.decoder import DpktDecoder
from icmpsensor.decode.fast import Decoder
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.decode.stats import DecodeStats
from icmpsensor.source.batch import BATCH_META

A4, B4 = "192.0.2.1", "198.51.100.7"
A6, B6 = "2001:db8::1", "2001:db8:ffff::2"



class Run:
    """Frames decoded by both decoders, checked to agree; exposes the fast decoder's results."""

    def __init__(self, linktype: int, frames: Sequence[bytes | tuple[float, bytes]], **kwargs: bool) -> None:
        results = []
        for cls in (Decoder, DpktDecoder):
            stats = DecodeStats()
            decoder = cls(linktype, stats, **kwargs)
            packets, due = [], []
            for i, f in enumerate(frames):
                packets.append(decoder.decode(*_timed(i, f)))
                due += [(i, p) for _, p in decoder.due]
            assert stats.errors["internal_error"] == 0
            assert stats.unaccounted() == 0
            assert stats.icmp == sum(stats.icmp_types.values())
            results.append((packets, due, stats))
        (self.packets, self.due, self.stats), (dpkt_packets, dpkt_due, dpkt_stats) = results
        assert self.packets == dpkt_packets
        assert self.due == dpkt_due
        assert self.stats == dpkt_stats
        for cls in (Decoder, DpktDecoder):
            check_batch_path(cls, linktype, [_timed(i, f) for i, f in enumerate(frames)], **kwargs)

    @property
    def decoded(self) -> list[IcmpPacket]:
        """What reaches the detector, in order: each frame's packet, after the messages of the datagrams abandoned
        while it was decoded (Decoder.due; frame-aligned packets are in `packets`, those messages in `due`)."""
        due = iter(self.due)
        nxt = next(due, None)
        out = []
        for i, p in enumerate(self.packets):
            while nxt is not None and nxt[0] == i:
                out.append(nxt[1])
                nxt = next(due, None)
            if p is not None:
                out.append(p)
        return out

    @property
    def only(self) -> IcmpPacket:
        assert len(self.decoded) == 1, self.stats.as_dict()
        return self.decoded[0]


def _timed(index: int, frame: bytes | tuple[float, bytes]) -> tuple[float, bytes]:
    return frame if isinstance(frame, tuple) else (1000.0 + index, frame)


def batch_of(frames: Sequence[tuple[float, bytes]]) -> tuple[bytes, bytes, list[tuple[float, bytes]]]:
    """A libpcap-style batch of the frames (buffer, records), each frame followed by 0 to 3 junk bytes a decoder
    must not read; and the frames with their timestamps as the records hold them (whole microseconds)."""
    buf, meta, timed = bytearray(), bytearray(), []
    for i, (ts, frame) in enumerate(frames):
        sec = int(ts)
        usec = min(round((ts - sec) * 1e6), 999_999)
        meta += BATCH_META.pack(sec, usec, len(buf), len(frame))
        buf += frame + b"\x45\x00\xff"[: i % 4]
        timed.append((sec + usec * 1e-6, frame))
    return bytes(buf), bytes(meta), timed


def check_batch_path(cls: type[Decoder], linktype: int, frames: Sequence[tuple[float, bytes]], **kwargs: bool) -> None:
    """decode_batch on a libpcap-style batch gives what decode gives frame by frame: the same packets and the
    same counters."""
    buf, meta, timed = batch_of(frames)
    one_by_one_stats = DecodeStats()
    one_by_one = cls(linktype, one_by_one_stats, **kwargs)
    want = []
    for ts, frame in timed:
        pkt = one_by_one.decode(ts, frame)
        want += [p for _, p in one_by_one.due]  # what abandoned datagrams handed on comes first
        if pkt is not None:
            want.append(pkt)
    # Decoder's batches: the C fast path (when built) and the Python one
    for extra in ({}, {"accelerated": False}) if cls is Decoder else ({},):
        batch_stats = DecodeStats()
        assert cls(linktype, batch_stats, **kwargs, **extra).decode_batch(buf, meta) == want
        assert batch_stats == one_by_one_stats
