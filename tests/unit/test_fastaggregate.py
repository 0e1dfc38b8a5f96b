"""The notice aggregator's fold in C (notice/_fastaggregate.c) against its Python reference (notice/aggregate.py
NoticeAggregator._fold and the methods it calls): the same notices written, the same aggregates told, the same state
after every step, on random notice streams that reach every branch (notes folded per host and per note only, flows
whose first notice was written or folded, summaries, hosts and uids missing, every quota and limit reached)."""

from __future__ import annotations

import collections
import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from icmpsensor.notice import aggregate
from icmpsensor.notice.aggregate import NoticeAggregator
from icmpsensor.notice.record import Notice

NOTES = ("ICMP::ICMP_DataExfil", "ICMP::ICMP_ExfilSummary", "ICMP::ICMP_Tunnel", "ICMP::ICMP_ExfilSpread",
         "ICMP::ICMP_SlowExfil", "ICMP::ICMP_UnpairedEchoReply")
HOSTS = ("", "10.0.0.1", "10.0.0.2", "10.0.0.3", "2001:db8::1", "198.51.100.7")
UIDS = ("", "C1", "C2", "C3", "C4", "C5", "C6")
T0 = 1_700_000_000.0

pytestmark = pytest.mark.skipif(aggregate._fastaggregate is None,
                                reason="the C fold is not built (ICMPSENSOR_PURE_PYTHON, or a source tree)")


def weighted(common: tuple[object, ...], rare: tuple[object, ...]) -> st.SearchStrategy:
    """One of `common` three times in four, else one of `rare`: a stream mostly of a storm's notices (small flows,
    both hosts, close together), which a quota folds and a fold meets again (a known peer), with every other case
    among them (uniform draws folded 14 notices in 200 streams, none of them a known peer's)."""
    return st.one_of(st.sampled_from(common), st.sampled_from(common), st.sampled_from(common), st.sampled_from(rare))


@st.composite
def notices(draw: st.DrawFn) -> Notice:
    dt = draw(weighted((0.0, 0.001), (0.3, 1.5, 70.0)))
    hosts = weighted(HOSTS[1:4], HOSTS)
    # a flow's uid: one of a few (its later notices), a new one (another flow of a storm), or none
    uid = draw(st.one_of(st.sampled_from(UIDS), st.integers(0, 10**6).map(lambda i: f"N{i}")))
    return Notice(ts=dt, note=draw(weighted(NOTES[:2], NOTES)), msg="m", sub="s", src=draw(hosts),
                  dst=draw(hosts), uid=uid, n=1, bytes_sent=draw(weighted((500, 501), (0, 1, 10**6, 2**70))),
                  bytes_received=0, start=0.0, end=0.0)


settings_ = st.tuples(st.sampled_from((0.5, 5.0, 60.0)), st.integers(1, 3), st.integers(0, 4),
                      st.sampled_from((0, 1, 3, 5)))
# a step: a batch of notices through filter(), the clock advanced, the interval's end (flush), or a reload's new
# settings (aggregation switched off too)
batches = st.lists(notices(), min_size=1, max_size=16)
steps = st.lists(st.one_of(batches, batches, batches,
                           st.tuples(st.just("advance"), st.sampled_from((0.5, 1.0, 2.0, 61.0))),
                           st.just("flush"),
                           st.tuples(st.just("reload"), st.one_of(settings_, st.just((0.0, 1, 1, 0))))),
                 min_size=6, max_size=40)


def at(notice: Notice, ts: float) -> Notice:
    """A copy of the drawn notice at the time `ts`."""
    return Notice(ts, notice.note, notice.msg, notice.sub, notice.src, notice.dst, notice.uid, notice.n,
                  notice.bytes_sent, notice.bytes_received, ts, ts)


def told(notices: list[Notice]) -> list[tuple[object, ...]]:
    return [(n.ts, n.note, n.src, n.dst, n.uid, n.n, n.bytes_sent, n.start, n.end, n.peers, n.msg, n.sub)
            for n in notices]


def state(agg: NoticeAggregator) -> tuple[object, ...]:
    folds = [(key, dataclasses.astuple(fold)) for key, fold in agg._folds.items()]
    return (folds, list(agg._written.items()), list(agg._uids.items()), agg.folded, agg._peer_entries,
            agg._last_folded, agg.aggregates, agg.window_start)


def tried_then_filtered(fast: NoticeAggregator, notices: list[Notice], handed: list[Notice] | None = None
                        ) -> list[Notice]:
    """What a detector's C path does with each notice it raises: it asks the C filter's try_fold first, and makes
    the notice and hands it to the filter (appended to `handed`) only where try_fold declined (having changed
    nothing: checked but with `handed`)."""
    _, kept = fast.stop_hooks()
    out: list[Notice] = []
    for notice in notices:
        before = state(fast) if handed is None else None
        if not hasattr(kept, "try_fold") or not kept.try_fold(notice.ts, notice.note, notice.src, notice.dst,
                                                               notice.uid, notice.bytes_sent):
            assert before is None or state(fast) == before
            out += kept([notice])
            if handed is not None:
                handed.append(notice)
    return out


