"""The production decoder: the common frame read with one struct call (or in C), every other by dpkt.

`Decoder.decode_batch` (libpcap batches: replay and live capture) hands a batch to the C extension
`icmpsensor.decode._fastdecode` first when it is built (it is, by ``pip install``): it builds the
records of the frames the struct path takes and of those with IPv4 options or IPv6 option headers,
skips (and counts, as C_SKIPPED) what is not IP or not ICMP, and leaves every other frame, by
position, to the Python code (docs/design.md "The C decoder's rule"). Without the extension
(``ICMPSENSOR_PURE_PYTHON=1``, or a source tree not built) the same batch runs through the struct
path in Python.
"""

from __future__ import annotations

import struct
from typing import Any

from icmpsensor import accelerators
from icmpsensor.decode import decoder
from icmpsensor.decode.decoder import DpktDecoder
from icmpsensor.decode.fragments import Datagram, new_reassembler
from icmpsensor.decode.ip import MAX_EXT_HEADERS, MAX_OPTION_ITEMS, with_frames
from icmpsensor.decode.linktypes import (
    DLT_RAW,
    DLT_RAW_OPENBSD,
    FRAGMENT,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    MAX_ENCAPSULATIONS,
    MAX_MPLS_LABELS,
    PROTO_ICMP,
    PROTO_ICMPV6,
    VLAN_TPIDS,
)
from icmpsensor.decode.packet import HEADLESS, HeadlessPacket, IcmpPacket
from icmpsensor.decode.stats import DecodeStats
from icmpsensor.source.batch import CapturedFrame

_fastdecode = accelerators.extension  # None: the batch path stays in Python
if _fastdecode is not None:
    _fastdecode.bind(IcmpPacket, VLAN_TPIDS, MAX_EXT_HEADERS, MAX_OPTION_ITEMS, MAX_MPLS_LABELS, MAX_ENCAPSULATIONS)
    _fastdecode.bind_headless(HeadlessPacket, Datagram, HEADLESS)

# A batch's packets with the messages of abandoned datagrams in frame order, and each one's frame (the pipeline's,
# with evidence on): in C when it is built (a headless-fragment flood makes one such message a frame).
frames_in_order = decoder.frames_in_order if _fastdecode is None else _fastdecode.frames_in_order

# The fast paths: an IPv4 header without options or an IPv6 header, then the first 8 bytes of ICMP
# (type, code, checksum skipped, identifier, sequence), in one unpack.
_IP4_ICMP = struct.Struct("!BxHxxHxBxx4s4sBBxxHH")  # version/IHL, total length, flags/offset, protocol, ...
_IP6_ICMP = struct.Struct("!BxxxHBx16s16sBBxxHH")  # version (high nibble), payload length, next header, ...
_IP6_FRAGMENT = struct.Struct("!BxHI")  # an IPv6 fragment header: next header, offset and flags, identification
_IP4_HEADER = struct.Struct("!BxHHHxB2x4s4s")  # version/IHL, total length, identification, flags/offset, protocol, ...


