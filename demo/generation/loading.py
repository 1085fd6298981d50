"""Load one configured model into a `ModelRunner`: weights, device, back end, tokenizer.

The back end is chosen per model in models.yaml (`cpu:` when no GPU is present, `gpu:` when one
is); back ends are listed in `backends.REGISTRY`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from ..backend_registry import backend_entry
from ..config import ModelSpec, PromptedFormat, RuntimeSpec
from ..weights import resolve_checkpoint
from .runner import ModelRunner

log = logging.getLogger(__name__)

# transformers' from_pretrained temporarily swaps process-wide state (default dtype, init
# functions), so two loads on threads of one process corrupt each other: load one at a time.
MODEL_LOAD_LOCK = threading.RLock()


@dataclass(frozen=True)
class LoadedModelInfo:
    """What was loaded, for the model cards and the benchmark."""

    backend: str
    precision: str
    device: str
    origin: str
    checkpoint: str
    load_seconds: float


def cuda_available() -> bool:
    """Whether torch can use a CUDA GPU. Without an NVIDIA driver it cannot, and importing torch
    to learn that would cost the app ~160 MiB it otherwise never needs: check the driver first."""
    if not nvidia_driver_present():
        return False
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def nvidia_driver_present() -> bool:
    return Path("/proc/driver/nvidia/version").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


def detect_device() -> str:
    return "cuda" if cuda_available() else "cpu"


def select_runtime(
    spec: ModelSpec, override: RuntimeSpec | None = None, device: str | None = None
) -> tuple[RuntimeSpec, str]:
    """The runtime for this machine: the `gpu:` entry on CUDA, else `cpu:`; an override wins.

    `device` comes from the caller when known: probing CUDA imports torch (~160 MiB), which a
    worker process running onnxruntime-genai never needs.
    """
    device = device or detect_device()
    if override is not None:
        return override, device
    return cast(RuntimeSpec, spec.gpu if device == "cuda" else spec.cpu), device  # ModelSpec fills both


def quiet_transformers() -> None:
    # Progress bars from every load would bury the app's own log lines.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def load_tokenizer(checkpoint: Path, trust_remote_code: bool = False):
    """The checkpoint's tokenizer.

    A folder with a `tokenizer.json` loads it as a fast (Rust `tokenizers`) tokenizer directly:
    `AutoTokenizer` would first read the model config through a module that imports torch, and
    that import alone costs each onnxruntime-genai worker ~160 MiB. Same tokenizer file, same
    ids (tests/test_tokenizer_loading.py checks both against `AutoTokenizer`). Custom tokenizer
    code, or a folder without `tokenizer.json`, goes through `AutoTokenizer`.
    """
    if (Path(checkpoint) / "tokenizer.json").is_file() and not trust_remote_code:
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast.from_pretrained(str(checkpoint))
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(checkpoint), trust_remote_code=trust_remote_code)


def load_runner(
    spec: ModelSpec,
    prompted: PromptedFormat,
    override: RuntimeSpec | None = None,
    device: str | None = None,
) -> tuple[ModelRunner, LoadedModelInfo]:
    started = time.perf_counter()
    quiet_transformers()
    with MODEL_LOAD_LOCK:
        checkpoint = resolve_checkpoint(spec.source, trust_remote_code=spec.trust_remote_code)
        runtime, device = select_runtime(spec, override, device)
        tokenizer = load_tokenizer(checkpoint.path, spec.trust_remote_code)
        generator = backend_entry(runtime.backend).generator_class()
        backend = generator.load(
            checkpoint.path, runtime.precision, device, spec.trust_remote_code, options=runtime.options()
        )
    info = LoadedModelInfo(
        backend=runtime.backend,
        precision=runtime.precision or "served",
        device=device,
        origin=checkpoint.origin,
        checkpoint=str(checkpoint.path),
        load_seconds=time.perf_counter() - started,
    )
    log.info("loaded %s: %s", spec.name, info)
    return ModelRunner(spec, tokenizer, backend, prompted), info
