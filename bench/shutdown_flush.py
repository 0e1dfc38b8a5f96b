"""How long the stop's flush takes with N alerted flows held (issue 11: 100,000 in < 2 s).

A live daemon's pipeline (default configuration: evidence on, notice.log, journald when the
journal socket is there) is fed N one-packet flows from as many sources, each an echo request with
500 random bytes (a DataExfil notice each, and evidence buffered), then `Pipeline.finish()` (what
SIGTERM runs after the drain) is timed: every flow evaluated, its summary notice written to
notice.log and journald, its evidence files closed. Peak RSS (VmHWM) is reported. Evidence files
are written by the evidence writer's thread (output/evidencewriter.py); `close_s` is the wait for
it to finish. `--files-per-minute N` sets output.evidence.max_files_per_minute (default: the
config's, 600): a large N has every flow's files written.

This is a deadline, not a rate, so there is no ceiling: the number to hold is the stop's 5 s
(1.5 s drain + flush + closing), and the flush gets what the drain leaves.

    python -m bench.shutdown_flush [--flows 100000] [--no-journal] [--no-evidence] [--files-per-minute N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import struct
import tempfile
import time

from icmpsensor.config.schema import Config
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.output.journal import Journal, JournalSink
from icmpsensor.output.noticelog import NoticeLog
from icmpsensor.output.sink import NoticeSink
from icmpsensor.runmode.pipeline import Pipeline, tune_gc
from icmpsensor.runmode.stats import peak_rss_kb


def storm(count: int, seed: int = 11) -> list[IcmpPacket]:
    rng = random.Random(seed)
    dst = bytes((198, 51, 100, 7))
    return [IcmpPacket(1_700_000_000.0 + i * 1e-5, struct.pack("!I", 0x64400000 + i), dst, False, 8, 0,
                       i & 0xFFFF, 1, rng.randbytes(500), 528) for i in range(count)]


def measure(flows: int, journal: bool, evidence: bool, files_per_minute: int | None = None) -> dict[str, object]:
    tune_gc()
    with tempfile.TemporaryDirectory() as log_dir:
        cfg = Config()
        evidence_cfg = dataclasses.replace(cfg.output.evidence, enabled=evidence)
        if files_per_minute is not None:
            evidence_cfg.max_files_per_minute = files_per_minute
        cfg.output = dataclasses.replace(cfg.output, log_dir=log_dir, evidence=evidence_cfg)
        cfg.journald = dataclasses.replace(cfg.journald, enabled=journal)
        notice_log = NoticeLog(log_dir, cfg.output.notice_log, cfg.sensor.name)
        sinks: list[NoticeSink] = [notice_log, JournalSink(Journal(cfg.journald))]
        pipeline = Pipeline(cfg, sinks, evidence_waits=False)  # as live
        began = time.perf_counter()
        pipeline.detect(storm(flows))
        fed = time.perf_counter() - began
        raised = pipeline.notices_emitted
        began = time.perf_counter()
        pipeline.finish()
        flush = time.perf_counter() - began
        began = time.perf_counter()
        pipeline.close()
        close = time.perf_counter() - began
        summaries = pipeline.notices_emitted - raised
    return {"flows": flows, "feed_s": round(fed, 3), "flush_s": round(flush, 3), "close_s": round(close, 3),
            "flush_us_per_flow": round(flush / flows * 1e6, 1), "notices_at_flush": summaries,
            "journal": journal, "evidence": evidence, "peak_rss_mb": round(peak_rss_kb() / 1024, 1),
            "evidence_stats": pipeline.stats()["evidence"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=100_000)
    parser.add_argument("--no-journal", action="store_true")
    parser.add_argument("--no-evidence", action="store_true")
    parser.add_argument("--files-per-minute", type=int, metavar="N", help="output.evidence.max_files_per_minute")
    args = parser.parse_args()
    print(json.dumps(measure(args.flows, not args.no_journal, not args.no_evidence, args.files_per_minute)))


if __name__ == "__main__":
    main()
