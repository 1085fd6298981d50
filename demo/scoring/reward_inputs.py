"""What a reward model reads: one (user prompt, assistant answer) conversation as token ids.

Shared by every reward model that reads a chat (the trained head's backbone, a hosted RM with a
chat template) and free of torch, so the app can score answers without importing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import UserFacingError
from ..generation.formatting import clean_user_text, neutralize_special_tokens

TRAIN_COMMAND = "python -m demo train-reward"
FeatureKind = Literal["last_token", "answer_mean", "mean"]
FEATURE_KINDS: tuple[str, ...] = ("last_token", "answer_mean", "mean")
HEAD_FORMAT = "demo-reward-head/1"
METADATA_KEY = "demo_reward_head"
# Stand-ins rendered through the chat template to find where prompt and answer go; private-use
# characters never appear in a template's own text.
_PROMPT_MARK = "\ue000PROMPT\ue001"
_ANSWER_MARK = "\ue000ANSWER\ue001"


class RewardUnavailable(UserFacingError, RuntimeError):
    """The reward model cannot be loaded (e.g. its head was never trained); says what to run."""


Pair = tuple[str, str]


# --- the conversation a reward model reads -------------------------------------------------------


@dataclass(frozen=True)
class ChatLayout:
    """A chat template cut around its two free texts: head + prompt + middle + answer + tail."""

    head: tuple[int, ...]
    middle: tuple[int, ...]
    tail: tuple[int, ...]

    @classmethod
    def from_tokenizer(cls, tokenizer) -> ChatLayout:
        if not getattr(tokenizer, "chat_template", None):
            raise RewardUnavailable(
                "the reward backbone's tokenizer has no chat template; a reward model reads a "
                "(user, assistant) conversation, so pick a chat model as backbone"
            )
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": _PROMPT_MARK}, {"role": "assistant", "content": _ANSWER_MARK}],
            tokenize=False,
        )
        if text.count(_PROMPT_MARK) != 1 or text.count(_ANSWER_MARK) != 1:
            raise RewardUnavailable("the chat template does not render the user and assistant text once each")
        head, rest = text.split(_PROMPT_MARK)
        middle, tail = rest.split(_ANSWER_MARK)

        def ids(piece: str) -> tuple[int, ...]:
            # The template writes its own <bos>/turn tokens; the tokenizer must not add more.
            return tuple(tokenizer(piece, add_special_tokens=False)["input_ids"]) if piece else ()

        return cls(head=ids(head), middle=ids(middle), tail=ids(tail))


@dataclass(frozen=True)
class Conversation:
    """Token ids of one chat-formatted (prompt, answer) and where the answer's tokens are."""

    ids: list[int]
    answer_start: int
    answer_end: int  # exclusive; the end-of-turn token follows

    @property
    def answer_span(self) -> slice:
        # An empty answer is represented by its end-of-turn token, so it still has a feature.
        if self.answer_end > self.answer_start:
            return slice(self.answer_start, self.answer_end)
        return slice(self.answer_end, min(self.answer_end + 1, len(self.ids)))


def encode_conversation(
    tokenizer, layout: ChatLayout, specials: Sequence[str], prompt: str, answer: str, max_tokens: int
) -> Conversation:
    """The chat-formatted (user prompt, assistant answer) conversation, as token ids.

    Typed special-token strings are broken first, so text cannot close its turn early. Past
    `max_tokens` the answer keeps its END (where a rambling or looping answer shows itself), with
    at least half the budget; a long prompt also keeps its end (where the question usually is).
    """

    def ids(text: str) -> list[int]:
        safe = neutralize_special_tokens(clean_user_text(text), specials)
        return tokenizer(safe, add_special_tokens=False)["input_ids"] if safe else []

    prompt_ids, answer_ids = ids(prompt), ids(answer)
    budget = max_tokens - len(layout.head) - len(layout.middle) - len(layout.tail)
    if budget < 2:
        raise ValueError(f"max_tokens={max_tokens} leaves no room for text in the chat template")
    answer_budget = max(budget - len(prompt_ids), budget // 2)
    answer_ids = answer_ids[len(answer_ids) - answer_budget :] if len(answer_ids) > answer_budget else answer_ids
    prompt_budget = budget - len(answer_ids)
    prompt_ids = prompt_ids[len(prompt_ids) - prompt_budget :] if len(prompt_ids) > prompt_budget else prompt_ids
    start = len(layout.head) + len(prompt_ids) + len(layout.middle)
    return Conversation(
        ids=[*layout.head, *prompt_ids, *layout.middle, *answer_ids, *layout.tail],
        answer_start=start,
        answer_end=start + len(answer_ids),
    )


def conversation_ids(
    tokenizer, layout: ChatLayout, specials: Sequence[str], prompt: str, answer: str, max_tokens: int
) -> list[int]:
    return encode_conversation(tokenizer, layout, specials, prompt, answer, max_tokens).ids


def pool_feature(hidden: np.ndarray, conversation: Conversation, kind: FeatureKind) -> np.ndarray:
    """One conversation's feature from its hidden states ([≥ len(ids), hidden]; rows past its
    length are padding): `last_token` — the state at its last token; `answer_mean` — the mean over
    the answer's tokens; `mean` — the mean over every token. The one definition both backbones use."""
    if kind == "last_token":
        return hidden[len(conversation.ids) - 1]
    if kind == "answer_mean":
        return hidden[conversation.answer_span].mean(axis=0)
    if kind == "mean":
        return hidden[: len(conversation.ids)].mean(axis=0)
    raise ValueError(f"feature kind must be one of {FEATURE_KINDS}, got {kind!r}")
