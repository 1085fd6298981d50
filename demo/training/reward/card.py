"""The reward head's model card (MODEL_CARD.md beside the head), rendered by one pure function
from a results record: every figure in it comes from a file, never from this module.

The record (`card_sources`) holds the head file's metadata and parameter count, the evaluation
tables (a training run's own, or `python -m demo train-reward --evaluate --out …`'s), the training
run's figures when the run made this very head (`results/training/reward.json`, or the JSON a
training run writes beside its head), and the feature study's candidates table
(`candidates.json`, written by `python -m demo data reward-study final`). Sections whose sources
are absent are left out, so the card never states a figure it cannot trace.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ...config import AppConfig, TrainedHeadReward, repo_relative
from ...paths import RESULTS_DIR
from ...scoring.reward_head import read_head_metadata
from ...scoring.reward_inputs import TRAIN_COMMAND
from ..heads import TRAINING_RESULTS_DIR, head_facts, shipped_record
from .evaluation import Evaluation, _pct, _table, evaluation_table

_FEATURE_WORDS = {
    "last_token": "at the last token of the conversation",
    "answer_mean": "averaged over the answer's tokens",
    "mean": "averaged over every token of the conversation",
    "answer_mean+last_token": "averaged over the answer's tokens, beside its state at the last token",
}
# The candidates table of the feature study (`python -m demo data reward-study final` writes it; the card renders it).
CANDIDATES_FILE = "candidates.json"
EVALUATE_COMMAND = "python -m demo train-reward --evaluate"
# What a training run writes beside its head (and, with --replace-shipped, to results/training/).
RESULTS_FILE = "reward.json"
# What the card quotes when no committed training run made the shipped head.
EVALUATE_RESULTS = RESULTS_DIR / "reward" / "evaluate.json"


def read_candidates(folder: Path) -> list[dict] | None:
    """The feature study's rows in `folder`/candidates.json, or None when there is no study."""
    path = Path(folder) / CANDIDATES_FILE
    return json.loads(path.read_text(encoding="utf-8"))["candidates"] if path.is_file() else None


def _candidate_name(row: dict, shipped_pairs: str) -> str:
    if row.get("chosen"):
        return f"**{row['name']} (CV choice)**"
    if row["name"].startswith("today's head") and str(row.get("train_pairs")) == shipped_pairs:
        return f"**{row['name']} (the shipped head's recipe)**"
    return row["name"]


def _candidates_section(rows: Sequence[dict] | None, shipped_pairs: str) -> str:
    if not rows:
        return "(no feature study beside this head: `python -m demo data reward-study` makes one)\n"
    table = _table(
        [
            "candidate",
            "CV score",
            "CV",
            "CV, chosen shorter",
            "CV, markdown stripped",
            "independent",
            "helpful",
            "honest",
            "harmless",
        ],
        [
            (
                _candidate_name(r, shipped_pairs),
                f"{r['cv_score']:.3f}",
                _pct(r["cv"]),
                _pct(r["cv_chosen_shorter"]),
                _pct(r["cv_plain"]),
                _pct(r.get("independent")),
                _pct(r.get("helpful")),
                _pct(r.get("honest")),
                _pct(r.get("harmless")),
            )
            for r in sorted(rows, key=lambda r: -r["cv_score"])
        ],
    )
    best = max(rows, key=lambda r: r["cv_score"])
    chosen = next((r for r in rows if r.get("chosen")), best)
    return f"""Every choice (backbone, block, pooling, data mix, length control, ensemble) is made by 5-fold
cross-validation grouped by prompt on the train split only (`python -m demo data reward-study cv`).
The CV score is the mean of three CV accuracies: all held-out-fold pairs; those whose chosen
answer is the shorter one; and the markdown-stripped variants of those that had markdown (part
D's rejected answers wear "## Title + bold bullets" far more often than its chosen ones, so
markdown alone would predict its labels). The independent column was computed once per candidate,
after the CV scores were fixed, and chose nothing (`python -m demo data reward-study final`, which
writes `{CANDIDATES_FILE}`; study features: onnxruntime int8, the served precision).

The best CV score was {best["cv_score"]:.3f} ({best["name"]}); the study's choice was **{chosen["name"]}**
({chosen["train_pairs"]} training pairs, independent {_pct(chosen.get("independent"))}). It was not shipped: it
did not beat the shipped head on the independent set by more than the noise, and it scored a base
model's way of continuing a prompt above a plain right answer
(`tests/integration/test_reward.py::test_real_head_prefers_the_obvious_answer`), the comparison
the page exists for. The row marked as the shipped head's recipe is that recipe retrained on {shipped_pairs} pairs of today's
split of the parts it was trained on, in the study.

{table}
"""


