"""ICMP tunnelling and exfiltration sessions, byte for byte as each tool's source writes them.

Every builder takes the data to move (`content`), the host the data leaves from (`src`), its
peer (`dst`) and a start time, and returns the `IcmpPacket`s a sensor between them would see,
echo replies included (the peer's kernel answers echo requests unless the tool's source says
otherwise). The layouts were read from each tool's source (`PROVENANCE` names the file) and,
for ptunnel, ptunnel-ng, icmptx, hping3 and nping, also checked on the wire between two
network namespaces with the Debian packages (ptunnel 0.72, ptunnel-ng 1.42, icmptx 0.2,
hping3 3.a2, nmap 7.93); nothing captured there is stored, only what was learnt.

`EXFIL_CASES` maps a case (named after the tool) to a zero-argument builder,
`EXPECTED_SOURCE` to the (src, dst) a notice should name: where the data leaves, and its peer.
"""

from __future__ import annotations

import base64
import hashlib
import random
import struct
import zlib
from collections.abc import Callable

from icmpsensor.decode.packet import IcmpPacket
from testkit.craft import addr as packed
from testkit.craft import checksum

START = 1_700_000_000.0
VICTIM = "192.0.2.50"  # the host the data leaves from
SERVER = "203.0.113.9"  # the tool's server / C2 / receiver
RTT = 0.012

CONTENT = b"".join(
    f"{i:04d},employee-{i:04d},iban=GB{(i * 7919) % 10**8:08d},salary={30000 + i * 137}\n".encode() for i in range(40)
)

# -- packet helpers --------------------------------------------------------------------------


def echo(
    ts: float, src: str, dst: str, request: bool, ident: int, seq: int, payload: bytes, code: int = 0
) -> IcmpPacket:
    """An ICMPv4 echo request or reply as the decoder gives it (wire length: Ethernet + IPv4 + ICMP)."""
    return IcmpPacket(ts, packed(src), packed(dst), False, 8 if request else 0, code, ident & 0xFFFF, seq & 0xFFFF,
                      payload, 14 + 20 + 8 + len(payload))


def kernel_reply(request: IcmpPacket, delay: float = RTT) -> IcmpPacket:
    """The peer kernel's echo reply: same id, seq and data (Linux icmp_echo keeps the code)."""
    return IcmpPacket(request.ts + delay, request.dst, request.src, False, 0, request.icmp_code, request.ident,
                      request.seq, request.payload, request.wire_len)


def with_replies(requests: list[IcmpPacket], delay: float = RTT) -> list[IcmpPacket]:
    packets = [*requests, *(kernel_reply(r, delay) for r in requests)]
    return sorted(packets, key=lambda p: p.ts)


def ipv4_udp(src: str, dst: str, sport: int, dport: int, data: bytes, ip_id: int = 1) -> bytes:
    """An IPv4/UDP packet as a tun device hands it to a tunnel (IFF_NO_PI): checksums filled."""
    udp_len = 8 + len(data)
    pseudo = packed(src) + packed(dst) + struct.pack("!xBH", 17, udp_len)
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + data
    udp = udp[:6] + struct.pack("!H", checksum(pseudo + udp) or 0xFFFF) + udp[8:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, ip_id & 0xFFFF, 0x4000, 64, 17, 0,
                         packed(src), packed(dst))
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + udp


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def swap16(value: int) -> int:
    return (value & 0xFF) << 8 | (value >> 8) & 0xFF


# -- PyExfil (ytisf/PyExfil pyexfil/network/ICMP/icmp_exfiltration.py send_file) ------------

PYEXFIL_TERMINATOR = b"\x12\x13\x14\x15"
PYEXFIL_INIT = b"\x12\x11\x13\x12\x12\x12"
PYEXFIL_END = b"\x15\x14\x13\x12"


