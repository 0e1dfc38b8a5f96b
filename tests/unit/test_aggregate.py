"""Notice storms folded into counts (notice/aggregate.py, issue 13), alone and in the pipeline."""

from __future__ import annotations

import dataclasses
import gc
import random
import struct

import pytest

from icmpsensor.config.schema import Config
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.notice import aggregate as aggregate_module
from icmpsensor.notice.aggregate import NoticeAggregator
from icmpsensor.notice.record import Notice
from icmpsensor.output.sink import ListSink
from icmpsensor.runmode.pipeline import Pipeline

T0 = 1_700_000_000.0
VICTIM = "198.51.100.7"


def notice(ts: float, src: str, dst: str = VICTIM, note: str = "ICMP::ICMP_DataExfil", uid: str = "") -> Notice:
    return Notice(ts=ts, note=note, msg="m", sub="s", src=src, dst=dst, uid=uid or f"C{src}-{dst}", n=1,
                  bytes_sent=500, bytes_received=0, start=ts, end=ts)


def test_a_storm_towards_one_host_becomes_its_first_notices_and_one_aggregate() -> None:
    agg = NoticeAggregator(interval=60.0, max_notices=10, sample=3)
    written = agg.filter(notice(T0 + i * 0.004, f"100.64.{i // 250}.{i % 250}") for i in range(2000))  # 8 s
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


def test_spread_notes_are_not_folded_per_host_and_zero_switches_aggregation_off() -> None:
    agg = NoticeAggregator(interval=60.0, max_notices=1, sample=3)
    spread = [notice(T0 + i, f"10.1.0.{i}", note="ICMP::ICMP_ExfilSpread") for i in range(20)]
    assert len(agg.filter(spread)) == 20
    off = NoticeAggregator(interval=0.0, max_notices=10, sample=3)
    assert len(off.filter(notice(T0 + i, f"10.2.0.{i}") for i in range(50))) == 50


@pytest.mark.parametrize("switch", ["aggregate_interval", "aggregate_max_notices"])
def test_a_reload_that_switches_aggregation_off_still_tells_what_was_folded(switch: str) -> None:
    """aggregate_interval: 0 is accepted (its documentation offered it; the loader refused it): switched off by a
    reload in the middle of a storm, the notices folded before are told at the next tick, none lost, and the
    later ones written as they come."""
    cfg = Config()
    pipe = Pipeline(cfg, [sink := ListSink()])
    pipe.aggregator.filter(notice(T0 + i * 0.01, f"100.64.0.{i}") for i in range(50))
    assert pipe.aggregator.folded == 40
    off = dataclasses.replace(cfg, detection=dataclasses.replace(cfg.detection, **{switch: 0}))
    pipe.reconfigure(off)
    pipe.advance(T0 + 1)
    told = [n for n in sink.notices if n.sub.startswith("Aggregated:")]
    assert len(told) == 1 and told[0].n == 40, sink.notices
    assert len(pipe.aggregator.filter(notice(T0 + 2 + i * 0.01, f"100.65.0.{i}") for i in range(50))) == 50


def test_one_source_to_many_destinations_is_folded_by_source() -> None:
    agg = NoticeAggregator(interval=60.0, max_notices=5, sample=2)
    written = agg.filter(notice(T0 + i * 0.03, "10.9.9.9", dst=f"203.0.{i // 250}.{i % 250}") for i in range(300))
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


def test_the_aggregates_told_at_the_end_of_input_are_stamped_then_not_before_the_notices_written_before_them() \
        -> None:
    """At the end of input the flows still open end at the detector's clock, and their summaries are written
    stamped with it; the aggregates told after them are told at that clock too (as an interval's are at its end and
    a quiet storm's at the time it is found quiet), not at their last folded notice's time, which went backwards in
    notice.log (the storm's DataExfil aggregate before the summaries written just before it)."""
    cfg = Config()
    cfg.output = dataclasses.replace(cfg.output, evidence=dataclasses.replace(cfg.output.evidence, enabled=False))
    sink = ListSink()
    pipeline = Pipeline(cfg, [sink])
    packets = storm(2000)  # 2 s of packet time, then the last packet half a second later, of a quiet pair
    last = packets[-1].ts + 0.5
    packets.append(IcmpPacket(last, bytes((10, 0, 0, 1)), bytes((10, 0, 0, 2)), False, 8, 0, 1, 1, b"", 28))
    pipeline.detect(packets)
    pipeline.finish()
    stamps = [n.ts for n in sink.notices]
    aggregates = [n for n in sink.notices if n.sub.startswith("Aggregated:")]
    assert {n.note for n in aggregates} == {"ICMP::ICMP_DataExfil", "ICMP::ICMP_ExfilSummary"}
    assert stamps == sorted(stamps), [(n.note, n.ts) for n in sink.notices]
    assert all(n.ts == last for n in aggregates)
    assert all(n.end <= last for n in aggregates)  # the folded notices' own times are the aggregate's start, end


