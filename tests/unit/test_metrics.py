"""Prometheus metrics from the stats record, the textfile they are written to, and the capture-loss notice.

The daemon's part (one stats interval: the capture-loss check, the notice through every sink, the textfile
rewritten) runs on a Daemon whose worker reports canned counters, so every number is known.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from icmpsensor.config.schema import Config, JournalConfig, OutputConfig, StatsConfig
from icmpsensor.errors import OutputError
from icmpsensor.notice.types import CAPTURE_LOSS, DATA_EXFIL, NOTE_TYPES, TUNNEL
from icmpsensor.output import metrics
from icmpsensor.output.metrics import PrometheusTextfile
from icmpsensor.runmode.live import Daemon, Overrides
from icmpsensor.runmode.stats import capture_loss, capture_loss_notice, stats_record

T0 = 1_700_000_000.0


def worker(**over: Any) -> dict[str, Any]:
    """One worker's counters, as worker_stats() reports them."""
    stats: dict[str, Any] = {
        "decode": {"frames": 900, "icmp": 880, "skipped": {"not_icmp": 15}, "errors": {"truncated_icmp": 5},
                   "icmp_types": {"v4:8": 500, "v6:128": 380}, "fragments": {}, "bad_checksum": 6},
        "detect": {"flows_created": 40, "flows_expired": 30, "flows_evicted": 2, "fields_unread": 12},
        "flows": 8, "pending_requests": 3, "notices": 0, "notices_folded": 4, "notices_aggregated": 1,
        "notice_write_errors": 0,
        "evidence": {"files": 3, "packets": 120, "deleted": 1, "errors": 0, "buffers_evicted": 0, "dropped_rate": 2,
                     "dropped_queue_files": 0, "dropped_queue_packets": 7, "dropped_budget": 0,
                     "dropped_shutdown": 0, "dropped_shutdown_files": 0, "truncated": 9},
        "packets_received": 1000, "packets_read": 990, "kernel_dropped": 10, "interface_dropped": 6,
        "queue_dropped": 20, "queue_dropped_batches": 1, "shutdown_dropped": 0, "capture_waiting": 0,
        "detection_lag": 0.25, "detection_lag_max": 6.5, "queued_batches": 3,
        "queued_bytes": 4096,
    }
    stats.update(over)
    return stats


def record(**over: Any) -> dict[str, object]:
    return stats_record(now=T0 + 60, started=T0, name="edge-1", interface="eth1", workers=[worker(**over)],
                        notices=5, write_errors=0, backlog=0, lost=0, journal_errors=4, journal_backlog=7,
                        stdout_dropped=9, stderr_dropped=2, notify_unsent=11,
                        notices_by_note={DATA_EXFIL.name: 3, TUNNEL.name: 2})


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, parsed by prometheus-client's own parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def types(text: str) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


# -- the metrics -----------------------------------------------------------------------------------


