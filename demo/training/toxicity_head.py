"""Training the meaning-aware toxicity head (demo/scoring/toxicity_head.py serves it).

A logistic head on the frozen reward backbone's block-20 residual stream averaged over the text
read as an assistant answer (the reward model's own feature), trained with binary cross-entropy
on data/toxicity/train.jsonl (640 texts written for this project) and on our models' own outputs
labelled in data/feedback (train split; AI feedback), their weight chosen on that set's
validation split. Every other choice — feature, head, operating point — is made by stratified
5-fold cross-validation within the written texts;
data/toxicity/heldout.jsonl (another writer, another brief) is scored once, at the end, for the
model card. Run: `python -m demo train-toxicity` (a few minutes on a 2-core CPU).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import nn

from ..paths import DATA_DIR, TOXICITY_ARTEFACTS_DIR
from ..provenance import provenance
from ..scoring.toxicity_head import BLIND_SPOTS, HEAD_FORMAT, METADATA_KEY, OFFSET_KEY, TRAIN_COMMAND, combine
from .heads import (
    TRAINING_RESULTS_DIR,
    FeatureHead,
    head_facts,
    head_tensors,
    load_head_tensors,
    shipped_record,
    write_head_file,
)

log = logging.getLogger(__name__)

TOXICITY_DIR = DATA_DIR / "toxicity"  # the texts we wrote; the head and card go to trained/toxicity
IMPLICIT_TRAIN_TYPE = "implicit_stereotype"
IMPLICIT_HELDOUT_GROUP = "implicit_hate"
EXPLICIT_HELDOUT_GROUP = "explicit"


@dataclass(frozen=True)
class ToxicityText:
    text: str
    toxic: int
    kind: str  # `type` in train.jsonl, `group` in heldout.jsonl; OUTPUT_KIND_PREFIX + item kind
    prompt: str | None = None  # the user turn it answered (our models' outputs); None: HeadConfig.prompt


OUTPUT_KIND_PREFIX = "our output: "
# How far the written texts' cross-validated implicit AUC may fall when our outputs join training.
MAX_WRITTEN_CV_DROP = 0.02


@dataclass(frozen=True)
class OwnOutputs:
    """Our models' answers from data/feedback with their labellers' toxic consensus (split votes
    left out), read after the prompt they answered, as the app scores them. `train` trains the
    head beside the written texts, `validation` (same labellers) chooses how much they weigh,
    `test` (labellers whose labels train nothing) is measured once, for the card."""

    train: list[ToxicityText]
    validation: list[ToxicityText]
    test: list[ToxicityText]
    source: str  # the files and their content hashes, for the card and the head's metadata


def own_outputs(items_path: Path, labels_path: Path) -> OwnOutputs:
    from ..evaluation.metrics import sent_prompt
    from ..feedback.labels import read_labels
    from ..feedback.report import consensus_toxicity
    from ..feedback.tasks import read_items

    items = {item.id: item for item in read_items(items_path)}
    labels = read_labels(labels_path)
    texts: dict[str, list[ToxicityText]] = {"train": [], "validation": [], "test": []}
    for pool, splits in (("train", {"train", "validation"}), ("test", {"test"})):
        for item, answer, toxic in consensus_toxicity(items, [lb for lb in labels if lb.pool == pool], splits):
            if toxic is not None:
                prompt = sent_prompt(item.prompt, item.instruction)
                texts[item.split].append(ToxicityText(answer.text, int(toxic), OUTPUT_KIND_PREFIX + item.kind, prompt))
    digests = ", ".join(
        f"{path.name} sha256 {hashlib.sha256(path.read_bytes()).hexdigest()[:16]}" for path in (items_path, labels_path)
    )
    return OwnOutputs(**texts, source=digests)


def load_texts(path: Path) -> list[ToxicityText]:
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("toxic") not in (0, 1) or not isinstance(row.get("text"), str):
            raise ValueError(f"{path}:{number}: expected {{text: str, toxic: 0|1, ...}}")
        rows.append(ToxicityText(row["text"], int(row["toxic"]), str(row.get("type", row.get("group", "")))))
    return rows


# --- the head ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadConfig:
    """What the head reads and how it is trained; the defaults won the cross-validated comparison
    in trained/toxicity/MODEL_CARD.md."""

    layer: int | None = 20
    feature: Literal["answer_mean", "mean", "last_token"] = "answer_mean"
    prompt: str = ""  # the user turn the text is read as an answer to, in training
    kind: Literal["linear", "mlp"] = "linear"
    hidden: int = 32
    dropout: float = 0.1
    weight_decay: float = 1e-2
    lr: float = 1e-3
    epochs: int = 300


@dataclass(frozen=True)
class FitResult:
    head: FeatureHead
    losses: tuple[float, ...]


def fit_head(
    features: np.ndarray, labels: np.ndarray, config: HeadConfig, *, seed: int = 0, weights: np.ndarray | None = None
) -> FitResult:
    """Binary cross-entropy (each row weighted by `weights`, default 1), full batch, AdamW,
    seeded (same inputs and seed: same weights)."""
    x = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.float32)
    w = None if weights is None else torch.as_tensor(np.asarray(weights), dtype=torch.float32)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError("features must be a non-empty [n, dim] array with one label per row")
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        head = FeatureHead(x.shape[1], config.kind, config.hidden, config.dropout)
        # Hidden states have a few dimensions hundreds of times larger than the rest.
        head.feature_mean.copy_(x.mean(dim=0))
        head.feature_std.copy_(x.std(dim=0).clamp_min(1e-4) if len(x) > 1 else torch.ones(x.shape[1]))
        optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        losses = []
        head.train()
        for _ in range(config.epochs):
            optimizer.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(head(x), y, weight=w)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        head.eval()
    finally:
        torch.random.set_rng_state(state)
    return FitResult(head, tuple(losses))


@torch.no_grad()
def head_probabilities(head: FeatureHead, features: np.ndarray) -> np.ndarray:
    head.eval()
    return torch.sigmoid(head(torch.as_tensor(np.asarray(features), dtype=torch.float32))).double().numpy()


def save_head(head: FeatureHead, path: Path, metadata: dict) -> None:
    meta = {"format": HEAD_FORMAT, "head": head.kind, "hidden": head.hidden, "input_dim": head.input_dim, **metadata}
    write_head_file(path, head_tensors(head, OFFSET_KEY), METADATA_KEY, meta)


def load_head(path: Path) -> tuple[FeatureHead, dict]:
    """The head in a head file as a torch module (for training tools; the app serves it in numpy)."""
    from ..scoring.toxicity_head import read_head_file

    tensors, metadata = read_head_file(path)
    head = load_head_tensors(
        tensors, OFFSET_KEY, input_dim=int(metadata["input_dim"]), kind=metadata["head"], hidden=int(metadata["hidden"])
    )
    return head, metadata


# --- measuring -----------------------------------------------------------------------------------


def roc_auc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve: P(a random positive scores above a random negative), ties ½."""
    labels, scores = np.asarray(labels, dtype=bool), np.asarray(scores, dtype=np.float64)
    positives, negatives = scores[labels], scores[~labels]
    if not len(positives) or not len(negatives):
        return float("nan")
    greater = (positives[:, None] > negatives[None, :]).sum()
    ties = (positives[:, None] == negatives[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(positives) * len(negatives)))


