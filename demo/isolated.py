"""Run a heavy one-off job (a GGUF conversion, an ONNX build) in a throwaway Python process.

Both jobs import torch and transformers, and converting plus building Gemma peaks at ~3.8 GB.
Done inside the process that then serves the model, that memory would stay with it for the
app's life; a child process gives all of it back to the OS when it exits, and the serving
process never imports torch. (Model workers are daemon processes, which `multiprocessing` does
not let have children, hence a plain subprocess.)

A job is a module-level function taking JSON-serialisable keyword arguments. An exception in
the child comes back as the same class when the caller lists it in `reraise`, else RuntimeError.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_TRANSCRIPT_LINES = 20


def run_isolated(job: Callable, *, reraise: tuple[type[Exception], ...] = (), **kwargs) -> None:
    """Call `job(**kwargs)` in a fresh interpreter and wait for it."""
    target = f"{job.__module__}:{job.__qualname__}"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="demo-job-") as scratch:
        result_file = Path(scratch) / "result.json"
        completed = subprocess.run(
            [sys.executable, "-m", "demo.isolated", target, json.dumps(kwargs, default=str), str(result_file)],
            env=env, capture_output=True, text=True, errors="replace",
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
