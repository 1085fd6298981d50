"""Fitting the reward head: the Bradley–Terry loss on the features of chosen and rejected answers,
full batch and seeded; merging an ensemble into one MLP; the head file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ...scoring.reward_head import OFFSET_KEY, read_head_file
from ...scoring.reward_inputs import HEAD_FORMAT, METADATA_KEY, FeatureKind
from ..heads import FeatureHead, head_tensors, load_head_tensors, write_head_file


@dataclass(frozen=True)
class HeadConfig:
    """What the head reads, its architecture and how it is trained.

    The defaults won a comparison on this project's data (see trained/reward/MODEL_CARD.md): with
    the backbone frozen, the residual stream of a middle block (20 of 30), averaged over the answer's
    tokens, ranks answers far better than the final hidden state at the last token (~0.87 vs
    ~0.75 in 5-fold cross-validation on the train split). `layer=None, feature="last_token"` gives
    the InstructGPT-style final-state head.
    """

    layer: int | None = 20
    feature: FeatureKind = "answer_mean"
    kind: Literal["linear", "mlp"] = "mlp"
    hidden: int = 64
    standardize: bool = True
    weight_decay: float = 0.1
    dropout: float = 0.2
    lr: float = 1e-3
    epochs: int = 200
    # Length control: during training the reward is head(feature) + w·log(characters), w learnt,
    # and w is dropped at inference, so the head is not paid for what length alone explains.
    length_control: bool = False
    # Ensemble: this many heads trained with seeds seed..seed+n−1, merged into one wider MLP
    # (their rewards averaged), so the served head file and its cost stay one small MLP.
    ensemble: int = 1
    # Also train on each pair with both answers markdown-stripped (where either had markdown):
    # part D's rejected answers wear markdown far more often than its chosen ones.
    plain_variants: bool = False


# The reward head is the project's one feature head (demo/training/heads.py); its offset centres
# rewards on the training answers, so 0 means "a typical answer".
RewardHead = FeatureHead


def fit_standardization(features: torch.Tensor, enabled: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std of the training features; identity when disabled. Final hidden
    states have a few dimensions hundreds of times larger than the rest; without this they
    dominate the head's first steps."""
    if not enabled:
        return torch.zeros(features.shape[1]), torch.ones(features.shape[1])
    return features.mean(dim=0), features.std(dim=0).clamp_min(1e-4)


@dataclass(frozen=True)
class FitResult:
    head: RewardHead
    losses: tuple[float, ...]


def fit_head(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    config: HeadConfig,
    *,
    seed: int = 0,
    lengths: tuple[torch.Tensor, torch.Tensor] | None = None,
    weights: torch.Tensor | None = None,
) -> FitResult:
    """Train a head with the Bradley–Terry loss, full batch, seeded: the same inputs and seed give
    bit-identical weights on the same machine. `lengths` (characters of each chosen and rejected
    answer) is needed when `config.length_control` is on. `weights` (one per pair, default equal)
    weigh the pairs' losses, e.g. the pairs of one ranking as one element, as InstructGPT does.
    With `config.ensemble > 1` the members are merged into one head (`merge_heads`); the losses
    are the first member's."""
    if chosen.shape != rejected.shape or chosen.ndim != 2 or len(chosen) == 0:
        raise ValueError("chosen and rejected features must be non-empty [pairs, dim] tensors of one shape")
    if config.length_control and lengths is None:
        raise ValueError("length_control needs the lengths of the chosen and rejected answers")
    if weights is not None and weights.shape != (len(chosen),):
        raise ValueError("weights must hold one number per pair")
    fits = [
        _fit_one(chosen, rejected, config, seed + member, lengths, weights) for member in range(max(1, config.ensemble))
    ]
    if len(fits) == 1:
        return fits[0]
    head = merge_heads([fit.head for fit in fits])
    with torch.no_grad():
        head.offset.copy_(head(torch.cat([chosen, rejected])).mean() + head.offset)
    return FitResult(head=head, losses=fits[0].losses)


