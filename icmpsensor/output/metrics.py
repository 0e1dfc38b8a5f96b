"""Prometheus metrics: the stats record (runmode/stats.py) as a node_exporter textfile.

Every stats interval the live daemon rewrites the file `stats.prometheus_textfile` with prometheus-client's
`generate_latest` (the text exposition format, as its `write_to_textfile` writes it: to a temporary file beside
it, renamed over it: node_exporter's textfile collector never reads half a file). The metrics are built from the
very record that goes to stats.log and journald, so there is one source of counters.

Names and types follow Prometheus' conventions: `icmpsensor_` prefix, counters end in `_total` (they count
since the daemon started; a restart starts them again, which `rate()` handles), gauges hold current values,
units in the name (`_seconds`), and kinds, notes and reasons are labels, never parts of names.

The writer's temporary name is predictable (`<path>.<pid>.<thread id>`, write_to_textfile's): it is made new each
time (what is there removed, then O_EXCL | O_NOFOLLOW), never written through a link, symbolic or hard, planted
there (write_to_textfile's `open(tmp, "wb")` follows both). The file's directory must be one nobody else can plant
anything in: a real directory (not a link), owned by the sensor's user and writable by nobody else
(output/logfile.py `verify_directory`, as for the evidence directory); checked at start (exit 73) and again before
every write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import ALLOWUTF8

from icmpsensor import __version__
from icmpsensor.errors import OutputError
from icmpsensor.notice.types import NOTE_TYPES
from icmpsensor.output.logfile import create_new, verify_directory

PREFIX = "icmpsensor_"

# record key -> kind label of icmpsensor_packets_dropped_total
DROP_KINDS = (("kernel_dropped", "kernel"), ("interface_dropped", "interface"), ("queue_dropped", "queue"),
              ("shutdown_dropped", "shutdown"))
# evidence counter -> reason label; files (flows left without evidence) and packets are counted apart
EVIDENCE_DROPPED_FILES = (("dropped_rate", "rate"), ("dropped_queue_files", "queue"),
                          ("dropped_shutdown_files", "shutdown"), ("cut", "cut"))
EVIDENCE_DROPPED_PACKETS = (("dropped_queue_packets", "queue"), ("dropped_budget", "budget"),
                            ("dropped_shutdown", "shutdown"), ("truncated", "truncated"))


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, doc, value=value)


def _labelled(family: CounterMetricFamily | GaugeMetricFamily,
              values: Iterator[tuple[str, float]] | list[tuple[str, float]]) -> Metric:
    for label, value in values:
        family.add_metric([label], value)
    return family


def _int(mapping: Mapping[str, Any], key: str) -> int:
    value = mapping.get(key, 0)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0


def metric_families(record: Mapping[str, Any]) -> list[Metric]:
    """The metrics of one stats record."""
    r = record
    decode: Mapping[str, Any] = r.get("decode") or {}
    detect: Mapping[str, Any] = r.get("detect") or {}
    evidence: Mapping[str, Any] = r.get("evidence") or {}
    by_note: Mapping[str, int] = r.get("notices_by_note") or {}
    notes = {note.name: 0 for note in NOTE_TYPES} | dict(by_note)  # every note has its series from the start

    info = GaugeMetricFamily(PREFIX + "info", "the sensor: version, interface and peer_descr (sensor.name)",
                             labels=["version", "interface", "peer_descr"])
    info.add_metric([__version__, str(r.get("interface", "")), str(r.get("peer_descr", ""))], 1)
    ts = float(r.get("ts", 0.0))
    families: list[Metric] = [
        info,
        GaugeMetricFamily(PREFIX + "start_time_seconds", "when the daemon started, epoch seconds",
                          value=ts - float(r.get("uptime", 0.0))),
        GaugeMetricFamily(PREFIX + "stats_timestamp_seconds", "when this stats record was taken, epoch seconds",
                          value=ts),
        _counter("packets_received", "packets the kernel received for the capture (libpcap ps_recv; on Linux "
                 "including those it dropped)", _int(r, "packets_received")),
        _counter("packets_read", "packets the capture read from the kernel", _int(r, "packets_read")),
        _labelled(CounterMetricFamily(PREFIX + "packets_dropped", "packets dropped before detection, by kind: "
                                      "kernel (capture buffer full, ps_drop), interface (ps_ifdrop; not a capture "
                                      "loss), queue (detector too slow), shutdown (still queued at the stop "
                                      "deadline)", labels=["kind"]),
                  [(kind, _int(r, key)) for key, kind in DROP_KINDS]),
        _counter("queue_dropped_batches", "batches the full capture queue refused", _int(r, "queue_dropped_batches")),
        GaugeMetricFamily(PREFIX + "capture_waiting", "1 while the capture waits for its interface (link down)",
                          value=_int(r, "capture_waiting")),
        GaugeMetricFamily(PREFIX + "detection_lag_seconds", "how far behind the wire detection ran over the last "
                          "second: the longest time from a frame's capture to the detector taking it",
                          value=_int(r, "detection_lag")),
        GaugeMetricFamily(PREFIX + "detection_lag_max_seconds", "the largest detection lag since the start",
                          value=_int(r, "detection_lag_max")),
        GaugeMetricFamily(PREFIX + "queued_batches", "capture batches waiting for the detector now",
                          value=_int(r, "queued_batches")),
        GaugeMetricFamily(PREFIX + "queued_bytes", "bytes of the capture batches waiting for the detector now "
                          "(bounded by capture.queue_bytes)", value=_int(r, "queued_bytes")),
        GaugeMetricFamily(PREFIX + "flows", "flows tracked now", value=_int(r, "flows")),
        GaugeMetricFamily(PREFIX + "pending_requests", "echo requests waiting for their reply now",
                          value=_int(r, "pending_requests")),
        _counter("flows_created", "flows started", _int(detect, "flows_created")),
        _counter("flows_expired", "flows ended by the idle timeout", _int(detect, "flows_expired")),
        _counter("fields_unread", "requests whose few changed places were charged byte for byte, not read as "
                 "counters or clocks (the readings' budget spent under load)", _int(detect, "fields_unread")),
        _counter("flow_evictions", "flows evaluated and dropped early because detection.max_flows was reached",
                 _int(r, "evictions")),
        _labelled(CounterMetricFamily(PREFIX + "notices", "notices written (notice.log, journald), by note",
                                      labels=["note"]), sorted(notes.items())),
        _counter("notices_folded", "notices folded into an aggregate notice (notice storms)",
                 _int(r, "notices_folded")),
        _counter("notices_aggregated", "aggregate notices written", _int(r, "notices_aggregated")),
        _counter("notice_write_errors", "notice writes that failed (a sink each)", _int(r, "notice_write_errors")),
        GaugeMetricFamily(PREFIX + "notice_backlog", "notices held in memory until notice.log can be written",
                          value=_int(r, "notice_backlog")),
        _counter("notices_lost", "held notices dropped (the backlog was full)", _int(r, "notices_lost")),
        _counter("journal_errors", "journal entries never delivered to journald (it refused them, or they waited "
                 "for a stalled journald past the backlog's bound or the stop)", _int(r, "journal_errors")),
        GaugeMetricFamily(PREFIX + "journal_backlog", "journal entries waiting for a stalled journald now",
                          value=_int(r, "journal_backlog")),
        _counter("stdout_dropped", "--stdout lines dropped: standard output not read (a full pipe)",
                 _int(r, "stdout_dropped")),
        _counter("stderr_dropped", "operational lines dropped: standard error not read (a full pipe)",
                 _int(r, "stderr_dropped")),
        _counter("notify_unsent", "sd_notify messages a stalled service manager did not take (replaced while they "
                 "waited, refused, or given up at the stop)", _int(r, "notify_unsent")),
        _counter("evidence_files", "flows whose evidence files were created", _int(evidence, "files")),
        _counter("evidence_packets", "packets written to evidence pcaps", _int(evidence, "packets")),
        _counter("evidence_errors", "evidence files not created and packets not written (write errors)",
                 _int(evidence, "errors")),
        _counter("evidence_deleted_files", "evidence files deleted to stay within max_total_bytes",
                 _int(evidence, "deleted")),
        _counter("evidence_buffers_evicted", "suspicious pairs whose buffered packets were dropped",
                 _int(evidence, "buffers_evicted")),
        _labelled(CounterMetricFamily(PREFIX + "evidence_dropped_files", "flows left without evidence files, by "
                                      "reason: rate (max_files_per_minute), queue (writer's queue full), shutdown "
                                      "(stop deadline), cut (closed before the flow's end: too many recorded at once)",
                                      labels=["reason"]),
                  [(reason, _int(evidence, key)) for key, reason in EVIDENCE_DROPPED_FILES]),
        _labelled(CounterMetricFamily(PREFIX + "evidence_dropped_packets", "packets not written to evidence, by "
                                      "reason: queue, budget (max_total_bytes), shutdown, truncated (packets_after "
                                      "or max_file_bytes)", labels=["reason"]),
                  [(reason, _int(evidence, key)) for key, reason in EVIDENCE_DROPPED_PACKETS]),
        _counter("decode_frames", "frames handed to the decoder", _int(decode, "frames")),
        _labelled(CounterMetricFamily(PREFIX + "decode_skipped", "frames skipped (not IP, not ICMP), by reason",
                                      labels=["reason"]), sorted((decode.get("skipped") or {}).items())),
        _labelled(CounterMetricFamily(PREFIX + "decode_errors", "malformed frames, by reason", labels=["reason"]),
                  sorted((decode.get("errors") or {}).items())),
        _counter("decode_bad_checksum", "ICMP/ICMPv6 messages with a bad checksum (analysed all the same)",
                 _int(decode, "bad_checksum")),
        _counter("decode_decapsulated", "frames in which a tunnel (IP-in-IP, GRE, VXLAN, Geneve) was opened",
                 _int(decode, "decapsulated")),
    ]
    messages = CounterMetricFamily(PREFIX + "icmp_messages", "ICMP (version 4) and ICMPv6 (6) messages decoded, by "
                                   "type", labels=["version", "type"])
    for key, count in (decode.get("icmp_types") or {}).items():  # "v4:8"
        version, _, icmp_type = str(key)[1:].partition(":")
        messages.add_metric([version, icmp_type], count)
    families.append(messages)
    return families


class _RecordCollector:
    def __init__(self, record: Mapping[str, Any]) -> None:
        self.record = record

    def collect(self) -> list[Metric]:
        return metric_families(self.record)


def registry_for(record: Mapping[str, Any]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RecordCollector(record))  # type: ignore[arg-type]
    return registry


def textfile_path(configured: str, log_dir: str) -> str:
    """`stats.prometheus_textfile` as a path: a relative one is inside the log directory."""
    return os.path.join(log_dir, configured)


class PrometheusTextfile:
    """The textfile at `path`; its directory is verified now (OutputError, exit 73) and before every write."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.directory = os.path.dirname(path) or "."
        self.check()

    def check(self) -> None:
        os.close(verify_directory(self.directory))
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise OutputError(f"Prometheus textfile {self.path}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(st.st_mode):
            what = "is a symbolic link (not followed)" if stat.S_ISLNK(st.st_mode) else "not a regular file"
            raise OutputError(f"Prometheus textfile {self.path}: {what}")
        if st.st_nlink > 1:
            raise OutputError(f"Prometheus textfile {self.path}: is a file with {st.st_nlink} hard links (another "
                              "name shares it)")

    def write(self, record: Mapping[str, Any]) -> None:
        """Replace the file with the metrics of `record`; OutputError (the directory or the file is not what it must
        be) or OSError if that fails."""
        self.check()
        try:
            _replace(self.path, generate_latest(registry_for(record), ALLOWUTF8))
        except OSError:
            raise
        except Exception as exc:  # whatever the library raises, a metrics write never ends the daemon
            raise OSError(errno.EIO, f"{type(exc).__name__}: {exc}") from None


def _replace(path: str, content: bytes) -> None:
    """`content` written to a new file at write_to_textfile's temporary name, then renamed over `path`."""
    tmp = f"{path}.{os.getpid()}.{threading.current_thread().ident}"
    fd = create_new(tmp, 0o666)  # less the umask, as write_to_textfile's open(): node_exporter reads it as its user
    try:
        with open(fd, "wb") as out:
            out.write(content)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
