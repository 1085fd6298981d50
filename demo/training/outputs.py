"""Where a training command writes when not asked to replace a shipped artefact: a new folder of
its own in the user cache, so no command overwrites what the app serves by default."""

from __future__ import annotations

import datetime
from pathlib import Path

from ..cache import cache_dir


def new_output_dir(kind: str) -> Path:
    """`<cache>/trained/<kind>-<UTC time>/` (not created)."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    return cache_dir() / "trained" / f"{kind}-{stamp}"
