"""Start-up pays only for what the mode uses: what `--version` and `--check-config` import.

No timing is asserted here (it depends on the machine and on what else runs on it; the measurement, its
command and its numbers are in docs/operations.md#start-up). What a start imports is where its time goes,
and that is held: neither mode loads the packet stack (dpkt, pcapy, the decoder, the detector, the run
modes, the outputs), and neither pays for dataclasses (which imports inspect), typing or shutil.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from testkit.paths import REPO

SHIPPED = REPO / "etc" / "icmpsensor.yaml"

# What no quick mode may import: the packet stack, and the standard modules that cost milliseconds each.
HEAVY = ("dpkt", "pcapy", "dataclasses", "inspect", "typing", "shutil", "ipaddress", "difflib")
PIPELINE = ("icmpsensor.source", "icmpsensor.decode", "icmpsensor.detect", "icmpsensor.runmode",
            "icmpsensor.output")

_PROBE = """\
import sys
from icmpsensor.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stderr.write("MODULES " + " ".join(sorted(sys.modules)) + "\\n")
"""


def imported_by(*args: str) -> set[str]:
    """The modules a fresh interpreter holds after `icmpsensor ARGS` (the cli's main, as the script runs it)."""
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=60, check=False)
    line = proc.stderr.splitlines()[-1]
    assert line.startswith("MODULES "), proc.stderr
    return set(line.split()[1:])


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(PIPELINE))


def test_version_imports_neither_the_config_nor_the_packet_stack() -> None:
    modules = imported_by("--version")
    assert "icmpsensor.cli" in modules and "argparse" in modules
    assert heavy(modules) == []
    assert not any(m.startswith(("icmpsensor.config", "yaml")) for m in modules)


@pytest.mark.parametrize("config", [str(SHIPPED), None], ids=["shipped", "defaults"])
def test_check_config_imports_only_the_config_package_and_pyyaml(config: str | None) -> None:
    modules = imported_by(*(["-c", config] if config else []), "--check-config")
    assert "icmpsensor.config.loader" in modules and "yaml" in modules
    # the protocol numbers the default capture filter is written from (config/capturefilter.py): constants only
    assert "icmpsensor.decode.linktypes" in modules
    # the names of rotated logs, which no other output may take (config/loader.py _check_output_names)
    assert "icmpsensor.output.rotatednames" in modules
    assert heavy(modules - {"icmpsensor.decode", "icmpsensor.decode.linktypes", "icmpsensor.output",
                            "icmpsensor.output.rotatednames"}) == []
    assert "icmpsensor.notice.types" in modules  # the note table: the switches and priorities are keys
    assert not any(m.startswith("icmpsensor.notice.") and m != "icmpsensor.notice.types" for m in modules)


def test_the_probe_sees_a_heavy_import() -> None:
    """The check is seen to fail: replaying a capture loads the packet stack."""
    assert "icmpsensor.runmode.replay" in heavy(imported_by("-r", "/nonexistent.pcap"))
