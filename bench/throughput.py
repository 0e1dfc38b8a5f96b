"""Throughput on a large synthetic capture: icmpsensor against libpcap, dpkt, tshark and scapy.

    .venv/bin/python -m bench.throughput [--packets N] [--keep DIR] [--repeat R] [--markdown]

Generates (testkit/synthmix.py) a deterministic capture of N ICMP frames (default 1,000,000: an hour
of benign pings of every common kind, floods, errors, IPv6, VLAN, fragments and several
exfiltration flows), or reuses the one already generated with the same parameters (the file
name carries a hash of the parameters and of the generator's sources) under --keep DIR
(default /tmp/icmpsensor-bench). Then runs each stage in a fresh subprocess, R times (best run
kept: on a small, noisy machine the fastest run is the least disturbed), and prints packets/s,
the ratio to the ceiling and the stage process's peak RSS (VmHWM):

  ceiling     libpcap (pcapy-ng next_batch) reading every frame into (timestamp, bytes) pairs
  icmpsensor  the whole sensor (Pipeline + replay_pipeline, standard profile, notices and evidence
              to a temporary directory); also: notices written, and whether every ground-truth
              exfiltration pair was reported and no benign pair was
  icmpsensor-py  the same with ICMPSENSOR_PURE_PYTHON=1: batches decoded by the Python struct path
              instead of the C extension icmpsensor._fastdecode (what that extension gains)
  icmpsensor-2w  the same through replay_files_parallel on 2 worker processes (each decodes and
              detects the host pairs that hash to it; the main process merges the notices); its
              peak RSS is the stage process's plus each worker's own (VmHWM), summed
  dpkt        the ceiling plus dpkt Ethernet -> IP/IP6 -> ICMP objects for every frame
  tshark      tshark -T fields (addresses, ICMP type/code/id/seq) over the whole file; its
              peak RSS is tshark's own (skipped when tshark is not installed)
  scapy       scapy PcapReader dissecting the first --scapy-sample frames (default 20,000);
              skipped when scapy is not importable (pip install -e '.[bench]')

Compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from icmpsensor.runmode.replay import ReplayResult

from testkit import synthmix
from testkit.paths import REPO

DEFAULT_DIR = Path(tempfile.gettempdir()) / "icmpsensor-bench"
STAGES = ("ceiling", "icmpsensor", "icmpsensor-py", "icmpsensor-2w", "dpkt", "tshark", "scapy")
LABELS = {
    "ceiling": "libpcap read (ceiling)",
    "icmpsensor": "icmpsensor end to end",
    "icmpsensor-py": "icmpsensor end to end, decoder all Python",
    "icmpsensor-2w": "icmpsensor end to end, 2 workers",
    "dpkt": "dpkt decode only",
    "tshark": "tshark -T fields",
    "scapy": "scapy parse",
}
TSHARK_FIELDS = ("frame.number", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "icmp.type", "icmp.code",
                 "icmp.ident", "icmp.seq", "icmpv6.type", "icmpv6.code", "icmpv6.echo.identifier",
                 "icmpv6.echo.sequence_number")
# Sources whose change changes the capture: part of the cache key.
GENERATOR_SOURCES = ("testkit/synthmix.py", "testkit/benign_corpus.py", "testkit/exfil_corpus.py", "testkit/craft.py")


# -- the capture ----------------------------------------------------------------------------------


def capture_key(params: dict[str, object]) -> str:
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for name in GENERATOR_SOURCES:
        digest.update((REPO / name).read_bytes())
    return digest.hexdigest()[:16]


def ensure_capture(packets: int, directory: Path, seed: int = 1, flood_sources: int = 0) -> tuple[Path, dict, float]:
    """(capture path, ground truth, generation seconds; 0 when reused)."""
    params = {"packets": packets, "seed": seed, "flood_sources": flood_sources}
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"flood{flood_sources}" if flood_sources else f"synth{packets}"
    path = directory / f"{stem}-{capture_key(params)}.pcap"
    truth_file = synthmix.truth_path(path)
    if path.is_file() and truth_file.is_file():
        return path, json.loads(truth_file.read_text()), 0.0
    began = time.perf_counter()
    partial = path.with_name(path.name + ".part")
    truth = synthmix.generate(partial, packets=packets, seed=seed, flood_sources=flood_sources)
    synthmix.truth_path(partial).replace(truth_file)
    partial.replace(path)
    return path, truth, time.perf_counter() - began


# -- stages (each returns {"packets": n, "seconds": s, ...}; run in a fresh process by main) ----------


def stage_ceiling(path: str) -> dict[str, object]:
    import pcapy

    from icmpsensor.source.batch import frames_of
    from icmpsensor.source.pcapfile import batches

    began = time.perf_counter()
    n = 0
    for buf, meta in batches(pcapy.open_offline(path)):
        n += len(frames_of(buf, meta))
    return {"packets": n, "seconds": time.perf_counter() - began}


def stage_dpkt(path: str) -> dict[str, object]:
    import dpkt
    import pcapy

    from icmpsensor.source.batch import frames_of
    from icmpsensor.source.pcapfile import batches

    ethernet = dpkt.ethernet.Ethernet
    began = time.perf_counter()
    n = icmp = 0
    for buf, meta in batches(pcapy.open_offline(path)):
        for _ts, frame in frames_of(buf, meta):
            ip = ethernet(frame).data  # dpkt unpacks VLAN tags, IP / IP6 and ICMP / ICMP6 as it goes
            if isinstance(getattr(ip, "data", None), dpkt.icmp.ICMP | dpkt.icmp6.ICMP6):
                icmp += 1
            n += 1
    return {"packets": n, "seconds": time.perf_counter() - began, "icmp": icmp}


def stage_icmpsensor(path: str, truth_file: str | None = None) -> dict[str, object]:
    """The sensor end to end; with the ground truth, which exfiltration pairs it reported and which
    notices name a pair that is not an exfiltration pair (either way round): false positives."""
    from icmpsensor.config.schema import Config
    from icmpsensor.decode.fast import ACCELERATED
    from icmpsensor.runmode.pipeline import Pipeline, tune_gc
    from icmpsensor.runmode.replay import build_sinks, replay_pipeline

    tune_gc()  # as the command line does
    with tempfile.TemporaryDirectory(prefix="icmpsensor-bench-") as log_dir:
        cfg = Config()
        cfg.output.log_dir = log_dir
        pipe = Pipeline(cfg, build_sinks(cfg))
        began = time.perf_counter()
        result = replay_pipeline(pipe, [path])
        seconds = time.perf_counter() - began
        pipe.close()
        notices = read_notices(Path(log_dir) / cfg.output.notice_log)
    out = sensor_result(result, seconds, pipe.stats(), notices, truth_file)
    out["c_decoder"] = ACCELERATED
    return out


def read_notices(notice_log: Path) -> list[dict]:
    return [json.loads(line) for line in notice_log.read_text().splitlines()] if notice_log.exists() else []


def sensor_result(result: ReplayResult, seconds: float, stats: dict[str, object], notices: list[dict],
                  truth_file: str | None) -> dict[str, object]:
    """A sensor stage's row: rate inputs, counters and, with the ground truth, the score."""
    decode = stats["decode"]
    out: dict[str, object] = {
        "packets": result.frames,
        "seconds": seconds,
        "problems": result.problems,
        "notices": len(notices),
        "decode_errors": sum(decode["errors"].values()),  # type: ignore[index, union-attr]
        "decode_skipped": sum(decode["skipped"].values()),  # type: ignore[index, union-attr]
        "icmp": decode["icmp"],  # type: ignore[index]
        "decode": decode,
        # what the notices say, without what differs from run to run (uid, evidence path)
        "notice_digest": hashlib.sha256(json.dumps(
            [{k: v for k, v in n.items() if k not in ("uid", "evidence")} for n in notices],
            sort_keys=True).encode()).hexdigest(),
    }
    if truth_file:
        truth = json.loads(Path(truth_file).read_text())
        out.update(score(notices, truth))
    return out


