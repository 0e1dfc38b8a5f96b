"""Running the sensor's command line, and the small crafted exfiltration captures the replay tests give it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from testkit import craft
from testkit.paths import REPO

EXFIL_SRC, EXFIL_DST = "192.0.2.10", "198.51.100.7"

# The standard profile on `exfil_packets()` (20 x 100 bytes of file-like data, each request echoed back):
# DataExfil when the novel bytes pass 400, AsymPayloadFlow at the 6th changed request, the summary at the end.
EXFIL_NOTES = [("ICMP::ICMP_AsymPayloadFlow", EXFIL_SRC, EXFIL_DST), ("ICMP::ICMP_DataExfil", EXFIL_SRC, EXFIL_DST),
               ("ICMP::ICMP_ExfilSummary", EXFIL_SRC, EXFIL_DST)]


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    notices: list[dict[str, object]]


def run_cli(*args: str | Path, log_dir: Path | None = None, timeout: float = 120.0,
            env: dict[str, str] | None = None) -> CliResult:
    """Run `python -m icmpsensor ARGS` (with --log-dir when given) and read back notice.log."""
    argv = [sys.executable, "-m", "icmpsensor", *map(str, args)]
    if log_dir is not None:
        argv += ["--log-dir", str(log_dir)]
    full_env = {**os.environ, "TZ": "UTC", **(env or {})}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=full_env)
    notices: list[dict[str, object]] = []
    if log_dir is not None and (log_dir / "notice.log").exists():
        notices = [json.loads(line) for line in (log_dir / "notice.log").read_text().splitlines()]
    return CliResult(proc.returncode, proc.stdout, proc.stderr, notices)


def notes(notices: list[dict[str, object]]) -> list[tuple[object, object, object]]:
    """(note, src, dst) of each notice, sorted."""
    return sorted((n["note"], n["src"], n["dst"]) for n in notices)


def chunk(i: int, size: int = 100) -> bytes:
    """File-like data: each chunk differs from the previous one in (nearly) every byte."""
    out = b""
    while len(out) < size:
        out += hashlib.sha256(f"{i}/{len(out)}".encode()).digest()
    return out[:size]


def exfil_packets(src: str = EXFIL_SRC, dst: str = EXFIL_DST, count: int = 20, size: int = 100,
                  start: float = 1000.0, bad_checksum: bool = False) -> list[tuple[float, bytes]]:
    """`count` echo requests with changing payloads, each echoed back: DataExfil + AsymPayloadFlow."""
    make = craft.icmp6 if ":" in src else craft.icmp4
    request, reply = (craft.ECHO_REQUEST6, craft.ECHO_REPLY6) if ":" in src else (craft.ECHO_REQUEST,
                                                                                 craft.ECHO_REPLY)
    out = []
    for i in range(count):
        payload = chunk(i, size)
        out.append((start + i * 0.1, make(src, dst, request, 0, 9, i, payload, bad_checksum=bad_checksum)))
        out.append((start + i * 0.1 + 0.01, make(dst, src, reply, 0, 9, i, payload, bad_checksum=bad_checksum)))
    return out


def write_capture(tmp_path: Path, packets: list[tuple[float, bytes]], frame: Callable[[bytes], bytes] = craft.ether,
                  linktype: int = craft.LINKTYPE_ETHERNET, name: str = "in.pcap", pcapng: bool = False) -> Path:
    """`packets` (timestamped IP packets) framed by `frame`, as tmp_path/name (pcap, or pcapng)."""
    path = tmp_path / name
    frames = [(ts, frame(ip)) for ts, ip in packets]
    (craft.write_pcapng if pcapng else craft.write_pcap)(path, frames, linktype)
    return path
