"""Start the real app in this process on a free localhost port, for API and browser tests.

Not a test module. `running_app(config_path, ...)` is a context manager that does what
`demo.ui.app.serve` does — load the config, start the comparator (thread workers, so the tiny models
load in about a second), build the page, launch it with the page's CSS/head/theme — and yields an
`AppServer` with the URL; on exit it closes the page and the workers.

`app_fixture(...)` turns that into a pytest fixture bound to the tiny-model config of
tests/conftest.py (`tiny_config_file`), so a test module declares its server in one line:

    app = app_fixture(limits={"concurrency_limit": 2})

Overrides (limits, generation defaults) are written to a modified models.yaml in a temporary
folder and loaded with `load_config`, so they pass the same validation as a real config file.
"""

from __future__ import annotations

import os

# Before gradio is imported: no usage pings or version checks from a test run.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import contextlib
import socket
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

READY_TIMEOUT_SECONDS = 120.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config_copy(
    config_path: str | Path, folder: str | Path, *, limits: dict | None = None, generation: dict | None = None
) -> Path:
    """`config_path` with some limits / generation defaults changed, as a new yaml in `folder`.

    The original is loaded first so that relative paths (weights, reward head) are resolved
    against its own folder and stay valid from the new location.
    """
    from demo.config import PathStyle, load_config

    data = load_config(config_path).model_dump(
        mode="json", exclude={"source_path"}, context={"path_style": PathStyle(absolute=True)}
    )
    data.setdefault("limits", {}).update(limits or {})
    data.setdefault("generation", {}).update(generation or {})
    path = Path(folder) / "models.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


@dataclass
class AppServer:
    url: str
    config: Any  # demo.config.AppConfig
    comparator: Any  # demo.compare.Comparator
    demo: Any  # gradio.Blocks

    def client(self):
        """A fresh gradio_client.Client for this server (one per simulated user)."""
        from gradio_client import Client

        return Client(self.url, verbose=False, download_files=False, analytics_enabled=False)


def _slow_down(comparator, seconds_per_token: float) -> None:
    """Make each generated token take at least `seconds_per_token` (tests of the Stop button:
    the tiny random models are otherwise done before a click lands). Thread workers only."""
    for worker in comparator.workers.values():
        backend = worker._runner.backend
        original = backend.generate_ids

        def slow(*args, _original=original, **kwargs):
            tokens = _original(*args, **kwargs)
            try:
                for token in tokens:
                    time.sleep(seconds_per_token)
                    yield token
            finally:
                tokens.close()

        backend.generate_ids = slow


@contextlib.contextmanager
def scripted_answers(comparator, texts: dict[str, str]) -> Iterator[None]:
    """While inside, the given roles' models "generate" exactly `texts[role]` (its token ids,
    then end-of-sequence) through the real decoding/streaming/scoring/rendering path: a way to
    put chosen text — e.g. an HTML/JS payload — into the answers the page shows."""
    originals = {}
    for role, text in texts.items():
        runner = comparator.pair_workers()[role]._runner
        ids = runner.tokenizer(text, add_special_tokens=False)["input_ids"]

        def scripted(prompt_ids, sampling, *, eos_ids, suppress_ids, _ids=tuple(ids)):
            yield from _ids[: sampling.max_new_tokens]
            if eos_ids and len(_ids) < sampling.max_new_tokens:
                yield eos_ids[0]

        originals[role] = runner.backend.generate_ids
        runner.backend.generate_ids = scripted
    try:
        yield
    finally:
        for role, original in originals.items():
            comparator.pair_workers()[role]._runner.backend.generate_ids = original


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "config", timeout=5) as response:
                if response.status == 200:
                    return
        except Exception as error:  # not listening yet
            last = error
        time.sleep(0.2)
    raise TimeoutError(f"the app at {url} did not answer within {timeout:.0f} s: {last}")


