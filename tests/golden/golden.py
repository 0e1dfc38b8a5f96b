"""Golden digests: what the sensor reports on every capture the tests build, in all four run modes.

Written before the package was restructured (issue 10), so that the move can be shown to change no
notice and no counter. Three steps:

    python tests/golden/golden.py collect DIR [PYTEST ARGS...]   # every capture the tests build -> DIR
    python tests/golden/golden.py digest DIR OUT.json [--live]    # run the sensor on them, write digests
    python tests/golden/golden.py check DIR GOLDEN.json [--live]  # the same, compared with GOLDEN.json

`collect` runs pytest with $ICMPSENSOR_GOLDEN_COLLECT=DIR (tests/conftest.py then copies every capture
file left under pytest's temporary directory into DIR, named by its SHA-256), and writes every case of
the labelled corpus (benign and exfiltration packet lists) as a capture of its own. A capture is
identified by its SHA-256, so a check also shows that the builders still build the same bytes.

Run modes, each with the default configuration and with `detection.profile: original`:

* replay, one process (`-r FILE`) and two workers (`-r FILE --workers 2`): per capture, the exit code,
  the summary line (decode and detect counters), and every notice (all fields but the random `uid`;
  evidence as the SHA-256 of the files written);
* live, one process and `capture.workers: 2` (`--live`, root): one sensor per mode on one end of a veth
  pair between two network namespaces, every Ethernet capture of DIR up to 1 MB sent onto the other end
  with `tcpreplay --topspeed`, one after the other, then SIGTERM: the notices (their counts and byte
  totals; times are the wire's) and the final stats record's counters.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CONFIGS = {"default": "", "original": "detection:\n  profile: original\n"}
LIVE_MAX_BYTES = 1 << 20
# the tiers that build capture files without root: unit and replay (tests/conftest.py marks each by folder)
NON_LIVE = ["-m", "not live and not system"]


# --------------------------------------------------------------------------- collect


def collect(directory: Path, pytest_args: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    env = {"HYPOTHESIS_PROFILE": "ci", **os.environ, "ICMPSENSOR_GOLDEN_COLLECT": str(directory)}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *(pytest_args or NON_LIVE)]
    subprocess.run(argv, cwd=REPO, env=env, check=False, timeout=1800)
    write_corpus(directory)
    for seed in sorted((REPO.parent / "shared" / "seed").glob("*.pcap")):
        (directory / f"{_sha(seed)}.pcap").write_bytes(seed.read_bytes())
    print(f"{len(list(directory.iterdir()))} captures in {directory}")


def _corpus_modules() -> tuple[object, object, object]:
    """The labelled corpus and the packet record, wherever the layout of the day keeps them."""
    sys.path.insert(0, str(REPO))
    for benign, exfil, packet in (("testkit.benign_corpus", "testkit.exfil_corpus", "icmpsensor.decode.packet"),
                                  ("tests.benign_corpus", "tests.exfil_corpus", "icmpsensor.decode.packet"),
                                  ("tests.benign_corpus", "tests.exfil_corpus", "icmpsensor.packet")):
        with contextlib.suppress(ImportError):
            return importlib.import_module(benign), importlib.import_module(exfil), importlib.import_module(packet)
    raise SystemExit("golden: cannot find the labelled corpus")


def write_corpus(directory: Path) -> None:
    """Every corpus case (packet lists) as an Ethernet capture, packets encoded with dpkt."""
    import dpkt

    benign, exfil, _ = _corpus_modules()
    builders = [*benign.BENIGN_CASES.values(), *exfil.EXFIL_CASES.values()]
    for build in builders:
        packets = build()
        path = directory / "corpus.tmp"
        with path.open("wb") as out:
            writer = dpkt.pcap.Writer(out, linktype=dpkt.pcap.DLT_EN10MB)
            for pkt in packets:
                writer.writepkt(_ether(pkt), ts=pkt.ts)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        path.rename(directory / f"{digest}.pcap")


def _ether(pkt: object) -> bytes:
    import dpkt

    p: Any = pkt  # an IcmpPacket
    body = p.ident.to_bytes(2, "big") + p.seq.to_bytes(2, "big") + p.payload if p.ident >= 0 else p.payload
    if p.ipv6:
        icmp = dpkt.icmp6.ICMP6(type=p.icmp_type, code=p.icmp_code)
        icmp.data = body
        ip = dpkt.ip6.IP6(src=p.src, dst=p.dst, nxt=58, hlim=64)
        ip.data = icmp
        ip.plen = len(bytes(icmp))
        icmp.sum = 0
        raw = bytes(ip)
        ethertype = dpkt.ethernet.ETH_TYPE_IP6
    else:
        icmp = dpkt.icmp.ICMP(type=p.icmp_type, code=p.icmp_code)
        icmp.data = body
        ip = dpkt.ip.IP(src=p.src, dst=p.dst, p=1, ttl=64, data=icmp)
        ip.len = 20 + len(bytes(icmp))
        raw = bytes(ip)
        ethertype = dpkt.ethernet.ETH_TYPE_IP
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02\0\0\0\0\x01", dst=b"\x02\0\0\0\0\x02", type=ethertype,
                                        data=raw))


# --------------------------------------------------------------------------- replay


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"


def _notice_record(notice: dict[str, object]) -> dict[str, object]:
    record = {k: v for k, v in notice.items() if k != "uid"}
    evidence = notice.get("evidence")
    if isinstance(evidence, str):
        pcap = Path(evidence)
        record["evidence"] = [_sha(pcap), _sha(pcap.with_suffix(".bin"))]
    return record


def replay_record(capture: Path, config: str, workers: int, work: Path) -> dict[str, object]:
    logs = work / "logs"
    logs.mkdir(parents=True)
    argv = [sys.executable, "-m", "icmpsensor", "-r", str(capture), "--log-dir", str(logs), "--workers", str(workers)]
    if config:
        (work / "c.yaml").write_text(config)
        argv += ["-c", str(work / "c.yaml")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=work,
                          env={**os.environ, "TZ": "UTC"})
    notice_log = logs / "notice.log"
    lines = notice_log.read_text().splitlines() if notice_log.exists() else []
    return {
        "exit": proc.returncode,
        "stderr": proc.stderr.replace(str(logs), "LOGS").replace(str(capture), "CAPTURE"),
        "notices": [_notice_record(json.loads(line)) for line in lines],
    }


def _digest(record: object) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def replay_digests(directory: Path, records_dir: Path) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    captures = sorted(p for p in directory.iterdir() if p.suffix in (".pcap", ".pcapng"))
    for number, capture in enumerate(captures, 1):
        entry: dict[str, str] = {}
        for name, config in CONFIGS.items():
            for workers in (1, 2):
                mode = f"replay-{workers}/{name}"
                with tempfile.TemporaryDirectory() as tmp:
                    record = replay_record(capture, config, workers, Path(tmp))
                entry[mode] = _digest(record)
                (records_dir / f"{capture.stem}.{mode.replace('/', '.')}.json").write_text(
                    json.dumps(record, indent=1, sort_keys=True))
        out[capture.name] = entry
        print(f"[{number}/{len(captures)}] {capture.name}", file=sys.stderr)
    return out


# --------------------------------------------------------------------------- live


SENSOR_NS, PEER_NS, SENSOR_IF, PEER_IF = "icmgold-s", "icmgold-p", "icmgs0", "icmgp0"


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=30)


def _lab_down() -> None:
    for ns in (SENSOR_NS, PEER_NS):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def _lab_up() -> None:
    _lab_down()
    _ip("netns", "add", SENSOR_NS)
    _ip("netns", "add", PEER_NS)
    _ip("link", "add", SENSOR_IF, "netns", SENSOR_NS, "mtu", "65535", "type", "veth", "peer", "name", PEER_IF,
        "netns", PEER_NS, "mtu", "65535")
    for ns, ifname in ((SENSOR_NS, SENSOR_IF), (PEER_NS, PEER_IF)):
        # no addresses and no IPv6 on the lab's ends: nothing but the replayed frames crosses the veth
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1"],
                       capture_output=True, timeout=30)
        _ip("-n", ns, "link", "set", ifname, "up")


def _linktype(path: Path) -> int:
    head = path.read_bytes()[:24]
    if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        return int.from_bytes(head[20:24], "little")
    if head[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        return int.from_bytes(head[20:24], "big")
    return -1  # pcapng: left out of the live run (tcpreplay reads it, but its link type varies per block)


def live_captures(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir()
                  if p.suffix == ".pcap" and _linktype(p) == 1 and p.stat().st_size <= LIVE_MAX_BYTES)


_TIMES = re.compile(r"(Start time|End time|Duration|Time): [^,]*(, |$)")


def _live_notice(notice: dict[str, object]) -> list[object]:
    sub = _TIMES.sub("", str(notice["sub"]))
    return [notice["note"], notice["src"], notice["dst"], notice["n"], sub]


def live_record(captures: list[Path], workers: int, work: Path) -> dict[str, object]:
    logs = work / "logs"
    logs.mkdir(parents=True)
    config = work / "c.yaml"
    config.write_text(f"capture:\n  workers: {workers}\n  buffer_size: 268435456\n  queue_batches: 100000\n"
                      "journald:\n  enabled: false\nstats:\n  interval: 1\n")
    argv = ["ip", "netns", "exec", SENSOR_NS, sys.executable, "-m", "icmpsensor", "-i", SENSOR_IF,
            "-c", str(config), "--log-dir", str(logs)]
    sensor = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              cwd=work, env={**os.environ, "TZ": "UTC"})
    try:
        if not _wait(lambda: _stats(logs) is not None, 30):
            raise SystemExit("golden: the live sensor did not start")
        sent = 0
        for capture in captures:
            out = subprocess.run(["ip", "netns", "exec", PEER_NS, "tcpreplay", "-q", "--topspeed", "-i", PEER_IF,
                                  str(capture)], capture_output=True, text=True, timeout=300)
            match = re.search(r"Successful packets:\s+(\d+)", out.stdout + out.stderr)
            sent += int(match.group(1)) if match else 0
        _wait(lambda: (_stats(logs) or {}).get("packets_read", -1) >= sent, 120)
        time.sleep(2.5)  # a last stats interval: everything read is also processed
    finally:
        sensor.send_signal(signal.SIGTERM)
        try:
            _, err = sensor.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            sensor.kill()
            _, err = sensor.communicate()
    final = _stats(logs) or {}
    keep = ("packets_read", "kernel_dropped", "queue_dropped", "decode", "flows", "pending_requests",
            "evictions", "notices", "notice_write_errors", "notices_lost", "detect")
    notice_log = logs / "notice.log"
    notices = [json.loads(line) for line in notice_log.read_text().splitlines()] if notice_log.exists() else []
    return {
        "exit": sensor.returncode,
        "sent": sent,
        "stats": {k: final.get(k) for k in keep},
        "notices": sorted(_live_notice(n) for n in notices),
        "stderr": "" if sensor.returncode == 0 else err[-2000:],
    }


def _stats(logs: Path) -> dict[str, object] | None:
    path = logs / "stats.log"
    with contextlib.suppress(OSError, ValueError, IndexError):
        return json.loads(path.read_text().splitlines()[-1])  # type: ignore[no-any-return]
    return None


def _wait(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return bool(condition())  # type: ignore[operator]


def live_digests(directory: Path, records_dir: Path) -> dict[str, str]:
    captures = live_captures(directory)
    out: dict[str, str] = {"captures": _digest([c.name for c in captures])}
    _lab_up()
    try:
        for workers in (1, 2):
            with tempfile.TemporaryDirectory() as tmp:
                record = live_record(captures, workers, Path(tmp))
            out[f"live-{workers}"] = _digest(record)
            (records_dir / f"live-{workers}.json").write_text(json.dumps(record, indent=1, sort_keys=True))
            print(f"live, {workers} worker(s): exit {record['exit']}, {len(record['notices'])} notices, "
                  f"{record['sent']} frames sent", file=sys.stderr)
    finally:
        _lab_down()
    return out


# --------------------------------------------------------------------------- main


def compute(directory: Path, live: bool, records_dir: Path) -> dict[str, object]:
    records_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, object] = {"replay": replay_digests(directory, records_dir)}
    if live:
        result["live"] = live_digests(directory, records_dir)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect")
    c.add_argument("directory", type=Path)
    c.add_argument("pytest_args", nargs=argparse.REMAINDER)
    for name in ("digest", "check"):
        d = sub.add_parser(name)
        d.add_argument("directory", type=Path)
        d.add_argument("golden", type=Path)
        d.add_argument("--live", action="store_true")
        d.add_argument("--records", type=Path, default=Path(tempfile.gettempdir()) / "icmpsensor-golden-records")
    args = parser.parse_args()
    if args.command == "collect":
        collect(args.directory, args.pytest_args)
        return 0
    result = compute(args.directory, args.live, args.records)
    if args.command == "digest":
        args.golden.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        return 0
    golden = json.loads(args.golden.read_text())
    problems = []
    for capture, modes in golden["replay"].items():
        now = result["replay"].get(capture)  # type: ignore[union-attr]
        if now is None:
            problems.append(f"{capture}: not built any more")
            continue
        problems += [f"{capture} {mode}: digest differs" for mode, digest in modes.items() if now.get(mode) != digest]
    if args.live:
        problems += [f"{key}: digest differs" for key, digest in golden.get("live", {}).items()
                     if result["live"].get(key) != digest]  # type: ignore[union-attr]
    for problem in problems:
        print(problem)
    modes = sum(len(m) for m in golden["replay"].values()) + (len(golden.get("live", {})) if args.live else 0)
    print(f"golden: {modes - len(problems)}/{modes} digests equal; records in {args.records}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
