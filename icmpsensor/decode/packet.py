"""The record that flows from the decoder to the detector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from icmpsensor.source.batch import CapturedFrame

# ICMP types the detector treats as echo request / echo reply.
ECHO_REQUEST_V4 = 8
ECHO_REPLY_V4 = 0
ECHO_REQUEST_V6 = 128
ECHO_REPLY_V6 = 129
ECHO_TYPES_V4 = frozenset((ECHO_REQUEST_V4, ECHO_REPLY_V4))
ECHO_TYPES_V6 = frozenset((ECHO_REQUEST_V6, ECHO_REPLY_V6))
HEADLESS = -1  # the icmp_type of a HeadlessPacket: its message's type never came


@dataclass(slots=True)
class IcmpPacket:
    """One decoded (and, if it was fragmented, reassembled) ICMP or ICMPv6 message.

    Addresses stay packed (4 or 16 bytes): they are dictionary keys on the hot
    path and are turned into text only when a notice is written.
    """

    ts: float  # capture time, epoch seconds
    src: bytes  # packed IPv4 (4 bytes) or IPv6 (16 bytes) source address
    dst: bytes  # packed destination address, same family as src
    ipv6: bool  # True for ICMPv6 over IPv6
    icmp_type: int
    icmp_code: int
    ident: int  # echo identifier; -1 when the type has none
    seq: int  # echo sequence number; -1 when the type has none
    payload: bytes  # echo: the data after the 8-byte header; other types: everything after the 4-byte header
    wire_len: int  # length of the whole frame on the wire (for statistics)
    # the sender-set IP options in front of the message: IPv4 header options and IPv6 hop-by-hop and
    # destination options, as their type-length-value bytes, padding (Pad1, PadN, NOP, EOL) left out, and
    # IPv6 routing headers from their type on (their segments are the sender's to set)
    options: bytes = b""
    # the frames a message that came in fragments was captured in, in the order they came, when the
    # reassembler keeps them (for evidence); None: the message is the frame at its own place in its batch
    frames: tuple[CapturedFrame, ...] | None = None
    # 0.0; a PartialPacket's: when its first fragment came (not a slot: the C decoder fills exactly these slots)
    sent: ClassVar[float] = 0.0

    @property
    def is_echo_request(self) -> bool:
        return self.icmp_type == (ECHO_REQUEST_V6 if self.ipv6 else ECHO_REQUEST_V4)

    @property
    def is_echo_reply(self) -> bool:
        return self.icmp_type == (ECHO_REPLY_V6 if self.ipv6 else ECHO_REPLY_V4)


@dataclass(slots=True)
class PartialPacket(IcmpPacket):
    """The message cut from a datagram the reassembler abandoned (decode/fragments.py: a partial): handed on at
    `ts`, when it was abandoned (up to decode.fragment_timeout after it was sent), and in time order there."""

    sent: float = 0.0  # the time its datagram's first fragment came: when it was sent

    @classmethod
    def of(cls, pkt: IcmpPacket, sent: float) -> PartialPacket:
        return cls(pkt.ts, pkt.src, pkt.dst, pkt.ipv6, pkt.icmp_type, pkt.icmp_code, pkt.ident, pkt.seq, pkt.payload,
                   pkt.wire_len, pkt.options, pkt.frames, sent)


@dataclass(slots=True)
class HeadlessPacket(PartialPacket):
    """The bytes of fragments whose datagram's piece at offset 0, the ICMP header, never came or lay before a hole
    (decode/fragments.py: headless): a receiver reading the fragments gets them. Their message's type is unknown
    (icmp_type HEADLESS, ident and seq -1); `payload` holds the runs of bytes one after another, `runs` the offset
    in the IP payload and the length of each. The detector judges them on their own (detect/nonecho.py)."""

    runs: tuple[tuple[int, int], ...] = ()
