"""Reward scores for (prompt, answer) pairs: InstructGPT step 2, at demonstration scale.

Two kinds of reward model, picked by `models.yaml` → `scoring.reward`:

- `trained_head` (the offline default): a small head trained by this project on the hidden states
  of a frozen backbone language model reading the chat-formatted (user prompt, assistant answer)
  conversation. InstructGPT's reward model is its SFT model with the unembedding replaced by a
  scalar head and the whole model fine-tuned; here the backbone stays frozen and only the head
  learns, from ~660 hand-written preference pairs (`data/preferences`, see demo/preferences.py).
  Frozen, the final hidden state at the last token is a poor feature (it is specialised for
  predicting the next token); a middle block's state averaged over the answer is much better, so
  that is the default (see `HeadConfig` and the comparison in trained/reward/MODEL_CARD.md).
  `train_reward_head` trains the head with the Bradley–Terry loss −log σ(r_chosen − r_rejected)
  and writes it with its model card.
- `sequence_classifier`: any hosted reward model with one logit (Skywork-Reward, OpenAssistant RM),
  fed either the RM's own chat template (`chat`) or a (prompt, answer) text pair (`pair`).

Rewards are in Bradley–Terry logit units: σ(r_a − r_b) is the probability that a is preferred.
One module per concern: `features` (the frozen backbone and the features of pairs), `fitting`
(the head, its loss and its file), `evaluation` (accuracies beside the shallow baselines, the
served head measured), `training` (a training run and its report), `card` (the model card) and
`command` (`python -m demo train-reward --evaluate`).
"""

from __future__ import annotations

from .card import CANDIDATES_FILE, model_card
from .command import evaluate_command, main
from .evaluation import (
    CERTAINTY_MARKERS,
    HEDGES,
    Evaluation,
    GroupAccuracy,
    accuracy_by,
    confidence_score,
    evaluate_head,
    evaluate_rewards,
    evaluate_served_head,
    evaluation_table,
    longer_wins,
    more_confident_wins,
    record_independent_accuracy,
)
from .features import Backbone, PairFeatures, pair_features, truncate_to_layer
from .fitting import (
    FitResult,
    HeadConfig,
    RewardHead,
    bradley_terry_loss,
    fit_head,
    fit_standardization,
    load_head,
    merge_heads,
    pair_accuracy,
    save_head,
)
from .training import TrainingReport, data_fingerprint, train_reward_head

__all__ = [
    "CANDIDATES_FILE",
    "CERTAINTY_MARKERS",
    "HEDGES",
    "Backbone",
    "Evaluation",
    "FitResult",
    "GroupAccuracy",
    "HeadConfig",
    "PairFeatures",
    "RewardHead",
    "TrainingReport",
    "accuracy_by",
    "bradley_terry_loss",
    "confidence_score",
    "data_fingerprint",
    "evaluate_command",
    "evaluate_head",
    "evaluate_rewards",
    "evaluate_served_head",
    "evaluation_table",
    "fit_head",
    "fit_standardization",
    "load_head",
    "longer_wins",
    "main",
    "merge_heads",
    "model_card",
    "more_confident_wins",
    "pair_accuracy",
    "pair_features",
    "record_independent_accuracy",
    "save_head",
    "train_reward_head",
    "truncate_to_layer",
]