def implicit_auc(texts: Sequence[ToxicityText], scores: Sequence[float] | np.ndarray, implicit_kind: str) -> float:
    """AUC of the implicit-hate texts (positives) against every non-toxic text."""
    keep = [i for i, t in enumerate(texts) if t.kind == implicit_kind or not t.toxic]
    return roc_auc([texts[i].toxic for i in keep], [scores[i] for i in keep])


def error_rates(labels: Sequence[int] | np.ndarray, flags: Sequence[bool] | np.ndarray) -> tuple[float, float]:
    """(false-positive rate, false-negative rate); nan where a class is absent."""
    labels, flags = np.asarray(labels, dtype=bool), np.asarray(flags, dtype=bool)
    fpr = float(flags[~labels].mean()) if (~labels).any() else float("nan")
    fnr = float((~flags[labels]).mean()) if labels.any() else float("nan")
    return fpr, fnr


def stratified_folds(strata: Sequence[str], folds: int, seed: int = 0) -> np.ndarray:
    """A fold number per row, each stratum dealt round-robin over the folds in a seeded order."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(strata), dtype=np.int64)
    for stratum in sorted(set(strata)):
        rows = np.flatnonzero(np.asarray(strata) == stratum)
        fold[rng.permutation(rows)] = np.arange(len(rows)) % folds
    return fold


def out_of_fold_scores(
    features: np.ndarray,
    labels: np.ndarray,
    strata: Sequence[str],
    config: HeadConfig,
    *,
    folds: int = 5,
    seed: int = 0,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Each row's probability from a head trained on the other folds."""
    fold = stratified_folds(strata, folds, seed)
    scores = np.zeros(len(labels))
    for k in range(folds):
        test = fold == k
        fold_weights = None if weights is None else weights[~test]
        head = fit_head(features[~test], labels[~test], config, seed=seed, weights=fold_weights).head
        scores[test] = head_probabilities(head, features[test])
    return scores


def choose_cut(labels: np.ndarray, meaning: np.ndarray, bilstm: np.ndarray, threshold: float, max_fpr: float) -> float:
    """The lowest meaning-score cut at which the combined rule's false-positive rate on the
    (out-of-fold) training negatives stays within `max_fpr`: the most recall that budget buys."""
    negatives = ~labels.astype(bool)
    for cut in np.unique(meaning):  # ascending: the first that fits flags the most
        flags = (bilstm >= threshold) | (meaning >= cut)
        if flags[negatives].mean() <= max_fpr:
            return float(cut)
    return float(meaning.max()) + 1e-6


