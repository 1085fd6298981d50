"""Reward scores for (prompt, answer) pairs: InstructGPT step 2, at demonstration scale.

Two kinds of reward model, picked by `models.yaml` → `scoring.reward`:

- `trained_head` (the offline default): a small head trained by this project on the hidden states
  of a frozen backbone language model reading the chat-formatted (user prompt, assistant answer)
  conversation. InstructGPT's reward model is its SFT model with the unembedding replaced by a
  scalar head and the whole model fine-tuned; here the backbone stays frozen and only the head
  learns, from ~660 hand-written preference pairs (`data/preferences`, see demo/preferences.py).
  Frozen, the final hidden state at the last token is a poor feature (it is specialised for
  predicting the next token); a middle block's state averaged over the answer is much better, so
  that is the default (see `HeadConfig` and the comparison in data/reward/MODEL_CARD.md).
  `train_reward_head` trains the head with the Bradley–Terry loss −log σ(r_chosen − r_rejected)
  and writes it with its model card.
- `sequence_classifier`: any hosted reward model with one logit (Skywork-Reward, OpenAssistant RM),
  fed either the RM's own chat template (`chat`) or a (prompt, answer) text pair (`pair`).

Rewards are in Bradley–Terry logit units: σ(r_a − r_b) is the probability that a is preferred.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from ..config import AppConfig, TrainedHeadReward
from ..generation.formatting import special_token_strings
from ..scoring.hosted import padded_batch as _padded
from ..scoring.reward_head import (
    read_head_file,
)
from ..scoring.reward_inputs import (
    FEATURE_KINDS,
    HEAD_FORMAT,
    METADATA_KEY,
    TRAIN_COMMAND,
    ChatLayout,
    Conversation,
    FeatureKind,
    Pair,
    encode_conversation,
    pool_feature,
)
from .preferences import (
    PREFERENCES_DIR,
    PreferencePair,
    counts,
    load_unseen,
    load_written,
    split_pairs,
    write_split,
)

log = logging.getLogger(__name__)

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# Feature extraction batches by a token budget: long answers in small batches, short in large.
_TOKENS_PER_BATCH = 4096


def _length_batches(lengths: Sequence[int], tokens_per_batch: int) -> list[list[int]]:
    """Indices grouped so similar lengths share a batch (little padding) under a token budget."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
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

    def __init__(self, model, tokenizer, *, max_tokens: int, dtype: str, identity: dict[str, str], layer: int | None = None):
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
        cls, checkpoint: Path, *, dtype: str = "fp32", max_tokens: int = 512,
        layer: int | None = None, identity: dict[str, str] | None = None,
    ) -> Backbone:
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
        # AutoModel on a causal-LM checkpoint is the transformer without its LM head.
        model = AutoModel.from_pretrained(str(checkpoint), dtype=_DTYPES[dtype])
        if layer is not None:
            truncate_to_layer(model, layer)
        return cls(
            model, tokenizer, max_tokens=max_tokens, dtype=dtype, layer=layer,
            identity=identity or {"backbone_checkpoint": Path(checkpoint).name},
        )

    @classmethod
    def from_config(cls, config: AppConfig, spec: TrainedHeadReward, layer: int | None = None) -> Backbone:
        from ..scoring.reward_backbone import resolve_backbone

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
            hidden = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state.float().cpu()
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


