"""Counters: what one worker reports, how several add up, and the stats record (stats.log, journald,
`STATUS=`), built in one place for one process and for N workers alike."""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icmpsensor.decode.stats import DecodeStats
from icmpsensor.notice.record import Notice
from icmpsensor.notice.types import CAPTURE_LOSS
from icmpsensor.runmode.pipeline import Pipeline

LAG_SHOWN = 1.0  # seconds of detection lag from which the status line says it
# The live capture counters a worker adds to its pipeline's (source/live.py CaptureStats, SpscQueue).
CAPTURE_KEYS = ("packets_received", "packets_read", "kernel_dropped", "interface_dropped", "queue_dropped",
                "queue_dropped_batches", "shutdown_dropped", "capture_waiting", "detection_lag", "detection_lag_max",
                "queued_batches", "queued_bytes")


def worker_stats(pipeline: Pipeline, source: Any) -> dict[str, Any]:
    """One worker's counters: its pipeline's, and its capture's when it reads an interface."""
    record: dict[str, Any] = pipeline.stats()
    if getattr(source, "live", False):
        cap = source.stats()
        record.update(packets_received=cap.received, packets_read=cap.read, kernel_dropped=cap.kernel_dropped,
                      interface_dropped=cap.interface_dropped, queue_dropped=cap.queue_dropped,
                      queue_dropped_batches=source.queue.dropped, shutdown_dropped=source.shutdown_dropped,
                      capture_waiting=int(source.waiting is not None),  # 1: waiting for the interface
                      detection_lag=round(source.lag, 3), detection_lag_max=round(source.lag_max, 3),
                      queued_batches=len(source.queue), queued_bytes=source.queue.queued_bytes)
    return record


