"""The tiers (a marker per folder, applied here), the shared fixtures, and the golden-capture collector.

tests/unit    marker `unit`    pure, in-process, fast
tests/replay  marker `replay`  the CLI or the replay path on capture files, the seed captures included
tests/live    marker `live`    needs root and network namespaces
tests/system  marker `system`  needs a booted systemd in systemd-nspawn (root)

`pytest -m "not live and not system"` is the fast loop. Test traffic and the labs come from testkit/.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from testkit.netlab import Sensor
from testkit.paths import SEED_DIR, seed_captures_present

TIERS = ("unit", "replay", "live", "system")
TESTS = Path(__file__).resolve().parent
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")

# Hypothesis profiles: `fast`, the default (the fast loop), and `ci` (HYPOTHESIS_PROFILE=ci, which
# `bash packaging/dev.sh test` sets). The property tests with a large example count try all of it under `ci`
# and a third of it under `fast` (tests/hypothesis_counts.py).
settings.register_profile("fast", settings())
settings.register_profile("ci", settings())
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with the tier of the folder it is in; a test outside the tier folders is a usage error."""
    for item in items:
        relative = item.path.resolve().relative_to(TESTS)
        tier = relative.parts[0] if len(relative.parts) > 1 else ""
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: a test belongs in one of tests/{{{','.join(TIERS)}}}/")
        item.add_marker(tier)


def pytest_collection_finish(session: pytest.Session) -> None:
    """A test module with a `start_early(selected test names, tmp_path_factory)` gets it called now, to queue what
    runs in processes of its own and only waits for the CPU (test_memory.py's floods, the benchmark's runs) on the
    early lane (tests/early.py), done one after the other beside the tests, and to start what only waits
    (test_hostile_input.py's config FIFO).

    What collection built (the test modules, their parameters, Hypothesis's strategies) lives to the end: the
    cyclic garbage collector need not walk it again at every full collection (seconds over the fast loop)."""
    selected = {getattr(item, "originalname", item.name) for item in session.items}
    timed = any(item.get_closest_marker("live") or item.get_closest_marker("system") for item in session.items)
    tmp_path_factory = session.config._tmp_path_factory  # type: ignore[attr-defined]
    # Made here, before any lane job runs: two threads making it at once each make one, and mktemp then finds its
    # directory outside the base it compares with ("... is not a normalized and relative path", now and then).
    tmp_path_factory.getbasetemp()
    for module in dict.fromkeys(getattr(item, "module", None) for item in session.items):
        start_early = getattr(module, "start_early", None)
        if callable(start_early) and not timed and not XDIST_WORKER:  # never beside timed runs, nor other workers
            start_early(selected, tmp_path_factory)
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def bytecode_for_child_pythons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """With PYTHONDONTWRITEBYTECODE set (as on the development machine), each of the few hundred Pythons the tests
    start (the sensor, scripts) would compile icmpsensor, dpkt... from source again: some 70 ms a start. They get a
    bytecode cache in pytest's temporary directory instead (PYTHONPYCACHEPREFIX): the checkout stays as clean."""
    if not os.environ.get("PYTHONDONTWRITEBYTECODE") or os.environ.get("PYTHONPYCACHEPREFIX"):
        yield
        return
    saved = os.environ.pop("PYTHONDONTWRITEBYTECODE")
    os.environ["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    try:
        yield
    finally:
        os.environ.pop("PYTHONPYCACHEPREFIX", None)
        os.environ["PYTHONDONTWRITEBYTECODE"] = saved


@pytest.fixture
def seed_dir() -> Path:
    """../shared/seed (or $ICMPSENSOR_SEED_DIR); the test is skipped, saying why, when it is absent."""
    if not seed_captures_present():
        pytest.skip(f"reference captures not found at {SEED_DIR} (expected ../shared/seed beside the repo)")
    return SEED_DIR


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A 33 kB text file for the live tests to exfiltrate."""
    path = tmp_path / "secret.txt"
    path.write_bytes(b"".join(f"line {i:05d}: customer record, card 4111-1111-1111-{i:04d}\n".encode()
                             for i in range(600)))
    return path


@pytest.fixture
def sensors() -> Iterator[list[Sensor]]:
    """Sensors a live test started (see netlab.launch_ready): killed, with their journald, afterwards."""
    started: list[Sensor] = []
    yield started
    for sensor in started:
        if sensor.proc.poll() is None:
            sensor.proc.kill()
            sensor.proc.communicate(timeout=10)
        sensor.kill_journald()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """With $ICMPSENSOR_GOLDEN_COLLECT set: copy every capture file the tests built (anywhere under pytest's
    base temporary directory) into that directory, named by its SHA-256 (tests/golden/golden.py)."""
    target = os.environ.get("ICMPSENSOR_GOLDEN_COLLECT")
    factory = getattr(session.config, "_tmp_path_factory", None)
    if not target or factory is None:
        return
    import hashlib
    import shutil

    Path(target).mkdir(parents=True, exist_ok=True)
    magics = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a")
    for path in factory.getbasetemp().rglob("*"):
        try:
            if (not path.is_file() or path.is_symlink() or path.stat().st_size > 64 << 20
                    or "evidence" in path.parts):  # the sensor's own evidence output, not an input
                continue
            with path.open("rb") as f:
                if f.read(4) not in magics:
                    continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            suffix = ".pcapng" if path.read_bytes()[:4] == magics[-1] else ".pcap"
            shutil.copyfile(path, Path(target) / (digest + suffix))
        except OSError:
            continue
