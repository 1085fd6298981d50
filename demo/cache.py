"""The user cache: where conversions and builds live, one build per target across processes,
and heavy one-off jobs (a GGUF conversion, an ONNX build) run in a throwaway Python process.

Both jobs import torch and transformers, and converting plus building Gemma peaks at ~3.8 GB.
Done inside the process that then serves the model, that memory would stay with it for the
app's life; a child process gives all of it back to the OS when it exits, and the serving
process never imports torch. (Model workers are daemon processes, which `multiprocessing` does
not let have children, hence a plain subprocess.) A job is a module-level function taking
JSON-serialisable keyword arguments; an exception in the child comes back as the same class
when the caller lists it in `reraise`, else RuntimeError.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

CACHE_ENV_VAR = "DEMO_CACHE_DIR"

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_TRANSCRIPT_LINES = 20


# A Space with a persistent-storage upgrade mounts it here; anything else on a Space is lost
# at each restart.
SPACE_DATA_DIR = Path("/data")


def on_space() -> bool:
    """Whether this runs on a Hugging Face Space (which sets SPACE_ID)."""
    return bool(os.environ.get("SPACE_ID"))


def space_storage() -> Path | None:
    if on_space() and SPACE_DATA_DIR.is_dir() and os.access(SPACE_DATA_DIR, os.W_OK):
        return SPACE_DATA_DIR
    return None


def cache_dir() -> Path:
    """Where conversions live: $DEMO_CACHE_DIR, else a Space's persistent /data, else the XDG
    cache, else ~/.cache."""
    explicit = os.environ.get(CACHE_ENV_VAR)
    storage = space_storage()
    if explicit:
        root = Path(explicit)
    elif storage is not None:
        root = storage / "base-vs-aligned"
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "base-vs-aligned"
    root.mkdir(parents=True, exist_ok=True)
    return root


def storage_is_persistent() -> bool:
    """Whether the cache (builds, and later votes) survives a restart: always off a Space; on a
    Space only inside its persistent /data."""
    if not on_space():
        return True
    storage = space_storage()
    return storage is not None and cache_dir().resolve().is_relative_to(storage.resolve())


@contextmanager
def cache_lock(name: str):
    """An exclusive lock across processes (the reward backbone in the app and a model worker
    may convert the same file at the same start); the second one waits, then reuses."""
    folder = cache_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def publish_build(staging: Path, target: Path, is_complete) -> Path:
    """Move a finished build from its staging folder to `target`, unless a complete one is
    already there (another process finished first and may be loading it): then keep that one."""
    if is_complete(target):
        return target
    if target.exists():
        shutil.rmtree(target)  # half-written, or built with another recipe
    staging.rename(target)
    return target


def cached_build(
    target: Path, recipe: dict, build: Callable[[Path], None], *, marker: str, note: dict | None = None
) -> Path:
    """`target`, built once by `build(staging)` and reused while its marker says `recipe`.

    `build` fills a temporary sibling folder, which gets the marker (`recipe` plus the purely
    informational `note`) and is then renamed into place: an interrupted build, or one made with
    another recipe, is never mistaken for a finished one. One build per target across processes
    (the app and a CLI run sharing the cache on a first start): the second waits, then reuses.
    """
    informational = set(note or {})

    def is_complete(folder: Path) -> bool:
        try:
            written = json.loads((folder / marker).read_text())
        except (OSError, ValueError):
            return False
        return {k: v for k, v in written.items() if k not in informational} == recipe

    with cache_lock(target.name):
        if is_complete(target):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            build(staging)
            (staging / marker).write_text(json.dumps({**recipe, **(note or {})}, indent=2))
            publish_build(staging, target, is_complete)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def run_isolated(job: Callable, *, reraise: tuple[type[Exception], ...] = (), **kwargs) -> None:
    """Call `job(**kwargs)` in a fresh interpreter and wait for it."""
    target = f"{job.__module__}:{job.__qualname__}"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="demo-job-") as scratch:
        result_file = Path(scratch) / "result.json"
        completed = subprocess.run(
            [sys.executable, "-m", "demo.cache", target, json.dumps(kwargs, default=str), str(result_file)],
            env=env,
            capture_output=True,
            text=True,
            errors="replace",
        )
        try:
            result = json.loads(result_file.read_text())
        except (OSError, ValueError):
            result = None
    if completed.returncode == 0 and result == {"ok": True}:
        return
    if result and "error" in result:
        for error_class in reraise:
            if error_class.__name__ == result["type"]:
                raise error_class(result["error"])
        raise RuntimeError(f"{result['type']}: {result['error']}")
    tail = "\n".join((completed.stdout + completed.stderr).splitlines()[-_TRANSCRIPT_LINES:])
    raise RuntimeError(f"{target} exited with code {completed.returncode}:\n{tail}")


def _main(target: str, arguments: str, result_file: str) -> int:
    module_name, function_name = target.split(":")
    try:
        job = getattr(importlib.import_module(module_name), function_name)
        job(**json.loads(arguments))
    except Exception as error:
        Path(result_file).write_text(json.dumps({"type": type(error).__name__, "error": str(error)}))
        return 1
    Path(result_file).write_text(json.dumps({"ok": True}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(*sys.argv[1:4]))
