"""Faithful evidence (issue 14): the evidence pcap holds the alerted pair's frames as they were captured, read
back with dpkt and compared byte for byte with the input capture: the capture's link type in the pcap header,
original headers (TTL, IP id, IPv4 options, IPv6 extension headers, VLAN tags), both directions of the pair,
every fragment frame as it came; and notice.log names it by an absolute path, even with a relative --log-dir.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dpkt

from testkit import craft
from testkit.cli import chunk, run_cli_here
from testkit.paths import REPO

SRC, DST = "192.0.2.10", "198.51.100.7"
SRC6, DST6 = "2001:db8::10", "2001:db8:1::7"
OTHER = "203.0.113.9"  # a benign host pinging DST: never in the pair's evidence
Frames = list[tuple[float, bytes]]


def transfer(src: str = SRC, dst: str = DST, count: int = 12, size: int = 100,
             options: bytes = b"", frame: Callable[[bytes], bytes] = craft.ether) -> tuple[Frames, Frames]:
    """An exfiltration as a tool sends it: echo requests with file-like payloads, each answered, every packet
    with its own TTL and IP id (and IPv4 options when given); plus a benign ping from another host in between.
    (all frames, the frames of the pair)."""
    everything, pair = [], []
    for i in range(count):
        ts = 1000.0 + i * 0.25
        payload = chunk(i, size)
        if ":" in src:
            request = craft.icmp6(src, dst, craft.ECHO_REQUEST6, 0, 77, i, payload, hop_limit=60 - i,
                                  ext_headers=[craft.dest_opts(b"\x1e\x02\xab\xcd")] if i % 2 else ())
            reply = craft.icmp6(dst, src, craft.ECHO_REPLY6, 0, 77, i, payload, hop_limit=250 - i)
        else:
            message = craft.icmp4_message(craft.ECHO_REQUEST, 0, 77, i, payload)
            request = craft.ipv4(src, dst, craft.PROTO_ICMP, message, ip_id=0x1000 + i, ttl=60 - i, options=options)
            reply = craft.icmp4(dst, src, craft.ECHO_REPLY, 0, 77, i, payload, ip_id=0x2000 + 3 * i, ttl=250 - i)
        benign = craft.icmp4(OTHER, dst, craft.ECHO_REQUEST, 0, 5, i, b"")
        for offset, ip, ours in ((0.0, request, True), (0.01, benign, False), (0.02, reply, True)):
            item = (round(ts + offset, 6), frame(ip))
            everything.append(item)
            if ours:
                pair.append(item)
    return everything, pair


def read_pcap(path: str | Path) -> tuple[int, Frames]:
    """(link type in the file header, [(ts, frame)]) read with dpkt."""
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        return reader.datalink(), [(round(ts, 6), bytes(buf)) for ts, buf in reader]


def replay(tmp_path: Path, captures: list[Path], config: str = "") -> list[dict[str, object]]:
    logs = tmp_path / "logs"
    logs.mkdir()
    args: list[str | Path] = [a for c in captures for a in ("-r", c)]
    if config:
        (tmp_path / "c.yaml").write_text(config)
        args += ["-c", tmp_path / "c.yaml"]
    result = run_cli_here(*args, log_dir=logs)
    assert result.returncode == 0, result.stderr
    assert result.notices
    return result.notices


def evidence_of(notices: list[dict[str, object]], src: str = SRC) -> str:
    paths = {str(n["evidence"]) for n in notices if n["src"] == src}
    assert len(paths) == 1, notices
    return paths.pop()


def test_ethernet_with_vlan_tags_and_ipv4_options_both_directions_byte_for_byte(tmp_path: Path) -> None:
    everything, pair = transfer(options=b"\x94\x04\x00\x00",  # router alert: a sender-set IPv4 option
                                frame=lambda ip: craft.ether(ip, vlans=(100, 200), outer_tpid=0x88A8))
    capture = tmp_path / "in.pcap"
    craft.write_pcap(capture, everything)
    path = evidence_of(replay(tmp_path, [capture]))
    linktype, frames = read_pcap(path)
    assert linktype == craft.LINKTYPE_ETHERNET
    assert frames == pair  # requests and replies, TTLs, IP ids, options and both VLAN tags as captured
    ip = dpkt.ethernet.Ethernet(frames[0][1]).data
    assert (ip.ttl, ip.id, ip.opts) == (60, 0x1000, b"\x94\x04\x00\x00")


def test_linux_cooked_ipv6_with_extension_headers(tmp_path: Path) -> None:
    everything, pair = transfer(SRC6, DST6, frame=craft.sll)
    capture = tmp_path / "in.pcap"
    craft.write_pcap(capture, everything, craft.LINKTYPE_LINUX_SLL)
    linktype, frames = read_pcap(evidence_of(replay(tmp_path, [capture]), SRC6))
    assert linktype == craft.LINKTYPE_LINUX_SLL
    assert frames == pair


def test_raw_ip_keeps_the_raw_link_type(tmp_path: Path) -> None:
    everything, pair = transfer(frame=craft.raw)
    capture = tmp_path / "in.pcap"
    craft.write_pcap(capture, everything, craft.LINKTYPE_RAW)
    linktype, frames = read_pcap(evidence_of(replay(tmp_path, [capture])))
    assert linktype == craft.LINKTYPE_RAW  # 101 in the file, whatever DLT libpcap reports it as
    assert frames == pair


def test_tunnelled_frames_are_kept_whole_outer_headers_and_all(tmp_path: Path) -> None:
    """ICMP decoded inside GRE (ERSPAN), VXLAN, MPLS: the evidence holds the captured frame, not the inner packet."""
    framers = craft.encapsulations()
    for name in ("erspan2", "vxlan", "mpls", "gre-in-gre-in-ipip"):
        everything, pair = transfer(frame=framers[name])
        capture = tmp_path / name / "in.pcap"
        capture.parent.mkdir()
        craft.write_pcap(capture, everything)
        linktype, frames = read_pcap(evidence_of(replay(capture.parent, [capture])))
        assert linktype == craft.LINKTYPE_ETHERNET
        assert frames == pair, name


def test_tunnelled_fragments_as_they_came(tmp_path: Path) -> None:
    vxlan = craft.encapsulations()["vxlan"]
    everything, _ = fragmented_transfer(4)
    everything = [(ts, vxlan(frame[14:])) for ts, frame in everything]
    capture = tmp_path / "in.pcap"
    craft.write_pcap(capture, everything)
    _, frames = read_pcap(evidence_of(replay(tmp_path, [capture])))
    assert frames == everything  # each fragment's whole frame


def fragmented_transfer(version: int) -> tuple[Frames, Frames]:
    """Requests of 1,200 file-like bytes sent in fragments (the last fragment first for one of them), replies
    whole: (all frames, the pair's)."""
    src, dst = (SRC, DST) if version == 4 else (SRC6, DST6)
    everything: Frames = []
    for i in range(4):
        ts = 2000.0 + i
        payload = chunk(i, 1200)
        if version == 4:
            request = craft.icmp4(src, dst, craft.ECHO_REQUEST, 0, 3, i, payload, ip_id=0x4000 + i, ttl=33)
            pieces = craft.fragment4(request, 400)
            reply = craft.icmp4(dst, src, craft.ECHO_REPLY, 0, 3, i, payload, ip_id=0x5000 + i)
        else:
            request = craft.icmp6(src, dst, craft.ECHO_REQUEST6, 0, 3, i, payload)
            pieces = craft.fragment6(request, 400, frag_id=0x77 + i)
            reply = craft.icmp6(dst, src, craft.ECHO_REPLY6, 0, 3, i, payload)
        if i == 2:
            pieces = pieces[::-1]
        for n, piece in enumerate(pieces):
            everything.append((round(ts + n * 0.001, 6), craft.ether(piece)))
        everything.append((round(ts + 0.1, 6), craft.ether(reply)))
    return everything, list(everything)


def test_fragments_as_they_came_ipv4(tmp_path: Path) -> None:
    everything, pair = fragmented_transfer(4)
    capture = tmp_path / "in.pcap"
    craft.write_pcap(capture, everything)
    _, frames = read_pcap(evidence_of(replay(tmp_path, [capture])))
    assert frames == pair  # every fragment frame, in the order it came, not the reassembled datagram
    fragments = [f for _, f in frames if dpkt.ethernet.Ethernet(f).data.offset or dpkt.ethernet.Ethernet(f).data.mf]
    assert len(fragments) == len(frames) - 4  # all but the 4 replies, each request in 4 fragments


def test_fragments_as_they_came_ipv6(tmp_path: Path) -> None:
    everything, pair = fragmented_transfer(6)
    capture = tmp_path / "in.pcap"
    craft.write_pcap(capture, everything)
    _, frames = read_pcap(evidence_of(replay(tmp_path, [capture]), SRC6))
    assert frames == pair


def test_one_pcap_per_link_type(tmp_path: Path) -> None:
    """One timeline over two captures of different link types: the pair's Ethernet frames in <uid>.pcap (the
    notice's), its Linux-cooked ones in <uid>-113.pcap, each with its own link type in the header."""
    everything, pair = transfer(count=12)
    first, second = tmp_path / "a.pcap", tmp_path / "b.pcap"
    craft.write_pcap(first, [(ts, craft.ether(ip)) for ts, ip in _ip_of(everything[:18])])
    craft.write_pcap(second, [(ts, craft.sll(ip)) for ts, ip in _ip_of(everything[18:])], craft.LINKTYPE_LINUX_SLL)
    path = evidence_of(replay(tmp_path, [first, second]))
    assert path.endswith(".pcap")
    linktype, frames = read_pcap(path)
    other_linktype, other_frames = read_pcap(path[:-5] + "-113.pcap")
    assert (linktype, other_linktype) == (craft.LINKTYPE_ETHERNET, craft.LINKTYPE_LINUX_SLL)
    assert [(ts, f[14:]) for ts, f in frames] + [(ts, f[16:]) for ts, f in other_frames] == \
        [(ts, f[14:]) for ts, f in pair]


def _ip_of(frames: Frames) -> Frames:
    return [(ts, f[14:]) for ts, f in frames]


def test_notice_names_the_evidence_by_an_absolute_path_with_a_relative_log_dir(tmp_path: Path) -> None:
    everything, pair = transfer()
    craft.write_pcap(tmp_path / "in.pcap", everything)
    (tmp_path / "logs").mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "icmpsensor", "-r", "in.pcap", "--log-dir", "logs"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    notices = [json.loads(line) for line in (tmp_path / "logs" / "notice.log").read_text().splitlines()]
    path = evidence_of(notices)
    assert os.path.isabs(path) and Path(path).parent == (tmp_path / "logs" / "evidence").resolve()
    assert read_pcap(path)[1] == pair


def test_a_pairs_next_flow_after_the_last_one_ended_gets_its_own_packets(tmp_path: Path) -> None:
    """One pair, one alerting request every 400 s (past idle_timeout: each its own flow). The packet that arrives
    after the last flow went idle ends that flow (its ExfilSummary) and starts the next, whose DataExfil it raises:
    it is the next flow's evidence, not the ended one's. Before, it was written into the ended flow's pcap and
    each later flow's pcap held the flow after it (the last one nothing; helper's ASan campaign, case 02)."""
    frames = [(1000.0 + 400 * i, craft.ether(craft.icmp4(SRC, DST, craft.ECHO_REQUEST, 0, 1, i, chunk(i, 1000))))
              for i in range(3)]
    capture = tmp_path / "in.pcap"
    craft.write_pcap(capture, frames)
    notices = replay(tmp_path, [capture])
    by_flow: dict[str, set[str]] = {}
    for notice in notices:
        by_flow.setdefault(str(notice["uid"]), set()).add(str(notice["evidence"]))
    assert len(by_flow) == 3 and all(len(paths) == 1 for paths in by_flow.values()), notices
    firsts = sorted((float(n["ts"]), str(n["evidence"])) for n in notices if str(n["note"]).endswith("DataExfil"))
    assert [read_pcap(path)[1] for _, path in firsts] == [[frame] for frame in frames]