def pyexfil(content: bytes = CONTENT, src: str = VICTIM, dst: str = SERVER, start_ts: float = START, *,
            file_name: str = "payroll.csv", max_packet_size: int = 512, sleep: float = 0.1) -> list[IcmpPacket]:
    """ImpactPacket echo requests with id = the running packet number and seq 0; the loop
    indices (and the empty "last section" they produce) follow send_file exactly."""
    encoded = base64.b64encode(content)
    crc = zlib.crc32(encoded)  # unsigned, as the seed capture's Python 3 run shows
    whole, rest = divmod(len(encoded), max_packet_size)
    name = file_name.encode()
    payloads: list[tuple[int, bytes]] = []
    seq_id = 0
    payloads.append((seq_id, name + b"::%d::%d" % (crc, whole + 2) + PYEXFIL_TERMINATOR + PYEXFIL_INIT))
    seq_id += 1
    i = 0
    for i in range(1, whole + 2):
        payloads.append((seq_id, encoded[max_packet_size * (i - 1) : max_packet_size * i] + PYEXFIL_TERMINATOR))
        seq_id += 1
    seq_id += 1
    payloads.append((seq_id, encoded[max_packet_size * i : max_packet_size * i + rest] + PYEXFIL_TERMINATOR))
    end = name + b"::%d::%d" % (crc, seq_id) + PYEXFIL_TERMINATOR + PYEXFIL_END
    seq_id += 1
    payloads.append((seq_id, end))
    requests = [echo(start_ts + k * sleep, src, dst, True, ident, 0, data) for k, (ident, data) in enumerate(payloads)]
    return with_replies(requests, delay=0.01)


# -- DET (sensepost/DET det.py ExfiltrateFile.run + plugins/icmp.py) -------------------------


def det(content: bytes = CONTENT, src: str = VICTIM, dst: str = SERVER, start_ts: float = START, *,
        file_name: str = "payroll.csv", job_id: str = "Qz7LmA2", rng_seed: int = 7) -> list[IcmpPacket]:
    """REGISTER, data slices of randint(1, 500) bytes of iv + AES-CBC(zlib(file)) hex-encoded, DONE;
    each message base64 in one echo request (dpkt Echo: random id, seq 1), randint(1, 30) s apart.

    The ciphertext is random bytes of the right length (the key is the operator's): the
    framing, sizes and encodings are the tool's."""
    rng = random.Random(rng_seed)
    padded = len(zlib.compress(content)) // 16 * 16 + 16
    encrypted = rng.randbytes(16 + padded)
    messages = [f"{job_id}|!|{file_name}|!|REGISTER|!|{hashlib.md5(content).hexdigest()}".encode()]
    at = index = 0
    while at < len(encrypted):
        size = rng.randint(1, 500)
        messages.append(f"{job_id}|!|{index}|!|".encode() + encrypted[at : at + size].hex().encode())
        at += size
        index += 1
    messages.append(f"{job_id}|!|{index}|!|DONE".encode())
    requests = []
    ts = start_ts
    for message in messages:
        requests.append(echo(ts, src, dst, True, rng.randint(0, 0xFFFF), 1, base64.b64encode(message)))
        ts += rng.randint(1, 30)
    return with_replies(requests)


# -- Egress-Assess ---------------------------------------------------------------------------
# PowerShell client (Invoke-EgressAssess.ps1 Use-ICMP): a zero-filled 1050-byte buffer per
# read, base64(name + ".:::-989-:::." + buffer), System.Net.NetworkInformation.Ping.Send, so
# the Windows ICMP API's id 1 and running seq (the seed capture EgressAssess-*.pcap).
# Python client (RedSiege/Egress-Assess protocols/clients/icmp_client.py): scapy ICMP()
# (id 0, seq 0), the slice unpadded.

EGRESS_DELIMITER = b".:::-989-:::."
EGRESS_CHUNK = 1050


