"""The real readers of Zeek logs on the sensor's own notice.log, from the seed captures (issue 14): zat
(ZeekLogReader on TSV, JSONLogToDataFrame on JSON), parsezeeklogs (TSV and JSON, plain and --ecs),
zeek-reports' zeek-notice-report (TSV, as Zeek archives it), and zeek-cut-style awk over #fields. Each must
find every notice the JSON log holds, with its addresses.

The captures are shifted to today, so that zeek-notice-report (which reports on days relative to today)
(the last seven days) counts them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dpkt
import pytest

from testkit.cli import run_cli_here
from testkit.paths import SEED_DIR, seed_captures_present

pytestmark = pytest.mark.seed

BIN = Path(sys.executable).parent
Key = tuple[str, str, str, int]  # note, source, destination, n


def shifted_captures(seed_dir: Path, out: Path) -> list[Path]:
    """The seed's pcaps with their timestamps moved so that the last capture begins ten minutes ago (they
    span a day: the first begins about a day ago)."""
    paths = sorted(seed_dir.glob("*.pcap"))
    last = max(next(iter(dpkt.pcap.Reader(p.open("rb"))))[0] for p in paths)
    offset = int(time.time() - 600 - last)
    result = []
    for path in paths:
        with path.open("rb") as src, (out / path.name).open("wb") as dst:
            reader = dpkt.pcap.Reader(src)
            writer = dpkt.pcap.Writer(dst, linktype=reader.datalink(), snaplen=reader.snaplen)
            for ts, frame in reader:
                writer.writepkt(frame, ts + offset)
        result.append(out / path.name)
    return result


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not seed_captures_present():
        pytest.skip(f"reference captures not found at {SEED_DIR} (expected ../shared/seed beside the repo)")
    base = tmp_path_factory.mktemp("zeek-clients")
    captures = shifted_captures(SEED_DIR, base)
    dirs = {}
    for fmt in ("json", "tsv"):
        log_dir = base / fmt
        log_dir.mkdir()
        cfg = base / f"{fmt}.yaml"
        cfg.write_text(f"output:\n  format: {fmt}\n  evidence:\n    enabled: false\n")
        args = [arg for path in captures for arg in ("-r", path)]
        result = run_cli_here(*args, "-c", cfg, "--log-dir", log_dir)
        assert result.returncode == 0, result.stderr
        dirs[fmt] = log_dir / "notice.log"
    return dirs


def json_notices(path: Path) -> Counter[Key]:
    return Counter((r["note"], r["id.orig_h"], r["id.resp_h"], r["n"])
                   for r in map(json.loads, path.read_text().splitlines()))


@pytest.fixture(scope="module")
def expected(logs: dict[str, Path]) -> Counter[Key]:
    notices = json_notices(logs["json"])
    assert sum(notices.values()) >= 5, "every seed capture is an exfiltration"
    return notices


def run(*argv: str | Path, cwd: Path | None = None) -> str:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_tsv_log_has_zeeks_header_and_the_same_notices_through_zeek_cut(logs: dict[str, Path],
                                                                        expected: Counter[Key]) -> None:
    text = logs["tsv"].read_text()
    assert text.startswith("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
                           "#path\tnotice\n#open\t")
    assert text.endswith("\n") and text.splitlines()[-1].startswith("#close\t")
    # zeek-cut as sites write it: columns by name from #fields
    awk = ('BEGIN{FS=OFS="\\t"} /^#fields/{for(i=2;i<=NF;i++)c[$i]=i-1; next} /^#/{next} '
           '{print $c["note"], $c["id.orig_h"], $c["id.resp_h"], $c["n"]}')
    rows = [line.split("\t") for line in run("awk", awk, logs["tsv"]).splitlines()]
    assert Counter((note, src, dst, int(n)) for note, src, dst, n in rows) == expected


def test_zat_reads_tsv_with_zeeklogreader_and_json_with_jsonlogtodataframe(logs: dict[str, Path],
                                                                           expected: Counter[Key]) -> None:
    from zat.json_log_to_dataframe import JSONLogToDataFrame
    from zat.zeek_log_reader import ZeekLogReader

    rows = list(ZeekLogReader(str(logs["tsv"])).readrows())
    assert Counter((r["note"], str(r["id.orig_h"]), str(r["id.resp_h"]), int(r["n"])) for r in rows) == expected
    frame = JSONLogToDataFrame().create_dataframe(str(logs["json"]))
    found = Counter(zip(frame["note"].astype(str), frame["id.orig_h"].astype(str), frame["id.resp_h"].astype(str),
                        frame["n"].astype(int), strict=True))
    assert found == expected


@pytest.mark.parametrize("fmt", ["json", "tsv"])
def test_parsezeeklogs_reads_both_formats_plain_and_as_ecs(logs: dict[str, Path], expected: Counter[Key],
                                                           fmt: str) -> None:
    plain = [json.loads(line) for line in run(BIN / "parsezeeklogs", "json", logs[fmt]).splitlines()]
    assert Counter((r["note"], r["id.orig_h"], r["id.resp_h"], r["n"]) for r in plain) == expected
    ecs = [json.loads(line) for line in run(BIN / "parsezeeklogs", "json", "--ecs", logs[fmt]).splitlines()]
    assert Counter((d["zeek"]["notice"]["note"], d["source"]["ip"], d["destination"]["ip"], d["zeek"]["notice"]["n"])
                   for d in ecs) == expected
    assert all(d["event"]["dataset"] == "zeek.notice" for d in ecs)


def test_zeek_notice_report_counts_every_notice_with_its_source(logs: dict[str, Path], expected: Counter[Key],
                                                                tmp_path: Path) -> None:
    # laid out as Zeek archives: today's log in current/
    (tmp_path / "logs" / "current").mkdir(parents=True)
    os.link(logs["tsv"], tmp_path / "logs" / "current" / "notice.log")
    networks = tmp_path / "networks.cfg"  # zeekctl's networks.cfg: the internal ranges
    networks.write_text("10.0.0.0/8\tPrivate IP space\n192.168.0.0/16\tPrivate IP space\n")
    report = tmp_path / "report.txt"
    run(BIN / "zeek-notice-report", "--period", "weekly", "--include-today", "--no-baseline", "--networks", networks,
        "--log-root", tmp_path / "logs", "--output", report, "--output-dir", tmp_path)
    text = report.read_text()
    assert f"Total notices: {sum(expected.values())}" in text
    assert "missing src: 0" in text and "missing dst: 0" in text
    for _, src, _, _ in expected:
        assert f"  {src} (" in text


@pytest.mark.parametrize("fmt", ["json", "tsv"])
def test_a_log_without_notices_is_readable_by_parsezeeklogs(tmp_path: Path, fmt: str) -> None:
    from testkit.cli import write_capture

    capture = write_capture(tmp_path, [])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"output:\n  format: {fmt}\n")
    result = run_cli_here("-r", capture, "-c", cfg, "--log-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    notice_log = tmp_path / "notice.log"
    if fmt == "json":
        assert not notice_log.exists(), "no empty JSON notice.log is left (no parser can read a 0-byte log)"
    else:
        assert run(BIN / "parsezeeklogs", "json", notice_log) == ""
        assert run(BIN / "parsezeeklogs", "fields", notice_log)
