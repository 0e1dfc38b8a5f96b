"""Link layer -> IP -> ICMP decoding of captured frames into `IcmpPacket` records.

Two interchangeable decoders share the link-layer code and the counters:

* `DpktDecoder`, the reference: IP, IPv6 extension headers and ICMP parsed with
  dpkt's classes, checksums computed with ``dpkt.in_cksum``;
* `Decoder`, the production one: the common frame (IPv4 without options and not a
  fragment, or IPv6 without extension headers, carrying a whole ICMP message of 8
  bytes or more) is read with one struct call, several times faster than building
  dpkt objects; every other frame goes to dpkt, exactly as in `DpktDecoder`.

`Decoder.decode_batch` (libpcap batches: replay and live capture) hands a batch to
the C extension `icmpsensor._fastdecode` first when it is built (it is, by ``pip
install``): it builds the records of exactly the frames the struct path takes and
leaves every other frame, by position, to the Python code. Without the extension
(``ICMPSENSOR_PURE_PYTHON=1``, or a source tree not built) the same batch runs
through the struct path in Python.

The test suite feeds all of them the same (valid, mutated and random) frames, one
by one and as libpcap batches, and requires identical outputs and counters.

Every frame handed to ``decode`` ends in exactly one place, so the counters obey

    frames + fragments["reassembled"]
        == icmp + sum(skipped) + sum(errors) + fragments["fragments"]

(a fragment frame goes into the reassembler; a completed datagram then counts
like a frame). `DecodeStats.unaccounted` returns the difference, always 0.

Skip reasons: ``not_ip``, ``not_icmp``. Error reasons: ``truncated_link``,
``truncated_ip`` (captured bytes end inside the IP header or before the IP
total / payload length: snap length or corrupt length), ``bad_ip_header``,
``bad_ip_checksum``, ``bad_ipv6_ext_header``, ``bad_fragment`` (empty, or a
non-final fragment whose length is not a multiple of 8), ``truncated_icmp``,
``bad_checksum``, and ``internal_error`` (a decoder bug caught so that the
sensor keeps running; the tests require it never to happen).
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dpkt

from .capture import BATCH_META
from .errors import InputError
from .fragments import Reassembler, key_v4, key_v6
from .packet import IcmpPacket

try:
    from . import _fastdecode
except ImportError:  # a source tree that was not built: the batch path stays in Python
    _fastdecode = None
if os.environ.get("ICMPSENSOR_PURE_PYTHON"):  # for benchmarks and tests: the Python batch path
    _fastdecode = None
if _fastdecode is not None:
    _fastdecode.bind(IcmpPacket)

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
DLT_RAW = 12  # what libpcap reports for LINKTYPE_RAW on most systems
DLT_RAW_OPENBSD = 14
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

SUPPORTED_LINKTYPES: dict[int, str] = {
    LINKTYPE_NULL: "NULL",
    LINKTYPE_ETHERNET: "ETHERNET",
    DLT_RAW: "RAW",
    DLT_RAW_OPENBSD: "RAW",
    LINKTYPE_RAW: "RAW",
    LINKTYPE_LOOP: "LOOP",
    LINKTYPE_LINUX_SLL: "LINUX_SLL",
    LINKTYPE_IPV4: "IPV4",
    LINKTYPE_IPV6: "IPV6",
    LINKTYPE_LINUX_SLL2: "LINUX_SLL2",
}

_OTHER_LINKTYPES: dict[int, str] = {
    3: "AX25",
    6: "IEEE802_5",
    7: "ARCNET_BSD",
    8: "SLIP",
    9: "PPP",
    10: "FDDI",
    50: "PPP_HDLC",
    51: "PPP_ETHER",
    100: "ATM_RFC1483",
    104: "C_HDLC",
    105: "IEEE802_11",
    107: "FRELAY",
    117: "PFLOG",
    119: "IEEE802_11_PRISM",
    127: "IEEE802_11_RADIOTAP",
    138: "APPLE_IP_OVER_IEEE1394",
    143: "DOCSIS",
    163: "IEEE802_11_AVS",
    187: "BLUETOOTH_HCI_H4",
    192: "PPI",
    195: "IEEE802_15_4_WITHFCS",
    201: "BLUETOOTH_HCI_H4_WITH_PHDR",
    220: "USB_LINUX_MMAPPED",
    227: "CAN_SOCKETCAN",
    239: "NFLOG",
    249: "USBPCAP",
    252: "WIRESHARK_UPPER_PDU",
    263: "NETANALYZER_TRANSPARENT",
    270: "NORDIC_BLE",
}


def linktype_name(linktype: int) -> str:
    """The LINKTYPE_ name of a pcap link type without its prefix, e.g. 105 -> "IEEE802_11"."""
    name = SUPPORTED_LINKTYPES.get(linktype) or _OTHER_LINKTYPES.get(linktype)
    if name is None and 147 <= linktype <= 162:
        name = f"USER{linktype - 147}"
    return name or "unknown"


@dataclass
class DecodeStats:
    """Counters of one decoder (or several sharing it); see the module docstring for the reasons."""

    frames: int = 0  # frames handed to decode()
    skipped: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    # ICMP/ICMPv6 messages produced (after reassembly) by type: [type] for ICMP, [256 + type] for ICMPv6
    # (a list: counting in it is a fraction of the cost of a Counter keyed by tuples).
    type_counts: list[int] = field(default_factory=lambda: [0] * 512)
    fragments: Counter[str] = field(default_factory=Counter)  # see icmpsensor.fragments

    @property
    def icmp(self) -> int:
        """ICMP/ICMPv6 messages produced (after reassembly)."""
        return sum(self.type_counts)

    @property
    def icmp_types(self) -> Counter[tuple[int, int]]:
        """(4 or 6, type) -> messages produced."""
        return Counter({(4 if i < 256 else 6, i & 255): n for i, n in enumerate(self.type_counts) if n})

    def unaccounted(self) -> int:
        """Frames not accounted for by the invariant in the module docstring: always 0."""
        ended = self.icmp + sum(self.skipped.values()) + sum(self.errors.values())
        return self.frames + self.fragments["reassembled"] - ended - self.fragments["fragments"]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready copy; ICMP type keys are rendered like "v4:8"."""
        return {
            "frames": self.frames,
            "icmp": self.icmp,
            "skipped": dict(sorted(self.skipped.items())),
            "errors": dict(sorted(self.errors.items())),
            "icmp_types": {f"v{v}:{t}": n for (v, t), n in sorted(self.icmp_types.items())},
            "fragments": dict(sorted(self.fragments.items())),
        }