class Decoder(DpktDecoder):
    """The production decoder: the common frame's IP and ICMP headers read with one struct call, and a
    fragment's behind a plain IPv4 or IPv6 header; every other frame (IPv4 options, IPv6 extension
    headers, messages shorter than 8 bytes, anything truncated or malformed) goes to dpkt, as in
    `DpktDecoder`.

    Batches go to the C fast path first, when it is built and `accelerated` is not turned off; it
    takes the struct path's frames and more (see the module docstring) and leaves the others to it, by
    position."""

    def __init__(self, linktype: int, stats: DecodeStats, *, accelerated: bool = True, **options: Any) -> None:
        """`options`: those of DpktDecoder (verify_checksums, reassembler: by default the C one when `accelerated`)."""
        if options.get("reassembler") is None:
            options["reassembler"] = new_reassembler(stats=stats.fragments, accelerated=accelerated)
        super().__init__(linktype, stats, **options)
        self._c_link = _C_LINKS.get(linktype) if accelerated else None

    def decode_batch(self, buf: bytes, meta: bytes) -> list[IcmpPacket]:
        link = self._c_link
        if link is None:
            return super().decode_batch(buf, meta)
        packets, whole = self._c_batch(link, buf, meta)
        if whole:
            return packets  # type: ignore[return-value]  # no frame was left or skipped: no None in it
        if self.due:
            return self._with_due(packets)
        return [pkt for pkt in packets if pkt is not None]

    def decode_frames(self, buf: bytes, meta: bytes) -> list[IcmpPacket | None]:
        link = self._c_link
        if link is None:
            return super().decode_frames(buf, meta)
        return self._c_batch(link, buf, meta)[0]

    def _c_batch(self, link: int, buf: bytes, meta: bytes) -> tuple[list[IcmpPacket | None], bool]:
        """The C fast path over a batch, then the frames it left through the Python path, in place: one item
        per frame (None: no packet), and whether the C path made every one of them (no None in the list)."""
        stats = self.stats
        self.due = []
        skipped = [0] * (len(C_SKIPPED) + 1)  # and the frames it took with a tunnel opened
        reassembler = self.reassembler
        fragments = (reassembler, CapturedFrame if reassembler.keep_frames else None)
        packets, rest, assembled, handed = _fastdecode.decode_batch(buf, meta, link, self.verify_checksums,
                                                                    stats.type_counts, skipped, fragments)
        stats.frames += len(packets)
        stats.decapsulated += skipped.pop()
        for reason, count in zip(C_SKIPPED, skipped, strict=True):
            if count:
                stats.skipped[reason] += count
        at, count = 0, len(assembled)
        while at < count:  # all before the first of rest
            at = _fastdecode.hand_on_headless(assembled, at, self.due)  # the headless partials of a flood, in C
            if at == count:
                break
            index, ts, src, dst, datagram, partials = assembled[at]
            at += 1
            self._index = index
            if partials:
                self._hand_on(partials)
            if datagram is not None:
                packets[index] = self._reassembled6(ts, datagram, src, dst, dst) if len(src) == 16 else \
                    self._reassembled4(ts, datagram, src, dst)
        frame = self._batch_frame
        for index in rest:
            packets[index] = frame(buf, meta, index)
        return packets, not rest and not any(skipped) and not handed

    def _reassembled4(self, ts: float, datagram: Datagram, src: bytes, dst: bytes) -> IcmpPacket | None:
        """IpLayer._reassembled4 (the reference) with the message made in C (_fastdecode.icmp4_message): a
        tiny-fragment flood completes a datagram every few frames. A message that path would count as an error or
        a bad checksum, and a tunnel's datagram, go through the reference."""
        pkt = None if _fastdecode is None or datagram.proto != PROTO_ICMP else _fastdecode.icmp4_message(
            ts, datagram.payload, src, dst, datagram.wire_len, self.verify_checksums, self.stats.type_counts)
        return super()._reassembled4(ts, datagram, src, dst) if pkt is None else with_frames(pkt, datagram)

    def _reassembled6(self, ts: float, datagram: Datagram, src: bytes, dst: bytes,
                      final_dst: bytes) -> IcmpPacket | None:
        """IpLayer._reassembled6 (the reference) with an ICMPv6 message right behind the fragment header made in C
        (_fastdecode.icmp6_message), as _reassembled4's: a jumbo datagram's message is a 60 KB parse through dpkt
        otherwise. Extension headers, errors and bad checksums go through the reference."""
        pkt = None if _fastdecode is None or datagram.proto != PROTO_ICMPV6 else _fastdecode.icmp6_message(
            ts, datagram.payload, src, dst, final_dst, datagram.wire_len, self.verify_checksums, self.stats.type_counts)
        return super()._reassembled6(ts, datagram, src, dst, final_dst) if pkt is None else with_frames(pkt, datagram)

    def _ip4(self, ts: float, f: bytes, off: int, limit: int, wire_len: int) -> IcmpPacket | None:
        """The IPv4 packet in f[off:limit] (the rest of the captured frame)."""
        if limit - off >= 28:
            # A 20-byte header, not a fragment, and a whole ICMP message of 8 bytes or more.
            vihl, total_len, flags_offset, proto, src, dst, icmp_type, code, ident, seq = _IP4_ICMP.unpack_from(f, off)
            if vihl == 0x45 and proto == PROTO_ICMP and not flags_offset & 0x3FFF and 28 <= total_len <= limit - off:
                end = off + total_len
                if self.verify_checksums:
                    # Both sums as big-endian integers, which are congruent modulo 0xFFFF to the one's-complement
                    # sums of their 16-bit words; an odd ICMP length shifts its sum by 8 bits (a factor of
                    # 256, invertible modulo 0xFFFF), changing neither "is 0" nor "is 0 modulo 0xFFFF".
                    if int.from_bytes(f[off : off + 20], "big") % 0xFFFF:
                        return self._error("bad_ip_checksum")
                    total = int.from_bytes(f[off + 20 : end], "big")
                    if total == 0 or total % 0xFFFF:  # all-zero words sum to +0, never valid
                        self.stats.bad_checksum += 1
                self.stats.type_counts[icmp_type] += 1
                if icmp_type == 8 or icmp_type == 0:
                    return IcmpPacket(ts, src, dst, False, icmp_type, code, ident, seq, f[off + 28 : end], wire_len)
                return IcmpPacket(ts, src, dst, False, icmp_type, code, -1, -1, f[off + 24 : end], wire_len)
        if limit - off >= 20:
            # A fragment behind a 20-byte header (a flood of tiny fragments: no dpkt object per fragment).
            vihl, total_len, ident, flags_offset, proto, src, dst = _IP4_HEADER.unpack_from(f, off)
            if vihl == 0x45 and proto == PROTO_ICMP and flags_offset & 0x3FFF and 20 <= total_len <= limit - off:
                if self.verify_checksums and int.from_bytes(f[off : off + 20], "big") % 0xFFFF:
                    return self._error("bad_ip_checksum")
                return self._fragment4(ts, f[off + 20 : off + total_len], src, dst, ident,
                                       bool(flags_offset & 0x2000), (flags_offset & 0x1FFF) * 8, wire_len)
        return super()._ip4(ts, f, off, limit, wire_len)

    def _ip6(self, ts: float, f: bytes, off: int, limit: int, wire_len: int) -> IcmpPacket | None:
        """The IPv6 packet in f[off:limit] (the rest of the captured frame)."""
        if limit - off >= 48:
            # No extension header and a whole ICMPv6 message of 8 bytes or more.
            version, size, next_header, src, dst, icmp_type, code, ident, seq = _IP6_ICMP.unpack_from(f, off)
            if version >> 4 == 6 and next_header == PROTO_ICMPV6 and 8 <= size <= limit - off - 40:
                start = off + 40
                end = start + size
                if self.verify_checksums:
                    pseudo = int.from_bytes(src, "big") + int.from_bytes(dst, "big") + size + PROTO_ICMPV6
                    if ((int.from_bytes(f[start:end], "big") << (8 if size & 1 else 0)) + pseudo) % 0xFFFF:
                        self.stats.bad_checksum += 1
                self.stats.type_counts[256 + icmp_type] += 1
                if icmp_type == 128 or icmp_type == 129:
                    return IcmpPacket(ts, src, dst, True, icmp_type, code, ident, seq, f[start + 8 : end], wire_len)
                return IcmpPacket(ts, src, dst, True, icmp_type, code, -1, -1, f[start + 4 : end], wire_len)
            if version >> 4 == 6 and next_header == FRAGMENT and 8 <= size <= limit - off - 40:
                # A fragment header right behind the fixed header (a flood of fragments: no dpkt object per
                # fragment), as DpktDecoder._walk6 reads it; an atomic fragment (RFC 6946) is left to it.
                inner, frag_off_m, frag_id = _IP6_FRAGMENT.unpack_from(f, off + 40)
                if frag_off_m & 0xFFF9:  # a fragment offset (bits 3-15) or more fragments (bit 0)
                    return self._fragment6(ts, f[off + 48 : off + 40 + size], src, dst, dst, frag_id, inner,
                                           bool(frag_off_m & 1), (frag_off_m >> 3) * 8, wire_len)
        return super()._ip6(ts, f, off, limit, wire_len)


