"""Where the checkout is, and the reference captures beside it."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The real captures (and BEHAVIOUR.md, which says what each holds) beside the checkout, or $ICMPSENSOR_SEED_DIR.
SEED_DIR = Path(os.environ.get("ICMPSENSOR_SEED_DIR", REPO.parent / "shared" / "seed"))


def seed_captures_present() -> bool:
    return (SEED_DIR / "BEHAVIOUR.md").is_file()
