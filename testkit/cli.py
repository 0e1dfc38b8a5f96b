"""Running the sensor's command line, and the small crafted exfiltration captures the replay tests give it."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
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
    return CliResult(proc.returncode, proc.stdout, proc.stderr, read_notices(log_dir))


def run_cli_here(*args: str | Path, log_dir: Path | None = None) -> CliResult:
    """`icmpsensor ARGS` as run_cli runs it, but in this process (icmpsensor.cli.main, its exit code, what it wrote
    on sys.stdout and sys.stderr), which saves a Python start with the packet stack's imports (~0.2 s): for the
    tests of what the sensor makes of its input. Exit codes of a real process, signals and a real process's
    stdout and stderr stay run_cli's. Paths must be absolute (run_cli runs in the checkout); `--workers N`
    forks this process, as a replay forks the sensor's."""
    from icmpsensor import cli

    argv = [*map(str, args)]
    if log_dir is not None:
        argv += ["--log-dir", str(log_dir)]
    out, err = io.StringIO(), io.StringIO()
    with _as_a_fresh_process(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return CliResult(code, out.getvalue(), err.getvalue(), read_notices(log_dir))


@contextlib.contextmanager
def _as_a_fresh_process() -> Iterator[None]:
    """What run_cli's process has and cli.main changes, for the length of a run here: TZ=UTC, and afterwards
    SIGPIPE's disposition and the garbage collector's thresholds (tune_gc) as they were."""
    tz = os.environ.get("TZ")
    sigpipe = signal.getsignal(signal.SIGPIPE)
    thresholds = gc.get_threshold()
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        signal.signal(signal.SIGPIPE, sigpipe)
        if tz is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = tz
        time.tzset()


def read_notices(log_dir: Path | None) -> list[dict[str, object]]:
    """The notices of log_dir/notice.log (JSON lines); none when there is no such file."""
    if log_dir is None or not (log_dir / "notice.log").exists():
        return []
    return [json.loads(line) for line in (log_dir / "notice.log").read_text().splitlines()]


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
