"""Build every cache artefact ahead of time (`python -m demo prepare`), and follow a start's
loading in the terminal.

`prepare` starts the models exactly as the app does (`start_comparator`: the default pair
first, each model in its own process, every build under the cache's lock) plus the scorers,
prints each model's progress until all are ready or failed, and closes them. Run it in a
Space's start-up, a Docker build or CI; the app's next start then only loads.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from .compare import Comparator, start_comparator
from .config import AppConfig

_POLL_SECONDS = 0.5


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = round(width * done / total) if total else width
    return "[" + "#" * filled + "-" * (width - filled) + f"] {done}/{total}"


def describe(worker) -> str:
    if worker.state == "ready":
        return f"ready ({worker.info.backend} {worker.info.precision}, loaded in {worker.info.load_seconds:.0f} s)"
    if worker.state == "failed":
        return f"FAILED: {worker.error}"
    return worker.loading_note


def follow_loading(
    comparator: Comparator, write: Callable[[str], None], stop: threading.Event | None = None
) -> dict[str, float]:
    """Write a line whenever a model's loading step changes, with a bar of how many are done,
    until every model is ready or failed (or `stop` is set); returns each model's seconds."""
    started = time.monotonic()
    shown: dict[str, str] = {}
    finished: dict[str, float] = {}
    workers = comparator.workers
    scorers_shown = False
    while stop is None or not stop.is_set():
        if not scorers_shown and comparator.scorer_ready.is_set():
            scorers_shown = True
            state = f"FAILED: {comparator.scoring_error}" if comparator.scoring_error else "ready"
            write(f"{_bar(len(finished), len(workers))} {time.monotonic() - started:5.0f} s  scorers: {state}")
        for model_id, worker in workers.items():
            text = describe(worker)
            if shown.get(model_id) != text:
                shown[model_id] = text
                if worker.state != "loading":
                    finished[model_id] = time.monotonic() - started
                elapsed = time.monotonic() - started
                write(f"{_bar(len(finished), len(workers))} {elapsed:5.0f} s  {worker.spec.name}: {text}")
        if len(finished) == len(workers) and scorers_shown:
            break
        time.sleep(_POLL_SECONDS)
    return finished


def prepare(config: AppConfig, write: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> int:
    """Build and load every served model and the scorers once; 0 when all are ready."""
    started = time.monotonic()
    comparator = start_comparator(config)
    try:
        if comparator.scoring_error:
            write(f"scorers FAILED: {comparator.scoring_error}")
        else:
            write(f"scorers ready ({time.monotonic() - started:.0f} s)")
        seconds = follow_loading(comparator, write)
        failed = [w.spec.name for w in comparator.workers.values() if w.state != "ready"]
    finally:
        comparator.close()
    total = time.monotonic() - started
    for model_id, value in seconds.items():
        write(f"  {comparator.workers[model_id].spec.name}: {value:.0f} s")
    write(f"prepared in {total:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed or comparator.scoring_error else 0
