"""Command line: `icmpsensor -r FILE ...` replays captures; `-i IFACE` runs live.

Exit codes (also in --help and the README):
  0 ok · 1 internal error · 2 usage · 66 unreadable input · 73 log directory not writable · 78 config error
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from icmpsensor import __version__
from icmpsensor.config import Config, config_to_yaml, load_config
from icmpsensor.errors import (
    EXIT_CANTCREAT,
    EXIT_CONFIG,
    EXIT_INTERNAL,
    EXIT_NOINPUT,
    EXIT_NOPERM,
    EXIT_OK,
    EXIT_USAGE,
    SensorError,
    UsageError,
)
from icmpsensor.pipeline import Pipeline, build_sinks, tune_gc
from icmpsensor.replay import ReplayResult, replay_files

MAX_WORKERS = 64  # as capture.workers

EPILOG = f"""\
exit codes:
  {EXIT_OK}   success
  {EXIT_INTERNAL}   internal error (a bug: please report it)
  {EXIT_USAGE}   usage error (bad or missing command-line arguments)
  {EXIT_NOINPUT}  input unreadable: capture file or config file missing, unreadable, not a
      capture, an unsupported link type, or a capture that ends in a broken record
      (everything readable before it is still processed and reported); live: no such
      interface, interface down, or the capture failed while running
  {EXIT_CANTCREAT}  log directory missing or not writable
  {EXIT_NOPERM}  not permitted to capture (needs root or CAP_NET_RAW)
  {EXIT_CONFIG}  invalid configuration (the message reads FILE:LINE: KEY: PROBLEM)

examples:
  icmpsensor -r capture.pcap --log-dir /tmp/out --stdout
  icmpsensor -r big.pcap --workers 2
  icmpsensor -c /etc/icmpsensor/icmpsensor.yaml --check-config
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see icmpsensor --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="icmpsensor",
        description="Detect data exfiltration and tunnelling over ICMP; notices go to a "
        "Zeek-compatible JSON notice.log.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_argument_group("input (one of)")
    source.add_argument(
        "-r", dest="read", metavar="FILE", action="append", default=[],
        help="read a pcap or pcapng file; repeat to read several files in order as one timeline",
    )
    source.add_argument(
        "-i", dest="interface", metavar="IFACE",
        help="capture live on IFACE as a daemon (default: capture.interface from the config)",
    )
    parser.add_argument(
        "-c", dest="config", metavar="CONFIG",
        help="YAML configuration file (default: built-in defaults, see etc/icmpsensor.yaml)",
    )
    parser.add_argument(
        "--workers", metavar="N", type=_worker_count,
        help="with -r: replay on N processes, each decoding and detecting the host pairs that hash to it "
        f"(1-{MAX_WORKERS}; default: capture.workers from the config)",
    )
    parser.add_argument("--log-dir", metavar="DIR", help="directory for notice.log (overrides output.log_dir)")
    parser.add_argument("--stdout", action="store_true", help="also print each notice as a JSON line on stdout")
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    parser.add_argument(
        "--print-config", action="store_true", help="print the effective configuration as YAML and exit"
    )
    parser.add_argument("--version", action="version", version=f"icmpsensor {__version__}")
    return parser


def _worker_count(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{value} is out of range (1-{MAX_WORKERS})")
    return value


def effective_config(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config)
    if args.log_dir is not None:
        cfg.output.log_dir = args.log_dir
    if args.stdout:
        cfg.output.stdout = True
    return cfg


def run_replay(cfg: Config, paths: list[str], workers: int = 1) -> int:
    if workers > 1:
        result, summary, write_errors = _replay_parallel(cfg, paths, workers)
    else:
        result, summary, write_errors = _replay_single(cfg, paths)
    print(
        f"icmpsensor: read {result.frames} packets from {result.files} file(s); "
        f"{summary['notices']} notice(s) written to {cfg.output.log_dir}/{cfg.output.notice_log}; "
        f"decode: {json.dumps(summary['decode'], separators=(',', ':'))}; "
        f"detect: {json.dumps(summary['detect'], separators=(',', ':'))}",
        file=sys.stderr,
    )
    for problem in result.problems:
        print(f"icmpsensor: error: {problem}", file=sys.stderr)
    if result.problems:
        return EXIT_NOINPUT
    return EXIT_CANTCREAT if write_errors else EXIT_OK


def _replay_single(cfg: Config, paths: list[str]) -> tuple[ReplayResult, dict[str, object], int]:
    pipeline = Pipeline(cfg, build_sinks(cfg))
    try:
        result = replay_files(paths, pipeline)
    finally:
        pipeline.close()
    return result, pipeline.stats(), pipeline.write_errors


def _replay_parallel(cfg: Config, paths: list[str], workers: int) -> tuple[ReplayResult, dict[str, object], int]:
    from icmpsensor.parallel_replay import replay_files_parallel

    sinks = build_sinks(cfg)
    try:
        result = replay_files_parallel(paths, cfg, workers, sinks)
    finally:
        for sink in sinks:
            sink.close()
    return result, result.stats, result.write_errors


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `icmpsensor ... --stdout | head` ends quietly
    try:
        args = build_parser().parse_args(argv)
        cfg = effective_config(args)
        if args.check_config:
            print(f"icmpsensor: configuration {cfg.source or '(built-in defaults)'} is valid")
            return EXIT_OK
        if args.print_config:
            sys.stdout.write(config_to_yaml(cfg))
            return EXIT_OK
        if args.interface and args.read:
            raise UsageError("-r and -i cannot be used together (see icmpsensor --help)")
        tune_gc()
        if args.read:
            workers = args.workers if args.workers is not None else cfg.capture.workers
            return run_replay(cfg, args.read, workers)
        if args.interface or cfg.capture.interface:
            if args.workers is not None:
                raise UsageError("--workers is for -r; live capture takes capture.workers from the config "
                                 "(see icmpsensor --help)")
            from icmpsensor.daemon import Overrides, run_live

            return run_live(cfg, Overrides(args.interface, args.log_dir, args.stdout))
        raise UsageError("nothing to do: give -r FILE, -i IFACE, or capture.interface in the config")
    except SensorError as exc:
        print(f"icmpsensor: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("ICMPSENSOR_DEBUG"):
            raise
        print(f"icmpsensor: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL


def entry_point() -> NoReturn:
    sys.exit(main())

