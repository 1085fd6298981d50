"""The user cache: every artefact the app builds (reassembled weights, converted checkpoints,
merged adapters, ONNX models, fetched wheels), each built once, safely, whichever process asks.

`cached_build` (a folder) and `cached_file` (one file) are the one way to build into the cache:
an inter-process lock per artefact, a temporary name in the same folder, verification (the
sha256 where it is known, else a marker listing each file's size and sha256, written last),
then an atomic rename. A reader never sees half an artefact; a second process waits, then
reuses; an artefact found incomplete, damaged or built by another recipe is rebuilt.

Heavy one-off jobs (a GGUF conversion, an ONNX build) import torch and transformers and peak at
~3.8 GB; `run_isolated` runs them in a throwaway Python process, which gives all of that memory
back when it exits, so the serving process never imports torch. (Model workers are daemon
processes, which `multiprocessing` does not let have children, hence a plain subprocess.) A
job is a module-level function taking JSON-serialisable keyword arguments; an exception in the
child comes back as the same class when the caller lists it in `reraise`, else RuntimeError.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from .paths import REPO_ROOT

CACHE_ENV_VAR = "DEMO_CACHE_DIR"

_PACKAGE_ROOT = str(REPO_ROOT)
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


# --- Safe builds: one lock per artefact, a temporary name, verified, then an atomic rename ----

# Who is told what the cache is doing (a worker's status line, `prepare`'s progress): a
# callable taking one line of text, set by the caller for the duration of a load.
build_reporter: ContextVar[Callable[[str], None] | None] = ContextVar("build_reporter", default=None)

# Set while retrying a load that failed: every file of every artefact is checked by its sha256,
# not only by its size and stat time, so a damaged one is found and rebuilt.
verify_every_file: ContextVar[bool] = ContextVar("verify_every_file", default=False)

# A lock held by another process is waited for up to this long, then the wait is reported as
# an error (a builder stuck for this long is broken; the next request tries again).
LOCK_TIMEOUT_SECONDS = 3600.0


def _report(text: str) -> None:
    reporter = build_reporter.get()
    if reporter is not None:
        reporter(text)


def _lock_path(target: Path) -> Path:
    folder = cache_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(str(target.resolve()).encode("utf-8")).hexdigest()[:12]
    return folder / f"{target.name}-{key}.lock"


@contextmanager
def artifact_lock(target: Path, label: str) -> Iterator[None]:
    """An exclusive lock across processes for one artefact: the second process waits (and says
    so), then finds the artefact built. filelock's lock is released by the OS when its holder
    dies, so a killed builder never leaves a stale lock."""
    lock = FileLock(str(_lock_path(target)))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        _report(f"waiting for another process building {label}")
        try:
            lock.acquire(timeout=LOCK_TIMEOUT_SECONDS)
        except Timeout:
            raise RuntimeError(f"another process has been building {label} for over an hour") from None
    try:
        yield
    finally:
        lock.release()


@dataclass(frozen=True)
class FileRecord:
    """What a finished artefact's file was: its size, sha256 and the stat time it had."""

    size: int
    sha256: str
    mtime_ns: int


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _record(path: Path) -> FileRecord:
    stat = path.stat()
    return FileRecord(size=stat.st_size, sha256=sha256_file(path), mtime_ns=stat.st_mtime_ns)


def _unchanged(path: Path, record: FileRecord, *, full: bool) -> bool:
    """Whether `path` still is the file recorded. A file whose size and stat time are as recorded
    is taken as is (git's index does the same); otherwise, or when `full`, its sha256 decides."""
    try:
        stat = path.stat()
    except OSError:
        return False
    if stat.st_size != record.size:
        return False
    if not full and stat.st_mtime_ns == record.mtime_ns:
        return True
    return sha256_file(path) == record.sha256


def _manifest(folder: Path, skip: str) -> dict[str, dict]:
    return {
        str(path.relative_to(folder)): asdict(_record(path))
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != skip
    }


