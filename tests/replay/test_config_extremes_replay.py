"""The keys a replay reads outside detection (decoding, notice.log rotation, stats, the capture's batches) at each
end of their documented range, through the command line on a capture of every kind of traffic (fragments, VLANs,
IPv6, a notice storm, exfiltration): a valid configuration file gives exit 0 and a whole notice.log (the detection
and evidence keys: tests/unit/test_config_extremes.py)."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pytest

from icmpsensor import cli
from icmpsensor.config.fields import config_fields
from icmpsensor.config.schema import CaptureConfig, DecodeConfig, RotationConfig, StatsConfig
from testkit import craft, synthmix
from tests.unit.test_config_extremes import range_ends

SECTIONS = {"decode": DecodeConfig, "output.rotation": RotationConfig, "stats": StatsConfig,
            "capture": CaptureConfig}
NOT_IN_A_REPLAY = {"capture": {"buffer_size", "reopen_timeout"}}  # live only: a replay never reads them


def extremes() -> list[tuple[str, str, object]]:
    return [(section, key.name, value) for section, cls in SECTIONS.items() for key in config_fields(cls)
            if key.name not in NOT_IN_A_REPLAY.get(section, ())
            for value in range_ends(key.kind)]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("extremes")
    mix, storm = base / "mix.pcap", base / "storm.pcap"
    synthmix.generate(mix, packets=3000, seed=5)
    synthmix.generate(storm, packets=400, seed=5, kind="storm_pairs")
    frames: list[tuple[float, bytes]] = []
    for path in (mix, storm):
        with path.open("rb") as file:
            frames += [(ts, bytes(frame)) for ts, frame in dpkt.pcap.Reader(file)]
    both = base / "both.pcap"  # the storm within the mix's hour
    craft.write_pcap(both, sorted(frames))
    return both


@pytest.fixture
def in_process() -> Iterator[None]:
    """cli.main sets SIGPIPE's disposition; it is put back afterwards."""
    previous = signal.getsignal(signal.SIGPIPE)
    yield
    signal.signal(signal.SIGPIPE, previous)


@pytest.mark.parametrize(("section", "name", "value"), extremes())
def test_a_key_at_either_end_of_its_range_replays_every_kind_of_traffic(
        section: str, name: str, value: object, capture: Path, tmp_path: Path, in_process: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "icmpsensor.yaml"
    outer, _, inner = section.partition(".")
    body = f"    {name}: {value}\n" if inner else f"  {name}: {value}\n"
    config.write_text(f"{outer}:\n" + (f"  {inner}:\n" if inner else "") + body)
    out = tmp_path / "out"
    out.mkdir()
    code = cli.main(["-c", str(config), "-r", str(capture), "--log-dir", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    text = "".join(p.read_text() for p in sorted(out.glob("notice.log*")) if p.suffix != ".gz")
    assert text.endswith("\n") and all(json.loads(line)["note"] for line in text.splitlines())
