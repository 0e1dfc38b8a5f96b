"""Throughput on a large synthetic capture and on adversarial ones: icmpsensor against libpcap, dpkt, tshark and scapy.

    .venv/bin/python -m bench.throughput [--packets N] [--keep DIR] [--repeat R] [--stages S,...] [--markdown]

Generates (testkit/synthmix.py) a deterministic capture of N ICMP frames (default 1,000,000: an hour
of benign pings of every common kind, floods, errors, IPv6, VLAN, fragments and several
exfiltration flows), or reuses the one already generated with the same parameters (the file
name carries a hash of the parameters and of the generator's sources) under --keep DIR
(default /tmp/icmpsensor-bench). Then runs each stage in a fresh subprocess, R times (best run
kept: on a small, noisy machine the fastest run is the least disturbed), and prints packets/s,
the ratio to both ceilings and the stage process's peak RSS (VmHWM):

  ceiling-raw libpcap (pcapy-ng next_batch) batches read, their frames counted from each batch's
              metadata (no Python object per frame): the raw next_batch ceiling
  ceiling     libpcap (pcapy-ng next_batch) reading every frame into (timestamp, bytes) pairs: the
              materialised ceiling
  icmpsensor  the whole sensor (Pipeline + replay_pipeline, standard profile, notices and evidence
              to a temporary directory); also: notices written, and whether every ground-truth
              exfiltration pair was reported and no benign pair was
  icmpsensor-py  the same with ICMPSENSOR_PURE_PYTHON=1: batches decoded by the Python struct path
              instead of the C extension icmpsensor.decode._fastdecode, and the Python tool tracker
              instead of icmpsensor.detect._fasttools (what the C accelerators gain)
  icmpsensor-2w  the same through replay_files_parallel on 2 worker processes (each decodes and
              detects the host pairs that hash to it; the main process merges the notices); its
              peak RSS is the stage process's plus each worker's own (VmHWM), summed
  dpkt        the ceiling plus dpkt Ethernet -> IP/IP6 -> ICMP objects for every frame
  tshark      tshark -T fields (addresses, ICMP type/code/id/seq) over the whole file; its
              peak RSS is tshark's own (skipped when tshark is not installed)
  scapy       scapy PcapReader dissecting the first --scapy-sample frames (default 20,000);
              skipped when scapy is not importable (pip install -e '.[bench]')

Beside the mix, in the same run, the adversarial stages (issue 13), each on a capture of its own
(testkit/synthmix.py ADVERSARIAL, cached under --keep as the mix is) with both ceilings measured
on that capture, and icmpsensor on it (default configuration: full detection, evidence on):

  storm           notice storm: one echo request with 500 random bytes from each of --storm-flows
                  (20,000) spoofed sources to one target: as many one-packet alerted flows
  storm-v6        the notice storm over IPv6: ICMPv6 echo requests from --storm-flows spoofed IPv6 sources
                  (notice text, aggregation and evidence handle 16-byte addresses)
  storm-pairs     the notice storm with a spoofed destination per flow too: no host repeats, so only the
                  aggregation's quota per note folds it
  novel-flood     --novel-flood-packets (200,000) echo requests with 16-64 random bytes each, four
                  from each spoofed source, to one target
  tiny-fragments  about --tiny-fragment-packets (240,000) frames: echo requests from spoofed sources
                  cut into 8-byte IPv4 fragments, every fourth datagram missing its last fragment
  headless-fragments about --headless-fragment-packets (120,000) frames: non-first fragments from spoofed
                  sources (datagrams that never complete: each judged headless when it is evicted), and
                  through them an exfiltration whose requests' data comes after 4,200 of them (evicted first)
  jumbo-fragments about --jumbo-fragment-packets (120,000) frames: echo requests with 60,000 random bytes (ping
                  -s 60000) in MTU-sized fragments, 2,000 a second (about 1 Gbit/s) from 64 sources (a quarter
                  IPv6), each to its own target: reassembly and checksums of big datagrams
  crafted-messages about --crafted-packets (120,000) frames: datagrams of 60,000 bytes as the jumbo flood's,
                  their messages crafted for the most work per byte (node information replies of one-letter
                  names, MLDv2 reports of thousands of sources, router advertisements of 8-byte options,
                  unreachables of thousands of extension objects, echo requests of one protobuf field over
                  and over and of cmd.exe prompt lines: testkit/synthmix.py CRAFTED_KINDS)
  novel-mix       the mix (--novel-mix-packets, default --packets) with a quarter of its frames
                  file-like chunks (CSV records in echo requests, echoed) from hundreds of host pairs

Each sensor row gives the notices written to notice.log and, from the pipeline's stats, the
notices folded into aggregates (notice/aggregate.py); an adversarial row also gives its rate as
a share of the mix's (x mix). Compare the ratios, not the absolute numbers.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from icmpsensor.runmode.replay import ReplayResult

from testkit import synthmix
from testkit.paths import REPO

DEFAULT_DIR = Path(tempfile.gettempdir()) / "icmpsensor-bench"
MIX_STAGES = ("ceiling-raw", "ceiling", "icmpsensor", "icmpsensor-py", "icmpsensor-2w", "dpkt", "tshark", "scapy")
CEILINGS = ("ceiling-raw", "ceiling")
# adversarial stage -> the capture kind it runs on (testkit/synthmix.py ADVERSARIAL); each runs CEILINGS and
# icmpsensor on its capture
ADVERSARIAL = {"storm": "storm", "storm-v6": "storm_v6", "storm-pairs": "storm_pairs", "novel-flood": "novel_flood",
               "tiny-fragments": "tiny_fragments", "headless-fragments": "headless_fragments",
               "jumbo-fragments": "jumbo_fragments",
               "crafted-messages": "crafted_messages", "novel-mix": "novel_mix"}
STAGES = MIX_STAGES + tuple(ADVERSARIAL)
SENSOR_STAGES = ("icmpsensor", "icmpsensor-py", "icmpsensor-2w")
LABELS = {
    "ceiling-raw": "libpcap next_batch, raw (ceiling)",
    "ceiling": "libpcap read, materialised (ceiling)",
    "icmpsensor": "icmpsensor end to end",
    "icmpsensor-py": "icmpsensor end to end, no C accelerator",
    "icmpsensor-2w": "icmpsensor end to end, 2 workers",
    "dpkt": "dpkt decode only",
    "tshark": "tshark -T fields",
    "scapy": "scapy parse",
}
CAPTURE_LABELS = {"mix": "mix", "storm": "notice storm", "storm-v6": "notice storm, IPv6",
                  "storm-pairs": "notice storm, no host repeated",
                  "novel-flood": "novel-payload flood", "tiny-fragments": "tiny-fragment flood",
                  "headless-fragments": "headless-fragment flood",
                  "jumbo-fragments": "jumbo-fragment flood", "crafted-messages": "crafted messages",
                  "novel-mix": "novel-heavy mix"}
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


def ensure_capture(packets: int, directory: Path, seed: int = 1, flood_sources: int = 0,
                   kind: str = "mix") -> tuple[Path, dict, float]:
    """(capture path, ground truth, generation seconds; 0 when reused). `kind`: "mix" or one of
    synthmix.ADVERSARIAL (`packets` frames)."""
    params: dict[str, object] = {"packets": packets, "seed": seed, "flood_sources": flood_sources}
    if kind != "mix":
        params["kind"] = kind
    directory.mkdir(parents=True, exist_ok=True)
    stem = kind.replace("_", "-") + str(packets) if kind != "mix" else \
        f"flood{flood_sources}" if flood_sources else f"synth{packets}"
    path = directory / f"{stem}-{capture_key(params)}.pcap"
    truth_file = synthmix.truth_path(path)
    if path.is_file() and truth_file.is_file():
        return path, json.loads(truth_file.read_text()), 0.0
    began = time.perf_counter()
    partial = path.with_name(path.name + ".part")
    truth = synthmix.generate(partial, packets=packets, seed=seed, flood_sources=flood_sources, kind=kind)
    synthmix.truth_path(partial).replace(truth_file)
    partial.replace(path)
    return path, truth, time.perf_counter() - began


# -- stages (each returns {"packets": n, "seconds": s, ...}; run in a fresh process by main) ----------


def stage_ceiling_raw(path: str) -> dict[str, object]:
    """The raw next_batch ceiling: libpcap's batches, each batch's frames counted from its metadata's length
    (no Python object per frame)."""
    import pcapy

    from icmpsensor.source.batch import packet_count
    from icmpsensor.source.pcapfile import batches

    began = time.perf_counter()
    n = 0
    for _buf, meta in batches(pcapy.open_offline(path)):
        n += packet_count(meta)
    return {"packets": n, "seconds": time.perf_counter() - began}


def stage_ceiling(path: str) -> dict[str, object]:
    """The materialised ceiling: every frame as a (timestamp, bytes) pair."""
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
    detect = stats.get("detect")
    out: dict[str, object] = {
        "packets": result.frames,
        "seconds": seconds,
        "problems": result.problems,
        "notices": len(notices),
        # raised by the detector; folded into aggregates and aggregates written (notice/aggregate.py), when the
        # pipeline reports them
        "notices_raised": detect.get("notices") if isinstance(detect, dict) else None,
        "notices_folded": stats.get("notices_folded"),
        "notices_aggregated": stats.get("notices_aggregated"),
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
    if stage == "ceiling-raw":
        return stage_ceiling_raw(path)
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


@dataclass
class CaptureSet:
    """One capture and the stages run on it: the mix (`name` "mix") or an adversarial stage's own capture."""

    name: str
    path: Path
    truth: dict
    stages: list[str]
    results: dict[str, dict | None] = field(default_factory=dict)

    @property
    def truth_file(self) -> Path:
        return synthmix.truth_path(self.path)


