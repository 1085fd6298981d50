"""What each model really receives: the prompt formatted per model, as text.

- aligned model: the tokenizer's chat template with the generation prompt;
- base model, per request: `raw` (the prompt as a document to continue, as GPT-3 was used) or
  `prompted` (a few-shot prefix, the paper's "GPT-3 prompted" baseline) with stop rules.

Text a user typed never becomes a control token: special-token strings in it (`<|im_start|>`,
`<start_of_turn>`, ...) are broken with an invisible word joiner before formatting, and the
prompt is spliced in with `str.replace`, never `str.format`, so `{}` and `%s` stay literal.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Protocol

from ..config import PromptedFormat

BaseMode = Literal["raw", "prompted"]
BASE_MODES: tuple[BaseMode, ...] = ("raw", "prompted")
WORD_JOINER = "\u2060"
_ALLOWED_CONTROL = {"\n", "\t"}


class ChatTokenizer(Protocol):
    bos_token: str | None

    def apply_chat_template(self, conversation, *, tokenize: bool, add_generation_prompt: bool): ...


@dataclass(frozen=True)
class FormattedPrompt:
    """The exact text a model is given, how to tokenize it, and where its answer ends."""

    text: str
    add_special_tokens: bool
    stop_sequences: tuple[str, ...]


def clean_user_text(text: str) -> str:
    """Drop control characters (NUL, escape sequences, ...) but keep newlines, tabs and every
    printable script, emoji and bidi/zero-width mark: those are legitimate text."""
    return "".join(ch for ch in text if ch in _ALLOWED_CONTROL or unicodedata.category(ch) != "Cc")


@lru_cache(maxsize=8)
def _special_token_pattern(special_tokens: tuple[str, ...]) -> re.Pattern[str] | None:
    tokens = sorted({t for t in special_tokens if len(t) > 1}, key=len, reverse=True)
    if not tokens:
        return None
    return re.compile("|".join(re.escape(t) for t in tokens))


def neutralize_special_tokens(text: str, special_tokens: Sequence[str]) -> str:
    """Break every special-token string in user text so the tokenizer reads it as plain text."""
    pattern = _special_token_pattern(tuple(special_tokens))
    if pattern is None:
        return text
    return pattern.sub(lambda m: m.group(0)[0] + WORD_JOINER + m.group(0)[1:], text)


def special_token_strings(tokenizer) -> tuple[str, ...]:
    """All strings the tokenizer would turn into a special (control) token."""
    strings = set(getattr(tokenizer, "all_special_tokens", []) or [])
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    strings.update(token.content for token in decoder.values() if getattr(token, "special", False))
    return tuple(sorted(strings))


def answer_lead(prompt_format: Literal["base", "chat"], answer: str) -> str:
    """What goes between a prompt and an answer teacher-forced after it: a base model reads the
    answer after a space, as a document continues; a chat template ends where the answer begins."""
    return " " if prompt_format != "chat" and answer[:1] and not answer[:1].isspace() else ""


def format_prompt(
    prompt: str,
    *,
    prompt_format: Literal["base", "chat"],
    base_mode: BaseMode,
    tokenizer,
    prompted: PromptedFormat,
    special_tokens: Sequence[str],
    model_stop_sequences: Sequence[str] = (),
) -> FormattedPrompt:
    """Format a user prompt for one model. Pure: same inputs, same text."""
    safe = neutralize_special_tokens(clean_user_text(prompt), special_tokens)
    stops = tuple(model_stop_sequences)
    if prompt_format == "chat":
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": safe}], tokenize=False, add_generation_prompt=True
        )
        # The template already carries its own <bos>/turn tokens; adding more would double them.
        return FormattedPrompt(text=text, add_special_tokens=False, stop_sequences=stops)
    if base_mode == "raw":
        # add_special_tokens=True lets the tokenizer prepend <bos> (Gemma needs it).
        return FormattedPrompt(text=safe, add_special_tokens=True, stop_sequences=stops)
    if base_mode == "prompted":
        text = prompted.prefix + prompted.template.replace("{prompt}", safe)
        return FormattedPrompt(text=text, add_special_tokens=True, stop_sequences=stops + prompted.stop_sequences)
    raise ValueError(f"base_mode must be one of {BASE_MODES}, got {base_mode!r}")