def egress_assess(content: bytes = CONTENT, src: str = VICTIM, dst: str = SERVER, start_ts: float = START, *,
                  file_name: str = "payroll.csv", client: str = "powershell", first_seq: int = 0x0399,
                  gap: float = 0.05) -> list[IcmpPacket]:
    name = file_name.encode()
    requests = []
    if client == "powershell":
        at, seq = 0, first_seq
        while True:
            buffer = content[at : at + EGRESS_CHUNK]
            data = base64.b64encode(name + EGRESS_DELIMITER + buffer.ljust(EGRESS_CHUNK, b"\0"))
            requests.append(echo(start_ts + len(requests) * gap, src, dst, True, 1, seq, data))
            seq += 1
            at += EGRESS_CHUNK
            if len(buffer) != EGRESS_CHUNK:
                break
    else:
        for at in range(0, len(content), EGRESS_CHUNK):
            data = base64.b64encode(name + EGRESS_DELIMITER + content[at : at + EGRESS_CHUNK])
            requests.append(echo(start_ts + len(requests) * gap, src, dst, True, 0, 0, data))
    return with_replies(requests)


# -- Icmp-File-Transfer (Vidimensional/Icmp-File-Transfer IcmpApp.py + IcmpPacket.py) -------

IFT_PAYLOAD = 56


def icmp_file_transfer(content: bytes = CONTENT, src: str = VICTIM, dst: str = SERVER, start_ts: float = START, *,
                       pid: int = 0x8C5D, gap: float = 60e-6) -> list[IcmpPacket]:
    """56-byte reads packed as '!bbHHh56s' (zero-padded), id = pid & 0xFFFF, seq from 0, back to
    back; at EOF an echo request with code 2 and an empty (56 zero bytes) payload. The receiver's
    kernel answers the chunks after the burst (as in the seed capture; the code-2 packet got
    no reply there). The signed 'h' seq makes a transfer stop at seq 32767."""
    requests = [echo(start_ts + k * gap, src, dst, True, pid, k, part.ljust(IFT_PAYLOAD, b"\0"))
                for k, part in enumerate(chunks(content, IFT_PAYLOAD))]
    end = echo(start_ts + len(requests) * gap, src, dst, True, pid, len(requests), bytes(IFT_PAYLOAD), code=2)
    after = end.ts + 0.008
    replies = [kernel_reply(r, after - r.ts + k * 1e-5) for k, r in enumerate(requests)]
    return sorted([*requests, end, *replies], key=lambda p: p.ts)


# -- hping3 --file (antirez/hping sendicmp.c send_icmp_echo + datafiller.c) ------------------


def _hping_read(content: bytes, at: int, size: int) -> tuple[bytes, int]:
    """One datafiller() call: the bytes it puts in the packet and the next file offset."""
    data = content[at : at + size]
    if len(data) == size:
        return data, at + size
    if not data:  # read() returned 0: rewind and read again
        data = content[:size]
        if len(data) == size:
            return data, size
    return data.ljust(size, b"\0"), 0  # zero-padding, then lseek(fd, 0, SEEK_SET)


def hping3_file(content: bytes = CONTENT, src: str = VICTIM, dst: str = SERVER, start_ts: float = START, *,
                data_size: int = 95, count: int = 8, interval: float = 1.0, pid: int = 0x976F) -> list[IcmpPacket]:
    """id = getpid() & 0xFFFF and seq = a counter, both stored in host byte order (so byte-swapped
    on x86); each packet reads data_size bytes of the file (seen live: after the zero-padded
    end-of-file chunk the next packet starts the file over)."""
    requests = []
    at = 0
    for n in range(count):
        data, at = _hping_read(content, at, data_size)
        requests.append(echo(start_ts + n * interval, src, dst, True, swap16(pid), swap16(n), data))
    return with_replies(requests)


# -- nping (nmap 7.93 nping --icmp --data-string / --data / --data-length, seen live) --------


def nping_data(content: bytes = b"exfil:db-password=hunter2", src: str = VICTIM, dst: str = SERVER,
               start_ts: float = START, *, seqs: tuple[int, ...] = (1, 3, 4, 4, 5), ident: int = 0x122E,
               delay: float = 0.2) -> list[IcmpPacket]:
    """A random id and the same payload in every probe. The seq starts at 1 but is irregular
    after it (seen live: 1, 3, 4, 4 and 1, 3, 3, 4 with -c 4; 1, 2 with -c 2)."""
    requests = [echo(start_ts + k * delay, src, dst, True, ident, seq, content) for k, seq in enumerate(seqs)]
    return with_replies(requests, delay=1e-4)