def test_the_metrics_are_the_stats_records_numbers(tmp_path: Path) -> None:
    path = tmp_path / "icmpsensor.prom"
    PrometheusTextfile(str(path)).write(record())
    text = path.read_text()
    got = samples(text)
    assert got[("icmpsensor_packets_received_total", ())] == 1000
    assert got[("icmpsensor_packets_read_total", ())] == 990
    for kind, value in (("kernel", 10), ("interface", 6), ("queue", 20), ("shutdown", 0)):
        assert got[("icmpsensor_packets_dropped_total", (("kind", kind),))] == value
    assert got[("icmpsensor_flows", ())] == 8 and got[("icmpsensor_flow_evictions_total", ())] == 2
    assert got[("icmpsensor_detection_lag_seconds", ())] == 0.25 and got[("icmpsensor_queued_batches", ())] == 3
    assert got[("icmpsensor_detection_lag_max_seconds", ())] == 6.5 and got[("icmpsensor_queued_bytes", ())] == 4096
    assert got[("icmpsensor_journal_errors_total", ())] == 4 and got[("icmpsensor_journal_backlog", ())] == 7
    assert got[("icmpsensor_stdout_dropped_total", ())] == 9 and got[("icmpsensor_stderr_dropped_total", ())] == 2
    assert got[("icmpsensor_notify_unsent_total", ())] == 11
    assert got[("icmpsensor_flows_created_total", ())] == 40
    assert got[("icmpsensor_fields_unread_total", ())] == 12
    assert got[("icmpsensor_notices_total", (("note", DATA_EXFIL.name),))] == 3
    assert got[("icmpsensor_notices_total", (("note", TUNNEL.name),))] == 2
    # every note has its series from the start, at 0
    for note in NOTE_TYPES:
        assert ("icmpsensor_notices_total", (("note", note.name),)) in got
    assert got[("icmpsensor_notices_total", (("note", CAPTURE_LOSS.name),))] == 0
    assert got[("icmpsensor_notices_folded_total", ())] == 4
    assert got[("icmpsensor_notices_aggregated_total", ())] == 1
    assert got[("icmpsensor_evidence_files_total", ())] == 3
    assert got[("icmpsensor_evidence_packets_total", ())] == 120
    assert got[("icmpsensor_evidence_dropped_files_total", (("reason", "rate"),))] == 2
    assert got[("icmpsensor_evidence_dropped_packets_total", (("reason", "queue"),))] == 7
    assert got[("icmpsensor_evidence_dropped_packets_total", (("reason", "truncated"),))] == 9
    assert got[("icmpsensor_decode_errors_total", (("reason", "truncated_icmp"),))] == 5
    assert got[("icmpsensor_decode_bad_checksum_total", ())] == 6
    assert got[("icmpsensor_decode_skipped_total", (("reason", "not_icmp"),))] == 15
    assert got[("icmpsensor_icmp_messages_total", (("type", "128"), ("version", "6")))] == 380
    assert got[("icmpsensor_start_time_seconds", ())] == T0
    assert got[("icmpsensor_stats_timestamp_seconds", ())] == T0 + 60
    info = [labels for (name, labels) in got if name == "icmpsensor_info"]
    assert dict(info[0])["interface"] == "eth1" and dict(info[0])["peer_descr"] == "edge-1"
    # Prometheus conventions: counters are counters (their samples end in _total), current values gauges
    kinds = types(text)
    assert kinds["icmpsensor_packets_dropped"] == "counter" and kinds["icmpsensor_notices"] == "counter"
    assert kinds["icmpsensor_flows"] == "gauge" and kinds["icmpsensor_notice_backlog"] == "gauge"
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("icmpsensor_")
        if family.type == "counter":
            assert all(s.name == family.name + "_total" for s in family.samples), family.name


def test_an_empty_record_gives_zeros_not_an_error() -> None:
    text = metrics.registry_for({})
    from prometheus_client import generate_latest

    got = samples(generate_latest(text).decode())
    assert got[("icmpsensor_packets_received_total", ())] == 0


# -- the textfile ----------------------------------------------------------------------------------


def test_the_textfile_is_replaced_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "icmpsensor.prom"
    textfile = PrometheusTextfile(str(path))
    textfile.write(record())
    inode = path.stat().st_ino
    reader = path.open()  # a reader of the old file keeps reading the old file whole
    textfile.write(record(packets_received=5000))
    assert path.stat().st_ino != inode, "renamed over, not rewritten in place"
    assert samples(reader.read())[("icmpsensor_packets_received_total", ())] == 1000
    reader.close()
    assert samples(path.read_text())[("icmpsensor_packets_received_total", ())] == 5000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["icmpsensor.prom"]


def test_a_linked_directory_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(OutputError, match="symbolic link"):
        PrometheusTextfile(str(tmp_path / "link" / "icmpsensor.prom"))


def test_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(OutputError, match="writable by others"):
        PrometheusTextfile(str(shared / "icmpsensor.prom"))


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    with pytest.raises(OutputError, match="owned by uid 65534"):
        PrometheusTextfile(str(theirs / "icmpsensor.prom"))


def test_a_link_at_the_textfile_path_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    (tmp_path / "icmpsensor.prom").symlink_to(victim)
    with pytest.raises(OutputError, match="symbolic link"):
        PrometheusTextfile(str(tmp_path / "icmpsensor.prom"))
    assert victim.read_text() == "keep\n"


