"""A training run: `python -m demo train-reward` trains the head on the written pairs' train split,
measures it on the independent set, the same-writer held-out split and unseen.jsonl, and writes the
head (its metadata carries `independent_accuracy`) and its model card."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...config import AppConfig, TrainedHeadReward
from ...preferences import (
    PREFERENCES_DIR,
    PreferencePair,
    counts,
    load_independent,
    load_unseen,
    split_written,
    write_split,
)
from ...provenance import provenance
from ...scoring.reward_inputs import TRAIN_COMMAND
from ..heads import TRAINING_RESULTS_DIR
from .card import RESULTS_FILE, card_sources, head_facts, model_card
from .evaluation import _fraction, evaluate_head
from .features import _with_plain_variants, pair_features
from .fitting import HeadConfig, fit_head, pair_accuracy, save_head

log = logging.getLogger(__name__)


@dataclass
class TrainingReport:
    """What `python -m demo train-reward` did and how well the head ranks pairs it never saw:
    first the independent set (another writer and brief), then the same-writer held-out split."""

    train_pairs: int
    test_pairs: int
    unseen_pairs: int
    independent_pairs: int
    independent: dict
    heldout: dict
    unseen: dict
    heldout_accuracy: float
    unseen_accuracy: float
    independent_accuracy: float
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
    command: str = TRAIN_COMMAND,
    results_path: Path | None = None,
) -> TrainingReport:
    """Train the reward head on the written pairs' train split; measure it on the independent
    set (never trained on, never used for a choice), the same-writer held-out split and
    unseen.jsonl; write the head (its metadata carries `independent_accuracy`) and its card.

    `out_dir` overrides where the head and card go (default: the paths in models.yaml). The run's
    figures go to `results_path` as JSON (default: `reward.json` beside the head in `out_dir`, else
    results/training/reward.json), with `command`, the commit, the machine and the date; the card
    is rendered from that record alone.
    `votes` (demo.arena.export.VoteTraining) adds blind-vote pairs to the training pairs.
    """
    spec = config.scoring.reward
    if not isinstance(spec, TrainedHeadReward):
        raise ValueError("scoring.reward in the config is not a trained_head; nothing to train")
    started = time.perf_counter()
    head_path = Path(out_dir) / spec.head_path.name if out_dir else spec.head_path
    card_path = Path(out_dir) / spec.card_path.name if out_dir else spec.card_path

    split = write_split(data_dir) if data_dir == PREFERENCES_DIR else split_written(data_dir)
    unseen = load_unseen(data_dir) if (Path(data_dir) / "unseen.jsonl").is_file() else []
    independent = load_independent(data_dir) if (Path(data_dir) / "independent" / "heldout.jsonl").is_file() else []
    train_pairs = _with_plain_variants(split.train) if head_config.plain_variants else list(split.train)
    log.info(
        "preference pairs: %d train (%d with plain variants), %d held-out, %d unseen, %d independent",
        len(split.train),
        len(train_pairs),
        len(split.test),
        len(unseen),
        len(independent),
    )

    if backbone is None:
        # The backbone the app serves with (onnxruntime, models.yaml's precision): the head
        # learns from exactly the features it will be given.
        from ...scoring.reward_backbone import OnnxBackbone

        backbone = OnnxBackbone.from_config(config, spec, layer=head_config.layer)
    if backbone.layer != head_config.layer:
        raise ValueError(
            f"the backbone was loaded at layer {backbone.layer}, the head config asks for {head_config.layer}"
        )
    t0 = time.perf_counter()
    train = pair_features(backbone, train_pairs, head_config.feature)
    test = pair_features(backbone, split.test, head_config.feature)
    unseen_features = pair_features(backbone, unseen, head_config.feature)
    independent_features = pair_features(backbone, independent, head_config.feature)
    feature_seconds = time.perf_counter() - t0
    log.info("backbone features in %.1f s", feature_seconds)

    fit = fit_head(train.chosen, train.rejected, head_config, seed=seed, lengths=train.lengths)
    vote_report = None
    if votes is not None:
        from ...arena.export import train_with_votes

        fit, vote_report = train_with_votes(
            fit,
            votes,
            train,
            test,
            lambda p: pair_features(backbone, p, head_config.feature),
            lambda c, r: fit_head(c, r, head_config, seed=seed),
            pair_accuracy,
        )
    if vote_report:
        vote_report.pop("card")  # rendered from the figures, in the card
    head = fit.head
    evaluations = {
        "independent": evaluate_head("independent", head, independent_features),
        "heldout": evaluate_head("same-writer held-out", head, test),
        "unseen": evaluate_head("unseen", head, unseen_features),
    }
    report = TrainingReport(
        train_pairs=len(split.train),
        test_pairs=len(split.test),
        unseen_pairs=len(unseen),
        independent_pairs=len(independent),
        independent=evaluations["independent"].to_json(),
        heldout=evaluations["heldout"].to_json(),
        unseen=evaluations["unseen"].to_json(),
        heldout_accuracy=evaluations["heldout"].overall.accuracy,
        unseen_accuracy=evaluations["unseen"].overall.accuracy,
        independent_accuracy=evaluations["independent"].overall.accuracy,
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
            "final hidden state (after the final norm)"
            if head_config.layer is None
            else f"residual stream after block {head_config.layer} (before any norm)"
        ),
        "input_dim": str(train.chosen.shape[1]),
        "max_tokens": str(backbone.max_tokens),
        "seed": str(seed),
        "head_config": json.dumps(asdict(head_config)),
        "train_pairs": str(len(split.train)),
        "train_data_sha256_16": data_fingerprint(split.train),
        # What the page says beside P(aligned ≻ base): how often this head is right on pairs
        # written by someone else to another brief (see the model card).
        "independent_accuracy": _fraction(report.independent_accuracy),
        "independent_pairs": str(len(independent)),
        "independent_accuracy_by_aspect": json.dumps(
            {k: round(v.accuracy, 4) for k, v in evaluations["independent"].by_aspect.items()}, sort_keys=True
        ),
        "heldout_accuracy": _fraction(report.heldout_accuracy),
        "unseen_accuracy": _fraction(report.unseen_accuracy),
    }
    save_head(head, head_path, metadata)
    report.seconds = round(time.perf_counter() - started, 1)
    record = provenance([]) | {
        "command": command,
        "head": head_facts(head_path),
        "evaluation": {name: evaluation.to_json() for name, evaluation in evaluations.items()},
        "training": {
            "train_pairs": len(train_pairs),
            "loss_first": report.loss_first,
            "loss_last": report.loss_last,
            "loss_curve": list(report.loss_curve),
            "train_accuracy": report.train_accuracy,
            "seconds": report.seconds,
            "feature_seconds": report.feature_seconds,
            "train_aspects": counts(split.train, "aspect"),
            "train_flaws": counts(split.train, "flaw"),
            "votes": vote_report,
        },
    }
    results_path = results_path or (Path(out_dir) / RESULTS_FILE if out_dir else TRAINING_RESULTS_DIR / RESULTS_FILE)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    card_path.parent.mkdir(parents=True, exist_ok=True)
    card_path.write_text(model_card(card_sources(spec.name, head_path, record)), encoding="utf-8")
    log.info(
        "reward head: independent %.3f, held-out %.3f, unseen %.3f, %.1f s",
        report.independent_accuracy,
        report.heldout_accuracy,
        report.unseen_accuracy,
        report.seconds,
    )
    return report


def _curve_summary(losses: Sequence[float], points: int = 6) -> tuple[float, ...]:
    """The loss at a few evenly spaced epochs (first and last included)."""
    if len(losses) <= points:
        return tuple(round(x, 4) for x in losses)
    step = (len(losses) - 1) / (points - 1)
    return tuple(round(losses[round(i * step)], 4) for i in range(points))