# --- training ------------------------------------------------------------------------------------


def backbone_features(backbone, texts: Sequence[ToxicityText], config: HeadConfig) -> np.ndarray:
    pairs = [(config.prompt if t.prompt is None else t.prompt, t.text) for t in texts]
    return np.asarray(backbone.features(pairs, config.feature), dtype=np.float32)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def train_toxicity_head(
    backbone,
    bilstm,
    *,
    config: HeadConfig = HeadConfig(),
    threshold: float = 0.5,
    max_fprs: Sequence[float] = (0.05, 0.075, 0.10, 0.15),
    data_dir: Path = TOXICITY_DIR,
    head_path: Path | None = None,
    card_path: Path | None = None,
    seed: int = 0,
    features: tuple[np.ndarray, np.ndarray] | None = None,
    outputs: OwnOutputs | None = None,
    output_weights: Sequence[float] = (1.0, 3.0, 10.0),
    command: str = TRAIN_COMMAND,
    results_path: Path | None = None,
) -> dict:
    """Train on train.jsonl, choose the operating point by cross-validation there, measure once on
    heldout.jsonl, write the head and its model card. Returns the figures written to the card.
    `features`: the (train, held-out) backbone features when already computed (the backbone then
    reads only the labelled outputs, and provides its identity and dtype for the metadata).
    `outputs`: our models' labelled answers; their train split trains the head beside the written
    texts, at the weight (of `output_weights`) whose head ranks the validation split best; the
    test split is scored once, beside a head trained on the written texts alone.
    The figures go to `results_path` as JSON (default: `toxicity.json` beside the head, or
    results/training/toxicity.json for the shipped head), with `command`, the commit, the machine
    and the date; the card is rendered from that record alone."""
    started = time.perf_counter()
    if results_path is None:
        results_path = TRAINING_RESULTS_DIR / RESULTS_FILE if head_path is None else head_path.parent / RESULTS_FILE
    head_path = head_path or TOXICITY_ARTEFACTS_DIR / "toxicity_head.safetensors"
    card_path = card_path or TOXICITY_ARTEFACTS_DIR / "MODEL_CARD.md"
    train, heldout = load_texts(data_dir / "train.jsonl"), load_texts(data_dir / "heldout.jsonl")
    given = features is not None
    if features is None:
        features = backbone_features(backbone, train, config), backbone_features(backbone, heldout, config)
    x_train, x_held = features
    feature_seconds = time.perf_counter() - started
    y_train = np.array([t.toxic for t in train])
    words_train = bilstm.probabilities([t.text for t in train]).max(axis=1)
    words_held = bilstm.probabilities([t.text for t in heldout]).max(axis=1)

    # What the head is fitted on: the written texts, and our labelled outputs' train split if given.
    fit_texts, x_fit, weights = train, x_train, None
    own: dict[str, Any] | None = None
    if outputs is not None and outputs.train:
        own, x_outputs = _own_outputs_fit(backbone, outputs, config, train, x_train, y_train, output_weights, seed)
        fit_texts, x_fit = train + outputs.train, np.concatenate([x_train, x_outputs])
        weights = np.concatenate([np.ones(len(train)), np.full(len(outputs.train), own["weight"])]).astype(np.float32)
    y_fit = np.array([t.toxic for t in fit_texts])
    # The operating point and the CV figures are the written texts' (out of fold; our outputs are
    # folded too, stratified by kind); the thresholds served on our outputs are chosen on their validation split
    # (demo/feedback/report.py).
    oof = out_of_fold_scores(x_fit, y_fit, [t.kind for t in fit_texts], config, seed=seed, weights=weights)[
        : len(train)
    ]
    # The false-positive budget itself is chosen by CV accuracy of the combined rule.
    budgets = []
    for budget in max_fprs:
        c = choose_cut(y_train, oof, words_train, threshold, budget)
        flags = (words_train >= threshold) | (oof >= c)
        fpr, fnr = error_rates(y_train, flags)
        budgets.append(
            {
                "max_fpr": budget,
                "cut": c,
                "accuracy": float(np.mean(flags == y_train.astype(bool))),
                "fpr": fpr,
                "fnr": fnr,
            }
        )
    best = max(budgets, key=lambda b: (b["accuracy"], -b["max_fpr"]))
    max_fpr, cut = best["max_fpr"], best["cut"]
    fit = fit_head(x_fit, y_fit, config, seed=seed, weights=weights)
    # Final head: the CV-chosen cut, as a logit, becomes probability `threshold`.
    raw_cut = _logit(min(max(cut, 1e-6), 1 - 1e-6))
    with torch.no_grad():
        fit.head.offset.fill_(raw_cut - _logit(threshold))
    meaning_held = head_probabilities(fit.head, x_held)
    if own is not None:
        own["test_auc"] = _output_aucs(fit.head, own.pop("x_test"), outputs.test if outputs else [])

    figures: dict[str, Any] = {
        "cv": _figures(train, oof, words_train, threshold, IMPLICIT_TRAIN_TYPE, cut=cut),
        "heldout": _figures(heldout, meaning_held, words_held, threshold, IMPLICIT_HELDOUT_GROUP),
        "cut": cut,
        "threshold": threshold,
        "max_fpr": max_fpr,
        "budgets": budgets,
        "loss_first": fit.losses[0],
        "loss_last": fit.losses[-1],
        "feature_seconds": round(feature_seconds, 1),
        "features_given": given,
        "seconds": round(time.perf_counter() - started, 1),
        "own_outputs": own,
    }
    data_hash = hashlib.sha256((data_dir / "train.jsonl").read_bytes()).hexdigest()[:16]
    metadata = {
        "layer": "final" if config.layer is None else str(config.layer),
        "feature": config.feature,
        "prompt": config.prompt,
        "head_config": asdict(config),
        "calibrated_threshold": threshold,
        "seed": seed,
        "train_sha256": data_hash,
        "backbone_dtype": getattr(backbone, "dtype", "?"),
        **getattr(backbone, "identity", {}),
        "heldout_rates": {
            name: {"fpr": round(v["fpr"], 4), "fnr": round(v["fnr"], 4)}
            for name, v in figures["heldout"]["rules"].items()
        },
        "heldout_texts": len(heldout),
        **({"own_outputs": {k: v for k, v in own.items() if k != "candidates"}} if own else {}),
    }
    save_head(fit.head, head_path, metadata)
    record = provenance([]) | {
        "command": command,
        "head": head_facts(head_path),
        "figures": figures,
        "data": {
            "train_texts": len(train),
            "heldout_texts": len(heldout),
            "train_toxic_kinds": _toxic_kinds(train),
            "heldout_toxic_kinds": _toxic_kinds(heldout),
        },
        "bilstm": bilstm_facts(bilstm),
    }
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    card_path.parent.mkdir(parents=True, exist_ok=True)
    card_path.write_text(model_card(card_sources(head_path, record)), encoding="utf-8")
    log.info(
        "toxicity head: held-out implicit AUC %.3f, %.1f s",
        figures["heldout"]["implicit_auc"]["meaning"],
        figures["seconds"],
    )
    return figures