def model_card(sources: dict) -> str:
    """MODEL_CARD.md from `sources` (see the module doc): the independent figures first, then the
    in-style ones, the model, the method and study, the data and the limits."""
    metadata, head = sources["metadata"], sources["head"]
    evaluations = {name: Evaluation.from_json(table) for name, table in sources["evaluation"].items()}
    ind, held, new = evaluations["independent"], evaluations["heldout"], evaluations["unseen"]
    training = sources.get("training")
    config = json.loads(metadata["head_config"])
    head_desc = (
        f"one hidden layer of {config['hidden']} GELU units" if config["kind"] == "mlp" else "a single linear layer"
    )
    if config.get("ensemble", 1) > 1:
        head_desc += f" (an ensemble of {config['ensemble']} seeds merged into one MLP: their rewards averaged)"
    measured = sources["evaluation_source"]
    in_style = _table(
        ["set", "pairs", "reward model", "longer wins", "more confident wins"],
        [
            (
                name,
                e.overall.pairs,
                _pct(e.overall.accuracy),
                _pct(e.overall.longer_wins),
                _pct(e.overall.more_confident_wins),
            )
            for name, e in (
                ("independent (other writer, other brief)", ind),
                ("same-writer held-out", held),
                ("unseen", new),
            )
        ],
    )
    weakest = sorted((g.accuracy, k) for k, g in ind.by_type.items() if g.pairs >= 10)[:2]
    weakest_text = " and ".join(f"`{k}` ({_pct(a)})" for a, k in weakest)
    at_training = (
        ""
        if training
        else f"""
The head file's metadata, written when the head was trained, records {_pct(float(metadata["independent_accuracy"]))}
on the {metadata["independent_pairs"]} independent pairs (`independent_accuracy`, the figure the page shows beside
P(aligned ≻ base)), {_pct(float(metadata["heldout_accuracy"]))} on that day's held-out split and
{_pct(float(metadata["unseen_accuracy"]))} on unseen.jsonl.
"""
    )
    reproduce = (
        f"`{TRAIN_COMMAND}` (seed {metadata['seed']}; {training['seconds']:.0f} s on {training['machine']}, "
        f"{training['feature_seconds']:.0f} s of it reading the backbone)"
        if training
        else f"`{TRAIN_COMMAND}` (seed {metadata['seed']}) trains on today's split; this head was trained on "
        f"{metadata['train_pairs']} pairs (data sha256 {metadata['train_data_sha256_16']}…), before the split grew, so "
        "the command does not reproduce this file"
    )
    method_training = (
        f"""Training loss went from {training["loss_first"]:.3f} to {training["loss_last"]:.3f}
(curve: {", ".join(f"{x:.3f}" for x in training["loss_curve"])}); training-pair accuracy {_pct(training["train_accuracy"])}.
"""
        if training
        else ""
    )
    length_control = (
        "Length control: during training the reward is head(feature) + w·log(characters) with w learnt, and w is "
        "dropped at inference, so the head is not paid for what length alone explains.\n"
        if config.get("length_control")
        else ""
    )
    training_pairs = f"{metadata['train_pairs']} pairs" + (
        " plus their markdown-stripped variants" if config.get("plain_variants") else ""
    )
    return f"""# {sources["name"]}

A small reward model trained for this demo, InstructGPT step 2 at demonstration scale. It scores
an answer to a prompt with one number; σ(r_a − r_b) is the probability it prefers answer a to b.

**On {ind.overall.pairs} preference pairs written independently of its training data (another writer,
another brief), it picks the better answer {_pct(ind.overall.accuracy)} of the time**, against
{_pct(ind.overall.longer_wins)} for "the longer answer wins" and {_pct(ind.overall.more_confident_wins)} for
"the more confident answer wins" ({measured}). That is the figure to expect on text this project did
not write; the same-writer split further down says more, and measures style.
{at_training}
## How often it is right on independent pairs

`data/preferences/independent/heldout.jsonl`: pairs where the better answer is the shorter one,
pairs where both answers are fluent and the flaw is one wrong fact or one unsafe step, pairs where
the rejected answer is the more confident one. Never trained on, and used for no choice. A tie
counts as a miss for the reward model and for "longer wins"; "more confident wins" compares
certainty markers minus hedges (`confidence_score`: "definitely", "always", "guaranteed" … minus
"might", "probably", "it depends" …), a tie counting half.

{evaluation_table(ind)}

{_noise(ind)}

## In-style figures (same writers as the training data)

These measure the writers' style as much as quality: read them as an upper bound.

{in_style}

Same-writer held-out, per aspect and type of flaw:

{evaluation_table(held)}

## Model

- **Backbone (frozen):** {metadata.get("backbone_name", "?")} — `{metadata.get("backbone_origin", "?")}`,
  converted checkpoint `{metadata.get("backbone_checkpoint", "?")}`, run in {metadata["backbone_dtype"]}
  (demo/scoring/reward_backbone.py) for training and serving alike, so the head is served the features it
  learnt from.
- **Feature:** the backbone's {metadata["feature_layer"]}, {_FEATURE_WORDS[metadata["feature"]]}.
- **Head:** `{head["file"]}` (safetensors, {head_desc} on standardised features, {head["parameters"]:,}
  trained parameters; the standardisation statistics are stored in the file as tensors), served in numpy, no torch.
- **License:** Apache-2.0, like the backbone; the preference data was written for this project.
- **Reproduce:** {reproduce}; measure the served head with `{EVALUATE_COMMAND}`.

## Method

As in InstructGPT, the reward model reads the aligned (SFT/DPO) language model and ends in a scalar
head. Each (prompt, answer) is formatted with the backbone's chat template as a user turn and an
assistant turn (special-token strings in the text are neutralised, so typed control tokens cannot
end a turn); past {metadata["max_tokens"]} tokens the END of the answer is kept. Unlike InstructGPT the
backbone is frozen and only the head is trained, with the Bradley–Terry loss
−log σ(r_chosen − r_rejected), full batch, AdamW (lr {config["lr"]}, weight decay {config["weight_decay"]},
dropout {config["dropout"]}, {config["epochs"]} epochs, seed {metadata["seed"]}) on {training_pairs}.
{length_control}{method_training}
### How it was chosen

{_candidates_section(sources.get("candidates"), metadata["train_pairs"])}
## Data

{_data_section(metadata, training, ind, held, new)}

## Limits

- Demonstration scale: {metadata["train_pairs"]} pairs written for this project, not tens of thousands of
  labeller comparisons, and a frozen {metadata.get("backbone_name", "small")} backbone. It ranks clear
  differences; it is not a judge of fine quality.
- Weakest on independent pairs of type {weakest_text}.
- Facts: a confident wrong fact the backbone does not know reads like a right one; one wrong
  number in an otherwise fluent answer is what it misses most easily.
- It shares its backbone with the aligned model in this demo, so it may favour that model's own
  style and phrasing over an equally good answer in another style.
- English only, short prompts and answers. The scores are relative: only differences between
  answers to the same prompt mean something.
""" + (_vote_section(training["votes"]) if training and training.get("votes") else "")


