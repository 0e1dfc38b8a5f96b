"""Replay throughput benchmark: packets/s, peak memory, and the ratio to libpcap's read rate.

    .venv/bin/python -m bench.replay_bench [CAPTURE] [--repeat N]

Each stage runs in a fresh subprocess (so peak RSS is its own) REPEAT times; the best
run is reported, because on a small, noisy machine the fastest run is the least
disturbed one. Compare the ratios, not the absolute numbers.

  ceiling     libpcap (pcapy-ng next_batch) reading every frame of the file, nothing else
  dpkt        the ceiling plus a dpkt Ethernet/IP/ICMP parse of every frame
  icmpsensor  the whole sensor: read, decode, reassemble, detect, write notice.log
  icmpsensor-dpkt  the same with the dpkt reference decoder instead of the fast path
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from testkit.paths import REPO, SEED_DIR

DEFAULT_CAPTURE = SEED_DIR / "icmp-file-transfer-sample-text-file-2mb.pcap"

STAGE_CODE = r"""
import json, time, tempfile
import pcapy
from icmpsensor.source.batch import frames_of
from icmpsensor.source.pcapfile import batches

def read_all(path):
    return [f for buf, meta in batches(pcapy.open_offline(path)) for f in frames_of(buf, meta)]

def ceiling(path):
    t = time.perf_counter(); n = len(read_all(path)); return n, time.perf_counter() - t

def dpkt_stage(path):
    import dpkt
    t = time.perf_counter(); n = 0
    for buf, meta in batches(pcapy.open_offline(path)):
        for ts, frame in frames_of(buf, meta):
            ip = dpkt.ethernet.Ethernet(frame).data
            getattr(ip, "data", None)
            n += 1
    return n, time.perf_counter() - t

def sensor(path, reference=False):
    from icmpsensor.config.schema import Config
    from icmpsensor.decode.decoder import DpktDecoder
    from icmpsensor.runmode.pipeline import Pipeline
    from icmpsensor.runmode.replay import build_sinks
    from icmpsensor.runmode.replay import replay_pipeline
    cfg = Config()
    cfg.output.log_dir = tempfile.mkdtemp()
    pipe = Pipeline(cfg, build_sinks(cfg))
    if reference:
        pipe.decoder_for = lambda linktype: DpktDecoder(linktype, pipe.decode_stats,
                                                        reassembler=pipe.reassembler)
    t = time.perf_counter(); result = replay_pipeline(pipe, [path]); dt = time.perf_counter() - t
    pipe.close()
    return result.frames, dt

stages = {"ceiling": ceiling, "dpkt": dpkt_stage, "icmpsensor": sensor,
          "icmpsensor-dpkt": lambda path: sensor(path, reference=True)}
n, dt = stages[STAGE](PATH)
from icmpsensor.runmode.stats import peak_rss_kb
rss_mb = peak_rss_kb() / 1024  # VmHWM: this image's own peak, not the parent's
print(json.dumps({"packets": n, "seconds": dt, "rss_mb": rss_mb}))
"""


def run_stage(stage: str, capture: Path) -> dict[str, float]:
    code = f"STAGE = {stage!r}\nPATH = {str(capture.resolve())!r}\n" + STAGE_CODE
    # run from the checkout: `-c` puts the working directory first on sys.path
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"bench: stage {stage} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("capture", nargs="?", default=str(DEFAULT_CAPTURE))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    capture = Path(args.capture)
    if not capture.is_file():
        print(f"bench: capture file {capture}: not found", file=sys.stderr)
        return 66
    results = {}
    for stage in ("ceiling", "dpkt", "icmpsensor", "icmpsensor-dpkt"):
        runs = [run_stage(stage, capture) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r["seconds"])
        best["pps"] = best["packets"] / best["seconds"]
        best["rss_mb"] = max(r["rss_mb"] for r in runs)
        results[stage] = best
    ceiling = results["ceiling"]["pps"]
    print(f"capture: {capture.name} ({int(results['ceiling']['packets'])} packets), best of {args.repeat}")
    print(f"{'stage':<16} {'packets/s':>12} {'x ceiling':>10} {'peak RSS MB':>12}")
    for stage, r in results.items():
        print(f"{stage:<16} {r['pps']:>12,.0f} {r['pps'] / ceiling:>10.3f} {r['rss_mb']:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
