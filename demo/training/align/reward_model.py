"""Step 2, the reward model the policy is optimised against: as in InstructGPT it reads the SFT
model's own backbone, and it is trained on the project's comparisons with the Bradley–Terry loss.

Measured on the shared 2-core CPU, a LoRA RewardTrainer run (forward + backward through 270M
parameters for both answers of each pair, several epochs) did not fit next to the other steps'
budget, so the backbone is frozen: the residual stream of one SFT block, averaged over the
answer's tokens, feeds a small head trained with the BT loss (demo/training/reward/'s head and
loss, reused). The block is chosen by 5-fold cross-validation on the train split only; the
written test split and the independent held-out set are measured once, at the end.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from ...paths import DATA_DIR
from ...preferences import load_written, split_pairs
from ..reward import HeadConfig, RewardHead, fit_head, pair_accuracy, save_head
from .common import END_OF_TURN, chat_tokenizer, load_causal_lm, read_jsonl

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

INDEPENDENT = DATA_DIR / "preferences" / "independent" / "heldout.jsonl"
HEAD_FILE = "reward_head.safetensors"
# (chosen, rejected) features of the same pairs, row for row: two [pairs, hidden] tensors.
PairTensors = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class RewardSettings:
    seed: int = 0
    candidate_layers: tuple[int, ...] = (6, 9, 12, 15, 18)
    max_tokens: int = 320
    tokens_per_batch: int = 2048
    folds: int = 5
    head_kind: Literal["linear", "mlp"] = "mlp"
    head_hidden: int = 64
    epochs: int = 200
    # > 0: a seeded subset of that many pairs (the CPU budget); 0 uses them all.
    limit_train: int = 0
    limit_test: int = 0
    limit_independent: int = 0


class SFTRewardModel:
    """r(prompt, answer): a BT head on one block of the (merged) SFT model, answer-mean pooled."""

    # The causal LM: its trunk (.model.layers, .norm) is reached by attribute, which torch's stubs
    # type as Tensor | Module.
    model: Any

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, max_tokens: int = 320):
        self.model, self.tokenizer, self.max_tokens = model.eval(), tokenizer, max_tokens
        self.head: RewardHead | None = None
        self.layer: int | None = None

    @classmethod
    def load(
        cls, checkpoint: Path, head_file: Path | None = None, *, max_tokens: int = 320, device: str = "cpu"
    ) -> SFTRewardModel:
        model = load_causal_lm(checkpoint, device)  # fp32, moved to `device`
        scorer = cls(model, chat_tokenizer(checkpoint), max_tokens=max_tokens)
        if head_file is not None:
            from ..reward import load_head

            scorer.head, metadata = load_head(head_file)
            scorer.layer = int(metadata["layer"])
            scorer.truncate(scorer.layer)
        return scorer

    def truncate(self, layers: int) -> None:
        """Keep blocks 1..layers and drop the final norm: the blocks after the read-out layer
        would cost time and change nothing (the feature is the raw residual stream)."""
        import torch.nn as nn

        trunk = self.model.model
        if not 1 <= layers <= len(trunk.layers):
            raise ValueError(f"layer must be between 1 and {len(trunk.layers)}, got {layers}")
        trunk.layers = trunk.layers[:layers]
        trunk.norm = nn.Identity()
        self.model.config.num_hidden_layers = layers

    def encode(self, prompt: str, answer: str) -> tuple[list[int], int]:
        """Token ids of the conversation and where the answer starts."""
        conversation = [{"role": "user", "content": prompt}]
        prefix = self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        prompt_ids = self.tokenizer(prefix, add_special_tokens=False)["input_ids"]
        answer_ids = self.tokenizer(answer.strip() + END_OF_TURN, add_special_tokens=False)["input_ids"]
        keep_prompt = max(8, self.max_tokens - len(answer_ids))
        prompt_ids = prompt_ids[-keep_prompt:]
        ids = (prompt_ids + answer_ids)[: self.max_tokens]
        return ids, len(prompt_ids)

    @torch.inference_mode()
    def features(
        self,
        pairs: Sequence[tuple[str, str]],
        layers: Sequence[int],
        tokens_per_batch: int = 2048,
        progress: bool = False,
    ) -> dict[int, torch.Tensor]:
        """{layer: [len(pairs), hidden]} answer-mean residual streams after each block."""
        encoded = [self.encode(p, a) for p, a in pairs]
        hidden_size = self.model.config.hidden_size
        out = {layer: torch.zeros((len(encoded), hidden_size)) for layer in layers}
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
        batches: list[list[int]]
        batch: list[int]
        batches, batch, longest = [], [], 0
        for index in order:
            longest = max(longest, len(encoded[index][0]))
            if batch and longest * (len(batch) + 1) > tokens_per_batch:
                batches.append(batch)
                batch, longest = [], len(encoded[index][0])
            batch.append(index)
        if batch:
            batches.append(batch)
        trunk = self.model.model if hasattr(self.model, "model") else self.model
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id or 0
        iterator = batches
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(batches, desc="reward features", unit="batch")
        for batch in iterator:
            width = max(len(encoded[i][0]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            answer = torch.zeros((len(batch), width))
            for row, index in enumerate(batch):
                tokens, start = encoded[index]
                ids[row, : len(tokens)] = torch.tensor(tokens)
                mask[row, : len(tokens)] = 1
                answer[row, start : len(tokens)] = 1
            states = trunk(
                input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True
            ).hidden_states
            weights = (answer / answer.sum(1, keepdim=True).clamp_min(1)).unsqueeze(-1)
            for layer in layers:
                pooled = (states[layer].float().cpu() * weights).sum(1)
                for row, index in enumerate(batch):
                    out[layer][index] = pooled[row]
        return out

    @torch.no_grad()
    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if self.head is None or self.layer is None:
            raise RuntimeError("this reward model has no trained head; run `python -m demo align reward` first")
        features = self.features(pairs, [self.layer])[self.layer]
        self.head.eval()
        return [float(x) for x in self.head(features)]


def _head_config(settings: RewardSettings) -> HeadConfig:
    return HeadConfig(
        layer=None, feature="answer_mean", kind=settings.head_kind, hidden=settings.head_hidden, epochs=settings.epochs
    )


def cross_validated_accuracy(chosen: torch.Tensor, rejected: torch.Tensor, settings: RewardSettings) -> float:
    """Mean held-out-fold pair accuracy on the train split (folds by a seeded permutation)."""
    generator = torch.Generator().manual_seed(settings.seed)
    order = torch.randperm(len(chosen), generator=generator)
    folds = order.chunk(settings.folds)
    correct: float = 0
    for k, held in enumerate(folds):
        train = torch.cat([f for j, f in enumerate(folds) if j != k])
        fit = fit_head(chosen[train], rejected[train], _head_config(settings), seed=settings.seed)
        correct += pair_accuracy(fit.head, chosen[held], rejected[held]) * len(held)
    return correct / len(chosen)


def train_reward_model(
    sft_checkpoint: Path,
    output: Path,
    cache: Path,
    settings: RewardSettings = RewardSettings(),
    *,
    resume: bool = False,
    written_dir: Path | None = None,
    independent: Path | None = INDEPENDENT,
) -> dict:
    """Fit the BT head on the SFT backbone; write the head, metrics.json and the accuracies.

    Features are the expensive part; they are saved to `cache` and reused on `resume`.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    written = load_written(written_dir) if written_dir else load_written()
    split = split_pairs(written)
    held_rows = read_jsonl(independent) if independent and independent.is_file() else []
    groups = {
        "train": [(p.prompt, p.chosen, p.rejected) for p in split.train],
        "test": [(p.prompt, p.chosen, p.rejected) for p in split.test],
        "independent": [(r["prompt"], r["chosen"], r["rejected"]) for r in held_rows],
    }
    limits = {"train": settings.limit_train, "test": settings.limit_test, "independent": settings.limit_independent}
    for name, limit in limits.items():
        if 0 < limit < len(groups[name]):
            groups[name] = random.Random(settings.seed).sample(groups[name], limit)
    scorer = SFTRewardModel.load(sft_checkpoint, max_tokens=settings.max_tokens)
    layers = [layer for layer in settings.candidate_layers if layer <= scorer.model.config.num_hidden_layers]
    scorer.truncate(max(layers))
    features: dict[str, dict[int, PairTensors]] = {}
    cache.mkdir(parents=True, exist_ok=True)
    for name, triples in groups.items():
        if not triples:
            continue
        path = cache / f"features-{name}.pt"
        if resume and path.is_file():
            features[name] = torch.load(path)
            continue
        texts = [(p, c) for p, c, _ in triples] + [(p, r) for p, _, r in triples]
        by_layer = scorer.features(texts, layers, settings.tokens_per_batch, progress=True)
        n = len(triples)
        features[name] = {layer: (f[:n], f[n:]) for layer, f in by_layer.items()}
        torch.save(features[name], path)

    train = features["train"]
    cv = {layer: cross_validated_accuracy(*train[layer], settings) for layer in layers}
    layer = max(layers, key=lambda layer: (cv[layer], -layer))
    fit = fit_head(*train[layer], _head_config(settings), seed=settings.seed)
    accuracy = {name: pair_accuracy(fit.head, *features[name][layer]) for name in features}
    longer = {
        name: sum(len(c) > len(r) for _, c, r in triples) / len(triples) for name, triples in groups.items() if triples
    }
    flaw_of = {(p.prompt, p.chosen, p.rejected): p.flaw for p in split.test}
    by_flaw = (
        _accuracy_by(fit.head, features["test"][layer], [flaw_of[t] for t in groups["test"]]) if groups["test"] else {}
    )

    save_sft_head(fit.head, output, scorer, layer)
    report = {
        "step": "reward",
        "settings": asdict(settings),
        "pairs": {name: len(t) for name, t in groups.items()},
        "cv_accuracy_by_layer": cv,
        "layer": layer,
        "accuracy": {"independent": accuracy.get("independent"), "test": accuracy["test"], "train": accuracy["train"]},
        "longer_answer_is_chosen": longer,
        "test_accuracy_by_flaw": by_flaw,
        "head_loss_first_last": [fit.losses[0], fit.losses[-1]],
        "wall_seconds": round(time.perf_counter() - started, 1),
        "process_cpu_seconds": round(time.process_time() - cpu_started, 1),
    }
    (output / "metrics.json").write_text(json.dumps(report, indent=2))
    return report


def save_sft_head(head: RewardHead, output: Path, scorer: SFTRewardModel, layer: int, **extra: str) -> None:
    """A head on the SFT backbone, with what `SFTRewardModel.load` needs to read it again."""
    output.mkdir(parents=True, exist_ok=True)
    metadata = {
        "input_dim": str(scorer.model.config.hidden_size),
        "layer": str(layer),
        "feature": "answer_mean",
        "backbone": "gemma-3-270m-sft (merged)",
        "max_tokens": str(scorer.max_tokens),
    }
    save_head(head, output / HEAD_FILE, metadata | extra)


def _accuracy_by(head: RewardHead, pair: PairTensors, labels: list[str]) -> dict[str, float]:
    chosen, rejected = pair
    out: dict[str, float] = {}
    for label in sorted(set(labels)):
        rows = [i for i, x in enumerate(labels) if x == label]
        out[label] = pair_accuracy(head, chosen[rows], rejected[rows])
    return out