def add_stats(total: dict[str, Any], part: Mapping[str, Any]) -> None:
    """Add the counters of a stats record (such as `Pipeline.stats()`) into `total`, nested dicts key by
    key: several workers' records into one."""
    for key, value in part.items():
        if isinstance(value, Mapping):
            add_stats(total.setdefault(key, {}), value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value


def totals(workers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The workers' counters summed, but for interface_dropped: ps_ifdrop is the interface's own counter,
    which every worker's handle reports whole; and the detection lags, the largest worker's."""
    total: dict[str, Any] = {}
    for stats in workers:
        add_stats(total, stats)
    total["interface_dropped"] = max((s.get("interface_dropped", 0) for s in workers), default=0)
    for key in ("detection_lag", "detection_lag_max"):
        total[key] = max((s.get(key, 0) for s in workers), default=0)
    if "decode" in total:  # in one process's order, whatever the order the workers met the reasons in
        total["decode"] = DecodeStats.from_dict(total["decode"]).as_dict()
    return total


def stats_record(*, now: float, started: float, name: str, interface: str, workers: Sequence[Mapping[str, Any]],
                 notices: int, write_errors: int, backlog: int, lost: int, journal_errors: int,
                 journal_backlog: int = 0, stdout_dropped: int = 0, stderr_dropped: int = 0, notify_unsent: int = 0,
                 worker_states: Sequence[tuple[int, int | None, str]] = (),
                 notices_by_note: Mapping[str, int] | None = None) -> dict[str, object]:
    """The stats.log record of a live sensor: its workers' counters (one: the in-process pipeline) and the
    main process's outputs. `worker_states` (index, pid, state) with N > 1 workers adds a per-worker list."""
    t = totals(workers)
    detect = t.get("detect", {})
    record: dict[str, object] = {
        "ts": round(now, 6),
        "peer_descr": name,
        "interface": interface,
        "uptime": round(now - started, 3),
        **{key: t.get(key, 0) for key in CAPTURE_KEYS},
        "decode": t.get("decode", {}),
        "flows": t.get("flows", 0),
        "pending_requests": t.get("pending_requests", 0),
        "evictions": detect.get("flows_evicted", 0),
        "notices": notices,
        "notices_by_note": dict(sorted((notices_by_note or {}).items())),
        "notices_folded": t.get("notices_folded", 0),  # into aggregates (notice/aggregate.py)
        "notices_aggregated": t.get("notices_aggregated", 0),
        "notice_write_errors": write_errors,
        "notice_backlog": backlog,
        "notices_lost": lost,
        "journal_errors": journal_errors,  # entries never delivered to journald
        "journal_backlog": journal_backlog,  # entries waiting for a stalled journald (output/journalsocket.py)
        "stdout_dropped": stdout_dropped,  # --stdout lines a reader did not take (output/stdout.py)
        "stderr_dropped": stderr_dropped,  # operational lines a stderr reader did not take (console.py)
        "notify_unsent": notify_unsent,  # sd_notify messages a stalled service manager did not take (notifysocket.py)
        "detect": detect,
        "evidence": t.get("evidence", {}),
    }
    if worker_states:
        record["workers"] = [
            {"worker": index, "pid": pid, "state": state,
             **{k: stats.get(k, 0) for k in ("packets_received", "packets_read", "kernel_dropped", "queue_dropped",
                                               "shutdown_dropped", "flows", "notices")}}
            for (index, pid, state), stats in zip(worker_states, workers, strict=True)
        ]
    return record


@dataclass(frozen=True, slots=True)
class CaptureLoss:
    """What a stats interval lost: the packets the kernel received for the capture, and those dropped before
    detection by the kernel (its buffer full) and by the queue (the detector too slow). Interface drops
    (ps_ifdrop) are given but not counted: they include frames the kernel discarded after the capture saw them
    (docs/operations.md, Stats)."""

    seconds: float
    received: int
    kernel: int
    queue: int
    interface: int

    @property
    def dropped(self) -> int:
        return self.kernel + self.queue

    @property
    def share(self) -> float:
        """The dropped share of what was received (Linux's ps_recv counts the kernel's drops too); 0 without
        traffic."""
        return min(1.0, self.dropped / self.received) if self.received > 0 else 0.0


_LOSS_KEYS = ("packets_received", "kernel_dropped", "queue_dropped", "interface_dropped")


def capture_loss(previous: Mapping[str, Any] | None, record: Mapping[str, Any], started: float) -> CaptureLoss:
    """The loss between two stats records (`previous` None: since the start, when every counter was 0)."""
    before = previous or {}
    delta = [max(0, int(record.get(k, 0)) - int(before.get(k, 0))) for k in _LOSS_KEYS]
    since = float(before["ts"]) if previous is not None else started
    received, kernel, queue, interface = delta
    return CaptureLoss(max(0.0, float(record["ts"]) - since), received, kernel, queue, interface)


def capture_loss_notice(loss: CaptureLoss, threshold: float, now: float, interface: str) -> Notice | None:
    """The capture-loss notice (notice/types.py CAPTURE_LOSS: Zeek's note) when the interval's loss exceeds `threshold`
    (0: off). Zeek's msg (policy/misc/capture-loss.zeek), the counts in sub and n."""
    if threshold <= 0 or loss.dropped <= 0 or loss.share <= threshold:
        return None
    percent = 100.0 * loss.share
    sub = (f"Interface: {interface}, Interval: {loss.seconds:.1f} secs, Received: {loss.received}, "
           f"Dropped: {loss.dropped} (kernel {loss.kernel}, queue {loss.queue}), "
           f"Interface dropped: {loss.interface} (not counted), Threshold: {100.0 * threshold:.3f}%")
    return Notice(ts=now, note=CAPTURE_LOSS.name,
                  msg=f"The capture loss check detected an estimated loss rate above {percent:.3f}%",
                  sub=sub, src="", dst="", uid="", n=loss.dropped, bytes_sent=0, bytes_received=0,
                  start=now - loss.seconds, end=now)


def detection_lag(record: Mapping[str, Any]) -> float:
    """A stats record's detection lag, seconds (0 until a worker has reported one)."""
    lag = record.get("detection_lag", 0)
    return float(lag) if isinstance(lag, int | float) else 0.0


def status_line(record: Mapping[str, Any]) -> str:
    """`STATUS=` and the journald stats line, from a stats record."""
    waiting = f"waiting for interface {record['interface']}; " if record.get("capture_waiting") else ""
    line = waiting + (
        f"{record['packets_read']} packets, {record['flows']} flows, {record['notices']} notices, "
        f"drops: kernel {record['kernel_dropped']} interface {record['interface_dropped']} "
        f"queue {record['queue_dropped']}"
    )
    lag = detection_lag(record)
    if lag >= LAG_SHOWN:
        line += f"; detection {lag:.1f} s behind the wire"
    workers = record.get("workers")
    return f"{line}; {len(workers)} workers" if isinstance(workers, list) else line


def peak_rss_kb() -> int:
    """This process's peak resident set in KiB (VmHWM: its own, not the parent's it was forked with)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
