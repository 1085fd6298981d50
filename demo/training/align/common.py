"""What every align step shares: where things live, the Gemma chat format, seeding, loading."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

from ...cache import cache_dir

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

T = TypeVar("T")

BASE_MODEL_ID = "gemma-3-270m"

# Gemma 3's turn markers. The base GGUF ships no chat template, so the tuned tokenizers get this
# one: the app's `prompt_format: chat` path (apply_chat_template) then formats exactly what the
# model was trained on. A system message is folded into the first user turn, as Gemma does.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% set ns = namespace(system='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set ns.system = message['content'] | trim + '\n\n' %}"
    "{% else %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n"
    "{% if role == 'user' %}{{ ns.system }}{% set ns.system = '' %}{% endif %}"
    "{{ message['content'] | trim }}<end_of_turn>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
END_OF_TURN = "<end_of_turn>"


def checkpoints_dir(step: str) -> Path:
    """Trainer checkpoints (for --resume) live in the user cache, not in the repository."""
    folder = cache_dir() / "align" / step
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def seeded_split(items: list[T], fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """(train, held_out): a seeded shuffle, the first `fraction` held out."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    cut = max(1, round(len(items) * fraction))
    held = sorted(order[:cut])
    train = sorted(order[cut:])
    return [items[i] for i in train], [items[i] for i in held]


def chat_tokenizer(path: Path | str) -> PreTrainedTokenizerBase:
    """The checkpoint's tokenizer with Gemma's chat template and <end_of_turn> as a stop token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    return tokenizer


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """<eos> and <end_of_turn>: the tuned model ends its turn with the latter."""
    ids = [tokenizer.eos_token_id]
    end = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if end is not None and end != tokenizer.unk_token_id and end not in ids:
        ids.append(end)
    return ids


def set_stop_tokens(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Make generation (transformers, and the ONNX build that reads these configs) stop at the
    end of the model's turn."""
    ids = stop_token_ids(tokenizer)
    model.generation_config.eos_token_id = ids
    model.config.eos_token_id = ids


def load_causal_lm(path: Path | str, device: str | None = None) -> PreTrainedModel:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    # Called through nn.Module's signature (the same method at run time): transformers overrides
    # .to() under functools.wraps, which the stubs read as taking the model as its first argument.
    # Module.to returns the module itself, so the cast only restores the model's own type.
    module: torch.nn.Module = model
    return cast("PreTrainedModel", module.to(device or default_device()))


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class StepPaths:
    """Where one step writes: its committed artefact folder and its resumable checkpoints."""

    artefact: Path
    checkpoints: Path
