"""The C accelerators, each None when it is not built (a source tree that was not installed) or when they are
turned off with ICMPSENSOR_PURE_PYTHON=1 (benchmarks and tests then run the Python reference paths): the decoder's
`icmpsensor.decode._fastdecode` (`extension`), fragment reassembly's `icmpsensor.decode._fastfragments`
(`fragments_extension`), and the tool tracker's `icmpsensor.detect._fasttools`
(`tools_extension`), the standard detector's path for echo messages that change no decision and every flow
detector's notices, `icmpsensor.detect._fastflows` (`flows_extension`), the walks of non-echo messages' items,
`icmpsensor.detect._fastnonecho` (`nonecho_extension`), the notice aggregator's filter and fold,
`icmpsensor.notice._fastaggregate` (`aggregate_extension`), and the evidence recorder's per-packet step,
`icmpsensor.output._fastevidence` (`evidence_extension`). `pip install` builds them (pyproject.toml)."""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def _load(name: str) -> ModuleType | None:
    if os.environ.get("ICMPSENSOR_PURE_PYTHON"):
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


extension = _load("icmpsensor.decode._fastdecode")
fragments_extension = _load("icmpsensor.decode._fastfragments")
tools_extension = _load("icmpsensor.detect._fasttools")
flows_extension = _load("icmpsensor.detect._fastflows")
nonecho_extension = _load("icmpsensor.detect._fastnonecho")
aggregate_extension = _load("icmpsensor.notice._fastaggregate")
evidence_extension = _load("icmpsensor.output._fastevidence")
