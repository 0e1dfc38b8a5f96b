"""The layout holds: no import cycle inside icmpsensor, each note name written once, and the helpers' directions.

* every import of an icmpsensor module by an icmpsensor module, at module level or inside a function
  (a lazy import), makes an edge; imports under `if TYPE_CHECKING:` do not run and make none. The
  graph has no cycle;
* the note names of the note table (`ICMP::ICMP_DataExfil` and `ICMP_DataExfil`) appear in
  icmpsensor/notice/types.py and nowhere else in the product (Python or C): every other module
  takes them from the table;
* bench/ never imports tests/ and never touches sys.path (it runs as `python -m bench.x` from the
  checkout); testkit/ imports neither tests/ nor bench/.

Each check is also run on a planted violation, so that it is seen to fail.
"""

from __future__ import annotations

import ast
import graphlib
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from icmpsensor.notice.types import NOTE_TYPES
from testkit.paths import REPO

PRODUCT = REPO / "icmpsensor"
NOTE_TABLE = PRODUCT / "notice" / "types.py"


# -- imports -----------------------------------------------------------------------------------------


def module_name(path: Path, root: Path) -> str:
    """icmpsensor/decode/fast.py -> icmpsensor.decode.fast; a package's __init__.py is the package."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(root: Path) -> dict[str, Path]:
    """Every module of the package at `root`: its .py files, and its C extensions (a .c source: no imports)."""
    return {module_name(path, root): path for path in sorted([*root.rglob("*.py"), *root.rglob("*.c")])}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_that_run(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (functions included), but those under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for branch in node.orelse:
                yield from imports_that_run(ast.Module(body=[branch], type_ignores=[]))
        else:
            yield from imports_that_run(node)


def imported_modules(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool,
                     modules: dict[str, Path]) -> set[str]:
    """The modules of `modules` an import statement in module `importer` loads: `from a.b import c` is a.b.c
    when that is a module, else a.b."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in modules}
    base = node.module or ""
    if node.level:  # relative: from the importer's package, one level up per dot after the first
        package = importer.split(".") if is_package else importer.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
    found = set()
    for alias in node.names:
        target = f"{base}.{alias.name}"
        if target in modules:
            found.add(target)
        elif base in modules:
            found.add(base)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the modules of the same package it imports."""
    modules = package_modules(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        if path.suffix != ".py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in imports_that_run(tree):
            graph[name] |= imported_modules(node, name, path.name == "__init__.py", modules) - {name}
    return graph


def import_cycle(graph: dict[str, set[str]]) -> list[str]:
    """A cycle of the graph, each module importing the next (the first repeated at the end), or []."""
    try:
        graphlib.TopologicalSorter(graph).prepare()  # graph[m]: what m needs first, its imports
    except graphlib.CycleError as error:
        return list(reversed(error.args[1]))  # graphlib lists each module before the one that imports it
    return []


def test_the_product_has_no_import_cycle() -> None:
    graph = import_graph(PRODUCT)
    assert len(graph) > 40 and graph["icmpsensor.cli"], "the walk found the package and its imports"
    cycle = import_cycle(graph)
    assert cycle == [], "import cycle: " + " -> ".join(cycle)


def test_a_planted_cycle_through_a_lazy_import_is_found(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def later():\n    from .. import c\n")
    (package / "c.py").write_text("import pkg.a\n")
    (package / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n")
    graph = import_graph(package)
    assert graph["pkg.d"] == set()  # only for the type checker
    cycle = import_cycle(graph)
    assert len(cycle) == 4 and cycle[0] == cycle[-1] and set(cycle) == {"pkg.a", "pkg.sub.b", "pkg.c"}
    assert all(later in graph[module] for module, later in itertools.pairwise(cycle))


# -- note names --------------------------------------------------------------------------------------


def files_naming(text: str, files: list[Path]) -> list[Path]:
    pattern = re.compile(rf"(?<!\w){re.escape(text)}(?!\w)")
    return [path for path in files if pattern.search(path.read_text())]


def product_sources(root: Path) -> list[Path]:
    return sorted([*root.rglob("*.py"), *root.rglob("*.c")])


@pytest.mark.parametrize("name", [form for note in NOTE_TYPES for form in (note.name, note.name.split("::")[-1])])
def test_each_note_name_is_written_in_the_note_table_only(name: str) -> None:
    assert files_naming(name, product_sources(PRODUCT)) == [NOTE_TABLE]


def test_a_planted_second_spelling_of_a_note_name_is_found(tmp_path: Path) -> None:
    (tmp_path / "types.py").write_text('DATA_EXFIL = note("ICMP::ICMP_DataExfil")\n')
    (tmp_path / "fast.c").write_text('/* raises ICMP_DataExfil */\nstatic const char *n = "ICMP_DataExfilFlow";\n')
    assert files_naming("ICMP::ICMP_DataExfil", product_sources(tmp_path)) == [tmp_path / "types.py"]
    assert files_naming("ICMP_DataExfil", product_sources(tmp_path)) == [tmp_path / "fast.c", tmp_path / "types.py"]


# -- bench, testkit, tests -----------------------------------------------------------------------------


def top_level_imports(path: Path) -> set[str]:
    """The top-level package of every module a file imports (lazily or not; relative imports stay inside)."""
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def touches_sys_path(path: Path) -> bool:
    tree = ast.parse(path.read_text(), str(path))
    return any(isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
               and node.value.id == "sys" for node in ast.walk(tree))


def forbidden_imports(folder: Path, forbidden: set[str]) -> dict[str, set[str]]:
    return {path.name: found for path in sorted(folder.rglob("*.py")) if (found := top_level_imports(path) & forbidden)}


def test_bench_imports_neither_tests_nor_sets_sys_path() -> None:
    assert forbidden_imports(REPO / "bench", {"tests"}) == {}
    assert [path.name for path in sorted((REPO / "bench").glob("*.py")) if touches_sys_path(path)] == []


def test_testkit_imports_neither_tests_nor_bench() -> None:
    assert forbidden_imports(REPO / "testkit", {"tests", "bench"}) == {}


def test_planted_forbidden_imports_are_found(tmp_path: Path) -> None:
    (tmp_path / "synth.py").write_text("def main():\n    from tests import craft\n")
    (tmp_path / "live.py").write_text("import sys\nsys.path.insert(0, '..')\nimport bench.throughput\n")
    (tmp_path / "fine.py").write_text("from testkit import craft\nfrom . import tests\n")
    assert forbidden_imports(tmp_path, {"tests", "bench"}) == {"live.py": {"bench"}, "synth.py": {"tests"}}
    assert [touches_sys_path(tmp_path / name) for name in ("synth.py", "live.py")] == [False, True]
