"""The ICMP layer: ICMP and ICMPv6 messages (dpkt's classes), checksums, and the record they become.

The decoder's lowest layer (decode/decoder.py), called by the IP layer (decode/ip.py).
"""

from __future__ import annotations

import struct

import dpkt

from icmpsensor.decode.checksum import checksum_ok
from icmpsensor.decode.linktypes import PROTO_ICMPV6
from icmpsensor.decode.packet import ECHO_TYPES_V4, ECHO_TYPES_V6, IcmpPacket
from icmpsensor.decode.stats import DecodeStats


class IcmpLayer:
    """ICMP and ICMPv6 for the decoder; needs `stats` and `verify_checksums`."""

    stats: DecodeStats
    verify_checksums: bool

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
        options: bytes = b"",
    ) -> IcmpPacket:
        self.stats.type_counts[icmp_type + 256 if ipv6 else icmp_type] += 1
        return IcmpPacket(ts, src, dst, ipv6, icmp_type, code, ident, seq, payload, wire_len, options)

    def _icmp(self, ts: float, buf: bytes, start: int, end: int, src: bytes, dst: bytes, wire_len: int,
              final_dst: bytes | None = None, *, options: bytes = b"") -> IcmpPacket | None:
        """The ICMP message in buf[start:end]; an ICMPv6 one when `final_dst` (the destination its checksum's
        pseudo-header names, RFC 8200 8.1) is given."""
        raw = buf[start:end]
        ipv6 = final_dst is not None
        try:
            icmp = dpkt.icmp6.ICMP6(raw) if ipv6 else dpkt.icmp.ICMP(raw)
        except dpkt.NeedData:
            return self._error("truncated_icmp")
        if self.verify_checksums and not checksum_ok(
                struct.pack(">16s16sI3xB", src, final_dst, len(raw), PROTO_ICMPV6) + raw if ipv6 else raw):
            self.stats.bad_checksum += 1  # counted, and analysed all the same (decode/stats.py)
        return self._message(ts, icmp, raw, src, dst, ipv6, wire_len, options)

    def _message(self, ts: float, icmp: dpkt.Packet, raw: bytes, src: bytes, dst: bytes, ipv6: bool,
                 wire_len: int, options: bytes = b"") -> IcmpPacket | None:
        """The record of a checked ICMP or ICMPv6 message (dpkt parsed the echo header, if any, as `icmp.data`)."""
        if icmp.type in (ECHO_TYPES_V6 if ipv6 else ECHO_TYPES_V4):
            echo = icmp.data
            if not isinstance(echo, dpkt.icmp6.ICMP6.Echo if ipv6 else dpkt.icmp.ICMP.Echo):
                return self._error("truncated_icmp")
            return self._emit(ts, src, dst, ipv6, icmp.type, icmp.code, echo.id, echo.seq, echo.data, wire_len,
                              options)
        return self._emit(ts, src, dst, ipv6, icmp.type, icmp.code, -1, -1, raw[4:], wire_len, options)
