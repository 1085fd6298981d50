"""How long a start takes, measured from outside as a visitor meets it: `python app.py` is
started in a fresh process (or several at once, on one cache, as Space replicas or a restart
racing an old process would), and each is asked `/compare` on every configured pair until both
sides answer.

Figures per app process: seconds to the page being served, to the default pair answering, to
every pair answering (all models ready). `python -m demo bench --start` measures a cold start
(empty cache) and then a warm one on the cache it filled; the Space test (tests/e2e/test_space.py)
runs the same function with a venv built as a Space builds it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .config import AppConfig
from .paths import REPO_ROOT

START_TIMEOUT_SECONDS = 1500.0
QUESTION = "Name three fruits."


@dataclass
class StartTiming:
    """One app process's start, in seconds from its launch."""

    page_s: float | None = None
    default_pair_s: float | None = None
    all_pairs_s: float | None = None
    answers: dict[str, dict] = field(default_factory=dict)  # per pair: the last /compare result
    log_tail: str = ""

    def as_json(self) -> dict:
        data = asdict(self)
        data.pop("log_tail")
        data["answers"] = {
            pair: {
                role: {"error": r[role].get("error"), "text": r[role].get("text", "")[:80]}
                for role in ("base", "aligned")
            }
            for pair, r in self.answers.items()
        }
        return data


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answered(result: dict) -> bool:
    return all(
        not (result[role].get("error") or "") and result[role].get("text", "").strip() for role in ("base", "aligned")
    )


def _serve(url: str, process: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode} before serving")
        try:
            with urllib.request.urlopen(url + "config", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("app.py did not serve its page in time")


def _follow(config: AppConfig, url: str, process: subprocess.Popen, started: float, timing: StartTiming) -> None:
    from gradio_client import Client

    deadline = started + START_TIMEOUT_SECONDS
    _serve(url, process, deadline)
    timing.page_s = time.monotonic() - started
    client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
    # One pair at a time, the default first, as a visitor asks: a /compare for a pair still
    # loading holds the queue until its timeout, which would delay the default pair's answer.
    for pair in config.pairs:
        while time.monotonic() < deadline:
            result = client.predict(
                prompt=QUESTION, max_new_tokens=16, temperature=0.0, pair=pair.id, api_name="/compare"
            )
            timing.answers[pair.id] = result
            if _answered(result):
                break
            time.sleep(1.0)
        else:
            return
        if pair.id == config.pairs[0].id:
            timing.default_pair_s = time.monotonic() - started
    timing.all_pairs_s = time.monotonic() - started


def measure_start(
    config: AppConfig,
    cache: Path,
    *,
    processes: int = 1,
    python: str | Path = sys.executable,
    env: dict[str, str] | None = None,
    log_folder: Path | None = None,
) -> list[StartTiming]:
    """Start `processes` copies of app.py at once on `cache` and time each (see module doc)."""
    log_folder = Path(log_folder or tempfile.mkdtemp(prefix="demo-start-"))
    timings = [StartTiming() for _ in range(processes)]
    launched = []
    for index in range(processes):
        port = _free_port()
        process_env = {**os.environ, **(env or {}), "DEMO_CACHE_DIR": str(cache), "GRADIO_SERVER_PORT": str(port)}
        log = (log_folder / f"app-{index}.log").open("w")
        process = subprocess.Popen(
            [str(python), "app.py"],
            cwd=REPO_ROOT,
            env=process_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        launched.append((process, f"http://127.0.0.1:{port}/", log, time.monotonic()))
    threads = [
        threading.Thread(target=_follow, args=(config, url, process, started, timing), daemon=True)
        for (process, url, _, started), timing in zip(launched, timings)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(START_TIMEOUT_SECONDS + 60)
    finally:
        for (process, _, log, _), timing in zip(launched, timings):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
            timing.log_tail = Path(log.name).read_text(errors="replace")[-4000:]
    return timings


def run_start_bench(config: AppConfig, processes: int) -> dict:
    """`bench --start`: a cold start (empty cache, `processes` at once), then a warm start (one
    process) on the cache it filled."""
    with tempfile.TemporaryDirectory(prefix="demo-start-cache-") as folder:
        cache = Path(folder)
        cold = measure_start(config, cache, processes=processes)
        (warm,) = measure_start(config, cache)
    return {
        "processes": processes,
        "cores": os.cpu_count(),
        "cold": [t.as_json() for t in cold],
        "warm": warm.as_json(),
    }
