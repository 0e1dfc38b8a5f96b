"""Shared fixtures: where the reference captures are, and running the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEED_DIR = Path(os.environ.get("ICMPSENSOR_SEED_DIR", REPO.parent / "shared" / "seed"))


@pytest.fixture
def seed_dir() -> Path:
    """../shared/seed (or $ICMPSENSOR_SEED_DIR); the test is skipped, saying why, when it is absent."""
    if not (SEED_DIR / "BEHAVIOUR.md").is_file():
        pytest.skip(f"reference captures not found at {SEED_DIR} (expected ../shared/seed beside the repo)")
    return SEED_DIR


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
