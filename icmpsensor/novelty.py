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


_EMPTY_REST_HASH = hash(b"")
# The last payload whose rest novel_bytes hashed, and that hash: the detector sketches the payload it
# has just compared, so the rest is hashed once, not twice. One tuple, replaced whole (thread-safe).
_last_rest: tuple[bytes | None, int] = (None, 0)


def sketch(payload: bytes) -> Sketch:
    n = len(payload)
    if n <= PREFIX:
        return payload[:PREFIX], _EMPTY_REST_HASH, n
    last = _last_rest
    if last[0] is payload:
        return payload[:PREFIX], last[1], n
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


def novel_bytes(payload: bytes, previous: Sketch | None) -> int:
    """Bytes of `payload` not explained by the earlier payload `previous` (all of them without one).

    The same count as ``differing_bytes(payload[:PREFIX], prefix)`` plus the rest when it
    differs, with the common cases short-cut: an unchanged prefix costs one comparison.
    """
    if previous is None:
        return len(payload)
    global _last_rest
    prefix, rest_hash, length = previous
    n = len(payload)
    if n > PREFIX:
        head = payload[:PREFIX]
        if n == length:
            payload_hash = hash(payload[PREFIX:])
            _last_rest = (payload, payload_hash)
            novel = 0 if payload_hash == rest_hash else n - PREFIX
        else:
            novel = n - PREFIX
    else:
        head = payload
        novel = 0
    if head == prefix:
        return novel
    common = len(head)
    other = len(prefix)
    if common > other:
        novel += common - other
        common = other
        head = head[:common]
    elif other > common:
        novel += other - common
        prefix = prefix[:common]
    if not common:
        return novel
    x = int.from_bytes(head, "big") ^ int.from_bytes(prefix, "big")
    return novel + common - x.to_bytes(common, "big").count(0)