# -- ptunnel / ptunnel-ng (ptunnel.c queue_packet; utoni/ptunnel-ng src/pkt.h, src/pdesc.c) --

PTUNNEL_MAGIC = 0xD5200880
PTUNNEL_NG_MAGIC = 0xDEADC0DE
USER_FLAG, PROXY_FLAG = 1 << 30, 1 << 31
PROXY_START, PROTO_ACK, PROTO_DATA, PROTO_CLOSE = 0, 1, 2, 3


def ptunnel_packet(magic: int, dst_ip: str | None, dst_port: int, state: int, ack: int, seq_no: int, tunnel: int,
                   data: bytes = b"") -> bytes:
    header = struct.pack("!I4sIIIIHH", magic, packed(dst_ip) if dst_ip else bytes(4), dst_port, state, ack & 0xFFFF,
                         len(data), seq_no, tunnel)
    body = header + data
    return body + b"\0" * (len(body) % 2)  # queue_packet pads the ICMP message to an even length


def ptunnel_session(content: bytes = CONTENT, src: str = VICTIM, dst: str = SERVER, start_ts: float = START, *,
                    magic: int = PTUNNEL_MAGIC, tunnel: int = 0x1145, dst_ip: str = "127.0.0.1",
                    dst_port: int = 22) -> list[IcmpPacket]:
    """As seen live (client in one namespace, proxy in the other, a TCP sink behind it): the
    client's kProxyStart (dst ip/port, ack 0xffff), kProtoData with up to 1024 bytes each, the
    proxy's kProtoAck and data as echo replies, the client's kProtoClose; ICMP id = tunnel id,
    the proxy's own echo-reply seq counter; the proxy host's kernel also echoes each request."""
    client: list[IcmpPacket] = []
    ts = start_ts
    client.append(echo(ts, src, dst, True, tunnel, 0,
                       ptunnel_packet(magic, dst_ip, dst_port, PROXY_START | USER_FLAG, 0xFFFF, 0, tunnel)))
    parts = chunks(content, 1024)
    for k, part in enumerate(parts, start=1):
        ts += 1e-4
        client.append(echo(ts, src, dst, True, tunnel, k,
                           ptunnel_packet(magic, None, 0, PROTO_DATA | USER_FLAG, 0xFFFF, k, tunnel, part)))
    proxy = [
        echo(start_ts + 2e-4, dst, src, False, tunnel, 0,
             ptunnel_packet(magic, dst_ip, dst_port, PROTO_ACK | PROXY_FLAG, 0, 0, tunnel)),
        echo(ts + 3e-4, dst, src, False, tunnel, 1,
             ptunnel_packet(magic, None, 0, PROTO_DATA | PROXY_FLAG, len(parts), 1, tunnel, b"OK\n")),
    ]
    client.append(echo(ts + 1.5, src, dst, True, tunnel, len(parts) + 1,
                       ptunnel_packet(magic, None, 0, PROTO_CLOSE | USER_FLAG, 1, len(parts) + 1, tunnel)))
    return sorted([*with_replies(client, delay=2e-5), *proxy], key=lambda p: p.ts)


# -- icmptx (jakkarth/icmptx it.c, seen live) and icmptunnel (DhavalKapil/icmptunnel icmp.c) --

TUN_CLIENT, TUN_SERVER, TUN_REMOTE = "10.98.0.2", "10.98.0.1", "10.98.0.9"


def icmptx_session(content: bytes = CONTENT, src: str = VICTIM, dst: str = SERVER, start_ts: float = START, *,
                   ident: int = 0x711D) -> list[IcmpPacket]:
    """Client echo requests (a poll with no data, then the tun device's IPv4 packets), server
    echo replies with the answering packets; a fixed id, seq 0. The server host's kernel
    also answers each request (seen live)."""
    requests = [echo(start_ts, src, dst, True, ident, 0, b"")]
    replies = []
    for k, part in enumerate(chunks(content, 1200), start=1):
        ts = start_ts + 0.5 + k * 0.01
        inner = ipv4_udp(TUN_CLIENT, TUN_REMOTE, 40000, 53, part, ip_id=k)
        requests.append(echo(ts, src, dst, True, ident, 0, inner))
        answer = ipv4_udp(TUN_REMOTE, TUN_CLIENT, 53, 40000, b"ack %d" % k, ip_id=0x1000 + k)
        replies.append(echo(ts + 0.004, dst, src, False, ident, 0, answer))
    return sorted([*with_replies(requests, delay=2e-5), *replies], key=lambda p: p.ts)