HEADER = ("capture", "stage", "packets", "packets/s", "x raw next_batch", "x materialised", "x mix", "peak RSS",
          "notices written / folded")


def _count(value: object) -> str:
    return "-" if value is None else f"{value:,}"


def table_rows(sets: list[CaptureSet], sample: int = 0) -> list[tuple[str, ...]]:
    """One row per stage run: packets/s, its ratio to both ceilings measured on the same capture, to the mix's
    icmpsensor rate (adversarial stages), peak RSS, and for the sensor the notices written and folded."""
    mix_rate = next((cs.results["icmpsensor"]["pps"] for cs in sets  # type: ignore[index]
                     if cs.name == "mix" and cs.results.get("icmpsensor")), None)
    rows = []
    for cs in sets:
        raw = cs.results["ceiling-raw"]["pps"]  # type: ignore[index]
        materialised = cs.results["ceiling"]["pps"]  # type: ignore[index]
        for stage in cs.stages:
            r = cs.results[stage]
            label = LABELS[stage]
            if r is None:
                rows.append((CAPTURE_LABELS[cs.name], label, "-", "not installed", "-", "-", "-", "-", "-"))
                continue
            if stage == "scapy":
                label += f" (first {r['packets']:,})"
            share = f"{r['pps'] / mix_rate:.2f}" if cs.name != "mix" and stage == "icmpsensor" and mix_rate else "-"
            notices = f"{r['notices']:,} / {_count(r.get('notices_folded'))}" if stage in SENSOR_STAGES else "-"
            rows.append((CAPTURE_LABELS[cs.name], label, f"{r['packets']:,}", f"{r['pps']:,.0f}",
                         f"{r['pps'] / raw:.3f}", f"{r['pps'] / materialised:.3f}", share, f"{r['rss_mb']:.1f} MB",
                         notices))
    return rows


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [*rows, HEADER]) for i in range(len(HEADER))]
    for row in (HEADER, *rows):
        cells = zip(row, widths, strict=True)
        print("  ".join(f"{c:<{w}}" if i < 2 else f"{c:>{w}}" for i, (c, w) in enumerate(cells)))


