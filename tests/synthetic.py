"""Synthetic decoded packets for the detector tests, and running a detector over them."""

from __future__ import annotations

import ipaddress

from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.detect.flows import FlowDetector
from icmpsensor.notice.record import Notice


def packed(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def echo(ts: float, src: str, dst: str, request: bool, payload: bytes, ident: int = 7, seq: int = 0,
         code: int = 0) -> IcmpPacket:
    """An echo request (or reply) from src to dst; ICMPv6 when the addresses are IPv6."""
    ipv6 = ":" in src
    icmp_type = {(False, True): 8, (False, False): 0, (True, True): 128, (True, False): 129}[(ipv6, request)]
    return IcmpPacket(ts, packed(src), packed(dst), ipv6, icmp_type, code, ident, seq, payload, len(payload) + 42)


def run(det: FlowDetector, packets: list[IcmpPacket], flush: bool = True) -> list[Notice]:
    """Every notice the detector raises on the packets (and at the end of input with `flush`)."""
    out: list[Notice] = []
    for pkt in packets:
        out.extend(det.process(pkt))
    if flush:
        out.extend(det.flush())
    return out
