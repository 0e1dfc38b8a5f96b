"""Standard error and standard output, which may be broken (a full disk, a closed pipe): writing to them
never ends the sensor. A stream that fails once is replaced by /dev/null, so that nothing retries it
and the interpreter's own flush at exit cannot fail either."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~4 ms of every start
if TYPE_CHECKING:
    from typing import TextIO


def say(line: str) -> None:
    """One line on standard error (operational messages, errors, the replay summary)."""
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.stderr = _null()


def write_out(text: str) -> bool:
    """`text` on standard output; False once standard output is broken (it is then dropped)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError):
        sys.stdout = _null()
        return False
    return True


def _null() -> TextIO:
    return open(os.devnull, "w")