def stage_icmpsensor_workers(path: str, truth_file: str | None = None, workers: int = 2) -> dict[str, object]:
    """stage_icmpsensor through the parallel replay (`icmpsensor -r --workers N`); `workers_rss_mb` is the
    workers' peak RSS, summed, which the stage's own is added to."""
    from icmpsensor.config.schema import Config
    from icmpsensor.runmode.pipeline import tune_gc
    from icmpsensor.runmode.replay import build_sinks, replay

    tune_gc()  # as stage_icmpsensor; the forked workers inherit it
    with tempfile.TemporaryDirectory(prefix="icmpsensor-bench-") as log_dir:
        cfg = Config()
        cfg.output.log_dir = log_dir
        sinks = build_sinks(cfg)
        began = time.perf_counter()
        result = replay([path], cfg, sinks, workers)
        seconds = time.perf_counter() - began
        for sink in sinks:
            sink.close()
        notices = read_notices(Path(log_dir) / cfg.output.notice_log)
    out = sensor_result(result, seconds, result.stats, notices, truth_file)
    out["shares"] = result.shares
    out["workers_rss_mb"] = sum(result.worker_peak_rss_kb) / 1024
    return out


def score(notices: list[dict], truth: dict) -> dict[str, object]:
    """Ground-truth pairs reported (src -> dst exactly) and notices naming any other pair."""
    pairs = {tuple(p) for p in truth["exfil_pairs"]}
    either_way = {frozenset(p) for p in pairs}
    reported = {(n["src"], n["dst"]) for n in notices} & pairs
    false = [f"{n['note']} {n['src']} -> {n['dst']}: {n['msg']}" for n in notices
             if frozenset((n["src"], n["dst"])) not in either_way]
    return {
        "exfil_pairs": len(pairs),
        "exfil_reported": len(reported),
        "exfil_missed": sorted(" -> ".join(p) for p in pairs - reported),
        "false_positives": false,
    }


