"""How often a reward model ranks the chosen answer above the rejected one: overall, per aspect and
per type of flaw, beside two shallow baselines ("longer wins", "more confident wins"); and the
served head measured exactly as the app runs it."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ...config import AppConfig
from ...preferences import PREFERENCES_DIR, PreferencePair, counts, load_independent, load_unseen, split_written
from ...scoring.reward_head import read_head_file
from ...scoring.reward_inputs import METADATA_KEY
from .features import PairFeatures
from .fitting import RewardHead, pair_accuracy


def _pct(x: float | None) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.1f}%"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _fraction(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.4f}"


@torch.no_grad()
def evaluate_head(name: str, head: RewardHead, data: PairFeatures) -> Evaluation:
    head.eval()
    return evaluate_rewards(name, data.pairs, head(data.chosen).tolist(), head(data.rejected).tolist())


def longer_wins(pairs: Sequence[PreferencePair]) -> float:
    """Baseline: the longer answer (in characters) is preferred; a tie counts as a miss."""
    if not pairs:
        return float("nan")
    return sum(len(p.chosen) > len(p.rejected) for p in pairs) / len(pairs)


# The "more confident wins" baseline: certainty markers minus hedges, whole words, case-folded.
# Deliberately crude and fixed before any measurement: it is a baseline to beat, not a feature.
CERTAINTY_MARKERS = (
    "definitely",
    "certainly",
    "absolutely",
    "always",
    "never",
    "guaranteed",
    "guarantee",
    "100%",
    "without a doubt",
    "no doubt",
    "undoubtedly",
    "clearly",
    "obviously",
    "of course",
    "completely",
    "totally",
    "proven",
    "100 percent",
    "every time",
    "the only",
    "no risk",
)
HEDGES = (
    "might",
    "may",
    "perhaps",
    "possibly",
    "probably",
    "likely",
    "unlikely",
    "i think",
    "i believe",
    "not sure",
    "unsure",
    "uncertain",
    "depends",
    "generally",
    "usually",
    "typically",
    "roughly",
    "approximately",
    "could",
    "i don't know",
    "not certain",
    "estimate",
    "seems",
    "appears",
    "suggests",
    "unclear",
)


def _count_phrases(text: str, phrases: Sequence[str]) -> int:
    words = re.findall(r"[a-z0-9%']+", text.casefold().replace("\u2019", "'"))
    joined = " " + " ".join(words) + " "
    return sum(joined.count(" " + phrase + " ") for phrase in phrases)


def confidence_score(text: str) -> int:
    """Certainty markers ("definitely", "always", "guaranteed", ...) minus hedges ("might",
    "probably", "it depends", ...), counted as whole words: > 0 reads confident, < 0 hedged."""
    return _count_phrases(text, CERTAINTY_MARKERS) - _count_phrases(text, HEDGES)


def more_confident_wins(pairs: Sequence[PreferencePair]) -> float:
    """Baseline: the answer with the higher `confidence_score` is preferred; a tie counts half
    (a coin flip), since most answers carry no marker at all."""
    if not pairs:
        return float("nan")
    total = 0.0
    for pair in pairs:
        chosen, rejected = confidence_score(pair.chosen), confidence_score(pair.rejected)
        total += 1.0 if chosen > rejected else 0.5 if chosen == rejected else 0.0
    return total / len(pairs)


@dataclass(frozen=True)
class GroupAccuracy:
    """Accuracy of a reward model on a group of pairs, beside the two shallow baselines."""

    pairs: int
    accuracy: float
    longer_wins: float
    more_confident_wins: float


@dataclass(frozen=True)
class Evaluation:
    """How often a reward model ranks the chosen answer above the rejected one, on one set."""

    name: str
    overall: GroupAccuracy
    by_aspect: dict[str, GroupAccuracy]
    by_type: dict[str, GroupAccuracy]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Evaluation:
        """The evaluation `to_json` wrote (a results file's table)."""

        def groups(values: dict) -> dict[str, GroupAccuracy]:
            return {key: GroupAccuracy(**value) for key, value in values.items()}

        return cls(data["name"], GroupAccuracy(**data["overall"]), groups(data["by_aspect"]), groups(data["by_type"]))


def evaluate_rewards(
    name: str, pairs: Sequence[PreferencePair], chosen_rewards: Sequence[float], rejected_rewards: Sequence[float]
) -> Evaluation:
    """Accuracy (chosen strictly above rejected; a tie is a miss) overall, per aspect and per
    type of flaw (`flaw`), each beside "longer wins" and "more confident wins"."""
    if not len(pairs) == len(chosen_rewards) == len(rejected_rewards):
        raise ValueError("one chosen and one rejected reward per pair are needed")
    right = [float(c) > float(r) for c, r in zip(chosen_rewards, rejected_rewards, strict=True)]

    def group(index: list[int]) -> GroupAccuracy:
        chosen = [pairs[i] for i in index]
        accuracy = sum(right[i] for i in index) / len(index) if index else float("nan")
        return GroupAccuracy(len(index), accuracy, longer_wins(chosen), more_confident_wins(chosen))

    def by(field_name: str) -> dict[str, GroupAccuracy]:
        return {
            value: group([i for i, p in enumerate(pairs) if getattr(p, field_name) == value])
            for value in counts(pairs, field_name)
        }

    return Evaluation(name, group(list(range(len(pairs)))), by("aspect"), by("flaw"))


def evaluation_table(evaluation: Evaluation, group_label: str = "group") -> str:
    """A markdown table of an evaluation: overall, then per aspect, then per type."""
    rows = [("**overall**", evaluation.overall)]
    rows += [(f"aspect: {k}", v) for k, v in evaluation.by_aspect.items()]
    rows += [(f"type: {k}", v) for k, v in evaluation.by_type.items()]
    return _table(
        [group_label, "pairs", "reward model", "longer wins", "more confident wins"],
        [(label, g.pairs, _pct(g.accuracy), _pct(g.longer_wins), _pct(g.more_confident_wins)) for label, g in rows],
    )


def accuracy_by(head: RewardHead, data: PairFeatures, field_name: str) -> dict[str, float]:
    """Pair accuracy per value of a metadata field (aspect, category, flaw)."""
    result = {}
    for value in counts(data.pairs, field_name):
        index = torch.tensor([i for i, p in enumerate(data.pairs) if getattr(p, field_name) == value])
        result[value] = pair_accuracy(head, data.chosen[index], data.rejected[index])
    return result


def evaluate_served_head(config: AppConfig, data_dir: Path = PREFERENCES_DIR) -> dict[str, Evaluation]:
    """The head models.yaml serves, run exactly as the app runs it (onnxruntime backbone, numpy
    head), on the independent set, the same-writer held-out split and unseen.jsonl."""
    from ...scoring.reward_head import build_reward_scorer

    scorer = build_reward_scorer(config)
    sets = {
        "independent": load_independent(data_dir),
        "heldout": list(split_written(data_dir).test),
        "unseen": load_unseen(data_dir),
    }
    result = {}
    for name, pairs in sets.items():
        rewards = scorer.score([(p.prompt, p.chosen) for p in pairs] + [(p.prompt, p.rejected) for p in pairs])
        result[name] = evaluate_rewards(name, pairs, rewards[: len(pairs)], rewards[len(pairs) :])
    return result


def record_independent_accuracy(head_path: Path, evaluation: Evaluation) -> dict[str, str]:
    """Write an independent evaluation into an existing head file's metadata (tensors untouched),
    so the page can say how often this head is right on pairs like these."""
    from safetensors.numpy import save_file

    tensors, metadata = read_head_file(head_path)
    metadata = {
        **metadata,
        "independent_accuracy": _fraction(evaluation.overall.accuracy),
        "independent_pairs": str(evaluation.overall.pairs),
        "independent_accuracy_by_aspect": json.dumps(
            {k: round(v.accuracy, 4) for k, v in evaluation.by_aspect.items()}, sort_keys=True
        ),
    }
    blob = json.dumps({k: str(v) for k, v in metadata.items()}, sort_keys=True, ensure_ascii=False)
    save_file({k: np.array(v, order="C") for k, v in tensors.items()}, str(head_path), metadata={METADATA_KEY: blob})
    return metadata
