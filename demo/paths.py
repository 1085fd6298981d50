"""The repository's folders, in one place: inputs we wrote (data/, examples/, the evaluation
suites in evaluation/), the artefacts we train and serve (trained/: heads, adapters and their
model cards), and the runs and results we commit (results/). The user cache (weights, builds) is
demo/cache.py's."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Inputs we wrote
DATA_DIR = REPO_ROOT / "data"
EXAMPLES_DIR = REPO_ROOT / "examples"
SUITES_DIR = REPO_ROOT / "evaluation"  # the shipped evaluation suites (*.jsonl) and their README

# Artefacts we trained and serve, each beside its model card: the judge (trained/reward), the
# toxicity meaning head (trained/toxicity) and the align pipeline's steps (trained/align/<step>).
# Until 2026-12-08 they lived under data/ at the same relative places (trained/X was data/X);
# config hashes made then are migrated with `former_artefact_text`.
TRAINED_DIR = REPO_ROOT / "trained"
ALIGN_ARTEFACTS_DIR = TRAINED_DIR / "align"
REWARD_ARTEFACTS_DIR = TRAINED_DIR / "reward"
TOXICITY_ARTEFACTS_DIR = TRAINED_DIR / "toxicity"

# Runs and results we commit: every command's output that a figure in the README or a card
# quotes, and the evaluation runs (a new run without --out goes to RUNS_DIR, which git ignores)
RESULTS_DIR = REPO_ROOT / "results"
EVALUATION_RUNS_DIR = RESULTS_DIR / "evaluation"
DEFAULT_RUN_DIR = EVALUATION_RUNS_DIR / "default-run"
ALIGN_RUNS_DIR = EVALUATION_RUNS_DIR / "align"  # the Three stages comparisons of the align pipeline
RUNS_DIR = EVALUATION_RUNS_DIR / "runs"

DEFAULT_CONFIG_PATH = REPO_ROOT / "models.yaml"
README = REPO_ROOT / "README.md"


def former_artefact_text(text: str) -> str:
    """`text` with every repo-relative or absolute path into trained/ spelled as before the
    artefacts moved out of data/ ("trained/reward/x" was "data/reward/x")."""
    return re.sub(rf"(?<![\w.-]){TRAINED_DIR.name}/", f"{DATA_DIR.name}/", text)