def icmptunnel_session(content: bytes = CONTENT, src: str = VICTIM, dst: str = SERVER, start_ts: float = START, *,
                       rng_seed: int = 3) -> list[IcmpPacket]:
    """send_icmp_packet: the tun packet as payload, id and seq from rand() per packet; the server
    answers with echo replies (raw socket, IP_HDRINCL)."""
    rng = random.Random(rng_seed)
    packets = []
    for k, part in enumerate(chunks(content, 1000)):
        ts = start_ts + k * 0.02
        inner = ipv4_udp(TUN_CLIENT, TUN_REMOTE, 41000, 443, part, ip_id=k + 1)
        packets.append(echo(ts, src, dst, True, rng.getrandbits(16), rng.getrandbits(16), inner))
        answer = ipv4_udp(TUN_REMOTE, TUN_CLIENT, 443, 41000, b"ok", ip_id=0x2000 + k)
        packets.append(echo(ts + 0.005, dst, src, False, rng.getrandbits(16), rng.getrandbits(16), answer))
    return packets


# -- hans (friedrich/hans src/worker.h, src/client.cpp, src/server.cpp, src/server.h) -------

HANS_CONNECTION_REQUEST, HANS_CHALLENGE, HANS_CHALLENGE_RESPONSE = 2, 3, 4
HANS_CONNECTION_ACCEPT, HANS_DATA, HANS_POLL = 5, 7, 8


def hans_session(content: bytes = CONTENT, src: str = VICTIM, dst: str = SERVER, start_ts: float = START, *,
                 ident: int = 0x4D2B, seq: int = 0x9E11, max_polls: int = 10, rng_seed: int = 5) -> list[IcmpPacket]:
    """Client echo requests with magic "hanc" + type, server echo replies with "hans" + type on
    the id/seq of a request it holds (changeEchoId/Seq default off, so one id/seq for all):
    connection request (ClientConnectData: u8 maxPolls, 3 padding bytes, u32 desiredIp in host
    order, INADDR_NONE by default), 20-byte challenge and response, accept with the tunnel
    address, maxPolls polls, then DATA carrying the tun device's IP packets."""
    rng = random.Random(rng_seed)
    tunnel_ip = "10.1.2.100"
    t = start_ts

    def client(kind: int, body: bytes = b"") -> IcmpPacket:
        return echo(t, src, dst, True, ident, seq, b"hanc" + bytes([kind]) + body)

    def server(kind: int, body: bytes = b"") -> IcmpPacket:
        return echo(t + 0.02, dst, src, False, ident, seq, b"hans" + bytes([kind]) + body)

    packets = [client(HANS_CONNECTION_REQUEST, struct.pack("<B3xI", max_polls, 0xFFFFFFFF)),
               server(HANS_CHALLENGE, rng.randbytes(20))]
    t += 0.05
    packets += [client(HANS_CHALLENGE_RESPONSE, rng.randbytes(20)), server(HANS_CONNECTION_ACCEPT, packed(tunnel_ip))]
    t += 0.05
    packets += [client(HANS_POLL) for _ in range(max_polls)]
    for k, part in enumerate(chunks(content, 1400), start=1):
        t += 0.01
        packets.append(client(HANS_DATA, ipv4_udp(tunnel_ip, "10.1.2.1", 5353, 8080, part, ip_id=k)))
        packets.append(server(HANS_DATA, ipv4_udp("10.1.2.1", tunnel_ip, 8080, 5353, b"ok", ip_id=0x300 + k)))
    return sorted(packets, key=lambda p: p.ts)


# -- pingtunnel (esrrhs/pingtunnel msg.proto, pingtunnel.go sendICMP, client.go ping) --------

