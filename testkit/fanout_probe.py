"""Measure which socket of a PACKET_FANOUT_HASH group each ICMP packet reaches.

Run inside the lab's sensor namespace: `python -m testkit.fanout_probe IFACE SOCKETS SECONDS`.
Opens SOCKETS handles on IFACE exactly as the workers do (LiveCapture: held, then
join_fanout, then the configured filter), reads them for SECONDS (a line "ready" on
stdout once all have joined), and prints one JSON object: for every unordered address
pair, the sockets that saw it, its echo ids, packet counts per direction, and whether it
had IP fragments and unfragmented packets. Frames are parsed here (untagged Ethernet,
IPv4 / IPv6 with at most a fragment header), so every fragment counts, not only the
datagrams a decoder would reassemble.
"""

from __future__ import annotations

import ipaddress
import json
import select
import sys
import time
from collections import defaultdict

from icmpsensor.config.schema import CaptureConfig
from icmpsensor.source.batch import frames_of
from icmpsensor.source.live import LiveCapture


def parse(frame: bytes) -> tuple[str, str, int, bool] | None:
    """(src, dst, echo id or -1, is a fragment) of an untagged Ethernet IPv4/IPv6 frame."""
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype == 0x0800:
        ip = frame[14:]
        src, dst = ipaddress.ip_address(ip[12:16]), ipaddress.ip_address(ip[16:20])
        flags_offset = int.from_bytes(ip[6:8], "big")
        fragment = bool(flags_offset & 0x3FFF)
        icmp = ip[(ip[0] & 15) * 4:]
        first = not flags_offset & 0x1FFF
        ident = int.from_bytes(icmp[4:6], "big") if ip[9] == 1 and first and icmp[:1] in (b"\0", b"\x08") else -1
        return str(src), str(dst), ident, fragment
    if ethertype == 0x86DD:
        ip = frame[14:]
        src, dst = ipaddress.ip_address(ip[8:24]), ipaddress.ip_address(ip[24:40])
        next_header, rest, fragment = ip[6], ip[40:], False
        if next_header == 44:
            fragment = True
            if int.from_bytes(rest[2:4], "big") & 0xFFF8:
                return str(src), str(dst), -1, True  # not the first fragment
            next_header, rest = rest[0], rest[8:]
        ident = int.from_bytes(rest[4:6], "big") if next_header == 58 and rest[:1] in (b"\x80", b"\x81") else -1
        return str(src), str(dst), ident, fragment
    return None


def main(argv: list[str]) -> int:
    interface, sockets, seconds = argv[0], int(argv[1]), float(argv[2])
    cfg = CaptureConfig(interface=interface)
    captures = []
    group = None
    for _ in range(sockets):
        capture = LiveCapture(interface, cfg)
        capture.open(held=True)
        group = capture.join_fanout(group)
        captures.append(capture)
    for capture in captures:
        capture.apply_filter()
    print("ready", flush=True)
    pairs: dict[str, dict[str, object]] = {}
    seen: dict[str, set[int]] = defaultdict(set)
    ids: dict[str, set[int]] = defaultdict(set)
    directions: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    kinds: dict[str, set[str]] = defaultdict(set)
    fds = {c._handle.getfd(): i for i, c in enumerate(captures)}
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select(list(fds), [], [], min(left, 0.1))
        for fd in readable:
            index = fds[fd]
            handle = captures[index]._handle
            while True:
                buf, meta = handle.next_batch(512)
                if not meta:
                    break
                for _, frame in frames_of(buf, meta):
                    parsed = parse(frame)
                    if parsed is None:
                        continue
                    src, dst, ident, fragment = parsed
                    key = " ".join(sorted((src, dst)))
                    seen[key].add(index)
                    if ident >= 0:
                        ids[key].add(ident)
                    directions[key][f"{src}>{dst}"] += 1
                    kinds[key].add("fragment" if fragment else "whole")
    for key in seen:
        pairs[key] = {"sockets": sorted(seen[key]), "ids": sorted(ids[key]), "directions": directions[key],
                      "kinds": sorted(kinds[key])}
    print(json.dumps({"group": group, "pairs": pairs}), flush=True)
    for capture in captures:
        capture.close_unstarted()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
