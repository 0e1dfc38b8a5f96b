"""`icmpsensor -r ... --workers N`: the pair partition, the notice merge, and the replay against one process.

Every comparison runs the same input through `--workers 1` (the single-process replay) and
`--workers 2`/`3`: the same notices (everything but the uid and the uid-named evidence path),
the same decode and detector counters in the summary line, notice.log in ts order, and the
same errors and exit codes.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pcapy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from icmpsensor import cli
from icmpsensor.config.schema import Config
from icmpsensor.decode.fast import Decoder
from icmpsensor.decode.linktypes import MAX_MPLS_LABELS, SUPPORTED_LINKTYPES
from icmpsensor.decode.stats import DecodeStats
from icmpsensor.notice.record import Notice
from icmpsensor.output.sink import ListSink
from icmpsensor.runmode import partition, replay, worker
from icmpsensor.runmode.merge import NoticeMerge
from icmpsensor.runmode.messages import Notices
from icmpsensor.runmode.pipeline import Pipeline
from icmpsensor.runmode.replay import build_sinks
from icmpsensor.runmode.supervisor import WorkerFailure
from icmpsensor.source.batch import BATCH_META
from icmpsensor.source.pcapfile import FileSource
from testkit import craft, synthmix
from testkit.cli import EXFIL_NOTES, CliResult, exfil_packets, notes, run_cli, run_cli_here, write_capture
from testkit.paths import REPO
from tests.hypothesis_counts import examples

PROPERTY = settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100, 0x9200)


# -- the partition ----------------------------------------------------------------------------------


def chain(ip: bytes, tpids: list[int]) -> bytes:
    """Ethertype field onwards: a tag (TPID, TCI) per entry of `tpids`, then the IP ethertype and `ip`."""
    ethertype = craft.ETHERTYPE_IPV6 if ip[0] >> 4 == 6 else craft.ETHERTYPE_IPV4
    tags = b"".join(struct.pack(">HH", tpid, 100 + i) for i, tpid in enumerate(tpids))
    return tags + struct.pack(">H", ethertype) + ip


def framed(kind: str, ip: bytes, tpids: list[int]) -> tuple[int, bytes]:
    """(link type, frame) of `ip` in link layer `kind`; the cooked and Ethernet ones with VLAN tags."""
    if kind == "ethernet":
        return craft.LINKTYPE_ETHERNET, b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01" + chain(ip, tpids)
    if kind == "sll":
        return craft.LINKTYPE_LINUX_SLL, struct.pack(">HHH8s", 0, 1, 6, bytes(8)) + chain(ip, tpids)
    if kind == "sll2":
        c = chain(ip, tpids)
        return craft.LINKTYPE_LINUX_SLL2, c[:2] + struct.pack(">HIHBB8s", 0, 2, 1, 0, 6, bytes(8)) + c[2:]
    if kind == "null":
        return craft.LINKTYPE_NULL, craft.null(ip, big_endian=False)
    if kind == "null-be":
        return craft.LINKTYPE_NULL, craft.null(ip, big_endian=True)
    if kind == "loop":
        return craft.LINKTYPE_LOOP, craft.loop(ip)
    if kind == "raw":
        return craft.LINKTYPE_RAW, ip
    if kind == "dlt-raw":
        return craft.DLT_RAW, ip
    return (craft.LINKTYPE_IPV6 if ip[0] >> 4 == 6 else craft.LINKTYPE_IPV4), ip


KINDS = ("ethernet", "sll", "sll2", "null", "null-be", "loop", "raw", "dlt-raw", "ip")
ext_headers = st.lists(st.sampled_from([craft.hop_by_hop(), craft.dest_opts(b"\x01\x02\0\0"),
                                        craft.routing(0, 0, ["2001:db8::99"])]), max_size=2, unique=True)


@dataclass
class Conversation:
    kind: str
    tpids: list[int]
    src: bytes
    dst: bytes
    forward: list[bytes]  # IP packets (fragments) src -> dst, in order
    backward: list[bytes]  # dst -> src
    fragment_header_first: bool  # no extension header before an IPv6 fragment header


@st.composite
def conversations(draw: st.DrawFn) -> Conversation:
    """A request and its reply, maybe fragmented, maybe behind IPv6 extension headers, in one link layer with
    0..3 VLAN tags."""
    kind = draw(st.sampled_from(KINDS))
    tpids = draw(st.lists(st.sampled_from(VLAN_TPIDS), max_size=3)) if kind in ("ethernet", "sll", "sll2") else []
    v6 = draw(st.booleans())
    a, b = (draw(st.ip_addresses(v=6 if v6 else 4)) for _ in range(2))
    payload = draw(st.binary(max_size=200))
    fragment = draw(st.sampled_from([0, 0, 16, 64]))
    headers = draw(ext_headers) if v6 else []
    headers.sort(key=lambda h: h[0] != craft.HOP_BY_HOP)

    def packets(src: str, dst: str, icmp_type: int) -> list[bytes]:
        if v6:
            ip = craft.icmp6(src, dst, icmp_type + 120, 0, 7, 1, payload, ext_headers=headers)
            return craft.fragment6(ip, fragment, 99) if fragment else [ip]
        ip = craft.icmp4(src, dst, icmp_type, 0, 7, 1, payload)
        return craft.fragment4(ip, fragment) if fragment else [ip]

    unfragmentable = any(h[0] in (craft.HOP_BY_HOP, craft.ROUTING) for h in headers)  # stays before it
    return Conversation(kind, tpids, a.packed, b.packed, packets(str(a), str(b), 8), packets(str(b), str(a), 0),
                        not (fragment and unfragmentable))


@PROPERTY
@given(case=conversations())
def test_both_directions_and_every_fragment_share_the_bucket_of_the_address_pair(case: Conversation) -> None:
    expected = partition.bucket_of_pair(case.src, case.dst)
    assert expected == partition.bucket_of_pair(case.dst, case.src)
    for ip in case.forward + case.backward:
        linktype, frame = framed(case.kind, ip, case.tpids)
        assert partition.pair_key(linktype)(frame) & partition.BUCKET_MASK == expected


@PROPERTY
@given(case=conversations())
def test_the_key_says_which_frames_decode_to_an_icmp_message(case: Conversation) -> None:
    linktype = framed(case.kind, case.forward[0], case.tpids)[0]
    stats = DecodeStats()
    decoder, key = Decoder(linktype, stats), partition.pair_key(linktype)
    for ip in case.forward:
        frame = framed(case.kind, ip, case.tpids)[1]
        packet = decoder.decode(1.0, frame)
        if packet is not None:  # the decoder's addresses are the ones the bucket was taken of
            assert (packet.src, packet.dst) == (case.src, case.dst)
        if case.fragment_header_first:
            assert (key(frame) < partition.NOT_ICMP) == (packet is not None), stats.as_dict()
    assert stats.icmp == 1, stats.as_dict()


@PROPERTY
@given(linktype=st.sampled_from(sorted(SUPPORTED_LINKTYPES)), frame=st.binary(max_size=90))
def test_any_bytes_get_one_key(linktype: int, frame: bytes) -> None:
    key = partition.pair_key(linktype)(frame)
    assert 0 <= key < 2 * partition.NOT_ICMP and partition.pair_key(linktype)(frame) == key


@PROPERTY
@given(frame=st.one_of(st.binary(max_size=80),
                       st.builds(lambda p, cut: craft.ether(p)[:cut],
                                 st.sampled_from([craft.icmp4("10.0.0.1", "10.9.8.7", 8, 0, 1, 1, b"abc"),
                                                  craft.udp4("10.0.0.1", "10.9.8.7"),
                                                  *craft.fragment4(craft.icmp4("10.0.0.1", "10.9.8.7", 8, 0, 1, 1,
                                                                               bytes(40)), 16),
                                                  craft.icmp6("2001:db8::1", "2001:db8::2", 128)]),
                                 st.integers(0, 90))))
def test_the_ethernet_fast_path_agrees_with_the_general_one(frame: bytes) -> None:
    assert partition.ethernet(frame) == partition.ethernet_general(frame)
    padded = b"\x45" * 7 + frame + b"\x08\x00\x45" * 10  # inside a batch: bytes around it are not read
    assert partition.ethernet_in_batch(padded, 7, len(frame)) == partition.ethernet_general(frame)


@PROPERTY
@given(linktype=st.sampled_from(sorted(SUPPORTED_LINKTYPES)), frame=st.binary(max_size=90),
       before=st.binary(max_size=8), after=st.binary(max_size=40))
def test_the_key_of_a_frame_in_a_batch_is_its_key(linktype: int, frame: bytes, before: bytes, after: bytes) -> None:
    key_in_batch = partition.pair_key_in_batch(linktype)
    assert key_in_batch(before + frame + after, len(before), len(frame)) == partition.pair_key(linktype)(frame)


# -- the partition picked in C (Ethernet captures) --------------------------------------------------------
#
# The BPF share filters replay used before: an independent formulation of the same hash (libpcap evaluates
# it), kept here as the oracle partition.share_worker and the C share_select must agree with.

_GOLDEN = 2654435761
# BPF has no loop: the oracle follows this many tags (the share, as the decoder, any number): more than fit before
# an address pair in the frames tested (90 bytes: 14)
ORACLE_TAGS = 16
_TPID_TEST = " or ".join(f"link[{{at}}:2] = 0x{tpid:04x}" for tpid in (0x8100, 0x88A8, 0x9100, 0x9200))


def bpf_share_filter(index: int, workers: int) -> str:
    """The BPF expression (Ethernet) accepting exactly the frames of worker `index` of `workers`."""
    if index == 0:
        return f"len < 14 or {_bpf_level(0, index, workers)}"
    return f"len >= 14 and {_bpf_level(0, index, workers)}"


def _bpf_pairs(ethertype: int) -> list[tuple[str, str]]:
    """(condition, address pair sum) of each way to an IP header's addresses from the ethertype at `ethertype`:
    IPv4, IPv6, behind an MPLS label stack of 1 to MAX_MPLS_LABELS labels (by the version nibble), behind a PPPoE
    session header (by PPP's protocol)."""
    def at(ip: int) -> tuple[tuple[str, str], tuple[str, str]]:
        v6_src = " ^ ".join(f"link[{ip + offset}:4]" for offset in range(8, 24, 4))
        v6_dst = " ^ ".join(f"link[{ip + offset}:4]" for offset in range(24, 40, 4))
        return ((f"len >= {ip + 20}", f"link[{ip + 12}:4] + link[{ip + 16}:4]"),
                (f"len >= {ip + 40}", f"({v6_src}) + ({v6_dst})"))

    found = []
    (v4_len, v4_pair), (v6_len, v6_pair) = at(ethertype + 2)
    found += [(f"link[{ethertype}:2] = 0x0800 and {v4_len}", v4_pair),
              (f"link[{ethertype}:2] = 0x86dd and {v6_len}", v6_pair)]
    for labels in range(1, MAX_MPLS_LABELS + 1):
        ip = ethertype + 2 + 4 * labels
        stack = " and ".join(f"link[{ethertype + 4 + 4 * i}] & 1 = {int(i == labels - 1)}" for i in range(labels))
        mpls = f"(link[{ethertype}:2] = 0x8847 or link[{ethertype}:2] = 0x8848) and len >= {ip} and {stack}"
        (v4_len, v4_pair), (v6_len, v6_pair) = at(ip)
        found += [(f"{mpls} and len > {ip} and link[{ip}] & 0xf0 = 0x40 and {v4_len}", v4_pair),
                  (f"{mpls} and len > {ip} and link[{ip}] & 0xf0 = 0x60 and {v6_len}", v6_pair)]
    ip = ethertype + 10
    (v4_len, v4_pair), (v6_len, v6_pair) = at(ip)
    pppoe = f"link[{ethertype}:2] = 0x8864 and len >= {ip}"
    found += [(f"{pppoe} and link[{ip - 2}:2] = 0x0021 and {v4_len}", v4_pair),
              (f"{pppoe} and link[{ip - 2}:2] = 0x0057 and {v6_len}", v6_pair)]
    return found


def _bpf_level(depth: int, index: int, workers: int) -> str:
    ethertype = 12 + 4 * depth
    tag = f"({_TPID_TEST.format(at=ethertype)}) and len >= {ethertype + 6}" if depth < ORACLE_TAGS else ""
    bucket = "(((({pair}) * " + str(_GOLDEN) + ") >> 16) % " + f"{workers} = {index})"
    pairs = _bpf_pairs(ethertype)
    branches = [f"({condition} and {bucket.format(pair=pair)})" for condition, pair in pairs]
    if tag:
        branches.append(f"({tag} and {_bpf_level(depth + 1, index, workers)})")
    if index == 0:  # no address pair at this depth and no tag to follow: worker 0's
        branches.append("(" + " and ".join([f"not ({condition})" for condition, _ in pairs] +
                                           ([f"not ({tag})"] if tag else [])) + ")")
    return "(" + " or ".join(branches) + ")"


SHARE_PROGRAMS = {n: [pcapy.compile(craft.LINKTYPE_ETHERNET, 65535, bpf_share_filter(i, n), 1, 0) for i in range(n)]
                  for n in (2, 3)}


def share_of(frame: bytes, workers: int) -> int:
    """The worker a frame is for: partition.share_worker, checked against the BPF oracle and the C path."""
    worker = partition.share_worker(frame, workers)
    passing = [i for i, program in enumerate(SHARE_PROGRAMS[workers]) if program.filter(frame)]
    assert passing == [worker], (passing, worker, frame.hex())
    meta = BATCH_META.pack(1, 0, 0, len(frame))
    assert [i for i in range(workers) if partition.select_share(frame, meta, i, workers)] == [worker]
    return worker


@PROPERTY
@given(case=conversations(), workers=st.sampled_from([2, 3]), cut=st.integers(0, 80))
def test_shares_give_each_frame_to_one_worker_and_a_pair_to_one_worker(
        case: Conversation, workers: int, cut: int) -> None:
    case.kind = "ethernet"
    frames = [framed("ethernet", ip, case.tpids)[1] for ip in case.forward + case.backward]
    # the decoder walks any number of tags: so does the share, and a pair's frames tagged otherwise go with it
    frames += [framed("ethernet", ip, case.tpids + [VLAN_TPIDS[extra % 4]] * (1 + extra % 3))[1]
               for extra, ip in enumerate(case.forward + case.backward)]
    assert len({share_of(frame, workers) for frame in frames}) == 1  # both directions, every fragment
    for frame in frames:
        share_of(frame[:cut], workers)  # a frame cut anywhere still goes to exactly one worker


@PROPERTY
@given(frame=st.binary(max_size=90), workers=st.sampled_from([2, 3]))
def test_shares_take_any_bytes_once(frame: bytes, workers: int) -> None:
    share_of(frame, workers)


@PROPERTY
@given(frames=st.lists(st.binary(max_size=90), max_size=12), records=st.lists(
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), max_size=4), workers=st.integers(1, 5))
def test_the_c_share_selection_is_the_python_one_on_whole_batches(frames: list[bytes],
                                                                 records: list[tuple[int, int]],
                                                                 workers: int) -> None:
    buf, meta, offset = b"", [], 0
    for frame in frames:
        meta.append(BATCH_META.pack(1, 2, offset, len(frame)))
        buf += frame
        offset += len(frame)
    meta += [BATCH_META.pack(3, 4, off, cap) for off, cap in records]  # records pointing anywhere: worker 0's
    batch = b"".join(meta)
    for index in range(workers):
        expected = b"".join(record for record in meta if _python_owner(buf, record, workers) == index)
        assert partition.select_share(buf, batch, index, workers) == expected