# --- the head ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadConfig:
    """What the head reads, its architecture and how it is trained.

    The defaults won a comparison on this project's data (see data/reward/MODEL_CARD.md): with
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


class RewardHead(nn.Module):
    """(feature − mean) / std → linear or one-hidden-layer MLP → scalar reward − offset."""

    def __init__(self, input_dim: int, kind: str = "mlp", hidden: int = 64, dropout: float = 0.0):
        super().__init__()
        if kind == "linear":
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(input_dim, 1))
        elif kind == "mlp":
            self.net = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(input_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
            )
        else:
            raise ValueError(f"head kind must be 'linear' or 'mlp', got {kind!r}")
        self.kind, self.hidden = kind, hidden
        self.register_buffer("feature_mean", torch.zeros(input_dim))
        self.register_buffer("feature_std", torch.ones(input_dim))
        # Centres rewards on the training answers, so 0 means "a typical answer".
        self.register_buffer("reward_offset", torch.zeros(()))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = (features - self.feature_mean) / self.feature_std
        return self.net(x).squeeze(-1) - self.reward_offset


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


def fit_head(chosen: torch.Tensor, rejected: torch.Tensor, config: HeadConfig, *, seed: int = 0) -> FitResult:
    """Train a head with the Bradley–Terry loss, full batch, seeded: the same inputs and seed give
    bit-identical weights on the same machine."""
    if chosen.shape != rejected.shape or chosen.ndim != 2 or len(chosen) == 0:
        raise ValueError("chosen and rejected features must be non-empty [pairs, dim] tensors of one shape")
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        head = RewardHead(chosen.shape[1], config.kind, config.hidden, config.dropout)
        mean, std = fit_standardization(torch.cat([chosen, rejected]), config.standardize)
        head.feature_mean.copy_(mean)
        head.feature_std.copy_(std)
        optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        losses = []
        head.train()
        for _ in range(config.epochs):
            optimizer.zero_grad()
            loss = bradley_terry_loss(head(chosen), head(rejected))
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        head.eval()
        with torch.no_grad():
            head.reward_offset.copy_(head(torch.cat([chosen, rejected])).mean())
    finally:
        torch.random.set_rng_state(generator_state)
    return FitResult(head=head, losses=tuple(losses))


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """−log σ(r_chosen − r_rejected), averaged: the InstructGPT reward-model loss for one pair each."""
    return -nn.functional.logsigmoid(r_chosen - r_rejected).mean()


@torch.no_grad()
def pair_accuracy(head: RewardHead, chosen: torch.Tensor, rejected: torch.Tensor) -> float:
    """Share of pairs where the chosen answer scores strictly higher."""
    if len(chosen) == 0:
        return float("nan")
    head.eval()
    return int((head(chosen) > head(rejected)).sum()) / len(chosen)


def save_head(head: RewardHead, path: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    tensors = {name: tensor.detach().float().contiguous() for name, tensor in head.state_dict().items()}
    meta = {"format": HEAD_FORMAT, "head": head.kind, "hidden": str(head.hidden), **metadata}
    path.parent.mkdir(parents=True, exist_ok=True)
    # One sorted JSON string under one key: safetensors writes several metadata keys in a random
    # order, and a retrained head should be byte-identical to the committed one.
    blob = json.dumps({k: str(v) for k, v in meta.items()}, sort_keys=True, ensure_ascii=False)
    save_file(tensors, str(path), metadata={METADATA_KEY: blob})


def load_head(path: Path) -> tuple[RewardHead, dict[str, str]]:
    """The head in a head file as a torch module (for training tools; the app serves it in numpy)."""
    tensors, metadata = read_head_file(path)
    head = RewardHead(int(metadata["input_dim"]), metadata["head"], int(metadata["hidden"]))
    head.load_state_dict({name: torch.tensor(array) for name, array in tensors.items()})
    return head.eval(), metadata


# --- scorers -------------------------------------------------------------------------------------


# --- training ------------------------------------------------------------------------------------


@dataclass
class TrainingReport:
    """What `python -m demo train-reward` did and how well the head ranks held-out pairs."""

    train_pairs: int
    test_pairs: int
    unseen_pairs: int
    heldout_accuracy: float
    unseen_accuracy: float
    heldout_accuracy_by_aspect: dict[str, float]
    unseen_accuracy_by_aspect: dict[str, float]
    longer_wins_heldout: float
    longer_wins_unseen: float
    train_accuracy: float
    loss_first: float
    loss_last: float
    loss_curve: tuple[float, ...]
    seconds: float
    feature_seconds: float
    head_path: str
    card_path: str
    head: dict = field(default_factory=dict)
    votes: dict | None = None  # `--with-votes`: accuracies before/after (demo/arena/export.py)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PairFeatures:
    """Backbone features of the chosen and rejected answers of a list of pairs."""

    pairs: tuple[PreferencePair, ...]
    chosen: torch.Tensor
    rejected: torch.Tensor


def pair_features(backbone, pairs: Sequence[PreferencePair], kind: FeatureKind) -> PairFeatures:
    """Features of every answer, extracted in one length-sorted pass (kept in memory only)."""
    texts = [(p.prompt, p.chosen) for p in pairs] + [(p.prompt, p.rejected) for p in pairs]
    features = torch.as_tensor(backbone.features(texts, kind), dtype=torch.float32)
    return PairFeatures(tuple(pairs), features[: len(pairs)], features[len(pairs) :])


def longer_wins(pairs: Sequence[PreferencePair]) -> float:
    """Baseline: the longer answer (in characters) is preferred; a tie counts as a miss."""
    if not pairs:
        return float("nan")
    return sum(len(p.chosen) > len(p.rejected) for p in pairs) / len(pairs)


def accuracy_by(head: RewardHead, data: PairFeatures, field_name: str) -> dict[str, float]:
    """Pair accuracy per value of a metadata field (aspect, category, flaw)."""
    result = {}
    for value in counts(data.pairs, field_name):
        index = torch.tensor([i for i, p in enumerate(data.pairs) if getattr(p, field_name) == value])
        result[value] = pair_accuracy(head, data.chosen[index], data.rejected[index])
    return result


def data_fingerprint(pairs: Sequence[PreferencePair]) -> str:
    digest = hashlib.sha256()
    for pair in pairs:
        digest.update(pair.to_json().encode("utf-8") + b"\n")
    return digest.hexdigest()[:16]


def train_reward_head(
    config: AppConfig,
    *,
    seed: int = 0,
    out_dir: Path | None = None,
    head_config: HeadConfig = HeadConfig(),
    data_dir: Path = PREFERENCES_DIR,
    backbone=None,
    votes=None,
) -> TrainingReport:
    """Train the reward head on the written pairs' train split, measure it on the held-out split
    and on unseen.jsonl (never trained on), and write the head and its model card.

    `out_dir` overrides where the head and card go (default: the paths in models.yaml).
    `votes` (demo.arena.export.VoteTraining) adds blind-vote pairs to the training pairs.
    """
    spec = config.scoring.reward
    if not isinstance(spec, TrainedHeadReward):
        raise ValueError("scoring.reward in the config is not a trained_head; nothing to train")
    started = time.perf_counter()
    head_path = Path(out_dir) / spec.head_path.name if out_dir else spec.head_path
    card_path = Path(out_dir) / spec.card_path.name if out_dir else spec.card_path

    split = write_split(data_dir) if data_dir == PREFERENCES_DIR else split_pairs(load_written(data_dir))
    unseen_file = Path(data_dir) / "unseen.jsonl"
    unseen = load_unseen(data_dir) if unseen_file.is_file() else []
    log.info("preference pairs: %d train, %d held-out, %d unseen", len(split.train), len(split.test), len(unseen))

    if backbone is None:
        # The backbone the app serves with (onnxruntime, models.yaml's precision): the head
        # learns from exactly the features it will be given.
        from ..scoring.reward_backbone import OnnxBackbone

        backbone = OnnxBackbone.from_config(config, spec, layer=head_config.layer)
    if backbone.layer != head_config.layer:
        raise ValueError(f"the backbone was loaded at layer {backbone.layer}, the head config asks for {head_config.layer}")
    t0 = time.perf_counter()
    train = pair_features(backbone, split.train, head_config.feature)
    test = pair_features(backbone, split.test, head_config.feature)
    unseen_features = pair_features(backbone, unseen, head_config.feature)
    feature_seconds = time.perf_counter() - t0
    log.info("backbone features in %.1f s", feature_seconds)

    fit = fit_head(train.chosen, train.rejected, head_config, seed=seed)
    vote_report = None
    if votes is not None:
        from ..arena.export import train_with_votes

        fit, vote_report = train_with_votes(fit, votes, train, test, lambda p: pair_features(backbone, p, head_config.feature),
                                            lambda c, r: fit_head(c, r, head_config, seed=seed), pair_accuracy)
    vote_card = vote_report.pop("card") if vote_report else ""
    head = fit.head
    report = TrainingReport(
        train_pairs=len(split.train),
        test_pairs=len(split.test),
        unseen_pairs=len(unseen),
        heldout_accuracy=pair_accuracy(head, test.chosen, test.rejected),
        unseen_accuracy=pair_accuracy(head, unseen_features.chosen, unseen_features.rejected),
        heldout_accuracy_by_aspect=accuracy_by(head, test, "aspect"),
        unseen_accuracy_by_aspect=accuracy_by(head, unseen_features, "aspect"),
        longer_wins_heldout=longer_wins(split.test),
        longer_wins_unseen=longer_wins(unseen),
        train_accuracy=pair_accuracy(head, train.chosen, train.rejected),
        loss_first=fit.losses[0],
        loss_last=fit.losses[-1],
        loss_curve=_curve_summary(fit.losses),
        seconds=0.0,
        feature_seconds=round(feature_seconds, 1),
        head_path=str(head_path),
        card_path=str(card_path),
        head=asdict(head_config),
        votes=vote_report,
    )
    metadata = {
        **backbone.identity,
        "backbone_dtype": backbone.dtype,
        "feature": head_config.feature,
        "layer": "final" if head_config.layer is None else str(head_config.layer),
        "feature_layer": (
            "final hidden state (after the final norm)" if head_config.layer is None
            else f"residual stream after block {head_config.layer} (before any norm)"
        ),
        "input_dim": str(backbone.hidden_size),
        "max_tokens": str(backbone.max_tokens),
        "seed": str(seed),
        "head_config": json.dumps(asdict(head_config)),
        "train_pairs": str(len(split.train)),
        "train_data_sha256_16": data_fingerprint(split.train),
        "heldout_accuracy": f"{report.heldout_accuracy:.4f}",
        "unseen_accuracy": f"{report.unseen_accuracy:.4f}",
    }
    save_head(head, head_path, metadata)
    report.seconds = round(time.perf_counter() - started, 1)
    card_path.parent.mkdir(parents=True, exist_ok=True)
    card_path.write_text(
        model_card(report, split.train, split.test, unseen, test, unseen_features, head, metadata, spec)
        + vote_card,
        encoding="utf-8",
    )
    log.info(
        "reward head: held-out %.3f, unseen %.3f (longer-wins %.3f / %.3f), %.1f s",
        report.heldout_accuracy, report.unseen_accuracy, report.longer_wins_heldout, report.longer_wins_unseen, report.seconds,
    )
    return report


def _curve_summary(losses: Sequence[float], points: int = 6) -> tuple[float, ...]:
    """The loss at a few evenly spaced epochs (first and last included)."""
    if len(losses) <= points:
        return tuple(round(x, 4) for x in losses)
    step = (len(losses) - 1) / (points - 1)
    return tuple(round(losses[round(i * step)], 4) for i in range(points))


# --- the model card ------------------------------------------------------------------------------


_FEATURE_WORDS = {
    "last_token": "at the last token of the conversation",
    "answer_mean": "averaged over the answer's tokens",
    "mean": "averaged over every token of the conversation",
}

# The one-off comparison that chose `HeadConfig`'s defaults (660 written pairs, seed 0).
# Rows: feature, head, 5-fold CV accuracy on the train split, held-out accuracy.
STUDY: tuple[tuple[str, str, str, str], ...] = (
    ("final state (after norm), last token", "linear", "73.6%", "72.0%"),
    ("final state (after norm), last token", "MLP 32", "75.5%", "70.0%"),
    ("final state (after norm), last token", "linear, weight decay 30", "71.4%", "69.0%"),
    ("final state, `<|im_end|>` token", "MLP 32", "78.0%", "71.0%"),
    ("final state, last token after a \"was that helpful?\" turn", "MLP 32", "73.7%", "79.0%"),
    ("final state, mean over all tokens", "linear", "75.7%", "77.0%"),
    ("final state, mean over all tokens", "MLP 32", "80.5%", "79.0%"),
    ("final state, mean over the answer", "MLP 32", "82.9%", "75.0%"),
    ("block 20 of 30, last token", "MLP 32", "81.8%", "85.0%"),
    ("block 16 of 30, last token", "MLP 64", "83.4%", "81.0%"),
    ("block 14 of 30, mean over the answer", "MLP 64", "84.3%", "89.0%"),
    ("block 18 of 30, mean over the answer", "MLP 128, dropout 0.3", "85.9%", "91.0%"),
    ("block 20 of 30, mean over the answer", "linear", "83.8%", "85.0%"),
    ("block 20 of 30, mean over the answer", "MLP 32", "85.7%", "86.0%"),
    ("block 20 of 30, mean over the answer", "MLP 32, not standardised", "85.5%", "85.0%"),
    ("**block 20 of 30, mean over the answer**", "**MLP 64, dropout 0.2, 200 epochs**", "**87.1%**", "**90.0%**"),
    ("block 20 of 30, mean over the answer", "MLP 128, dropout 0.3", "86.2%", "90.0%"),
)


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def model_card(report, train, test, unseen, test_features, unseen_features, head, metadata, spec) -> str:
    """MODEL_CARD.md: the data, the method, the measurements and the limits, from this run."""
    everything = list(train) + list(test)
    by_category = _table(
        ["category", "train", "held-out", "unseen"],
        [(c, counts(train, "category").get(c, 0), counts(test, "category").get(c, 0), counts(unseen, "category").get(c, 0))
         for c in counts(everything + list(unseen), "category")],
    )
    by_aspect = _table(
        ["aspect", "train", "held-out", "unseen"],
        [(a, counts(train, "aspect").get(a, 0), counts(test, "aspect").get(a, 0), counts(unseen, "aspect").get(a, 0))
         for a in counts(everything + list(unseen), "aspect")],
    )
    by_flaw = ", ".join(f"{k} {v}" for k, v in counts(everything, "flaw").items())
    aspect_rows = []
    for aspect in counts(everything + list(unseen), "aspect"):
        held = [p for p in test if p.aspect == aspect]
        new = [p for p in unseen if p.aspect == aspect]
        aspect_rows.append((
            aspect,
            f"{_pct(report.heldout_accuracy_by_aspect.get(aspect, float('nan')))} (n={len(held)})",
            _pct(longer_wins(held)),
            f"{_pct(report.unseen_accuracy_by_aspect.get(aspect, float('nan')))} (n={len(new)})",
            _pct(longer_wins(new)),
        ))
    held_flaw, unseen_flaw = accuracy_by(head, test_features, "flaw"), accuracy_by(head, unseen_features, "flaw")
    held_n, unseen_n = counts(test_features.pairs, "flaw"), counts(unseen_features.pairs, "flaw")
    flaw_rows = [
        (flaw,
         f"{_pct(held_flaw[flaw])} (n={held_n[flaw]})" if flaw in held_flaw else "–",
         f"{_pct(unseen_flaw[flaw])} (n={unseen_n[flaw]})" if flaw in unseen_flaw else "–")
        for flaw in counts(list(test_features.pairs) + list(unseen_features.pairs), "flaw")
    ]
    # The flaws it ranks worst on held-out pairs (with enough pairs to say so).
    weakest = sorted((acc, flaw) for flaw, acc in held_flaw.items() if held_n[flaw] >= 5)[:2]
    weakest_text = " and ".join(f"`{flaw}` ({_pct(acc)} held-out)" for acc, flaw in weakest)
    config = json.loads(metadata["head_config"])
    head_desc = (
        f"one hidden layer of {config['hidden']} GELU units" if config["kind"] == "mlp" else "a single linear layer"
    )
    return f"""# {spec.name}

