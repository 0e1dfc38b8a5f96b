"""Recognise known ICMP tunnelling and exfiltration tools from the packets they send.

`recognise` looks at one echo message at a time (stateless) and is meant to run on every
packet: the common miss path costs a table look-up on the first payload byte and a few
byte comparisons. `ToolTracker.observe` adds the few tools that only show over several
packets of one flow (hping3 file mode, Icmp-File-Transfer mid-transfer, nping payloads,
icmpsh commands). `tool_tracker()` gives the detector FastToolTracker, the same with its per-packet
path in C (detect/_fasttools.c), when the accelerator is built; ToolTracker stays the reference.

Every fingerprint below was read from the tool's own source; the comment at each check
names the repository and file. Layouts marked "seen live" were also checked on the wire
between two network namespaces with the Debian package of the tool.
"""

from __future__ import annotations

import binascii
import itertools
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from icmpsensor.accelerators import tools_extension as _fasttools
from icmpsensor.decode.checksum import checksum_ok
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.detect.capacity import icmplib_layout
from icmpsensor.detect.novelty import PREFIX
from icmpsensor.notice.text import addr_text

_K = TypeVar("_K")
_V = TypeVar("_V")

# Echo requests carry the tool's client side; ICMPv4 8 and ICMPv6 128 (the decoder gives
# non-echo messages ident -1, so a 128 here is always ICMPv6).
_REQUEST_TYPES = frozenset((8, 128))


@dataclass(frozen=True, slots=True)
class ToolMatch:
    tool: str  # e.g. "ptunnel", "pyexfil", "hping3-file"
    evidence: str  # one line an analyst understands


# -- small helpers -------------------------------------------------------------------------

_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_PADDED = _B64 + b"="
_B64URL_PADDED = _B64[:-2] + b"-_="
_PRINTABLE = bytes(range(0x20, 0x7F)) + b"\t\r\n"


def _only(data: bytes, alphabet: bytes) -> bool:
    """True when every byte of `data` is in `alphabet` (bytes.translate runs in C)."""
    return not data.translate(None, alphabet)


def _show(data: bytes, limit: int = 40) -> str:
    text = repr(data[:limit])[2:-1]
    return text + "..." if len(data) > limit else text


def _be32(p: bytes, at: int) -> int:
    return p[at] << 24 | p[at + 1] << 16 | p[at + 2] << 8 | p[at + 3]


_PROTO_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6"}
_IPV6_UPPER = frozenset((6, 17, 58))  # upper layers whose checksum can be verified


# -- ptunnel / ptunnel-ng ------------------------------------------------------------------
# Header after the 8-byte echo header (utoni/ptunnel-ng src/pkt.h `ping_tunnel_pkt_t`, the
# same struct as ptunnel.h of the original ptunnel 0.72), all fields big-endian (queue_packet
# in the original ptunnel.c writes them; ptunnel-ng src/pkt.c handle_packet reads them back
# the same way): magic u32, dst_ip u32 (raw address), dst_port u32 (htonl of a
# 16-bit port), state u32 (kUser_flag 1<<30 or kProxy_flag 1<<31 | kProxy_start 0 ..
# kProto_authenticate 4), ack u32 (htonl of a u16), data_len u32, seq_no u16, id_no u16,
# then data_len bytes; the ICMP message is padded to an even length. Magic 0xD5200880 is
# ptunnel's kPing_tunnel_magic; ptunnel-ng defaults to 0xDEADC0DE (src/options.c, --magic)
# and lets the user pick any other. Seen live with Debian ptunnel 0.72 and ptunnel-ng 1.42
# (also with -m 1a2b3c4d -P password).

_PTUNNEL_MAGICS = {0xD5200880: "ptunnel", 0xDEADC0DE: "ptunnel-ng"}
_PTUNNEL_STATES = ("kProxyStart", "kProtoAck", "kProtoData", "kProtoClose", "kProtoAuthenticate")
_PTUNNEL_HEADER = 28


def _ptunnel(pkt: IcmpPacket, p: bytes) -> ToolMatch | None:
    flag = p[12]
    if (flag != 0x40 and flag != 0x80) or p[13] or p[14] or p[15] > 4 or p[16] or p[17] or p[8] or p[9]:
        return None
    data_len = _be32(p, 20)
    if len(p) - _PTUNNEL_HEADER - data_len not in (0, 1):
        return None
    magic = _be32(p, 0)
    tool = _PTUNNEL_MAGICS.get(magic, "ptunnel-ng")
    label = "magic" if magic in _PTUNNEL_MAGICS else "custom magic"
    side = "client" if flag == 0x40 else "proxy"
    state = _PTUNNEL_STATES[p[15]]
    target = ""
    if p[4:8] != b"\0\0\0\0":
        target = f", dst {addr_text(p[4:8])}:{p[10] << 8 | p[11]}"
    return ToolMatch(tool, f"{tool} {label} 0x{magic:08x}, state {state} from {side}{target}, {data_len} data bytes")