@contextlib.contextmanager
def running_app(
    config_path: str | Path,
    *,
    limits: dict | None = None,
    generation: dict | None = None,
    seconds_per_token: float = 0.0,
    ready_timeout: float = READY_TIMEOUT_SECONDS,
) -> Iterator[AppServer]:
    """Serve the app for `config_path` (with overrides) on 127.0.0.1:<free port>."""

    from demo.compare import start_comparator
    from demo.config import load_config
    from demo.ui.app import build_ui, launch_options

    with tempfile.TemporaryDirectory(prefix="demo-app-") as folder:
        path = Path(config_path)
        if limits or generation:
            path = write_config_copy(config_path, folder, limits=limits, generation=generation)
        config = load_config(path)
        comparator = start_comparator(config, worker_mode="thread")
        demo = None
        try:
            ready = comparator.wait_ready(ready_timeout)
            if not all(ready.values()):
                errors = {role: w.error for role, w in comparator.workers.items()}
                raise RuntimeError(f"models did not load: {errors}")
            if seconds_per_token:
                _slow_down(comparator, seconds_per_token)
            demo = build_ui(config, comparator)
            port = free_port()
            demo.launch(
                server_name="127.0.0.1",
                server_port=port,
                prevent_thread_lock=True,
                quiet=True,
                ssr_mode=False,
                **launch_options(),
            )
            url = f"http://127.0.0.1:{port}/"
            _wait_http(url, ready_timeout)
            yield AppServer(url=url, config=config, comparator=comparator, demo=demo)
        finally:
            if demo is not None:
                demo.close()
            comparator.close()


def app_fixture(*, scope: str = "module", cache_outside_temp: bool = False, **overrides):
    """A pytest fixture serving the tiny-model app (conftest's `tiny_config_file`) with
    `overrides` (limits=..., generation=..., seconds_per_token=...). `cache_outside_temp` puts
    the app's cache where a user's is, outside the system's temp folder and the working folder:
    Gradio serves files from the temp folder without being told, so a test whose cache lives
    there cannot see a download the page would refuse on a real machine."""

    @pytest.fixture(scope=scope)
    def _app(tiny_config_file) -> Iterator[AppServer]:
        with contextlib.ExitStack() as stack:
            if cache_outside_temp:
                stack.enter_context(user_like_cache_dir())
            with running_app(tiny_config_file, **overrides) as server:
                yield server

    return _app


@contextlib.contextmanager
def user_like_cache_dir() -> Iterator[Path]:
    """DEMO_CACHE_DIR set, for the duration, to a new folder under ~/.cache (removed after)."""
    import shutil
    import uuid

    folder = Path.home() / ".cache" / "base-vs-aligned-tests" / uuid.uuid4().hex[:12]
    for outside in (Path(tempfile.gettempdir()).resolve(), Path.cwd().resolve()):
        if folder.resolve().is_relative_to(outside):
            pytest.skip(f"the home folder lies inside {outside}: no cache folder outside it to test with")
    folder.mkdir(parents=True)
    before = os.environ.get("DEMO_CACHE_DIR")
    os.environ["DEMO_CACHE_DIR"] = str(folder)
    try:
        yield folder
    finally:
        if before is None:
            os.environ.pop("DEMO_CACHE_DIR", None)
        else:
            os.environ["DEMO_CACHE_DIR"] = before
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # the shared parent too, once no other test's folder is in it


def artifacts_dir() -> Path:
    """The git-ignored artifacts/ folder at the repository root (created on demand)."""
    folder = Path(__file__).resolve().parent.parent / "artifacts"
    folder.mkdir(exist_ok=True)
    return folder


def run_with_timeout(fn, timeout: float, *args, **kwargs):
    """fn(*args) on a daemon thread; TimeoutError if it has not returned in `timeout` seconds."""
    result: dict[str, Any] = {}

    def target():
        try:
            result["value"] = fn(*args, **kwargs)
        except BaseException as error:  # re-raised in the caller
            result["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"{getattr(fn, '__name__', fn)} did not return within {timeout:.0f} s")
    if "error" in result:
        raise result["error"]
    return result.get("value")