def _python_owner(buf: bytes, record: bytes, workers: int) -> int:
    _, _, off, cap = BATCH_META.unpack(record)
    return partition.share_worker(buf[off : off + cap], workers) if off + cap <= len(buf) else 0


def test_the_c_share_selection_is_in_use() -> None:
    from icmpsensor.decode.fast import EXTENSION

    assert EXTENSION is not None or os.environ.get("ICMPSENSOR_PURE_PYTHON")


@pytest.mark.parametrize("name", sorted(craft.encapsulations()))
def test_an_inner_host_pair_stays_one_workers_whichever_way_and_however_encapsulated(name: str) -> None:
    """IP tunnels: the outermost addresses, the tunnel's endpoints, the same either way (their sum); MPLS and
    PPPoE: followed to the IP header, as VLAN tags are."""
    framer = craft.encapsulations()[name]
    for k in range(1, 12):
        a, b = f"192.0.2.{k}", f"198.51.100.{k * 7}"
        there, back = craft.icmp4(a, b, 8, 0, k, 1, b"x"), craft.icmp4(b, a, 0, 0, k, 1, b"x")
        for workers in (2, 3):
            assert share_of(framer(there), workers) == share_of(framer(back), workers)
            for cut in (20, 40, 60):
                share_of(framer(there)[:cut], workers)  # cut short anywhere: exactly one worker's
    mpls, pppoe = craft.ether(craft.mpls(ECHO_AB, range(3)), ethertype=0x8847), craft.ether(craft.pppoe(ECHO_AB),
                                                                                         ethertype=0x8864)
    bare = craft.ether(ECHO_AB)
    assert share_of(mpls, 3) == share_of(pppoe, 3) == share_of(bare, 3)
    assert share_of(bare, 3) != 0  # (the pair is chosen so)
    back = craft.ether(craft.ipip("2.2.2.2", "1.1.1.1", craft.icmp4("10.9.9.9", "10.1.1.3", 0)))
    assert share_of(craft.ether(craft.ipip("1.1.1.1", "2.2.2.2", ECHO_AB)), 3) == share_of(back, 3)


