"""The internet checksum (RFC 1071): the one copy outside the decoders' measured fast paths.

The fast paths (decode/fast.py, decode/_fastdecode.c) inline the same arithmetic; dpkt's
`in_cksum` is the reference the decoder tests hold them to.
"""

from __future__ import annotations

import struct


def checksum_ok(data: bytes) -> bool:
    """Whether `data`, which contains its checksum field, verifies (an odd length is padded with a zero).

    A big-endian integer of 16-bit words is congruent modulo 0xFFFF to the sum of its words, and a
    valid ones'-complement sum is 0xFFFF (≡ 0).
    """
    if len(data) & 1:
        data += b"\0"
    return int.from_bytes(data, "big") % 0xFFFF == 0


def internet_checksum(data: bytes) -> int:
    """The checksum to store in a header whose checksum field in `data` is zero."""
    if len(data) & 1:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