def describe(cs: CaptureSet, generated: float) -> None:
    truth = cs.truth
    how = f"generated in {generated:.1f} s" if generated else "reused"
    print(f"{CAPTURE_LABELS[cs.name]} capture: {cs.path} ({truth['packets']:,} packets, "
          f"{truth['bytes'] / 1e6:.0f} MB, {how})")
    print(f"  {truth['host_pairs']:,} host pairs, IPv6 {truth['ipv6'] / truth['packets']:.1%}, "
          f"VLAN {truth['vlan'] / truth['packets']:.1%}, {truth['fragments']:,} fragments, "
          f"{len(truth['exfil'])} exfiltration flows; "
          + ", ".join(f"{k} {v:,}" for k, v in truth["by_category"].items()))


def report_sensor(name: str, r: dict | None) -> None:
    if r is None:
        return
    line = f"{name}: {r['notices']:,} notices written"
    if r.get("notices_raised") is not None:
        line += f" (raised {r['notices_raised']:,}, folded {_count(r.get('notices_folded'))}, " \
                f"aggregates {_count(r.get('notices_aggregated'))})"
    if "exfil_pairs" in r:
        line += (f"; exfiltration pairs reported {r['exfil_reported']}/{r['exfil_pairs']}"
                 + (f" (missed: {', '.join(r['exfil_missed'][:10])})" if r["exfil_missed"] else "")
                 + f"; notices naming a benign pair: {len(r['false_positives'])}")
    line += f"; decode errors {r['decode_errors']}, skipped {r['decode_skipped']}"
    print(line)
    for fp in r.get("false_positives", [])[:20]:
        print(f"  false positive: {fp}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=1_000_000, help="frames in the synthetic capture")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--flood-sources", type=int, default=0, metavar="N",
                        help="instead of the mix: an echo flood from N spoofed sources (and its replies) with one "
                             "exfiltration flow through it (testkit/synthmix.py build_flood_plan)")
    parser.add_argument("--storm-flows", type=int, default=20_000, metavar="N",
                        help="storm stage: one-packet alerted flows (default 20,000)")
    parser.add_argument("--novel-flood-packets", type=int, default=200_000, metavar="N",
                        help="novel-flood stage: frames (default 200,000)")
    parser.add_argument("--tiny-fragment-packets", type=int, default=240_000, metavar="N",
                        help="tiny-fragments stage: frames, about (default 240,000)")
    parser.add_argument("--headless-fragment-packets", type=int, default=120_000, metavar="N",
                        help="headless-fragments stage: frames, about (default 120,000)")
    parser.add_argument("--jumbo-fragment-packets", type=int, default=120_000, metavar="N",
                        help="jumbo-fragments stage: frames, about (default 120,000: ~180 MB)")
    parser.add_argument("--crafted-packets", type=int, default=120_000, metavar="N",
                        help="crafted-messages stage: frames, about (default 120,000: ~180 MB)")
    parser.add_argument("--novel-mix-packets", type=int, default=0, metavar="N",
                        help="novel-mix stage: frames (default: --packets)")
    parser.add_argument("--keep", type=Path, default=DEFAULT_DIR, metavar="DIR",
                        help=f"where the captures are generated and reused (default {DEFAULT_DIR})")
    parser.add_argument("--repeat", type=int, default=3, help="runs per stage; the best is reported")
    parser.add_argument("--scapy-sample", type=int, default=20_000, metavar="N")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help="comma-separated subset of " + ",".join(STAGES) + " (both ceilings always run on "
                             "each capture used)")
    parser.add_argument("--markdown", action="store_true", help="also print a README-ready table")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every result to FILE")
    parser.add_argument("--stage", choices=MIX_STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--capture", help=argparse.SUPPRESS)
    parser.add_argument("--truth", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        return _stage_main(args)

    wanted = [s for s in args.stages.split(",") if s]
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        parser.error(f"--stages: unknown {', '.join(unknown)}")
    sets: list[CaptureSet] = []
    generated: list[float] = []
    mix_stages = [s for s in MIX_STAGES if s in wanted or s in CEILINGS]
    if any(s in wanted for s in MIX_STAGES):
        path, truth, seconds = ensure_capture(args.packets, args.keep, args.seed, args.flood_sources)
        sets.append(CaptureSet("mix", path, truth, mix_stages))
        generated.append(seconds)
    sizes = {"storm": args.storm_flows, "storm-v6": args.storm_flows, "storm-pairs": args.storm_flows,
             "novel-flood": args.novel_flood_packets,
             "tiny-fragments": args.tiny_fragment_packets, "headless-fragments": args.headless_fragment_packets,
             "jumbo-fragments": args.jumbo_fragment_packets,
             "crafted-messages": args.crafted_packets,
             "novel-mix": args.novel_mix_packets or args.packets}
    for stage, kind in ADVERSARIAL.items():
        if stage in wanted:
            path, truth, seconds = ensure_capture(sizes[stage], args.keep, args.seed, kind=kind)
            sets.append(CaptureSet(stage, path, truth, [*CEILINGS, "icmpsensor"]))
            generated.append(seconds)
    for cs, seconds in zip(sets, generated, strict=True):
        describe(cs, seconds)
    info = machine()
    print("machine: " + ", ".join(info.values()))
    for cs in sets:
        # the ground truth scores the sensor where every exfiltration pair must be named (not in a storm, whose
        # notices are folded by design)
        truth_file = cs.truth_file if cs.name in ("mix", "novel-mix", "jumbo-fragments") else None
        for stage in cs.stages:
            runs = [run_stage(stage, cs.path, truth_file, args.scapy_sample) for _ in range(args.repeat)]
            cs.results[stage] = None if runs[0] is None else best_of(runs)  # type: ignore[arg-type]
    print(f"best of {args.repeat} runs per stage, each in a fresh process; x raw next_batch and x materialised: "
          "the ratio to the two ceilings measured on the same capture")
    rows = table_rows(sets, args.scapy_sample)
    print_table(rows)
    for cs in sets:
        label = "icmpsensor" if cs.name == "mix" else f"{cs.name} icmpsensor"
        report_sensor(label, cs.results.get("icmpsensor"))
    mix = sets[0].results if sets and sets[0].name == "mix" else {}
    pure = mix.get("icmpsensor-py")
    if pure is not None:
        print(f"icmpsensor-py: C decoder {'on (wrong!)' if pure['c_decoder'] else 'off'}; "
              f"{pure['notices']} notices; exfiltration pairs reported "
              f"{pure['exfil_reported']}/{pure['exfil_pairs']}; notices naming a benign pair: "
              f"{len(pure['false_positives'])}")
    parallel = mix.get("icmpsensor-2w")
    if parallel is not None:
        print(f"icmpsensor-2w: {parallel['notices']} notices; exfiltration pairs reported "
              f"{parallel['exfil_reported']}/{parallel['exfil_pairs']}; notices naming a benign pair: "
              f"{len(parallel['false_positives'])}; frames decoded per worker: "
              + "/".join(f"{n:,}" for n in parallel["shares"]))
    for stage in ("tshark", "scapy"):
        if mix.get(stage) is not None:
            print(f"{stage}: {mix[stage]['version']}")  # type: ignore[index]
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "repeat": args.repeat, "captures": [
            {"name": cs.name, "path": str(cs.path), "packets": cs.truth["packets"], "results": cs.results}
            for cs in sets]}, indent=1, default=str) + "\n")
    if args.markdown:
        print()
        print("| " + " | ".join(h.replace("x ", "\u00d7 ") for h in HEADER) + " |")
        print("|" + "---|" * len(HEADER))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        print()
        print(f"Machine: {info['cpus']}, {info['cpu']}, {info['memory']}, {info['os']}, {info['python']}, "
              f"{info['libs']}. Captures: testkit/synthmix.py ("
              + ", ".join(f"{CAPTURE_LABELS[cs.name]} {cs.truth['packets']:,} frames" for cs in sets)
              + f"), best of {args.repeat}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