ECHO_AB = craft.icmp4("10.1.1.3", "10.9.9.9", 8)


def test_shares_spread_numbered_pairs() -> None:
    """(a + k, b + k) pairs, a lab's numbering: a XOR of the addresses would give them all one worker."""
    shares = [share_of(craft.ether(craft.icmp4(f"192.0.2.{k}", f"198.51.100.{k}", 8)), 2) for k in range(1, 65)]
    assert 20 <= sum(shares) <= 44, shares


def test_frames_without_an_address_pair_go_to_worker_0() -> None:
    icmp = craft.icmp4("10.0.0.1", "10.0.0.2", 8)
    tagged = framed("ethernet", icmp, [0x8100, 0x88A8, 0x9100])[1]
    for frame in (craft.arp(), b"", craft.ether(icmp)[:33], tagged[:14 + 4 * 3 + 19]):
        assert share_of(frame, 3) == 0
    pair_worker = share_of(craft.ether(icmp), 3)
    assert pair_worker != 0  # (the pair is chosen so): its frames behind three tags go with it, not to worker 0
    assert share_of(craft.ether(icmp, vlans=[1, 2, 3]), 3) == share_of(tagged, 3) == pair_worker


def test_capture_snaplen_and_when_shares_are_picked_in_c(tmp_path: Path) -> None:
    from icmpsensor.source.pcapfile import capture_snaplen

    frames = [(1000.0, craft.ether(craft.icmp4("10.0.0.1", "10.0.0.2", 8)))]
    for snaplen in (60, 62, 65535):
        craft.write_pcap(tmp_path / f"s{snaplen}.pcap", frames, snaplen=snaplen)
        assert capture_snaplen(str(tmp_path / f"s{snaplen}.pcap")) == snaplen
    craft.write_pcapng(tmp_path / "n.pcapng", frames, craft.LINKTYPE_ETHERNET)
    assert capture_snaplen(str(tmp_path / "n.pcapng")) is not None
    (tmp_path / "junk").write_bytes(b"not a capture")
    assert capture_snaplen(str(tmp_path / "junk")) is None
    assert not partition.share_selectable(craft.LINKTYPE_ETHERNET, 60)
    assert partition.share_selectable(craft.LINKTYPE_ETHERNET, 62)
    assert not partition.share_selectable(craft.LINKTYPE_ETHERNET, None)
    assert not partition.share_selectable(craft.LINKTYPE_LINUX_SLL2, 65535)


