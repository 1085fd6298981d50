"""Scorers hosted on the hub or in a local folder, run with transformers (torch).

A reward model with one logit (e.g. Skywork-Reward-V2) and any sequence-classification toxicity
model (e.g. toxic-bert). Only configs that name them import torch; the embedded default never does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from ..config import AppConfig, SequenceClassifierReward, SequenceClassifierToxicity
from ..generation.formatting import clean_user_text, neutralize_special_tokens, special_token_strings
from .reward_inputs import ChatLayout, Pair, RewardUnavailable, conversation_ids


def padded_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and attention mask: with causal attention, padding after a sequence cannot
    change any of its own positions."""
    width = max(len(seq) for seq in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


class SequenceClassifierRewardScorer:
    """A hosted reward model with one logit, e.g. Skywork-Reward-V2 (`chat`) or the OpenAssistant
    DeBERTa RM (`pair`)."""

    def __init__(self, model, tokenizer, input_format: Literal["chat", "pair"], max_tokens: int = 1024):
        if model.config.num_labels != 1:
            raise RewardUnavailable(
                f"a reward model must have one output logit, this one has {model.config.num_labels}"
            )
        self.model, self.tokenizer = model.eval(), tokenizer
        self.input_format, self.max_tokens = input_format, max_tokens
        self.specials = special_token_strings(tokenizer)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        if getattr(model.config, "pad_token_id", None) is None:
            # Decoder RMs pool at the last non-pad token and must know which id is padding.
            model.config.pad_token_id = tokenizer.pad_token_id
        self.layout = ChatLayout.from_tokenizer(tokenizer) if input_format == "chat" else None

    @classmethod
    def from_spec(
        cls, spec: SequenceClassifierReward, config: AppConfig | None = None, *, device: str = "cpu"
    ) -> SequenceClassifierRewardScorer:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from ..weights import resolve_checkpoint

        checkpoint = resolve_checkpoint(spec.source, trust_remote_code=spec.trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(str(checkpoint.path), trust_remote_code=spec.trust_remote_code)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(checkpoint.path), trust_remote_code=spec.trust_remote_code, dtype=torch.float32
        )
        return cls(model.to(device), tokenizer, spec.input_format, spec.max_tokens)

    def _encode(self, prompt: str, answer: str) -> list[int]:
        if self.layout is not None:
            return conversation_ids(self.tokenizer, self.layout, self.specials, prompt, answer, self.max_tokens)
        safe_prompt = neutralize_special_tokens(clean_user_text(prompt), self.specials)
        safe_answer = neutralize_special_tokens(clean_user_text(answer), self.specials)
        self.tokenizer.truncation_side = "left"  # keep the end of the answer, as the chat format does
        return self.tokenizer(safe_prompt, safe_answer, truncation=True, max_length=self.max_tokens)["input_ids"]

    @torch.no_grad()
    def score(self, pairs: Sequence[Pair]) -> list[float]:
        if not pairs:
            return []
        sequences = [self._encode(prompt, answer) for prompt, answer in pairs]
        ids, mask = padded_batch(sequences, int(self.tokenizer.pad_token_id))
        device = next(self.model.parameters()).device
        logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        return [float(x) for x in logits[:, 0].float().cpu()]


class SequenceClassifierToxicityModel:
    """Any transformers toxicity classifier: multi-label (sigmoid per label, e.g. toxic-bert) or
    single-label (softmax, e.g. a hate-speech model) where only `toxic_labels` count as toxic."""

    def __init__(self, model, tokenizer, activation: str, max_tokens: int = 512):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.activation = activation
        self.max_tokens = max_tokens
        id2label = model.config.id2label
        self.labels = tuple(str(id2label[i]) for i in range(len(id2label)))

    @classmethod
    def from_spec(cls, spec: SequenceClassifierToxicity):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from ..weights import resolve_checkpoint

        checkpoint = resolve_checkpoint(spec.source, trust_remote_code=spec.trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(str(checkpoint.path), trust_remote_code=spec.trust_remote_code)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(checkpoint.path), trust_remote_code=spec.trust_remote_code
        )
        return cls(model, tokenizer, spec.activation)

    def label_scores(self, texts: Sequence[str]) -> list[dict[str, float]]:
        import torch

        if not texts:
            return []
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        with torch.inference_mode():
            logits = self.model(**batch).logits.float()
        probs = torch.sigmoid(logits) if self.activation == "sigmoid" else torch.softmax(logits, dim=-1)
        return [dict(zip(self.labels, row.tolist())) for row in probs]