def _folder_is_complete(folder: Path, marker: str, recipe: dict, *, full: bool = False) -> bool:
    try:
        written = json.loads((folder / marker).read_text())
    except (OSError, ValueError):
        return False
    if written.get("recipe") != recipe or not isinstance(written.get("files"), dict):
        return False
    return all(_unchanged(folder / name, FileRecord(**record), full=full) for name, record in written["files"].items())


def _remove_leftovers(target: Path) -> None:
    """Staging folders and temporary files of builders that died (only called under the lock)."""
    if not target.parent.is_dir():
        return
    for leftover in target.parent.glob(f".{target.name}.*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def cached_build(
    target: Path,
    recipe: dict,
    build: Callable[[Path], None],
    *,
    marker: str,
    label: str | None = None,
    note: dict | None = None,
) -> Path:
    """The folder `target`, built once by `build(staging)` and reused while its marker says
    `recipe` and its files are those the marker lists.

    Under the artefact's lock: a complete build is reused; otherwise leftovers of a killed
    builder and an incomplete or outdated `target` are removed, `build` fills a temporary
    sibling folder, the marker (the recipe, each file's size and sha256, and the purely
    informational `note`) is written last, and the folder is renamed into place. A reader that
    finds the marker finds every file. Under `verify_every_file` every file's sha256 is checked,
    not only its size and stat time.
    """
    label = label or target.name
    verify = verify_every_file.get()
    if _folder_is_complete(target, marker, recipe, full=verify):
        return target
    with artifact_lock(target, label):
        if _folder_is_complete(target, marker, recipe, full=verify):
            return target
        _remove_leftovers(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            _report(f"building {label}")
            build(staging)
            content = {"recipe": recipe, "files": _manifest(staging, marker), **(note or {})}
            (staging / marker).write_text(json.dumps(content, indent=2))
            if target.exists():
                _remove(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def cached_file(
    target: Path,
    write: Callable[[Path], None],
    *,
    sha256: str | None = None,
    recipe: dict | None = None,
    label: str | None = None,
) -> Path:
    """The file `target`, written once by `write(temporary)` and reused.

    With `sha256` the content decides: a file with another hash (truncated, corrupt, another
    version) is rewritten, and a new one must have it before it is renamed into place. Without
    it, a marker file beside it (`.NAME.done.json`, written after the rename) records `recipe`
    and the file's hash, as `cached_build` does for folders.
    """
    label = label or target.name
    marker = target.with_name(f"{target.name}.done.json")

    def complete() -> bool:
        if sha256 is not None:
            return _has_sha256(target, sha256)
        try:
            written = json.loads(marker.read_text())
        except (OSError, ValueError):
            return False
        record = FileRecord(**written["file"])
        return written.get("recipe") == recipe and _unchanged(target, record, full=verify_every_file.get())

    if complete():
        return target
    with artifact_lock(target, label):
        if complete():
            return target
        _remove_leftovers(target)
        marker.unlink(missing_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.close(handle)
        temporary = Path(name)
        try:
            _report(f"building {label}")
            write(temporary)
            if sha256 is not None and sha256_file(temporary) != sha256:
                raise RuntimeError(f"{label} was written with the wrong sha256 (a damaged source?)")
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        if sha256 is None:
            marker.write_text(json.dumps({"recipe": recipe, "file": asdict(_record(target))}, indent=2))
    return target


# Files whose full sha256 this process has checked, with the stat they had then: a file with a
# known hash is hashed once per process (0.1-0.2 s for 250 MB), not at every resolve.
_CHECKED: dict[str, FileRecord] = {}


def _has_sha256(path: Path, sha256: str) -> bool:
    try:
        stat = path.stat()
    except OSError:
        return False
    checked = _CHECKED.get(str(path))
    if not verify_every_file.get() and checked == FileRecord(
        size=stat.st_size, sha256=sha256, mtime_ns=stat.st_mtime_ns
    ):
        return True
    if sha256_file(path) != sha256:
        return False
    _CHECKED[str(path)] = FileRecord(size=stat.st_size, sha256=sha256, mtime_ns=stat.st_mtime_ns)
    return True


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