# -- hans ------------------------------------------------------------------------------------
# friedrich/hans src/worker.h `TunnelHeader`: 4-byte magic then a type byte (1..9); the
# client writes magic "hanc" (src/client.cpp), the server "hans" (src/server.cpp). Bodies
# (src/server.h, src/auth.h, src/config.h): connection request = ClientConnectData (u8
# maxPolls, padding, u32 desiredIp), challenge and its response 20 bytes, accept = 4-byte
# tunnel address, poll/reset/errors empty, data = an IP packet from the tun device.

_HANS_TYPES = {
    1: "RESET_CONNECTION", 2: "CONNECTION_REQUEST", 3: "CHALLENGE", 4: "CHALLENGE_RESPONSE",
    5: "CONNECTION_ACCEPT", 6: "CHALLENGE_ERROR", 7: "DATA", 8: "POLL", 9: "SERVER_FULL",
}
_HANS_BODY = {1: (0,), 3: (20,), 4: (20,), 5: (4,), 6: (0,), 8: (0,), 9: (0,)}


def _hans(pkt: IcmpPacket, p: bytes) -> ToolMatch | None:
    magic = p[:4]
    if (magic != b"hanc" and magic != b"hans") or len(p) < 5:
        return None
    kind = p[4]
    body = len(p) - 5
    if kind == 7:
        if body < 20 or p[5] >> 4 not in (4, 6):
            return None
    elif kind == 2:
        if body < 1:
            return None
    elif body not in _HANS_BODY.get(kind, ()):
        return None
    side = "client" if magic == b"hanc" else "server"
    return ToolMatch("hans", f"hans {side} magic '{magic.decode()}', type {_HANS_TYPES[kind]}, {body} body bytes")


# -- whole IP packets as the payload: icmptx, icmptunnel ----------------------------------
# jakkarth/icmptx it.c: the tun device's packet is sent as the echo data with a fixed id
# and seq 0 (polls are empty requests). DhavalKapil/icmptunnel tunnel.c + icmp.c: the tun
# packet (IFF_NO_PI) is the payload, id and seq from rand(). Seen live with Debian icmptx
# 0.2 (IPv4 and IPv6 packets, id fixed, seq 0).


def _raw_ipv4(pkt: IcmpPacket, p: bytes) -> ToolMatch | None:
    header = (p[0] & 15) * 4
    n = len(p)
    if header < 20 or n < header or (p[2] << 8 | p[3]) != n or not checksum_ok(p[:header]):
        return None
    inner = f"{addr_text(p[12:16])} -> {addr_text(p[16:20])}"
    return _raw_ip_match(pkt, f"IPv4 packet {inner} ({_PROTO_NAMES.get(p[9], p[9])}, {n} bytes, header checksum valid)")


def _raw_ipv6(pkt: IcmpPacket, p: bytes) -> ToolMatch | None:
    n = len(p)
    if n < 48 or p[6] not in _IPV6_UPPER or 40 + (p[4] << 8 | p[5]) != n:
        return None
    next_header = p[6]
    # IPv6 has no header checksum; the upper layer's pseudo-header checksum is mandatory.
    pseudo = p[8:40] + struct.pack("!IxxxB", n - 40, next_header)
    if not checksum_ok(pseudo + p[40:]):
        return None
    inner = f"{addr_text(p[8:24])} -> {addr_text(p[24:40])}"
    return _raw_ip_match(pkt, f"IPv6 packet {inner} ({_PROTO_NAMES[next_header]}, {n} bytes, checksum valid)")


def _raw_ip_match(pkt: IcmpPacket, what: str) -> ToolMatch:
    if pkt.seq == 0:
        return ToolMatch("icmptx", f"payload is a whole {what}; echo seq 0 as icmptx sends")
    return ToolMatch("icmptunnel", f"payload is a whole {what}; echo seq {pkt.seq} (icmptunnel style)")


# -- pingtunnel ------------------------------------------------------------------------------
# esrrhs/pingtunnel msg.proto: the echo data is a protobuf MyMsg (proto3, marshalled in
# field-number order): 1 id string, 2 type int32 (DATA 0, PING 1, KICK 2), 3 target string,
# 4 data bytes, 5 rproto sint32, 6 magic sint32 = MAGIC 0xdead, 7 key sint32, 8..14 int32
# options. sendICMP (pingtunnel.go) always sets Magic, so field 6 encodes as 30 da fa 06.
# With the newer optional encryption the whole message is ciphertext (not recognised).
# proto.Marshal (protobuf-go, internal/impl/codec_message.go orderedCoderFields) writes the fields
# in field-number order, each once: a payload that repeats a field or goes back is not a MyMsg,
# and the parse ends there (else a 60 KB run of one field is parsed to its end: ~19 ms a packet).

