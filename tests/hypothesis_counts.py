"""How many examples a property test tries: the count it names under the Hypothesis profile `ci`, which the whole
suite runs with (`bash packaging/dev.sh test` sets HYPOTHESIS_PROFILE=ci), and a third of it (at least 50) under the
default profile `fast`, the fast loop's. tests/conftest.py registers and loads the profiles."""

from __future__ import annotations

from hypothesis import settings

FULL_PROFILE = "ci"


def examples(full: int) -> int:
    """`full` under the profile `ci`, else a third of it (at least 50)."""
    return full if settings.get_current_profile_name() == FULL_PROFILE else max(full // 3, 50)
