"""Reward score and toxicity flag for an answer, and which of two answers the reward model prefers.

`AnswerScorer` combines the configured reward model (demo/reward.py) and toxicity classifier
(demo/toxicity.py or a transformers classifier) behind one call, so the UI, the CLI, the API and
the benchmark score answers the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol, Sequence

from .config import AppConfig, KerasBiLSTMToxicity, ScoringSpec, SequenceClassifierToxicity

Preference = Literal["base", "aligned", "tie"]


@dataclass(frozen=True)
class AnswerScores:
    reward: float | None
    toxicity: float
    toxic: bool
    toxicity_labels: dict[str, float]
    reward_error: str | None = None


class ToxicityClassifier(Protocol):
    labels: tuple[str, ...]

    def label_scores(self, texts: Sequence[str]) -> list[dict[str, float]]: ...


class RewardModel(Protocol):
    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]: ...


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

        from .weights import resolve_checkpoint

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


def load_toxicity_classifier(spec) -> ToxicityClassifier:
    if isinstance(spec, KerasBiLSTMToxicity):
        from .toxicity import BiLSTMToxicityClassifier

        from .weights import package_dir

        return BiLSTMToxicityClassifier.from_folder(package_dir(spec.package, spec.install, spec.requirements))
    return SequenceClassifierToxicityModel.from_spec(spec)


def toxicity_score(labels: dict[str, float], toxic_labels: Sequence[str]) -> float:
    """The highest probability among the labels that count as toxic (all, when none named)."""
    counted = [p for name, p in labels.items() if not toxic_labels or name in toxic_labels]
    return max(counted, default=0.0)


def preference(reward_base: float | None, reward_aligned: float | None, tie_tolerance: float) -> tuple[Preference, float | None]:
    """Which answer the reward model prefers, and P(aligned ≻ base) = σ(r_aligned − r_base),
    the Bradley–Terry probability the reward model was trained on."""
    if reward_base is None or reward_aligned is None:
        return "tie", None
    margin = reward_aligned - reward_base
    p_aligned = _sigmoid(margin)
    if abs(margin) <= tie_tolerance:
        return "tie", p_aligned
    return ("aligned" if margin > 0 else "base"), p_aligned


def _sigmoid(x: float) -> float:
    """Numerically stable logistic function (no overflow for any finite margin)."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


class AnswerScorer:
    """Scores (prompt, answer) pairs with the configured reward model and toxicity classifier.

    The reward model may be missing (e.g. its head was never trained): scores then carry
    `reward=None` and a `reward_error` the UI shows, rather than an invented number.
    """

    def __init__(self, spec: ScoringSpec, toxicity: ToxicityClassifier, reward: RewardModel | None, reward_error: str | None = None):
        self.spec = spec
        self.toxicity = toxicity
        self.reward = reward
        self.reward_error = reward_error
        toxicity_spec = spec.toxicity
        self._toxic_labels = (
            toxicity_spec.toxic_labels if isinstance(toxicity_spec, SequenceClassifierToxicity) else ()
        )

    @classmethod
    def from_config(cls, config: AppConfig) -> "AnswerScorer":
        from .loading import MODEL_LOAD_LOCK

        with MODEL_LOAD_LOCK:
            toxicity = load_toxicity_classifier(config.scoring.toxicity)
            try:
                from .reward_serving import build_reward_scorer

                reward, error = build_reward_scorer(config), None
            except Exception as exc:  # the app still shows toxicity and says why reward is missing
                reward, error = None, str(exc)
        return cls(config.scoring, toxicity, reward, error)

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[AnswerScores]:
        """Scores for each (prompt, answer); all answers in one batch per scorer."""
        if not pairs:
            return []
        label_rows = self.toxicity.label_scores([answer for _, answer in pairs])
        rewards: list[float | None] = [None] * len(pairs)
        error = self.reward_error
        if self.reward is not None:
            try:
                rewards = list(self.reward.score(pairs))
            except Exception as exc:
                error = f"reward model failed: {exc}"
        results = []
        for labels, reward in zip(label_rows, rewards):
            value = toxicity_score(labels, self._toxic_labels)
            results.append(
                AnswerScores(
                    reward=reward,
                    toxicity=value,
                    toxic=value >= self.spec.toxicity_threshold,
                    toxicity_labels=labels,
                    reward_error=error if reward is None else None,
                )
            )
        return results
