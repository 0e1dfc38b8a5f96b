"""Bounded memory: per-flow cost, and a flood of spoofed sources with a real exfil inside.

The flood has three times as many sources as the largest table has room for (flows, outstanding
requests and host pairs: 100,000 each by default), so every table fills and evicts for most of it.
The million-source flood end to end is the benchmark's (`python -m bench.throughput --flood-sources
1000000`, peak RSS per stage).
"""

from __future__ import annotations

import gc
import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from icmpsensor.config.schema import DetectionConfig
from tests import early
from tests.early import Job
from tests.hypothesis_counts import examples

# Worst case for a flow: a random (novel) payload from its own source, so it also holds a pending request, a
# tool-tracker entry, a payload sketch and its source's spread memory (with the payload's hash). 50,000 such flows,
# all state the detector keeps, measured in a process of its own (started early: tests/early.py).
PER_FLOW = r"""
import dataclasses, json, os, struct, tracemalloc
from icmpsensor.config.schema import AllowlistConfig, DetectionConfig
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.detect.profile import make_detector

count = 50_000
cfg = dataclasses.replace(DetectionConfig(), max_flows=10**6, max_pending_requests=10**6)
det = make_detector(cfg, AllowlistConfig())
dst = bytes([198, 51, 100, 7])
packets = [IcmpPacket(1000.0 + i * 1e-4, struct.pack("!I", 0x0A000000 + i), dst, False, 8, 0, 1, 1,
                      os.urandom(56), 98) for i in range(count)]
tracemalloc.start()
try:
    before = tracemalloc.get_traced_memory()[0]
    for pkt in packets:
        det.process(pkt)
    per_flow = (tracemalloc.get_traced_memory()[0] - before) / count
finally:
    tracemalloc.stop()
print(json.dumps({"count": count, "flow_count": det.flow_count, "per_flow": per_flow}))
"""


def test_detector_state_is_at_most_1_3_kb_per_flow(runs: dict[str, Job[dict[str, object]]]) -> None:
    result = runs["test_detector_state_is_at_most_1_3_kb_per_flow"].result()
    assert result["flow_count"] == result["count"]
    print(f"detector state per flow: {result['per_flow']:.0f} bytes")
    assert result["per_flow"] <= 1331  # type: ignore[operator]  # 1.3 KB


# Worst case for a flow of many requests: each of 18 a new identifier and sequence number with a random payload,
# so the flow follows 16 runs side by side (capacity.RUNS_REMEMBERED), its capacity state and the bytes charged per
# channel. What a flow adds once the tables with caps of their own are full (the tool tracker's (src, dst, ident)
# entries, the pending requests: max_pending_requests): the state of 10,000 more such flows, over 10,000.
PER_BUSY_FLOW = r"""
import dataclasses, json, os, struct, tracemalloc
from icmpsensor.config.schema import AllowlistConfig, DetectionConfig
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.detect.profile import make_detector

count = 10_000
cfg = dataclasses.replace(DetectionConfig(), max_flows=10**6, max_pending_requests=1_000)
det = make_detector(cfg, AllowlistConfig())
dst = bytes([198, 51, 100, 7])

def flows(first):
    return sorted((IcmpPacket(1000.0 + i * 1e-4 + k * 1e-6, struct.pack("!I", 0x0A000000 + i), dst, False, 8, 0,
                              1000 + 37 * k, 300 + 11 * k, os.urandom(56), 98)
                   for i in range(first, first + count) for k in range(18)), key=lambda p: p.ts)

tracemalloc.start()
try:
    for pkt in flows(0):
        det.process(pkt)
    more = flows(count)
    before = tracemalloc.get_traced_memory()[0]
    for pkt in more:
        det.process(pkt)
    del pkt
    per_flow = (tracemalloc.get_traced_memory()[0] - before) / count
finally:
    tracemalloc.stop()
print(json.dumps({"count": 2 * count, "flow_count": det.flow_count, "per_flow": per_flow}))
"""


def test_a_flow_of_many_runs_holds_at_most_4_5_kb(runs: dict[str, Job[dict[str, object]]]) -> None:
    """The documented worst case of a flow (performance.md, Memory: ~4.0 KB measured): max_flows of them, ~0.4 GB
    at the default 100,000, beside the tables capped on their own."""
    result = runs["test_a_flow_of_many_runs_holds_at_most_4_5_kb"].result()
    assert result["flow_count"] == result["count"]
    print(f"detector state per busy flow: {result['per_flow']:.0f} bytes")
    assert result["per_flow"] <= 4608  # type: ignore[operator]  # 4.5 KB


