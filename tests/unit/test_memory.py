"""Bounded memory: per-flow cost, and a flood of spoofed sources with a real exfil inside.

The flood has three times as many sources as the largest table has room for (flows, outstanding
requests and host pairs: 100,000 each by default), so every table fills and evicts for most of it.
The million-source flood end to end is the benchmark's (`python -m bench.throughput --flood-sources
1000000`, peak RSS per stage).
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import struct
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator

import pytest

from icmpsensor.config.schema import AllowlistConfig, DetectionConfig
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.detect.profile import make_detector
from testkit.paths import REPO


def test_detector_state_is_at_most_1_3_kb_per_flow() -> None:
    # Worst case for a flow: a random (novel) payload from its own source, so it also holds a pending
    # request, a tool-tracker entry, a payload sketch and its source's spread memory (with the payload's
    # hash). 50,000 such flows, all state the detector keeps.
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
    assert det.flow_count == count
    print(f"detector state per flow: {per_flow:.0f} bytes")
    assert per_flow <= 1331  # 1.3 KB


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


class Flood:
    """The flood script in its own process (its peak RSS is its own)."""

    def __init__(self, sources: int, max_flows: int) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", FLOOD, str(sources), str(max_flows)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)

    def result(self) -> dict[str, object]:
        try:
            stdout, stderr = self.proc.communicate(timeout=600)
        finally:
            self.kill()
        assert self.proc.returncode == 0, stderr
        return json.loads(stdout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def three_times_every_cap() -> tuple[int, int]:
    """(sources, max_flows): three times as many sources as the largest table has room for, the default tables."""
    cfg = DetectionConfig()
    return 3 * max(cfg.max_flows, cfg.max_pending_requests, cfg.max_pairs), cfg.max_flows


# the flood of each test that runs one: (sources, max_flows)
FLOODS = {"test_a_flood_three_times_every_cap_stays_bounded_and_the_exfil_is_still_reported": three_times_every_cap(),
          "test_eviction_keeps_the_flow_accumulating_evidence": (200_000, 2_000)}


_EARLY: dict[str, Flood] = {}  # floods started when the session's tests were known (start_early)


def start_early(selected: set[str]) -> None:
    """tests/conftest.py calls this once collection is over, with the names of the tests to run: the floods of
    those here start now, in processes of their own, and run beside the tests before this module."""
    for name, size in FLOODS.items():
        if name in selected and name not in _EARLY:
            _EARLY[name] = Flood(*size)
    atexit.register(_kill_early)  # a session that ends before this module (-x) leaves no flood behind


def _kill_early() -> None:
    for flood in _EARLY.values():
        flood.kill()


@pytest.fixture(scope="module", autouse=True)
def floods(request: pytest.FixtureRequest) -> Iterator[dict[str, Flood]]:
    """The floods of the tests here that are to run: started early (start_early) or now, beside each other and
    beside the in-process test; each test reads its flood's result."""
    selected = {getattr(item, "originalname", item.name) for item in request.session.items}
    started = {name: _EARLY.pop(name, None) or Flood(*size) for name, size in FLOODS.items() if name in selected}
    yield started
    for flood in started.values():
        flood.kill()


@pytest.fixture
def flood(request: pytest.FixtureRequest, floods: dict[str, Flood]) -> dict[str, object]:
    """The result of this test's flood (FLOODS)."""
    return floods[request.node.originalname].result()


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