def run_both(config: tuple[float, int, int, int], plan: list[object], try_first: bool = False) -> None:
    """`try_first`: each notice offered to the C filter's try_fold before it is handed to the filter."""
    interval, max_notices, sample, max_per_note = config
    reference = NoticeAggregator(interval, max_notices, sample, max_per_note, accelerated=False)
    fast = NoticeAggregator(interval, max_notices, sample, max_per_note)
    assert fast._filter_in_c is not None and reference._filter_in_c is None
    clock = T0
    for step in plan:
        if step == "flush":
            outs = [agg.flush() for agg in (reference, fast)]
        elif isinstance(step, tuple) and step[0] == "reload":
            for agg in (reference, fast):
                agg.reconfigure(*step[1])  # type: ignore[arg-type]
            outs = [[], []]
        elif isinstance(step, tuple):
            clock += step[1]  # type: ignore[operator]
            outs = [agg.advance(clock) for agg in (reference, fast)]
        else:
            batch = []
            for notice in step:  # type: ignore[attr-defined]
                clock += notice.ts
                batch.append((clock, notice))
            folds, kept = fast.stop_hooks()  # what the detector's C path calls: filter's C loop
            made = [at(n, ts) for ts, n in batch]
            outs = [reference.filter([at(n, ts) for ts, n in batch]),
                    tried_then_filtered(fast, made) if try_first else kept(made)]
        assert told(outs[1]) == told(outs[0])
        assert state(fast) == state(reference)
        folds, _ = fast.stop_hooks()
        assert [folds(uid) for uid in UIDS] == [reference.folds(uid) for uid in UIDS]


