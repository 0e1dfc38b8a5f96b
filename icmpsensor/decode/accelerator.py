"""The decoder's C accelerator, `icmpsensor.decode._fastdecode`, or None: not built (a source tree that was not
installed), or turned off with ICMPSENSOR_PURE_PYTHON=1 (benchmarks and tests then run the Python reference paths).
`pip install` builds it (pyproject.toml)."""

from __future__ import annotations

import os
from types import ModuleType

extension: ModuleType | None
try:
    from icmpsensor.decode import _fastdecode as extension
except ImportError:
    extension = None
if os.environ.get("ICMPSENSOR_PURE_PYTHON"):
    extension = None