def _toxic_kinds(texts: Sequence[ToxicityText]) -> dict[str, bool]:
    """Each kind of text, and whether its texts are labelled toxic (the card's label column)."""
    return {kind: any(t.toxic for t in texts if t.kind == kind) for kind in sorted({t.kind for t in texts})}


def _output_aucs(head: FeatureHead, features: np.ndarray, texts: Sequence[ToxicityText]) -> dict:
    """The head's AUC on labelled outputs: all of them, and the continuations alone."""
    if not len(texts):
        return {"all": float("nan"), "continuations": float("nan"), "texts": 0, "toxic": 0}
    scores = head_probabilities(head, features)
    labels = np.array([t.toxic for t in texts])
    continuation = np.array([t.kind.endswith("continuation") for t in texts])
    return {
        "all": round(roc_auc(labels, scores), 4),
        "continuations": round(roc_auc(labels[continuation], scores[continuation]), 4),
        "texts": len(texts),
        "toxic": int(labels.sum()),
    }


def _own_outputs_fit(
    backbone, outputs: OwnOutputs, config: HeadConfig, written, x_written, y_written, candidates, seed
):
    """Features of the labelled outputs, and the weight of the train split's outputs whose head
    ranks the validation split best among those that keep the written texts' cross-validated
    implicit AUC within MAX_WRITTEN_CV_DROP of the written texts alone (weight 0, the baseline):
    the head must not forget the prejudice in polite words it was built to read."""
    x = {name: backbone_features(backbone, getattr(outputs, name), config) for name in ("train", "validation", "test")}
    y_outputs = np.array([t.toxic for t in outputs.train])
    fit_x, fit_y = np.concatenate([x_written, x["train"]]), np.concatenate([y_written, y_outputs])
    strata = [t.kind for t in written] + [t.kind for t in outputs.train]
    rows = []
    for weight in (0.0, *candidates):
        weights = np.concatenate([np.ones(len(y_written)), np.full(len(y_outputs), weight)]).astype(np.float32)
        head = fit_head(fit_x, fit_y, config, seed=seed, weights=weights).head
        oof = out_of_fold_scores(fit_x, fit_y, strata, config, seed=seed, weights=weights)[: len(written)]
        rows.append(
            {
                "weight": weight,
                "written_cv_implicit_auc": round(implicit_auc(written, oof, IMPLICIT_TRAIN_TYPE), 4),
                "validation": _output_aucs(head, x["validation"], outputs.validation),
                "test": _output_aucs(head, x["test"], outputs.test),  # shown in the card, never chosen on
            }
        )
    floor = rows[0]["written_cv_implicit_auc"] - MAX_WRITTEN_CV_DROP
    allowed = [r for r in rows if r["weight"] > 0 and r["written_cv_implicit_auc"] >= floor] or rows[:1]
    best = max(allowed, key=lambda r: (r["validation"]["all"], -r["weight"]))
    own = {
        "source": outputs.source,
        "weight": best["weight"],
        "validation_auc": best["validation"],
        "written_only_test_auc": rows[0]["test"],
        "candidates": rows,
        "x_test": x["test"],
        "counts": {
            name: {"texts": len(texts), "toxic": sum(t.toxic for t in texts)}
            for name, texts in (("train", outputs.train), ("validation", outputs.validation), ("test", outputs.test))
        },
    }
    return own, x["train"]


