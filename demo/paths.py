"""The repository's folders, in one place: inputs we wrote (data/, examples/, the evaluation
suites), the runs and results we commit, and where the app's files live in a checkout. The user
cache (weights, builds) is demo/cache.py's."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Inputs we wrote
DATA_DIR = REPO_ROOT / "data"
EXAMPLES_DIR = REPO_ROOT / "examples"
SUITES_DIR = REPO_ROOT / "evaluation"  # the shipped evaluation suites (*.jsonl) and their README

# Runs and results we commit
DEFAULT_RUN_DIR = REPO_ROOT / "evaluation" / "default-run"
RUNS_DIR = REPO_ROOT / "evaluation" / "runs"
RESULTS_DIR = REPO_ROOT / "results"

DEFAULT_CONFIG_PATH = REPO_ROOT / "models.yaml"
README = REPO_ROOT / "README.md"