@pytest.mark.parametrize("accelerated", [True, False])
def test_a_note_raised_per_packet_is_folded_as_a_storm_is_whatever_its_flows_first_notice(accelerated: bool) -> None:
    """UnpairedEchoReply is raised for every reply that answers nothing: one flow of unsolicited replies (a
    one-sided view, or an attacker once the note is on) raised 6,000 notices in 10 minutes, all written, as a flow
    whose first notice was written keeps its later ones written. A note raised per packet is folded per host and
    per note as a storm's notices are."""
    agg = NoticeAggregator(interval=60.0, max_notices=10, sample=3, max_per_note=100, accelerated=accelerated)
    replies = [notice(T0 + i * 0.01, "10.9.9.9", "10.1.1.1", note="ICMP::ICMP_UnpairedEchoReply", uid="Cflow1")
               for i in range(600)]
    written = agg.filter(replies) + agg.flush()
    plain = [n for n in written if not n.sub.startswith("Aggregated:")]
    aggregates = [n for n in written if n.sub.startswith("Aggregated:")]
    assert len(plain) == 10
    assert [(n.note, n.n) for n in aggregates] == [("ICMP::ICMP_UnpairedEchoReply", 590)]


def test_a_storm_from_thousands_of_sources_keeps_a_count_per_written_host_not_a_fold_per_source() -> None:
    agg = NoticeAggregator(interval=60.0, max_notices=10, sample=3)
    written = agg.filter(notice(T0 + i * 0.001, f"100.64.{i // 250}.{i % 250}") for i in range(5000))
    assert len(written) == 10 and agg.folded == 4990
    assert len(agg._folds) == 1  # the victim's: what the aggregate tells
    assert len(agg._written) == 1 + 10 + 1  # the victim, the ten sources written as they came, the note


@pytest.mark.skipif(aggregate_module._fastaggregate is None, reason="the C accelerator is turned off or not built")
def test_what_the_c_fold_remembers_of_a_storms_flows_is_not_tracked_by_the_collector() -> None:
    """A storm's every flow leaves its uid's (role, host) in the aggregator's memory (_uids, until its summary):
    made in C, the pair of strings is left untracked, as the collector would untrack it the first time a collection
    walked it, so that young collections do not walk a storm's every one; the reference's are the collector's."""
    storm = [notice(T0 + i * 0.001, f"100.64.{i // 250}.{i % 250}") for i in range(3000)]
    fast, reference = NoticeAggregator(60.0, 10, 3), NoticeAggregator(60.0, 10, 3, accelerated=False)
    assert fast.filter(storm) == reference.filter(storm) and fast._uids == reference._uids
    folded = [under for under in fast._uids.values() if under is not None]
    assert len(folded) == 2990 and not any(gc.is_tracked(under) for under in folded)
    assert any(gc.is_tracked(under) for under in reference._uids.values() if under is not None)


@pytest.mark.parametrize("accelerated", [True, False], ids=["C fold", "Python fold"])
def test_the_peers_remembered_over_all_folds_are_bounded_and_the_counts_stay_exact(monkeypatch, accelerated) -> None:  # type: ignore[no-untyped-def]
    """Each fold keeps up to MAX_PEERS distinct peers; over all the folds of an interval at most MAX_PEER_ENTRIES
    (with a day-long aggregation interval, a storm's folds would otherwise keep every source). Past it the count
    of notices and bytes stays exact and the peers read as a lower bound ("+")."""
    from icmpsensor.notice import aggregate

    monkeypatch.setattr(aggregate, "MAX_PEER_ENTRIES", 5_000, raising=False)
    aggregate.bind_accelerator()  # the C fold takes the limits when bound
    try:
        agg = NoticeAggregator(interval=86400.0, max_notices=1, sample=3, accelerated=accelerated)
        targets = [f"203.0.113.{t}" for t in range(30)]
        agg.filter(notice(T0 + i * 2e-4, f"100.{64 + i // 65536}.{i // 256 % 256}.{i % 256}", targets[i % 30])
                   for i in range(30_000))
    finally:
        monkeypatch.undo()
        aggregate.bind_accelerator()
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


