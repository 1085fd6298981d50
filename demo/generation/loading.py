"""Load one configured model into a `ModelRunner`: weights, device, back end, tokenizer.

The back end is chosen per model in models.yaml (`cpu:` when no GPU is present, `gpu:` when one
is); back ends are listed in `backends.REGISTRY`.
"""

from __future__ import annotations

import json
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
    ids (tests/integration/test_tokenizer_loading.py checks both against `AutoTokenizer`). Custom tokenizer
    code, or a folder without `tokenizer.json`, goes through `AutoTokenizer`.
    """
    folder = Path(checkpoint)
    if (folder / "tokenizer.json").is_file() and not trust_remote_code:
        from transformers import PreTrainedTokenizerFast

        settings = _plain_tokenizer_settings(folder)
        if settings is not None:
            return PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), **settings)
        return PreTrainedTokenizerFast.from_pretrained(str(folder))
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(checkpoint), trust_remote_code=trust_remote_code)


# Files `from_pretrained` would read beyond tokenizer.json and tokenizer_config.json; a folder with
# any of them takes the full path.
_EXTRA_TOKENIZER_FILES = ("special_tokens_map.json", "added_tokens.json")
# tokenizer_config.json keys that say how the file was saved, not what the tokenizer is.
_SAVE_ONLY_KEYS = frozenset({"backend", "is_local", "local_files_only", "tokenizer_class", "name_or_path"})


def _plain_tokenizer_settings(folder: Path) -> dict | None:
    """The keyword arguments that rebuild the tokenizer `from_pretrained` would give, or None
    when the folder needs `from_pretrained` itself.

    `from_pretrained` parses the whole tokenizer.json in Python before the Rust library parses it
    again, and the constructor then deep-copies the result: about 4 s of a worker's start for
    Gemma's 262k-token vocabulary, against about 2 s for one Rust parse here. A plain folder
    (settings in tokenizer_config.json, chat template inline or in chat_template.jinja, no
    added-token tables outside tokenizer.json) loads the same tokenizer this way
    (tests/integration/test_tokenizer_loading.py compares both on every model we serve).
    """
    config_file = folder / "tokenizer_config.json"
    if not config_file.is_file() or any((folder / name).exists() for name in _EXTRA_TOKENIZER_FILES):
        return None
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or "added_tokens_decoder" in config or "auto_map" in config:
        return None
    settings = {key: value for key, value in config.items() if key not in _SAVE_ONLY_KEYS}
    if not all(_plain_value(value) for value in settings.values()):
        return None  # AddedToken dicts, named chat templates and the like: from_pretrained converts them
    template = folder / "chat_template.jinja"
    if template.is_file():
        settings["chat_template"] = template.read_text(encoding="utf-8")
    return settings


def _plain_value(value) -> bool:
    if isinstance(value, list):
        return all(isinstance(item, str) for item in value)
    return isinstance(value, str | int | float | bool)


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