_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD
_VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))
_AF_INET = 2
_AF_INET6 = frozenset((10, 24, 28, 30))  # Linux, NetBSD/OpenBSD, FreeBSD, macOS

_PROTO_ICMP = 1
_PROTO_ICMPV6 = 58
_HOP_BY_HOP = 0
_ROUTING = 43
_FRAGMENT = 44
_AUTH = 51
_DEST_OPTS = 60
# Next-header values walked towards an ICMPv6 message; any other means "not ICMP".
_V6_WALKED = frozenset((_HOP_BY_HOP, _ROUTING, _FRAGMENT, _AUTH, _DEST_OPTS, _PROTO_ICMPV6))
_MAX_EXT_HEADERS = 16  # headers walked per packet, the ICMPv6 one included: more is an attack

_ECHO4 = frozenset((0, 8))
_ECHO6 = frozenset((128, 129))

# The fast paths: an IPv4 header without options or an IPv6 header, then the first 8 bytes of ICMP
# (type, code, checksum skipped, identifier, sequence), in one unpack.
_IP4_ICMP = struct.Struct("!BxHxxHxBxx4s4sBBxxHH")  # version/IHL, total length, flags/offset, protocol, ...
_IP6_ICMP = struct.Struct("!BxxxHBx16s16sBBxxHH")  # version (high nibble), payload length, next header, ...

_LinkParser = Callable[[float, bytes, int], "IcmpPacket | None"]