@pytest.mark.parametrize("accelerated", [True, False], ids=["C fold", "Python fold"])
def test_a_storm_kept_folding_by_a_trickle_is_told_max_hold_after_its_first_fold(accelerated: bool) -> None:
    """Red team 2026-12-06: one spoofed alerting flow every 0.8 s kept the storm from ever being quiet for QUIET
    seconds, so its aggregate (and the real exfiltration folded into it, named in its `largest`) was told only at
    the interval's end, up to 60 s later: the attacker decided when the storm was over. What was folded is told
    MAX_HOLD seconds after its first fold at the latest; the interval's quotas go on."""
    from icmpsensor.notice.aggregate import MAX_HOLD, QUIET

    agg = NoticeAggregator(interval=60.0, max_notices=10, sample=3, accelerated=accelerated)
    storm = [notice(T0 + i * 1e-3, f"100.64.{i // 250}.{i % 250}") for i in range(1000)]
    real = notice(T0 + 1.5, "192.0.2.99").replace(bytes_sent=40_000)
    trickle = [notice(T0 + 2 + i * 0.8 * QUIET, f"100.65.0.{i}") for i in range(100)]  # 80 s: past the interval
    out = agg.filter([*storm, real, *trickle])
    told = [n for n in out if n.sub.startswith("Aggregated:")]
    assert told, "the trickle held the storm's aggregate to the interval's end"
    first_fold = storm[10].ts
    assert told[0].ts <= first_fold + MAX_HOLD + 0.8 * QUIET
    assert "192.0.2.99 (40.00 KB)" in told[0].msg
    assert told[0].n == 990 + 1 + sum(t.ts < told[0].ts for t in trickle)
    held = [n.ts - n.start for n in told]
    assert max(held) <= MAX_HOLD + 0.8 * QUIET, held
    assert len(told) <= 80 / MAX_HOLD + 2
    assert sum(n.n for n in told) + sum(n.n for n in agg.flush()) == 990 + 1 + 100 - 10  # the next interval's 10


def test_an_aggregate_without_a_sample_still_names_its_hosts() -> None:
    """`aggregate_sample: 0` (a valid setting: name no peer) once crashed the sensor at the first aggregate: its
    src/dst were read from the sample. The aggregate names the first peer folded, and its text no sample."""
    agg = NoticeAggregator(interval=60.0, max_notices=2, sample=0)
    assert len(agg.filter(notice(T0 + i * 0.01, f"100.64.0.{i}") for i in range(20))) == 2
    (aggregate,) = agg.flush()
    assert (aggregate.src, aggregate.dst, aggregate.n, aggregate.peers) == ("100.64.0.2", VICTIM, 18, 18)
    assert "sample" not in aggregate.msg and "sample" not in aggregate.sub


def spray(count: int, start: float = T0, note: str = "ICMP::ICMP_DataExfil") -> list[Notice]:
    """A notice storm in which no host repeats: each alerted flow has a source and a destination of its own, so
    that folding per host (max_notices) folds nothing."""
    return [notice(start + i * 1e-3, f"100.64.{i // 250}.{i % 250}", f"203.0.{i // 250}.{i % 250}", note,
                   uid=f"C{note[-4:]}{i}") for i in range(count)]


def test_a_storm_of_distinct_pairs_is_folded_per_note_past_max_per_note() -> None:
    """Folding per destination and per source is defeated by a storm that never repeats a host (one spoofed
    source to one spoofed destination per flow): 20,000 such flows wrote 40,000 notices. Past max_per_note
    notices of one note in the interval, whatever their hosts, the rest are folded into one aggregate per note
    (Suricata's rate_filter track by_rule); a flow's later notices follow its first, as for the host folds."""
    agg = NoticeAggregator(interval=60.0, max_notices=10, sample=3, max_per_note=50)
    first = spray(2000)
    written = agg.filter(first)
    assert [n.uid for n in written] == [n.uid for n in first[:50]] and agg.folded == 1950
    summaries = [notice(n.ts + 5, n.src, n.dst, "ICMP::ICMP_ExfilSummary", n.uid) for n in first]
    later = agg.filter(summaries)  # the flows end 5 s on: the DataExfil aggregate is told first (QUIET)
    told = [n for n in later if not n.uid]
    assert [(n.note, n.n, n.peers) for n in told] == [("ICMP::ICMP_DataExfil", 1950, 1950)]
    (aggregate,) = told
    assert "1950 more ICMP_DataExfil notices within 60 s, between 1950 host pairs" in aggregate.msg
    assert (aggregate.src, aggregate.dst) == ("100.64.0.50", "203.0.0.50")  # the first folded pair
    sample = aggregate.msg.split("; sample: ")[1].split("; largest: ")[0].split(", ")  # drawn, weighted by bytes
    assert len(set(sample)) == 3 and set(sample) <= {f"{n.src}->{n.dst}" for n in first[50:]}
    assert aggregate.sub.startswith("Aggregated: 1950 notices, 1950 host pairs")
    assert [n.uid for n in later if n.uid] == [n.uid for n in first[:50]]  # the written flows' summaries
    (summaries_told,) = agg.flush()
    assert summaries_told.note == "ICMP::ICMP_ExfilSummary" and summaries_told.n == 1950
    assert agg.folded == 2 * 1950