A small reward model trained for this demo, InstructGPT step 2 at demonstration scale. It scores
an answer to a prompt with one number; σ(r_a − r_b) is the probability it prefers answer a to b.

- **Backbone (frozen):** {metadata.get('backbone_name', '?')} — `{metadata.get('backbone_origin', '?')}`,
  converted checkpoint `{metadata.get('backbone_checkpoint', '?')}`, run in {metadata['backbone_dtype']}
  (demo/reward_backbone.py) for training and serving alike, so the head is served the features it
  learnt from; at fp32 that backbone reproduces transformers' hidden states to ~1e-6.
- **Head:** `{Path(report.head_path).name}` (safetensors, {head_desc} on standardised features;
  the standardisation statistics are stored in the file as tensors).
- **License:** Apache-2.0, like the backbone; the preference data was written for this project.
- **Reproduce:** `{TRAIN_COMMAND}` (seed {metadata['seed']}; {report.seconds:.0f} s on the machine that made
  this file, {report.feature_seconds:.0f} s of it reading the backbone).

## Method

As in InstructGPT, the reward model reads the aligned (SFT/DPO) language model and ends in a scalar
head. Each (prompt, answer) is formatted with the backbone's chat template as a user turn and an
assistant turn (special-token strings in the text are neutralised, so typed control tokens cannot
end a turn); past {metadata['max_tokens']} tokens the END of the answer is kept. The feature is the
backbone's {metadata['feature_layer']}, {_FEATURE_WORDS[metadata['feature']]}. Unlike InstructGPT the
backbone is frozen and only the head is trained, with the Bradley–Terry loss
−log σ(r_chosen − r_rejected), full batch, AdamW (lr {config['lr']}, weight decay {config['weight_decay']},
dropout {config['dropout']}, {config['epochs']} epochs, seed {metadata['seed']}). Training loss went from
{report.loss_first:.3f} to {report.loss_last:.3f} (curve: {', '.join(f'{x:.3f}' for x in report.loss_curve)});
training-pair accuracy {_pct(report.train_accuracy)}.