PINGTUNNEL_MAGIC = 0xDEAD
PINGTUNNEL_DATA, PINGTUNNEL_PING = 0, 1


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 31)


def pingtunnel_msg(*, conn_id: str = "", kind: int = 0, target: str = "", data: bytes = b"", rproto: int = 0,
                   key: int = 0, timeout: int = 0) -> bytes:
    """proto3 MyMsg as Go's proto.Marshal writes it: fields in number order, zero values omitted."""
    out = b""
    if conn_id:
        out += b"\x0a" + _varint(len(conn_id)) + conn_id.encode()
    if kind:
        out += b"\x10" + _varint(kind)
    if target:
        out += b"\x1a" + _varint(len(target)) + target.encode()
    if data:
        out += b"\x22" + _varint(len(data)) + data
    if rproto:
        out += b"\x28" + _varint(_zigzag(rproto))
    out += b"\x30" + _varint(_zigzag(PINGTUNNEL_MAGIC))
    if key:
        out += b"\x38" + _varint(_zigzag(key))
    if timeout:
        out += b"\x40" + _varint(timeout)
    return out


def go_time_binary(ts: float) -> bytes:
    """time.Time.MarshalBinary (version 1, UTC): seconds since year 1, nanoseconds, offset -1."""
    seconds = int(ts) + 62135596800
    return struct.pack("!BqiH", 1, seconds, int(ts % 1 * 1e9), 0xFFFF)


def pingtunnel_session(content: bytes = CONTENT, src: str = VICTIM, dst: str = SERVER, start_ts: float = START, *,
                       ident: int = 0x5A17, conn_id: str = "3f2c9a8e41d07b6c5e9f1a2b3c4d5e6f",
                       target: str = "198.51.100.20:4455") -> list[IcmpPacket]:
    """A ping (type PING, Go time as data) and its answer, then DATA requests (conn id, target,
    one UDP datagram each, timeout 60) answered by DATA echo replies (rproto -1) on the same
    id/seq; the client's echo id is fixed, its seq counts every message."""
    seq = 0
    ping = echo(start_ts, src, dst, True, ident, seq,
                pingtunnel_msg(kind=PINGTUNNEL_PING, data=go_time_binary(start_ts)))
    packets = [ping, echo(start_ts + RTT, dst, src, False, ident, seq,
                          pingtunnel_msg(kind=PINGTUNNEL_PING, data=go_time_binary(start_ts), rproto=-1))]
    for k, part in enumerate(chunks(content, 800), start=1):
        seq += 1
        ts = start_ts + 1 + k * 0.01
        packets.append(echo(ts, src, dst, True, ident, seq,
                            pingtunnel_msg(conn_id=conn_id, target=target, data=part, timeout=60)))
        packets.append(echo(ts + RTT, dst, src, False, ident, seq,
                            pingtunnel_msg(conn_id=conn_id, data=b"ack", rproto=-1)))
    return packets


# -- icmpsh (icmpsh-s.c, the Windows slave; icmpsh_m.py, the master) -------------------------

ICMPSH_BANNER = (b"Microsoft Windows [Version 10.0.19045.3570]\r\n"
                 b"(c) Microsoft Corporation. All rights reserved.\r\n\r\nC:\\Users\\alice>")
ICMPSH_MAX_DATA = 64


def icmpsh_session(content: bytes = CONTENT[:300], src: str = VICTIM, dst: str = SERVER, start_ts: float = START, *,
                   command: bytes = b"type payroll.csv\n", first_seq: int = 0x1A2B,
                   delay: float = 0.2) -> list[IcmpPacket]:
    """The slave polls every 200 ms with IcmpSendEcho (Windows: id 1, a running seq), each
    request carrying up to 64 bytes read from cmd.exe (empty when there is none); the master
    answers every request with an echo reply on its id/seq whose data is the line typed (or
    nothing). Here: banner and prompt, the command, its output (content), the prompt."""
    outputs = [*chunks(ICMPSH_BANNER, ICMPSH_MAX_DATA), b"", b"",
               *chunks(content.replace(b"\n", b"\r\n") + b"\r\nC:\\Users\\alice>", ICMPSH_MAX_DATA), b""]
    packets = []
    for k, data in enumerate(outputs):
        ts = start_ts + k * delay
        request = echo(ts, src, dst, True, 1, first_seq + k, data)
        typed = command if k == len(chunks(ICMPSH_BANNER, ICMPSH_MAX_DATA)) else b""
        packets += [request, echo(ts + RTT, dst, src, False, 1, first_seq + k, typed)]
    return packets