def test_a_short_snap_length_replays_with_the_python_partition_alike(tmp_path: Path) -> None:
    packets = many_pairs(12)
    path = tmp_path / "short.pcap"
    craft.write_pcap(path, [(ts, craft.ether(ip)) for ts, ip in packets], snaplen=60)
    assert not replay._check_captures([str(path)])  # a snap length that may cut addresses: the Python partition
    _, many = replay_both(tmp_path, [path])  # the same counters and notices as one process
    assert summary(many)["decode"]["frames"] == len(packets)  # type: ignore[index]  # every frame, once


@pytest.mark.parametrize("linktype, frame", [
    (craft.LINKTYPE_ETHERNET, craft.arp()),
    (craft.LINKTYPE_ETHERNET, b""),
    (craft.LINKTYPE_ETHERNET, craft.ether(craft.icmp4("10.0.0.1", "10.0.0.2", 8))[:30]),
    (craft.LINKTYPE_ETHERNET, craft.ether(craft.icmp4("10.0.0.1", "10.0.0.2", 8), vlans=(5, 6))[:20]),
    (craft.LINKTYPE_LINUX_SLL, craft.sll(b"", protocol=craft.ETHERTYPE_ARP)),
    (craft.LINKTYPE_NULL, craft.null(b"\x45" * 30, family=17)),
    (craft.LINKTYPE_RAW, b"\x50" + bytes(40)),
    (craft.LINKTYPE_IPV6, bytes(39)),
])
def test_frames_without_an_address_pair_go_to_bucket_0(linktype: int, frame: bytes) -> None:
    assert partition.pair_key(linktype)(frame) & partition.BUCKET_MASK == 0
    assert partition.pair_key(linktype)(frame) == partition.UNPLACED == partition.NOT_ICMP


def test_ip_frames_without_an_icmp_message_keep_their_pair_bucket() -> None:
    key = partition.pair_key(craft.LINKTYPE_ETHERNET)
    bucket = partition.bucket_of_pair(craft.addr("10.0.0.1"), craft.addr("10.9.8.7"))
    echo = craft.icmp4("10.0.0.1", "10.9.8.7", 8, 0, 1, 1, bytes(40))
    first, *_, last = craft.fragment4(echo, 16)
    assert key(craft.ether(echo)) == key(craft.ether(last)) == bucket
    not_icmp = bucket | partition.NOT_ICMP
    assert key(craft.ether(craft.udp4("10.9.8.7", "10.0.0.1"))) == key(craft.ether(first)) == not_icmp
    bucket6 = partition.bucket_of_pair(craft.addr("2001:db8::1"), craft.addr("2001:db8::2"))
    assert key(craft.ether(craft.udp6("2001:db8::1", "2001:db8::2"))) == bucket6 | partition.NOT_ICMP


def test_unsupported_link_type_is_refused() -> None:
    with pytest.raises(ValueError, match="105"):
        partition.pair_key(105)


# -- the merge ----------------------------------------------------------------------------------------


def notice(ts: float, note: str) -> Notice:
    return Notice(ts, note, "", "", "10.0.0.1", "10.0.0.2", "C1", 1, 0, 0, ts, ts)


def test_notices_are_released_in_ts_order_once_every_watermark_passes_them() -> None:
    merge = NoticeMerge(2)
    merge.add(0, [notice(5.0, "a5"), notice(3.0, "a3")], 4.0)
    assert list(merge.ready()) == []  # worker 1 may still report anything
    merge.add(1, [notice(3.0, "b3")], 3.5)
    assert [n.note for n in merge.ready()] == ["a3", "b3"]  # a tie: worker 0 first
    merge.add(1, [notice(4.0, "b4")], 10.0)
    assert [n.note for n in merge.ready()] == ["b4"]  # a5 waits for worker 0's watermark
    merge.done(0, [notice(7.0, "a7")])
    assert [n.note for n in merge.ready()] == ["a5", "a7"]
    merge.add(1, [notice(12.0, "b12"), notice(11.0, "b11")], 10.5)
    assert list(merge.ready()) == [] and [n.note for n in merge.rest()] == ["b11", "b12"] and len(merge) == 0


