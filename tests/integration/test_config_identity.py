"""A configuration's identity does not depend on the folder the repository is cloned into.

Two clones in two folders must give the same evaluation and arena hashes, and each must find
the committed default run complete (resumed, nothing to recompute). Hashes that were made with
absolute paths (before paths counted relative to the repository), or with the served artefacts
under data/ (before they moved to trained/), are renamed on resume.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import json
from demo.arena.systems import systems_from_config
from demo.config import load_config
from demo.evaluation.results import ResultsStore
from demo.evaluation.runner import EvaluationOptions, mc_hashes, model_hashes, pending_work

config = load_config()
options = EvaluationOptions()  # the committed default run's options
pending, mc_pending = pending_work(config, options, ResultsStore("results/evaluation/default-run"))
print(json.dumps({
    "model_hashes": model_hashes(config, options),
    "mc_hashes": mc_hashes(config, options),
    "arena": {f"{s.model_id}:{s.format}": s.config_hash for s in systems_from_config(config)},
    "pending": len(pending),
    "mc_pending": len(mc_pending),
}))
"""


def _probe(folder: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=folder, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(600)
def test_two_clones_in_two_folders_have_one_identity_and_resume_the_committed_run(tmp_path):
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout to clone")
    results = []
    for name in ("first", "elsewhere/second"):
        clone = tmp_path / name
        subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True, timeout=300)
        results.append(_probe(clone))
    first, second = results
    assert first == second
    assert first["pending"] == 0 and first["mc_pending"] == 0  # resumed, not recomputed


def test_a_run_stored_under_absolute_path_hashes_is_renamed_and_resumed(tmp_path):
    from demo.config import load_config
    from demo.evaluation.results import ResultsStore
    from demo.evaluation.runner import EvaluationOptions, legacy_hash_renames, pending_work
    from demo.paths import DEFAULT_RUN_DIR

    config = load_config()
    options = EvaluationOptions()
    renames = legacy_hash_renames(config, options)
    old_of = {new: old for old, new in renames.items()}
    run = tmp_path / "run"
    run.mkdir()
    for name in ("results.jsonl", "likelihoods.jsonl"):  # the committed run, as hashed before
        text = (DEFAULT_RUN_DIR / name).read_text()
        for new, old in old_of.items():
            text = text.replace(new, old)
        (run / name).write_text(text)
    store = ResultsStore(run)
    assert pending_work(config, options, store)[0]  # under the old hashes nothing matches
    assert store.rename_hashes(renames) > 0
    assert pending_work(config, options, store) == ([], [])
    assert pending_work(config, options, ResultsStore(run)) == ([], [])  # rewritten on disk


# The last commit before the served artefacts moved from data/ to trained/.
BEFORE_ARTEFACTS_MOVED = "a885c70"


def test_the_default_run_as_stored_before_the_artefacts_moved_is_renamed_and_resumed(tmp_path):
    """The committed run of the commit before the move, read from git: its hashes spell the
    adapters and heads under data/; renamed on resume, nothing is left to recompute."""
    from demo.config import DEFAULT_CONFIG_PATH, load_config
    from demo.evaluation.results import ResultsStore
    from demo.evaluation.runner import EvaluationOptions, legacy_hash_renames, pending_work
    from demo.paths import former_artefact_text

    def show(path: str) -> str | None:
        done = subprocess.run(
            ["git", "show", f"{BEFORE_ARTEFACTS_MOVED}:{path}"], cwd=REPO_ROOT, capture_output=True, text=True
        )
        return done.stdout if done.returncode == 0 else None

    old_config = show("models.yaml")
    if shutil.which("git") is None or old_config is None:
        pytest.skip("needs git and the repository's history")
    if former_artefact_text(DEFAULT_CONFIG_PATH.read_text()) != old_config:
        pytest.skip("models.yaml changed beyond the move since; the run of then is another configuration's")
    run = tmp_path / "run"
    run.mkdir()
    for name in ("results.jsonl", "likelihoods.jsonl"):
        (run / name).write_text(show(f"results/evaluation/default-run/{name}") or "")
    config, options = load_config(), EvaluationOptions()
    store = ResultsStore(run)
    assert len(pending_work(config, options, store)[0]) == 728  # stored, but under the old hashes
    assert store.rename_hashes(legacy_hash_renames(config, options)) == 908
    assert pending_work(config, options, ResultsStore(run)) == ([], [])
