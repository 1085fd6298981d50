"""Playwright + Debian's chromium for the browser tests, in one place: `require_chromium()` skips
the calling test module (with the reason) where either is missing, and conftest's `browser`
fixture launches chromium through `executable_path` with `CHROMIUM_ARGS`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def require_chromium():
    """Playwright's sync API; call at module level: skips the module where Playwright or chromium is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium is not installed (looked for {CHROMIUM})", allow_module_level=True)
    return sync_api