def stage_tshark(path: str) -> dict[str, object] | None:
    tshark = shutil.which("tshark")
    if tshark is None:
        return None
    argv = [tshark, "-n", "-r", path, "-T", "fields"]
    for name in TSHARK_FIELDS:
        argv += ["-e", name]
    began = time.perf_counter()
    lines = 0
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        while block := proc.stdout.read(1 << 20):
            lines += block.count(b"\n")
    seconds = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"tshark exited {proc.returncode}")
    version = subprocess.run([tshark, "--version"], capture_output=True, text=True).stdout.split("\n", 1)[0]
    return {"packets": lines, "seconds": seconds, "child_rss": True, "version": version}


def stage_scapy(path: str, sample: int = 20_000) -> dict[str, object] | None:
    try:
        import scapy
        from scapy.all import ICMP, IP, PcapReader  # scapy.all: every layer registered, as users import it
        from scapy.layers.inet6 import IPv6
    except ImportError:
        return None
    began = time.perf_counter()
    n = icmp = 0
    with PcapReader(path) as reader:
        for packet in reader:  # each one dissected: Ether / Dot1Q / IP / ICMP ...
            if ICMP in packet or (IPv6 in packet and IP not in packet):
                icmp += 1
            n += 1
            if n >= sample:
                break
    return {"packets": n, "seconds": time.perf_counter() - began, "icmp": icmp, "version": scapy.VERSION}


def run_stage_here(stage: str, path: str, truth_file: str | None, sample: int) -> dict[str, object] | None:
    if stage == "ceiling":
        return stage_ceiling(path)
    if stage in ("icmpsensor", "icmpsensor-py"):
        return stage_icmpsensor(path, truth_file)
    if stage == "icmpsensor-2w":
        return stage_icmpsensor_workers(path, truth_file, 2)
    if stage == "dpkt":
        return stage_dpkt(path)
    if stage == "tshark":
        return stage_tshark(path)
    if stage == "scapy":
        return stage_scapy(path, sample)
    raise ValueError(f"unknown stage {stage}")


