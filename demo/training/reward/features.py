"""The reward model's inputs: a frozen causal LM read for its hidden states (`Backbone`, the
transformers reference) and the features of preference pairs (`pair_features`), from whichever
backbone trains the head (the served onnxruntime one by default)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ...config import AppConfig, TrainedHeadReward
from ...generation.formatting import special_token_strings
from ...preferences import PreferencePair, plain_variant
from ...scoring.hosted import padded_batch as _padded
from ...scoring.reward_inputs import (
    FEATURE_KINDS,
    ChatLayout,
    Conversation,
    FeatureKind,
    Pair,
    encode_conversation,
    pool_feature,
)

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# Feature extraction batches by a token budget: long answers in small batches, short in large.
_TOKENS_PER_BATCH = 4096


def _length_batches(lengths: Sequence[int], tokens_per_batch: int) -> list[list[int]]:
    """Indices grouped so similar lengths share a batch (little padding) under a token budget."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    current: list[int]
    batches, current, width = [], [], 0
    for index in order:
        width = max(width, lengths[index])
        if current and width * (len(current) + 1) > tokens_per_batch:
            batches.append(current)
            current, width = [], lengths[index]
        current.append(index)
    if current:
        batches.append(current)
    return batches


# --- the frozen backbone -------------------------------------------------------------------------


class Backbone:
    """A frozen causal LM read for its hidden states (no unembedding is ever computed), in
    transformers: the reference the served onnxruntime backbone (demo/reward_backbone.py) is
    tested against, and the tool of the feature study in the model card.

    `layer=None` reads the final hidden state, after the final norm (the input the unembedding
    would read). `layer=k` reads the residual stream after block k: the blocks above k are dropped
    at load time, so they cost neither memory nor time.
    """

    def __init__(
        self, model, tokenizer, *, max_tokens: int, dtype: str, identity: dict[str, str], layer: int | None = None
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.dtype = dtype
        self.identity = identity
        self.layer = layer
        self.layout = ChatLayout.from_tokenizer(tokenizer)
        self.specials = special_token_strings(tokenizer)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)  # masked out; any id works

    @classmethod
    def load(
        cls,
        checkpoint: Path,
        *,
        dtype: str = "fp32",
        max_tokens: int = 512,
        layer: int | None = None,
        identity: dict[str, str] | None = None,
    ) -> Backbone:
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
        # AutoModel on a causal-LM checkpoint is the transformer without its LM head.
        model = AutoModel.from_pretrained(str(checkpoint), dtype=_DTYPES[dtype])
        if layer is not None:
            truncate_to_layer(model, layer)
        return cls(
            model,
            tokenizer,
            max_tokens=max_tokens,
            dtype=dtype,
            layer=layer,
            identity=identity or {"backbone_checkpoint": Path(checkpoint).name},
        )

    @classmethod
    def from_config(cls, config: AppConfig, spec: TrainedHeadReward, layer: int | None = None) -> Backbone:
        from ...scoring.reward_backbone import resolve_backbone

        checkpoint, identity = resolve_backbone(config, spec)
        return cls.load(checkpoint, max_tokens=spec.max_tokens, layer=layer, identity=identity)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, prompt: str, answer: str) -> list[int]:
        return self.conversation(prompt, answer).ids

    def conversation(self, prompt: str, answer: str) -> Conversation:
        return encode_conversation(self.tokenizer, self.layout, self.specials, prompt, answer, self.max_tokens)

    @torch.inference_mode()
    def features(
        self, pairs: Sequence[Pair], kind: FeatureKind = "last_token", *, tokens_per_batch: int = _TOKENS_PER_BATCH
    ) -> torch.Tensor:
        """[len(pairs), hidden] fp32 features of each (prompt, answer) conversation (see
        `pool_feature`), in length-sorted padded batches."""
        if kind not in FEATURE_KINDS:
            raise ValueError(f"feature kind must be one of {FEATURE_KINDS}, got {kind!r}")
        if not pairs:
            return torch.zeros((0, self.hidden_size))
        conversations = [self.conversation(prompt, answer) for prompt, answer in pairs]
        out = torch.zeros((len(conversations), self.hidden_size))
        device = next(self.model.parameters()).device
        for batch in _length_batches([len(c.ids) for c in conversations], tokens_per_batch):
            ids, mask = _padded([conversations[i].ids for i in batch], self.pad_id)
            hidden = (
                self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state.float().cpu()
            )
            for row, index in enumerate(batch):
                out[index] = torch.from_numpy(pool_feature(hidden[row].numpy(), conversations[index], kind))
        return out


def truncate_to_layer(model, layer: int) -> None:
    """Keep blocks 1..layer and drop the final norm: the model's last hidden state becomes the
    residual stream after block `layer` (identical to `output_hidden_states[layer]`)."""
    blocks = len(model.layers)
    if not 1 <= layer <= blocks:
        raise ValueError(f"layer must be between 1 and {blocks} for this backbone, got {layer}")
    model.layers = model.layers[:layer]
    model.config.num_hidden_layers = layer
    model.norm = nn.Identity()


# --- the features of preference pairs ------------------------------------------------------------


@dataclass(frozen=True)
class PairFeatures:
    """Backbone features of the chosen and rejected answers of a list of pairs."""

    pairs: tuple[PreferencePair, ...]
    chosen: torch.Tensor
    rejected: torch.Tensor

    @property
    def lengths(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Characters of each chosen and rejected answer (the length-control covariate)."""
        return torch.tensor([len(p.chosen) for p in self.pairs]), torch.tensor([len(p.rejected) for p in self.pairs])


def pair_features(backbone, pairs: Sequence[PreferencePair], kind: FeatureKind) -> PairFeatures:
    """Features of every answer, extracted in one length-sorted pass (kept in memory only)."""
    texts = [(p.prompt, p.chosen) for p in pairs] + [(p.prompt, p.rejected) for p in pairs]
    features = torch.as_tensor(backbone.features(texts, kind), dtype=torch.float32)
    return PairFeatures(tuple(pairs), features[: len(pairs)], features[len(pairs) :])


def _with_plain_variants(pairs: Sequence[PreferencePair]) -> list[PreferencePair]:
    return list(pairs) + [v for v in map(plain_variant, pairs) if v is not None]