def test_a_worker_sends_its_clock_alone_at_most_every_watermark_period() -> None:
    """A worker's batches each move its clock: sent after every batch, the clock alone made the main process
    (which shares the machine's cores with the workers) wake and unpickle hundreds of messages a second for
    nothing to write. Notices go at once, with the clock; the clock alone at most every WATERMARK_EVERY."""
    ours, theirs = multiprocessing.Pipe(duplex=True)
    sink = ListSink()
    channel = worker.WorkerChannel(0, ours, sink, SimpleNamespace(take_events=list, failure=None))
    channel._next_tick = float("inf")  # no housekeeping round
    clock = SimpleNamespace(now=100.0)
    the_worker = SimpleNamespace(latest=lambda: clock.now, between_ticks=lambda now: None)
    began = time.monotonic()
    for batch in range(200):  # batches far quicker than the period
        clock.now += 0.01
        if batch == 50:
            sink.emit(notice(clock.now, "n"))
        channel.round(the_worker)  # type: ignore[arg-type]
    rounds = time.monotonic() - began
    sent: list[Notices] = []
    while theirs.poll():
        sent.append(theirs.recv())
    with_notices = [m for m in sent if m.notices]
    assert [n.note for m in with_notices for n in m.notices] == ["n"]  # at once, not held for the period
    assert with_notices[0].watermark == pytest.approx(100.0 + 0.01 * 51)
    assert len(sent) <= 2 + rounds / worker.WATERMARK_EVERY + 1
    assert [m.watermark for m in sent] == sorted(m.watermark for m in sent)


# -- replay: the same result as one process -------------------------------------------------------------


def summary(result: CliResult) -> dict[str, object]:
    """The decode and detect counters of the summary line."""
    line = next(x for x in result.stderr.splitlines() if x.startswith("icmpsensor: read "))
    head, decode, detect = line.split("; decode: ")[0], *line.split("; decode: ")[1].split("; detect: ")
    detect, _, evidence = detect.partition("; evidence: ")
    return {"read": head.split(";")[0], "decode": json.loads(decode), "detect": json.loads(detect),
            "evidence": json.loads(evidence) if evidence else {}}