def _peak_rss_mb(children: bool) -> float:
    """Peak RSS of this process (VmHWM: its own address space; ru_maxrss would also count the parent's
    peak, which Linux carries over through fork and exec), or of its largest child (tshark)."""
    from icmpsensor.runmode.stats import peak_rss_kb

    if children:
        return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return peak_rss_kb() / 1024


def run_stage(stage: str, path: Path, truth_file: Path | None, sample: int) -> dict[str, object] | None:
    """One run of a stage in a fresh interpreter; peak RSS is that process's (tshark's for tshark)."""
    argv = [sys.executable, "-m", "bench.throughput", "--stage", stage, "--capture", str(Path(path).resolve()),
            "--scapy-sample", str(sample)]
    if truth_file is not None:
        argv += ["--truth", str(Path(truth_file).resolve())]
    env = dict(os.environ)
    env.pop("ICMPSENSOR_PURE_PYTHON", None)
    if stage == "icmpsensor-py":
        env["ICMPSENSOR_PURE_PYTHON"] = "1"
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=3600, cwd=REPO, env=env)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        raise SystemExit(f"throughput: stage {stage} failed: {' / '.join(tail)}")
    return json.loads(proc.stdout)


def _stage_main(args: argparse.Namespace) -> int:
    result = run_stage_here(args.stage, args.capture, args.truth, args.scapy_sample)
    if result is not None:
        result["rss_mb"] = (_peak_rss_mb(children=bool(result.pop("child_rss", False)))
                            + float(result.pop("workers_rss_mb", 0.0)))  # type: ignore[arg-type]
    print(json.dumps(result))
    return 0


# -- report -----------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
        memory = f"{mem_kb / 1024 / 1024:.1f} GiB RAM"
    except (OSError, StopIteration):
        memory = "RAM unknown"
    from importlib.metadata import version

    return {
        "cpus": f"{os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable)",
        "cpu": model,
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"Python {platform.python_version()}",
        "libs": f"pcapy-ng {version('pcapy-ng')}, dpkt {version('dpkt')}",
    }


def best_of(runs: list[dict]) -> dict:
    best = dict(min(runs, key=lambda r: r["seconds"]))
    best["pps"] = best["packets"] / best["seconds"] if best["seconds"] else 0.0
    best["rss_mb"] = max(r["rss_mb"] for r in runs)
    return best