@settings(max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", 400)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(config=settings_, plan=steps)
def test_the_c_fold_does_what_the_python_fold_does(config: tuple[float, int, int, int], plan: list[object]) -> None:
    run_both(config, plan)


@settings(max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", 400)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(config=settings_, plan=steps)
def test_a_notice_try_fold_folds_is_one_the_filter_folds(config: tuple[float, int, int, int],
                                                          plan: list[object]) -> None:
    """try_fold (what the detector's C path asks before it makes a notice) folds a notice exactly where filter()
    would fold it and tell nothing, as filter would; elsewhere it changes nothing, and filter does the rest."""
    run_both(config, plan, try_first=True)


@contextmanager
def limits(**values: object) -> Iterator[None]:
    """The module's limits made small (the C fold bound to them), then restored."""
    saved = {name: getattr(aggregate, name) for name in values}
    try:
        for name, value in values.items():
            setattr(aggregate, name, value)
        aggregate.bind_accelerator()
        yield
    finally:
        for name, value in saved.items():
            setattr(aggregate, name, value)
        aggregate.bind_accelerator()


@settings(max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", 200)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(config=settings_, plan=steps, try_first=st.booleans())
def test_and_so_at_every_limit(config: tuple[float, int, int, int], plan: list[object], try_first: bool) -> None:
    """MAX_UIDS (the oldest eighth forgotten: the C fold hands that step to Python), MAX_KEYS, MAX_PEERS and
    MAX_PEER_ENTRIES reached within a few notices; each notice offered to try_fold first or not."""
    with limits(MAX_UIDS=3, MAX_KEYS=4, MAX_PEERS=2, MAX_PEER_ENTRIES=3):
        run_both(config, plan, try_first)


def test_the_notes_the_c_fold_asks_about_are_those_bound_last() -> None:
    """The C fold keeps what it asked of a note (in NOT_PER_HOST, in PER_PACKET, the summary's) for the notes it saw
    last: bound again with other sets, it asks again."""
    def stream(start: float) -> list[Notice]:
        return [Notice(ts=start + i, note=note, msg="m", sub="s", src=f"10.0.0.{i}", dst="198.51.100.7", uid=f"C{i}",
                       n=1, bytes_sent=500, bytes_received=0, start=start, end=start)
                for i in range(6) for note in ("ICMP::ICMP_DataExfil", "ICMP::ICMP_UnpairedEchoReply")]

    for rebound in ({"NOT_PER_HOST": frozenset(("ICMP::ICMP_DataExfil",))},
                    {"PER_PACKET": frozenset(("ICMP::ICMP_DataExfil",))}):
        reference = NoticeAggregator(60.0, 2, 3, 3, accelerated=False)
        fast = NoticeAggregator(60.0, 2, 3, 3)
        assert told(fast.filter(stream(T0))) == told(reference.filter(stream(T0)))  # the notes asked about
        with limits(**rebound):
            assert told(fast.filter(stream(T0 + 10))) == told(reference.filter(stream(T0 + 10)))
            assert state(fast) == state(reference)


def test_a_folded_flows_later_notice_does_not_remember_its_flow_again() -> None:
    """_fold folds a later notice of a flow whose first was folded without remembering the flow again
    (_fold_under(notice, *under): no uid). The C fold remembered it again, which with MAX_UIDS remembered forgot the
    oldest eighth where the reference forgets nothing (found by the property test above once its streams folded)."""
    def notice(uid: str, i: int) -> Notice:
        return Notice(ts=T0 + i * 0.01, note="ICMP::ICMP_DataExfil", msg="m", sub="s", src="10.0.0.1",
                      dst="10.0.0.2", uid=uid, n=1, bytes_sent=500, bytes_received=0, start=T0, end=T0)

    # U0 written, U1-U8 folded (U0 forgotten, the oldest eighth of eight), then U8 again
    stream = [notice(f"U{i}", i) for i in range(9)] + [notice("U8", 9)]
    with limits(MAX_UIDS=3):
        reference = NoticeAggregator(60.0, 1, 3, 0, accelerated=False)
        fast = NoticeAggregator(60.0, 1, 3, 0)
        assert told(fast.filter(stream)) == told(reference.filter(stream))
        assert list(fast._uids) == list(reference._uids) == [f"U{i}" for i in range(1, 9)]
        assert state(fast) == state(reference)


def test_a_storm_is_folded_alike() -> None:
    """20,000 one-packet flows from spoofed sources to one host, their DataExfil then their ExfilSummary."""
    def storm() -> Iterator[Notice]:
        for note, start in (("ICMP::ICMP_DataExfil", T0), ("ICMP::ICMP_ExfilSummary", T0 + 30)):
            for i in range(20_000):
                yield Notice(ts=start + i * 1e-4, note=note, msg="m", sub="s", src=f"100.64.{i // 250}.{i % 250}",
                             dst="198.51.100.7", uid=f"C{i}", n=1, bytes_sent=500 + i % 7, bytes_received=0,
                             start=T0, end=T0)

    reference = NoticeAggregator(60.0, 10, 3, 100, accelerated=False)
    fast = NoticeAggregator(60.0, 10, 3, 100)
    assert told(fast.filter(storm())) == told(reference.filter(storm()))
    assert state(fast) == state(reference)
    assert told(fast.flush()) == told(reference.flush())
    assert fast.folded == 2 * 20_000 - 20
    # as the detector's C path asks: each notice offered to try_fold first, the filter handed those it declines
    reference = NoticeAggregator(60.0, 10, 3, 100, accelerated=False)
    tried = NoticeAggregator(60.0, 10, 3, 100)
    handed: list[Notice] = []
    written = tried_then_filtered(tried, list(storm()), handed)
    assert told(written) == told(reference.filter(storm()))
    assert state(tried) == state(reference)
    # the quota's ten DataExfil and their ten summaries handed to the filter (the first summary tells the DataExfil
    # folds, QUIET after them), every other notice folded before it was made
    assert len(handed) == 20 and len(written) == 21
    assert told(tried.flush()) == told(reference.flush())


def test_a_broken_aggregator_is_an_error_not_a_crash() -> None:
    agg = NoticeAggregator(60.0, 1, 3)
    agg._written = []  # type: ignore[assignment]
    with pytest.raises(TypeError):
        agg.filter([Notice(ts=T0, note="ICMP::ICMP_DataExfil", msg="", sub="", src="a", dst="b", uid="C1", n=1,
                           bytes_sent=1, bytes_received=0, start=T0, end=T0)])
    for not_notices in (["not a notice"], 5):
        with pytest.raises(TypeError):
            aggregate._fastaggregate.filter(NoticeAggregator(60.0, 1, 3), not_notices)


def test_the_hooks_a_detectors_c_path_calls_are_c_functions_bound_to_the_aggregator() -> None:
    """stop_hooks(): NoticeAggregator.folds and filter as the C functions (_fastaggregate.folds and filter) bound
    to the aggregator, no Python frame a call; while aggregation is off, filter's answer (the notices as they are)
    is list's. The uids a folds() is asked about that are not a dict's keys are an error, as the method's."""
    agg = NoticeAggregator(60.0, 1, 3)
    folds, kept = agg.stop_hooks()
    assert folds.func is aggregate._fastaggregate.folds and folds.args == (agg,)  # type: ignore[attr-defined]
    assert type(kept) is aggregate._fastaggregate.Filter and kept.aggregator is agg  # type: ignore[attr-defined]
    for wrong in (lambda: aggregate._fastaggregate.Filter("not an aggregator"), lambda: kept(),
                  lambda: kept([], []), lambda: kept.try_fold(T0, "ICMP::ICMP_DataExfil"),
                  lambda: kept(["not a notice"])):
        with pytest.raises(TypeError):
            wrong()
    with pytest.raises(TypeError):
        folds(["not hashable"])
    with pytest.raises(TypeError):
        aggregate._fastaggregate.folds("not an aggregator", "C1")
    assert not folds("") and not folds(None) and not folds("C1")
    agg._uids = {"C1": None, "C2": ("to", "10.0.0.1")}
    assert [folds(uid) for uid in ("C1", "C2", "C3")] == [False, True, False]
    agg._uids = collections.OrderedDict(agg._uids)  # not a dict: the method's answer
    assert [folds(uid) for uid in ("C1", "C2", "C3")] == [False, True, False]
    agg.reconfigure(0.0, 1, 3, 0)
    assert agg.stop_hooks()[1] is list
    assert NoticeAggregator(60.0, 1, 3, accelerated=False).stop_hooks()[1].__func__ is NoticeAggregator.filter
