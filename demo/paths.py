"""The repository's folders, in one place: inputs we wrote (data/, examples/, the evaluation
suites in evaluation/), the runs and results we commit (results/), and where the app's files live
in a checkout. The user
cache (weights, builds) is demo/cache.py's."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Inputs we wrote
DATA_DIR = REPO_ROOT / "data"
EXAMPLES_DIR = REPO_ROOT / "examples"
SUITES_DIR = REPO_ROOT / "evaluation"  # the shipped evaluation suites (*.jsonl) and their README

# Runs and results we commit: every command's output that a figure in the README or a card
# quotes, and the evaluation runs (a new run without --out goes to RUNS_DIR, which git ignores)
RESULTS_DIR = REPO_ROOT / "results"
EVALUATION_RUNS_DIR = RESULTS_DIR / "evaluation"
DEFAULT_RUN_DIR = EVALUATION_RUNS_DIR / "default-run"
ALIGN_RUNS_DIR = EVALUATION_RUNS_DIR / "align"  # the Three stages comparisons of the align pipeline
RUNS_DIR = EVALUATION_RUNS_DIR / "runs"

DEFAULT_CONFIG_PATH = REPO_ROOT / "models.yaml"
README = REPO_ROOT / "README.md"