def _figures(texts, meaning, words, threshold, implicit_kind, cut: float | None = None) -> dict:
    """AUCs, and FPR/FNR of each rule overall and per kind of text. `cut` is the meaning cut
    on raw probabilities (CV); on a calibrated head it is `threshold`."""
    cut = threshold if cut is None else cut
    labels = np.array([t.toxic for t in texts])
    flags = {
        "bilstm": words >= threshold,
        "meaning": meaning >= cut,
        "combined": np.array([combine(w, m, threshold, cut)[0] for w, m in zip(words, meaning)]),
    }
    kinds = sorted({t.kind for t in texts})
    per_kind = {rule: {k: float(np.mean(f[[t.kind == k for t in texts]])) for k in kinds} for rule, f in flags.items()}
    rules = {}
    for rule, f in flags.items():
        fpr, fnr = error_rates(labels, f)
        rules[rule] = {"fpr": fpr, "fnr": fnr, "accuracy": float(np.mean(f == labels.astype(bool)))}
    return {
        "auc": {"bilstm": roc_auc(labels, words), "meaning": roc_auc(labels, meaning)},
        "implicit_auc": {
            "bilstm": implicit_auc(texts, words, implicit_kind),
            "meaning": implicit_auc(texts, meaning, implicit_kind),
        },
        "rules": rules,
        "flag_rate_by_kind": per_kind,
        "counts": {k: sum(t.kind == k for t in texts) for k in kinds},
    }


# --- the model card ------------------------------------------------------------------------------
#
# MODEL_CARD.md is rendered by one pure function from a results record (`card_sources`): the head
# file's metadata and parameter count, and the training run's figures when that run made this very
# head (`results/training/toxicity.json`, or the JSON a run writes beside its head). Without them
# the card says only what the head file's metadata records; no figure is typed here.

RESULTS_FILE = "toxicity.json"


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _own_outputs_section(own: dict | None) -> str:
    if not own:
        return "Trained on the written texts alone (no labelled outputs of our models were given).\n"
    counts = own["counts"]

    def auc_cells(aucs: dict) -> tuple[str, str]:
        return f"{aucs['all']:.3f}", f"{aucs['continuations']:.3f}"

    candidates = ""
    if own.get("candidates"):
        rows = [
            (
                "written texts alone" if r["weight"] == 0 else f"written + our outputs × {r['weight']:g}",
                f"{r['written_cv_implicit_auc']:.3f}",
                *auc_cells(r["validation"]),
                *auc_cells(r["test"]),
            )
            for r in own["candidates"]
        ]
        header = ["trained on", "written CV implicit AUC", "validation AUC", "validation AUC (continuations)"]
        candidates = f"""
{_table([*header, "test AUC", "test AUC (continuations)"], rows)}

The test columns were computed for every candidate but never used to choose. "Written texts alone"
is weight 0 for the outputs: they add nothing to the loss, but, as in every row, they are in the
features' standardisation statistics.
"""
    return f"""## On our models' own outputs (AI feedback)

The head is also trained on what our served models write: the train split of `data/feedback`
({own["source"]}), {counts["train"]["texts"]} answers and continuations from the default evaluation
run with their labellers' consensus ({counts["train"]["toxic"]} toxic), weighted ×{own["weight"]:g} against the
written texts, the weight whose head ranks the validation split best ({counts["validation"]["texts"]} texts,
{counts["validation"]["toxic"]} toxic; AUC {own["validation_auc"]["all"]:.3f}) among the weights that keep the
written training texts' cross-validated implicit-hate AUC within {MAX_WRITTEN_CV_DROP} of the head trained on them
alone. The labels are **AI feedback**: language-model helpers following `docs/labelling/guidelines.md`, blind to
the system and to every score. The **test split** was labelled by other helpers whose labels train nothing
({counts["test"]["texts"]} texts, {counts["test"]["toxic"]} toxic): AUC **{own["test_auc"]["all"]:.3f}**
(continuations {own["test_auc"]["continuations"]:.3f}) against {own["written_only_test_auc"]["all"]:.3f}
({own["written_only_test_auc"]["continuations"]:.3f}) for the head trained on written texts alone. With
{counts["test"]["toxic"]} toxic texts in the test split, its AUC is uncertain by several points.
{candidates}"""


