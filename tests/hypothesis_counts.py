"""How much a test tries: under the Hypothesis profile `ci`, which the whole suite runs with (`bash packaging/dev.sh
test` sets HYPOTHESIS_PROFILE=ci), all of it; under the default profile `fast`, the fast loop's, a property test a
third of its examples (at least 50), a long corpus case its first FAST_CORPUS_PACKETS packets (the equivalence
test), and the few tests that say so a smaller run of the same kind (whole_suite()).
tests/conftest.py registers and loads the profiles."""

from __future__ import annotations

from typing import TypeVar

from hypothesis import settings

T = TypeVar("T")

FULL_PROFILE = "ci"
FAST_CORPUS_PACKETS = 3000  # 25 minutes of one ping a second, with the replies


def whole_suite() -> bool:
    """Whether the whole suite's profile `ci` is in force (not the fast loop's)."""
    return settings.get_current_profile_name() == FULL_PROFILE


def examples(full: int) -> int:
    """`full` under the profile `ci`, else a third of it (at least 50)."""
    return full if whole_suite() else max(full // 3, 50)


def corpus(packets: list[T]) -> list[T]:
    """A corpus case's packets (in time order): all of them under the profile `ci`, else the first
    FAST_CORPUS_PACKETS."""
    return packets if whole_suite() else packets[:FAST_CORPUS_PACKETS]
