"""The detection table (bench/detection_table.py), built without --live, meets its targets.

The standard profile catches every positive case and raises nothing on any negative case; the
original profile's results are computed too, and its known misses (the small seed transfers)
show up as misses.

The table is built (dt.build_table, as `python -m bench.detection_table` builds it) by a Python of its own, queued
first on the early lane (tests/early.py) once collection is over: it takes a dozen seconds of one core. Its rows
come back pickled, each case without the functions that made its packets.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import detection_table as dt
from testkit import benign_corpus, exfil_corpus
from tests import early

BUILD = r"""
import dataclasses, pickle, sys
from pathlib import Path
from bench import detection_table as dt

table = dt.build_table(live=False)
for row in table.rows:  # the rows as they are, but for the functions that made their packets (not picklable)
    pcap = row.case.pcap if isinstance(row.case.pcap, Path) else None
    row.case = dataclasses.replace(row.case, packets=None, frames=None, pcap=pcap)
Path(sys.argv[1]).write_bytes(pickle.dumps(table))
"""

_EARLY: dict[str, early.Job[Any]] = {}


def built(tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("detection-table") / "table.pickle"
    run = early.process([sys.executable, "-c", BUILD, str(out)])()
    assert run.returncode == 0, run.stderr
    return pickle.loads(Path(out).read_bytes())


def start_early(selected: set[str], tmp_path_factory: pytest.TempPathFactory) -> None:
    """tests/conftest.py calls this once collection is over: the table, first on the early lane (this module comes
    early in the session)."""
    if "table" not in _EARLY:
        _EARLY["table"] = early.LANE.queue(lambda: built(tmp_path_factory), first=True)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return (_EARLY.pop("table", None) or early.Job(lambda: built(tmp_path_factory))).result()


def _rows(table: Any, positive: bool) -> list[Any]:
    return [r for r in table.rows if r.case.positive is positive]


def test_every_labelled_case_is_in_the_table(table: Any) -> None:
    names = {r.case.name for r in table.rows}
    assert set(benign_corpus.BENIGN_CASES) <= names
    assert set(exfil_corpus.EXFIL_CASES) <= names
    assert {name for name, *_ in dt.EXTRA_CASES} <= names
    if (dt.SEED_DIR / "BEHAVIOUR.md").is_file():
        assert {name for name, _ in dt.SEED_CASES.values()} <= names
    assert all(r.case.provenance for r in table.rows)
    assert not [r for r in table.rows if r.case.group == "live"]


def test_positive_cases_really_carry_data_from_their_source(table: Any) -> None:
    # A crafted frame the decoder dropped would make a case vacuous.
    empty = [r.case.name for r in _rows(table, True) if not r.first_payload_seen]
    assert empty == []


def test_standard_profile_catches_every_positive_case(table: Any) -> None:
    missed = [r.case.name for r in _rows(table, True) if not r.verdicts["standard"].caught]
    assert missed == []
    summary_only = [r.case.name for r in _rows(table, True) if r.verdicts["standard"].summary_only]
    assert summary_only == []


def test_standard_profile_raises_nothing_on_negative_cases(table: Any) -> None:
    noisy = {r.case.name: dict(r.verdicts["standard"].other) for r in _rows(table, False)
             if r.verdicts["standard"].notices}
    assert noisy == {}
    assert table.totals("standard")["fp_notices"] == 0


def test_original_profile_is_computed_and_its_misses_are_visible(table: Any) -> None:
    for row in table.rows:
        assert set(row.verdicts) == {"standard", "original"}
    totals = table.totals("original")
    assert totals["positives"] == len(_rows(table, True))
    if not (dt.SEED_DIR / "BEHAVIOUR.md").is_file():
        pytest.skip(f"reference captures not found at {dt.SEED_DIR}")
    by_name = {r.case.name: r for r in table.rows}
    for name in ("seed:hping3-448B", "seed:pyexfil-448B", "seed:egress-assess"):
        assert not by_name[name].verdicts["original"].caught, name
    assert totals["caught"] < totals["positives"]


def test_both_renderings_list_every_case(table: Any) -> None:
    text = dt.render_text(table)
    markdown = dt.render_markdown(table)
    for row in table.rows:
        assert f"\n{row.case.ident} " in text
        assert f"| {row.case.ident} | {row.case.name} |" in markdown
    assert "standard: positives caught" in text and "original: positives caught" in text
    assert markdown.startswith("| id | case |")
