"""The decoder's counters.

Every frame handed to ``decode`` ends in exactly one place, so the counters obey

    frames + fragments["reassembled"] + fragments["partial"]
        == icmp + sum(skipped) + sum(errors) + fragments["fragments"]

(a fragment frame goes into the reassembler; a completed datagram then counts
like a frame, and so does each partial datagram the reassembler hands on from a
datagram it abandons: see decode/fragments.py). `DecodeStats.unaccounted` returns
the difference, always 0.

Skip reasons: ``not_ip``, ``not_icmp``, and for encapsulations (decode/encap.py, decode/link.py)
``mpls_labels`` (no bottom of the MPLS label stack within linktypes.MAX_MPLS_LABELS labels),
``encap_depth`` (more than linktypes.MAX_ENCAPSULATIONS tunnels in one frame), ``encap_fragment``
(a VXLAN or Geneve packet that is an outer IP fragment: IP-in-IP's and GRE's are reassembled; a tunnel behind
option headers in a reassembled IPv6 datagram; an IP-in-IP or GRE datagram abandoned unfinished),
``gre_routing`` (GRE with the routing flag), ``gre_version`` (GRE other than version 0). Error
reasons: ``truncated_link``,
``truncated_ip`` (captured bytes end inside the IP header or before the IP
total / payload length: snap length or corrupt length), ``bad_ip_header``,
``bad_ip_checksum``, ``bad_ipv6_ext_header``, ``bad_fragment`` (empty, or a
non-final fragment whose length is not a multiple of 8), ``truncated_icmp``, ``truncated_encap``
(captured bytes or the outer packet end inside a tunnel's header or its inner Ethernet header),
``bad_encap_header`` (a tunnel header that contradicts itself: a UDP length past the packet, VXLAN
without its I flag, Geneve or ERSPAN of another version),
and ``internal_error`` (a decoder bug caught so that the sensor keeps running;
the tests require it never to happen).

A message with a bad ICMP/ICMPv6 checksum is no error: it is counted (``bad_checksum``, with
``decode.verify_checksums``) and analysed like any other. Routers forward it unchecked, and the
receiver reads it with a packet capture or, for ICMP, a raw socket (Linux hands raw sockets a copy
before icmp_rcv checks the sum): data sent that way must not go unseen. A bad IPv4 header checksum
is an error: routers drop such packets.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class DecodeStats:
    """Counters of one decoder (or several sharing it); see the module docstring for the reasons."""

    frames: int = 0  # frames handed to decode()
    skipped: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    # ICMP/ICMPv6 messages produced (after reassembly) by type: [type] for ICMP, [256 + type] for ICMPv6
    # (a list: counting in it is a fraction of the cost of a Counter keyed by tuples).
    type_counts: list[int] = field(default_factory=lambda: [0] * 512)
    fragments: Counter[str] = field(default_factory=Counter)  # see decode/fragments.py
    bad_checksum: int = 0  # messages among `icmp` whose ICMP/ICMPv6 checksum is wrong (analysed all the same)
    # frames in which a tunnel (IP-in-IP, GRE, VXLAN, Geneve: decode/encap.py) was opened, whatever came of them
    decapsulated: int = 0

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
        fragments = self.fragments
        return self.frames + fragments["reassembled"] + fragments["partial"] - ended - fragments["fragments"]

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> DecodeStats:
        """The counters of an as_dict() record (for instance several workers' summed)."""
        type_counts = [0] * 512
        for key, count in record.get("icmp_types", {}).items():
            version, icmp_type = key[1:].split(":")
            type_counts[int(icmp_type) + (256 if version == "6" else 0)] += count
        return cls(record.get("frames", 0), Counter(record.get("skipped", {})), Counter(record.get("errors", {})),
                   type_counts, Counter(record.get("fragments", {})), record.get("bad_checksum", 0),
                   record.get("decapsulated", 0))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready copy; ICMP type keys are rendered like "v4:8"."""
        return {
            "frames": self.frames,
            "icmp": self.icmp,
            "skipped": dict(sorted(self.skipped.items())),
            "errors": dict(sorted(self.errors.items())),
            "icmp_types": {f"v{v}:{t}": n for (v, t), n in sorted(self.icmp_types.items())},
            "fragments": dict(sorted(self.fragments.items())),
            "bad_checksum": self.bad_checksum,
            "decapsulated": self.decapsulated,
        }
