"""The connection id of an ICMP flow as Zeek writes it, and its Community ID (v1).

Zeek's conn id for ICMP puts the message type in `orig_p` and, in `resp_p`, the type of the
counterpart message (echo request <-> echo reply, ...) or, for a message that has none (an error,
a redirect), its code. The Community ID spec (corelight/community-id-spec) hashes the same pair,
ordering the two ends as it does for ports unless the message is one-way.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import socket
import struct

PROTO_ICMP = 1
PROTO_ICMPV6 = 58

# type -> counterpart type (Zeek's ICMP4_counterpart / ICMP6_counterpart; the spec's tables)
_COUNTERPART_V4 = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
_COUNTERPART_V6 = {128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131, 131: 130,
                   139: 140, 140: 139, 144: 145, 145: 144}


def conn_ports(icmp_type: int, icmp_code: int, ipv6: bool) -> tuple[int, int, bool]:
    """(orig_p, resp_p, one_way) of an ICMP / ICMPv6 message, as Zeek's conn id has them."""
    counterpart = (_COUNTERPART_V6 if ipv6 else _COUNTERPART_V4).get(icmp_type)
    if counterpart is None:
        return icmp_type, icmp_code, True
    return icmp_type, counterpart, False


def community_id(src: str, dst: str, ipv6: bool, icmp_type: int, icmp_code: int, seed: int = 0) -> str:
    """Community ID v1 ("1:" + base64 SHA-1) of an ICMP (or, `ipv6`, ICMPv6) flow between two addresses
    given as text."""
    return _community_id(src, dst, ipv6, icmp_type, icmp_code, seed)


@functools.lru_cache(maxsize=4096)
def _community_id(src: str, dst: str, ipv6: bool, icmp_type: int, icmp_code: int, seed: int) -> str:
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    saddr, daddr = socket.inet_pton(family, src), socket.inet_pton(family, dst)
    sport, dport, one_way = conn_ports(icmp_type, icmp_code, ipv6)
    if not one_way and (saddr, sport) > (daddr, dport):
        saddr, daddr, sport, dport = daddr, saddr, dport, sport
    proto = PROTO_ICMPV6 if ipv6 else PROTO_ICMP
    digest = hashlib.sha1(struct.pack("!H", seed) + saddr + daddr + struct.pack("!BBHH", proto, 0, sport, dport))
    return "1:" + base64.b64encode(digest.digest()).decode("ascii")
