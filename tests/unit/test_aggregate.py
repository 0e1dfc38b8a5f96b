"""Notice storms folded into counts (notice/aggregate.py, issue 13), alone and in the pipeline."""

from __future__ import annotations

import dataclasses
import random
import struct

from icmpsensor.config.schema import Config
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.notice.aggregate import NoticeAggregator
from icmpsensor.notice.record import Notice
from icmpsensor.output.sink import ListSink
from icmpsensor.runmode.pipeline import Pipeline

T0 = 1_700_000_000.0
VICTIM = "198.51.100.7"


def notice(ts: float, src: str, dst: str = VICTIM, note: str = "ICMP::ICMP_DataExfil", uid: str = "") -> Notice:
    return Notice(ts=ts, note=note, msg="m", sub="s", src=src, dst=dst, uid=uid or f"C{src}-{dst}", n=1,
                  bytes_sent=500, bytes_received=0, start=ts, end=ts)


def test_a_storm_towards_one_host_becomes_its_first_notices_and_one_aggregate_per_interval() -> None:
    agg = NoticeAggregator(interval=60.0, max_notices=10, sample=3)
    written = agg.filter(notice(T0 + i * 0.01, f"100.64.{i // 250}.{i % 250}") for i in range(2000))
    assert len(written) == 10 and agg.folded == 1990
    later = agg.filter([notice(T0 + 61, "10.0.0.9", dst="203.0.113.1")])  # the interval ended
    aggregate = later[0]
    assert aggregate.note == "ICMP::ICMP_DataExfil" and aggregate.dst == VICTIM and aggregate.n == 1990
    assert aggregate.peers == 1990 and aggregate.bytes_sent == 1990 * 500
    assert "1990 more ICMP_DataExfil notices to 198.51.100.7" in aggregate.msg
    assert aggregate.sub.startswith("Aggregated: 1990 notices, 1990 sources")
    assert later[1].dst == "203.0.113.1"  # a quiet host is not folded


def test_a_folded_flow_stays_folded_and_a_written_one_stays_written() -> None:
    agg = NoticeAggregator(interval=60.0, max_notices=2, sample=3)
    first = [notice(T0 + i * 0.1, f"10.0.0.{i}", uid=f"C{i}") for i in range(5)]
    assert [n.uid for n in agg.filter(first)] == ["C0", "C1"]
    summaries = [notice(T0 + 400 + i * 0.1, f"10.0.0.{i}", note="ICMP::ICMP_ExfilSummary", uid=f"C{i}")
                 for i in range(5)]
    written = agg.filter(summaries)  # minutes later, in another interval
    assert [n.uid for n in written if n.uid] == ["C0", "C1"]
    assert agg.folded == 3 + 3
    tail = agg.flush()
    assert {n.note for n in tail} == {"ICMP::ICMP_ExfilSummary"} and tail[0].n == 3


def test_a_flows_memory_ends_with_its_summary() -> None:
    """How a flow's first notice went is kept until its ExfilSummary (a flow has no notice after it), not until
    MAX_UIDS flows later: a storm of 300,000 distinct sources grew the sensor by ~220 bytes a flow for the
    aggregator alone (165 MB more at 1,000,000), and a flow whose summary came long ago needs nothing."""
    agg = NoticeAggregator(interval=60.0, max_notices=10, sample=3)
    for i in range(3000):
        src = f"100.64.{i // 250}.{i % 250}"
        agg.filter([notice(T0 + i * 0.01, src, uid=f"C{i}")])
        agg.filter([notice(T0 + i * 0.01, src, note="ICMP::ICMP_ExfilSummary", uid=f"C{i}")])
    assert len(agg._uids) == 0
    assert agg.folded == 2 * 2990  # the first ten flows written whole, every other folded whole
    live = agg.filter([notice(T0 + 40, "10.0.0.1", uid="Clive")])  # the storm's aggregates are told first
    assert [n.uid for n in live] == ["", ""] and len(agg._uids) == 1  # folded; a flow still alive is remembered
    summary = agg.filter([notice(T0 + 40.5, "10.0.0.1", note="ICMP::ICMP_ExfilSummary", uid="Clive")])
    assert summary == [] and len(agg._uids) == 0  # its summary folded with it, and forgotten


def test_aggregates_and_spread_notes_are_never_folded_and_zero_switches_it_off() -> None:
    agg = NoticeAggregator(interval=60.0, max_notices=1, sample=3)
    spread = [notice(T0 + i, f"10.1.0.{i}", note="ICMP::ICMP_ExfilSpread") for i in range(20)]
    assert len(agg.filter(spread)) == 20
    off = NoticeAggregator(interval=0.0, max_notices=10, sample=3)
    assert len(off.filter(notice(T0 + i, f"10.2.0.{i}") for i in range(50))) == 50


def test_one_source_to_many_destinations_is_folded_by_source() -> None:
    agg = NoticeAggregator(interval=60.0, max_notices=5, sample=2)
    written = agg.filter(notice(T0 + i * 0.1, "10.9.9.9", dst=f"203.0.{i // 250}.{i % 250}") for i in range(300))
    assert len(written) == 5
    tail = agg.flush()
    assert len(tail) == 1 and tail[0].src == "10.9.9.9" and "to 295 destinations" in tail[0].msg


