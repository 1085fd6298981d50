"""The reward head's model card (MODEL_CARD.md beside the head)."""

from __future__ import annotations

import json
from pathlib import Path

from ...preferences import counts
from ...scoring.reward_inputs import TRAIN_COMMAND
from .evaluation import _pct, _table, evaluation_table

_FEATURE_WORDS = {
    "last_token": "at the last token of the conversation",
    "answer_mean": "averaged over the answer's tokens",
    "mean": "averaged over every token of the conversation",
    "answer_mean+last_token": "averaged over the answer's tokens, beside its state at the last token",
}
# The candidates table of the feature study (`python -m demo data reward-study` writes it; the card renders it).
CANDIDATES_FILE = "candidates.json"


def _candidates_table(folder: Path) -> str:
    path = Path(folder) / CANDIDATES_FILE
    if not path.is_file():
        return "(no study in this folder: run `python -m demo data reward-study` to make one)"
    rows = json.loads(path.read_text(encoding="utf-8"))["candidates"]
    return _table(
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
                ("**" + r["name"] + "**") if r.get("chosen") else r["name"],
                _pct(r["cv_score"]),
                _pct(r["cv"]),
                _pct(r["cv_chosen_shorter"]),
                _pct(r["cv_plain"]),
                _pct(r.get("independent")),
                _pct(r.get("helpful")),
                _pct(r.get("honest")),
                _pct(r.get("harmless")),
            )
            for r in rows
        ],
    )