def comparable(notices: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return sorted(tuple(sorted((k, str(v)) for k, v in n.items() if k not in ("uid", "evidence"))) for n in notices)


def replay_both(tmp_path: Path, inputs: list[Path], workers: int = 2,
                *extra: str) -> tuple[CliResult, CliResult]:
    """The same replay with one process and with `workers` (the CLI run in this process, which the workers are
    forked from); both must succeed alike."""
    args = [a for path in inputs for a in ("-r", str(path))] + list(extra)
    results = []
    for n in (1, workers):
        out = tmp_path / f"out{n}"
        out.mkdir()
        results.append(run_cli_here(*args, "--workers", str(n), log_dir=out))
    one, many = results
    assert one.returncode == many.returncode == 0, many.stderr
    assert comparable(many.notices) == comparable(one.notices)
    assert summary(many) == summary(one)
    ts = [float(n["ts"]) for n in many.notices]  # type: ignore[arg-type]
    assert ts == sorted(ts)
    return one, many


@pytest.mark.seed
@pytest.mark.parametrize("capture", ["EgressAssess-sample-text-file.pcap",
                                     "hping3-sample-text-file-448-bytes-5-sec-95-byte-packets.pcap",
                                     "icmp-file-transfer-sample-text-file-2mb.pcap",
                                     "icmp-file-transfer-sample-text-file-448-bytes.pcap",
                                     "pyexfil-sample-text-file-448-bytes.pcap"])
def test_seed_captures_give_what_one_process_gives(seed_dir: Path, tmp_path: Path, capture: str) -> None:
    one, _ = replay_both(tmp_path, [seed_dir / capture])
    assert one.notices


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "synth.pcap"
    synthmix.generate(path, packets=20_000, seed=5)
    return path


@pytest.mark.parametrize("workers", [2, 3])
def test_synthetic_capture_gives_what_one_process_gives(synthetic: Path, tmp_path: Path, workers: int) -> None:
    one, many = replay_both(tmp_path, [synthetic], workers, "--stdout")
    assert len(one.notices) >= 10
    assert [json.loads(line) for line in many.stdout.splitlines()] == many.notices  # one writer, one order
    counters = summary(one)
    assert counters["decode"]["fragments"]["reassembled"] > 0  # type: ignore[index]
    assert counters["detect"]["flows_expired"] > 0  # type: ignore[index]

    def evidence(result: CliResult) -> dict[tuple[object, object, object], int]:
        return {(n["note"], n["src"], n["dst"]): os.path.getsize(str(n["evidence"]))
                for n in result.notices if n.get("evidence")}

    assert evidence(many) == evidence(one) != {}


def many_pairs(count: int, start: float = 1000.0) -> list[tuple[float, bytes]]:
    """`count` exfiltration flows, v4 and v6, interleaved: work for every worker."""
    packets: list[tuple[float, bytes]] = []
    for i in range(count):
        src, dst = (f"2001:db8::{i + 1:x}", f"2001:db8:1::{i + 1:x}") if i % 3 == 0 else \
            (f"192.0.2.{i + 1}", f"198.51.100.{i + 1}")
        packets += exfil_packets(src, dst, count=12, start=start + i * 0.013)
    return sorted(packets)


def tagged(ip: bytes) -> bytes:
    return craft.ether(ip, vlans=(100, 42), outer_tpid=0x88A8)


def test_link_types_fragments_and_several_files_as_one_timeline(tmp_path: Path) -> None:
    packets = many_pairs(12)
    for i in range(3):  # fragmented large requests, v4 and v6
        ip = craft.icmp4(f"203.0.113.{i + 1}", "192.0.2.200", craft.ECHO_REQUEST, 0, 9, i, bytes(range(256)) * 12,
                         ip_id=300 + i)
        packets += [(1000.5 + i + j * 1e-3, frag) for j, frag in enumerate(craft.fragment4(ip, 1480))]
        ip6 = craft.icmp6(f"2001:db8:9::{i + 1}", "2001:db8::200", craft.ECHO_REQUEST6, 0, 9, i, bytes(3000))
        packets += [(1000.5 + i + j * 1e-3, frag) for j, frag in enumerate(craft.fragment6(ip6, 1448, 50 + i))]
    packets.sort()
    half = len(packets) // 2
    first = write_capture(tmp_path, packets[:half], frame=tagged, name="a.pcap")
    second = write_capture(tmp_path, packets[half:], frame=craft.sll2, linktype=craft.LINKTYPE_LINUX_SLL2,
                           name="b.pcapng", pcapng=True)
    _, many = replay_both(tmp_path, [first, second], 2)
    assert summary(many)["decode"]["fragments"]["reassembled"] == 6  # type: ignore[index]
    uids: dict[tuple[object, object], set[object]] = {(n["src"], n["dst"]): set() for n in many.notices}
    for n in many.notices:
        uids[(n["src"], n["dst"])].add(n["uid"])
    assert all(len(u) == 1 for u in uids.values())  # each flow whole, across both files


@pytest.mark.parametrize("workers", [2, 3])
def test_a_datagram_that_never_completes_is_counted_alike_by_workers(tmp_path: Path, workers: int) -> None:
    """A first fragment alone, then another pair's echo requests for longer than decode.fragment_timeout: the
    datagram timed out by the end of the input, whichever worker holds it and whatever clock the others had."""
    lone = craft.fragment4(craft.icmp4("10.0.0.1", "10.0.0.2", craft.ECHO_REQUEST, 0, 7, 1, b"x" * 400), 64)[0]
    packets = [(1000.0, lone)] + [
        (1000.0 + t, craft.icmp4(f"10.0.{t % 3 + 1}.9", "10.0.0.9", craft.ECHO_REQUEST, 0, 7, t, b"y" * 40))
        for t in range(1, 90)]
    _, many = replay_both(tmp_path, [write_capture(tmp_path, packets)], workers)
    fragments = summary(many)["decode"]["fragments"]  # type: ignore[index]
    assert fragments.get("timeout") == 1 and "unfinished" not in fragments, fragments


@pytest.mark.parametrize("last", ["lone fragment", "truncated echo", "udp", "lone fragment, raw IP",
                                  "truncated echo, raw IP"])
def test_a_replay_ends_at_its_last_frames_time_with_one_process_and_with_workers(tmp_path: Path, last: str) -> None:
    """A flow's one message, then 9 s later a last frame of another pair that gives the detector no packet (a first
    fragment alone, an echo cut short, a UDP datagram): the open flow's ExfilSummary is made at the end of input, at
    the capture's last time, by one process and by workers alike. Before, one process ended at its detector's
    clock and workers at the latest clock any worker had, which counted some of those frames and not others
    (ts 1700000009 against 1700000000 either way round, helper's ASan campaign)."""
    first = craft.icmp4("10.0.0.1", "10.0.0.2", 13, 0, 0, 0, bytes(16) + b"hidden-data-" * 8)
    other = craft.icmp4("10.0.0.3", "10.0.0.4", craft.ECHO_REQUEST, 0, 1, 1, bytes(100))
    frames = {"lone fragment": craft.fragment4(other, 32)[0], "truncated echo": other[:40],
              "udp": craft.udp4("10.0.0.3", "10.0.0.4", payload=b"u" * 20)}
    kind, _, link = last.partition(", ")
    packets = [(1_700_000_000.0, first), (1_700_000_009.0, frames[kind])]
    if link:
        path = write_capture(tmp_path, packets, frame=lambda ip: ip, linktype=craft.LINKTYPE_RAW)
    else:
        path = write_capture(tmp_path, packets)
    one, _ = replay_both(tmp_path, [path], 2)
    summaries = [n for n in one.notices if str(n["note"]).endswith("ExfilSummary")]
    assert [float(n["ts"]) for n in summaries] == [1_700_000_009.0], one.notices  # type: ignore[arg-type]


def test_a_workers_watermark_is_its_clock_not_the_last_frame_read(tmp_path: Path) -> None:
    """A replay worker's watermark (Worker.latest: the merge releases the other workers' notices up to it) is its
    detector's clock: a flow of its own that is idle is ended, and its summary stamped, only when its next own frame
    moves that clock, however far the capture (the other workers' frames in the same batch) has been read. The last
    frame read counts at the end of input only (Worker.run). Since the replay's end has been its last frame's time
    the watermark had taken that frame's time too: a summary stamped 400 could follow another worker's notice at 450
    in notice.log, as the main process's pumping fell."""
    cfg = Config()
    cfg.output.log_dir = str(tmp_path)
    pipeline = Pipeline(cfg, [ListSink()])
    source = FileSource([], pipeline.decoder_for)
    source.latest = 1_700_000_509.4
    pipeline.detector.now = 1_700_000_310.0
    try:
        assert worker.Worker(pipeline, source, worker.InProcessLink()).latest() == 1_700_000_310.0
    finally:
        pipeline.close()


def test_both_workers_get_a_share(tmp_path: Path) -> None:
    path = write_capture(tmp_path, many_pairs(16))
    cfg = Config()
    cfg.output.log_dir = str(tmp_path)
    sinks = build_sinks(cfg)
    try:
        result = replay.replay([str(path)], cfg, sinks, 2)
    finally:
        for sink in sinks:
            sink.close()
    assert result.workers == 2 and all(share > 0 for share in result.shares)
    assert sum(result.shares) == result.frames == result.stats["decode"]["frames"]  # type: ignore[index]
    assert result.notices == result.stats["notices"] == 16 * 3 and not result.problems


# -- errors ---------------------------------------------------------------------------------------------


def test_a_capture_cut_off_mid_record_is_reported_once_as_by_one_process(tmp_path: Path) -> None:
    path = write_capture(tmp_path, exfil_packets() + many_pairs(4, start=2000.0))
    path.write_bytes(path.read_bytes()[:-50])
    results = []
    for n in (1, 2):
        out = tmp_path / f"out{n}"
        out.mkdir()
        results.append(run_cli("-r", path, "--workers", str(n), log_dir=out))
    one, many = results
    assert many.returncode == one.returncode == 66
    errors = [line for line in many.stderr.splitlines() if line.startswith("icmpsensor: error: ")]
    assert errors == [line for line in one.stderr.splitlines() if line.startswith("icmpsensor: error: ")]
    assert len(errors) == 1 and "truncated dump file" in errors[0] and "after " in errors[0]
    assert comparable(many.notices) == comparable(one.notices) and EXFIL_NOTES[0] in notes(many.notices)
    assert summary(many) == summary(one)


@pytest.mark.parametrize("case", ["missing", "not a capture", "link type"])
def test_bad_input_fails_before_any_worker_starts_as_with_one_process(tmp_path: Path, case: str) -> None:
    good = write_capture(tmp_path, exfil_packets())
    bad = tmp_path / "bad.pcap"
    if case == "not a capture":
        bad.write_text("hello\n")
    elif case == "link type":
        craft.write_pcap(bad, [(1.0, bytes(40))], linktype=105)
    results = [run_cli("-r", good, "-r", bad, "--workers", n, log_dir=tmp_path) for n in ("1", "2")]
    assert results[0].returncode == results[1].returncode == 66
    assert results[0].stderr == results[1].stderr and len(results[1].stderr.splitlines()) == 1
    assert results[1].notices == []


@pytest.fixture
def in_process() -> Iterator[None]:
    """cli.main run in the test process: it sets SIGPIPE's disposition, which is put back afterwards."""
    previous = signal.getsignal(signal.SIGPIPE)
    yield
    signal.signal(signal.SIGPIPE, previous)


@pytest.mark.usefixtures("in_process")
def test_a_worker_that_fails_ends_the_replay_with_its_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = write_capture(tmp_path, many_pairs(8))
    real_round = worker.WorkerChannel.round

    def round(self: worker.WorkerChannel, w: worker.Worker) -> None:
        if self.index == 1:
            raise RuntimeError("boom")
        real_round(self, w)

    monkeypatch.setattr(worker.WorkerChannel, "round", round)  # inherited by the forked workers
    code = cli.main(["-r", str(path), "--workers", "2", "--log-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("icmpsensor: error: worker 1 (pid ") and "internal error: RuntimeError: boom" in err
    cfg = Config()
    cfg.output.log_dir = str(tmp_path)
    with pytest.raises(WorkerFailure) as failure:
        replay.replay([str(path)], cfg, [], 2)
    assert failure.value.exit_code == 1


@pytest.mark.usefixtures("in_process")
@pytest.mark.parametrize("where", ["main", "worker", "thread"])
def test_out_of_memory_is_exit_71_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str], where: str) -> None:
    """`ulimit -v` (or a unit's MemoryMax=) reached: exit 71 (EX_OSERR), one line saying so. It was an internal
    error, exit 1, and with workers a thread that could not start made the clean-up fail in its turn ("cannot join
    thread before it is started"), the real error never told (red team, 2026-12-08)."""
    path = write_capture(tmp_path, many_pairs(8))
    if where == "main":
        def no_memory(*_args: object) -> object:
            raise MemoryError
        monkeypatch.setattr(replay, "replay", no_memory)
    elif where == "worker":
        def round(self: worker.WorkerChannel, w: worker.Worker) -> None:
            raise MemoryError
        monkeypatch.setattr(worker.WorkerChannel, "round", round)  # inherited by the forked workers
    else:
        from icmpsensor.runmode import supervisor

        def no_thread(self: object) -> None:
            raise RuntimeError("can't start new thread")
        monkeypatch.setattr(supervisor.threading.Thread, "start", no_thread)
    code = cli.main(["-r", str(path), "--workers", "2", "--log-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 71, err
    assert err.count("\n") == 1 and "Traceback" not in err and "internal error" not in err, err
    assert err.startswith("icmpsensor: error: ") and "out of memory" in err, err


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def start_long_replay(synthetic: Path, log_dir: Path, workers: int = 2) -> tuple[subprocess.Popen[str], list[int]]:
    """`--workers N` on a long timeline (the synthetic capture 60 times, 1.2 million frames; for one process, which
    is signalled a second after its start and must still be reading then and half a second later, 300 times), once
    the workers have started reading: (the CLI process, the worker pids)."""
    argv = [sys.executable, "-m", "icmpsensor", "--workers", str(workers), "--log-dir", str(log_dir)]
    argv += ["-r", str(synthetic)] * (60 if workers > 1 else 300)
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while workers > 1 and len(_children(proc.pid)) < workers and time.monotonic() < deadline \
            and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3 if workers > 1 else 1.0)
    return proc, _children(proc.pid) if workers > 1 else []


def finish(proc: subprocess.Popen[str]) -> str:
    try:
        return proc.communicate(timeout=30)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_a_killed_worker_ends_the_replay_with_one_line_and_exit_1(synthetic: Path, tmp_path: Path) -> None:
    proc, workers = start_long_replay(synthetic, tmp_path)
    assert len(workers) == 2, finish(proc)
    os.kill(workers[1], signal.SIGKILL)
    err = finish(proc)
    assert proc.returncode == 1, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("icmpsensor: error: worker ") and "exited unexpectedly (killed by SIGKILL)" in err
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)  # the other worker was stopped too


def test_ctrl_c_stops_the_workers_too(synthetic: Path, tmp_path: Path) -> None:
    proc, workers = start_long_replay(synthetic, tmp_path)
    assert len(workers) == 2, finish(proc)
    for pid in (proc.pid, *workers):  # as a terminal does: the whole process group
        with contextlib.suppress(ProcessLookupError):  # the exit code below says whether that was right
            os.kill(pid, signal.SIGINT)
    err = finish(proc)
    assert proc.returncode == 130 and err == "", err
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_a_replay_as_ctrl_c_does(synthetic: Path, tmp_path: Path, signum: int,
                                                         workers: int) -> None:
    """Exit 128 + the signal's number, nothing on stderr, no worker left (they ended a replay at once, and
    SIGTERM left its workers to the parent-death signal)."""
    proc, pids = start_long_replay(synthetic, tmp_path, workers)
    assert len(pids) == (workers if workers > 1 else 0), finish(proc)
    for pid in (proc.pid, *pids):  # as systemd-run or a closing terminal does: the whole group
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
    err = finish(proc)
    assert proc.returncode == 128 + signum and err == "", (proc.returncode, err)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


@pytest.mark.parametrize("workers", [1, 2])
def test_signals_the_sensor_does_not_use_do_not_end_a_replay(synthetic: Path, tmp_path: Path, workers: int) -> None:
    """SIGUSR1, SIGUSR2, SIGALRM, a real-time signal: ignored (their default action ended the replay, exit 138 for
    SIGUSR1); Ctrl-C then ends it as usual."""
    proc, pids = start_long_replay(synthetic, tmp_path, workers)
    for signum in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGRTMIN + 1):
        for pid in (proc.pid, *pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
    time.sleep(0.5)
    assert proc.poll() is None, finish(proc)
    assert all(Path(f"/proc/{pid}").exists() for pid in pids)
    os.kill(proc.pid, signal.SIGINT)
    err = finish(proc)
    assert proc.returncode == 130 and err == "", (proc.returncode, err)


@pytest.mark.parametrize("value, fragment", [("0", "out of range"), ("-1", "out of range"), ("65", "out of range"),
                                             ("two", "not a whole number"), ("1.5", "not a whole number")])
def test_bad_workers_values_are_usage_errors(tmp_path: Path, value: str, fragment: str) -> None:
    result = run_cli("-r", tmp_path / "x.pcap", f"--workers={value}")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("icmpsensor: error: argument --workers: ")
    assert fragment in result.stderr


def test_workers_is_for_replay_only() -> None:
    result = run_cli("-i", "lo", "--workers", "2")
    assert result.returncode == 2 and "--workers is for -r" in result.stderr
    assert "--workers N" in run_cli("--help").stdout


# -- which path runs -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("in_process")
@pytest.mark.parametrize("config_workers, option, expected", [(1, None, None), (2, None, 2), (2, "1", None),
                                                              (1, "3", 3)])
def test_worker_count_comes_from_the_option_or_capture_workers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        config_workers: int, option: str | None, expected: int | None) -> None:
    path = write_capture(tmp_path, exfil_packets())
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"capture:\n  workers: {config_workers}\n")
    seen: list[int] = []
    real = replay.ParallelReplay.run

    def spy(self: replay.ParallelReplay) -> replay.ReplayResult:
        seen.append(self.count)
        return real(self)

    monkeypatch.setattr(replay.ParallelReplay, "run", spy)
    argv = ["-r", str(path), "-c", str(cfg), "--log-dir", str(tmp_path)] + (["--workers", option] if option else [])
    assert cli.main(argv) == 0
    assert seen == ([expected] if expected else [])
    assert "3 notice(s) written" in capsys.readouterr().err
    assert sorted(json.loads(line)["note"] for line in (tmp_path / "notice.log").read_text().splitlines()) == \
        [n for n, _, _ in EXFIL_NOTES]