def _routing_final_dst(buf: bytes, pos: int, length: int, current: bytes) -> bytes:
    """Final destination named by a routing header, used in the ICMPv6 pseudo-header (RFC 8200 8.1).

    Types 0 (last address), 2 (home address) and 4 (SRH: segment list[0]) are
    understood; other types, or no segment left, leave ``current``.
    """
    rtype, segments_left = buf[pos + 2], buf[pos + 3]
    if segments_left == 0:
        return current
    if rtype == 0:
        count = buf[pos + 1] // 2
        return buf[pos + 8 + 16 * (count - 1) : pos + 8 + 16 * count] if count else current
    if rtype in (2, 4) and length >= 24:
        return buf[pos + 8 : pos + 24]
    return current


def _be32(buf: bytes, pos: int) -> int:
    return buf[pos] << 24 | buf[pos + 1] << 16 | buf[pos + 2] << 8 | buf[pos + 3]


class _IP4Header(dpkt.ip.IP):
    """dpkt's IPv4 header alone, so that no payload parser runs on arbitrary bytes."""

    def unpack(self, buf: bytes) -> None:
        dpkt.Packet.unpack(self, buf)
        if self.hl < 5:
            raise dpkt.UnpackError("invalid header length")


class _IP6Header(dpkt.ip6.IP6):
    """dpkt's IPv6 header alone: DpktDecoder walks the extension headers itself."""

    def unpack(self, buf: bytes) -> None:
        dpkt.Packet.unpack(self, buf)


class _OptionsHeader(dpkt.Packet):
    """Hop-by-hop or destination options header; the options are not needed."""

    __hdr__ = (("nxt", "B", 0), ("len", "B", 0))

    def unpack(self, buf: bytes) -> None:
        dpkt.Packet.unpack(self, buf)
        self.length = (self.len + 1) * 8


_DPKT_EXT_HEADERS: dict[int, type[dpkt.Packet]] = {
    _HOP_BY_HOP: _OptionsHeader,
    _DEST_OPTS: _OptionsHeader,
    _ROUTING: dpkt.ip6.IP6RoutingHeader,
    _AUTH: dpkt.ip6.IP6AHHeader,
}