FLOOD = r"""
import json, struct, sys
from icmpsensor.config.schema import AllowlistConfig, DetectionConfig
import dataclasses
from icmpsensor.detect.profile import make_detector
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.runmode.stats import peak_rss_kb

sources, max_flows = int(sys.argv[1]), int(sys.argv[2])
cfg = dataclasses.replace(DetectionConfig(), max_flows=max_flows)
det = make_detector(cfg, AllowlistConfig())
victim, exfil_src, target = bytes([203, 0, 113, 5]), bytes([10, 99, 0, 1]), bytes([198, 51, 100, 7])
payloads = [bytes((i * 7 + j) & 0xFF for j in range(56)) for i in range(256)]
secret = bytes((i * 31 + i // 7) & 0xFF for i in range(8000))
notices = []
t = 1_700_000_000.0
step = 100.0 / sources  # the flood lasts 100 s of packet time
chunk = 0
for i in range(sources):
    t += step
    src = struct.pack("!I", 0x0B000000 + i)  # a new spoofed source per packet
    notices.extend(det.process(IcmpPacket(t, src, victim, False, 8, 0, i & 0xFFFF, 1, payloads[i & 0xFF], 98)))
    if i % (sources // 200) == 0 and chunk < 80:  # 80 chunks of 100 bytes, one every 0.5 s
        data = secret[chunk * 100:(chunk + 1) * 100]
        notices.extend(det.process(IcmpPacket(t, exfil_src, target, False, 8, 0, 77, chunk, data, 142)))
        chunk += 1
tables = {"flows": det.flow_count, "pending": det.pending_count}
notices.extend(det.flush())
rss_mb = peak_rss_kb() / 1024  # VmHWM: ru_maxrss would include the (large) pytest parent's
exfil = [(n.note, n.src, n.dst) for n in notices if n.src == "10.99.0.1"]
print(json.dumps({"rss_mb": rss_mb, "exfil": exfil, "flows_evicted": det.stats.flows_evicted,
                  "notices": len(notices), "flows_max": max_flows, "tables": tables}))
"""


def script(source: str, *args: object) -> Callable[[], dict[str, object]]:
    """A job (tests/early.py): `source` run by a Python of its own (its peak RSS is its own), its JSON line."""
    run = early.process([sys.executable, "-c", source, *map(str, args)])

    def result() -> dict[str, object]:
        proc = run()
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    return result


def three_times_every_cap() -> tuple[int, int]:
    """(sources, max_flows): three times as many sources as the largest table has room for, the default tables."""
    cfg = DetectionConfig()
    return 3 * max(cfg.max_flows, cfg.max_pending_requests, cfg.max_pairs), cfg.max_flows


# the script each test reads the result of, and its arguments (FLOOD: sources, max_flows)
RUNS: dict[str, tuple[object, ...]] = {
    "test_detector_state_is_at_most_1_3_kb_per_flow": (PER_FLOW,),
    "test_a_flow_of_many_runs_holds_at_most_4_5_kb": (PER_BUSY_FLOW,),
    "test_a_flood_three_times_every_cap_stays_bounded_and_the_exfil_is_still_reported": (FLOOD,
                                                                                       *three_times_every_cap()),
    "test_eviction_keeps_the_flow_accumulating_evidence": (FLOOD, 200_000, 2_000)}


_EARLY: dict[str, Job[dict[str, object]]] = {}  # the runs queued when the session's tests were known (start_early)


def start_early(selected: set[str], tmp_path_factory: pytest.TempPathFactory) -> None:
    """tests/conftest.py calls this once collection is over, with the names of the tests to run: the runs of those
    here are queued on the early lane (tests/early.py), done beside the tests before this module."""
    for name, (source, *args) in RUNS.items():
        if name in selected and name not in _EARLY:
            _EARLY[name] = early.LANE.queue(script(source, *args))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest) -> dict[str, Job[dict[str, object]]]:
    """The runs of the tests here that are to run: queued early (start_early), or started now beside each other
    and beside the tests here; each test reads its run's result."""
    selected = {getattr(item, "originalname", item.name) for item in request.session.items}
    found = {}
    for name, (source, *args) in RUNS.items():
        if name in selected:
            job = _EARLY.pop(name, None)
            if job is None:
                job = early.Job(script(source, *args))  # type: ignore[arg-type]
                threading.Thread(target=job.run, daemon=True).start()
            found[name] = job
    return found


