"""The Python lines a call runs (sys.settrace): a test's measure of work, counted, not timed (a payload's cost
that grows with its length shows as lines, whatever the machine's speed)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any


def lines_run(call: Callable[[], object]) -> int:
    """The Python lines `call()` runs, in every function it calls."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Callable[..., Any]:
        nonlocal count
        count += event == "line"
        return tracer

    sys.settrace(tracer)
    try:
        call()
    finally:
        sys.settrace(None)
    return count