def test_the_per_note_quota_is_per_note_and_per_interval_and_zero_switches_it_off() -> None:
    agg = NoticeAggregator(interval=60.0, max_notices=10, sample=3, max_per_note=20)
    assert len(agg.filter(spray(100))) == 20
    assert len(agg.filter(spray(100, T0 + 0.5, "ICMP::ICMP_Tunnel"))) == 20  # another note: its own quota
    next_interval = agg.filter(spray(100, T0 + 61))
    assert sum(1 for n in next_interval if n.uid) == 20  # a new interval, a new quota
    assert {n.n for n in next_interval if not n.uid} == {80}  # the first interval's aggregates, told first
    off = NoticeAggregator(interval=60.0, max_notices=10, sample=3, max_per_note=0)
    assert len(off.filter(spray(500))) == 500


def test_a_host_past_its_quota_is_folded_under_the_host_not_the_note() -> None:
    """The host folds come first: a storm towards one victim is told as the victim's, whatever the note's count."""
    agg = NoticeAggregator(interval=60.0, max_notices=10, sample=3, max_per_note=15)
    written = agg.filter(notice(T0 + i * 0.01, f"100.64.0.{i}") for i in range(200))
    assert len(written) == 10
    assert [(n.dst, n.n) for n in agg.flush()] == [(VICTIM, 190)]


def test_the_pipeline_folds_a_storm_of_distinct_pairs_by_note() -> None:
    """Default configuration, through the detector: 3,000 one-packet exfiltration flows, no host repeated."""
    cfg = Config()
    cfg.output = dataclasses.replace(cfg.output, evidence=dataclasses.replace(cfg.output.evidence, enabled=False))
    sink = ListSink()
    pipeline = Pipeline(cfg, [sink])
    rng = random.Random(3)
    pipeline.detect([IcmpPacket(T0 + i * 1e-3, struct.pack("!I", 0x64400000 + i), struct.pack("!I", 0xCB000000 + i),
                                False, 8, 0, 7, 1, rng.randbytes(500), 542) for i in range(3000)])
    pipeline.finish()
    raised = pipeline.detector.stats.notices
    assert raised >= 6000
    per_note = cfg.detection.aggregate_max_per_note
    aggregates = [n for n in sink.notices if n.sub.startswith("Aggregated:")]
    assert len(sink.notices) <= 2 * per_note + 10, len(sink.notices)
    assert {n.note for n in aggregates} == {"ICMP::ICMP_DataExfil", "ICMP::ICMP_ExfilSummary"}
    assert len(sink.notices) - len(aggregates) + sum(n.n for n in aggregates) == raised


def test_spread_and_slow_notes_are_folded_only_past_their_notes_quota_and_leave_the_flow_alone() -> None:
    """ExfilSpread and SlowExfil tell a host's (or a pair's) many flows already: no host quota folds them. But one
    ExfilSpread per spoofed source (each sending a few novel bytes to 16 peers) is a storm of them: 5,000 sources
    wrote 5,016 notices. Past the note's quota they are folded as any note is; the flow they were raised on keeps
    its own story (its DataExfil is written or folded on its own account)."""
    agg = NoticeAggregator(interval=60.0, max_notices=1, sample=3, max_per_note=30)
    spread = [notice(T0 + i * 0.01, f"10.1.{i // 250}.{i % 250}", f"203.0.113.{i % 16}", "ICMP::ICMP_ExfilSpread",
                     uid=f"C{i}") for i in range(500)]
    written = agg.filter(spread)
    assert [n.uid for n in written] == [n.uid for n in spread[:30]] and agg.folded == 470
    assert agg._uids == {}  # not a flow's first notice
    later = agg.filter([notice(T0 + 30, "10.1.0.40", "203.0.113.8", uid="C40")])  # that flow's DataExfil
    assert [n.uid for n in later if n.uid] == ["C40"]
    (aggregate,) = [n for n in later if not n.uid]
    assert aggregate.note == "ICMP::ICMP_ExfilSpread" and aggregate.n == 470
    assert "between 470 host pairs" in aggregate.msg


