"""A prompt's length in tokens as a model will read it, counted in the serving process.

The workers check the token limit too, but only once asked to answer; the blind vote must
refuse an over-long prompt before any model starts (and without naming a model, which would
unblind the battle), so it counts here with each model's own tokenizer and input format.
Tokenizers are loaded on first use and shared between checkpoints whose tokenizer files (the
vocabulary *and* the chat template) have the same content.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from ..config import ModelSpec, PromptedFormat
from .formatting import BaseMode, format_prompt, special_token_strings
from .loading import load_tokenizer


class PromptLength:
    def __init__(self, prompted: PromptedFormat):
        self.prompted = prompted
        self._by_content: dict[str, object] = {}
        self._by_checkpoint: dict[str, object] = {}
        self._lock = threading.Lock()

    def _tokenizer(self, spec: ModelSpec, checkpoint: str):
        with self._lock:
            found = self._by_checkpoint.get(checkpoint)
            if found is None:
                key = _tokenizer_identity(Path(checkpoint))
                found = self._by_content.get(key)
                if found is None:
                    found = self._by_content[key] = load_tokenizer(Path(checkpoint), spec.trust_remote_code)
                self._by_checkpoint[checkpoint] = found
            return found

    def tokens(self, spec: ModelSpec, checkpoint: str, prompt: str, base_mode: BaseMode) -> int:
        tokenizer = self._tokenizer(spec, checkpoint)
        formatted = format_prompt(
            prompt,
            prompt_format=spec.prompt_format,
            base_mode=base_mode,
            tokenizer=tokenizer,
            prompted=self.prompted,
            special_tokens=special_token_strings(tokenizer),
            model_stop_sequences=spec.stop_sequences,
        )
        return len(tokenizer(formatted.text, add_special_tokens=formatted.add_special_tokens)["input_ids"])


# What makes two checkpoints' tokenizers the same: the vocabulary, and the configuration that
# holds the chat template (a base model and its chat-tuned copy share the first, not the second).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")


def _tokenizer_identity(checkpoint: Path) -> str:
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        path = checkpoint / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"-") + b"\0")
    return digest.hexdigest()
