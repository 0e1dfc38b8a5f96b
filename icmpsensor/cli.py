"""Command line: `icmpsensor -r FILE ...` replays captures; `-i IFACE` runs live.

Exit codes (also in --help and the README):
  0 ok · 1 internal error · 2 usage · 66 unreadable input · 73 log directory not writable ·
  77 not permitted to capture · 78 config error
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys

from icmpsensor import __version__
from icmpsensor.console import guard_standard_streams, say, write_out
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
    resource_error,
)

# Start-up pays only for what the mode uses: `--version` and `--check-config` import no more than this
# module, argparse and (the second) the config package and PyYAML (docs/operations.md#start-up).
TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~4 ms of every start
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn

    from icmpsensor.config.schema import Config

MAX_WORKERS = 64  # as capture.workers (config/schema.py)

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


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter, its width found as shutil.get_terminal_size finds it without importing shutil
    (argparse builds a formatter for every add_argument; shutil and what it imports cost ~3 ms a start)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, _columns() - 2 if width is None else width)


def _columns() -> int:
    """shutil.get_terminal_size().columns: $COLUMNS, else standard output's terminal, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="icmpsensor",
        description="Detect data exfiltration and tunnelling over ICMP; notices go to a "
        "Zeek-compatible JSON notice.log.",
        epilog=EPILOG,
        formatter_class=_Formatter,
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
    from icmpsensor.config.loader import load_config

    cfg = load_config(args.config)
    if args.log_dir is not None:
        cfg.output.log_dir = args.log_dir
    if args.stdout:
        cfg.output.stdout = True
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    guard_standard_streams()
    # `--stdout | head -1` must not end the sensor by SIGPIPE: a broken stdout is handled (console.py)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        args = build_parser().parse_args(argv)
        cfg = effective_config(args)
        if args.check_config:
            write_out(f"icmpsensor: configuration {cfg.source or '(built-in defaults)'} is valid\n")
            return EXIT_OK
        if args.print_config:
            from icmpsensor.config.loader import config_to_yaml

            write_out(config_to_yaml(cfg))
            return EXIT_OK
        if args.interface and args.read:
            raise UsageError("-r and -i cannot be used together (see icmpsensor --help)")
        if args.read:
            from icmpsensor.runmode.signals import replay_signals

            replay_signals()  # before a SIGHUP held since the start is let in
        if args.read or not (args.interface or cfg.capture.interface):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})  # not a daemon (entry_point)
        from icmpsensor.runmode.pipeline import tune_gc

        tune_gc()
        if args.read:
            from icmpsensor.runmode.replay import run_replay

            workers = args.workers if args.workers is not None else cfg.capture.workers
            return run_replay(cfg, args.read, workers)
        if args.interface or cfg.capture.interface:
            if args.workers is not None:
                raise UsageError("--workers is for -r; live capture takes capture.workers from the config "
                                 "(see icmpsensor --help)")
            from icmpsensor.runmode.live import Overrides, run_live

            return run_live(cfg, Overrides(args.interface, args.log_dir, args.stdout))
        raise UsageError("nothing to do: give -r FILE, -i IFACE, or capture.interface in the config")
    except SensorError as exc:
        say(f"icmpsensor: error: {exc.message}")
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM / SIGHUP during a replay
        from icmpsensor.runmode.signals import interrupted_exit_code

        return interrupted_exit_code(exc)
    except Exception as exc:
        if os.environ.get("ICMPSENSOR_DEBUG"):
            raise
        refused = resource_error(exc)
        if refused is not None:
            say(f"icmpsensor: error: {refused.message}")
            return refused.exit_code
        say(f"icmpsensor: internal error: {type(exc).__name__}: {exc}")
        return EXIT_INTERNAL


def entry_point() -> NoReturn:
    # A reload asked while the sensor starts (the daemon's handler is not in place yet: SIGHUP's default action
    # would end it) is held until the daemon takes it (Daemon.run); any other run takes it as usual (main).
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    code = main()
    # Every output is written and closed by now, and every thread left is a daemon thread: skip the
    # interpreter's teardown, which would free a storm's flow tables object by object (~0.2 s of the stop's
    # 5 s budget, measured: docs/operations.md "Signals").
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)