_PINGTUNNEL_MAGIC = b"\x30\xda\xfa\x06"
_PINGTUNNEL_TYPES = {0: "DATA", 1: "PING", 2: "KICK"}


def _varint(p: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while shift < 64:
        byte = p[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ValueError("varint too long")


def _protobuf_fields(p: bytes) -> dict[int, int | bytes] | None:
    fields: dict[int, int | bytes] = {}
    pos, end, last = 0, len(p), 0
    try:
        while pos < end:
            key, pos = _varint(p, pos)
            number, wire = key >> 3, key & 7
            if number <= last:
                return None
            last = number
            if wire == 0 and 2 <= number <= 32 and number != 3 and number != 4:
                fields[number], pos = _varint(p, pos)
            elif wire == 2 and number in (1, 3, 4, 15, 16):
                size, pos = _varint(p, pos)
                if pos + size > end:
                    return None
                fields[number] = p[pos : pos + size]
                pos += size
            else:
                return None
    except (IndexError, ValueError):
        return None
    return fields


def _pingtunnel(pkt: IcmpPacket, p: bytes) -> ToolMatch | None:
    if _PINGTUNNEL_MAGIC not in p:
        return None
    fields = _protobuf_fields(p)
    # sint32 zigzag encoding of 0xdead; every message pingtunnel sends has another field too
    if fields is None or fields.get(6) != 0xDEAD << 1 or len(fields) < 2:
        return None
    conn, target, data = (fields.get(k, b"") for k in (1, 3, 4))
    if not (isinstance(conn, bytes) and isinstance(target, bytes) and isinstance(data, bytes)):
        return None
    if not _only(conn, _PRINTABLE) or not _only(target, _PRINTABLE):
        return None
    kind = fields.get(2, 0)
    name = _PINGTUNNEL_TYPES.get(kind, str(kind)) if isinstance(kind, int) else "?"
    return ToolMatch(
        "pingtunnel",
        f"pingtunnel protobuf MyMsg magic 0xdead, type {name}, conn id '{_show(conn)}', "
        f"target '{_show(target)}', {len(data)} data bytes",
    )


# -- PyExfil ICMP ----------------------------------------------------------------------------
# ytisf/PyExfil pyexfil/network/ICMP/icmp_exfiltration.py send_file: a start packet
# "<name>::<crc32 of the base64>::<packet count>" + DATA_TERMINATOR 12 13 14 15 +
# INIT_PACKET 12 11 13 12 12 12, base64 chunks each + DATA_TERMINATOR, and a termination
# packet "<name>::<crc32>::<last id>" + DATA_TERMINATOR + END_PACKET 15 14 13 12.

_PYEXFIL_TERM = b"\x12\x13\x14\x15"
_PYEXFIL_INIT = b"\x12\x11\x13\x12\x12\x12"
_PYEXFIL_END = b"\x15\x14\x13\x12"
_PYEXFIL_CONTROL = re.compile(
    rb"([^\x00/]{1,255})::(-?\d{1,10})::(\d{1,10})\x12\x13\x14\x15(\x12\x11\x13\x12\x12\x12|\x15\x14\x13\x12)"
)


def _pyexfil(pkt: IcmpPacket, p: bytes) -> ToolMatch | None:
    if p[-1] == 0x15:
        if not p.endswith(_PYEXFIL_TERM):
            return None
        body = p[:-4]
        if len(body) % 4 or not _only(body, _B64_PADDED):
            return None
        return ToolMatch("pyexfil", f"PyExfil ICMP data chunk: {len(body)} base64 chars + terminator 12131415")
    if not (p.endswith(_PYEXFIL_INIT) or p.endswith(_PYEXFIL_END)):
        return None
    found = _PYEXFIL_CONTROL.fullmatch(p)
    if found is None:
        return None
    name, crc, count, marker = found.groups()
    if marker == _PYEXFIL_INIT:
        what = f"start packet for file '{_show(name)}', crc32 {crc.decode()}, {count.decode()} packets"
    else:
        what = f"termination packet for file '{_show(name)}', crc32 {crc.decode()}, last id {count.decode()}"
    return ToolMatch("pyexfil", f"PyExfil ICMP {what}")


# -- DET and Egress-Assess (base64 payloads) -----------------------------------------------
# sensepost/DET plugins/icmp.py send(): the echo data is base64 of a DET message; det.py
# ExfiltrateFile.run builds "<jobid>|!|<file>|!|REGISTER|!|<md5>", "<jobid>|!|<n>|!|<hex of
# AES-CBC(zlib(file)) slice>" and "<jobid>|!|<n>|!|DONE", jobid = 7 random letters/digits.
# Egress-Assess (RedSiege/Egress-Assess protocols/clients/icmp_client.py, and the
# PowerShell client Invoke-EgressAssess.ps1 Use-ICMP): the echo data is base64 of
# "<file name>.:::-989-:::." + a 1050-byte slice of the file (PowerShell: a zero-filled
# 1050-byte buffer).

_EGRESS_DELIMITER = b".:::-989-:::."
_DET_SEPARATOR = b"|!|"
_MAX_FILE_NAME = 255


def _b64_signatures(marker: bytes) -> tuple[bytes, ...]:
    """The base64 characters that depend only on `marker`, for each of its 3 alignments."""
    signatures = []
    for shift in range(3):
        encoded = binascii.b2a_base64(b"\0" * shift + marker + b"\0\0", newline=False)
        first = -(-8 * shift // 6)
        last = (8 * (shift + len(marker))) // 6
        signatures.append(encoded[first:last])
    return tuple(signatures)


_EGRESS_SIGNATURES = _b64_signatures(_EGRESS_DELIMITER)
_EGRESS_HEAD_CHARS = 4 * (-(-(_MAX_FILE_NAME + len(_EGRESS_DELIMITER)) // 3))


def _base64_family(pkt: IcmpPacket, p: bytes) -> ToolMatch | None:
    n = len(p)
    if n < 16 or n & 3 or not _only(p[:16], _B64):
        return None
    return _det(p) or _egress_assess(p)


def _strict_base64(data: bytes) -> bytes | None:
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except binascii.Error:
        return None


def _det(p: bytes) -> ToolMatch | None:
    # "|!|" at bytes 7..9 of the message always encodes as "wh" at chars 10..11 and "f" at 12.
    if p[10:13] != b"whf":
        return None
    head = binascii.a2b_base64(p[:16])
    if head[7:10] != _DET_SEPARATOR or not head[:7].isalnum():
        return None
    message = _strict_base64(p)
    if message is None:
        return None
    parts = message.split(_DET_SEPARATOR)
    job = head[:7].decode()
    if len(parts) == 4 and parts[2] == b"REGISTER":
        what = f"REGISTER file '{_show(parts[1])}' md5 {_show(parts[3])}"
    elif len(parts) == 3 and parts[2] == b"DONE":
        what = f"DONE after packet {_show(parts[1])}"
    elif len(parts) >= 3 and parts[1].isdigit():
        what = f"data packet {parts[1].decode()}, {len(message) - len(parts[0]) - len(parts[1]) - 6} hex chars"
    else:
        return None
    return ToolMatch("det", f"DET ICMP plugin: base64 of job {job} {what}")


def _egress_assess(p: bytes) -> ToolMatch | None:
    head = p[:_EGRESS_HEAD_CHARS]
    first, second, third = _EGRESS_SIGNATURES
    if first not in head and second not in head and third not in head:
        return None
    decoded = _strict_base64(head)
    if decoded is None:
        return None
    at = decoded.find(_EGRESS_DELIMITER)
    if at < 1:
        return None
    chunk = (len(p) // 4) * 3 - at - len(_EGRESS_DELIMITER) - p[-2:].count(b"=")
    return ToolMatch(
        "egress-assess",
        f"Egress-Assess ICMP: base64 of file name '{_show(decoded[:at])}' + '.:::-989-:::.' + {chunk}-byte chunk",
    )


# -- icmpsh ----------------------------------------------------------------------------------
# icmpsh-s.c (the Windows slave; copies e.g. goncalor/icmpsh): IcmpSendEcho requests every
# 200 ms carrying up to 64 bytes of cmd.exe output (empty when idle), "Test1234\n" in -r
# test mode, fixed error strings; icmpsh_m.py (the master) answers each request with an echo
# reply carrying the typed command line. The reply side needs ToolTracker.

_ICMPSH_FIXED = (b"Test1234\n", b"Process was not created\n")
_ICMPSH_ERROR = re.compile(rb"Error: (?:ReadFile|PeekNamedPipe) failed with -?\d{1,10}\n")
_ICMPSH_BANNER = re.compile(rb"Microsoft Windows(?: \w+)? \[Version \d+\.\d+[.\d]*\]\r\n")
# a cmd.exe prompt ending the payload: its last line (a prompt holds no newline), read alone
_PROMPT_LINE = re.compile(rb"[A-Za-z]:\\[^\r\n<>|\"*?]*>")


def _icmpsh(pkt: IcmpPacket, p: bytes) -> ToolMatch | None:
    if pkt.icmp_type not in _REQUEST_TYPES:
        return None
    if p in _ICMPSH_FIXED or _ICMPSH_BANNER.match(p) or _ICMPSH_ERROR.fullmatch(p):
        return ToolMatch("icmpsh", f"icmpsh slave output in an echo request: '{_show(p)}'")
    return None


def _icmpsh_prompt(pkt: IcmpPacket, p: bytes) -> ToolMatch | None:
    if pkt.icmp_type not in _REQUEST_TYPES or not _PROMPT_LINE.fullmatch(p, p.rfind(b"\n") + 1) \
            or not _only(p, _PRINTABLE):
        return None
    return ToolMatch("icmpsh", f"icmpsh slave sends a cmd.exe prompt in an echo request: '{_show(p[-40:])}'")


# -- icmpdoor --------------------------------------------------------------------------------
# krabelize/icmpdoor icmp-cnc.py / icmpdoor.py: scapy packets with ICMP id 13170 (seq 0); the
# C2 sends the command text in an echo request, the implant answers with one echo reply per
# output line (a scapy Raw load given a list makes one packet per element). beta/icmpdoor.py
# keeps id 13170 (configurable), numbers seq from 1 and Fernet-encrypts (base64url "gAAAAA...").

ICMPDOOR_ID = 13170


def _icmpdoor(pkt: IcmpPacket, p: bytes) -> ToolMatch | None:
    if not p:
        return None
    request = pkt.icmp_type in _REQUEST_TYPES
    if p.startswith(b"gAAAAA") and _only(p, _B64URL_PADDED):
        role = "command" if request else "output"
        return ToolMatch("icmpdoor", f"icmpdoor (beta) Fernet-encrypted {role}, ICMP id 13170, {len(p)} bytes")
    if not _only(p, _PRINTABLE) or _is_periodic(p):  # e.g. Windows ping's alphabet
        return None
    if request:
        return ToolMatch("icmpdoor", f"icmpdoor command in an echo request with ICMP id 13170: '{_show(p)}'")
    return ToolMatch("icmpdoor", f"icmpdoor output line in an echo reply with ICMP id 13170: '{_show(p)}'")


# -- Icmp-File-Transfer end marker ----------------------------------------------------------
# Vidimensional/Icmp-File-Transfer IcmpApp.py IcmpSender.send + IcmpPacket.py: 56-byte
# chunks ('56s' zero-pads), and at end of file an ECHO_REQUEST with code 2 and an empty
# (so 56 zero bytes) payload. The seed capture icmp-file-transfer-*-448-bytes.pcap has it.

_IFT_SIZE = 56
_IFT_END = bytes(_IFT_SIZE)


def _icmp_file_transfer_end(pkt: IcmpPacket, p: bytes) -> ToolMatch | None:
    if pkt.icmp_type in _REQUEST_TYPES and p == _IFT_END:
        return ToolMatch("icmp-file-transfer", "Icmp-File-Transfer end-of-file packet: echo request code 2, 56 zeros")
    return None


# -- dispatch --------------------------------------------------------------------------------

_Check = Callable[[IcmpPacket, bytes], ToolMatch | None]


def _dispatch_table(entries: list[tuple[bytes | range, _Check]]) -> tuple[tuple[_Check, ...], ...]:
    """For each possible first payload byte, the checks worth running."""
    table: list[tuple[_Check, ...]] = [() for _ in range(256)]
    for first_bytes, check in entries:
        for byte in first_bytes:
            table[byte] = (*table[byte], check)
    return tuple(table)


_FIRST_BYTE = _dispatch_table([
    (b"h", _hans),
    (range(0x45, 0x50), _raw_ipv4),
    (range(0x60, 0x70), _raw_ipv6),
    (b"\x0a\x10\x1a\x22\x28\x30", _pingtunnel),  # the key of whichever field comes first
    (_B64, _base64_family),
    (b"TPEM", _icmpsh),
])


def recognise(pkt: IcmpPacket) -> ToolMatch | None:
    """The tool that sent this echo message, when its payload carries a known fingerprint."""
    ident = pkt.ident
    if ident < 0:  # not an echo message: no tool here uses other types
        return None
    p = pkt.payload
    if ident == ICMPDOOR_ID:
        found = _icmpdoor(pkt, p)
        if found is not None:
            return found
    n = len(p)
    if n < 4:
        return None
    if pkt.icmp_code == 2 and n == _IFT_SIZE:
        found = _icmp_file_transfer_end(pkt, p)
        if found is not None:
            return found
    for check in _FIRST_BYTE[p[0]]:
        found = check(pkt, p)
        if found is not None:
            return found
    if n >= _PTUNNEL_HEADER and (p[12] == 0x40 or p[12] == 0x80):
        found = _ptunnel(pkt, p)
        if found is not None:
            return found
    last = p[-1]
    if last == 0x15 or last == 0x12:
        return _pyexfil(pkt, p)
    if last == 0x3E:  # '>' ends a cmd.exe prompt
        return _icmpsh_prompt(pkt, p)
    return None


# -- tools that show only over several packets ----------------------------------------------

_WINDOWS_ALPHABET = b"abcdefghijklmnopqrstuvw"
_TIMESTAMP_BYTES = 16  # iputils/BSD ping put a struct timeval first; tools' data differs beyond it
_HPING_RUN = 2  # steps of a flow before it is attributed (3 packets)
_IFT_RUN = 3  # 4 consecutive chunks
_IFT_MAX_GAP = 0.5  # IcmpSender.send loops without sleeping
_NPING_RUN = 2
_NPING_MAX_STEP = 2  # nping's probe seq is irregular: seen live 1, 3, 4, 4 and 1, 3, 3, 4


def _swap16(value: int) -> int:
    return (value & 0xFF) << 8 | value >> 8


def request_digests(p: bytes, rest: int | None = None) -> tuple[int, int]:
    """The digests the tracker keeps of a request's payload: of all of it, and of its data past a ping
    timestamp's _TIMESTAMP_BYTES (two payloads of one size have equal digests exactly when those bytes are equal,
    but for a hash collision). Past the sketch's PREFIX bytes, the hash of the rest that novelty.sketch makes
    (`rest`, when the caller has it) stands for those bytes: a jumbo payload is hashed once, not three times."""
    if len(p) <= PREFIX:
        digest = hash(p)
        return digest, hash(p[_TIMESTAMP_BYTES:]) if len(p) > _TIMESTAMP_BYTES else digest
    if rest is None:
        rest = hash(p[PREFIX:])
    return hash((hash(p[:PREFIX]), rest)), hash((hash(p[_TIMESTAMP_BYTES:PREFIX]), rest))


_BYTE_CYCLE = bytes(range(256)) * 2


def _is_counting_fill(p: bytes) -> bool:
    """Ends in bytes that count up by one: iputils/BSD ping's fill (byte i is i & 0xFF after their
    timestamp), traceroute -I's 0x40 + i, bytes(range(n))."""
    n = len(p)
    tail = min(n, 8)
    first = p[n - tail]
    return p[n - tail :] == _BYTE_CYCLE[first : first + tail]


_WINDOWS_RUN = _WINDOWS_ALPHABET * (65536 // len(_WINDOWS_ALPHABET) + 2)  # longer than any ICMP payload
_LONGEST_PERIOD = 16  # _is_periodic's longest unit


def _is_periodic(p: bytes, longest: int = _LONGEST_PERIOD) -> bool:
    """A short unit repeated at least twice (zeros, 'X' fill, ping -p, Cisco 0xABCD, Windows alphabet)."""
    n = len(p)
    if n <= len(_WINDOWS_RUN):
        if _WINDOWS_RUN.startswith(p):
            return True
    elif p == (_WINDOWS_ALPHABET * (n // len(_WINDOWS_ALPHABET) + 1))[:n]:
        return True
    if n < 2:
        return False
    first = p[0]
    # period k: p[k:] == p[:-k], i.e. p starts with p[k:]; p[k] == p[0] is necessary and cheap
    return any(p[period] == first and p.startswith(p[period:]) for period in range(1, min(longest, n // 2) + 1))


def without_oldest(table: dict[_K, _V]) -> dict[_K, _V]:
    """A full table without its oldest eighth (first inserted), dropped in place: the table, returned.

    Dropping one entry at a time from the front of a plain dict costs O(n) per drop once many
    have gone (iteration walks over the deleted slots), which a flood of new sources turns
    into quadratic time; an OrderedDict costs more memory per entry. Dropping an eighth at a
    time walks the deleted slots once a drop, and the dict's next resize compacts them with
    the hashes it keeps: O(1) per insertion, amortised. (A copy of the other seven eighths, as
    this was until the twenty-third session, rehashed each of their keys: seven a new entry, a
    sixth of a notice storm's time once its tables were full; docs/performance.md.)
    """
    drop_oldest(table)
    return table


def drop_oldest(table: dict[_K, _V]) -> list[_V]:
    """without_oldest's drop: the values of the oldest eighth it took out of the table (in C for a dict when the
    accelerator is built: _fasttools.drop_oldest, no Python line an entry; _drop_oldest_py is its reference)."""
    if _fasttools is not None and type(table) is dict:
        return _fasttools.drop_oldest(table)  # type: ignore[no-any-return]
    return _drop_oldest_py(table)


def _drop_oldest_py(table: dict[_K, _V]) -> list[_V]:
    return [table.pop(key) for key in list(itertools.islice(table, len(table) // 8 + 1))]


def _hping_match(last_seq: int, seq: int, p: bytes) -> ToolMatch:
    padded = ", zero-padded end-of-file chunk" if p.endswith(b"\0") else ""
    return ToolMatch(
        "hping3-file",
        f"hping3 --file: ICMP seq in host byte order (0x{last_seq:04x} -> 0x{seq:04x}), "
        f"{len(p)}-byte consecutive chunks of one file{padded}",
    )


def _ift_match(seq: int, run: int, p: bytes) -> ToolMatch:
    return ToolMatch(
        "icmp-file-transfer",
        f"Icmp-File-Transfer: back-to-back 56-byte raw chunks, seq {seq - run}..{seq}, '{_show(p, 24)}'",
    )


def _nping_match(first_seq: int, seq: int, p: bytes) -> ToolMatch:
    return ToolMatch(
        "nping-data",
        f"the same {len(p)}-byte custom payload '{_show(p, 24)}' on echo seq "
        f"{first_seq}..{seq}, as nping --data/--data-string/--data-length sends",
    )


@dataclass(slots=True)
class _RequestFlow:
    """What the tracker keeps of a flow's last echo request: digests, not the payload."""

    seq: int
    ts: float
    first_seq: int
    size: int
    digest: int  # of the payload (request_digests)
    data_digest: int  # of the payload past a ping timestamp's 16 bytes
    hping_run: int = 0
    ift_run: int = 0
    nping_run: int = 0
    nping_irregular: bool = False  # the run's seq moved by 0 or 2 at least once (nping's quirk)


class ToolTracker:
    """Per-flow memory for the tools that one packet cannot show.

    `observe` returns `recognise(pkt)` when that matches; otherwise it follows echo requests
    per (source, destination, ICMP id) and matches:

    * hping3-file: hping3 writes id and seq in host byte order (antirez/hping sendicmp.c
      send_icmp_echo), so on x86 the wire seq advances by 0x100, and `-E file -d N` sends
      consecutive N-byte chunks of the file (datafiller.c, zero-padded at end of file, then
      it starts over). Seen live with Debian hping3 3.a2 and in the seed capture.
    * icmp-file-transfer: consecutive 56-byte chunks, seq +1, sent back to back
      (Vidimensional/Icmp-File-Transfer IcmpApp.py), for transfers cut before the code-2 end.
    * nping-data: a flow whose first request has seq 1 and whose requests then repeat one
      custom payload (not periodic, not a counting fill) with seq moving on by 0..2, and not by
      one every time, as nping --data/--data-string/--data-length sends (seen live with nmap 7.93
      nping: random id, seq from 1 but irregular after it, one payload for every probe). A health
      check that repeats one custom payload with seq +1 is not nping (its payload counts once).
    * icmpsh: an echo reply carrying text when its request was empty: the master sends the
      typed command in the reply to the slave's idle poll (icmpsh_m.py).

    Memory is bounded: at most `max_flows` request flows and `max_pending` empty requests.
    """

    def __init__(self, max_flows: int = 65536, max_pending: int = 65536) -> None:
        self.max_flows = max_flows
        self.max_pending = max_pending
        self._flows: dict[tuple[bytes, bytes, int], _RequestFlow] = {}
        self._empty_requests: dict[tuple[bytes, bytes, int, int], None] = {}

    def observe(self, pkt: IcmpPacket, rest: int | None = None) -> ToolMatch | None:
        """A match, or None; `rest`: the hash of the payload past PREFIX bytes when the caller has it (its
        novelty.sketch's), else it is made here."""
        found = recognise(pkt)
        if found is not None or pkt.ident < 0:
            return found
        return self._follow(pkt, rest)

    def _follow(self, pkt: IcmpPacket, rest: int | None = None) -> ToolMatch | None:
        """The flow memory, for an echo message recognise() did not match."""
        if pkt.icmp_type not in _REQUEST_TYPES:
            return self._reply(pkt)
        if not pkt.payload:
            self._remember_empty((pkt.src, pkt.dst, pkt.ident, pkt.seq))
        return self._request(pkt, rest)

    def _request(self, pkt: IcmpPacket, rest: int | None = None) -> ToolMatch | None:
        """Follow an echo request's flow."""
        p = pkt.payload
        seq = pkt.seq
        found = None
        key = (pkt.src, pkt.dst, pkt.ident)
        size = len(p)
        digest, data_digest = request_digests(p, rest)
        flows = self._flows
        flow = flows.get(key)
        if flow is None:
            if len(flows) >= self.max_flows:
                self._flows = flows = without_oldest(flows)
            flows[key] = _RequestFlow(seq, pkt.ts, seq, size, digest, data_digest)
            return None
        if size and size == flow.size and (
            data_digest != flow.data_digest or (digest == flow.digest and flow.first_seq == 1)
        ):
            found = self._step(flow, pkt, p, digest, data_digest)
        else:
            # neither a new chunk nor a repeated nping payload: what _step would do, without the work
            flow.hping_run = flow.ift_run = flow.nping_run = 0
        flow.seq, flow.ts, flow.size, flow.digest, flow.data_digest = seq, pkt.ts, size, digest, data_digest
        return found

    def _step(self, flow: _RequestFlow, pkt: IcmpPacket, p: bytes, digest: int, data_digest: int) -> ToolMatch | None:
        seq_step = (pkt.seq - flow.seq) & 0xFFFF
        same_size = len(p) == flow.size
        # a new chunk of data, not just a new ping timestamp
        chunk = bool(p) and same_size and data_digest != flow.data_digest
        host_order_step = chunk and seq_step != 1 and (_swap16(pkt.seq) - _swap16(flow.seq)) & 0xFFFF == 1
        flow.hping_run = flow.hping_run + 1 if host_order_step else 0
        flow.ift_run = (
            flow.ift_run + 1
            if chunk and seq_step == 1 and len(p) == _IFT_SIZE and pkt.ts - flow.ts <= _IFT_MAX_GAP
            and not icmplib_layout(p, pkt.seq)  # icmplib's fresh 56 characters per request, as fast
            else 0
        )
        flow.nping_run = (
            flow.nping_run + 1
            if flow.first_seq == 1 and seq_step <= _NPING_MAX_STEP and p and same_size and digest == flow.digest
            and not _is_periodic(p) and not _is_counting_fill(p)
            else 0
        )
        if flow.hping_run >= _HPING_RUN:
            return _hping_match(flow.seq, pkt.seq, p)
        if flow.ift_run >= _IFT_RUN:
            return _ift_match(pkt.seq, flow.ift_run, p)
        flow.nping_irregular = bool(flow.nping_run) and (flow.nping_irregular or seq_step != 1)
        # nping's seq moves on (1, 3, 4, 4...): one packet replayed over and over (seq 1 each time) is not nping
        if flow.nping_run >= _NPING_RUN and flow.nping_irregular and pkt.seq != flow.first_seq:
            return _nping_match(flow.first_seq, pkt.seq, p)
        return None

    def _remember_empty(self, key: tuple[bytes, bytes, int, int]) -> None:
        pending = self._empty_requests
        if key in pending:
            return
        if len(pending) >= self.max_pending:
            self._empty_requests = pending = without_oldest(pending)
        pending[key] = None

    def _reply(self, pkt: IcmpPacket) -> ToolMatch | None:
        p = pkt.payload
        request = (pkt.dst, pkt.src, pkt.ident, pkt.seq)
        answers_empty = request in self._empty_requests
        if answers_empty:
            del self._empty_requests[request]
        if not answers_empty or not p or not _only(p, _PRINTABLE):
            return None
        return ToolMatch("icmpsh", f"icmpsh master command in the echo reply to an empty request: '{_show(p)}'")


# The C per-packet path (detect/_fasttools.c), with ToolTracker above as its reference: tests/unit/test_fasttools.py
# holds the two equal.
_MATCHES = {1: _hping_match, 2: _ift_match, 3: _nping_match}  # _fasttools.c MATCH_*
_ASK_RECOGNISE = 0  # the C path leaves the whole packet to the reference (_fasttools.c ASK_*; else only _follow)
if _fasttools is not None:
    _fasttools.bind(_EGRESS_SIGNATURES, _EGRESS_HEAD_CHARS)


class FastToolTracker(ToolTracker):
    """ToolTracker with its per-packet path in C: an echo request that no check of recognise() can match
    (_fasttools.maybe_tool) is handled in C (an empty one remembered for its reply in _empty_requests first), its
    flow a C struct (the flows bounded and evicted as the reference's), and a reply that answers no empty request
    it remembers is answered in C (_reply does nothing for it); every other packet (one recognise() may match, the
    reply to an empty request) the reference handles, and only then the C flow memory."""

    def __init__(self, max_flows: int = 65536, max_pending: int = 65536) -> None:
        super().__init__(max_flows, max_pending)
        assert _fasttools is not None
        self._c = _fasttools.Tracker(max_flows, without_oldest, icmplib_layout, _WINDOWS_ALPHABET, _LONGEST_PERIOD,
                                     _is_counting_fill, _TIMESTAMP_BYTES, PREFIX, _IFT_SIZE, _IFT_MAX_GAP, _HPING_RUN,
                                     _IFT_RUN, _NPING_RUN, _NPING_MAX_STEP, ICMPDOOR_ID, vars(self))

    def observe(self, pkt: IcmpPacket, rest: int | None = None) -> ToolMatch | None:
        answer = self._c.observe(pkt.payload, pkt.ident, pkt.icmp_type, pkt.icmp_code, pkt.src, pkt.dst, pkt.seq,
                                 pkt.ts, rest)
        return None if answer is None else self.finish(answer, pkt, rest)

    def finish(self, answer: object, pkt: IcmpPacket, rest: int | None = None) -> ToolMatch | None:
        """What observe makes of the C path's answer for `pkt` when it is not None (the detector's C path calls
        the C observe itself, and this with its answer): a match, or the reference's work."""
        if type(answer) is tuple:
            return _MATCHES[answer[0]](answer[1], answer[2], pkt.payload)
        return super().observe(pkt, rest) if answer == _ASK_RECOGNISE else self._follow(pkt, rest)

    def _request(self, pkt: IcmpPacket, rest: int | None = None) -> ToolMatch | None:
        step = self._c.step(pkt.src, pkt.dst, pkt.ident, pkt.seq, pkt.ts, pkt.payload, rest)
        return None if step is None else _MATCHES[step[0]](step[1], step[2], pkt.payload)


def tool_tracker() -> ToolTracker:
    """The tool tracker the detector runs: FastToolTracker when the C accelerator is built (and not turned off)."""
    return ToolTracker() if _fasttools is None else FastToolTracker()