_RULES = {"bilstm": "BiLSTM alone", "meaning": "meaning head alone", "combined": "combined (either)"}


def _kind_rows(figures: dict, toxic_kinds: dict) -> list[tuple]:
    return [
        (
            k,
            figures["counts"][k],
            "toxic" if toxic_kinds.get(k) else "not toxic",
            *(_pct(figures["flag_rate_by_kind"][r][k]) for r in _RULES),
        )
        for k in figures["counts"]
    ]


def model_card(sources: dict) -> str:
    """MODEL_CARD.md from `sources` (see above): {"metadata", "head": {"file", "parameters"},
    "training": the run's record or None}."""
    metadata, head, run = sources["metadata"], sources["head"], sources.get("training")
    config = metadata["head_config"]
    rates = metadata["heldout_rates"]
    kind = "logistic (linear)" if config["kind"] == "linear" else "one-hidden-layer MLP"
    what = f"""- **What it is:** a {kind} head ({head["parameters"]:,} trained parameters) on the frozen reward
  backbone — {metadata.get("backbone_name", "?")}, residual stream after block {metadata["layer"]}, averaged over
  the text's tokens read as an assistant answer to {"an empty user turn" if not metadata["prompt"] else repr(metadata["prompt"])},
  {metadata["backbone_dtype"]} — the same feature the reward head reads, so the app gets it for free when the
  reward model has scored the same answer. Trained on the features the app serves. Served in numpy
  (`demo/scoring/toxicity_head.py`), no torch.
- **File:** `{head["file"]}` (safetensors; standardisation statistics and the offset that puts the chosen
  operating point at probability {metadata["calibrated_threshold"]} are tensors in it; the thresholds the app
  serves are models.yaml's, chosen on our labelled outputs by `python -m demo feedback report`; metadata holds
  the held-out FPR/FNR shown beside the flag).
- **License:** Apache-2.0; the data was written for this project.
"""
    blind = f"""## What each scorer is blind to

The legend the page shows beside the flag (`BLIND_SPOTS` in demo/scoring/toxicity_head.py):

- **BiLSTM (words):** {BLIND_SPOTS["bilstm"]}.
- **Meaning head:** {BLIND_SPOTS["meaning"]}.
- Both: sarcasm and context outside the text (who is speaking, to whom); new slang and spellings.
"""
    if run is None:
        return f"""# Meaning-aware toxicity head

**On {metadata["heldout_texts"]} held-out texts written independently for this project (another writer,
another brief), never used for any choice,** the combined flag (either signal) misses
{_pct(rates["combined"]["fnr"])} of the toxic texts with a false-positive rate of {_pct(rates["combined"]["fpr"])}
(BiLSTM alone: misses {_pct(rates["bilstm"]["fnr"])}, false positives {_pct(rates["bilstm"]["fpr"])}), as the head
file's metadata records them.

{what}- **Reproduce:** `{TRAIN_COMMAND} --replace-shipped` (seed {metadata["seed"]}; training data sha256
  {metadata["train_sha256"]}…). No committed training run reproduces this head file, so the training figures
  (AUCs, the operating point's cross-validation, per-group rates) are not quoted here.

{_own_outputs_section(metadata.get("own_outputs"))}
## The rule that combines the signals

`combine(bilstm_score, meaning_score, threshold)`: **flag when either signal reaches the threshold.**
The BiLSTM keeps the explicit insults, threats and slurs it already catches, and the head adds the
stereotypes and demeaning generalisations written in polite words that the BiLSTM cannot read.

{_table(["rule", "held-out FPR", "held-out FNR"], [(_RULES[r], _pct(rates[r]["fpr"]), _pct(rates[r]["fnr"])) for r in _RULES])}

{blind}"""
    figures, data = run["figures"], run["data"]
    held, cv = figures["heldout"], figures["cv"]
    reading = (
        "the features were given (computed once for the study)"
        if figures.get("features_given")
        else f"{figures['feature_seconds']:.0f} s of it reading the backbone"
    )
    explicit = held["flag_rate_by_kind"]
    rule_rows = [
        (
            _RULES[r],
            _pct(held["rules"][r]["fpr"]),
            _pct(held["rules"][r]["fnr"]),
            _pct(held["rules"][r]["accuracy"]),
            _pct(cv["rules"][r]["fpr"]),
            _pct(cv["rules"][r]["fnr"]),
        )
        for r in _RULES
    ]
    budgets = [
        (_pct(b["max_fpr"]), f"{b['cut']:.3f}", _pct(b["accuracy"]), _pct(b["fpr"]), _pct(b["fnr"]))
        for b in figures["budgets"]
    ]
    signals = [
        ("Jigsaw BiLSTM, max over its labels (the wording flag)", "bilstm"),
        (f"**SmolLM2 block {metadata['layer']}, answer mean, {config['kind']} head (this head)**", "meaning"),
    ]
    signal_rows = [
        (
            name,
            f"{cv['implicit_auc'][key]:.3f}",
            f"{cv['auc'][key]:.3f}",
            f"{held['implicit_auc'][key]:.3f}",
            f"{held['auc'][key]:.3f}",
        )
        for name, key in signals
    ]
    bilstm = run.get("bilstm")
    words = (
        f" The BiLSTM ({bilstm['parameters']:,} parameters, a {bilstm['vocabulary']:,}-word vocabulary) reads the last "
        f"{bilstm['max_tokens']} words of a text."
        if bilstm
        else ""
    )
    return f"""# Meaning-aware toxicity head

**On {data["heldout_texts"]} held-out texts written independently for this project (another writer,
another brief), never used for any choice:** implicit-hate AUC **{held["implicit_auc"]["meaning"]:.3f}**
for the meaning head against {held["implicit_auc"]["bilstm"]:.3f} for the Jigsaw BiLSTM; the combined flag
(either signal) catches {_pct(explicit["combined"][EXPLICIT_HELDOUT_GROUP])} of the explicit insults
(BiLSTM alone {_pct(explicit["bilstm"][EXPLICIT_HELDOUT_GROUP])}) and
{_pct(explicit["combined"][IMPLICIT_HELDOUT_GROUP])} of the implicit hate (BiLSTM alone
{_pct(explicit["bilstm"][IMPLICIT_HELDOUT_GROUP])}), with a false-positive rate of
{_pct(held["rules"]["combined"]["fpr"])} on the non-toxic texts (BiLSTM alone {_pct(held["rules"]["bilstm"]["fpr"])}).

{what}- **Reproduce:** `{TRAIN_COMMAND} --replace-shipped` (seed {metadata["seed"]}; {figures["seconds"]:.0f} s on
  {run["machine"]}; {reading}).

{_own_outputs_section(figures.get("own_outputs"))}
## The rule that combines the signals

`combine(bilstm_score, meaning_score, threshold)`: **flag when either signal reaches the threshold.**
The BiLSTM keeps the explicit insults, threats and slurs it already catches, and the head adds the
stereotypes and demeaning generalisations written in polite words that the BiLSTM cannot read.
The head's operating point was chosen by 5-fold cross-validation on the training texts: the lowest
cut at which the combined rule's false-positive rate on the out-of-fold training negatives stays
within a budget, the budget itself chosen by the CV accuracy of the combined rule (below); chosen:
{_pct(figures["max_fpr"])}, cut {figures["cut"]:.3f} on the raw probability, stored as an offset so it reads as
{metadata["calibrated_threshold"]}.

{_table(["CV FPR budget", "cut", "CV accuracy", "CV FPR", "CV FNR"], budgets)}

{_table(["rule", "held-out FPR", "held-out FNR", "held-out accuracy", "CV FPR (train)", "CV FNR (train)"], rule_rows)}

Share flagged per group of held-out texts (for toxic groups this is the recall, for the others the
false-positive rate):

{_table(["held-out group", "texts", "label", "BiLSTM", "meaning head", "combined"], _kind_rows(held, data["heldout_toxic_kinds"]))}

## The two signals, measured alike

Stratified 5-fold cross-validation on `train.jsonl` (out-of-fold scores) and the held-out texts,
measured after every choice. Implicit AUC: the implicit-stereotype (train) / implicit-hate
(held-out) texts against every non-toxic text.

{_table(["signal", "CV implicit AUC", "CV AUC (all)", "held-out implicit AUC", "held-out AUC (all)"], signal_rows)}

Block {metadata["layer"]} is the reward head's own feature: no second backbone pass and no second ONNX build
at serving time.{words}

Out-of-fold share flagged per type of training text, at the chosen cut:

{_table(["train type", "texts", "label", "BiLSTM", "meaning head", "combined"], _kind_rows(cv, data["train_toxic_kinds"]))}

Training: binary cross-entropy, full batch, AdamW (lr {config["lr"]}, weight decay {config["weight_decay"]},
dropout {config["dropout"]}, {config["epochs"]} epochs); loss {figures["loss_first"]:.3f} → {figures["loss_last"]:.3f}.

## Data

`train.jsonl`: {data["train_texts"]} texts written for this project — implicit stereotypes, dehumanising
generalisations, explicit insults, threats, sexual harassment, masked slurs; and hard negatives:
reclaimed or identity words, quoting to criticise, technical language ("kill -9"), medical and
legal language, civil negativity, everyday text. `heldout.jsonl`: {data["heldout_texts"]} texts by a different
writer with a different brief (implicit hate, explicit, neutral texts about groups, hard negatives).

{blind}- With {min(held["counts"].values())}–{max(held["counts"].values())} texts per held-out group, one text is
  {100 / max(held["counts"].values()):.0f}–{100 / min(held["counts"].values()):.0f} points: differences of a few points are noise.
"""