def _fit_one(chosen, rejected, config: HeadConfig, seed: int, lengths, weights=None) -> FitResult:
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        head = RewardHead(chosen.shape[1], config.kind, config.hidden, config.dropout)
        mean, std = fit_standardization(torch.cat([chosen, rejected]), config.standardize)
        head.feature_mean.copy_(mean)
        head.feature_std.copy_(std)
        length_weight = torch.zeros((), requires_grad=True)
        groups: list[dict[str, Any]] = [{"params": list(head.parameters())}]
        if config.length_control:
            # Unregularised and faster: one scalar that should soak up the length preference.
            groups.append({"params": [length_weight], "weight_decay": 0.0, "lr": 10 * config.lr})
            log_chosen, log_rejected = (torch.log1p(x.float()) for x in lengths)
        optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
        losses = []
        head.train()
        for _ in range(config.epochs):
            optimizer.zero_grad()
            margin_chosen, margin_rejected = head(chosen), head(rejected)
            if config.length_control:
                margin_chosen = margin_chosen + length_weight * log_chosen
                margin_rejected = margin_rejected + length_weight * log_rejected
            loss = bradley_terry_loss(margin_chosen, margin_rejected, weights)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        head.eval()
        with torch.no_grad():
            head.offset.copy_(head(torch.cat([chosen, rejected])).mean())
    finally:
        torch.random.set_rng_state(generator_state)
    return FitResult(head=head, losses=tuple(losses))


def merge_heads(heads: Sequence[RewardHead]) -> RewardHead:
    """One MLP whose reward is the mean of the heads' rewards: hidden units side by side, output
    weights divided by the number of heads. Needs one standardisation (same training features)."""
    first = heads[0]
    if first.kind != "mlp" or any(h.kind != "mlp" for h in heads):
        raise ValueError("only MLP heads can be merged")
    if any(not torch.equal(h.feature_mean, first.feature_mean) for h in heads):
        raise ValueError("heads standardised on different features cannot be merged")
    merged = RewardHead(first.feature_mean.shape[0], "mlp", first.hidden * len(heads))
    with torch.no_grad():
        merged.net[1].weight.copy_(torch.cat([h.net[1].weight for h in heads]))
        merged.net[1].bias.copy_(torch.cat([h.net[1].bias for h in heads]))
        merged.net[4].weight.copy_(torch.cat([h.net[4].weight for h in heads], dim=1) / len(heads))
        merged.net[4].bias.copy_(torch.stack([h.net[4].bias for h in heads]).mean(dim=0))
        merged.feature_mean.copy_(first.feature_mean)
        merged.feature_std.copy_(first.feature_std)
        merged.offset.copy_(torch.stack([h.offset for h in heads]).mean())
    return merged.eval()


def bradley_terry_loss(
    r_chosen: torch.Tensor, r_rejected: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """−log σ(r_chosen − r_rejected), averaged (weighted by `weights` when given): the InstructGPT
    reward-model loss for one pair each."""
    losses = -nn.functional.logsigmoid(r_chosen - r_rejected)
    return losses.mean() if weights is None else (losses * weights).sum() / weights.sum()


@torch.no_grad()
def pair_accuracy(head: RewardHead, chosen: torch.Tensor, rejected: torch.Tensor) -> float:
    """Share of pairs where the chosen answer scores strictly higher."""
    if len(chosen) == 0:
        return float("nan")
    head.eval()
    return int((head(chosen) > head(rejected)).sum()) / len(chosen)


def save_head(head: RewardHead, path: Path, metadata: dict[str, str]) -> None:
    """Write the head file: the offset as `reward_offset`, every metadata value a string."""
    meta = {"format": HEAD_FORMAT, "head": head.kind, "hidden": str(head.hidden), **metadata}
    write_head_file(path, head_tensors(head, OFFSET_KEY), METADATA_KEY, {k: str(v) for k, v in meta.items()})


def load_head(path: Path) -> tuple[RewardHead, dict[str, str]]:
    """The head in a head file as a torch module (for training tools; the app serves it in numpy)."""
    tensors, metadata = read_head_file(path)
    head = load_head_tensors(
        tensors, OFFSET_KEY, input_dim=int(metadata["input_dim"]), kind=metadata["head"], hidden=int(metadata["hidden"])
    )
    return head, metadata
