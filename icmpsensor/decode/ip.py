"""The IP layer: IPv4 and IPv6 headers (dpkt's classes), IPv6 extension headers, fragments.

The decoder's middle layer (decode/decoder.py): the link layer hands it the IP header's position;
it hands the ICMP message on to the ICMP layer (decode/icmp.py), a fragment to the reassembler, or a
tunnel's payload to decode/encap.py (which hands the inner packet back here).
"""

from __future__ import annotations

import re
import struct

import dpkt

from icmpsensor.decode.checksum import checksum_ok
from icmpsensor.decode.encap import IP_TUNNELS, TUNNEL_PROTOS, EncapLayer, is_tunnel
from icmpsensor.decode.fragments import Datagram, Reassembler, key_v4, key_v6
from icmpsensor.decode.linktypes import (
    AUTH,
    DEST_OPTS,
    FRAGMENT,
    HOP_BY_HOP,
    PROTO_ICMP,
    PROTO_ICMPV6,
    ROUTING,
)
from icmpsensor.decode.packet import HEADLESS, HeadlessPacket, IcmpPacket, PartialPacket
from icmpsensor.source.batch import CapturedFrame

# Next-header values walked towards an ICMPv6 message; any other means "not ICMP".
V6_WALKED = frozenset((HOP_BY_HOP, ROUTING, FRAGMENT, AUTH, DEST_OPTS, PROTO_ICMPV6))
# Headers walked per packet, the ICMPv6 one included. A receiver walks a chain whole (Linux has no limit), so a
# shorter walk here was a way past the sensor (17 empty destination options before an exfiltration's requests). The
# whole chain is in the first fragment (RFC 7112; Linux drops a first fragment without it), so a chain is bounded by
# a frame: (9216 - 40) / 8 headers of 8 bytes in the largest jumbo frame. More is an attack on the sensor alone.
MAX_EXT_HEADERS = 1_150
# Items (an option, a run of Pad1 or NOP) read in one option area: senders put a few options in a header (router
# alert, jumbo payload, a PadN); past this the rest is kept whole, as a tail that does not parse. Read item by item,
# sixteen 2 KB headers of empty options cost ~3.5 ms a packet.
MAX_OPTION_ITEMS = 64
_PADDING = {True: re.compile(rb"\x00*"), False: re.compile(rb"\x01*")}  # runs of IPv6 Pad1, of IPv4 NOP


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


def sender_options(area: bytes, ipv6: bool) -> bytes:
    """The type-length-value options in an IPv4 header's option area or an IPv6 hop-by-hop / destination
    options header's, without padding: IPv4 NOP (1) and everything from EOL (0) on when it is zero (RFC 791:
    the padding to the header's end); IPv6 Pad1 (0) and PadN (1) whose bytes are zero, as RFC 8200 4.2 has
    them. A PadN carrying anything else is kept, and so are an EOL followed by anything but zeros and a tail
    that does not parse as options, or that lies past MAX_OPTION_ITEMS items."""
    out = bytearray()
    pos, end = 0, len(area)
    for _ in range(MAX_OPTION_ITEMS):
        if pos >= end:
            return bytes(out)
        kind = area[pos]
        if kind == (0 if ipv6 else 1):  # a run of Pad1 or NOP
            pos = _PADDING[ipv6].match(area, pos).end()  # type: ignore[union-attr]  # matches the empty string
            continue
        if not ipv6 and kind == 0:
            if any(area[pos + 1 :]):
                out += area[pos:]
            return bytes(out)
        if pos + 1 >= end:
            out += area[pos:]
            return bytes(out)
        size = area[pos + 1] + 2 if ipv6 else area[pos + 1]
        if size < 2 or pos + size > end:
            out += area[pos:]
            return bytes(out)
        if not (ipv6 and kind == 1 and not any(area[pos + 2 : pos + size])):
            out += area[pos : pos + size]
        pos += size
    out += area[pos:]
    return bytes(out)


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


