"""The live tier's shared fixture: the two-namespace lab (testkit/netlab.py), one per test module. Modules
that need another lab (many sources, the tool lab) define their own `lab`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit.netlab import Lab


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    lab = Lab()
    lab.up()
    try:
        yield lab
    finally:
        lab.down()
