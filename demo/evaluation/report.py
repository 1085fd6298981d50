"""`report.md` for an evaluation folder: our tables beside the InstructGPT paper's numbers, and
the charts as PNGs in `plots/`. The comparison with the paper is labelled for what it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import plots
from .summary import SUMMARY_FILE, write_summary

REPORT_FILE = "report.md"
PLOTS_DIR = "plots"

# Ouyang et al. (2022), "Training language models to follow instructions with human feedback".
PAPER_NUMBERS: dict[str, str] = {
    "preference_vs_gpt3": "175B InstructGPT preferred over 175B GPT-3 85 ± 3 % of the time (labellers)",
    "preference_vs_prompted_gpt3": "175B InstructGPT preferred over few-shot-prompted 175B GPT-3 71 ± 4 % of the time",
    "hallucination": "closed-domain tasks: InstructGPT makes up information 21 % of the time vs 41 % for GPT-3",
    "truthfulqa": "TruthfulQA: truthful and informative answers about twice as often as GPT-3",
    "toxicity": (
        "RealToxicityPrompts: about 25 % fewer toxic outputs than GPT-3 when instructed to be respectful; "
        "no advantage without the instruction; more toxic than GPT-3 when instructed to be biased"
    ),
}


def caveat(pairs: Sequence[Mapping] = ()) -> str:
    """How far to trust the report; `pairs` (summary.json's `pairs`) says which models were compared,
    so the family sentence is true of them (unknown pairs: the cautious wording)."""
    names = [f"{p['aligned']['name']} vs {p['base']['name']}" for p in pairs]
    one_family = bool(pairs) and all(p["base"]["family"] == p["aligned"]["family"] for p in pairs)
    if one_family:
        family = (
            f"Compared here: {'; '.join(names)}, one family: the same base model before and after "
            "training, so what differs is what the training did, at demonstration scale."
        )
    elif pairs:
        family = f"Compared here: {'; '.join(names)}, which come from different families."
    else:
        family = "Base and aligned models may come from different families."
    return (
        "**Read these numbers as a demonstration, not a replication.** The paper's judges are trained "
        "human labellers; ours is a small reward model (a proxy for labellers, trained on a few hundred "
        "pairs; see its card for its accuracy on independent pairs and what backbone it reads). The "
        "paper's models have 1.3B–175B parameters; ours have 135M–270M, hundreds of times smaller "
        f"than the 175B ones. {family} The suites are a few dozen to a hundred prompts written for "
        "this project, not the paper's API prompts, "
        "TruthfulQA or RealToxicityPrompts, and toxicity is scored by a small classifier, not the "
        "Perspective API."
    )


def write_report(out_dir: str | Path, summary: Mapping | None = None) -> Path:
    """Write `report.md` and `plots/*.png` in `out_dir` (summarizing the stored rows first when
    no summary is given and `summary.json` is missing); the report's path."""
    out_dir = Path(out_dir)
    if summary is None:
        summary_path = out_dir / SUMMARY_FILE
        if not summary_path.exists():
            write_summary(out_dir)
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    images = {}
    for name, build in (
        ("win_rate", plots.win_rate_chart),
        ("toxicity", plots.toxicity_chart),
        ("truthfulness", plots.truthfulness_chart),
    ):
        chart = build(summary)
        if chart is not None:
            images[name] = plots.save_png(chart, out_dir / PLOTS_DIR / f"{name}.png").relative_to(out_dir).as_posix()
    path = out_dir / REPORT_FILE
    path.write_text(render_report(summary, images), encoding="utf-8")
    return path


def render_report(summary: Mapping, images: Mapping[str, str] | None = None) -> str:
    """The report's Markdown; `images` maps a chart name to its path relative to the report."""
    images = images or {}
    lines = ["# Base vs aligned: evaluation report", "", caveat(summary.get("pairs", ())), ""]
    lines += _labellers_section(summary.get("labellers") or {})
    lines += _preference_section(summary.get("preference", []), images.get("win_rate"))
    lines += _truthfulness_section(summary.get("truthfulness", []), images.get("truthfulness"))
    lines += _toxicity_section(summary.get("toxicity", []), images.get("toxicity"))
    lengths = summary.get("answer_tokens")
    if lengths:
        listed = ", ".join(f"{kind} {n}" for kind, n in sorted(lengths.items()))
        lines += [f"Answers were cut at these new-token budgets, by suite kind: {listed}.", ""]
    confidence = summary.get("confidence", {})
    if confidence:
        lines += [
            f"Intervals: {confidence.get('level', 0.95):.0%} {confidence.get('method', 'bootstrap')}, "
            f"{confidence.get('n_resamples')} resamples, seed {confidence.get('seed')}.",
            "",
        ]
    return "\n".join(lines)


def _pct(value) -> str:
    return "–" if value is None else f"{value:.1%}"


def _num(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def _words(value) -> str:
    return "–" if value is None else f"{value:.1f}"


def _ci(ci, fmt=_pct) -> str:
    return "–" if not ci or ci[0] is None else f"{fmt(ci[0])} – {fmt(ci[1])}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]


def _image(title: str, path: str | None) -> list[str]:
    return [f"![{title}]({path})", ""] if path else []


POOLS = {
    "test": "held-out labellers (test split; their labels train nothing)",
    "train": "train-pool labellers (their labels train the meaning-aware toxicity head)",
}


def _labellers_section(labellers: Mapping) -> list[str]:
    """Where labellers read this run's answers: their win rate first, the judge's beside it."""
    if not labellers:
        return []
    lines = [
        "## Labellers first: is the aligned answer preferred?",
        "",
        "Language-model labellers ranked these answers blind, following docs/labelling/guidelines.md: this "
        "is **AI feedback**, not human feedback (data/feedback/README.md). Ties and split votes count half; "
        "the judge's win rate is on the same prompts; agreement is on the pairs the labellers called.",
        "",
    ]
    table = []
    for pool in ("test", "train"):
        for base_format, r in sorted((labellers.get(pool) or {}).items(), key=lambda item: item[0] != "raw"):
            win, judge = r["labellers_win_rate"], r["judge_win_rate"]
            table.append(
                [
                    POOLS[pool],
                    base_format,
                    str(r["prompts"]),
                    f"{_pct(win['value'])} ({_ci([win['low'], win['high']])})",
                    f"{_pct(judge['value'])} ({_ci([judge['low'], judge['high']])})",
                    f"{_pct(r['judge_agreement'])} of {r['decisive_pairs']}",
                ]
            )
    return lines + _table(
        [
            "labellers",
            "base format",
            "prompts",
            "labellers: aligned preferred (95 % CI)",
            "judge, same prompts (95 % CI)",
            "judge agrees with the labellers",
        ],
        table,
    )


def _preference_section(rows, image) -> list[str]:
    lines = ["## Preference: is the aligned answer preferred?", ""]
    if not rows:
        return lines + ["No instruction-suite results yet.", ""]
    lines += [
        "Win rate: the share of prompts where the reward model prefers the aligned answer (ties count half); "
        "P(aligned ≻ base) is the reward model's Bradley–Terry probability, averaged. The weighted figure "
        "re-weights categories to the paper's Table 1 mix.",
        "",
    ]
    table = []
    for r in rows:
        weighted = r.get("weighted") or {}
        table.append(
            [
                r["pair"],
                r["base_format"],
                r["category"],
                str(r["n"]),
                _pct(r["win_rate"]),
                _ci(r["win_rate_ci"]),
                _num(r["p_aligned_mean"]),
                _words(r["mean_length_base"]),
                _words(r["mean_length_aligned"]),
                f"{_pct(weighted['win_rate'])} ({_ci(weighted['win_rate_ci'])})" if weighted else "",
            ]
        )
    lines += _table(
        [
            "pair",
            "base format",
            "category",
            "prompts",
            "win rate",
            "95 % CI",
            "mean P(aligned ≻ base)",
            "words (base)",
            "words (aligned)",
            "Table-1-weighted win rate (95 % CI)",
        ],
        table,
    )
    excluded = sum(r.get("n_excluded", 0) for r in rows if r["category"] == "all")
    if excluded:
        lines += [
            f"**{excluded} comparison{'s are' if excluded != 1 else ' is'} left out of these figures**: the "
            "reward model gave no score for "
            "at least one of their answers (it failed to load, or an answer failed); see `reward_error` in "
            "results.jsonl.",
            "",
        ]
    lines += [
        "Paper (labellers, 175B models): "
        + PAPER_NUMBERS["preference_vs_gpt3"]
        + "; "
        + PAPER_NUMBERS["preference_vs_prompted_gpt3"]
        + ". Our `raw` base format corresponds to plain "
        "GPT-3, `prompted` to few-shot-prompted GPT-3. The paper also reports: "
        + PAPER_NUMBERS["hallucination"]
        + " (not measured here).",
        "",
    ]
    return lines + _image("Win rate per category", image)


def _truthfulness_section(rows, image) -> list[str]:
    lines = ["## Truthfulness", ""]
    if not rows:
        return lines + ["No truthfulness results yet.", ""]
    lines += [
        "MC1: the most likely reference answer is a true one; MC2: probability mass on the true answers "
        "(summed log-likelihoods, as lm-evaluation-harness). Generated: the share of sampled answers a "
        "word-overlap matcher places closer to a true than to every false reference (a rough proxy; see "
        "`demo.evaluation.metrics.match_truthful` for what it misses).",
        "",
    ]
    table = [
        [
            r["pair"],
            r["base_format"],
            r["model"],
            r.get("model_id") or "",
            str(r["n"]),
            _num(r["mc1"]),
            _ci(r["mc1_ci"], _num),
            _num(r["mc2"]),
            _ci(r["mc2_ci"], _num),
            _pct(r["generative_correct"]),
            _ci(r["generative_correct_ci"]),
        ]
        for r in rows
    ]
    lines += _table(
        [
            "pair",
            "base format",
            "model",
            "model id",
            "items",
            "MC1",
            "95 % CI",
            "MC2",
            "95 % CI",
            "generated, matched",
            "95 % CI",
        ],
        table,
    )
    lines += ["Paper: " + PAPER_NUMBERS["truthfulqa"] + " (judged by trained models on generated answers, not MC).", ""]
    return lines + _image("Truthfulness", image)


def _toxicity_section(rows, image) -> list[str]:
    lines = ["## Toxicity by instruction", ""]
    if not rows:
        return lines + ["No toxicity results yet.", ""]
    table = [
        [
            r["pair"],
            r["base_format"],
            r["model"],
            r["instruction"],
            str(r["n"]),
            _num(r["mean"]),
            _ci(r["ci"], _num),
            _pct(r["flagged_share"]),
        ]
        for r in rows
    ]
    lines += _table(
        ["pair", "base format", "model", "instruction", "prompts", "mean toxicity", "95 % CI", "flagged toxic"], table
    )
    lines += ["Paper: " + PAPER_NUMBERS["toxicity"] + ".", ""]
    return lines + _image("Toxicity by instruction", image)
