"""Shared fixtures: tiny local checkpoints, a models.yaml for them, loaded runners.

Nothing here touches the network or the user's cache: DEMO_CACHE_DIR points at a temporary
folder for the whole session.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
for entry in (str(REPO_ROOT), str(TESTS_DIR)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

import tiny_models  # noqa: E402

# Tests live in a folder per kind; each test is marked with its folder's name, so
# `pytest -m unit` (or `pytest tests/unit`) runs the quick set and `-m "not e2e"` leaves out the
# real models.
TEST_KINDS = ("unit", "integration", "browser", "e2e")


def pytest_collection_modifyitems(config, items):
    for item in items:
        kind = Path(str(item.path)).parent.name
        if kind in TEST_KINDS:
            item.add_marker(kind)


@pytest.fixture(scope="session", autouse=True)
def _session_cache_dir(tmp_path_factory):
    """Conversions and reassembled files of this test session go to a throwaway folder."""
    cache = tmp_path_factory.mktemp("demo-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEMO_CACHE_DIR", str(cache))
        patch.delenv("DEMO_CONFIG", raising=False)
        yield cache


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """Tiny aligned (chat) checkpoint: Llama + ChatML tokenizer + SmolLM2-style template."""
    return tiny_models.make_llama_chat_checkpoint(tmp_path_factory.mktemp("models") / "tiny-llama-chat")


@pytest.fixture(scope="session")
def tiny_gemma_dir(tmp_path_factory) -> Path:
    """Tiny base checkpoint: Gemma 3 text + tokenizer that prepends <bos>."""
    return tiny_models.make_gemma_base_checkpoint(tmp_path_factory.mktemp("models") / "tiny-gemma-base")


@pytest.fixture(scope="session")
def tiny_config_file(tmp_path_factory, tiny_llama_dir, tiny_gemma_dir) -> Path:
    """A models.yaml with the repo's structure whose two models are the tiny checkpoints."""
    folder = tmp_path_factory.mktemp("config")
    return tiny_models.write_tiny_config(folder / "models.yaml", tiny_llama_dir, tiny_gemma_dir)


@pytest.fixture(scope="session")
def tiny_stages_config_file(tmp_path_factory, tiny_llama_dir, tiny_gemma_dir) -> Path:
    """The tiny models.yaml plus a third model and a `stages:` section (base → SFT → aligned)."""
    folder = tmp_path_factory.mktemp("config-stages")
    return tiny_models.write_tiny_config(folder / "models.yaml", tiny_llama_dir, tiny_gemma_dir, stages=True)


@pytest.fixture(scope="session")
def tiny_stages_config(tiny_stages_config_file):
    from demo.config import load_config

    return load_config(tiny_stages_config_file)


@pytest.fixture
def tiny_models_yaml(tiny_config_file, tmp_path, monkeypatch) -> Path:
    """The tiny models.yaml, with DEMO_CACHE_DIR set to this test's own temporary folder."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("DEMO_CACHE_DIR", str(cache))
    return tiny_config_file


@pytest.fixture(scope="session")
def tiny_config(tiny_config_file):
    from demo.config import load_config

    return load_config(tiny_config_file)


@pytest.fixture(scope="session")
def llama_runner(tiny_config):
    """ModelRunner for the tiny aligned (chat) model, loaded once per session."""
    from demo.generation.loading import load_runner

    runner, _ = load_runner(tiny_config.pair_models()["aligned"], tiny_config.base_prompted)
    return runner


@pytest.fixture(scope="session")
def gemma_runner(tiny_config):
    """ModelRunner for the tiny base model, loaded once per session."""
    from demo.generation.loading import load_runner

    runner, _ = load_runner(tiny_config.pair_models()["base"], tiny_config.base_prompted)
    return runner


def toxic_classifier_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("toxic_classifier") is not None


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for `python -m demo ...` children: repo importable, no stray config."""
    env = dict(os.environ)
    env.pop("DEMO_CONFIG", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


def run_python(script: str, timeout: int = 300, **env: str) -> dict:
    """Run `script` in a fresh interpreter (repo importable, `env` added) and return the JSON
    object its last printed line holds; fails the test with the child's stderr if it fails."""
    import json
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", script], env=subprocess_env(**env), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium under Playwright (modules using it call browser_support.require_chromium())."""
    from browser_support import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def tiny_workers(tiny_config):
    # One after the other: transformers' from_pretrained patches globals and is not thread-safe,
    # and InProcessWorkers do not serialize their loads (see tests/integration/test_workers.py).
    from demo.generation.workers import InProcessWorker

    workers = {}
    for role in ("base", "aligned"):
        workers[role] = InProcessWorker(role, tiny_config.pair_models()[role], tiny_config.base_prompted, None).start()
        assert workers[role].wait_ready(60), workers[role].error
    return workers


@pytest.fixture(scope="module")
def stage_workers(tiny_stages_config):
    """A worker per stages model, by model id (loaded one after the other, as above)."""
    from demo.generation.workers import InProcessWorker

    workers = {}
    for model_id in tiny_stages_config.stages.models:
        spec = tiny_stages_config.models[model_id]
        workers[model_id] = InProcessWorker(model_id, spec, tiny_stages_config.base_prompted, None).start()
        assert workers[model_id].wait_ready(60), workers[model_id].error
    return workers


def run_demo(*args, env_extra=None, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "demo", *args],
        cwd=REPO_ROOT,
        env=subprocess_env(**(env_extra or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