class DpktDecoder:
    """Decodes frames of one link type into `IcmpPacket` records, counting everything in ``stats``:
    the link layers by hand, IP, IPv6 extension headers and ICMP with dpkt's classes, checksums with
    ``dpkt.in_cksum``. The reference for `Decoder`, and what `Decoder` falls back to.

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
        parsers: dict[int, _LinkParser] = {
            LINKTYPE_NULL: self._null,
            LINKTYPE_ETHERNET: self._ethernet,
            DLT_RAW: self._raw,
            DLT_RAW_OPENBSD: self._raw,
            LINKTYPE_RAW: self._raw,
            LINKTYPE_LOOP: self._loop,
            LINKTYPE_LINUX_SLL: self._sll,
            LINKTYPE_IPV4: self._raw4,
            LINKTYPE_IPV6: self._raw6,
            LINKTYPE_LINUX_SLL2: self._sll2,
        }
        self._link = parsers[linktype]

    def decode(self, ts: float, frame: bytes, wire_len: int = 0) -> IcmpPacket | None:
        """Decode one captured frame; None when it is skipped, malformed or a pending fragment.

        ``wire_len`` is the frame's length on the wire when the capture reports
        it (0: use ``len(frame)``). Never raises.
        """
        self.stats.frames += 1
        try:
            return self._link(ts, frame, wire_len or len(frame))
        except Exception:  # a bug must not stop the sensor; counted, and the tests require 0
            self.stats.errors["internal_error"] += 1
            return None

    def decode_batch(self, buf: bytes, meta: bytes) -> list[IcmpPacket]:
        """Decode every frame of one libpcap batch: `buf` holds the frames, `meta` a 16-byte record per
        frame (seconds, microseconds, offset in buf, captured length; see capture.frames_of).

        What ``decode`` gives frame by frame, without copying each frame out of the batch first.
        """
        count = len(meta) // BATCH_META.size
        self.stats.frames += count
        frame = self._batch_frame
        return [pkt for index in range(count) if (pkt := frame(buf, meta, index)) is not None]

    def _batch_frame(self, buf: bytes, meta: bytes, index: int) -> IcmpPacket | None:
        """Frame `index` of a batch, as ``decode`` (which also counts it in stats.frames) decodes it."""
        sec, usec, off, cap = BATCH_META.unpack_from(meta, index * BATCH_META.size)
        ts = sec + usec * 1e-6
        try:
            if self.linktype == LINKTYPE_ETHERNET and cap >= 14 and buf[off + 12] == 8 and buf[off + 13] == 0:
                return self._ip4(ts, buf, off + 14, off + cap, cap)  # read in place: no copy of the frame
            return self._link(ts, buf[off : off + cap], cap)
        except Exception:  # as in decode()
            self.stats.errors["internal_error"] += 1
            return None

    # -- counting ---------------------------------------------------------------------------------

    def _error(self, reason: str) -> None:
        self.stats.errors[reason] += 1

    def _skip(self, reason: str) -> None:
        self.stats.skipped[reason] += 1

    def _emit(
        self,
        ts: float,
        src: bytes,
        dst: bytes,
        ipv6: bool,
        icmp_type: int,
        code: int,
        ident: int,
        seq: int,
        payload: bytes,
        wire_len: int,
    ) -> IcmpPacket:
        self.stats.type_counts[icmp_type + 256 if ipv6 else icmp_type] += 1
        return IcmpPacket(ts, src, dst, ipv6, icmp_type, code, ident, seq, payload, wire_len)

    # -- link layer (shared by both decoders) -----------------------------------------------------

    def _ethernet(self, ts: float, f: bytes, wire_len: int) -> IcmpPacket | None:
        if len(f) < 14:
            return self._error("truncated_link")
        if f[12] == 8 and f[13] == 0:  # IPv4 without a VLAN tag, the common case: no dispatch
            return self._ip4(ts, f, 14, len(f), wire_len)
        return self._ethertype(ts, f, f[12] << 8 | f[13], 14, wire_len)

    def _sll(self, ts: float, f: bytes, wire_len: int) -> IcmpPacket | None:
        if len(f) < 16:
            return self._error("truncated_link")
        return self._ethertype(ts, f, f[14] << 8 | f[15], 16, wire_len)

    def _sll2(self, ts: float, f: bytes, wire_len: int) -> IcmpPacket | None:
        if len(f) < 20:
            return self._error("truncated_link")
        return self._ethertype(ts, f, f[0] << 8 | f[1], 20, wire_len)

    def _ethertype(self, ts: float, f: bytes, ethertype: int, pos: int, wire_len: int) -> IcmpPacket | None:
        """Dispatch on ``ethertype``, the network layer starting at ``pos`` after any VLAN tags."""
        while ethertype in _VLAN_TPIDS:
            if len(f) < pos + 4:
                return self._error("truncated_link")
            ethertype = f[pos + 2] << 8 | f[pos + 3]
            pos += 4
        if ethertype == _ETHERTYPE_IPV4:
            return self._ip4(ts, f, pos, len(f), wire_len)
        if ethertype == _ETHERTYPE_IPV6:
            return self._ip6(ts, f, pos, len(f), wire_len)
        return self._skip("not_ip")

    def _null(self, ts: float, f: bytes, wire_len: int) -> IcmpPacket | None:
        if len(f) < 4:
            return self._error("truncated_link")
        family = f[0] | f[1] << 8 | f[2] << 16 | f[3] << 24
        if family > 0xFFFF:  # written by a big-endian host: no address family is that large
            family = _be32(f, 0)
        return self._family(ts, f, family, wire_len)

    def _loop(self, ts: float, f: bytes, wire_len: int) -> IcmpPacket | None:
        if len(f) < 4:
            return self._error("truncated_link")
        return self._family(ts, f, _be32(f, 0), wire_len)

    def _family(self, ts: float, f: bytes, family: int, wire_len: int) -> IcmpPacket | None:
        if family == _AF_INET:
            return self._ip4(ts, f, 4, len(f), wire_len)
        if family in _AF_INET6:
            return self._ip6(ts, f, 4, len(f), wire_len)
        return self._skip("not_ip")

    def _raw(self, ts: float, f: bytes, wire_len: int) -> IcmpPacket | None:
        if not f:
            return self._error("truncated_ip")
        version = f[0] >> 4
        if version == 4:
            return self._ip4(ts, f, 0, len(f), wire_len)
        if version == 6:
            return self._ip6(ts, f, 0, len(f), wire_len)
        return self._error("bad_ip_header")

    def _raw4(self, ts: float, f: bytes, wire_len: int) -> IcmpPacket | None:
        return self._ip4(ts, f, 0, len(f), wire_len)

    def _raw6(self, ts: float, f: bytes, wire_len: int) -> IcmpPacket | None:
        return self._ip6(ts, f, 0, len(f), wire_len)

    # -- fragments (shared) -----------------------------------------------------------------------

    def _fragment4(
        self,
        ts: float,
        data: bytes,
        src: bytes,
        dst: bytes,
        ident: int,
        more: bool,
        offset: int,
        wire_len: int,
    ) -> IcmpPacket | None:
        if not data or (more and len(data) & 7):
            return self._error("bad_fragment")
        datagram = self.reassembler.add(key_v4(src, dst, _PROTO_ICMP, ident), ts, offset, more, data,
                                        _PROTO_ICMP, wire_len)
        if datagram is None:
            return None
        payload = datagram.payload
        return self._icmp4(ts, payload, 0, len(payload), src, dst, datagram.wire_len)

    def _fragment6(
        self,
        ts: float,
        data: bytes,
        src: bytes,
        dst: bytes,
        final_dst: bytes,
        ident: int,
        next_header: int,
        more: bool,
        offset: int,
        wire_len: int,
    ) -> IcmpPacket | None:
        if next_header not in _V6_WALKED:
            return self._skip("not_icmp")
        if not data or (more and len(data) & 7):
            return self._error("bad_fragment")
        key = key_v6(src, dst, ident)
        datagram = self.reassembler.add(key, ts, offset, more, data, next_header, wire_len)
        if datagram is None:
            return None
        payload = datagram.payload
        return self._walk6(ts, payload, 0, len(payload), datagram.proto, src, dst, final_dst,
                           datagram.wire_len, False)

    # -- network and transport layers: dpkt

    def _ip4(self, ts: float, f: bytes, off: int, limit: int, wire_len: int) -> IcmpPacket | None:
        buf = f[off:limit]
        try:
            ip = _IP4Header(buf)
        except dpkt.NeedData:
            return self._error("truncated_ip")
        except dpkt.UnpackError:
            return self._error("bad_ip_header")
        if ip.v != 4:
            return self._error("bad_ip_header")
        if ip.p != _PROTO_ICMP:
            return self._skip("not_icmp")
        header_len = ip.hl * 4
        if len(buf) < header_len:
            return self._error("truncated_ip")
        if ip.len < header_len:
            return self._error("bad_ip_header")
        if len(buf) < ip.len:
            return self._error("truncated_ip")
        if self.verify_checksums and dpkt.in_cksum(buf[:header_len]) != 0:
            return self._error("bad_ip_checksum")
        if ip.mf or ip.offset:
            return self._fragment4(ts, buf[header_len : ip.len], ip.src, ip.dst, ip.id, bool(ip.mf),
                                   ip.offset * 8, wire_len)
        return self._icmp4(ts, buf, header_len, ip.len, ip.src, ip.dst, wire_len)

    def _icmp4(
        self, ts: float, buf: bytes, start: int, end: int, src: bytes, dst: bytes, wire_len: int
    ) -> IcmpPacket | None:
        raw = buf[start:end]
        try:
            icmp = dpkt.icmp.ICMP(raw)
        except dpkt.NeedData:
            return self._error("truncated_icmp")
        if self.verify_checksums and dpkt.in_cksum(raw) != 0:
            return self._error("bad_checksum")
        if icmp.type in _ECHO4:
            echo = icmp.data
            if not isinstance(echo, dpkt.icmp.ICMP.Echo):
                return self._error("truncated_icmp")
            return self._emit(ts, src, dst, False, icmp.type, icmp.code, echo.id, echo.seq, echo.data,
                              wire_len)
        return self._emit(ts, src, dst, False, icmp.type, icmp.code, -1, -1, raw[4:], wire_len)

    def _ip6(self, ts: float, f: bytes, off: int, limit: int, wire_len: int) -> IcmpPacket | None:
        buf = f[off:limit]
        try:
            ip6 = _IP6Header(buf)
        except dpkt.NeedData:
            return self._error("truncated_ip")
        if ip6.v != 6:
            return self._error("bad_ip_header")
        if ip6.nxt not in _V6_WALKED:
            return self._skip("not_icmp")
        if len(buf) < 40 + ip6.plen:
            return self._error("truncated_ip")
        return self._walk6(ts, buf, 40, 40 + ip6.plen, ip6.nxt, ip6.src, ip6.dst, ip6.dst, wire_len, True)

    def _walk6(
        self,
        ts: float,
        buf: bytes,
        pos: int,
        end: int,
        next_header: int,
        src: bytes,
        dst: bytes,
        final_dst: bytes,
        wire_len: int,
        unfragmented: bool,
    ) -> IcmpPacket | None:
        first = unfragmented
        for _ in range(_MAX_EXT_HEADERS):
            if next_header == _PROTO_ICMPV6:
                return self._icmp6(ts, buf, pos, end, src, dst, final_dst, wire_len)
            header_class = dpkt.ip6.IP6FragmentHeader if next_header == _FRAGMENT else \
                _DPKT_EXT_HEADERS.get(next_header)
            if header_class is None:
                return self._skip("not_icmp")
            if (next_header == _FRAGMENT and not unfragmented) or (next_header == _HOP_BY_HOP and not first):
                return self._error("bad_ipv6_ext_header")
            try:
                header = header_class(buf[pos:end])
            except dpkt.NeedData:
                return self._error("bad_ipv6_ext_header")
            if (next_header == _AUTH and header.len < 1) or pos + header.length > end:
                return self._error("bad_ipv6_ext_header")
            if next_header == _ROUTING:
                final_dst = _routing_final_dst(buf, pos, header.length, final_dst)
            pos += header.length
            if next_header == _FRAGMENT:
                if header.frag_off or header.m_flag:
                    return self._fragment6(ts, buf[pos:end], src, dst, final_dst, header.id, header.nxt,
                                           bool(header.m_flag), header.frag_off * 8, wire_len)
                unfragmented = False
            next_header = header.nxt
            first = False
        return self._error("bad_ipv6_ext_header")

    def _icmp6(
        self,
        ts: float,
        buf: bytes,
        start: int,
        end: int,
        src: bytes,
        dst: bytes,
        final_dst: bytes,
        wire_len: int,
    ) -> IcmpPacket | None:
        raw = buf[start:end]
        try:
            icmp = dpkt.icmp6.ICMP6(raw)
        except dpkt.NeedData:
            return self._error("truncated_icmp")
        if self.verify_checksums:
            pseudo = struct.pack(">16s16sI3xB", src, final_dst, len(raw), _PROTO_ICMPV6)
            if dpkt.in_cksum_done(dpkt.in_cksum_add(dpkt.in_cksum_add(0, pseudo), raw)) != 0:
                return self._error("bad_checksum")
        if icmp.type in _ECHO6:
            echo = icmp.data
            if not isinstance(echo, dpkt.icmp6.ICMP6.Echo):
                return self._error("truncated_icmp")
            return self._emit(ts, src, dst, True, icmp.type, icmp.code, echo.id, echo.seq, echo.data,
                              wire_len)
        return self._emit(ts, src, dst, True, icmp.type, icmp.code, -1, -1, raw[4:], wire_len)


class Decoder(DpktDecoder):
    """The production decoder: the common frame's IP and ICMP headers read with one struct call;
    every other frame (IPv4 options, fragments, IPv6 extension headers, messages shorter than 8
    bytes, anything truncated or malformed) goes to dpkt, as in `DpktDecoder`.

    Batches go to the C fast path first, when it is built and `accelerated` is not turned off; it
    takes the same frames as the struct path and leaves the others to it, by position."""

    def __init__(self, linktype: int, stats: DecodeStats, *, accelerated: bool = True, **options: Any) -> None:
        """`options`: those of DpktDecoder (verify_checksums, reassembler)."""
        super().__init__(linktype, stats, **options)
        self._c_link = _C_LINKS.get(linktype) if accelerated else None

    def decode_batch(self, buf: bytes, meta: bytes) -> list[IcmpPacket]:
        link = self._c_link
        if link is None:
            return super().decode_batch(buf, meta)
        stats = self.stats
        packets, rest = _fastdecode.decode_batch(buf, meta, link, self.verify_checksums, stats.type_counts)
        stats.frames += len(packets)
        if not rest:
            return packets
        frame = self._batch_frame
        for index in rest:
            packets[index] = frame(buf, meta, index)
        return [pkt for pkt in packets if pkt is not None]

    def _ip4(self, ts: float, f: bytes, off: int, limit: int, wire_len: int) -> IcmpPacket | None:
        """The IPv4 packet in f[off:limit] (the rest of the captured frame)."""
        if limit - off >= 28:
            # A 20-byte header, not a fragment, and a whole ICMP message of 8 bytes or more.
            vihl, total_len, flags_offset, proto, src, dst, icmp_type, code, ident, seq = _IP4_ICMP.unpack_from(f, off)
            if vihl == 0x45 and proto == _PROTO_ICMP and not flags_offset & 0x3FFF and 28 <= total_len <= limit - off:
                end = off + total_len
                if self.verify_checksums:
                    # Both sums as big-endian integers, which are congruent modulo 0xFFFF to the one's-complement
                    # sums of their 16-bit words; an odd ICMP length shifts its sum by 8 bits (a factor of
                    # 256, invertible modulo 0xFFFF), changing neither "is 0" nor "is 0 modulo 0xFFFF".
                    if int.from_bytes(f[off : off + 20], "big") % 0xFFFF:
                        return self._error("bad_ip_checksum")
                    total = int.from_bytes(f[off + 20 : end], "big")
                    if total == 0 or total % 0xFFFF:  # all-zero words sum to +0, never valid
                        return self._error("bad_checksum")
                self.stats.type_counts[icmp_type] += 1
                if icmp_type == 8 or icmp_type == 0:
                    return IcmpPacket(ts, src, dst, False, icmp_type, code, ident, seq, f[off + 28 : end], wire_len)
                return IcmpPacket(ts, src, dst, False, icmp_type, code, -1, -1, f[off + 24 : end], wire_len)
        return super()._ip4(ts, f, off, limit, wire_len)

    def _ip6(self, ts: float, f: bytes, off: int, limit: int, wire_len: int) -> IcmpPacket | None:
        """The IPv6 packet in f[off:limit] (the rest of the captured frame)."""
        if limit - off >= 48:
            # No extension header and a whole ICMPv6 message of 8 bytes or more.
            version, size, next_header, src, dst, icmp_type, code, ident, seq = _IP6_ICMP.unpack_from(f, off)
            if version >> 4 == 6 and next_header == _PROTO_ICMPV6 and 8 <= size <= limit - off - 40:
                start = off + 40
                end = start + size
                if self.verify_checksums:
                    pseudo = int.from_bytes(src, "big") + int.from_bytes(dst, "big") + size + _PROTO_ICMPV6
                    if ((int.from_bytes(f[start:end], "big") << (8 if size & 1 else 0)) + pseudo) % 0xFFFF:
                        return self._error("bad_checksum")
                self.stats.type_counts[256 + icmp_type] += 1
                if icmp_type == 128 or icmp_type == 129:
                    return IcmpPacket(ts, src, dst, True, icmp_type, code, ident, seq, f[start + 8 : end], wire_len)
                return IcmpPacket(ts, src, dst, True, icmp_type, code, -1, -1, f[start + 4 : end], wire_len)
        return super()._ip6(ts, f, off, limit, wire_len)


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
ACCELERATED = _fastdecode is not None  # whether the C batch fast path is in use in this process
DECODER = "C decoder" if ACCELERATED else "Python decoder"  # for the start-up message