@pytest.mark.parametrize("accelerated", [True, False])
def test_a_notice_of_a_flow_bigger_than_a_storms_is_written_whatever_the_quotas(accelerated: bool) -> None:
    """An aggregate names its first folded peers and its three largest: 20 spoofed one-packet flows, then three
    decoy flows of 210 KB and five of 7 KB, hid a 200 KB exfiltration towards the same host (counted in the
    aggregates, named nowhere). A storm's flows are cheap because they are small; a notice of a flow that sent
    NEVER_FOLDED bytes or more is written whatever the quotas, and so is the rest of that flow's story."""
    agg = NoticeAggregator(interval=60.0, max_notices=10, sample=8, max_per_note=100, accelerated=accelerated)
    summary = "ICMP::ICMP_ExfilSummary"

    def ended(src: str, uid: str, sent: int, ts: float) -> Notice:
        return Notice(ts=ts, note=summary, msg="m", sub="s", src=src, dst=VICTIM, uid=uid, n=sent // 500,
                      bytes_sent=sent, bytes_received=0, start=T0, end=ts)

    storm = [notice(T0 + i * 0.01, f"10.9.0.{i}", uid=f"Cs{i}") for i in range(20)]
    decoys = [notice(T0 + 0.5 + i * 0.01, f"10.8.0.{i}", uid=f"Cd{i}") for i in range(8)]
    real = notice(T0 + 0.9, "10.1.2.3", uid="Creal")
    written = agg.filter([*storm, *decoys, real])
    assert "Creal" not in {n.uid for n in written}  # its DataExfil: small when raised, folded
    written += agg.filter([*(ended(n.src, n.uid, 500, T0 + 3) for n in storm),
                           *(ended(n.src, n.uid, 210_000 if i < 3 else 7_000, T0 + 4) for i, n in enumerate(decoys)),
                           ended(real.src, "Creal", 200_000, T0 + 5)])
    written += agg.flush()
    assert [(n.note, n.src, n.bytes_sent) for n in written if n.uid == "Creal"] == [(summary, "10.1.2.3", 200_000)]
    big = {n.src for n in written if n.note == summary and n.uid and n.bytes_sent > 7_000}
    assert big == {"10.1.2.3", "10.8.0.0", "10.8.0.1", "10.8.0.2"}
    # every notice raised is in notice.log, as itself or counted in an aggregate
    aggregates = [n for n in written if n.sub.startswith("Aggregated:")]
    assert len(written) - len(aggregates) + sum(n.n for n in aggregates) == 2 * (20 + 8 + 1)


def test_an_aggregate_names_its_largest_flows_so_that_a_storm_cannot_hide_a_real_exfiltration() -> None:
    """A storm is cheap: ~100 spoofed packets a minute use up a note's quota, and a real exfiltration's notices
    after it are folded. Its first notice comes when it crosses the threshold (then no bigger than the storm's),
    but its ExfilSummary carries its whole size: every aggregate names, beside its sample (the first peers), the
    peers of its largest folded notices by bytes sent."""
    agg = NoticeAggregator(interval=60.0, max_notices=10, sample=3, max_per_note=50)
    storm = spray(300)
    real = notice(T0 + 0.4, "192.0.2.66", "198.51.100.99", uid="Creal")
    written = agg.filter([*storm[:200], real, *storm[200:]])
    assert "Creal" not in {n.uid for n in written}
    # (under NEVER_FOLDED: a bigger flow's summary is written itself, the next test)
    summary = Notice(ts=T0 + 5, note="ICMP::ICMP_ExfilSummary", msg="m", sub="s", src=real.src, dst=real.dst,
                     uid="Creal", n=100, bytes_sent=50_000, bytes_received=0, start=T0, end=T0 + 5)
    ended = [notice(n.ts + 5, n.src, n.dst, "ICMP::ICMP_ExfilSummary", n.uid) for n in storm]
    agg.filter([*ended[:250], summary, *ended[250:]])
    (told,) = [n for n in agg.flush() if n.note == "ICMP::ICMP_ExfilSummary"]
    assert told.n == 251 and "192.0.2.66->198.51.100.99" not in told.msg.split("; largest: ")[0]
    assert "; largest: 192.0.2.66->198.51.100.99 (50.00 KB)" in told.msg
    assert "largest 192.0.2.66->198.51.100.99:50000" in told.sub