# The extension headers walked towards an ICMPv6 message: the bytes of each one's fixed part (RFC 8200 4.3-4.6,
# RFC 4302 2), read by hand (dpkt's header classes took ~2.7 us each: a chain of a thousand headers, 3 ms).
_EXT_FIXED = {HOP_BY_HOP: 2, DEST_OPTS: 2, ROUTING: 8, FRAGMENT: 8, AUTH: 12}


# An options header of n bytes holding nothing but a PadN of zeros (sender_options' answer b"", as for Pad1s alone)
_PADDED = {n: bytes((1, n - 4)) + bytes(n - 4) for n in range(8, 257, 8)}


def _ext_length(next_header: int, buf: bytes, pos: int) -> int:
    """The length in bytes of the extension header at buf[pos] (its fixed part there): 8-octet units past the first
    for options and routing headers, 4-octet units past the first two for AH (0 for an AH shorter than its fixed
    part), 8 for a fragment header."""
    if next_header == FRAGMENT:
        return 8
    if next_header == AUTH:
        return (buf[pos + 1] + 2) * 4 if buf[pos + 1] >= 1 else 0
    return (buf[pos + 1] + 1) * 8



def with_frames(pkt: IcmpPacket | None, datagram: Datagram) -> IcmpPacket | None:
    """The message of a reassembled datagram, with the fragment frames it came in (when they were kept)."""
    if pkt is not None and datagram.frames is not None:
        pkt.frames = datagram.frames
    return pkt


