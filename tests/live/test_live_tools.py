"""Real ICMP tunnel and exfiltration tools on the wire (needs root and the tools' Debian packages).

For each case of testkit/livetools.py the tool runs between two network namespaces, tcpdump
records what crossed the veth pair, and the capture is replayed through the CLI with the
default (standard) profile: at least one notice must name exactly the host the data left
from and its peer, in that order, and no notice may name any other pair (for a tunnel, whose
far end sends tunnel data back itself, the same two hosts the other way round are allowed:
see livetools.LIVE_TWO_WAY; for a spread, LIVE_EXPECTED's peer "*", the source and any of its
peers); on a benign case (LIVE_EXPECTED None) there must be no notice at all. What the
`original` profile reports on the same capture is
printed, not asserted (run with `-s` to see it). One more test runs the live daemon against
a real ptunnel-ng transfer.

Each case is skipped, with the precise reason, when a prerequisite is missing; as root with
the packages of `bash packaging/dev.sh setup` installed they all run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import livetools
from testkit.cli import run_cli
from testkit.livetools import (
    LIVE_CASES,
    LIVE_EXPECTED,
    LIVE_PROVENANCE,
    LIVE_TWO_WAY,
    ToolLab,
    capture_summary,
    first_exfil_time,
    missing_prerequisite,
)
from testkit.netlab import start_sensor, wait_for

pytestmark = pytest.mark.skipif(missing_prerequisite() is not None, reason=str(missing_prerequisite()))

ORIGINAL = "detection:\n  profile: original\n"


@pytest.fixture(scope="module")
def lab() -> Iterator[ToolLab]:
    lab = ToolLab()
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


def _pairs(notices: list[dict[str, object]]) -> set[tuple[str, str]]:
    return {(str(n["src"]), str(n["dst"])) for n in notices}


def _show(notices: list[dict[str, object]], since: float | None = None) -> str:
    lines = []
    for n in notices:
        delay = f" (+{float(n['ts']) - since:.3f} s)" if since is not None else ""  # type: ignore[arg-type]
        lines.append(f"    {n['note']} {n['src']} -> {n['dst']}{delay}: {str(n['msg'])[:160]}")
    return "\n".join(lines) or "    (no notice)"


@pytest.mark.parametrize("case", list(LIVE_CASES))
def test_real_tool_capture_is_reported_for_the_right_hosts(case: str, lab: ToolLab, tmp_path: Path) -> None:
    reason = missing_prerequisite(case)
    if reason:
        pytest.skip(reason)
    expected = LIVE_EXPECTED[case]
    src, dst = expected or (livetools.INSIDE, livetools.OUTSIDE)
    started = time.monotonic()
    pcap = livetools.capture(case, tmp_path / "capture", lab)  # made by test_capacity_live's run if it came first
    took = time.monotonic() - started
    first = first_exfil_time(pcap, src)
    assert first is not None, f"{case}: no ICMP payload from {src} in the capture: {capture_summary(pcap)}"

    standard_dir, original_dir = tmp_path / "standard", tmp_path / "original"
    standard_dir.mkdir()
    original_dir.mkdir()
    standard = run_cli("-r", pcap, log_dir=standard_dir, timeout=60)
    config = tmp_path / "original.yaml"
    config.write_text(ORIGINAL)
    original = run_cli("-r", pcap, "-c", config, log_dir=original_dir, timeout=60)

    print(f"\n{case}: {LIVE_PROVENANCE[case]}")
    print(f"  capture {took:.1f} s: {capture_summary(pcap)}; first exfil packet at {first:.6f}")
    print(f"  standard (exit {standard.returncode}):\n{_show(standard.notices, first)}")
    print(f"  original (exit {original.returncode}):\n{_show(original.notices, first)}")

    assert standard.returncode == 0, standard.stderr
    assert original.returncode == 0, original.stderr
    if expected is None:
        assert standard.notices == [], f"{case} (benign): the standard profile raised:\n{_show(standard.notices)}"
        return
    if dst == "*":
        assert {n["src"] for n in standard.notices} == {src}, f"{case}: notices:\n{_show(standard.notices)}"
        return
    allowed = {(src, dst), (dst, src)} if case in LIVE_TWO_WAY else {(src, dst)}
    named = _pairs(standard.notices)
    assert (src, dst) in named, f"{case}: the standard profile missed {src} -> {dst}:\n{_show(standard.notices)}"
    assert named <= allowed, f"{case}: notices name other pairs {named - allowed}:\n{_show(standard.notices)}"


def test_live_daemon_reports_a_real_ptunnel_ng_transfer(lab: ToolLab, tmp_path: Path) -> None:
    reason = missing_prerequisite("ptunnel-ng")
    if reason:
        pytest.skip(reason)
    src, dst = LIVE_EXPECTED["ptunnel-ng"]
    sensor = start_sensor(lab, tmp_path / "sensor", "detection:\n  idle_timeout: 2\n", journald=False)
    try:
        if not sensor.ready:
            code, _, err = sensor.stop()
            pytest.fail(f"sensor did not become ready (exit {code}): {err.strip()[-2000:]}")
        sent_at = time.time()
        livetools.run_ptunnel_ng(lab, tmp_path / "traffic")
        assert wait_for(lambda: (src, dst) in _pairs(sensor.notices()), 10), sensor.notices()
        seen_at = time.time()
        # The flow's summary comes on wall-clock expiry (idle_timeout 2 s).
        wait_for(lambda: any(n["note"] == "ICMP::ICMP_ExfilSummary" and n["src"] == src
                             for n in sensor.notices()), 10)
        code, _, err = sensor.stop()
    finally:
        if sensor.proc.poll() is None:
            sensor.proc.kill()
            sensor.proc.communicate(timeout=10)
        sensor.kill_journald()
    notices = sensor.notices()
    print(f"\nlive ptunnel-ng: {LIVE_PROVENANCE['ptunnel-ng']}")
    print(f"  traffic started at {sent_at:.3f}, first notice for {src} -> {dst} found in notice.log "
          f"{seen_at - sent_at:.2f} s later (the poll starts after the transfer and the tunnel's teardown)")
    print(_show(notices, sent_at))
    stats = [line for line in (sensor.log_dir / "stats.log").read_text().splitlines() if line] \
        if (sensor.log_dir / "stats.log").exists() else []
    if stats:
        last = json.loads(stats[-1])
        print(f"  sensor stats: packets_read {last.get('packets_read')}, kernel_dropped {last.get('kernel_dropped')}, "
              f"queue_dropped {last.get('queue_dropped')}")
    assert code == 0, err
    named = _pairs(notices)
    assert named <= {(src, dst), (dst, src)}, f"notices name other pairs: {named}"