def model_card(report, split, unseen, independent, evaluations, metadata, spec, folder: Path) -> str:
    """MODEL_CARD.md: the independent figures first, then the in-style ones, the study, the data
    and the limits, from this run."""
    train, test = split.train, split.test
    ind, held, new = evaluations["independent"], evaluations["heldout"], evaluations["unseen"]
    config = json.loads(metadata["head_config"])
    head_desc = (
        f"one hidden layer of {config['hidden']} GELU units" if config["kind"] == "mlp" else "a single linear layer"
    )
    if config.get("ensemble", 1) > 1:
        head_desc += f" (an ensemble of {config['ensemble']} seeds merged into one MLP: their rewards averaged)"
    everything = list(train) + list(test)
    by_flaw = ", ".join(f"{k} {v}" for k, v in counts(everything, "flaw").items())
    aspects = _table(
        ["aspect", "train", "same-writer held-out", "unseen", "independent"],
        [
            (
                a,
                counts(train, "aspect").get(a, 0),
                counts(test, "aspect").get(a, 0),
                counts(unseen, "aspect").get(a, 0),
                counts(independent, "aspect").get(a, 0),
            )
            for a in counts(everything + list(unseen) + list(independent), "aspect")
        ],
    )
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
    training = f"{len(train)} pairs" + (
        " plus their markdown-stripped variants" if config.get("plain_variants") else ""
    )
    return f"""# {spec.name}

A small reward model trained for this demo, InstructGPT step 2 at demonstration scale. It scores
an answer to a prompt with one number; σ(r_a − r_b) is the probability it prefers answer a to b.

**On {ind.overall.pairs} preference pairs written independently of its training data (another writer,
another brief), it picks the better answer {_pct(ind.overall.accuracy)} of the time**, against
{_pct(ind.overall.longer_wins)} for "the longer answer wins" and {_pct(ind.overall.more_confident_wins)} for
"the more confident answer wins". That is the figure to expect on text this project did not write;
the page shows it beside P(aligned ≻ base) (`independent_accuracy` in the head file's metadata).

A measurement made outside the project, on 221 pairs from other sources, found 64% for an earlier
head of this design (and chance, 51%, on its honesty pairs): expect less on text further from this
project's briefs. The same-writer split further down says more still; it measures style.

## How often it is right on independent pairs

`data/preferences/independent/heldout.jsonl`: pairs where the better answer is the shorter one,
pairs where both answers are fluent and the flaw is one wrong fact or one unsafe step, pairs where
the rejected answer is the more confident one. Never trained on; see "How it was chosen" for how
far it stayed out of the choices. A tie counts as a miss for the reward model and for "longer
wins"; "more confident wins" compares certainty markers minus hedges (`confidence_score`:
"definitely", "always", "guaranteed" … minus "might", "probably", "it depends" …), a tie counting
half.

{evaluation_table(ind)}

With 50–100 pairs per group, one pair is 1–2 points: differences of a few points are noise.

## In-style figures (same writers as the training data)

These measure the writers' style as much as quality: read them as an upper bound.

{in_style}

Same-writer held-out, per aspect and type of flaw:

{evaluation_table(held)}

## Model

- **Backbone (frozen):** {metadata.get("backbone_name", "?")} — `{metadata.get("backbone_origin", "?")}`,
  converted checkpoint `{metadata.get("backbone_checkpoint", "?")}`, run in {metadata["backbone_dtype"]}
  (demo/scoring/reward_backbone.py) for training and serving alike, so the head is served the features it
  learnt from; at fp32 that backbone reproduces transformers' hidden states to ~1e-6.
- **Feature:** the backbone's {metadata["feature_layer"]}, {_FEATURE_WORDS[metadata["feature"]]}.
- **Head:** `{Path(report.head_path).name}` (safetensors, {head_desc} on standardised features;
  the standardisation statistics are stored in the file as tensors), served in numpy, no torch.
- **License:** Apache-2.0, like the backbone; the preference data was written for this project.
- **Reproduce:** `{TRAIN_COMMAND}` (seed {metadata["seed"]}; {report.seconds:.0f} s on the machine that made
  this file, {report.feature_seconds:.0f} s of it reading the backbone); measure the served head with
  `python -m demo.training.reward --evaluate`.

## Method

As in InstructGPT, the reward model reads the aligned (SFT/DPO) language model and ends in a scalar
head. Each (prompt, answer) is formatted with the backbone's chat template as a user turn and an
assistant turn (special-token strings in the text are neutralised, so typed control tokens cannot
end a turn); past {metadata["max_tokens"]} tokens the END of the answer is kept. Unlike InstructGPT the
backbone is frozen and only the head is trained, with the Bradley–Terry loss
−log σ(r_chosen − r_rejected), full batch, AdamW (lr {config["lr"]}, weight decay {config["weight_decay"]},
dropout {config["dropout"]}, {config["epochs"]} epochs, seed {metadata["seed"]}) on {training}.
{"Length control: during training the reward is head(feature) + w·log(characters) with w learnt, and w is dropped at inference, so the head is not paid for what length alone explains. " if config.get("length_control") else ""}Training loss went from {report.loss_first:.3f} to {report.loss_last:.3f}
(curve: {", ".join(f"{x:.3f}" for x in report.loss_curve)}); training-pair accuracy {_pct(report.train_accuracy)}.

### How it was chosen

Every choice (backbone, block, pooling, data mix, length control, ensemble) was made by 5-fold
cross-validation grouped by prompt on the train split only (`python -m demo data reward-study cv`).
The CV score is the mean of three CV accuracies: all held-out-fold pairs; those whose chosen
answer is the shorter one; and the markdown-stripped variants of those that had markdown (part
D's rejected answers wear "## Title + bold bullets" far more often than its chosen ones, so
markdown alone would predict its labels). The independent column was computed once, for this
table, after the choice (`python -m demo data reward-study final`). Study features: onnxruntime int8,
the served precision.

{_candidates_table(folder)}

## Data

{len(everything)} hand-written preference pairs (`data/preferences/written/part_*.jsonl`; parts a–c by
the original writers, part d length-balanced and style-swapped), split by prompt, stratified by
category (sha256 order within each category, 15% held out; parts a–c jointly as before, each later
part on its own): {len(train)} train, {len(test)} held-out. `unseen.jsonl` ({len(unseen)} pairs) and the
independent set ({len(independent)} pairs, another writer and brief) are never trained on. Each
training rejected answer has one named flaw: {by_flaw}.

{aspects}

## Limits

- Demonstration scale: ~{len(everything)} pairs written for this project, not tens of thousands of
  labeller comparisons, and a frozen 135M backbone. It ranks clear differences; it is not a judge
  of fine quality.
- Weakest on independent pairs of type {weakest_text}.
- Facts: a confident wrong fact the backbone does not know reads like a right one; one wrong
  number in an otherwise fluent answer is what it misses most easily.
- It shares its backbone with the aligned model in this demo, so it may favour that model's own
  style and phrasing over an equally good answer in another style.
- 16 of the independent set's prompts also appear in the training data (with other answers).
- English only; prompts and answers are short (most under 200 tokens).
- The scores are relative: only differences between answers to the same prompt mean something.
"""
