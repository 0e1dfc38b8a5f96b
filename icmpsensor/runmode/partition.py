"""Which worker a frame belongs to, and whether it moves the detector's clock, from its fixed headers.

`pair_key(linktype)` returns a function of a frame's bytes giving its *key*:

* bits 0-15, the pair bucket (`key & BUCKET_MASK`): the same for both directions of an IPv4
  or IPv6 address pair, and dependent on nothing else (not on the link type, VLAN tags,
  extension headers or fragment offsets): the two addresses (IPv6: each folded to 32 bits),
  the lower first, through two rounds of a multiplicative (Fibonacci) hash. Not their XOR:
  that gives every pair (a + k, b + k) one bucket (a lab's numbered hosts and peers all in one
  worker), and follows the address plan (it split the synthetic benchmark capture 42/58
  between two workers; hashed, 49.5/50.5). A worker of `replay_files_parallel` keeps the
  frames whose `bucket % workers` is its index, so a host pair's both directions, all its
  echo ids and all fragments of its datagrams (each repeats the addresses at the same place)
  reach one worker, and per-pair state (flows, pending requests, reassembly, slow-exfiltration
  memory) stays whole, whichever file or link type the frames come from;
* bit 16, NOT_ICMP: set when the frame will not give the decoder an ICMP message, as far as
  the fixed headers show: not IP, IPv4 not carrying ICMP or a fragment other than the last,
  IPv6 whose first next header is neither ICMPv6 nor an extension header, or a fragment
  other than the last; a tunnel the decoder opens (decode/encap.py is_tunnel) counts as
  carrying ICMP unless it is a fragment (MPLS and PPPoE are walked to the IP header, as
  VLAN tags are). Only ICMP messages move a single process's detector clock, so a
  worker, which does not decode the other workers' frames, moves its clock on the others.

The addresses sit at fixed offsets of the IPv4 (12..20) and IPv6 (8..40) header, so only the
link layer is walked, by the decoder's own walk (decode/link.py). A frame whose addresses cannot
be found (too short, not IP) gets bucket 0 (key NOT_ICMP): every worker computes the same key for
it, so exactly one worker decodes (and counts) it.

It runs on every frame in every worker. The untagged Ethernet/IPv4 frame, the common one,
takes one struct call and a dictionary look-up: buckets are remembered by the address bytes
(the pairs of a capture repeat), about 0.17 us a frame here against 0.3 us computing the hash
each time. MEMO_LIMIT bounds the memory (a flood of new sources only refills it); what is
remembered never changes a key, only how fast it comes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from icmpsensor.decode import link
from icmpsensor.decode.encap import TUNNEL_PROTOS, is_tunnel
from icmpsensor.decode.fast import EXTENSION
from icmpsensor.decode.linktypes import (
    AUTH,
    DEST_OPTS,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    ETHERTYPE_MPLS,
    ETHERTYPE_PPPOE_SESSION,
    FRAGMENT,
    HOP_BY_HOP,
    LINKTYPE_ETHERNET,
    MAX_MPLS_LABELS,
    PPP_IPV4,
    PPP_IPV6,
    PROTO_ICMP,
    PROTO_ICMPV6,
    ROUTING,
    SUPPORTED_LINKTYPES,
    VLAN_TPIDS,
    linktype_name,
)
from icmpsensor.runmode.pipeline import Pipeline
from icmpsensor.source.batch import BATCH_META, Batch

KeyFunction = Callable[[bytes], int]
BatchKeyFunction = Callable[[bytes, int, int], int]  # (batch buffer, frame offset, captured length) -> key

BUCKET_MASK = 0xFFFF
NOT_ICMP = 1 << 16  # the frame gives the decoder no ICMP message (see the module docstring)
UNPLACED = NOT_ICMP  # the key of a frame without an IP address pair: bucket 0
MEMO_LIMIT = 1 << 16  # address pairs whose bucket is remembered, per IP version
_GOLDEN = 2654435761  # 2**32 / golden ratio: Knuth's multiplicative hash

_MORE_FRAGMENTS = 0x2000  # IPv4 flags/offset field
_V6_TOWARDS_ICMP = frozenset((HOP_BY_HOP, ROUTING, AUTH, DEST_OPTS, PROTO_ICMPV6))

# Ethertype, then an IPv4 header's flags/offset, protocol, source and destination: the common frame in one call.
_ETHER_IP4 = struct.Struct("!H6xHxB2x8s").unpack_from
_IP4 = struct.Struct("!6xHxB2x8s").unpack_from  # an IPv4 header: flags/offset, protocol, source + destination

# Buckets of the address pairs seen (source and destination bytes as in the header), bounded by MEMO_LIMIT.
_V4_BUCKETS: dict[bytes, int] = {}
_V6_BUCKETS: dict[bytes, int] = {}


# -- Ethernet captures: a worker's share picked in C -------------------------------------------------
#
# For Ethernet captures a worker can pick its frames from each libpcap batch in C (`select_share`:
# decode/_fastdecode.c share_select, with `share_worker` below as the Python reference), without
# touching the others' frames in Python. The share follows Decoder's path through any number of VLAN
# tags (the decoder's TPIDs: a pair's frames tagged otherwise stay one worker's), an MPLS label stack or a
# PPPoE session header to an IPv4 or IPv6 header (the outermost: a tunnel's frames, both ways, are its
# endpoints' pair, so an inner host pair stays whole too) and hashes the address pair symmetrically
# (the 32-bit sum of the two addresses, IPv6 ones folded to 32 bits by XOR, times the golden ratio,
# bits 16-31: a sum, not a XOR, which gives every pair (a + k, b + k) one bucket; a different hash from
# pair_key's, which a run never mixes). A frame without an address pair within its captured bytes (too
# short or cut short, not IP) is worker 0's: every frame is exactly one worker's. It is the
# hash of the BPF share filters replay used before (the tests keep that BPF form as an independent
# oracle), judged on the captured length where BPF could only see the wire length, so that a frame cut
# short is counted once instead of by no worker. `share_selectable` says whether a capture's snap
# length keeps every address pair behind two tags (else the Python partition above serves).

SHARE_SNAPLEN = 14 + 4 * 2 + 40  # IPv6 addresses behind two tags
_VLAN = frozenset(VLAN_TPIDS)
_MPLS = frozenset(ETHERTYPE_MPLS)
_ETHERTYPE_BY_VERSION = {4: ETHERTYPE_IPV4, 6: ETHERTYPE_IPV6}  # behind MPLS: the IP header's version nibble
_ETHERTYPE_BY_PPP = {PPP_IPV4: ETHERTYPE_IPV4, PPP_IPV6: ETHERTYPE_IPV6}


def share_worker(frame: bytes, workers: int) -> int:
    """The worker (of `workers`) whose share an Ethernet frame is."""
    caplen = len(frame)
    at = 12  # the ethertype
    while caplen >= at + 2:
        ethertype = frame[at] << 8 | frame[at + 1]
        if ethertype in _VLAN and caplen >= at + 6:
            at += 4
            continue
        pair = _share_pair(frame, ethertype, at + 2)
        return 0 if pair is None else (((pair & 0xFFFFFFFF) * _GOLDEN & 0xFFFFFFFF) >> 16) % workers
    return 0


def _share_pair(frame: bytes, ethertype: int, at: int) -> int | None:
    """The address pair's sum (share_worker) of the network layer of `ethertype` at `at`: IPv4, IPv6, or IP behind
    an MPLS label stack (to its bottom, at most MAX_MPLS_LABELS labels; by the version nibble) or a PPPoE session
    header (by PPP's protocol). The outermost addresses: an IP tunnel's both directions are its endpoints'.
    None: no address pair within the captured bytes."""
    caplen = len(frame)
    if ethertype in _MPLS:
        for _ in range(MAX_MPLS_LABELS):
            if caplen < at + 4:
                return None
            at += 4
            if frame[at - 2] & 1:
                break
        else:
            return None
        ethertype = _ETHERTYPE_BY_VERSION.get(frame[at] >> 4, 0) if caplen > at else 0
    elif ethertype == ETHERTYPE_PPPOE_SESSION:
        protocol = frame[at + 6] << 8 | frame[at + 7] if caplen >= at + 8 else 0
        ethertype = _ETHERTYPE_BY_PPP.get(protocol, 0)
        at += 8
    if ethertype == ETHERTYPE_IPV4 and caplen >= at + 20:
        return int.from_bytes(frame[at + 12 : at + 16], "big") + int.from_bytes(frame[at + 16 : at + 20], "big")
    if ethertype == ETHERTYPE_IPV6 and caplen >= at + 40:
        return _fold_words(frame[at + 8 : at + 24]) + _fold_words(frame[at + 24 : at + 40])
    return None


def _fold_words(address: bytes) -> int:
    words = struct.unpack("!4I", address)
    return words[0] ^ words[1] ^ words[2] ^ words[3]


def select_share(buf: bytes, meta: bytes, index: int, workers: int) -> bytes:
    """The records of `meta` (a libpcap batch of Ethernet frames in `buf`) that are worker `index`'s."""
    if EXTENSION is not None:
        return EXTENSION.share_select(buf, meta, index, workers)  # type: ignore[no-any-return]
    size = BATCH_META.size
    return b"".join(meta[at : at + size] for at, (_, _, off, cap) in zip(range(0, len(meta), size),
                                                                       BATCH_META.iter_unpack(meta), strict=True)
                    if share_worker(buf[off : off + cap], workers) == index)


def share_selectable(linktype: int, snaplen: int | None) -> bool:
    """Whether captures of `linktype` with snap length `snaplen` (None: unknown) can use select_share."""
    return linktype == LINKTYPE_ETHERNET and snaplen is not None and snaplen >= SHARE_SNAPLEN


def pair_key(linktype: int) -> KeyFunction:
    """The key (bucket and NOT_ICMP) of a frame of `linktype`; ValueError for a link type Decoder refuses."""
    if linktype not in SUPPORTED_LINKTYPES:
        raise ValueError(f"unsupported link type {linktype} ({linktype_name(linktype)})")
    if linktype == LINKTYPE_ETHERNET:
        return ethernet
    walk = link.network_layer(linktype)
    return lambda f: _layer_key(f, *walk(f))


def pair_key_in_batch(linktype: int) -> BatchKeyFunction:
    """`pair_key` for a frame inside a libpcap batch, given as (buffer, offset, captured length): the
    common Ethernet frame is read in place, any other is sliced out for `pair_key`'s function."""
    key = pair_key(linktype)
    if linktype == LINKTYPE_ETHERNET:
        return ethernet_in_batch
    return lambda buf, off, cap: key(buf[off : off + cap])


def ethernet_in_batch(buf: bytes, off: int, cap: int) -> int:
    """`ethernet` on buf[off:off + cap], the untagged IPv4 frame (the common one) read in place with one
    struct call; any other is copied out for the general path."""
    if cap < 34:  # shorter than an Ethernet header and an IPv4 header
        return ethernet_general(buf[off : off + cap])
    ethertype, flags_offset, proto, pair = _ETHER_IP4(buf, off + 12)
    if ethertype != ETHERTYPE_IPV4 or proto in TUNNEL_PROTOS:
        return ethernet_general(buf[off : off + cap])
    bucket = _V4_BUCKETS.get(pair)  # as ip4_key, with _v4_bucket's look-up inlined
    if bucket is None:
        bucket = _v4_bucket(pair)
    return bucket if proto == PROTO_ICMP and not flags_offset & _MORE_FRAGMENTS else bucket | NOT_ICMP


def bucket_of_pair(src: bytes, dst: bytes) -> int:
    """The bucket of the packed address pair (src, dst), as a frame carrying it gets."""
    return _spread(_fold(int.from_bytes(src, "big")), _fold(int.from_bytes(dst, "big")))


def _fold(address: int) -> int:
    """An address as 32 bits: IPv4 itself, IPv6 its four 32-bit words XORed."""
    address ^= address >> 64
    return (address ^ address >> 32) & 0xFFFFFFFF


def _spread(a: int, b: int) -> int:
    """Two 32-bit addresses -> a 16-bit bucket, the same either way round."""
    if a > b:
        a, b = b, a
    return (((a * _GOLDEN & 0xFFFFFFFF) ^ b) * _GOLDEN & 0xFFFFFFFF) >> 16


def _v4_bucket(pair: bytes) -> int:
    """Bucket of an IPv4 header's 8 address bytes (remembered)."""
    bucket = _V4_BUCKETS.get(pair)
    if bucket is None:
        if len(_V4_BUCKETS) >= MEMO_LIMIT:
            _V4_BUCKETS.clear()
        bucket = _V4_BUCKETS[pair] = _spread(int.from_bytes(pair[:4], "big"), int.from_bytes(pair[4:], "big"))
    return bucket


def _v6_bucket(pair: bytes) -> int:
    """Bucket of an IPv6 header's 32 address bytes (remembered)."""
    bucket = _V6_BUCKETS.get(pair)
    if bucket is None:
        if len(_V6_BUCKETS) >= MEMO_LIMIT:
            _V6_BUCKETS.clear()
        bucket = _V6_BUCKETS[pair] = _spread(_fold(int.from_bytes(pair[:16], "big")),
                                             _fold(int.from_bytes(pair[16:], "big")))
    return bucket


# -- the network layer --------------------------------------------------------------------------


def ip4_key(f: bytes, off: int) -> int:
    """Key of an IPv4 header at `off`; UNPLACED if the header is cut short."""
    if len(f) < off + 20:
        return UNPLACED
    flags_offset, proto, pair = _IP4(f, off)
    bucket = _v4_bucket(pair)
    if proto in TUNNEL_PROTOS:
        whole = not flags_offset & (_MORE_FRAGMENTS | 0x1FFF)
        return bucket if whole and is_tunnel(proto, f, off + (f[off] & 15) * 4, len(f)) else bucket | NOT_ICMP
    return bucket if proto == PROTO_ICMP and not flags_offset & _MORE_FRAGMENTS else bucket | NOT_ICMP


def ip6_key(f: bytes, off: int) -> int:
    """Key of an IPv6 header at `off`; UNPLACED if the header is cut short."""
    if len(f) < off + 40:
        return UNPLACED
    bucket = _v6_bucket(f[off + 8 : off + 40])
    next_header = f[off + 6]
    if next_header in _V6_TOWARDS_ICMP or is_tunnel(next_header, f, off + 40, len(f)):
        return bucket
    if next_header == FRAGMENT and len(f) >= off + 44 and not f[off + 43] & 1:  # the last fragment
        return bucket
    return bucket | NOT_ICMP


def _layer_key(f: bytes, layer: int, pos: int) -> int:
    """Key of the network layer decode/link.py found at `pos`."""
    if layer == link.IPV4:
        return ip4_key(f, pos)
    if layer == link.IPV6:
        return ip6_key(f, pos)
    if layer == link.IP_BY_VERSION and len(f) > pos:
        version = f[pos] >> 4
        if version == 4:
            return ip4_key(f, pos)
        if version == 6:
            return ip6_key(f, pos)
    return UNPLACED


# -- the link layer -----------------------------------------------------------------------------


def ethernet(f: bytes) -> int:
    return ethernet_in_batch(f, 0, len(f))


def ethernet_general(f: bytes) -> int:
    """Ethernet without the fast path (the tests require both to agree)."""
    return _layer_key(f, *link.ethernet(f))


# -- a worker's share, picked in Python ---------------------------------------------------------


class ShareFeeder:
    """Worker `index` of `workers` without a share filter: it reads every frame, feeds its own to its
    Pipeline (they stay in the batch buffer: only their records are passed on), and moves its detector's
    clock on the others' ICMP frames where one process's clock would have moved (`sweep_due`)."""

    def __init__(self, index: int, workers: int) -> None:
        self._keys: dict[int, BatchKeyFunction] = {}  # by link type
        # owned[key] is 1 when a frame with that key is this worker's: one look-up per frame
        self.owned = bytes((key & BUCKET_MASK) % workers == index for key in range(2 * NOT_ICMP))
        self.latest = 0.0  # the latest ICMP frame's time, this worker's or another's

    def feed(self, pipeline: Pipeline, batch: Batch) -> None:
        buf, meta, decoder = batch.buf, batch.meta, batch.decoder
        key = self._keys.get(decoder.linktype)
        if key is None:
            key = self._keys[decoder.linktype] = pair_key_in_batch(decoder.linktype)
        owned, sweep_due = self.owned, pipeline.detector.sweep_due
        latest = self.latest
        records: list[bytes] = []  # this worker's frames' 16-byte records in meta
        size = BATCH_META.size
        at = 0
        for sec, usec, off, cap in BATCH_META.iter_unpack(meta):
            frame_key = key(buf, off, cap)
            if frame_key < NOT_ICMP:
                ts = sec + usec * 1e-6
                if ts > latest:
                    latest = ts
                if sweep_due(ts):  # its own earlier frames first, then the sweep one process makes here
                    if records:
                        pipeline.feed_batch(decoder, buf, b"".join(records))
                        records = []
                    pipeline.advance(ts)
            if owned[frame_key]:
                records.append(meta[at : at + size])
            at += size
        if records:
            pipeline.feed_batch(decoder, buf, b"".join(records))
        self.latest = latest