def table_rows(results: dict[str, dict | None], sample: int) -> list[tuple[str, str, str, str, str]]:
    ceiling = results["ceiling"]["pps"]  # type: ignore[index]
    rows = []
    for stage in STAGES:
        if stage not in results:  # not asked for (--stages)
            continue
        r = results[stage]
        label = LABELS[stage]
        if r is None:
            rows.append((label, "-", "not installed", "-", "-"))
            continue
        if stage == "scapy":
            label += f" (first {r['packets']:,})"
        rows.append((label, f"{r['packets']:,}", f"{r['pps']:,.0f}", f"{r['pps'] / ceiling:.3f}",
                     f"{r['rss_mb']:.1f} MB"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=1_000_000, help="frames in the synthetic capture")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--flood-sources", type=int, default=0, metavar="N",
                        help="instead of the mix: an echo flood from N spoofed sources (and its replies) with one "
                             "exfiltration flow through it (testkit/synthmix.py build_flood_plan)")
    parser.add_argument("--keep", type=Path, default=DEFAULT_DIR, metavar="DIR",
                        help=f"where the capture is generated and reused (default {DEFAULT_DIR})")
    parser.add_argument("--repeat", type=int, default=3, help="runs per stage; the best is reported")
    parser.add_argument("--scapy-sample", type=int, default=20_000, metavar="N")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of " + ",".join(STAGES))
    parser.add_argument("--markdown", action="store_true", help="also print a README-ready table")
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--capture", help=argparse.SUPPRESS)
    parser.add_argument("--truth", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        return _stage_main(args)

    wanted = [s for s in args.stages.split(",") if s]
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        parser.error(f"--stages: unknown {', '.join(unknown)}")
    if "ceiling" not in wanted:
        wanted.insert(0, "ceiling")
    path, truth, generated = ensure_capture(args.packets, args.keep, args.seed, args.flood_sources)
    truth_file = synthmix.truth_path(path)
    how = f"generated in {generated:.1f} s" if generated else "reused"
    print(f"capture: {path} ({truth['packets']:,} packets, {truth['bytes'] / 1e6:.0f} MB, {how})")
    print(f"  {truth['host_pairs']:,} host pairs, IPv6 {truth['ipv6'] / truth['packets']:.1%}, "
          f"VLAN {truth['vlan'] / truth['packets']:.1%}, {truth['fragments']:,} fragments, "
          f"{len(truth['exfil'])} exfiltration flows; "
          + ", ".join(f"{k} {v:,}" for k, v in truth["by_category"].items()))
    info = machine()
    print("machine: " + ", ".join(info.values()))
    results: dict[str, dict | None] = {}
    for stage in STAGES:
        if stage not in wanted:
            continue
        runs = [run_stage(stage, path, truth_file, args.scapy_sample) for _ in range(args.repeat)]
        results[stage] = None if runs[0] is None else best_of(runs)  # type: ignore[arg-type]
    print(f"best of {args.repeat} runs per stage, each in a fresh process")
    rows = table_rows(results, args.scapy_sample)
    widths = [max(len(r[i]) for r in [*rows, ("stage", "packets", "packets/s", "x ceiling", "peak RSS")])
              for i in range(5)]
    header = ("stage", "packets", "packets/s", "x ceiling", "peak RSS")
    for row in (header, *rows):
        print(f"{row[0]:<{widths[0]}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(row[1:], widths[1:], strict=True)))
    sensor = results.get("icmpsensor")
    if sensor is not None:
        print(f"icmpsensor: {sensor['notices']} notices; exfiltration pairs reported "
              f"{sensor['exfil_reported']}/{sensor['exfil_pairs']}"
              + (f" (missed: {', '.join(sensor['exfil_missed'])})" if sensor["exfil_missed"] else "")
              + f"; notices naming a benign pair: {len(sensor['false_positives'])}; "
              f"decode errors {sensor['decode_errors']}, skipped {sensor['decode_skipped']}")
        for line in sensor["false_positives"][:20]:
            print(f"  false positive: {line}")
    pure = results.get("icmpsensor-py")
    if pure is not None:
        print(f"icmpsensor-py: C decoder {'on (wrong!)' if pure['c_decoder'] else 'off'}; "
              f"{pure['notices']} notices; exfiltration pairs reported "
              f"{pure['exfil_reported']}/{pure['exfil_pairs']}; notices naming a benign pair: "
              f"{len(pure['false_positives'])}")
    parallel = results.get("icmpsensor-2w")
    if parallel is not None:
        print(f"icmpsensor-2w: {parallel['notices']} notices; exfiltration pairs reported "
              f"{parallel['exfil_reported']}/{parallel['exfil_pairs']}; notices naming a benign pair: "
              f"{len(parallel['false_positives'])}; frames decoded per worker: "
              + "/".join(f"{n:,}" for n in parallel["shares"]))
    for stage in ("tshark", "scapy"):
        if stage in results and results[stage] is not None:
            print(f"{stage}: {results[stage]['version']}")  # type: ignore[index]
    if args.markdown:
        print()
        print("| stage | packets | packets/s | \u00d7 ceiling | peak RSS |")
        print("|---|---|---|---|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        print()
        print(f"Machine: {info['cpus']}, {info['cpu']}, {info['memory']}, {info['os']}, {info['python']}, "
              f"{info['libs']}. Capture: `python -m bench.synth`, {truth['packets']:,} frames "
              f"({truth['bytes'] / 1e6:.0f} MB), best of {args.repeat}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
