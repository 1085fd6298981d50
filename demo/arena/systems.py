"""What a blind vote compares: a *system* is a served model in one input format.

A pretrained model is two systems (`raw`: the prompt as a document to continue; `prompted`: the
paper's few-shot "GPT-3 prompted" prefix); a chat model (sft or preference-tuned) is one (`chat`).
Each system carries a hash of everything that shapes its answers, so a vote stays attributable
after models.yaml changes.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from typing import Literal

from ..config import CURRENT_PATH_STYLE, STAGES, AppConfig, PathStyle
from ..generation.formatting import BaseMode

SystemFormat = Literal["raw", "prompted", "chat"]
STAGE_ORDER: dict[str, int] = {stage: order for order, stage in enumerate(STAGES)}
FORMAT_LABELS = {"raw": "raw prompt", "prompted": "few-shot prompted", "chat": "chat template"}


@dataclass(frozen=True)
class System:
    model_id: str
    format: SystemFormat
    name: str
    stage: str
    config_hash: str

    @property
    def id(self) -> str:
        return f"{self.model_id}:{self.format}"

    @property
    def base_mode(self) -> BaseMode:
        """What the Comparator is told; a chat model ignores it."""
        return "prompted" if self.format == "prompted" else "raw"

    @property
    def label(self) -> str:
        return f"{self.name} · {FORMAT_LABELS[self.format]}"

    @property
    def is_aligned(self) -> bool:
        return self.stage != "pretrained"


def config_hash(
    config: AppConfig, model_id: str, system_format: SystemFormat, *, path_style: PathStyle = CURRENT_PATH_STYLE
) -> str:
    """16 hex digits of sha256 over the model's spec (and the few-shot prefix when prompted),
    paths relative to the repository; a legacy `path_style` gives the hashes stored before."""
    context = {"path_style": path_style}
    data = {"model": config.models[model_id].model_dump(mode="json", context=context)}
    if system_format == "prompted":
        data["prompted"] = config.base_prompted.model_dump(mode="json", context=context)
    blob = path_style.hashed_text(json.dumps(data, sort_keys=True, ensure_ascii=False)).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def systems_from_config(config: AppConfig) -> list[System]:
    """Every system the served models make, in config order."""
    systems = []
    for model_id in config.served_model_ids():
        spec = config.models[model_id]
        formats: tuple[SystemFormat, ...] = ("raw", "prompted") if spec.prompt_format == "base" else ("chat",)
        for system_format in formats:
            systems.append(
                System(model_id, system_format, spec.name, spec.stage, config_hash(config, model_id, system_format))
            )
    return systems


def draw_pair(systems: list[System], rng: random.Random) -> tuple[System, System]:
    """Two different systems, uniformly, in random order (the order is the screen order A, B)."""
    if len(systems) < 2:
        raise ValueError(f"a blind vote needs at least two systems; the config makes {len(systems)}")
    first, second = rng.sample(systems, 2)
    return first, second


def roles_for(a: System, b: System) -> tuple[str, str]:
    """The Comparator's role names for A and B: the less-aligned system runs as "base"."""
    return ("base", "aligned") if STAGE_ORDER[a.stage] <= STAGE_ORDER[b.stage] else ("aligned", "base")


def identity_words(config: AppConfig) -> tuple[str, ...]:
    """Words by which an answer would name a configured model ("Gemma", "SmolLM2", "SmolLM")."""
    words: set[str] = set()
    for spec in config.models.values():
        for text in (spec.name, spec.family):
            first = text.split()[0] if text.split() else ""
            if len(first) >= 3:
                words.add(first)
                stripped = first.rstrip("0123456789.")
                if len(stripped) >= 3:
                    words.add(stripped)
    return tuple(sorted(words, key=str.lower))


def names_a_model(text: str, words: tuple[str, ...]) -> bool:
    """True when the answer names a configured model: Chatbot Arena keeps such votes out of
    the ratings (the voter was no longer blind)."""
    return any(re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", text, re.IGNORECASE) for word in words)