def decoy_hidden_exfiltration(key: int, decoys: int, decoy_bytes: int, accelerated: bool = True,
                              large: int = 0) -> list[Notice]:
    """Red team, 2026-12-08 (default settings but the key): ten one-packet spoofed flows spend the destination's
    quota, then `decoys` spoofed flows of `decoy_bytes` each, the first `large` of them 1 byte larger than the real
    flow (their DataExfil and ExfilSummary) are folded around a real 20 KB exfiltration's from 10.1.1.1, each
    decoy's notices just before the real flow's. What is told."""
    agg = NoticeAggregator(interval=60.0, max_notices=10, sample=8, max_per_note=100, accelerated=accelerated,
                           sample_key=key)

    def sized(ts: float, src: str, note: str, uid: str, bytes_sent: int) -> Notice:
        return Notice(ts=ts, note=note, msg="m", sub="s", src=src, dst=VICTIM, uid=uid, n=40, bytes_sent=bytes_sent,
                      bytes_received=0, start=ts, end=ts)

    rng = random.Random(key)
    burners = [notice(T0 + i * 0.01, f"172.16.1.{i}") for i in range(10)]
    firsts, summaries = [], []
    for i in range(decoys):
        src = f"172.16.{2 + i // 250}.{i % 250}"
        firsts.append(sized(T0 + 1 + i * 1e-4, src, "ICMP::ICMP_DataExfil", f"D{i}", 501))
        summaries.append(sized(T0 + 41 + i * 1e-4, src, "ICMP::ICMP_ExfilSummary", f"D{i}",
                               20_001 if i < large else decoy_bytes))
    real = sized(T0 + 1.5, "10.1.1.1", "ICMP::ICMP_DataExfil", "Creal", 500)
    real_summary = sized(T0 + 41.5, "10.1.1.1", "ICMP::ICMP_ExfilSummary", "Creal", 20_000)
    rng.shuffle(firsts)
    out = agg.filter([*burners, *firsts, real, *summaries, real_summary])
    return out + agg.flush()


def named(told: list[Notice], host: str) -> bool:
    return any(host in n.msg or host in n.src for n in told)


@pytest.mark.parametrize("accelerated", [True, False], ids=["c", "reference"])
def test_decoys_as_large_as_an_exfiltration_do_not_hide_it_from_the_aggregate(accelerated: bool) -> None:
    """Eleven decoys 1 byte larger than the real flow, sent first, filled both the sample (the first 8 peers folded)
    and `largest` (3): the real source was named nowhere (red team, 2026-12-08). The sample is drawn at random,
    weighted by bytes sent, by a key the attacker does not know: of 12 equal flows, 8 are named."""
    hits = sum(named(decoy_hidden_exfiltration(key, 11, 20_001, accelerated), "10.1.1.1") for key in range(200))
    assert hits >= 100, hits  # 8 of 12: two thirds expected; the first-come sample: never


@pytest.mark.parametrize("accelerated", [True, False], ids=["c", "reference"])
def test_many_small_decoys_do_not_hide_a_large_exfiltration(accelerated: bool) -> None:
    """Three decoys a byte larger than the real flow fill `largest`, and a hundred of 200 bytes each (as many bytes
    in all as the real flow) a first-come sample: the draw weighted by bytes names the real one almost always (the
    first-come sample never: it came after the first 8 decoys). Hiding a flow of S bytes so that it is named once in
    20 takes decoys of ~160 S in all, each under NEVER_FOLDED."""
    hits = sum(named(decoy_hidden_exfiltration(key, 103, 200, accelerated, large=3), "10.1.1.1")
               for key in range(100))
    assert hits >= 90, hits


def test_the_sample_is_the_same_for_the_same_key_and_differs_across_keys() -> None:
    told = [decoy_hidden_exfiltration(key, 40, 20_001) for key in (7, 7, 8)]
    samples = [[n.msg.split("; sample: ")[1] for n in t if not n.uid] for t in told]
    assert samples[0] == samples[1] and samples[0] != samples[2]