def test_benchmark_stage_with_two_workers(synthetic: Path) -> None:
    from bench import throughput

    truth = str(synthmix.truth_path(synthetic))
    one = throughput.stage_icmpsensor(str(synthetic), truth)
    two = throughput.stage_icmpsensor_workers(str(synthetic), truth, 2)
    assert two["packets"] == one["packets"] == 20_000 and two["problems"] == []
    assert two["notices"] == one["notices"] and two["icmp"] == one["icmp"]
    assert two["exfil_missed"] == [] and two["exfil_reported"] == two["exfil_pairs"] and two["false_positives"] == []
    assert len(two["shares"]) == 2 and sum(two["shares"]) == 20_000  # type: ignore[arg-type]
    assert two["workers_rss_mb"] > 5  # type: ignore[operator]


def test_remembered_buckets_are_bounded_and_change_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partition, "MEMO_LIMIT", 4)
    key = partition.pair_key(craft.LINKTYPE_ETHERNET)
    pairs = [(f"10.1.{i}.1", f"10.2.{i}.2") for i in range(12)]
    pairs += [(f"2001:db8::{i + 2:x}", "2001:db8::1") for i in range(12)]
    for _ in range(2):
        for src, dst in pairs:
            ip = craft.icmp6(src, dst, 128) if ":" in src else craft.icmp4(src, dst, 8)
            assert key(craft.ether(ip)) == partition.bucket_of_pair(craft.addr(src), craft.addr(dst))
    assert len(partition._V4_BUCKETS) <= 4 and len(partition._V6_BUCKETS) <= 4


