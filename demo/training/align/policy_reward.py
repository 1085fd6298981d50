"""Step 2 on our own policy's answers: a reward model trained on labellers' rankings of K samples
of the SFT policy per prompt (data/feedback/policy/), as InstructGPT trains its reward model.

Every ranking gives all its decisive pairs (answer a in a better group than answer b); as in the
paper, the pairs of one ranking count as one element: each pair weighs 1 / (pairs of its ranking),
divided again among the labellers who ranked that prompt. Features are the SFT model's own
residual stream (answer-mean, as step 2's written-pairs model reads), the block chosen on the
validation split's labels; the test split is ranked by other labellers whose labels train and
choose nothing, and is measured once: agreement with them on their decisive pairs, beside the
reward model RL used before (trained on written pairs) and the app's independent judge.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch

from ...feedback.labels import Label
from ...feedback.policy_report import decisive_pairs, labeller_agreement
from ...feedback.tasks import Item
from ..reward import HeadConfig, fit_head
from .reward_model import SFTRewardModel, save_sft_head

Pair = tuple[str, str, str]  # (prompt, chosen answer, rejected answer)


@dataclass(frozen=True)
class PolicyRewardSettings:
    seed: int = 0
    candidate_layers: tuple[int, ...] = (6, 12, 18)
    max_tokens: int = 256
    tokens_per_batch: int = 2048
    # Candidates, each block with each head kind; the validation split's labels choose one.
    head_kinds: tuple[Literal["linear", "mlp"], ...] = ("linear", "mlp")
    head_hidden: int = 64
    epochs: int = 200


def weighted_pairs(items: dict[str, Item], labels: Iterable[Label]) -> list[tuple[Pair, float]]:
    """Every labeller's decisive pairs as (prompt, chosen, rejected) with the paper's weighting:
    one ranking weighs 1 in all, shared by its pairs and by the labellers of that prompt."""
    by_item: dict[str, list[Label]] = {}
    for label in labels:
        if label.ranking is not None and label.item in items:
            by_item.setdefault(label.item, []).append(label)
    out: list[tuple[Pair, float]] = []
    for item_id, item_labels in sorted(by_item.items()):
        item = items[item_id]
        text = {a.number: a.text for a in item.answers}
        for label in item_labels:
            pairs = decisive_pairs(label)
            for better, worse in pairs:
                out.append(((item.prompt, text[better], text[worse]), 1.0 / (len(pairs) * len(item_labels))))
    return out


def agreement(
    score: Callable[[str, str], float],
    items: dict[str, Item],
    labels: Iterable[Label],
    *,
    bootstrap: int = 0,
    seed: int = 0,
) -> dict:
    """How often `score(prompt, answer)` orders a labeller's decisive pairs as the labeller does
    (a tie of scores counts half), over all labellers' pairs; with the pairs counted. With
    `bootstrap` > 0, a 95 % interval from resampling prompts (a prompt's pairs move together)."""
    per_item: dict[str, list[float]] = {}
    for label in labels:
        if label.ranking is None or label.item not in items:
            continue
        item = items[label.item]
        text = {a.number: a.text for a in item.answers}
        for better, worse in decisive_pairs(label):
            high, low = score(item.prompt, text[better]), score(item.prompt, text[worse])
            per_item.setdefault(item.id, []).append(1.0 if high > low else 0.5 if high == low else 0.0)
    total = sum(len(v) for v in per_item.values())
    result: dict = {"pairs": total, "agreement": round(sum(map(sum, per_item.values())) / total, 4) if total else None}
    if bootstrap and total:
        rng = random.Random(seed)
        groups = list(per_item.values())
        shares = sorted(
            sum(sum(g) for g in sample) / sum(len(g) for g in sample)
            for sample in ([rng.choice(groups) for _ in groups] for _ in range(bootstrap))
        )
        result["ci95"] = [round(shares[int(0.025 * bootstrap)], 4), round(shares[int(0.975 * bootstrap) - 1], 4)]
    return result


def _spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    from scipy.stats import spearmanr

    if len(x) < 3:
        return None
    return round(float(spearmanr(x, y).statistic), 4)


def _cached_features(
    scorer: SFTRewardModel,
    texts: list[tuple[str, str]],
    layers: list[int],
    settings: PolicyRewardSettings,
    cache: Path | None,
) -> dict[int, torch.Tensor]:
    """{layer: [len(texts), hidden]}; with `cache`, texts read before (same layers and length
    limit) are not read again, so labelling more prompts and retraining costs only the new ones."""
    stored: dict[tuple[str, str], torch.Tensor] = {}
    path = cache / f"features-{'-'.join(map(str, layers))}-{settings.max_tokens}.pt" if cache else None
    if path is not None and path.is_file():
        stored = torch.load(path)
    missing = [text for text in texts if text not in stored]
    if missing:
        new = scorer.features(missing, layers, settings.tokens_per_batch, progress=True)
        stored.update({text: torch.stack([new[layer][n] for layer in layers]) for n, text in enumerate(missing)})
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(stored, path.with_suffix(".tmp"))
            path.with_suffix(".tmp").replace(path)
    return {layer: torch.stack([stored[text][k] for text in texts]) for k, layer in enumerate(layers)}


def train_policy_reward_model(
    sft_checkpoint: Path,
    items: Sequence[Item],
    train_labels: Sequence[Label],
    test_labels: Sequence[Label],
    output: Path,
    settings: PolicyRewardSettings = PolicyRewardSettings(),
    *,
    previous_head: Path | None = None,
    judge: Callable[[Sequence[tuple[str, str]]], Sequence[float | None]] | None = None,
    feature_cache: Path | None = None,
) -> dict:
    """Fit the head on the train split's rankings, choose the block on the validation split's,
    measure the test split's once; write the head and metrics.json to `output`."""
    started = time.perf_counter()
    split_items = {split: {i.id: i for i in items if i.split == split} for split in ("train", "validation", "test")}
    texts = sorted({(i.prompt, a.text) for i in items for a in i.answers})
    index = {text: n for n, text in enumerate(texts)}
    scorer = SFTRewardModel.load(sft_checkpoint, max_tokens=settings.max_tokens)
    layers = [layer for layer in settings.candidate_layers if layer <= scorer.model.config.num_hidden_layers]
    scorer.truncate(max(layers))
    features = _cached_features(scorer, texts, layers, settings, feature_cache)

    train = weighted_pairs(split_items["train"], train_labels)
    chosen_rows = [index[(p, c)] for (p, c, _), _ in train]
    rejected_rows = [index[(p, r)] for (p, _, r), _ in train]
    weights = torch.tensor([w for _, w in train])

    def fitted(layer: int, kind: Literal["linear", "mlp"]):
        config = HeadConfig(layer=None, kind=kind, hidden=settings.head_hidden, epochs=settings.epochs)
        f = features[layer]
        return fit_head(f[chosen_rows], f[rejected_rows], config, seed=settings.seed, weights=weights).head

    def scorer_of(head, layer: int) -> Callable[[str, str], float]:
        with torch.no_grad():
            head.eval()
            values = head(features[layer]).tolist()
        return lambda prompt, answer: values[index[(prompt, answer)]]

    candidates = [(layer, kind) for layer in layers for kind in settings.head_kinds]
    heads = {candidate: fitted(*candidate) for candidate in candidates}
    validation = {
        (layer, kind): agreement(scorer_of(heads[(layer, kind)], layer), split_items["validation"], train_labels)
        for layer, kind in candidates
    }
    # Ties go to the earlier block and the simpler head (candidates are in that order).
    layer, kind = max(candidates, key=lambda c: (validation[c]["agreement"] or 0.0, -candidates.index(c)))
    head, score = heads[(layer, kind)], scorer_of(heads[(layer, kind)], layer)
    report: dict = {
        "step": "reward on our policy's ranked samples",
        "settings": asdict(settings),
        "items": {split: len(v) for split, v in split_items.items()},
        "train_pairs": len(train),
        "validation_agreement_by_candidate": {f"block {n}, {k}": v for (n, k), v in validation.items()},
        "layer": layer,
        "head_kind": kind,
        "agreement": {
            "train": agreement(score, split_items["train"], train_labels),
            "validation": validation[(layer, kind)],
            "test (held-out labellers)": agreement(score, split_items["test"], test_labels, bootstrap=2000),
        },
        "test_labellers_with_each_other": labeller_agreement(
            [label for label in test_labels if label.item in split_items["test"]]
        ),
    }
    test_texts = sorted({(i.prompt, a.text) for i in split_items["test"].values() for a in i.answers})
    if previous_head is not None and previous_head.is_file():
        from ..reward import load_head

        old, metadata = load_head(previous_head)
        old_layer = int(metadata["layer"])
        if old_layer in features:
            report["agreement"]["test, reward model RL used before (written pairs)"] = agreement(
                scorer_of(old, old_layer), split_items["test"], test_labels, bootstrap=2000
            )
    if judge is not None and test_texts:
        judged = judge(list(test_texts))
        by_text = dict(zip(test_texts, judged))

        def judged_score(prompt: str, answer: str) -> float:
            value = by_text[(prompt, answer)]
            return 0.0 if value is None else value

        report["agreement"]["test, the app's judge (independent)"] = agreement(
            judged_score, split_items["test"], test_labels, bootstrap=2000
        )
        kept = [(score(p, a), v) for (p, a), v in zip(test_texts, judged) if v is not None]
        report["spearman_with_judge_on_test_answers"] = _spearman([s for s, _ in kept], [v for _, v in kept])
    save_sft_head(
        head,
        output,
        scorer,
        layer,
        trained_on="data/feedback/policy (rankings of our SFT policy's samples; AI feedback)",
    )
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    (output / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