def _noise(evaluation: Evaluation) -> str:
    sizes = [g.pairs for g in (*evaluation.by_aspect.values(), *evaluation.by_type.values()) if g.pairs]
    if not sizes:
        return ""
    return (
        f"With {min(sizes)}–{max(sizes)} pairs per group, one pair is {100 / max(sizes):.1f}–{100 / min(sizes):.1f} "
        "points: differences of a few points are noise."
    )


def _vote_section(votes: dict) -> str:
    from ...arena.export import vote_card_section

    return vote_card_section(votes)


def _data_section(metadata: dict, training: dict | None, ind: Evaluation, held: Evaluation, new: Evaluation) -> str:
    intro = (
        f"Hand-written preference pairs (`data/preferences/written/part_*.jsonl`), split by prompt, stratified by "
        f"category (sha256 order within each category): the head was trained on {metadata['train_pairs']} of them "
        f"(data sha256 {metadata['train_data_sha256_16']}…). Measured on {held.overall.pairs} same-writer held-out pairs, "
        f"{new.overall.pairs} pairs of `unseen.jsonl` and {ind.overall.pairs} independent pairs (another writer and "
        "brief), none of them trained on."
    )
    sets = {"same-writer held-out": held, "unseen": new, "independent": ind}
    header = ["aspect"] + (["train"] if training else []) + list(sets)
    aspects = sorted({a for e in sets.values() for a in e.by_aspect} | set((training or {}).get("train_aspects", {})))
    rows = [
        (
            a,
            *([training["train_aspects"].get(a, 0)] if training else []),
            *(e.by_aspect[a].pairs if a in e.by_aspect else 0 for e in sets.values()),
        )
        for a in aspects
    ]
    flaws = ""
    if training:
        flaws = (
            "\n\nEach training rejected answer has one named flaw: "
            + ", ".join(f"{k} {v}" for k, v in training["train_flaws"].items())
            + "."
        )
    return intro + flaws + "\n\n" + _table(header, rows)