@pytest.mark.parametrize(("stage", "said"), [("round", "sent nothing for 1 s; replay stopped"),
                                             ("done", "sent nothing for 1 s after its input ended")])
def test_a_stuck_worker_ends_the_replay_instead_of_hanging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           stage: str, said: str) -> None:
    """A worker stuck while reading (in a round), or after it has read its input (before it reports Done: once
    the end was sent to every worker, it only flushes): either sends nothing for STUCK_LIMIT seconds and ends the
    replay. The second hung the replay forever (a forked worker deadlocked at its end under AddressSanitizer,
    whose allocator a thread of the parent held at the fork)."""
    path = write_capture(tmp_path, many_pairs(8))
    real = getattr(worker.WorkerChannel, stage)

    def stuck(self: worker.WorkerChannel, w: worker.Worker) -> None:
        if self.index == 1:
            time.sleep(3600)
        real(self, w)

    monkeypatch.setattr(worker.WorkerChannel, stage, stuck)  # inherited by the forked workers
    monkeypatch.setattr(replay, "STUCK_LIMIT", 1.0)
    cfg = Config()
    cfg.output.log_dir = str(tmp_path)
    before = set(_children(os.getpid()))  # the session's own (tests/unit/test_memory.py's early floods)
    began = time.monotonic()
    with pytest.raises(WorkerFailure, match=rf"worker 1 \(pid \d+\) {said}") as failure:
        replay.replay([str(path)], cfg, [], 2)
    assert failure.value.exit_code == 1 and time.monotonic() - began < 10
    assert set(_children(os.getpid())) <= before  # the stuck worker was killed (and reaped), as was the other


@pytest.mark.parametrize("workers", [2, 3])
def test_encapsulated_flows_give_what_one_process_gives(tmp_path: Path, workers: int) -> None:
    """Pairs inside every encapsulation (each pair its own), with evidence: the same notices, counters and evidence
    sizes as one process; the shares picked in C (Ethernet, a long snap length)."""
    framers = sorted(craft.encapsulations().items())
    packets = many_pairs(len(framers))
    pair_framer = {}
    frames = []
    for ts, ip in packets:
        pair = frozenset((ip[12:20][:4], ip[12:20][4:])) if ip[0] >> 4 == 4 else frozenset((ip[8:24], ip[24:40]))
        _, framer = pair_framer.setdefault(pair, framers[len(pair_framer) % len(framers)])
        frames.append((ts, framer(ip)))
    path = tmp_path / "tunnels.pcap"
    craft.write_pcap(path, frames)
    one, many = replay_both(tmp_path, [path], workers)
    assert len({n["src"] for n in one.notices}) == len(framers)  # every pair reported, whatever carried it
    assert summary(one)["decode"]["icmp"] == len(frames)  # type: ignore[index]

    def evidence(result: CliResult) -> dict[tuple[object, object, object], int]:
        return {(n["note"], n["src"], n["dst"]): os.path.getsize(str(n["evidence"]))
                for n in result.notices if n.get("evidence")}

    assert evidence(many) == evidence(one)
