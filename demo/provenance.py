"""Who made a result file: the command, the commit, the date and the machine (every result that
the README quotes carries these, so its figures can be traced and re-made)."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess


def provenance(argv: list[str]) -> dict:
    """Who made a result file: the command, the commit, the date and the machine."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "command": "python -m demo " + " ".join(argv[1:]),
        "commit": commit or None,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.system()}",
    }