def _when(record: dict) -> str:
    return f"`{record['command']}`, commit {record.get('commit') or '?'}, {str(record.get('date', '?'))[:10]}"


def card_sources(name: str, head_path: Path, record: dict) -> dict:
    """The card's sources for a head and the record of the training run that wrote it."""
    return {
        "name": name,
        "metadata": read_head_metadata(head_path),
        "head": record["head"],
        "evaluation": record["evaluation"],
        "evaluation_source": f"measured by the training run that wrote this head: {_when(record)}",
        "training": record["training"] | {"machine": record.get("machine", "?")},
        "candidates": read_candidates(Path(head_path).parent),
    }


def shipped_card(config: AppConfig) -> tuple[str, tuple[Path, ...]]:
    """The card of the head models.yaml serves, and the files it is rendered from: the committed
    training run's record when it made this very head (same sha256), else the head file's metadata
    and the served head's measurement (`python -m demo train-reward --evaluate --out …`).
    Raises ValueError when the committed record was made by another head."""
    spec = config.scoring.reward
    if not isinstance(spec, TrainedHeadReward):
        raise ValueError("scoring.reward is not a trained_head: there is no card to render")
    head_path, results = spec.head_path, TRAINING_RESULTS_DIR / RESULTS_FILE
    facts = head_facts(head_path)
    study = (head_path.parent / CANDIDATES_FILE,) if (head_path.parent / CANDIDATES_FILE).is_file() else ()
    record = shipped_record(results, head_path, facts, TRAIN_COMMAND)
    if record is not None:
        return model_card(card_sources(spec.name, head_path, record)), (results, head_path, *study)
    try:
        measured = json.loads(EVALUATE_RESULTS.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{repo_relative(EVALUATE_RESULTS)} is missing or unreadable ({error})") from None
    sources = {
        "name": spec.name,
        "metadata": read_head_metadata(head_path),
        "head": facts,
        "evaluation": {name: measured[name] for name in ("independent", "heldout", "unseen")},
        "evaluation_source": f"measured on the served head by {_when(measured)}",
        "training": None,
        "candidates": read_candidates(head_path.parent),
    }
    return model_card(sources), (EVALUATE_RESULTS, head_path, *study)