### How the feature and head were chosen

By 5-fold cross-validation on the train split, confirmed on the held-out split; `unseen.jsonl` was
measured once, at the end, and never used for training or for any choice. Accuracy of pairs
ranked correctly (standardised features, AdamW, weight decay 0.1 unless noted):

{_table(["feature", "head", "5-fold CV (train)", "held-out"], STUDY)}

With a frozen backbone the final state at the last token is the weakest feature tried; averaging
over the answer and reading a middle block each help, and together they reach the target. Weight
decay from 0.1 to 30 and input dropout from 0.1 to 0.5 changed little. These numbers come from a
one-off study on the {len(everything)} pairs of this commit, with transformers fp32 features (the
`Backbone` class), not from this training run.

## Data

{len(everything)} hand-written preference pairs (`data/preferences/written/part_*.jsonl`), split by
prompt, stratified by category (sha256 order within each category, 15% held out): {len(train)}
train, {len(test)} held-out. A separate set of {len(unseen)} pairs (`data/preferences/unseen.jsonl`)
was written independently. Each rejected answer has one named flaw: {by_flaw}.

{by_category}

{by_aspect}

## Results

| split | pairs | reward head | "longer answer wins" baseline |
|---|---|---|---|
| held-out | {len(test)} | {_pct(report.heldout_accuracy)} | {_pct(report.longer_wins_heldout)} |
| unseen | {len(unseen)} | {_pct(report.unseen_accuracy)} | {_pct(report.longer_wins_unseen)} |

Accuracy per aspect:

{_table(["aspect", "held-out", "longer wins (held-out)", "unseen", "longer wins (unseen)"], aspect_rows)}

Accuracy per flaw of the rejected answer:

{_table(["flaw", "held-out", "unseen"], flaw_rows)}

With ~100 pairs per split, one pair is one point of accuracy: differences of a few points are noise.

## Limits

- Demonstration scale: ~{len(everything)} pairs written for this project, not tens of thousands of
  labeller comparisons. It ranks obvious differences (an answer vs a continued prompt, a refusal
  vs harmful help, a rude vs a polite reply); it is not a judge of fine quality.
- The backbone is frozen and the head is small; the feature choice was made on this data, and a
  different data set might prefer a different block.
- It shares its backbone with the aligned model in this demo, so it may favour that model's own
  style and phrasing over an equally good answer in another style.
- Factual errors: the written wrong facts are well known (the number of bones in the body, the
  largest mammal), which a 135M backbone partly knows. Expect it to miss obscure or subtle errors:
  a confident wrong fact it does not know reads like a right one.
- Weakest here on {weakest_text}: answers that look fine but miss a detail.
- English only; prompts and answers are short (most under 200 tokens).
- The scores are relative: only differences between answers to the same prompt mean something.
"""