class IpLayer(EncapLayer):
    """IPv4 and IPv6 on top of the ICMP layer and the tunnels' (decode/encap.py); needs `reassembler`, `_frame`,
    `_index` and `due` (decode/decoder.py) too."""

    reassembler: Reassembler
    _frame: tuple[bytes, int, int, int, int]
    _index: int  # the index in its batch of the frame being decoded
    due: list[tuple[int, IcmpPacket]]  # the messages of abandoned datagrams, with the index they became due at

    def _hand_on(self, partials: list[Datagram] | None = None) -> None:
        """Decode the partial datagrams the reassembler's last call abandoned (decode/fragments.py; `partials`:
        those it was taken of already) into `due`, as a completed datagram's message is decoded: each counts like
        a frame (decode/stats.py). A headless one (no ICMP header to decode) becomes a HeadlessPacket as it is,
        counted by the reassembler alone (`headless`)."""
        for datagram in self.reassembler.take_partials() if partials is None else partials:
            src, dst = datagram.key[0], datagram.key[1]
            payload = datagram.payload
            if len(datagram.key) == 4 and datagram.key[2] != PROTO_ICMP:  # a tunnel's outer datagram, abandoned
                if not datagram.runs:
                    self._skip("encap_fragment")  # counted like a frame (a partial), and not opened
                continue
            if datagram.runs:
                self.due.append((self._index, HeadlessPacket(
                    datagram.ts, src, dst, len(datagram.key) == 3, HEADLESS, 0, -1, -1, payload, datagram.wire_len,
                    b"", datagram.frames, datagram.sent, datagram.runs)))
                continue
            if len(datagram.key) == 3:  # key_v6; the checksum's pseudo-header names the header's destination
                pkt = self._walk6(datagram.ts, payload, 0, len(payload), datagram.proto, src, dst, dst,
                                  datagram.wire_len, False)
            else:
                pkt = self._icmp(datagram.ts, payload, 0, len(payload), src, dst, datagram.wire_len)
            if pkt is not None:
                self.due.append((self._index, PartialPacket.of(with_frames(pkt, datagram), datagram.sent)))  # type: ignore[arg-type]

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
        proto: int = PROTO_ICMP,
    ) -> IcmpPacket | None:
        """An IPv4 fragment of an ICMP message, or of an IP-in-IP or GRE packet (`proto`: a tunnel whose receiver
        reassembles the outer datagram, then opens it)."""
        if not data or (more and len(data) & 7):
            return self._error("bad_fragment")
        reassembler = self.reassembler
        datagram = reassembler.add(key_v4(src, dst, proto, ident), ts, offset, more, data, proto,
                                   wire_len, self._captured() if reassembler.keep_frames else None)
        if reassembler.has_partials:
            self._hand_on()
        if datagram is None:
            return None
        return self._reassembled4(ts, datagram, src, dst)

    def _reassembled4(self, ts: float, datagram: Datagram, src: bytes, dst: bytes) -> IcmpPacket | None:
        """The ICMP message of a completed IPv4 datagram (the one in its tunnel, for IP-in-IP and GRE), carrying
        its fragments' frames."""
        if datagram.proto != PROTO_ICMP:
            return self._opened(ts, datagram)
        payload = datagram.payload
        return with_frames(self._icmp(ts, payload, 0, len(payload), src, dst, datagram.wire_len), datagram)

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
        tunnel = next_header in IP_TUNNELS  # an outer fragment of IP-in-IP or GRE (_tunnel4)
        if next_header not in V6_WALKED and not tunnel:
            return self._skip("not_icmp")
        if not data or (more and len(data) & 7):
            return self._error("bad_fragment")
        key = key_v4(src, dst, next_header, ident) if tunnel else key_v6(src, dst, ident)
        reassembler = self.reassembler
        datagram = reassembler.add(key, ts, offset, more, data, next_header, wire_len,
                                   self._captured() if reassembler.keep_frames else None)
        if reassembler.has_partials:
            self._hand_on()
        if datagram is None:
            return None
        return self._reassembled6(ts, datagram, src, dst, final_dst)

    def _reassembled6(self, ts: float, datagram: Datagram, src: bytes, dst: bytes,
                      final_dst: bytes) -> IcmpPacket | None:
        """The ICMPv6 message of a completed IPv6 datagram (its fragmentable part; the one in its tunnel, for IP-in-IP
        and GRE), carrying its fragments' frames."""
        if datagram.proto in IP_TUNNELS:
            return self._opened(ts, datagram)
        payload = datagram.payload
        return with_frames(self._walk6(ts, payload, 0, len(payload), datagram.proto, src, dst, final_dst,
                                        datagram.wire_len, False), datagram)

    def _opened(self, ts: float, datagram: Datagram) -> IcmpPacket | None:
        """The packet inside a completed IP-in-IP or GRE outer datagram, carrying its fragments' frames."""
        payload = datagram.payload
        return with_frames(self._decap(ts, payload, 0, len(payload), datagram.proto, datagram.wire_len), datagram)

    def _captured(self) -> CapturedFrame:
        """The frame being decoded, as captured (a fragment's, which the reassembler keeps for evidence)."""
        buf, off, cap, sec, usec = self._frame
        return CapturedFrame(sec, usec, buf[off : off + cap])

    # -- IPv4 and IPv6 headers, with dpkt

    def _header(self, header_class: type[dpkt.Packet], buf: bytes, version: int) -> dpkt.Packet | None:
        """The IP header at the start of `buf`, or None (counted) when it is cut short, malformed or not of
        `version`."""
        try:
            header = header_class(buf)
        except dpkt.NeedData:
            return self._error("truncated_ip")
        except dpkt.UnpackError:
            return self._error("bad_ip_header")
        return header if header.v == version else self._error("bad_ip_header")

    def _ip4(self, ts: float, f: bytes, off: int, limit: int, wire_len: int) -> IcmpPacket | None:
        buf = f[off:limit]
        ip = self._header(_IP4Header, buf, 4)
        if ip is None:
            return None
        header_len = ip.hl * 4
        if ip.p != PROTO_ICMP:
            if ip.p in IP_TUNNELS or (not ip.offset and is_tunnel(ip.p, buf, header_len, len(buf))):
                return self._tunnel4(ts, buf, ip, wire_len)
            return self._skip("not_icmp")  # a UDP tunnel's later fragment does not say it is one
        problem = self._v4_header_problem(buf, ip.len, header_len)
        if problem:
            return self._error(problem)
        if ip.mf or ip.offset:
            return self._fragment4(ts, buf[header_len : ip.len], ip.src, ip.dst, ip.id, bool(ip.mf),
                                   ip.offset * 8, wire_len)
        options = sender_options(buf[20:header_len], False) if header_len > 20 else b""
        return self._icmp(ts, buf, header_len, ip.len, ip.src, ip.dst, wire_len, options=options)

    def _tunnel4(self, ts: float, buf: bytes, ip: dpkt.ip.IP, wire_len: int) -> IcmpPacket | None:
        """An IPv4 packet (at the start of `buf`) carrying a tunnel (is_tunnel): its header checked as one
        carrying ICMP, then the payload opened (decode/encap.py). A fragment of IP-in-IP or GRE (IP_TUNNELS: the
        protocol in every fragment says so) is reassembled first, as its receiver does (an `ip tunnel` whose MTU
        outgrows the path's sends every big packet so: 840 KB in 5 minutes went unseen, red team 2026-12-06); over
        IPv6 keyed with the protocol too (key_v4's shape), so that no ICMPv6 datagram is mistaken for one. A UDP
        tunnel's (its port is in the first fragment only) is skipped."""
        header_len = ip.hl * 4
        problem = self._v4_header_problem(buf, ip.len, header_len)
        if problem:
            return self._error(problem)
        if ip.mf or ip.offset:
            if ip.p not in IP_TUNNELS:
                return self._skip("encap_fragment")
            return self._fragment4(ts, buf[header_len : ip.len], ip.src, ip.dst, ip.id, bool(ip.mf), ip.offset * 8,
                                   wire_len, ip.p)
        return self._decap(ts, buf, header_len, ip.len, ip.p, wire_len)

    def _v4_header_problem(self, buf: bytes, total: int, header_len: int) -> str:
        """What is wrong with the IPv4 header at the start of `buf` (its total length `total`) as one whose payload
        is read: the error reason, or ""."""
        if len(buf) < header_len:
            return "truncated_ip"
        if total < header_len:
            return "bad_ip_header"
        if len(buf) < total:
            return "truncated_ip"
        if self.verify_checksums and not checksum_ok(buf[:header_len]):
            return "bad_ip_checksum"
        return ""

    def _ip6(self, ts: float, f: bytes, off: int, limit: int, wire_len: int) -> IcmpPacket | None:
        buf = f[off:limit]
        ip6 = self._header(_IP6Header, buf, 6)
        if ip6 is None:
            return None
        if ip6.nxt not in V6_WALKED and not is_tunnel(ip6.nxt, buf, 40, len(buf)):
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
        first = whole = unfragmented  # whole: not a reassembled datagram, whose tunnels are not opened
        options: list[bytes] = []
        for _ in range(MAX_EXT_HEADERS):
            if next_header == PROTO_ICMPV6:
                return self._icmp(ts, buf, pos, end, src, dst, wire_len, final_dst, options=b"".join(options))
            if next_header in TUNNEL_PROTOS and is_tunnel(next_header, buf, pos, end):
                return self._decap(ts, buf, pos, end, next_header, wire_len) if whole else \
                    self._skip("encap_fragment")
            fixed = _EXT_FIXED.get(next_header)
            if fixed is None:
                return self._skip("not_icmp")
            if (next_header == FRAGMENT and not unfragmented) or (next_header == HOP_BY_HOP and not first):
                return self._error("bad_ipv6_ext_header")
            length = _ext_length(next_header, buf, pos) if pos + fixed <= end else 0
            if not length or pos + length > end:
                return self._error("bad_ipv6_ext_header")
            header_next = buf[pos]
            if next_header == ROUTING:
                final_dst = _routing_final_dst(buf, pos, length, final_dst)
                options.append(buf[pos + 2 : pos + length])  # its type, segments and addresses: the sender's
            elif next_header in (HOP_BY_HOP, DEST_OPTS):
                area = buf[pos + 2 : pos + length]
                if area.strip(b"\x00") and area != _PADDED.get(length):  # not padding alone (a chain's filler)
                    options.append(sender_options(area, True))
            elif next_header == FRAGMENT:
                offset_flags, ident = struct.unpack_from("!HI", buf, pos + 2)
                if offset_flags & 0xFFF9:  # an offset or more fragments: not an atomic fragment
                    return self._fragment6(ts, buf[pos + 8 : end], src, dst, final_dst, ident, header_next,
                                           bool(offset_flags & 1), (offset_flags >> 3) * 8, wire_len)
                unfragmented = False
            pos += length
            next_header = header_next
            first = False
        return self._error("bad_ipv6_ext_header")
