"""Every numeric detection and evidence key at each end of its documented range, through the whole pipeline on a
hostile mix (a storm towards one host, a storm that repeats no host, an exfiltration flow, a ping, unpaired
replies, ICMP errors, IPv6): a valid configuration never crashes the sensor, and every notice the detector raised
is still in the output as itself or counted in an aggregate. (`aggregate_sample: 0` did crash it: an aggregate's
hosts were read from its sample.)"""

from __future__ import annotations

import dataclasses
import random
import struct

import pytest

from icmpsensor.config.fields import config_fields
from icmpsensor.config.kinds import Fraction, Int, Kind, Seconds
from icmpsensor.config.schema import Config, DetectionConfig, EvidenceConfig
from icmpsensor.decode.packet import IcmpPacket
from icmpsensor.output.sink import ListSink
from icmpsensor.runmode.pipeline import Pipeline

T0 = 1_700_000_000.0


def _v4(i: int) -> bytes:
    return struct.pack("!I", i)


def hostile_mix() -> list[IcmpPacket]:
    rng = random.Random(11)
    packets: list[IcmpPacket] = []
    victim, v6_victim = _v4(0xC6336407), bytes.fromhex("20010db8000900000000000000000001")
    for i in range(150):
        ts = T0 + i * 0.01
        packets.append(IcmpPacket(ts, _v4(0x64400000 + i), victim, False, 8, 0, 5, 1, rng.randbytes(500), 542))
        packets.append(IcmpPacket(ts + 0.001, _v4(0x0B000000 + i), _v4(0x0C000000 + i), False, 8, 0, 5, 1,
                                  rng.randbytes(300), 342))
        packets.append(IcmpPacket(ts + 0.002, bytes.fromhex("20010db8000700000000000000000000")[:12] + _v4(i),
                                  v6_victim, True, 128, 0, 5, 1, rng.randbytes(200), 262))
        packets.append(IcmpPacket(ts + 0.003, _v4(0x0A000001), _v4(0x0A000002), False, 8, 0, 77, i,
                                  rng.randbytes(64), 106))  # exfiltration in one flow
        packets.append(IcmpPacket(ts + 0.004, _v4(0x0A000002), _v4(0x0A000001), False, 0, 0, 77, i,
                                  rng.randbytes(64), 106))  # its replies differ
        packets.append(IcmpPacket(ts + 0.005, _v4(0x0A000003), _v4(0x0A000004), False, 8, 0, 9, i,
                                  bytes(range(56)), 98))  # a ping
        packets.append(IcmpPacket(ts + 0.006, _v4(0x0D000000 + i), victim, False, 0, 0, 1, i, rng.randbytes(40),
                                  82))  # unpaired replies
        packets.append(IcmpPacket(ts + 0.007, _v4(0x0E000000 + i), victim, False, 3, 3, -1, -1,
                                  bytes(4) + rng.randbytes(60), 106))  # errors quoting random bytes
    return packets


PACKETS = hostile_mix()


def range_ends(kind: Kind) -> tuple[object, ...]:
    """A numeric kind's valid values at each end of its range (and 0 where it switches the key off); () for the
    others."""
    if isinstance(kind, Int):
        return kind.low, kind.high
    if isinstance(kind, Seconds):  # its low end is excluded
        return (*((0.0,) if kind.zero_means_off else ()), kind.low + 1e-3, kind.high)
    if isinstance(kind, Fraction):
        return 0.0, 1.0
    return ()


def extremes() -> list[tuple[str, str, object]]:
    return [(section, key.name, value)
            for section, cls in (("detection", DetectionConfig), ("evidence", EvidenceConfig))
            for key in config_fields(cls) for value in range_ends(key.kind)]  # type: ignore[arg-type]


@pytest.mark.parametrize(("section", "name", "value"), extremes())
def test_a_key_at_either_end_of_its_range_runs_the_hostile_mix(section: str, name: str, value: object,
                                                                tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = Config()
    cfg.output = dataclasses.replace(cfg.output, log_dir=str(tmp_path))
    if section == "detection":
        cfg.detection = dataclasses.replace(cfg.detection, **{name: value})
    else:
        cfg.output = dataclasses.replace(cfg.output, evidence=dataclasses.replace(cfg.output.evidence,
                                                                                   **{name: value}))
    sink = ListSink()
    pipeline = Pipeline(cfg, [sink])
    pipeline.detect(PACKETS)
    pipeline.finish()
    aggregates = [n for n in sink.notices if n.sub.startswith("Aggregated:")]
    raised = pipeline.detector.stats.notices
    assert len(sink.notices) - len(aggregates) + sum(n.n for n in aggregates) == raised
    stats = pipeline.stats()
    assert stats["notices_folded"] == sum(n.n for n in aggregates)