def test_a_directory_opened_to_others_later_is_refused_before_the_planted_temporary_link_is_followed(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    path = out / "icmpsensor.prom"
    textfile = PrometheusTextfile(str(path))
    # Someone gets write access and plants the writer's predictable temporary name as a link.
    out.chmod(0o777)
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    import threading

    (out / f"icmpsensor.prom.{os.getpid()}.{threading.current_thread().ident}").symlink_to(victim)
    with pytest.raises(OutputError, match="writable by others"):
        textfile.write(record())
    assert victim.read_text() == "keep\n" and not path.exists()


def test_the_textfile_writer_does_not_write_through_a_hard_link_at_its_temporary_name(tmp_path: Path) -> None:
    """The directory is the sensor's own (not writable by others), and yet a hard link planted at the temporary name
    the metrics are written under first must not be truncated and written through."""
    import threading

    out = tmp_path / "out"
    out.mkdir()
    path = out / "icmpsensor.prom"
    textfile = PrometheusTextfile(str(path))
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    os.link(victim, out / f"icmpsensor.prom.{os.getpid()}.{threading.current_thread().ident}")
    textfile.write(record())
    assert victim.read_text() == "keep\n"
    assert "icmpsensor_" in path.read_text()


def test_a_textfile_planted_as_a_hard_link_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    os.link(victim, out / "icmpsensor.prom")
    with pytest.raises(OutputError, match="hard link"):
        PrometheusTextfile(str(out / "icmpsensor.prom"))
    assert victim.read_text() == "keep\n"


# -- capture loss ----------------------------------------------------------------------------------


def test_capture_loss_is_the_intervals_kernel_and_queue_drops_over_what_was_received() -> None:
    first = record(packets_received=1000, kernel_dropped=10, queue_dropped=20, interface_dropped=500)
    loss = capture_loss(None, first, T0)
    assert (loss.seconds, loss.received, loss.kernel, loss.queue, loss.interface) == (60, 1000, 10, 20, 500)
    assert loss.share == pytest.approx(0.03)
    second = dict(record(packets_received=3000, kernel_dropped=310, queue_dropped=120, interface_dropped=500),
                  ts=T0 + 120)
    loss = capture_loss(first, second, T0)
    assert (loss.seconds, loss.received, loss.dropped, loss.interface) == (60, 2000, 400, 0)
    assert loss.share == pytest.approx(0.2)


def test_the_capture_loss_notice_fires_above_the_threshold_only() -> None:
    loss = capture_loss(None, record(packets_received=1000, kernel_dropped=60, queue_dropped=41), T0)
    notice = capture_loss_notice(loss, 0.1, T0 + 60, "eth1")
    assert notice is not None and notice.note == CAPTURE_LOSS.name == "CaptureLoss::Too_Much_Loss"
    assert notice.msg == "The capture loss check detected an estimated loss rate above 10.100%"
    assert notice.n == 101 and "Interface: eth1" in notice.sub and "kernel 60, queue 41" in notice.sub
    at_threshold = capture_loss(None, record(packets_received=1000, kernel_dropped=60, queue_dropped=40), T0)
    assert capture_loss_notice(at_threshold, 0.1, T0, "eth1") is None  # must exceed it
    assert capture_loss_notice(loss, 0.0, T0, "eth1") is None  # 0: off
    idle = capture_loss(None, record(packets_received=0, kernel_dropped=0, queue_dropped=0), T0)
    assert capture_loss_notice(idle, 0.1, T0, "eth1") is None
    # interface drops are not a capture loss
    iface = capture_loss(None, record(packets_received=1000, kernel_dropped=0, queue_dropped=0,
                                      interface_dropped=900), T0)
    assert capture_loss_notice(iface, 0.1, T0, "eth1") is None


def test_a_notice_about_no_flow_has_no_proto_and_no_flow_numbers() -> None:
    loss = capture_loss(None, record(packets_received=100, kernel_dropped=50, queue_dropped=0), T0)
    notice = capture_loss_notice(loss, 0.1, T0 + 60, "eth1")
    assert notice is not None
    line = json.loads(notice.to_json_line("edge-1"))
    assert line["note"] == CAPTURE_LOSS.name and line["n"] == 50
    for absent in ("proto", "src", "dst", "id.orig_h", "id.resp_h", "uid", "community_id", "flow.bytes_sent",
                   "flow.packets", "flow.start", "flow.end"):
        assert absent not in line, absent
    cells = notice.to_tsv_line("edge-1").rstrip("\n").split("\t")
    assert cells[9] == "-" and cells[13] == "-"  # proto, src


# -- the daemon: one stats interval ----------------------------------------------------------------


class Worker:
    """A worker handle as the Supervisor keeps it: its last reported counters."""

    def __init__(self) -> None:
        self.stats = worker(packets_received=0, kernel_dropped=0, queue_dropped=0, interface_dropped=0)
        self.index, self.pid, self.state = 0, 1234, "running"


def daemon_for(tmp_path: Path, **stats: Any) -> tuple[Daemon, Worker]:
    cfg = dataclasses.replace(
        Config(), output=OutputConfig(log_dir=str(tmp_path), evidence=dataclasses.replace(OutputConfig().evidence,
                                                                                          enabled=False)),
        journald=JournalConfig(enabled=False), stats=StatsConfig(**stats))
    clock = iter(float(T0 + i) for i in range(10_000))
    daemon = Daemon(cfg, Overrides(), clock=lambda: next(clock))
    if cfg.stats.prometheus_textfile:
        daemon.textfile = PrometheusTextfile(metrics.textfile_path(cfg.stats.prometheus_textfile, str(tmp_path)))
    daemon._open_outputs()
    handle = Worker()
    daemon.supervisor = SimpleNamespace(workers=[handle])  # type: ignore[assignment]
    return daemon, handle


def notices(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "notice.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_daemon_raises_capture_loss_once_per_interval_and_writes_the_metrics(tmp_path: Path) -> None:
    daemon, handle = daemon_for(tmp_path, prometheus_textfile="icmpsensor.prom", capture_loss_threshold=0.1)
    handle.stats.update(packets_received=1000, kernel_dropped=5, queue_dropped=5)  # 1 %: fine
    daemon.write_stats(T0 + 60, periodic=True)
    assert notices(tmp_path) == []
    handle.stats.update(packets_received=2000, kernel_dropped=205, queue_dropped=105)  # 300 of 1000: 30 %
    daemon.write_stats(T0 + 120, periodic=True)
    (loss,) = notices(tmp_path)
    assert loss["note"] == CAPTURE_LOSS.name and loss["peer_descr"] == "icmpsensor"
    assert loss["msg"] == "The capture loss check detected an estimated loss rate above 30.000%"
    assert loss["n"] == 300 and loss["ts"] == T0 + 120
    # the metrics of that interval count it, by note
    got = samples((tmp_path / "icmpsensor.prom").read_text())
    assert got[("icmpsensor_notices_total", (("note", CAPTURE_LOSS.name),))] == 1
    assert got[("icmpsensor_packets_dropped_total", (("kind", "kernel"),))] == 205
    stats = [json.loads(line) for line in (tmp_path / "stats.log").read_text().splitlines()]
    assert stats[-1]["notices"] == 1 and stats[-1]["notices_by_note"] == {CAPTURE_LOSS.name: 1}
    # the next interval without new drops raises nothing; the last record at the stop never does
    handle.stats.update(packets_received=3000)
    daemon.write_stats(T0 + 180, periodic=True)
    handle.stats.update(packets_received=3001, kernel_dropped=1000)
    daemon.write_stats(T0 + 190)
    assert len(notices(tmp_path)) == 1
    daemon.notice_log.close()


def test_the_capture_loss_switch_and_a_zero_threshold_turn_it_off(tmp_path: Path) -> None:
    for threshold, switched_on in ((0.0, True), (0.1, False)):
        out = tmp_path / f"{threshold}-{switched_on}"
        out.mkdir()
        daemon, handle = daemon_for(out, capture_loss_threshold=threshold)
        setattr(daemon.cfg.detection.notices, CAPTURE_LOSS.switch, switched_on)
        handle.stats.update(packets_received=1000, kernel_dropped=900)
        daemon.write_stats(T0 + 60, periodic=True)
        assert notices(out) == []
        daemon.notice_log.close()


def test_a_failing_textfile_write_is_logged_once_and_the_daemon_goes_on(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    daemon, _ = daemon_for(tmp_path, prometheus_textfile="icmpsensor.prom")
    (tmp_path / "icmpsensor.prom").mkdir()  # rename() over a directory fails
    for t in (60, 120):
        daemon.write_stats(T0 + t, periodic=True)
    err = capsys.readouterr().err
    assert err.count("cannot write the Prometheus metrics") == 1, err
    (tmp_path / "icmpsensor.prom").rmdir()
    daemon.write_stats(T0 + 180, periodic=True)
    assert samples((tmp_path / "icmpsensor.prom").read_text())[("icmpsensor_packets_read_total", ())] == 990
    daemon.notice_log.close()


def test_workers_report_the_largest_detection_lag_and_the_batches_queued_in_all() -> None:
    """Detection lag is how far behind the wire the slowest worker runs, not a sum; queued batches add up."""
    rec = stats_record(now=T0 + 60, started=T0, name="edge-1", interface="eth1",
                       workers=[worker(detection_lag=0.5, detection_lag_max=9.0, queued_batches=2, queued_bytes=100),
                                worker(detection_lag=4.0, detection_lag_max=5.0, queued_batches=7, queued_bytes=50)],
                       notices=0, write_errors=0, backlog=0, lost=0, journal_errors=0)
    assert rec["detection_lag"] == 4.0 and rec["detection_lag_max"] == 9.0 and rec["queued_batches"] == 9
    assert rec["queued_bytes"] == 150
