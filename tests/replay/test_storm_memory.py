"""A notice storm must not erase what the slow detections remember (issue 13: hostile load must not blind the sensor).

End to end through `icmpsensor -r`: bursts of spoofed alerting echo requests (1,200 random bytes each, random sources
across 10/8, 300 a second), more new pairs in each burst than `detection.max_pairs` holds, between the requests of a
slow exfiltration (200 bytes every 10 minutes: SlowExfil at 2,000) and of a host spreading 150 bytes to a new peer
every 10 minutes (three peers before the storm; ExfilSpread at 16 peers). The unit tests' storms
(tests/unit/test_detect_standard.py) are regular and small; this one is random, and goes through the pipeline, the
aggregator and notice.log.
"""

from __future__ import annotations

import random
from pathlib import Path

from testkit import craft
from testkit.cli import run_cli_here, write_capture

T0 = 1_765_000_000.0
SLOW = ("172.16.5.9", "203.0.113.9")
SPREADER = "172.16.5.10"
VICTIM = "198.51.100.7"
MAX_PAIRS = 400


def storm_capture(tmp_path: Path, burst: int) -> Path:
    rng = random.Random(1207)
    packets: list[tuple[float, bytes]] = []
    for k in range(12):
        t = T0 + k * 600
        packets.append((t, craft.icmp4(*SLOW, 8, 0, 0x4242, k, rng.randbytes(200))))
        peers = [f"192.0.2.{100 + m}" for m in range(3)] if k == 0 else [f"192.0.2.{k}"]
        for m, peer in enumerate(peers):
            packets.append((t + 300 + m * 10, craft.icmp4(SPREADER, peer, 8, 0, 0x77, k * 3 + m, rng.randbytes(150))))
        for j in range(burst if k else 0):
            src = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            packets.append((t + 1 + j / 300, craft.icmp4(src, VICTIM, 8, 0, rng.randrange(65536), 1,
                                                         rng.randbytes(1200), ip_id=rng.randrange(65536))))
    for k in range(12, 14):
        packets.append((T0 + k * 600 + 300, craft.icmp4(SPREADER, f"192.0.2.{k}", 8, 0, 0x77, k * 3,
                                                        rng.randbytes(150))))
    packets.sort(key=lambda p: p[0])
    return write_capture(tmp_path, packets)


def test_a_storm_past_the_tables_leaves_slow_exfil_and_exfil_spread_told(tmp_path: Path) -> None:
    """The module's storm, 440 new pairs a burst through a table of 400: the slow exfiltration's SlowExfil and the
    spreader's ExfilSpread in notice.log, as without the storm (the old eviction told neither)."""
    capture = storm_capture(tmp_path, burst=MAX_PAIRS * 11 // 10)
    config = tmp_path / "icmpsensor.yaml"
    config.write_text(f"detection:\n  max_pairs: {MAX_PAIRS}\noutput:\n  evidence:\n    enabled: false\n")
    (tmp_path / "logs").mkdir()
    result = run_cli_here("-r", capture, "-c", config, log_dir=tmp_path / "logs")
    assert result.returncode == 0, result.stderr
    told = {(n["note"], n["src"], n["dst"]) for n in result.notices}
    assert ("ICMP::ICMP_SlowExfil", *SLOW) in told
    assert ("ICMP::ICMP_ExfilSpread", SPREADER, "192.0.2.13") in told  # its 16th peer
    storm = [n for n in result.notices if n["dst"] == VICTIM and n["note"] == "ICMP::ICMP_DataExfil"]
    assert storm, "the storm alerts (its notices folded past the aggregation's quota)"


def test_a_storm_faster_than_the_flow_table_turns_over_leaves_a_flow_under_the_thresholds_whole(
        tmp_path: Path) -> None:
    """A continuous storm of alerting requests (120 new spoofed sources a second, 300 random bytes each: past the
    256 of DataExfil) through a flow table of 100 flows, turned over in under a second, while a host sends 200 new
    bytes every 10 s to another: its flow stays whole, its second request (400 bytes) told, and once."""
    rng = random.Random(712)
    packets: list[tuple[float, bytes]] = []
    for j in range(40 * 120):
        src = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        packets.append((T0 + j / 120, craft.icmp4(src, VICTIM, 8, 0, rng.randrange(65536), 1, rng.randbytes(300),
                                                 ip_id=rng.randrange(65536))))
    for k in range(4):
        packets.append((T0 + 5 + k * 10, craft.icmp4(*SLOW, 8, 0, 0x4242, k, rng.randbytes(200))))
    packets.sort(key=lambda p: p[0])
    capture = write_capture(tmp_path, packets)
    config = tmp_path / "icmpsensor.yaml"
    config.write_text("detection:\n  max_flows: 100\noutput:\n  evidence:\n    enabled: false\n")
    (tmp_path / "logs").mkdir()
    result = run_cli_here("-r", capture, "-c", config, log_dir=tmp_path / "logs")
    assert result.returncode == 0, result.stderr
    told = [n for n in result.notices if (n["src"], n["dst"]) == SLOW and n["note"] == "ICMP::ICMP_DataExfil"]
    # told at its second request, once: told, it outlives the storm's one-packet alerted flows
    assert [n["ts"] for n in told] == [T0 + 15]