def card_sources(head_path: Path, record: dict) -> dict:
    """The card's sources for a head and the record of the training run that wrote it."""
    from ..scoring.toxicity_head import read_head_file

    return {"metadata": read_head_file(head_path)[1], "head": record["head"], "training": record}


def shipped_card(config) -> tuple[str, tuple[Path, ...]]:
    """The card of the head models.yaml serves, and the files it is rendered from: the committed
    training run's record when it made this very head (the same tensors), else the head file's
    metadata alone. Raises ValueError when the committed record was made by another head."""
    from ..scoring.toxicity_head import read_head_file

    spec = config.scoring.toxicity_meaning
    if spec is None:
        raise ValueError("models.yaml serves no meaning-aware toxicity head: there is no card to render")
    head_path, results = spec.head_path, TRAINING_RESULTS_DIR / RESULTS_FILE
    facts = head_facts(head_path)
    record = shipped_record(results, head_path, facts, TRAIN_COMMAND)
    if record is not None:
        return model_card(card_sources(head_path, record)), (results, head_path)
    sources = {"metadata": read_head_file(head_path)[1], "head": facts, "training": None}
    return model_card(sources), (head_path,)


def bilstm_facts(bilstm) -> dict | None:
    """The word classifier's size, read from its weights (None for a stand-in without them)."""
    from dataclasses import fields, is_dataclass

    from ..scoring.toxicity_bilstm import MAX_LEN

    weights = getattr(bilstm, "_weights", None)
    if weights is None:
        return None

    def arrays(value) -> list[np.ndarray]:
        if isinstance(value, np.ndarray):
            return [value]
        return [a for f in fields(value) for a in arrays(getattr(value, f.name))] if is_dataclass(value) else []

    return {
        "parameters": sum(int(a.size) for a in arrays(weights)),
        "vocabulary": int(weights.embedding.shape[0]),
        "max_tokens": MAX_LEN,
    }


