"""The worker protocol: typed messages between a worker process and its supervisor.

Pickled over an AF_UNIX socketpair (multiprocessing.Pipe), one per worker. Both run modes speak it:

    worker -> supervisor                          supervisor -> worker
    Opened   live: capture open, in the fanout    Go      live: every worker is in the group:
             group, passing nothing yet                   install the filter and read
    Running  live: capture thread reading         Reload  a reloaded configuration
    Notices  what the pipeline raised since the   Stop    live: stop reading (drain first); the
             last message, and a watermark                stop's deadlines count from `at`
    Stats    counters, once a second              Flush   every worker's input has ended: evaluate
                                                          the open flows (at `at`) and report
    Log      an error for the journal
    Failed   a one-line error and its exit code
    InputEnded  input read (replay: the files; live: drained after Stop); waits for Flush
    Done     the last notices and the WorkerReport; the worker then exits

Start (live): worker 0 opens its capture and creates the fanout group (Opened with the group id),
the others join it (Opened), then every worker gets Go and answers Running. End: every worker
sends InputEnded; once all have (live: or after the drain deadline) the supervisor sends Flush,
and each answers Done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from icmpsensor.config.schema import Config
from icmpsensor.notice.record import Notice
from icmpsensor.source.pcapfile import ReadProblem

# -- worker -> supervisor


@dataclass(slots=True)
class Opened:
    group: int | None  # the fanout group id
    warning: str | None  # a libpcap warning at activation


@dataclass(slots=True)
class Running:
    pass


@dataclass(slots=True)
class Notices:
    notices: list[Notice]
    watermark: float  # replay: no later notice of this worker's has an earlier ts (packet time)


@dataclass(slots=True)
class Stats:
    stats: dict[str, Any]  # runmode/stats.py worker_stats


@dataclass(slots=True)
class Log:
    priority: int
    text: str


@dataclass(slots=True)
class Failed:
    exit_code: int
    text: str


@dataclass(slots=True)
class InputEnded:
    notices: list[Notice]
    clock: float  # the latest packet time this worker read


@dataclass
class WorkerReport:
    """What a worker sends once it has flushed."""

    index: int
    stats: dict[str, Any]  # runmode/stats.py worker_stats
    files: int = 0  # replay: files read
    frames: int = 0  # replay: frames read
    problems: list[ReadProblem] = field(default_factory=list)
    peak_rss_kb: int = 0


@dataclass(slots=True)
class Done:
    notices: list[Notice]
    report: WorkerReport


# -- supervisor -> worker


@dataclass(slots=True)
class Go:
    pass


@dataclass(slots=True)
class Reload:
    cfg: Config


@dataclass(slots=True)
class Stop:
    at: float  # live: time.monotonic() (system-wide) when the stop was asked for: the stop's deadlines count from it


@dataclass(slots=True)
class Flush:
    at: float | None  # replay: the latest packet time any worker read; live: None (now)