def storm(count: int) -> list[IcmpPacket]:
    rng = random.Random(7)
    dst = bytes((198, 51, 100, 7))
    return [IcmpPacket(T0 + i * 1e-3, struct.pack("!I", 0x64400000 + i), dst, False, 8, 0, i & 0xFFFF, 1,
                       rng.randbytes(500), 542) for i in range(count)]


def test_the_pipeline_writes_a_storm_as_its_first_notices_a_spread_and_aggregates() -> None:
    cfg = Config()
    cfg.output = dataclasses.replace(cfg.output, evidence=dataclasses.replace(cfg.output.evidence, enabled=False))
    sink = ListSink()
    pipeline = Pipeline(cfg, [sink])
    pipeline.detect(storm(5000))  # 5 s of packet time: one interval
    pipeline.finish()
    notes = [n.note for n in sink.notices]
    raised = pipeline.detector.stats.notices
    assert raised >= 10_000  # a DataExfil and an ExfilSummary per flow
    assert len(sink.notices) <= 40, notes
    assert notes.count("ICMP::ICMP_ExfilSpread") == 1
    aggregates = [n for n in sink.notices if n.sub.startswith("Aggregated:")]
    assert {n.note for n in aggregates} == {"ICMP::ICMP_DataExfil", "ICMP::ICMP_ExfilSummary"}
    # every notice the detector raised is in notice.log, as itself or counted in an aggregate
    assert len(sink.notices) - len(aggregates) + sum(n.n for n in aggregates) == raised
    stats = pipeline.stats()
    assert stats["notices_folded"] == sum(n.n for n in aggregates) and stats["notices_aggregated"] == len(aggregates)


def test_a_storm_from_thousands_of_sources_keeps_a_count_per_written_host_not_a_fold_per_source() -> None:
    agg = NoticeAggregator(interval=60.0, max_notices=10, sample=3)
    written = agg.filter(notice(T0 + i * 0.001, f"100.64.{i // 250}.{i % 250}") for i in range(5000))
    assert len(written) == 10 and agg.folded == 4990
    assert len(agg._folds) == 1  # the victim's: what the aggregate tells
    assert len(agg._written) == 1 + 10  # the victim, and the ten sources written as they came


def test_the_peers_remembered_over_all_folds_are_bounded_and_the_counts_stay_exact(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Each fold keeps up to MAX_PEERS distinct peers; over all the folds of an interval at most MAX_PEER_ENTRIES
    (with a day-long aggregation interval, a storm's folds would otherwise keep every source). Past it the count
    of notices and bytes stays exact and the peers read as a lower bound ("+")."""
    from icmpsensor.notice import aggregate

    monkeypatch.setattr(aggregate, "MAX_PEER_ENTRIES", 5_000, raising=False)
    agg = NoticeAggregator(interval=86400.0, max_notices=1, sample=3)
    targets = [f"203.0.113.{t}" for t in range(30)]
    agg.filter(notice(T0 + i * 1e-3, f"100.{64 + i // 65536}.{i // 256 % 256}.{i % 256}", targets[i % 30])
               for i in range(30_000))
    kept = sum(len(fold.peers) for fold in agg._folds.values())
    assert kept <= 5_000, kept
    aggregates = agg.flush()
    assert sum(a.n for a in aggregates) == 30_000 - 30 and len(aggregates) == 30
    assert sum("+ sources" in a.msg for a in aggregates) >= 25


def test_a_storm_that_is_over_is_told_at_once_and_the_intervals_quota_goes_on() -> None:
    """Issue 13, live: a storm's aggregate in notice.log within 2 s of its end, not at the end of the aggregation
    interval (60 s). Once nothing has been folded for QUIET seconds (a tick's clock, or the next notice's time),
    what was folded is told; the interval's quota of notices written as they come (max_notices per host) goes on,
    so a storm that pauses and comes back is not written out again."""
    from icmpsensor.notice.aggregate import QUIET

    agg = NoticeAggregator(interval=60.0, max_notices=10, sample=3)
    written = agg.filter(notice(T0 + i * 1e-3, f"100.64.{i // 250}.{i % 250}") for i in range(1000))
    assert len(written) == 10
    assert agg.advance(T0 + 1.0 + QUIET / 2) == []  # not quiet long enough
    told = agg.advance(T0 + 1.0 + QUIET)
    assert [(n.n, n.dst) for n in told] == [(990, VICTIM)] and told[0].sub.startswith("Aggregated:")
    again = agg.filter(notice(T0 + 5 + i * 1e-3, f"100.65.{i // 250}.{i % 250}") for i in range(500))
    assert again == []  # the interval's quota was used: all folded
    assert [n.n for n in agg.filter([notice(T0 + 7, "100.66.0.1")])] == [500]  # the next notice's time tells it
    assert [n.n for n in agg.flush()] == [1]
