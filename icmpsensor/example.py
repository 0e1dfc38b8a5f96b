"""The built-in example: writes a small capture with one exfiltration among benign pings.

`python -m icmpsensor.example OUT.pcap` writes it; the README's first command replays it.
Addresses are from the documentation ranges (RFC 5737), timestamps are fixed, so the
file is the same on every run.

What is in it:
* 192.0.2.10 sends a 2 kB text to 198.51.100.7 in 64-byte echo requests (the way
  Icmp-File-Transfer does), and 198.51.100.7 echoes each chunk back;
* 192.0.2.20 receives commands in echo replies from 198.51.100.9 that differ from
  the requests they answer (a reverse channel);
* 192.0.2.30 pings 192.0.2.1 with the default Linux ping, 192.0.2.40 with the
  default Windows ping: both are benign and must stay quiet.
"""

from __future__ import annotations

import socket
import struct
import sys

import dpkt

START = 1_700_000_000.0
SECRET = (
    b"Quarterly results (confidential): revenue 12.4M, margin 31%, acquisition target "
    b"codename BLUEHERON, board vote on the 14th. Customer list follows. "
) * 12


def echo_ip(src: str, dst: str, icmp_type: int, ident: int, seq: int, payload: bytes) -> bytes:
    echo = dpkt.icmp.ICMP.Echo(id=ident, seq=seq, data=payload)
    icmp = dpkt.icmp.ICMP(type=icmp_type, code=0, data=echo)
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=dpkt.ip.IP_PROTO_ICMP, ttl=64,
                    data=icmp)
    ip.len = len(ip)  # dpkt fills checksums and lengths when packing
    return bytes(ip)


def ether(ip_packet: bytes) -> bytes:
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02\x00\x00\x00\x00\x01", dst=b"\x02\x00\x00\x00\x00\x02",
                                        type=dpkt.ethernet.ETH_TYPE_IP, data=ip_packet))


def linux_ping_payload(ts: float) -> bytes:
    sec = int(ts)
    return struct.pack("<QQ", sec, int((ts - sec) * 1e6)) + bytes(range(0x10, 0x38))


def example_frames() -> list[tuple[float, bytes]]:
    frames: list[tuple[float, bytes]] = []

    def add(ts: float, src: str, dst: str, icmp_type: int, ident: int, seq: int, payload: bytes) -> None:
        frames.append((ts, ether(echo_ip(src, dst, icmp_type, ident, seq, payload))))

    for seq, offset in enumerate(range(0, len(SECRET), 64)):
        chunk = SECRET[offset : offset + 64]
        ts = START + 0.05 * seq
        add(ts, "192.0.2.10", "198.51.100.7", 8, 0x4242, seq, chunk)
        add(ts + 0.01, "198.51.100.7", "192.0.2.10", 0, 0x4242, seq, chunk)
    for seq in range(10):
        ts = START + 2.0 * seq
        add(ts, "192.0.2.20", "198.51.100.9", 8, 0x77, seq, b"poll")
        add(ts + 0.02, "198.51.100.9", "192.0.2.20", 0, 0x77, seq, f"cmd:{seq}:cat /etc/shadow".encode())
    for seq in range(20):
        ts = START + 1.0 * seq
        add(ts, "192.0.2.30", "192.0.2.1", 8, 0x1111, seq + 1, linux_ping_payload(ts))
        add(ts + 0.001, "192.0.2.1", "192.0.2.30", 0, 0x1111, seq + 1, linux_ping_payload(ts))
        add(ts, "192.0.2.40", "192.0.2.1", 8, 1, seq + 1, b"abcdefghijklmnopqrstuvwabcdefghi")
        add(ts + 0.001, "192.0.2.1", "192.0.2.40", 0, 1, seq + 1, b"abcdefghijklmnopqrstuvwabcdefghi")
    frames.sort(key=lambda frame: frame[0])
    return frames


def write_example(path: str) -> int:
    with open(path, "wb") as out:
        writer = dpkt.pcap.Writer(out, linktype=dpkt.pcap.DLT_EN10MB)
        frames = example_frames()
        for ts, frame in frames:
            writer.writepkt(frame, ts=ts)
    return len(frames)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m icmpsensor.example OUT.pcap", file=sys.stderr)
        return 2
    try:
        count = write_example(argv[0])
    except OSError as exc:
        print(f"icmpsensor.example: cannot write {argv[0]}: {exc.strerror}", file=sys.stderr)
        return 73
    print(f"wrote {count} packets to {argv[0]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