@pytest.fixture
def flood(request: pytest.FixtureRequest, runs: dict[str, Job[dict[str, object]]]) -> dict[str, object]:
    """The result of this test's flood (RUNS)."""
    return runs[request.node.originalname].result()


def test_a_flood_three_times_every_cap_stays_bounded_and_the_exfil_is_still_reported(flood: dict[str, object]) -> None:
    cfg = DetectionConfig()
    sources, max_flows = three_times_every_cap()
    result = flood
    print(result)
    assert result["flows_max"] == max_flows == cfg.max_flows
    assert result["rss_mb"] < 300  # type: ignore[operator]
    assert result["tables"] == {"flows": cfg.max_flows, "pending": cfg.max_pending_requests}
    assert ["ICMP::ICMP_DataExfil", "10.99.0.1", "198.51.100.7"] in result["exfil"]  # type: ignore[operator]
    assert result["flows_evicted"] >= sources - cfg.max_flows  # type: ignore[operator]


def test_eviction_keeps_the_flow_accumulating_evidence(flood: dict[str, object]) -> None:
    # With room for only 2,000 flows, 2,500 flood flows pass between two exfil packets: plain LRU
    # would forget the exfil flow every time and it would never reach the novel-bytes threshold.
    result = flood
    assert ["ICMP::ICMP_DataExfil", "10.99.0.1", "198.51.100.7"] in result["exfil"]  # type: ignore[operator]


