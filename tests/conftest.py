"""Shared fixtures: where the reference captures are, and running the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.netlab import Sensor

REPO = Path(__file__).resolve().parents[1]
SEED_DIR = Path(os.environ.get("ICMPSENSOR_SEED_DIR", REPO.parent / "shared" / "seed"))


@pytest.fixture
def seed_dir() -> Path:
    """../shared/seed (or $ICMPSENSOR_SEED_DIR); the test is skipped, saying why, when it is absent."""
    if not (SEED_DIR / "BEHAVIOUR.md").is_file():
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


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    notices: list[dict[str, object]]


def run_cli(*args: str | Path, log_dir: Path | None = None, timeout: float = 120.0,
            env: dict[str, str] | None = None) -> CliResult:
    """Run `python -m icmpsensor ARGS` (with --log-dir when given) and read back notice.log."""
    argv = [sys.executable, "-m", "icmpsensor", *map(str, args)]
    if log_dir is not None:
        argv += ["--log-dir", str(log_dir)]
    full_env = {**os.environ, "TZ": "UTC", **(env or {})}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=full_env)
    notices: list[dict[str, object]] = []
    if log_dir is not None and (log_dir / "notice.log").exists():
        notices = [json.loads(line) for line in (log_dir / "notice.log").read_text().splitlines()]
    return CliResult(proc.returncode, proc.stdout, proc.stderr, notices)


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
