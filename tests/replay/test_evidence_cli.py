"""Evidence of alerted flows through the command line: the pcap decodes to the flow's packets, the .bin is the
file that left, the caps and the switch apply, and notice.log names the evidence."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pcapy

from icmpsensor.decode.fast import Decoder
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.decode.stats import DecodeStats
from testkit import craft
from testkit.cli import run_cli_here

SRC, DST = "192.0.2.10", "198.51.100.7"
SECRET = b"".join(hashlib.sha256(str(i).encode()).hexdigest().encode() + b"\n" for i in range(100))  # 6.5 kB


def transfer_pcap(path: Path, data: bytes = SECRET, size: int = 500, benign_first: int = 0) -> Path:
    frames = []
    ts = 1000.0
    for i in range(benign_first):
        frames.append((ts, craft.ether(craft.icmp4(SRC, DST, craft.ECHO_REQUEST, 0, 3, i, b""))))
        ts += 0.1
    for seq, offset in enumerate(range(0, len(data), size)):
        chunk = data[offset : offset + size]
        frames.append((ts, craft.ether(craft.icmp4(SRC, DST, craft.ECHO_REQUEST, 0, 9, seq, chunk))))
        frames.append((ts + 0.01, craft.ether(craft.icmp4(DST, SRC, craft.ECHO_REPLY, 0, 9, seq, chunk))))
        ts += 0.1
    craft.write_pcap(path, frames)
    return path


def read_evidence(path: str) -> list[IcmpPacket]:
    reader = pcapy.open_offline(path)
    assert reader.datalink() == craft.LINKTYPE_ETHERNET  # the capture's (transfer_pcap writes Ethernet)
    decoder = Decoder(reader.datalink(), DecodeStats())
    out = []
    while True:
        hdr, data = reader.next()
        if hdr is None:
            return out
        sec, usec = hdr.getts()
        pkt = decoder.decode(sec + usec / 1e6, data)
        assert pkt is not None
        out.append(pkt)


def test_evidence_pcap_and_carried_bytes(tmp_path: Path) -> None:
    pcap = transfer_pcap(tmp_path / "in.pcap")
    logs = tmp_path / "logs"
    logs.mkdir()
    result = run_cli_here("-r", pcap, log_dir=logs)
    assert result.returncode == 0, result.stderr
    paths = {n["evidence"] for n in result.notices}
    assert len(paths) == 1  # every notice of the flow points at the same evidence
    evidence = str(paths.pop())
    assert evidence.startswith(str(logs / "evidence")) and evidence.endswith(".pcap")
    packets = read_evidence(evidence)
    # The whole transfer: the packets before the first notice (the ring) and everything after it.
    requests = [p for p in packets if p.is_echo_request]
    assert [p.seq for p in requests] == list(range(13))  # 6,500 bytes in 500-byte chunks
    assert all(p.src == craft.addr(SRC) and p.dst == craft.addr(DST) for p in requests)
    # The .bin is the file that left, byte for byte (the tool sent it raw).
    assert Path(evidence[:-5] + ".bin").read_bytes() == SECRET
    assert oct(Path(evidence).stat().st_mode & 0o777) == "0o640"


def test_evidence_caps(tmp_path: Path) -> None:
    pcap = transfer_pcap(tmp_path / "in.pcap", benign_first=0)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("output:\n  evidence:\n    packets_before: 2\n    packets_after: 3\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    result = run_cli_here("-r", pcap, "-c", cfg, log_dir=logs)
    evidence = str(result.notices[0]["evidence"])
    assert len(read_evidence(evidence)) == 5


def test_evidence_can_be_switched_off(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("output:\n  evidence:\n    enabled: false\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    result = run_cli_here("-r", transfer_pcap(tmp_path / "in.pcap"), "-c", cfg, log_dir=logs)
    assert result.notices and all("evidence" not in n for n in result.notices)
    assert not (logs / "evidence").exists()


def test_notice_json_carries_the_evidence_field(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    run_cli_here("-r", transfer_pcap(tmp_path / "in.pcap"), log_dir=logs)
    first = json.loads((logs / "notice.log").read_text().splitlines()[0])
    assert list(first)[-1] == "evidence"