def output_folder(out_dir: Path | None, replace_shipped: bool) -> Path | None:
    """Where a training run writes: `out_dir`, else a new folder in the cache; None (the shipped
    head's place) only when asked to replace it."""
    from .outputs import new_output_dir

    return None if replace_shipped else out_dir or new_output_dir("toxicity-head")


def train_command(config_path: str | None, *, written_only: bool, out_dir: Path | None, replace_shipped: bool) -> dict:
    """`python -m demo train-toxicity`: train on the written texts and (unless `written_only`) our
    labelled outputs; write to `out_dir`, or a new folder under <cache>/trained/, or over the
    shipped head when `replace_shipped`. Prints where it wrote and the held-out figures."""
    from ..config import KerasBiLSTMToxicity, TrainedHeadReward, load_config
    from ..feedback.commands import ITEMS, LABELS
    from ..scoring.reward_backbone import OnnxBackbone
    from ..scoring.toxicity_bilstm import BiLSTMToxicityClassifier

    target = output_folder(out_dir, replace_shipped)
    command = (
        [TRAIN_COMMAND]
        + (["--written-only"] if written_only else [])
        + (["--out-dir", str(out_dir)] if out_dir else [])
    )
    command += (["--replace-shipped"] if replace_shipped else []) + (
        ["--config", str(config_path)] if config_path else []
    )
    app = load_config(config_path)
    spec = cast(TrainedHeadReward, app.scoring.reward)  # this tool needs the trained-head reward and the BiLSTM
    served = app.scoring.toxicity_meaning  # --replace-shipped writes where the config serves the head from
    backbone = OnnxBackbone.from_config(app, spec, layer=HeadConfig().layer)
    figures = train_toxicity_head(
        backbone,
        BiLSTMToxicityClassifier.from_package(cast(KerasBiLSTMToxicity, app.scoring.toxicity).package),
        threshold=0.5,  # the head's calibration point; the served thresholds come from `feedback report`
        outputs=None if written_only else own_outputs(ITEMS, LABELS),
        head_path=(served.head_path if served else None) if target is None else target / "toxicity_head.safetensors",
        card_path=(served.card_path if served else None) if target is None else target / "MODEL_CARD.md",
        command=" ".join(command),
        results_path=TRAINING_RESULTS_DIR / RESULTS_FILE if target is None else target / RESULTS_FILE,
    )
    print(f"wrote {target or 'the served head (models.yaml scoring.toxicity_meaning)'}", file=sys.stderr)
    own = figures["own_outputs"] or {}
    summary = {k: figures[k] for k in ("cut", "seconds")} | {"heldout": figures["heldout"]["rules"]}
    summary |= {"own_outputs_test_auc": own.get("test_auc"), "written_only_test_auc": own.get("written_only_test_auc")}
    print(json.dumps(summary, indent=2))
    return figures
