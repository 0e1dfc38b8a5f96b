"""Decoded packets and notices built by hand, for the detector and output tests, and running a detector."""

from __future__ import annotations

from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.detect.flows import FlowDetector
from icmpsensor.notice.record import Notice
from testkit.craft import addr as packed


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


def sample_notice(**kw: object) -> Notice:
    """A DataExfil notice with plausible fields; `kw` overrides any of them."""
    fields: dict[str, object] = dict(ts=1665586502.175499, note="ICMP::ICMP_DataExfil", msg="m", sub="s",
                                     src="192.168.86.36", dst="54.144.215.114", uid="CabcdefghijklmnopQ", n=2064,
                                     bytes_sent=2998380, bytes_received=2998380, start=1.0, end=2.0)
    fields.update(kw)
    return Notice(**fields)  # type: ignore[arg-type]