# The reasons the C fast path skips frames for, in the order of its skip_counts (decode/_fastdecode.c SKIP_NOT_IP,
# SKIP_NOT_ICMP): those the Python decoder gives them (decode/decoder.py, decode/ip.py).
C_SKIPPED = ("not_ip", "not_icmp")

# The C fast path's code for each link type it reads (none when it is not built).
_C_LINKS: dict[int, int] = {} if _fastdecode is None else {
    LINKTYPE_ETHERNET: _fastdecode.LINK_ETHERNET,
    LINKTYPE_LINUX_SLL: _fastdecode.LINK_SLL,
    LINKTYPE_LINUX_SLL2: _fastdecode.LINK_SLL2,
    DLT_RAW: _fastdecode.LINK_RAW,
    DLT_RAW_OPENBSD: _fastdecode.LINK_RAW,
    LINKTYPE_RAW: _fastdecode.LINK_RAW,
    LINKTYPE_IPV4: _fastdecode.LINK_RAW4,
    LINKTYPE_IPV6: _fastdecode.LINK_RAW6,
}
EXTENSION = _fastdecode  # the C extension module (None: not built, or turned off)
ACCELERATED = _fastdecode is not None  # whether the C batch fast path is in use in this process
DECODER = "C decoder" if ACCELERATED else "Python decoder"  # for the start-up message