def test_the_spread_memory_is_bounded_over_all_hosts_not_only_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each host remembers up to SPREAD_PEERS_KEPT peers for ExfilSpread, and a table up to max_pairs hosts: 100,000
    x 4,096 peer addresses (~29 GB) for a flood that spreads novel bytes from many sources to many destinations.
    The peers kept over all the hosts of a table are capped (SPREAD_PEER_ENTRIES), the least recently active hosts
    forgotten first (counted); a host spreading now is still reported."""
    import tracemalloc

    from icmpsensor.config.schema import AllowlistConfig
    from icmpsensor.detect import standard
    from icmpsensor.detect.flows import Flow
    from icmpsensor.detect.profile import make_detector

    cap = 20_000
    monkeypatch.setattr(standard, "SPREAD_PEER_ENTRIES", cap, raising=False)
    det = make_detector(DetectionConfig(), AllowlistConfig())
    assert isinstance(det, standard.Detector)

    def spread(src: int, dst: int, novel: int) -> None:
        det.now += 1e-3
        flow = Flow((0x0A000000 + src).to_bytes(4, "big"), (0xC6000000 + dst).to_bytes(4, "big"), det.now, det.now,
                    False)
        det._spread(flow, novel)

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for src in range(120):  # 120 sources x 1,500 destinations: 180,000 peers in each table unbounded (~23 MB)
            for dst in range(1_500):
                spread(src, 10_000 + src * 1_500 + dst, 1)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held <= 8_000_000, held
    assert det.stats.spread_hosts_evicted > 0
    det._due.clear()
    for dst in range(20):  # a sender spreading now, after the flood
        spread(99_999, dst, 200)
    assert any(n.note == "ICMP::ICMP_ExfilSpread" and n.src == "10.1.134.159" for n in det._due)


def test_a_flood_flow_makes_no_capacity_state() -> None:
    """A one-packet flow of a flood (a novel payload from a source of its own) costs no FlowChannels: the capacity
    state is made when a channel needs it (detect/capacity.py), not for every novel payload."""
    import os
    import struct

    from icmpsensor.config.schema import AllowlistConfig
    from icmpsensor.decode.packet import IcmpPacket
    from icmpsensor.detect.profile import make_detector

    det = make_detector(DetectionConfig(), AllowlistConfig())
    for i, size in enumerate((56, 500, 1400)):
        det.process(IcmpPacket(1000.0 + i, struct.pack("!I", 0x0A000000 + i), bytes([198, 51, 100, 7]), False, 8, 0,
                               1, 1, os.urandom(size), size + 28))
    flows = det.flows()
    assert len(flows) == 3 and all(flow.novel_bytes for flow in flows)
    assert [flow.channels for flow in flows] == [None, None, None]


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 60), st.booleans()), max_size=300),
       limit=st.integers(1, 12), cap=st.integers(1, 30))
def test_a_host_tables_peer_count_is_the_sum_of_its_hosts(ops: list[tuple[int, int, bool]], limit: int, cap: int,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """HostTable keeps `peer_entries`, the peers remembered over all its hosts, as hosts gain peers and are forgotten
    (the least recently active eighth, past `limit` hosts or SPREAD_PEER_ENTRIES peers): it is the sum of what its
    hosts hold, within the cap, after every step; what it forgets is counted."""
    from icmpsensor.detect import standard

    monkeypatch.setattr(standard, "SPREAD_PEER_ENTRIES", cap)
    table = standard.HostTable(limit)
    for step, (host, peer, add) in enumerate(ops):
        memory = table.touch(bytes([host]), float(step))
        if add:
            table.add(memory, float(step), 1, bytes([peer]), 3600.0)
        assert table.peer_entries == sum(m.peer_count() for m in table.hosts.values())
        assert table.peer_entries <= cap and len(table.hosts) <= limit
    assert table.stats.spread_hosts_evicted >= len({host for host, _, _ in ops}) - len(table.hosts)


def test_a_full_host_tables_shed_runs_no_python_line_a_forgotten_host() -> None:
    """A storm longer than the hosts' table (max_pairs sources) sheds an eighth at once (of the least recently active
    quarter, the fewest peers), and counts the peers they held off peer_entries: with the accelerators built, in C
    (_fastflows.shed_hosts and peers_held; _shed_hosts_py and SpreadMemory.peer_count the references), not a Python
    line or three a forgotten host. The
    count is the sum of what the hosts left hold (and the hypothesis test above holds it so at every step)."""
    from icmpsensor.detect import standard, tunnels

    if tunnels._fasttools is None or standard._fastflows is None:
        pytest.skip("the C accelerators are turned off or not built")
    table = standard.HostTable(8_000)
    for host in range(8_000):
        memory = table.touch(host.to_bytes(4, "big"), float(host))
        for peer in range(host % 3):  # none, one (kept as itself) and two peers (a set)
            table.add(memory, float(host), 1, peer.to_bytes(4, "big"), 3600.0)
    assert table.peer_entries == sum(m.peer_count() for m in table.hosts.values()) == 7_999
    from tests.python_lines import lines_run
    lines = lines_run(lambda: table._shed(9_000.0))
    assert len(table.hosts) == 8_000 - 1_001 and table.stats.spread_hosts_evicted == 1_001
    # the quarter (2,001 hosts) kept its 1,000 with most peers: no host without a peer, 333 of 667 with one
    left = [m.peer_count() for m in list(table.hosts.values())[:1_000]]
    assert (left.count(0), left.count(1), left.count(2)) == (0, 333, 667)
    assert table.peer_entries == sum(m.peer_count() for m in table.hosts.values())
    assert lines <= 10, lines


def test_a_workers_tables_leave_the_young_generation_before_its_first_packet(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker.run settles the collector before the first batch (pipeline.settle_gc): the pipeline and its detector's
    tables, made before any packet and alive as long as the process, are in the collector's oldest generation when
    the first packet comes, so that the first young collection a storm brings does not walk tables of tens of
    thousands of entries (docs/performance.md)."""
    from icmpsensor.config.schema import Config
    from icmpsensor.runmode.pipeline import Pipeline
    from icmpsensor.runmode.replay import replay_pipeline
    from testkit import craft

    path = tmp_path / "one.pcap"
    craft.write_pcap(path, [(1.0, craft.ether(craft.icmp4("10.0.0.1", "10.0.0.2", 8, 0, 1, 1, b"x" * 32)))])
    cfg = Config()
    cfg.output.log_dir = str(tmp_path)
    pipeline = Pipeline(cfg, [])
    tables = [pipeline.detector._flows, pipeline.detector._pending, pipeline.detector._pairs]  # type: ignore[attr-defined]
    young: list[bool] = []
    feed = Pipeline.feed_batch

    def first_batch(self: Pipeline, *args: object) -> None:
        if not young:
            in_young = {id(o) for o in gc.get_objects(0)} | {id(o) for o in gc.get_objects(1)}
            young.extend(id(table) in in_young for table in tables)
        feed(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Pipeline, "feed_batch", first_batch)
    gc.collect(0)  # the tables now in the middle generation: only a settled collector moves them on
    assert any(any(o is table for o in gc.get_objects(1)) for table in tables)
    replay_pipeline(pipeline, [str(path)])
    pipeline.close()
    assert young == [False, False, False]