# -- icmpdoor (krabelize/icmpdoor icmp-cnc.py, icmpdoor.py) -----------------------------------

ICMPDOOR_ID = 13170


def icmpdoor_session(content: bytes = CONTENT[:400], src: str = VICTIM, dst: str = SERVER, start_ts: float = START,
                     *, command: bytes = b"cat /srv/payroll.csv") -> list[IcmpPacket]:
    """The C2 (dst) sends the command in an echo request (scapy: id 13170, seq 0); the implant's
    kernel answers it; the implant sends one echo reply per output line (id 13170, seq 0)."""
    request = echo(start_ts, dst, src, True, ICMPDOOR_ID, 0, command)
    lines = content.splitlines(keepends=True)
    output = [echo(start_ts + 0.05 + k * 0.002, src, dst, False, ICMPDOOR_ID, 0, line) for k, line in enumerate(lines)]
    return [request, kernel_reply(request, 1e-4), *output]


# -- registry --------------------------------------------------------------------------------

EXFIL_CASES: dict[str, Callable[[], list[IcmpPacket]]] = {
    "pyexfil": pyexfil,
    "det": det,
    "egress-assess": egress_assess,
    "icmp-file-transfer": icmp_file_transfer,
    "hping3-file": hping3_file,
    "nping-data": nping_data,
    "ptunnel": ptunnel_session,
    "ptunnel-ng": lambda: ptunnel_session(magic=PTUNNEL_NG_MAGIC, tunnel=0x106D),
    "icmptx": icmptx_session,
    "icmptunnel": icmptunnel_session,
    "hans": hans_session,
    "pingtunnel": pingtunnel_session,
    "icmpsh": icmpsh_session,
    "icmpdoor": icmpdoor_session,
}

PROVENANCE: dict[str, str] = {
    "pyexfil": "ytisf/PyExfil pyexfil/network/ICMP/icmp_exfiltration.py",
    "det": "sensepost/DET det.py + plugins/icmp.py",
    "egress-assess": "RedSiege/Egress-Assess Invoke-EgressAssess.ps1 (Use-ICMP), protocols/clients/icmp_client.py",
    "icmp-file-transfer": "Vidimensional/Icmp-File-Transfer IcmpApp.py + IcmpPacket.py",
    "hping3-file": "antirez/hping sendicmp.c + datafiller.c (seen live: Debian hping3 3.a2)",
    "nping-data": "nmap nping (seen live: Debian nmap 7.93 nping --icmp --data-string/--data/--data-length)",
    "ptunnel": "ptunnel 0.72 ptunnel.h + ptunnel.c queue_packet (seen live: Debian ptunnel 0.72)",
    "ptunnel-ng": "utoni/ptunnel-ng src/pkt.h, src/options.c, src/pkt.c (seen live: Debian ptunnel-ng 1.42)",
    "icmptx": "jakkarth/icmptx it.c (seen live: Debian icmptx 0.2)",
    "icmptunnel": "DhavalKapil/icmptunnel icmp.c + tunnel.c",
    "hans": "friedrich/hans src/worker.h, src/client.cpp, src/server.cpp, src/server.h, src/config.h",
    "pingtunnel": "esrrhs/pingtunnel msg.proto, pingtunnel.go (sendICMP), client.go (ping)",
    "icmpsh": "icmpsh icmpsh-s.c + icmpsh_m.py (e.g. goncalor/icmpsh)",
    "icmpdoor": "krabelize/icmpdoor icmp-cnc.py + icmpdoor.py",
}

EXPECTED_SOURCE: dict[str, tuple[str, str]] = {case: (VICTIM, SERVER) for case in EXFIL_CASES}
