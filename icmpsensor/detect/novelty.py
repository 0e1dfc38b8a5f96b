"""Novel bytes: how much of a payload is not explained by the payload it is compared with.

A payload is compared with the previous payload of its host pair, or with the request
an echo reply answers. Only a compact *sketch* of the earlier payload is kept (its
first PREFIX bytes exactly, a hash of the rest, and its length), so per-flow memory stays
small whatever the payload size: differences in the first PREFIX bytes are counted byte
for byte (that is where counters and timestamps live), and a rest that differs at all
counts whole.
"""

from __future__ import annotations

PREFIX = 64

# (first PREFIX bytes, hash of the rest, total length)
Sketch = tuple[bytes, int, int]


EMPTY_REST_HASH = hash(b"")


def sketch(payload: bytes) -> Sketch:
    n = len(payload)
    if n <= PREFIX:
        return payload, EMPTY_REST_HASH, n
    return payload[:PREFIX], hash(payload[PREFIX:]), n


def differing_bytes(a: bytes, b: bytes) -> int:
    """Positions at which two byte strings differ, plus their difference in length."""
    common = min(len(a), len(b))
    extra = max(len(a), len(b)) - common
    if common == 0:
        return extra
    if len(a) != common:
        a = a[:common]
    if len(b) != common:
        b = b[:common]
    x = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    if not x:
        return extra
    return common - x.to_bytes(common, "big").count(0) + extra


def novel_between(current: Sketch, previous: Sketch | None) -> int:
    """Bytes of the payload sketched as `current` not explained by the earlier payload `previous`
    (all of them without one): ``differing_bytes`` of the prefixes, plus the rest when it differs."""
    if previous is None:
        return current[2]
    head, rest_hash, n = current
    prefix, previous_hash, length = previous
    novel = n - PREFIX if n > PREFIX and (n != length or rest_hash != previous_hash) else 0
    if head == prefix:
        return novel
    return novel + differing_bytes(head, prefix)


_ZERO_15 = bytes(15)


def lends_payloads(src: bytes, dst: bytes) -> bool:
    """Whether what `src` sends to `dst` may explain its payloads to other peers (the sender's memory of its last
    payloads: one it sends to every peer counts once). Not to an address no collector has (IPv4 0/8, 127/8,
    multicast and above, the broadcast among them; IPv6 multicast, :: and ::1) nor to itself: a payload sent there
    first is a decoy's copy, and would make the same payload to the collector after it count nothing."""
    if dst == src:
        return False
    if len(dst) == 4:
        return dst[0] != 0 and dst[0] != 127 and dst[0] < 224
    if len(dst) == 16:
        return dst[0] != 0xFF and not (dst[15] <= 1 and dst[:15] == _ZERO_15)
    return True

